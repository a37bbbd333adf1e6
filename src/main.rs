//! The `mrr` binary: parse, run the chosen stage, map errors to exit codes.

use clap::Parser;
use mrr::cli::{Cli, Command, SnapshotsCommand};
use mrr::error::{bad_input, exit_code};

fn main() {
    let cli = Cli::parse();
    let verbosity = if cli.global.quiet { -1 } else { cli.global.verbose as i8 };
    mrr::logging::init(verbosity);
    mrr::progress::set_quiet(cli.global.quiet);
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
        }),
        Command::Simulate(args) => {
            let now = mrr::calendar::parse_timestamp(&args.now)
                .ok_or_else(|| bad_input(format!("--now: '{}' is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", args.now)))?;
            let summary = mrr::simulate::run(&mrr::simulate::SimulateOptions {
                customers: args.account.customers,
                months: args.account.months,
                seed: args.account.seed,
                scenario: args.account.scenario,
                now,
                event_days: args.event_days,
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
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(mrr::stripe_server::serve(&opts))
        }
        Command::Pull(args) => {
            let instant = |flag: &str, v: Option<String>| -> anyhow::Result<Option<i64>> {
                v.map(|t| {
                    mrr::calendar::parse_timestamp(&t)
                        .ok_or_else(|| bad_input(format!("{flag}: '{t}' is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")))
                })
                .transpose()
            };
            let opts = mrr::pull::PullOptions {
                api_key: args.api_key.unwrap_or_default(),
                api_base: args.api_base,
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
            let summary = runtime.block_on(mrr::pull::run(&opts))?;
            let m = &summary.snapshot.manifest;
            tracing::info!(
                "snapshot {} written to {} ({} requests, {} retries)",
                m.id,
                summary.snapshot.dir.display(),
                summary.requests,
                summary.retries
            );
            println!("{}", m.id);
            Ok(())
        }
        Command::Report(args) => {
            if !mrr::engine::QUERIES.contains(&args.query.as_str()) {
                return Err(bad_input(format!(
                    "--query {}: unknown query (known: {})",
                    args.query,
                    mrr::engine::QUERIES.join(", ")
                )));
            }
            let snapshot = mrr::snapshot::resolve(&cli.global.data_dir, &args.snapshot)?;
            let options = mrr::metrics::MetricOptions { discounts: args.discounts, churn_at: args.churn_at };
            if args.show_sql {
                print!("{}", mrr::engine::duckdb::resolved_sql(&snapshot, &args.query, options)?);
                return Ok(());
            }
            let results = mrr::engine::report_duckdb(&snapshot, options)?;
            let (_, rows) = results.into_iter().find(|(q, _)| *q == args.query).expect("known query");
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| {
                    args.currency.as_deref().is_none_or(|c| r.get("currency").and_then(|v| v.as_str()) == Some(c))
                })
                .collect();
            tracing::info!("results saved under {}", snapshot.dir.join("results/duckdb").display());
            mrr::output::write_rows(&mut std::io::stdout().lock(), &rows, args.format)
        }
        Command::Snapshots(cmd) => snapshots(&cli.global.data_dir, cmd),
        Command::Schema => {
            print!("{}", mrr::snapshot::schema::markdown());
            Ok(())
        }
    }
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
            let s = mrr::snapshot::resolve(data_dir, &snapshot)?;
            println!("{}", serde_json::to_string_pretty(&s.manifest)?);
            Ok(())
        }
        SnapshotsCommand::Verify { snapshot } => {
            let s = mrr::snapshot::resolve(data_dir, &snapshot)?;
            for line in mrr::snapshot::verify(&s)? {
                println!("{line}");
            }
            println!("snapshot {} verified", s.manifest.id);
            Ok(())
        }
    }
}
