//! `mrr pull --since BASE`: a snapshot brought up to date from Stripe's Events API, in a
//! fraction of a full pull's requests.
//!
//! Reads every event created since the base snapshot's `as_of` (`GET /v1/events`, all pages).
//! Each object those events name gets its current state in one of two ways. From its newest
//! event, when that event carries it whole and current: rendered in the API version `mrr`
//! reads, no list cut short (`has_more`), nothing that needs an expansion an event never
//! has (a subscription's or invoice's discounts, a price's tiers and currency options), and
//! no other event of the object in the same second with a different state (Stripe does not
//! say how events of one second are ordered). Otherwise it is retrieved by id, with the same
//! expansions and complete child lists as a full pull. `--refetch-all` retrieves every
//! object. Each state replaces the object's rows in a copy of the base (`snapshot::derive`,
//! shared with `--from-events`); an object Stripe no longer has is dropped. Coupons and test
//! clocks are listed again in full: their `times_redeemed` and `frozen_time` change without
//! an event of their own. Refused before any request when the events it needs are gone
//! (Stripe keeps them 30 days) or the base cannot be brought up to date (another API
//! version, live vs test, an older schema), and on the first request when the key belongs
//! to another account. Staged and checkpointed like a full pull, so `--resume` continues
//! after a crash without asking twice.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::fetcher::{Fetcher, Forbidden, PAGE};
use super::plan::{ObjectKind, Scope};
use super::{Connection, PullOptions, EVENT_RETENTION_DAYS};
use crate::calendar::{format_rfc3339, DAY};
use crate::error::bad_input;
use crate::snapshot::derive::{Changes, DerivedFrom, Kind};
use crate::snapshot::schema::{Cell, Row, SCHEMA_VERSION};
use crate::snapshot::{self as snap, Snapshot};

/// Folder (inside `snapshots/`) of a refresh that has not finished.
pub const IN_PROGRESS: &str = ".refresh-in-progress";
pub const CHECKPOINT: &str = "checkpoint.json";
/// The events read, one snapshot row per line.
const EVENTS: &str = "events.jsonl";
/// The objects retrieved, one [`Fetched`] per line.
const OBJECTS: &str = "objects.jsonl";

/// `checkpoint.json` of a refresh in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Checkpoint {
    api_base: String,
    #[serde(default)]
    connected_account: Option<String>,
    /// The base snapshot's id.
    base: String,
    as_of: i64,
    started_at: i64,
    account_id: Option<String>,
    /// The last event staged: the next page starts after it.
    events_after: Option<String>,
    /// Bytes of the events file covered by this checkpoint.
    events_bytes: u64,
    events_done: bool,
}

/// One object as retrieved: its rows, or `None` when Stripe no longer has it.
#[derive(Debug, Serialize, Deserialize)]
struct Fetched {
    kind: Kind,
    id: String,
    rows: Option<Vec<Row>>,
    /// Prices a subscription's items embed (added when the snapshot has no better copy).
    #[serde(default)]
    embedded_prices: Vec<Row>,
}

/// What a refresh did.
#[derive(Debug)]
pub struct RefreshSummary {
    pub snapshot: Snapshot,
    pub base: String,
    /// Events created after the base's `as_of`.
    pub events: u64,
    /// Objects retrieved by id (those the events name, and prices their lines name).
    pub objects: u64,
    /// Objects whose newest event carried them whole.
    pub from_events: u64,
    /// Objects Stripe no longer has, dropped.
    pub deleted: u64,
    pub requests: u64,
    pub retries: u64,
    /// Wall time spent requesting.
    pub request_secs: f64,
}

