//! Authentication: who is asking, proven by a JWT.
//!
//! Every request carries a token (`Authorization: Bearer …`, and for WebSockets the
//! `connection_init` payload). A token is accepted when its signature verifies with a key from
//! the configuration and its claims pass the rules; what it may then see is the policy's
//! business ([`crate::policy`] once it lands), keyed by the [`Principal`]'s role and claims.
//!
//! Keys:
//! - **HS256** with `auth.hs256_secret`: development, the demo and `opslive token`;
//! - **RS256/RS384/RS512/PS…/ES256/ES384** with the public keys of an issuer's JWKS
//!   (`auth.jwks_url`: Auth0 or any OIDC provider), chosen by the token's `kid`, cached and
//!   refreshed ([`jwks`]).
//!
//! The algorithm a token claims only selects among keys that were configured for that
//! algorithm: `alg: none` is refused, an HS256 token is only ever checked against the shared
//! secret (so one "signed" with an RSA public key fails), and a JWKS key verifies only the
//! algorithms its type (and its `alg`, when published) allow. Deny by default: without a
//! token, or with no key configured, the answer is `UNAUTHENTICATED`.

mod claims;
mod error;
mod header;
mod jwks;
mod mint;
mod revocation;
mod secret;
pub mod settings;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

pub use error::{AuthConfigError, AuthError};
pub use mint::{mint_for, mint_hs256, parse_claim};
pub use revocation::Revocations;
pub use secret::Secret;

use crate::config::AuthConfig;
use claims::ClaimRules;
use jwks::Jwks;

/// Who is asking, after a token was verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub role: Arc<str>,
    pub subject: Option<String>,
    /// All claims, for policy references (`warehouses`, a namespaced claim, …).
    pub claims: Map<String, Value>,
    /// Unix seconds; connections that outlive their token are closed then.
    pub expires_at: Option<i64>,
}

impl Principal {
    /// The claim at `path`, read as `auth.role_claim` is: `warehouses`, or
    /// `https://opslive.dev/claims.warehouses` inside a namespace claim.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        claims::lookup(&self.claims, path)
    }
}

/// Verifies tokens; cheap to clone (one shared key cache).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    hs256: Option<Arc<DecodingKey>>,
    jwks: Option<Arc<Jwks>>,
    rules: ClaimRules,
    revoked: Arc<Revocations>,
}

/// HS256 keys shorter than the hash output are refused (RFC 7518 §3.2).
pub(crate) const MIN_SECRET_BYTES: usize = 32;

const JWKS_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

impl Authenticator {
    /// Checks `[auth]` and, with a JWKS URL, fetches the issuer's keys once (an unreachable
    /// issuer is logged, not fatal) and starts refreshing them.
    pub async fn from_config(cfg: &AuthConfig) -> Result<Authenticator, AuthConfigError> {
        if cfg.role_claim.trim().is_empty() {
            return Err(AuthConfigError::RoleClaim);
        }
        let hs256 = match &cfg.hs256_secret {
            Some(secret) if secret.expose().len() < MIN_SECRET_BYTES => return Err(AuthConfigError::WeakSecret),
            Some(secret) => Some(Arc::new(DecodingKey::from_secret(secret.expose().as_bytes()))),
            None => None,
        };
        let jwks = match &cfg.jwks_url {
            Some(url) => Some(Jwks::start(url, cfg.jwks_refresh, cfg.jwks_min_refetch).await?),
            None => None,
        };
        if hs256.is_none() && jwks.is_none() {
            // Info, not a warning: serving only the operations endpoints is a normal setup.
            tracing::info!(
                "no auth.hs256_secret or auth.jwks_url is configured: every GraphQL request will be refused"
            );
        }
        let rules = ClaimRules {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway_seconds: cfg.leeway_seconds,
            role_claim: cfg.role_claim.clone(),
        };
        Ok(Authenticator { inner: Arc::new(Inner { hs256, jwks, rules, revoked: Arc::default() }) })
    }

