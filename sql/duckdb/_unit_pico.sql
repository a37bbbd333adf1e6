-- Snippet, not a query: {{unit_pico:A|D}} expands to this with $1 and $2 as in _unit_whole:
-- the fraction of a minor unit that only the decimal holds (at most 12 places), in 10^-12
-- minor units; 0 for a whole amount.
CASE WHEN $1 IS NULL AND contains($2, '.') THEN COALESCE(TRY_CAST(rpad(split_part($2, '.', 2), 12, '0') AS BIGINT), 0) ELSE 0 END
