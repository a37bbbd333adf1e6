-- unpaid_since: when each subscription that is `unpaid` now stopped counting: its last failed
-- invoice's `marked_uncollectible_at` (the contract, "When a subscription counts";
-- docs/metrics.md). It depends on the raw tables alone, never on the as-of instant or the
-- metric options, so `mrr` derives it once, when a snapshot is written (src/engine/derived.rs):
-- finding the few marked invoices reads every invoice (26 M at 1 M subscriptions x 60 months,
-- 0.25 s of every report).
--
-- Columns: subscription, unpaid_at
--
-- DuckDB only: sql/bigquery/item_values.sql computes the same rows inline (its unpaid), from
-- the same raw tables.
SELECT i.subscription, MAX(i.marked_uncollectible_at) AS unpaid_at
FROM {{invoices}} i JOIN {{subscriptions}} s ON s.id = i.subscription
-- (the filter on the invoice first: few are marked)
WHERE s.status = 'unpaid' AND i.marked_uncollectible_at IS NOT NULL
GROUP BY 1
