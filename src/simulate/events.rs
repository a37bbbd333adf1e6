//! Webhook events (`customer.*`, `customer.subscription.*`, `invoice.*`, `invoiceitem.*`)
//! for what happened in the retention window, each carrying its object as it looked then.

use serde_json::Value;

use super::invoices::{kind, Billing};
use super::model::{FailureOutcome, SimCustomer, SimSubscription, TestClock};
use super::render;
use super::Account;
use crate::rng::stripe_id;

/// One advance of a test clock: `.advancing` sent at `started`, the clock moving from frozen
/// time `from` to `to`, then `.ready` sent at `ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockAdvance {
    pub started: i64,
    pub ready: i64,
    pub from: i64,
    pub to: i64,
}

/// The simulated clock's advances: to the 1st and the 15th of every month and lastly to its
/// frozen time, as `mrr seed-stripe` advances its clocks (W3), forward only. The account's
/// time is its clocks' (the simulator has one timeline), so an advance to t starts a second
/// before t and is ready at t.
pub fn scheduled_advances(clock: &TestClock) -> Vec<ClockAdvance> {
    let mut targets = Vec::new();
    let mut month = crate::calendar::Month::of(clock.created);
    while month.start() <= clock.frozen_time {
        targets.extend([month.start(), month.start() + 14 * crate::calendar::DAY]);
        month = month.plus(1);
    }
    targets.push(clock.frozen_time);
    let mut frozen = clock.created;
    let mut out = Vec::new();
    // Forward only, never past its frozen time (Stripe's rule, W3).
    for target in targets.into_iter().filter(|t| *t <= clock.frozen_time) {
        if target > frozen {
            out.push(ClockAdvance { started: target - 1, ready: target, from: frozen, to: target });
            frozen = target;
        }
    }
    out
}

/// Events of the account's test clocks with `from <= created`, oldest first: each clock's
/// "Occurs whenever a test clock is created" at its `created`, then for each of its
/// `advances` (one list per clock, in order) "Occurs whenever a test clock starts advancing"
/// and "Occurs whenever a test clock transitions to a ready status" (async-stripe's event
/// types, catalogue R3); the clock the last leaves is the one listed.
pub fn clock_events(acct: &Account, advances: &[Vec<ClockAdvance>], from: i64) -> Vec<Value> {
    let mut out = Vec::new();
    for (index, (clock, advances)) in acct.clocks.iter().zip(advances).enumerate() {
        let mut moments = vec![(clock.created, "test_helpers.test_clock.created", clock.created, None)];
        for a in advances {
            moments.push((a.started, "test_helpers.test_clock.advancing", a.from, Some(a.to)));
            moments.push((a.ready, "test_helpers.test_clock.ready", a.to, None));
        }
        for (at, kind, frozen_time, target) in moments {
            if at < from {
                continue;
            }
            // Numbered by clock, instant and type, not by position: the same account simulated
            // at a later `now` advances its clocks differently after the earlier `now`, and an
            // event of the earlier story must never share an id with one of the later.
            let code = match kind {
                "test_helpers.test_clock.created" => 0,
                "test_helpers.test_clock.advancing" => 1,
                _ => 2,
            };
            let id = stripe_id("evt", acct.seed, kind::CLOCK_EVENT, ((index as u64) << 42) | ((at as u64) << 2) | code);
            out.push(render::event(&id, kind, at, render::test_clock_at(acct, index, frozen_time, target), None));
        }
    }
    out.sort_by_key(|e| e["created"].as_i64());
    out
}

