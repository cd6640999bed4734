//! Start-up (feature `server`, on by default).

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;

use hub_core::Error;

use crate::{api, model, NAME, SCHEMA};
use hub_proto::projections::activity_service_server::ActivityServiceServer;
use hub_runtime::config::{CommonArgs, ProjectionAddrs};

/// Settings of `activity-projection`: a projection's, and where the other
/// two projections answer (for the national comparison).
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub projection: hub_projection::Config,
    /// The pick-up projection (continuity of care) and the training
    /// projection (training counts).
    #[command(flatten)]
    pub projections: ProjectionAddrs,
}

impl AsRef<CommonArgs> for Config {
    fn as_ref(&self) -> &CommonArgs {
        &self.projection.common
    }
}

/// Opens the store, starts consuming, and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let (pickup, training) = config
        .projections
        .channels(&config.projection.common.tls.client)?;
    let spec = hub_projection::Spec {
        name: NAME,
        label: "activity",
        service_name: "hub.projections.v1.ActivityService",
        schema: SCHEMA,
        apply: Arc::new(|txn, event, seq| model::apply(txn, event, seq)),
    };
    hub_projection::serve(
        spec,
        config.projection,
        listener,
        shutdown,
        None,
        |projection| {
            tonic::service::Routes::new(ActivityServiceServer::new(api::ActivityApi {
                projection,
                pickup,
                training,
            }))
        },
    )
    .await
}
