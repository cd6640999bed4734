//! The hub's domain: everything that decides, with no network or disk I/O
//! except reading the few files named in the configuration at start-up.
//!
//! Every agency service runs the same pipeline (authenticate → authorise →
//! validate → pseudonymise and seal → publish → acknowledge); this crate holds
//! the pure steps of it so that they can be tested without a server, and
//! `hub-runtime` holds the I/O steps.
//!
//! # Layout
//! - [`command`]: what a command's rules decide, and shared rule helpers.
//! - [`error`]: the one error type, sorted by what the caller does next.
//! - [`validate`]: the contract's field rules, collected per field.
//! - [`person`]: PersonRef rules and normalised identifiers.
//! - [`pseudonym`]: keyed hashes (person keys, staff keys, request digests).
//! - [`sealing`]: per-person data keys and the sealing of personal data.
//! - [`secret`]: the hub secret and the keys derived from it.
//! - [`auth`]: callers, tokens, roles and what each role may call.
//! - [`oidc`]: access tokens (JWTs) from an identity provider.
//! - [`partnerships`]: the partnership register.
//! - [`time`]: Europe/London days and financial years.

pub mod auth;
pub mod command;
pub mod error;
pub mod oidc;
pub mod partnerships;
pub mod person;
pub mod pseudonym;
pub mod sealing;
pub mod secret;
pub mod stats;
pub mod synthetic;
pub mod time;
pub mod validate;

pub use error::{Error, FieldViolation};
