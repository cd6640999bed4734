//! The pick-up list's read model, as pure functions over a [`Kv`]: how an
//! event changes a person's record ([`apply`]) and how the record looks on
//! a given day ([`view`]). No I/O: the service runs them over a RocksDB
//! transaction, tests over an in-memory map.
//!
//! # Episodes
//! A person's current release episode opens with a release date (or with a
//! release recorded without one). A later date replaces the date of a
//! scheduled episode; a date after the episode was released or cancelled
//! opens a new one. Cancellation takes the entry off the list.
//!
//! Status: `SCHEDULED` → `RELEASED` → `PICKED_UP` or `MISSED` → `ENGAGED`.
//! A pick-up recorded without a release recorded first implies the release.
//!
//! # Checklist
//! Consent for `GATE_PICKUP` belongs to the person and lasts until
//! withdrawn. The other checklist facts (flagged imminent, triage,
//! appointment, gate worker, naloxone, overdose training) belong to the
//! current episode; facts recorded while no episode is open wait in
//! `pending` and join the next episode when it opens.
//!
//! # Continuity of care
//! Each released episode leaves a row (partnership, released on, engaged
//! on) that stays when a later episode replaces it, so a financial year's
//! releases and engagements can be counted however many times a person
//! came and went.

use jiff::civil::Date;
use prost::Message;

use hub_core::time::{london_date, FinancialYear};
use hub_projection::identity;
use hub_proto::{
    common::ConsentPurpose,
    events::{event::Payload, Event, Sealed},
    projections::{ConsentState, PickupAlert, PickupEntry, PickupStatus},
};
use hub_store::{parts, Error, KeyKind, Kv};

