//! Information governance from outside: every person-level read is
//! audited (and no aggregate read), erasure survives a rebuild from an
//! empty store, and no secret, token or identifier reaches a log.

use std::time::Duration;

use hub_proto::{
    admin::{
        admin_service_client::AdminServiceClient, ErasePersonRequest, ListAuditRecordsRequest,
    },
    common::{ConsentPurpose, PersonRef, TrainingAudience},
    prison::{
        prison_service_client::PrisonServiceClient, RecordConsentRequest, RecordReleaseDateRequest,
    },
    projections::{
        pickup_list_service_client::PickupListServiceClient,
        training_counts_service_client::TrainingCountsServiceClient, GetPickupSummaryRequest,
        GetTrainingCountsRequest,
    },
    treatment::{treatment_service_client::TreatmentServiceClient, RecordOverdoseTrainingRequest},
};
use hub_tests::*;
use tonic::Code;

const TREATMENT: &str = "dev-treatment-worker-token";

fn jo() -> PersonRef {
    PersonRef {
        nhs_number: "943 476 5919".into(),
        prison_number: "A1234BC".into(),
        pnc_id: "2001/0123456X".into(),
        given_name: "Jolene".into(),
        family_name: "Featherstonehaugh".into(),
        date_of_birth: "1985-03-02".into(),
        ..Default::default()
    }
}

