//! `hubctl backup` and `hubctl restore`: what the hub cannot rebuild,
//! copied out of NATS and back in.
//!
//! The event stream and the person-keys bucket (its stream
//! `KV_hub_person_keys`) are the only state nothing else can recreate: the
//! projections rebuild from the stream, the services keep nothing. Three
//! replicas survive a lost server, not a mistaken delete or a lost site;
//! these commands make and use the copy for that.
//!
//! They speak JetStream's own snapshot API (`$JS.API.STREAM.SNAPSHOT.<stream>`
//! and `$JS.API.STREAM.RESTORE.<stream>`, the API behind the official
//! `nats stream backup`), so an operator needs only `hubctl` and the
//! `hub-operator` NATS user. For each stream a folder holds `backup.json`
//! (the stream's configuration and state when the snapshot was taken, as
//! the server gave them) and `stream.tar.s2` (the server's snapshot, opaque
//! here). `hubctl-backup.json`, written last, lists the streams with each
//! file's size and SHA-256: a backup without it is incomplete, and a
//! damaged copy is refused before anything is restored.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use hub_proto::events::Event;
use hub_runtime::{
    config::NatsArgs,
    keystore,
    ledger::{self, ErasureLedger},
};
use prost::Message;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The manifest's name, in the backup's folder.
const MANIFEST: &str = "hubctl-backup.json";
const CONFIG_FILE: &str = "backup.json";
const SNAPSHOT_FILE: &str = "stream.tar.s2";
/// The erasure ledger's copy, in the backup's folder.
const ERASURES_FILE: &str = "erasures.pb";
/// Bytes per snapshot message, each way (well under NATS's 1 MiB payload).
const CHUNK: usize = 128 * 1024;
/// Longest wait for the next chunk of a snapshot, or for a chunk's ack.
const CHUNK_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for the server to build the stream from a whole snapshot.
const FINISH_WAIT: Duration = Duration::from_secs(600);

