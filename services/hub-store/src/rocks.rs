//! The RocksDB store (feature `rocksdb`, on by default; off, the crate is
//! only the key space and [`crate::MemKv`], for pure projection logic and
//! its fuzzing).

use std::{
    collections::{BTreeMap, HashSet},
    hash::BuildHasher,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, OnceLock, PoisonError, RwLock,
    },
};

use foldhash::fast::RandomState;

use rocksdb::{
    BlockBasedOptions, Cache, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};

use crate::{key, Error, KeyKind, Kv, Progress, Rows};

/// Memory for the process's block cache, at most (it fills only with
/// blocks read). At 5 million events the pick-up store outgrew 64 MiB and
/// its rebuild cost 22 µs of CPU per event instead of 7–10 (hub-bench);
/// with 512 MiB, 9.7 µs and peak RSS 356 MiB.
const BLOCK_CACHE_BYTES: usize = 512 << 20;

/// The one block cache of every store this process opens. A rebuild holds
/// two stores open (the one serving, the fresh one loading): with a cache
/// each, a projection could hold twice [`BLOCK_CACHE_BYTES`] of blocks by
/// the end of a rebuild once its stores outgrow the budget, as years of
/// stream make them. Shared, the loading store's blocks push out the
/// serving store's least used ones, and the process's cached blocks stay
/// within one budget, the figure operators size a projection's memory by
/// (docs/operations.md, "Memory").
fn block_cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Cache::new_lru_cache(BLOCK_CACHE_BYTES))
}

/// RocksDB's settings during a bulk load (see [`Store::begin_bulk`]): 128
/// MiB memtables instead of 64, flushed into level-0 files that are not
/// compacted, and never a write stall for their number (a national year
/// leaves a few dozen at most). With 32 or 16 MiB the bench's second
/// rebuild was slower, as more level-0 files for each read to look in
/// would make it (BENCHMARKS.md, "A bulk load's sizes").
const BULK_OPTIONS: &[(&str, &str)] = &[
    ("write_buffer_size", "134217728"),
    ("disable_auto_compactions", "true"),
    ("level0_slowdown_writes_trigger", "1000"),
    ("level0_stop_writes_trigger", "1000"),
];
/// RocksDB's defaults for what [`BULK_OPTIONS`] changes.
const SERVING_OPTIONS: &[(&str, &str)] = &[
    ("write_buffer_size", "67108864"),
    ("disable_auto_compactions", "false"),
    ("level0_slowdown_writes_trigger", "20"),
    ("level0_stop_writes_trigger", "36"),
];

/// Set members a bulk load remembers at most ([`Members`]): 3.5 million
/// fit a hash table of 2^22 slots of 17 bytes: 68 MiB (and for a moment
/// 102 MiB, while it grows from 2^21 slots).
const MEMBERS_REMEMBERED: usize = 3_500_000;

/// Which set members ([`KeyKind::MEMBERS`]) a store being loaded in bulk
/// holds, so that asking whether one is there costs a hash lookup rather
/// than a RocksDB read. The activity projection asks for every needle
/// exchange whether its client code and pharmacy are already counted in
/// the quarter: a third of its replay's CPU went in those reads
/// (BENCHMARKS.md, "Where the activity projection's replay goes").
///
/// Each member is remembered by a 128-bit hash of its key under keys drawn
/// at random for the process (two 64-bit hashes), so a million members
/// take 16 MB of hashes rather than the 50–100 MB of their keys, and no
/// one can choose keys that collide. Only what was committed is
/// remembered. While the index is *complete* (the store held no members
/// when the load began, and none was forgotten for the bound) a member it
/// does not know is not in the store either, and is not looked for there.
struct Members {
    hashers: (RandomState, RandomState),
    seen: HashSet<u128, RandomState>,
    complete: bool,
    bound: usize,
}

/// What the index says of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Present,
    Absent,
    Unknown,
}

impl Members {
    fn new(complete: bool, bound: usize) -> Self {
        Self {
            hashers: (RandomState::default(), RandomState::default()),
            seen: HashSet::default(),
            complete,
            bound,
        }
    }

