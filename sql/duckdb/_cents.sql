-- Snippet, not a query: {{cents:C|F}} expands to this with $C and $F substituted.
-- Port of sql/bigquery/_cents.sql: a split value (C whole minor units + F / 86486400000 of
-- one) rounded half to even to whole minor units, with `//` and `%` for DIV and MOD.
-- R = (((($F) % 86486400000) + 86486400000) % 86486400000)
(($C) + ((($F) - (((($F) % 86486400000) + 86486400000) % 86486400000)) // 86486400000)
  + CASE WHEN 2 * (((($F) % 86486400000) + 86486400000) % 86486400000) > 86486400000
           OR (2 * (((($F) % 86486400000) + 86486400000) % 86486400000) = 86486400000
               AND ((($C) + ((($F) - (((($F) % 86486400000) + 86486400000) % 86486400000)) // 86486400000)) % 2) <> 0)
         THEN 1 ELSE 0 END)
