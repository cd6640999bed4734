//! Days and financial years as partnerships count them: in Europe/London,
//! where a UTC instant late on 31 March may already be 1 April (BST).

use jiff::{civil::Date, tz::TimeZone, Timestamp};

/// Europe/London from the tz database (bundled, so a machine without
/// tzdata gets the same answer). Looked up once: projections ask for it
/// for every event they apply.
pub fn london() -> TimeZone {
    static LONDON: std::sync::OnceLock<TimeZone> = std::sync::OnceLock::new();
    LONDON
        .get_or_init(|| {
            TimeZone::get("Europe/London").expect("Europe/London is in the bundled tz database")
        })
        .clone()
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

    /// The last day of quarter `q` (1-4; anything else is read as 4).
    pub fn quarter_last_day(self, q: u8) -> Date {
        let (y, m, d) = match q {
            1 => (self.start_year, 6, 30),
            2 => (self.start_year, 9, 30),
            3 => (self.start_year, 12, 31),
            _ => (self.start_year + 1, 3, 31),
        };
        Date::new(y, m, d).expect("quarter ends are real days")
    }

    /// The first day of quarter `q` (1-4; anything else is read as 4).
    pub fn quarter_first_day(self, q: u8) -> Date {
        let (y, m) = match q {
            1 => (self.start_year, 4),
            2 => (self.start_year, 7),
            3 => (self.start_year, 10),
            _ => (self.start_year + 1, 1),
        };
        Date::new(y, m, 1).expect("quarter starts are real days")
    }
}

/// The financial year and quarter (1-4) of the London day of `at`.
pub fn period_of(at: Timestamp) -> (FinancialYear, u8) {
    period_of_day(london_date(at))
}

/// The financial year and quarter (1-4) of `day`.
pub fn period_of_day(day: Date) -> (FinancialYear, u8) {
    let fy = FinancialYear::of(day);
    (fy, fy.quarter(day).expect("a day is in its own year"))
}

/// The first instant after London's day `day` ends (midnight in London,
/// whatever the clocks do that night).
pub fn end_of_london_day(day: Date) -> Timestamp {
    day.tomorrow()
        .ok()
        .and_then(|d| d.to_zoned(london()).ok())
        .map_or(Timestamp::MAX, |z| z.timestamp())
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
    fn quarters_start_and_end_where_the_contract_says() {
        let fy = FinancialYear::parse("2026-27").unwrap();
        assert_eq!(fy.quarter_first_day(1), date(2026, 4, 1));
        assert_eq!(fy.quarter_last_day(1), date(2026, 6, 30));
        assert_eq!(fy.quarter_first_day(4), date(2027, 1, 1));
        assert_eq!(fy.quarter_last_day(4), date(2027, 3, 31));
        for q in 1..=4 {
            assert_eq!(period_of_day(fy.quarter_first_day(q)), (fy, q));
            assert_eq!(period_of_day(fy.quarter_last_day(q)), (fy, q));
        }
        // 23:30 UTC on 31 March 2026 is already 1 April in London.
        let t: Timestamp = "2026-03-31T23:30:00Z".parse().unwrap();
        assert_eq!(period_of(t), (fy, 1));
        // London's 28 March 2027 has 23 hours (clocks go forward at 01:00).
        let end = end_of_london_day(date(2027, 3, 28));
        assert_eq!(end, "2027-03-28T23:00:00Z".parse::<Timestamp>().unwrap());
    }

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
