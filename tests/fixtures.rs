//! A home directory written by the original MemcacheQ 0.2.1 on Berkeley DB
//! 5.3 (tests/fixtures/memcacheq-0.2.1-bdb5.3-clean.tar.gz) is served
//! unchanged: every queue, counter, message, flag and body. What the
//! original was given is listed in tests/common/fixtures.rs.

mod common;

use common::*;

/// The 5.3 clean home, unpacked into a fresh temp dir.
fn unpack_clean_home() -> Home {
    unpack_fixture("memcacheq-0.2.1-bdb5.3-clean.tar.gz", "home53-clean")
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
    let jobs: Vec<_> = (10..50)
        .map(|i| (i.to_string(), original_job_body(i)))
        .collect();
    assert_messages("jobs", &c.drain("jobs"), &jobs);
    let bins: Vec<_> = (0..20)
        .map(|i| ("7".to_string(), original_bin_body(i)))
        .collect();
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
    let mut jobs: Vec<_> = (10..50)
        .map(|i| (i.to_string(), original_job_body(i)))
        .collect();
    jobs.push(("77".to_string(), b"new job".to_vec()));
    assert_messages("jobs", &c.drain("jobs"), &jobs);
    assert_messages(
        "empty",
        &c.drain("empty"),
        &[("5".to_string(), b"no longer empty".to_vec())],
    );
    drop(c);
    server.stop();
    for db in ORIGINAL_DATABASES {
        db_tool("verify", &["-h", home.path_str(), db]);
    }
}
