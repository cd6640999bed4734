//! What every projection shares: people across identifiers, the
//! exactly-once consumer, read-your-writes, status, rebuilds, and serving.
//!
//! A projection crate adds its pure apply function and its query service.
//!
//! # Layout
//! - [`identity`]: who is whom, per partnership, undoable (facts refolded).
//! - [`audit`]: the audit trail's records (person keys packed) and its
//!   tamper-evident chain; [`trail`] writes and reads it.
//! - [`message`]: a stream message as an event to apply or one to park.
//! - [`source`]: the stream as the consumer reads it (JetStream, or in
//!   memory for tests).
//! - [`consumer`]: the durable consumer, exactly-once in effect; parking.
//! - [`runtime`]: the engine (one task owning the store, rebuilds, the live
//!   consumer; a handle to ask it) and
//!   the projection serving on it (callers, `min_sequence`, the audit).
//! - [`status`]: the status service (applied sequence, lag, rebuilds).
//! - [`serve`]: start-up shared by every projection binary.
//!
//! Everything but `identity` and `audit` needs the `server` feature (on by default).

pub mod audit;
#[cfg(feature = "server")]
pub mod consumer;
pub mod identity;
pub mod message;
#[cfg(feature = "server")]
pub mod runtime;
#[cfg(feature = "server")]
pub mod source;
#[cfg(feature = "server")]
pub mod status;
#[cfg(feature = "server")]
pub mod trail;

#[cfg(feature = "server")]
mod serving;
#[cfg(feature = "server")]
pub use serving::*;
