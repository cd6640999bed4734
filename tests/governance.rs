//! Information governance as an information-governance lead tries it,
//! through real gRPC, HTTP and hubctl against real nats-servers: who saw a
//! person, a tamper-evident audit trail, consent to share with treatment,
//! erasure that holds through a restore and a rebuild (and is refused while
//! a rebuild runs), retention by policy, and key rotation under load.

use std::{io::Read, io::Write, time::Duration};

use hub_proto::{
    admin::{
        admin_service_client::AdminServiceClient, ErasePersonRequest, GetRetentionStatusRequest,
        ListKeyVersionsRequest, ListPersonAccessRequest, RetireKeyVersionRequest,
        RotateKeysRequest, VerifyAuditTrailRequest,
    },
    common::{ConsentPurpose, PersonRef, TrainingAudience},
    events::{event::Payload, Event, NaloxoneSupplied, PersonLevelRead},
    prison::{
        prison_service_client::PrisonServiceClient, FlagImminentReleaseRequest,
        RecordConsentRequest, RecordNaloxoneOnReleaseRequest, RecordPreReleaseTriageRequest,
        RecordReleaseDateRequest,
    },
    projections::{
        pickup_list_service_client::PickupListServiceClient,
        training_counts_service_client::TrainingCountsServiceClient, ConsentState,
        GetTrainingCountsRequest, ListPickupsRequest, LookupPersonRequest,
        RebuildProjectionRequest,
    },
    treatment::{treatment_service_client::TreatmentServiceClient, RecordOverdoseTrainingRequest},
};
use hub_testkit::{http, NatsServer};
use hub_tests::*;
use prost::Message;
use tonic::{transport::Channel, Code};

fn person(prison_number: &str, given: &str, family: &str) -> PersonRef {
    PersonRef {
        prison_number: prison_number.into(),
        given_name: given.into(),
        family_name: family.into(),
        date_of_birth: "1985-03-02".into(),
        ..Default::default()
    }
}

fn jo() -> PersonRef {
    PersonRef {
        nhs_number: "943 476 5919".into(),
        ..person("A1234BC", "Jolene", "Featherstonehaugh")
    }
}

fn sam() -> PersonRef {
    person("B2345CD", "Samir", "Oyelaran-Whitcombe")
}

fn by(prison_number: &str) -> PersonRef {
    PersonRef {
        prison_number: prison_number.into(),
        ..Default::default()
    }
}

/// Records `who`'s release in 3 days and a consent for `purpose`;
/// the consent's stream sequence.
async fn release(
    prison: &mut PrisonServiceClient<Channel>,
    who: PersonRef,
    purpose: ConsentPurpose,
    given: bool,
) -> u64 {
    let request = RecordReleaseDateRequest {
        person: Some(who.clone()),
        release_date: london_day(3),
        ..commands::release_date(&request_id("rel"), "bradford")
    };
    prison
        .record_release_date(authed(request, CARAT))
        .await
        .unwrap();
    consent(prison, by(&who.prison_number), purpose, given).await
}

async fn consent(
    prison: &mut PrisonServiceClient<Channel>,
    who: PersonRef,
    purpose: ConsentPurpose,
    given: bool,
) -> u64 {
    let request = RecordConsentRequest {
        person: Some(who),
        purpose: purpose as i32,
        given,
        ..commands::consent(&request_id("con"), "bradford")
    };
    prison
        .record_consent(authed(request, CARAT))
        .await
        .unwrap()
        .into_inner()
        .stream_sequence
}

/// The next entry a watch sends (within 10 s).
async fn next_entry(
    watch: &mut tonic::Streaming<hub_proto::projections::PickupEntry>,
) -> hub_proto::projections::PickupEntry {
    tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("an entry within 10 s")
        .unwrap()
        .unwrap()
}

async fn entries(
    hub: &Hub,
    min_sequence: u64,
    token: &str,
) -> Vec<hub_proto::projections::PickupEntry> {
    hub.list_bradford(min_sequence, token).await.entries
}

async fn admin(hub: &Hub) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(Hub::channel(&hub.pickup).await)
}

/// (user, rpc) of each record, in order.
fn who_and_how(records: &[hub_proto::admin::AuditRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| (r.user_id.clone(), r.rpc.clone()))
        .collect()
}

