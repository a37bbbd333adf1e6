//! The simulated account's product catalogue: products, recurring prices and coupons.

use crate::money::{DecimalAmount, Interval};

/// Whether a price is billed per seat up front or from reported usage (metered: not MRR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Licensed,
    Metered,
}

/// A product (plan family).
#[derive(Clone, Debug)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub created: i64,
    /// False once archived (`active=false`).
    pub active: bool,
}

/// A recurring price.
#[derive(Clone, Debug)]
pub struct Price {
    pub id: String,
    pub product: usize,
    pub nickname: String,
    pub currency: &'static str,
    pub unit_amount: i64,
    pub interval: Interval,
    pub interval_count: u32,
    pub usage: Usage,
    pub created: i64,
    /// False for an archived price (a legacy plan): Stripe's plain price list leaves it out.
    pub active: bool,
    /// `transform_quantity`: bill `quantity / divide_by`, rounded up (`true`) or down.
    pub transform: Option<(u32, bool)>,
    /// Created inline with a subscription (`price_data`): no price list returns it, ever.
    pub inline: bool,
    /// `billing_scheme=tiered`: the tiers replace `unit_amount` (which Stripe leaves null).
    pub tiers: Option<(TiersMode, Vec<Tier>)>,
    /// `unit_amount_decimal` with a fraction of a minor unit: replaces `unit_amount` (which
    /// Stripe then leaves null) in the price's own currency.
    pub unit_amount_decimal: Option<DecimalAmount>,
    /// `currency_options`: the unit amount in other currencies than `currency`.
    pub currency_options: Vec<(&'static str, i64)>,
    /// A tiered price's tiers in other currencies than `currency` (the
    /// `currency_options.<currency>.tiers` Stripe includes only on request, catalogue L10).
    pub currency_tiers: Vec<(&'static str, Vec<Tier>)>,
}

/// How a tiered price bills a quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TiersMode {
    /// "The entire `quantity` or `Usage` is multiplied by the appropriate unit cost."
    Volume,
    /// "the `quantity` or `Usage` at each tier is multiplied by the usage that falls into that
    /// tier. Then, the total is summed."
    Graduated,
}

/// One tier: "Up to and including to this quantity will be contained in the tier" (`None`:
/// `inf`, the fallback tier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    pub up_to: Option<u32>,
    /// Its `unit_amount_decimal`: whole minor units, or a fraction of one (`unit_amount` null).
    pub unit_amount: DecimalAmount,
    /// "The flat billing amount for an entire tier, regardless of the number of units in the tier."
    pub flat_amount: i64,
}

/// What `quantity` units bill under `tiers` (Stripe's rule, docs/metrics.md): volume bills
/// every unit at the tier the quantity falls in plus that tier's flat amount; graduated bills
/// the units of each tier at its price plus the flat amount of every tier reached.
pub fn tiered_amount(mode: TiersMode, tiers: &[Tier], quantity: u32) -> i64 {
    let q = i64::from(quantity);
    let mut lower = 0i64;
    let mut total = 0i64;
    for (n, t) in tiers.iter().enumerate() {
        let upper = t.up_to.map(i64::from);
        match mode {
            TiersMode::Volume => {
                // One line: a fraction of a minor unit is rounded on it (Stripe's rule, L11).
                if (q > lower || n == 0) && upper.is_none_or(|u| q <= u) {
                    return t.unit_amount.line_amount(q) + t.flat_amount;
                }
            }
            TiersMode::Graduated => {
                if q > lower {
                    // (Whole unit amounts only: where Stripe rounds a graduated price's fractions,
                    // per tier or once, is not in its reference, and mrr refuses them, L11.)
                    let units = upper.map_or(q, |u| q.min(u)) - lower;
                    let whole = t.unit_amount.whole().expect("a graduated tier of whole minor units");
                    total += units * whole + t.flat_amount;
                }
            }
        }
        lower = upper.unwrap_or(i64::MAX);
    }
    total
}

