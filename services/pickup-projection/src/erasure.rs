//! Erasure, by an admin's request or by retention: the person's data keys
//! are destroyed, so their names, dates of birth and notes can never be
//! opened again, in the projections, in any rebuild, or in any copy.
//!
//! It runs here because the pick-up projection knows who is whom: an
//! erasure must reach every key linked to the person, in every
//! partnership. So, in this order:
//!
//! 1. no rebuild may be running, and none starts meanwhile (an erasure
//!    against a store being replaced could miss keys);
//! 2. the projection applies the stream up to the moment of the request
//!    (a link recorded just before is seen), else `UNAVAILABLE`;
//! 3. the erasure goes into the erasure ledger (outside the stream, so a
//!    restore of an older backup re-applies it);
//! 4. the data keys are destroyed, and every cached one is dropped (a read
//!    in flight cannot put one back: the cache refuses keys fetched before
//!    the drop);
//! 5. `PersonErased` is published under `hub.admin.person_erased`, and the
//!    call returns once the projection has applied it.

use std::sync::Arc;

use prost::Message;

use hub_core::{auth::Caller, Error};
use hub_projection::Projection;
use hub_proto::events::{event::Payload, Event, PersonErased};
use hub_runtime::{keystore::KeyStore, ledger::ErasureLedger, ApiError};
use tonic::Status;

use crate::{api::DataKeyCache, retention};

/// Why a person was erased, as `PersonErased.reason` says.
pub const REQUEST: &str = "request";
pub const RETENTION: &str = "retention";

/// Who is erased: every key of the person, the first the name the reply
/// and the event give them, and the partnerships that knew them.
#[derive(Debug, Clone)]
pub struct Target {
    pub root: String,
    pub keys: Vec<String>,
    pub partnerships: Vec<String>,
}

/// What an erasure did.
#[derive(Debug, Clone)]
pub struct Erased {
    pub event_id: String,
    pub stream_sequence: u64,
    pub applied_before: u64,
    pub keys_destroyed: u32,
}

#[derive(Clone)]
pub struct Eraser {
    pub projection: Arc<Projection>,
    pub keys: KeyStore,
    pub ledger: ErasureLedger,
    pub data_keys: DataKeyCache,
}

fn unavailable(e: Error) -> Status {
    ApiError(e).into()
}

impl Eraser {
    /// Waits until the projection has applied everything recorded so far;
    /// the sequence reached.
    pub async fn catch_up(&self) -> Result<u64, Status> {
        let last = self.projection.last_sequence().await.map_err(unavailable)?;
        self.projection.wait_for(last).await
    }

    /// Erases `target` (steps 3 to 5 of the module docs; the caller holds
    /// the projection still and has caught up). `actor` is the admin, or
    /// `None` for retention.
    pub async fn erase(
        &self,
        target: &Target,
        reason: &str,
        actor: Option<&Caller>,
        event_id: String,
        applied_before: u64,
    ) -> Result<Erased, Status> {
        let now = jiff::Timestamp::now();
        let at = prost_types::Timestamp {
            seconds: now.as_second(),
            nanos: now.subsec_nanosecond(),
        };
        let event = Event {
            event_id: event_id.clone(),
            event_type: "person_erased".into(),
            schema_version: hub_proto::SCHEMA_VERSION,
            occurred_at: Some(at),
            recorded_at: Some(at),
            agency: "hub".into(),
            org_code: actor.map(|c| c.org_code.clone()).unwrap_or_default(),
            actor_user_id: actor.map_or("hub-retention".into(), |c| c.user_id.clone()),
            actor_role: actor.map_or("system".into(), |c| c.role.as_str().into()),
            person_key: target.root.clone(),
            linked_person_keys: target
                .keys
                .iter()
                .filter(|k| **k != target.root)
                .cloned()
                .collect(),
            payload: Some(Payload::PersonErased(PersonErased {
                partnership_codes: target.partnerships.clone(),
                reason: reason.into(),
            })),
            ..Default::default()
        };
        self.ledger.record(&event).await.map_err(unavailable)?;
        let mut destroyed = 0;
        for k in &target.keys {
            if self.keys.exists(k).await.map_err(unavailable)? {
                destroyed += 1;
            }
            self.keys.destroy(k).await.map_err(unavailable)?;
        }
        self.data_keys.clear();
        let ack = self
            .projection
            .log()
            .publish(
                "hub.admin.person_erased".into(),
                &event_id,
                Default::default(),
                event.encode_to_vec().into(),
            )
            .await
            .map_err(unavailable)?;
        self.projection.wait_for(ack.sequence).await?;
        tracing::info!(
            reason,
            keys = target.keys.len(),
            destroyed,
            sequence = ack.sequence,
            "person erased"
        );
        Ok(Erased {
            event_id,
            stream_sequence: ack.sequence,
            applied_before,
            keys_destroyed: destroyed,
        })
    }

    /// One retention sweep: erases everyone with no event since `cutoff`
    /// (seconds since 1970), a batch at a time; how many were erased.
    /// Skipped (0) while a rebuild runs or the projection cannot catch up:
    /// the next sweep tries again.
    pub async fn sweep(&self, cutoff: i64) -> Result<u64, Status> {
        let Ok(_still) = self.projection.hold().await else {
            return Ok(0);
        };
        let applied = self.catch_up().await?;
        let people = self
            .projection
            .read(move |store| {
                let mut people = Vec::new();
                let mut done = std::collections::BTreeSet::new();
                for slice in retention::SLICES {
                    let rows = store.scan(hub_store::KeyKind::LastSeen, slice)?;
                    people.extend(retention::expired(
                        &store.txn(),
                        rows,
                        cutoff,
                        1000 - people.len(),
                        &mut done,
                    )?);
                    if people.len() >= 1000 {
                        break; // the rest at the next sweep
                    }
                }
                Ok::<_, hub_store::Error>(people)
            })
            .await?;
        let mut erased = 0;
        for p in people {
            let target = Target {
                root: p.keys[0].clone(),
                keys: p.keys.clone(),
                partnerships: p.partnerships.clone(),
            };
            // The same person expiring at the same moment has the same id,
            // so a second instance sweeping too records nothing twice.
            let id = format!("retention-{}-{}", target.root, p.last_seen);
            self.erase(&target, RETENTION, None, id, applied).await?;
            erased += 1;
        }
        Ok(erased)
    }
}
