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
    /// Settings file (default: ./mrr.toml when it exists): BigQuery project, dataset,
    /// location and byte limit, metric options, data folder. Flags and environment override it.
    #[arg(long, global = true, env = "MRR_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
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
    /// Simulates a Stripe account (kept in DATA_DIR/accounts/, reused while a fresh simulation
    /// is identical; one that another version wrote is moved aside), serves it through the
    /// local Stripe-compatible API, pulls it into a snapshot, verifies it, computes every metric
    /// with DuckDB and checks each cell against the simulator's independent ground truth,
    /// then pushes the same Parquet files to a local BigQuery emulator (started from
    /// .venv-emulators, see scripts/emulators), runs the BigQuery SQL there and compares
    /// both engines to the cent. --bigquery-project mirrors to Google's BigQuery instead.
    /// With a real Stripe account, run the same stages yourself: `mrr pull`
    /// (STRIPE_API_KEY), `mrr report`, `mrr push --project P`, `mrr parity`.
    Demo(DemoArgs),
    /// Write a deterministic synthetic Stripe account and its ground-truth metrics.
    ///
    /// The folder holds one JSON Lines file per Stripe object type (customers,
    /// products, prices, coupons, subscriptions, invoices, events, test clocks) in
    /// Stripe's current API shape, `account.json` (with the account's test key) and
    /// `ground_truth.json`: every metric per month and currency, computed from the
    /// simulator's own timeline. The same flags always give byte-identical files.
    Simulate(SimulateArgs),
    /// Serve an account through a Stripe-compatible API on 127.0.0.1.
    ///
    /// Prints the base URL on stdout (use it as `--api-base` / the client's URL)
    /// and serves until Ctrl-C. Authenticate with the `api_key` of the account's
    /// `account.json`. A simulated account is read-only; a new folder starts an empty
    /// writable account (its key is printed) that takes the writes of `mrr seed-stripe`. The fault knobs make resilience tests reproducible: the n-th
    /// request meets the same fate on every run with the same --seed.
    StripeServer(StripeServerArgs),
    /// Fill a Stripe test account with the original generator's account, through test clocks.
    ///
    /// Creates the six plans (Starter, Pro, Business, Enterprise monthly; Pro and Business
    /// annual), --clocks test clocks frozen at the start of --months months ago, --customers
    /// customers on them with Stripe's test cards, and their subscriptions; then advances the
    /// clocks to the 1st and the 15th of each month so that Stripe itself invoices the
    /// renewals, while the generator upgrades, downgrades and cancels (about 15% churn) and
    /// makes one customer in ten's card decline (the renewal fails, the subscription is
    /// canceled after Stripe's retries). Writes --manifest: every object created and
    /// `expected_mrr`, the MRR the metric contract says the account has each month, computed
    /// from the plan. Test keys only: a live key is refused before any request. Interrupted?
    /// Run the same command with --resume: nothing is created twice. --clean removes it all
    /// again. Against `mrr stripe-server --account NEW_DIR` it runs offline.
    SeedStripe(SeedStripeArgs),
    /// Pull a Stripe account into a new immutable Parquet snapshot.
    ///
    /// Pulls customers, products, prices (active, archived and inline), coupons, subscriptions
    /// (all statuses, every item and discount), invoices with every line, test clocks and the
    /// customers and subscriptions on them (test mode), and recent events, in parallel
    /// `created` slices under one request-rate ceiling. Retries 409, 424, 429, 5xx and dropped
    /// connections. A restricted key without permission for events or test clocks gets a
    /// warning (in the log and the manifest); without permission for anything the metrics
    /// need, an error naming the permission. Interrupted? `mrr pull --resume` continues where it stopped. The
    /// snapshot lands in DATA_DIR/snapshots/<id>/ and becomes `latest`.
    ///
    /// `mrr pull --since latest` refreshes instead: only the objects changed since that
    /// snapshot, found through Stripe's Events API (`mrr snapshots diff` against a full pull
    /// is the reconciliation).
    Pull(PullArgs),
    /// Compute the metrics of a snapshot locally with DuckDB (no import step).
    ///
    /// Runs every query of sql/duckdb/ over the snapshot's Parquet files, saves each
    /// result under SNAPSHOT/results/duckdb/<query>.parquet (for the window and for
    /// parity) and prints the one chosen with --query.
    Report(ReportArgs),
    /// Open a window with DuckDB's and BigQuery's results side by side.
    ///
    /// Each side: the chosen metric per month, stacked movement bars (new, expansion,
    /// reactivation up; contraction, churned down) on the same scales, and headline cards.
    /// Below: a month x metric diff table with every differing cell in red, and a banner
    /// that says whether both engines agree to the cent. Reads the results the snapshot
    /// already saved (`mrr report`, `mrr push`); a missing side names the command to run.
    Ui(UiArgs),
    /// Load a snapshot's Parquet files into BigQuery and run the BigQuery SQL there.
    ///
    /// Creates the dataset if missing, creates each table with an explicit schema derived
    /// from the Parquet file (month partitions on invoices, invoice_lines and events), loads
    /// the same files with WRITE_TRUNCATE load jobs (multipart or resumable upload, or from
    /// gs:// with --stage), checks every job's errorResult, reads the row counts back and
    /// compares them with the manifest, and records it all in the snapshot's bigquery.json.
    /// Then runs every query of sql/bigquery/ and saves results/bigquery/<query>.parquet.
    Push(PushArgs),
    /// Serve the metrics over HTTP and receive Stripe webhooks.
    ///
    /// GET /api/mrr (the original dashboard's shape plus every exact metric), /api/metrics,
    /// /api/parity, /api/snapshots, /healthz and /api/openapi.json; POST /webhooks/stripe
    /// verifies Stripe-Signature with STRIPE_WEBHOOK_SECRET and stores each event once,
    /// durably, in <data-dir>/events/events.jsonl. Prints the base URL on stdout.
    Serve(ServeArgs),
    /// Run every query of sql/bigquery/ over an already pushed snapshot and save the results.
    BqReport(BqReportArgs),
    /// Compare DuckDB's and BigQuery's results month by month, metric by metric, to the cent.
    ///
    /// Reads results/duckdb and results/bigquery of the snapshot (run `mrr report` and
    /// `mrr push` first), prints every difference, writes parity.json into the snapshot,
    /// and exits 0 only when both engines agree within --tolerance-cents (1 otherwise).
    Parity(ParityArgs),
    /// List, show or verify snapshots.
    #[command(subcommand)]
    Snapshots(SnapshotsCommand),
    /// Build a new snapshot from an existing one plus the webhook events archived since.
    ///
    /// `mrr serve` stores every verified Stripe webhook in DATA_DIR/events/events.jsonl.
    /// This applies the events created after the base snapshot's as_of (up to --as-of), in
    /// creation order, onto a copy of its tables: the newest event of each customer,
    /// subscription, invoice, product, price, coupon or discount replaces that object's rows.
    /// The base is never modified; the new snapshot becomes `latest` and its manifest names
    /// the base and the events applied. Prints the new snapshot's id.
    Snapshot(SnapshotArgs),
    /// Archive snapshots to object storage and restore them (file:///, s3://, gs://).
    ///
    /// Credentials come from each ecosystem's environment: AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION (and AWS_ENDPOINT_URL for S3-compatible stores);
    /// GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT for GCS
    /// (STORAGE_EMULATOR_HOST for an emulator). --endpoint overrides either service's address.
    #[command(subcommand)]
    Archive(ArchiveCommand),
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
    /// Pull this connected account (acct_…) through the platform's key (Stripe Connect's
    /// `Stripe-Account` header) instead of the key's own account.
    #[arg(long, value_name = "ACCT")]
    pub account: Option<String>,
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
    /// Bring this snapshot (an id, `latest`, or a snapshot folder) up to date instead of
    /// pulling everything: read the events created since its as_of and retrieve each object
    /// they name. Refused when the snapshot is more than 30 days older than --as-of (Stripe
    /// keeps events for 30 days), from another account, mode or API version.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "events_since")]
    pub since: Option<String>,
    /// With --since: retrieve every object the events name by id, even those whose newest
    /// event carries them whole (more requests; the same snapshot).
    #[arg(long, requires = "since")]
    pub refetch_all: bool,
    /// The instant the data describes (YYYY-MM-DD or RFC 3339) [default: now]. For a simulated
    /// account use its `now` (account.json).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Pull events created from this instant on [default: 30 days before --as-of]. Stripe keeps
    /// events for 30 days: an earlier instant is moved up to that, with a warning.
    #[arg(long)]
    pub events_since: Option<String>,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Apply the archived webhook events (the only way to build a snapshot other than `mrr pull`).
    #[arg(long)]
    pub from_events: bool,
    /// The snapshot to start from: an id, `latest`, or a path to a snapshot folder.
    #[arg(long, default_value = "latest")]
    pub base: String,
    /// The instant the new snapshot describes (YYYY-MM-DD or RFC 3339) [default: now]; events
    /// created later wait for the next build.
    #[arg(long)]
    pub as_of: Option<String>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Snapshot id, `latest`, or a path to a snapshot folder.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// Query to print: mrr_monthly, mrr_by_customer, mrr_by_plan or seed_mrr.
    #[arg(long, default_value = "mrr_monthly")]
    pub query: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only rows of this currency (e.g. usd).
    #[arg(long)]
    pub currency: Option<String>,
    #[command(flatten)]
    pub metric: MetricArgs,
    /// Print the resolved DuckDB SQL of --query instead of running it.
    #[arg(long)]
    pub show_sql: bool,
}

