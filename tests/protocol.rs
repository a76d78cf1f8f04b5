//! The memcache text protocol subset of docs/PROTOCOL.md, byte for byte:
//! one test per command's reply and per rule of "Lines and tokens", each
//! against the real binary on its own home and port.

mod common;

use common::*;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `set` answers `STORED`, `get` returns the message with its flags and
/// consumes it; the next `get` answers a bare `END`.
#[test]
fn set_then_get_consumes_the_message() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set jobs 0 0 5\r\nhello\r\n", b"STORED\r\n");
    c.call(b"get jobs\r\n", b"VALUE jobs 0 5\r\nhello\r\nEND\r\n");
    c.call(b"get jobs\r\n", b"END\r\n");
}

/// Messages come out oldest first; exptime is ignored (a message set with
/// exptime 1 is still there two seconds later).
#[test]
fn messages_come_out_in_order_and_exptime_is_ignored() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set q 0 1 3\r\none\r\n", STORED);
    c.call(b"set q 0 0 3\r\ntwo\r\n", STORED);
    c.call(b"set q 0 999 5\r\nthree\r\n", STORED);
    thread::sleep(Duration::from_millis(2100));
    c.call(b"get q\r\n", b"VALUE q 0 3\r\none\r\nEND\r\n");
    c.call(b"get q\r\n", b"VALUE q 0 3\r\ntwo\r\nEND\r\n");
    c.call(b"get q\r\n", b"VALUE q 0 5\r\nthree\r\nEND\r\n");
    c.call(b"get q\r\n", END);
}

/// Bodies are binary-safe: NUL, CR, LF and `END\r\n` inside a body come back
/// unchanged, and a zero-length message is stored and returned.
#[test]
fn bodies_are_binary_safe_and_may_be_empty() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let body = b"\x00\r\nEND\r\n\xff\xfe VALUE x 0 1\r\n";
    c.send(&set_cmd(b"bin", 3, body));
    c.expect(STORED);
    c.call(b"set bin 0 0 0\r\n\r\n", STORED);
    c.send(b"get bin\r\n");
    let mut want = value_reply(b"bin", "3", body);
    want.extend_from_slice(END);
    c.expect(&want);
    c.call(b"get bin\r\n", b"VALUE bin 0 0\r\n\r\nEND\r\n");
}

/// Flags come back as given; 4294967295 (parsed unsigned 32-bit) is echoed
/// as the signed `-1`, 2147483648 as `-2147483648`.
#[test]
fn flags_are_echoed_as_signed_32_bit() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set f 42 0 1\r\na\r\n", STORED);
    c.call(b"set f 4294967295 0 1\r\nb\r\n", STORED);
    c.call(b"set f 2147483648 0 1\r\nc\r\n", STORED);
    c.call(b"set f 2147483647 0 1\r\nd\r\n", STORED);
    c.call(b"get f\r\n", b"VALUE f 42 1\r\na\r\nEND\r\n");
    c.call(b"get f\r\n", b"VALUE f -1 1\r\nb\r\nEND\r\n");
    c.call(b"get f\r\n", b"VALUE f -2147483648 1\r\nc\r\nEND\r\n");
    c.call(b"get f\r\n", b"VALUE f 2147483647 1\r\nd\r\nEND\r\n");
}

/// Non-numeric flags and exptime count as 0.
#[test]
fn non_numeric_flags_and_exptime_count_as_zero() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set q abc xyz 2\r\nhi\r\n", STORED);
    c.call(b"get q\r\n", b"VALUE q 0 2\r\nhi\r\nEND\r\n");
}

/// Out-of-range flags or exptime get `CLIENT_ERROR bad command line format`
/// and nothing is stored.
#[test]
fn out_of_range_flags_or_exptime_are_refused() {
    let (_home, server) = start(&[]);
    for line in [
        &b"set q 99999999999999999999 0 1\r\n"[..],
        b"set q 0 99999999999999999999 1\r\n",
    ] {
        let mut c = server.client();
        c.call(line, BAD_FORMAT);
    }
    let mut c = server.client();
    c.call(b"get q\r\n", END);
    assert_eq!(c.queue_stats(), Vec::<String>::new());
}

