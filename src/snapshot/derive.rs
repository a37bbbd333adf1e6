//! A snapshot derived from another: the base's rows, with the rows of the objects that
//! changed since replaced by their current state (or dropped, for an object Stripe deleted).
//! Both ways of bringing a snapshot up to date end here: `mrr snapshot --from-events` (the
//! states come from archived webhook events) and `mrr pull --since` (the states are
//! retrieved from the API). The base is never modified; the new snapshot appears by atomic
//! rename like a pulled one and records what it was derived from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, BooleanArray, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use super::schema::{Cell, Row, TABLES};
use super::writer::{new_id, TableWriters};
use super::{Manifest, Snapshot, Source};
use crate::calendar::format_rfc3339;

/// What a derived snapshot was built from (in its manifest).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DerivedFrom {
    /// The snapshot the changes were applied to.
    pub base: String,
    /// Events applied (created after the base's `as_of`, at or before the new one).
    pub events_applied: u64,
    /// The oldest event applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event: Option<String>,
    /// The newest event applied.
    pub last_event: Option<String>,
    /// Objects retrieved from the API by id (`mrr pull --since`; absent for `--from-events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_refetched: Option<u64>,
    /// Objects whose newest event carried them whole (`mrr pull --since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_from_events: Option<u64>,
}

/// The object kinds an event can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
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
    pub fn of(event_type: &str) -> Option<(Kind, bool)> {
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
        // A deleted subscription is canceled, not gone: Stripe still lists it. A deleted coupon
        // keeps discounting those who have it (D1), and a deleted discount stays on the
        // invoices it discounted (D2): their rows stay.
        Some((kind, action == "deleted" && !matches!(kind, Kind::Subscription | Kind::Coupon | Kind::Discount)))
    }

    /// The table holding the object itself.
    pub fn table(self) -> &'static str {
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

/// The changes to apply to a base snapshot, gathered object by object.
#[derive(Default)]
pub struct Changes {
    /// Per table, the keys whose base rows are dropped.
    replaced: HashMap<&'static str, HashSet<String>>,
    /// Tables whose base rows are all dropped (listed again in full).
    relisted: HashSet<&'static str>,
    rows: Vec<Row>,
    /// Objects whose rows were replaced or added, per table.
    pub upserted: BTreeMap<&'static str, u64>,
    /// Objects dropped.
    pub deleted: u64,
}

impl Changes {
    /// An object's current state (its rows), or `None` when it no longer exists. Its child
    /// rows (a subscription's items, an invoice's lines, a price's tiers and currency options)
    /// belong to that state when `whole` says the state carries them all (a retrieved object
    /// does); otherwise the base's are kept (a price inside an event has no tiers or options,
    /// a finalized invoice inside an event only the first page of its lines, which can no
    /// longer change).
    pub fn object(&mut self, kind: Kind, id: &str, state: Option<Vec<Row>>, whole: bool) {
        self.replaced.entry(kind.table()).or_default().insert(id.to_string());
        let children: &[&'static str] = match kind {
            Kind::Customer => &["customer_discounts"],
            Kind::Subscription => &["subscription_items", "subscription_discounts", "paused_collections"],
            Kind::Invoice if whole => &["invoice_lines"],
            Kind::Price if whole => &["price_tiers", "price_currency_options"],
            _ => &[],
        };
        for child in children {
            self.replaced.entry(child).or_default().insert(id.to_string());
        }
        let Some(rows) = state else {
            self.deleted += 1;
            return;
        };
        *self.upserted.entry(kind.table()).or_default() += 1;
        // Discounts and the coupons expanded in them replace the base's copies.
        for r in &rows {
            if let (Some(table), Some(Cell::Str(id))) = (EMBEDDED.iter().find(|t| **t == r.table), r.cells.first()) {
                self.replaced.entry(table).or_default().insert(id.clone());
            }
        }
        self.rows.extend(rows);
    }

    /// Rows added as they are, each replacing the base's rows of the same key (an event and
    /// its `event_changes`).
    pub fn rows_by_id(&mut self, rows: Vec<Row>) {
        for r in &rows {
            if let Some(Cell::Str(id)) = r.cells.first() {
                self.replaced.entry(super::schema::table(&r.table).name).or_default().insert(id.clone());
            }
        }
        self.rows.extend(rows);
    }

    /// The base's rows of key `id` in `table` dropped, none added in their place (a pending
    /// invoice item billed since: it lives on as its invoice's line).
    pub fn remove(&mut self, table: &'static str, id: &str) {
        self.replaced.entry(table).or_default().insert(id.to_string());
    }

