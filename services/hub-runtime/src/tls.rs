//! Transport security (contract section 6), the same for every listener
//! and every client of the hub.
//!
//! - A listener serves TLS when `HUB_TLS_CERT_FILE` and `HUB_TLS_KEY_FILE`
//!   are set, and asks for a client certificate signed by
//!   `HUB_TLS_CLIENT_CA_FILE` when that is set too (mutual TLS).
//! - A listener off loopback without TLS is refused at start, unless
//!   `HUB_ALLOW_PLAINTEXT=1` says a proxy in front terminates TLS: bearer
//!   tokens and names must never cross a network in clear by accident.
//! - A client (hubctl, the dashboard) calls an `https://` address over TLS,
//!   trusting `HUB_TLS_CA_FILE` (else the system's roots) and presenting
//!   `HUB_TLS_CLIENT_CERT_FILE` / `HUB_TLS_CLIENT_KEY_FILE` where given.
//!
//! All of it is rustls with the ring provider: the one already under
//! async-nats, so no second crypto library is built.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use hub_core::Error;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings of a process: its own listener's, and those it uses
/// to call other hub processes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Certificate chain (PEM) this process serves TLS with.
    #[arg(long, env = "HUB_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of HUB_TLS_CERT_FILE.
    #[arg(long, env = "HUB_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA (PEM) whose client certificates this process requires (mutual TLS).
    #[arg(long, env = "HUB_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Listen off loopback without TLS: only behind a proxy that
    /// terminates TLS.
    #[arg(long, env = "HUB_ALLOW_PLAINTEXT",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_plaintext: bool,
    #[command(flatten)]
    pub client: ClientTlsArgs,
}

/// The TLS settings of a process that calls other hub processes (hubctl,
/// the dashboard) or the identity provider.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// CA (PEM) trusted when calling an https:// address (default: the
    /// system's roots).
    #[arg(long, env = "HUB_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) presented when calling an https:// address.
    #[arg(long, env = "HUB_TLS_CLIENT_CERT_FILE")]
    pub tls_client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of HUB_TLS_CLIENT_CERT_FILE.
    #[arg(long, env = "HUB_TLS_CLIENT_KEY_FILE")]
    pub tls_client_key_file: Option<PathBuf>,
}

fn read(setting: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::config(setting, format!("{}: {e}", path.display())))
}

/// A server's certificate, key and (for mutual TLS) client CA, read.
pub struct ServerTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl TlsArgs {
    /// The server side, if TLS is configured; a half-given setting is an
    /// error naming the missing one.
    pub fn server(&self) -> Result<Option<ServerTls>, Error> {
        let (cert, key) = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => (
                read("HUB_TLS_CERT_FILE", cert)?,
                read("HUB_TLS_KEY_FILE", key)?,
            ),
            (None, None) => {
                if self.tls_client_ca_file.is_some() {
                    return Err(Error::config(
                        "HUB_TLS_CLIENT_CA_FILE",
                        "needs HUB_TLS_CERT_FILE and HUB_TLS_KEY_FILE (mutual TLS is TLS first)",
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => {
                return Err(Error::config(
                    "HUB_TLS_KEY_FILE",
                    "required with HUB_TLS_CERT_FILE",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "HUB_TLS_CERT_FILE",
                    "required with HUB_TLS_KEY_FILE",
                ))
            }
        };
        let client_ca = match &self.tls_client_ca_file {
            Some(ca) => Some(read("HUB_TLS_CLIENT_CA_FILE", ca)?),
            None => None,
        };
        let tls = ServerTls {
            cert,
            key,
            client_ca,
        };
        // Parse now, so a bad file stops the start with its setting named.
        tls.rustls()?;
        Ok(Some(tls))
    }

    /// Refuses a plaintext listener off loopback (see the module docs).
    /// `setting` names the listen address's variable.
    pub fn check_listener(&self, setting: &str, addr: SocketAddr) -> Result<(), Error> {
        let tls = self.tls_cert_file.is_some() && self.tls_key_file.is_some();
        if tls || addr.ip().is_loopback() || self.allow_plaintext {
            return Ok(());
        }
        Err(Error::config(
            setting,
            format!(
                "refusing to listen on {addr} without TLS: set HUB_TLS_CERT_FILE and \
                 HUB_TLS_KEY_FILE, or HUB_ALLOW_PLAINTEXT=1 if a proxy in front of this \
                 service terminates TLS"
            ),
        ))
    }
}

impl ClientTlsArgs {
    /// A lazily connecting channel to another hub process at `addr`
    /// (`host:port`, `http://…` or `https://…`). `setting` names the
    /// variable the address came from, for errors.
    pub fn channel(&self, setting: &str, addr: &str) -> Result<Channel, Error> {
        Ok(self.endpoint(setting, addr)?.connect_lazy())
    }

    /// The endpoint of [`Self::channel`], to connect at once.
    pub fn endpoint(&self, setting: &str, addr: &str) -> Result<Endpoint, Error> {
        let url = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let mut endpoint = Channel::from_shared(url.clone())
            .map_err(|e| Error::config(setting, format!("{addr}: {e}")))?;
        if url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(self.client()?)
                .map_err(|e| Error::config(setting, format!("{addr}: {e}")))?;
        }
        Ok(endpoint)
    }

    /// The client side of TLS for tonic.
    fn client(&self) -> Result<ClientTlsConfig, Error> {
        let mut tls = ClientTlsConfig::new();
        tls = match &self.tls_ca_file {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read("HUB_TLS_CA_FILE", ca)?)),
            None => tls.with_native_roots(),
        };
        match (&self.tls_client_cert_file, &self.tls_client_key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read("HUB_TLS_CLIENT_CERT_FILE", cert)?,
                    read("HUB_TLS_CLIENT_KEY_FILE", key)?,
                ))
            }
            (None, None) => {}
            _ => {
                return Err(Error::config(
                    "HUB_TLS_CLIENT_CERT_FILE",
                    "HUB_TLS_CLIENT_CERT_FILE and HUB_TLS_CLIENT_KEY_FILE go together",
                ))
            }
        }
        Ok(tls.timeout(HANDSHAKE_TIMEOUT))
    }
}

