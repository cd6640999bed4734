//! What a stream message is to a projection: an event to apply, or a
//! message to park (kept aside, never blocking the stream); and its
//! [`Envelope`], what a projection can learn of it without decoding it.
//! Pure, so that the fuzz targets read messages exactly as the consumer
//! does.

use prost::Message;

use hub_proto::{events::Event, SCHEMA_VERSION};

/// What a message is to the projection.
pub enum Decoded {
    Event(Box<Event>),
    Parked(&'static str),
}

/// Undecodable, from a newer schema, or of an event type this version
/// does not know: parked, with the reason; otherwise the event.
pub fn decode(payload: &[u8]) -> Decoded {
    match Event::decode(payload) {
        Err(_) => Decoded::Parked("undecodable"),
        Ok(e) if e.schema_version > SCHEMA_VERSION => Decoded::Parked("newer schema"),
        Ok(e) if e.payload.is_none() => Decoded::Parked("unknown event type"),
        Ok(e) => Decoded::Event(Box::new(e)),
    }
}

/// A message offered first to `take` by its envelope, when it has one of
/// this schema or older: `None` when `take` applied it (returned `true`);
/// otherwise the message as [`decode`] has it.
pub fn offer<E>(
    payload: &[u8],
    take: impl FnOnce(&Envelope<'_>) -> Result<bool, E>,
) -> Result<Option<Decoded>, E> {
    if let Some(env) = Envelope::read(payload).filter(|e| e.schema_version <= SCHEMA_VERSION) {
        if take(&env)? {
            return Ok(None);
        }
    }
    Ok(Some(decode(payload)))
}

/// The field number of `Event.payload`'s needle exchange
/// (`needle_exchange_recorded = 120` in `hub/events/v1/events.proto`; a
/// unit test holds the two together).
pub const NEEDLE_EXCHANGE_RECORDED: u32 = 120;

/// What a message's envelope says, read without decoding the event: the
/// fields a projection may need to know that an event asks little of it,
/// borrowed from the message (nothing allocated, the payload's body and
/// every other field skipped).
///
/// Why: two thirds of a national year are needle exchanges. The training
/// projection does nothing with one, and the pick-up projection only
/// notes when its client's key was last named (retention), yet decoding
/// each whole (a dozen strings, the payload) and dropping it again was a
/// large share of their replay (BENCHMARKS.md, "Needle exchanges read from
/// their envelope").
///
/// It reads the top level of the message's wire format as the full decode
/// does (a field given twice: the last; `linked_person_keys`: all), checks
/// the strings it keeps are UTF-8 and does not look inside fields it does
/// not keep. `None` when that level does not parse or a kept field is not
/// what the schema says: the full decode then decides (and parks it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub schema_version: u32,
    pub partnership_code: &'a str,
    pub person_key: &'a str,
    /// The first two different `linked_person_keys`: enough to tell how
    /// many people keys the event names (see [`Envelope::names_one_key_at_most`]).
    linked: [Option<&'a str>; 2],
    /// `occurred_at`'s seconds, when the field is present.
    pub occurred_at: Option<i64>,
    /// `recorded_at`'s seconds, when the field is present.
    pub recorded_at: Option<i64>,
    /// Whether anything is sealed (`sealed` present).
    pub sealed: bool,
    /// The field number of the payload (the last present, as decoding
    /// takes a `oneof`), `None` without one.
    pub payload: Option<u32>,
}

impl<'a> Envelope<'a> {
    /// The envelope of the message `bytes`, or `None` (see [`Envelope`]).
    pub fn read(bytes: &'a [u8]) -> Option<Self> {
        use prost::encoding::{decode_key, decode_varint, WireType};

        let mut buf = bytes;
        let mut env = Envelope::default();
        while !buf.is_empty() {
            let (field, wire) = decode_key(&mut buf).ok()?;
            match (field, wire) {
                (3, WireType::Varint) => env.schema_version = decode_varint(&mut buf).ok()? as u32,
                (4, WireType::LengthDelimited) => {
                    env.occurred_at = Some(seconds(delimited(&mut buf)?, env.occurred_at)?)
                }
                (5, WireType::LengthDelimited) => {
                    env.recorded_at = Some(seconds(delimited(&mut buf)?, env.recorded_at)?)
                }
                (8, WireType::LengthDelimited) => env.partnership_code = text(&mut buf)?,
                (11, WireType::LengthDelimited) => env.person_key = text(&mut buf)?,
                (13, WireType::LengthDelimited) => {
                    let key = Some(text(&mut buf)?);
                    match env.linked {
                        [None, _] => env.linked[0] = key,
                        [Some(_), None] if env.linked[0] != key => env.linked[1] = key,
                        _ => {}
                    }
                }
                (14, WireType::LengthDelimited) => {
                    delimited(&mut buf)?;
                    env.sealed = true;
                }
                // Every field from 100 is the payload's (a unit test holds
                // the schema to it).
                (100.., WireType::LengthDelimited) => {
                    delimited(&mut buf)?;
                    env.payload = Some(field);
                }
                // A field the envelope keeps, with another wire type: the
                // full decode refuses it.
                (3..=5 | 8 | 11 | 13 | 14 | 100.., _) => return None,
                (_, wire) => skip(&mut buf, wire)?,
            }
        }
        Some(env)
    }

    /// Whether the event names one person key at most, as `identity`
    /// counts them: none without `person_key`, else it and every linked
    /// key different from it.
    pub fn names_one_key_at_most(&self) -> bool {
        self.person_key.is_empty()
            || match self.linked {
                [None, _] => true,
                [Some(only), None] => only == self.person_key,
                [Some(_), Some(_)] => false,
            }
    }

    /// Whether the event is a needle exchange.
    pub fn is_needle_exchange(&self) -> bool {
        self.payload == Some(NEEDLE_EXCHANGE_RECORDED)
    }
}

/// The bytes of a length-delimited field, advancing past them.
fn delimited<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(prost::encoding::decode_varint(buf).ok()?).ok()?;
    if len > buf.len() {
        return None;
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Some(field)
}

/// A string field's text.
fn text<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    std::str::from_utf8(delimited(buf)?).ok()
}

/// Past a field the envelope does not keep.
fn skip(buf: &mut &[u8], wire: prost::encoding::WireType) -> Option<()> {
    use prost::encoding::WireType;
    let width = match wire {
        WireType::Varint => return prost::encoding::decode_varint(buf).ok().map(drop),
        WireType::LengthDelimited => return delimited(buf).map(drop),
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    *buf = buf.get(width..)?;
    Some(())
}

/// The seconds of a `google.protobuf.Timestamp`, merged into `before` (a
/// field given twice merges, as decoding does).
fn seconds(mut buf: &[u8], before: Option<i64>) -> Option<i64> {
    use prost::encoding::{decode_key, decode_varint, WireType};
    let mut seconds = before.unwrap_or(0);
    while !buf.is_empty() {
        match decode_key(&mut buf).ok()? {
            (1, WireType::Varint) => seconds = decode_varint(&mut buf).ok()? as i64,
            (2, WireType::Varint) => drop(decode_varint(&mut buf).ok()?),
            (1 | 2, _) => return None,
            (_, wire) => skip(&mut buf, wire)?,
        }
    }
    Some(seconds)
}

/// Events on both sides of what a projection's envelope function may take
/// (needle exchanges and others; one key, two, the same twice, none;
/// sealed or not; with and without times and partnership), for the
/// projections' tests that it writes what the full apply writes.
pub fn envelope_cases() -> Vec<Event> {
    use hub_proto::events::{
        event::Payload, NaloxoneSupplied, NeedleExchangeRecorded, OverdoseTrainingRecorded, Sealed,
    };
    let keys: [&[&str]; 6] = [
        &[],
        &["k1"],
        &["k1", "k1"],
        &["k1", "k2"],
        &["k9"],
        &["", "k1"],
    ];
    let sealed = [
        None,
        Some(Sealed::default()),
        Some(Sealed {
            has_name: true,
            ..Default::default()
        }),
    ];
    let payloads = [
        Some(Payload::NeedleExchangeRecorded(NeedleExchangeRecorded {
            pharmacy_code: "FA123".into(),
            packs_given: 3,
            returns: 1,
        })),
        Some(Payload::NaloxoneSupplied(NaloxoneSupplied {
            pharmacy_code: "FA123".into(),
            kits: 2,
        })),
        Some(Payload::OverdoseTrainingRecorded(
            OverdoseTrainingRecorded {
                audience: 1,
                naloxone_kit_supplied: true,
                ..Default::default()
            },
        )),
        None,
    ];
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    let mut cases = Vec::new();
    for keys in keys {
        for sealed in &sealed {
            for payload in &payloads {
                for (occurred_at, recorded_at) in [
                    (at(1_790_000_000), None),
                    (at(1_790_000_000), at(1_790_086_400)),
                    (None, None),
                ] {
                    for partnership in ["bradford", ""] {
                        cases.push(Event {
                            event_id: format!("case{}", cases.len()),
                            schema_version: SCHEMA_VERSION,
                            partnership_code: partnership.into(),
                            person_key: keys.first().copied().unwrap_or_default().into(),
                            linked_person_keys: keys
                                .iter()
                                .skip(1)
                                .map(|k| k.to_string())
                                .collect(),
                            occurred_at,
                            recorded_at,
                            sealed: sealed.clone(),
                            payload: payload.clone(),
                            ..Default::default()
                        });
                    }
                }
            }
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    use hub_proto::events::{
        event::Payload, ConsentRecorded, Event, NaloxoneSupplied, NeedleExchangeRecorded, Sealed,
    };

    use super::*;
    use crate::identity::Ref;

    fn random_event(rng: &mut StdRng) -> Event {
        let keys = ["", "k1", "k2", "k3"];
        let key = |rng: &mut StdRng| keys[rng.gen_range(0..keys.len())].to_string();
        let at = |rng: &mut StdRng| {
            rng.gen_bool(0.7).then(|| prost_types::Timestamp {
                seconds: rng.gen_range(-5..2_000_000_000),
                nanos: rng.gen_range(0..1_000),
            })
        };
        Event {
            event_id: "an event".into(),
            event_type: "whatever".into(),
            schema_version: rng.gen_range(0..3),
            occurred_at: at(rng),
            recorded_at: at(rng),
            partnership_code: ["", "E08000032", "bradford"][rng.gen_range(0..3)].into(),
            person_key: key(rng),
            linked_person_keys: (0..rng.gen_range(0..4)).map(|_| key(rng)).collect(),
            sealed: rng.gen_bool(0.2).then(|| Sealed {
                has_name: rng.gen(),
                ..Default::default()
            }),
            client_key: key(rng),
            payload: match rng.gen_range(0..4) {
                0 => None,
                1 => Some(Payload::NaloxoneSupplied(NaloxoneSupplied {
                    pharmacy_code: "FA123".into(),
                    kits: 2,
                })),
                2 => Some(Payload::ConsentRecorded(ConsentRecorded::default())),
                _ => Some(Payload::NeedleExchangeRecorded(NeedleExchangeRecorded {
                    pharmacy_code: "FA123".into(),
                    packs_given: rng.gen_range(0..5),
                    returns: 1,
                })),
            },
            ..Default::default()
        }
    }

    /// What an envelope says, owned, to compare.
    #[derive(Debug, PartialEq)]
    struct Said {
        schema: u32,
        partnership: String,
        person: String,
        times: (Option<i64>, Option<i64>),
        sealed: bool,
        needle_exchange: bool,
        one_key_at_most: bool,
    }

    /// What the envelope should say of `bytes`, from the full decode.
    fn expected(bytes: &[u8]) -> Said {
        let e = Event::decode(bytes).expect("a valid message");
        Said {
            schema: e.schema_version,
            partnership: e.partnership_code.clone(),
            person: e.person_key.clone(),
            times: (
                e.occurred_at.map(|t| t.seconds),
                e.recorded_at.map(|t| t.seconds),
            ),
            sealed: e.sealed.is_some(),
            needle_exchange: matches!(e.payload, Some(Payload::NeedleExchangeRecorded(_))),
            one_key_at_most: Ref::of_event(&e).keys.len() < 2,
        }
    }

    #[test]
    fn the_envelope_says_what_the_full_decode_says() {
        let mut rng = StdRng::seed_from_u64(17);
        for _ in 0..5_000 {
            let mut bytes = random_event(&mut rng).encode_to_vec();
            // Two messages one after the other decode as one, merged: a
            // field given twice, the payload replaced, keys appended.
            if rng.gen_bool(0.3) {
                bytes.extend(random_event(&mut rng).encode_to_vec());
            }
            let env = Envelope::read(&bytes).expect("a valid message has an envelope");
            let got = Said {
                schema: env.schema_version,
                partnership: env.partnership_code.to_string(),
                person: env.person_key.to_string(),
                times: (env.occurred_at, env.recorded_at),
                sealed: env.sealed,
                needle_exchange: env.is_needle_exchange(),
                one_key_at_most: env.names_one_key_at_most(),
            };
            assert_eq!(got, expected(&bytes));
        }
    }

    #[test]
    fn a_message_that_does_not_parse_has_no_envelope() {
        let mut rng = StdRng::seed_from_u64(18);
        for _ in 0..500 {
            let bytes = random_event(&mut rng).encode_to_vec();
            // Cut anywhere: what is left has an envelope only where a whole
            // field ends, and then decodes in full as well.
            for cut in 0..bytes.len() {
                if Envelope::read(&bytes[..cut]).is_some() {
                    assert!(Event::decode(&bytes[..cut]).is_ok(), "cut at {cut}");
                }
            }
        }
        // A kept field of the wrong wire type, a string that is not UTF-8.
        assert_eq!(Envelope::read(&[8 << 3, 1]), None);
        assert_eq!(Envelope::read(&[11 << 3 | 2, 1, 0xff]), None);
        assert!(Event::decode(&[11 << 3 | 2, 1, 0xff][..]).is_err());
    }

    #[test]
    fn every_event_field_from_100_is_the_payload_and_120_is_the_needle_exchange() {
        let set = prost_types::FileDescriptorSet::decode(hub_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let event = set
            .file
            .iter()
            .filter(|f| f.package() == "hub.events.v1")
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == "Event")
            .expect("hub.events.v1.Event");
        let payload = event
            .oneof_decl
            .iter()
            .position(|o| o.name() == "payload")
            .expect("the payload oneof") as i32;
        for field in &event.field {
            if field.number() >= 100 {
                assert_eq!(field.oneof_index, Some(payload), "{}", field.name());
            }
        }
        let nx = event
            .field
            .iter()
            .find(|f| f.name() == "needle_exchange_recorded")
            .expect("the needle exchange");
        assert_eq!(nx.number() as u32, NEEDLE_EXCHANGE_RECORDED);
    }
}
