-- _subscription_rows: each row of `valued` (one per subscription and instant: subscription,
-- customer, currency, instant, value_cents, value_frac, single_item, price), its fraction
-- carried into whole minor units so that one value has one form (both parts are >= 0), against
-- the row before it, every row kept: the change (delta_cents, delta_frac, delta_counting), the value
-- after it (value_cents, value_frac, counting), its place among its subscription's rows (nth),
-- whether no earlier row of its subscription is in the same calendar month (month_first), the
-- subscription's next instant (next_instant, NULL for the last), the calendar month of this
-- instant and of the next (month_start, next_month_start: each reader compares and groups by
-- months without truncating 1.2 M instants again) and its item's price before
-- (previous_price). Shared by subscription_changes, over the rows a report values, and the
-- derived table plain_changes, over the plain subscriptions' rows.
--
-- DuckDB only (sql/bigquery/subscription_changes.sql keeps the same window inline).
SELECT subscription, customer, currency, instant AS changed_at,
       value_cents - COALESCE(LAG(value_cents) OVER w, 0) AS delta_cents,
       value_frac - COALESCE(LAG(value_frac) OVER w, 0) AS delta_frac,
       CAST(value_cents > 0 OR value_frac > 0 AS INTEGER)
         - COALESCE(CAST(LAG(value_cents) OVER w > 0 OR LAG(value_frac) OVER w > 0 AS INTEGER), 0) AS delta_counting,
       value_cents, value_frac, CAST(value_cents > 0 OR value_frac > 0 AS INTEGER) AS counting,
       ROW_NUMBER() OVER w AS nth,
       date_trunc('month', make_timestamp(epoch_us(instant))) AS month_start,
       COALESCE(date_trunc('month', make_timestamp(epoch_us(LAG(instant) OVER w))) < month_start, TRUE) AS month_first,
       LEAD(instant) OVER w AS next_instant,
       date_trunc('month', make_timestamp(epoch_us(LEAD(instant) OVER w))) AS next_month_start,
       single_item, price, LAG(price) OVER w AS previous_price
FROM (
  SELECT subscription, customer, currency, instant,
         value_cents + value_frac // 86486400000 AS value_cents, value_frac % 86486400000 AS value_frac,
         single_item, price
  FROM valued
) carried
WINDOW w AS (PARTITION BY subscription ORDER BY instant)
