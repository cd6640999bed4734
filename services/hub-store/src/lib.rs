//! RocksDB for the projections.
//!
//! A projection's store holds its read model and, in the same database, the
//! last stream sequence whose effect is in it. Both change together in one
//! `WriteBatch` (atomic in RocksDB's write-ahead log): after any crash the
//! store is either before or after an event, never half-way, and a
//! redelivered event (sequence ≤ applied) is skipped. That is what makes the
//! effect exactly-once.
//!
//! The batch is written to the log without an fsync. A killed process loses
//! nothing (the log is in the kernel's hands once the write returns); a
//! machine crash or power cut may lose the last batches, data and applied
//! sequence together, and the projection then re-applies them from the
//! stream, which it resumes from its own applied sequence (not from
//! JetStream's acknowledgements). The stream is the system of record; an
//! fsync per batch bought nothing the stream does not already give, and cost
//! replay speed (hub-bench: 23,504 and 25,790 events/s with sync against
//! 31,530 and 29,545 without, two runs each, `--scale quick --commands
//! 100000 --national-events 200000`).
//!
//! # Layout
//! - [`KeyKind`]: the fixed one-byte prefixes that partition the key space.
//! - [`Store`]: open, read, scan, commit.
//! - [`Txn`]: changes staged over the store and read back before commit.
//! - [`Kv`]: what projection logic sees of a store ([`Txn`], or [`MemKv`] in tests).
//! - [`error`]: the crate's error type.

pub mod error;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use rocksdb::{
    BlockBasedOptions, Cache, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

pub use error::Error;

/// The first byte of every key. Values are never reused: a retired kind
/// keeps its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum KeyKind {
    /// Projection metadata (applied sequence, counters, schema).
    Meta = 0x01,
    /// Parked messages by stream sequence.
    Parked = 0x02,
    /// person key → the key of the person it belongs to (its root).
    PersonLink = 0x10,
    /// root \0 member: the keys that belong to a root.
    PersonMember = 0x11,
    /// root → the person's pick-up record.
    PickupRecord = 0x20,
    /// partnership \0 release date \0 root: the list's order; the value is
    /// a copy of the root's `PickupRecord` (empty in stores written before
    /// the copy was kept: read the record then).
    PickupByDate = 0x21,
    /// root \0 episode: a release episode's continuity facts.
    Continuity = 0x22,
    /// partnership \0 released on \0 root \0 episode: continuity by year.
    ContinuityByDate = 0x23,
    /// A person or staff member trained: partnership \0 year \0 quarter \0 group \0 who.
    Trained = 0x30,
    /// root \0 partnership \0 year \0 quarter \0 group: the reverse of `Trained` for people.
    TrainedByPerson = 0x31,
    /// Additive counters: partnership \0 year \0 quarter \0 name → u64.
    Counter = 0x32,
    /// Headcount figures: partnership \0 org \0 occurred (RFC 3339) → u32.
    Headcount = 0x33,
}

/// Memory for each store's block cache, at most (it fills only with blocks
/// read). At 5 million events the pick-up store outgrew 64 MiB and its
/// rebuild cost 22 µs of CPU per event instead of 7–10 (hub-bench); with
/// 512 MiB, 9.7 µs and peak RSS 356 MiB.
const BLOCK_CACHE_BYTES: usize = 512 << 20;

const META_APPLIED: &[u8] = b"applied_sequence";
const META_EVENTS_APPLIED: &[u8] = b"events_applied";
const META_PARKED: &[u8] = b"parked";
const META_SCHEMA: &[u8] = b"schema";

/// Full key: kind byte, then the rest.
pub fn key(kind: KeyKind, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(rest.len() + 1);
    k.push(kind as u8);
    k.extend_from_slice(rest);
    k
}

/// Joins key parts with a 0 byte (parts never contain one).
pub fn parts(items: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in items.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p);
    }
    out
}

/// Rows of a scan: (key without its kind byte, value), in key order.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Where the projection stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Last stream sequence whose effect is stored.
    pub applied_sequence: u64,
    /// Events applied since the store was created.
    pub events_applied: u64,
    /// Messages parked since the store was created.
    pub parked: u64,
}

pub struct Store {
    db: DB,
    path: PathBuf,
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

impl Store {
    pub fn open(path: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::Open(format!("{}: {e}", path.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Applying an event is mostly point reads of keys that often do not
        // exist yet (a person seen for the first time): a Bloom filter per
        // table answers those without reading data blocks, and a block
        // cache keeps the hot index, filter and data blocks in memory.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES));
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);
        opts.set_level_compaction_dynamic_level_bytes(true);
        opts.increase_parallelism(2);
        let db =
            DB::open(&opts, path).map_err(|e| Error::Open(format!("{}: {e}", path.display())))?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, kind: KeyKind, rest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.db.get(key(kind, rest))?)
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
        Ok(self
            .db
            .put(key(KeyKind::Meta, META_SCHEMA), version.to_be_bytes())?)
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
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
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
        Ok(self.db.flush()?)
    }
}

/// What projection logic reads and writes: a key space partitioned by
/// [`KeyKind`]. Implemented by [`Txn`] (RocksDB, staged) and [`MemKv`]
/// (tests), so the logic itself stays free of I/O.
pub trait Kv {
    fn get(&self, kind: KeyKind, rest: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    fn put(&mut self, kind: KeyKind, rest: &[u8], value: Vec<u8>);
    fn delete(&mut self, kind: KeyKind, rest: &[u8]);
    /// Keys of `kind` under `prefix`, in key order.
    fn scan(&self, kind: KeyKind, prefix: &[u8]) -> Result<Rows, Error>;
}

/// An in-memory [`Kv`] for tests of pure projection logic.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemKv(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl Kv for MemKv {
    fn get(&self, kind: KeyKind, rest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.0.get(&key(kind, rest)).cloned())
    }
    fn put(&mut self, kind: KeyKind, rest: &[u8], value: Vec<u8>) {
        self.0.insert(key(kind, rest), value);
    }
    fn delete(&mut self, kind: KeyKind, rest: &[u8]) {
        self.0.remove(&key(kind, rest));
    }
    fn scan(&self, kind: KeyKind, prefix: &[u8]) -> Result<Rows, Error> {
        let start = key(kind, prefix);
        Ok(self
            .0
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .map(|(k, v)| (k[1..].to_vec(), v.clone()))
            .collect())
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
            None => Ok(self.store.db.get(k)?),
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
    /// (logged, not fsynced: see the module documentation).
    pub fn commit(self, progress: Progress) -> Result<(), Error> {
        let mut batch = WriteBatch::default();
        for (k, v) in self.staged {
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
        self.store.db.write_opt(batch, &opts)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
