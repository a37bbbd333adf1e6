//! UTC calendar arithmetic on Unix seconds: civil dates, calendar months and
//! Stripe-style "same day next month" stepping.
//!
//! Kept dependency-free and exact so the simulator, its ground truth and the
//! Stripe-compatible server agree on every boundary to the second.

use std::fmt;

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Number of days in a month.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    (days_from_civil(ny, nm, 1) - days_from_civil(year, month, 1)) as u32
}

/// Unix seconds of a UTC date and time.
pub fn timestamp(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    days_from_civil(year, month, day) * DAY + (hour * 3600 + minute * 60 + second) as i64
}

/// Adds calendar months the way Stripe bills: same day of month and time of day,
/// clamped to the month's last day (Jan 31 + 1 month = Feb 28/29).
pub fn add_months(ts: i64, months: i64) -> i64 {
    let days = ts.div_euclid(DAY);
    let secs = ts.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let index = y * 12 + (m as i64 - 1) + months;
    let (ny, nm) = (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd) * DAY + secs
}

/// The current instant in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// RFC 3339 text of a Unix timestamp, e.g. `2026-11-20T00:00:00Z`.
pub fn format_rfc3339(ts: i64) -> String {
    let (y, m, d) = civil_from_days(ts.div_euclid(DAY));
    let s = ts.rem_euclid(DAY);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let (hh, mm, ss) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let mut p = t.splitn(3, ':');
            let hh: u32 = p.next()?.parse().ok()?;
            let mm: u32 = p.next()?.parse().ok()?;
            let ss: u32 = p.next()?.parse().ok()?;
            if hh > 23 || mm > 59 || ss > 59 {
                return None;
            }
            (hh, mm, ss)
        }
    };
    Some(timestamp(y, m, d, hh, mm, ss))
}

/// A UTC calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// Months since year 0 (year * 12 + month - 1), so months order and subtract as integers.
    index: i64,
}

impl Month {
    /// The month with this year and 1-based month number.
    pub fn new(year: i64, month: u32) -> Self {
        Month { index: year * 12 + month as i64 - 1 }
    }
    /// The month containing a timestamp.
    pub fn of(ts: i64) -> Self {
        let (y, m, _) = civil_from_days(ts.div_euclid(DAY));
        Month::new(y, m)
    }
    /// Calendar year.
    pub fn year(self) -> i64 {
        self.index.div_euclid(12)
    }
    /// 1-based month number.
    pub fn month(self) -> u32 {
        (self.index.rem_euclid(12) + 1) as u32
    }
    /// First second of the month.
    pub fn start(self) -> i64 {
        days_from_civil(self.year(), self.month(), 1) * DAY
    }
    /// First second of the following month (exclusive end).
    pub fn end(self) -> i64 {
        self.plus(1).start()
    }
    /// The month `n` months later (or earlier when negative).
    pub fn plus(self, n: i64) -> Self {
        Month { index: self.index + n }
    }
    /// Whole months from `earlier` to `self`.
    pub fn since(self, earlier: Month) -> i64 {
        self.index - earlier.index
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for days in (-200_000..200_000).step_by(17) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(timestamp(2026, 11, 20, 12, 0, 0), 1_795_176_000);
    }

    #[test]
    fn add_months_clamps_like_stripe() {
        let jan31 = timestamp(2026, 1, 31, 10, 0, 0);
        assert_eq!(format_rfc3339(add_months(jan31, 1)), "2026-02-28T10:00:00Z");
        assert_eq!(format_rfc3339(add_months(jan31, 13)), "2027-02-28T10:00:00Z");
        assert_eq!(format_rfc3339(add_months(timestamp(2028, 1, 31, 0, 0, 0), 1)), "2028-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(add_months(jan31, -2)), "2025-11-30T10:00:00Z");
    }

    #[test]
    fn months_and_parsing() {
        let m = Month::of(timestamp(2026, 12, 31, 23, 59, 59));
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(m.plus(1).to_string(), "2027-01");
        assert_eq!(m.end(), timestamp(2027, 1, 1, 0, 0, 0));
        assert_eq!(parse_timestamp("2026-02-29"), None);
        assert_eq!(parse_timestamp("2026-11-20T01:02:03Z"), Some(timestamp(2026, 11, 20, 1, 2, 3)));
    }
}
