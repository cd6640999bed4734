//! Start-up (feature `server`, on by default).

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::net::TcpListener;

use hub_core::Error;

use crate::{admin, api, erasure, model, retention, NAME, SCHEMA};
use hub_projection::Config;
use hub_proto::{
    admin::admin_service_server::AdminServiceServer,
    projections::pickup_list_service_server::PickupListServiceServer,
};
use hub_runtime::{keystore::KeyStore, ledger::ErasureLedger};

/// The retention settings from the environment (see the README).
fn retention_settings() -> Result<(i64, Duration), Error> {
    let read = |name: &str, default: &str| {
        let value = std::env::var(name).unwrap_or_else(|_| default.to_string());
        retention::parse_period(&value).map_err(|e| Error::config(name, e))
    };
    let period = read("HUB_RETENTION_PERIOD", retention::DEFAULT_PERIOD)?;
    let sweep = read("HUB_RETENTION_SWEEP_INTERVAL", retention::DEFAULT_SWEEP)?;
    Ok((period, Duration::from_secs(sweep as u64)))
}

/// Opens the store, starts consuming, and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let (period, sweep_every) = retention_settings()?;
    let secret = config.common.load_secret()?;
    let client = hub_runtime::eventlog::connect(&config.common.nats, NAME).await?;
    let log = hub_runtime::eventlog::EventLog::open(
        client,
        &config.common.nats.stream,
        config.common.stream_settings(),
    )
    .await?;
    let keys = KeyStore::open(&log, &secret).await?;
    let ledger = ErasureLedger::open(&log).await?;
    let pseudonymiser = hub_core::pseudonym::Pseudonymiser::new(&secret);
    let data_keys = api::DataKeyCache::default();
    let watches_per_caller = config.common.max_streams_per_caller;
    let spec = hub_projection::Spec {
        name: NAME,
        label: "pickup",
        service_name: "hub.projections.v1.PickupListService",
        schema: SCHEMA,
        apply: Arc::new(|txn, event, seq| model::apply(txn, event, seq)),
    };
    hub_projection::serve(
        spec,
        config,
        listener,
        shutdown,
        Some(&secret),
        move |projection| {
            let eraser = erasure::Eraser {
                projection: projection.clone(),
                keys: keys.clone(),
                ledger,
                data_keys: data_keys.clone(),
            };
            let state = Arc::new(Mutex::new(admin::SweepState {
                period_seconds: period,
                last_sweep_at: None,
            }));
            tokio::spawn(sweep(eraser.clone(), state.clone(), period, sweep_every));
            let admin = admin::AdminApi {
                projection: projection.clone(),
                keys: keys.clone(),
                pseudonymiser: pseudonymiser.clone(),
                eraser,
                retention: state,
            };
            tonic::service::Routes::new(PickupListServiceServer::new(api::PickupApi::new(
                projection,
                keys,
                data_keys,
                pseudonymiser,
                watches_per_caller,
            )))
            .add_service(AdminServiceServer::new(admin))
        },
    )
    .await
}

/// Expires personal data by the retention period, every `every`.
async fn sweep(
    eraser: erasure::Eraser,
    state: Arc<Mutex<admin::SweepState>>,
    period: i64,
    every: Duration,
) {
    // The first sweep after one interval: at start the projection is
    // usually catching up, and a sweep then would only wait.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = jiff::Timestamp::now();
        match eraser.sweep(now.as_second() - period).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(people = n, "retention expired personal data"),
            Err(e) => {
                tracing::warn!(error = %e.message(), "retention sweep did not finish; retrying at the next");
                continue;
            }
        }
        state.lock().expect("retention lock").last_sweep_at = Some(now);
    }
}
