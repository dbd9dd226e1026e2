//! COPY `TO STDOUT` text format → fields, for the snapshot.
//!
//! The snapshot reads tables with COPY because it is the fastest way out of PostgreSQL, and its
//! text format uses the same type output functions as pgoutput's text tuples: after undoing
//! COPY's backslash escapes, both paths feed the same value parser.

use std::borrow::Cow;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyError {
    #[error("COPY row has {found} fields, expected {expected}")]
    FieldCount { expected: usize, found: usize },
    #[error("COPY field is not valid UTF-8")]
    NotUtf8,
    #[error("COPY data ended inside a row")]
    UnterminatedRow,
}

/// Accumulates COPY data chunks and yields complete lines.
#[derive(Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Feeds a chunk and calls `row` for every complete line in it.
    pub fn feed<E>(&mut self, chunk: &[u8], mut row: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.pending.extend_from_slice(&rest[..nl]);
                    let line = std::mem::take(&mut self.pending);
                    row(&line)?;
                    rest = &rest[nl + 1..];
                }
                None => {
                    self.pending.extend_from_slice(rest);
                    return Ok(());
                }
            }
        }
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            row(&rest[..nl])?;
            rest = &rest[nl + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    pub fn finish(&self) -> Result<(), CopyError> {
        if self.pending.is_empty() { Ok(()) } else { Err(CopyError::UnterminatedRow) }
    }
}

/// Splits one line into fields: `None` for NULL (`\N`), otherwise the unescaped text.
pub fn split_fields<'a>(line: &'a [u8], out: &mut Vec<Option<Cow<'a, str>>>) -> Result<(), CopyError> {
    out.clear();
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            out.push(None);
        } else if !field.contains(&b'\\') {
            out.push(Some(Cow::Borrowed(std::str::from_utf8(field).map_err(|_| CopyError::NotUtf8)?)));
        } else {
            out.push(Some(Cow::Owned(unescape(field)?)));
        }
    }
    Ok(())
}

fn unescape(field: &[u8]) -> Result<String, CopyError> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = field[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push(b'x');
                } else {
                    out.push(v as u8);
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| CopyError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_nulls_and_escapes() {
        let mut out = Vec::new();
        split_fields(b"1\t\\N\ta\\tb\\nc\\\\d\t\\101\\x42", &mut out).unwrap();
        let got: Vec<Option<&str>> = out.iter().map(|f| f.as_deref()).collect();
        assert_eq!(got, vec![Some("1"), None, Some("a\tb\nc\\d"), Some("AB")]);
        split_fields(b"", &mut out).unwrap();
        assert_eq!(out, vec![Some(Cow::Borrowed(""))]);
    }

    #[test]
    fn lines_split_across_chunks() {
        let mut buf = LineBuffer::default();
        let mut lines = Vec::new();
        for chunk in [&b"a\tb\nc"[..], b"d\te", b"\n", b"f\n"] {
            buf.feed(chunk, |l| {
                lines.push(String::from_utf8(l.to_vec()).unwrap());
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        assert_eq!(lines, vec!["a\tb", "cd\te", "f"]);
        buf.finish().unwrap();
    }
}
