//! `hub-bench`: the hub measured against raw JetStream, in one run, on one
//! machine.
//!
//! Each run starts its own nats-server and the hub's real binaries (from
//! the same `target/` profile), then measures, in order:
//! 1. raw publish: async-nats JetStream publishes of messages the size of a
//!    typical hub event, with `--in-flight` unacknowledged at once;
//! 2. ingest: the same number of commands through the agency services'
//!    gRPC API from concurrent clients, the same number in flight, counted
//!    when acknowledged; then the same again as `RecordBatch` uploads
//!    (bulk ingest: 1,000 commands an upload, 4 uploads at once);
//! 3. e2e: a steady 1,000 commands a second; for every tenth, the time from
//!    its acknowledgement until a query that waits for its sequence
//!    (`min_sequence`) answers;
//! 4. list: `ListPickups` for a partnership with 1,000 upcoming releases;
//! 5. national: a simulated year of England (see [`workload`]) ingested
//!    (by `RecordBatch`, as a bulk load would be),
//!    read whole by an ordered consumer (raw consume), both projections
//!    rebuilt from it at once (replay), then all three; the national
//!    comparison's latency once the year is recorded and again just after
//!    the rebuild of all three; and the bytes on disk per event, just
//!    after that rebuild and once the stores have settled (by store);
//! 6. peak RSS of each process, and the CPU time every process spent per
//!    event in the publish, ingest and replay phases (from `/proc`).
//!
//! `--soak <duration>` runs a steady load instead and reports that memory
//! and latency stay flat (see [`soak`]; `target/bench/soak.json`).
//!
//! It prints a table and writes `target/bench/latest.json`. `make bench`
//! runs `--scale full`, `make bench-quick` `--scale quick` (under two
//! minutes); `--scale tiny` is the smoke test `make test` runs.

mod soak;
mod workload;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, stream};
use clap::{Parser, ValueEnum};
use futures::{stream::FuturesUnordered, StreamExt};
use hub_proto::{
    ambulance::ambulance_service_client::AmbulanceServiceClient,
    common::{BatchAck, EventAck},
    custody::custody_service_client::CustodyServiceClient,
    pharmacy::pharmacy_service_client::PharmacyServiceClient,
    prison::prison_service_client::PrisonServiceClient,
    projections::{
        activity_service_client::ActivityServiceClient,
        pickup_list_service_client::PickupListServiceClient,
        projection_status_service_client::ProjectionStatusServiceClient,
        training_counts_service_client::TrainingCountsServiceClient, GetActivityRequest,
        GetNationalComparisonRequest, GetTrainingCountsRequest, ListPickupsRequest,
        RebuildProjectionRequest,
    },
    treatment::treatment_service_client::TreatmentServiceClient,
};
use hub_testkit::{workspace_root, HubProcess, NatsServer};
use prost::Message as _;
use serde_json::json;
use tonic::{transport::Channel, Request};
use workload::{BatchItem, Command, Env};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Scale {
    /// The smoke test `make test` runs: every measurement, tiny.
    Tiny,
    /// `make bench-quick`: every measurement, in under two minutes.
    Quick,
    /// `make bench`: the figures in BENCHMARKS.md.
    Full,
}

#[derive(Parser, Debug)]
#[command(about = "Measure the hub against raw JetStream in one run")]
struct Args {
    #[arg(long, value_enum, default_value = "quick")]
    scale: Scale,
    /// Commands (and raw messages) for the publish and ingest comparison.
    #[arg(long)]
    commands: Option<u64>,
    /// Events of the simulated national year.
    #[arg(long)]
    national_events: Option<u64>,
    /// Unacknowledged publishes / commands at once.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Seconds of steady load for the e2e latency.
    #[arg(long)]
    e2e_seconds: Option<u64>,
    /// Every hub listener serves TLS (a throwaway CA), and the clients
    /// call over TLS: the cost of TLS (BENCHMARKS.md).
    #[arg(long)]
    tls: bool,
    /// Keep the processes' logs and data after the run (the folder is printed).
    #[arg(long)]
    keep: bool,
    /// Where to write the JSON (default: target/bench/latest.json, or
    /// soak.json for a soak).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Record a CPU profile of the projections and nats-server during the
    /// national rebuild with `perf record` (sampled at 499 Hz) into this
    /// file; read it with `perf report -i FILE --sort comm,dso,sym`.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// With `--perf`: record call chains too (`perf record --call-graph`,
    /// e.g. `dwarf`), to see who calls what is hot. The files grow large.
    #[arg(long, requires = "perf")]
    perf_call_graph: Option<String>,
    /// With `--perf`: profile the rebuild of all three projections instead
    /// of the first two's.
    #[arg(long, requires = "perf")]
    perf_all_three: bool,
    /// The hub's duplicate window (`HUB_DEDUPE_WINDOW`) for this run. The
    /// national year is recorded in minutes: under the production window
    /// (24 h) every one of its messages would still be in nats-server's
    /// duplicate table when the rebuild runs (5.2 million at full scale,
    /// gigabytes the server's garbage collector scans), where after a real
    /// year it holds one day's, about 14,000. The default keeps the table
    /// to what a day of real traffic leaves; `24h` measures the other.
    #[arg(long, default_value = "2m")]
    dedupe_window: String,
    /// nats-server's memory budget for Go's garbage collector
    /// (`GOMEMLIMIT`, with `GOGC=off`: collect only when the heap reaches
    /// it), as the deploy files run it (docs/operations.md). `none` leaves
    /// Go's defaults (collect each time the heap doubles), as every run
    /// before 2026-12-02 did.
    #[arg(long, default_value = "2GiB")]
    nats_memory_limit: String,
    /// Soak instead: a steady load for this long (e.g. 30m), reporting
    /// memory and latency per window.
    #[arg(long, value_parser = hub_runtime::config::parse_duration)]
    soak: Option<Duration>,
    /// Commands a second during a soak.
    #[arg(long, default_value_t = 200)]
    soak_rate: u64,
    /// A soak's reporting window.
    #[arg(long, default_value = "60s", value_parser = hub_runtime::config::parse_duration)]
    soak_window: Duration,
}

