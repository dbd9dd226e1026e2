//! COPY `TO STDOUT (FORMAT binary)` → fields, for the snapshot of a session that reads binary
//! tuples: each field is its type's send form, the same bytes pgoutput's binary tuples carry,
//! so the snapshot and the stream feed one reader ([`super::binary`]).
//!
//! The format: an 11-byte signature, flags and a header extension; then per tuple a 16-bit
//! field count and each field as a 32-bit length (−1: NULL) and its bytes; then −1 as the
//! trailer. PostgreSQL sends a tuple per CopyData message, but nothing here relies on it.

/// `PGCOPY\n\377\r\n\0`.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Accumulates COPY data chunks and yields complete tuples.
#[derive(Default)]
pub struct TupleBuffer {
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
}

impl TupleBuffer {
    /// Feeds a chunk and calls `tuple` for every complete tuple in it (a field is `None` when
    /// NULL). An error is the stream's (malformed) or `tuple`'s.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut tuple: impl FnMut(&[Option<&[u8]>]) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.pending.is_empty() {
            let used = self.parse(chunk, &mut tuple)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            self.pending.extend_from_slice(chunk);
            let buffered = std::mem::take(&mut self.pending);
            let used = self.parse(&buffered, &mut tuple)?;
            self.pending = buffered[used..].to_vec();
        }
        Ok(())
    }

    /// Checks that the stream ended with its trailer, not inside a tuple.
    pub fn finish(&self) -> Result<(), String> {
        if self.ended && self.pending.is_empty() { Ok(()) } else { Err("COPY data ended inside a row".into()) }
    }

    /// Reads what complete tuples `buf` holds; returns how many bytes they took.
    fn parse(
        &mut self,
        buf: &[u8],
        tuple: &mut impl FnMut(&[Option<&[u8]>]) -> Result<(), String>,
    ) -> Result<usize, String> {
        let mut at = 0;
        if !self.header_read {
            let Some(head) = buf.get(..19) else { return Ok(0) };
            if &head[..11] != SIGNATURE {
                return Err("the COPY data is not in PostgreSQL's binary format".into());
            }
            let extension = u32::from_be_bytes(head[15..19].try_into().expect("4 bytes")) as usize;
            if buf.len() < 19 + extension {
                return Ok(0);
            }
            at = 19 + extension;
            self.header_read = true;
        }
        let mut fields: Vec<Option<&[u8]>> = Vec::new();
        loop {
            if self.ended {
                if at < buf.len() {
                    return Err("COPY data after its trailer".into());
                }
                return Ok(at);
            }
            let Some(count) = buf.get(at..at + 2) else { return Ok(at) };
            let count = i16::from_be_bytes(count.try_into().expect("2 bytes"));
            if count == -1 {
                self.ended = true;
                at += 2;
                continue;
            }
            if count < 0 {
                return Err(format!("a COPY tuple with {count} fields"));
            }
            fields.clear();
            let mut p = at + 2;
            for _ in 0..count {
                let Some(len) = buf.get(p..p + 4) else { return Ok(at) };
                let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
                p += 4;
                if len == -1 {
                    fields.push(None);
                    continue;
                }
                let Ok(len) = usize::try_from(len) else { return Err(format!("a COPY field of length {len}")) };
                let Some(bytes) = buf.get(p..p + len) else { return Ok(at) };
                fields.push(Some(bytes));
                p += len;
            }
            tuple(&fields)?;
            at = p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `tuples` as PostgreSQL writes it.
    fn stream(tuples: &[Vec<Option<&[u8]>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&4u32.to_be_bytes());
        out.extend_from_slice(b"ext!");
        for t in tuples {
            out.extend_from_slice(&(t.len() as i16).to_be_bytes());
            for f in t {
                match f {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        out.extend_from_slice(b);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn read(chunks: &[&[u8]]) -> Result<Vec<Vec<Option<Vec<u8>>>>, String> {
        let mut buffer = TupleBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.feed(chunk, |fields| {
                out.push(fields.iter().map(|f| f.map(<[u8]>::to_vec)).collect());
                Ok(())
            })?;
        }
        buffer.finish()?;
        Ok(out)
    }

    #[test]
    fn tuples_read_alike_however_the_stream_is_cut() {
        let tuples = vec![vec![Some(&b"\x00\x00\x00\x07"[..]), None, Some(&b""[..])], vec![], vec![Some(&b"abc"[..])]];
        let data = stream(&tuples);
        let expected: Vec<Vec<Option<Vec<u8>>>> =
            tuples.iter().map(|t| t.iter().map(|f| f.map(<[u8]>::to_vec)).collect()).collect();
        assert_eq!(read(&[&data]).unwrap(), expected);
        for cut in 1..data.len() {
            assert_eq!(read(&[&data[..cut], &data[cut..]]).unwrap(), expected, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(read(&bytes).unwrap(), expected, "a byte at a time");
    }

    #[test]
    fn malformed_streams_are_errors() {
        let data = stream(&[vec![Some(&b"x"[..])]]);
        assert!(read(&[&data[..data.len() - 2]]).unwrap_err().contains("ended inside"), "no trailer");
        assert!(read(&[b"COPY 1\n"]).unwrap_err().contains("ended inside"), "short of a header");
        assert!(read(&[b"not binary at all, long enough"]).unwrap_err().contains("binary format"));
        let mut after = data.clone();
        after.push(0);
        assert!(read(&[&after]).unwrap_err().contains("after its trailer"));
        let mut negative = stream(&[]);
        let n = negative.len();
        negative[n - 2..].copy_from_slice(&(-5i16).to_be_bytes());
        assert!(read(&[&negative]).unwrap_err().contains("-5 fields"));
    }
}
