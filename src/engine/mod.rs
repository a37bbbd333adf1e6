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
/// `mrr_by_customer` has a row per customer and month). Each result is written on a thread
/// of its own while DuckDB computes the next (writing `mrr_by_customer`'s 1.2 M rows at 1 M
/// subscriptions takes 0.3 s), and all are saved only once every query has succeeded.
pub fn report_duckdb(
    snapshot: &crate::snapshot::Snapshot,
    options: MetricOptions,
) -> anyhow::Result<Vec<(&'static str, Vec<arrow::array::RecordBatch>)>> {
    let params = QueryParams::of(snapshot, options)?;
    std::thread::scope(|scope| {
        let mut writing = Vec::new();
        let out = duckdb::run_all(snapshot, &params, &mut |query, batches| {
            let path = results::path(snapshot, Dialect::DuckDb, query, &options);
            let batches = batches.to_vec();
            let params = &params;
            writing.push(scope.spawn(move || {
                let schema = match batches.first() {
                    Some(b) => b.schema(),
                    None => std::sync::Arc::new(arrow::datatypes::Schema::empty()),
                };
                results::write_unsaved(&path, &batches, schema, params).map(|unsaved| (unsaved, path))
            }));
        })?;
        let written: Vec<_> =
            writing.into_iter().map(|w| w.join().expect("a result writer panicked")).collect::<anyhow::Result<_>>()?;
        for (unsaved, path) in written {
            results::persist(unsaved, &path)?;
        }
        Ok(out)
    })
}

/// One query's rows out of [`report_duckdb`]'s results.
pub fn rows_of(results: &[(&str, Vec<arrow::array::RecordBatch>)], query: &str) -> anyhow::Result<results::Rows> {
    let (_, batches) =
        results.iter().find(|(q, _)| *q == query).ok_or_else(|| anyhow::anyhow!("no result for {query}"))?;
    results::batches_to_rows(batches)
}