#[derive(clap::Args, Debug)]
pub struct Backup {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// A new or empty folder for the backup (never overwritten).
    pub dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct Restore {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// A folder written by `hubctl backup`.
    pub dir: PathBuf,
    /// Keep this many copies of each stream instead of the number it had
    /// (e.g. 1 to restore a cluster's backup onto a single server).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: Option<u8>,
    /// Another (newer) backup folder whose erasure ledger to apply too,
    /// when the NATS restored into has lost its own; may be repeated.
    #[arg(long = "erasures-from")]
    pub erasures_from: Vec<PathBuf>,
}

/// The streams a backup holds: the hub's event stream and the key bucket's.
fn streams(nats: &NatsArgs) -> [String; 2] {
    [nats.stream.clone(), format!("KV_{}", keystore::BUCKET)]
}

async fn connect(nats: &NatsArgs) -> Result<Client> {
    hub_runtime::eventlog::connect(nats, "hubctl")
        .await
        .map_err(|e| anyhow!("{e}"))
}

/// JetStream's error code for "stream not found".
const STREAM_NOT_FOUND: u64 = 10059;

/// A JetStream API answer, which may be the server's refusal
/// (`{"error": {...}}`).
fn answer(payload: &[u8], stream: &str) -> Result<Value> {
    serde_json::from_slice(payload)
        .with_context(|| format!("{stream}: NATS answered something that is not JSON"))
}

/// The server's refusal in `answer`, if it is one, as an error naming the
/// stream and what was being done.
fn refusal(answer: &Value, stream: &str, doing: &str) -> Result<()> {
    match answer.get("error") {
        None => Ok(()),
        Some(error) => bail!(
            "{stream}: {doing} refused by NATS: {} (code {}, error code {})",
            error["description"].as_str().unwrap_or("no description"),
            error["code"],
            error["err_code"]
        ),
    }
}

/// A JetStream API request and its answer, refusals included.
async fn request(client: &Client, subject: &str, body: &Value, stream: &str) -> Result<Value> {
    let reply = client
        .request(subject.to_string(), Bytes::from(body.to_string()))
        .await
        .with_context(|| {
            format!("no answer from NATS for {stream} (is NATS running? set HUB_NATS_URL and the HUB_NATS_* credentials of hub-operator)")
        })?;
    answer(&reply.payload, stream)
}

/// A JetStream API call that must succeed.
async fn api(
    client: &Client,
    subject: &str,
    body: &Value,
    stream: &str,
    doing: &str,
) -> Result<Value> {
    let value = request(client, subject, body, stream).await?;
    refusal(&value, stream, doing)?;
    Ok(value)
}

/// Whether `stream` exists on the server.
async fn exists(client: &Client, stream: &str) -> Result<bool> {
    let info = request(
        client,
        &format!("$JS.API.STREAM.INFO.{stream}"),
        &json!({}),
        stream,
    )
    .await?;
    if info["error"]["err_code"].as_u64() == Some(STREAM_NOT_FOUND) {
        return Ok(false);
    }
    refusal(&info, stream, "reading the stream")?;
    Ok(true)
}

/// A short account of a stream's state (`messages`, sequences).
fn describe(state: &Value) -> String {
    format!(
        "{} messages (sequences {}–{})",
        state["messages"], state["first_seq"], state["last_seq"]
    )
}

/// `hubctl backup DIR`.
pub async fn backup(b: Backup, json: bool) -> Result<()> {
    if b.dir.exists()
        && std::fs::read_dir(&b.dir)
            .with_context(|| format!("cannot read {}", b.dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: a backup never overwrites another; give a new folder",
            b.dir.display()
        );
    }
    let created = !b.dir.exists();
    let made = write_backup(&b, json).await;
    if made.is_err() {
        // Nothing half-written stays behind to be taken for a backup.
        for stream in streams(&b.nats) {
            let _ = std::fs::remove_dir_all(b.dir.join(stream));
        }
        let _ = std::fs::remove_file(b.dir.join(ERASURES_FILE));
        if created {
            let _ = std::fs::remove_dir(&b.dir);
        }
    }
    made
}

async fn write_backup(b: &Backup, json: bool) -> Result<()> {
    let client = connect(&b.nats).await?;
    let mut listed = Vec::new();
    for stream in streams(&b.nats) {
        let folder = b.dir.join(&stream);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let taken = snapshot(&client, &stream, &folder).await?;
        if !json {
            println!(
                "{stream}: {}, {} bytes -> {}",
                describe(&taken["state"]),
                taken["snapshot_bytes"],
                folder.display()
            );
        }
        listed.push(taken);
    }
    let erasures = copy_ledger(&client, &b.dir).await?;
    if !json {
        println!(
            "erasure ledger: {} erasures -> {}",
            erasures["count"],
            b.dir.join(ERASURES_FILE).display()
        );
    }
    let manifest = json!({
        "format": 1,
        "created": jiff::Timestamp::now().to_string(),
        "streams": listed,
        "erasures": erasures,
    });
    write_synced(
        &b.dir.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    if json {
        println!("{manifest}");
    } else {
        println!("backup complete: {}", b.dir.display());
    }
    Ok(())
}

/// Writes one stream's snapshot into `folder`; its manifest entry.
async fn snapshot(client: &Client, stream: &str, folder: &Path) -> Result<Value> {
    let inbox = client.new_inbox();
    let mut chunks = client.subscribe(inbox.clone()).await?;
    let started = api(
        client,
        &format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        // Consumers are not kept: the projections recreate theirs from
        // their own stores' positions.
        &json!({ "deliver_subject": inbox, "no_consumers": true, "chunk_size": CHUNK }),
        stream,
        "the snapshot",
    )
    .await?;
    let described = json!({ "config": started["config"], "state": started["state"] });
    write_synced(
        &folder.join(CONFIG_FILE),
        serde_json::to_string_pretty(&described)?.as_bytes(),
    )?;
    let path = folder.join(SNAPSHOT_FILE);
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    loop {
        let chunk = tokio::time::timeout(CHUNK_WAIT, chunks.next())
            .await
            .map_err(|_| {
                anyhow!(
                    "{stream}: the snapshot stopped arriving (no chunk in {}s)",
                    CHUNK_WAIT.as_secs()
                )
            })?
            .ok_or_else(|| anyhow!("{stream}: the connection closed during the snapshot"))?;
        if let Some(status) = chunk.status.filter(|s| s.as_u16() >= 400) {
            bail!(
                "{stream}: the snapshot failed on the server: {status} {}",
                chunk.description.unwrap_or_default()
            );
        }
        if chunk.payload.is_empty() {
            break; // the server's end-of-snapshot
        }
        file.write_all(&chunk.payload)
            .with_context(|| format!("cannot write {}", path.display()))?;
        hash.update(&chunk.payload);
        bytes += chunk.payload.len() as u64;
        if let Some(ack) = chunk.reply {
            client.publish(ack, Bytes::new()).await?;
        }
    }
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(json!({
        "name": stream,
        "state": started["state"],
        "snapshot_bytes": bytes,
        "sha256": hex::encode(hash.finalize()),
    }))
}

fn write_synced(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A stream of the backup, checked against the manifest.
struct Checked {
    name: String,
    config: Value,
    state: Value,
    snapshot: PathBuf,
}

/// Reads the manifest and checks every file it lists (size and SHA-256)
/// before anything reaches NATS: the streams, and the erasures it holds.
fn check(dir: &Path) -> Result<(Vec<Checked>, Vec<Event>)> {
    let manifest_path = dir.join(MANIFEST);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).with_context(|| {
            format!(
                "cannot read {} (not a backup folder, or an incomplete backup)",
                manifest_path.display()
            )
        })?)
        .with_context(|| format!("{} is not JSON", manifest_path.display()))?;
    if manifest["format"] != 1 {
        bail!(
            "{}: format {} is not one this hubctl reads",
            manifest_path.display(),
            manifest["format"]
        );
    }
    let mut checked = Vec::new();
    for entry in manifest["streams"].as_array().into_iter().flatten() {
        let name = entry["name"]
            .as_str()
            .filter(|n| !n.is_empty() && !n.contains(['/', '.', '\\']))
            .ok_or_else(|| {
                anyhow!(
                    "{}: a stream without a usable name",
                    manifest_path.display()
                )
            })?;
        let folder = dir.join(name);
        let snapshot = folder.join(SNAPSHOT_FILE);
        let (bytes, sha256) = file_digest(&snapshot)?;
        if Some(bytes) != entry["snapshot_bytes"].as_u64()
            || Some(sha256.as_str()) != entry["sha256"].as_str()
        {
            bail!(
                "{} is damaged or incomplete: {bytes} bytes, SHA-256 {sha256}; the backup recorded {} bytes, {}. Nothing was restored.",
                snapshot.display(),
                entry["snapshot_bytes"],
                entry["sha256"]
            );
        }
        let described: Value = serde_json::from_slice(
            &std::fs::read(folder.join(CONFIG_FILE))
                .with_context(|| format!("cannot read {}", folder.join(CONFIG_FILE).display()))?,
        )
        .with_context(|| format!("{} is not JSON", folder.join(CONFIG_FILE).display()))?;
        checked.push(Checked {
            name: name.to_string(),
            config: described["config"].clone(),
            state: described["state"].clone(),
            snapshot,
        });
    }
    if checked.is_empty() {
        bail!("{} lists no stream", manifest_path.display());
    }
    // Backups from before the ledger have none.
    let erasures = match manifest.get("erasures") {
        None => Vec::new(),
        Some(entry) => {
            let path = dir.join(ERASURES_FILE);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            if Some(sha256.as_str()) != entry["sha256"].as_str() {
                bail!(
                    "{} is damaged: SHA-256 {sha256}; the backup recorded {}. Nothing was restored.",
                    path.display(),
                    entry["sha256"]
                );
            }
            decode_erasures(&bytes)
                .with_context(|| format!("{} does not decode", path.display()))?
        }
    };
    Ok((checked, erasures))
}

/// The events of an `erasures.pb`.
fn decode_erasures(mut bytes: &[u8]) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(Event::decode_length_delimited(&mut bytes)?);
    }
    Ok(out)
}

