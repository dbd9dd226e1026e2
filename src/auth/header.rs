//! The JOSE header of a compact JWT, read before any key is chosen.
//!
//! The header is unauthenticated input that decides which key is tried, so it is read here
//! with its own checks and precise refusals (`alg: none`, encrypted tokens, critical
//! extensions) before anything is verified. Key URLs in the header (`jku`, `x5u`, `jwk`) are
//! never followed: keys come only from the configuration.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::AuthError;
use super::error::sanitize;

/// Longer tokens are refused before any decoding: real ones are a few kilobytes at most.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenHeader {
    pub alg: jsonwebtoken::Algorithm,
    /// Sanitised for messages and lookups (a real `kid` is printable ASCII).
    pub kid: Option<String>,
}

pub(crate) fn read_header(token: &str) -> Result<TokenHeader, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(format!("it is longer than {} KiB", MAX_TOKEN_BYTES / 1024)));
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => return Err(AuthError::Malformed("encrypted tokens (JWE) are not accepted".into())),
        _ => return Err(AuthError::Malformed("a JWT has three dot-separated parts".into())),
    }
    let bytes =
        URL_SAFE_NO_PAD.decode(parts[0]).map_err(|_| AuthError::Malformed("its header is not base64url".into()))?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("its header is not a JSON object".into()))?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err(AuthError::Malformed("its header has no `alg`".into())),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::Unsigned);
    }
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: a recipient that does not understand a critical extension must
        // reject the token; opslive understands none.
        return Err(AuthError::Malformed(
            "its header lists critical extensions (`crit`), which are not supported".into(),
        ));
    }
    let alg =
        alg.parse().map_err(|_| AuthError::AlgorithmNotAccepted { alg: sanitize(alg), accepted: String::new() })?;
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(sanitize(kid)),
        Some(_) => return Err(AuthError::Malformed("its `kid` header is not a string".into())),
    };
    Ok(TokenHeader { alg, kid })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;

    use super::*;

    fn token(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn reads_alg_and_kid() {
        let h = read_header(&token(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#)).unwrap();
        assert_eq!(h, TokenHeader { alg: Algorithm::RS256, kid: Some("k1".into()) });
    }

    #[test]
    fn refuses_unsigned_and_odd_headers() {
        assert!(matches!(read_header(&token(r#"{"alg":"none"}"#)), Err(AuthError::Unsigned)));
        assert!(matches!(read_header(&token(r#"{"alg":"NoNe"}"#)), Err(AuthError::Unsigned)));
        assert!(matches!(read_header(&token(r#"{"alg":"XS999"}"#)), Err(AuthError::AlgorithmNotAccepted { .. })));
        assert!(matches!(read_header(&token(r#"{"typ":"JWT"}"#)), Err(AuthError::Malformed(_))));
        assert!(matches!(read_header(&token(r#"{"alg":"HS256","crit":["exp"]}"#)), Err(AuthError::Malformed(_))));
        assert!(matches!(read_header(&token(r#"{"alg":"HS256","kid":7}"#)), Err(AuthError::Malformed(_))));
        assert!(matches!(read_header("a.b"), Err(AuthError::Malformed(_))));
        assert!(matches!(read_header("a.b.c.d.e"), Err(AuthError::Malformed(m)) if m.contains("JWE")));
        assert!(matches!(read_header("!!.e30.c2ln"), Err(AuthError::Malformed(_))));
        assert!(matches!(read_header(&"a".repeat(20_000)), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn messages_never_repeat_the_token() {
        let secretish = token(r#"{"alg":"none","note":"SECRET-PAYLOAD"}"#);
        let err = read_header(&secretish).unwrap_err().to_string();
        assert!(!err.contains("SECRET") && !err.contains(&secretish), "{err}");
    }
}
