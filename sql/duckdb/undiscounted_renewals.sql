-- undiscounted_renewals: for each discount and each subscription it applies to (as
-- _discount_targets pairs them), the first renewal invoice after the discount's start that
-- had something to discount and discounted nothing: the instant a discount taken off its
-- subscription stops counting when no `customer.discount.deleted` event says so
-- (docs/stripe-behaviour.md, D2). It depends on the raw tables alone, never on the as-of
-- instant or the metric options, so `mrr` derives it once, when a snapshot is written
-- (src/engine/derived.rs): finding it reads every renewal invoice (25 M at 1 M subscriptions
-- x 60 months) for the discounted subscriptions.
--
-- Columns: discount, subscription, removed_at
--
-- DuckDB only: sql/bigquery/discount_windows.sql computes the same rows inline (its
-- undiscounted_renewal), from the same raw tables.
SELECT t.discount, t.subscription, MIN(i.created) AS removed_at
FROM {{_discount_targets}} t
JOIN {{invoices}} i ON i.subscription = t.subscription
WHERE i.billing_reason = 'subscription_cycle' AND i.created > t.start AND i.subtotal > 0 AND i.total_discount = 0
GROUP BY 1, 2
