//! The simulator's account: Stripe's shape (async-stripe's own types read every
//! object), determinism, and clear errors on bad input.

mod common;

use std::path::Path;

use common::{objects, simulate};
use mrr::simulate::Scenario;

/// Parses one JSON object with async-stripe's own (miniserde) deserializer.
fn parse_as<T: miniserde::Deserialize>(kind: &str, json: &str) {
    if let Err(e) = miniserde::json::from_str::<T>(json) {
        panic!("async-stripe cannot read this {kind} ({e}): {}", &json[..json.len().min(400)]);
    }
}

fn parse_file<T: miniserde::Deserialize>(dir: &Path, file: &str) -> usize {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut n = 0;
    for line in text.lines() {
        parse_as::<T>(file, line);
        n += 1;
    }
    n
}

#[test]
fn every_simulated_object_deserializes_with_async_stripe_types() {
    let acct = simulate(Scenario::Full, 75, 42);
    let d = &acct.dir;
    assert!(parse_file::<stripe_shared::Customer>(d, "customers.jsonl") > 75);
    assert_eq!(parse_file::<stripe_shared::Product>(d, "products.jsonl"), 7);
    assert_eq!(
        parse_file::<stripe_shared::Price>(d, "prices.jsonl"),
        23,
        "17 + an archived price + a seat pack + volume and graduated seats (with their tiers and options) + \
         committed API calls in fractions of a cent, per unit and in volume tiers"
    );
    // A fraction of a minor unit is only in `unit_amount_decimal`; `unit_amount` is null (L11).
    let decimal = objects(d, "prices.jsonl").into_iter().find(|p| p["unit_amount_decimal"] == "0.0375").unwrap();
    assert_eq!(decimal["unit_amount"], serde_json::Value::Null);
    assert_eq!(parse_file::<stripe_shared::Price>(d, mrr::simulate::INLINE_PRICES_FILE), 1, "a negotiated price");
    assert_eq!(parse_file::<stripe_shared::Coupon>(d, "coupons.jsonl"), 8);
    assert_eq!(parse_file::<stripe_shared::Coupon>(d, mrr::simulate::DELETED_COUPONS_FILE), 1);
    // A deleted customer retrieves as Stripe's stub (R2), which async-stripe reads as such.
    assert_eq!(parse_file::<stripe_shared::DeletedCustomer>(d, mrr::simulate::DELETED_CUSTOMERS_FILE), 1);
    assert!(parse_file::<stripe_shared::Subscription>(d, "subscriptions.jsonl") > 75);
    assert!(parse_file::<stripe_shared::Invoice>(d, "invoices.jsonl") > 200);
    assert!(parse_file::<stripe_shared::Event>(d, "events.jsonl") > 50);
    assert_eq!(parse_file::<stripe_shared::TestHelpersTestClock>(d, "test_clocks.jsonl"), 5);
    assert!(parse_file::<stripe_shared::Discount>(d, "discounts.jsonl") >= 7);
    // Every proration is an invoice item (U1): each proration line names one that names the
    // line's invoice, and the rest (two upgrades' credit and charge) are pending at `now`.
    let items = parse_file::<stripe_billing::InvoiceItem>(d, "invoiceitems.jsonl");
    let invoice_of: std::collections::HashMap<String, serde_json::Value> = objects(d, "invoiceitems.jsonl")
        .into_iter()
        .map(|i| (i["id"].as_str().unwrap().into(), i["invoice"].clone()))
        .collect();
    let mut billed = 0;
    for invoice in objects(d, "invoices.jsonl") {
        for line in invoice["lines"]["data"].as_array().unwrap() {
            let details = &line["parent"]["subscription_item_details"];
            if details["proration"] == true {
                let item = details["invoice_item"].as_str().expect("a proration line names its invoice item");
                assert_eq!(invoice_of[item], invoice["id"], "{item}");
                billed += 1;
            }
        }
    }
    // Stripe refuses two items of one price on a subscription (catalogue W7): no subscription
    // has them now, and no invoice bills a period of two.
    let distinct = |prices: Vec<&str>| prices.len() == prices.iter().collect::<std::collections::HashSet<_>>().len();
    for sub in objects(d, "subscriptions.jsonl") {
        let items = sub["items"]["data"].as_array().unwrap();
        assert!(distinct(items.iter().map(|i| i["price"]["id"].as_str().unwrap()).collect()), "{}", sub["id"]);
    }
    for invoice in objects(d, "invoices.jsonl") {
        let lines = invoice["lines"]["data"].as_array().unwrap();
        let periods = lines.iter().filter(|l| l["parent"]["subscription_item_details"]["proration"] == false);
        assert!(distinct(periods.map(|l| l["pricing"]["price_details"]["price"].as_str().unwrap()).collect()));
    }
    let pending = invoice_of.values().filter(|i| i.is_null()).count();
    assert_eq!(pending, 4, "pending at `now`");
    assert!(
        billed >= 32,
        "30 of long_invoice_paid_late, 2 of proration_billed_at_renewal, and the always_invoice ones"
    );
    // And one_off_invoices' fee, billed by its one-off invoice (U2; the draft's item was deleted).
    let one_off = objects(d, "invoiceitems.jsonl").into_iter().filter(|i| i["parent"].is_null()).count();
    assert_eq!(one_off, 1);
    assert_eq!(items, billed + pending + one_off);
    for event in objects(d, "events.jsonl") {
        let object = serde_json::to_string(&event["data"]["object"]).unwrap();
        match event["data"]["object"]["object"].as_str().unwrap() {
            "customer" => parse_as::<stripe_shared::Customer>("event customer", &object),
            "subscription" => parse_as::<stripe_shared::Subscription>("event subscription", &object),
            "invoice" => parse_as::<stripe_shared::Invoice>("event invoice", &object),
            "discount" => parse_as::<stripe_shared::Discount>("event discount", &object),
            "invoiceitem" => parse_as::<stripe_billing::InvoiceItem>("event invoice item", &object),
            "test_helpers.test_clock" => {
                parse_as::<stripe_shared::TestHelpersTestClock>("event test clock", &object);
                let Ok(kind) = event["type"].as_str().unwrap().parse::<stripe_shared::EventType>();
                assert!(!matches!(kind, stripe_shared::EventType::Unknown(_)), "{kind:?} is one of Stripe's types");
            }
            other => panic!("unexpected event object {other}"),
        }
    }
}

