//! Signing in through the identity provider (NHS CIS2, Entra ID, Keycloak):
//! the OpenID Connect authorization-code flow with PKCE.
//!
//! `/auth/start` makes a fresh `state`, `nonce` and PKCE verifier, keeps
//! them here (never in the browser), puts `state` in a short-lived cookie
//! and sends the browser to the provider. `/auth/callback` accepts the
//! answer only with the `state` of that same browser's cookie, once, within
//! [`PENDING_FOR`]; it trades the code (with the verifier) at the
//! provider's token endpoint, checks the ID token (signature by the
//! provider's keys, issuer, audience = this client, expiry, the nonce) and
//! that the access token names the same person with the same role and
//! partnerships. The session then holds the access token, which the
//! projections check for themselves on every call, as they do any
//! caller's; it ends when that token expires, if not before.
//!
//! The provider's endpoints come from its discovery document
//! (`<issuer>/.well-known/openid-configuration`), read at start.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use hub_core::Error;

/// How long a sign-in may take at the provider.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// Most sign-ins under way at once (older ones are forgotten first).
const MOST_PENDING: usize = 10_000;

/// The dashboard's client at the provider.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OidcClientArgs {
    /// The dashboard's client id at the identity provider (with
    /// HUB_OIDC_ISSUER): people then sign in there.
    #[arg(long, env = "HUB_DASHBOARD_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// Its client secret, for a confidential client (sent with HTTP Basic
    /// authentication); none for a public client, which PKCE protects.
    #[arg(long, env = "HUB_DASHBOARD_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<hub_runtime::config::Redacted>,
    /// Where the provider sends people back: this dashboard's public
    /// `https://…/auth/callback`, as registered with the provider.
    #[arg(long, env = "HUB_DASHBOARD_OIDC_REDIRECT_URL")]
    pub oidc_redirect_url: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    id_token: String,
}

struct Pending {
    verifier: String,
    nonce: String,
    created: Instant,
}

/// A sign-in sent to the provider: its `state` (for the cookie) and where
/// to send the browser.
pub struct Begun {
    pub state: String,
    pub url: String,
}

/// What a finished sign-in gives: the access token (for the session) and
/// the ID token (to end the provider's session at sign-out).
pub struct SignedIn {
    pub access_token: String,
    pub id_token: String,
}

/// The dashboard's sign-in at one provider.
pub struct OidcLogin {
    client_id: String,
    client_secret: Option<String>,
    redirect_url: String,
    endpoints: Discovery,
    http: reqwest::Client,
    pending: Mutex<HashMap<String, Pending>>,
}

fn config(name: &'static str, why: impl std::fmt::Display) -> Error {
    Error::config(name, why.to_string())
}

