//! The `mrr` binary: parse, run the chosen stage, map errors to exit codes.

use anyhow::Context;
use clap::Parser;
use mrr::cli::{ArchiveCommand, Cli, Command, SnapshotsCommand};
use mrr::error::{bad_input, exit_code};

fn main() {
    // The settings file first: its values become the flags' environment defaults.
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let settings = match mrr::settings::apply(&args) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(exit_code(&err));
        }
    };
    let cli = Cli::parse();
    let verbosity = if cli.global.quiet { -1 } else { cli.global.verbose as i8 };
    mrr::logging::init(verbosity);
    mrr::progress::set_quiet(cli.global.quiet);
    mrr::install_crypto_provider();
    if let Some(file) = settings {
        tracing::debug!("settings from {}", file.display());
    }
    if let Err(err) = run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(exit_code(&err));
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => mrr::demo::run(&mrr::demo::DemoOptions {
            data_dir: cli.global.data_dir.clone(),
            customers: args.account.customers,
            months: args.account.months,
            seed: args.account.seed,
            scenario: args.account.scenario,
            bigquery: match (&args.bigquery_project, &args.bigquery_endpoint) {
                (Some(project), _) => Some(mrr::bigquery::Target {
                    project: project.clone(),
                    dataset: args.bigquery_dataset.clone(),
                    location: args.bigquery_location.clone(),
                    endpoint: None,
                    maximum_bytes_billed: mrr::bigquery::DEFAULT_MAXIMUM_BYTES_BILLED,
                }),
                (None, Some(endpoint)) => Some(mrr::bigquery::Target {
                    project: "mrr-demo".into(),
                    dataset: args.bigquery_dataset.clone(),
                    location: args.bigquery_location.clone(),
                    endpoint: Some(endpoint.clone()),
                    maximum_bytes_billed: mrr::bigquery::DEFAULT_MAXIMUM_BYTES_BILLED,
                }),
                (None, None) => None,
            },
            skip_bigquery: args.skip_bigquery,
            window: !args.no_window,
        }),
        Command::Simulate(args) => {
            let now = instant("--now", Some(args.now))?.expect("given");
            let horizon = instant("--horizon", args.horizon)?;
            let summary = mrr::simulate::run(&mrr::simulate::SimulateOptions {
                customers: args.account.customers,
                months: args.account.months,
                seed: args.account.seed,
                scenario: args.account.scenario,
                now,
                event_days: args.event_days,
                horizon,
                parquet_snapshot: args.parquet_snapshot,
                amount_scale: args.amount_scale,
                api_version: args.api_version,
                out: args.out,
            })?;
            tracing::info!(
                "wrote {} ({} customers, {} subscriptions, {} invoices, {} events)",
                summary.path.display(),
                summary.customers,
                summary.subscriptions,
                summary.invoices,
                summary.events
            );
            Ok(())
        }
        Command::StripeServer(args) => {
            let opts = mrr::stripe_server::ServerOptions {
                account: args.account,
                port: args.port,
                rate_limit: args.rate_limit,
                fail_rate: args.fail_rate,
                drop_rate: args.drop_rate,
                latency_ms: args.latency_ms,
                seed: args.seed,
                fail_status: args.fail_status,
                fail_should_retry: args.fail_should_retry,
                forbid: args.forbid,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(mrr::stripe_server::serve(&opts))
        }
        Command::SeedStripe(args) => {
            if args.max_rps <= 0.0 || !args.max_rps.is_finite() {
                return Err(bad_input("--max-rps must be a positive number"));
            }
            let first_month = match args.first_month {
                Some(m) => m,
                None => mrr::calendar::Month::of(mrr::calendar::now()).plus(-i64::from(args.months)).to_string(),
            };
            let run = mrr::seed::SeedRun {
                api_key: args.api_key.unwrap_or_default(),
                api_base: args.api_base,
                manifest: args.manifest,
                resume: args.resume,
                options: mrr::seed::plan::SeedOptions {
                    customers: args.customers,
                    months: args.months,
                    clocks: args.clocks,
                    seed: args.seed,
                    first_month,
                },
                max_rps: args.max_rps,
                max_attempts: args.max_attempts,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            if args.clean {
                let removed = runtime.block_on(mrr::seed::clean(&run))?;
                tracing::info!("removed {removed} objects of the run in {}", run.manifest.display());
                return Ok(());
            }
            let s = runtime.block_on(mrr::seed::run(&run))?;
            tracing::info!(
                "seeded {} customers ({} requests, {} steps already done); manifest and expected MRR in {}",
                s.customers,
                s.requests,
                s.skipped,
                s.manifest.display()
            );
            Ok(())
        }
        Command::Pull(args) => {
            let opts = mrr::pull::PullOptions {
                api_key: args.api_key.unwrap_or_default(),
                api_base: args.api_base,
                connected_account: args.account,
                data_dir: cli.global.data_dir.clone(),
                max_rps: args.max_rps,
                concurrency: args.concurrency,
                slices_per_type: args.slices,
                max_attempts: args.max_attempts,
                resume: args.resume,
                as_of: instant("--as-of", args.as_of)?,
                events_since: instant("--events-since", args.events_since)?,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            if let Some(since) = &args.since {
                let s = runtime.block_on(mrr::pull::refresh::run(&opts, since, args.refetch_all))?;
                let m = &s.snapshot.manifest;
                tracing::info!(
                    "snapshot {} written to {}: {} from {} with {} events, {} objects from their events, {} \
                     retrieved ({} gone); {} requests in {:.2} s, {} retries",
                    m.id,
                    s.snapshot.dir.display(),
                    m.as_of,
                    s.base,
                    s.events,
                    s.from_events,
                    s.objects,
                    s.deleted,
                    s.requests,
                    s.request_secs,
                    s.retries
                );
                println!("{}", m.id);
                return Ok(());
            }
            let summary = runtime.block_on(mrr::pull::run(&opts))?;
            let m = &summary.snapshot.manifest;
            tracing::info!(
                "snapshot {} written to {} ({} requests in {:.2} s of requesting, {:.1} req/s; {} retries)",
                m.id,
                summary.snapshot.dir.display(),
                summary.requests,
                summary.request_secs,
                summary.requests as f64 / summary.request_secs.max(1e-9),
                summary.retries
            );
            println!("{}", m.id);
            Ok(())
        }
        Command::Report(args) => {
            if !mrr::queries::QUERIES.contains(&args.query.as_str()) {
                return Err(bad_input(format!(
                    "--query {}: unknown query (known: {})",
                    args.query,
                    mrr::queries::QUERIES.join(", ")
                )));
            }
            let snapshot = mrr::snapshot::resolve(&cli.global.data_dir, &args.snapshot)
                .with_context(|| format!("--snapshot {}", args.snapshot))?;
            let options = args.metric.options();
            if args.show_sql {
                print!("{}", mrr::engine::duckdb::resolved_sql(&snapshot, &args.query, options)?);
                return Ok(());
            }
            let results = mrr::engine::report_duckdb(&snapshot, options)?;
            let rows: Vec<_> = mrr::engine::rows_of(&results, &args.query)?
                .into_iter()
                .filter(|r| {
                    args.currency.as_deref().is_none_or(|c| r.get("currency").and_then(|v| v.as_str()) == Some(c))
                })
                .collect();
            tracing::info!("results saved under {}", snapshot.dir.join("results/duckdb").display());
            mrr::output::write_rows(&mut std::io::stdout().lock(), &rows, args.format)
        }
        Command::Push(args) => {
            let snapshot = mrr::snapshot::resolve(&cli.global.data_dir, &args.snapshot)
                .with_context(|| format!("--snapshot {}", args.snapshot))?;
            // Before any request: a price the BigQuery SQL could only value at 0 stops here.
            mrr::engine::priceable::check_snapshot(&snapshot, args.metric.options())?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                let bq = mrr::bigquery::BigQuery::connect(args.bigquery.target()).await?;
                if args.dry_run {
                    return mrr::bigquery::push::dry_run(&bq, &snapshot, args.metric.options()).await;
                }
                let record = mrr::bigquery::push::push(&bq, &snapshot, args.stage.as_deref()).await?;
                let rows: Vec<serde_json::Value> = record
                    .tables
                    .iter()
                    .map(|t| serde_json::json!({"table": bq.target.table_ref(&t.name), "rows": t.rows_in_bigquery, "partitioned_by": t.partitioned_by, "job": t.job_id}))
                    .collect();
                mrr::output::write_rows(&mut std::io::stdout().lock(), &mrr::output::to_maps(&rows)?, mrr::cli::Format::Table)?;
                tracing::info!("loaded {} tables into {}; recorded in {}", record.tables.len(), bq.target.describe(), snapshot.dir.join(mrr::bigquery::push::RECORD).display());
                if !args.no_queries {
                    let results = mrr::bigquery::query::report(&bq, &snapshot, args.metric.options()).await?;
                    tracing::info!("{} queries run in BigQuery; results saved under {}", results.len(), snapshot.dir.join("results/bigquery").display());
                }
                Ok(())
            })
        }
        Command::Serve(args) => {
            let opts = mrr::api::ServeOptions {
                bind: args.bind,
                port: args.port,
                data_dir: cli.global.data_dir.clone(),
                snapshot: args.snapshot,
                webhook_secret: args.webhook_secret,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(mrr::api::serve(
                opts,
                |addr| {
                    use std::io::Write;
                    println!("http://{addr}");
                    let _ = std::io::stdout().flush();
                    tracing::info!("serving on http://{addr} (Ctrl-C to stop)");
                },
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            ))
        }
        Command::BqReport(args) => {
            let snapshot = mrr::snapshot::resolve(&cli.global.data_dir, &args.snapshot)
                .with_context(|| format!("--snapshot {}", args.snapshot))?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                let bq = mrr::bigquery::BigQuery::connect(args.bigquery.target()).await?;
                let results = mrr::bigquery::query::report(&bq, &snapshot, args.metric.options()).await?;
                for (query, rows) in &results {
                    println!("{query}: {} rows", rows.len());
                }
                tracing::info!("results saved under {}", snapshot.dir.join("results/bigquery").display());
                Ok(())
            })
        }
        Command::Parity(args) => {
            let snapshot = mrr::snapshot::resolve(&cli.global.data_dir, &args.snapshot)
                .with_context(|| format!("--snapshot {}", args.snapshot))?;
            let report = mrr::parity::run(&snapshot, args.metric.options(), args.tolerance_cents)?;
            match args.format {
                mrr::cli::Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                format => {
                    let rows: Vec<serde_json::Value> = report
                        .queries
                        .iter()
                        .map(|q| serde_json::json!({"query": q.query, "rows_duckdb": q.rows_duckdb, "rows_bigquery": q.rows_bigquery, "cells_compared": q.comparison.cells_compared, "differences": q.comparison.differences.len()}))
                        .collect();
                    mrr::output::write_rows(&mut std::io::stdout().lock(), &mrr::output::to_maps(&rows)?, format)?;
                }
            }
            let lines = report.difference_lines();
            if lines.is_empty() {
                let cells: usize = report.queries.iter().map(|q| q.comparison.cells_compared).sum();
                eprintln!(
                    "DuckDB and BigQuery are identical to the cent: {cells} cells compared (snapshot {}).",
                    report.snapshot
                );
                Ok(())
            } else {
                Err(mrr::error::Failure::CheckFailed(format!(
                    "{} cells differ between DuckDB (left) and BigQuery (right):\n  {}",
                    lines.len(),
                    lines.join("\n  ")
                ))
                .into())
            }
        }
        Command::Ui(args) => mrr::ui::run(mrr::ui::UiOptions {
            data_dir: cli.global.data_dir.clone(),
            snapshot: Some(args.snapshot),
            size: args.size,
        }),
        Command::Snapshots(cmd) => snapshots(&cli.global.data_dir, cmd),
        Command::Snapshot(args) => {
            if !args.from_events {
                return Err(bad_input(
                    "mrr snapshot builds a snapshot from archived webhook events: pass --from-events \
                     (a snapshot of the whole account comes from `mrr pull`)",
                ));
            }
            let summary = mrr::snapshot::from_events::run(&mrr::snapshot::from_events::FromEventsOptions {
                data_dir: cli.global.data_dir.clone(),
                base: args.base,
                as_of: instant("--as-of", args.as_of)?,
            })?;
            let m = &summary.snapshot.manifest;
            let changed: Vec<String> = summary.upserted.iter().map(|(t, n)| format!("{n} {t}")).collect();
            tracing::info!(
                "snapshot {} = {} + {} events ({} changed; {} deleted; {} already in the base, {} after --as-of)",
                m.id,
                summary.base,
                summary.applied,
                if changed.is_empty() { "nothing".to_string() } else { changed.join(", ") },
                summary.deleted,
                summary.already_in_base,
                summary.after_as_of,
            );
            for (kind, n) in &summary.ignored_types {
                tracing::info!("{n} {kind} events kept in `events` only (they change no table)");
            }
            println!("{}", m.id);
            Ok(())
        }
        Command::Archive(cmd) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(archive(&cli.global.data_dir, cmd))
        }
        Command::Schema => {
            print!("{}", mrr::snapshot::schema::markdown());
            Ok(())
        }
    }
}

