//! The served account: an index over the simulator's JSON Lines files (id, created,
//! filter fields, byte range), ordered newest first like Stripe. Objects stay on
//! disk and are read per request, so memory stays small for any account size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::simulate::OBJECT_FILES;

/// One indexed object.
struct Entry {
    id: Box<str>,
    created: i64,
    offset: u64,
    len: u32,
    /// `status` for subscriptions and invoices, `type` for events.
    tag: Option<Box<str>>,
    customer: Option<Box<str>>,
    /// The test clock a customer or subscription belongs to.
    test_clock: Option<Box<str>>,
    /// `active` of a price or product.
    active: Option<bool>,
    /// An invoice item on an invoice (not pending).
    invoiced: bool,
}

/// All objects of one type, newest first.
pub struct Table {
    file: File,
    entries: Vec<Entry>,
    position: HashMap<Box<str>, usize>,
}

#[derive(Deserialize)]
struct Head {
    id: String,
    /// `date` for an invoice item, which has no `created`.
    #[serde(default, alias = "date")]
    created: i64,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<serde_json::Value>,
    #[serde(default)]
    customer: Option<serde_json::Value>,
    #[serde(default)]
    test_clock: Option<serde_json::Value>,
    #[serde(default)]
    active: Option<bool>,
    /// The invoice an invoice item is on (null while pending).
    #[serde(default)]
    invoice: Option<serde_json::Value>,
}

/// Filters a list call may apply.
#[derive(Default, Debug)]
pub struct Filter {
    pub created_gte: Option<i64>,
    pub created_lte: Option<i64>,
    /// Allowed `tag` values (none: any).
    pub tags: Option<Vec<String>>,
    /// Excluded `tag` value (subscriptions hide `canceled` unless `status=all`).
    pub exclude_tag: Option<&'static str>,
    pub customer: Option<String>,
    pub test_clock: ClockFilter,
    /// Only objects whose `active` is this (prices: Stripe lists active ones by default).
    pub active: Option<bool>,
    /// Only invoice items on no invoice yet (`pending=true`), or only those on one (`false`).
    pub pending: Option<bool>,
}

/// Which objects a list shows by their test clock.
#[derive(Default, Debug)]
pub enum ClockFilter {
    /// Every object, on a clock or not.
    #[default]
    Any,
    /// Objects on no test clock: Stripe's plain customer and subscription lists.
    Unclocked,
    /// Objects on this clock (`test_clock=clock_...`).
    Clock(String),
}

impl Filter {
    fn accepts(&self, e: &Entry) -> bool {
        self.created_gte.is_none_or(|g| e.created >= g)
            && self.created_lte.is_none_or(|l| e.created <= l)
            && self.tags.as_ref().is_none_or(|tags| e.tag.as_deref().is_some_and(|t| tags.iter().any(|x| x == t)))
            && self.exclude_tag.is_none_or(|x| e.tag.as_deref() != Some(x))
            && self.customer.as_ref().is_none_or(|c| e.customer.as_deref() == Some(c.as_str()))
            && self.active.is_none_or(|a| e.active == Some(a))
            && self.pending.is_none_or(|p| e.invoiced != p)
            && match &self.test_clock {
                ClockFilter::Any => true,
                ClockFilter::Unclocked => e.test_clock.is_none(),
                ClockFilter::Clock(id) => e.test_clock.as_deref() == Some(id.as_str()),
            }
    }
}

/// Where a page starts.
pub enum Cursor {
    Start,
    After(usize),
    Before(usize),
}

