//! Feeding the pick-up model from the stream, exactly once in effect.
//!
//! A durable pull consumer (`pickup-projection`) reads every message of the
//! stream in order. Each batch of messages is applied to a staged
//! transaction and committed to RocksDB in one synced `WriteBatch` together
//! with the last applied stream sequence; only then is the batch
//! acknowledged. After a crash the store is at some sequence `n`; the
//! consumer is recreated to start at `n + 1`, and anything redelivered at or
//! below `n` is skipped. The consumer takes every subject, so sequences are
//! contiguous: a gap (a message lost between server and client) is detected
//! and the consumer is recreated from the store's position instead of
//! skipping ahead.
//!
//! Messages that cannot be used (undecodable, or from a newer schema) are
//! parked in the store and counted, and never block the stream.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use futures::StreamExt;
use prost::Message;
use tokio::sync::{broadcast, watch};

use hub_proto::{events::Event, SCHEMA_VERSION};
use hub_runtime::eventlog::EventLog;
use hub_store::{KeyKind, Progress, Store};

use crate::{model, state::TxnState};

/// The durable consumer's name.
pub const DURABLE: &str = "pickup-projection";
/// Most messages applied in one RocksDB batch.
pub const BATCH: usize = 512;

fn consumer_config(applied: u64) -> pull::Config {
    pull::Config {
        durable_name: Some(DURABLE.into()),
        description: Some("pickup-projection: the prison-gate pick-up list".into()),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: applied + 1,
        },
        ack_policy: AckPolicy::All,
        ack_wait: Duration::from_secs(60),
        max_ack_pending: 10_000,
        ..Default::default()
    }
}

/// Deletes and recreates the durable consumer so that it starts right
/// after what the store holds.
async fn recreate(
    log: &EventLog,
    applied: u64,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let stream = log
        .jetstream()
        .get_stream(log.stream_name())
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.delete_consumer(DURABLE).await;
    stream
        .create_consumer(consumer_config(applied))
        .await
        .map_err(|e| e.to_string())
}

/// What a message is to the projection.
enum Decoded {
    Event(Box<Event>),
    Parked(&'static str),
}

fn decode(payload: &[u8]) -> Decoded {
    match Event::decode(payload) {
        Err(_) => Decoded::Parked("undecodable"),
        Ok(e) if e.schema_version > SCHEMA_VERSION => Decoded::Parked("newer schema"),
        Ok(e) if e.payload.is_none() => Decoded::Parked("unknown event type"),
        Ok(e) => Decoded::Event(Box::new(e)),
    }
}

/// Runs until aborted. Store failures stop applying (nothing is acked, so
/// nothing is lost) and are retried.
pub async fn run(
    store: Arc<Store>,
    log: EventLog,
    progress_tx: watch::Sender<Progress>,
    changes: broadcast::Sender<String>,
) {
    loop {
        let progress = match store.progress() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the store; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let consumer = match recreate(&log, progress.applied_sequence).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the consumer; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!(
            from = progress.applied_sequence + 1,
            "consuming the event stream"
        );
        let messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read from the consumer; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = consume(&store, messages, progress, &progress_tx, &changes).await {
            tracing::warn!(error = %e, "consumer interrupted; resuming from the store's position");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn consume(
    store: &Store,
    messages: pull::Stream,
    mut progress: Progress,
    progress_tx: &watch::Sender<Progress>,
    changes: &broadcast::Sender<String>,
) -> Result<(), String> {
    let mut chunks = messages.ready_chunks(BATCH);
    let mut fresh = true;
    while let Some(batch) = chunks.next().await {
        let mut txn = store.txn();
        let mut next = progress;
        let mut last = None;
        let mut changed = Vec::new();
        let mut interrupted = None;
        for item in batch {
            let msg = match item {
                Ok(m) => m,
                Err(e) => {
                    interrupted = Some(format!("message stream: {e}"));
                    break;
                }
            };
            let seq = match msg.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => {
                    interrupted = Some(format!("message without JetStream info: {e}"));
                    break;
                }
            };
            if seq <= next.applied_sequence {
                last = Some(msg); // redelivered: already applied
                continue;
            }
            if !fresh && seq != next.applied_sequence + 1 {
                interrupted = Some(format!(
                    "gap: expected {}, got {seq}",
                    next.applied_sequence + 1
                ));
                break;
            }
            fresh = false;
            match decode(&msg.payload) {
                Decoded::Event(event) => {
                    let root = model::apply(&mut TxnState { txn: &mut txn }, &event, seq)
                        .map_err(|e| e.to_string())?;
                    changed.extend(root);
                    next.events_applied += 1;
                }
                Decoded::Parked(why) => {
                    tracing::warn!(sequence = seq, subject = %msg.subject, reason = why, "parked a message");
                    let mut kept = msg.subject.as_bytes().to_vec();
                    kept.push(0);
                    kept.extend_from_slice(&msg.payload);
                    txn.put(KeyKind::Parked, &seq.to_be_bytes(), kept);
                    next.parked += 1;
                }
            }
            next.applied_sequence = seq;
            last = Some(msg);
        }
        if next != progress {
            txn.commit(next).map_err(|e| format!("store: {e}"))?;
            progress = next;
            let _ = progress_tx.send(progress);
            for root in changed {
                let _ = changes.send(root);
            }
        }
        if let Some(msg) = last {
            if let Err(e) = msg.ack().await {
                tracing::warn!(error = %e, "ack failed; the messages will be redelivered and skipped");
            }
        }
        if let Some(why) = interrupted {
            return Err(why);
        }
    }
    Err("message stream ended".into())
}
