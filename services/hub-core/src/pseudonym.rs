//! Keyed hashes that stand for people, staff and requests in the stream.
//!
//! `person_key` = first 128 bits of HMAC-SHA256(k_person, "<kind>:<value>"),
//! hex. The key comes from the hub secret, so nobody without it can test a
//! guessed NHS number against the stream (NHS numbers are only ~10⁹ values:
//! an unkeyed hash would be reversed in minutes).
//!
//! Linking: an event carries the key of the person's first identifier
//! (priority NHS, prison, PNC, client code) as `person_key`, the keys of
//! the others as `linked_person_keys`, and says which of them is a client
//! code's (`client_key`). Projections decide who is whom from these, per
//! partnership (`hub-projection`'s `identity`), so an event sent later with
//! any one strong identifier lands on the same person there, in any
//! rebuild, without the hub keeping a lookup table of raw identifiers
//! anywhere.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    person::{Identifier, IdentifierKind, Person},
    secret::HubSecret,
};

/// Derives every pseudonym. Cheap to clone.
#[derive(Clone)]
pub struct Pseudonymiser {
    person: [u8; 32],
    staff: [u8; 32],
    request: [u8; 32],
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<keys redacted>)")
    }
}

/// A person's keys: the primary one and the ones it links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonKeys {
    pub person_key: String,
    pub linked_person_keys: Vec<String>,
    /// The key of the person's client code, when the ref had one (it is
    /// also `person_key` or one of `linked_person_keys`).
    pub client_key: Option<String>,
}

impl PersonKeys {
    /// Every key, primary first.
    pub fn all(&self) -> Vec<String> {
        std::iter::once(self.person_key.clone())
            .chain(self.linked_person_keys.iter().cloned())
            .collect()
    }
}

fn keyed_hex(key: &[u8; 32], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b"\0");
        }
        mac.update(part);
    }
    hex::encode(&mac.finalize().into_bytes()[..16])
}

impl Pseudonymiser {
    pub fn new(secret: &HubSecret) -> Self {
        Self {
            person: secret.derive("person-key"),
            staff: secret.derive("staff-key"),
            request: secret.derive("request-digest"),
        }
    }

    /// The keyed hash of one normalised identifier.
    pub fn identifier_key(&self, id: &Identifier) -> String {
        keyed_hex(
            &self.person,
            &[id.kind.tag().as_bytes(), id.value().as_bytes()],
        )
    }

    /// The keys of a validated person, primary first.
    pub fn person_keys(&self, person: &Person) -> PersonKeys {
        let mut keys = person.identifiers.iter().map(|id| self.identifier_key(id));
        let person_key = keys.next().expect("a validated person has an identifier");
        let mut linked_person_keys: Vec<String> = keys.collect();
        linked_person_keys.dedup();
        let client_key = person
            .identifiers
            .iter()
            .find(|id| id.kind == IdentifierKind::ClientCode)
            .map(|id| self.identifier_key(id));
        PersonKeys {
            person_key,
            linked_person_keys,
            client_key,
        }
    }

    /// A staff member, by the organisation that employs them and its own id.
    pub fn staff_key(&self, org_code: &str, staff_id: &str) -> String {
        keyed_hex(
            &self.staff,
            &[org_code.as_bytes(), staff_id.trim().as_bytes()],
        )
    }

    /// A digest of one request's RPC and body, kept in the event's headers so
    /// that a retry can be told from a different request reusing the same id
    /// without storing the body (which holds identifiers) in clear.
    pub fn request_digest(&self, rpc: &str, body: &[u8]) -> String {
        keyed_hex(&self.request, &[rpc.as_bytes(), body])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{person::check_person, validate::Violations};
    use hub_proto::common::PersonRef;
    use jiff::civil::date;

    fn person(p: PersonRef) -> Person {
        let mut v = Violations::new();
        check_person(&mut v, "person", Some(&p), date(2026, 11, 23)).expect("valid")
    }

    fn pseudonymiser(byte: u8) -> Pseudonymiser {
        Pseudonymiser::new(&HubSecret::from_bytes(&[byte; 32]).unwrap())
    }

    #[test]
    fn same_identifier_same_key_however_written() {
        let ps = pseudonymiser(1);
        let a = ps.person_keys(&person(PersonRef {
            nhs_number: "943 476 5919".into(),
            ..Default::default()
        }));
        let b = ps.person_keys(&person(PersonRef {
            nhs_number: "9434765919".into(),
            ..Default::default()
        }));
        assert_eq!(a, b);
        assert_eq!(a.person_key.len(), 32);
        assert!(!a.person_key.contains("9434765919"));
    }

    #[test]
    fn several_identifiers_are_linked_under_the_primary() {
        let ps = pseudonymiser(1);
        let both = ps.person_keys(&person(PersonRef {
            prison_number: "A1234BC".into(),
            nhs_number: "9434765919".into(),
            ..Default::default()
        }));
        let nhs = ps.person_keys(&person(PersonRef {
            nhs_number: "9434765919".into(),
            ..Default::default()
        }));
        let prison = ps.person_keys(&person(PersonRef {
            prison_number: "a1234bc".into(),
            ..Default::default()
        }));
        // NHS number is primary; the prison number's key is linked to it.
        assert_eq!(both.person_key, nhs.person_key);
        assert_eq!(both.linked_person_keys, vec![prison.person_key.clone()]);
        assert_ne!(nhs.person_key, prison.person_key);
        assert_eq!(both.client_key, None);
    }

    #[test]
    fn the_client_code_key_is_marked() {
        let ps = pseudonymiser(1);
        let keys = ps.person_keys(&person(PersonRef {
            nhs_number: "9434765919".into(),
            client_code: "JS02031985M".into(),
            ..Default::default()
        }));
        let alone = ps.person_keys(&person(PersonRef {
            client_code: "js02031985m".into(),
            ..Default::default()
        }));
        assert_eq!(keys.client_key.as_deref(), Some(alone.person_key.as_str()));
        assert_eq!(keys.linked_person_keys, vec![alone.person_key.clone()]);
        assert_eq!(alone.client_key.as_deref(), Some(alone.person_key.as_str()));
    }

    #[test]
    fn keys_depend_on_the_secret_and_the_kind() {
        let p = person(PersonRef {
            pnc_id: "1234567890".into(),
            ..Default::default()
        });
        let q = person(PersonRef {
            nhs_number: "1234567881".into(),
            ..Default::default()
        });
        assert_ne!(
            pseudonymiser(1).person_keys(&p),
            pseudonymiser(2).person_keys(&p)
        );
        // The same digits as a PNC id and as an NHS number are different people.
        let ps = pseudonymiser(1);
        assert_ne!(
            ps.identifier_key(&p.identifiers[0]),
            keyed_hex(&ps.person, &[b"nhs", b"1234567890"])
        );
        let _ = q;
    }

    #[test]
    fn request_digest_separates_rpc_and_body() {
        let ps = pseudonymiser(1);
        assert_eq!(ps.request_digest("a", b"x"), ps.request_digest("a", b"x"));
        assert_ne!(ps.request_digest("a", b"x"), ps.request_digest("a", b"y"));
        assert_ne!(ps.request_digest("a", b"x"), ps.request_digest("b", b"x"));
    }
}
