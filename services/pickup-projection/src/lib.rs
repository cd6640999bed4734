//! `pickup-projection`: builds the prison-gate pick-up list that CARAT and
//! DIP workers act on, from the event stream into RocksDB, and serves it.
//!
//! # Layout
//! - [`model`]: pure apply and view functions (people, episodes, alerts).
//! - [`state`]: the model's state in RocksDB keys.
//! - [`consumer`]: the durable consumer, exactly-once in effect.
//! - [`api`]: `PickupListService` and `ProjectionStatusService`.
//! - [`run`]: start-up, used by `main` and by tests on port 0.

pub mod api;
pub mod consumer;
pub mod model;
pub mod state;

use std::{future::Future, path::PathBuf, sync::Arc};

use tokio::{
    net::TcpListener,
    sync::{broadcast, watch},
};

use hub_core::Error;
use hub_proto::projections::{
    pickup_list_service_server::PickupListServiceServer,
    projection_status_service_server::ProjectionStatusServiceServer,
};
use hub_runtime::{config::CommonArgs, eventlog, server};
use hub_store::Store;

pub const NAME: &str = "pickup-projection";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50061";

#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the projection keeps its RocksDB.
    #[arg(long, env = "HUB_DATA_DIR", default_value = "./var/pickup-projection")]
    pub data_dir: PathBuf,
}

/// Opens the store, starts consuming, and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let args = &config.common;
    let tokens = args.load_tokens()?;
    let partnerships = args.load_partnerships()?;
    let store = Arc::new(
        Store::open(&config.data_dir).map_err(|e| Error::config("HUB_DATA_DIR", e.to_string()))?,
    );
    let progress = store
        .progress()
        .map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(applied = progress.applied_sequence, dir = %config.data_dir.display(), "store opened");
    let client = eventlog::connect(args.nats_urls()?, NAME).await?;
    let log = eventlog::EventLog::open(client, &args.stream, args.dedupe_window).await?;

    let (progress_tx, progress_rx) = watch::channel(progress);
    let (changes, _) = broadcast::channel(4096);
    let consumer = tokio::spawn(consumer::run(
        store.clone(),
        log.clone(),
        progress_tx,
        changes.clone(),
    ));

    let shared = api::Shared {
        store: store.clone(),
        tokens: Arc::new(tokens),
        partnerships: Arc::new(partnerships),
        progress: progress_rx,
        changes,
        log,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<PickupListServiceServer<api::PickupApi>>()
        .await;
    let routes = tonic::service::Routes::new(health_service)
        .add_service(PickupListServiceServer::new(api::PickupApi(shared.clone())))
        .add_service(ProjectionStatusServiceServer::new(api::StatusApi(shared)));
    let served = server::serve(NAME, listener, routes, shutdown).await;
    // Each batch commits atomically, so stopping between awaits loses nothing.
    consumer.abort();
    let _ = consumer.await;
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "flushing the store");
    }
    served
}
