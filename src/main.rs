//! The `mrr` binary: parse, run the chosen stage, map errors to exit codes.

use clap::Parser;
use mrr::cli::{Cli, Command};
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
        Command::Simulate(args) => {
            let now = mrr::calendar::parse_timestamp(&args.now)
                .ok_or_else(|| bad_input(format!("--now: '{}' is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", args.now)))?;
            let summary = mrr::simulate::run(&mrr::simulate::SimulateOptions {
                customers: args.customers,
                months: args.months,
                seed: args.seed,
                scenario: args.scenario,
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
    }
}
