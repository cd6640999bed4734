//! `hub.admin.v1.AdminService`, hosted where the people are known: erasure
//! and retention need every identifier linked to a person, and the audit
//! trail is written by this projection's own person-level reads.
//!
//! Admins may do everything here; data stewards may read the audit of their
//! partnerships (`ListAuditRecords`, `ListPersonAccess`,
//! `VerifyAuditTrail`). See `erasure` for how an erasure holds, and
//! `hub_projection::audit` for the audit chain.

use std::{
    collections::{BTreeSet, HashMap},
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures::Stream;
use prost::Message;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use hub_core::{
    auth::{Action, Caller},
    person,
    pseudonym::Pseudonymiser,
    sealing, validate, Error,
};
use hub_projection::{audit, identity, Projection};
use hub_proto::{
    admin::{
        admin_service_server::AdminService, AuditRecord, AuditTrailVerification,
        ErasePersonRequest, GetRetentionStatusRequest, KeyRotationProgress, KeyVersion,
        KeyVersions, ListAuditRecordsRequest, ListAuditRecordsResponse, ListKeyVersionsRequest,
        ListPersonAccessRequest, ListPersonAccessResponse, PersonErasure, RetentionDay,
        RetentionStatus, RetireKeyVersionRequest, RotateKeysRequest, VerifyAuditTrailRequest,
    },
    events::{event::Payload, Event},
};
use hub_runtime::{keystore::KeyStore, ApiError};

use crate::{erasure, retention};

/// What the retention sweep last did.
#[derive(Debug, Clone, Default)]
pub struct SweepState {
    pub period_seconds: i64,
    pub last_sweep_at: Option<jiff::Timestamp>,
}

pub struct AdminApi {
    pub projection: Arc<Projection>,
    pub keys: KeyStore,
    pub pseudonymiser: Pseudonymiser,
    pub eraser: erasure::Eraser,
    pub retention: Arc<Mutex<SweepState>>,
}

/// Most audit records one call returns.
pub const MAX_AUDIT_RECORDS: u32 = 10_000;

fn timestamp(t: jiff::Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

fn seconds(s: i64) -> Option<prost_types::Timestamp> {
    (s != 0).then_some(prost_types::Timestamp {
        seconds: s,
        nanos: 0,
    })
}

fn limit_of(limit: u32) -> usize {
    if limit == 0 {
        1000
    } else {
        limit.min(MAX_AUDIT_RECORDS) as usize
    }
}

fn since_of(since: Option<&prost_types::Timestamp>) -> Result<Option<jiff::Timestamp>, Status> {
    since
        .map(|t| validate::timestamp(t).map_err(|d| ApiError(Error::invalid("since", d)).into()))
        .transpose()
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

    /// The audit records of `partnership` (every partnership's when
    /// `None`) that `keep` accepts, oldest first, at most `limit`.
    async fn records(
        &self,
        partnership: Option<&str>,
        since: Option<jiff::Timestamp>,
        limit: usize,
        keep: impl Fn(&Event, &[String]) -> bool,
    ) -> Result<Vec<AuditRecord>, Status> {
        let mut found = Vec::new();
        self.projection
            .audit_trail()?
            .read(partnership, since, |sequence, body| {
                if let Ok(e) = Event::decode(body.as_slice()) {
                    if let Some(Payload::PersonLevelRead(read)) = &e.payload {
                        let keys = audit::unpack(&read.person_keys);
                        if keep(&e, &keys) {
                            found.push((sequence, e, keys));
                        }
                    }
                }
                found.len() < limit
            })
            .await
            .map_err(ApiError)?;
        let mut records = Vec::with_capacity(found.len());
        for (sequence, e, person_keys) in found {
            let Some(Payload::PersonLevelRead(read)) = &e.payload else {
                continue;
            };
            let break_glass_reason = if read.break_glass {
                self.reason(&e).await
            } else {
                String::new()
            };
            records.push(AuditRecord {
                at: e.occurred_at,
                user_id: e.actor_user_id.clone(),
                role: e.actor_role.clone(),
                org_code: e.org_code.clone(),
                partnership_code: e.partnership_code.clone(),
                rpc: read.rpc.clone(),
                rows: read.rows,
                stream_sequence: sequence,
                person_keys,
                break_glass_reason,
            });
        }
        Ok(records)
    }

    /// The partnerships a caller asks about: the one named (which the
    /// token must cover for `action`), or, for admins naming none, all.
    fn scope(&self, caller: &Caller, partnership_code: &str) -> Result<Vec<String>, Status> {
        if partnership_code.is_empty() && caller.role.may(Action::Operate) {
            return Ok(self
                .projection
                .partnerships()
                .iter()
                .map(|p| p.code.clone())
                .collect());
        }
        self.projection
            .authorise(caller, Action::ReadAudit, partnership_code)?;
        Ok(vec![partnership_code.to_string()])
    }
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<KeyRotationProgress, Status>> + Send>>;

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
        // No rebuild meanwhile, and everything recorded before the request
        // applied, so every link to the person is known.
        let _still = self.projection.hold().await?;
        let applied = self.eraser.catch_up().await?;
        let codes: Vec<String> = self
            .projection
            .partnerships()
            .iter()
            .map(|p| p.code.clone())
            .collect();
        let target = self
            .projection
            .read(move |store| {
                let txn = store.txn();
                let (keys, known_in) =
                    identity::everywhere(&txn, &key, codes.iter().map(String::as_str))?;
                // The reply names the person as the first partnership
                // knowing them does.
                let mut root = None;
                if let Some(p) = known_in.first() {
                    root = identity::root_of(&txn, p, &key)?;
                }
                Ok::<_, hub_store::Error>(erasure::Target {
                    root: root.unwrap_or_else(|| key.clone()),
                    keys,
                    partnerships: known_in,
                })
            })
            .await?;
        let done = self
            .eraser
            .erase(
                &target,
                erasure::REQUEST,
                Some(&caller),
                uuid::Uuid::now_v7().to_string(),
                applied,
            )
            .await?;
        tracing::info!(user = %caller.user_id, keys = target.keys.len(), sequence = done.stream_sequence, "person erased on request");
        Ok(Response::new(PersonErasure {
            person_key: target.root,
            keys_destroyed: target.keys.len() as u32,
            event_id: done.event_id,
            stream_sequence: done.stream_sequence,
            applied_sequence: done.applied_before,
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
        let since = since_of(r.since.as_ref())?;
        let break_glass_only = r.break_glass_only;
        let records = self
            .records(
                Some(&r.partnership_code),
                since,
                limit_of(r.limit),
                |e, _| {
                    matches!(&e.payload, Some(Payload::PersonLevelRead(read)) if read.break_glass || !break_glass_only)
                },
            )
            .await?;
        Ok(Response::new(ListAuditRecordsResponse { records }))
    }

    async fn list_person_access(
        &self,
        request: Request<ListPersonAccessRequest>,
    ) -> Result<Response<ListPersonAccessResponse>, Status> {
        let caller = self.projection.caller(&request)?;
        let r = request.into_inner();
        let partnerships = self.scope(&caller, &r.partnership_code)?;
        let id = person::recognise(&r.identifier)
            .map_err(|d| ApiError(Error::invalid("identifier", d)))?;
        let since = since_of(r.since.as_ref())?;
        let key = self.pseudonymiser.identifier_key(&id);
        // The person's keys in each partnership searched: who they are
        // there (a key unlinked from them there is someone else's).
        let theirs: HashMap<String, BTreeSet<String>> = {
            let (partnerships, key) = (partnerships.clone(), key.clone());
            self.projection
                .read(move |store| {
                    let txn = store.txn();
                    let mut theirs = HashMap::new();
                    for p in &partnerships {
                        let keys = match identity::root_of(&txn, p, &key)? {
                            Some(root) => identity::members(&txn, p, &root)?,
                            None => vec![key.clone()],
                        };
                        theirs.insert(p.clone(), keys.into_iter().collect());
                    }
                    Ok::<_, hub_store::Error>(theirs)
                })
                .await?
        };
        let all = r.partnership_code.is_empty();
        let records = self
            .records(
                (!all).then_some(r.partnership_code.as_str()),
                since,
                limit_of(r.limit),
                |e, keys| {
                    theirs
                        .get(&e.partnership_code)
                        .is_some_and(|t| keys.iter().any(|k| t.contains(k)))
                },
            )
            .await?;
        tracing::info!(user = %caller.user_id, partnerships = partnerships.len(), records = records.len(), "person access listed");
        let person_keys = theirs
            .into_values()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(Response::new(ListPersonAccessResponse {
            person_keys,
            records,
        }))
    }

    async fn verify_audit_trail(
        &self,
        request: Request<VerifyAuditTrailRequest>,
    ) -> Result<Response<AuditTrailVerification>, Status> {
        let caller = self.projection.caller(&request)?;
        let r = request.into_inner();
        self.projection
            .authorise(&caller, Action::ReadAudit, &r.partnership_code)?;
        let v = self
            .projection
            .audit_trail()?
            .verify(&r.partnership_code)
            .await
            .map_err(ApiError)?;
        let (broken_at_sequence, broken_at_link, problem) = v.broken.clone().unwrap_or_default();
        if v.broken.is_some() {
            tracing::warn!(partnership = %r.partnership_code, broken_at_sequence, broken_at_link, "the audit trail is broken");
        }
        Ok(Response::new(AuditTrailVerification {
            partnership_code: r.partnership_code,
            records: v.records,
            chained: v.chained,
            before_chain: v.before_chain,
            intact: v.broken.is_none(),
            broken_at_sequence,
            broken_at_link,
            problem,
        }))
    }

    async fn get_retention_status(
        &self,
        request: Request<GetRetentionStatusRequest>,
    ) -> Result<Response<RetentionStatus>, Status> {
        self.projection.operator(&request)?;
        let r = request.into_inner();
        let days = if r.limit == 0 { 30 } else { r.limit.min(1000) } as usize;
        let state = self.retention.lock().expect("retention lock").clone();
        let period = state.period_seconds;
        let (people_held, upcoming) = self
            .projection
            .read(move |store| {
                let mut keys = Vec::new();
                for slice in retention::SLICES {
                    keys.extend(store.scan(hub_store::KeyKind::LastSeen, slice)?);
                }
                retention::upcoming(&store.txn(), keys, period, days)
            })
            .await?;
        let by_retention = |e: &Event| matches!(&e.payload, Some(Payload::PersonErased(p)) if p.reason == erasure::RETENTION);
        let people_expired = self
            .eraser
            .ledger
            .all()
            .await
            .map_err(ApiError)?
            .iter()
            .filter(|e| by_retention(e))
            .count() as u64;
        let mut last_erasure_sequence = 0;
        if let Ok(Some(m)) = self
            .projection
            .log()
            .last_on_subject("hub.admin.person_erased")
            .await
        {
            if Event::decode(m.payload.as_ref()).is_ok_and(|e| by_retention(&e)) {
                last_erasure_sequence = m.sequence;
            }
        }
        Ok(Response::new(RetentionStatus {
            period_seconds: state.period_seconds as u64,
            people_held,
            people_expired,
            upcoming: upcoming
                .into_iter()
                .map(|(date, people)| RetentionDay { date, people })
                .collect(),
            last_sweep_at: state.last_sweep_at.map(timestamp),
            last_erasure_sequence,
        }))
    }

    async fn list_key_versions(
        &self,
        request: Request<ListKeyVersionsRequest>,
    ) -> Result<Response<KeyVersions>, Status> {
        self.projection.operator(&request)?;
        Ok(Response::new(self.versions().await?))
    }

    type RotateKeysStream = ProgressStream;

    async fn rotate_keys(
        &self,
        request: Request<RotateKeysRequest>,
    ) -> Result<Response<Self::RotateKeysStream>, Status> {
        let caller = self.projection.operator(&request)?;
        let r = request.into_inner();
        let version = if r.resume {
            self.keys.current().await.map_err(ApiError)?
        } else {
            self.keys.introduce().await.map_err(ApiError)?
        };
        tracing::info!(user = %caller.user_id, version, resume = r.resume, "key rotation started");
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let keys = self.keys.clone();
        // The rotation runs on if the caller goes away: it is safe to
        // resume, and nothing is lost by finishing it.
        tokio::spawn(async move {
            let report = |p: hub_runtime::keystore::Rotation, done: bool| KeyRotationProgress {
                version: p.version,
                rewrapped: p.rewrapped,
                total: p.total,
                skipped: p.skipped,
                done,
            };
            let tx2 = tx.clone();
            let result = keys
                .rewrap(move |p| {
                    let _ = tx2.try_send(Ok(report(p, false)));
                })
                .await;
            let last = match result {
                Ok(p) => {
                    tracing::info!(
                        version = p.version,
                        rewrapped = p.rewrapped,
                        skipped = p.skipped,
                        "key rotation finished"
                    );
                    Ok(report(p, true))
                }
                Err(e) => {
                    tracing::error!(error = %e, "key rotation stopped; run `hubctl keys rotate --resume`");
                    Err(ApiError(e).into())
                }
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn retire_key_version(
        &self,
        request: Request<RetireKeyVersionRequest>,
    ) -> Result<Response<KeyVersions>, Status> {
        let caller = self.projection.operator(&request)?;
        let r = request.into_inner();
        self.keys.retire(r.version).await.map_err(ApiError)?;
        tracing::info!(user = %caller.user_id, version = r.version, "key-encryption key version retired");
        Ok(Response::new(self.versions().await?))
    }
}

impl AdminApi {
    async fn versions(&self) -> Result<KeyVersions, Status> {
        let versions = self.keys.versions().await.map_err(ApiError)?;
        Ok(KeyVersions {
            versions: versions
                .into_iter()
                .map(|v| KeyVersion {
                    version: v.version,
                    state: if v.retired_at != 0 {
                        "RETIRED"
                    } else if v.current {
                        "CURRENT"
                    } else {
                        "ACTIVE"
                    }
                    .into(),
                    created_at: seconds(v.created_at),
                    retired_at: seconds(v.retired_at),
                    data_keys: v.data_keys,
                })
                .collect(),
        })
    }
}
