//! A throwaway identity provider's signing keys, made at test time: an RSA
//! key (RS256) and a P-256 key (ES256), their JSON Web Key Set, and access
//! tokens signed with either, with whatever claims a test needs.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// One signing key and its public JWK.
pub struct TestKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    /// A new 2048-bit RSA key for RS256.
    pub fn rsa(kid: &str) -> Self {
        use rsa::{pkcs1::EncodeRsaPrivateKey, traits::PublicKeyParts};
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
        let der = private.to_pkcs1_der().expect("PKCS#1");
        let public = private.to_public_key();
        let b64 = |b: Vec<u8>| URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                        "n": b64(public.n().to_bytes_be()), "e": b64(public.e().to_bytes_be())}),
        }
    }

    /// A new P-256 key for ES256.
    pub fn p256(kid: &str) -> Self {
        use p256::{elliptic_curve::sec1::ToEncodedPoint, pkcs8::EncodePrivateKey};
        let private = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = private.to_pkcs8_der().expect("PKCS#8");
        let point = private.public_key().to_encoded_point(false);
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                        "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))}),
        }
    }

    /// The public half, as a JWK.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// `claims` signed with this key (header `kid` set).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }
}

/// A JWKS holding `keys`' public halves.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Claims of a valid hub access token from `issuer` for `audience`, valid
/// from a minute ago for ten minutes.
pub fn claims(
    issuer: &str,
    audience: &str,
    sub: &str,
    role: &str,
    org: &str,
    partnerships: &[&str],
) -> Value {
    let now = now();
    json!({"iss": issuer, "aud": audience, "sub": sub, "iat": now - 60, "nbf": now - 60,
           "exp": now + 600, "hub_role": role, "hub_org_code": org,
           "hub_partnerships": partnerships})
}
