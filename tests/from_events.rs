//! `mrr snapshot --from-events`: one simulated timeline seen at two instants. The older
//! account is pulled; the newer account's events are delivered, signed, shuffled and partly
//! twice, to a real `mrr serve`; the snapshot built from them must give the same metrics
//! as a full pull of the newer account, and the same tables.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use mrr::api::webhooks::sign;
use mrr::metrics::MetricOptions;
use mrr::simulate::Scenario;
use mrr::snapshot::Snapshot;
use serde_json::Value;

/// The older instant (a month boundary lies between it and the newer, `common::NOW`).
const EARLIER: &str = "2026-10-29T08:00:00Z";

type Report = BTreeMap<&'static str, Vec<serde_json::Map<String, Value>>>;

fn report(snapshot: &Snapshot) -> Report {
    common::report_rows(snapshot, MetricOptions::default()).into_iter().collect()
}

/// Asserts two sorted row lists are equal, showing the first rows only one side has.
fn assert_same_rows(what: &str, got: &[String], want: &[String]) {
    let only_got: Vec<&String> = got.iter().filter(|r| want.binary_search(r).is_err()).take(3).collect();
    let only_want: Vec<&String> = want.iter().filter(|r| got.binary_search(r).is_err()).take(3).collect();
    assert!(
        only_got.is_empty() && only_want.is_empty() && got.len() == want.len(),
        "{what}: {} rows built vs {} pulled\nonly built: {only_got:#?}\nonly pulled: {only_want:#?}",
        got.len(),
        want.len()
    );
}

/// The account's ground-truth MRR per (month, currency).
fn reported_mrr(rows: &[serde_json::Map<String, Value>]) -> BTreeMap<(String, String), i64> {
    rows.iter()
        .map(|r| {
            ((r["month"].as_str().unwrap().into(), r["currency"].as_str().unwrap().into()), r["mrr"].as_i64().unwrap())
        })
        .collect()
}

