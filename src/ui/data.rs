//! What the window shows, read from what a snapshot already saved: each engine's
//! `mrr_monthly` and `seed_mrr` results and their cell-by-cell comparison. Loading is plain
//! blocking code (the window runs it on a worker thread); nothing here is ever invented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};

use crate::metrics::MetricOptions;
use crate::parity::{self, Comparison, MONTHLY_METRICS};
use crate::queries::{results, Dialect};
use crate::snapshot::Snapshot;

/// One engine's saved results for a snapshot.
#[derive(Clone, Debug, Default)]
pub struct EngineResults {
    /// `mrr_monthly` rows keyed by (currency, month).
    pub monthly: BTreeMap<(String, String), Map<String, Value>>,
    /// `seed_mrr` rows keyed by (currency, month), when that result was saved.
    pub seed: BTreeMap<(String, String), Map<String, Value>>,
}

impl EngineResults {
    /// The value of `metric` for a month of a currency.
    pub fn cell(&self, currency: &str, month: &str, metric: &str) -> Option<&Value> {
        self.monthly.get(&(currency.to_string(), month.to_string())).and_then(|row| row.get(metric))
    }

    /// The value of a `seed_mrr` column for a month of a currency.
    pub fn seed_cell(&self, currency: &str, month: &str, column: &str) -> Option<&Value> {
        self.seed.get(&(currency.to_string(), month.to_string())).and_then(|row| row.get(column))
    }
}

/// One side of the window: results, or why there are none and how to make them.
#[derive(Clone, Debug)]
pub enum Side {
    Loaded(EngineResults),
    Missing { reason: String, command: String },
}

impl Side {
    pub fn results(&self) -> Option<&EngineResults> {
        match self {
            Side::Loaded(r) => Some(r),
            Side::Missing { .. } => None,
        }
    }
}

/// Everything the window needs for one snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotData {
    pub snapshot_id: String,
    pub as_of: String,
    pub duckdb: Side,
    pub bigquery: Side,
    /// `mrr_monthly`, DuckDB (left) vs BigQuery (right), to the cent; `None` when a side is missing.
    pub monthly_comparison: Option<Comparison>,
    /// `seed_mrr`, the same way.
    pub seed_comparison: Option<Comparison>,
    pub currencies: Vec<String>,
    /// Every month present on either side, ascending.
    pub months: Vec<String>,
}

impl SnapshotData {
    /// Differing `mrr_monthly` cells of a currency, as (month, metric).
    pub fn differing_cells(&self, currency: &str) -> BTreeSet<(String, String)> {
        self.monthly_comparison
            .iter()
            .flat_map(|c| &c.differences)
            .filter(|d| d.key.get(1).map(String::as_str) == Some(currency))
            .map(|d| (d.month().to_string(), d.metric.clone()))
            .collect()
    }

    /// The currency shown first: USD when present, otherwise the first one.
    pub fn default_currency(&self) -> Option<String> {
        self.currencies.iter().find(|c| c.as_str() == "usd").or(self.currencies.first()).cloned()
    }
}

/// Loads a snapshot's saved results (default metric options) for the window.
pub fn load(data_dir: &Path, snapshot_id: &str) -> anyhow::Result<SnapshotData> {
    let snapshot =
        crate::snapshot::resolve(data_dir, snapshot_id).with_context(|| format!("snapshot {snapshot_id}"))?;
    let id = snapshot.manifest.id.clone();
    let duckdb = saved_rows(&snapshot, Dialect::DuckDb)?;
    let bigquery = saved_rows(&snapshot, Dialect::BigQuery)?;
    // Compared as loaded, before keying for the window.
    let (monthly_comparison, seed_comparison) = match (&duckdb, &bigquery) {
        (Some(l), Some(r)) => {
            let (seed_keys, seed_metrics) = parity::shape("seed_mrr");
            (
                Some(parity::compare(&l.monthly, &r.monthly, &MONTHLY_METRICS, 0)),
                Some(parity::compare_by(&l.seed, &r.seed, seed_keys, seed_metrics, 0)),
            )
        }
        _ => (None, None),
    };
    let duckdb = side(&snapshot, Dialect::DuckDb, duckdb, format!("mrr report --snapshot {id}"));
    let bigquery = side(
        &snapshot,
        Dialect::BigQuery,
        bigquery,
        format!("mrr push --snapshot {id} --project PROJECT --dataset mrr (or `mrr demo` with the local emulator)"),
    );
    let sides = [&duckdb, &bigquery];
    let keys = || sides.iter().filter_map(|s| s.results()).flat_map(|r| r.monthly.keys());
    let currencies: BTreeSet<String> = keys().map(|(c, _)| c.clone()).collect();
    let months: BTreeSet<String> = keys().map(|(_, m)| m.clone()).collect();
    Ok(SnapshotData {
        snapshot_id: id,
        as_of: crate::calendar::format_rfc3339(snapshot.as_of()?),
        duckdb,
        bigquery,
        monthly_comparison,
        seed_comparison,
        currencies: currencies.into_iter().collect(),
        months: months.into_iter().collect(),
    })
}

/// One engine's saved rows, as loaded.
struct SavedRows {
    monthly: Vec<Map<String, Value>>,
    seed: Vec<Map<String, Value>>,
}

