//! `key-service`: the one component that creates per-person data keys.
//!
//! Agency services seal names under a person's data key, but their NATS
//! users may only read the key bucket (deploy/nats/hub.conf): a compromised
//! agency service must not be able to overwrite or purge anyone's key, and
//! NATS cannot tell a create-if-absent from an overwrite by subject. So an
//! agency service that meets a person without a key asks this service over
//! NATS ([`keystore::CREATE_SUBJECT`], a queue group so replicas share the
//! work), which creates it under the current key-encryption key and
//! answers with the wrapped key. Erasure and key rotation stay with the
//! pick-up projection, which holds the erasure ledger.
//!
//! It serves gRPC health (following its NATS connection) and metrics, and
//! nothing else.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::service::Routes;

use hub_core::Error;

use crate::{
    agency::health_follows_nats,
    config::CommonArgs,
    eventlog::{self, EventLog},
    keystore::{self, KeyStore},
    prometheus, server,
};

/// The binary's name, used for NATS and the ready line.
pub const NAME: &str = "key-service";
/// Default listen address (gRPC health only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50057";

/// Connects, then answers data-key requests and serves health on
/// `listener` until `shutdown` resolves.
pub async fn run(
    args: CommonArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal_from("the listener's address", e))?;
    args.tls.check_listener("HUB_LISTEN", addr)?;
    prometheus::start(NAME, args.metrics_listen, addr, &args.tls).await?;
    let secret = args.load_secret()?;
    let client = eventlog::connect(&args.nats, NAME).await?;
    let log = EventLog::open(client.clone(), &args.nats.stream, args.stream_settings()).await?;
    let keys = KeyStore::open(&log, &secret).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let answering = tokio::spawn({
        let mut stopped = stopped.clone();
        keystore::answer(keys, client.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
    });
    tracing::info!("answering data-key requests");
    let (watcher, health) = health_follows_nats(client, NAME);
    let served = server::serve(NAME, listener, &args.tls, Routes::new(health), async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    watcher.abort();
    let answered = answering
        .await
        .map_err(|e| Error::internal_from("the key service's task", e))?;
    served.and(answered)
}
