//! `mrr snapshot --from-events`: a new snapshot = an existing snapshot + the webhook
//! events archived since it, applied in order.
//!
//! Every Stripe event carries its object as it was at that moment, so the newest event
//! of an object is its current state: the base snapshot's rows of that object (and its
//! child rows: items, lines, discounts) are replaced by the rows of that state, or dropped
//! for a `*.deleted` event of an object Stripe really deletes. Events at or before the base
//! snapshot's `as_of` are already in it. The base is never modified; the new snapshot
//! appears by atomic rename like a pulled one and records what it was derived from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, BooleanArray, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::{Row, TABLES};
use super::writer::{new_id, TableWriters};
use super::{extract, Manifest, Snapshot};
use crate::calendar::format_rfc3339;
use crate::error::bad_input;

/// The archive `mrr serve` appends verified webhook deliveries to.
pub fn archive_path(data_dir: &Path) -> PathBuf {
    data_dir.join("events").join("events.jsonl")
}

/// What an event-built snapshot was built from (in its manifest).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DerivedFrom {
    /// The snapshot the events were applied to.
    pub base: String,
    /// Events applied (created after the base's `as_of`, at or before the new one).
    pub events_applied: u64,
    /// The newest event applied.
    pub last_event: Option<String>,
}

/// Settings of one build.
#[derive(Clone, Debug)]
pub struct FromEventsOptions {
    pub data_dir: PathBuf,
    /// Snapshot id, `latest` or a snapshot folder.
    pub base: String,
    /// The instant the new snapshot describes (default: now); later events wait for the next build.
    pub as_of: Option<i64>,
}

/// What a build did.
#[derive(Debug)]
pub struct FromEventsSummary {
    pub snapshot: Snapshot,
    pub base: String,
    pub applied: u64,
    /// Objects whose rows were replaced or added, per table.
    pub upserted: BTreeMap<&'static str, u64>,
    pub deleted: u64,
    /// Archived events already covered by the base snapshot.
    pub already_in_base: u64,
    /// Archived events after `as_of`.
    pub after_as_of: u64,
    /// Applied events of types that change no snapshot table (kept in `events` only).
    pub ignored_types: BTreeMap<String, u64>,
}

/// The object kinds an event can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Customer,
    Subscription,
    Invoice,
    Product,
    Price,
    Coupon,
    Discount,
    TestClock,
}

impl Kind {
    /// The object kind an event type changes, and whether the event deletes it.
    fn of(event_type: &str) -> Option<(Kind, bool)> {
        let (prefix, action) = event_type.rsplit_once('.')?;
        let kind = match prefix {
            "customer" if matches!(action, "created" | "updated" | "deleted") => Kind::Customer,
            "customer.subscription" => Kind::Subscription,
            "customer.discount" => Kind::Discount,
            // `invoice.upcoming` previews an invoice that does not exist yet.
            "invoice" if action != "upcoming" => Kind::Invoice,
            "product" => Kind::Product,
            "price" => Kind::Price,
            "coupon" => Kind::Coupon,
            "test_helpers.test_clock" => Kind::TestClock,
            _ => return None,
        };
        // A deleted subscription is canceled, not gone: Stripe still lists it.
        Some((kind, action == "deleted" && kind != Kind::Subscription))
    }

    /// The table holding the object itself.
    fn table(self) -> &'static str {
        match self {
            Kind::Customer => "customers",
            Kind::Subscription => "subscriptions",
            Kind::Invoice => "invoices",
            Kind::Product => "products",
            Kind::Price => "prices",
            Kind::Coupon => "coupons",
            Kind::Discount => "discounts",
            Kind::TestClock => "test_clocks",
        }
    }
}

/// An archived event, located for error messages.
struct Archived {
    line: usize,
    id: String,
    kind: String,
    created: i64,
    raw: Value,
}

