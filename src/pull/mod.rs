//! `mrr pull`: a Stripe account, pulled completely and quickly into an immutable
//! Parquet snapshot.
//!
//! Completely means what Stripe's plain lists leave out too (`plan`): customers and
//! subscriptions on test clocks, archived prices, inline prices (embedded in items, or
//! retrieved by id when only an invoice line names them), items beyond the first page a
//! subscription embeds, lines beyond the first page an invoice embeds. Each list is cut into
//! `created` ranges paged in parallel under one request-rate governor; transient errors are
//! retried (`fetcher`). Every page is appended to a per-slice staging file and checkpointed,
//! so a killed pull resumes (`--resume`) exactly where it stopped and yields the same tables.
//! The snapshot appears by atomic rename only when complete. The API key is never written
//! anywhere. What a restricted key could not read (events, test clocks) is a warning in the
//! log and in the manifest; anything the metrics need is an error.

pub mod fetcher;
pub mod http;
mod plan;
pub mod refresh;

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::calendar::{format_rfc3339, DAY};
use crate::error::bad_input;
use crate::snapshot::schema::{self, Cell, Row};
use crate::snapshot::writer::{new_id, TableWriters};
use crate::snapshot::{self as snap, Manifest, Snapshot};
pub use fetcher::Forbidden;
use fetcher::{Fetcher, Governor, PAGE};
pub use plan::ObjectKind;
use plan::SliceState;

/// Folder (inside `snapshots/`) of a pull that has not finished.
pub const IN_PROGRESS: &str = ".pull-in-progress";
/// Stripe keeps events for 30 days: a pull never asks for older ones.
pub const EVENT_RETENTION_DAYS: i64 = 30;
/// Prices that invoice lines name but no list returned, retrieved one by one.
const REFERENCED_PRICES: &str = "prices-referenced.jsonl";

/// Settings of one pull.
#[derive(Clone)]
pub struct PullOptions {
    pub api_key: String,
    pub api_base: String,
    /// A connected account to pull through the platform's key (`Stripe-Account`).
    pub connected_account: Option<String>,
    pub data_dir: PathBuf,
    /// Requests per second across all workers (default from the key's mode).
    pub max_rps: Option<f64>,
    pub concurrency: usize,
    pub slices_per_type: usize,
    pub max_attempts: u32,
    pub resume: bool,
    /// The instant the data describes (default: when the pull starts).
    pub as_of: Option<i64>,
    /// Pull events created from here on (default, and earliest: 30 days before `as_of`).
    pub events_since: Option<i64>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("api_key", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("connected_account", &self.connected_account)
            .finish_non_exhaustive()
    }
}

/// `checkpoint.json` of a pull in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Checkpoint {
    api_base: String,
    #[serde(default)]
    connected_account: Option<String>,
    /// The account's id, when the key may read it (`GET /v1/account`).
    #[serde(default)]
    account_id: Option<String>,
    started_at: i64,
    as_of: i64,
    events_since: i64,
    slices: Vec<SliceState>,
    /// What the key could not read (optional objects only).
    #[serde(default)]
    warnings: Vec<String>,
}

/// What a finished pull produced.
#[derive(Debug)]
pub struct PullSummary {
    pub snapshot: Snapshot,
    pub requests: u64,
    pub retries: u64,
    /// Wall time spent requesting (planning and paging, not writing Parquet): the request
    /// rate over it is what a rate-limit ceiling bounds.
    pub request_secs: f64,
}

/// Whether a key is a live-mode key (secret or restricted).
pub fn is_live_key(key: &str) -> bool {
    key.starts_with("sk_live_") || key.starts_with("rk_live_")
}

/// The first instant events are pulled from: the requested one, never before Stripe's
/// retention window counted back from `as_of`; and the warning when it had to move.
pub fn events_start(requested: Option<i64>, as_of: i64) -> (i64, Option<String>) {
    let earliest = as_of - EVENT_RETENTION_DAYS * DAY;
    match requested {
        Some(t) if t < earliest => (
            earliest,
            Some(format!(
                "--events-since {} is more than {EVENT_RETENTION_DAYS} days before {}: Stripe keeps events for \
                 {EVENT_RETENTION_DAYS} days, so events are pulled from {}",
                format_rfc3339(t),
                format_rfc3339(as_of),
                format_rfc3339(earliest)
            )),
        ),
        Some(t) => (t, None),
        None => (earliest, None),
    }
}

/// What every pull starts from: a checked key and a fetcher under the rate ceiling.
struct Connection {
    fetcher: Fetcher,
    /// `--api-base` without its trailing slash.
    api_base: String,
    live: bool,
    rps: f64,
}

