//! The independent answer key: every metric, computed straight from the timeline
//! of what happened (never from the emitted Stripe objects, never through SQL).

use serde::Serialize;

use super::catalog::{Catalog, Duration, Off, Usage};
use super::model::{SimCustomer, SimSubscription, Status};
use crate::calendar::Month;
use crate::metrics::{
    ChurnAt, CustomerSeries, DiscountRule, MetricOptions, MonthlyAggregator, MonthlyRow, PlanRow, SeedRow,
};
use crate::money::{apply_percents_off, monthly_scaled, percent_to_hundredths, round_scaled_to_cents, SCALE};

/// The instant a month's MRR is measured at: its last second, or `now` for the current month.
pub fn measured_at(month: Month, now: i64) -> i64 {
    (month.end() - 1).min(now)
}

/// A subscription's monthly-normalised value at instant `t`, times [`SCALE`]: the sum of
/// its items' (see [`item_values`]).
pub fn contribution(catalog: &Catalog, sub: &SimSubscription, t: i64, opts: MetricOptions) -> i128 {
    item_values(catalog, sub, t, opts).iter().map(|(_, v)| v).sum()
}

/// Each licensed item's monthly-normalised value at instant `t`, times [`SCALE`], with the
/// price it is on. A percent-off coupon reduces every item it applies to (all, its products'
/// or its one item's); an amount-off coupon (capped at what those items bill) is split
/// across them in proportion to what they bill,
/// in whole minor units, the units left over going one each to the largest remainders
/// (ties: item id), so the items always add up to the subscription's value.
pub fn item_values(catalog: &Catalog, sub: &SimSubscription, t: i64, opts: MetricOptions) -> Vec<(usize, i128)> {
    if t < sub.start || sub.ended_at(t).is_some() {
        return Vec::new();
    }
    if opts.churn_at == ChurnAt::Cancel && sub.canceled_at(t).is_some() {
        return Vec::new();
    }
    // Stripe's MRR counts `active` and `past_due` subscriptions; pausing collection leaves
    // the status as it is, so a paused subscription counts (docs/metrics.md, P1).
    if !matches!(sub.status_at(t), Status::Active | Status::PastDue) {
        return Vec::new();
    }
    let scaled = |amount: i64| {
        monthly_scaled(amount as i128, sub.interval, sub.interval_count).expect("simulated intervals are exact")
    };
    // (item id, price, amount billed per interval) of the licensed items.
    let items: Vec<(&str, usize, i64)> = sub
        .phase_at(t)
        .items
        .iter()
        .filter(|i| catalog.prices[i.price].usage == Usage::Licensed)
        .map(|i| (sub.items[i.slot].id.as_str(), i.price, catalog.prices[i.price].billed(i.quantity, sub.currency)))
        .collect();
    // Its discounts in Stripe's order: an item's before its subscription's (D7), each on what
    // the one before left.
    let counts = |coupon: &super::catalog::Coupon| match opts.discounts {
        DiscountRule::None => false,
        DiscountRule::Recurring => coupon.duration != Duration::Once,
        DiscountRule::All => true,
    };
    let layers = sub.discounts_applied_at(catalog, t).filter(|d| counts(&catalog.coupons[d.coupon]));
    // What each item bills after the amounts taken off, and the percents it is still to lose.
    let mut billed: Vec<i64> = items.iter().map(|(_, _, a)| *a).collect();
    let mut percents: Vec<Vec<i128>> = vec![Vec::new(); items.len()];
    for d in layers {
        let coupon = &catalog.coupons[d.coupon];
        // A coupon restricted to some products (`applies_to`) discounts only their items (D4), an
        // item-level discount only its item (D7).
        let eligible: Vec<bool> = items
            .iter()
            .map(|(id, price, _)| {
                coupon.applies_to_product(catalog.prices[*price].product)
                    && d.item.is_none_or(|slot| sub.items[slot].id == *id)
            })
            .collect();
        match coupon.off {
            Off::Percent(p) => {
                for i in (0..items.len()).filter(|i| eligible[*i]) {
                    percents[i].push(percent_to_hundredths(p));
                }
            }
            Off::Amount { .. } => {
                assert!(
                    (0..items.len()).all(|i| !eligible[i] || percents[i].is_empty()),
                    "the simulator never takes an amount off after a percent (refused by the engine)"
                );
                // In the subscription's currency: the coupon's own amount or its option's (D6),
                // capped at what those items bill, split in proportion to it by largest remainder.
                let amount = coupon.amount_off_in(sub.currency).expect("an amount-off coupon");
                let share_of = |i: usize| if eligible[i] { billed[i] } else { 0 };
                let gross: i64 = (0..items.len()).map(share_of).sum();
                if gross == 0 {
                    continue;
                }
                let off = amount.min(gross) as i128;
                let mut shares: Vec<(i128, i128)> = (0..items.len())
                    .map(|i| (off * share_of(i) as i128 / gross as i128, off * share_of(i) as i128 % gross as i128))
                    .collect();
                let left_over = off - shares.iter().map(|(s, _)| s).sum::<i128>();
                let mut order: Vec<usize> = (0..items.len()).filter(|i| share_of(*i) > 0).collect();
                order.sort_by(|x, y| shares[*y].1.cmp(&shares[*x].1).then(items[*x].0.cmp(items[*y].0)));
                for i in order.into_iter().take(left_over as usize) {
                    shares[i].0 += 1;
                }
                for (b, (share, _)) in billed.iter_mut().zip(shares) {
                    *b -= share as i64;
                }
            }
        }
    }
    items
        .iter()
        .zip(billed)
        .zip(percents)
        .map(|(((_, price, _), billed), percents)| (*price, apply_percents_off(scaled(billed), &percents)))
        .collect()
}

