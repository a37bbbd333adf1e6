-- subscription_changes: every instant (up to {{as_of}}) at which a subscription's
-- monthly-normalised value changes, with the change. The base of the customer and monthly
-- queries: a subscription's value is the sum of its items' (item_values holds the rules).
-- Values are exact integers: MRR x 86 486 400 000 (12 x 720720 x 10000, see docs/metrics.md).
--
-- Columns: subscription, customer, currency, changed_at, delta_scaled (exact integer), delta_counting (-1, 0, 1)
--
-- DuckDB port of sql/bigquery/subscription_changes.sql. Dialect changes:
--   CAST(bool AS INTEGER) instead of INT64.
WITH
valued AS (
  SELECT subscription, customer, currency, instant, SUM(value_scaled) AS value_scaled
  FROM {{item_values}}
  GROUP BY 1, 2, 3, 4
),
changes AS (
  SELECT subscription, customer, currency, instant AS changed_at,
         value_scaled - COALESCE(LAG(value_scaled) OVER w, 0) AS delta_scaled,
         CAST(value_scaled > 0 AS INTEGER) - COALESCE(CAST(LAG(value_scaled) OVER w > 0 AS INTEGER), 0) AS delta_counting
  FROM valued
  WINDOW w AS (PARTITION BY subscription ORDER BY instant)
)
SELECT subscription, customer, currency, changed_at, delta_scaled, delta_counting
FROM changes
WHERE delta_scaled <> 0 OR delta_counting <> 0
