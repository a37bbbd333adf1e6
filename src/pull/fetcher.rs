//! Requests to Stripe: one global request-rate governor, retries as Stripe documents them,
//! and one typed list page per object kind and scope, flattened into snapshot rows.
//!
//! Retried (docs/stripe-behaviour.md, "Errors"): what Stripe's `Stripe-Should-Retry` header
//! says when it is sent (E5); otherwise 409, 424, 429 and 5xx, timeouts, dropped
//! connections, and error answers whose body is not Stripe's JSON (a proxy's 502 page).
//! Not retried: 400, 401, 402, 403 and 404, which say the request itself is wrong; a 403
//! becomes a [`Forbidden`] naming the permission Stripe asked for, so the caller can decide
//! whether the object is optional.

use std::time::Duration;

use anyhow::Context;
use stripe_types::RangeQueryTs;
use tokio::sync::Mutex;

use super::http::{ApiError, StripeHttp};
use super::plan::{ObjectKind, Scope};
use crate::error::bad_input;
use crate::snapshot::derive::Kind;
use crate::snapshot::extract;
use crate::snapshot::schema::Row;

/// Stripe's page size ceiling.
pub const PAGE: i64 = 100;

/// Stripe answered 403: the key (a restricted key) lacks a permission for this request.
#[derive(Debug, thiserror::Error)]
#[error("{what}: Stripe answered 403 (permission denied){}: {message}", .permission.as_ref().map(|p| format!(", the key needs `{p}`")).unwrap_or_default())]
pub struct Forbidden {
    pub what: String,
    /// The permission Stripe names (`rak_event_read`), when its message names one.
    pub permission: Option<String>,
    pub message: String,
}

/// The permission a 403 message names: "Having the 'rak_x_read' permission would allow ...".
pub fn named_permission(message: &str) -> Option<String> {
    let rest = &message[message.find("Having the '")? + "Having the '".len()..];
    Some(rest[..rest.find('\'')?].to_string())
}

/// Stripe answered 404: the object does not exist (any more).
#[derive(Debug, thiserror::Error)]
#[error("{what}: Stripe answered 404: {message}")]
pub struct NotFound {
    pub what: String,
    pub message: String,
}

/// Requests with retries under the global governor.
pub struct Fetcher {
    pub client: StripeHttp,
    pub governor: Governor,
    pub max_attempts: u32,
    /// (requests sent, retries)
    pub stats: Mutex<(u64, u64)>,
}

/// One page, flattened.
pub struct Page {
    pub rows: Vec<Row>,
    pub count: usize,
    pub last_id: Option<String>,
    pub newest_created: Option<i64>,
    pub has_more: bool,
    /// Invoices whose embedded lines stop before the end: (id, last line id, lines seen).
    pub invoices_with_more_lines: Vec<(String, String, usize)>,
    /// Subscriptions whose embedded items stop before the end: (id, last item id, items seen).
    pub subscriptions_with_more_items: Vec<(String, String, usize)>,
}

