//! The issuer's public keys (a JWKS URL, as Auth0 and every OIDC provider publish), cached.
//!
//! Keys are fetched at start, refreshed on a timer, and refetched when a token names a key the
//! cache does not know — that is how an issuer's rotation reaches opslive before the timer
//! does. That refetch is rate-limited (at most one per `jwks_min_refetch`) and single-flight
//! (concurrent requests wait for one fetch), because the `kid` is chosen by whoever sends the
//! token: a flood of made-up kids must not become a flood of requests to the issuer. When a
//! fetch fails the cached keys stay in use, so a brief outage of the issuer does not log
//! everyone out; the failure is logged.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::error::sanitize;
use super::{AuthConfigError, AuthError};
use crate::error::chain;

/// A key set larger than this is not a key set.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// One fetch may take this long before it counts as failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One usable signing key and the algorithms it may verify.
struct SigningKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: Arc<DecodingKey>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<SigningKey>,
    /// Successful fetches so far; 0 while the issuer has never answered.
    generation: u64,
    /// Why the last fetch failed, while no fetch has succeeded (for the refusal's message).
    first_error: Option<String>,
}

enum Selection {
    Found(Arc<DecodingKey>),
    /// The key exists but is not for the token's algorithm: refused, not refetched.
    Mismatch,
    /// No kid and several candidates.
    Ambiguous(usize),
    Missing,
}

impl KeySet {
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection {
        match kid {
            Some(kid) => {
                let named: Vec<&SigningKey> = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
                if named.is_empty() {
                    return Selection::Missing;
                }
                match named.iter().find(|k| k.algorithms.contains(&alg)) {
                    Some(k) => Selection::Found(k.key.clone()),
                    None => Selection::Mismatch,
                }
            }
            None => {
                let fitting: Vec<&SigningKey> = self.keys.iter().filter(|k| k.algorithms.contains(&alg)).collect();
                match fitting.as_slice() {
                    [only] => Selection::Found(only.key.clone()),
                    [] => Selection::Missing,
                    many => Selection::Ambiguous(many.len()),
                }
            }
        }
    }
}

/// Rate-limit state of on-demand fetches; its mutex also serialises every fetch.
struct OnDemand {
    last: Option<Instant>,
}

pub(crate) struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    fetch: tokio::sync::Mutex<OnDemand>,
    min_refetch: Duration,
}

impl Jwks {
    /// Builds the cache, fetches once (a failure is logged, not fatal: the issuer may come up
    /// later) and starts the refresh timer, which stops when the last handle is dropped.
    pub async fn start(url: &str, refresh: Duration, min_refetch: Duration) -> Result<Arc<Jwks>, AuthConfigError> {
        let parsed = url::Url::parse(url).map_err(|e| AuthConfigError::JwksUrl(format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(AuthConfigError::JwksUrl(format!("expected an https:// URL, got {}://", parsed.scheme())));
        }
        if refresh.is_zero() {
            return Err(AuthConfigError::Key { key: "jwks_refresh", message: "must be longer than 0 s".into() });
        }
        install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("opslive/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthConfigError::HttpClient(chain(&e)))?;
        let jwks = Arc::new(Jwks {
            url: url.to_string(),
            client,
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetch: tokio::sync::Mutex::new(OnDemand { last: None }),
            min_refetch,
        });
        {
            let _serialised = jwks.fetch.lock().await;
            if let Err(e) = jwks.refresh().await {
                tracing::warn!(url = %jwks.url, error = %e, "cannot fetch the issuer's keys at start; tokens signed by it are refused until a fetch succeeds");
            }
        }
        spawn_refresh(&jwks, refresh);
        Ok(jwks)
    }

    /// The key that verifies a token with this `kid` and algorithm.
    pub async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, AuthError> {
        let seen = self.current();
        match seen.select(kid, alg) {
            Selection::Missing => {}
            other => return finish(other, &seen, kid, alg),
        }
        {
            let mut on_demand = self.fetch.lock().await;
            // Someone else's fetch finished while this request waited: use its result.
            if self.current().generation == seen.generation {
                let allowed = on_demand.last.is_none_or(|t| t.elapsed() >= self.min_refetch);
                if allowed {
                    on_demand.last = Some(Instant::now());
                    tracing::info!(url = %self.url, kid = kid.unwrap_or(""), "a token names an unknown key; refetching the issuer's keys");
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(url = %self.url, error = %e, "cannot refetch the issuer's keys; the cached keys stay in use");
                    }
                }
            }
        }
        let now = self.current();
        finish(now.select(kid, alg), &now, kid, alg)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetches and installs the key set; the caller holds `self.fetch`. On failure the cached
    /// keys stay.
    async fn refresh(&self) -> Result<(), String> {
        let outcome = self.download().await.and_then(|body| parse_key_set(&body));
        let mut slot = self.keys.write().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(keys) => {
                let generation = slot.generation + 1;
                tracing::info!(url = %self.url, keys = keys.len(), generation, "fetched the issuer's keys");
                *slot = Arc::new(KeySet { keys, generation, first_error: None });
                Ok(())
            }
            Err(e) => {
                if slot.generation == 0 {
                    *slot = Arc::new(KeySet { keys: Vec::new(), generation: 0, first_error: Some(e.clone()) });
                }
                Err(e)
            }
        }
    }

    async fn download(&self) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{}: {}", self.url, chain(&e.without_url())))?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| format!("{}: {}", self.url, chain(&e.without_url())))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return Err(format!("{} sent more than {} KiB", self.url, MAX_BODY_BYTES / 1024));
            }
        }
        Ok(body)
    }
}