    fn hash(&self, key: &[u8]) -> u128 {
        (u128::from(self.hashers.0.hash_one(key)) << 64) | u128::from(self.hashers.1.hash_one(key))
    }

    fn knows(&self, key: &[u8]) -> Known {
        if self.seen.contains(&self.hash(key)) {
            Known::Present
        } else if self.complete {
            Known::Absent
        } else {
            Known::Unknown
        }
    }

    /// Remembers a committed member; past the bound, the index goes on
    /// answering for what it holds but no longer for what it does not.
    fn insert(&mut self, hash: u128) {
        if self.seen.len() < self.bound {
            self.seen.insert(hash);
        } else if !self.seen.contains(&hash) {
            self.complete = false;
        }
    }
}

const META_APPLIED: &[u8] = b"applied_sequence";
const META_EVENTS_APPLIED: &[u8] = b"events_applied";
const META_PARKED: &[u8] = b"parked";
const META_SCHEMA: &[u8] = b"schema";

pub struct Store {
    /// `None` while closed: after a failure, until [`Store::reopen`]
    /// succeeds.
    db: RwLock<Option<DB>>,
    path: PathBuf,
    /// Replaced by a rebuild: its folder goes when the store is dropped,
    /// that is when its last reader lets go of it.
    retired: AtomicBool,
    /// Being loaded in bulk (see [`Store::begin_bulk`]): commits skip the
    /// write-ahead log.
    bulk: AtomicBool,
    /// During a bulk load, the set members the store holds. Locked by the
    /// store's one writer only (its transactions), never by readers.
    members: Mutex<Option<Members>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.retired.load(Ordering::Acquire) {
            return;
        }
        // Closed first: RocksDB holds files open (and its lock) until then.
        drop(
            self.db
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let path = std::mem::take(&mut self.path);
        let remove = move || match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::info!(dir = %path.display(), "removed a replaced store"),
            Err(e) => {
                tracing::warn!(error = %e, dir = %path.display(), "removing a replaced store")
            }
        };
        // A whole store's files, and the last holder may be a query on an
        // async worker: on a thread of its own (a rebuild is rare).
        if let Err(e) = std::thread::Builder::new()
            .name("remove-store".into())
            .spawn(remove)
        {
            tracing::warn!(error = %e, "cannot start a thread to remove a replaced store");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

fn read_u64(v: Option<Vec<u8>>) -> Result<u64, Error> {
    match v {
        None => Ok(0),
        Some(b) => {
            Ok(u64::from_be_bytes(b.as_slice().try_into().map_err(
                |_| Error::Corrupt("a counter is not 8 bytes".into()),
            )?))
        }
    }
}

/// The first key after every key that starts with `prefix` (`None` when
/// there is none: the prefix is all 0xFF).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xFF {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// The size of a store's table files (`*.sst`) in `dir`: what its rows
/// take on disk once flushed, without the log and RocksDB's own files.
pub fn table_file_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "sst") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

fn open_db(path: &Path) -> Result<DB, Error> {
    std::fs::create_dir_all(path).map_err(|e| Error::open(path, e))?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    // Newly flushed files are compressed fast (LZ4); the last level, where
    // nearly every row of a store that has served a while lies, with
    // Zstandard. Most key bytes are hexadecimal keyed hashes, which LZ4
    // cannot shrink and Zstandard's entropy coding nearly halves: the same
    // rows took 29–37 % less disk than with LZ4 (decision record 0014;
    // BENCHMARKS.md, "Zstandard for the stores' last level").
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
    // Applying an event is mostly point reads of keys that often do not
    // exist yet (a person seen for the first time): a Bloom filter per
    // table answers those without reading data blocks, and a block
    // cache keeps the hot index, filter and data blocks in memory.
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(block_cache());
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    opts.set_block_based_table_factory(&table);
    // The same for the memtable: a lookup of a key it does not hold (most
    // lookups) is answered by a Bloom filter instead of a search of the
    // skip list, which took 10–19 % of a projection's CPU in a rebuild.
    opts.set_memtable_prefix_bloom_ratio(0.05);
    opts.set_memtable_whole_key_filtering(true);
    // A counter is rewritten by every event it counts, always 8 bytes:
    // updated in place in the memtable, rather than piling up a version
    // per event that every scan of its prefix must step over (a national
    // comparison right after a recorded year spent most of its time so).
    // The store has one writer (the projection's engine task), reads take
    // no snapshots and iterate forwards only, as this requires.
    opts.set_allow_concurrent_memtable_write(false);
    opts.set_inplace_update_support(true);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.increase_parallelism(2);
    // Each reopen after a failure starts a new info log: keep a few.
    opts.set_keep_log_file_num(5);
    DB::open(&opts, path).map_err(|e| Error::open(path, e))
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(Self {
            db: RwLock::new(Some(open_db(path)?)),
            path: path.to_path_buf(),
            retired: AtomicBool::new(false),
            bulk: AtomicBool::new(false),
            members: Mutex::new(None),
        })
    }

