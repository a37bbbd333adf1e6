-- _coupons_known: a discount of a subscription or customer whose coupon the snapshot lacks
-- (the first one only). item_values joins each discount to its coupon: without this check
-- such a discount would be dropped silently and MRR overstated. `mrr report` and `mrr push` stop on it
-- (src/engine/priceable.rs). A coupon deleted after its redemptions is in no list and comes
-- only expanded in its discounts (docs/stripe-behaviour.md, D1).
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
SELECT d.id AS discount, d.coupon, COALESCE('subscription ' || d.subscription, 'customer ' || d.customer) AS owner
FROM {{discounts}} d
LEFT JOIN {{coupons}} c ON c.id = d.coupon
WHERE d.invoice IS NULL AND (d.subscription IS NOT NULL OR d.customer IS NOT NULL) AND d.coupon IS NOT NULL
  AND c.id IS NULL
ORDER BY d.id
LIMIT 1
