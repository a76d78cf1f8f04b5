//! The format of `queue.list` (docs/STORAGE.md, "queue.list"): a btree
//! whose key is a queue's name and a NUL byte, and whose value is the
//! queue's set and get counters as two little-endian i64. The server, the
//! `-Q` overview and `memcacheq-upgrade` all read it through here.

use crate::bdb::{self, Database};

/// The database file, in the environment home.
pub const FILE_NAME: &str = "queue.list";

/// A queue's lifetime counters, as kept in `queue.list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages stored.
    pub set: i64,
    /// Messages taken off.
    pub get: i64,
}

impl Counts {
    /// Messages stored and not taken off (0 if the counters say less).
    pub fn waiting(self) -> u64 {
        u64::try_from(self.set.saturating_sub(self.get)).unwrap_or(0)
    }

    /// The 16-byte value: set then get, little-endian i64.
    pub fn encode(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.set.to_le_bytes());
        out[8..].copy_from_slice(&self.get.to_le_bytes());
        out
    }

    /// Reads a 16-byte value; `None` when it is shorter.
    pub fn decode(bytes: &[u8]) -> Option<Counts> {
        let set = bytes.get(..8)?.try_into().ok()?;
        let get = bytes.get(8..16)?.try_into().ok()?;
        Some(Counts {
            set: i64::from_le_bytes(set),
            get: i64::from_le_bytes(get),
        })
    }
}

/// The key of queue `name`: the name and a NUL byte.
pub fn key(name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.extend_from_slice(name);
    key.push(0);
    key
}

/// The queue name a key stands for.
fn name_of(key: &[u8]) -> &[u8] {
    key.strip_suffix(&[0]).unwrap_or(key)
}

/// Every entry of an open `queue.list` (the server's or a tool's) as (name,
/// counters), in key order; a value too short for two counters reads as
/// zeros.
pub fn entries<T>(list: &Database<T>) -> bdb::Result<Vec<(Vec<u8>, Counts)>> {
    list.cursor()?
        .map(|entry| {
            let (key, value) = entry?;
            let counts = Counts::decode(&value).unwrap_or_default();
            Ok((name_of(&key).to_vec(), counts))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_counters_round_trip() {
        assert_eq!(key(b"jobs"), b"jobs\0");
        assert_eq!(name_of(&key(b"jobs")), b"jobs");
        let c = Counts { set: 50, get: -1 };
        let bytes = c.encode();
        assert_eq!(&bytes[..8], &50i64.to_le_bytes());
        assert_eq!(Counts::decode(&bytes), Some(c));
        assert_eq!(Counts::decode(&bytes[..15]), None);
    }
}
