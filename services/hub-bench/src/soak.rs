//! `hub-bench --soak <duration>`: steady load for a long time, to show that
//! memory and latency stay flat (no leak, no slow build-up).
//!
//! The whole hub runs as in the other phases. Every second, `--soak-rate`
//! commands from the national mix (every agency, every partnership); every
//! tenth is an overdose training followed by a training-counts query that
//! waits for its sequence (the end-to-end time a worker sees), and once a
//! second a `ListPickups` of a partnership holding 1,000 upcoming releases.
//! Every 5 s it reads each process's resident memory (VmRSS) from `/proc`.
//!
//! Figures are kept per window (one minute by default) and printed as a
//! table; the summary compares the second window (the first is warm-up:
//! caches and memtables filling) with the last, and fits a line to each
//! process's memory over the windows after the first.
//!
//! JetStream's duplicate window is set to 2 minutes here: it keeps every
//! request id published inside it in the server's memory (~150 bytes
//! each), which at soak rates is growth by design, not a leak (README
//! "Retries and duplicates").

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use hub_proto::projections::{
    pickup_list_service_client::PickupListServiceClient,
    training_counts_service_client::TrainingCountsServiceClient, ListPickupsRequest,
};
use serde_json::json;

use crate::{
    authed, bradford_counts_after, ms, percentile, status_mb, workload, Agencies, Env, Hub,
};

/// What one window saw.
#[derive(Default, Clone)]
struct Window {
    acks: Vec<f64>,
    e2e: Vec<f64>,
    lists: Vec<f64>,
    errors: u64,
    /// Last VmRSS (MiB) of each process in the window.
    rss: BTreeMap<String, f64>,
}

type Windows = Arc<Mutex<BTreeMap<usize, Window>>>;

fn record(windows: &Windows, window: usize, f: impl FnOnce(&mut Window)) {
    f(windows
        .lock()
        .expect("windows lock")
        .entry(window)
        .or_default());
}

