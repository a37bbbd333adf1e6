-- mrr_monthly: every metric of the contract (docs/metrics.md) per month and currency, from
-- the first month with a change to the month of {{as_of}} (measured at {{as_of}}).
-- Money in minor units (BIGINT); ratios in percent, rounded half to even to 2 decimals.
--
-- Columns: month, currency, mrr, arr, active_subscriptions, active_customers, arpa, new_mrr,
--          reactivation_mrr, expansion_mrr, contraction_mrr, churned_mrr, mom_change,
--          mom_change_pct, customer_churn_rate, net_revenue_retention
--
-- DuckDB port of sql/bigquery/mrr_monthly.sql. Dialect changes:
--   generate_series over months instead of GENERATE_DATE_ARRAY; DECIMAL(20, 2) via
--   `* 0.01` (DuckDB's `/` on decimals yields DOUBLE); strptime to read months back;
--   date_trunc on a UTC TIMESTAMP (`make_timestamp(epoch_us(t))`, see
--   mrr_by_customer).
WITH
customers AS (SELECT * FROM {{mrr_by_customer}}),
currencies AS (SELECT DISTINCT currency FROM {{subscriptions}}),
months AS (
  SELECT strftime(m, '%Y-%m') AS month
  FROM (SELECT MIN(month) AS first_month FROM customers) b,
       generate_series(strptime(b.first_month || '-01', '%Y-%m-%d'), date_trunc('month', make_timestamp(epoch_us({{as_of}}))), INTERVAL 1 MONTH) t(m)
),
per_month AS (
  SELECT month, currency,
         SUM(mrr - previous_mrr) AS delta_mrr,
         SUM(CASE WHEN mrr > 0 THEN 1 ELSE 0 END - CASE WHEN previous_mrr > 0 THEN 1 ELSE 0 END) AS delta_customers,
         SUM(active_subscriptions - previous_subscriptions) AS delta_subscriptions,
         SUM(CASE WHEN movement = 'new' THEN mrr ELSE 0 END) AS new_mrr,
         SUM(CASE WHEN movement = 'reactivation' THEN mrr ELSE 0 END) AS reactivation_mrr,
         SUM(CASE WHEN movement = 'expansion' THEN mrr - previous_mrr ELSE 0 END) AS expansion_mrr,
         SUM(CASE WHEN movement = 'contraction' THEN previous_mrr - mrr ELSE 0 END) AS contraction_mrr,
         SUM(CASE WHEN movement = 'churn' THEN previous_mrr ELSE 0 END) AS churned_mrr,
         SUM(CASE WHEN movement = 'churn' THEN 1 ELSE 0 END) AS churned_customers
  FROM customers
  GROUP BY 1, 2
),
filled AS (
  SELECT m.month, c.currency,
         COALESCE(p.delta_mrr, 0) AS mom_change,
         COALESCE(p.new_mrr, 0) AS new_mrr,
         COALESCE(p.reactivation_mrr, 0) AS reactivation_mrr,
         COALESCE(p.expansion_mrr, 0) AS expansion_mrr,
         COALESCE(p.contraction_mrr, 0) AS contraction_mrr,
         COALESCE(p.churned_mrr, 0) AS churned_mrr,
         COALESCE(p.churned_customers, 0) AS churned_customers,
         COALESCE(p.delta_customers, 0) AS delta_customers,
         SUM(COALESCE(p.delta_mrr, 0)) OVER w AS mrr,
         SUM(COALESCE(p.delta_customers, 0)) OVER w AS active_customers,
         SUM(COALESCE(p.delta_subscriptions, 0)) OVER w AS active_subscriptions
  FROM months m CROSS JOIN currencies c
  LEFT JOIN per_month p ON p.month = m.month AND p.currency = c.currency
  WINDOW w AS (PARTITION BY c.currency ORDER BY m.month ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
with_previous AS (
  SELECT *, mrr - mom_change AS previous_mrr, active_customers - delta_customers AS previous_customers FROM filled
)
SELECT month, currency,
       CAST(mrr AS BIGINT) AS mrr,
       CAST(12 * mrr AS BIGINT) AS arr,
       CAST(active_subscriptions AS BIGINT) AS active_subscriptions,
       CAST(active_customers AS BIGINT) AS active_customers,
       CAST(CASE WHEN active_customers > 0 THEN {{round_half_even:mrr|active_customers}} END AS BIGINT) AS arpa,
       CAST(new_mrr AS BIGINT) AS new_mrr,
       CAST(reactivation_mrr AS BIGINT) AS reactivation_mrr,
       CAST(expansion_mrr AS BIGINT) AS expansion_mrr,
       CAST(contraction_mrr AS BIGINT) AS contraction_mrr,
       CAST(churned_mrr AS BIGINT) AS churned_mrr,
       CAST(mom_change AS BIGINT) AS mom_change,
       CASE WHEN previous_mrr <> 0 THEN CAST({{round_half_even:mom_change * 10000|previous_mrr}} AS DECIMAL(20, 0)) * 0.01 END AS mom_change_pct,
       CASE WHEN previous_customers <> 0 THEN CAST({{round_half_even:churned_customers * 10000|previous_customers}} AS DECIMAL(20, 0)) * 0.01 END AS customer_churn_rate,
       CASE WHEN previous_mrr <> 0 THEN CAST({{round_half_even:(previous_mrr + expansion_mrr - contraction_mrr - churned_mrr) * 10000|previous_mrr}} AS DECIMAL(20, 0)) * 0.01 END AS net_revenue_retention
FROM with_previous
ORDER BY month, currency
