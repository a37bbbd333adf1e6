//! Every snapshot table, defined once: names, typed columns and their meaning.
//! Money is INT64 minor units, instants are UTC TIMESTAMPs, ids are strings; nested
//! lists are flattened into child tables (`subscription_items`, `invoice_lines`,
//! `discounts`). The README's schema section is printed from here (`mrr schema`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// Version of the table layout below; bump on any change.
/// 2: `price_tiers` and `price_currency_options` (a version-1 snapshot reads as having none).
/// 3: `event_changes` and `coupon_products` (an older snapshot reads as having none).
/// 4: `subscription_discounts` (an older snapshot reads as having none).
/// 5: `paused_collections` and `pending_invoice_items` (an older snapshot reads as having none).
/// 6: `coupon_currency_options` (an older snapshot reads as having none).
/// 7: `item_discounts` (an older snapshot reads as having none).
/// 8: `customer_discounts` (an older snapshot reads as having none).
pub const SCHEMA_VERSION: u32 = 8;

/// The schema version a table first appeared in; an older snapshot has no rows of it.
pub fn since_version(table: &str) -> u32 {
    match table {
        "price_tiers" | "price_currency_options" => 2,
        "event_changes" | "coupon_products" => 3,
        "subscription_discounts" => 4,
        "paused_collections" | "pending_invoice_items" => 5,
        "coupon_currency_options" => 6,
        "item_discounts" => 7,
        "customer_discounts" => 8,
        _ => 1,
    }
}

/// The columns that identify a row of a table (what `mrr snapshots diff` matches rows by).
pub fn key_columns(table: &str) -> &'static [&'static str] {
    match table {
        "price_tiers" => &["price", "currency", "tier"],
        "price_currency_options" => &["price", "currency"],
        "event_changes" => &["event", "field"],
        "coupon_products" => &["coupon", "product"],
        "coupon_currency_options" => &["coupon", "currency"],
        "item_discounts" => &["discount"],
        "customer_discounts" => &["customer"],
        "subscription_discounts" => &["owner", "discount"],
        "paused_collections" => &["subscription"],
        _ => &["id"],
    }
}

/// A row's key (its [`key_columns`]) as text; `None` when a key cell is null.
pub fn row_key(row: &Row) -> Option<String> {
    let def = table(&row.table);
    let mut key = Vec::new();
    for name in key_columns(def.name) {
        let at = def.columns.iter().position(|c| c.name == *name).expect("key columns are columns");
        match &row.cells[at] {
            Cell::Null => return None,
            cell => key.push(cell),
        }
    }
    Some(format!("{key:?}"))
}

/// A column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text (ids, enums, JSON).
    Str,
    /// 64-bit integer (money in minor units, counts).
    I64,
    /// UTC instant, stored as microseconds (from Stripe's Unix seconds).
    Ts,
    Bool,
    /// Floating point: display-only values, never on the MRR path.
    F64,
}

/// One column.
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

/// One table.
pub struct TableDef {
    pub name: &'static str,
    pub doc: &'static str,
    pub columns: &'static [Column],
}

macro_rules! cols {
    ($($name:literal $kind:ident $doc:literal),* $(,)?) => {
        &[$(Column { name: $name, kind: Kind::$kind, doc: $doc }),*]
    };
}

