//! Running a projection: the [`Engine`] (its store, rebuilds into a fresh
//! one, its live consumer, stopping), and the [`Projection`] that serves
//! queries on it (callers, read-your-writes, the audit trail).
//!
//! # Stores on disk
//! `HUB_DATA_DIR` holds one or more RocksDB stores (`store-<n>`) and a file
//! `ACTIVE_STORE` naming the one in use. A rebuild replays the stream into a
//! fresh store while the active one keeps serving; once it has caught up,
//! the live consumer pauses, the fresh store takes the last few events,
//! readers switch to it, `ACTIVE_STORE` is replaced atomically, and the old
//! store is deleted once its last reader drops it. Store folders other than
//! the active one (an interrupted rebuild's) are removed at start.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};

use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
};
use tonic::{Request, Status};

use hub_core::{
    auth::{Action, Caller},
    partnerships::PartnershipRegister,
    validate, Error,
};
use hub_runtime::{eventlog::EventLog, shutdown::Stopping, ApiError};
use hub_store::{Progress, Store};

use crate::{
    consumer::{on_storage, ApplyFn, Consumer},
    source::EventSource,
    trail::AuditTrail,
};

/// Longest a query waits for `min_sequence`.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);
const ACTIVE_STORE: &str = "ACTIVE_STORE";

/// A projection's distance from the end of the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    pub applied: u64,
    pub last: u64,
    pub events: u64,
    pub seconds: f64,
}

/// What runs a projection, whatever it serves: its store slot (and
/// rebuilds into a fresh one), its live consumer, where it stands, and
/// stopping. Needs no credentials, so it runs in unit tests over a
/// [`crate::source::MemorySource`].
pub struct Engine {
    name: &'static str,
    data_dir: PathBuf,
    store: RwLock<Arc<Store>>,
    live: Mutex<Option<JoinHandle<()>>>,
    rebuilding: tokio::sync::Mutex<()>,
    /// The layout version this code writes (see [`Engine::open`]).
    schema: u32,
    /// The active store was written by an older layout and is being
    /// rebuilt: queries are refused meanwhile rather than answered wrong.
    upgrading: AtomicBool,
    consumer: Consumer,
    progress: watch::Receiver<Progress>,
    /// Why the store cannot be used, while it cannot: queries are refused
    /// and health says `NOT_SERVING` meanwhile.
    fault: watch::Receiver<Option<String>>,
    /// Cancelled when the projection stops: every long-lived stream
    /// (watches, rebuild progress) ends at once instead of holding the
    /// drain.
    stopping: Stopping,
}

fn open_store(path: &Path) -> Result<Store, Error> {
    Store::open(path).map_err(|e| Error::config("HUB_DATA_DIR", e.to_string()))
}

/// The active store's folder under `data_dir`.
fn active_dir(data_dir: &Path) -> Result<PathBuf, Error> {
    let pointer = data_dir.join(ACTIVE_STORE);
    let name = match std::fs::read_to_string(&pointer) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "store-1".to_string(),
        Err(e) => {
            return Err(Error::config(
                "HUB_DATA_DIR",
                format!("{}: {e}", pointer.display()),
            ))
        }
    };
    Ok(data_dir.join(name))
}

/// Removes every store folder under `data_dir` but the active one: what an
/// interrupted rebuild left (the process stopped before its store took
/// over), or an old store whose removal did not finish. Nothing else
/// writes there while the projection starts.
fn remove_leftovers(data_dir: &Path, active: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_store = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("store-"));
        if !is_store || path == active || !path.is_dir() {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::info!(dir = %path.display(), "removed a store left by an interrupted rebuild")
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %path.display(), "cannot remove a leftover store")
            }
        }
    }
}

fn set_active(data_dir: &Path, dir: &Path) -> Result<(), Error> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::internal("store folder name"))?;
    let tmp = data_dir.join(format!("{ACTIVE_STORE}.tmp"));
    std::fs::write(&tmp, name).map_err(|e| Error::internal_from("writing ACTIVE_STORE", e))?;
    std::fs::rename(&tmp, data_dir.join(ACTIVE_STORE))
        .map_err(|e| Error::internal_from("replacing ACTIVE_STORE", e))
}

