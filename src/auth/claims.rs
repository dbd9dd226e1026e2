//! The claims of a token whose signature verified: the rules they must meet (expiry, not
//! before, issuer, audience) and where the role is.
//!
//! opslive checks the registered claims itself rather than through the JWT library so that
//! each refusal says exactly which rule failed (with the time, for `exp`/`nbf`), and so that
//! the boundaries are RFC 7519's: a token is expired *at* `exp`, not one second later.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{AuthError, Principal};

/// What a verified token's claims must satisfy, from `[auth]`.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway_seconds: u64,
    pub role_claim: String,
}

impl ClaimRules {
    /// The principal of a token with these claims at `now` (seconds since 1970), or why not.
    pub fn principal(&self, claims: Map<String, Value>, now: f64) -> Result<Principal, AuthError> {
        let leeway = self.leeway_seconds as f64;
        let exp = time_claim(&claims, "exp")?.ok_or(AuthError::NoExpiry)?;
        if now >= exp + leeway {
            return Err(AuthError::Expired { at: show_time(exp) });
        }
        if let Some(nbf) = time_claim(&claims, "nbf")?
            && now + leeway < nbf
        {
            return Err(AuthError::NotYetValid { at: show_time(nbf) });
        }
        if let Some(expected) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(expected.as_str())
        {
            return Err(AuthError::WrongIssuer { expected: expected.clone() });
        }
        if !self.audience.is_empty() {
            // `aud` is one string or an array of them (RFC 7519 §4.1.3); one match is enough.
            let matches = |v: &Value| v.as_str().is_some_and(|a| self.audience.iter().any(|e| e == a));
            let ok = match claims.get("aud") {
                Some(Value::Array(items)) => items.iter().any(matches),
                Some(v) => matches(v),
                None => false,
            };
            if !ok {
                let expected = self.audience.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" or ");
                return Err(AuthError::WrongAudience { expected });
            }
        }
        let role = match lookup(&claims, &self.role_claim) {
            Some(Value::String(r)) if !r.trim().is_empty() => Arc::from(r.as_str()),
            _ => return Err(AuthError::NoRole { path: self.role_claim.clone() }),
        };
        let subject = match claims.get("sub") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Principal { role, subject, expires_at: Some(exp.floor() as i64), claims })
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional), `None` when absent.
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_f64().filter(|t| t.is_finite()).map(Some).ok_or(AuthError::BadTime { claim: name }),
    }
}

fn show_time(seconds: f64) -> String {
    match chrono::DateTime::from_timestamp(seconds.floor() as i64, 0) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("{seconds} s after 1970"),
    }
}

/// The claim at `path`. Each step takes the longest run of dot-separated segments that names a
/// key, so namespaced claims whose names contain dots resolve without quoting:
/// `https://opslive.dev/claims.role` is `role` inside the claim `https://opslive.dev/claims`.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let ends = std::iter::once(path.len())
        .chain(path.match_indices('.').map(|(i, _)| i).collect::<Vec<_>>().into_iter().rev());
    for end in ends {
        let Some(value) = claims.get(&path[..end]) else { continue };
        if end == path.len() {
            return Some(value);
        }
        if let Some(found) = value.as_object().and_then(|inner| lookup(inner, &path[end + 1..])) {
            return Some(found);
        }
    }
    None
}

