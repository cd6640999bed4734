//! Where a projection's events come from: the [`EventSource`] trait, its
//! JetStream implementation, and an in-memory one for tests.
//!
//! The consumer's exactly-once, gap, history and parking logic
//! ([`crate::consumer`]) used to take raw `async_nats` messages, so it could
//! only be tested against a real server. It now sees the stream through
//! this trait: what the stream holds (its bounds, a stored message by
//! sequence) and deliveries (chunks of messages in order, acknowledged up
//! to a sequence). [`MemorySource`] implements it over a vector, with the
//! faults a real server shows scripted in: a message lost between server
//! and client, a delivery that ends, redelivery of what was not
//! acknowledged, a failed acknowledgement, a server that does not answer.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use bytes::Bytes;
use futures::StreamExt;
use hub_runtime::eventlog::EventLog;
use tokio::sync::watch;

/// Messages a delivery hands over at most at once (one RocksDB batch).
pub const CHUNK: usize = 512;
/// Messages asked of the server at once (the next pull goes out when half
/// have arrived, so the consumer rarely waits on a round trip).
const PULL_BATCH: usize = 2 * CHUNK;
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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the stream could not be read. Every kind is transient to the
/// consumer (it retries from the store's position); the kinds say where.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The stream's state or a stored message could not be read.
    #[error(transparent)]
    Log(#[from] hub_core::Error),
    /// The consumer could not be created.
    #[error("creating the consumer: {0}")]
    Consumer(#[source] BoxError),
    /// A delivery failed or ended.
    #[error("message stream: {0}")]
    Delivery(#[source] BoxError),
    /// An acknowledgement was not taken.
    #[error("acknowledgement: {0}")]
    Ack(#[source] BoxError),
}

/// One message as delivered: its stream sequence, subject and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub sequence: u64,
    /// Shares the message's bytes: read only when a message is parked.
    pub subject: async_nats::Subject,
    pub payload: Bytes,
}

/// One message as stored, read by sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub payload: Bytes,
    /// When the stream took it, in seconds since the Unix epoch.
    pub published: f64,
}

/// Whose delivery: the live store's, resumable and acknowledged, or a
/// rebuild's, which keeps its place in its own store and dies with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Replay,
}

/// The stream as a projection reads it.
#[tonic::async_trait]
pub trait EventSource: Send + Sync + 'static {
    /// The first and last sequences held (first is last + 1 when empty).
    async fn bounds(&self) -> Result<(u64, u64), SourceError>;
    /// The message stored at `sequence`.
    async fn stored(&self, sequence: u64) -> Result<Stored, SourceError>;
    /// A delivery of every message from sequence `from` on, in order,
    /// for the consumer `name`. A live delivery replaces any earlier one
    /// of the same name (it never resumes an old position).
    async fn deliver(
        &self,
        name: &str,
        from: u64,
        mode: Mode,
    ) -> Result<Box<dyn Delivery>, SourceError>;
}

/// Messages in order, a chunk at a time.
#[tonic::async_trait]
pub trait Delivery: Send {
    /// The messages ready now (at least one, at most [`CHUNK`]), waiting
    /// for the first; `None` when the delivery has ended.
    async fn next_chunk(&mut self) -> Option<Vec<Result<Delivered, SourceError>>>;
    /// Acknowledges every message of the last chunk up to and including
    /// `sequence` (live deliveries; a replay's are never acknowledged).
    async fn ack_through(&mut self, sequence: u64) -> Result<(), SourceError>;
}

/// The JetStream stream, read through pull consumers.
pub struct JetStreamSource {
    log: EventLog,
}

impl JetStreamSource {
    pub fn new(log: EventLog) -> Self {
        Self { log }
    }
}

