//! Recording the raw pgoutput stream to a file, for decoder tests and bug reports.
//!
//! Each frame is a big-endian `u32` length followed by one pgoutput message. Begin and Commit,
//! which the transport hands over already parsed, are re-encoded in their wire form, so a
//! capture replays through [`super::pgoutput::parse`] exactly as the server sent it.

use std::io::{BufWriter, Write};
use std::path::Path;

use bytes::Bytes;

use super::pgoutput::{self, Message, ProtocolError};

pub struct Capture {
    out: BufWriter<std::fs::File>,
}

impl Capture {
    pub fn create(path: &Path) -> std::io::Result<Capture> {
        Ok(Capture { out: BufWriter::new(std::fs::File::create(path)?) })
    }

    fn frame(&mut self, bytes: &[u8]) {
        // A capture is a diagnostic aid: a full disk must not stop the stream.
        let _ = self.out.write_all(&(bytes.len() as u32).to_be_bytes());
        let _ = self.out.write_all(bytes);
    }

    pub fn begin(&mut self, final_lsn: u64, commit_ts: i64, xid: u32) {
        let mut b = vec![b'B'];
        b.extend(final_lsn.to_be_bytes());
        b.extend(commit_ts.to_be_bytes());
        b.extend(xid.to_be_bytes());
        self.frame(&b);
    }

    pub fn commit(&mut self, commit_lsn: u64, end_lsn: u64, commit_ts: i64) {
        let mut b = vec![b'C', 0];
        b.extend(commit_lsn.to_be_bytes());
        b.extend(end_lsn.to_be_bytes());
        b.extend(commit_ts.to_be_bytes());
        self.frame(&b);
        self.flush();
    }

    pub fn message(&mut self, data: &[u8]) {
        self.frame(data);
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("capture ends inside a frame at byte {0}")]
    Truncated(usize),
    #[error("frame at byte {at}: {error}")]
    Protocol { at: usize, error: ProtocolError },
}

/// Parses every frame of a capture.
pub fn replay(bytes: &[u8]) -> Result<Vec<Message>, ReplayError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = bytes.get(at..at + 4).ok_or(ReplayError::Truncated(at))?;
        let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let frame = bytes.get(at + 4..at + 4 + len).ok_or(ReplayError::Truncated(at))?;
        out.push(pgoutput::parse(Bytes::copy_from_slice(frame)).map_err(|error| ReplayError::Protocol { at, error })?);
        at += 4 + len;
    }
    Ok(out)
}
