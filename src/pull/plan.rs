//! What a pull lists, and how it cuts each list into slices.
//!
//! Stripe's plain lists leave objects out (docs/stripe-behaviour.md, "Lists"): customers and
//! subscriptions on test clocks, inactive (archived) prices. So a pull walks each list in
//! every scope that together returns everything: prices active and inactive, and, in test
//! mode, customers and subscriptions of each test clock besides the plain lists. Test clocks
//! exist only in test mode, so a live key never lists them. Events and test clocks are
//! optional: a restricted key without permission for them gets a warning, not a failed pull.

use serde::{Deserialize, Serialize};

use super::fetcher::{Fetcher, Forbidden, PAGE};

/// Before Stripe existed: the floor of the search for an account's oldest object.
const STRIPE_EPOCH: i64 = 1_262_304_000; // 2010-01-01

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
    /// Pending invoice items only (`pending=true`): an invoiced one is a line of its invoice.
    InvoiceItems,
    Events,
    TestClocks,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 9] = [
        ObjectKind::Customers,
        ObjectKind::Products,
        ObjectKind::Prices,
        ObjectKind::Coupons,
        ObjectKind::Subscriptions,
        ObjectKind::Invoices,
        ObjectKind::InvoiceItems,
        ObjectKind::Events,
        ObjectKind::TestClocks,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Customers => "customers",
            ObjectKind::Products => "products",
            ObjectKind::Prices => "prices",
            ObjectKind::Coupons => "coupons",
            ObjectKind::Subscriptions => "subscriptions",
            ObjectKind::Invoices => "invoices",
            ObjectKind::InvoiceItems => "pending_invoice_items",
            ObjectKind::Events => "events",
            ObjectKind::TestClocks => "test_clocks",
        }
    }
    /// Test clocks cannot be filtered by `created`, so they are one slice.
    fn sliceable(self) -> bool {
        self != ObjectKind::TestClocks
    }
    /// Objects a snapshot can do without: their absence is a warning, never a wrong metric
    /// (without pending invoice items an uninvoiced change is dated by its event, or else by
    /// the snapshot's instant, as with `proration_behavior=none`).
    pub fn optional(self) -> bool {
        matches!(self, ObjectKind::InvoiceItems | ObjectKind::Events | ObjectKind::TestClocks)
    }
}

/// The part of a list a slice walks, beyond its `created` range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The plain list.
    #[default]
    Plain,
    /// Prices with `active=false` (the plain price list returns active ones only).
    InactivePrices,
    /// Customers or subscriptions of one test clock (`test_clock=clock_...`), which the plain
    /// lists leave out.
    TestClock(String),
}

impl Scope {
    /// The list in words, for logs and errors.
    pub fn describe(&self, kind: ObjectKind) -> String {
        match self {
            Scope::Plain => kind.name().to_string(),
            Scope::InactivePrices => "inactive prices".to_string(),
            Scope::TestClock(clock) => format!("{} of test clock {clock}", kind.name()),
        }
    }
    /// A file-name-safe tag.
    fn tag(&self) -> String {
        match self {
            Scope::Plain => String::new(),
            Scope::InactivePrices => "-inactive".to_string(),
            Scope::TestClock(clock) => format!("-{clock}"),
        }
    }
}

/// One `created` range of one list, and how far it got.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SliceState {
    pub kind: ObjectKind,
    #[serde(default)]
    pub scope: Scope,
    pub index: usize,
    pub gte: Option<i64>,
    pub lt: Option<i64>,
    /// Id of the last object staged (the next page starts after it).
    pub after: Option<String>,
    /// Bytes of the staging file covered by this checkpoint.
    pub bytes: u64,
    pub objects: u64,
    pub done: bool,
}

impl SliceState {
    pub fn staging(&self, dir: &std::path::Path) -> std::path::PathBuf {
        dir.join("staging").join(format!("{}{}-{:03}.jsonl", self.kind.name(), self.scope.tag(), self.index))
    }
}

/// The slices of a pull, and what it could not read (optional objects a restricted key may
/// not see).
pub struct Plan {
    pub slices: Vec<SliceState>,
    pub warnings: Vec<String>,
}

/// The lists of a pull, in the order their rows are written: every kind in its plain scope,
/// inactive prices right after the active ones; test clocks only in test mode.
pub fn lists(live: bool) -> Vec<(ObjectKind, Scope)> {
    let mut lists = Vec::new();
    for kind in ObjectKind::ALL {
        if kind == ObjectKind::TestClocks && live {
            continue; // test helpers exist in test mode only
        }
        lists.push((kind, Scope::Plain));
        if kind == ObjectKind::Prices {
            lists.push((kind, Scope::InactivePrices));
        }
    }
    lists
}