#[test]
fn the_deserialization_check_rejects_objects_missing_required_fields() {
    let acct = simulate(Scenario::Default, 5, 1);
    let mut sub = objects(&acct.dir, "subscriptions.jsonl").remove(0);
    let good = serde_json::to_string(&sub).unwrap();
    assert!(miniserde::json::from_str::<stripe_shared::Subscription>(&good).is_ok());
    sub.as_object_mut().unwrap().remove("billing_mode");
    let bad = serde_json::to_string(&sub).unwrap();
    assert!(
        miniserde::json::from_str::<stripe_shared::Subscription>(&bad).is_err(),
        "a required field may not go missing"
    );
}

#[test]
fn stripe_fixtures_of_the_same_kinds_deserialize_too() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/stripe/fixtures3.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIP: {} is absent (it lives beside the team's checkout, not in user clones)", path.display());
        return;
    };
    let fixtures: serde_json::Value = serde_json::from_str(&text).unwrap();
    let r = &fixtures["resources"];
    let s = |k: &str| serde_json::to_string(&r[k]).unwrap();
    parse_as::<stripe_shared::Customer>("customer", &s("customer"));
    parse_as::<stripe_shared::Product>("product", &s("product"));
    parse_as::<stripe_shared::Price>("price", &s("price"));
    parse_as::<stripe_shared::Coupon>("coupon", &s("coupon"));
    parse_as::<stripe_shared::Discount>("discount", &s("discount"));
    parse_as::<stripe_shared::Subscription>("subscription", &s("subscription"));
    parse_as::<stripe_shared::Invoice>("invoice", &s("invoice"));
    parse_as::<stripe_shared::InvoiceLineItem>("line_item", &s("line_item"));
    parse_as::<stripe_billing::InvoiceItem>("invoiceitem", &s("invoiceitem"));
    parse_as::<stripe_shared::Event>("event", &s("event"));
    parse_as::<stripe_shared::TestHelpersTestClock>("test clock", &s("test_helpers.test_clock"));
}

