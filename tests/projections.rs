//! The read side from outside: a multi-agency story checked against values
//! worked out by hand, projections killed during a flood, rebuilds, poison
//! messages and the live watch.

use std::time::Duration;

use hub_proto::{
    ambulance::{ambulance_service_client::AmbulanceServiceClient, *},
    common::{ConsentPurpose, PersonRef, TrainingAudience},
    custody::{custody_service_client::CustodyServiceClient, *},
    pharmacy::{pharmacy_service_client::PharmacyServiceClient, *},
    prison::{prison_service_client::PrisonServiceClient, *},
    projections::{
        pickup_list_service_client::PickupListServiceClient,
        projection_status_service_client::ProjectionStatusServiceClient,
        training_counts_service_client::TrainingCountsServiceClient, ConsentState,
        GetPickupSummaryRequest, GetProjectionStatusRequest, GetTrainingCountsRequest,
        ListPickupsRequest, PickupAlert, PickupEntry, PickupStatus, PickupSummary,
        RebuildProjectionRequest, TrainingCounts, WatchPickupsRequest,
    },
    treatment::{treatment_service_client::TreatmentServiceClient, *},
};
use hub_tests::*;
use jiff::Timestamp;

const CUSTODY: &str = "dev-custody-officer-token";
const TREATMENT: &str = "dev-treatment-worker-token";
const PARAMEDIC: &str = "dev-paramedic-token";

fn at(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let t: Timestamp = rfc3339.parse().unwrap();
    Some(prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    })
}

/// Noon UTC on `day` (GMT in March, so noon in London too).
fn on(day: &str) -> Option<prost_types::Timestamp> {
    at(&format!("{day}T12:00:00Z"))
}

/// Every client of the hub, and the last acknowledged sequence.
struct Clients {
    prison: PrisonServiceClient<tonic::transport::Channel>,
    treatment: TreatmentServiceClient<tonic::transport::Channel>,
    pharmacy: PharmacyServiceClient<tonic::transport::Channel>,
    custody: CustodyServiceClient<tonic::transport::Channel>,
    ambulance: AmbulanceServiceClient<tonic::transport::Channel>,
    pickups: PickupListServiceClient<tonic::transport::Channel>,
    training: TrainingCountsServiceClient<tonic::transport::Channel>,
    last: u64,
}

impl Clients {
    async fn new(hub: &Hub) -> Self {
        Self {
            prison: PrisonServiceClient::new(Hub::channel(&hub.prison).await),
            treatment: TreatmentServiceClient::new(Hub::channel(&hub.treatment).await),
            pharmacy: PharmacyServiceClient::new(Hub::channel(&hub.pharmacy).await),
            custody: CustodyServiceClient::new(Hub::channel(&hub.custody).await),
            ambulance: AmbulanceServiceClient::new(Hub::channel(&hub.ambulance).await),
            pickups: PickupListServiceClient::new(Hub::channel(&hub.pickup).await),
            training: TrainingCountsServiceClient::new(Hub::channel(&hub.training).await),
            last: 0,
        }
    }

    fn note(&mut self, ack: Result<tonic::Response<hub_proto::common::EventAck>, tonic::Status>) {
        let ack = ack.expect("recorded").into_inner();
        self.last = self.last.max(ack.stream_sequence);
    }

