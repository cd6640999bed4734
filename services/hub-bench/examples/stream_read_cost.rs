//! What it costs nats-server and a client to read a stream whole, per
//! message, by the way it is read, by the headers its messages carry and by
//! the stream's compression.
//!
//! Decision record 0012 rests on these figures: a projection's rebuild reads
//! every message through async-nats, which parses each header of each
//! message before the projection sees it. This tool fills a stream shaped
//! like the hub's (`HUB_EVENTS`, S2-compressed, about 4,500 subjects, a
//! body of the size of a typical event) on a server you start, then reads
//! it back and prints the CPU each side spent (from `/proc`), so that one
//! layout can be set against another on the same machine. BENCHMARKS.md
//! ("Stream compression, and reading the stream's files") adds
//! `--compression none`, `--random` bodies and `read snapshot`; "Reading
//! only what a projection uses" adds `fill --mix` (subjects spread as a
//! national year spreads them) and `read filtered` (a consumer per
//! subject filter, decision record 0009):
//!
//! ```sh
//! nats-server -js -a 127.0.0.1 -p 14222 --store_dir /tmp/three &
//! stream_read_cost --url nats://127.0.0.1:14222 fill 600000 --headers three
//! stream_read_cost --url nats://127.0.0.1:14222 --server-pid $! read pull
//! stream_read_cost --url ... fill 1000000 --headers one --mix   # on a fresh server
//! stream_read_cost --url ... --server-pid $! read filtered \
//!     --filter 'hub.events.custody.>' --filter 'hub.events.pharmacy.*.naloxone_supplied'
//! ```
//!
//! The client uses mimalloc, as the projections do.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STREAM: &str = "HUB_EVENTS";

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// nats-server's process id, to read its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the stream and publishes `count` messages into it.
    Fill {
        count: u64,
        #[arg(long, value_enum, default_value = "three")]
        headers: Headers,
        /// Bytes added to each 330-byte body.
        #[arg(long, default_value_t = 0)]
        extra: usize,
        /// Bodies of pseudo-random bytes, which do not compress (the
        /// default body is a pattern S2 shrinks about tenfold; real events,
        /// with their ids, digests and sealed fields, lie between).
        #[arg(long)]
        random: bool,
        /// The stream's compression (the hub's is S2).
        #[arg(long, value_enum, default_value = "s2")]
        compression: Compression,
        /// Subjects as the hub's national year spreads them over agencies
        /// and event types (149 partnerships; 68.7 % needle exchanges),
        /// instead of needle exchanges of 4,500 made-up partnerships: for
        /// `read filtered`.
        #[arg(long)]
        mix: bool,
    },
    /// Reads the whole stream once.
    Read {
        #[arg(value_enum)]
        how: How,
        /// Messages asked of the server at once (`pull`, `core-pull`, `direct`, `filtered`).
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// `filtered`: one pull consumer per filter subject, read at once
        /// (a subject may hold wildcards); repeat the flag.
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// `filtered`: one consumer holding every `--filter` instead
        /// (`filter_subjects`, the path decision record 0009 rejected).
        #[arg(long)]
        one_consumer: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Headers {
    /// `Nats-Msg-Id`, `Hub-Request-Digest` and `Hub-Event-Id`: the agency
    /// services' messages before decision record 0012.
    Three,
    /// `Nats-Msg-Id` and one header holding both of the others.
    Two,
    /// `Nats-Msg-Id` alone: the agency services' messages since 0012.
    One,
}

#[derive(Clone, Copy, ValueEnum)]
enum Compression {
    None,
    S2,
}

#[derive(Clone, Copy, ValueEnum)]
enum How {
    /// An ordered consumer (`hub-bench`'s raw consume).
    Ordered,
    /// A pull consumer without acknowledgements through async-nats's
    /// JetStream layer, in chunks of 512: a projection's rebuild.
    Pull,
    /// The same consumer, its pulls sent and its messages read on a core
    /// subscription, below async-nats's JetStream layer.
    CorePull,
    /// Batched direct gets (`$JS.API.DIRECT.GET`, NATS 2.11), two batches
    /// asked at once.
    Direct,
    /// Only the messages of the `--filter` subjects, through one pull
    /// consumer per filter read at once (or one consumer with all of them:
    /// `--one-consumer`); the count is of messages delivered. What a
    /// replay that leaves out what a projection ignores would cost the
    /// server, per message of the stream.
    Filtered,
    /// The stream's snapshot (`$JS.API.STREAM.SNAPSHOT`, as `hubctl
    /// backup` takes it): the server's message blocks as they are on disk,
    /// in an S2-compressed tar, received and acknowledged chunk by chunk
    /// but not unpacked. What the server would spend if a rebuild read its
    /// files rather than its messages.
    Snapshot,
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0)
        / 100.0
}

