//! What the hub is measured on: commands as agencies send them, in the
//! proportions of a year in England.
//!
//! # The national year (order of 5 million events)
//! Rounded from public figures for England, per year:
//! - needle and syringe programme transactions in pharmacies and agencies:
//!   about 3.4 million (the bulk of the stream);
//! - harm-reduction advice in police custody (arrests with drug tests and
//!   referrals): about 400,000;
//! - prison releases of people with a drug problem: about 65,000 release
//!   episodes, each with release date, consent, triage, naloxone (half),
//!   appointment (60%), gate pick-up arranged (60%) and recorded, release,
//!   engagement (40%): about 7.3 events each, about 475,000;
//! - referrals into treatment and from pharmacies: about 250,000;
//! - naloxone supplies: about 150,000; overdose training of service users,
//!   carers and prison leavers: about 60,000;
//! - ambulance overdose attendances: about 100,000;
//! - staff training (custody officers, paramedics, pharmacy staff): about
//!   60,000; workforce figures and protocols: a few thousand.
//!
//! That is about 4.95 million events; the generator draws each command
//! kind with these weights, over the 149 partnerships.

use hub_core::synthetic::{client_code, nhs_number, prison_number};
use hub_proto::{
    ambulance::{
        AmbulanceCommand, RecordOverdoseAttendanceRequest, RecordParamedicNaloxoneTrainingRequest,
    },
    common::{AdviceTopic, ConsentPurpose, PersonRef, TrainingAudience},
    custody::{
        CustodyCommand, RecordHarmReductionAdviceRequest, RecordOfficerOverdoseTrainingRequest,
    },
    pharmacy::{PharmacyCommand, RecordNaloxoneSupplyRequest, RecordNeedleExchangeRequest},
    prison::{PrisonCommand, RecordConsentRequest, RecordReleaseDateRequest},
    treatment::{RecordOverdoseTrainingRequest, RecordReferralRequest, TreatmentCommand},
};

/// One command for one service.
#[derive(Debug, Clone)]
pub enum Command {
    NeedleExchange(RecordNeedleExchangeRequest),
    NaloxoneSupply(RecordNaloxoneSupplyRequest),
    Advice(RecordHarmReductionAdviceRequest),
    OfficerTraining(RecordOfficerOverdoseTrainingRequest),
    ReleaseDate(RecordReleaseDateRequest),
    Consent(RecordConsentRequest),
    Referral(RecordReferralRequest),
    OverdoseTraining(RecordOverdoseTrainingRequest),
    Attendance(RecordOverdoseAttendanceRequest),
    ParamedicTraining(RecordParamedicNaloxoneTrainingRequest),
}

/// A command as one item of its agency's `RecordBatch` upload.
#[derive(Debug, Clone)]
pub enum BatchItem {
    Pharmacy(PharmacyCommand),
    Custody(CustodyCommand),
    Prison(PrisonCommand),
    Treatment(TreatmentCommand),
    Ambulance(AmbulanceCommand),
}

impl BatchItem {
    /// Which agency service takes it (0 to 4).
    pub fn agency(&self) -> usize {
        match self {
            BatchItem::Pharmacy(_) => 0,
            BatchItem::Custody(_) => 1,
            BatchItem::Prison(_) => 2,
            BatchItem::Treatment(_) => 3,
            BatchItem::Ambulance(_) => 4,
        }
    }
}

