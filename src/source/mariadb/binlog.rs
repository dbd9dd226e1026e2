//! Binlog coordinates as opslive's [`Position`]: the file's number (the digits after the last
//! dot of `mysql-bin.000042`) in the high 32 bits, the byte offset in it in the low 32. Files
//! are numbered in order and offsets only grow within a file, so positions order like the
//! binlog itself; a file never reaches 4 GiB (`max_binlog_size` caps it at 1 GiB).

use crate::change::Position;

/// A file and an offset in it, as the server names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coordinates {
    pub file: String,
    pub offset: u64,
}

impl Coordinates {
    pub fn position(&self) -> Option<Position> {
        Some(Position((file_number(&self.file)? << 32) | (self.offset & 0xFFFF_FFFF)))
    }
}

/// The number of a binlog file (`mysql-bin.000042` → 42).
pub fn file_number(file: &str) -> Option<u64> {
    let (_, digits) = file.rsplit_once('.')?;
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The file a position is in, named like `sibling` (another file of the same binlog: the
/// base name and the digits' width are the server's).
pub fn coordinates(position: Position, sibling: &str) -> Coordinates {
    let (base, digits) = sibling.rsplit_once('.').unwrap_or((sibling, "000001"));
    let width = digits.chars().take_while(char::is_ascii_digit).count().max(6);
    Coordinates { file: format!("{base}.{:0width$}", position.0 >> 32), offset: position.0 & 0xFFFF_FFFF }
}

/// The file a rotate event moves the stream to. Rotates come at the end of a file, and as
/// "fake" ones from the server when a stream starts or moves on to the next file after a
/// crash. The first fake rotate arrives before the stream's format description, so mysql_common
/// leaves the event's 4 checksum bytes on the name (`checksum_in_name`); they may even be
/// digits, which would read as part of the file's number.
pub fn rotated_to(name: &[u8], checksum_in_name: bool) -> String {
    let name = if checksum_in_name && name.len() > 4 { &name[..name.len() - 4] } else { name };
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_like_the_binlog_and_name_their_file_again() {
        let a = Coordinates { file: "mysql-bin.000009".into(), offset: 4_000_000 }.position().unwrap();
        let b = Coordinates { file: "mysql-bin.000010".into(), offset: 4 }.position().unwrap();
        assert!(a < b, "a later file is later, whatever the offsets");
        assert_eq!(b.to_string(), "A/4");
        assert_eq!(
            coordinates(a, "mysql-bin.000001"),
            Coordinates { file: "mysql-bin.000009".into(), offset: 4_000_000 }
        );
        // A first fake rotate whose checksum starts with digits would name file 1_4….
        assert_eq!(rotated_to(b"mysql-bin.0000014\x02z\x09", true), "mysql-bin.000001");
        assert_eq!(rotated_to(b"mysql-bin.000002", false), "mysql-bin.000002");
        assert_eq!(file_number("nodigits"), None);
    }
}
