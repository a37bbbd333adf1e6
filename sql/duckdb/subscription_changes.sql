-- subscription_changes: every instant (up to {{as_of}}) at which a subscription's
-- monthly-normalised value changes, with the change. The base of the customer and monthly
-- queries: a subscription's value is the sum of its items' (item_values holds the rules).
-- Values are split as in item_values: delta_cents whole minor units + delta_frac / 86 486 400 000.
--
-- Columns: subscription, customer, currency, changed_at, delta_cents, delta_frac, delta_counting (-1, 0, 1)
--
-- DuckDB port of sql/bigquery/subscription_changes.sql. Dialect changes:
--   CAST(bool AS INTEGER) instead of INT64; `//` and `%` instead of DIV and MOD;
--   CAST(SUM(x) AS BIGINT): BigQuery's SUM of INT64 is an INT64, DuckDB's a HUGEINT, whose
--   arithmetic downstream is several times slower (see item_values).
WITH
-- The items' fractions carried into whole minor units, so that one value has one form and an
-- instant whose value did not change has no row (both parts are >= 0 here).
valued AS (
  SELECT subscription, customer, currency, instant,
         value_cents + value_frac // 86486400000 AS value_cents, value_frac % 86486400000 AS value_frac
  FROM (
    SELECT subscription, customer, currency, instant, CAST(SUM(value_cents) AS BIGINT) AS value_cents, CAST(SUM(value_frac) AS BIGINT) AS value_frac
    FROM {{item_values}}
    GROUP BY 1, 2, 3, 4
  )
),
changes AS (
  SELECT subscription, customer, currency, instant AS changed_at,
         value_cents - COALESCE(LAG(value_cents) OVER w, 0) AS delta_cents,
         value_frac - COALESCE(LAG(value_frac) OVER w, 0) AS delta_frac,
         CAST(value_cents > 0 OR value_frac > 0 AS INTEGER)
           - COALESCE(CAST(LAG(value_cents) OVER w > 0 OR LAG(value_frac) OVER w > 0 AS INTEGER), 0) AS delta_counting
  FROM valued
  WINDOW w AS (PARTITION BY subscription ORDER BY instant)
)
SELECT subscription, customer, currency, changed_at, delta_cents, delta_frac, delta_counting
FROM changes
WHERE delta_cents <> 0 OR delta_frac <> 0 OR delta_counting <> 0
