-- _discounts_stacked: a subscription whose discounts mrr cannot value yet (the first one
-- only): several discounts of its own at once, or a discount on one of its items. Stripe allows
-- both ("The discounts applied to the subscription. Subscription item discounts are applied
-- before subscription discounts."), but how it stacks several discounts of one level is not in
-- any source we have (docs/stripe-behaviour.md, D5). item_values applies one discount per
-- subscription at a time: without this check the others would be dropped or, overlapping,
-- counted twice. `mrr report` and `mrr push` stop on it (src/engine/priceable.rs), unless
-- discounts are not applied at all (`--discounts none`).
--
-- DuckDB only: a check of the snapshot, run before either engine's queries.
SELECT subscription, owner, STRING_AGG(discount, ', ' ORDER BY position) AS discounts, COUNT(*) AS listed
FROM {{subscription_discounts}}
GROUP BY subscription, owner
HAVING owner <> subscription OR COUNT(*) > 1
ORDER BY subscription, owner
LIMIT 1