/// Writes the erasure ledger to `dir`; its manifest entry.
async fn copy_ledger(client: &Client, dir: &Path) -> Result<Value> {
    let erasures = match ledger(client, None).await? {
        Some(l) => l.all().await.map_err(|e| anyhow!("{e}"))?,
        None => Vec::new(),
    };
    let mut bytes = Vec::new();
    for e in &erasures {
        e.encode_length_delimited(&mut bytes)?;
    }
    write_synced(&dir.join(ERASURES_FILE), &bytes)?;
    Ok(json!({
        "count": erasures.len(),
        "sha256": hex::encode(Sha256::digest(&bytes)),
    }))
}

/// The erasure ledger of the NATS `client` reaches: `None` when it has
/// none, unless `create` gives the replicas to create it with.
async fn ledger(client: &Client, create: Option<usize>) -> Result<Option<ErasureLedger>> {
    let js = async_nats::jetstream::new(client.clone());
    if let Ok(kv) = js.get_key_value(ledger::BUCKET).await {
        return Ok(Some(ErasureLedger::from_store(kv)));
    }
    let Some(replicas) = create else {
        return Ok(None);
    };
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: ledger::BUCKET.into(),
            description: "Every erasure (PersonErased events): re-applied after a restore".into(),
            history: 1,
            storage: async_nats::jetstream::stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("cannot create the erasure ledger: {e}"))?;
    Ok(Some(ErasureLedger::from_store(kv)))
}