impl Price {
    /// What one interval of `quantity` units bills, minor units: Stripe's rule for
    /// `transform_quantity` ("Divide the quantity by this number", then round `up` or `down`)
    /// before the unit amount applies.
    /// A subscription in another currency than the price's uses that currency's amount from
    /// `currency_options`; a tiered price bills by its tiers in that currency.
    pub fn billed(&self, quantity: u32, currency: &str) -> i64 {
        if let Some((mode, _)) = &self.tiers {
            return tiered_amount(*mode, self.tiers_in(currency), quantity);
        }
        let units = match self.transform {
            Some((divide_by, true)) => quantity.div_ceil(divide_by),
            Some((divide_by, false)) => quantity / divide_by,
            None => quantity,
        };
        // A fraction of a minor unit is rounded on the line, after the quantity (Stripe's rule).
        self.unit_decimal_in(currency).line_amount(i64::from(units))
    }

    /// The unit amount in `currency` as Stripe's `unit_amount_decimal` has it: with its
    /// fraction, if any (then `unit_amount` is null).
    pub fn unit_decimal_in(&self, currency: &str) -> DecimalAmount {
        match self.unit_amount_decimal {
            Some(decimal) if currency == self.currency => decimal,
            _ => DecimalAmount::from_minor(self.unit_amount_in(currency)),
        }
    }

    /// The unit amount in `currency`: the price's own, or its currency option's.
    pub fn unit_amount_in(&self, currency: &str) -> i64 {
        if currency == self.currency {
            return self.unit_amount;
        }
        let option = self.currency_options.iter().find(|(c, _)| *c == currency);
        option.unwrap_or_else(|| panic!("{} has no {currency} amount", self.nickname)).1
    }

    /// A tiered price's tiers in `currency`: its own, or its currency option's.
    fn tiers_in(&self, currency: &str) -> &[Tier] {
        match &self.tiers {
            Some((_, tiers)) if currency == self.currency => tiers,
            _ => {
                let option = self.currency_tiers.iter().find(|(c, _)| *c == currency);
                &option.unwrap_or_else(|| panic!("{} has no {currency} tiers", self.nickname)).1
            }
        }
    }
}

/// How long a coupon keeps applying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duration {
    Once,
    Repeating { months: u32 },
    Forever,
}

/// What a coupon takes off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Off {
    /// Percent as Stripe sends it (e.g. 25.5).
    Percent(f64),
    /// A fixed amount in minor units of `currency`, per invoice.
    Amount { amount: i64, currency: &'static str },
}

/// A coupon.
#[derive(Clone, Debug)]
pub struct Coupon {
    pub id: &'static str,
    pub name: &'static str,
    pub off: Off,
    pub duration: Duration,
    pub created: i64,
    /// Deleted after its redemptions: no list or retrieval returns it, and the discounts made
    /// from it keep discounting (docs/stripe-behaviour.md, D1).
    pub deleted: bool,
    /// `applies_to.products` (indices into [`Catalog::products`]): only their items are
    /// discounted; empty, every item (D4).
    pub applies_to: Vec<usize>,
    /// An amount-off coupon's `currency_options`: the amount it takes off in other currencies
    /// than its own (D6).
    pub currency_options: Vec<(&'static str, i64)>,
}

impl Coupon {
    /// What an amount-off coupon takes off an invoice in `currency`: its own amount, or its
    /// currency option's (`None` for a percent-off coupon).
    pub fn amount_off_in(&self, currency: &str) -> Option<i64> {
        let Off::Amount { amount, currency: own } = self.off else { return None };
        if currency == own {
            return Some(amount);
        }
        let option = self.currency_options.iter().find(|(c, _)| *c == currency);
        Some(option.unwrap_or_else(|| panic!("coupon {} has no {currency} amount", self.id)).1)
    }

    /// Whether the coupon discounts an item of `product`.
    pub fn applies_to_product(&self, product: usize) -> bool {
        self.applies_to.is_empty() || self.applies_to.contains(&product)
    }
}

/// Every object of the catalogue, with named handles for the scenarios.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub products: Vec<Product>,
    pub prices: Vec<Price>,
    pub coupons: Vec<Coupon>,
}

