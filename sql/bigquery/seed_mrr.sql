-- seed_mrr: a faithful port of the original dashboard's query, kept to show where the old
-- definition goes wrong. A subscription counts in month M when it was created by the end of
-- M, was not ended/canceled before M began, and its *current* status is active, past_due or
-- canceled (trialing and unpaid excluded); its *current* items count at amount x quantity,
-- annual prices / 12, every other interval as if monthly; coupons ignored. One deviation:
-- rows are per currency instead of silently mixing currencies.
--
-- Columns: month, currency, active_subscriptions, active_customers, mrr_amount, mom_change
--
-- BigQuery Standard SQL; the source that sql/duckdb/seed_mrr.sql ports.
WITH
subs AS (
  SELECT id, customer, currency, created, COALESCE(ended_at, canceled_at) AS gone_at
  FROM {{subscriptions}}
  WHERE status IN ('active', 'past_due', 'canceled')
),
amounts AS (
  -- x12 keeps annual / 12 exact until the monthly total is rounded.
  SELECT si.subscription,
         SUM(p.unit_amount * si.quantity * CASE WHEN p.recurring_interval = 'year' THEN 1 ELSE 12 END) AS amount_x12
  FROM {{subscription_items}} si JOIN {{prices}} p ON p.id = si.price
  GROUP BY 1
),
currencies AS (SELECT DISTINCT currency FROM {{subscriptions}}),
months AS (
  SELECT m AS month_start
  FROM (SELECT DATE(TIMESTAMP_TRUNC(MIN(created), MONTH)) AS first_start FROM {{subscriptions}}) b,
       UNNEST(GENERATE_DATE_ARRAY(b.first_start, DATE_TRUNC(DATE({{as_of}}), MONTH), INTERVAL 1 MONTH)) AS m
),
counted AS (
  SELECT m.month_start, s.currency, s.id, s.customer, COALESCE(a.amount_x12, 0) AS amount_x12
  FROM months m
  JOIN subs s ON s.created < TIMESTAMP(DATE_ADD(m.month_start, INTERVAL 1 MONTH))
             AND (s.gone_at IS NULL OR s.gone_at >= TIMESTAMP(m.month_start))
  LEFT JOIN amounts a ON a.subscription = s.id
),
per_month AS (
  SELECT m.month_start, c.currency,
         COUNT(x.id) AS active_subscriptions,
         COUNT(DISTINCT x.customer) AS active_customers,
         COALESCE(SUM(x.amount_x12), 0) AS amount_x12
  FROM months m CROSS JOIN currencies c
  LEFT JOIN counted x ON x.month_start = m.month_start AND x.currency = c.currency
  GROUP BY 1, 2
),
rounded AS (
  SELECT month_start, currency, active_subscriptions, active_customers, {{rhe:amount_x12|12}} AS mrr_amount FROM per_month
)
SELECT FORMAT_DATE('%Y-%m', month_start) AS month, currency,
       CAST(active_subscriptions AS INT64) AS active_subscriptions,
       CAST(active_customers AS INT64) AS active_customers,
       CAST(mrr_amount AS INT64) AS mrr_amount,
       CAST(mrr_amount - COALESCE(LAG(mrr_amount) OVER (PARTITION BY currency ORDER BY month_start), 0) AS INT64) AS mom_change
FROM rounded
ORDER BY month, currency
