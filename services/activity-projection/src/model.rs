//! Harm-reduction activity as pure functions over a [`Kv`]: what an event
//! adds ([`apply`]) and what a partnership's year adds up to ([`tally`]).
//!
//! # Two kinds of figure
//! - **Counts of events** (needle-exchange transactions, packs, returns,
//!   custody advice records by topic, attendances, kits) and **distinct
//!   codes** (client codes, pharmacies) are counters per partnership,
//!   year and quarter, moved once per event by the consumer's commit (a
//!   year's count of events is the sum of its quarters'; distinct codes
//!   are counted for the year itself too), so a query reads a handful of
//!   counters however long the year was.
//! - **Counts of people** (people advised in custody, people referred by
//!   each source and whether they reached treatment, people named at
//!   overdose attendances) follow who is whom in the partnership
//!   ([`hub_projection::identity`]): each person's activity there is one
//!   record ([`PersonActivity`]) folded from their facts, and what the
//!   record contributes ([`contribution`]: a set of counters it adds one
//!   to) is recomputed on each fold and the difference applied. When people
//!   merge or split, the identity layer forgets them and folds their facts
//!   again, and the counters follow.
//!
//! # Referral loop closure
//! A referral counts as engaged when a treatment engagement of the same
//! person is recorded in the same partnership on the referral's day or
//! within the [`FOLLOW_UP_DAYS`] calendar days after it (London dates, so
//! a clock change never moves a window's edge). An engagement recorded
//! later than the referral in the stream still closes it: the person's
//! record is folded again. A referral counts in the period of its own day;
//! people are distinct per period and source.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{civil::Date, Span, Timestamp};
use prost::Message;

use hub_core::{
    stats::percent,
    time::{end_of_london_day, london_date, period_of_day, FinancialYear},
};
use hub_projection::identity::{self, Changed, PersonModel};
use hub_proto::{
    common::AdviceTopic,
    events::{event::Payload, Event},
    projections::{
        Activity, ActivityFigures, CustodyAdvice, NaloxoneKits, NeedleExchange,
        OverdoseAttendances, Referrals,
    },
};
use hub_store::{bump, dated_key, latest_before, parts, Error, KeyKind, Kv, Rows};

use crate::calendar;

/// Where referrals come from, in the order replies list them.
pub const SOURCES: [&str; 4] = ["custody", "pharmacy", "treatment", "ambulance"];
const CUSTODY: u32 = 0;
const PHARMACY: u32 = 1;
const TREATMENT: u32 = 2;
const AMBULANCE: u32 = 3;

/// A referral is engaged when treatment engagement follows within this
/// many days (the day itself included).
pub const FOLLOW_UP_DAYS: i32 = 28;

/// The topics of custody advice, with the names replies use.
const TOPICS: [(AdviceTopic, &str); 5] = [
    (AdviceTopic::BloodBorneViruses, "blood_borne_viruses"),
    (AdviceTopic::SaferInjecting, "safer_injecting"),
    (AdviceTopic::OverdoseRisk, "overdose_risk"),
    (AdviceTopic::Naloxone, "naloxone"),
    (AdviceTopic::LocalServices, "local_services"),
];

/// One person's harm-reduction activity in one partnership.
#[derive(Clone, PartialEq, Message)]
pub struct PersonActivity {
    /// Days (see [`day_number`]) they were given advice in custody.
    #[prost(int32, repeated, tag = "1")]
    pub advised: Vec<i32>,
    /// Their referrals, one per source and day.
    #[prost(message, repeated, tag = "2")]
    pub referrals: Vec<Referral>,
    /// Days a treatment engagement was recorded.
    #[prost(int32, repeated, tag = "3")]
    pub engaged: Vec<i32>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Message)]
pub struct Referral {
    /// Index into [`SOURCES`].
    #[prost(uint32, tag = "1")]
    pub source: u32,
    #[prost(int32, tag = "2")]
    pub day: i32,
}

fn epoch() -> Date {
    Date::constant(1970, 1, 1)
}

/// A London date as a day number (days since 1970-01-01).
pub fn day_number(day: Date) -> i32 {
    (day - epoch()).get_days()
}

/// The date of a day number.
pub fn day_of(n: i32) -> Date {
    epoch()
        .checked_add(Span::new().days(i64::from(n)))
        .unwrap_or(Date::MAX)
}

