//! Writing and reading the audit trail (`hub.audit.<partnership>` in the
//! event stream): each person-level read is chained onto its partnership's
//! trail before its rows leave (see [`crate::audit`] for the chain), and the
//! trail is read back for `ListAuditRecords`, `ListPersonAccess` and
//! verification.
//!
//! Records of one partnership are written one at a time (a lock per
//! partnership held until JetStream acknowledges), each only if the
//! subject's last message is still the one it chains to. Reads of
//! different partnerships do not wait for each other.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::HeaderMap;
use futures::StreamExt;
use prost::Message;
use tokio::sync::Mutex;

use hub_core::{auth::Caller, Error};
use hub_proto::events::{event::Payload, Event, PersonLevelRead, Sealed};
use hub_runtime::eventlog::EventLog;

use crate::audit::{self, Head, Verification};

/// Longest wait for the next record of a trail being read.
const READ_WAIT: Duration = Duration::from_secs(5);

/// The audit trail's writer and reader.
pub struct AuditTrail {
    log: EventLog,
    key: [u8; 32],
    /// Each partnership's chain head, once known (loaded from the stream
    /// on first use, and again after any failed write).
    heads: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<Head>>>>>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditTrail")
    }
}

fn subject(partnership: &str) -> String {
    format!("hub.audit.{partnership}")
}

fn unavailable(doing: &str, e: impl Into<hub_core::error::Cause>) -> Error {
    Error::unavailable_from(format!("{doing} the audit trail"), e)
}

impl AuditTrail {
    pub fn new(log: EventLog, secret: &hub_core::secret::HubSecret) -> Self {
        Self {
            log,
            key: audit::chain_key(secret),
            heads: Default::default(),
        }
    }

    fn slot(&self, partnership: &str) -> Arc<Mutex<Option<Head>>> {
        self.heads
            .lock()
            .expect("heads lock")
            .entry(partnership.to_string())
            .or_default()
            .clone()
    }

    /// The head of `partnership`'s chain as stored.
    async fn load_head(&self, partnership: &str) -> Result<Head, Error> {
        Ok(
            match self.log.last_on_subject(&subject(partnership)).await? {
                None => Head::default(),
                Some(m) => {
                    let event = Event::decode(m.payload.as_ref()).unwrap_or_default();
                    audit::head_after(&event, m.sequence)
                }
            },
        )
    }

    /// The head this writer last wrote or read for `partnership`, if any.
    pub async fn known_head(&self, partnership: &str) -> Option<Head> {
        self.slot(partnership).lock().await.clone()
    }

    /// Records a person-level read before its rows leave: who, when, which
    /// read, and the person keys it returned. `reason` (break the glass) is
    /// the event's id and the caller's reason sealed under it.
    pub async fn record(
        &self,
        caller: &Caller,
        partnership: &str,
        rpc: &str,
        person_keys: &[String],
        reason: Option<(String, Sealed)>,
    ) -> Result<(), Error> {
        let now = jiff::Timestamp::now();
        let break_glass = reason.is_some();
        let (event_id, sealed) = match reason {
            Some((id, sealed)) => (id, Some(sealed)),
            None => (uuid::Uuid::now_v7().to_string(), None),
        };
        let at = prost_types::Timestamp {
            seconds: now.as_second(),
            nanos: now.subsec_nanosecond(),
        };
        let rows = person_keys.len();
        let mut event = Event {
            event_id: event_id.clone(),
            event_type: "person_level_read".into(),
            schema_version: hub_proto::SCHEMA_VERSION,
            occurred_at: Some(at),
            recorded_at: Some(at),
            agency: "hub".into(),
            org_code: caller.org_code.clone(),
            partnership_code: partnership.into(),
            actor_user_id: caller.user_id.clone(),
            actor_role: caller.role.as_str().into(),
            sealed,
            payload: Some(Payload::PersonLevelRead(PersonLevelRead {
                rpc: rpc.into(),
                rows: rows as u32,
                person_keys: audit::pack(person_keys).map_err(Error::internal)?,
                break_glass,
                ..Default::default()
            })),
            ..Default::default()
        };
        let slot = self.slot(partnership);
        let mut head = slot.lock().await;
        // One retry: another writer (a second instance) may have moved the
        // chain on since this one last looked.
        for attempt in 0..2 {
            let current = match head.as_ref() {
                Some(h) => h.clone(),
                None => self.load_head(partnership).await?,
            };
            let (link, mac) = audit::chain(&self.key, &current, &mut event);
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                current.sequence.to_string().as_str(),
            );
            let published = self
                .log
                .publish(
                    subject(partnership),
                    &format!("{event_id}.{link}"),
                    headers,
                    bytes::Bytes::from(event.encode_to_vec()),
                )
                .await;
            match published {
                Ok(ack) => {
                    *head = Some(Head {
                        link,
                        mac,
                        sequence: ack.sequence,
                    });
                    tracing::info!(user = %caller.user_id, role = caller.role.as_str(), partnership, rpc, rows, break_glass, link, "person-level read audited");
                    return Ok(());
                }
                Err(e) => {
                    *head = None; // read it again from the stream
                    if attempt == 1 {
                        return Err(e);
                    }
                    tracing::debug!(partnership, error = %e, "audit chain moved on; retrying");
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Reads `partnership`'s trail (every partnership's when `None`) from
    /// `since`, oldest first, handing each message's stream sequence and
    /// event to `visit` until it returns false or the trail ends.
    pub async fn read(
        &self,
        partnership: Option<&str>,
        since: Option<jiff::Timestamp>,
        mut visit: impl FnMut(u64, Vec<u8>) -> bool,
    ) -> Result<(), Error> {
        let deliver_policy = match since {
            Some(t) => DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp(t.as_second())
                    .map_err(|_| Error::invalid("since", "out of range"))?,
            },
            None => DeliverPolicy::All,
        };
        let stream = self
            .log
            .jetstream()
            .get_stream(self.log.stream_name())
            .await
            .map_err(|e| unavailable("reading", e))?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: partnership.map_or("hub.audit.>".to_string(), subject),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("reading", e))?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(());
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable("reading", e))?;
        loop {
            let message = tokio::time::timeout(READ_WAIT, messages.next())
                .await
                .map_err(|_| unavailable("reading", "no record arrived within 5 s"))?
                .ok_or_else(|| unavailable("reading", "the trail closed"))?
                .map_err(|e| unavailable("reading", e))?;
            let info = message.info().map_err(|e| unavailable("reading", e))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            if !visit(sequence, message.payload.to_vec()) || pending == 0 {
                return Ok(());
            }
        }
    }

    /// Checks `partnership`'s chain from its first record (see
    /// [`audit::verify`]).
    pub async fn verify(&self, partnership: &str) -> Result<Verification, Error> {
        let mut records = Vec::new();
        self.read(Some(partnership), None, |sequence, body| {
            records.push((sequence, body));
            true
        })
        .await?;
        let expected = self.known_head(partnership).await;
        Ok(audit::verify(&self.key, records, expected.as_ref()))
    }
}
