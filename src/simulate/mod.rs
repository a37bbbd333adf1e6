//! `mrr simulate`: a deterministic synthetic Stripe account, written as one JSON
//! Lines file per object type (exactly Stripe's API shape), plus `ground_truth.json`:
//! every metric computed independently from the simulator's own timeline.
//!
//! Customers are generated one at a time from (seed, index), so any size streams to
//! disk in bounded memory. The folder appears atomically when complete.

pub mod catalog;
pub mod events;
pub mod ground_truth;
pub mod invoices;
pub mod model;
pub mod render;
pub mod scenario;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::calendar::{format_rfc3339, Month, DAY};
use crate::rng;
use catalog::Catalog;
use model::TestClock;
pub use scenario::Scenario;

/// The object files of an account folder: (Stripe list path under `/v1/`, file name).
pub const OBJECT_FILES: [(&str, &str); 9] = [
    ("customers", "customers.jsonl"),
    ("products", "products.jsonl"),
    ("prices", "prices.jsonl"),
    ("coupons", "coupons.jsonl"),
    ("subscriptions", "subscriptions.jsonl"),
    ("invoices", "invoices.jsonl"),
    // Pending and invoiced (`invoice` set) alike, as Stripe lists them (catalogue U1).
    ("invoiceitems", "invoiceitems.jsonl"),
    ("events", "events.jsonl"),
    ("test_helpers/test_clocks", "test_clocks.jsonl"),
];

/// Every discount object ever attached (not a Stripe list route; serves `expand[]`).
pub const DISCOUNTS_FILE: &str = "discounts.jsonl";

/// Prices created inline (`price_data`): retrievable by id and embedded in items, but in no
/// price list ("Returns a list of your active prices, excluding inline prices").
pub const INLINE_PRICES_FILE: &str = "prices-inline.jsonl";
/// Coupons deleted after their redemptions: in no list, yet their discounts embed them
/// when expanded (`expand[]=discounts.source.coupon`).
pub const DELETED_COUPONS_FILE: &str = "coupons-deleted.jsonl";
/// Customers the merchant deleted: in no list, retrieved as Stripe's `deleted: true` stub
/// (R2); a snapshot has no row of them, as a pull has none.
pub const DELETED_CUSTOMERS_FILE: &str = "customers-deleted.jsonl";

/// Settings of one simulation.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    pub customers: u64,
    pub months: u32,
    pub seed: u64,
    pub scenario: Scenario,
    /// The account's "now": the current month is measured here and nothing happens after it.
    pub now: i64,
    /// Days of events to keep before `now` (Stripe keeps 30).
    pub event_days: u32,
    /// The account's story is generated up to here and shown as of `now` (None: `now`).
    /// Two accounts with the same seed, size and horizon are one timeline seen at two
    /// instants: what tests of incremental snapshots need.
    pub horizon: Option<i64>,
    /// Write the objects as a Parquet snapshot (`<out>/snapshot/`, what `mrr pull` would make
    /// of the account) instead of JSON Lines: for accounts too large to serve and pull.
    pub parquet_snapshot: bool,
    /// Every price and amount-off coupon this many times larger (1: as is): an account of large
    /// values, for the bounds of BigQuery's INT64.
    pub amount_scale: u32,
    /// The account's API version, which its events are rendered in (`render::API_VERSION`
    /// unless an older account is wanted).
    pub api_version: String,
    pub out: PathBuf,
}

/// `YYYY-MM-DD` or `YYYY-MM-DD.name`, as Stripe names its API versions.
fn is_api_version(v: &str) -> bool {
    let (date, name) = v.split_once('.').unwrap_or((v, "x"));
    crate::calendar::parse_timestamp(date).is_some()
        && date.len() == 10
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase())
}

fn one() -> u32 {
    1
}

/// `account.json`: what the folder holds and the test key that unlocks it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountInfo {
    pub account_id: String,
    /// Test-mode key of this simulated account (`sk_test_…`); not a real secret.
    pub api_key: String,
    pub api_version: String,
    pub now: i64,
    pub now_rfc3339: String,
    pub seed: u64,
    pub scenario: String,
    pub customers: u64,
    pub months: u32,
    pub first_month: String,
    pub event_days: u32,
    /// The instant the story was generated up to (equal to `now` unless --horizon was given).
    #[serde(default)]
    pub horizon: Option<i64>,
    /// Every price and amount-off coupon this many times larger than the standard catalogue's.
    #[serde(default = "one")]
    pub amount_scale: u32,
    pub generated_by: String,
}