fn file_digest(path: &Path) -> Result<(u64, String)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0; CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok((bytes, hex::encode(hash.finalize())));
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
}

/// What to do next. The restart is not optional: a restored stream does not
/// know which message ids it holds until its server starts again (seen
/// with nats-server 2.15.1), so a retried command would be recorded twice.
const AFTER_RESTORE: &str = "restore complete. Next, in this order:
  1. restart each NATS server (one at a time in a cluster): until then the
     restored stream does not recognise retried commands, and a retry
     would be recorded twice;
  2. start the projections (empty stores rebuild from the stream) and
     wait for `hubctl projection status` to show lag 0;
  3. start the agency services.
With the same hub secret as before, or no name can be read. Every erasure
in the erasure ledger was applied again (above): erased names stay erased.";

/// `hubctl restore DIR`: into a NATS that has none of the backup's streams.
pub async fn restore(r: Restore, json: bool) -> Result<()> {
    let (checked, mut erasures) = check(&r.dir)?;
    for other in &r.erasures_from {
        erasures.extend(check(other)?.1);
    }
    let client = connect(&r.nats).await?;
    for stream in &checked {
        if exists(&client, &stream.name).await? {
            bail!(
                "stream {} already exists on this NATS: restore needs one without it (stop the agency services, which create the stream at start, and restore before starting them). Nothing was restored.",
                stream.name
            );
        }
    }
    let replicas = r.replicas.map(usize::from).unwrap_or_else(|| {
        checked
            .first()
            .and_then(|c| c.config["num_replicas"].as_u64())
            .unwrap_or(1) as usize
    });
    let mut restored = Vec::new();
    for stream in checked {
        let state = restore_stream(&client, &stream, r.replicas).await?;
        if !json {
            println!("{}: restored, {}", stream.name, describe(&state));
        }
        restored.push(json!({ "name": stream.name, "state": state }));
    }
    let reapplied = reapply_erasures(&client, &r.nats.stream, erasures, replicas).await?;
    if !json {
        println!(
            "erasure ledger: {} erasures ({} added to the ledger); {} data keys destroyed again; {} erasure events put back into the stream",
            reapplied["erasures"], reapplied["added_to_ledger"], reapplied["keys_destroyed"], reapplied["events_put_back"]
        );
    }
    if json {
        println!("{}", json!({ "restored": restored, "erasures": reapplied }));
        eprintln!("{AFTER_RESTORE}");
    } else {
        println!("{AFTER_RESTORE}");
    }
    Ok(())
}