/// A flag's instant (YYYY-MM-DD or RFC 3339), if given.
fn instant(flag: &str, value: Option<String>) -> anyhow::Result<Option<i64>> {
    value
        .map(|t| {
            mrr::calendar::parse_timestamp(&t)
                .ok_or_else(|| bad_input(format!("{flag}: '{t}' is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")))
        })
        .transpose()
}

fn snapshots(data_dir: &std::path::Path, cmd: SnapshotsCommand) -> anyhow::Result<()> {
    match cmd {
        SnapshotsCommand::List { format } => {
            let rows: Vec<serde_json::Value> = mrr::snapshot::list(data_dir)?
                .iter()
                .map(|s| {
                    let m = &s.manifest;
                    let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
                    let bytes: u64 = m.tables.iter().map(|t| t.bytes).sum();
                    serde_json::json!({"id": m.id, "pulled_at": m.pulled_at, "as_of": m.as_of, "source": m.source.api_base, "rows": rows, "bytes": bytes})
                })
                .collect();
            let maps = mrr::output::to_maps(&rows)?;
            mrr::output::write_rows(&mut std::io::stdout().lock(), &maps, format)
        }
        SnapshotsCommand::Show { snapshot } => {
            let s = mrr::snapshot::resolve(data_dir, &snapshot).with_context(|| format!("snapshot {snapshot}"))?;
            println!("{}", serde_json::to_string_pretty(&s.manifest)?);
            Ok(())
        }
        SnapshotsCommand::Verify { snapshot } => {
            let s = mrr::snapshot::resolve(data_dir, &snapshot).with_context(|| format!("snapshot {snapshot}"))?;
            for line in mrr::engine::derived::verify_all(&s)? {
                println!("{line}");
            }
            println!("snapshot {} verified", s.manifest.id);
            Ok(())
        }
        SnapshotsCommand::Diff { a, b, ignore, format, metric } => {
            if format == mrr::cli::Format::Csv {
                return Err(bad_input("--format csv: `mrr snapshots diff` prints `table` or `json`"));
            }
            let open = |spec: &str, which: &str| {
                mrr::snapshot::resolve(data_dir, spec)
                    .with_context(|| format!("mrr snapshots diff: the {which} snapshot, `{spec}`"))
            };
            let (a, b) = (open(&a, "first")?, open(&b, "second")?);
            let d = mrr::diff::diff(&a, &b, &ignore, metric.options())?;
            match format {
                mrr::cli::Format::Json => println!("{}", serde_json::to_string_pretty(&d)?),
                _ => print!("{}", mrr::diff::render_text(&d)),
            }
            if d.identical {
                return Ok(());
            }
            Err(mrr::error::Failure::CheckFailed(format!("snapshots {} and {} differ", d.a, d.b)).into())
        }
    }
}