/// Brings the snapshot `since` (an id, `latest` or a folder) up to `--as-of`.
pub async fn run(opts: &PullOptions, since: &str, refetch_all: bool) -> anyhow::Result<RefreshSummary> {
    let conn = super::connect(opts)?;
    let base = snap::resolve(&opts.data_dir, since).with_context(|| format!("--since {since}"))?;
    let root = snap::snapshots_dir(&opts.data_dir);
    let work = root.join(IN_PROGRESS);
    if root.join(super::IN_PROGRESS).join("checkpoint.json").exists() {
        return Err(bad_input(format!(
            "an interrupted full pull is waiting in {}: finish it with `mrr pull --resume`, or remove that folder",
            root.join(super::IN_PROGRESS).display()
        )));
    }
    let f = &conn.fetcher;
    let started = std::time::Instant::now();
    let cp = if work.join(CHECKPOINT).exists() {
        if !opts.resume {
            return Err(bad_input(format!(
                "an interrupted `mrr pull --since` is waiting in {}: add --resume to finish it, or remove that folder",
                work.display()
            )));
        }
        let cp: Checkpoint = serde_json::from_slice(&std::fs::read(work.join(CHECKPOINT))?)
            .with_context(|| format!("reading {}", work.join(CHECKPOINT).display()))?;
        if cp.base != base.manifest.id {
            return Err(bad_input(format!(
                "the interrupted refresh starts from snapshot {}, not --since {since} ({})",
                cp.base, base.manifest.id
            )));
        }
        if cp.api_base != conn.api_base || cp.connected_account != opts.connected_account {
            return Err(bad_input(format!(
                "the interrupted refresh was from {} (account {}), not this --api-base / --account",
                cp.api_base,
                cp.connected_account.as_deref().unwrap_or("of the key")
            )));
        }
        tracing::info!("resuming the refresh of {} started at {}", cp.base, format_rfc3339(cp.started_at));
        cp
    } else {
        if opts.resume {
            return Err(bad_input(format!("--resume: no interrupted `mrr pull --since` in {}", root.display())));
        }
        let started_at = crate::calendar::now();
        let as_of = opts.as_of.unwrap_or(started_at);
        check_base(&base, &conn, as_of)?;
        let account_id = super::account_id(f).await;
        check_account(&base, account_id.as_deref())?;
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let cp = Checkpoint {
            api_base: conn.api_base.clone(),
            connected_account: opts.connected_account.clone(),
            base: base.manifest.id.clone(),
            as_of,
            started_at,
            account_id,
            events_after: None,
            events_bytes: 0,
            events_done: false,
        };
        save_checkpoint(&work, &cp)?;
        cp
    };

    let cp = read_events(f, &work, cp, base.as_of()?).await?;
    // The events, and what their updates changed (`event_changes`, staged beside them).
    let (events, event_changes): (Vec<Row>, Vec<Row>) =
        staged::<Row>(&work.join(EVENTS))?.into_iter().partition(|r| r.table == "events");
    let (from_events, to_retrieve) = states_from_events(&events, refetch_all)?;
    tracing::info!(
        "{} events since {} name {} objects: {} carried whole by their newest event, {} to retrieve",
        events.len(),
        base.manifest.as_of,
        from_events.len() + to_retrieve.len(),
        from_events.len(),
        to_retrieve.len()
    );
    let mut fetched = retrieve_all(f, &work, to_retrieve, opts.concurrency.max(1)).await?;
    // The base's prices: those new lines name beyond them are retrieved; embedded ones are new.
    let base_prices = column_values(&base, "prices", "id")?;
    let referenced = prices_referenced(&base_prices, fetched.iter().chain(&from_events));
    if !referenced.is_empty() {
        tracing::info!("retrieving {} prices that new lines or items name and the snapshot lacks", referenced.len());
        fetched = retrieve_all(f, &work, referenced.into_iter().map(|p| (Kind::Price, p)).collect(), 1).await?;
    }
    let coupons = f.list_all(ObjectKind::Coupons).await?;
    let clocks = if conn.live {
        None // test helpers exist in test mode only
    } else {
        match f.list_all(ObjectKind::TestClocks).await {
            Ok(rows) => Some(rows),
            Err(e) if e.downcast_ref::<Forbidden>().is_some() => {
                tracing::warn!("{e:#}; the base snapshot's test clocks are kept as they were");
                None
            }
            Err(e) => return Err(e),
        }
    };
    // Pending invoice items come and go (a renewal invoices them) and are few: listed again.
    let pending_items = match f.list_all(ObjectKind::InvoiceItems).await {
        Ok(rows) => Some(rows),
        Err(e) if e.downcast_ref::<Forbidden>().is_some() => {
            tracing::warn!("{e:#}; the base snapshot's pending invoice items are kept as they were");
            None
        }
        Err(e) => return Err(e),
    };
    let request_secs = started.elapsed().as_secs_f64();

    let mut have_prices = base_prices;
    have_prices.extend(fetched.iter().filter(|o| o.kind == Kind::Price).map(|o| o.id.clone()));
    let (refetched, carried, events_read) = (fetched.len() as u64, from_events.len() as u64, events.len() as u64);
    let (first, last) = oldest_and_newest(&events);
    let mut changes = Changes::default();
    // Retrieved states last: a discount both carry keeps the retrieved (expanded) copy.
    for o in from_events.into_iter().chain(fetched) {
        for row in o.embedded_prices {
            let id = match (row.table.as_str(), row.cells.first()) {
                ("prices", Some(Cell::Str(id))) => id.clone(),
                _ => continue,
            };
            if have_prices.insert(id) {
                changes.add(vec![row]);
            }
        }
        changes.object(o.kind, &o.id, o.rows, true);
    }
    changes.rows_by_id(events);
    changes.rows_by_id(event_changes);
    // Coupons by id, not relisted: a deleted coupon, in no list, keeps the row its discounts
    // need (D1).
    changes.rows_by_id(coupons);
    if let Some(clocks) = clocks {
        changes.relist("test_clocks", clocks);
    }
    if let Some(items) = pending_items {
        changes.relist("pending_invoice_items", items);
    }
    let deleted = changes.deleted;
    let mut source = base.manifest.source.clone();
    source.account_id = cp.account_id.clone().or(source.account_id);
    let derived_from = DerivedFrom {
        base: base.manifest.id.clone(),
        events_applied: events_read,
        first_event: first,
        last_event: last,
        objects_refetched: Some(refetched),
        objects_from_events: Some(carried),
    };
    let snapshot = changes.write(&opts.data_dir, &base, cp.as_of, source, derived_from)?;
    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    let stats = f.stats.lock().await;
    Ok(RefreshSummary {
        snapshot,
        base: base.manifest.id.clone(),
        events: events_read,
        objects: refetched,
        from_events: carried,
        deleted,
        requests: stats.0,
        retries: stats.1,
        request_secs,
    })
}

