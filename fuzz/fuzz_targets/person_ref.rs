//! PersonRef normalisation: any `hub.v1.PersonRef` (protobuf) through the
//! person check every command runs, and each identifier through its own
//! normaliser. Never a panic; a normalised identifier normalises to
//! itself (so two spellings of one person meet on one key); an accepted
//! person has at least one identifier.
#![no_main]

use hub_core::{person, validate::Violations};
use hub_proto::common::PersonRef;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn idempotent(normalise: fn(&str) -> Result<String, String>, raw: &str) {
    if let Ok(once) = normalise(raw) {
        assert_eq!(normalise(&once).as_deref(), Ok(once.as_str()), "{raw:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(reference) = PersonRef::decode(data) else {
        return;
    };
    let today = jiff::civil::date(2026, 11, 24);
    let mut violations = Violations::new();
    let checked = person::check_person(&mut violations, "person", Some(&reference), today);
    if let Some(p) = &checked {
        assert!(!p.identifiers.is_empty(), "a person without an identifier");
    }
    idempotent(person::nhs_number, &reference.nhs_number);
    idempotent(person::prison_number, &reference.prison_number);
    idempotent(person::pnc_id, &reference.pnc_id);
    idempotent(person::client_code, &reference.client_code);
    for raw in [
        &reference.nhs_number,
        &reference.prison_number,
        &reference.pnc_id,
        &reference.client_code,
    ] {
        if let Ok(id) = person::recognise(raw) {
            assert_eq!(
                person::recognise(id.value()).map(|i| i.value().to_string()),
                Ok(id.value().to_string())
            );
        }
    }
    let _ = person::date_of_birth(&reference.date_of_birth, today);
});
