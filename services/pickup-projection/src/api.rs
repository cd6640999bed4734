//! `PickupListService`: the list, its live watch, and its summary.
//!
//! Names are opened only for entries whose gate pick-up consent is `GIVEN`,
//! at read time, with the person's data key from the key store: a
//! withdrawal hides the name on the next read and on open watches, and an
//! erased key can never show it again.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::{Arc, Mutex},
};

use jiff::civil::Date;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use hub_core::{
    auth::{Action, Caller},
    person::check_person,
    pseudonym::Pseudonymiser,
    sealing::{self, DataKey},
    time::{london_today, FinancialYear},
    validate::{self, Violations},
    Error,
};
use hub_projection::{identity, Projection};
use hub_proto::{
    events::PersonalData,
    projections::{
        pickup_list_service_server::PickupListService, AlertCount, ConsentState, ContinuityFunnel,
        GetNationalContinuityRequest, GetPickupSummaryRequest, ListPickupsRequest,
        ListPickupsResponse, ListPotentialDuplicatesRequest, ListPotentialDuplicatesResponse,
        LookupPersonRequest, LookupPersonResponse, NationalContinuity, PickupAlert, PickupEntry,
        PickupStatus, PickupSummary, PotentialDuplicate, StatusCount, WatchPickupsRequest,
    },
};
use hub_runtime::{keystore::KeyStore, ApiError};
use hub_store::{parts, KeyKind};

use crate::model::{self, PersonRecord, Reader};

/// What a caller's role lets them see of prison-held details.
pub fn reader(caller: &Caller) -> Reader {
    if caller.role.may(Action::SeePrisonHeldDetails) {
        Reader::Worker
    } else {
        Reader::Treatment
    }
}

/// Default and largest `horizon_days`.
pub const DEFAULT_HORIZON_DAYS: u32 = 14;
pub const MAX_HORIZON_DAYS: u32 = 366;

/// A stored record that cannot be read back, as `INTERNAL` with its cause.
fn unreadable<E: Into<hub_core::error::Cause>>(what: &'static str) -> impl Fn(E) -> Status {
    move |e| ApiError(Error::internal_from(what, e)).into()
}

/// Data keys opened so far, by key id; emptied on every erasure.
///
/// A read that fetched a key from the key store just before an erasure
/// destroyed it must not put it back afterwards: each fetch notes the
/// cache's generation first, and its key is kept only if no erasure
/// emptied the cache meanwhile.
#[derive(Clone, Default)]
pub struct DataKeyCache(Arc<Mutex<(HashMap<String, DataKey>, u64)>>);

impl DataKeyCache {
    /// The cached key of `key_id`, or the generation to fetch it under.
    pub fn get(&self, key_id: &str) -> Result<DataKey, u64> {
        let cache = self.0.lock().expect("cache lock");
        cache.0.get(key_id).cloned().ok_or(cache.1)
    }

    /// Keeps `key`, fetched under `generation`, unless an erasure emptied
    /// the cache since.
    pub fn keep(&self, key_id: &str, key: DataKey, generation: u64) {
        let mut cache = self.0.lock().expect("cache lock");
        if cache.1 == generation {
            cache.0.insert(key_id.to_string(), key);
        }
    }

    /// Drops every key (an erasure destroyed some).
    pub fn clear(&self) {
        let mut cache = self.0.lock().expect("cache lock");
        cache.0.clear();
        cache.1 += 1;
    }
}

#[derive(Clone)]
pub struct PickupApi {
    projection: Arc<Projection>,
    keys: KeyStore,
    data_keys: DataKeyCache,
    pseudonymiser: Pseudonymiser,
    /// Each caller's open `WatchPickups` streams.
    watches: hub_runtime::quota::StreamQuota,
}

impl PickupApi {
    pub fn new(
        projection: Arc<Projection>,
        keys: KeyStore,
        data_keys: DataKeyCache,
        pseudonymiser: Pseudonymiser,
        watches_per_caller: usize,
    ) -> Self {
        Self {
            projection,
            keys,
            data_keys,
            pseudonymiser,
            watches: hub_runtime::quota::StreamQuota::new("pick-up watches", watches_per_caller),
        }
    }

    /// The root, in `partnership_code`, of the person named by `keys`: the
    /// person of the strongest identifier known there.
    async fn root_in(
        &self,
        partnership_code: &str,
        keys: &[String],
    ) -> Result<Option<String>, Status> {
        let (code, keys) = (partnership_code.to_string(), keys.to_vec());
        self.projection
            .read(move |store| {
                let txn = store.txn();
                for k in &keys {
                    if let Some(root) = identity::root_of(&txn, &code, k)? {
                        return Ok(Some(root));
                    }
                }
                Ok::<_, hub_store::Error>(None)
            })
            .await
    }

