//! Renders the model as Stripe API objects (API version [`API_VERSION`]), as each
//! looked at a given instant: `now` for the objects a list call returns, the event
//! time for the `data.object` of an event.
//!
//! Field sets follow Stripe's current shape (`../shared/stripe/fixtures3.json`) and
//! include every field async-stripe requires.

use serde_json::{json, Value};

use super::catalog::{Coupon, Duration, Off, Price, TiersMode, Usage};
use super::invoices::{invoice_prefix, SimInvoice, SimInvoiceItem, SimLine};
use super::model::{SimCustomer, SimDiscount, SimSubscription, Status};
use super::Account;
use crate::money::DecimalAmount;

/// The Stripe API version the simulated objects follow (async-stripe's own).
pub const API_VERSION: &str = "2026-09-30.endive";

/// A customer, `numbered` of whose invoices have been finalized (each took a number).
pub fn customer(acct: &Account, c: &SimCustomer, numbered: usize, as_of: i64) -> Value {
    let delinquent = c.subscriptions.iter().any(|s| s.start <= as_of && s.status_at(as_of) == Status::PastDue);
    let mut metadata = serde_json::Map::new();
    if let Some(case) = c.case {
        metadata.insert("case".into(), json!(case));
    }
    json!({
        "id": c.id, "object": "customer", "address": null, "balance": 0, "created": c.created,
        "currency": c.currency, "default_source": null, "delinquent": delinquent, "description": null,
        "discount": customer_discount(acct, c, as_of), "email": c.email, "invoice_prefix": invoice_prefix(c),
        "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
        "livemode": false, "metadata": metadata, "name": c.name, "next_invoice_sequence": numbered + 1,
        "phone": null, "preferred_locales": [], "shipping": null, "tax_exempt": "none",
        "test_clock": c.test_clock.map(|i| acct.clocks[i].id.clone()),
    })
}

/// A deleted customer as Stripe retrieves it: "If it's for a deleted Customer, a subset of the
/// customer's information is returned, including a `deleted` property that's set to true."
pub fn deleted_customer(c: &SimCustomer) -> Value {
    json!({"id": c.id, "object": "customer", "deleted": true})
}

/// A product.
pub fn product(acct: &Account, index: usize) -> Value {
    let p = &acct.catalog.products[index];
    let default_price = acct.catalog.prices.iter().find(|pr| pr.product == index).map(|pr| pr.id.clone());
    json!({
        "id": p.id, "object": "product", "active": p.active, "created": p.created, "default_price": default_price,
        "description": null, "images": [], "livemode": false, "marketing_features": [], "metadata": {},
        "name": p.name, "package_dimensions": null, "shippable": null, "statement_descriptor": null,
        "tax_code": null, "type": "service", "unit_label": null, "updated": p.created, "url": null,
    })
}

/// A price as Stripe embeds it (in a subscription item) or lists it without expansions: its
/// `tiers` and `currency_options` are "not included by default" (see [`price_with_includables`]).
pub fn price(acct: &Account, p: &Price) -> Value {
    let unit_amount = p.tiers.is_none().then(|| p.unit_decimal_in(p.currency));
    json!({
        "id": p.id, "object": "price", "active": p.active, "billing_scheme": billing_scheme(p), "created": p.created,
        "currency": p.currency, "custom_unit_amount": null, "livemode": false, "lookup_key": null,
        "metadata": {}, "nickname": p.nickname, "product": acct.catalog.products[p.product].id,
        "recurring": {
            "interval": p.interval.as_str(), "interval_count": p.interval_count, "meter": null,
            "trial_period_days": null, "usage_type": usage(p),
        },
        "tax_behavior": "exclusive", "tiers_mode": tiers_mode(p), "transform_quantity": transform(p), "type": "recurring",
        "unit_amount": unit_amount.and_then(DecimalAmount::whole),
        "unit_amount_decimal": unit_amount.map(DecimalAmount::text),
    })
}

