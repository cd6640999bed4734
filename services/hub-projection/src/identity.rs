//! Who is whom, per partnership, as every projection sees it.
//!
//! Events name a person by keyed hashes of the identifiers an agency sent
//! (`person_key`, `linked_person_keys`, and which of them is a client
//! code's, `client_key`). Who is the same person is decided **per
//! partnership** (contract section 3), never across partnerships: what
//! Leeds records about an NHS number never moves, merges or reveals
//! anything of Bradford's person with that number.
//!
//! # The rules, as a pure function of what a partnership recorded
//! A partnership's people are [`partition`] of its keys, computed from:
//! - *sightings*: two keys named together in one event (first sequence
//!   and time kept);
//! - *decisions*: a data steward's `LinkPeople` / `UnlinkPeople` about
//!   pairs of keys (the latest decision about a pair is the one kept; a
//!   link also lifts earlier unlinks between the two people as they stood).
//!
//! From these, in this order:
//! 1. steward links join people, oldest first;
//! 2. sightings of two strong identifiers (NHS number, prison number, PNC
//!    id) join people, oldest first;
//! 3. a person known only by client codes joins the one strong person
//!    their code was sighted with; sighted with two or more, they stay
//!    apart, and each pair of those strong people is a potential
//!    duplicate for a steward (unless a steward decided about the pair);
//!
//! and no join ever puts two keys a steward unlinked into one person.
//! A person's root (the `person_key` readers see) is their key first seen
//! (of an event's keys, the strongest).
//!
//! # Why it can be undone
//! Nothing is folded away for good. The rules are re-run over the keys a
//! change can reach (its *component*: keys connected by sightings and
//! links, which no rule can join with anything outside it), and every
//! projection keeps the events it uses as *facts* of the person named
//! first in them ([`KeyKind::PersonFact`]). When people split or merge,
//! the projection forgets the people involved and folds their facts again
//! in stream order ([`PersonModel`]), so its records are always what
//! folding each person's facts would give: live, after an unlink, and in
//! a rebuild alike.
//!
//! A fact that names keys of two people (after an unlink, or a client code
//! shared by two) belongs to one: the `person_a` side of the latest unlink
//! between its keys, else the person of its first strong identifier
//! ([`owner`]).
//!
//! A projection need not resolve every event: one about a single
//! identifier that it does not otherwise use links nobody and is skipped
//! (most of the stream: needle exchange, custody advice), which is most of
//! a projection's speed.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

use hub_proto::events::{event::Payload, Event, PersonKeys};
use hub_store::{parts, Error, KeyKind, Kv};

/// What a partnership knows of one key.
#[derive(Clone, PartialEq, Message)]
pub struct KeyRecord {
    /// The root of the person the key belongs to there.
    #[prost(string, tag = "1")]
    pub root: String,
    /// A client code's key (not a strong identifier).
    #[prost(bool, tag = "2")]
    pub client: bool,
    /// Stream sequence of the first event that named it there.
    #[prost(uint64, tag = "3")]
    pub first_sequence: u64,
    /// Its place among the keys of that event (0: the strongest).
    #[prost(uint32, tag = "4")]
    pub first_position: u32,
}

/// Two keys named together.
#[derive(Clone, PartialEq, Message)]
pub struct SightingRecord {
    #[prost(uint64, tag = "1")]
    pub first_sequence: u64,
    /// When the stream recorded it first (seconds since 1970).
    #[prost(int64, tag = "2")]
    pub first_seen_at: i64,
}

/// A data steward's decision about two keys (kept in both directions).
#[derive(Clone, PartialEq, Message)]
pub struct DecisionRecord {
    /// True: one person (`LinkPeople`); false: two (`UnlinkPeople`).
    #[prost(bool, tag = "1")]
    pub linked: bool,
    #[prost(uint64, tag = "2")]
    pub sequence: u64,
    /// This direction's first key was in `person_a`.
    #[prost(bool, tag = "3")]
    pub person_a: bool,
}

/// A potential duplicate pair.
#[derive(Clone, PartialEq, Message)]
pub struct DuplicateRecord {
    /// When both were first on record (seconds since 1970).
    #[prost(int64, tag = "1")]
    pub first_seen_at: i64,
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, Error> {
    M::decode(bytes).map_err(|e| Error::undecodable(what, e))
}

fn text(bytes: &[u8]) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::Corrupt("a person key is not UTF-8".into()))
}

/// The identifiers one ref (or one event) carried.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ref {
    /// Every key, the first (strongest) one first.
    pub keys: Vec<String>,
    pub client_key: Option<String>,
}

