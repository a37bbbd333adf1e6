//! What `mrr seed-stripe` puts into a Stripe test account, decided from the seed before any
//! request: the six plans of the original dashboard, the test clocks, and each customer's life
//! as actions at the instants the clocks stop at (the 1st and the 15th of every month).
//!
//! The same plan, read as the simulator's model, is the account's expected MRR: computed by
//! the ground truth from what the generator meant to happen, never read back from Stripe.

use crate::calendar::{Month, DAY};
use crate::money::Interval;
use crate::rng::Rng;
use crate::simulate::catalog::{Catalog, Price, Product, Usage, PLANS};
use crate::simulate::model::{
    Cancellation, FailureOutcome, ItemState, PaymentFailure, Phase, Proration, SimCustomer, SimItem, SimSubscription,
};

/// Prices of the seeded catalogue, as indices into [`Plan::catalog`]: the four monthly plans
/// (cheapest first), then Pro and Business annual (ten times monthly).
pub const MONTHLY: [usize; 4] = [0, 1, 2, 3];
pub const PRO_ANNUAL: usize = 4;
pub const BUSINESS_ANNUAL: usize = 5;

/// What the seed does in one account.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedOptions {
    pub customers: u64,
    pub months: u32,
    pub clocks: u32,
    pub seed: u64,
    /// The first simulated month: the clocks start frozen at its first instant.
    pub first_month: String,
}

/// Something the generator does to a customer at one of its clock's instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Creates the customer with a working card and subscribes it to `price`.
    Subscribe { price: usize, quantity: u32 },
    /// Moves the subscription to another price of the same interval (prorations invoiced at once).
    ChangePrice { price: usize },
    /// `cancel_at_period_end=true`.
    CancelAtPeriodEnd,
    /// Cancels at once.
    CancelNow,
    /// Makes a card that declines every charge the customer's default: the next renewal fails.
    CardStartsFailing,
    /// After the retries of a failed renewal: cancels the subscription unless Stripe's retry
    /// settings already did (so the month-end state does not depend on the account's settings).
    CancelUnlessCanceled,
}

/// One customer's plan.
#[derive(Clone, Debug)]
pub struct CustomerPlan {
    pub index: u64,
    pub clock: usize,
    pub name: String,
    pub email: String,
    /// In time order; several at one instant run in this order.
    pub actions: Vec<(i64, Action)>,
}

/// The whole plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub options: SeedOptions,
    pub first: Month,
    /// Products and prices with placeholder ids (the created ones are in the manifest).
    pub catalog: Catalog,
    pub clock_names: Vec<String>,
    pub customers: Vec<CustomerPlan>,
}

/// The instant every clock starts at and the instants it stops at: the 1st of each month
/// (subscriptions start, so renewals fall there) and the 15th (changes), then the 1st of the
/// month after the last.
pub fn month_start(first: Month, m: u32) -> i64 {
    first.plus(i64::from(m)).start()
}

/// The mid-month instant of month `m`: 14 days after its start.
pub fn mid_month(first: Month, m: u32) -> i64 {
    month_start(first, m) + 14 * DAY
}

impl Plan {
    /// The plan for `options`.
    pub fn new(options: SeedOptions) -> anyhow::Result<Self> {
        let bad = |m: String| Err(crate::error::bad_input(m));
        if options.customers == 0 || options.customers > 10_000 {
            return bad(format!("--customers must be between 1 and 10000, got {}", options.customers));
        }
        if !(2..=24).contains(&options.months) {
            return bad(format!("--months must be between 2 and 24, got {}", options.months));
        }
        if !(1..=100).contains(&options.clocks) {
            return bad(format!("--clocks must be between 1 and 100, got {}", options.clocks));
        }
        let Some(first) = parse_month(&options.first_month) else {
            return bad(format!("first month {:?} is not YYYY-MM", options.first_month));
        };
        let catalog = catalog(first.start());
        let clock_names =
            (0..options.clocks).map(|c| format!("mrr seed-stripe {}/{}", c + 1, options.clocks)).collect();
        let customers = (0..options.customers).map(|i| customer_plan(&options, first, i)).collect();
        Ok(Plan { options, first, catalog, clock_names, customers })
    }

    /// Every instant the clocks stop at, in order.
    pub fn instants(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for m in 0..self.options.months {
            out.push(month_start(self.first, m));
            out.push(mid_month(self.first, m));
        }
        out.push(month_start(self.first, self.options.months));
        out
    }

    /// The last month whose end the clocks pass: the last one the expected MRR covers.
    pub fn last_month(&self) -> Month {
        self.first.plus(i64::from(self.options.months) - 1)
    }

