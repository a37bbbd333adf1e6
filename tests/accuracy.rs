//! The local engine against the simulator's ground truth: simulate, serve, pull, report
//! with DuckDB, and compare every month and metric to the cent, for the default and full
//! scenarios, several seeds and every option; one named test per edge case.

mod common;

use std::sync::OnceLock;

use mrr::metrics::MetricOptions;
use mrr::parity::{compare, compare_by, MONTHLY_METRICS, SEED_METRICS};
use mrr::simulate::Scenario;
use serde_json::{Map, Value};

type Rows = Vec<Map<String, Value>>;

fn rows(v: &Value) -> Rows {
    v.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
}

fn truth(acct: &common::TempAccount) -> Value {
    serde_json::from_slice(&std::fs::read(acct.dir.join("ground_truth.json")).unwrap()).unwrap()
}

/// Pulls an account and reports it with DuckDB under every option; asserts 0 differences.
fn assert_exact(scenario: Scenario, customers: u64, seed: u64) {
    assert_exact_account(&common::simulate(scenario, customers, seed), &format!("{scenario:?} seed {seed}"));
}

/// [`assert_exact`] for an account already simulated (and perhaps changed), named `label`.
fn assert_exact_account(acct: &common::TempAccount, label: &str) {
    let data = tempfile::tempdir().unwrap();
    let snap = common::pull(acct, data.path(), &[], &[]);
    let truth = truth(acct);
    let variants = std::iter::once(&truth).chain(truth["variants"].as_array().unwrap());
    for v in variants {
        let options: MetricOptions = serde_json::from_value(v["options"].clone()).unwrap();
        let results = common::report_rows(&snap, options);
        let got = |q: &str| results.iter().find(|(n, _)| *n == q).unwrap().1.clone();
        let monthly = got("mrr_monthly");
        let check = compare(&rows(&v["mrr_monthly"]), &monthly, &MONTHLY_METRICS, 0);
        let diffs: Vec<String> = check.differences.iter().map(|d| d.to_string()).collect();
        assert!(diffs.is_empty(), "{label} {options:?}: {} cells differ:\n{}", diffs.len(), diffs.join("\n"));
        assert!(check.cells_compared >= 6 * MONTHLY_METRICS.len());
        let parsed: Vec<mrr::metrics::MonthlyRow> =
            serde_json::from_value(Value::Array(monthly.into_iter().map(Value::Object).collect())).unwrap();
        assert!(mrr::metrics::invariant_violations(&parsed).is_empty(), "movement invariant");
        if options == MetricOptions::default() {
            let seed_check = compare(&rows(&truth["seed_mrr"]), &got("seed_mrr"), &SEED_METRICS, 0);
            assert!(seed_check.differences.is_empty(), "seed_mrr: {:?}", seed_check.differences);
            let (keys, metrics) = mrr::parity::shape("mrr_by_plan");
            let plans = got("mrr_by_plan");
            let plan_check = compare_by(&rows(&truth["mrr_by_plan"]), &plans, keys, metrics, 0);
            let diffs: Vec<String> = plan_check.differences.iter().take(10).map(|d| d.to_string()).collect();
            assert!(
                diffs.is_empty(),
                "{label} mrr_by_plan: {} cells differ:\n{}",
                plan_check.differences.len(),
                diffs.join("\n")
            );
            assert!(!plans.is_empty());
            // The plans of a month add up to its MRR, up to half a cent of rounding per plan
            // row and per customer.
            for m in &got("mrr_monthly") {
                let of_month: Vec<_> =
                    plans.iter().filter(|p| p["month"] == m["month"] && p["currency"] == m["currency"]).collect();
                let mrr: i64 = of_month.iter().map(|p| p["mrr"].as_i64().unwrap()).sum();
                let (total, customers) = (m["mrr"].as_i64().unwrap(), m["active_customers"].as_i64().unwrap());
                let bound = (of_month.len() as i64 + customers + 1) / 2;
                assert!((mrr - total).abs() <= bound, "{}: plans {mrr} vs mrr {total}", m["month"]);
            }
        }
    }
}

#[test]
fn default_scenario_is_exact_to_the_cent() {
    assert_exact(Scenario::Default, 75, 42);
}

/// Stripe's list rules hide every customer and subscription of this account (all are on test
/// clocks) and, once archived, its most-used price: the pull still gets them all, and every
/// number stays exact.
#[test]
fn default_scenario_with_its_most_used_price_archived_is_exact_to_the_cent() {
    let acct = common::simulate(Scenario::Default, 75, 42);
    let archived = common::archive_most_used_price(&acct.dir);
    assert_exact_account(&acct, &format!("default seed 42, {archived} archived"));
}

#[test]
fn full_scenario_is_exact_to_the_cent() {
    assert_exact(Scenario::Full, 75, 42);
}

#[test]
fn an_account_of_large_values_is_exact_to_the_cent() {
    // Every price 200 times larger (Enterprise annual $998,000): plans worth more than the
    // ~$1.07 M a scaled INT64 once held (tests/googlesql.rs runs it on BigQuery's rules).
    assert_exact_account(&common::simulate_changed(Scenario::Full, 40, 42, |o| o.amount_scale = 200), "full x200");
}

