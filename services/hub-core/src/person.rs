//! People as agencies name them, and the rules a [`PersonRef`] must meet.
//!
//! An agency may know a person by an NHS number, a NOMIS prison number, a PNC
//! id or an NDTMS client code (attributor). Each is normalised (spaces removed,
//! upper case) before it is hashed, so `943 476 5919` and `9434765919` are the
//! same person. Names and date of birth are kept only to be sealed.

use jiff::civil::Date;

use hub_proto::common::PersonRef;

use crate::validate::{self, Violations};

/// The kinds of identifier, in the order that picks a person's primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentifierKind {
    Nhs,
    Prison,
    Pnc,
    ClientCode,
}

impl IdentifierKind {
    /// Prefix under which the identifier is hashed; never change these.
    pub fn tag(self) -> &'static str {
        match self {
            IdentifierKind::Nhs => "nhs",
            IdentifierKind::Prison => "prison",
            IdentifierKind::Pnc => "pnc",
            IdentifierKind::ClientCode => "client",
        }
    }
}

/// A normalised identifier. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier {
    pub kind: IdentifierKind,
    value: String,
}

impl Identifier {
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identifier({:?}, <redacted>)", self.kind)
    }
}

/// A validated person: identifiers in priority order (at least one), and
/// the personal data to be sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct Person {
    pub identifiers: Vec<Identifier>,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Option<Date>,
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Person")
            .field("identifiers", &self.identifiers)
            .finish_non_exhaustive()
    }
}

impl Person {
    /// True when there is a name or date of birth to seal.
    pub fn has_personal_data(&self) -> bool {
        !self.given_name.is_empty() || !self.family_name.is_empty() || self.date_of_birth.is_some()
    }
}

/// Checks a PersonRef under `field` (e.g. `person`), adding every broken
/// rule to `violations`. `today` bounds the date of birth.
pub fn check_person(
    violations: &mut Violations,
    field: &str,
    person: Option<&PersonRef>,
    today: Date,
) -> Option<Person> {
    let Some(p) = person else {
        violations.add(field, "required: a person with at least one identifier");
        return None;
    };
    let before = violations.len();
    let mut identifiers = Vec::new();
    let mut one =
        |kind: IdentifierKind, name: &str, raw: &str, rule: fn(&str) -> Result<String, String>| {
            if raw.trim().is_empty() {
                return;
            }
            if let Some(value) = violations.check(&format!("{field}.{name}"), rule(raw)) {
                identifiers.push(Identifier { kind, value });
            }
        };
    one(IdentifierKind::Nhs, "nhs_number", &p.nhs_number, nhs_number);
    one(
        IdentifierKind::Prison,
        "prison_number",
        &p.prison_number,
        prison_number,
    );
    one(IdentifierKind::Pnc, "pnc_id", &p.pnc_id, pnc_id);
    one(
        IdentifierKind::ClientCode,
        "client_code",
        &p.client_code,
        client_code,
    );

    let all_blank = [&p.nhs_number, &p.prison_number, &p.pnc_id, &p.client_code]
        .iter()
        .all(|s| s.trim().is_empty());
    if all_blank {
        violations.add(
            field,
            "at least one of nhs_number, prison_number, pnc_id, client_code is required",
        );
    }
    violations.check(
        &format!("{field}.given_name"),
        validate::text(&p.given_name),
    );
    violations.check(
        &format!("{field}.family_name"),
        validate::text(&p.family_name),
    );
    let date_of_birth = if p.date_of_birth.is_empty() {
        None
    } else {
        violations.check(
            &format!("{field}.date_of_birth"),
            date_of_birth(&p.date_of_birth, today),
        )
    };
    if violations.len() != before {
        return None;
    }
    Some(Person {
        identifiers,
        given_name: p.given_name.trim().to_string(),
        family_name: p.family_name.trim().to_string(),
        date_of_birth,
    })
}

/// A person named only by an NDTMS client code (needle exchange), checked
/// under `field`.
pub fn check_client_code(violations: &mut Violations, field: &str, raw: &str) -> Option<Person> {
    if raw.trim().is_empty() {
        violations.add(field, "required: the NDTMS attributor, e.g. JS02031985M");
        return None;
    }
    let value = violations.check(field, client_code(raw))?;
    Some(Person {
        identifiers: vec![Identifier {
            kind: IdentifierKind::ClientCode,
            value,
        }],
        given_name: String::new(),
        family_name: String::new(),
        date_of_birth: None,
    })
}

