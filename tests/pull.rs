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
        ("subscriptions.jsonl", "subscriptions"),
        ("invoices.jsonl", "invoices"),
        ("events.jsonl", "events"),
        ("test_clocks.jsonl", "test_clocks"),
        ("discounts.jsonl", "discounts"),
    ] {
        assert_eq!(table_ids(&snap, table), ids(&acct, file), "{table}");
    }
    // Every listed coupon, and the deleted one (in no list) from the discounts that expand it (D1).
    let mut coupons = ids(&acct, "coupons.jsonl");
    coupons.extend(ids(&acct, mrr::simulate::DELETED_COUPONS_FILE));
    assert_eq!(table_ids(&snap, "coupons"), sorted(coupons), "coupons");
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
        150 + 64 - 1,
        "150 random + 64 edge-case customers, one of them deleted (in no list, catalogue R2)"
    );
    // A price in fractions of a cent arrives as Stripe's text, its `unit_amount` null (L11).
    let decimals = column(&snap, "prices", "unit_amount_decimal");
    let amounts = column(&snap, "prices", "unit_amount");
    let at = decimals.iter().position(|d| d.as_deref() == Some("0.0375")).expect("the decimal price");
    assert_eq!(amounts[at], None);
    // Tiers and currency options come only when asked for (catalogue L10); the pull asks.
    let rows = |t: &str| m.tables.iter().find(|e| e.name == t).unwrap().rows;
    // A tiered option's tiers only by `currency_options.<currency>.tiers`, which no list can
    // name in advance: the pull retrieves that price again.
    assert_eq!(rows("price_tiers"), 12, "three tiered prices of three tiers each, and the graduated one's EUR tiers");
    assert_eq!(rows("price_currency_options"), 2, "Business monthly and the graduated seats in EUR");
    let eur_tiers = column(&snap, "price_tiers", "currency").into_iter().filter(|c| c.as_deref() == Some("eur"));
    assert_eq!(eur_tiers.count(), 3);
    // A coupon's restrictions come only when asked for (catalogue D4); the pull asks.
    assert_eq!(rows("coupon_products"), 1, "SEATS50 applies to the seats product only");
    // An amount-off coupon's other currencies come with it (D6).
    assert_eq!(rows("coupon_currency_options"), 1, "USD10FOREVER takes 9.00 EUR off a EUR subscription");
    // Item-level discounts (D7): the current one from its item, the one taken off its item
    // (its events older than Stripe keeps) only from the invoice lines it discounted.
    assert_eq!(
        rows("item_discounts"),
        5,
        "item_discount_amount's, item_discount_removed's from its lines, the two beside their subscription's own \
         and the one beside its customer's"
    );
    // Which discount each customer has now, from its `discount` (D3).
    let with_discount = objects(&acct.dir, "customers.jsonl").iter().filter(|c| c["discount"].is_object()).count();
    assert!(
        with_discount >= 3,
        "customer_level_coupon, customer_coupon_and_own_discount, customer_coupon_and_item_discount"
    );
    assert_eq!(rows("customer_discounts") as usize, with_discount);
    // A paused collection is pulled as the subscription shows it (catalogue P1); the drafts
    // it leaves (no number, never finalized) are pulled like any invoice.
    let paused: Vec<_> = objects(&acct.dir, "subscriptions.jsonl")
        .into_iter()
        .filter(|s| !s["pause_collection"].is_null())
        .map(|s| {
            (s["id"].as_str().unwrap().to_string(), s["pause_collection"]["behavior"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(paused.len(), 1, "paused_collection's second pause, open at the pull");
    let pulled: Vec<_> = column(&snap, "paused_collections", "subscription")
        .into_iter()
        .zip(column(&snap, "paused_collections", "behavior"))
        .map(|(s, b)| (s.unwrap(), b.unwrap()))
        .collect();
    assert_eq!(pulled, paused);
    assert_eq!(paused[0].1, "keep_as_draft");
    let statuses = column(&snap, "invoices", "status");
    assert_eq!(statuses.iter().filter(|s| s.as_deref() == Some("draft")).count(), 2, "10-16 and 11-16 renewals");
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

/// Stripe's `Stripe-Should-Retry` header decides over the status (catalogue E5): a 400 it
/// calls retryable is tried again, to the same tables; a 503 it says not to retry stops the
/// pull at its first failure, naming the status and the header, and writes no snapshot.
#[test]
fn stripe_should_retry_decides_over_the_status() {
    let acct = simulate(Scenario::Full, 40, 5);
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = pull(&acct, clean_dir.path(), &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let faults = ["--fail-rate", "0.1", "--fail-status", "400", "--fail-should-retry", "true", "--seed", "4"];
    let retried = pull(&acct, dir.path(), &faults, &["--max-rps", "200"]);
    assert_eq!(checksums(&retried), checksums(&clean));
    let faults = ["--fail-rate", "0.1", "--fail-status", "503", "--fail-should-retry", "false", "--seed", "4"];
    let err = failed_pull(&acct, &faults, &["--max-rps", "200"]);
    assert!(err.contains("Stripe answered 503 (Stripe-Should-Retry: false)"), "{err}");
    assert!(!err.contains("giving up after"), "not retried: {err}");
}

#[test]
fn every_item_of_a_subscription_with_20_is_pulled() {
    let acct = simulate(Scenario::Default, 5, 2);
    let sub = common::with_many_items(&acct.dir, 20);
    let data = tempfile::tempdir().unwrap();
    let snap = pull(&acct, data.path(), &[], &[]);
    let items = column(&snap, "subscription_items", "subscription");
    assert_eq!(items.iter().filter(|s| s.as_deref() == Some(sub.as_str())).count(), 20);
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

/// The older instant of one simulated timeline (a month boundary lies between it and `common::NOW`).
const EARLIER: &str = "2026-10-29T08:00:00Z";

/// `mrr pull --since SINCE` flags for a simulated account served at `base`, as of its `now`.
fn refresh_args(acct: &common::TempAccount, base: &str, since: &str) -> Vec<String> {
    let mut args = pull_args(acct, base);
    let at = args.iter().position(|a| a == "--events-since").unwrap();
    args.drain(at..at + 2);
    args.extend(["--since".to_string(), since.to_string()]);
    args
}

/// Runs `mrr snapshots diff A B --ignore events --ignore event_changes` and returns (exit code,
/// report).
fn diff(data: &std::path::Path, a: &mrr::snapshot::Snapshot, b: &mrr::snapshot::Snapshot) -> (i32, serde_json::Value) {
    let (a, b) = (a.dir.to_str().unwrap(), b.dir.to_str().unwrap());
    let args = ["snapshots", "diff", a, b, "--ignore", "events", "--ignore", "event_changes", "--format", "json"];
    let (code, out, err) = mrr(data, &args);
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}")))
}

#[test]
fn a_refresh_through_the_events_api_equals_a_full_pull_of_the_same_instant() {
    let older = common::simulate_at(Scenario::Full, 80, 11, EARLIER, Some(common::NOW));
    let newer = simulate(Scenario::Full, 80, 11);
    let data = tempfile::tempdir().unwrap();
    let base = pull(&older, data.path(), &[], &[]);
    let full_data = tempfile::tempdir().unwrap();
    let full = pull(&newer, full_data.path(), &[], &[]);
    let (code, d) = diff(data.path(), &base, &full);
    assert_eq!((code, &d["identical"]), (1, &serde_json::json!(false)), "the two instants differ: {d}");

    // Clean; then under 5% 500s and 2% dropped connections, retrieving every object by id.
    let noisy = ["--fail-rate", "0.05", "--drop-rate", "0.02", "--seed", "5"];
    for (faults, refetch_all) in [(&[][..], false), (&noisy[..], true)] {
        let server = Server::start(&newer.dir, faults);
        let mut args = refresh_args(&newer, &server.base, &base.manifest.id);
        if refetch_all {
            args.push("--refetch-all".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = mrr(data.path(), &args);
        assert_eq!(code, 0, "{faults:?}: {err}");
        let refreshed = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
        let derived = refreshed.manifest.derived_from.clone().expect("the manifest names its base");
        assert_eq!(derived.base, base.manifest.id);
        assert!(derived.events_applied > 0 && derived.first_event.is_some() && derived.last_event.is_some());
        let refetched = derived.objects_refetched.expect("objects retrieved");
        let pulled: u64 = ["customers", "subscriptions", "invoices"]
            .iter()
            .map(|t| full.manifest.tables.iter().find(|e| e.name == *t).unwrap().rows)
            .sum();
        let carried = derived.objects_from_events.expect("objects carried by events");
        assert!(refetched > 0 && refetched + carried < pulled, "retrieved {refetched} objects, of {pulled}");
        if refetch_all {
            assert_eq!(carried, 0, "--refetch-all retrieves every object");
        } else {
            assert!(carried > refetched, "most objects come whole in their newest event: {carried} vs {refetched}");
        }
        assert_eq!(refreshed.manifest.as_of, newer.info.now_rfc3339);
        assert!(mrr::snapshot::verify(&refreshed).is_ok());
        assert!(mrr::snapshot::verify(&base).is_ok(), "the base is untouched");

        // The reconciliation: every table but `events`, every row, every metric.
        let (code, d) = diff(data.path(), &refreshed, &full);
        assert_eq!((code, &d["identical"]), (0, &serde_json::json!(true)), "{faults:?}: {d:#}");
        let rows = common::report_rows(&refreshed, mrr::metrics::MetricOptions::default());
        let mrr_rows = &rows.iter().find(|(q, _)| *q == "mrr_monthly").unwrap().1;
        let got: BTreeMap<(String, String), i64> = mrr_rows
            .iter()
            .map(|r| {
                (
                    (r["month"].as_str().unwrap().into(), r["currency"].as_str().unwrap().into()),
                    r["mrr"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, common::truth_mrr(&newer), "{faults:?}: vs the newer account's ground truth");
    }

    // Killed mid-retrieval: no snapshot, the plain command asks for --resume, which finishes it.
    let before = mrr::snapshot::list(data.path()).unwrap().len();
    let server = Server::start(&newer.dir, &["--latency-ms", "20"]);
    let mut args = refresh_args(&newer, &server.base, &base.manifest.id);
    args.extend(["--refetch-all", "--max-rps", "40", "--concurrency", "2"].map(String::from));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mrr"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("-q")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let objects = data.path().join("snapshots/.refresh-in-progress/objects.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read(&objects).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count()) < 10 {
        assert!(std::time::Instant::now() < deadline, "the refresh made no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert_eq!(mrr::snapshot::list(data.path()).unwrap().len(), before, "no partial snapshot is listed");
    let plain: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = mrr(data.path(), &plain);
    assert_eq!(code, 2);
    assert!(err.contains("--resume"), "{err}");
    let (code, _, err) = mrr(data.path(), &["pull", "--api-key", "sk_test_x", "--api-base", &server.base]);
    assert_eq!(code, 2, "a full pull does not start over an interrupted refresh");
    assert!(err.contains("mrr pull --since"), "{err}");
    let mut resume = plain.clone();
    resume.push("--resume");
    let (code, out, err) = mrr(data.path(), &resume);
    assert_eq!(code, 0, "{err}");
    let resumed = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
    let (code, d) = diff(data.path(), &resumed, &full);
    assert_eq!((code, &d["identical"]), (0, &serde_json::json!(true)), "resumed: {d:#}");
}

#[test]
fn a_refresh_is_refused_when_its_base_cannot_be_brought_up_to_date() {
    let acct = simulate(Scenario::Default, 12, 4);
    let data = tempfile::tempdir().unwrap();
    let base = pull(&acct, data.path(), &[], &[]);
    let refused = |args: Vec<String>, data: &std::path::Path| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = mrr(data, &args);
        assert_eq!((code, out.as_str()), (2, ""), "{err}");
        assert!(!data.join("snapshots/.refresh-in-progress").exists(), "nothing staged");
        err
    };
    // Checked before any request: nothing listens at this address.
    let nowhere = "http://127.0.0.1:9";

    let empty = tempfile::tempdir().unwrap();
    let err = refused(refresh_args(&acct, nowhere, "latest"), empty.path());
    assert!(err.contains("--since") && err.contains("no snapshot yet"), "{err}");
    let err = refused(refresh_args(&acct, nowhere, "20990101T000000Z-nosuch"), data.path());
    assert!(err.contains("--since") && err.contains("20990101T000000Z-nosuch"), "{err}");

    let mut args = refresh_args(&acct, nowhere, "latest");
    let at = args.iter().position(|a| a == "--as-of").unwrap();
    args[at + 1] = mrr::calendar::format_rfc3339(acct.info.now + 31 * 86_400);
    let err = refused(args, data.path());
    assert!(err.contains("Stripe keeps events for 30 days") && err.contains("full `mrr pull`"), "{err}");

    // A copy of the base whose manifest says another API version, named by its path.
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(&base.dir, copy.path());
    let manifest = copy.path().join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace(&base.manifest.source.api_version, "2024-06-20")).unwrap();
    let err = refused(refresh_args(&acct, nowhere, copy.path().to_str().unwrap()), data.path());
    assert!(err.contains("2024-06-20") && err.contains("full `mrr pull`"), "{err}");

    // Another account's key: refused on the first request, before any event is read.
    let other = simulate(Scenario::Default, 12, 5);
    assert_ne!(other.info.account_id, acct.info.account_id);
    let server = Server::start(&other.dir, &[]);
    let err = refused(refresh_args(&other, &server.base, "latest"), data.path());
    assert!(err.contains(&acct.info.account_id) && err.contains(&other.info.account_id), "{err}");
    assert_eq!(mrr::snapshot::list(data.path()).unwrap().len(), 1, "no snapshot was written");
}

#[test]
fn a_refresh_drops_what_stripe_deleted_and_adds_what_it_created_both_ways() {
    let older = common::simulate_at(Scenario::Default, 15, 3, EARLIER, Some(common::NOW));
    let newer = simulate(Scenario::Default, 15, 3);
    let earlier = mrr::calendar::parse_timestamp(EARLIER).unwrap();
    // A product the base has and Stripe then deletes, and one Stripe creates after the base.
    let product = |id: &str, created: i64| {
        let mut p = objects(&older.dir, "products.jsonl")[0].clone();
        p["id"] = id.into();
        p["name"] = format!("Extra {id}").into();
        p["created"] = created.into();
        p["updated"] = created.into();
        p["default_price"] = serde_json::Value::Null;
        p
    };
    let (gone, born) = (product("prod_deletedlater1", earlier - 86_400), product("prod_createdlater1", earlier + 3600));
    common::rewrite_objects(&older.dir, "products.jsonl", |all| all.push(gone.clone()));
    common::rewrite_objects(&newer.dir, "products.jsonl", |all| all.push(born.clone()));
    let template = objects(&newer.dir, "events.jsonl")[0].clone();
    let event = |id: &str, kind: &str, created: i64, object: &serde_json::Value| {
        let mut e = template.clone();
        e["id"] = id.into();
        e["type"] = kind.into();
        e["created"] = created.into();
        e["data"] = serde_json::json!({ "object": object });
        e
    };
    let created_event = event("evt_productborn1", "product.created", earlier + 3600, &born);
    let deleted_event = event("evt_productgone1", "product.deleted", earlier + 7200, &gone);
    common::rewrite_objects(&newer.dir, "events.jsonl", |all| all.extend([created_event, deleted_event]));

    let data = tempfile::tempdir().unwrap();
    let base = pull(&older, data.path(), &[], &[]);
    assert!(table_ids(&base, "products").contains(&"prod_deletedlater1".to_string()));
    let full_data = tempfile::tempdir().unwrap();
    let full = pull(&newer, full_data.path(), &[], &[]);
    let products = table_ids(&full, "products");
    assert!(products.contains(&"prod_createdlater1".into()) && !products.contains(&"prod_deletedlater1".into()));

    let server = Server::start(&newer.dir, &[]);
    // From the events themselves, then with every object retrieved (a 404 drops it).
    for refetch_all in [false, true] {
        let mut args = refresh_args(&newer, &server.base, &base.manifest.id);
        if refetch_all {
            args.push("--refetch-all".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = mrr(data.path(), &args);
        assert_eq!(code, 0, "{err}");
        let refreshed = mrr::snapshot::resolve(data.path(), out.trim()).unwrap();
        assert_eq!(table_ids(&refreshed, "products"), products, "--refetch-all {refetch_all}");
        let (code, d) = diff(data.path(), &refreshed, &full);
        assert_eq!((code, &d["identical"]), (0, &serde_json::json!(true)), "--refetch-all {refetch_all}: {d:#}");
    }
}