impl Fetcher {
    /// Runs a request with retries: what `Stripe-Should-Retry` says, else 409, 424, 429, 5xx,
    /// timeouts, connection failures and non-JSON error bodies back off and try again;
    /// anything else is a clear, immediate error.
    pub async fn call<T, Fut>(&self, what: &str, request: impl Fn() -> Fut) -> anyhow::Result<T>
    where
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let mut last = String::new();
        for attempt in 1..=self.max_attempts {
            self.governor.acquire().await;
            self.stats.lock().await.0 += 1;
            let error = match request().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let mut rate_limited = false;
            match error {
                ApiError::Status { status, message, should_retry } => {
                    let said = should_retry.map(|b| format!(" (Stripe-Should-Retry: {b})")).unwrap_or_default();
                    match (status, retried(status, message.is_some(), should_retry)) {
                        (_, true) => {}
                        (401, _) => {
                            return Err(bad_input(
                                "Stripe rejected the API key (401): check --api-key / STRIPE_API_KEY",
                            ))
                        }
                        (403, _) => {
                            let message = message.unwrap_or_default();
                            let permission = named_permission(&message);
                            return Err(Forbidden { what: what.to_string(), permission, message }.into());
                        }
                        (404, _) => {
                            let message = message.unwrap_or_default();
                            return Err(NotFound { what: what.to_string(), message }.into());
                        }
                        (status, false) => {
                            let message = message.unwrap_or_else(|| "an answer that is not Stripe's JSON".into());
                            return Err(bad_input(format!("{what}: Stripe answered {status}{said}: {message}")));
                        }
                    }
                    rate_limited = status == 429;
                    last = match message {
                        Some(_) => format!("HTTP {status}{said}"),
                        None => format!("HTTP {status}, an error answer that is not Stripe's JSON{said}"),
                    };
                }
                ApiError::Shape(e) => anyhow::bail!("{what}: unexpected response shape: {e}"),
                ApiError::Transport(e) => last = e,
                ApiError::Timeout => last = "timed out".into(),
            }
            if attempt < self.max_attempts {
                self.stats.lock().await.1 += 1;
                let backoff = backoff(attempt, rate_limited);
                tracing::debug!("{what}: {last}; retry {attempt} in {backoff:?}");
                tokio::time::sleep(backoff).await;
            }
        }
        anyhow::bail!("{what}: giving up after {} attempts (last error: {last})", self.max_attempts)
    }

    /// One page of one object kind's list, in one scope and `created` range, after a cursor.
    pub async fn page(
        &self,
        kind: ObjectKind,
        scope: &Scope,
        (gte, lt): (Option<i64>, Option<i64>),
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
        let what = format!("listing {}", scope.describe(kind));
        let clock = match scope {
            Scope::TestClock(id) => Some(id.clone()),
            _ => None,
        };
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
        let (mut more_lines, mut more_items) = (Vec::new(), Vec::new());
        let (count, has_more, newest_created, last_id, rows) = match kind {
            ObjectKind::Customers => {
                let request = ListCustomer::new().created(range);
                match clock {
                    Some(clock) => list!(request.clone().test_clock(clock.clone()), extract::customer),
                    None => list!(request.clone(), extract::customer),
                }
            }
            ObjectKind::Products => list!(ListProduct::new().created(range), extract::product),
            ObjectKind::Prices => {
                // The plain list has active prices only; inactive ones need `active=false`.
                let request = ListPrice::new().created(range).active(*scope != Scope::InactivePrices);
                // Tiers and currency options are "not included by default" (catalogue L10).
                let includables = vec!["data.tiers".to_string(), "data.currency_options".to_string()];
                list!(request.clone().expand(includables.clone()), extract::price)
            }
            // `applies_to` is "not included by default" (catalogue D4).
            ObjectKind::Coupons => {
                list!(ListCoupon::new().created(range).expand(vec!["data.applies_to".to_string()]), extract::coupon)
            }
            ObjectKind::Subscriptions => {
                let mut request = ListSubscription::new()
                    .created(range)
                    .status(ListSubscriptionStatus::All)
                    .expand(in_list(&SUBSCRIPTION_EXPAND));
                if let Some(clock) = &clock {
                    request = request.test_clock(clock.clone());
                }
                let list = fetch!(request.clone());
                let mut rows = Vec::new();
                for sub in &list.data {
                    rows.extend(extract::subscription(sub));
                    // An item's price is always embedded: archived and inline prices, which no
                    // price list returns, come from here.
                    rows.extend(sub.items.data.iter().flat_map(|item| extract::price(&item.price)));
                    if let (true, Some(last)) = (sub.items.has_more, sub.items.data.last()) {
                        more_items.push((sub.id.to_string(), last.id.to_string(), sub.items.data.len()));
                    }
                }
                let last = list.data.last().map(|o| o.id.to_string());
                (list.data.len(), list.has_more, list.data.first().map(|o| o.created), last, rows)
            }
            ObjectKind::Invoices => {
                let list = fetch!(ListInvoice::new().created(range).expand(in_list(&INVOICE_EXPAND)));
                let mut rows = Vec::new();
                for inv in &list.data {
                    let id = inv.id.as_ref().map(|i| i.to_string()).context("an invoice without an id")?;
                    rows.extend(extract::invoice(inv));
                    rows.extend(inv.lines.data.iter().enumerate().flat_map(|(n, l)| extract::invoice_line(&id, n, l)));
                    if let (true, Some(last)) = (inv.lines.has_more, inv.lines.data.last()) {
                        more_lines.push((id, last.id.to_string(), inv.lines.data.len()));
                    }
                }
                let last = list.data.last().and_then(|o| o.id.as_ref()).map(|i| i.to_string());
                (list.data.len(), list.has_more, list.data.first().map(|o| o.created), last, rows)
            }
            ObjectKind::InvoiceItems => {
                use stripe_billing::invoice_item::ListInvoiceItem;
                let list = fetch!(ListInvoiceItem::new().created(range).pending(true));
                let rows = list.data.iter().flat_map(extract::invoice_item).collect();
                let last = list.data.last().map(|o| o.id.to_string());
                (list.data.len(), list.has_more, list.data.first().map(|o| o.date), last, rows)
            }
            ObjectKind::Events => list!(ListEvent::new().created(range), extract::event),
            ObjectKind::TestClocks => list!(ListTestHelpersTestClock::new(), extract::test_clock),
        };
        Ok(Page {
            rows,
            count,
            last_id,
            newest_created,
            has_more,
            invoices_with_more_lines: more_lines,
            subscriptions_with_more_items: more_items,
        })
    }

    /// Every object of a small, unsliced list (test clocks, coupons), all pages, in its plain scope.
    pub async fn list_all(&self, kind: ObjectKind) -> anyhow::Result<Vec<Row>> {
        let (mut rows, mut after) = (Vec::new(), None::<String>);
        loop {
            let page = self.page(kind, &Scope::Plain, (None, None), after.as_deref(), PAGE).await?;
            rows.extend(page.rows);
            match page.last_id {
                Some(last) if page.has_more => after = Some(last),
                _ => return Ok(rows),
            }
        }
    }

    /// Lines of an invoice beyond those it embeds.
    pub async fn remaining_lines(&self, invoice: &str, last_line: &str, seen: usize) -> anyhow::Result<Vec<Row>> {
        use stripe_billing::invoice_line_item::ListInvoiceInvoiceLineItem;
        let (mut rows, mut after, mut index) = (Vec::new(), last_line.to_string(), seen);
        let what = format!("listing the lines of invoice {invoice}");
        loop {
            let page = self
                .call(&what, || {
                    let r = ListInvoiceInvoiceLineItem::new(invoice)
                        .limit(PAGE)
                        .starting_after(after.clone())
                        .expand(vec!["data.discounts".to_string()]);
                    async move { r.send(&self.client).await }
                })
                .await?;
            for line in &page.data {
                rows.extend(extract::invoice_line(invoice, index, line));
                index += 1;
            }
            match page.data.last() {
                Some(last) if page.has_more => after = last.id.to_string(),
                _ => return Ok(rows),
            }
        }
    }

    /// Items of a subscription beyond those it embeds (`GET /v1/subscription_items`), with
    /// their prices.
    pub async fn remaining_items(&self, subscription: &str, last_item: &str) -> anyhow::Result<Vec<Row>> {
        use stripe_billing::subscription_item::ListSubscriptionItem;
        let (mut rows, mut after) = (Vec::new(), last_item.to_string());
        let what = format!("listing the items of subscription {subscription}");
        loop {
            let page = self
                .call(&what, || {
                    let r = ListSubscriptionItem::new(subscription)
                        .limit(PAGE)
                        .starting_after(after.clone())
                        .expand(vec!["data.discounts".to_string()]);
                    async move { r.send(&self.client).await }
                })
                .await?;
            for item in &page.data {
                rows.extend(extract::subscription_item(subscription, item));
                rows.extend(extract::price(&item.price));
            }
            match page.data.last() {
                Some(last) if page.has_more => after = last.id.to_string(),
                _ => return Ok(rows),
            }
        }
    }

    /// One price by id (`GET /v1/prices/:id`, expanded as [`Self::price_as`] says), `why` it is
    /// retrieved: a price invoice lines name but no list returns (the inline price of a past
    /// item), or a listed tiered price again for the tiers of its currency options.
    pub async fn price(&self, id: &str, why: &str) -> anyhow::Result<Vec<Row>> {
        self.price_as(id, &format!("retrieving price {id}, {why}")).await
    }

    /// A price with its tiers and currency options and, for a tiered price, each option's
    /// tiers: "not included by default. To include it in the response, expand the
    /// `<currency>.tiers` field", one path per currency, known only from a first answer
    /// (catalogue L10).
    async fn price_as(&self, id: &str, what: &str) -> anyhow::Result<Vec<Row>> {
        use stripe_product::price::RetrievePrice;
        let retrieve = |expand: Vec<String>| {
            self.call(what, move || {
                let r = RetrievePrice::new(id).expand(expand.clone());
                async move { r.send(&self.client).await }
            })
        };
        let mut expand = vec!["tiers".to_string(), "currency_options".to_string()];
        let mut price = retrieve(expand.clone()).await?;
        let untiered = untiered_options(&price);
        if !untiered.is_empty() {
            expand.extend(untiered.iter().map(|currency| format!("currency_options.{currency}.tiers")));
            price = retrieve(expand).await?;
        }
        Ok(extract::price(&price))
    }

    /// One object's current state by id (`GET /v1/<objects>/:id`), with the same expansions
    /// and the same complete child lists as the list pages, as rows; and the rows of the prices
    /// a subscription's items embed. `None` when Stripe no longer has the object (404, or a
    /// customer retrieved as deleted).
    pub async fn object(&self, kind: Kind, id: &str) -> anyhow::Result<Option<(Vec<Row>, Vec<Row>)>> {
        use stripe_billing::invoice::RetrieveInvoice;
        use stripe_billing::subscription::RetrieveSubscription;
        use stripe_billing::test_helpers_test_clock::RetrieveTestHelpersTestClock;
        use stripe_core::customer::{RetrieveCustomer, RetrieveCustomerReturned};
        use stripe_product::coupon::RetrieveCoupon;
        use stripe_product::product::RetrieveProduct;
        let what = format!("retrieving {} {id}", kind.table().trim_end_matches('s').replace('_', " "));
        let c = &self.client;
        macro_rules! retrieve {
            ($req:expr) => {
                match self
                    .call(&what, || {
                        let r = $req;
                        async move { r.send(c).await }
                    })
                    .await
                {
                    Ok(object) => object,
                    Err(e) if e.downcast_ref::<NotFound>().is_some() => return Ok(None),
                    Err(e) => return Err(e),
                }
            };
        }
        let mut embedded_prices = Vec::new();
        let rows = match kind {
            Kind::Customer => match retrieve!(RetrieveCustomer::new(id)) {
                RetrieveCustomerReturned::Customer(customer) => extract::customer(&customer),
                // "If it's for a deleted Customer, a subset of the customer's information is returned."
                RetrieveCustomerReturned::DeletedCustomer(_) => return Ok(None),
            },
            Kind::Subscription => {
                let sub = retrieve!(RetrieveSubscription::new(id).expand(SUBSCRIPTION_EXPAND.map(String::from)));
                let mut rows = extract::subscription(&sub);
                embedded_prices.extend(sub.items.data.iter().flat_map(|item| extract::price(&item.price)));
                if let (true, Some(last)) = (sub.items.has_more, sub.items.data.last()) {
                    for row in self.remaining_items(id, last.id.as_str()).await? {
                        if row.table == "prices" || row.table.starts_with("price_") {
                            embedded_prices.push(row);
                        } else {
                            rows.push(row);
                        }
                    }
                }
                rows
            }
            Kind::Invoice => {
                let inv = retrieve!(RetrieveInvoice::new(id).expand(INVOICE_EXPAND.map(String::from)));
                let mut rows = extract::invoice(&inv);
                rows.extend(inv.lines.data.iter().enumerate().flat_map(|(n, l)| extract::invoice_line(id, n, l)));
                if let (true, Some(last)) = (inv.lines.has_more, inv.lines.data.last()) {
                    rows.extend(self.remaining_lines(id, last.id.as_str(), inv.lines.data.len()).await?);
                }
                rows
            }
            Kind::Product => extract::product(&retrieve!(RetrieveProduct::new(id))),
            Kind::Price => match self.price_as(id, &what).await {
                Ok(rows) => rows,
                Err(e) if e.downcast_ref::<NotFound>().is_some() => return Ok(None),
                Err(e) => return Err(e),
            },
            Kind::Coupon => extract::coupon(&retrieve!(RetrieveCoupon::new(id))),
            Kind::TestClock => extract::test_clock(&retrieve!(RetrieveTestHelpersTestClock::new(id))),
            Kind::Discount => anyhow::bail!("a discount has no endpoint of its own: retrieve its subscription"),
        };
        Ok(Some((rows, embedded_prices)))
    }
}

