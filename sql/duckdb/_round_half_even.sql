-- Snippet, not a query: {{rhe:N|D}} expands to this with $N and $D substituted.
-- N / D rounded half to even; symmetric for negative N. Integer operators only
-- (`//` and `%`), because DuckDB's `/` turns exact numbers into DOUBLE.
(SIGN($N) * ((ABS($N) // ($D)) + CASE WHEN 2 * (ABS($N) % ($D)) > ($D) OR (2 * (ABS($N) % ($D)) = ($D) AND (ABS($N) // ($D)) % 2 = 1) THEN 1 ELSE 0 END))
