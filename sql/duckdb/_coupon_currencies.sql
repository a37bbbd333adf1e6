-- _coupon_currencies: an amount-off coupon that discounts a subscription in a currency it has
-- no amount in, neither its own nor a currency option (the first one only). Stripe redeems an
-- amount-off coupon only in a currency it has an amount for, so such a row means the snapshot
-- lacks the coupon's `currency_options` (pulled before schema version 6, D6): item_values
-- would take nothing off, and MRR would be overstated. `mrr report` and `mrr push` stop on it
-- (src/engine/priceable.rs), unless discounts are not applied at all (`--discounts none`).
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
SELECT t.discount, t.coupon, t.subscription, s.currency, c.currency AS coupon_currency
FROM {{_discount_targets}} t
JOIN {{subscriptions}} s ON s.id = t.subscription
JOIN {{coupons}} c ON c.id = t.coupon
LEFT JOIN {{coupon_currency_options}} o ON o.coupon = c.id AND o.currency = s.currency
WHERE c.amount_off IS NOT NULL AND c.currency <> s.currency AND o.coupon IS NULL
ORDER BY t.discount, t.subscription
LIMIT 1
