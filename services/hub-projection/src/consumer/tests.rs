//! The consumer's exactly-once, gap, history and parking logic, through
//! the in-memory event source: no nats-server, a real store in a temporary
//! folder. Each test scripts the faults a real server shows and checks
//! that every event is applied exactly once, in order.

use std::sync::Arc;

use prost::Message;
use tokio::sync::{broadcast, watch};

use hub_proto::events::Event;
use hub_store::{KeyKind, Progress, Store};

use super::*;
use crate::source::{
    testing::{apply, event},
    Fault, MemorySource,
};

struct Rig {
    source: MemorySource,
    consumer: Consumer,
    store: Arc<Store>,
    progress: watch::Receiver<Progress>,
    fault: watch::Receiver<Option<String>>,
    _dir: tempfile::TempDir,
}

fn rig(source: MemorySource) -> Rig {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = Arc::new(Store::open(&dir.path().join("store")).expect("store"));
    let (progress_tx, progress) = watch::channel(Progress::default());
    let (fault_tx, fault) = watch::channel(None);
    let consumer = Consumer {
        name: "test-projection",
        source: Arc::new(source.clone()),
        apply: apply(),
        progress: progress_tx,
        changes: broadcast::channel(16).0,
        fault: fault_tx,
        schema: 1,
    };
    Rig {
        source,
        consumer,
        store,
        progress,
        fault,
        _dir: dir,
    }
}

impl Rig {
    fn push_events(&self, range: std::ops::RangeInclusive<u64>) {
        for n in range {
            let seq = self
                .source
                .push(&format!("hub.events.pharmacy.{n}"), event(n));
            assert_eq!(seq, n, "events are pushed at their own sequence");
        }
    }

    async fn live_until(&self, until: u64) {
        self.consumer
            .run_until(self.store.clone(), true, Some(until))
            .await
            .expect("the store works");
    }

    /// Sequences at which each event was applied, for events `1..=n`.
    /// The live consumer, as a projection runs it (until aborted).
    fn run_live(&self) -> tokio::task::JoinHandle<()> {
        let (consumer, store) = (self.consumer.clone(), self.store.clone());
        tokio::spawn(async move { consumer.run(store).await })
    }

    /// Whether queries see `sequence` applied within `within`.
    async fn applied_within(&self, sequence: u64, within: Duration) -> bool {
        let mut progress = self.progress.clone();
        tokio::time::timeout(
            within,
            progress.wait_for(|p| p.applied_sequence == sequence),
        )
        .await
        // (the watch's read guard dropped here: the consumer writes progress)
        .is_ok_and(|r| r.is_ok())
    }

    /// Whether the store is refused, within 5 s, with a fault naming `why`.
    async fn refused(&self, why: &str) -> bool {
        let mut fault = self.fault.clone();
        tokio::time::timeout(
            Duration::from_secs(5),
            fault.wait_for(|f| f.as_deref().is_some_and(|f| f.contains(why))),
        )
        .await
        // (the watch's read guard dropped here: the consumer writes the fault)
        .is_ok_and(|r| r.is_ok())
    }

    fn applications(&self, n: u64) -> Vec<Vec<u64>> {
        crate::source::testing::applications(&self.store, n)
    }

    fn assert_each_applied_once(&self, n: u64) {
        for (i, at) in self.applications(n).iter().enumerate() {
            assert_eq!(at, &vec![i as u64 + 1], "event {} applications", i + 1);
        }
        let progress = self.store.progress().expect("progress");
        assert_eq!(progress.applied_sequence, n);
        assert_eq!(progress.events_applied, n);
    }
}

#[tokio::test]
async fn every_event_is_applied_once_in_order_committed_with_its_position_then_acknowledged() {
    let rig = rig(MemorySource::with_chunk(7));
    rig.push_events(1..=100);
    rig.live_until(100).await;
    rig.assert_each_applied_once(100);
    assert_eq!(rig.source.acked(), 100, "acknowledged through the last");
    assert_eq!(
        rig.progress.borrow().applied_sequence,
        100,
        "queries see it"
    );
    assert_eq!(
        rig.source.deliveries(),
        vec![("test-projection".into(), 1, Mode::Live)]
    );
}

#[tokio::test]
async fn a_crash_between_apply_and_ack_redelivers_what_was_applied_and_it_is_skipped() {
    let rig = rig(MemorySource::with_chunk(4));
    rig.push_events(1..=10);
    // Every acknowledgement of the first run is lost: the process died
    // after committing, before the server heard.
    for _ in 0..3 {
        rig.source.fault(Fault::AckFails);
    }
    rig.live_until(10).await;
    assert_eq!(rig.source.acked(), 0, "nothing acknowledged");
    // Restarted: the server redelivers from its ack floor, not from where
    // the store stands, and more has been recorded meanwhile.
    rig.push_events(11..=15);
    rig.source.fault(Fault::RedeliverUnacked);
    rig.live_until(15).await;
    rig.assert_each_applied_once(15);
    let handed = rig.source.handed();
    assert_eq!(handed.len(), 25, "1..=10 twice, 11..=15 once: {handed:?}");
    assert_eq!(rig.source.acked(), 15);
}

