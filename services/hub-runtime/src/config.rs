//! Settings every service reads. Each is an environment variable from the
//! contract (section 1) with its default; a command-line flag overrides it.
//! Values are checked at start-up, and a bad one stops the process with a
//! message naming the setting.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use hub_core::{partnerships::PartnershipRegister, secret::HubSecret, Error};

/// Where the pick-up and training projections answer, for a process that
/// reads their figures with its callers' tokens (the dashboard, and the
/// activity projection's national comparison).
#[derive(clap::Args, Debug, Clone)]
pub struct ProjectionAddrs {
    /// pickup-projection's gRPC address.
    #[arg(
        long,
        env = "HUB_PICKUP_PROJECTION_ADDR",
        default_value = "127.0.0.1:50061"
    )]
    pub pickup_projection_addr: String,
    /// training-projection's gRPC address.
    #[arg(
        long,
        env = "HUB_TRAINING_PROJECTION_ADDR",
        default_value = "127.0.0.1:50062"
    )]
    pub training_projection_addr: String,
}

impl ProjectionAddrs {
    /// Channels to the pick-up and training projections, connected when
    /// first used (over TLS for an `https://` address).
    pub fn channels(
        &self,
        tls: &crate::tls::ClientTlsArgs,
    ) -> Result<(tonic::transport::Channel, tonic::transport::Channel), Error> {
        Ok((
            tls.channel("HUB_PICKUP_PROJECTION_ADDR", &self.pickup_projection_addr)?,
            tls.channel(
                "HUB_TRAINING_PROJECTION_ADDR",
                &self.training_projection_addr,
            )?,
        ))
    }
}

/// How to reach NATS and the event stream: shared by the services and by
/// `hubctl events tail`, which reads the stream directly.
#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    /// NATS server(s), comma-separated.
    #[arg(long, env = "HUB_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The JetStream stream holding every event.
    #[arg(long, env = "HUB_STREAM", default_value = "HUB_EVENTS")]
    pub stream: String,
    /// NATS user (with HUB_NATS_PASSWORD), one per process: see
    /// deploy/nats/hub.conf.
    #[arg(long, env = "HUB_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password for HUB_NATS_USER.
    #[arg(long, env = "HUB_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<Redacted>,
    /// NATS credentials file (JWT and NKey seed), instead of user and password.
    #[arg(long, env = "HUB_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate (PEM) to verify the NATS server; enables TLS.
    #[arg(long, env = "HUB_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with HUB_NATS_TLS_KEY.
    #[arg(long, env = "HUB_NATS_TLS_CERT")]
    pub nats_tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, env = "HUB_NATS_TLS_KEY")]
    pub nats_tls_key: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address this service listens on (default: the contract's table).
    #[arg(long, env = "HUB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address for Prometheus metrics (default: the gRPC port + 1000).
    #[arg(long, env = "HUB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Caller tokens (JSON).
    #[arg(long, env = "HUB_TOKENS_FILE", default_value = "seeds/dev-tokens.json")]
    pub tokens_file: PathBuf,
    /// 32+ random bytes behind pseudonyms and personal-data encryption.
    /// Never created by a service: one missing, unreadable or readable by
    /// group or others stops it (`hubctl secret create` makes one). Read
    /// only by the processes that need it (not the dashboard or the
    /// training projection).
    #[arg(long, env = "HUB_SECRET_FILE", default_value = "./var/hub.secret")]
    pub secret_file: PathBuf,
    /// The partnership register (TSV).
    #[arg(
        long,
        env = "HUB_PARTNERSHIPS_FILE",
        default_value = "seeds/partnerships.tsv"
    )]
    pub partnerships_file: PathBuf,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Live streams (pick-up watches, dashboard live pages) one caller may
    /// hold open at once; past it, RESOURCE_EXHAUSTED.
    #[arg(long, env = "HUB_MAX_STREAMS_PER_CALLER",
          default_value_t = crate::quota::DEFAULT_STREAMS_PER_CALLER,
          value_parser = parse_stream_cap)]
    pub max_streams_per_caller: usize,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// What the event stream must be like: read by every service (to check
/// it) and by `hubctl nats init` (to create it so).
#[derive(clap::Args, Debug, Clone)]
pub struct StreamArgs {
    /// How long JetStream remembers a request id for deduplication
    /// (e.g. 90s, 30m, 24h, 7d). See README "Retries and duplicates".
    #[arg(long, env = "HUB_DEDUPE_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub dedupe_window: Duration,
    /// Copies of the event stream JetStream keeps, on different servers of
    /// a cluster: 1 for a single server, 3 in production (deploy/nats/cluster).
    /// `hubctl nats init` creates the stream and buckets with it and
    /// raises, never lowers, an existing stream's.
    #[arg(long, env = "HUB_STREAM_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,
}

