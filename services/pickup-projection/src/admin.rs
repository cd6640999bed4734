//! `hub.admin.v1.AdminService` (admins only), hosted where the people are
//! known: erasure needs every identifier linked to the person, and the
//! audit trail is written by this projection's own person-level reads.
//!
//! Erasure destroys the data key of every key the person is known by (the
//! keys that sealed their names, dates of birth and notes), records
//! `PersonErased` under `hub.admin.person_erased`, and returns once this
//! projection has applied it. A rebuild replays the sealed events, but with
//! the keys gone they can never be opened again.

use std::sync::Arc;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use prost::Message;
use tonic::{Request, Response, Status};

use hub_core::{auth::Action, person, pseudonym::Pseudonymiser, sealing, validate, Error};
use hub_projection::{identity, Projection};
use hub_proto::{
    admin::{
        admin_service_server::AdminService, AuditRecord, ErasePersonRequest,
        ListAuditRecordsRequest, ListAuditRecordsResponse, PersonErasure,
    },
    events::{event::Payload, Event, PersonErased},
};
use hub_runtime::{keystore::KeyStore, ApiError};

use crate::api::DataKeyCache;

pub struct AdminApi {
    pub projection: Arc<Projection>,
    pub keys: KeyStore,
    pub pseudonymiser: Pseudonymiser,
    pub data_keys: DataKeyCache,
}

impl AdminApi {
    /// Why a caller broke the glass, opened from its seal (or a note that
    /// it can no longer be read: the person was erased).
    async fn reason(&self, e: &Event) -> String {
        let Some(sealed) = e.sealed.as_ref() else {
            return String::new();
        };
        match self.keys.get(&sealed.key_id).await {
            Ok(Some(key)) => sealing::open(&key, &e.event_id, sealed)
                .map(|d| d.text)
                .unwrap_or_else(|_| "(the reason cannot be opened)".into()),
            Ok(None) => "(erased with the person's data)".into(),
            Err(_) => "(the key store is unreachable: try again)".into(),
        }
    }
}

/// Most audit records one call returns.
pub const MAX_AUDIT_RECORDS: u32 = 10_000;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn erase_person(
        &self,
        request: Request<ErasePersonRequest>,
    ) -> Result<Response<PersonErasure>, Status> {
        let caller = self.projection.operator(&request)?;
        let r = request.into_inner();
        let id = person::recognise(&r.identifier)
            .map_err(|d| ApiError(Error::invalid("identifier", d)))?;
        let key = self.pseudonymiser.identifier_key(&id);
        let store = self.projection.store();
        // Every key the person is known by, in every partnership; the
        // reply names them as the first partnership knowing them does.
        let (keys, known_in, root) = {
            let txn = store.txn();
            let corrupt = |e: hub_store::Error| ApiError(Error::Internal(e.to_string()));
            let codes: Vec<&str> = self
                .projection
                .partnerships
                .iter()
                .map(|p| p.code.as_str())
                .collect();
            let (keys, known_in) =
                identity::everywhere(&txn, &key, codes.iter().copied()).map_err(corrupt)?;
            let mut root = None;
            if let Some(p) = known_in.first() {
                root = identity::root_of(&txn, p, &key).map_err(corrupt)?;
            }
            (keys, known_in, root.unwrap_or_else(|| key.clone()))
        };
        for k in &keys {
            self.keys.destroy(k).await.map_err(ApiError)?;
        }
        self.data_keys.lock().expect("cache lock").clear();
        let now = jiff::Timestamp::now();
        let at = prost_types::Timestamp {
            seconds: now.as_second(),
            nanos: now.subsec_nanosecond(),
        };
        let event_id = uuid::Uuid::now_v7().to_string();
        let event = Event {
            event_id: event_id.clone(),
            event_type: "person_erased".into(),
            schema_version: hub_proto::SCHEMA_VERSION,
            occurred_at: Some(at),
            recorded_at: Some(at),
            agency: "hub".into(),
            org_code: caller.org_code.clone(),
            actor_user_id: caller.user_id.clone(),
            actor_role: caller.role.as_str().into(),
            person_key: root.clone(),
            linked_person_keys: keys.iter().filter(|k| **k != root).cloned().collect(),
            payload: Some(Payload::PersonErased(PersonErased {
                partnership_codes: known_in,
            })),
            ..Default::default()
        };
        let ack = self
            .projection
            .consumer
            .log
            .publish(
                "hub.admin.person_erased".into(),
                &event_id,
                Default::default(),
                event.encode_to_vec().into(),
            )
            .await
            .map_err(ApiError)?;
        self.projection.wait_for(ack.sequence).await?;
        tracing::info!(user = %caller.user_id, keys = keys.len(), sequence = ack.sequence, "person erased");
        Ok(Response::new(PersonErasure {
            person_key: root,
            keys_destroyed: keys.len() as u32,
            event_id,
            stream_sequence: ack.sequence,
        }))
    }

    async fn list_audit_records(
        &self,
        request: Request<ListAuditRecordsRequest>,
    ) -> Result<Response<ListAuditRecordsResponse>, Status> {
        let caller = self.projection.caller(&request)?;
        let r = request.into_inner();
        // Admins for every partnership; data stewards for theirs.
        self.projection
            .authorise(&caller, Action::ReadAudit, &r.partnership_code)?;
        let limit = if r.limit == 0 {
            1000
        } else {
            r.limit.min(MAX_AUDIT_RECORDS)
        } as usize;
        let deliver_policy = match &r.since {
            Some(t) => {
                let since =
                    validate::timestamp(t).map_err(|d| ApiError(Error::invalid("since", d)))?;
                let since = time::OffsetDateTime::from_unix_timestamp(since.as_second())
                    .map_err(|_| ApiError(Error::invalid("since", "out of range")))?;
                DeliverPolicy::ByStartTime { start_time: since }
            }
            None => DeliverPolicy::All,
        };
        let log = &self.projection.consumer.log;
        let unavailable = |e: &dyn std::fmt::Display| {
            Status::from(ApiError(Error::Unavailable(format!(
                "reading the audit trail: {e}"
            ))))
        };
        let stream = log
            .jetstream()
            .get_stream(log.stream_name())
            .await
            .map_err(|e| unavailable(&e))?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("hub.audit.{}", r.partnership_code),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        let mut records = Vec::new();
        let mut messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_secs(2), messages.next()).await;
            let Ok(Some(message)) = next else { break }; // nothing more pending
            let message = message.map_err(|e| unavailable(&e))?;
            let info = message.info().map_err(|e| unavailable(&e))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            if let Ok(e) = Event::decode(message.payload.clone()) {
                if let Some(Payload::PersonLevelRead(read)) = &e.payload {
                    if read.break_glass || !r.break_glass_only {
                        let break_glass_reason = if read.break_glass {
                            self.reason(&e).await
                        } else {
                            String::new()
                        };
                        records.push(AuditRecord {
                            at: e.occurred_at,
                            user_id: e.actor_user_id,
                            role: e.actor_role,
                            org_code: e.org_code,
                            partnership_code: e.partnership_code,
                            rpc: read.rpc.clone(),
                            rows: read.rows,
                            stream_sequence: sequence,
                            person_keys: hub_projection::audit::unpack(&read.person_keys),
                            break_glass_reason,
                        });
                    }
                }
            }
            if pending == 0 || records.len() >= limit {
                break;
            }
        }
        Ok(Response::new(ListAuditRecordsResponse { records }))
    }
}
