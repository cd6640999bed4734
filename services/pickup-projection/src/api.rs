//! The read side's gRPC services: `PickupListService` (the list, its live
//! watch and its summary) and `ProjectionStatusService`.
//!
//! Every query may carry `min_sequence`: the reply waits (up to 5 s) until
//! the projection has applied that stream sequence, so a client that
//! records and then reads sees its own write.

use std::{collections::HashSet, pin::Pin, sync::Arc, time::Duration};

use jiff::civil::Date;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use hub_core::{
    auth::{Action, Caller, TokenRegistry},
    partnerships::PartnershipRegister,
    time::{london_today, FinancialYear},
    validate::{self, Violations},
    Error,
};
use hub_proto::projections::{
    pickup_list_service_server::PickupListService,
    projection_status_service_server::ProjectionStatusService, AlertCount, GetPickupSummaryRequest,
    GetProjectionStatusRequest, ListPickupsRequest, ListPickupsResponse, PickupAlert, PickupEntry,
    PickupStatus, PickupSummary, ProjectionStatus, StatusCount, WatchPickupsRequest,
};
use hub_runtime::{eventlog::EventLog, ApiError};
use hub_store::{parts, KeyKind, Progress, Store};

use crate::{model, state};

/// Longest a query waits for `min_sequence`.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);
/// Default and largest `horizon_days`.
pub const DEFAULT_HORIZON_DAYS: u32 = 14;
pub const MAX_HORIZON_DAYS: u32 = 366;

#[derive(Clone)]
pub struct Shared {
    pub store: Arc<Store>,
    pub tokens: Arc<TokenRegistry>,
    pub partnerships: Arc<PartnershipRegister>,
    pub progress: watch::Receiver<Progress>,
    pub changes: broadcast::Sender<String>,
    pub log: EventLog,
}

fn internal(e: impl std::fmt::Display) -> Status {
    ApiError(Error::Internal(e.to_string())).into()
}

impl Shared {
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.tokens
            .authenticate(auth)
            .cloned()
            .map_err(|e| ApiError(e).into())
    }

    /// Role, then partnership, then that the partnership exists.
    fn authorise(
        &self,
        caller: &Caller,
        action: Action,
        partnership_code: &str,
    ) -> Result<(), Status> {
        if !caller.role.may(action) || self.partnerships.get(partnership_code).is_some() {
            caller
                .authorise(action, partnership_code)
                .map_err(ApiError)?;
        }
        validate::partnership(&self.partnerships, partnership_code)
            .map_err(|d| ApiError(Error::invalid("partnership_code", d)))?;
        Ok(())
    }

    /// Waits until `min_sequence` is applied; returns the applied sequence.
    async fn wait_for(&self, min_sequence: u64) -> Result<u64, Status> {
        let mut rx = self.progress.clone();
        let reached = tokio::time::timeout(
            READ_YOUR_WRITES_TIMEOUT,
            rx.wait_for(|p| p.applied_sequence >= min_sequence),
        )
        .await;
        match reached {
            Ok(Ok(p)) => Ok(p.applied_sequence),
            Ok(Err(_)) => Err(internal("projection stopped")),
            Err(_) => Err(ApiError(Error::Unavailable(format!(
                "min_sequence: sequence {min_sequence} not applied within {}s (applied: {})",
                READ_YOUR_WRITES_TIMEOUT.as_secs(),
                self.progress.borrow().applied_sequence
            )))
            .into()),
        }
    }

    /// The list for `partnership_code` on `as_of`, soonest first.
    pub fn list(
        &self,
        partnership_code: &str,
        as_of: Date,
        horizon_days: u32,
    ) -> Result<Vec<PickupEntry>, Status> {
        let from = as_of - jiff::Span::new().days(21);
        let until = as_of + jiff::Span::new().days(i64::from(horizon_days) + 1);
        let rows = self
            .store
            .range(
                KeyKind::PickupByDate,
                &parts(&[partnership_code.as_bytes(), from.to_string().as_bytes()]),
                Some(&parts(&[
                    partnership_code.as_bytes(),
                    until.to_string().as_bytes(),
                ])),
            )
            .map_err(internal)?;
        let mut entries = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            let root = key.rsplit(|b| *b == 0).next().unwrap_or_default();
            let root = std::str::from_utf8(root).map_err(internal)?;
            if let Some(entry) = self.entry(root, as_of)? {
                if entry.partnership_code == partnership_code
                    && model::in_window(&entry, horizon_days)
                {
                    entries.push(entry);
                }
            }
        }
        Ok(entries)
    }

    fn entry(&self, root: &str, as_of: Date) -> Result<Option<PickupEntry>, Status> {
        let Some(bytes) = self
            .store
            .get(KeyKind::PickupRecord, root.as_bytes())
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let record = state::decode_record(&bytes).map_err(internal)?;
        Ok(model::view(root, &record, as_of))
    }
}

