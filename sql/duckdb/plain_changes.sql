-- plain_changes: every instant of every plain subscription (one item over its life, no
-- discount, no uninvoiced change: `plain` in item_instants) with its value and the change from
-- the instant before, as subscription_changes computes them (_subscription_rows), every
-- instant kept, and whether the subscription is canceled. A plain subscription's value
-- depends on its own objects alone: not on the metric options (no discount; a cancellation
-- counts only with --churn-at cancel, under which subscription_changes values a canceled
-- one itself) nor on the as-of instant, which only cuts its instants (each row looks back
-- only, and carries the next instant, by which a report marks a month's last). So `mrr`
-- derives it once, when a snapshot is written (src/engine/derived.rs), with item_values'
-- own rules (rendered here over every instant), and a report values only the others: at 1 M
-- subscriptions x 60 months item_values and the window pass over its rows took 1.2 s of
-- every report.
--
-- Columns: subscription, customer, currency, changed_at, delta_cents, delta_frac,
--          delta_counting, value_cents, value_frac, counting, nth, month_first, next_instant,
--          single_item, price, previous_price, canceled
--
-- DuckDB only: sql/bigquery/subscription_changes.sql computes every subscription's rows.
WITH
valued AS (
  SELECT subscription, customer, currency, instant, value_cents, value_frac, TRUE AS single_item, price
  FROM {{item_values}}
  WHERE subscription IN (SELECT subscription FROM {{item_instants}} WHERE plain)
)
SELECT r.*, s.canceled_at IS NOT NULL AS canceled
FROM {{_subscription_rows}} r
JOIN {{subscriptions}} s ON s.id = r.subscription