/// Puts `value` at `path` for minting: the part after the last dot is the claim's name, the
/// part before it (if any) one namespace claim holding it — the shape [`lookup`] reads back.
pub fn insert(claims: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), AuthError> {
    match path.rsplit_once('.') {
        None => {
            claims.insert(path.to_string(), value);
            Ok(())
        }
        Some((namespace, name)) => {
            let slot = claims.entry(namespace.to_string()).or_insert_with(|| Value::Object(Map::new()));
            match slot.as_object_mut() {
                Some(inner) => {
                    inner.insert(name.to_string(), value);
                    Ok(())
                }
                None => Err(AuthError::Mint(format!("claim `{namespace}` must be an object to hold `{name}`"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules() -> ClaimRules {
        ClaimRules { issuer: None, audience: vec![], leeway_seconds: 0, role_claim: "role".into() }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn expiry_is_exclusive_and_leeway_extends_it() {
        let c = claims(json!({"role": "analyst", "exp": 1000}));
        assert!(rules().principal(c.clone(), 999.5).is_ok());
        assert!(matches!(rules().principal(c.clone(), 1000.0), Err(AuthError::Expired { .. })));
        let lenient = ClaimRules { leeway_seconds: 5, ..rules() };
        assert!(lenient.principal(c.clone(), 1004.0).is_ok());
        assert!(matches!(lenient.principal(c, 1005.0), Err(AuthError::Expired { .. })));
    }

    #[test]
    fn exp_is_required_and_must_be_a_number() {
        assert!(matches!(rules().principal(claims(json!({"role": "a"})), 0.0), Err(AuthError::NoExpiry)));
        let text = claims(json!({"role": "a", "exp": "tomorrow"}));
        assert!(matches!(rules().principal(text, 0.0), Err(AuthError::BadTime { claim: "exp" })));
    }

    #[test]
    fn not_before_is_honoured() {
        let c = claims(json!({"role": "a", "exp": 2000, "nbf": 1000}));
        let err = rules().principal(c.clone(), 999.0).unwrap_err();
        assert!(matches!(err, AuthError::NotYetValid { .. }));
        assert!(err.to_string().contains("1970-01-01T00:16:40Z"), "{err}");
        assert!(rules().principal(c, 1000.0).is_ok());
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let strict = ClaimRules {
            issuer: Some("https://id.example/".into()),
            audience: vec!["opslive".into(), "ops".into()],
            ..rules()
        };
        let good = json!({"role": "a", "exp": 10, "iss": "https://id.example/", "aud": ["x", "ops"]});
        assert!(strict.principal(claims(good.clone()), 0.0).is_ok());
        let mut other_iss = good.clone();
        other_iss["iss"] = json!("https://evil.example/");
        assert!(matches!(strict.principal(claims(other_iss), 0.0), Err(AuthError::WrongIssuer { .. })));
        let mut other_aud = good.clone();
        other_aud["aud"] = json!("someone-else");
        assert!(matches!(strict.principal(claims(other_aud), 0.0), Err(AuthError::WrongAudience { .. })));
        let mut no_aud = good;
        no_aud.as_object_mut().map(|o| o.remove("aud"));
        assert!(matches!(strict.principal(claims(no_aud), 0.0), Err(AuthError::WrongAudience { .. })));
    }

    #[test]
    fn role_claim_paths_resolve_namespaced_claims() {
        let c = claims(json!({
            "https://opslive.dev/claims": {"role": "finance", "warehouses": ["W1"]},
            "exp": 10,
            "sub": "u1"
        }));
        let nested = ClaimRules { role_claim: "https://opslive.dev/claims.role".into(), ..rules() };
        let p = nested.principal(c.clone(), 0.0).unwrap();
        assert_eq!(&*p.role, "finance");
        assert_eq!(p.subject.as_deref(), Some("u1"));
        assert_eq!(p.expires_at, Some(10));
        assert!(matches!(rules().principal(c, 0.0), Err(AuthError::NoRole { .. })));
        let empty = claims(json!({"role": " ", "exp": 10}));
        assert!(matches!(rules().principal(empty, 0.0), Err(AuthError::NoRole { .. })));
    }

    #[test]
    fn insert_then_lookup_round_trips() {
        let mut c = Map::new();
        insert(&mut c, "https://opslive.dev/claims.role", json!("admin")).unwrap();
        insert(&mut c, "role", json!("plain")).unwrap();
        assert_eq!(lookup(&c, "https://opslive.dev/claims.role"), Some(&json!("admin")));
        assert_eq!(lookup(&c, "role"), Some(&json!("plain")));
        assert_eq!(lookup(&c, "https://opslive.dev/claims.missing"), None);
        let mut bad = claims(json!({"ns": 1}));
        assert!(insert(&mut bad, "ns.role", json!("x")).is_err());
    }
}