impl Ref {
    /// The person an event names (empty when it names nobody).
    pub fn of_event(event: &Event) -> Self {
        if event.person_key.is_empty() {
            return Self::default();
        }
        let mut keys = vec![event.person_key.clone()];
        for k in &event.linked_person_keys {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        Self {
            keys,
            client_key: (!event.client_key.is_empty()).then(|| event.client_key.clone()),
        }
    }

    pub fn of_keys(k: Option<&PersonKeys>) -> Self {
        let Some(k) = k else {
            return Self::default();
        };
        let mut keys: Vec<String> = Vec::new();
        for key in &k.keys {
            if !key.is_empty() && !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        Self {
            keys,
            client_key: (!k.client_key.is_empty()).then(|| k.client_key.clone()),
        }
    }

    fn is_client(&self, key: &str) -> bool {
        self.client_key.as_deref() == Some(key)
    }
}

/// What a projection keeps about people, as the identity layer drives it.
pub trait PersonModel {
    /// Removes everything kept about the person `root` of `partnership`.
    fn forget<K: Kv>(&self, kv: &mut K, partnership: &str, root: &str) -> Result<(), Error>;
    /// Folds one fact (`event`, at stream `sequence`) into the person
    /// `root` of `partnership`. Returns the partnership the person has
    /// been handed over to, if any: their facts, and every fact recorded
    /// about them here later, are copied there ([`import`]).
    fn fold<K: Kv>(
        &self,
        kv: &mut K,
        partnership: &str,
        root: &str,
        event: &Event,
        sequence: u64,
    ) -> Result<Option<String>, Error>;
}

/// A person whose records may have changed (for live watchers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Changed {
    pub partnership_code: String,
    pub person_key: String,
}

// ---- reading the identity store ----

pub fn key_record<K: Kv>(kv: &K, p: &str, key: &str) -> Result<Option<KeyRecord>, Error> {
    kv.get(
        KeyKind::IdentityKey,
        &parts(&[p.as_bytes(), key.as_bytes()]),
    )?
    .map(|b| decode(&b, "identity key"))
    .transpose()
}

/// The root of `key` in partnership `p`, if the key is known there.
pub fn root_of<K: Kv>(kv: &K, p: &str, key: &str) -> Result<Option<String>, Error> {
    Ok(key_record(kv, p, key)?.map(|r| r.root))
}

/// Every key of the person `root` of `p` (the root included).
pub fn members<K: Kv>(kv: &K, p: &str, root: &str) -> Result<Vec<String>, Error> {
    let prefix = parts(&[p.as_bytes(), root.as_bytes(), b""]);
    kv.scan(KeyKind::IdentityMember, &prefix)?
        .into_iter()
        .map(|(k, _)| text(&k[prefix.len()..]))
        .collect()
}

fn decision<K: Kv>(kv: &K, p: &str, x: &str, y: &str) -> Result<Option<DecisionRecord>, Error> {
    kv.get(
        KeyKind::IdentityDecision,
        &parts(&[p.as_bytes(), x.as_bytes(), y.as_bytes()]),
    )?
    .map(|b| decode(&b, "identity decision"))
    .transpose()
}

/// Where a person is known, for erasure: every key of every person, in
/// any of `partnerships`, that `key` belongs to (and theirs in turn), and
/// the partnerships that know any of them. (A rare admin action may ask
/// each partnership of the register; no index is kept for it.)
pub fn everywhere<'p, K: Kv>(
    kv: &K,
    key: &str,
    partnerships: impl IntoIterator<Item = &'p str> + Clone,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut seen: BTreeSet<String> = BTreeSet::from([key.to_string()]);
    let mut known_in: BTreeSet<String> = BTreeSet::new();
    let mut queue = vec![key.to_string()];
    while let Some(k) = queue.pop() {
        for p in partnerships.clone() {
            if let Some(root) = root_of(kv, p, &k)? {
                known_in.insert(p.to_string());
                for m in members(kv, p, &root)? {
                    if seen.insert(m.clone()) {
                        queue.push(m);
                    }
                }
            }
        }
    }
    Ok((seen.into_iter().collect(), known_in.into_iter().collect()))
}

/// A potential duplicate pair of partnership `p`: the two roots (`a` <
/// `b`) and when both were first on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub person_key_a: String,
    pub person_key_b: String,
    pub first_seen_at: i64,
}