/// The `mrr_by_plan` key of a customer's item on a price in a month.
fn plan_key(catalog: &Catalog, month: Month, c: &SimCustomer, price: usize) -> PlanKey {
    let p = &catalog.prices[price];
    (month, c.currency.to_string(), p.id.clone(), catalog.products[p.product].id.clone())
}

/// A customer's MRR series from the month before `first` through `last`.
pub fn customer_series(
    catalog: &Catalog,
    c: &SimCustomer,
    first: Month,
    last: Month,
    now: i64,
    opts: MetricOptions,
) -> CustomerSeries {
    let start = first.plus(-1).min(Month::of(c.created));
    let n = last.since(start) as usize + 1;
    let mut cents = Vec::with_capacity(n);
    let mut subscriptions = Vec::with_capacity(n);
    for i in 0..n {
        let t = measured_at(start.plus(i as i64), now);
        let parts: Vec<i128> = c.subscriptions.iter().map(|s| contribution(catalog, s, t, opts)).collect();
        cents.push(round_scaled_to_cents(parts.iter().sum()));
        subscriptions.push(parts.iter().filter(|p| **p > 0).count() as i64);
    }
    CustomerSeries { currency: c.currency.to_string(), first: start, cents, subscriptions }
}

/// Accumulates the ground truth while customers stream past.
pub struct GroundTruth {
    first: Month,
    last: Month,
    now: i64,
    variants: Vec<(MetricOptions, MonthlyAggregator)>,
    seed: std::collections::BTreeMap<(Month, String), SeedAcc>,
    plans: std::collections::BTreeMap<PlanKey, PlanAcc>,
}

/// (month, currency, price id, product id) of an `mrr_by_plan` row.
type PlanKey = (Month, String, String, String);

/// An `mrr_by_plan` row being summed: MRR in minor units (each customer's value on the plan
/// rounded on its own, as the contract rounds), subscriptions, customers.
type PlanAcc = (i64, i64, i64);

#[derive(Default)]
struct SeedAcc {
    subs: i64,
    customers: i64,
    scaled: i128,
}

/// `ground_truth.json`.
#[derive(Serialize)]
pub struct GroundTruthFile {
    pub description: &'static str,
    pub as_of: String,
    pub first_month: String,
    pub last_month: String,
    pub options: MetricOptions,
    pub mrr_monthly: Vec<MonthlyRow>,
    pub seed_mrr: Vec<SeedRow>,
    /// Default options only.
    pub mrr_by_plan: Vec<PlanRow>,
    pub variants: Vec<Variant>,
}

