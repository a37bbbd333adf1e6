//! DuckDB, in-process, straight over a snapshot's Parquet files (no import step).

use arrow::array::RecordBatch;

use crate::error::bad_input;
use crate::queries::{render_with, Dialect, QueryParams, QUERIES};
use crate::snapshot::Snapshot;

/// An in-memory DuckDB that never downloads anything: extensions are neither installed nor
/// autoloaded (Parquet is built in), so a query either runs offline or fails clearly.
pub fn open() -> anyhow::Result<duckdb::Connection> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch("SET autoinstall_known_extensions = false; SET autoload_known_extensions = false;")?;
    Ok(conn)
}

/// The query's SQL with every placeholder resolved for this snapshot.
pub fn resolved_sql(
    snapshot: &Snapshot,
    query: &str,
    options: crate::metrics::MetricOptions,
) -> anyhow::Result<String> {
    render_for(snapshot, query, &QueryParams::of(snapshot, options)?)
}

fn render_for(snapshot: &Snapshot, query: &str, params: &QueryParams) -> anyhow::Result<String> {
    render_reusing(snapshot, query, params, &[])
}

/// Renders a query, reading the bases in `materialized` from temporary tables of the same name
/// and each derived table from the snapshot's file when it holds a current one
/// ([`super::derived::current`]); any other is computed inline.
pub(super) fn render_reusing(
    snapshot: &Snapshot,
    query: &str,
    params: &QueryParams,
    materialized: &[&str],
) -> anyhow::Result<String> {
    let missing = std::cell::RefCell::new(None);
    let table_ref = |table: &str| match table_sql(snapshot, table) {
        Ok(sql) => sql,
        Err(e) => {
            missing.borrow_mut().get_or_insert(e);
            "missing".into()
        }
    };
    let reuse = |q: &str| {
        let derived = || super::derived::current(snapshot, q).map(|path| parquet_ref(&path));
        materialized.contains(&q).then(|| q.to_string()).or_else(derived)
    };
    let sql = render_with(Dialect::DuckDb, query, params, &table_ref, &reuse)?;
    match missing.take() {
        Some(e) => Err(e),
        None => Ok(sql),
    }
}

/// How DuckDB reads a snapshot table: its Parquet file, or no rows for a table the snapshot predates.
pub fn table_sql(snapshot: &Snapshot, table: &str) -> anyhow::Result<String> {
    Ok(match snapshot.table_path_if_any(table)? {
        Some(path) => parquet_ref(&path),
        None => empty_table(table),
    })
}

/// DuckDB's reference to a Parquet file.
pub fn parquet_ref(path: &std::path::Path) -> String {
    format!("read_parquet({})", sql_string(path))
}

/// A path as a SQL string literal.
pub fn sql_string(path: &std::path::Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// A table with no rows and the table's columns, for a snapshot older than the table.
fn empty_table(table: &str) -> String {
    use crate::snapshot::schema::{table as def, Kind};
    let columns: Vec<String> = def(table)
        .columns
        .iter()
        .map(|c| {
            let ty = match c.kind {
                Kind::Str => "VARCHAR",
                Kind::I64 => "BIGINT",
                Kind::Ts => "TIMESTAMPTZ",
                Kind::Bool => "BOOLEAN",
                Kind::F64 => "DOUBLE",
            };
            format!("CAST(NULL AS {ty}) AS \"{}\"", c.name)
        })
        .collect();
    format!("(SELECT {} WHERE FALSE)", columns.join(", "))
}

/// The queries other queries read, in the order they are computed: the discounts' windows
/// feed every valuation (item_values), which feeds each subscription's changes, which feed
/// customers (and plans, for subscriptions with one item); customers feed months.
/// As tables, their row counts are known to DuckDB's planner, which cannot estimate a CTE's:
/// it built item_values' joins with the few discount windows on the 1.2 M item rows instead
/// (0.5 s at 1 M subscriptions). subscription_changes is a view: nearly all its rows are
/// read from the derived plain_changes, and reading that file again for each of its two
/// readers costs less than copying its 1.2 M rows into a table (0.2 s at 1 M subscriptions).
const SHARED_BASES: [(&str, Kept); 4] = [
    ("discount_windows", Kept::Table),
    ("item_values", Kept::Table),
    ("subscription_changes", Kept::View),
    ("mrr_by_customer", Kept::Table),
];

/// How a shared base is kept for the queries that read it.
#[derive(Clone, Copy)]
enum Kept {
    /// Computed once, its rows stored.
    Table,
    /// Recomputed by each reader.
    View,
}

/// Runs every query of [`QUERIES`] in one connection, computing each shared base once;
/// `on_result` sees each query's batches as soon as they are computed.
pub fn run_all(
    snapshot: &Snapshot,
    params: &QueryParams,
    on_result: &mut dyn FnMut(&'static str, &[RecordBatch]),
) -> anyhow::Result<Vec<(&'static str, Vec<RecordBatch>)>> {
    let conn = open()?;
    let failed = |query: &str, e: duckdb::Error| bad_input(format!("sql/duckdb/{query}.sql failed in DuckDB: {e}"));
    let mut done: Vec<&str> = Vec::new();
    // A derived table the snapshot lacks (written before it existed, or by another version of
    // its SQL) is computed once here, for the checks and the queries alike.
    for name in super::derived::DERIVED.into_iter().filter(|n| super::derived::current(snapshot, n).is_none()) {
        let started = std::time::Instant::now();
        let sql = super::derived::sql(snapshot, name, &done)?;
        conn.execute_batch(&format!("CREATE TEMP TABLE {name} AS {sql}")).map_err(|e| failed(name, e))?;
        tracing::debug!(elapsed = ?started.elapsed(), "{name} computed (the snapshot has no current one)");
        done.push(name);
    }
    // The pairing of each discount with the subscriptions it applies to, read by three of the
    // checks and by discount_windows: computed once (each reading started on every
    // subscription's customer id, 8 ms at any size even without a discount).
    let pairing = "_discount_targets";
    let sql = render_reusing(snapshot, pairing, params, &done)?;
    conn.execute_batch(&format!("CREATE TEMP TABLE {pairing} AS {sql}")).map_err(|e| failed(pairing, e))?;
    done.push(pairing);
    let started = std::time::Instant::now();
    super::priceable::check(&conn, snapshot, params, &done)?;
    tracing::debug!(elapsed = ?started.elapsed(), "priceable check");
    for (base, kept) in SHARED_BASES {
        let sql = render_reusing(snapshot, base, params, &done)?;
        let started = std::time::Instant::now();
        let kind = match kept {
            Kept::Table => "TABLE",
            Kept::View => "VIEW",
        };
        conn.execute_batch(&format!("CREATE TEMP {kind} {base} AS {sql}")).map_err(|e| failed(base, e))?;
        tracing::debug!(elapsed = ?started.elapsed(), "{base} computed");
        done.push(base);
    }
    let mut out = Vec::new();
    for query in QUERIES {
        let sql = if done.contains(&query) {
            format!("SELECT * FROM {query}")
        } else {
            render_reusing(snapshot, query, params, &done)?
        };
        let started = std::time::Instant::now();
        let mut stmt = conn.prepare(&sql).map_err(|e| failed(query, e))?;
        let batches: Vec<RecordBatch> = stmt.query_arrow([]).map_err(|e| failed(query, e))?.collect();
        tracing::debug!(elapsed = ?started.elapsed(), "{query} computed");
        on_result(query, &batches);
        out.push((query, batches));
    }
    Ok(out)
}
