//! Defects a review of the reliable-reads layer found (issues 19 and 20),
//! each shown from outside: a stopping server answers what it owes (a
//! request waiting in `get <q>/t=<ms>` gets `END`, taking nothing, before
//! its connection closes), and a delivery count never lives in memory only.

mod common;

use common::*;
use std::thread;
use std::time::{Duration, Instant};

/// Waits until `dump_stats` shows `n` waiters on queue `w`.
fn await_waiters(c: &mut Client, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = format!("waiters={n}");
    loop {
        c.send(b"dump_stats\r\n");
        let reply = String::from_utf8(c.read_until(END)).expect("utf-8");
        if reply.contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "no {want} in {reply}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_answers_every_waiting_request_with_end() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut control = server.client();
    control.set("w", 0, b"x");
    control.call(
        b"get w\r\n",
        &[&value_reply(b"w", "0", b"x")[..], END].concat(),
    );
    let mut waiting: Vec<Client> = (0..3).map(|_| server.client()).collect();
    for (i, c) in waiting.iter_mut().enumerate() {
        let key = if i == 0 {
            "w/t=30000/open"
        } else {
            "w/t=30000"
        };
        c.send(format!("get {key}\r\n").as_bytes());
    }
    await_waiters(&mut control, 3);
    let started = Instant::now();
    server.stop();
    for c in &mut waiting {
        c.expect(END);
        c.expect_closed();
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let server = home.start(&[]);
    let mut c = server.client();
    c.call(b"stats queue\r\n", b"STAT w 1/1\r\nEND\r\n");
}

/// Issue 20: a delivery count that cannot reach the disk fails the `/open`
/// (nothing handed out) instead of living in memory only.
#[test]
fn an_open_whose_delivery_count_cannot_be_kept_hands_out_nothing() {
    let home = Home::new();
    let server = home.start(&["--max-deliveries", "3"]);
    // Something that is not a database where queue.deliveries would go.
    std::fs::create_dir(home.path.join("queue.deliveries")).expect("mkdir");
    let mut c = server.client();
    c.set("q", 0, b"m1");
    c.call(b"get q/open\r\n", b"SERVER_ERROR storage failure\r\n");
    c.call(
        b"get q\r\n",
        &[&value_reply(b"q", "0", b"m1")[..], END].concat(),
    );
    c.call(b"stats queue\r\n", b"STAT q 1/1\r\nEND\r\n");
}

/// Issue 20: one `get` naming a queue 30,000 times, from a client that
/// never reads, makes the server hold a bounded slice of the ~27 MB reply
/// (served a slice at a time as the client reads), and once the client
/// reads, every message arrives, in order, with one `END`.
#[test]
fn a_get_of_many_keys_for_a_client_that_never_reads_holds_bounded_memory() {
    const MESSAGES: usize = 30_000;
    /// Anonymous memory the server may gain meanwhile: the 1 MiB output
    /// reservation, one slice, the parsed key list, and slack.
    const ALLOWED_GROWTH_KB: u64 = 8 * 1024;
    let (_home, server) = start(&["-N"]);
    let mut c = server.client();
    let body = |i: usize| format!("{i:0>900}").into_bytes();
    let mut sets = Vec::new();
    for i in 0..MESSAGES {
        sets.extend_from_slice(b"set q 0 0 900 noreply\r\n");
        sets.extend_from_slice(&body(i));
        sets.extend_from_slice(b"\r\n");
    }
    sets.extend_from_slice(b"version\r\n");
    c.send(&sets);
    c.read_until(b"\r\n");
    let before = anonymous_kb(server.pid());

    let mut reader = server.client();
    let mut get = b"get".to_vec();
    for _ in 0..MESSAGES {
        get.extend_from_slice(b" q");
    }
    get.extend_from_slice(b"\r\n");
    reader.send(&get);
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        peak = peak.max(anonymous_kb(server.pid()));
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        peak <= before + ALLOWED_GROWTH_KB,
        "RssAnon grew from {before} kB to {peak} kB for a client that does not read"
    );

    for i in 0..MESSAGES {
        reader.expect(&value_reply(b"q", "0", &body(i)));
    }
    reader.expect(END);
    c.call(b"stats queue\r\n", b"STAT q 30000/30000\r\nEND\r\n");
    eprintln!("never-reading client: RssAnon {before} kB before, peak {peak} kB");
}

/// Issue 20: a long `get` (served in slices) followed by `quit`-less FIN,
/// as `nc -N` sends it: every value comes back, in order, then `END`, the
/// command sent after it is answered too, and the server closes.
#[test]
fn a_sliced_get_then_a_half_close_is_answered_in_full() {
    const MESSAGES: usize = 1_000;
    let (_home, server) = start(&["-N"]);
    let mut c = server.client();
    let mut sets = Vec::new();
    for i in 0..MESSAGES {
        sets.extend(set_cmd(b"hq", 0, format!("m{i}").as_bytes()));
    }
    c.send(&sets);
    for _ in 0..MESSAGES {
        c.expect(STORED);
    }
    let mut get = b"get".to_vec();
    for _ in 0..MESSAGES + 5 {
        get.extend_from_slice(b" hq");
    }
    get.extend_from_slice(b"\r\nversion\r\n");
    c.send(&get);
    c.shutdown_write();
    for i in 0..MESSAGES {
        c.expect(&value_reply(b"hq", "0", format!("m{i}").as_bytes()));
    }
    c.expect(END);
    c.expect(b"VERSION 0.2.1\r\n");
    c.expect_closed();
}