fn as_of_date(s: &str) -> Result<Date, Status> {
    if s.is_empty() {
        return Ok(london_today());
    }
    validate::date(s).map_err(|d| ApiError(Error::invalid("as_of_date", d)).into())
}

pub struct PickupApi(pub Shared);

type WatchStream = Pin<Box<dyn Stream<Item = Result<PickupEntry, Status>> + Send>>;

#[tonic::async_trait]
impl PickupListService for PickupApi {
    async fn list_pickups(
        &self,
        request: Request<ListPickupsRequest>,
    ) -> Result<Response<ListPickupsResponse>, Status> {
        let s = &self.0;
        let caller = s.caller(&request)?;
        let r = request.into_inner();
        s.authorise(&caller, Action::ReadPickupList, &r.partnership_code)?;
        let mut v = Violations::new();
        let as_of = v.check(
            "as_of_date",
            as_of_date(&r.as_of_date).map_err(|e| e.message().to_string()),
        );
        let horizon = r.horizon_days.unwrap_or(DEFAULT_HORIZON_DAYS);
        if horizon > MAX_HORIZON_DAYS {
            v.add(
                "horizon_days",
                format!("must be between 0 and {MAX_HORIZON_DAYS}"),
            );
        }
        v.finish(|| ()).map_err(ApiError)?;
        let as_of = as_of.expect("checked");
        let applied_sequence = s.wait_for(r.min_sequence).await?;
        let entries = s.list(&r.partnership_code, as_of, horizon)?;
        tracing::info!(
            user = %caller.user_id,
            role = caller.role.as_str(),
            partnership = %r.partnership_code,
            rows = entries.len(),
            "person-level read"
        );
        Ok(Response::new(ListPickupsResponse {
            entries,
            applied_sequence,
        }))
    }

    type WatchPickupsStream = WatchStream;