/// Stripe's largest amount in minor units: eight digits.
pub const MAX_AMOUNT: i64 = 99_999_999;

/// The four plans of the original dashboard, cheapest first.
pub const PLANS: [(&str, i64); 4] = [("Starter", 2900), ("Pro", 7900), ("Business", 19900), ("Enterprise", 49900)];

/// Handles to prices by role, as indices into [`Catalog::prices`].
pub mod price {
    /// Monthly USD price of plan `i` (0..4).
    pub fn monthly(plan: usize) -> usize {
        plan * 2
    }
    /// Annual USD price (10 x monthly) of plan `i`.
    pub fn annual(plan: usize) -> usize {
        plan * 2 + 1
    }
    pub const PRO_QUARTERLY: usize = 8;
    pub const STARTER_WEEKLY: usize = 9;
    pub const SEAT_MONTHLY: usize = 10;
    pub const API_METERED: usize = 11;
    pub const STARTER_EUR: usize = 12;
    pub const PRO_EUR: usize = 13;
    pub const STARTER_GBP: usize = 14;
    pub const PRO_GBP: usize = 15;
    pub const FREE_MONTHLY: usize = 16;
    /// Pro's 2024 price, archived (`active: false`) when the current one replaced it.
    pub const PRO_LEGACY: usize = 17;
    /// Seats sold in packs of 4 ($10 a pack): `transform_quantity` divide_by 4, round up.
    pub const SEAT_PACK: usize = 18;
    /// A negotiated Business price ($149 a month), created inline (`price_data`) with the one
    /// subscription that uses it.
    pub const BUSINESS_INLINE: usize = 19;
    /// Seats in volume tiers: 1-5 at $12, 6-20 at $10 + $5 flat, 21+ at $8 + $20 flat.
    pub const SEAT_VOLUME: usize = 20;
    /// Seats in graduated tiers: the first 10 at $15 + $10 flat, 11-50 at $12, 51+ at $9.
    pub const SEAT_GRADUATED: usize = 21;
    /// A committed volume of API calls at 0.0375 cents a call (`unit_amount_decimal`, a
    /// fraction of a minor unit; `unit_amount` null).
    pub const API_COMMITTED_DECIMAL: usize = 22;
    /// Committed API calls in volume tiers of fractions of a cent: up to 100 000 at 0.05,
    /// up to 1 000 000 at 0.04 + $10 flat, beyond at 0.0375 + $25 flat.
    pub const API_VOLUME_DECIMAL: usize = 23;
}

