//! The memcache item layout: how one message is kept, as the record of a
//! queue (docs/STORAGE.md, "The record"). It is the original's in-memory
//! item, which Berkeley DB pads with spaces to the record length. The
//! parser encodes it, the executor and the inspection tools decode it.
//!
//! | offset | size | content                                       |
//! |--------|------|-----------------------------------------------|
//! | 0      | 4    | data length + 2, little-endian i32            |
//! | 4      | 1    | suffix length                                 |
//! | 5      | 1    | name length                                   |
//! | 6      | 2    | zero                                          |
//! | 8      | n+1  | name and a NUL byte                           |
//! | ..     | s    | `" <flags> <data length>\r\n"`                |
//! | ..     | d+2  | data and `\r\n`                               |

const HEADER_LEN: usize = 8;

/// The `" <flags> <bytes>\r\n"` suffix; flags are echoed as a signed number,
/// as the original does (4294967295 comes back as -1).
pub fn suffix(flags: u32, data_len: usize) -> String {
    format!(" {} {}\r\n", flags as i32, data_len)
}

/// Bytes a message occupies before Berkeley DB's padding.
pub fn encoded_len(name: &[u8], suffix: &str, data_len: usize) -> usize {
    HEADER_LEN + name.len() + 1 + suffix.len() + data_len + 2
}

/// Appends the record for `data` (without its `\r\n`) to `out`.
pub fn encode(out: &mut Vec<u8>, name: &[u8], flags: u32, data: &[u8]) {
    let suffix = suffix(flags, data.len());
    out.reserve(encoded_len(name, &suffix, data.len()));
    out.extend_from_slice(&((data.len() + 2) as i32).to_le_bytes());
    out.push(suffix.len() as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A decoded record, borrowing from the stored bytes.
#[derive(Debug, PartialEq)]
pub struct Message<'a> {
    /// The queue name stored in the record.
    pub name: &'a [u8],
    /// `" <flags> <bytes>\r\n"` exactly as stored.
    pub suffix: &'a [u8],
    /// The data followed by `\r\n`.
    pub data_crlf: &'a [u8],
}

impl Message<'_> {
    /// Bytes of the record the message uses, before Berkeley DB's padding.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.name.len() + 1 + self.suffix.len() + self.data_crlf.len()
    }
}

/// Decodes a stored record; `None` when its header does not fit its length.
pub fn decode(record: &[u8]) -> Option<Message<'_>> {
    let header = record.get(..HEADER_LEN)?;
    let data_len = i32::from_le_bytes(header[..4].try_into().ok()?);
    let data_len = usize::try_from(data_len).ok().filter(|&n| n >= 2)?;
    let suffix_len = header[4] as usize;
    let name_len = header[5] as usize;
    let name_end = HEADER_LEN + name_len;
    let suffix_start = name_end + 1;
    let data_start = suffix_start + suffix_len;
    let data_end = data_start.checked_add(data_len)?;
    if data_end > record.len() || record[name_end] != 0 {
        return None;
    }
    Some(Message {
        name: &record[HEADER_LEN..name_end],
        suffix: &record[suffix_start..data_start],
        data_crlf: &record[data_start..data_end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_spec_example() {
        let mut r = Vec::new();
        encode(&mut r, b"jobs", 0, b"abc");
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let spec = [
            "05000000",
            "06",
            "04",
            "0000",
            "6a6f627300",
            "2030",
            "20330d0a",
            "6162630d0a",
        ];
        assert_eq!(hex, spec.concat());
        let m = decode(&r).unwrap();
        assert_eq!(
            (m.name, m.suffix, m.data_crlf),
            (&b"jobs"[..], &b" 0 3\r\n"[..], &b"abc\r\n"[..])
        );
        assert_eq!(m.encoded_len(), r.len());
    }

    #[test]
    fn flags_echo_signed_and_padding_is_ignored() {
        let mut r = Vec::new();
        encode(&mut r, b"q", u32::MAX, b"");
        r.resize(1024, b' ');
        let m = decode(&r).unwrap();
        assert_eq!(m.suffix, b" -1 0\r\n");
        assert_eq!(m.data_crlf, b"\r\n");
    }

    #[test]
    fn truncated_records_are_rejected() {
        let mut r = Vec::new();
        encode(&mut r, b"jobs", 0, b"abc");
        assert!(decode(&r[..r.len() - 1]).is_none());
        assert!(decode(&r[..5]).is_none());
    }
}
