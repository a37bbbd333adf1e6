//! `mrr serve` as a real process on loopback: the API serves every metric of a pulled
//! snapshot (checked against the simulator's ground truth), errors are JSON with proper
//! status codes, the OpenAPI document covers every route, and webhooks are verified and
//! stored exactly once (signature vectors, duplicates, concurrent duplicates, oversized
//! and garbled bodies).

mod common;

use std::path::Path;
use std::sync::OnceLock;

use mrr::api::webhooks::sign;
use mrr::simulate::Scenario;
use serde_json::Value;

use common::{Serve, SECRET};

struct Fixture {
    acct: common::TempAccount,
    _data: tempfile::TempDir,
    data_dir: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let acct = common::simulate(Scenario::Full, 75, 42);
        let data = tempfile::tempdir().unwrap();
        common::pull(&acct, data.path(), &[], &[]);
        Fixture { data_dir: data.path().to_path_buf(), _data: data, acct }
    })
}

#[test]
fn api_serves_every_metric_and_matches_the_ground_truth() {
    let f = fixture();
    let server = Serve::start(&f.data_dir);
    let health = server.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    let truth: Value = serde_json::from_slice(&std::fs::read(f.acct.dir.join("ground_truth.json")).unwrap()).unwrap();
    let mrr = server.get("/api/mrr?currency=usd");
    assert_eq!(mrr.status, 200, "{}", mrr.body);
    let rows = mrr.json();
    let rows = rows.as_array().unwrap();
    let want: Vec<&Value> =
        truth["mrr_monthly"].as_array().unwrap().iter().filter(|r| r["currency"] == "usd").collect();
    assert_eq!(rows.len(), want.len());
    for (got, want) in rows.iter().zip(want) {
        assert_eq!(got["month"], want["month"]);
        // mom_change keeps the original dashboard's meaning (major units), checked below.
        for metric in mrr::parity::MONTHLY_METRICS.iter().filter(|m| **m != "mom_change") {
            assert_eq!(got[*metric], want[*metric], "{} {metric}", want["month"]);
        }
        let change = got["mom_change"].as_f64().unwrap();
        assert_eq!((change * 100.0).round() as i64, want["mom_change"].as_i64().unwrap());
        // The original dashboard's fields, amounts in major units.
        let major = got["mrr_amount"].as_f64().unwrap();
        assert_eq!((major * 100.0).round() as i64, want["mrr"].as_i64().unwrap(), "mrr_amount is MRR in major units");
        assert_eq!(got["active_customers"], want["active_customers"]);
        assert!(got.get("mom_change").is_some());
    }

    for query in mrr::queries::QUERIES {
        let r = server.get(&format!("/api/metrics?query={query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        assert!(!r.json()["rows"].as_array().unwrap().is_empty(), "{query}");
    }
    let seed = server.get("/api/metrics?query=seed_mrr&currency=usd").json();
    let want_seed: Vec<&Value> =
        truth["seed_mrr"].as_array().unwrap().iter().filter(|r| r["currency"] == "usd").collect();
    assert_eq!(seed["rows"].as_array().unwrap().len(), want_seed.len());

    let snapshots = server.get("/api/snapshots").json();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    assert_eq!(snapshots[0]["has_parity"], false);
}

#[test]
fn errors_are_json_with_proper_status_codes() {
    let f = fixture();
    let server = Serve::start(&f.data_dir);
    for (path, status, needle) in [
        ("/api/metrics?query=nope", 400, "unknown query"),
        ("/api/mrr?snapshot=20990101T000000Z", 404, "no such snapshot"),
        ("/api/parity", 404, "no parity.json yet"),
        ("/no/such/route", 404, "no such route"),
    ] {
        let r = server.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let body = r.json();
        assert_eq!(body["error"]["status"], status);
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{path}: {}", r.body);
    }
}

#[test]
fn openapi_document_covers_every_route() {
    let f = fixture();
    let server = Serve::start(&f.data_dir);
    let doc = server.get("/api/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    for route in mrr::api::ROUTES {
        assert!(doc["paths"][route.path][route.method].is_object(), "{} {}", route.method, route.path);
        if route.method == "get" {
            let r = server.get(route.path);
            assert_ne!(r.status, 405, "{} is routed", route.path);
            assert!(!(r.status == 404 && r.body.contains("no such route")), "{} is routed", route.path);
        }
    }
}

/// Real events of the simulated account.
fn events() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(fixture().acct.dir.join("events.jsonl")).unwrap();
    text.lines().take(20).map(|l| l.as_bytes().to_vec()).collect()
}

fn archive_lines(data_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(data_dir.join("events/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn webhooks_are_verified_and_stored_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path());
    let events = events();
    let now = mrr::calendar::now();
    let first = &events[0];
    let id = serde_json::from_slice::<Value>(first).unwrap()["id"].as_str().unwrap().to_string();

    let ok = server.deliver(first, &sign(first, SECRET, now));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["duplicate"], false);
    let again = server.deliver(first, &sign(first, SECRET, now));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["duplicate"], true);

    // Refused: wrong secret, tampered body, stale, missing header; nothing stored.
    let second = &events[1];
    let mut tampered = second.clone();
    let at = tampered.iter().position(|b| b.is_ascii_digit()).unwrap();
    tampered[at] = if tampered[at] == b'9' { b'8' } else { tampered[at] + 1 };
    for (body, signature, what) in [
        (second.clone(), sign(second, "whsec_wrong", now), "wrong secret"),
        (tampered, sign(second, SECRET, now), "tampered body"),
        (second.clone(), sign(second, SECRET, now - 301), "stale timestamp"),
        (second.clone(), "t=1,v1=zz".to_string(), "garbled header"),
    ] {
        let r = server.deliver(&body, &signature);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("signature"), "{what}");
    }
    // Several v1 entries (a secret being rolled): accepted.
    let rolled =
        format!("{},v1={}", sign(second, "whsec_old", now), sign(second, SECRET, now).split("v1=").nth(1).unwrap());
    assert_eq!(server.deliver(second, &rolled).status, 200);

    // Garbled and oversized bodies: 400 and 413, never a crash.
    let garbled = b"{not json";
    assert_eq!(server.deliver(garbled, &sign(garbled, SECRET, now)).status, 400);
    let not_event = br#"{"id":"cus_1","object":"customer"}"#;
    assert_eq!(server.deliver(not_event, &sign(not_event, SECRET, now)).status, 400);
    let huge = vec![b' '; mrr::api::MAX_WEBHOOK_BYTES + 1];
    assert_eq!(server.deliver(&huge, &sign(&huge, SECRET, now)).status, 413);
    assert_eq!(server.get("/healthz").status, 200, "still serving");

    let stored = archive_lines(data.path());
    assert_eq!(stored.len(), 2, "each accepted event once");
    assert_eq!(stored[0]["id"], id.as_str());
}

#[test]
fn concurrent_duplicate_deliveries_store_one_copy() {
    let data = tempfile::tempdir().unwrap();
    let server = Serve::start(data.path());
    let events = events();
    let now = mrr::calendar::now();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for e in &events[..5] {
                    let r = server.deliver(e, &sign(e, SECRET, now));
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            });
        }
    });
    let stored = archive_lines(data.path());
    assert_eq!(stored.len(), 5, "8 deliveries of each of 5 events, stored once each");
    drop(server);
    // Restarted, the archive still knows them.
    let server = Serve::start(data.path());
    let r = server.deliver(&events[0], &sign(&events[0], SECRET, now));
    assert_eq!(r.json()["duplicate"], true);
}
