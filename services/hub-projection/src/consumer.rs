//! Feeding a projection from the stream, exactly once in effect.
//!
//! A durable pull consumer reads every message of the stream in order. Each
//! batch is applied to a staged transaction and committed to RocksDB in one
//! atomic `WriteBatch` together with the last applied stream sequence; only
//! then is the batch acknowledged. After a crash (of the process, or of the
//! machine, which may lose the last unsynced batches) the store is at some
//! sequence `n`; the consumer is recreated to start at `n + 1`, and anything
//! redelivered at or below `n` is skipped. The consumer takes every
//! subject, so sequences are contiguous: a gap (a message lost between
//! server and client) is detected and the consumer is recreated from the
//! store's position instead of skipping ahead.
//!
//! Messages that cannot be used (undecodable, or from a newer schema) are
//! parked in the store (`KeyKind::Parked`, by sequence, with their subject)
//! and counted in `hub_projection_parked_total`; they never block the
//! stream and stay for a later rebuild by a newer version.

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
use hub_store::{Error, KeyKind, Progress, Store, Txn};

/// Most messages applied in one RocksDB batch.
pub const BATCH: usize = 512;
/// Messages asked of the server at once (the next pull goes out when half
/// have arrived, so the consumer rarely waits on a round trip).
const PULL_BATCH: usize = 2 * BATCH;

