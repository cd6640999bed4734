//! Overdose-training counts as pure functions over a [`Kv`]: what an event
//! adds ([`apply`]) and what a partnership's year adds up to ([`tally`]).
//!
//! Each trained person or staff member is one key per (partnership, year,
//! quarter, group, who), and counters of distinct people per quarter and
//! per year move only when such a key is new (and, for the year, when the
//! person was in no other quarter): training the same person twice counts
//! once, and a query reads a handful of counters whatever the number of
//! people (hub-bench's e2e phase, 30,000 trainings in one partnership,
//! showed a scan of every key per query growing without bound). People
//! are their identity root in the partnership, so someone trained under
//! their NHS number and again under their client code counts once once the
//! two are linked there; when people merge or split, [`Trainings`] takes
//! them out of the counters and counts their training facts again. Counters are applied
//! exactly once by the consumer's commit, like the naloxone kits.
//! Headcounts keep every figure with its date, so each period uses the
//! latest figure per suite or trust as at its end.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{civil::Date, Timestamp};

use hub_core::time::{end_of_london_day, period_of, FinancialYear};
use hub_projection::identity::{self, Changed, PersonModel};
use hub_proto::{
    common::TrainingAudience,
    events::{event::Payload, Event},
    projections::{QuarterTrainingCounts, TrainingCounts},
};
use hub_store::{bump, dated_key, latest_before, parts, Error, KeyKind, Kv, Rows};

/// Who is counted: the contract's groups.
pub const GROUPS: [&str; 6] = [
    "service_user",
    "carer",
    "prison_leaver",
    "custody_officer",
    "paramedic",
    "pharmacy_staff",
];

const KITS: &str = "naloxone_kits";
/// Counters of people trained are named `people:<group>`.
const PEOPLE: &str = "people:";
const CUSTODY: &str = "custody";
const AMBULANCE: &str = "ambulance";

fn period(event: &Event) -> Option<(FinancialYear, u8, Timestamp)> {
    let t = event
        .occurred_at
        .as_ref()
        .and_then(|t| Timestamp::new(t.seconds, t.nanos).ok())?;
    let (fy, q) = period_of(t);
    Some((fy, q, t))
}

/// The counter of distinct people of `group` trained in `quarter` (1-4),
/// or in the whole year (`quarter` 0).
fn people_counter(partnership: &str, fy: &str, quarter: u8, group: &str) -> Vec<u8> {
    parts(&[
        partnership.as_bytes(),
        fy.as_bytes(),
        quarter.to_string().as_bytes(),
        format!("{PEOPLE}{group}").as_bytes(),
    ])
}

fn trained_key(partnership: &[u8], fy: &[u8], quarter: &[u8], group: &[u8], who: &[u8]) -> Vec<u8> {
    parts(&[partnership, fy, quarter, group, who])
}

