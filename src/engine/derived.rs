//! Derived tables: rows computed from a snapshot's own tables once, when the snapshot is
//! written, so that no report rescans what they summarise (`item_history`: each invoiced
//! item's versions, from 26 M invoice lines at 1 M subscriptions x 60 months;
//! `uninvoiced_items`: the few current items no invoice shows yet, from a join of every
//! current item with every invoiced one; `item_versions`: every item version with what it
//! bills, from the prices' rules; `undiscounted_renewals`: when each discount was seen taken
//! off, from every renewal invoice of the discounted subscriptions; `once_discount_ends`:
//! when each `once` coupon stops, from their invoice lines; `billed_prices`: every price and
//! currency a subscription bills on, which the price check reads, from every item version;
//! `unpaid_since`: when each subscription unpaid now stopped counting, from every invoice;
//! `shared_customers`: the customers with several subscriptions in a currency, from every
//! subscription; `seed_spans`: every subscription `seed_mrr` counts, with its current items'
//! amount and the months it counts from and until, from every current item, its price and
//! its subscription; `several_items`: the subscriptions with more than one item, from every item
//! version; `item_instants`: every item of nearly every subscription at every instant its
//! value may change, from the item versions and the subscriptions; `plain_changes`: the
//! value and change at each of those instants of every subscription with one item and no
//! discount, by `item_values`' own rules).
//!
//! A derived table is part of the snapshot like any other: a Parquet file with its manifest
//! entry and sha256, immutable. Its entry also names what computed it (`derived`: the SQL
//! file and the sha256 of that file and of the derived tables it reads), so it can never go
//! stale: an `mrr` whose SQL differs reads
//! the raw tables instead, as it does for a snapshot written before derived tables existed.
//! `mrr snapshots verify` recomputes each one and compares it row for row. BigQuery never
//! loads them: its SQL computes the same rows from the same raw tables.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::bad_input;
use crate::queries::{render_with, sql_text, Dialect, QueryParams};
use crate::snapshot::{Snapshot, TableEntry};

/// Every derived table, in the order they are computed; each is `sql/duckdb/<name>.sql` over
/// the raw tables and the derived tables before it.
pub const DERIVED: [&str; 12] = [
    "item_history",
    "uninvoiced_items",
    "item_versions",
    "several_items",
    "undiscounted_renewals",
    "once_discount_ends",
    "billed_prices",
    "unpaid_since",
    "shared_customers",
    "seed_spans",
    "item_instants",
    "plain_changes",
];

/// What computes a derived table, as its manifest entry records it: its SQL's digest, which
/// also covers the derivation of every derived table that SQL reads and the text of every
/// other SQL file it includes (such as `_discount_targets`), so that a change there makes
/// this one stale too.
pub fn derivation(name: &str) -> String {
    let text = sql_text(Dialect::DuckDb, name).expect("every derived table has its SQL");
    let fragments = included_fragments(text);
    let mut hasher = Sha256::new();
    hasher.update(text.as_bytes());
    // (a derived table read through an included query, such as item_values, counts too)
    let reads =
        |d: &str| std::iter::once(text).chain(fragments.iter().copied()).any(|t| t.contains(&format!("{{{{{d}}}}}")));
    for read in DERIVED.iter().filter(|d| **d != name && reads(d)) {
        hasher.update(derivation(read).as_bytes());
    }
    for fragment in &fragments {
        hasher.update(fragment.as_bytes());
    }
    let digest = crate::snapshot::hex(&hasher.finalize());
    format!("sql/duckdb/{name}.sql sha256:{}", &digest[..16])
}

/// The text of every SQL file other than a derived table that `text` includes by
/// `{{name}}` or as a snippet (`{{name:..}}`), and of those they include.
fn included_fragments(text: &str) -> Vec<&'static str> {
    let mut seen = Vec::new();
    include_fragments(text, &mut seen);
    seen
}

/// Adds to `seen` each file `text` includes that is not in it yet, then those it includes (a
/// snippet's comment names its own placeholder: each file is read once).
fn include_fragments(text: &str, seen: &mut Vec<&'static str>) {
    let keys = text.split("{{").skip(1).filter_map(|rest| rest.split_once("}}").map(|(key, _)| key));
    let fragments =
        keys.filter(|key| !DERIVED.contains(key)).filter_map(|key| crate::queries::included_file(Dialect::DuckDb, key));
    for fragment in fragments.collect::<Vec<_>>() {
        if !seen.iter().any(|f| std::ptr::eq(*f, fragment)) {
            seen.push(fragment);
            include_fragments(fragment, seen);
        }
    }
}

