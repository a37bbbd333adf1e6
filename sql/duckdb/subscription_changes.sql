-- subscription_changes: every instant (up to {{as_of}}) at which a subscription's
-- monthly-normalised value changes, with the change. The base of the customer and monthly
-- queries: a subscription's value is the sum of its items' (item_values holds the rules).
-- Values are split as in item_values: delta_cents whole minor units + delta_frac / 86 486 400 000.
--
-- Columns: subscription, customer, currency, changed_at, delta_cents, delta_frac, delta_counting (-1, 0, 1),
--          value_cents, value_frac, counting (0, 1): the value after the change;
--          nth: the instant's place among its subscription's (1 for the first);
--          month_first, month_last: whether no earlier (later) instant of its subscription is in
--          the same calendar month (UTC);
--          DuckDB only: month_start (the calendar month of changed_at), single_item, price,
--          previous_price (below).
-- A subscription's last instant in a month is kept even where nothing changed, so that its
-- value at the end of every month with a change is on a row (mrr_by_customer reads a
-- customer with one subscription so, without a running sum).
--
-- DuckDB port of sql/bigquery/subscription_changes.sql. Port changes: a subscription with one
-- item over its life (not in the derived table several_items, sql/duckdb/several_items.sql)
-- takes its item's rows as they are, where BigQuery groups every subscription's; its rows
-- also say so (single_item) and carry its item's price before and after (price,
-- previous_price; NULL for the others), and a row where only that price changed is kept:
-- DuckDB's mrr_by_plan reads these instead of its own pass over those items. The rows of the
-- plain subscriptions come from the derived table plain_changes (item_values leaves them out),
-- the others' from the same window (_subscription_rows), each with its next instant, so that
-- a derived row after {{as_of}} still ends its month. Dialect changes:
--   CAST(bool AS INTEGER) instead of INT64; `//` and `%` instead of DIV and MOD;
--   date_trunc on a UTC TIMESTAMP (`make_timestamp(epoch_us(t))`, see mrr_by_customer) instead
--   of TIMESTAMP_TRUNC;
--   CAST(SUM(x) AS BIGINT): BigQuery's SUM of INT64 is an INT64, DuckDB's a HUGEINT, whose
--   arithmetic downstream is several times slower (see item_values).
WITH
-- Each instant of each subscription the report values, with its value: a subscription with
-- one item over its life has one row per instant, its item's (or none); the others' items
-- are summed (an instant whose value did not change has no change: _subscription_rows).
valued AS (
  SELECT v.subscription, v.customer, v.currency, v.instant, v.value_cents, v.value_frac, TRUE AS single_item, v.price
  FROM {{item_values}} v
  LEFT JOIN {{several_items}} s ON s.subscription = v.subscription
  WHERE s.subscription IS NULL
  UNION ALL
  SELECT subscription, customer, currency, instant, CAST(SUM(value_cents) AS BIGINT), CAST(SUM(value_frac) AS BIGINT), FALSE, NULL
  FROM {{item_values}}
  WHERE subscription IN (SELECT subscription FROM {{several_items}})
  GROUP BY 1, 2, 3, 4
),
-- Every instant with its change: the rows valued here, and the plain subscriptions' (one
-- item, no discount, no uninvoiced change), derived once per snapshot over all their instants
-- (sql/duckdb/plain_changes.sql), up to {{as_of}}; with --churn-at cancel a canceled one is
-- valued here, its cancellation being one of its instants.
every AS (
  SELECT * FROM {{_subscription_rows}}
  UNION ALL
  SELECT subscription, customer, currency, changed_at, delta_cents, delta_frac, delta_counting,
         value_cents, value_frac, counting, nth, month_start, month_first, next_instant, next_month_start,
         single_item, price, previous_price
  FROM {{plain_changes}}
  WHERE {{plain_changes_read}} AND changed_at <= {{as_of}} AND NOT (canceled AND '{{churn_at}}' = 'cancel')
),
changes AS (
  SELECT *, COALESCE(next_month_start > month_start OR next_instant > {{as_of}}, TRUE) AS month_last
  FROM every
)
SELECT subscription, customer, currency, changed_at, delta_cents, delta_frac, delta_counting,
       value_cents, value_frac, counting, nth, month_first, month_last, month_start, single_item, price, previous_price
FROM changes
WHERE delta_cents <> 0 OR delta_frac <> 0 OR delta_counting <> 0 OR month_last OR price IS DISTINCT FROM previous_price
