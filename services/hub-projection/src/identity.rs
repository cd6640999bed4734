//! People across identifiers, as every projection sees them.
//!
//! Events name a person by `person_key` plus `linked_person_keys` (keyed
//! hashes of identifiers sent together). Every key that ever arrived with
//! another belongs to the same person, kept under one *root* key: a
//! union-find over the stream, stored as `PersonLink` (key → root) and
//! `PersonMember` (root, key). Because it is built from the stream alone, a
//! rebuild reaches the same people, and no table of raw identifiers exists
//! anywhere.
//!
//! When an event links two people that were apart, the later root is folded
//! into the earlier one; the projection's `fold` moves its own records.
//!
//! A projection need not resolve every event: one about a single
//! identifier that it does not otherwise use ([`must_resolve`]) links
//! nobody, and the first event the projection does use about that
//! identifier makes it a root then. Most of the stream (needle exchange,
//! custody advice) is such events, so skipping them is most of a
//! projection's speed. Which key of a person becomes the root can differ
//! from a store that resolved everything; which keys belong together
//! cannot.

use hub_proto::events::Event;
use hub_store::{parts, Error, KeyKind, Kv};

fn text(bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| Error::Corrupt("a person key is not UTF-8".into()))
}

/// The root of `key`, if the key was seen.
pub fn root_of<K: Kv>(kv: &K, key: &str) -> Result<Option<String>, Error> {
    kv.get(KeyKind::PersonLink, key.as_bytes())?
        .map(text)
        .transpose()
}

/// Every key whose root is `root` (the root included).
pub fn members<K: Kv>(kv: &K, root: &str) -> Result<Vec<String>, Error> {
    let prefix = parts(&[root.as_bytes(), b""]);
    kv.scan(KeyKind::PersonMember, &prefix)?
        .into_iter()
        .map(|(k, _)| text(k[prefix.len()..].to_vec()))
        .collect()
}

fn set_root<K: Kv>(kv: &mut K, key: &str, root: &str, old_root: Option<&str>) {
    kv.put(
        KeyKind::PersonLink,
        key.as_bytes(),
        root.as_bytes().to_vec(),
    );
    if let Some(old) = old_root {
        kv.delete(
            KeyKind::PersonMember,
            &parts(&[old.as_bytes(), key.as_bytes()]),
        );
    }
    kv.put(
        KeyKind::PersonMember,
        &parts(&[root.as_bytes(), key.as_bytes()]),
        Vec::new(),
    );
}

/// Whether a projection that uses the person of `event` only when `uses`
/// is true must still resolve it: when it links identifiers.
pub fn must_resolve(event: &Event, uses: bool) -> bool {
    !event.person_key.is_empty() && (uses || !event.linked_person_keys.is_empty())
}

/// Resolves (and links) the person `event` is about; `None` for events
/// about nobody. `fold(kv, kept, folded)` is called for each person folded
/// into another, after their keys have moved.
pub fn resolve<K: Kv>(
    kv: &mut K,
    event: &Event,
    mut fold: impl FnMut(&mut K, &str, &str) -> Result<(), Error>,
) -> Result<Option<String>, Error> {
    if event.person_key.is_empty() {
        return Ok(None);
    }
    let keys: Vec<&str> = std::iter::once(event.person_key.as_str())
        .chain(event.linked_person_keys.iter().map(String::as_str))
        .collect();
    let mut roots: Vec<String> = Vec::new();
    for k in &keys {
        if let Some(r) = root_of(kv, k)? {
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
    }
    let root = roots
        .first()
        .cloned()
        .unwrap_or_else(|| event.person_key.clone());
    for other in roots.iter().skip(1) {
        for member in members(kv, other)? {
            set_root(kv, &member, &root, Some(other));
        }
        fold(kv, &root, other)?;
    }
    for k in keys {
        if root_of(kv, k)?.is_none() {
            set_root(kv, k, &root, None);
        }
    }
    Ok(Some(root))
}

/// Every key of the person `key` belongs to (for erasure).
pub fn all_keys_of<K: Kv>(kv: &K, key: &str) -> Result<Vec<String>, Error> {
    match root_of(kv, key)? {
        Some(root) => members(kv, &root),
        None => Ok(vec![key.to_string()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_store::MemKv;

    fn event(keys: &[&str]) -> Event {
        Event {
            person_key: keys[0].into(),
            linked_person_keys: keys[1..].iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        }
    }

    fn no_fold(_: &mut MemKv, _: &str, _: &str) -> Result<(), Error> {
        Ok(())
    }

    #[test]
    fn keys_sent_together_resolve_to_one_root_later() {
        let mut kv = MemKv::default();
        assert_eq!(
            resolve(&mut kv, &event(&["nhs", "prison"]), no_fold)
                .unwrap()
                .unwrap(),
            "nhs"
        );
        assert_eq!(
            resolve(&mut kv, &event(&["prison"]), no_fold)
                .unwrap()
                .unwrap(),
            "nhs"
        );
        assert_eq!(members(&kv, "nhs").unwrap(), ["nhs", "prison"]);
        assert_eq!(
            resolve(&mut kv, &event(&["other"]), no_fold)
                .unwrap()
                .unwrap(),
            "other"
        );
        assert_eq!(resolve(&mut kv, &Event::default(), no_fold).unwrap(), None);
    }

    #[test]
    fn linking_two_people_folds_the_later_into_the_earlier() {
        let mut kv = MemKv::default();
        resolve(&mut kv, &event(&["prison"]), no_fold).unwrap();
        resolve(&mut kv, &event(&["nhs", "pnc"]), no_fold).unwrap();
        let mut folded = Vec::new();
        let root = resolve(
            &mut kv,
            &event(&["nhs", "prison"]),
            |_, kept: &str, gone: &str| {
                folded.push((kept.to_string(), gone.to_string()));
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(root, "nhs");
        assert_eq!(folded, [("nhs".to_string(), "prison".to_string())]);
        for k in ["nhs", "pnc", "prison"] {
            assert_eq!(root_of(&kv, k).unwrap().unwrap(), "nhs");
        }
        assert!(members(&kv, "prison").unwrap().is_empty());
        assert_eq!(all_keys_of(&kv, "pnc").unwrap(), ["nhs", "pnc", "prison"]);
    }
}
