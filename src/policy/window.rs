//! Policy layer: recurring windows of exceptions.
//!
//! Some exposures are legitimate only at known times — a migration port at
//! quarter end, a vendor's access during month-end close. An exception may
//! carry a window; outside it the exception does not apply (the finding
//! fails) even though it has not expired.
//!
//! Forms (`every` plus exactly one of `first_days`, `last_days`, `days`):
//!
//! ```toml
//! window = { every = "quarter", last_days = 14 }   # last 14 days of each quarter
//! window = { every = "month", days = "25-31" }      # day 25 to month end (31 clamps)
//! window = { every = "month", first_days = 3 }      # days 1-3 of each month
//! window = { every = "week", days = "sat-sun" }     # weekends (also "mon", "fri-mon")
//! window = { every = "year", days = "1-31" }        # day of year 1-31 (January)
//! ```
//!
//! Day numbers count from 1 within the period; a range that wraps (`fri-mon`)
//! is allowed for weekdays only.

use std::fmt;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

/// The period a window recurs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    Week,
    Month,
    Quarter,
    Year,
}

impl Every {
    fn as_str(self) -> &'static str {
        match self {
            Every::Week => "week",
            Every::Month => "month",
            Every::Quarter => "quarter",
            Every::Year => "year",
        }
    }
}

/// The window as written in the policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub every: Every,
    #[serde(default)]
    pub first_days: Option<u32>,
    #[serde(default)]
    pub last_days: Option<u32>,
    #[serde(default)]
    pub days: Option<String>,
}

/// Which days of the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    First(u32),
    Last(u32),
    /// Inclusive day numbers within the period (1-based); for weeks 1 = Monday.
    Days(u32, u32),
}

/// A validated recurring window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub every: Every,
    pub span: Span,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn weekday_num(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|d| s.starts_with(d))
        .map(|i| i as u32 + 1)
}

impl Window {
    pub fn from_raw(raw: &RawWindow) -> Result<Window, String> {
        let given = [
            raw.first_days.is_some(),
            raw.last_days.is_some(),
            raw.days.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(
                "a window needs exactly one of first_days, last_days or days, e.g. { every = \"quarter\", last_days = 14 }"
                    .into(),
            );
        }
        let max = match raw.every {
            Every::Week => 7,
            Every::Month => 31,
            Every::Quarter => 92,
            Every::Year => 366,
        };
        let span = if let Some(n) = raw.first_days.or(raw.last_days) {
            if raw.every == Every::Week {
                return Err(
                    "a weekly window takes days = \"sat-sun\" (weekday names), not first_days/last_days"
                        .into(),
                );
            }
            if n == 0 || n > max {
                return Err(format!(
                    "a {} window covers 1-{max} days, not {n}",
                    raw.every.as_str()
                ));
            }
            if raw.first_days.is_some() {
                Span::First(n)
            } else {
                Span::Last(n)
            }
        } else {
            let text = raw.days.as_deref().unwrap_or_default();
            let (a, b) = text.split_once('-').unwrap_or((text, text));
            let (a, b) = if raw.every == Every::Week {
                match (weekday_num(a), weekday_num(b)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => {
                        return Err(format!(
                            "days = \"{text}\": a weekly window names weekdays, e.g. \"sat-sun\" or \"mon\""
                        ));
                    }
                }
            } else {
                match (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    (Ok(a), Ok(b)) if a >= 1 && a <= b && b <= max => (a, b),
                    _ => {
                        return Err(format!(
                            "days = \"{text}\": write a day range within 1-{max} of the {}, e.g. \"25-31\"",
                            raw.every.as_str()
                        ));
                    }
                }
            };
            Span::Days(a, b)
        };
        Ok(Window {
            every: raw.every,
            span,
        })
    }

    /// Day number of `d` within its period (1-based) and the period's length.
    fn position(&self, d: NaiveDate) -> (u32, u32) {
        match self.every {
            Every::Week => (d.weekday().number_from_monday(), 7),
            Every::Month => (d.day(), days_in_month(d.year(), d.month())),
            Every::Quarter => {
                let first_month = (d.month0() / 3) * 3 + 1;
                let mut day = d.day();
                let mut len = 0;
                for m in first_month..first_month + 3 {
                    let n = days_in_month(d.year(), m);
                    if m < d.month() {
                        day += n;
                    }
                    len += n;
                }
                (day, len)
            }
            Every::Year => (
                d.ordinal(),
                if NaiveDate::from_ymd_opt(d.year(), 2, 29).is_some() {
                    366
                } else {
                    365
                },
            ),
        }
    }

