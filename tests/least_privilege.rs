//! The hub under deploy/nats/hub.conf: every process with its own NATS user
//! and only the permissions it needs. The whole hub still works, and a
//! process cannot publish what is not its own.

use std::time::Duration;

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
use hub_testkit::{workspace_root, NatsServer};
use hub_tests::{commands::*, *};

const PROCESSES: [&str; 9] = [
    "custody-service",
    "prison-service",
    "pharmacy-service",
    "treatment-service",
    "ambulance-service",
    "identity-service",
    "pickup-projection",
    "training-projection",
    "hub-operator",
];

fn password(process: &str) -> String {
    format!("pw-{process}-{}", std::process::id())
}

fn env_name(process: &str) -> String {
    format!("HUB_NATS_PASS_{}", process.to_uppercase().replace('-', "_"))
}

/// Publishes `subject` as `user` and waits for JetStream's ack.
async fn publish_as(url: &str, user: &str, subject: &str) -> Result<u64, String> {
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password(user))
        .connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    let attempt = async {
        let ack = js
            .publish(subject.to_string(), "not an event".into())
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|a| a.sequence).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .unwrap_or_else(|_| Err("no acknowledgement".into()))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_process_has_only_the_permissions_it_needs() {
    let env: Vec<_> = PROCESSES
        .iter()
        .map(|p| (env_name(p), password(p)))
        .collect();
    let nats =
        NatsServer::start_with(Some(&workspace_root().join("deploy/nats/hub.conf")), &env).unwrap();
    let url = nats.url();
    let mut hub = Hub::start_on(nats, |name| {
        vec![
            ("HUB_NATS_USER".into(), name.to_string()),
            ("HUB_NATS_PASSWORD".into(), password(name)),
        ]
    })
    .unwrap();
    hub.operator = Some(("hub-operator".into(), password("hub-operator")));

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

    // The custody service's user cannot publish a prison event, nor the
    // projections' users any event; each agency may publish its own.
    assert!(publish_as(
        &url,
        "custody-service",
        "hub.events.prison.bradford.release_date_recorded"
    )
    .await
    .is_err());
    assert!(publish_as(&url, "custody-service", "hub.audit.bradford")
        .await
        .is_err());
    assert!(publish_as(
        &url,
        "training-projection",
        "hub.events.custody.bradford.custody_workforce_recorded"
    )
    .await
    .is_err());
    assert!(publish_as(
        &url,
        "pickup-projection",
        "hub.events.prison.bradford.release_date_recorded"
    )
    .await
    .is_err());
    assert!(publish_as(
        &url,
        "custody-service",
        "hub.events.custody.bradford.custody_workforce_recorded"
    )
    .await
    .is_ok());
    // Without a password, nothing.
    assert!(
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(&url)
            .await
            .is_err()
            || publish_as(&url, "nobody", "hub.events.custody.x.y")
                .await
                .is_err()
    );
    hub.nats.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tls_required_the_hub_still_works_and_plain_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = workspace_root();
    let status = std::process::Command::new("bash")
        .arg(root.join("deploy/nats/make-test-ca.sh"))
        .arg(dir.path().join("tls"))
        .status()
        .unwrap();
    assert!(status.success());
    // deploy/nats/hub-tls.conf, with the certificate paths of this test.
    std::fs::copy(
        root.join("deploy/nats/hub.conf"),
        dir.path().join("hub.conf"),
    )
    .unwrap();
    let tls_conf = std::fs::read_to_string(root.join("deploy/nats/hub-tls.conf"))
        .unwrap()
        .replace(
            "var/tls/",
            &format!("{}/", dir.path().join("tls").display()),
        );
    std::fs::write(dir.path().join("hub-tls.conf"), tls_conf).unwrap();

    let env: Vec<_> = PROCESSES
        .iter()
        .map(|p| (env_name(p), password(p)))
        .collect();
    let nats = NatsServer::start_with(Some(&dir.path().join("hub-tls.conf")), &env).unwrap();
    let url = nats.url();
    let tls = dir.path().join("tls");
    let hub = Hub::start_on(nats, |name| {
        vec![
            ("HUB_NATS_USER".into(), name.to_string()),
            ("HUB_NATS_PASSWORD".into(), password(name)),
            (
                "HUB_NATS_TLS_CA".into(),
                tls.join("ca.pem").display().to_string(),
            ),
            (
                "HUB_NATS_TLS_CERT".into(),
                tls.join("client.pem").display().to_string(),
            ),
            (
                "HUB_NATS_TLS_KEY".into(),
                tls.join("client-key.pem").display().to_string(),
            ),
        ]
    })
    .unwrap();
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
    // A client without TLS gets nowhere, even with a good password.
    assert!(publish_as(
        &url,
        "prison-service",
        "hub.events.prison.bradford.release_date_recorded"
    )
    .await
    .is_err());
}
