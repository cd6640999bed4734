//! Prometheus metrics over HTTP (`GET /metrics`) on `HUB_METRICS_LISTEN`,
//! default: the gRPC port + 1000 on the same host.
//!
//! Names (all prefixed `hub_`):
//! - `hub_commands_total{rpc, code}`: commands by RPC and gRPC status code;
//! - `hub_command_duration_seconds{rpc, code}`: end-to-end latency;
//! - `hub_publish_duration_seconds`: JetStream publish-to-ack latency;
//! - `hub_nats_connected`: 1 while NATS is reachable.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use hub_core::Error;

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder (once), and its upkeep: the recorder
/// keeps every histogram sample until upkeep folds it into the buckets, so
/// without it a process nobody scrapes grows by each command's samples
/// (the 30-minute soak of 2026-11-24 saw ~35 bytes a command, BENCHMARKS.md).
/// Called within the Tokio runtime.
pub fn install() -> Result<PrometheusHandle, Error> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .map_err(|e| Error::internal_from("metrics", e))?
        .install_recorder()
        .map_err(|e| Error::internal_from("metrics", e))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The metrics address: the setting, else `grpc` with its port + 1000.
pub fn listen_addr(setting: Option<SocketAddr>, grpc: SocketAddr) -> Result<SocketAddr, Error> {
    if let Some(addr) = setting {
        return Ok(addr);
    }
    if grpc.port() == 0 {
        return Ok(SocketAddr::new(grpc.ip(), 0));
    }
    let port = grpc.port().checked_add(1000).ok_or_else(|| {
        Error::config(
            "HUB_METRICS_LISTEN",
            format!("gRPC port {} + 1000 is not a port; set it", grpc.port()),
        )
    })?;
    Ok(SocketAddr::new(grpc.ip(), port))
}

/// Binds the metrics listener and serves `/metrics` in the background,
/// over TLS when the process serves TLS (see [`crate::tls`]). Prints
/// `<name> metrics on <addr>`.
pub async fn serve(
    name: &str,
    addr: SocketAddr,
    handle: PrometheusHandle,
    tls: &crate::tls::TlsArgs,
) -> Result<SocketAddr, Error> {
    tls.check_listener("HUB_METRICS_LISTEN", addr)?;
    let server_tls = tls.server()?;
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::config(
            "HUB_METRICS_LISTEN",
            format!("cannot listen on {addr}: {e}"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::internal_from("the listener's address", e))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        let served = crate::tls::serve_http(
            listener,
            app,
            server_tls.as_ref(),
            forever,
            std::time::Duration::ZERO,
        );
        if let Err(e) = served.await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics listening");
    println!("{name} metrics on {bound}");
    Ok(bound)
}

/// A gRPC service's metrics: installs the recorder and serves `/metrics`
/// on `HUB_METRICS_LISTEN` (default: the gRPC port + 1000).
pub async fn start(
    name: &str,
    setting: Option<SocketAddr>,
    grpc: SocketAddr,
    tls: &crate::tls::TlsArgs,
) -> Result<SocketAddr, Error> {
    let handle = install()?;
    serve(name, listen_addr(setting, grpc)?, handle, tls).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_grpc_port_plus_1000() {
        let grpc: SocketAddr = "127.0.0.1:50052".parse().unwrap();
        assert_eq!(
            listen_addr(None, grpc).unwrap(),
            "127.0.0.1:51052".parse().unwrap()
        );
        let set: SocketAddr = "0.0.0.0:9100".parse().unwrap();
        assert_eq!(listen_addr(Some(set), grpc).unwrap(), set);
        assert_eq!(
            listen_addr(None, "127.0.0.1:0".parse().unwrap())
                .unwrap()
                .port(),
            0
        );
        assert!(listen_addr(None, "127.0.0.1:65000".parse().unwrap()).is_err());
    }
}