/// Refusals that need no request: the base must be one this refresh can bring up to date.
fn check_base(base: &Snapshot, conn: &Connection, as_of: i64) -> anyhow::Result<()> {
    let m = &base.manifest;
    let full_pull = "run a full `mrr pull` instead";
    let base_as_of = base.as_of()?;
    if as_of < base_as_of {
        return Err(bad_input(format!(
            "--as-of {} lies before the base snapshot {}'s as_of {}",
            format_rfc3339(as_of),
            m.id,
            m.as_of
        )));
    }
    if as_of - base_as_of > EVENT_RETENTION_DAYS * DAY {
        return Err(bad_input(format!(
            "snapshot {} describes {}, more than {EVENT_RETENTION_DAYS} days before {}: Stripe keeps events for \
             {EVENT_RETENTION_DAYS} days, so the changes since cannot all be read; {full_pull}",
            m.id,
            m.as_of,
            format_rfc3339(as_of)
        )));
    }
    if m.schema_version < SCHEMA_VERSION {
        return Err(bad_input(format!(
            "snapshot {} has schema version {} and this mrr writes {SCHEMA_VERSION} (tables it lacks are not in \
             any event); {full_pull}",
            m.id, m.schema_version
        )));
    }
    let ours = stripe_shared::version::VERSION.as_str();
    if m.source.api_version != ours {
        return Err(bad_input(format!(
            "snapshot {} was pulled in Stripe API version {}, and this mrr reads {ours}: its unchanged objects \
             would keep the older shape; {full_pull}",
            m.id, m.source.api_version
        )));
    }
    if m.source.livemode != conn.live {
        let mode = |live: bool| if live { "live" } else { "test" };
        return Err(bad_input(format!(
            "snapshot {} holds {} mode data and the key is a {} mode key: they are different accounts' data; {full_pull}",
            m.id,
            mode(m.source.livemode),
            mode(conn.live)
        )));
    }
    // Without the account's id on record, the address is all there is to go by.
    if m.source.account_id.is_none() && m.source.api_base != conn.api_base {
        return Err(bad_input(format!(
            "snapshot {} was pulled from {}, not --api-base {}; {full_pull}",
            m.id, m.source.api_base, conn.api_base
        )));
    }
    Ok(())
}

