//! The engine's store slot and rebuild switching, over the in-memory event
//! source: no nats-server, real stores in a temporary folder.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use hub_core::Error;
use hub_store::Store;

use super::{engine::ACTIVE_STORE, Engine};
use crate::source::{
    testing::{applications, apply, event},
    Fault, MemorySource, Mode,
};

fn push(source: &MemorySource, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        assert_eq!(source.push(&format!("hub.events.prison.{n}"), event(n)), n);
    }
}

async fn applied(engine: &Engine, sequence: u64) {
    let mut progress = engine.watch_progress();
    tokio::time::timeout(
        Duration::from_secs(10),
        progress.wait_for(|p| p.applied_sequence >= sequence),
    )
    .await
    .expect("applied within 10 s")
    .expect("progress");
}

/// A temporary folder, `source` holding events 1..=`events`, and an engine
/// (layout 1) over it that has applied them.
async fn started(source: MemorySource, events: u64) -> (tempfile::TempDir, Engine) {
    let data = tempfile::tempdir().unwrap();
    if events > 0 {
        push(&source, 1..=events);
    }
    let engine = Engine::open("test", data.path(), 1, Arc::new(source), apply()).unwrap();
    engine.start();
    applied(&engine, events).await;
    (data, engine)
}

/// Stops the engine, waits until it has let go of its store; that store's
/// folder.
async fn closed(engine: Engine) -> std::path::PathBuf {
    engine.stop().await;
    let active = engine.store().path().to_path_buf();
    engine.close().await;
    active
}

/// Events 1..=`n` each applied once, at their own sequence, in order.
fn each_once_in_order(store: &Store, n: u64) {
    for (i, at) in applications(store, n).iter().enumerate() {
        assert_eq!(at, &vec![i as u64 + 1], "event {} once, in order", i + 1);
    }
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
    let source = MemorySource::with_chunk(16);
    let (data, engine) = started(source.clone(), 200).await;
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
    let reports = Arc::new(Mutex::new(Vec::new()));
    engine
        .rebuild({
            let reports = reports.clone();
            move |p, target, switched| {
                reports
                    .lock()
                    .unwrap()
                    .push((p.applied_sequence, target, switched))
            }
        })
        .await
        .unwrap();
    writer.await.unwrap();
    applied(&engine, 260).await;

    let fresh = engine.store();
    assert_ne!(fresh.path(), old_dir, "readers switched to the fresh store");
    let pointer = std::fs::read_to_string(data.path().join(ACTIVE_STORE)).unwrap();
    assert_eq!(data.path().join(pointer.trim()), fresh.path());
    each_once_in_order(&fresh, 260);
    let reports = reports.lock().unwrap().clone();
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
    let source = MemorySource::new();
    let (data, engine) = started(source.clone(), 5).await;
    let active = closed(engine).await;
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
    let _held = engine.hold().await.unwrap();
    let refused = engine.rebuild(|_, _, _| {}).await.unwrap_err();
    assert!(matches!(refused, Error::AlreadyExists(_)), "{refused:?}");
    engine.stop().await;
}

/// The store folders under `data` other than `active`.
fn other_stores(data: &Path, active: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p != active)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_rebuild_keeps_erasures_and_other_rebuilds_out_and_stopping_abandons_it() {
    let source = MemorySource::new();
    let (data, engine) = started(source.clone(), 5).await;
    let active = engine.store().path().to_path_buf();

    // A rebuild whose replay never gets an answer from the stream.
    source.fault(Fault::StallReplay);
    let rebuild = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.rebuild(|_, _, _| {}).await })
    };
    let mut fresh = Vec::new();
    for _ in 0..500 {
        fresh = other_stores(data.path(), &active);
        if !fresh.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fresh.len(), 1, "the rebuild's fresh store");

    // Meanwhile: no erasure may hold the store, no second rebuild starts,
    // and the live store goes on applying and answering.
    let held = engine.hold().await.err().expect("refused while rebuilding");
    assert_eq!(held.code(), tonic::Code::Unavailable, "{held:?}");
    assert!(held.message().contains("rebuilding"), "{held:?}");
    let second = engine.rebuild(|_, _, _| {}).await.unwrap_err();
    assert!(matches!(second, Error::AlreadyExists(_)), "{second:?}");
    push(&source, 6..=6);
    applied(&engine, 6).await;
    assert_eq!(engine.store().path(), active);

    // The process stops: the rebuild is abandoned, its caller told, its
    // folder removed; the active store stays.
    engine.stopping().cancel();
    let abandoned = tokio::time::timeout(Duration::from_secs(5), rebuild)
        .await
        .expect("answered within 5 s")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&abandoned, Error::Unavailable(_)) && abandoned.to_string().contains("abandoned"),
        "{abandoned:?}"
    );
    assert!(
        removed(&fresh[0]).await,
        "the abandoned store's folder removed"
    );
    assert_eq!(engine.store().path(), active);
    // Nothing is held any more: an erasure may go ahead.
    drop(engine.hold().await.expect("held once the rebuild is gone"));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_of_an_older_layout_is_rebuilt_at_start_and_refuses_queries_until_it_takes_over() {
    let source = MemorySource::new();
    let (data, engine) = started(source.clone(), 40).await;
    let old = closed(engine).await;

    // The next version writes layout 2.
    let engine = Engine::open("test", data.path(), 2, Arc::new(source.clone()), apply()).unwrap();
    let refused = engine.wait_for(1).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("after an upgrade"),
        "{refused:?}"
    );
    engine.start();
    let mut answered = None;
    for _ in 0..500 {
        if let Ok(applied) = engine.wait_for(40).await {
            answered = Some(applied);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        answered,
        Some(40),
        "answers once the rebuilt store took over"
    );
    let store = engine.store();
    assert_ne!(store.path(), old, "a fresh store");
    assert_eq!(store.schema().unwrap(), 2);
    each_once_in_order(&store, 40);
    drop(store);
    assert!(removed(&old).await, "the old layout's store removed");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_stops_consuming_when_its_last_handle_is_dropped() {
    let source = MemorySource::new();
    let (_data, engine) = started(source.clone(), 3).await;
    let store = engine.store();
    drop(engine);
    // The task lets go of the live consumer (and with it the store).
    let mut alone = false;
    for _ in 0..500 {
        if Arc::strong_count(&store) == 1 {
            alone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(alone, "nothing but this test holds the store");
    push(&source, 4..=4);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.progress().unwrap().applied_sequence, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_after_a_long_idle_reports_at_its_pace_not_in_a_burst() {
    let source = MemorySource::new();
    let (_data, engine) = started(source.clone(), 5).await;
    // Six report ticks' worth of idling before the rebuild begins.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    source.fault(Fault::StallReplay);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let rebuild = {
        let (engine, reports) = (engine.clone(), reports.clone());
        tokio::spawn(async move {
            engine
                .rebuild(move |p, target, switched| {
                    reports
                        .lock()
                        .unwrap()
                        .push((p.applied_sequence, target, switched))
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reports = reports.lock().unwrap().clone();
    // At once: it runs, nothing applied yet, and where it is going.
    assert_eq!(reports.first(), Some(&(0, 5, false)), "{reports:?}");
    assert!(
        (1..=3).contains(&reports.len()),
        "{} reports in 600 ms, at one per 250 ms: {reports:?}",
        reports.len()
    );
    engine.stopping().cancel();
    assert!(rebuild.await.unwrap().is_err(), "abandoned");
}
