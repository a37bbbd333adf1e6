//! `mrr snapshots diff A B`: the reconciliation of two snapshots. Per table, the rows added,
//! removed and changed (matched by each table's key, with the columns that changed), and per
//! month and currency the MRR of each. Both snapshots are only read (the metric results
//! land under each one's `results/`, as after `mrr report`).

use serde::Serialize;
use serde_json::Value;

use crate::engine::duckdb::{open, table_sql};
use crate::metrics::MetricOptions;
use crate::snapshot::schema::{key_columns, TABLES};
use crate::snapshot::Snapshot;

/// How many ids of each kind of difference are named per table.
const EXAMPLES: usize = 5;

/// One table compared.
#[derive(Debug, Serialize, PartialEq)]
pub struct TableDiff {
    pub table: &'static str,
    pub rows_a: u64,
    pub rows_b: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// Column name and how many matched rows differ in it, for every column that does.
    pub changed_columns: Vec<(String, u64)>,
    /// A few keys of each: added, removed, changed (smallest first).
    pub examples: Examples,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Examples {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl TableDiff {
    pub fn differs(&self) -> bool {
        self.added + self.removed + self.changed > 0
    }
}

/// MRR of one month and currency in each snapshot (minor units; absent: no row).
#[derive(Debug, Serialize, PartialEq)]
pub struct MrrDiff {
    pub month: String,
    pub currency: String,
    pub mrr_a: Option<i64>,
    pub mrr_b: Option<i64>,
}

/// The whole comparison.
#[derive(Debug, Serialize)]
pub struct SnapshotDiff {
    pub a: String,
    pub b: String,
    pub identical: bool,
    pub options: MetricOptions,
    /// Tables left out on request (`--ignore`).
    pub ignored: Vec<String>,
    pub tables: Vec<TableDiff>,
    /// Only the months and currencies whose MRR differs.
    pub mrr: Vec<MrrDiff>,
}

/// Compares every table but `ignore`, and the monthly MRR under `options`.
pub fn diff(a: &Snapshot, b: &Snapshot, ignore: &[String], options: MetricOptions) -> anyhow::Result<SnapshotDiff> {
    for name in ignore {
        if !TABLES.iter().any(|t| t.name == name) {
            let known: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
            return Err(crate::error::bad_input(format!(
                "--ignore {name}: no such table (tables: {})",
                known.join(", ")
            )));
        }
    }
    let conn = open()?;
    let mut tables = Vec::new();
    for def in TABLES.iter().filter(|t| !ignore.iter().any(|i| i == t.name)) {
        let _span = tracing::info_span!("diff", table = def.name).entered();
        tables.push(diff_table(&conn, a, b, def.name)?);
    }
    let mrr = diff_mrr(a, b, options)?;
    let identical = mrr.is_empty() && !tables.iter().any(TableDiff::differs);
    Ok(SnapshotDiff {
        a: a.manifest.id.clone(),
        b: b.manifest.id.clone(),
        identical,
        options,
        ignored: ignore.to_vec(),
        tables,
        mrr,
    })
}

fn diff_table(conn: &duckdb::Connection, a: &Snapshot, b: &Snapshot, table: &'static str) -> anyhow::Result<TableDiff> {
    let def = crate::snapshot::schema::table(table);
    let key = key_columns(table);
    // A key as one text, for examples: the columns joined by '/'.
    let key_text = |side: &str| {
        let parts: Vec<String> = key.iter().map(|c| format!("CAST({side}.\"{c}\" AS VARCHAR)")).collect();
        format!("concat_ws('/', {})", parts.join(", "))
    };
    let join = key.iter().map(|c| format!("a.\"{c}\" = b.\"{c}\"")).collect::<Vec<_>>().join(" AND ");
    let others: Vec<&str> = def.columns.iter().map(|c| c.name).filter(|c| !key.contains(c)).collect();
    let differs = |c: &str| format!("a.\"{c}\" IS DISTINCT FROM b.\"{c}\"");
    let any_differs = if others.is_empty() {
        "FALSE".to_string()
    } else {
        others.iter().map(|c| differs(c)).collect::<Vec<_>>().join(" OR ")
    };
    let with =
        format!("WITH a AS (SELECT * FROM {}), b AS (SELECT * FROM {})", table_sql(a, table)?, table_sql(b, table)?);
    let failed = |e: duckdb::Error| {
        crate::error::bad_input(format!("comparing table {table} of {} and {}: {e}", a.manifest.id, b.manifest.id))
    };
    let count = |sql: String| -> anyhow::Result<u64> {
        let n: i64 = conn.query_row(&sql, [], |r| r.get(0)).map_err(failed)?;
        Ok(n as u64)
    };
    let ids = |sql: String| -> anyhow::Result<Vec<String>> {
        let mut stmt = conn.prepare(&sql).map_err(failed)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(failed)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(failed)
    };
    let only = |from: &str, not_in: &str| {
        format!(
            "{with} SELECT {} AS k FROM {from} WHERE NOT EXISTS (SELECT 1 FROM {not_in} WHERE {})",
            key_text(from),
            key.iter()
                .map(|c| format!("{not_in}.\"{c}\" IS NOT DISTINCT FROM {from}.\"{c}\""))
                .collect::<Vec<_>>()
                .join(" AND ")
        )
    };
    let changed_rows = format!("{with} SELECT {} AS k FROM a JOIN b ON {join} WHERE {any_differs}", key_text("a"));
    // One pass over the joined rows: the rows that changed, and per column how many.
    let flag = |condition: &str| format!("CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT)");
    let mut sums = vec![flag(&any_differs)];
    sums.extend(others.iter().map(|c| flag(&differs(c))));
    let sql = format!("{with} SELECT {} FROM a JOIN b ON {join}", sums.join(", "));
    let mut stmt = conn.prepare(&sql).map_err(failed)?;
    let counts: Vec<u64> = stmt
        .query_row([], |r| (0..sums.len()).map(|i| r.get::<_, Option<i64>>(i)).collect::<Result<Vec<_>, _>>())
        .map_err(failed)?
        .into_iter()
        .map(|n| n.unwrap_or(0) as u64)
        .collect();
    let changed = counts[0];
    let changed_columns =
        others.iter().zip(&counts[1..]).filter(|(_, n)| **n > 0).map(|(c, n)| (c.to_string(), *n)).collect();
    let added = count(format!("SELECT COUNT(*) FROM ({})", only("b", "a")))?;
    let removed = count(format!("SELECT COUNT(*) FROM ({})", only("a", "b")))?;
    // Examples only where there is something to show (each is another pass).
    let examples = |n: u64, sql: &str| {
        if n == 0 {
            return Ok(Vec::new());
        }
        ids(format!("SELECT k FROM ({sql}) ORDER BY k LIMIT {EXAMPLES}"))
    };
    Ok(TableDiff {
        table,
        rows_a: count(format!("{with} SELECT COUNT(*) FROM a"))?,
        rows_b: count(format!("{with} SELECT COUNT(*) FROM b"))?,
        added,
        removed,
        changed,
        changed_columns,
        examples: Examples {
            added: examples(added, &only("b", "a"))?,
            removed: examples(removed, &only("a", "b"))?,
            changed: examples(changed, &changed_rows)?,
        },
    })
}

/// The months and currencies whose MRR differs between the two snapshots.
fn diff_mrr(a: &Snapshot, b: &Snapshot, options: MetricOptions) -> anyhow::Result<Vec<MrrDiff>> {
    let monthly = |s: &Snapshot| -> anyhow::Result<std::collections::BTreeMap<(String, String), i64>> {
        let results = crate::engine::report_duckdb(s, options)?;
        let rows = crate::engine::rows_of(&results, "mrr_monthly")?;
        Ok(rows
            .iter()
            .map(|r| {
                let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                ((text("month"), text("currency")), r.get("mrr").and_then(Value::as_i64).unwrap_or_default())
            })
            .collect())
    };
    let (ma, mb) = (monthly(a)?, monthly(b)?);
    let keys: std::collections::BTreeSet<_> = ma.keys().chain(mb.keys()).cloned().collect();
    Ok(keys
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (ma.get(&k).copied(), mb.get(&k).copied());
            (x != y).then_some(MrrDiff { month: k.0, currency: k.1, mrr_a: x, mrr_b: y })
        })
        .collect())
}

