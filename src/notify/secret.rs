//! Contact points' secrets at rest: sealed with XChaCha20-Poly1305 under a key from the
//! configuration (`notifications.secret_key`, or `OPSLIVE_NOTIFICATIONS__SECRET_KEY`), a fresh
//! random nonce per value stored in front of it. A database dump alone reveals no token.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("notifications.secret_key must be 32 bytes in base64 (make one with `openssl rand -base64 32`): {0}")]
    BadKey(String),
    #[error(
        "no key to encrypt contact points' secrets with: set notifications.secret_key (32 bytes in base64, \
         `openssl rand -base64 32`) or OPSLIVE_NOTIFICATIONS__SECRET_KEY"
    )]
    NoKey,
    #[error("a stored secret cannot be decrypted with the configured key (was notifications.secret_key changed?)")]
    Undecryptable,
}

/// The configured key's 32 bytes.
pub fn key_bytes(text: &str) -> Result<Vec<u8>, SecretError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| SecretError::BadKey(e.to_string()))?;
    if bytes.len() != 32 {
        return Err(SecretError::BadKey(format!("it decodes to {} bytes", bytes.len())));
    }
    Ok(bytes)
}

/// The key, ready to seal and open.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

impl SecretBox {
    pub fn from_base64(text: &str) -> Result<SecretBox, SecretError> {
        let bytes = key_bytes(text)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| SecretError::BadKey(e.to_string()))?;
        Ok(SecretBox { cipher })
    }

    /// Nonce, then ciphertext and tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, plain).expect("encryption of a bounded buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < NONCE {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, body) = sealed.split_at(NONCE);
        self.cipher.decrypt(XNonce::from_slice(nonce), body).map_err(|_| SecretError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let key = SecretBox::from_base64(KEY).unwrap();
        let sealed = key.seal(b"t0ken");
        assert!(!sealed.windows(5).any(|w| w == b"t0ken"));
        assert_ne!(sealed, key.seal(b"t0ken"), "each value gets its own nonce");
        assert_eq!(key.open(&sealed).unwrap(), b"t0ken");
        let other = SecretBox::from_base64("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=").unwrap();
        assert_eq!(other.open(&sealed), Err(SecretError::Undecryptable));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&tampered), Err(SecretError::Undecryptable));
    }

    #[test]
    fn a_key_of_the_wrong_size_is_refused() {
        assert!(matches!(SecretBox::from_base64("c2hvcnQ="), Err(SecretError::BadKey(_))));
        assert!(matches!(SecretBox::from_base64("not base64!"), Err(SecretError::BadKey(_))));
    }
}
