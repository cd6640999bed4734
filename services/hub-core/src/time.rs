//! Days and financial years as partnerships count them: in Europe/London,
//! where a UTC instant late on 31 March may already be 1 April (BST).

use jiff::{civil::Date, tz::TimeZone, Timestamp};

/// Europe/London from the tz database (bundled, so a machine without
/// tzdata gets the same answer).
pub fn london() -> TimeZone {
    TimeZone::get("Europe/London").expect("Europe/London is in the bundled tz database")
}

/// The calendar date in London at `at`.
pub fn london_date(at: Timestamp) -> Date {
    at.to_zoned(london()).date()
}

/// Today in London.
/// An RFC 3339 instant as a person in England reads it:
/// `2026-11-07 10:00` in London time; anything else unchanged.
pub fn london_minute(rfc3339: &str) -> String {
    match rfc3339.parse::<Timestamp>() {
        Ok(t) => t.to_zoned(london()).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

pub fn london_today() -> Date {
    london_date(Timestamp::now())
}

/// A financial year, 1 April to 31 March, named like `2026-27`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FinancialYear {
    /// The calendar year in which it starts.
    pub start_year: i16,
}

impl FinancialYear {
    pub fn of(date: Date) -> Self {
        let y = date.year();
        Self {
            start_year: if date.month() >= 4 { y } else { y - 1 },
        }
    }

    /// Parses `2026-27`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || "must be a financial year written like 2026-27".to_string();
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        if a.len() != 4 || b.len() != 2 {
            return Err(err());
        }
        let start: i16 = a.parse().map_err(|_| err())?;
        let end: i16 = b.parse().map_err(|_| err())?;
        if !(2000..=2199).contains(&start) || (start + 1) % 100 != end {
            return Err(err());
        }
        Ok(Self { start_year: start })
    }

    pub fn first_day(self) -> Date {
        Date::new(self.start_year, 4, 1).expect("1 April exists")
    }

    pub fn last_day(self) -> Date {
        Date::new(self.start_year + 1, 3, 31).expect("31 March exists")
    }

    pub fn contains(self, date: Date) -> bool {
        Self::of(date) == self
    }

    /// Quarter 1 (April–June) to 4 (January–March) of `date`, if in this year.
    pub fn quarter(self, date: Date) -> Option<u8> {
        if !self.contains(date) {
            return None;
        }
        Some(match date.month() {
            4..=6 => 1,
            7..=9 => 2,
            10..=12 => 3,
            _ => 4,
        })
    }
}

impl std::fmt::Display for FinancialYear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:02}", self.start_year, (self.start_year + 1) % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn london_dates_follow_bst() {
        // 23:30 UTC on 31 March 2026 is 00:30 BST on 1 April.
        let t: Timestamp = "2026-03-31T23:30:00Z".parse().unwrap();
        assert_eq!(london_date(t), date(2026, 4, 1));
        // In winter London is UTC.
        let t: Timestamp = "2026-01-31T23:30:00Z".parse().unwrap();
        assert_eq!(london_date(t), date(2026, 1, 31));
    }

    #[test]
    fn financial_years() {
        let fy = FinancialYear::parse("2026-27").unwrap();
        assert_eq!(fy.to_string(), "2026-27");
        assert!(FinancialYear::parse("1999-00").is_err());
        assert_eq!(
            FinancialYear::parse("2099-00").unwrap().to_string(),
            "2099-00"
        );
        assert!(FinancialYear::parse("2026-28").is_err());
        assert!(FinancialYear::parse("2026/27").is_err());
        assert_eq!(FinancialYear::of(date(2026, 4, 1)), fy);
        assert_eq!(FinancialYear::of(date(2027, 3, 31)), fy);
        assert_ne!(FinancialYear::of(date(2026, 3, 31)), fy);
        assert_eq!(fy.quarter(date(2026, 4, 1)), Some(1));
        assert_eq!(fy.quarter(date(2026, 12, 31)), Some(3));
        assert_eq!(fy.quarter(date(2027, 1, 1)), Some(4));
        assert_eq!(fy.quarter(date(2027, 4, 1)), None);
        assert_eq!(fy.first_day(), date(2026, 4, 1));
        assert_eq!(fy.last_day(), date(2027, 3, 31));
    }

    #[test]
    fn instants_read_in_london_time() {
        assert_eq!(london_minute("2026-11-07T10:00:00Z"), "2026-11-07 10:00");
        assert_eq!(london_minute("2026-07-01T09:00:00Z"), "2026-07-01 10:00");
        assert_eq!(london_minute(""), "");
    }
}
