//! Retention: when a person's personal data (names, dates of birth, free
//! text, all sealed under their data keys) expires.
//!
//! UK GDPR's storage limitation says personal data is kept no longer than
//! its purpose needs. The hub's purpose for a name is a pick-up and the
//! care around it; once nothing has been recorded about a person for the
//! retention period, their data keys are destroyed (crypto-shredding, as
//! an erasure with reason `retention`), while their pseudonymous events and
//! every count built from them remain.
//!
//! "A person" is every key linked to the one seen, in any partnership that
//! knows it (as an erasure finds them): they expire together, when the most
//! recently named of them has had no event for the period. This module
//! keeps, as the projection applies the stream, when each key was last
//! named (by `recorded_at`, when the hub received it: a back-dated record
//! still counts as activity) and where; it is pure, and the sweep that acts
//! on it lives in `erasure`. Applying an event costs one blind write per
//! key it names, no read: keeping a time index (a read, a delete and two
//! writes per key) made a rebuild a third slower, measured with
//! `make bench-quick`, while the sweep that would use it runs once an hour;
//! it reads the `LastSeen` rows in sixteen slices instead (by the first hex
//! digit of the key).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use hub_projection::identity;
use hub_proto::events::{event::Payload, Event};
use hub_store::{Error, KeyKind, Kv};

/// The retention period by default: two years with no event. A deployment
/// sets its own (`HUB_RETENTION_PERIOD`) as its data protection impact
/// assessment decides.
pub const DEFAULT_PERIOD: &str = "730d";
/// How often the sweep looks for what has expired, by default.
pub const DEFAULT_SWEEP: &str = "1h";

/// A period such as `730d`, `12h`, `30m` or `45s`, in seconds (at least 1).
pub fn parse_period(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a period such as 730d, 12h, 30m or 45s"))?;
    let scale = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("{s:?}: give the unit, d, h, m or s (such as 730d)")),
    };
    match n.checked_mul(scale) {
        Some(v) if v > 0 && v <= 100 * 365 * 86_400 => Ok(v),
        _ => Err(format!("{s:?} is not between 1 second and 100 years")),
    }
}

/// The slices the sweep reads `LastSeen` in: person keys are hex.
pub const SLICES: [&[u8]; 16] = [
    b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9", b"a", b"b", b"c", b"d", b"e", b"f",
];

fn row_key(key: &str, partnership: &str) -> Vec<u8> {
    [key.as_bytes(), b"\0", partnership.as_bytes()].concat()
}

