-- item_versions: every version of every item, with what it bills per interval: the price and
-- quantity it had from effective_at until the next version, valued by the price's rules
-- (tiers, currency options, transform_quantity), in its subscription's currency. Its invoiced
-- versions (item_history), its changes no invoice shows yet (uninvoiced_items) and, for a
-- subscription without any invoice line, its current items from the start. None of it depends
-- on the as-of instant or the metric options, so `mrr` derives it once, when a snapshot is
-- written (src/engine/derived.rs): item_values only dates the uninvoiced changes, which
-- depends on the events up to the as-of instant. A NULL effective_at is an uninvoiced
-- version, from that change on; cut_at_change marks the invoiced version it ends.
--
-- Columns: subscription, item, effective_at, until, cut_at_change, price, product,
--          recurring_interval, recurring_interval_count, per_year, amount
--
-- DuckDB only: sql/bigquery/item_values.sql computes the same rows inline (its item_changes,
-- tiers, tiered and priced), from the same raw tables.
WITH
subs AS (
  SELECT id AS subscription, currency, start_date
  FROM {{subscriptions}}
  WHERE status NOT IN ('incomplete', 'incomplete_expired', 'paused')
),
versions AS (
  SELECT h.subscription, h.item, h.effective_at, h.until, h.price, h.quantity,
         u.item IS NOT NULL AND h.until = {{end_of_time}} AS cut_at_change
  FROM {{item_history}} h
  LEFT JOIN {{uninvoiced_items}} u ON u.item = h.item
  UNION ALL
  SELECT subscription, item, CAST(NULL AS TIMESTAMPTZ), {{end_of_time}}, price, quantity, FALSE
  FROM {{uninvoiced_items}}
  WHERE price IS NOT NULL
  UNION ALL
  SELECT si.subscription, si.id, s.start_date, {{end_of_time}}, si.price, si.quantity, FALSE
  FROM {{subscription_items}} si JOIN subs s ON s.subscription = si.subscription
  WHERE si.subscription NOT IN (SELECT subscription FROM {{item_history}})
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
    FROM versions e JOIN subs s ON s.subscription = e.subscription
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
  SELECT e.*, p.product, p.recurring_interval, p.recurring_interval_count, p.recurring_usage_type,
         p.billing_scheme, s.currency, u.whole, u.pico,
         CASE
           WHEN p.transform_quantity_divide_by IS NULL THEN COALESCE(e.quantity, 0)
           WHEN p.transform_quantity_round = 'up'
             THEN (COALESCE(e.quantity, 0) + p.transform_quantity_divide_by - 1) // p.transform_quantity_divide_by
           ELSE COALESCE(e.quantity, 0) // p.transform_quantity_divide_by
         END AS units
  FROM versions e
  LEFT JOIN {{prices}} p ON p.id = e.price
  LEFT JOIN subs s ON s.subscription = e.subscription
  LEFT JOIN unit_parts u ON u.price = e.price AND u.currency = s.currency
)
SELECT e.subscription, e.item, e.effective_at, e.until, e.cut_at_change, e.price, e.product,
       e.recurring_interval, e.recurring_interval_count,
       CASE e.recurring_interval WHEN 'month' THEN 12 WHEN 'year' THEN 1 WHEN 'week' THEN 52 WHEN 'day' THEN 365 END AS per_year,
       -- what the item bills per interval, minor units (also the weight an amount-off coupon is
       -- split by): a tiered price by its tiers; any other, the unit amount in the
       -- subscription's currency times the billed units, a fraction of a minor unit rounded on
       -- the line as Stripe rounds an invoice line (_line_amount). A report
       -- checks that every price has an amount before it reads these
       -- (src/engine/priceable.rs): no 0 here that stands for a missing one is ever read.
       -- BIGINT, as INT64: a tier's SUM is a HUGEINT, which Parquet would store as a DOUBLE.
       CAST(CASE
         WHEN e.recurring_usage_type IS DISTINCT FROM 'licensed' THEN 0
         WHEN e.billing_scheme = 'tiered' THEN COALESCE(tr.amount, 0)
         ELSE {{line_amount:COALESCE(e.whole, 0)|COALESCE(e.pico, 0)|e.units}}
       END AS BIGINT) AS amount
FROM billed e
LEFT JOIN tiered tr ON tr.price = e.price AND tr.currency = e.currency AND tr.quantity = e.quantity
