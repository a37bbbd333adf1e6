//! `mrr seed-stripe` against `mrr stripe-server` on a new account folder: the generator's
//! writes, Stripe's billing as the clocks advance, then `mrr pull` and the engine, compared
//! with the MRR the manifest expects from the plan alone (issue 20).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{mrr, objects, report_rows, Server};
use serde_json::Value;

/// The key `mrr stripe-server` wrote for a new account.
fn key_of(account: &Path) -> String {
    let info: Value = serde_json::from_slice(&std::fs::read(account.join("account.json")).unwrap()).unwrap();
    info["api_key"].as_str().unwrap().to_string()
}

fn seed_args<'a>(server: &'a Server, key: &'a str, manifest: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["seed-stripe", "--api-base", &server.base, "--api-key", key, "--manifest", manifest];
    args.extend_from_slice(&["--customers", "40", "--months", "5", "--clocks", "3", "--seed", "7"]);
    args.extend_from_slice(extra);
    args
}

/// A new local account `name` in `dir`, seeded with the test plan: its server, key and manifest.
fn seeded(dir: &Path, name: &str, data: &Path) -> (Server, String, PathBuf) {
    let account = dir.join(name);
    let server = Server::start(&account, &[]);
    let key = key_of(&account);
    let manifest = dir.join(format!("{name}.json"));
    let (code, _, err) = mrr(data, &seed_args(&server, &key, manifest.to_str().unwrap(), &[]));
    assert_eq!(code, 0, "{err}");
    (server, key, manifest)
}