#[test]
fn three_more_seeds_are_exact_to_the_cent() {
    for seed in [1, 2, 3] {
        assert_exact(Scenario::Full, 300, seed);
    }
}

/// The full scenario pulled once for the per-case tests: (account, snapshot, customer rows).
fn full() -> &'static (common::TempAccount, tempfile::TempDir, Rows) {
    static FULL: OnceLock<(common::TempAccount, tempfile::TempDir, Rows)> = OnceLock::new();
    FULL.get_or_init(|| {
        let acct = common::simulate(Scenario::Full, 75, 42);
        let data = tempfile::tempdir().unwrap();
        let snap = common::pull(&acct, data.path(), &[], &[]);
        let results = common::report_rows(&snap, MetricOptions::default());
        let by_customer = results.into_iter().find(|(q, _)| *q == "mrr_by_customer").unwrap().1;
        (acct, data, by_customer)
    })
}

/// A case customer's MRR per month from DuckDB (carrying values across months without a
/// change) and from the ground truth, June..November 2026.
fn case_series(case: &str) -> (Vec<i64>, Vec<i64>) {
    let (acct, _, by_customer) = full();
    series(acct, by_customer, case, &["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"])
}

/// A case customer's MRR in `months` from the engine's `mrr_by_customer` rows and from the
/// account's ground truth.
fn series(acct: &common::TempAccount, by_customer: &Rows, case: &str, months: &[&str]) -> (Vec<i64>, Vec<i64>) {
    let id = common::case_customer(acct, case);
    // A row per change: a month without one carries the latest row before it.
    let engine: Vec<i64> = months
        .iter()
        .map(|m| {
            by_customer
                .iter()
                .filter(|r| r["customer"] == id.as_str() && r["month"].as_str().is_some_and(|month| month <= *m))
                .max_by_key(|r| r["month"].as_str().unwrap_or_default().to_string())
                .map_or(0, |r| r["mrr"].as_i64().unwrap())
        })
        .collect();
    let truth_rows = common::objects(&acct.dir, "ground_truth_customers.jsonl");
    let truth: Vec<i64> = months
        .iter()
        .map(|m| {
            truth_rows
                .iter()
                .find(|r| r["customer"] == id.as_str() && r["month"] == *m)
                .map_or(0, |r| r["mrr"].as_i64().unwrap())
        })
        .collect();
    (engine, truth)
}

macro_rules! edge_cases {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let (engine, truth) = case_series(stringify!($name));
            assert_eq!(engine, truth, "{}: DuckDB vs ground truth, June..November", stringify!($name));
        }
    )*};
}

mod edge_case {
    use super::case_series;
    edge_cases!(
        trial_converting,
        trial_not_converting,
        upgrade_mid_period,
        downgrade_mid_period,
        quantity_change,
        many_items_changed_together,
        multi_item,
        quarterly_price,
        weekly_price,
        annual_price,
        coupon_percent_forever,
        coupon_percent_repeating,
        coupon_percent_once,
        coupon_percent_fraction_annual,
        coupon_amount_forever,
        coupon_amount_repeating,
        coupon_amount_once,
        cancel_at_period_end_ended,
        cancel_at_period_end_pending,
        immediate_cancel,
        churned_then_returned,
        second_subscription_canceled,
        eur_customer_with_tax,
        gbp_customer_with_tax,
        metered_price,
        free_plan,
        past_due_recovered,
        past_due_then_canceled,
        past_due_then_unpaid,
        past_due_open,
        coupon_amount_multi_item,
        deleted_coupon,
        removed_discount,
        removed_discount_invoiced,
        replaced_coupon,
        paused_collection,
        long_invoice_paid_late,
        pending_upgrade_events_gone,
        customer_level_coupon,
        product_restricted_coupon,
        legacy_archived_plan,
        transform_quantity_packs,
        inline_price,
        volume_tiers,
        graduated_tiers,
        currency_options_eur,
        graduated_tiers_eur,
        amount_coupon_eur,
        item_discount_removed,
        item_discount_amount,
        pending_proration_upgrade,
        seat_change_without_proration,
        proration_billed_at_renewal,
        pending_proration_deleted,
        customer_coupon_and_own_discount,
        deleted_customer,
        one_off_invoices,
        decimal_unit_amount,
        decimal_volume_tiers,
        item_and_subscription_percents,
        item_amount_and_subscription_percent,
        customer_coupon_and_item_discount,
        stacked_amount_then_percent,
        stacked_percents,
    );
}

