-- subscription_changes: every instant (up to {{as_of}}) at which a subscription's
-- monthly-normalised value changes, with the change. The base of every MRR query.
-- Values are exact integers: MRR x 86 486 400 000 (12 x 720720 x 10000, see docs/metrics.md).
--
-- Columns: subscription, customer, currency, changed_at, delta_scaled (exact integer), delta_counting (-1, 0, 1)
--
-- DuckDB port of sql/bigquery/subscription_changes.sql. Dialect changes:
--   HUGEINT instead of INT64 (wider: no overflow bound); `a // b` instead of DIV(a, b); `UNION` instead of
--   `UNION DISTINCT`; "end" instead of `end`; CAST(bool AS INTEGER) instead of INT64.
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
  WHERE s.status = 'unpaid'
  GROUP BY 1
),
-- Item history from invoice lines: each line says which price and quantity an item had from
-- the start of its period; a proration credit with no matching charge removes the item.
line_events AS (
  SELECT l.subscription, l.subscription_item AS item, l.period_start AS effective_at,
         CASE WHEN l.proration AND l.amount < 0 THEN NULL ELSE l.price END AS price,
         CASE WHEN l.proration AND l.amount < 0 THEN NULL ELSE l.quantity END AS quantity,
         ROW_NUMBER() OVER (PARTITION BY l.subscription_item, l.period_start
                            ORDER BY CASE WHEN l.proration AND l.amount < 0 THEN 1 ELSE 0 END, l.invoice, l.line_index) AS pick
  FROM {{invoice_lines}} l
  WHERE l.parent_type = 'subscription_item_details' AND l.subscription IS NOT NULL
),
-- Subscriptions without any invoice line fall back to their current items from the start.
item_events AS (
  SELECT subscription, item, effective_at, price, quantity FROM line_events WHERE pick = 1
  UNION ALL
  SELECT si.subscription, si.id, s.start_date, si.price, si.quantity
  FROM {{subscription_items}} si JOIN subs s ON s.subscription = si.subscription
  WHERE si.subscription NOT IN (SELECT subscription FROM line_events WHERE subscription IS NOT NULL)
),
priced AS (
  SELECT e.subscription, e.item, e.effective_at,
         -- A far-future end rather than NULL keeps the joins below equality joins (an OR on NULL
         -- made DuckDB fall back to a nested loop: 4.4 s instead of milliseconds at 10k customers).
         LEAD(e.effective_at, 1, TIMESTAMPTZ '9999-12-31 00:00:00+00') OVER (PARTITION BY e.item ORDER BY e.effective_at) AS until,
         p.recurring_interval, p.recurring_interval_count,
         -- monthly value x scale: amount x (12, 1, 52 or 365 per year) x scale / 12 / interval_count
         CASE WHEN p.recurring_usage_type = 'licensed' AND p.unit_amount IS NOT NULL THEN
           CAST(p.unit_amount AS HUGEINT) * COALESCE(e.quantity, 0)
             * CASE p.recurring_interval WHEN 'month' THEN 12 WHEN 'year' THEN 1 WHEN 'week' THEN 52 WHEN 'day' THEN 365 END
             * (7207200000 // p.recurring_interval_count)
         ELSE 0 END AS value_scaled
  FROM item_events e LEFT JOIN {{prices}} p ON p.id = e.price
),
-- A subscription bills on one interval; amount-off coupons are spread over it.
sub_interval AS (
  SELECT subscription, ANY_VALUE(recurring_interval) AS recurring_interval, ANY_VALUE(recurring_interval_count) AS recurring_interval_count
  FROM priced WHERE recurring_interval IS NOT NULL GROUP BY 1
),
first_period_end AS (
  SELECT l.subscription, d.id AS discount, MIN(l.period_end) AS once_until
  FROM {{invoice_lines}} l JOIN {{discounts}} d ON d.subscription = l.subscription
  WHERE NOT l.proration AND l.period_end > d.start
  GROUP BY 1, 2
),
-- The window in which each coupon reduces MRR, by the `discounts` option.
discount_windows AS (
  SELECT d.subscription, d.start AS from_at,
         COALESCE(CASE c.duration WHEN 'repeating' THEN d."end" WHEN 'once' THEN f.once_until END, TIMESTAMPTZ '9999-12-31 00:00:00+00') AS until,
         c.percent_off_hundredths,
         CAST(c.amount_off AS HUGEINT)
           * CASE si.recurring_interval WHEN 'month' THEN 12 WHEN 'year' THEN 1 WHEN 'week' THEN 52 WHEN 'day' THEN 365 END
           * (7207200000 // si.recurring_interval_count) AS amount_off_scaled
  FROM {{discounts}} d
  JOIN {{coupons}} c ON c.id = d.coupon
  JOIN sub_interval si ON si.subscription = d.subscription
  LEFT JOIN first_period_end f ON f.subscription = d.subscription AND f.discount = d.id
  WHERE d.subscription IS NOT NULL
    AND ('{{discounts_rule}}' = 'all' OR ('{{discounts_rule}}' = 'recurring' AND c.duration <> 'once'))
),
-- Every instant at which something about a subscription's value may change.
breakpoints AS (
  SELECT subscription, effective_at AS instant FROM priced
  UNION SELECT subscription, start_date FROM subs
  UNION SELECT subscription, trial_end FROM subs WHERE trial_end IS NOT NULL
  UNION SELECT subscription, ended_at FROM subs WHERE ended_at IS NOT NULL
  UNION SELECT subscription, canceled_at FROM subs WHERE canceled_at IS NOT NULL AND '{{churn_at}}' = 'cancel'
  UNION SELECT subscription, unpaid_at FROM unpaid WHERE unpaid_at IS NOT NULL
  UNION SELECT subscription, from_at FROM discount_windows
  UNION SELECT subscription, until FROM discount_windows
),
gross AS (
  SELECT b.subscription, b.instant, COALESCE(SUM(p.value_scaled), 0) AS gross_scaled
  FROM breakpoints b
  LEFT JOIN priced p ON p.subscription = b.subscription AND p.effective_at <= b.instant AND b.instant < p.until
  WHERE b.instant <= {{as_of}}
  GROUP BY 1, 2
),
valued AS (
  SELECT g.subscription, s.customer, s.currency, g.instant,
    CASE
      WHEN g.instant < s.start_date THEN 0
      WHEN s.trial_start IS NOT NULL AND g.instant >= s.trial_start AND g.instant < s.trial_end THEN 0
      WHEN s.ended_at IS NOT NULL AND g.instant >= s.ended_at THEN 0
      WHEN '{{churn_at}}' = 'cancel' AND s.canceled_at IS NOT NULL AND g.instant >= s.canceled_at THEN 0
      WHEN u.unpaid_at IS NOT NULL AND g.instant >= u.unpaid_at THEN 0
      WHEN d.subscription IS NULL THEN g.gross_scaled
      WHEN d.percent_off_hundredths IS NOT NULL THEN g.gross_scaled // 10000 * (10000 - d.percent_off_hundredths)
      ELSE GREATEST(g.gross_scaled - d.amount_off_scaled, 0)
    END AS value_scaled
  FROM gross g
  JOIN subs s ON s.subscription = g.subscription
  LEFT JOIN unpaid u ON u.subscription = g.subscription
  LEFT JOIN discount_windows d ON d.subscription = g.subscription AND d.from_at <= g.instant AND g.instant < d.until
),
changes AS (
  SELECT subscription, customer, currency, instant AS changed_at,
         value_scaled - COALESCE(LAG(value_scaled) OVER w, 0) AS delta_scaled,
         CAST(value_scaled > 0 AS INTEGER) - COALESCE(CAST(LAG(value_scaled) OVER w > 0 AS INTEGER), 0) AS delta_counting
  FROM valued
  WINDOW w AS (PARTITION BY subscription ORDER BY instant)
)
SELECT subscription, customer, currency, changed_at, delta_scaled, delta_counting
FROM changes
WHERE delta_scaled <> 0 OR delta_counting <> 0
