//! The homes written by the original MemcacheQ 0.2.1 (tests/fixtures, see
//! its README.md): where they are, how to unpack one, and what they hold.
//!
//! Every archive holds one home with the same queues, given to the
//! original as (queue, flags, body):
//! - `jobs`: 50 messages, message i has flags i and body
//!   `"job-%04d " % i` followed by (i * 7 % 300) bytes of value i % 256;
//!   the first 10 were consumed.
//! - `bin.q-1`: 20 messages, flags 7, body `bin\0\r\n\xff` then the bytes
//!   0, 1, ... up to i * 10 % 200 of them.
//! - `big`: one message of 1001 `B`s, flags 0 (fills a 1024-byte record).
//! - `empty`: one zero-length message, consumed.

use std::path::PathBuf;
use std::process::Command;

use super::{Home, TempDir};

/// `stats queue` of the MemcacheQ 0.2.1 fixture homes (tests/fixtures).
pub const ORIGINAL_QUEUE_STATS: [&str; 4] = [
    "STAT big 1/0",
    "STAT bin.q-1 20/0",
    "STAT empty 1/1",
    "STAT jobs 50/10",
];

/// The Berkeley DB databases of a fixture home: queue.list and the four
/// queues.
pub const ORIGINAL_DATABASES: [&str; 5] = ["queue.list", "jobs", "bin.q-1", "big", "empty"];

/// Path of `name` (a file or directory) in tests/fixtures.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Unpacks tests/fixtures/`archive` into a fresh temp dir and returns the
/// home `dir_in_archive` inside it (removed with the dir on drop).
pub fn unpack_fixture(archive: &str, dir_in_archive: &str) -> Home {
    let dir = TempDir::new("fixture");
    let archive = fixture_path(archive);
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("run tar");
    assert!(status.success(), "tar -xzf {} failed", archive.display());
    Home::inside(dir, dir_in_archive)
}

/// Body of message i of `jobs` in a fixture home.
pub fn original_job_body(i: usize) -> Vec<u8> {
    let mut body = format!("job-{i:04} ").into_bytes();
    body.extend(std::iter::repeat_n((i % 256) as u8, i * 7 % 300));
    body
}

/// Body of message i of `bin.q-1` in a fixture home.
pub fn original_bin_body(i: usize) -> Vec<u8> {
    let mut body = b"bin\x00\r\n\xff".to_vec();
    body.extend((0..i * 10 % 200).map(|b| b as u8));
    body
}
