//! `pickup-projection`: builds the prison-gate pick-up list that CARAT and
//! DIP workers act on, from the event stream into RocksDB, and serves it.
//!
//! # Layout
//! - [`model`]: pure apply and view functions (episodes, checklist, alerts,
//!   continuity of care).
//! - [`api`]: `PickupListService` (the list, its live watch, its summary);
//!   every person-level read is audited.
//! - [`admin`]: erasure and the audit trail, for admins.
//! - [`run`]: start-up, used by `main` and by tests on port 0; the consumer,
//!   status and rebuilds are `hub-projection`'s.

pub mod admin;
pub mod api;
pub mod model;

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;

use hub_core::Error;
use hub_projection::Config;
use hub_proto::{
    admin::admin_service_server::AdminServiceServer,
    projections::pickup_list_service_server::PickupListServiceServer,
};
use hub_runtime::keystore::KeyStore;

pub const NAME: &str = "pickup-projection";
/// The layout of this projection's store. Stores of an older layout are
/// rebuilt from the stream when the projection starts.
pub const SCHEMA: u32 = 1;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50061";

/// Opens the store, starts consuming, and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let secret = config.common.load_secret()?;
    let client = hub_runtime::eventlog::connect(&config.common.nats, NAME).await?;
    let log = hub_runtime::eventlog::EventLog::open(
        client,
        &config.common.nats.stream,
        config.common.stream_settings(),
    )
    .await?;
    let keys = KeyStore::open(&log, hub_core::sealing::KeyWrapper::new(&secret)).await?;
    let pseudonymiser = hub_core::pseudonym::Pseudonymiser::new(&secret);
    let data_keys = api::DataKeyCache::default();
    hub_projection::serve(
        NAME,
        "pickup",
        "hub.projections.v1.PickupListService",
        SCHEMA,
        config,
        listener,
        shutdown,
        Arc::new(|txn, event, seq| model::apply(txn, event, seq)),
        move |projection| {
            let admin = admin::AdminApi {
                projection: projection.clone(),
                keys: keys.clone(),
                pseudonymiser,
                data_keys: data_keys.clone(),
            };
            tonic::service::Routes::new(PickupListServiceServer::new(api::PickupApi::new(
                projection, keys, data_keys,
            )))
            .add_service(AdminServiceServer::new(admin))
        },
    )
    .await
}