/// Derived tables depend on the raw tables alone, never on the as-of instant or the metric
/// options: these parameters render them (the as-of instant the end of time, so that one a
/// derived table renders, such as `item_values` for `plain_changes`, cuts no instant off).
const PARAMS: QueryParams = QueryParams {
    as_of: crate::queries::END_OF_TIME,
    options: crate::metrics::MetricOptions {
        discounts: crate::metrics::DiscountRule::Recurring,
        churn_at: crate::metrics::ChurnAt::End,
    },
    discount_lists: false,
    customer_discount_lists: false,
    plain_changes_read: false,
};

/// The SQL of a derived table over a snapshot's raw tables and its current derived tables,
/// reading those in `materialized` from the tables of those names (an error names a table it lacks).
pub fn sql(snapshot: &Snapshot, name: &str, materialized: &[&str]) -> anyhow::Result<String> {
    super::duckdb::render_reusing(snapshot, name, &PARAMS, materialized)
}

/// Computes every derived table of the snapshot being written in `dir` (whose raw tables are
/// closed and described by `tables`) and adds its entry to `tables`.
pub fn write(dir: &Path, tables: &mut Vec<TableEntry>) -> anyhow::Result<()> {
    let conn = super::duckdb::open()?;
    let raw = |table: &str| super::duckdb::parquet_ref(&dir.join(format!("{table}.parquet")));
    for name in DERIVED {
        // A derived table another reads is read from its file, just written, not computed again.
        let earlier: Vec<String> = tables.iter().filter(|t| t.derived.is_some()).map(|t| t.name.clone()).collect();
        let written = |read: &str| {
            earlier.iter().any(|e| e == read).then(|| super::duckdb::parquet_ref(&dir.join(format!("{read}.parquet"))))
        };
        let sql = render_with(Dialect::DuckDb, name, &PARAMS, &raw, &written)?;
        let started = std::time::Instant::now();
        let file = format!("{name}.parquet");
        let path = dir.join(&file);
        // Sorted by its key, so that the same tables give the same bytes (and sha256).
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM ({sql}) ORDER BY ALL) TO {} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {})",
            super::duckdb::sql_string(&path),
            crate::snapshot::ROW_GROUP_ROWS
        ))
        .map_err(|e| anyhow::anyhow!("deriving {name} (sql/duckdb/{name}.sql) into {}: {e}", path.display()))?;
        exact_columns(&conn, name, &path)?;
        let (sha256, bytes) = crate::snapshot::file_digest(&path)?;
        let rows = crate::snapshot::parquet_rows(&path)?;
        tracing::debug!(rows, elapsed = ?started.elapsed(), "derived {name}");
        tables.push(TableEntry { name: name.to_string(), file, rows, bytes, sha256, derived: Some(derivation(name)) });
    }
    Ok(())
}

/// Fails when a derived table's file holds a floating-point column: every value the metrics
/// read is exact, and DuckDB writes a HUGEINT (a SUM of BIGINTs) to Parquet as a DOUBLE.
fn exact_columns(conn: &duckdb::Connection, name: &str, path: &Path) -> anyhow::Result<()> {
    let describe =
        format!("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {})", super::duckdb::parquet_ref(path));
    let mut stmt = conn.prepare(&describe)?;
    let columns = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
    for column in columns {
        let (column, ty) = column?;
        if matches!(ty.as_str(), "DOUBLE" | "FLOAT" | "REAL") {
            anyhow::bail!(
                "derived table {name} (sql/duckdb/{name}.sql): column {column} is {ty}, not exact; cast it to BIGINT"
            );
        }
    }
    Ok(())
}

/// The file of a derived table the snapshot holds, when this `mrr` computes it the same way;
/// `None` otherwise (an older snapshot, or another version of its SQL): then queries compute it.
pub fn current(snapshot: &Snapshot, name: &str) -> Option<PathBuf> {
    let entry = snapshot.manifest.tables.iter().find(|t| t.name == name)?;
    (entry.derived.as_deref() == Some(derivation(name).as_str())).then(|| snapshot.dir.join(&entry.file))
}

/// Everything `mrr snapshots verify` checks: every file's checksum and row count
/// ([`crate::snapshot::verify`]), then every derived table against its recomputation.
pub fn verify_all(snapshot: &Snapshot) -> anyhow::Result<Vec<String>> {
    let mut report = crate::snapshot::verify(snapshot)?;
    report.extend(verify(snapshot)?);
    Ok(report)
}