/// Every potential duplicate pair of partnership `p`.
pub fn duplicates<K: Kv>(kv: &K, p: &str) -> Result<Vec<Duplicate>, Error> {
    let prefix = parts(&[p.as_bytes(), b""]);
    let mut out = Vec::new();
    for (k, v) in kv.scan(KeyKind::IdentityDuplicate, &prefix)? {
        let rest: Vec<&[u8]> = k[prefix.len()..].split(|b| *b == 0).collect();
        let [a, b] = rest.as_slice() else {
            return Err(Error::Corrupt("duplicate key".into()));
        };
        if a < b {
            let r: DuplicateRecord = decode(&v, "duplicate")?;
            out.push(Duplicate {
                person_key_a: text(a)?,
                person_key_b: text(b)?,
                first_seen_at: r.first_seen_at,
            });
        }
    }
    Ok(out)
}

// ---- the rules ----

/// Everything the rules read about one component of a partnership.
#[derive(Debug, Clone, Default)]
pub struct Component {
    /// Each key and what is known of it (its root as stored).
    pub keys: BTreeMap<String, KeyRecord>,
    /// Pairs named together (`a` < `b`).
    pub sightings: BTreeMap<(String, String), SightingRecord>,
    /// Decisions, both directions.
    pub decisions: BTreeMap<(String, String), DecisionRecord>,
}

/// One person: their root and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub root: String,
    pub members: BTreeSet<String>,
}

/// The people of a component, and its potential duplicate pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partition {
    pub groups: Vec<Group>,
    /// (root a, root b, first seen at), a < b.
    pub duplicates: Vec<(String, String, i64)>,
}

impl Partition {
    /// The root of each key.
    pub fn roots(&self) -> BTreeMap<String, String> {
        self.groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| (m.clone(), g.root.clone())))
            .collect()
    }
}

struct Sets {
    parent: Vec<usize>,
    members: Vec<Vec<usize>>,
}

impl Sets {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            members: (0..n).map(|i| vec![i]).collect(),
        }
    }
    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            let (keep, gone) = if a < b { (a, b) } else { (b, a) };
            self.parent[gone] = keep;
            let moved = std::mem::take(&mut self.members[gone]);
            self.members[keep].extend(moved);
        }
    }
}

/// The people of one component: the rules in the module docs, as a pure
/// function of its keys, sightings and decisions.
pub fn partition(c: &Component) -> Partition {
    let names: Vec<&String> = c.keys.keys().collect();
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let client: Vec<bool> = c.keys.values().map(|r| r.client).collect();
    let mut apart: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut links: Vec<(u64, usize, usize)> = Vec::new();
    for ((x, y), d) in &c.decisions {
        let (Some(&i), Some(&j)) = (index.get(x.as_str()), index.get(y.as_str())) else {
            continue;
        };
        if d.linked {
            if i < j {
                links.push((d.sequence, i, j));
            }
        } else {
            apart.insert((i, j));
            apart.insert((j, i));
        }
    }
    let mut sets = Sets::new(names.len());
    let can_join = |sets: &mut Sets, a: usize, b: usize| {
        let (a, b) = (sets.find(a), sets.find(b));
        a != b
            && !sets.members[a]
                .iter()
                .any(|x| sets.members[b].iter().any(|y| apart.contains(&(*x, *y))))
    };
    // 1. Steward links, oldest first.
    links.sort();
    for (_, i, j) in links {
        if can_join(&mut sets, i, j) {
            sets.union(i, j);
        }
    }
    // 2. Strong identifiers named together, oldest first.
    let mut strong: Vec<(u64, usize, usize)> = c
        .sightings
        .iter()
        .filter_map(|((a, b), s)| {
            let (i, j) = (*index.get(a.as_str())?, *index.get(b.as_str())?);
            (!client[i] && !client[j]).then_some((s.first_sequence, i, j))
        })
        .collect();
    strong.sort();
    for (_, i, j) in strong {
        if can_join(&mut sets, i, j) {
            sets.union(i, j);
        }
    }
    // 3. People known only by client codes join the one strong person
    // their code was named with; named with several, they stay apart and
    // each pair of those is a potential duplicate.
    let roots: BTreeSet<usize> = (0..names.len()).map(|i| sets.find(i)).collect();
    let has_strong = |sets: &Sets, r: usize| sets.members[r].iter().any(|m| !client[*m]);
    let mut attach: Vec<(usize, usize)> = Vec::new();
    let mut pairs: Vec<(usize, usize, i64)> = Vec::new();
    for &g in &roots {
        if has_strong(&sets, g) {
            continue;
        }
        // Strong people sighted with this one, and when first.
        let mut seen: BTreeMap<usize, i64> = BTreeMap::new();
        for ((a, b), s) in &c.sightings {
            let (i, j) = (index[a.as_str()], index[b.as_str()]);
            for (mine, other) in [(i, j), (j, i)] {
                if sets.find(mine) == g && !client[other] {
                    let h = sets.find(other);
                    if h != g && can_join(&mut sets, g, h) {
                        let t = seen.entry(h).or_insert(s.first_seen_at);
                        *t = (*t).min(s.first_seen_at);
                    }
                }
            }
        }
        match seen.len() {
            0 => {}
            1 => attach.push((g, *seen.keys().next().expect("one"))),
            _ => {
                let people: Vec<(usize, i64)> = seen.into_iter().collect();
                for (n, (h1, t1)) in people.iter().enumerate() {
                    for (h2, t2) in &people[n + 1..] {
                        let decided = sets.members[*h1].iter().any(|x| {
                            sets.members[*h2].iter().any(|y| {
                                c.decisions
                                    .contains_key(&(names[*x].clone(), names[*y].clone()))
                            })
                        });
                        if !decided {
                            pairs.push((*h1, *h2, (*t1).max(*t2)));
                        }
                    }
                }
            }
        }
    }
    for (g, h) in attach {
        if can_join(&mut sets, g, h) {
            sets.union(g, h);
        }
    }
    // Roots: each person's key first seen (the strongest of an event's
    // keys first; then the smallest key).
    let root_name = |sets: &Sets, r: usize| -> String {
        sets.members[r]
            .iter()
            .map(|m| {
                let k = &c.keys[names[*m]];
                (k.first_sequence, k.first_position, names[*m])
            })
            .min()
            .map(|(_, _, k)| k.clone())
            .expect("a set has a member")
    };
    let mut groups: Vec<Group> = Vec::new();
    let final_roots: BTreeSet<usize> = (0..names.len()).map(|i| sets.find(i)).collect();
    for r in final_roots {
        groups.push(Group {
            root: root_name(&sets, r),
            members: sets.members[r].iter().map(|m| names[*m].clone()).collect(),
        });
    }
    groups.sort_by(|a, b| a.root.cmp(&b.root));
    let mut duplicates: Vec<(String, String, i64)> = pairs
        .into_iter()
        .map(|(a, b, t)| {
            let (a, b) = (sets.find(a), sets.find(b));
            let (a, b) = (root_name(&sets, a), root_name(&sets, b));
            if a < b {
                (a, b, t)
            } else {
                (b, a, t)
            }
        })
        .filter(|(a, b, _)| a != b)
        .collect();
    duplicates.sort();
    duplicates.dedup_by(|x, y| x.0 == y.0 && x.1 == y.1);
    Partition { groups, duplicates }
}

