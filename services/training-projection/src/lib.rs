//! `training-projection`: builds and serves the overdose-training counts
//! partnership dashboards show (people and staff trained, headcounts,
//! naloxone kits), per financial year and quarter.
//!
//! # Layout
//! - [`model`]: pure apply and tally functions.
//! - [`api`]: the training counts service.
//! - [`run`]: start-up; the consumer, status and rebuilds are
//!   `hub-projection`'s.

#[cfg(feature = "server")]
pub mod api;
pub mod model;

pub const NAME: &str = "training-projection";
/// The layout of this projection's store: 2 keeps counters of distinct
/// people trained (1 counted them by scanning). Stores of an older layout
/// are rebuilt from the stream when the projection starts.
pub const SCHEMA: u32 = 3;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50062";

#[cfg(feature = "server")]
mod serving;
#[cfg(feature = "server")]
pub use serving::run;
