//! Opening hours as the national review counts access to needle exchange:
//! a transaction is out of hours outside Monday–Friday 09:00–17:00 in
//! Europe/London, or on an England bank holiday.
//!
//! # The bank holidays
//! `seeds/bank-holidays.json` is England and Wales's bank holidays in
//! GOV.UK's format (<https://www.gov.uk/bank-holidays.json>, the
//! `england-and-wales` division; other divisions may be present and are
//! ignored). The copy shipped first (2018–2028) was written out by hand
//! from the published dates, the machine it was made on having no
//! internet: `make bank-holidays` replaces it with GOV.UK's own file. It is
//! compiled in, so the rule stays a pure function and every replica and
//! every rebuild counts the same days. GOV.UK publishes about two years
//! ahead: `make bank-holidays` fetches the current file, and after a new
//! build a rebuild of the activity projection (`hubctl projection rebuild
//! activity`) counts past transactions against it. A year the list does
//! not reach has no bank holidays as far as the count goes:
//! [`covers`] says whether it does, and the tests fail when the list no
//! longer covers the next financial year.

use std::{collections::BTreeSet, sync::OnceLock};

use jiff::{
    civil::{Date, DateTime, Weekday},
    Timestamp,
};

use hub_core::time::london;

/// The file as shipped.
const BANK_HOLIDAYS_JSON: &str = include_str!("../../../seeds/bank-holidays.json");

/// England and Wales's bank holidays, parsed once.
fn bank_holidays() -> &'static BankHolidays {
    static DAYS: OnceLock<BankHolidays> = OnceLock::new();
    DAYS.get_or_init(|| {
        BankHolidays::parse(BANK_HOLIDAYS_JSON)
            .expect("seeds/bank-holidays.json is checked by the tests")
    })
}

/// The days of one division of GOV.UK's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankHolidays {
    days: BTreeSet<Date>,
}

impl BankHolidays {
    /// Reads GOV.UK's `bank-holidays.json` (its `england-and-wales`
    /// division).
    pub fn parse(json: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("bank holidays: {e}"))?;
        let events = v
            .get("england-and-wales")
            .and_then(|d| d.get("events"))
            .and_then(|e| e.as_array())
            .ok_or("bank holidays: no england-and-wales events")?;
        let mut days = BTreeSet::new();
        for e in events {
            let date = e
                .get("date")
                .and_then(|d| d.as_str())
                .ok_or("bank holidays: an event without a date")?;
            days.insert(
                date.parse::<Date>()
                    .map_err(|e| format!("bank holidays: {date}: {e}"))?,
            );
        }
        Ok(Self { days })
    }

    pub fn contains(&self, day: Date) -> bool {
        self.days.contains(&day)
    }

    /// The first and last days listed.
    pub fn span(&self) -> Option<(Date, Date)> {
        Some((*self.days.first()?, *self.days.last()?))
    }
}

/// Whether `day` is an England bank holiday.
pub fn is_bank_holiday(day: Date) -> bool {
    bank_holidays().contains(day)
}

/// Whether the shipped list reaches `day`'s calendar year.
pub fn covers(day: Date) -> bool {
    bank_holidays()
        .span()
        .is_some_and(|(first, last)| first.year() <= day.year() && day.year() <= last.year())
}

/// Whether a transaction at `at` was outside Monday–Friday 09:00–17:00
/// (London time; 17:00 itself is out of hours) or on a bank holiday.
pub fn out_of_hours(at: Timestamp) -> bool {
    out_of_hours_local(at.to_zoned(london()).datetime())
}

/// [`out_of_hours`] of a London wall-clock time.
pub fn out_of_hours_local(local: DateTime) -> bool {
    let weekend = matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday);
    weekend || !(9..17).contains(&local.hour()) || is_bank_holiday(local.date())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_shipped_list_parses_and_covers_this_year_and_the_next() {
        let days = BankHolidays::parse(BANK_HOLIDAYS_JSON).unwrap();
        assert!(days.contains(date(2026, 12, 28)), "Boxing Day's substitute");
        assert!(days.contains(date(2022, 9, 19)), "a one-off day");
        assert!(
            !days.contains(date(2026, 12, 26)),
            "a Saturday is not listed"
        );
        let next_year = hub_core::time::london_today()
            .checked_add(jiff::Span::new().years(1))
            .unwrap();
        assert!(
            covers(next_year),
            "seeds/bank-holidays.json ends {:?}: run `make bank-holidays`",
            days.span()
        );
    }

    #[test]
    fn malformed_lists_are_refused_naming_why() {
        assert!(BankHolidays::parse("{}")
            .unwrap_err()
            .contains("england-and-wales"));
        let bad = r#"{"england-and-wales":{"events":[{"date":"2026-13-01"}]}}"#;
        assert!(BankHolidays::parse(bad).unwrap_err().contains("2026-13-01"));
    }

    #[test]
    fn office_hours_are_london_weekdays_from_nine_to_five() {
        // Tuesday 3 November 2026, GMT.
        assert!(out_of_hours(at("2026-11-03T08:59:59Z")));
        assert!(!out_of_hours(at("2026-11-03T09:00:00Z")));
        assert!(!out_of_hours(at("2026-11-03T16:59:59Z")));
        assert!(out_of_hours(at("2026-11-03T17:00:00Z")));
        // Tuesday 2 June 2026, BST: 08:30 UTC is 09:30 in London.
        assert!(!out_of_hours(at("2026-06-02T08:30:00Z")));
        assert!(out_of_hours(at("2026-06-02T16:30:00Z")), "17:30 BST");
        // Saturday, and Easter Monday 6 April 2026 at noon.
        assert!(out_of_hours(at("2026-11-07T12:00:00Z")));
        assert!(out_of_hours(at("2026-04-06T11:00:00Z")));
        // Either side of the clocks going forward (Sunday 28 March 2027):
        // 08:30 UTC is 08:30 in London on Thursday, 09:30 on Tuesday.
        assert!(out_of_hours(at("2027-03-25T08:30:00Z")));
        assert!(!out_of_hours(at("2027-03-30T08:30:00Z")));
    }
}
