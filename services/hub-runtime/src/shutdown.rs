//! Stopping: the first SIGINT or SIGTERM asks the service to stop accepting
//! and drain; a second one exits at once.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

/// Cancelled when a service stops, so that every long-lived stream (a
/// watch, a live page, rebuild progress) ends at once instead of holding
/// the drain of in-flight calls until its time limit.
pub use tokio_util::sync::CancellationToken as Stopping;

/// `shutdown`, cancelling `stopping` as it resolves: pass the result to the
/// server, so its drain starts with the long-lived streams already ending.
pub async fn cancelling(shutdown: impl Future<Output = ()>, stopping: Stopping) {
    shutdown.await;
    stopping.cancel();
}

/// Resolves on the first SIGINT or SIGTERM, and arms a second-signal exit.
pub async fn signal_received() {
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: draining in-flight calls (signal again to exit at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}
