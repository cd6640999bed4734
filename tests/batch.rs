//! Bulk uploads (`RecordBatch` of every agency service), from outside:
//! each command of a batch is checked and recorded exactly as if sent
//! alone, a refused one records nothing and stops nothing, the reply holds
//! one result per command in the order sent, and what a batch records the
//! projections show like anything else.

use hub_proto::{
    common::{batch_result::Outcome, BatchAck, BatchError, EventAck, PersonRef},
    pharmacy::{
        pharmacy_command::Command as Pharmacy, pharmacy_service_client::PharmacyServiceClient,
        PharmacyCommand, RecordNeedleExchangeRequest,
    },
    prison::{
        prison_command::Command as Prison, prison_service_client::PrisonServiceClient,
        FlagImminentReleaseRequest, PrisonCommand, RecordConsentRequest, RecordReleaseDateRequest,
    },
};
use hub_tests::{commands, *};
use tonic::Code;

fn needle_exchange(request_id: &str, client_code: &str, packs: u32) -> PharmacyCommand {
    PharmacyCommand {
        command: Some(Pharmacy::RecordNeedleExchange(
            RecordNeedleExchangeRequest {
                client_code: client_code.into(),
                packs_given: packs,
                ..commands::needle_exchange(request_id, "bradford")
            },
        )),
    }
}

fn ack(result: &hub_proto::common::BatchResult) -> &EventAck {
    match &result.outcome {
        Some(Outcome::Ack(a)) => a,
        other => panic!("expected an ack, got {other:?}"),
    }
}