    /// Whether the window is open on `d`.
    pub fn contains(&self, d: NaiveDate) -> bool {
        let (pos, len) = self.position(d);
        match self.span {
            Span::First(n) => pos <= n,
            Span::Last(n) => pos + n > len,
            Span::Days(a, b) if self.every == Every::Week && a > b => pos >= a || pos <= b,
            // "25-31" in April ends with the month: pos never passes len.
            Span::Days(a, b) => pos >= a && pos <= b,
        }
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let every = self.every.as_str();
        match self.span {
            Span::First(n) => write!(f, "first {n} days of each {every}"),
            Span::Last(n) => write!(f, "last {n} days of each {every}"),
            Span::Days(a, b) if self.every == Every::Week => {
                let name = |n: u32| {
                    Weekday::try_from((n - 1) as u8)
                        .map(|w| w.to_string())
                        .unwrap_or_default()
                };
                if a == b {
                    write!(f, "every {}", name(a))
                } else {
                    write!(f, "{}-{} each week", name(a), name(b))
                }
            }
            Span::Days(a, b) => write!(f, "days {a}-{b} of each {every}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(every: Every, first: Option<u32>, last: Option<u32>, days: Option<&str>) -> Window {
        Window::from_raw(&RawWindow {
            every,
            first_days: first,
            last_days: last,
            days: days.map(String::from),
        })
        .unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn quarter_last_days() {
        let q = w(Every::Quarter, None, Some(14), None);
        assert!(q.contains(d("2026-12-18")));
        assert!(q.contains(d("2026-12-31")));
        assert!(!q.contains(d("2026-12-17")));
        assert!(q.contains(d("2026-03-18")));
        assert!(!q.contains(d("2026-03-17")));
        assert!(!q.contains(d("2026-11-30")));
        assert_eq!(q.to_string(), "last 14 days of each quarter");
    }

    #[test]
    fn month_days_clamp_to_month_end() {
        let m = w(Every::Month, None, None, Some("25-31"));
        assert!(m.contains(d("2026-04-30")));
        assert!(m.contains(d("2026-02-28")));
        assert!(!m.contains(d("2026-02-24")));
        let m = w(Every::Month, None, None, Some("10-12"));
        assert!(m.contains(d("2026-05-11")) && !m.contains(d("2026-05-13")));
        let f = w(Every::Month, Some(3), None, None);
        assert!(f.contains(d("2026-05-03")) && !f.contains(d("2026-05-04")));
    }

    #[test]
    fn weeks_and_years() {
        let we = w(Every::Week, None, None, Some("sat-sun"));
        assert!(we.contains(d("2026-11-28"))); // Saturday
        assert!(!we.contains(d("2026-11-27"))); // Friday
        let wrap = w(Every::Week, None, None, Some("fri-mon"));
        assert!(wrap.contains(d("2026-11-30")) && !wrap.contains(d("2026-11-25")));
        let y = w(Every::Year, None, Some(1), None);
        assert!(y.contains(d("2024-12-31")) && !y.contains(d("2024-12-30")));
    }

    #[test]
    fn bad_windows() {
        let raw = |first, last, days: Option<&str>, every| RawWindow {
            every,
            first_days: first,
            last_days: last,
            days: days.map(String::from),
        };
        assert!(Window::from_raw(&raw(None, None, None, Every::Month)).is_err());
        assert!(Window::from_raw(&raw(Some(1), Some(2), None, Every::Month)).is_err());
        assert!(Window::from_raw(&raw(None, Some(40), None, Every::Month)).is_err());
        assert!(Window::from_raw(&raw(Some(2), None, None, Every::Week)).is_err());
        assert!(Window::from_raw(&raw(None, None, Some("31-25"), Every::Month)).is_err());
        assert!(Window::from_raw(&raw(None, None, Some("caturday"), Every::Week)).is_err());
    }
}