fn finish(
    selection: Selection,
    set: &KeySet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Arc<DecodingKey>, AuthError> {
    let alg_name = format!("{alg:?}");
    match selection {
        Selection::Found(key) => Ok(key),
        Selection::Mismatch => Err(AuthError::KeyMismatch { kid: kid.unwrap_or_default().to_string(), alg: alg_name }),
        Selection::Ambiguous(keys) => Err(AuthError::KeyNotNamed { alg: alg_name, keys }),
        Selection::Missing if set.generation == 0 => Err(AuthError::KeysUnavailable {
            detail: set.first_error.clone().unwrap_or_else(|| "no fetch has succeeded yet".into()),
        }),
        Selection::Missing => match kid {
            Some(kid) => Err(AuthError::UnknownKey { kid: kid.to_string() }),
            None => Err(AuthError::KeyNotNamed { alg: alg_name, keys: 0 }),
        },
    }
}

fn spawn_refresh(jwks: &Arc<Jwks>, every: Duration) {
    let weak = Arc::downgrade(jwks);
    tokio::spawn(async move {
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let Some(jwks) = weak.upgrade() else { return };
            let _serialised = jwks.fetch.lock().await;
            if let Err(e) = jwks.refresh().await {
                tracing::warn!(url = %jwks.url, error = %e, "cannot refresh the issuer's keys; the cached keys stay in use");
            }
        }
    });
}

/// The signing keys of a JWKS document. Keys opslive cannot use (encryption keys, symmetric
/// keys, unknown types) are skipped; a set with none left is an error, so a broken answer
/// never replaces working keys.
fn parse_key_set(body: &[u8]) -> Result<Vec<SigningKey>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("the key set is not JSON ({e})"))?;
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err("the key set has no `keys` array".into());
    };
    let mut keys = Vec::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else { continue };
        if let Some(key) = signing_key(&jwk) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(format!("the key set lists {} keys, none of them an RSA or EC signing key", entries.len()));
    }
    Ok(keys)
}

fn signing_key(jwk: &Jwk) -> Option<SigningKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    // What the key material allows; a symmetric (`oct`) key from a URL is never trusted: it
    // would let anyone who read the JWKS sign tokens.
    let possible: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        _ => return None,
    };
    // A key that names its algorithm verifies that one only.
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        Some(declared) => {
            let declared = Algorithm::try_from(declared).ok()?;
            if !possible.contains(&declared) {
                return None;
            }
            vec![declared]
        }
        None => possible.to_vec(),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(SigningKey { kid: jwk.common.key_id.as_deref().map(sanitize), algorithms, key: Arc::new(key) })
}

/// reqwest is built without a bundled TLS crypto provider (the default one compiles a large C
/// library); ring is installed unless the process already chose one.
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is then in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn rsa(extra: &str) -> String {
        format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"{extra}}}"#)
    }

    #[test]
    fn keeps_signing_keys_only() {
        let body = format!(
            r#"{{"keys":[{},{},{},{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"weird"}}]}}"#,
            rsa(r#","kid":"sig","alg":"RS256","use":"sig""#),
            rsa(r#","kid":"enc","use":"enc""#),
            rsa(r#","kid":"any""#),
        );
        let keys = parse_key_set(body.as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.clone().unwrap_or_default()).collect();
        assert_eq!(kids, ["sig", "any"]);
        assert_eq!(keys[0].algorithms, [Algorithm::RS256]);
        assert!(keys[1].algorithms.contains(&Algorithm::PS512));
    }

    #[test]
    fn a_declared_algorithm_must_fit_the_key() {
        let body = format!(r#"{{"keys":[{}]}}"#, rsa(r#","kid":"k","alg":"ES256""#));
        assert!(parse_key_set(body.as_bytes()).is_err());
        let hs = format!(r#"{{"keys":[{}]}}"#, rsa(r#","kid":"k","alg":"HS256""#));
        assert!(parse_key_set(hs.as_bytes()).is_err());
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(parse_key_set(b"<html>").is_err());
        assert!(parse_key_set(br#"{"keys":{}}"#).is_err());
        assert!(parse_key_set(br#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn selection_by_kid_and_algorithm() {
        let body =
            format!(r#"{{"keys":[{},{}]}}"#, rsa(r#","kid":"a","alg":"RS256""#), rsa(r#","kid":"b","alg":"RS256""#));
        let set = KeySet { keys: parse_key_set(body.as_bytes()).unwrap(), generation: 1, first_error: None };
        assert!(matches!(set.select(Some("a"), Algorithm::RS256), Selection::Found(_)));
        assert!(matches!(set.select(Some("a"), Algorithm::RS384), Selection::Mismatch));
        assert!(matches!(set.select(Some("c"), Algorithm::RS256), Selection::Missing));
        assert!(matches!(set.select(None, Algorithm::RS256), Selection::Ambiguous(2)));
        assert!(matches!(set.select(None, Algorithm::ES256), Selection::Missing));
    }
}
