//! Who is calling: the tokens file and, where an identity provider issues
//! tokens, its JSON Web Key Set, held so that both can change under a
//! running service (contract section 4).
//!
//! - `SIGHUP` reads the tokens file (and a JWKS file) again; a revoked
//!   token fails on its next call. A file that no longer parses is
//!   refused and the previous one kept, with an error in the log.
//! - A JWKS given by URL is fetched at start and again every
//!   [`JWKS_REFRESH`] (and on `SIGHUP`), so a provider's key rotation is
//!   followed without a restart.
//! - A tokens file with plain `token` entries is refused by a service that
//!   listens off loopback: there, entries must give `token_sha256`.
//!
//! The checks themselves are pure and live in `hub_core::auth` and
//! `hub_core::oidc`.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use hub_core::{
    auth::{bearer, Caller, TokenRegistry},
    oidc::OidcVerifier,
    Error,
};

use crate::config::CommonArgs;

/// How often a JWKS given by URL is fetched again.
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// Where the identity provider's keys come from.
#[derive(Debug, Clone)]
enum JwksSource {
    File(PathBuf),
    Url(String),
}

#[derive(Debug, Clone)]
struct OidcSettings {
    issuer: String,
    audience: String,
    jwks: JwksSource,
    /// Extra CA (PEM) trusted when fetching the JWKS over https.
    ca_file: Option<PathBuf>,
}

/// The callers a service accepts, reloadable.
pub struct Authenticator {
    tokens_file: PathBuf,
    /// Plain `token` entries are allowed only when every listener of the
    /// process is on loopback.
    loopback_only: bool,
    oidc: Option<OidcSettings>,
    tokens: RwLock<Arc<TokenRegistry>>,
    verifier: RwLock<Option<Arc<OidcVerifier>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authenticator({})", self.tokens_file.display())
    }
}

impl Authenticator {
    /// Loads the tokens file and the identity provider's keys named by
    /// `args`. `loopback_only` says whether the process listens on
    /// loopback alone (plain tokens allowed).
    pub async fn load(args: &CommonArgs, loopback_only: bool) -> Result<Arc<Self>, Error> {
        let oidc = oidc_settings(args)?;
        let this = Arc::new(Self {
            tokens_file: args.tokens_file.clone(),
            loopback_only,
            oidc,
            tokens: RwLock::new(Arc::new(TokenRegistry::default())),
            verifier: RwLock::new(None),
        });
        this.reload().await?;
        Ok(this)
    }

    /// Reads the tokens file and the JWKS again; on any error the ones in
    /// use stay.
    pub async fn reload(&self) -> Result<(), Error> {
        let tokens = TokenRegistry::load(&self.tokens_file)?;
        if !self.loopback_only && tokens.plain_entries() > 0 {
            return Err(Error::config(
                "HUB_TOKENS_FILE",
                format!(
                    "{}: {} entries give a plain `token`, which is allowed only on loopback \
                     (development); give `token_sha256` (the hex SHA-256 of the token) instead",
                    self.tokens_file.display(),
                    tokens.plain_entries()
                ),
            ));
        }
        let verifier = match &self.oidc {
            Some(settings) => Some(Arc::new(load_verifier(settings).await?)),
            None => None,
        };
        *self.tokens.write().expect("tokens lock") = Arc::new(tokens);
        *self.verifier.write().expect("verifier lock") = verifier;
        Ok(())
    }

    /// The caller behind an `authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Caller>, Error> {
        let token = bearer(authorization)?;
        if let Some(caller) = self.tokens.read().expect("tokens lock").find(token) {
            return Ok(caller.clone());
        }
        if OidcVerifier::looks_like_jwt(token) {
            let verifier = self.verifier.read().expect("verifier lock").clone();
            if let Some(verifier) = verifier {
                return verifier.verify(token).map(Arc::new);
            }
        }
        Err(Error::Unauthenticated("unknown token".into()))
    }

    /// The person an ID token from a sign-in at the identity provider
    /// names (see [`OidcVerifier::verify_id_token`]).
    pub fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Caller, Error> {
        let verifier = self.verifier.read().expect("verifier lock").clone();
        match verifier {
            Some(v) => v.verify_id_token(token, client_id, nonce),
            None => Err(Error::Unauthenticated(
                "no identity provider is configured (HUB_OIDC_ISSUER)".into(),
            )),
        }
    }

    /// The identity provider's issuer, when one is configured.
    pub fn oidc_issuer(&self) -> Option<&str> {
        self.oidc.as_ref().map(|o| o.issuer.as_str())
    }

    /// Reloads on every `SIGHUP`, and fetches a JWKS given by URL every
    /// [`JWKS_REFRESH`], for as long as the process runs.
    pub fn keep_current(self: &Arc<Self>) -> Result<(), Error> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| Error::internal_from("handling SIGHUP", e))?;
        let this = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match this.reload().await {
                    Ok(()) => {
                        tracing::info!(file = %this.tokens_file.display(), "SIGHUP: callers reloaded");
                        println!("callers reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: callers not reloaded; the previous ones stay")
                    }
                }
            }
        });
        if let Some(
            settings @ OidcSettings {
                jwks: JwksSource::Url(_),
                ..
            },
        ) = self.oidc.clone()
        {
            let this = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(JWKS_REFRESH);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match load_verifier(&settings).await {
                        Ok(v) => *this.verifier.write().expect("verifier lock") = Some(Arc::new(v)),
                        Err(e) => {
                            tracing::warn!(error = %e, "identity provider keys not refreshed; the previous ones stay")
                        }
                    }
                }
            });
        }
        Ok(())
    }
}

fn oidc_settings(args: &CommonArgs) -> Result<Option<OidcSettings>, Error> {
    let o = &args.oidc;
    if o.oidc_issuer.is_none()
        && o.oidc_audience.is_none()
        && o.oidc_jwks_file.is_none()
        && o.oidc_jwks_url.is_none()
    {
        return Ok(None);
    }
    let issuer = o.oidc_issuer.clone().ok_or_else(|| {
        Error::config(
            "HUB_OIDC_ISSUER",
            "required with the other HUB_OIDC_ settings",
        )
    })?;
    let audience = o
        .oidc_audience
        .clone()
        .ok_or_else(|| Error::config("HUB_OIDC_AUDIENCE", "required with HUB_OIDC_ISSUER"))?;
    let jwks = match (&o.oidc_jwks_file, &o.oidc_jwks_url) {
        (Some(file), None) => JwksSource::File(file.clone()),
        (None, Some(url)) => JwksSource::Url(url.clone()),
        _ => {
            return Err(Error::config(
                "HUB_OIDC_JWKS_FILE",
                "give exactly one of HUB_OIDC_JWKS_FILE and HUB_OIDC_JWKS_URL",
            ))
        }
    };
    Ok(Some(OidcSettings {
        issuer,
        audience,
        jwks,
        ca_file: args.tls.client.tls_ca_file.clone(),
    }))
}

async fn load_verifier(settings: &OidcSettings) -> Result<OidcVerifier, Error> {
    let (text, source) = match &settings.jwks {
        JwksSource::File(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                Error::config("HUB_OIDC_JWKS_FILE", format!("{}: {e}", path.display()))
            })?,
            path.display().to_string(),
        ),
        JwksSource::Url(url) => (
            crate::tls::http_get(url, settings.ca_file.as_deref())
                .await
                .map_err(|e| Error::config("HUB_OIDC_JWKS_URL", format!("{url}: {e}")))?,
            url.clone(),
        ),
    };
    OidcVerifier::new(&settings.issuer, &settings.audience, &text, &source)
}