/// A person's record under their root key.
#[derive(Clone, PartialEq, Message)]
pub struct PersonRecord {
    #[prost(message, optional, tag = "1")]
    pub episode: Option<Episode>,
    /// Consent for GATE_PICKUP (a `ConsentState`).
    #[prost(int32, tag = "2")]
    pub gate_consent: i32,
    /// Checklist facts recorded while no episode was open.
    #[prost(message, optional, tag = "3")]
    pub pending: Option<Checklist>,
    /// The latest seal holding the person's name.
    #[prost(message, optional, tag = "4")]
    pub name: Option<SealedName>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Episode {
    #[prost(string, tag = "1")]
    pub partnership_code: String,
    #[prost(string, tag = "2")]
    pub prison_code: String,
    /// YYYY-MM-DD.
    #[prost(string, tag = "3")]
    pub release_date: String,
    /// A `PickupStatus`.
    #[prost(int32, tag = "4")]
    pub status: i32,
    #[prost(bool, tag = "5")]
    pub cancelled: bool,
    /// Stream sequence of the event that opened the episode (its id).
    #[prost(uint64, tag = "6")]
    pub opened_sequence: u64,
    /// Stream sequence of the latest release date.
    #[prost(uint64, tag = "7")]
    pub date_sequence: u64,
    #[prost(message, optional, tag = "8")]
    pub checklist: Option<Checklist>,
    /// Day the release was recorded (London), YYYY-MM-DD.
    #[prost(string, tag = "9")]
    pub released_on: String,
    /// Day treatment engagement was recorded (London), YYYY-MM-DD.
    #[prost(string, tag = "10")]
    pub engaged_on: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Checklist {
    #[prost(bool, tag = "1")]
    pub flagged_imminent: bool,
    #[prost(bool, tag = "2")]
    pub triage_completed: bool,
    /// RFC 3339.
    #[prost(string, tag = "3")]
    pub appointment_at: String,
    #[prost(string, tag = "4")]
    pub gate_worker_id: String,
    #[prost(bool, tag = "5")]
    pub naloxone_issued: bool,
    #[prost(bool, tag = "6")]
    pub overdose_trained: bool,
}

/// Where a person's name is sealed.
#[derive(Clone, PartialEq, Message)]
pub struct SealedName {
    #[prost(string, tag = "1")]
    pub event_id: String,
    #[prost(message, optional, tag = "2")]
    pub sealed: Option<Sealed>,
}

/// A released episode's continuity facts.
#[derive(Clone, PartialEq, Message)]
pub struct ContinuityRow {
    #[prost(string, tag = "1")]
    pub partnership_code: String,
    #[prost(string, tag = "2")]
    pub released_on: String,
    #[prost(string, tag = "3")]
    pub engaged_on: String,
}

impl Episode {
    /// On the list: dated and not cancelled.
    pub fn listed(&self) -> bool {
        !self.cancelled && !self.release_date.is_empty()
    }

    fn status(&self) -> PickupStatus {
        PickupStatus::try_from(self.status).unwrap_or(PickupStatus::Scheduled)
    }
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, Error> {
    M::decode(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

pub fn load<K: Kv>(kv: &K, root: &str) -> Result<Option<PersonRecord>, Error> {
    kv.get(KeyKind::PickupRecord, root.as_bytes())?
        .map(|b| decode(&b, "pick-up record"))
        .transpose()
}

/// The list index key of a listed episode.
pub fn index_key(partnership: &str, release_date: &str, root: &str) -> Vec<u8> {
    parts(&[
        partnership.as_bytes(),
        release_date.as_bytes(),
        root.as_bytes(),
    ])
}

fn list_position(record: Option<&PersonRecord>) -> Option<(String, String)> {
    let e = record?.episode.as_ref()?;
    e.listed()
        .then(|| (e.partnership_code.clone(), e.release_date.clone()))
}

fn continuity_row(record: Option<&PersonRecord>) -> Option<(u64, ContinuityRow)> {
    let e = record?.episode.as_ref()?;
    (!e.released_on.is_empty()).then(|| {
        (
            e.opened_sequence,
            ContinuityRow {
                partnership_code: e.partnership_code.clone(),
                released_on: e.released_on.clone(),
                engaged_on: e.engaged_on.clone(),
            },
        )
    })
}

fn put_continuity<K: Kv>(kv: &mut K, root: &str, episode: u64, row: &ContinuityRow) {
    let ep = episode.to_be_bytes();
    kv.put(
        KeyKind::Continuity,
        &parts(&[root.as_bytes(), &ep]),
        row.encode_to_vec(),
    );
    kv.put(
        KeyKind::ContinuityByDate,
        &parts(&[
            row.partnership_code.as_bytes(),
            row.released_on.as_bytes(),
            root.as_bytes(),
            &ep,
        ]),
        row.engaged_on.as_bytes().to_vec(),
    );
}

fn delete_continuity<K: Kv>(kv: &mut K, root: &str, episode: u64, row: &ContinuityRow) {
    let ep = episode.to_be_bytes();
    kv.delete(KeyKind::Continuity, &parts(&[root.as_bytes(), &ep]));
    kv.delete(
        KeyKind::ContinuityByDate,
        &parts(&[
            row.partnership_code.as_bytes(),
            row.released_on.as_bytes(),
            root.as_bytes(),
            &ep,
        ]),
    );
}

/// Stores `new` for `root`, keeping the list index and the continuity rows
/// in step with it.
fn save<K: Kv>(kv: &mut K, root: &str, old: Option<&PersonRecord>, new: Option<&PersonRecord>) {
    let (before, after) = (list_position(old), list_position(new));
    if before != after {
        if let Some((p, d)) = &before {
            kv.delete(KeyKind::PickupByDate, &index_key(p, d, root));
        }
    }
    // The index entry carries a copy of the record, so that reading the
    // list is one range scan, not a point read per entry.
    if let (Some((p, d)), Some(r)) = (&after, new) {
        kv.put(
            KeyKind::PickupByDate,
            &index_key(p, d, root),
            r.encode_to_vec(),
        );
    }
    let (before, after) = (continuity_row(old), continuity_row(new));
    if before != after {
        // The same episode changed: replace its row. Another episode: keep
        // the old one's row, it is history.
        if let (Some((old_ep, old_row)), Some((new_ep, _))) = (&before, &after) {
            if old_ep == new_ep {
                delete_continuity(kv, root, *old_ep, old_row);
            }
        }
        if let Some((ep, row)) = &after {
            put_continuity(kv, root, *ep, row);
        }
    }
    match new {
        Some(r) => kv.put(KeyKind::PickupRecord, root.as_bytes(), r.encode_to_vec()),
        None => kv.delete(KeyKind::PickupRecord, root.as_bytes()),
    }
}

fn merge_checklists(a: Option<Checklist>, b: Option<Checklist>) -> Option<Checklist> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Checklist {
            flagged_imminent: a.flagged_imminent || b.flagged_imminent,
            triage_completed: a.triage_completed || b.triage_completed,
            appointment_at: if a.appointment_at.is_empty() {
                b.appointment_at
            } else {
                a.appointment_at
            },
            gate_worker_id: if a.gate_worker_id.is_empty() {
                b.gate_worker_id
            } else {
                a.gate_worker_id
            },
            naloxone_issued: a.naloxone_issued || b.naloxone_issued,
            overdose_trained: a.overdose_trained || b.overdose_trained,
        }),
        (a, b) => a.or(b),
    }
}

/// Two records turn out to be one person: the most recently dated episode
/// wins, checklists and pending facts combine, consent comes from the
/// record that has one, the newest name seal is kept.
fn merge(kept: PersonRecord, folded: PersonRecord) -> PersonRecord {
    let (episode, other) = match (kept.episode, folded.episode) {
        (Some(a), Some(b)) if b.date_sequence > a.date_sequence => (Some(b), Some(a)),
        (Some(a), b) => (Some(a), b),
        (None, b) => (b, None),
    };
    let episode = episode.map(|mut e| {
        if let Some(o) =
            other.filter(|o| o.opened_sequence == e.opened_sequence || (o.listed() && e.listed()))
        {
            e.checklist = merge_checklists(e.checklist.take(), o.checklist);
        }
        e
    });
    let gate_consent = if kept.gate_consent != 0 {
        kept.gate_consent
    } else {
        folded.gate_consent
    };
    let name = match (kept.name, folded.name) {
        (Some(a), Some(b)) => Some(if b.event_id > a.event_id { b } else { a }),
        (a, b) => a.or(b),
    };
    PersonRecord {
        episode,
        gate_consent,
        pending: merge_checklists(kept.pending, folded.pending),
        name,
    }
}

/// Moves everything of `folded` to `kept`.
fn fold<K: Kv>(kv: &mut K, kept: &str, folded: &str) -> Result<(), Error> {
    for (key, value) in kv.scan(KeyKind::Continuity, &parts(&[folded.as_bytes(), b""]))? {
        let episode = u64::from_be_bytes(
            key[key.len() - 8..]
                .try_into()
                .map_err(|_| Error::Corrupt("episode id".into()))?,
        );
        let row: ContinuityRow = decode(&value, "continuity row")?;
        delete_continuity(kv, folded, episode, &row);
        put_continuity(kv, kept, episode, &row);
    }
    let gone = load(kv, folded)?;
    if let Some(gone) = gone {
        save(kv, folded, Some(&gone), None);
        let old = load(kv, kept)?;
        let merged = merge(old.clone().unwrap_or_default(), gone);
        save(kv, kept, old.as_ref(), Some(&merged));
    }
    Ok(())
}

fn open_episode<'r>(
    record: &'r mut PersonRecord,
    partnership: &str,
    sequence: u64,
) -> &'r mut Episode {
    let checklist = record.pending.take();
    record.episode = Some(Episode {
        partnership_code: partnership.to_string(),
        status: PickupStatus::Scheduled as i32,
        opened_sequence: sequence,
        checklist,
        ..Default::default()
    });
    record.episode.as_mut().expect("just set")
}