/// A price with every field Stripe includes only on request (`expand[]=tiers`,
/// `expand[]=currency_options`): the form the account stores, which `mrr stripe-server` trims
/// to what each request asked for.
pub fn price_with_includables(acct: &Account, p: &Price) -> Value {
    let mut v = price(acct, p);
    if let Some((_, tiers)) = &p.tiers {
        v["tiers"] = tiers_json(tiers);
    }
    let per_unit = p.currency_options.iter().map(|(currency, amount)| {
        let option = json!({
            "custom_unit_amount": null, "tax_behavior": "exclusive", "unit_amount": amount,
            "unit_amount_decimal": amount.to_string(),
        });
        (currency.to_string(), option)
    });
    // A tiered price's option has tiers instead of a unit amount ("Only set if
    // `billing_scheme=per_unit`"), themselves included only on request (L10).
    let tiered = p.currency_tiers.iter().map(|(currency, tiers)| {
        let option = json!({
            "custom_unit_amount": null, "tax_behavior": "exclusive", "tiers": tiers_json(tiers),
            "unit_amount": null, "unit_amount_decimal": null,
        });
        (currency.to_string(), option)
    });
    v["currency_options"] = Value::Object(per_unit.chain(tiered).collect());
    v
}

fn tiers_json(tiers: &[super::catalog::Tier]) -> Value {
    let tiers: Vec<Value> = tiers
        .iter()
        .map(|t| {
            json!({
                "flat_amount": t.flat_amount, "flat_amount_decimal": t.flat_amount.to_string(),
                "unit_amount": t.unit_amount.whole(), "unit_amount_decimal": t.unit_amount.text(), "up_to": t.up_to,
            })
        })
        .collect();
    json!(tiers)
}

fn billing_scheme(p: &Price) -> &'static str {
    if p.tiers.is_some() {
        "tiered"
    } else {
        "per_unit"
    }
}

fn tiers_mode(p: &Price) -> Option<&'static str> {
    p.tiers.as_ref().map(|(mode, _)| match mode {
        TiersMode::Volume => "volume",
        TiersMode::Graduated => "graduated",
    })
}

/// `transform_quantity` (on a plan: `transform_usage`, the same shape).
fn transform(p: &Price) -> Value {
    match p.transform {
        Some((divide_by, up)) => json!({"divide_by": divide_by, "round": if up { "up" } else { "down" }}),
        None => Value::Null,
    }
}

fn usage(p: &Price) -> &'static str {
    match p.usage {
        Usage::Licensed => "licensed",
        Usage::Metered => "metered",
    }
}

/// The legacy `plan` object Stripe still nests in subscription items.
fn plan(acct: &Account, p: &Price) -> Value {
    let amount = p.tiers.is_none().then(|| p.unit_decimal_in(p.currency));
    json!({
        "id": p.id, "object": "plan", "active": p.active, "amount": amount.and_then(DecimalAmount::whole),
        "amount_decimal": amount.map(DecimalAmount::text), "billing_scheme": billing_scheme(p), "created": p.created,
        "currency": p.currency, "interval": p.interval.as_str(), "interval_count": p.interval_count,
        "livemode": false, "metadata": {}, "meter": null, "nickname": p.nickname,
        "product": acct.catalog.products[p.product].id, "tiers_mode": tiers_mode(p), "transform_usage": transform(p),
        "trial_period_days": null, "usage_type": usage(p),
    })
}

/// A coupon with its redemption count.
pub fn coupon(acct: &Account, c: &Coupon, times_redeemed: u64) -> Value {
    let (percent_off, amount_off, currency) = match c.off {
        Off::Percent(p) => (Some(p), None, None),
        Off::Amount { amount, currency } => (None, Some(amount), Some(currency)),
    };
    let (duration, months) = match c.duration {
        Duration::Once => ("once", None),
        Duration::Repeating { months } => ("repeating", Some(months)),
        Duration::Forever => ("forever", None),
    };
    json!({
        "id": c.id, "object": "coupon", "amount_off": amount_off, "created": c.created, "currency": currency,
        "duration": duration, "duration_in_months": months, "livemode": false, "max_redemptions": null,
        "metadata": {}, "name": c.name, "percent_off": percent_off, "redeem_by": null,
        "times_redeemed": times_redeemed, "valid": !c.deleted,
        "currency_options": if c.currency_options.is_empty() { Value::Null } else {
            Value::Object(c.currency_options.iter().map(|(cur, amount)| (cur.to_string(), json!({"amount_off": amount}))).collect())
        },
        // Stored whole; the server leaves it out unless `expand[]` asks for it (D4).
        "applies_to": if c.applies_to.is_empty() { Value::Null } else {
            json!({"products": c.applies_to.iter().map(|p| &acct.catalog.products[*p].id).collect::<Vec<_>>()})
        },
    })
}

