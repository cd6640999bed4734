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
pub use rocks::{table_file_bytes, Store, Txn};

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
    /// partnership \0 root → a person's harm-reduction activity there
    /// (advice, referrals, attendances, engagements: activity-projection).
    ActivityPerson = 0x40,
    /// partnership \0 year \0 quarter \0 set \0 member: distinct members
    /// of a period (client codes, pharmacies), counted once.
    ActivityMember = 0x41,
    /// partnership \0 police force \0 trust \0 when (seconds, zero-padded)
    /// \0 sequence → whether a no-routine-attendance protocol is in force.
    AttendanceProtocol = 0x42,
}

impl KeyKind {
    /// Kinds whose rows are set members: written with an empty value, never
    /// changed, never deleted. A store being loaded in bulk remembers which
    /// it holds, so that asking whether one is there costs no read
    /// (`Store::begin_bulk`).
    pub const MEMBERS: &'static [KeyKind] = &[KeyKind::ActivityMember];

    /// Whether the full key `key` (its kind byte first) is of a set member
    /// (see [`KeyKind::MEMBERS`]).
    pub fn is_member_key(key: &[u8]) -> bool {
        key.first()
            .is_some_and(|b| Self::MEMBERS.iter().any(|m| *m as u8 == *b))
    }
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

/// The key prefixes of a partnership's financial year (`year` as
/// `2026-27`) in the layout counts use: `partnership \0 year \0` (its
/// counters) and `partnership \0` (its dated rows, which a year reads
/// from before it began).
pub fn year_prefixes(partnership: &str, year: &str) -> (Vec<u8>, Vec<u8>) {
    (
        parts(&[partnership.as_bytes(), year.as_bytes(), b""]),
        parts(&[partnership.as_bytes(), b""]),
    )
}

/// The counters of a year, as [`year_prefixes`] scans them (keys
/// `partnership \0 year \0 quarter \0 name`, big-endian u64 values):
/// `(quarter (0 for the year, 1-4), name, value)`; rows of another shape
/// are skipped.
pub fn year_counters(rows: &Rows) -> impl Iterator<Item = (usize, &[u8], u64)> {
    rows.iter().filter_map(|(key, value)| {
        let f: Vec<&[u8]> = key.splitn(4, |b| *b == 0).collect();
        let [_, _, q, name] = f.as_slice() else {
            return None;
        };
        let q = std::str::from_utf8(q)
            .ok()?
            .parse::<usize>()
            .ok()
            .filter(|q| *q <= 4)?;
        let n = <[u8; 8]>::try_from(value.as_slice()).ok()?;
        Some((q, *name, u64::from_be_bytes(n)))
    })
}

/// The key of a fact about `subject` (its parts) as at `at` (seconds since
/// 1970) and stream `sequence`: the time zero-padded, so one subject's
/// rows sort by time, then by stream order. For figures that change over
/// time, such as headcounts and protocols (see [`latest_before`]).
pub fn dated_key(subject: &[&[u8]], at: i64, sequence: u64) -> Vec<u8> {
    let when = format!("{:012}", at.max(0));
    let seq = sequence.to_be_bytes();
    let mut all: Vec<&[u8]> = subject.to_vec();
    all.push(when.as_bytes());
    all.push(&seq);
    parts(&all)
}

/// Of `rows` keyed by [`dated_key`] with subjects of `subject_parts`
/// parts, the value of each subject's last row before `end` (seconds
/// since 1970): what was true at that moment. Rows of another shape are
/// skipped.
pub fn latest_before(rows: &Rows, subject_parts: usize, end: i64) -> BTreeMap<Vec<&[u8]>, &[u8]> {
    let mut latest = BTreeMap::new();
    for (key, value) in rows {
        let f: Vec<&[u8]> = key.splitn(subject_parts + 2, |b| *b == 0).collect();
        if f.len() != subject_parts + 2 {
            continue;
        }
        let Some(secs) = std::str::from_utf8(f[subject_parts])
            .ok()
            .and_then(|w| w.parse::<i64>().ok())
        else {
            continue;
        };
        if secs < end {
            // Rows are in key order, so in time order: the last wins.
            latest.insert(f[..subject_parts].to_vec(), value.as_slice());
        }
    }
    latest
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

/// Adds `delta` to the big-endian u64 counter at `rest` of
/// [`KeyKind::Counter`] (never below 0).
pub fn bump<K: Kv>(kv: &mut K, rest: &[u8], delta: i64) -> Result<(), Error> {
    let now = match kv.get(KeyKind::Counter, rest)? {
        Some(b) => u64::from_be_bytes(
            b.as_slice()
                .try_into()
                .map_err(|_| Error::Corrupt("a counter is not 8 bytes".into()))?,
        ),
        None => 0,
    };
    kv.put(
        KeyKind::Counter,
        rest,
        now.saturating_add_signed(delta).to_be_bytes().to_vec(),
    );
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_dated_row_before_a_moment_is_what_was_true_then() {
        let mut kv = MemKv::default();
        let at = |secs: i64, seq: u64, subject: &[&[u8]], v: u8| {
            (dated_key(subject, secs, seq), vec![v])
        };
        for (k, v) in [
            at(100, 1, &[b"leeds", b"force-a"], 1),
            at(200, 2, &[b"leeds", b"force-a"], 2),
            // The same second, later in the stream: it wins.
            at(200, 3, &[b"leeds", b"force-a"], 3),
            at(150, 4, &[b"leeds", b"force-b"], 9),
            // Later than anything else, but an earlier row of its own.
            at(1_000_000_000_000, 5, &[b"leeds", b"force-b"], 7),
        ] {
            kv.put(KeyKind::Headcount, &k, v);
        }
        let rows = kv.scan(KeyKind::Headcount, b"leeds\0").unwrap();
        let at_201 = latest_before(&rows, 2, 201);
        assert_eq!(at_201[&vec![&b"leeds"[..], &b"force-a"[..]]], &[3]);
        assert_eq!(at_201[&vec![&b"leeds"[..], &b"force-b"[..]]], &[9]);
        let at_150 = latest_before(&rows, 2, 150);
        assert_eq!(at_150[&vec![&b"leeds"[..], &b"force-a"[..]]], &[1]);
        assert!(
            !at_150.contains_key(&vec![&b"leeds"[..], &b"force-b"[..]]),
            "not before its first row"
        );
        assert!(
            latest_before(&rows, 2, 100).is_empty(),
            "the end is not included"
        );
        assert_eq!(
            latest_before(&rows, 3, i64::MAX).len(),
            0,
            "rows of another shape are skipped"
        );
    }
}
