//! `mrr pull`: a Stripe account, pulled completely and quickly into an immutable
//! Parquet snapshot.
//!
//! Each object type is cut into `created` ranges that are paged in parallel under one
//! global request-rate governor; 429s, 5xx, timeouts and dropped connections are
//! retried with jittered exponential backoff. Every page is appended to a per-slice
//! staging file and checkpointed, so a killed pull resumes (`--resume`) exactly where it
//! stopped and yields the same tables as an uninterrupted one. The snapshot appears by
//! atomic rename only when complete. The API key is never written anywhere.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use stripe::{Client, StripeError};
use stripe_types::RangeQueryTs;
use tokio::sync::Mutex;

use crate::calendar::{format_rfc3339, DAY};
use crate::error::bad_input;
use crate::snapshot::extract;
use crate::snapshot::schema::{self, Row};
use crate::snapshot::writer::{new_id, TableWriters};
use crate::snapshot::{self as snap, Manifest, Snapshot};

/// Stripe's page size ceiling.
const PAGE: i64 = 100;
/// Folder (inside `snapshots/`) of a pull that has not finished.
pub const IN_PROGRESS: &str = ".pull-in-progress";
/// Before Stripe existed: the floor of the search for an account's oldest object.
const STRIPE_EPOCH: i64 = 1_262_304_000; // 2010-01-01

/// Settings of one pull.
#[derive(Clone)]
pub struct PullOptions {
    pub api_key: String,
    pub api_base: String,
    pub data_dir: PathBuf,
    /// Requests per second across all workers (default from the key's mode).
    pub max_rps: Option<f64>,
    pub concurrency: usize,
    pub slices_per_type: usize,
    pub max_attempts: u32,
    pub resume: bool,
    /// The instant the data describes (default: when the pull starts).
    pub as_of: Option<i64>,
    /// Pull events created from here on (default: 30 days before `as_of`).
    pub events_since: Option<i64>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("api_key", &"<redacted>")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// The Stripe object lists a pull walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Customers,
    Products,
    Prices,
    Coupons,
    Subscriptions,
    Invoices,
    Events,
    TestClocks,
}

impl ObjectKind {
    const ALL: [ObjectKind; 8] = [
        ObjectKind::Customers,
        ObjectKind::Products,
        ObjectKind::Prices,
        ObjectKind::Coupons,
        ObjectKind::Subscriptions,
        ObjectKind::Invoices,
        ObjectKind::Events,
        ObjectKind::TestClocks,
    ];
    fn name(self) -> &'static str {
        match self {
            ObjectKind::Customers => "customers",
            ObjectKind::Products => "products",
            ObjectKind::Prices => "prices",
            ObjectKind::Coupons => "coupons",
            ObjectKind::Subscriptions => "subscriptions",
            ObjectKind::Invoices => "invoices",
            ObjectKind::Events => "events",
            ObjectKind::TestClocks => "test_clocks",
        }
    }
    /// Test clocks cannot be filtered by `created`, so they are one slice.
    fn sliceable(self) -> bool {
        self != ObjectKind::TestClocks
    }
}

/// One `created` range of one object type, and how far it got.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SliceState {
    kind: ObjectKind,
    index: usize,
    gte: Option<i64>,
    lt: Option<i64>,
    /// Id of the last object staged (the next page starts after it).
    after: Option<String>,
    /// Bytes of the staging file covered by this checkpoint.
    bytes: u64,
    objects: u64,
    done: bool,
}

impl SliceState {
    fn staging(&self, dir: &Path) -> PathBuf {
        dir.join("staging").join(format!("{}-{:03}.jsonl", self.kind.name(), self.index))
    }
}

/// `checkpoint.json` of a pull in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Checkpoint {
    api_base: String,
    /// The account's id, when the key may read it (`GET /v1/account`).
    #[serde(default)]
    account_id: Option<String>,
    started_at: i64,
    as_of: i64,
    events_since: i64,
    slices: Vec<SliceState>,
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