/// The customer-level discount in force at `as_of` (D3), which its subscriptions inherit.
fn customer_discount(acct: &Account, c: &SimCustomer, as_of: i64) -> Value {
    c.subscriptions
        .iter()
        .find_map(|s| s.discount_at(&acct.catalog, as_of).filter(|d| d.inherited).map(|d| discount(acct, c, s, d)))
        .unwrap_or(Value::Null)
}

/// One of a subscription's discount objects (a customer-level one names no subscription, an
/// item-level one also names its item).
pub fn discount(acct: &Account, c: &SimCustomer, sub: &SimSubscription, d: &SimDiscount) -> Value {
    let end = match acct.catalog.coupons[d.coupon].duration {
        Duration::Repeating { .. } => sub.scheduled_end_of(d, &acct.catalog),
        _ => None,
    };
    json!({
        "id": d.id, "object": "discount", "checkout_session": null, "customer": c.id, "customer_account": null,
        "end": end, "invoice": null, "invoice_item": null, "promotion_code": null,
        "source": {"coupon": acct.catalog.coupons[d.coupon].id, "type": "coupon"},
        "start": d.start, "subscription": if d.inherited { None } else { Some(&sub.id) }, "subscription_item": d.item.map(|slot| &sub.items[slot].id),
    })
}

/// A subscription as it looked at `as_of`, with its discounts expanded
/// (the server collapses them to ids unless `expand[]` asks for them).
pub fn subscription(
    acct: &Account,
    c: &SimCustomer,
    sub: &SimSubscription,
    latest_invoice: Option<&str>,
    as_of: i64,
) -> Value {
    let status = sub.status_at(as_of);
    let ended_at = sub.ended_at(as_of);
    // A canceled subscription shows the period it ended in.
    let reference = ended_at.map_or(as_of, |e| e - 1).max(sub.start);
    let k = sub.period_at(reference);
    let period = if k < 0 { (sub.start, sub.anchor()) } else { (sub.period_start(k), sub.period_start(k + 1)) };
    let current = sub.discount_at(&acct.catalog, as_of).filter(|d| !d.inherited && ended_at.is_none());
    let items: Vec<Value> = sub
        .phase_at(reference)
        .items
        .iter()
        .map(|item| {
            let p = &acct.catalog.prices[item.price];
            let quantity = (p.usage == Usage::Licensed).then_some(item.quantity);
            // An item-level discount is listed on its item (D7).
            let discounts: Vec<Value> = current
                .into_iter()
                .chain(sub.item_discount_at(&acct.catalog, as_of).filter(|_| ended_at.is_none()))
                .filter(|d| d.item == Some(item.slot))
                .map(|d| discount(acct, c, sub, d))
                .collect();
            json!({
                "id": sub.items[item.slot].id, "object": "subscription_item", "billing_thresholds": null,
                "created": sub.items[item.slot].created, "current_period_end": period.1,
                "current_period_start": period.0, "discounts": discounts, "metadata": {}, "plan": plan(acct, p),
                "price": price(acct, p), "quantity": quantity, "subscription": sub.id, "tax_rates": [],
            })
        })
        .collect();
    // A customer-level discount is listed on the customer (D3), an item-level one on its item.
    // A stacked discount is listed after the one before it (D5).
    let stacked = sub.stacked_discount_at(&acct.catalog, as_of).filter(|_| ended_at.is_none());
    let discounts: Vec<Value> =
        current.filter(|d| d.item.is_none()).into_iter().chain(stacked).map(|d| discount(acct, c, sub, d)).collect();
    // Stripe shows a pause until collection resumes (P1).
    let pause_collection = sub
        .pause_at(as_of)
        .filter(|_| ended_at.is_none())
        .map(|p| json!({"behavior": p.behavior.as_str(), "resumes_at": p.resumes_at}));
    let pending_cancel = sub.cancel.as_ref().filter(|x| x.requested_at <= as_of && ended_at.is_none());
    let cancel_at = pending_cancel.map(|x| x.ends_at);
    let reason = match (&sub.cancel, sub.canceled_at(as_of)) {
        (_, None) => None,
        (Some(x), Some(at)) if x.requested_at == at => Some("cancellation_requested"),
        _ => Some("payment_failed"),
    };
    let trial_start = sub.trial_end.map(|_| sub.start);
    json!({
        "id": sub.id, "object": "subscription", "application": null, "application_fee_percent": null,
        "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null},
        "billing_cycle_anchor": sub.anchor(), "billing_cycle_anchor_config": null,
        "billing_mode": {"flexible": null, "type": "classic", "updated_at": null}, "billing_schedules": [],
        "billing_thresholds": null, "cancel_at": cancel_at,
        "cancel_at_period_end": pending_cancel.is_some_and(|x| x.at_period_end),
        "canceled_at": sub.canceled_at(as_of),
        "cancellation_details": {"comment": null, "feedback": null, "reason": reason},
        "collection_method": "charge_automatically", "created": sub.start, "currency": sub.currency,
        "customer": c.id, "customer_account": null, "days_until_due": null, "default_payment_method": null,
        "default_source": null, "default_tax_rates": [], "description": null, "discounts": discounts,
        "ended_at": ended_at, "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
        "items": {
            "object": "list", "data": items, "has_more": false,
            "url": format!("/v1/subscription_items?subscription={}", sub.id),
        },
        "latest_invoice": latest_invoice, "livemode": false, "metadata": {},
        "next_pending_invoice_item_invoice": null, "on_behalf_of": null, "pause_collection": pause_collection,
        "payment_settings": {"payment_method_options": null, "payment_method_types": null, "save_default_payment_method": "off"},
        "pending_invoice_item_interval": null, "pending_setup_intent": null, "pending_update": null,
        "schedule": null, "start_date": sub.start, "status": status.as_str(),
        "test_clock": c.test_clock.map(|i| acct.clocks[i].id.clone()), "transfer_data": null,
        "trial_end": sub.trial_end, "trial_settings": {"end_behavior": {"missing_payment_method": "cancel"}},
        "trial_start": trial_start,
    })
}

