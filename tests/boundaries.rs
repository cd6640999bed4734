//! The partnership boundary, from outside: what one partnership records
//! never shows in, changes or removes anything of another's, except by an
//! explicit handover; people who share only a client code stay two until a
//! data steward decides; a steward's link and unlink are followed live and
//! in a rebuild; looking outside one's partnerships breaks the glass and is
//! audited. Real nats-server, real binaries, real gRPC and HTTP clients.

use hub_proto::{
    admin::{admin_service_client::AdminServiceClient, ListAuditRecordsRequest},
    common::{ConsentPurpose, PersonRef},
    identity::{
        identity_service_client::IdentityServiceClient, LinkPeopleRequest, UnlinkPeopleRequest,
    },
    prison::{prison_service_client::PrisonServiceClient, *},
    projections::{
        pickup_list_service_client::PickupListServiceClient,
        training_counts_service_client::TrainingCountsServiceClient, GetPickupSummaryRequest,
        GetTrainingCountsRequest, ListPickupsRequest, ListPotentialDuplicatesRequest,
        LookupPersonRequest, PickupEntry, PickupStatus,
    },
    treatment::{
        treatment_service_client::TreatmentServiceClient, ArrangeGatePickupRequest,
        RecordGatePickupRequest, RecordOverdoseTrainingRequest,
    },
};
use hub_testkit::http;
use hub_tests::*;
use tonic::{transport::Channel, Code};

/// Bradford's person, as its prison knows her.
fn jolene() -> PersonRef {
    PersonRef {
        nhs_number: "943 476 5919".into(),
        prison_number: "A1234BC".into(),
        given_name: "Jolene".into(),
        family_name: "Featherstonehaugh".into(),
        ..Default::default()
    }
}

/// Jolene by her NHS number alone.
fn jolene_by_nhs() -> PersonRef {
    by_nhs("943 476 5919")
}

struct Clients {
    prison: PrisonServiceClient<Channel>,
    treatment: TreatmentServiceClient<Channel>,
    identity: IdentityServiceClient<Channel>,
    pickups: PickupListServiceClient<Channel>,
    training: TrainingCountsServiceClient<Channel>,
    admin: AdminServiceClient<Channel>,
    last: u64,
}

/// Sends a command and keeps the highest stream sequence seen.
macro_rules! record {
    ($c:expr, $client:ident . $method:ident, $token:expr, $req:expr) => {{
        let ack = $c
            .$client
            .$method(authed($req, $token))
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", stringify!($method)))
            .into_inner();
        $c.last = $c.last.max(ack.stream_sequence);
        ack
    }};
}

impl Clients {
    async fn new(hub: &Hub) -> Self {
        Self {
            prison: PrisonServiceClient::new(Hub::channel(&hub.prison).await),
            treatment: TreatmentServiceClient::new(Hub::channel(&hub.treatment).await),
            identity: IdentityServiceClient::new(Hub::channel(&hub.identity).await),
            pickups: PickupListServiceClient::new(Hub::channel(&hub.pickup).await),
            training: TrainingCountsServiceClient::new(Hub::channel(&hub.training).await),
            admin: AdminServiceClient::new(Hub::channel(&hub.pickup).await),
            last: 0,
        }
    }

