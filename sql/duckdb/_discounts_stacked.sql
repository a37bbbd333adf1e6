-- _discounts_stacked: a subscription whose discounts mrr cannot value yet (the first one
-- only), by `problem`:
--   several: an owner (the subscription, or one of its items) lists several discounts at once;
--   mixed:   an item-level discount (D7) and a discount of the subscription's own or of its
--            customer's that may apply at the same time, not both listed by their owners
--            now (or the second its customer's, not outranked by an own one listed since):
--            the check cannot see one of two taken off
--            (D2), so only windows that surely end first rule a pair out (a repeating
--            coupon's `end`, or the next discount of the same level, which replaces it: D5);
--   mixed_kinds: both listed now, but the subscription's cannot take its part of what the
--            item's left exactly (an amount off after a percent, or two percents whose
--            product is finer than hundredths of a percent);
--   unknown: an item lists a discount the snapshot has no object for (a snapshot older than
--            schema version 7, which did not read item-level discounts);
--   unplaced: an item-level discount whose subscription the snapshot does not know (only from
--            a discount event that names none: the pull takes it from the item or line).
-- Stripe allows the first two ("The discounts applied to the subscription. Subscription item
-- discounts are applied before subscription discounts."; several of one level apply in the
-- list's order, each on what the ones before left: docs/stripe-behaviour.md, D5), but
-- item_values cannot yet tell a stack from a replacement, and a percent after a percent would
-- need a finer scale than it keeps. Without this
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
-- Each discount's window as item_values bounds it at the latest: to its repeating coupon's
-- `end`, or to the start of the next discount of its level; with its coupon's percent and
-- whether its owner lists it now.
windows AS (
  SELECT t.subscription, t.item, t.discount, t.start, t.inherited, c.percent_off_hundredths AS percent,
         EXISTS (
           SELECT 1 FROM {{subscription_discounts}} l WHERE l.owner = COALESCE(t.item, t.subscription) AND l.discount = t.discount
         ) AS listed,
         LEAST(
           COALESCE(CASE WHEN c.duration = 'repeating' THEN t."end" END, 'infinity'::TIMESTAMPTZ),
           COALESCE(LEAD(t.start) OVER (PARTITION BY t.subscription, t.inherited, t.item ORDER BY t.start, t.discount),
                    'infinity'::TIMESTAMPTZ)
         ) AS ends_by
  FROM {{_discount_targets}} t LEFT JOIN {{coupons}} c ON c.id = t.coupon
),
-- An item's discount and its subscription's own at once are valued (the item's first) when
-- both are listed now, so that neither was taken off unseen (an invoice's total shows only
-- when both are gone; a snapshot built from events keeps the lists as a pull would, and
-- sees every removal since its base in the events), and the second can take its part exactly: not an amount off after a
-- percent, nor a percent after a percent whose product is finer than hundredths of a percent.
mixed AS (
  SELECT i.subscription, i.item AS owner, i.discount || ' with ' || MIN(w.discount) AS discounts,
         CASE WHEN BOOL_AND(i.listed AND w.listed AND NOT w.inherited) THEN 'mixed_kinds' ELSE 'mixed' END AS problem
  FROM windows i JOIN windows w ON w.subscription = i.subscription AND w.item IS NULL
  WHERE i.item IS NOT NULL AND i.start < w.ends_by AND w.start < i.ends_by
    -- A customer's discount never applies while the subscription has one of its own (D3):
    -- none from when an own one listed now (so never taken off) had started.
    AND NOT (w.inherited AND EXISTS (
      SELECT 1 FROM windows o
      WHERE o.subscription = i.subscription AND o.item IS NULL AND NOT o.inherited AND o.listed
        AND o.start <= GREATEST(i.start, w.start)
    ))
    AND NOT (i.listed AND w.listed AND NOT w.inherited
             AND NOT (i.percent IS NOT NULL AND w.percent IS NULL)
             AND (i.percent IS NULL OR w.percent IS NULL OR (i.percent * w.percent) % 10000 = 0))
  GROUP BY i.subscription, i.item, i.discount
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