/// How a projection folds one event into its store; returns the key of a
/// changed entry for live watchers, if any.
pub type ApplyFn = dyn Fn(&mut Txn<'_>, &Event, u64) -> Result<Option<String>, Error> + Send + Sync;

/// One projection's consumer.
#[derive(Clone)]
pub struct Consumer {
    /// Durable consumer name, also the metrics label.
    pub name: &'static str,
    pub log: EventLog,
    pub apply: Arc<ApplyFn>,
    pub progress: watch::Sender<Progress>,
    pub changes: broadcast::Sender<String>,
}

fn consumer_config(name: &str, applied: u64, durable: bool) -> pull::Config {
    pull::Config {
        durable_name: durable.then(|| name.to_string()),
        name: (!durable).then(|| format!("{name}-rebuild-{}", std::process::id())),
        description: Some(format!("{name}: projection consumer")),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: applied + 1,
        },
        // A rebuild keeps its place in its own store and its consumer dies
        // with it: acknowledgements would only cost the server work.
        ack_policy: if durable {
            AckPolicy::All
        } else {
            AckPolicy::None
        },
        ack_wait: Duration::from_secs(60),
        max_ack_pending: 10_000,
        inactive_threshold: if durable {
            Duration::ZERO
        } else {
            Duration::from_secs(60)
        },
        ..Default::default()
    }
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

impl Consumer {
    /// (Re)creates the consumer so that it starts right after what `store`
    /// holds: the durable one for the live store, an ephemeral one for a
    /// rebuild.
    async fn recreate(
        &self,
        applied: u64,
        durable: bool,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
        let stream = self
            .log
            .jetstream()
            .get_stream(self.log.stream_name())
            .await
            .map_err(|e| e.to_string())?;
        let config = consumer_config(self.name, applied, durable);
        if durable {
            let _ = stream.delete_consumer(self.name).await;
        }
        stream
            .create_consumer(config)
            .await
            .map_err(|e| e.to_string())
    }

    /// Applies the stream to `store` forever (until the task is aborted).
    /// Store failures stop applying (nothing is acked, so nothing is lost)
    /// and are retried.
    pub async fn run(&self, store: Arc<Store>) {
        self.run_until(store, true, None).await;
    }

    /// Applies to `store` until it has applied `until` (when given), with a
    /// durable consumer or an ephemeral one.
    pub async fn run_until(&self, store: Arc<Store>, durable: bool, until: Option<u64>) {
        loop {
            let progress = match store.progress() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(projection = self.name, error = %e, "cannot read the store; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if until.is_some_and(|u| progress.applied_sequence >= u) {
                return;
            }
            let consumer = match self.recreate(progress.applied_sequence, durable).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(projection = self.name, error = %e, "cannot create the consumer; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            tracing::info!(
                projection = self.name,
                from = progress.applied_sequence + 1,
                "consuming the event stream"
            );
            let messages = match consumer
                .stream()
                .max_messages_per_batch(PULL_BATCH)
                .messages()
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(projection = self.name, error = %e, "cannot read from the consumer; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match self
                .consume(&store, messages, progress, until, durable)
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(projection = self.name, error = %e, "consumer interrupted; resuming from the store's position");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn consume(
        &self,
        store: &Store,
        messages: pull::Stream,
        mut progress: Progress,
        until: Option<u64>,
        durable: bool,
    ) -> Result<(), String> {
        let mut chunks = messages.ready_chunks(BATCH);
        let mut fresh = true;
        while let Some(batch) = chunks.next().await {
            // RocksDB may block (a write stall while compaction catches up):
            // never on a thread that queries and acknowledgements need.
            let applied = blocking(|| self.apply_batch(store, batch, progress, &mut fresh, until))?;
            progress = applied.progress;
            if let Some(msg) = applied.last.filter(|_| durable) {
                if let Err(e) = msg.ack().await {
                    tracing::warn!(projection = self.name, error = %e, "ack failed; the messages will be redelivered and skipped");
                }
            }
            if let Some(why) = applied.interrupted {
                return Err(why);
            }
            if until.is_some_and(|u| progress.applied_sequence >= u) {
                return Ok(());
            }
        }
        Err("message stream ended".into())
    }

    /// Applies one chunk of messages and commits it with the new progress
    /// in one batch; tells watchers and waiting queries.
    fn apply_batch(
        &self,
        store: &Store,
        batch: Vec<Result<jetstream::Message, pull::MessagesError>>,
        progress: Progress,
        fresh: &mut bool,
        until: Option<u64>,
    ) -> Result<Applied, String> {
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
            if !*fresh && seq != next.applied_sequence + 1 {
                interrupted = Some(format!(
                    "gap: expected {}, got {seq}",
                    next.applied_sequence + 1
                ));
                break;
            }
            *fresh = false;
            match decode(&msg.payload) {
                Decoded::Event(event) => {
                    let root =
                        (self.apply)(&mut txn, &event, seq).map_err(|e| format!("store: {e}"))?;
                    changed.extend(root);
                    next.events_applied += 1;
                }
                Decoded::Parked(why) => {
                    tracing::warn!(projection = self.name, sequence = seq, subject = %msg.subject, reason = why, "parked a message");
                    metrics::counter!("hub_projection_parked_total", "projection" => self.name)
                        .increment(1);
                    let mut kept = msg.subject.as_bytes().to_vec();
                    kept.push(0);
                    kept.extend_from_slice(&msg.payload);
                    txn.put(KeyKind::Parked, &seq.to_be_bytes(), kept);
                    next.parked += 1;
                }
            }
            next.applied_sequence = seq;
            last = Some(msg);
            if until.is_some_and(|u| seq >= u) {
                break;
            }
        }
        if next != progress {
            txn.commit(next).map_err(|e| format!("store: {e}"))?;
            // Watchers first: whoever sees the new progress (a query with
            // min_sequence, then a watch) must not be sent these changes
            // again as if they were new.
            for root in changed {
                let _ = self.changes.send(root);
            }
            let _ = self.progress.send(next);
            metrics::gauge!("hub_projection_applied_sequence", "projection" => self.name)
                .set(next.applied_sequence as f64);
        }
        Ok(Applied {
            progress: next,
            last,
            interrupted,
        })
    }
}

/// What applying one chunk came to.
struct Applied {
    progress: Progress,
    /// The last message handled (acknowledged for a durable consumer).
    last: Option<jetstream::Message>,
    /// Why the chunk stopped early, if it did: the consumer is recreated.
    interrupted: Option<String>,
}

/// Runs `f`, which may block, letting a multi-threaded runtime move its
/// other tasks elsewhere meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
