-- item_instants: for each subscription whose instants depend on its own objects alone, every
-- item it has at every instant at which its value may change (its items' versions, its start,
-- trial end, end and unpaid instant), with the subscription's customer, currency and dates:
-- item_values' breakpoints and item_at for those subscriptions, which are nearly all. It
-- depends on the raw tables alone, never on the as-of instant or the metric options (the
-- subscriptions whose instants do: an uninvoiced change, dated by the report, are left out;
-- those with a discount or, with --churn-at cancel, a cancellation, item_values leaves out),
-- so `mrr` derives it once, when a snapshot is written (src/engine/derived.rs): finding the
-- instants, the items valid at each and their subscription took 1.1 s of every report at 1 M
-- subscriptions x 60 months, reading them takes 0.2 s. An instant with no item has a row
-- with a NULL item.
--
-- Columns: subscription, instant, item, price, product, per_year, recurring_interval_count,
--          amount, customer, currency, start_date, trial_start, trial_end, ended_at, canceled_at,
--          plain: the subscription has one item over its life (not in several_items) and no
--          discount applies to it (_discount_targets), so its value depends on none of the
--          metric options (the derived table plain_changes holds its changes)
--
-- DuckDB only: sql/bigquery/item_values.sql computes the same rows inline (its breakpoints and
-- item_at, joined to its subs), from the same raw tables; item_values the others', from the
-- same two fragments (_own_instants, _items_at).
WITH
-- An uninvoiced change is dated by the report (item_values' uninvoiced_since).
dated_by_report AS (
  SELECT DISTINCT subscription FROM {{item_versions}} WHERE effective_at IS NULL OR COALESCE(cut_at_change, FALSE)
),
own_subs AS (
  SELECT id AS subscription, customer, currency, start_date, trial_start, trial_end, ended_at, canceled_at
  FROM {{subscriptions}}
  WHERE status NOT IN ('incomplete', 'incomplete_expired', 'paused')
    AND id NOT IN (SELECT subscription FROM dated_by_report)
),
own_versions AS (
  SELECT subscription, item, effective_at, until, price, product, per_year, recurring_interval_count, amount
  FROM {{item_versions}}
  WHERE effective_at < until AND subscription NOT IN (SELECT subscription FROM dated_by_report)
),
own_unpaid AS (
  SELECT * FROM {{unpaid_since}} WHERE subscription NOT IN (SELECT subscription FROM dated_by_report)
),
breakpoints AS (
  SELECT DISTINCT subscription, instant FROM {{_own_instants}} instants
)
SELECT i.*,
       NOT EXISTS (SELECT 1 FROM {{several_items}} m WHERE m.subscription = i.subscription)
         AND NOT EXISTS (SELECT 1 FROM {{_discount_targets}} t WHERE t.subscription = i.subscription) AS plain
FROM {{_items_at}} i