/// The stream sequence in a JetStream delivery's reply subject
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`,
/// or longer with a domain in front: the fourth token from the end).
fn stream_sequence(reply: &str) -> Result<u64> {
    Ok(reply.rsplit('.').nth(3).context("short reply")?.parse()?)
}

async fn fill(
    js: &jetstream::Context,
    count: u64,
    headers: Headers,
    extra: usize,
    random: bool,
    compression: Compression,
    mix: bool,
) -> Result<()> {
    js.create_stream(jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec!["hub.>".into()],
        compression: Some(match compression {
            Compression::None => jetstream::stream::Compression::None,
            Compression::S2 => jetstream::stream::Compression::S2,
        }),
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    let mut acks = futures::stream::FuturesOrdered::new();
    for i in 0..count {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("ORG{}:{i:024x}", i % 97).as_str());
        let digest = format!("{:064x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let event_id = format!("019b{i:028x}");
        match headers {
            Headers::Three => {
                h.insert("Hub-Request-Digest", digest.as_str());
                h.insert("Hub-Event-Id", event_id.as_str());
            }
            Headers::Two => h.insert("Hub-Request", format!("{event_id} {digest}").as_str()),
            Headers::One => {}
        }
        let mut state = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let body: Vec<u8> = (0..330 + extra)
            .map(|j| {
                if random {
                    // xorshift64
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                } else {
                    ((i as usize).wrapping_mul(31).wrapping_add(j * 7) % 251) as u8
                }
            })
            .collect();
        let subject = if mix {
            mixed_subject(i)
        } else {
            format!(
                "hub.events.pharmacy.E{:05}.needle_exchange_recorded",
                i.wrapping_mul(2_654_435_761) % 4_500
            )
        };
        let pending = js.publish_with_headers(subject, h, body.into()).await?;
        acks.push_back(std::future::IntoFuture::into_future(pending));
        if acks.len() >= 256 {
            acks.next().await.context("ack")??;
        }
    }
    while let Some(ack) = acks.next().await {
        ack?;
    }
    println!("filled {count}");
    Ok(())
}

/// The subject of message `i` in `--mix`: one of 149 partnerships; 68.7 %
/// needle exchanges and 3.3 % naloxone supplies (pharmacy), the rest over
/// seven event types of each of custody, prison, treatment and ambulance
/// (4,470 subjects in all, about as many as in a national year).
fn mixed_subject(i: u64) -> String {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let partnership = h % 149;
    let r = (h / 149) % 1000;
    let (agency, kind) = match r {
        0..687 => ("pharmacy", "needle_exchange_recorded".to_string()),
        687..720 => ("pharmacy", "naloxone_supplied".to_string()),
        _ => (
            ["custody", "prison", "treatment", "ambulance"][(r % 4) as usize],
            format!("type_{}", (r / 4) % 7),
        ),
    };
    format!("hub.events.{agency}.P{partnership:03}.{kind}")
}

/// Whether a JetStream delivery is the stream's message `last` or later.
fn reached(m: &jetstream::Message, last: u64) -> Result<bool> {
    let info = m.info().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(info.stream_sequence >= last)
}

/// A pull consumer's messages, `batch` asked at once, in chunks of up to
/// 512 (as a projection's replay reads them).
async fn pulled(
    consumer: jetstream::consumer::PullConsumer,
    batch: usize,
) -> Result<impl futures::Stream<Item = Vec<Result<jetstream::Message, pull::MessagesError>>>> {
    Ok(consumer
        .stream()
        .max_messages_per_batch(batch)
        .expires(Duration::from_secs(5))
        .heartbeat(Duration::from_secs(1))
        .messages()
        .await?
        .ready_chunks(512))
}

/// Reads every message up to `last`; returns how many.
async fn read(
    client: &async_nats::Client,
    how: How,
    batch: usize,
    last: u64,
    (filters, one_consumer): (&[String], bool),
) -> Result<u64> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(STREAM).await?;
    let name = format!("read-cost-{}", std::process::id());
    let consumer = |name: String| pull::Config {
        name: Some(name),
        ack_policy: AckPolicy::None,
        deliver_policy: DeliverPolicy::All,
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    };
    let mut count = 0u64;
    match how {
        How::Ordered => {
            let mut messages = stream
                .create_consumer(pull::OrderedConfig::default())
                .await?
                .messages()
                .await?;
            while let Some(m) = messages.next().await {
                count += 1;
                if reached(&m?, last)? {
                    break;
                }
            }
        }
        How::Pull => {
            let mut chunks = pulled(stream.create_consumer(consumer(name)).await?, batch).await?;
            'chunks: while let Some(chunk) = chunks.next().await {
                for m in chunk {
                    count += 1;
                    if reached(&m?, last)? {
                        break 'chunks;
                    }
                }
            }
        }
        How::CorePull => {
            stream.create_consumer(consumer(name.clone())).await?;
            let inbox = client.new_inbox();
            let mut sub = client.subscribe(inbox.clone()).await?;
            let next = format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{name}");
            let request = Bytes::from(format!(
                "{{\"batch\":{batch},\"expires\":{}}}",
                Duration::from_secs(5).as_nanos()
            ));
            client
                .publish_with_reply(next.clone(), inbox.clone(), request.clone())
                .await?;
            let mut pending = batch;
            while let Some(m) = sub.next().await {
                if m.status.is_some() {
                    pending = 0; // the pull ended or expired: ask again
                } else {
                    pending -= 1;
                    count += 1;
                    if stream_sequence(m.reply.as_deref().unwrap_or_default())? >= last {
                        break;
                    }
                }
                if pending <= batch / 2 {
                    client
                        .publish_with_reply(next.clone(), inbox.clone(), request.clone())
                        .await?;
                    pending += batch;
                }
            }
        }
        How::Direct => {
            let inbox = client.new_inbox();
            let mut sub = client.subscribe(format!("{inbox}.*")).await?;
            let (mut from, mut asked, mut ended) = (1u64, 0u64, 0u64);
            let ask = |from: u64, k: u64| {
                client.publish_with_reply(
                    format!("$JS.API.DIRECT.GET.{STREAM}"),
                    format!("{inbox}.{k}"),
                    Bytes::from(format!("{{\"seq\":{from},\"batch\":{batch}}}")),
                )
            };
            for _ in 0..2 {
                ask(from, asked).await?;
                from += batch as u64;
                asked += 1;
            }
            while let Some(m) = sub.next().await {
                if m.status.is_some() {
                    // The end of one batch.
                    ended += 1;
                    if from <= last {
                        ask(from, asked).await?;
                        from += batch as u64;
                        asked += 1;
                    } else if ended >= asked {
                        break;
                    }
                    continue;
                }
                count += 1;
                if count >= last {
                    break;
                }
            }
        }
        How::Filtered => {
            if filters.is_empty() {
                bail!("give at least one --filter");
            }
            let configs: Vec<pull::Config> = if one_consumer {
                vec![pull::Config {
                    filter_subjects: filters.to_vec(),
                    ..consumer(name)
                }]
            } else {
                filters
                    .iter()
                    .enumerate()
                    .map(|(k, f)| pull::Config {
                        filter_subject: f.clone(),
                        ..consumer(format!("{name}-{k}"))
                    })
                    .collect()
            };
            let mut readers = tokio::task::JoinSet::new();
            for config in configs {
                let mut c = stream.create_consumer(config).await?;
                // Everything it will deliver: the stream is not written to.
                let expected = c.info().await?.num_pending;
                readers.spawn(async move {
                    let mut got = 0u64;
                    if expected == 0 {
                        return Ok::<u64, anyhow::Error>(0);
                    }
                    let mut chunks = pulled(c, batch).await?;
                    'chunks: while let Some(chunk) = chunks.next().await {
                        for m in chunk {
                            m?.info().map_err(|e| anyhow::anyhow!("{e}"))?;
                            got += 1;
                            if got >= expected {
                                break 'chunks;
                            }
                        }
                    }
                    Ok(got)
                });
            }
            while let Some(got) = readers.join_next().await {
                count += got??;
            }
        }
        How::Snapshot => {
            let inbox = client.new_inbox();
            let mut chunks = client.subscribe(inbox.clone()).await?;
            let request = serde_json::json!({
                "deliver_subject": inbox, "no_consumers": true, "chunk_size": 256 * 1024,
            });
            let started = client
                .request(
                    format!("$JS.API.STREAM.SNAPSHOT.{STREAM}"),
                    serde_json::to_vec(&request)?.into(),
                )
                .await?;
            let started: serde_json::Value = serde_json::from_slice(&started.payload)?;
            if started.get("error").is_some() {
                bail!("snapshot refused: {started}");
            }
            let mut bytes = 0usize;
            while let Some(chunk) = chunks.next().await {
                if chunk.status.is_some_and(|s| s.as_u16() >= 400) {
                    bail!("snapshot failed: {:?}", chunk.description);
                }
                if chunk.payload.is_empty() {
                    break;
                }
                bytes += chunk.payload.len();
                if let Some(ack) = chunk.reply {
                    client.publish(ack, Bytes::new()).await?;
                }
            }
            println!("snapshot: {bytes} bytes");
            count = last;
        }
    }
    Ok(count)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = async_nats::connect(args.url.as_str()).await?;
    let js = jetstream::new(client.clone());
    match args.command {
        Command::Fill {
            count,
            headers,
            extra,
            random,
            compression,
            mix,
        } => fill(&js, count, headers, extra, random, compression, mix).await,
        Command::Read {
            how,
            batch,
            filters,
            one_consumer,
        } => {
            let last = js
                .get_stream(STREAM)
                .await?
                .info()
                .await?
                .state
                .last_sequence;
            if last == 0 {
                bail!("the stream is empty: fill it first");
            }
            let server = args.server_pid.map(cpu_seconds).unwrap_or_default();
            let me = cpu_seconds(std::process::id());
            let started = Instant::now();
            let count = read(&client, how, batch, last, (&filters, one_consumer)).await?;
            let wall = started.elapsed().as_secs_f64();
            let server = args.server_pid.map(|pid| cpu_seconds(pid) - server);
            let client = cpu_seconds(std::process::id()) - me;
            // CPU µs per one of `n` messages, and their rate.
            let line = |n: u64| {
                let per = |cpu: f64| cpu * 1e6 / n as f64;
                format!(
                    "{:.0}/s; CPU µs per message: nats-server {}, client {:.2}",
                    n as f64 / wall,
                    server.map_or("(no --server-pid)".into(), |s| format!("{:.2}", per(s))),
                    per(client),
                )
            };
            if matches!(how, How::Filtered) {
                // Also per message of the stream: what a replay of it costs.
                println!("per message of the stream ({last}): {}", line(last));
            }
            println!("{count} messages in {wall:.2} s ({})", line(count));
            Ok(())
        }
    }
}