    async fn watch_pickups(
        &self,
        request: Request<WatchPickupsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let s = self.0.clone();
        let caller = s.caller(&request)?;
        let partnership_code = request.into_inner().partnership_code;
        s.authorise(&caller, Action::ReadPickupList, &partnership_code)?;
        // Subscribe before the first snapshot, so no change falls between.
        let mut changes = s.changes.subscribe();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut shown: HashSet<String> = HashSet::new();
            let mut send_all = true;
            loop {
                if send_all {
                    send_all = false;
                    let entries =
                        match s.list(&partnership_code, london_today(), DEFAULT_HORIZON_DAYS) {
                            Ok(e) => e,
                            Err(status) => {
                                let _ = tx.send(Err(status)).await;
                                return;
                            }
                        };
                    let now: HashSet<String> =
                        entries.iter().map(|e| e.person_key.clone()).collect();
                    for gone in shown.difference(&now) {
                        let removed = PickupEntry {
                            person_key: gone.clone(),
                            partnership_code: partnership_code.clone(),
                            removed: true,
                            ..Default::default()
                        };
                        if tx.send(Ok(removed)).await.is_err() {
                            return;
                        }
                    }
                    for e in entries {
                        if tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                    shown = now;
                }
                let root = match changes.recv().await {
                    Ok(root) => root,
                    // This watcher fell behind: resend the whole list.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        send_all = true;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let entry = match s.entry(&root, london_today()) {
                    Ok(e) => e.filter(|e| {
                        e.partnership_code == partnership_code
                            && model::in_window(e, DEFAULT_HORIZON_DAYS)
                    }),
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let update = match entry {
                    Some(e) => {
                        shown.insert(root);
                        e
                    }
                    None if shown.remove(&root) => PickupEntry {
                        person_key: root,
                        partnership_code: partnership_code.clone(),
                        removed: true,
                        ..Default::default()
                    },
                    None => continue,
                };
                if tx.send(Ok(update)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_pickup_summary(
        &self,
        request: Request<GetPickupSummaryRequest>,
    ) -> Result<Response<PickupSummary>, Status> {
        let s = &self.0;
        let caller = s.caller(&request)?;
        let r = request.into_inner();
        s.authorise(&caller, Action::ReadPickupSummary, &r.partnership_code)?;
        let mut v = Violations::new();
        let as_of = v.check(
            "as_of_date",
            as_of_date(&r.as_of_date).map_err(|e| e.message().to_string()),
        );
        let fy = if r.financial_year.is_empty() {
            as_of.map(FinancialYear::of)
        } else {
            v.check("financial_year", FinancialYear::parse(&r.financial_year))
        };
        v.finish(|| ()).map_err(ApiError)?;
        let (as_of, fy) = (as_of.expect("checked"), fy.expect("checked"));
        let applied_sequence = s.wait_for(r.min_sequence).await?;
        let entries = s.list(&r.partnership_code, as_of, DEFAULT_HORIZON_DAYS)?;
        let mut summary = summarise(&entries);
        summary.financial_year = fy.to_string();
        summary.applied_sequence = applied_sequence;
        if caller.role == hub_core::auth::Role::PartnershipAnalyst {
            suppress_small_counts(&mut summary);
        }
        Ok(Response::new(summary))
    }
}

/// Counts of list entries by status and by alert (every value listed, zeros
/// included, so a dashboard can draw them all).
pub fn summarise(entries: &[PickupEntry]) -> PickupSummary {
    let statuses = [
        PickupStatus::Scheduled,
        PickupStatus::Released,
        PickupStatus::PickedUp,
        PickupStatus::Missed,
        PickupStatus::Engaged,
    ];
    let alerts = [
        PickupAlert::NoConsent,
        PickupAlert::NoAppointment,
        PickupAlert::NoGateWorker,
        PickupAlert::NoNaloxone,
        PickupAlert::NotPickedUp,
    ];
    let by_status = statuses
        .iter()
        .map(|st| StatusCount {
            status: *st as i32,
            count: entries.iter().filter(|e| e.status == *st as i32).count() as u32,
        })
        .collect();
    let by_alert = alerts
        .iter()
        .map(|a| AlertCount {
            alert: *a as i32,
            count: entries
                .iter()
                .filter(|e| e.alerts.contains(&(*a as i32)))
                .count() as u32,
        })
        .collect();
    PickupSummary {
        by_status,
        by_alert,
        ..Default::default()
    }
}

/// Counts of people from 1 to 7 are withheld below national level: set to 0
/// and named in `suppressed`; a percentage computed from a withheld count
/// is withheld too.
pub fn suppress_small_counts(s: &mut PickupSummary) {
    let small = |n: u32| (1..=7).contains(&n);
    for c in &mut s.by_status {
        if small(c.count) {
            c.count = 0;
            let name = PickupStatus::try_from(c.status)
                .map(|x| x.as_str_name())
                .unwrap_or("?");
            s.suppressed.push(format!("by_status.{name}"));
        }
    }
    for c in &mut s.by_alert {
        if small(c.count) {
            c.count = 0;
            let name = PickupAlert::try_from(c.alert)
                .map(|x| x.as_str_name())
                .unwrap_or("?");
            s.suppressed.push(format!("by_alert.{name}"));
        }
    }
    let mut pct_withheld = false;
    if small(s.released) {
        s.released = 0;
        s.suppressed.push("released".into());
        pct_withheld = true;
    }
    if small(s.engaged_within_21_days) {
        s.engaged_within_21_days = 0;
        s.suppressed.push("engaged_within_21_days".into());
        pct_withheld = true;
    }
    if pct_withheld && s.continuity_pct.is_some() {
        s.continuity_pct = None;
        s.suppressed.push("continuity_pct".into());
    }
}

pub struct StatusApi(pub Shared);

#[tonic::async_trait]
impl ProjectionStatusService for StatusApi {
    async fn get_projection_status(
        &self,
        request: Request<GetProjectionStatusRequest>,
    ) -> Result<Response<ProjectionStatus>, Status> {
        let s = &self.0;
        let caller = s.caller(&request)?;
        if !caller.role.may(Action::Operate) {
            return Err(ApiError(Error::PermissionDenied(format!(
                "role {} may not read projection status",
                caller.role.as_str()
            )))
            .into());
        }
        let p = *s.progress.borrow();
        let last = s.log.last_sequence().await.map_err(ApiError)?;
        Ok(Response::new(ProjectionStatus {
            projection: "pickup".into(),
            applied_sequence: p.applied_sequence,
            stream_last_sequence: last,
            lag: last.saturating_sub(p.applied_sequence),
            events_applied: p.events_applied,
            parked: p.parked,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysts_never_see_counts_from_1_to_7() {
        let entry = |status: PickupStatus| PickupEntry {
            status: status as i32,
            ..Default::default()
        };
        let mut entries: Vec<_> = (0..8).map(|_| entry(PickupStatus::Scheduled)).collect();
        entries.push(entry(PickupStatus::Released));
        let mut s = summarise(&entries);
        s.released = 3;
        s.engaged_within_21_days = 0;
        s.continuity_pct = Some(0.0);
        suppress_small_counts(&mut s);
        assert_eq!(s.by_status[0].count, 8, "8 is shown");
        assert_eq!(s.by_status[1].count, 0, "1 is withheld");
        assert!(s.suppressed.contains(&"by_status.RELEASED".to_string()));
        assert!(!s.suppressed.contains(&"by_status.SCHEDULED".to_string()));
        assert!(
            !s.suppressed.contains(&"by_status.MISSED".to_string()),
            "0 is not withheld"
        );
        assert_eq!(s.released, 0);
        assert!(s.suppressed.contains(&"released".to_string()));
        assert_eq!(s.continuity_pct, None);
        assert!(s.suppressed.contains(&"continuity_pct".to_string()));
    }
}