impl ServerTls {
    /// For a tonic server.
    pub fn tonic(&self) -> ServerTlsConfig {
        let mut tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key))
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        tls
    }

    /// For an HTTP server (the dashboard, metrics): a rustls configuration
    /// offering HTTP/1.1 (and HTTP/2) by ALPN.
    pub fn rustls(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::config("HUB_TLS_CERT_FILE", format!("not PEM certificates: {e}"))
            })?;
        if certs.is_empty() {
            return Err(Error::config("HUB_TLS_CERT_FILE", "holds no certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| {
            Error::config("HUB_TLS_KEY_FILE", format!("not a PEM private key: {e}"))
        })?;
        let builder = rustls::ServerConfig::builder();
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    let cert = cert.map_err(|e| {
                        Error::config("HUB_TLS_CLIENT_CA_FILE", format!("not PEM: {e}"))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::config("HUB_TLS_CLIENT_CA_FILE", format!("not a CA: {e}"))
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| Error::config("HUB_TLS_CLIENT_CA_FILE", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            Error::config(
                "HUB_TLS_KEY_FILE",
                format!("does not fit the certificate: {e}"),
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Makes ring rustls's process-wide provider (reqwest asks for the
/// process default); harmless when one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves an axum router on `listener`, over TLS when `tls` is given,
/// until `shutdown`, then lets requests in flight finish for at most
/// `drain` (a live page's stream included).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<&ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> Result<(), Error> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(drain));
    });
    let listener = listener
        .into_std()
        .map_err(|e| Error::internal_from("listener", e))?;
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let served = match tls {
        Some(tls) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.rustls()?);
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(service)
                .await
        }
    };
    served.map_err(|e| Error::internal_from("HTTP server failed", e))
}

/// Whether `url` is plain http to this machine (allowed, for development).
pub fn loopback_http(url: &str) -> bool {
    url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost")
}

/// An HTTP client with a 10 s timeout that trusts `ca` (PEM) besides the
/// system's roots, and refuses plain http when `https_only`.
pub fn http_client(https_only: bool, ca: Option<&Path>) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        // Requests here are minutes apart (key sets, sign-ins): a pooled
        // connection would have been closed by the server meanwhile, and a
        // POST on it fails ("connection reset") rather than being retried.
        .pool_max_idle_per_host(0)
        .https_only(https_only);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
        client = client.add_root_certificate(cert);
    }
    client.build().map_err(|e| e.to_string())
}

/// The body of an HTTP(S) GET, trusting `ca` (PEM) besides the system's
/// roots: the identity provider's key set.
pub async fn http_get(url: &str, ca: Option<&Path>) -> Result<String, String> {
    let client = http_client(!loopback_http(url), ca)?;
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response.text().await.map_err(|e| e.to_string())
}
