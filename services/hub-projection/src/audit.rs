//! The audit trail of person-level reads: what each record holds, and the
//! chain that makes the trail tamper-evident.
//!
//! # Person keys
//! The person keys an audited read returned are kept as each hex
//! `person_key`'s 16 bytes, one after another. A pick-up list of a thousand
//! people is 16 KB in the trail rather than 34, and the audit record is
//! written before every list leaves.
//!
//! # The chain
//! Anyone holding NATS credentials that may publish under `hub.audit.` could
//! add a record, and an operator with stream rights could delete one. So
//! each partnership's records form a chain: a record carries its place
//! (`chain_link`, 1 for the first), the previous record's MAC, and its own
//! MAC, an HMAC-SHA256 under a key derived from the hub secret of the whole
//! event encoded with `mac` empty. Forging a record needs the hub secret;
//! removing or altering one breaks the chain where it was, and
//! [`verify`] names that place. The writer publishes each record only if
//! the subject's last message is still the one it chained to
//! (`Nats-Expected-Last-Subject-Sequence`), so two projection instances
//! cannot fork the chain.

use hmac::{Hmac, Mac};
use prost::Message;
use sha2::Sha256;

#[cfg(test)]
use hub_proto::events::PersonLevelRead;
use hub_proto::events::{event::Payload, Event};

