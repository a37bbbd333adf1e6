-- billed_prices: every (price, currency) a subscription bills on, with the first such
-- subscription (by id) to name: the current items' and every invoiced version's prices
-- (item_history), in the subscription's currency. It depends on the raw tables alone, so
-- `mrr` derives it once, when a snapshot is written (src/engine/derived.rs): the price check
-- (_priceable) then reads a handful of rows instead of joining 2 M items and versions to
-- the subscriptions (0.3 s at 1 M subscriptions x 60 months).
--
-- Columns: price, currency, subscription
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
SELECT b.price, s.currency, MIN(b.subscription) AS subscription
FROM (
  SELECT price, subscription FROM {{subscription_items}}
  UNION ALL
  SELECT price, subscription FROM {{item_history}} WHERE price IS NOT NULL
) b
JOIN {{subscriptions}} s ON s.id = b.subscription
GROUP BY b.price, s.currency