/// Least-squares slope of `ys` against their index.
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        num += (i as f64 - mean_x) * (y - mean_y);
        den += (i as f64 - mean_x).powi(2);
    }
    num / den
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Runs the soak; returns the JSON document it writes.
pub async fn run(
    hub: &Hub,
    agencies: &Agencies,
    env: &Env<'_>,
    duration: Duration,
    rate: u64,
    window: Duration,
) -> Result<serde_json::Value> {
    // A partnership whose pick-up list holds 1,000 upcoming releases.
    let base = 90_000_000u64;
    agencies
        .flood(1_000, 64, |n| {
            workload::release(base + n, "calderdale", env)
        })
        .await?;
    let windows: Windows = Arc::default();
    let started = Instant::now();
    let window_of = move |at: Instant| {
        (at.duration_since(started).as_secs_f64() / window.as_secs_f64()) as usize
    };

    // Memory, every 5 s.
    let sampler = {
        let windows = windows.clone();
        let mut pids: Vec<(String, u32)> = hub
            .processes
            .iter()
            .filter_map(|p| Some((p.name().to_string(), p.pid()?)))
            .collect();
        if let Some(pid) = hub.nats.pid() {
            pids.push(("nats-server".into(), pid));
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let w = window_of(Instant::now());
                for (name, pid) in &pids {
                    let mb = status_mb(*pid, "VmRSS");
                    record(&windows, w, |win| {
                        win.rss.insert(name.clone(), mb);
                    });
                }
            }
        })
    };

    let training = TrainingCountsServiceClient::new(hub.channel("training-projection").await?);
    let pickups = PickupListServiceClient::new(hub.channel("pickup-projection").await?);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * duration.as_secs();
    let first = 100_000_000u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        tick.tick().await;
        let n = first + i;
        let e2e = i.is_multiple_of(10);
        let command = if e2e {
            workload::training(n, "bradford", env)
        } else {
            workload::national(n, env)
        };
        let (agencies, mut training, seen) = (agencies.clone(), training.clone(), windows.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let ack = match agencies.send(n, command).await {
                Ok(ack) => ack,
                Err(_) => return record(&seen, window_of(sent), |w| w.errors += 1),
            };
            let acked = Instant::now();
            record(&seen, window_of(sent), |w| w.acks.push(ms(acked - sent)));
            if !e2e {
                return;
            }
            let reply = training
                .get_training_counts(bradford_counts_after(ack.stream_sequence))
                .await;
            let latency = ms(acked.elapsed());
            record(&seen, window_of(sent), |w| match reply {
                Ok(_) => w.e2e.push(latency),
                Err(_) => w.errors += 1,
            });
        });
        if i.is_multiple_of(rate) {
            let (mut pickups, seen) = (pickups.clone(), windows.clone());
            tasks.spawn(async move {
                let t = Instant::now();
                let reply = pickups
                    .list_pickups(authed(
                        ListPickupsRequest {
                            partnership_code: "calderdale".into(),
                            as_of_date: String::new(),
                            horizon_days: Some(14),
                            min_sequence: 0,
                        },
                        "bench-token-carat",
                    ))
                    .await;
                let latency = ms(t.elapsed());
                record(&seen, window_of(t), |w| match reply {
                    Ok(_) => w.lists.push(latency),
                    Err(_) => w.errors += 1,
                });
            });
        }
        // Finished tasks are reaped as we go, so memory here stays flat too.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    sampler.abort();
    let elapsed = started.elapsed();

    let windows = windows.lock().expect("windows lock").clone();
    // The last window is partial (the tail of the run): dropped.
    let full = (elapsed.as_secs_f64() / window.as_secs_f64()).floor() as usize;
    let windows: Vec<(usize, Window)> = windows.into_iter().filter(|(w, _)| *w < full).collect();
    let names: Vec<String> = windows
        .first()
        .map(|(_, w)| w.rss.keys().cloned().collect())
        .unwrap_or_default();
    println!(
        "\nsoak: {} s at {rate} commands/s, windows of {} s",
        elapsed.as_secs(),
        window.as_secs()
    );
    println!(
        "{:>4} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}  RSS MiB ({})",
        "win",
        "cmd/s",
        "ack p50",
        "ack p99",
        "e2e p50",
        "e2e p99",
        "list p50",
        "list p99",
        "errors",
        names.join(", ")
    );
    let mut rows = Vec::new();
    for (i, w) in &windows {
        let (acks, e2e, lists) = (
            sorted(w.acks.clone()),
            sorted(w.e2e.clone()),
            sorted(w.lists.clone()),
        );
        let row = json!({
            "window": i,
            "commands_per_s": acks.len() as f64 / window.as_secs_f64(),
            "ack_p50_ms": percentile(&acks, 0.5), "ack_p99_ms": percentile(&acks, 0.99),
            "e2e_p50_ms": percentile(&e2e, 0.5), "e2e_p99_ms": percentile(&e2e, 0.99),
            "list_p50_ms": percentile(&lists, 0.5), "list_p99_ms": percentile(&lists, 0.99),
            "errors": w.errors,
            "rss_mb": w.rss,
        });
        println!(
            "{:>4} {:>8.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>6}  {}",
            i,
            acks.len() as f64 / window.as_secs_f64(),
            percentile(&acks, 0.5),
            percentile(&acks, 0.99),
            percentile(&e2e, 0.5),
            percentile(&e2e, 0.99),
            percentile(&lists, 0.5),
            percentile(&lists, 0.99),
            w.errors,
            names
                .iter()
                .map(|n| format!("{:.0}", w.rss.get(n).copied().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(" ")
        );
        rows.push(row);
    }
    // Warm-up excluded: the second window against the last, and the
    // trend over every window after the first.
    let steady: Vec<&Window> = windows.iter().skip(1).map(|(_, w)| w).collect();
    let mut memory = serde_json::Map::new();
    if let (Some(first), Some(last)) = (steady.first(), steady.last()) {
        println!(
            "\nmemory, window {} → {} (MiB), trend per 10 minutes:",
            windows[1].0,
            windows.last().map(|(i, _)| *i).unwrap_or(0)
        );
        let per_10_min = 600.0 / window.as_secs_f64();
        for name in &names {
            let series: Vec<f64> = steady
                .iter()
                .map(|w| w.rss.get(name).copied().unwrap_or(0.0))
                .collect();
            let (a, b) = (
                first.rss.get(name).copied().unwrap_or(0.0),
                last.rss.get(name).copied().unwrap_or(0.0),
            );
            let trend = slope(&series) * per_10_min;
            let (low, high) = series
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
            println!(
                "  {name:<20} {a:>8.1} → {b:>8.1}   {trend:>+7.1} MiB / 10 min   (min {low:.1}, max {high:.1})"
            );
            memory.insert(
                name.clone(),
                json!({"from_mb": a, "to_mb": b, "trend_mb_per_10_min": trend,
                       "min_mb": low, "max_mb": high}),
            );
        }
        let p99 = |ws: &[&Window], f: fn(&Window) -> &Vec<f64>| {
            sorted(ws.iter().flat_map(|w| f(w).iter().copied()).collect())
        };
        // Halves need a window each: a soak of two windows has one after
        // its warm-up, and nothing to compare it with.
        if steady.len() < 2 {
            println!(
                "latency p99 by half: not compared (one window after the warm-up; soak longer or use a shorter --soak-window)"
            );
        } else {
            let (early, late) = steady.split_at(steady.len() / 2);
            let e2e_early = percentile(&p99(early, |w| &w.e2e), 0.99);
            let e2e_late = percentile(&p99(late, |w| &w.e2e), 0.99);
            let ack_early = percentile(&p99(early, |w| &w.acks), 0.99);
            let ack_late = percentile(&p99(late, |w| &w.acks), 0.99);
            println!(
                "latency p99, first half → second half: ack {ack_early:.2} → {ack_late:.2} ms, e2e {e2e_early:.2} → {e2e_late:.2} ms"
            );
            memory.insert(
                "latency_p99_halves_ms".into(),
                json!({"ack": [ack_early, ack_late], "e2e": [e2e_early, e2e_late]}),
            );
        }
    }
    Ok(json!({
        "soak_seconds": elapsed.as_secs(),
        "rate_per_s": rate,
        "window_seconds": window.as_secs(),
        "windows": rows,
        "summary": memory,
    }))
}