/// A person who may be unknown: `None`, or a ref with nothing in it, is no
/// person (`Some(None)`); anything else must be a valid person. `None` when
/// a rule was broken.
pub fn check_optional_person(
    violations: &mut Violations,
    field: &str,
    person: Option<&PersonRef>,
    today: Date,
) -> Option<Option<Person>> {
    match person {
        Some(p) if *p != PersonRef::default() => {
            check_person(violations, field, Some(p), today).map(Some)
        }
        _ => Some(None),
    }
}

/// An identifier given alone (erasure): its kind recognised from its shape.
/// Ten digits with a valid check digit are an NHS number; `A1234BC` a
/// prison number; initials, a real date and a sex an NDTMS client code;
/// anything else a PNC id.
pub fn recognise(raw: &str) -> Result<Identifier, String> {
    if raw.trim().is_empty() {
        return Err("required: an NHS number, prison number, client code or PNC id".into());
    }
    if let Ok(value) = nhs_number(raw) {
        return Ok(Identifier {
            kind: IdentifierKind::Nhs,
            value,
        });
    }
    if raw
        .chars()
        .filter(|c| *c != ' ')
        .all(|c| c.is_ascii_digit())
        && raw.chars().filter(char::is_ascii_digit).count() == 10
    {
        return Err("looks like an NHS number but its check digit is wrong".into());
    }
    if let Ok(value) = prison_number(raw) {
        return Ok(Identifier {
            kind: IdentifierKind::Prison,
            value,
        });
    }
    if let Ok(value) = client_code(raw) {
        return Ok(Identifier {
            kind: IdentifierKind::ClientCode,
            value,
        });
    }
    Ok(Identifier {
        kind: IdentifierKind::Pnc,
        value: pnc_id(raw)?,
    })
}

/// 10 digits (spaces allowed) with a valid modulus 11 check digit.
///
/// Weights 10 down to 2 over the first nine digits; the check digit is
/// 11 − (sum mod 11), where 11 becomes 0 and 10 means the number is invalid.
pub fn nhs_number(raw: &str) -> Result<String, String> {
    let digits: String = raw.chars().filter(|c| *c != ' ').collect();
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be 10 digits (spaces allowed)".into());
    }
    let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return Err("is not a valid NHS number (check digit)".into()),
        c => c,
    };
    if check != d[9] {
        return Err("is not a valid NHS number (check digit)".into());
    }
    Ok(digits)
}

/// NOMIS prison number: a letter, four digits, two letters (`A1234BC`).
/// Lower case is accepted and normalised.
pub fn prison_number(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_uppercase();
    let b = s.as_bytes();
    let ok = b.len() == 7
        && b[0].is_ascii_uppercase()
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5..7].iter().all(u8::is_ascii_uppercase);
    if !ok {
        return Err(
            "must be a NOMIS prison number: a letter, 4 digits, 2 letters (e.g. A1234BC)".into(),
        );
    }
    Ok(s)
}

/// PNC id: free form up to 256 characters without control characters;
/// normalised to upper case without spaces.
pub fn pnc_id(raw: &str) -> Result<String, String> {
    validate::text(raw)?;
    Ok(raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase())
}

/// NDTMS attributor: first-name initial, surname initial, date of birth
/// `DDMMYYYY` (a real date), sex `M`, `F`, `X` or `U` (e.g. `JS02031985M`).
pub fn client_code(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_uppercase();
    let b = s.as_bytes();
    let shape = b.len() == 11
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2..10].iter().all(u8::is_ascii_digit)
        && matches!(b[10], b'M' | b'F' | b'X' | b'U');
    if !shape {
        return Err(
            "must be initials, date of birth DDMMYYYY and sex M/F/X/U (e.g. JS02031985M)".into(),
        );
    }
    let day: i8 = s[2..4].parse().map_err(|_| "bad day".to_string())?;
    let month: i8 = s[4..6].parse().map_err(|_| "bad month".to_string())?;
    let year: i16 = s[6..10].parse().map_err(|_| "bad year".to_string())?;
    Date::new(year, month, day)
        .map_err(|_| "date of birth in it is not a real date".to_string())?;
    Ok(s)
}

