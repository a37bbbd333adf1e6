-- uninvoiced_items: the current items whose price or quantity no invoice line shows yet, and
-- the invoiced items no longer there (price and quantity NULL), of running subscriptions that
-- have invoice lines. The contract's "Now": a change counts from when it was made, not from
-- the invoice that will bill it (proration_behavior=none, or create_prorations pending until
-- the next renewal). It depends on the raw tables and item_history alone, never on the as-of
-- instant or the metric options, so `mrr` derives it once, when a snapshot is written, like
-- item_history (src/engine/derived.rs): at 1 M subscriptions its full outer join of every
-- current item with every invoiced one was a sixth of item_values, for a handful of rows.
--
-- Columns: subscription, item, price, quantity, last_invoiced_at (its subscription's newest
--          invoice, which dates the change when no event does: item_values)
--
-- DuckDB only: sql/bigquery/item_values.sql computes the same rows inline (its invoiced_now,
-- current_items, uninvoiced and last_invoiced), from the same raw tables.
WITH
subs AS (
  SELECT id AS subscription, ended_at
  FROM {{subscriptions}}
  WHERE status NOT IN ('incomplete', 'incomplete_expired', 'paused')
),
-- Uninvoiced: a current item whose price or quantity differs from its last invoiced version
-- (metered items have no quantity to compare), a new item, and an invoiced item no longer there.
invoiced_now AS (
  SELECT subscription, item, price, quantity FROM {{item_history}} WHERE until = {{end_of_time}} AND price IS NOT NULL
),
current_items AS (
  SELECT si.subscription, si.id AS item, si.price, si.quantity
  FROM {{subscription_items}} si JOIN subs s ON s.subscription = si.subscription
  WHERE s.ended_at IS NULL AND si.subscription IN (SELECT subscription FROM {{item_history}})
),
uninvoiced AS (
  SELECT COALESCE(c.subscription, i.subscription) AS subscription, COALESCE(c.item, i.item) AS item, c.price, c.quantity
  FROM current_items c
  FULL OUTER JOIN invoiced_now i ON i.item = c.item
  WHERE CASE
    WHEN c.item IS NULL THEN i.subscription IN (SELECT subscription FROM current_items)
    WHEN i.item IS NULL THEN TRUE
    ELSE c.price <> i.price OR (c.quantity IS NOT NULL AND c.quantity IS DISTINCT FROM i.quantity)
  END
),
-- Read here once rather than on every report: finding a few subscriptions' newest invoices
-- reads the subscription of every invoice (0.5 s at 1 M subscriptions x 60 months).
last_invoiced AS (
  SELECT subscription, MAX(created) AS invoiced_at
  FROM {{invoices}} WHERE subscription IN (SELECT subscription FROM uninvoiced) GROUP BY 1
)
SELECT u.subscription, u.item, u.price, u.quantity, l.invoiced_at AS last_invoiced_at
FROM uninvoiced u LEFT JOIN last_invoiced l ON l.subscription = u.subscription