/// The key must belong to the account the base was pulled from (`GET /v1/account`).
fn check_account(base: &Snapshot, account_id: Option<&str>) -> anyhow::Result<()> {
    match (base.manifest.source.account_id.as_deref(), account_id) {
        (Some(theirs), Some(ours)) if theirs != ours => Err(bad_input(format!(
            "snapshot {} is of Stripe account {theirs}, and the key reads account {ours}; run a full `mrr pull` \
             for that account",
            base.manifest.id
        ))),
        (Some(theirs), None) => {
            tracing::warn!("the key may not read its account, so it cannot be checked against {theirs}");
            Ok(())
        }
        _ => Ok(()),
    }
}

fn save_checkpoint(work: &Path, cp: &Checkpoint) -> anyhow::Result<()> {
    crate::atomic_dir::write_json(&work.join(CHECKPOINT), cp)
}

/// Pages `GET /v1/events` from the base's `as_of` to `--as-of`, checkpointing every page.
/// Events from the base's very second are read again: a change in that second may have
/// come after the base read its object, and reading it twice is harmless.
async fn read_events(f: &Fetcher, work: &Path, mut cp: Checkpoint, base_as_of: i64) -> anyhow::Result<Checkpoint> {
    let path = work.join(EVENTS);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    // Anything written after the last checkpoint is dropped and read again.
    file.set_len(cp.events_bytes)?;
    let bar = crate::progress::Group::new().counter("events", 0);
    while !cp.events_done {
        let range = (Some(base_as_of), Some(cp.as_of + 1));
        let page =
            f.page(ObjectKind::Events, &Scope::Plain, range, cp.events_after.as_deref(), PAGE).await.map_err(|e| {
                match e.downcast_ref::<Forbidden>() {
                    Some(_) => bad_input(format!(
                        "{e:#}: `mrr pull --since` reads the account's events; give the key that permission, or run a \
                     full `mrr pull`"
                    )),
                    None => e,
                }
            })?;
        let mut buf = Vec::new();
        for r in &page.rows {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        file.write_all(&buf)?;
        file.sync_data()?;
        bar.inc(page.count as u64);
        cp.events_bytes += buf.len() as u64;
        cp.events_after = page.last_id.or(cp.events_after);
        cp.events_done = !page.has_more;
        save_checkpoint(work, &cp)?;
    }
    bar.finish_and_clear();
    Ok(cp)
}

/// Every complete JSON line of a staging file; a torn last line (a crash mid-write) is cut off.
fn staged<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let Ok(file) = std::fs::File::open(path) else { return Ok(Vec::new()) };
    let (mut out, mut good) = (Vec::new(), 0u64);
    for line in BufReader::new(file).split(b'\n') {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        match serde_json::from_slice(&line) {
            Ok(v) => {
                out.push(v);
                good += line.len() as u64 + 1;
            }
            Err(_) => break,
        }
    }
    std::fs::OpenOptions::new().write(true).open(path)?.set_len(good)?;
    Ok(out)
}

fn text(row: &Row, column: usize) -> Option<&str> {
    match row.cells.get(column) {
        Some(Cell::Str(s)) => Some(s),
        _ => None,
    }
}

/// An object the events name.
type ObjectKey = (Kind, String);

/// The newest event (or events, in one second) of one object.
struct Newest {
    created: i64,
    /// Indexes of its events in that second.
    events: Vec<usize>,
    /// A discount event names it: its discounts need an expansion no event has.
    retrieve: bool,
}