    async fn list(&mut self, partnership: &str, as_of: &str, token: &str) -> Vec<PickupEntry> {
        let r = ListPickupsRequest {
            partnership_code: partnership.into(),
            as_of_date: as_of.into(),
            horizon_days: None,
            min_sequence: self.last,
        };
        self.pickups
            .list_pickups(authed(r, token))
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    async fn summary(&mut self, as_of: &str, fy: &str, token: &str) -> PickupSummary {
        let r = GetPickupSummaryRequest {
            partnership_code: "bradford".into(),
            as_of_date: as_of.into(),
            financial_year: fy.into(),
            min_sequence: self.last,
        };
        self.pickups
            .get_pickup_summary(authed(r, token))
            .await
            .unwrap()
            .into_inner()
    }

    async fn counts(&mut self, fy: &str, token: &str) -> TrainingCounts {
        let r = GetTrainingCountsRequest {
            partnership_code: "bradford".into(),
            financial_year: fy.into(),
            min_sequence: self.last,
        };
        self.training
            .get_training_counts(authed(r, token))
            .await
            .unwrap()
            .into_inner()
    }
}

macro_rules! record {
    ($c:expr, $client:ident . $method:ident, $token:expr, $t:ident { $($f:ident: $v:expr),* $(,)? }) => {{
        #[allow(clippy::needless_update)]
        let mut request = $t { $($f: $v,)* ..Default::default() };
        request.request_id = request_id("story");
        if request.occurred_at.is_none() {
            request.occurred_at = on("2026-03-20");
        }
        if request.partnership_code.is_empty() {
            request.partnership_code = "bradford".into();
        }
        let ack = $c.$client.$method(authed(request, $token)).await;
        $c.note(ack);
    }};
}

/// The story, told by the agencies that live it. Dates are fixed in the
/// past and every read names its day, so the expected values hold on any
/// day the test runs.
async fn tell_the_story(c: &mut Clients) {
    let p1 = || PersonRef {
        nhs_number: "9434765919".into(),
        prison_number: "A1234BC".into(),
        given_name: "Jolene".into(),
        family_name: "Featherstonehaugh".into(),
        date_of_birth: "1985-03-02".into(),
        ..Default::default()
    };
    // P1: the whole checklist, by five agencies, by NHS number or prison number.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(p1()),
            release_date: "2026-03-30".into()
        }
    );
    record!(
        c,
        prison.record_consent,
        CARAT,
        RecordConsentRequest {
            person: Some(by_prison("A1234BC")),
            purpose: ConsentPurpose::GatePickup as i32,
            given: true
        }
    );
    record!(
        c,
        prison.record_pre_release_triage,
        PRISON_OFFICER,
        RecordPreReleaseTriageRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("A1234BC"))
        }
    );
    record!(
        c,
        prison.flag_imminent_release,
        DIP,
        FlagImminentReleaseRequest {
            prison_code: "LEI".into(),
            person: Some(by_nhs("9434765919")),
            note: "call his sister".into()
        }
    );
    record!(
        c,
        treatment.book_community_appointment,
        TREATMENT,
        BookCommunityAppointmentRequest {
            service_code: "TRT01".into(),
            person: Some(by_nhs("943 476 5919")),
            appointment_at: at("2026-03-31T10:00:00Z")
        }
    );
    record!(
        c,
        treatment.arrange_gate_pickup,
        DIP,
        ArrangeGatePickupRequest {
            person: Some(by_nhs("9434765919")),
            worker_id: "dip-7".into()
        }
    );
    record!(
        c,
        prison.record_naloxone_on_release,
        PRISON_OFFICER,
        RecordNaloxoneOnReleaseRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("A1234BC")),
            occurred_at: on("2026-03-24")
        }
    );
    record!(
        c,
        treatment.record_overdose_training,
        TREATMENT,
        RecordOverdoseTrainingRequest {
            service_code: "TRT01".into(),
            person: Some(by_nhs("9434765919")),
            audience: TrainingAudience::PrisonLeaver as i32,
            naloxone_kit_supplied: true
        }
    );
    // P2: nothing done.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("B2222BB")),
            release_date: "2026-03-27".into()
        }
    );
    // P3: a date change.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "WDI".into(),
            person: Some(by_prison("C3333CC")),
            release_date: "2026-04-20".into()
        }
    );
    record!(
        c,
        prison.record_release_date,
        PRISON_OFFICER,
        RecordReleaseDateRequest {
            prison_code: "WDI".into(),
            person: Some(by_prison("C3333CC")),
            release_date: "2026-04-03".into()
        }
    );
    // P4: cancelled.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("D4444DD")),
            release_date: "2026-03-28".into()
        }
    );
    record!(
        c,
        prison.cancel_release,
        CARAT,
        CancelReleaseRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("D4444DD"))
        }
    );
    // P5: released, no pick-up recorded.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("E5555EE")),
            release_date: "2026-03-20".into()
        }
    );
    record!(
        c,
        prison.record_release,
        PRISON_OFFICER,
        RecordReleaseRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("E5555EE")),
            occurred_at: on("2026-03-20")
        }
    );
    // P6: released, missed at the gate.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("F6666FF")),
            release_date: "2026-03-18".into()
        }
    );
    record!(
        c,
        prison.record_release,
        PRISON_OFFICER,
        RecordReleaseRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("F6666FF")),
            occurred_at: on("2026-03-18")
        }
    );
    record!(
        c,
        treatment.record_gate_pickup,
        DIP,
        RecordGatePickupRequest {
            person: Some(by_prison("F6666FF")),
            met: false,
            occurred_at: on("2026-03-18")
        }
    );
    // P7: met, taken to a service, engaged five days later.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("G7777GG")),
            release_date: "2026-03-10".into()
        }
    );
    record!(
        c,
        prison.record_release,
        PRISON_OFFICER,
        RecordReleaseRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("G7777GG")),
            occurred_at: on("2026-03-10")
        }
    );
    record!(
        c,
        treatment.record_gate_pickup,
        DIP,
        RecordGatePickupRequest {
            person: Some(by_prison("G7777GG")),
            met: true,
            accompanied_to_service: true,
            occurred_at: on("2026-03-10")
        }
    );
    record!(
        c,
        treatment.record_treatment_engagement,
        TREATMENT,
        RecordTreatmentEngagementRequest {
            service_code: "TRT01".into(),
            person: Some(by_prison("G7777GG")),
            occurred_at: on("2026-03-15")
        }
    );
    // P8: consent given, then withdrawn.
    let p8 = || PersonRef {
        prison_number: "H8888HH".into(),
        given_name: "Sam".into(),
        family_name: "Hollins".into(),
        ..Default::default()
    };
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(p8()),
            release_date: "2026-04-01".into()
        }
    );
    record!(
        c,
        prison.record_consent,
        CARAT,
        RecordConsentRequest {
            person: Some(by_prison("H8888HH")),
            purpose: ConsentPurpose::GatePickup as i32,
            given: true
        }
    );
    record!(
        c,
        prison.record_consent,
        CARAT,
        RecordConsentRequest {
            person: Some(by_prison("H8888HH")),
            purpose: ConsentPurpose::GatePickup as i32,
            given: false
        }
    );
    // P9: another partnership's release.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            partnership_code: "leeds".into(),
            prison_code: "LEI".into(),
            person: Some(by_prison("J9999JJ")),
            release_date: "2026-03-29".into()
        }
    );

    // Trainings across 1 April (BST starts 29 March 2026).
    let su_a = || PersonRef {
        client_code: "JS02031985M".into(),
        ..Default::default()
    };
    let training =
        |person: PersonRef, audience: TrainingAudience, kit: bool| (person, audience, kit);
    for (when, (person, audience, kit)) in [
        (
            "2026-03-31T22:30:00Z",
            training(su_a(), TrainingAudience::ServiceUser, false),
        ), // 23:30 BST 31 March: 2025-26
        (
            "2026-03-31T23:30:00Z",
            training(su_a(), TrainingAudience::ServiceUser, false),
        ), // 00:30 BST 1 April: 2026-27
        (
            "2026-04-05T10:00:00Z",
            training(by_nhs("4010232137"), TrainingAudience::ServiceUser, false),
        ),
        (
            "2026-05-05T10:00:00Z",
            training(by_nhs("4010232137"), TrainingAudience::ServiceUser, false),
        ), // a repeat
        (
            "2026-04-10T10:00:00Z",
            training(by_nhs("0830166130"), TrainingAudience::Carer, true),
        ),
    ] {
        record!(
            c,
            treatment.record_overdose_training,
            TREATMENT,
            RecordOverdoseTrainingRequest {
                service_code: "TRT01".into(),
                person: Some(person),
                audience: audience as i32,
                naloxone_kit_supplied: kit,
                occurred_at: at(when),
            }
        );
    }
    record!(
        c,
        custody.record_custody_workforce,
        CUSTODY,
        RecordCustodyWorkforceRequest {
            custody_suite_code: "WYP01".into(),
            custody_officer_headcount: 40,
            occurred_at: on("2026-04-02")
        }
    );
    for (staff, day) in [
        ("PC1", "2026-04-15"),
        ("PC2", "2026-05-01"),
        ("PC1", "2026-06-01"),
    ] {
        record!(
            c,
            custody.record_officer_overdose_training,
            CUSTODY,
            RecordOfficerOverdoseTrainingRequest {
                custody_suite_code: "WYP01".into(),
                staff_id: staff.into(),
                occurred_at: on(day)
            }
        );
    }
    record!(
        c,
        ambulance.record_ambulance_workforce,
        PARAMEDIC,
        RecordAmbulanceWorkforceRequest {
            trust_code: "RX8".into(),
            paramedic_headcount: 120,
            occurred_at: on("2026-04-02")
        }
    );
    record!(
        c,
        ambulance.record_paramedic_naloxone_training,
        PARAMEDIC,
        RecordParamedicNaloxoneTrainingRequest {
            trust_code: "RX8".into(),
            staff_id: "P-1".into(),
            occurred_at: on("2026-04-20")
        }
    );
    record!(
        c,
        pharmacy.record_naloxone_supply,
        PHARMACIST,
        RecordNaloxoneSupplyRequest {
            pharmacy_code: "FW844".into(),
            person: Some(by_nhs("1860913903")),
            kits: 3,
            occurred_at: on("2026-04-12")
        }
    );
    record!(
        c,
        pharmacy.record_staff_training,
        PHARMACIST,
        RecordStaffTrainingRequest {
            pharmacy_code: "FW844".into(),
            staff_id: "S-1".into(),
            accreditation: "Naloxone".into(),
            occurred_at: on("2026-04-12")
        }
    );
}