/// An invoice with all its lines, as it looked at `as_of`.
pub fn invoice(acct: &Account, c: &SimCustomer, inv: &SimInvoice, as_of: i64) -> Value {
    // A one-off invoice has no subscription: its customer's currency, no parent (U2).
    let sub = inv.subscription.map(|s| &c.subscriptions[s]);
    let currency = sub.map_or(c.currency, |sub| sub.currency);
    let status = inv.status_at(as_of);
    let paid = status == "paid";
    let total = inv.total();
    let at = |x: Option<i64>| x.filter(|x| *x <= as_of);
    let attempts = u32::from(at(inv.failed_at).is_some()) + u32::from(paid);
    // A draft has no number and is not in effect until finalized; `keep_as_draft` turns off
    // its automatic collection (P1).
    let finalized_at = (!inv.draft).then_some(inv.created);
    // The discounts in force when it was created, in the order applied (an item's first, D7).
    let applied: Vec<&SimDiscount> =
        sub.map(|sub| sub.discounts_applied_at(&acct.catalog, inv.created).collect()).unwrap_or_default();
    let lines: Vec<Value> = inv
        .lines
        .iter()
        .map(|l| match sub {
            Some(sub) => line(acct, c, sub, inv, l, &applied),
            None => one_off_line(currency, inv, l),
        })
        .collect();
    // An item-level discount is listed on its lines, not on the invoice (D7); both count in
    // `total_discount_amounts`, each with what it took off.
    let discounts: Vec<Value> = if inv.discount() > 0 {
        applied.iter().filter(|d| d.item.is_none()).map(|d| json!(d.id)).collect()
    } else {
        vec![]
    };
    let total_discounts: Vec<Value> = applied
        .iter()
        .map(|d| {
            (
                d,
                inv.lines
                    .iter()
                    .flat_map(|l| &l.discounts)
                    .filter(|(id, _)| *id == d.id)
                    .map(|(_, off)| off)
                    .sum::<i64>(),
            )
        })
        .filter(|(_, amount)| *amount > 0)
        .map(|(d, amount)| json!({"amount": amount, "discount": d.id}))
        .collect();
    let total_taxes: Vec<Value> =
        if inv.tax() != 0 { vec![tax_json(inv.tax(), inv.subtotal() - inv.discount())] } else { vec![] };
    json!({
        "id": inv.id, "object": "invoice", "account_country": "US", "account_name": "Simulated Co",
        "account_tax_ids": null, "amount_due": total, "amount_overpaid": 0,
        "amount_paid": if paid { total } else { 0 }, "amount_remaining": if paid || status == "void" { 0 } else { total },
        "amount_shipping": 0, "application": null, "attempt_count": attempts, "attempted": attempts > 0,
        "auto_advance": status == "open",
        "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null, "provider": null, "status": null},
        "automatically_finalizes_at": null, "billing_reason": inv.billing_reason,
        "collection_method": "charge_automatically", "confirmation_secret": null, "created": inv.created,
        "currency": currency, "custom_fields": null, "customer": c.id, "customer_account": null,
        "customer_address": null, "customer_email": c.email, "customer_name": c.name, "customer_phone": null,
        "customer_shipping": null, "customer_tax_exempt": "none", "customer_tax_ids": [],
        "default_payment_method": null, "default_source": null, "default_tax_rates": [], "description": null,
        "discounts": discounts, "due_date": null, "effective_at": finalized_at, "ending_balance": finalized_at.map(|_| 0), "footer": null,
        "from_invoice": null, "hosted_invoice_url": null, "invoice_pdf": null, "issuer": {"type": "self"},
        "last_finalization_error": null, "latest_revision": null,
        "lines": {"object": "list", "data": lines, "has_more": false, "url": format!("/v1/invoices/{}/lines", inv.id)},
        "livemode": false, "metadata": {}, "next_payment_attempt": null, "number": finalized_at.map(|_| &inv.number),
        "on_behalf_of": null,
        "parent": sub.map(|sub| json!({"quote_details": null, "subscription_details": {"metadata": {}, "subscription": sub.id}, "type": "subscription_details"})),
        "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
        "period_end": inv.period.1, "period_start": inv.period.0, "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "receipt_number": null, "rendering": null, "shipping_cost": null,
        "shipping_details": null, "starting_balance": 0, "statement_descriptor": null, "status": status,
        "status_transitions": {
            "finalized_at": finalized_at, "marked_uncollectible_at": at(inv.uncollectible_at),
            "paid_at": at(inv.paid_at), "voided_at": at(inv.voided_at),
        },
        "subtotal": inv.subtotal(), "subtotal_excluding_tax": inv.subtotal(),
        "test_clock": c.test_clock.map(|i| acct.clocks[i].id.clone()), "total": total,
        "total_discount_amounts": total_discounts, "total_excluding_tax": inv.subtotal() - inv.discount(),
        "total_pretax_credit_amounts": [], "total_taxes": total_taxes, "webhooks_delivered_at": inv.created,
    })
}

