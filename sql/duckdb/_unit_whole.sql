-- Snippet, not a query: {{unit_whole:A|D}} expands to this with $1 (an integer unit amount,
-- null when it is a fraction of a minor unit) and $2 (Stripe's `unit_amount_decimal` text)
-- substituted: the whole minor units of the unit amount. An unreadable decimal is 0 here and
-- refused by the price check (_priceable) before any query reads it.
COALESCE($1, TRY_CAST(split_part($2, '.', 1) AS BIGINT), 0)
