-- mrr_by_plan: MRR, subscriptions and customers per plan (price) and currency at the end of
-- every month (at {{as_of}} in its month): one row per month and plan with a paying item.
-- A plan's MRR is the sum of its items' values (item_values: an amount-off coupon is split
-- across a subscription's items by what they bill), rounded half to even to cents once per
-- plan and month; the plans of a month add up to mrr_monthly's mrr up to that rounding.
-- An item that changes price moves its value from the old plan to the new one.
--
-- Columns: month, currency, product, price, mrr, active_subscriptions, active_customers
--
-- BigQuery Standard SQL; the source that sql/duckdb/mrr_by_plan.sql ports.
WITH
items AS (
  SELECT subscription, customer, currency, instant, price, value_scaled,
         LAG(price) OVER w AS previous_price, COALESCE(LAG(value_scaled) OVER w, 0) AS previous_value
  FROM {{item_values}}
  WHERE item IS NOT NULL
  WINDOW w AS (PARTITION BY item ORDER BY instant)
),
changed AS (
  SELECT * FROM items WHERE value_scaled <> previous_value OR price IS DISTINCT FROM previous_price
),
-- A changed item takes its previous value out of its previous plan and puts its value into its plan.
deltas AS (
  SELECT subscription, customer, currency, instant, price, value_scaled AS delta_scaled FROM changed WHERE value_scaled <> 0
  UNION ALL
  SELECT subscription, customer, currency, instant, previous_price, -previous_value FROM changed WHERE previous_value <> 0
),
by_subscription AS (
  SELECT subscription, customer, currency, price, TIMESTAMP_TRUNC(instant, MONTH, 'UTC') AS month_start, SUM(delta_scaled) AS delta_scaled
  FROM deltas
  GROUP BY 1, 2, 3, 4, 5
),
-- Month by month, whether a subscription (and a customer) holds a paying item of the plan; its
-- value before a month is the running value less that month's change.
subscription_values AS (
  SELECT currency, price, month_start, delta_scaled, value_scaled, value_scaled - delta_scaled AS previous_value
  FROM (
    SELECT *, SUM(delta_scaled) OVER (PARTITION BY subscription, price ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS value_scaled
    FROM by_subscription
  )
),
customer_values AS (
  SELECT currency, price, month_start, value_scaled, value_scaled - delta_scaled AS previous_value
  FROM (
    SELECT *, SUM(delta_scaled) OVER (PARTITION BY customer, currency, price ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS value_scaled
    FROM (SELECT customer, currency, price, month_start, SUM(delta_scaled) AS delta_scaled FROM by_subscription GROUP BY 1, 2, 3, 4)
  )
),
plan_deltas AS (
  SELECT currency, price, month_start, SUM(delta_scaled) AS delta_scaled,
         SUM(CAST(value_scaled > 0 AS INT64) - CAST(previous_value > 0 AS INT64)) AS delta_subscriptions,
         0 AS delta_customers
  FROM subscription_values
  GROUP BY 1, 2, 3
  UNION ALL
  SELECT currency, price, month_start, 0, 0,
         SUM(CAST(value_scaled > 0 AS INT64) - CAST(previous_value > 0 AS INT64))
  FROM customer_values
  GROUP BY 1, 2, 3
),
months AS (
  SELECT TIMESTAMP(m, 'UTC') AS month_start
  FROM (SELECT MIN(month_start) AS first_month FROM plan_deltas) b,
       UNNEST(GENERATE_DATE_ARRAY(DATE(b.first_month, 'UTC'), DATE_TRUNC(DATE({{as_of}}, 'UTC'), MONTH), INTERVAL 1 MONTH)) AS m
),
plans AS (SELECT DISTINCT currency, price FROM plan_deltas),
filled AS (
  SELECT m.month_start, p.currency, p.price,
         SUM(COALESCE(d.delta_scaled, 0)) OVER w AS mrr_scaled,
         SUM(COALESCE(d.delta_subscriptions, 0)) OVER w AS active_subscriptions,
         SUM(COALESCE(d.delta_customers, 0)) OVER w AS active_customers
  FROM months m CROSS JOIN plans p
  LEFT JOIN (
    SELECT currency, price, month_start, SUM(delta_scaled) AS delta_scaled,
           SUM(delta_subscriptions) AS delta_subscriptions, SUM(delta_customers) AS delta_customers
    FROM plan_deltas GROUP BY 1, 2, 3
  ) d ON d.month_start = m.month_start AND d.currency = p.currency AND d.price = p.price
  WINDOW w AS (PARTITION BY p.currency, p.price ORDER BY m.month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT FORMAT_TIMESTAMP('%Y-%m', f.month_start, 'UTC') AS month, f.currency, pr.product, f.price,
       CAST({{rhe:f.mrr_scaled|86486400000}} AS INT64) AS mrr,
       CAST(f.active_subscriptions AS INT64) AS active_subscriptions,
       CAST(f.active_customers AS INT64) AS active_customers
FROM filled f
LEFT JOIN {{prices}} pr ON pr.id = f.price
WHERE f.active_subscriptions > 0
ORDER BY month, f.currency, f.price
