//! Per-person data keys, kept outside the event stream in the JetStream KV
//! bucket `hub_person_keys` (file storage, one revision per key), wrapped by
//! a versioned key-encryption key (see `hub_core::sealing` for the design).
//!
//! A key is created the first time a person's personal data is sealed;
//! concurrent creators race on the KV's create-if-absent, and the loser
//! uses the winner's key. Erasure purges the entry: every ciphertext sealed
//! under it is then unreadable for good.
//!
//! # Key-encryption key versions
//! The bucket also holds the KEK versions above 0 (`kek.<n>`: the version's
//! random key, wrapped under a key derived from the hub secret), what is
//! known of each (`kekinfo.<n>`: created and retired times), and which one
//! new data keys are wrapped under (`kek.current`; none means version 0,
//! derived from the secret). [`KeyStore::rotate`] introduces a version and
//! re-wraps every data key under it, each by compare-and-set on its
//! revision, so an erasure racing with the rotation is never undone; every
//! process opens a version it has not seen yet from the bucket. Keeping the
//! versions in the same bucket means a backup of it holds what opens it.
//! [`KeyStore::retire`] destroys a version once no data key needs it.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use crate::eventlog::EventLog;

use hub_core::{
    sealing::{self, DataKey, KeyWrapper, Keyring},
    secret::HubSecret,
    Error,
};

pub const BUCKET: &str = "hub_person_keys";
/// The bucket's description, as created.
pub const DESCRIPTION: &str = "Per-person data keys, wrapped; purge one to erase the person";
const CURRENT: &str = "kek.current";
/// Where agency services ask the key service for a data key that does not
/// exist yet (outside `hub.>`, so the event stream never stores it).
pub const CREATE_SUBJECT: &str = "hub_keys.create";
/// The key service's queue group: one of its replicas answers each request.
pub const SERVICE_GROUP: &str = "key-service";
/// Set on the key service's reply when it could not create the key.
const ERROR_HEADER: &str = "Hub-Key-Error";
/// Longest an agency service waits for the key service.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How a process gets a data key that does not exist yet.
#[derive(Clone)]
enum Creation {
    /// It writes the bucket itself: the key service, and the pick-up
    /// projection (erasure, key rotation, break-the-glass).
    Here,
    /// It asks the key service over NATS: the agency services, whose NATS
    /// users may read the bucket but not write it (deploy/nats/hub.conf),
    /// so a compromised one cannot overwrite or purge anyone's key.
    Asked(async_nats::Client),
}

#[derive(Clone)]
pub struct KeyStore {
    kv: kv::Store,
    creation: Creation,
    ring: Keyring,
    /// Version 0 (derived from the secret).
    legacy: KeyWrapper,
    /// Versions above 0 opened so far.
    opened: Arc<RwLock<HashMap<u32, KeyWrapper>>>,
    /// Whether version 0 is retired (read at open: it can be retired only
    /// once no data key needs it, so none appears later but by a restore,
    /// after which every process restarts).
    legacy_retired: Arc<std::sync::atomic::AtomicBool>,
    /// The current version as last read, and when (it is read again after
    /// [`CURRENT_TTL`]: a data key created under the previous version
    /// meanwhile is re-wrapped by `rotate --resume`, and retiring waits
    /// for it).
    current: Arc<RwLock<Option<(u32, std::time::Instant)>>>,
}

/// How long a process trusts the current version it read.
const CURRENT_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// How long after a version stopped being current it may be retired: a
/// process may still have wrapped a new data key under it until its
/// reading of the current version expired.
pub const RETIRE_GRACE_SECONDS: i64 = 5;

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyStore")
    }
}

fn entry(key_id: &str) -> String {
    format!("dk.{key_id}")
}

fn unavailable(e: impl Into<hub_core::error::Cause>) -> Error {
    Error::unavailable_from("the key store did not answer", e)
}

/// A KEK version as [`KeyStore::versions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u32,
    pub current: bool,
    /// Seconds since 1970; 0 for version 0 (it has always existed).
    pub created_at: i64,
    /// Seconds since 1970 when retired, else 0.
    pub retired_at: i64,
    /// Data keys wrapped under it when counted.
    pub data_keys: u64,
}