impl Command {
    pub fn into_batch_item(self) -> BatchItem {
        use hub_proto::{
            ambulance::ambulance_command::Command as A, custody::custody_command::Command as C,
            pharmacy::pharmacy_command::Command as P, prison::prison_command::Command as Pr,
            treatment::treatment_command::Command as T,
        };
        let pharmacy = |c| BatchItem::Pharmacy(PharmacyCommand { command: Some(c) });
        let custody = |c| BatchItem::Custody(CustodyCommand { command: Some(c) });
        let prison = |c| BatchItem::Prison(PrisonCommand { command: Some(c) });
        let treatment = |c| BatchItem::Treatment(TreatmentCommand { command: Some(c) });
        let ambulance = |c| BatchItem::Ambulance(AmbulanceCommand { command: Some(c) });
        match self {
            Command::NeedleExchange(r) => pharmacy(P::RecordNeedleExchange(r)),
            Command::NaloxoneSupply(r) => pharmacy(P::RecordNaloxoneSupply(r)),
            Command::Advice(r) => custody(C::RecordHarmReductionAdvice(r)),
            Command::OfficerTraining(r) => custody(C::RecordOfficerOverdoseTraining(r)),
            Command::ReleaseDate(r) => prison(Pr::RecordReleaseDate(r)),
            Command::Consent(r) => prison(Pr::RecordConsent(r)),
            Command::Referral(r) => treatment(T::RecordReferral(r)),
            Command::OverdoseTraining(r) => treatment(T::RecordOverdoseTraining(r)),
            Command::Attendance(r) => ambulance(A::RecordOverdoseAttendance(r)),
            Command::ParamedicTraining(r) => ambulance(A::RecordParamedicNaloxoneTraining(r)),
        }
    }
}

/// Who sends each command kind (`bench-tokens.json`).
impl Command {
    pub fn token(&self) -> &'static str {
        match self {
            Command::NeedleExchange(_) | Command::NaloxoneSupply(_) => "bench-token-pharmacist",
            Command::Advice(_) | Command::OfficerTraining(_) => "bench-token-custody",
            Command::ReleaseDate(_) | Command::Consent(_) => "bench-token-carat",
            Command::Referral(_) | Command::OverdoseTraining(_) => "bench-token-treatment",
            Command::Attendance(_) | Command::ParamedicTraining(_) => "bench-token-paramedic",
        }
    }
}

/// Per mille of each kind in a national year (sums to 1000).
const WEIGHTS: [(u64, Kind); 10] = [
    (687, Kind::NeedleExchange),
    (81, Kind::Advice),
    (50, Kind::Referral),
    (30, Kind::NaloxoneSupply),
    (48, Kind::ReleaseDate),
    (48, Kind::Consent),
    (20, Kind::Attendance),
    (12, Kind::OverdoseTraining),
    (12, Kind::OfficerTraining),
    (12, Kind::ParamedicTraining),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    NeedleExchange,
    NaloxoneSupply,
    Advice,
    OfficerTraining,
    ReleaseDate,
    Consent,
    Referral,
    OverdoseTraining,
    Attendance,
    ParamedicTraining,
}

fn mix(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Common fields for command `n`.
pub struct Env<'a> {
    pub run: &'a str,
    pub partnerships: &'a [String],
    pub now: prost_types::Timestamp,
    /// Today in London, `YYYY-MM-DD`, and the next 14 days.
    pub days_ahead: &'a [String],
}

