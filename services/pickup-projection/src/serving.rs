//! Start-up (feature `server`, on by default).

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;

use hub_core::Error;

use crate::admin;
use crate::{api, model, NAME, SCHEMA};
use hub_projection::Config;
use hub_proto::{
    admin::admin_service_server::AdminServiceServer,
    projections::pickup_list_service_server::PickupListServiceServer,
};
use hub_runtime::keystore::KeyStore;

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
                pseudonymiser: pseudonymiser.clone(),
                data_keys: data_keys.clone(),
            };
            tonic::service::Routes::new(PickupListServiceServer::new(api::PickupApi::new(
                projection,
                keys,
                data_keys,
                pseudonymiser,
            )))
            .add_service(AdminServiceServer::new(admin))
        },
    )
    .await
}