/// `get` of a queue that never existed, and of one that is empty, answers
/// only `END`.
#[test]
fn get_of_missing_or_empty_queue_is_end() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"get nosuchqueue\r\n", END);
    c.call(b"set q 0 0 1\r\nx\r\n", STORED);
    c.call(b"get q\r\n", b"VALUE q 0 1\r\nx\r\nEND\r\n");
    c.call(b"get q\r\n", END);
    // Asking did not create the missing queue.
    assert_eq!(c.queue_stats(), vec!["STAT q 1/1".to_string()]);
}

/// A multi-key `get` answers each queue that has a message in the order
/// named; missing queues contribute nothing; one `END` at the end.
#[test]
fn get_with_several_queues() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set a 1 0 2\r\nm1\r\n", STORED);
    c.call(b"set b 2 0 2\r\nm2\r\n", STORED);
    c.call(
        b"get b missing a\r\n",
        b"VALUE b 2 2\r\nm2\r\nVALUE a 1 2\r\nm1\r\nEND\r\n",
    );
    c.call(b"get a b\r\n", END);
}

/// The same queue named several times in one `get` yields one message per
/// mention, oldest first, until it runs dry.
#[test]
fn get_same_queue_twice_takes_two_messages() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set q 0 0 2\r\nm1\r\n", STORED);
    c.call(b"set q 0 0 2\r\nm2\r\n", STORED);
    c.call(
        b"get q q q\r\n",
        b"VALUE q 0 2\r\nm1\r\nVALUE q 0 2\r\nm2\r\nEND\r\n",
    );
}

/// `get` without a key is `ERROR` (also with only trailing spaces).
#[test]
fn get_without_key_is_error() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"get\r\n", ERROR);
    c.call(b"get   \r\n", ERROR);
    c.call(b"version\r\n", VERSION);
}

/// `set` with 3 arguments, or with a fifth that is not `noreply`, is
/// `ERROR`. Without a length no data block is read, so the following line
/// is parsed as a command; with a valid length the block is swallowed.
#[test]
fn set_with_wrong_argument_count_is_error() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set q 0 0\r\nversion\r\n", b"ERROR\r\nVERSION 0.2.1\r\n");
    c.call(
        b"set q 0 0 1 extra\r\nx\r\nversion\r\n",
        b"ERROR\r\nVERSION 0.2.1\r\n",
    );
    c.call(b"set\r\n", ERROR);
    c.call(b"get q\r\n", END);
}

/// A key of 251 bytes gets `CLIENT_ERROR bad command line format` from get,
/// set and delete (and the refused set's data block is skipped); a long key
/// under the limit is answered normally. (248..250-byte names are refused
/// for their extent file name, see tests/safety.rs, so 240 is used here.)
#[test]
fn keys_longer_than_250_bytes_are_refused() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let long = "k".repeat(251);
    c.call(format!("get {long}\r\n").as_bytes(), BAD_FORMAT);
    c.call(format!("delete {long}\r\n").as_bytes(), BAD_FORMAT);
    c.call(format!("set {long} 0 0 1\r\nx\r\n").as_bytes(), BAD_FORMAT);
    let ok = "k".repeat(240);
    c.call(format!("get {ok}\r\n").as_bytes(), END);
    c.call(format!("delete {ok}\r\n").as_bytes(), b"NOT_FOUND\r\n");
    c.call(b"version\r\n", VERSION);
}

/// `delete q` removes the queue and its messages (`DELETED`), a second
/// delete is `NOT_FOUND`; the queue leaves `stats queue`.
#[test]
fn delete_removes_queue_and_messages() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set q 0 0 1\r\na\r\n", STORED);
    c.call(b"set q 0 0 1\r\nb\r\n", STORED);
    c.call(b"set keep 0 0 1\r\nk\r\n", STORED);
    c.call(b"delete q\r\n", b"DELETED\r\n");
    c.call(b"get q\r\n", END);
    c.call(b"delete q\r\n", b"NOT_FOUND\r\n");
    c.call(b"delete never\r\n", b"NOT_FOUND\r\n");
    assert_eq!(c.queue_stats(), vec!["STAT keep 1/0".to_string()]);
    // The name can be used again, starting empty.
    c.call(b"set q 0 0 1\r\nc\r\n", STORED);
    c.call(b"get q\r\n", b"VALUE q 0 1\r\nc\r\nEND\r\n");
}

