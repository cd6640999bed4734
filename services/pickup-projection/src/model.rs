//! The pick-up list's read model, as pure functions: how an event changes
//! the state ([`apply`]) and how a person's record looks on a given day
//! ([`view`]). No I/O: the state is reached through [`PickupState`], which
//! the RocksDB adapter implements for the service and [`MemState`]
//! implements for tests.
//!
//! # People
//! Events name a person by `person_key` plus `linked_person_keys`. Every key
//! that ever arrived together belongs to one person, whose record is kept
//! under a *root* key. When an event links two people that were apart, the
//! second root's members and record are folded into the first: facts
//! recorded by any agency under any of the person's identifiers land on the
//! same entry.
//!
//! # Episodes
//! A person's current release episode starts with a release date. A later
//! date replaces it; a date after the episode ended (released, cancelled)
//! starts a new one.

use std::collections::BTreeMap;

use jiff::civil::Date;

use hub_proto::{
    events::{event::Payload, Event},
    projections::{ConsentState, PickupAlert, PickupEntry, PickupStatus},
};

/// A person's record under their root key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PersonRecord {
    #[prost(message, optional, tag = "1")]
    pub episode: Option<Episode>,
    /// Consent for GATE_PICKUP (a `ConsentState`).
    #[prost(int32, tag = "2")]
    pub gate_consent: i32,
}

/// A release episode.
#[derive(Clone, PartialEq, prost::Message)]
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
    /// Stream sequence of the event that opened the episode.
    #[prost(uint64, tag = "6")]
    pub opened_sequence: u64,
    /// Stream sequence of the latest release date.
    #[prost(uint64, tag = "7")]
    pub date_sequence: u64,
}

impl Episode {
    /// Shown on the list: has a date and was not cancelled.
    pub fn listed(&self) -> bool {
        !self.cancelled && !self.release_date.is_empty()
    }
}

/// Where a listed episode sits in the list's index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListPosition {
    pub partnership_code: String,
    pub release_date: String,
}

fn position(record: Option<&PersonRecord>) -> Option<ListPosition> {
    let e = record?.episode.as_ref()?;
    e.listed().then(|| ListPosition {
        partnership_code: e.partnership_code.clone(),
        release_date: e.release_date.clone(),
    })
}

/// How [`apply`] reads and changes the state.
pub trait PickupState {
    type Error;
    /// The root of `key`, if the key was seen.
    fn root_of(&self, key: &str) -> Result<Option<String>, Self::Error>;
    /// Every key whose root is `root` (the root included).
    fn members(&self, root: &str) -> Result<Vec<String>, Self::Error>;
    fn set_root(&mut self, key: &str, root: &str, old_root: Option<&str>);
    fn record(&self, root: &str) -> Result<Option<PersonRecord>, Self::Error>;
    fn put_record(&mut self, root: &str, record: &PersonRecord);
    fn delete_record(&mut self, root: &str);
    fn index_add(&mut self, at: &ListPosition, root: &str);
    fn index_remove(&mut self, at: &ListPosition, root: &str);
}

/// Stores `new` for `root`, keeping the list index in step with it.
fn save<S: PickupState>(
    state: &mut S,
    root: &str,
    old: Option<&PersonRecord>,
    new: Option<&PersonRecord>,
) {
    let (before, after) = (position(old), position(new));
    if before != after {
        if let Some(p) = &before {
            state.index_remove(p, root);
        }
        if let Some(p) = &after {
            state.index_add(p, root);
        }
    }
    match new {
        Some(r) => state.put_record(root, r),
        None => state.delete_record(root),
    }
}

