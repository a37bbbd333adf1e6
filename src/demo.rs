//! `mrr demo`: the whole pipeline on the embedded default, with no Stripe key and no
//! Google account: simulate an account, serve it through the Stripe-compatible API, pull it
//! into a snapshot, verify it, compute every metric with DuckDB, check each cell against the
//! simulator's independent ground truth, push the same Parquet files to a local BigQuery
//! emulator (or a real project), run the BigQuery SQL there, compare both engines to the
//! cent, and print a summary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Map, Value};

use crate::metrics::MetricOptions;
use crate::simulate::{AccountInfo, Scenario, SimulateOptions};

/// Settings of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub customers: u64,
    pub months: u32,
    pub seed: u64,
    pub scenario: Scenario,
    /// Where to mirror: `None` starts the local BigQuery emulator.
    pub bigquery: Option<crate::bigquery::Target>,
    /// Stop after the ground-truth check (no BigQuery stage).
    pub skip_bigquery: bool,
    /// Open the window at the end when a display is available.
    pub window: bool,
}

/// Whether two folders hold the same files with the same bytes.
fn same_files(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let names = |dir: &Path| -> anyhow::Result<std::collections::BTreeSet<std::ffi::OsString>> {
        let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        Ok(entries.filter_map(Result::ok).map(|e| e.file_name()).collect())
    };
    let files = names(a)?;
    if files != names(b)? {
        return Ok(false);
    }
    for name in &files {
        if std::fs::read(a.join(name))? != std::fs::read(b.join(name))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs the demo; a ground-truth mismatch is a failed check (exit 1).
pub fn run(opts: &DemoOptions) -> anyhow::Result<()> {
    let scenario = serde_json::to_value(opts.scenario)?.as_str().unwrap_or("default").to_string();
    let account = opts
        .data_dir
        .join("accounts")
        .join(format!("{scenario}-seed{}-{}c-{}m", opts.seed, opts.customers, opts.months));
    stage("1/8", "simulate a Stripe account (deterministic, offline)");
    // Simulated afresh every time (it takes well under a second) and compared with the folder
    // a previous run left: the same bytes are reused; a folder another version of the
    // simulator wrote (objects or ground truth of other rules) is moved aside, never trusted.
    let fresh = account.with_file_name(format!(
        ".{}.new-{}",
        account.file_name().and_then(|n| n.to_str()).unwrap_or("account"),
        std::process::id()
    ));
    let summary = crate::simulate::run(&SimulateOptions {
        customers: opts.customers,
        months: opts.months,
        seed: opts.seed,
        scenario: opts.scenario,
        now: crate::calendar::parse_timestamp("2026-11-20T12:00:00Z").expect("valid"),
        event_days: 30,
        horizon: None,
        parquet_snapshot: false,
        amount_scale: 1,
        api_version: crate::simulate::render::API_VERSION.to_string(),
        out: fresh.clone(),
    })?;
    if account.exists() && same_files(&account, &fresh)? {
        std::fs::remove_dir_all(&fresh).with_context(|| format!("removing {}", fresh.display()))?;
        eprintln!("    reusing {} (identical to a fresh simulation)", account.display());
    } else {
        if account.exists() {
            let aside = account.with_file_name(format!(
                "{}.replaced-{}",
                account.file_name().and_then(|n| n.to_str()).unwrap_or("account"),
                crate::calendar::now()
            ));
            std::fs::rename(&account, &aside).with_context(|| format!("moving {} aside", account.display()))?;
            eprintln!(
                "    {} was written by another version of the simulator: moved to {}",
                account.display(),
                aside.display()
            );
        }
        std::fs::rename(&fresh, &account).with_context(|| format!("moving {} into place", fresh.display()))?;
        eprintln!(
            "    {} customers, {} subscriptions, {} invoices -> {}",
            summary.customers,
            summary.subscriptions,
            summary.invoices,
            account.display()
        );
    }
    let info = AccountInfo::load(&account)?;

    stage("2/8", "serve it through the Stripe-compatible API on 127.0.0.1 and pull it (async-stripe)");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let server = crate::stripe_server::StripeServer::bind(&crate::stripe_server::ServerOptions {
            account: account.clone(),
            port: 0,
            rate_limit: None,
            fail_rate: 0.0,
            drop_rate: 0.0,
            latency_ms: 0,
            seed: 1,
            fail_status: 500,
            fail_should_retry: None,
            forbid: Vec::new(),
        })
        .await?;
        let base = format!("http://{}", server.local_addr()?);
        eprintln!("    simulated Stripe API at {base}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let pulled = crate::pull::run(&crate::pull::PullOptions {
            api_key: info.api_key.clone(),
            api_base: base,
            connected_account: None,
            data_dir: opts.data_dir.clone(),
            max_rps: None,
            concurrency: 8,
            slices_per_type: 8,
            max_attempts: 8,
            resume: false,
            as_of: Some(info.now),
            events_since: Some(info.now - info.event_days as i64 * crate::calendar::DAY),
        })
        .await;
        let _ = stop.send(());
        serving.await??;
        pulled
    })?;
    let snapshot = summary.snapshot;
    let rows: u64 = snapshot.manifest.tables.iter().map(|t| t.rows).sum();
    eprintln!(
        "    snapshot {} ({rows} rows in {} tables, {} requests)",
        snapshot.manifest.id,
        snapshot.manifest.tables.len(),
        summary.requests
    );

    stage("3/8", "verify the snapshot (sha256 and row counts; derived tables recomputed)");
    crate::engine::derived::verify_all(&snapshot)?;
    eprintln!("    ok");

    stage("4/8", "compute every metric locally with DuckDB over the Parquet files");
    let started = std::time::Instant::now();
    let results = crate::engine::report_duckdb(&snapshot, MetricOptions::default())?;
    eprintln!(
        "    {} queries in {:.0?}, saved under {}",
        results.len(),
        started.elapsed(),
        snapshot.dir.join("results/duckdb").display()
    );
    let rows_of = |query| crate::engine::rows_of(&results, query);
    let (monthly, seed, plans) = (&rows_of("mrr_monthly")?, &rows_of("seed_mrr")?, &rows_of("mrr_by_plan")?);

    stage("5/8", "check every cell against the simulator's independent ground truth");
    let truth: Value = serde_json::from_slice(&std::fs::read(account.join("ground_truth.json"))?)?;
    let as_rows = |v: &Value| -> Vec<Map<String, Value>> {
        v.as_array().into_iter().flatten().filter_map(|r| r.as_object().cloned()).collect()
    };
    let monthly_check =
        crate::parity::compare(&as_rows(&truth["mrr_monthly"]), monthly, &crate::parity::MONTHLY_METRICS, 0);
    let seed_check = crate::parity::compare(&as_rows(&truth["seed_mrr"]), seed, &crate::parity::SEED_METRICS, 0);
    let (plan_keys, plan_metrics) = crate::parity::shape("mrr_by_plan");
    let plan_check = crate::parity::compare_by(&as_rows(&truth["mrr_by_plan"]), plans, plan_keys, plan_metrics, 0);
    let ground_truth_diffs: Vec<String> = monthly_check
        .differences
        .iter()
        .chain(&seed_check.differences)
        .chain(&plan_check.differences)
        .map(|d| d.to_string())
        .collect();
    let truth_cells = monthly_check.cells_compared + seed_check.cells_compared + plan_check.cells_compared;
    eprintln!("    {} of {truth_cells} cells identical", truth_cells - ground_truth_diffs.len());

    let parity = if opts.skip_bigquery {
        eprintln!("==> [6/7] BigQuery mirror: skipped (--skip-bigquery)");
        None
    } else {
        Some(mirror(opts, &snapshot, &runtime)?)
    };

    println!();
    let summary_rows: Vec<Map<String, Value>> = monthly
        .iter()
        .map(|r| {
            let seed_amount = seed
                .iter()
                .find(|s| s["month"] == r["month"] && s["currency"] == r["currency"])
                .and_then(|s| s["mrr_amount"].as_i64());
            let money = |v: &Value| v.as_i64().map(crate::money::cents_text);
            let mut m = Map::new();
            m.insert("month".into(), r["month"].clone());
            m.insert("currency".into(), r["currency"].clone());
            m.insert("mrr".into(), json!(money(&r["mrr"])));
            m.insert("customers".into(), r["active_customers"].clone());
            m.insert("new".into(), json!(money(&r["new_mrr"])));
            m.insert("expansion".into(), json!(money(&r["expansion_mrr"])));
            m.insert("contraction".into(), json!(money(&r["contraction_mrr"])));
            m.insert("churned".into(), json!(money(&r["churned_mrr"])));
            m.insert("nrr_%".into(), r["net_revenue_retention"].clone());
            m.insert("seed_query_mrr".into(), json!(seed_amount.map(crate::money::cents_text)));
            m
        })
        .collect();
    crate::output::write_rows(&mut std::io::stdout().lock(), &summary_rows, crate::cli::Format::Table)?;
    println!();
    let mut failures = Vec::new();
    if ground_truth_diffs.is_empty() {
        println!("DuckDB matches the ground truth to the cent: {truth_cells} of {truth_cells} cells identical.");
    } else {
        failures.push(format!(
            "{} of {truth_cells} cells differ from the ground truth:\n  {}",
            ground_truth_diffs.len(),
            ground_truth_diffs.join("\n  ")
        ));
    }
    if let Some((report, label)) = &parity {
        let cells: usize = report.queries.iter().map(|q| q.comparison.cells_compared).sum();
        let lines = report.difference_lines();
        if lines.is_empty() {
            println!("BigQuery ({label}) matches DuckDB to the cent: {cells} of {cells} cells identical.");
        } else {
            failures.push(format!(
                "{} of {cells} cells differ between DuckDB and BigQuery ({label}):\n  {}",
                lines.len(),
                lines.join("\n  ")
            ));
        }
    }
    println!("Snapshot: {}", snapshot.dir.display());
    if opts.window {
        open_window(opts, &snapshot.manifest.id)?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Failure::CheckFailed(failures.join("\n")).into())
    }
}