/// Every table of a snapshot, in file order.
pub const TABLES: &[TableDef] = &[
    TableDef {
        name: "customers",
        doc: "One row per customer.",
        columns: cols![
            "id" Str "cus_ id", "created" Ts "creation time", "currency" Str "default currency (lowercase ISO)",
            "email" Str "", "name" Str "", "delinquent" Bool "has an unpaid invoice",
            "test_clock" Str "clock_ id for test-clock customers", "metadata" Str "metadata as a JSON object",
        ],
    },
    TableDef {
        name: "customer_discounts",
        doc: "The discount each customer has now (`discount`), which its subscriptions without discounts of their own inherit.",
        columns: cols!["customer" Str "cus_ id", "discount" Str "di_ id"],
    },
    TableDef {
        name: "products",
        doc: "One row per product.",
        columns: cols!["id" Str "prod_ id", "created" Ts "", "name" Str "", "active" Bool "", "type" Str "service or good"],
    },
    TableDef {
        name: "prices",
        doc: "One row per price; recurring fields are null for one-time prices.",
        columns: cols![
            "id" Str "price_ id", "product" Str "prod_ id", "created" Ts "", "active" Bool "", "currency" Str "",
            "nickname" Str "", "type" Str "recurring or one_time", "billing_scheme" Str "per_unit or tiered",
            "unit_amount" I64 "minor units per unit", "unit_amount_decimal" Str "exact decimal unit amount",
            "recurring_interval" Str "day, week, month or year", "recurring_interval_count" I64 "",
            "recurring_usage_type" Str "licensed or metered (metered is never MRR)",
            "tiers_mode" Str "", "transform_quantity_divide_by" I64 "", "transform_quantity_round" Str "up or down",
        ],
    },
    TableDef {
        name: "price_tiers",
        doc: "Tiers of tiered prices (expanded `tiers`, and tiers of a currency option), in order.",
        columns: cols![
            "price" Str "price_ id", "currency" Str "the price's currency or a currency option's",
            "tier" I64 "position, 0 first", "up_to" I64 "last quantity in the tier; null for inf",
            "unit_amount" I64 "minor units per unit", "unit_amount_decimal" Str "",
            "flat_amount" I64 "minor units for the whole tier", "flat_amount_decimal" Str "",
        ],
    },
    TableDef {
        name: "price_currency_options",
        doc: "A price's amounts in other currencies (expanded `currency_options`).",
        columns: cols![
            "price" Str "price_ id", "currency" Str "", "unit_amount" I64 "minor units per unit",
            "unit_amount_decimal" Str "", "tax_behavior" Str "",
        ],
    },
    TableDef {
        name: "coupons",
        doc: "One row per coupon.",
        columns: cols![
            "id" Str "", "created" Ts "", "name" Str "", "percent_off" F64 "as Stripe sends it (display only)",
            "percent_off_hundredths" I64 "percent_off x 100, exact (25.5% = 2550): use this in SQL",
            "amount_off" I64 "minor units per invoice", "currency" Str "currency of amount_off",
            "duration" Str "once, repeating or forever", "duration_in_months" I64 "for repeating",
            "valid" Bool "", "times_redeemed" I64 "",
        ],
    },
    TableDef {
        name: "coupon_products",
        doc:
            "The products a coupon is restricted to (applies_to.products); a coupon with none applies to every product.",
        columns: cols!["coupon" Str "coupon id", "product" Str "prod_ id"],
    },
    TableDef {
        name: "coupon_currency_options",
        doc: "What an amount-off coupon takes off in other currencies than its own (currency_options).",
        columns: cols!["coupon" Str "coupon id", "currency" Str "", "amount_off" I64 "minor units of currency per invoice"],
    },
    TableDef {
        name: "subscriptions",
        doc: "One row per subscription (all statuses).",
        columns: cols![
            "id" Str "sub_ id", "customer" Str "cus_ id", "created" Ts "", "start_date" Ts "", "status" Str "",
            "currency" Str "", "collection_method" Str "", "billing_cycle_anchor" Ts "",
            "cancel_at" Ts "scheduled cancellation", "cancel_at_period_end" Bool "", "canceled_at" Ts "when cancellation was requested",
            "ended_at" Ts "when it stopped", "cancellation_reason" Str "cancellation_details.reason",
            "trial_start" Ts "", "trial_end" Ts "", "latest_invoice" Str "in_ id", "test_clock" Str "",
        ],
    },
    TableDef {
        name: "subscription_items",
        doc: "Current items of each subscription (items.data).",
        columns: cols![
            "id" Str "si_ id", "subscription" Str "sub_ id", "created" Ts "", "price" Str "price_ id",
            "product" Str "prod_ id", "quantity" I64 "null for metered items",
            "current_period_start" Ts "", "current_period_end" Ts "",
        ],
    },
    TableDef {
        name: "subscription_discounts",
        doc: "The discounts a subscription and each of its items list now (`discounts`), in their order.",
        columns: cols![
            "subscription" Str "sub_ id", "owner" Str "the sub_ id, or the si_ id of an item-level discount",
            "discount" Str "di_ id", "position" I64 "in the owner's list, 0 first",
        ],
    },
    TableDef {
        name: "paused_collections",
        doc: "Subscriptions whose payment collection is paused now (`pause_collection`); their status stays as it was.",
        columns: cols![
            "subscription" Str "sub_ id", "behavior" Str "keep_as_draft, mark_uncollectible or void",
            "resumes_at" Ts "null: paused until it is unset",
        ],
    },
    TableDef {
        name: "discounts",
        doc: "Discount objects attached to subscriptions, their items or invoices, current and past (one row per id).",
        columns: cols![
            "id" Str "di_ id", "subscription" Str "", "customer" Str "", "invoice" Str "", "coupon" Str "coupon id",
            "start" Ts "", "end" Ts "null for forever and once", "promotion_code" Str "",
        ],
    },
    TableDef {
        name: "item_discounts",
        doc: "The discounts (rows of `discounts`) applied to one subscription item only (`subscription_item`).",
        columns: cols![
            "discount" Str "di_ id", "subscription_item" Str "si_ id", "subscription" Str "the item's sub_ id",
        ],
    },
    TableDef {
        name: "invoices",
        doc: "One row per invoice.",
        columns: cols![
            "id" Str "in_ id", "customer" Str "", "subscription" Str "parent.subscription_details.subscription",
            "created" Ts "", "status" Str "draft, open, paid, uncollectible or void", "billing_reason" Str "",
            "currency" Str "", "number" Str "", "period_start" Ts "", "period_end" Ts "",
            "subtotal" I64 "", "total_discount" I64 "sum of total_discount_amounts", "tax" I64 "sum of total_taxes",
            "total" I64 "", "amount_due" I64 "", "amount_paid" I64 "", "amount_remaining" I64 "", "attempt_count" I64 "",
            "finalized_at" Ts "", "paid_at" Ts "", "voided_at" Ts "", "marked_uncollectible_at" Ts "", "test_clock" Str "",
        ],
    },
    TableDef {
        name: "invoice_lines",
        doc: "Every line of every invoice (all pages).",
        columns: cols![
            "id" Str "il_ id", "invoice" Str "in_ id", "line_index" I64 "position on the invoice",
            "parent_type" Str "subscription_item_details or invoice_item_details",
            "subscription" Str "", "subscription_item" Str "si_ id", "proration" Bool "",
            "price" Str "pricing.price_details.price", "product" Str "", "quantity" I64 "",
            "amount" I64 "minor units, before discounts and tax", "currency" Str "",
            "discount_amount" I64 "sum of discount_amounts", "tax_amount" I64 "sum of taxes",
            "period_start" Ts "", "period_end" Ts "", "description" Str "",
        ],
    },
    TableDef {
        name: "pending_invoice_items",
        doc: "Invoice items on no invoice yet (`pending=true`): prorations waiting for the next invoice, and one-off items.",
        columns: cols![
            "id" Str "ii_ id", "customer" Str "", "subscription" Str "parent.subscription_details.subscription",
            "subscription_item" Str "si_ id", "proration" Bool "", "price" Str "pricing.price_details.price",
            "quantity" I64 "", "amount" I64 "minor units", "currency" Str "",
            "period_start" Ts "for a proration, when the change was made", "period_end" Ts "", "date" Ts "when it was created",
        ],
    },
    TableDef {
        name: "events",
        doc: "Events of the pulled window (customer.*, invoice.*, ...), with their payload.",
        columns: cols![
            "id" Str "evt_ id", "type" Str "", "created" Ts "", "api_version" Str "",
            "object_id" Str "data.object.id", "object_type" Str "data.object.object",
            "data" Str "data as JSON (object and previous_attributes)",
        ],
    },
    TableDef {
        name: "event_changes",
        doc: "What each event's update changed: one row per top-level field of its previous_attributes.",
        columns: cols![
            "event" Str "evt_ id", "type" Str "", "created" Ts "", "object_id" Str "data.object.id",
            "field" Str "a key of data.previous_attributes (items, status, ...)",
        ],
    },
    TableDef {
        name: "test_clocks",
        doc: "Test clocks (test mode only).",
        columns: cols!["id" Str "clock_ id", "name" Str "", "created" Ts "", "frozen_time" Ts "", "status" Str ""],
    },
];

