//! The pick-up list's read model, as pure functions over a [`Kv`]: how a
//! fact changes a person's record ([`Pickup`]'s fold) and how the record
//! looks on a given day ([`view`]). No I/O: the service runs them over a
//! RocksDB transaction, tests over an in-memory map.
//!
//! # People, per partnership
//! Who is whom is `hub-projection`'s [`identity`], per partnership: a
//! person's record is keyed by partnership and root, and is always the
//! fold of that person's facts in stream order, so a link or unlink by a
//! data steward (or a client code found to be shared) refolds the people
//! involved rather than patching them. Nothing recorded under one
//! partnership reaches another's records, except through a handover.
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
//! Consent for `GATE_PICKUP` (and for `SHARE_WITH_TREATMENT`) belongs to the
//! person and lasts until withdrawn. The other checklist facts (flagged
//! imminent, triage, appointment, gate worker, naloxone, overdose training)
//! belong to the current episode; facts recorded while no episode is open
//! wait in `pending` and join the next episode when it opens.
//!
//! # Handover
//! `HandoverRecorded` in partnership P names a receiver R. In P the person
//! leaves the list (and P's continuity of care). Every fact P holds about
//! them, and every fact P records about them later, is copied to R as a
//! fact of R's ([`identity::import`]), marked by its origin. In R, the
//! prison-held details among them (flagged imminent, triage, naloxone) are
//! kept apart and shown only while `SHARE_WITH_TREATMENT` is given; the name
//! is shown, as always, only while `GATE_PICKUP` is given. The entry says
//! from whom and when.
//!
//! # Continuity of care
//! Each released episode leaves a row (partnership, released on, engaged
//! on) that stays when a later episode replaces it, so a financial year's
//! releases and engagements can be counted however many times a person
//! came and went.

use jiff::civil::Date;
use prost::Message;

use hub_core::time::{london_date, FinancialYear};
use hub_projection::identity::{self, Changed, PersonModel};
use hub_proto::{
    common::ConsentPurpose,
    events::{event::Payload, Event, Sealed},
    projections::{ConsentState, ContinuityFunnel, PickupAlert, PickupEntry, PickupStatus},
};
use hub_store::{parts, Error, KeyKind, Kv};

/// A person's record in one partnership, under their root key there.
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
    /// Consent for SHARE_WITH_TREATMENT (a `ConsentState`).
    #[prost(int32, tag = "5")]
    pub share_consent: i32,
    /// Handed over to this partnership: when it left the list here.
    #[prost(string, tag = "6")]
    pub handed_over_to: String,
    /// Received from this partnership by a handover.
    #[prost(string, tag = "7")]
    pub handed_over_from: String,
    /// When the handover was recorded (seconds since 1970).
    #[prost(int64, tag = "8")]
    pub handed_over_at: i64,
    /// When the GATE_PICKUP decision in force was made (`occurred_at`,
    /// seconds since 1970; 0 while none was recorded).
    #[prost(int64, tag = "9")]
    pub gate_consent_at: i64,
    /// When the SHARE_WITH_TREATMENT decision in force was made.
    #[prost(int64, tag = "10")]
    pub share_consent_at: i64,
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
    /// Met at the gate (a gate pick-up recorded as met).
    #[prost(bool, tag = "11")]
    pub met_at_gate: bool,
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
    /// The prison-held details as another partnership recorded them
    /// before handing the person over: shown only while SHARE_WITH_TREATMENT
    /// is given.
    #[prost(bool, tag = "7")]
    pub received_flagged_imminent: bool,
    #[prost(bool, tag = "8")]
    pub received_triage_completed: bool,
    #[prost(bool, tag = "9")]
    pub received_naloxone_issued: bool,
}

/// Where a person's name is sealed.
#[derive(Clone, PartialEq, Message)]
pub struct SealedName {
    #[prost(string, tag = "1")]
    pub event_id: String,
    #[prost(message, optional, tag = "2")]
    pub sealed: Option<Sealed>,
}

/// A released episode's continuity facts: what happened on the way from
/// prison to treatment (the continuity funnel).
#[derive(Clone, PartialEq, Message)]
pub struct ContinuityRow {
    #[prost(string, tag = "1")]
    pub partnership_code: String,
    #[prost(string, tag = "2")]
    pub released_on: String,
    #[prost(string, tag = "3")]
    pub engaged_on: String,
    #[prost(string, tag = "4")]
    pub prison_code: String,
    /// Flagged as an imminent release (here, or before a handover).
    #[prost(bool, tag = "5")]
    pub flagged: bool,
    /// Triaged before release (here, or before a handover).
    #[prost(bool, tag = "6")]
    pub triaged: bool,
    /// A community appointment was booked.
    #[prost(bool, tag = "7")]
    pub appointment_booked: bool,
    #[prost(bool, tag = "8")]
    pub met_at_gate: bool,
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

impl PersonRecord {
    /// Still this partnership's to act on (not handed over elsewhere).
    pub fn here(&self) -> bool {
        self.handed_over_to.is_empty()
    }

