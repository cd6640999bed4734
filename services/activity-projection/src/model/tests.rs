use std::collections::{BTreeMap, BTreeSet};

use hub_proto::{common::AdviceTopic, events::*, projections::Activity};
use hub_store::MemKv;
use jiff::{civil::Date, tz::TimeZone, Timestamp, ToSpan};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

use super::*;

const P: &str = "bradford";

struct World {
    kv: MemKv,
    seq: u64,
}

fn event(keys: &[&str], at: Timestamp, payload: Payload) -> Event {
    Event {
        person_key: keys.first().map(|k| k.to_string()).unwrap_or_default(),
        linked_person_keys: keys.iter().skip(1).map(|k| k.to_string()).collect(),
        partnership_code: P.into(),
        org_code: "ORG1".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: at.as_second(),
            nanos: 0,
        }),
        payload: Some(payload),
        ..Default::default()
    }
}

impl World {
    fn new() -> Self {
        Self {
            kv: MemKv::default(),
            seq: 0,
        }
    }

    fn given(&mut self, e: &Event) -> &mut Self {
        self.seq += 1;
        apply(&mut self.kv, e, self.seq).unwrap();
        self
    }

    fn at(&mut self, keys: &[&str], at: &str, payload: Payload) -> &mut Self {
        let e = event(keys, at.parse().unwrap(), payload);
        self.given(&e)
    }

    fn activity(&self, fy: &str) -> Activity {
        let fy = FinancialYear::parse(fy).unwrap();
        let (year, all) = hub_store::year_prefixes(P, &fy.to_string());
        tally(
            P,
            fy,
            &YearRows {
                counters: self.kv.scan(KeyKind::Counter, &year).unwrap(),
                protocols: self.kv.scan(KeyKind::AttendanceProtocol, &all).unwrap(),
            },
        )
    }
}

fn advice(referred: bool) -> Payload {
    Payload::HarmReductionAdviceRecorded(HarmReductionAdviceRecorded {
        custody_suite_code: "CS1".into(),
        topics: vec![
            AdviceTopic::OverdoseRisk as i32,
            AdviceTopic::Naloxone as i32,
        ],
        referred_to_treatment: referred,
    })
}

fn engagement() -> Payload {
    Payload::TreatmentEngagementRecorded(TreatmentEngagementRecorded {
        service_code: "TRT1".into(),
    })
}

fn pharmacy_referral() -> Payload {
    Payload::PharmacyReferralRecorded(PharmacyReferralRecorded {
        pharmacy_code: "PH1".into(),
    })
}

fn referrals(a: &ActivityFigures, source: &str) -> (u32, u32, Option<f64>) {
    let r = a.referrals.iter().find(|r| r.source == source).unwrap();
    (r.referred, r.engaged_within_28_days, r.engaged_pct)
}

#[test]
fn a_referral_is_engaged_up_to_the_28th_day_after_it_and_not_the_29th() {
    let mut w = World::new();
    // Referred on 1 October 2026; engaged on 29 October (day 28).
    w.at(&["a"], "2026-10-01T10:00:00Z", pharmacy_referral())
        .at(&["a"], "2026-10-29T23:30:00Z", engagement());
    // Referred on 1 October; engaged on 30 October (day 29): not engaged.
    w.at(&["b"], "2026-10-01T10:00:00Z", pharmacy_referral())
        .at(&["b"], "2026-10-30T00:30:00Z", engagement());
    // Engaged before the referral only: not engaged.
    w.at(&["c"], "2026-09-30T10:00:00Z", engagement()).at(
        &["c"],
        "2026-10-01T10:00:00Z",
        pharmacy_referral(),
    );
    let a = w.activity("2026-27");
    assert_eq!(
        referrals(a.year.as_ref().unwrap(), "pharmacy"),
        (3, 1, Some(33.3))
    );
    assert_eq!(referrals(&a.quarters[2], "pharmacy"), (3, 1, Some(33.3)));
    assert_eq!(referrals(&a.quarters[1], "pharmacy"), (0, 0, None));
}

#[test]
fn the_28_days_are_london_days_across_the_clocks_going_back() {
    // Clocks go back on 25 October 2026. Referred 11 October 00:30 BST
    // (10 October 23:30 UTC); the 28th day after is 8 November, whose last
    // minute is 23:59 GMT.
    let mut w = World::new();
    w.at(&["a"], "2026-10-10T23:30:00Z", pharmacy_referral())
        .at(&["a"], "2026-11-08T23:59:00Z", engagement());
    w.at(&["b"], "2026-10-10T23:30:00Z", pharmacy_referral())
        .at(&["b"], "2026-11-09T00:00:00Z", engagement());
    let a = w.activity("2026-27");
    assert_eq!(
        referrals(a.year.as_ref().unwrap(), "pharmacy"),
        (2, 1, Some(50.0))
    );
}