fn consumer_config(name: &str, from: u64, mode: Mode) -> pull::Config {
    let live = mode == Mode::Live;
    pull::Config {
        durable_name: live.then(|| name.to_string()),
        // A rebuild's consumer is named at random: agencies' NATS users are
        // denied the durable names (deploy/nats/accounts.conf), and cannot
        // list consumers, so they cannot guess this one to re-filter it.
        name: (!live).then(|| format!("{name}-rebuild-{}", uuid::Uuid::now_v7().simple())),
        description: Some(format!("{name}: projection consumer")),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: from,
        },
        // A rebuild keeps its place in its own store and its consumer dies
        // with it: acknowledgements would only cost the server work.
        ack_policy: if live {
            AckPolicy::All
        } else {
            AckPolicy::None
        },
        ack_wait: Duration::from_secs(60),
        max_ack_pending: 10_000,
        inactive_threshold: if live {
            Duration::ZERO
        } else {
            Duration::from_secs(60)
        },
        ..Default::default()
    }
}

#[tonic::async_trait]
impl EventSource for JetStreamSource {
    async fn bounds(&self) -> Result<(u64, u64), SourceError> {
        Ok(self.log.sequences().await?)
    }

    async fn stored(&self, sequence: u64) -> Result<Stored, SourceError> {
        let m = self.log.message(sequence).await?;
        Ok(Stored {
            published: m.time.unix_timestamp_nanos() as f64 / 1e9,
            payload: m.payload,
        })
    }

    async fn deliver(
        &self,
        name: &str,
        from: u64,
        mode: Mode,
    ) -> Result<Box<dyn Delivery>, SourceError> {
        let consumer_error =
            |e: &dyn std::fmt::Display| SourceError::Consumer(e.to_string().into());
        let stream = self
            .log
            .jetstream()
            .get_stream_no_info(self.log.stream_name())
            .await
            .map_err(|e| consumer_error(&e))?;
        let config = consumer_config(name, from, mode);
        // Never resume an old consumer of the same name (a rebuild's are
        // new each time; the durable one is replaced), so a consumer always
        // starts right after what the store holds.
        if let Some(name) = config.durable_name.as_ref().or(config.name.as_ref()) {
            let _ = stream.delete_consumer(name).await;
        }
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| consumer_error(&e))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .expires(PULL_EXPIRES)
            .heartbeat(IDLE_HEARTBEAT)
            .messages()
            .await
            .map_err(|e| consumer_error(&e))?;
        Ok(Box::new(JetStreamDelivery {
            chunks: messages.ready_chunks(CHUNK),
            held: Vec::new(),
        }))
    }
}

struct JetStreamDelivery {
    chunks: futures::stream::ReadyChunks<pull::Stream>,
    /// The last chunk's messages, to acknowledge through.
    held: Vec<(u64, jetstream::Message)>,
}

#[tonic::async_trait]
impl Delivery for JetStreamDelivery {
    async fn next_chunk(&mut self) -> Option<Vec<Result<Delivered, SourceError>>> {
        let chunk = self.chunks.next().await?;
        self.held.clear();
        let mut out = Vec::with_capacity(chunk.len());
        for item in chunk {
            let message = match item {
                Ok(m) => m,
                Err(e) => {
                    out.push(Err(SourceError::Delivery(Box::new(e))));
                    break;
                }
            };
            let sequence = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => {
                    out.push(Err(SourceError::Delivery(
                        format!("message without JetStream info: {e}").into(),
                    )));
                    break;
                }
            };
            out.push(Ok(Delivered {
                sequence,
                subject: message.subject.clone(),
                payload: message.payload.clone(),
            }));
            self.held.push((sequence, message));
        }
        Some(out)
    }

    async fn ack_through(&mut self, sequence: u64) -> Result<(), SourceError> {
        // AckPolicy::All: acknowledging one message acknowledges all before.
        match self.held.iter().find(|(s, _)| *s == sequence) {
            Some((_, message)) => message.ack().await.map_err(SourceError::Ack),
            None => Ok(()),
        }
    }
}

/// A fault the in-memory source shows once, in the order scripted.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The next delivery loses this sequence (never hands it over).
    Lose(u64),
    /// The next delivery ends after handing over this many messages.
    EndAfter(usize),
    /// The next delivery starts right after the last acknowledged message,
    /// whatever it was asked for (the server redelivering what was never
    /// acknowledged).
    RedeliverUnacked,
    /// The next acknowledgement fails.
    AckFails,
    /// The next `bounds`, `stored` or `deliver` call fails.
    Unavailable,
    /// The next replay's delivery hands over nothing, ever (a server that
    /// never answers its pulls): a rebuild that stays running.
    StallReplay,
}

