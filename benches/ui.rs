//! `cargo bench --bench ui`: how long the window takes to show a snapshot, for ten years of
//! months beside one year (the baseline, same run), against the 300 ms budget of issue 7.
//!
//! Each size is a simulated account (full scenario) run through `mrr demo --skip-bigquery`
//! (serve, pull, DuckDB report, ground-truth check). The BigQuery side of the window is a
//! copy of DuckDB's result files, so both sides draw the same amount of data. Measured per
//! size, median of 7 fresh windows: reading the saved results (worker thread), the first
//! frame after they arrive (egui layout and plots, what the UI thread does), and a full
//! render of that frame through wgpu (Mesa's lavapipe on the CPU here).
//! Printed as Markdown and saved to `$CARGO_TARGET_DIR/bench/ui.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use mrr::ui::MrrApp;

const MRR: &str = env!("CARGO_BIN_EXE_mrr");
const RUNS: usize = 7;
const BUDGET_MS: f64 = 300.0;

struct Measured {
    months: usize,
    rows: usize,
    load: Duration,
    first_frame: Duration,
    render: Duration,
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list; nothing to list
    }
    let customers: u64 = std::env::var("MRR_BENCH_UI_CUSTOMERS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let work = tempfile::tempdir()?;
    let mut results = Vec::new();
    for months in [12u32, 120] {
        eprintln!("==> {customers} customers, {months} months");
        let data = work.path().join(format!("data-{months}"));
        snapshot(&data, customers, months)?;
        results.push(measure(&data)?);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let base = &results[0];
    let mut table = vec![
        format!("| months | rows per side | read results | first frame (UI thread) | vs 12 months | full render (wgpu, lavapipe) | first frame vs {BUDGET_MS} ms budget |"),
        "|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    for r in &results {
        table.push(format!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.2}x | {:.1} ms | {:.0}% |",
            r.months,
            r.rows,
            ms(r.load),
            ms(r.first_frame),
            ms(r.first_frame) / ms(base.first_frame),
            ms(r.render),
            100.0 * ms(r.first_frame) / BUDGET_MS
        ));
    }
    let text = table.join("\n");
    println!("{text}");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| "target".into());
    std::fs::create_dir_all(target.join("bench"))?;
    std::fs::write(target.join("bench/ui.md"), text + "\n")?;
    Ok(())
}

/// A snapshot with DuckDB results (and the same files as the BigQuery side) in `data`.
fn snapshot(data: &Path, customers: u64, months: u32) -> anyhow::Result<()> {
    let status = Command::new(MRR)
        .arg("--data-dir")
        .arg(data)
        .args(["-q", "demo", "--skip-bigquery", "--no-window", "--scenario", "full"])
        .args(["--customers", &customers.to_string(), "--months", &months.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "mrr demo failed");
    let snap = mrr::snapshot::resolve(data, "latest")?;
    let (from, to) = (snap.dir.join("results/duckdb"), snap.dir.join("results/bigquery"));
    std::fs::create_dir_all(&to)?;
    for e in std::fs::read_dir(&from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

fn measure(data: &Path) -> anyhow::Result<Measured> {
    let mut loads = Vec::new();
    let mut frames = Vec::new();
    let mut renders = Vec::new();
    let mut shape = (0, 0);
    for _ in 0..RUNS {
        let started = Instant::now();
        let loaded = mrr::ui::data::load(data, "latest")?;
        loads.push(started.elapsed());
        shape = (loaded.months.len(), loaded.duckdb.results().map_or(0, |r| r.monthly.len()));

        let app = MrrApp::new(data.to_path_buf(), None, None);
        let mut h =
            Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut MrrApp| app.show(ui), app);
        let waiting = Instant::now();
        while h.state().last_first_frame.is_none() {
            h.step();
            anyhow::ensure!(waiting.elapsed() < Duration::from_secs(60), "the window did not load its results");
            std::thread::sleep(Duration::from_millis(1));
        }
        frames.push(h.state().last_first_frame.expect("measured"));
        let started = Instant::now();
        h.render().map_err(|e| anyhow::anyhow!("wgpu render: {e}"))?;
        renders.push(started.elapsed());
    }
    Ok(Measured {
        months: shape.0,
        rows: shape.1,
        load: median(loads),
        first_frame: median(frames),
        render: median(renders),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