    /// A table listed again in full: its rows replace all of the base's.
    pub fn relist(&mut self, table: &'static str, rows: Vec<Row>) {
        self.relisted.insert(table);
        self.rows.extend(rows);
    }

    /// Rows added beside the base's, replacing none (a price first seen embedded in an item).
    pub fn add(&mut self, rows: Vec<Row>) {
        self.rows.extend(rows);
    }

    /// Writes base rows minus the replaced ones, then the new rows, into a new snapshot.
    pub fn write(
        self,
        data_dir: &Path,
        base: &Snapshot,
        as_of: i64,
        source: Source,
        derived_from: DerivedFrom,
    ) -> anyhow::Result<Snapshot> {
        // A discount shared by a subscription and its invoices (and the coupon expanded in
        // each) appears once, the last state given.
        let mut seen = HashSet::new();
        let mut rows = Vec::with_capacity(self.rows.len());
        for r in self.rows.into_iter().rev() {
            if EMBEDDED.contains(&r.table.as_str()) {
                let Some(key) = super::schema::row_key(&r) else { continue };
                if !seen.insert((r.table.clone(), key)) {
                    continue;
                }
            }
            rows.push(r);
        }
        rows.reverse();

        let built_at = crate::calendar::now();
        let id = new_id(data_dir, built_at);
        let target = super::snapshots_dir(data_dir).join(&id);
        let dir = crate::atomic_dir::AtomicDir::create(&target)?;
        let mut writers = TableWriters::create(dir.path())?;
        let none = HashSet::new();
        for t in TABLES {
            if self.relisted.contains(t.name) {
                continue;
            }
            // A table the base predates (an older schema version) has no rows to keep.
            let Some(path) = base.table_path_if_any(t.name)? else { continue };
            let drop = self.replaced.get(t.name).unwrap_or(&none);
            let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .with_context(|| format!("{} is not a readable Parquet file", path.display()))?
                .build()?;
            for batch in reader {
                let batch = batch.with_context(|| format!("reading {}", path.display()))?;
                let batch = if drop.is_empty() {
                    batch
                } else {
                    let column = key_column(t.name);
                    let keys = batch
                        .column_by_name(column)
                        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                        .with_context(|| format!("{}: no string column {column}", path.display()))?;
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
        let mut tables = writers.finish()?;
        crate::engine::derived::write(dir.path(), &mut tables)?;
        let b = &base.manifest;
        let manifest = Manifest {
            id: id.clone(),
            schema_version: super::schema::SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            pulled_at: format_rfc3339(built_at),
            as_of: format_rfc3339(as_of),
            source,
            events_since: b.events_since.clone(),
            tables,
            derived_from: Some(derived_from),
            warnings: b.warnings.clone(),
        };
        crate::atomic_dir::write_json(&dir.path().join(super::MANIFEST), &manifest)?;
        let path = dir.commit()?;
        super::set_latest(data_dir, &id)?;
        Snapshot::open(&path)
    }
}

/// Tables whose rows also arrive embedded in other objects (a subscription's or invoice's
/// expanded discounts, the items of the item-level ones, and their coupons with the coupons'
/// currency options).
const EMBEDDED: [&str; 4] = ["discounts", "item_discounts", "coupons", "coupon_currency_options"];

/// The column that ties a table's rows to the objects that replace them.
fn key_column(table: &str) -> &'static str {
    match table {
        "subscription_items" | "subscription_discounts" | "paused_collections" => "subscription",
        "customer_discounts" => "customer",
        "invoice_lines" => "invoice",
        "price_tiers" | "price_currency_options" => "price",
        "event_changes" => "event",
        "coupon_products" | "coupon_currency_options" => "coupon",
        "item_discounts" => "discount",
        _ => "id",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_map_to_the_objects_they_change() {
        assert_eq!(Kind::of("customer.subscription.deleted"), Some((Kind::Subscription, false)));
        assert_eq!(Kind::of("customer.subscription.updated"), Some((Kind::Subscription, false)));
        assert_eq!(Kind::of("customer.deleted"), Some((Kind::Customer, true)));
        assert_eq!(Kind::of("customer.discount.deleted"), Some((Kind::Discount, false)));
        assert_eq!(Kind::of("coupon.deleted"), Some((Kind::Coupon, false)));
        assert_eq!(Kind::of("invoice.paid"), Some((Kind::Invoice, false)));
        assert_eq!(Kind::of("invoice.deleted"), Some((Kind::Invoice, true)));
        assert_eq!(Kind::of("invoice.upcoming"), None);
        assert_eq!(Kind::of("customer.source.created"), None);
        assert_eq!(Kind::of("charge.succeeded"), None);
    }
}
