-- seed_spans: every subscription seed_mrr counts, with what it counts for: its customer and
-- currency, its *current* items' amount x 12 (annual prices / 12, every other interval as if
-- monthly, as the original dashboard's query values them), the month it starts counting and
-- the month after it stops, and whether its customer has another subscription in the
-- currency (shared_customers). It depends on the raw tables alone (a subscription's current
-- status and items, never the as-of instant or the metric options), so `mrr` derives it once,
-- when a snapshot is written (src/engine/derived.rs): a report no longer joins every current
-- item with its price and its subscription and groups them by subscription (0.45 s at 1 M
-- subscriptions, most of seed_mrr's time).
--
-- Columns: customer, currency, amount_x12, from_month, until_month, shared
--
-- DuckDB only: sql/bigquery/seed_mrr.sql computes the same rows inline (its subs, amounts and
-- spans), from the same raw tables; the dialect changes are seed_mrr's (sql/duckdb/seed_mrr.sql).
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
)
SELECT s.customer, s.currency, COALESCE(a.amount_x12, 0) AS amount_x12,
       date_trunc('month', make_timestamp(epoch_us(s.created))) AS from_month,
       date_trunc('month', make_timestamp(epoch_us(s.gone_at))) + INTERVAL 1 MONTH AS until_month,
       sh.customer IS NOT NULL AS shared
FROM subs s
LEFT JOIN amounts a ON a.subscription = s.id
LEFT JOIN {{shared_customers}} sh ON sh.customer = s.customer AND sh.currency = s.currency
