-- discount_windows: the spans in which a subscription's discounts of one level (its own, its
-- customer's it inherits, or one item's) reduce MRR, by the `discounts` option, each span's
-- discounts as one (a stack of several, D5): at any instant a subscription or item meets one
-- row per level. Read by item_values, which holds every other valuation rule.
--
-- Columns: subscription, inherited, item, coupon, from_at, until, percent_off_hundredths, amount_off
--
-- DuckDB port of sql/bigquery/discount_windows.sql. Dialect changes: "end" instead of `end`;
--   `//` instead of DIV; CAST(SUM(x) AS BIGINT), as INT64 (see item_values);
--   the pairing of discounts with subscriptions from _discount_targets, shared with the
--   checks and the derived tables below; subs holds only the discounted subscriptions. The
--   engine computes it into a table before item_values: as a CTE there, DuckDB could not
--   estimate its rows and built item_values' three joins with it on the 1.2 M item rows
--   instead (0.5 s at 1 M subscriptions, with no discount at all).
--   Two derived tables, computed once per snapshot from the same raw tables, stand for
--   BigQuery's CTEs of the same rows: undiscounted_renewals for undiscounted_renewal and
--   once_discount_ends for first_period_end (sql/duckdb/<name>.sql). At 1 M subscriptions
--   they read the 25 M renewal invoices and the 26 M invoice lines on every report of an
--   account with discounts.
WITH
-- Each discount with each subscription it applies to: its own subscription, or one item of
-- it (an item-level discount, D7), or, for a customer-level discount, every subscription of
-- its customer, which inherits it while it has no discount of its own (Stripe: a
-- subscription without discounts "inherits the discount from the subscription's customer";
-- docs/stripe-behaviour.md, D3).
discount_targets AS (
  -- A later discount of the same level (its own, its item's, or its customer's) replaces the
  -- one before unless its owner still lists both: Stripe's update sets the whole `discounts`
  -- list, and a customer has one `discount`. Which discounts apply at once is known only from
  -- today's lists; the stacks and pairs the SQL cannot value are refused before any query
  -- (src/engine/priceable.rs, D5, D7).
  -- The pairing is the checks' and the derived tables' (_discount_targets); a subscription
  -- item_values does not value drops out at the join to subs below.
  SELECT discount, subscription, inherited, item, coupon, start, "end" AS scheduled_end,
         LEAD(start) OVER (PARTITION BY subscription, inherited, item ORDER BY start, discount) AS next_start
  FROM {{_discount_targets}}
),
-- The subscriptions item_values values, of those with a discount: as a semi-join, DuckDB
-- hashes the few discounted subscriptions, where the join below hashed every subscription
-- (0.1 s at 1 M subscriptions with no discount at all).
subs AS (
  SELECT id AS subscription, currency
  FROM {{subscriptions}}
  WHERE status NOT IN ('incomplete', 'incomplete_expired', 'paused')
    AND id IN (SELECT subscription FROM discount_targets)
),
-- When a `once` coupon stops: the end of the first period billed after it starts. Only
-- `--discounts all` counts once coupons; otherwise no invoice line is read for them.
first_period_end AS (
  SELECT * FROM {{once_discount_ends}} WHERE '{{discounts_rule}}' = 'all'
),
-- A discount taken off its subscription stops counting then (docs/stripe-behaviour.md, D2):
-- at its `customer.discount.deleted` event (Stripe keeps 30 days of events), or else at the
-- first renewal invoice after its start that had something to discount and discounted nothing.
-- Stripe also deletes a discount when it ends; the earliest instant of all is kept.
discount_deleted AS (
  SELECT object_id AS discount, MIN(created) AS removed_at
  FROM {{events}}
  WHERE type = 'customer.discount.deleted' AND created <= {{as_of}}
  GROUP BY 1
),
undiscounted_renewal AS (
  SELECT * FROM {{undiscounted_renewals}}
),
-- The discounts each subscription and item lists now, at their place in the list. One its
-- owner no longer lists was taken off by {{as_of}} at the latest, when the snapshot keeps the
-- lists (schema version 4) as new as the discounts (a pulled snapshot, not one derived from
-- events; D2, D5).
listed_now AS (
  SELECT owner, discount, MIN(position) AS position FROM {{subscription_discounts}} GROUP BY 1, 2
),
-- The discount each customer has now (schema version 8): one its customer no longer has was
-- taken off by {{as_of}} at the latest, as above (D2, D3).
customer_now AS (
  SELECT DISTINCT discount FROM {{customer_discounts}}
),
-- The window in which each discount reduces MRR, by the `discounts` option. One its owner
-- still lists (or its customer still has) was never replaced: it applies together with the
-- others listed beside it (D5).
members AS (
  SELECT t.subscription, t.inherited, t.item, t.coupon, t.start AS from_at,
         LEAST(
           COALESCE(CASE c.duration WHEN 'repeating' THEN t.scheduled_end WHEN 'once' THEN f.once_until END, {{end_of_time}}),
           COALESCE(dd.removed_at, {{end_of_time}}),
           COALESCE(ur.removed_at, {{end_of_time}}),
           CASE WHEN ln.discount IS NULL AND cn.discount IS NULL THEN COALESCE(t.next_start, {{end_of_time}}) ELSE {{end_of_time}} END,
           CASE WHEN {{discount_lists}} AND NOT t.inherited AND ln.discount IS NULL THEN {{as_of}}
                WHEN {{customer_discount_lists}} AND t.inherited AND cn.discount IS NULL THEN {{as_of}}
                ELSE {{end_of_time}} END
         ) AS until,
         ln.position,
         c.percent_off_hundredths,
         -- An amount-off coupon takes its amount in the subscription's currency: its own, or
         -- its currency option's (docs/stripe-behaviour.md, D6); the check before any query
         -- (src/engine/priceable.rs) refuses a currency it has neither for.
         CASE WHEN c.currency = s.currency THEN c.amount_off ELSE co.amount_off END AS amount_off
  FROM discount_targets t
  JOIN {{coupons}} c ON c.id = t.coupon
  JOIN subs s ON s.subscription = t.subscription
  LEFT JOIN {{coupon_currency_options}} co ON co.coupon = c.id AND co.currency = s.currency
  LEFT JOIN first_period_end f ON f.subscription = t.subscription AND f.discount = t.discount
  LEFT JOIN discount_deleted dd ON dd.discount = t.discount
  LEFT JOIN undiscounted_renewal ur ON ur.discount = t.discount AND ur.subscription = t.subscription
  LEFT JOIN listed_now ln ON ln.owner = COALESCE(t.item, t.subscription) AND ln.discount = t.discount
  LEFT JOIN customer_now cn ON t.inherited AND cn.discount = t.discount
  WHERE ('{{discounts_rule}}' = 'all' OR ('{{discounts_rule}}' = 'recurring' AND c.duration <> 'once'))
),
-- Each owner's time cut where the discounts that apply to it change, so that an item meets one
-- row per owner at any instant.
edges AS (
  SELECT DISTINCT subscription, inherited, item, edge_at FROM (
    SELECT subscription, inherited, item, from_at AS edge_at FROM members
    UNION ALL
    SELECT subscription, inherited, item, until FROM members
  ) e
),
spans AS (
  SELECT subscription, inherited, item, edge_at AS from_at,
         LEAD(edge_at) OVER (PARTITION BY subscription, inherited, item ORDER BY edge_at) AS until
  FROM edges
),
-- The discounts that apply in each span, its percents numbered in their list's order.
in_force AS (
  SELECT sp.subscription, sp.inherited, sp.item, sp.from_at, sp.until, m.coupon, m.percent_off_hundredths, m.amount_off,
         ROW_NUMBER() OVER (
           PARTITION BY sp.subscription, sp.inherited, sp.item, sp.from_at, m.percent_off_hundredths IS NULL
           ORDER BY m.position, m.coupon) AS nth
  FROM spans sp
  JOIN members m
    ON m.subscription = sp.subscription AND m.inherited = sp.inherited AND m.item IS NOT DISTINCT FROM sp.item
       AND m.from_at <= sp.from_at AND sp.until <= m.until
),
-- A span's discounts as one (several at once are an owner's stack, D5): their amounts off,
-- taken first, and the percents of what that left, up to three. Stripe applies them in the
-- list's order, so the check before any query (src/engine/priceable.rs) refuses a stack it
-- cannot keep exact: an amount after a percent, two amounts, a product-restricted coupon,
-- more than three percents or a product finer than hundredths of a percent.
stacked AS (
  SELECT subscription, inherited, item, from_at, until, MIN(coupon) AS coupon,
         MAX(CASE WHEN nth = 1 THEN percent_off_hundredths END) AS p1,
         COALESCE(MAX(CASE WHEN nth = 2 THEN percent_off_hundredths END), 0) AS p2,
         COALESCE(MAX(CASE WHEN nth = 3 THEN percent_off_hundredths END), 0) AS p3,
         CAST(SUM(amount_off) AS BIGINT) AS amount_off
  FROM in_force
  GROUP BY subscription, inherited, item, from_at, until
)
-- p then q keep (1 - p)(1 - q): the single percent p + q - pq / 10000, in hundredths.
SELECT subscription, inherited, item, coupon, from_at, until,
       p12 + p3 - p12 * p3 // 10000 AS percent_off_hundredths,
       amount_off
FROM (SELECT *, p1 + p2 - p1 * p2 // 10000 AS p12 FROM stacked)
