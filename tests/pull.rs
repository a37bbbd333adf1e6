//! `mrr pull` against a real `mrr stripe-server` process: complete, exact, resilient,
//! resumable, and never leaving a partial snapshot.

mod common;

use std::collections::BTreeMap;

use common::{column, mrr, objects, pull, pull_args, simulate, Server};
use mrr::simulate::Scenario;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn ids(acct: &common::TempAccount, file: &str) -> Vec<String> {
    sorted(objects(&acct.dir, file).iter().map(|o| o["id"].as_str().unwrap().to_string()).collect())
}

fn table_ids(s: &mrr::snapshot::Snapshot, table: &str) -> Vec<String> {
    sorted(column(s, table, "id").into_iter().map(Option::unwrap).collect())
}

fn checksums(s: &mrr::snapshot::Snapshot) -> BTreeMap<String, String> {
    s.manifest.tables.iter().map(|t| (t.name.clone(), t.sha256.clone())).collect()
}

#[test]
fn a_pull_matches_the_simulated_account_object_for_object() {
    let acct = simulate(Scenario::Full, 150, 4);
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &[], &[]);
    for (file, table) in [
        ("customers.jsonl", "customers"),
        ("products.jsonl", "products"),
        ("coupons.jsonl", "coupons"),
        ("subscriptions.jsonl", "subscriptions"),
        ("invoices.jsonl", "invoices"),
        ("events.jsonl", "events"),
        ("test_clocks.jsonl", "test_clocks"),
        ("discounts.jsonl", "discounts"),
    ] {
        assert_eq!(table_ids(&snap, table), ids(&acct, file), "{table}");
    }
    // Every listed price, and the inline one (in no list) from the item that embeds it.
    let mut prices = ids(&acct, "prices.jsonl");
    prices.extend(ids(&acct, mrr::simulate::INLINE_PRICES_FILE));
    assert_eq!(table_ids(&snap, "prices"), sorted(prices), "prices");
    // Every line of every invoice, including those beyond the first page of a long invoice.
    let lines: Vec<String> = objects(&acct.dir, "invoices.jsonl")
        .iter()
        .flat_map(|i| {
            i["lines"]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(objects(&acct.dir, "invoices.jsonl").iter().any(|i| i["lines"]["data"].as_array().unwrap().len() > 10));
    assert_eq!(table_ids(&snap, "invoice_lines"), sorted(lines));
    let items: usize =
        objects(&acct.dir, "subscriptions.jsonl").iter().map(|s| s["items"]["data"].as_array().unwrap().len()).sum();
    assert_eq!(column(&snap, "subscription_items", "id").len(), items);

    // The manifest: counts, checksums, provenance, and never the key.
    let m = &snap.manifest;
    assert_eq!(m.as_of, acct.info.now_rfc3339);
    assert!(m.source.api_base.starts_with("http://127.0.0.1:"));
    assert_eq!(m.source.account_id.as_deref(), Some(acct.info.account_id.as_str()), "GET /v1/account");
    assert_eq!(
        m.tables.iter().find(|t| t.name == "customers").unwrap().rows,
        150 + 37,
        "150 random + 37 edge-case customers"
    );
    // Tiers and currency options come only when asked for (catalogue L10); the pull asks.
    let rows = |t: &str| m.tables.iter().find(|e| e.name == t).unwrap().rows;
    assert_eq!(rows("price_tiers"), 6, "two tiered prices of three tiers each");
    assert_eq!(rows("price_currency_options"), 1, "Business monthly in EUR");
    let manifest_text = std::fs::read_to_string(snap.dir.join("manifest.json")).unwrap();
    assert!(!manifest_text.contains(&acct.info.api_key));
    for entry in std::fs::read_dir(&snap.dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(acct.info.api_key.len()).any(|w| w == acct.info.api_key.as_bytes()),
            "key leaked into the snapshot"
        );
    }
    let (code, out, _) = mrr(data.path(), &["snapshots", "verify"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = mrr(data.path(), &["snapshots", "list", "--format", "json"]);
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], m.id.as_str());
    assert!(!data.path().join("snapshots/.pull-in-progress").exists());
}

#[test]
fn faults_and_rate_limits_do_not_change_a_single_byte_of_the_tables() {
    let acct = simulate(Scenario::Full, 120, 6);
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = pull(&acct, clean_dir.path(), &[], &[]);
    let noisy_dir = tempfile::tempdir().unwrap();
    let noisy = pull(
        &acct,
        noisy_dir.path(),
        &["--fail-rate", "0.05", "--drop-rate", "0.02", "--rate-limit", "40", "--seed", "3"],
        &["--max-rps", "60", "--slices", "4"],
    );
    assert_eq!(checksums(&noisy), checksums(&clean), "content-identical tables");
}