/// Metrics under non-default options.
#[derive(Serialize)]
pub struct Variant {
    pub options: MetricOptions,
    pub mrr_monthly: Vec<MonthlyRow>,
}

impl GroundTruth {
    /// Ground truth for months `first..=last` measured as of `now`.
    pub fn new(first: Month, last: Month, now: i64) -> Self {
        let months = last.since(first) as usize + 1;
        GroundTruth {
            first,
            last,
            now,
            variants: MetricOptions::all().into_iter().map(|o| (o, MonthlyAggregator::new(first, months))).collect(),
            seed: Default::default(),
            plans: Default::default(),
        }
    }

    /// Adds a customer; returns its default-options series (for the per-customer file).
    pub fn add(&mut self, catalog: &Catalog, c: &SimCustomer) -> CustomerSeries {
        let mut default_series = None;
        for (opts, agg) in &mut self.variants {
            let s = customer_series(catalog, c, self.first, self.last, self.now, *opts);
            agg.add(&s);
            if *opts == MetricOptions::default() {
                default_series = Some(s);
            }
        }
        self.add_seed(catalog, c);
        self.add_plans(catalog, c);
        default_series.expect("default options are among all()")
    }

    /// `mrr_by_plan` (default options): each month-end, the customer's items by plan.
    fn add_plans(&mut self, catalog: &Catalog, c: &SimCustomer) {
        let mut month = self.first;
        while month <= self.last {
            let t = measured_at(month, self.now);
            let mut customer: std::collections::BTreeMap<usize, i128> = Default::default();
            for s in &c.subscriptions {
                let mut subscription: std::collections::BTreeMap<usize, i128> = Default::default();
                for (price, v) in item_values(catalog, s, t, MetricOptions::default()) {
                    *subscription.entry(price).or_default() += v;
                }
                for (price, v) in subscription {
                    *customer.entry(price).or_default() += v;
                    self.plans.entry(plan_key(catalog, month, c, price)).or_default().1 += i64::from(v > 0);
                }
            }
            for (price, v) in customer {
                let acc = self.plans.entry(plan_key(catalog, month, c, price)).or_default();
                acc.0 += round_scaled_to_cents(v);
                acc.2 += i64::from(v > 0);
            }
            month = month.plus(1);
        }
    }

    /// The original query: current status in (active, past_due, canceled), created by
    /// the month's end, not ended or canceled before its start; current items'
    /// `amount x quantity`, annual / 12, everything else taken as monthly.
    fn add_seed(&mut self, catalog: &Catalog, c: &SimCustomer) {
        let now = self.now;
        let mut month = self.first.plus(-1);
        while month <= self.last {
            let mut subs = 0;
            let mut scaled = 0i128;
            for s in c.subscriptions.iter().filter(|s| s.start <= now) {
                let status = s.status_at(now);
                let gone = s.ended_at(now).or(s.canceled_at(now));
                let counts = matches!(status, Status::Active | Status::PastDue | Status::Canceled)
                    && s.start < month.end()
                    && gone.is_none_or(|g| g >= month.start());
                if !counts {
                    continue;
                }
                subs += 1;
                let reference = s.ended_at(now).map_or(now, |e| e - 1);
                for item in &s.phase_at(reference).items {
                    let p = &catalog.prices[item.price];
                    if p.usage == Usage::Metered || p.tiers.is_some() {
                        // metered items have no quantity, tiered prices no unit_amount: the
                        // original's product is NULL (and a currency option is never looked at)
                        continue;
                    }
                    let amount = (p.unit_amount * item.quantity as i64) as i128 * SCALE;
                    scaled += if p.interval == crate::money::Interval::Year { amount / 12 } else { amount };
                }
            }
            let acc = self.seed.entry((month, c.currency.to_string())).or_default();
            acc.subs += subs;
            acc.customers += i64::from(subs > 0);
            acc.scaled += scaled;
            month = month.plus(1);
        }
    }