impl AccountInfo {
    /// Reads `account.json` from an account folder.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("account.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            crate::error::bad_input(format!("{}: {e} (is this a folder written by `mrr simulate`?)", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| crate::error::bad_input(format!("{}: {e}", path.display())))
    }
}

/// Account-wide context the renderers need.
pub struct Account {
    pub seed: u64,
    pub now: i64,
    pub catalog: Catalog,
    pub clocks: Vec<TestClock>,
}

/// Counts written per file, for the summary.
#[derive(Debug, Default, Serialize)]
pub struct SimulateSummary {
    pub path: PathBuf,
    pub customers: u64,
    pub subscriptions: u64,
    pub invoices: u64,
    pub events: u64,
}

/// Runs a simulation and writes the account folder atomically.
pub fn run(opts: &SimulateOptions) -> anyhow::Result<SimulateSummary> {
    if opts.months == 0 {
        return Err(crate::error::bad_input("--months must be at least 1"));
    }
    if opts.scenario == Scenario::Full && opts.months < 4 {
        return Err(crate::error::bad_input(
            "--scenario full needs --months 4 or more (its edge cases span four months)",
        ));
    }
    let horizon = opts.horizon.unwrap_or(opts.now);
    if horizon < opts.now {
        return Err(crate::error::bad_input("--horizon must not lie before --now"));
    }
    let last = Month::of(opts.now);
    let first = Month::of(horizon).plus(-(opts.months as i64 - 1));
    if last < first {
        return Err(crate::error::bad_input("--now lies before the first simulated month (--horizon minus --months)"));
    }
    if !is_api_version(&opts.api_version) {
        return Err(crate::error::bad_input(format!(
            "--api-version {:?} is not a Stripe API version (YYYY-MM-DD or YYYY-MM-DD.name, e.g. {})",
            opts.api_version,
            render::API_VERSION
        )));
    }
    let seed = opts.seed;
    let catalog = Catalog::new(seed, first.start() - 30 * DAY).scaled(opts.amount_scale)?;
    let clocks = (0..scenario::COHORTS)
        .map(|c| TestClock {
            id: rng::stripe_id("clock", seed, invoices::kind::CLOCK, c),
            name: format!("Cohort {}", c + 1),
            created: first.start(),
            frozen_time: opts.now,
        })
        .collect();
    let acct = Account { seed, now: opts.now, catalog, clocks };
    let generator = scenario::Generator {
        seed,
        now: horizon,
        first_month: first,
        months: opts.months,
        customers: opts.customers,
        catalog: &acct.catalog,
    };

    let dir = crate::atomic_dir::AtomicDir::create(&opts.out)?;
    let mut files = ObjectFiles::create(dir.path(), opts.parquet_snapshot, &acct)?;
    let info = AccountInfo {
        account_id: rng::stripe_id("acct", seed, 0, 0),
        api_key: format!("sk_test_{}", rng::token(seed, 24)),
        api_version: opts.api_version.clone(),
        now: opts.now,
        now_rfc3339: format_rfc3339(opts.now),
        seed,
        scenario: serde_json::to_value(opts.scenario)?.as_str().unwrap_or_default().to_string(),
        customers: opts.customers,
        months: opts.months,
        first_month: first.to_string(),
        event_days: opts.event_days,
        horizon: opts.horizon,
        amount_scale: opts.amount_scale,
        generated_by: format!("mrr {}", env!("CARGO_PKG_VERSION")),
    };
    crate::atomic_dir::write_json(&dir.path().join("account.json"), &info)?;

    let mut truth = ground_truth::GroundTruth::new(first, last, opts.now);
    let event_from = opts.now - opts.event_days as i64 * DAY;
    let edge = if opts.scenario == Scenario::Full { generator.edge_customers() } else { Vec::new() };
    let total = opts.customers + edge.len() as u64;
    let progress = crate::progress::bar(total, "simulating customers");
    let mut emit = |c: model::SimCustomer| -> anyhow::Result<()> {
        if c.created > opts.now {
            return Ok(()); // signs up after `now` (only with a later --horizon)
        }
        files.customer(&acct, &c, event_from, &opts.api_version)?;
        let series = truth.add(&acct.catalog, &c);
        files.files.write_customer_truth(&c, &series, first)?;
        progress.inc(1);
        Ok(())
    };
    for index in 0..opts.customers {
        emit(generator.base_customer(index))?;
    }
    for c in edge {
        emit(c)?;
    }
    progress.finish_and_clear();
    let advances: Vec<_> = acct.clocks.iter().map(events::scheduled_advances).collect();
    files.clock_events(&acct, &advances, event_from, &opts.api_version)?;
    let summary = files.finish(&acct, &info, event_from, opts.out.clone())?;
    let truth = truth.finish();
    let violations = crate::metrics::invariant_violations(&truth.mrr_monthly);
    anyhow::ensure!(violations.is_empty(), "ground truth breaks the movement invariant in {violations:?}");
    crate::atomic_dir::write_json(&dir.path().join("ground_truth.json"), &truth)?;
    dir.commit()?;
    Ok(summary)
}

