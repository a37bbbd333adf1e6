//! The invoices a subscription's timeline produces, as Stripe Billing would issue
//! them: a $0 invoice for a trial, one per billing period in advance (metered usage
//! in arrears), proration invoices at mid-period changes, coupons and exclusive taxes.
//!
//! Invoices feed only the emitted objects; the ground truth never reads them.

use super::catalog::{Catalog, Off, Usage};
use super::model::{FailureOutcome, ItemState, PauseBehavior, Proration, SimCustomer, SimSubscription};
use crate::money::round_half_even;
use crate::rng::{stripe_id, Rng};

/// Id kinds for [`stripe_id`], one per object type, so ids never collide.
pub mod kind {
    pub const CUSTOMER: u64 = 1;
    pub const SUBSCRIPTION: u64 = 2;
    pub const ITEM: u64 = 3;
    pub const DISCOUNT: u64 = 4;
    pub const INVOICE: u64 = 5;
    pub const LINE: u64 = 6;
    pub const EVENT: u64 = 7;
    pub const CLOCK: u64 = 8;
    pub const INVOICE_ITEM: u64 = 9;
    /// A one-off invoice's line and invoice item.
    pub const ONE_OFF: u64 = 10;
    /// A test clock's own event.
    pub const CLOCK_EVENT: u64 = 11;
}

/// One invoice line.
#[derive(Clone, Debug)]
pub struct SimLine {
    pub id: String,
    /// The subscription item slot and the catalogue price it bills (unused on a one-off
    /// invoice's line, which has neither).
    pub slot: usize,
    pub price: usize,
    pub quantity: u32,
    pub amount: i64,
    /// What each discount took off the line (its id, minor units), in the order applied: an
    /// item's discount before its subscription's (D7).
    pub discounts: Vec<(String, i64)>,
    pub tax: i64,
    pub period: (i64, i64),
    pub proration: bool,
    pub description: String,
    /// The invoice item the line bills (a proration, U1).
    pub invoice_item: Option<String>,
}

impl SimLine {
    /// What its discounts took off.
    pub fn discount(&self) -> i64 {
        self.discounts.iter().map(|(_, off)| off).sum()
    }
}

/// One invoice and how its payment went.
#[derive(Clone, Debug)]
pub struct SimInvoice {
    pub id: String,
    pub number: String,
    /// Index into the customer's subscriptions; `None`: a one-off invoice.
    pub subscription: Option<usize>,
    pub created: i64,
    pub period: (i64, i64),
    pub billing_reason: &'static str,
    pub lines: Vec<SimLine>,
    pub paid_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub uncollectible_at: Option<i64>,
    pub voided_at: Option<i64>,
    /// Never finalized: created while collection was paused with `keep_as_draft`, or a
    /// one-off draft.
    pub draft: bool,
    /// When the merchant deleted it (a one-off draft): in no list since.
    pub deleted_at: Option<i64>,
}

impl SimInvoice {
    /// Sum of line amounts before discounts and taxes.
    pub fn subtotal(&self) -> i64 {
        self.lines.iter().map(|l| l.amount).sum()
    }
    /// Total discount.
    pub fn discount(&self) -> i64 {
        self.lines.iter().map(SimLine::discount).sum()
    }
    /// Total tax.
    pub fn tax(&self) -> i64 {
        self.lines.iter().map(|l| l.tax).sum()
    }
    /// Amount charged.
    pub fn total(&self) -> i64 {
        self.subtotal() - self.discount() + self.tax()
    }
    /// Stripe's invoice status at `t` (`t >= created`).
    pub fn status_at(&self, t: i64) -> &'static str {
        let at = |x: Option<i64>| x.is_some_and(|x| x <= t);
        if self.draft {
            "draft"
        } else if at(self.voided_at) {
            "void"
        } else if at(self.uncollectible_at) {
            "uncollectible"
        } else if at(self.paid_at) {
            "paid"
        } else {
            "open"
        }
    }
}

/// A proration (catalogue U1): an invoice item, pending until an invoice bills it as a line
/// naming it (at once under `always_invoice`, the next invoice under `create_prorations`).
#[derive(Clone, Debug)]
pub struct SimInvoiceItem {
    pub id: String,
    /// Index into the customer's subscriptions; `None`: a one-off invoice's item.
    pub subscription: Option<usize>,
    /// When the change was made (`date`).
    pub created: i64,
    pub line: SimLine,
    /// The invoice that billed it by `now` (None: still pending, or deleted).
    pub invoice: Option<String>,
    /// When the merchant deleted it, if by `now` (it is listed no more).
    pub deleted_at: Option<i64>,
}

