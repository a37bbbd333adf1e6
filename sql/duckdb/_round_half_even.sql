-- Snippet, not a query: {{round_half_even:N|D}} expands to this with $1 (N) and $2 (D) substituted.
-- N / D rounded half to even; symmetric for negative N. Integer operators only
-- (`//` and `%`), because DuckDB's `/` turns exact numbers into DOUBLE.
(SIGN($1) * ((ABS($1) // ($2)) + CASE WHEN 2 * (ABS($1) % ($2)) > ($2) OR (2 * (ABS($1) % ($2)) = ($2) AND (ABS($1) // ($2)) % 2 = 1) THEN 1 ELSE 0 END))