    /// Makes sure a currency appears in every table even with no customers.
    pub fn touch_currency(&mut self, currency: &str) {
        for (_, agg) in &mut self.variants {
            agg.touch_currency(currency);
        }
        let mut month = self.first.plus(-1);
        while month <= self.last {
            self.seed.entry((month, currency.to_string())).or_default();
            month = month.plus(1);
        }
    }

    /// The finished file.
    pub fn finish(self) -> GroundTruthFile {
        let mrr_by_plan = self
            .plans
            .iter()
            .filter(|(_, (_, subscriptions, _))| *subscriptions > 0)
            .map(|((month, currency, price, product), (mrr, subscriptions, customers))| PlanRow {
                month: month.to_string(),
                currency: currency.clone(),
                product: product.clone(),
                price: price.clone(),
                mrr: *mrr,
                active_subscriptions: *subscriptions,
                active_customers: *customers,
            })
            .collect();
        let mut seed_mrr = Vec::new();
        for ((month, currency), acc) in &self.seed {
            if *month < self.first {
                continue;
            }
            let mrr = round_scaled_to_cents(acc.scaled);
            let prev =
                self.seed.get(&(month.plus(-1), currency.clone())).map_or(0, |p| round_scaled_to_cents(p.scaled));
            seed_mrr.push(SeedRow {
                month: month.to_string(),
                currency: currency.clone(),
                active_subscriptions: acc.subs,
                active_customers: acc.customers,
                mrr_amount: mrr,
                mom_change: mrr - prev,
            });
        }
        let mut variants: Vec<Variant> =
            self.variants.iter().map(|(options, agg)| Variant { options: *options, mrr_monthly: agg.rows() }).collect();
        let default = variants.remove(0);
        GroundTruthFile {
            description: "Every metric of docs/metrics.md per month and currency, computed by `mrr simulate` from its own timeline (not from the Stripe objects, not through SQL). Money in minor units; ratios in percent.",
            as_of: crate::calendar::format_rfc3339(self.now),
            first_month: self.first.to_string(),
            last_month: self.last.to_string(),
            options: default.options,
            mrr_monthly: default.mrr_monthly,
            seed_mrr,
            mrr_by_plan,
            variants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::catalog::price;
    use crate::simulate::model::{ItemState, Phase, SimDiscount, SimItem};

    /// $10 off Pro + 3 seats, split by what each bills; the spare cent goes to the larger remainder.
    #[test]
    fn an_amount_off_coupon_splits_across_items_by_largest_remainder() {
        let catalog = Catalog::new(1, 0);
        let items = vec![
            ItemState { slot: 0, price: price::monthly(1), quantity: 1 },
            ItemState { slot: 1, price: price::SEAT_MONTHLY, quantity: 3 },
        ];
        let sub = SimSubscription {
            id: "sub_1".into(),
            start: 0,
            trial_end: None,
            interval: crate::money::Interval::Month,
            interval_count: 1,
            currency: "usd",
            items: vec![SimItem { id: "si_a".into(), created: 0 }, SimItem { id: "si_b".into(), created: 0 }],
            phases: vec![Phase::invoiced(0, items)],
            discount: Some(SimDiscount {
                id: "di_1".into(),
                coupon: catalog.coupon("USD10FOREVER"),
                start: 0,
                removed: None,
                inherited: false,
                item: None,
            }),
            replaced: None,
            stacked_discount: None,
            item_discount: None,
            pauses: Vec::new(),
            failure: None,
            cancel: None,
        };
        let values = item_values(&catalog, &sub, 100, MetricOptions::default());
        let cents: Vec<i64> = values.iter().map(|(_, v)| round_scaled_to_cents(*v)).collect();
        assert_eq!(cents, [7900 - 725, 3000 - 275]);
        assert_eq!(
            values.iter().map(|(_, v)| v).sum::<i128>(),
            contribution(&catalog, &sub, 100, MetricOptions::default())
        );
        assert_eq!(round_scaled_to_cents(contribution(&catalog, &sub, 100, MetricOptions::default())), 9900);
    }
}
