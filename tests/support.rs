//! A whole hub for a test: a real nats-server on a free port and the hub's
//! real binaries, each with their own temporary directories, driven through
//! real gRPC clients.

pub mod commands;

use std::path::{Path, PathBuf};

use anyhow::Result;
use async_nats::jetstream::{self, message::StreamMessage};
use hub_proto::{
    prison::prison_service_client::PrisonServiceClient,
    projections::{
        pickup_list_service_client::PickupListServiceClient,
        projection_status_service_client::ProjectionStatusServiceClient,
    },
};
use hub_testkit::{workspace_root, HubProcess, NatsServer};
use tonic::{transport::Channel, Request};

/// The settings every hub process of a test shares: NATS at `nats_url`
/// (one URL or several, comma-separated), the seeds, a fresh secret.
pub fn base_env(dir: &Path, nats_url: &str) -> Vec<(String, String)> {
    let root = workspace_root();
    let path = |p: PathBuf| p.display().to_string();
    hub_testkit::ensure_secret(&dir.join("hub.secret")).expect("a hub secret for the test");
    vec![
        ("HUB_NATS_URL".to_string(), nats_url.to_string()),
        (
            "HUB_TOKENS_FILE".into(),
            path(root.join("seeds/dev-tokens.json")),
        ),
        (
            "HUB_PARTNERSHIPS_FILE".into(),
            path(root.join("seeds/partnerships.tsv")),
        ),
        ("HUB_SECRET_FILE".into(), path(dir.join("hub.secret"))),
        ("RUST_LOG".into(), "info".into()),
    ]
}

/// Starts the hub binary `name` with `env`, its store and log under `dir`.
pub fn start_process(dir: &Path, env: &[(String, String)], name: &str) -> Result<HubProcess> {
    let mut env = env.to_vec();
    env.push(("HUB_DATA_DIR".into(), dir.join(name).display().to_string()));
    HubProcess::start(name, &env, &dir.join(format!("{name}.log")))
}

/// A plain NATS client signed in as `user` of `accounts` (over TLS when
/// they have a CA), with that user's inbox prefix.
pub async fn connect_as(
    accounts: &hub_testkit::NatsAccounts,
    urls: &str,
    user: &str,
) -> Result<async_nats::Client> {
    let mut options =
        async_nats::ConnectOptions::with_user_and_password(user.into(), accounts.password(user))
            .custom_inbox_prefix(hub_runtime::eventlog::inbox_prefix(user))
            .connection_timeout(std::time::Duration::from_secs(5));
    if let Some(ca) = &accounts.tls {
        options = options
            .add_root_certificates(ca.ca.clone())
            .add_client_certificate(ca.client_cert.clone(), ca.client_key.clone())
            .require_tls(true);
    }
    let servers: Vec<async_nats::ServerAddr> = urls
        .split(',')
        .map(|u| u.parse())
        .collect::<Result<_, _>>()?;
    Ok(options.connect(servers).await?)
}

