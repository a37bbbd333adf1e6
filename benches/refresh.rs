//! `cargo bench --bench refresh`: `mrr pull --since latest` against a full `mrr pull`, side by
//! side on one simulated timeline seen at two instants, hours apart: the older instant is
//! pulled in full (the base), then the newer one both ways. Before reporting, the bench
//! checks with `mrr snapshots diff` that the refresh equals the full pull (every table but
//! `events`, every metric). Both runs talk to `mrr stripe-server --rate-limit 100` at
//! `--max-rps 100` (Stripe's live-mode ceiling), and again unthrottled.
//!
//! Sizes: `MRR_BENCH_REFRESH_CUSTOMERS=100000` (the default); `MRR_BENCH_REFRESH_HOURS=7`
//! (the gap; about 1% of customers renew in 7 hours of monthly billing). Results are printed
//! as a Markdown table and saved to `$CARGO_TARGET_DIR/bench/refresh.md`.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{run, Server, MRR};

const NOW: &str = "2026-11-20T12:00:00Z";

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list; nothing to list
    }
    let sizes = common::sizes("MRR_BENCH_REFRESH_CUSTOMERS", "100000")?;
    let hours: i64 = std::env::var("MRR_BENCH_REFRESH_HOURS").unwrap_or_else(|_| "7".into()).parse()?;
    let now = mrr::calendar::parse_timestamp(NOW).expect("a timestamp");
    let earlier = mrr::calendar::format_rfc3339(now - hours * 3600);
    let mut table = vec![
        "| customers | changed in the gap | events | ceiling | full pull: requests | seconds | `--since latest`: requests | share | seconds | speed-up | objects from events / retrieved |".to_string(),
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    for customers in sizes {
        eprintln!("==> {customers} customers, {hours} hours apart");
        let work = tempfile::tempdir()?;
        let (older, newer) = (work.path().join("older"), work.path().join("newer"));
        let simulate = |dir: &Path, at: &str| {
            run(Command::new(MRR)
                .args(["-q", "simulate", "--scenario", "full", "--customers", &customers.to_string()])
                .args(["--now", at, "--horizon", NOW, "--out"])
                .arg(dir))
        };
        simulate(&older, &earlier)?;
        simulate(&newer, NOW)?;
        let info = mrr::simulate::AccountInfo::load(&newer)?;
        let (events, changed) = changes(&newer, now - hours * 3600)?;

        // The base: the older instant, pulled in full (unthrottled; not measured).
        let base_data = work.path().join("base");
        {
            let server = Server::start(&older, &[])?;
            pull(&base_data, &server.base, &info.api_key, &earlier, &["--max-rps", "100000"])?;
        }
        for (ceiling, tag, server_flags, pull_flags) in [
            ("none", "unthrottled", &[][..], &["--max-rps", "100000"][..]),
            ("100 req/s", "ceiling-100", &["--rate-limit", "100"][..], &["--max-rps", "100"][..]),
        ] {
            let server = Server::start(&newer, server_flags)?;
            let full_data = work.path().join(format!("full-{tag}"));
            let (full_secs, full_requests) = pull(&full_data, &server.base, &info.api_key, NOW, pull_flags)?;
            eprintln!("full pull ({ceiling}): {full_requests} requests, {full_secs:.1} s");
            // The refresh starts from a copy of the base, so each ceiling starts alike.
            let data = work.path().join(format!("refresh-{tag}"));
            run(Command::new("cp").arg("-r").arg(&base_data).arg(&data))?;
            let mut flags = pull_flags.to_vec();
            flags.extend(["--since", "latest"]);
            let (secs, requests) = pull(&data, &server.base, &info.api_key, NOW, &flags)?;
            drop(server);
            let identical = Command::new(MRR)
                .args(["-q", "--data-dir"])
                .arg(&data)
                .args(["snapshots", "diff", "latest"])
                .arg(mrr::snapshot::resolve(&full_data, "latest")?.dir)
                .args(["--ignore", "events", "--ignore", "event_changes"])
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(identical.success(), "the refreshed snapshot differs from the full pull ({ceiling})");
            let m = mrr::snapshot::resolve(&data, "latest")?.manifest;
            let d = m.derived_from.expect("a refreshed snapshot names its base");
            table.push(format!(
                "| {customers} | {changed} ({:.1}%) | {events} | {ceiling} | {full_requests} | {full_secs:.1} | {requests} | {:.1}% | {secs:.1} | {:.1}x | {} / {} |",
                changed as f64 * 100.0 / customers as f64,
                requests as f64 * 100.0 / full_requests as f64,
                full_secs / secs,
                d.objects_from_events.unwrap_or(0),
                d.objects_refetched.unwrap_or(0),
            ));
            eprintln!("{}", table.last().expect("a row"));
        }
    }
    let text = table.join("\n");
    println!("{text}");
    let dir = Path::new(&std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("refresh.md"), format!("{text}\n"))?;
    Ok(())
}

/// One `mrr pull` (full or `--since`): (wall seconds, requests it logged).
fn pull(data: &Path, base: &str, key: &str, as_of: &str, extra: &[&str]) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let out = Command::new(MRR)
        .arg("--data-dir")
        .arg(data)
        .args(["pull", "--api-base", base, "--api-key", key, "--as-of", as_of])
        .args(extra)
        .stdout(Stdio::null())
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(out.status.success(), "pull {extra:?} failed: {log}");
    Ok((secs, common::requests_logged(&log).0))
}

/// Events of the newer account created after `since`, and the customers they touch.
fn changes(account: &Path, since: i64) -> anyhow::Result<(u64, usize)> {
    use std::io::BufRead;
    let file = std::fs::File::open(account.join("events.jsonl"))?;
    let (mut events, mut customers) = (0u64, HashSet::new());
    for line in std::io::BufReader::new(file).lines() {
        let e: serde_json::Value = serde_json::from_str(&line?)?;
        if e["created"].as_i64().unwrap_or(0) <= since {
            continue;
        }
        events += 1;
        let object = &e["data"]["object"];
        let customer = if object["object"] == "customer" { &object["id"] } else { &object["customer"] };
        customers.extend(customer.as_str().map(str::to_string));
    }
    Ok((events, customers.len()))
}