fn refusal(result: &hub_proto::common::BatchResult) -> &BatchError {
    match &result.outcome {
        Some(Outcome::Error(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn upload(hub: &Hub, token: &str, commands: Vec<PharmacyCommand>) -> BatchAck {
    PharmacyServiceClient::new(Hub::channel(&hub.pharmacy).await)
        .record_batch(authed(futures::stream::iter(commands), token))
        .await
        .expect("RecordBatch")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_command_of_a_batch_is_recorded_or_refused_as_if_sent_alone() {
    let hub = Hub::start().unwrap();
    let first = request_id("batch");
    let naloxone = request_id("batch");
    let before = hub.stream_messages().await;
    let naloxone_supply = commands::naloxone_supply(&naloxone, "bradford");
    let reply = upload(
        &hub,
        PHARMACIST,
        vec![
            needle_exchange(&first, "JS02031985M", 3),
            // a real date is required in the attributor
            needle_exchange(&request_id("batch"), "JS31021985M", 3),
            PharmacyCommand {
                command: Some(Pharmacy::RecordNaloxoneSupply(naloxone_supply.clone())),
            },
            PharmacyCommand { command: None },
            // the first again: a retry
            needle_exchange(&first, "JS02031985M", 3),
            // the first's id for another body
            needle_exchange(&first, "JS02031985M", 4),
            // not a partnership of the register
            PharmacyCommand {
                command: Some(Pharmacy::RecordNeedleExchange(
                    RecordNeedleExchangeRequest {
                        partnership_code: "atlantis".into(),
                        ..match needle_exchange(&request_id("batch"), "JS02031985M", 1).command {
                            Some(Pharmacy::RecordNeedleExchange(r)) => r,
                            _ => unreachable!(),
                        }
                    },
                )),
            },
        ],
    )
    .await;

    assert_eq!(reply.results.len(), 7, "one result per command: {reply:?}");
    assert_eq!((reply.recorded, reply.duplicates, reply.refused), (2, 1, 4));
    let (recorded, supplied) = (ack(&reply.results[0]), ack(&reply.results[2]));
    assert!(!recorded.duplicate && !supplied.duplicate);
    assert!(
        recorded.stream_sequence < supplied.stream_sequence,
        "commands reach the stream in the order sent"
    );

    let bad_code = refusal(&reply.results[1]);
    assert_eq!(bad_code.code, "INVALID_ARGUMENT");
    assert_eq!(bad_code.field_violations[0].field, "client_code");
    assert!(bad_code.message.contains("client_code"), "{bad_code:?}");
    assert!(
        !bad_code.message.contains("JS31021985M"),
        "an identifier in an error: {bad_code:?}"
    );
    let empty = refusal(&reply.results[3]);
    assert_eq!(
        (
            empty.code.as_str(),
            empty.field_violations[0].field.as_str()
        ),
        ("INVALID_ARGUMENT", "command")
    );
    let retry = ack(&reply.results[4]);
    assert!(retry.duplicate);
    assert_eq!(
        (&retry.event_id, retry.stream_sequence),
        (&recorded.event_id, recorded.stream_sequence)
    );
    assert_eq!(refusal(&reply.results[5]).code, "ALREADY_EXISTS");
    let unknown = refusal(&reply.results[6]);
    assert_eq!(unknown.code, "INVALID_ARGUMENT");
    assert_eq!(unknown.field_violations[0].field, "partnership_code");

    assert_eq!(
        hub.stream_messages().await - before,
        2,
        "only the two new commands are in the stream"
    );

    // The same command sent alone afterwards is the batch's retry.
    let alone = PharmacyServiceClient::new(Hub::channel(&hub.pharmacy).await)
        .record_naloxone_supply(authed(naloxone_supply, PHARMACIST))
        .await
        .expect("retry alone")
        .into_inner();
    assert!(alone.duplicate);
    assert_eq!(alone.event_id, supplied.event_id);
    assert_eq!(hub.stream_messages().await - before, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_needs_a_token_and_each_command_its_role_and_partnership() {
    let hub = Hub::start().unwrap();
    let before = hub.stream_messages().await;
    for token in [None, Some("not-a-token")] {
        let commands = futures::stream::iter(vec![needle_exchange(
            &request_id("batch"),
            "JS02031985M",
            1,
        )]);
        let mut request = tonic::Request::new(commands);
        if let Some(t) = token {
            request = authed(request.into_inner(), t);
        }
        let status = PharmacyServiceClient::new(Hub::channel(&hub.pharmacy).await)
            .record_batch(request)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
    }

    // A DIP worker may flag an imminent release, not record a release date,
    // and only in their own partnerships.
    let person = || {
        Some(PersonRef {
            prison_number: "A1234BC".into(),
            ..Default::default()
        })
    };
    let flag = |partnership: &str| PrisonCommand {
        command: Some(Prison::FlagImminentRelease(FlagImminentReleaseRequest {
            request_id: request_id("batch"),
            partnership_code: partnership.into(),
            occurred_at: Some(now()),
            prison_code: "LEI".into(),
            person: person(),
            note: "release brought forward".into(),
        })),
    };
    let date = PrisonCommand {
        command: Some(Prison::RecordReleaseDate(RecordReleaseDateRequest {
            request_id: request_id("batch"),
            partnership_code: "bradford".into(),
            occurred_at: Some(now()),
            prison_code: "LEI".into(),
            person: person(),
            release_date: london_day(3),
        })),
    };
    let reply = PrisonServiceClient::new(Hub::channel(&hub.prison).await)
        .record_batch(authed(
            futures::stream::iter(vec![flag("bradford"), date, flag("leeds")]),
            DIP,
        ))
        .await
        .expect("RecordBatch")
        .into_inner();
    assert!(!ack(&reply.results[0]).duplicate);
    assert_eq!(refusal(&reply.results[1]).code, "PERMISSION_DENIED");
    assert_eq!(refusal(&reply.results[2]).code, "PERMISSION_DENIED");
    assert_eq!(hub.stream_messages().await - before, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_batch_records_the_pick_up_list_shows() {
    let hub = Hub::start().unwrap();
    let person = || {
        Some(PersonRef {
            nhs_number: "943 476 5919".into(),
            prison_number: "A1234BC".into(),
            given_name: "Sam".into(),
            family_name: "Example".into(),
            ..Default::default()
        })
    };
    let commands = vec![
        PrisonCommand {
            command: Some(Prison::RecordReleaseDate(RecordReleaseDateRequest {
                request_id: request_id("batch"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                prison_code: "LEI".into(),
                person: person(),
                release_date: london_day(5),
            })),
        },
        PrisonCommand {
            command: Some(Prison::RecordConsent(RecordConsentRequest {
                request_id: request_id("batch"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                person: Some(PersonRef {
                    prison_number: "A1234BC".into(),
                    ..Default::default()
                }),
                purpose: hub_proto::common::ConsentPurpose::GatePickup as i32,
                given: true,
            })),
        },
    ];
    let reply = PrisonServiceClient::new(Hub::channel(&hub.prison).await)
        .record_batch(authed(futures::stream::iter(commands), CARAT))
        .await
        .expect("RecordBatch")
        .into_inner();
    assert_eq!(reply.recorded, 2, "{reply:?}");
    let list = hub
        .list_bradford(ack(&reply.results[1]).stream_sequence, CARAT)
        .await;
    assert_eq!(list.entries.len(), 1);
    assert_eq!(list.entries[0].display_name, "Sam Example");
    assert_eq!(list.entries[0].release_date, london_day(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_stops_reading_past_10000_commands_and_keeps_what_it_recorded() {
    let hub = Hub::start().unwrap();
    let before = hub.stream_messages().await;
    let commands: Vec<_> = (0..10_002)
        .map(|i| needle_exchange(&format!("bulk-{i}"), "JS02031985M", 1))
        .collect();
    let refused = PharmacyServiceClient::new(Hub::channel(&hub.pharmacy).await)
        .record_batch(authed(futures::stream::iter(commands.clone()), PHARMACIST))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("at most 10000") && refused.message().contains("10000 recorded"),
        "{}",
        refused.message()
    );
    assert_eq!(hub.stream_messages().await - before, 10_000);
    // The first 10,000 again: each is a duplicate of what was recorded,
    // with its acknowledgement; nothing new is written.
    let reply = upload(&hub, PHARMACIST, commands[..10_000].to_vec()).await;
    assert_eq!(
        (reply.recorded, reply.duplicates),
        (0, 10_000),
        "{:?}",
        reply.refused
    );
    assert_eq!(hub.stream_messages().await - before, 10_000);
}