    pub fn share_consent(&self) -> ConsentState {
        ConsentState::try_from(self.share_consent).unwrap_or(ConsentState::ConsentUnknown)
    }
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, Error> {
    M::decode(bytes).map_err(|e| Error::undecodable(what, e))
}

fn person_key(partnership: &str, root: &str) -> Vec<u8> {
    parts(&[partnership.as_bytes(), root.as_bytes()])
}

/// The record of `root` in `partnership`.
pub fn load<K: Kv>(kv: &K, partnership: &str, root: &str) -> Result<Option<PersonRecord>, Error> {
    kv.get(KeyKind::PickupPerson, &person_key(partnership, root))?
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
    let r = record.filter(|r| r.here())?;
    let e = r.episode.as_ref()?;
    e.listed()
        .then(|| (e.partnership_code.clone(), e.release_date.clone()))
}

fn continuity_row(record: Option<&PersonRecord>) -> Option<(u64, ContinuityRow)> {
    let r = record.filter(|r| r.here())?;
    let e = r.episode.as_ref()?;
    let c = e.checklist.clone().unwrap_or_default();
    (!e.released_on.is_empty()).then(|| {
        (
            e.opened_sequence,
            ContinuityRow {
                partnership_code: e.partnership_code.clone(),
                released_on: e.released_on.clone(),
                engaged_on: e.engaged_on.clone(),
                prison_code: e.prison_code.clone(),
                flagged: c.flagged_imminent || c.received_flagged_imminent,
                triaged: c.triage_completed || c.received_triage_completed,
                appointment_booked: !c.appointment_at.is_empty(),
                met_at_gate: e.met_at_gate,
            },
        )
    })
}

fn continuity_keys(p: &str, root: &str, episode: u64, row: &ContinuityRow) -> [Vec<u8>; 2] {
    let ep = episode.to_be_bytes();
    [
        parts(&[p.as_bytes(), root.as_bytes(), &ep]),
        parts(&[
            row.partnership_code.as_bytes(),
            row.released_on.as_bytes(),
            root.as_bytes(),
            &ep,
        ]),
    ]
}

fn put_continuity<K: Kv>(kv: &mut K, p: &str, root: &str, episode: u64, row: &ContinuityRow) {
    let [of, by_date] = continuity_keys(p, root, episode, row);
    kv.put(KeyKind::ContinuityOf, &of, row.encode_to_vec());
    // The row itself, so that a year's funnel is one range scan.
    kv.put(KeyKind::ContinuityByDate, &by_date, row.encode_to_vec());
}

fn delete_continuity<K: Kv>(kv: &mut K, p: &str, root: &str, episode: u64, row: &ContinuityRow) {
    let [of, by_date] = continuity_keys(p, root, episode, row);
    kv.delete(KeyKind::ContinuityOf, &of);
    kv.delete(KeyKind::ContinuityByDate, &by_date);
}

/// Stores `new` for `root` of `p`, keeping the list index and the
/// continuity rows in step with it.
fn save<K: Kv>(
    kv: &mut K,
    p: &str,
    root: &str,
    old: Option<&PersonRecord>,
    new: Option<&PersonRecord>,
) {
    let (before, after) = (list_position(old), list_position(new));
    if before != after {
        if let Some((lp, d)) = &before {
            kv.delete(KeyKind::PickupByDate, &index_key(lp, d, root));
        }
    }
    // The index entry carries a copy of the record, so that reading the
    // list is one range scan, not a point read per entry.
    if let (Some((lp, d)), Some(r)) = (&after, new) {
        kv.put(
            KeyKind::PickupByDate,
            &index_key(lp, d, root),
            r.encode_to_vec(),
        );
    }
    let (before, after) = (continuity_row(old), continuity_row(new));
    if before != after {
        // The same episode changed: replace its row. Another episode: keep
        // the old one's row, it is history.
        if let (Some((old_ep, old_row)), Some((new_ep, _))) = (&before, &after) {
            if old_ep == new_ep {
                delete_continuity(kv, p, root, *old_ep, old_row);
            }
        }
        if let Some((ep, row)) = &after {
            put_continuity(kv, p, root, *ep, row);
        }
    }
    match new {
        Some(r) => kv.put(
            KeyKind::PickupPerson,
            &person_key(p, root),
            r.encode_to_vec(),
        ),
        None => kv.delete(KeyKind::PickupPerson, &person_key(p, root)),
    }
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

/// When `event` happened, in seconds since 1970.
fn seconds(event: &Event) -> i64 {
    event.occurred_at.as_ref().map_or(0, |t| t.seconds)
}

/// A time kept as seconds since 1970, for a reply (absent when 0).
fn timestamp(seconds: i64) -> Option<prost_types::Timestamp> {
    (seconds != 0).then_some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn consent_after(now: i32, given: bool) -> i32 {
    let now = ConsentState::try_from(now).unwrap_or(ConsentState::ConsentUnknown);
    (match (given, now) {
        (true, _) => ConsentState::Given,
        (false, ConsentState::Given | ConsentState::Withdrawn) => ConsentState::Withdrawn,
        (false, _) => ConsentState::Refused,
    }) as i32
}

/// The pick-up list as a [`PersonModel`]: what identity changes drive.
pub struct Pickup;

impl PersonModel for Pickup {
    fn forget<K: Kv>(&self, kv: &mut K, p: &str, root: &str) -> Result<(), Error> {
        let old = load(kv, p, root)?;
        save(kv, p, root, old.as_ref(), None);
        // History rows of earlier episodes too: the refold writes them again.
        let prefix = parts(&[p.as_bytes(), root.as_bytes(), b""]);
        for (key, value) in kv.scan(KeyKind::ContinuityOf, &prefix)? {
            let episode = u64::from_be_bytes(
                key[prefix.len()..]
                    .try_into()
                    .map_err(|_| Error::Corrupt("episode id".into()))?,
            );
            let row: ContinuityRow = decode(&value, "continuity row")?;
            delete_continuity(kv, p, root, episode, &row);
        }
        Ok(())
    }

    fn fold<K: Kv>(
        &self,
        kv: &mut K,
        p: &str,
        root: &str,
        event: &Event,
        sequence: u64,
    ) -> Result<Option<String>, Error> {
        let old = load(kv, p, root)?;
        let mut rec = old.clone().unwrap_or_default();
        fold_fact(&mut rec, p, event, sequence);
        if old.as_ref() != Some(&rec) {
            save(kv, p, root, old.as_ref(), Some(&rec));
        }
        Ok((!rec.handed_over_to.is_empty()).then_some(rec.handed_over_to))
    }
}

/// How one fact changes a person's record in partnership `p`. A fact whose
/// event was recorded under another partnership was handed over.
fn fold_fact(rec: &mut PersonRecord, p: &str, event: &Event, sequence: u64) {
    let received = event.partnership_code != p;
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
            let e = match open(rec) {
                Some(PickupStatus::Scheduled) => rec.episode.as_mut().expect("open"),
                _ => open_episode(rec, p, sequence),
            };
            e.partnership_code = p.to_string();
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
            let e = match open(rec) {
                Some(PickupStatus::Scheduled) => rec.episode.as_mut().expect("open"),
                Some(_) => return, // already released
                None => {
                    let e = open_episode(rec, p, sequence);
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
                if g.met && e.status() == PickupStatus::PickedUp {
                    e.met_at_gate = true;
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
            rec.gate_consent = consent_after(rec.gate_consent, c.given);
            rec.gate_consent_at = seconds(event);
        }
        Some(Payload::ConsentRecorded(c))
            if c.purpose == ConsentPurpose::ShareWithTreatment as i32 =>
        {
            rec.share_consent = consent_after(rec.share_consent, c.given);
            rec.share_consent_at = seconds(event);
        }
        Some(Payload::ImminentReleaseFlagged(_)) => {
            let c = checklist(rec);
            if received {
                c.received_flagged_imminent = true
            } else {
                c.flagged_imminent = true
            }
        }
        Some(Payload::PreReleaseTriageRecorded(_)) => {
            let c = checklist(rec);
            if received {
                c.received_triage_completed = true
            } else {
                c.triage_completed = true
            }
        }
        Some(Payload::NaloxoneOnReleaseRecorded(_) | Payload::NaloxoneSupplied(_)) => {
            let c = checklist(rec);
            if received {
                c.received_naloxone_issued = true
            } else {
                c.naloxone_issued = true
            }
        }
        Some(Payload::OverdoseTrainingRecorded(t)) => {
            let c = checklist(rec);
            c.overdose_trained = true;
            if received {
                c.received_naloxone_issued |= t.naloxone_kit_supplied;
            } else {
                c.naloxone_issued |= t.naloxone_kit_supplied;
            }
        }
        Some(Payload::CommunityAppointmentBooked(a)) => {
            if let Some(at) = a
                .appointment_at
                .as_ref()
                .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
            {
                checklist(rec).appointment_at = at.to_string();
            }
        }
        Some(Payload::GatePickupArranged(g)) => checklist(rec).gate_worker_id = g.worker_id.clone(),
        Some(Payload::HandoverRecorded(h)) => {
            let at = event
                .recorded_at
                .as_ref()
                .map(|t| t.seconds)
                .unwrap_or_default();
            if h.to_partnership_code == p {
                // Received: the person is this partnership's now.
                rec.handed_over_from = event.partnership_code.clone();
                rec.handed_over_at = at;
                rec.handed_over_to.clear();
            } else if !received {
                rec.handed_over_to = h.to_partnership_code.clone();
            }
        }
        _ => {}
    }
    if let Some(sealed) = event.sealed.as_ref().filter(|s| s.has_name) {
        rec.name = Some(SealedName {
            event_id: event.event_id.clone(),
            sealed: Some(sealed.clone()),
        });
    }
}

/// Applies one event (at stream `sequence`); returns the people whose
/// entries may have changed.
pub fn apply<K: Kv>(kv: &mut K, event: &Event, sequence: u64) -> Result<Vec<Changed>, Error> {
    crate::retention::touch(kv, event)?;
    identity::apply(kv, event, sequence, concerns_the_list(event), &Pickup)
}

/// Whether `event` says anything the list shows: a fact of a release
/// episode or its checklist, consent, a handover, a name.
fn concerns_the_list(event: &Event) -> bool {
    event.sealed.as_ref().is_some_and(|s| s.has_name)
        || matches!(
            &event.payload,
            Some(
                Payload::ConsentRecorded(_)
                    | Payload::ReleaseDateRecorded(_)
                    | Payload::ReleaseCancelled(_)
                    | Payload::ReleaseRecorded(_)
                    | Payload::HandoverRecorded(_)
                    | Payload::GatePickupRecorded(_)
                    | Payload::TreatmentEngagementRecorded(_)
                    | Payload::ImminentReleaseFlagged(_)
                    | Payload::PreReleaseTriageRecorded(_)
                    | Payload::NaloxoneOnReleaseRecorded(_)
                    | Payload::NaloxoneSupplied(_)
                    | Payload::OverdoseTrainingRecorded(_)
                    | Payload::CommunityAppointmentBooked(_)
                    | Payload::GatePickupArranged(_)
            )
        )
}

/// Alerts apply to scheduled releases this many days away or fewer.
pub const ALERT_DAYS: i32 = 7;

/// Who reads an entry, as far as what it shows depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// CARAT and DIP workers, admins.
    Worker,
    /// Treatment workers: prison-held details only while
    /// SHARE_WITH_TREATMENT is given.
    Treatment,
}

/// The entry of `root` as seen on `as_of` by `reader`, without a name (the
/// caller opens the name when consent is `GIVEN`); `None` when not listed
/// here (no dated episode, cancelled, or handed over elsewhere).
pub fn view(root: &str, record: &PersonRecord, as_of: Date, reader: Reader) -> Option<PickupEntry> {
    if !record.here() {
        return None;
    }
    let e = record.episode.as_ref().filter(|e| e.listed())?;
    let release_date: Date = e.release_date.parse().ok()?;
    let days_to_release = (release_date - as_of).get_days();
    let consent =
        ConsentState::try_from(record.gate_consent).unwrap_or(ConsentState::ConsentUnknown);
    let status = e.status();
    let c = e.checklist.clone().unwrap_or_default();
    // Prison-held details: what another partnership handed over shows only
    // with consent to share with treatment; so does all of it to treatment
    // workers.
    let shared = record.share_consent() == ConsentState::Given;
    let (flagged_imminent, triage_completed, naloxone_issued) =
        if reader == Reader::Treatment && !shared {
            (false, false, false)
        } else {
            (
                c.flagged_imminent || (shared && c.received_flagged_imminent),
                c.triage_completed || (shared && c.received_triage_completed),
                c.naloxone_issued || (shared && c.received_naloxone_issued),
            )
        };
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
        if !naloxone_issued {
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
        flagged_imminent,
        triage_completed,
        appointment_at: c.appointment_at,
        gate_worker_id: c.gate_worker_id,
        naloxone_issued,
        overdose_trained: c.overdose_trained,
        days_to_release,
        alerts,
        partnership_code: e.partnership_code.clone(),
        removed: false,
        handed_over_from: record.handed_over_from.clone(),
        handed_over_at: (!record.handed_over_from.is_empty()).then_some(prost_types::Timestamp {
            seconds: record.handed_over_at,
            nanos: 0,
        }),
        consent_since: timestamp(record.gate_consent_at),
        share_with_treatment: record.share_consent,
        share_with_treatment_since: timestamp(record.share_consent_at),
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

/// What happened to one person released in the year (any of their
/// release episodes there, by prison or in all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stages {
    flagged: bool,
    triaged: bool,
    appointment_booked: bool,
    met_at_gate: bool,
    engaged_within_21_days: bool,
}

impl Stages {
    fn of(row: &ContinuityRow) -> Self {
        let engaged = row
            .released_on
            .parse::<Date>()
            .ok()
            .zip(row.engaged_on.parse::<Date>().ok())
            .is_some_and(|(r, e)| (0..=CONTINUITY_DAYS).contains(&(e - r).get_days()));
        Self {
            flagged: row.flagged,
            triaged: row.triaged,
            appointment_booked: row.appointment_booked,
            met_at_gate: row.met_at_gate,
            engaged_within_21_days: engaged,
        }
    }

    fn or(self, o: Self) -> Self {
        Self {
            flagged: self.flagged || o.flagged,
            triaged: self.triaged || o.triaged,
            appointment_booked: self.appointment_booked || o.appointment_booked,
            met_at_gate: self.met_at_gate || o.met_at_gate,
            engaged_within_21_days: self.engaged_within_21_days || o.engaged_within_21_days,
        }
    }
}

fn tally_funnel<'a>(
    prison_code: &str,
    people: impl Iterator<Item = &'a Stages>,
) -> ContinuityFunnel {
    let mut f = ContinuityFunnel {
        prison_code: prison_code.to_string(),
        ..Default::default()
    };
    for s in people {
        f.released += 1;
        f.flagged += u32::from(s.flagged);
        f.triaged += u32::from(s.triaged);
        f.appointment_booked += u32::from(s.appointment_booked);
        f.met_at_gate += u32::from(s.met_at_gate);
        f.engaged_within_21_days += u32::from(s.engaged_within_21_days);
    }
    f
}

/// From a year's `ContinuityByDate` rows: the continuity funnel of the
/// people released (each counted once however many episodes), in all and
/// by prison (sorted by prison code).
pub fn funnel(
    rows: &[(Vec<u8>, Vec<u8>)],
) -> Result<(ContinuityFunnel, Vec<ContinuityFunnel>), Error> {
    use std::collections::BTreeMap;
    let mut all: BTreeMap<&[u8], Stages> = BTreeMap::new();
    let mut by_prison: BTreeMap<String, BTreeMap<&[u8], Stages>> = BTreeMap::new();
    for (key, value) in rows {
        let fields: Vec<&[u8]> = key.splitn(4, |b| *b == 0).collect();
        let Some(root) = fields.get(2) else {
            continue;
        };
        let row: ContinuityRow = decode(value, "continuity row")?;
        let stages = Stages::of(&row);
        let e = all.entry(root).or_default();
        *e = e.or(stages);
        let e = by_prison
            .entry(row.prison_code.clone())
            .or_default()
            .entry(root)
            .or_default();
        *e = e.or(stages);
    }
    Ok((
        tally_funnel("", all.values()),
        by_prison
            .iter()
            .map(|(prison, people)| tally_funnel(prison, people.values()))
            .collect(),
    ))
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
                    let record = load(&self.kv, partnership, &root).unwrap().unwrap();
                    assert_eq!(
                        decode_record(&copy).unwrap(),
                        record,
                        "the index's copy of the record is in step with it"
                    );
                    view(&root, &record, as_of, Reader::Worker)
                })
                .filter(|e| in_window(e, 14))
                .collect()
        }

