//! Stripe objects (async-stripe's typed structs) flattened into snapshot rows.
//! One function per object type; nested lists become child-table rows.

use stripe_shared::{
    Coupon, Customer, Discount, Event, Invoice, InvoiceLineItem, Price, Product, Subscription, SubscriptionItem,
    TestHelpersTestClock,
};

use crate::row;
use crate::snapshot::schema::Row;

fn s<T: std::fmt::Display>(v: T) -> String {
    v.to_string()
}

/// Metadata as a compact JSON object with sorted keys (deterministic).
fn metadata(m: Option<&std::collections::HashMap<String, String>>) -> Option<String> {
    let m = m?;
    let sorted: std::collections::BTreeMap<_, _> = m.iter().collect();
    Some(serde_json::to_string(&sorted).expect("strings serialize"))
}

/// A customer, and its customer-level discount, which its subscriptions without discounts of
/// their own inherit (docs/stripe-behaviour.md, D3).
pub fn customer(c: &Customer) -> Vec<Row> {
    let mut rows = vec![row!(
        "customers",
        s(&c.id),
        c.created,
        c.currency.as_ref().map(s),
        c.email.clone(),
        c.name.clone(),
        c.delinquent,
        c.test_clock.as_ref().map(|t| s(t.id())),
        metadata(c.metadata.as_ref()),
    )];
    // Which discount is the customer's now is known only from here (D3): `discounts` keeps
    // every one ever seen.
    rows.extend(c.discount.iter().map(|d| row!("customer_discounts", s(&c.id), s(&d.id))));
    rows.extend(c.discount.iter().flat_map(discount));
    rows
}

pub fn product(p: &Product) -> Vec<Row> {
    vec![row!("products", s(&p.id), p.created, p.name.clone(), p.active, s(&p.type_))]
}

/// A price, with its tiers and currency options when Stripe included them (only on request).
pub fn price(p: &Price) -> Vec<Row> {
    let r = p.recurring.as_ref();
    let t = p.transform_quantity.as_ref();
    let mut rows = vec![row!(
        "prices",
        s(&p.id),
        s(p.product.id()),
        p.created,
        p.active,
        s(&p.currency),
        p.nickname.clone(),
        s(&p.type_),
        s(&p.billing_scheme),
        p.unit_amount,
        p.unit_amount_decimal.clone(),
        r.map(|r| s(&r.interval)),
        r.map(|r| r.interval_count),
        r.map(|r| s(&r.usage_type)),
        p.tiers_mode.as_ref().map(s),
        t.map(|t| t.divide_by),
        t.map(|t| s(&t.round)),
    )];
    let id = s(&p.id);
    rows.extend(price_tiers(&id, &s(&p.currency), p.tiers.as_deref()));
    let mut options: Vec<_> = p.currency_options.iter().flatten().map(|(c, o)| (s(c), o)).collect();
    options.sort_by(|a, b| a.0.cmp(&b.0));
    for (currency, o) in options {
        rows.push(row!(
            "price_currency_options",
            id.clone(),
            currency.clone(),
            o.unit_amount,
            o.unit_amount_decimal.clone(),
            o.tax_behavior.as_ref().map(s),
        ));
        rows.extend(price_tiers(&id, &currency, o.tiers.as_deref()));
    }
    rows
}

fn price_tiers(price: &str, currency: &str, tiers: Option<&[stripe_shared::PriceTier]>) -> Vec<Row> {
    let tiers = tiers.unwrap_or_default().iter().enumerate();
    tiers
        .map(|(n, t)| {
            row!(
                "price_tiers",
                price,
                currency,
                n as i64,
                t.up_to,
                t.unit_amount,
                t.unit_amount_decimal.clone(),
                t.flat_amount,
                t.flat_amount_decimal.clone(),
            )
        })
        .collect()
}

