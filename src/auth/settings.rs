//! Defaults and value formats of the `[auth]` section ([`crate::config::AuthConfig`]).
//!
//! The struct lives with the rest of the configuration; what it takes to read it lives here,
//! beside the code that uses it.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, SeqAccess, Visitor};

use crate::config::AuthConfig;

/// Issuers rotate keys rarely and announce them ahead; a few minutes keeps removals prompt.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// At most one fetch per this interval is caused by tokens naming unknown keys.
pub const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            hs256_secret: None,
            jwks_url: None,
            issuer: None,
            audience: Vec::new(),
            leeway_seconds: 0,
            role_claim: "role".into(),
            jwks_refresh: DEFAULT_JWKS_REFRESH,
            jwks_min_refetch: DEFAULT_JWKS_MIN_REFETCH,
            dev_login: false,
            dev_users: Vec::new(),
            oidc: None,
        }
    }
}

/// `"5m"`, `"90s"`, `"250ms"` (the units of `--day-length`), or a number of seconds.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"5m\", \"90s\" or \"250ms\", or a number of seconds")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            crate::duration::parse_duration(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v).map(Duration::from_secs).map_err(|_| E::custom("a duration cannot be negative"))
        }
    }
    d.deserialize_any(V)
}

/// One string or a list of strings (`audience = "opslive"` or `audience = ["a", "b"]`).
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    #[test]
    fn defaults_without_a_section() {
        let auth = Config::from_toml("").unwrap().auth;
        assert!(auth.hs256_secret.is_none() && auth.jwks_url.is_none());
        assert_eq!(auth.leeway_seconds, 0);
        assert_eq!(auth.role_claim, "role");
        assert_eq!(auth.jwks_refresh, DEFAULT_JWKS_REFRESH);
    }

    #[test]
    fn reads_every_key_and_hides_the_secret() {
        let text = r#"
            [auth]
            hs256_secret = "0123456789abcdef0123456789abcdef"
            jwks_url = "https://id.example/.well-known/jwks.json"
            issuer = "https://id.example/"
            audience = "opslive"
            leeway_seconds = 5
            role_claim = "https://opslive.dev/claims.role"
            jwks_refresh = "90s"
            jwks_min_refetch = 10
        "#;
        let config = Config::from_toml(text).unwrap();
        let auth = &config.auth;
        assert_eq!(auth.audience, ["opslive"]);
        assert_eq!(auth.jwks_refresh, Duration::from_secs(90));
        assert_eq!(auth.jwks_min_refetch, Duration::from_secs(10));
        assert_eq!(auth.leeway_seconds, 5);
        let shown = format!("{config:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        let list = Config::from_toml("[auth]\naudience = [\"a\", \"b\"]").unwrap();
        assert_eq!(list.auth.audience, ["a", "b"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::from_toml("[auth]\njwks_refresh = \"soon\"").unwrap_err().to_string();
        assert!(err.contains("auth.jwks_refresh"), "{err}");
        let err = Config::from_toml("[auth]\nsecret = \"x\"").unwrap_err().to_string();
        assert!(err.contains("secret"), "{err}");
    }
}