/// The store's position, and whether it was written by an older layout
/// (to be rebuilt); an empty store takes `schema`, a newer one is refused.
fn check_layout(
    store: &Store,
    name: &str,
    dir: &Path,
    schema: u32,
) -> Result<(Progress, bool), Error> {
    let internal = |e: hub_store::Error| Error::internal_from("the store", e);
    let progress = store.progress().map_err(internal)?;
    if progress.applied_sequence == 0 {
        store.set_schema(schema).map_err(internal)?;
        return Ok((progress, false));
    }
    let have = store.schema().map_err(internal)?;
    if have > schema {
        return Err(Error::config(
            "HUB_DATA_DIR",
            format!(
                "{}: written by a newer version of {name} (layout {have}, this one knows {schema})",
                dir.display()
            ),
        ));
    }
    Ok((progress, have < schema))
}

/// What a projection is made of (see [`Projection::open`]).
pub struct Parts {
    pub name: &'static str,
    /// Where its stores live (`HUB_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The version of the layout this code writes.
    pub schema: u32,
    /// The event log, for what the projection publishes.
    pub log: EventLog,
    /// Where it reads the events it applies.
    pub source: Arc<dyn EventSource>,
    /// How it folds one event into its store.
    pub apply: Arc<ApplyFn>,
    pub auth: Arc<hub_runtime::authn::Authenticator>,
    pub partnerships: PartnershipRegister,
    /// The audit trail of person-level reads (`None`: counts only).
    pub trail: Option<AuditTrail>,
}