/// Writes an account's objects as Stripe renders them: the catalogue and clocks first, then
/// each customer with everything it owns, then the coupons (whose `times_redeemed` counts
/// the customers). `mrr simulate` and the writable `mrr stripe-server` both write through it.
pub struct ObjectFiles {
    files: Files,
    redeemed: Vec<u64>,
    summary: SimulateSummary,
    /// `metadata` by object id, for accounts whose objects carry some (the writable server's).
    metadata: std::collections::BTreeMap<String, serde_json::Value>,
}

impl ObjectFiles {
    /// Opens the files in `dir` and writes `acct`'s products, prices and test clocks.
    pub fn create(dir: &Path, parquet: bool, acct: &Account) -> anyhow::Result<Self> {
        Self::with_metadata(dir, parquet, acct, Default::default())
    }

    /// As [`ObjectFiles::create`], giving each object whose id `metadata` holds that `metadata`.
    pub fn with_metadata(
        dir: &Path,
        parquet: bool,
        acct: &Account,
        metadata: std::collections::BTreeMap<String, serde_json::Value>,
    ) -> anyhow::Result<Self> {
        let files = Files::create(dir, parquet)?;
        let redeemed = vec![0; acct.catalog.coupons.len()];
        let mut out = ObjectFiles { files, redeemed, summary: SimulateSummary::default(), metadata };
        for i in 0..acct.catalog.products.len() {
            out.put("products.jsonl", render::product(acct, i))?;
        }
        for p in &acct.catalog.prices {
            out.put(
                if p.inline { INLINE_PRICES_FILE } else { "prices.jsonl" },
                render::price_with_includables(acct, p),
            )?;
        }
        for i in 0..acct.clocks.len() {
            out.put("test_clocks.jsonl", render::test_clock(acct, i))?;
        }
        Ok(out)
    }

    fn put(&mut self, name: &'static str, mut object: serde_json::Value) -> anyhow::Result<()> {
        if let Some(metadata) = object["id"].as_str().and_then(|id| self.metadata.get(id)) {
            object["metadata"] = metadata.clone();
        }
        self.files.write(name, &object)
    }