/// A change not invoiced yet (create_prorations pending, or proration_behavior=none) counts
/// from its `customer.subscription.updated` event. Seen on December 3rd, the full scenario's
/// two such changes (November 27th and 30th) are in November's MRR, exact to the cent. Pulled
/// when Stripe no longer has those events (here: an account with 2 days of events), the
/// create_prorations upgrade is still dated exactly by its pending proration items, and the
/// proration_behavior=none seat change, which leaves no trace, counts from the snapshot's
/// instant, the first the objects show it: December has it, November keeps the old items
/// (docs/metrics.md, "Now"). A key that may not read invoice items loses the first too.
#[test]
fn an_uninvoiced_change_counts_from_its_pending_items_or_event_or_else_from_the_snapshot_instant() {
    let now = mrr::calendar::parse_timestamp("2026-12-03T12:00:00Z").unwrap();
    let early_december = |event_days| {
        common::simulate_changed(Scenario::Full, 40, 42, |o| {
            o.now = now;
            o.event_days = event_days;
        })
    };
    assert_exact_account(&early_december(30), "full seen 12-03");

    let acct = early_december(2);
    let months = ["2026-10", "2026-11", "2026-12"];
    // Starter $29 to Business $199 on 11-30; annual Pro from 2 to 5 seats on 11-27.
    let (upgrade, seats) =
        (("pending_proration_upgrade", 2900, 19900), ("seat_change_without_proration", 13167, 32917));
    for (forbid, exact) in [(&[][..], vec![upgrade]), (&["--forbid", "invoiceitems"][..], vec![])] {
        let data = tempfile::tempdir().unwrap();
        let snap = common::pull(&acct, data.path(), forbid, &[]);
        let results = common::report_rows(&snap, MetricOptions::default());
        let by_customer = results.into_iter().find(|(q, _)| *q == "mrr_by_customer").unwrap().1;
        for (case, old, new) in [upgrade, seats] {
            let (engine, truth) = series(&acct, &by_customer, case, &months);
            assert_eq!(truth, [old, new, new], "{case}: the ground truth knows the instant");
            if exact.iter().any(|(c, _, _)| *c == case) {
                assert_eq!(engine, truth, "{case}: dated by its pending invoice items");
            } else {
                assert_eq!(engine, [old, old, new], "{case} ({forbid:?}): from the snapshot's instant");
            }
        }
    }
}

