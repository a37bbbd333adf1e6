-- _priceable: the prices that cannot be valued for a subscription's currency, and why (the
-- first one only): not in the snapshot ('missing'), tiered without tiers in that currency
-- ('tiers'), in another currency without a currency option for it ('currency'), or with only a
-- fractional `unit_amount_decimal` ('decimal'). `mrr report` and `mrr push` stop on any
-- (src/engine/priceable.rs) rather than let item_values value such an item at 0.
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
WITH billed AS (
  SELECT subscription, price FROM {{subscription_items}}
  UNION
  SELECT subscription, price FROM {{invoice_lines}}
  WHERE parent_type = 'subscription_item_details' AND subscription IS NOT NULL AND price IS NOT NULL
),
problems AS (
  SELECT b.price, s.currency, MIN(b.subscription) AS subscription, ANY_VALUE(p.currency) AS price_currency,
         ANY_VALUE(p.unit_amount_decimal) AS unit_amount_decimal,
         CASE
           WHEN ANY_VALUE(p.id) IS NULL THEN 'missing'
           WHEN ANY_VALUE(p.recurring_usage_type) IS DISTINCT FROM 'licensed' THEN NULL
           WHEN ANY_VALUE(p.billing_scheme) = 'tiered' THEN
             CASE WHEN COUNT(t.price) = 0 THEN 'tiers' END
           WHEN s.currency <> ANY_VALUE(p.currency) AND COUNT(o.price) = 0 THEN 'currency'
           WHEN s.currency = ANY_VALUE(p.currency) AND ANY_VALUE(p.unit_amount) IS NULL THEN 'decimal'
           WHEN s.currency <> ANY_VALUE(p.currency) AND ANY_VALUE(o.unit_amount) IS NULL THEN 'decimal'
         END AS problem
  FROM billed b
  JOIN {{subscriptions}} s ON s.id = b.subscription
  LEFT JOIN {{prices}} p ON p.id = b.price
  LEFT JOIN {{price_currency_options}} o ON o.price = b.price AND o.currency = s.currency
  LEFT JOIN (SELECT DISTINCT price, currency FROM {{price_tiers}}) t ON t.price = b.price AND t.currency = s.currency
  GROUP BY b.price, s.currency
)
SELECT price, currency, subscription, price_currency, unit_amount_decimal, problem
FROM problems WHERE problem IS NOT NULL ORDER BY price, currency LIMIT 1
