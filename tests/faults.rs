//! Faults the hub must survive without losing or doubling anything
//! acknowledged: a NATS cluster losing a server under load (then backed
//! up and restored onto one server), and a projection whose disk fills up
//! or whose store cannot be read.
//! (NATS killed or frozen on a single server: `agency_commands.rs`;
//! projections killed during a flood: `projections.rs`.)

use std::time::{Duration, Instant};

use async_nats::jetstream;
use hub_testkit::NatsCluster;
use hub_tests::*;

async fn stream_info(js: &jetstream::Context) -> jetstream::stream::Info {
    named_stream_info(js, "HUB_EVENTS").await
}

async fn named_stream_info(js: &jetstream::Context, name: &str) -> jetstream::stream::Info {
    js.get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone()
}

/// `grpc.health.v1` serving states.
const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

/// How long a projection may take to apply everything acknowledged once
/// the last fault is over (each query itself waits up to 5 s).
const CATCH_UP: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread")]
async fn a_three_node_cluster_loses_a_server_at_a_time_under_load_and_nothing_is_lost_or_doubled() {
    let mut cluster = NatsCluster::start().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("hub-cluster-")
        .tempdir()
        .unwrap();
    // node.conf as deployed: every client over TLS with a certificate,
    // each process its own NATS user; the operator creates the stream.
    let mut env = base_env(dir.path(), &cluster.urls());
    env.push(("HUB_STREAM_REPLICAS".into(), "3".into()));
    let operator = cluster.client_env("hub-operator");
    nats_init(&cluster.urls(), &operator, &[("HUB_STREAM_REPLICAS", "3")]);
    let as_user = |user: &str| [env.clone(), cluster.client_env(user)].concat();
    let _keys = start_process(dir.path(), &as_user("key-service"), "key-service").unwrap();
    let pharmacy =
        start_process(dir.path(), &as_user("pharmacy-service"), "pharmacy-service").unwrap();
    let training = start_process(
        dir.path(),
        &as_user("training-projection"),
        "training-projection",
    )
    .unwrap();
    let js = jetstream::new(
        connect_as(&cluster.accounts, &cluster.urls(), "hub-operator")
            .await
            .unwrap(),
    );
    let info = stream_info(&js).await;
    assert_eq!(
        info.config.num_replicas, 3,
        "the stream is kept on all three"
    );
    let leader = info
        .cluster
        .and_then(|c| c.leader)
        .expect("a stream leader");

    // Four clients, 40 supplies each, retrying until acknowledged; the
    // server leading the stream is killed -9 while they run.
    let clients = flood_naloxone_supplies(Hub::channel(&pharmacy).await, "cluster", 4, 40);
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.node(&leader).expect("leader is a node").kill();
    let (mut last, mut retries) = await_flood(clients, Instant::now(), "the kill").await;
    eprintln!("{retries} retries after UNAVAILABLE while {leader} was gone");

    // Then each of the other two servers in turn, the one before restarted
    // first: whichever server the services are connected to goes down at
    // some point, and they move to another.
    cluster
        .node(&leader)
        .expect("leader is a node")
        .restart()
        .unwrap();
    let clients = flood_naloxone_supplies(Hub::channel(&pharmacy).await, "rolling", 4, 100);
    for name in ["hub-1", "hub-2", "hub-3"] {
        if name == leader {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let node = cluster.node(name).expect("a node");
        node.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        node.restart().unwrap();
    }
    let (rolling_last, rolling_retries) =
        await_flood(clients, Instant::now(), "the last server came back").await;
    last = last.max(rolling_last);
    retries += rolling_retries;
    eprintln!("{retries} retries after UNAVAILABLE in all");

    // Every command in the stream exactly once...
    let messages = stream_messages(&js).await;
    for (prefix, expected) in [("cluster-", 160), ("rolling-", 400)] {
        let seen = events_per_request(&messages, prefix);
        assert_eq!(seen.len(), expected, "every {prefix} command recorded");
        assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    }
    // ...counted exactly once, and soon: a caller told UNAVAILABLE asks
    // again; the projection resumes within seconds of a failover (it
    // stalled for 30 s when it waited on async-nats's default heartbeat).
    let asked = Instant::now();
    let counts = loop {
        match bradford_training(Hub::channel(&training).await, last).await {
            Ok(counts) => break counts,
            Err(e) if e.code() == tonic::Code::Unavailable && asked.elapsed() < CATCH_UP => {}
            Err(e) => panic!("{e:?}\nthe projection's log:\n{}", training.log()),
        }
    };
    eprintln!(
        "all applied {:.1?} after the last acknowledgement",
        asked.elapsed()
    );
    assert_eq!(counts.naloxone_kits_supplied, 560);
    // ...and the services serve on without a restart: a new command needs
    // no retry.
    let after = flood_naloxone_supplies(Hub::channel(&pharmacy).await, "after", 1, 1)
        .pop()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(after.retries, 0, "the services serve without a restart");
    // Every restarted server has caught up: a leader and two current
    // replicas, for the events and for the data keys.
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in ["HUB_EVENTS", "KV_hub_person_keys"] {
        loop {
            // While a stream elects its leader after the restarts, its
            // info request may go unanswered: ask again until the deadline.
            let asked = async {
                let mut stream = js.get_stream(name).await.map_err(|e| e.to_string())?;
                stream.info().await.cloned().map_err(|e| e.to_string())
            };
            let cluster_info = match asked.await {
                Ok(info) => Some(info.cluster.expect("clustered")),
                Err(e) => {
                    eprintln!("{name}: stream info not answered yet: {e}");
                    None
                }
            };
            let caught_up = cluster_info.as_ref().is_some_and(|c| {
                c.leader.is_some() && c.replicas.iter().filter(|r| r.current).count() == 2
            });
            if caught_up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: replicas never caught up: {cluster_info:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(
        health_of(&pharmacy, "hub.pharmacy.v1.PharmacyService").await,
        SERVING
    );
    assert_eq!(
        health_of(&training, "hub.projections.v1.TrainingCountsService").await,
        SERVING
    );

    // What the cluster holds can be backed up and restored onto a single
    // server (fewer copies), every message with it.
    let backup = dir.path().join("backup");
    let backup = backup.to_str().unwrap();
    assert_hubctl(&cluster.urls(), &operator, &["backup", backup]).await;
    let single = hub_testkit::NatsServer::start().unwrap();
    assert_hubctl(&single.url(), &[], &["restore", backup, "--replicas", "1"]).await;
    let held = stream_info(&js).await.state;
    let restored = stream_info(&jetstream::new(
        async_nats::connect(single.url()).await.unwrap(),
    ))
    .await;
    assert_eq!(restored.config.num_replicas, 1);
    assert_eq!(
        (restored.state.messages, restored.state.last_sequence),
        (held.messages, held.last_sequence)
    );
}

/// Runs hubctl on NATS at `urls` (with `env`) and asserts it succeeded.
async fn assert_hubctl(urls: &str, env: &[(String, String)], args: &[&str]) {
    let out = tokio::process::Command::new(hub_testkit::binary("hubctl").unwrap())
        .args(args)
        .env("HUB_NATS_URL", urls)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "hubctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pharmacy service and a training projection on their own NATS server.
struct Pair {
    dir: tempfile::TempDir,
    pharmacy: hub_testkit::HubProcess,
    training: hub_testkit::HubProcess,
    _keys: hub_testkit::HubProcess,
    _nats: hub_testkit::NatsServer,
}

impl Pair {
    fn start() -> Self {
        let nats = hub_testkit::NatsServer::start().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("hub-faults-")
            .tempdir()
            .unwrap();
        let env = base_env(dir.path(), &nats.url());
        Self {
            _keys: start_process(dir.path(), &env, "key-service").unwrap(),
            pharmacy: start_process(dir.path(), &env, "pharmacy-service").unwrap(),
            training: start_process(dir.path(), &env, "training-projection").unwrap(),
            dir,
            _nats: nats,
        }
    }

    /// Records `n` naloxone supplies of one kit; the last sequence.
    async fn supply(&self, prefix: &str, n: usize) -> u64 {
        let done = flood_naloxone_supplies(Hub::channel(&self.pharmacy).await, prefix, 1, n)
            .pop()
            .unwrap()
            .await
            .unwrap();
        done.last_sequence
    }

    async fn kits(&self, min_sequence: u64) -> Result<u32, tonic::Status> {
        bradford_training(Hub::channel(&self.training).await, min_sequence)
            .await
            .map(|c| c.naloxone_kits_supplied)
    }

    /// `GetProjectionStatus` of the training projection, as an admin.
    async fn status(&self) -> hub_proto::projections::ProjectionStatus {
        use hub_proto::projections::{
            projection_status_service_client::ProjectionStatusServiceClient,
            GetProjectionStatusRequest,
        };
        ProjectionStatusServiceClient::new(Hub::channel(&self.training).await)
            .get_projection_status(authed(GetProjectionStatusRequest::default(), ADMIN))
            .await
            .unwrap()
            .into_inner()
    }

    async fn training_health(&self) -> i32 {
        health_of(&self.training, "hub.projections.v1.TrainingCountsService").await
    }

    /// The store has failed: health says so and counts are refused with
    /// `UNAVAILABLE`, naming the store.
    async fn assert_refused(&self, store: &str) {
        self.wait_for_health(NOT_SERVING).await;
        let refused = self
            .kits(0)
            .await
            .expect_err(&format!("no counts from {store}"));
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(
            refused.message().contains("store cannot be used"),
            "{}",
            refused.message()
        );
    }

    async fn wait_for_health(&self, status: i32) {
        training_health_becomes(&self.training, status).await;
    }
}

/// Sets the soft limit on the size of files `pid` may write, as a full
/// disk or quota would: writes beyond it fail (EFBIG). util-linux's
/// `prlimit`, on every Debian machine.
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let soft = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={soft}:unlimited"))
        .status()
        .expect("prlimit runs");
    assert!(status.success(), "prlimit: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projection_whose_disk_fills_stops_applying_reports_unhealthy_and_loses_nothing() {
    let pair = Pair::start();
    let before = pair.supply("before", 10).await;
    assert_eq!(pair.kits(before).await.unwrap(), 10);
    assert_eq!(pair.training_health().await, SERVING);

    // The projection's disk fills: every write to its files fails.
    limit_file_size(pair.training.pid().unwrap(), Some(0));
    let during = pair.supply("during", 10).await;
    pair.assert_refused("a failed store").await;
    let status = pair.status().await;
    assert!(
        status.store_fault.contains("File too large"),
        "the operator sees why: {status:?}"
    );
    // The agencies are not held back: the stream keeps every command.
    let still = pair.supply("still", 5).await;
    assert!(still > during);

    // Space again: the same process resumes where its store stood.
    limit_file_size(pair.training.pid().unwrap(), None);
    pair.wait_for_health(SERVING).await;
    assert_eq!(
        pair.kits(still).await.unwrap(),
        25,
        "every supply counted once"
    );
    assert_eq!(pair.status().await.store_fault, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projection_whose_store_cannot_be_read_reports_unhealthy_and_catches_up_once_fixed() {
    let mut pair = Pair::start();
    let first = pair.supply("first", 5).await;
    assert_eq!(pair.kits(first).await.unwrap(), 5);
    pair.training.terminate().unwrap();

    // The store's CURRENT file (which names its manifest) is damaged.
    let current = pair.dir.path().join("training-projection/store-1/CURRENT");
    let good = std::fs::read(&current).unwrap();
    std::fs::write(&current, b"garbage\n").unwrap();
    let second = pair.supply("second", 5).await;

    pair.training.restart().unwrap();
    pair.assert_refused("an unreadable store").await;

    // Repaired: the running process opens it and applies what it missed.
    std::fs::write(&current, good).unwrap();
    pair.wait_for_health(SERVING).await;
    assert_eq!(pair.kits(second).await.unwrap(), 10);
}
