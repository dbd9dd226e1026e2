//! Stage one of decoding: pgoutput (protocol version 1) bytes → spec-shaped messages.
//!
//! Follows "Logical Replication Message Formats" in the PostgreSQL documentation. Every read is
//! bounds-checked and a short or malformed message is a typed error naming what was being read;
//! nothing here knows about tables, values or the replica. Begin and Commit are parsed too, so
//! captured streams can be replayed through this module alone.

use bytes::Bytes;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("pgoutput message ended early while reading {what} (at byte {at} of {len})")]
    Truncated { what: &'static str, at: usize, len: usize },
    #[error("unknown pgoutput message type {0:?}")]
    UnknownMessage(char),
    #[error("unexpected tuple marker {marker:?} in {what}")]
    BadMarker { what: &'static str, marker: char },
    #[error("{what} is not valid UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("{0} trailing bytes after a pgoutput message")]
    Trailing(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: u64,
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts: i64,
    },
    Origin {
        lsn: u64,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Tuple,
    },
    /// `old` is the key-only (`K`) or full (`O`) old tuple when the server sent one.
    Update {
        relation: u32,
        old: Option<(OldKind, Tuple)>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        old: (OldKind, Tuple),
    },
    Truncate {
        options: u8,
        relations: Vec<u32>,
    },
    /// A message written with `pg_logical_emit_message()`.
    Logical {
        transactional: bool,
        lsn: u64,
        prefix: String,
        content: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// `K`: only the replica identity columns are set; the others are NULL markers.
    Key,
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Bit 1: part of the replica identity.
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

pub type Tuple = Vec<TupleValue>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// `u`: an unchanged TOASTed value the server did not send.
    Unchanged,
    Text(Bytes),
    Binary(Bytes),
}

struct Reader {
    buf: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, ProtocolError> {
        let len = self.buf.len();
        if self.at.checked_add(n).is_none_or(|end| end > len) {
            return Err(ProtocolError::Truncated { what, at: self.at, len });
        }
        let out = self.buf.slice(self.at..self.at + n);
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ProtocolError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes(b[..].try_into().expect("4 bytes")))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, ProtocolError> {
        Ok(self.u32(what)? as i32)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ProtocolError> {
        let b = self.take(8, what)?;
        Ok(u64::from_be_bytes(b[..].try_into().expect("8 bytes")))
    }

    fn string(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        let rest = &self.buf[self.at..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(ProtocolError::Truncated { what, at: self.at, len: self.buf.len() });
        };
        let s = std::str::from_utf8(&rest[..nul]).map_err(|_| ProtocolError::NotUtf8 { what })?;
        let s = s.to_string();
        self.at += nul + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple, ProtocolError> {
        let n = self.u16("tuple column count")?;
        let mut out = Vec::with_capacity(n.into());
        for _ in 0..n {
            out.push(match self.u8("tuple value kind")? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::Unchanged,
                b't' => {
                    let len = self.u32("tuple value length")? as usize;
                    TupleValue::Text(self.take(len, "tuple text value")?)
                }
                b'b' => {
                    let len = self.u32("tuple value length")? as usize;
                    TupleValue::Binary(self.take(len, "tuple binary value")?)
                }
                other => return Err(ProtocolError::BadMarker { what: "tuple value", marker: other as char }),
            });
        }
        Ok(out)
    }

    fn finish(self) -> Result<(), ProtocolError> {
        match self.buf.len() - self.at {
            0 => Ok(()),
            n => Err(ProtocolError::Trailing(n)),
        }
    }
}

/// Parses one pgoutput message (the payload of one XLogData).
pub fn parse(buf: Bytes) -> Result<Message, ProtocolError> {
    let mut r = Reader { buf, at: 0 };
    let tag = r.u8("message type")?;
    let msg = match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64("Begin final LSN")?,
            commit_ts: r.u64("Begin commit time")? as i64,
            xid: r.u32("Begin xid")?,
        },
        b'C' => Message::Commit {
            flags: r.u8("Commit flags")?,
            commit_lsn: r.u64("Commit LSN")?,
            end_lsn: r.u64("Commit end LSN")?,
            commit_ts: r.u64("Commit time")? as i64,
        },
        b'O' => Message::Origin { lsn: r.u64("Origin LSN")?, name: r.string("Origin name")? },
        b'R' => {
            let oid = r.u32("Relation oid")?;
            let namespace = r.string("Relation namespace")?;
            let name = r.string("Relation name")?;
            let replica_identity = r.u8("Relation replica identity")?;
            let n = r.u16("Relation column count")?;
            let mut columns = Vec::with_capacity(n.into());
            for _ in 0..n {
                columns.push(RelationColumn {
                    flags: r.u8("column flags")?,
                    name: r.string("column name")?,
                    type_oid: r.u32("column type oid")?,
                    type_modifier: r.i32("column type modifier")?,
                });
            }
            Message::Relation(Relation { oid, namespace, name, replica_identity, columns })
        }
        b'Y' => Message::Type {
            oid: r.u32("Type oid")?,
            namespace: r.string("Type namespace")?,
            name: r.string("Type name")?,
        },
        b'I' => {
            let relation = r.u32("Insert relation")?;
            match r.u8("Insert tuple marker")? {
                b'N' => Message::Insert { relation, new: r.tuple()? },
                m => return Err(ProtocolError::BadMarker { what: "Insert", marker: m as char }),
            }
        }
        b'U' => {
            let relation = r.u32("Update relation")?;
            let (old, marker) = match r.u8("Update tuple marker")? {
                b'K' => (Some((OldKind::Key, r.tuple()?)), r.u8("Update new tuple marker")?),
                b'O' => (Some((OldKind::Full, r.tuple()?)), r.u8("Update new tuple marker")?),
                m => (None, m),
            };
            if marker != b'N' {
                return Err(ProtocolError::BadMarker { what: "Update", marker: marker as char });
            }
            Message::Update { relation, old, new: r.tuple()? }
        }
        b'D' => {
            let relation = r.u32("Delete relation")?;
            let kind = match r.u8("Delete tuple marker")? {
                b'K' => OldKind::Key,
                b'O' => OldKind::Full,
                m => return Err(ProtocolError::BadMarker { what: "Delete", marker: m as char }),
            };
            Message::Delete { relation, old: (kind, r.tuple()?) }
        }
        b'T' => {
            let n = r.u32("Truncate relation count")?;
            let options = r.u8("Truncate options")?;
            let mut relations = Vec::new();
            for _ in 0..n {
                relations.push(r.u32("Truncate relation")?);
            }
            Message::Truncate { options, relations }
        }
        b'M' => {
            let transactional = r.u8("Message flags")? & 1 == 1;
            let lsn = r.u64("Message LSN")?;
            let prefix = r.string("Message prefix")?;
            let len = r.u32("Message length")? as usize;
            let content = r.take(len, "Message content")?;
            Message::Logical { transactional, lsn, prefix, content }
        }
        other => return Err(ProtocolError::UnknownMessage(other as char)),
    };
    r.finish()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_typed_errors_not_panics() {
        let full = {
            let mut v = vec![b'I'];
            v.extend(16384u32.to_be_bytes());
            v.push(b'N');
            v.extend(2u16.to_be_bytes());
            v.push(b't');
            v.extend(3u32.to_be_bytes());
            v.extend(b"abc");
            v.push(b'n');
            v
        };
        assert_eq!(
            parse(Bytes::from(full.clone())).unwrap(),
            Message::Insert {
                relation: 16384,
                new: vec![TupleValue::Text(Bytes::from_static(b"abc")), TupleValue::Null]
            }
        );
        for cut in 0..full.len() {
            let err = parse(Bytes::from(full[..cut].to_vec())).unwrap_err();
            assert!(matches!(err, ProtocolError::Truncated { .. }), "cut at {cut}: {err:?}");
        }
        let mut long = full.clone();
        long.push(0);
        assert_eq!(parse(Bytes::from(long)), Err(ProtocolError::Trailing(1)));
        // A length that points past the end must not allocate or panic.
        let mut huge = full[..9].to_vec();
        huge.push(b't');
        huge.extend(u32::MAX.to_be_bytes());
        assert!(matches!(parse(Bytes::from(huge)), Err(ProtocolError::Truncated { .. })));
        assert_eq!(parse(Bytes::from_static(b"Z")), Err(ProtocolError::UnknownMessage('Z')));
    }
}
