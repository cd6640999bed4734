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

#[cfg(feature = "rocksdb")]
mod rocks;

use std::collections::BTreeMap;

pub use error::Error;
#[cfg(feature = "rocksdb")]
pub use rocks::{Store, Txn};

/// The first byte of every key. Values are never reused: a retired kind
/// keeps its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum KeyKind {
    /// Projection metadata (applied sequence, counters, schema).
    Meta = 0x01,
    /// Parked messages by stream sequence.
    Parked = 0x02,
    /// Retired (layout 1, national identity): person key → root.
    PersonLink = 0x10,
    /// Retired (layout 1, national identity): root \0 member.
    PersonMember = 0x11,
    /// partnership \0 person key → the key's `KeyRecord` (its root there).
    IdentityKey = 0x12,
    /// partnership \0 root \0 member: the keys of a person there.
    IdentityMember = 0x13,
    /// partnership \0 key \0 other key → when the two were first named
    /// together there (both directions are kept).
    IdentitySighting = 0x14,
    /// partnership \0 key \0 other key → a data steward's decision about
    /// the two (both directions, each saying whether it was `person_a`).
    IdentityDecision = 0x15,
    /// partnership \0 root \0 other root → a potential duplicate pair
    /// (both directions).
    IdentityDuplicate = 0x16,
    /// partnership \0 person key \0 sequence → an event the projection
    /// uses about the person named first in it (to fold people again when
    /// who is whom changes).
    PersonFact = 0x17,
    /// Retired before use: person key \0 partnership.
    KeyPartnership = 0x18,
    /// Retired (layout 1): root → the person's pick-up record.
    PickupRecord = 0x20,
    /// partnership \0 release date \0 root: the list's order; the value is
    /// a copy of the root's `PickupRecord` (empty in stores written before
    /// the copy was kept: read the record then).
    PickupByDate = 0x21,
    /// Retired (layout 1): root \0 episode.
    Continuity = 0x22,
    /// partnership \0 released on \0 root \0 episode: continuity by year.
    ContinuityByDate = 0x23,
    /// partnership \0 root → the person's pick-up record there.
    PickupPerson = 0x24,
    /// partnership \0 root \0 episode: a release episode's continuity facts.
    ContinuityOf = 0x25,
    /// person key \0 partnership → when an event of that partnership last
    /// named the key (seconds, big-endian i64): retention.
    LastSeen = 0x26,
    /// A person or staff member trained: partnership \0 year \0 quarter \0 group \0 who.
    Trained = 0x30,
    /// root \0 partnership \0 year \0 quarter \0 group: the reverse of
    /// `Trained` for people (roots are per partnership since layout 3).
    TrainedByPerson = 0x31,
    /// Additive counters: partnership \0 year \0 quarter \0 name → u64.
    Counter = 0x32,
    /// Headcount figures: partnership \0 org \0 occurred (RFC 3339) → u32.
    Headcount = 0x33,
}

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