fn alerts(e: &PickupEntry) -> Vec<PickupAlert> {
    e.alerts
        .iter()
        .map(|a| PickupAlert::try_from(*a).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_agency_story_matches_values_worked_out_by_hand() {
    use PickupAlert::*;
    let hub = Hub::start().unwrap();
    let mut c = Clients::new(&hub).await;
    tell_the_story(&mut c).await;

    // The list on 25 March 2026, soonest first.
    let list = c.list("bradford", "2026-03-25", CARAT).await;
    let got: Vec<(&str, i32, PickupStatus, Vec<PickupAlert>)> = list
        .iter()
        .map(|e| {
            (
                e.release_date.as_str(),
                e.days_to_release,
                PickupStatus::try_from(e.status).unwrap(),
                alerts(e),
            )
        })
        .collect();
    let all_four = vec![NoConsent, NoAppointment, NoGateWorker, NoNaloxone];
    assert_eq!(
        got,
        vec![
            ("2026-03-10", -15, PickupStatus::Engaged, vec![]), // P7
            ("2026-03-18", -7, PickupStatus::Missed, vec![NotPickedUp]), // P6
            ("2026-03-20", -5, PickupStatus::Released, vec![NotPickedUp]), // P5
            ("2026-03-27", 2, PickupStatus::Scheduled, all_four.clone()), // P2
            ("2026-03-30", 5, PickupStatus::Scheduled, vec![]), // P1
            ("2026-04-01", 7, PickupStatus::Scheduled, all_four), // P8
            ("2026-04-03", 9, PickupStatus::Scheduled, vec![]), // P3
        ]
    );
    let p1 = &list[4];
    assert_eq!(p1.display_name, "Jolene Featherstonehaugh");
    assert!(!p1.redacted);
    assert_eq!(p1.consent, ConsentState::Given as i32);
    assert!(
        p1.flagged_imminent && p1.triage_completed && p1.naloxone_issued && p1.overdose_trained
    );
    assert_eq!(
        (
            p1.appointment_at.as_str(),
            p1.gate_worker_id.as_str(),
            p1.prison_code.as_str()
        ),
        ("2026-03-31T10:00:00Z", "dip-7", "LEI")
    );
    let p8 = &list[5];
    assert_eq!(p8.consent, ConsentState::Withdrawn as i32);
    assert!(
        p8.redacted && p8.display_name.is_empty(),
        "consent withdrawn: no name"
    );
    assert!(list
        .iter()
        .filter(|e| e.release_date != "2026-03-30")
        .all(|e| e.redacted));
    assert_eq!(list[6].prison_code, "WDI");
    // Leeds sees only its own.
    let leeds = c.list("leeds", "2026-03-25", CARAT).await;
    assert_eq!(
        leeds
            .iter()
            .map(|e| e.release_date.as_str())
            .collect::<Vec<_>>(),
        ["2026-03-29"]
    );

    // The summary for that day and 2025-26, as a CARAT worker sees it.
    let s = c.summary("2026-03-25", "2025-26", CARAT).await;
    let counts = |v: Vec<(i32, u32)>| v;
    assert_eq!(
        counts(s.by_status.iter().map(|x| (x.status, x.count)).collect()),
        vec![(1, 4), (2, 1), (3, 0), (4, 1), (5, 1)]
    );
    assert_eq!(
        counts(s.by_alert.iter().map(|x| (x.alert, x.count)).collect()),
        vec![(1, 2), (2, 2), (3, 2), (4, 2), (5, 2)]
    );
    assert_eq!(
        (s.released, s.engaged_within_21_days, s.continuity_pct),
        (3, 1, Some(33.3))
    );
    // The funnel of those three (P5, P6, P7, all from LEI): nobody was
    // flagged, triaged or given an appointment before release; P7 was met
    // at the gate and engaged within 21 days.
    let stages = |f: &hub_proto::projections::ContinuityFunnel| f.stages().map(|(_, n)| n);
    assert_eq!(stages(s.funnel.as_ref().unwrap()), [3, 0, 0, 0, 1, 1]);
    assert_eq!(s.funnel_by_prison.len(), 1);
    assert_eq!(s.funnel_by_prison[0].prison_code, "LEI");
    assert_eq!(stages(&s.funnel_by_prison[0]), [3, 0, 0, 0, 1, 1]);
    assert!(s.suppressed.is_empty());
    // An analyst sees every count of 1 to 7 withheld, zeros shown.
    let a = c.summary("2026-03-25", "2025-26", ANALYST).await;
    assert!(a
        .by_status
        .iter()
        .chain(std::iter::empty())
        .all(|x| x.count == 0));
    assert_eq!(
        (a.released, a.engaged_within_21_days, a.continuity_pct),
        (0, 0, None)
    );
    for name in [
        "by_status.SCHEDULED",
        "by_status.ENGAGED",
        "by_alert.NO_CONSENT",
        "released",
        "engaged_within_21_days",
        "continuity_pct",
        "funnel.released",
        "funnel.met_at_gate",
        "funnel_by_prison.LEI.engaged_within_21_days",
    ] {
        assert!(
            a.suppressed.iter().any(|s| s == name),
            "{name}: {:?}",
            a.suppressed
        );
    }
    assert!(
        !a.suppressed.iter().any(|s| s == "by_status.PICKED_UP"),
        "0 is shown"
    );

    // Training counts, 2026-27: SU-A (once, after midnight BST) and the
    // repeated service user once; one carer; officers PC1, PC2 of 40; one
    // paramedic of 120; one pharmacist; kits 1 (carer) + 3 (pharmacy).
    let t = c.counts("2026-27", ADMIN).await;
    assert_eq!(
        (
            t.service_users_trained,
            t.carers_trained,
            t.prison_leavers_trained,
            t.custody_officers_trained,
            t.custody_officer_headcount
        ),
        (2, 1, 0, 2, 40)
    );
    assert_eq!(
        (
            t.custody_officers_trained_pct,
            t.paramedics_trained,
            t.paramedic_headcount,
            t.paramedics_trained_pct
        ),
        (Some(5.0), 1, 120, Some(0.8))
    );
    assert_eq!((t.pharmacy_staff_trained, t.naloxone_kits_supplied), (1, 4));
    let q1 = &t.quarters[0];
    assert_eq!(
        (
            q1.quarter,
            q1.service_users_trained,
            q1.custody_officers_trained,
            q1.naloxone_kits_supplied
        ),
        (1, 2, 2, 4)
    );
    assert_eq!(
        (
            t.quarters[1].service_users_trained,
            t.quarters[1].custody_officer_headcount
        ),
        (0, 40)
    );
    // 2025-26: SU-A before midnight, P1 as a prison leaver; kits 1 (P1's
    // training) + 1 (naloxone on release); no headcount yet.
    let t = c.counts("2025-26", ADMIN).await;
    assert_eq!(
        (
            t.service_users_trained,
            t.prison_leavers_trained,
            t.naloxone_kits_supplied
        ),
        (1, 1, 2)
    );
    assert_eq!(
        (t.custody_officer_headcount, t.custody_officers_trained_pct),
        (0, None)
    );
    assert_eq!(t.quarters[3].service_users_trained, 1);
    // An analyst: every count of 1 to 7 people withheld.
    let t = c.counts("2026-27", ANALYST).await;
    assert_eq!(
        (
            t.service_users_trained,
            t.custody_officers_trained,
            t.custody_officers_trained_pct
        ),
        (0, 0, None)
    );
    assert_eq!(
        (t.custody_officer_headcount, t.naloxone_kits_supplied),
        (40, 4),
        "not counts of people trained"
    );
    assert!(t.suppressed.iter().any(|s| s == "q1.service_users_trained"));
}

async fn status(endpoint: &hub_testkit::HubProcess) -> hub_proto::projections::ProjectionStatus {
    ProjectionStatusServiceClient::new(Hub::channel(endpoint).await)
        .get_projection_status(authed(GetProjectionStatusRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_projections_during_a_flood_count_every_event_once() {
    let mut hub = Hub::start().unwrap();
    let pharmacy = hub.pharmacy.endpoint();
    // 4 clients × 60 supplies of 1 to 4 kits, while both projections are
    // killed and restarted three times.
    let mut clients = Vec::new();
    for client in 0..4u32 {
        let endpoint = pharmacy.clone();
        clients.push(tokio::spawn(async move {
            let mut pharmacy = PharmacyServiceClient::connect(endpoint).await.unwrap();
            let (mut kits, mut last) = (0u32, 0u64);
            for i in 0..60u32 {
                let n = 1 + (client + i) % 4;
                let request = RecordNaloxoneSupplyRequest {
                    request_id: format!("flood-{client}-{i}"),
                    partnership_code: "bradford".into(),
                    occurred_at: on("2026-06-01"),
                    pharmacy_code: "FW844".into(),
                    person: Some(PersonRef {
                        client_code: format!("AB{:02}0{}1990M", 1 + i % 28, 1 + client % 9),
                        ..Default::default()
                    }),
                    kits: n,
                };
                let ack = pharmacy
                    .record_naloxone_supply(authed(request, PHARMACIST))
                    .await
                    .unwrap()
                    .into_inner();
                kits += n;
                last = last.max(ack.stream_sequence);
            }
            (kits, last)
        }));
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        hub.training.kill();
        hub.pickup.kill();
        hub.activity.kill();
        tokio::time::sleep(Duration::from_millis(50)).await;
        hub.training.restart().unwrap();
        hub.pickup.restart().unwrap();
        hub.activity.restart().unwrap();
    }
    let (mut total, mut last) = (0, 0);
    for c in clients {
        let (k, l) = c.await.unwrap();
        total += k;
        last = last.max(l);
    }
    let mut training = TrainingCountsServiceClient::new(Hub::channel(&hub.training).await);
    let counts = training
        .get_training_counts(authed(
            GetTrainingCountsRequest {
                partnership_code: "bradford".into(),
                financial_year: "2026-27".into(),
                min_sequence: last,
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        counts.naloxone_kits_supplied, total,
        "every supply counted exactly once"
    );
    let activity = bradford_activity(Hub::channel(&hub.activity).await, "2026-27", last)
        .await
        .unwrap();
    assert_eq!(
        activity.year.unwrap().naloxone_kits.unwrap().pharmacy,
        total,
        "every supply counted exactly once by the activity projection too"
    );
    let messages = hub.stream_messages().await;
    assert_eq!(messages, 240);
    for process in [&hub.training, &hub.pickup, &hub.activity] {
        let s = status(process).await;
        let s = if s.applied_sequence < last {
            status(process).await
        } else {
            s
        };
        assert!(s.applied_sequence >= last);
        assert_eq!(s.events_applied, messages, "each event applied once");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_replays_into_a_fresh_store_and_switches_readers() {
    let hub = Hub::start().unwrap();
    let mut c = Clients::new(&hub).await;
    tell_the_story(&mut c).await;
    let list_before = c.list("bradford", "2026-03-25", CARAT).await;
    let counts_before = c.counts("2026-27", ADMIN).await;
    let summary_before = c.summary("2026-03-25", "2025-26", CARAT).await;
    let activity_process = &hub.activity;
    let activity = |fy: &'static str| async move {
        let mut a = bradford_activity(Hub::channel(activity_process).await, fy, 0)
            .await
            .unwrap();
        a.applied_sequence = 0;
        a
    };
    settled_status(&hub.activity).await;
    let activity_before = (activity("2025-26").await, activity("2026-27").await);
    for process in [&hub.pickup, &hub.training, &hub.activity] {
        let mut client = ProjectionStatusServiceClient::new(Hub::channel(process).await);
        let mut progress = client
            .rebuild_projection(authed(RebuildProjectionRequest {}, ADMIN))
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        while let Some(p) = progress.message().await.unwrap() {
            last = Some(p);
        }
        let last = last.expect("progress reported");
        assert!(last.switched);
        assert!(last.applied_sequence >= c.last);
        assert_eq!(
            last.events_applied, last.applied_sequence,
            "every message replayed once"
        );
        settled_status(process).await;
        // Only admins rebuild.
        let err = client
            .rebuild_projection(authed(RebuildProjectionRequest {}, CARAT))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    }
    assert_eq!(c.list("bradford", "2026-03-25", CARAT).await, list_before);
    assert_eq!(
        c.counts("2026-27", ADMIN).await.quarters,
        counts_before.quarters
    );
    let mut s = c.summary("2026-03-25", "2025-26", CARAT).await;
    s.applied_sequence = summary_before.applied_sequence;
    assert_eq!(s, summary_before);
    assert_eq!(
        (activity("2025-26").await, activity("2026-27").await),
        activity_before,
        "the rebuilt activity store says what the live one said"
    );
    let recorded = |a: &hub_proto::projections::Activity| {
        let y = a.year.as_ref().unwrap();
        y.custody_advice.unwrap().records
            + y.overdose_attendances.unwrap().attendances
            + y.naloxone_kits.unwrap().total
    };
    assert!(
        recorded(&activity_before.0) + recorded(&activity_before.1) > 0,
        "the story has activity to compare: {activity_before:?}"
    );
    // New events land in the rebuilt store.
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("K1111KK")),
            release_date: "2026-03-26".into()
        }
    );
    assert_eq!(
        c.list("bradford", "2026-03-25", CARAT).await.len(),
        list_before.len() + 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_are_parked_counted_and_never_block() {
    use prost::Message;
    let hub = Hub::start().unwrap();
    let nats = async_nats::connect(hub.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    // Not protobuf at all, and an event from a newer schema.
    js.publish(
        "hub.events.prison.bradford.release_date_recorded",
        b"\xff\xff not an event".to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let newer = hub_proto::events::Event {
        event_type: "future_thing".into(),
        schema_version: 99,
        ..Default::default()
    };
    js.publish(
        "hub.events.prison.bradford.future_thing",
        newer.encode_to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut c = Clients::new(&hub).await;
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            prison_code: "LEI".into(),
            person: Some(by_prison("A1111AA")),
            release_date: "2026-03-26".into()
        }
    );
    assert_eq!(
        c.list("bradford", "2026-03-25", CARAT).await.len(),
        1,
        "the stream went on past them"
    );
    for process in [&hub.pickup, &hub.training] {
        let s = settled_status(process).await;
        assert_eq!(s.parked, 2);
        let metrics = process.scrape_metrics().unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("hub_projection_parked_total") && l.ends_with(" 2")),
            "{metrics}"
        );
        // Caught up: no lag, in events or in seconds, in the status and in
        // the gauges (refreshed every 2 s).
        assert_eq!((s.lag, s.lag_seconds), (0, 0.0));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = process.scrape_metrics().unwrap();
            let zero = |name: &str| {
                metrics
                    .lines()
                    .any(|l| l.starts_with(name) && l.ends_with(" 0"))
            };
            if zero("hub_projection_lag_events") && zero("hub_projection_lag_seconds") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "lag gauges missing or not 0: {metrics}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn next(w: &mut tonic::Streaming<PickupEntry>) -> PickupEntry {
    tokio::time::timeout(Duration::from_secs(10), w.message())
        .await
        .expect("an update")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watch_starts_with_the_list_and_follows_consent_and_cancellation() {
    let hub = Hub::start().unwrap();
    let mut c = Clients::new(&hub).await;
    let person = || PersonRef {
        prison_number: "W1234WW".into(),
        given_name: "Robin".into(),
        family_name: "Ashby".into(),
        ..Default::default()
    };
    record!(
        c,
        prison.record_release_date,
        CARAT,
        RecordReleaseDateRequest {
            occurred_at: Some(now()),
            prison_code: "LEI".into(),
            person: Some(person()),
            release_date: london_day(3)
        }
    );
    record!(
        c,
        prison.record_consent,
        CARAT,
        RecordConsentRequest {
            occurred_at: Some(now()),
            person: Some(by_prison("W1234WW")),
            purpose: ConsentPurpose::GatePickup as i32,
            given: true
        }
    );
    c.list("bradford", "", CARAT).await; // wait until applied
    let mut watch = watch_bradford(&mut c.pickups, DIP).await;
    let first = next(&mut watch).await;
    assert_eq!(
        (first.display_name.as_str(), first.removed),
        ("Robin Ashby", false)
    );
    record!(
        c,
        prison.record_consent,
        CARAT,
        RecordConsentRequest {
            occurred_at: Some(now()),
            person: Some(by_prison("W1234WW")),
            purpose: ConsentPurpose::GatePickup as i32,
            given: false
        }
    );
    let withdrawn = next(&mut watch).await;
    assert!(
        withdrawn.redacted && withdrawn.display_name.is_empty(),
        "{withdrawn:?}"
    );
    record!(
        c,
        prison.cancel_release,
        CARAT,
        CancelReleaseRequest {
            occurred_at: Some(now()),
            prison_code: "LEI".into(),
            person: Some(by_prison("W1234WW"))
        }
    );
    let gone = next(&mut watch).await;
    assert!(gone.removed);
    assert_eq!(gone.person_key, first.person_key);
    // Analysts may not watch person-level rows.
    let err = c
        .pickups
        .watch_pickups(authed(
            WatchPickupsRequest {
                partnership_code: "bradford".into(),
            },
            ANALYST,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

/// The training counts of bradford this year as an admin, or the status.
async fn training_counts(hub: &Hub, min_sequence: u64) -> Result<TrainingCounts, tonic::Status> {
    bradford_training(Hub::channel(&hub.training).await, min_sequence).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_of_an_older_layout_is_rebuilt_at_start_and_never_answers_wrong() {
    let mut hub = Hub::start().unwrap();
    let last = train(&hub, 9, 0).await;
    assert_eq!(
        training_counts(&hub, last)
            .await
            .unwrap()
            .service_users_trained,
        9
    );
    hub.training.terminate().unwrap();
    // As an older version left it: layout 1.
    let data = hub.dir.path().join("training-projection");
    let old_store = data.join("store-1");
    hub_store::Store::open(&old_store)
        .unwrap()
        .set_schema(1)
        .unwrap();
    hub.training.restart().unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let counts = loop {
        match training_counts(&hub, last).await {
            Ok(c) => break c,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                assert!(s.message().contains("rebuilding"), "{}", s.message());
            }
        }
        assert!(std::time::Instant::now() < deadline, "never rebuilt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(counts.service_users_trained, 9);
    let active = std::fs::read_to_string(data.join("ACTIVE_STORE")).unwrap();
    assert_ne!(active.trim(), "store-1", "a fresh store took over");
    assert!(hub.training.log().contains("rebuilding it from the stream"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_that_never_reads_does_not_hold_the_projection_back() {
    let hub = Hub::start().unwrap();
    // Opened, then never read: its buffers fill and it falls behind.
    let _stalled = watch_bradford(
        &mut PickupListServiceClient::new(Hub::channel(&hub.pickup).await),
        CARAT,
    )
    .await;
    // 5,000 people's release dates, each a change the watcher would get:
    // more than the projection keeps for a watcher (4,096), so it falls behind.
    let commands: Vec<PrisonCommand> = (0..5_000u32)
        .map(|i| PrisonCommand {
            command: Some(prison_command::Command::RecordReleaseDate(
                RecordReleaseDateRequest {
                    request_id: request_id("flood"),
                    partnership_code: "bradford".into(),
                    occurred_at: Some(now()),
                    prison_code: "LEI".into(),
                    person: Some(PersonRef {
                        prison_number: format!("A{:04}BC", i),
                        ..Default::default()
                    }),
                    release_date: london_day(1 + i64::from(i % 14)),
                },
            )),
        })
        .collect();
    let reply = PrisonServiceClient::new(Hub::channel(&hub.prison).await)
        .record_batch(authed(futures::stream::iter(commands), CARAT))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.recorded, 5_000, "{:?}", reply.results.first());
    let last = reply
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Some(hub_proto::common::batch_result::Outcome::Ack(a)) => Some(a.stream_sequence),
            _ => None,
        })
        .max()
        .unwrap();
    // Every event applied, and a reader served, while the watcher sleeps.
    let list = hub.list_bradford(last, CARAT).await;
    assert_eq!(list.entries.len(), 5_000);
    let status = settled_status(&hub.pickup).await;
    assert!(status.applied_sequence >= last);
}