/// `delete q <time>` deletes and replies (the time is ignored);
/// `delete q noreply` deletes and sends nothing (tests/compat.rs).
#[test]
fn delete_with_time_or_noreply_deletes() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set a 0 0 1\r\nx\r\n", STORED);
    c.call(b"set b 0 0 1\r\nx\r\n", STORED);
    c.call(b"delete a 0\r\n", b"DELETED\r\n");
    c.call(b"delete b noreply\r\nversion\r\n", VERSION);
    c.call(b"delete a 10\r\n", b"NOT_FOUND\r\n");
    assert_eq!(c.queue_stats(), Vec::<String>::new());
}

const STAT_NAMES: [&str; 17] = [
    "pid",
    "uptime",
    "time",
    "version",
    "pointer_size",
    "rusage_user",
    "rusage_system",
    "curr_connections",
    "total_connections",
    "connection_structures",
    "get_cmds",
    "get_hits",
    "set_cmds",
    "set_hits",
    "bytes_read",
    "bytes_written",
    "threads",
];

/// `stats` sends the STAT lines of docs/PROTOCOL.md in order then `END`; pid, version,
/// pointer size, time and threads (the default) have the expected values.
#[test]
fn stats_lines_in_order_with_values() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let stats = c.stats();
    let names: Vec<&str> = stats.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, STAT_NAMES);
    let value = |name: &str| stats.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(value("pid"), server.pid().to_string());
    assert_eq!(value("version"), "0.2.1");
    assert_eq!(value("pointer_size"), "64");
    // The default (4, or the cores less one if fewer), unless scripts/test's
    // second round set -t.
    let threads = std::env::var("MEMCACHEQ_TEST_THREADS")
        .unwrap_or_else(|_| memcacheq::config::default_threads().to_string());
    assert_eq!(value("threads"), threads);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let time: u64 = value("time").parse().unwrap();
    assert!(time.abs_diff(now) <= 5, "STAT time {time}, now {now}");
    let uptime: u64 = value("uptime").parse().unwrap();
    assert!(uptime < 120, "uptime {uptime}");
    for name in ["rusage_user", "rusage_system"] {
        let v = value(name);
        let (secs, micros) = v.split_once('.').unwrap_or_else(|| panic!("{name} {v}"));
        assert!(
            secs.parse::<u64>().is_ok() && micros.len() == 6,
            "{name} {v}"
        );
        assert!(micros.bytes().all(|b| b.is_ascii_digit()), "{name} {v}");
    }
    for name in &STAT_NAMES[7..16] {
        assert!(value(name).parse::<u64>().is_ok(), "{name} not a number");
    }
}

/// `threads` reports the -t value.
#[test]
fn stats_threads_follows_t_flag() {
    let (_home, server) = start(&["-t", "2"]);
    assert_eq!(server.client().stat("threads"), 2);
}

/// get_cmds counts keys asked for, get_hits messages returned, set_cmds set
/// commands whose data block arrived (a bad chunk included), set_hits those
/// stored.
#[test]
fn stats_get_and_set_counters_move() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let before = |c: &mut Client| {
        [
            c.stat("get_cmds"),
            c.stat("get_hits"),
            c.stat("set_cmds"),
            c.stat("set_hits"),
        ]
    };
    let b = before(&mut c);
    c.call(b"set a 0 0 1\r\nx\r\n", STORED);
    c.call(b"set b 0 0 1\r\ny\r\n", STORED);
    c.call(b"set a 0 0 1\r\nzzz", b"CLIENT_ERROR bad data chunk\r\n");
    c.call(
        b"get a missing b a\r\n",
        b"VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n",
    );
    let a = before(&mut c);
    let delta: Vec<u64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
    assert_eq!(delta, [4, 2, 3, 2], "get_cmds get_hits set_cmds set_hits");
}

