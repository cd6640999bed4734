//! `training-projection`: builds and serves the overdose-training counts
//! partnership dashboards show (people and staff trained, headcounts,
//! naloxone kits), per financial year and quarter.
//!
//! # Layout
//! - [`model`]: pure apply and tally functions.
//! - [`api`]: the training counts service.
//! - [`run`]: start-up; the consumer, status and rebuilds are
//!   `hub-projection`'s.

pub mod api;
pub mod model;

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;

use hub_core::Error;
use hub_projection::Config;
use hub_proto::projections::training_counts_service_server::TrainingCountsServiceServer;

pub const NAME: &str = "training-projection";
/// The layout of this projection's store: 2 keeps counters of distinct
/// people trained (1 counted them by scanning). Stores of an older layout
/// are rebuilt from the stream when the projection starts.
pub const SCHEMA: u32 = 2;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50062";

/// Opens the store, starts consuming, and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    hub_projection::serve(
        NAME,
        "training",
        "hub.projections.v1.TrainingCountsService",
        SCHEMA,
        config,
        listener,
        shutdown,
        Arc::new(|txn, event, seq| model::apply(txn, event, seq)),
        |projection| {
            tonic::service::Routes::new(TrainingCountsServiceServer::new(api::TrainingApi(
                projection,
            )))
        },
    )
    .await
}