/// A coupon, and the products it is restricted to when Stripe included `applies_to` (only on
/// request: a coupon expanded inside a discount comes without it).
pub fn coupon(c: &Coupon) -> Vec<Row> {
    let products = c.applies_to.iter().flat_map(|a| &a.products);
    let restricted = products.map(|p| row!("coupon_products", s(&c.id), p.clone()));
    let mut rows = vec![row!(
        "coupons",
        s(&c.id),
        c.created,
        c.name.clone(),
        c.percent_off,
        c.percent_off.map(|p| crate::money::percent_to_hundredths(p) as i64),
        c.amount_off,
        c.currency.as_ref().map(s),
        s(&c.duration),
        c.duration_in_months,
        c.valid,
        c.times_redeemed,
    )];
    rows.extend(restricted);
    let mut options: Vec<_> = c.currency_options.iter().flatten().map(|(cur, o)| (s(cur), o.amount_off)).collect();
    options.sort();
    rows.extend(options.into_iter().map(|(cur, amount)| row!("coupon_currency_options", s(&c.id), cur, amount)));
    rows
}

/// A discount row (shared by subscriptions' and invoices' expanded discounts), and its coupon
/// when expanded (`discounts.source.coupon`): a deleted coupon is in no list, yet keeps
/// discounting those who have it (docs/stripe-behaviour.md, D1).
pub fn discount(d: &Discount) -> Vec<Row> {
    discount_in(d, None)
}

/// A discount found inside `subscription` (on one of its items, or on a line billing one):
/// an item-level discount also gets its `item_discounts` row, naming the subscription even
/// where the discount object leaves it out (D7).
fn discount_in(d: &Discount, subscription: Option<&str>) -> Vec<Row> {
    let subscription = d.subscription.clone().or_else(|| d.subscription_item.as_ref().and(subscription.map(s)));
    let mut rows = vec![row!(
        "discounts",
        s(&d.id),
        subscription.clone(),
        d.customer.as_ref().map(|c| s(c.id())),
        d.invoice.clone(),
        d.source.coupon.as_ref().map(|c| s(c.id())),
        d.start,
        d.end,
        d.promotion_code.as_ref().map(|p| s(p.id())),
    )];
    if let Some(item) = &d.subscription_item {
        rows.push(row!("item_discounts", s(&d.id), s(item), subscription));
    }
    if let Some(stripe_types::Expandable::Object(c)) = &d.source.coupon {
        rows.extend(coupon(c));
    }
    rows
}

pub fn subscription(sub: &Subscription) -> Vec<Row> {
    let mut rows = vec![row!(
        "subscriptions",
        s(&sub.id),
        s(sub.customer.id()),
        sub.created,
        sub.start_date,
        s(&sub.status),
        s(&sub.currency),
        s(&sub.collection_method),
        sub.billing_cycle_anchor,
        sub.cancel_at,
        sub.cancel_at_period_end,
        sub.canceled_at,
        sub.ended_at,
        sub.cancellation_details.as_ref().and_then(|d| d.reason.as_ref()).map(s),
        sub.trial_start,
        sub.trial_end,
        sub.latest_invoice.as_ref().and_then(|i| i.id().as_ref()).map(s),
        sub.test_clock.as_ref().map(|t| s(t.id())),
    )];
    rows.extend(sub.items.data.iter().flat_map(|item| subscription_item(sub.id.as_str(), item)));
    rows.extend(listed_discounts(sub.id.as_str(), sub.id.as_str(), &sub.discounts));
    rows.extend(
        sub.pause_collection.as_ref().map(|p| row!("paused_collections", s(&sub.id), s(&p.behavior), p.resumes_at)),
    );
    rows.extend(sub.discounts.iter().filter_map(|d| d.as_object()).flat_map(discount));
    rows
}

/// The discounts a subscription or one of its items lists now, in order, expanded or not
/// (an event's subscription carries ids only). Which discounts are current, and whether
/// several apply at once, is known only from these lists: the `discounts` table keeps every
/// discount ever invoiced (docs/stripe-behaviour.md, D5).
fn listed_discounts<'a>(
    subscription: &'a str,
    owner: &'a str,
    list: &'a [stripe_types::Expandable<Discount>],
) -> impl Iterator<Item = Row> + 'a {
    list.iter().enumerate().map(move |(n, d)| row!("subscription_discounts", subscription, owner, s(d.id()), n as i64))
}