#[test]
fn events_replayed_through_the_webhook_onto_an_older_snapshot_equal_a_full_pull() {
    let older = common::simulate_at(Scenario::Full, 80, 11, EARLIER, Some(common::NOW));
    let newer = common::simulate(Scenario::Full, 80, 11);

    // The older account is the same story: its own ground truth holds for its pull.
    let data = tempfile::tempdir().unwrap();
    let base = common::pull(&older, data.path(), &[], &[]);
    let base_report = report(&base);
    assert_eq!(
        reported_mrr(&base_report["mrr_monthly"]),
        common::truth_mrr(&older),
        "older account vs its ground truth"
    );

    // Stripe delivers the newer account's events out of order, some of them twice.
    let text = std::fs::read_to_string(newer.dir.join("events.jsonl")).unwrap();
    let mut events: Vec<(String, Vec<u8>)> = text
        .lines()
        .map(|l| (l, serde_json::from_str::<Value>(l).unwrap()))
        .filter(|(_, v)| v["created"].as_i64().unwrap() > older.info.now)
        .map(|(l, v)| (v["id"].as_str().unwrap().to_string(), l.as_bytes().to_vec()))
        .collect();
    let kinds: std::collections::BTreeSet<String> = events
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    for kind in [
        "customer.created",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.deleted",
        "invoice.paid",
        "invoiceitem.created",
        "invoiceitem.deleted",
        "invoice.deleted",
        "test_helpers.test_clock.advancing",
        "test_helpers.test_clock.ready",
    ] {
        assert!(kinds.contains(kind), "the replay exercises {kind} (got {kinds:?})");
    }
    // An invoice older than the base, paid since: its event embeds 10 of its 35 lines and the
    // base's copy completes it (catalogue L6).
    assert!(
        events
            .iter()
            .any(|(_, b)| serde_json::from_slice::<Value>(b).unwrap()["data"]["object"]["lines"]["has_more"] == true),
        "the replay has an invoice cut short"
    );
    events.sort_by_key(|(id, _)| mrr::snapshot::hex(&<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes())));
    let server = common::Serve::start(data.path());
    let now = mrr::calendar::now();
    for (n, (id, body)) in events.iter().enumerate() {
        let r = server.deliver(body, &sign(body, common::SECRET, now));
        assert_eq!(r.status, 200, "{id}: {}", r.body);
        if n % 7 == 0 {
            let again = server.deliver(body, &sign(body, common::SECRET, now));
            assert_eq!(again.json()["duplicate"], true, "{id} redelivered");
        }
    }
    drop(server);

    let (code, out, err) = common::mrr(data.path(), &["snapshot", "--from-events", "--as-of", common::NOW]);
    assert_eq!(code, 0, "{err}");
    let built = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
    let derived = built.manifest.derived_from.as_ref().expect("the manifest says where it came from");
    assert_eq!(derived.base, base.manifest.id);
    assert_eq!(derived.events_applied, events.len() as u64);
    assert_eq!(built.manifest.as_of, newer.info.now_rfc3339);
    assert!(mrr::snapshot::verify(&built).is_ok(), "checksums and row counts of the new snapshot");
    assert_eq!(mrr::snapshot::resolve(data.path(), "latest").unwrap().manifest.id, built.manifest.id);
    assert!(mrr::snapshot::verify(&base).is_ok(), "the base snapshot is untouched");

    let full_data = tempfile::tempdir().unwrap();
    let full = common::pull(&newer, full_data.path(), &[], &[]);

    // Every query, every row, every cell: the same as the full pull, and the ground truth.
    let (got, want) = (report(&built), report(&full));
    for (query, rows) in &want {
        assert_same_rows(query, &common::sorted(&got[query]), &common::sorted(rows));
    }
    assert_eq!(reported_mrr(&got["mrr_monthly"]), common::truth_mrr(&newer), "vs the newer ground truth");
    assert_ne!(got["mrr_monthly"], base_report["mrr_monthly"], "the events changed the numbers");

    // And the tables themselves, pending invoice items included: those created since arrive
    // as `invoiceitem.created`, the base's that the 11-08 renewal billed
    // (`proration_billed_at_renewal`) leave with the invoice whose lines name them, and those
    // deleted on 11-05 (`pending_proration_deleted`) with `invoiceitem.deleted`. Not
    // comparable: `events` (a pull keeps the last 30 days, the built snapshot keeps the base's
    // and every event since) and a coupon's `times_redeemed` (Stripe sends no event when it
    // changes). A test clock's `frozen_time` is: its advances send events (R3).
    let pending = |s: &Snapshot| -> std::collections::BTreeSet<String> {
        common::sorted_table_rows(s, "pending_invoice_items", &[]).into_iter().collect()
    };
    let (before, after) = (pending(&base), pending(&full));
    assert!(before.difference(&after).count() > 0, "the replay bills pending items of the base");
    assert!(after.difference(&before).count() > 0, "the replay creates pending items");
    let comparable = |t: &str| !t.starts_with("event");
    for t in mrr::snapshot::schema::TABLES.iter().filter(|t| comparable(t.name)) {
        let skip: &[&str] = match t.name {
            "coupons" => &["times_redeemed"],
            _ => &[],
        };
        assert_same_rows(
            t.name,
            &common::sorted_table_rows(&built, t.name, skip),
            &common::sorted_table_rows(&full, t.name, skip),
        );
    }
    // The same through `mrr snapshots diff`, the reconciliation users run: no row added or
    // removed anywhere, no MRR difference, changes only in the two columns above.
    let (built_dir, full_dir) = (built.dir.to_str().unwrap(), full.dir.to_str().unwrap());
    let args = [
        "snapshots",
        "diff",
        built_dir,
        full_dir,
        "--ignore",
        "events",
        "--ignore",
        "event_changes",
        "--format",
        "json",
    ];
    let (code, out, err) = common::mrr(full_data.path(), &args);
    let d: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(d["mrr"], serde_json::json!([]), "{err}");
    for t in d["tables"].as_array().unwrap() {
        assert_eq!((t["added"].as_u64(), t["removed"].as_u64()), (Some(0), Some(0)), "{t}");
        let allowed: &[&str] = match t["table"].as_str().unwrap() {
            "coupons" => &["times_redeemed"],
            _ => &[],
        };
        for c in t["changed_columns"].as_array().unwrap() {
            assert!(allowed.contains(&c[0].as_str().unwrap()), "{t}");
        }
    }
    assert_eq!(code, if d["identical"] == true { 0 } else { 1 }, "{err}");
    let events_rows = common::sorted_table_rows(&built, "events", &[]).len();
    assert_eq!(
        events_rows as u64,
        base.manifest.tables.iter().find(|t| t.name == "events").unwrap().rows + events.len() as u64
    );
}