/// `hubctl nats init` as the operator: what must exist before services
/// that may not create it start.
pub fn nats_init(urls: &str, operator_env: &[(String, String)], extra: &[(&str, &str)]) {
    let out = std::process::Command::new(hub_testkit::binary("hubctl").expect("hubctl built"))
        .args(["nats", "init"])
        .env("HUB_NATS_URL", urls)
        .envs(operator_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(extra.iter().copied())
        .output()
        .expect("hubctl runs");
    assert!(
        out.status.success(),
        "hubctl nats init: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every message of the event stream, read by a plain NATS client.
pub async fn stream_messages(js: &jetstream::Context) -> Vec<StreamMessage> {
    let mut stream = js.get_stream("HUB_EVENTS").await.expect("stream exists");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        // A sequence the stream does not hold is skipped; any other error
        // (a cluster still electing a leader after a server came back, a
        // timeout) is asked again, never read as a missing message, which
        // would look like a lost command.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match stream.get_raw_message(seq).await {
                Ok(m) => {
                    out.push(m);
                    break;
                }
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
                {
                    break
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("reading sequence {seq} again: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("reading sequence {seq} of HUB_EVENTS: {e}"),
            }
        }
    }
    out
}

/// A person named by their NHS number alone.
pub fn by_nhs(n: &str) -> hub_proto::common::PersonRef {
    hub_proto::common::PersonRef {
        nhs_number: n.into(),
        ..Default::default()
    }
}

/// A person named by their prison number alone.
pub fn by_prison(n: &str) -> hub_proto::common::PersonRef {
    hub_proto::common::PersonRef {
        prison_number: n.into(),
        ..Default::default()
    }
}

/// Tokens from `seeds/dev-tokens.json`.
pub const CARAT: &str = "dev-carat-worker-token";
pub const PRISON_OFFICER: &str = "dev-prison-officer-token";
pub const DIP: &str = "dev-dip-worker-token";
pub const PHARMACIST: &str = "dev-pharmacist-token";
pub const ANALYST: &str = "dev-analyst-token";
pub const ADMIN: &str = "dev-hub-admin-token";
pub const STEWARD: &str = "dev-data-steward-token";
pub const LEEDS_CARAT: &str = "dev-leeds-carat-token";
pub const TREATMENT: &str = "dev-treatment-worker-token";

pub struct Hub {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub custody: HubProcess,
    pub prison: HubProcess,
    pub pharmacy: HubProcess,
    pub treatment: HubProcess,
    pub ambulance: HubProcess,
    pub identity: HubProcess,
    /// The one creator of data keys (agency services ask it).
    pub keys: HubProcess,
    pub pickup: HubProcess,
    pub training: HubProcess,
    pub activity: HubProcess,
    /// NATS user and password for the test's own plain client, when the
    /// server requires them.
    pub operator: Option<(String, String)>,
    // Last, so that services stop before their server.
    pub nats: NatsServer,
}

impl Hub {
    pub fn start() -> Result<Self> {
        Self::start_on(NatsServer::start()?, |_| Vec::new())
    }

    /// Every process on `nats`, each with the extra settings `per_process`
    /// gives for its name (credentials, for example).
    pub fn start_on(
        nats: NatsServer,
        per_process: impl Fn(&str) -> Vec<(String, String)>,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("hub-test-").tempdir()?;
        let env = base_env(dir.path(), &nats.url());
        let start = |name: &str| {
            let mut env = env.clone();
            env.extend(per_process(name));
            start_process(dir.path(), &env, name)
        };
        let pickup = start("pickup-projection")?;
        let training = start("training-projection")?;
        Ok(Self {
            keys: start("key-service")?,
            custody: start("custody-service")?,
            prison: start("prison-service")?,
            pharmacy: start("pharmacy-service")?,
            treatment: start("treatment-service")?,
            ambulance: start("ambulance-service")?,
            identity: start("identity-service")?,
            activity: {
                // The national comparison asks the other two.
                let mut env = env.clone();
                env.extend(per_process("activity-projection"));
                env.push((
                    "HUB_PICKUP_PROJECTION_ADDR".into(),
                    pickup.addr().to_string(),
                ));
                env.push((
                    "HUB_TRAINING_PROJECTION_ADDR".into(),
                    training.addr().to_string(),
                ));
                start_process(dir.path(), &env, "activity-projection")?
            },
            pickup,
            training,
            operator: None,
            dir,
            env,
            nats,
        })
    }

    /// The dashboard, reaching this hub's projections.
    pub fn dashboard(&self) -> HubProcess {
        let mut env = self.env.clone();
        env.push((
            "HUB_PICKUP_PROJECTION_ADDR".into(),
            self.pickup.addr().to_string(),
        ));
        env.push((
            "HUB_TRAINING_PROJECTION_ADDR".into(),
            self.training.addr().to_string(),
        ));
        env.push((
            "HUB_ACTIVITY_PROJECTION_ADDR".into(),
            self.activity.addr().to_string(),
        ));
        HubProcess::start("dashboard", &env, &self.dir.path().join("dashboard.log"))
            .expect("dashboard starts")
    }

    /// A gRPC channel to `process`.
    pub async fn channel(process: &HubProcess) -> Channel {
        Channel::from_shared(process.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("service reachable")
    }

    pub async fn prison(&self) -> PrisonServiceClient<Channel> {
        PrisonServiceClient::connect(self.prison.endpoint())
            .await
            .expect("prison-service reachable")
    }

    pub async fn pickups(&self) -> PickupListServiceClient<Channel> {
        PickupListServiceClient::connect(self.pickup.endpoint())
            .await
            .expect("pickup-projection reachable")
    }

    /// `ListPickups` for bradford as `token`, waiting for `min_sequence`.
    pub async fn list_bradford(
        &self,
        min_sequence: u64,
        token: &str,
    ) -> hub_proto::projections::ListPickupsResponse {
        let request = bradford_list(min_sequence);
        self.pickups()
            .await
            .list_pickups(authed(request, token))
            .await
            .expect("ListPickups")
            .into_inner()
    }

    pub async fn projection_status(&self) -> ProjectionStatusServiceClient<Channel> {
        ProjectionStatusServiceClient::connect(self.pickup.endpoint())
            .await
            .expect("pickup-projection reachable")
    }

    async fn jetstream(&self) -> jetstream::Context {
        let options = match &self.operator {
            Some((user, password)) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            None => async_nats::ConnectOptions::new(),
        };
        jetstream::new(
            options
                .connect(self.nats.url())
                .await
                .expect("nats reachable"),
        )
    }

    /// How many messages the event stream holds.
    pub async fn stream_messages(&self) -> u64 {
        let mut stream = self
            .jetstream()
            .await
            .get_stream("HUB_EVENTS")
            .await
            .expect("stream exists");
        stream.info().await.expect("stream info").state.messages
    }

    /// Every message in the event stream, read by a plain NATS client.
    pub async fn all_messages(&self) -> Vec<StreamMessage> {
        stream_messages(&self.jetstream().await).await
    }
}

/// `ListPickups` for bradford once `min_sequence` is applied.
pub fn bradford_list(min_sequence: u64) -> hub_proto::projections::ListPickupsRequest {
    hub_proto::projections::ListPickupsRequest {
        partnership_code: "bradford".into(),
        min_sequence,
        ..Default::default()
    }
}

/// Rebuilds a projection (`hubctl projection rebuild`'s RPC) and waits
/// until its readers switch to the rebuilt store.
pub async fn rebuild_and_switch(projection: &HubProcess) {
    use hub_proto::projections::{
        projection_status_service_client::ProjectionStatusServiceClient, RebuildProjectionRequest,
    };
    let mut status = ProjectionStatusServiceClient::new(Hub::channel(projection).await);
    let mut progress = status
        .rebuild_projection(authed(RebuildProjectionRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner();
    let mut switched = false;
    while let Some(p) = progress.message().await.unwrap() {
        switched |= p.switched;
    }
    assert!(switched, "{} never switched readers", projection.name());
}

/// A projection's status once it has applied everything in the stream
/// (audit records of reads included). Panics after 10 s.
pub async fn settled_status(process: &HubProcess) -> hub_proto::projections::ProjectionStatus {
    let mut client = ProjectionStatusServiceClient::new(Hub::channel(process).await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = client
            .get_projection_status(authed(
                hub_proto::projections::GetProjectionStatusRequest {},
                ADMIN,
            ))
            .await
            .expect("status")
            .into_inner();
        if s.lag == 0 {
            // Every message applied once or parked once, none skipped.
            assert_eq!(s.events_applied + s.parked, s.applied_sequence, "{s:?}");
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lag never reached 0: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    r
}

/// Now, as a protobuf Timestamp.
pub fn now() -> prost_types::Timestamp {
    let t = jiff::Timestamp::now();
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    }
}

/// Today in London plus `days`, as YYYY-MM-DD.
pub fn london_day(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/London").expect("tz"))
        .date();
    (today + jiff::Span::new().days(days)).to_string()
}

/// A unique request id.
pub fn request_id(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Overdose training this year for `service_users` then `carers` people of
/// bradford (client codes AB01011990M, AB02011990M, ...), each with a
/// naloxone kit; returns the last stream sequence.
pub async fn train(hub: &Hub, service_users: usize, carers: usize) -> u64 {
    use hub_proto::{
        common::{PersonRef, TrainingAudience},
        treatment::{
            treatment_service_client::TreatmentServiceClient, RecordOverdoseTrainingRequest,
        },
    };
    let mut treatment = TreatmentServiceClient::new(Hub::channel(&hub.treatment).await);
    let mut last = 0;
    for i in 0..service_users + carers {
        let audience = if i < service_users {
            TrainingAudience::ServiceUser
        } else {
            TrainingAudience::Carer
        };
        let request = RecordOverdoseTrainingRequest {
            request_id: request_id("train"),
            partnership_code: "bradford".into(),
            occurred_at: Some(now()),
            service_code: "TRT01".into(),
            person: Some(PersonRef {
                client_code: format!("AB{:02}011990M", i + 1),
                ..Default::default()
            }),
            audience: audience as i32,
            naloxone_kit_supplied: true,
        };
        last = treatment
            .record_overdose_training(authed(request, "dev-treatment-worker-token"))
            .await
            .expect("training recorded")
            .into_inner()
            .stream_sequence;
    }
    last
}

/// What one flooding client did: the highest stream sequence acknowledged
/// to it, how many times it retried after `UNAVAILABLE`, when it finished.
#[derive(Debug, Clone, Copy)]
pub struct Flooded {
    pub last_sequence: u64,
    pub retries: u32,
    pub finished: std::time::Instant,
}

/// `clients` pharmacists, each recording `each` naloxone supplies of one
/// kit (request ids `<prefix>-<client>-<n>`), 50 ms apart, every one
/// retried with the very same request (id, time and all) after
/// `UNAVAILABLE` until acknowledged, as a careful client would.
pub fn flood_naloxone_supplies(
    channel: Channel,
    prefix: &str,
    clients: usize,
    each: usize,
) -> Vec<tokio::task::JoinHandle<Flooded>> {
    use hub_proto::pharmacy::{
        pharmacy_service_client::PharmacyServiceClient, RecordNaloxoneSupplyRequest,
    };
    use std::time::{Duration, Instant};
    (0..clients)
        .map(|c| {
            let channel = channel.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                let (mut last_sequence, mut retries) = (0, 0);
                for i in 0..each {
                    let request = RecordNaloxoneSupplyRequest {
                        kits: 1,
                        ..commands::naloxone_supply(&format!("{prefix}-{c}-{i}"), "bradford")
                    };
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let ack = loop {
                        let reply = PharmacyServiceClient::new(channel.clone())
                            .record_naloxone_supply(authed(request.clone(), PHARMACIST))
                            .await;
                        match reply {
                            Ok(ack) => break ack.into_inner(),
                            Err(e)
                                if e.code() == tonic::Code::Unavailable
                                    && Instant::now() < deadline =>
                            {
                                retries += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await
                            }
                            Err(e) => panic!("{}: {e:?}", request.request_id),
                        }
                    };
                    last_sequence = last_sequence.max(ack.stream_sequence);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Flooded {
                    last_sequence,
                    retries,
                    finished: Instant::now(),
                }
            })
        })
        .collect()
}

/// Waits for every flooding client; each must still have been running at
/// `fault_over` (so the fault happened under its load: `what` says which
/// fault). Returns the highest sequence acknowledged and the retries.
pub async fn await_flood(
    clients: Vec<tokio::task::JoinHandle<Flooded>>,
    fault_over: std::time::Instant,
    what: &str,
) -> (u64, u32) {
    let (mut last, mut retries) = (0, 0);
    for c in clients {
        let done = c.await.expect("a flooding client");
        assert!(
            done.finished > fault_over,
            "a client was done before {what}"
        );
        last = last.max(done.last_sequence);
        retries += done.retries;
    }
    (last, retries)
}

/// How many events each request id starting with `prefix` has in
/// `messages`.
pub fn events_per_request(
    messages: &[StreamMessage],
    prefix: &str,
) -> std::collections::BTreeMap<String, usize> {
    use prost::Message;
    let mut seen = std::collections::BTreeMap::new();
    for m in messages {
        if let Ok(e) = hub_proto::events::Event::decode(m.payload.clone()) {
            if e.request_id.starts_with(prefix) {
                *seen.entry(e.request_id).or_insert(0) += 1;
            }
        }
    }
    seen
}

/// Bradford's training counts for this year, once `min_sequence` is applied.
pub async fn bradford_training(
    training: Channel,
    min_sequence: u64,
) -> Result<hub_proto::projections::TrainingCounts, tonic::Status> {
    use hub_proto::projections::{
        training_counts_service_client::TrainingCountsServiceClient, GetTrainingCountsRequest,
    };
    TrainingCountsServiceClient::new(training)
        .get_training_counts(authed(
            GetTrainingCountsRequest {
                partnership_code: "bradford".into(),
                financial_year: String::new(),
                min_sequence,
            },
            ADMIN,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Bradford's activity in financial year `fy` as an admin, once
/// `min_sequence` is applied.
pub async fn bradford_activity(
    activity: Channel,
    fy: &str,
    min_sequence: u64,
) -> Result<hub_proto::projections::Activity, tonic::Status> {
    use hub_proto::projections::{
        activity_service_client::ActivityServiceClient, GetActivityRequest,
    };
    ActivityServiceClient::new(activity)
        .get_activity(authed(
            GetActivityRequest {
                partnership_code: "bradford".into(),
                financial_year: fy.into(),
                min_sequence,
            },
            ADMIN,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Waits (up to 30 s) for a training projection's health to be `status`
/// (`tonic_health::ServingStatus` as a number).
pub async fn training_health_becomes(training: &HubProcess, status: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while health_of(training, "hub.projections.v1.TrainingCountsService").await != status {
        assert!(
            std::time::Instant::now() < deadline,
            "health never became {status}; log:\n{}",
            training.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// What `grpc.health.v1.Health/Check` says of `service` on `process`
/// (`tonic_health::ServingStatus` as a number; -1 when it cannot answer).
pub async fn health_of(process: &HubProcess, service: &str) -> i32 {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let Ok(channel) = Channel::from_shared(process.endpoint())
        .expect("endpoint")
        .connect()
        .await
    else {
        return -1;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

/// What a run of hubctl printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code and that stderr says each of `says`.
    pub fn refused(&self, code: i32, says: &[&str]) {
        assert_eq!(self.code, code, "{}", self.stderr);
        for text in says {
            assert!(
                self.stderr.contains(text),
                "{text:?} not in: {}",
                self.stderr
            );
        }
    }

    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "hubctl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// hubctl with `args`, reaching NATS at `nats_url`, no token.
pub fn command(nats_url: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(hub_testkit::binary("hubctl").unwrap());
    cmd.args(args)
        .env_remove("HUB_TOKEN")
        .env("HUB_NATS_URL", nats_url);
    cmd
}

pub async fn run(mut cmd: tokio::process::Command) -> Run {
    let out = cmd.output().await.expect("hubctl runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn hubctl(hub: &Hub, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = command(&hub.nats.url(), args);
    for (var, process) in [
        ("HUB_CUSTODY_SERVICE_ADDR", &hub.custody),
        ("HUB_PRISON_SERVICE_ADDR", &hub.prison),
        ("HUB_PHARMACY_SERVICE_ADDR", &hub.pharmacy),
        ("HUB_TREATMENT_SERVICE_ADDR", &hub.treatment),
        ("HUB_AMBULANCE_SERVICE_ADDR", &hub.ambulance),
        ("HUB_IDENTITY_SERVICE_ADDR", &hub.identity),
        ("HUB_PICKUP_PROJECTION_ADDR", &hub.pickup),
        ("HUB_TRAINING_PROJECTION_ADDR", &hub.training),
        ("HUB_ACTIVITY_PROJECTION_ADDR", &hub.activity),
    ] {
        cmd.env(var, process.addr().to_string());
    }
    if let Some(t) = token {
        cmd.env("HUB_TOKEN", t);
    }
    run(cmd).await
}

/// What `name="csrf" value="…"` holds in a page.
pub fn csrf_of(body: &str) -> String {
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with a CSRF token")
        .to_string()
}

/// The `name=value` of cookie `name` among a response's `Set-Cookie`s.
pub fn set_cookie(r: &hub_testkit::HttpResponse, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter_map(|h| h.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// Signs in to the dashboard at `addr` through its form as a browser
/// would (the form's CSRF token in its cookie and field): the response.
pub fn dashboard_sign_in(addr: std::net::SocketAddr, token: &str) -> hub_testkit::HttpResponse {
    let form = hub_testkit::http(addr, "GET", "/login", &[], None).unwrap();
    let csrf = csrf_of(&form.body);
    let cookie = set_cookie(&form, "hub_login_csrf").expect("the form's CSRF cookie");
    hub_testkit::http(
        addr,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        Some(&format!("token={token}&csrf={csrf}")),
    )
    .unwrap()
}

/// Opens Bradford's `WatchPickups` on `pickups` as `token`: the stream.
pub async fn watch_bradford(
    pickups: &mut PickupListServiceClient<Channel>,
    token: &str,
) -> tonic::Streaming<hub_proto::projections::PickupEntry> {
    let request = hub_proto::projections::WatchPickupsRequest {
        partnership_code: "bradford".into(),
    };
    pickups
        .watch_pickups(authed(request, token))
        .await
        .expect("the watch opens")
        .into_inner()
}