/// A `LastSeen` row: (person key, partnership, seconds).
fn parse_row(key: &[u8], value: &[u8]) -> Result<(String, String, i64), Error> {
    let corrupt = || Error::Corrupt("last seen row".into());
    let mut parts = key.splitn(2, |b| *b == 0);
    let k = std::str::from_utf8(parts.next().ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    let p = std::str::from_utf8(parts.next().ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    let at = i64::from_be_bytes(value.try_into().map_err(|_| corrupt())?);
    Ok((k.to_string(), p.to_string(), at))
}

/// Notes what `event` says of when its person was last named: the event's
/// time under its first key (`person_key`), in its partnership. The other
/// keys it names are linked to that one there (who is whom), which is how
/// [`person`] finds them. One blind write, no read: events are applied in
/// stream order and `recorded_at` follows it (to within the hosts' clock
/// skew), so the last written is the latest. An erasure forgets its keys:
/// nothing is left to expire.
pub fn touch<K: Kv>(kv: &mut K, event: &Event) -> Result<(), Error> {
    if matches!(event.payload, Some(Payload::PersonErased(_))) {
        let keys = std::iter::once(&event.person_key)
            .chain(&event.linked_person_keys)
            .filter(|k| !k.is_empty());
        for k in keys {
            for (row, _) in kv.scan(KeyKind::LastSeen, &row_key(k, ""))? {
                kv.delete(KeyKind::LastSeen, &row);
            }
        }
        return Ok(());
    }
    if event.partnership_code.is_empty() || event.person_key.is_empty() {
        return Ok(()); // the hub's own records, and counts, name no one
    }
    let at = event
        .recorded_at
        .as_ref()
        .or(event.occurred_at.as_ref())
        .map_or(0, |t| t.seconds);
    kv.put(
        KeyKind::LastSeen,
        &row_key(&event.person_key, &event.partnership_code),
        at.to_be_bytes().to_vec(),
    );
    Ok(())
}

/// A person as retention sees them: every key linked to one, the
/// partnerships that know them, and when any of them was last named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Sorted; the first is the person's name in an erasure.
    pub keys: Vec<String>,
    pub partnerships: Vec<String>,
    pub last_seen: i64,
}

/// The person `key` belongs to: every key linked to it in a partnership
/// that named it, and theirs in turn.
pub fn person<K: Kv>(kv: &K, key: &str) -> Result<Person, Error> {
    let mut keys = BTreeSet::from([key.to_string()]);
    let mut partnerships = BTreeSet::new();
    // Each key with the partnership it was found linked in.
    let mut queue = vec![(key.to_string(), None::<String>)];
    let mut last_seen = 0;
    while let Some((k, found_in)) = queue.pop() {
        let mut places: BTreeSet<String> = found_in.into_iter().collect();
        for (row, value) in kv.scan(KeyKind::LastSeen, &row_key(&k, ""))? {
            let (_, p, at) = parse_row(&row, &value)?;
            last_seen = last_seen.max(at);
            places.insert(p);
        }
        for p in places {
            if let Some(root) = identity::root_of(kv, &p, &k)? {
                for m in identity::members(kv, &p, &root)? {
                    if keys.insert(m.clone()) {
                        queue.push((m, Some(p.clone())));
                    }
                }
            }
            partnerships.insert(p);
        }
    }
    Ok(Person {
        keys: keys.into_iter().collect(),
        partnerships: partnerships.into_iter().collect(),
        last_seen,
    })
}

/// The people whose most recent event is before `cutoff`, among the
/// `LastSeen` rows given (a slice of them); at most `limit`. `done` holds
/// the keys already dealt with by earlier slices of the same sweep.
pub fn expired<K: Kv>(
    kv: &K,
    rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    cutoff: i64,
    limit: usize,
    done: &mut BTreeSet<String>,
) -> Result<Vec<Person>, Error> {
    let mut out = Vec::new();
    for (row, value) in rows {
        if out.len() >= limit {
            break;
        }
        let (key, _, at) = parse_row(&row, &value)?;
        if at >= cutoff || done.contains(&key) {
            continue;
        }
        let p = person(kv, &key)?;
        done.extend(p.keys.iter().cloned());
        if p.last_seen < cutoff {
            out.push(p);
        }
    }
    Ok(out)
}

/// What retention holds: the number of people, and how many expire on
/// each day (Europe/London), soonest first, at most `days` days. `rows` are
/// every `LastSeen` row.
pub fn upcoming<K: Kv>(
    kv: &K,
    rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    period_seconds: i64,
    days: usize,
) -> Result<(u64, Vec<(String, u32)>), Error> {
    let mut done = BTreeSet::new();
    let mut people = 0u64;
    let mut by_day: BTreeMap<String, u32> = BTreeMap::new();
    for (row, value) in rows {
        let (key, _, _) = parse_row(&row, &value)?;
        if done.contains(&key) {
            continue;
        }
        let p = person(kv, &key)?;
        done.extend(p.keys.iter().cloned());
        people += 1;
        let expires = Timestamp::from_second(p.last_seen.saturating_add(period_seconds))
            .unwrap_or(Timestamp::MAX);
        let day = expires
            .to_zoned(hub_core::time::london())
            .date()
            .to_string();
        *by_day.entry(day).or_default() += 1;
    }
    Ok((people, by_day.into_iter().take(days).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_proto::events::{PersonErased, ReleaseDateRecorded};
    use hub_store::MemKv;

    fn event(p: &str, keys: &[&str], at: i64) -> Event {
        Event {
            partnership_code: p.into(),
            person_key: keys[0].into(),
            linked_person_keys: keys[1..].iter().map(|k| k.to_string()).collect(),
            recorded_at: Some(prost_types::Timestamp {
                seconds: at,
                nanos: 0,
            }),
            payload: Some(Payload::ReleaseDateRecorded(ReleaseDateRecorded::default())),
            ..Default::default()
        }
    }

    fn expired_at(kv: &MemKv, cutoff: i64) -> Vec<Person> {
        let rows = kv.scan(KeyKind::LastSeen, &[]).unwrap();
        expired(kv, rows, cutoff, 100, &mut BTreeSet::new()).unwrap()
    }

    fn all_keys(kv: &MemKv) -> Vec<(Vec<u8>, Vec<u8>)> {
        kv.scan(KeyKind::LastSeen, &[]).unwrap()
    }

    /// Applies `event` as the projection does: identity, then retention.
    fn apply(kv: &mut MemKv, e: &Event, seq: u64) {
        crate::model::apply(kv, e, seq).unwrap();
    }

    #[test]
    fn periods_read_with_their_unit() {
        assert_eq!(parse_period("730d"), Ok(730 * 86_400));
        assert_eq!(parse_period("12h"), Ok(43_200));
        assert_eq!(parse_period("2s"), Ok(2));
        for bad in ["", "730", "d", "0d", "-1d", "1y", "99999999999999d"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_person_expires_when_none_of_their_keys_was_named_for_the_period() {
        let mut kv = MemKv::default();
        apply(&mut kv, &event("bradford", &["nhs", "prison"], 100), 1);
        apply(&mut kv, &event("bradford", &["prison"], 500), 2);
        apply(&mut kv, &event("bradford", &["other"], 120), 3);
        // At cutoff 200 only `other` has expired: `nhs` is linked to
        // `prison`, named at 500.
        let out = expired_at(&kv, 200);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].keys, vec!["other".to_string()]);
        let out = expired_at(&kv, 501);
        assert_eq!(out.len(), 2);
        let both = out.iter().find(|p| p.keys.len() == 2).unwrap();
        assert_eq!(both.keys, vec!["nhs".to_string(), "prison".to_string()]);
        assert_eq!(both.last_seen, 500);
        assert_eq!(both.partnerships, vec!["bradford".to_string()]);
    }

    #[test]
    fn a_person_known_in_two_partnerships_is_one_and_expires_once() {
        let mut kv = MemKv::default();
        apply(&mut kv, &event("bradford", &["nhs", "prison"], 100), 1);
        apply(&mut kv, &event("leeds", &["nhs"], 300), 2);
        assert!(
            expired_at(&kv, 250).is_empty(),
            "Leeds named the NHS number at 300"
        );
        assert_eq!(expired_at(&kv, 301).len(), 1, "one person, once");
        let (people, days) = upcoming(&kv, all_keys(&kv), 86_400, 10).unwrap();
        assert_eq!(people, 1);
        assert_eq!(days, vec![("1970-01-02".to_string(), 1)]);
    }

    #[test]
    fn an_erasure_leaves_nothing_to_expire() {
        let mut kv = MemKv::default();
        apply(&mut kv, &event("bradford", &["nhs", "prison"], 100), 1);
        let mut erased = event("", &["nhs", "prison"], 200);
        erased.payload = Some(Payload::PersonErased(PersonErased {
            partnership_codes: vec!["bradford".into()],
            reason: "retention".into(),
        }));
        apply(&mut kv, &erased, 2);
        assert!(all_keys(&kv).is_empty());
    }
}