fn manifest(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_seeded_local_account_pulls_and_reports_the_manifests_expected_mrr_to_the_cent() {
    let tmp = tempfile::tempdir().unwrap();
    let (account, data) = (tmp.path().join("account"), tmp.path().join("data"));
    let (server, key, m_path) = seeded(tmp.path(), "account", &data);
    let m = manifest(&m_path);
    assert_eq!(m["complete"], true);
    let done = m["done"].as_object().unwrap();
    // The plan exercises every action: changes, both cancellations, declined cards.
    for step in ["/change", "/cancel_at_period_end", "/cancel", "/failing_card/default"] {
        assert!(done.keys().any(|k| k.ends_with(step)), "no {step} step in {:?}", done.keys().collect::<Vec<_>>());
    }
    let created: Vec<&str> = (0..40).map(|i| done[&format!("customer/{i}")].as_str().unwrap()).collect();

    let (code, out, err) = mrr(&data, &["pull", "--api-base", &server.base, "--api-key", &key]);
    assert_eq!(code, 0, "{err}");
    let snapshot = mrr::snapshot::resolve(&data, out.trim()).unwrap();
    // Every customer is on a test clock (hidden from plain lists, L1): all of them are pulled.
    let pulled = common::column(&snapshot, "customers", "id");
    for id in &created {
        assert!(pulled.iter().any(|p| p.as_deref() == Some(*id)), "customer {id} was not pulled");
    }
    assert_eq!(pulled.len(), 40);

    // Each clock sent its own events for its creation and every advance, as the requests made
    // them (R3); the newest `ready` leaves the clock as it is listed.
    let get = |path: &str| common::get(server.port, path, Some(&key)).unwrap().json();
    let clocks = get("/v1/test_helpers/test_clocks?limit=100")["data"].as_array().unwrap().clone();
    assert!(!clocks.is_empty());
    let of_type = |kind: &str| {
        let page = get(&format!("/v1/events?type=test_helpers.test_clock.{kind}&limit=100"));
        assert_eq!(page["has_more"], false, "one page holds them");
        page["data"].as_array().unwrap().clone()
    };
    let (clocks_created, advancing, ready) = (of_type("created"), of_type("advancing"), of_type("ready"));
    for clock in &clocks {
        let mine = |events: &[serde_json::Value]| -> Vec<serde_json::Value> {
            events.iter().filter(|e| e["data"]["object"]["id"] == clock["id"]).cloned().collect()
        };
        assert_eq!(mine(&clocks_created).len(), 1, "{clock}");
        let (advancing, ready) = (mine(&advancing), mine(&ready));
        assert!(!ready.is_empty() && ready.len() == advancing.len(), "{clock}: one ready per advance");
        // Newest first, as Stripe lists events.
        assert_eq!(ready[0]["data"]["object"]["frozen_time"], clock["frozen_time"], "{clock}");
        assert_eq!(advancing[0]["data"]["object"]["status"], "advancing");
        assert_eq!(
            advancing[0]["data"]["object"]["status_details"]["advancing"]["target_frozen_time"],
            clock["frozen_time"]
        );
    }

    let expected: BTreeMap<(String, String), i64> = m["expected_mrr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            ((r["month"].as_str().unwrap().into(), r["currency"].as_str().unwrap().into()), r["mrr"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(expected.len(), 5, "one row per seeded month");
    let rows = report_rows(&snapshot, Default::default());
    let monthly = &rows.iter().find(|(q, _)| *q == "mrr_monthly").unwrap().1;
    for ((month, currency), cents) in &expected {
        let row = monthly
            .iter()
            .find(|r| r["month"] == month.as_str() && r["currency"] == currency.as_str())
            .unwrap_or_else(|| panic!("no {month} {currency} row"));
        assert_eq!(row["mrr"].as_i64(), Some(*cents), "{month} {currency}");
    }

    // --clean: the clocks go with their customers; prices and products are archived.
    let (code, _, err) = mrr(
        &data,
        &[
            "seed-stripe",
            "--clean",
            "--api-base",
            &server.base,
            "--api-key",
            &key,
            "--manifest",
            m_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(manifest(&m_path)["cleaned"], true);
    let list =
        |path: &str| common::get(server.port, path, Some(&key)).unwrap().json()["data"].as_array().unwrap().len();
    assert_eq!(list("/v1/test_helpers/test_clocks"), 0);
    assert!(objects(&account, "customers.jsonl").is_empty(), "no customer is left");
    assert_eq!(list("/v1/prices"), 0, "archived prices leave the plain list (L3)");
    assert_eq!(list("/v1/prices?active=false"), 6);
    let gone = common::get(server.port, &format!("/v1/customers/{}", created[0]), Some(&key)).unwrap();
    assert_eq!(gone.status, 404, "a deleted clock's customers are gone");
}

/// Each customer of an account folder by email: its subscriptions (status, price nickname,
/// quantity, created, canceled_at) and invoices (created, total, status), ids left out.
fn account_by_email(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let customers = objects(dir, "customers.jsonl");
    let email: BTreeMap<&str, &str> =
        customers.iter().map(|c| (c["id"].as_str().unwrap(), c["email"].as_str().unwrap())).collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &customers {
        out.entry(c["email"].as_str().unwrap().to_string()).or_default().push(format!("customer {}", c["created"]));
    }
    for s in objects(dir, "subscriptions.jsonl") {
        let item = &s["items"]["data"][0];
        let line = format!(
            "subscription {} {} x{} from {} canceled {}",
            s["status"], item["price"]["nickname"], item["quantity"], s["created"], s["canceled_at"]
        );
        out.get_mut(email[s["customer"].as_str().unwrap()]).unwrap().push(line);
    }
    for i in objects(dir, "invoices.jsonl") {
        let line = format!("invoice {} {} {} {}", i["created"], i["billing_reason"], i["total"], i["status"]);
        out.get_mut(email[i["customer"].as_str().unwrap()]).unwrap().push(line);
    }
    for lines in out.values_mut() {
        lines.sort();
    }
    out
}

#[test]
fn a_seed_killed_mid_run_resumes_to_the_same_account_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    let (whole, interrupted) = (tmp.path().join("whole"), tmp.path().join("interrupted"));
    let (_whole_server, _, m_whole) = seeded(tmp.path(), "whole", &data);

    let server = Server::start(&interrupted, &[]);
    let key = key_of(&interrupted);
    let m = tmp.path().join("interrupted.json");
    let args = seed_args(&server, &key, m.to_str().unwrap(), &[]);
    // Killed twice without warning (SIGKILL): once among the first customers, once just after
    // the server took a clock's advance, before the seed saw the clock ready.
    let last_write_advances = || {
        let ledger = std::fs::read_to_string(interrupted.join("writes.jsonl")).unwrap_or_default();
        ledger.lines().last().is_some_and(|l| l.contains("/advance\""))
    };
    // A quarter and half-way through the steps the uninterrupted run made (advances are not
    // steps: the clock's own time records them).
    let total = manifest(&m_whole)["done"].as_object().unwrap().len();
    for (after_steps, mid_advance) in [(total / 4, false), (total / 2, true)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mrr"))
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .args(if m.exists() { &["--resume"][..] } else { &[][..] })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let steps = std::fs::read(&m).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            if steps.is_some_and(|v| v["done"].as_object().unwrap().len() >= after_steps)
                && (!mid_advance || last_write_advances())
            {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "the seed ended before it was interrupted");
            assert!(Instant::now() < deadline, "the seed made no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(manifest(&m)["complete"], false);
    }
    let (code, _, err) = mrr(&data, &[&args[..], &["--resume"]].concat());
    assert_eq!(code, 0, "{err}");

    let (a, b) = (manifest(&m_whole), manifest(&m));
    assert_eq!(b["complete"], true);
    assert_eq!(a["expected_mrr"], b["expected_mrr"]);
    let steps = |v: &Value| v["done"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(steps(&a), steps(&b), "the same steps, each once");
    assert_eq!(objects(&interrupted, "customers.jsonl").len(), 40, "no customer created twice");
    assert_eq!(account_by_email(&whole), account_by_email(&interrupted));
}

#[test]
fn live_keys_forbidden_writes_unreachable_apis_and_existing_manifests_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let m = tmp.path().join("m.json");
    let ms = m.to_str().unwrap();

    for live in ["sk_live_abc", "rk_live_abc"] {
        let (code, _, err) =
            mrr(&data, &["seed-stripe", "--api-base", "http://127.0.0.1:1", "--api-key", live, "--manifest", ms]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("live-mode key"), "{err}");
        assert!(!m.exists(), "nothing is written for a refused key");
    }

    let (code, _, err) = mrr(
        &data,
        &[
            "seed-stripe",
            "--api-base",
            "http://127.0.0.1:1",
            "--api-key",
            "sk_test_x",
            "--manifest",
            ms,
            "--max-attempts",
            "2",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("giving up after 2 attempts"), "{err}");
    // What was done is recorded: nothing.
    let recorded = manifest(&m);
    assert_eq!((recorded["complete"].clone(), recorded["done"].as_object().unwrap().len()), (Value::Bool(false), 0));
    let (code, _, err) =
        mrr(&data, &["seed-stripe", "--api-base", "http://127.0.0.1:1", "--api-key", "sk_test_x", "--manifest", ms]);
    assert_eq!(code, 2);
    assert!(err.contains("--resume"), "an existing manifest is never overwritten: {err}");

    // A restricted key that may not write products.
    let account = tmp.path().join("account");
    let server = Server::start(&account, &["--forbid", "products"]);
    let key = key_of(&account);
    let other = tmp.path().join("other.json");
    let (code, _, err) = mrr(&data, &seed_args(&server, &key, other.to_str().unwrap(), &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rak_product_write"), "{err}");
}

#[test]
fn the_writable_server_answers_like_stripe_and_keeps_its_account_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let account = tmp.path().join("account");
    let server = Server::start(&account, &[]);
    let key = key_of(&account);
    let auth = format!("Authorization: Bearer {key}");
    let form = ["Content-Type: application/x-www-form-urlencoded", auth.as_str()];
    let post = |path: &str, body: &str, extra: &[&str]| {
        common::send(server.port, "POST", path, &[&form[..], extra].concat(), body.as_bytes()).unwrap()
    };
    let unknown = post("/v1/products", "name=Pro&colour=red", &[]);
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["code"], "parameter_unknown");
    assert_eq!(unknown.json()["error"]["param"], "colour");
    let missing = post("/v1/prices", "currency=usd", &[]);
    assert_eq!((missing.status, missing.json()["error"]["param"].clone()), (400, Value::from("product")));

    let first = post("/v1/products", "name=Pro&metadata[created_by]=test", &["Idempotency-Key: k1"]);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["metadata"]["created_by"], "test");
    let again = post("/v1/products", "name=Pro&metadata[created_by]=test", &["Idempotency-Key: k1"]);
    assert_eq!(again.json()["id"], first.json()["id"], "the same key answers the first response");
    let misuse = post("/v1/products", "name=Other", &["Idempotency-Key: k1"]);
    assert_eq!((misuse.status, misuse.json()["error"]["code"].clone()), (400, Value::from("idempotency_key_in_use")));
    let listed = common::get(server.port, "/v1/products", Some(&key)).unwrap().json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "one product: {listed}");

    // A simulated account stays read-only.
    let simulated = common::simulate(mrr::simulate::Scenario::Default, 2, 1);
    let read_only = Server::start(&simulated.dir, &[]);
    let auth = format!("Authorization: Bearer {}", simulated.info.api_key);
    let refused = common::send(read_only.port, "POST", "/v1/products", &[form[0], &auth], b"name=x").unwrap();
    assert_eq!(refused.status, 400);
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("read-only"));

    // Restarted on the same folder, the account is the same.
    let id = first.json()["id"].as_str().unwrap().to_string();
    drop(server);
    let server = Server::start(&account, &[]);
    let found = common::get(server.port, &format!("/v1/products/{id}"), Some(&key)).unwrap();
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.json()["name"], "Pro");
}
