//! A home directory written by the original MemcacheQ 0.2.1 on Berkeley DB
//! 5.3 (tests/fixtures/memcacheq-0.2.1-bdb5.3-clean.tar.gz) is served
//! unchanged: every queue, counter, message, flag and body.
//!
//! What the original was given (queue, flags, body):
//! - `jobs`: 50 messages, message i has flags i and body
//!   `"job-%04d " % i` followed by (i * 7 % 300) bytes of value i % 256;
//!   the first 10 were consumed.
//! - `bin.q-1`: 20 messages, flags 7, body `bin\0\r\n\xff` then the bytes
//!   0, 1, ... up to i * 10 % 200 of them.
//! - `big`: one message of 1001 `B`s, flags 0 (fills a 1024-byte record).
//! - `empty`: one zero-length message, consumed.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

/// Path of a file in tests/fixtures.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The 5.3 clean home, unpacked into a fresh temp dir.
fn unpack_clean_home() -> Home {
    let dir = TempDir::new("fixture");
    let archive = fixture("memcacheq-0.2.1-bdb5.3-clean.tar.gz");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("run tar");
    assert!(status.success(), "tar -xzf {} failed", archive.display());
    Home::inside(dir, "home53-clean")
}

/// Body of `jobs` message i.
fn job_body(i: usize) -> Vec<u8> {
    let mut body = format!("job-{i:04} ").into_bytes();
    body.extend(std::iter::repeat_n((i % 256) as u8, i * 7 % 300));
    body
}

/// Body of `bin.q-1` message i.
fn bin_body(i: usize) -> Vec<u8> {
    let mut body = b"bin\x00\r\n\xff".to_vec();
    body.extend((0..i * 10 % 200).map(|b| b as u8));
    body
}

/// Asserts `got` equals the expected (flags, body) list, showing bytes.
fn assert_messages(queue: &str, got: &[Message], want: &[(String, Vec<u8>)]) {
    let got: Vec<(String, String)> = got
        .iter()
        .map(|m| (m.flags.clone(), show(&m.body)))
        .collect();
    let want: Vec<(String, String)> = want.iter().map(|(f, b)| (f.clone(), show(b))).collect();
    assert_eq!(got, want, "messages of {queue}");
}

/// `stats queue` on the original's home lists its four queues with the
/// original's counters.
#[test]
fn original_home_lists_queues_and_counters() {
    let home = unpack_clean_home();
    let server = home.start(&[]);
    assert_eq!(server.client().queue_stats(), ORIGINAL_QUEUE_STATS);
}

/// Every message left by the original comes out in order with its exact
/// flags and body; afterwards the counters show everything consumed, and
/// they survive a graceful restart.
#[test]
fn original_home_drains_every_message_exactly() {
    let home = unpack_clean_home();
    let server = home.start(&[]);
    let mut c = server.client();
    let jobs: Vec<_> = (10..50).map(|i| (i.to_string(), job_body(i))).collect();
    assert_messages("jobs", &c.drain("jobs"), &jobs);
    let bins: Vec<_> = (0..20).map(|i| ("7".to_string(), bin_body(i))).collect();
    assert_messages("bin.q-1", &c.drain("bin.q-1"), &bins);
    assert_messages(
        "big",
        &c.drain("big"),
        &[("0".to_string(), vec![b'B'; 1001])],
    );
    assert_messages("empty", &c.drain("empty"), &[]);
    let drained = [
        "STAT big 1/1",
        "STAT bin.q-1 20/20",
        "STAT empty 1/1",
        "STAT jobs 50/50",
    ];
    assert_eq!(c.queue_stats(), drained);
    drop(c);
    server.stop();

    let server = home.start(&[]);
    assert_eq!(server.client().queue_stats(), drained);
    drop(server);
}

/// New messages on the original's home go after the old ones, and the
/// files still verify with db5.3_verify after our server wrote to them.
#[test]
fn original_home_accepts_new_messages_after_old_ones() {
    let home = unpack_clean_home();
    let server = home.start(&[]);
    let mut c = server.client();
    c.set("jobs", 77, b"new job");
    c.set("empty", 5, b"no longer empty");
    assert_eq!(c.queue_stats()[3], "STAT jobs 51/10");
    let mut jobs: Vec<_> = (10..50).map(|i| (i.to_string(), job_body(i))).collect();
    jobs.push(("77".to_string(), b"new job".to_vec()));
    assert_messages("jobs", &c.drain("jobs"), &jobs);
    assert_messages(
        "empty",
        &c.drain("empty"),
        &[("5".to_string(), b"no longer empty".to_vec())],
    );
    drop(c);
    server.stop();
    let h = home.path.to_str().expect("utf-8 path");
    for db in ["queue.list", "jobs", "bin.q-1", "big", "empty"] {
        db_tool("verify", &["-h", h, db]);
    }
}
