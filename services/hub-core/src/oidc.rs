//! Access tokens from an identity provider (contract section 4): a JWT
//! signed by a key of the provider's JWKS (RS256 or ES256), checked for
//! `iss`, `aud`, `exp` and `nbf`, whose claims carry what a tokens-file
//! entry carries: `sub` is the caller, `hub_role`, `hub_org_code` and
//! `hub_partnerships` the rest.
//!
//! Pure: the key set comes in as JSON and the clock is the system's, read
//! by `jsonwebtoken`. Fetching and refreshing the key set is I/O and lives
//! with the services (`hub_runtime::authn`). The signature checks are the
//! `jsonwebtoken` crate's (RustCrypto), never written here.

use jsonwebtoken::{
    errors::ErrorKind,
    jwk::{AlgorithmParameters, JwkSet},
    Algorithm, DecodingKey, Validation,
};
use serde::Deserialize;

use crate::{
    auth::{scope_of, Caller, Role},
    Error,
};

/// Seconds of clock difference allowed between the provider and the hub.
pub const LEEWAY_SECONDS: u64 = 30;

/// One signing key of the provider.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Checks access tokens against one provider's issuer, audience and keys.
pub struct OidcVerifier {
    issuer: String,
    audience: String,
    keys: Vec<Key>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OidcVerifier({}, audience {}, {} keys)",
            self.issuer,
            self.audience,
            self.keys.len()
        )
    }
}

#[derive(Deserialize)]
struct HubClaims {
    sub: String,
    hub_role: String,
    hub_org_code: String,
    hub_partnerships: Vec<String>,
    /// ID tokens only: the sign-in's nonce.
    #[serde(default)]
    nonce: Option<String>,
}

impl OidcVerifier {
    /// A verifier for tokens from `issuer` meant for `audience`, signed by
    /// a key of `jwks` (a JSON Web Key Set). Keys of other kinds than RSA
    /// and P-256 (or meant for encryption) are skipped; a set with none
    /// left is refused.
    pub fn new(issuer: &str, audience: &str, jwks: &str, source: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::config("HUB_OIDC_JWKS_FILE", format!("{source}: {why}"));
        if issuer.is_empty() {
            return Err(Error::config("HUB_OIDC_ISSUER", "must not be empty"));
        }
        if audience.is_empty() {
            return Err(Error::config("HUB_OIDC_AUDIENCE", "must not be empty"));
        }
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| bad(format!("not a JSON Web Key Set: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec)
                    if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                bad(format!(
                    "key {}: {e}",
                    jwk.common.key_id.as_deref().unwrap_or("(no kid)")
                ))
            })?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        if keys.is_empty() {
            return Err(bad("holds no RS256 or ES256 signing key".into()));
        }
        Ok(Self {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            keys,
        })
    }