/// Reads an HTTP response's body from `stream` until `done` says enough.
fn read_until(stream: &mut std::net::TcpStream, seen: &mut String, done: impl Fn(&str) -> bool) {
    let mut buf = [0u8; 4096];
    while !done(seen) {
        let n = stream.read(&mut buf).expect("events within 10 s");
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// The dashboard's live feed of bradford's list, as `token`.
fn live_feed(dash: &hub_testkit::HubProcess, token: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(dash.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /api/partnerships/bradford/pickups/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn who_saw_this_person_after_list_watch_lookup_and_dashboard_reads() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    release(&mut prison, jo(), ConsentPurpose::GatePickup, true).await;
    let last = release(&mut prison, sam(), ConsentPurpose::GatePickup, true).await;
    let listed = entries(&hub, last, CARAT).await;
    assert_eq!(listed.len(), 2);
    let jo_key = listed
        .iter()
        .find(|e| e.display_name.starts_with("Jolene"))
        .unwrap()
        .person_key
        .clone();

    // A treatment worker's watch: the list when opened (both), then Sam's
    // entry alone when it changes.
    let mut pickups = hub.pickups().await;
    let mut watch = watch_bradford(&mut hub.pickups().await, TREATMENT).await;
    for _ in 0..2 {
        next_entry(&mut watch).await;
    }
    let triage = RecordPreReleaseTriageRequest {
        person: Some(by("B2345CD")),
        ..commands::triage(&request_id("tri"), "bradford")
    };
    prison
        .record_pre_release_triage(authed(triage, CARAT))
        .await
        .unwrap();
    let changed = next_entry(&mut watch).await;
    assert_ne!(changed.person_key, jo_key);
    drop(watch);
    // A DIP worker looks Sam up; a Leeds CARAT worker breaks the glass
    // for Jo.
    let lookup = |who: PersonRef, reason: &str| LookupPersonRequest {
        partnership_code: "bradford".into(),
        person: Some(who),
        reason: reason.into(),
        min_sequence: 0,
    };
    pickups
        .lookup_person(authed(lookup(by("B2345CD"), ""), DIP))
        .await
        .unwrap();
    let why = "Released into Leeds this morning without a handover";
    let glass = pickups
        .lookup_person(authed(lookup(by("A1234BC"), why), LEEDS_CARAT))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(glass.entry.unwrap().person_key, jo_key);
    // The dashboard's pick-up page, as a DIP worker.
    let dash = hub.dashboard();
    let page = http(
        dash.addr(),
        "GET",
        "/partnerships/bradford/pickups",
        &[("Authorization", &format!("Bearer {DIP}"))],
        None,
    )
    .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Jolene Featherstonehaugh"));

    let access = |token: &str, identifier: &str, partnership: &str| {
        let request = authed(
            ListPersonAccessRequest {
                identifier: identifier.into(),
                partnership_code: partnership.into(),
                ..Default::default()
            },
            token,
        );
        let hub = &hub;
        async move { admin(hub).await.list_person_access(request).await }
    };
    // Jo, by any of her identifiers: the reads whose rows included her,
    // and nothing of the watch update or the lookup that showed only Sam.
    let seen = access(ADMIN, "9434765919", "").await.unwrap().into_inner();
    assert!(seen.person_keys.contains(&jo_key), "{:?}", seen.person_keys);
    let expected = vec![
        ("dev-carat-1".to_string(), "ListPickups".to_string()),
        ("dev-treatment-1".to_string(), "WatchPickups".to_string()),
        ("dev-leeds-carat-1".to_string(), "LookupPerson".to_string()),
        ("dev-dip-1".to_string(), "ListPickups".to_string()),
    ];
    assert_eq!(who_and_how(&seen.records), expected);
    let broke = &seen.records[2];
    assert_eq!(
        (
            broke.break_glass_reason.as_str(),
            broke.partnership_code.as_str()
        ),
        (why, "bradford")
    );
    assert!(seen
        .records
        .iter()
        .all(|r| r.at.is_some() && !r.role.is_empty()));
    // Sam: the list, both watch reads, the DIP lookup and the page.
    let sam_seen = access(ADMIN, "B2345CD", "bradford")
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        who_and_how(&sam_seen.records),
        vec![
            ("dev-carat-1".to_string(), "ListPickups".to_string()),
            ("dev-treatment-1".to_string(), "WatchPickups".to_string()),
            ("dev-treatment-1".to_string(), "WatchPickups".to_string()),
            ("dev-dip-1".to_string(), "LookupPerson".to_string()),
            ("dev-dip-1".to_string(), "ListPickups".to_string()),
        ]
    );
    // Nobody has seen someone the hub holds nothing of.
    assert!(access(ADMIN, "C3456DE", "")
        .await
        .unwrap()
        .into_inner()
        .records
        .is_empty());
    // Data stewards for their partnerships only; workers not at all.
    let steward = access(STEWARD, "A1234BC", "bradford")
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who_and_how(&steward.records), expected);
    for (token, partnership) in [(STEWARD, "leeds"), (STEWARD, ""), (CARAT, "bradford")] {
        let refused = access(token, "A1234BC", partnership).await.unwrap_err();
        assert!(
            matches!(
                refused.code(),
                Code::PermissionDenied | Code::InvalidArgument
            ),
            "{token} {partnership}: {refused:?}"
        );
    }
    let bad = access(ADMIN, "9434765918", "").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("identifier") && !bad.message().contains("9434765918"));
    // The same answer from the command line.
    let run = hubctl(
        &hub,
        Some(STEWARD),
        &[
            "--json",
            "audit",
            "--person",
            "943 476 5919",
            "--partnership",
            "bradford",
        ],
    )
    .await;
    let json = run.json();
    let users: Vec<&str> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        [
            "dev-carat-1",
            "dev-treatment-1",
            "dev-leeds-carat-1",
            "dev-dip-1"
        ]
    );
    let table = hubctl(&hub, Some(ADMIN), &["audit", "--person", "A1234BC"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains(why) && table.stdout.contains("4 person-level reads"),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_or_forged_audit_record_breaks_the_chain_where_it_was() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    let last = release(&mut prison, jo(), ConsentPurpose::GatePickup, true).await;
    for _ in 0..4 {
        entries(&hub, last, CARAT).await;
    }
    let verify = |partnership: &str| {
        let request = authed(
            VerifyAuditTrailRequest {
                partnership_code: partnership.into(),
            },
            ADMIN,
        );
        let hub = &hub;
        async move {
            admin(hub)
                .await
                .verify_audit_trail(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let v = verify("bradford").await;
    assert!(v.intact, "{v:?}");
    assert_eq!((v.records, v.chained), (4, 4));
    let ok = hubctl(
        &hub,
        Some(STEWARD),
        &["audit", "verify", "--partnership", "bradford"],
    )
    .await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("intact"), "{}", ok.stdout);

    let client = async_nats::connect(hub.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    // Someone with the projection's NATS rights adds a record to Leeds's
    // trail: without the chain key it cannot be made to fit.
    hub.pickups()
        .await
        .list_pickups(authed(
            ListPickupsRequest {
                partnership_code: "leeds".into(),
                ..Default::default()
            },
            LEEDS_CARAT,
        ))
        .await
        .unwrap();
    let forged = Event {
        event_id: "forged-1".into(),
        event_type: "person_level_read".into(),
        partnership_code: "leeds".into(),
        actor_user_id: "dev-leeds-carat-1".into(),
        payload: Some(Payload::PersonLevelRead(PersonLevelRead {
            rpc: "ListPickups".into(),
            chain_link: 2,
            mac: vec![0; 32],
            ..Default::default()
        })),
        ..Default::default()
    };
    js.publish("hub.audit.leeds", forged.encode_to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let v = verify("leeds").await;
    assert!(!v.intact);
    assert_eq!(v.broken_at_link, 2);
    assert!(v.problem.contains("MAC does not match"), "{}", v.problem);
    // A steward of Bradford may not check Leeds.
    let refused = admin(&hub)
        .await
        .verify_audit_trail(authed(
            VerifyAuditTrailRequest {
                partnership_code: "leeds".into(),
            },
            STEWARD,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Nobody can remove a record through NATS: the stream refuses
    // (deny_delete), whoever asks.
    let audit: Vec<u64> = hub
        .all_messages()
        .await
        .iter()
        .filter(|m| m.subject.as_str() == "hub.audit.bradford")
        .map(|m| m.sequence)
        .collect();
    let stream = js.get_stream("HUB_EVENTS").await.unwrap();
    assert!(stream.delete_message(audit[1]).await.is_err());
    assert_eq!(
        hub.all_messages().await.len() as u64,
        hub.stream_messages().await
    );
    // Only replacing the whole stream could drop one, which only the
    // operator's NATS user may do: put back without the second record, the
    // chain shows where it was.
    let messages = hub.all_messages().await;
    let config = stream.cached_info().config.clone();
    js.delete_stream("HUB_EVENTS").await.unwrap();
    js.create_stream(config).await.unwrap();
    for m in messages.iter().filter(|m| m.sequence != audit[1]) {
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in m.headers.iter() {
            if !name.to_string().starts_with("Nats-Expected") {
                for v in values {
                    headers.append(name.clone(), v.clone());
                }
            }
        }
        js.publish_with_headers(m.subject.to_string(), headers, m.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let v = verify("bradford").await;
    assert!(!v.intact);
    assert_eq!((v.broken_at_link, v.broken_at_sequence), (2, audit[2] - 1));
    assert!(v.problem.contains("link 2 missing"), "{}", v.problem);
    let broken = hubctl(
        &hub,
        Some(ADMIN),
        &["audit", "verify", "--partnership", "bradford"],
    )
    .await;
    assert_eq!(broken.code, 1);
    assert!(
        broken.stdout.contains("BROKEN at link 2"),
        "{}",
        broken.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_to_share_with_treatment_gates_prison_held_details_and_withdrawal_is_live() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    release(&mut prison, jo(), ConsentPurpose::GatePickup, true).await;
    let jo_ref = Some(by("A1234BC"));
    let triage = RecordPreReleaseTriageRequest {
        person: jo_ref.clone(),
        ..commands::triage(&request_id("tri"), "bradford")
    };
    prison
        .record_pre_release_triage(authed(triage, CARAT))
        .await
        .unwrap();
    let naloxone = RecordNaloxoneOnReleaseRequest {
        person: jo_ref.clone(),
        ..commands::naloxone_on_release(&request_id("nal"), "bradford")
    };
    prison
        .record_naloxone_on_release(authed(naloxone, CARAT))
        .await
        .unwrap();
    let flag = FlagImminentReleaseRequest {
        person: jo_ref,
        ..commands::flag(&request_id("flag"), "bradford")
    };
    let last = prison
        .flag_imminent_release(authed(flag, DIP))
        .await
        .unwrap()
        .into_inner()
        .stream_sequence;
    let details = |e: &hub_proto::projections::PickupEntry| {
        (e.triage_completed, e.naloxone_issued, e.flagged_imminent)
    };
    let carat = entries(&hub, last, CARAT).await.remove(0);
    assert_eq!(details(&carat), (true, true, true));
    assert_eq!(carat.consent, ConsentState::Given as i32);
    assert!(carat.consent_since.is_some());
    let treatment = entries(&hub, last, TREATMENT).await.remove(0);
    assert_eq!(details(&treatment), (false, false, false));
    assert_eq!(
        treatment.share_with_treatment,
        ConsentState::ConsentUnknown as i32
    );
    assert_eq!(treatment.share_with_treatment_since, None);
    assert_eq!(treatment.display_name, "Jolene Featherstonehaugh");

    let given = consent(
        &mut prison,
        by("A1234BC"),
        ConsentPurpose::ShareWithTreatment,
        true,
    )
    .await;
    let shared = entries(&hub, given, TREATMENT).await.remove(0);
    assert_eq!(details(&shared), (true, true, true));
    assert_eq!(shared.share_with_treatment, ConsentState::Given as i32);
    let since = shared.share_with_treatment_since.unwrap().seconds;
    assert!((now().seconds - since).abs() < 60);

    // Withdrawal shows at once on an open watch and the dashboard's live
    // feed, as a treatment worker sees them.
    let mut watch = watch_bradford(&mut hub.pickups().await, TREATMENT).await;
    let opened = next_entry(&mut watch).await;
    assert!(opened.triage_completed);
    let dash = hub.dashboard();
    let mut feed = live_feed(&dash, TREATMENT);
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, |s| {
        s.contains("\"share_with_treatment\":\"GIVEN\"")
    });
    consent(
        &mut prison,
        by("A1234BC"),
        ConsentPurpose::ShareWithTreatment,
        false,
    )
    .await;
    let withdrawn = next_entry(&mut watch).await;
    assert_eq!(details(&withdrawn), (false, false, false));
    assert_eq!(
        withdrawn.share_with_treatment,
        ConsentState::Withdrawn as i32
    );
    read_until(&mut feed, &mut seen, |s| {
        s.contains("\"share_with_treatment\":\"WITHDRAWN\"")
    });
    let update = seen
        .split("event: entry")
        .find(|e| e.contains("\"share_with_treatment\":\"WITHDRAWN\""))
        .unwrap();
    assert!(update.contains("\"triage_completed\":false"), "{update}");
    assert!(update.contains("\"naloxone_issued\":false"), "{update}");
    // The page says which consents are in force.
    let page = http(
        dash.addr(),
        "GET",
        "/partnerships/bradford/pickups",
        &[("Authorization", &format!("Bearer {TREATMENT}"))],
        None,
    )
    .unwrap();
    assert!(
        page.body.contains("Share with treatment: Withdrawn"),
        "{}",
        page.body
    );
    // CARAT workers still see what the prison recorded.
    assert_eq!(
        details(&entries(&hub, 0, CARAT).await[0]),
        (true, true, true)
    );
}

/// Jo's entry on bradford's list once `min_sequence` is applied: her name
/// (empty when redacted).
async fn jo_name(pickup: &hub_testkit::HubProcess, min_sequence: u64) -> String {
    let mut pickups = PickupListServiceClient::new(Hub::channel(pickup).await);
    let list = pickups
        .list_pickups(authed(bradford_list(min_sequence), CARAT))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(list.len(), 1, "{list:?}");
    list[0].display_name.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_older_backup_never_brings_an_erased_name_back() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    let last = release(&mut prison, jo(), ConsentPurpose::GatePickup, true).await;
    assert_eq!(jo_name(&hub.pickup, last).await, "Jolene Featherstonehaugh");
    let folder = tempfile::tempdir().unwrap();
    let before = folder.path().join("before");
    let after = folder.path().join("after");
    let made = run(command(
        &hub.nats.url(),
        &["backup", before.to_str().unwrap()],
    ))
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stdout.contains("erasure ledger: 0 erasures"),
        "{}",
        made.stdout
    );

    let erased = hubctl(&hub, Some(ADMIN), &["--json", "person", "erase", "A1234BC"])
        .await
        .json();
    let erased_at = erased["stream_sequence"].as_u64().unwrap();
    assert!(jo_name(&hub.pickup, erased_at).await.is_empty());
    let made = run(command(
        &hub.nats.url(),
        &["backup", after.to_str().unwrap()],
    ))
    .await;
    assert!(
        made.stdout.contains("erasure ledger: 1 erasures"),
        "{}",
        made.stdout
    );

    // The site loses its stream and key bucket (not the ledger), and
    // restores last night's backup, taken before the erasure.
    let secret = hub.dir.path().join("hub.secret");
    let mut hub = hub;
    for p in [
        &mut hub.custody,
        &mut hub.prison,
        &mut hub.pharmacy,
        &mut hub.treatment,
        &mut hub.ambulance,
        &mut hub.identity,
        &mut hub.pickup,
        &mut hub.training,
    ] {
        p.kill();
    }
    let Hub { mut nats, dir, .. } = hub;
    {
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        js.delete_stream("HUB_EVENTS").await.unwrap();
        js.delete_stream("KV_hub_person_keys").await.unwrap();
    }
    let restored = run(command(&nats.url(), &["restore", before.to_str().unwrap()])).await;
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    assert!(
        restored
            .stdout
            .contains("erasure ledger: 1 erasures (0 added to the ledger)")
            && restored.stdout.contains("1 erasure events put back"),
        "{}",
        restored.stdout
    );
    assert!(
        !restored.stdout.contains("0 data keys destroyed again"),
        "{}",
        restored.stdout
    );
    nats.kill();
    nats.restart().unwrap();
    let with_secret = |_: &str| vec![("HUB_SECRET_FILE".to_string(), secret.display().to_string())];
    let again = Hub::start_on(nats, with_secret).unwrap();
    let events = again.stream_messages().await;
    assert!(
        jo_name(&again.pickup, events).await.is_empty(),
        "the name stays erased"
    );
    rebuild_and_switch(&again.pickup).await;
    assert!(
        jo_name(&again.pickup, 0).await.is_empty(),
        "and after a rebuild"
    );
    drop(again);

    // A lost site: a new NATS with no ledger. The older backup with the
    // newer one's ledger keeps the name gone too.
    let mut lost = NatsServer::start().unwrap();
    let restored = run(command(
        &lost.url(),
        &[
            "restore",
            before.to_str().unwrap(),
            "--erasures-from",
            after.to_str().unwrap(),
        ],
    ))
    .await;
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    assert!(
        restored
            .stdout
            .contains("erasure ledger: 1 erasures (1 added to the ledger)"),
        "{}",
        restored.stdout
    );
    lost.kill();
    lost.restart().unwrap();
    let third = Hub::start_on(lost, with_secret).unwrap();
    let events = third.stream_messages().await;
    assert!(jo_name(&third.pickup, events).await.is_empty());
    drop(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn erasure_is_refused_while_the_pickup_projection_rebuilds() {
    let hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    release(&mut prison, jo(), ConsentPurpose::GatePickup, true).await;
    // Enough events that a rebuild takes a while: supplies to as many
    // people, published straight onto the stream.
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await.unwrap());
    let mut acks = Vec::new();
    let mut target = 0;
    for i in 0..20_000u32 {
        let e = Event {
            event_id: format!("filler-{i}"),
            event_type: "naloxone_supplied".into(),
            agency: "pharmacy".into(),
            partnership_code: "bradford".into(),
            org_code: "FW844".into(),
            person_key: format!("{:032x}", u128::from(i) + 1),
            occurred_at: Some(now()),
            recorded_at: Some(now()),
            payload: Some(Payload::NaloxoneSupplied(NaloxoneSupplied {
                pharmacy_code: "FW844".into(),
                kits: 1,
            })),
            ..Default::default()
        };
        acks.push(
            js.publish(
                "hub.events.pharmacy.bradford.naloxone_supplied",
                e.encode_to_vec().into(),
            )
            .await
            .unwrap(),
        );
        if acks.len() == 1000 || i == 19_999 {
            for a in acks.drain(..) {
                target = a.await.unwrap().sequence;
            }
        }
    }
    // Applied by the live consumer first (however long this machine takes).
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut pickups = hub.pickups().await;
    while let Err(e) = pickups
        .list_pickups(authed(bradford_list(target), CARAT))
        .await
    {
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(std::time::Instant::now() < deadline, "{e:?}");
    }
    let settled = target;
    let mut status = hub.projection_status().await;
    let mut progress = status
        .rebuild_projection(authed(RebuildProjectionRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner();
    let first = progress.message().await.unwrap().unwrap();
    assert!(
        !first.switched && first.applied_sequence < settled,
        "{first:?}"
    );
    let refused = admin(&hub)
        .await
        .erase_person(authed(
            ErasePersonRequest {
                identifier: "A1234BC".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("rebuilding"),
        "{}",
        refused.message()
    );
    while let Some(p) = progress.message().await.unwrap() {
        if p.switched {
            break;
        }
    }
    // Nothing was erased; once rebuilt, the erasure goes through.
    assert_eq!(jo_name(&hub.pickup, 0).await, "Jolene Featherstonehaugh");
    let erased = admin(&hub)
        .await
        .erase_person(authed(
            ErasePersonRequest {
                identifier: "A1234BC".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(erased.applied_sequence >= settled);
    assert!(jo_name(&hub.pickup, erased.stream_sequence)
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_expires_a_name_after_the_period_while_counts_stay() {
    let hub = Hub::start_on(NatsServer::start().unwrap(), |name| {
        if name == "pickup-projection" {
            vec![
                ("HUB_RETENTION_PERIOD".into(), "8s".into()),
                ("HUB_RETENTION_SWEEP_INTERVAL".into(), "1s".into()),
            ]
        } else {
            Vec::new()
        }
    })
    .unwrap();
    let mut prison = hub.prison().await;
    release(&mut prison, jo(), ConsentPurpose::GatePickup, true).await;
    let mut treatment = TreatmentServiceClient::new(Hub::channel(&hub.treatment).await);
    treatment
        .record_overdose_training(authed(
            RecordOverdoseTrainingRequest {
                request_id: request_id("trn"),
                partnership_code: "bradford".into(),
                occurred_at: Some(now()),
                service_code: "TRT01".into(),
                person: Some(by("A1234BC")),
                audience: TrainingAudience::PrisonLeaver as i32,
                naloxone_kit_supplied: true,
            },
            TREATMENT,
        ))
        .await
        .unwrap();
    let last = release(&mut prison, sam(), ConsentPurpose::GatePickup, true).await;
    let names = |list: Vec<hub_proto::projections::PickupEntry>| {
        let mut n: Vec<String> = list.into_iter().map(|e| e.display_name).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(entries(&hub, last, CARAT).await),
        ["Jolene Featherstonehaugh", "Samir Oyelaran-Whitcombe"]
    );
    let training = || {
        let hub = &hub;
        async move {
            TrainingCountsServiceClient::new(Hub::channel(&hub.training).await)
                .get_training_counts(authed(
                    GetTrainingCountsRequest {
                        partnership_code: "bradford".into(),
                        min_sequence: 0,
                        ..Default::default()
                    },
                    ADMIN,
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let counts_before = training().await;
    assert_eq!(counts_before.prison_leavers_trained, 1);
    let status = || {
        let hub = &hub;
        async move {
            admin(hub)
                .await
                .get_retention_status(authed(GetRetentionStatusRequest::default(), ADMIN))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let held = status().await;
    assert_eq!(
        (held.period_seconds, held.people_held, held.people_expired),
        (8, 2, 0)
    );
    assert_eq!(held.upcoming.iter().map(|d| d.people).sum::<u32>(), 2);

    // Sam keeps having events; Jo has none.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        consent(&mut prison, by("B2345CD"), ConsentPurpose::GatePickup, true).await;
        if status().await.people_expired >= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Jo never expired");
    }
    let after = names(entries(&hub, 0, CARAT).await);
    assert_eq!(
        after,
        ["", "Samir Oyelaran-Whitcombe"],
        "Jo's name expired, Sam's did not"
    );
    assert_eq!(
        training().await.quarters,
        counts_before.quarters,
        "counts stay"
    );
    // Recorded as an erasure with reason `retention`.
    let erasures: Vec<Event> = hub
        .all_messages()
        .await
        .iter()
        .filter(|m| m.subject.as_str() == "hub.admin.person_erased")
        .map(|m| Event::decode(m.payload.clone()).unwrap())
        .collect();
    assert_eq!(erasures.len(), 1);
    match &erasures[0].payload {
        Some(Payload::PersonErased(p)) => assert_eq!(p.reason, "retention"),
        other => panic!("{other:?}"),
    }
    // The dashboard shows nothing that expired.
    let dash = hub.dashboard();
    let page = http(
        dash.addr(),
        "GET",
        "/partnerships/bradford/pickups",
        &[("Authorization", &format!("Bearer {CARAT}"))],
        None,
    )
    .unwrap();
    assert!(
        !page.body.contains("Jolene") && page.body.contains("Samir"),
        "{}",
        page.body
    );
    let json = hubctl(&hub, Some(ADMIN), &["--json", "retention", "status"])
        .await
        .json();
    assert_eq!(json["period_seconds"], 8);
    assert_eq!(json["people_expired"], 1);
    assert_eq!(json["people_held"], 1);
    let table = hubctl(&hub, Some(ADMIN), &["retention", "status"]).await;
    assert!(
        table.stdout.contains("8 seconds with no event"),
        "{}",
        table.stdout
    );
}

/// Records a release with a name and gate pick-up consent for each of
/// `numbers`; the last sequence.
async fn named_people(
    prison: &mut PrisonServiceClient<Channel>,
    numbers: std::ops::Range<u32>,
) -> u64 {
    let mut last = 0;
    for i in numbers {
        let who = person(&format!("A{i:04}BC"), "Person", &format!("Number{i}"));
        last = release(prison, who, ConsentPurpose::GatePickup, true).await;
    }
    last
}

async fn key_versions(hub: &Hub) -> Vec<hub_proto::admin::KeyVersion> {
    admin(hub)
        .await
        .list_key_versions(authed(ListKeyVersionsRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner()
        .versions
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_under_load_and_every_name_reads_after_the_old_version_is_retired() {
    let mut hub = Hub::start().unwrap();
    let mut prison = hub.prison().await;
    named_people(&mut prison, 1..31).await;
    let v = key_versions(&hub).await;
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].version, v[0].state.as_str(), v[0].data_keys),
        (0, "CURRENT", 30)
    );
    let retire = |version: u32| {
        let hub = &hub;
        async move {
            admin(hub)
                .await
                .retire_key_version(authed(RetireKeyVersionRequest { version }, ADMIN))
                .await
        }
    };
    let refused = retire(0).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("current"),
        "{}",
        refused.message()
    );

    // Commands and reads go on while the keys are re-wrapped.
    let load = {
        let channel = Hub::channel(&hub.prison).await;
        let pickup = Hub::channel(&hub.pickup).await;
        tokio::spawn(async move {
            let mut prison = PrisonServiceClient::new(channel);
            let mut pickups = PickupListServiceClient::new(pickup);
            for i in 100..140 {
                named_people(&mut prison, i..i + 1).await;
                pickups
                    .list_pickups(authed(bradford_list(0), CARAT))
                    .await
                    .unwrap();
            }
        })
    };
    let mut progress = admin(&hub)
        .await
        .rotate_keys(authed(RotateKeysRequest { resume: false }, ADMIN))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.unwrap() {
        last = Some(p);
    }
    let last = last.unwrap();
    assert!(
        last.done && last.version == 1 && last.total >= 30,
        "{last:?}"
    );
    load.await.unwrap();
    // Keys made under version 0 while services still took it for current
    // are re-wrapped by resuming; then version 0 can go.
    let resumed = hubctl(&hub, Some(ADMIN), &["keys", "rotate", "--resume"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let v = key_versions(&hub).await;
    assert_eq!(
        v.iter()
            .map(|k| (k.version, k.state.as_str(), k.data_keys))
            .collect::<Vec<_>>(),
        [(0, "ACTIVE", 0), (1, "CURRENT", 70)]
    );
    // Services may take version 0 for current a few seconds more: until
    // then it is not retired.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = retire(0).await {
        assert!(e.message().contains("stopped being current"), "{e:?}");
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(key_versions(&hub).await[0].state, "RETIRED");
    // A second rotation, and its old version retired from the command line.
    let rotated = hubctl(&hub, Some(ADMIN), &["keys", "rotate"]).await;
    assert!(
        rotated.stdout.contains("wrapped under version 2"),
        "{}",
        rotated.stdout
    );
    let early = hubctl(&hub, Some(ADMIN), &["keys", "retire", "1"]).await;
    early.refused(1, &["stopped being current"]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    hubctl(&hub, Some(ADMIN), &["keys", "rotate", "--resume"]).await;
    let retired = hubctl(&hub, Some(ADMIN), &["--json", "keys", "retire", "1"])
        .await
        .json();
    assert_eq!(retired["versions"][1]["state"], "RETIRED");
    assert_eq!(retired["versions"][2]["data_keys"], 70);

    // Every name still reads, from a projection with nothing cached, and
    // new people are sealed under the current version.
    hub.pickup.kill();
    hub.pickup.restart().unwrap();
    let newest = named_people(&mut prison, 200..201).await;
    let list = entries(&hub, newest, CARAT).await;
    assert_eq!(list.len(), 71);
    assert!(
        list.iter()
            .all(|e| e.display_name.starts_with("Person Number")),
        "{list:?}"
    );
    assert_eq!(key_versions(&hub).await[2].data_keys, 71);
}
