//! Tokens refused before they expire: the in-memory list every authentication consults, and
//! the signal that makes open connections check their token again.
//!
//! A JWT cannot be recalled once issued, so the server keeps what was revoked: a token by its
//! `jti`, or every token of a subject (`sub`) issued at or before a time, which also covers
//! tokens that carry no `jti`. A subject's token without `iat` cannot show it was issued after
//! the revocation and is refused too: denying is the safe way to be wrong. `iat` has whole
//! seconds, so a token issued in the same second as its subject's revocation counts as before
//! it. The list is filled from the app database at start and grows as revocations are made;
//! it never shrinks while the process runs (a revoked token stays revoked until it expires,
//! and the list is small: one entry per act of revocation).

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use serde_json::Value;
use tokio::sync::watch;

use super::{AuthError, Principal};

/// The revoked tokens and subjects; shared by every request and connection.
#[derive(Debug)]
pub struct Revocations {
    state: RwLock<State>,
    /// Counts additions: open connections wait on it, then check their own token.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashSet<String>,
    /// Per subject, the latest `issued_before`, in µs since the Unix epoch.
    subjects: HashMap<String, i64>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations { state: RwLock::default(), changed: watch::Sender::new(0) }
    }
}

impl Revocations {
    /// Revokes the token whose `jti` is `token_id`.
    pub fn revoke_token(&self, token_id: &str) {
        let added = self.write().tokens.insert(token_id.to_string());
        if added {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Revokes every token of `subject` issued at or before `issued_before` (µs since 1970).
    pub fn revoke_subject(&self, subject: &str, issued_before: i64) {
        let mut state = self.write();
        let cutoff = state.subjects.entry(subject.to_string()).or_insert(i64::MIN);
        let moved = issued_before > *cutoff;
        *cutoff = (*cutoff).max(issued_before);
        drop(state);
        if moved {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Whether the verified token of `principal` is revoked, and why.
    pub fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if state.tokens.is_empty() && state.subjects.is_empty() {
            return Ok(());
        }
        let claims = &principal.claims;
        if let Some(Value::String(jti)) = claims.get("jti")
            && state.tokens.contains(jti)
        {
            return Err(AuthError::Revoked);
        }
        if let Some(cutoff) = principal.subject.as_ref().and_then(|s| state.subjects.get(s)) {
            // Seconds, possibly fractional (RFC 7519 §2); absent or unreadable: not provably later.
            let issued = claims.get("iat").and_then(Value::as_f64).filter(|t| t.is_finite());
            let after = issued.is_some_and(|iat| iat * 1e6 > *cutoff as f64);
            if !after {
                return Err(AuthError::Revoked);
            }
        }
        Ok(())
    }

    /// Changes whenever something is revoked.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A principal as the claim rules make one: `sub` (a string or a number) is its subject.
    fn claims(v: Value) -> Principal {
        let claims = v.as_object().cloned().unwrap();
        let subject = match claims.get("sub") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Principal { role: "r".into(), subject, claims, expires_at: None }
    }

    #[test]
    fn a_token_is_refused_by_its_jti_and_a_subject_by_issue_time() {
        let list = Revocations::default();
        let mut changes = list.watch();
        let a = claims(json!({ "sub": "alice", "jti": "t1", "iat": 100 }));
        let b = claims(json!({ "sub": "alice", "jti": "t2", "iat": 100 }));
        assert!(list.check(&a).is_ok());
        list.revoke_token("t1");
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert!(matches!(list.check(&a), Err(AuthError::Revoked)));
        assert!(list.check(&b).is_ok(), "another token of the same subject stays valid");
        list.revoke_token("t1");
        assert!(!changes.has_changed().unwrap(), "revoking again changes nothing");

        // Alice's tokens issued up to 100.5 s; a token issued at 101 s is a new sign-in.
        list.revoke_subject("alice", 100_500_000);
        assert!(changes.has_changed().unwrap());
        assert!(matches!(list.check(&b), Err(AuthError::Revoked)));
        assert!(list.check(&claims(json!({ "sub": "alice", "iat": 101 }))).is_ok());
        assert!(matches!(list.check(&claims(json!({ "sub": "alice", "iat": 100 }))), Err(AuthError::Revoked)));
        assert!(
            matches!(list.check(&claims(json!({ "sub": "alice" }))), Err(AuthError::Revoked)),
            "a token without iat cannot show it is newer"
        );
        assert!(list.check(&claims(json!({ "sub": "bob", "iat": 1 }))).is_ok());
        // An older cutoff for the same subject does not un-revoke anything.
        list.revoke_subject("alice", 1);
        assert!(matches!(list.check(&b), Err(AuthError::Revoked)));
        // A numeric `sub` is the same subject as its digits.
        list.revoke_subject("42", 200_000_000);
        assert!(matches!(list.check(&claims(json!({ "sub": 42, "iat": 150 }))), Err(AuthError::Revoked)));
    }
}