#[tokio::test]
async fn a_message_lost_on_the_way_is_noticed_and_read_again_from_the_stores_position() {
    let rig = rig(MemorySource::with_chunk(3));
    rig.push_events(1..=12);
    rig.source.fault(Fault::Lose(5));
    rig.live_until(12).await;
    rig.assert_each_applied_once(12);
    let froms: Vec<u64> = rig.source.deliveries().iter().map(|d| d.1).collect();
    assert_eq!(froms, vec![1, 5], "recreated right after the last applied");
}

#[tokio::test]
async fn a_delivery_that_ends_is_resumed_from_the_stores_position() {
    let rig = rig(MemorySource::with_chunk(5));
    rig.push_events(1..=9);
    rig.source.fault(Fault::EndAfter(3));
    rig.live_until(9).await;
    rig.assert_each_applied_once(9);
    let froms: Vec<u64> = rig.source.deliveries().iter().map(|d| d.1).collect();
    assert_eq!(froms, vec![1, 4]);
}

#[tokio::test]
async fn a_stream_that_does_not_answer_is_retried_and_nothing_is_skipped() {
    let rig = rig(MemorySource::new());
    rig.push_events(1..=3);
    rig.source.fault(Fault::Unavailable);
    rig.live_until(3).await;
    rig.assert_each_applied_once(3);
}

#[tokio::test]
async fn unusable_messages_are_parked_with_their_subject_and_never_block_the_stream() {
    let rig = rig(MemorySource::new());
    rig.source.push("hub.events.pharmacy.a", event(1));
    rig.source
        .push("hub.events.pharmacy.b", b"\xff\xff not protobuf".to_vec());
    let newer = Event {
        schema_version: hub_proto::SCHEMA_VERSION + 1,
        ..prost::Message::decode(event(3).as_slice()).expect("event")
    };
    rig.source
        .push("hub.events.pharmacy.c", newer.encode_to_vec());
    rig.source.push("hub.events.pharmacy.d", event(4));
    rig.live_until(4).await;
    let progress = rig.store.progress().expect("progress");
    assert_eq!(
        (
            progress.applied_sequence,
            progress.events_applied,
            progress.parked
        ),
        (4, 2, 2)
    );
    let parked = rig
        .store
        .get(KeyKind::Parked, &2u64.to_be_bytes())
        .expect("read");
    let parked = parked.expect("message 2 parked");
    assert!(
        parked.starts_with(b"hub.events.pharmacy.b\0"),
        "subject kept"
    );
    assert!(rig
        .store
        .get(KeyKind::Parked, &3u64.to_be_bytes())
        .expect("read")
        .is_some());
    assert!(rig
        .store
        .get(KeyKind::Parked, &4u64.to_be_bytes())
        .expect("read")
        .is_none());
    assert_eq!(rig.applications(4)[3], vec![4]);
}

#[tokio::test]
async fn a_store_from_another_history_of_the_stream_is_refused_until_the_right_one_is_back() {
    let rig = rig(MemorySource::new());
    rig.push_events(1..=5);
    rig.live_until(5).await;
    // The stream is restored from another backup: same sequences, other
    // messages. Applying on would skip the new history's first five.
    let original: Vec<_> = (1..=5)
        .map(|n| {
            (
                format!("hub.events.pharmacy.{n}"),
                bytes::Bytes::from(event(n)),
            )
        })
        .collect();
    rig.source.replace(
        (1..=6)
            .map(|n| (format!("hub.events.custody.{n}"), event(100 + n).into()))
            .collect(),
    );
    let live = rig.run_live();
    let refused = rig.refused("another history").await;
    assert!(refused, "refused as a fault: {:?}", *rig.fault.borrow());
    assert_eq!(rig.store.progress().expect("progress").applied_sequence, 5);
    assert!(
        rig.source.deliveries().len() == 1,
        "no consumer for the other history"
    );
    // The right stream is back (and has grown): the fault clears and the
    // consumer goes on from where the store stood.
    let mut back = original;
    back.push(("hub.events.pharmacy.6".into(), event(6).into()));
    rig.source.replace(back);
    assert!(
        rig.applied_within(6, HISTORY_RECHECK + Duration::from_secs(5))
            .await,
        "resumed on the right history"
    );
    assert!(rig.fault.borrow().is_none());
    live.abort();
    rig.assert_each_applied_once(6);
}