    /// Verifies a raw JWT (no `Bearer `).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let inner = &self.inner;
        if inner.hs256.is_none() && inner.jwks.is_none() {
            return Err(AuthError::NotConfigured);
        }
        let header = header::read_header(token).map_err(|e| match e {
            AuthError::AlgorithmNotAccepted { alg, .. } => {
                AuthError::AlgorithmNotAccepted { alg, accepted: self.accepted() }
            }
            other => other,
        })?;
        let key = match (header.alg, &inner.hs256, &inner.jwks) {
            (Algorithm::HS256, Some(secret), _) => secret.clone(),
            (alg, _, Some(jwks)) if JWKS_ALGORITHMS.contains(&alg) => jwks.key_for(header.kid.as_deref(), alg).await?,
            (alg, _, _) => {
                return Err(AuthError::AlgorithmNotAccepted { alg: format!("{alg:?}"), accepted: self.accepted() });
            }
        };
        // Only the signature is checked here; the claims are checked by `ClaimRules`, which
        // explains each refusal.
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(refusal)?;
        let principal = inner.rules.principal(data.claims, now())?;
        inner.revoked.check(&principal)?;
        Ok(principal)
    }

    /// The tokens this authenticator refuses before they expire.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.inner.revoked
    }

    /// Whether `principal`'s token has been revoked since it was verified (connections ask
    /// again whenever [`Revocations::watch`] changes).
    pub fn still_valid(&self, principal: &Principal) -> Result<(), AuthError> {
        self.inner.revoked.check(principal)
    }

    /// Verifies the token of an `Authorization` header value (`Bearer …`); `Ok(None)` when
    /// there is no header.
    pub async fn from_header(&self, value: Option<&str>) -> Result<Option<Principal>, AuthError> {
        let Some(value) = value else { return Ok(None) };
        let value = value.trim();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
            _ => return Err(AuthError::NotBearer),
        };
        self.authenticate(token).await.map(Some)
    }

    /// Verifies the token of a WebSocket `connection_init` payload, in the shapes clients
    /// send: `{"Authorization": "Bearer …"}` (any case), the same inside `"headers"` (Hasura's
    /// console, Apollo links), or a raw JWT as `"token"` / `"authToken"`. `Ok(None)` when the
    /// payload holds none of them.
    pub async fn from_init_payload(&self, payload: Option<&Value>) -> Result<Option<Principal>, AuthError> {
        let Some(Value::Object(payload)) = payload else { return Ok(None) };
        let authorization = |object: &Map<String, Value>| {
            object.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.clone())
        };
        let nested = payload.get("headers").and_then(Value::as_object).and_then(authorization);
        if let Some(value) = authorization(payload).or(nested) {
            let Value::String(value) = value else { return Err(AuthError::NotBearer) };
            return self.from_header(Some(&value)).await;
        }
        match payload.get("token").or_else(|| payload.get("authToken")) {
            Some(Value::String(token)) => self.authenticate(token).await.map(Some),
            Some(_) => Err(AuthError::Malformed("the `token` of connection_init is not a string".into())),
            None => Ok(None),
        }
    }

    /// Whether any key is configured (otherwise every token is refused).
    pub fn is_configured(&self) -> bool {
        self.inner.hs256.is_some() || self.inner.jwks.is_some()
    }

    /// Like [`from_header`](Self::from_header), refusing a request without a token.
    pub async fn require(&self, value: Option<&str>) -> Result<Principal, AuthError> {
        self.from_header(value).await?.ok_or(AuthError::Missing)
    }

    fn accepted(&self) -> String {
        let mut names = Vec::new();
        if self.inner.hs256.is_some() {
            names.push("HS256".to_string());
        }
        if self.inner.jwks.is_some() {
            names.extend(JWKS_ALGORITHMS.iter().map(|a| format!("{a:?}")));
        }
        names.join(", ")
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.inner.hs256.is_some())
            .field("jwks", &self.inner.jwks.is_some())
            .field("rules", &self.inner.rules)
            .finish()
    }
}

/// The library's reasons, in opslive's words.
fn refusal(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            AuthError::Malformed("a part is not base64url".into())
        }
        ErrorKind::Json(_) => AuthError::Malformed("its header or claims are not the JSON objects a JWT has".into()),
        _ => AuthError::Malformed("it cannot be decoded".into()),
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