/// The objects the events name, split into those whose newest event carries them whole and
/// current (their state, from the event) and those to retrieve by id. A discount has no
/// endpoint of its own: its subscription (or, for a customer's discount, its customer) is
/// retrieved instead.
fn states_from_events(events: &[Row], refetch_all: bool) -> anyhow::Result<(Vec<Fetched>, BTreeSet<ObjectKey>)> {
    let data = |e: &Row| -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(text(e, 6).unwrap_or("null"))
            .with_context(|| format!("event {}: its data is not JSON", text(e, 0).unwrap_or("?")))
    };
    let mut newest: BTreeMap<ObjectKey, Newest> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let (Some(kind), Some(object), Some(Cell::I64(created))) = (text(e, 1), text(e, 4), e.cells.get(2)) else {
            continue;
        };
        let Some((kind, _)) = Kind::of(kind) else { continue };
        let (key, retrieve) = if kind == Kind::Discount {
            let data = data(e)?;
            let discount = &data["object"];
            match (discount["subscription"].as_str(), discount["customer"].as_str()) {
                (Some(sub), _) => ((Kind::Subscription, sub.to_string()), true),
                (None, Some(customer)) => ((Kind::Customer, customer.to_string()), true),
                (None, None) => continue,
            }
        } else {
            ((kind, object.to_string()), false)
        };
        let n = newest.entry(key).or_insert(Newest { created: *created, events: Vec::new(), retrieve: false });
        n.retrieve |= retrieve;
        if retrieve {
            continue; // the discount event is not a state of its parent
        }
        if *created > n.created || n.events.is_empty() {
            *n = Newest { created: *created, events: vec![i], retrieve: n.retrieve };
        } else if *created == n.created {
            n.events.push(i);
        }
    }
    let (mut carried, mut to_retrieve) = (Vec::new(), BTreeSet::new());
    for ((kind, id), n) in newest {
        let state = if refetch_all || n.retrieve || n.events.is_empty() {
            None
        } else {
            carried_state(kind, &id, &n.events.iter().map(|i| &events[*i]).collect::<Vec<_>>(), &data)?
        };
        match state {
            Some(state) => carried.push(state),
            None => {
                to_retrieve.insert((kind, id));
            }
        }
    }
    Ok((carried, to_retrieve))
}

