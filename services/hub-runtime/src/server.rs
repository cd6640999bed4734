//! Serving gRPC the same way in every service: the service's own routes plus
//! gRPC reflection (v1 and v1alpha) and `grpc.health.v1.Health`, TLS (or
//! mutual TLS) when configured and never plaintext off loopback unless
//! allowed ([`crate::tls`]), a 64 KiB request limit, a deadline on every
//! call ([`crate::deadline`]), and a graceful stop that drains in-flight calls for at
//! most [`DRAIN_TIMEOUT`].

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{server::TcpIncoming, Server},
};

use hub_core::Error;

/// Largest request body a service accepts.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a stopping service waits for in-flight calls.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reflection for every hub proto, in both protocol versions clients use.
fn add_reflection(routes: Routes) -> Result<Routes, Error> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hub_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::internal_from("reflection", e))?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hub_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::internal_from("reflection", e))?;
    Ok(routes.add_service(v1).add_service(v1alpha))
}

/// Serves `routes` (plus reflection) on `listener` until `shutdown`
/// resolves, then drains. Prints `<name> listening on <addr>` on standard
/// output once bound, which scripts and tests wait for.
pub async fn serve(
    name: &str,
    listener: TcpListener,
    tls: &crate::tls::TlsArgs,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal_from("listener", e))?;
    tls.check_listener("HUB_LISTEN", addr)?;
    let routes = add_reflection(routes)?;
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = Server::builder();
    if let Some(server_tls) = tls.server()? {
        builder = builder
            .tls_config(server_tls.tonic())
            .map_err(|e| Error::config("HUB_TLS_CERT_FILE", e.to_string()))?;
    }
    let server = builder
        .layer(crate::limit::RequestLimitLayer {
            max_message_bytes: MAX_REQUEST_BYTES,
        })
        .layer(crate::deadline::DeadlineLayer)
        .add_routes(routes)
        // TCP_NODELAY: a reply goes out in several small writes (headers,
        // body, trailers); with Nagle's algorithm against the client's
        // delayed ACK each call waited ~40 ms (seen in hub-bench's list
        // latency before this).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = drain_rx.await;
            },
        );
    tokio::pin!(server);
    tracing::info!(%addr, service = name, "listening");
    println!("{name} listening on {addr}");
    tokio::select! {
        result = &mut server => {
            return result.map_err(|e| Error::internal_from("gRPC server failed", e));
        }
        _ = shutdown => {}
    }
    let _ = drain_tx.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result.map_err(|e| Error::internal_from("gRPC server failed", e)),
        Err(_) => {
            tracing::warn!(
                "in-flight calls still running after {}s; stopping anyway",
                DRAIN_TIMEOUT.as_secs()
            );
            Ok(())
        }
    }
}

/// Binds `addr`, naming the setting in the error.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::config("HUB_LISTEN", format!("cannot listen on {addr}: {e}")))
}
