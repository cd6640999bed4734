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
//! The store also keeps a digest of the last message it applied. Before
//! the live consumer is (re)created, the stream's message at that sequence
//! must have the same digest: a store ahead of the stream, or one built
//! from another history of it (the stream restored from a backup, or
//! replaced, while the store was kept), would otherwise skip the new
//! history's messages at sequences it thinks it has applied. Such a store
//! is refused as a fault (health `NOT_SERVING`, queries `UNAVAILABLE`)
//! until it is moved away and rebuilt, or the right stream is back.
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
use tokio::sync::{broadcast, watch};

use hub_proto::events::Event;
use hub_runtime::eventlog::EventLog;
use hub_store::{Error, KeyKind, Progress, Store, Txn};

use crate::{
    identity::Changed,
    message::{decode, Decoded},
};

/// Most messages applied in one RocksDB batch.
pub const BATCH: usize = 512;
/// Messages asked of the server at once (the next pull goes out when half
/// have arrived, so the consumer rarely waits on a round trip).
const PULL_BATCH: usize = 2 * BATCH;
/// How long one pull request waits on the server, and how often an idle
/// server says it is still there. A pull request can vanish without an
/// answer (the server holding it killed, the consumer's leader moved to
/// another node of a cluster, a reconnect); the client notices only when
/// heartbeats stop, after two of them. async-nats's defaults (30 s, 15 s)
/// left a projection stalled for up to 30 s after a node failure; at these
/// values it resumes within about 2 s, for one small message a second on
/// an idle stream.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
const IDLE_HEARTBEAT: Duration = Duration::from_secs(1);

/// The store's key (under `KeyKind::Meta`) for the digest of the last
/// message applied.
const APPLIED_DIGEST: &[u8] = b"applied_digest";
/// How often a store from another history is checked again.
const HISTORY_RECHECK: Duration = Duration::from_secs(5);

/// What identifies a message's content: the first 16 bytes of its
/// payload's SHA-256.
fn digest(payload: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(payload)[..16].to_vec()
}

