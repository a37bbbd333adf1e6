//! The metric contract (docs/metrics.md, from `mrr-definitions.md`) stated in Rust:
//! the options users choose, the monthly output rows, and how per-customer monthly
//! MRR turns into movements. The simulator's ground truth is built on this; the SQL
//! of both dialects implements the same rules independently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calendar::Month;
use crate::money::round_half_even;

/// Which coupons reduce MRR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DiscountRule {
    /// `forever` and `repeating` coupons reduce MRR while they apply.
    #[default]
    Recurring,
    /// One-time (`once`) coupons too, during the first billing period.
    All,
    /// Coupons never reduce MRR.
    None,
}

/// When a canceled subscription stops counting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ChurnAt {
    /// At `ended_at` (Stripe's current rule).
    #[default]
    End,
    /// As soon as the cancellation is requested (`canceled_at`).
    Cancel,
}

/// Options recorded with every saved result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetricOptions {
    pub discounts: DiscountRule,
    pub churn_at: ChurnAt,
}

impl MetricOptions {
    /// Every combination, the default first.
    pub fn all() -> Vec<MetricOptions> {
        let mut out = Vec::new();
        for churn_at in [ChurnAt::End, ChurnAt::Cancel] {
            for discounts in [DiscountRule::Recurring, DiscountRule::All, DiscountRule::None] {
                out.push(MetricOptions { discounts, churn_at });
            }
        }
        out
    }
}

/// One row of `mrr_monthly`: every metric of the contract for a month and currency.
/// Money in minor units; ratios in percent rounded half to even to 2 decimals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonthlyRow {
    pub month: String,
    pub currency: String,
    pub mrr: i64,
    pub arr: i64,
    pub active_subscriptions: i64,
    pub active_customers: i64,
    pub arpa: Option<i64>,
    pub new_mrr: i64,
    pub reactivation_mrr: i64,
    pub expansion_mrr: i64,
    pub contraction_mrr: i64,
    pub churned_mrr: i64,
    pub mom_change: i64,
    pub mom_change_pct: Option<f64>,
    pub customer_churn_rate: Option<f64>,
    pub net_revenue_retention: Option<f64>,
}

/// One row of `seed_mrr`, the original query's output (per currency).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedRow {
    pub month: String,
    pub currency: String,
    pub active_subscriptions: i64,
    pub active_customers: i64,
    pub mrr_amount: i64,
    pub mom_change: i64,
}

/// One row of `mrr_by_plan`: a plan (price) with a paying item at the end of a month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanRow {
    pub month: String,
    pub currency: String,
    pub product: String,
    pub price: String,
    /// The plan's customers' values on it, each rounded half to even to a cent, summed.
    pub mrr: i64,
    /// Subscriptions with a paying item on the plan.
    pub active_subscriptions: i64,
    /// Customers with a paying item on the plan.
    pub active_customers: i64,
}

/// A customer's MRR at the end of consecutive months.
#[derive(Clone, Debug)]
pub struct CustomerSeries {
    pub currency: String,
    /// Month of `cents[0]`; must be no later than the month before the report's first.
    pub first: Month,
    /// Customer MRR in cents (rounded once per customer-month).
    pub cents: Vec<i64>,
    /// Subscriptions contributing more than zero, per month.
    pub subscriptions: Vec<i64>,
}

#[derive(Clone, Copy, Default)]
struct Acc {
    mrr: i64,
    prev_mrr: i64,
    subs: i64,
    customers: i64,
    prev_customers: i64,
    churned_customers: i64,
    new: i64,
    reactivation: i64,
    expansion: i64,
    contraction: i64,
    churned: i64,
}

/// Turns customer series into monthly rows per currency, streaming.
pub struct MonthlyAggregator {
    first: Month,
    months: usize,
    by_currency: BTreeMap<String, Vec<Acc>>,
}

impl MonthlyAggregator {
    /// Rows for `months` months starting at `first`.
    pub fn new(first: Month, months: usize) -> Self {
        MonthlyAggregator { first, months, by_currency: BTreeMap::new() }
    }

    /// Makes sure a currency has rows even if all its values are zero.
    pub fn touch_currency(&mut self, currency: &str) {
        self.by_currency.entry(currency.to_string()).or_insert_with(|| vec![Acc::default(); self.months]);
    }