/// The comparison for people: one line per table that differs, one per month whose MRR does,
/// and the verdict.
pub fn render_text(d: &SnapshotDiff) -> String {
    let mut out = format!("snapshots {} and {}\n", d.a, d.b);
    let differing: Vec<&TableDiff> = d.tables.iter().filter(|t| t.differs()).collect();
    for t in &d.tables {
        if !t.differs() {
            continue;
        }
        let columns: Vec<String> = t.changed_columns.iter().map(|(c, n)| format!("{c} ({n})")).collect();
        out.push_str(&format!(
            "  {}: {} -> {} rows; {} added, {} removed, {} changed{}\n",
            t.table,
            t.rows_a,
            t.rows_b,
            t.added,
            t.removed,
            t.changed,
            if columns.is_empty() { String::new() } else { format!(" in {}", columns.join(", ")) }
        ));
        for (what, ids) in
            [("added", &t.examples.added), ("removed", &t.examples.removed), ("changed", &t.examples.changed)]
        {
            if !ids.is_empty() {
                out.push_str(&format!("    {what}: {}\n", ids.join(", ")));
            }
        }
    }
    for m in &d.mrr {
        let show = |v: Option<i64>| v.map_or("-".to_string(), crate::money::cents_text);
        out.push_str(&format!("  MRR {} {}: {} -> {}\n", m.month, m.currency, show(m.mrr_a), show(m.mrr_b)));
    }
    let compared = d.tables.len();
    if d.identical {
        out.push_str(&format!("identical: {compared} tables and every month's MRR\n"));
    } else {
        out.push_str(&format!(
            "differ: {} of {compared} tables, MRR in {} month-currencies\n",
            differing.len(),
            d.mrr.len()
        ));
    }
    if !d.ignored.is_empty() {
        out.push_str(&format!("(not compared: {})\n", d.ignored.join(", ")));
    }
    out
}
