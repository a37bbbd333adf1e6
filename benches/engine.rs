//! `cargo bench --bench engine`: the full metric suite (`mrr report`: every query with
//! DuckDB over the Parquet files) on the largest simulated accounts, 60 months of history,
//! beside the pandas port of the original seed query on the same snapshot (checked equal to
//! DuckDB's `seed_mrr` first), reported as a ratio, and beside the physical floor: the time
//! DuckDB needs merely to read the columns the suite reads. Medians of 5 runs; `mrr report`
//! is timed from process start to its last byte, under GNU time for its peak memory.
//!
//! Accounts are written straight to Parquet (`mrr simulate --parquet-snapshot`): at this size
//! the JSON and the API round trip would be on the order of 100 GB. Sizes (customers, one
//! subscription each in the default scenario): `MRR_BENCH_ENGINE_CUSTOMERS=100000,1000000`
//! (default 100000). `MRR_BENCH_DIR=DIR` keeps each account in `DIR/engine-<customers>x60/`
//! and reuses it next time. Results: a Markdown table on stdout and in
//! `$CARGO_TARGET_DIR/bench/engine.md`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::{engine_race, ensure_venv, run, MRR, REPO, RUNS};

const MONTHS: &str = "60";

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list; nothing to list
    }
    let sizes = common::sizes("MRR_BENCH_ENGINE_CUSTOMERS", "100000")?;
    let python = ensure_venv()?;
    let mut table = vec![
        "| subscriptions | months | invoice lines | snapshot | simulate → Parquet | `mrr report` (4 queries) | peak RSS | scan floor | × floor | pandas seed query | speed-up |".to_string(),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    let mut settings = String::new();
    for customers in sizes {
        eprintln!("==> {customers} customers, {MONTHS} months");
        // With MRR_BENCH_DIR the account is kept there and reused by later runs (it is
        // deterministic; delete the folder after changing the simulator): at 1 M
        // subscriptions writing it takes half an hour, timing the report seconds.
        let scratch;
        let account = match std::env::var_os("MRR_BENCH_DIR") {
            Some(dir) => PathBuf::from(dir).join(format!("engine-{customers}x{MONTHS}")),
            None => {
                scratch = tempfile::tempdir()?;
                scratch.path().join("account")
            }
        };
        let simulated = if account.join(mrr::simulate::SNAPSHOT_DIR).join("manifest.json").exists() {
            eprintln!("    reusing {}", account.display());
            "reused".to_string()
        } else {
            let started = Instant::now();
            run(Command::new(MRR)
                .args([
                    "-q",
                    "simulate",
                    "--customers",
                    &customers.to_string(),
                    "--months",
                    MONTHS,
                    "--parquet-snapshot",
                ])
                .arg("--out")
                .arg(&account))?;
            format!("{:.0} s", started.elapsed().as_secs_f64())
        };
        let snapshot = mrr::snapshot::Snapshot::open(&account.join(mrr::simulate::SNAPSHOT_DIR))?;
        let rows = |t: &str| snapshot.manifest.tables.iter().find(|x| x.name == t).map_or(0, |x| x.rows);
        let bytes: u64 = snapshot.manifest.tables.iter().map(|t| t.bytes).sum();
        let race = engine_race(&python, &snapshot)?;
        let (floor, duckdb) = scan_floor(&python, &snapshot)?;
        settings = duckdb;
        table.push(format!(
            "| {} | {MONTHS} | {} | {:.0} MiB | {simulated} | {:.2} s | {:.0} MiB | {floor:.2} s | {:.1}x | {:.2} s | {:.1}x |",
            rows("subscriptions"),
            rows("invoice_lines"),
            bytes as f64 / (1024.0 * 1024.0),
            race.ours,
            race.ours_peak_rss_kib as f64 / 1024.0,
            race.ours / floor,
            race.theirs,
            race.theirs / race.ours
        ));
        eprintln!("{}", table.last().expect("pushed"));
    }
    table.push(String::new());
    table.push(format!(
        "Medians of {RUNS} runs each; the scan floor ran on {settings}, the settings `mrr report` runs with."
    ));
    let text = table.join("\n");
    println!("{text}");
    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{REPO}/target"))).join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("engine.md"), text + "\n")?;
    Ok(())
}

/// The physical floor (`benches/baselines/scan_floor.py`, DuckDB from Python, the version
/// `mrr` embeds): the median time DuckDB takes merely to read the columns the suite reads,
/// each column of each Parquet file any query scans as DuckDB's own profile of the query
/// lists them (the JSON profile needs DuckDB's json extension, which `mrr` does not build).
/// Returns (seconds, the DuckDB settings it ran with).
fn scan_floor(python: &std::path::Path, snapshot: &mrr::snapshot::Snapshot) -> anyhow::Result<(f64, String)> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for query in mrr::queries::QUERIES {
        let path = dir.path().join(format!("{query}.sql"));
        std::fs::write(&path, mrr::engine::duckdb::resolved_sql(snapshot, query, Default::default())?)?;
        files.push(path);
    }
    let out = common::output(
        Command::new(python).arg(std::path::Path::new(REPO).join("benches/baselines/scan_floor.py")).args(&files),
    )?;
    let parsed: serde_json::Value = serde_json::from_str(out.trim())?;
    let scans = parsed["scans"].as_object().map_or(0, |s| s.len());
    anyhow::ensure!(scans > 0 && parsed["scans"]["item_versions.parquet"].is_array(), "no scans profiled: {out}");
    let settings: Vec<String> = parsed["settings"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k} = {}", v.as_str().unwrap_or_default()))
        .collect();
    let seconds = parsed["seconds"].as_f64().ok_or_else(|| anyhow::anyhow!("no seconds: {out}"))?;
    Ok((seconds, format!("DuckDB {}, {}", parsed["duckdb"].as_str().unwrap_or("?"), settings.join(", "))))
}