    /// Adds one customer's movements.
    pub fn add(&mut self, s: &CustomerSeries) {
        self.touch_currency(&s.currency);
        let accs = self.by_currency.get_mut(&s.currency).expect("touched");
        let mut ever_positive = false;
        for i in 1..s.cents.len() {
            let (prev, now) = (s.cents[i - 1], s.cents[i]);
            ever_positive |= prev > 0;
            let slot = s.first.plus(i as i64).since(self.first);
            if slot < 0 || slot as usize >= self.months {
                continue;
            }
            let a = &mut accs[slot as usize];
            a.mrr += now;
            a.prev_mrr += prev;
            a.subs += s.subscriptions[i];
            a.customers += i64::from(now > 0);
            a.prev_customers += i64::from(prev > 0);
            match (prev > 0, now > 0) {
                (false, true) if ever_positive => a.reactivation += now,
                (false, true) => a.new += now,
                (true, true) if now > prev => a.expansion += now - prev,
                (true, true) => a.contraction += prev - now,
                (true, false) => {
                    a.churned += prev;
                    a.churned_customers += 1;
                }
                (false, false) => {}
            }
        }
    }

    /// The rows, ordered by month then currency.
    pub fn rows(&self) -> Vec<MonthlyRow> {
        let pct =
            |num: i64, den: i64| (den != 0).then(|| round_half_even(num as i128 * 10_000, den as i128) as f64 / 100.0);
        let mut rows = Vec::new();
        for m in 0..self.months {
            for (currency, accs) in &self.by_currency {
                let a = accs[m];
                rows.push(MonthlyRow {
                    month: self.first.plus(m as i64).to_string(),
                    currency: currency.clone(),
                    mrr: a.mrr,
                    arr: 12 * a.mrr,
                    active_subscriptions: a.subs,
                    active_customers: a.customers,
                    arpa: (a.customers > 0).then(|| round_half_even(a.mrr as i128, a.customers as i128) as i64),
                    new_mrr: a.new,
                    reactivation_mrr: a.reactivation,
                    expansion_mrr: a.expansion,
                    contraction_mrr: a.contraction,
                    churned_mrr: a.churned,
                    mom_change: a.mrr - a.prev_mrr,
                    mom_change_pct: pct(a.mrr - a.prev_mrr, a.prev_mrr),
                    customer_churn_rate: pct(a.churned_customers, a.prev_customers),
                    net_revenue_retention: pct(a.prev_mrr + a.expansion - a.contraction - a.churned, a.prev_mrr),
                });
            }
        }
        rows
    }
}

/// Checks `mrr = prev_mrr + new + reactivation + expansion - contraction - churned`
/// for every row; returns the rows that break it.
pub fn invariant_violations(rows: &[MonthlyRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| {
            let prev = r.mrr - r.mom_change;
            r.mrr != prev + r.new_mrr + r.reactivation_mrr + r.expansion_mrr - r.contraction_mrr - r.churned_mrr
        })
        .map(|r| format!("{} {}", r.month, r.currency))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(cents: &[i64]) -> CustomerSeries {
        CustomerSeries {
            currency: "usd".into(),
            first: Month::new(2026, 1),
            cents: cents.to_vec(),
            subscriptions: cents.iter().map(|c| i64::from(*c > 0)).collect(),
        }
    }

    #[test]
    fn classifies_customer_level_movements() {
        let mut agg = MonthlyAggregator::new(Month::new(2026, 2), 6);
        agg.add(&series(&[0, 1000, 1500, 1200, 0, 0, 900])); // new, expansion, contraction, churn, -, reactivation
        agg.add(&series(&[0, 0, 0, 2000, 2000, 2000, 2000]));
        let rows = agg.rows();
        let get = |m: &str| rows.iter().find(|r| r.month == m).unwrap();
        assert_eq!(get("2026-02").new_mrr, 1000);
        assert_eq!(get("2026-03").expansion_mrr, 500);
        assert_eq!(get("2026-04").contraction_mrr, 300);
        assert_eq!(get("2026-04").new_mrr, 2000);
        assert_eq!(get("2026-05").churned_mrr, 1200);
        assert_eq!(get("2026-05").customer_churn_rate, Some(50.0));
        assert_eq!(get("2026-05").net_revenue_retention, Some(62.5));
        assert_eq!(get("2026-07").reactivation_mrr, 900);
        assert_eq!(get("2026-07").arpa, Some(1450));
        assert_eq!(get("2026-02").mom_change_pct, None);
        assert!(invariant_violations(&rows).is_empty());
    }
}
