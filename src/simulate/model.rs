//! What happened in the simulated account: customers and their subscriptions as
//! timelines (phases of items, trials, payment failures, cancellations).
//!
//! Both outputs derive from this one model and never from each other: the Stripe
//! objects (rendered as they looked at any instant) and the ground truth metrics.

use super::catalog::{Catalog, Duration};
use crate::money::Interval;

/// Subscription status, as Stripe names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Canceled,
}

impl Status {
    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Trialing => "trialing",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Unpaid => "unpaid",
            Status::Canceled => "canceled",
        }
    }
}

/// A customer and everything they subscribed to.
#[derive(Clone, Debug)]
pub struct SimCustomer {
    /// Position in the account (drives its random stream and its ids).
    pub index: u64,
    pub id: String,
    pub created: i64,
    pub currency: &'static str,
    pub name: String,
    pub email: String,
    /// Index into the account's test clocks.
    pub test_clock: Option<usize>,
    /// The edge case of the metric contract this customer exercises (full scenario).
    pub case: Option<&'static str>,
    /// Exclusive tax rate in percent added to every invoice (never MRR).
    pub tax_percent: Option<u32>,
    /// When the merchant deleted the customer (R2): its subscriptions were canceled then, it is
    /// listed no more and retrieves as a `deleted: true` stub.
    pub deleted_at: Option<i64>,
    pub subscriptions: Vec<SimSubscription>,
    /// Invoices billed by hand, outside any subscription (never MRR).
    pub one_off_invoices: Vec<OneOffInvoice>,
}

/// A one-off invoice (`billing_reason: manual`, no subscription): one invoice item of `amount`
/// in the customer's currency, with no price (Stripe's own example invoice is one).
#[derive(Clone, Debug)]
pub struct OneOffInvoice {
    pub created: i64,
    pub amount: i64,
    pub description: &'static str,
    /// Finalized and paid at once; `false`: left a draft.
    pub finalized: bool,
    /// When the merchant deleted it, a draft (and its item first): "Permanently deletes a
    /// one-off invoice draft" (U2).
    pub deleted_at: Option<i64>,
}

/// One item slot of a subscription (keeps its `si_` id when its price changes).
#[derive(Clone, Debug)]
pub struct SimItem {
    pub id: String,
    pub created: i64,
}

/// An item's configuration during a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemState {
    /// Index into [`SimSubscription::items`].
    pub slot: usize,
    /// Index into [`Catalog::prices`].
    pub price: usize,
    pub quantity: u32,
}

/// From `from` on (until the next phase), the subscription has these items.
#[derive(Clone, Debug)]
pub struct Phase {
    pub from: i64,
    pub items: Vec<ItemState>,
    /// How Stripe billed the change that opened this phase (ignored for the first).
    pub proration: Proration,
}

impl Phase {
    /// A phase whose change was invoiced at once.
    pub fn invoiced(from: i64, items: Vec<ItemState>) -> Phase {
        Phase { from, items, proration: Proration::AlwaysInvoice }
    }
}

/// `proration_behavior` of a subscription update (docs/stripe-behaviour.md, U1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proration {
    /// Prorations invoiced at once, on an invoice of their own.
    AlwaysInvoice,
    /// Stripe's default: prorations wait as pending invoice items for the next invoice.
    CreateProrations,
    /// `create_prorations`, and the merchant deleted the pending items at this instant, before
    /// any invoice billed them (U1: "Deleting invoice items is only possible when they're not
    /// attached to invoices").
    PendingDeletedAt(i64),
    /// No prorations: the next renewal simply bills the new items.
    None,
}

/// A coupon applied to a subscription.
#[derive(Clone, Debug)]
pub struct SimDiscount {
    pub id: String,
    pub coupon: usize,
    pub start: i64,
    /// When it was taken off the subscription before its coupon's own end (D2).
    pub removed: Option<i64>,
    /// A customer-level discount, which a subscription without discounts of its own inherits
    /// (D3): listed on the customer, not on the subscription.
    pub inherited: bool,
    /// An item-level discount: on this item only (an index into [`SimSubscription::items`]),
    /// listed on the item, not on the subscription (D7).
    pub item: Option<usize>,
}

/// `pause_collection[behavior]`: what happens to the invoices created while collection is
/// paused (docs/stripe-behaviour.md, P1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseBehavior {
    /// Left as drafts, not finalized (`auto_advance` off), to be collected later.
    KeepAsDraft,
    /// Finalized and marked uncollectible at once.
    MarkUncollectible,
    /// Finalized and voided at once.
    Void,
}

