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

use std::time::Duration;

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
        .map_err(|e| Error::Unavailable(format!("cannot connect to NATS: {e}")))
}

fn not_acknowledged_in_time() -> Error {
    Error::Unavailable(format!(
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
        // Events repeat their header names, subjects, codes and the hex of
        // keyed hashes: S2 (per message block, NATS ≥ 2.10) roughly halves
        // the bytes kept forever, for little CPU (see BENCHMARKS.md).
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
        let info = loop {
            match js.get_or_create_stream(wanted.clone()).await {
                Ok(mut s) => match s.info().await {
                    Ok(info) => break info.clone(),
                    Err(e) => tracing::warn!(error = %e, "reading the stream's configuration"),
                },
                Err(e) if e.to_string().contains("insufficient resources") => {
                    return Err(Error::config(
                        "HUB_STREAM_REPLICAS",
                        format!(
                            "JetStream cannot place {} replicas of {stream_name} ({e}): \
                             a cluster needs at least that many servers with JetStream",
                            settings.replicas
                        ),
                    ))
                }
                Err(e) => tracing::warn!(error = %e, stream = stream_name, "waiting for JetStream"),
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Unavailable(format!(
                    "JetStream not reachable within {}s (is nats-server running with -js?)",
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
        {
            let mut updated = have.clone();
            updated.duplicate_window = settings.dedupe_window;
            updated.compression = wanted.compression;
            // Replicas are only ever raised here: lowering them is an
            // operator's decision (docs/operations.md), not a side effect
            // of one service started with the default.
            updated.num_replicas = have.num_replicas.max(settings.replicas);
            // Projections may not change the stream (least privilege): the
            // window is the agency services' business.
            match js.update_stream(updated).await {
                Ok(_) => tracing::info!(
                    window_s = settings.dedupe_window.as_secs(),
                    replicas = have.num_replicas.max(settings.replicas),
                    "duplicate window, compression and replicas updated"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not update the duplicate window, compression or replicas; keeping the stream's")
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
        .map_err(|e| Error::Unavailable(format!("the event log did not acknowledge: {e}")))?;
        Ok(async move {
            match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
                Ok(Ok(ack)) => Ok(ack),
                Ok(Err(e)) => Err(Error::Unavailable(format!(
                    "the event log did not acknowledge: {e}"
                ))),
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
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        tokio::time::timeout(PUBLISH_TIMEOUT, stream.get_raw_message(sequence))
            .await
            .map_err(|_| Error::Unavailable("the event log did not answer within 5s".into()))?
            .map_err(|e| Error::Unavailable(format!("reading message {sequence}: {e}")))
    }

    /// The last stored message on `subject`, if any.
    pub async fn last_on_subject(&self, subject: &str) -> Result<Option<StreamMessage>, Error> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let stream = self
            .js
            .get_stream_no_info(&self.stream_name)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            stream.get_last_raw_message_by_subject(subject),
        )
        .await
        .map_err(|_| Error::Unavailable("the event log did not answer within 5s".into()))?
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(Error::Unavailable(format!(
                "reading the last of {subject}: {e}"
            ))),
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
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let state = &stream.cached_info().state;
        Ok((state.first_sequence, state.last_sequence))
    }
}