/// curr_connections and total_connections follow clients opening and
/// closing connections.
#[test]
fn stats_connection_counters_follow_clients() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let base = wait_for_stat(&mut c, "curr_connections", None);
    let total = c.stat("total_connections");
    let extra: Vec<Client> = (0..3).map(|_| server.client()).collect();
    wait_for_stat(&mut c, "curr_connections", Some(base + 3));
    assert_eq!(c.stat("total_connections"), total + 3);
    drop(extra);
    wait_for_stat(&mut c, "curr_connections", Some(base));
}

/// Polls `name` until it equals `want` (or is stable, when `want` is None).
fn wait_for_stat(c: &mut Client, name: &str, want: Option<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = c.stat(name);
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = c.stat(name);
        let done = match want {
            Some(w) => now == w,
            None => now == last,
        };
        if done {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "STAT {name} is {now}, want {want:?}"
        );
        last = now;
    }
}

/// `stats queue` lists every queue as `STAT <q> <set>/<get>`; with no queue
/// it is only `END`; `stats queue x` lists the same.
#[test]
fn stats_queue_lists_counters() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"stats queue\r\n", END);
    c.call(b"set a 0 0 1\r\nx\r\n", STORED);
    c.call(b"set a 0 0 1\r\nx\r\n", STORED);
    c.call(b"set b 0 0 1\r\nx\r\n", STORED);
    c.call(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    c.call(b"get b\r\n", b"VALUE b 0 1\r\nx\r\nEND\r\n");
    c.call(b"get b\r\n", END);
    let want = vec!["STAT a 2/1".to_string(), "STAT b 1/1".to_string()];
    assert_eq!(c.queue_stats(), want);
    c.send(b"stats queue x\r\n");
    assert_eq!(queue_lines(&c.read_until(END)), want);
}

/// `stats reset` and `stats reset x` answer `RESET` and zero the command
/// counters.
#[test]
fn stats_reset_answers_reset() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set a 0 0 1\r\nx\r\n", STORED);
    c.call(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    c.call(b"stats reset\r\n", b"RESET\r\n");
    assert_eq!(c.stat("set_cmds"), 0);
    assert_eq!(c.stat("get_cmds"), 0);
    c.call(b"get a\r\n", END);
    c.call(b"stats reset x\r\n", b"RESET\r\n");
    assert_eq!(c.stat("get_cmds"), 0);
}

/// `stats` with any other argument is `ERROR`.
#[test]
fn stats_other_is_error() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    for line in [
        &b"stats foo\r\n"[..],
        b"stats items\r\n",
        b"stats slabs\r\n",
        b"stats detail on\r\n",
        b"stats queues\r\n",
    ] {
        c.call(line, ERROR);
    }
}

/// `version` answers `VERSION 0.2.1`.
#[test]
fn version_is_0_2_1() {
    let (_home, server) = start(&[]);
    server.client().call(b"version\r\n", b"VERSION 0.2.1\r\n");
}

/// `verbosity <n>` answers `OK`.
#[test]
fn verbosity_is_ok() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"verbosity 1\r\n", b"OK\r\n");
    c.call(b"verbosity 0\r\n", b"OK\r\n");
}

/// `quit` closes the connection without a reply; commands after it in the
/// same write are not answered, and the server keeps serving others.
#[test]
fn quit_closes_without_reply() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.send(b"quit\r\nversion\r\n");
    c.expect_closed();
    server.client().call(b"version\r\n", VERSION);
}

/// `db_checkpoint` and `db_archive` answer `OK`.
#[test]
fn db_checkpoint_and_db_archive_are_ok() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set q 0 0 1\r\nx\r\n", STORED);
    c.call(b"db_checkpoint\r\n", b"OK\r\n");
    c.call(b"db_archive\r\n", b"OK\r\n");
    c.call(b"get q\r\n", b"VALUE q 0 1\r\nx\r\nEND\r\n");
}