    /// The person's name, if consent allows and their key still exists.
    async fn display_name(&self, record: &PersonRecord) -> Option<String> {
        let name = record.name.as_ref()?;
        let sealed = name.sealed.as_ref()?;
        let key = match self.data_keys.get(&sealed.key_id) {
            Ok(k) => k,
            Err(generation) => {
                let k = self.keys.get(&sealed.key_id).await.ok()??;
                self.data_keys.keep(&sealed.key_id, k.clone(), generation);
                k
            }
        };
        let data = sealing::open(&key, &name.event_id, sealed).ok()?;
        let full = format!("{} {}", data.given_name, data.family_name)
            .trim()
            .to_string();
        (!full.is_empty()).then_some(full)
    }

    /// The entry of `root` in `partnership_code`, if listed there.
    pub async fn entry(
        &self,
        partnership_code: &str,
        root: &str,
        as_of: Date,
        reader: Reader,
    ) -> Result<Option<PickupEntry>, Status> {
        let key = parts(&[partnership_code.as_bytes(), root.as_bytes()]);
        let found = self
            .projection
            .read(move |store| store.get(KeyKind::PickupPerson, &key))
            .await?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        self.entry_of(root, &bytes, as_of, reader).await
    }

    /// The entry of `root` from its encoded record.
    async fn entry_of(
        &self,
        root: &str,
        bytes: &[u8],
        as_of: Date,
        reader: Reader,
    ) -> Result<Option<PickupEntry>, Status> {
        let record = model::decode_record(bytes).map_err(unreadable("a pick-up record"))?;
        let Some(mut entry) = model::view(root, &record, as_of, reader) else {
            return Ok(None);
        };
        if entry.consent == ConsentState::Given as i32 {
            if let Some(name) = self.display_name(&record).await {
                entry.display_name = name;
                entry.redacted = false;
            }
        }
        Ok(Some(entry))
    }

    /// The list for `partnership_code` on `as_of`, soonest first.
    pub async fn list(
        &self,
        partnership_code: &str,
        as_of: Date,
        horizon_days: u32,
        reader: Reader,
    ) -> Result<Vec<PickupEntry>, Status> {
        let from = as_of - jiff::Span::new().days(21);
        let until = as_of + jiff::Span::new().days(i64::from(horizon_days) + 1);
        let from = parts(&[partnership_code.as_bytes(), from.to_string().as_bytes()]);
        let until = parts(&[partnership_code.as_bytes(), until.to_string().as_bytes()]);
        let rows = self
            .projection
            .read(move |store| store.range(KeyKind::PickupByDate, &from, Some(&until)))
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for (key, record) in rows {
            let root = key.rsplit(|b| *b == 0).next().unwrap_or_default();
            let root =
                std::str::from_utf8(root).map_err(unreadable("a person key in the date index"))?;
            let entry = self.entry_of(root, &record, as_of, reader).await?;
            if let Some(entry) = entry {
                if entry.partnership_code == partnership_code
                    && model::in_window(&entry, horizon_days)
                {
                    entries.push(entry);
                }
            }
        }
        Ok(entries)
    }
}

fn keys_of(entries: &[PickupEntry]) -> Vec<String> {
    entries.iter().map(|e| e.person_key.clone()).collect()
}

/// Earliest and latest `as_of_date` a query takes: the list's window and
/// the financial year around it stay real dates, so no date arithmetic on
/// a caller's input can overflow.
const FIRST_AS_OF: Date = jiff::civil::date(2000, 1, 1);
const LAST_AS_OF: Date = jiff::civil::date(2199, 3, 31);

