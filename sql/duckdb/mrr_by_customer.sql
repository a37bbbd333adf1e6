-- mrr_by_customer: each customer's MRR at the end of every month in which it changed
-- (the basis of the movements; months without a row carry the previous value).
-- MRR is rounded half to even to cents once per customer-month.
--
-- Columns: month (YYYY-MM), customer, currency, mrr, previous_mrr, active_subscriptions,
--          previous_subscriptions, movement (new, reactivation, expansion, contraction, churn, none)
--
-- DuckDB port of sql/bigquery/mrr_by_customer.sql. Dialect changes:
--   months as `date_trunc('month', make_timestamp(epoch_us(t)))` and strftime instead of
--   TIMESTAMP_TRUNC and FORMAT_TIMESTAMP: a UTC TIMESTAMP keeps DuckDB in UTC without its ICU
--   extension (not built in), and from the epoch it is ~15x cheaper per row than the equal
--   `t::TIMESTAMP` cast; CAST(SUM(x) AS BIGINT), as INT64 (see item_values); the derived table
--   shared_customers (sql/duckdb/shared_customers.sql, computed once per snapshot from the same
--   raw table) stands for BigQuery's CTE shared. Port change: each change's month is
--   subscription_changes' month_start (DuckDB's carries it, truncated so in
--   _subscription_rows), where BigQuery truncates changed_at here.
WITH
changes AS (
  SELECT c.*,
         CAST(c.delta_cents <> 0 OR c.delta_frac <> 0 OR c.delta_counting <> 0 AS INTEGER) AS changed,
         s.customer IS NULL AS sole
  FROM {{subscription_changes}} c
  LEFT JOIN {{shared_customers}} s ON s.customer = c.customer AND s.currency = c.currency
),
-- A customer with one subscription in a currency has that subscription's value: its value at
-- the end of a month is on the subscription's last row in the month, and only a month with
-- several rows needs a group (a running sum over every customer-month cost 0.75 s at 1 M
-- subscriptions, and a group of them 0.35 s). Its nth is its subscription's row's place: above
-- 1 after the first, as a shared customer's month count is after its first month.
sole AS (
  SELECT customer, currency, month_start, delta_cents, delta_frac, delta_counting,
         value_cents AS mrr_cents, value_frac AS mrr_frac, counting AS active_subscriptions, nth
  FROM changes
  WHERE sole AND month_first AND month_last AND changed = 1
  UNION ALL
  SELECT customer, currency, month_start,
         CAST(SUM(delta_cents) AS BIGINT), CAST(SUM(delta_frac) AS BIGINT), CAST(SUM(delta_counting) AS BIGINT),
         CAST(SUM(CASE WHEN month_last THEN value_cents END) AS BIGINT),
         CAST(SUM(CASE WHEN month_last THEN value_frac END) AS BIGINT),
         CAST(SUM(CASE WHEN month_last THEN counting END) AS BIGINT),
         MIN(nth)
  FROM changes
  WHERE sole AND NOT (month_first AND month_last)
  GROUP BY 1, 2, 3
  HAVING MAX(changed) = 1
),
-- A customer with several subscriptions in a currency: its value is the running sum of its
-- subscriptions' changes.
per_month AS (
  SELECT customer, currency, month_start,
         CAST(SUM(delta_cents) AS BIGINT) AS delta_cents, CAST(SUM(delta_frac) AS BIGINT) AS delta_frac,
         CAST(SUM(delta_counting) AS BIGINT) AS delta_counting
  FROM changes
  WHERE NOT sole AND changed = 1
  GROUP BY 1, 2, 3
),
running AS (
  SELECT customer, currency, month_start, delta_cents, delta_frac, delta_counting,
         CAST(SUM(delta_cents) OVER w AS BIGINT) AS mrr_cents,
         CAST(SUM(delta_frac) OVER w AS BIGINT) AS mrr_frac,
         CAST(SUM(delta_counting) OVER w AS BIGINT) AS active_subscriptions,
         COUNT(*) OVER w AS nth
  FROM per_month
  WINDOW w AS (PARTITION BY customer, currency ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
  UNION ALL
  SELECT * FROM sole
),
-- Each month's value and the value before it (the running value less the month's change), each
-- rounded to cents: one window pass, where a second one over the rounded values cost 0.2 s at
-- 1 M subscriptions.
history AS (
  SELECT customer, currency, month_start, active_subscriptions, nth,
         {{cents:mrr_cents|mrr_frac}} AS mrr,
         {{cents:mrr_cents - delta_cents|mrr_frac - delta_frac}} AS previous_mrr,
         active_subscriptions - delta_counting AS previous_subscriptions
  FROM running
),
-- A customer that starts paying after its first month, and paid in an earlier one, is
-- reactivated: few rows, each checked against its customer's earlier months.
paid_again AS (
  SELECT r.customer, r.currency, r.month_start
  FROM history r
  WHERE r.previous_mrr = 0 AND r.mrr > 0 AND r.nth > 1
    AND EXISTS (
      SELECT 1 FROM history p
      WHERE p.customer = r.customer AND p.currency = r.currency AND p.month_start < r.month_start AND p.mrr > 0
    )
)
SELECT strftime(h.month_start, '%Y-%m') AS month, h.customer, h.currency,
       CAST(h.mrr AS BIGINT) AS mrr,
       CAST(h.previous_mrr AS BIGINT) AS previous_mrr,
       CAST(h.active_subscriptions AS BIGINT) AS active_subscriptions,
       CAST(h.previous_subscriptions AS BIGINT) AS previous_subscriptions,
       CASE
         WHEN h.previous_mrr = 0 AND h.mrr > 0 AND pa.customer IS NOT NULL THEN 'reactivation'
         WHEN h.previous_mrr = 0 AND h.mrr > 0 THEN 'new'
         WHEN h.previous_mrr > 0 AND h.mrr = 0 THEN 'churn'
         WHEN h.mrr > h.previous_mrr THEN 'expansion'
         WHEN h.mrr < h.previous_mrr THEN 'contraction'
         ELSE 'none'
       END AS movement
FROM history h
LEFT JOIN paid_again pa ON pa.customer = h.customer AND pa.currency = h.currency AND pa.month_start = h.month_start
