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

/// Wraps and unwraps data keys under one version of the key-encryption key
/// (KEK).
///
/// Version 0 is derived from the hub secret itself (every data key was
/// wrapped under it before versions existed); its wrapped keys are
/// `nonce || ciphertext`, bound to the key id. Later versions are random
/// keys kept in the key store, themselves wrapped under a key derived from
/// the secret ([`Keyring`]); their wrapped keys are
/// `0x01 || version (u32, big-endian) || nonce || ciphertext`, bound to the
/// key id and the version. Retiring a version destroys its key, so nothing
/// still wrapped under it (an old backup's copy) opens again.
#[derive(Clone)]
pub struct KeyWrapper {
    version: u32,
    kek: [u8; 32],
}

impl std::fmt::Debug for KeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyWrapper(v{}, <redacted>)", self.version)
    }
}

/// The first byte of a data key wrapped under a version above 0.
const VERSIONED: u8 = 1;
/// Length of a data key wrapped under version 0.
const LEGACY_LEN: usize = NONCE_LEN + 32 + 16;

/// The KEK version a wrapped data key was wrapped under.
pub fn wrapped_version(wrapped: &[u8]) -> Result<u32, Error> {
    match wrapped.len() {
        LEGACY_LEN => Ok(0),
        n if n == LEGACY_LEN + 5 && wrapped[0] == VERSIONED => Ok(u32::from_be_bytes(
            wrapped[1..5].try_into().expect("four bytes"),
        )),
        _ => Err(Error::internal("wrapped data key has an unknown format")),
    }
}

fn aead_seal(key: &[u8; 32], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    let n = nonce();
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&n), Payload { msg, aad })
        .expect("XChaCha20-Poly1305 encryption cannot fail for small inputs");
    [n.as_slice(), &ct].concat()
}

fn aead_open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() <= NONCE_LEN {
        return None;
    }
    let (n, ct) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(n), Payload { msg: ct, aad })
        .ok()
}

impl KeyWrapper {
    /// Version 0, derived from the hub secret.
    pub fn new(secret: &HubSecret) -> Self {
        Self {
            version: 0,
            kek: secret.derive("data-key-wrapping"),
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Wraps `key`, bound to `key_id` (and the version).
    pub fn wrap(&self, key_id: &str, key: &DataKey) -> Vec<u8> {
        if self.version == 0 {
            return aead_seal(&self.kek, &key.0, key_id.as_bytes());
        }
        let v = self.version.to_be_bytes();
        let aad = [key_id.as_bytes(), b"\0", &v].concat();
        [&[VERSIONED][..], &v, &aead_seal(&self.kek, &key.0, &aad)].concat()
    }

    pub fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, Error> {
        let version = wrapped_version(wrapped)?;
        if version != self.version {
            return Err(Error::internal(format!(
                "data key wrapped under version {version}, not {}",
                self.version
            )));
        }
        let pt = if version == 0 {
            aead_open(&self.kek, wrapped, key_id.as_bytes())
        } else {
            let v = version.to_be_bytes();
            let aad = [key_id.as_bytes(), b"\0", &v].concat();
            aead_open(&self.kek, &wrapped[5..], &aad)
        }
        .ok_or_else(|| Error::internal("data key does not unwrap under this key-encryption key"))?;
        let bytes: [u8; 32] = pt
            .try_into()
            .map_err(|_| Error::internal("data key has the wrong length"))?;
        Ok(DataKey(bytes))
    }
}

/// Makes and opens the KEK versions above 0: each a random key, stored
/// wrapped under a key derived from the hub secret (bound to its version).
#[derive(Clone)]
pub struct Keyring {
    master: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    pub fn new(secret: &HubSecret) -> Self {
        Self {
            master: secret.derive("kek-wrapping"),
        }
    }

    /// A new version: its wrapper and its key as stored.
    pub fn generate(&self, version: u32) -> (KeyWrapper, Vec<u8>) {
        let mut kek = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut kek);
        let stored = aead_seal(&self.master, &kek, &version.to_be_bytes());
        (KeyWrapper { version, kek }, stored)
    }

    /// The wrapper of a stored version.
    pub fn open(&self, version: u32, stored: &[u8]) -> Result<KeyWrapper, Error> {
        let kek: [u8; 32] = aead_open(&self.master, stored, &version.to_be_bytes())
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                Error::internal(format!(
                    "key-encryption key version {version} does not open under this hub secret"
                ))
            })?;
        Ok(KeyWrapper { version, kek })
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
        return Err(Error::internal("sealed data has a bad nonce"));
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
        .map_err(|_| Error::internal("sealed data does not open with this key"))?;
    PersonalData::decode(pt.as_slice())
        .map_err(|e| Error::internal_from("sealed data does not decode", e))
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
        assert_eq!(wrapped_version(&wrapped).unwrap(), 0);
    }

    #[test]
    fn versions_wrap_apart_and_open_only_from_their_stored_key() {
        let secret = HubSecret::from_bytes(&[1; 32]).unwrap();
        let ring = Keyring::new(&secret);
        let (v2, stored) = ring.generate(2);
        let key = DataKey::generate();
        let wrapped = v2.wrap("pk1", &key);
        assert_eq!(wrapped_version(&wrapped).unwrap(), 2);
        let reopened = ring.open(2, &stored).unwrap();
        assert_eq!(reopened.unwrap("pk1", &wrapped).unwrap(), key);
        assert!(
            reopened.unwrap("pk2", &wrapped).is_err(),
            "bound to its key id"
        );
        assert!(ring.open(3, &stored).is_err(), "bound to its version");
        assert!(KeyWrapper::new(&secret).unwrap("pk1", &wrapped).is_err());
        let other = Keyring::new(&HubSecret::from_bytes(&[2; 32]).unwrap());
        assert!(
            other.open(2, &stored).is_err(),
            "only under the same secret"
        );
        // A different version's key never opens it.
        let (v3, _) = ring.generate(3);
        assert!(v3.unwrap("pk1", &wrapped).is_err());
    }
}
