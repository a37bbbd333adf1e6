//! Cell-by-cell comparison of two result tables keyed by (month, currency) (or month and
//! customer): the engine behind the accuracy checks (DuckDB vs the simulator's ground
//! truth) and `mrr parity` (DuckDB vs BigQuery, written to `parity.json`). Money compares
//! as exact integers, ratios as exact decimals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::metrics::MetricOptions;
use crate::queries::{results, Dialect};
use crate::snapshot::Snapshot;

/// One cell that differs. `key` holds the values of the key columns (month first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub key: Vec<String>,
    pub metric: String,
    pub left: Value,
    pub right: Value,
}

impl Difference {
    /// The month of the differing row.
    pub fn month(&self) -> &str {
        self.key.first().map(String::as_str).unwrap_or_default()
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {} vs {}", self.key.join(" "), self.metric, self.left, self.right)
    }
}

/// The outcome of a comparison.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Comparison {
    pub cells_compared: usize,
    pub differences: Vec<Difference>,
}

/// A key column's value as the text rows are matched on (strings as they are, null as empty).
pub fn key_text(row: &Map<String, Value>, column: &str) -> String {
    match row.get(column) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn keyed<'a>(rows: &'a [Map<String, Value>], keys: &[&str]) -> BTreeMap<Vec<String>, &'a Map<String, Value>> {
    rows.iter().map(|r| (keys.iter().map(|k| key_text(r, k)).collect(), r)).collect()
}

/// Compares `metrics` of two tables keyed by (month, currency).
pub fn compare(
    left: &[Map<String, Value>],
    right: &[Map<String, Value>],
    metrics: &[&str],
    tolerance_cents: i64,
) -> Comparison {
    compare_by(left, right, &["month", "currency"], metrics, tolerance_cents)
}

/// Compares `metrics` of two tables keyed by `keys`; integer cells may differ by
/// `tolerance_cents`. A row present on one side only is a difference in every metric.
pub fn compare_by(
    left: &[Map<String, Value>],
    right: &[Map<String, Value>],
    keys: &[&str],
    metrics: &[&str],
    tolerance_cents: i64,
) -> Comparison {
    let (l, r) = (keyed(left, keys), keyed(right, keys));
    let mut all: Vec<&Vec<String>> = l.keys().chain(r.keys()).collect();
    all.sort();
    all.dedup();
    let mut out = Comparison::default();
    for key in all {
        for metric in metrics {
            let a = l.get(key).and_then(|row| row.get(*metric)).cloned().unwrap_or(Value::Null);
            let b = r.get(key).and_then(|row| row.get(*metric)).cloned().unwrap_or(Value::Null);
            out.cells_compared += 1;
            if !same(&a, &b, tolerance_cents) || !l.contains_key(key) || !r.contains_key(key) {
                out.differences.push(Difference { key: key.clone(), metric: metric.to_string(), left: a, right: b });
            }
        }
    }
    out
}

fn same(a: &Value, b: &Value, tolerance: i64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => (x - y).abs() <= tolerance,
            // Ratios: exact decimals with two places, compared in hundredths.
            _ => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => ((x * 100.0).round() as i64 - (y * 100.0).round() as i64) == 0,
                _ => false,
            },
        },
        _ => a == b,
    }
}

/// The metric columns of `mrr_monthly`.
pub const MONTHLY_METRICS: [&str; 14] = [
    "mrr",
    "arr",
    "active_subscriptions",
    "active_customers",
    "arpa",
    "new_mrr",
    "reactivation_mrr",
    "expansion_mrr",
    "contraction_mrr",
    "churned_mrr",
    "mom_change",
    "mom_change_pct",
    "customer_churn_rate",
    "net_revenue_retention",
];

/// The metric columns of `seed_mrr`.
pub const SEED_METRICS: [&str; 4] = ["active_subscriptions", "active_customers", "mrr_amount", "mom_change"];

/// How each query's result is compared: its key columns and compared columns.
pub fn shape(query: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const BY_PLAN: [&str; 4] = ["product", "mrr", "active_subscriptions", "active_customers"];
    const BY_CUSTOMER: [&str; 6] =
        ["currency", "mrr", "previous_mrr", "active_subscriptions", "previous_subscriptions", "movement"];
    match query {
        "mrr_by_customer" => (&["month", "customer"], &BY_CUSTOMER),
        "mrr_by_plan" => (&["month", "currency", "price"], &BY_PLAN),
        "seed_mrr" => (&["month", "currency"], &SEED_METRICS),
        _ => (&["month", "currency"], &MONTHLY_METRICS),
    }
}

