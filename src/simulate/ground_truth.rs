//! The independent answer key: every metric, computed straight from the timeline
//! of what happened (never from the emitted Stripe objects, never through SQL).

use serde::Serialize;

use super::catalog::{Catalog, Duration, Off, Usage};
use super::model::{SimCustomer, SimSubscription, Status};
use crate::calendar::Month;
use crate::metrics::{ChurnAt, CustomerSeries, DiscountRule, MetricOptions, MonthlyAggregator, MonthlyRow, SeedRow};
use crate::money::{apply_percent_off, monthly_scaled, percent_to_hundredths, round_scaled_to_cents, SCALE};

/// The instant a month's MRR is measured at: its last second, or `now` for the current month.
pub fn measured_at(month: Month, now: i64) -> i64 {
    (month.end() - 1).min(now)
}

/// A subscription's monthly-normalised value at instant `t`, times [`SCALE`].
pub fn contribution(catalog: &Catalog, sub: &SimSubscription, t: i64, opts: MetricOptions) -> i128 {
    if t < sub.start || sub.ended_at(t).is_some() {
        return 0;
    }
    if opts.churn_at == ChurnAt::Cancel && sub.canceled_at(t).is_some() {
        return 0;
    }
    if !matches!(sub.status_at(t), Status::Active | Status::PastDue) {
        return 0;
    }
    let scaled = |amount: i64| {
        monthly_scaled(amount as i128, sub.interval, sub.interval_count).expect("simulated intervals are exact")
    };
    let gross: i128 = sub
        .phase_at(t)
        .items
        .iter()
        .filter(|i| catalog.prices[i.price].usage == Usage::Licensed)
        .map(|i| scaled(catalog.prices[i.price].unit_amount * i.quantity as i64))
        .sum();
    let Some(d) = &sub.discount else { return gross };
    let coupon = &catalog.coupons[d.coupon];
    let counts = match opts.discounts {
        DiscountRule::None => false,
        DiscountRule::Recurring => coupon.duration != Duration::Once,
        DiscountRule::All => true,
    };
    let applies = counts && d.start <= t && sub.discount_end(catalog).is_none_or(|end| t < end);
    if !applies {
        return gross;
    }
    match coupon.off {
        Off::Percent(p) => apply_percent_off(gross, percent_to_hundredths(p)),
        Off::Amount { amount, .. } => (gross - scaled(amount)).max(0),
    }
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
}

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
        default_series.expect("default options are among all()")
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
                    if p.usage == Usage::Metered {
                        continue; // metered items have no quantity, so the original's product is NULL
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
            variants,
        }
    }
}