/// A proration's invoice item (catalogue U1) on `invoice`, or pending on none, shaped like
/// Stripe's `invoiceitem` (`../shared/stripe/fixtures3.json`).
pub fn invoice_item(acct: &Account, c: &SimCustomer, item: &SimInvoiceItem, invoice: Option<&str>) -> Value {
    let Some(sub) = item.subscription.map(|s| &c.subscriptions[s]) else {
        return one_off_invoice_item(acct, c, item, invoice);
    };
    let (l, p) = (&item.line, &acct.catalog.prices[item.line.price]);
    json!({
        "id": item.id, "object": "invoiceitem", "amount": l.amount, "currency": sub.currency, "customer": c.id,
        "customer_account": null, "date": item.created, "description": l.description, "discountable": true,
        "discounts": [], "invoice": invoice, "livemode": false, "metadata": {}, "net_amount": l.amount,
        "parent": {
            "subscription_details": {"subscription": sub.id, "subscription_item": sub.items[l.slot].id},
            "type": "subscription_details",
        },
        "period": {"end": l.period.1, "start": l.period.0},
        "pricing": {
            "price_details": {"price": p.id, "product": acct.catalog.products[p.product].id},
            "type": "price_details",
            "unit_amount_decimal": p.tiers.is_none().then(|| p.unit_decimal_in(sub.currency).text()),
        },
        "proration": l.proration, "proration_details": {"credited_items": null, "discount_amounts": []},
        "quantity": l.quantity,
        "quantity_decimal": l.quantity.to_string(), "tax_rates": [],
        "test_clock": c.test_clock.map(|i| acct.clocks[i].id.clone()),
    })
}

