-- item_values: every item's monthly-normalised value at every instant (up to {{as_of}}) at
-- which something about its subscription may change: the one place the contract's rules of
-- when a subscription counts, how a price becomes monthly and what a coupon takes off live
-- (when each discount applies: discount_windows).
-- A subscription's value is the sum of its items' (subscription_changes); plans read the items
-- (mrr_by_plan). Rows with a NULL item are instants at which a subscription has no item.
--
-- Columns: subscription, customer, currency, instant, item, price, value_cents, value_frac
--
-- A value is exact and split in two INT64s: value_cents + value_frac / 86 486 400 000 minor
-- units, value_cents whole minor units (floored), 0 <= value_frac < 86 486 400 000 (the scale
-- 12 x 720720 x 10000 makes every month, year, week and day price, interval count and percent
-- coupon exact, docs/metrics.md). Sums add the two parts apart and round once (the snippet _cents),
-- so no INT64 ever holds more than whole minor units: $10 billion of MRR per customer, plan
-- or currency stays far inside BigQuery's INT64, whose overflow is an error there (DuckDB
-- widens to HUGEINT silently). One value_scaled INT64 held at most ~$1.07 M.
--
-- DuckDB port of sql/bigquery/item_values.sql. Dialect changes:
--   `a // b` and `a % b` instead of DIV(a, b) and MOD(a, b); BIGINT, as INT64 (DuckDB raises on
--   BIGINT overflow too); CAST(SUM(x) AS BIGINT): BigQuery's SUM of INT64 is an INT64, DuckDB's
--   a HUGEINT, whose arithmetic downstream is several times slower (dividing 1.2 M HUGEINTs
--   took 0.4 s at 1 M subscriptions);
--   four derived tables, computed once per snapshot from the same raw tables, stand for
--   BigQuery's CTEs of the same rows: unpaid_since for unpaid (sql/duckdb/unpaid_since.sql);
--   item_history for line_events, item_lines and
--   line_changes (sql/duckdb/item_history.sql); uninvoiced_items for invoiced_now,
--   current_items, uninvoiced and last_invoiced (sql/duckdb/uninvoiced_items.sql);
--   item_versions for item_changes, tiers, tiered and priced, with each uninvoiced change's
--   instant left for priced here to fill in (sql/duckdb/item_versions.sql); item_instants for
--   breakpoints and item_at (joined to subs) of every subscription whose instants depend on
--   nothing the report chooses (sql/duckdb/item_instants.sql): only the others (general)
--   are found here; and a report leaves out the plain subscriptions (one item, no discount),
--   whose changes it reads from plain_changes, derived once per snapshot by these same rules
--   (sql/duckdb/plain_changes.sql renders this file over every instant).
WITH
subs AS (
  SELECT id AS subscription, customer, currency, start_date, status, trial_start, trial_end,
         ended_at, canceled_at
  FROM {{subscriptions}}
  WHERE status NOT IN ('incomplete', 'incomplete_expired', 'paused')
),
-- A subscription marked unpaid stops counting when its failed invoice was marked uncollectible
-- (derived once per snapshot: sql/duckdb/unpaid_since.sql).
unpaid AS (
  SELECT * FROM {{unpaid_since}}
),
-- Now (the contract): a running subscription's current items are its value whether or not
-- the change is invoiced yet (proration_behavior=none, or create_prorations pending until the
-- next renewal): the items whose current state no invoice shows, derived once per snapshot
-- (sql/duckdb/uninvoiced_items.sql).
uninvoiced AS (
  SELECT * FROM {{uninvoiced_items}}
),
-- When the uninvoiced change was made: the newest `customer.subscription.updated` that changed
-- the subscription's items after its last invoice, when the snapshot has that event (30 days
-- of events); otherwise {{as_of}}, the first instant the objects show it (docs/metrics.md).
items_updated AS (
  SELECT object_id AS subscription, MAX(created) AS updated_at
  FROM {{event_changes}}
  -- (only the uninvoiced subscriptions' events: 1.3 M changes at 1 M subscriptions x 60 months)
  WHERE object_id IN (SELECT subscription FROM uninvoiced)
    AND type = 'customer.subscription.updated' AND field = 'items' AND created <= {{as_of}}
  GROUP BY 1
),
-- Each such subscription with when it was last invoiced (derived with the uninvoiced items).
uninvoiced_since AS (
  SELECT u.subscription,
         CASE WHEN e.updated_at IS NOT NULL AND (u.invoiced_at IS NULL OR e.updated_at > u.invoiced_at) THEN e.updated_at
              ELSE {{as_of}} END AS since
  FROM (SELECT subscription, MAX(last_invoiced_at) AS invoiced_at FROM uninvoiced GROUP BY 1) u
  LEFT JOIN items_updated e ON e.subscription = u.subscription
),
-- Every item's versions with what each bills, derived once per snapshot
-- (sql/duckdb/item_versions.sql); an uninvoiced change dated here, and versions it cuts to
-- nothing dropped. Only the versions an uninvoiced change starts or cuts are joined to their
-- date: a join of every version built its table on the 1 M versions, not on the few dates.
-- Each of the two kinds is its own filter on one column, which DuckDB checks against the
-- Parquet row groups' statistics and so skips the versions without (a filter on both columns
-- at once read all 1 M: 0.15 s at 1 M subscriptions, as did the same in general below).
priced AS (
  SELECT subscription, item, effective_at, until, price, product, recurring_interval, recurring_interval_count,
         per_year, amount
  FROM {{item_versions}}
  WHERE effective_at IS NOT NULL AND NOT COALESCE(cut_at_change, FALSE) AND effective_at < until
  UNION ALL
  SELECT * FROM (
    SELECT v.subscription, v.item, COALESCE(v.effective_at, us.since) AS effective_at,
           CASE WHEN v.cut_at_change THEN us.since ELSE v.until END AS until,
           v.price, v.product, v.recurring_interval, v.recurring_interval_count, v.per_year, v.amount
    FROM (SELECT * FROM {{item_versions}} WHERE effective_at IS NULL
          UNION ALL SELECT * FROM {{item_versions}} WHERE cut_at_change AND effective_at IS NOT NULL) v
    JOIN uninvoiced_since us ON us.subscription = v.subscription
  ) dated
  WHERE effective_at < until
),
-- The window in which each discount reduces MRR, for each subscription (or item) it applies
-- to (discount_windows).
discount_windows AS (
  SELECT * FROM {{discount_windows}}
),
-- Coupons that discount only some products' items (`applies_to.products`).
restricted_coupons AS (
  SELECT DISTINCT coupon FROM {{coupon_products}}
),
-- The subscriptions whose instants depend on the report: an uninvoiced change (dated above),
-- a discount, a cancellation that counts. Every other subscription's items at each of its
-- instants are derived once per snapshot (sql/duckdb/item_instants.sql), from its own objects.
general AS (
  SELECT subscription FROM {{item_versions}} WHERE effective_at IS NULL
  UNION SELECT subscription FROM {{item_versions}} WHERE cut_at_change
  UNION SELECT subscription FROM discount_windows
  UNION SELECT subscription FROM subs WHERE canceled_at IS NOT NULL AND '{{churn_at}}' = 'cancel'
),
own_subs AS (
  SELECT * FROM subs WHERE subscription IN (SELECT subscription FROM general)
),
own_versions AS (
  SELECT * FROM priced WHERE subscription IN (SELECT subscription FROM general)
),
own_unpaid AS (
  SELECT * FROM unpaid WHERE subscription IN (SELECT subscription FROM general)
),
-- Every instant at which something about such a subscription's value may change: its own
-- objects' (_own_instants), a counting cancellation's, its discounts' windows'.
breakpoints AS (
  SELECT DISTINCT subscription, instant FROM (
    SELECT * FROM {{_own_instants}}
    UNION ALL SELECT subscription, canceled_at FROM own_subs WHERE canceled_at IS NOT NULL AND '{{churn_at}}' = 'cancel'
    UNION ALL SELECT subscription, from_at FROM discount_windows
    UNION ALL SELECT subscription, until FROM discount_windows
  ) instants
),
-- Each item active at each instant, with its subscription's customer, currency and dates.
item_at AS (
  SELECT * FROM {{_items_at}}
  WHERE instant <= {{as_of}}
  UNION ALL
  SELECT subscription, instant, item, price, product, per_year, recurring_interval_count, amount,
         customer, currency, start_date, trial_start, trial_end, ended_at, canceled_at
  FROM {{item_instants}}
  WHERE instant <= {{as_of}} AND subscription NOT IN (SELECT subscription FROM general)
    -- a report reads the plain subscriptions' changes from plain_changes, derived by these rules
    AND NOT (plain AND {{plain_changes_read}})
),
-- The rules of when a subscription counts, and its discounts: its item's (D7), then its
-- subscription's own or, without one, the one it inherits from its customer (D3), each only
-- on the products its coupon applies to (D4). Stripe: "Subscription item discounts are
-- applied before subscription discounts", so the second takes its part of what the first
-- left (two percents compound); the pairs this cannot keep exact are refused before any
-- query (sql/duckdb/_discounts_stacked.sql).
ruled AS (
  SELECT i.subscription, i.customer, i.currency, i.instant, i.item, i.price, i.per_year, i.recurring_interval_count,
    i.amount,
    CASE
      WHEN i.item IS NULL THEN 'none'
      WHEN i.instant < i.start_date THEN 'none'
      WHEN i.trial_start IS NOT NULL AND i.instant >= i.trial_start AND i.instant < i.trial_end THEN 'none'
      WHEN i.ended_at IS NOT NULL AND i.instant >= i.ended_at THEN 'none'
      WHEN '{{churn_at}}' = 'cancel' AND i.canceled_at IS NOT NULL AND i.instant >= i.canceled_at THEN 'none'
      WHEN u.unpaid_at IS NOT NULL AND i.instant >= u.unpaid_at THEN 'none'
      WHEN COALESCE(d.amount_off, cd.amount_off) IS NOT NULL AND (sr.coupon IS NULL OR sp.coupon IS NOT NULL) THEN 'amount'
      ELSE 'value'
    END AS rule,
    -- The item's discount, where it applies: a percent of the item, or an amount off what it
    -- bills (capped there).
    CASE WHEN ir.coupon IS NULL OR ip.coupon IS NOT NULL THEN idisc.percent_off_hundredths END AS item_percent,
    CASE WHEN ir.coupon IS NULL OR ip.coupon IS NOT NULL THEN idisc.amount_off END AS item_amount_off,
    -- The subscription's discount, where it applies: a percent of what the item's left.
    CASE WHEN sr.coupon IS NULL OR sp.coupon IS NOT NULL THEN COALESCE(d.percent_off_hundredths, cd.percent_off_hundredths) END
      AS subscription_percent,
    COALESCE(d.amount_off, cd.amount_off) AS amount_off
  FROM item_at i
  LEFT JOIN unpaid u ON u.subscription = i.subscription
  LEFT JOIN discount_windows idisc
    ON idisc.subscription = i.subscription AND idisc.item = i.item
       AND idisc.from_at <= i.instant AND i.instant < idisc.until
  LEFT JOIN discount_windows d
    ON d.subscription = i.subscription AND NOT d.inherited AND d.item IS NULL
       AND d.from_at <= i.instant AND i.instant < d.until
  LEFT JOIN discount_windows cd
    ON cd.subscription = i.subscription AND cd.inherited AND d.subscription IS NULL
       AND cd.from_at <= i.instant AND i.instant < cd.until
  LEFT JOIN restricted_coupons ir ON ir.coupon = idisc.coupon
  LEFT JOIN {{coupon_products}} ip ON ip.coupon = idisc.coupon AND ip.product = i.product
  LEFT JOIN restricted_coupons sr ON sr.coupon = COALESCE(d.coupon, cd.coupon)
  LEFT JOIN {{coupon_products}} sp ON sp.coupon = COALESCE(d.coupon, cd.coupon) AND sp.product = i.product
),
-- What each item bills after its own discount: an amount off is taken whole (capped at what
-- it bills); a percent stays a factor, applied with the subscription's below.
item_billed AS (
  SELECT *, amount - LEAST(COALESCE(item_amount_off, 0), amount) AS billed,
         -- p then q keep (1 - p)(1 - q): the single percent p + q - p x q / 10000, in hundredths
         -- (exact where the check allows the pair)
         CASE WHEN item_percent IS NOT NULL AND subscription_percent IS NOT NULL
           THEN item_percent + subscription_percent - item_percent * subscription_percent // 10000
           ELSE COALESCE(item_percent, subscription_percent, 0) END AS percent_off
  FROM ruled
),
-- A subscription's amount-off coupon (capped at what its items bill after their own
-- discounts) is split across the items it discounts in proportion to that, in whole minor
-- units, the units left over going one each to the largest remainders (ties: item id); the
-- percents stacked after it take their part of what is left (D5). Only these rows need their
-- subscription's other items.
amount_rows AS (
  SELECT *, LEAST(amount_off, gross_amount) AS off
  FROM (
    SELECT *, CAST(SUM(billed) OVER (PARTITION BY subscription, instant) AS BIGINT) AS gross_amount
    FROM item_billed WHERE rule = 'amount'
  )
),
shares AS (
  SELECT *,
         CASE WHEN gross_amount = 0 THEN 0 ELSE (off * billed) // gross_amount END AS share,
         CASE WHEN gross_amount = 0 THEN 0 ELSE (off * billed) % gross_amount END AS share_remainder
  FROM amount_rows
),
ranked AS (
  SELECT *,
         off - CAST(SUM(share) OVER (PARTITION BY subscription, instant) AS BIGINT) AS left_over,
         ROW_NUMBER() OVER (PARTITION BY subscription, instant ORDER BY share_remainder DESC, item) AS remainder_rank
  FROM shares
),
-- Each item's monthly value as a fraction: numerator / (120000 x interval_count) minor units,
-- where the numerator is what the item bills per interval (less its discounts' amounts, which
-- come first) x intervals per year x 10000 (less the hundredths of its percents). Bounded by 10000 x a year's
-- billing of the item: 1.2e15 for an item of $100 M a month.
valued AS (
  SELECT subscription, customer, currency, instant, item, price, recurring_interval_count,
    CASE WHEN rule = 'none' THEN 0
      ELSE billed * per_year * (10000 - percent_off)
    END AS numerator
  FROM item_billed
  WHERE rule <> 'amount'
  UNION ALL
  SELECT subscription, customer, currency, instant, item, price, recurring_interval_count,
    -- nothing billed, nothing to take off
    (billed - CASE WHEN gross_amount = 0 THEN 0
                ELSE share + CASE WHEN remainder_rank <= left_over THEN 1 ELSE 0 END END) * per_year * (10000 - percent_off)
  FROM ranked
)
SELECT subscription, customer, currency, instant, item, price,
  COALESCE(numerator // (120000 * recurring_interval_count), 0) AS value_cents,
  COALESCE(numerator % (120000 * recurring_interval_count) * (720720 // recurring_interval_count), 0) AS value_frac
FROM valued