#[test]
fn same_seed_gives_byte_identical_accounts() {
    let a = simulate(Scenario::Full, 120, 7);
    let b = simulate(Scenario::Full, 120, 7);
    let c = simulate(Scenario::Full, 120, 8);
    let mut files: Vec<_> = std::fs::read_dir(&a.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    files.sort();
    assert_eq!(files.len(), 16, "{files:?}");
    for f in &files {
        let (x, y) = (std::fs::read(a.dir.join(f)).unwrap(), std::fs::read(b.dir.join(f)).unwrap());
        assert!(x == y, "{f:?} differs between two runs with the same seed");
    }
    assert_ne!(
        std::fs::read(a.dir.join("subscriptions.jsonl")).unwrap(),
        std::fs::read(c.dir.join("subscriptions.jsonl")).unwrap()
    );
}

#[test]
fn ids_are_unique_and_everything_references_existing_objects() {
    let acct = simulate(Scenario::Full, 300, 3);
    let ids = |file| -> std::collections::HashSet<String> {
        let all: Vec<String> = objects(&acct.dir, file).iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
        let set: std::collections::HashSet<String> = all.iter().cloned().collect();
        assert_eq!(set.len(), all.len(), "duplicate ids in {file}");
        set
    };
    // A deleted customer's subscriptions and invoices still name it (R2).
    let customers: std::collections::HashSet<String> =
        ids("customers.jsonl").union(&ids(mrr::simulate::DELETED_CUSTOMERS_FILE)).cloned().collect();
    let prices: std::collections::HashSet<String> =
        ids("prices.jsonl").union(&ids(mrr::simulate::INLINE_PRICES_FILE)).cloned().collect();
    let subs = ids("subscriptions.jsonl");
    ids("events.jsonl");
    for s in objects(&acct.dir, "subscriptions.jsonl") {
        assert!(customers.contains(s["customer"].as_str().unwrap()));
        for item in s["items"]["data"].as_array().unwrap() {
            assert!(prices.contains(item["price"]["id"].as_str().unwrap()));
            assert!(item["current_period_start"].as_i64() < item["current_period_end"].as_i64());
        }
    }
    let invoice_items = ids("invoiceitems.jsonl");
    let mut one_off = 0;
    for inv in objects(&acct.dir, "invoices.jsonl") {
        let lines = inv["lines"]["data"].as_array().unwrap();
        let sum: i64 = lines.iter().map(|l| l["amount"].as_i64().unwrap()).sum();
        assert_eq!(sum, inv["subtotal"].as_i64().unwrap(), "subtotal of {}", inv["id"]);
        // A one-off invoice (U2): no parent, lines of invoice items with no price.
        if inv["billing_reason"] == "manual" {
            one_off += 1;
            assert!(inv["parent"].is_null(), "{}", inv["id"]);
            for l in lines {
                assert_eq!(l["parent"]["type"], "invoice_item_details");
                assert!(invoice_items.contains(l["parent"]["invoice_item_details"]["invoice_item"].as_str().unwrap()));
            }
            continue;
        }
        assert!(subs.contains(inv["parent"]["subscription_details"]["subscription"].as_str().unwrap()));
        for l in lines {
            assert_eq!(l["parent"]["type"], "subscription_item_details");
            assert!(prices.contains(l["pricing"]["price_details"]["price"].as_str().unwrap()));
        }
    }
    assert_eq!(one_off, 1, "one_off_invoices' fee (its draft was deleted)");
    // Stripe numbers an invoice when it finalizes it: each customer's numbered invoices run
    // 1, 2, 3... in creation order, drafts (left or deleted) take none, and the customer's
    // `next_invoice_sequence` follows the last.
    let mut numbers: std::collections::HashMap<String, Vec<(i64, String)>> = Default::default();
    for inv in objects(&acct.dir, "invoices.jsonl") {
        if let Some(n) = inv["number"].as_str() {
            let entry = numbers.entry(inv["customer"].as_str().unwrap().to_string()).or_default();
            entry.push((inv["created"].as_i64().unwrap(), n.to_string()));
        }
    }
    for c in objects(&acct.dir, "customers.jsonl") {
        let mut mine = numbers.remove(c["id"].as_str().unwrap()).unwrap_or_default();
        mine.sort();
        for (k, (_, number)) in mine.iter().enumerate() {
            assert!(number.ends_with(&format!("-{:04}", k + 1)), "{}: {number} is not number {}", c["id"], k + 1);
        }
        assert_eq!(c["next_invoice_sequence"], mine.len() as i64 + 1, "{}", c["id"]);
    }
}

#[test]
fn a_large_account_streams_with_ground_truth_for_every_month() {
    let acct = simulate(Scenario::Default, 20_000, 11);
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(acct.dir.join("ground_truth.json")).unwrap()).unwrap();
    let months: Vec<&str> =
        truth["mrr_monthly"].as_array().unwrap().iter().map(|r| r["month"].as_str().unwrap()).collect();
    assert_eq!(months, ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]);
    assert_eq!(objects(&acct.dir, "customers.jsonl").len(), 20_000);
    assert_eq!(truth["variants"].as_array().unwrap().len(), 5);
}

fn run_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mrr")).args(args).output().unwrap()
}

#[test]
fn bad_input_exits_2_with_a_message_naming_the_flag_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("acct");
    let out_s = out.to_str().unwrap();
    for (args, needle) in [
        (vec!["simulate", "--months", "0", "--out", out_s], "--months"),
        (vec!["simulate", "--scenario", "full", "--months", "3", "--out", out_s], "--months 4"),
        (vec!["simulate", "--now", "2026-13-01", "--out", out_s], "--now"),
    ] {
        let o = run_cli(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!out.exists());
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "no temp folders left behind");

    assert!(run_cli(&["-q", "simulate", "--out", out_s]).status.success());
    let before = std::fs::read(out.join("customers.jsonl")).unwrap();
    let o = run_cli(&["simulate", "--seed", "9", "--out", out_s]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(out.join("customers.jsonl")).unwrap(), before, "existing account untouched");
}

