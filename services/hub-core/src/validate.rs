//! The contract's common field rules (section 3), as pure functions.
//!
//! Each rule returns `Err(description)`; a [`Violations`] collector adds the
//! field's name, so every rule broken in a request is reported at once and
//! each error names its field. Descriptions never repeat the value sent,
//! because the value may be a personal identifier.

use jiff::{civil::Date, Timestamp};

use crate::{error::FieldViolation, partnerships::PartnershipRegister, Error};

/// Longest string the hub accepts in any field.
pub const MAX_TEXT_CHARS: usize = 256;
/// Largest count (packs, kits, headcounts).
pub const MAX_COUNT: u32 = 10_000;
/// How far in the future `occurred_at` may be (clock skew between agencies).
pub const MAX_FUTURE_SECONDS: i64 = 5 * 60;

/// Collects broken rules, then turns them into one [`Error::Invalid`].
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records the error of `result`, if any, under `field`; passes the value on.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// How many rules were broken so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no rule was broken.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Error> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}

/// 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn request_id(s: &str) -> Result<&str, String> {
    if s.is_empty() {
        return Err("required: 1 to 128 characters of A-Z a-z 0-9 . _ : -".into());
    }
    if s.chars().count() > 128 {
        return Err("longer than 128 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        return Err("may contain only A-Z a-z 0-9 . _ : -".into());
    }
    Ok(s)
}

/// A code from the partnership register.
pub fn partnership<'a>(register: &PartnershipRegister, code: &'a str) -> Result<&'a str, String> {
    if code.is_empty() {
        return Err("required".into());
    }
    if register.get(code).is_none() {
        return Err("not a known partnership code (see seeds/partnerships.tsv)".into());
    }
    Ok(code)
}

/// Required; not before 2000-01-01; not more than 5 minutes after `now`.
pub fn occurred_at(
    ts: Option<&prost_types::Timestamp>,
    now: Timestamp,
) -> Result<Timestamp, String> {
    let ts = ts.ok_or_else(|| "required".to_string())?;
    let t = timestamp(ts)?;
    let earliest = Timestamp::from_second(946_684_800).expect("constant"); // 2000-01-01T00:00:00Z
    if t < earliest {
        return Err("before 2000-01-01".into());
    }
    if t.as_second() > now.as_second() + MAX_FUTURE_SECONDS {
        return Err("more than 5 minutes in the future".into());
    }
    Ok(t)
}

/// A protobuf Timestamp that denotes a real instant.
pub fn timestamp(ts: &prost_types::Timestamp) -> Result<Timestamp, String> {
    // Protobuf requires 0 <= nanos < 10^9.
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err("not a valid timestamp (nanos out of range)".into());
    }
    Timestamp::new(ts.seconds, ts.nanos).map_err(|_| "not a valid timestamp".to_string())
}

/// A `YYYY-MM-DD` string that is a real calendar date.
pub fn date(s: &str) -> Result<Date, String> {
    if s.is_empty() {
        return Err("required (YYYY-MM-DD)".into());
    }
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err("must be a date written YYYY-MM-DD".into());
    }
    let year: i16 = s[0..4].parse().map_err(|_| "bad year".to_string())?;
    let month: i8 = s[5..7].parse().map_err(|_| "bad month".to_string())?;
    let day: i8 = s[8..10].parse().map_err(|_| "bad day".to_string())?;
    Date::new(year, month, day).map_err(|_| "not a real calendar date".to_string())
}

/// Organisation codes: 2–12 characters of `[A-Z0-9]`.
pub fn org_code(s: &str) -> Result<&str, String> {
    if s.is_empty() {
        return Err("required: 2 to 12 characters of A-Z 0-9".into());
    }
    let len = s.chars().count();
    if !(2..=12).contains(&len)
        || !s
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err("must be 2 to 12 characters of A-Z 0-9".into());
    }
    Ok(s)
}

/// Free text: at most 256 characters, no control characters. Empty allowed.
pub fn text(s: &str) -> Result<&str, String> {
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("longer than {MAX_TEXT_CHARS} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(s)
}

/// Like [`text`], but must not be empty or blank.
pub fn required_text(s: &str) -> Result<&str, String> {
    if s.trim().is_empty() {
        return Err("required".into());
    }
    text(s)
}

/// A reason for a decision or an exceptional read (a link, an unlink,
/// breaking the glass): 10 to 500 characters, no control characters.
pub fn reason(s: &str) -> Result<&str, String> {
    let s = s.trim();
    let n = s.chars().count();
    if n < 10 {
        return Err("required: 10 to 500 characters saying why".into());
    }
    if n > 500 {
        return Err("longer than 500 characters".into());
    }
    if s.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(s)
}

/// Another partnership of the register than the command's own.
pub fn other_partnership<'a>(
    register: &PartnershipRegister,
    code: &'a str,
    own: &str,
) -> Result<&'a str, String> {
    let code = partnership(register, code)?;
    if code == own {
        return Err("must be another partnership than partnership_code".into());
    }
    Ok(code)
}