impl Engine {
    /// Opens the active store under `data_dir`. `schema` is the version of
    /// the layout this code writes: an empty store takes it; a store of an
    /// older layout is rebuilt from the stream once the projection starts
    /// ([`Engine::upgrade_if_needed`]); a newer one is refused. Leftovers
    /// of an interrupted rebuild are removed.
    pub fn open(
        name: &'static str,
        data_dir: &Path,
        schema: u32,
        source: Arc<dyn EventSource>,
        apply: Arc<ApplyFn>,
    ) -> Result<Arc<Self>, Error> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::config("HUB_DATA_DIR", format!("{}: {e}", data_dir.display())))?;
        let dir = active_dir(data_dir)?;
        remove_leftovers(data_dir, &dir);
        // A store that cannot be opened (unreadable, disk full) does not
        // stop the process: it serves health (NOT_SERVING) and refuses
        // queries while the consumer keeps trying to open it.
        let (store, fault) = match open_store(&dir) {
            Ok(store) => (store, None),
            Err(e) => {
                tracing::error!(projection = name, error = %e, "cannot open the store; retrying");
                (Store::closed(&dir), Some(e.to_string()))
            }
        };
        let (progress, upgrading) = match fault {
            None => {
                let (progress, upgrading) = check_layout(&store, name, &dir, schema)?;
                tracing::info!(projection = name, applied = progress.applied_sequence, dir = %dir.display(), "store opened");
                (progress, upgrading)
            }
            // Checked by the consumer once the store opens (it marks an
            // empty store with `schema`).
            Some(_) => (Progress::default(), false),
        };
        let (tx, rx) = watch::channel(progress);
        let (fault_tx, fault_rx) = watch::channel(fault);
        Ok(Arc::new(Self {
            name,
            data_dir: data_dir.to_path_buf(),
            store: RwLock::new(Arc::new(store)),
            live: Mutex::new(None),
            rebuilding: tokio::sync::Mutex::new(()),
            schema,
            upgrading: AtomicBool::new(upgrading),
            consumer: Consumer {
                name,
                source,
                apply,
                progress: tx,
                changes: broadcast::channel(4096).0,
                fault: fault_tx,
                schema,
            },
            progress: rx,
            fault: fault_rx,
            stopping: Stopping::new(),
        }))
    }

    /// The store readers use now.
    pub fn store(&self) -> Arc<Store> {
        self.store.read().expect("store lock").clone()
    }

    /// Runs a read of the active store on the blocking pool (a RocksDB read
    /// may wait on the disk: never on the async workers); its error, if
    /// any, as `INTERNAL`. The read keeps the store it started on even if
    /// a rebuild switches meanwhile.
    pub async fn read<T, E>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, Status>
    where
        T: Send + 'static,
        E: Into<hub_core::error::Cause> + Send + 'static,
    {
        let store = self.store();
        on_storage(move || f(&store))
            .await
            .map_err(|e| ApiError(Error::internal_from("reading the store", e)).into())
    }

    /// Starts the live consumer on the active store.
    pub fn start(&self) {
        let consumer = self.consumer.clone();
        let store = self.store();
        let task = tokio::spawn(async move { consumer.run(store).await });
        if let Some(old) = self.live.lock().expect("live lock").replace(task) {
            old.abort();
        }
    }

    /// Rebuilds the store in the background when it was written by an older
    /// layout (after an upgrade); queries answer `UNAVAILABLE` until the
    /// rebuilt store takes over.
    pub fn upgrade_if_needed(self: &Arc<Self>) {
        if !self.upgrading.load(Ordering::Acquire) {
            return;
        }
        tracing::warn!(
            projection = self.name,
            schema = self.schema,
            "the store was written by an older version: rebuilding it from the stream"
        );
        let projection = self.clone();
        tokio::spawn(async move {
            let result = projection.rebuild(|_, _, _| {}).await;
            if let Err(e) = result {
                tracing::error!(projection = projection.name, error = %e,
                    "the rebuild after an upgrade failed; run `hubctl projection rebuild`");
            }
        });
    }

    /// How far behind the stream the store is: in events, and in seconds
    /// as the age of the oldest event not yet applied (0 when caught up).
    /// Seconds are what an operator can compare with "a worker sees a
    /// release within seconds"; events say how much work remains.
    pub async fn lag(&self) -> Result<Lag, Error> {
        let unavailable =
            |e: crate::source::SourceError| Error::unavailable_from("reading the stream", e);
        let applied = self.progress.borrow().applied_sequence;
        let (_, last) = self.consumer.source.bounds().await.map_err(unavailable)?;
        let events = last.saturating_sub(applied);
        let seconds = if events == 0 {
            0.0
        } else {
            let oldest = self
                .consumer
                .source
                .stored(applied + 1)
                .await
                .map_err(unavailable)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(oldest.published);
            (now - oldest.published).max(0.0)
        };
        Ok(Lag {
            applied,
            last,
            events,
            seconds,
        })
    }

    /// Its name (`pickup-projection`), also the metrics label.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where it stands in the stream (applied sequence, events, parked).
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Why its store cannot be used, while it cannot (`None` when well).
    pub fn fault(&self) -> Option<String> {
        self.fault.borrow().clone()
    }

    /// The store's fault as it changes (health follows it).
    pub fn watch_fault(&self) -> watch::Receiver<Option<String>> {
        self.fault.clone()
    }

    /// The people whose entries change from now on, as they are applied
    /// (live watchers subscribe before their first snapshot).
    pub fn changes(&self) -> broadcast::Receiver<crate::identity::Changed> {
        self.consumer.changes.subscribe()
    }

    /// Cancelled when the projection stops: long-lived streams select on
    /// it and end (`UNAVAILABLE`, reconnect) rather than hold the drain.
    pub fn stopping(&self) -> &Stopping {
        &self.stopping
    }

    /// Keeps the lag gauges current (every 2 s), also while the consumer
    /// is stuck, which is when they matter.
    pub async fn report_lag(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            match self.lag().await {
                Ok(lag) => {
                    metrics::gauge!("hub_projection_lag_events", "projection" => self.name)
                        .set(lag.events as f64);
                    metrics::gauge!("hub_projection_lag_seconds", "projection" => self.name)
                        .set(lag.seconds);
                }
                Err(e) => tracing::debug!(projection = self.name, error = %e, "lag unknown"),
            }
        }
    }

    /// Stops the live consumer (each batch commits atomically, so stopping
    /// between awaits loses nothing) and flushes the store.
    pub async fn stop(&self) {
        let task = self.live.lock().expect("live lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let store = self.store();
        if let Err(e) = on_storage(move || store.flush()).await {
            tracing::warn!(projection = self.name, error = %e, "flushing the store");
        }
    }

    /// Waits until `min_sequence` is applied; returns the applied sequence.
    pub async fn wait_for(&self, min_sequence: u64) -> Result<u64, Status> {
        if let Some(fault) = self.fault.borrow().clone() {
            return Err(ApiError(Error::unavailable(format!(
                "{}'s store cannot be used ({fault}); it stopped applying at sequence {} and resumes when the store works again",
                self.name,
                self.progress.borrow().applied_sequence
            )))
            .into());
        }
        if self.upgrading.load(Ordering::Acquire) {
            return Err(ApiError(Error::unavailable(format!(
                "{} is rebuilding its store after an upgrade (applied {} so far); retry in a few minutes",
                self.name,
                self.progress.borrow().applied_sequence
            )))
            .into());
        }
        let mut rx = self.progress.clone();
        let reached = tokio::time::timeout(
            READ_YOUR_WRITES_TIMEOUT,
            rx.wait_for(|p| p.applied_sequence >= min_sequence),
        )
        .await;
        match reached {
            Ok(Ok(p)) => Ok(p.applied_sequence),
            Ok(Err(_)) => Err(ApiError(Error::internal("projection stopped")).into()),
            Err(_) => Err(ApiError(Error::unavailable(format!(
                "min_sequence: sequence {min_sequence} not applied within {}s (applied: {})",
                READ_YOUR_WRITES_TIMEOUT.as_secs(),
                self.progress.borrow().applied_sequence
            )))
            .into()),
        }
    }

    /// Whether a rebuild is running (or an erasure holds the store still).
    pub fn exclusive(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, Status> {
        self.rebuilding.try_lock().map_err(|_| {
            ApiError(Error::unavailable(format!(
                "{} is rebuilding its store; retry when `hubctl projection status` shows it done",
                self.name
            )))
            .into()
        })
    }

    /// The stream's last sequence, as the consumer reads it.
    pub async fn last_sequence(&self) -> Result<u64, Error> {
        let (_, last) = self
            .consumer
            .source
            .bounds()
            .await
            .map_err(|e| Error::unavailable_from("reading the stream's bounds", e))?;
        Ok(last)
    }

    /// Rebuilds into a fresh store (see the module docs), reporting
    /// `(progress, target, switched)` as it goes.
    pub async fn rebuild(
        self: &Arc<Self>,
        report: impl Fn(Progress, u64, bool),
    ) -> Result<(), Error> {
        let _one_at_a_time = self.rebuilding.try_lock().map_err(|_| {
            Error::AlreadyExists(
                "a rebuild of this projection (or an erasure) is already running".into(),
            )
        })?;
        let target = self.last_sequence().await?;
        let dir = self
            .data_dir
            .join(format!("store-{}", jiff::Timestamp::now().as_millisecond()));
        let fresh = {
            let (dir, schema) = (dir.clone(), self.schema);
            on_storage(move || {
                let fresh = open_store(&dir)?;
                fresh
                    .set_schema(schema)
                    .map_err(|e| Error::internal_from("marking the fresh store's layout", e))?;
                // Nobody reads it until it takes over, and its folder goes
                // if it never does: no write-ahead log until then.
                fresh
                    .begin_bulk()
                    .map_err(|e| Error::internal_from("starting the fresh store's bulk load", e))?;
                Ok::<_, Error>(Arc::new(fresh))
            })
            .await?
        };
        tracing::info!(projection = self.name, target, dir = %dir.display(), "rebuild started");
        let result = self.replay_and_switch(&fresh, &dir, target, &report).await;
        if result.is_err() {
            // Never taken over: its folder goes with the last handle.
            fresh.retire();
        }
        result
    }

    /// Replays the stream into `fresh` up to `target`, then takes the tail
    /// with the live consumer paused and switches readers to it.
    async fn replay_and_switch(
        &self,
        fresh: &Arc<Store>,
        dir: &Path,
        target: u64,
        report: &impl Fn(Progress, u64, bool),
    ) -> Result<(), Error> {
        let (tx, mut rx) = watch::channel(Progress::default());
        let mut replay = self.consumer.clone();
        replay.progress = tx;
        replay.changes = broadcast::channel(1).0;
        replay.fault = watch::channel(None).0;
        // Aborted if the rebuild is (the process stopping): a replay never
        // outlives the rebuild that started it.
        let mut task = AbortOnDrop({
            let (replay, fresh) = (replay.clone(), fresh.clone());
            tokio::spawn(async move { replay.run_until(fresh, false, Some(target)).await })
        });
        while !task.0.is_finished() {
            let _ = tokio::time::timeout(Duration::from_millis(250), rx.changed()).await;
            report(*rx.borrow(), target, false);
        }
        let failed =
            |e: hub_store::Error| Error::unavailable_from("the rebuild's fresh store failed", e);
        (&mut task.0)
            .await
            .map_err(|e| Error::internal_from("rebuild task", e))?
            .map_err(failed)?;
        // Caught up to the target: pause the live consumer, take the tail.
        self.stop().await;
        let tail = match self.last_sequence().await {
            Ok(tail) => tail,
            Err(e) => {
                self.start(); // the live store goes on
                return Err(e);
            }
        };
        if let Err(e) = replay.run_until(fresh.clone(), false, Some(tail)).await {
            self.start();
            return Err(failed(e));
        }
        // Durable in its files before it takes over.
        let progress = {
            let fresh = fresh.clone();
            on_storage(move || {
                fresh.end_bulk()?;
                fresh.progress()
            })
            .await
        };
        let progress = match progress {
            Ok(progress) => progress,
            Err(e) => {
                self.start();
                return Err(failed(e));
            }
        };
        if let Err(e) = set_active(&self.data_dir, dir) {
            self.start();
            return Err(e);
        }
        // Reads that hold the old store finish on it; its folder goes when
        // the last of them lets go.
        let old = std::mem::replace(&mut *self.store.write().expect("store lock"), fresh.clone());
        old.retire();
        drop(old);
        self.upgrading.store(false, Ordering::Release);
        let _ = self.consumer.progress.send(progress);
        self.start();
        report(progress, tail, true);
        tracing::info!(
            projection = self.name,
            applied = progress.applied_sequence,
            "rebuild switched readers to the fresh store"
        );
        Ok(())
    }
}

/// A projection while it runs: its [`Engine`], and what serving its queries
/// needs besides (callers, the register, the audit trail, the event log
/// for what it publishes). Derefs to the engine.
pub struct Projection {
    engine: Arc<Engine>,
    /// The event log, for what a projection publishes (erasures, audit).
    log: EventLog,
    auth: Arc<hub_runtime::authn::Authenticator>,
    partnerships: Arc<PartnershipRegister>,
    /// The audit trail of person-level reads; `None` in a projection that
    /// serves only counts (it holds no hub secret).
    trail: Option<AuditTrail>,
}

impl std::ops::Deref for Projection {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl Projection {
    /// Opens the engine (see [`Engine::open`]) and keeps what serving needs.
    pub fn open(parts: Parts) -> Result<Arc<Self>, Error> {
        let Parts {
            name,
            data_dir,
            schema,
            log,
            source,
            apply,
            auth,
            partnerships,
            trail,
        } = parts;
        Ok(Arc::new(Self {
            engine: Engine::open(name, &data_dir, schema, source, apply)?,
            log,
            auth,
            partnerships: Arc::new(partnerships),
            trail,
        }))
    }

    /// The engine, for what runs beside the queries (rebuilds, lag).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The partnership register it serves.
    pub fn partnerships(&self) -> &PartnershipRegister {
        &self.partnerships
    }

    /// The event log, for what the projection publishes.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// The authenticated caller of a request.
    pub fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.auth
            .authenticate(auth)
            .map(|caller| (*caller).clone())
            .map_err(|e| ApiError(e).into())
    }

    /// The caller, if an admin (status, rebuilds, erasure, audit).
    pub fn operator<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(request)?;
        if !caller.role.may(Action::Operate) {
            return Err(ApiError(Error::PermissionDenied(format!(
                "role {} may not {}",
                caller.role.as_str(),
                Action::Operate.describe()
            )))
            .into());
        }
        Ok(caller)
    }

    /// Role, then partnership scope, then that the partnership exists.
    pub fn authorise(
        &self,
        caller: &Caller,
        action: Action,
        partnership_code: &str,
    ) -> Result<(), Status> {
        if !caller.role.may(action) || self.partnerships.get(partnership_code).is_some() {
            caller
                .authorise(action, partnership_code)
                .map_err(ApiError)?;
        }
        validate::partnership(&self.partnerships, partnership_code)
            .map_err(|d| ApiError(Error::invalid("partnership_code", d)))?;
        Ok(())
    }

    /// Records a person-level read before its rows leave (see
    /// [`AuditTrail::record`]); if it cannot be recorded the read fails.
    pub async fn audit(
        &self,
        caller: &Caller,
        partnership: &str,
        rpc: &str,
        person_keys: Vec<String>,
    ) -> Result<(), Status> {
        self.audit_read(caller, partnership, rpc, person_keys, None)
            .await
    }

    /// [`Self::audit`], for a read by a caller whose token did not cover
    /// the partnership: `reason` is the event's id and the reason sealed
    /// under it.
    pub async fn audit_read(
        &self,
        caller: &Caller,
        partnership: &str,
        rpc: &str,
        person_keys: Vec<String>,
        reason: Option<(String, hub_proto::events::Sealed)>,
    ) -> Result<(), Status> {
        self.audit_trail()?
            .record(caller, partnership, rpc, &person_keys, reason)
            .await
            .map_err(|e| ApiError(e).into())
    }

    /// The audit trail, or an internal error in a projection without one.
    pub fn audit_trail(&self) -> Result<&AuditTrail, Status> {
        self.trail.as_ref().ok_or_else(|| {
            ApiError(Error::internal(format!(
                "{} keeps no audit trail of person-level reads",
                self.name
            )))
            .into()
        })
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