    /// The customers as the simulator's model: what Stripe does with the plan's requests.
    pub fn model(&self) -> Vec<SimCustomer> {
        self.customers.iter().map(|c| self.customer_model(c)).collect()
    }

    fn customer_model(&self, plan: &CustomerPlan) -> SimCustomer {
        let mut sub: Option<SimSubscription> = None;
        let mut created = 0;
        for &(t, action) in &plan.actions {
            match action {
                Action::Subscribe { price, quantity } => {
                    created = t;
                    let p = &self.catalog.prices[price];
                    sub = Some(SimSubscription {
                        id: format!("sub_plan_{}", plan.index),
                        start: t,
                        trial_end: None,
                        interval: p.interval,
                        interval_count: p.interval_count,
                        currency: p.currency,
                        items: vec![SimItem { id: format!("si_plan_{}", plan.index), created: t }],
                        phases: vec![Phase::invoiced(t, vec![ItemState { slot: 0, price, quantity }])],
                        discount: None,
                        replaced: None,
                        stacked_discount: None,
                        item_discount: None,
                        pauses: Vec::new(),
                        failure: None,
                        cancel: None,
                    });
                }
                _ => {
                    let s = sub.as_mut().expect("a customer subscribes before anything else");
                    apply(s, t, action);
                }
            }
        }
        SimCustomer {
            index: plan.index,
            id: format!("cus_plan_{}", plan.index),
            created,
            currency: "usd",
            name: plan.name.clone(),
            email: plan.email.clone(),
            test_clock: Some(plan.clock),
            case: None,
            tax_percent: None,
            deleted_at: None,
            one_off_invoices: Vec::new(),
            subscriptions: sub.into_iter().collect(),
        }
    }
}

/// What Stripe does with a change at `t` (docs/stripe-behaviour.md, W3-W5).
fn apply(s: &mut SimSubscription, t: i64, action: Action) {
    let period_end = |s: &SimSubscription| s.period_start(s.period_at(t) + 1);
    match action {
        Action::Subscribe { .. } => unreachable!("handled by the caller"),
        Action::ChangePrice { price } => {
            let quantity = s.phase_at(t).items[0].quantity;
            let items = vec![ItemState { slot: 0, price, quantity }];
            s.phases.push(Phase { from: t, items, proration: Proration::AlwaysInvoice });
        }
        Action::CancelAtPeriodEnd => {
            let ends_at = period_end(s);
            s.cancel = Some(Cancellation { requested_at: t, ends_at, at_period_end: true, reason: "period_end" });
        }
        Action::CancelNow => {
            s.cancel = Some(Cancellation { requested_at: t, ends_at: t, at_period_end: false, reason: "immediate" });
        }
        Action::CardStartsFailing => {
            let period = s.period_at(t) + 1;
            let failed_at = s.period_start(period);
            // Stripe's recommended retries run for two weeks: the generator cancels then.
            let outcome = FailureOutcome::Canceled(failed_at + crate::stripe_server::writes::RETRY_WINDOW);
            s.failure = Some(PaymentFailure { period, failed_at, outcome });
        }
        // The failure's outcome already ends the subscription at this instant.
        Action::CancelUnlessCanceled => {}
    }
}

/// `YYYY-MM`.
pub fn parse_month(text: &str) -> Option<Month> {
    let (y, m) = text.split_once('-')?;
    let (year, month) = (y.parse::<i64>().ok()?, m.parse::<u32>().ok()?);
    (y.len() == 4 && m.len() == 2 && (1..=12).contains(&month)).then(|| Month::new(year, month))
}

/// Starter, Pro, Business and Enterprise monthly, Pro and Business annual.
fn catalog(created: i64) -> Catalog {
    let products: Vec<Product> = PLANS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Product { id: format!("prod_plan_{i}"), name: name.to_string(), created, active: true })
        .collect();
    let price = |n: usize, product: usize, interval: Interval, unit_amount: i64| Price {
        id: format!("price_plan_{n}"),
        product,
        nickname: format!("{} {}", PLANS[product].0, if interval == Interval::Year { "annual" } else { "monthly" }),
        currency: "usd",
        unit_amount,
        interval,
        interval_count: 1,
        usage: Usage::Licensed,
        created,
        active: true,
        transform: None,
        inline: false,
        tiers: None,
        unit_amount_decimal: None,
        currency_options: Vec::new(),
        currency_tiers: Vec::new(),
    };
    let mut prices: Vec<Price> =
        PLANS.iter().enumerate().map(|(i, (_, amount))| price(i, i, Interval::Month, *amount)).collect();
    prices.push(price(PRO_ANNUAL, 1, Interval::Year, PLANS[1].1 * 10));
    prices.push(price(BUSINESS_ANNUAL, 2, Interval::Year, PLANS[2].1 * 10));
    Catalog { products, prices, coupons: Vec::new() }
}

