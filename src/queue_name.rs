//! Which queue names are safe to use as Berkeley DB file names in the home
//! directory (docs/PROTOCOL.md, "Queue names"; the extent bound is in
//! docs/STORAGE.md, "Extent files").
//!
//! The original used the raw name as a file name, so `../x` escaped the home
//! and `queue.list` or `__db.001` collided with the environment's own files.

use crate::bdb::QUEUE_PAGE_HEADER_MAX;
use crate::storage::{deliveries, queue_list};

/// Longest key the memcache protocol allows.
pub const MAX_KEY_LEN: usize = 250;

/// Longest file name Linux file systems accept.
const MAX_FILE_NAME: usize = 255;

/// The file-name rules for queue names under one storage configuration.
#[derive(Debug, Clone, Copy)]
pub struct NameRules {
    /// Longest name whose every extent file name (`__dbq.<name>.<n>`) fits
    /// in a file name; a longer one would be created but never written
    /// (the original's "ghost queues").
    max_create_len: usize,
}

/// Why a new queue may not have a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateRefusal {
    /// Not a safe file name, or one with control bytes.
    BadName,
    /// Its extent file names could outgrow the file-name limit.
    TooLongForExtents,
}

impl NameRules {
    /// Rules for queues of `record_len`-byte records on `page_size`-byte
    /// pages with `extent_pages` pages per extent file (0: no extents).
    pub fn new(record_len: u32, page_size: u32, extent_pages: u32) -> NameRules {
        if extent_pages == 0 {
            return NameRules {
                max_create_len: MAX_KEY_LEN,
            };
        }
        // A lower bound on records per page (the largest page header, and
        // a flag byte per record), so the extent count is an upper bound
        // over the whole 32-bit record-number space.
        let header = u64::from(QUEUE_PAGE_HEADER_MAX);
        let per_page = ((page_size as u64).saturating_sub(header) / (record_len as u64 + 1)).max(1);
        let last_extent = u32::MAX as u64 / (per_page * extent_pages as u64);
        let digits = last_extent.to_string().len();
        let fixed = "__dbq.".len() + ".".len() + digits;
        NameRules {
            max_create_len: MAX_KEY_LEN.min(MAX_FILE_NAME - fixed),
        }
    }

    /// Whether `name` may name an existing queue: a key the protocol allows
    /// that, as a file name, stays inside the home and clear of Berkeley
    /// DB's own files. Lookups (`get`, `delete`) and queues found in a home
    /// use this rule, so every queue the original could create is served.
    pub fn is_safe(&self, name: &[u8]) -> bool {
        !name.is_empty()
            && name.len() <= MAX_KEY_LEN
            && !name.contains(&b'/')
            && name != b"."
            && name != b".."
            && !is_reserved(name)
    }

    /// Whether a new queue may be created under `name`: a safe name without
    /// control bytes, short enough for every extent file it may need.
    pub fn check_new(&self, name: &[u8]) -> Result<(), CreateRefusal> {
        if !self.is_safe(name) || name.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(CreateRefusal::BadName);
        }
        if name.len() > self.max_create_len {
            return Err(CreateRefusal::TooLongForExtents);
        }
        Ok(())
    }
}

/// Names of files Berkeley DB keeps in the environment home.
fn is_reserved(name: &[u8]) -> bool {
    let log_file = name.len() == "log.".len() + 10
        && name.starts_with(b"log.")
        && name[4..].iter().all(u8::is_ascii_digit);
    name == queue_list::FILE_NAME.as_bytes()
        || name == deliveries::FILE_NAME.as_bytes()
        || name == b"DB_CONFIG"
        || name.starts_with(b"__db")
        || log_file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        let r = NameRules::new(1024, 4096, 16384);
        for bad in [
            &b"../x"[..],
            b"a/b",
            b"queue.list",
            b"queue.deliveries",
            b"__db.001",
            b"__dbq.jobs.0",
            b"log.0000000001",
            b".",
            b"..",
            b"",
            b"DB_CONFIG",
        ] {
            let shown = String::from_utf8_lossy(bad);
            assert!(!r.is_safe(bad), "{shown}");
            assert_eq!(r.check_new(bad), Err(CreateRefusal::BadName), "{shown}");
        }
        for good in [&b"jobs"[..], b"bin.q-1", b"log.x", b"..x", b"x.."] {
            assert!(r.is_safe(good));
            assert_eq!(r.check_new(good), Ok(()));
        }
    }

    #[test]
    fn control_bytes_can_be_looked_up_but_not_created() {
        let r = NameRules::new(1024, 4096, 16384);
        assert!(r.is_safe(b"q\t"));
        assert_eq!(r.check_new(b"q\t"), Err(CreateRefusal::BadName));
    }

    #[test]
    fn names_too_long_for_extent_files_are_not_created() {
        let r = NameRules::new(1024, 4096, 16384);
        assert_eq!(r.check_new(&[b'a'; 243]), Ok(()));
        for len in [244, 248, 250] {
            assert!(r.is_safe(&vec![b'a'; len]));
            assert_eq!(
                r.check_new(&vec![b'a'; len]),
                Err(CreateRefusal::TooLongForExtents)
            );
        }
        assert!(!r.is_safe(&[b'a'; 251]));
        let no_extents = NameRules::new(1024, 4096, 0);
        assert_eq!(no_extents.check_new(&[b'a'; 250]), Ok(()));
        assert_eq!(
            no_extents.check_new(&[b'a'; 251]),
            Err(CreateRefusal::BadName)
        );
    }
}