/// The currencies of a tiered price's options that came without their tiers.
fn untiered_options(price: &stripe_shared::Price) -> Vec<String> {
    if price.billing_scheme != stripe_shared::PriceBillingScheme::Tiered {
        return Vec::new();
    }
    let options = price.currency_options.iter().flatten();
    let mut currencies: Vec<String> = options.filter(|(_, o)| o.tiers.is_none()).map(|(c, _)| c.to_string()).collect();
    currencies.sort();
    currencies
}

/// What a retrieved subscription expands: its discounts with their coupons (a deleted one is in
/// no list, D1), its items' prices (archived and inline ones are in no list, L3) and its
/// items' discounts (ids unless expanded, D7). A list asks for the same under `data.`.
const SUBSCRIPTION_EXPAND: [&str; 4] =
    ["discounts", "discounts.source.coupon", "items.data.price", "items.data.discounts"];

/// What a retrieved invoice expands: its discounts with their coupons, and its lines' discounts,
/// which keep an item-level discount taken off its item since (D7).
const INVOICE_EXPAND: [&str; 3] = ["discounts", "discounts.source.coupon", "lines.data.discounts"];

/// A retrieval's expansions as a list asks for them, on each of its `data`.
fn in_list(expand: &[&str]) -> Vec<String> {
    expand.iter().map(|e| format!("data.{e}")).collect()
}

