//! The spine, end to end: a prison records a release, the pick-up list shows
//! it. Against a real nats-server and the real binaries, through real gRPC
//! clients.

use std::time::Duration;

use hub_proto::{
    common::PersonRef,
    prison::RecordReleaseDateRequest,
    projections::{
        GetPickupSummaryRequest, GetProjectionStatusRequest, ListPickupsRequest, PickupStatus,
    },
};
use hub_tests::*;
use tonic::Code;
use tonic_types::StatusExt;

fn person(nhs: &str, prison: &str) -> PersonRef {
    PersonRef {
        nhs_number: nhs.into(),
        prison_number: prison.into(),
        given_name: "Jolene".into(),
        family_name: "Featherstonehaugh".into(),
        date_of_birth: "1985-03-02".into(),
        ..Default::default()
    }
}

fn release(request_id: &str, person: PersonRef, release_date: &str) -> RecordReleaseDateRequest {
    RecordReleaseDateRequest {
        request_id: request_id.into(),
        partnership_code: "bradford".into(),
        occurred_at: Some(now()),
        prison_code: "LEI".into(),
        person: Some(person),
        release_date: release_date.into(),
    }
}

fn list(min_sequence: u64) -> ListPickupsRequest {
    ListPickupsRequest {
        partnership_code: "bradford".into(),
        min_sequence,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_release_is_on_the_pickup_list_when_read_with_min_sequence() {
    let hub = Hub::start().unwrap();
    let ack = hub
        .prison()
        .await
        .record_release_date(authed(
            release(
                &request_id("r"),
                person("943 476 5919", "A1234BC"),
                &london_day(5),
            ),
            CARAT,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!ack.duplicate);
    assert!(ack.stream_sequence >= 1);
    assert_eq!(ack.event_id.len(), 36, "a UUID");

    let reply = hub.list_bradford(ack.stream_sequence, CARAT).await;
    assert!(reply.applied_sequence >= ack.stream_sequence);
    assert_eq!(reply.entries.len(), 1);
    let e = &reply.entries[0];
    assert_eq!(e.release_date, london_day(5));
    assert_eq!(e.prison_code, "LEI");
    assert_eq!(e.status, PickupStatus::Scheduled as i32);
    assert_eq!(e.days_to_release, 5);
    assert_eq!(e.partnership_code, "bradford");
    assert!(e.redacted, "no consent recorded: the name stays hidden");
    assert!(e.display_name.is_empty());
    assert_eq!(
        e.alerts.len(),
        4,
        "within 7 days and nothing arranged: {:?}",
        e.alerts
    );
    assert_eq!(e.person_key.len(), 32);

    // An explicit as_of_date moves days_to_release; another partnership sees nothing.
    let mut r = list(ack.stream_sequence);
    r.as_of_date = london_day(1);
    let later = hub
        .pickups()
        .await
        .list_pickups(authed(r, CARAT))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.entries[0].days_to_release, 4);
    let mut r = list(ack.stream_sequence);
    r.partnership_code = "leeds".into();
    let leeds = hub
        .pickups()
        .await
        .list_pickups(authed(r, CARAT))
        .await
        .unwrap()
        .into_inner();
    assert!(leeds.entries.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn identifiers_sent_together_resolve_to_one_person_later() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    // NHS number and prison number together link them...
    prison
        .record_release_date(authed(
            release(
                &request_id("a"),
                person("4010232137", "B2345CD"),
                &london_day(10),
            ),
            CARAT,
        ))
        .await
        .unwrap();
    // ...so a new date sent by another role with the prison number alone (lower case) replaces it.
    let only_prison = PersonRef {
        prison_number: "b2345cd".into(),
        ..Default::default()
    };
    let ack = prison
        .record_release_date(authed(
            release(&request_id("b"), only_prison, &london_day(12)),
            PRISON_OFFICER,
        ))
        .await
        .unwrap()
        .into_inner();
    let reply = hub.list_bradford(ack.stream_sequence, DIP).await;
    assert_eq!(reply.entries.len(), 1, "{:?}", reply.entries);
    assert_eq!(reply.entries[0].release_date, london_day(12));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_is_a_duplicate_and_a_reused_id_with_another_body_is_refused() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    let id = request_id("retry");
    let req = release(&id, person("0830166130", "C3456DE"), &london_day(3));
    let first = prison
        .record_release_date(authed(req.clone(), CARAT))
        .await
        .unwrap()
        .into_inner();
    let again = prison
        .record_release_date(authed(req.clone(), CARAT))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(again.stream_sequence, first.stream_sequence);
    assert_eq!(hub.stream_messages().await, 1);

    // Same id, same organisation, different body: ALREADY_EXISTS, nothing recorded.
    let mut other = req.clone();
    other.release_date = london_day(4);
    let err = prison
        .record_release_date(authed(other, CARAT))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("request_id"), "{}", err.message());
    // The prison officer's token is the same organisation (LEI): same rule.
    let mut other = req.clone();
    other.prison_code = "WDI".into();
    let err = prison
        .record_release_date(authed(other, PRISON_OFFICER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(hub.stream_messages().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_commands_record_nothing_and_say_why() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    let good = || {
        release(
            &request_id("bad"),
            person("9960308243", "D4567EF"),
            &london_day(3),
        )
    };

    // No token, unknown token.
    let err = prison
        .record_release_date(tonic::Request::new(good()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = prison
        .record_release_date(authed(good(), "not-a-real-token-at-all"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A role that may not call it; a partnership outside the token's list.
    let err = prison
        .record_release_date(authed(good(), PHARMACIST))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = prison
        .record_release_date(authed(good(), ANALYST))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut r = good();
    r.partnership_code = "kirklees".into();
    let err = prison
        .record_release_date(authed(r, CARAT))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("partnership"), "{}", err.message());

    // Each broken rule: INVALID_ARGUMENT naming the field, in the message and the details.
    type Breaker = Box<dyn Fn(&mut RecordReleaseDateRequest)>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "request_id",
            Box::new(|r| r.request_id = "has spaces".into()),
        ),
        ("request_id", Box::new(|r| r.request_id = "x".repeat(129))),
        (
            "partnership_code",
            Box::new(|r| r.partnership_code = "atlantis".into()),
        ),
        ("occurred_at", Box::new(|r| r.occurred_at = None)),
        (
            "occurred_at",
            Box::new(|r| {
                r.occurred_at = Some(prost_types::Timestamp {
                    seconds: now().seconds + 600,
                    nanos: 0,
                })
            }),
        ),
        (
            "occurred_at",
            Box::new(|r| {
                r.occurred_at = Some(prost_types::Timestamp {
                    seconds: 900_000_000,
                    nanos: 0,
                })
            }),
        ),
        ("prison_code", Box::new(|r| r.prison_code = "leeds".into())),
        (
            "release_date",
            Box::new(|r| r.release_date = "2026-02-30".into()),
        ),
        ("person", Box::new(|r| r.person = None)),
        (
            "person",
            Box::new(|r| {
                r.person = Some(PersonRef {
                    given_name: "Ann".into(),
                    ..Default::default()
                })
            }),
        ),
        (
            "person.nhs_number",
            Box::new(|r| r.person.as_mut().unwrap().nhs_number = "9434765918".into()),
        ),
        (
            "person.prison_number",
            Box::new(|r| r.person.as_mut().unwrap().prison_number = "A123BC".into()),
        ),
        (
            "person.client_code",
            Box::new(|r| r.person.as_mut().unwrap().client_code = "JS31021985M".into()),
        ),
        (
            "person.date_of_birth",
            Box::new(|r| r.person.as_mut().unwrap().date_of_birth = "1985-02-29".into()),
        ),
        (
            "person.family_name",
            Box::new(|r| r.person.as_mut().unwrap().family_name = "x\ny".into()),
        ),
        (
            "person.given_name",
            Box::new(|r| r.person.as_mut().unwrap().given_name = "y".repeat(257)),
        ),
    ];
    for (field, break_it) in cases {
        let mut r = good();
        break_it(&mut r);
        let err = prison
            .record_release_date(authed(r, CARAT))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
        let details = err.get_details_bad_request().expect("BadRequest details");
        assert!(
            details.field_violations.iter().any(|v| v.field == field),
            "{field}: {details:?}"
        );
        assert!(
            !err.message().contains("9434765918"),
            "never echo an identifier"
        );
    }
    assert_eq!(
        hub.stream_messages().await,
        0,
        "nothing refused is recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_projection_resumes_without_applying_anything_twice() {
    let mut hub = Hub::start().unwrap();
    let nhs = ["1860913903", "6281948211", "9935181901", "9378657974"];
    let mut last = 0;
    for (i, n) in nhs.iter().enumerate() {
        let ack = hub
            .prison()
            .await
            .record_release_date(authed(
                release(&request_id("k"), person(n, ""), &london_day(i as i64 + 1)),
                CARAT,
            ))
            .await
            .unwrap()
            .into_inner();
        last = ack.stream_sequence;
    }
    let before = hub.list_bradford(last, CARAT).await;
    assert_eq!(before.entries.len(), 4);

    hub.pickup.kill();
    // Written while the projection is down.
    let ack = hub
        .prison()
        .await
        .record_release_date(authed(
            release(&request_id("k"), person(nhs[0], ""), &london_day(9)),
            CARAT,
        ))
        .await
        .unwrap()
        .into_inner();
    hub.pickup.restart().unwrap();

    let after = hub.list_bradford(ack.stream_sequence, CARAT).await;
    assert_eq!(after.entries.len(), 4);
    assert_eq!(
        after.entries[3].release_date,
        london_day(9),
        "the new date moved the first person last"
    );
    assert_eq!(after.entries[..3], before.entries[1..]);

    // Killed again straight after start-up, then restarted: still exact.
    hub.pickup.kill();
    hub.pickup.restart().unwrap();
    let again = hub.list_bradford(ack.stream_sequence, CARAT).await;
    assert_eq!(again.entries, after.entries);
    // Every message in the stream (the 5 events and the audit records of
    // the reads above) applied exactly once.
    let status = settled_status(&hub.pickup).await;
    assert!(status.applied_sequence >= ack.stream_sequence);
    assert_eq!(status.events_applied, status.applied_sequence);
    assert_eq!(status.parked, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn min_sequence_not_reached_is_unavailable_and_reads_are_role_checked() {
    let hub = Hub::start().unwrap();
    let mut pickups = hub.pickups().await;
    let started = std::time::Instant::now();
    let err = pickups
        .list_pickups(authed(list(1_000_000), CARAT))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = pickups
        .list_pickups(authed(list(0), ANALYST))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "analysts never see person-level rows"
    );
    let err = pickups
        .list_pickups(authed(list(0), PHARMACIST))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = pickups
        .list_pickups(tonic::Request::new(list(0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Dates that are not real, or at the edge of the calendar: refused
    // by name, and the service answers on.
    for bad in ["2026-13-01", "9999-12-31", "1999-12-31"] {
        let mut r = list(0);
        r.as_of_date = bad.into();
        let err = pickups.list_pickups(authed(r, CARAT)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert!(
            err.message().contains("as_of_date"),
            "{bad}: {}",
            err.message()
        );
        let summary = GetPickupSummaryRequest {
            partnership_code: "bradford".into(),
            as_of_date: bad.into(),
            ..Default::default()
        };
        let err = pickups
            .get_pickup_summary(authed(summary, ANALYST))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert!(
            err.message().contains("as_of_date"),
            "{bad}: {}",
            err.message()
        );
    }
    pickups.list_pickups(authed(list(0), CARAT)).await.unwrap();
    let err = hub
        .projection_status()
        .await
        .get_projection_status(authed(GetProjectionStatusRequest {}, CARAT))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_never_holds_a_personal_identifier_in_clear() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    let people = [
        PersonRef {
            nhs_number: "943 476 5919".into(),
            prison_number: "A1234BC".into(),
            pnc_id: "2001/0123456X".into(),
            client_code: "JF02031985F".into(),
            given_name: "Jolene".into(),
            family_name: "Featherstonehaugh".into(),
            date_of_birth: "1985-03-02".into(),
        },
        PersonRef {
            nhs_number: "4010232137".into(),
            given_name: "Marmaduke".into(),
            family_name: "Ravenscroft".into(),
            date_of_birth: "1979-11-30".into(),
            ..Default::default()
        },
    ];
    for p in &people {
        prison
            .record_release_date(authed(
                release(&request_id("pii"), p.clone(), &london_day(2)),
                CARAT,
            ))
            .await
            .unwrap();
    }
    prison
        .flag_imminent_release(authed(
            hub_proto::prison::FlagImminentReleaseRequest {
                request_id: request_id("pii"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                prison_code: "LEI".into(),
                person: Some(people[1].clone()),
                note: "Marmaduke asks to be met by his sister".into(),
            },
            DIP,
        ))
        .await
        .unwrap();
    let forbidden = [
        "9434765919",
        "943 476 5919",
        "A1234BC",
        "2001/0123456X",
        "20010123456X",
        "JF02031985F",
        "Jolene",
        "Featherstonehaugh",
        "1985-03-02",
        "02031985",
        "4010232137",
        "Marmaduke",
        "Ravenscroft",
        "1979-11-30",
        "his sister",
    ];
    let messages = hub.all_messages().await;
    assert_eq!(messages.len(), 3);
    for m in &messages {
        let mut raw = m.subject.as_bytes().to_vec();
        for (name, values) in m.headers.iter() {
            raw.extend_from_slice(name.to_string().as_bytes());
            for v in values {
                raw.extend_from_slice(v.as_str().as_bytes());
            }
        }
        raw.extend_from_slice(&m.payload);
        for f in forbidden {
            assert!(
                !raw.windows(f.len())
                    .any(|w| w.eq_ignore_ascii_case(f.as_bytes())),
                "{f:?} readable in message {} ({})",
                m.sequence,
                m.subject
            );
        }
    }
    // And the services' logs do not carry them either.
    for log in [hub.prison.log(), hub.pickup.log()] {
        for f in forbidden {
            assert!(!log.contains(f), "{f:?} in a log");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_answers_health_and_both_reflection_versions() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::{v1, v1alpha};
    let hub = Hub::start().unwrap();
    for (process, service) in [
        (&hub.custody, "hub.custody.v1.CustodyService"),
        (&hub.prison, "hub.prison.v1.PrisonService"),
        (&hub.pharmacy, "hub.pharmacy.v1.PharmacyService"),
        (&hub.treatment, "hub.treatment.v1.TreatmentService"),
        (&hub.ambulance, "hub.ambulance.v1.AmbulanceService"),
        (&hub.pickup, "hub.projections.v1.PickupListService"),
    ] {
        let channel = Hub::channel(process).await;
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, 1, "{service} SERVING");

        // v1: list the services, then fetch the file that defines ours.
        let mut reflection =
            v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
        let requests = [
            v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                )),
            },
            v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                        service.into(),
                    ),
                ),
            },
        ];
        let mut replies = reflection
            .server_reflection_info(futures::stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("{service}: no service list");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&service), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
        let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("{service}: no file descriptor");
        };
        assert!(!files.file_descriptor_proto.is_empty());

        // v1alpha, which older grpcurl and Postman use.
        let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        };
        let mut replies = alpha
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("{service}: no v1alpha service list");
        };
        assert!(list.service.iter().any(|s| s.name == service));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_stops_cleanly_on_sigterm() {
    let mut hub = Hub::start().unwrap();
    for process in [
        &mut hub.custody,
        &mut hub.prison,
        &mut hub.pharmacy,
        &mut hub.treatment,
        &mut hub.ambulance,
        &mut hub.pickup,
    ] {
        let status = process.terminate().unwrap();
        assert!(status.success(), "{status:?}");
    }
}