        fn funnel(&self, partnership: &str, fy: &str) -> (ContinuityFunnel, Vec<ContinuityFunnel>) {
            let (from, to) = continuity_range(partnership, FinancialYear::parse(fy).unwrap());
            let rows: Vec<_> = self
                .kv
                .scan(KeyKind::ContinuityByDate, b"")
                .unwrap()
                .into_iter()
                .filter(|(k, _)| *k >= from && *k < to)
                .collect();
            funnel(&rows).unwrap()
        }

        /// People released, and of those engaged within 21 days.
        fn continuity(&self, partnership: &str, fy: &str) -> (u32, u32) {
            let (all, _) = self.funnel(partnership, fy);
            (all.released, all.engaged_within_21_days)
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
        // Only when each key was last named (retention) is kept.
        assert!(
            w.kv.0.keys().all(|k| k[0] == KeyKind::LastSeen as u8),
            "nothing else stored: {:?}",
            w.kv.0.keys()
        );
        // A referral naming nobody new to the list, but linking two keys.
        w.given(
            &["nhs", "client"],
            "2026-11-21",
            Payload::TreatmentReferralRecorded(Default::default()),
        );
        assert!(
            load(&w.kv, "bradford", "nhs").unwrap().is_none(),
            "no record for a person the list knows nothing of"
        );
        assert_eq!(
            identity::root_of(&w.kv, "bradford", "client")
                .unwrap()
                .as_deref(),
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
            load(&w.kv, "bradford", "a")
                .unwrap()
                .unwrap()
                .episode
                .unwrap()
                .status,
            PickupStatus::Scheduled as i32
        );
        assert_eq!(w.continuity("bradford", "2026-27"), (3, 1));
        assert_eq!(w.continuity("bradford", "2025-26"), (0, 0));
        assert_eq!(w.continuity("leeds", "2026-27"), (0, 0));
    }