/// Which person a fact naming `keys` belongs to, given each key's root
/// and the decisions: the `person_a` side of the latest unlink between
/// two of its keys; else the person of its first strong key; else of its
/// first key.
pub fn owner(
    r: &Ref,
    mut root: impl FnMut(&str) -> Result<String, Error>,
    mut decided: impl FnMut(&str, &str) -> Result<Option<DecisionRecord>, Error>,
) -> Result<String, Error> {
    let roots: Vec<String> = r.keys.iter().map(|k| root(k)).collect::<Result<_, _>>()?;
    if roots.iter().all(|x| *x == roots[0]) {
        return Ok(roots[0].clone());
    }
    let mut latest: Option<(u64, usize)> = None;
    for (i, x) in r.keys.iter().enumerate() {
        for (j, y) in r.keys.iter().enumerate() {
            if i == j || roots[i] == roots[j] {
                continue;
            }
            if let Some(d) = decided(x, y)? {
                if !d.linked && d.person_a && latest.is_none_or(|(s, _)| d.sequence > s) {
                    latest = Some((d.sequence, i));
                }
            }
        }
    }
    if let Some((_, i)) = latest {
        return Ok(roots[i].clone());
    }
    let first_strong = r.keys.iter().position(|k| !r.is_client(k)).unwrap_or(0);
    Ok(roots[first_strong].clone())
}

// ---- changing the identity store ----

fn at_seconds(event: &Event) -> i64 {
    event
        .recorded_at
        .as_ref()
        .or(event.occurred_at.as_ref())
        .map(|t| t.seconds)
        .unwrap_or_default()
}

/// What registering an event's keys found.
struct Sighted {
    /// The keys new to the partnership.
    fresh: BTreeSet<String>,
    /// Whether two of the keys were named together for the first time.
    new_pairs: bool,
    /// Each key's record as it stood (or was created), in the event's order.
    records: Vec<KeyRecord>,
}