#[test]
fn an_engagement_recorded_after_a_later_event_still_closes_the_referral() {
    let mut w = World::new();
    w.at(&["a"], "2026-06-01T10:00:00Z", advice(true));
    assert_eq!(
        referrals(w.activity("2026-27").year.as_ref().unwrap(), "custody"),
        (1, 0, Some(0.0))
    );
    // The engagement is recorded (the stream) after the fact.
    w.at(&["a"], "2026-06-10T10:00:00Z", engagement());
    let a = w.activity("2026-27");
    assert_eq!(
        referrals(a.year.as_ref().unwrap(), "custody"),
        (1, 1, Some(100.0))
    );
    let ca = a.year.as_ref().unwrap().custody_advice.unwrap();
    assert_eq!((ca.records, ca.people, ca.referred_to_treatment), (1, 1, 1));
    assert_eq!(
        (ca.overdose_risk, ca.naloxone, ca.safer_injecting),
        (1, 1, 0)
    );
}

#[test]
fn people_linked_by_a_later_event_count_once_and_their_referral_closes() {
    let mut w = World::new();
    // Referred by a pharmacy under a client code; engaged under an NHS
    // number; then one event names both.
    w.at(&["client-1"], "2026-06-01T10:00:00Z", pharmacy_referral())
        .at(&["nhs-1"], "2026-06-05T10:00:00Z", engagement())
        .at(&["nhs-2"], "2026-06-01T10:00:00Z", pharmacy_referral());
    assert_eq!(
        referrals(w.activity("2026-27").year.as_ref().unwrap(), "pharmacy"),
        (2, 0, Some(0.0))
    );
    w.at(
        &["nhs-1", "client-1"],
        "2026-07-01T10:00:00Z",
        Payload::NeedleExchangeRecorded(NeedleExchangeRecorded {
            pharmacy_code: "PH1".into(),
            packs_given: 1,
            returns: 0,
        }),
    );
    let a = w.activity("2026-27");
    assert_eq!(
        referrals(a.year.as_ref().unwrap(), "pharmacy"),
        (2, 1, Some(50.0))
    );
}

#[test]
fn counts_withheld_for_analysts_name_their_path_and_take_their_percentages() {
    let mut w = World::new();
    for i in 0..8 {
        w.at(&[&format!("p{i}")], "2026-06-01T10:00:00Z", advice(i == 0));
    }
    w.at(&["p0"], "2026-06-02T10:00:00Z", engagement());
    let mut a = w.activity("2026-27");
    suppress_small_counts(&mut a);
    let year = a.year.as_ref().unwrap();
    assert_eq!(
        year.custody_advice.as_ref().unwrap().people,
        8,
        "8 is shown"
    );
    assert_eq!(referrals(year, "custody"), (0, 0, None));
    for name in [
        "referrals.custody.referred",
        "referrals.custody.engaged_within_28_days",
        "referrals.custody.engaged_pct",
        "q1.referrals.custody.engaged_pct",
    ] {
        assert!(
            a.suppressed.contains(&name.to_string()),
            "{name}: {:?}",
            a.suppressed
        );
    }
    assert!(
        !a.suppressed.iter().any(|s| s.contains("pharmacy")),
        "0 is not withheld"
    );
    assert_eq!(
        year.custody_advice.as_ref().unwrap().records,
        8,
        "records are not people"
    );
}

#[test]
fn protocols_count_forces_in_force_at_each_period_end() {
    let mut w = World::new();
    let protocol = |force: &str, trust: &str, in_force: bool| {
        Payload::AttendanceProtocolRecorded(AttendanceProtocolRecorded {
            trust_code: trust.into(),
            police_force_code: force.into(),
            in_force,
        })
    };
    w.at(&[], "2026-05-01T10:00:00Z", protocol("WYP", "YAS", true))
        .at(&[], "2026-05-01T10:00:00Z", protocol("NYP", "YAS", true))
        .at(&[], "2026-08-01T10:00:00Z", protocol("NYP", "YAS", false))
        // The same force with a second trust still counts once.
        .at(&[], "2026-11-01T10:00:00Z", protocol("WYP", "NEAS", true))
        // Recorded after the year's end: not in 2026-27.
        .at(&[], "2027-04-01T10:00:00Z", protocol("WYP", "YAS", false));
    let a = w.activity("2026-27");
    let n = |f: &ActivityFigures| f.overdose_attendances.as_ref().unwrap().protocols_in_force;
    let by_quarter: Vec<u32> = a.quarters.iter().map(n).collect();
    assert_eq!(by_quarter, vec![2, 1, 1, 1]);
    assert_eq!(n(a.year.as_ref().unwrap()), 1);
}