/// Stages 6 and 7: push to BigQuery (the local emulator unless a target was given), run
/// the BigQuery SQL, compare with DuckDB. Returns the parity report and what ran it.
fn mirror(
    opts: &DemoOptions,
    snapshot: &crate::snapshot::Snapshot,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(crate::parity::ParityReport, String)> {
    let mut _emulator = None;
    let (target, label) = match &opts.bigquery {
        Some(t) if t.endpoint.is_some() => (t.clone(), "emulator".to_string()),
        Some(t) => (t.clone(), "Google BigQuery".to_string()),
        None => {
            stage("6/8", "start a local BigQuery emulator (PyPI's bqemulator; an emulator, not Google's service)");
            let install = crate::bigquery::emulator::Install::locate()?;
            let log = opts.data_dir.join("logs/bqemulator.log");
            let emulator = crate::bigquery::emulator::Emulator::start(&install, "mrr-demo", &log)?;
            eprintln!("    emulator at {} (log: {})", emulator.endpoint, log.display());
            let target = crate::bigquery::Target {
                project: "mrr-demo".into(),
                dataset: "mrr".into(),
                location: "US".into(),
                endpoint: Some(emulator.endpoint.clone()),
                maximum_bytes_billed: crate::bigquery::DEFAULT_MAXIMUM_BYTES_BILLED,
            };
            _emulator = Some(emulator);
            (target, "local emulator".to_string())
        }
    };
    stage("6/8", &format!("push the same Parquet files to BigQuery ({label}) and run sql/bigquery there"));
    let started = std::time::Instant::now();
    runtime.block_on(async {
        let bq = crate::bigquery::BigQuery::connect(target.clone()).await?;
        let record = crate::bigquery::push::push(&bq, snapshot, None).await?;
        let rows: u64 = record.tables.iter().map(|t| t.rows_in_bigquery).sum();
        eprintln!(
            "    {} tables, {rows} rows loaded into {} (row counts equal the manifest)",
            record.tables.len(),
            target.describe()
        );
        let results = crate::bigquery::query::report(&bq, snapshot, MetricOptions::default()).await?;
        eprintln!(
            "    {} queries run in {:.1?}, saved under {}",
            results.len(),
            started.elapsed(),
            snapshot.dir.join("results/bigquery").display()
        );
        anyhow::Ok(())
    })?;
    stage("7/8", "parity: DuckDB vs BigQuery, every month, currency and metric, to the cent");
    let report = crate::parity::run(snapshot, MetricOptions::default(), 0)?;
    let cells: usize = report.queries.iter().map(|q| q.comparison.cells_compared).sum();
    eprintln!("    {} differences in {cells} cells (parity.json written)", report.difference_lines().len());
    Ok((report, label))
}

/// Stage 8: the window on the new snapshot, when there is a display to show it on.
fn open_window(opts: &DemoOptions, snapshot_id: &str) -> anyhow::Result<()> {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    if !has_display {
        stage("8/8", "window: skipped, no display (DISPLAY and WAYLAND_DISPLAY are unset)");
        eprintln!("    on a desktop: mrr --data-dir {} ui --snapshot {snapshot_id}", opts.data_dir.display());
        return Ok(());
    }
    stage("8/8", "open the window: DuckDB and BigQuery side by side (close it to finish)");
    crate::ui::run(crate::ui::UiOptions {
        data_dir: opts.data_dir.clone(),
        snapshot: Some(snapshot_id.to_string()),
        size: [1280.0, 800.0],
    })
}

fn stage(n: &str, what: &str) {
    eprintln!("==> [{n}] {what}");
}