/// Checks the key and the flags and builds the client; sends no request.
fn connect(opts: &PullOptions) -> anyhow::Result<Connection> {
    if opts.api_key.trim().is_empty() {
        return Err(bad_input("no Stripe API key: pass --api-key or set STRIPE_API_KEY"));
    }
    let live = is_live_key(&opts.api_key);
    let rps = opts.max_rps.unwrap_or(if live { 100.0 } else { 25.0 });
    if rps <= 0.0 || !rps.is_finite() {
        return Err(bad_input("--max-rps must be a positive number"));
    }
    if let Some(acct) = &opts.connected_account {
        if !acct.starts_with("acct_") || acct.len() <= "acct_".len() {
            return Err(bad_input(format!("--account {acct}: a connected account id starts with acct_")));
        }
    }
    let api_base = opts.api_base.trim_end_matches('/').to_string();
    crate::install_crypto_provider();
    let account = opts.connected_account.as_deref();
    let client = http::StripeHttp::new(&api_base, &opts.api_key, account, Duration::from_secs(30))
        .map_err(|e| bad_input(format!("{e:#}")))?;
    let fetcher = Fetcher {
        client,
        governor: Governor::new(rps),
        max_attempts: opts.max_attempts.max(1),
        stats: Default::default(),
    };
    Ok(Connection { fetcher, api_base, live, rps })
}

/// Runs a pull and returns the new snapshot.
pub async fn run(opts: &PullOptions) -> anyhow::Result<PullSummary> {
    let Connection { fetcher, api_base: base, live, rps } = connect(opts)?;
    let root = snap::snapshots_dir(&opts.data_dir);
    let work = root.join(IN_PROGRESS);
    if root.join(refresh::IN_PROGRESS).join(refresh::CHECKPOINT).exists() {
        return Err(bad_input(format!(
            "an interrupted `mrr pull --since` is waiting in {}: finish it with `mrr pull --since <its base> --resume`, \
             or remove that folder",
            root.join(refresh::IN_PROGRESS).display()
        )));
    }

    let mut request_secs = 0.0;
    let checkpoint = if work.join("checkpoint.json").exists() {
        if !opts.resume {
            return Err(bad_input(format!(
                "an interrupted pull is waiting in {}: run `mrr pull --resume` to finish it, or remove that folder",
                work.display()
            )));
        }
        let cp: Checkpoint = serde_json::from_slice(&std::fs::read(work.join("checkpoint.json"))?)
            .with_context(|| format!("reading {}", work.join("checkpoint.json").display()))?;
        if cp.api_base != base {
            return Err(bad_input(format!("the interrupted pull was from {}, not --api-base {base}", cp.api_base)));
        }
        if cp.connected_account != opts.connected_account {
            return Err(bad_input(format!(
                "the interrupted pull was of account {}, not --account {}",
                cp.connected_account.as_deref().unwrap_or("(the key's own)"),
                opts.connected_account.as_deref().unwrap_or("(the key's own)")
            )));
        }
        tracing::info!("resuming the pull started at {}", format_rfc3339(cp.started_at));
        cp
    } else {
        if opts.resume {
            return Err(bad_input(format!("--resume: no interrupted pull in {}", root.display())));
        }
        let started_at = crate::calendar::now();
        let as_of = opts.as_of.unwrap_or(started_at);
        let (events_since, moved) = events_start(opts.events_since, as_of);
        let planning = std::time::Instant::now();
        let account_id = account_id(&fetcher).await;
        let plan = plan::plan(&fetcher, opts.slices_per_type.max(1), events_since, live).await?;
        request_secs += planning.elapsed().as_secs_f64();
        tracing::info!("planned {} slices in {:.2?}", plan.slices.len(), planning.elapsed());
        let mut warnings = plan.warnings;
        if let Some(moved) = moved {
            tracing::warn!("{moved}");
            warnings.push(moved);
        }
        std::fs::create_dir_all(work.join("staging")).with_context(|| format!("creating {}", work.display()))?;
        let cp = Checkpoint {
            api_base: base.clone(),
            connected_account: opts.connected_account.clone(),
            account_id,
            started_at,
            as_of,
            events_since,
            slices: plan.slices,
            warnings,
        };
        save_checkpoint(&work, &cp)?;
        cp
    };

    let fetching = std::time::Instant::now();
    let before = fetcher.stats.lock().await.0;
    fetch_all(&fetcher, &work, checkpoint.clone(), opts.concurrency.max(1)).await?;
    let checkpoint: Checkpoint = serde_json::from_slice(&std::fs::read(work.join("checkpoint.json"))?)?;
    fetch_referenced_prices(&fetcher, &work, &checkpoint).await?;
    let (requests, secs) = (fetcher.stats.lock().await.0 - before, fetching.elapsed().as_secs_f64());
    request_secs += secs;
    tracing::info!("fetched in {secs:.2} s: {requests} requests, {:.1} req/s (ceiling {rps})", requests as f64 / secs);
    let writing = std::time::Instant::now();
    let snapshot = finalize(&opts.data_dir, &work, &checkpoint, live)?;
    tracing::info!("wrote the Parquet tables in {:.2?}", writing.elapsed());
    let stats = fetcher.stats.lock().await;
    Ok(PullSummary { snapshot, requests: stats.0, retries: stats.1, request_secs })
}

