//! `hubctl nats init`: what only the operator may create.
//!
//! Under least privilege (deploy/nats/hub.conf) no service may create or
//! change the event stream or the buckets: a compromised one could
//! otherwise lower the stream's limits, allow deletes and destroy the log.
//! The operator creates them once, as `hub-operator`, before the services
//! start, and again after changing `HUB_DEDUPE_WINDOW` or
//! `HUB_STREAM_REPLICAS`; services only check them. Running it again is
//! safe: it changes only what differs from the hub's settings and never
//! lowers replicas.

use anyhow::{anyhow, Result};
use hub_runtime::{
    config::NatsArgs,
    eventlog::{self, EventLog},
    keystore, ledger,
};
use serde_json::json;

#[derive(clap::Subcommand, Debug)]
pub enum NatsCommand {
    /// Create or check the event stream (file storage, kept forever,
    /// deletes and purges denied) and the key and erasure buckets.
    Init(Init),
}

#[derive(clap::Args, Debug)]
pub struct Init {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub stream: hub_runtime::config::StreamArgs,
}

pub async fn run(command: NatsCommand, json: bool) -> Result<()> {
    let NatsCommand::Init(init) = command;
    let err = |e: hub_core::Error| anyhow!("{e}");
    let client = eventlog::connect(&init.nats, "hubctl").await.map_err(err)?;
    let log = EventLog::open(client, &init.nats.stream, init.stream.settings())
        .await
        .map_err(err)?;
    let mut stream = log
        .jetstream()
        .get_stream(log.stream_name())
        .await
        .map_err(|e| anyhow!("{}: {e}", log.stream_name()))?;
    let info = stream.info().await?.clone();
    let c = &info.config;
    if !(c.deny_delete && c.deny_purge && !c.allow_rollup) {
        return Err(anyhow!(
            "{}: NATS kept deletes, purges or rollups allowed; is this user hub-operator?",
            c.name
        ));
    }
    keystore::open_bucket(&log, keystore::BUCKET, keystore::DESCRIPTION)
        .await
        .map_err(err)?;
    ledger::ErasureLedger::open(&log).await.map_err(err)?;
    if json {
        println!(
            "{}",
            json!({
                "stream": c.name,
                "messages": info.state.messages,
                "replicas": c.num_replicas,
                "duplicate_window_seconds": c.duplicate_window.as_secs(),
                "deny_delete": c.deny_delete,
                "deny_purge": c.deny_purge,
                "buckets": [keystore::BUCKET, ledger::BUCKET],
            })
        );
    } else {
        println!(
            "stream {}: {} messages, {} replicas, duplicate window {}s, deletes and purges denied",
            c.name,
            info.state.messages,
            c.num_replicas,
            c.duplicate_window.as_secs()
        );
        println!("buckets {} and {}: ready", keystore::BUCKET, ledger::BUCKET);
    }
    Ok(())
}
