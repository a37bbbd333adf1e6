-- _discounts_stacked: a subscription whose discounts mrr cannot value yet (the first one
-- only), by `problem`:
--   several: two discounts of one owner (the subscription, or one of its items) that may
--            apply at the same time, one of them no longer listed by its owner: it was taken
--            off at an instant no invoice total shows (D2). Discounts of one owner that are
--            not listed replace one another (the next one's start ends the one before, D5);
--   several_kinds: an owner lists several (a stack, valued in the list's order, D5) that
--            discount_windows cannot keep exact: an amount off after a percent, two amounts
--            off, a coupon restricted to some products, more than three percents, or percents
--            whose product is finer than hundredths of a percent;
--   mixed:   an item-level discount (D7) and a discount of the subscription's own or of its
--            customer's that may apply at the same time, not both listed by their owners
--            now (a customer lists the one it has; one the customer's, not outranked by an own
--            one listed since):
--            the check cannot see one of two taken off (D2), so only windows that surely
--            end first rule a pair out (a repeating coupon's `end`, or the next discount of
--            the same level, which replaces it: D5);
--   mixed_kinds: both listed now, but the subscription's cannot take its part of what the
--            item's left exactly (an amount off after a percent, or two percents whose
--            product is finer than hundredths of a percent);
--   mixed_stack: an item-level discount and its subscription's at the same time, one of
--            the two owners stacking several;
--   unknown: an item lists a discount the snapshot has no object for (a snapshot older than
--            schema version 7, which did not read item-level discounts);
--   unplaced: an item-level discount whose subscription the snapshot does not know (only from
--            a discount event that names none: the pull takes it from the item or line).
-- Stripe allows all of these ("We support multiple discounts on both subscriptions and
-- subscription items"; "Subscription item discounts are applied before subscription
-- discounts": docs/stripe-behaviour.md, D5, D7). Without this check the others would be
-- dropped or valued wrongly. `mrr report` and `mrr push` stop on it
-- (src/engine/priceable.rs), unless discounts are not applied at all (`--discounts none`).
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
WITH
-- Each discount's window as discount_windows bounds it at the latest: to its repeating
-- coupon's `end`, or, when its owner no longer lists it, to the start of the next discount of
-- its level; with its coupon, its place in its owner's list now (if listed; a customer's
-- discount is listed while the customer has it), and whether that owner lists several.
windows AS (
  SELECT t.subscription, t.item, t.discount, t.coupon, t.start, t.inherited, l.position,
         c.percent_off_hundredths AS percent, c.amount_off,
         l.discount IS NOT NULL OR cn.discount IS NOT NULL AS listed,
         COUNT(l.discount) OVER (PARTITION BY t.subscription, t.inherited, t.item) > 1 AS stacked,
         LEAST(
           COALESCE(CASE WHEN c.duration = 'repeating' THEN t."end" END, 'infinity'::TIMESTAMPTZ),
           CASE WHEN l.discount IS NULL AND cn.discount IS NULL
             THEN COALESCE(LEAD(t.start) OVER (PARTITION BY t.subscription, t.inherited, t.item ORDER BY t.start, t.discount),
                           'infinity'::TIMESTAMPTZ)
             ELSE 'infinity'::TIMESTAMPTZ END
         ) AS ends_by
  FROM {{_discount_targets}} t
  LEFT JOIN {{coupons}} c ON c.id = t.coupon
  LEFT JOIN (SELECT owner, discount, MIN(position) AS position FROM {{subscription_discounts}} GROUP BY 1, 2) l
    ON l.owner = COALESCE(t.item, t.subscription) AND l.discount = t.discount
  LEFT JOIN (SELECT DISTINCT discount FROM {{customer_discounts}}) cn ON t.inherited AND cn.discount = t.discount
),
several AS (
  SELECT a.subscription, COALESCE(a.item, a.subscription) AS owner, a.discount || ', ' || MIN(b.discount) AS discounts,
         'several' AS problem
  FROM windows a
  JOIN windows b
    ON b.subscription = a.subscription AND b.inherited = a.inherited AND b.item IS NOT DISTINCT FROM a.item
       AND (a.start, a.discount) < (b.start, b.discount)
  WHERE a.start < b.ends_by AND b.start < a.ends_by AND NOT (a.listed AND b.listed)
  GROUP BY a.subscription, a.item, a.discount
),
-- Each owner's stack in its list's order, its percents numbered (as discount_windows folds them).
stacks AS (
  SELECT subscription, COALESCE(item, subscription) AS owner, STRING_AGG(discount, ', ' ORDER BY position) AS discounts,
         COUNT(amount_off) AS amounts, COUNT(percent) AS percents,
         MAX(CASE WHEN amount_off IS NOT NULL THEN position END) AS last_amount,
         MIN(CASE WHEN percent IS NOT NULL THEN position END) AS first_percent,
         BOOL_OR(restricted) AS restricted,
         MAX(CASE WHEN nth = 1 THEN percent END) AS p1,
         COALESCE(MAX(CASE WHEN nth = 2 THEN percent END), 0) AS p2,
         COALESCE(MAX(CASE WHEN nth = 3 THEN percent END), 0) AS p3
  FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY subscription, item, percent IS NULL ORDER BY position, discount) AS nth,
           EXISTS (SELECT 1 FROM {{coupon_products}} p WHERE p.coupon = w.coupon) AS restricted
    FROM windows w WHERE listed AND stacked
  ) s
  GROUP BY subscription, item
),
several_kinds AS (
  SELECT subscription, owner, discounts, 'several_kinds' AS problem
  FROM (SELECT *, p1 + p2 - p1 * p2 // 10000 AS p12 FROM stacks)
  WHERE amounts > 1 OR last_amount > first_percent OR restricted OR percents > 3
     OR (p1 * p2) % 10000 <> 0 OR (p12 * p3) % 10000 <> 0
),
-- An item's discount and its subscription's (its own, or its customer's) at once are valued (the item's first) when
-- both are listed now, so that neither was taken off unseen (an invoice's total shows only
-- when both are gone; a snapshot built from events keeps the lists as a pull would, and
-- sees every removal since its base in the events), neither owner stacks several, and the
-- second can take its part exactly: not an amount off after a percent, nor a percent after a
-- percent whose product is finer than hundredths of a percent.
mixed AS (
  SELECT i.subscription, i.item AS owner, i.discount || ' with ' || MIN(w.discount) AS discounts,
         CASE WHEN BOOL_OR(i.stacked OR w.stacked) THEN 'mixed_stack'
              WHEN BOOL_AND(i.listed AND w.listed) THEN 'mixed_kinds'
              ELSE 'mixed' END AS problem
  FROM windows i JOIN windows w ON w.subscription = i.subscription AND w.item IS NULL
  WHERE i.item IS NOT NULL AND i.start < w.ends_by AND w.start < i.ends_by
    -- A customer's discount never applies while the subscription has one of its own (D3):
    -- none from when an own one listed now (so never taken off) had started.
    AND NOT (w.inherited AND EXISTS (
      SELECT 1 FROM windows o
      WHERE o.subscription = i.subscription AND o.item IS NULL AND NOT o.inherited AND o.listed
        AND o.start <= GREATEST(i.start, w.start)
    ))
    AND NOT (i.listed AND w.listed AND NOT i.stacked AND NOT w.stacked
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
  SELECT * FROM several UNION ALL SELECT * FROM several_kinds UNION ALL SELECT * FROM mixed UNION ALL SELECT * FROM unknown UNION ALL SELECT * FROM unplaced
)
ORDER BY subscription, owner, problem
LIMIT 1