#[derive(Default)]
struct Memory {
    /// Sequence `first + i` is `messages[i]`.
    first: u64,
    messages: Vec<(String, Bytes)>,
    acked: u64,
    faults: VecDeque<Fault>,
    /// `(name, from, mode)` of every delivery opened.
    deliveries: Vec<(String, u64, Mode)>,
    /// Every message handed over, by sequence, in order.
    handed: Vec<u64>,
}

/// An event stream in memory, for tests of the consumer without a server.
#[derive(Clone)]
pub struct MemorySource {
    state: Arc<Mutex<Memory>>,
    /// The last sequence, for deliveries waiting on new messages.
    last: watch::Sender<u64>,
    chunk: usize,
}

impl Default for MemorySource {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySource {
    pub fn new() -> Self {
        Self::with_chunk(CHUNK)
    }

    /// A source handing over at most `chunk` messages at once.
    pub fn with_chunk(chunk: usize) -> Self {
        let state = Memory {
            first: 1,
            ..Default::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            last: watch::channel(0).0,
            chunk: chunk.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a message; its sequence.
    pub fn push(&self, subject: &str, payload: impl Into<Bytes>) -> u64 {
        let mut s = self.lock();
        s.messages.push((subject.into(), payload.into()));
        let last = s.first + s.messages.len() as u64 - 1;
        drop(s);
        self.last.send_replace(last);
        last
    }

    /// Replaces the whole history (a stream restored from another backup).
    pub fn replace(&self, messages: Vec<(String, Bytes)>) {
        let mut s = self.lock();
        s.first = 1;
        s.messages = messages;
        s.acked = 0;
        let last = s.messages.len() as u64;
        drop(s);
        self.last.send_replace(last);
    }

    /// Scripts a fault, shown once after those scripted before it.
    pub fn fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// The last acknowledged sequence.
    pub fn acked(&self) -> u64 {
        self.lock().acked
    }

    /// Every delivery opened: `(name, from, mode)`.
    pub fn deliveries(&self) -> Vec<(String, u64, Mode)> {
        self.lock().deliveries.clone()
    }

    /// Every sequence handed over, in order (redeliveries included).
    pub fn handed(&self) -> Vec<u64> {
        self.lock().handed.clone()
    }

    fn take(&self, wanted: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut s = self.lock();
        let at = s.faults.iter().position(wanted)?;
        s.faults.remove(at)
    }

    fn unavailable(&self) -> Result<(), SourceError> {
        match self.take(|f| *f == Fault::Unavailable) {
            Some(_) => Err(SourceError::Log(hub_core::Error::unavailable(
                "scripted: the stream does not answer",
            ))),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl EventSource for MemorySource {
    async fn bounds(&self) -> Result<(u64, u64), SourceError> {
        self.unavailable()?;
        let s = self.lock();
        Ok((s.first, s.first + s.messages.len() as u64 - 1))
    }

    async fn stored(&self, sequence: u64) -> Result<Stored, SourceError> {
        self.unavailable()?;
        let s = self.lock();
        let (_, payload) = sequence
            .checked_sub(s.first)
            .and_then(|i| s.messages.get(i as usize))
            .ok_or_else(|| {
                SourceError::Log(hub_core::Error::unavailable(format!(
                    "no message {sequence}"
                )))
            })?;
        Ok(Stored {
            payload: payload.clone(),
            published: 0.0,
        })
    }

    async fn deliver(
        &self,
        name: &str,
        from: u64,
        mode: Mode,
    ) -> Result<Box<dyn Delivery>, SourceError> {
        self.unavailable()?;
        let mut next = from;
        if self.take(|f| *f == Fault::RedeliverUnacked).is_some() {
            next = self.lock().acked + 1;
        }
        let lose = match self.take(|f| matches!(f, Fault::Lose(_))) {
            Some(Fault::Lose(s)) => Some(s),
            _ => None,
        };
        let end_after = match self.take(|f| matches!(f, Fault::EndAfter(_))) {
            Some(Fault::EndAfter(n)) => Some(n),
            _ => None,
        };
        let stall = mode == Mode::Replay && self.take(|f| *f == Fault::StallReplay).is_some();
        self.lock().deliveries.push((name.into(), from, mode));
        Ok(Box::new(MemoryDelivery {
            source: self.clone(),
            last: self.last.subscribe(),
            next,
            lose,
            end_after,
            stall,
            mode,
        }))
    }
}

struct MemoryDelivery {
    source: MemorySource,
    last: watch::Receiver<u64>,
    next: u64,
    lose: Option<u64>,
    end_after: Option<usize>,
    stall: bool,
    mode: Mode,
}

#[tonic::async_trait]
impl Delivery for MemoryDelivery {
    async fn next_chunk(&mut self) -> Option<Vec<Result<Delivered, SourceError>>> {
        if self.stall {
            std::future::pending::<()>().await;
        }
        loop {
            if self.end_after == Some(0) {
                return None;
            }
            let next = self.next;
            self.last.wait_for(|last| *last >= next).await.ok()?;
            let out = self.fill();
            if !out.is_empty() {
                return Some(out);
            }
        }
    }

    async fn ack_through(&mut self, sequence: u64) -> Result<(), SourceError> {
        if self.mode == Mode::Replay {
            return Ok(());
        }
        if self.source.take(|f| *f == Fault::AckFails).is_some() {
            return Err(SourceError::Ack("scripted: the ack was lost".into()));
        }
        let mut s = self.source.lock();
        s.acked = s.acked.max(sequence);
        Ok(())
    }
}

impl MemoryDelivery {
    /// Hands over what is there, up to a chunk (possibly nothing, when the
    /// only new message was lost).
    fn fill(&mut self) -> Vec<Result<Delivered, SourceError>> {
        let source = self.source.clone();
        let mut s = source.lock();
        let mut out = Vec::new();
        while out.len() < source.chunk && self.end_after != Some(0) {
            let Some((subject, payload)) = self
                .next
                .checked_sub(s.first)
                .and_then(|i| s.messages.get(i as usize))
                .cloned()
            else {
                break;
            };
            let sequence = self.next;
            self.next += 1;
            if self.lose == Some(sequence) {
                self.lose = None;
                continue;
            }
            s.handed.push(sequence);
            out.push(Ok(Delivered {
                sequence,
                subject: subject.into(),
                payload,
            }));
            if let Some(n) = self.end_after.as_mut() {
                *n -= 1;
            }
        }
        out
    }
}

/// What the consumer's and the engine's unit tests share: events told apart
/// by id, and an apply function that records each application.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use prost::Message;

    use hub_proto::events::{event::Payload, Event, NaloxoneSupplied};
    use hub_store::{KeyKind, Store};

    use crate::consumer::ApplyFn;

    /// An event the test apply function counts, told apart by its id.
    pub fn event(n: u64) -> Vec<u8> {
        Event {
            event_id: format!("e{n}"),
            event_type: "naloxone_supplied".into(),
            schema_version: hub_proto::SCHEMA_VERSION,
            payload: Some(Payload::NaloxoneSupplied(NaloxoneSupplied::default())),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// Records, per event id, how many times it was applied and at which
    /// sequences: a second application shows as a count of 2.
    pub fn apply() -> Arc<ApplyFn> {
        Arc::new(|txn, event, seq| {
            let key = event.event_id.as_bytes();
            let mut seen = txn.get(KeyKind::Counter, key)?.unwrap_or_default();
            seen.extend_from_slice(&seq.to_be_bytes());
            txn.put(KeyKind::Counter, key, seen);
            Ok(Vec::new())
        })
    }

    /// The sequences at which each of events `1..=n` was applied.
    pub fn applications(store: &Store, n: u64) -> Vec<Vec<u64>> {
        (1..=n)
            .map(|i| {
                store
                    .get(KeyKind::Counter, format!("e{i}").as_bytes())
                    .expect("read")
                    .unwrap_or_default()
                    .chunks(8)
                    .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            })
            .collect()
    }
}
