-- Snippet, not a query: {{readable_decimal:D}} expands to this with $1 (D, a
-- `unit_amount_decimal` text) substituted: whether it is what Stripe sends and the SQL reads,
-- digits with at most 12 decimal places (money::DecimalAmount::parse holds the same rule). A
-- null reads as unreadable.
regexp_full_match(COALESCE($1, ''), '[0-9]{1,18}(\.[0-9]{1,12})?')