impl PauseBehavior {
    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseBehavior::KeepAsDraft => "keep_as_draft",
            PauseBehavior::MarkUncollectible => "mark_uncollectible",
            PauseBehavior::Void => "void",
        }
    }
}

/// Payment collection paused from `from` until `resumes_at` (or for good): the subscription
/// keeps its status and goes on issuing invoices, which `behavior` settles.
#[derive(Clone, Copy, Debug)]
pub struct CollectionPause {
    pub from: i64,
    pub resumes_at: Option<i64>,
    pub behavior: PauseBehavior,
}

/// How a failed renewal payment played out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The retry succeeded at this time (past_due until then).
    Recovered(i64),
    /// Retries exhausted: the subscription was canceled at this time.
    Canceled(i64),
    /// Retries exhausted: the subscription was marked unpaid at this time.
    Unpaid(i64),
}

/// A renewal invoice whose payment failed.
#[derive(Clone, Copy, Debug)]
pub struct PaymentFailure {
    /// Billing period index whose invoice failed.
    pub period: i64,
    pub failed_at: i64,
    pub outcome: FailureOutcome,
}

/// A cancellation requested by the customer.
#[derive(Clone, Debug)]
pub struct Cancellation {
    pub requested_at: i64,
    /// When the subscription stops (may lie after the account's `now`: still pending).
    pub ends_at: i64,
    pub at_period_end: bool,
    pub reason: &'static str,
}

/// A subscription's whole life.
#[derive(Clone, Debug)]
pub struct SimSubscription {
    pub id: String,
    pub start: i64,
    pub trial_end: Option<i64>,
    pub interval: Interval,
    pub interval_count: u32,
    pub currency: &'static str,
    pub items: Vec<SimItem>,
    /// Non-empty; `phases[0].from == start`, strictly increasing.
    pub phases: Vec<Phase>,
    pub discount: Option<SimDiscount>,
    /// The discount `discount` replaced at its start: Stripe's update sets the whole
    /// `discounts` list, so naming a new coupon takes the old discount off (catalogue D5).
    pub replaced: Option<SimDiscount>,
    /// A second discount of the subscription's own, listed after `discount` from its start
    /// (a stack): Stripe applies a subscription's discounts in their list's order, each to what
    /// the ones before left (D5).
    pub stacked_discount: Option<SimDiscount>,
    /// An item-level discount (D7) listed beside `discount` at the same time: Stripe applies
    /// it first, and the subscription's to what it left. (An item-level discount alone is
    /// `discount` with its `item` set.)
    pub item_discount: Option<SimDiscount>,
    pub failure: Option<PaymentFailure>,
    pub cancel: Option<Cancellation>,
    /// Times its payment collection was paused, oldest first, never overlapping.
    pub pauses: Vec<CollectionPause>,
}

impl SimSubscription {
    /// Start of the first paid billing period (the trial end when there is a trial).
    pub fn anchor(&self) -> i64 {
        self.trial_end.unwrap_or(self.start)
    }

    /// Start of billing period `k` (0 is the first paid period).
    pub fn period_start(&self, k: i64) -> i64 {
        let a = self.anchor();
        let n = self.interval_count as i64;
        match self.interval {
            Interval::Day => a + k * n * crate::calendar::DAY,
            Interval::Week => a + k * n * 7 * crate::calendar::DAY,
            Interval::Month => crate::calendar::add_months(a, k * n),
            Interval::Year => crate::calendar::add_months(a, k * n * 12),
        }
    }

    /// Index of the billing period containing `t` (-1 during a trial or before the anchor).
    pub fn period_at(&self, t: i64) -> i64 {
        if t < self.anchor() {
            return -1;
        }
        let mut k = 0;
        while self.period_start(k + 1) <= t {
            k += 1;
        }
        k
    }

