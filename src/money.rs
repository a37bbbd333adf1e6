//! Exact money arithmetic for MRR: every monthly-normalised amount is an integer
//! scaled by [`SCALE`], so week, day, quarter and percent-discount cases stay exact
//! (no floating point on the MRR path) and round once, half to even, at output.
//!
//! The SQL of both dialects uses the same scale and the same rounding; this module is
//! the Rust statement of that rule (docs/metrics.md explains it for users).

/// Common multiplier: 12 (months per year) x 720 720 (lcm of 1..=16, which also covers
/// interval counts such as 18, 20, 24, 26, 36, 52 and 156) x 10 000 (percent discounts
/// in hundredths of a percent).
pub const SCALE: i128 = 12 * 720_720 * 10_000;

/// Billing interval unit of a recurring price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    /// Stripe's spelling (`day`, `week`, `month`, `year`).
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }
}

/// Why an amount cannot be normalised exactly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("interval_count {0} is not supported exactly (it must divide 720720, e.g. 1-16, 18, 20, 24, 36, 52, 156)")]
    IntervalCount(u32),
}

/// `amount` (minor units per interval) as a monthly amount times [`SCALE`].
///
/// month: amount / n; year: amount / 12n; week: amount x 52 / 12n; day: amount x 365 / 12n.
pub fn monthly_scaled(amount: i128, interval: Interval, interval_count: u32) -> Result<i128, MoneyError> {
    let n = interval_count as i128;
    if n == 0 || 720_720 % n != 0 {
        return Err(MoneyError::IntervalCount(interval_count));
    }
    let per_year = match interval {
        Interval::Day => 365,
        Interval::Week => 52,
        Interval::Month => 12,
        Interval::Year => 1,
    };
    Ok(amount * per_year * (SCALE / 12 / n))
}

/// Applies percent discounts given in hundredths of a percent (25.5% = 2550) in turn, each to
/// what the ones before left; panics unless the result is exact (a caller keeps it so).
pub fn apply_percents_off(scaled: i128, percents_off_hundredths: &[i128]) -> i128 {
    percents_off_hundredths.iter().fold(scaled, |v, h| {
        let kept = v * (10_000 - h);
        assert_eq!(kept % 10_000, 0, "percents off {percents_off_hundredths:?} keep {scaled} exact");
        kept / 10_000
    })
}

/// Divides by [`SCALE`] and rounds half to even: the one rounding step on the MRR path.
pub fn round_scaled_to_cents(scaled: i128) -> i64 {
    round_half_even(scaled, SCALE) as i64
}

/// Minor units as a decimal amount (12345 -> "123.45", -5 -> "-0.05").
pub fn cents_text(c: i64) -> String {
    format!("{}{}.{:02}", if c < 0 { "-" } else { "" }, c.unsigned_abs() / 100, c.unsigned_abs() % 100)
}

/// `numerator / denominator` rounded half to even (`denominator > 0`).
pub fn round_half_even(numerator: i128, denominator: i128) -> i128 {
    let q = numerator.div_euclid(denominator);
    let r = numerator.rem_euclid(denominator);
    match (2 * r).cmp(&denominator) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// A decimal amount of minor units as Stripe takes it (`unit_amount_decimal`: "a decimal value
/// in cents (or local equivalent) with at most 12 decimal places"), exactly: in 10^-12 minor
/// units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecimalAmount(i128);

/// 10^12: a [`DecimalAmount`]'s units per minor unit.
const PICO: i128 = 1_000_000_000_000;

impl DecimalAmount {
    /// Stripe's decimal text (`"2.3125"`, `"500"`); `None` for anything else, or for more
    /// than 12 decimal places.
    pub fn parse(text: &str) -> Option<Self> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if whole.len() > 18 || !digits(whole) || !digits(fraction) || fraction.len() > 12 {
            return None;
        }
        let fraction: i128 = format!("{fraction:0<12}").parse().ok()?;
        Some(DecimalAmount(whole.parse::<i128>().ok()? * PICO + fraction))
    }

    /// Whole minor units as a decimal amount.
    pub fn from_minor(minor: i64) -> Self {
        DecimalAmount(i128::from(minor) * PICO)
    }

    /// Stripe's text for it: the whole minor units, then the decimals without trailing zeros.
    pub fn text(self) -> String {
        let fraction = format!("{:012}", self.0 % PICO);
        match fraction.trim_end_matches('0') {
            "" => (self.0 / PICO).to_string(),
            digits => format!("{}.{digits}", self.0 / PICO),
        }
    }

    /// The whole minor units when it has no fraction (Stripe's `unit_amount` then; null otherwise).
    pub fn whole(self) -> Option<i64> {
        (self.0 % PICO == 0).then_some((self.0 / PICO) as i64)
    }

    /// `factor` times as much.
    pub fn times(self, factor: i64) -> Self {
        DecimalAmount(self.0 * i128::from(factor))
    }

    /// What `units` of it bill on one invoice line, whole minor units: Stripe multiplies first
    /// and rounds the line to the nearest minor unit ("0.05 * 30 = 1.5, which is then rounded up
    /// to 2 cents", <https://stripe.com/docs/billing/subscriptions/decimal-amounts>), a half up.
    pub fn line_amount(self, units: i64) -> i64 {
        let exact = self.0 * i128::from(units);
        ((exact + PICO / 2).div_euclid(PICO)) as i64
    }
}