    async fn list(&mut self, partnership: &str, token: &str) -> Vec<PickupEntry> {
        self.pickups
            .list_pickups(authed(
                ListPickupsRequest {
                    partnership_code: partnership.into(),
                    min_sequence: self.last,
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    async fn release_date(&mut self, p: &str, token: &str, person: PersonRef, days: i64) {
        record!(
            self,
            prison.record_release_date,
            token,
            RecordReleaseDateRequest {
                request_id: request_id("rd"),
                partnership_code: p.into(),
                occurred_at: Some(now()),
                prison_code: "LEI".into(),
                person: Some(person),
                release_date: london_day(days),
            }
        );
    }

    async fn consent(
        &mut self,
        p: &str,
        token: &str,
        person: PersonRef,
        purpose: ConsentPurpose,
        given: bool,
    ) {
        record!(
            self,
            prison.record_consent,
            token,
            RecordConsentRequest {
                request_id: request_id("consent"),
                partnership_code: p.into(),
                occurred_at: Some(now()),
                person: Some(person),
                purpose: purpose as i32,
                given,
            }
        );
    }

    /// Bradford's prison records Jolene's release in `days`, and her
    /// consent to be met at the gate.
    async fn jolene_leaves_in(&mut self, days: i64) {
        self.release_date("bradford", CARAT, jolene(), days).await;
        self.consent(
            "bradford",
            CARAT,
            by_prison("A1234BC"),
            ConsentPurpose::GatePickup,
            true,
        )
        .await;
    }

    async fn triage(&mut self, p: &str, token: &str, person: PersonRef) {
        record!(
            self,
            prison.record_pre_release_triage,
            token,
            RecordPreReleaseTriageRequest {
                request_id: request_id("triage"),
                partnership_code: p.into(),
                occurred_at: Some(now()),
                prison_code: "LEI".into(),
                person: Some(person),
            }
        );
    }

    async fn handover(
        &mut self,
        p: &str,
        token: &str,
        person: PersonRef,
        to: &str,
    ) -> Result<hub_proto::common::EventAck, tonic::Status> {
        let r = self
            .prison
            .record_handover(authed(
                RecordHandoverRequest {
                    request_id: request_id("handover"),
                    partnership_code: p.into(),
                    occurred_at: Some(now()),
                    prison_code: "LEI".into(),
                    person: Some(person),
                    to_partnership_code: to.into(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner());
        if let Ok(ack) = &r {
            self.last = self.last.max(ack.stream_sequence);
        }
        r
    }

    async fn lookup(
        &mut self,
        p: &str,
        token: &str,
        person: PersonRef,
        reason: &str,
    ) -> Result<Option<PickupEntry>, tonic::Status> {
        self.pickups
            .lookup_person(authed(
                LookupPersonRequest {
                    partnership_code: p.into(),
                    person: Some(person),
                    reason: reason.into(),
                    min_sequence: self.last,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner().entry)
    }

    async fn duplicates(&mut self, p: &str) -> Vec<(String, String)> {
        self.pickups
            .list_potential_duplicates(authed(
                ListPotentialDuplicatesRequest {
                    partnership_code: p.into(),
                    min_sequence: self.last,
                },
                STEWARD,
            ))
            .await
            .unwrap()
            .into_inner()
            .pairs
            .into_iter()
            .map(|d| (d.person_key_a, d.person_key_b))
            .collect()
    }

    /// Everything Bradford's readers can see, apart from the sequence.
    async fn bradford_view(&mut self) -> (Vec<PickupEntry>, String, String) {
        let list = self.list("bradford", CARAT).await;
        let mut summary = self
            .pickups
            .get_pickup_summary(authed(
                GetPickupSummaryRequest {
                    partnership_code: "bradford".into(),
                    min_sequence: self.last,
                    ..Default::default()
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner();
        summary.applied_sequence = 0;
        let mut counts = self
            .training
            .get_training_counts(authed(
                GetTrainingCountsRequest {
                    partnership_code: "bradford".into(),
                    min_sequence: self.last,
                    ..Default::default()
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner();
        counts.applied_sequence = 0;
        (list, format!("{summary:?}"), format!("{counts:?}"))
    }
}

fn dashboard_json(dash: &hub_testkit::HubProcess, path: &str, token: &str) -> serde_json::Value {
    let bearer = format!("Bearer {token}");
    let r = http(
        dash.addr(),
        "GET",
        path,
        &[("Authorization", &bearer)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    let mut v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["applied_sequence"] = 0.into();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn what_leeds_records_about_bradfords_person_never_shows_in_or_changes_bradfords() {
    let hub = Hub::start().unwrap();
    let mut c = Clients::new(&hub).await;
    // Bradford prepares to meet Jolene at the gate.
    c.jolene_leaves_in(5).await;
    c.triage("bradford", CARAT, by_prison("A1234BC")).await;
    record!(
        c,
        treatment.arrange_gate_pickup,
        DIP,
        ArrangeGatePickupRequest {
            request_id: request_id("gate"),
            partnership_code: "bradford".into(),
            occurred_at: Some(now()),
            person: Some(jolene_by_nhs()),
            worker_id: "dip-7".into(),
        }
    );
    let before = c.bradford_view().await;
    assert_eq!(before.0.len(), 1);
    assert_eq!(before.0[0].display_name, "Jolene Featherstonehaugh");
    let dash = hub.dashboard();
    let summary_path = "/api/partnerships/bradford/pickup-summary";
    let training_path = "/api/partnerships/bradford/training";
    let dash_before = (
        dashboard_json(&dash, summary_path, ADMIN),
        dashboard_json(&dash, training_path, ADMIN),
    );
    // A watcher of Bradford's list.
    let mut watch = watch_bradford(&mut c.pickups, CARAT).await;
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.person_key, before.0[0].person_key);

    // A Leeds CARAT worker, knowing only her NHS number, records under Leeds
    // everything a Leeds worker could: consent, another release date, a
    // name of their own, a cancellation, a training; Leeds' DIP (an admin
    // here) records the pick-up as met.
    let mut leeds_ref = jolene_by_nhs();
    leeds_ref.given_name = "Someone".into();
    leeds_ref.family_name = "Else".into();
    c.consent(
        "leeds",
        LEEDS_CARAT,
        jolene_by_nhs(),
        ConsentPurpose::GatePickup,
        false,
    )
    .await;
    c.release_date("leeds", LEEDS_CARAT, leeds_ref, 2).await;
    record!(
        c,
        treatment.record_gate_pickup,
        ADMIN,
        RecordGatePickupRequest {
            request_id: request_id("met"),
            partnership_code: "leeds".into(),
            occurred_at: Some(now()),
            person: Some(jolene_by_nhs()),
            met: true,
            accompanied_to_service: true,
        }
    );
    record!(
        c,
        treatment.record_overdose_training,
        ADMIN,
        RecordOverdoseTrainingRequest {
            request_id: request_id("trained"),
            partnership_code: "leeds".into(),
            occurred_at: Some(now()),
            service_code: "TRTLEEDS".into(),
            person: Some(jolene()),
            audience: hub_proto::common::TrainingAudience::PrisonLeaver as i32,
            naloxone_kit_supplied: true,
        }
    );
    record!(
        c,
        prison.cancel_release,
        LEEDS_CARAT,
        CancelReleaseRequest {
            request_id: request_id("cancel"),
            partnership_code: "leeds".into(),
            occurred_at: Some(now()),
            prison_code: "LEI".into(),
            person: Some(by_prison("A1234BC")),
        }
    );

    // Bradford's every read is as it was.
    assert_eq!(c.bradford_view().await, before);
    assert_eq!(
        (
            dashboard_json(&dash, summary_path, ADMIN),
            dashboard_json(&dash, training_path, ADMIN)
        ),
        dash_before
    );
    let looked = c
        .lookup("bradford", CARAT, jolene_by_nhs(), "")
        .await
        .unwrap()
        .expect("her entry");
    assert_eq!(looked.person_key, before.0[0].person_key);
    assert_eq!(looked.status, PickupStatus::Scheduled as i32);
    // Leeds' list shows none of Bradford's: not the name, not the checklist.
    for e in c.list("leeds", LEEDS_CARAT).await {
        assert_ne!(e.display_name, "Jolene Featherstonehaugh");
        assert!(!e.triage_completed && e.gate_worker_id.is_empty(), "{e:?}");
    }
    // The watcher heard nothing of Leeds: the next change it is sent is
    // Bradford's own, recorded after all of Leeds'.
    c.triage("bradford", CARAT, by_prison("A1234BC")).await;
    c.consent(
        "bradford",
        CARAT,
        by_prison("A1234BC"),
        ConsentPurpose::ShareWithTreatment,
        true,
    )
    .await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("a change within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(next.person_key, before.0[0].person_key);
    assert_eq!(next.status, PickupStatus::Scheduled as i32);
    assert_eq!(next.gate_worker_id, "dip-7");
    assert_eq!(next.display_name, "Jolene Featherstonehaugh");
    // Each entry the watch sent was audited, with the person it showed.
    let watched: Vec<_> = c
        .admin
        .list_audit_records(authed(
            ListAuditRecordsRequest {
                partnership_code: "bradford".into(),
                ..Default::default()
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner()
        .records
        .into_iter()
        .filter(|r| r.rpc == "WatchPickups")
        .collect();
    assert!(watched.len() >= 2, "{watched:?}");
    assert!(watched
        .iter()
        .all(|r| r.person_keys == [before.0[0].person_key.clone()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_client_code_is_a_potential_duplicate_until_a_steward_links_or_unlinks() {
    let hub = Hub::start().unwrap();
    let mut c = Clients::new(&hub).await;
    let with_code = |nhs: &str, name: &str| PersonRef {
        nhs_number: nhs.into(),
        client_code: "JS02031985M".into(),
        given_name: name.into(),
        family_name: "Smith".into(),
        ..Default::default()
    };
    c.release_date("bradford", CARAT, with_code("943 476 5919", "Jo"), 3)
        .await;
    c.release_date("bradford", CARAT, with_code("401 023 2137", "Jim"), 4)
        .await;
    let two = c.list("bradford", CARAT).await;
    assert_eq!(two.len(), 2, "two people, however alike their client codes");
    let keys: Vec<String> = two.iter().map(|e| e.person_key.clone()).collect();
    let mut pair = keys.clone();
    pair.sort();
    assert_eq!(
        c.duplicates("bradford").await,
        [(pair[0].clone(), pair[1].clone())]
    );
    // Only data stewards and admins list them.
    let denied = c
        .pickups
        .list_potential_duplicates(authed(
            ListPotentialDuplicatesRequest {
                partnership_code: "bradford".into(),
                min_sequence: 0,
            },
            CARAT,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let rebuild_agrees = |live: Vec<PickupEntry>| {
        let pickup = &hub.pickup;
        async move {
            rebuild_and_switch(pickup).await;
            live
        }
    };

    // The steward decides they are one person.
    let link = LinkPeopleRequest {
        request_id: request_id("link"),
        partnership_code: "bradford".into(),
        occurred_at: Some(now()),
        person_a: Some(jolene_by_nhs()),
        person_b: Some(by_nhs("401 023 2137")),
        reason: "the same man: one NHS number was mistyped by the GP".into(),
    };
    record!(c, identity.link_people, STEWARD, link);
    let one = c.list("bradford", CARAT).await;
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(c.duplicates("bradford").await.is_empty());
    let live = rebuild_agrees(one).await;
    assert_eq!(c.list("bradford", CARAT).await, live, "a rebuild agrees");

    // ... then that they are two after all.
    let unlink = UnlinkPeopleRequest {
        request_id: request_id("unlink"),
        partnership_code: "bradford".into(),
        occurred_at: Some(now()),
        person_a: Some(jolene_by_nhs()),
        person_b: Some(by_nhs("401 023 2137")),
        reason: "two brothers after all; birth dates checked with the GP".into(),
    };
    record!(c, identity.unlink_people, STEWARD, unlink);
    let again = c.list("bradford", CARAT).await;
    assert_eq!(again.len(), 2);
    assert_eq!(
        {
            let mut k: Vec<_> = again.iter().map(|e| e.person_key.clone()).collect();
            k.sort();
            k
        },
        pair
    );
    assert!(
        c.duplicates("bradford").await.is_empty(),
        "decided by a steward: not listed again"
    );
    let live = rebuild_agrees(again).await;
    assert_eq!(c.list("bradford", CARAT).await, live, "a rebuild agrees");

    // Stewards' commands refuse bad input, naming the field, recording nothing.
    let messages = hub.stream_messages().await;
    let bad = |mut r: LinkPeopleRequest, f: &dyn Fn(&mut LinkPeopleRequest)| {
        f(&mut r);
        r.request_id = request_id("bad");
        r
    };
    let base = LinkPeopleRequest {
        request_id: String::new(),
        partnership_code: "bradford".into(),
        occurred_at: Some(now()),
        person_a: Some(jolene_by_nhs()),
        person_b: Some(by_prison("A1234BC")),
        reason: "checked against the prison's records".into(),
    };
    for (field, f) in [
        (
            "reason",
            &(|r: &mut LinkPeopleRequest| r.reason = "too short".into())
                as &dyn Fn(&mut LinkPeopleRequest),
        ),
        ("reason", &|r: &mut LinkPeopleRequest| {
            r.reason = "x".repeat(501)
        }),
        ("person_b", &|r: &mut LinkPeopleRequest| {
            r.person_b = Some(PersonRef::default())
        }),
        ("person_b", &|r: &mut LinkPeopleRequest| {
            r.person_b = Some(jolene_by_nhs())
        }),
        ("partnership_code", &|r: &mut LinkPeopleRequest| {
            r.partnership_code = "atlantis".into()
        }),
    ] {
        let e = c
            .identity
            .link_people(authed(bad(base.clone(), f), STEWARD))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let e = c
        .identity
        .link_people(authed(bad(base.clone(), &|_| {}), CARAT))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(hub.stream_messages().await, messages, "nothing recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handover_moves_the_person_to_the_receiver_with_what_consent_allows() {
    let hub = Hub::start().unwrap();
    let mut c = Clients::new(&hub).await;
    // H1 consents to both; H2 to nothing.
    let h1 = PersonRef {
        prison_number: "H1111AA".into(),
        given_name: "Robin".into(),
        family_name: "Moves".into(),
        ..Default::default()
    };
    let h2 = PersonRef {
        prison_number: "H2222BB".into(),
        given_name: "Sam".into(),
        family_name: "Private".into(),
        ..Default::default()
    };
    c.release_date("bradford", CARAT, h1.clone(), 4).await;
    c.consent(
        "bradford",
        CARAT,
        by_prison("H1111AA"),
        ConsentPurpose::GatePickup,
        true,
    )
    .await;
    c.consent(
        "bradford",
        CARAT,
        by_prison("H1111AA"),
        ConsentPurpose::ShareWithTreatment,
        true,
    )
    .await;
    c.triage("bradford", CARAT, by_prison("H1111AA")).await;
    c.release_date("bradford", CARAT, h2.clone(), 6).await;
    c.triage("bradford", CARAT, by_prison("H2222BB")).await;
    assert_eq!(c.list("bradford", CARAT).await.len(), 2);
    assert!(c.list("leeds", LEEDS_CARAT).await.is_empty());

    // Bad handovers are refused, naming the field, recording nothing.
    let messages = hub.stream_messages().await;
    for to in ["", "atlantis", "bradford"] {
        let e = c
            .handover("bradford", CARAT, by_prison("H1111AA"), to)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{to:?}");
        assert!(
            e.message().contains("to_partnership_code"),
            "{}",
            e.message()
        );
    }
    let e = c
        .handover("bradford", CARAT, PersonRef::default(), "leeds")
        .await
        .unwrap_err();
    assert!(e.message().contains("person"), "{}", e.message());
    // The token must cover the sender.
    let e = c
        .handover("bradford", LEEDS_CARAT, by_prison("H1111AA"), "leeds")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(hub.stream_messages().await, messages);

    c.handover("bradford", CARAT, by_prison("H1111AA"), "leeds")
        .await
        .unwrap();
    c.handover("bradford", CARAT, by_prison("H2222BB"), "leeds")
        .await
        .unwrap();
    assert!(
        c.list("bradford", CARAT).await.is_empty(),
        "both left Bradford's list"
    );
    let leeds = c.list("leeds", LEEDS_CARAT).await;
    assert_eq!(leeds.len(), 2);
    let (r1, r2) = (&leeds[0], &leeds[1]);
    assert_eq!(
        (r1.handed_over_from.as_str(), r2.handed_over_from.as_str()),
        ("bradford", "bradford")
    );
    assert!(r1.handed_over_at.is_some());
    assert_eq!(
        r1.display_name, "Robin Moves",
        "GATE_PICKUP given: the name crosses"
    );
    assert!(
        r1.triage_completed,
        "SHARE_WITH_TREATMENT given: triage crosses"
    );
    assert!(r2.redacted && r2.display_name.is_empty(), "{r2:?}");
    assert!(
        !r2.triage_completed,
        "no SHARE_WITH_TREATMENT: triage stays behind"
    );
    assert_eq!(r2.release_date, london_day(6));

    // What Bradford records afterwards follows the same rule.
    c.consent(
        "bradford",
        CARAT,
        by_prison("H2222BB"),
        ConsentPurpose::ShareWithTreatment,
        true,
    )
    .await;
    record!(
        c,
        prison.record_release,
        CARAT,
        RecordReleaseRequest {
            request_id: request_id("released"),
            partnership_code: "bradford".into(),
            occurred_at: Some(now()),
            prison_code: "LEI".into(),
            person: Some(by_prison("H1111AA")),
        }
    );
    let leeds = c.list("leeds", LEEDS_CARAT).await;
    assert_eq!(leeds[0].status, PickupStatus::Released as i32);
    assert!(leeds[1].triage_completed, "consent to share given later");
    assert!(leeds[1].redacted, "still no GATE_PICKUP consent: no name");
    // Leeds acts on it; Bradford's list stays empty.
    record!(
        c,
        treatment.record_gate_pickup,
        ADMIN,
        RecordGatePickupRequest {
            request_id: request_id("met"),
            partnership_code: "leeds".into(),
            occurred_at: Some(now()),
            person: Some(by_prison("H1111AA")),
            met: true,
            accompanied_to_service: true,
        }
    );
    assert_eq!(
        c.list("leeds", LEEDS_CARAT).await[0].status,
        PickupStatus::PickedUp as i32
    );
    assert!(c.list("bradford", CARAT).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn breaking_the_glass_needs_a_reason_and_is_audited_for_the_owning_partnership() {
    let hub = Hub::start().unwrap();
    let mut c = Clients::new(&hub).await;
    c.jolene_leaves_in(2).await;

    // Leeds' worker, outside Bradford: no reason, or too short a one.
    for reason in ["", "curious"] {
        let e = c
            .lookup("bradford", LEEDS_CARAT, jolene_by_nhs(), reason)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{reason:?}");
        assert!(e.message().contains("reason"), "{}", e.message());
    }
    // An analyst may not look at all.
    let e = c
        .lookup(
            "bradford",
            ANALYST,
            jolene_by_nhs(),
            "a reason long enough to pass",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // With a reason: the entry, and an audit record for Bradford.
    let why = "released to Leeds tonight, checking the gate plan";
    let entry = c
        .lookup("bradford", LEEDS_CARAT, jolene_by_nhs(), why)
        .await
        .unwrap()
        .expect("her entry");
    assert_eq!(entry.display_name, "Jolene Featherstonehaugh");
    // Bradford's own worker needs no reason, and is not breaking the glass.
    c.lookup("bradford", CARAT, by_prison("A1234BC"), "")
        .await
        .unwrap()
        .expect("her entry");
    // Nobody there: still audited, with no rows.
    assert!(c
        .lookup("bradford", LEEDS_CARAT, by_prison("Z9999ZZ"), why)
        .await
        .unwrap()
        .is_none());

    let audit = |token: &'static str, break_glass_only: bool| {
        let mut admin = c.admin.clone();
        async move {
            admin
                .list_audit_records(authed(
                    ListAuditRecordsRequest {
                        partnership_code: "bradford".into(),
                        break_glass_only,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|r| r.into_inner().records)
        }
    };
    let glass = audit(ADMIN, true).await.unwrap();
    assert_eq!(glass.len(), 2, "{glass:?}");
    assert_eq!(glass[0].user_id, "dev-leeds-carat-1");
    assert_eq!(glass[0].break_glass_reason, why);
    assert_eq!(
        glass[0].person_keys,
        std::slice::from_ref(&entry.person_key)
    );
    assert_eq!(glass[0].rpc, "LookupPerson");
    assert_eq!(glass[1].rows, 0);
    // Bradford's data steward sees the same; every read, with it, Bradford's own.
    assert_eq!(audit(STEWARD, true).await.unwrap(), glass);
    let all = audit(STEWARD, false).await.unwrap();
    assert!(all.iter().any(|r| r.user_id == "dev-carat-1"
        && r.rpc == "LookupPerson"
        && r.break_glass_reason.is_empty()));
    assert_eq!(
        audit(CARAT, true).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // No reason is ever in the stream in clear.
    for m in hub.all_messages().await {
        assert!(
            !String::from_utf8_lossy(&m.payload).contains("gate plan"),
            "{}",
            m.subject
        );
    }
    // The owning partnership's page shows who looked and why.
    let dash = hub.dashboard();
    for token in [ADMIN, STEWARD] {
        let bearer = format!("Bearer {token}");
        let page = http(
            dash.addr(),
            "GET",
            "/partnerships/bradford",
            &[("Authorization", &bearer)],
            None,
        )
        .unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Break-the-glass reads"), "{}", page.body);
        assert!(page.body.contains(why) && page.body.contains("dev-leeds-carat-1"));
        assert!(page
            .body
            .contains("href=\"/api/partnerships/bradford/break-glass?format=csv\""));
        // And as a download, a line per read.
        let csv = http(
            dash.addr(),
            "GET",
            "/api/partnerships/bradford/break-glass?format=csv",
            &[("Authorization", &bearer)],
            None,
        )
        .unwrap();
        assert_eq!(csv.status, 200, "{}", csv.body);
        assert!(csv
            .header("content-disposition")
            .unwrap()
            .contains("bradford-break-glass.csv"));
        let lines: Vec<&str> = csv.body.lines().collect();
        assert_eq!(
            lines[0],
            "partnership_code,at,user_id,role,org_code,rows,break_glass_reason"
        );
        assert!(
            lines[1..].iter().any(|l| l.starts_with("bradford,")
                && l.contains(",dev-leeds-carat-1,")
                && l.contains(why)),
            "{}",
            csv.body
        );
    }
    // Nobody else sees who looked.
    for token in [ANALYST, LEEDS_CARAT] {
        let r = http(
            dash.addr(),
            "GET",
            "/api/partnerships/bradford/break-glass",
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .unwrap();
        assert_eq!(r.status, 403, "{token}: {}", r.body);
    }
}
