//! The engine's store slot and rebuild switching, over the in-memory event
//! source: no nats-server, real stores in a temporary folder.

use std::{sync::Mutex, time::Duration};

use super::*;
use crate::source::{
    testing::{applications, apply, event},
    MemorySource, Mode,
};

fn push(source: &MemorySource, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        assert_eq!(source.push(&format!("hub.events.prison.{n}"), event(n)), n);
    }
}

async fn applied(engine: &Engine, sequence: u64) {
    let mut progress = engine.progress.clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        progress.wait_for(|p| p.applied_sequence >= sequence),
    )
    .await
    .expect("applied within 10 s")
    .expect("progress");
}

async fn removed(path: &Path) -> bool {
    for _ in 0..500 {
        if !path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_replays_takes_the_tail_switches_readers_and_removes_the_old_store_after_them() {
    let data = tempfile::tempdir().unwrap();
    let source = MemorySource::with_chunk(16);
    push(&source, 1..=200);
    let engine = Engine::open("test", data.path(), 1, Arc::new(source.clone()), apply()).unwrap();
    engine.start();
    applied(&engine, 200).await;
    let old = engine.store();
    let old_dir = old.path().to_path_buf();

    // Events keep arriving while the rebuild runs: some land in the tail.
    let writer = {
        let source = source.clone();
        tokio::spawn(async move {
            for n in 201..=260 {
                push(&source, n..=n);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let reports = Mutex::new(Vec::new());
    engine
        .rebuild(|p, target, switched| {
            reports
                .lock()
                .unwrap()
                .push((p.applied_sequence, target, switched))
        })
        .await
        .unwrap();
    writer.await.unwrap();
    applied(&engine, 260).await;

    let fresh = engine.store();
    assert_ne!(fresh.path(), old_dir, "readers switched to the fresh store");
    let pointer = std::fs::read_to_string(data.path().join(ACTIVE_STORE)).unwrap();
    assert_eq!(data.path().join(pointer.trim()), fresh.path());
    for (i, at) in applications(&fresh, 260).iter().enumerate() {
        assert_eq!(at, &vec![i as u64 + 1], "event {} once, in order", i + 1);
    }
    let reports = reports.into_inner().unwrap();
    let &(switched_at, tail, switched) = reports.last().unwrap();
    assert!(
        switched && switched_at == tail && tail >= 200,
        "{reports:?}"
    );
    assert!(reports[..reports.len() - 1].iter().all(|r| !r.2));

    // The live consumer resumed on the fresh store.
    push(&source, 261..=261);
    applied(&engine, 261).await;
    assert_eq!(applications(&engine.store(), 261)[260], vec![261]);
    // Live, then the replay from the start, its tail, and live again on
    // the fresh store from where the tail ended.
    let deliveries = source.deliveries();
    let modes: Vec<Mode> = deliveries.iter().map(|d| d.2).collect();
    assert_eq!(modes.first(), Some(&Mode::Live));
    assert_eq!(deliveries[1].1, 1, "{deliveries:?}");
    assert_eq!(deliveries[1].2, Mode::Replay);
    let last = deliveries.last().unwrap();
    assert_eq!((last.1, last.2), (tail + 1, Mode::Live), "{deliveries:?}");

    // A read that began on the old store finishes on it; its folder goes
    // when the read lets go.
    assert!(old_dir.exists(), "still held by a reader");
    assert_eq!(applications(&old, 1), vec![vec![1]]);
    drop(old);
    assert!(removed(&old_dir).await, "removed after its last reader");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leftovers_of_an_interrupted_rebuild_are_removed_at_start_and_the_active_store_kept() {
    let data = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    push(&source, 1..=5);
    let engine = Engine::open("test", data.path(), 1, Arc::new(source.clone()), apply()).unwrap();
    engine.start();
    applied(&engine, 5).await;
    engine.stop().await;
    let active = engine.store().path().to_path_buf();
    drop(engine);
    // What a rebuild cut short leaves: a store that never took over.
    let leftover = data.path().join("store-1764000000000");
    drop(Store::open(&leftover).unwrap());
    let engine = Engine::open("test", data.path(), 1, Arc::new(source), apply()).unwrap();
    assert!(!leftover.exists(), "removed at start");
    assert_eq!(engine.store().path(), active);
    assert_eq!(
        engine.progress().applied_sequence,
        5,
        "the active store kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_rebuild_at_a_time_and_queries_wait_for_their_own_writes() {
    let data = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let engine = Engine::open("test", data.path(), 1, Arc::new(source.clone()), apply()).unwrap();
    engine.start();
    // Read-your-writes: a query for a sequence not yet applied waits for it.
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.wait_for(3).await })
    };
    push(&source, 1..=3);
    assert_eq!(waiting.await.unwrap().unwrap(), 3);
    let _held = engine.exclusive().unwrap();
    let refused = engine.rebuild(|_, _, _| {}).await.unwrap_err();
    assert!(matches!(refused, Error::AlreadyExists(_)), "{refused:?}");
    engine.stop().await;
}