/// Makes every erasure hold on the restored copy: the ledger the NATS has
/// (kept) and `from_backups` are merged into it; each erasure's data keys
/// are destroyed in the restored key bucket, and its event is put back into
/// the restored stream when missing. What was done, as JSON.
async fn reapply_erasures(
    client: &Client,
    stream_name: &str,
    from_backups: Vec<Event>,
    replicas: usize,
) -> Result<Value> {
    let ledger = ledger(client, Some(replicas))
        .await?
        .expect("created when missing");
    let mut all: std::collections::BTreeMap<String, Event> = ledger
        .all()
        .await
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .map(|e| (e.event_id.clone(), e))
        .collect();
    let mut added = 0;
    for e in from_backups {
        if !all.contains_key(&e.event_id) {
            ledger.record(&e).await.map_err(|e| anyhow!("{e}"))?;
            all.insert(e.event_id.clone(), e);
            added += 1;
        }
    }
    let js = async_nats::jetstream::new(client.clone());
    let keys = js
        .get_key_value(keystore::BUCKET)
        .await
        .map_err(|e| anyhow!("the restored key bucket cannot be opened: {e}"))?;
    let mut destroyed = 0;
    for e in all.values() {
        for k in std::iter::once(&e.person_key).chain(&e.linked_person_keys) {
            let name = format!("dk.{k}");
            let live = keys
                .entry(&name)
                .await
                .map_err(|e| anyhow!("reading the restored key bucket: {e}"))?
                .is_some_and(|en| {
                    en.operation == async_nats::jetstream::kv::Operation::Put
                        && !en.value.is_empty()
                });
            if live {
                keys.purge(&name)
                    .await
                    .map_err(|e| anyhow!("destroying a data key again: {e}"))?;
                destroyed += 1;
            }
        }
    }
    // The erasure events the restored stream holds.
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| anyhow!("{stream_name}: {e}"))?;
    let mut present = std::collections::BTreeSet::new();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "hub.admin.person_erased".into(),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("{stream_name}: {e}"))?;
    if consumer.cached_info().num_pending > 0 {
        let mut messages = consumer.messages().await?;
        while let Some(m) = tokio::time::timeout(CHUNK_WAIT, messages.next())
            .await
            .map_err(|_| anyhow!("{stream_name}: reading its erasures stopped"))?
        {
            let m = m.map_err(|e| anyhow!("{stream_name}: {e}"))?;
            if let Ok(e) = Event::decode(m.payload.clone()) {
                present.insert(e.event_id);
            }
            if m.info().map_err(|e| anyhow!("{e}"))?.pending == 0 {
                break;
            }
        }
    }
    let mut put_back = 0;
    for e in all.values().filter(|e| !present.contains(&e.event_id)) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, e.event_id.as_str());
        js.publish_with_headers("hub.admin.person_erased", headers, e.encode_to_vec().into())
            .await
            .map_err(|e| anyhow!("{stream_name}: {e}"))?
            .await
            .map_err(|e| anyhow!("{stream_name}: {e}"))?;
        put_back += 1;
    }
    Ok(json!({
        "erasures": all.len(),
        "added_to_ledger": added,
        "keys_destroyed": destroyed,
        "events_put_back": put_back,
    }))
}

/// Sends one stream's snapshot; the restored stream's state, checked
/// against the state the backup recorded.
async fn restore_stream(client: &Client, stream: &Checked, replicas: Option<u8>) -> Result<Value> {
    let name = &stream.name;
    let mut config = stream.config.clone();
    if let Some(n) = replicas {
        config["num_replicas"] = json!(n);
    }
    let started = api(
        client,
        &format!("$JS.API.STREAM.RESTORE.{name}"),
        &json!({ "config": config, "state": stream.state }),
        name,
        "the restore",
    )
    .await?;
    let deliver = started["deliver_subject"]
        .as_str()
        .ok_or_else(|| anyhow!("{name}: NATS gave no subject to restore to"))?
        .to_string();
    let mut file = std::fs::File::open(&stream.snapshot)
        .with_context(|| format!("cannot read {}", stream.snapshot.display()))?;
    let mut buf = vec![0; CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", stream.snapshot.display()))?;
        if n == 0 {
            break;
        }
        let ack = client
            .send_request(
                deliver.clone(),
                async_nats::Request::new()
                    .payload(Bytes::copy_from_slice(&buf[..n]))
                    .timeout(Some(CHUNK_WAIT)),
            )
            .await
            .with_context(|| format!("{name}: NATS did not take a chunk of the snapshot"))?;
        if !ack.payload.is_empty() {
            bail!(
                "{name}: NATS refused the snapshot: {}",
                String::from_utf8_lossy(&ack.payload)
            );
        }
    }
    // An empty message ends the snapshot; the answer is the new stream.
    let done = client
        .send_request(
            deliver,
            async_nats::Request::new()
                .payload(Bytes::new())
                .timeout(Some(FINISH_WAIT)),
        )
        .await
        .with_context(|| format!("{name}: no answer after the whole snapshot was sent"))?;
    let info = answer(&done.payload, name)?;
    refusal(&info, name, "the restore")?;
    let state = info["state"].clone();
    for field in ["messages", "first_seq", "last_seq"] {
        if state[field] != stream.state[field] {
            bail!(
                "{name}: restored {}, but the backup recorded {}",
                describe(&state),
                describe(&stream.state)
            );
        }
    }
    Ok(state)
}