#[test]
fn a_killed_pull_leaves_no_snapshot_and_resumes_to_identical_tables() {
    let acct = simulate(Scenario::Full, 400, 8);
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = pull(&acct, clean_dir.path(), &[], &[]);

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&acct.dir, &["--latency-ms", "20"]);
    let mut args = pull_args(&acct, &server.base);
    args.extend(["--max-rps", "40", "--concurrency", "2"].map(String::from));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mrr"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("-q")
        .args(&args)
        .spawn()
        .unwrap();
    let checkpoint = data.path().join("snapshots/.pull-in-progress/checkpoint.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let progressed = std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|cp| cp["slices"].as_array().unwrap().iter().filter(|s| s["done"] == true).count() >= 3);
        if progressed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the pull made no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert!(mrr::snapshot::list(data.path()).unwrap().is_empty(), "no partial snapshot is listed");

    let plain_args = pull_args(&acct, &server.base);
    let plain: Vec<&str> = plain_args.iter().map(String::as_str).collect();
    let (code, _, err) = mrr(data.path(), &plain);
    assert_eq!(code, 2);
    assert!(err.contains("--resume"), "{err}");

    let mut resume = plain.clone();
    resume.push("--resume");
    let (code, out, err) = mrr(data.path(), &resume);
    assert_eq!(code, 0, "{err}");
    let resumed = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
    assert_eq!(checksums(&resumed), checksums(&clean));
}

#[test]
fn a_bad_key_is_a_clear_401_error_and_writes_no_snapshot() {
    let acct = simulate(Scenario::Default, 10, 1);
    let server = Server::start(&acct.dir, &[]);
    let data = tempfile::tempdir().unwrap();
    let (code, _, err) =
        mrr(data.path(), &["pull", "--api-base", &server.base, "--api-key", "sk_test_not_the_key_123"]);
    assert_eq!(code, 2);
    assert!(err.contains("rejected the API key (401)"), "{err}");
    assert!(!err.contains("not_the_key"), "the key is never echoed: {err}");
    assert!(mrr::snapshot::list(data.path()).unwrap().is_empty());
    let (code, _, err) = mrr(data.path(), &["pull", "--api-base", &server.base]);
    assert_eq!(code, 2);
    assert!(err.contains("STRIPE_API_KEY"), "{err}");
}

#[test]
fn an_unreachable_host_is_a_clear_error_after_bounded_retries() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed again at once
    let base = format!("http://127.0.0.1:{port}");
    let (code, _, err) =
        mrr(data.path(), &["pull", "--api-base", &base, "--api-key", "sk_test_x", "--max-attempts", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("giving up after 2 attempts"), "{err}");
    assert!(mrr::snapshot::list(data.path()).unwrap().is_empty());
}

#[test]
fn verify_catches_a_corrupted_table_and_names_the_file() {
    let acct = simulate(Scenario::Default, 20, 2);
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &[], &[]);
    let path = snap.table_path("invoices").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    let (code, _, err) = mrr(data.path(), &["snapshots", "verify", "--snapshot", &snap.manifest.id]);
    assert_eq!(code, 1, "a failed check exits 1");
    assert!(err.contains("invoices.parquet"), "{err}");
}

/// A pull through the given server flags that must fail: (stderr), after checking exit 2 and
/// that no snapshot, not even a partial one, is listed.
fn failed_pull(acct: &common::TempAccount, server_flags: &[&str], pull_flags: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&acct.dir, server_flags);
    let mut args = pull_args(acct, &server.base);
    args.extend(pull_flags.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = mrr(data.path(), &args);
    assert_eq!(code, 2, "{err}");
    assert!(mrr::snapshot::list(data.path()).unwrap().is_empty(), "no snapshot after a failed pull");
    err
}

#[test]
fn customers_and_subscriptions_on_test_clocks_and_archived_prices_are_all_pulled() {
    // The original generator's account: every customer on one of 5 test clocks, which
    // Stripe's plain lists leave out; and its most-used price archived.
    let acct = simulate(Scenario::Default, 75, 42);
    let archived = common::archive_most_used_price(&acct.dir);
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &[], &[]);
    for (file, table) in [
        ("customers.jsonl", "customers"),
        ("subscriptions.jsonl", "subscriptions"),
        ("prices.jsonl", "prices"),
        ("test_clocks.jsonl", "test_clocks"),
    ] {
        assert_eq!(table_ids(&snap, table), ids(&acct, file), "{table}");
    }
    assert_eq!(table_ids(&snap, "customers").len(), 75);
    let active = column(&snap, "prices", "active");
    let at = table_ids(&snap, "prices").iter().position(|p| *p == archived).unwrap();
    let by_id: BTreeMap<String, Option<String>> =
        column(&snap, "prices", "id").into_iter().map(Option::unwrap).zip(active).collect();
    assert_eq!(by_id[&archived].as_deref(), Some("false"), "the archived price ({at}) keeps active=false");
    assert!(snap.manifest.warnings.is_empty(), "{:?}", snap.manifest.warnings);
}

