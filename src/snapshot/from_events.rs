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

use anyhow::Context;
use serde_json::Value;

use super::derive::{Changes, DerivedFrom, Kind};
use super::{extract, Snapshot};
use crate::calendar::format_rfc3339;
use crate::error::bad_input;

/// The archive `mrr serve` appends verified webhook deliveries to.
pub fn archive_path(data_dir: &Path) -> PathBuf {
    data_dir.join("events").join("events.jsonl")
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
    let base = super::resolve(&opts.data_dir, &opts.base).with_context(|| format!("--base {}", opts.base))?;
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
    let mut invoice_items = PendingItems::default();
    let mut ignored_types: BTreeMap<String, u64> = BTreeMap::new();
    for e in &to_apply {
        if invoice_items.note(e) {
            continue;
        }
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

    // The newest state of each object replaces its base rows.
    let mut changes = Changes::default();
    let mut ordered: Vec<_> = latest.into_iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    let mut finalized_in_base: Option<HashSet<String>> = None;
    for ((kind, id), (state, e)) in ordered {
        let where_ = || format!("{}:{}: event {} ({})", archive.display(), e.line, e.id, e.kind);
        // An event's invoice embeds only the first page of its lines (catalogue L6). Once
        // finalized an invoice's lines never change, so the base's copy completes it; any other
        // invoice needs the API for the rest.
        let lines_cut_short = kind == Kind::Invoice && state.as_ref().is_some_and(|o| o["lines"]["has_more"] == true);
        let state = match state {
            Some(mut object) if lines_cut_short => {
                let finalized = match &finalized_in_base {
                    Some(ids) => ids,
                    None => finalized_in_base.insert(finalized_invoices(&base)?),
                };
                if !finalized.contains(&id) {
                    return Err(bad_input(format!(
                        "{}: invoice {id} has more lines than the event carries ({}), and base snapshot {} does \
                         not hold it finalized to complete it from: its other lines need the API. Bring the \
                         snapshot up to date with `mrr pull --since {}` instead",
                        where_(),
                        object["lines"]["data"].as_array().map_or(0, Vec::len),
                        base.manifest.id,
                        base.manifest.id
                    )));
                }
                object["lines"]["data"] = Value::Array(Vec::new());
                object["lines"]["has_more"] = Value::Bool(false);
                Some(object)
            }
            state => state,
        };
        let rows = state.map(|object| extract::json_rows(&object).with_context(where_)).transpose()?;
        // An event's price carries no tiers or currency options (catalogue L10): the base's stay.
        let whole = match kind {
            Kind::Price => false,
            Kind::Invoice => !lines_cut_short,
            _ => true,
        };
        changes.object(kind, &id, rows, whole);
    }

    invoice_items.apply(&mut changes, &archive)?;

    // The applied events themselves join the events table.
    let mut event_rows = Vec::new();
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
        event_rows.extend(extract::event(&event));
    }
    changes.rows_by_id(event_rows);

    let (upserted, deleted) = (changes.upserted.clone(), changes.deleted);
    let derived_from = DerivedFrom {
        base: base.manifest.id.clone(),
        events_applied: to_apply.len() as u64,
        first_event: to_apply.first().map(|e| e.id.clone()),
        last_event: to_apply.last().map(|e| e.id.clone()),
        objects_refetched: None,
        objects_from_events: None,
    };
    let snapshot = changes.write(&opts.data_dir, &base, as_of, base.manifest.source.clone(), derived_from)?;
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

/// The pending invoice items the events change (catalogue U1). Stripe sends
/// `invoiceitem.created` and `invoiceitem.deleted` but no event when an invoice bills a
/// pending item: the invoice's line names the item instead (`invoice_item`), so an applied
/// invoice that bills one takes it off the pending list, like the list call would.
#[derive(Default)]
struct PendingItems<'a> {
    /// The newest event of each invoice item.
    latest: HashMap<String, &'a Archived>,
    /// Invoice items that the lines of applied invoice events bill.
    billed: HashSet<String>,
}

impl<'a> PendingItems<'a> {
    /// Takes note of an event; true when it is an invoice item's (which changes no other table).
    fn note(&mut self, e: &'a Archived) -> bool {
        let object = &e.raw["data"]["object"];
        if object["object"] == "invoice" {
            for line in object["lines"]["data"].as_array().into_iter().flatten() {
                let parent = &line["parent"];
                for details in ["subscription_item_details", "invoice_item_details"] {
                    if let Some(item) = parent[details]["invoice_item"].as_str() {
                        self.billed.insert(item.to_string());
                    }
                }
            }
        }
        if !e.kind.starts_with("invoiceitem.") {
            return false;
        }
        if let Some(id) = object["id"].as_str() {
            self.latest.insert(id.to_string(), e);
        }
        true
    }

    /// Each noted item's rows replace the base's while it is pending; one deleted, created on
    /// an invoice, or billed since leaves the table.
    fn apply(self, changes: &mut Changes, archive: &Path) -> anyhow::Result<()> {
        for (id, e) in &self.latest {
            let object = &e.raw["data"]["object"];
            let pending = e.kind != "invoiceitem.deleted" && object["invoice"].is_null() && !self.billed.contains(id);
            if pending {
                let rows = extract::json_rows(object)
                    .with_context(|| format!("{}:{}: event {} ({})", archive.display(), e.line, e.id, e.kind))?;
                changes.rows_by_id(rows);
                *changes.upserted.entry("pending_invoice_items").or_default() += 1;
            } else {
                changes.remove("pending_invoice_items", id);
                changes.deleted += u64::from(e.kind == "invoiceitem.deleted");
            }
        }
        for id in self.billed.iter().filter(|id| !self.latest.contains_key(*id)) {
            changes.remove("pending_invoice_items", id);
        }
        Ok(())
    }
}

/// The invoices a snapshot holds finalized (any status but `draft`), with all their lines.
fn finalized_invoices(snapshot: &Snapshot) -> anyhow::Result<HashSet<String>> {
    let rows = snapshot.string_columns("invoices", &["id", "status"])?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match (&row[0], &row[1]) {
            (Some(id), Some(status)) if status != "draft" => Some(id.clone()),
            _ => None,
        })
        .collect())
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