/// The checklist facts go to: the open episode's, else the pending ones.
fn checklist(record: &mut PersonRecord) -> &mut Checklist {
    match record.episode.as_mut().filter(|e| !e.cancelled) {
        Some(e) => e.checklist.get_or_insert_with(Checklist::default),
        None => record.pending.get_or_insert_with(Checklist::default),
    }
}

/// Applies one event (at stream `sequence`). Returns the root of the person
/// whose entry may have changed, if any.
pub fn apply<K: Kv>(kv: &mut K, event: &Event, sequence: u64) -> Result<Option<String>, Error> {
    if !identity::must_resolve(event, concerns_the_list(event)) {
        return Ok(None);
    }
    let Some(root) = identity::resolve(kv, event, fold)? else {
        return Ok(None);
    };
    let old = load(kv, &root)?;
    let mut rec = old.clone().unwrap_or_default();
    let on = event
        .occurred_at
        .as_ref()
        .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map(london_date)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let open = |rec: &PersonRecord| {
        rec.episode
            .as_ref()
            .filter(|e| !e.cancelled)
            .map(Episode::status)
    };

    match &event.payload {
        Some(Payload::ReleaseDateRecorded(r)) => {
            let e = match open(&rec) {
                Some(PickupStatus::Scheduled) => rec.episode.as_mut().expect("open"),
                _ => open_episode(&mut rec, &event.partnership_code, sequence),
            };
            e.partnership_code = event.partnership_code.clone();
            e.prison_code = r.prison_code.clone();
            e.release_date = r.release_date.clone();
            e.date_sequence = sequence;
        }
        Some(Payload::ReleaseCancelled(_)) => {
            if let Some(e) = rec
                .episode
                .as_mut()
                .filter(|e| !e.cancelled && e.status() == PickupStatus::Scheduled)
            {
                e.cancelled = true;
            }
        }
        Some(Payload::ReleaseRecorded(r)) => {
            let e = match open(&rec) {
                Some(PickupStatus::Scheduled) => rec.episode.as_mut().expect("open"),
                Some(_) => return Ok(Some(root)), // already released
                None => {
                    let e = open_episode(&mut rec, &event.partnership_code, sequence);
                    e.release_date = on.clone();
                    e.date_sequence = sequence;
                    e
                }
            };
            e.status = PickupStatus::Released as i32;
            e.released_on = on.clone();
            if e.prison_code.is_empty() {
                e.prison_code = r.prison_code.clone();
            }
        }
        Some(Payload::GatePickupRecorded(g)) => {
            if let Some(e) = rec.episode.as_mut().filter(|e| !e.cancelled) {
                match (e.status(), g.met) {
                    (
                        PickupStatus::Scheduled | PickupStatus::Released | PickupStatus::Missed,
                        true,
                    ) => e.status = PickupStatus::PickedUp as i32,
                    (PickupStatus::Scheduled | PickupStatus::Released, false) => {
                        e.status = PickupStatus::Missed as i32
                    }
                    _ => {}
                }
                if e.released_on.is_empty() && e.status() != PickupStatus::Scheduled {
                    e.released_on = on.clone();
                }
            }
        }
        Some(Payload::TreatmentEngagementRecorded(_)) => {
            if let Some(e) = rec.episode.as_mut().filter(|e| !e.cancelled) {
                if matches!(
                    e.status(),
                    PickupStatus::Released | PickupStatus::PickedUp | PickupStatus::Missed
                ) {
                    e.status = PickupStatus::Engaged as i32;
                    e.engaged_on = on.clone();
                }
            }
        }
        Some(Payload::ConsentRecorded(c)) if c.purpose == ConsentPurpose::GatePickup as i32 => {
            let now =
                ConsentState::try_from(rec.gate_consent).unwrap_or(ConsentState::ConsentUnknown);
            rec.gate_consent = match (c.given, now) {
                (true, _) => ConsentState::Given,
                (false, ConsentState::Given | ConsentState::Withdrawn) => ConsentState::Withdrawn,
                (false, _) => ConsentState::Refused,
            } as i32;
        }
        Some(Payload::ImminentReleaseFlagged(_)) => checklist(&mut rec).flagged_imminent = true,
        Some(Payload::PreReleaseTriageRecorded(_)) => checklist(&mut rec).triage_completed = true,
        Some(Payload::NaloxoneOnReleaseRecorded(_) | Payload::NaloxoneSupplied(_)) => {
            checklist(&mut rec).naloxone_issued = true
        }
        Some(Payload::OverdoseTrainingRecorded(t)) => {
            let c = checklist(&mut rec);
            c.overdose_trained = true;
            c.naloxone_issued |= t.naloxone_kit_supplied;
        }
        Some(Payload::CommunityAppointmentBooked(a)) => {
            if let Some(at) = a
                .appointment_at
                .as_ref()
                .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
            {
                checklist(&mut rec).appointment_at = at.to_string();
            }
        }
        Some(Payload::GatePickupArranged(g)) => {
            checklist(&mut rec).gate_worker_id = g.worker_id.clone()
        }
        _ => {}
    }
    if let Some(sealed) = event.sealed.as_ref().filter(|s| s.has_name) {
        rec.name = Some(SealedName {
            event_id: event.event_id.clone(),
            sealed: Some(sealed.clone()),
        });
    }
    // Erasure: the data keys are gone; drop the seal too, so nothing of the
    // name stays even as ciphertext. Later events may bring new data.
    if let Some(Payload::PersonErased(_)) = &event.payload {
        rec.name = None;
    }
    // A person the list knows nothing about keeps no record.
    let untouched = old.is_none() && rec == PersonRecord::default();
    if old.as_ref() != Some(&rec) && !untouched {
        save(kv, &root, old.as_ref(), Some(&rec));
    }
    Ok(Some(root))
}