fn save_checkpoint(work: &Path, cp: &Checkpoint) -> anyhow::Result<()> {
    crate::atomic_dir::write_json(&work.join("checkpoint.json"), cp)
}

/// Pages every unfinished slice, `concurrency` at a time.
async fn fetch_all(f: &Fetcher, work: &Path, cp: Checkpoint, concurrency: usize) -> anyhow::Result<()> {
    let shared = Arc::new(Mutex::new(cp.clone()));
    let bars = crate::progress::Group::new();
    let counters: std::collections::HashMap<ObjectKind, indicatif::ProgressBar> = ObjectKind::ALL
        .iter()
        .map(|k| {
            let done: u64 = cp.slices.iter().filter(|s| s.kind == *k).map(|s| s.objects).sum();
            (*k, bars.counter(k.name(), done))
        })
        .collect();
    let pending: Vec<usize> = (0..cp.slices.len()).filter(|i| !cp.slices[*i].done).collect();
    let work = work.to_path_buf();
    let results = futures_util::stream::iter(pending.into_iter().map(|i| {
        let shared = shared.clone();
        let work = work.clone();
        let bar = counters[&cp.slices[i].kind].clone();
        async move { fetch_slice(f, &work, shared, i, &bar).await }
    }))
    .buffer_unordered(concurrency);
    use futures_util::StreamExt;
    let results: Vec<anyhow::Result<()>> = results.collect().await;
    for bar in counters.values() {
        bar.finish_and_clear();
    }
    results.into_iter().collect()
}

async fn fetch_slice(
    f: &Fetcher,
    work: &Path,
    shared: Arc<Mutex<Checkpoint>>,
    i: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let mut state = shared.lock().await.slices[i].clone();
    let path = state.staging(work);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    // Anything written after the last checkpoint is dropped and fetched again.
    file.set_len(state.bytes)?;
    while !state.done {
        let page = f.page(state.kind, &state.scope, (state.gte, state.lt), state.after.as_deref(), PAGE).await?;
        let mut lines = Vec::new();
        for (invoice, last_line, seen) in &page.invoices_with_more_lines {
            lines.push((invoice.clone(), f.remaining_lines(invoice, last_line, *seen).await?));
        }
        let mut items = Vec::new();
        for (subscription, last_item, _) in &page.subscriptions_with_more_items {
            items.push((subscription.clone(), f.remaining_items(subscription, last_item).await?));
        }
        let rows = place_after(place_after(page.rows, "invoice_lines", lines), "subscription_items", items);
        let mut buf = Vec::new();
        for r in &rows {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        file.write_all(&buf)?;
        file.sync_data()?;
        state.bytes += buf.len() as u64;
        state.objects += page.count as u64;
        state.after = page.last_id.or(state.after);
        state.done = !page.has_more;
        bar.inc(page.count as u64);
        let mut cp = shared.lock().await;
        cp.slices[i] = state.clone();
        save_checkpoint(work, &cp)?;
    }
    Ok(())
}

/// Puts the rows fetched beyond an object's page (an invoice's remaining lines, a
/// subscription's remaining items) right after the last of its embedded `table` rows (whose
/// second cell names it), so the staged order, and so the snapshot's bytes, do not depend on
/// where a list's pages happened to end.
fn place_after(rows: Vec<Row>, table: &str, extra: Vec<(String, Vec<Row>)>) -> Vec<Row> {
    if extra.is_empty() {
        return rows;
    }
    let last_of = |parent: &str| {
        rows.iter().rposition(|r| r.table == table && matches!(r.cells.get(1), Some(Cell::Str(p)) if p == parent))
    };
    let mut after: Vec<(usize, Vec<Row>)> =
        extra.into_iter().map(|(parent, more)| (last_of(&parent).unwrap_or(rows.len()), more)).collect();
    after.sort_by_key(|(at, _)| *at);
    let mut out = Vec::with_capacity(rows.len() + after.iter().map(|(_, m)| m.len()).sum::<usize>());
    let mut next = after.into_iter().peekable();
    for (i, row) in rows.into_iter().enumerate() {
        out.push(row);
        while let Some((_, more)) = next.next_if(|(at, _)| *at == i) {
            out.extend(more);
        }
    }
    out.extend(next.flat_map(|(_, more)| more));
    out
}

/// The id (first cell) of a staged row.
fn row_id(row: &Row) -> Option<&str> {
    match row.cells.first() {
        Some(Cell::Str(id)) => Some(id),
        _ => None,
    }
}

/// Every staged row of a finished pull, in the order the tables are written: newest range
/// first within each list (each slice is newest-first too, so every table comes out in
/// Stripe's own newest-first order whatever the slicing), then the prices retrieved by id.
fn staged_files(work: &Path, cp: &Checkpoint) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ObjectKind::ALL
        .iter()
        .flat_map(|k| cp.slices.iter().filter(move |s| s.kind == *k).rev())
        .map(|s| s.staging(work))
        .collect();
    let referenced = work.join("staging").join(REFERENCED_PRICES);
    if referenced.exists() {
        files.push(referenced);
    }
    files
}

