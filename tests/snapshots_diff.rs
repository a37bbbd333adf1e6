//! `mrr snapshots diff`: the reconciliation of two snapshots, on real pulls through the
//! local Stripe-compatible server. What it reports is checked against the simulated accounts
//! themselves (their JSON files and ground truths), never against the diff's own SQL.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use mrr::simulate::Scenario;
use serde_json::Value;

/// An earlier instant of the same story as `common::NOW` (a month boundary between them).
const EARLIER: &str = "2026-10-29T08:00:00Z";

fn ids(acct: &common::TempAccount, file: &str) -> BTreeSet<String> {
    common::objects(&acct.dir, file).iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
}

fn diff_json(data: &std::path::Path, a: &str, b: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["snapshots", "diff", a, b, "--format", "json"];
    args.extend(extra);
    let (code, out, err) = common::mrr(data, &args);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, json, err)
}

fn table<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap_or_else(|| panic!("{name}: {d}"))
}

#[test]
fn two_pulls_of_one_account_are_identical_and_exit_0() {
    let acct = common::simulate(Scenario::Full, 30, 4);
    let data = tempfile::tempdir().unwrap();
    let a = common::pull(&acct, data.path(), &[], &[]);
    let b = common::pull(&acct, data.path(), &[], &[]);
    assert_ne!(a.manifest.id, b.manifest.id);
    let (code, out, err) = common::mrr(data.path(), &["snapshots", "diff", &a.manifest.id, "latest"]);
    assert_eq!(code, 0, "{out}{err}");
    let tables = mrr::snapshot::schema::TABLES.len();
    assert!(out.contains(&format!("identical: {tables} tables and every month's MRR")), "{out}");
}

#[test]
fn one_timeline_at_two_instants_differs_by_what_happened_between_them() {
    let older = common::simulate_at(Scenario::Full, 80, 11, EARLIER, Some(common::NOW));
    let newer = common::simulate(Scenario::Full, 80, 11);
    let data = tempfile::tempdir().unwrap();
    let a = common::pull(&older, data.path(), &[], &[]);
    let b = common::pull(&newer, data.path(), &[], &[]);
    let (code, d, err) = diff_json(data.path(), &a.manifest.id, &b.manifest.id, &[]);
    assert_eq!(code, 1, "they differ: exit 1 ({err})");
    assert_eq!(d["identical"], false);
    assert!(err.contains(&format!("snapshots {} and {} differ", a.manifest.id, b.manifest.id)), "{err}");

    // Rows added and removed, per table, as the two accounts' own files have them.
    for (name, file) in
        [("invoices", "invoices.jsonl"), ("customers", "customers.jsonl"), ("subscriptions", "subscriptions.jsonl")]
    {
        let (before, after) = (ids(&older, file), ids(&newer, file));
        let added: Vec<&String> = after.difference(&before).collect();
        let removed: Vec<&String> = before.difference(&after).collect();
        let t = table(&d, name);
        assert_eq!(t["rows_a"], before.len() as u64, "{name}");
        assert_eq!(t["rows_b"], after.len() as u64, "{name}");
        assert_eq!(t["added"], added.len() as u64, "{name}");
        assert_eq!(t["removed"], removed.len() as u64, "{name}");
        let shown: Vec<&str> = t["examples"]["added"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let smallest: Vec<&str> = added.iter().take(5).map(|s| s.as_str()).collect();
        assert_eq!(shown, smallest, "{name}: the first added ids");
    }
    assert!(table(&d, "invoices")["added"].as_u64().unwrap() > 0, "a month of renewals");

    // A subscription whose state moved on: changed, naming the columns that did.
    let state = |acct: &common::TempAccount| -> BTreeMap<String, Value> {
        common::objects(&acct.dir, "subscriptions.jsonl")
            .into_iter()
            .map(|s| (s["id"].as_str().unwrap().to_string(), s["status"].clone()))
            .collect()
    };
    let (before, after) = (state(&older), state(&newer));
    let status_changed = before.iter().filter(|(id, s)| after.get(*id).is_some_and(|t| t != *s)).count() as u64;
    let columns = table(&d, "subscriptions")["changed_columns"].as_array().unwrap().clone();
    let status = columns.iter().find(|c| c[0] == "status").map_or(0, |c| c[1].as_u64().unwrap());
    assert_eq!(status, status_changed, "subscriptions whose status changed: {columns:?}");

    // MRR per month and currency: exactly where the two ground truths differ.
    let (ta, tb) = (common::truth_mrr(&older), common::truth_mrr(&newer));
    let keys: BTreeSet<_> = ta.keys().chain(tb.keys()).collect();
    let want: Vec<Value> = keys
        .into_iter()
        .filter(|k| ta.get(*k) != tb.get(*k))
        .map(|k| serde_json::json!({"month": k.0, "currency": k.1, "mrr_a": ta.get(k), "mrr_b": tb.get(k)}))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(d["mrr"], Value::Array(want));

    // For people: one line per table that differs, and the verdict.
    let (code, out, _) = common::mrr(data.path(), &["snapshots", "diff", &a.manifest.id, &b.manifest.id]);
    assert_eq!(code, 1);
    assert!(out.contains("  invoices: ") && out.contains(" added, ") && out.contains("differ: "), "{out}");
    assert!(out.contains("  MRR "), "{out}");

    // --ignore leaves tables out; both snapshots are only read.
    let (_, d, _) =
        diff_json(data.path(), &a.manifest.id, &b.manifest.id, &["--ignore", "events", "--ignore", "invoices"]);
    let compared: Vec<&str> = d["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert!(!compared.contains(&"events") && !compared.contains(&"invoices"), "{compared:?}");
    assert_eq!(d["ignored"], serde_json::json!(["events", "invoices"]));
    for s in [&a, &b] {
        assert!(mrr::snapshot::verify(s).is_ok(), "{} untouched", s.manifest.id);
    }
}

#[test]
fn bad_arguments_exit_2_naming_them() {
    let acct = common::simulate(Scenario::Default, 5, 2);
    let data = tempfile::tempdir().unwrap();
    let a = common::pull(&acct, data.path(), &[], &[]);
    let id = a.manifest.id.as_str();
    let (code, _, err) = common::mrr(data.path(), &["snapshots", "diff", id, "20990101T000000Z"]);
    assert_eq!(code, 2);
    assert!(err.contains("the second snapshot, `20990101T000000Z`"), "{err}");
    let (code, _, err) = common::mrr(data.path(), &["snapshots", "diff", id, id, "--ignore", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("--ignore nope: no such table"), "{err}");
    let (code, _, err) = common::mrr(data.path(), &["snapshots", "diff", id, id, "--format", "csv"]);
    assert_eq!(code, 2);
    assert!(err.contains("--format csv"), "{err}");
}