/// What a customer has been billed by `now`.
#[derive(Default)]
pub struct Billing {
    /// Every invoice created at or before `now`, oldest first.
    pub invoices: Vec<SimInvoice>,
    /// Every proration's invoice item created at or before `now`, pending or invoiced since.
    pub invoice_items: Vec<SimInvoiceItem>,
}

impl Billing {
    /// How many invoices created by `t` took a number (every finalized one, see
    /// [`customer_billing`]): the customer's `next_invoice_sequence` follows them.
    pub fn numbered_by(&self, t: i64) -> usize {
        self.invoices.iter().filter(|i| i.created <= t && !i.draft).count()
    }
}

/// Every invoice of a customer created at or before `now`, oldest first.
pub fn customer_invoices(customer: &SimCustomer, catalog: &Catalog, seed: u64, now: i64) -> Vec<SimInvoice> {
    customer_billing(customer, catalog, seed, now).invoices
}

/// A customer's invoices and pending prorations at `now`.
pub fn customer_billing(customer: &SimCustomer, catalog: &Catalog, seed: u64, now: i64) -> Billing {
    let mut billing = Billing::default();
    for (s, sub) in customer.subscriptions.iter().enumerate() {
        subscription_invoices(customer, s, sub, catalog, seed, now, &mut billing);
    }
    one_off_invoices(customer, seed, now, &mut billing);
    // A subscription that starts after `now` (a later --horizon) has not opened its trial yet.
    billing.invoices.retain(|i| i.created <= now);
    billing.invoices.sort_by_key(|i| i.created);
    // Stripe numbers an invoice when it finalizes it: a draft (left one, or deleted) takes no
    // number of the customer's sequence.
    let mut finalized = 0;
    for (n, inv) in billing.invoices.iter_mut().enumerate() {
        inv.id = stripe_id("in", seed, kind::INVOICE, customer.index * 4096 + n as u64);
        if !inv.draft {
            finalized += 1;
            inv.number = format!("{}-{:04}", invoice_prefix(customer), finalized);
        }
    }
    billing.invoice_items.retain(|p| p.created <= now);
    // An item billed by now is on the invoice whose line names it.
    let billed_by: std::collections::HashMap<&str, &str> = billing
        .invoices
        .iter()
        .flat_map(|inv| inv.lines.iter().filter_map(|l| Some((l.invoice_item.as_deref()?, inv.id.as_str()))))
        .collect();
    for item in &mut billing.invoice_items {
        item.invoice = billed_by.get(item.id.as_str()).map(|inv| inv.to_string());
    }
    billing
}

/// A customer's one-off invoices, each billing one invoice item created a minute before it.
fn one_off_invoices(customer: &SimCustomer, seed: u64, now: i64, billing: &mut Billing) {
    for (n, one_off) in customer.one_off_invoices.iter().enumerate() {
        let deleted_at = one_off.deleted_at.filter(|t| *t <= now);
        let id = |prefix| stripe_id(prefix, seed, kind::ONE_OFF, customer.index * 16 + n as u64);
        let (created, item_id) = (one_off.created, id("ii"));
        let line = SimLine {
            id: id("il"),
            slot: 0,
            price: 0,
            quantity: 1,
            amount: one_off.amount,
            discounts: Vec::new(),
            tax: 0,
            period: (created, created),
            proration: false,
            description: one_off.description.to_string(),
            invoice_item: Some(item_id.clone()),
        };
        billing.invoice_items.push(SimInvoiceItem {
            id: item_id,
            subscription: None,
            created: created - 60,
            line: line.clone(),
            invoice: None,
            deleted_at,
        });
        billing.invoices.push(SimInvoice {
            id: String::new(),
            number: String::new(),
            subscription: None,
            created,
            period: (created, created),
            billing_reason: "manual",
            lines: vec![line],
            paid_at: one_off.finalized.then_some(created + 60),
            failed_at: None,
            uncollectible_at: None,
            voided_at: None,
            draft: !one_off.finalized,
            deleted_at,
        });
    }
}

/// The customer's invoice number prefix.
pub fn invoice_prefix(customer: &SimCustomer) -> String {
    format!("{:08X}", customer.index.wrapping_mul(2_654_435_761) & 0xFFFF_FFFF)
}