/// Folds two records of one person: the episode with the latest release
/// date wins; consent comes from the record that has one.
fn merge(kept: PersonRecord, folded: PersonRecord) -> PersonRecord {
    let episode = match (kept.episode, folded.episode) {
        (Some(a), Some(b)) => Some(if b.date_sequence > a.date_sequence {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    };
    let gate_consent = if kept.gate_consent != 0 {
        kept.gate_consent
    } else {
        folded.gate_consent
    };
    PersonRecord {
        episode,
        gate_consent,
    }
}

/// Resolves (and links) the person of `event`, returning their root.
pub fn resolve_person<S: PickupState>(
    state: &mut S,
    event: &Event,
) -> Result<Option<String>, S::Error> {
    if event.person_key.is_empty() {
        return Ok(None);
    }
    let keys: Vec<&str> = std::iter::once(event.person_key.as_str())
        .chain(event.linked_person_keys.iter().map(String::as_str))
        .collect();
    let mut roots: Vec<String> = Vec::new();
    for k in &keys {
        if let Some(r) = state.root_of(k)? {
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
    }
    let root = roots
        .first()
        .cloned()
        .unwrap_or_else(|| event.person_key.clone());
    // Fold every other person these keys named into `root`.
    for other in roots.iter().skip(1) {
        for member in state.members(other)? {
            state.set_root(&member, &root, Some(other));
        }
        let folded = state.record(other)?;
        if let Some(folded) = folded {
            save(state, other, Some(&folded), None);
            let kept = state.record(&root)?;
            let merged = merge(kept.clone().unwrap_or_default(), folded);
            save(state, &root, kept.as_ref(), Some(&merged));
        }
    }
    for k in keys {
        if state.root_of(k)?.is_none() {
            state.set_root(k, &root, None);
        }
    }
    Ok(Some(root))
}

/// Applies one event (at stream `sequence`). Returns the root of the person
/// whose entry may have changed, if any.
pub fn apply<S: PickupState>(
    state: &mut S,
    event: &Event,
    sequence: u64,
) -> Result<Option<String>, S::Error> {
    let Some(root) = resolve_person(state, event)? else {
        return Ok(None);
    };
    let old = state.record(&root)?;
    let mut record = old.clone().unwrap_or_default();
    // Other facts join the list with the full checklist.
    if let Some(Payload::ReleaseDateRecorded(r)) = &event.payload {
        let continues = record
            .episode
            .as_ref()
            .is_some_and(|e| !e.cancelled && e.status == PickupStatus::Scheduled as i32);
        if !continues {
            record.episode = Some(Episode {
                status: PickupStatus::Scheduled as i32,
                opened_sequence: sequence,
                ..Default::default()
            });
        }
        let e = record.episode.as_mut().expect("set above");
        e.partnership_code = event.partnership_code.clone();
        e.prison_code = r.prison_code.clone();
        e.release_date = r.release_date.clone();
        e.date_sequence = sequence;
    }
    if old.as_ref() != Some(&record) {
        save(state, &root, old.as_ref(), Some(&record));
    }
    Ok(Some(root))
}

/// Alerts apply to scheduled releases this many days away or fewer.
pub const ALERT_DAYS: i32 = 7;

/// The entry of `root` as seen on `as_of`, or `None` when not listed.
pub fn view(root: &str, record: &PersonRecord, as_of: Date) -> Option<PickupEntry> {
    let e = record.episode.as_ref().filter(|e| e.listed())?;
    let release_date: Date = e.release_date.parse().ok()?;
    let days_to_release = (release_date - as_of).get_days();
    let consent =
        ConsentState::try_from(record.gate_consent).unwrap_or(ConsentState::ConsentUnknown);
    let status = PickupStatus::try_from(e.status).unwrap_or(PickupStatus::Scheduled);
    let mut alerts = Vec::new();
    if status == PickupStatus::Scheduled && days_to_release <= ALERT_DAYS {
        if consent != ConsentState::Given {
            alerts.push(PickupAlert::NoConsent as i32);
        }
        alerts.push(PickupAlert::NoAppointment as i32);
        alerts.push(PickupAlert::NoGateWorker as i32);
        alerts.push(PickupAlert::NoNaloxone as i32);
    }
    Some(PickupEntry {
        person_key: root.to_string(),
        display_name: String::new(),
        redacted: true,
        release_date: e.release_date.clone(),
        prison_code: e.prison_code.clone(),
        status: status as i32,
        consent: consent as i32,
        days_to_release,
        alerts,
        partnership_code: e.partnership_code.clone(),
        ..Default::default()
    })
}

/// Whether `view` on `as_of` falls in the list's window
/// `[as_of − 21 days, as_of + horizon_days]`.
pub fn in_window(entry: &PickupEntry, horizon_days: u32) -> bool {
    entry.days_to_release >= -21 && i64::from(entry.days_to_release) <= i64::from(horizon_days)
}

/// An in-memory [`PickupState`] for tests of the pure logic.
#[derive(Debug, Default, Clone)]
pub struct MemState {
    pub roots: BTreeMap<String, String>,
    pub records: BTreeMap<String, PersonRecord>,
    pub index: BTreeMap<(String, String, String), ()>,
}

impl PickupState for MemState {
    type Error = std::convert::Infallible;
    fn root_of(&self, key: &str) -> Result<Option<String>, Self::Error> {
        Ok(self.roots.get(key).cloned())
    }
    fn members(&self, root: &str) -> Result<Vec<String>, Self::Error> {
        Ok(self
            .roots
            .iter()
            .filter(|(_, r)| *r == root)
            .map(|(k, _)| k.clone())
            .collect())
    }
    fn set_root(&mut self, key: &str, root: &str, _old_root: Option<&str>) {
        self.roots.insert(key.into(), root.into());
    }
    fn record(&self, root: &str) -> Result<Option<PersonRecord>, Self::Error> {
        Ok(self.records.get(root).cloned())
    }
    fn put_record(&mut self, root: &str, record: &PersonRecord) {
        self.records.insert(root.into(), record.clone());
    }
    fn delete_record(&mut self, root: &str) {
        self.records.remove(root);
    }
    fn index_add(&mut self, at: &ListPosition, root: &str) {
        self.index.insert(
            (
                at.partnership_code.clone(),
                at.release_date.clone(),
                root.into(),
            ),
            (),
        );
    }
    fn index_remove(&mut self, at: &ListPosition, root: &str) {
        self.index.remove(&(
            at.partnership_code.clone(),
            at.release_date.clone(),
            root.into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_proto::events::ReleaseDateRecorded;
    use jiff::civil::date;

    fn release(keys: &[&str], partnership: &str, day: &str) -> Event {
        Event {
            person_key: keys[0].into(),
            linked_person_keys: keys[1..].iter().map(|k| k.to_string()).collect(),
            partnership_code: partnership.into(),
            payload: Some(Payload::ReleaseDateRecorded(ReleaseDateRecorded {
                prison_code: "LEI".into(),
                release_date: day.into(),
            })),
            ..Default::default()
        }
    }

    fn list(state: &MemState, partnership: &str, as_of: Date) -> Vec<PickupEntry> {
        state
            .index
            .keys()
            .filter(|(p, _, _)| p == partnership)
            .filter_map(|(_, _, root)| view(root, &state.records[root], as_of))
            .filter(|e| in_window(e, 14))
            .collect()
    }

    #[test]
    fn a_release_date_lists_the_person_as_scheduled() {
        let mut s = MemState::default();
        apply(&mut s, &release(&["nhs-a"], "leeds", "2026-12-01"), 1).unwrap();
        let entries = list(&s, "leeds", date(2026, 11, 23));
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.person_key, "nhs-a");
        assert_eq!(e.status, PickupStatus::Scheduled as i32);
        assert_eq!(e.days_to_release, 8);
        assert!(e.alerts.is_empty(), "8 days away: no alerts yet");
        assert!(e.redacted);
        assert!(e.display_name.is_empty());
        let e = view("nhs-a", &s.records["nhs-a"], date(2026, 11, 24)).unwrap();
        assert_eq!(
            e.alerts,
            [
                PickupAlert::NoConsent,
                PickupAlert::NoAppointment,
                PickupAlert::NoGateWorker,
                PickupAlert::NoNaloxone
            ]
            .map(|a| a as i32)
        );
    }

    #[test]
    fn a_later_date_replaces_the_first_and_moves_it_in_the_index() {
        let mut s = MemState::default();
        apply(&mut s, &release(&["p"], "leeds", "2026-12-01"), 1).unwrap();
        apply(&mut s, &release(&["p"], "leeds", "2026-12-05"), 2).unwrap();
        assert_eq!(s.index.len(), 1);
        assert!(s
            .index
            .contains_key(&("leeds".into(), "2026-12-05".into(), "p".into())));
        let ep = s.records["p"].episode.as_ref().unwrap();
        assert_eq!(ep.opened_sequence, 1, "same episode");
        assert_eq!(ep.date_sequence, 2);
    }

    #[test]
    fn the_window_runs_from_21_days_back_to_the_horizon() {
        let as_of = date(2026, 11, 23);
        let mut s = MemState::default();
        for (i, d) in ["2026-11-01", "2026-11-02", "2026-12-07", "2026-12-08"]
            .iter()
            .enumerate()
        {
            apply(
                &mut s,
                &release(&[&format!("p{i}")], "leeds", d),
                i as u64 + 1,
            )
            .unwrap();
        }
        let dates: Vec<_> = list(&s, "leeds", as_of)
            .into_iter()
            .map(|e| e.release_date)
            .collect();
        assert_eq!(dates, ["2026-11-02", "2026-12-07"]);
    }

    #[test]
    fn identifiers_sent_together_link_for_later_events() {
        let mut s = MemState::default();
        // The prison sends NHS number and prison number together...
        apply(
            &mut s,
            &release(&["nhs-a", "prison-a"], "leeds", "2026-12-01"),
            1,
        )
        .unwrap();
        // ...so a later event by prison number alone lands on the same person.
        let root = apply(&mut s, &release(&["prison-a"], "leeds", "2026-12-03"), 2).unwrap();
        assert_eq!(root.as_deref(), Some("nhs-a"));
        assert_eq!(s.records.len(), 1);
        assert_eq!(
            s.records["nhs-a"].episode.as_ref().unwrap().release_date,
            "2026-12-03"
        );
    }

    #[test]
    fn linking_two_known_people_folds_them_into_one_entry() {
        let mut s = MemState::default();
        apply(&mut s, &release(&["prison-a"], "leeds", "2026-12-01"), 1).unwrap();
        apply(&mut s, &release(&["nhs-a"], "leeds", "2026-12-02"), 2).unwrap();
        assert_eq!(s.index.len(), 2);
        // One event names both: one person, the latest date wins.
        let root = apply(
            &mut s,
            &release(&["nhs-a", "prison-a"], "leeds", "2026-12-04"),
            3,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.index.len(), 1);
        assert_eq!(s.roots["prison-a"], root);
        assert_eq!(s.roots["nhs-a"], root);
        assert_eq!(
            s.records[&root].episode.as_ref().unwrap().release_date,
            "2026-12-04"
        );
    }

    #[test]
    fn events_without_a_person_change_nothing() {
        let mut s = MemState::default();
        let e = Event {
            payload: None,
            ..Default::default()
        };
        assert_eq!(apply(&mut s, &e, 1).unwrap(), None);
        assert!(s.records.is_empty());
    }
}
