//! Helpers shared by the benchmarks: the project-local Python baselines and the engine
//! race (`mrr report` against the pandas port of the seed query, checked equal first).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

pub const MRR: &str = env!("CARGO_BIN_EXE_mrr");
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PYTHON_PACKAGES: [&str; 4] = ["stripe==16.1.0", "pandas==3.1.1", "pyarrow==26.0.1", "duckdb==1.5.5"];

/// `.venv/bin/python` with the baselines' packages, created on first use.
pub fn ensure_venv() -> anyhow::Result<PathBuf> {
    let venv = Path::new(REPO).join(".venv");
    let python = venv.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import stripe, pandas, pyarrow, duckdb"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ready {
        eprintln!("==> installing the Python baselines into {} ({})", venv.display(), PYTHON_PACKAGES.join(", "));
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(PYTHON_PACKAGES))?;
    }
    Ok(python)
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed");
    Ok(())
}

pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "{cmd:?} failed");
    Ok(String::from_utf8(out.stdout)?)
}

/// One engine race: `mrr report` against the pandas seed query, medians of [`RUNS`] each.
pub struct Race {
    /// `mrr report`, process start to last byte (every query, results saved), seconds.
    pub ours: f64,
    /// The most memory any of those runs held (GNU time's maximum resident set), KiB.
    pub ours_peak_rss_kib: u64,
    /// The pandas port of the original seed query, in its own process, seconds.
    pub theirs: f64,
}

/// Runs each side of the race this many times; the median is what counts.
pub const RUNS: usize = 5;

/// `mrr report` (under GNU time, for its peak memory) and the pandas seed query on the same
/// snapshot, interleaved, [`RUNS`] times each; before any time counts, the pandas rows must
/// equal DuckDB's `seed_mrr` cell for cell.
pub fn engine_race(python: &Path, snapshot: &mrr::snapshot::Snapshot) -> anyhow::Result<Race> {
    let (mut ours, mut theirs, mut peak) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..RUNS {
        let (secs, rss, _) = timed_mrr(|c| {
            c.args(["-q", "report", "--format", "csv", "--snapshot"]).arg(&snapshot.dir);
        })?;
        ours.push(secs);
        peak = peak.max(rss);
        let out = output(
            Command::new(python)
                .arg(Path::new(REPO).join("benches/baselines/pandas_seed.py"))
                .arg(&snapshot.dir)
                .arg(&snapshot.manifest.as_of),
        )?;
        let parsed: serde_json::Value = serde_json::from_str(out.trim())?;
        theirs.push(parsed["seconds"].as_f64().unwrap_or(f64::MAX));
        let duck = mrr::queries::results::load(&snapshot.dir.join("results/duckdb/seed_mrr.parquet"))?;
        let pandas_rows: Vec<serde_json::Map<String, serde_json::Value>> =
            parsed["rows"].as_array().into_iter().flatten().filter_map(|r| r.as_object().cloned()).collect();
        let check = mrr::parity::compare(&duck, &pandas_rows, &mrr::parity::SEED_METRICS, 0);
        anyhow::ensure!(
            check.differences.is_empty(),
            "the pandas baseline disagrees with DuckDB: {:?}",
            check.differences
        );
    }
    Ok(Race { ours: median(ours), ours_peak_rss_kib: peak, theirs: median(theirs) })
}

/// Runs `mrr` with the arguments `args` adds, under GNU time, stdout discarded; returns
/// (seconds, peak RSS KiB, stderr), or an error with stderr when it fails.
pub fn timed_mrr(args: impl FnOnce(&mut Command)) -> anyhow::Result<(f64, u64, String)> {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v").arg(MRR);
    args(&mut cmd);
    let started = Instant::now();
    let out = cmd.stdout(Stdio::null()).output()?;
    let secs = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(out.status.success(), "{cmd:?} failed: {err}");
    Ok((secs, peak_rss_kib(&err), err))
}

/// GNU time's "Maximum resident set size (kbytes)" from `time -v`'s report.
fn peak_rss_kib(time_report: &str) -> u64 {
    time_report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The middle value (of an odd count; the upper middle otherwise).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Sizes to run, from a comma-separated environment variable (`default` when unset).
pub fn sizes(variable: &str, default: &str) -> anyhow::Result<Vec<u64>> {
    let text = std::env::var(variable).unwrap_or_else(|_| default.into());
    text.split(',').map(|s| s.trim().parse().map_err(|e| anyhow::anyhow!("{variable}={text}: {e}"))).collect()
}

/// A `mrr stripe-server` process, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(account: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(MRR)
            .args(["-q", "stripe-server", "--port", "0", "--account"])
            .arg(account)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        Ok(Server { child, base: line.trim().to_string() })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The requests and the seconds spent requesting that `mrr pull` logs: "... 934 requests in
/// 9.49 s ..." (the seconds when "of requesting" or a comma follows).
pub fn requests_logged(log: &str) -> (u64, Option<f64>) {
    let mut halves = log.split(" requests in ");
    let requests =
        halves.next().and_then(|s| s.rsplit(['(', ' ']).next()).and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let secs = halves.next().and_then(|s| s.split(" s").next()).and_then(|s| s.trim().parse().ok());
    (requests, secs)
}