/// Runs a pull and returns the new snapshot.
pub async fn run(opts: &PullOptions) -> anyhow::Result<PullSummary> {
    if opts.api_key.trim().is_empty() {
        return Err(bad_input("no Stripe API key: pass --api-key or set STRIPE_API_KEY"));
    }
    let live = opts.api_key.starts_with("sk_live_") || opts.api_key.starts_with("rk_live_");
    let rps = opts.max_rps.unwrap_or(if live { 100.0 } else { 25.0 });
    if rps <= 0.0 || !rps.is_finite() {
        return Err(bad_input("--max-rps must be a positive number"));
    }
    let base = opts.api_base.trim_end_matches('/').to_string();
    crate::install_crypto_provider();
    let client = stripe::ClientBuilder::new(opts.api_key.clone())
        .url(format!("{base}/"))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| bad_input(format!("--api-base {base}: {e}")))?;
    let root = snap::snapshots_dir(&opts.data_dir);
    let work = root.join(IN_PROGRESS);
    let fetcher = Fetcher {
        client,
        governor: Governor::new(rps),
        max_attempts: opts.max_attempts.max(1),
        stats: Default::default(),
    };

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
        tracing::info!("resuming the pull started at {}", format_rfc3339(cp.started_at));
        cp
    } else {
        if opts.resume {
            return Err(bad_input(format!("--resume: no interrupted pull in {}", root.display())));
        }
        let started_at = crate::calendar::now();
        let as_of = opts.as_of.unwrap_or(started_at);
        let events_since = opts.events_since.unwrap_or(as_of - 30 * DAY);
        let planning = std::time::Instant::now();
        let account_id = account_id(&fetcher).await;
        let slices = plan(&fetcher, opts.slices_per_type.max(1), events_since).await?;
        request_secs += planning.elapsed().as_secs_f64();
        tracing::info!("planned {} slices in {:.2?}", slices.len(), planning.elapsed());
        std::fs::create_dir_all(work.join("staging")).with_context(|| format!("creating {}", work.display()))?;
        let cp = Checkpoint { api_base: base.clone(), account_id, started_at, as_of, events_since, slices };
        save_checkpoint(&work, &cp)?;
        cp
    };

    let fetching = std::time::Instant::now();
    let before = fetcher.stats.lock().await.0;
    fetch_all(&fetcher, &work, checkpoint.clone(), opts.concurrency.max(1)).await?;
    let (requests, secs) = (fetcher.stats.lock().await.0 - before, fetching.elapsed().as_secs_f64());
    request_secs += secs;
    tracing::info!("fetched in {secs:.2} s: {requests} requests, {:.1} req/s (ceiling {rps})", requests as f64 / secs);
    let writing = std::time::Instant::now();
    let checkpoint: Checkpoint = serde_json::from_slice(&std::fs::read(work.join("checkpoint.json"))?)?;
    let snapshot = finalize(&opts.data_dir, &work, &checkpoint, live)?;
    tracing::info!("wrote the Parquet tables in {:.2?}", writing.elapsed());
    let stats = fetcher.stats.lock().await;
    Ok(PullSummary { snapshot, requests: stats.0, retries: stats.1, request_secs })
}

