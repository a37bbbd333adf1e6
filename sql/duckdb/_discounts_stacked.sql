-- _discounts_stacked: a subscription whose discounts mrr cannot value yet (the first one
-- only), by `problem`:
--   several: an owner (the subscription, or one of its items) lists several discounts at once;
--   mixed:   an item-level discount (D7) and a discount of the subscription's own or of its
--            customer's, both ever held by the subscription;
--   unknown: an item lists a discount the snapshot has no object for (a snapshot older than
--            schema version 7, which did not read item-level discounts);
--   unplaced: an item-level discount whose subscription the snapshot does not know (only from
--            a discount event that names none: the pull takes it from the item or line).
-- Stripe allows the first two ("The discounts applied to the subscription. Subscription item
-- discounts are applied before subscription discounts."), but how it stacks several discounts
-- of one level is not in any source we have (docs/stripe-behaviour.md, D5), and an item's
-- after its subscription's would need a finer scale than item_values keeps. Without this
-- check the others would be dropped or, overlapping, counted twice. `mrr report` and
-- `mrr push` stop on it (src/engine/priceable.rs), unless discounts are not applied at all
-- (`--discounts none`).
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
WITH several AS (
  SELECT subscription, owner, STRING_AGG(discount, ', ' ORDER BY position) AS discounts, 'several' AS problem
  FROM {{subscription_discounts}}
  GROUP BY subscription, owner
  HAVING COUNT(*) > 1
),
-- Discounts of a subscription's own or of its customer's (not of one item).
whole AS (
  SELECT subscription, discount FROM {{_discount_targets}} WHERE item IS NULL
),
mixed AS (
  SELECT i.subscription, i.subscription_item AS owner, i.discount || ' with ' || MIN(w.discount) AS discounts,
         'mixed' AS problem
  FROM {{item_discounts}} i JOIN whole w ON w.subscription = i.subscription
  GROUP BY i.subscription, i.subscription_item, i.discount
),
unknown AS (
  SELECT l.subscription, l.owner, l.discount AS discounts, 'unknown' AS problem
  FROM {{subscription_discounts}} l
  WHERE l.owner <> l.subscription
    AND NOT EXISTS (SELECT 1 FROM {{item_discounts}} i WHERE i.discount = l.discount)
),
unplaced AS (
  SELECT '(unknown)' AS subscription, i.subscription_item AS owner, i.discount AS discounts, 'unplaced' AS problem
  FROM {{item_discounts}} i JOIN {{discounts}} d ON d.id = i.discount
  WHERE COALESCE(i.subscription, d.subscription) IS NULL
)
SELECT subscription, owner, discounts, problem
FROM (
  SELECT * FROM several UNION ALL SELECT * FROM mixed UNION ALL SELECT * FROM unknown UNION ALL SELECT * FROM unplaced
)
ORDER BY subscription, owner, problem
LIMIT 1
