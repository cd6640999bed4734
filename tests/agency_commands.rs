//! Every command RPC of the five agency services, from outside: who may
//! call what, every field rule with the field it names, and what callers
//! see while NATS is away.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use hub_proto::{
    ambulance::ambulance_service_client::AmbulanceServiceClient,
    common::{EventAck, PersonRef},
    custody::custody_service_client::CustodyServiceClient,
    events::Event,
    pharmacy::pharmacy_service_client::PharmacyServiceClient,
    prison::prison_service_client::PrisonServiceClient,
    treatment::treatment_service_client::TreatmentServiceClient,
};
use hub_tests::{commands::*, *};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const ROLES: [(&str, &str); 9] = [
    ("dev-custody-officer-token", "custody_officer"),
    ("dev-prison-officer-token", "prison_officer"),
    ("dev-carat-worker-token", "carat_worker"),
    ("dev-dip-worker-token", "dip_worker"),
    ("dev-treatment-worker-token", "treatment_worker"),
    ("dev-pharmacist-token", "pharmacist"),
    ("dev-paramedic-token", "paramedic"),
    ("dev-analyst-token", "partnership_analyst"),
    ("dev-hub-admin-token", "admin"),
];

/// The contract's section 4, written out independently of the code.
fn allowed(role: &str, agency: &str, rpc: &str) -> bool {
    match role {
        "custody_officer" => agency == "custody",
        "prison_officer" => agency == "prison" && rpc != "FlagImminentRelease",
        "carat_worker" => agency == "prison",
        "dip_worker" => {
            (agency == "treatment"
                && ["ArrangeGatePickup", "RecordGatePickup", "RecordReferral"].contains(&rpc))
                || (agency == "prison" && rpc == "FlagImminentRelease")
        }
        "treatment_worker" => agency == "treatment",
        "pharmacist" => agency == "pharmacy",
        "paramedic" => agency == "ambulance",
        "partnership_analyst" => false,
        "admin" => true,
        other => panic!("unknown role {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_against_every_rpc() {
    let hub = Hub::start().unwrap();
    let mut recorded = 0;
    for (token, role) in ROLES {
        for (agency, rpc) in RPCS {
            let result = send(&hub, agency, rpc, token, "bradford", &request_id("matrix")).await;
            if allowed(role, agency, rpc) {
                let ack =
                    result.unwrap_or_else(|e| panic!("{role} may call {agency}.{rpc}: {e:?}"));
                assert!(!ack.duplicate);
                recorded += 1;
            } else {
                let err = result.expect_err(&format!("{role} may not call {agency}.{rpc}"));
                assert_eq!(
                    err.code(),
                    Code::PermissionDenied,
                    "{role} {agency}.{rpc}: {err:?}"
                );
            }
        }
    }
    assert_eq!(
        hub.stream_messages().await,
        recorded,
        "one event per allowed call, none for refused ones"
    );

    // A partnership outside the token's list: refused for every RPC the role
    // may otherwise call (admin's list is "*").
    for (token, role) in ROLES {
        for (agency, rpc) in RPCS.iter().filter(|(a, r)| allowed(role, a, r)) {
            let result = send(&hub, agency, rpc, token, "kirklees", &request_id("scope")).await;
            if role == "admin" {
                result.unwrap();
                recorded += 1;
            } else {
                let err = result.expect_err(&format!("{role} is not allowed kirklees"));
                assert_eq!(err.code(), Code::PermissionDenied, "{role} {agency}.{rpc}");
                assert!(err.message().contains("partnership"), "{}", err.message());
            }
        }
    }
    assert_eq!(hub.stream_messages().await, recorded);
}

type Reply = Pin<Box<dyn Future<Output = Result<EventAck, Status>> + Send>>;
type Case<R> = (&'static str, Box<dyn Fn(&mut R)>);

/// Sends each broken variant of `valid`: `INVALID_ARGUMENT` naming the
/// field (message and BadRequest details), nothing recorded. Then the valid
/// request itself is recorded.
async fn check_rules<R: Clone>(
    hub: &Hub,
    rpc: &str,
    valid: R,
    call: impl Fn(R) -> Reply,
    cases: Vec<Case<R>>,
) {
    let before = hub.stream_messages().await;
    for (field, break_it) in cases {
        let mut r = valid.clone();
        break_it(&mut r);
        let err = call(r)
            .await
            .expect_err(&format!("{rpc}: breaking {field} must be refused"));
        assert_eq!(err.code(), Code::InvalidArgument, "{rpc} {field}: {err:?}");
        assert!(
            err.message().contains(field),
            "{rpc} {field}: {}",
            err.message()
        );
        let details = err.get_details_bad_request().expect("BadRequest details");
        assert!(
            details.field_violations.iter().any(|v| v.field == field),
            "{rpc} {field}: {details:?}"
        );
        assert_eq!(
            hub.stream_messages().await,
            before,
            "{rpc} {field}: nothing recorded"
        );
    }
    call(valid)
        .await
        .unwrap_or_else(|e| panic!("{rpc}: the valid request: {e:?}"));
    assert_eq!(
        hub.stream_messages().await,
        before + 1,
        "{rpc}: the valid request is recorded once"
    );
}

/// Cases every command shares.
macro_rules! common_cases {
    ($($extra:expr),* $(,)?) => {
        vec![
            ("request_id", Box::new(|r: &mut _| set_request_id(r, "has space")) as Box<dyn Fn(&mut _)>),
            ("partnership_code", Box::new(|r: &mut _| set_partnership(r, "atlantis"))),
            ("occurred_at", Box::new(|r: &mut _| set_occurred_at(r, None))),
            ("occurred_at", Box::new(|r: &mut _| set_occurred_at(r, Some(now().seconds + 3600)))),
            $($extra,)*
        ]
    };
}

/// Typed access to the common fields through a tiny trait.
trait Common {
    fn common(
        &mut self,
    ) -> (
        &mut String,
        &mut String,
        &mut Option<prost_types::Timestamp>,
    );
}
macro_rules! impl_common {
    ($($t:ty),*) => {$(
        impl Common for $t {
            fn common(&mut self) -> (&mut String, &mut String, &mut Option<prost_types::Timestamp>) {
                (&mut self.request_id, &mut self.partnership_code, &mut self.occurred_at)
            }
        }
    )*};
}
impl_common!(
    hub_proto::custody::RecordHarmReductionAdviceRequest,
    hub_proto::custody::RecordOfficerOverdoseTrainingRequest,
    hub_proto::custody::RecordCustodyWorkforceRequest,
    hub_proto::prison::RecordReleaseDateRequest,
    hub_proto::prison::CancelReleaseRequest,
    hub_proto::prison::FlagImminentReleaseRequest,
    hub_proto::prison::RecordConsentRequest,
    hub_proto::prison::RecordPreReleaseTriageRequest,
    hub_proto::prison::RecordNaloxoneOnReleaseRequest,
    hub_proto::prison::RecordReleaseRequest,
    hub_proto::pharmacy::RecordNeedleExchangeRequest,
    hub_proto::pharmacy::RecordReferralRequest,
    hub_proto::pharmacy::RecordStaffTrainingRequest,
    hub_proto::pharmacy::RecordNaloxoneSupplyRequest,
    hub_proto::treatment::RecordReferralRequest,
    hub_proto::treatment::BookCommunityAppointmentRequest,
    hub_proto::treatment::ArrangeGatePickupRequest,
    hub_proto::treatment::RecordGatePickupRequest,
    hub_proto::treatment::RecordTreatmentEngagementRequest,
    hub_proto::treatment::RecordOverdoseTrainingRequest,
    hub_proto::ambulance::RecordParamedicNaloxoneTrainingRequest,
    hub_proto::ambulance::RecordAmbulanceWorkforceRequest,
    hub_proto::ambulance::RecordOverdoseAttendanceRequest,
    hub_proto::ambulance::RecordAttendanceProtocolRequest
);
fn set_request_id<R: Common>(r: &mut R, v: &str) {
    *r.common().0 = v.into();
}
fn set_partnership<R: Common>(r: &mut R, v: &str) {
    *r.common().1 = v.into();
}
fn set_occurred_at<R: Common>(r: &mut R, seconds: Option<i64>) {
    *r.common().2 = seconds.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 });
}

fn bad_nhs() -> Option<PersonRef> {
    Some(PersonRef {
        nhs_number: "9434765918".into(),
        ..Default::default()
    })
}

fn no_identifier() -> Option<PersonRef> {
    Some(PersonRef {
        given_name: "Ann".into(),
        ..Default::default()
    })
}

/// A call of `$method` on a client of `$process`, as admin.
macro_rules! caller {
    ($hub:expr, $client:ident, $process:ident, $method:ident) => {{
        let channel = Hub::channel(&$hub.$process).await;
        move |r| -> Reply {
            let mut client = $client::new(channel.clone());
            Box::pin(async move {
                client
                    .$method(authed(r, ADMIN))
                    .await
                    .map(|r| r.into_inner())
            })
        }
    }};
}

#[tokio::test(flavor = "multi_thread")]
async fn custody_rules() {
    let hub = Hub::start().unwrap();
    check_rules(
        &hub,
        "RecordHarmReductionAdvice",
        advice(&request_id("rule"), "bradford"),
        caller!(
            hub,
            CustodyServiceClient,
            custody,
            record_harm_reduction_advice
        ),
        common_cases![
            (
                "custody_suite_code",
                Box::new(
                    |r: &mut hub_proto::custody::RecordHarmReductionAdviceRequest| r
                        .custody_suite_code =
                        "wyp".into()
                )
            ),
            (
                "person",
                Box::new(
                    |r: &mut hub_proto::custody::RecordHarmReductionAdviceRequest| r.person = None
                )
            ),
            (
                "person.nhs_number",
                Box::new(
                    |r: &mut hub_proto::custody::RecordHarmReductionAdviceRequest| r.person =
                        bad_nhs()
                )
            ),
            (
                "topics",
                Box::new(
                    |r: &mut hub_proto::custody::RecordHarmReductionAdviceRequest| r.topics.clear()
                )
            ),
            (
                "topics",
                Box::new(
                    |r: &mut hub_proto::custody::RecordHarmReductionAdviceRequest| r.topics =
                        vec![0]
                )
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordOfficerOverdoseTraining",
        officer_training(&request_id("rule"), "bradford"),
        caller!(
            hub,
            CustodyServiceClient,
            custody,
            record_officer_overdose_training
        ),
        common_cases![
            (
                "custody_suite_code",
                Box::new(
                    |r: &mut hub_proto::custody::RecordOfficerOverdoseTrainingRequest| r
                        .custody_suite_code =
                        "X".into()
                )
            ),
            (
                "staff_id",
                Box::new(
                    |r: &mut hub_proto::custody::RecordOfficerOverdoseTrainingRequest| r.staff_id =
                        String::new()
                )
            ),
            (
                "staff_id",
                Box::new(
                    |r: &mut hub_proto::custody::RecordOfficerOverdoseTrainingRequest| r.staff_id =
                        "a\tb".into()
                )
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordCustodyWorkforce",
        custody_workforce(&request_id("rule"), "bradford"),
        caller!(hub, CustodyServiceClient, custody, record_custody_workforce),
        common_cases![
            (
                "custody_suite_code",
                Box::new(
                    |r: &mut hub_proto::custody::RecordCustodyWorkforceRequest| r
                        .custody_suite_code =
                        String::new()
                )
            ),
            (
                "custody_officer_headcount",
                Box::new(
                    |r: &mut hub_proto::custody::RecordCustodyWorkforceRequest| r
                        .custody_officer_headcount =
                        10_001
                )
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prison_rules() {
    use hub_proto::prison::*;
    let hub = Hub::start().unwrap();
    check_rules(
        &hub,
        "RecordReleaseDate",
        release_date(&request_id("rule"), "bradford"),
        caller!(hub, PrisonServiceClient, prison, record_release_date),
        common_cases![
            (
                "prison_code",
                Box::new(|r: &mut RecordReleaseDateRequest| r.prison_code = "Leeds".into())
            ),
            (
                "person",
                Box::new(|r: &mut RecordReleaseDateRequest| r.person = no_identifier())
            ),
            (
                "person.nhs_number",
                Box::new(|r: &mut RecordReleaseDateRequest| r.person = bad_nhs())
            ),
            (
                "release_date",
                Box::new(|r: &mut RecordReleaseDateRequest| r.release_date = "2027-02-29".into())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "CancelRelease",
        cancel(&request_id("rule"), "bradford"),
        caller!(hub, PrisonServiceClient, prison, cancel_release),
        common_cases![
            (
                "prison_code",
                Box::new(|r: &mut CancelReleaseRequest| r.prison_code = String::new())
            ),
            (
                "person",
                Box::new(|r: &mut CancelReleaseRequest| r.person = None)
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "FlagImminentRelease",
        flag(&request_id("rule"), "bradford"),
        caller!(hub, PrisonServiceClient, prison, flag_imminent_release),
        common_cases![
            (
                "prison_code",
                Box::new(|r: &mut FlagImminentReleaseRequest| r.prison_code = "L".into())
            ),
            (
                "person.prison_number",
                Box::new(|r: &mut FlagImminentReleaseRequest| r
                    .person
                    .as_mut()
                    .unwrap()
                    .prison_number = "A12BC".into())
            ),
            (
                "note",
                Box::new(|r: &mut FlagImminentReleaseRequest| r.note = "n".repeat(257))
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordConsent",
        consent(&request_id("rule"), "bradford"),
        caller!(hub, PrisonServiceClient, prison, record_consent),
        common_cases![
            (
                "person",
                Box::new(|r: &mut RecordConsentRequest| r.person = None)
            ),
            (
                "purpose",
                Box::new(|r: &mut RecordConsentRequest| r.purpose = 0)
            ),
            (
                "purpose",
                Box::new(|r: &mut RecordConsentRequest| r.purpose = 9)
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordPreReleaseTriage",
        triage(&request_id("rule"), "bradford"),
        caller!(hub, PrisonServiceClient, prison, record_pre_release_triage),
        common_cases![
            (
                "prison_code",
                Box::new(|r: &mut RecordPreReleaseTriageRequest| r.prison_code = "lei".into())
            ),
            (
                "person.date_of_birth",
                Box::new(|r: &mut RecordPreReleaseTriageRequest| r
                    .person
                    .as_mut()
                    .unwrap()
                    .date_of_birth =
                    "1985-13-02".into())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordNaloxoneOnRelease",
        naloxone_on_release(&request_id("rule"), "bradford"),
        caller!(hub, PrisonServiceClient, prison, record_naloxone_on_release),
        common_cases![
            (
                "prison_code",
                Box::new(|r: &mut RecordNaloxoneOnReleaseRequest| r.prison_code = "LE I".into())
            ),
            (
                "person.client_code",
                Box::new(|r: &mut RecordNaloxoneOnReleaseRequest| r
                    .person
                    .as_mut()
                    .unwrap()
                    .client_code =
                    "XX31041990M".into())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordRelease",
        release(&request_id("rule"), "bradford"),
        caller!(hub, PrisonServiceClient, prison, record_release),
        common_cases![
            (
                "prison_code",
                Box::new(|r: &mut RecordReleaseRequest| r.prison_code = "ABCDEFGHIJKLM".into())
            ),
            (
                "person.given_name",
                Box::new(
                    |r: &mut RecordReleaseRequest| r.person.as_mut().unwrap().given_name =
                        "a\u{0}b".into()
                )
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pharmacy_rules() {
    use hub_proto::pharmacy::*;
    let hub = Hub::start().unwrap();
    check_rules(
        &hub,
        "RecordNeedleExchange",
        needle_exchange(&request_id("rule"), "bradford"),
        caller!(hub, PharmacyServiceClient, pharmacy, record_needle_exchange),
        common_cases![
            (
                "pharmacy_code",
                Box::new(|r: &mut RecordNeedleExchangeRequest| r.pharmacy_code = "fw844".into())
            ),
            (
                "client_code",
                Box::new(|r: &mut RecordNeedleExchangeRequest| r.client_code = String::new())
            ),
            (
                "client_code",
                Box::new(|r: &mut RecordNeedleExchangeRequest| r.client_code = "JF30021985F".into())
            ),
            (
                "packs_given",
                Box::new(|r: &mut RecordNeedleExchangeRequest| r.packs_given = 10_001)
            ),
            (
                "returns",
                Box::new(|r: &mut RecordNeedleExchangeRequest| r.returns = 99_999)
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordReferral",
        pharmacy_referral(&request_id("rule"), "bradford"),
        caller!(hub, PharmacyServiceClient, pharmacy, record_referral),
        common_cases![
            (
                "pharmacy_code",
                Box::new(|r: &mut RecordReferralRequest| r.pharmacy_code = String::new())
            ),
            (
                "person",
                Box::new(|r: &mut RecordReferralRequest| r.person = None)
            ),
            (
                "reason",
                Box::new(|r: &mut RecordReferralRequest| r.reason = String::new())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordStaffTraining",
        staff_training(&request_id("rule"), "bradford"),
        caller!(hub, PharmacyServiceClient, pharmacy, record_staff_training),
        common_cases![
            (
                "pharmacy_code",
                Box::new(|r: &mut RecordStaffTrainingRequest| r.pharmacy_code = "F".into())
            ),
            (
                "staff_id",
                Box::new(|r: &mut RecordStaffTrainingRequest| r.staff_id = String::new())
            ),
            (
                "accreditation",
                Box::new(|r: &mut RecordStaffTrainingRequest| r.accreditation = "x".repeat(300))
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordNaloxoneSupply",
        naloxone_supply(&request_id("rule"), "bradford"),
        caller!(hub, PharmacyServiceClient, pharmacy, record_naloxone_supply),
        common_cases![
            (
                "pharmacy_code",
                Box::new(|r: &mut RecordNaloxoneSupplyRequest| r.pharmacy_code = "FW 844".into())
            ),
            (
                "person.nhs_number",
                Box::new(|r: &mut RecordNaloxoneSupplyRequest| r.person = bad_nhs())
            ),
            (
                "kits",
                Box::new(|r: &mut RecordNaloxoneSupplyRequest| r.kits = 0)
            ),
            (
                "kits",
                Box::new(|r: &mut RecordNaloxoneSupplyRequest| r.kits = 10_001)
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn treatment_rules() {
    use hub_proto::treatment::*;
    let hub = Hub::start().unwrap();
    check_rules(
        &hub,
        "RecordReferral",
        treatment_referral(&request_id("rule"), "bradford"),
        caller!(hub, TreatmentServiceClient, treatment, record_referral),
        common_cases![
            (
                "service_code",
                Box::new(|r: &mut RecordReferralRequest| r.service_code = "t1".into())
            ),
            (
                "person",
                Box::new(|r: &mut RecordReferralRequest| r.person = None)
            ),
            (
                "source_agency",
                Box::new(|r: &mut RecordReferralRequest| r.source_agency = "church".into())
            ),
            (
                "reason",
                Box::new(|r: &mut RecordReferralRequest| r.reason = " ".into())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "BookCommunityAppointment",
        appointment(&request_id("rule"), "bradford"),
        caller!(
            hub,
            TreatmentServiceClient,
            treatment,
            book_community_appointment
        ),
        common_cases![
            (
                "service_code",
                Box::new(|r: &mut BookCommunityAppointmentRequest| r.service_code = String::new())
            ),
            (
                "person.nhs_number",
                Box::new(|r: &mut BookCommunityAppointmentRequest| r.person = bad_nhs())
            ),
            (
                "appointment_at",
                Box::new(|r: &mut BookCommunityAppointmentRequest| r.appointment_at = None)
            ),
            (
                "appointment_at",
                Box::new(|r: &mut BookCommunityAppointmentRequest| r.appointment_at =
                    Some(prost_types::Timestamp {
                        seconds: now().seconds + 400 * 86_400,
                        nanos: 0
                    }))
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "ArrangeGatePickup",
        arrange_pickup(&request_id("rule"), "bradford"),
        caller!(hub, TreatmentServiceClient, treatment, arrange_gate_pickup),
        common_cases![
            (
                "person",
                Box::new(|r: &mut ArrangeGatePickupRequest| r.person = None)
            ),
            (
                "worker_id",
                Box::new(|r: &mut ArrangeGatePickupRequest| r.worker_id = String::new())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordGatePickup",
        gate_pickup(&request_id("rule"), "bradford"),
        caller!(hub, TreatmentServiceClient, treatment, record_gate_pickup),
        common_cases![
            (
                "person",
                Box::new(|r: &mut RecordGatePickupRequest| r.person = None)
            ),
            (
                "accompanied_to_service",
                Box::new(|r: &mut RecordGatePickupRequest| r.met = false)
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordTreatmentEngagement",
        engagement(&request_id("rule"), "bradford"),
        caller!(
            hub,
            TreatmentServiceClient,
            treatment,
            record_treatment_engagement
        ),
        common_cases![
            (
                "service_code",
                Box::new(
                    |r: &mut RecordTreatmentEngagementRequest| r.service_code = "TRT-01".into()
                )
            ),
            (
                "person",
                Box::new(|r: &mut RecordTreatmentEngagementRequest| r.person = no_identifier())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordOverdoseTraining",
        overdose_training(&request_id("rule"), "bradford"),
        caller!(
            hub,
            TreatmentServiceClient,
            treatment,
            record_overdose_training
        ),
        common_cases![
            (
                "service_code",
                Box::new(|r: &mut RecordOverdoseTrainingRequest| r.service_code = String::new())
            ),
            (
                "person",
                Box::new(|r: &mut RecordOverdoseTrainingRequest| r.person = None)
            ),
            (
                "audience",
                Box::new(|r: &mut RecordOverdoseTrainingRequest| r.audience = 0)
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ambulance_rules() {
    use hub_proto::ambulance::*;
    let hub = Hub::start().unwrap();
    check_rules(
        &hub,
        "RecordParamedicNaloxoneTraining",
        paramedic_training(&request_id("rule"), "bradford"),
        caller!(
            hub,
            AmbulanceServiceClient,
            ambulance,
            record_paramedic_naloxone_training
        ),
        common_cases![
            (
                "trust_code",
                Box::new(
                    |r: &mut RecordParamedicNaloxoneTrainingRequest| r.trust_code = "rx8".into()
                )
            ),
            (
                "staff_id",
                Box::new(
                    |r: &mut RecordParamedicNaloxoneTrainingRequest| r.staff_id = String::new()
                )
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordAmbulanceWorkforce",
        ambulance_workforce(&request_id("rule"), "bradford"),
        caller!(
            hub,
            AmbulanceServiceClient,
            ambulance,
            record_ambulance_workforce
        ),
        common_cases![
            (
                "trust_code",
                Box::new(|r: &mut RecordAmbulanceWorkforceRequest| r.trust_code = String::new())
            ),
            (
                "paramedic_headcount",
                Box::new(|r: &mut RecordAmbulanceWorkforceRequest| r.paramedic_headcount = 10_001)
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordOverdoseAttendance",
        attendance(&request_id("rule"), "bradford"),
        caller!(
            hub,
            AmbulanceServiceClient,
            ambulance,
            record_overdose_attendance
        ),
        common_cases![
            (
                "trust_code",
                Box::new(|r: &mut RecordOverdoseAttendanceRequest| r.trust_code = "R".into())
            ),
            (
                "person",
                Box::new(|r: &mut RecordOverdoseAttendanceRequest| r.person = no_identifier())
            ),
            (
                "person.nhs_number",
                Box::new(|r: &mut RecordOverdoseAttendanceRequest| r.person = bad_nhs())
            ),
        ],
    )
    .await;
    check_rules(
        &hub,
        "RecordAttendanceProtocol",
        protocol(&request_id("rule"), "bradford"),
        caller!(
            hub,
            AmbulanceServiceClient,
            ambulance,
            record_attendance_protocol
        ),
        common_cases![
            (
                "trust_code",
                Box::new(|r: &mut RecordAttendanceProtocolRequest| r.trust_code = "R X8".into())
            ),
            (
                "police_force_code",
                Box::new(
                    |r: &mut RecordAttendanceProtocolRequest| r.police_force_code = String::new()
                )
            ),
        ],
    )
    .await;
    // The attendance may name nobody.
    let mut anonymous = attendance(&request_id("a"), "bradford");
    anonymous.person = None;
    let call = caller!(
        hub,
        AmbulanceServiceClient,
        ambulance,
        record_overdose_attendance
    );
    call(anonymous).await.unwrap();
}

/// How many events in the stream carry `request_id`.
async fn events_with(hub: &Hub, request_id: &str) -> usize {
    hub.all_messages()
        .await
        .iter()
        .filter(|m| Event::decode(m.payload.clone()).is_ok_and(|e| e.request_id == request_id))
        .count()
}

async fn health(hub: &Hub) -> i32 {
    health_of(&hub.custody, "hub.custody.v1.CustodyService").await
}

async fn wait_for_health(hub: &Hub, status: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(hub).await != status {
        assert!(Instant::now() < deadline, "health never became {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records one command, so that the services are connected and warm.
async fn record_one(hub: &Hub) {
    send(
        hub,
        "custody",
        "RecordCustodyWorkforce",
        ADMIN,
        "bradford",
        &request_id("warm"),
    )
    .await
    .unwrap();
}

/// A custody officer's client that retries one harm-reduction advice, the
/// very same request each time.
struct Retrying {
    channel: tonic::transport::Channel,
    request: hub_proto::custody::RecordHarmReductionAdviceRequest,
}

impl Retrying {
    async fn new(hub: &Hub, request_id: &str) -> Self {
        Self {
            channel: Hub::channel(&hub.custody).await,
            request: advice(request_id, "bradford"),
        }
    }

    async fn send(&self) -> Result<EventAck, Status> {
        CustodyServiceClient::new(self.channel.clone())
            .record_harm_reduction_advice(authed(self.request.clone(), ADMIN))
            .await
            .map(|r| r.into_inner())
    }

    /// Sends until acknowledged, retrying on UNAVAILABLE for at most `within`.
    async fn until_recorded(&self, within: Duration) -> EventAck {
        let deadline = Instant::now() + within;
        loop {
            match self.send().await {
                Ok(ack) => return ack,
                Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                Err(e) => panic!("retry failed: {e:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nats_down_callers_get_unavailable_and_a_retry_lands_once() {
    let mut hub = Hub::start().unwrap();
    record_one(&hub).await;
    wait_for_health(&hub, 1).await;

    hub.nats.kill();
    let id = request_id("outage");
    // A client's retry sends the very same request.
    let client = Retrying::new(&hub, &id).await;
    let started = Instant::now();
    let err = client.send().await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // The contract's bound is 5 s; allow for a slow machine, never a hang.
    assert!(
        waited < Duration::from_secs(8),
        "UNAVAILABLE after {waited:?}"
    );
    wait_for_health(&hub, 2).await; // NOT_SERVING

    hub.nats.restart().unwrap();
    // The client retries the same request until it is recorded.
    let ack = client.until_recorded(Duration::from_secs(60)).await;
    assert!(ack.stream_sequence >= 2);
    wait_for_health(&hub, 1).await;
    // One more retry: the first acknowledgement again, as a duplicate.
    let again = client.send().await.unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.event_id.as_str(), again.stream_sequence),
        (ack.event_id.as_str(), ack.stream_sequence)
    );
    assert_eq!(
        events_with(&hub, &id).await,
        1,
        "exactly one event for the request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nats_frozen_callers_get_unavailable_and_the_service_recovers_without_restart() {
    let hub = Hub::start().unwrap();
    record_one(&hub).await;
    let pid = hub.nats.pid().expect("nats-server runs").to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    // The server stops answering but keeps its connections (a hung host,
    // a long GC pause): nothing tells the service it is gone.
    signal("-STOP");
    let id = request_id("frozen");
    let client = Retrying::new(&hub, &id).await;
    let started = Instant::now();
    let err = client.send().await.unwrap_err();
    let waited = started.elapsed();
    signal("-CONT");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // The contract's bound is 5 s; allow for a slow machine, never a hang.
    assert!(
        waited < Duration::from_secs(8),
        "UNAVAILABLE after {waited:?}"
    );
    // The same process, the same request: recorded once, whether the
    // frozen attempt reached the stream after all or not.
    let ack = client.until_recorded(Duration::from_secs(30)).await;
    assert!(ack.stream_sequence >= 2);
    assert_eq!(
        events_with(&hub, &id).await,
        1,
        "exactly one event for the request"
    );
    wait_for_health(&hub, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_killed_twice_under_load_every_command_recorded_once_and_counted_once() {
    let mut hub = Hub::start().unwrap();
    // Four clients, 40 supplies each, every one retried until acknowledged.
    let clients = flood_naloxone_supplies(Hub::channel(&hub.pharmacy).await, "kill9", 4, 40);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        hub.nats.kill(); // SIGKILL
        tokio::time::sleep(Duration::from_millis(300)).await;
        hub.nats.restart().unwrap();
    }
    let (last, retries) = await_flood(clients, Instant::now(), "the second outage").await;
    // Retried after UNAVAILABLE, or held by the client until NATS was back.
    eprintln!("{retries} retries after UNAVAILABLE");
    // Exactly one event per request in the stream...
    let seen = events_per_request(&hub.all_messages().await, "kill9-");
    assert_eq!(seen.len(), 160, "every command recorded");
    assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    // ...and each counted once by the projection.
    let counts = bradford_training(Hub::channel(&hub.training).await, last)
        .await
        .unwrap();
    assert_eq!(counts.naloxone_kits_supplied, 160);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_serves_metrics_by_rpc_and_status() {
    let hub = Hub::start().unwrap();
    send(
        &hub,
        "custody",
        "RecordCustodyWorkforce",
        ADMIN,
        "bradford",
        &request_id("m"),
    )
    .await
    .unwrap();
    let err = send(
        &hub,
        "custody",
        "RecordCustodyWorkforce",
        PHARMACIST,
        "bradford",
        &request_id("m"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let text = hub.custody.scrape_metrics().unwrap();
    let line = |rpc: &str, code: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("hub_commands_total{")
                    && l.contains(&format!("rpc=\"{rpc}\""))
                    && l.contains(&format!("code=\"{code}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(
        line("RecordCustodyWorkforce", "OK").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        line("RecordCustodyWorkforce", "PERMISSION_DENIED").as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(
        text.contains("hub_publish_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("hub_nats_connected 1"), "{text}");
    for process in [&hub.prison, &hub.pharmacy, &hub.treatment, &hub.ambulance] {
        assert!(process
            .scrape_metrics()
            .unwrap()
            .contains("hub_nats_connected"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_request_ids_and_no_identifiers() {
    let json = |_: &str| vec![("HUB_LOG_FORMAT".to_string(), "json".to_string())];
    let hub = Hub::start_on(hub_testkit::NatsServer::start().unwrap(), json).unwrap();
    let accepted = request_id("log-ok");
    send(
        &hub,
        "prison",
        "RecordReleaseDate",
        CARAT,
        "bradford",
        &accepted,
    )
    .await
    .unwrap();
    let refused = request_id("log-refused");
    send(
        &hub,
        "prison",
        "RecordReleaseDate",
        PHARMACIST,
        "bradford",
        &refused,
    )
    .await
    .unwrap_err();
    let log = hub.prison.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let with_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no log line with request id {id}:\n{log}"))
            .clone()
    };
    let ok = with_id(&accepted);
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["fields"]["rpc"], "RecordReleaseDate", "{ok}");
    let no = with_id(&refused);
    assert!(
        no["fields"]["error"].as_str().unwrap().contains("may not"),
        "{no}"
    );
    // The request carried a name, NHS number and prison number: none is logged.
    let p = person().unwrap();
    for secret in [
        &p.nhs_number,
        &p.prison_number,
        &p.given_name,
        &p.family_name,
        &p.date_of_birth,
    ] {
        assert!(
            !log.contains(secret.as_str()),
            "{secret} in the log:\n{log}"
        );
    }
}

/// The stream is kept forever and never rewritten: a command first
/// recorded before decision record 0012 has its request digest and event
/// id in message headers, none in the event. A retry of it is still the
/// duplicate it is (its first event id and sequence), and its request id
/// reused for another body is still refused.
#[tokio::test]
async fn a_retry_of_a_command_recorded_with_the_old_headers_is_still_recognised() {
    use hub_core::{pseudonym::Pseudonymiser, secret::HubSecret};
    use hub_proto::rpc::PrisonRpc;
    let hub = Hub::start().unwrap();
    let id = request_id("old-form");
    let request = release_date(&id, "bradford");
    // What prison-service published for it before 0012, written straight
    // to the stream with the test's own secret.
    let secret = HubSecret::load(&hub.dir.path().join("hub.secret")).unwrap();
    let digest = Pseudonymiser::new(&secret).request_digest(
        &format!("prison/{}", PrisonRpc::RecordReleaseDate.name()),
        &request.encode_to_vec(),
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("LEI:{id}").as_str());
    headers.insert("Hub-Request-Digest", digest.as_str());
    headers.insert("Hub-Event-Id", "old-event-1");
    let event = Event {
        event_id: "old-event-1".into(),
        event_type: "release_date_recorded".into(),
        schema_version: 1,
        agency: "prison".into(),
        org_code: "LEI".into(),
        partnership_code: "bradford".into(),
        request_id: id.clone(),
        ..Default::default()
    };
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await.unwrap());
    let first = js
        .publish_with_headers(
            "hub.events.prison.bradford.release_date_recorded",
            headers,
            event.encode_to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let held = hub.stream_messages().await;
    let mut prison = hub.prison().await;
    let again = prison
        .record_release_date(authed(request, CARAT))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(
        (again.event_id.as_str(), again.stream_sequence),
        ("old-event-1", first.sequence)
    );
    let other = prison
        .record_release_date(authed(release_date(&id, "leeds"), CARAT))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    assert_eq!(hub.stream_messages().await, held, "nothing recorded again");
}
