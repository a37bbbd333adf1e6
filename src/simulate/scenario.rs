//! The simulated accounts: the original dashboard's generator (cohorts, plan mix,
//! churn, payment failures) and, for `--scenario full`, one named customer per edge
//! case of the metric contract.

use super::catalog::{price, Catalog};
use super::invoices::kind;
use super::model::{
    Cancellation, CollectionPause, FailureOutcome, ItemState, OneOffInvoice, PauseBehavior, PaymentFailure, Phase,
    Proration, SimCustomer, SimDiscount, SimItem, SimSubscription,
};
use crate::calendar::{add_months, Month, DAY};
use crate::rng::{stripe_id, Rng};

/// Number of signup cohorts (one test clock each), as in the original generator.
pub const COHORTS: u64 = 5;

/// The original generator's odds, shared with `mrr seed-stripe`: how a new customer picks
/// Starter, Pro, Business or Enterprise (per cent), and per mille how many take the annual
/// variant, churn, or have a renewal payment fail (drawn at 14%: annual and brand-new
/// subscriptions have no renewal to fail yet, so about 10% overall).
pub const PLAN_WEIGHTS: [u64; 4] = [40, 30, 20, 10];
pub const ANNUAL_PER_MILLE: u64 = 200;
pub const CHURN_PER_MILLE: u64 = 150;
pub const FAILURE_PER_MILLE: u64 = 140;

/// The month (from the first) in which cohort `cohort` of `cohorts` signs up over `months`.
pub fn cohort_month(cohort: u64, cohorts: u64, months: u32) -> u64 {
    cohort * u64::from(months) / cohorts
}

/// What an account is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// The original dashboard's generator: cohorts, plan mix, ~15% churn, ~10% failed payments.
    Default,
    /// Default plus one customer for every edge case of the metric contract.
    Full,
}

/// Builds customers one at a time so any account size streams to disk.
pub struct Generator<'a> {
    pub seed: u64,
    pub now: i64,
    pub first_month: Month,
    pub months: u32,
    pub customers: u64,
    pub catalog: &'a Catalog,
}

