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
-- INTEGER) instead of INT64. Port change: the derived table seed_spans
-- (sql/duckdb/seed_spans.sql, computed once per snapshot from the same raw tables) stands for
-- BigQuery's CTEs subs, amounts and spans, and marks the customers of BigQuery's CTE shared.
WITH
currencies AS (SELECT DISTINCT currency FROM {{subscriptions}}),
months AS (
  SELECT m AS month_start
  FROM (SELECT date_trunc('month', make_timestamp(epoch_us(MIN(created)))) AS first_start FROM {{subscriptions}}) b,
       generate_series(b.first_start, date_trunc('month', make_timestamp(epoch_us({{as_of}}))), INTERVAL 1 MONTH) t(m)
),
-- The spine's two conditions make a subscription count from the month it was created through
-- the month it ended, so it changes the totals twice: where it starts counting and the month
-- after it stops. Summing those change points gives the spine's answer without the months x
-- subscriptions grid (60 M rows at 1 M subscriptions over 60 months). Each counted
-- subscription's span (BigQuery's subs, amounts and spans) is derived once per snapshot:
-- seed_spans.
spans AS (
  SELECT * FROM {{seed_spans}}
),
changes AS (
  SELECT customer, currency, shared, from_month AS month_start, 1 AS delta_subscriptions, amount_x12 AS delta_x12
  FROM spans WHERE until_month IS NULL OR until_month > from_month
  UNION ALL
  SELECT customer, currency, shared, until_month, -1, -amount_x12 FROM spans WHERE until_month > from_month
),
-- A customer counts in a month while at least one of its subscriptions does: a customer with
-- one subscription (in the currency) exactly while it does, so only the others need a running
-- count per customer (a window pass over every change point at 1 M subscriptions). Those
-- are marked `shared` in seed_spans: the customers with several subscriptions of any status
-- (shared_customers; a few more than BigQuery's shared, which counts the spans' subscriptions:
-- the running count is exact for them too).
by_customer AS (
  SELECT currency, month_start, delta_subscriptions, delta_x12,
         CAST(SUM(delta_subscriptions) OVER (PARTITION BY customer, currency ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS counting
  FROM (
    SELECT c.customer, c.currency, c.month_start, CAST(SUM(c.delta_subscriptions) AS BIGINT) AS delta_subscriptions,
           CAST(SUM(c.delta_x12) AS BIGINT) AS delta_x12
    FROM changes c WHERE c.shared
    GROUP BY 1, 2, 3
  )
),
per_month AS (
  SELECT currency, month_start, SUM(delta_subscriptions) AS delta_subscriptions, SUM(delta_x12) AS delta_x12,
         SUM(delta_customers) AS delta_customers
  FROM (
    SELECT c.currency, c.month_start, c.delta_subscriptions, c.delta_x12, c.delta_subscriptions AS delta_customers
    FROM changes c WHERE NOT c.shared
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