impl Table {
    /// Indexes a JSON Lines file; `tag_field` picks the field used by status/type filters.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone()?);
        let mut entries = Vec::new();
        let mut line = Vec::new();
        let mut offset = 0u64;
        let mut number = 0usize;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            number += 1;
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            if !body.is_empty() {
                let head: Head = serde_json::from_slice(body)
                    .with_context(|| format!("{} line {number}: not a Stripe object", path.display()))?;
                let tag = head.status.or_else(|| head.kind.and_then(|k| k.as_str().map(str::to_string)));
                entries.push(Entry {
                    id: head.id.into(),
                    created: head.created,
                    offset,
                    len: body.len() as u32,
                    tag: tag.map(Into::into),
                    customer: head.customer.and_then(|c| c.as_str().map(Into::into)),
                    test_clock: head.test_clock.and_then(|c| c.as_str().map(Into::into)),
                    active: head.active,
                    invoiced: head.invoice.as_ref().is_some_and(|i| !i.is_null()),
                });
            }
            offset += n as u64;
        }
        // Newest first; ties keep a stable, reproducible order.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|a, b| (entries[*b].created, *b).cmp(&(entries[*a].created, *a)));
        let mut slots: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
        let entries: Vec<Entry> = order.into_iter().map(|i| slots[i].take().expect("each once")).collect();
        let position = entries.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect();
        Ok(Table { file, entries, position })
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of an id in newest-first order.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.position.get(id).copied()
    }

    /// The object with this id.
    pub fn get(&self, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
        self.position(id).map(|i| self.read(i)).transpose()
    }

    fn read(&self, i: usize) -> anyhow::Result<serde_json::Value> {
        let e = &self.entries[i];
        let mut buf = vec![0u8; e.len as usize];
        self.file.read_exact_at(&mut buf, e.offset)?;
        Ok(serde_json::from_slice(&buf)?)
    }

    /// One page: up to `limit` matching objects from `cursor`, newest first, and whether more match.
    pub fn page(
        &self,
        filter: &Filter,
        cursor: Cursor,
        limit: usize,
    ) -> anyhow::Result<(Vec<serde_json::Value>, bool)> {
        let mut picked = Vec::with_capacity(limit);
        let mut has_more = false;
        match cursor {
            Cursor::Start | Cursor::After(_) => {
                let mut i = match cursor {
                    Cursor::After(p) => p + 1,
                    _ => 0,
                };
                // Skip straight past objects newer than the range.
                if let Some(lte) = filter.created_lte {
                    i = i.max(self.entries.partition_point(|e| e.created > lte));
                }
                while i < self.entries.len() {
                    let e = &self.entries[i];
                    if filter.created_gte.is_some_and(|g| e.created < g) {
                        break; // older objects only from here on
                    }
                    if filter.accepts(e) {
                        if picked.len() == limit {
                            has_more = true;
                            break;
                        }
                        picked.push(i);
                    }
                    i += 1;
                }
            }
            Cursor::Before(p) => {
                let mut i = p;
                while i > 0 {
                    i -= 1;
                    let e = &self.entries[i];
                    if filter.created_lte.is_some_and(|l| e.created > l) {
                        break;
                    }
                    if filter.accepts(e) {
                        if picked.len() == limit {
                            has_more = true;
                            break;
                        }
                        picked.push(i);
                    }
                }
                picked.reverse();
            }
        }
        let objects = picked.into_iter().map(|i| self.read(i)).collect::<anyhow::Result<_>>()?;
        Ok((objects, has_more))
    }
}

/// Every table of an account folder, by list path (`customers`, `test_helpers/test_clocks`, ...).
pub struct Store {
    pub tables: HashMap<&'static str, Table>,
    /// Discount objects by id (for `expand[]`), including ones no longer attached.
    pub discounts: Table,
    /// Prices created inline: retrieved by id, never listed (None: an account folder from
    /// before inline prices were simulated).
    pub inline_prices: Option<Table>,
    /// Coupons deleted after their redemptions: embedded in their discounts when expanded,
    /// never listed or retrieved (None: an account folder from before they were simulated).
    pub deleted_coupons: Option<Table>,
    /// Customers deleted: retrieved as a `deleted: true` stub, never listed (R2).
    pub deleted_customers: Option<Table>,
}

impl Store {
    /// Indexes an account folder written by `mrr simulate`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut tables = HashMap::new();
        for (route, file) in OBJECT_FILES {
            let path = dir.join(file);
            if !path.exists() {
                return Err(crate::error::bad_input(format!(
                    "{} is missing: --account must be a folder written by `mrr simulate`",
                    path.display()
                )));
            }
            tables.insert(route, Table::load(&path)?);
        }
        let discounts = Table::load(&dir.join(crate::simulate::DISCOUNTS_FILE))?;
        let optional = |file: &str| {
            let path = dir.join(file);
            if path.exists() {
                Table::load(&path).map(Some)
            } else {
                Ok(None)
            }
        };
        let inline_prices = optional(crate::simulate::INLINE_PRICES_FILE)?;
        let deleted_coupons = optional(crate::simulate::DELETED_COUPONS_FILE)?;
        let deleted_customers = optional(crate::simulate::DELETED_CUSTOMERS_FILE)?;
        Ok(Store { tables, discounts, inline_prices, deleted_coupons, deleted_customers })
    }
}