/// Whether `who` was trained in `group` in any quarter of the year.
fn in_year<K: Kv>(
    kv: &K,
    partnership: &str,
    fy: &str,
    group: &str,
    who: &str,
) -> Result<bool, Error> {
    for q in 1..=4u8 {
        let key = trained_key(
            partnership.as_bytes(),
            fy.as_bytes(),
            q.to_string().as_bytes(),
            group.as_bytes(),
            who.as_bytes(),
        );
        if kv.get(KeyKind::Trained, &key)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records that `who` was trained; counts them once per quarter and once
/// per year (a query reads the counters, however many people there are).
fn trained<K: Kv>(
    kv: &mut K,
    partnership: &str,
    fy: FinancialYear,
    quarter: u8,
    group: &str,
    who: &str,
    person: bool,
) -> Result<(), Error> {
    let (fy, q) = (fy.to_string(), quarter.to_string());
    let key = trained_key(
        partnership.as_bytes(),
        fy.as_bytes(),
        q.as_bytes(),
        group.as_bytes(),
        who.as_bytes(),
    );
    if kv.get(KeyKind::Trained, &key)?.is_some() {
        return Ok(()); // trained before this quarter: counted already
    }
    if !in_year(kv, partnership, &fy, group, who)? {
        bump(kv, &people_counter(partnership, &fy, 0, group), 1)?;
    }
    bump(kv, &people_counter(partnership, &fy, quarter, group), 1)?;
    kv.put(KeyKind::Trained, &key, Vec::new());
    if person {
        kv.put(
            KeyKind::TrainedByPerson,
            &parts(&[
                who.as_bytes(),
                partnership.as_bytes(),
                fy.as_bytes(),
                q.as_bytes(),
                group.as_bytes(),
            ]),
            Vec::new(),
        );
    }
    Ok(())
}

fn add<K: Kv>(
    kv: &mut K,
    partnership: &str,
    fy: FinancialYear,
    quarter: u8,
    n: u64,
) -> Result<(), Error> {
    let key = parts(&[
        partnership.as_bytes(),
        fy.to_string().as_bytes(),
        quarter.to_string().as_bytes(),
        KITS.as_bytes(),
    ]);
    bump(kv, &key, i64::try_from(n).unwrap_or(i64::MAX))
}

fn headcount<K: Kv>(
    kv: &mut K,
    partnership: &str,
    kind: &str,
    org: &str,
    at: Timestamp,
    seq: u64,
    n: u32,
) {
    let subject = [partnership.as_bytes(), kind.as_bytes(), org.as_bytes()];
    kv.put(
        KeyKind::Headcount,
        &dated_key(&subject, at.as_second(), seq),
        n.to_be_bytes().to_vec(),
    );
}

/// The group a person trained with `audience` counts in.
fn person_group(audience: i32) -> Option<&'static str> {
    match TrainingAudience::try_from(audience) {
        Ok(TrainingAudience::ServiceUser) => Some("service_user"),
        Ok(TrainingAudience::Carer) => Some("carer"),
        Ok(TrainingAudience::PrisonLeaver) => Some("prison_leaver"),
        _ => None,
    }
}

/// People trained, as `identity` drives them: a person's trainings are
/// the fold of their training facts, so when people merge or split (a
/// link, an unlink, a client code found to be shared) their counts follow.
pub struct Trainings;

impl PersonModel for Trainings {
    /// Takes the person out of every counter they are in.
    fn forget<K: Kv>(&self, kv: &mut K, p: &str, root: &str) -> Result<(), Error> {
        let prefix = parts(&[root.as_bytes(), p.as_bytes(), b""]);
        let rows = kv.scan(KeyKind::TrainedByPerson, &prefix)?;
        let mut years: BTreeSet<(String, String)> = BTreeSet::new();
        for (key, _) in &rows {
            let f: Vec<&[u8]> = key[prefix.len()..].split(|b| *b == 0).collect();
            let [fy, q, group] = f.as_slice() else {
                return Err(Error::Corrupt("trained-by-person key".into()));
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let quarter = text(q)
                .parse::<u8>()
                .map_err(|_| Error::Corrupt("quarter".into()))?;
            bump(kv, &people_counter(p, &text(fy), quarter, &text(group)), -1)?;
            years.insert((text(fy), text(group)));
            kv.delete(KeyKind::TrainedByPerson, key);
            kv.delete(
                KeyKind::Trained,
                &trained_key(p.as_bytes(), fy, q, group, root.as_bytes()),
            );
        }
        for (fy, group) in years {
            bump(kv, &people_counter(p, &fy, 0, &group), -1)?;
        }
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
        if let (Some(Payload::OverdoseTrainingRecorded(t)), Some((fy, q, _))) =
            (&event.payload, period(event))
        {
            if let Some(group) = person_group(t.audience) {
                trained(kv, p, fy, q, group, root, true)?;
            }
        }
        Ok(None)
    }
}

/// Applies one event at stream `sequence`.
pub fn apply<K: Kv>(kv: &mut K, event: &Event, sequence: u64) -> Result<Vec<Changed>, Error> {
    // People count only where they were trained.
    let trains_someone = matches!(
        &event.payload,
        Some(Payload::OverdoseTrainingRecorded(t)) if person_group(t.audience).is_some()
    ) && period(event).is_some();
    identity::apply(kv, event, sequence, trains_someone, &Trainings)?;
    let Some((fy, q, at)) = period(event) else {
        return Ok(Vec::new());
    };
    let p = event.partnership_code.as_str();
    match &event.payload {
        Some(Payload::OverdoseTrainingRecorded(t)) if t.naloxone_kit_supplied => {
            add(kv, p, fy, q, 1)?
        }
        Some(Payload::OfficerOverdoseTrainingRecorded(t)) => {
            trained(kv, p, fy, q, "custody_officer", &t.staff_key, false)?
        }
        Some(Payload::ParamedicNaloxoneTrainingRecorded(t)) => {
            trained(kv, p, fy, q, "paramedic", &t.staff_key, false)?
        }
        Some(Payload::PharmacyStaffTrainingRecorded(t)) => {
            trained(kv, p, fy, q, "pharmacy_staff", &t.staff_key, false)?
        }
        Some(Payload::NaloxoneSupplied(n)) => add(kv, p, fy, q, u64::from(n.kits))?,
        Some(Payload::NaloxoneOnReleaseRecorded(_)) => add(kv, p, fy, q, 1)?,
        Some(Payload::CustodyWorkforceRecorded(w)) => headcount(
            kv,
            p,
            CUSTODY,
            &w.custody_suite_code,
            at,
            sequence,
            w.custody_officer_headcount,
        ),
        Some(Payload::AmbulanceWorkforceRecorded(w)) => headcount(
            kv,
            p,
            AMBULANCE,
            &w.trust_code,
            at,
            sequence,
            w.paramedic_headcount,
        ),
        _ => {}
    }
    // Counts have no watchers.
    Ok(Vec::new())
}

/// The rows a tally needs, read from the store.
pub struct YearRows {
    /// `Counter` under `partnership \0 year \0`.
    pub counters: Rows,
    /// `Headcount` under `partnership \0`.
    pub headcounts: Rows,
}

#[derive(Default)]
struct Figures {
    people: BTreeMap<String, u32>,
    kits: u64,
    custody_headcount: u32,
    paramedic_headcount: u32,
}

/// The latest headcount per org of `kind` as at the end of `last_day`, summed.
fn headcount_at(rows: &Rows, kind: &str, last_day: Date) -> u32 {
    latest_before(rows, 3, end_of_london_day(last_day).as_second())
        .into_iter()
        .filter(|(subject, _)| subject[1] == kind.as_bytes())
        .filter_map(|(_, n)| <[u8; 4]>::try_from(n).ok())
        .map(u32::from_be_bytes)
        .sum()
}

/// Trained ÷ headcount × 100 to one decimal; absent when headcount is 0.
pub use hub_core::stats::percent;

/// A partnership's year and its quarters.
pub fn tally(partnership: &str, fy: FinancialYear, rows: &YearRows) -> TrainingCounts {
    let mut year = Figures::default();
    let mut quarters: [Figures; 4] = Default::default();
    for (q, name, n) in hub_store::year_counters(&rows.counters) {
        let figures = if q == 0 {
            &mut year
        } else {
            &mut quarters[q - 1]
        };
        if name == KITS.as_bytes() {
            if q > 0 {
                year.kits += n;
                quarters[q - 1].kits += n;
            }
        } else if let Some(group) = name.strip_prefix(PEOPLE.as_bytes()) {
            figures.people.insert(
                String::from_utf8_lossy(group).into_owned(),
                u32::try_from(n).unwrap_or(u32::MAX),
            );
        }
    }
    year.custody_headcount = headcount_at(&rows.headcounts, CUSTODY, fy.last_day());
    year.paramedic_headcount = headcount_at(&rows.headcounts, AMBULANCE, fy.last_day());
    for (i, q) in quarters.iter_mut().enumerate() {
        let last = fy.quarter_last_day(i as u8 + 1);
        q.custody_headcount = headcount_at(&rows.headcounts, CUSTODY, last);
        q.paramedic_headcount = headcount_at(&rows.headcounts, AMBULANCE, last);
    }
    let n = |f: &Figures, g: &str| f.people.get(g).copied().unwrap_or(0);
    let q_counts = quarters
        .iter()
        .enumerate()
        .map(|(i, f)| QuarterTrainingCounts {
            quarter: i as u32 + 1,
            service_users_trained: n(f, "service_user"),
            carers_trained: n(f, "carer"),
            prison_leavers_trained: n(f, "prison_leaver"),
            custody_officers_trained: n(f, "custody_officer"),
            custody_officer_headcount: f.custody_headcount,
            custody_officers_trained_pct: percent(n(f, "custody_officer"), f.custody_headcount),
            paramedics_trained: n(f, "paramedic"),
            paramedic_headcount: f.paramedic_headcount,
            paramedics_trained_pct: percent(n(f, "paramedic"), f.paramedic_headcount),
            pharmacy_staff_trained: n(f, "pharmacy_staff"),
            naloxone_kits_supplied: u32::try_from(f.kits).unwrap_or(u32::MAX),
        })
        .collect();
    TrainingCounts {
        partnership_code: partnership.into(),
        financial_year: fy.to_string(),
        service_users_trained: n(&year, "service_user"),
        carers_trained: n(&year, "carer"),
        prison_leavers_trained: n(&year, "prison_leaver"),
        custody_officers_trained: n(&year, "custody_officer"),
        custody_officer_headcount: year.custody_headcount,
        custody_officers_trained_pct: percent(n(&year, "custody_officer"), year.custody_headcount),
        paramedics_trained: n(&year, "paramedic"),
        paramedic_headcount: year.paramedic_headcount,
        paramedics_trained_pct: percent(n(&year, "paramedic"), year.paramedic_headcount),
        pharmacy_staff_trained: n(&year, "pharmacy_staff"),
        naloxone_kits_supplied: u32::try_from(year.kits).unwrap_or(u32::MAX),
        quarters: q_counts,
        suppressed: Vec::new(),
        applied_sequence: 0,
    }
}

/// The counts of people of a year's counts, as `suppressed` names them.
pub const PEOPLE_COUNTS: [&str; 6] = [
    "service_users_trained",
    "carers_trained",
    "prison_leavers_trained",
    "custody_officers_trained",
    "paramedics_trained",
    "pharmacy_staff_trained",
];

/// A year's count of people by name, with the percentage computed from
/// it (named as it is, with `_pct`).
fn people_count<'a>(
    c: &'a mut TrainingCounts,
    name: &str,
) -> Option<(&'a mut u32, Option<&'a mut Option<f64>>)> {
    Some(match name {
        "service_users_trained" => (&mut c.service_users_trained, None),
        "carers_trained" => (&mut c.carers_trained, None),
        "prison_leavers_trained" => (&mut c.prison_leavers_trained, None),
        "custody_officers_trained" => (
            &mut c.custody_officers_trained,
            Some(&mut c.custody_officers_trained_pct),
        ),
        "paramedics_trained" => (
            &mut c.paramedics_trained,
            Some(&mut c.paramedics_trained_pct),
        ),
        "pharmacy_staff_trained" => (&mut c.pharmacy_staff_trained, None),
        _ => return None,
    })
}

/// England's year: every partnership's counts summed, percentages from
/// the sums.
pub fn england(rows: &[TrainingCounts]) -> TrainingCounts {
    let mut e = TrainingCounts {
        partnership_code: "england".into(),
        ..Default::default()
    };
    for c in rows {
        e.service_users_trained += c.service_users_trained;
        e.carers_trained += c.carers_trained;
        e.prison_leavers_trained += c.prison_leavers_trained;
        e.custody_officers_trained += c.custody_officers_trained;
        e.custody_officer_headcount += c.custody_officer_headcount;
        e.paramedics_trained += c.paramedics_trained;
        e.paramedic_headcount += c.paramedic_headcount;
        e.pharmacy_staff_trained += c.pharmacy_staff_trained;
        e.naloxone_kits_supplied += c.naloxone_kits_supplied;
    }
    e.custody_officers_trained_pct =
        percent(e.custody_officers_trained, e.custody_officer_headcount);
    e.paramedics_trained_pct = percent(e.paramedics_trained, e.paramedic_headcount);
    e
}

/// Every partnership's year as analysts read it beside England's: each
/// row's small counts withheld ([`suppress_small_counts`]), and down each
/// column a second count where one alone was
/// ([`hub_core::stats::complement`]).
pub fn suppress_national(rows: &mut [TrainingCounts]) {
    for c in rows.iter_mut() {
        suppress_small_counts(c);
    }
    hub_core::stats::complement_columns(
        rows,
        &PEOPLE_COUNTS,
        |c, name| {
            let withheld = c.suppressed.iter().any(|s| s == name);
            people_count(c, name).filter(|_| !withheld).map(|(n, _)| *n)
        },
        |c, name| {
            let Some((n, pct)) = people_count(c, name) else {
                return;
            };
            *n = 0;
            let pct_withheld = pct.is_some_and(|p| p.take().is_some());
            c.suppressed.push(name.to_string());
            if pct_withheld {
                c.suppressed.push(format!("{name}_pct"));
            }
        },
    );
}

/// Withholds counts of people from 1 to 7 (and percentages computed from
/// them) for partnership analysts, naming each in `suppressed`.
pub fn suppress_small_counts(c: &mut TrainingCounts) {
    fn people(
        prefix: &str,
        suppressed: &mut Vec<String>,
        fields: [(&str, &mut u32); 6],
        pcts: [(&str, &str, &mut Option<f64>); 2],
    ) {
        let mut withheld = BTreeSet::new();
        for (name, value) in fields {
            if hub_core::stats::withheld(*value) {
                *value = 0;
                suppressed.push(format!("{prefix}{name}"));
                withheld.insert(name);
            }
        }
        for (name, from, pct) in pcts {
            if withheld.contains(from) && pct.is_some() {
                *pct = None;
                suppressed.push(format!("{prefix}{name}"));
            }
        }
    }
    let mut suppressed = Vec::new();
    people(
        "",
        &mut suppressed,
        [
            ("service_users_trained", &mut c.service_users_trained),
            ("carers_trained", &mut c.carers_trained),
            ("prison_leavers_trained", &mut c.prison_leavers_trained),
            ("custody_officers_trained", &mut c.custody_officers_trained),
            ("paramedics_trained", &mut c.paramedics_trained),
            ("pharmacy_staff_trained", &mut c.pharmacy_staff_trained),
        ],
        [
            (
                "custody_officers_trained_pct",
                "custody_officers_trained",
                &mut c.custody_officers_trained_pct,
            ),
            (
                "paramedics_trained_pct",
                "paramedics_trained",
                &mut c.paramedics_trained_pct,
            ),
        ],
    );
    for q in &mut c.quarters {
        people(
            &format!("q{}.", q.quarter),
            &mut suppressed,
            [
                ("service_users_trained", &mut q.service_users_trained),
                ("carers_trained", &mut q.carers_trained),
                ("prison_leavers_trained", &mut q.prison_leavers_trained),
                ("custody_officers_trained", &mut q.custody_officers_trained),
                ("paramedics_trained", &mut q.paramedics_trained),
                ("pharmacy_staff_trained", &mut q.pharmacy_staff_trained),
            ],
            [
                (
                    "custody_officers_trained_pct",
                    "custody_officers_trained",
                    &mut q.custody_officers_trained_pct,
                ),
                (
                    "paramedics_trained_pct",
                    "paramedics_trained",
                    &mut q.paramedics_trained_pct,
                ),
            ],
        );
    }
    c.suppressed = suppressed;
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_proto::events::*;
    use hub_store::MemKv;

    struct World {
        kv: MemKv,
        seq: u64,
    }

    impl World {
        fn new() -> Self {
            Self {
                kv: MemKv::default(),
                seq: 0,
            }
        }

        /// `at` is an RFC 3339 instant.
        fn given(&mut self, keys: &[&str], at: &str, payload: Payload) -> &mut Self {
            self.seq += 1;
            let t: Timestamp = at.parse().unwrap();
            let event = Event {
                person_key: keys.first().map(|k| k.to_string()).unwrap_or_default(),
                linked_person_keys: keys.iter().skip(1).map(|k| k.to_string()).collect(),
                partnership_code: "bradford".into(),
                occurred_at: Some(prost_types::Timestamp {
                    seconds: t.as_second(),
                    nanos: 0,
                }),
                payload: Some(payload),
                ..Default::default()
            };
            apply(&mut self.kv, &event, self.seq).unwrap();
            self
        }

        fn counts(&self, fy: &str) -> TrainingCounts {
            let fy = FinancialYear::parse(fy).unwrap();
            let (year, all) = hub_store::year_prefixes("bradford", &fy.to_string());
            tally(
                "bradford",
                fy,
                &YearRows {
                    counters: self.kv.scan(KeyKind::Counter, &year).unwrap(),
                    headcounts: self.kv.scan(KeyKind::Headcount, &all).unwrap(),
                },
            )
        }
    }

    fn training(audience: TrainingAudience, kit: bool) -> Payload {
        Payload::OverdoseTrainingRecorded(OverdoseTrainingRecorded {
            service_code: "TRT01".into(),
            audience: audience as i32,
            naloxone_kit_supplied: kit,
        })
    }

    #[test]
    fn beside_englands_sums_a_lone_withheld_count_takes_the_smallest_other_with_it() {
        let row = |code: &str, carers: u32, trained: u32| TrainingCounts {
            partnership_code: code.into(),
            carers_trained: carers,
            custody_officers_trained: trained,
            custody_officer_headcount: 100,
            custody_officers_trained_pct: percent(trained, 100),
            ..Default::default()
        };
        let mut rows = vec![
            row("a", 3, 50),
            row("b", 40, 9),
            row("c", 12, 20),
            row("d", 0, 2),
            row("e", 6, 30),
        ];
        let e = england(&rows);
        assert_eq!((e.carers_trained, e.custody_officers_trained), (61, 111));
        assert_eq!(e.custody_officers_trained_pct, Some(22.2));
        suppress_national(&mut rows);
        let withheld: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.suppressed.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            withheld,
            [
                vec!["carers_trained"],
                // officers: only d's 2 is small, so b's 9 (the smallest
                // other) goes with it, percentage and all.
                vec!["custody_officers_trained", "custody_officers_trained_pct"],
                vec![],
                vec!["custody_officers_trained", "custody_officers_trained_pct"],
                vec!["carers_trained"],
            ]
        );
        assert_eq!(rows[1].custody_officers_trained, 0);
        assert_eq!(rows[1].custody_officers_trained_pct, None);
        assert_eq!(
            rows[2].carers_trained, 12,
            "two carers' counts withheld already"
        );
    }

    #[test]
    fn the_year_turns_at_midnight_in_london_not_utc() {
        let mut w = World::new();
        // 23:30 UTC on 31 March 2026 is 00:30 BST on 1 April: 2026-27, Q1.
        w.given(
            &["a"],
            "2026-03-31T23:30:00Z",
            training(TrainingAudience::Carer, false),
        );
        // 22:30 UTC is 23:30 BST on 31 March: 2025-26, Q4.
        w.given(
            &["b"],
            "2026-03-31T22:30:00Z",
            training(TrainingAudience::Carer, false),
        );
        let this = w.counts("2026-27");
        assert_eq!(this.carers_trained, 1);
        assert_eq!(this.quarters[0].carers_trained, 1);
        let last = w.counts("2025-26");
        assert_eq!(last.carers_trained, 1);
        assert_eq!(last.quarters[3].carers_trained, 1);
    }

    #[test]
    fn counters_match_a_count_of_distinct_people_through_any_links() {
        // 400 events over 30 identifiers: trainings in random quarters and
        // links between random pairs, in random order; the counters must
        // equal distinct people (by the final links) per year and quarter.
        let mut w = World::new();
        let mut rng = 2026u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let days = ["2026-05-01", "2026-08-01", "2026-11-01", "2027-02-01"];
        let mut parent: Vec<usize> = (0..30).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            p[x] = r;
            r
        }
        let mut trainings = Vec::new();
        for _ in 0..400 {
            let a = next(30) as usize;
            if next(3) == 0 {
                let b = next(30) as usize;
                w.given(
                    &[&format!("k{a}"), &format!("k{b}")],
                    "2026-06-01T10:00:00Z",
                    Payload::ConsentRecorded(ConsentRecorded {
                        purpose: 1,
                        given: true,
                    }),
                );
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                parent[ra] = rb;
            } else {
                let q = next(4) as usize;
                w.given(
                    &[&format!("k{a}")],
                    &format!("{}T10:00:00Z", days[q]),
                    training(TrainingAudience::Carer, false),
                );
                trainings.push((a, q));
            }
        }
        let mut year = BTreeSet::new();
        let mut quarters: [BTreeSet<usize>; 4] = Default::default();
        for (a, q) in trainings {
            let r = find(&mut parent, a);
            year.insert(r);
            quarters[q].insert(r);
        }
        let c = w.counts("2026-27");
        assert_eq!(c.carers_trained as usize, year.len());
        for (i, q) in quarters.iter().enumerate() {
            assert_eq!(c.quarters[i].carers_trained as usize, q.len(), "Q{}", i + 1);
        }
    }

    #[test]
    fn people_seen_only_outside_training_leave_no_trace_until_linked() {
        let mut w = World::new();
        w.given(
            &["client"],
            "2026-05-01T10:00:00Z",
            Payload::NeedleExchangeRecorded(Default::default()),
        )
        .given(
            &["nhs"],
            "2026-05-01T10:00:00Z",
            Payload::TreatmentReferralRecorded(Default::default()),
        );
        assert!(w.kv.0.is_empty(), "nothing stored: {:?}", w.kv.0.keys());
        // Trained under one key, then seen under both: still one person
        // when trained again under the other.
        w.given(
            &["client"],
            "2026-05-02T10:00:00Z",
            training(TrainingAudience::ServiceUser, false),
        )
        .given(
            &["nhs", "client"],
            "2026-05-03T10:00:00Z",
            Payload::TreatmentReferralRecorded(Default::default()),
        )
        .given(
            &["nhs"],
            "2026-05-04T10:00:00Z",
            training(TrainingAudience::ServiceUser, false),
        );
        assert_eq!(w.counts("2026-27").service_users_trained, 1);
    }

    #[test]
    fn a_person_trained_twice_counts_once_a_year_and_once_a_quarter() {
        let mut w = World::new();
        w.given(
            &["a"],
            "2026-05-01T10:00:00Z",
            training(TrainingAudience::ServiceUser, false),
        )
        .given(
            &["a"],
            "2026-05-20T10:00:00Z",
            training(TrainingAudience::ServiceUser, false),
        )
        .given(
            &["a"],
            "2026-08-01T10:00:00Z",
            training(TrainingAudience::ServiceUser, false),
        )
        // The same person under another identifier, linked later.
        .given(
            &["c"],
            "2026-05-02T10:00:00Z",
            training(TrainingAudience::ServiceUser, false),
        );
        assert_eq!(w.counts("2026-27").service_users_trained, 2);
        w.given(
            &["a", "c"],
            "2026-09-01T10:00:00Z",
            Payload::ConsentRecorded(ConsentRecorded {
                purpose: 1,
                given: true,
            }),
        );
        let c = w.counts("2026-27");
        assert_eq!(c.service_users_trained, 1, "linked: one person");
        assert_eq!(
            (
                c.quarters[0].service_users_trained,
                c.quarters[1].service_users_trained
            ),
            (1, 1)
        );
    }

    #[test]
    fn kits_add_up_from_pharmacies_releases_and_trainings() {
        let mut w = World::new();
        w.given(
            &["a"],
            "2026-05-01T10:00:00Z",
            Payload::NaloxoneSupplied(NaloxoneSupplied {
                pharmacy_code: "FW844".into(),
                kits: 3,
            }),
        )
        .given(
            &["a"],
            "2026-05-02T10:00:00Z",
            Payload::NaloxoneOnReleaseRecorded(NaloxoneOnReleaseRecorded {
                prison_code: "LEI".into(),
            }),
        )
        .given(
            &["b"],
            "2026-11-02T10:00:00Z",
            training(TrainingAudience::PrisonLeaver, true),
        )
        .given(
            &["b"],
            "2026-11-03T10:00:00Z",
            training(TrainingAudience::PrisonLeaver, false),
        );
        let c = w.counts("2026-27");
        assert_eq!(c.naloxone_kits_supplied, 5);
        assert_eq!(
            (
                c.quarters[0].naloxone_kits_supplied,
                c.quarters[2].naloxone_kits_supplied
            ),
            (4, 1)
        );
        assert_eq!(c.prison_leavers_trained, 1);
    }

    #[test]
    fn headcount_is_the_latest_figure_per_suite_summed_and_percentages_use_it() {
        let mut w = World::new();
        let workforce = |suite: &str, n| {
            Payload::CustodyWorkforceRecorded(CustodyWorkforceRecorded {
                custody_suite_code: suite.into(),
                custody_officer_headcount: n,
            })
        };
        let officer = |staff: &str| {
            Payload::OfficerOverdoseTrainingRecorded(OfficerOverdoseTrainingRecorded {
                custody_suite_code: "A".into(),
                staff_key: staff.into(),
            })
        };
        w.given(&[], "2026-04-10T10:00:00Z", workforce("A", 40))
            .given(&[], "2026-10-10T10:00:00Z", workforce("A", 50))
            .given(&[], "2026-04-10T10:00:00Z", workforce("B", 30))
            .given(&[], "2026-05-01T10:00:00Z", officer("s1"))
            .given(&[], "2026-05-01T10:00:00Z", officer("s2"))
            .given(&[], "2026-06-01T10:00:00Z", officer("s1"))
            .given(&[], "2026-11-01T10:00:00Z", officer("s3"));
        let c = w.counts("2026-27");
        assert_eq!(c.custody_officer_headcount, 80);
        assert_eq!(c.custody_officers_trained, 3);
        assert_eq!(c.custody_officers_trained_pct, Some(3.8));
        assert_eq!(c.quarters[0].custody_officer_headcount, 70, "as at 30 June");
        assert_eq!(c.quarters[0].custody_officers_trained_pct, Some(2.9));
        assert_eq!(c.paramedic_headcount, 0);
        assert_eq!(c.paramedics_trained_pct, None, "absent when headcount is 0");
    }

    #[test]
    fn analysts_see_small_counts_withheld() {
        let mut w = World::new();
        for i in 0..8 {
            w.given(
                &[&format!("su{i}")],
                "2026-05-01T10:00:00Z",
                training(TrainingAudience::ServiceUser, false),
            );
        }
        w.given(
            &["c1"],
            "2026-05-01T10:00:00Z",
            training(TrainingAudience::Carer, false),
        );
        w.given(
            &[],
            "2026-04-10T10:00:00Z",
            Payload::AmbulanceWorkforceRecorded(AmbulanceWorkforceRecorded {
                trust_code: "RX8".into(),
                paramedic_headcount: 100,
            }),
        );
        w.given(
            &[],
            "2026-05-01T10:00:00Z",
            Payload::ParamedicNaloxoneTrainingRecorded(ParamedicNaloxoneTrainingRecorded {
                trust_code: "RX8".into(),
                staff_key: "p1".into(),
            }),
        );
        let mut c = w.counts("2026-27");
        suppress_small_counts(&mut c);
        assert_eq!(c.service_users_trained, 8, "8 is shown");
        assert_eq!(c.carers_trained, 0);
        assert_eq!(c.paramedics_trained, 0);
        assert_eq!(c.paramedics_trained_pct, None);
        assert_eq!(
            c.paramedic_headcount, 100,
            "headcounts are not counts of people trained"
        );
        for name in [
            "carers_trained",
            "paramedics_trained",
            "paramedics_trained_pct",
            "q1.carers_trained",
            "q1.paramedics_trained_pct",
        ] {
            assert!(
                c.suppressed.iter().any(|s| s == name),
                "{name} in {:?}",
                c.suppressed
            );
        }
        assert!(!c.suppressed.iter().any(|s| s == "service_users_trained"));
        assert!(
            !c.suppressed.iter().any(|s| s == "prison_leavers_trained"),
            "0 is not withheld"
        );
    }
}