/// Percent given as Stripe's float (`25.5`) in exact hundredths of a percent.
pub fn percent_to_hundredths(percent: f64) -> i128 {
    (percent * 100.0).round() as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_every_interval_exactly() {
        let m = |a, i, n| round_scaled_to_cents(monthly_scaled(a, i, n).unwrap());
        assert_eq!(m(2900, Interval::Month, 1), 2900);
        assert_eq!(m(29000, Interval::Year, 1), 2417); // 2416.666..
        assert_eq!(m(21300, Interval::Month, 3), 7100);
        assert_eq!(m(800, Interval::Week, 1), 3467); // 800 * 52 / 12 = 3466.67
        assert_eq!(m(100, Interval::Day, 1), 3042); // 100 * 365 / 12 = 3041.67
        assert_eq!(m(1000, Interval::Week, 2), 2167); // 2166.67
        assert_eq!(monthly_scaled(1, Interval::Month, 17), Err(MoneyError::IntervalCount(17)));
    }

    #[test]
    fn sums_stay_exact_before_rounding() {
        // Three annual $29 plans: 3 x 2416.666.. = 7250 exactly, not 3 x 2417.
        let one = monthly_scaled(29000, Interval::Year, 1).unwrap();
        assert_eq!(round_scaled_to_cents(3 * one), 7250);
    }

    #[test]
    fn decimal_amounts_parse_print_and_round_a_line_as_stripe_does() {
        let d = |t| DecimalAmount::parse(t).unwrap();
        assert_eq!(d("2.3125").text(), "2.3125");
        assert_eq!(d("500").text(), "500");
        assert_eq!(d("5.0").text(), "5");
        assert_eq!(d("5.0").whole(), Some(5));
        assert_eq!(d("0.05").whole(), None);
        assert_eq!(d("0.000000000001").text(), "0.000000000001");
        for bad in ["", ".5", "1.", "-1", "1e3", "1.0000000000001", "1,5", " 1"] {
            assert_eq!(DecimalAmount::parse(bad), None, "{bad:?}");
        }
        // Stripe's example: 30 units at 0.05 bill 1.5, rounded up to 2.
        assert_eq!(d("0.05").line_amount(30), 2);
        assert_eq!(d("0.05").line_amount(29), 1); // 1.45
        assert_eq!(d("2.3125").line_amount(1234), 2854); // 2853.625
        assert_eq!(d("2.5").line_amount(1), 3); // a half: up, not to even
        assert_eq!(d("99999999.999999999999").line_amount(10_000_000), 1_000_000_000_000_000);
        assert_eq!(d("2.3125").times(200).text(), "462.5");
    }

    #[test]
    fn rounds_half_to_even() {
        assert_eq!(round_half_even(5, 2), 2);
        assert_eq!(round_half_even(7, 2), 4);
        assert_eq!(round_half_even(-5, 2), -2);
        assert_eq!(round_half_even(11, 4), 3);
        let half_cent = SCALE / 2;
        assert_eq!(round_scaled_to_cents(half_cent), 0);
        assert_eq!(round_scaled_to_cents(SCALE + half_cent), 2);
        assert_eq!(
            apply_percents_off(monthly_scaled(7900, Interval::Month, 1).unwrap(), &[2550]),
            5885 * SCALE + SCALE / 2
        );
    }
}