/// The definition of a table by name.
pub fn table(name: &str) -> &'static TableDef {
    TABLES.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("unknown table {name}"))
}

/// A cell of a staged row; the column's [`Kind`] decides its Arrow type.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Null,
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(String),
}

/// Read by the JSON value's own type. (serde's `untagged` would try each variant in turn and
/// format an error message for every miss: most of a pull's CPU time, measured with perf.)
impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> serde::de::Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("null, a boolean, a number or a string")
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell::I64(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
                Ok(i64::try_from(v).map_or(Cell::F64(v as f64), Cell::I64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell::F64(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell, E> {
                Ok(Cell::Str(v))
            }
        }
        deserializer.deserialize_any(CellVisitor)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Str(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Str(v)
    }
}
impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::I64(v)
    }
}
impl From<u64> for Cell {
    fn from(v: u64) -> Self {
        Cell::I64(v as i64)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Bool(v)
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::F64(v)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

/// A row of `table`, in its column order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub table: String,
    pub cells: Vec<Cell>,
}

/// Builds a [`Row`]: `row!("customers", id, created, ...)`.
#[macro_export]
macro_rules! row {
    ($table:literal, $($cell:expr),* $(,)?) => {{
        let row = $crate::snapshot::schema::Row { table: $table.to_string(), cells: vec![$($crate::snapshot::schema::Cell::from($cell)),*] };
        debug_assert_eq!(row.cells.len(), $crate::snapshot::schema::table($table).columns.len(), "columns of {}", $table);
        row
    }};
}

/// The Arrow schema of a table.
pub fn arrow_schema(def: &TableDef) -> SchemaRef {
    let fields: Vec<Field> = def
        .columns
        .iter()
        .map(|c| {
            let dt = match c.kind {
                Kind::Str => DataType::Utf8,
                Kind::I64 => DataType::Int64,
                Kind::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Kind::Bool => DataType::Boolean,
                Kind::F64 => DataType::Float64,
            };
            Field::new(c.name, dt, c.name != "id")
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Turns staged rows of one table into an Arrow batch.
pub fn to_batch(def: &TableDef, rows: &[Vec<Cell>]) -> anyhow::Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(def.columns.len());
    for (i, col) in def.columns.iter().enumerate() {
        let bad = |cell: &Cell| anyhow::anyhow!("{}.{}: unexpected value {cell:?}", def.name, col.name);
        let array: ArrayRef = match col.kind {
            Kind::Str => {
                let mut b = StringBuilder::new();
                for r in rows {
                    match &r[i] {
                        Cell::Null => b.append_null(),
                        Cell::Str(s) => b.append_value(s),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::I64 | Kind::Ts => {
                let ints = rows.iter().map(|r| match &r[i] {
                    Cell::Null => Ok(None),
                    Cell::I64(v) => Ok(Some(*v)),
                    other => Err(bad(other)),
                });
                if col.kind == Kind::Ts {
                    let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                    for v in ints {
                        b.append_option(v?.map(|s| s * 1_000_000));
                    }
                    Arc::new(b.finish())
                } else {
                    let mut b = Int64Builder::new();
                    for v in ints {
                        b.append_option(v?);
                    }
                    Arc::new(b.finish())
                }
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                for r in rows {
                    match &r[i] {
                        Cell::Null => b.append_null(),
                        Cell::Bool(v) => b.append_value(*v),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::F64 => {
                let mut b = Float64Builder::new();
                for r in rows {
                    match &r[i] {
                        Cell::Null => b.append_null(),
                        Cell::F64(v) => b.append_value(*v),
                        Cell::I64(v) => b.append_value(*v as f64),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(arrow_schema(def), arrays)?)
}

/// The schema as Markdown, for the README and `mrr schema`.
pub fn markdown() -> String {
    let mut out = String::new();
    for t in TABLES {
        out.push_str(&format!("### `{}`\n{}\n\n| column | type | meaning |\n|---|---|---|\n", t.name, t.doc));
        for c in t.columns {
            let ty = match c.kind {
                Kind::Str => "STRING",
                Kind::I64 => "INT64",
                Kind::Ts => "TIMESTAMP (UTC)",
                Kind::Bool => "BOOL",
                Kind::F64 => "FLOAT64",
            };
            out.push_str(&format!("| `{}` | {} | {} |\n", c.name, ty, c.doc));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Cell;

    #[test]
    fn cells_read_back_as_they_were_written() {
        let cells = vec![
            Cell::Null,
            Cell::Bool(true),
            Cell::I64(-3),
            Cell::I64(i64::MAX),
            Cell::F64(2.5),
            Cell::Str("cus_1".into()),
            Cell::Str(String::new()),
        ];
        let text = serde_json::to_string(&cells).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Cell>>(&text).unwrap(), cells);
        assert_eq!(serde_json::from_str::<Cell>("18446744073709551615").unwrap(), Cell::F64(u64::MAX as f64));
        assert!(serde_json::from_str::<Cell>("[1]").is_err(), "a list is no cell");
    }
}
