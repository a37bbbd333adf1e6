//! The DuckDB engine: the queries of [`crate::queries`] run in-process over a snapshot's
//! Parquet files, after checking every billed price can be valued. `crate::bigquery` is its
//! peer for BigQuery; both read the same query catalogue. DuckDB also computes a snapshot's
//! derived tables when the snapshot is written ([`derived`]).

pub mod derived;
pub mod duckdb;
pub mod priceable;

use crate::metrics::MetricOptions;
use crate::queries::{results, Dialect, QueryParams};

/// Runs every query with DuckDB over a snapshot, saves each under `results/duckdb/`, and
/// returns the batches of each, by query (turned into rows only where they are shown:
/// `mrr_by_customer` has a row per customer and month).
pub fn report_duckdb(
    snapshot: &crate::snapshot::Snapshot,
    options: MetricOptions,
) -> anyhow::Result<Vec<(&'static str, Vec<arrow::array::RecordBatch>)>> {
    let params = QueryParams::of(snapshot, options)?;
    let out = duckdb::run_all(snapshot, &params)?;
    for (query, batches) in &out {
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => std::sync::Arc::new(arrow::datatypes::Schema::empty()),
        };
        results::save(&results::path(snapshot, Dialect::DuckDb, query, &options), batches, schema, &params)?;
    }
    Ok(out)
}

/// One query's rows out of [`report_duckdb`]'s results.
pub fn rows_of(results: &[(&str, Vec<arrow::array::RecordBatch>)], query: &str) -> anyhow::Result<results::Rows> {
    let (_, batches) =
        results.iter().find(|(q, _)| *q == query).ok_or_else(|| anyhow::anyhow!("no result for {query}"))?;
    results::batches_to_rows(batches)
}
