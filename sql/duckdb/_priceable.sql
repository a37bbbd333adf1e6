-- _priceable: the prices that cannot be valued for a subscription's currency, and why (the
-- first one only): not in the snapshot ('missing'), tiered without tiers in that currency
-- ('tiers'), in another currency without a currency option for it ('currency'), with neither a
-- `unit_amount` nor a `unit_amount_decimal` of at most 12 decimal places ('decimal'), or
-- tiered with a tier whose unit amount is a fraction of a minor unit ('tier_decimal', not
-- valued yet). `mrr report` and `mrr push` stop on any (src/engine/priceable.rs) rather than
-- let item_values value such an item at 0.
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
-- The prices billed are the current items' and every invoiced version's (item_history, the
-- versions item_values values, in the subscription's currency), grouped by (price, currency)
-- first: a handful of groups, each with any one subscription to name. Reading item_history
-- rather than the invoice lines took the check from 0.1 s to a few ms at 100 000 x 60 months;
-- one join of both to the subscriptions rather than one each, from 0.40 s to 0.29 s at 1 M.
WITH billed AS (
  SELECT b.price, s.currency, ANY_VALUE(b.subscription) AS subscription
  FROM (
    SELECT price, subscription FROM {{subscription_items}}
    UNION ALL
    SELECT price, subscription FROM {{item_history}} WHERE price IS NOT NULL
  ) b
  JOIN {{subscriptions}} s ON s.id = b.subscription
  GROUP BY b.price, s.currency
),
problems AS (
  SELECT b.price, b.currency, MIN(b.subscription) AS subscription, ANY_VALUE(p.currency) AS price_currency,
         CASE WHEN ANY_VALUE(p.billing_scheme) = 'tiered' THEN ANY_VALUE(t.fractional)
              WHEN b.currency = ANY_VALUE(p.currency) THEN ANY_VALUE(p.unit_amount_decimal)
              ELSE ANY_VALUE(o.unit_amount_decimal) END AS unit_amount_decimal,
         CASE
           WHEN ANY_VALUE(p.id) IS NULL THEN 'missing'
           WHEN ANY_VALUE(p.recurring_usage_type) IS DISTINCT FROM 'licensed' THEN NULL
           WHEN ANY_VALUE(p.billing_scheme) = 'tiered' THEN
             CASE WHEN COUNT(t.price) = 0 THEN 'tiers' WHEN ANY_VALUE(t.fractional) IS NOT NULL THEN 'tier_decimal' END
           WHEN b.currency <> ANY_VALUE(p.currency) AND COUNT(o.price) = 0 THEN 'currency'
           WHEN b.currency = ANY_VALUE(p.currency) AND ANY_VALUE(p.unit_amount) IS NULL
                AND NOT regexp_full_match(COALESCE(ANY_VALUE(p.unit_amount_decimal), ''), '[0-9]{1,18}(\.[0-9]{1,12})?') THEN 'decimal'
           WHEN b.currency <> ANY_VALUE(p.currency) AND ANY_VALUE(o.unit_amount) IS NULL
                AND NOT regexp_full_match(COALESCE(ANY_VALUE(o.unit_amount_decimal), ''), '[0-9]{1,18}(\.[0-9]{1,12})?') THEN 'decimal'
         END AS problem
  FROM billed b
  LEFT JOIN {{prices}} p ON p.id = b.price
  LEFT JOIN {{price_currency_options}} o ON o.price = b.price AND o.currency = b.currency
  -- Each tiered price's tiers in each currency, with the first fractional tier unit amount.
  LEFT JOIN (
    SELECT price, currency, MIN(unit_amount_decimal) FILTER (WHERE unit_amount IS NULL AND unit_amount_decimal IS NOT NULL) AS fractional
    FROM {{price_tiers}} GROUP BY price, currency
  ) t ON t.price = b.price AND t.currency = b.currency
  GROUP BY b.price, b.currency
)
SELECT price, currency, subscription, price_currency, unit_amount_decimal, problem
FROM problems WHERE problem IS NOT NULL ORDER BY price, currency LIMIT 1
