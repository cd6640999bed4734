//! `ambulance-service`: commands from ambulance trusts: paramedics' naloxone training, paramedic workforce, overdose attendances, police attendance protocols.
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
use hub_proto::ambulance::ambulance_service_server::AmbulanceServiceServer;
use hub_runtime::{agency::serve_agency, config::CommonArgs};
use tokio::net::TcpListener;

/// The binary's name, used for NATS and the ready line.
pub const NAME: &str = "ambulance-service";
/// Default listen address (contract section 1).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50055";

/// Connects, then serves on `listener` until `shutdown` resolves.
pub async fn run(
    args: CommonArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    serve_agency(
        Agency::Ambulance,
        NAME,
        args,
        listener,
        shutdown,
        |pipeline| AmbulanceServiceServer::new(api::AmbulanceApi::new(pipeline)),
    )
    .await
}