    #[test]
    fn the_funnel_follows_each_person_released_in_the_year_by_prison_and_in_all() {
        let mut w = World::new();
        let flag = || {
            Payload::ImminentReleaseFlagged(ImminentReleaseFlagged {
                prison_code: "LEI".into(),
            })
        };
        let triage = || {
            Payload::PreReleaseTriageRecorded(PreReleaseTriageRecorded {
                prison_code: "LEI".into(),
            })
        };
        let appointment = || {
            Payload::CommunityAppointmentBooked(CommunityAppointmentBooked {
                service_code: "TRT01".into(),
                appointment_at: at("2026-10-20"),
            })
        };
        // a: the whole way: flagged, triaged, appointment, met, engaged in 5 days.
        w.given(&["a"], "2026-10-01", release_date("2026-10-10"))
            .given(&["a"], "2026-10-02", flag())
            .given(&["a"], "2026-10-03", triage())
            .given(&["a"], "2026-10-04", appointment())
            .given(&["a"], "2026-10-10", released())
            .given(&["a"], "2026-10-10", pickup(true))
            .given(&["a"], "2026-10-15", engaged());
        // b: flagged only; not met; engaged after 22 days (lost for continuity).
        w.given(&["b"], "2026-10-01", release_date("2026-10-10"))
            .given(&["b"], "2026-10-02", flag())
            .given(&["b"], "2026-10-10", released())
            .given(&["b"], "2026-10-10", pickup(false))
            .given(&["b"], "2026-11-01", engaged());
        // c: from another prison, nothing before release; met at the gate.
        w.given(
            &["c"],
            "2026-10-01",
            Payload::ReleaseDateRecorded(ReleaseDateRecorded {
                prison_code: "WDI".into(),
                release_date: "2026-10-12".into(),
            }),
        )
        .given(&["c"], "2026-10-12", released())
        .given(&["c"], "2026-10-12", pickup(true));
        // d: not released yet: not in the funnel.
        w.given(&["d"], "2026-10-01", release_date("2027-01-10"))
            .given(&["d"], "2026-10-02", flag());
        let (all, by_prison) = w.funnel("bradford", "2026-27");
        let stages = |f: &ContinuityFunnel| f.stages().map(|(_, n)| n);
        assert_eq!(stages(&all), [3, 2, 1, 1, 2, 1]);
        assert_eq!(
            by_prison
                .iter()
                .map(|f| f.prison_code.as_str())
                .collect::<Vec<_>>(),
            ["LEI", "WDI"]
        );
        assert_eq!(stages(&by_prison[0]), [2, 2, 1, 1, 1, 1]);
        assert_eq!(stages(&by_prison[1]), [1, 0, 0, 0, 1, 0]);
        // a comes back and is released again unflagged: still one person,
        // whose stages are what happened on any release that year.
        w.given(&["a"], "2026-12-01", release_date("2026-12-05"))
            .given(&["a"], "2026-12-05", released());
        let (all, _) = w.funnel("bradford", "2026-27");
        assert_eq!(stages(&all), [3, 2, 1, 1, 2, 1]);
        assert_eq!(w.funnel("leeds", "2026-27").0.released, 0);
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
        assert_eq!(r.share_with_treatment, ConsentState::Given as i32);
        assert_eq!(r.share_with_treatment_since, at(TODAY));
        assert_eq!(r.consent_since, None, "no gate pick-up decision yet");
    }