    /// Writes a customer, its subscriptions, discounts and invoices as they look at
    /// `acct.now`, and its events from `event_from` on, in `api_version`.
    pub fn customer(
        &mut self,
        acct: &Account,
        c: &model::SimCustomer,
        event_from: i64,
        api_version: &str,
    ) -> anyhow::Result<()> {
        let now = acct.now;
        let billing = invoices::customer_billing(c, &acct.catalog, acct.seed, now);
        let invoices = &billing.invoices;
        match c.deleted_at {
            Some(at) if at <= now => self.files.write(DELETED_CUSTOMERS_FILE, &render::deleted_customer(c))?,
            _ => self.put("customers.jsonl", render::customer(acct, c, billing.numbered_by(now), now))?,
        }
        // A customer-level discount is one discount however many subscriptions inherit it.
        let mut discounts = std::collections::HashSet::new();
        for (s, sub) in c.subscriptions.iter().enumerate().filter(|(_, sub)| sub.start <= now) {
            let latest = invoices.iter().rfind(|i| i.subscription == Some(s)).map(|i| i.id.as_str());
            self.put("subscriptions.jsonl", render::subscription(acct, c, sub, latest, now))?;
            for d in sub.discounts().filter(|d| d.start <= now && discounts.insert(d.id.clone())) {
                self.redeemed[d.coupon] += 1;
                self.files.write(DISCOUNTS_FILE, &render::discount(acct, c, sub, d))?;
            }
        }
        // A deleted draft is in no list (Delete a draft invoice, U2).
        for inv in invoices.iter().filter(|i| i.deleted_at.is_none()) {
            self.files.write("invoices.jsonl", &render::invoice(acct, c, inv, now))?;
        }
        // A deleted item is in no list (Delete an invoice item, U1).
        for item in billing.invoice_items.iter().filter(|i| i.deleted_at.is_none()) {
            let object = render::invoice_item(acct, c, item, item.invoice.as_deref());
            self.files.write("invoiceitems.jsonl", &object)?;
        }
        let events = events::customer_events(acct, c, &billing, event_from);
        self.events(&events, api_version)?;
        self.summary.customers += 1;
        self.summary.subscriptions += c.subscriptions.iter().filter(|s| s.start <= now).count() as u64;
        self.summary.invoices += invoices.len() as u64;
        self.summary.events += events.len() as u64;
        Ok(())
    }

    /// Writes the test clocks' own events from `event_from` on, in `api_version`: each clock's
    /// creation and `advances` (one list per clock).
    pub fn clock_events(
        &mut self,
        acct: &Account,
        advances: &[Vec<events::ClockAdvance>],
        event_from: i64,
        api_version: &str,
    ) -> anyhow::Result<()> {
        let events = events::clock_events(acct, advances, event_from);
        self.events(&events, api_version)?;
        self.summary.events += events.len() as u64;
        Ok(())
    }

    fn events(&mut self, events: &[serde_json::Value], api_version: &str) -> anyhow::Result<()> {
        for e in events {
            if api_version == render::API_VERSION {
                self.files.write("events.jsonl", e)?;
            } else {
                self.files.write("events.jsonl", &render::in_api_version(e.clone(), api_version))?;
            }
        }
        Ok(())
    }

    /// Writes the coupons and flushes every file (a snapshot gets its manifest).
    pub fn finish(
        mut self,
        acct: &Account,
        info: &AccountInfo,
        event_from: i64,
        path: PathBuf,
    ) -> anyhow::Result<SimulateSummary> {
        for (coupon, count) in acct.catalog.coupons.iter().zip(&self.redeemed) {
            let file = if coupon.deleted { DELETED_COUPONS_FILE } else { "coupons.jsonl" };
            self.files.write(file, &render::coupon(acct, coupon, *count))?;
        }
        self.files.finish(info, event_from)?;
        Ok(SimulateSummary { path, ..self.summary })
    }
}

/// Buffered JSON Lines writers, one per file; or, with `--parquet-snapshot`, one snapshot
/// the objects go straight into, through the pull's own extractors.
struct Files {
    dir: PathBuf,
    open: std::collections::BTreeMap<&'static str, BufWriter<std::fs::File>>,
    snapshot: Option<SnapshotSink>,
}

/// The tables of `<account>/snapshot/`, and the discounts already written (a discount is
/// listed on its own and expanded on its subscription or item: one row in each table).
struct SnapshotSink {
    writers: crate::snapshot::writer::TableWriters,
    discounts: std::collections::HashSet<(String, String)>,
}

/// Where `--parquet-snapshot` writes the snapshot, inside the account folder.
pub const SNAPSHOT_DIR: &str = "snapshot";

