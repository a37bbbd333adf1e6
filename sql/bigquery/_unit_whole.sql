-- Snippet, not a query: {{unit_whole:A|D}} expands to this with $1 (an integer unit amount,
-- null when it is a fraction of a minor unit) and $2 (Stripe's `unit_amount_decimal` text)
-- substituted: the whole minor units of the unit amount. An unreadable decimal is 0 here and
-- refused by the price check before any query reads it.
COALESCE($1, SAFE_CAST(IF(STRPOS($2, '.') = 0, $2, SUBSTR($2, 1, STRPOS($2, '.') - 1)) AS INT64), 0)