// ---- the model against a brute-force oracle over random histories ----

fn london() -> TimeZone {
    hub_core::time::london()
}

/// Instants where the rules have edges: office hours, weekends, bank
/// holidays, clock changes, the financial year's turn.
fn edge_instants() -> Vec<Timestamp> {
    let mut out = Vec::new();
    let days = [
        "2026-03-27",
        "2026-03-28",
        "2026-03-29",
        "2026-03-30",
        "2026-03-31",
        "2026-04-01",
        "2026-04-03",
        "2026-04-06",
        "2026-06-30",
        "2026-07-01",
        "2026-10-24",
        "2026-10-25",
        "2026-10-26",
        "2026-12-24",
        "2026-12-25",
        "2026-12-28",
        "2026-12-31",
        "2027-01-01",
        "2027-03-26",
        "2027-03-28",
        "2027-03-29",
        "2027-03-31",
        "2027-04-01",
    ];
    for d in days {
        let d: Date = d.parse().unwrap();
        for (h, m) in [
            (0, 0),
            (0, 30),
            (8, 59),
            (9, 0),
            (12, 0),
            (16, 59),
            (17, 0),
            (23, 59),
        ] {
            if let Ok(z) = d.at(h, m, 0, 0).to_zoned(london()) {
                out.push(z.timestamp());
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Fact {
    Needle {
        client: Option<usize>,
        pharmacy: usize,
        packs: u32,
        returns: u32,
    },
    Advice {
        person: usize,
        topics: Vec<i32>,
        referred: bool,
    },
    Referral {
        person: usize,
        pharmacy: bool,
    },
    Attendance {
        person: Option<usize>,
        naloxone: bool,
        police: bool,
        conveyed: bool,
    },
    Engagement {
        person: usize,
    },
    Kits {
        n: u32,
    },
    OnRelease,
    Training {
        kit: bool,
    },
    Protocol {
        force: usize,
        trust: usize,
        in_force: bool,
    },
}

fn random_history(rng: &mut StdRng) -> Vec<(Timestamp, Fact)> {
    let edges = edge_instants();
    let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut out: Vec<(Timestamp, Fact)> = Vec::new();
    for _ in 0..rng.gen_range(20..120) {
        let at = if rng.gen_bool(0.5) {
            *edges.choose(rng).unwrap()
        } else if rng.gen_bool(0.3) && !out.is_empty() {
            // Some days after an earlier fact: referral windows' edges.
            let (t, _) = out.choose(rng).unwrap();
            t.checked_add((rng.gen_range(26..31) * 24).hours())
                .unwrap()
                .checked_add(rng.gen_range(-90..90).minutes())
                .unwrap()
        } else {
            start
                .checked_add(rng.gen_range(0..(600 * 24 * 60)).minutes())
                .unwrap()
        };
        let person = rng.gen_range(0..6);
        let fact = match rng.gen_range(0..11) {
            0 | 1 => Fact::Needle {
                client: rng.gen_bool(0.8).then(|| rng.gen_range(0..5)),
                pharmacy: rng.gen_range(0..3),
                packs: rng.gen_range(0..5),
                returns: rng.gen_range(0..5),
            },
            2 => Fact::Advice {
                person,
                topics: (1..=5).filter(|_| rng.gen_bool(0.4)).collect(),
                referred: rng.gen_bool(0.5),
            },
            3 => Fact::Referral {
                person,
                pharmacy: rng.gen_bool(0.5),
            },
            4 => Fact::Attendance {
                person: rng.gen_bool(0.7).then_some(person),
                naloxone: rng.gen_bool(0.5),
                police: rng.gen_bool(0.5),
                conveyed: rng.gen_bool(0.5),
            },
            5 | 6 => Fact::Engagement { person },
            7 => Fact::Kits {
                n: rng.gen_range(1..4),
            },
            8 => Fact::OnRelease,
            9 => Fact::Training {
                kit: rng.gen_bool(0.5),
            },
            _ => Fact::Protocol {
                force: rng.gen_range(0..3),
                trust: rng.gen_range(0..2),
                in_force: rng.gen_bool(0.6),
            },
        };
        out.push((at, fact));
    }
    // The stream's order is not the order things happened in.
    out.shuffle(rng);
    out
}

fn to_event((at, fact): &(Timestamp, Fact)) -> Event {
    let person = |i: &usize| format!("person-{i}");
    let (keys, payload) = match fact {
        Fact::Needle {
            client,
            pharmacy,
            packs,
            returns,
        } => (
            client
                .iter()
                .map(|c| format!("client-{c}"))
                .collect::<Vec<_>>(),
            Payload::NeedleExchangeRecorded(NeedleExchangeRecorded {
                pharmacy_code: format!("PH{pharmacy}"),
                packs_given: *packs,
                returns: *returns,
            }),
        ),
        Fact::Advice {
            person: p,
            topics,
            referred,
        } => (
            vec![person(p)],
            Payload::HarmReductionAdviceRecorded(HarmReductionAdviceRecorded {
                custody_suite_code: "CS1".into(),
                topics: topics.clone(),
                referred_to_treatment: *referred,
            }),
        ),
        Fact::Referral {
            person: p,
            pharmacy: true,
        } => (vec![person(p)], pharmacy_referral()),
        Fact::Referral {
            person: p,
            pharmacy: false,
        } => (
            vec![person(p)],
            Payload::TreatmentReferralRecorded(TreatmentReferralRecorded {
                service_code: "TRT1".into(),
                source_agency: "self".into(),
            }),
        ),
        Fact::Attendance {
            person: p,
            naloxone,
            police,
            conveyed,
        } => (
            p.iter().map(person).collect(),
            Payload::OverdoseAttendanceRecorded(OverdoseAttendanceRecorded {
                trust_code: "YAS".into(),
                naloxone_administered: *naloxone,
                police_attended: *police,
                conveyed_to_hospital: *conveyed,
            }),
        ),
        Fact::Engagement { person: p } => (vec![person(p)], engagement()),
        Fact::Kits { n } => (
            vec![],
            Payload::NaloxoneSupplied(NaloxoneSupplied {
                pharmacy_code: "PH1".into(),
                kits: *n,
            }),
        ),
        Fact::OnRelease => (
            vec!["person-9".into()],
            Payload::NaloxoneOnReleaseRecorded(NaloxoneOnReleaseRecorded {
                prison_code: "LEI".into(),
            }),
        ),
        Fact::Training { kit } => (
            vec!["person-8".into()],
            Payload::OverdoseTrainingRecorded(OverdoseTrainingRecorded {
                service_code: "TRT1".into(),
                audience: hub_proto::common::TrainingAudience::Carer as i32,
                naloxone_kit_supplied: *kit,
            }),
        ),
        Fact::Protocol {
            force,
            trust,
            in_force,
        } => (
            vec![],
            Payload::AttendanceProtocolRecorded(AttendanceProtocolRecorded {
                trust_code: format!("T{trust}"),
                police_force_code: format!("F{force}"),
                in_force: *in_force,
            }),
        ),
    };
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    event(&keys, *at, payload)
}

/// Everything a period's figures say, worked out from the facts alone.
fn oracle(history: &[(Timestamp, Fact)], first: Date, last: Date) -> ActivityFigures {
    let day = |t: &Timestamp| t.to_zoned(london()).date();
    let inside = |t: &Timestamp| (first..=last).contains(&day(t));
    let in_hours = |t: &Timestamp| {
        let z = t.to_zoned(london());
        let weekday = z.date().weekday().to_monday_one_offset() <= 5;
        weekday && z.hour() >= 9 && z.hour() < 17 && !crate::calendar::is_bank_holiday(z.date())
    };
    let mut c: BTreeMap<String, u64> = BTreeMap::new();
    let mut add = |name: &str, n: u64| *c.entry(name.to_string()).or_default() += n;
    let mut clients = BTreeSet::new();
    let mut pharmacies = BTreeSet::new();
    let mut advised = BTreeSet::new();
    // source → person → referral days in the period
    let mut referred: BTreeMap<&str, BTreeMap<usize, Vec<Date>>> = BTreeMap::new();
    let engagements = |p: usize| -> Vec<Date> {
        history
            .iter()
            .filter(|(_, f)| matches!(f, Fact::Engagement { person } if *person == p))
            .map(|(t, _)| day(t))
            .collect()
    };
    for (t, f) in history.iter().filter(|(t, _)| inside(t)) {
        match f {
            Fact::Needle {
                client,
                pharmacy,
                packs,
                returns,
            } => {
                add("nx.transactions", 1);
                add("nx.packs", u64::from(*packs));
                add("nx.returns", u64::from(*returns));
                if !in_hours(t) {
                    add("nx.out_of_hours", 1);
                }
                clients.extend(*client);
                pharmacies.insert(*pharmacy);
            }
            Fact::Advice {
                person,
                topics,
                referred: r,
            } => {
                add("ca.records", 1);
                for (i, (_, name)) in TOPICS.iter().enumerate() {
                    if topics.contains(&(i as i32 + 1)) {
                        add(&format!("ca.topic.{name}"), 1);
                    }
                }
                advised.insert(*person);
                if *r {
                    add("ca.referred", 1);
                    referred
                        .entry("custody")
                        .or_default()
                        .entry(*person)
                        .or_default()
                        .push(day(t));
                }
            }
            Fact::Referral { person, pharmacy } => {
                let s = if *pharmacy { "pharmacy" } else { "treatment" };
                referred
                    .entry(s)
                    .or_default()
                    .entry(*person)
                    .or_default()
                    .push(day(t));
            }
            Fact::Attendance {
                person,
                naloxone,
                police,
                conveyed,
            } => {
                add("oa.attendances", 1);
                add("oa.naloxone", u64::from(*naloxone));
                add("oa.police", u64::from(*police));
                add("oa.conveyed", u64::from(*conveyed));
                if let Some(p) = person {
                    referred
                        .entry("ambulance")
                        .or_default()
                        .entry(*p)
                        .or_default()
                        .push(day(t));
                }
            }
            Fact::Kits { n } => add("kits.pharmacy", u64::from(*n)),
            Fact::OnRelease => add("kits.prison_release", 1),
            Fact::Training { kit } => add("kits.training", u64::from(*kit)),
            Fact::Engagement { .. } | Fact::Protocol { .. } => {}
        }
    }
    add("nx.clients", clients.len() as u64);
    add("nx.pharmacies", pharmacies.len() as u64);
    add("ca.people", advised.len() as u64);
    for (source, people) in &referred {
        add(&format!("ref.{source}.referred"), people.len() as u64);
        let engaged = people
            .iter()
            .filter(|(p, days)| {
                let e = engagements(**p);
                days.iter().any(|d| {
                    let until = d.checked_add(28.days()).unwrap();
                    e.iter().any(|x| d <= x && *x <= until)
                })
            })
            .count();
        add(&format!("ref.{source}.engaged"), engaged as u64);
    }
    // Protocols: the latest record per force and trust before the end.
    let end = last
        .tomorrow()
        .unwrap()
        .to_zoned(london())
        .unwrap()
        .timestamp();
    let mut latest: BTreeMap<(usize, usize), (Timestamp, bool)> = BTreeMap::new();
    for (t, f) in history {
        if let Fact::Protocol {
            force,
            trust,
            in_force,
        } = f
        {
            if *t < end {
                let e = latest.entry((*force, *trust)).or_insert((*t, *in_force));
                // Ties at the same instant: the later in the stream wins,
                // and the history is in stream order.
                if *t >= e.0 {
                    *e = (*t, *in_force);
                }
            }
        }
    }
    let forces: BTreeSet<usize> = latest
        .iter()
        .filter(|(_, (_, yes))| *yes)
        .map(|((f, _), _)| *f)
        .collect();
    figures(0, &c, forces.len() as u32)
}

#[test]
fn random_histories_give_what_brute_force_gives() {
    let mut rng = StdRng::seed_from_u64(0x5EED_AC71);
    for case in 0..300 {
        let history = random_history(&mut rng);
        let mut w = World::new();
        for f in &history {
            w.given(&to_event(f));
        }
        for fy in ["2025-26", "2026-27", "2027-28"] {
            let a = w.activity(fy);
            let year = FinancialYear::parse(fy).unwrap();
            let mut want = oracle(&history, year.first_day(), year.last_day());
            assert_eq!(
                a.year.clone().unwrap(),
                want,
                "case {case}, {fy}, the year: {history:#?}"
            );
            for q in 1..=4u8 {
                want = oracle(
                    &history,
                    year.quarter_first_day(q),
                    year.quarter_last_day(q),
                );
                want.quarter = u32::from(q);
                assert_eq!(
                    a.quarters[usize::from(q) - 1],
                    want,
                    "case {case}, {fy} Q{q}: {history:#?}"
                );
            }
        }
    }
}