/// One customer's life, with the original generator's odds (`simulate::scenario`): its cohort
/// is its clock and decides the month it joins; it picks a plan (sometimes annual, for Pro and
/// Business); some churn in a random later month, some monthly ones get a card that starts
/// failing; along the way monthly customers may upgrade or downgrade on the 15th.
fn customer_plan(o: &SeedOptions, first: Month, index: u64) -> CustomerPlan {
    use crate::simulate::scenario::{cohort_month, ANNUAL_PER_MILLE, CHURN_PER_MILLE, FAILURE_PER_MILLE, PLAN_WEIGHTS};

    let mut rng = Rng::for_stream(o.seed, 0x5eed_0000 + index);
    let clock = index * u64::from(o.clocks) / o.customers;
    let joins = cohort_month(clock, u64::from(o.clocks), o.months) as u32;
    let plan = rng.weighted(&PLAN_WEIGHTS);
    let price = match plan {
        1 if rng.chance(ANNUAL_PER_MILLE) => PRO_ANNUAL,
        2 if rng.chance(ANNUAL_PER_MILLE) => BUSINESS_ANNUAL,
        _ => MONTHLY[plan],
    };
    let monthly = price < PRO_ANNUAL;
    let quantity = if price == MONTHLY[2] { 1 + rng.below(3) as u32 } else { 1 };
    let later_month = |rng: &mut Rng, last: u32| joins + rng.below(u64::from(last - joins + 1)) as u32;
    let churns_in = rng.chance(CHURN_PER_MILLE).then(|| later_month(&mut rng, o.months - 1));
    let can_fail = monthly && churns_in.is_none() && joins + 2 <= o.months;
    let fails_in = (can_fail && rng.chance(FAILURE_PER_MILLE)).then(|| later_month(&mut rng, o.months - 2));
    let mut actions = vec![(month_start(first, joins), Action::Subscribe { price, quantity })];
    let mut current = price;
    for m in joins..o.months {
        let t = mid_month(first, m);
        if fails_in == Some(m) {
            actions.push((t, Action::CardStartsFailing));
            actions.push((mid_month(first, m + 1), Action::CancelUnlessCanceled));
            break;
        }
        if churns_in == Some(m) {
            actions.push((t, if rng.chance(500) { Action::CancelNow } else { Action::CancelAtPeriodEnd }));
            break;
        }
        if monthly {
            let level = MONTHLY.iter().position(|p| *p == current).expect("a monthly price");
            if level + 1 < MONTHLY.len() && rng.chance(60) {
                current = MONTHLY[level + 1];
                actions.push((t, Action::ChangePrice { price: current }));
            } else if level > 0 && rng.chance(30) {
                current = MONTHLY[level - 1];
                actions.push((t, Action::ChangePrice { price: current }));
            }
        }
    }
    let names = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken"];
    let name = format!("{} {}", names[(index % 10) as usize], index / 10 + 1);
    let email = format!("seed-{index}@example.com");
    CustomerPlan { index, clock: clock as usize, name, email, actions }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SeedOptions {
        SeedOptions { customers: 75, months: 6, clocks: 5, seed: 42, first_month: "2026-05".into() }
    }

    #[test]
    fn the_plan_is_the_originals_shape_and_the_same_for_the_same_seed() {
        let plan = Plan::new(options()).unwrap();
        let again = Plan::new(options()).unwrap();
        assert_eq!(format!("{:?}", plan.customers), format!("{:?}", again.customers));
        assert_eq!(plan.catalog.prices.len(), 6);
        let model = plan.model();
        let failed = model.iter().filter(|c| c.subscriptions[0].failure.is_some()).count();
        let ended = model.iter().filter(|c| c.subscriptions[0].ends_at().is_some()).count();
        // The original's odds: about 15% churn and 10% failed payments (11 and 8 of 75 expected;
        // these bounds are two standard deviations wide, and the seed fixes the draw).
        let churned = ended - failed;
        assert!((5..=18).contains(&churned), "{churned} churned");
        assert!((3..=13).contains(&failed), "{failed} failed");
        for c in &model {
            let s = &c.subscriptions[0];
            assert!(plan.instants().contains(&s.start));
            assert!(s.phases.windows(2).all(|w| w[0].from < w[1].from));
        }
    }

    #[test]
    fn bad_options_are_refused_naming_the_flag() {
        let err = Plan::new(SeedOptions { months: 1, ..options() }).unwrap_err();
        assert!(err.to_string().contains("--months"), "{err}");
        let err = Plan::new(SeedOptions { customers: 0, ..options() }).unwrap_err();
        assert!(err.to_string().contains("--customers"), "{err}");
        assert!(parse_month("2026-13").is_none() && parse_month("26-01").is_none());
    }
}