/// Registers the keys of `r` in `p` and the pairs among them.
fn sight<K: Kv>(kv: &mut K, p: &str, r: &Ref, sequence: u64, at: i64) -> Result<Sighted, Error> {
    let mut fresh = BTreeSet::new();
    let mut records = Vec::with_capacity(r.keys.len());
    for k in &r.keys {
        let known = key_record(kv, p, k)?;
        if known.is_none() {
            fresh.insert(k.clone());
        }
        records.push(known);
    }
    // Keys all new, named together, are one person under the first
    // (strongest): what [`partition`] would make of them, since no
    // sighting, decision or fact can involve them yet. Otherwise a new key
    // starts as a person of its own, for the rules to place.
    let all_fresh = fresh.len() == r.keys.len();
    let records: Vec<KeyRecord> = records
        .into_iter()
        .zip(&r.keys)
        .enumerate()
        .map(|(position, (known, k))| {
            known.unwrap_or_else(|| {
                let root = if all_fresh { &r.keys[0] } else { k };
                let record = KeyRecord {
                    root: root.clone(),
                    client: r.is_client(k),
                    first_sequence: sequence,
                    first_position: position as u32,
                };
                kv.put(
                    KeyKind::IdentityKey,
                    &parts(&[p.as_bytes(), k.as_bytes()]),
                    record.encode_to_vec(),
                );
                kv.put(
                    KeyKind::IdentityMember,
                    &parts(&[p.as_bytes(), root.as_bytes(), k.as_bytes()]),
                    Vec::new(),
                );
                record
            })
        })
        .collect();
    let mut new_pairs = false;
    for (i, a) in r.keys.iter().enumerate() {
        for b in &r.keys[i + 1..] {
            let key = parts(&[p.as_bytes(), a.as_bytes(), b.as_bytes()]);
            if kv.get(KeyKind::IdentitySighting, &key)?.is_none() {
                let s = SightingRecord {
                    first_sequence: sequence,
                    first_seen_at: at,
                }
                .encode_to_vec();
                kv.put(KeyKind::IdentitySighting, &key, s.clone());
                kv.put(
                    KeyKind::IdentitySighting,
                    &parts(&[p.as_bytes(), b.as_bytes(), a.as_bytes()]),
                    s,
                );
                new_pairs = true;
            }
        }
    }
    Ok(Sighted {
        fresh,
        new_pairs,
        records,
    })
}

