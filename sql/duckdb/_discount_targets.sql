-- _discount_targets: each discount with each subscription it applies to: its own
-- subscription, or one item of it (`item` set, docs/stripe-behaviour.md, D7), or, for a
-- customer-level discount (`inherited`), every subscription of its customer (D3). Read
-- by the checks run before any query (_coupon_currencies, _discounts_stacked), the derived
-- tables undiscounted_renewals and once_discount_ends, and discount_windows (BigQuery's
-- discount_windows keeps its own pairing).
--
-- DuckDB only.
SELECT d.id AS discount, d.coupon, COALESCE(d.subscription, i.subscription) AS subscription,
       i.subscription_item AS item, FALSE AS inherited, d.start, d."end"
FROM {{discounts}} d LEFT JOIN {{item_discounts}} i ON i.discount = d.id
WHERE COALESCE(d.subscription, i.subscription) IS NOT NULL
UNION ALL
SELECT d.id, d.coupon, s.id, NULL, TRUE, d.start, d."end"
FROM {{discounts}} d JOIN {{subscriptions}} s ON s.customer = d.customer
WHERE d.subscription IS NULL AND d.invoice IS NULL
  AND NOT EXISTS (SELECT 1 FROM {{item_discounts}} i WHERE i.discount = d.id)