struct Plan {
    commands: u64,
    national: u64,
    e2e_seconds: u64,
    list_releases: u64,
    list_queries: usize,
}

impl Args {
    fn plan(&self) -> Plan {
        let (commands, national, e2e, list_releases, queries) = match self.scale {
            Scale::Tiny => (300, 2_000, 1, 100, 50),
            Scale::Quick => (10_000, 60_000, 5, 1_000, 500),
            Scale::Full => (100_000, 5_000_000, 30, 1_000, 5_000),
        };
        Plan {
            commands: self.commands.unwrap_or(commands),
            national: self.national_events.unwrap_or(national),
            e2e_seconds: self.e2e_seconds.unwrap_or(e2e),
            list_releases,
            list_queries: queries,
        }
    }
}

/// Tokens for every role in every partnership (written for this run).
const TOKENS: &str = r#"{"tokens": [
 {"token": "bench-token-pharmacist", "user_id": "b-ph", "role": "pharmacist", "org_code": "FW844", "partnerships": ["*"]},
 {"token": "bench-token-custody", "user_id": "b-cu", "role": "custody_officer", "org_code": "WYP", "partnerships": ["*"]},
 {"token": "bench-token-carat", "user_id": "b-ca", "role": "carat_worker", "org_code": "LEI", "partnerships": ["*"]},
 {"token": "bench-token-treatment", "user_id": "b-tr", "role": "treatment_worker", "org_code": "TRT01", "partnerships": ["*"]},
 {"token": "bench-token-paramedic", "user_id": "b-pa", "role": "paramedic", "org_code": "RX8", "partnerships": ["*"]},
 {"token": "bench-token-analyst", "user_id": "b-an", "role": "partnership_analyst", "org_code": "HUB", "partnerships": ["bradford"]},
 {"token": "bench-token-admin", "user_id": "b-ad", "role": "admin", "org_code": "HUB", "partnerships": ["*"]}
]}"#;
const ADMIN: &str = "bench-token-admin";

/// The whole hub, for one run.
struct Hub {
    dir: tempfile::TempDir,
    processes: Vec<HubProcess>,
    /// The throwaway CA when the hub serves TLS (`--tls`).
    tls: Option<hub_testkit::tls::TestCa>,
    nats: NatsServer,
}

impl Hub {
    /// The whole hub; `extra` settings for every process; every listener
    /// serving TLS (a throwaway CA) when `tls`.
    fn start(extra: &[(&str, &str)], tls: bool, nats_memory_limit: &str) -> Result<Self> {
        let nats_env = match nats_memory_limit {
            "none" => vec![],
            limit => vec![
                ("GOGC".to_string(), "off".to_string()),
                ("GOMEMLIMIT".to_string(), limit.to_string()),
            ],
        };
        let nats = NatsServer::start_with(None, &nats_env)?;
        let dir = tempfile::Builder::new().prefix("hub-bench-").tempdir()?;
        let tls = match tls {
            true => Some(hub_testkit::tls::TestCa::create(&dir.path().join("tls"))?),
            false => None,
        };
        std::fs::write(dir.path().join("tokens.json"), TOKENS)?;
        hub_testkit::ensure_secret(&dir.path().join("hub.secret"))?;
        let root = workspace_root();
        let path = |p: PathBuf| p.display().to_string();
        let env = vec![
            ("HUB_NATS_URL".to_string(), nats.url()),
            (
                "HUB_TOKENS_FILE".into(),
                path(dir.path().join("tokens.json")),
            ),
            (
                "HUB_PARTNERSHIPS_FILE".into(),
                path(root.join("seeds/partnerships.tsv")),
            ),
            (
                "HUB_SECRET_FILE".into(),
                path(dir.path().join("hub.secret")),
            ),
            ("RUST_LOG".into(), "warn".into()),
        ];
        let env: Vec<(String, String)> = env
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .chain(tls.iter().flat_map(|ca| ca.env(false)))
            .collect();
        let mut processes: Vec<HubProcess> = Vec::new();
        for name in NAMES {
            let mut env = env.clone();
            env.push(("HUB_DATA_DIR".into(), path(dir.path().join(name))));
            // The national comparison asks the two started before it.
            if name == "activity-projection" {
                for (var, other) in [
                    ("HUB_PICKUP_PROJECTION_ADDR", "pickup-projection"),
                    ("HUB_TRAINING_PROJECTION_ADDR", "training-projection"),
                ] {
                    let at = NAMES.iter().position(|n| *n == other).expect("started");
                    let port = processes[at].addr().port();
                    let addr = match &tls {
                        Some(_) => format!("https://localhost:{port}"),
                        None => format!("127.0.0.1:{port}"),
                    };
                    env.push((var.into(), addr));
                }
            }
            processes.push(HubProcess::start(
                name,
                &env,
                &dir.path().join(format!("{name}.log")),
            )?);
        }
        Ok(Self {
            dir,
            processes,
            tls,
            nats,
        })
    }

    fn process(&self, name: &str) -> &HubProcess {
        &self.processes[NAMES
            .iter()
            .position(|n| *n == name)
            .expect("a hub process")]
    }

    async fn channel(&self, name: &str) -> Result<Channel> {
        let process = self.process(name);
        let Some(ca) = &self.tls else {
            return Ok(Channel::from_shared(process.endpoint())?.connect().await?);
        };
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(
                &ca.ca,
            )?))
            .domain_name("localhost");
        Ok(
            Channel::from_shared(format!("https://localhost:{}", process.addr().port()))?
                .tls_config(tls)?
                .connect()
                .await?,
        )
    }
}

