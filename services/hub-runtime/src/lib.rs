//! The hub's I/O, shared by every service: the event log on JetStream, the
//! key store for personal-data keys, the command pipeline, and gRPC serving
//! (reflection, health, graceful shutdown).
//!
//! The decisions themselves (field rules, roles, pseudonyms, sealing) are
//! pure and live in `hub-core`; this crate runs them against the network.
//!
//! # Layout
//! - [`agency`]: what every agency service runs around its RPC table, and
//!   the binaries' `main`.
//! - [`prometheus`]: Prometheus metrics over HTTP.
//! - [`config`]: the settings every service reads (`HUB_*`, flags override).
//! - [`authn`]: who is calling: the tokens file and an identity
//!   provider's keys, reloaded on SIGHUP.
//! - [`tls`]: TLS on every listener and to every https:// address.
//! - [`eventlog`]: the HUB_EVENTS stream: create or check, publish, read.
//! - [`keystore`]: per-person data keys in a JetStream KV bucket.
//! - [`keyservice`]: the `key-service` binary, the one creator of data keys.
//! - [`pipeline`]: authenticate → authorise → validate → pseudonymise and
//!   seal → publish → acknowledge, for every command of every agency.
//! - [`server`]: tonic server with reflection, health and drain on shutdown.
//! - [`limit`]: the 64 KiB request limit (`RESOURCE_EXHAUSTED`).
//! - [`deadline`]: a server-side deadline on every call
//!   (`DEADLINE_EXCEEDED`).
//! - [`quota`]: a cap on each caller's open live streams.
//! - [`shutdown`]: SIGINT/SIGTERM handling.
//! - [`telemetry`]: tracing set-up.
//! - [`error`]: the one mapping from errors to gRPC statuses.

pub mod agency;
pub mod authn;
pub mod config;
pub mod deadline;
pub mod error;
pub mod eventlog;
pub mod keyservice;
pub mod keystore;
pub mod ledger;
pub mod limit;
pub mod pipeline;
pub mod prometheus;
pub mod quota;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use error::ApiError;
