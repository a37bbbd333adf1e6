-- Snippet, not a query: {{line_amount:W|P|U}} expands to this with $1 (whole minor units), $2
-- (10^-12 minor units, _unit_pico) and $3 (units) substituted: what the units bill on one
-- invoice line, the fraction rounded to a whole minor unit, a half up, as Stripe rounds a line
-- (docs/metrics.md). The pico part is multiplied as two six-digit halves so that no product
-- leaves INT64. (Every DIV and MOD argument in parentheses: the emulator rewrites them to //
-- and %.)
($1 * $3 + DIV((DIV(($2), 1000000) * $3 + 500000 + DIV((MOD(($2), 1000000) * $3), 1000000)), 1000000))