/// Recomputes every derived table the snapshot holds from its raw tables and compares the
/// two row for row; a difference is a failed check (exit 1). One derived by another version
/// of its SQL is reported, not compared.
fn verify(snapshot: &Snapshot) -> anyhow::Result<Vec<String>> {
    let conn = super::duckdb::open()?;
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for entry in snapshot.manifest.tables.iter().filter(|t| t.derived.is_some()) {
        let name = entry.name.as_str();
        if !DERIVED.contains(&name) {
            problems.push(format!("{name}: a derived table this mrr does not know"));
            continue;
        }
        let Some(path) = current(snapshot, name) else {
            report.push(format!(
                "old {name:<20} derived by {}; this mrr derives it by {} and computes it from the raw tables",
                entry.derived.as_deref().unwrap_or_default(),
                derivation(name)
            ));
            continue;
        };
        let fresh = sql(snapshot, name, &[])?;
        let stored = format!("SELECT * FROM {}", super::duckdb::parquet_ref(&path));
        let differing: i64 = conn
            .query_row(
                &format!(
                    "WITH fresh AS ({fresh}), stored AS ({stored})
                     SELECT COUNT(*) FROM ((FROM stored EXCEPT ALL FROM fresh) UNION ALL (FROM fresh EXCEPT ALL FROM stored))"
                ),
                [],
                |row| row.get(0),
            )
            .map_err(|e| bad_input(format!("recomputing {name} (sql/duckdb/{name}.sql): {e}")))?;
        if differing == 0 {
            report.push(format!("ok  {name:<20} {:>10} rows  recomputed from the raw tables: equal", entry.rows));
        } else {
            problems.push(format!(
                "{}: differs from its recomputation from the raw tables ({differing} rows in one and not the other)",
                path.display()
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(report),
        false => Err(crate::snapshot::failed_verification(snapshot, &problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_digest(name: &str) -> String {
        let text = sql_text(Dialect::DuckDb, name).unwrap();
        format!("sql/duckdb/{name}.sql sha256:{}", &crate::snapshot::hex(&Sha256::digest(text.as_bytes()))[..16])
    }

    /// A table that reads another derived table, or includes a shared SQL fragment, goes stale
    /// with it; one that reads none keeps the digest of its own SQL alone, as snapshots written
    /// before the second existed record.
    #[test]
    fn a_derivation_covers_the_derived_tables_and_fragments_its_sql_reads() {
        assert_eq!(derivation("item_history"), text_digest("item_history"));
        assert!(sql_text(Dialect::DuckDb, "uninvoiced_items").unwrap().contains("{{item_history}}"));
        assert_ne!(derivation("uninvoiced_items"), text_digest("uninvoiced_items"));
        assert!(derivation("uninvoiced_items").starts_with("sql/duckdb/uninvoiced_items.sql sha256:"));
        // A shared fragment it includes is part of its SQL.
        assert!(sql_text(Dialect::DuckDb, "undiscounted_renewals").unwrap().contains("{{_discount_targets}}"));
        assert_ne!(derivation("undiscounted_renewals"), text_digest("undiscounted_renewals"));
        // So is a snippet (`{{name:..}}`), once, though its own comment names its placeholder.
        let included =
            included_fragments("{{_discount_targets}} {{invoices}} {{item_history}} {{cents:a|b}} {{cents:c|d}}");
        assert_eq!(included.len(), 2);
        assert!(included.contains(&sql_text(Dialect::DuckDb, "_cents").unwrap()));
        assert!(sql_text(Dialect::DuckDb, "item_versions").unwrap().contains("{{line_amount:"));
        assert!(included_fragments(sql_text(Dialect::DuckDb, "item_versions").unwrap())
            .contains(&sql_text(Dialect::DuckDb, "_line_amount").unwrap()));
    }

    /// A SUM of BIGINTs is a HUGEINT, which DuckDB writes to Parquet as a DOUBLE: such a
    /// column is refused by name, an exact one passes.
    #[test]
    fn a_derived_table_with_a_floating_point_column_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::duckdb::open().unwrap();
        let path = dir.path().join("t.parquet");
        let sql =
            |select: &str| format!("COPY ({select}) TO {} (FORMAT parquet)", super::super::duckdb::sql_string(&path));
        conn.execute_batch(&sql("SELECT 'a' AS id, SUM(x) AS amount FROM (VALUES (1::BIGINT), (2)) v(x)")).unwrap();
        let err = exact_columns(&conn, "t", &path).unwrap_err().to_string();
        assert!(err.contains("column amount is DOUBLE") && err.contains("sql/duckdb/t.sql"), "{err}");
        conn.execute_batch(&sql(
            "SELECT 'a' AS id, CAST(SUM(x) AS BIGINT) AS amount FROM (VALUES (1::BIGINT), (2)) v(x)",
        ))
        .unwrap();
        assert!(exact_columns(&conn, "t", &path).is_ok());
    }
}
