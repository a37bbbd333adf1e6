//! Cell-by-cell comparison of two result tables keyed by (month, currency): the engine
//! behind the accuracy checks (DuckDB vs the simulator's ground truth) and parity
//! (DuckDB vs BigQuery). Money compares as exact integers, ratios as exact decimals.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// One cell that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    pub month: String,
    pub currency: String,
    pub metric: String,
    pub left: Value,
    pub right: Value,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}: {} vs {}", self.month, self.currency, self.metric, self.left, self.right)
    }
}

/// The outcome of a comparison.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    pub cells_compared: usize,
    pub differences: Vec<Difference>,
}

type Key = (String, String);

fn keyed(rows: &[Map<String, Value>]) -> BTreeMap<Key, &Map<String, Value>> {
    rows.iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            ((s("month"), s("currency")), r)
        })
        .collect()
}

/// Compares `metrics` of two tables; integer cells may differ by `tolerance_cents`.
/// A row present on one side only is a difference in every metric.
pub fn compare(
    left: &[Map<String, Value>],
    right: &[Map<String, Value>],
    metrics: &[&str],
    tolerance_cents: i64,
) -> Comparison {
    let (l, r) = (keyed(left), keyed(right));
    let mut keys: Vec<&Key> = l.keys().chain(r.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Comparison::default();
    for key in keys {
        for metric in metrics {
            let a = l.get(key).and_then(|row| row.get(*metric)).cloned().unwrap_or(Value::Null);
            let b = r.get(key).and_then(|row| row.get(*metric)).cloned().unwrap_or(Value::Null);
            out.cells_compared += 1;
            if !same(&a, &b, tolerance_cents) || !l.contains_key(key) || !r.contains_key(key) {
                out.differences.push(Difference {
                    month: key.0.clone(),
                    currency: key.1.clone(),
                    metric: metric.to_string(),
                    left: a,
                    right: b,
                });
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
        assert_eq!(missing.differences[0].month, "2026-07");
    }
}