/// Commands MemcacheQ does not have (incr, decr, flush_all, upper-case
/// GET) answer `ERROR`. (The storage commands it does not have also read
/// their data block: see tests/compat.rs.)
#[test]
fn unknown_commands_are_error() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    for line in [
        &b"incr q 1\r\n"[..],
        b"decr q 1\r\n",
        b"flush_all\r\n",
        b"GET q\r\n",
        b"hello\r\n",
    ] {
        c.call(line, ERROR);
    }
    c.call(b"version\r\n", VERSION);
}

/// A line that is only `\r\n`, or only `\n`, is answered `ERROR`.
#[test]
fn empty_lines_are_error() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"\r\n", ERROR);
    c.call(b"\n", ERROR);
    c.call(b"\r\n\n", b"ERROR\r\nERROR\r\n");
    c.call(b"version\n", VERSION);
}

/// Only the space separates tokens: a tab stays inside its token.
#[test]
fn tab_is_part_of_a_token() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"version\t\r\n", ERROR);
    c.call(b"get\tq\r\n", ERROR);
    // "0\t1" is one token, so this set has three arguments.
    c.call(b"set q 0 0\t1\r\n", ERROR);
    c.call(b"version\r\n", VERSION);
}

/// A NUL byte ends the command line where it stands; the rest of the line
/// up to `\n` is ignored.
#[test]
fn nul_ends_the_command_line() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"version\0 garbage here\r\n", VERSION);
    c.call(b"set q 0 0 1\0 junk\r\nx\r\n", STORED);
    c.call(b"set r 0 0 1\r\ny\r\n", STORED);
    c.call(b"get q\0 r\r\n", b"VALUE q 0 1\r\nx\r\nEND\r\n");
    c.call(b"get r\r\n", b"VALUE r 0 1\r\ny\r\nEND\r\n");
}

/// Several spaces between tokens, and leading or trailing spaces, are
/// skipped.
#[test]
fn multiple_spaces_are_skipped() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set   q  7    0  2  \r\nhi\r\n", STORED);
    c.call(b"  get    q   \r\n", b"VALUE q 7 2\r\nhi\r\nEND\r\n");
    c.call(b"stats   queue\r\n", b"STAT q 1/1\r\nEND\r\n");
}

/// A data block not ending in `\r\n` gets `CLIENT_ERROR bad data chunk`;
/// the whole block is consumed and parsing resumes right after it.
#[test]
fn bad_data_chunk_consumes_the_block() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    // Block is the 5 bytes "abcde"; "version\r\n" follows it.
    c.call(
        b"set q 0 0 3\r\nabcdeversion\r\n",
        b"CLIENT_ERROR bad data chunk\r\nVERSION 0.2.1\r\n",
    );
    c.call(
        b"set q 0 0 1\r\nxy\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    c.call(b"get q\r\n", END);
    c.call(b"set q 0 0 1\r\nz\r\n", STORED);
    c.call(b"get q\r\n", b"VALUE q 0 1\r\nz\r\nEND\r\n");
}

/// Many commands in one write are all answered, in order.
#[test]
fn pipelined_commands_in_one_write() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..200u32 {
        let body = format!("message-{i}");
        req.extend(set_cmd(b"p", i, body.as_bytes()));
        want.extend_from_slice(STORED);
    }
    for i in 0..200u32 {
        req.extend_from_slice(b"get p\r\n");
        want.extend(value_reply(
            b"p",
            &i.to_string(),
            format!("message-{i}").as_bytes(),
        ));
        want.extend_from_slice(END);
    }
    req.extend_from_slice(b"get p\r\nversion\r\n");
    want.extend_from_slice(b"END\r\nVERSION 0.2.1\r\n");
    c.call(&req, &want);
}

/// Commands sent one byte per write (so `\r` and `\n`, and a data block,
/// are split across reads) are answered exactly as in one write.
#[test]
fn partial_writes_byte_by_byte() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let req = b"set q 5 0 5\r\nhe\r\no\r\nget q\r\nversion\r\n";
    for byte in req {
        c.send(&[*byte]);
        thread::sleep(Duration::from_millis(2));
    }
    c.expect(b"STORED\r\nVALUE q 5 5\r\nhe\r\no\r\nEND\r\nVERSION 0.2.1\r\n");
}