/// How a projection folds one event into its store; returns the people
/// whose entries may have changed, for live watchers.
pub type ApplyFn = dyn Fn(&mut Txn<'_>, &Event, u64) -> Result<Vec<Changed>, Error> + Send + Sync;

/// One projection's consumer.
#[derive(Clone)]
pub struct Consumer {
    /// Durable consumer name, also the metrics label.
    pub name: &'static str,
    pub log: EventLog,
    pub apply: Arc<ApplyFn>,
    pub progress: watch::Sender<Progress>,
    pub changes: broadcast::Sender<Changed>,
    /// Why the store cannot be used, while it cannot (`None` when well):
    /// health and queries follow it.
    pub fault: watch::Sender<Option<String>>,
    /// The layout version an empty store is marked with once it opens.
    pub schema: u32,
}

/// What the stream holds at the store's position.
enum History {
    /// The message the store applied last (or nothing to compare with).
    Same,
    /// Something else, or nothing: the store is from another history.
    Other(String),
    /// The stream cannot be read just now.
    Unknown(String),
}

/// Why consuming stopped.
enum Stop {
    /// The stream (connection, consumer, a gap): recreate the consumer.
    Stream(String),
    /// The store failed: stop applying until it works again.
    Store(Error),
}

/// Longest wait between two attempts to reopen a failed store.
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

fn consumer_config(name: &str, applied: u64, durable: bool) -> pull::Config {
    pull::Config {
        durable_name: durable.then(|| name.to_string()),
        // A rebuild's consumer is named at random: agencies' NATS users are
        // denied the durable names (deploy/nats/accounts.conf), and cannot
        // list consumers, so they cannot guess this one to re-filter it.
        name: (!durable).then(|| format!("{name}-rebuild-{}", uuid::Uuid::now_v7().simple())),
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
        // Never resume an old consumer of the same name (a rebuild's are
        // new each time; the durable one is replaced), so a consumer always
        // starts right after what the store holds.
        if let Some(name) = config.durable_name.as_ref().or(config.name.as_ref()) {
            let _ = stream.delete_consumer(name).await;
        }
        stream
            .create_consumer(config)
            .await
            .map_err(|e| e.to_string())
    }

    /// Applies the stream to `store` forever (until the task is aborted).
    /// A store failure (disk full, I/O error, unreadable) stops applying
    /// and is reported (see [`Consumer::recover`]) until the store works
    /// again; nothing past the store's own position was acknowledged, so
    /// nothing is lost.
    pub async fn run(&self, store: Arc<Store>) {
        loop {
            match self.run_until(store.clone(), true, None).await {
                Ok(()) => return,
                Err(e) => self.recover(&store, e).await,
            }
        }
    }

    /// Applies to `store` until it has applied `until` (when given), with a
    /// durable consumer or an ephemeral one; returns the store's error if
    /// it fails.
    pub async fn run_until(
        &self,
        store: Arc<Store>,
        durable: bool,
        until: Option<u64>,
    ) -> Result<(), Error> {
        loop {
            let progress = blocking(|| store.progress())?;
            if until.is_some_and(|u| progress.applied_sequence >= u) {
                return Ok(());
            }
            if durable {
                match self.same_history(&store, progress.applied_sequence).await? {
                    History::Same => {}
                    History::Other(why) => {
                        self.refuse_history(why).await;
                        continue;
                    }
                    History::Unknown(e) => {
                        tracing::warn!(projection = self.name, error = %e, "cannot check the store against the stream; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
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
                .expires(PULL_EXPIRES)
                .heartbeat(IDLE_HEARTBEAT)
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
                Ok(()) => return Ok(()),
                Err(Stop::Store(e)) => return Err(e),
                Err(Stop::Stream(e)) => {
                    tracing::warn!(projection = self.name, error = %e, "consumer interrupted; resuming from the store's position");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Whether the stream still holds, at the store's position, the message
    /// the store applied last. Stores from before the digest was kept pass,
    /// and so does a position the stream no longer holds because of its own
    /// limits (nothing to compare with).
    async fn same_history(&self, store: &Store, applied: u64) -> Result<History, Error> {
        let Some(expected) = blocking(|| store.get(KeyKind::Meta, APPLIED_DIGEST))? else {
            return Ok(History::Same);
        };
        let verdict = match self.log.sequences().await {
            Err(e) => History::Unknown(e.to_string()),
            Ok((_, last)) if last < applied => History::Other(format!(
                "the store has applied the stream up to sequence {applied}, but the stream ends at {last}"
            )),
            Ok((first, _)) if applied < first => History::Same,
            Ok(_) => match self.log.message(applied).await {
                Err(e) => History::Unknown(e.to_string()),
                Ok(msg) if digest(&msg.payload) != expected => History::Other(format!(
                    "the stream's message {applied} is not the one the store applied"
                )),
                Ok(_) => History::Same,
            },
        };
        if matches!(verdict, History::Same) && self.fault.borrow().is_some() {
            tracing::info!(projection = self.name, "the store matches the stream again");
            self.report_fault(None);
        }
        Ok(verdict)
    }

    /// The store belongs to another history of the stream: says so (as a
    /// store fault) and waits before checking again.
    async fn refuse_history(&self, why: String) {
        let fault = format!(
            "{why}: the store was built from another history of the stream (was the stream restored or replaced?); move the store's folder away to rebuild it from the stream"
        );
        if self.fault.borrow().as_deref() != Some(fault.as_str()) {
            tracing::error!(projection = self.name, fault = %fault, "not applying");
        }
        self.report_fault(Some(fault));
        tokio::time::sleep(HISTORY_RECHECK).await;
    }

    /// Why the store cannot be used (`None`: it can): for health, queries,
    /// status and `hub_projection_store_fault`.
    fn report_fault(&self, fault: Option<String>) {
        let up = if fault.is_some() { 1.0 } else { 0.0 };
        metrics::gauge!("hub_projection_store_fault", "projection" => self.name).set(up);
        let _ = self.fault.send(fault);
    }

    /// The store failed: says so (health `NOT_SERVING`, queries
    /// `UNAVAILABLE`, `hub_projection_store_fault` 1) and tries to reopen
    /// it, with growing waits, until it opens and reads again; then clears
    /// the fault, and the caller resumes from the store's own position.
    pub async fn recover(&self, store: &Store, mut error: Error) {
        let mut wait = Duration::from_millis(250);
        loop {
            tracing::error!(projection = self.name, error = %error,
                "the store failed: stopped applying until it works again");
            self.report_fault(Some(error.to_string()));
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(REOPEN_BACKOFF_MAX);
            let reopened = blocking(|| {
                store.reopen()?;
                let progress = store.progress()?;
                if progress.applied_sequence == 0 {
                    store.set_schema(self.schema)?;
                }
                Ok::<_, Error>(progress)
            });
            match reopened {
                Ok(progress) => {
                    tracing::info!(
                        projection = self.name,
                        applied = progress.applied_sequence,
                        "the store works again: applying from where it stood"
                    );
                    self.report_fault(None);
                    return;
                }
                Err(e) => error = e,
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
    ) -> Result<(), Stop> {
        let mut chunks = messages.ready_chunks(BATCH);
        let mut fresh = true;
        while let Some(batch) = chunks.next().await {
            // RocksDB may block (a write stall while compaction catches up):
            // never on a thread that queries and acknowledgements need.
            let applied = blocking(|| self.apply_batch(store, batch, progress, &mut fresh, until))
                .map_err(Stop::Store)?;
            progress = applied.progress;
            if let Some(msg) = applied.last.filter(|_| durable) {
                if let Err(e) = msg.ack().await {
                    tracing::warn!(projection = self.name, error = %e, "ack failed; the messages will be redelivered and skipped");
                }
            }
            if let Some(why) = applied.interrupted {
                return Err(Stop::Stream(why));
            }
            if until.is_some_and(|u| progress.applied_sequence >= u) {
                return Ok(());
            }
        }
        Err(Stop::Stream("message stream ended".into()))
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
    ) -> Result<Applied, Error> {
        let mut txn = store.txn();
        let mut next = progress;
        let mut last = None;
        let mut changed = Vec::new();
        let mut interrupted = None;
        let mut applied_payload = None;
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
                    changed.extend((self.apply)(&mut txn, &event, seq)?);
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
            applied_payload = Some(msg.payload.clone());
            last = Some(msg);
            if until.is_some_and(|u| seq >= u) {
                break;
            }
        }
        if next != progress {
            if let Some(payload) = applied_payload {
                txn.put(KeyKind::Meta, APPLIED_DIGEST, digest(&payload));
            }
            txn.commit(next)?;
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
