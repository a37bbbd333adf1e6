-- mrr_by_plan: MRR, subscriptions and customers per plan (price) and currency at the end of
-- every month (at {{as_of}} in its month): one row per month and plan with a paying item.
-- A plan's MRR is the sum over its customers of each customer's value on the plan (the sum of
-- its items' values, item_values: an amount-off coupon is split across a subscription's items
-- by what they bill), rounded half to even to cents once per customer, plan and month, as the
-- contract rounds; the plans of a month add up to mrr_monthly's mrr up to that rounding.
-- An item that changes price moves its value from the old plan to the new one. Values are
-- split as in item_values (whole minor units + a fraction), so no INT64 overflows.
--
-- Columns: month, currency, product, price, mrr, active_subscriptions, active_customers
--
-- DuckDB port of sql/bigquery/mrr_by_plan.sql. Dialect changes:
--   generate_series / strftime / date_trunc on a UTC TIMESTAMP (`make_timestamp(epoch_us(t))`, see mrr_by_customer) instead of GENERATE_DATE_ARRAY,
--   FORMAT_TIMESTAMP and TIMESTAMP_TRUNC; CAST(bool AS INTEGER) instead of INT64;
--   CAST(SUM(x) AS BIGINT), as INT64 (see item_values); the derived table shared_customers
--   (sql/duckdb/shared_customers.sql, computed once per snapshot from the same raw table)
--   stands for BigQuery's CTE shared. Port change: only the items of subscriptions with several
--   items over their life (the derived table several_items, sql/duckdb/several_items.sql) get
--   a pass of their own; every other subscription's item changes are read from
--   subscription_changes, which compared each of its rows with the one before already (the
--   same rows as BigQuery's pass over every item, one window pass fewer: 0.4 s at 1 M
--   subscriptions). Each delta is marked `shared` by a join with shared_customers (BigQuery's
--   semi-joins), and one group sums every plan's deltas for the subscription count and the
--   sole customers' values (BigQuery's subscription_deltas and sole_values: one pass over the
--   changes instead of three, 0.07 s at 1 M subscriptions). Each change's month is
--   subscription_changes' month_start (DuckDB's carries it), where BigQuery truncates here.
WITH
-- The items of subscriptions with several items over their life (several_items), each
-- against its own previous row.
items AS (
  SELECT customer, currency, date_trunc('month', make_timestamp(epoch_us(instant))) AS month_start, price,
         value_cents, value_frac, LAG(price) OVER w AS previous_price,
         COALESCE(LAG(value_cents) OVER w, 0) AS previous_cents,
         COALESCE(LAG(value_frac) OVER w, 0) AS previous_frac
  FROM {{item_values}}
  WHERE item IS NOT NULL AND subscription IN (SELECT subscription FROM {{several_items}})
  WINDOW w AS (PARTITION BY item ORDER BY instant)
),
changed AS (
  SELECT * FROM items
  WHERE value_cents <> previous_cents OR value_frac <> previous_frac OR price IS DISTINCT FROM previous_price
  UNION ALL
  -- Every other subscription's one item: its rows are its subscription's, already against
  -- their previous row (subscription_changes; a row without an item has no price and no value).
  SELECT customer, currency, month_start, price, value_cents, value_frac, previous_price,
         value_cents - delta_cents, value_frac - delta_frac
  FROM {{subscription_changes}}
  WHERE single_item AND (delta_cents <> 0 OR delta_frac <> 0 OR price IS DISTINCT FROM previous_price)
),
-- A changed item takes its previous value out of its previous plan and puts its value into
-- its plan. A subscription holds a plan through one item at most (Stripe refuses two items of
-- one price on a subscription: docs/stripe-behaviour.md, W7), so it starts or stops counting
-- on a plan exactly when one of its items starts or stops being paid on it: each delta also
-- carries that start (1) or stop (-1), and the subscription count needs no pass over
-- subscriptions. `shared` marks the customers with several subscriptions in the currency.
deltas AS (
  SELECT d.*, s.customer IS NOT NULL AS shared
  FROM (
    SELECT customer, currency, month_start, price, value_cents AS delta_cents, value_frac AS delta_frac,
           CASE WHEN price IS NOT DISTINCT FROM previous_price AND (previous_cents <> 0 OR previous_frac <> 0)
                THEN 0 ELSE 1 END AS delta_subscriptions
    FROM changed WHERE value_cents <> 0 OR value_frac <> 0
    UNION ALL
    SELECT customer, currency, month_start, previous_price, -previous_cents, -previous_frac,
           CASE WHEN price IS NOT DISTINCT FROM previous_price AND (value_cents <> 0 OR value_frac <> 0)
                THEN 0 ELSE -1 END
    FROM changed WHERE previous_cents <> 0 OR previous_frac <> 0
  ) d
  LEFT JOIN {{shared_customers}} s ON s.customer = d.customer AND s.currency = d.currency
),
-- A customer with one subscription in a currency holds a plan through one item at a time
-- (W7, above), so its value on the plan is that item's: its rounded value changes by the
-- change of each delta rounded (half to even is symmetric, and each item's deltas chain, the
-- one taken out being the one put in before), and it starts or stops counting on the plan
-- with each delta put in or taken out. Only the customers with several subscriptions in a
-- currency need a running value per plan (a group and a window pass over every change at
-- 1 M subscriptions, 0.25 s). The subscriptions of both kinds of customer are counted here.
summed_deltas AS (
  SELECT currency, price, month_start,
         CAST(COALESCE(SUM({{cents:delta_cents|delta_frac}}) FILTER (WHERE NOT shared), 0) AS BIGINT) AS delta_mrr,
         CAST(SUM(delta_subscriptions) AS BIGINT) AS delta_subscriptions,
         CAST(COALESCE(SUM(CASE WHEN delta_cents > 0 OR delta_frac > 0 THEN 1 ELSE -1 END) FILTER (WHERE NOT shared), 0) AS BIGINT) AS delta_customers
  FROM deltas
  GROUP BY 1, 2, 3
),
-- Month by month, a shared customer's value on the plan, rounded to cents; its value before a
-- month is the running value less that month's change, and the plan's MRR changes by the
-- change of the rounded value. Both parts of a value are >= 0 (a sum of item values), so a
-- value is positive when either part is.
customer_values AS (
  SELECT currency, price, month_start,
         {{cents:value_cents|value_frac}} - {{cents:value_cents - delta_cents|value_frac - delta_frac}} AS delta_mrr,
         CAST(value_cents > 0 OR value_frac > 0 AS INTEGER)
           - CAST(value_cents - delta_cents > 0 OR value_frac - delta_frac > 0 AS INTEGER) AS delta_customers
  FROM (
    SELECT *,
           CAST(SUM(delta_cents) OVER w AS BIGINT) AS value_cents, CAST(SUM(delta_frac) OVER w AS BIGINT) AS value_frac
    FROM (
      SELECT customer, currency, price, month_start,
             CAST(SUM(delta_cents) AS BIGINT) AS delta_cents, CAST(SUM(delta_frac) AS BIGINT) AS delta_frac
      FROM deltas
      WHERE shared
      GROUP BY 1, 2, 3, 4
    )
    WINDOW w AS (PARTITION BY customer, currency, price ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
  )
),
plan_deltas AS (
  SELECT currency, price, month_start, delta_mrr, delta_subscriptions, delta_customers
  FROM summed_deltas
  UNION ALL
  SELECT currency, price, month_start, SUM(delta_mrr), 0, SUM(delta_customers)
  FROM customer_values
  GROUP BY 1, 2, 3
),
months AS (
  SELECT m AS month_start
  FROM (SELECT MIN(month_start) AS first_month FROM plan_deltas) b,
       generate_series(b.first_month, date_trunc('month', make_timestamp(epoch_us({{as_of}}))), INTERVAL 1 MONTH) t(m)
),
plans AS (SELECT DISTINCT currency, price FROM plan_deltas),
filled AS (
  SELECT m.month_start, p.currency, p.price,
         SUM(COALESCE(d.delta_mrr, 0)) OVER w AS mrr,
         SUM(COALESCE(d.delta_subscriptions, 0)) OVER w AS active_subscriptions,
         SUM(COALESCE(d.delta_customers, 0)) OVER w AS active_customers
  FROM months m CROSS JOIN plans p
  LEFT JOIN (
    SELECT currency, price, month_start, SUM(delta_mrr) AS delta_mrr,
           SUM(delta_subscriptions) AS delta_subscriptions, SUM(delta_customers) AS delta_customers
    FROM plan_deltas GROUP BY 1, 2, 3
  ) d ON d.month_start = m.month_start AND d.currency = p.currency AND d.price = p.price
  WINDOW w AS (PARTITION BY p.currency, p.price ORDER BY m.month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT strftime(f.month_start, '%Y-%m') AS month, f.currency, pr.product, f.price,
       CAST(f.mrr AS BIGINT) AS mrr,
       CAST(f.active_subscriptions AS BIGINT) AS active_subscriptions,
       CAST(f.active_customers AS BIGINT) AS active_customers
FROM filled f
LEFT JOIN {{prices}} pr ON pr.id = f.price
WHERE f.active_subscriptions > 0
ORDER BY month, f.currency, f.price