#[tokio::test]
async fn a_store_ahead_of_the_stream_is_refused() {
    let rig = rig(MemorySource::new());
    rig.push_events(1..=4);
    rig.live_until(4).await;
    rig.source.replace(
        (1..=2)
            .map(|n| (format!("hub.events.pharmacy.{n}"), event(n).into()))
            .collect(),
    );
    let live = rig.run_live();
    let refused = rig.refused("ends at 2").await;
    live.abort();
    assert!(refused, "refused: {:?}", *rig.fault.borrow());
}

#[tokio::test]
async fn a_replay_into_a_fresh_store_is_never_acknowledged_and_stops_at_its_target() {
    let rig = rig(MemorySource::with_chunk(8));
    rig.push_events(1..=30);
    rig.consumer
        .run_until(rig.store.clone(), false, Some(20))
        .await
        .expect("replayed");
    assert_eq!(rig.store.progress().expect("progress").applied_sequence, 20);
    assert_eq!(rig.source.acked(), 0);
    // The tail, as a rebuild takes it once the live consumer pauses.
    rig.consumer
        .run_until(rig.store.clone(), false, Some(30))
        .await
        .expect("tail");
    rig.assert_each_applied_once(30);
    let modes: Vec<(u64, Mode)> = rig.source.deliveries().iter().map(|d| (d.1, d.2)).collect();
    assert_eq!(modes, vec![(1, Mode::Replay), (21, Mode::Replay)]);
}

#[tokio::test]
async fn live_consumption_follows_new_messages_as_they_are_recorded() {
    let rig = rig(MemorySource::with_chunk(2));
    let live = rig.run_live();
    for n in 1..=6u64 {
        rig.push_events(n..=n);
        assert!(
            rig.applied_within(n, Duration::from_secs(5)).await,
            "applied within seconds"
        );
    }
    live.abort();
    rig.assert_each_applied_once(6);
}

/// A replay to `until` that must finish within 30 s.
async fn replay_until(rig: &Rig, until: u64) {
    tokio::time::timeout(
        Duration::from_secs(30),
        rig.consumer
            .run_until(rig.store.clone(), false, Some(until)),
    )
    .await
    .expect("the replay stops at its target without waiting for more")
    .expect("replayed");
}

#[tokio::test]
async fn a_replay_gathers_batches_across_chunks_and_stops_at_the_streams_last_message() {
    let rig = rig(MemorySource::with_chunk(7));
    let n = 2 * REPLAY_BATCH as u64 + 100;
    rig.push_events(1..=n);
    replay_until(&rig, n).await;
    rig.assert_each_applied_once(n);
    assert_eq!(rig.source.acked(), 0);
    assert_eq!(
        rig.source.deliveries(),
        vec![("test-projection".into(), 1, Mode::Replay)]
    );
}

#[tokio::test]
async fn a_message_lost_inside_a_replays_batch_is_read_again_from_the_stores_position() {
    let rig = rig(MemorySource::with_chunk(7));
    let n = 2 * REPLAY_BATCH as u64 + 100;
    let lost = REPLAY_BATCH as u64 + 40;
    rig.push_events(1..=n);
    rig.source.fault(Fault::Lose(lost));
    replay_until(&rig, n).await;
    rig.assert_each_applied_once(n);
    let froms: Vec<u64> = rig.source.deliveries().iter().map(|d| d.1).collect();
    assert_eq!(
        froms,
        vec![1, lost],
        "recreated right after the last applied"
    );
}

#[tokio::test]
async fn a_replays_delivery_that_ends_mid_batch_keeps_what_came_and_resumes_after_it() {
    let rig = rig(MemorySource::with_chunk(7));
    let n = 2 * REPLAY_BATCH as u64 + 100;
    let handed = REPLAY_BATCH + 10;
    rig.push_events(1..=n);
    rig.source.fault(Fault::EndAfter(handed));
    replay_until(&rig, n).await;
    rig.assert_each_applied_once(n);
    let froms: Vec<u64> = rig.source.deliveries().iter().map(|d| d.1).collect();
    assert_eq!(froms, vec![1, handed as u64 + 1]);
}

#[tokio::test]
async fn a_live_store_far_behind_catches_up_as_a_replay_then_follows_and_acknowledges_live() {
    let rig = rig(MemorySource::with_chunk(64));
    let n = CATCH_UP + 1_000;
    rig.push_events(1..=n);
    let live = rig.run_live();
    assert!(
        rig.applied_within(n, Duration::from_secs(60)).await,
        "caught up"
    );
    rig.push_events(n + 1..=n + 3);
    assert!(
        rig.applied_within(n + 3, Duration::from_secs(10)).await,
        "then follows live"
    );
    // Acknowledged right after the commit that queries already see.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rig.source.acked() < n + 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live.abort();
    rig.assert_each_applied_once(n + 3);
    let modes: Vec<(u64, Mode)> = rig.source.deliveries().iter().map(|d| (d.1, d.2)).collect();
    assert_eq!(modes, vec![(1, Mode::Replay), (n + 1, Mode::Live)]);
    assert_eq!(rig.source.acked(), n + 3, "live messages are acknowledged");
}