impl StreamArgs {
    /// The settings as the event log takes them.
    pub fn settings(&self) -> crate::eventlog::StreamSettings {
        crate::eventlog::StreamSettings {
            dedupe_window: self.dedupe_window,
            replicas: self.stream_replicas as usize,
        }
    }
}

/// An identity provider whose access tokens (JWTs) are accepted besides
/// the tokens file (contract section 4).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OidcArgs {
    /// The provider's issuer (`iss`), e.g. https://login.example.nhs.uk.
    #[arg(long, env = "HUB_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The audience (`aud`) tokens must be for.
    #[arg(long, env = "HUB_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The provider's signing keys (a JWKS file), read again on SIGHUP.
    #[arg(long, env = "HUB_OIDC_JWKS_FILE")]
    pub oidc_jwks_file: Option<PathBuf>,
    /// Or where to fetch them (refreshed every 5 minutes and on SIGHUP).
    #[arg(long, env = "HUB_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
}

/// A secret setting: `Debug` never shows it.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl NatsArgs {
    /// Connection options for NATS: credentials and TLS from the settings.
    pub async fn nats_options(&self) -> Result<async_nats::ConnectOptions, Error> {
        let mut options = async_nats::ConnectOptions::new();
        match (&self.nats_user, &self.nats_password, &self.nats_creds) {
            (Some(_), _, Some(_)) => {
                return Err(Error::config(
                    "HUB_NATS_CREDS",
                    "give either HUB_NATS_USER/HUB_NATS_PASSWORD or HUB_NATS_CREDS, not both",
                ))
            }
            (Some(user), Some(password), None) => {
                options = options.user_and_password(user.clone(), password.0.clone())
            }
            (Some(_), None, None) => {
                return Err(Error::config(
                    "HUB_NATS_PASSWORD",
                    "required with HUB_NATS_USER",
                ))
            }
            (None, Some(_), _) => {
                return Err(Error::config(
                    "HUB_NATS_USER",
                    "required with HUB_NATS_PASSWORD",
                ))
            }
            (None, None, Some(creds)) => {
                options = options.credentials_file(creds).await.map_err(|e| {
                    Error::config("HUB_NATS_CREDS", format!("{}: {e}", creds.display()))
                })?
            }
            (None, None, None) => {}
        }
        if let Some(ca) = &self.nats_tls_ca {
            if !ca.exists() {
                return Err(Error::config(
                    "HUB_NATS_TLS_CA",
                    format!("{} does not exist", ca.display()),
                ));
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.nats_tls_cert, &self.nats_tls_key) {
            (Some(cert), Some(key)) => {
                options = options
                    .add_client_certificate(cert.clone(), key.clone())
                    .require_tls(true)
            }
            (None, None) => {}
            _ => {
                return Err(Error::config(
                    "HUB_NATS_TLS_CERT",
                    "HUB_NATS_TLS_CERT and HUB_NATS_TLS_KEY go together",
                ))
            }
        }
        Ok(options)
    }

    /// The NATS URLs, checked.
    pub fn nats_urls(&self) -> Result<Vec<async_nats::ServerAddr>, Error> {
        let urls: Vec<_> = self
            .nats_url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(Error::config("HUB_NATS_URL", "no server given"));
        }
        urls.iter()
            .map(|u| {
                u.parse::<async_nats::ServerAddr>()
                    .map_err(|e| Error::config("HUB_NATS_URL", format!("{u}: {e}")))
            })
            .collect()
    }
}

impl CommonArgs {
    /// What the event stream must be like.
    pub fn stream_settings(&self) -> crate::eventlog::StreamSettings {
        self.stream.settings()
    }

    /// The listen address, or `default` when none was set.
    pub fn listen_or(&self, default: &str) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| default.parse().expect("default addresses are valid"))
    }

    /// The callers this process accepts (tokens file, identity provider),
    /// reloaded on SIGHUP. `listen` are the addresses it listens on: plain
    /// tokens are refused unless all are loopback.
    pub async fn authenticator(
        &self,
        listen: &[SocketAddr],
    ) -> Result<std::sync::Arc<crate::authn::Authenticator>, Error> {
        let loopback_only = listen.iter().all(|a| a.ip().is_loopback());
        let auth = crate::authn::Authenticator::load(self, loopback_only).await?;
        auth.keep_current()?;
        Ok(auth)
    }

    pub fn load_secret(&self) -> Result<HubSecret, Error> {
        HubSecret::load(&self.secret_file)
    }

    pub fn load_partnerships(&self) -> Result<PartnershipRegister, Error> {
        let register = PartnershipRegister::load(&self.partnerships_file)?;
        if register.is_empty() {
            return Err(Error::config(
                "HUB_PARTNERSHIPS_FILE",
                "lists no partnership",
            ));
        }
        Ok(register)
    }
}

/// A cap of live streams: 1 to 1000.
fn parse_stream_cap(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` must be a number from 1 to 1000")),
    }
}

/// `90s`, `30m`, `24h`, `7d`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 30m, 24h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("must be more than 0".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("120").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
