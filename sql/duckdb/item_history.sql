-- item_history: every version of every invoiced subscription item, from its invoice lines:
-- the price and quantity it had from effective_at until the next version (the last one until
-- {{end_of_time}}). It depends on the invoice lines alone, so `mrr` computes it once, when a
-- snapshot is written, into the snapshot's derived table `item_history` (its manifest entry
-- names this file's sha256, and `mrr snapshots verify` recomputes it), and item_values reads
-- that instead of the invoice lines (26 M rows at 1 M subscriptions x 60 months). A snapshot
-- without it, or derived by another version of this file, computes it inline here.
--
-- Columns: subscription, item, effective_at, until, price, quantity
--
-- DuckDB only: sql/bigquery/item_values.sql computes the same rows inline (its line_events,
-- item_lines and line_changes), from the same raw tables. Dialect changes there:
--   line_events is NOT MATERIALIZED (read twice, by columns, rather than 26 M rows held in memory).
WITH
-- Each line says which price and quantity an item had from the start of its period; a
-- proration credit with no matching charge removes the item. Pending proration items
-- (create_prorations, not invoiced yet) are the lines the next invoice will carry, dated at
-- the change: they date a change exactly, whatever events remain.
line_events AS NOT MATERIALIZED (
  SELECT l.subscription, l.subscription_item AS item, l.period_start AS effective_at,
         CASE WHEN l.proration AND l.amount < 0 THEN NULL ELSE l.price END AS price,
         CASE WHEN l.proration AND l.amount < 0 THEN NULL ELSE l.quantity END AS quantity,
         CASE WHEN l.proration AND l.amount < 0 THEN 1 ELSE 0 END AS credit, l.invoice, l.line_index
  FROM {{invoice_lines}} l
  WHERE l.parent_type = 'subscription_item_details' AND l.subscription IS NOT NULL AND l.subscription_item IS NOT NULL
  UNION ALL
  SELECT p.subscription, p.subscription_item, p.period_start,
         CASE WHEN p.amount < 0 THEN NULL ELSE p.price END,
         CASE WHEN p.amount < 0 THEN NULL ELSE p.quantity END,
         CASE WHEN p.amount < 0 THEN 1 ELSE 0 END, p.id, 0
  FROM {{pending_invoice_items}} p
  WHERE p.proration AND p.subscription IS NOT NULL AND p.subscription_item IS NOT NULL
),
-- Most items never change: every line repeats one price and quantity, and the item's history
-- is its first line. Only the others go through the window pass below (at 26 M lines its sort
-- was most of the report's time). Stripe names the item on every item line; a semi-join
-- (no OR) lets DuckDB skip the second read of the lines when no item changes.
item_lines AS (
  SELECT item, ANY_VALUE(subscription) AS subscription, MIN(effective_at) AS first_at,
         MIN(price) AS price, MIN(quantity) AS quantity,
         MAX(credit) = 1 OR COUNT(price) < COUNT(*) OR COUNT(quantity) < COUNT(*)
           OR MIN(price) <> MAX(price) OR MIN(quantity) <> MAX(quantity) AS changes
  FROM line_events
  GROUP BY item
)
-- One window pass over the items that change: of the lines starting at one instant the first
-- counts (charges before credits), and only when it changes the item's price or quantity (or
-- follows an instant with several lines, where the previous row may not be that instant's
-- first). A renewal repeats the item as it was; keeping every one made item_values' range join
-- quadratic in the number of billing periods (60 monthly periods: 60 x 60 rows per item).
-- Each version of an item holds until the next; the last (and an item that never changes)
-- until {{end_of_time}}, not NULL, which keeps item_values' joins equality joins.
SELECT subscription, item, first_at AS effective_at, {{end_of_time}} AS until, price, quantity
FROM item_lines WHERE NOT changes
UNION ALL
SELECT subscription, item, effective_at,
       LEAD(effective_at, 1, {{end_of_time}}) OVER (PARTITION BY item ORDER BY effective_at) AS until, price, quantity
FROM (
  SELECT *,
         LAG(effective_at) OVER w AS previous_at,
         LAG(effective_at, 2) OVER w AS before_previous_at,
         LAG(price) OVER w AS previous_price,
         LAG(quantity) OVER w AS previous_quantity
  FROM line_events
  WHERE item IN (SELECT item FROM item_lines WHERE changes)
  WINDOW w AS (PARTITION BY item ORDER BY effective_at, credit, invoice, line_index)
)
WHERE previous_at IS DISTINCT FROM effective_at
  AND (previous_at IS NULL OR price IS DISTINCT FROM previous_price OR quantity IS DISTINCT FROM previous_quantity
       OR before_previous_at IS NOT DISTINCT FROM previous_at)