fn subscription_invoices(
    customer: &SimCustomer,
    s: usize,
    sub: &SimSubscription,
    catalog: &Catalog,
    seed: u64,
    now: i64,
    billing: &mut Billing,
) {
    let Billing { invoices: out, invoice_items } = billing;
    // Numbered per subscription, prorations apart from periods, so a line keeps its id
    // however far the account has run (`--horizon`).
    let line_id = |n: u64| stripe_id("il", seed, kind::LINE, customer.index * 65_536 + s as u64 * 4096 + n);
    let mut period_lines = 0u64;
    let mut next_line_id = || {
        period_lines += 1;
        line_id(period_lines)
    };
    let stop = sub.ends_at().unwrap_or(i64::MAX).min(now + 1);
    let unpaid_from = match sub.failure.map(|f| f.outcome) {
        Some(FailureOutcome::Unpaid(at)) => at,
        _ => i64::MAX,
    };
    let blank = |created, period, reason| SimInvoice {
        id: String::new(),
        number: String::new(),
        subscription: Some(s),
        created,
        period,
        billing_reason: reason,
        lines: Vec::new(),
        paid_at: Some(created),
        failed_at: None,
        uncollectible_at: None,
        voided_at: None,
        draft: false,
        deleted_at: None,
    };

    // A trial opens with a $0 invoice covering the trial.
    if let Some(trial_end) = sub.trial_end {
        let mut inv = blank(sub.start, (sub.start, trial_end), "subscription_create");
        for item in &sub.phase_at(sub.start).items {
            let price = &catalog.prices[item.price];
            let mut line = new_line(item, catalog, sub.currency, (sub.start, trial_end), next_line_id());
            line.amount = 0;
            line.description = format!("Trial period for {}", catalog.products[price.product].name);
            inv.lines.push(line);
        }
        out.push(inv);
    }

    // One invoice per billing period, in advance; metered usage in arrears.
    let mut k = 0;
    loop {
        let start = sub.period_start(k);
        if start >= stop || start >= unpaid_from {
            break;
        }
        let period = (start, sub.period_start(k + 1));
        let reason = if k == 0 && sub.trial_end.is_none() { "subscription_create" } else { "subscription_cycle" };
        let mut inv = blank(start, period, reason);
        for item in &sub.phase_at(start).items {
            let price = &catalog.prices[item.price];
            if price.usage == Usage::Metered {
                if k > 0 {
                    let mut line =
                        new_line(item, catalog, sub.currency, (sub.period_start(k - 1), start), next_line_id());
                    let usage = Rng::for_stream(seed, customer.index ^ (k as u64) << 40).below(50_000) as u32;
                    line.quantity = usage;
                    line.amount = usage as i64 * price.unit_amount;
                    inv.lines.push(line);
                }
            } else {
                inv.lines.push(new_line(item, catalog, sub.currency, period, next_line_id()));
            }
        }
        apply_coupon(sub, catalog, &mut inv);
        if let Some(f) = sub.failure.filter(|f| f.period == k) {
            inv.paid_at = None;
            inv.failed_at = Some(f.failed_at);
            match f.outcome {
                FailureOutcome::Recovered(at) => inv.paid_at = Some(at),
                FailureOutcome::Unpaid(at) => inv.uncollectible_at = Some(at),
                FailureOutcome::Canceled(at) => inv.voided_at = Some(at),
            }
        } else {
            inv.paid_at = Some(start + 3600);
        }
        // Collection paused: the invoice is still issued, and settled as the pause says (P1).
        if let Some(pause) = sub.pause_at(start) {
            inv.paid_at = None;
            match pause.behavior {
                PauseBehavior::KeepAsDraft => inv.draft = true,
                PauseBehavior::MarkUncollectible => inv.uncollectible_at = Some(start),
                PauseBehavior::Void => inv.voided_at = Some(start),
            }
        }
        out.push(inv);
        k += 1;
    }

    // Mid-period changes are prorated as their `proration_behavior` says: on an invoice of
    // their own (always_invoice), on the next renewal's invoice (create_prorations: pending
    // until then, so in no invoice yet when that renewal lies ahead), or not at all (none).
    let mut proration_lines = 2048u64;
    let mut next_line_id = || {
        proration_lines += 1;
        line_id(proration_lines)
    };
    // Numbered per subscription in the order the changes were made, like its lines.
    let mut invoice_item_count = 0u64;
    let mut next_invoice_item_id = || {
        invoice_item_count += 1;
        stripe_id("ii", seed, kind::INVOICE_ITEM, customer.index * 65_536 + s as u64 * 4096 + invoice_item_count)
    };
    for pair in sub.phases.windows(2) {
        let (old, new, at) = (&pair[0], &pair[1], pair[1].from);
        let k = sub.period_at(at);
        if k < 0 || at >= stop || at == sub.period_start(k) || new.proration == Proration::None {
            continue;
        }
        let period = (sub.period_start(k), sub.period_start(k + 1));
        let remaining = (period.1 - at) as i128;
        let length = (period.1 - period.0) as i128;
        let mut inv = blank(at, (at, at), "subscription_update");
        inv.paid_at = Some(at + 60);
        let renewal = sub.period_start(k + 1);
        let prorate = |amount: i64| round_half_even(amount as i128 * remaining, length) as i64;
        for item in old.items.iter().filter(|i| !new.items.contains(i)) {
            let mut line = new_line(item, catalog, sub.currency, (at, period.1), next_line_id());
            line.amount = -prorate(line.amount);
            line.proration = true;
            line.description =
                format!("Unused time on {} after {}", line.description, crate::calendar::format_rfc3339(at));
            inv.lines.push(line);
        }
        for item in new.items.iter().filter(|i| !old.items.contains(i)) {
            let mut line = new_line(item, catalog, sub.currency, (at, period.1), next_line_id());
            line.amount = prorate(line.amount);
            line.proration = true;
            line.description =
                format!("Remaining time on {} after {}", line.description, crate::calendar::format_rfc3339(at));
            inv.lines.push(line);
        }
        // Each proration is an invoice item, billed by a line naming it: on an invoice of its
        // own at once (always_invoice), or pending until the renewal's invoice, if there is
        // one by `now` (create_prorations).
        let deleted_at = match new.proration {
            Proration::PendingDeletedAt(t) => Some(t).filter(|t| *t <= now),
            _ => None,
        };
        for line in &mut inv.lines {
            let id = next_invoice_item_id();
            line.invoice_item = Some(id.clone());
            let item = SimInvoiceItem {
                id,
                subscription: Some(s),
                created: at,
                line: line.clone(),
                invoice: None,
                deleted_at,
            };
            invoice_items.push(item);
        }
        if new.proration == Proration::AlwaysInvoice {
            out.push(inv);
        } else if let Some(next) = out
            .iter_mut()
            .find(|i| i.subscription == Some(s) && i.period.0 == renewal && i.billing_reason == "subscription_cycle")
            .filter(|next| deleted_at.is_none_or(|t| next.created < t))
        {
            next.lines.extend(inv.lines);
        }
    }

    if let Some(rate) = customer.tax_percent {
        for inv in out.iter_mut().filter(|i| i.subscription == Some(s)) {
            for line in &mut inv.lines {
                line.tax = round_half_even((line.amount - line.discount()) as i128 * rate as i128, 100) as i64;
            }
        }
    }
}