/// Builds the new snapshot; the base and the archive are only read.
pub fn run(opts: &FromEventsOptions) -> anyhow::Result<FromEventsSummary> {
    let base = super::resolve(&opts.data_dir, &opts.base)?;
    let base_as_of = base.as_of()?;
    let as_of = opts.as_of.unwrap_or_else(crate::calendar::now);
    if as_of < base_as_of {
        return Err(bad_input(format!(
            "--as-of {} lies before the base snapshot {}'s as_of {}",
            format_rfc3339(as_of),
            base.manifest.id,
            base.manifest.as_of
        )));
    }
    let archive = archive_path(&opts.data_dir);
    let events = read_archive(&archive)?;

    let mut summary_counts = (0u64, 0u64);
    let mut to_apply: Vec<&Archived> = Vec::new();
    for e in &events {
        if e.created <= base_as_of {
            summary_counts.0 += 1;
        } else if e.created > as_of {
            summary_counts.1 += 1;
        } else {
            to_apply.push(e);
        }
    }
    // Stripe does not deliver in order: apply by creation time (archive order breaks ties).
    to_apply.sort_by_key(|e| (e.created, e.line));
    for e in &to_apply {
        check_api_version(e, &archive)?;
    }

    // The newest state of every object an event touched (None: deleted).
    let mut latest: HashMap<(Kind, String), (Option<Value>, &Archived)> = HashMap::new();
    let mut ignored_types: BTreeMap<String, u64> = BTreeMap::new();
    for e in &to_apply {
        let Some((kind, deletes)) = Kind::of(&e.kind) else {
            *ignored_types.entry(e.kind.clone()).or_default() += 1;
            continue;
        };
        let object = &e.raw["data"]["object"];
        let Some(id) = object["id"].as_str() else {
            return Err(bad_input(format!(
                "{}:{}: event {} ({}) carries an object without an id",
                archive.display(),
                e.line,
                e.id,
                e.kind
            )));
        };
        let state = (!deletes).then(|| object.clone());
        latest.insert((kind, id.to_string()), (state, e));
    }

    // Rows of the new states, and the keys whose base rows they replace.
    let mut rows: Vec<Row> = Vec::new();
    let mut replaced: HashMap<&'static str, HashSet<String>> = HashMap::new();
    let mut upserted: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut deleted = 0u64;
    let mut ordered: Vec<_> = latest.into_iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    for ((kind, id), (state, e)) in ordered {
        replaced.entry(kind.table()).or_default().insert(id.clone());
        // Child rows belong to their parent's latest state.
        match kind {
            Kind::Subscription => {
                replaced.entry("subscription_items").or_default().insert(id.clone());
            }
            Kind::Invoice => {
                replaced.entry("invoice_lines").or_default().insert(id.clone());
            }
            _ => {}
        }
        let Some(object) = state else {
            deleted += 1;
            continue;
        };
        *upserted.entry(kind.table()).or_default() += 1;
        let where_ = || format!("{}:{}: event {} ({})", archive.display(), e.line, e.id, e.kind);
        let new_rows = extract::json_rows(&object).with_context(where_)?;
        for r in &new_rows {
            if r.table == "discounts" {
                if let Some(super::schema::Cell::Str(d)) = r.cells.first() {
                    replaced.entry("discounts").or_default().insert(d.clone());
                }
            }
        }
        rows.extend(new_rows);
    }
    // A discount shared by a subscription and its invoices appears once, newest state last.
    let mut seen_discounts = HashSet::new();
    let mut deduped = Vec::with_capacity(rows.len());
    for r in rows.into_iter().rev() {
        if r.table == "discounts" {
            let Some(super::schema::Cell::Str(d)) = r.cells.first() else { continue };
            if !seen_discounts.insert(d.clone()) {
                continue;
            }
        }
        deduped.push(r);
    }
    deduped.reverse();

    // The applied events themselves join the events table.
    for e in &to_apply {
        let text = serde_json::to_string(&e.raw)?;
        let event: stripe_shared::Event = miniserde::json::from_str(&text).map_err(|_| {
            bad_input(format!(
                "{}:{}: event {} is not a Stripe event of API version {}",
                archive.display(),
                e.line,
                e.id,
                stripe_shared::version::VERSION
            ))
        })?;
        deduped.extend(extract::event(&event));
    }
    replaced.entry("events").or_default().extend(to_apply.iter().map(|e| e.id.clone()));

    let snapshot = write(&opts.data_dir, &base, as_of, &replaced, deduped, &to_apply)?;
    Ok(FromEventsSummary {
        snapshot,
        base: base.manifest.id.clone(),
        applied: to_apply.len() as u64,
        upserted,
        deleted,
        already_in_base: summary_counts.0,
        after_as_of: summary_counts.1,
        ignored_types,
    })
}

/// An event's `data` keeps the shape of the API version it was created in ("The contents of
/// `data` never change"), and the objects are read in the one version `mrr` is built for: an
/// event of another version is refused, naming it and the ways out, before anything is written.
fn check_api_version(e: &Archived, archive: &Path) -> anyhow::Result<()> {
    let ours = stripe_shared::version::VERSION.as_str();
    let version = e.raw["api_version"].as_str();
    if version == Some(ours) {
        return Ok(());
    }
    Err(bad_input(format!(
        "{}:{}: event {} ({}) is rendered in Stripe API version {}; `mrr snapshot --from-events` reads \
         events of version {ours} only (an event keeps the shape of the version it was created in: \
         before 2025-03-31.basil, for one, a subscription carries its billing period itself, not on \
         its items). Set the webhook endpoint's API version to {ours} for the events to come, and \
         run `mrr pull` for a full snapshot now",
        archive.display(),
        e.line,
        e.id,
        e.kind,
        version.map_or_else(|| "(none given)".to_string(), str::to_string),
    )))
}