/// The object's state from its newest events (all of one second), when they agree and carry
/// it whole in the API version `mrr` reads; `None` when it must be retrieved.
fn carried_state(
    kind: Kind,
    id: &str,
    newest: &[&Row],
    data: &dyn Fn(&Row) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<Option<Fetched>> {
    let ours = stripe_shared::version::VERSION.as_str();
    if newest.iter().any(|e| text(e, 3) != Some(ours)) {
        return Ok(None);
    }
    let states = newest.iter().map(|e| data(e)).collect::<anyhow::Result<Vec<_>>>()?;
    if states.iter().any(|s| s["object"] != states[0]["object"]) {
        return Ok(None); // several states in one second: which is last is not said
    }
    let deletes = newest.iter().any(|e| text(e, 1).and_then(Kind::of).is_some_and(|(_, deletes)| deletes));
    if deletes {
        return Ok(Some(Fetched { kind, id: id.to_string(), rows: None, embedded_prices: Vec::new() }));
    }
    let object = &states[0]["object"];
    let empty = |o: &serde_json::Value| o["discounts"].as_array().is_none_or(|a| a.is_empty());
    // Discounts in an event are ids, on the object and on its items or lines (D7) alike.
    let undiscounted = |list: &str| empty(object) && object[list]["data"].as_array().into_iter().flatten().all(empty);
    let whole = match kind {
        Kind::Customer | Kind::Product | Kind::Coupon | Kind::TestClock => true,
        Kind::Subscription => object["items"]["has_more"] != true && undiscounted("items"),
        Kind::Invoice => object["lines"]["has_more"] != true && undiscounted("lines"),
        // An event's price lacks its tiers and currency options; a discount has no state of its own.
        Kind::Price | Kind::Discount => false,
    };
    if !whole {
        return Ok(None);
    }
    let Ok(rows) = crate::snapshot::extract::json_rows(object) else { return Ok(None) };
    let mut embedded_prices = Vec::new();
    if kind == Kind::Subscription {
        for item in object["items"]["data"].as_array().into_iter().flatten() {
            let Ok(price) = crate::snapshot::extract::json_rows(&item["price"]) else { return Ok(None) };
            embedded_prices.extend(price);
        }
    }
    Ok(Some(Fetched { kind, id: id.to_string(), rows: Some(rows), embedded_prices }))
}

/// The objects already retrieved (staged), and the rest of `wanted` retrieved now,
/// `concurrency` at a time under the governor, each staged as it arrives.
async fn retrieve_all(
    f: &Fetcher,
    work: &Path,
    wanted: BTreeSet<ObjectKey>,
    concurrency: usize,
) -> anyhow::Result<Vec<Fetched>> {
    use futures_util::StreamExt;
    let path = work.join(OBJECTS);
    let mut done: Vec<Fetched> = staged(&path)?;
    let have: HashSet<ObjectKey> = done.iter().map(|o| (o.kind, o.id.clone())).collect();
    let pending: Vec<ObjectKey> = wanted.into_iter().filter(|k| !have.contains(k)).collect();
    if pending.is_empty() {
        return Ok(done);
    }
    let file = std::sync::Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(&path)?);
    let bar = crate::progress::Group::new().counter("objects", have.len() as u64);
    let results = futures_util::stream::iter(pending.into_iter().map(|(kind, id)| {
        let (file, bar) = (&file, &bar);
        async move {
            let (rows, embedded_prices) = match f.object(kind, &id).await? {
                Some((rows, prices)) => (Some(rows), prices),
                None => (None, Vec::new()),
            };
            let o = Fetched { kind, id, rows, embedded_prices };
            let mut line = serde_json::to_vec(&o)?;
            line.push(b'\n');
            let mut file = file.lock().expect("no writer panics");
            file.write_all(&line)?;
            file.sync_data()?;
            bar.inc(1);
            anyhow::Ok(o)
        }
    }))
    .buffer_unordered(concurrency)
    .collect::<Vec<_>>()
    .await;
    bar.finish_and_clear();
    for r in results {
        done.push(r?);
    }
    Ok(done)
}

/// Prices that retrieved invoice lines or subscription items name and neither the base, a
/// retrieval nor an item's embedded copy holds (the inline price of an item since changed).
fn prices_referenced<'a>(
    base_prices: &HashSet<String>,
    fetched: impl Iterator<Item = &'a Fetched> + Clone,
) -> BTreeSet<String> {
    let mut have = HashSet::new();
    for o in fetched.clone() {
        if o.kind == Kind::Price {
            have.insert(o.id.clone());
        }
        for r in &o.embedded_prices {
            if r.table == "prices" {
                have.extend(text(r, 0).map(str::to_string));
            }
        }
    }
    let mut named = BTreeSet::new();
    for r in fetched.flat_map(|o| o.rows.iter().flatten()) {
        let column = match r.table.as_str() {
            "invoice_lines" => 7,
            "subscription_items" => 3,
            _ => continue,
        };
        if let Some(price) = text(r, column) {
            if !base_prices.contains(price) && !have.contains(price) {
                named.insert(price.to_string());
            }
        }
    }
    named
}

/// The values of one string column of a snapshot table (empty for a table it predates).
fn column_values(snapshot: &Snapshot, table: &str, column: &str) -> anyhow::Result<HashSet<String>> {
    Ok(snapshot.string_columns(table, &[column])?.into_iter().filter_map(|mut row| row.pop().flatten()).collect())
}

/// The oldest and the newest event (by `created`, then id).
fn oldest_and_newest(events: &[Row]) -> (Option<String>, Option<String>) {
    let mut ordered: Vec<(i64, String)> = events
        .iter()
        .filter_map(|r| match (r.cells.get(2), text(r, 0)) {
            (Some(Cell::I64(t)), Some(id)) => Some((*t, id.to_string())),
            _ => None,
        })
        .collect();
    ordered.sort();
    (ordered.first().map(|e| e.1.clone()), ordered.last().map(|e| e.1.clone()))
}
