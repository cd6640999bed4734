//! What every agency service does around its RPC table: start the command
//! pipeline, serve gRPC with health that follows NATS (NOT_SERVING while it
//! is unreachable), serve metrics, and stop gracefully. A service crate
//! supplies only its tonic service.

use std::{convert::Infallible, future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::{body::Body, codegen::http, server::NamedService, service::Routes};
use tonic_health::ServingStatus;

use hub_core::{auth::Agency, Error};

use crate::{config::CommonArgs, pipeline::CommandPipeline, prometheus, server};

/// Runs an agency service until `shutdown`.
pub async fn serve_agency<S>(
    agency: Agency,
    name: &'static str,
    args: CommonArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    service: impl FnOnce(CommandPipeline) -> S,
) -> Result<(), Error>
where
    S: tower_service_bounds::GrpcService,
{
    let grpc_addr = listener
        .local_addr()
        .map_err(|e| Error::internal_from("the listener's address", e))?;
    // Plaintext off loopback is refused before anything else is read.
    args.tls.check_listener("HUB_LISTEN", grpc_addr)?;
    prometheus::start(name, args.metrics_listen, grpc_addr, &args.tls).await?;
    let auth = args.authenticator(&[grpc_addr]).await?;
    let pipeline = CommandPipeline::start(agency, &args, name, auth).await?;
    let (watcher, health_service) = health_follows_nats(pipeline.client().clone(), S::NAME);
    let routes = Routes::new(health_service).add_service(service(pipeline));
    let result = server::serve(name, listener, &args.tls, routes, shutdown).await;
    watcher.abort();
    result
}

/// gRPC health that follows the NATS connection: `service` and the server
/// as a whole are NOT_SERVING while NATS is unreachable (and
/// `hub_nats_connected` is 0). Abort the task when the server stops.
pub fn health_follows_nats(
    nats: async_nats::Client,
    service: &'static str,
) -> (
    tokio::task::JoinHandle<()>,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (health, health_service) = tonic_health::server::health_reporter();
    let watcher = tokio::spawn(async move {
        let mut last = None;
        loop {
            let up = nats.connection_state() == async_nats::connection::State::Connected;
            if last != Some(up) {
                let status = if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                health.set_service_status(service, status).await;
                health.set_service_status("", status).await;
                metrics::gauge!("hub_nats_connected").set(if up { 1.0 } else { 0.0 });
                last = Some(up);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    (watcher, health_service)
}

/// The bounds tonic puts on a service it routes to.
pub mod tower_service_bounds {
    use super::*;

    pub trait GrpcService:
        tonic::codegen::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static
    {
    }

    impl<S> GrpcService for S where
        S: tonic::codegen::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = Infallible,
                Future: Send + 'static,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static
    {
    }
}

/// `main` of a service binary: parse settings (`HUB_*`, flags override),
/// start logging, bind, run until SIGINT/SIGTERM. A bad setting or a failed
/// start prints one line naming it and exits 1.
pub fn service_main<C, F, Fut>(
    name: &'static str,
    about: &'static str,
    default_listen: &'static str,
    run: F,
) -> std::process::ExitCode
where
    C: clap::Args + clap::FromArgMatches + AsRef<CommonArgs>,
    F: FnOnce(C, TcpListener) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let command = C::augment_args(
        clap::Command::new(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION")),
    );
    let config = match C::from_arg_matches(&command.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    crate::telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = server::bind(config.as_ref().listen_or(default_listen)).await?;
        run(config, listener).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl AsRef<CommonArgs> for CommonArgs {
    fn as_ref(&self) -> &CommonArgs {
        self
    }
}