fn occurred(event: &Event) -> Option<Timestamp> {
    event
        .occurred_at
        .as_ref()
        .and_then(|t| Timestamp::new(t.seconds, t.nanos).ok())
}

/// A counter's key: partnership \0 year \0 quarter (0: the year) \0 name.
fn counter_key(p: &str, fy: FinancialYear, q: u8, name: &str) -> Vec<u8> {
    parts(&[
        p.as_bytes(),
        fy.to_string().as_bytes(),
        q.to_string().as_bytes(),
        name.as_bytes(),
    ])
}

/// Whether some engagement falls on `day` or the [`FOLLOW_UP_DAYS`] after.
fn engaged_after(engaged: &[i32], day: i32) -> bool {
    engaged
        .iter()
        .any(|e| (day..=day.saturating_add(FOLLOW_UP_DAYS)).contains(e))
}

/// The counters a person's record adds one to: `(year, quarter (0 for the
/// year), name)`.
pub fn contribution(rec: &PersonActivity) -> BTreeSet<(FinancialYear, u8, String)> {
    let mut out = BTreeSet::new();
    let mut count = |day: i32, name: String| {
        let (fy, q) = period_of_day(day_of(day));
        out.insert((fy, q, name.clone()));
        out.insert((fy, 0, name));
    };
    for d in &rec.advised {
        count(*d, "ca.people".into());
    }
    for r in &rec.referrals {
        let Some(source) = SOURCES.get(r.source as usize) else {
            continue;
        };
        count(r.day, format!("ref.{source}.referred"));
        if engaged_after(&rec.engaged, r.day) {
            count(r.day, format!("ref.{source}.engaged"));
        }
    }
    out
}

fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}

/// What `event` tells about its person, if anything this projection counts.
fn note(rec: &mut PersonActivity, event: &Event, day: i32) -> bool {
    let referral = |source| Referral { source, day };
    match &event.payload {
        Some(Payload::HarmReductionAdviceRecorded(a)) => {
            insert_sorted(&mut rec.advised, day);
            if a.referred_to_treatment {
                insert_sorted(&mut rec.referrals, referral(CUSTODY));
            }
        }
        Some(Payload::PharmacyReferralRecorded(_)) => {
            insert_sorted(&mut rec.referrals, referral(PHARMACY))
        }
        Some(Payload::TreatmentReferralRecorded(_)) => {
            insert_sorted(&mut rec.referrals, referral(TREATMENT))
        }
        Some(Payload::OverdoseAttendanceRecorded(_)) => {
            insert_sorted(&mut rec.referrals, referral(AMBULANCE))
        }
        Some(Payload::TreatmentEngagementRecorded(_)) => insert_sorted(&mut rec.engaged, day),
        _ => return false,
    }
    true
}

/// Whether the projection keeps `event` as a fact of its person.
fn about_a_person(event: &Event) -> bool {
    occurred(event).is_some()
        && matches!(
            &event.payload,
            Some(
                Payload::HarmReductionAdviceRecorded(_)
                    | Payload::PharmacyReferralRecorded(_)
                    | Payload::TreatmentReferralRecorded(_)
                    | Payload::OverdoseAttendanceRecorded(_)
                    | Payload::TreatmentEngagementRecorded(_)
            )
        )
}

fn person_key(p: &str, root: &str) -> Vec<u8> {
    parts(&[p.as_bytes(), root.as_bytes()])
}

fn load<K: Kv>(kv: &K, p: &str, root: &str) -> Result<PersonActivity, Error> {
    match kv.get(KeyKind::ActivityPerson, &person_key(p, root))? {
        Some(b) => PersonActivity::decode(b.as_slice())
            .map_err(|e| Error::undecodable("person activity", e)),
        None => Ok(PersonActivity::default()),
    }
}

/// Moves the counters of `p` from what `before` contributed to what
/// `after` does.
fn recount<K: Kv>(
    kv: &mut K,
    p: &str,
    before: &BTreeSet<(FinancialYear, u8, String)>,
    after: &BTreeSet<(FinancialYear, u8, String)>,
) -> Result<(), Error> {
    for (fy, q, name) in before.difference(after) {
        bump(kv, &counter_key(p, *fy, *q, name), -1)?;
    }
    for (fy, q, name) in after.difference(before) {
        bump(kv, &counter_key(p, *fy, *q, name), 1)?;
    }
    Ok(())
}