    /// A store at `path` that is not open (it could not be opened): every
    /// call fails until [`Store::reopen`] succeeds.
    pub fn closed(path: &Path) -> Self {
        Self {
            db: RwLock::new(None),
            path: path.to_path_buf(),
            retired: AtomicBool::new(false),
            bulk: AtomicBool::new(false),
            members: Mutex::new(None),
        }
    }

    /// Marks the store as replaced: its folder is removed once the last
    /// holder drops it (readers finish on the data they started with).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Loads in bulk from here on: commits skip the write-ahead log, so
    /// what they write lives in memory until RocksDB flushes it, and a
    /// crash loses it; memtables are larger ([`BULK_OPTIONS`]) and nothing
    /// is compacted until the load ends. Only for a store nobody reads yet
    /// and that is thrown away if its loading stops half-way (a rebuild's
    /// fresh store: its folder is removed at start when it never took
    /// over). In a rebuild of a national year, the log and the compactions
    /// cost the pick-up projection about a third of its CPU
    /// (BENCHMARKS.md, "Bulk replay"). Until it ends, the store also
    /// remembers which set members it holds ([`Members`]). End with
    /// [`Store::end_bulk`].
    pub fn begin_bulk(&self) -> Result<(), Error> {
        self.begin_bulk_remembering(MEMBERS_REMEMBERED)
    }

    fn begin_bulk_remembering(&self, bound: usize) -> Result<(), Error> {
        self.with_db(|db| Ok(db.set_options(BULK_OPTIONS)?))?;
        let mut empty = true;
        for kind in KeyKind::MEMBERS {
            empty &= !self.holds_any(*kind)?;
        }
        *self.members() = Some(Members::new(empty, bound));
        self.bulk.store(true, Ordering::Release);
        Ok(())
    }

    /// Ends a bulk load: flushes what is in memory to the store's files, so
    /// everything committed is durable as after logged commits, logs
    /// commits again, lets RocksDB compact the files the load left (in
    /// the background: reads are correct meanwhile, if slower), and
    /// forgets the set members it remembered.
    pub fn end_bulk(&self) -> Result<(), Error> {
        self.flush()?;
        self.bulk.store(false, Ordering::Release);
        if let Some(members) = self.members().take() {
            tracing::debug!(
                members = members.seen.len(),
                complete = members.complete,
                "a bulk load's set members forgotten"
            );
        }
        self.with_db(|db| Ok(db.set_options(SERVING_OPTIONS)?))
    }

    /// The index of set members of a bulk load.
    fn members(&self) -> std::sync::MutexGuard<'_, Option<Members>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the store holds any row of `kind` (one seek).
    fn holds_any(&self, kind: KeyKind) -> Result<bool, Error> {
        Ok(!self.rows(kind, b"", None, 1)?.is_empty())
    }

    /// Closes the database and opens it again from its files. After a
    /// failed write (disk full, I/O error) RocksDB refuses every later
    /// write until reopened; reopening replays its log, so what was
    /// committed is kept and the failed batch is not. Fails, leaving the
    /// store closed, while the fault lasts.
    pub fn reopen(&self) -> Result<(), Error> {
        // What a bulk load remembered may not have reached the files. (The
        // index is let go before the database is locked: a commit takes
        // them in that order.)
        *self.members() = None;
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        *db = None; // closed first: RocksDB's lock is held by the old handle
        *db = Some(open_db(&self.path)?);
        Ok(())
    }

