-- Snippet, not a query: {{cents:C|F}} expands to this with $1 (C) and $2 (F) substituted.
-- A split value (C whole minor units + F / 86486400000 of one, F of any sign or size: a sum of
-- fractions) rounded half to even to whole minor units. F is first brought into
-- [0, 86486400000) (R below), the whole units it held moved to C, so no INT64 holds more than
-- whole minor units plus one fraction. Every DIV and MOD argument in parentheses (the
-- emulator rewrites them to // and %).
-- R = (MOD((MOD(($2), 86486400000) + 86486400000), 86486400000))
(($1) + (DIV((($2) - (MOD((MOD(($2), 86486400000) + 86486400000), 86486400000))), 86486400000))
  + CASE WHEN 2 * (MOD((MOD(($2), 86486400000) + 86486400000), 86486400000)) > 86486400000
           OR (2 * (MOD((MOD(($2), 86486400000) + 86486400000), 86486400000)) = 86486400000
               AND (MOD((($1) + (DIV((($2) - (MOD((MOD(($2), 86486400000) + 86486400000), 86486400000))), 86486400000))), 2)) <> 0)
         THEN 1 ELSE 0 END)