/// Whether `event` says anything the list shows: a fact of a release
/// episode or its checklist, gate pick-up consent, a name, an erasure.
fn concerns_the_list(event: &Event) -> bool {
    event.sealed.as_ref().is_some_and(|s| s.has_name)
        || match &event.payload {
            Some(Payload::ConsentRecorded(c)) => c.purpose == ConsentPurpose::GatePickup as i32,
            Some(
                Payload::ReleaseDateRecorded(_)
                | Payload::ReleaseCancelled(_)
                | Payload::ReleaseRecorded(_)
                | Payload::GatePickupRecorded(_)
                | Payload::TreatmentEngagementRecorded(_)
                | Payload::ImminentReleaseFlagged(_)
                | Payload::PreReleaseTriageRecorded(_)
                | Payload::NaloxoneOnReleaseRecorded(_)
                | Payload::NaloxoneSupplied(_)
                | Payload::OverdoseTrainingRecorded(_)
                | Payload::CommunityAppointmentBooked(_)
                | Payload::GatePickupArranged(_)
                | Payload::PersonErased(_),
            ) => true,
            _ => false,
        }
}

/// Alerts apply to scheduled releases this many days away or fewer.
pub const ALERT_DAYS: i32 = 7;

/// The entry of `root` as seen on `as_of`, without a name (the caller
/// opens the name when consent is `GIVEN`); `None` when not listed.
pub fn view(root: &str, record: &PersonRecord, as_of: Date) -> Option<PickupEntry> {
    let e = record.episode.as_ref().filter(|e| e.listed())?;
    let release_date: Date = e.release_date.parse().ok()?;
    let days_to_release = (release_date - as_of).get_days();
    let consent =
        ConsentState::try_from(record.gate_consent).unwrap_or(ConsentState::ConsentUnknown);
    let status = e.status();
    let c = e.checklist.clone().unwrap_or_default();
    let mut alerts = Vec::new();
    if status == PickupStatus::Scheduled && days_to_release <= ALERT_DAYS {
        if consent != ConsentState::Given {
            alerts.push(PickupAlert::NoConsent as i32);
        }
        if c.appointment_at.is_empty() {
            alerts.push(PickupAlert::NoAppointment as i32);
        }
        if c.gate_worker_id.is_empty() {
            alerts.push(PickupAlert::NoGateWorker as i32);
        }
        if !c.naloxone_issued {
            alerts.push(PickupAlert::NoNaloxone as i32);
        }
    }
    if matches!(status, PickupStatus::Released | PickupStatus::Missed) {
        alerts.push(PickupAlert::NotPickedUp as i32);
    }
    Some(PickupEntry {
        person_key: root.to_string(),
        display_name: String::new(),
        redacted: true,
        release_date: e.release_date.clone(),
        prison_code: e.prison_code.clone(),
        status: status as i32,
        consent: consent as i32,
        flagged_imminent: c.flagged_imminent,
        triage_completed: c.triage_completed,
        appointment_at: c.appointment_at,
        gate_worker_id: c.gate_worker_id,
        naloxone_issued: c.naloxone_issued,
        overdose_trained: c.overdose_trained,
        days_to_release,
        alerts,
        partnership_code: e.partnership_code.clone(),
        removed: false,
    })
}

