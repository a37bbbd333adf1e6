-- seed_mrr: a faithful port of the original dashboard's query, kept to show where the old
-- definition goes wrong. A subscription counts in month M when it was created by the end of
-- M, was not ended/canceled before M began, and its *current* status is active, past_due or
-- canceled (trialing and unpaid excluded); its *current* items count at amount x quantity,
-- annual prices / 12, every other interval as if monthly; coupons ignored. One deviation:
-- rows are per currency instead of silently mixing currencies.
--
-- Columns: month, currency, active_subscriptions, active_customers, mrr_amount, mom_change
--
-- DuckDB port of sql/bigquery/seed_mrr.sql. Dialect changes: generate_series, strftime,
-- CAST(SUM(x) AS BIGINT), as INT64 (see item_values), `//` in the rounding, date_trunc on a UTC TIMESTAMP
-- (`make_timestamp(epoch_us(t))`, see mrr_by_customer)
-- and `+ INTERVAL 1 MONTH` on it instead of DATE_TRUNC / DATE_ADD on DATEs, CAST(bool AS
-- INTEGER) instead of INT64; the derived table shared_customers
-- (sql/duckdb/shared_customers.sql) for BigQuery's CTE shared.
WITH
subs AS (
  SELECT id, customer, currency, created, COALESCE(ended_at, canceled_at) AS gone_at
  FROM {{subscriptions}}
  WHERE status IN ('active', 'past_due', 'canceled')
),
amounts AS (
  -- x12 keeps annual / 12 exact until the monthly total is rounded.
  SELECT si.subscription,
         CAST(SUM(p.unit_amount * si.quantity * CASE WHEN p.recurring_interval = 'year' THEN 1 ELSE 12 END) AS BIGINT) AS amount_x12
  FROM {{subscription_items}} si JOIN {{prices}} p ON p.id = si.price
  GROUP BY 1
),
currencies AS (SELECT DISTINCT currency FROM {{subscriptions}}),
months AS (
  SELECT m AS month_start
  FROM (SELECT date_trunc('month', make_timestamp(epoch_us(MIN(created)))) AS first_start FROM {{subscriptions}}) b,
       generate_series(b.first_start, date_trunc('month', make_timestamp(epoch_us({{as_of}}))), INTERVAL 1 MONTH) t(m)
),
-- The spine's two conditions make a subscription count from the month it was created through
-- the month it ended, so it changes the totals twice: where it starts counting and the month
-- after it stops. Summing those change points gives the spine's answer without the months x
-- subscriptions grid (60 M rows at 1 M subscriptions over 60 months).
spans AS (
  SELECT s.customer, s.currency, COALESCE(a.amount_x12, 0) AS amount_x12,
         date_trunc('month', make_timestamp(epoch_us(s.created))) AS from_month,
         date_trunc('month', make_timestamp(epoch_us(s.gone_at))) + INTERVAL 1 MONTH AS until_month
  FROM subs s LEFT JOIN amounts a ON a.subscription = s.id
),
changes AS (
  SELECT customer, currency, from_month AS month_start, 1 AS delta_subscriptions, amount_x12 AS delta_x12
  FROM spans WHERE until_month IS NULL OR until_month > from_month
  UNION ALL
  SELECT customer, currency, until_month, -1, -amount_x12 FROM spans WHERE until_month > from_month
),
-- A customer counts in a month while at least one of its subscriptions does: a customer with
-- one subscription (in the currency) exactly while it does, so only the others need a running
-- count per customer (a window pass over every change point at 1 M subscriptions). Those
-- with several subscriptions of any status, derived once per snapshot (a few more than
-- BigQuery's, which counts the spans' subscriptions: the running count is exact for them too).
shared AS (
  SELECT * FROM {{shared_customers}}
),
by_customer AS (
  SELECT currency, month_start, delta_subscriptions, delta_x12,
         CAST(SUM(delta_subscriptions) OVER (PARTITION BY customer, currency ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS counting
  FROM (
    SELECT c.customer, c.currency, c.month_start, CAST(SUM(c.delta_subscriptions) AS BIGINT) AS delta_subscriptions,
           CAST(SUM(c.delta_x12) AS BIGINT) AS delta_x12
    FROM changes c JOIN shared s ON s.customer = c.customer AND s.currency = c.currency
    GROUP BY 1, 2, 3
  )
),
per_month AS (
  SELECT currency, month_start, SUM(delta_subscriptions) AS delta_subscriptions, SUM(delta_x12) AS delta_x12,
         SUM(delta_customers) AS delta_customers
  FROM (
    SELECT c.currency, c.month_start, c.delta_subscriptions, c.delta_x12, c.delta_subscriptions AS delta_customers
    FROM changes c LEFT JOIN shared s ON s.customer = c.customer AND s.currency = c.currency
    WHERE s.customer IS NULL
    UNION ALL
    SELECT currency, month_start, delta_subscriptions, delta_x12,
           CAST(counting > 0 AS INTEGER) - CAST(counting - delta_subscriptions > 0 AS INTEGER)
    FROM by_customer
  )
  GROUP BY 1, 2
),
filled AS (
  SELECT m.month_start, c.currency,
         SUM(COALESCE(p.delta_subscriptions, 0)) OVER w AS active_subscriptions,
         SUM(COALESCE(p.delta_customers, 0)) OVER w AS active_customers,
         SUM(COALESCE(p.delta_x12, 0)) OVER w AS amount_x12
  FROM months m CROSS JOIN currencies c
  LEFT JOIN per_month p ON p.month_start = m.month_start AND p.currency = c.currency
  WINDOW w AS (PARTITION BY c.currency ORDER BY m.month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
rounded AS (
  SELECT month_start, currency, active_subscriptions, active_customers, {{round_half_even:amount_x12|12}} AS mrr_amount FROM filled
)
SELECT strftime(month_start, '%Y-%m') AS month, currency,
       CAST(active_subscriptions AS BIGINT) AS active_subscriptions,
       CAST(active_customers AS BIGINT) AS active_customers,
       CAST(mrr_amount AS BIGINT) AS mrr_amount,
       CAST(mrr_amount - COALESCE(LAG(mrr_amount) OVER (PARTITION BY currency ORDER BY month_start), 0) AS BIGINT) AS mom_change
FROM rounded
ORDER BY month, currency