const NAMES: [&str; 9] = [
    "key-service",
    "custody-service",
    "prison-service",
    "pharmacy-service",
    "treatment-service",
    "ambulance-service",
    "pickup-projection",
    "training-projection",
    "activity-projection",
];

/// The projections, and the two whose rebuild the replay target (issue
/// 17) was set for.
const PROJECTIONS: [&str; 3] = [
    "pickup-projection",
    "training-projection",
    "activity-projection",
];
const FIRST_TWO: [&str; 2] = ["pickup-projection", "training-projection"];

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    r
}

/// gRPC clients for every agency, several connections each.
#[derive(Clone)]
struct Agencies {
    custody: Vec<CustodyServiceClient<Channel>>,
    prison: Vec<PrisonServiceClient<Channel>>,
    pharmacy: Vec<PharmacyServiceClient<Channel>>,
    treatment: Vec<TreatmentServiceClient<Channel>>,
    ambulance: Vec<AmbulanceServiceClient<Channel>>,
}

const CONNECTIONS: usize = 4;

impl Agencies {
    async fn connect(hub: &Hub) -> Result<Self> {
        let mut a = Agencies {
            custody: vec![],
            prison: vec![],
            pharmacy: vec![],
            treatment: vec![],
            ambulance: vec![],
        };
        for _ in 0..CONNECTIONS {
            a.custody.push(CustodyServiceClient::new(
                hub.channel("custody-service").await?,
            ));
            a.prison.push(PrisonServiceClient::new(
                hub.channel("prison-service").await?,
            ));
            a.pharmacy.push(PharmacyServiceClient::new(
                hub.channel("pharmacy-service").await?,
            ));
            a.treatment.push(TreatmentServiceClient::new(
                hub.channel("treatment-service").await?,
            ));
            a.ambulance.push(AmbulanceServiceClient::new(
                hub.channel("ambulance-service").await?,
            ));
        }
        Ok(a)
    }

    /// Sends one command; returns its acknowledgement.
    async fn send(&self, n: u64, command: Command) -> Result<EventAck, tonic::Status> {
        let c = (n as usize) % CONNECTIONS;
        let token = command.token();
        let reply = match command {
            Command::NeedleExchange(r) => {
                self.pharmacy[c]
                    .clone()
                    .record_needle_exchange(authed(r, token))
                    .await
            }
            Command::NaloxoneSupply(r) => {
                self.pharmacy[c]
                    .clone()
                    .record_naloxone_supply(authed(r, token))
                    .await
            }
            Command::Advice(r) => {
                self.custody[c]
                    .clone()
                    .record_harm_reduction_advice(authed(r, token))
                    .await
            }
            Command::OfficerTraining(r) => {
                self.custody[c]
                    .clone()
                    .record_officer_overdose_training(authed(r, token))
                    .await
            }
            Command::ReleaseDate(r) => {
                self.prison[c]
                    .clone()
                    .record_release_date(authed(r, token))
                    .await
            }
            Command::Consent(r) => {
                self.prison[c]
                    .clone()
                    .record_consent(authed(r, token))
                    .await
            }
            Command::Referral(r) => {
                self.treatment[c]
                    .clone()
                    .record_referral(authed(r, token))
                    .await
            }
            Command::OverdoseTraining(r) => {
                self.treatment[c]
                    .clone()
                    .record_overdose_training(authed(r, token))
                    .await
            }
            Command::Attendance(r) => {
                self.ambulance[c]
                    .clone()
                    .record_overdose_attendance(authed(r, token))
                    .await
            }
            Command::ParamedicTraining(r) => {
                self.ambulance[c]
                    .clone()
                    .record_paramedic_naloxone_training(authed(r, token))
                    .await
            }
        };
        reply.map(tonic::Response::into_inner)
    }

    /// Sends `count` commands made by `make`, `in_flight` at once; returns
    /// the seconds it took until the last was acknowledged.
    async fn flood(
        &self,
        count: u64,
        in_flight: usize,
        make: impl Fn(u64) -> Command,
    ) -> Result<f64> {
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        let mut errors = 0u64;
        for n in 0..count {
            if pending.len() >= in_flight {
                if let Some(r) = pending.next().await {
                    errors += u64::from(is_err(r));
                }
            }
            let me = self.clone();
            let command = make(n);
            pending.push(async move { me.send(n, command).await });
        }
        while let Some(r) = pending.next().await {
            errors += u64::from(is_err(r));
        }
        if errors > 0 {
            bail!("{errors} of {count} commands failed");
        }
        Ok(start.elapsed().as_secs_f64())
    }
}

/// Commands per `RecordBatch` upload, and uploads in flight at once.
const BATCH_SIZE: usize = 1_000;
const BATCHES_IN_FLIGHT: usize = 4;

impl Agencies {
    /// Sends one agency's batch; `items` all go to the same service.
    async fn send_batch(&self, c: usize, items: Vec<BatchItem>) -> Result<BatchAck, tonic::Status> {
        macro_rules! upload {
            ($clients:ident, $variant:ident, $token:literal) => {{
                let commands: Vec<_> = items
                    .into_iter()
                    .filter_map(|i| match i {
                        BatchItem::$variant(x) => Some(x),
                        _ => None,
                    })
                    .collect();
                self.$clients[c]
                    .clone()
                    .record_batch(authed(futures::stream::iter(commands), $token))
                    .await
            }};
        }
        let reply = match items.first() {
            None => return Ok(BatchAck::default()),
            Some(BatchItem::Pharmacy(_)) => upload!(pharmacy, Pharmacy, "bench-token-pharmacist"),
            Some(BatchItem::Custody(_)) => upload!(custody, Custody, "bench-token-custody"),
            Some(BatchItem::Prison(_)) => upload!(prison, Prison, "bench-token-carat"),
            Some(BatchItem::Treatment(_)) => upload!(treatment, Treatment, "bench-token-treatment"),
            Some(BatchItem::Ambulance(_)) => upload!(ambulance, Ambulance, "bench-token-paramedic"),
        };
        reply.map(tonic::Response::into_inner)
    }

