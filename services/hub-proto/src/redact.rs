//! `Debug` for messages that carry personal data: which fields are present,
//! never their values. Generated code skips `Debug` for these types (see
//! `build.rs`), so a stray `{:?}` in a log line cannot leak an identifier.

use std::fmt;

use crate::{common::PersonRef, events::PersonalData};

fn present(s: &str) -> &'static str {
    if s.is_empty() {
        "<empty>"
    } else {
        "<redacted>"
    }
}

impl fmt::Debug for PersonRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonRef")
            .field("nhs_number", &present(&self.nhs_number))
            .field("prison_number", &present(&self.prison_number))
            .field("pnc_id", &present(&self.pnc_id))
            .field("client_code", &present(&self.client_code))
            .field("given_name", &present(&self.given_name))
            .field("family_name", &present(&self.family_name))
            .field("date_of_birth", &present(&self.date_of_birth))
            .finish()
    }
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalData")
            .field("given_name", &present(&self.given_name))
            .field("family_name", &present(&self.family_name))
            .field("date_of_birth", &present(&self.date_of_birth))
            .field("text", &present(&self.text))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_identifiers() {
        let person = PersonRef {
            nhs_number: "9434765919".into(),
            given_name: "Jo".into(),
            ..Default::default()
        };
        let text = format!("{person:?}");
        assert!(!text.contains("9434765919"), "{text}");
        assert!(!text.contains("Jo\""), "{text}");
        assert!(text.contains("nhs_number: \"<redacted>\""), "{text}");
        assert!(text.contains("pnc_id: \"<empty>\""), "{text}");
    }
}
