//! The engine: one task per projection that owns its store slot, its live
//! consumer and its rebuild state machine, and a small handle
//! ([`Engine`]) through which everything else asks it to act.
//!
//! # Why a task
//! A projection's moving parts (the live consumer, a rebuild's replay and
//! its switch, an erasure that must hold the store still, stopping) change
//! the same few things: which store readers use, whether the consumer
//! runs, whether a rebuild may start. Behind locks, each caller had to take
//! them in the right order; a task that owns them all answers one request
//! at a time, so they cannot interleave. The task publishes what readers
//! need (the store, progress, faults) on `watch` channels, so a query
//! never waits for the task: it reads the store the slot holds now.
//!
//! ```text
//!  handle (Engine, Clone) ──Command──▶ task (owns slot, live, rebuild)
//!      ▲   store · progress · fault · upgrading     │
//!      └──────────────── watch ◀────────────────────┘
//! ```
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
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::{broadcast, mpsc, oneshot, watch},
    task::JoinHandle,
};
use tonic::Status;

use hub_core::Error;
use hub_runtime::{shutdown::Stopping, ApiError};
use hub_store::{Progress, Store};

use crate::{
    consumer::{on_storage, ApplyFn, Consumer},
    identity::Changed,
    source::EventSource,
};

/// Longest a query waits for `min_sequence`.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const ACTIVE_STORE: &str = "ACTIVE_STORE";
/// How often a running rebuild reports its progress.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// A projection's distance from the end of the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    pub applied: u64,
    pub last: u64,
    pub events: u64,
    pub seconds: f64,
}

/// How a rebuild reports `(progress, target, switched)` as it goes.
pub type Report = Box<dyn Fn(Progress, u64, bool) + Send + Sync>;

/// What the engine's task is asked to do.
enum Command {
    /// Start the live consumer (and rebuild a store of an older layout).
    Start,
    /// Stop the live consumer, abandon a rebuild, flush the store.
    Stop(oneshot::Sender<()>),
    /// Rebuild into a fresh store; answered when it has switched or failed.
    Rebuild {
        report: Report,
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// Keep rebuilds from starting until the [`Hold`] is dropped.
    Hold(oneshot::Sender<Result<(), Error>>),
    /// A [`Hold`] was dropped.
    Release,
}

/// The handle to a projection's engine: cheap to clone, every clone
/// speaks to the same task. The task ends when the last handle is dropped.
/// Needs no credentials, so it runs in unit tests over a
/// [`crate::source::MemorySource`].
#[derive(Clone)]
pub struct Engine {
    name: &'static str,
    commands: mpsc::UnboundedSender<Command>,
    store: watch::Receiver<Arc<Store>>,
    progress: watch::Receiver<Progress>,
    /// Why the store cannot be used, while it cannot: queries are refused
    /// and health says `NOT_SERVING` meanwhile.
    fault: watch::Receiver<Option<String>>,
    /// The active store was written by an older layout and is being
    /// rebuilt: queries are refused meanwhile rather than answered wrong.
    upgrading: watch::Receiver<bool>,
    changes: broadcast::Sender<Changed>,
    source: Arc<dyn EventSource>,
    /// Cancelled when the projection stops: every long-lived stream
    /// (watches, rebuild progress) ends at once instead of holding the
    /// drain, and a running rebuild is abandoned.
    stopping: Stopping,
    /// Closed when the task has ended (and let go of its stores).
    ended: watch::Receiver<()>,
}

/// While held, no rebuild starts (an erasure sweep holds the store still);
/// released when dropped.
pub struct Hold(mpsc::UnboundedSender<Command>);

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = self.0.send(Command::Release);
    }
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

impl Engine {
    /// Opens the active store under `data_dir` and starts the engine's
    /// task (call from within a tokio runtime; the store's files are read
    /// here, so from the blocking pool). `schema` is the version of the
    /// layout this code writes: an empty store takes it; a store of an
    /// older layout is rebuilt from the stream once the projection starts
    /// ([`Engine::start`]); a newer one is refused. Leftovers of an
    /// interrupted rebuild are removed.
    pub fn open(
        name: &'static str,
        data_dir: &Path,
        schema: u32,
        source: Arc<dyn EventSource>,
        apply: Arc<ApplyFn>,
    ) -> Result<Self, Error> {
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
        let (progress_tx, progress) = watch::channel(progress);
        let (fault_tx, fault) = watch::channel(fault);
        let (slot, store) = watch::channel(Arc::new(store));
        let (upgrading_tx, upgrading) = watch::channel(upgrading);
        let (commands, inbox) = mpsc::unbounded_channel();
        let changes = broadcast::channel(4096).0;
        let stopping = Stopping::new();
        let (ended_tx, ended) = watch::channel(());
        let task = Task {
            name,
            data_dir: data_dir.to_path_buf(),
            schema,
            consumer: Consumer {
                name,
                source: source.clone(),
                apply,
                progress: progress_tx,
                changes: changes.clone(),
                fault: fault_tx,
                schema,
            },
            slot,
            upgrading: upgrading_tx,
            live: None,
            held: 0,
            rebuild: None,
            reports: tokio::time::interval(REPORT_EVERY),
            stopping: stopping.clone(),
            _ended: ended_tx,
        };
        tokio::spawn(task.run(inbox));
        Ok(Self {
            name,
            commands,
            store,
            progress,
            fault,
            upgrading,
            changes,
            source,
            stopping,
            ended,
        })
    }