fn for_each_staged_row(
    work: &Path,
    cp: &Checkpoint,
    mut each: impl FnMut(Row) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for path in staged_files(work, cp) {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        for line in BufReader::new(file).lines() {
            each(serde_json::from_str(&line?).with_context(|| format!("reading {}", path.display()))?)?;
        }
    }
    Ok(())
}

/// Retrieves, by id, every price an invoice line names that no list and no subscription item
/// returned (the inline price of an item that has since changed), and again every listed
/// tiered price whose currency options came without their tiers (no list includes those,
/// catalogue L10). Recomputed on every run, so a resumed pull repeats only this step's few
/// requests. A price Stripe cannot find is an error naming it and the line: an item is never
/// valued at 0 for want of its price.
async fn fetch_referenced_prices(f: &Fetcher, work: &Path, cp: &Checkpoint) -> anyhow::Result<()> {
    let target = work.join("staging").join(REFERENCED_PRICES);
    if target.exists() {
        std::fs::remove_file(&target)?;
    }
    let mut have = HashSet::new();
    let mut named: BTreeSet<(String, String)> = BTreeSet::new(); // (price, first line naming it)
    let mut tiered = HashSet::new();
    let mut options: BTreeSet<(String, String)> = BTreeSet::new(); // (price, currency)
    let mut with_tiers = HashSet::new(); // (price, currency)
    let str_at = |row: &Row, n: usize| match row.cells.get(n) {
        Some(Cell::Str(v)) => Some(v.clone()),
        _ => None,
    };
    for_each_staged_row(work, cp, |row| {
        let price_and_currency = || str_at(&row, 0).zip(str_at(&row, 1));
        match row.table.as_str() {
            "prices" => {
                have.extend(row_id(&row).map(str::to_string));
                if str_at(&row, 7).as_deref() == Some("tiered") {
                    tiered.extend(row_id(&row).map(str::to_string));
                }
            }
            "price_currency_options" => options.extend(price_and_currency()),
            "price_tiers" => with_tiers.extend(price_and_currency()),
            "invoice_lines" => {
                if let (Some(price), Some(line)) = (str_at(&row, 7), row_id(&row)) {
                    named.insert((price, line.to_string()));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let mut missing: Vec<(String, String)> = Vec::new();
    for (price, line) in named {
        if !have.contains(&price) && missing.last().is_none_or(|(p, _)| *p != price) {
            missing.push((price, line));
        }
    }
    let mut untiered: Vec<String> =
        options.into_iter().filter(|o| tiered.contains(&o.0) && !with_tiers.contains(o)).map(|(p, _)| p).collect();
    untiered.dedup();
    if missing.is_empty() && untiered.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::new();
    let mut stage = |rows: Vec<Row>| -> anyhow::Result<()> {
        for r in &rows {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        Ok(())
    };
    if !missing.is_empty() {
        tracing::info!("retrieving {} prices that invoice lines name but no list returned", missing.len());
    }
    for (price, line) in &missing {
        stage(f.price(price, "which an invoice line names").await.with_context(|| {
            format!("price {price} (named by invoice line {line}) cannot be obtained, so its items cannot be valued")
        })?)?;
    }
    if !untiered.is_empty() {
        tracing::info!("retrieving {} tiered prices for the tiers of their currency options", untiered.len());
    }
    for price in &untiered {
        stage(f.price(price, "for the tiers of its currency options").await.with_context(|| {
            format!("the tiers of price {price}'s currency options cannot be obtained, so its items cannot be valued")
        })?)?;
    }
    let tmp = target.with_extension("tmp");
    std::fs::write(&tmp, buf)?;
    std::fs::rename(&tmp, &target).with_context(|| format!("saving {}", target.display()))
}

/// The id of the account the key belongs to, for the manifest. Restricted keys may not read
/// the account; the pull goes on without it (a bad key fails on the first list instead).
async fn account_id(fetcher: &Fetcher) -> Option<String> {
    #[derive(miniserde::Deserialize)]
    struct AccountRef {
        id: String,
    }
    let c = &fetcher.client;
    let request = || {
        stripe_client_core::RequestBuilder::new(stripe_client_core::StripeMethod::Get, "/account")
            .customize::<AccountRef>()
            .send(c)
    };
    match fetcher.call("reading the account (GET /v1/account)", request).await {
        Ok(account) => Some(account.id),
        Err(e) => {
            tracing::warn!("{e:#}; the snapshot's manifest will have no account id");
            None
        }
    }
}

/// Tables whose rows can arrive more than once (a price from its list and embedded in an
/// item, with its tiers and currency options each time; a discount on a subscription and its
/// invoices; a coupon from its list and expanded in a discount; an object on two overlapping
/// lists, with its items, discounts and pause): the first row of each key
/// ([`schema::key_columns`]) is kept.
const DEDUPLICATED: [&str; 14] = [
    "prices",
    "price_tiers",
    "price_currency_options",
    "discounts",
    "item_discounts",
    "coupons",
    "coupon_currency_options",
    "customers",
    "customer_discounts",
    "subscriptions",
    "subscription_items",
    "subscription_discounts",
    "paused_collections",
    "pending_invoice_items",
];

/// Writes the staged rows as Parquet tables, in plan order, into a new snapshot.
fn finalize(data_dir: &Path, work: &Path, cp: &Checkpoint, live: bool) -> anyhow::Result<Snapshot> {
    let pulled_at = crate::calendar::now();
    let root = snap::snapshots_dir(data_dir);
    let id = new_id(data_dir, pulled_at);
    let out = work.join("snapshot");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;
    let mut writers = TableWriters::create(&out)?;
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for_each_staged_row(work, cp, |row| {
        if DEDUPLICATED.contains(&row.table.as_str()) {
            let Some(key) = schema::row_key(&row) else { return Ok(()) };
            if !seen.insert((row.table.clone(), key)) {
                return Ok(());
            }
        }
        writers.push(row)
    })?;
    let mut tables = writers.finish()?;
    crate::engine::derived::write(&out, &mut tables)?;
    let manifest = Manifest {
        id: id.clone(),
        schema_version: schema::SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        pulled_at: format_rfc3339(pulled_at),
        as_of: format_rfc3339(cp.as_of),
        source: snap::Source {
            api_base: cp.api_base.clone(),
            account_id: cp.account_id.clone(),
            api_version: stripe_shared::version::VERSION.as_str().to_string(),
            livemode: live,
        },
        events_since: format_rfc3339(cp.events_since),
        tables,
        derived_from: None,
        warnings: cp.warnings.clone(),
    };
    crate::atomic_dir::write_json(&out.join(snap::MANIFEST), &manifest)?;
    let target = root.join(&id);
    std::fs::rename(&out, &target).with_context(|| format!("moving the snapshot into {}", target.display()))?;
    snap::set_latest(data_dir, &id)?;
    std::fs::remove_dir_all(work).with_context(|| format!("removing {}", work.display()))?;
    Snapshot::open(&target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_never_asked_for_beyond_stripes_retention() {
        let as_of = 1_800_000_000;
        assert_eq!(events_start(None, as_of), (as_of - 30 * DAY, None));
        assert_eq!(events_start(Some(as_of - DAY), as_of), (as_of - DAY, None));
        let (start, warning) = events_start(Some(as_of - 90 * DAY), as_of);
        assert_eq!(start, as_of - 30 * DAY, "clamped to the retention window");
        assert!(warning.unwrap().contains("Stripe keeps events for 30 days"));
    }

    #[test]
    fn live_keys_are_told_apart() {
        assert!(is_live_key("sk_live_x") && is_live_key("rk_live_x"));
        assert!(!is_live_key("sk_test_x") && !is_live_key("rk_test_x"));
    }
}
