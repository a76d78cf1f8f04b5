//! Reliable reads sent the way pipelining clients and proxies send them:
//! several commands of one connection in one write, so they land in the
//! same turn (issue 14). Each sequence must answer, and leave the queue,
//! exactly as the same commands sent one at a time.

mod common;

use common::*;
use std::time::{Duration, Instant};

const CLOSE_FIRST: &[u8] = b"CLIENT_ERROR close current item first\r\n";

/// `VALUE` and `END` for one message `body` handed out under `key`.
fn got(key: &str, body: &str) -> Vec<u8> {
    let mut out = value_reply(key.as_bytes(), "0", body.as_bytes());
    out.extend_from_slice(END);
    out
}

/// Stores `bodies` in `queue`, in order.
fn fill(c: &mut Client, queue: &str, bodies: &[&str]) {
    for body in bodies {
        c.set(queue, 0, body.as_bytes());
    }
}

/// Sends `request` in one write and reads exactly `want.len()` bytes.
#[track_caller]
fn exchange(c: &mut Client, request: &[u8], want: &[u8]) {
    c.send(request);
    let have = c.read_n(want.len());
    assert_eq!(show(&have), show(want), "reply to {}", show(request));
}

/// `open_transactions` of `queue` in `dump_stats`, once the server has
/// seen every connection but `c` close (a close is noticed on its own
/// turn, so this waits for it a little).
#[track_caller]
fn open_leases_settle(c: &mut Client, queue: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let have = open_leases(c, queue);
        if have == want || Instant::now() > deadline {
            assert_eq!(have, want, "open_transactions of {queue}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open_leases(c: &mut Client, queue: &str) -> u64 {
    c.send(b"dump_stats\r\n");
    let reply = String::from_utf8(c.read_until(END)).expect("utf-8 dump_stats");
    let block = reply
        .split("queue '")
        .find(|b| b.starts_with(&format!("{queue}'")))
        .unwrap_or_else(|| panic!("no block for {queue} in {reply}"));
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix("open_transactions="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no open_transactions in {block}"))
}

#[test]
fn an_abort_in_the_same_write_as_its_open_gives_the_message_back() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2"]);
    let mut want = got("q/open", "m1");
    want.extend_from_slice(END);
    exchange(&mut c, b"get q/open\r\nget q/abort\r\n", &want);
    // m1 is free again: another connection takes it first.
    let mut other = server.client();
    other.call(b"get q\r\n", &got("q", "m1"));
    // And this connection holds nothing.
    c.call(b"get q/open\r\n", &got("q/open", "m2"));
    c.call(b"get q/close\r\n", END);
    c.call(b"stats queue\r\n", b"STAT q 2/2\r\nEND\r\n");
}

#[test]
fn a_message_given_back_in_a_write_is_opened_again_not_deleted() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2"]);
    let mut want = got("q/open", "m1");
    want.extend_from_slice(END);
    want.extend_from_slice(&got("q/close/open", "m1"));
    exchange(
        &mut c,
        b"get q/open\r\nget q/abort\r\nget q/close/open\r\n",
        &want,
    );
    c.call(b"stats queue\r\n", b"STAT q 2/0\r\nEND\r\n");
    drop(c);
    let mut other = server.client();
    open_leases_settle(&mut other, "q", 0);
    other.call(b"get q\r\n", &got("q", "m1"));
    other.call(b"get q\r\n", &got("q", "m2"));
    other.call(b"stats queue\r\n", b"STAT q 2/2\r\nEND\r\n");
}

#[test]
fn a_lease_closed_in_the_same_write_does_not_outlive_its_connection() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    fill(&mut c, "p", &["p1", "p2"]);
    let mut want = got("p/open", "p1");
    want.extend_from_slice(&got("p/close/open", "p2"));
    exchange(&mut c, b"get p/open\r\nget p/close/open\r\n", &want);
    c.call(b"stats queue\r\n", b"STAT p 2/1\r\nEND\r\n");
    drop(c);
    let mut other = server.client();
    open_leases_settle(&mut other, "p", 0);
    other.call(b"get p\r\n", &got("p", "p2"));
    other.call(b"get p\r\n", END);
}

#[test]
fn each_close_in_one_write_deletes_its_own_message() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    fill(&mut c, "l", &["l1", "l2", "l3", "l4", "l5"]);
    let mut want = got("l/close/open", "l1");
    want.extend_from_slice(&got("l/close/open", "l2"));
    want.extend_from_slice(&got("l/close/open", "l3"));
    want.extend_from_slice(END);
    exchange(
        &mut c,
        b"get l/close/open\r\nget l/close/open\r\nget l/close/open\r\nget l/close\r\n",
        &want,
    );
    c.call(b"stats queue\r\n", b"STAT l 5/3\r\nEND\r\n");
    drop(c);
    let mut other = server.client();
    open_leases_settle(&mut other, "l", 0);
    other.call(b"get l\r\n", &got("l", "l4"));
    other.call(b"get l\r\n", &got("l", "l5"));
    other.call(b"get l\r\n", END);
    other.call(b"stats queue\r\n", b"STAT l 5/5\r\nEND\r\n");
}

#[test]
fn an_open_twice_in_one_write_is_refused_the_second_time() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    fill(&mut c, "d", &["d1", "d2"]);
    let mut want = got("d/open", "d1");
    want.extend_from_slice(CLOSE_FIRST);
    want.extend_from_slice(END);
    want.extend_from_slice(&got("d/open", "d2"));
    exchange(
        &mut c,
        b"get d/open\r\nget d/open\r\nget d/close\r\nget d/open\r\n",
        &want,
    );
    c.call(b"stats queue\r\n", b"STAT d 2/1\r\nEND\r\n");
}

#[test]
fn a_message_due_for_its_dead_letter_queue_moves_in_the_same_write() {
    let (_home, server) = start(&["--max-deliveries", "1"]);
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2"]);
    let mut want = got("q/open", "m1");
    want.extend_from_slice(END);
    want.extend_from_slice(&got("q", "m2"));
    // Opened once and given back, m1 has used its one delivery: the plain
    // get moves it to q.dead and takes m2, as one command per write would.
    exchange(&mut c, b"get q/open\r\nget q/abort\r\nget q\r\n", &want);
    c.call(
        b"stats queue\r\n",
        b"STAT q 2/2\r\nSTAT q.dead 1/0\r\nEND\r\n",
    );
    c.call(b"get q.dead\r\n", &got("q.dead", "m1"));
}