/// What a projection keeps of an event as a fact: what folding needs (who,
/// when, where, the seal and its associated data, the payload), not who
/// recorded it.
fn fact_bytes(event: &Event) -> Vec<u8> {
    Event {
        event_id: event.event_id.clone(),
        occurred_at: event.occurred_at,
        recorded_at: event.recorded_at,
        partnership_code: event.partnership_code.clone(),
        person_key: event.person_key.clone(),
        linked_person_keys: event.linked_person_keys.clone(),
        client_key: event.client_key.clone(),
        sealed: event.sealed.clone(),
        payload: event.payload.clone(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The keys reachable from `start` by sightings and steward links, with
/// what the rules need to know of them.
pub fn component<K: Kv>(kv: &K, p: &str, start: &[String]) -> Result<Component, Error> {
    let mut c = Component::default();
    let mut queue: Vec<String> = start.to_vec();
    while let Some(k) = queue.pop() {
        if c.keys.contains_key(&k) {
            continue;
        }
        let Some(record) = key_record(kv, p, &k)? else {
            continue;
        };
        c.keys.insert(k.clone(), record);
        let prefix = parts(&[p.as_bytes(), k.as_bytes(), b""]);
        for (key, value) in kv.scan(KeyKind::IdentitySighting, &prefix)? {
            let other = text(&key[prefix.len()..])?;
            let s: SightingRecord = decode(&value, "sighting")?;
            let pair = if k < other {
                (k.clone(), other.clone())
            } else {
                (other.clone(), k.clone())
            };
            c.sightings.insert(pair, s);
            queue.push(other);
        }
        for (key, value) in kv.scan(KeyKind::IdentityDecision, &prefix)? {
            let other = text(&key[prefix.len()..])?;
            let d: DecisionRecord = decode(&value, "decision")?;
            if d.linked {
                queue.push(other.clone());
            }
            c.decisions.insert((k.clone(), other), d);
        }
    }
    // Decisions about keys outside the component cannot matter to it.
    let keys: BTreeSet<String> = c.keys.keys().cloned().collect();
    c.decisions
        .retain(|(x, y), _| keys.contains(x) && keys.contains(y));
    Ok(c)
}

/// The facts stored under the keys of `c`, in stream order.
fn facts<K: Kv>(kv: &K, p: &str, c: &Component) -> Result<Vec<(u64, Event)>, Error> {
    let mut out = Vec::new();
    for k in c.keys.keys() {
        let prefix = parts(&[p.as_bytes(), k.as_bytes(), b""]);
        for (key, value) in kv.scan(KeyKind::PersonFact, &prefix)? {
            let seq = u64::from_be_bytes(
                key[prefix.len()..]
                    .try_into()
                    .map_err(|_| Error::Corrupt("fact sequence".into()))?,
            );
            out.push((seq, decode::<Event>(&value, "fact")?));
        }
    }
    out.sort_by_key(|(s, _)| *s);
    Ok(out)
}

/// Re-runs the rules over the component of `start`, stores the result,
/// and has the projection fold again every person whose keys or facts
/// changed (`fresh` keys joining a person change nothing: they have no
/// facts yet). With `all`, every person of the component is folded again.
fn regroup<K: Kv, M: PersonModel>(
    kv: &mut K,
    p: &str,
    start: &[String],
    fresh: &BTreeSet<String>,
    all: bool,
    model: &M,
    changed: &mut Vec<Changed>,
) -> Result<(), Error> {
    let c = component(kv, p, start)?;
    let new = partition(&c);
    // The people as they stood.
    let mut old: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (k, r) in &c.keys {
        old.entry(r.root.clone()).or_default().insert(k.clone());
    }
    let new_roots = new.roots();
    for (k, r) in &c.keys {
        let root = &new_roots[k];
        if *root != r.root {
            let record = KeyRecord {
                root: root.clone(),
                ..r.clone()
            };
            kv.put(
                KeyKind::IdentityKey,
                &parts(&[p.as_bytes(), k.as_bytes()]),
                record.encode_to_vec(),
            );
            kv.delete(
                KeyKind::IdentityMember,
                &parts(&[p.as_bytes(), r.root.as_bytes(), k.as_bytes()]),
            );
            kv.put(
                KeyKind::IdentityMember,
                &parts(&[p.as_bytes(), root.as_bytes(), k.as_bytes()]),
                Vec::new(),
            );
        }
    }
    // Potential duplicates of the component, afresh.
    for root in old.keys() {
        let prefix = parts(&[p.as_bytes(), root.as_bytes(), b""]);
        for (key, _) in kv.scan(KeyKind::IdentityDuplicate, &prefix)? {
            let other = key[prefix.len()..].to_vec();
            kv.delete(
                KeyKind::IdentityDuplicate,
                &parts(&[p.as_bytes(), root.as_bytes(), &other]),
            );
            kv.delete(
                KeyKind::IdentityDuplicate,
                &parts(&[p.as_bytes(), &other, root.as_bytes()]),
            );
        }
    }
    for (a, b, t) in &new.duplicates {
        let v = DuplicateRecord { first_seen_at: *t }.encode_to_vec();
        kv.put(
            KeyKind::IdentityDuplicate,
            &parts(&[p.as_bytes(), a.as_bytes(), b.as_bytes()]),
            v.clone(),
        );
        kv.put(
            KeyKind::IdentityDuplicate,
            &parts(&[p.as_bytes(), b.as_bytes(), a.as_bytes()]),
            v,
        );
    }
    // Who must be folded again: a person whose keys, less the fresh ones,
    // are not exactly one old person under the same root.
    let mut refold: BTreeSet<String> = BTreeSet::new();
    for g in &new.groups {
        let known: BTreeSet<String> = g.members.difference(fresh).cloned().collect();
        let same = known.is_empty() || old.get(&g.root).is_some_and(|o| *o == known);
        if all || !same {
            refold.insert(g.root.clone());
        }
    }
    let kept: BTreeSet<&String> = new
        .groups
        .iter()
        .filter(|g| !refold.contains(&g.root))
        .map(|g| &g.root)
        .collect();
    for (root, keys) in &old {
        // A key new with this event has nothing to forget.
        if !kept.contains(root) && !keys.is_subset(fresh) {
            model.forget(kv, p, root)?;
            changed.push(Changed {
                partnership_code: p.to_string(),
                person_key: root.clone(),
            });
        }
    }
    if refold.is_empty() {
        return Ok(());
    }
    for root in &refold {
        if !old.contains_key(root) {
            model.forget(kv, p, root)?;
        }
        changed.push(Changed {
            partnership_code: p.to_string(),
            person_key: root.clone(),
        });
    }
    for (seq, event) in facts(kv, p, &c)? {
        let r = Ref::of_event(&event);
        let root = owner(
            &r,
            |k| {
                new_roots
                    .get(k)
                    .cloned()
                    .ok_or_else(|| Error::Corrupt("a fact's key is not in its component".into()))
            },
            |x, y| Ok(c.decisions.get(&(x.to_string(), y.to_string())).cloned()),
        )?;
        if refold.contains(&root) {
            model.fold(kv, p, &root, &event, seq)?;
        }
    }
    Ok(())
}

/// A steward's decision about two refs of `p`.
fn decide<K: Kv, M: PersonModel>(
    kv: &mut K,
    p: &str,
    (a, b): (&Ref, &Ref),
    linked: bool,
    (sequence, at): (u64, i64),
    model: &M,
    changed: &mut Vec<Changed>,
) -> Result<(), Error> {
    let mut fresh = sight(kv, p, a, sequence, at)?.fresh;
    fresh.extend(sight(kv, p, b, sequence, at)?.fresh);
    if linked {
        // A link lifts earlier unlinks between the two people as they stand.
        let people = |kv: &K, r: &Ref| -> Result<Vec<String>, Error> {
            let mut all = Vec::new();
            for k in &r.keys {
                if let Some(root) = root_of(kv, p, k)? {
                    all.extend(members(kv, p, &root)?);
                }
            }
            Ok(all)
        };
        let (xs, ys) = (people(kv, a)?, people(kv, b)?);
        for x in &xs {
            for y in &ys {
                if decision(kv, p, x, y)?.is_some_and(|d| !d.linked) {
                    kv.delete(
                        KeyKind::IdentityDecision,
                        &parts(&[p.as_bytes(), x.as_bytes(), y.as_bytes()]),
                    );
                    kv.delete(
                        KeyKind::IdentityDecision,
                        &parts(&[p.as_bytes(), y.as_bytes(), x.as_bytes()]),
                    );
                }
            }
        }
    }
    for x in &a.keys {
        for y in &b.keys {
            if x == y {
                continue;
            }
            let mut d = DecisionRecord {
                linked,
                sequence,
                person_a: true,
            };
            kv.put(
                KeyKind::IdentityDecision,
                &parts(&[p.as_bytes(), x.as_bytes(), y.as_bytes()]),
                d.encode_to_vec(),
            );
            d.person_a = false;
            kv.put(
                KeyKind::IdentityDecision,
                &parts(&[p.as_bytes(), y.as_bytes(), x.as_bytes()]),
                d.encode_to_vec(),
            );
        }
    }
    // A decision can move a fact between two people whose keys do not
    // change (its owner follows the latest unlink): everyone in reach is
    // folded again. Decisions are rare; this keeps them simple.
    let start: Vec<String> = a.keys.iter().chain(&b.keys).cloned().collect();
    regroup(kv, p, &start, &fresh, true, model, changed)
}

/// The owner of a fact naming `r`, from the store.
fn owner_in_store<K: Kv>(kv: &K, p: &str, r: &Ref) -> Result<String, Error> {
    owner(
        r,
        |k| {
            root_of(kv, p, k)?
                .ok_or_else(|| Error::Corrupt("a key named by a fact is unknown".into()))
        },
        |x, y| decision(kv, p, x, y),
    )
}

/// Erasure: the person's seals are dropped from every fact stored under
/// their keys, in every partnership the erasure names, and the people
/// holding those keys are folded again (so nothing of a name stays, even
/// as ciphertext, and no refold can bring it back).
fn erase<K: Kv, M: PersonModel>(
    kv: &mut K,
    r: &Ref,
    partnerships: &[String],
    model: &M,
    changed: &mut Vec<Changed>,
) -> Result<(), Error> {
    for p in partnerships {
        let mut keys = Vec::new();
        for k in &r.keys {
            if key_record(kv, p, k)?.is_some() {
                keys.push(k.clone());
            }
        }
        if keys.is_empty() {
            continue;
        }
        for k in &keys {
            let prefix = parts(&[p.as_bytes(), k.as_bytes(), b""]);
            for (key, value) in kv.scan(KeyKind::PersonFact, &prefix)? {
                let mut event: Event = decode(&value, "fact")?;
                if event.sealed.take().is_some() {
                    kv.put(
                        KeyKind::PersonFact,
                        &parts(&[p.as_bytes(), k.as_bytes(), &key[prefix.len()..]]),
                        event.encode_to_vec(),
                    );
                }
            }
        }
        regroup(kv, p, &keys, &BTreeSet::new(), true, model, changed)?;
    }
    Ok(())
}

/// Applies what `event` says about who is whom in its partnership, then,
/// when the projection `uses` the event, keeps it as a fact of its person
/// and folds it in. Returns the people whose records may have changed.
pub fn apply<K: Kv, M: PersonModel>(
    kv: &mut K,
    event: &Event,
    sequence: u64,
    uses: bool,
    model: &M,
) -> Result<Vec<Changed>, Error> {
    let p = event.partnership_code.as_str();
    let at = at_seconds(event);
    let mut changed = Vec::new();
    match &event.payload {
        Some(Payload::PeopleLinked(l)) => {
            let (a, b) = (
                Ref::of_keys(l.person_a.as_ref()),
                Ref::of_keys(l.person_b.as_ref()),
            );
            decide(kv, p, (&a, &b), true, (sequence, at), model, &mut changed)?;
            return Ok(tidy(changed));
        }
        Some(Payload::PeopleUnlinked(u)) => {
            let (a, b) = (
                Ref::of_keys(u.person_a.as_ref()),
                Ref::of_keys(u.person_b.as_ref()),
            );
            decide(kv, p, (&a, &b), false, (sequence, at), model, &mut changed)?;
            return Ok(tidy(changed));
        }
        Some(Payload::PersonErased(e)) => {
            let r = Ref::of_event(event);
            erase(kv, &r, &e.partnership_codes, model, &mut changed)?;
            return Ok(tidy(changed));
        }
        _ => {}
    }
    let r = Ref::of_event(event);
    if r.keys.is_empty() || (!uses && r.keys.len() < 2) {
        return Ok(changed);
    }
    let sighted = sight(kv, p, &r, sequence, at)?;
    // Keys all new were placed by `sight`; anything else new may move
    // people.
    let regrouped = sighted.new_pairs && sighted.fresh.len() < r.keys.len();
    if regrouped {
        regroup(kv, p, &r.keys, &sighted.fresh, false, model, &mut changed)?;
    }
    if uses {
        kv.put(
            KeyKind::PersonFact,
            &parts(&[p.as_bytes(), r.keys[0].as_bytes(), &sequence.to_be_bytes()]),
            fact_bytes(event),
        );
        // Most events name one person whose keys all share a root: no
        // need to read them again.
        let first = &sighted.records[0].root;
        let root = if !regrouped && sighted.records.iter().all(|k| k.root == *first) {
            first.clone()
        } else {
            owner_in_store(kv, p, &r)?
        };
        let forward = model.fold(kv, p, &root, event, sequence)?;
        changed.push(Changed {
            partnership_code: p.to_string(),
            person_key: root.clone(),
        });
        // A person handed over: what is recorded here crosses too; the
        // handover itself sends everything held here about them.
        if let Some(to) = forward {
            let facts = if matches!(event.payload, Some(Payload::HandoverRecorded(_))) {
                owned_facts(kv, p, &root)?
            } else {
                vec![(sequence, event.clone())]
            };
            import(kv, &to, facts, model, &mut changed)?;
        }
    }
    Ok(tidy(changed))
}

/// The facts that belong to the person `root` of `p`, in stream order.
pub fn owned_facts<K: Kv>(kv: &K, p: &str, root: &str) -> Result<Vec<(u64, Event)>, Error> {
    let c = component(kv, p, &members(kv, p, root)?)?;
    let mut out = Vec::new();
    for (seq, event) in facts(kv, p, &c)? {
        let owner = owner(
            &Ref::of_event(&event),
            |k| {
                c.keys
                    .get(k)
                    .map(|r| r.root.clone())
                    .ok_or_else(|| Error::Corrupt("a fact's key is not in its component".into()))
            },
            |x, y| Ok(c.decisions.get(&(x.to_string(), y.to_string())).cloned()),
        )?;
        if owner == root {
            out.push((seq, event));
        }
    }
    Ok(out)
}

/// Copies facts handed over from another partnership into partnership
/// `to`: they link the keys they name there, as if recorded there, and
/// the people they reach are folded again in stream order. A fact already
/// there (same key and sequence) is not copied twice, and none recorded
/// under `to` itself is copied back.
pub fn import<K: Kv, M: PersonModel>(
    kv: &mut K,
    to: &str,
    facts: Vec<(u64, Event)>,
    model: &M,
    changed: &mut Vec<Changed>,
) -> Result<(), Error> {
    let mut start = Vec::new();
    for (seq, event) in facts {
        let r = Ref::of_event(&event);
        if r.keys.is_empty() || event.partnership_code == to {
            continue;
        }
        let key = parts(&[to.as_bytes(), r.keys[0].as_bytes(), &seq.to_be_bytes()]);
        if kv.get(KeyKind::PersonFact, &key)?.is_some() {
            continue;
        }
        sight(kv, to, &r, seq, at_seconds(&event))?;
        kv.put(KeyKind::PersonFact, &key, fact_bytes(&event));
        start.extend(r.keys);
    }
    if !start.is_empty() {
        regroup(kv, to, &start, &BTreeSet::new(), true, model, changed)?;
    }
    Ok(())
}

fn tidy(mut changed: Vec<Changed>) -> Vec<Changed> {
    changed.sort();
    changed.dedup();
    changed
}

#[cfg(test)]
mod tests;