/// Statuses Stripe documents as worth retrying: 409 (a conflict with a concurrent request),
/// 424 (an external dependency failed), 429 and 5xx.
fn retryable(status: u16) -> bool {
    matches!(status, 409 | 424 | 429) || status >= 500
}

/// Whether a failed request is tried again: as Stripe's `Stripe-Should-Retry` header says
/// when it is sent ("`true` indicates that a client should retry the request", "`false`
/// means that a client should *not* retry the request because it won't have an additional
/// effect"), otherwise by [`retryable`] status, and always for an answer that is not Stripe's
/// error JSON (a proxy's page: Stripe itself never answered).
fn retried(status: u16, stripe_json: bool, should_retry: Option<bool>) -> bool {
    should_retry.unwrap_or(retryable(status) || !stripe_json)
}

/// Backoff before retry `attempt` (1-based): exponential, capped, with jitter so parallel
/// workers do not retry in lockstep. Rate limits start higher.
fn backoff(attempt: u32, rate_limited: bool) -> Duration {
    // The governor already spaces requests: a 429 needs only a short pause, errors a longer one.
    let base_ms: u64 = if rate_limited { 100 } else { 250 };
    let cap = base_ms.saturating_mul(1 << (attempt - 1).min(5)).min(8_000);
    let jitter = crate::rng::Rng::for_stream(crate::calendar::now() as u64, std::process::id() as u64 ^ attempt as u64)
        .below(cap / 2 + 1);
    Duration::from_millis(cap / 2 + jitter)
}