/// One item of a subscription (embedded in it, or from `GET /v1/subscription_items`), and the
/// item-level discounts it lists.
pub fn subscription_item(subscription: &str, item: &SubscriptionItem) -> Vec<Row> {
    let mut rows = vec![row!(
        "subscription_items",
        s(&item.id),
        subscription,
        item.created,
        s(&item.price.id),
        s(item.price.product.id()),
        item.quantity,
        item.current_period_start,
        item.current_period_end,
    )];
    rows.extend(listed_discounts(subscription, item.id.as_str(), &item.discounts));
    rows.extend(item.discounts.iter().filter_map(|d| d.as_object()).flat_map(|d| discount_in(d, Some(subscription))));
    rows
}

/// A pending invoice item (catalogue U1).
pub fn invoice_item(item: &stripe_billing::InvoiceItem) -> Vec<Row> {
    let parent = item.parent.as_ref().and_then(|p| p.subscription_details.as_ref());
    vec![row!(
        "pending_invoice_items",
        s(&item.id),
        s(item.customer.id()),
        parent.map(|p| p.subscription.clone()),
        parent.and_then(|p| p.subscription_item.clone()),
        item.proration,
        item.pricing.as_ref().and_then(|p| p.price_details.as_ref()).map(|d| s(d.price.id())),
        item.quantity as i64,
        item.amount,
        s(&item.currency),
        item.period.start,
        item.period.end,
        item.date,
    )]
}

/// The invoice row and its discounts; lines come separately (they may span pages).
pub fn invoice(inv: &Invoice) -> Vec<Row> {
    let subscription =
        inv.parent.as_ref().and_then(|p| p.subscription_details.as_ref()).map(|d| s(d.subscription.id()));
    let t = &inv.status_transitions;
    let total_discount: i64 = inv.total_discount_amounts.iter().flatten().map(|d| d.amount).sum();
    let tax: i64 = inv.total_taxes.iter().flatten().map(|x| x.amount).sum();
    let mut rows = vec![row!(
        "invoices",
        inv.id.as_ref().map(s),
        inv.customer.as_ref().map(|c| s(c.id())),
        subscription,
        inv.created,
        inv.status.as_ref().map(s),
        inv.billing_reason.as_ref().map(s),
        s(&inv.currency),
        inv.number.clone(),
        inv.period_start,
        inv.period_end,
        inv.subtotal,
        total_discount,
        tax,
        inv.total,
        inv.amount_due,
        inv.amount_paid,
        inv.amount_remaining,
        inv.attempt_count,
        t.finalized_at,
        t.paid_at,
        t.voided_at,
        t.marked_uncollectible_at,
        inv.test_clock.as_ref().map(|c| s(c.id())),
    )];
    rows.extend(inv.discounts.iter().filter_map(|d| d.as_object()).flat_map(discount));
    rows
}

/// One invoice line, at `index` on its invoice, and the item-level discounts it carries when
/// expanded (`lines.data.discounts`): the only record of one taken off its item before the
/// pull (D7). Other line discounts (on one-off invoice items) are not a subscription's.
pub fn invoice_line(invoice_id: &str, index: usize, l: &InvoiceLineItem) -> Vec<Row> {
    let parent = l.parent.as_ref();
    let item = parent.and_then(|p| p.subscription_item_details.as_ref());
    let price = l.pricing.as_ref().and_then(|p| p.price_details.as_ref());
    let discount: i64 = l.discount_amounts.iter().flatten().map(|d| d.amount).sum();
    let tax: i64 = l.taxes.iter().flatten().map(|t| t.amount).sum();
    let mut rows = vec![row!(
        "invoice_lines",
        s(&l.id),
        invoice_id,
        index as i64,
        parent.map(|p| s(&p.type_)),
        item.and_then(|i| i.subscription.clone()),
        item.map(|i| i.subscription_item.clone()),
        item.map(|i| i.proration),
        price.map(|p| s(p.price.id())),
        price.map(|p| p.product.clone()),
        l.quantity,
        l.amount,
        s(&l.currency),
        discount,
        tax,
        l.period.start,
        l.period.end,
        l.description.clone(),
    )];
    let subscription = item.and_then(|i| i.subscription.as_deref());
    let item_level = l.discounts.iter().filter_map(|d| d.as_object()).filter(|d| d.subscription_item.is_some());
    rows.extend(item_level.flat_map(|d| discount_in(d, subscription)));
    rows
}