/// The metric options of the contract (docs/metrics.md).
#[derive(Args, Debug, Clone, Copy)]
pub struct MetricArgs {
    /// Which coupons reduce MRR.
    #[arg(long, value_enum, env = "MRR_DISCOUNTS", default_value_t = crate::metrics::DiscountRule::Recurring)]
    pub discounts: crate::metrics::DiscountRule,
    /// When a canceled subscription stops counting.
    #[arg(long, value_enum, env = "MRR_CHURN_AT", default_value_t = crate::metrics::ChurnAt::End)]
    pub churn_at: crate::metrics::ChurnAt,
}

impl MetricArgs {
    pub fn options(&self) -> crate::metrics::MetricOptions {
        crate::metrics::MetricOptions { discounts: self.discounts, churn_at: self.churn_at }
    }
}

/// Where the BigQuery mirror lives.
#[derive(Args, Debug, Clone)]
pub struct BigQueryArgs {
    /// Google Cloud project id.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    pub project: String,
    /// Dataset to load the snapshot into (created if missing).
    #[arg(long, env = "MRR_BIGQUERY_DATASET", default_value = "mrr")]
    pub dataset: String,
    /// Dataset location for a new dataset and for jobs.
    #[arg(long, env = "MRR_BIGQUERY_LOCATION", default_value = "US")]
    pub location: String,
    /// REST root of a BigQuery emulator (e.g. http://127.0.0.1:9050); no credentials are
    /// used then. Without it: Google's BigQuery with GOOGLE_APPLICATION_CREDENTIALS or
    /// application default credentials.
    #[arg(long, env = "BIGQUERY_EMULATOR_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Fail any query that would bill more than this many bytes (BigQuery's
    /// maximumBytesBilled; 10 GB costs a few cents on demand).
    #[arg(long, value_name = "BYTES", env = "MRR_MAXIMUM_BYTES_BILLED",
          default_value_t = crate::bigquery::DEFAULT_MAXIMUM_BYTES_BILLED,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub maximum_bytes_billed: i64,
}