/// Cuts each list into `created` ranges: a probe page tells small lists apart (one slice), a
/// binary search finds the oldest object of large ones. Lists are planned concurrently, so
/// the searches overlap under the governor. In test mode each test clock adds a customers and
/// a subscriptions slice.
pub async fn plan(f: &Fetcher, per_type: usize, events_since: i64, live: bool) -> anyhow::Result<Plan> {
    let mut lists = lists(live);
    let mut warnings = Vec::new();
    if !live {
        match test_clocks(f).await {
            Ok(clocks) => {
                for clock in clocks {
                    lists.push((ObjectKind::Customers, Scope::TestClock(clock.clone())));
                    lists.push((ObjectKind::Subscriptions, Scope::TestClock(clock)));
                }
            }
            Err(e) => match e.downcast_ref::<Forbidden>() {
                Some(forbidden) => warnings
                    .push(format!("{forbidden}; customers and subscriptions on test clocks are not in this snapshot")),
                None => return Err(e),
            },
        }
    }
    let plans = lists.iter().map(|(kind, scope)| plan_list(f, *kind, scope, per_type, events_since));
    let ranges = futures_util::future::join_all(plans).await;
    let mut slices = Vec::new();
    for ((kind, scope), ranges) in lists.into_iter().zip(ranges) {
        let ranges = match ranges {
            Ok(ranges) => ranges,
            Err(e) if kind.optional() && e.downcast_ref::<Forbidden>().is_some() => {
                warnings.push(format!("{e:#}; the snapshot has no {}", kind.name()));
                continue;
            }
            Err(e) => return Err(e),
        };
        for (index, (gte, lt)) in ranges.into_iter().enumerate() {
            slices.push(SliceState {
                kind,
                scope: scope.clone(),
                index,
                gte,
                lt,
                after: None,
                bytes: 0,
                objects: 0,
                done: false,
            });
        }
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(Plan { slices, warnings })
}

/// Every test clock's id (all pages).
async fn test_clocks(f: &Fetcher) -> anyhow::Result<Vec<String>> {
    let rows = f.list_all(ObjectKind::TestClocks).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.cells.into_iter().next() {
            Some(crate::snapshot::schema::Cell::Str(id)) => Some(id),
            _ => None,
        })
        .collect())
}

/// The `created` ranges of one list: [gte, lt) pairs, oldest first.
async fn plan_list(
    f: &Fetcher,
    kind: ObjectKind,
    scope: &Scope,
    per_type: usize,
    events_since: i64,
) -> anyhow::Result<Vec<(Option<i64>, Option<i64>)>> {
    let floor = if kind == ObjectKind::Events { events_since } else { STRIPE_EPOCH };
    if !kind.sliceable() {
        // One probe, so that a key without permission is known before any slice is staged.
        f.page(kind, scope, (None, None), None, 1).await?;
        return Ok(vec![(None, None)]);
    }
    let probe = f.page(kind, scope, (Some(floor), None), None, PAGE).await?;
    if per_type == 1 || !probe.has_more || matches!(scope, Scope::TestClock(_)) {
        return Ok(vec![(Some(floor), None)]);
    }
    let newest = probe.newest_created.expect("a page with more has objects");
    // Smallest t with an object created in [floor, t].
    let (mut lo, mut hi) = (floor, newest);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if f.page(kind, scope, (Some(floor), Some(mid + 1)), None, 1).await?.count > 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_key_never_lists_test_clocks_and_prices_are_listed_both_ways() {
        let live = lists(true);
        assert!(!live.iter().any(|(k, _)| *k == ObjectKind::TestClocks));
        assert!(lists(false).iter().any(|(k, _)| *k == ObjectKind::TestClocks));
        for l in [live, lists(false)] {
            assert!(l.contains(&(ObjectKind::Prices, Scope::Plain)));
            assert!(l.contains(&(ObjectKind::Prices, Scope::InactivePrices)));
        }
    }

    #[test]
    fn staging_files_of_scopes_never_collide() {
        let slice = |kind, scope| SliceState {
            kind,
            scope,
            index: 0,
            gte: None,
            lt: None,
            after: None,
            bytes: 0,
            objects: 0,
            done: false,
        };
        let dir = std::path::Path::new("/w");
        let a = slice(ObjectKind::Prices, Scope::Plain).staging(dir);
        let b = slice(ObjectKind::Prices, Scope::InactivePrices).staging(dir);
        let c = slice(ObjectKind::Customers, Scope::TestClock("clock_1".into())).staging(dir);
        assert_ne!(a, b);
        assert!(c.ends_with("staging/customers-clock_1-000.jsonl"), "{}", c.display());
    }
}