/// Packs hex person keys; a key that is not 32 hex digits (none the hub
/// makes) is kept as its own bytes behind a zero length marker would be
/// ambiguous, so it is refused instead.
pub fn pack(keys: &[String]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(keys.len() * 16);
    for k in keys {
        let bytes = hex::decode(k).map_err(|_| format!("not a person key: {k:?}"))?;
        if bytes.len() != 16 {
            return Err(format!("not a person key: {k:?}"));
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The hex person keys of a packed list (a trailing partial key is
/// ignored: the trail never holds one).
pub fn unpack(packed: &[u8]) -> Vec<String> {
    packed.chunks_exact(16).map(hex::encode).collect()
}

/// The MAC key of the audit chain, derived from the hub secret.
pub fn chain_key(secret: &hub_core::secret::HubSecret) -> [u8; 32] {
    secret.derive("audit-chain")
}

/// The end of a partnership's chain: the last link written, its MAC, and
/// the stream sequence of its message (0 while the trail is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub link: u64,
    pub mac: Vec<u8>,
    pub sequence: u64,
}

/// HMAC-SHA256 of `bytes` under `key`.
fn hmac(key: &[u8; 32], bytes: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(bytes);
    mac.finalize().into_bytes().to_vec()
}

/// The MAC of `event` (its `mac` field ignored).
pub fn mac_of(key: &[u8; 32], event: &Event) -> Vec<u8> {
    match &event.payload {
        Some(Payload::PersonLevelRead(r)) if !r.mac.is_empty() => {
            let mut unsigned = event.clone();
            if let Some(Payload::PersonLevelRead(r)) = unsigned.payload.as_mut() {
                r.mac.clear();
            }
            hmac(key, &unsigned.encode_to_vec())
        }
        _ => hmac(key, &event.encode_to_vec()),
    }
}

/// Chains `event` (a `PersonLevelRead`) after `head`: sets its link, the
/// previous MAC and its own MAC. The new head, once it is stored at
/// `sequence`, is `Head { link, mac, sequence }` of the returned pair.
pub fn chain(key: &[u8; 32], head: &Head, event: &mut Event) -> (u64, Vec<u8>) {
    let link = head.link + 1;
    if let Some(Payload::PersonLevelRead(r)) = event.payload.as_mut() {
        r.chain_link = link;
        r.prev_mac = head.mac.clone();
        r.mac.clear();
    }
    let mac = hmac(key, &event.encode_to_vec());
    if let Some(Payload::PersonLevelRead(r)) = event.payload.as_mut() {
        r.mac = mac.clone();
    }
    (link, mac)
}

/// The head a stored record leaves, if it is a chained record.
pub fn head_after(event: &Event, sequence: u64) -> Head {
    match &event.payload {
        Some(Payload::PersonLevelRead(r)) if r.chain_link > 0 => Head {
            link: r.chain_link,
            mac: r.mac.clone(),
            sequence,
        },
        // A record from before the chain: the chain starts after it.
        _ => Head {
            sequence,
            ..Head::default()
        },
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub records: u64,
    pub chained: u64,
    pub before_chain: u64,
    /// The first break: the stream sequence where it shows, the link
    /// expected there, and what is wrong.
    pub broken: Option<(u64, u64, String)>,
}

/// Checks a partnership's trail, in stream order: `(sequence, message
/// body)` of every message on its `hub.audit.<code>` subject. Stops at the
/// first break. `expected_head`, when the writer knows it, catches records
/// removed from the end.
pub fn verify(
    key: &[u8; 32],
    records: impl IntoIterator<Item = (u64, Vec<u8>)>,
    expected_head: Option<&Head>,
) -> Verification {
    let mut v = Verification::default();
    let mut head = Head::default();
    for (sequence, body) in records {
        v.records += 1;
        let fail = |problem: String| Some((sequence, head.link + 1, problem));
        let event = match Event::decode(body.as_slice()) {
            Ok(e) => e,
            Err(_) => {
                v.broken = fail("the message is not an audit record".into());
                return v;
            }
        };
        let Some(Payload::PersonLevelRead(read)) = &event.payload else {
            v.broken = fail("the message is not an audit record".into());
            return v;
        };
        if read.chain_link == 0 && read.mac.is_empty() {
            if v.chained == 0 {
                v.before_chain += 1;
                head.sequence = sequence;
                continue;
            }
            v.broken = fail("a record outside the chain (added without the chain key)".into());
            return v;
        }
        if mac_of(key, &event) != read.mac {
            v.broken = fail(
                "the record's MAC does not match: it was altered, or forged without the chain key"
                    .into(),
            );
            return v;
        }
        if read.chain_link != head.link + 1 {
            v.broken = if read.chain_link > head.link + 1 {
                fail(format!(
                    "link{} {}{} missing: removed from the trail",
                    if read.chain_link > head.link + 2 {
                        "s"
                    } else {
                        ""
                    },
                    head.link + 1,
                    if read.chain_link > head.link + 2 {
                        format!("–{}", read.chain_link - 1)
                    } else {
                        String::new()
                    },
                ))
            } else {
                fail(format!(
                    "link {} appears again after link {}",
                    read.chain_link, head.link
                ))
            };
            return v;
        }
        if read.prev_mac != head.mac {
            v.broken = fail("the record does not follow the one before it".into());
            return v;
        }
        v.chained += 1;
        head = head_after(&event, sequence);
    }
    if let Some(expected) = expected_head {
        if expected.link > head.link {
            v.broken = Some((
                expected.sequence,
                head.link + 1,
                format!(
                    "the trail ends at link {}, but link {} was written (at stream sequence {}): records were removed from its end",
                    head.link, expected.link, expected.sequence
                ),
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_at_16_bytes_each() {
        let keys = vec![
            "00112233445566778899aabbccddeeff".to_string(),
            "ffeeddccbbaa99887766554433221100".to_string(),
        ];
        let packed = pack(&keys).unwrap();
        assert_eq!(packed.len(), 32);
        assert_eq!(unpack(&packed), keys);
        assert!(pack(&["nhs".to_string()]).is_err());
        assert!(unpack(&[]).is_empty());
    }

    fn read(user: &str) -> Event {
        Event {
            event_id: format!("ev-{user}"),
            actor_user_id: user.into(),
            partnership_code: "bradford".into(),
            payload: Some(Payload::PersonLevelRead(PersonLevelRead {
                rpc: "ListPickups".into(),
                rows: 1,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// A chain of `n` records at sequences 10, 20, ...
    fn trail(key: &[u8; 32], n: u64) -> Vec<(u64, Vec<u8>)> {
        let mut head = Head::default();
        (1..=n)
            .map(|i| {
                let mut e = read(&format!("u{i}"));
                let (link, mac) = chain(key, &head, &mut e);
                head = Head {
                    link,
                    mac,
                    sequence: i * 10,
                };
                (i * 10, e.encode_to_vec())
            })
            .collect()
    }

    #[test]
    fn an_untouched_trail_verifies() {
        let key = [7; 32];
        let v = verify(&key, trail(&key, 5), None);
        assert_eq!((v.records, v.chained, v.broken), (5, 5, None));
    }

    #[test]
    fn a_removed_record_is_named() {
        let key = [7; 32];
        let mut t = trail(&key, 5);
        t.remove(2); // link 3, at sequence 30
        let v = verify(&key, t, None);
        let (seq, link, problem) = v.broken.unwrap();
        assert_eq!((seq, link), (40, 3));
        assert!(problem.contains("link 3 missing"), "{problem}");
    }

    #[test]
    fn records_removed_from_the_end_are_caught_against_the_writers_head() {
        let key = [7; 32];
        let t = trail(&key, 5);
        let head = head_after(&Event::decode(t[4].1.as_slice()).unwrap(), 50);
        let v = verify(&key, t[..3].to_vec(), Some(&head));
        assert!(v.broken.unwrap().2.contains("ends at link 3"));
        assert_eq!(verify(&key, t, Some(&head)).broken, None);
    }

    #[test]
    fn altered_and_forged_records_break_the_chain() {
        let key = [7; 32];
        let mut t = trail(&key, 3);
        let mut e = Event::decode(t[1].1.as_slice()).unwrap();
        e.actor_user_id = "someone-else".into();
        t[1].1 = e.encode_to_vec();
        let v = verify(&key, t, None);
        assert_eq!(v.broken.as_ref().unwrap().0, 20);
        assert!(v.broken.unwrap().2.contains("MAC does not match"));
        // Forged with a key of its own: the MAC does not match either.
        let mut t = trail(&key, 2);
        let head = head_after(&Event::decode(t[1].1.as_slice()).unwrap(), 20);
        let mut forged = read("intruder");
        chain(&[9; 32], &head, &mut forged);
        t.push((30, forged.encode_to_vec()));
        assert_eq!(verify(&key, t, None).broken.unwrap().0, 30);
        // An unchained record after the chain began.
        let mut t = trail(&key, 2);
        t.push((30, read("plain").encode_to_vec()));
        assert!(verify(&key, t, None)
            .broken
            .unwrap()
            .2
            .contains("outside the chain"));
    }

    #[test]
    fn records_from_before_the_chain_are_counted_not_failed() {
        let key = [7; 32];
        let mut t = vec![(1, read("old").encode_to_vec())];
        t.extend(trail(&key, 2));
        let v = verify(&key, t, None);
        assert_eq!((v.before_chain, v.chained, v.broken), (1, 2, None));
    }
}
