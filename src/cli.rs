//! The command line: clap definitions only. Validation and work live in the stages.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::simulate::Scenario;

/// Exact MRR from your Stripe data, computed locally and checked against BigQuery.
#[derive(Parser, Debug)]
#[command(name = "mrr", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Exit codes: 0 ok, 1 a check failed, 2 bad usage, bad input or another error.\n\
Data goes to stdout; logs and progress go to stderr.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Folder that holds snapshots (`DIR/snapshots/<id>/`) and other saved state.
    #[arg(long, global = true, env = "MRR_DATA_DIR", default_value = "data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// More log detail on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr, no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Output format of commands that print results.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array of row objects.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole pipeline on a simulated account: no Stripe key, no network.
    ///
    /// Simulates a Stripe account (reused on later runs), serves it through the local
    /// Stripe-compatible API, pulls it into a snapshot, verifies it, computes every metric
    /// with DuckDB and checks each cell against the simulator's independent ground truth.
    /// With real credentials, run the same stages yourself: `mrr pull` (STRIPE_API_KEY)
    /// then `mrr report`.
    Demo(DemoArgs),
    /// Write a deterministic synthetic Stripe account and its ground-truth metrics.
    ///
    /// The folder holds one JSON Lines file per Stripe object type (customers,
    /// products, prices, coupons, subscriptions, invoices, events, test clocks) in
    /// Stripe's current API shape, `account.json` (with the account's test key) and
    /// `ground_truth.json`: every metric per month and currency, computed from the
    /// simulator's own timeline. The same flags always give byte-identical files.
    Simulate(SimulateArgs),
    /// Serve a simulated account through a Stripe-compatible read API on 127.0.0.1.
    ///
    /// Prints the base URL on stdout (use it as `--api-base` / the client's URL)
    /// and serves until Ctrl-C. Authenticate with the `api_key` of the account's
    /// `account.json`. The fault knobs make resilience tests reproducible: the n-th
    /// request meets the same fate on every run with the same --seed.
    StripeServer(StripeServerArgs),
    /// Pull a Stripe account into a new immutable Parquet snapshot.
    ///
    /// Pulls customers, products, prices, coupons, subscriptions (all statuses, items and
    /// discounts), invoices with every line, test clocks, and recent events, in parallel
    /// `created` slices under one request-rate ceiling. Retries 429s, 5xx and dropped
    /// connections. Interrupted? `mrr pull --resume` continues where it stopped. The
    /// snapshot lands in DATA_DIR/snapshots/<id>/ and becomes `latest`.
    Pull(PullArgs),
    /// Compute the metrics of a snapshot locally with DuckDB (no import step).
    ///
    /// Runs every query of sql/duckdb/ over the snapshot's Parquet files, saves each
    /// result under SNAPSHOT/results/duckdb/<query>.parquet (for the window and for
    /// parity) and prints the one chosen with --query.
    Report(ReportArgs),
    /// List, show or verify snapshots.
    #[command(subcommand)]
    Snapshots(SnapshotsCommand),
    /// Print the snapshot tables' schema (Markdown).
    Schema,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Stripe secret or restricted key (sk_test_…, sk_live_…, rk_…). Never printed or stored.
    #[arg(long, env = "STRIPE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// API base URL: Stripe itself, or `mrr stripe-server`'s URL.
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    pub api_base: String,
    /// Request-rate ceiling across all workers [default: 25 for test keys, 100 for live keys].
    #[arg(long, value_name = "RPS")]
    pub max_rps: Option<f64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// `created` slices per large object type.
    #[arg(long, default_value_t = 8)]
    pub slices: usize,
    /// Tries per request before giving up (429, 5xx, timeouts, dropped connections).
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
    /// Continue an interrupted pull from its checkpoints.
    #[arg(long)]
    pub resume: bool,
    /// The instant the data describes (YYYY-MM-DD or RFC 3339) [default: now]. For a simulated
    /// account use its `now` (account.json).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Pull events created from this instant on [default: 30 days before --as-of].
    #[arg(long)]
    pub events_since: Option<String>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Snapshot id, `latest`, or a path to a snapshot folder.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// Query to print: mrr_monthly, mrr_by_customer or seed_mrr.
    #[arg(long, default_value = "mrr_monthly")]
    pub query: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only rows of this currency (e.g. usd).
    #[arg(long)]
    pub currency: Option<String>,
    /// Which coupons reduce MRR.
    #[arg(long, value_enum, default_value_t = crate::metrics::DiscountRule::Recurring)]
    pub discounts: crate::metrics::DiscountRule,
    /// When a canceled subscription stops counting.
    #[arg(long, value_enum, default_value_t = crate::metrics::ChurnAt::End)]
    pub churn_at: crate::metrics::ChurnAt,
    /// Print the resolved DuckDB SQL of --query instead of running it.
    #[arg(long)]
    pub show_sql: bool,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotsCommand {
    /// Every complete snapshot, oldest first.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A snapshot's manifest.
    Show {
        /// Snapshot id, `latest`, or a path.
        #[arg(long, default_value = "latest")]
        snapshot: String,
    },
    /// Recompute every checksum and row count; exit 1 on any mismatch.
    Verify {
        /// Snapshot id, `latest`, or a path.
        #[arg(long, default_value = "latest")]
        snapshot: String,
    },
}

/// What simulated account to build (shared by `simulate` and `demo`).
#[derive(Args, Debug)]
pub struct AccountArgs {
    /// Number of random customers (the full scenario adds its edge-case customers).
    #[arg(long, default_value_t = 75)]
    pub customers: u64,
    /// Months of history, ending with the account's present.
    #[arg(long, default_value_t = 6)]
    pub months: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Which account to build.
    #[arg(long, value_enum, default_value_t = Scenario::Default)]
    pub scenario: Scenario,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub account: AccountArgs,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// The account's present (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ); fixed so runs are reproducible.
    #[arg(long, default_value = "2026-11-20T12:00:00Z")]
    pub now: String,
    /// Days of events kept before --now (Stripe keeps 30).
    #[arg(long, default_value_t = 30)]
    pub event_days: u32,
    /// Folder to create (must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct StripeServerArgs {
    /// Account folder written by `mrr simulate`.
    #[arg(long, value_name = "DIR")]
    pub account: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 12111)]
    pub port: u16,
    /// Answer 429 rate_limit errors above this many requests per second.
    #[arg(long, value_name = "RPS")]
    pub rate_limit: Option<u32>,
    /// Share of requests (0..1) answered with a 500 api_error.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share of requests (0..1) whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Extra delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of the fault pattern.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}
