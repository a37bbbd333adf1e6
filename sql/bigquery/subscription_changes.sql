-- subscription_changes: every instant (up to {{as_of}}) at which a subscription's
-- monthly-normalised value changes, with the change. The base of the customer and monthly
-- queries: a subscription's value is the sum of its items' (item_values holds the rules).
-- Values are split as in item_values: delta_cents whole minor units + delta_frac / 86 486 400 000.
--
-- Columns: subscription, customer, currency, changed_at, delta_cents, delta_frac, delta_counting (-1, 0, 1),
--          value_cents, value_frac, counting (0, 1): the value after the change;
--          nth: the instant's place among its subscription's (1 for the first);
--          month_first, month_last: whether no earlier (later) instant of its subscription is in
--          the same calendar month (UTC).
-- A subscription's last instant in a month is kept even where nothing changed, so that its
-- value at the end of every month with a change is on a row (mrr_by_customer reads a
-- customer with one subscription so, without a running sum).
--
-- BigQuery Standard SQL; the source that sql/duckdb/subscription_changes.sql ports.
WITH
-- The items' fractions carried into whole minor units, so that one value has one form and an
-- instant whose value did not change has no change (both parts are >= 0 here).
valued AS (
  SELECT subscription, customer, currency, instant,
         value_cents + DIV(value_frac, 86486400000) AS value_cents, MOD(value_frac, 86486400000) AS value_frac
  FROM (
    SELECT subscription, customer, currency, instant, SUM(value_cents) AS value_cents, SUM(value_frac) AS value_frac
    FROM {{item_values}}
    GROUP BY 1, 2, 3, 4
  )
),
changes AS (
  SELECT subscription, customer, currency, instant AS changed_at,
         value_cents - COALESCE(LAG(value_cents) OVER w, 0) AS delta_cents,
         value_frac - COALESCE(LAG(value_frac) OVER w, 0) AS delta_frac,
         CAST(value_cents > 0 OR value_frac > 0 AS INT64)
           - COALESCE(CAST(LAG(value_cents) OVER w > 0 OR LAG(value_frac) OVER w > 0 AS INT64), 0) AS delta_counting,
         value_cents, value_frac, CAST(value_cents > 0 OR value_frac > 0 AS INT64) AS counting,
         ROW_NUMBER() OVER w AS nth,
         COALESCE(TIMESTAMP_TRUNC(LAG(instant) OVER w, MONTH, 'UTC')
                    < TIMESTAMP_TRUNC(instant, MONTH, 'UTC'), TRUE) AS month_first,
         COALESCE(TIMESTAMP_TRUNC(LEAD(instant) OVER w, MONTH, 'UTC')
                    > TIMESTAMP_TRUNC(instant, MONTH, 'UTC'), TRUE) AS month_last
  FROM valued
  WINDOW w AS (PARTITION BY subscription ORDER BY instant)
)
SELECT subscription, customer, currency, changed_at, delta_cents, delta_frac, delta_counting,
       value_cents, value_frac, counting, nth, month_first, month_last
FROM changes
WHERE delta_cents <> 0 OR delta_frac <> 0 OR delta_counting <> 0 OR month_last
