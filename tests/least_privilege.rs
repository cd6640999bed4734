//! The hub under deploy/nats/hub.conf (users and rights from
//! accounts.conf): every process with its own NATS user and only the
//! rights it needs. The whole hub still works; and signed in as each user,
//! every action that could destroy the log, read what is not its own or
//! write a data key is refused, whoever tries it.

use std::time::Duration;

use async_nats::{Client, Event, ServerError};

use hub_proto::{
    admin::{
        admin_service_client::AdminServiceClient, ErasePersonRequest, ListAuditRecordsRequest,
    },
    common::TrainingAudience,
    projections::{
        pickup_list_service_client::PickupListServiceClient,
        training_counts_service_client::TrainingCountsServiceClient, GetTrainingCountsRequest,
        ListPickupsRequest,
    },
    treatment::{treatment_service_client::TreatmentServiceClient, RecordOverdoseTrainingRequest},
};
use hub_testkit::{workspace_root, NatsAccounts, NatsServer};
use hub_tests::{commands::*, *};

/// The whole hub on nats-server with `config` (of deploy/nats/), each
/// process signed in as its own user of `accounts`; the stream and the
/// buckets created first by the operator, as only it may. Also the URL.
fn hub_under(config: &str, accounts: &NatsAccounts) -> (Hub, String) {
    let nats = NatsServer::start_with(
        Some(&workspace_root().join("deploy/nats").join(config)),
        &accounts.server_env(),
    )
    .unwrap();
    let url = nats.url();
    nats_init(&url, &accounts.client_env("hub-operator"), &[]);
    let hub = Hub::start_on(nats, |name| accounts.client_env(name)).unwrap();
    (hub, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_process_has_only_the_permissions_it_needs() {
    let accounts = NatsAccounts::new(None).unwrap();
    let (mut hub, _) = hub_under("hub.conf", &accounts);
    hub.operator = Some(("hub-operator".into(), accounts.password("hub-operator")));

    // Every agency service records through its own user.
    let mut last = 0;
    // (The handover, last, would take the person off the list read below.)
    for (agency, rpc) in RPCS.iter().filter(|(_, r)| *r != "RecordHandover") {
        let ack = send(&hub, agency, rpc, ADMIN, "bradford", &request_id("lp"))
            .await
            .unwrap_or_else(|e| panic!("{agency}.{rpc} under least privilege: {e:?}"));
        last = last.max(ack.stream_sequence);
    }
    let mut treatment = TreatmentServiceClient::new(Hub::channel(&hub.treatment).await);
    let ack = treatment
        .record_overdose_training(authed(
            RecordOverdoseTrainingRequest {
                audience: TrainingAudience::ServiceUser as i32,
                ..overdose_training(&request_id("lp"), "bradford")
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    last = last.max(ack.stream_sequence);
    // A retried command is recognised without the right to read the
    // stream by sequence: the same answer, nothing recorded twice; and a
    // request id reused for another body is refused.
    let id = request_id("lp-retry");
    // The very same request twice (built once: its occurred_at is the
    // clock's second, and a retry straddling a second would be another body).
    let retried = release_date(&id, "bradford");
    let mut prison = hub.prison().await;
    let first = prison
        .record_release_date(authed(retried.clone(), CARAT))
        .await
        .unwrap()
        .into_inner();
    let again = prison
        .record_release_date(authed(retried, CARAT))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate && !first.duplicate);
    assert_eq!(
        (again.event_id, again.stream_sequence),
        (first.event_id, first.stream_sequence)
    );
    let other = send(&hub, "prison", "RecordConsent", CARAT, "bradford", &id)
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::AlreadyExists, "{other:?}");
    last = last.max(first.stream_sequence);
    // Both projections consume, read, audit, erase.
    let mut pickups = PickupListServiceClient::new(Hub::channel(&hub.pickup).await);
    let list = ListPickupsRequest {
        partnership_code: "bradford".into(),
        min_sequence: last,
        ..Default::default()
    };
    assert!(!pickups
        .list_pickups(authed(list, CARAT))
        .await
        .unwrap()
        .into_inner()
        .entries
        .is_empty());
    let mut training = TrainingCountsServiceClient::new(Hub::channel(&hub.training).await);
    let counts = GetTrainingCountsRequest {
        partnership_code: "bradford".into(),
        min_sequence: last,
        ..Default::default()
    };
    training
        .get_training_counts(authed(counts, ADMIN))
        .await
        .unwrap();
    let mut admin = AdminServiceClient::new(Hub::channel(&hub.pickup).await);
    admin
        .erase_person(authed(
            ErasePersonRequest {
                identifier: "A1234BC".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap();
    let audit = ListAuditRecordsRequest {
        partnership_code: "bradford".into(),
        ..Default::default()
    };
    assert_eq!(
        admin
            .list_audit_records(authed(audit, ADMIN))
            .await
            .unwrap()
            .into_inner()
            .records
            .len(),
        1
    );

    hub.nats.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tls_required_the_hub_still_works_and_plain_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = NatsAccounts::new(Some(&dir.path().join("tls"))).unwrap();
    let (hub, url) = hub_under("hub-tls.conf", &accounts);
    let ack = send(
        &hub,
        "prison",
        "RecordReleaseDate",
        CARAT,
        "bradford",
        &request_id("tls"),
    )
    .await
    .unwrap();
    let mut pickups = PickupListServiceClient::new(Hub::channel(&hub.pickup).await);
    let list = ListPickupsRequest {
        partnership_code: "bradford".into(),
        min_sequence: ack.stream_sequence,
        ..Default::default()
    };
    assert_eq!(
        pickups
            .list_pickups(authed(list, CARAT))
            .await
            .unwrap()
            .into_inner()
            .entries
            .len(),
        1
    );
    // A client without TLS gets nowhere, even with a good password; nor
    // one with TLS but without a client certificate.
    let plain = async_nats::ConnectOptions::with_user_and_password(
        "prison-service".into(),
        accounts.password("prison-service"),
    )
    .connection_timeout(Duration::from_secs(2))
    .max_reconnects(Some(1));
    assert!(plain.connect(&url).await.is_err());
    let no_cert = async_nats::ConnectOptions::with_user_and_password(
        "prison-service".into(),
        accounts.password("prison-service"),
    )
    .add_root_certificates(accounts.tls.as_ref().unwrap().ca.clone())
    .require_tls(true)
    .connection_timeout(Duration::from_secs(2))
    .max_reconnects(Some(1));
    assert!(no_cert.connect(&url).await.is_err());
    // With both, the right user signs in.
    assert!(connect_as(&accounts, &url, "prison-service").await.is_ok());
}

/// A NATS client signed in as one user, with the server's refusals (the
/// `-ERR 'Permissions Violation ...'` it sends back) collected.
struct SignedIn {
    user: &'static str,
    client: Client,
    refusals: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl SignedIn {
    async fn new(accounts: &NatsAccounts, url: &str, user: &'static str) -> Self {
        let (tx, refusals) = tokio::sync::mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_user_and_password(
            user.into(),
            accounts.password(user),
        )
        .custom_inbox_prefix(hub_runtime::eventlog::inbox_prefix(user))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(ServerError::Other(e)) = event {
                    let _ = tx.send(e);
                }
            }
        })
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("{user} signs in: {e}"));
        Self {
            user,
            client,
            refusals,
        }
    }

    /// Whether the server refuses to let this user publish to `subject`
    /// (its answer arrives within moments; none within 2 s is a yes).
    async fn may_not_publish(&mut self, subject: &str, body: &str) -> bool {
        while self.refusals.try_recv().is_ok() {}
        self.client
            .publish(subject.to_string(), body.to_string().into())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        self.refused(&format!("publish to \"{subject}\"")).await
    }

    /// Whether the server refuses this user a subscription to `subject`.
    async fn may_not_subscribe(&mut self, subject: &str) -> bool {
        while self.refusals.try_recv().is_ok() {}
        let _sub = self.client.subscribe(subject.to_string()).await.unwrap();
        self.client.flush().await.unwrap();
        self.refused(&format!("subscription to \"{subject}\""))
            .await
    }

    async fn refused(&mut self, what: &str) -> bool {
        let wanted = what.to_lowercase();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.refusals.recv()).await {
            if e.to_lowercase().contains(&wanted) {
                return true;
            }
        }
        false
    }
}

const AGENCIES: [&str; 6] = [
    "custody",
    "prison",
    "pharmacy",
    "treatment",
    "ambulance",
    "identity",
];

#[tokio::test(flavor = "multi_thread")]
async fn signed_in_as_each_user_every_forbidden_action_is_refused() {
    let accounts = NatsAccounts::new(None).unwrap();
    let (hub, url) = hub_under("hub.conf", &accounts);
    // Something to protect: a release (with a data key) and its audit.
    let ack = send(
        &hub,
        "prison",
        "RecordReleaseDate",
        CARAT,
        "bradford",
        &request_id("lp"),
    )
    .await
    .unwrap();
    hub.list_bradford(ack.stream_sequence, CARAT).await;
    let operator = connect_as(&accounts, &url, "hub-operator").await.unwrap();
    let js = async_nats::jetstream::new(operator.clone());
    let held = js
        .get_stream("HUB_EVENTS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert!(held.config.deny_delete && held.config.deny_purge && !held.config.allow_rollup);

    // What nobody but the operator may do to the stream, the key bucket
    // and the erasure ledger.
    let destroy = [
        "$JS.API.STREAM.UPDATE.HUB_EVENTS",
        "$JS.API.STREAM.DELETE.HUB_EVENTS",
        "$JS.API.STREAM.PURGE.HUB_EVENTS",
        "$JS.API.STREAM.MSG.DELETE.HUB_EVENTS",
        "$JS.API.STREAM.UPDATE.KV_hub_person_keys",
        "$JS.API.STREAM.DELETE.KV_hub_person_keys",
        "$JS.API.STREAM.PURGE.KV_hub_person_keys",
        "$JS.API.STREAM.DELETE.KV_hub_erasures",
        "$JS.API.STREAM.CREATE.HUB_EVENTS2",
    ];
    let users = NatsAccounts::USERS.iter().filter(|u| **u != "hub-operator");
    for &user in users {
        let mut me = SignedIn::new(&accounts, &url, user).await;
        let agency = user
            .strip_suffix("-service")
            .filter(|a| AGENCIES.contains(a));
        for subject in destroy {
            assert!(me.may_not_publish(subject, "{}").await, "{user}: {subject}");
        }
        // No one reads another's replies: not the common inbox, not
        // another process's.
        for inbox in [
            "_INBOX.>",
            "_INBOX_pickup_projection.>",
            "_INBOX_prison_service.>",
            ">",
        ] {
            if inbox == format!("{}.>", hub_runtime::eventlog::inbox_prefix(user)) {
                continue;
            }
            assert!(me.may_not_subscribe(inbox).await, "{user}: {inbox}");
        }
        // Nor answers for the key service, but the key service.
        if user != "key-service" {
            assert!(me.may_not_subscribe("hub_keys.create").await, "{user}");
        }
        // No event but one's own agency's, and no audit or admin record
        // but the pick-up projection's.
        for other in AGENCIES.iter().filter(|a| Some(**a) != agency) {
            let subject = format!("hub.events.{other}.bradford.release_date_recorded");
            assert!(me.may_not_publish(&subject, "x").await, "{user}: {subject}");
        }
        if user != "pickup-projection" {
            for subject in ["hub.audit.bradford", "hub.admin.person_erased"] {
                assert!(me.may_not_publish(subject, "x").await, "{user}: {subject}");
            }
            // Data keys: only the key service creates them, only the
            // pick-up projection (erasure, rotation) purges or re-wraps.
            if user != "key-service" {
                assert!(
                    me.may_not_publish(
                        "$KV.hub_person_keys.dk.00112233445566778899aabbccddeeff",
                        "x"
                    )
                    .await,
                    "{user}: write a data key"
                );
            }
            assert!(
                me.may_not_publish("$KV.hub_person_keys.kek.current", "9")
                    .await,
                "{user}: change the key-encryption key"
            );
        }
        if let Some(agency) = agency {
            // An agency reads back only its own agency's messages: not by
            // sequence, not through a consumer of another filter or of
            // everything, not through a projection's durable consumer.
            for subject in [
                "$JS.API.STREAM.MSG.GET.HUB_EVENTS".to_string(),
                "$JS.API.DIRECT.GET.HUB_EVENTS".to_string(),
                "$JS.API.CONSUMER.CREATE.HUB_EVENTS".to_string(),
                "$JS.API.CONSUMER.CREATE.HUB_EVENTS.mine".to_string(),
                "$JS.API.CONSUMER.CREATE.HUB_EVENTS.mine.hub.>".to_string(),
                "$JS.API.CONSUMER.CREATE.HUB_EVENTS.mine.hub.audit.bradford".to_string(),
                format!(
                    "$JS.API.CONSUMER.CREATE.HUB_EVENTS.pickup-projection.hub.events.{agency}.>"
                ),
                "$JS.API.CONSUMER.MSG.NEXT.HUB_EVENTS.pickup-projection".to_string(),
                "$JS.API.CONSUMER.DELETE.HUB_EVENTS.pickup-projection".to_string(),
                "$JS.API.STREAM.MSG.GET.KV_hub_person_keys".to_string(),
            ] {
                assert!(
                    me.may_not_publish(&subject, "{}").await,
                    "{user}: {subject}"
                );
            }
            for other in AGENCIES.iter().filter(|a| **a != agency) {
                let subject =
                    format!("$JS.API.CONSUMER.CREATE.HUB_EVENTS.mine.hub.events.{other}.>");
                assert!(
                    me.may_not_publish(&subject, "{}").await,
                    "{user}: {subject}"
                );
            }
            // Its own events it may publish, but not as a rollup that
            // would wipe the subject's earlier messages: the stream
            // refuses that.
            let js = async_nats::jetstream::new(me.client.clone());
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Rollup", "sub");
            let rollup = js
                .publish_with_headers(
                    format!("hub.events.{agency}.bradford.release_date_recorded"),
                    headers,
                    "x".into(),
                )
                .await
                .unwrap()
                .await;
            assert!(rollup.is_err(), "{user}: a rollup was accepted");
        }
        eprintln!("{} refused everything forbidden", me.user);
    }

    // Not even the operator can remove a message or purge the stream: the
    // stream itself refuses (deny_delete, deny_purge).
    let stream = js.get_stream("HUB_EVENTS").await.unwrap();
    assert!(stream.delete_message(ack.stream_sequence).await.is_err());
    assert!(stream.purge().await.is_err());
    let after = js
        .get_stream("HUB_EVENTS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(after.state.first_sequence, 1);
    assert!(after.state.messages >= held.state.messages);
    // And what the users were refused did not happen: the stream and the
    // data key are as they were.
    assert_eq!(after.config.deny_delete, held.config.deny_delete);
    let keys = js.get_key_value("hub_person_keys").await.unwrap();
    assert!(keys
        .get("dk.00112233445566778899aabbccddeeff")
        .await
        .unwrap()
        .is_none());
}
