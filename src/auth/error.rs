//! Why a token was refused, and why the `[auth]` configuration cannot be used.
//!
//! Messages go back to the client and into logs, so they say what is wrong and what the server
//! expects, and never repeat the token or values taken from an unverified token (only the
//! times of `exp`/`nbf`, which tell the holder what to do, and a sanitised `kid`/`alg`).

use axum::http::StatusCode;

/// A request that cannot be authenticated. [`AuthError::code`] is the GraphQL
/// `extensions.code`; [`AuthError::http_status`] the status of a plain HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send `Authorization: Bearer <JWT>`")]
    Missing,
    #[error("this server accepts no tokens yet: configure auth.hs256_secret (development) or auth.jwks_url")]
    NotConfigured,
    #[error("the Authorization header must be `Bearer <JWT>`")]
    NotBearer,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("unsigned tokens (`alg: none`) are never accepted")]
    Unsigned,
    #[error("tokens signed with `{alg}` are not accepted here (accepted: {accepted})")]
    AlgorithmNotAccepted { alg: String, accepted: String },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the issuer publishes no key `{kid}` (its key set was checked)")]
    UnknownKey { kid: String },
    #[error("the token names no key (`kid` header) and the issuer publishes {keys} keys for {alg}")]
    KeyNotNamed { alg: String, keys: usize },
    #[error("the key `{kid}` is not a {alg} key")]
    KeyMismatch { kid: String, alg: String },
    #[error("the token expired at {at}")]
    Expired { at: String },
    #[error("the token is not valid before {at}")]
    NotYetValid { at: String },
    #[error("the token has no `exp` claim: only tokens that expire are accepted")]
    NoExpiry,
    #[error("the token's `{claim}` claim is not a time in seconds since 1970")]
    BadTime { claim: &'static str },
    #[error("the token was not issued by `{expected}`")]
    WrongIssuer { expected: String },
    #[error("the token is not meant for this server (audience {expected})")]
    WrongAudience { expected: String },
    #[error("the token carries no role: claim `{path}` is missing or not a non-empty string")]
    NoRole { path: String },
    #[error("cannot verify the token now: the issuer's keys could not be fetched ({detail})")]
    KeysUnavailable { detail: String },
    #[error(
        "no auth.hs256_secret is configured: development tokens are HS256 only (set [auth] hs256_secret in the configuration, or OPSLIVE_AUTH__HS256_SECRET)"
    )]
    NoSigningSecret,
    #[error("cannot mint a token: {0}")]
    Mint(String),
    #[error("the token was revoked: sign in again for a new one")]
    Revoked,
}

impl AuthError {
    /// The GraphQL `extensions.code` of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::NotConfigured => "UNAUTHENTICATED",
            AuthError::Expired { .. } => "TOKEN_EXPIRED",
            AuthError::Revoked => "TOKEN_REVOKED",
            AuthError::KeysUnavailable { .. } => "AUTH_UNAVAILABLE",
            AuthError::NoSigningSecret | AuthError::Mint(_) => "MINT_FAILED",
            AuthError::NotBearer
            | AuthError::Malformed(_)
            | AuthError::Unsigned
            | AuthError::AlgorithmNotAccepted { .. }
            | AuthError::BadSignature
            | AuthError::UnknownKey { .. }
            | AuthError::KeyNotNamed { .. }
            | AuthError::KeyMismatch { .. }
            | AuthError::NotYetValid { .. }
            | AuthError::NoExpiry
            | AuthError::BadTime { .. }
            | AuthError::WrongIssuer { .. }
            | AuthError::WrongAudience { .. }
            | AuthError::NoRole { .. } => "INVALID_TOKEN",
        }
    }

    /// 401 for the client's token, 503 when the issuer cannot be reached (retrying later may
    /// succeed with the same token), 500 for minting.
    pub fn http_status(&self) -> StatusCode {
        match self.code() {
            "AUTH_UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
            "MINT_FAILED" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// An `[auth]` section that cannot be used; found at start, before any request.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "invalid configuration: `auth.hs256_secret` must be at least 32 bytes (HS256 keys shorter than the hash are guessable); generate one with `openssl rand -base64 32`"
    )]
    WeakSecret,
    #[error("invalid configuration: `auth.jwks_url`: {0}")]
    JwksUrl(String),
    #[error("invalid configuration: `auth.role_claim` must name a claim")]
    RoleClaim,
    #[error("invalid configuration: `auth.{key}`: {message}")]
    Key { key: &'static str, message: String },
    #[error("cannot build the HTTP client for the issuer's keys: {0}")]
    HttpClient(String),
}

/// Text from a token for a message: printable ASCII only and short, so a crafted header cannot
/// forge log lines or flood them.
pub(crate) fn sanitize(text: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = text.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_group_the_refusals() {
        assert_eq!(AuthError::Missing.code(), "UNAUTHENTICATED");
        assert_eq!(AuthError::Expired { at: "x".into() }.code(), "TOKEN_EXPIRED");
        assert_eq!(AuthError::BadSignature.code(), "INVALID_TOKEN");
        assert_eq!(AuthError::Unsigned.http_status(), StatusCode::UNAUTHORIZED);
        assert_eq!(AuthError::KeysUnavailable { detail: "down".into() }.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn sanitize_strips_control_characters_and_bounds_length() {
        assert_eq!(sanitize("a\nb\u{1b}[31m"), "ab[31m");
        let long = "k".repeat(100);
        assert_eq!(sanitize(&long).chars().count(), 65);
    }
}
