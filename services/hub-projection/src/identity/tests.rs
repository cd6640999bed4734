//! Given / when / then over an in-memory store, and a model test: random
//! histories of events, links and unlinks in two partnerships, checked
//! after every step against a brute-force model that recomputes who is
//! whom (and which person every fact belongs to) from the whole history.

use std::collections::{BTreeMap, BTreeSet};

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::*;
use hub_store::MemKv;

/// A projection that only remembers which facts each person was folded
/// from, in order: what every real projection's records are a function of.
struct Recorder;

fn folded_key(p: &str, root: &str) -> Vec<u8> {
    parts(&[p.as_bytes(), root.as_bytes()])
}

impl PersonModel for Recorder {
    fn forget<K: Kv>(&self, kv: &mut K, p: &str, root: &str) -> Result<(), Error> {
        kv.delete(KeyKind::PickupPerson, &folded_key(p, root));
        Ok(())
    }
    fn fold<K: Kv>(
        &self,
        kv: &mut K,
        p: &str,
        root: &str,
        _event: &Event,
        sequence: u64,
    ) -> Result<Option<String>, Error> {
        let mut v = kv
            .get(KeyKind::PickupPerson, &folded_key(p, root))?
            .unwrap_or_default();
        v.extend_from_slice(&sequence.to_be_bytes());
        kv.put(KeyKind::PickupPerson, &folded_key(p, root), v);
        Ok(None)
    }
}

/// Every (partnership, root) → the facts folded into it, from the store.
fn folded(kv: &MemKv) -> BTreeMap<(String, String), Vec<u64>> {
    kv.scan(KeyKind::PickupPerson, b"")
        .unwrap()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let f: Vec<&[u8]> = k.split(|b| *b == 0).collect();
            (
                (
                    String::from_utf8(f[0].to_vec()).unwrap(),
                    String::from_utf8(f[1].to_vec()).unwrap(),
                ),
                v.chunks(8)
                    .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        })
        .collect()
}

struct World {
    kv: MemKv,
    seq: u64,
}

fn person(keys: &[&str]) -> Ref {
    Ref {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        client_key: keys
            .iter()
            .find(|k| k.starts_with('c'))
            .map(|k| k.to_string()),
    }
}