    /// When the subscription ended or will end, whatever the reason.
    pub fn ends_at(&self) -> Option<i64> {
        let by_failure = match self.failure.map(|f| f.outcome) {
            Some(FailureOutcome::Canceled(at)) => Some(at),
            _ => None,
        };
        match (self.cancel.as_ref().map(|c| c.ends_at), by_failure) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `ended_at` as Stripe would show it at `as_of`.
    pub fn ended_at(&self, as_of: i64) -> Option<i64> {
        self.ends_at().filter(|e| *e <= as_of)
    }

    /// `canceled_at` as Stripe would show it at `as_of`: the request time of a
    /// cancellation, or the end of one caused by failed payments.
    pub fn canceled_at(&self, as_of: i64) -> Option<i64> {
        if let Some(c) = &self.cancel {
            if c.requested_at <= as_of {
                return Some(c.requested_at);
            }
        }
        match self.failure.map(|f| f.outcome) {
            Some(FailureOutcome::Canceled(at)) if at <= as_of => Some(at),
            _ => None,
        }
    }

    /// Status at instant `t` (`t >= start`).
    pub fn status_at(&self, t: i64) -> Status {
        if self.ended_at(t).is_some() {
            return Status::Canceled;
        }
        if self.trial_end.is_some_and(|end| t < end) {
            return Status::Trialing;
        }
        if let Some(f) = self.failure {
            if t >= f.failed_at {
                return match f.outcome {
                    FailureOutcome::Recovered(at) if t >= at => Status::Active,
                    FailureOutcome::Unpaid(at) if t >= at => Status::Unpaid,
                    _ => Status::PastDue,
                };
            }
        }
        Status::Active
    }

    /// The collection pause in force at `t`, if any.
    pub fn pause_at(&self, t: i64) -> Option<&CollectionPause> {
        self.pauses.iter().find(|p| p.from <= t && p.resumes_at.is_none_or(|r| t < r))
    }

    /// Items in force at `t` (the last phase once the subscription has ended).
    pub fn phase_at(&self, t: i64) -> &Phase {
        self.phases.iter().rev().find(|p| p.from <= t).unwrap_or(&self.phases[0])
    }

    /// Its discounts: the one replaced, if any, then the current one, the one stacked after it,
    /// and the item-level one beside them.
    pub fn discounts(&self) -> impl Iterator<Item = &SimDiscount> {
        self.replaced.iter().chain(&self.discount).chain(&self.stacked_discount).chain(&self.item_discount)
    }

    /// End of the window in which discount `d` applies on Stripe's invoices: its coupon's
    /// own end, its removal, or the start of the discount that replaced it, whichever comes first.
    pub fn end_of(&self, d: &SimDiscount, catalog: &Catalog) -> Option<i64> {
        let replaced_at = self.discount.as_ref().filter(|_| self.replaced.as_ref().is_some_and(|r| r.id == d.id));
        [self.scheduled_end_of(d, catalog), d.removed, replaced_at.map(|n| n.start)].into_iter().flatten().min()
    }

    /// The discount that applies at `t`, if any (beside the one stacked after it,
    /// [`Self::stacked_discount_at`], and the item-level one, [`Self::item_discount_at`]).
    pub fn discount_at(&self, catalog: &Catalog, t: i64) -> Option<&SimDiscount> {
        self.replaced.iter().chain(self.discount.iter()).find(|d| self.applies_at(d, catalog, t))
    }

    /// The discount stacked after [`Self::discount_at`]'s that applies at `t`, if any.
    pub fn stacked_discount_at(&self, catalog: &Catalog, t: i64) -> Option<&SimDiscount> {
        self.stacked_discount.as_ref().filter(|d| self.applies_at(d, catalog, t))
    }

    /// The item-level discount listed beside [`Self::discount_at`]'s that applies at `t`, if any.
    pub fn item_discount_at(&self, catalog: &Catalog, t: i64) -> Option<&SimDiscount> {
        self.item_discount.as_ref().filter(|d| self.applies_at(d, catalog, t))
    }

    /// The discounts that apply at `t`, in the order Stripe applies them: an item's before its
    /// subscription's ("Subscription item discounts are applied before subscription
    /// discounts", D7), a subscription's in its list's order (D5).
    pub fn discounts_applied_at<'a>(&'a self, catalog: &Catalog, t: i64) -> impl Iterator<Item = &'a SimDiscount> {
        [self.item_discount_at(catalog, t), self.discount_at(catalog, t), self.stacked_discount_at(catalog, t)]
            .into_iter()
            .flatten()
    }

    fn applies_at(&self, d: &SimDiscount, catalog: &Catalog, t: i64) -> bool {
        d.start <= t && self.end_of(d, catalog).is_none_or(|end| t < end)
    }

    /// Discount `d`'s own `end`: `repeating` for N months from its start, `once` for the
    /// billing period it starts in, `forever` never.
    pub fn scheduled_end_of(&self, d: &SimDiscount, catalog: &Catalog) -> Option<i64> {
        match catalog.coupons[d.coupon].duration {
            Duration::Forever => None,
            Duration::Repeating { months } => Some(crate::calendar::add_months(d.start, months as i64)),
            Duration::Once => Some(self.period_start(self.period_at(d.start).max(0) + 1)),
        }
    }
}

/// A test clock (one per cohort in the default scenario).
#[derive(Clone, Debug)]
pub struct TestClock {
    pub id: String,
    pub name: String,
    pub created: i64,
    /// The clock's own instant: its customers' objects look as they do at this time.
    pub frozen_time: i64,
}