fn new_line(item: &ItemState, catalog: &Catalog, currency: &str, period: (i64, i64), id: String) -> SimLine {
    let price = &catalog.prices[item.price];
    SimLine {
        id,
        slot: item.slot,
        price: item.price,
        quantity: item.quantity,
        amount: price.billed(item.quantity, currency),
        discounts: Vec::new(),
        tax: 0,
        period,
        proration: false,
        description: format!("{} × {} ({})", item.quantity, catalog.products[price.product].name, price.nickname),
        invoice_item: None,
    }
}

/// Stripe applies a coupon to the invoices created while its discount lasts: an item's
/// discount first, then its subscription's on what that left ("Subscription item discounts
/// are applied before subscription discounts", D7), each line's part in whole minor units.
fn apply_coupon(sub: &SimSubscription, catalog: &Catalog, inv: &mut SimInvoice) {
    for d in sub.discounts_applied_at(catalog, inv.created) {
        let coupon = &catalog.coupons[d.coupon];
        // Only the lines of the products the coupon applies to (D4), and of its item if it has one (D7).
        let eligible = |l: &SimLine| {
            l.amount - l.discount() > 0
                && coupon.applies_to_product(catalog.prices[l.price].product)
                && d.item.is_none_or(|slot| slot == l.slot)
        };
        let take = |line: &mut SimLine, off: i64| {
            if off > 0 {
                line.discounts.push((d.id.clone(), off));
            }
        };
        match coupon.off {
            Off::Percent(p) => {
                let hundredths = crate::money::percent_to_hundredths(p);
                for line in inv.lines.iter_mut().filter(|l| eligible(l)) {
                    let off = round_half_even((line.amount - line.discount()) as i128 * hundredths, 10_000) as i64;
                    take(line, off);
                }
            }
            Off::Amount { .. } => {
                // In the invoice's currency: the coupon's own amount or its option's (D6).
                let mut left = coupon.amount_off_in(sub.currency).expect("an amount-off coupon");
                for line in inv.lines.iter_mut().filter(|l| eligible(l)) {
                    let off = left.min(line.amount - line.discount());
                    left -= off;
                    take(line, off);
                }
            }
        }
    }
}
