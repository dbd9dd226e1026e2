//! A change stream's cursor: where a client stands in one process's change log.
//!
//! Opaque to clients (URL-safe base64), but it says which log it belongs to (the process's
//! epoch, drawn at start) and the sequence number of the last transaction the client has, so a
//! cursor from before a restart is recognised as such rather than misread as a place in the
//! new log.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The format's version, first byte of the encoded cursor.
const VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The log it belongs to (one per process).
    pub epoch: u64,
    /// The last transaction the client has: it resumes with the one after.
    pub seq: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("`after` is not a cursor this server wrote: pass the `cursor` of a message you received")]
    Malformed,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| CursorError::Malformed)?;
        if bytes.len() != 17 || bytes[0] != VERSION {
            return Err(CursorError::Malformed);
        }
        let epoch = u64::from_be_bytes(bytes[1..9].try_into().map_err(|_| CursorError::Malformed)?);
        let seq = u64::from_be_bytes(bytes[9..17].try_into().map_err(|_| CursorError::Malformed)?);
        Ok(Cursor { epoch, seq })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = [0u8; 17];
        bytes[0] = VERSION;
        bytes[1..9].copy_from_slice(&self.epoch.to_be_bytes());
        bytes[9..17].copy_from_slice(&self.seq.to_be_bytes());
        f.write_str(&URL_SAFE_NO_PAD.encode(bytes))
    }
}