    /// Drops this handle and waits until the task has ended and let go of
    /// its stores (for a reopen of the same folder); the task ends when
    /// its last handle is gone, so every other clone must be dropped too.
    pub async fn close(self) {
        let mut ended = self.ended.clone();
        drop(self);
        let _ = ended.changed().await;
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .map_err(|_| Error::unavailable(format!("{} has stopped", self.name)))
    }

    /// Its name (`pickup-projection`), also the metrics label.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The store readers use now.
    pub fn store(&self) -> Arc<Store> {
        self.store.borrow().clone()
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

    /// Starts the live consumer on the active store, and rebuilds that
    /// store in the background if an older layout wrote it (after an
    /// upgrade): queries answer `UNAVAILABLE` until the rebuilt store takes
    /// over.
    pub fn start(&self) {
        let _ = self.send(Command::Start);
    }

    /// Stops the live consumer (each batch commits atomically, so stopping
    /// between awaits loses nothing), abandons a running rebuild, and
    /// flushes the store.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }

    /// Rebuilds into a fresh store (see the module docs), reporting
    /// `(progress, target, switched)` as it goes; returns once readers have
    /// switched to it, or why not. One at a time, and not while a [`Hold`]
    /// is held: `ALREADY_EXISTS` then.
    pub async fn rebuild(
        &self,
        report: impl Fn(Progress, u64, bool) + Send + Sync + 'static,
    ) -> Result<(), Error> {
        let (done, finished) = oneshot::channel();
        self.send(Command::Rebuild {
            report: Box::new(report),
            done,
        })?;
        finished
            .await
            .map_err(|_| Error::unavailable(format!("{} stopped during the rebuild", self.name)))?
    }

    /// Holds the store still against rebuilds until the [`Hold`] drops;
    /// `UNAVAILABLE` while a rebuild runs.
    pub async fn hold(&self) -> Result<Hold, Status> {
        let (reply, answer) = oneshot::channel();
        let refused = |e: Error| -> Status { ApiError(e).into() };
        self.send(Command::Hold(reply)).map_err(refused)?;
        answer
            .await
            .map_err(|_| refused(Error::unavailable(format!("{} has stopped", self.name))))?
            .map_err(refused)?;
        Ok(Hold(self.commands.clone()))
    }

    /// How far behind the stream the store is: in events, and in seconds
    /// as the age of the oldest event not yet applied (0 when caught up).
    /// Seconds are what an operator can compare with "a worker sees a
    /// release within seconds"; events say how much work remains.
    pub async fn lag(&self) -> Result<Lag, Error> {
        let unavailable =
            |e: crate::source::SourceError| Error::unavailable_from("reading the stream", e);
        let applied = self.progress.borrow().applied_sequence;
        let (_, last) = self.source.bounds().await.map_err(unavailable)?;
        let events = last.saturating_sub(applied);
        let seconds = if events == 0 {
            0.0
        } else {
            let oldest = self.source.stored(applied + 1).await.map_err(unavailable)?;
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

    /// The stream's last sequence, as the consumer reads it.
    pub async fn last_sequence(&self) -> Result<u64, Error> {
        last_sequence(self.source.as_ref()).await
    }

    /// Where it stands in the stream (applied sequence, events, parked).
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Where it stands, as it changes.
    pub fn watch_progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
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
    pub fn changes(&self) -> broadcast::Receiver<Changed> {
        self.changes.subscribe()
    }

    /// Cancelled when the projection stops: long-lived streams select on
    /// it and end (`UNAVAILABLE`, reconnect) rather than hold the drain.
    pub fn stopping(&self) -> &Stopping {
        &self.stopping
    }

    /// Keeps the lag gauges current (every 2 s), also while the consumer
    /// is stuck, which is when they matter.
    pub async fn report_lag(self) {
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
        if *self.upgrading.borrow() {
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
}

async fn last_sequence(source: &dyn EventSource) -> Result<u64, Error> {
    let (_, last) = source
        .bounds()
        .await
        .map_err(|e| Error::unavailable_from("reading the stream's bounds", e))?;
    Ok(last)
}

/// A rebuild in progress: its replay into `fresh` runs as its own task
/// while the engine's task goes on answering.
struct Rebuild {
    replay: AbortOnDrop<Result<(), Error>>,
    /// The replay's consumer (the live one's, with channels of its own).
    consumer: Consumer,
    progress: watch::Receiver<Progress>,
    fresh: Arc<Store>,
    dir: PathBuf,
    target: u64,
    report: Report,
    /// Who asked (none for the rebuild after an upgrade).
    done: Option<oneshot::Sender<Result<(), Error>>>,
}

impl Rebuild {
    /// Never taken over: its folder goes with the last handle, and whoever
    /// asked is told why.
    fn fail(self, error: Error) {
        self.fresh.retire();
        self.answer(Err(error));
    }

    fn answer(self, result: Result<(), Error>) {
        answer(self.consumer.name, self.done, result);
    }
}

/// Tells whoever asked for a rebuild how it ended (the log, when it was the
/// rebuild after an upgrade, which nobody awaits).
fn answer(
    name: &'static str,
    done: Option<oneshot::Sender<Result<(), Error>>>,
    result: Result<(), Error>,
) {
    match done {
        Some(done) => {
            let _ = done.send(result);
        }
        None => match result {
            Ok(()) => {}
            Err(e) => tracing::error!(projection = name, error = %e,
                "the rebuild after an upgrade failed; run `hubctl projection rebuild`"),
        },
    }
}

/// What the engine's task waits on next.
enum Next {
    Command(Option<Command>),
    Replayed(Result<(), Error>),
    Report,
    Stopping,
}

/// The engine's task: the only owner of the store slot, the live consumer
/// and the rebuild.
struct Task {
    name: &'static str,
    data_dir: PathBuf,
    schema: u32,
    consumer: Consumer,
    /// The store readers use; replaced when a rebuild switches.
    slot: watch::Sender<Arc<Store>>,
    upgrading: watch::Sender<bool>,
    live: Option<JoinHandle<()>>,
    /// How many [`Hold`]s are out.
    held: usize,
    rebuild: Option<Rebuild>,
    /// When a running rebuild reports next (restarted as each begins).
    reports: tokio::time::Interval,
    stopping: Stopping,
    /// Dropped when the task ends, after everything above (fields drop in
    /// order): [`Engine::close`] waits for it.
    _ended: watch::Sender<()>,
}

impl Task {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        self.reports
            .set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let rebuilding = self.rebuild.is_some();
            let (rebuild, stopping, reports) =
                (&mut self.rebuild, &self.stopping, &mut self.reports);
            let next = tokio::select! {
                command = inbox.recv() => Next::Command(command),
                replayed = async {
                    match rebuild.as_mut() {
                        Some(r) => (&mut r.replay.0).await.unwrap_or_else(|e| {
                            Err(Error::internal_from("the rebuild's replay task", e))
                        }),
                        None => std::future::pending().await,
                    }
                }, if rebuilding => Next::Replayed(replayed),
                _ = reports.tick(), if rebuilding => Next::Report,
                _ = stopping.cancelled(), if rebuilding => Next::Stopping,
            };
            match next {
                Next::Command(Some(command)) => self.handle(command).await,
                Next::Command(None) => break,
                Next::Replayed(result) => self.replayed(result).await,
                Next::Report => {
                    if let Some(r) = &self.rebuild {
                        (r.report)(*r.progress.borrow(), r.target, false);
                    }
                }
                Next::Stopping => self.abandon(),
            }
        }
        // Every handle is gone.
        self.abandon();
        self.stop_live().await;
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Start => {
                self.start_live();
                if *self.upgrading.borrow() && self.rebuild.is_none() {
                    tracing::warn!(
                        projection = self.name,
                        schema = self.schema,
                        "the store was written by an older version: rebuilding it from the stream"
                    );
                    self.begin(Box::new(|_, _, _| {}), None).await;
                }
            }
            Command::Stop(done) => {
                self.abandon();
                self.stop_live().await;
                let store = self.slot.borrow().clone();
                if let Err(e) = on_storage(move || store.flush()).await {
                    tracing::warn!(projection = self.name, error = %e, "flushing the store");
                }
                let _ = done.send(());
            }
            Command::Rebuild { report, done } => {
                if self.rebuild.is_some() || self.held > 0 {
                    let _ = done.send(Err(Error::AlreadyExists(
                        "a rebuild of this projection (or an erasure) is already running".into(),
                    )));
                    return;
                }
                self.begin(report, Some(done)).await;
            }
            Command::Hold(reply) => {
                if self.rebuild.is_some() {
                    let _ = reply.send(Err(Error::unavailable(format!(
                        "{} is rebuilding its store; retry when `hubctl projection status` shows it done",
                        self.name
                    ))));
                } else {
                    self.held += 1;
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Release => self.held = self.held.saturating_sub(1),
        }
    }

    /// Starts the live consumer on the store readers use.
    fn start_live(&mut self) {
        let consumer = self.consumer.clone();
        let store = self.slot.borrow().clone();
        let task = tokio::spawn(async move { consumer.run(store).await });
        if let Some(old) = self.live.replace(task) {
            old.abort();
        }
    }

    /// Stops the live consumer and waits until it has let go of the store.
    async fn stop_live(&mut self) {
        if let Some(task) = self.live.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Abandons a running rebuild (the process stopping): its replay is
    /// aborted, its folder removed, whoever asked told.
    fn abandon(&mut self) {
        if let Some(rebuild) = self.rebuild.take() {
            let error = Error::unavailable(format!(
                "{} is stopping: the rebuild was abandoned; run it again once the projection is back",
                self.name
            ));
            rebuild.fail(error);
        }
    }

    /// Opens a fresh store and starts replaying the stream into it up to
    /// the stream's present end; the task goes on answering meanwhile.
    async fn begin(&mut self, report: Report, done: Option<oneshot::Sender<Result<(), Error>>>) {
        let started = async {
            let target = last_sequence(self.consumer.source.as_ref()).await?;
            let dir = self
                .data_dir
                .join(format!("store-{}", jiff::Timestamp::now().as_millisecond()));
            let (path, schema) = (dir.clone(), self.schema);
            let fresh = on_storage(move || {
                let fresh = open_store(&path)?;
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
            .await?;
            Ok::<_, Error>((target, dir, fresh))
        };
        let (target, dir, fresh) = match started.await {
            Ok(started) => started,
            Err(e) => return answer(self.name, done, Err(e)),
        };
        tracing::info!(projection = self.name, target, dir = %dir.display(), "rebuild started");
        let (progress_tx, progress) = watch::channel(Progress::default());
        let consumer = Consumer {
            progress: progress_tx,
            changes: broadcast::channel(1).0,
            fault: watch::channel(None).0,
            ..self.consumer.clone()
        };
        let replay = {
            let (consumer, fresh) = (consumer.clone(), fresh.clone());
            AbortOnDrop(tokio::spawn(async move {
                consumer
                    .run_until(fresh, false, Some(target))
                    .await
                    .map_err(|e| Error::unavailable_from("the rebuild's fresh store failed", e))
            }))
        };
        // Whoever asked hears at once that it runs and how far it has to
        // go; then a report a tick from now, not a burst of the ticks
        // missed while no rebuild ran.
        report(Progress::default(), target, false);
        self.reports.reset();
        self.rebuild = Some(Rebuild {
            replay,
            consumer,
            progress,
            fresh,
            dir,
            target,
            report,
            done,
        });
    }

    /// The replay reached its target (or failed): with the live consumer
    /// paused, the fresh store takes the tail, then readers switch to it.
    async fn replayed(&mut self, result: Result<(), Error>) {
        let Some(rebuild) = self.rebuild.take() else {
            return;
        };
        if let Err(e) = result {
            return rebuild.fail(e);
        }
        self.stop_live().await;
        let switched = self.switch(&rebuild).await;
        // On failure the old store goes on; on success the fresh one.
        self.start_live();
        match switched {
            Ok((progress, tail)) => {
                (rebuild.report)(progress, tail, true);
                tracing::info!(
                    projection = self.name,
                    applied = progress.applied_sequence,
                    "rebuild switched readers to the fresh store"
                );
                rebuild.answer(Ok(()));
            }
            Err(e) => rebuild.fail(e),
        }
    }

    /// Takes the tail into the fresh store, makes it durable and active,
    /// and puts it in the slot; the old store is retired (its folder goes
    /// when the last read holding it lets go). The stream's end and the
    /// fresh store's progress.
    async fn switch(&mut self, rebuild: &Rebuild) -> Result<(Progress, u64), Error> {
        let failed =
            |e: hub_store::Error| Error::unavailable_from("the rebuild's fresh store failed", e);
        let tail = last_sequence(self.consumer.source.as_ref()).await?;
        rebuild
            .consumer
            .run_until(rebuild.fresh.clone(), false, Some(tail))
            .await
            .map_err(failed)?;
        // Durable in its files before it takes over.
        let progress = {
            let fresh = rebuild.fresh.clone();
            on_storage(move || {
                fresh.end_bulk()?;
                fresh.progress()
            })
            .await
            .map_err(failed)?
        };
        set_active(&self.data_dir, &rebuild.dir)?;
        let old = self.slot.send_replace(rebuild.fresh.clone());
        old.retire();
        drop(old);
        self.upgrading.send_replace(false);
        self.consumer.progress.send_replace(progress);
        Ok((progress, tail))
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