/// People's activity, as `identity` drives it.
pub struct People;

impl PersonModel for People {
    fn forget<K: Kv>(&self, kv: &mut K, p: &str, root: &str) -> Result<(), Error> {
        let rec = load(kv, p, root)?;
        recount(kv, p, &contribution(&rec), &BTreeSet::new())?;
        kv.delete(KeyKind::ActivityPerson, &person_key(p, root));
        Ok(())
    }

    fn fold<K: Kv>(
        &self,
        kv: &mut K,
        p: &str,
        root: &str,
        event: &Event,
        _sequence: u64,
    ) -> Result<Option<String>, Error> {
        let Some(at) = occurred(event) else {
            return Ok(None);
        };
        let mut rec = load(kv, p, root)?;
        let before = contribution(&rec);
        if note(&mut rec, event, day_number(london_date(at))) {
            recount(kv, p, &before, &contribution(&rec))?;
            kv.put(
                KeyKind::ActivityPerson,
                &person_key(p, root),
                rec.encode_to_vec(),
            );
        }
        Ok(None)
    }
}

/// Adds `n` to the event counter `name` of the period (a year's is the
/// sum of its quarters': see [`additive`]).
fn add<K: Kv>(
    kv: &mut K,
    p: &str,
    (fy, q): (FinancialYear, u8),
    name: &str,
    n: u64,
) -> Result<(), Error> {
    bump(
        kv,
        &counter_key(p, fy, q, name),
        i64::try_from(n).unwrap_or(i64::MAX),
    )
}

/// Whether the year's figure `name` is the sum of its quarters' (counts of
/// events), rather than kept for the year itself (distinct people, client
/// codes and pharmacies: someone in two quarters is one in the year).
fn additive(name: &str) -> bool {
    !(name.starts_with("ref.") || matches!(name, "ca.people" | "nx.clients" | "nx.pharmacies"))
}

/// Counts `member` of the set `name` once in the period and once in its
/// year. A member already in the quarter is in the year too (both are
/// written together), so the year is looked up only for one new to the
/// quarter: most needle-exchange clients come back within a quarter.
fn distinct<K: Kv>(
    kv: &mut K,
    p: &str,
    (fy, q): (FinancialYear, u8),
    name: &str,
    member: &str,
) -> Result<(), Error> {
    if member.is_empty() {
        return Ok(());
    }
    for q in [q, 0] {
        let key = parts(&[
            p.as_bytes(),
            fy.to_string().as_bytes(),
            q.to_string().as_bytes(),
            name.as_bytes(),
            member.as_bytes(),
        ]);
        if kv.get(KeyKind::ActivityMember, &key)?.is_some() {
            break;
        }
        kv.put(KeyKind::ActivityMember, &key, Vec::new());
        bump(kv, &counter_key(p, fy, q, name), 1)?;
    }
    Ok(())
}