async fn archive(data_dir: &std::path::Path, cmd: ArchiveCommand) -> anyhow::Result<()> {
    use mrr::object_storage::open;
    match cmd {
        ArchiveCommand::Push { id, all, to, endpoint } => {
            let location = open(&to, endpoint.as_deref())?;
            let snapshots = if all {
                mrr::snapshot::list(data_dir)?
            } else {
                let id = id.as_deref().unwrap_or(mrr::snapshot::LATEST);
                vec![mrr::snapshot::resolve(data_dir, id).with_context(|| format!("snapshot {id}"))?]
            };
            let mut rows = Vec::new();
            for s in &snapshots {
                let pushed = mrr::archive::push(&location, s).await?;
                tracing::info!("{} archived to {}", pushed.id, location.url);
                rows.push(serde_json::to_value(&pushed)?);
            }
            mrr::output::write_rows(
                &mut std::io::stdout().lock(),
                &mrr::output::to_maps(&rows)?,
                mrr::cli::Format::Table,
            )
        }
        ArchiveCommand::List { from, endpoint, format } => {
            let location = open(&from, endpoint.as_deref())?;
            let listed = mrr::archive::list(&location).await?;
            mrr::output::write_rows(&mut std::io::stdout().lock(), &mrr::output::to_maps(&listed)?, format)
        }
        ArchiveCommand::Restore { id, from, endpoint } => {
            let location = open(&from, endpoint.as_deref())?;
            let snapshot = mrr::archive::restore(&location, &id, data_dir).await?;
            println!("{}", snapshot.dir.display());
            Ok(())
        }
        ArchiveCommand::Prune { from, keep_daily, keep_monthly, yes, endpoint } => {
            let location = open(&from, endpoint.as_deref())?;
            let listed = mrr::archive::list(&location).await?;
            let (keep, delete) = mrr::archive::plan_prune(&listed, keep_daily, keep_monthly);
            for id in &keep {
                println!("keep    {id}");
            }
            for id in &delete {
                if yes {
                    mrr::archive::delete(&location, id).await?;
                    println!("deleted {id}");
                } else {
                    println!("delete  {id} (dry run; pass --yes to delete)");
                }
            }
            Ok(())
        }
    }
}