/// Archives one event a minute after the account's `now` (as `mrr serve` would) and builds a
/// snapshot from it as of an hour after; returns (exit code, stdout, stderr).
fn build_from_one_event(
    data: &Path,
    acct: &common::TempAccount,
    id: &str,
    kind: &str,
    object: Value,
) -> (i32, String, String) {
    build_from_one_event_as(data, acct, id, kind, object, &acct.info.api_version)
}

/// [`build_from_one_event`] with the event rendered in API version `api_version`.
fn build_from_one_event_as(
    data: &Path,
    acct: &common::TempAccount,
    id: &str,
    kind: &str,
    object: Value,
    api_version: &str,
) -> (i32, String, String) {
    let event = serde_json::json!({
        "id": id, "object": "event", "type": kind, "api_version": api_version,
        "created": acct.info.now + 60, "livemode": false, "pending_webhooks": 0,
        "request": {"id": null, "idempotency_key": null}, "data": {"object": object},
    });
    let archive = mrr::snapshot::from_events::archive_path(data);
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    std::fs::write(&archive, format!("{event}\n")).unwrap();
    let later = mrr::calendar::format_rfc3339(acct.info.now + 3600);
    common::mrr(data, &["snapshot", "--from-events", "--as-of", &later])
}

#[test]
fn bad_input_is_refused_with_no_new_snapshot() {
    let acct = common::simulate(Scenario::Default, 12, 5);
    let data = tempfile::tempdir().unwrap();
    let base = common::pull(&acct, data.path(), &[], &[]);
    let snapshots = |d: &Path| mrr::snapshot::list(d).unwrap().len();

    let (code, _, err) = common::mrr(data.path(), &["snapshot"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--from-events"), "{err}");

    let (code, _, err) = common::mrr(data.path(), &["snapshot", "--from-events"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("events/events.jsonl") && err.contains("mrr serve"), "no archive yet: {err}");

    let (code, _, err) = common::mrr(data.path(), &["snapshot", "--from-events", "--base", "20990101T000000Z"]);
    assert_eq!(code, 2);
    assert!(err.contains("--snapshot 20990101T000000Z") || err.contains("20990101T000000Z"), "{err}");

    let (code, _, err) = common::mrr(data.path(), &["snapshot", "--from-events", "--as-of", "2020-01-01"]);
    assert_eq!(code, 2);
    assert!(err.contains("lies before the base snapshot"), "{err}");

    // An invoice whose lines go on beyond what the event carries, and which the base does not
    // hold finalized, cannot be built offline (catalogue L6).
    let mut invoice = common::objects(&acct.dir, "invoices.jsonl").into_iter().next().unwrap();
    invoice["id"] = Value::from("in_test_not_in_the_base");
    invoice["lines"]["has_more"] = Value::Bool(true);
    let (code, _, err) = build_from_one_event(data.path(), &acct, "evt_test_more_lines", "invoice.updated", invoice);
    assert_eq!(code, 2, "{err}");
    for part in ["evt_test_more_lines", "in_test_not_in_the_base", "more lines", "mrr pull --since"] {
        assert!(err.contains(part), "the error names {part:?}: {err}");
    }

    assert_eq!(snapshots(data.path()), 1, "no snapshot was added");
    assert_eq!(mrr::snapshot::resolve(data.path(), "latest").unwrap().manifest.id, base.manifest.id);
    let leftovers: Vec<_> = std::fs::read_dir(mrr::snapshot::snapshots_dir(data.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary folder left behind: {leftovers:?}");
}

#[test]
fn an_event_of_an_older_api_version_is_refused_naming_the_version_and_the_way_out() {
    // An account on 2024-06-20: its events carry the subscription's billing period on the
    // subscription (before 2025-03-31.basil), as Stripe rendered them then and for good.
    let acct = common::simulate_changed(Scenario::Default, 8, 3, |o| o.api_version = "2024-06-20".into());
    let data = tempfile::tempdir().unwrap();
    let base = common::pull(&acct, data.path(), &[], &[]);
    let event = common::objects(&acct.dir, "events.jsonl")
        .into_iter()
        .find(|e| e["data"]["object"]["object"] == "subscription")
        .expect("a subscription event");
    assert_eq!(event["api_version"], "2024-06-20");
    let subscription = &event["data"]["object"];
    assert!(subscription["current_period_end"].is_i64(), "the period on the subscription: {subscription}");
    assert!(subscription["items"]["data"][0].get("current_period_end").is_none(), "and not on its items");
    let id = event["id"].as_str().unwrap();
    let kind = event["type"].as_str().unwrap();
    let (code, _, err) = build_from_one_event_as(data.path(), &acct, id, kind, subscription.clone(), "2024-06-20");
    assert_eq!(code, 2, "{err}");
    for part in [id, "2024-06-20", stripe_shared::version::VERSION.as_str(), "webhook endpoint", "mrr pull"] {
        assert!(err.contains(part), "the error names {part:?}: {err}");
    }
    assert_eq!(mrr::snapshot::list(data.path()).unwrap().len(), 1, "no snapshot was added");
    assert_eq!(mrr::snapshot::resolve(data.path(), "latest").unwrap().manifest.id, base.manifest.id);
}

#[test]
fn a_discount_event_reduces_the_subscription_from_its_start() {
    let acct = common::simulate(Scenario::Default, 40, 9);
    let data = tempfile::tempdir().unwrap();
    let base = common::pull(&acct, data.path(), &[], &[]);
    let month = &acct.info.now_rfc3339[..7];
    let by_customer = |s: &Snapshot| -> BTreeMap<String, i64> {
        report(s)["mrr_by_customer"]
            .iter()
            .filter(|r| r["month"] == month)
            .map(|r| (r["customer"].as_str().unwrap().to_string(), r["mrr"].as_i64().unwrap()))
            .collect()
    };
    // A monthly subscriber paying this month (every plan price is a multiple of 4 cents).
    let before = report(&base)["mrr_by_customer"].clone();
    let subs = common::objects(&acct.dir, "subscriptions.jsonl");
    let sub = subs
        .iter()
        .find(|s| {
            s["status"] == "active"
                && s["items"]["data"][0]["price"]["recurring"]["interval"] == "month"
                && subs.iter().filter(|o| o["customer"] == s["customer"]).count() == 1
        })
        .expect("an active monthly subscription");
    let customer = sub["customer"].as_str().unwrap();
    let paying: i64 = before
        .iter()
        .filter(|r| r["customer"] == customer)
        .max_by_key(|r| r["month"].as_str().unwrap().to_string())
        .map(|r| r["mrr"].as_i64().unwrap())
        .unwrap();

    let at = acct.info.now + 60; // when build_from_one_event archives it
    let discount = serde_json::json!({
        "id": "di_test_late", "object": "discount", "checkout_session": null, "customer": customer,
        "customer_account": null, "end": null, "invoice": null, "invoice_item": null, "promotion_code": null,
        "source": {"coupon": "PCT25FOREVER", "type": "coupon"}, "start": at, "subscription": sub["id"],
        "subscription_item": null,
    });
    let (code, out, err) =
        build_from_one_event(data.path(), &acct, "evt_test_discount", "customer.discount.created", discount);
    assert_eq!(code, 0, "{err}");
    let built = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
    assert!(common::column(&built, "discounts", "id").contains(&Some("di_test_late".to_string())));
    let (old, new) = (by_customer(&base), by_customer(&built));
    assert_eq!(new[customer], paying * 3 / 4, "25% off from the discount's start");
    let others = |m: &BTreeMap<String, i64>| {
        m.iter().filter(|(c, _)| *c != customer).map(|(c, v)| (c.clone(), *v)).collect::<Vec<_>>()
    };
    assert_eq!(others(&new), others(&old), "nobody else changed");
}

/// An item-level discount's event (D7) discounts that item alone; one whose event names no
/// subscription (Stripe's reference does not say that it names one) is refused, naming the
/// item, rather than dropped.
#[test]
fn an_item_level_discount_event_discounts_its_item_or_is_refused_naming_it() {
    let acct = common::simulate(Scenario::Default, 40, 9);
    let month = &acct.info.now_rfc3339[..7];
    let subs = common::objects(&acct.dir, "subscriptions.jsonl");
    let sub = subs
        .iter()
        .find(|s| {
            s["status"] == "active"
                && s["items"]["data"].as_array().unwrap().len() == 1
                && s["items"]["data"][0]["price"]["recurring"]["interval"] == "month"
                && subs.iter().filter(|o| o["customer"] == s["customer"]).count() == 1
        })
        .expect("an active monthly subscription with one item");
    let (customer, item) = (sub["customer"].as_str().unwrap(), sub["items"]["data"][0]["id"].as_str().unwrap());
    let discount = |id: &str, subscription: Value| {
        serde_json::json!({
            "id": id, "object": "discount", "checkout_session": null, "customer": customer,
            "customer_account": null, "end": null, "invoice": null, "invoice_item": null, "promotion_code": null,
            "source": {"coupon": "PCT25FOREVER", "type": "coupon"}, "start": acct.info.now + 60,
            "subscription": subscription, "subscription_item": item,
        })
    };
    // The customer's latest row: mrr_by_customer has one where her MRR changes.
    let mrr_now = |s: &Snapshot| -> i64 {
        let rows = &report(s)["mrr_by_customer"];
        let mine = rows.iter().filter(|r| r["customer"] == customer && r["month"].as_str().unwrap() <= month);
        mine.max_by_key(|r| r["month"].as_str().unwrap().to_string()).map(|r| r["mrr"].as_i64().unwrap()).unwrap()
    };

    let data = tempfile::tempdir().unwrap();
    let base = common::pull(&acct, data.path(), &[], &[]);
    let paying = mrr_now(&base);
    assert!(paying > 0);
    let event = discount("di_test_item", sub["id"].clone());
    let (code, out, err) =
        build_from_one_event(data.path(), &acct, "evt_test_item", "customer.discount.created", event);
    assert_eq!(code, 0, "{err}");
    let built = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
    assert!(common::column(&built, "item_discounts", "discount").contains(&Some("di_test_item".to_string())));
    assert_eq!(mrr_now(&built), paying * 3 / 4, "25% off its one item from the discount's start");

    let data = tempfile::tempdir().unwrap();
    common::pull(&acct, data.path(), &[], &[]);
    let event = discount("di_test_unplaced", Value::Null);
    let (code, _, err) =
        build_from_one_event(data.path(), &acct, "evt_test_unplaced", "customer.discount.created", event);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = common::mrr(data.path(), &["report"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains(&format!("item {item} has discount di_test_unplaced, whose subscription")), "{err}");
    assert!(err.contains("pull again"), "{err}");
}

/// Pending invoice items follow their own events (catalogue U1): `invoiceitem.deleted` takes
/// one off the table, `invoiceitem.created` adds one that is on no invoice yet, and one
/// created straight onto an invoice is never pending.
#[test]
fn invoice_item_events_add_and_remove_pending_items() {
    let acct = common::simulate(Scenario::Full, 10, 3);
    let pending: Vec<Value> =
        common::objects(&acct.dir, "invoiceitems.jsonl").into_iter().filter(|i| i["invoice"].is_null()).collect();
    assert!(!pending.is_empty(), "the full scenario has pending prorations");
    // Pulls the account, applies one event; the pending items' ids before and after.
    let apply = |kind: &str, object: Value| -> (Vec<String>, Vec<String>) {
        let data = tempfile::tempdir().unwrap();
        let base = common::pull(&acct, data.path(), &[], &[]);
        let (code, out, err) = build_from_one_event(data.path(), &acct, "evt_test_invoice_item", kind, object);
        assert_eq!(code, 0, "{kind}: {err}");
        let built = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
        let ids = |s: &Snapshot| -> Vec<String> {
            let mut ids: Vec<String> =
                common::column(s, "pending_invoice_items", "id").into_iter().map(Option::unwrap).collect();
            ids.sort();
            ids
        };
        (ids(&base), ids(&built))
    };

    let gone = pending[0]["id"].as_str().unwrap();
    let (before, after) = apply("invoiceitem.deleted", pending[0].clone());
    assert!(before.iter().any(|id| id == gone));
    assert_eq!(after, before.iter().filter(|id| *id != gone).cloned().collect::<Vec<_>>(), "it alone left");

    // A one-off item for the next invoice (no subscription), then the same on an invoice.
    let mut one_off = pending[0].clone();
    one_off["id"] = "ii_test_one_off".into();
    one_off["proration"] = false.into();
    one_off["parent"] = Value::Null;
    let (before, after) = apply("invoiceitem.created", one_off.clone());
    let mut want = before.clone();
    want.push("ii_test_one_off".into());
    want.sort();
    assert_eq!(after, want, "a pending item joins the table");
    one_off["invoice"] = "in_test_draft".into();
    let (before, after) = apply("invoiceitem.created", one_off);
    assert_eq!(after, before, "an item on an invoice is not pending");
}
