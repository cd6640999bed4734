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
//! A replay (a rebuild, or a live store found far behind the stream) is
//! built for bulk: it knows where it ends, so it gathers batches of up to
//! [`REPLAY_BATCH`] messages and reads the next while the last is applied,
//! with the same checks, and acknowledges nothing (decision record 0006).
//!
//! Messages that cannot be used (undecodable, or from a newer schema) are
//! parked in the store (`KeyKind::Parked`, by sequence, with their subject)
//! and counted in `hub_projection_parked_total`; they never block the
//! stream and stay for a later rebuild by a newer version.

use std::{sync::Arc, time::Duration};

use tokio::sync::{broadcast, watch};

use hub_proto::events::Event;
use hub_store::{Error, KeyKind, Progress, Store, Txn};

use crate::{
    identity::Changed,
    message::{decode, Decoded},
    source::{Delivered, Delivery, EventSource, Mode, SourceError},
};

/// Most messages applied in one RocksDB batch (a delivery's chunk).
pub const BATCH: usize = crate::source::CHUNK;
/// Most messages a replay gathers into one RocksDB batch. A replay's
/// messages are all in the stream already, so it waits for a large batch
/// instead of applying whatever chunk is ready: fewer, larger commits,
/// whose keys (sorted in one `WriteBatch`) RocksDB inserts close to each
/// other, and repeated keys (a person named again) written once. 2,048
/// cost more CPU per event, 32,768 no less and more memory
/// (BENCHMARKS.md, "A bulk load's sizes").
pub const REPLAY_BATCH: usize = 16 * BATCH;

/// How far behind the stream a live store catches up in bulk (see
/// [`Consumer::run_until`]).
pub const CATCH_UP: u64 = 4 * REPLAY_BATCH as u64;

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
    pub(crate) name: &'static str,
    pub(crate) source: Arc<dyn EventSource>,
    pub(crate) apply: Arc<ApplyFn>,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) changes: broadcast::Sender<Changed>,
    /// Why the store cannot be used, while it cannot (`None` when well):
    /// health and queries follow it.
    pub(crate) fault: watch::Sender<Option<String>>,
    /// The layout version an empty store is marked with once it opens.
    pub(crate) schema: u32,
}