    /// Runs `f` on the open database.
    fn with_db<T>(&self, f: impl FnOnce(&DB) -> Result<T, Error>) -> Result<T, Error> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        match db.as_ref() {
            Some(db) => f(db),
            None => Err(Error::Closed(self.path.display().to_string())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, kind: KeyKind, rest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.with_db(|db| Ok(db.get(key(kind, rest))?))
    }

    pub fn progress(&self) -> Result<Progress, Error> {
        Ok(Progress {
            applied_sequence: read_u64(self.get(KeyKind::Meta, META_APPLIED)?)?,
            events_applied: read_u64(self.get(KeyKind::Meta, META_EVENTS_APPLIED)?)?,
            parked: read_u64(self.get(KeyKind::Meta, META_PARKED)?)?,
        })
    }

    /// The version of the projection's layout the store was built with
    /// (1 for stores from before versions were kept).
    pub fn schema(&self) -> Result<u32, Error> {
        match self.get(KeyKind::Meta, META_SCHEMA)? {
            None => Ok(1),
            Some(b) => Ok(u32::from_be_bytes(b.as_slice().try_into().map_err(
                |_| Error::Corrupt("the schema version is not 4 bytes".into()),
            )?)),
        }
    }

    /// Records the layout version (of an empty store, before it applies).
    pub fn set_schema(&self, version: u32) -> Result<(), Error> {
        self.with_db(|db| Ok(db.put(key(KeyKind::Meta, META_SCHEMA), version.to_be_bytes())?))
    }

    /// Every (rest of key, value) of `kind` whose rest starts with `prefix`,
    /// in key order.
    pub fn scan(&self, kind: KeyKind, prefix: &[u8]) -> Result<Rows, Error> {
        self.range(kind, prefix, None)
    }

    /// Keys of `kind` from `from` (inclusive) while they are `< to` (when
    /// given) and start with `from`'s kind.
    pub fn range(&self, kind: KeyKind, from: &[u8], to: Option<&[u8]>) -> Result<Rows, Error> {
        self.rows(kind, from, to, usize::MAX)
    }

    /// The first `limit` rows of [`Store::range`].
    fn rows(
        &self,
        kind: KeyKind,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, Error> {
        let start = key(kind, from);
        let end = to.map(|t| key(kind, t));
        // RocksDB stops at the bound itself, rather than reading on into
        // whatever comes after the range (the next kind's keys, or
        // deleted ones) to find the first key past it.
        let mut read = ReadOptions::default();
        if let Some(bound) = end.clone().or_else(|| successor(&start)) {
            read.set_iterate_upper_bound(bound);
        }
        self.with_db(|db| {
            let mut out = Vec::new();
            let rows = db.iterator_opt(IteratorMode::From(&start, Direction::Forward), read);
            for item in rows.take(limit) {
                let (k, v) = item?;
                if k.first() != Some(&(kind as u8)) {
                    break;
                }
                match &end {
                    Some(end) => {
                        if k.as_ref() >= end.as_slice() {
                            break;
                        }
                    }
                    None => {
                        if !k.starts_with(&start) {
                            break;
                        }
                    }
                }
                out.push((k[1..].to_vec(), v.to_vec()));
            }
            Ok(out)
        })
    }

    /// A transaction over this store.
    pub fn txn(&self) -> Txn<'_> {
        Txn {
            store: self,
            staged: BTreeMap::new(),
        }
    }

    /// Flushes memtables to disk (at shutdown).
    pub fn flush(&self) -> Result<(), Error> {
        self.with_db(|db| Ok(db.flush()?))
    }
}

impl Kv for Txn<'_> {
    fn get(&self, kind: KeyKind, rest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Txn::get(self, kind, rest)
    }
    fn put(&mut self, kind: KeyKind, rest: &[u8], value: Vec<u8>) {
        Txn::put(self, kind, rest, value)
    }
    fn delete(&mut self, kind: KeyKind, rest: &[u8]) {
        Txn::delete(self, kind, rest)
    }
    fn scan(&self, kind: KeyKind, prefix: &[u8]) -> Result<Rows, Error> {
        Txn::scan(self, kind, prefix)
    }
}