#[test]
fn a_key_without_permission_for_events_or_test_clocks_pulls_the_rest_with_a_warning() {
    let acct = simulate(Scenario::Full, 20, 3);
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &["--forbid", "events"], &[]);
    assert_eq!(snap.manifest.tables.iter().find(|t| t.name == "events").unwrap().rows, 0);
    assert_eq!(table_ids(&snap, "customers"), ids(&acct, "customers.jsonl"), "everything else is complete");
    assert_eq!(snap.manifest.warnings.len(), 1, "{:?}", snap.manifest.warnings);
    assert!(snap.manifest.warnings[0].contains("rak_event_read"), "{:?}", snap.manifest.warnings);

    // Without test clocks the customers on them cannot be listed: said, not hidden.
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &["--forbid", "test_clocks"], &[]);
    let warnings = snap.manifest.warnings.join("\n");
    assert!(warnings.contains("customers and subscriptions on test clocks are not in this snapshot"), "{warnings}");
}

#[test]
fn a_key_without_permission_for_subscriptions_is_an_error_naming_the_permission() {
    let acct = simulate(Scenario::Default, 10, 1);
    let err = failed_pull(&acct, &["--forbid", "subscriptions"], &[]);
    assert!(err.contains("rak_subscription_read"), "{err}");
    assert!(err.contains("403"), "{err}");
    assert!(!err.contains(&acct.info.api_key), "{err}");
}

#[test]
fn conflicts_and_proxy_error_pages_are_retried_to_identical_tables() {
    let acct = simulate(Scenario::Full, 40, 5);
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = pull(&acct, clean_dir.path(), &[], &[]);
    for status in ["409", "424", "502"] {
        let dir = tempfile::tempdir().unwrap();
        let noisy = pull(
            &acct,
            dir.path(),
            &["--fail-rate", "0.1", "--fail-status", status, "--seed", "4"],
            &["--max-rps", "200"],
        );
        assert_eq!(checksums(&noisy), checksums(&clean), "--fail-status {status}");
    }
}

#[test]
fn every_item_of_a_subscription_with_25_is_pulled() {
    let acct = simulate(Scenario::Default, 5, 2);
    let sub = common::with_many_items(&acct.dir, 25);
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &[], &[]);
    let items = column(&snap, "subscription_items", "subscription");
    assert_eq!(items.iter().filter(|s| s.as_deref() == Some(sub.as_str())).count(), 25);
}

#[test]
fn a_price_that_cannot_be_obtained_is_an_error_naming_it() {
    // Starter monthly, named by invoice lines, is gone from every list and from retrieve.
    let acct = simulate(Scenario::Full, 20, 3);
    let mut gone = String::new();
    common::rewrite_objects(&acct.dir, "prices.jsonl", |prices| {
        gone = prices[0]["id"].as_str().unwrap().to_string();
        prices.remove(0);
    });
    common::rewrite_objects(&acct.dir, "subscriptions.jsonl", |subs| {
        subs.retain(|s| s["items"]["data"].as_array().unwrap().iter().all(|i| i["price"]["id"] != gone.as_str()));
    });
    let err = failed_pull(&acct, &[], &[]);
    assert!(err.contains(&format!("price {gone} (named by invoice line il_")), "{err}");
    assert!(err.contains("No such price"), "{err}");
}

#[test]
fn a_connected_account_is_pulled_with_stripe_account_and_another_is_refused() {
    let acct = simulate(Scenario::Default, 10, 1);
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &[], &["--account", &acct.info.account_id]);
    assert_eq!(snap.manifest.source.account_id.as_deref(), Some(acct.info.account_id.as_str()));
    let err = failed_pull(&acct, &[], &["--account", "acct_notaplatformsaccount"]);
    assert!(err.contains("Only Stripe Connect platforms"), "{err}");
    let err = failed_pull(&acct, &[], &["--account", "cus_123"]);
    assert!(err.contains("--account cus_123"), "{err}");
}

#[test]
fn events_older_than_stripe_keeps_are_not_asked_for_and_the_manifest_says_so() {
    let acct = simulate(Scenario::Default, 10, 1);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&acct.dir, &[]);
    let mut args = pull_args(&acct, &server.base);
    let at = args.iter().position(|a| a == "--events-since").unwrap();
    args[at + 1] = mrr::calendar::format_rfc3339(acct.info.now - 90 * 86_400);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = mrr(data.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Stripe keeps events for 30 days"), "said in the log: {err}");
    let snap = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
    assert_eq!(snap.manifest.events_since, mrr::calendar::format_rfc3339(acct.info.now - 30 * 86_400));
    assert!(snap.manifest.warnings.iter().any(|w| w.contains("Stripe keeps events for 30 days")));
}