pub fn event(e: &Event) -> Vec<Row> {
    let object = &e.data.object;
    let field = |name: &str| match object {
        miniserde::json::Value::Object(o) => match o.get(name) {
            Some(miniserde::json::Value::String(v)) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    };
    let mut data = miniserde::json::Object::new();
    data.insert("object".into(), object.clone());
    // What the update changed, as rows both SQL dialects can filter without parsing JSON.
    let mut changes = Vec::new();
    if let Some(prev) = &e.data.previous_attributes {
        if let miniserde::json::Value::Object(fields) = prev {
            for key in fields.keys() {
                changes.push(row!("event_changes", s(&e.id), s(&e.type_), e.created, field("id"), key.clone()));
            }
        }
        data.insert("previous_attributes".into(), prev.clone());
    }
    let mut rows = vec![row!(
        "events",
        s(&e.id),
        s(&e.type_),
        e.created,
        e.api_version.clone(),
        field("id"),
        field("object"),
        miniserde::json::to_string(&miniserde::json::Value::Object(data)),
    )];
    rows.extend(changes);
    rows
}

pub fn test_clock(c: &TestHelpersTestClock) -> Vec<Row> {
    vec![row!("test_clocks", s(&c.id), c.name.clone(), c.created, c.frozen_time, s(&c.status))]
}

/// Snapshot rows of one Stripe object given as JSON (its `object` field says which), through
/// the same extractors a pull uses: for objects that arrive outside a list call (webhook
/// events, the simulator writing a snapshot directly).
pub fn json_rows(object: &serde_json::Value) -> anyhow::Result<Vec<Row>> {
    fn parse<T: miniserde::Deserialize>(object: &serde_json::Value, what: &str) -> anyhow::Result<T> {
        let text = serde_json::to_string(object)?;
        miniserde::json::from_str(&text).map_err(|_| {
            crate::error::bad_input(format!("not a Stripe {what} of API version {}", stripe_shared::version::VERSION))
        })
    }
    let kind = object["object"].as_str().unwrap_or_default();
    Ok(match kind {
        "customer" => customer(&parse(object, kind)?),
        "subscription" => {
            let sub: Subscription = parse(object, kind)?;
            if sub.items.has_more {
                // Items beyond the first page need the API: never write a partial subscription.
                return Err(crate::error::bad_input(format!(
                    "subscription {} has more items than the object carries ({}); run a full `mrr pull` instead",
                    sub.id,
                    sub.items.data.len()
                )));
            }
            subscription(&sub)
        }
        "product" => product(&parse(object, kind)?),
        "price" => price(&parse(object, kind)?),
        "coupon" => coupon(&parse(object, kind)?),
        "discount" => discount(&parse(object, kind)?),
        "test_helpers.test_clock" => test_clock(&parse(object, "test clock")?),
        "event" => event(&parse(object, kind)?),
        "invoiceitem" => invoice_item(&parse(object, "invoice item")?),
        "invoice" => {
            let inv: Invoice = parse(object, kind)?;
            let id =
                inv.id.as_ref().map(|i| i.to_string()).ok_or_else(|| anyhow::anyhow!("an invoice without an id"))?;
            if inv.lines.has_more {
                // Lines beyond the first page need the API: never write a partial invoice.
                return Err(crate::error::bad_input(format!(
                    "invoice {id} has more lines than the object carries ({}); run a full `mrr pull` instead",
                    inv.lines.data.len()
                )));
            }
            let mut rows = invoice(&inv);
            rows.extend(inv.lines.data.iter().enumerate().flat_map(|(n, l)| invoice_line(&id, n, l)));
            rows
        }
        other => return Err(crate::error::bad_input(format!("data.object of type {other:?} has no snapshot table"))),
    })
}