impl Generator<'_> {
    /// The `i`-th random customer of the default generator.
    pub fn base_customer(&self, index: u64) -> SimCustomer {
        let mut rng = Rng::for_stream(self.seed, index);
        let cohort = index * COHORTS / self.customers.max(1);
        let month = self.first_month.plus(cohort_month(cohort, COHORTS, self.months) as i64);
        let latest = month.end().min(self.now - DAY);
        let created = month.start() + rng.range(0, (latest - month.start()).max(1));
        let mut c = self.customer(index, created, "usd", Some(cohort as usize));

        let plan = rng.weighted(&PLAN_WEIGHTS);
        let annual = rng.chance(ANNUAL_PER_MILLE);
        let p = if annual { price::annual(plan) } else { price::monthly(plan) };
        let start = created + rng.range(60, 3600);
        let mut sub = self.subscription(&c, 0, start, &[(p, 1)]);

        if rng.chance(CHURN_PER_MILLE) {
            // Voluntary churn some time after signing up.
            let requested = start + rng.range(DAY, (self.now - start).max(DAY + 1));
            if requested < self.now {
                if rng.chance(500) {
                    sub.cancel = Some(Cancellation {
                        requested_at: requested,
                        ends_at: requested,
                        at_period_end: false,
                        reason: "immediate",
                    });
                } else {
                    let end = sub.period_start(sub.period_at(requested) + 1);
                    sub.cancel = Some(Cancellation {
                        requested_at: requested,
                        ends_at: end,
                        at_period_end: true,
                        reason: "period_end",
                    });
                }
            }
        } else if rng.chance(FAILURE_PER_MILLE) {
            // A renewal payment fails; some recover, the rest end canceled or unpaid.
            let eligible: Vec<i64> = (1..).take_while(|k| sub.period_start(*k) < self.now - 2 * DAY).collect();
            if !eligible.is_empty() {
                let k = eligible[rng.below(eligible.len() as u64) as usize];
                let failed_at = sub.period_start(k) + 3600;
                let outcome = match rng.weighted(&[50, 25, 25]) {
                    0 => FailureOutcome::Recovered(failed_at + rng.range(DAY, 7 * DAY)),
                    1 => FailureOutcome::Canceled(failed_at + 14 * DAY),
                    _ => FailureOutcome::Unpaid(failed_at + 14 * DAY),
                };
                sub.failure = Some(PaymentFailure { period: k, failed_at, outcome });
            }
        }
        c.subscriptions.push(sub);
        c
    }

    /// The full scenario's named edge cases, numbered after the random customers.
    /// Needs at least 4 months of history (checked by the caller).
    pub fn edge_customers(&self) -> Vec<SimCustomer> {
        let at = |month: i64, day: i64| self.first_month.plus(month).start() + (day - 1) * DAY + 10 * 3600;
        let mut out = Vec::new();
        let mut next = self.customers;
        let mut add = |case: &'static str, currency: &'static str, build: &dyn Fn(&Self, &mut SimCustomer)| {
            let index = next;
            next += 1;
            let mut c = self.customer(index, 0, currency, None);
            c.case = Some(case);
            build(self, &mut c);
            c.created = c.subscriptions.iter().map(|s| s.start).min().unwrap_or(self.now) - 600;
            out.push(c);
        };
        let pro = price::monthly(1);
        let business = price::monthly(2);
        let starter = price::monthly(0);

        add("trial_converting", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(1, 5), &[(pro, 1)]);
            s.trial_end = Some(at(1, 5) + 14 * DAY);
            c.subscriptions.push(s);
        });
        add("trial_not_converting", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(1, 8), &[(business, 1)]);
            let end = at(1, 8) + 14 * DAY;
            s.trial_end = Some(end);
            s.cancel =
                Some(Cancellation { requested_at: end, ends_at: end, at_period_end: false, reason: "trial_ended" });
            c.subscriptions.push(s);
        });
        add("upgrade_mid_period", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(0, 10), &[(starter, 1)]);
            s.phases.push(Phase::invoiced(at(2, 20), vec![ItemState { slot: 0, price: business, quantity: 1 }]));
            c.subscriptions.push(s);
        });
        add("downgrade_mid_period", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(0, 12), &[(business, 1)]);
            s.phases.push(Phase::invoiced(at(2, 3), vec![ItemState { slot: 0, price: pro, quantity: 1 }]));
            c.subscriptions.push(s);
        });
        add("quantity_change", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(0, 15), &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
            let mut items = s.phases[0].items.clone();
            items[1].quantity = 7;
            s.phases.push(Phase::invoiced(at(1, 25), items));
            c.subscriptions.push(s);
        });
        add("multi_item", "usd", &|g, c| {
            let s = g.subscription(c, 0, at(1, 2), &[(business, 1), (price::SEAT_MONTHLY, 5)]);
            c.subscriptions.push(s);
        });
        add("many_items_changed_together", "usd", &|g, c| {
            let all = [
                (starter, 1),
                (pro, 1),
                (business, 1),
                (price::monthly(3), 1),
                (price::SEAT_MONTHLY, 2),
                (price::FREE_MONTHLY, 1),
            ];
            let mut s = g.subscription(c, 0, at(0, 18), &all);
            let items = s.phases[0].items.iter().map(|i| ItemState { quantity: i.quantity + 1, ..*i }).collect();
            // Twelve proration lines: more than an invoice embeds, so pulls must page through /lines.
            s.phases.push(Phase::invoiced(at(1, 20), items));
            c.subscriptions.push(s);
        });
        add("quarterly_price", "usd", &|g, c| {
            let s = g.subscription(c, 0, at(0, 20), &[(price::PRO_QUARTERLY, 1)]);
            c.subscriptions.push(s);
        });
        add("weekly_price", "usd", &|g, c| {
            let s = g.subscription(c, 0, at(1, 1), &[(price::STARTER_WEEKLY, 1)]);
            c.subscriptions.push(s);
        });
        add("annual_price", "usd", &|g, c| {
            let s = g.subscription(c, 0, at(1, 14), &[(price::annual(3), 1)]);
            c.subscriptions.push(s);
        });
        for (day, (case, coupon, plan)) in [
            ("coupon_percent_forever", "PCT25FOREVER", pro),
            ("coupon_percent_repeating", "PCT20X3", pro),
            ("coupon_percent_once", "PCT50ONCE", pro),
            ("coupon_percent_fraction_annual", "PCT12P5FOREVER", price::annual(1)),
            ("coupon_amount_forever", "USD10FOREVER", business),
            ("coupon_amount_repeating", "USD15X2", business),
            ("coupon_amount_once", "USD5ONCE", starter),
        ]
        .into_iter()
        .enumerate()
        {
            add(case, "usd", &move |g, c| {
                let start = at(1, 3 + day as i64);
                let mut s = g.subscription(c, 0, start, &[(plan, 1)]);
                s.discount = Some(g.discount(c, coupon, start));
                c.subscriptions.push(s);
            });
        }
        add("cancel_at_period_end_ended", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(0, 5), &[(pro, 1)]);
            let requested = at(2, 10);
            let ends_at = s.period_start(s.period_at(requested) + 1);
            s.cancel =
                Some(Cancellation { requested_at: requested, ends_at, at_period_end: true, reason: "period_end" });
            c.subscriptions.push(s);
        });
        add("cancel_at_period_end_pending", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(0, 25), &[(pro, 1)]);
            // Requested inside the current period, so the end lies after `now`.
            let requested = s.period_start(s.period_at(g.now)) + 3600;
            let ends_at = s.period_start(s.period_at(g.now) + 1);
            s.cancel =
                Some(Cancellation { requested_at: requested, ends_at, at_period_end: true, reason: "period_end" });
            c.subscriptions.push(s);
        });
        add("immediate_cancel", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(0, 8), &[(business, 1)]);
            s.cancel = Some(Cancellation {
                requested_at: at(2, 14),
                ends_at: at(2, 14),
                at_period_end: false,
                reason: "immediate",
            });
            c.subscriptions.push(s);
        });
        add("churned_then_returned", "usd", &|g, c| {
            let mut first = g.subscription(c, 0, at(0, 3), &[(pro, 1)]);
            first.cancel = Some(Cancellation {
                requested_at: at(1, 10),
                ends_at: at(1, 10),
                at_period_end: false,
                reason: "immediate",
            });
            c.subscriptions.push(first);
            let second = g.subscription(c, 1, at(2, 18), &[(price::annual(1), 1)]);
            c.subscriptions.push(second);
        });
        add("second_subscription_canceled", "usd", &|g, c| {
            c.subscriptions.push(g.subscription(c, 0, at(0, 9), &[(starter, 1)]));
            let mut extra = g.subscription(c, 1, at(1, 9), &[(pro, 1)]);
            extra.cancel = Some(Cancellation {
                requested_at: at(2, 9),
                ends_at: at(2, 9),
                at_period_end: false,
                reason: "immediate",
            });
            c.subscriptions.push(extra);
        });
        add("eur_customer_with_tax", "eur", &|g, c| {
            c.tax_percent = Some(20);
            c.subscriptions.push(g.subscription(c, 0, at(0, 6), &[(price::PRO_EUR, 1)]));
        });
        add("gbp_customer_with_tax", "gbp", &|g, c| {
            c.tax_percent = Some(20);
            c.subscriptions.push(g.subscription(c, 0, at(1, 9), &[(price::STARTER_GBP, 2)]));
        });
        add("metered_price", "usd", &|g, c| {
            c.subscriptions.push(g.subscription(c, 0, at(0, 11), &[(pro, 1), (price::API_METERED, 1)]));
        });
        add("free_plan", "usd", &|g, c| {
            c.subscriptions.push(g.subscription(c, 0, at(0, 1), &[(price::FREE_MONTHLY, 1)]));
        });
        for (case, period, outcome) in [
            ("past_due_recovered", 2, FailureOutcome::Recovered(4 * DAY)),
            ("past_due_then_canceled", 1, FailureOutcome::Canceled(14 * DAY)),
            ("past_due_then_unpaid", 2, FailureOutcome::Unpaid(14 * DAY)),
        ] {
            add(case, "usd", &move |g, c| {
                let mut s = g.subscription(c, 0, at(0, 2 + period), &[(starter, 1)]);
                let failed_at = s.period_start(period) + 3600;
                let shift = |o| match o {
                    FailureOutcome::Recovered(d) => FailureOutcome::Recovered(failed_at + d),
                    FailureOutcome::Canceled(d) => FailureOutcome::Canceled(failed_at + d),
                    FailureOutcome::Unpaid(d) => FailureOutcome::Unpaid(failed_at + d),
                };
                s.failure = Some(PaymentFailure { period, failed_at, outcome: shift(outcome) });
                c.subscriptions.push(s);
            });
        }
        add("past_due_open", "usd", &|g, c| {
            let mut s = g.subscription(c, 0, at(0, 16), &[(pro, 1)]);
            // The latest renewal failed and is still being retried at `now`.
            let k = s.period_at(g.now);
            let failed_at = s.period_start(k) + 3600;
            if failed_at < g.now {
                s.failure =
                    Some(PaymentFailure { period: k, failed_at, outcome: FailureOutcome::Unpaid(g.now + 30 * DAY) });
            }
            c.subscriptions.push(s);
        });
        add("coupon_amount_multi_item", "usd", &|g, c| {
            // $10 off Pro + 3 seats: split 724.77 / 275.23 by what each bills, the spare cent to Pro.
            let start = at(1, 11);
            let mut s = g.subscription(c, 0, start, &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
            s.discount = Some(g.discount(c, "USD10FOREVER", start));
            c.subscriptions.push(s);
        });
        add("deleted_coupon", "usd", &|g, c| {
            // 30% off Pro forever since 07-04, from a launch coupon deleted since: no coupon list
            // or retrieval returns it, and it keeps discounting her (7900 x 0.7).
            let start = at(1, 4);
            let mut s = g.subscription(c, 0, start, &[(pro, 1)]);
            s.discount = Some(g.discount(c, "LAUNCH30", start));
            c.subscriptions.push(s);
        });
        add("removed_discount", "usd", &|g, c| {
            // 25% off Business forever since 07-06, taken off 9 days ago, after the last renewal:
            // only its `customer.discount.deleted` event says when (D2).
            let start = at(1, 6);
            let mut s = g.subscription(c, 0, start, &[(business, 1)]);
            s.discount = Some(SimDiscount { removed: Some(g.now - 9 * DAY), ..g.discount(c, "PCT25FOREVER", start) });
            c.subscriptions.push(s);
        });
        add("removed_discount_invoiced", "usd", &|g, c| {
            // 25% off Pro forever since 06-28, taken off 09-15, an event older than Stripe keeps:
            // the 09-28 renewal, the first invoice without a discount, says it is gone (D2).
            let start = at(0, 28);
            let mut s = g.subscription(c, 0, start, &[(pro, 1)]);
            s.discount = Some(SimDiscount { removed: Some(at(3, 15)), ..g.discount(c, "PCT25FOREVER", start) });
            c.subscriptions.push(s);
        });
        add("customer_level_coupon", "usd", &|g, c| {
            // 12.5% off forever on the customer since 07-10: her Pro and Starter subscriptions,
            // with no discount of their own, both inherit it (D3): 6912.5 + 2537.5.
            let discount = SimDiscount { inherited: true, ..g.discount(c, "PCT12P5FOREVER", at(1, 10)) };
            for (n, plan) in [pro, starter].into_iter().enumerate() {
                let mut s = g.subscription(c, n as u64, at(0, 20 + n as i64), &[(plan, 1)]);
                s.discount = Some(discount.clone());
                c.subscriptions.push(s);
            }
        });
        add("product_restricted_coupon", "usd", &|g, c| {
            // Pro + 3 seats since 07-12 with 50% off seats only (`applies_to`): 7900 + 1500 (D4).
            let start = at(1, 12);
            let mut s = g.subscription(c, 0, start, &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
            s.discount = Some(g.discount(c, "SEATS50", start));
            c.subscriptions.push(s);
        });
        add("legacy_archived_plan", "usd", &|g, c| {
            // Grandfathered on Pro's archived 2024 price: plain price lists leave it out.
            c.subscriptions.push(g.subscription(c, 0, at(0, 3), &[(price::PRO_LEGACY, 1)]));
        });
        add("transform_quantity_packs", "usd", &|g, c| {
            // Pro + 7 seats sold in packs of 4 (round up): 2 packs, $79 + $20.
            c.subscriptions.push(g.subscription(c, 0, at(1, 6), &[(pro, 1), (price::SEAT_PACK, 7)]));
        });
        add("inline_price", "usd", &|g, c| {
            // A negotiated $149 Business price made with `price_data`: in no price list.
            c.subscriptions.push(g.subscription(c, 0, at(1, 9), &[(price::BUSINESS_INLINE, 1)]));
        });
        add("volume_tiers", "usd", &|g, c| {
            // Pro + 12 seats on volume tiers: all 12 at the 6-20 tier's $10, plus its $5 flat.
            c.subscriptions.push(g.subscription(c, 0, at(0, 12), &[(pro, 1), (price::SEAT_VOLUME, 12)]));
        });
        add("graduated_tiers", "usd", &|g, c| {
            // 25 seats on graduated tiers: 10 x $15 + $10 flat, then 15 x $12.
            c.subscriptions.push(g.subscription(c, 0, at(1, 14), &[(price::SEAT_GRADUATED, 25)]));
        });
        add("pending_proration_upgrade", "usd", &|g, c| {
            // Starter to Business 3 days ago with Stripe's default, create_prorations: the
            // prorations wait for the next renewal's invoice, so no invoice shows Business yet.
            let start = add_months(g.now - 10 * DAY, -2);
            let mut s = g.subscription(c, 0, start, &[(starter, 1)]);
            let items = vec![ItemState { slot: 0, price: business, quantity: 1 }];
            s.phases.push(Phase { from: g.now - 3 * DAY, items, proration: Proration::CreateProrations });
            c.subscriptions.push(s);
        });
        add("seat_change_without_proration", "usd", &|g, c| {
            // Annual Pro from 2 to 5 seats 6 days ago with proration_behavior=none: nothing is
            // invoiced until the renewal, 7 months ahead.
            c.subscriptions.push(g.annual_seat_change(c, 5, 6, Proration::None));
        });
        add("currency_options_eur", "eur", &|g, c| {
            // A EUR subscription on Business monthly, a USD price: billed its 185.00 EUR option.
            c.subscriptions.push(g.subscription(c, 0, at(0, 20), &[(price::monthly(2), 1)]));
        });
        add("replaced_coupon", "usd", &|g, c| {
            // 25% off Pro forever since 06-14 (5925), replaced on 08-10 by $10 off forever (6900):
            // Stripe's update sets the whole `discounts` list (D5). The replacement's events are
            // older than Stripe keeps and every renewal since is discounted: only the new
            // discount's start says when the old one ended.
            let first = at(0, 14);
            let mut s = g.subscription(c, 0, first, &[(pro, 1)]);
            s.replaced = Some(g.discount(c, "PCT25FOREVER", first));
            s.discount = Some(g.second_discount(c, "USD10FOREVER", at(2, 10)));
            c.subscriptions.push(s);
        });
        add("long_invoice_paid_late", "usd", &|g, c| {
            // All five products since 08-15, each 1 seat; every seat count raised by one on
            // 09-20, 09-27 and 10-04 with Stripe's default create_prorations, so the 10-15
            // renewal bills 5 lines plus 30 prorations. Its payment failed and was retried
            // successfully on 11-08: the `invoice.paid` event embeds 10 of its 35 lines (L6).
            let renewal = g.now - 36 * DAY;
            let plans = [(starter, 1), (pro, 1), (business, 1), (price::monthly(3), 1), (price::SEAT_MONTHLY, 1)];
            let mut s = g.subscription(c, 0, add_months(renewal, -2), &plans);
            for (n, days_before) in [25, 18, 11].into_iter().enumerate() {
                let items = s.phases[0].items.iter().map(|i| ItemState { quantity: n as u32 + 2, ..*i }).collect();
                s.phases.push(Phase {
                    from: renewal - days_before * DAY,
                    items,
                    proration: Proration::CreateProrations,
                });
            }
            let outcome = FailureOutcome::Recovered(g.now - 12 * DAY);
            s.failure = Some(PaymentFailure { period: 2, failed_at: renewal + 3600, outcome });
            c.subscriptions.push(s);
        });
        add("paused_collection", "usd", &|g, c| {
            // Pro since 06-16; collection paused 07-05 to 08-01 voiding its invoices (the 07-16
            // renewal), and again for the last 38 days keeping them as drafts (the last two
            // renewals). Her status stays `active` throughout, so she counts 7900 every month (P1).
            let mut s = g.subscription(c, 0, at(0, 16), &[(pro, 1)]);
            s.pauses = vec![
                CollectionPause { from: at(1, 5), resumes_at: Some(at(2, 1)), behavior: PauseBehavior::Void },
                CollectionPause { from: g.now - 38 * DAY, resumes_at: None, behavior: PauseBehavior::KeepAsDraft },
            ];
            c.subscriptions.push(s);
        });
        add("pending_upgrade_events_gone", "usd", &|g, c| {
            // Annual Pro since 06-20 with 2 seats, 4 seats from 10-06 with Stripe's default
            // create_prorations: the prorations wait as pending invoice items for the renewal,
            // 7 months ahead, and the update's event is older than Stripe keeps (U1).
            c.subscriptions.push(g.annual_seat_change(c, 4, 45, Proration::CreateProrations));
        });
        add("graduated_tiers_eur", "eur", &|g, c| {
            // A EUR subscription on the graduated seats, a USD price whose EUR option has tiers
            // of its own (only `expand[]=currency_options.eur.tiers` returns them, L10): 12
            // seats = 10 x 14.00 + 9.00 flat + 2 x 11.00 EUR.
            c.subscriptions.push(g.subscription(c, 0, at(0, 18), &[(price::SEAT_GRADUATED, 12)]));
        });
        add("amount_coupon_eur", "eur", &|g, c| {
            // A EUR subscription on Business monthly (its 185.00 EUR option) with "$10 off
            // forever", whose EUR option takes 9.00 EUR off (D6): 176.00 EUR, never 10.00 USD
            // taken as euros.
            let start = at(0, 22);
            let mut s = g.subscription(c, 0, start, &[(price::monthly(2), 1)]);
            s.discount = Some(g.discount(c, "USD10FOREVER", start));
            c.subscriptions.push(s);
        });
        add("item_discount_removed", "usd", &|g, c| {
            // Pro + 3 seats since 07-13 with 25% off the seats item only (an item-level
            // discount, D7): 7900 + 2250. Taken off 09-05, an event older than Stripe keeps:
            // only the lines of the July and August invoices still show the discount, and the
            // 09-13 renewal, the first without it, says it is gone.
            let start = at(1, 13);
            let mut s = g.subscription(c, 0, start, &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
            let d = g.discount(c, "PCT25FOREVER", start);
            s.discount = Some(SimDiscount { item: Some(1), removed: Some(at(3, 5)), ..d });
            c.subscriptions.push(s);
        });
        add("item_discount_amount", "usd", &|g, c| {
            // Pro + 3 seats since 07-15 with $10 off forever on the seats item only (D7): the
            // seats' plan carries the whole 10.00 off (2000), Pro stays whole (7900).
            let start = at(1, 15);
            let mut s = g.subscription(c, 0, start, &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
            s.discount = Some(SimDiscount { item: Some(1), ..g.discount(c, "USD10FOREVER", start) });
            c.subscriptions.push(s);
        });
        add("proration_billed_at_renewal", "usd", &|g, c| {
            // Starter since 09-08, Pro from 10-25 with Stripe's default create_prorations: its
            // two prorations wait as pending invoice items until the 11-08 renewal bills them,
            // each line naming its item (U1). A snapshot taken in between lists them pending.
            let renewal = g.now - 12 * DAY;
            let mut s = g.subscription(c, 0, add_months(renewal, -2), &[(starter, 1)]);
            let items = vec![ItemState { slot: 0, price: pro, quantity: 1 }];
            s.phases.push(Phase { from: g.now - 26 * DAY, items, proration: Proration::CreateProrations });
            c.subscriptions.push(s);
        });
        add("pending_proration_deleted", "usd", &|g, c| {
            // Starter since 09-25, Pro from 10-26 with create_prorations; the merchant deleted
            // the two pending prorations on 11-05 (`invoiceitem.deleted`), so no invoice will
            // bill them and none shows Pro yet: its `customer.subscription.updated` event dates
            // the change (U1).
            let mut s = g.subscription(c, 0, add_months(g.now + 5 * DAY, -2), &[(starter, 1)]);
            let items = vec![ItemState { slot: 0, price: pro, quantity: 1 }];
            let proration = Proration::PendingDeletedAt(g.now - 15 * DAY);
            s.phases.push(Phase { from: g.now - 25 * DAY, items, proration });
            c.subscriptions.push(s);
        });
        add("customer_coupon_and_own_discount", "usd", &|g, c| {
            // 12.5% off forever on the customer since 07-10, and $10 off forever on her Starter
            // subscription's own from the same day: Pro (no discount of its own) inherits the
            // customer's, Starter keeps its own alone (D3): 6912.5 + 1900, one cent-rounding
            // per customer and month.
            let start = at(1, 10);
            let mut pro_sub = g.subscription(c, 0, at(0, 20), &[(pro, 1)]);
            pro_sub.discount = Some(SimDiscount { inherited: true, ..g.discount(c, "PCT12P5FOREVER", start) });
            c.subscriptions.push(pro_sub);
            let mut starter_sub = g.subscription(c, 1, at(0, 21), &[(starter, 1)]);
            starter_sub.discount = Some(g.second_discount(c, "USD10FOREVER", start));
            c.subscriptions.push(starter_sub);
        });
        add("deleted_customer", "usd", &|g, c| {
            // Business since 06-14; the merchant deletes the customer on 11-03, which cancels
            // the subscription at once (R2): no November MRR, the history stays.
            let mut s = g.subscription(c, 0, at(0, 14), &[(business, 1)]);
            let deleted = at(5, 3);
            s.cancel =
                Some(Cancellation { requested_at: deleted, ends_at: deleted, at_period_end: false, reason: "deleted" });
            c.subscriptions.push(s);
            c.deleted_at = Some(deleted);
        });
        add("one_off_invoices", "usd", &|g, c| {
            // Pro since 06-11 with a $500 onboarding fee billed by hand that day, and a $300
            // draft of consulting created 11-05 and deleted 11-06 (its item first): neither is
            // a subscription's, so MRR is Pro's 7900 throughout (U2).
            c.subscriptions.push(g.subscription(c, 0, at(0, 11), &[(pro, 1)]));
            let fee = OneOffInvoice {
                created: at(0, 11) + 1800,
                amount: 50_000,
                description: "Onboarding",
                finalized: true,
                deleted_at: None,
            };
            let draft = OneOffInvoice {
                created: at(5, 5),
                amount: 30_000,
                description: "Consulting",
                finalized: false,
                deleted_at: Some(at(5, 6)),
            };
            c.one_off_invoices = vec![fee, draft];
        });
        add("decimal_unit_amount", "usd", &|g, c| {
            // 123 450 committed API calls at 0.0375 cents (`unit_amount_decimal`) since 06-08,
            // the same again since 07-08 and 123 460 since 09-08: Stripe rounds each invoice
            // line (4629.375 to 4629, 4629.75 to 4630), so 4629, then 9258 (not 9258.75's
            // 9259), then 13888.
            let calls = price::API_COMMITTED_DECIMAL;
            for (n, (month, quantity)) in [(0, 123_450), (1, 123_450), (3, 123_460)].into_iter().enumerate() {
                c.subscriptions.push(g.subscription(c, n as u64, at(month, 8), &[(calls, quantity)]));
            }
        });
        add("decimal_volume_tiers", "usd", &|g, c| {
            // 123 457 committed API calls on volume tiers of fractions of a cent since 07-03:
            // all in the 100 001-1 000 000 tier, 123 457 x 0.04 = 4938.28, billed 4938, plus its
            // $10 flat: 5938.
            c.subscriptions.push(g.subscription(c, 0, at(1, 3), &[(price::API_VOLUME_DECIMAL, 123_457)]));
        });
        // An item's discount and its subscription's at once: Stripe applies the item's first
        // and the subscription's to what it left (D7). Both are listed now, so neither was
        // taken off unseen.
        let item_and_subscription = |item_coupon: &'static str, day: i64| {
            move |g: &Generator, c: &mut SimCustomer| {
                let start = at(1, day);
                let mut s = g.subscription(c, 0, start, &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
                s.discount = Some(g.discount(c, "PCT25FOREVER", start));
                s.item_discount = Some(SimDiscount { item: Some(1), ..g.second_discount(c, item_coupon, at(2, day)) });
                c.subscriptions.push(s);
            }
        };
        // Pro + 3 seats since 07-17 with 25% off forever (5925 + 2250), and 50% off the
        // seats item since 08-17: the seats keep 75% of their 50%, 1125; 7050.
        add("item_and_subscription_percents", "usd", &item_and_subscription("SEATS50", 17));
        // Pro + 3 seats since 07-19 with 25% off forever (8175), and $10 off the seats item
        // since 08-19: the seats bill 20.00, of which 75% count, 1500; 7425.
        add("item_amount_and_subscription_percent", "usd", &item_and_subscription("USD10FOREVER", 19));
        // Pro + 3 seats since 07-25 inheriting its customer's 25% off forever (8175), and $10
        // off the seats item since 08-25, applied first (D3, D7): 75% of 7900 + 2000, 7425.
        add("customer_coupon_and_item_discount", "usd", &|g, c| {
            let start = at(1, 25);
            let mut s = g.subscription(c, 0, start, &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
            s.discount = Some(SimDiscount { inherited: true, ..g.discount(c, "PCT25FOREVER", start) });
            s.item_discount = Some(SimDiscount { item: Some(1), ..g.second_discount(c, "USD10FOREVER", at(2, 25)) });
            c.subscriptions.push(s);
        });
        // Two discounts of the subscription's own at once (a stack): Stripe applies them in the
        // list's order, each to what the ones before left (D5).
        let stacked = |first: &'static str, second: &'static str, day: i64, second_start: i64| {
            move |g: &Generator, c: &mut SimCustomer| {
                let start = at(1, day);
                let mut s = g.subscription(c, 0, start, &[(pro, 1), (price::SEAT_MONTHLY, 3)]);
                s.discount = Some(g.discount(c, first, start));
                s.stacked_discount = Some(g.second_discount(c, second, second_start));
                c.subscriptions.push(s);
            }
        };
        // Pro + 3 seats since 07-21 with $10 off forever (9900), and 25% off forever listed
        // after it since 08-21: 75% of what the $10 left, 7425.
        add("stacked_amount_then_percent", "usd", &stacked("USD10FOREVER", "PCT25FOREVER", 21, at(2, 21)));
        // Pro + 3 seats since 07-23 with 25% off forever (8175), and 20% off for 3 months
        // listed after it for the last 20 days (so still listed now): 80% of 75%, 60%: 6540.
        add("stacked_percents", "usd", &stacked("PCT25FOREVER", "PCT20X3", 23, self.now - 20 * DAY));
        out
    }

    /// Annual Pro for the last 5 months with 2 seats, changed to `seats` seats `days_ago` days
    /// ago with `proration` (the uninvoiced-change cases, U1).
    fn annual_seat_change(&self, c: &SimCustomer, seats: u32, days_ago: i64, proration: Proration) -> SimSubscription {
        let pro_annual = price::annual(1);
        let mut s = self.subscription(c, 0, add_months(self.now, -5), &[(pro_annual, 2)]);
        let items = vec![ItemState { slot: 0, price: pro_annual, quantity: seats }];
        s.phases.push(Phase { from: self.now - days_ago * DAY, items, proration });
        s
    }

    /// The customer's second discount, of `coupon` from `start`: one replacing, stacked on or
    /// beside the first ([`Self::discount`]).
    fn second_discount(&self, c: &SimCustomer, coupon: &str, start: i64) -> SimDiscount {
        SimDiscount {
            id: stripe_id("di", self.seed, kind::DISCOUNT, c.index * 16 + 1),
            ..self.discount(c, coupon, start)
        }
    }

    /// The customer's discount of `coupon` from `start` (one id per customer: a second one is
    /// [`Self::second_discount`]).
    fn discount(&self, c: &SimCustomer, coupon: &str, start: i64) -> SimDiscount {
        SimDiscount {
            id: stripe_id("di", self.seed, kind::DISCOUNT, c.index * 16),
            coupon: self.catalog.coupon(coupon),
            start,
            removed: None,
            inherited: false,
            item: None,
        }
    }

    fn customer(&self, index: u64, created: i64, currency: &'static str, clock: Option<usize>) -> SimCustomer {
        SimCustomer {
            index,
            id: stripe_id("cus", self.seed, kind::CUSTOMER, index),
            created,
            currency,
            name: format!("Customer {:06}", index + 1),
            email: format!("customer{:06}@example.com", index + 1),
            test_clock: clock,
            case: None,
            tax_percent: None,
            deleted_at: None,
            one_off_invoices: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    /// A new subscription (the customer's `n`-th) with one item slot per (price, quantity).
    fn subscription(&self, c: &SimCustomer, n: u64, start: i64, items: &[(usize, u32)]) -> SimSubscription {
        let first = &self.catalog.prices[items[0].0];
        let sub_no = c.index * 16 + n;
        SimSubscription {
            id: stripe_id("sub", self.seed, kind::SUBSCRIPTION, sub_no),
            start,
            trial_end: None,
            interval: first.interval,
            interval_count: first.interval_count,
            // A subscription bills in its customer's currency; a price in another is billed at
            // its currency option (L10).
            currency: c.currency,
            items: (0..items.len())
                .map(|slot| SimItem {
                    id: stripe_id("si", self.seed, kind::ITEM, sub_no * 16 + slot as u64),
                    created: start,
                })
                .collect(),
            phases: vec![Phase::invoiced(
                start,
                items
                    .iter()
                    .enumerate()
                    .map(|(slot, (price, quantity))| ItemState { slot, price: *price, quantity: *quantity })
                    .collect(),
            )],
            discount: None,
            replaced: None,
            stacked_discount: None,
            item_discount: None,
            pauses: Vec::new(),
            failure: None,
            cancel: None,
        }
    }
}
