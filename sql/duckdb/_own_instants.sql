-- _own_instants: each instant at which a subscription's own objects may change its value
-- (subscription, instant; repeats left in): its item versions' starts (`own_versions`), its
-- start, trial end and end (`own_subs`) and when it stopped counting as unpaid (`own_unpaid`),
-- from the CTEs of those names of the query that includes it. Shared by item_values, for the
-- subscriptions it values itself, and the derived table item_instants, for the others.
--
-- DuckDB only (sql/bigquery/item_values.sql lists them in its breakpoints).
SELECT subscription, effective_at AS instant FROM own_versions
UNION ALL SELECT subscription, start_date FROM own_subs
UNION ALL SELECT subscription, trial_end FROM own_subs WHERE trial_end IS NOT NULL
UNION ALL SELECT subscription, ended_at FROM own_subs WHERE ended_at IS NOT NULL
UNION ALL SELECT subscription, unpaid_at FROM own_unpaid WHERE unpaid_at IS NOT NULL
