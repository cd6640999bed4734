//! `activity-projection`: builds and serves the harm-reduction activity
//! partnership dashboards show: needle exchange (reach, returns,
//! out-of-hours access), custody advice, referrals from every agency and
//! whether they reached treatment within 28 days, ambulance overdose
//! attendances and police-attendance protocols, and naloxone kits, per
//! financial year and quarter. These are what the 2006/07 review scored
//! weakest (criteria 8 and 9), and what the agencies record most.
//!
//! # Layout
//! - [`model`]: pure apply and tally functions.
//! - [`calendar`]: office hours and England's bank holidays.
//! - [`report`]: a reply as JSON, as a table, as CSV (for hubctl and the
//!   dashboard).
//! - [`national`]: the national comparison, put together (pure).
//! - [`api`]: the activity service.
//! - [`run`]: start-up; the consumer, status and rebuilds are
//!   `hub-projection`'s.

#[cfg(feature = "server")]
pub mod api;
pub mod calendar;
pub mod model;
pub mod national;
pub mod report;

pub const NAME: &str = "activity-projection";
/// The layout of this projection's store; a store of an older layout is
/// rebuilt from the stream at start. 2: a year's counts of events are the
/// sum of its quarters' (1 kept them for the year too).
pub const SCHEMA: u32 = 2;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50063";

#[cfg(feature = "server")]
mod serving;
#[cfg(feature = "server")]
pub use serving::{run, Config};
