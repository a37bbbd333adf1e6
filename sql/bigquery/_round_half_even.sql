-- Snippet, not a query: {{round_half_even:N|D}} expands to this with $1 (N) and $2 (D) substituted.
-- N / D rounded half to even; symmetric for negative N. Exact INT64 arithmetic.
-- MOD is parenthesised: DuckDB-backed emulators rewrite it to `%`, which would bind to `2 *`.
(SIGN($1) * (DIV(ABS($1), $2) + CASE WHEN 2 * (MOD(ABS($1), $2)) > ($2) OR (2 * (MOD(ABS($1), $2)) = ($2) AND (MOD(DIV(ABS($1), $2), 2)) = 1) THEN 1 ELSE 0 END))