/// Records Jo's release in 3 days, her consent, and a training with a kit;
/// returns the last sequence.
async fn plant(hub: &Hub) -> u64 {
    let mut prison = PrisonServiceClient::new(Hub::channel(&hub.prison).await);
    prison
        .record_release_date(authed(
            RecordReleaseDateRequest {
                request_id: request_id("p"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                prison_code: "LEI".into(),
                person: Some(jo()),
                release_date: london_day(3),
            },
            CARAT,
        ))
        .await
        .unwrap();
    prison
        .record_consent(authed(
            RecordConsentRequest {
                request_id: request_id("p"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                person: Some(PersonRef {
                    prison_number: "A1234BC".into(),
                    ..Default::default()
                }),
                purpose: ConsentPurpose::GatePickup as i32,
                given: true,
            },
            CARAT,
        ))
        .await
        .unwrap();
    let mut treatment = TreatmentServiceClient::new(Hub::channel(&hub.treatment).await);
    treatment
        .record_overdose_training(authed(
            RecordOverdoseTrainingRequest {
                request_id: request_id("p"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                service_code: "TRT01".into(),
                person: Some(PersonRef {
                    client_code: "JF02031985F".into(),
                    nhs_number: "9434765919".into(),
                    ..Default::default()
                }),
                audience: TrainingAudience::PrisonLeaver as i32,
                naloxone_kit_supplied: true,
            },
            TREATMENT,
        ))
        .await
        .unwrap()
        .into_inner()
        .stream_sequence
}

#[tokio::test(flavor = "multi_thread")]
async fn every_person_level_read_is_audited_and_no_aggregate_read() {
    let hub = Hub::start().unwrap();
    let last = plant(&hub).await;
    let mut pickups = PickupListServiceClient::new(Hub::channel(&hub.pickup).await);
    assert_eq!(
        pickups
            .list_pickups(authed(bradford_list(last), CARAT))
            .await
            .unwrap()
            .into_inner()
            .entries
            .len(),
        1
    );
    assert_eq!(
        pickups
            .list_pickups(authed(bradford_list(last), DIP))
            .await
            .unwrap()
            .into_inner()
            .entries
            .len(),
        1
    );
    let mut watch = watch_bradford(&mut pickups, TREATMENT).await;
    tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(watch);
    // Aggregate reads: not audited.
    let summary = GetPickupSummaryRequest {
        partnership_code: "bradford".into(),
        min_sequence: last,
        ..Default::default()
    };
    pickups
        .get_pickup_summary(authed(summary, ANALYST))
        .await
        .unwrap();
    let mut training = TrainingCountsServiceClient::new(Hub::channel(&hub.training).await);
    let counts = GetTrainingCountsRequest {
        partnership_code: "bradford".into(),
        min_sequence: last,
        ..Default::default()
    };
    training
        .get_training_counts(authed(counts, ANALYST))
        .await
        .unwrap();
    // A refused read is not a read.
    assert_eq!(
        pickups
            .list_pickups(authed(bradford_list(last), ANALYST))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let mut admin = AdminServiceClient::new(Hub::channel(&hub.pickup).await);
    let request = || ListAuditRecordsRequest {
        partnership_code: "bradford".into(),
        ..Default::default()
    };
    let records = admin
        .list_audit_records(authed(request(), ADMIN))
        .await
        .unwrap()
        .into_inner()
        .records;
    let got: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.user_id.as_str(),
                r.role.as_str(),
                r.org_code.as_str(),
                r.partnership_code.as_str(),
                r.rpc.as_str(),
                r.rows,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "dev-carat-1",
                "carat_worker",
                "LEI",
                "bradford",
                "ListPickups",
                1
            ),
            (
                "dev-dip-1",
                "dip_worker",
                "DIPBRAD",
                "bradford",
                "ListPickups",
                1
            ),
            (
                "dev-treatment-1",
                "treatment_worker",
                "TRTBRAD",
                "bradford",
                "WatchPickups",
                1
            ),
        ]
    );
    assert!(records.iter().all(|r| r.at.is_some()));
    // The records are events in the stream under their own subject.
    let audit_subjects = hub
        .all_messages()
        .await
        .iter()
        .filter(|m| m.subject.as_str() == "hub.audit.bradford")
        .count();
    assert_eq!(audit_subjects, 3);
    // Only admins read the audit trail.
    assert_eq!(
        admin
            .list_audit_records(authed(request(), CARAT))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // --since in the future: nothing.
    let later = ListAuditRecordsRequest {
        since: Some(prost_types::Timestamp {
            seconds: now().seconds + 3600,
            nanos: 0,
        }),
        ..request()
    };
    assert!(admin
        .list_audit_records(authed(later, ADMIN))
        .await
        .unwrap()
        .into_inner()
        .records
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_name_never_comes_back_even_from_an_empty_store() {
    let mut hub = Hub::start().unwrap();
    let last = plant(&hub).await;
    let mut pickups = PickupListServiceClient::new(Hub::channel(&hub.pickup).await);
    let before = pickups
        .list_pickups(authed(bradford_list(last), CARAT))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(before[0].display_name, "Jolene Featherstonehaugh");
    let mut training = TrainingCountsServiceClient::new(Hub::channel(&hub.training).await);
    let counts = |min| GetTrainingCountsRequest {
        partnership_code: "bradford".into(),
        min_sequence: min,
        ..Default::default()
    };
    let counts_before = training
        .get_training_counts(authed(counts(last), ADMIN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            counts_before.prison_leavers_trained,
            counts_before.naloxone_kits_supplied
        ),
        (1, 1)
    );

    let mut admin = AdminServiceClient::new(Hub::channel(&hub.pickup).await);
    let refused = admin
        .erase_person(authed(
            ErasePersonRequest {
                identifier: "A1234BC".into(),
            },
            CARAT,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = admin
        .erase_person(authed(
            ErasePersonRequest {
                identifier: "9434765918".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("identifier") && !bad.message().contains("9434765918"));
    // By her client code, which only the training linked to her NHS number.
    let erased = admin
        .erase_person(authed(
            ErasePersonRequest {
                identifier: "jf02031985f".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        erased.keys_destroyed, 4,
        "NHS number, prison number, PNC id and client code"
    );
    assert_eq!(erased.person_key, before[0].person_key);

    let after = pickups
        .list_pickups(authed(bradford_list(erased.stream_sequence), CARAT))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(after.len(), 1, "the entry stays, pseudonymous");
    assert!(after[0].redacted && after[0].display_name.is_empty());
    assert_eq!(after[0].release_date, before[0].release_date);

    // Delete the projection's store and rebuild it from the stream.
    hub.pickup.kill();
    std::fs::remove_dir_all(hub.dir.path().join("pickup-projection")).unwrap();
    hub.pickup.restart().unwrap();
    let mut pickups = PickupListServiceClient::new(Hub::channel(&hub.pickup).await);
    let rebuilt = pickups
        .list_pickups(authed(bradford_list(erased.stream_sequence), CARAT))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(rebuilt.len(), 1);
    assert!(
        rebuilt[0].redacted && rebuilt[0].display_name.is_empty(),
        "{:?}",
        rebuilt[0]
    );
    assert_eq!(rebuilt[0].consent, before[0].consent);
    let mut training = TrainingCountsServiceClient::new(Hub::channel(&hub.training).await);
    let counts_after = training
        .get_training_counts(authed(counts(erased.stream_sequence), ADMIN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        counts_after.quarters, counts_before.quarters,
        "counts unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_token_or_identifier_reaches_a_log() {
    let hub = Hub::start().unwrap();
    let last = plant(&hub).await;
    let mut pickups = PickupListServiceClient::new(Hub::channel(&hub.pickup).await);
    pickups
        .list_pickups(authed(bradford_list(last), CARAT))
        .await
        .unwrap();
    // Refusals log too: an invalid identifier and an unknown token.
    let mut prison = PrisonServiceClient::new(Hub::channel(&hub.prison).await);
    let mut bad = RecordReleaseDateRequest {
        request_id: request_id("bad"),
        partnership_code: "bradford".into(),
        occurred_at: Some(now()),
        prison_code: "LEI".into(),
        person: Some(PersonRef {
            nhs_number: "9434765918".into(),
            given_name: "Marmaduke".into(),
            ..Default::default()
        }),
        release_date: london_day(3),
    };
    prison
        .record_release_date(authed(bad.clone(), CARAT))
        .await
        .unwrap_err();
    bad.person = Some(jo());
    prison
        .record_release_date(authed(bad, "a-token-nobody-issued-1234"))
        .await
        .unwrap_err();
    let mut admin = AdminServiceClient::new(Hub::channel(&hub.pickup).await);
    admin
        .erase_person(authed(
            ErasePersonRequest {
                identifier: "943 476 5919".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap();

    let secret = std::fs::read(hub.dir.path().join("hub.secret")).unwrap();
    let forbidden = [
        "9434765919",
        "943 476 5919",
        "9434765918",
        "A1234BC",
        "2001/0123456X",
        "JF02031985F",
        "Jolene",
        "Featherstonehaugh",
        "Marmaduke",
        "1985-03-02",
        "02031985",
        CARAT,
        ADMIN,
        TREATMENT,
        "a-token-nobody-issued-1234",
    ];
    let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    for process in [
        &hub.custody,
        &hub.prison,
        &hub.pharmacy,
        &hub.treatment,
        &hub.ambulance,
        &hub.pickup,
        &hub.training,
    ] {
        let log = process.log();
        assert!(
            log.contains("listening"),
            "the log is being written:\n{log}"
        );
        for f in forbidden {
            assert!(!log.contains(f), "{f:?} in a log:\n{log}");
        }
        assert!(!log.contains(&secret_hex));
    }
}