impl BigQueryArgs {
    pub fn target(&self) -> crate::bigquery::Target {
        crate::bigquery::Target {
            project: self.project.clone(),
            dataset: self.dataset.clone(),
            location: self.location.clone(),
            endpoint: self.endpoint.clone(),
            maximum_bytes_billed: self.maximum_bytes_billed,
        }
    }
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Snapshot id, `latest`, or a path to a snapshot folder.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    #[command(flatten)]
    pub bigquery: BigQueryArgs,
    /// Stage the files in Cloud Storage (gs://bucket/prefix) and load from there instead
    /// of uploading them with the load jobs.
    #[arg(long, value_name = "GS_URL")]
    pub stage: Option<String>,
    /// Only load the tables; do not run the queries.
    #[arg(long)]
    pub no_queries: bool,
    /// Load nothing and run nothing: print what each table's load would send and, through
    /// BigQuery's free dry runs over the tables the dataset already has, the bytes each query
    /// would scan.
    #[arg(long, conflicts_with = "stage")]
    pub dry_run: bool,
    #[command(flatten)]
    pub metric: MetricArgs,
}

#[derive(Args, Debug)]
pub struct BqReportArgs {
    /// Snapshot id, `latest`, or a path to a snapshot folder.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    #[command(flatten)]
    pub bigquery: BigQueryArgs,
    #[command(flatten)]
    pub metric: MetricArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long, default_value_t = 5001)]
    pub port: u16,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Default snapshot of the API (id, `latest` or a folder); `?snapshot=` overrides.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// Webhook signing secret (whsec_...); without it POST /webhooks/stripe answers 503.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
}

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Snapshot id, `latest`, or a path to a snapshot folder (others can be picked in the window).
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// Window size in points, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x800", value_parser = parse_size)]
    pub size: [f32; 2],
}

