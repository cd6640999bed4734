//! `identity-service`: data stewards' decisions about who is whom in their
//! partnership (`LinkPeople`, `UnlinkPeople`).
//!
//! Who is the same person is decided per partnership by the projections,
//! from the identifiers agencies send together; a steward's decision
//! overrides that, in the live projections and in any rebuild. A decision
//! is a command like any agency's: the same pipeline (token, role,
//! validation, idempotency, pseudonyms, sealing, acknowledgement), recorded
//! under `hub.events.identity.<partnership>.people_linked|people_unlinked`,
//! which is also its audit trail. The reason is sealed under `person_a`'s
//! data key, like any free text about a person.
//!
//! # Layout
//! - [`rules`]: pure decide functions, one per RPC.
//! - [`api`]: the gRPC service, each RPC one pipeline call.
//! - [`run`]: start-up, used by `main` and by tests on port 0.

pub mod api;
pub mod rules;

use std::future::Future;

use hub_core::{auth::Agency, Error};
use hub_proto::identity::identity_service_server::IdentityServiceServer;
use hub_runtime::{agency::serve_agency, config::CommonArgs};
use tokio::net::TcpListener;

/// The binary's name, used for NATS and the ready line.
pub const NAME: &str = "identity-service";
/// Default listen address (contract section 1).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50056";

/// Connects, then serves on `listener` until `shutdown` resolves.
pub async fn run(
    args: CommonArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    serve_agency(
        Agency::Identity,
        NAME,
        args,
        listener,
        shutdown,
        |pipeline| IdentityServiceServer::new(api::IdentityApi::new(pipeline)),
    )
    .await
}