/// Reads every event of the archive, oldest delivery first.
fn read_archive(path: &Path) -> anyhow::Result<Vec<Archived>> {
    let file = std::fs::File::open(path).map_err(|e| {
        bad_input(format!(
            "{}: {e} (no webhook event archived yet: run `mrr serve` and point a Stripe webhook at /webhooks/stripe)",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let Ok(raw) = serde_json::from_str::<Value>(&line) else {
            // A torn last line (power cut mid-append) was never acknowledged.
            tracing::warn!("{}:{}: unreadable line skipped", path.display(), n + 1);
            continue;
        };
        let (Some(id), Some(kind), Some(created)) = (raw["id"].as_str(), raw["type"].as_str(), raw["created"].as_i64())
        else {
            return Err(bad_input(format!(
                "{}:{}: not a Stripe event (id, type or created missing)",
                path.display(),
                n + 1
            )));
        };
        if seen.insert(id.to_string()) {
            out.push(Archived { line: n + 1, id: id.to_string(), kind: kind.to_string(), created, raw: raw.clone() });
        }
    }
    Ok(out)
}

/// The column that ties a table's rows to the objects events replace.
fn key_column(table: &str) -> &'static str {
    match table {
        "subscription_items" => "subscription",
        "invoice_lines" => "invoice",
        _ => "id",
    }
}

/// Writes base rows minus the replaced ones, then the new rows, into a new snapshot.
fn write(
    data_dir: &Path,
    base: &Snapshot,
    as_of: i64,
    replaced: &HashMap<&'static str, HashSet<String>>,
    rows: Vec<Row>,
    applied: &[&Archived],
) -> anyhow::Result<Snapshot> {
    let built_at = crate::calendar::now();
    let id = new_id(data_dir, built_at);
    let target = super::snapshots_dir(data_dir).join(&id);
    let dir = crate::atomic_dir::AtomicDir::create(&target)?;
    let mut writers = TableWriters::create(dir.path())?;
    let none = HashSet::new();
    for t in TABLES {
        let drop = replaced.get(t.name).unwrap_or(&none);
        let path = base.table_path(t.name)?;
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("{} is not a readable Parquet file", path.display()))?
            .build()?;
        for batch in reader {
            let batch = batch.with_context(|| format!("reading {}", path.display()))?;
            let batch = if drop.is_empty() {
                batch
            } else {
                let keys = batch
                    .column_by_name(key_column(t.name))
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .with_context(|| format!("{}: no string column {}", path.display(), key_column(t.name)))?;
                let keep: BooleanArray =
                    (0..keys.len()).map(|i| Some(keys.is_null(i) || !drop.contains(keys.value(i)))).collect();
                arrow::compute::filter_record_batch(&batch, &keep)?
            };
            // The base file's schema is the snapshot schema; re-tag it so writers accept it as is.
            let batch = arrow::record_batch::RecordBatch::try_new(
                super::schema::arrow_schema(t),
                batch.columns().iter().map(Arc::clone).collect(),
            )
            .with_context(|| {
                format!("{}: schema differs from schema version {}", path.display(), super::schema::SCHEMA_VERSION)
            })?;
            writers.push_batch(t.name, &batch)?;
        }
    }
    for r in rows {
        writers.push(r)?;
    }
    let tables = writers.finish()?;
    let b = &base.manifest;
    let manifest = Manifest {
        id: id.clone(),
        schema_version: super::schema::SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        pulled_at: format_rfc3339(built_at),
        as_of: format_rfc3339(as_of),
        source: b.source.clone(),
        events_since: b.events_since.clone(),
        tables,
        derived_from: Some(DerivedFrom {
            base: b.id.clone(),
            events_applied: applied.len() as u64,
            last_event: applied.last().map(|e| e.id.clone()),
        }),
        warnings: b.warnings.clone(),
    };
    crate::atomic_dir::write_json(&dir.path().join(super::MANIFEST), &manifest)?;
    let path = dir.commit()?;
    super::set_latest(data_dir, &id)?;
    Snapshot::open(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_map_to_the_objects_they_change() {
        assert_eq!(Kind::of("customer.subscription.deleted"), Some((Kind::Subscription, false)));
        assert_eq!(Kind::of("customer.subscription.updated"), Some((Kind::Subscription, false)));
        assert_eq!(Kind::of("customer.deleted"), Some((Kind::Customer, true)));
        assert_eq!(Kind::of("customer.discount.deleted"), Some((Kind::Discount, true)));
        assert_eq!(Kind::of("invoice.paid"), Some((Kind::Invoice, false)));
        assert_eq!(Kind::of("invoice.deleted"), Some((Kind::Invoice, true)));
        assert_eq!(Kind::of("invoice.upcoming"), None);
        assert_eq!(Kind::of("customer.source.created"), None);
        assert_eq!(Kind::of("charge.succeeded"), None);
    }
}
