//! `custody-service`: commands from police custody suites (custody officers and criminal-justice drug workers): harm-reduction advice, officers' overdose training, custody workforce.
//!
//! The service adds only its RPC table ([`api`]) and its field rules
//! ([`rules`]); authentication, roles, the common field rules, pseudonyms,
//! sealing, publishing, health and metrics are shared (`hub-runtime`).
//!
//! # Layout
//! - [`rules`]: pure decide functions, one per RPC.
//! - [`api`]: the gRPC service, each RPC one pipeline call.
//! - [`run`]: start-up, used by `main` and by tests on port 0.

pub mod api;
pub mod rules;

use std::future::Future;

use hub_core::{auth::Agency, Error};
use hub_proto::custody::custody_service_server::CustodyServiceServer;
use hub_runtime::{agency::serve_agency, config::CommonArgs};
use tokio::net::TcpListener;

/// The binary's name, used for NATS and the ready line.
pub const NAME: &str = "custody-service";
/// Default listen address (contract section 1).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Connects, then serves on `listener` until `shutdown` resolves.
pub async fn run(
    args: CommonArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    serve_agency(
        Agency::Custody,
        NAME,
        args,
        listener,
        shutdown,
        |pipeline| CustodyServiceServer::new(api::CustodyApi::new(pipeline)),
    )
    .await
}
