-- discount_windows: the window in which each discount reduces MRR, for each subscription it
-- applies to (and, for an item-level discount, the item), by the `discounts` option; read by
-- item_values, which holds every other valuation rule.
--
-- Columns: subscription, inherited, item, coupon, from_at, until, percent_off_hundredths, amount_off
--
-- DuckDB port of sql/bigquery/discount_windows.sql. Dialect changes: "end" instead of `end`;
--   the pairing of discounts with subscriptions from _discount_targets, shared with the
--   checks and the derived tables below. The engine computes it into a table before
--   item_values: as a CTE there, DuckDB could not estimate its rows and built item_values'
--   three joins with it on the 1.2 M item rows instead (0.5 s at 1 M subscriptions, with no
--   discount at all).
--   Two derived tables, computed once per snapshot from the same raw tables, stand for
--   BigQuery's CTEs of the same rows: undiscounted_renewals for undiscounted_renewal and
--   once_discount_ends for first_period_end (sql/duckdb/<name>.sql). At 1 M subscriptions
--   they read the 25 M renewal invoices and the 26 M invoice lines on every report of an
--   account with discounts.
WITH
-- The subscriptions item_values values.
subs AS (
  SELECT id AS subscription, currency
  FROM {{subscriptions}}
  WHERE status NOT IN ('incomplete', 'incomplete_expired', 'paused')
),
-- Each discount with each subscription it applies to: its own subscription, or one item of
-- it (an item-level discount, D7), or, for a customer-level discount, every subscription of
-- its customer, which inherits it while it has no discount of its own (Stripe: a
-- subscription without discounts "inherits the discount from the subscription's customer";
-- docs/stripe-behaviour.md, D3).
discount_targets AS (
  -- A later discount of the same level (its own, its item's, or its customer's) replaces the
  -- one before: Stripe's update sets the whole `discounts` list, and a customer has one
  -- `discount`. Which discounts apply at once is known only from today's lists; several at one
  -- level, or an item's with its subscription's, are refused before any query
  -- (src/engine/priceable.rs, D5).
  -- The pairing is the checks' and the derived tables' (_discount_targets); a subscription
  -- item_values does not value drops out at the join to subs below.
  SELECT discount, subscription, inherited, item, coupon, start, "end" AS scheduled_end,
         LEAD(start) OVER (PARTITION BY subscription, inherited, item ORDER BY start, discount) AS next_start
  FROM {{_discount_targets}}
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
-- The discounts each subscription and item lists now. One its owner no longer lists was
-- taken off by {{as_of}} at the latest, when the snapshot keeps the lists (schema version 4)
-- as new as the discounts (a pulled snapshot, not one derived from events; D2, D5).
listed_now AS (
  SELECT DISTINCT owner, discount FROM {{subscription_discounts}}
)
-- The window in which each coupon reduces MRR, by the `discounts` option.
SELECT t.subscription, t.inherited, t.item, t.coupon, t.start AS from_at,
       LEAST(
         COALESCE(CASE c.duration WHEN 'repeating' THEN t.scheduled_end WHEN 'once' THEN f.once_until END, {{end_of_time}}),
         COALESCE(dd.removed_at, {{end_of_time}}),
         COALESCE(ur.removed_at, {{end_of_time}}),
         COALESCE(t.next_start, {{end_of_time}}),
         CASE WHEN {{discount_lists}} AND NOT t.inherited AND ln.discount IS NULL THEN {{as_of}} ELSE {{end_of_time}} END
       ) AS until,
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
WHERE ('{{discounts_rule}}' = 'all' OR ('{{discounts_rule}}' = 'recurring' AND c.duration <> 'once'))
