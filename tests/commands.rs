//! A valid request for every command RPC of the contract, and one way to
//! send any of them by name: the raw material of the role matrix and the
//! per-RPC rule tables.

use hub_proto::{
    ambulance::{ambulance_service_client::AmbulanceServiceClient as Ambulance, *},
    common::{AdviceTopic, ConsentPurpose, EventAck, PersonRef, TrainingAudience},
    custody::{custody_service_client::CustodyServiceClient as Custody, *},
    identity::{identity_service_client::IdentityServiceClient as Identity, *},
    pharmacy::{pharmacy_service_client::PharmacyServiceClient as Pharmacy, *},
    prison::{prison_service_client::PrisonServiceClient as Prison, *},
    treatment::{treatment_service_client::TreatmentServiceClient as Treatment, *},
};
use tonic::Status;

use crate::{authed, now, Hub};

/// Every command RPC: (agency, RPC name).
pub const RPCS: [(&str, &str); 27] = [
    ("custody", "RecordHarmReductionAdvice"),
    ("custody", "RecordOfficerOverdoseTraining"),
    ("custody", "RecordCustodyWorkforce"),
    ("prison", "RecordReleaseDate"),
    ("prison", "CancelRelease"),
    ("prison", "FlagImminentRelease"),
    ("prison", "RecordConsent"),
    ("prison", "RecordPreReleaseTriage"),
    ("prison", "RecordNaloxoneOnRelease"),
    ("prison", "RecordRelease"),
    ("pharmacy", "RecordNeedleExchange"),
    ("pharmacy", "RecordReferral"),
    ("pharmacy", "RecordStaffTraining"),
    ("pharmacy", "RecordNaloxoneSupply"),
    ("treatment", "RecordReferral"),
    ("treatment", "BookCommunityAppointment"),
    ("treatment", "ArrangeGatePickup"),
    ("treatment", "RecordGatePickup"),
    ("treatment", "RecordTreatmentEngagement"),
    ("treatment", "RecordOverdoseTraining"),
    ("ambulance", "RecordParamedicNaloxoneTraining"),
    ("ambulance", "RecordAmbulanceWorkforce"),
    ("ambulance", "RecordOverdoseAttendance"),
    ("ambulance", "RecordAttendanceProtocol"),
    ("prison", "RecordHandover"),
    ("identity", "LinkPeople"),
    ("identity", "UnlinkPeople"),
];

pub fn person() -> Option<PersonRef> {
    Some(PersonRef {
        nhs_number: "943 476 5919".into(),
        prison_number: "A1234BC".into(),
        given_name: "Jolene".into(),
        family_name: "Featherstonehaugh".into(),
        date_of_birth: "1985-03-02".into(),
        ..Default::default()
    })
}

/// The common fields of a valid command.
macro_rules! common {
    ($t:ident, $id:expr, $p:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        $t {
            request_id: $id.to_string(),
            partnership_code: $p.to_string(),
            occurred_at: Some(now()),
            $($field: $value,)*
        }
    };
}