/// The `n`th command of a national year.
pub fn national(n: u64, env: &Env) -> Command {
    let r = mix(n);
    let mut pick = r % 1000;
    let kind = WEIGHTS
        .iter()
        .find(|(w, _)| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .map(|(_, k)| *k)
        .unwrap_or(Kind::NeedleExchange);
    let partnership = env.partnerships[(mix(r) % env.partnerships.len() as u64) as usize].clone();
    command(kind, n, r, partnership, env)
}

/// A release date for person `n` of `partnership`, `day` of the list.
pub fn release(n: u64, partnership: &str, env: &Env) -> Command {
    command(Kind::ReleaseDate, n, mix(n), partnership.to_string(), env)
}

/// A training of person `n` (the e2e workload: visible in the counts).
pub fn training(n: u64, partnership: &str, env: &Env) -> Command {
    command(
        Kind::OverdoseTraining,
        n,
        mix(n),
        partnership.to_string(),
        env,
    )
}

fn command(kind: Kind, n: u64, r: u64, partnership: String, env: &Env) -> Command {
    let request_id = format!("{}-{n}", env.run);
    let occurred_at = Some(env.now);
    // People recur: about one in four commands is about someone seen before.
    let who = n - (r >> 20) % (n / 4 + 1);
    let by_nhs = |named: bool| {
        Some(PersonRef {
            nhs_number: nhs_number(who),
            prison_number: if named {
                prison_number(who)
            } else {
                String::new()
            },
            given_name: if named { "Sam".into() } else { String::new() },
            family_name: if named {
                "Example".into()
            } else {
                String::new()
            },
            ..Default::default()
        })
    };
    match kind {
        Kind::NeedleExchange => Command::NeedleExchange(RecordNeedleExchangeRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            pharmacy_code: "FW844".into(),
            client_code: client_code(who),
            packs_given: 1 + (r % 5) as u32,
            returns: (r % 3) as u32,
        }),
        Kind::NaloxoneSupply => Command::NaloxoneSupply(RecordNaloxoneSupplyRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            pharmacy_code: "FW844".into(),
            person: by_nhs(false),
            kits: 1 + (r % 2) as u32,
        }),
        Kind::Advice => Command::Advice(RecordHarmReductionAdviceRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            custody_suite_code: "CS01".into(),
            person: Some(PersonRef {
                pnc_id: format!("20/{:07}A", who % 10_000_000),
                ..Default::default()
            }),
            topics: vec![
                AdviceTopic::OverdoseRisk as i32,
                AdviceTopic::Naloxone as i32,
            ],
            referred_to_treatment: r.is_multiple_of(3),
        }),
        Kind::OfficerTraining => Command::OfficerTraining(RecordOfficerOverdoseTrainingRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            custody_suite_code: "CS01".into(),
            staff_id: format!("PC{}", who % 100_000),
        }),
        Kind::ReleaseDate => Command::ReleaseDate(RecordReleaseDateRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            prison_code: "LEI".into(),
            person: by_nhs(true),
            release_date: env.days_ahead[(r % env.days_ahead.len() as u64) as usize].clone(),
        }),
        Kind::Consent => Command::Consent(RecordConsentRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            person: by_nhs(false),
            purpose: ConsentPurpose::GatePickup as i32,
            given: !r.is_multiple_of(10),
        }),
        Kind::Referral => Command::Referral(RecordReferralRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            service_code: "TRT01".into(),
            person: by_nhs(false),
            source_agency: "pharmacy".into(),
            reason: "asked for help after an overdose".into(),
        }),
        Kind::OverdoseTraining => Command::OverdoseTraining(RecordOverdoseTrainingRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            service_code: "TRT01".into(),
            person: Some(PersonRef {
                client_code: client_code(n),
                ..Default::default()
            }),
            audience: [
                TrainingAudience::ServiceUser,
                TrainingAudience::Carer,
                TrainingAudience::PrisonLeaver,
            ][(r % 3) as usize] as i32,
            naloxone_kit_supplied: r.is_multiple_of(2),
        }),
        Kind::Attendance => Command::Attendance(RecordOverdoseAttendanceRequest {
            request_id,
            partnership_code: partnership,
            occurred_at,
            trust_code: "RX8".into(),
            person: if r.is_multiple_of(2) {
                by_nhs(false)
            } else {
                None
            },
            naloxone_administered: !r.is_multiple_of(4),
            police_attended: r.is_multiple_of(5),
            conveyed_to_hospital: r.is_multiple_of(2),
        }),
        Kind::ParamedicTraining => {
            Command::ParamedicTraining(RecordParamedicNaloxoneTrainingRequest {
                request_id,
                partnership_code: partnership,
                occurred_at,
                trust_code: "RX8".into(),
                staff_id: format!("P{}", who % 100_000),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_follows_the_weights() {
        let partnerships = vec!["bradford".to_string()];
        let days = vec!["2026-12-01".to_string()];
        let env = Env {
            run: "t",
            partnerships: &partnerships,
            now: prost_types::Timestamp::default(),
            days_ahead: &days,
        };
        let n = 100_000;
        let needles = (0..n)
            .filter(|i| matches!(national(*i, &env), Command::NeedleExchange(_)))
            .count();
        let share = needles as f64 / n as f64;
        assert!((0.67..0.70).contains(&share), "{share}");
        assert_eq!(WEIGHTS.iter().map(|(w, _)| w).sum::<u64>(), 1000);
    }
}