/// Applies one event at stream `sequence`.
pub fn apply<K: Kv>(kv: &mut K, event: &Event, sequence: u64) -> Result<Vec<Changed>, Error> {
    identity::apply(kv, event, sequence, about_a_person(event), &People)?;
    let (Some(at), p) = (occurred(event), event.partnership_code.as_str()) else {
        return Ok(Vec::new());
    };
    if p.is_empty() {
        return Ok(Vec::new());
    }
    // London's wall clock, once: the period and office hours both read it.
    let local = at.to_zoned(hub_core::time::london()).datetime();
    let period = period_of_day(local.date());
    match &event.payload {
        Some(Payload::NeedleExchangeRecorded(n)) => {
            add(kv, p, period, "nx.transactions", 1)?;
            add(kv, p, period, "nx.packs", u64::from(n.packs_given))?;
            add(kv, p, period, "nx.returns", u64::from(n.returns))?;
            if calendar::out_of_hours_local(local) {
                add(kv, p, period, "nx.out_of_hours", 1)?;
            }
            let client = if event.client_key.is_empty() {
                &event.person_key
            } else {
                &event.client_key
            };
            distinct(kv, p, period, "nx.clients", client)?;
            let pharmacy = if n.pharmacy_code.is_empty() {
                &event.org_code
            } else {
                &n.pharmacy_code
            };
            distinct(kv, p, period, "nx.pharmacies", pharmacy)?;
        }
        Some(Payload::HarmReductionAdviceRecorded(a)) => {
            add(kv, p, period, "ca.records", 1)?;
            let topics: BTreeSet<i32> = a.topics.iter().copied().collect();
            for (topic, name) in TOPICS {
                if topics.contains(&(topic as i32)) {
                    add(kv, p, period, &format!("ca.topic.{name}"), 1)?;
                }
            }
            if a.referred_to_treatment {
                add(kv, p, period, "ca.referred", 1)?;
            }
        }
        Some(Payload::OverdoseAttendanceRecorded(o)) => {
            add(kv, p, period, "oa.attendances", 1)?;
            for (yes, name) in [
                (o.naloxone_administered, "oa.naloxone"),
                (o.police_attended, "oa.police"),
                (o.conveyed_to_hospital, "oa.conveyed"),
            ] {
                if yes {
                    add(kv, p, period, name, 1)?;
                }
            }
        }
        Some(Payload::NaloxoneSupplied(n)) => {
            add(kv, p, period, "kits.pharmacy", u64::from(n.kits))?
        }
        Some(Payload::NaloxoneOnReleaseRecorded(_)) => {
            add(kv, p, period, "kits.prison_release", 1)?
        }
        Some(Payload::OverdoseTrainingRecorded(t)) if t.naloxone_kit_supplied => {
            add(kv, p, period, "kits.training", 1)?
        }
        Some(Payload::AttendanceProtocolRecorded(r)) if !r.police_force_code.is_empty() => {
            let subject = [
                p.as_bytes(),
                r.police_force_code.as_bytes(),
                r.trust_code.as_bytes(),
            ];
            kv.put(
                KeyKind::AttendanceProtocol,
                &dated_key(&subject, at.as_second(), sequence),
                vec![u8::from(r.in_force)],
            );
        }
        _ => {}
    }
    // Counts have no watchers.
    Ok(Vec::new())
}

/// The rows a tally needs, read from the store.
pub struct YearRows {
    /// `Counter` under `partnership \0 year \0`.
    pub counters: Rows,
    /// `AttendanceProtocol` under `partnership \0`.
    pub protocols: Rows,
}

/// Police forces whose latest protocol record (per trust) before `end`
/// says one is in force, with any trust.
fn protocols_in_force(rows: &Rows, end: Timestamp) -> u32 {
    let forces: BTreeSet<&[u8]> = latest_before(rows, 3, end.as_second())
        .into_iter()
        .filter(|(_, in_force)| in_force.first() == Some(&1))
        .map(|(subject, _)| subject[1])
        .collect();
    forces.len() as u32
}

fn figures(quarter: u8, c: &BTreeMap<String, u64>, protocols: u32) -> ActivityFigures {
    let n = |name: &str| u32::try_from(c.get(name).copied().unwrap_or(0)).unwrap_or(u32::MAX);
    let (transactions, packs, returns) = (n("nx.transactions"), n("nx.packs"), n("nx.returns"));
    let (attendances, police) = (n("oa.attendances"), n("oa.police"));
    let referrals = SOURCES
        .iter()
        .map(|s| {
            let (referred, engaged) = (
                n(&format!("ref.{s}.referred")),
                n(&format!("ref.{s}.engaged")),
            );
            Referrals {
                source: s.to_string(),
                referred,
                engaged_within_28_days: engaged,
                engaged_pct: percent(engaged, referred),
            }
        })
        .collect();
    let kits = [
        n("kits.pharmacy"),
        n("kits.prison_release"),
        n("kits.training"),
    ];
    ActivityFigures {
        quarter: u32::from(quarter),
        needle_exchange: Some(NeedleExchange {
            transactions,
            clients: n("nx.clients"),
            packs_given: packs,
            returns,
            return_rate_pct: percent(returns, packs),
            out_of_hours_pct: percent(n("nx.out_of_hours"), transactions),
            pharmacies: n("nx.pharmacies"),
        }),
        custody_advice: Some(CustodyAdvice {
            records: n("ca.records"),
            people: n("ca.people"),
            blood_borne_viruses: n("ca.topic.blood_borne_viruses"),
            safer_injecting: n("ca.topic.safer_injecting"),
            overdose_risk: n("ca.topic.overdose_risk"),
            naloxone: n("ca.topic.naloxone"),
            local_services: n("ca.topic.local_services"),
            referred_to_treatment: n("ca.referred"),
        }),
        referrals,
        overdose_attendances: Some(OverdoseAttendances {
            attendances,
            naloxone_administered: n("oa.naloxone"),
            police_attended: police,
            police_attended_pct: percent(police, attendances),
            conveyed_to_hospital: n("oa.conveyed"),
            people_named: n("ref.ambulance.referred"),
            followed_by_treatment_within_28_days: n("ref.ambulance.engaged"),
            protocols_in_force: protocols,
        }),
        naloxone_kits: Some(NaloxoneKits {
            pharmacy: kits[0],
            prison_release: kits[1],
            training: kits[2],
            total: kits.iter().fold(0u32, |a, b| a.saturating_add(*b)),
        }),
    }
}

