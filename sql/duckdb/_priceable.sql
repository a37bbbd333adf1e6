-- _priceable: the prices that cannot be valued for a subscription's currency, and why (the
-- first one only): not in the snapshot ('missing'), tiered without tiers in that currency
-- ('tiers'), in another currency without a currency option for it ('currency'), with neither a
-- `unit_amount` nor a `unit_amount_decimal` of at most 12 decimal places ('decimal'), or
-- graduated with a tier whose unit amount is a fraction of a minor unit ('tier_decimal', not
-- valued yet: where Stripe rounds it is not in its reference). `mrr report` and `mrr push`
-- stop on any (src/engine/priceable.rs) rather than let item_values value such an item at 0.
--
-- DuckDB only: a check of the snapshot, run before either engine's queries. The prices billed
-- (billed_prices) are derived once per snapshot: a handful of (price, currency) groups, each
-- with a subscription to name.
WITH
problems AS (
  SELECT b.price, b.currency, MIN(b.subscription) AS subscription, ANY_VALUE(p.currency) AS price_currency,
         CASE WHEN ANY_VALUE(p.billing_scheme) = 'tiered' THEN COALESCE(ANY_VALUE(t.unreadable), ANY_VALUE(t.fractional))
              WHEN b.currency = ANY_VALUE(p.currency) THEN ANY_VALUE(p.unit_amount_decimal)
              ELSE ANY_VALUE(o.unit_amount_decimal) END AS unit_amount_decimal,
         CASE
           WHEN ANY_VALUE(p.id) IS NULL THEN 'missing'
           WHEN ANY_VALUE(p.recurring_usage_type) IS DISTINCT FROM 'licensed' THEN NULL
           WHEN ANY_VALUE(p.billing_scheme) = 'tiered' THEN
             CASE WHEN COUNT(t.price) = 0 THEN 'tiers'
                  WHEN ANY_VALUE(t.unreadable) IS NOT NULL THEN 'decimal'
                  WHEN ANY_VALUE(p.tiers_mode) = 'graduated' AND ANY_VALUE(t.fractional) IS NOT NULL THEN 'tier_decimal' END
           WHEN b.currency <> ANY_VALUE(p.currency) AND COUNT(o.price) = 0 THEN 'currency'
           WHEN b.currency = ANY_VALUE(p.currency) AND ANY_VALUE(p.unit_amount) IS NULL
                AND NOT {{readable_decimal:ANY_VALUE(p.unit_amount_decimal)}} THEN 'decimal'
           WHEN b.currency <> ANY_VALUE(p.currency) AND ANY_VALUE(o.unit_amount) IS NULL
                AND NOT {{readable_decimal:ANY_VALUE(o.unit_amount_decimal)}} THEN 'decimal'
         END AS problem
  FROM {{billed_prices}} b
  LEFT JOIN {{prices}} p ON p.id = b.price
  LEFT JOIN {{price_currency_options}} o ON o.price = b.price AND o.currency = b.currency
  -- Each tiered price's tiers in each currency, with a fractional tier unit amount and an
  -- unreadable one, if any.
  LEFT JOIN (
    SELECT price, currency, MIN(unit_amount_decimal) FILTER (WHERE unit_amount IS NULL AND unit_amount_decimal IS NOT NULL) AS fractional,
           MIN(unit_amount_decimal) FILTER (WHERE unit_amount IS NULL AND unit_amount_decimal IS NOT NULL
             AND NOT {{readable_decimal:unit_amount_decimal}}) AS unreadable
    FROM {{price_tiers}} GROUP BY price, currency
  ) t ON t.price = b.price AND t.currency = b.currency
  GROUP BY b.price, b.currency
)
SELECT price, currency, subscription, price_currency, unit_amount_decimal, problem
FROM problems WHERE problem IS NOT NULL ORDER BY price, currency LIMIT 1
