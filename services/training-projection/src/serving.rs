//! Start-up (feature `server`, on by default).

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;

use hub_core::Error;

use crate::{api, model, NAME, SCHEMA};
use hub_projection::Config;
use hub_proto::projections::training_counts_service_server::TrainingCountsServiceServer;

/// Opens the store, starts consuming, and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let spec = hub_projection::Spec {
        name: NAME,
        label: "training",
        service_name: "hub.projections.v1.TrainingCountsService",
        schema: SCHEMA,
        apply: Arc::new(|txn, event, seq| model::apply(txn, event, seq)),
    };
    hub_projection::serve(spec, config, listener, shutdown, None, |projection| {
        tonic::service::Routes::new(TrainingCountsServiceServer::new(api::TrainingApi(
            projection,
        )))
    })
    .await
}
