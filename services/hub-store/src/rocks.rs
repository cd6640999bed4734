//! The RocksDB store (feature `rocksdb`, on by default; off, the crate is
//! only the key space and [`crate::MemKv`], for pure projection logic and
//! its fuzzing).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        PoisonError, RwLock,
    },
};

use rocksdb::{
    BlockBasedOptions, Cache, Direction, IngestExternalFileOptions, IteratorMode, Options,
    ReadOptions, SstFileWriter, WriteBatch, WriteOptions, DB,
};

use crate::{key, Error, KeyKind, Kv, Progress, Rows};

/// Memory for each store's block cache, at most (it fills only with blocks
/// read). At 5 million events the pick-up store outgrew 64 MiB and its
/// rebuild cost 22 µs of CPU per event instead of 7–10 (hub-bench); with
/// 512 MiB, 9.7 µs and peak RSS 356 MiB.
const BLOCK_CACHE_BYTES: usize = 512 << 20;

/// RocksDB's settings during a bulk load (see [`Store::begin_bulk`]): the
/// sorted files the load writes are not compacted, and their number never
/// stalls a write (a national year writes a handful).
const BULK_OPTIONS: &[(&str, &str)] = &[
    ("disable_auto_compactions", "true"),
    ("level0_slowdown_writes_trigger", "1000"),
    ("level0_stop_writes_trigger", "1000"),
];
/// RocksDB's defaults for what [`BULK_OPTIONS`] changes.
const SERVING_OPTIONS: &[(&str, &str)] = &[
    ("disable_auto_compactions", "false"),
    ("level0_slowdown_writes_trigger", "20"),
    ("level0_stop_writes_trigger", "36"),
];

/// How much a bulk load folds in memory (keys, values and a map entry's
/// overhead, estimated) before it writes what it holds out as one sorted
/// file: at most this much more resident memory during a rebuild.
const FOLD_BYTES: usize = 256 << 20;
/// What a folded entry costs beyond its key (held twice) and value, about:
/// the hash map's slot, the ordered set's share of a node, and three
/// allocations' headers.
const FOLD_ENTRY_BYTES: usize = 96;
/// Where a bulk load writes its sorted files before RocksDB takes them in.
const FOLD_DIR: &str = "bulk";

/// A bulk load's writes since its last sorted file, newest value of each
/// key (`None`: deleted).
///
/// Point reads and rewrites of a key already folded (most of a replay's
/// storage work: a person's record, a counter) go to a hash map; only a
/// key folded for the first time goes into the ordered set that scans and
/// the sorted file read. A `BTreeMap` of values alone spent a third of the
/// pick-up projection's replay CPU comparing keys.
struct Fold {
    rows: HashMap<Vec<u8>, Option<Vec<u8>>>,
    order: BTreeSet<Vec<u8>>,
    /// Estimated memory of `rows` and `order`.
    bytes: usize,
    /// Written out once `bytes` passes this.
    limit: usize,
    /// Sorted files written so far (each one's name).
    written: u32,
}

impl Fold {
    fn new(limit: usize) -> Self {
        Self {
            rows: HashMap::new(),
            order: BTreeSet::new(),
            bytes: 0,
            limit,
            written: 0,
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.rows.get(key)
    }

    fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let size = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
        self.bytes += size(&value);
        match self.rows.get_mut(&key) {
            Some(old) => {
                self.bytes -= size(old);
                *old = value;
            }
            None => {
                self.bytes += 2 * key.len() + FOLD_ENTRY_BYTES;
                self.order.insert(key.clone());
                self.rows.insert(key, value);
            }
        }
    }

    /// Every folded key in order with its newest value.
    fn sorted(&self) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> + '_ {
        self.order.iter().map(|k| (k, &self.rows[k]))
    }

    /// The newest value of each key in `[start, end)`, or from `start` on
    /// while keys start with `start` when there is no `end`.
    fn range<'a>(
        &'a self,
        start: &'a [u8],
        end: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a {
        self.order
            .range::<[u8], _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .take_while(move |k| match end {
                Some(end) => k.as_slice() < end,
                None => k.starts_with(start),
            })
            .map(|k| (k, &self.rows[k]))
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.order.clear();
        self.bytes = 0;
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
    /// Being loaded in bulk (see [`Store::begin_bulk`]): what commits
    /// wrote since the last sorted file.
    fold: RwLock<Option<Fold>>,
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

/// How every table file is written: compressed, with a Bloom filter.
fn file_options(table: &mut BlockBasedOptions) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Applying an event is mostly point reads of keys that often do not
    // exist yet (a person seen for the first time): a Bloom filter per
    // table answers those without reading data blocks.
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(table);
    opts
}