/// What the stream holds at the store's position.
enum History {
    /// The message the store applied last (or nothing to compare with).
    Same,
    /// Something else, or nothing: the store is from another history.
    Other(String),
    /// The stream cannot be read just now.
    Unknown(SourceError),
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

impl Consumer {
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
    /// it fails. A durable consumer without `until` (the live store) that
    /// finds itself more than [`CATCH_UP`] events behind first replays up
    /// to the stream's last sequence (gathered batches, as a rebuild does,
    /// still logged: this is the live store), then follows live.
    pub async fn run_until(
        &self,
        store: Arc<Store>,
        durable: bool,
        until: Option<u64>,
    ) -> Result<(), Error> {
        loop {
            let progress = {
                let store = store.clone();
                on_storage(move || store.progress()).await?
            };
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
            // A live store far behind the stream (moved away and rebuilt
            // from sequence 1, restored from an old copy) catches up as a
            // replay does, in bulk and unacknowledged, then follows live.
            let catch_up = if durable && until.is_none() {
                self.backlog(progress).await
            } else {
                None
            };
            let (mode, until_now) = match catch_up {
                Some(last) => (Mode::Replay, Some(last)),
                None if durable => (Mode::Live, until),
                None => (Mode::Replay, until),
            };
            let delivery = match self
                .source
                .deliver(self.name, progress.applied_sequence + 1, mode)
                .await
            {
                Ok(d) => d,
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
            match self
                .consume(&store, delivery, progress, until_now, mode == Mode::Live)
                .await
            {
                Ok(()) if catch_up.is_some() => {
                    tracing::info!(
                        projection = self.name,
                        "caught up with the stream; following it live"
                    );
                }
                Ok(()) => return Ok(()),
                Err(Stop::Store(e)) => return Err(e),
                Err(Stop::Stream(e)) => {
                    tracing::warn!(projection = self.name, error = %e, "consumer interrupted; resuming from the store's position");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The stream's last sequence when the store is more than
    /// [`CATCH_UP`] events behind it (`None` when it is not, or when the
    /// stream does not answer: the live consumer then catches up as well).
    async fn backlog(&self, progress: Progress) -> Option<u64> {
        let (_, last) = self.source.bounds().await.ok()?;
        (last > progress.applied_sequence + CATCH_UP).then_some(last)
    }

    /// Whether the stream still holds, at the store's position, the message
    /// the store applied last. Stores from before the digest was kept pass,
    /// and so does a position the stream no longer holds because of its own
    /// limits (nothing to compare with).
    async fn same_history(&self, store: &Arc<Store>, applied: u64) -> Result<History, Error> {
        let expected = {
            let store = store.clone();
            on_storage(move || store.get(KeyKind::Meta, APPLIED_DIGEST)).await?
        };
        let Some(expected) = expected else {
            return Ok(History::Same);
        };
        let verdict = match self.source.bounds().await {
            Err(e) => History::Unknown(e),
            Ok((_, last)) if last < applied => History::Other(format!(
                "the store has applied the stream up to sequence {applied}, but the stream ends at {last}"
            )),
            Ok((first, _)) if applied < first => History::Same,
            Ok(_) => match self.source.stored(applied).await {
                Err(e) => History::Unknown(e),
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
    pub async fn recover(&self, store: &Arc<Store>, mut error: Error) {
        let mut wait = Duration::from_millis(250);
        loop {
            tracing::error!(projection = self.name, error = %error,
                "the store failed: stopped applying until it works again");
            self.report_fault(Some(error.to_string()));
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(REOPEN_BACKOFF_MAX);
            let reopened = {
                let (store, schema) = (store.clone(), self.schema);
                on_storage(move || {
                    store.reopen()?;
                    let progress = store.progress()?;
                    if progress.applied_sequence == 0 {
                        store.set_schema(schema)?;
                    }
                    Ok::<_, Error>(progress)
                })
                .await
            };
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
        store: &Arc<Store>,
        delivery: Box<dyn Delivery>,
        progress: Progress,
        until: Option<u64>,
        durable: bool,
    ) -> Result<(), Stop> {
        match (durable, until) {
            (false, Some(until)) => self.replay(store, delivery, progress, until).await,
            _ => self.follow(store, delivery, progress, until, durable).await,
        }
    }

    /// Applies each chunk as it comes, and acknowledges it (when durable)
    /// once committed.
    async fn follow(
        &self,
        store: &Arc<Store>,
        mut delivery: Box<dyn Delivery>,
        mut progress: Progress,
        until: Option<u64>,
        durable: bool,
    ) -> Result<(), Stop> {
        let mut fresh = true;
        while let Some(batch) = delivery.next_chunk().await {
            let applied = self
                .apply_on_storage(store, batch, progress, fresh, until)
                .await?;
            progress = applied.progress;
            fresh = applied.fresh;
            if let Some(sequence) = applied.last.filter(|_| durable) {
                if let Err(e) = delivery.ack_through(sequence).await {
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

    /// A replay up to `until`, built for bulk: every message up to `until`
    /// is in the stream already, so it gathers batches of up to
    /// [`REPLAY_BATCH`] messages, and gathers the next while the last is
    /// applied (network and decoding on an async worker, RocksDB on the
    /// blocking pool). Each batch is still checked and committed as
    /// [`Consumer::apply_batch`] does for a live chunk; nothing is
    /// acknowledged.
    async fn replay(
        &self,
        store: &Arc<Store>,
        mut delivery: Box<dyn Delivery>,
        mut progress: Progress,
        until: u64,
    ) -> Result<(), Stop> {
        let mut fresh = true;
        let mut applying: Option<tokio::task::JoinHandle<Result<Applied, Error>>> = None;
        // The batch being applied reaches `until` (or a failure): nothing
        // is gathered after it (nothing may come).
        let mut last_batch = false;
        loop {
            let next = if last_batch {
                None
            } else {
                gather(delivery.as_mut(), until).await
            };
            if let Some(task) = applying.take() {
                let applied = join_storage(task).await.map_err(Stop::Store)?;
                progress = applied.progress;
                fresh = applied.fresh;
                if let Some(why) = applied.interrupted {
                    return Err(Stop::Stream(why));
                }
                if progress.applied_sequence >= until {
                    return Ok(());
                }
            }
            let Some((batch, ended)) = next else {
                return Err(Stop::Stream("message stream ended".into()));
            };
            if ended {
                // What came before the end is applied; then the delivery
                // is recreated from the store's position.
                self.apply_on_storage(store, batch, progress, fresh, Some(until))
                    .await?;
                return Err(Stop::Stream("message stream ended".into()));
            }
            last_batch = reaches(&batch, until);
            let (this, store) = (self.clone(), store.clone());
            applying = Some(tokio::task::spawn_blocking(move || {
                this.apply_batch(&store, batch, progress, fresh, Some(until))
            }));
        }
    }

    /// [`Consumer::apply_batch`] on the blocking pool: RocksDB may block (a
    /// write stall while compaction catches up), never on a thread that
    /// queries and acknowledgements need.
    async fn apply_on_storage(
        &self,
        store: &Arc<Store>,
        batch: Vec<Result<Delivered, SourceError>>,
        progress: Progress,
        fresh: bool,
        until: Option<u64>,
    ) -> Result<Applied, Stop> {
        let (this, store) = (self.clone(), store.clone());
        on_storage(move || this.apply_batch(&store, batch, progress, fresh, until))
            .await
            .map_err(Stop::Store)
    }

    /// Applies one chunk of messages and commits it with the new progress
    /// in one batch; tells watchers and waiting queries. `fresh`: nothing
    /// was applied yet from this delivery, whose first new message may be
    /// past the store's position + 1 when the stream no longer holds what
    /// lies between (its own limits).
    fn apply_batch(
        &self,
        store: &Store,
        batch: Vec<Result<Delivered, SourceError>>,
        progress: Progress,
        mut fresh: bool,
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
                    interrupted = Some(e.to_string());
                    break;
                }
            };
            let seq = msg.sequence;
            if seq <= next.applied_sequence {
                last = Some(seq); // redelivered: already applied
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
                    changed.extend((self.apply)(&mut txn, &event, seq)?);
                    next.events_applied += 1;
                }
                Decoded::Parked(why) => {
                    tracing::warn!(projection = self.name, sequence = seq, subject = %msg.subject, reason = why, "parked a message");
                    metrics::counter!("hub_projection_parked_total", "projection" => self.name)
                        .increment(1);
                    let mut kept = msg.subject.as_str().as_bytes().to_vec();
                    kept.push(0);
                    kept.extend_from_slice(&msg.payload);
                    txn.put(KeyKind::Parked, &seq.to_be_bytes(), kept);
                    next.parked += 1;
                }
            }
            next.applied_sequence = seq;
            applied_payload = Some(msg.payload);
            last = Some(seq);
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
            fresh,
        })
    }
}

/// Whether a replay's `batch` can go no further: it reaches `until`, or
/// the delivery failed.
fn reaches(batch: &[Result<Delivered, SourceError>], until: u64) -> bool {
    match batch.last() {
        Some(Ok(m)) => m.sequence >= until,
        Some(Err(_)) => true,
        None => false,
    }
}

/// Up to [`REPLAY_BATCH`] messages of a replay, fewer when they reach
/// `until` or the delivery fails; `None` when it has ended with nothing,
/// and `ended` when it ended after handing over some.
async fn gather(
    delivery: &mut dyn Delivery,
    until: u64,
) -> Option<(Vec<Result<Delivered, SourceError>>, bool)> {
    let mut batch = delivery.next_chunk().await?;
    while batch.len() < REPLAY_BATCH && !reaches(&batch, until) {
        match delivery.next_chunk().await {
            Some(more) => batch.extend(more),
            None => return Some((batch, true)),
        }
    }
    Some((batch, false))
}

/// What applying one chunk came to.
struct Applied {
    progress: Progress,
    /// The last message handled (acknowledged for a durable consumer).
    last: Option<u64>,
    /// Why the chunk stopped early, if it did: the consumer is recreated.
    interrupted: Option<String>,
    /// Still nothing applied from this delivery.
    fresh: bool,
}

/// Runs storage work `f` on the blocking pool, never on the async workers
/// that queries, acknowledgements and heartbeats need.
pub async fn on_storage<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    join_storage(tokio::task::spawn_blocking(f)).await
}

/// The result of storage work started with `spawn_blocking`.
async fn join_storage<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(t) => t,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("storage task cancelled: {e}"),
    }
}

#[cfg(test)]
mod tests;