#[test]
fn report_errors_name_the_snapshot_the_file_and_the_table() {
    let data = tempfile::tempdir().unwrap();
    let (code, _, err) = common::mrr(data.path(), &["report"]);
    assert_eq!(code, 2);
    assert!(err.contains("no snapshot yet"), "{err}");
    let (code, _, err) = common::mrr(data.path(), &["report", "--snapshot", "20990101T000000Z"]);
    assert_eq!(code, 2);
    assert!(err.contains("--snapshot 20990101T000000Z"), "{err}");

    let acct = common::simulate(Scenario::Default, 10, 3);
    let snap = common::pull(&acct, data.path(), &[], &[]);
    let (code, _, err) = common::mrr(data.path(), &["report", "--query", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown query"), "{err}");

    // A table with the wrong content: DuckDB's own message, naming the SQL file.
    let prices = snap.table_path("prices").unwrap();
    let saved = std::fs::read(&prices).unwrap();
    std::fs::copy(snap.table_path("test_clocks").unwrap(), &prices).unwrap();
    let (code, _, err) = common::mrr(data.path(), &["report"]);
    assert_eq!(code, 2);
    assert!(err.contains("sql/duckdb/") && err.contains("failed in DuckDB"), "{err}");
    std::fs::write(&prices, saved).unwrap();

    // A missing table file a query reads (invoices and their lines are read only when the
    // snapshot is written, into its derived tables).
    std::fs::remove_file(snap.table_path("subscriptions").unwrap()).unwrap();
    let (code, _, err) = common::mrr(data.path(), &["report"]);
    assert_eq!(code, 2);
    assert!(err.contains("subscriptions.parquet is missing"), "{err}");

    // A corrupt manifest.
    std::fs::write(snap.dir.join("manifest.json"), "{not json").unwrap();
    let (code, _, err) = common::mrr(data.path(), &["report", "--snapshot", &snap.manifest.id]);
    assert_eq!(code, 2);
    assert!(err.contains("corrupt manifest"), "{err}");
}

/// A data dir whose latest snapshot is a copy of `data`'s latest as an older mrr would have
/// pulled it: schema version `version`, without `tables` (added in later versions).
fn older_snapshot(data: &std::path::Path, version: u32, tables: &[&str]) -> tempfile::TempDir {
    let base = mrr::snapshot::Snapshot::open(&data.join("snapshots").join(latest_id(data))).unwrap();
    let old = tempfile::tempdir().unwrap();
    let snapshots = old.path().join("snapshots");
    let dir = snapshots.join("20260101T000000Z");
    common::copy_dir(&base.dir, &dir);
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["id"] = "20260101T000000Z".into();
    manifest["schema_version"] = version.into();
    manifest["tables"].as_array_mut().unwrap().retain(|t| !tables.contains(&t["name"].as_str().unwrap()));
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    for t in tables {
        std::fs::remove_file(dir.join(format!("{t}.parquet"))).unwrap();
    }
    std::fs::write(snapshots.join("latest"), "20260101T000000Z").unwrap();
    old
}

/// A snapshot pulled before mrr read tiers and currency options (schema version 1) reads as
/// having none: an account that needs them is refused, naming the price, never valued at 0.
#[test]
fn a_snapshot_without_the_tiers_or_currency_options_it_needs_is_refused_naming_the_price() {
    let (acct, data, _) = full();
    let old = older_snapshot(data.path(), 1, &["price_tiers", "price_currency_options"]);
    let err = refused_report(old.path());
    let tiered = common::objects(&acct.dir, "prices.jsonl")
        .into_iter()
        .filter(|p| p["billing_scheme"] == "tiered")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let business = common::objects(&acct.dir, "prices.jsonl")
        .into_iter()
        .find(|p| p["currency_options"].get("eur").is_some())
        .map(|p| p["id"].as_str().unwrap().to_string())
        .unwrap();
    let named = tiered.iter().chain([&business]).find(|id| err.contains(&format!("price {id} cannot be valued")));
    assert!(named.is_some(), "{err}");
    assert!(err.contains("pull again"), "{err}");
}

/// A graduated tier whose unit amount is a fraction of a minor unit (where Stripe rounds a
/// graduated price's fractions is not in its reference), or a price with neither
/// `unit_amount` nor a readable `unit_amount_decimal`, is refused naming the price and the
/// decimal, never valued at 0 or at its whole part (L11).
#[test]
fn a_fractional_tier_or_an_unreadable_decimal_amount_is_refused_naming_the_price() {
    let edit = |edit_price: &dyn Fn(&mut Value) -> bool| {
        let acct = common::simulate(Scenario::Full, 20, 42);
        let mut edited = None;
        common::rewrite_objects(&acct.dir, "prices.jsonl", |prices| {
            let p = prices.iter_mut().find_map(|p| edit_price(p).then_some(p)).expect("a price to edit");
            edited = Some(p["id"].as_str().unwrap().to_string());
        });
        let data = tempfile::tempdir().unwrap();
        common::pull(&acct, data.path(), &[], &[]);
        (edited.unwrap(), refused_report(data.path()))
    };
    let (price, err) = edit(&|p| {
        let graduated = p["tiers_mode"] == "graduated";
        if graduated {
            p["tiers"][1]["unit_amount"] = Value::Null;
            p["tiers"][1]["unit_amount_decimal"] = "1200.5".into();
        }
        graduated
    });
    assert!(err.contains(&format!("price {price} cannot be valued")), "{err}");
    assert!(err.contains("a usd graduated tier's unit amount is a fraction of a minor unit (1200.5)"), "{err}");
    let (price, err) = edit(&|p| {
        let decimal = p["unit_amount_decimal"] == "0.0375";
        if decimal {
            p["unit_amount_decimal"] = "0.0375000000001".into();
        }
        decimal
    });
    assert!(err.contains(&format!("price {price} cannot be valued")), "{err}");
    assert!(err.contains("`unit_amount_decimal` (\"0.0375000000001\") is not a decimal of at most 12 places"), "{err}");
}

/// A currency option in fractions of a minor unit (`unit_amount` null, L11) bills like the
/// price's own: the EUR subscription on Business monthly, its option edited to 18 500.5 euro
/// cents, is valued at 18 501 a month (the line rounded half up), never at 0 or at 18 500.
#[test]
fn a_currency_option_in_fractions_of_a_cent_bills_its_line_rounded() {
    let acct = common::simulate(Scenario::Full, 20, 42);
    common::rewrite_objects(&acct.dir, "prices.jsonl", |prices| {
        let p = prices.iter_mut().find(|p| p["currency_options"].get("eur").is_some()).unwrap();
        p["currency_options"]["eur"]["unit_amount"] = Value::Null;
        p["currency_options"]["eur"]["unit_amount_decimal"] = "18500.5".into();
    });
    let data = tempfile::tempdir().unwrap();
    let snap = common::pull(&acct, data.path(), &[], &[]);
    let rows = common::report_rows(&snap, MetricOptions::default());
    let by_customer = rows.into_iter().find(|(q, _)| *q == "mrr_by_customer").unwrap().1;
    let (engine, truth) = series(&acct, &by_customer, "currency_options_eur", &["2026-06", "2026-11"]);
    assert_eq!(truth, [18500, 18500], "the account as simulated");
    assert_eq!(engine, [18501, 18501]);
}

/// A snapshot pulled before mrr read amount-off coupons' currency options (schema version 5)
/// reads as having none: a EUR subscription on a USD amount-off coupon is refused, naming the
/// discount and the coupon, never discounted by dollars taken as euros, nor by nothing (D6).
/// `--discounts none` takes nothing off, so it still reports.
#[test]
fn an_amount_off_coupon_without_an_amount_in_the_subscriptions_currency_is_refused_naming_it() {
    let (_, data, _) = full();
    let old = older_snapshot(data.path(), 5, &["coupon_currency_options"]);
    let err = refused_report(old.path());
    assert!(err.contains("its coupon USD10FOREVER takes an amount off in usd, the subscription bills in eur"), "{err}");
    assert!(err.contains("pull again"), "{err}");
    let (code, out, err) = common::mrr(old.path(), &["report", "--discounts", "none"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty());
}

/// Were Stripe not to expand a deleted coupon in its discounts (D1's assumption), the snapshot
/// would lack it: `mrr report` refuses, naming the discount and the coupon, rather than drop
/// the discount and overstate MRR.
#[test]
fn a_discount_whose_coupon_the_snapshot_lacks_is_refused_naming_both() {
    let acct = common::simulate(Scenario::Full, 20, 42);
    std::fs::remove_file(acct.dir.join(mrr::simulate::DELETED_COUPONS_FILE)).unwrap();
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let err = refused_report(data.path());
    assert!(err.contains("has no coupon LAUNCH30") && err.contains("discount di_"), "{err}");
    assert!(err.contains("pull again"), "{err}");
}

/// The subscription of a full-scenario case customer, its discount, and a new discount of the
/// same coupon redeemed again two days before the account's present (after its last renewal,
/// so no invoice shows it): `listed` says which of the two the subscription lists now.
fn redeem_again(acct: &common::TempAccount, case: &str, listed: &[&str]) -> (String, String, String) {
    let customer = common::case_customer(acct, case);
    let sub = common::objects(&acct.dir, "subscriptions.jsonl")
        .into_iter()
        .find(|s| s["customer"] == customer && s["discounts"].as_array().is_some_and(|d| d.len() == 1))
        .expect("a subscription with one discount");
    let old = sub["discounts"][0].clone();
    let mut new = old.clone();
    let new_id = format!("{}X", old["id"].as_str().unwrap());
    new["id"] = new_id.clone().into();
    new["start"] = (acct.info.now - 2 * 86_400).into();
    let (old_id, sub_id) = (old["id"].as_str().unwrap().to_string(), sub["id"].as_str().unwrap().to_string());
    let discounts = common::objects(&acct.dir, "discounts.jsonl");
    assert!(discounts.iter().any(|d| d["id"] == old_id.as_str()), "the server expands discounts from discounts.jsonl");
    common::rewrite_objects(&acct.dir, "discounts.jsonl", |all| all.push(new.clone()));
    common::rewrite_objects(&acct.dir, "subscriptions.jsonl", |subs| {
        let s = subs.iter_mut().find(|s| s["id"] == sub_id.as_str()).unwrap();
        s["discounts"] = listed
            .iter()
            .map(|which| match *which {
                "old" => old.clone(),
                "new" => new.clone(),
                other => panic!("{other}"),
            })
            .collect();
    });
    (sub_id, old_id, new_id)
}

#[test]
fn a_coupon_redeemed_again_replaces_the_discount_before_it_and_counts_once() {
    // The subscription now lists only the new discount: the old one was replaced, with no
    // event to say so (a key without event permission, or older than Stripe keeps). Same
    // coupon, so the ground truth stands; counting both doubled the customer's MRR from then.
    let acct = common::simulate(Scenario::Full, 20, 42);
    redeem_again(&acct, "coupon_percent_forever", &["new"]);
    assert_exact_account(&acct, "full seed 42, coupon_percent_forever redeemed again");
}

#[test]
fn a_discount_taken_off_with_no_event_and_no_renewal_since_ends_by_the_snapshot_instant() {
    // removed_discount was taken off 9 days ago, after its last renewal: only its
    // `customer.discount.deleted` event says so. Without such events (older than Stripe keeps,
    // or a key without event permission) the subscription's `discounts`, which no longer list
    // it, say so (D2): November is undiscounted, as in the ground truth.
    let acct = common::simulate(Scenario::Full, 20, 42);
    let mut dropped = 0;
    common::rewrite_objects(&acct.dir, "events.jsonl", |events| {
        let before = events.len();
        events.retain(|e| e["type"] != "customer.discount.deleted");
        dropped = before - events.len();
    });
    assert!(dropped > 0, "the full scenario sends customer.discount.deleted");
    assert_exact_account(&acct, "full seed 42, no customer.discount.deleted events");
}

#[test]
fn a_customers_discount_it_no_longer_has_ends_by_the_snapshot_instant_and_is_not_valued_beside_an_items() {
    // The customer no longer has its 12.5% (its `discount` is null), with no event to say
    // when: taken off by the snapshot instant at the latest (D2, D3), so November is
    // undiscounted, 10800 after 9450.
    let acct = common::simulate(Scenario::Full, 20, 42);
    let without_discount = |case: &str| {
        let customer = common::case_customer(&acct, case);
        common::rewrite_objects(&acct.dir, "customers.jsonl", |all| {
            let c = all.iter_mut().find(|c| c["id"] == customer.as_str()).unwrap();
            assert!(c["discount"].is_object(), "{case} has a customer-level discount");
            c["discount"] = serde_json::Value::Null;
        });
        customer
    };
    let customer = without_discount("customer_level_coupon");
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    assert_eq!(latest_mrr_of(data.path(), &customer), (10800, 9450));

    // Beside an item's discount, which still discounts, the customer's end cannot be seen
    // (no invoice total shows it): refused, naming the item (D7).
    let customer = without_discount("customer_coupon_and_item_discount");
    let sub = common::objects(&acct.dir, "subscriptions.jsonl")
        .into_iter()
        .find(|s| s["customer"] == customer.as_str())
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let err = refused_report(data.path());
    let named =
        format!("of subscription {} has an item-level discount and its subscription", sub["id"].as_str().unwrap());
    assert!(err.contains(&named) && err.contains("not both listed now"), "{err}");
}

#[test]
fn a_stack_of_listed_discounts_is_valued_and_what_cannot_be_valued_is_refused_naming_it() {
    // Both listed now: a stack, valued in the list's order (D5). Pro at 25% off (5925) gets
    // 25% off what that left: 4443.75, 4444.
    let acct = common::simulate(Scenario::Full, 20, 42);
    let customer = common::case_customer(&acct, "coupon_percent_forever");
    let (sub, old, new) = redeem_again(&acct, "coupon_percent_forever", &["old", "new"]);
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    assert_eq!(latest_mrr_of(data.path(), &customer), (4444, 5925));

    // The same stack of 25% and 12.5% keeps 65.625%, finer than hundredths of a percent.
    let twelve_and_a_half = coupon_id(&acct, 12.5);
    common::rewrite_objects(&acct.dir, "discounts.jsonl", |all| {
        all.iter_mut().find(|d| d["id"] == new.as_str()).unwrap()["source"]["coupon"] = twelve_and_a_half.clone();
    });
    common::rewrite_objects(&acct.dir, "subscriptions.jsonl", |subs| {
        let s = subs.iter_mut().find(|s| s["id"] == sub.as_str()).unwrap();
        s["discounts"][1]["source"]["coupon"] = twelve_and_a_half.clone();
    });
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let err = refused_report(data.path());
    let named = format!("subscription {sub} stacks several discounts ({old}, {new}), which mrr cannot value exactly");
    assert!(err.contains(&named) && err.contains("D5") && err.contains("--discounts none"), "{err}");
    let (code, out, err) = common::mrr(data.path(), &["report", "--discounts", "none"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty());

    // Only the older one listed now, the newer one known from the latest invoice it discounted
    // too: it was taken off at an instant no invoice total shows, while the older one still
    // discounted (D2).
    let acct = common::simulate(Scenario::Full, 20, 42);
    let (sub, old, new) = redeem_again(&acct, "coupon_percent_forever", &["old"]);
    let mut invoiced_at = 0;
    common::rewrite_objects(&acct.dir, "invoices.jsonl", |invoices| {
        let latest = invoices
            .iter_mut()
            .filter(|i| i["parent"]["subscription_details"]["subscription"] == sub.as_str())
            .max_by_key(|i| i["created"].as_i64().unwrap())
            .expect("the subscription's invoices");
        latest["discounts"].as_array_mut().unwrap().push(new.clone().into());
        invoiced_at = latest["created"].as_i64().unwrap();
    });
    common::rewrite_objects(&acct.dir, "discounts.jsonl", |all| {
        all.iter_mut().find(|d| d["id"] == new.as_str()).unwrap()["start"] = (invoiced_at - 86_400).into();
    });
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let err = refused_report(data.path());
    let named =
        format!("subscription {sub} has several discounts at once ({old}, {new}), one of them no longer listed");
    assert!(err.contains(&named), "{err}");

    // A stack beside an item-level discount: the seats' 50% with 25% and 25% off the
    // subscription is not valued together (D5, D7).
    let acct = common::simulate(Scenario::Full, 20, 42);
    let (sub, ..) = redeem_again(&acct, "item_and_subscription_percents", &["old", "new"]);
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let err = refused_report(data.path());
    assert!(err.contains(&format!("of subscription {sub} has an item-level discount")), "{err}");
    assert!(err.contains("one of the two owners stacking several"), "{err}");

    // An item-level discount beside one of the subscription's own, both listed now: valued,
    // the item's first (D7). Pro at 25% off (5925) gets 25% off its item too: 25% of what the
    // item's left, 4443.75, 4444.
    let acct = acct_with_item_discount("coupon_percent_forever", &["old"]);
    let (data, ..) = item_discount_beside(&acct);
    let customer = common::case_customer(&acct, "coupon_percent_forever");
    assert_eq!(latest_mrr_of(data.path(), &customer), (4444, 5925));

    // Beside a subscription's own discount and its customer's, which the subscription does
    // not inherit while it has its own (D3): Starter's $10 off its item, then its own $10 off:
    // 900, beside Pro's 6912.5 from the customer's 12.5%: 7812.5, 7812.
    let acct = acct_with_item_discount("customer_coupon_and_own_discount", &["old"]);
    let (data, ..) = item_discount_beside(&acct);
    let customer = common::case_customer(&acct, "customer_coupon_and_own_discount");
    assert_eq!(latest_mrr_of(data.path(), &customer), (7812, 8812));

    // Not listed by its subscription now: it was taken off at some point no invoice total
    // shows (the item's discount still discounts them), so the pair is refused (D2, D7).
    let (data, sub, item2, new2) = item_discount_beside(&acct_with_item_discount("coupon_percent_forever", &[]));
    let (code, _, err) = common::mrr(data.path(), &["report"]);
    assert_eq!(code, 2, "{err}");
    let named = format!("item {item2} of subscription {sub} has an item-level discount and its subscription");
    assert!(
        err.contains(&named) && err.contains(&format!("({new2} with ")) && err.contains("not both listed now"),
        "{err}"
    );

    // An amount off the subscription after a percent off its item cannot be kept exact.
    let acct = acct_with_item_discount("coupon_amount_forever", &["old"]);
    let percent_coupon = coupon_id(&acct, 25.0);
    let (data, sub, item, new) = item_discount_beside(&acct);
    let _ = data;
    common::rewrite_objects(&acct.dir, "discounts.jsonl", |all| {
        let d = all.iter_mut().find(|d| d["id"] == new.as_str()).unwrap();
        d["source"]["coupon"] = percent_coupon.clone();
    });
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let (code, _, err) = common::mrr(data.path(), &["report"]);
    assert_eq!(code, 2, "{err}");
    let named = format!("item {item} of subscription {sub} has an item-level discount and one of its subscription's");
    assert!(err.contains(&named) && err.contains("cannot value exactly"), "{err}");
}

/// The id of the full scenario's forever coupon of `percent` off.
fn coupon_id(acct: &common::TempAccount, percent: f64) -> serde_json::Value {
    common::objects(&acct.dir, "coupons.jsonl")
        .into_iter()
        .find(|c| c["percent_off"] == percent && c["duration"] == "forever")
        .expect("a forever percent-off coupon")["id"]
        .clone()
}

/// The full account with the `case` customer's discount redeemed again as a new discount,
/// its subscription listing `listed` of the two ("old", "new").
fn acct_with_item_discount(case: &str, listed: &[&str]) -> common::TempAccount {
    let acct = common::simulate(Scenario::Full, 20, 42);
    let _ = redeem_again(&acct, case, listed);
    acct
}

/// Moves the newest discount of the subscription `redeem_again` edited onto its first item
/// (D7), pulls, and returns the data folder, the subscription, the item and the discount.
fn item_discount_beside(acct: &common::TempAccount) -> (tempfile::TempDir, String, String, String) {
    let discounts = common::objects(&acct.dir, "discounts.jsonl");
    let new = discounts.iter().rev().find(|d| d["id"].as_str().unwrap().ends_with('X')).expect("the new discount");
    let (new, sub) = (new["id"].as_str().unwrap().to_string(), new["subscription"].as_str().unwrap().to_string());
    let mut item = String::new();
    common::rewrite_objects(&acct.dir, "subscriptions.jsonl", |subs| {
        let s = subs.iter_mut().find(|s| s["id"] == sub.as_str()).unwrap();
        item = s["items"]["data"][0]["id"].as_str().unwrap().to_string();
        s["items"]["data"][0]["discounts"] = serde_json::json!([new.clone()]);
    });
    common::rewrite_objects(&acct.dir, "discounts.jsonl", |all| {
        let d = all.iter_mut().find(|d| d["id"] == new.as_str()).unwrap();
        d["subscription_item"] = item.clone().into();
    });
    let data = tempfile::tempdir().unwrap();
    common::pull(acct, data.path(), &[], &[]);
    (data, sub, item, new)
}

/// The latest `mrr_by_customer` row of `customer`: (mrr, previous_mrr).
fn latest_mrr_of(data: &std::path::Path, customer: &str) -> (i64, i64) {
    let (code, out, err) = common::mrr(data, &["report", "--query", "mrr_by_customer", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let last = rows
        .iter()
        .filter(|r| r["customer"] == customer)
        .max_by_key(|r| r["month"].as_str().unwrap().to_string())
        .expect("the customer's rows");
    (last["mrr"].as_i64().unwrap(), last["previous_mrr"].as_i64().unwrap())
}

/// An item's discount that starts after its subscription's repeating coupon has surely ended
/// (at the coupon's `end`) never applies at the same time: reported, not refused (D7).
#[test]
fn an_items_discount_after_its_subscriptions_has_ended_is_valued() {
    let acct = common::simulate(Scenario::Full, 20, 42);
    let customer = common::case_customer(&acct, "coupon_percent_repeating");
    let sub =
        common::objects(&acct.dir, "subscriptions.jsonl").into_iter().find(|s| s["customer"] == customer).unwrap();
    let (sub_id, item) = (sub["id"].clone(), sub["items"]["data"][0]["id"].clone());
    let discounts = common::objects(&acct.dir, "discounts.jsonl");
    let ended = discounts.iter().find(|d| d["subscription"] == sub_id).expect("its repeating discount").clone();
    assert!(ended["end"].as_i64().unwrap() < acct.info.now - 2 * 86_400, "ended before the item's starts");
    let mut on_item = ended.clone();
    on_item["id"] = format!("{}I", ended["id"].as_str().unwrap()).into();
    on_item["start"] = (acct.info.now - 2 * 86_400).into();
    on_item["end"] = serde_json::Value::Null;
    on_item["subscription_item"] = item.clone();
    common::rewrite_objects(&acct.dir, "discounts.jsonl", |all| all.push(on_item.clone()));
    common::rewrite_objects(&acct.dir, "subscriptions.jsonl", |subs| {
        let s = subs.iter_mut().find(|s| s["id"] == sub_id).unwrap();
        s["items"]["data"][0]["discounts"] = serde_json::json!([on_item.clone()]);
    });
    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let (code, out, err) = common::mrr(data.path(), &["report"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty());
}

/// A snapshot pulled before mrr read item-level discounts (schema version 6) lists them on
/// their items without their objects: the subscription is refused, naming the item and the
/// discount, never valued as if undiscounted (D7).
#[test]
fn an_item_level_discount_the_snapshot_has_no_object_for_is_refused_naming_it() {
    let (acct, data, _) = full();
    let old = older_snapshot(data.path(), 6, &["item_discounts"]);
    let err = refused_report(old.path());
    let listing: Vec<String> = common::objects(&acct.dir, "subscriptions.jsonl")
        .into_iter()
        .flat_map(|s| s["items"]["data"].as_array().unwrap().clone())
        .filter(|i| !i["discounts"].as_array().unwrap().is_empty())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!listing.is_empty(), "item_discount_amount lists its discount on its item");
    assert!(listing.iter().any(|item| err.contains(&format!("item {item} of subscription"))), "{err}");
    assert!(err.contains("schema version 7") && err.contains("pull again"), "{err}");
}

/// `mrr report` refused: exit 2 and no partial report; its stderr.
fn refused_report(data: &std::path::Path) -> String {
    let (code, out, err) = common::mrr(data, &["report"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty(), "no partial report: {out}");
    err
}

fn latest_id(data: &std::path::Path) -> String {
    std::fs::read_to_string(data.join("snapshots").join("latest")).unwrap().trim().to_string()
}

#[test]
fn report_prints_every_format_and_saves_results_with_their_options() {
    let acct = common::simulate(Scenario::Full, 30, 5);
    let data = tempfile::tempdir().unwrap();
    let snap = common::pull(&acct, data.path(), &[], &[]);
    let (code, out, err) = common::mrr(data.path(), &["report", "--format", "json", "--currency", "eur"]);
    assert_eq!(code, 0, "{err}");
    let printed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(!printed.is_empty() && printed.iter().all(|r| r["currency"] == "eur"));
    let (code, out, _) = common::mrr(data.path(), &["report", "--format", "csv", "--query", "seed_mrr"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("month,currency,active_subscriptions,active_customers,mrr_amount,mom_change\n"), "{out}");
    let (code, out, _) = common::mrr(data.path(), &["report", "--discounts", "none", "--churn-at", "cancel"]);
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().starts_with("-------"), "{out}");
    let dir = snap.dir.join("results/duckdb");
    for f in [
        "mrr_monthly.parquet",
        "mrr_by_customer.parquet",
        "seed_mrr.parquet",
        "mrr_monthly__discounts-none__churn_at-cancel.parquet",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let saved = mrr::queries::results::load(&dir.join("mrr_monthly.parquet")).unwrap();
    assert_eq!(saved.first().unwrap()["month"], "2026-06");
    let (code, _, _) = common::mrr(data.path(), &["snapshots", "verify"]);
    assert_eq!(code, 0, "results beside the tables never break verification");
}

/// A plain subscription's changes are derived over every instant and a report cuts them at
/// its own (marking a month's last row by the next instant, which may lie after it): cut
/// between two instants of one plain subscription in one month, the report must give what
/// valuing every subscription at that instant gives.
#[test]
fn plain_subscriptions_derived_changes_cut_at_an_earlier_instant_equal_valuing_them_there() {
    let acct = common::simulate(Scenario::Full, 40, 7);
    let data = tempfile::tempdir().unwrap();
    let snap = common::pull(&acct, data.path(), &[], &[]);
    let plain = mrr::engine::derived::current(&snap, "plain_changes").expect("the snapshot holds plain_changes");
    // A plain subscription's change followed by another instant in the same month: the cut
    // falls one second after the change, which then ends its month.
    let conn = mrr::engine::duckdb::open().unwrap();
    let cut: i64 = conn
        .query_row(
            &format!(
                "SELECT MIN(epoch_us(changed_at)) // 1000000 + 1 FROM {}
                 WHERE date_trunc('month', make_timestamp(epoch_us(next_instant)))
                       = date_trunc('month', make_timestamp(epoch_us(changed_at)))
                   AND epoch_us(next_instant) > epoch_us(changed_at) + 1000000
                   AND (delta_cents <> 0 OR delta_frac <> 0 OR delta_counting <> 0)",
                mrr::engine::duckdb::parquet_ref(&plain)
            ),
            [],
            |r| r.get(0),
        )
        .expect("a plain subscription with a change and another instant in one month");
    let mut params = mrr::queries::QueryParams::of(&snap, MetricOptions::default()).unwrap();
    params.as_of = cut;
    let rows_of = |params: &mrr::queries::QueryParams| {
        let results = mrr::engine::duckdb::run_all(&snap, params, &mut |_| {}).unwrap();
        results
            .iter()
            .map(|(q, batches)| (*q, common::sorted(&mrr::queries::results::batches_to_rows(batches).unwrap())))
            .collect::<Vec<_>>()
    };
    let read = rows_of(&params);
    let valued = rows_of(&mrr::queries::QueryParams { plain_changes_read: false, ..params });
    for ((query, got), (_, want)) in read.iter().zip(&valued) {
        assert!(!want.is_empty(), "{query} has rows");
        assert_eq!(got, want, "{query}: plain_changes read vs valued, cut at {cut}");
    }
}
