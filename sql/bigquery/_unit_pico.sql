-- Snippet, not a query: {{unit_pico:A|D}} expands to this with $1 and $2 as in _unit_whole:
-- the fraction of a minor unit that only the decimal holds (at most 12 places), in 10^-12
-- minor units; 0 for a whole amount.
IF($1 IS NULL AND STRPOS($2, '.') > 0, COALESCE(SAFE_CAST(RPAD(SUBSTR($2, STRPOS($2, '.') + 1), 12, '0') AS INT64), 0), 0)
