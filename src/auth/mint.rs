//! Development tokens: HS256, signed with the configured shared secret (`opslive token`).
//!
//! Production tokens come from the identity provider; these exist so that the demo, the tests
//! and a developer can act as any role without one. Minting refuses without a secret, so a
//! server configured for an issuer only cannot be handed a home-made token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use super::AuthError;
use super::claims;
use crate::config::AuthConfig;

/// An HS256 token for `role` (claim `role`) with `claims`, valid for `ttl` from now.
pub fn mint_hs256(secret: &str, role: &str, claims: Map<String, Value>, ttl: Duration) -> Result<String, AuthError> {
    mint(secret, "role", &[], None, role, claims, ttl)
}

/// Like [`mint_hs256`] with the configured secret, role claim path, issuer and audience, so
/// that the token verifies on a server with the same `[auth]`.
pub fn mint_for(
    config: &AuthConfig,
    role: &str,
    claims: Map<String, Value>,
    ttl: Duration,
) -> Result<String, AuthError> {
    let secret = config.hs256_secret.as_ref().ok_or(AuthError::NoSigningSecret)?;
    if secret.expose().len() < super::MIN_SECRET_BYTES {
        // The server refuses to start with it; a token that no server accepts helps nobody.
        return Err(AuthError::Mint(format!("auth.hs256_secret must be at least {} bytes", super::MIN_SECRET_BYTES)));
    }
    mint(secret.expose(), &config.role_claim, &config.audience, config.issuer.as_deref(), role, claims, ttl)
}

fn mint(
    secret: &str,
    role_claim: &str,
    audience: &[String],
    issuer: Option<&str>,
    role: &str,
    mut claims: Map<String, Value>,
    ttl: Duration,
) -> Result<String, AuthError> {
    if role.trim().is_empty() {
        return Err(AuthError::Mint("the role is empty".into()));
    }
    if ttl.is_zero() {
        return Err(AuthError::Mint("the lifetime must be longer than 0 s".into()));
    }
    for reserved in ["exp", "iat"] {
        if claims.contains_key(reserved) {
            return Err(AuthError::Mint(format!("`{reserved}` is set from the lifetime (--ttl), not as a claim")));
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| AuthError::Mint(e.to_string()))?.as_secs();
    let exp =
        now.checked_add(ttl.as_secs().max(1)).ok_or_else(|| AuthError::Mint("the lifetime is too long".into()))?;
    claims::insert(&mut claims, role_claim, Value::from(role))?;
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(exp));
    if let Some(issuer) = issuer {
        claims.entry("iss").or_insert_with(|| Value::from(issuer));
    }
    if let Some(first) = audience.first() {
        claims.entry("aud").or_insert_with(|| Value::from(first.as_str()));
    }
    let header = Header { typ: Some("JWT".into()), ..Header::new(Algorithm::HS256) };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| AuthError::Mint(e.to_string()))
}

/// A `--claim key=value` argument: the value is JSON when it parses as JSON (numbers, arrays,
/// objects, booleans), else the text itself, so `warehouses=["W1","W2"]` is an array and
/// `region=eu` a string.
pub fn parse_claim(arg: &str) -> Result<(String, Value), String> {
    let (key, value) = arg.split_once('=').ok_or_else(|| format!("`{arg}` is not key=value"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{arg}` has no claim name before `=`"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
    Ok((key.to_string(), value))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn claims_parse_as_json_when_they_can() {
        assert_eq!(parse_claim(r#"warehouses=["W1","W2"]"#).unwrap(), ("warehouses".into(), json!(["W1", "W2"])));
        assert_eq!(parse_claim("region=eu").unwrap(), ("region".into(), json!("eu")));
        assert_eq!(parse_claim("n=3").unwrap(), ("n".into(), json!(3)));
        assert_eq!(parse_claim("s=\"3\"").unwrap(), ("s".into(), json!("3")));
        assert_eq!(parse_claim("url=a=b").unwrap(), ("url".into(), json!("a=b")));
        assert!(parse_claim("novalue").is_err());
        assert!(parse_claim("=x").is_err());
    }

    #[test]
    fn refuses_what_would_not_verify() {
        let ttl = Duration::from_secs(60);
        assert!(mint_hs256("s", " ", Map::new(), ttl).is_err());
        assert!(mint_hs256("s", "a", Map::new(), Duration::ZERO).is_err());
        let mut exp = Map::new();
        exp.insert("exp".into(), json!(1));
        assert!(mint_hs256("s", "a", exp, ttl).is_err());
        assert!(matches!(mint_for(&AuthConfig::default(), "a", Map::new(), ttl), Err(AuthError::NoSigningSecret)));
    }
}
