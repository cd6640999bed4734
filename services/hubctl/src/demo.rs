//! The demo scenario, recorded through the public RPCs of all five agency
//! services: per partnership, custody and ambulance workforce and training
//! through the financial year, pharmacy staff training, service users and
//! carers trained (some twice), needle exchange at all hours, custody
//! advice, naloxone from pharmacies, referrals from custody, pharmacies and treatment (some followed
//! by engagement), overdose attendances, a police attendance protocol, and
//! made-up people leaving prison over six weeks with consent mostly given,
//! checklists partly done, releases, pick-ups met and missed, and
//! engagements; then one person handed over from the first partnership to
//! the second (out-of-area release) and two people of the first whom
//! agencies know by one client code (a potential duplicate). Deterministic for a seed and a day: request ids derive from
//! both, so a second run that day is answered as duplicates and records
//! nothing new.

use anyhow::Result;
use hub_proto::{
    ambulance::{ambulance_service_client::AmbulanceServiceClient, *},
    common::{ConsentPurpose, PersonRef, TrainingAudience},
    custody::{custody_service_client::CustodyServiceClient, *},
    pharmacy::{pharmacy_service_client::PharmacyServiceClient, *},
    prison::{prison_service_client::PrisonServiceClient, *},
    treatment::{treatment_service_client::TreatmentServiceClient, *},
};
use tonic::transport::Channel;

use crate::{explain, Caller};

/// Partnerships the demo fills, in order.
pub const PARTNERSHIPS: &[&str] = &["bradford", "leeds", "kirklees", "calderdale", "wakefield"];
const PRISONS: &[&str] = &["LEI", "WDI", "HMI"];
const GIVEN: &[&str] = &[
    "Alex", "Sam", "Jo", "Chris", "Danny", "Lee", "Kerry", "Mo", "Jamie", "Robin",
];
const FAMILY: &[&str] = &[
    "Archer", "Bell", "Carter", "Dixon", "Ellis", "Frost", "Green", "Hughes", "Irwin", "Jones",
];

/// SplitMix64: small, deterministic, good enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A valid NHS number (modulus 11) from random digits.
fn nhs_number(rng: &mut Rng) -> String {
    loop {
        let digits: Vec<u32> = (0..9).map(|_| rng.below(10) as u32).collect();
        let sum: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => continue,
            c => c,
        };
        return digits
            .iter()
            .chain([check].iter())
            .map(|d| d.to_string())
            .collect();
    }
}

fn prison_number(rng: &mut Rng) -> String {
    let letter = |rng: &mut Rng| char::from(b'A' + rng.below(26) as u8);
    format!(
        "{}{:04}{}{}",
        letter(rng),
        rng.below(10_000),
        letter(rng),
        letter(rng)
    )
}

/// One client per agency service.
pub struct Agencies {
    pub custody: CustodyServiceClient<Channel>,
    pub prison: PrisonServiceClient<Channel>,
    pub pharmacy: PharmacyServiceClient<Channel>,
    pub treatment: TreatmentServiceClient<Channel>,
    pub ambulance: AmbulanceServiceClient<Channel>,
}

/// An organisation code made from a partnership code: `[A-Z0-9]`, at most 12.
fn org(partnership: &str, suffix: &str) -> String {
    let stem: String = partnership
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("{}{suffix}", stem.to_ascii_uppercase())
}

/// An initials-and-birthday client code from a number.
fn client_code(n: u64) -> String {
    let letter = |k: u64| char::from(b'A' + (k % 26) as u8);
    format!(
        "{}{}{:02}{:02}19{:02}{}",
        letter(n),
        letter(n / 26),
        1 + n % 28,
        1 + n % 12,
        60 + n % 40,
        ["M", "F"][(n % 2) as usize]
    )
}