#[test]
fn help_explains_every_command() {
    let o = run_cli(&["--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in ["simulate", "stripe-server", "--data-dir", "Exit codes"] {
        assert!(text.contains(needle), "--help lacks {needle}: {text}");
    }
}

#[test]
fn a_parquet_snapshot_written_by_the_simulator_equals_a_pull_of_the_same_account() {
    let acct = common::simulate(Scenario::Full, 40, 21);
    let data = tempfile::tempdir().unwrap();
    let pulled = common::pull(&acct, data.path(), &[], &[]);
    let out = tempfile::tempdir().unwrap();
    let direct = out.path().join("account");
    let snapshot = common::simulate_parquet(Scenario::Full, 40, 21, &direct);
    assert!(!direct.join("customers.jsonl").exists(), "no JSON Lines beside the snapshot");
    let written = mrr::snapshot::Snapshot::open(&snapshot).unwrap();
    assert!(mrr::snapshot::verify(&written).is_ok());
    assert_eq!(written.manifest.as_of, pulled.manifest.as_of);
    for t in mrr::snapshot::schema::TABLES {
        let (a, b) =
            (common::sorted_table_rows(&written, t.name, &[]), common::sorted_table_rows(&pulled, t.name, &[]));
        assert!(a == b, "{}: {} rows written vs {} pulled", t.name, a.len(), b.len());
    }
    // Derived from equal rows in whatever order the files hold them: the same bytes.
    let sha = |s: &mrr::snapshot::Snapshot, name: &str| s.manifest.tables.iter().find(|t| t.name == name).cloned();
    for name in mrr::engine::derived::DERIVED {
        let (a, b) = (sha(&written, name).expect("derived table written"), sha(&pulled, name).expect("and pulled"));
        assert_eq!((a.sha256, a.rows), (b.sha256, b.rows), "{name}");
        // Every item's versions; the full scenario's changes not invoiced yet (U1), discounts
        // seen taken off at a renewal (D2) and `once` coupons.
        let least = match name {
            "item_history" | "item_versions" => 40,
            _ => 0,
        };
        assert!(a.rows > least, "{name}: {} rows", a.rows);
    }
}

#[test]
fn a_derived_table_is_verified_against_its_recomputation_and_never_read_when_another_sql_derived_it() {
    let out = tempfile::tempdir().unwrap();
    let dir = common::simulate_parquet(Scenario::Full, 40, 22, &out.path().join("account"));
    let verify = || common::mrr(out.path(), &["snapshots", "verify", "--snapshot", dir.to_str().unwrap()]);
    let (code, stdout, err) = verify();
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("item_history") && stdout.contains("recomputed from the raw tables: equal"), "{stdout}");
    let snapshot = mrr::snapshot::Snapshot::open(&dir).unwrap();
    let expected = common::sorted_report(&snapshot);

    // A cent more on every item version, the manifest's checksum made to match: only the
    // recomputation can tell. (Reports read item_versions, derived from the other two.)
    let file = dir.join("item_versions.parquet");
    let changed = out.path().join("changed.parquet");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT * REPLACE (amount + 1 AS amount) FROM read_parquet('{}')) TO '{}' (FORMAT parquet)",
        file.display(),
        changed.display()
    ))
    .unwrap();
    std::fs::rename(&changed, &file).unwrap();
    let rewrite_entry = |change: &dyn Fn(&mut mrr::snapshot::TableEntry)| {
        let mut manifest = mrr::snapshot::Snapshot::open(&dir).unwrap().manifest;
        change(manifest.tables.iter_mut().find(|t| t.name == "item_versions").unwrap());
        std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    };
    rewrite_entry(&|entry| (entry.sha256, entry.bytes) = mrr::snapshot::file_digest(&file).unwrap());
    let snapshot = mrr::snapshot::Snapshot::open(&dir).unwrap();
    assert!(common::sorted_report(&snapshot) != expected, "reports read the derived table");
    let (code, _, err) = verify();
    assert_eq!(code, 1, "a failed check exits 1: {err}");
    assert!(err.contains("item_versions.parquet: differs from its recomputation"), "{err}");

    // Another version of the SQL derived it: reports compute it from the raw tables again
    // (the changed file would count a cent more per item), and verify says so.
    rewrite_entry(&|entry| entry.derived = Some("sql/duckdb/item_versions.sql sha256:0123456789abcdef".into()));
    let snapshot = mrr::snapshot::Snapshot::open(&dir).unwrap();
    assert!(common::sorted_report(&snapshot) == expected, "the same metrics as before the change");
    let (code, stdout, err) = verify();
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("old item_versions") && stdout.contains("computes it from the raw tables"), "{stdout}");
}