fn parse_size(text: &str) -> Result<[f32; 2], String> {
    let bad = || format!("'{text}' is not WIDTHxHEIGHT (e.g. 1280x800)");
    let (w, h) = text.split_once('x').ok_or_else(bad)?;
    let (w, h): (f32, f32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(320.0..=10000.0).contains(&w) || !(240.0..=10000.0).contains(&h) {
        return Err(format!("'{text}': each side must be between 320x240 and 10000x10000"));
    }
    Ok([w, h])
}

#[derive(Args, Debug)]
pub struct ParityArgs {
    /// Snapshot id, `latest`, or a path to a snapshot folder.
    #[arg(long, default_value = "latest")]
    pub snapshot: String,
    /// Money cells may differ by this many minor units.
    #[arg(long, default_value_t = 0)]
    pub tolerance_cents: i64,
    /// table: a summary per query and every difference; json: the whole parity.json.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub metric: MetricArgs,
}

#[derive(Subcommand, Debug)]
pub enum ArchiveCommand {
    /// Upload snapshots: table files first (each read back and checked), manifest last, so
    /// an interrupted push is never listed as complete; pushing again finishes it.
    Push {
        /// Snapshot id, `latest` or a folder [default: latest].
        id: Option<String>,
        /// Every local snapshot.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Destination URL, e.g. s3://bucket/mrr or gs://bucket/mrr or file:///backups/mrr.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Service address for S3-compatible stores or emulators.
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
    },
    /// List archived snapshots (complete ones have their manifest).
    List {
        #[arg(long, value_name = "URL")]
        from: String,
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Download an archived snapshot into the data dir, checking every sha256; never
    /// overwrites a different local snapshot with the same id.
    Restore {
        /// Snapshot id.
        id: String,
        #[arg(long, value_name = "URL")]
        from: String,
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
    },
    /// Delete archived snapshots outside a retention policy (a dry run unless --yes).
    Prune {
        #[arg(long, value_name = "URL")]
        from: String,
        /// Keep the newest snapshot of each of this many most recent days.
        #[arg(long, default_value_t = 7)]
        keep_daily: usize,
        /// Keep the newest snapshot of each of this many most recent months.
        #[arg(long, default_value_t = 12)]
        keep_monthly: usize,
        /// Really delete (otherwise only print what would go).
        #[arg(long)]
        yes: bool,
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
    },
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
    /// Compare two snapshots: rows added, removed and changed per table (with the columns that
    /// changed), and MRR per month and currency; exit 1 when they differ.
    Diff {
        /// The first snapshot: id, `latest`, or a path.
        a: String,
        /// The second snapshot: id, `latest`, or a path.
        b: String,
        /// Leave a table out of the comparison (repeatable), e.g. `--ignore events`.
        #[arg(long, value_name = "TABLE")]
        ignore: Vec<String>,
        /// `table` (a summary for people) or `json` (every count and example, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        metric: MetricArgs,
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
    /// Mirror to this Google Cloud project instead of the local BigQuery emulator
    /// (credentials: GOOGLE_APPLICATION_CREDENTIALS or application default credentials).
    #[arg(long, value_name = "PROJECT")]
    pub bigquery_project: Option<String>,
    /// Dataset for --bigquery-project.
    #[arg(long, default_value = "mrr_demo")]
    pub bigquery_dataset: String,
    /// Location for --bigquery-project.
    #[arg(long, default_value = "US")]
    pub bigquery_location: String,
    /// Use an already running BigQuery emulator at this REST root instead of starting one.
    #[arg(long, value_name = "URL", conflicts_with = "bigquery_project")]
    pub bigquery_endpoint: Option<String>,
    /// Stop after the ground-truth check: no BigQuery stage.
    #[arg(long)]
    pub skip_bigquery: bool,
    /// Do not open the window at the end (it opens only when a display is available).
    #[arg(long)]
    pub no_window: bool,
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
    /// Generate the account's story up to this later instant and show it as of --now. Two
    /// accounts with the same seed, size and horizon are one timeline seen at two instants
    /// (how `mrr snapshot --from-events` is tested) [default: --now].
    #[arg(long)]
    pub horizon: Option<String>,
    /// Write the objects as a Parquet snapshot in OUT/snapshot/ (what `mrr pull` would make of
    /// the account; read it with `mrr report --snapshot OUT/snapshot`) instead of JSON Lines:
    /// for accounts too large to serve and pull, such as the engine benchmark's.
    #[arg(long)]
    pub parquet_snapshot: bool,
    /// Make every price and amount-off coupon this many times larger (at most 200: Stripe's
    /// amounts have eight digits): an account of large values, past what a scaled INT64 once held.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub amount_scale: u32,
    /// The account's Stripe API version, which its events are rendered in (Stripe renders an
    /// event once, in the version of its day). Before 2025-03-31.basil a subscription carries
    /// its billing period itself, not on its items.
    #[arg(long, default_value = crate::simulate::render::API_VERSION, value_name = "VERSION")]
    pub api_version: String,
    /// Folder to create (must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct SeedStripeArgs {
    /// Stripe test secret key (sk_test_...); a live key is refused.
    #[arg(long, env = "STRIPE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Stripe API base URL (the URL `mrr stripe-server` prints, to seed it instead).
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    pub api_base: String,
    /// Where the run's manifest goes (and is read from with --resume).
    #[arg(long, default_value = "data_manifest.json", value_name = "FILE")]
    pub manifest: PathBuf,
    /// Continue the run recorded in --manifest.
    #[arg(long)]
    pub resume: bool,
    /// Remove what the run in --manifest created: delete its test clocks (with their customers
    /// and subscriptions) and archive its prices and products (Stripe deletes neither).
    #[arg(long, conflicts_with = "resume")]
    pub clean: bool,
    /// Customers to create.
    #[arg(long, default_value_t = 75)]
    pub customers: u64,
    /// Months of billing, ending with last month.
    #[arg(long, default_value_t = 6)]
    pub months: u32,
    /// Test clocks the customers are spread over.
    #[arg(long, default_value_t = 5)]
    pub clocks: u32,
    /// Seed of the plan: the same seed and sizes make the same account.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First month (YYYY-MM) [default: --months before the current month].
    #[arg(long, value_name = "YYYY-MM")]
    pub first_month: Option<String>,
    /// Requests per second (Stripe allows 25 in test mode).
    #[arg(long, default_value_t = 25.0, value_name = "RPS")]
    pub max_rps: f64,
    /// Tries per request before giving up (429, 5xx, timeouts, dropped connections).
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
}

#[derive(Args, Debug)]
pub struct StripeServerArgs {
    /// Account folder written by `mrr simulate`, or a new (missing or empty) folder: a
    /// writable account that `mrr seed-stripe` can fill, kept in that folder across restarts.
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
    /// Status of the --fail-rate failures: 500 or 503 (api_error), 409 (lock_timeout), 424, 400
    /// (invalid_request_error), or 502/504 answered with a proxy's HTML page instead of Stripe's JSON.
    #[arg(long, default_value_t = 500)]
    pub fail_status: u16,
    /// Send `Stripe-Should-Retry: true` or `false` with each --fail-rate failure, as Stripe does
    /// "when it has additional information that the request is retryable".
    #[arg(long, value_name = "BOOL")]
    pub fail_should_retry: Option<bool>,
    /// Answer these lists (comma-separated: events, test_clocks, customers, ...) with Stripe's
    /// 403, as for a restricted key without the permission to read them.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub forbid: Vec<String>,
}
