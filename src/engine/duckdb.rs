//! DuckDB, in-process, straight over a snapshot's Parquet files (no import step).

use arrow::array::RecordBatch;

use super::{render, Dialect, QueryParams};
use crate::error::bad_input;
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
    let as_of = snapshot.as_of()?;
    render_for(snapshot, query, &QueryParams { as_of, options })
}

fn render_for(snapshot: &Snapshot, query: &str, params: &QueryParams) -> anyhow::Result<String> {
    let missing = std::cell::RefCell::new(None);
    let table_ref = |table: &str| match snapshot.table_path(table) {
        Ok(path) => format!("read_parquet('{}')", path.display().to_string().replace('\'', "''")),
        Err(e) => {
            missing.borrow_mut().get_or_insert(e);
            "missing".into()
        }
    };
    let sql = render(Dialect::DuckDb, query, params, &table_ref)?;
    match missing.take() {
        Some(e) => Err(e),
        None => Ok(sql),
    }
}

/// Runs one query of `sql/duckdb/` over a snapshot.
pub fn run(snapshot: &Snapshot, query: &str, params: &QueryParams) -> anyhow::Result<Vec<RecordBatch>> {
    let sql = render_for(snapshot, query, params)?;
    let conn = open()?;
    let mut stmt =
        conn.prepare(&sql).map_err(|e| bad_input(format!("sql/duckdb/{query}.sql failed in DuckDB: {e}")))?;
    let batches =
        stmt.query_arrow([]).map_err(|e| bad_input(format!("sql/duckdb/{query}.sql failed in DuckDB: {e}")))?.collect();
    Ok(batches)
}