/// Whether an entry falls in the list's window
/// `[as_of − 21 days, as_of + horizon_days]`.
pub fn in_window(entry: &PickupEntry, horizon_days: u32) -> bool {
    entry.days_to_release >= -21 && i64::from(entry.days_to_release) <= i64::from(horizon_days)
}

/// The `ContinuityByDate` key range of a partnership's financial year.
pub fn continuity_range(partnership: &str, fy: FinancialYear) -> (Vec<u8>, Vec<u8>) {
    let after_last = fy.last_day().tomorrow().expect("a real day");
    (
        parts(&[
            partnership.as_bytes(),
            fy.first_day().to_string().as_bytes(),
        ]),
        parts(&[partnership.as_bytes(), after_last.to_string().as_bytes()]),
    )
}

/// Days after release within which engagement counts as continuity.
pub const CONTINUITY_DAYS: i32 = 21;

/// From a year's `ContinuityByDate` rows: people released, and of those,
/// people with treatment engagement recorded within 21 days of a release.
pub fn continuity(rows: &[(Vec<u8>, Vec<u8>)]) -> (u32, u32) {
    use std::collections::BTreeMap;
    let mut people: BTreeMap<&[u8], bool> = BTreeMap::new();
    for (key, engaged_on) in rows {
        let fields: Vec<&[u8]> = key.splitn(4, |b| *b == 0).collect();
        let (Some(released), Some(root)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let within = std::str::from_utf8(released)
            .ok()
            .and_then(|r| r.parse::<Date>().ok())
            .zip(
                std::str::from_utf8(engaged_on)
                    .ok()
                    .and_then(|e| e.parse::<Date>().ok()),
            )
            .is_some_and(|(r, e)| (0..=CONTINUITY_DAYS).contains(&(e - r).get_days()));
        *people.entry(root).or_default() |= within;
    }
    (
        people.len() as u32,
        people.values().filter(|e| **e).count() as u32,
    )
}

/// Decodes a stored record (the read side).
pub fn decode_record(bytes: &[u8]) -> Result<PersonRecord, Error> {
    decode(bytes, "pick-up record")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_proto::events::*;
    use hub_store::MemKv;
    use jiff::civil::date;

    /// Given/when/then over an in-memory store: events are applied in order
    /// with increasing sequences, each on the day given.
    struct World {
        kv: MemKv,
        seq: u64,
    }

    fn at(day: &str) -> Option<prost_types::Timestamp> {
        let d: Date = day.parse().unwrap();
        let t = d
            .at(12, 0, 0, 0)
            .to_zoned(hub_core::time::london())
            .unwrap()
            .timestamp();
        Some(prost_types::Timestamp {
            seconds: t.as_second(),
            nanos: 0,
        })
    }

    impl World {
        fn new() -> Self {
            Self {
                kv: MemKv::default(),
                seq: 0,
            }
        }

        fn given(&mut self, keys: &[&str], day: &str, payload: Payload) -> &mut Self {
            self.given_in("bradford", keys, day, payload)
        }

        fn given_in(
            &mut self,
            partnership: &str,
            keys: &[&str],
            day: &str,
            payload: Payload,
        ) -> &mut Self {
            self.seq += 1;
            let event = Event {
                event_id: format!("ev{:04}", self.seq),
                person_key: keys[0].into(),
                linked_person_keys: keys[1..].iter().map(|k| k.to_string()).collect(),
                partnership_code: partnership.into(),
                occurred_at: at(day),
                payload: Some(payload),
                ..Default::default()
            };
            apply(&mut self.kv, &event, self.seq).unwrap();
            self
        }

        fn list(&self, partnership: &str, as_of: Date) -> Vec<PickupEntry> {
            let prefix = parts(&[partnership.as_bytes(), b""]);
            self.kv
                .scan(KeyKind::PickupByDate, &prefix)
                .unwrap()
                .into_iter()
                .filter_map(|(k, copy)| {
                    let root =
                        String::from_utf8(k.rsplit(|b| *b == 0).next().unwrap().to_vec()).unwrap();
                    let record = load(&self.kv, &root).unwrap().unwrap();
                    assert_eq!(
                        decode_record(&copy).unwrap(),
                        record,
                        "the index's copy of the record is in step with it"
                    );
                    view(&root, &record, as_of)
                })
                .filter(|e| in_window(e, 14))
                .collect()
        }

        fn continuity(&self, partnership: &str, fy: &str) -> (u32, u32) {
            let (from, to) = continuity_range(partnership, FinancialYear::parse(fy).unwrap());
            let rows: Vec<_> = self
                .kv
                .scan(KeyKind::ContinuityByDate, b"")
                .unwrap()
                .into_iter()
                .filter(|(k, _)| *k >= from && *k < to)
                .collect();
            continuity(&rows)
        }
    }

    fn release_date(d: &str) -> Payload {
        Payload::ReleaseDateRecorded(ReleaseDateRecorded {
            prison_code: "LEI".into(),
            release_date: d.into(),
        })
    }
    fn consent(given: bool) -> Payload {
        Payload::ConsentRecorded(ConsentRecorded {
            purpose: ConsentPurpose::GatePickup as i32,
            given,
        })
    }
    fn released() -> Payload {
        Payload::ReleaseRecorded(ReleaseRecorded {
            prison_code: "LEI".into(),
        })
    }
    fn pickup(met: bool) -> Payload {
        Payload::GatePickupRecorded(GatePickupRecorded {
            met,
            accompanied_to_service: met,
        })
    }
    fn engaged() -> Payload {
        Payload::TreatmentEngagementRecorded(TreatmentEngagementRecorded {
            service_code: "TRT01".into(),
        })
    }
    fn alerts(e: &PickupEntry) -> Vec<PickupAlert> {
        e.alerts
            .iter()
            .map(|a| PickupAlert::try_from(*a).unwrap())
            .collect()
    }

    const TODAY: &str = "2026-11-23";

    #[test]
    fn events_the_list_does_not_use_leave_no_trace_but_links_still_join_people() {
        let mut w = World::new();
        w.given(
            &["client"],
            "2026-11-20",
            Payload::NeedleExchangeRecorded(Default::default()),
        );
        w.given(
            &["pnc"],
            "2026-11-20",
            Payload::HarmReductionAdviceRecorded(Default::default()),
        );
        assert!(w.kv.0.is_empty(), "nothing stored: {:?}", w.kv.0.keys());
        // A referral naming nobody new to the list, but linking two keys.
        w.given(
            &["nhs", "client"],
            "2026-11-21",
            Payload::TreatmentReferralRecorded(Default::default()),
        );
        assert!(
            load(&w.kv, "nhs").unwrap().is_none(),
            "no record for a person the list knows nothing of"
        );
        assert_eq!(
            identity::root_of(&w.kv, "client").unwrap().as_deref(),
            Some("nhs")
        );
        // A release under the client code lands on the linked person.
        w.given(&["client"], "2026-11-22", release_date("2026-11-25"));
        let list = w.list("bradford", date(2026, 11, 22));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].person_key, "nhs");
    }

    #[test]
    fn a_bare_release_within_7_days_has_every_alert() {
        let mut w = World::new();
        w.given(&["p"], TODAY, release_date("2026-11-30"));
        let list = w.list("bradford", date(2026, 11, 23));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].days_to_release, 7);
        assert_eq!(list[0].status, PickupStatus::Scheduled as i32);
        use PickupAlert::*;
        assert_eq!(
            alerts(&list[0]),
            [NoConsent, NoAppointment, NoGateWorker, NoNaloxone]
        );
        // Eight days out: no alerts yet.
        assert!(w.list("bradford", date(2026, 11, 22))[0].alerts.is_empty());
    }

    #[test]
    fn the_whole_checklist_by_different_agencies_and_identifiers_clears_the_alerts() {
        let mut w = World::new();
        // The prison links NHS number and prison number.
        w.given(&["nhs", "prison"], TODAY, release_date("2026-11-27"))
            .given(&["prison"], TODAY, consent(true))
            .given(
                &["prison"],
                TODAY,
                Payload::ImminentReleaseFlagged(ImminentReleaseFlagged {
                    prison_code: "LEI".into(),
                }),
            )
            .given(
                &["prison"],
                TODAY,
                Payload::PreReleaseTriageRecorded(PreReleaseTriageRecorded {
                    prison_code: "LEI".into(),
                }),
            )
            .given(
                &["nhs"],
                TODAY,
                Payload::CommunityAppointmentBooked(CommunityAppointmentBooked {
                    service_code: "TRT01".into(),
                    appointment_at: at("2026-11-28"),
                }),
            )
            .given(
                &["nhs"],
                TODAY,
                Payload::GatePickupArranged(GatePickupArranged {
                    worker_id: "dip-7".into(),
                }),
            )
            .given(
                &["nhs"],
                TODAY,
                Payload::NaloxoneSupplied(NaloxoneSupplied {
                    pharmacy_code: "FW844".into(),
                    kits: 1,
                }),
            )
            .given(
                &["nhs"],
                TODAY,
                Payload::OverdoseTrainingRecorded(OverdoseTrainingRecorded {
                    service_code: "TRT01".into(),
                    audience: 3,
                    naloxone_kit_supplied: false,
                }),
            );
        let e = &w.list("bradford", date(2026, 11, 23))[0];
        assert_eq!(e.person_key, "nhs");
        assert_eq!(e.consent, ConsentState::Given as i32);
        assert!(
            e.flagged_imminent && e.triage_completed && e.naloxone_issued && e.overdose_trained
        );
        assert_eq!(e.gate_worker_id, "dip-7");
        assert_eq!(e.appointment_at, "2026-11-28T12:00:00Z");
        assert!(e.alerts.is_empty(), "{:?}", alerts(e));
    }

    #[test]
    fn facts_before_a_date_wait_for_the_episode() {
        let mut w = World::new();
        w.given(
            &["p"],
            TODAY,
            Payload::PreReleaseTriageRecorded(PreReleaseTriageRecorded {
                prison_code: "LEI".into(),
            }),
        )
        .given(&["p"], TODAY, release_date("2026-12-01"));
        assert!(w.list("bradford", date(2026, 11, 23))[0].triage_completed);
    }

    #[test]
    fn date_changes_cancellations_and_new_episodes() {
        let mut w = World::new();
        w.given(&["p"], TODAY, release_date("2026-12-01"))
            .given(
                &["p"],
                TODAY,
                Payload::PreReleaseTriageRecorded(PreReleaseTriageRecorded {
                    prison_code: "LEI".into(),
                }),
            )
            .given(&["p"], TODAY, release_date("2026-12-03"));
        let list = w.list("bradford", date(2026, 11, 23));
        assert_eq!(
            (list.len(), list[0].release_date.as_str()),
            (1, "2026-12-03")
        );
        assert!(list[0].triage_completed, "same episode keeps its checklist");
        w.given(
            &["p"],
            TODAY,
            Payload::ReleaseCancelled(ReleaseCancelled {
                prison_code: "LEI".into(),
            }),
        );
        assert!(w.list("bradford", date(2026, 11, 23)).is_empty());
        w.given(&["p"], TODAY, release_date("2026-12-05"));
        let list = w.list("bradford", date(2026, 11, 23));
        assert_eq!(list[0].release_date, "2026-12-05");
        assert!(
            !list[0].triage_completed,
            "a new episode starts a new checklist"
        );
    }

    #[test]
    fn released_picked_up_missed_engaged_and_continuity() {
        let mut w = World::new();
        // a: released, not met, engaged 10 days later.
        w.given(&["a"], "2026-11-10", release_date("2026-11-10"))
            .given(&["a"], "2026-11-10", released())
            .given(&["a"], "2026-11-10", pickup(false));
        let e = &w.list("bradford", date(2026, 11, 23))[0];
        assert_eq!(
            (e.status, alerts(e)),
            (PickupStatus::Missed as i32, vec![PickupAlert::NotPickedUp])
        );
        w.given(&["a"], "2026-11-20", engaged());
        assert_eq!(
            w.list("bradford", date(2026, 11, 23))[0].status,
            PickupStatus::Engaged as i32
        );
        // b: released with no pick-up recorded.
        w.given(&["b"], "2026-11-12", release_date("2026-11-12"))
            .given(&["b"], "2026-11-12", released());
        // c: met at the gate, engaged 30 days later (too late for continuity).
        w.given(&["c"], "2026-10-01", release_date("2026-10-01"))
            .given(&["c"], "2026-10-01", pickup(true))
            .given(&["c"], "2026-10-31", engaged());
        let by_key: std::collections::BTreeMap<_, _> = w
            .list("bradford", date(2026, 11, 23))
            .into_iter()
            .map(|e| (e.person_key.clone(), e))
            .collect();
        assert_eq!(by_key["b"].status, PickupStatus::Released as i32);
        assert_eq!(alerts(&by_key["b"]), [PickupAlert::NotPickedUp]);
        assert!(
            !by_key.contains_key("c"),
            "released 53 days ago: out of the window"
        );
        assert_eq!(w.continuity("bradford", "2026-27"), (3, 1));
        // a comes back: a new release date opens a new episode; the old one still counts.
        w.given(&["a"], "2026-12-01", release_date("2027-01-15"));
        assert_eq!(
            load(&w.kv, "a").unwrap().unwrap().episode.unwrap().status,
            PickupStatus::Scheduled as i32
        );
        assert_eq!(w.continuity("bradford", "2026-27"), (3, 1));
        assert_eq!(w.continuity("bradford", "2025-26"), (0, 0));
        assert_eq!(w.continuity("leeds", "2026-27"), (0, 0));
    }

    #[test]
    fn consent_withdrawn_and_refused() {
        let mut w = World::new();
        w.given(&["p"], TODAY, release_date("2026-11-25"))
            .given(&["p"], TODAY, consent(true));
        assert_eq!(
            w.list("bradford", date(2026, 11, 23))[0].consent,
            ConsentState::Given as i32
        );
        w.given(&["p"], TODAY, consent(false));
        let e = &w.list("bradford", date(2026, 11, 23))[0];
        assert_eq!(e.consent, ConsentState::Withdrawn as i32);
        assert!(alerts(e).contains(&PickupAlert::NoConsent));
        w.given(&["q"], TODAY, release_date("2026-11-25"))
            .given(&["q"], TODAY, consent(false));
        let q = w
            .list("bradford", date(2026, 11, 23))
            .into_iter()
            .find(|e| e.person_key == "q")
            .unwrap();
        assert_eq!(q.consent, ConsentState::Refused as i32);
        // Consent for sharing with treatment is not gate pick-up consent.
        w.given(&["r"], TODAY, release_date("2026-11-25")).given(
            &["r"],
            TODAY,
            Payload::ConsentRecorded(ConsentRecorded {
                purpose: ConsentPurpose::ShareWithTreatment as i32,
                given: true,
            }),
        );
        let r = w
            .list("bradford", date(2026, 11, 23))
            .into_iter()
            .find(|e| e.person_key == "r")
            .unwrap();
        assert_eq!(r.consent, ConsentState::ConsentUnknown as i32);
    }

    #[test]
    fn two_records_found_to_be_one_person_merge() {
        let mut w = World::new();
        w.given(&["prison"], TODAY, release_date("2026-12-01"))
            .given(&["nhs"], TODAY, consent(true))
            .given(
                &["nhs"],
                TODAY,
                Payload::GatePickupArranged(GatePickupArranged {
                    worker_id: "dip-7".into(),
                }),
            );
        // Consent alone opened no episode; the gate worker waits as pending.
        assert_eq!(w.list("bradford", date(2026, 11, 23)).len(), 1);
        w.given(
            &["prison", "nhs"],
            TODAY,
            Payload::NaloxoneOnReleaseRecorded(NaloxoneOnReleaseRecorded {
                prison_code: "LEI".into(),
            }),
        );
        let list = w.list("bradford", date(2026, 11, 23));
        assert_eq!(list.len(), 1);
        let e = &list[0];
        assert_eq!(e.consent, ConsentState::Given as i32);
        assert!(e.naloxone_issued);
        assert!(
            load(&w.kv, "nhs").unwrap().is_none(),
            "the folded record is gone"
        );
    }

    #[test]
    fn other_partnerships_are_apart_and_people_without_events_are_absent() {
        let mut w = World::new();
        w.given_in("leeds", &["x"], TODAY, release_date("2026-11-30"));
        assert!(w.list("bradford", date(2026, 11, 23)).is_empty());
        assert_eq!(w.list("leeds", date(2026, 11, 23)).len(), 1);
    }
}