/// How far a rotation has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    pub version: u32,
    pub rewrapped: u64,
    pub total: u64,
    /// Erased while the rotation ran: left erased.
    pub skipped: u64,
}

fn info_value(created_at: i64, retired_at: i64) -> bytes::Bytes {
    format!("{created_at} {retired_at}").into()
}

fn parse_info(value: &[u8]) -> (i64, i64) {
    let text = String::from_utf8_lossy(value);
    let mut parts = text.split(' ').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

impl KeyStore {
    /// Opens the bucket, creating it when missing, with as many replicas
    /// as the event stream (`HUB_STREAM_REPLICAS`): a key lost with a
    /// server would make that person's names unreadable.
    pub async fn open(log: &EventLog, secret: &HubSecret) -> Result<Self, Error> {
        Self::open_as(log, secret, Creation::Here).await
    }

    /// Opens the bucket to read, asking the key service ([`answer`]) for
    /// each data key that does not exist yet: how agency services open it.
    pub async fn open_reading(log: &EventLog, secret: &HubSecret) -> Result<Self, Error> {
        Self::open_as(log, secret, Creation::Asked(log.client().clone())).await
    }

    async fn open_as(
        log: &EventLog,
        secret: &HubSecret,
        creation: Creation,
    ) -> Result<Self, Error> {
        let kv = open_bucket(log, BUCKET, DESCRIPTION).await?;
        let store = Self {
            kv,
            creation,
            ring: Keyring::new(secret),
            legacy: KeyWrapper::new(secret),
            opened: Default::default(),
            legacy_retired: Default::default(),
            current: Default::default(),
        };
        let retired = store.info(0).await?.1 != 0;
        store
            .legacy_retired
            .store(retired, std::sync::atomic::Ordering::Release);
        Ok(store)
    }

    /// A live value of the bucket (`None` when absent, deleted or purged),
    /// with its revision.
    async fn live(&self, key: &str) -> Result<Option<(bytes::Bytes, u64)>, Error> {
        Ok(self
            .kv
            .entry(key)
            .await
            .map_err(unavailable)?
            .filter(|e| e.operation == kv::Operation::Put && !e.value.is_empty())
            .map(|e| (e.value, e.revision)))
    }

    /// When version `v` was created and retired (0 when not).
    async fn info(&self, v: u32) -> Result<(i64, i64), Error> {
        Ok(self
            .live(&format!("kekinfo.{v}"))
            .await?
            .map(|(value, _)| parse_info(&value))
            .unwrap_or((0, 0)))
    }

    /// The wrapper of version `v`, opened from the bucket the first time.
    async fn wrapper(&self, v: u32) -> Result<KeyWrapper, Error> {
        if v == 0 {
            return Ok(self.legacy.clone());
        }
        if let Some(w) = self.opened.read().expect("keys lock").get(&v) {
            return Ok(w.clone());
        }
        let Some((stored, _)) = self.live(&format!("kek.{v}")).await? else {
            return Err(Error::internal(format!(
                "key-encryption key version {v} was retired or never existed"
            )));
        };
        let w = self.ring.open(v, &stored)?;
        self.opened.write().expect("keys lock").insert(v, w.clone());
        Ok(w)
    }

    /// The version new data keys are wrapped under, as stored.
    pub async fn current(&self) -> Result<u32, Error> {
        let v = match self.live(CURRENT).await? {
            Some((v, _)) => String::from_utf8_lossy(&v)
                .parse()
                .map_err(|_| Error::internal("kek.current is not a version"))?,
            None => 0,
        };
        *self.current.write().expect("keys lock") = Some((v, std::time::Instant::now()));
        Ok(v)
    }

    /// [`Self::current`], as read within the last few seconds.
    async fn current_cached(&self) -> Result<u32, Error> {
        if let Some((v, at)) = *self.current.read().expect("keys lock") {
            if at.elapsed() < CURRENT_TTL {
                return Ok(v);
            }
        }
        self.current().await
    }

    /// Unwraps a stored data key under the version it names; version 0 is
    /// refused once retired.
    async fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, Error> {
        let v = sealing::wrapped_version(wrapped)?;
        if v == 0
            && self
                .legacy_retired
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Error::internal("data key wrapped under retired version 0"));
        }
        self.wrapper(v).await?.unwrap(key_id, wrapped)
    }

    /// The data key of `key_id`, if it exists (and was not erased).
    pub async fn get(&self, key_id: &str) -> Result<Option<DataKey>, Error> {
        match self.kv.get(entry(key_id)).await.map_err(unavailable)? {
            Some(wrapped) if !wrapped.is_empty() => Ok(Some(self.unwrap(key_id, &wrapped).await?)),
            _ => Ok(None),
        }
    }

    /// The data key of `key_id`, created when missing (here, or by the key
    /// service).
    pub async fn get_or_create(&self, key_id: &str) -> Result<DataKey, Error> {
        if let Some(k) = self.get(key_id).await? {
            return Ok(k);
        }
        let wrapped = match &self.creation {
            Creation::Here => self.create_wrapped(key_id).await?,
            Creation::Asked(client) => ask(client, key_id).await?,
        };
        self.unwrap(key_id, &wrapped).await
    }

    /// The stored, wrapped data key of `key_id`, created when missing:
    /// concurrent creators race on the bucket's create-if-absent and the
    /// loser answers the winner's key.
    pub async fn create_wrapped(&self, key_id: &str) -> Result<bytes::Bytes, Error> {
        check_key_id(key_id)?;
        let stored = |w: Option<bytes::Bytes>| w.filter(|w| !w.is_empty());
        if let Some(w) = stored(self.kv.get(entry(key_id)).await.map_err(unavailable)?) {
            return Ok(w);
        }
        let wrapper = self.wrapper(self.current_cached().await?).await?;
        let wrapped: bytes::Bytes = wrapper.wrap(key_id, &DataKey::generate()).into();
        match self.kv.create(entry(key_id), wrapped.clone()).await {
            Ok(_) => Ok(wrapped),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                stored(self.kv.get(entry(key_id)).await.map_err(unavailable)?)
                    .ok_or_else(|| Error::internal("data key vanished while being created"))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Destroys the data key of `key_id` (erasure).
    pub async fn destroy(&self, key_id: &str) -> Result<(), Error> {
        self.kv.purge(entry(key_id)).await.map_err(unavailable)
    }

    /// Whether `key_id` still has a data key.
    pub async fn exists(&self, key_id: &str) -> Result<bool, Error> {
        Ok(self.live(&entry(key_id)).await?.is_some())
    }

    /// The key ids of every data key held.
    pub async fn key_ids(&self) -> Result<Vec<String>, Error> {
        let mut keys = self.kv.keys().await.map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(unavailable)?;
            if let Some(id) = k.strip_prefix("dk.") {
                out.push(id.to_string());
            }
        }
        Ok(out)
    }

    /// How many data keys each version wraps now.
    async fn census(&self) -> Result<HashMap<u32, u64>, Error> {
        let mut counts = HashMap::new();
        for id in self.key_ids().await? {
            if let Some((wrapped, _)) = self.live(&entry(&id)).await? {
                *counts
                    .entry(sealing::wrapped_version(&wrapped)?)
                    .or_default() += 1;
            }
        }
        Ok(counts)
    }

    /// Every version, oldest first, with the data keys it wraps.
    pub async fn versions(&self) -> Result<Vec<VersionInfo>, Error> {
        let current = self.current().await?;
        let counts = self.census().await?;
        let mut highest = current;
        let mut keys = self.kv.keys().await.map_err(unavailable)?;
        while let Some(k) = keys.next().await {
            let k = k.map_err(unavailable)?;
            if let Some(v) = k.strip_prefix("kekinfo.").and_then(|v| v.parse().ok()) {
                highest = highest.max(v);
            }
        }
        let mut out = Vec::new();
        for v in 0..=highest {
            let (created_at, retired_at) = self.info(v).await?;
            if v > 0 && created_at == 0 {
                continue; // a number never used
            }
            out.push(VersionInfo {
                version: v,
                current: v == current,
                created_at,
                retired_at,
                data_keys: counts.get(&v).copied().unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Introduces a new version and makes it current; its number.
    pub async fn introduce(&self) -> Result<u32, Error> {
        let highest = self
            .versions()
            .await?
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(0);
        let v = highest + 1;
        let (wrapper, stored) = self.ring.generate(v);
        self.kv
            .create(format!("kek.{v}"), stored.into())
            .await
            .map_err(|e| {
                Error::AlreadyExists(format!(
                    "version {v} is being introduced by another rotation: {e}"
                ))
            })?;
        let now = jiff::Timestamp::now().as_second();
        self.kv
            .put(format!("kekinfo.{v}"), info_value(now, 0))
            .await
            .map_err(unavailable)?;
        self.opened.write().expect("keys lock").insert(v, wrapper);
        self.kv
            .put(CURRENT, v.to_string().into())
            .await
            .map_err(unavailable)?;
        *self.current.write().expect("keys lock") = Some((v, std::time::Instant::now()));
        Ok(v)
    }

    /// Re-wraps every data key not under the current version, reporting
    /// after each hundred (and at the end).
    pub async fn rewrap(&self, mut report: impl FnMut(Rotation)) -> Result<Rotation, Error> {
        let version = self.current().await?;
        let target = self.wrapper(version).await?;
        let ids = self.key_ids().await?;
        let mut progress = Rotation {
            version,
            total: ids.len() as u64,
            ..Default::default()
        };
        report(progress);
        for id in ids {
            loop {
                let Some((wrapped, revision)) = self.live(&entry(&id)).await? else {
                    progress.skipped += 1;
                    break;
                };
                if sealing::wrapped_version(&wrapped)? == version {
                    progress.rewrapped += 1;
                    break;
                }
                let key = self.unwrap(&id, &wrapped).await?;
                match self
                    .kv
                    .update(entry(&id), target.wrap(&id, &key).into(), revision)
                    .await
                {
                    Ok(_) => {
                        progress.rewrapped += 1;
                        break;
                    }
                    // Changed meanwhile (erased, most likely): look again.
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => return Err(unavailable(e)),
                }
            }
            if (progress.rewrapped + progress.skipped).is_multiple_of(100) {
                report(progress);
            }
        }
        report(progress);
        Ok(progress)
    }

    /// Retires version `v`: refused while it is current, within
    /// [`RETIRE_GRACE_SECONDS`] of stopping being current, or while any data
    /// key is still wrapped under it. Its key is destroyed (version 0, derived
    /// from the secret, is marked retired and refused from then on).
    pub async fn retire(&self, v: u32) -> Result<(), Error> {
        let versions = self.versions().await?;
        let Some(info) = versions.iter().find(|i| i.version == v) else {
            return Err(Error::invalid(
                "version",
                format!("there is no version {v}"),
            ));
        };
        if info.retired_at != 0 {
            return Ok(());
        }
        if info.current {
            return Err(Error::invalid(
                "version",
                format!(
                    "version {v} is current: rotate to a new version first (hubctl keys rotate)"
                ),
            ));
        }
        let now = jiff::Timestamp::now().as_second();
        let superseded = versions
            .iter()
            .find(|i| i.version > v)
            .map_or(now, |next| next.created_at);
        if now - superseded < RETIRE_GRACE_SECONDS {
            return Err(Error::invalid(
                "version",
                format!(
                    "version {v} stopped being current {}s ago; services may wrap new data keys under it for {RETIRE_GRACE_SECONDS}s after: run `hubctl keys rotate --resume`, then retire it",
                    now - superseded
                ),
            ));
        }
        if info.data_keys > 0 {
            return Err(Error::invalid(
                "version",
                format!(
                    "{} data keys are still wrapped under version {v}: run `hubctl keys rotate --resume` first",
                    info.data_keys
                ),
            ));
        }
        self.kv
            .put(format!("kekinfo.{v}"), info_value(info.created_at, now))
            .await
            .map_err(unavailable)?;
        if v == 0 {
            self.legacy_retired
                .store(true, std::sync::atomic::Ordering::Release);
        } else {
            self.kv
                .purge(format!("kek.{v}"))
                .await
                .map_err(unavailable)?;
            self.opened.write().expect("keys lock").remove(&v);
        }
        Ok(())
    }
}

/// A data key's id is a person key: lowercase hex (see
/// `hub_core::pseudonym`). Anything else asked of the key service is
/// refused, so its entries stay where erasure and rotation look.
fn check_key_id(key_id: &str) -> Result<(), Error> {
    let hex = key_id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if (16..=64).contains(&key_id.len()) && hex {
        Ok(())
    } else {
        Err(Error::invalid(
            "key_id",
            "must be a person key (16-64 lowercase hex digits)",
        ))
    }
}

/// Asks the key service for `key_id`'s wrapped data key.
async fn ask(client: &async_nats::Client, key_id: &str) -> Result<bytes::Bytes, Error> {
    use async_nats::RequestErrorKind;
    let reply = tokio::time::timeout(
        ASK_TIMEOUT,
        client.request(CREATE_SUBJECT, key_id.to_string().into()),
    )
    .await
    .map_err(|_| Error::unavailable("the key service did not answer within 5s"))?
    .map_err(|e| match e.kind() {
        RequestErrorKind::NoResponders => {
            Error::unavailable("no key service is running to create a data key (start key-service)")
        }
        _ => Error::unavailable_from("asking the key service", e),
    })?;
    if let Some(problem) = reply.headers.as_ref().and_then(|h| h.get(ERROR_HEADER)) {
        return Err(Error::unavailable(format!(
            "the key service could not create the data key: {problem}"
        )));
    }
    Ok(reply.payload)
}

/// The key service: answers [`CREATE_SUBJECT`] requests with the wrapped
/// data key, created when missing, until `shutdown`. Requests in flight
/// when it comes are answered first.
pub async fn answer(
    keys: KeyStore,
    client: async_nats::Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let mut requests = client
        .queue_subscribe(CREATE_SUBJECT, SERVICE_GROUP.into())
        .await
        .map_err(unavailable)?;
    let mut in_flight = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            request = requests.next() => {
                let Some(request) = request else { break };
                let Some(reply) = request.reply.clone() else { continue };
                let (keys, client) = (keys.clone(), client.clone());
                in_flight.spawn(async move {
                    let key_id = String::from_utf8_lossy(&request.payload).into_owned();
                    let published = match keys.create_wrapped(&key_id).await {
                        Ok(wrapped) => {
                            metrics::counter!("hub_key_requests_total", "outcome" => "ok").increment(1);
                            client.publish(reply, wrapped).await
                        }
                        Err(e) => {
                            metrics::counter!("hub_key_requests_total", "outcome" => "error").increment(1);
                            tracing::warn!(error = %e, "data key not created");
                            let mut headers = async_nats::HeaderMap::new();
                            headers.insert(ERROR_HEADER, e.to_string().as_str());
                            client.publish_with_headers(reply, headers, bytes::Bytes::new()).await
                        }
                    };
                    if let Err(e) = published {
                        tracing::warn!(error = %e, "could not answer a data key request");
                    }
                });
            }
        }
    }
    let _ = requests.unsubscribe().await;
    while in_flight.join_next().await.is_some() {}
    let _ = client.flush().await;
    Ok(())
}

/// Opens a KV bucket of the hub, creating it when missing with as many
/// replicas as the event stream, and raising them when fewer.
pub async fn open_bucket(
    log: &EventLog,
    bucket: &str,
    description: &str,
) -> Result<kv::Store, Error> {
    let js = log.jetstream();
    let replicas = log.settings().replicas;
    // Missing is JetStream's "stream not found" for the bucket's stream;
    // any other failure (the network, a timeout, no permission) is not a
    // reason to create it, and is reported as it is.
    match js.get_stream(format!("KV_{bucket}")).await {
        Ok(_) => {
            raise_replicas(js, bucket, replicas).await;
            js.get_key_value(bucket).await.map_err(unavailable)
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            js.create_key_value(kv::Config {
                bucket: bucket.into(),
                description: description.into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(unavailable)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// Raises the bucket's replicas to `replicas` (never lowers them); a
/// process without the right to (a projection) leaves that to the agency
/// services.
async fn raise_replicas(js: &jetstream::Context, bucket: &str, replicas: usize) {
    let name = format!("KV_{bucket}");
    let Ok(mut stream) = js.get_stream(&name).await else {
        return;
    };
    let Ok(info) = stream.info().await else {
        return;
    };
    if info.config.num_replicas >= replicas {
        return;
    }
    let mut config = info.config.clone();
    config.num_replicas = replicas;
    match js.update_stream(config).await {
        Ok(_) => tracing::info!(bucket, replicas, "bucket replicas raised"),
        Err(e) => tracing::warn!(bucket, error = %e, "could not raise the bucket's replicas"),
    }
}
