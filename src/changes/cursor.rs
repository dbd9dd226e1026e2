//! A change stream's cursor: where a client stands in the history of one table.
//!
//! Opaque to clients (URL-safe base64). It says which log it was written by (the process's
//! epoch, drawn at start) and the sequence number of the last transaction the client has there
//! — the quick way back into the same log — and the source position of the last transaction of
//! the table the client has: the way into any other log of the same history, another instance
//! of a cluster or this one after a restart, whose sequence numbers mean nothing to the first.
//! A table's transactions come from one source, whose positions every instance shares.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::change::Position;

/// The format's version, first byte of the encoded cursor (1: without a position).
const VERSION: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The log it belongs to (one per process).
    pub epoch: u64,
    /// The last transaction the client has: it resumes with the one after.
    pub seq: u64,
    /// The source position the client has the table's changes up to (`Position::ZERO`:
    /// unknown, a cursor of the first version).
    pub position: Position,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("`after` is not a cursor this server wrote: pass the `cursor` of a message you received")]
    Malformed,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| CursorError::Malformed)?;
        let word = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        let (epoch, seq) = match (bytes.first(), bytes.len()) {
            (Some(1), 17) | (Some(2), 25) => (word(1), word(9)),
            _ => return Err(CursorError::Malformed),
        };
        let position = if bytes.len() == 25 { word(17) } else { Some(0) };
        match (epoch, seq, position) {
            (Some(epoch), Some(seq), Some(position)) => Ok(Cursor { epoch, seq, position: Position(position) }),
            _ => Err(CursorError::Malformed),
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = [0u8; 25];
        bytes[0] = VERSION;
        bytes[1..9].copy_from_slice(&self.epoch.to_be_bytes());
        bytes[9..17].copy_from_slice(&self.seq.to_be_bytes());
        bytes[17..25].copy_from_slice(&self.position.0.to_be_bytes());
        f.write_str(&URL_SAFE_NO_PAD.encode(bytes))
    }
}