pub fn advice(id: &str, p: &str) -> RecordHarmReductionAdviceRequest {
    common!(RecordHarmReductionAdviceRequest, id, p, {
        custody_suite_code: "WYP01".into(), person: person(),
        topics: vec![AdviceTopic::OverdoseRisk as i32, AdviceTopic::Naloxone as i32], referred_to_treatment: true,
    })
}
pub fn officer_training(id: &str, p: &str) -> RecordOfficerOverdoseTrainingRequest {
    common!(RecordOfficerOverdoseTrainingRequest, id, p, { custody_suite_code: "WYP01".into(), staff_id: "PC 4471".into() })
}
pub fn custody_workforce(id: &str, p: &str) -> RecordCustodyWorkforceRequest {
    common!(RecordCustodyWorkforceRequest, id, p, { custody_suite_code: "WYP01".into(), custody_officer_headcount: 40 })
}
pub fn release_date(id: &str, p: &str) -> RecordReleaseDateRequest {
    common!(RecordReleaseDateRequest, id, p, { prison_code: "LEI".into(), person: person(), release_date: crate::london_day(7) })
}
pub fn cancel(id: &str, p: &str) -> CancelReleaseRequest {
    common!(CancelReleaseRequest, id, p, { prison_code: "LEI".into(), person: person() })
}
pub fn flag(id: &str, p: &str) -> FlagImminentReleaseRequest {
    common!(FlagImminentReleaseRequest, id, p, { prison_code: "LEI".into(), person: person(), note: "early release".into() })
}
pub fn consent(id: &str, p: &str) -> RecordConsentRequest {
    common!(RecordConsentRequest, id, p, { person: person(), purpose: ConsentPurpose::GatePickup as i32, given: true })
}
pub fn triage(id: &str, p: &str) -> RecordPreReleaseTriageRequest {
    common!(RecordPreReleaseTriageRequest, id, p, { prison_code: "LEI".into(), person: person() })
}
pub fn naloxone_on_release(id: &str, p: &str) -> RecordNaloxoneOnReleaseRequest {
    common!(RecordNaloxoneOnReleaseRequest, id, p, { prison_code: "LEI".into(), person: person() })
}
pub fn release(id: &str, p: &str) -> RecordReleaseRequest {
    common!(RecordReleaseRequest, id, p, { prison_code: "LEI".into(), person: person() })
}
pub fn needle_exchange(id: &str, p: &str) -> RecordNeedleExchangeRequest {
    common!(RecordNeedleExchangeRequest, id, p, { pharmacy_code: "FW844".into(), client_code: "JF02031985F".into(), packs_given: 3, returns: 2 })
}
pub fn pharmacy_referral(id: &str, p: &str) -> hub_proto::pharmacy::RecordReferralRequest {
    use hub_proto::pharmacy::RecordReferralRequest;
    common!(RecordReferralRequest, id, p, { pharmacy_code: "FW844".into(), person: person(), reason: "asked for help".into() })
}
pub fn staff_training(id: &str, p: &str) -> RecordStaffTrainingRequest {
    common!(RecordStaffTrainingRequest, id, p, { pharmacy_code: "FW844".into(), staff_id: "S-9".into(), accreditation: "Naloxone supply".into() })
}
pub fn naloxone_supply(id: &str, p: &str) -> RecordNaloxoneSupplyRequest {
    common!(RecordNaloxoneSupplyRequest, id, p, { pharmacy_code: "FW844".into(), person: person(), kits: 2 })
}
pub fn treatment_referral(id: &str, p: &str) -> hub_proto::treatment::RecordReferralRequest {
    use hub_proto::treatment::RecordReferralRequest;
    common!(RecordReferralRequest, id, p, {
        service_code: "TRT01".into(), person: person(), source_agency: "prison".into(), reason: "leaving prison".into(),
    })
}
pub fn appointment(id: &str, p: &str) -> BookCommunityAppointmentRequest {
    let at = prost_types::Timestamp {
        seconds: now().seconds + 8 * 86_400,
        nanos: 0,
    };
    common!(BookCommunityAppointmentRequest, id, p, { service_code: "TRT01".into(), person: person(), appointment_at: Some(at) })
}
pub fn arrange_pickup(id: &str, p: &str) -> ArrangeGatePickupRequest {
    common!(ArrangeGatePickupRequest, id, p, { person: person(), worker_id: "dip-7".into() })
}
pub fn gate_pickup(id: &str, p: &str) -> RecordGatePickupRequest {
    common!(RecordGatePickupRequest, id, p, { person: person(), met: true, accompanied_to_service: true })
}
pub fn engagement(id: &str, p: &str) -> RecordTreatmentEngagementRequest {
    common!(RecordTreatmentEngagementRequest, id, p, { service_code: "TRT01".into(), person: person() })
}
pub fn overdose_training(id: &str, p: &str) -> RecordOverdoseTrainingRequest {
    common!(RecordOverdoseTrainingRequest, id, p, {
        service_code: "TRT01".into(), person: person(), audience: TrainingAudience::Carer as i32, naloxone_kit_supplied: true,
    })
}
pub fn paramedic_training(id: &str, p: &str) -> RecordParamedicNaloxoneTrainingRequest {
    common!(RecordParamedicNaloxoneTrainingRequest, id, p, { trust_code: "RX8".into(), staff_id: "P-12".into() })
}
pub fn ambulance_workforce(id: &str, p: &str) -> RecordAmbulanceWorkforceRequest {
    common!(RecordAmbulanceWorkforceRequest, id, p, { trust_code: "RX8".into(), paramedic_headcount: 120 })
}
pub fn attendance(id: &str, p: &str) -> RecordOverdoseAttendanceRequest {
    common!(RecordOverdoseAttendanceRequest, id, p, {
        trust_code: "RX8".into(), person: person(), naloxone_administered: true, police_attended: false, conveyed_to_hospital: true,
    })
}
pub fn protocol(id: &str, p: &str) -> RecordAttendanceProtocolRequest {
    common!(RecordAttendanceProtocolRequest, id, p, { trust_code: "RX8".into(), police_force_code: "WYP".into(), in_force: true })
}