/// One global request-rate ceiling shared by every worker: requests are spaced evenly.
pub struct Governor {
    interval: Duration,
    next: Mutex<tokio::time::Instant>,
}

impl Governor {
    pub fn new(rps: f64) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_comes_from_stripes_own_message() {
        let message = "The provided key 'rk_test_***Kgd' does not have the required permissions for this endpoint \
                       on account 'acct_1'. Having the 'rak_event_read' permission would allow this request to continue.";
        assert_eq!(named_permission(message).as_deref(), Some("rak_event_read"));
        assert_eq!(named_permission("no permission named"), None);
    }

    #[test]
    fn retried_statuses_are_the_ones_stripe_calls_transient() {
        for status in [409, 424, 429, 500, 502, 503, 504] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 402, 403, 404] {
            assert!(!retryable(status), "{status}");
        }
    }

    #[test]
    fn stripe_should_retry_overrides_the_status_both_ways() {
        assert!(!retried(503, true, Some(false)), "Stripe says another try has no effect");
        assert!(!retried(429, true, Some(false)));
        assert!(retried(400, true, Some(true)), "Stripe says the request is retryable");
        assert!(retried(503, true, None) && !retried(400, true, None), "no header: by status");
        assert!(retried(404, false, None), "a proxy's page, not Stripe's answer");
    }
}