    #[test]
    fn the_entry_says_which_consents_are_in_force_since_when() {
        let mut w = World::new();
        w.given(&["p"], "2026-11-01", release_date("2026-11-25"))
            .given(&["p"], "2026-11-02", consent(true));
        let e = &w.list("bradford", date(2026, 11, 23))[0];
        assert_eq!(e.consent_since, at("2026-11-02"));
        assert_eq!(e.share_with_treatment, ConsentState::ConsentUnknown as i32);
        assert_eq!(e.share_with_treatment_since, None);
        w.given(&["p"], "2026-11-20", consent(false));
        let e = &w.list("bradford", date(2026, 11, 23))[0];
        assert_eq!(e.consent, ConsentState::Withdrawn as i32);
        assert_eq!(
            e.consent_since,
            at("2026-11-20"),
            "the withdrawal is what is in force"
        );
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
            load(&w.kv, "bradford", "nhs").unwrap().is_none(),
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

    fn triage() -> Payload {
        Payload::PreReleaseTriageRecorded(PreReleaseTriageRecorded {
            prison_code: "LEI".into(),
        })
    }
    fn share(given: bool) -> Payload {
        Payload::ConsentRecorded(ConsentRecorded {
            purpose: ConsentPurpose::ShareWithTreatment as i32,
            given,
        })
    }
    fn handover(to: &str) -> Payload {
        Payload::HandoverRecorded(HandoverRecorded {
            prison_code: "LEI".into(),
            to_partnership_code: to.into(),
        })
    }

    #[test]
    fn what_leeds_records_about_bradfords_person_changes_nothing_of_bradfords() {
        let mut w = World::new();
        w.given(&["nhs", "prison"], TODAY, release_date("2026-11-27"))
            .given(&["prison"], TODAY, consent(true));
        let before = w.list("bradford", date(2026, 11, 23));
        let stored = w.kv.scan(KeyKind::PickupPerson, b"bradford\0").unwrap();
        // Leeds, knowing only the NHS number, records everything it can.
        w.given_in("leeds", &["nhs"], TODAY, consent(false))
            .given_in("leeds", &["nhs"], TODAY, release_date("2026-12-01"))
            .given_in("leeds", &["nhs"], TODAY, pickup(true))
            .given_in("leeds", &["nhs"], TODAY, released())
            .given_in(
                "leeds",
                &["nhs"],
                TODAY,
                Payload::ReleaseCancelled(ReleaseCancelled {
                    prison_code: "LEI".into(),
                }),
            );
        assert_eq!(w.list("bradford", date(2026, 11, 23)), before);
        assert_eq!(
            w.kv.scan(KeyKind::PickupPerson, b"bradford\0").unwrap(),
            stored,
            "Bradford's records are untouched"
        );
        let leeds = w.list("leeds", date(2026, 11, 23));
        assert_eq!(leeds.len(), 1);
        assert_eq!(leeds[0].consent, ConsentState::Refused as i32);
        assert_eq!(w.continuity("bradford", "2026-27"), (0, 0));
    }

    #[test]
    fn treatment_workers_see_prison_held_details_only_with_consent_to_share() {
        let mut w = World::new();
        w.given(&["p"], TODAY, release_date("2026-11-27"))
            .given(&["p"], TODAY, triage());
        let record = load(&w.kv, "bradford", "p").unwrap().unwrap();
        let as_of = date(2026, 11, 23);
        assert!(
            view("p", &record, as_of, Reader::Worker)
                .unwrap()
                .triage_completed
        );
        assert!(
            !view("p", &record, as_of, Reader::Treatment)
                .unwrap()
                .triage_completed
        );
        w.given(&["p"], TODAY, share(true));
        let record = load(&w.kv, "bradford", "p").unwrap().unwrap();
        assert!(
            view("p", &record, as_of, Reader::Treatment)
                .unwrap()
                .triage_completed
        );
        w.given(&["p"], TODAY, share(false));
        let record = load(&w.kv, "bradford", "p").unwrap().unwrap();
        assert!(
            !view("p", &record, as_of, Reader::Treatment)
                .unwrap()
                .triage_completed
        );
    }

    #[test]
    fn a_handover_moves_the_person_and_what_crosses_follows_consent() {
        let mut w = World::new();
        w.given(&["nhs", "prison"], TODAY, release_date("2026-11-27"))
            .given(&["prison"], TODAY, consent(true))
            .given(&["prison"], TODAY, triage())
            .given(
                &["prison"],
                TODAY,
                Payload::GatePickupArranged(GatePickupArranged {
                    worker_id: "dip-7".into(),
                }),
            );
        // Leeds already knew the NHS number (a referral), nothing more.
        w.given_in("leeds", &["nhs"], TODAY, engaged());
        w.given(&["prison"], TODAY, handover("leeds"));
        let as_of = date(2026, 11, 23);
        assert!(w.list("bradford", as_of).is_empty(), "left Bradford's list");
        let leeds = w.list("leeds", as_of);
        assert_eq!(leeds.len(), 1);
        let e = &leeds[0];
        assert_eq!(e.handed_over_from, "bradford");
        assert!(e.handed_over_at.is_some());
        assert_eq!(e.release_date, "2026-11-27");
        assert_eq!(e.consent, ConsentState::Given as i32);
        assert_eq!(e.gate_worker_id, "dip-7");
        assert!(
            !e.triage_completed,
            "prison-held: not without SHARE_WITH_TREATMENT"
        );
        // Bradford records consent to share, and the release: both cross.
        w.given(&["prison"], TODAY, share(true))
            .given(&["prison"], "2026-11-27", released());
        let e = &w.list("leeds", as_of)[0];
        assert!(e.triage_completed);
        assert_eq!(e.status, PickupStatus::Released as i32);
        // Leeds acts on it; Bradford's list stays empty.
        w.given_in("leeds", &["prison"], "2026-11-27", pickup(true));
        assert_eq!(
            w.list("leeds", as_of)[0].status,
            PickupStatus::PickedUp as i32
        );
        assert!(w.list("bradford", as_of).is_empty());
        assert_eq!(w.continuity("bradford", "2026-27"), (0, 0));
        assert_eq!(w.continuity("leeds", "2026-27"), (1, 0));
    }

    #[test]
    fn a_handover_without_consent_carries_no_name_and_no_prison_held_details() {
        let mut w = World::new();
        w.given(&["prison"], TODAY, release_date("2026-11-27"))
            .given(&["prison"], TODAY, triage())
            .given(&["prison"], TODAY, handover("leeds"));
        let e = &w.list("leeds", date(2026, 11, 23))[0];
        assert_eq!(e.consent, ConsentState::ConsentUnknown as i32);
        assert!(!e.triage_completed);
        assert!(e.redacted);
    }

    fn steward(w: &mut World, a: &[&str], b: &[&str], linked: bool) {
        w.seq += 1;
        let keys = |k: &[&str]| PersonKeys {
            keys: k.iter().map(|s| s.to_string()).collect(),
            client_key: String::new(),
        };
        let (person_a, person_b) = (Some(keys(a)), Some(keys(b)));
        let event = Event {
            event_id: format!("ev{:04}", w.seq),
            person_key: a[0].into(),
            partnership_code: "bradford".into(),
            occurred_at: at(TODAY),
            payload: Some(if linked {
                Payload::PeopleLinked(PeopleLinked { person_a, person_b })
            } else {
                Payload::PeopleUnlinked(PeopleUnlinked { person_a, person_b })
            }),
            ..Default::default()
        };
        apply(&mut w.kv, &event, w.seq).unwrap();
    }

    #[test]
    fn a_steward_link_and_unlink_refold_the_people_and_a_replay_agrees() {
        let mut w = World::new();
        let mut events = Vec::new();
        for (i, nhs) in ["nhsA", "nhsB"].iter().enumerate() {
            w.seq += 1;
            let event = Event {
                event_id: format!("ev{:04}", w.seq),
                person_key: nhs.to_string(),
                linked_person_keys: vec!["code".into()],
                client_key: "code".into(),
                partnership_code: "bradford".into(),
                occurred_at: at(TODAY),
                payload: Some(release_date(&format!("2026-11-2{}", 5 + i))),
                ..Default::default()
            };
            apply(&mut w.kv, &event, w.seq).unwrap();
            events.push(event);
        }
        let as_of = date(2026, 11, 23);
        assert_eq!(w.list("bradford", as_of).len(), 2);
        steward(&mut w, &["nhsA"], &["nhsB"], true);
        let one = w.list("bradford", as_of);
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].release_date, "2026-11-26",
            "the later date replaces the earlier"
        );
        steward(&mut w, &["nhsA"], &["nhsB"], false);
        let two = w.list("bradford", as_of);
        assert_eq!(two.len(), 2, "{two:?}");
        // Replaying the same events into an empty store gives the same.
        let live = w.kv.clone();
        let mut replay = World::new();
        for e in &events {
            replay.seq += 1;
            apply(&mut replay.kv, e, replay.seq).unwrap();
        }
        steward(&mut replay, &["nhsA"], &["nhsB"], true);
        steward(&mut replay, &["nhsA"], &["nhsB"], false);
        assert_eq!(replay.kv, live);
    }
}