    /// Sends `count` commands made by `make` as `RecordBatch` uploads of
    /// [`BATCH_SIZE`] per agency, [`BATCHES_IN_FLIGHT`] at once; returns
    /// the seconds until the last was acknowledged.
    async fn flood_batches(&self, count: u64, make: impl Fn(u64) -> Command) -> Result<f64> {
        let start = Instant::now();
        let mut buffers: Vec<Vec<BatchItem>> = vec![Vec::new(); 5];
        let mut pending = FuturesUnordered::new();
        let mut refused = 0u64;
        let mut uploads = 0usize;
        let mut check = |r: Result<BatchAck, tonic::Status>| -> Result<()> {
            let ack =
                r.map_err(|e| anyhow::anyhow!("batch failed: {:?} {}", e.code(), e.message()))?;
            if let Some(first) = ack.results.iter().find_map(|r| match &r.outcome {
                Some(hub_proto::common::batch_result::Outcome::Error(e)) => Some(e.clone()),
                _ => None,
            }) {
                eprintln!("batch refused a command: {} {}", first.code, first.message);
            }
            refused += u64::from(ack.refused);
            Ok(())
        };
        for n in 0..count {
            let item = make(n).into_batch_item();
            let slot = item.agency();
            buffers[slot].push(item);
            let full = buffers[slot].len() >= BATCH_SIZE;
            let last = n + 1 == count;
            let ready: Vec<Vec<BatchItem>> = if last {
                buffers.iter_mut().map(std::mem::take).collect()
            } else if full {
                vec![std::mem::take(&mut buffers[slot])]
            } else {
                continue;
            };
            for items in ready.into_iter().filter(|b| !b.is_empty()) {
                if pending.len() >= BATCHES_IN_FLIGHT {
                    if let Some(r) = pending.next().await {
                        check(r)?;
                    }
                }
                let me = self.clone();
                let c = uploads % CONNECTIONS;
                uploads += 1;
                pending.push(async move { me.send_batch(c, items).await });
            }
        }
        while let Some(r) = pending.next().await {
            check(r)?;
        }
        if refused > 0 {
            bail!("{refused} of {count} batched commands were refused");
        }
        Ok(start.elapsed().as_secs_f64())
    }
}

fn is_err(r: Result<EventAck, tonic::Status>) -> bool {
    match r {
        Ok(_) => false,
        Err(e) => {
            eprintln!("command failed: {:?} {}", e.code(), e.message());
            true
        }
    }
}

/// A typical hub event, encoded: a release date with a sealed name.
fn typical_event_size() -> usize {
    hub_proto::events::Event {
        event_id: "01a20b3a-ca03-7068-b826-98e6eb66773c".into(),
        event_type: "release_date_recorded".into(),
        schema_version: 1,
        occurred_at: Some(prost_types::Timestamp::default()),
        recorded_at: Some(prost_types::Timestamp::default()),
        agency: "prison".into(),
        org_code: "LEI".into(),
        partnership_code: "bradford".into(),
        actor_user_id: "u-17".into(),
        actor_role: "carat_worker".into(),
        person_key: "0".repeat(32),
        request_id: "r".repeat(24),
        linked_person_keys: vec!["1".repeat(32)],
        client_key: String::new(),
        request_digest: "0".repeat(64),
        sealed: Some(hub_proto::events::Sealed {
            key_id: "0".repeat(32),
            nonce: vec![0; 24],
            ciphertext: vec![0; 40],
            has_name: true,
        }),
        payload: Some(hub_proto::events::event::Payload::ReleaseDateRecorded(
            hub_proto::events::ReleaseDateRecorded {
                prison_code: "LEI".into(),
                release_date: "2026-12-01".into(),
            },
        )),
    }
    .encoded_len()
}

async fn raw_publish(nats: &NatsServer, count: u64, in_flight: usize, size: usize) -> Result<f64> {
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    js.create_stream(stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let body = bytes::Bytes::from(vec![7u8; size]);
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    for n in 0..count {
        if pending.len() >= in_flight {
            pending.next().await.expect("pending")?;
        }
        // Acknowledged one by one, as a service waits for each command's.
        let ack = js
            .publish(format!("bench.raw.p{}", n % 149), body.clone())
            .await?;
        pending.push(async move { ack.await.map(|_| ()) });
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    let secs = start.elapsed().as_secs_f64();
    js.delete_stream("BENCH_RAW").await?;
    Ok(count as f64 / secs)
}

/// Reads the whole event stream with an ordered consumer.
async fn raw_consume(nats: &NatsServer) -> Result<(u64, f64)> {
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    let mut stream = js.get_stream("HUB_EVENTS").await?;
    let last = stream.info().await?.state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: "hub.>".into(),
            ..Default::default()
        })
        .await?;
    let start = Instant::now();
    let mut messages = consumer.messages().await?;
    let mut read = 0u64;
    while let Some(m) = messages.next().await {
        let m = m?;
        read += 1;
        if m.info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence
            >= last
        {
            break;
        }
    }
    Ok((read, start.elapsed().as_secs_f64()))
}

/// `perf record` on the projections and nats-server, for `--perf`.
struct Profiler(std::process::Child);