/// A partnership's year and its quarters.
pub fn tally(partnership: &str, fy: FinancialYear, rows: &YearRows) -> Activity {
    let mut counters: [BTreeMap<String, u64>; 5] = Default::default();
    // Added, not set: England's year is the tally of every partnership's
    // rows together.
    for (q, name, n) in hub_store::year_counters(&rows.counters) {
        *counters[q]
            .entry(String::from_utf8_lossy(name).into_owned())
            .or_default() += n;
    }
    let sums: Vec<(String, u64)> = counters[1..]
        .iter()
        .flatten()
        .filter(|(name, _)| additive(name))
        .map(|(name, n)| (name.clone(), *n))
        .collect();
    for (name, n) in sums {
        *counters[0].entry(name).or_default() += n;
    }
    let at_end = |q: u8| {
        let last = if q == 0 {
            fy.last_day()
        } else {
            fy.quarter_last_day(q)
        };
        protocols_in_force(&rows.protocols, end_of_london_day(last))
    };
    Activity {
        partnership_code: partnership.into(),
        financial_year: fy.to_string(),
        year: Some(figures(0, &counters[0], at_end(0))),
        quarters: (1..=4u8)
            .map(|q| figures(q, &counters[usize::from(q)], at_end(q)))
            .collect(),
        applied_sequence: 0,
        suppressed: Vec::new(),
    }
}

/// Withholds counts of people from 1 to 7, and percentages computed from
/// them, for callers without `SeeSmallCounts`, naming each in `suppressed`
/// by its path (`q2.referrals.pharmacy.engaged_pct`).
pub fn suppress_small_counts(a: &mut Activity) {
    fn people(prefix: &str, f: &mut ActivityFigures, out: &mut Vec<String>) {
        let mut withhold = |name: String, n: &mut u32| {
            let small = hub_core::stats::withheld(*n);
            if small {
                *n = 0;
                out.push(format!("{prefix}{name}"));
            }
            small
        };
        if let Some(nx) = f.needle_exchange.as_mut() {
            withhold("needle_exchange.clients".into(), &mut nx.clients);
        }
        if let Some(ca) = f.custody_advice.as_mut() {
            withhold("custody_advice.people".into(), &mut ca.people);
        }
        let mut pcts = Vec::new();
        for r in &mut f.referrals {
            let s = r.source.clone();
            let a = withhold(format!("referrals.{s}.referred"), &mut r.referred);
            let b = withhold(
                format!("referrals.{s}.engaged_within_28_days"),
                &mut r.engaged_within_28_days,
            );
            if (a || b) && r.engaged_pct.take().is_some() {
                pcts.push(format!("{prefix}referrals.{s}.engaged_pct"));
            }
        }
        if let Some(oa) = f.overdose_attendances.as_mut() {
            withhold(
                "overdose_attendances.people_named".into(),
                &mut oa.people_named,
            );
            withhold(
                "overdose_attendances.followed_by_treatment_within_28_days".into(),
                &mut oa.followed_by_treatment_within_28_days,
            );
        }
        out.extend(pcts);
    }
    let mut suppressed = Vec::new();
    if let Some(year) = a.year.as_mut() {
        people("", year, &mut suppressed);
    }
    for q in &mut a.quarters {
        let prefix = format!("q{}.", q.quarter);
        people(&prefix, q, &mut suppressed);
    }
    a.suppressed = suppressed;
}

#[cfg(test)]
mod tests;
