//! What a stream message is to a projection: an event to apply, or a
//! message to park (kept aside, never blocking the stream). Pure, so that
//! the fuzz targets decode exactly as the consumer does.

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