impl Profiler {
    fn start(hub: &Hub, out: &std::path::Path, call_graph: Option<&str>) -> Result<Self> {
        let pids: Vec<String> = PROJECTIONS
            .iter()
            .filter_map(|name| hub.process(name).pid())
            .chain(hub.nats.pid())
            .map(|pid| pid.to_string())
            .collect();
        let mut perf = std::process::Command::new("perf");
        perf.args(["record", "--quiet", "-F", "499", "-o"]).arg(out);
        if let Some(mode) = call_graph {
            perf.args(["--call-graph", mode]);
        }
        let child = perf
            .args(["-p", &pids.join(",")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting perf (is it installed?): {e}"))?;
        // perf needs a moment to attach before the rebuild starts.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self(child))
    }

    /// Stops recording (SIGINT, as Ctrl-C would) and waits for the file.
    fn stop(mut self) -> Result<()> {
        std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status()?;
        // perf ends with the signal's status once it has written the file.
        let status = self.0.wait()?;
        if !status.success() && status.code().is_some() {
            eprintln!("perf record: {status}");
        }
        Ok(())
    }
}

/// Rebuilds the projections `names` at once; returns the wall time.
async fn rebuild(hub: &Hub, names: &[&'static str]) -> Result<f64> {
    let start = Instant::now();
    let mut runs = Vec::new();
    for &name in names {
        let mut client = ProjectionStatusServiceClient::new(hub.channel(name).await?);
        runs.push(tokio::spawn(async move {
            let mut progress = client
                .rebuild_projection(authed(RebuildProjectionRequest {}, ADMIN))
                .await?
                .into_inner();
            let mut switched = false;
            while let Some(p) = progress.message().await? {
                switched |= p.switched;
            }
            anyhow::ensure!(switched, "{name}: the rebuild did not switch readers over");
            Ok::<_, anyhow::Error>(())
        }));
    }
    for r in runs {
        r.await??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Waits until every projection has applied `sequence`.
async fn settle(hub: &Hub, sequence: u64) -> Result<()> {
    for name in PROJECTIONS {
        let mut client = ProjectionStatusServiceClient::new(hub.channel(name).await?);
        loop {
            let s = client
                .get_projection_status(authed(Default::default(), ADMIN))
                .await?
                .into_inner();
            if s.applied_sequence >= sequence {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

async fn last_sequence(nats: &NatsServer) -> Result<u64> {
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    Ok(js
        .get_stream("HUB_EVENTS")
        .await?
        .info()
        .await?
        .state
        .last_sequence)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Bradford's training counts as an admin, once `min_sequence` is applied:
/// the read that shows a command end to end.
fn bradford_counts_after(min_sequence: u64) -> Request<GetTrainingCountsRequest> {
    authed(
        GetTrainingCountsRequest {
            partnership_code: "bradford".into(),
            financial_year: String::new(),
            min_sequence,
        },
        ADMIN,
    )
}

/// Bradford's activity as an admin, once `min_sequence` is applied.
fn bradford_activity_after(min_sequence: u64) -> Request<GetActivityRequest> {
    authed(
        GetActivityRequest {
            partnership_code: "bradford".into(),
            financial_year: String::new(),
            min_sequence,
        },
        ADMIN,
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Which projection the end-to-end phase reads.
#[derive(Clone, Copy)]
enum Reader {
    Training,
    Activity,
}

/// A steady `rate` commands a second for `seconds`; every tenth is followed
/// by a query of `reader` waiting for its sequence. Returns the latencies
/// (ms).
async fn e2e(
    hub: &Hub,
    agencies: &Agencies,
    env: &Env<'_>,
    seconds: u64,
    reader: Reader,
    base: u64,
) -> Result<Vec<f64>> {
    let rate = 1000u64;
    let training = TrainingCountsServiceClient::new(hub.channel("training-projection").await?);
    let activity = ActivityServiceClient::new(hub.channel("activity-projection").await?);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..rate * seconds {
        tick.tick().await;
        let command = workload::training(base + i, "bradford", env);
        let agencies = agencies.clone();
        let (mut training, mut activity) = (training.clone(), activity.clone());
        tasks.push(tokio::spawn(async move {
            let ack = agencies.send(base + i, command).await?;
            if !i.is_multiple_of(10) {
                return Ok::<_, anyhow::Error>(None);
            }
            let acked = Instant::now();
            let reply = match reader {
                Reader::Training => training
                    .get_training_counts(bradford_counts_after(ack.stream_sequence))
                    .await
                    .map(drop),
                Reader::Activity => activity
                    .get_activity(bradford_activity_after(ack.stream_sequence))
                    .await
                    .map(drop),
            };
            match reply {
                Ok(_) => Ok(Some(ms(acked.elapsed()))),
                // Not visible within the 5 s a query waits: a sample of
                // (at least) that long, counted, not the end of the run.
                Err(e) if e.code() == tonic::Code::Unavailable => {
                    eprintln!("e2e: not visible within 5 s: {}", e.message());
                    Ok(Some(ms(acked.elapsed())))
                }
                Err(e) => Err(e.into()),
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        if let Some(l) = t.await?? {
            latencies.push(l);
        }
    }
    Ok(latencies)
}

/// `GetNationalComparison` latencies (ms) as an analyst (everything
/// withheld that would be), one query at a time.
async fn national(hub: &Hub, queries: usize) -> Result<Vec<f64>> {
    let mut client = ActivityServiceClient::new(hub.channel("activity-projection").await?);
    let request = || {
        authed(
            GetNationalComparisonRequest::default(),
            "bench-token-analyst",
        )
    };
    let first = client
        .get_national_comparison(request())
        .await?
        .into_inner();
    if first.partnerships.len() < 100 {
        bail!(
            "the comparison has {} partnerships",
            first.partnerships.len()
        );
    }
    let mut latencies = Vec::with_capacity(queries);
    for _ in 0..queries {
        let t = Instant::now();
        client.get_national_comparison(request()).await?;
        latencies.push(ms(t.elapsed()));
    }
    Ok(latencies)
}

/// `ListPickups` latencies (ms) for a partnership with `releases` upcoming,
/// and the CPU per query.
async fn list(
    hub: &Hub,
    agencies: &Agencies,
    env: &Env<'_>,
    releases: u64,
    queries: usize,
    in_flight: usize,
) -> Result<(Vec<f64>, BTreeMap<String, f64>)> {
    let base = 80_000_000u64;
    agencies
        .flood(releases, in_flight, |n| {
            workload::release(base + n, "kirklees", env)
        })
        .await?;
    settle(hub, last_sequence(&hub.nats).await?).await?;
    let mut client = PickupListServiceClient::new(hub.channel("pickup-projection").await?);
    let request = || ListPickupsRequest {
        partnership_code: "kirklees".into(),
        as_of_date: String::new(),
        horizon_days: Some(14),
        min_sequence: 0,
    };
    let first = client
        .list_pickups(authed(request(), "bench-token-carat"))
        .await?
        .into_inner();
    if (first.entries.len() as u64) < releases.min(1_000) * 9 / 10 {
        bail!(
            "the list holds {} entries, expected about {releases}",
            first.entries.len()
        );
    }
    let mut latencies = Vec::with_capacity(queries);
    let meter = CpuMeter::start(hub);
    for _ in 0..queries {
        let t = Instant::now();
        client
            .list_pickups(authed(request(), "bench-token-carat"))
            .await?;
        latencies.push(ms(t.elapsed()));
    }
    Ok((latencies, meter.per_event(queries as u64)))
}

/// Bytes on disk of JetStream's store and of each projection's folder.
fn disk_by_store(hub: &Hub) -> Vec<(&'static str, u64)> {
    std::iter::once(("nats-server", dir_bytes(&hub.nats.store_dir())))
        .chain(
            PROJECTIONS
                .iter()
                .map(|name| (*name, dir_bytes(&hub.dir.path().join(name)))),
        )
        .collect()
}

/// The bytes of every store in a [`disk_by_store`] reading.
fn total_bytes(stores: &[(&str, u64)]) -> u64 {
    stores.iter().map(|(_, b)| b).sum()
}

/// [`disk_by_store`], from `last` (a reading just taken) on, once it has
/// stopped changing (by less than 0.5 % over 5 s: compactions and the
/// removal of replaced stores done), or after 120 s; with the seconds
/// waited.
async fn settled_disk(
    hub: &Hub,
    mut last: Vec<(&'static str, u64)>,
) -> (Vec<(&'static str, u64)>, f64) {
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = disk_by_store(hub);
        let (now_total, last_total) = (total_bytes(&now) as f64, total_bytes(&last) as f64);
        let steady = (now_total - last_total).abs() <= 0.005 * last_total;
        last = now;
        if steady || start.elapsed() >= Duration::from_secs(120) {
            return (last, start.elapsed().as_secs_f64());
        }
    }
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 11 and 12
            // after the command name.
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0);
    ticks / 100.0 // USER_HZ
}

/// Where a phase's CPU went: every process's CPU time, taken before and
/// after, as microseconds per event of the phase. Counts, not wall time,
/// so it says which process to look at however busy the machine is.
struct CpuMeter {
    before: Vec<(String, u32, f64)>,
}

impl CpuMeter {
    fn start(hub: &Hub) -> Self {
        let mut pids: Vec<(String, u32)> = hub
            .processes
            .iter()
            .zip(NAMES)
            .filter_map(|(p, name)| p.pid().map(|pid| (name.to_string(), pid)))
            .collect();
        if let Some(pid) = hub.nats.pid() {
            pids.push(("nats-server".into(), pid));
        }
        pids.push(("hub-bench".into(), std::process::id()));
        Self {
            before: pids
                .into_iter()
                .map(|(n, pid)| (n, pid, cpu_seconds(pid)))
                .collect(),
        }
    }

    /// µs of CPU per event, by process (those that used any), and in all.
    fn per_event(&self, events: u64) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let mut total = 0.0;
        for (name, pid, before) in &self.before {
            let used = cpu_seconds(*pid) - before;
            total += used;
            if used > 0.0 {
                out.insert(name.clone(), used * 1e6 / events as f64);
            }
        }
        out.insert("all".into(), total * 1e6 / events as f64);
        out
    }
}

/// Peak resident memory (VmHWM) of a process, in MiB.
fn peak_rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmHWM")
}

/// A memory figure (`VmRSS`, `VmHWM`, ...) of a process from
/// `/proc/<pid>/status`, in MiB (0 when unknown).
fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let plan = args.plan();
    let in_flight = args.in_flight;
    match args.soak {
        Some(d) => eprintln!(
            "hub-bench soak: {} s at {} commands/s",
            d.as_secs(),
            args.soak_rate
        ),
        None => eprintln!(
        "hub-bench {:?}: {} commands, national year of {} events, e2e {} s at 1,000/s, {} in flight, nats-server memory budget {}",
        args.scale, plan.commands, plan.national, plan.e2e_seconds, in_flight, args.nats_memory_limit
    ),
    }
    let extra = [("HUB_DEDUPE_WINDOW", args.dedupe_window.as_str())];
    let hub = Hub::start(&extra, args.tls, &args.nats_memory_limit).context("starting the hub")?;
    let agencies = Agencies::connect(&hub).await?;
    let partnerships: Vec<String> =
        std::fs::read_to_string(workspace_root().join("seeds/partnerships.tsv"))?
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').next().map(str::to_string))
            .filter(|c| !c.is_empty())
            .collect();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/London")?)
        .date();
    let days: Vec<String> = (1..=14)
        .map(|d| (today + jiff::Span::new().days(d)).to_string())
        .collect();
    let now = jiff::Timestamp::now();
    let env = Env {
        run: "bench",
        partnerships: &partnerships,
        now: prost_types::Timestamp {
            seconds: now.as_second(),
            nanos: 0,
        },
        days_ahead: &days,
    };
    let out_file = |name: &str| {
        args.out.clone().unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"))
                .join("bench")
                .join(name)
        })
    };
    if let Some(duration) = args.soak {
        let mut doc = soak::run(
            &hub,
            &agencies,
            &env,
            duration,
            args.soak_rate,
            args.soak_window,
        )
        .await?;
        // Under a budget nats-server's memory grows towards it by design:
        // the figures say which collector setting they came from.
        if let Some(fields) = doc.as_object_mut() {
            fields.insert("nats_memory_limit".into(), json!(args.nats_memory_limit));
        }
        let out = out_file("soak.json");
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&out, serde_json::to_string_pretty(&doc)? + "\n")?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let mut figures: BTreeMap<&str, f64> = BTreeMap::new();

    // 1-2. Raw publish against ingest, the same count and window.
    let size = typical_event_size();
    let mut cpu: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    let meter = CpuMeter::start(&hub);
    let raw = raw_publish(&hub.nats, plan.commands, in_flight, size).await?;
    cpu.insert("raw_publish", meter.per_event(plan.commands));
    figures.insert("raw_publish_per_s", raw);
    eprintln!("raw publish: {raw:.0}/s ({size}-byte messages)");
    let meter = CpuMeter::start(&hub);
    let secs = agencies
        .flood(plan.commands, in_flight, |n| workload::national(n, &env))
        .await?;
    cpu.insert("ingest", meter.per_event(plan.commands));
    let ingest = plan.commands as f64 / secs;
    figures.insert("ingest_per_s", ingest);
    figures.insert("ingest_ratio", ingest / raw);
    eprintln!("ingest: {ingest:.0}/s");
    let env_batch = Env {
        run: "batch",
        ..env
    };
    let meter = CpuMeter::start(&hub);
    let secs = agencies
        .flood_batches(plan.commands, |n| workload::national(n, &env_batch))
        .await?;
    cpu.insert("ingest_batch", meter.per_event(plan.commands));
    let batch_ingest = plan.commands as f64 / secs;
    figures.insert("ingest_batch_per_s", batch_ingest);
    figures.insert("ingest_batch_ratio", batch_ingest / raw);
    eprintln!("ingest by RecordBatch: {batch_ingest:.0}/s");

    // 3. e2e at a steady 1,000 a second.
    settle(&hub, last_sequence(&hub.nats).await?).await?;
    let mut e2e_ms = e2e(
        &hub,
        &agencies,
        &env,
        plan.e2e_seconds,
        Reader::Training,
        50_000_000,
    )
    .await?;
    e2e_ms.sort_by(f64::total_cmp);
    figures.insert("e2e_p50_ms", percentile(&e2e_ms, 0.50));
    figures.insert("e2e_p99_ms", percentile(&e2e_ms, 0.99));
    eprintln!("e2e: {} samples", e2e_ms.len());
    // The same through the activity projection's read-your-writes.
    let mut e2e_ms = e2e(
        &hub,
        &agencies,
        &env,
        plan.e2e_seconds,
        Reader::Activity,
        60_000_000,
    )
    .await?;
    e2e_ms.sort_by(f64::total_cmp);
    figures.insert("e2e_activity_p50_ms", percentile(&e2e_ms, 0.50));
    figures.insert("e2e_activity_p99_ms", percentile(&e2e_ms, 0.99));
    eprintln!("e2e (activity): {} samples", e2e_ms.len());

    // 4. The list with 1,000 upcoming releases.
    let (mut list_ms, list_cpu) = list(
        &hub,
        &agencies,
        &env,
        plan.list_releases,
        plan.list_queries,
        in_flight,
    )
    .await?;
    cpu.insert("list", list_cpu);
    list_ms.sort_by(f64::total_cmp);
    figures.insert("list_p50_ms", percentile(&list_ms, 0.50));
    figures.insert("list_p99_ms", percentile(&list_ms, 0.99));

    // 5. The national year, on top of what is there.
    let already = last_sequence(&hub.nats).await?;
    let base = 100_000_000u64;
    let env_national = Env {
        run: "national",
        ..env
    };
    let national_s = agencies
        .flood_batches(plan.national, |n| {
            workload::national(base + n, &env_national)
        })
        .await?;
    let events = last_sequence(&hub.nats).await?;
    settle(&hub, events).await?;
    figures.insert("national_events", (events - already) as f64);
    figures.insert("national_ingest_s", national_s);
    // The national comparison after the national year, recorded live:
    // every partnership of the register from all three projections.
    let mut national_ms = national(&hub, plan.list_queries).await?;
    national_ms.sort_by(f64::total_cmp);
    figures.insert("national_p50_ms", percentile(&national_ms, 0.50));
    figures.insert("national_p99_ms", percentile(&national_ms, 0.99));
    let meter = CpuMeter::start(&hub);
    let (read, consume_s) = raw_consume(&hub.nats).await?;
    cpu.insert("raw_consume", meter.per_event(read));
    let raw_consume_per_s = read as f64 / consume_s;
    figures.insert("raw_consume_per_s", raw_consume_per_s);
    let profiler = |phase_is_three: bool| {
        args.perf
            .as_deref()
            .filter(|_| args.perf_all_three == phase_is_three)
            .map(|out| Profiler::start(&hub, out, args.perf_call_graph.as_deref()))
            .transpose()
    };
    let meter = CpuMeter::start(&hub);
    let profile = profiler(false)?;
    let rebuild_s = rebuild(&hub, &FIRST_TWO).await?;
    if let Some(profile) = profile {
        profile.stop()?;
    }
    cpu.insert("replay", meter.per_event(events));
    let replay = events as f64 / rebuild_s;
    figures.insert("national_rebuild_s", rebuild_s);
    figures.insert("replay_per_s", replay);
    figures.insert("replay_ratio", replay / raw_consume_per_s);
    // All three at once, as after a restore.
    let meter = CpuMeter::start(&hub);
    let profile = profiler(true)?;
    let rebuild3_s = rebuild(&hub, &PROJECTIONS).await?;
    if let Some(profile) = profile {
        profile.stop()?;
    }
    cpu.insert("replay3", meter.per_event(events));
    figures.insert("national_rebuild3_s", rebuild3_s);
    figures.insert("replay3_per_s", events as f64 / rebuild3_s);
    // And again at once after the rebuild of all three, while the fresh
    // stores still compact what was bulk-loaded (decision 0006).
    let mut rebuilt_ms = national(&hub, plan.list_queries).await?;
    rebuilt_ms.sort_by(f64::total_cmp);
    figures.insert("national_rebuilt_p50_ms", percentile(&rebuilt_ms, 0.50));
    figures.insert("national_rebuilt_p99_ms", percentile(&rebuilt_ms, 0.99));
    let stores = disk_by_store(&hub);
    figures.insert(
        "disk_bytes_per_event",
        total_bytes(&stores) as f64 / events as f64,
    );
    // Once the fresh stores' compactions have settled: what an operator
    // sizes disks by.
    let (settled, settle_s) = settled_disk(&hub, stores).await;
    figures.insert(
        "disk_bytes_per_event_settled",
        total_bytes(&settled) as f64 / events as f64,
    );
    figures.insert("disk_settle_s", settle_s);
    let settled_by_store: serde_json::Map<String, serde_json::Value> = settled
        .iter()
        .map(|(name, bytes)| (name.to_string(), json!(*bytes as f64 / events as f64)))
        .collect();

    // 6. Memory.
    let mut rss: Vec<(String, f64)> = hub
        .processes
        .iter()
        .zip(NAMES)
        .map(|(p, name)| (name.to_string(), p.pid().map(peak_rss_mb).unwrap_or(0.0)))
        .collect();
    let peak = rss.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    figures.insert("peak_rss_mb", peak);
    rss.push((
        "nats-server".into(),
        hub.nats.pid().map(peak_rss_mb).unwrap_or(0.0),
    ));

    print_table(&figures, &rss, &args, &plan, size, events);
    let by_store: Vec<String> = settled
        .iter()
        .map(|(n, b)| format!("{n} {:.0}", *b as f64 / events as f64))
        .collect();
    println!(
        "disk bytes per event, settled, by store: {}",
        by_store.join(", ")
    );
    println!("CPU per event (µs), by process:");
    for (phase, by) in &cpu {
        let parts: Vec<String> = by.iter().map(|(n, us)| format!("{n} {us:.1}")).collect();
        println!("  {phase:<14} {}", parts.join(", "));
    }
    if args.keep {
        let Hub {
            dir,
            processes,
            nats,
            ..
        } = hub;
        drop(processes);
        drop(nats);
        println!("logs and stores kept in {}", dir.keep().display());
    }
    let out = out_file("latest.json");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut doc = serde_json::Map::new();
    for (k, v) in &figures {
        doc.insert((*k).to_string(), json!(v));
    }
    doc.insert(
        "scale".into(),
        json!(format!("{:?}", args.scale).to_lowercase()),
    );
    doc.insert("in_flight".into(), json!(in_flight));
    doc.insert("tls".into(), json!(args.tls));
    doc.insert("nats_memory_limit".into(), json!(args.nats_memory_limit));
    doc.insert("cpu_us_per_event".into(), json!(cpu));
    doc.insert("commands".into(), json!(plan.commands));
    doc.insert("event_bytes".into(), json!(size));
    doc.insert(
        "disk_bytes_per_event_by_store_settled".into(),
        json!(settled_by_store),
    );
    doc.insert(
        "rss_mb".into(),
        json!(rss
            .iter()
            .map(|(n, m)| (n.clone(), json!(m)))
            .collect::<serde_json::Map<_, _>>()),
    );
    std::fs::write(&out, serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}

fn print_table(
    f: &BTreeMap<&str, f64>,
    rss: &[(String, f64)],
    args: &Args,
    plan: &Plan,
    size: usize,
    events: u64,
) {
    let g = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    println!(
        "hub-bench, scale {:?}: {} commands, {} in flight, {size}-byte events",
        args.scale, plan.commands, args.in_flight
    );
    println!("{:<28} {:>14}  target", "measure", "value");
    // (key, decimals, target)
    const ROWS: [(&str, usize, &str); 27] = [
        ("raw_publish_per_s", 0, ""),
        ("ingest_per_s", 0, ""),
        ("ingest_ratio", 2, ">= 0.5"),
        ("ingest_batch_per_s", 0, ""),
        ("ingest_batch_ratio", 2, ">= 0.5"),
        ("raw_consume_per_s", 0, ""),
        ("replay_per_s", 0, ">= 100000"),
        ("replay_ratio", 2, ">= 0.5"),
        ("e2e_p50_ms", 2, ""),
        ("e2e_p99_ms", 2, "<= 25"),
        ("e2e_activity_p50_ms", 2, ""),
        ("e2e_activity_p99_ms", 2, "<= 25"),
        ("national_p50_ms", 2, ""),
        ("national_p99_ms", 2, "< 50"),
        ("national_rebuilt_p50_ms", 2, ""),
        ("national_rebuilt_p99_ms", 2, ""),
        ("list_p50_ms", 2, ""),
        ("list_p99_ms", 2, "<= 2"),
        ("national_events", 0, ""),
        ("national_ingest_s", 1, ""),
        ("national_rebuild_s", 1, "<= 60"),
        ("national_rebuild3_s", 1, ""),
        ("replay3_per_s", 0, ""),
        ("disk_bytes_per_event", 0, "<= 300"),
        ("disk_bytes_per_event_settled", 0, "<= 300"),
        ("disk_settle_s", 0, ""),
        ("peak_rss_mb", 0, ""),
    ];
    for (k, decimals, target) in ROWS {
        println!("{k:<28} {:>14.decimals$}  {target}", g(k));
    }
    println!("stream events at the end: {events}");
    for (name, mb) in rss {
        println!("  peak RSS {name:<22} {mb:>8.0} MiB");
    }
}
