-- mrr_by_customer: each customer's MRR at the end of every month in which it changed
-- (the basis of the movements; months without a row carry the previous value).
-- MRR is rounded half to even to cents once per customer-month.
--
-- Columns: month (YYYY-MM), customer, currency, mrr, previous_mrr, active_subscriptions,
--          previous_subscriptions, movement (new, reactivation, expansion, contraction, churn, none)
--
-- DuckDB port of sql/bigquery/mrr_by_customer.sql. Dialect changes:
--   date_trunc('month', make_timestamp(epoch_us(t))) / strftime instead of TIMESTAMP_TRUNC /
--   FORMAT_TIMESTAMP: a UTC TIMESTAMP keeps DuckDB in UTC without its ICU extension (not built
--   in), and from the epoch it is ~15x cheaper per row than the equal `t::TIMESTAMP` cast;
--   CAST(SUM(x) AS BIGINT), as INT64 (see item_values).
WITH
per_month AS (
  SELECT customer, currency, date_trunc('month', make_timestamp(epoch_us(changed_at))) AS month_start,
         CAST(SUM(delta_cents) AS BIGINT) AS delta_cents, CAST(SUM(delta_frac) AS BIGINT) AS delta_frac,
         CAST(SUM(delta_counting) AS BIGINT) AS delta_counting
  FROM {{subscription_changes}}
  GROUP BY 1, 2, 3
),
running AS (
  SELECT customer, currency, month_start,
         CAST(SUM(delta_cents) OVER (PARTITION BY customer, currency ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS mrr_cents,
         CAST(SUM(delta_frac) OVER (PARTITION BY customer, currency ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS mrr_frac,
         CAST(SUM(delta_counting) OVER (PARTITION BY customer, currency ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS active_subscriptions
  FROM per_month
),
rounded AS (
  SELECT customer, currency, month_start, active_subscriptions,
         {{cents:mrr_cents|mrr_frac}} AS mrr
  FROM running
),
history AS (
  SELECT *,
         COALESCE(LAG(mrr) OVER (PARTITION BY customer, currency ORDER BY month_start), 0) AS previous_mrr,
         COALESCE(LAG(active_subscriptions) OVER (PARTITION BY customer, currency ORDER BY month_start), 0) AS previous_subscriptions,
         COALESCE(MAX(CASE WHEN mrr > 0 THEN 1 ELSE 0 END) OVER (
           PARTITION BY customer, currency ORDER BY month_start ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS paid_before
  FROM rounded
)
SELECT strftime(month_start, '%Y-%m') AS month, customer, currency,
       CAST(mrr AS BIGINT) AS mrr,
       CAST(previous_mrr AS BIGINT) AS previous_mrr,
       CAST(active_subscriptions AS BIGINT) AS active_subscriptions,
       CAST(previous_subscriptions AS BIGINT) AS previous_subscriptions,
       CASE
         WHEN previous_mrr = 0 AND mrr > 0 AND paid_before = 1 THEN 'reactivation'
         WHEN previous_mrr = 0 AND mrr > 0 THEN 'new'
         WHEN previous_mrr > 0 AND mrr = 0 THEN 'churn'
         WHEN mrr > previous_mrr THEN 'expansion'
         WHEN mrr < previous_mrr THEN 'contraction'
         ELSE 'none'
       END AS movement
FROM history