/// File in the snapshot with the last parity run (read by the window and the API).
pub const RECORD: &str = "parity.json";

/// `parity.json`: DuckDB (left) vs BigQuery (right), per query.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParityReport {
    pub snapshot: String,
    pub checked_at: String,
    pub options: MetricOptions,
    pub tolerance_cents: i64,
    pub identical: bool,
    pub queries: Vec<QueryParity>,
}

/// One query's comparison.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryParity {
    pub query: String,
    pub key: Vec<String>,
    pub rows_duckdb: usize,
    pub rows_bigquery: usize,
    #[serde(flatten)]
    pub comparison: Comparison,
}

impl ParityReport {
    /// Every difference, across queries, as lines naming the query and the cell.
    pub fn difference_lines(&self) -> Vec<String> {
        self.queries
            .iter()
            .flat_map(|q| q.comparison.differences.iter().map(move |d| format!("{}: {d}", q.query)))
            .collect()
    }

    /// The saved report of a snapshot, if parity ran.
    pub fn load(snapshot: &Snapshot) -> anyhow::Result<Option<Self>> {
        let path = snapshot.dir.join(RECORD);
        if !path.exists() {
            return Ok(None);
        }
        let report = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| crate::error::bad_input(format!("{}: corrupt ({e})", path.display())))?;
        Ok(Some(report))
    }
}

/// Compares the saved DuckDB and BigQuery results of every query and writes `parity.json`.
/// Missing results are bad input naming the command that produces them.
pub fn run(snapshot: &Snapshot, options: MetricOptions, tolerance_cents: i64) -> anyhow::Result<ParityReport> {
    let mut queries = Vec::new();
    for query in crate::queries::QUERIES {
        let load = |engine: Dialect, how: &str| {
            let path = results::path(snapshot, engine, query, &options);
            if !path.exists() {
                return Err(crate::error::bad_input(format!(
                    "{} is missing: no {} results for snapshot {} with these options (run `{how} --snapshot {}`)",
                    path.display(),
                    engine.name(),
                    snapshot.manifest.id,
                    snapshot.manifest.id
                )));
            }
            results::load(&path)
        };
        let duck = load(Dialect::DuckDb, "mrr report")?;
        let bq = load(Dialect::BigQuery, "mrr push")?;
        let (keys, metrics) = shape(query);
        queries.push(QueryParity {
            query: query.into(),
            key: keys.iter().map(|k| k.to_string()).collect(),
            rows_duckdb: duck.len(),
            rows_bigquery: bq.len(),
            comparison: compare_by(&duck, &bq, keys, metrics, tolerance_cents),
        });
    }
    let report = ParityReport {
        snapshot: snapshot.manifest.id.clone(),
        checked_at: crate::calendar::format_rfc3339(crate::calendar::now()),
        options,
        tolerance_cents,
        identical: queries.iter().all(|q| q.comparison.differences.is_empty()),
        queries,
    };
    crate::atomic_dir::write_json(&snapshot.dir.join(RECORD), &report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        v.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
    }

    #[test]
    fn names_every_differing_cell_and_respects_the_tolerance() {
        let a = rows(
            serde_json::json!([{"month": "2026-06", "currency": "usd", "mrr": 100, "nrr": 99.5}, {"month": "2026-07", "currency": "usd", "mrr": 5, "nrr": null}]),
        );
        let b = rows(
            serde_json::json!([{"month": "2026-06", "currency": "usd", "mrr": 101, "nrr": 99.5}, {"month": "2026-07", "currency": "usd", "mrr": 5, "nrr": null}]),
        );
        let c = compare(&a, &b, &["mrr", "nrr"], 0);
        assert_eq!(c.cells_compared, 4);
        assert_eq!(c.differences.len(), 1);
        assert_eq!(c.differences[0].to_string(), "2026-06 usd mrr: 100 vs 101");
        assert!(compare(&a, &b, &["mrr", "nrr"], 1).differences.is_empty());
        let missing = compare(&a, &b[..1], &["mrr"], 1);
        assert_eq!(missing.differences.len(), 1, "a row on one side only differs");
        assert_eq!(missing.differences[0].month(), "2026-07");
    }
}
