//! The event log: one JetStream stream (`HUB_EVENTS`) holding every event,
//! the system of record.
//!
//! Every service creates it or checks it at start-up: file storage, kept
//! forever (no age, count or size limit), subjects `hub.>` (agency events
//! under `hub.events.<agency>.<partnership>.<event_type>`, the hub's own
//! records under `hub.audit.` and `hub.admin.`).
//!
//! # Deduplication
//! Each command is published with `Nats-Msg-Id = <org_code>:<request_id>`.
//! JetStream drops a second message with the same id inside the stream's
//! duplicate window and answers with the first message's sequence and
//! `duplicate: true`; the pipeline then reads that first message back to
//! return its event id (or `ALREADY_EXISTS` when the body differs).
//!
//! The window (`HUB_DEDUPE_WINDOW`, default 24 h) is kept in the server's
//! memory: one entry of roughly 150 bytes (id, sequence, time, map overhead)
//! per message published inside it. A national year of about 5 million
//! events is ~14,000 a day, so 24 h costs ~2 MB; a benchmark pushing 1,000
//! commands a second for a whole window would cost ~13 GB, which is why
//! benchmarks set a short window. A retry after the window is recorded
//! again: clients retry within hours, not days.

use std::{sync::Arc, time::Duration};

use async_nats::{
    header::{HeaderMap, NATS_MESSAGE_ID},
    jetstream::{
        self,
        message::StreamMessage,
        publish::PublishAck,
        stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
    },
    Client, ServerAddr,
};
use bytes::Bytes;

use hub_core::Error;

/// Longest a command waits for JetStream's acknowledgement.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a service waits for NATS at start-up before giving up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects to NATS. Returns at once; the client reconnects by itself
/// whenever the server is away.
pub async fn connect(args: &crate::config::NatsArgs, name: &str) -> Result<Client, Error> {
    let urls: Vec<ServerAddr> = args.nats_urls()?;
    args.nats_options()
        .await?
        .name(name)
        .custom_inbox_prefix(inbox_prefix(name))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected; reconnecting")
                }
                other => tracing::info!(event = %other, "NATS event"),
            }
        })
        .connect(urls)
        .await
        .map_err(|e| Error::unavailable_from("cannot connect to NATS", e))
}

/// Where the replies to `process` arrive: `_INBOX_<process>.>`, with `-`
/// as `_`. Each NATS user of deploy/nats/hub.conf may subscribe only to its
/// own prefix, so no process reads another's replies (its data keys, its
/// consumers' messages).
pub fn inbox_prefix(process: &str) -> String {
    format!("_INBOX_{}", process.replace(['-', '.', '*', '>', ' '], "_"))
}

fn not_acknowledged_in_time() -> Error {
    Error::unavailable(format!(
        "the event log did not acknowledge within {}s",
        PUBLISH_TIMEOUT.as_secs()
    ))
}

/// The event stream and the client that reaches it.
#[derive(Clone)]
pub struct EventLog {
    client: Client,
    js: jetstream::Context,
    stream_name: String,
    settings: StreamSettings,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventLog({})", self.stream_name)
    }
}

/// What the hub's settings ask of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// `HUB_DEDUPE_WINDOW`.
    pub dedupe_window: Duration,
    /// `HUB_STREAM_REPLICAS`: copies kept on different cluster servers.
    pub replicas: usize,
}

/// The stream configuration the hub requires.
pub fn stream_config(name: &str, settings: StreamSettings) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        description: Some(
            "Harm-reduction hub: every event, kept forever (system of record)".into(),
        ),
        subjects: vec!["hub.>".into()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_age: Duration::ZERO,
        max_messages: -1,
        max_bytes: -1,
        duplicate_window: settings.dedupe_window,
        // With 3 replicas a write is acknowledged once a majority of the
        // cluster has it: losing one server loses nothing acknowledged.
        num_replicas: settings.replicas,
        allow_direct: true,
        // Nothing acknowledged is ever removed: not one message (an audit
        // record, say) by the API, nor the stream's contents by a purge,
        // whoever asks. Only deleting the whole stream remains, and only
        // the operator's NATS user may (docs/operations.md).
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        // Events repeat their header names, subjects, codes and the hex of
        // keyed hashes: S2 (per message block, NATS ≥ 2.10) took 38 % off
        // the hub's disk per event (710 → 442 bytes, projections' stores
        // included) for about 2 µs of nats-server's CPU per message and
        // reader (BENCHMARKS.md, "Stream compression").
        compression: Some(stream::Compression::S2),
        ..Default::default()
    }
}

