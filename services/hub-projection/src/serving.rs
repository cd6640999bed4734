//! Start-up shared by every projection binary (feature `server`).

use std::{future::Future, path::PathBuf, sync::Arc};

use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{runtime::Parts, source::JetStreamSource, status};
use hub_core::Error;
use hub_proto::projections::projection_status_service_server::ProjectionStatusServiceServer;
use hub_runtime::{config::CommonArgs, eventlog, prometheus, server};

pub use crate::consumer::ApplyFn;
pub use crate::runtime::Projection;

/// Settings of a projection binary.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the projection keeps its RocksDB stores.
    #[arg(long, env = "HUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl AsRef<CommonArgs> for Config {
    fn as_ref(&self) -> &CommonArgs {
        &self.common
    }
}

/// What a projection binary is: the same for every run of it.
pub struct Spec {
    /// The binary's name (`pickup-projection`), also the durable consumer's.
    pub name: &'static str,
    /// The status service's `projection` field (`pickup`, `training`).
    pub label: &'static str,
    /// Its query service's full name, for health.
    pub service_name: &'static str,
    /// The version of the store layout this code writes.
    pub schema: u32,
    /// How it folds one event into its store.
    pub apply: Arc<ApplyFn>,
}

/// Opens the store (rebuilding it if the spec's layout version is newer
/// than the store's), starts consuming, serves `routes` (plus status,
/// reflection, health and metrics) until `shutdown`.
///
/// `audit_secret` is the hub secret of a projection that serves
/// person-level reads and so keeps the audit trail; a projection that
/// serves only counts passes `None` and never reads the secret.
pub async fn serve(
    spec: Spec,
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    audit_secret: Option<&hub_core::secret::HubSecret>,
    routes: impl FnOnce(Arc<Projection>) -> Routes,
) -> Result<(), Error> {
    let Spec {
        name,
        label,
        service_name,
        schema,
        apply,
    } = spec;
    let args = &config.common;
    let grpc_addr = listener
        .local_addr()
        .map_err(|e| Error::internal_from("the listener's address", e))?;
    // A file-size limit (RLIMIT_FSIZE, a full quota) must fail a write
    // with an error the consumer handles, not kill the process
    // (SIGXFSZ's default): handled, the signal is only recorded.
    let _size_limit_signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
            .map_err(|e| Error::internal_from("handling SIGXFSZ", e))?;
    // Plaintext off loopback is refused before anything else is read.
    args.tls.check_listener("HUB_LISTEN", grpc_addr)?;
    prometheus::start(name, args.metrics_listen, grpc_addr, &args.tls).await?;
    let data_dir = config
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("./var/{name}")));
    let auth = args.authenticator(&[grpc_addr]).await?;
    let partnerships = args.load_partnerships()?;
    let client = eventlog::connect(&args.nats, name).await?;
    let log = eventlog::EventLog::open(client, &args.nats.stream, args.stream_settings()).await?;
    let trail = audit_secret.map(|secret| crate::trail::AuditTrail::new(log.clone(), secret));
    let parts = Parts {
        name,
        data_dir,
        schema,
        source: Arc::new(JetStreamSource::new(log.clone())),
        log,
        apply,
        auth,
        partnerships,
        trail,
    };
    // Opening a store reads its files (and removes leftovers of an
    // interrupted rebuild): on the blocking pool.
    let projection = crate::consumer::on_storage(move || Projection::open(parts)).await?;
    projection.start();
    let lag_reporter = tokio::spawn(projection.engine().clone().report_lag());
    let (health, health_service) = tonic_health::server::health_reporter();
    // Health follows the store: NOT_SERVING while it cannot be used.
    let health_follows_store = {
        let mut fault = projection.watch_fault();
        tokio::spawn(async move {
            loop {
                let status = match fault.borrow_and_update().as_ref() {
                    Some(_) => tonic_health::ServingStatus::NotServing,
                    None => tonic_health::ServingStatus::Serving,
                };
                health.set_service_status("", status).await;
                health.set_service_status(service_name, status).await;
                if fault.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let status = ProjectionStatusServiceServer::new(status::StatusApi {
        projection: projection.clone(),
        label,
    });
    let routes = routes(projection.clone())
        .add_service(health_service)
        .add_service(status);
    // Watches and rebuild progress end as soon as the stop is asked for.
    let shutdown = hub_runtime::shutdown::cancelling(shutdown, projection.stopping().clone());
    let served = server::serve(name, listener, &args.tls, routes, shutdown).await;
    lag_reporter.abort();
    health_follows_store.abort();
    projection.stop().await;
    served
}