/// An engine's saved `mrr_monthly` (and `seed_mrr`, when saved); `None` without `mrr_monthly`.
fn saved_rows(snapshot: &Snapshot, engine: Dialect) -> anyhow::Result<Option<SavedRows>> {
    let options = MetricOptions::default();
    let monthly_path = results::path(snapshot, engine, "mrr_monthly", &options);
    if !monthly_path.exists() {
        return Ok(None);
    }
    let seed_path = results::path(snapshot, engine, "seed_mrr", &options);
    let seed = if seed_path.exists() { results::load(&seed_path)? } else { Vec::new() };
    Ok(Some(SavedRows { monthly: results::load(&monthly_path)?, seed }))
}

fn side(snapshot: &Snapshot, engine: Dialect, rows: Option<SavedRows>, command: String) -> Side {
    match rows {
        Some(rows) => Side::Loaded(EngineResults { monthly: keyed(rows.monthly), seed: keyed(rows.seed) }),
        None => Side::Missing {
            reason: format!("No {} results for snapshot {}.", engine.name(), snapshot.manifest.id),
            command,
        },
    }
}

fn keyed(rows: Vec<Map<String, Value>>) -> BTreeMap<(String, String), Map<String, Value>> {
    rows.into_iter().map(|row| ((parity::key_text(&row, "currency"), parity::key_text(&row, "month")), row)).collect()
}

/// How a metric's values read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Minor units of the currency.
    Money,
    Count,
    Percent,
}

/// The unit of an `mrr_monthly` metric (and of the `seed_mrr` columns).
pub fn unit(metric: &str) -> Unit {
    match metric {
        "active_subscriptions" | "active_customers" => Unit::Count,
        "mom_change_pct" | "customer_churn_rate" | "net_revenue_retention" => Unit::Percent,
        _ => Unit::Money,
    }
}

/// The `seed_mrr` column that the original query reports for a metric, if any.
pub fn seed_column(metric: &str) -> Option<&'static str> {
    match metric {
        "mrr" => Some("mrr_amount"),
        "mom_change" => Some("mom_change"),
        "active_customers" => Some("active_customers"),
        "active_subscriptions" => Some("active_subscriptions"),
        _ => None,
    }
}

/// A value as the chart plots it: money in major units, counts and percents as they are.
pub fn plot_value(metric: &str, value: Option<&Value>) -> Option<f64> {
    let v = value?.as_f64()?;
    Some(if unit(metric) == Unit::Money { v / 100.0 } else { v })
}

/// A value as a person reads it: `1,234.56` for money (exact, from the integer cents),
/// `1,234` for counts, `12.34%` for ratios, `–` when there is none.
pub fn display(metric: &str, value: Option<&Value>) -> String {
    let Some(value) = value.filter(|v| !v.is_null()) else { return "–".into() };
    match (unit(metric), value.as_i64()) {
        (Unit::Money, Some(cents)) => group_thousands(&crate::money::cents_text(cents)),
        (Unit::Count, Some(n)) => group_thousands(&n.to_string()),
        // Ratios are exact decimals with two places; print both places.
        (Unit::Percent, _) => value.as_f64().map_or_else(|| value_text(value), |v| format!("{v:.2}%")),
        _ => value_text(value),
    }
}

/// The difference right - left in the metric's unit (`+1.00`, `-3`), `None` when not numeric.
pub fn difference(metric: &str, left: Option<&Value>, right: Option<&Value>) -> Option<String> {
    let (l, r) = (left?, right?);
    match (l.as_i64(), r.as_i64()) {
        (Some(a), Some(b)) => {
            let d = b - a;
            let text = display(metric, Some(&Value::from(d.abs())));
            Some(format!("{}{text}", if d < 0 { "-" } else { "+" }))
        }
        _ => {
            let d = r.as_f64()? - l.as_f64()?;
            Some(format!("{d:+.2}{}", if unit(metric) == Unit::Percent { " pp" } else { "" }))
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `-1234567.89` -> `-1,234,567.89`.
pub fn group_thousands(number: &str) -> String {
    let (sign, rest) = number.strip_prefix('-').map_or(("", number), |r| ("-", r));
    let (int, frac) = rest.split_once('.').map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_exact_and_grouped() {
        assert_eq!(display("mrr", Some(&json!(123456789))), "1,234,567.89");
        assert_eq!(display("churned_mrr", Some(&json!(-5))), "-0.05");
        assert_eq!(display("active_customers", Some(&json!(1000))), "1,000");
        assert_eq!(display("net_revenue_retention", Some(&json!(101.25))), "101.25%");
        assert_eq!(display("net_revenue_retention", Some(&json!(96.1))), "96.10%");
        assert_eq!(display("arpa", Some(&Value::Null)), "–");
        assert_eq!(display("arpa", None), "–");
    }

    #[test]
    fn differences_are_signed_in_the_metric_unit() {
        assert_eq!(difference("mrr", Some(&json!(1000)), Some(&json!(1100))).as_deref(), Some("+1.00"));
        assert_eq!(difference("active_customers", Some(&json!(7)), Some(&json!(4))).as_deref(), Some("-3"));
        assert_eq!(
            difference("net_revenue_retention", Some(&json!(100.5)), Some(&json!(100.0))).as_deref(),
            Some("-0.50 pp")
        );
        assert_eq!(difference("mrr", None, Some(&json!(1))), None);
    }

    #[test]
    fn thousands_grouping() {
        assert_eq!(group_thousands("0.00"), "0.00");
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(group_thousands("1000"), "1,000");
        assert_eq!(group_thousands("-100000.10"), "-100,000.10");
    }
}
