-- once_discount_ends: for each discount of a `once` coupon and each subscription it applies
-- to (as _discount_targets pairs them), the end of the first period billed after the
-- discount's start, where a `once` coupon stops reducing MRR under `--discounts all`
-- (docs/metrics.md). It depends on the raw tables alone, never on the as-of instant or the
-- metric options, so `mrr` derives it once, when a snapshot is written
-- (src/engine/derived.rs): finding it reads every invoice line (26 M at 1 M subscriptions
-- x 60 months) of the subscriptions with such a discount.
--
-- Columns: subscription, discount, once_until
--
-- DuckDB only: sql/bigquery/discount_windows.sql computes the same rows inline (its
-- first_period_end), from the same raw tables.
SELECT l.subscription, t.discount, MIN(l.period_end) AS once_until
FROM {{invoice_lines}} l
JOIN {{_discount_targets}} t ON t.subscription = l.subscription
JOIN {{coupons}} c ON c.id = t.coupon
WHERE c.duration = 'once' AND NOT l.proration AND l.period_end > t.start
GROUP BY 1, 2