fn event(p: &str, r: &Ref, seq: u64) -> Event {
    Event {
        event_id: format!("ev{seq}"),
        partnership_code: p.into(),
        person_key: r.keys[0].clone(),
        linked_person_keys: r.keys[1..].to_vec(),
        client_key: r.client_key.clone().unwrap_or_default(),
        recorded_at: Some(prost_types::Timestamp {
            seconds: 1_000 + seq as i64,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn keys_of(r: &Ref) -> PersonKeys {
    PersonKeys {
        keys: r.keys.clone(),
        client_key: r.client_key.clone().unwrap_or_default(),
    }
}

impl World {
    fn new() -> Self {
        Self {
            kv: MemKv::default(),
            seq: 0,
        }
    }
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
    /// An event the projection uses (or not) about `keys` in `p`.
    fn fact(&mut self, p: &str, keys: &[&str], uses: bool) -> Vec<Changed> {
        let seq = self.next();
        apply(
            &mut self.kv,
            &event(p, &person(keys), seq),
            seq,
            uses,
            &Recorder,
        )
        .unwrap()
    }
    fn steward(&mut self, p: &str, a: &[&str], b: &[&str], linked: bool) {
        let seq = self.next();
        let (a, b) = (person(a), person(b));
        let mut e = event(p, &a, seq);
        e.linked_person_keys.clear();
        e.payload = Some(if linked {
            Payload::PeopleLinked(hub_proto::events::PeopleLinked {
                person_a: Some(keys_of(&a)),
                person_b: Some(keys_of(&b)),
            })
        } else {
            Payload::PeopleUnlinked(hub_proto::events::PeopleUnlinked {
                person_a: Some(keys_of(&a)),
                person_b: Some(keys_of(&b)),
            })
        });
        apply(&mut self.kv, &e, seq, true, &Recorder).unwrap();
    }
    fn root(&self, p: &str, key: &str) -> Option<String> {
        root_of(&self.kv, p, key).unwrap()
    }
    fn facts_of(&self, p: &str, key: &str) -> Vec<u64> {
        let root = self.root(p, key).unwrap();
        folded(&self.kv)
            .remove(&(p.to_string(), root))
            .unwrap_or_default()
    }
}

#[test]
fn strong_identifiers_named_together_are_one_person_in_that_partnership_only() {
    let mut w = World::new();
    w.fact("leeds", &["nhs", "prison"], true);
    w.fact("bradford", &["nhs"], true);
    w.fact("bradford", &["prison"], true);
    assert_eq!(w.root("leeds", "prison"), w.root("leeds", "nhs"));
    assert_ne!(
        w.root("bradford", "prison"),
        w.root("bradford", "nhs"),
        "what Leeds linked does not link Bradford's people"
    );
    assert_eq!(w.facts_of("bradford", "nhs"), [2]);
    assert_eq!(w.facts_of("leeds", "prison"), [1]);
    // Bradford learns the link itself: its two people become one, with
    // both facts, in stream order.
    w.fact("bradford", &["prison", "nhs"], true);
    assert_eq!(w.facts_of("bradford", "nhs"), [2, 3, 4]);
    assert_eq!(
        members(&w.kv, "bradford", "nhs").unwrap(),
        ["nhs", "prison"]
    );
}

#[test]
fn a_shared_client_code_never_merges_people_whose_strong_identifiers_differ() {
    let mut w = World::new();
    w.fact("leeds", &["nhsA", "c1"], true); // 1
    w.fact("leeds", &["c1"], true); // 2: a needle exchange, say
    assert_eq!(w.root("leeds", "c1"), w.root("leeds", "nhsA"));
    assert_eq!(w.facts_of("leeds", "nhsA"), [1, 2]);
    assert!(duplicates(&w.kv, "leeds").unwrap().is_empty());
    // Another person, another NHS number, the same client code.
    w.fact("leeds", &["nhsB", "c1"], true); // 3
    assert_ne!(w.root("leeds", "nhsA"), w.root("leeds", "nhsB"));
    assert_eq!(w.root("leeds", "c1").as_deref(), Some("c1"));
    // The code alone names neither of them now.
    assert_eq!(w.facts_of("leeds", "nhsA"), [1]);
    assert_eq!(w.facts_of("leeds", "nhsB"), [3]);
    assert_eq!(w.facts_of("leeds", "c1"), [2]);
    let d = duplicates(&w.kv, "leeds").unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].person_key_a.as_str(), d[0].person_key_b.as_str()),
        ("nhsA", "nhsB")
    );
    assert_eq!(d[0].first_seen_at, 1_003, "when the second person appeared");
    // A steward decides they are one: no longer a potential duplicate.
    w.steward("leeds", &["nhsA"], &["nhsB"], true);
    assert_eq!(w.root("leeds", "nhsA"), w.root("leeds", "nhsB"));
    assert!(duplicates(&w.kv, "leeds").unwrap().is_empty());
    assert_eq!(w.facts_of("leeds", "nhsB"), [1, 2, 3]);
    // ... and then that they are two after all.
    w.steward("leeds", &["nhsA"], &["nhsB"], false);
    assert_ne!(w.root("leeds", "nhsA"), w.root("leeds", "nhsB"));
    assert!(
        duplicates(&w.kv, "leeds").unwrap().is_empty(),
        "a pair a steward decided about is not listed again"
    );
}

#[test]
fn an_unlink_splits_a_person_and_facts_naming_both_stay_with_person_a() {
    let mut w = World::new();
    w.fact("bradford", &["nhs"], true); // 1: the prison's own patient
    w.fact("bradford", &["prison"], true); // 2
    w.fact("bradford", &["nhs", "prison"], true); // 3: a mistyped NHS number
    w.fact("bradford", &["prison"], true); // 4
    assert_eq!(w.facts_of("bradford", "prison"), [1, 2, 3, 4]);
    w.steward("bradford", &["prison"], &["nhs"], false);
    assert_ne!(w.root("bradford", "prison"), w.root("bradford", "nhs"));
    assert_eq!(w.facts_of("bradford", "prison"), [2, 3, 4]);
    assert_eq!(w.facts_of("bradford", "nhs"), [1]);
    // The unlink holds against the same mistake sent again.
    w.fact("bradford", &["nhs", "prison"], true); // 6
    assert_ne!(w.root("bradford", "prison"), w.root("bradford", "nhs"));
    assert_eq!(w.facts_of("bradford", "prison"), [2, 3, 4, 6]);
    // A steward's link undoes the unlink.
    w.steward("bradford", &["nhs"], &["prison"], true);
    assert_eq!(w.facts_of("bradford", "prison"), [1, 2, 3, 4, 6]);
}

#[test]
fn events_not_used_leave_no_trace_unless_they_link() {
    let mut w = World::new();
    assert!(w.fact("leeds", &["c9"], false).is_empty());
    assert!(w.kv.0.is_empty(), "{:?}", w.kv.0.keys());
    w.fact("leeds", &["nhs", "c9"], false);
    assert_eq!(w.root("leeds", "c9"), w.root("leeds", "nhs"));
    assert!(folded(&w.kv).is_empty());
    assert_eq!(
        everywhere(&w.kv, "nhs", ["bradford", "leeds"]).unwrap().1,
        ["leeds"]
    );
}

#[test]
fn erasure_reaches_every_partnership_and_strips_seals_from_facts() {
    let mut w = World::new();
    w.seq += 1;
    let mut e = event("leeds", &person(&["nhs", "prison"]), 1);
    e.sealed = Some(Default::default());
    apply(&mut w.kv, &e, 1, true, &Recorder).unwrap();
    w.fact("bradford", &["prison", "pnc"], true);
    let (keys, known_in) = everywhere(&w.kv, "nhs", ["bradford", "leeds", "wakefield"]).unwrap();
    assert_eq!(keys, ["nhs", "pnc", "prison"]);
    assert_eq!(known_in, ["bradford", "leeds"]);
    let seq = w.next();
    let erased = Event {
        person_key: "nhs".into(),
        linked_person_keys: vec!["pnc".into(), "prison".into()],
        payload: Some(Payload::PersonErased(hub_proto::events::PersonErased {
            partnership_codes: known_in,
            reason: "request".into(),
        })),
        ..Default::default()
    };
    let changed = apply(&mut w.kv, &erased, seq, true, &Recorder).unwrap();
    assert_eq!(changed.len(), 2, "{changed:?}");
    for (_, v) in w.kv.scan(KeyKind::PersonFact, b"").unwrap() {
        assert!(Event::decode(v.as_slice()).unwrap().sealed.is_none());
    }
    assert_eq!(w.facts_of("leeds", "nhs"), [1], "events and counts remain");
}

// ---- the model test ----

/// People as sets of keys.
type People = Vec<BTreeSet<String>>;
/// Two people (a potential duplicate).
type Pair = (BTreeSet<String>, BTreeSet<String>);

/// Everything one partnership recorded, and who is whom computed from all
/// of it at once, as plainly as possible.
#[derive(Default, Clone)]
struct Model {
    keys: BTreeMap<String, (bool, u64, usize)>,
    sightings: BTreeMap<(String, String), (u64, i64)>,
    /// (x, y) → (linked, sequence, x was person_a)
    decisions: BTreeMap<(String, String), (bool, u64, bool)>,
    facts: Vec<(u64, Ref)>,
}

impl Model {
    fn register(&mut self, r: &Ref, seq: u64) {
        for (i, k) in r.keys.iter().enumerate() {
            self.keys
                .entry(k.clone())
                .or_insert((r.client_key.as_deref() == Some(k), seq, i));
        }
        for (i, a) in r.keys.iter().enumerate() {
            for b in &r.keys[i + 1..] {
                let pair = if a < b {
                    (a.clone(), b.clone())
                } else {
                    (b.clone(), a.clone())
                };
                self.sightings
                    .entry(pair)
                    .or_insert((seq, 1_000 + seq as i64));
            }
        }
    }

    fn apart(&self, a: &BTreeSet<String>, b: &BTreeSet<String>) -> bool {
        a.iter().any(|x| {
            b.iter().any(|y| {
                self.decisions
                    .get(&(x.clone(), y.clone()))
                    .is_some_and(|d| !d.0)
            })
        })
    }

    /// People (sets of keys) and potential duplicate pairs of people.
    fn people(&self) -> (People, Vec<Pair>) {
        let mut people: Vec<BTreeSet<String>> = self
            .keys
            .keys()
            .map(|k| BTreeSet::from([k.clone()]))
            .collect();
        let find = |people: &Vec<BTreeSet<String>>, k: &str| {
            people.iter().position(|g| g.contains(k)).unwrap()
        };
        let join = |people: &mut Vec<BTreeSet<String>>, x: &str, y: &str| {
            let (i, j) = (find(people, x), find(people, y));
            if i != j && !self.apart(&people[i], &people[j]) {
                let moved = people[j].clone();
                people[i].extend(moved);
                people.remove(j);
            }
        };
        let mut links: Vec<(u64, &String, &String)> = self
            .decisions
            .iter()
            .filter(|((x, y), d)| d.0 && x < y)
            .map(|((x, y), d)| (d.1, x, y))
            .collect();
        links.sort();
        for (_, x, y) in links {
            join(&mut people, x, y);
        }
        let client = |k: &str| self.keys[k].0;
        let mut strong: Vec<(u64, &String, &String)> = self
            .sightings
            .iter()
            .filter(|((a, b), _)| !client(a) && !client(b))
            .map(|((a, b), s)| (s.0, a, b))
            .collect();
        strong.sort();
        for (_, a, b) in strong {
            join(&mut people, a, b);
        }
        let only_codes: Vec<BTreeSet<String>> = people
            .iter()
            .filter(|g| g.iter().all(|k| client(k)))
            .cloned()
            .collect();
        let mut duplicates = Vec::new();
        let mut attach = Vec::new();
        for g in only_codes {
            let mut with: Vec<BTreeSet<String>> = Vec::new();
            for (a, b) in self.sightings.keys() {
                for (mine, other) in [(a, b), (b, a)] {
                    if g.contains(mine) && !client(other) {
                        let h = people[find(&people, other)].clone();
                        if !self.apart(&g, &h) && !with.contains(&h) {
                            with.push(h);
                        }
                    }
                }
            }
            if with.len() == 1 {
                attach.push((
                    g.iter().next().unwrap().clone(),
                    with[0].iter().next().unwrap().clone(),
                ));
            } else {
                for (i, h1) in with.iter().enumerate() {
                    for h2 in &with[i + 1..] {
                        let decided = h1.iter().any(|x| {
                            h2.iter()
                                .any(|y| self.decisions.contains_key(&(x.clone(), y.clone())))
                        });
                        if !decided {
                            duplicates.push((h1.clone(), h2.clone()));
                        }
                    }
                }
            }
        }
        for (x, y) in attach {
            join(&mut people, &x, &y);
        }
        let duplicates = duplicates
            .into_iter()
            .map(|(a, b)| {
                (
                    people[find(&people, a.iter().next().unwrap())].clone(),
                    people[find(&people, b.iter().next().unwrap())].clone(),
                )
            })
            .collect();
        (people, duplicates)
    }

    fn root(&self, g: &BTreeSet<String>) -> String {
        g.iter()
            .min_by_key(|k| (self.keys[*k].1, self.keys[*k].2, (*k).clone()))
            .unwrap()
            .clone()
    }

    fn decide(&mut self, a: &Ref, b: &Ref, linked: bool, seq: u64) {
        // A link lifts unlinks between the two people as they stood before.
        let (people, _) = self.people();
        self.register(a, seq);
        self.register(b, seq);
        if linked {
            let of = |r: &Ref| -> BTreeSet<String> {
                people
                    .iter()
                    .filter(|g| r.keys.iter().any(|k| g.contains(k)))
                    .flatten()
                    .cloned()
                    .collect()
            };
            let (xs, ys) = (of(a), of(b));
            self.decisions.retain(|(x, y), d| {
                d.0 || !((xs.contains(x) && ys.contains(y)) || (ys.contains(x) && xs.contains(y)))
            });
        }
        for x in &a.keys {
            for y in &b.keys {
                if x != y {
                    self.decisions
                        .insert((x.clone(), y.clone()), (linked, seq, true));
                    self.decisions
                        .insert((y.clone(), x.clone()), (linked, seq, false));
                }
            }
        }
    }

    /// Each person's root → the facts that belong to them.
    fn folded(&self, p: &str) -> BTreeMap<(String, String), Vec<u64>> {
        let (people, _) = self.people();
        let root_of = |k: &str| self.root(people.iter().find(|g| g.contains(k)).unwrap());
        let mut out: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        for (seq, r) in &self.facts {
            let roots: Vec<String> = r.keys.iter().map(|k| root_of(k)).collect();
            let mut owner = roots[0].clone();
            if roots.iter().any(|x| *x != roots[0]) {
                let mut best: Option<(u64, usize)> = None;
                for (i, x) in r.keys.iter().enumerate() {
                    for (j, y) in r.keys.iter().enumerate() {
                        if roots[i] != roots[j] {
                            if let Some((false, s, true)) =
                                self.decisions.get(&(x.clone(), y.clone()))
                            {
                                if best.is_none_or(|(b, _)| *s > b) {
                                    best = Some((*s, i));
                                }
                            }
                        }
                    }
                }
                owner = match best {
                    Some((_, i)) => roots[i].clone(),
                    None => {
                        let i = r
                            .keys
                            .iter()
                            .position(|k| r.client_key.as_deref() != Some(k))
                            .unwrap_or(0);
                        roots[i].clone()
                    }
                };
            }
            out.entry((p.to_string(), owner)).or_default().push(*seq);
        }
        out
    }
}

fn random_ref(rng: &mut StdRng, most: usize) -> Ref {
    let strong = ["s0", "s1", "s2", "s3", "s4", "s5"];
    let codes = ["c0", "c1", "c2"];
    loop {
        let mut keys: Vec<String> = Vec::new();
        for _ in 0..rng.gen_range(0..=most.min(2)) {
            let k = strong[rng.gen_range(0..strong.len())].to_string();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        if keys.is_empty() || rng.gen_bool(0.4) {
            keys.push(codes[rng.gen_range(0..codes.len())].to_string());
        }
        keys.truncate(most);
        if !keys.is_empty() {
            let client_key = keys.iter().find(|k| k.starts_with('c')).cloned();
            return Ref { keys, client_key };
        }
    }
}

#[test]
fn random_histories_agree_with_the_brute_force_model_at_every_step() {
    let partnerships = ["p1", "p2"];
    for seed in 0..150u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = World::new();
        let mut models: BTreeMap<&str, Model> = partnerships
            .iter()
            .map(|p| (*p, Model::default()))
            .collect();
        let mut history: Vec<(u64, Event, bool)> = Vec::new();
        for _ in 0..50 {
            let p = partnerships[rng.gen_range(0..2)];
            let seq = w.next();
            let roll = rng.gen_range(0..10);
            let (event, uses) = if roll < 7 {
                let r = random_ref(&mut rng, 3);
                let uses = rng.gen_bool(0.8);
                let m = models.get_mut(p).unwrap();
                if uses || r.keys.len() > 1 {
                    m.register(&r, seq);
                }
                if uses {
                    m.facts.push((seq, r.clone()));
                }
                (event(p, &r, seq), uses)
            } else {
                let a = random_ref(&mut rng, 2);
                let mut b = random_ref(&mut rng, 2);
                b.keys.retain(|k| !a.keys.contains(k));
                if b.keys.is_empty() {
                    continue;
                }
                if b.client_key.as_ref().is_some_and(|c| !b.keys.contains(c)) {
                    b.client_key = None;
                }
                let linked = roll < 8;
                models.get_mut(p).unwrap().decide(&a, &b, linked, seq);
                let mut e = event(p, &a, seq);
                e.linked_person_keys.clear();
                let (pa, pb) = (Some(keys_of(&a)), Some(keys_of(&b)));
                e.payload = Some(if linked {
                    Payload::PeopleLinked(hub_proto::events::PeopleLinked {
                        person_a: pa,
                        person_b: pb,
                    })
                } else {
                    Payload::PeopleUnlinked(hub_proto::events::PeopleUnlinked {
                        person_a: pa,
                        person_b: pb,
                    })
                });
                (e, true)
            };
            apply(&mut w.kv, &event, seq, uses, &Recorder).unwrap();
            history.push((seq, event, uses));

            let mut expected_folds = BTreeMap::new();
            for p in partnerships {
                let m = &models[p];
                let (people, dups) = m.people();
                for g in &people {
                    let root = m.root(g);
                    for k in g {
                        assert_eq!(
                            w.root(p, k).as_deref(),
                            Some(root.as_str()),
                            "seed {seed} step {seq}: root of {k} in {p}; model {people:?}"
                        );
                    }
                }
                let mut want: Vec<(String, String)> = dups
                    .iter()
                    .map(|(a, b)| {
                        let (a, b) = (m.root(a), m.root(b));
                        if a < b {
                            (a, b)
                        } else {
                            (b, a)
                        }
                    })
                    .collect();
                want.sort();
                want.dedup();
                let got: Vec<(String, String)> = duplicates(&w.kv, p)
                    .unwrap()
                    .into_iter()
                    .map(|d| (d.person_key_a, d.person_key_b))
                    .collect();
                assert_eq!(got, want, "seed {seed} step {seq}: duplicates in {p}");
                expected_folds.extend(m.folded(p));
            }
            assert_eq!(
                folded(&w.kv),
                expected_folds,
                "seed {seed} step {seq}: every person is the fold of their facts"
            );
        }
        // A rebuild from the same events reaches the same store.
        let mut rebuilt = MemKv::default();
        for (seq, event, uses) in &history {
            apply(&mut rebuilt, event, *seq, *uses, &Recorder).unwrap();
        }
        assert_eq!(rebuilt, w.kv, "seed {seed}: rebuild agrees with live");
    }
}
