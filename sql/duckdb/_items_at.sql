-- _items_at: each item active at each of `breakpoints` (subscription, instant) with what it
-- bills, and its subscription's customer, currency and dates, from the CTEs `own_subs` and
-- `own_versions` of the query that includes it; an instant without an item has a row with a
-- NULL item. Shared by item_values and the derived table item_instants (as _own_instants).
--
-- DuckDB only (sql/bigquery/item_values.sql keeps its item_at).
SELECT b.subscription, b.instant, v.item, v.price, v.product, v.per_year, v.recurring_interval_count, v.amount,
       s.customer, s.currency, s.start_date, s.trial_start, s.trial_end, s.ended_at, s.canceled_at
FROM breakpoints b
JOIN own_subs s ON s.subscription = b.subscription
LEFT JOIN own_versions v ON v.subscription = b.subscription AND v.effective_at <= b.instant AND b.instant < v.until