/// Changes staged over a [`Store`]; reads see them. Nothing reaches the
/// database until [`Txn::commit`].
pub struct Txn<'a> {
    store: &'a Store,
    staged: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Txn<'_> {
    pub fn get(&self, kind: KeyKind, rest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let k = key(kind, rest);
        if let Some(v) = self.staged.get(&k) {
            return Ok(v.clone());
        }
        // A set member a bulk load remembers (or knows is not there) needs
        // no read of the store.
        if KeyKind::is_member_key(&k) {
            match self.store.members().as_ref().map(|m| m.knows(&k)) {
                Some(Known::Present) => return Ok(Some(Vec::new())),
                Some(Known::Absent) => return Ok(None),
                Some(Known::Unknown) | None => {}
            }
        }
        self.store.with_db(|db| Ok(db.get(k)?))
    }

    pub fn put(&mut self, kind: KeyKind, rest: &[u8], value: Vec<u8>) {
        self.staged.insert(key(kind, rest), Some(value));
    }

    pub fn delete(&mut self, kind: KeyKind, rest: &[u8]) {
        self.staged.insert(key(kind, rest), None);
    }

    /// Keys of `kind` under `prefix`, staged changes included.
    pub fn scan(&self, kind: KeyKind, prefix: &[u8]) -> Result<Rows, Error> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            self.store.scan(kind, prefix)?.into_iter().collect();
        let start = key(kind, prefix);
        for (k, v) in self.staged.range(start.clone()..) {
            if !k.starts_with(&start) {
                break;
            }
            match v {
                Some(v) => merged.insert(k[1..].to_vec(), v.clone()),
                None => merged.remove(&k[1..]),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// Writes every staged change and the new progress in one atomic batch
    /// (logged, not fsynced: see the module documentation; during a bulk
    /// load, not logged).
    pub fn commit(self, progress: Progress) -> Result<(), Error> {
        let mut members = self.store.members();
        // The members this commit adds, remembered once it succeeds. A
        // member changed or deleted breaks the kind's promise: the index
        // is dropped rather than trusted.
        let mut added = Vec::new();
        let mut batch = WriteBatch::default();
        for (k, v) in self.staged {
            if let Some(index) = members.as_ref() {
                if KeyKind::is_member_key(&k) {
                    match &v {
                        Some(v) if v.is_empty() => added.push(index.hash(&k)),
                        _ => *members = None,
                    }
                }
            }
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        batch.put(
            key(KeyKind::Meta, META_APPLIED),
            progress.applied_sequence.to_be_bytes(),
        );
        batch.put(
            key(KeyKind::Meta, META_EVENTS_APPLIED),
            progress.events_applied.to_be_bytes(),
        );
        batch.put(
            key(KeyKind::Meta, META_PARKED),
            progress.parked.to_be_bytes(),
        );
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        opts.disable_wal(self.store.bulk.load(Ordering::Acquire));
        self.store.with_db(|db| Ok(db.write_opt(batch, &opts)?))?;
        if let Some(index) = members.as_mut() {
            for hash in added {
                index.insert(hash);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parts;

    #[test]
    fn a_retired_store_is_removed_when_its_last_holder_lets_go_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store-1");
        let store = std::sync::Arc::new(Store::open(&path).unwrap());
        let mut txn = store.txn();
        txn.put(KeyKind::Meta, b"k", b"v".to_vec());
        txn.commit(Progress::default()).unwrap();
        let reader = store.clone();
        store.retire();
        drop(store);
        assert!(path.exists(), "a reader still holds it");
        assert_eq!(reader.get(KeyKind::Meta, b"k").unwrap().unwrap(), b"v");
        drop(reader);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while path.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!path.exists(), "removed once the last holder dropped it");
        // A store that was not retired keeps its folder.
        let kept = dir.path().join("store-2");
        drop(Store::open(&kept).unwrap());
        assert!(kept.exists());
    }

    #[test]
    fn state_and_progress_commit_together_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.progress().unwrap(), Progress::default());
            let mut txn = store.txn();
            txn.put(KeyKind::PickupRecord, b"p1", b"one".to_vec());
            assert_eq!(
                txn.get(KeyKind::PickupRecord, b"p1").unwrap().unwrap(),
                b"one"
            );
            assert!(
                store.get(KeyKind::PickupRecord, b"p1").unwrap().is_none(),
                "not before commit"
            );
            txn.commit(Progress {
                applied_sequence: 7,
                events_applied: 3,
                parked: 1,
            })
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.progress().unwrap(),
            Progress {
                applied_sequence: 7,
                events_applied: 3,
                parked: 1
            }
        );
        assert_eq!(
            store.get(KeyKind::PickupRecord, b"p1").unwrap().unwrap(),
            b"one"
        );
    }

    #[test]
    fn a_closed_store_fails_every_call_until_reopened_and_keeps_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut txn = store.txn();
            txn.put(KeyKind::Counter, b"c", b"1".to_vec());
            txn.commit(Progress {
                applied_sequence: 3,
                ..Default::default()
            })
            .unwrap();
        }
        let store = Store::closed(dir.path());
        assert!(matches!(store.progress(), Err(Error::Closed(_))));
        assert!(store.txn().get(KeyKind::Counter, b"c").is_err());
        store.reopen().unwrap();
        assert_eq!(store.progress().unwrap().applied_sequence, 3);
        store.reopen().unwrap(); // an open store reopens too (its lock is let go first)
        assert_eq!(store.get(KeyKind::Counter, b"c").unwrap().unwrap(), b"1");
    }

    /// Bytes of the store's write-ahead log files.
    fn log_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    }

    fn commit_many(store: &Store, from: u64) {
        for i in from..from + 100 {
            let mut txn = store.txn();
            txn.put(KeyKind::Counter, &i.to_be_bytes(), vec![7; 1024]);
            txn.commit(Progress {
                applied_sequence: i,
                ..Default::default()
            })
            .unwrap();
        }
    }

    #[test]
    fn a_bulk_load_skips_the_log_reads_its_writes_and_is_durable_once_ended() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.begin_bulk().unwrap();
            commit_many(&store, 1);
            assert!(
                log_bytes(dir.path()) < 10_000,
                "bulk commits are not logged: {} bytes",
                log_bytes(dir.path())
            );
            assert_eq!(store.progress().unwrap().applied_sequence, 100);
            assert_eq!(
                store.get(KeyKind::Counter, &50u64.to_be_bytes()).unwrap(),
                Some(vec![7; 1024])
            );
            store.end_bulk().unwrap();
            let before = log_bytes(dir.path());
            commit_many(&store, 101);
            assert!(
                log_bytes(dir.path()) > before + 100 * 1024,
                "after the bulk load, commits are logged again"
            );
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.progress().unwrap().applied_sequence, 200);
        assert_eq!(
            store.get(KeyKind::Counter, &50u64.to_be_bytes()).unwrap(),
            Some(vec![7; 1024])
        );
    }

    fn member(name: &str) -> Vec<u8> {
        parts(&[b"leeds", b"2026-27", b"1", b"nx.clients", name.as_bytes()])
    }

    fn add_member(store: &Store, name: &str, sequence: u64) {
        let mut txn = store.txn();
        txn.put(KeyKind::ActivityMember, &member(name), Vec::new());
        txn.commit(Progress {
            applied_sequence: sequence,
            ..Default::default()
        })
        .unwrap();
    }

    fn has_member(store: &Store, name: &str) -> bool {
        store
            .txn()
            .get(KeyKind::ActivityMember, &member(name))
            .unwrap()
            .is_some()
    }

    #[test]
    fn a_bulk_load_answers_for_set_members_as_the_store_would() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.begin_bulk().unwrap();
        assert!(!has_member(&store, "a"));
        add_member(&store, "a", 1);
        assert!(has_member(&store, "a"));
        assert!(!has_member(&store, "b"));
        // Staged and not yet committed: seen by its own transaction only.
        let mut txn = store.txn();
        txn.put(KeyKind::ActivityMember, &member("b"), Vec::new());
        assert!(txn
            .get(KeyKind::ActivityMember, &member("b"))
            .unwrap()
            .is_some());
        // What a transaction stages comes before what the index says.
        txn.delete(KeyKind::ActivityMember, &member("a"));
        assert!(txn
            .get(KeyKind::ActivityMember, &member("a"))
            .unwrap()
            .is_none());
        drop(txn);
        assert!(
            !has_member(&store, "b"),
            "a dropped transaction added nothing"
        );
        let mut txn = store.txn();
        txn.put(KeyKind::ActivityMember, &member("c"), Vec::new());
        *store.db.write().unwrap() = None;
        assert!(txn.commit(Progress::default()).is_err());
        // (Answered by the index alone: the database is closed.)
        assert!(!has_member(&store, "c"), "a failed commit added nothing");
        assert!(has_member(&store, "a"));
        store.reopen().unwrap();
        assert!(
            store.members().is_none(),
            "a reopened store does not trust what it remembered"
        );
        store.end_bulk().unwrap();
        assert!(store.members().is_none());
        assert!(has_member(&store, "a"), "from the store's files once ended");
    }

    #[test]
    fn members_already_in_a_store_are_read_from_it_during_a_bulk_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        add_member(&store, "before", 1);
        // The store is not empty: members the index does not know may be
        // in its files (a live store catching up).
        store.begin_bulk().unwrap();
        assert!(has_member(&store, "before"));
        add_member(&store, "during", 2);
        assert!(has_member(&store, "during"));
        assert!(!has_member(&store, "never"));
    }

    #[test]
    fn past_its_bound_the_index_reads_the_store_for_what_it_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.begin_bulk_remembering(2).unwrap();
        for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            add_member(&store, name, i as u64 + 1);
        }
        assert!(!store.members().as_ref().unwrap().complete);
        for name in ["a", "b", "c", "d"] {
            assert!(has_member(&store, name), "{name}");
        }
        assert!(!has_member(&store, "e"));
    }

    #[test]
    fn a_member_deleted_or_given_a_value_drops_the_index() {
        for change in [None, Some(vec![1])] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            store.begin_bulk().unwrap();
            add_member(&store, "a", 1);
            let mut txn = store.txn();
            match &change {
                None => txn.delete(KeyKind::ActivityMember, &member("a")),
                Some(v) => txn.put(KeyKind::ActivityMember, &member("a"), v.clone()),
            }
            txn.commit(Progress::default()).unwrap();
            assert!(store.members().is_none(), "{change:?}");
            assert_eq!(
                store
                    .txn()
                    .get(KeyKind::ActivityMember, &member("a"))
                    .unwrap(),
                change,
                "read from the store"
            );
        }
    }

    /// What RocksDB says the block cache of `store` holds, in bytes.
    fn cache_usage(store: &Store) -> u64 {
        store
            .with_db(|db| Ok(db.property_int_value(rocksdb::properties::BLOCK_CACHE_USAGE)?))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn every_store_of_a_process_shares_one_block_cache() {
        let dir = tempfile::tempdir().unwrap();
        let serving = Store::open(&dir.path().join("serving")).unwrap();
        commit_many(&serving, 1);
        serving.flush().unwrap();
        for i in 1..=100u64 {
            assert!(serving
                .get(KeyKind::Counter, &i.to_be_bytes())
                .unwrap()
                .is_some());
        }
        // A store opened afterwards, as a rebuild's, has read nothing, yet
        // reports the blocks the serving store read: the cache is theirs.
        let fresh = Store::open(&dir.path().join("store-2")).unwrap();
        assert!(
            cache_usage(&serving) >= 100 * 1024,
            "{}",
            cache_usage(&serving)
        );
        assert!(cache_usage(&fresh) >= 100 * 1024, "{}", cache_usage(&fresh));
        assert_eq!(
            fresh
                .with_db(|db| Ok(db.property_int_value(rocksdb::properties::BLOCK_CACHE_CAPACITY)?))
                .unwrap(),
            Some(BLOCK_CACHE_BYTES as u64)
        );
    }

    #[test]
    fn the_schema_version_is_1_until_set_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.schema().unwrap(), 1);
            store.set_schema(2).unwrap();
        }
        assert_eq!(Store::open(dir.path()).unwrap().schema().unwrap(), 2);
    }

    #[test]
    fn a_prefix_ends_before_its_successor() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(successor(&[0xFF, 0xFF]), None);
    }

    #[test]
    fn a_dropped_txn_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut txn = store.txn();
        txn.put(KeyKind::PickupRecord, b"p1", b"one".to_vec());
        drop(txn);
        assert!(store.get(KeyKind::PickupRecord, b"p1").unwrap().is_none());
        assert_eq!(store.progress().unwrap().applied_sequence, 0);
    }

    #[test]
    fn scans_stay_in_their_kind_and_prefix_and_see_staged_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut txn = store.txn();
        txn.put(
            KeyKind::PickupByDate,
            &parts(&[b"leeds", b"2026-12-01", b"a"]),
            vec![],
        );
        txn.put(
            KeyKind::PickupByDate,
            &parts(&[b"leeds", b"2026-11-30", b"b"]),
            vec![],
        );
        txn.put(
            KeyKind::PickupByDate,
            &parts(&[b"leedsx", b"2026-11-30", b"c"]),
            vec![],
        );
        txn.put(KeyKind::Counter, b"leeds", vec![]);
        txn.commit(Progress::default()).unwrap();

        let leeds = parts(&[b"leeds", b""]);
        let rows = store.scan(KeyKind::PickupByDate, &leeds).unwrap();
        let keys: Vec<_> = rows.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![
                parts(&[b"leeds", b"2026-11-30", b"b"]),
                parts(&[b"leeds", b"2026-12-01", b"a"])
            ]
        );
        let bounded = store
            .range(
                KeyKind::PickupByDate,
                &parts(&[b"leeds", b"2026-11-30"]),
                Some(&parts(&[b"leeds", b"2026-12-01"])),
            )
            .unwrap();
        assert_eq!(bounded.len(), 1);

        let mut txn = store.txn();
        txn.delete(
            KeyKind::PickupByDate,
            &parts(&[b"leeds", b"2026-11-30", b"b"]),
        );
        txn.put(
            KeyKind::PickupByDate,
            &parts(&[b"leeds", b"2026-12-02", b"d"]),
            vec![],
        );
        let staged = txn.scan(KeyKind::PickupByDate, &leeds).unwrap();
        assert_eq!(staged.len(), 2);
        assert_eq!(staged[1].0, parts(&[b"leeds", b"2026-12-02", b"d"]));
    }

    /// Retention's rows, as a store holds them at national scale: a keyed
    /// hash in hexadecimal and a partnership, and when the key was last
    /// seen. Once compacted into the last level they must take well under
    /// their own size on disk: LZ4 alone left such rows near their full
    /// size (0.78 of it here; Zstandard 0.50), which is what the last
    /// level's Zstandard is for.
    #[test]
    fn hexadecimal_keys_take_well_under_their_size_once_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            // splitmix64: keys as spread as keyed hashes are.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut rows_bytes = 0u64;
        for chunk in 0..20 {
            let mut txn = store.txn();
            for i in 0..5_000u64 {
                let hash = format!("{:016x}{:016x}", next(), next());
                let rest = parts(&[hash.as_bytes(), b"E38000001"]);
                let seen = (1_780_000_000 + chunk * 5_000 + i).to_be_bytes().to_vec();
                rows_bytes += (rest.len() + 1 + seen.len()) as u64;
                txn.put(KeyKind::LastSeen, &rest, seen);
            }
            txn.commit(Progress::default()).unwrap();
        }
        store.flush().unwrap();
        store
            .with_db(|db| {
                let mut compact = rocksdb::CompactOptions::default();
                compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                db.compact_range_opt::<&[u8], &[u8]>(None, None, &compact);
                Ok(())
            })
            .unwrap();
        let on_disk = table_file_bytes(dir.path()).unwrap();
        let ratio = on_disk as f64 / rows_bytes as f64;
        assert!(
            ratio < 0.65,
            "{on_disk} bytes on disk for {rows_bytes} bytes of rows ({ratio:.2})"
        );
    }
}