pub fn handover(id: &str, p: &str) -> RecordHandoverRequest {
    let to = if p == "leeds" { "bradford" } else { "leeds" };
    common!(RecordHandoverRequest, id, p, { prison_code: "LEI".into(), person: person(), to_partnership_code: to.into() })
}
/// The client code the needle exchange above records, as a ref.
pub fn client_code_ref() -> Option<PersonRef> {
    Some(PersonRef {
        client_code: "JF02031985F".into(),
        ..Default::default()
    })
}
pub fn link(id: &str, p: &str) -> LinkPeopleRequest {
    common!(LinkPeopleRequest, id, p, {
        person_a: person(), person_b: client_code_ref(), reason: "same person on the needle exchange record".into(),
    })
}
pub fn unlink(id: &str, p: &str) -> UnlinkPeopleRequest {
    common!(UnlinkPeopleRequest, id, p, {
        person_a: person(), person_b: client_code_ref(), reason: "linked by mistake: another woman's code".into(),
    })
}

/// Sends a valid `agency`/`rpc` request as `token` for `partnership`.
pub async fn send(
    hub: &Hub,
    agency: &str,
    rpc: &str,
    token: &str,
    p: &str,
    id: &str,
) -> Result<EventAck, Status> {
    macro_rules! go {
        ($client:ident, $process:ident, $method:ident, $build:ident) => {
            $client::new(Hub::channel(&hub.$process).await)
                .$method(authed($build(id, p), token))
                .await
                .map(|r| r.into_inner())
        };
    }
    match (agency, rpc) {
        ("custody", "RecordHarmReductionAdvice") => {
            go!(Custody, custody, record_harm_reduction_advice, advice)
        }
        ("custody", "RecordOfficerOverdoseTraining") => go!(
            Custody,
            custody,
            record_officer_overdose_training,
            officer_training
        ),
        ("custody", "RecordCustodyWorkforce") => go!(
            Custody,
            custody,
            record_custody_workforce,
            custody_workforce
        ),
        ("prison", "RecordReleaseDate") => go!(Prison, prison, record_release_date, release_date),
        ("prison", "CancelRelease") => go!(Prison, prison, cancel_release, cancel),
        ("prison", "FlagImminentRelease") => go!(Prison, prison, flag_imminent_release, flag),
        ("prison", "RecordConsent") => go!(Prison, prison, record_consent, consent),
        ("prison", "RecordPreReleaseTriage") => {
            go!(Prison, prison, record_pre_release_triage, triage)
        }
        ("prison", "RecordNaloxoneOnRelease") => go!(
            Prison,
            prison,
            record_naloxone_on_release,
            naloxone_on_release
        ),
        ("prison", "RecordRelease") => go!(Prison, prison, record_release, release),
        ("pharmacy", "RecordNeedleExchange") => {
            go!(Pharmacy, pharmacy, record_needle_exchange, needle_exchange)
        }
        ("pharmacy", "RecordReferral") => {
            go!(Pharmacy, pharmacy, record_referral, pharmacy_referral)
        }
        ("pharmacy", "RecordStaffTraining") => {
            go!(Pharmacy, pharmacy, record_staff_training, staff_training)
        }
        ("pharmacy", "RecordNaloxoneSupply") => {
            go!(Pharmacy, pharmacy, record_naloxone_supply, naloxone_supply)
        }
        ("treatment", "RecordReferral") => {
            go!(Treatment, treatment, record_referral, treatment_referral)
        }
        ("treatment", "BookCommunityAppointment") => go!(
            Treatment,
            treatment,
            book_community_appointment,
            appointment
        ),
        ("treatment", "ArrangeGatePickup") => {
            go!(Treatment, treatment, arrange_gate_pickup, arrange_pickup)
        }
        ("treatment", "RecordGatePickup") => {
            go!(Treatment, treatment, record_gate_pickup, gate_pickup)
        }
        ("treatment", "RecordTreatmentEngagement") => go!(
            Treatment,
            treatment,
            record_treatment_engagement,
            engagement
        ),
        ("treatment", "RecordOverdoseTraining") => go!(
            Treatment,
            treatment,
            record_overdose_training,
            overdose_training
        ),
        ("ambulance", "RecordParamedicNaloxoneTraining") => go!(
            Ambulance,
            ambulance,
            record_paramedic_naloxone_training,
            paramedic_training
        ),
        ("ambulance", "RecordAmbulanceWorkforce") => go!(
            Ambulance,
            ambulance,
            record_ambulance_workforce,
            ambulance_workforce
        ),
        ("ambulance", "RecordOverdoseAttendance") => {
            go!(Ambulance, ambulance, record_overdose_attendance, attendance)
        }
        ("ambulance", "RecordAttendanceProtocol") => {
            go!(Ambulance, ambulance, record_attendance_protocol, protocol)
        }
        ("prison", "RecordHandover") => go!(Prison, prison, record_handover, handover),
        ("identity", "LinkPeople") => go!(Identity, identity, link_people, link),
        ("identity", "UnlinkPeople") => go!(Identity, identity, unlink_people, unlink),
        other => panic!("no such RPC {other:?}"),
    }
}