/// The PKCE S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl OidcLogin {
    /// Reads the provider's discovery document. `None` when no client id
    /// is set (sign-in by token only).
    pub async fn discover(
        args: &OidcClientArgs,
        issuer: Option<&str>,
        ca: Option<&std::path::Path>,
    ) -> Result<Option<Self>, Error> {
        let Some(client_id) = args.oidc_client_id.clone().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let issuer = issuer.ok_or_else(|| {
            config(
                "HUB_OIDC_ISSUER",
                "required with HUB_DASHBOARD_OIDC_CLIENT_ID (with HUB_OIDC_AUDIENCE and the keys)",
            )
        })?;
        let redirect_url = args.oidc_redirect_url.clone().ok_or_else(|| {
            config(
                "HUB_DASHBOARD_OIDC_REDIRECT_URL",
                "required with HUB_DASHBOARD_OIDC_CLIENT_ID: this dashboard's https://…/auth/callback",
            )
        })?;
        if !redirect_url.starts_with("https://") && !hub_runtime::tls::loopback_http(&redirect_url)
        {
            return Err(config(
                "HUB_DASHBOARD_OIDC_REDIRECT_URL",
                "must be https:// (plain http only to 127.0.0.1 or localhost)",
            ));
        }
        let http = hub_runtime::tls::http_client(!hub_runtime::tls::loopback_http(issuer), ca)
            .map_err(|e| config("HUB_TLS_CA_FILE", e))?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let text = http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| config("HUB_OIDC_ISSUER", format!("{url}: {e}")))?
            .text()
            .await
            .map_err(|e| config("HUB_OIDC_ISSUER", format!("{url}: {e}")))?;
        let endpoints: Discovery = serde_json::from_str(&text).map_err(|e| {
            config(
                "HUB_OIDC_ISSUER",
                format!("{url}: not a discovery document: {e}"),
            )
        })?;
        if endpoints.issuer != issuer {
            return Err(config(
                "HUB_OIDC_ISSUER",
                format!("the provider calls itself {}", endpoints.issuer),
            ));
        }
        Ok(Some(Self {
            client_id,
            client_secret: args.oidc_client_secret.as_ref().map(|s| s.0.clone()),
            redirect_url,
            endpoints,
            http,
            pending: Mutex::default(),
        }))
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Starts a sign-in: where to send the browser, and the state for its
    /// cookie.
    pub fn begin(&self) -> Result<Begun, Error> {
        let state = crate::session::random_id();
        let pending = Pending {
            verifier: crate::session::random_id(),
            nonce: crate::session::random_id(),
            created: Instant::now(),
        };
        let url = reqwest::Url::parse_with_params(
            &self.endpoints.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", self.client_id.as_str()),
                ("redirect_uri", self.redirect_url.as_str()),
                ("scope", "openid hub"),
                ("state", state.as_str()),
                ("nonce", pending.nonce.as_str()),
                ("code_challenge", challenge(&pending.verifier).as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|e| Error::internal_from("the provider's authorization endpoint", e))?;
        let mut all = self.pending.lock().expect("pending lock");
        all.retain(|_, p| p.created.elapsed() < PENDING_FOR);
        if all.len() >= MOST_PENDING {
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(state.clone(), pending);
        Ok(Begun {
            state,
            url: url.into(),
        })
    }

    /// Finishes the sign-in `state` (taken: it cannot be used twice) with
    /// the provider's `code`; `verify` checks the ID token for this
    /// client and the sign-in's nonce.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        verify: impl Fn(&str, &str, &str) -> Result<hub_core::auth::Caller, Error>,
        authenticate: impl Fn(&str) -> Result<std::sync::Arc<hub_core::auth::Caller>, Error>,
    ) -> Result<SignedIn, Error> {
        let pending = self
            .pending
            .lock()
            .expect("pending lock")
            .remove(state)
            .filter(|p| p.created.elapsed() < PENDING_FOR)
            .ok_or_else(|| {
                Error::Unauthenticated("this sign-in is unknown, used or expired".into())
            })?;
        let mut request = self.http.post(&self.endpoints.token_endpoint).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_url.as_str()),
            ("client_id", self.client_id.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ]);
        if let Some(secret) = &self.client_secret {
            request = request.basic_auth(&self.client_id, Some(secret));
        }
        let response = request.send().await.map_err(|e| {
            // reqwest's own message hides the cause (refused, TLS, timeout).
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            Error::unavailable(format!("the identity provider: {why}"))
        })?;
        if !response.status().is_success() {
            return Err(Error::Unauthenticated(format!(
                "the identity provider refused the sign-in (HTTP {})",
                response.status()
            )));
        }
        let tokens: TokenResponse = response
            .json()
            .await
            .map_err(|e| Error::unavailable_from("the identity provider's token answer", e))?;
        let person = verify(&tokens.id_token, &self.client_id, &pending.nonce)?;
        let caller = authenticate(&tokens.access_token)?;
        if caller.user_id != person.user_id
            || caller.role != person.role
            || caller.org_code != person.org_code
            || caller.partnerships != person.partnerships
        {
            return Err(Error::Unauthenticated(
                "the access token does not name the person the ID token names".into(),
            ));
        }
        Ok(SignedIn {
            access_token: tokens.access_token,
            id_token: tokens.id_token,
        })
    }

    /// Where to send the browser to end the provider's session too, if it
    /// says (RP-initiated logout), returning to `back`.
    pub fn end_session_url(&self, id_token: &str, back: &str) -> Option<String> {
        let endpoint = self.endpoints.end_session_endpoint.as_deref()?;
        reqwest::Url::parse_with_params(
            endpoint,
            [
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", back),
                ("client_id", self.client_id.as_str()),
            ],
        )
        .ok()
        .map(Into::into)
    }

    /// Where the provider sends people back after sign-out: the sign-in
    /// page beside the callback.
    pub fn after_sign_out(&self) -> String {
        self.redirect_url.replace("/auth/callback", "/login")
    }
}

#[cfg(test)]
mod tests {
    use super::challenge;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