/// A one-off invoice's item: an amount, no price, no subscription (U2). Its `pricing` is
/// Stripe's example invoice item's (`../shared/stripe/fixtures3.json`): no `price_details`.
fn one_off_invoice_item(acct: &Account, c: &SimCustomer, item: &SimInvoiceItem, invoice: Option<&str>) -> Value {
    let l = &item.line;
    json!({
        "id": item.id, "object": "invoiceitem", "amount": l.amount, "currency": c.currency, "customer": c.id,
        "customer_account": null, "date": item.created, "description": l.description, "discountable": true,
        "discounts": [], "invoice": invoice, "livemode": false, "metadata": {}, "net_amount": l.amount,
        "parent": null, "period": {"end": l.period.1, "start": l.period.0},
        "pricing": {"type": "price_details", "unit_amount_decimal": l.amount.to_string()},
        "proration": false, "proration_details": {"credited_items": null, "discount_amounts": []},
        "quantity": l.quantity, "quantity_decimal": l.quantity.to_string(), "tax_rates": [],
        "test_clock": c.test_clock.map(|i| acct.clocks[i].id.clone()),
    })
}

/// A one-off invoice's line: its invoice item's (`parent.invoice_item_details`), no price.
fn one_off_line(currency: &str, inv: &SimInvoice, l: &SimLine) -> Value {
    json!({
        "id": l.id, "object": "line_item", "amount": l.amount, "currency": currency,
        "description": l.description, "discount_amounts": [], "discountable": true, "discounts": [],
        "invoice": inv.id, "livemode": false, "metadata": {},
        "parent": {
            "invoice_item_details": {
                "invoice_item": l.invoice_item, "proration": false, "proration_details": {"credited_items": null},
                "subscription": null,
            },
            "subscription_item_details": null,
            "type": "invoice_item_details",
        },
        "period": {"end": l.period.1, "start": l.period.0}, "pretax_credit_amounts": [],
        "pricing": {"type": "price_details", "unit_amount_decimal": l.amount.to_string()},
        "quantity": l.quantity, "subtotal": l.amount, "taxes": [],
    })
}

fn tax_json(amount: i64, taxable: i64) -> Value {
    json!({
        "amount": amount, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": "txr_simulated_vat20"},
        "taxability_reason": "standard_rated", "taxable_amount": taxable, "type": "tax_rate_details",
    })
}

fn line(
    acct: &Account,
    c: &SimCustomer,
    sub: &SimSubscription,
    inv: &SimInvoice,
    l: &SimLine,
    applied: &[&SimDiscount],
) -> Value {
    let p = &acct.catalog.prices[l.price];
    let discount_amounts: Vec<Value> =
        l.discounts.iter().map(|(id, off)| json!({"amount": off, "discount": id})).collect();
    // The line of an item with an item-level discount lists it, an id unless expanded (D7).
    let discounts: Vec<Value> = applied.iter().filter(|d| d.item == Some(l.slot)).map(|d| json!(d.id)).collect();
    let taxes: Vec<Value> = if l.tax != 0 { vec![tax_json(l.tax, l.amount - l.discount())] } else { vec![] };
    let _ = c;
    json!({
        "id": l.id, "object": "line_item", "amount": l.amount, "currency": sub.currency,
        "description": l.description, "discount_amounts": discount_amounts, "discountable": true, "discounts": discounts,
        "invoice": inv.id, "livemode": false, "metadata": {},
        "parent": {
            "invoice_item_details": null,
            "subscription_item_details": {
                "invoice_item": l.invoice_item, "proration": l.proration, "proration_details": {"credited_items": null},
                "subscription": sub.id, "subscription_item": sub.items[l.slot].id,
            },
            "type": "subscription_item_details",
        },
        "period": {"end": l.period.1, "start": l.period.0}, "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": p.id, "product": acct.catalog.products[p.product].id},
            "type": "price_details",
            "unit_amount_decimal": p.tiers.is_none().then(|| p.unit_decimal_in(sub.currency).text()),
        },
        "quantity": l.quantity, "subtotal": l.amount, "taxes": taxes,
    })
}

