//! `cargo bench --bench pipeline`: pull and engine throughput, each beside a well-known
//! Python baseline run in the same process tree on the same data, reported as ratios
//! (machines here are noisy; ratios of side-by-side runs are what stays meaningful).
//!
//! Sizes: `MRR_BENCH_CUSTOMERS=10000,100000` (default 10000). Baselines run from a
//! project-local `.venv` (created on first use with pinned stripe, pandas and pyarrow).
//! Results are printed as a Markdown table and saved to `$CARGO_TARGET_DIR/bench/pipeline.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{ensure_venv, output, run, Server, MRR, REPO};

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list; nothing to list
    }
    let sizes = common::sizes("MRR_BENCH_CUSTOMERS", "10000")?;
    let python = ensure_venv()?;
    let mut table = vec![
        "| customers | objects | `mrr pull` objects/s | peak RSS | stripe-python objects/s | ratio | at `--rate-limit 100`: req/s while requesting | share of ceiling | end to end req/s | `mrr report` (4 queries) | pandas seed query | ratio |".to_string(),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    for customers in sizes {
        eprintln!("==> {customers} customers");
        let work = tempfile::tempdir()?;
        let account = work.path().join("account");
        run(Command::new(MRR)
            .args(["-q", "simulate", "--scenario", "full", "--customers", &customers.to_string(), "--out"])
            .arg(&account))?;
        let info = mrr::simulate::AccountInfo::load(&account)?;

        // Unthrottled: mrr pull (8 workers) vs stripe-python's sequential auto-pagination.
        let server = Server::start(&account, &[])?;
        let data = work.path().join("data");
        let (secs, rss, _, _) = timed_pull(&data, &server.base, &info, &["--max-rps", "100000"])?;
        let snapshot = mrr::snapshot::resolve(&data, "latest")?;
        let listed =
            ["customers", "products", "prices", "coupons", "subscriptions", "invoices", "events", "test_clocks"];
        let objects: u64 =
            snapshot.manifest.tables.iter().filter(|t| listed.contains(&t.name.as_str())).map(|t| t.rows).sum();
        let baseline = output(
            Command::new(&python)
                .arg(Path::new(REPO).join("benches/baselines/stripe_python_pull.py"))
                .args([&server.base, &info.api_key]),
        )?;
        let baseline: serde_json::Value = serde_json::from_str(baseline.trim())?;
        let py_rate = baseline["objects"].as_f64().unwrap_or(0.0) / baseline["seconds"].as_f64().unwrap_or(1.0);
        let our_rate = objects as f64 / secs;
        drop(server);

        // Rate-limited: how close to the 100 req/s ceiling the governor runs.
        let limited = Server::start(&account, &["--rate-limit", "100"])?;
        let limited_data = work.path().join("limited");
        let (lsecs, _, lrequests, requesting) = timed_pull(&limited_data, &limited.base, &info, &["--max-rps", "100"])?;
        drop(limited);
        // The ceiling bounds the rate while requesting; end to end also pays for process start
        // and writing Parquet, when no request is due.
        let rps = lrequests as f64 / requesting;
        let share = 100.0 * rps / 100.0; // percent of the 100 req/s ceiling
        let end_to_end = lrequests as f64 / lsecs;

        // Engine: every query with DuckDB vs the pandas port of the seed query.
        let race = common::engine_race(&python, &snapshot)?;
        let (ours, theirs) = (race.ours, race.theirs);
        table.push(format!(
            "| {customers} | {objects} | {our_rate:.0} | {:.0} MiB | {py_rate:.0} | {:.1}x | {rps:.1} | {:.0}% | {end_to_end:.1} | {ours:.2} s | {theirs:.2} s | {:.1}x |",
            rss as f64 / 1024.0,
            our_rate / py_rate,
            share,
            theirs / ours
        ));
    }
    let text = table.join("\n");
    println!("{text}");
    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{REPO}/target"))).join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("pipeline.md"), text + "\n")?;
    Ok(())
}

/// Pulls under GNU time; returns (seconds, peak RSS KiB, requests, seconds spent requesting).
fn timed_pull(
    data: &Path,
    base: &str,
    info: &mrr::simulate::AccountInfo,
    extra: &[&str],
) -> anyhow::Result<(f64, u64, u64, f64)> {
    let (secs, rss, err) = common::timed_mrr(|c| {
        c.arg("--data-dir")
            .arg(data)
            .args(["pull", "--api-base", base, "--api-key", &info.api_key, "--as-of", &info.now_rfc3339])
            .args(extra);
    })?;
    let (requests, request_secs) = common::requests_logged(&err);
    let request_secs = request_secs.unwrap_or(secs);
    Ok((secs, rss, requests, request_secs))
}