impl Files {
    fn create(dir: &Path, parquet: bool) -> anyhow::Result<Self> {
        let mut open = std::collections::BTreeMap::new();
        if parquet {
            let out = dir.join(SNAPSHOT_DIR);
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let writers = crate::snapshot::writer::TableWriters::create(&out)?;
            let snapshot = Some(SnapshotSink { writers, discounts: Default::default() });
            return Ok(Files { dir: dir.to_path_buf(), open, snapshot });
        }
        let names = OBJECT_FILES.iter().map(|(_, f)| *f).chain([
            DISCOUNTS_FILE,
            INLINE_PRICES_FILE,
            DELETED_COUPONS_FILE,
            DELETED_CUSTOMERS_FILE,
            "ground_truth_customers.jsonl",
        ]);
        for name in names {
            let path = dir.join(name);
            let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            open.insert(name, BufWriter::with_capacity(1 << 20, file));
        }
        Ok(Files { dir: dir.to_path_buf(), open, snapshot: None })
    }

    fn write(&mut self, name: &'static str, value: &serde_json::Value) -> anyhow::Result<()> {
        if let Some(sink) = &mut self.snapshot {
            if name == "ground_truth_customers.jsonl" {
                return Ok(()); // a debugging aid sized like the account: not for snapshots
            }
            if name == DELETED_CUSTOMERS_FILE {
                return Ok(()); // a pull lists no deleted customer (R2)
            }
            if name == "invoiceitems.jsonl" && !value["invoice"].is_null() {
                return Ok(()); // a snapshot holds what `pending=true` lists, as a pull does
            }
            for row in crate::snapshot::extract::json_rows(value)? {
                if matches!(row.table.as_str(), "discounts" | "item_discounts") {
                    let Some(crate::snapshot::schema::Cell::Str(id)) = row.cells.first() else { continue };
                    if !sink.discounts.insert((row.table.clone(), id.clone())) {
                        continue;
                    }
                }
                sink.writers.push(row)?;
            }
            return Ok(());
        }
        let w = self.open.get_mut(name).expect("known file");
        serde_json::to_writer(&mut *w, value)?;
        w.write_all(b"\n").with_context(|| format!("writing {}", self.dir.join(name).display()))
    }

    /// Non-zero months of a customer's MRR, for debugging a metric down to one customer.
    fn write_customer_truth(
        &mut self,
        c: &model::SimCustomer,
        s: &crate::metrics::CustomerSeries,
        first: Month,
    ) -> anyhow::Result<()> {
        for (i, cents) in s.cents.iter().enumerate() {
            let month = s.first.plus(i as i64);
            if *cents != 0 && month >= first {
                let row = serde_json::json!({"customer": c.id, "month": month.to_string(), "currency": c.currency, "mrr": cents});
                self.write("ground_truth_customers.jsonl", &row)?;
            }
        }
        Ok(())
    }

    /// Flushes every file; a snapshot gets its manifest (`info` says what it describes).
    fn finish(mut self, info: &AccountInfo, events_since: i64) -> anyhow::Result<()> {
        if let Some(sink) = self.snapshot.take() {
            let mut tables = sink.writers.finish()?;
            crate::engine::derived::write(&self.dir.join(SNAPSHOT_DIR), &mut tables)?;
            let manifest = crate::snapshot::Manifest {
                id: format!("simulated-{}", info.account_id),
                schema_version: crate::snapshot::schema::SCHEMA_VERSION,
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                pulled_at: format_rfc3339(crate::calendar::now()),
                as_of: info.now_rfc3339.clone(),
                source: crate::snapshot::Source {
                    api_base: "mrr simulate --parquet-snapshot".to_string(),
                    account_id: Some(info.account_id.clone()),
                    api_version: info.api_version.clone(),
                    livemode: false,
                },
                events_since: format_rfc3339(events_since),
                tables,
                derived_from: None,
                warnings: Vec::new(),
            };
            crate::atomic_dir::write_json(&self.dir.join(SNAPSHOT_DIR).join(crate::snapshot::MANIFEST), &manifest)?;
        }
        for (name, w) in &mut self.open {
            w.flush().with_context(|| format!("writing {}", self.dir.join(name).display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_versions_are_a_date_and_an_optional_lowercase_name() {
        for ok in ["2026-09-30.endive", "2024-06-20", "2025-03-31.basil"] {
            assert!(super::is_api_version(ok), "{ok}");
        }
        for bad in ["", "latest", "2024-13-01", "2024-06-20.", "2024-06-20.Basil", "24-06-20"] {
            assert!(!super::is_api_version(bad), "{bad}");
        }
    }
}