fn save_checkpoint(work: &Path, cp: &Checkpoint) -> anyhow::Result<()> {
    let tmp = work.join("checkpoint.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(cp)?)?;
    std::fs::rename(&tmp, work.join("checkpoint.json")).context("saving the pull checkpoint")
}

/// Cuts each object type into `created` ranges: a probe page tells small types apart
/// (one slice), a binary search finds the oldest object of large ones. Types are planned
/// concurrently, so the searches overlap under the governor.
async fn plan(f: &Fetcher, per_type: usize, events_since: i64) -> anyhow::Result<Vec<SliceState>> {
    let plans = ObjectKind::ALL.map(|kind| plan_kind(f, kind, per_type, events_since));
    let ranges = futures_util::future::try_join_all(plans).await?;
    let mut slices = Vec::new();
    for (kind, ranges) in ObjectKind::ALL.into_iter().zip(ranges) {
        for (index, (gte, lt)) in ranges.into_iter().enumerate() {
            slices.push(SliceState { kind, index, gte, lt, after: None, bytes: 0, objects: 0, done: false });
        }
    }
    Ok(slices)
}

/// The `created` ranges of one object type: [gte, lt) pairs, oldest first.
async fn plan_kind(
    f: &Fetcher,
    kind: ObjectKind,
    per_type: usize,
    events_since: i64,
) -> anyhow::Result<Vec<(Option<i64>, Option<i64>)>> {
    let floor = if kind == ObjectKind::Events { events_since } else { STRIPE_EPOCH };
    if !kind.sliceable() {
        return Ok(vec![(None, None)]);
    }
    let probe = f.page(kind, Some(floor), None, None, PAGE).await?;
    if per_type == 1 || !probe.has_more {
        return Ok(vec![(Some(floor), None)]);
    }
    let newest = probe.newest_created.expect("a page with more has objects");
    // Smallest t with an object created in [floor, t].
    let (mut lo, mut hi) = (floor, newest);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if f.page(kind, Some(floor), Some(mid + 1), None, 1).await?.count > 0 {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let (start, end, n) = (lo, newest + 1, per_type as i64);
    Ok((0..n)
        .map(|i| {
            let gte = if i == 0 { floor } else { start + (end - start) * i / n };
            let lt = if i == n - 1 { None } else { Some(start + (end - start) * (i + 1) / n) };
            (Some(gte), lt)
        })
        .collect())
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
        let page = f.page(state.kind, state.gte, state.lt, state.after.as_deref(), PAGE).await?;
        let mut rows = page.rows;
        if state.kind == ObjectKind::Invoices {
            for (invoice, last_line, seen) in &page.invoices_with_more_lines {
                rows.extend(f.remaining_lines(invoice, last_line, *seen).await?);
            }
        }
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

/// One page, flattened.
struct Page {
    rows: Vec<Row>,
    count: usize,
    last_id: Option<String>,
    newest_created: Option<i64>,
    has_more: bool,
    /// Invoices whose embedded lines stop before the end: (id, last line id, lines seen).
    invoices_with_more_lines: Vec<(String, String, usize)>,
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

/// Requests with retries under the global governor.
struct Fetcher {
    client: Client,
    governor: Governor,
    max_attempts: u32,
    /// (requests sent, retries)
    stats: Mutex<(u64, u64)>,
}

impl Fetcher {
    /// Runs a request with retries: 429, 5xx, timeouts and connection failures back off
    /// and try again; anything else is a clear, immediate error.
    async fn call<T, Fut>(&self, what: &str, request: impl Fn() -> Fut) -> anyhow::Result<T>
    where
        Fut: std::future::Future<Output = Result<T, StripeError>>,
    {
        let mut last = String::new();
        for attempt in 1..=self.max_attempts {
            self.governor.acquire().await;
            self.stats.lock().await.0 += 1;
            let error = match request().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match &error {
                StripeError::Stripe(_, 401) => {
                    return Err(bad_input("Stripe rejected the API key (401): check --api-key / STRIPE_API_KEY"))
                }
                StripeError::Stripe(err, status) if *status != 429 && *status < 500 => {
                    let message = err.message.clone().unwrap_or_default();
                    return Err(bad_input(format!("{what}: Stripe answered {status}: {message}")));
                }
                StripeError::JSONDeserialize(e) => anyhow::bail!("{what}: unexpected response shape: {e}"),
                StripeError::ConfigError(e) => return Err(bad_input(format!("--api-base: {e}"))),
                StripeError::Stripe(_, status) => last = format!("HTTP {status}"),
                StripeError::ClientError(e) => last = e.clone(),
                StripeError::Timeout => last = "timed out".into(),
            }
            if attempt < self.max_attempts {
                self.stats.lock().await.1 += 1;
                let rate_limited = matches!(error, StripeError::Stripe(_, 429));
                let backoff = backoff(attempt, rate_limited);
                tracing::debug!("{what}: {last}; retry {attempt} in {backoff:?}");
                tokio::time::sleep(backoff).await;
            }
        }
        anyhow::bail!("{what}: giving up after {} attempts (last error: {last})", self.max_attempts)
    }

    async fn page(
        &self,
        kind: ObjectKind,
        gte: Option<i64>,
        lt: Option<i64>,
        after: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<Page> {
        use stripe_billing::invoice::ListInvoice;
        use stripe_billing::subscription::{ListSubscription, ListSubscriptionStatus};
        use stripe_billing::test_helpers_test_clock::ListTestHelpersTestClock;
        use stripe_core::customer::ListCustomer;
        use stripe_core::event::ListEvent;
        use stripe_product::coupon::ListCoupon;
        use stripe_product::price::ListPrice;
        use stripe_product::product::ListProduct;
        let range = RangeQueryTs::Bounds(stripe_types::RangeBoundsTs { gte, lt, ..Default::default() });
        let what = format!("listing {}", kind.name());
        let c = &self.client;
        // One page of a typed list request, after the cursor.
        macro_rules! fetch {
            ($req:expr) => {
                self.call(&what, || {
                    let mut r = $req.limit(limit);
                    if let Some(a) = after {
                        r = r.starting_after(a);
                    }
                    async move { r.send(c).await }
                })
                .await?
            };
        }
        // The page flattened: (objects, has_more, newest created, last id, rows).
        macro_rules! list {
            ($req:expr, $extract:expr) => {{
                let list = fetch!($req);
                let rows: Vec<Row> = list.data.iter().flat_map($extract).collect();
                (
                    list.data.len(),
                    list.has_more,
                    list.data.first().map(|o| o.created),
                    list.data.last().map(|o| o.id.to_string()),
                    rows,
                )
            }};
        }
        let mut more_lines = Vec::new();
        let (count, has_more, newest_created, last_id, rows) = match kind {
            ObjectKind::Customers => list!(ListCustomer::new().created(range), extract::customer),
            ObjectKind::Products => list!(ListProduct::new().created(range), extract::product),
            ObjectKind::Prices => list!(ListPrice::new().created(range), extract::price),
            ObjectKind::Coupons => list!(ListCoupon::new().created(range), extract::coupon),
            ObjectKind::Subscriptions => list!(
                ListSubscription::new()
                    .created(range)
                    .status(ListSubscriptionStatus::All)
                    .expand(vec!["data.discounts".to_string(), "data.items.data.price".to_string()]),
                extract::subscription
            ),
            ObjectKind::Invoices => {
                let list = fetch!(ListInvoice::new().created(range).expand(vec!["data.discounts".to_string()]));
                let mut rows = Vec::new();
                for inv in &list.data {
                    let id = inv.id.as_ref().map(|i| i.to_string()).context("an invoice without an id")?;
                    rows.extend(extract::invoice(inv));
                    rows.extend(inv.lines.data.iter().enumerate().map(|(n, l)| extract::invoice_line(&id, n, l)));
                    if let (true, Some(last)) = (inv.lines.has_more, inv.lines.data.last()) {
                        more_lines.push((id, last.id.to_string(), inv.lines.data.len()));
                    }
                }
                let last = list.data.last().and_then(|o| o.id.as_ref()).map(|i| i.to_string());
                (list.data.len(), list.has_more, list.data.first().map(|o| o.created), last, rows)
            }
            ObjectKind::Events => list!(ListEvent::new().created(range), extract::event),
            ObjectKind::TestClocks => list!(ListTestHelpersTestClock::new(), extract::test_clock),
        };
        Ok(Page { rows, count, last_id, newest_created, has_more, invoices_with_more_lines: more_lines })
    }

    /// Lines of an invoice beyond those it embeds.
    async fn remaining_lines(&self, invoice: &str, last_line: &str, seen: usize) -> anyhow::Result<Vec<Row>> {
        use stripe_billing::invoice_line_item::ListInvoiceInvoiceLineItem;
        let (mut rows, mut after, mut index) = (Vec::new(), last_line.to_string(), seen);
        let what = format!("listing the lines of invoice {invoice}");
        loop {
            let page = self
                .call(&what, || {
                    let r = ListInvoiceInvoiceLineItem::new(invoice).limit(PAGE).starting_after(after.clone());
                    async move { r.send(&self.client).await }
                })
                .await?;
            for line in &page.data {
                rows.push(extract::invoice_line(invoice, index, line));
                index += 1;
            }
            match page.data.last() {
                Some(last) if page.has_more => after = last.id.to_string(),
                _ => return Ok(rows),
            }
        }
    }
}

/// Backoff before retry `attempt` (1-based): exponential, capped, with jitter so parallel
/// workers do not retry in lockstep. Rate limits start higher.
fn backoff(attempt: u32, rate_limited: bool) -> Duration {
    // The governor already spaces requests: a 429 needs only a short pause, errors a longer one.
    let base_ms: u64 = if rate_limited { 100 } else { 250 };
    let cap = base_ms.saturating_mul(1 << (attempt - 1).min(5)).min(8_000);
    let jitter = crate::simulate::rng::Rng::for_stream(
        crate::calendar::now() as u64,
        std::process::id() as u64 ^ attempt as u64,
    )
    .below(cap / 2 + 1);
    Duration::from_millis(cap / 2 + jitter)
}

/// One global request-rate ceiling shared by every worker: requests are spaced evenly.
struct Governor {
    interval: Duration,
    next: Mutex<tokio::time::Instant>,
}

impl Governor {
    fn new(rps: f64) -> Self {
        Governor { interval: Duration::from_secs_f64(1.0 / rps), next: Mutex::new(tokio::time::Instant::now()) }
    }
    async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

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
    let mut seen_discounts = HashSet::new();
    // Newest range first: each slice is newest-first too, so every table comes out in Stripe's
    // own newest-first order whatever the slicing (and so byte-identical across pulls).
    let ordered = ObjectKind::ALL.iter().flat_map(|k| cp.slices.iter().filter(move |s| s.kind == *k).rev());
    for slice in ordered {
        let path = slice.staging(work);
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let reader = BufReader::new(file);
        for line in reader.lines() {
            let row: Row = serde_json::from_str(&line?)?;
            if row.table == "discounts" {
                let Some(schema::Cell::Str(id)) = row.cells.first() else { continue };
                if !seen_discounts.insert(id.clone()) {
                    continue;
                }
            }
            writers.push(row)?;
        }
    }
    let tables = writers.finish()?;
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
    };
    crate::simulate::write_json(&out.join(snap::MANIFEST), &manifest)?;
    let target = root.join(&id);
    std::fs::rename(&out, &target).with_context(|| format!("moving the snapshot into {}", target.display()))?;
    snap::set_latest(data_dir, &id)?;
    std::fs::remove_dir_all(work).with_context(|| format!("removing {}", work.display()))?;
    Snapshot::open(&target)
}