pub async fn seed(
    agencies: &mut Agencies,
    caller: &Caller,
    partnerships: usize,
    people: usize,
    seed: u64,
) -> Result<String> {
    let mut rng = Rng(seed);
    let london = jiff::tz::TimeZone::get("Europe/London")?;
    let today = jiff::Timestamp::now().to_zoned(london.clone()).date();
    let year_start = hub_core::time::FinancialYear::of(today).quarter_first_day(1);
    // Everything is dated: noon on past days, midnight today, so the same
    // seed on the same day sends the same bodies (a re-run records nothing).
    let at = |day: jiff::civil::Date| -> Result<prost_types::Timestamp> {
        let t = if day >= today {
            today.to_zoned(london.clone())?.timestamp()
        } else {
            day.at(12, 0, 0, 0).to_zoned(london.clone())?.timestamp()
        };
        Ok(prost_types::Timestamp {
            seconds: t.as_second(),
            nanos: 0,
        })
    };
    // The same at `hour` o'clock London time (past days only).
    let at_hour = |day: jiff::civil::Date, hour: i8| -> Result<prost_types::Timestamp> {
        if day >= today {
            return at(day);
        }
        let t = day.at(hour, 0, 0, 0).to_zoned(london.clone())?.timestamp();
        Ok(prost_types::Timestamp {
            seconds: t.as_second(),
            nanos: 0,
        })
    };
    let days_so_far = (today - year_start).get_days().max(1) as u64;
    let day_this_year =
        |rng: &mut Rng| year_start + jiff::Span::new().days(rng.below(days_so_far) as i64);
    let (mut recorded, mut duplicates) = (0u32, 0u32);
    let mut tally = |ack: hub_proto::common::EventAck| {
        if ack.duplicate {
            duplicates += 1
        } else {
            recorded += 1
        }
    };
    macro_rules! send {
        ($client:ident . $method:ident, $request:expr) => {{
            let ack = agencies
                .$client
                .$method(caller.request($request)?)
                .await
                .map_err(explain)?
                .into_inner();
            tally(ack);
        }};
    }
    for partnership in PARTNERSHIPS.iter().take(partnerships) {
        let p = partnership.to_string();
        let id = |kind: &str, i: usize| format!("demo-{seed}-{today}-{p}-{kind}-{i}");
        let suite = org(&p, "CS1");
        let trust = org(&p, "AMB");
        let pharmacy = org(&p, "PH1");
        let service = org(&p, "TRT");
        // Workforce at the start of the year, and training through it.
        let officers = 30 + rng.below(40) as u32;
        let paramedics = 100 + rng.below(100) as u32;
        send!(
            custody.record_custody_workforce,
            RecordCustodyWorkforceRequest {
                request_id: id("workforce", 0),
                partnership_code: p.clone(),
                occurred_at: Some(at(year_start)?),
                custody_suite_code: suite.clone(),
                custody_officer_headcount: officers
            }
        );
        send!(
            ambulance.record_ambulance_workforce,
            RecordAmbulanceWorkforceRequest {
                request_id: id("workforce", 1),
                partnership_code: p.clone(),
                occurred_at: Some(at(year_start)?),
                trust_code: trust.clone(),
                paramedic_headcount: paramedics
            }
        );
        for i in 0..(officers as u64 * 6 / 10) as usize {
            let day = day_this_year(&mut rng);
            send!(
                custody.record_officer_overdose_training,
                RecordOfficerOverdoseTrainingRequest {
                    request_id: id("officer", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at(day)?),
                    custody_suite_code: suite.clone(),
                    staff_id: format!("PC{}", rng.below(officers as u64))
                }
            );
        }
        for i in 0..(paramedics as u64 / 3) as usize {
            let day = day_this_year(&mut rng);
            send!(
                ambulance.record_paramedic_naloxone_training,
                RecordParamedicNaloxoneTrainingRequest {
                    request_id: id("paramedic", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at(day)?),
                    trust_code: trust.clone(),
                    staff_id: format!("P{}", rng.below(paramedics as u64))
                }
            );
        }
        for i in 0..4 {
            let day = day_this_year(&mut rng);
            send!(
                pharmacy.record_staff_training,
                RecordStaffTrainingRequest {
                    request_id: id("pharmacist", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at(day)?),
                    pharmacy_code: pharmacy.clone(),
                    staff_id: format!("S{i}"),
                    accreditation: "Naloxone supply".into()
                }
            );
        }
        // Service users and carers trained through the year (some twice).
        for i in 0..25 {
            let day = day_this_year(&mut rng);
            let audience = if i % 4 == 0 {
                TrainingAudience::Carer
            } else {
                TrainingAudience::ServiceUser
            };
            let person = PersonRef {
                client_code: client_code(seed + rng.below(20)),
                ..Default::default()
            };
            send!(
                treatment.record_overdose_training,
                RecordOverdoseTrainingRequest {
                    request_id: id("training", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at(day)?),
                    service_code: service.clone(),
                    person: Some(person),
                    audience: audience as i32,
                    naloxone_kit_supplied: rng.below(2) == 0
                }
            );
        }
        // Needle exchange through the year, at all hours (some out of
        // hours: evenings, weekends, bank holidays).
        for i in 0..60 {
            let day = day_this_year(&mut rng);
            let hour = [9, 10, 11, 12, 13, 14, 15, 16, 17, 19][rng.below(10) as usize];
            send!(
                pharmacy.record_needle_exchange,
                RecordNeedleExchangeRequest {
                    request_id: id("nsp", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at_hour(day, hour)?),
                    pharmacy_code: org(&p, &format!("PH{}", 1 + rng.below(3))),
                    client_code: client_code(seed + 100 + rng.below(25)),
                    packs_given: 1 + rng.below(5) as u32,
                    returns: rng.below(4) as u32
                }
            );
        }
        // Naloxone from the pharmacies, to people who use drugs and carers.
        for i in 0..12 {
            let day = day_this_year(&mut rng);
            send!(
                pharmacy.record_naloxone_supply,
                RecordNaloxoneSupplyRequest {
                    request_id: id("pharmacy-naloxone", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at(day)?),
                    pharmacy_code: org(&p, &format!("PH{}", 1 + rng.below(3))),
                    person: Some(PersonRef {
                        client_code: client_code(seed + 100 + rng.below(25)),
                        ..Default::default()
                    }),
                    kits: 1 + rng.below(2) as u32
                }
            );
        }
        // Custody advice and referrals from custody, pharmacies and the
        // treatment agency, of people some of whom then engage with
        // treatment (within 28 days or not).
        let known: Vec<String> = (0..40).map(|_| nhs_number(&mut rng)).collect();
        let someone = |rng: &mut Rng| {
            Some(PersonRef {
                nhs_number: known[rng.below(known.len() as u64) as usize].clone(),
                ..Default::default()
            })
        };
        let mut referred = Vec::new();
        for i in 0..60 {
            let day = day_this_year(&mut rng);
            let person = someone(&mut rng);
            let topics: Vec<i32> = (1..=5).filter(|_| rng.below(2) == 0).collect();
            let referred_to_treatment = rng.below(2) == 0;
            send!(
                custody.record_harm_reduction_advice,
                RecordHarmReductionAdviceRequest {
                    request_id: id("advice", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at_hour(day, 22)?),
                    custody_suite_code: suite.clone(),
                    person: person.clone(),
                    topics: if topics.is_empty() { vec![3] } else { topics },
                    referred_to_treatment
                }
            );
            if referred_to_treatment {
                referred.push((day, person));
            }
        }
        for i in 0..40 {
            let day = day_this_year(&mut rng);
            let person = someone(&mut rng);
            if i % 2 == 0 {
                send!(
                    pharmacy.record_referral,
                    hub_proto::pharmacy::RecordReferralRequest {
                        request_id: id("pharmacy-referral", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(day)?),
                        pharmacy_code: pharmacy.clone(),
                        person: person.clone(),
                        reason: "asked about treatment".into()
                    }
                );
            } else {
                send!(
                    treatment.record_referral,
                    hub_proto::treatment::RecordReferralRequest {
                        request_id: id("referral", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(day)?),
                        service_code: service.clone(),
                        person: person.clone(),
                        source_agency: "self".into(),
                        reason: "self-referral".into()
                    }
                );
            }
            referred.push((day, person));
        }
        for i in 0..16 {
            let day = day_this_year(&mut rng);
            // Crews learn who the patient is about half the time.
            let person = if i % 2 == 0 { someone(&mut rng) } else { None };
            if person.is_some() {
                referred.push((day, person.clone()));
            }
            send!(
                ambulance.record_overdose_attendance,
                RecordOverdoseAttendanceRequest {
                    request_id: id("attendance", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at(day)?),
                    trust_code: trust.clone(),
                    person,
                    naloxone_administered: rng.below(4) != 0,
                    police_attended: rng.below(5) == 0,
                    conveyed_to_hospital: rng.below(2) == 0
                }
            );
        }
        for (i, (day, person)) in referred.into_iter().enumerate() {
            let engaged_on = day + jiff::Span::new().days(2 + rng.below(40) as i64);
            // Drawn whether or not the day has come: the number of draws
            // must not depend on the date, or the people leaving prison
            // (drawn after) would be other people each day.
            let engages = rng.below(10) < 6;
            if engaged_on <= today && engages {
                send!(
                    treatment.record_treatment_engagement,
                    RecordTreatmentEngagementRequest {
                        request_id: id("referral-engaged", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(engaged_on)?),
                        service_code: service.clone(),
                        person
                    }
                );
            }
        }
        // The police force's no-routine-attendance protocol with the trust.
        send!(
            ambulance.record_attendance_protocol,
            RecordAttendanceProtocolRequest {
                request_id: id("protocol", 0),
                partnership_code: p.clone(),
                occurred_at: Some(at(year_start)?),
                trust_code: trust.clone(),
                police_force_code: org(&p, "POL"),
                in_force: true
            }
        );
        // People leaving prison: some released in the last three weeks, most in the coming four.
        for i in 0..people {
            let person = PersonRef {
                nhs_number: nhs_number(&mut rng),
                prison_number: prison_number(&mut rng),
                given_name: GIVEN[rng.below(GIVEN.len() as u64) as usize].into(),
                family_name: FAMILY[rng.below(FAMILY.len() as u64) as usize].into(),
                date_of_birth: format!(
                    "19{:02}-{:02}-{:02}",
                    70 + rng.below(30),
                    1 + rng.below(12),
                    1 + rng.below(28)
                ),
                ..Default::default()
            };
            let by_prison = || {
                Some(PersonRef {
                    prison_number: person.prison_number.clone(),
                    ..Default::default()
                })
            };
            let by_nhs = || {
                Some(PersonRef {
                    nhs_number: person.nhs_number.clone(),
                    ..Default::default()
                })
            };
            let prison_code: String = PRISONS[rng.below(PRISONS.len() as u64) as usize].into();
            // Spread evenly from 20 days ago to four weeks ahead (with a
            // day's jitter), so every list has people behind and ahead.
            let slot = -20 + (i as i64 * 49) / people.max(1) as i64;
            let offset = (slot + rng.below(3) as i64 - 1).clamp(-20, 28);
            let release = today + jiff::Span::new().days(offset);
            let before = |days: i64| (release - jiff::Span::new().days(days)).min(today);
            send!(
                prison.record_release_date,
                RecordReleaseDateRequest {
                    request_id: id("release-date", i),
                    partnership_code: p.clone(),
                    occurred_at: Some(at(before(30))?),
                    prison_code: prison_code.clone(),
                    person: Some(person.clone()),
                    release_date: release.to_string()
                }
            );
            // The CARAT worker flags most releases once they are a fortnight
            // away (without a draw of its own: the rest of the demo stays as
            // it was).
            if offset <= 14 && i % 5 != 4 {
                send!(
                    prison.flag_imminent_release,
                    FlagImminentReleaseRequest {
                        request_id: id("flag-imminent", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(before(14))?),
                        prison_code: prison_code.clone(),
                        person: by_prison(),
                        note: String::new()
                    }
                );
            }
            match rng.below(10) {
                0 => send!(
                    prison.record_consent,
                    RecordConsentRequest {
                        request_id: id("consent", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(before(20))?),
                        person: by_prison(),
                        purpose: ConsentPurpose::GatePickup as i32,
                        given: false
                    }
                ),
                1..=7 => send!(
                    prison.record_consent,
                    RecordConsentRequest {
                        request_id: id("consent", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(before(20))?),
                        person: by_prison(),
                        purpose: ConsentPurpose::GatePickup as i32,
                        given: true
                    }
                ),
                _ => {}
            }
            if rng.below(10) < 7 {
                send!(
                    prison.record_pre_release_triage,
                    RecordPreReleaseTriageRequest {
                        request_id: id("triage", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(before(14))?),
                        prison_code: prison_code.clone(),
                        person: by_prison()
                    }
                );
            }
            if rng.below(10) < 6 {
                // The day after release, 10:00 in London.
                let appointment = (release + jiff::Span::new().days(1))
                    .at(10, 0, 0, 0)
                    .to_zoned(london.clone())?
                    .timestamp();
                let appointment = prost_types::Timestamp {
                    seconds: appointment.as_second(),
                    nanos: 0,
                };
                send!(
                    treatment.book_community_appointment,
                    BookCommunityAppointmentRequest {
                        request_id: id("appointment", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(before(10))?),
                        service_code: service.clone(),
                        person: by_nhs(),
                        appointment_at: Some(appointment)
                    }
                );
            }
            if rng.below(10) < 6 {
                send!(
                    treatment.arrange_gate_pickup,
                    ArrangeGatePickupRequest {
                        request_id: id("gate-worker", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(before(7))?),
                        person: by_nhs(),
                        worker_id: format!("dip-{}", 1 + rng.below(5))
                    }
                );
            }
            if rng.below(10) < 5 {
                send!(
                    prison.record_naloxone_on_release,
                    RecordNaloxoneOnReleaseRequest {
                        request_id: id("naloxone", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(before(1))?),
                        prison_code: prison_code.clone(),
                        person: by_prison()
                    }
                );
            }
            if release < today {
                send!(
                    prison.record_release,
                    RecordReleaseRequest {
                        request_id: id("released", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(release)?),
                        prison_code: prison_code.clone(),
                        person: by_prison()
                    }
                );
                let met = rng.below(10) < 7;
                send!(
                    treatment.record_gate_pickup,
                    RecordGatePickupRequest {
                        request_id: id("pickup", i),
                        partnership_code: p.clone(),
                        occurred_at: Some(at(release)?),
                        person: by_nhs(),
                        met,
                        accompanied_to_service: met
                    }
                );
                let engaged_on = release + jiff::Span::new().days(1 + rng.below(25) as i64);
                if met && engaged_on <= today && rng.below(10) < 8 {
                    send!(
                        treatment.record_treatment_engagement,
                        RecordTreatmentEngagementRequest {
                            request_id: id("engaged", i),
                            partnership_code: p.clone(),
                            occurred_at: Some(at(engaged_on)?),
                            service_code: service.clone(),
                            person: by_nhs()
                        }
                    );
                }
            }
        }
    }
    if let [from, to, ..] = PARTNERSHIPS[..partnerships.min(PARTNERSHIPS.len())] {
        let (from, to) = (from.to_string(), to.to_string());
        let id = |kind: &str, i: usize| format!("demo-{seed}-{today}-{from}-{kind}-{i}");
        // Out of area: released from a prison Bradford works with, to live
        // in Leeds. Bradford records the release, consent and triage, then
        // hands the person over: they leave Bradford's list for Leeds'.
        let person = PersonRef {
            nhs_number: nhs_number(&mut rng),
            prison_number: prison_number(&mut rng),
            given_name: "Morgan".into(),
            family_name: "Out-of-area".into(),
            ..Default::default()
        };
        let by_prison = Some(PersonRef {
            prison_number: person.prison_number.clone(),
            ..Default::default()
        });
        let release = today + jiff::Span::new().days(5);
        send!(
            prison.record_release_date,
            RecordReleaseDateRequest {
                request_id: id("handover-date", 0),
                partnership_code: from.clone(),
                occurred_at: Some(at(today)?),
                prison_code: "LEI".into(),
                person: Some(person.clone()),
                release_date: release.to_string()
            }
        );
        for (i, purpose) in [
            ConsentPurpose::GatePickup,
            ConsentPurpose::ShareWithTreatment,
        ]
        .into_iter()
        .enumerate()
        {
            send!(
                prison.record_consent,
                RecordConsentRequest {
                    request_id: id("handover-consent", i),
                    partnership_code: from.clone(),
                    occurred_at: Some(at(today)?),
                    person: by_prison.clone(),
                    purpose: purpose as i32,
                    given: true
                }
            );
        }
        send!(
            prison.record_pre_release_triage,
            RecordPreReleaseTriageRequest {
                request_id: id("handover-triage", 0),
                partnership_code: from.clone(),
                occurred_at: Some(at(today)?),
                prison_code: "LEI".into(),
                person: by_prison.clone()
            }
        );
        send!(
            prison.record_handover,
            RecordHandoverRequest {
                request_id: id("handover", 0),
                partnership_code: from.clone(),
                occurred_at: Some(at(today)?),
                prison_code: "LEI".into(),
                person: by_prison.clone(),
                to_partnership_code: to
            }
        );
        // Two people with different NHS numbers whom two agencies know by
        // the same client code: a potential duplicate for a data steward.
        let shared = client_code(seed + 999);
        for i in 0..2 {
            send!(
                treatment.record_referral,
                hub_proto::treatment::RecordReferralRequest {
                    request_id: id("duplicate-referral", i),
                    partnership_code: from.clone(),
                    occurred_at: Some(at(today)?),
                    service_code: org(&from, "TRT"),
                    person: Some(PersonRef {
                        nhs_number: nhs_number(&mut rng),
                        client_code: shared.clone(),
                        ..Default::default()
                    }),
                    source_agency: ["pharmacy", "custody"][i].into(),
                    reason: "asked for help with opiate use".into()
                }
            );
        }
    }
    Ok(format!(
        "demo seed {seed}: {recorded} events recorded, {duplicates} already there"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_identifiers_are_valid_and_deterministic() {
        let mut a = Rng(7);
        let mut b = Rng(7);
        for _ in 0..200 {
            let n = nhs_number(&mut a);
            assert_eq!(n, nhs_number(&mut b));
            let d: Vec<u32> = n.chars().map(|c| c.to_digit(10).unwrap()).collect();
            let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
            assert_eq!((11 - sum % 11) % 11, d[9]);
            let p = prison_number(&mut a);
            assert_eq!(p, prison_number(&mut b));
            assert_eq!(p.len(), 7);
        }
    }
}
