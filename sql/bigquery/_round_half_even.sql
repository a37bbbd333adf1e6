-- Snippet, not a query: {{rhe:N|D}} expands to this with $N and $D substituted.
-- N / D rounded half to even; symmetric for negative N. Exact INT64 arithmetic.
-- MOD is parenthesised: DuckDB-backed emulators rewrite it to `%`, which would bind to `2 *`.
(SIGN($N) * (DIV(ABS($N), $D) + CASE WHEN 2 * (MOD(ABS($N), $D)) > ($D) OR (2 * (MOD(ABS($N), $D)) = ($D) AND (MOD(DIV(ABS($N), $D), 2)) = 1) THEN 1 ELSE 0 END))