/// A real date, not after today.
pub fn date_of_birth(raw: &str, today: Date) -> Result<Date, String> {
    let d = validate::date(raw)?;
    if d > today {
        return Err("is in the future".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 11, 23).unwrap()
    }

    #[test]
    fn nhs_numbers_modulus_11() {
        // Valid published test numbers.
        assert_eq!(nhs_number("9434765919").unwrap(), "9434765919");
        assert_eq!(nhs_number("943 476 5919").unwrap(), "9434765919");
        assert!(nhs_number("4010232137").is_ok());
        // Check digit wrong.
        assert!(nhs_number("9434765918").is_err());
        // Check digit computes to 10, which no NHS number may have:
        // 000000006 → sum 6×2 = 12, 12 mod 11 = 1, 11 − 1 = 10.
        assert!(nhs_number("0000000060").is_err());
        assert!(nhs_number("0000000061").is_err());
        // Check digit 11 → 0: 000000000 sums to 0, so 0000000000 is valid by the rule.
        assert!(nhs_number("0000000000").is_ok());
        // Shape.
        assert!(nhs_number("943476591").is_err());
        assert!(nhs_number("94347659190").is_err());
        assert!(nhs_number("94347A5919").is_err());
        assert!(nhs_number("943-476-5919").is_err());
    }

    #[test]
    fn identifiers_are_recognised_by_shape() {
        assert_eq!(recognise("943 476 5919").unwrap().kind, IdentifierKind::Nhs);
        assert!(
            recognise("9434765918").is_err(),
            "a bad NHS number is not a PNC id"
        );
        assert_eq!(recognise("a1234bc").unwrap().kind, IdentifierKind::Prison);
        assert_eq!(
            recognise("JS02031985M").unwrap().kind,
            IdentifierKind::ClientCode
        );
        let pnc = recognise("2001/0123456X").unwrap();
        assert_eq!(
            (pnc.kind, pnc.value()),
            (IdentifierKind::Pnc, "2001/0123456X")
        );
        assert!(recognise(" ").is_err());
    }

    #[test]
    fn prison_numbers_nomis() {
        assert_eq!(prison_number("A1234BC").unwrap(), "A1234BC");
        assert_eq!(prison_number("a1234bc").unwrap(), "A1234BC");
        assert!(prison_number("A123BC").is_err());
        assert!(prison_number("11234BC").is_err());
        assert!(prison_number("A1234B1").is_err());
        assert!(prison_number("A1234BCD").is_err());
    }

    #[test]
    fn client_codes_need_a_real_date() {
        assert_eq!(client_code("JS02031985M").unwrap(), "JS02031985M");
        assert_eq!(client_code("js02031985f").unwrap(), "JS02031985F");
        assert!(client_code("JS29022000U").is_ok());
        assert!(
            client_code("JS29022001U").is_err(),
            "2001 is not a leap year"
        );
        assert!(client_code("JS32011985M").is_err());
        assert!(client_code("JS02131985M").is_err());
        assert!(client_code("JS02031985Q").is_err(), "sex must be M F X U");
        assert!(client_code("J502031985M").is_err());
        assert!(client_code("JS0203198M").is_err());
    }

    #[test]
    fn person_needs_an_identifier_and_names_the_field() {
        let mut v = Violations::new();
        let p = PersonRef {
            given_name: "Ann".into(),
            ..Default::default()
        };
        assert!(check_person(&mut v, "person", Some(&p), today()).is_none());
        let text = format!("{:?}", v.finish(|| ()).unwrap_err());
        assert!(text.contains("\"person\""), "{text}");

        let mut v = Violations::new();
        assert!(check_person(&mut v, "person", None, today()).is_none());
        assert!(!v.is_empty());
    }

    #[test]
    fn person_errors_name_subfields_and_never_values() {
        let mut v = Violations::new();
        let p = PersonRef {
            nhs_number: "9434765918".into(),
            prison_number: "A1234BC".into(),
            date_of_birth: "2099-01-01".into(),
            ..Default::default()
        };
        assert!(check_person(&mut v, "person", Some(&p), today()).is_none());
        let text = format!("{}", v.finish(|| ()).unwrap_err());
        assert!(text.contains("person.nhs_number"), "{text}");
        assert!(text.contains("person.date_of_birth"), "{text}");
        assert!(!text.contains("9434765918"), "{text}");
        assert!(!text.contains("2099"), "{text}");
    }

    #[test]
    fn person_identifiers_in_priority_order() {
        let mut v = Violations::new();
        let p = PersonRef {
            client_code: "js02031985m".into(),
            nhs_number: "943 476 5919".into(),
            given_name: " Jo ".into(),
            date_of_birth: "1985-03-02".into(),
            ..Default::default()
        };
        let person = check_person(&mut v, "person", Some(&p), today()).unwrap();
        let kinds: Vec<_> = person.identifiers.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [IdentifierKind::Nhs, IdentifierKind::ClientCode]);
        assert_eq!(person.identifiers[0].value(), "9434765919");
        assert_eq!(person.identifiers[1].value(), "JS02031985M");
        assert_eq!(person.given_name, "Jo");
        assert!(!format!("{person:?}").contains("9434765919"));
    }
}
