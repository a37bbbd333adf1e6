-- Snippet, not a query: {{cents:C|F}} expands to this with $1 (C) and $2 (F) substituted.
-- Port of sql/bigquery/_cents.sql: a split value (C whole minor units + F / 86486400000 of
-- one) rounded half to even to whole minor units, with `//` and `%` for DIV and MOD.
-- R = (((($2) % 86486400000) + 86486400000) % 86486400000)
(($1) + ((($2) - (((($2) % 86486400000) + 86486400000) % 86486400000)) // 86486400000)
  + CASE WHEN 2 * (((($2) % 86486400000) + 86486400000) % 86486400000) > 86486400000
           OR (2 * (((($2) % 86486400000) + 86486400000) % 86486400000) = 86486400000
               AND ((($1) + ((($2) - (((($2) % 86486400000) + 86486400000) % 86486400000)) // 86486400000)) % 2) <> 0)
         THEN 1 ELSE 0 END)
