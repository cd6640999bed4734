//! `pickup-projection`: builds the prison-gate pick-up list that CARAT and
//! DIP workers act on, from the event stream into RocksDB, and serves it.
//!
//! # Layout
//! - [`model`]: pure apply and view functions (episodes, checklist, alerts,
//!   continuity of care).
//! - [`api`]: `PickupListService` (the list, its live watch, its summary);
//!   every person-level read is audited.
//! - [`admin`]: information governance: erasure, retention, the audit
//!   trail (who saw whom, its verification) and key rotation.
//! - [`erasure`]: an erasure that holds (request or retention).
//! - [`retention`]: when each person was last named; who has expired.
//! - [`run`]: start-up, used by `main` and by tests on port 0; the consumer,
//!   status and rebuilds are `hub-projection`'s.

#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod erasure;
pub mod model;
pub mod retention;

pub const NAME: &str = "pickup-projection";
/// The layout of this projection's store. Stores of an older layout are
/// rebuilt from the stream when the projection starts. 4: continuity rows
/// carry the funnel's stages (flagged, triaged, appointment, met at the
/// gate) and the by-date index holds the row.
pub const SCHEMA: u32 = 4;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50061";

#[cfg(feature = "server")]
mod serving;
#[cfg(feature = "server")]
pub use serving::run;