    /// Whether `token` looks like a JWT (three dot-separated parts), and so
    /// is worth checking here rather than in the tokens file.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && token.starts_with("eyJ")
    }

    /// The caller an access token names, or `Unauthenticated` saying what
    /// is wrong with it (never repeating the token).
    pub fn verify(&self, token: &str) -> Result<Caller, Error> {
        self.check(token, "access token", &self.audience, None)
    }

    /// The person an ID token from a sign-in names: the same checks, for
    /// the dashboard's own client id as audience, and its `nonce` must be
    /// the one the sign-in sent (so a token from another sign-in cannot be
    /// replayed into this one).
    pub fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Caller, Error> {
        self.check(token, "ID token", client_id, Some(nonce))
    }

    fn check(
        &self,
        token: &str,
        what: &str,
        audience: &str,
        nonce: Option<&str>,
    ) -> Result<Caller, Error> {
        let refuse = |why: &str| Error::Unauthenticated(format!("{what} refused: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("not a JWT"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(refuse("only RS256 and ES256 signatures are accepted"));
        }
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or_else(|| refuse("signed by a key the identity provider's key set does not hold"))?;
        if key.algorithm != header.alg {
            return Err(refuse("its algorithm does not match its key"));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data =
            jsonwebtoken::decode::<HubClaims>(token, &key.key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => refuse("expired"),
                    ErrorKind::ImmatureSignature => refuse("not valid yet (nbf)"),
                    ErrorKind::InvalidIssuer => refuse("wrong issuer"),
                    ErrorKind::InvalidAudience => refuse("wrong audience"),
                    ErrorKind::InvalidSignature => refuse("bad signature"),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        Error::Unauthenticated(format!("{what} refused: no {claim} claim"))
                    }
                    ErrorKind::Json(e) => Error::Unauthenticated(format!(
                        "{what} refused: its claims: {}",
                        // serde names the missing or mistyped field, never a value.
                        e.to_string().split(" at line").next().unwrap_or_default()
                    )),
                    _ => refuse("malformed"),
                }
            })?;
        let claims = data.claims;
        if let Some(nonce) = nonce {
            if claims.nonce.as_deref() != Some(nonce) {
                return Err(refuse("its nonce is not this sign-in's"));
            }
        }
        let role = Role::parse(&claims.hub_role).ok_or_else(|| {
            Error::Unauthenticated(format!(
                "{what} refused: hub_role {:?} is not a hub role",
                claims.hub_role
            ))
        })?;
        if claims.sub.is_empty() || claims.hub_org_code.is_empty() {
            return Err(refuse("sub and hub_org_code must not be empty"));
        }
        Ok(Caller {
            user_id: claims.sub,
            role,
            org_code: claims.hub_org_code,
            partnerships: scope_of(claims.hub_partnerships),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_testkit::jwt::{claims, jwks, now, TestKey};

    const ISS: &str = "https://idp.example.nhs.uk";
    const AUD: &str = "harm-reduction-hub";

    fn refused(v: &OidcVerifier, token: &str) -> String {
        match v.verify(token) {
            Err(Error::Unauthenticated(m)) => m,
            other => panic!("expected UNAUTHENTICATED, got {other:?}"),
        }
    }

    #[test]
    fn an_id_token_is_for_the_client_and_this_sign_in() {
        let rsa = TestKey::rsa("r1");
        let v = OidcVerifier::new(ISS, AUD, &jwks(&[&rsa]), "test").unwrap();
        let mut c = claims(ISS, "hub-dashboard", "u-5", "analyst", "LEI", &["bradford"]);
        c["hub_role"] = "partnership_analyst".into();
        c["nonce"] = "n-1".into();
        let token = rsa.sign(&c);
        let caller = v.verify_id_token(&token, "hub-dashboard", "n-1").unwrap();
        assert_eq!(
            (caller.user_id.as_str(), caller.role),
            ("u-5", Role::PartnershipAnalyst)
        );
        let refused = |r: Result<Caller, Error>| match r {
            Err(Error::Unauthenticated(m)) => m,
            other => panic!("expected UNAUTHENTICATED, got {other:?}"),
        };
        assert!(refused(v.verify_id_token(&token, "hub-dashboard", "n-2")).contains("nonce"));
        assert!(refused(v.verify_id_token(&token, "another-client", "n-1")).contains("audience"));
        // Not an access token for the hub either.
        assert!(refused(v.verify(&token)).contains("wrong audience"));
        c.as_object_mut().unwrap().remove("nonce");
        let no_nonce = rsa.sign(&c);
        assert!(refused(v.verify_id_token(&no_nonce, "hub-dashboard", "n-1")).contains("nonce"));
    }

    #[test]
    fn accepts_rs256_and_es256_and_refuses_every_bad_token() {
        let rsa = TestKey::rsa("r1");
        let ec = TestKey::p256("e1");
        let stranger = TestKey::rsa("r1");
        let v = OidcVerifier::new(ISS, AUD, &jwks(&[&rsa, &ec]), "test").unwrap();
        let good = claims(ISS, AUD, "u-77", "carat_worker", "LEI", &["bradford"]);
        for key in [&rsa, &ec] {
            let caller = v.verify(&key.sign(&good)).unwrap();
            assert_eq!(caller.user_id, "u-77");
            assert_eq!(caller.role, Role::CaratWorker);
            assert_eq!(caller.org_code, "LEI");
            assert!(caller.may_act_for("bradford") && !caller.may_act_for("leeds"));
        }
        let all = claims(ISS, AUD, "u-1", "admin", "HUB", &["*"]);
        assert!(v.verify(&ec.sign(&all)).unwrap().may_act_for("leeds"));

        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = good.clone();
            f(&mut c);
            rsa.sign(&c)
        };
        let expired = with(&|c| c["exp"] = (now() - 120).into());
        assert!(refused(&v, &expired).contains("expired"));
        let early = with(&|c| c["nbf"] = (now() + 300).into());
        assert!(refused(&v, &early).contains("not valid yet"));
        let wrong_iss = with(&|c| c["iss"] = "https://evil.example".into());
        assert!(refused(&v, &wrong_iss).contains("wrong issuer"));
        let wrong_aud = with(&|c| c["aud"] = "another-app".into());
        assert!(refused(&v, &wrong_aud).contains("wrong audience"));
        let forged = stranger.sign(&good);
        assert!(refused(&v, &forged).contains("bad signature"));
        let unknown_kid = TestKey::rsa("r9").sign(&good);
        assert!(refused(&v, &unknown_kid).contains("key set does not hold"));
        for claim in ["hub_role", "hub_org_code", "hub_partnerships", "sub"] {
            let token = with(&|c| {
                c.as_object_mut().unwrap().remove(claim);
            });
            assert!(refused(&v, &token).contains(claim), "{claim}");
        }
        let no_exp = with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        });
        assert!(refused(&v, &no_exp).contains("exp"));
        let wizard = with(&|c| c["hub_role"] = "wizard".into());
        assert!(refused(&v, &wizard).contains("not a hub role"));
        // An HS256 token signed with the public key as its secret (the
        // classic confusion attack) is refused before any key is used.
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &good,
            &jsonwebtoken::EncodingKey::from_secret(b"r1"),
        )
        .unwrap();
        assert!(refused(&v, &hs).contains("only RS256 and ES256"));
        assert!(refused(&v, "eyJhbGciOi.x.y").contains("not a JWT"));
    }

    #[test]
    fn refuses_settings_that_cannot_work() {
        let rsa = TestKey::rsa("r1");
        assert!(OidcVerifier::new("", AUD, &jwks(&[&rsa]), "t").is_err());
        assert!(OidcVerifier::new(ISS, "", &jwks(&[&rsa]), "t").is_err());
        let err = OidcVerifier::new(ISS, AUD, r#"{"keys": []}"#, "t").unwrap_err();
        assert!(err.to_string().contains("no RS256 or ES256"), "{err}");
        assert!(OidcVerifier::new(ISS, AUD, "not json", "t").is_err());
        assert!(OidcVerifier::looks_like_jwt(&rsa.sign(&claims(
            ISS,
            AUD,
            "u",
            "admin",
            "H",
            &["*"]
        ))));
        assert!(!OidcVerifier::looks_like_jwt("dev-admin-token-0123456789"));
    }
}