impl Catalog {
    /// The catalogue, created at `created` with ids derived from `seed`.
    pub fn new(seed: u64, created: i64) -> Self {
        use crate::rng::stripe_id;
        let names = ["Starter", "Pro", "Business", "Enterprise", "Extra seat", "API calls", "Free"];
        let products: Vec<Product> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Product {
                id: stripe_id("prod", seed, 10, i as u64),
                name: name.to_string(),
                created,
                active: true,
            })
            .collect();
        let mut prices = Vec::new();
        let mut add = |product: usize, nickname: &str, currency, unit_amount, interval, interval_count, usage| {
            let n = prices.len() as u64;
            prices.push(Price {
                active: true,
                transform: None,
                inline: false,
                tiers: None,
                unit_amount_decimal: None,
                currency_options: Vec::new(),
                currency_tiers: Vec::new(),
                id: stripe_id("price", seed, 11, n),
                product,
                nickname: String::from(nickname),
                currency,
                unit_amount,
                interval,
                interval_count,
                usage,
                created,
            });
        };
        let nick = [
            ("Starter monthly", "Starter annual"),
            ("Pro monthly", "Pro annual"),
            ("Business monthly", "Business annual"),
            ("Enterprise monthly", "Enterprise annual"),
        ];
        for (plan, (_, amount)) in PLANS.iter().enumerate() {
            add(plan, nick[plan].0, "usd", *amount, Interval::Month, 1, Usage::Licensed);
            add(plan, nick[plan].1, "usd", amount * 10, Interval::Year, 1, Usage::Licensed);
        }
        add(1, "Pro quarterly", "usd", 21300, Interval::Month, 3, Usage::Licensed);
        add(0, "Starter weekly", "usd", 800, Interval::Week, 1, Usage::Licensed);
        add(4, "Extra seat monthly", "usd", 1000, Interval::Month, 1, Usage::Licensed);
        add(5, "API calls (metered)", "usd", 2, Interval::Month, 1, Usage::Metered);
        add(0, "Starter monthly EUR", "eur", 2700, Interval::Month, 1, Usage::Licensed);
        add(1, "Pro monthly EUR", "eur", 7300, Interval::Month, 1, Usage::Licensed);
        add(0, "Starter monthly GBP", "gbp", 2300, Interval::Month, 1, Usage::Licensed);
        add(1, "Pro monthly GBP", "gbp", 6500, Interval::Month, 1, Usage::Licensed);
        add(6, "Free monthly", "usd", 0, Interval::Month, 1, Usage::Licensed);
        add(1, "Pro monthly (2024, archived)", "usd", 6900, Interval::Month, 1, Usage::Licensed);
        add(4, "Seats (packs of 4)", "usd", 1000, Interval::Month, 1, Usage::Licensed);
        add(2, "Business, negotiated (inline)", "usd", 14900, Interval::Month, 1, Usage::Licensed);
        add(4, "Seats (volume tiers)", "usd", 0, Interval::Month, 1, Usage::Licensed);
        add(4, "Seats (graduated tiers)", "usd", 0, Interval::Month, 1, Usage::Licensed);
        add(5, "API calls, committed (decimal)", "usd", 0, Interval::Month, 1, Usage::Licensed);
        add(5, "API calls, committed (volume tiers, decimal)", "usd", 0, Interval::Month, 1, Usage::Licensed);
        prices[price::PRO_LEGACY].active = false;
        prices[price::SEAT_PACK].transform = Some((4, true));
        prices[price::BUSINESS_INLINE].inline = true;
        prices[price::API_COMMITTED_DECIMAL].unit_amount_decimal = DecimalAmount::parse("0.0375");
        // Business monthly also sells in euros: a EUR subscription on it bills 185.00 EUR.
        prices[price::monthly(2)].currency_options = vec![("eur", 18500)];
        let tier = |up_to, unit_amount, flat_amount| Tier {
            up_to,
            unit_amount: DecimalAmount::from_minor(unit_amount),
            flat_amount,
        };
        prices[price::SEAT_VOLUME].tiers =
            Some((TiersMode::Volume, vec![tier(Some(5), 1200, 0), tier(Some(20), 1000, 500), tier(None, 800, 2000)]));
        prices[price::SEAT_GRADUATED].tiers =
            Some((TiersMode::Graduated, vec![tier(Some(10), 1500, 1000), tier(Some(50), 1200, 0), tier(None, 900, 0)]));
        let decimal_tier = |up_to, unit_amount: &str, flat_amount| Tier {
            up_to,
            unit_amount: DecimalAmount::parse(unit_amount).expect("a decimal amount"),
            flat_amount,
        };
        prices[price::API_VOLUME_DECIMAL].tiers = Some((
            TiersMode::Volume,
            vec![
                decimal_tier(Some(100_000), "0.05", 0),
                decimal_tier(Some(1_000_000), "0.04", 1000),
                decimal_tier(None, "0.0375", 2500),
            ],
        ));
        // The graduated seats also sell in euros, by tiers of their own (a tiered currency option).
        prices[price::SEAT_GRADUATED].currency_tiers =
            vec![("eur", vec![tier(Some(10), 1400, 900), tier(Some(50), 1100, 0), tier(None, 800, 0)])];
        let coupon = |id, name, off, duration| Coupon {
            id,
            name,
            off,
            duration,
            created,
            deleted: false,
            applies_to: Vec::new(),
            currency_options: Vec::new(),
        };
        let coupons = vec![
            coupon("PCT25FOREVER", "25% off forever", Off::Percent(25.0), Duration::Forever),
            coupon("PCT20X3", "20% off for 3 months", Off::Percent(20.0), Duration::Repeating { months: 3 }),
            coupon("PCT50ONCE", "50% off the first invoice", Off::Percent(50.0), Duration::Once),
            coupon("PCT12P5FOREVER", "12.5% off forever", Off::Percent(12.5), Duration::Forever),
            // Also 9.00 EUR off a EUR subscription (an amount-off coupon's currency option, D6).
            Coupon {
                currency_options: vec![("eur", 900)],
                ..coupon(
                    "USD10FOREVER",
                    "$10 off forever",
                    Off::Amount { amount: 1000, currency: "usd" },
                    Duration::Forever,
                )
            },
            coupon(
                "USD15X2",
                "$15 off for 2 months",
                Off::Amount { amount: 1500, currency: "usd" },
                Duration::Repeating { months: 2 },
            ),
            coupon("USD5ONCE", "$5 off once", Off::Amount { amount: 500, currency: "usd" }, Duration::Once),
            Coupon {
                deleted: true,
                ..coupon("LAUNCH30", "30% off forever (launch, retired)", Off::Percent(30.0), Duration::Forever)
            },
            Coupon {
                applies_to: vec![prices[price::SEAT_MONTHLY].product],
                ..coupon("SEATS50", "50% off seats forever", Off::Percent(50.0), Duration::Forever)
            },
        ];
        Catalog { products, prices, coupons }
    }

    /// The same catalogue with every unit amount and amount-off coupon `factor` times larger:
    /// an account of large values (`mrr simulate --amount-scale`). Stripe takes amounts of up
    /// to eight digits ("a value of 99999999 for a USD charge of $999,999.99"); a factor that
    /// would pass that is refused, naming the price.
    pub fn scaled(mut self, factor: u32) -> anyhow::Result<Self> {
        let factor = i64::from(factor.max(1));
        for p in &mut self.prices {
            let name = p.nickname.clone();
            let scale = |amount: &mut i64| {
                *amount = amount.checked_mul(factor).filter(|a| *a <= MAX_AMOUNT).ok_or_else(|| {
                    crate::error::bad_input(format!(
                        "--amount-scale {factor}: price \"{}\" would cost {amount} x {factor} minor units, past \
                         Stripe's largest amount ({MAX_AMOUNT})",
                        name
                    ))
                })?;
                anyhow::Ok(())
            };
            // A decimal amount is scaled exactly; its whole part is held to Stripe's bound.
            let scale_decimal = |decimal: &mut DecimalAmount| {
                scale(&mut decimal.line_amount(1))?;
                *decimal = decimal.times(factor);
                anyhow::Ok(())
            };
            scale(&mut p.unit_amount)?;
            if let Some(decimal) = &mut p.unit_amount_decimal {
                scale_decimal(decimal)?;
            }
            for (_, amount) in &mut p.currency_options {
                scale(amount)?;
            }
            let option_tiers = p.currency_tiers.iter_mut().flat_map(|(_, tiers)| tiers.iter_mut());
            for t in p.tiers.iter_mut().flat_map(|(_, tiers)| tiers.iter_mut()).chain(option_tiers) {
                scale_decimal(&mut t.unit_amount)?;
                scale(&mut t.flat_amount)?;
            }
        }
        for c in &mut self.coupons {
            if let Off::Amount { amount, .. } = &mut c.off {
                *amount *= factor;
            }
            for (_, amount) in &mut c.currency_options {
                *amount *= factor;
            }
        }
        Ok(self)
    }

    /// Index of the coupon with this id.
    pub fn coupon(&self, id: &str) -> usize {
        self.coupons.iter().position(|c| c.id == id).expect("known coupon id")
    }
}
