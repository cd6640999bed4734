//! `hub-bench` works: at a tiny scale it runs every measurement against its
//! own nats-server and hub, and writes every figure BENCHMARKS.md reports.
//! No figure is judged here (machines are shared and noisy); only that each
//! is there and is a number.

use hub_testkit::binary;

#[test]
fn hub_bench_writes_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("latest.json");
    let run = std::process::Command::new(binary("hub-bench").unwrap())
        .args(["--scale", "tiny", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for key in [
        "raw_publish_per_s",
        "ingest_per_s",
        "ingest_ratio",
        "raw_consume_per_s",
        "replay_per_s",
        "replay_ratio",
        "e2e_p50_ms",
        "e2e_p99_ms",
        "e2e_activity_p50_ms",
        "e2e_activity_p99_ms",
        "list_p50_ms",
        "list_p99_ms",
        "national_events",
        "national_ingest_s",
        "national_rebuild_s",
        "national_rebuild3_s",
        "replay3_per_s",
        "disk_bytes_per_event",
        "disk_bytes_per_event_settled",
        "peak_rss_mb",
    ] {
        let v = doc[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {doc}"));
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    assert!(doc["national_events"].as_f64().unwrap() >= 2_000.0);
    // What an operator sizes each disk by: JetStream's and every
    // projection's store, per event.
    let by_store = doc["disk_bytes_per_event_by_store_settled"]
        .as_object()
        .unwrap_or_else(|| panic!("disk by store missing: {doc}"));
    let mut stores: Vec<&str> = by_store.keys().map(String::as_str).collect();
    stores.sort_unstable();
    assert_eq!(
        stores,
        [
            "activity-projection",
            "nats-server",
            "pickup-projection",
            "training-projection"
        ]
    );
    assert!(
        by_store
            .values()
            .all(|v| v.as_f64().is_some_and(|b| b > 0.0)),
        "{by_store:?}"
    );
    // The figures say which collector setting nats-server ran with: by
    // default the deploy files' memory budget (docs/operations.md).
    assert_eq!(doc["nats_memory_limit"], "2GiB", "{doc}");
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(table.contains("ingest_ratio"), "{table}");
}