fn as_of_date(v: &mut Violations, s: &str) -> Option<Date> {
    if s.is_empty() {
        return Some(london_today());
    }
    v.check(
        "as_of_date",
        validate::date(s).and_then(|d| {
            if (FIRST_AS_OF..=LAST_AS_OF).contains(&d) {
                Ok(d)
            } else {
                Err(format!("must be between {FIRST_AS_OF} and {LAST_AS_OF}"))
            }
        }),
    )
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<PickupEntry, Status>> + Send>>;

#[tonic::async_trait]
impl PickupListService for PickupApi {
    async fn list_pickups(
        &self,
        request: Request<ListPickupsRequest>,
    ) -> Result<Response<ListPickupsResponse>, Status> {
        let p = &self.projection;
        let caller = p.caller(&request)?;
        let r = request.into_inner();
        p.authorise(&caller, Action::ReadPickupList, &r.partnership_code)?;
        let mut v = Violations::new();
        let as_of = as_of_date(&mut v, &r.as_of_date);
        let horizon = r.horizon_days.unwrap_or(DEFAULT_HORIZON_DAYS);
        if horizon > MAX_HORIZON_DAYS {
            v.add(
                "horizon_days",
                format!("must be between 0 and {MAX_HORIZON_DAYS}"),
            );
        }
        v.finish(|| ()).map_err(ApiError)?;
        let applied_sequence = p.wait_for(r.min_sequence).await?;
        let entries = self
            .list(
                &r.partnership_code,
                as_of.expect("checked"),
                horizon,
                reader(&caller),
            )
            .await?;
        p.audit(
            &caller,
            &r.partnership_code,
            "ListPickups",
            keys_of(&entries),
        )
        .await?;
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
        let caller = self.projection.caller(&request)?;
        let partnership_code = request.into_inner().partnership_code;
        self.projection
            .authorise(&caller, Action::ReadPickupList, &partnership_code)?;
        let slot = self.watches.acquire(&caller).map_err(ApiError)?;
        // Subscribe before the first snapshot, so no change falls between.
        let mut changes = self.projection.changes();
        let reader = reader(&caller);
        let first = self
            .list(
                &partnership_code,
                london_today(),
                DEFAULT_HORIZON_DAYS,
                reader,
            )
            .await?;
        self.projection
            .audit(&caller, &partnership_code, "WatchPickups", keys_of(&first))
            .await?;
        let (tx, rx) = mpsc::channel(256);
        let api = self.clone();
        let stopping = self.projection.stopping().clone();
        tokio::spawn(async move {
            // Held for as long as the stream runs.
            let _slot = slot;
            let mut first = Some(first);
            let removed = |person_key: String| PickupEntry {
                person_key,
                partnership_code: partnership_code.clone(),
                removed: true,
                ..Default::default()
            };
            let mut shown: HashSet<String> = HashSet::new();
            let mut send_all = true;
            loop {
                if send_all {
                    send_all = false;
                    let entries = match first.take() {
                        Some(e) => Ok(e),
                        // A resend after falling behind is another read of the list.
                        None => match api
                            .list(
                                &partnership_code,
                                london_today(),
                                DEFAULT_HORIZON_DAYS,
                                reader,
                            )
                            .await
                        {
                            Ok(e) => api
                                .projection
                                .audit(&caller, &partnership_code, "WatchPickups", keys_of(&e))
                                .await
                                .map(|_| e),
                            Err(status) => Err(status),
                        },
                    };
                    let entries = match entries {
                        Ok(e) => e,
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    };
                    let now: HashSet<String> =
                        entries.iter().map(|e| e.person_key.clone()).collect();
                    for gone in shown.difference(&now) {
                        if tx.send(Ok(removed(gone.clone()))).await.is_err() {
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
                // A watcher that has gone frees its slot now, not at the
                // next change.
                let change = tokio::select! {
                    _ = tx.closed() => return,
                    // The projection stops: the watch ends now (clients
                    // reconnect to another instance, or once it is back).
                    _ = stopping.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable(
                            "pickup-projection is stopping; watch again to reconnect",
                        ))).await;
                        return;
                    }
                    change = changes.recv() => change,
                };
                let root = match change {
                    Ok(changed) if changed.partnership_code == partnership_code => {
                        changed.person_key
                    }
                    Ok(_) => continue, // another partnership's
                    // This watcher fell behind the projection: resend the
                    // whole list rather than slow the projection down.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        send_all = true;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let entry = match api
                    .entry(&partnership_code, &root, london_today(), reader)
                    .await
                {
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
                        // Each entry sent is a person-level read too,
                        // recorded before it leaves.
                        if let Err(status) = api
                            .projection
                            .audit(
                                &caller,
                                &partnership_code,
                                "WatchPickups",
                                vec![e.person_key.clone()],
                            )
                            .await
                        {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                        shown.insert(root);
                        e
                    }
                    None if shown.remove(&root) => removed(root),
                    None => continue,
                };
                if tx.send(Ok(update)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lookup_person(
        &self,
        request: Request<LookupPersonRequest>,
    ) -> Result<Response<LookupPersonResponse>, Status> {
        let p = &self.projection;
        let caller = p.caller(&request)?;
        let r = request.into_inner();
        // Role first; a partnership the token does not cover is allowed
        // only by breaking the glass, with a reason.
        if !caller.role.may(Action::LookupPerson) {
            caller
                .authorise(Action::LookupPerson, &r.partnership_code)
                .map_err(ApiError)?;
        }
        let covered = caller.may_act_for(&r.partnership_code);
        let mut v = Violations::new();
        v.check(
            "partnership_code",
            validate::partnership(p.partnerships(), &r.partnership_code),
        );
        let person = check_person(&mut v, "person", r.person.as_ref(), london_today());
        let reason = if covered && r.reason.trim().is_empty() {
            None
        } else {
            v.check("reason", validate::reason(&r.reason))
                .map(str::to_string)
        };
        v.finish(|| ()).map_err(ApiError)?;
        let keys = self
            .pseudonymiser
            .person_keys(&person.expect("checked"))
            .all();
        let applied_sequence = p.wait_for(r.min_sequence).await?;
        let entry = match self.root_in(&r.partnership_code, &keys).await? {
            Some(root) => {
                self.entry(&r.partnership_code, &root, london_today(), reader(&caller))
                    .await?
            }
            None => None,
        };
        let returned: Vec<String> = entry.iter().map(|e| e.person_key.clone()).collect();
        match reason.filter(|_| !covered) {
            // Breaking the glass: the reason is sealed under the person's
            // data key, like any free text about them.
            Some(reason) => {
                let event_id = uuid::Uuid::now_v7().to_string();
                let key_id = &keys[0];
                let data_key = self.keys.get_or_create(key_id).await.map_err(ApiError)?;
                let sealed = sealing::seal(
                    &data_key,
                    key_id,
                    &event_id,
                    &PersonalData {
                        text: reason,
                        ..Default::default()
                    },
                );
                p.audit_read(
                    &caller,
                    &r.partnership_code,
                    "LookupPerson",
                    returned,
                    Some((event_id, sealed)),
                )
                .await?
            }
            None => {
                p.audit(&caller, &r.partnership_code, "LookupPerson", returned)
                    .await?
            }
        }
        Ok(Response::new(LookupPersonResponse {
            entry,
            applied_sequence,
        }))
    }

    async fn list_potential_duplicates(
        &self,
        request: Request<ListPotentialDuplicatesRequest>,
    ) -> Result<Response<ListPotentialDuplicatesResponse>, Status> {
        let p = &self.projection;
        let caller = p.caller(&request)?;
        let r = request.into_inner();
        p.authorise(
            &caller,
            Action::ReadPotentialDuplicates,
            &r.partnership_code,
        )?;
        let applied_sequence = p.wait_for(r.min_sequence).await?;
        let code = r.partnership_code.clone();
        let pairs = p
            .read(move |store| identity::duplicates(&store.txn(), &code))
            .await?
            .into_iter()
            .map(|d| PotentialDuplicate {
                person_key_a: d.person_key_a,
                person_key_b: d.person_key_b,
                reason: "same client code, different strong identifiers".into(),
                first_seen_at: Some(prost_types::Timestamp {
                    seconds: d.first_seen_at,
                    nanos: 0,
                }),
            })
            .collect();
        Ok(Response::new(ListPotentialDuplicatesResponse {
            pairs,
            applied_sequence,
        }))
    }

    async fn get_pickup_summary(
        &self,
        request: Request<GetPickupSummaryRequest>,
    ) -> Result<Response<PickupSummary>, Status> {
        let p = &self.projection;
        let caller = p.caller(&request)?;
        let r = request.into_inner();
        p.authorise(&caller, Action::ReadPickupSummary, &r.partnership_code)?;
        let mut v = Violations::new();
        let as_of = as_of_date(&mut v, &r.as_of_date);
        let fy = if r.financial_year.is_empty() {
            as_of.map(FinancialYear::of)
        } else {
            v.check("financial_year", FinancialYear::parse(&r.financial_year))
        };
        v.finish(|| ()).map_err(ApiError)?;
        let (as_of, fy) = (as_of.expect("checked"), fy.expect("checked"));
        let applied_sequence = p.wait_for(r.min_sequence).await?;
        let entries = self
            .list(
                &r.partnership_code,
                as_of,
                DEFAULT_HORIZON_DAYS,
                Reader::Worker,
            )
            .await?;
        let (from, to) = model::continuity_range(&r.partnership_code, fy);
        let rows = p
            .read(move |store| store.range(KeyKind::ContinuityByDate, &from, Some(&to)))
            .await?;
        let (funnel, by_prison) =
            model::funnel(&rows).map_err(unreadable("the continuity rows"))?;
        let mut summary = summarise(&entries);
        summary.released = funnel.released;
        summary.engaged_within_21_days = funnel.engaged_within_21_days;
        summary.continuity_pct = percent(funnel.engaged_within_21_days, funnel.released);
        summary.funnel = Some(funnel);
        summary.funnel_by_prison = by_prison;
        summary.financial_year = fy.to_string();
        summary.applied_sequence = applied_sequence;
        if !caller.role.may(Action::SeeSmallCounts) {
            suppress_small_counts(&mut summary);
        }
        Ok(Response::new(summary))
    }

    async fn get_national_continuity(
        &self,
        request: Request<GetNationalContinuityRequest>,
    ) -> Result<Response<NationalContinuity>, Status> {
        let p = &self.projection;
        let r = request.get_ref();
        let q = p
            .national_query(&request, &r.financial_year, r.min_sequence)
            .await?;
        let mut codes: Vec<String> = p.partnerships().iter().map(|x| x.code.clone()).collect();
        codes.sort();
        let fy = q.fy;
        let rows = p
            .read(move |store| {
                codes
                    .into_iter()
                    .map(|code| {
                        let (from, to) = model::continuity_range(&code, fy);
                        let rows = store.range(KeyKind::ContinuityByDate, &from, Some(&to))?;
                        Ok::<_, hub_store::Error>((code, rows))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let mut partnerships = Vec::with_capacity(rows.len());
        let mut england = ContinuityFunnel::default();
        for (code, rows) in rows {
            let (mut all, _) = model::funnel(&rows).map_err(unreadable("the continuity rows"))?;
            all.partnership_code = code;
            for ((_, sum), (_, n)) in england.stages_mut().into_iter().zip(all.stages()) {
                *sum += n;
            }
            partnerships.push(all);
        }
        england.partnership_code = "england".into();
        let mut suppressed = Vec::new();
        if !q.see_small_counts {
            suppress_national(&mut partnerships, &mut suppressed);
        }
        Ok(Response::new(NationalContinuity {
            financial_year: fy.to_string(),
            partnerships,
            england: Some(england),
            suppressed,
            applied_sequence: q.applied_sequence,
        }))
    }
}

/// Every partnership's funnel as analysts read it beside England's: each
/// count of 1 to 7 people withheld, and down each stage a second where one
/// alone was ([`hub_core::stats::complement`]); named
/// `<partnership>.<stage>` in `suppressed`.
pub fn suppress_national(funnels: &mut [ContinuityFunnel], suppressed: &mut Vec<String>) {
    let mut withheld = std::collections::BTreeSet::new();
    for f in funnels.iter_mut() {
        let code = f.partnership_code.clone();
        for (name, n) in f.stages_mut() {
            if hub_core::stats::withheld(*n) {
                *n = 0;
                withheld.insert((code.clone(), name));
            }
        }
    }
    let names = ContinuityFunnel::default().stages().map(|(name, _)| name);
    hub_core::stats::complement_columns(
        funnels,
        &names,
        |f, stage| {
            let hidden = withheld.contains(&(f.partnership_code.clone(), stage));
            let n = f.stages().into_iter().find(|(name, _)| *name == stage);
            n.filter(|_| !hidden).map(|(_, n)| n)
        },
        |f, stage| {
            let code = f.partnership_code.clone();
            if let Some((name, n)) = f.stages_mut().into_iter().find(|(name, _)| *name == stage) {
                *n = 0;
                suppressed.push(format!("{code}.{name}"));
            }
        },
    );
    suppressed.extend(withheld.into_iter().map(|(p, name)| format!("{p}.{name}")));
    suppressed.sort();
}

pub use hub_core::stats::percent;

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

/// Below national level counts of people from 1 to 7 are withheld: set to
/// 0 and named in `suppressed`; a percentage computed from a withheld count
/// is withheld too.
pub fn suppress_small_counts(s: &mut PickupSummary) {
    let small = hub_core::stats::withheld;
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
    let funnels = s
        .funnel
        .iter_mut()
        .map(|f| ("funnel".to_string(), f))
        .chain(
            s.funnel_by_prison
                .iter_mut()
                .map(|f| (format!("funnel_by_prison.{}", f.prison_code), f)),
        );
    for (path, f) in funnels {
        for (name, n) in f.stages_mut() {
            if small(*n) {
                *n = 0;
                s.suppressed.push(format!("{path}.{name}"));
            }
        }
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
