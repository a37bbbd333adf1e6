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
-- BigQuery Standard SQL; the source that sql/duckdb/item_values.sql ports.
WITH
subs AS (
  SELECT id AS subscription, customer, currency, start_date, status, trial_start, trial_end,
         ended_at, canceled_at
  FROM {{subscriptions}}
  WHERE status NOT IN ('incomplete', 'incomplete_expired', 'paused')
),
-- A subscription marked unpaid stops counting when its failed invoice was marked uncollectible.
unpaid AS (
  SELECT i.subscription, MAX(i.marked_uncollectible_at) AS unpaid_at
  FROM {{invoices}} i JOIN subs s ON s.subscription = i.subscription
  -- (the filter on the invoice first: 26 M invoices at 1 M subscriptions x 60 months, few marked)
  WHERE s.status = 'unpaid' AND i.marked_uncollectible_at IS NOT NULL
  GROUP BY 1
),
-- Item history from invoice lines: each line says which price and quantity an item had from
-- the start of its period; a proration credit with no matching charge removes the item.
-- Pending proration items (create_prorations, not invoiced yet) are the lines the next
-- invoice will carry, dated at the change: they date a change exactly, whatever events remain.
line_events AS (
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
),
-- One window pass over the items that change: of the lines starting at one instant the first
-- counts (charges before credits), and only when it changes the item's price or quantity (or
-- follows an instant with several lines, where the previous row may not be that instant's
-- first). A renewal repeats the item as it was; keeping every one made the range join below
-- quadratic in the number of billing periods (60 monthly periods: 60 x 60 rows per item).
-- Each version of an item holds until the next; the last (and an item that never changes)
-- until {{end_of_time}}, not NULL, which keeps the joins below equality joins.
line_changes AS (
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
),
-- Now (the contract): a running subscription's current items are its value whether or not
-- the change is invoiced yet (proration_behavior=none, or create_prorations pending until the
-- next renewal). Uninvoiced: a current item whose price or quantity differs from its last
-- invoiced version (metered items have no quantity to compare), a new item, and an invoiced
-- item no longer there.
invoiced_now AS (
  SELECT subscription, item, price, quantity FROM line_changes WHERE until = {{end_of_time}} AND price IS NOT NULL
),
current_items AS (
  SELECT si.subscription, si.id AS item, si.price, si.quantity
  FROM {{subscription_items}} si JOIN subs s ON s.subscription = si.subscription
  WHERE s.ended_at IS NULL AND si.subscription IN (SELECT subscription FROM item_lines WHERE subscription IS NOT NULL)
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
-- Only the few subscriptions with such a change (every invoice is 26 M rows at 1 M x 60 months).
last_invoiced AS (
  SELECT subscription, MAX(created) AS invoiced_at
  FROM {{invoices}} WHERE subscription IN (SELECT subscription FROM uninvoiced) GROUP BY 1
),
uninvoiced_since AS (
  SELECT u.subscription,
         CASE WHEN e.updated_at IS NOT NULL AND (l.invoiced_at IS NULL OR e.updated_at > l.invoiced_at) THEN e.updated_at
              ELSE {{as_of}} END AS since
  FROM (SELECT DISTINCT subscription FROM uninvoiced) u
  LEFT JOIN items_updated e ON e.subscription = u.subscription
  LEFT JOIN last_invoiced l ON l.subscription = u.subscription
),
-- Item history: invoiced versions (the last one cut short where an uninvoiced change
-- follows), the uninvoiced versions, and, for subscriptions without any invoice line, their
-- current items from the start. Versions cut to nothing are dropped.
item_changes AS (
  SELECT * FROM (
    SELECT lc.subscription, lc.item, lc.effective_at,
           CASE WHEN u.item IS NOT NULL AND lc.until = {{end_of_time}} THEN us.since ELSE lc.until END AS until,
           lc.price, lc.quantity
    FROM line_changes lc
    LEFT JOIN uninvoiced u ON u.item = lc.item
    LEFT JOIN uninvoiced_since us ON us.subscription = lc.subscription
    UNION ALL
    SELECT u.subscription, u.item, us.since, {{end_of_time}}, u.price, u.quantity
    FROM uninvoiced u JOIN uninvoiced_since us ON us.subscription = u.subscription
    WHERE u.price IS NOT NULL
    UNION ALL
    SELECT si.subscription, si.id, s.start_date, {{end_of_time}}, si.price, si.quantity
    FROM {{subscription_items}} si JOIN subs s ON s.subscription = si.subscription
    WHERE si.subscription NOT IN (SELECT subscription FROM item_lines WHERE subscription IS NOT NULL)
  ) versions
  WHERE effective_at < until
),
-- A tier holds the quantities after the previous tier's up_to through its own (NULL: inf).
tiers AS (
  SELECT price, currency, tier, up_to,
         {{unit_whole:unit_amount|unit_amount_decimal}} AS whole, {{unit_pico:unit_amount|unit_amount_decimal}} AS pico,
         COALESCE(flat_amount, 0) AS flat_amount,
         COALESCE(LAG(up_to) OVER (PARTITION BY price, currency ORDER BY tier), 0) AS above
  FROM {{price_tiers}}
),
-- What a tiered item bills per interval, in its subscription's currency (Stripe's rule,
-- docs/metrics.md): volume, every unit at the unit amount of the tier the quantity falls in
-- plus that tier's flat amount; graduated, each tier's units at that tier's unit amount plus
-- the flat amount of every tier reached.
tiered AS (
  SELECT q.price, q.currency, q.quantity,
         SUM(CASE p.tiers_mode
               -- one line: a fraction of a minor unit is rounded on it (a graduated price's are refused)
               WHEN 'volume' THEN {{line_amount:t.whole|t.pico|q.quantity}} + t.flat_amount
               ELSE (LEAST(q.quantity, COALESCE(t.up_to, q.quantity)) - t.above) * t.whole + t.flat_amount
             END) AS amount
  FROM (
    -- Each price, currency and quantity once, and only the tiered prices' (a handful): joining
    -- every item version to the tiers cost a hash table of them all, even with no tiers at all.
    SELECT DISTINCT e.price, s.currency, e.quantity
    FROM item_changes e JOIN subs s ON s.subscription = e.subscription
    WHERE e.price IN (SELECT price FROM {{price_tiers}})
  ) q
  JOIN {{prices}} p ON p.id = q.price
  JOIN tiers t ON t.price = p.id AND t.currency = q.currency
  WHERE p.billing_scheme = 'tiered'
    AND (q.quantity > t.above OR (p.tiers_mode = 'volume' AND t.tier = 0))
    AND (p.tiers_mode <> 'volume' OR t.up_to IS NULL OR q.quantity <= t.up_to)
  GROUP BY q.price, q.currency, q.quantity
),
-- Each price's unit amount in every currency it has one in (its own, its currency options'),
-- for exact arithmetic in two parts: whole minor units, and the fraction of one that only
-- Stripe's `unit_amount_decimal` holds when `unit_amount` is null (at most 12 decimal places:
-- `pico`, in 10^-12 minor units). An option in the price's own currency is not read.
unit_amounts AS (
  SELECT id AS price, currency, unit_amount, unit_amount_decimal FROM {{prices}}
  UNION ALL
  SELECT o.price, o.currency, o.unit_amount, o.unit_amount_decimal
  FROM {{price_currency_options}} o JOIN {{prices}} p ON p.id = o.price
  WHERE o.currency <> p.currency
),
unit_parts AS (
  SELECT price, currency,
         {{unit_whole:unit_amount|unit_amount_decimal}} AS whole, {{unit_pico:unit_amount|unit_amount_decimal}} AS pico
  FROM unit_amounts
),
-- Each version's billed units: its quantity, which transform_quantity divides and rounds up
-- or down (Stripe's rule, docs/metrics.md).
billed AS (
  SELECT e.subscription, e.item, e.effective_at, e.until, e.price, e.quantity, p.product,
         p.recurring_interval, p.recurring_interval_count, p.recurring_usage_type, p.billing_scheme,
         s.currency, u.whole, u.pico,
         CASE
           WHEN p.transform_quantity_divide_by IS NULL THEN COALESCE(e.quantity, 0)
           WHEN p.transform_quantity_round = 'up'
             -- (the dividend in its own parentheses: the emulator rewrites DIV(a, b) to a // b)
             THEN DIV((COALESCE(e.quantity, 0) + p.transform_quantity_divide_by - 1), p.transform_quantity_divide_by)
           ELSE DIV(COALESCE(e.quantity, 0), p.transform_quantity_divide_by)
         END AS units
  FROM item_changes e
  LEFT JOIN {{prices}} p ON p.id = e.price
  LEFT JOIN subs s ON s.subscription = e.subscription
  LEFT JOIN unit_parts u ON u.price = e.price AND u.currency = s.currency
),
priced AS (
  SELECT e.subscription, e.item, e.effective_at, e.until, e.price, e.product,
         e.recurring_interval, e.recurring_interval_count,
         CASE e.recurring_interval WHEN 'month' THEN 12 WHEN 'year' THEN 1 WHEN 'week' THEN 52 WHEN 'day' THEN 365 END AS per_year,
         -- what the item bills per interval, minor units (also the weight an amount-off coupon is
         -- split by): a tiered price by its tiers; any other, the unit amount in the
         -- subscription's currency times the billed units, a fraction of a minor unit rounded on
         -- the line as Stripe rounds an invoice line (_line_amount). Every price was
         -- checked to have an amount before this runs (src/engine/priceable.rs): no 0 here
         -- stands for a missing one.
         CASE
           WHEN e.recurring_usage_type IS DISTINCT FROM 'licensed' THEN 0
           WHEN e.billing_scheme = 'tiered' THEN COALESCE(tr.amount, 0)
           ELSE {{line_amount:COALESCE(e.whole, 0)|COALESCE(e.pico, 0)|e.units}}
         END AS amount
  FROM billed e
  LEFT JOIN tiered tr ON tr.price = e.price AND tr.currency = e.currency AND tr.quantity = e.quantity
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
-- Every instant at which something about a subscription's value may change.
breakpoints AS (
  SELECT DISTINCT subscription, instant FROM (
    SELECT subscription, effective_at AS instant FROM priced
    UNION ALL SELECT subscription, start_date FROM subs
    UNION ALL SELECT subscription, trial_end FROM subs WHERE trial_end IS NOT NULL
    UNION ALL SELECT subscription, ended_at FROM subs WHERE ended_at IS NOT NULL
    UNION ALL SELECT subscription, canceled_at FROM subs WHERE canceled_at IS NOT NULL AND '{{churn_at}}' = 'cancel'
    UNION ALL SELECT subscription, unpaid_at FROM unpaid WHERE unpaid_at IS NOT NULL
    UNION ALL SELECT subscription, from_at FROM discount_windows
    UNION ALL SELECT subscription, until FROM discount_windows
  ) instants
),
-- Each item active at each instant.
item_at AS (
  SELECT b.subscription, b.instant, p.item, p.price, p.product, p.per_year, p.recurring_interval_count, p.amount
  FROM breakpoints b
  LEFT JOIN priced p ON p.subscription = b.subscription AND p.effective_at <= b.instant AND b.instant < p.until
  WHERE b.instant <= {{as_of}}
),
-- The rules of when a subscription counts, and its discounts: its item's (D7), then its
-- subscription's own or, without one, the one it inherits from its customer (D3), each only
-- on the products its coupon applies to (D4). Stripe: "Subscription item discounts are
-- applied before subscription discounts", so the second takes its part of what the first
-- left (two percents compound); the pairs this cannot keep exact are refused before any
-- query (sql/duckdb/_discounts_stacked.sql).
ruled AS (
  SELECT i.subscription, s.customer, s.currency, i.instant, i.item, i.price, i.per_year, i.recurring_interval_count,
    i.amount,
    CASE
      WHEN i.item IS NULL THEN 'none'
      WHEN i.instant < s.start_date THEN 'none'
      WHEN s.trial_start IS NOT NULL AND i.instant >= s.trial_start AND i.instant < s.trial_end THEN 'none'
      WHEN s.ended_at IS NOT NULL AND i.instant >= s.ended_at THEN 'none'
      WHEN '{{churn_at}}' = 'cancel' AND s.canceled_at IS NOT NULL AND i.instant >= s.canceled_at THEN 'none'
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
  JOIN subs s ON s.subscription = i.subscription
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
           THEN item_percent + subscription_percent - DIV((item_percent * subscription_percent), 10000)
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
    SELECT *, SUM(billed) OVER (PARTITION BY subscription, instant) AS gross_amount
    FROM item_billed WHERE rule = 'amount'
  )
),
shares AS (
  SELECT *,
         CASE WHEN gross_amount = 0 THEN 0 ELSE DIV((off * billed), (gross_amount)) END AS share,
         CASE WHEN gross_amount = 0 THEN 0 ELSE MOD((off * billed), (gross_amount)) END AS share_remainder
  FROM amount_rows
),
ranked AS (
  SELECT *,
         off - SUM(share) OVER (PARTITION BY subscription, instant) AS left_over,
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
-- (every DIV and MOD argument in its own parentheses: the emulator rewrites them to // and %)
SELECT subscription, customer, currency, instant, item, price,
  COALESCE((DIV((numerator), (120000 * recurring_interval_count))), 0) AS value_cents,
  COALESCE((MOD((numerator), (120000 * recurring_interval_count))) * (DIV(720720, (recurring_interval_count))), 0) AS value_frac
FROM valued