impl EventLog {
    /// Creates the stream, or checks an existing one, retrying while NATS is
    /// not yet reachable (up to [`STARTUP_TIMEOUT`]).
    pub async fn open(
        client: Client,
        stream_name: &str,
        settings: StreamSettings,
    ) -> Result<Self, Error> {
        let js = jetstream::ContextBuilder::new()
            .timeout(PUBLISH_TIMEOUT)
            .build(client.clone());
        let wanted = stream_config(stream_name, settings);
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let mut last_error = String::new();
        let info = loop {
            match js.get_or_create_stream(wanted.clone()).await {
                Ok(mut s) => match s.info().await {
                    Ok(info) => break info.clone(),
                    Err(e) => tracing::warn!(error = %e, "reading the stream's configuration"),
                },
                // Recognised by JetStream's error code, not its wording.
                Err(e)
                    if matches!(
                        e.kind(),
                        jetstream::context::CreateStreamErrorKind::JetStream(ref j)
                            if j.error_code() == jetstream::ErrorCode::INSUFFICIENT_RESOURCES
                    ) =>
                {
                    return Err(Error::config(
                        "HUB_STREAM_REPLICAS",
                        format!(
                            "JetStream cannot place {} replicas of {stream_name} ({e}): \
                             a cluster needs at least that many servers with JetStream",
                            settings.replicas
                        ),
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %e, stream = stream_name, "waiting for JetStream");
                    last_error = e.to_string();
                }
            }
            if tokio::time::Instant::now() > deadline {
                // Under least privilege (deploy/nats/hub.conf) only the
                // operator may create the stream: its request goes
                // unanswered, as if JetStream were away.
                return Err(Error::unavailable(format!(
                    "stream {stream_name} not found or JetStream not reachable within {}s \
                     ({last_error}): is nats-server running with JetStream, and has the \
                     operator created the stream (`hubctl nats init`)?",
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let have = &info.config;
        if have.storage != StorageType::File {
            return Err(Error::config(
                "HUB_STREAM",
                format!("stream {stream_name} must use file storage"),
            ));
        }
        if !have.subjects.iter().any(|s| s == "hub.>") {
            return Err(Error::config(
                "HUB_STREAM",
                format!("stream {stream_name} must take subjects hub.>"),
            ));
        }
        if have.max_age != Duration::ZERO || have.max_messages != -1 || have.max_bytes != -1 {
            return Err(Error::config(
                "HUB_STREAM",
                format!("stream {stream_name} has limits that would delete events; it must keep everything"),
            ));
        }
        if have.duplicate_window != settings.dedupe_window
            || have.compression != wanted.compression
            || have.num_replicas < settings.replicas
            || !have.deny_delete
            || !have.deny_purge
            || have.allow_rollup
        {
            let mut updated = have.clone();
            updated.duplicate_window = settings.dedupe_window;
            updated.compression = wanted.compression;
            updated.deny_delete = true;
            updated.deny_purge = true;
            updated.allow_rollup = false;
            // Replicas are only ever raised here: lowering them is an
            // operator's decision (docs/operations.md), not a side effect
            // of one service started with the default.
            updated.num_replicas = have.num_replicas.max(settings.replicas);
            // Under least privilege no service may change the stream: the
            // operator does (`hubctl nats init`), and this only warns.
            match tokio::time::timeout(PUBLISH_TIMEOUT, js.update_stream(updated)).await {
                Ok(Ok(_)) => tracing::info!(
                    window_s = settings.dedupe_window.as_secs(),
                    replicas = have.num_replicas.max(settings.replicas),
                    "stream settings updated (duplicate window, compression, replicas, deny delete and purge)"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, deny_delete = have.deny_delete, deny_purge = have.deny_purge, "the stream's settings differ from this service's and it may not change them: run `hubctl nats init` as the operator")
                }
                Err(_) => {
                    tracing::warn!(deny_delete = have.deny_delete, deny_purge = have.deny_purge, "the stream's settings differ from this service's and it may not change them: run `hubctl nats init` as the operator")
                }
            }
        }
        Ok(Self {
            client,
            js,
            stream_name: stream_name.to_string(),
            settings,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// What the settings asked of the stream.
    pub fn settings(&self) -> StreamSettings {
        self.settings
    }

    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// Publishes and waits (at most [`PUBLISH_TIMEOUT`]) for the ack.
    pub async fn publish(
        &self,
        subject: String,
        msg_id: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<PublishAck, Error> {
        let attempt = async {
            let pending = self.send(subject, msg_id, headers, body).await?;
            pending.await
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err(not_acknowledged_in_time()),
        }
    }

    /// Sends a message without waiting for its acknowledgement, so that
    /// many can be in flight at once (batch uploads); the returned future
    /// waits (at most [`PUBLISH_TIMEOUT`]) for it. Messages sent one after
    /// another on this client reach the stream in that order.
    pub async fn send(
        &self,
        subject: String,
        msg_id: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<impl std::future::Future<Output = Result<PublishAck, Error>>, Error> {
        headers.insert(NATS_MESSAGE_ID, msg_id);
        let sent = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            self.js.publish_with_headers(subject, headers, body),
        )
        .await
        .map_err(|_| not_acknowledged_in_time())?
        .map_err(|e| Error::unavailable_from("the event log did not acknowledge", e))?;
        Ok(async move {
            match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
                Ok(Ok(ack)) => Ok(ack),
                Ok(Err(e)) => Err(Error::unavailable_from(
                    "the event log did not acknowledge",
                    e,
                )),
                Err(_) => Err(not_acknowledged_in_time()),
            }
        })
    }

    /// The stored message at `sequence`.
    pub async fn message(&self, sequence: u64) -> Result<StreamMessage, Error> {
        let stream = self
            .js
            .get_stream_no_info(&self.stream_name)
            .await
            .map_err(|e| Error::unavailable_from("finding the event stream", e))?;
        tokio::time::timeout(PUBLISH_TIMEOUT, stream.get_raw_message(sequence))
            .await
            .map_err(|_| Error::unavailable("the event log did not answer within 5s"))?
            .map_err(|e| Error::unavailable_from(format!("reading message {sequence}"), e))
    }

    /// The messages under `filter` (an agency's own `hub.events.<agency>.>`)
    /// from `first` to `last` by sequence, read through one short-lived
    /// consumer limited to `filter` (see [`ReadBack`]). A sequence in the
    /// range that is not under `filter` is absent from the answer.
    async fn own_messages(
        &self,
        filter: &str,
        first: u64,
        last: u64,
    ) -> Result<std::collections::HashMap<u64, ReadMessage>, Error> {
        use async_nats::jetstream::consumer::{push, AckPolicy, DeliverPolicy};
        use futures::StreamExt;
        let unavailable = |e: hub_core::error::Cause| {
            Error::unavailable_from(format!("reading messages {first}..={last} back"), e)
        };
        let span = last.saturating_sub(first) + 1;
        let attempt = async {
            let inbox = self.client.new_inbox();
            let name = format!("dup-{}", inbox.rsplit('.').next().unwrap_or_default());
            let mut delivered = self
                .client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| unavailable(e.into()))?;
            let stream = self
                .js
                .get_stream_no_info(&self.stream_name)
                .await
                .map_err(|e| unavailable(e.into()))?;
            let consumer = stream
                .create_consumer(push::Config {
                    name: Some(name),
                    deliver_subject: inbox,
                    filter_subject: filter.to_string(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: first,
                    },
                    // Never acknowledged: explicit acks only so that the
                    // server sends no more than the range can hold.
                    ack_policy: AckPolicy::Explicit,
                    max_ack_pending: i64::try_from(span).unwrap_or(i64::MAX),
                    max_deliver: 1,
                    memory_storage: true,
                    num_replicas: 1,
                    inactive_threshold: Duration::from_secs(2),
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(e.into()))?;
            let mut pending = consumer.cached_info().num_pending;
            let mut found = std::collections::HashMap::new();
            while pending > 0 {
                let message = delivered
                    .next()
                    .await
                    .ok_or_else(|| unavailable("the consumer closed".into()))?;
                pending -= 1;
                let message = jetstream::Message {
                    message,
                    context: self.js.clone(),
                };
                let sequence = message.info().map_err(&unavailable)?.stream_sequence;
                if sequence > last {
                    break;
                }
                found.insert(
                    sequence,
                    ReadMessage {
                        headers: message.message.headers.clone().unwrap_or_default(),
                        payload: message.message.payload.clone(),
                    },
                );
                if sequence == last {
                    break;
                }
            }
            let _ = delivered.unsubscribe().await;
            Ok(found)
        };
        // Thousands a second even on a small machine.
        let allowed = PUBLISH_TIMEOUT + Duration::from_millis(span.min(1_000_000));
        tokio::time::timeout(allowed, attempt)
            .await
            .map_err(|_| unavailable("no answer in time".into()))?
    }

    /// The last stored message on `subject`, if any.
    pub async fn last_on_subject(&self, subject: &str) -> Result<Option<StreamMessage>, Error> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let stream = self
            .js
            .get_stream_no_info(&self.stream_name)
            .await
            .map_err(|e| Error::unavailable_from("finding the event stream", e))?;
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            stream.get_last_raw_message_by_subject(subject),
        )
        .await
        .map_err(|_| Error::unavailable("the event log did not answer within 5s"))?
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(Error::unavailable_from(
                format!("reading the last of {subject}"),
                e,
            )),
        }
    }

    /// The stream's last sequence.
    pub async fn last_sequence(&self) -> Result<u64, Error> {
        Ok(self.sequences().await?.1)
    }

    /// The stream's first and last sequences (first is last + 1 when it is
    /// empty).
    pub async fn sequences(&self) -> Result<(u64, u64), Error> {
        let stream = self
            .js
            .get_stream(&self.stream_name)
            .await
            .map_err(|e| Error::unavailable_from("reading the event stream's state", e))?;
        let state = &stream.cached_info().state;
        Ok((state.first_sequence, state.last_sequence))
    }
}

/// Reads back an agency's own messages by sequence, for retried commands.
///
/// JetStream answers a retried command "duplicate" with the first
/// recording's sequence; the pipeline needs that message (its event id and
/// request digest: in the body, or in headers for events recorded before
/// decision record 0012). An agency's NATS user may not read the
/// stream by sequence (deploy/nats/accounts.conf), only through a consumer
/// whose create subject (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`,
/// NATS >= 2.10) names the filter `hub.events.<agency>.>`. One consumer per
/// retried command would be slow for a batch upload retried whole, so the
/// sequences asked for meanwhile are gathered, sorted, and read in runs,
/// one short-lived consumer per run of nearby sequences.
#[derive(Clone)]
pub struct ReadBack {
    asks: tokio::sync::mpsc::UnboundedSender<Ask>,
}

/// A message read back: its headers and body.
#[derive(Debug, Clone, Default)]
pub struct ReadMessage {
    pub headers: HeaderMap,
    pub payload: Bytes,
}

type Ask = (
    u64,
    tokio::sync::oneshot::Sender<Result<Option<ReadMessage>, Error>>,
);

/// Sequences further apart than this are read by separate consumers.
const RUN_GAP: u64 = 2_048;
/// The most sequences one consumer reads through.
const RUN_SPAN: u64 = 20_000;

/// Groups sorted sequences into runs (first, last, how many asked).
fn runs(sorted: &[u64]) -> Vec<(u64, u64, usize)> {
    let mut out: Vec<(u64, u64, usize)> = Vec::new();
    for &s in sorted {
        match out.last_mut() {
            Some((first, last, n)) if s - *last <= RUN_GAP && s - *first < RUN_SPAN => {
                *last = s;
                *n += 1;
            }
            _ => out.push((s, s, 1)),
        }
    }
    out
}

impl ReadBack {
    /// Starts the reader of `filter`'s messages in `log`.
    pub fn start(log: EventLog, filter: String) -> Self {
        let (asks, mut queue) = tokio::sync::mpsc::unbounded_channel::<Ask>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = queue.try_recv() {
                    batch.push(more);
                }
                batch.sort_by_key(|(s, _)| *s);
                let sequences: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
                let mut answers = batch.into_iter();
                for (first, last, n) in runs(&sequences) {
                    // One read answers many: its error, if any, is shared
                    // by all of them, cause and all.
                    let read = log
                        .own_messages(&filter, first, last)
                        .await
                        .map_err(Arc::new);
                    for (sequence, reply) in answers.by_ref().take(n) {
                        let answer = match &read {
                            Ok(found) => Ok(found.get(&sequence).cloned()),
                            Err(e) => Err(Error::unavailable_from(
                                "reading back the stream's messages",
                                e.clone(),
                            )),
                        };
                        let _ = reply.send(answer);
                    }
                }
            }
        });
        Self { asks }
    }

    /// The message at `sequence`, if it is under this reader's filter.
    pub async fn message(&self, sequence: u64) -> Result<Option<ReadMessage>, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.asks
            .send((sequence, reply))
            .map_err(|_| Error::unavailable("the read-back task has stopped"))?;
        answer
            .await
            .map_err(|_| Error::unavailable("the read-back task has stopped"))?
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn nearby_sequences_share_a_run_and_distant_ones_do_not() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[7]), vec![(7, 7, 1)]);
        assert_eq!(
            runs(&[1, 2, 2, 500, 5_000, 5_001]),
            vec![(1, 500, 4), (5_000, 5_001, 2)]
        );
        let long: Vec<u64> = (1..=25_000).collect();
        assert_eq!(
            runs(&long),
            vec![(1, 20_000, 20_000), (20_001, 25_000, 5_000)]
        );
    }
}