/// Events of one customer with `from <= created <= now`, oldest first.
pub fn customer_events(acct: &Account, c: &SimCustomer, billing: &Billing, from: i64) -> Vec<Value> {
    let now = acct.now;
    let invoices = &billing.invoices;
    let mut moments: Vec<(i64, Moment)> = vec![(c.created, Moment::CustomerCreated)];
    // A customer-level discount is one discount however many subscriptions inherit it.
    let mut discounts = std::collections::HashSet::new();
    for (s, sub) in c.subscriptions.iter().enumerate() {
        moments.push((sub.start, Moment::SubCreated(s)));
        for (n, d) in sub.discounts().enumerate().filter(|(_, d)| discounts.insert(d.id.clone())) {
            moments.push((d.start, Moment::DiscountCreated(s, n)));
            // Stripe deletes a discount when it ends, is taken off or is replaced (D2, D5).
            let end = sub.end_of(d, &acct.catalog);
            if let Some(end) = end.filter(|end| sub.ends_at().is_none_or(|e| *end < e)) {
                moments.push((end, Moment::DiscountDeleted(s, n)));
            }
            // A customer's discount is its `discount`: gaining or losing one is an update of it.
            if d.inherited {
                moments.extend(
                    [Some(d.start).filter(|t| *t > c.created), end]
                        .into_iter()
                        .flatten()
                        .map(|t| (t, Moment::CustomerUpdated)),
                );
            }
        }
        let mut updates: Vec<i64> = sub.phases.iter().skip(1).map(|p| p.from).collect();
        updates.extend(sub.trial_end.filter(|_| sub.ends_at() != sub.trial_end));
        if let Some(f) = sub.failure {
            updates.push(f.failed_at);
            match f.outcome {
                FailureOutcome::Recovered(at) | FailureOutcome::Unpaid(at) => updates.push(at),
                FailureOutcome::Canceled(_) => {}
            }
        }
        if let Some(x) = sub.cancel.as_ref().filter(|x| x.at_period_end) {
            updates.push(x.requested_at);
        }
        updates.extend(sub.discounts().filter_map(|d| sub.end_of(d, &acct.catalog)));
        // Adding a discount of its own or its item's after it started is an update that names
        // it in `discounts` (D5): the webhook's only news of a new stack member.
        updates.extend(sub.discounts().filter(|d| !d.inherited && d.start > sub.start).map(|d| d.start));
        // Pausing collection and its resumption change `pause_collection` (P1).
        updates.extend(sub.pauses.iter().flat_map(|p| [Some(p.from), p.resumes_at]).flatten());
        // Each renewal moves the billing period and `latest_invoice`: Stripe sends an update.
        updates.extend((1..).map(|k| sub.period_start(k)).take_while(|t| *t <= now));
        // A failed payment and its outcome flip the customer's `delinquent`.
        if let Some(f) = sub.failure {
            moments.push((f.failed_at, Moment::CustomerUpdated));
            let (FailureOutcome::Recovered(at) | FailureOutcome::Unpaid(at) | FailureOutcome::Canceled(at)) = f.outcome;
            moments.push((at, Moment::CustomerUpdated));
        }
        updates.sort_unstable();
        updates.dedup();
        let ends = sub.ends_at();
        for t in updates.into_iter().filter(|t| ends.is_none_or(|e| *t < e)) {
            moments.push((t, Moment::SubUpdated(s)));
        }
        if let Some(e) = ends {
            moments.push((e, Moment::SubDeleted(s)));
        }
    }
    for (i, inv) in invoices.iter().enumerate() {
        moments.push((inv.created, Moment::Invoice(i, "invoice.created")));
        if !inv.draft {
            moments.push((inv.created, Moment::Invoice(i, "invoice.finalized")));
        }
        for (at, kind) in [
            (inv.failed_at, "invoice.payment_failed"),
            (inv.paid_at, "invoice.paid"),
            (inv.uncollectible_at, "invoice.marked_uncollectible"),
            (inv.voided_at, "invoice.voided"),
            (inv.deleted_at, "invoice.deleted"),
        ] {
            if let Some(at) = at {
                moments.push((at, Moment::Invoice(i, kind)));
            }
        }
    }
    // A proration's invoice item is created with the change, on no invoice yet (U1).
    for (i, item) in billing.invoice_items.iter().enumerate() {
        moments.push((item.created, Moment::InvoiceItem(i, "invoiceitem.created")));
        if let Some(at) = item.deleted_at {
            moments.push((at, Moment::InvoiceItem(i, "invoiceitem.deleted")));
        }
    }
    // Deleting a customer cancels its subscriptions first (R2): pushed last, the stable sort
    // keeps it after their `customer.subscription.deleted` of the same instant.
    if let Some(at) = c.deleted_at {
        moments.push((at, Moment::CustomerDeleted));
    }
    moments.sort_by_key(|(t, _)| *t);

    let latest = |s: usize, t: i64| {
        invoices.iter().rfind(|i| i.subscription == Some(s) && i.created <= t).map(|i| i.id.as_str())
    };
    // Webhooks carry a subscription's discounts and its items' as ids, like an unexpanded API
    // response; the discount objects arrive in their own `customer.discount.*` events.
    let sub_at = |s: usize, t: i64| {
        let mut sub = render::subscription(acct, c, &c.subscriptions[s], latest(s, t), t);
        let as_ids = |list: &mut Value| list.as_array_mut().into_iter().flatten().for_each(|d| *d = d["id"].clone());
        as_ids(&mut sub["discounts"]);
        sub["items"]["data"].as_array_mut().into_iter().flatten().for_each(|item| as_ids(&mut item["discounts"]));
        sub
    };
    let customer_at = |t: i64| render::customer(acct, c, billing.numbered_by(t), t);
    let discount_of = |s: usize, n: usize| {
        let sub: &SimSubscription = &c.subscriptions[s];
        render::discount(acct, c, sub, sub.discounts().nth(n).expect("the moment's discount"))
    };
    let mut out = Vec::new();
    for (n, (t, moment)) in moments.into_iter().enumerate() {
        if t < from || t > now {
            continue;
        }
        let id = stripe_id("evt", acct.seed, kind::EVENT, c.index * 65_536 + n as u64);
        let (kind, object, previous) = match moment {
            Moment::CustomerCreated => ("customer.created", customer_at(t), None),
            Moment::CustomerUpdated => {
                let (before, after) = (customer_at(t - 1), customer_at(t));
                if before == after {
                    continue;
                }
                ("customer.updated", after.clone(), Some(changed_fields(&before, &after)))
            }
            // "Occurs whenever a customer is deleted": the customer as it was.
            Moment::CustomerDeleted => ("customer.deleted", customer_at(t), None),
            Moment::SubCreated(s) => ("customer.subscription.created", sub_at(s, t), None),
            Moment::DiscountCreated(s, n) => ("customer.discount.created", discount_of(s, n), None),
            Moment::DiscountDeleted(s, n) => ("customer.discount.deleted", discount_of(s, n), None),
            Moment::SubUpdated(s) => {
                let (before, after) = (sub_at(s, t - 1), sub_at(s, t));
                if before == after {
                    continue; // nothing Stripe would report changed
                }
                let previous = changed_fields(&before, &after);
                ("customer.subscription.updated", after, Some(previous))
            }
            Moment::SubDeleted(s) => ("customer.subscription.deleted", sub_at(s, t), None),
            Moment::Invoice(i, kind) => (kind, render::invoice(acct, c, &invoices[i], t), None),
            Moment::InvoiceItem(i, kind) => {
                (kind, render::invoice_item(acct, c, &billing.invoice_items[i], None), None)
            }
        };
        let mut object = object;
        render::embed_first_pages(&mut object);
        out.push(render::event(&id, kind, t, object, previous));
    }
    out
}

enum Moment {
    CustomerCreated,
    CustomerUpdated,
    CustomerDeleted,
    SubCreated(usize),
    /// (subscription, discount among its `discounts()`)
    DiscountCreated(usize, usize),
    DiscountDeleted(usize, usize),
    SubUpdated(usize),
    SubDeleted(usize),
    Invoice(usize, &'static str),
    /// (index into the billing's invoice items, event type)
    InvoiceItem(usize, &'static str),
}

/// `previous_attributes`: the top-level fields whose values changed, with their old values.
fn changed_fields(before: &Value, after: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let (Value::Object(b), Value::Object(a)) = (before, after) {
        for (key, old) in b {
            if a.get(key) != Some(old) {
                out.insert(key.clone(), old.clone());
            }
        }
    }
    Value::Object(out)
}
