//! Per-person data keys and the sealing of personal data.
//!
//! Names, dates of birth and free text about a person are needed by gate
//! workers, but must never be readable in the event log, and must become
//! unreadable everywhere when the person is erased. So:
//!
//! - each person (by `person_key`) gets a random 256-bit **data key**;
//! - the data key is stored **outside the stream** (the `hub_person_keys`
//!   JetStream KV bucket), **wrapped** with XChaCha20-Poly1305 under a key
//!   derived from the hub secret, with the person key as associated data;
//! - personal data is encoded as `PersonalData`, sealed with XChaCha20-Poly1305
//!   under the data key (random 192-bit nonce, the event id as associated
//!   data), and carried in the event's `sealed` field;
//! - erasure destroys the wrapped data key: every sealed copy, in the stream,
//!   in projections and in backups of either, can then never be opened, while
//!   the events themselves (and every count built from them) stay.
//!
//! This module is pure: the key store's I/O lives in `hub-runtime`.

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use prost::Message;
use rand::RngCore;

use hub_proto::events::{PersonalData, Sealed};

use crate::{secret::HubSecret, Error};

const NONCE_LEN: usize = 24;

/// A person's data key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// Wraps and unwraps data keys under the key-encryption key derived from
/// the hub secret.
#[derive(Clone)]
pub struct KeyWrapper {
    kek: [u8; 32],
}

impl std::fmt::Debug for KeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyWrapper(<redacted>)")
    }
}

impl KeyWrapper {
    pub fn new(secret: &HubSecret) -> Self {
        Self {
            kek: secret.derive("data-key-wrapping"),
        }
    }

    /// `nonce || ciphertext`, bound to `key_id`.
    pub fn wrap(&self, key_id: &str, key: &DataKey) -> Vec<u8> {
        let n = nonce();
        let cipher = XChaCha20Poly1305::new((&self.kek).into());
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&n),
                Payload {
                    msg: &key.0,
                    aad: key_id.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for small inputs");
        [n.as_slice(), &ct].concat()
    }

    pub fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, Error> {
        if wrapped.len() <= NONCE_LEN {
            return Err(Error::Internal("wrapped data key too short".into()));
        }
        let cipher = XChaCha20Poly1305::new((&self.kek).into());
        let (n, ct) = wrapped.split_at(NONCE_LEN);
        let pt = cipher
            .decrypt(
                XNonce::from_slice(n),
                Payload {
                    msg: ct,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Internal("data key does not unwrap under this hub secret".into())
            })?;
        let bytes: [u8; 32] = pt
            .try_into()
            .map_err(|_| Error::Internal("data key has the wrong length".into()))?;
        Ok(DataKey(bytes))
    }
}

/// Seals `data` for the event `event_id` under `key` (the data key of
/// `key_id`).
pub fn seal(key: &DataKey, key_id: &str, event_id: &str, data: &PersonalData) -> Sealed {
    let n = nonce();
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&n),
            Payload {
                msg: &data.encode_to_vec(),
                aad: event_id.as_bytes(),
            },
        )
        .expect("XChaCha20-Poly1305 encryption cannot fail for small inputs");
    Sealed {
        key_id: key_id.to_string(),
        nonce: n.to_vec(),
        ciphertext,
        has_name: !data.given_name.is_empty()
            || !data.family_name.is_empty()
            || !data.date_of_birth.is_empty(),
    }
}

/// Opens what [`seal`] sealed. Fails when the key is wrong (for example a
/// different person's) or anything was altered.
pub fn open(key: &DataKey, event_id: &str, sealed: &Sealed) -> Result<PersonalData, Error> {
    if sealed.nonce.len() != NONCE_LEN {
        return Err(Error::Internal("sealed data has a bad nonce".into()));
    }
    let pt = key
        .cipher()
        .decrypt(
            XNonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: event_id.as_bytes(),
            },
        )
        .map_err(|_| Error::Internal("sealed data does not open with this key".into()))?;
    PersonalData::decode(pt.as_slice())
        .map_err(|e| Error::Internal(format!("sealed data does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PersonalData {
        PersonalData {
            given_name: "Jo".into(),
            family_name: "Bloggs".into(),
            date_of_birth: "1985-03-02".into(),
            text: String::new(),
        }
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_event() {
        let key = DataKey::generate();
        let sealed = seal(&key, "pk1", "ev1", &data());
        assert_eq!(sealed.key_id, "pk1");
        let raw = [sealed.nonce.clone(), sealed.ciphertext.clone()].concat();
        assert!(!raw.windows(6).any(|w| w == b"Bloggs"));
        assert_eq!(open(&key, "ev1", &sealed).unwrap(), data());
        assert!(open(&DataKey::generate(), "ev1", &sealed).is_err());
        assert!(open(&key, "ev2", &sealed).is_err(), "bound to its event");
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(open(&key, "ev1", &tampered).is_err());
    }

    #[test]
    fn wrapped_keys_unwrap_only_under_the_same_secret_and_key_id() {
        let w1 = KeyWrapper::new(&HubSecret::from_bytes(&[1; 32]).unwrap());
        let w2 = KeyWrapper::new(&HubSecret::from_bytes(&[2; 32]).unwrap());
        let key = DataKey::generate();
        let wrapped = w1.wrap("pk1", &key);
        assert_eq!(w1.unwrap("pk1", &wrapped).unwrap(), key);
        assert!(w1.unwrap("pk2", &wrapped).is_err());
        assert!(w2.unwrap("pk1", &wrapped).is_err());
        assert!(w1.unwrap("pk1", &wrapped[..10]).is_err());
    }
}