/// Entries a nested list (an invoice's lines, a subscription's items) embeds before a client
/// must page through its own endpoint: Stripe's page size of 10 (catalogue L6, L7).
pub const EMBEDDED: usize = 10;

/// Cuts an invoice's `lines` or a subscription's `items` to the first page Stripe embeds,
/// with `has_more`, wherever the object is presented: an API answer or an event's
/// `data.object` (catalogue L6, L7, R1).
pub fn embed_first_pages(object: &mut Value) {
    let field = match object["object"].as_str() {
        Some("invoice") => "lines",
        Some("subscription") => "items",
        _ => return,
    };
    let list = &mut object[field];
    if let Some(data) = list["data"].as_array_mut() {
        if data.len() > EMBEDDED {
            data.truncate(EMBEDDED);
            list["has_more"] = json!(true);
        }
    }
}

/// A test clock, at its frozen time.
pub fn test_clock(acct: &Account, index: usize) -> Value {
    test_clock_at(acct, index, acct.clocks[index].frozen_time, None)
}

/// A test clock frozen at `frozen_time`: `ready`, or `advancing` towards `target` ("The
/// `frozen_time` that the Test Clock is advancing towards", `status_details.advancing`).
pub fn test_clock_at(acct: &Account, index: usize, frozen_time: i64, target: Option<i64>) -> Value {
    let clock = &acct.clocks[index];
    let (status, details) = match target {
        Some(t) => ("advancing", json!({"advancing": {"target_frozen_time": t}})),
        None => ("ready", json!({})),
    };
    json!({
        "id": clock.id, "object": "test_helpers.test_clock", "created": clock.created,
        "deletes_after": frozen_time + 30 * crate::calendar::DAY, "frozen_time": frozen_time, "livemode": false,
        "name": clock.name, "status": status, "status_details": details,
    })
}

/// The first API version whose subscriptions carry their billing period on each item
/// (Stripe's changelog, 2025-03-31.basil: "`current_period_start` and `current_period_end`
/// fields are no longer available on the subscription resource").
pub const ITEM_PERIODS_SINCE: &str = "2025-03-31.basil";

/// An event as an account whose API version is `version` receives it: `api_version` is "The
/// Stripe API version used to render `data` when the event was created", and "The contents of
/// `data` never change". Before
/// [`ITEM_PERIODS_SINCE`] a subscription's period sits on the subscription, not its items;
/// that is the one difference simulated (others, such as an invoice's `subscription` before
/// its `parent`, are not).
pub fn in_api_version(mut event: Value, version: &str) -> Value {
    event["api_version"] = Value::from(version);
    let object = &mut event["data"]["object"];
    if version < ITEM_PERIODS_SINCE && object["object"] == "subscription" {
        let mut period = (Value::Null, Value::Null);
        if let Some(items) = object["items"]["data"].as_array_mut() {
            for item in items {
                if let Some(item) = item.as_object_mut() {
                    period.0 = item.remove("current_period_start").unwrap_or(period.0);
                    period.1 = item.remove("current_period_end").unwrap_or(period.1);
                }
            }
        }
        object["current_period_start"] = period.0;
        object["current_period_end"] = period.1;
    }
    event
}

/// An event about `object` (already rendered as of `created`).
pub fn event(id: &str, kind: &str, created: i64, object: Value, previous: Option<Value>) -> Value {
    let mut data = serde_json::Map::new();
    data.insert("object".into(), object);
    if let Some(p) = previous {
        data.insert("previous_attributes".into(), p);
    }
    json!({
        "id": id, "object": "event", "api_version": API_VERSION, "created": created, "data": data,
        "livemode": false, "pending_webhooks": 0, "request": {"id": null, "idempotency_key": null}, "type": kind,
    })
}
