//! `cargo bench --bench engine`: the full metric suite (`mrr report`: every query with
//! DuckDB over the Parquet files) on the largest simulated accounts, 60 months of history,
//! beside the pandas port of the original seed query on the same snapshot (checked equal to
//! DuckDB's `seed_mrr` first), reported as a ratio.
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

use common::{engine_race, ensure_venv, run, MRR, REPO};

const MONTHS: &str = "60";

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list; nothing to list
    }
    let sizes = common::sizes("MRR_BENCH_ENGINE_CUSTOMERS", "100000")?;
    let python = ensure_venv()?;
    let mut table = vec![
        "| subscriptions | months | invoice lines | snapshot | simulate → Parquet | `mrr report` (4 queries) | pandas seed query | ratio |".to_string(),
        "|---:|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
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
        let (ours, theirs) = engine_race(&python, &snapshot)?;
        table.push(format!(
            "| {} | {MONTHS} | {} | {:.0} MiB | {simulated} | {ours:.2} s | {theirs:.2} s | {:.1}x |",
            rows("subscriptions"),
            rows("invoice_lines"),
            bytes as f64 / (1024.0 * 1024.0),
            theirs / ours
        ));
        eprintln!("{}", table.last().expect("pushed"));
    }
    let text = table.join("\n");
    println!("{text}");
    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{REPO}/target"))).join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("engine.md"), text + "\n")?;
    Ok(())
}