/// Counts: 0–10,000.
pub fn count(n: u32) -> Result<u32, String> {
    if n > MAX_COUNT {
        return Err(format!("must be between 0 and {MAX_COUNT}"));
    }
    Ok(n)
}

/// An enum must not be left at its `_UNSPECIFIED` zero value, nor hold a
/// number the schema does not define.
pub fn enum_value<E: TryFrom<i32>>(value: i32) -> Result<E, String> {
    if value == 0 {
        return Err("required: must not be left unspecified".into());
    }
    E::try_from(value).map_err(|_| "not a known value".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn request_ids() {
        assert!(request_id("abc-123_x.y:z").is_ok());
        assert!(request_id(&"a".repeat(128)).is_ok());
        assert!(request_id("").is_err());
        assert!(request_id(&"a".repeat(129)).is_err());
        assert!(request_id("has space").is_err());
        assert!(request_id("slash/no").is_err());
        assert!(request_id("é").is_err());
    }

    #[test]
    fn occurred_at_bounds() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(occurred_at(None, now).unwrap_err(), "required");
        assert!(occurred_at(Some(&ts(1_800_000_000 + 300)), now).is_ok());
        assert!(occurred_at(Some(&ts(1_800_000_000 + 301)), now).is_err());
        assert!(occurred_at(Some(&ts(946_684_800)), now).is_ok());
        assert!(occurred_at(Some(&ts(946_684_799)), now).is_err());
        let bad_nanos = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: -5,
        };
        assert!(occurred_at(Some(&bad_nanos), now).is_err());
    }

    #[test]
    fn dates_must_be_real() {
        assert_eq!(date("2026-04-01").unwrap(), Date::new(2026, 4, 1).unwrap());
        assert!(date("2024-02-29").is_ok());
        assert!(date("2025-02-29").is_err());
        assert!(date("2026-13-01").is_err());
        assert!(date("2026-04-31").is_err());
        assert!(date("2026-4-1").is_err());
        assert!(date("01/04/2026").is_err());
        assert!(date("").is_err());
        assert!(date("2026-04-01T00:00").is_err());
    }

    #[test]
    fn org_codes() {
        assert!(org_code("LEI").is_ok());
        assert!(org_code("FW844").is_ok());
        assert!(org_code("AB").is_ok());
        assert!(org_code("ABCDEFGHIJKL").is_ok());
        assert!(org_code("A").is_err());
        assert!(org_code("ABCDEFGHIJKLM").is_err());
        assert!(org_code("lei").is_err());
        assert!(org_code("LE-I").is_err());
        assert!(org_code("").is_err());
    }

    #[test]
    fn texts_and_counts() {
        assert!(text("").is_ok());
        assert!(text(&"x".repeat(256)).is_ok());
        assert!(text(&"x".repeat(257)).is_err());
        assert!(text("line\nbreak").is_err());
        assert!(text("tab\there").is_err());
        assert!(required_text("  ").is_err());
        assert!(count(0).is_ok());
        assert!(count(10_000).is_ok());
        assert!(count(10_001).is_err());
    }

    #[test]
    fn enums_left_unspecified_are_invalid() {
        use hub_proto::common::ConsentPurpose;
        assert!(enum_value::<ConsentPurpose>(0).is_err());
        assert!(enum_value::<ConsentPurpose>(99).is_err());
        assert_eq!(
            enum_value::<ConsentPurpose>(1).unwrap(),
            ConsentPurpose::GatePickup
        );
    }

    #[test]
    fn violations_name_every_field() {
        let mut v = Violations::new();
        v.check("request_id", request_id(""));
        v.check("prison_code", org_code("x"));
        let err = v.finish(|| ()).unwrap_err();
        match err {
            Error::Invalid(list) => {
                let fields: Vec<_> = list.iter().map(|f| f.field.as_str()).collect();
                assert_eq!(fields, ["request_id", "prison_code"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