fn open_db(path: &Path) -> Result<DB, Error> {
    std::fs::create_dir_all(path).map_err(|e| Error::open(path, e))?;
    // A block cache keeps the hot index, filter and data blocks in memory.
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES));
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut opts = file_options(&mut table);
    opts.create_if_missing(true);
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
            fold: RwLock::new(None),
        })
    }

    /// A store at `path` that is not open (it could not be opened): every
    /// call fails until [`Store::reopen`] succeeds.
    pub fn closed(path: &Path) -> Self {
        Self {
            db: RwLock::new(None),
            path: path.to_path_buf(),
            retired: AtomicBool::new(false),
            fold: RwLock::new(None),
        }
    }

    /// Marks the store as replaced: its folder is removed once the last
    /// holder drops it (readers finish on the data they started with).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Loads in bulk from here on: commits fold their changes into memory
    /// (a key written again replaces its value there), and each time that
    /// holds [`FOLD_BYTES`] it is written out as one sorted table file that
    /// RocksDB takes in whole: no write-ahead log, no memtable, nothing
    /// compacted until the load ends. Reads see the fold. A crash loses
    /// what was folded since the last file, so this is only for a store
    /// nobody reads yet and that is thrown away if its loading stops
    /// half-way (a rebuild's fresh store: its folder is removed at start
    /// when it never took over). In a rebuild of a national year the
    /// memtable, the log and the flushes were most of the projections'
    /// storage CPU (BENCHMARKS.md, "Bulk replay" and "Folding a rebuild in
    /// memory"). End with [`Store::end_bulk`].
    pub fn begin_bulk(&self) -> Result<(), Error> {
        self.begin_bulk_folding(FOLD_BYTES)
    }

    fn begin_bulk_folding(&self, limit: usize) -> Result<(), Error> {
        self.with_db(|db| Ok(db.set_options(BULK_OPTIONS)?))?;
        *self.fold.write().unwrap_or_else(PoisonError::into_inner) = Some(Fold::new(limit));
        Ok(())
    }

    /// Ends a bulk load: writes out what is folded in memory, so everything
    /// committed is in the store's files (durable as after logged
    /// commits), logs commits again, and lets RocksDB compact the files the
    /// load left (in the background: reads are correct meanwhile, if
    /// slower).
    pub fn end_bulk(&self) -> Result<(), Error> {
        let mut fold = self.fold.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(fold) = fold.as_mut() {
            self.write_out(fold)?;
        }
        *fold = None;
        drop(fold);
        // The schema and anything else written past the fold.
        self.flush()?;
        let _ = std::fs::remove_dir(self.path.join(FOLD_DIR));
        self.with_db(|db| Ok(db.set_options(SERVING_OPTIONS)?))
    }

    /// Writes what `fold` holds as one sorted table file (a deleted key as
    /// a deletion, hiding any older value in earlier files), has RocksDB
    /// take the file in, and empties the fold.
    fn write_out(&self, fold: &mut Fold) -> Result<(), Error> {
        if fold.rows.is_empty() {
            return Ok(());
        }
        let dir = self.path.join(FOLD_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::open(&dir, e))?;
        let file = dir.join(format!("{:06}.sst", fold.written));
        let opts = file_options(&mut BlockBasedOptions::default());
        let mut writer = SstFileWriter::create(&opts);
        writer.open(&file)?;
        for (k, v) in fold.sorted() {
            match v {
                Some(v) => writer.put(k, v)?,
                None => writer.delete(k)?,
            }
        }
        writer.finish()?;
        let mut ingest = IngestExternalFileOptions::default();
        ingest.set_move_files(true);
        self.with_db(|db| Ok(db.ingest_external_file_opts(&ingest, vec![&file])?))?;
        // Moved is linked: the file's first name may remain.
        let _ = std::fs::remove_file(&file);
        fold.clear();
        fold.written += 1;
        Ok(())
    }

    /// The newest value of `k`: folded in memory during a bulk load, else
    /// the database's.
    fn lookup(&self, k: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(fold) = self
            .fold
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            if let Some(v) = fold.get(k) {
                return Ok(v.clone());
            }
        }
        self.with_db(|db| Ok(db.get(k)?))
    }

    /// Closes the database and opens it again from its files. After a
    /// failed write (disk full, I/O error) RocksDB refuses every later
    /// write until reopened; reopening replays its log, so what was
    /// committed is kept and the failed batch is not. Fails, leaving the
    /// store closed, while the fault lasts.
    pub fn reopen(&self) -> Result<(), Error> {
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
        self.lookup(&key(kind, rest))
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
        let (k, v) = (key(KeyKind::Meta, META_SCHEMA), version.to_be_bytes());
        match self
            .fold
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(fold) => {
                fold.insert(k, Some(v.to_vec()));
                Ok(())
            }
            None => self.with_db(|db| Ok(db.put(k, v)?)),
        }
    }

    /// Every (rest of key, value) of `kind` whose rest starts with `prefix`,
    /// in key order.
    pub fn scan(&self, kind: KeyKind, prefix: &[u8]) -> Result<Rows, Error> {
        self.range(kind, prefix, None)
    }

    /// Keys of `kind` from `from` (inclusive) while they are `< to` (when
    /// given) and start with `from`'s kind.
    pub fn range(&self, kind: KeyKind, from: &[u8], to: Option<&[u8]>) -> Result<Rows, Error> {
        let start = key(kind, from);
        let end = to.map(|t| key(kind, t));
        // RocksDB stops at the bound itself, rather than reading on into
        // whatever comes after the range (the next kind's keys, or
        // deleted ones) to find the first key past it.
        let mut read = ReadOptions::default();
        if let Some(bound) = end.clone().or_else(|| successor(&start)) {
            read.set_iterate_upper_bound(bound);
        }
        let stored = self.with_db(|db| {
            let mut out = Vec::new();
            for item in db.iterator_opt(IteratorMode::From(&start, Direction::Forward), read) {
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
        })?;
        let fold = self.fold.read().unwrap_or_else(PoisonError::into_inner);
        let Some(fold) = fold.as_ref() else {
            return Ok(stored);
        };
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for (k, v) in fold.range(&start, end.as_deref()) {
            match v {
                Some(v) => merged.insert(k[1..].to_vec(), v.clone()),
                None => merged.remove(&k[1..]),
            };
        }
        Ok(merged.into_iter().collect())
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
        match self.staged.get(&k) {
            Some(v) => Ok(v.clone()),
            None => self.store.lookup(&k),
        }
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
    /// load, folded in memory: see [`Store::begin_bulk`]).
    pub fn commit(self, progress: Progress) -> Result<(), Error> {
        let progress = [
            (META_APPLIED, progress.applied_sequence),
            (META_EVENTS_APPLIED, progress.events_applied),
            (META_PARKED, progress.parked),
        ]
        .map(|(name, n)| (key(KeyKind::Meta, name), n.to_be_bytes()));
        let mut fold = self
            .store
            .fold
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(fold) = fold.as_mut() {
            for (k, v) in self.staged {
                fold.insert(k, v);
            }
            for (k, n) in progress {
                fold.insert(k, Some(n.to_vec()));
            }
            if fold.bytes >= fold.limit {
                self.store.write_out(fold)?;
            }
            return Ok(());
        }
        drop(fold);
        let mut batch = WriteBatch::default();
        for (k, v) in self.staged {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        for (k, n) in progress {
            batch.put(k, n);
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.store.with_db(|db| Ok(db.write_opt(batch, &opts)?))
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

    /// Every row of the store, through its own reads.
    fn everything(store: &Store) -> Rows {
        store.scan(KeyKind::Counter, b"").unwrap()
    }

    #[test]
    fn a_bulk_load_folded_across_several_files_reads_and_keeps_what_plain_commits_would() {
        // The same commits, into a store loaded in bulk with a fold small
        // enough to be written out many times, and into a plain store.
        let (dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bulk = Store::open(dir.path()).unwrap();
        let plain = Store::open(plain_dir.path()).unwrap();
        bulk.begin_bulk_folding(1000).unwrap();
        for round in 0..40u64 {
            for store in [&bulk, &plain] {
                let mut txn = store.txn();
                for i in 0..10u64 {
                    let k = (round * 3 + i) % 50; // rewrites of earlier keys
                    // Reads see what earlier commits wrote, folded or written out.
                    let before = txn.get(KeyKind::Counter, &k.to_be_bytes()).unwrap();
                    let mut value = before.unwrap_or_default();
                    value.push(round as u8);
                    txn.put(KeyKind::Counter, &k.to_be_bytes(), value);
                }
                if round % 7 == 3 {
                    // Deleted after it reached a written-out file.
                    txn.delete(KeyKind::Counter, &(round % 50).to_be_bytes());
                }
                txn.commit(Progress {
                    applied_sequence: round + 1,
                    ..Default::default()
                })
                .unwrap();
            }
            assert_eq!(everything(&bulk), everything(&plain), "round {round}");
            let (from, to) = (10u64.to_be_bytes(), 20u64.to_be_bytes());
            assert_eq!(
                bulk.range(KeyKind::Counter, &from, Some(&to)).unwrap(),
                plain.range(KeyKind::Counter, &from, Some(&to)).unwrap()
            );
        }
        let files = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sst")
            })
            .count();
        assert!(files > 3, "the fold was written out {files} times");
        assert!(
            log_bytes(dir.path()) < 10_000,
            "bulk commits are not logged: {} bytes",
            log_bytes(dir.path())
        );
        assert_eq!(bulk.progress().unwrap().applied_sequence, 40);
        bulk.end_bulk().unwrap();
        assert!(!dir.path().join(FOLD_DIR).exists());
        let expected = everything(&plain);
        drop(bulk);
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(everything(&reopened), expected);
        assert_eq!(reopened.progress().unwrap().applied_sequence, 40);
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
}
