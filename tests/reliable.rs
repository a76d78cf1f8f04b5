//! Reliable and blocking reads against the real binary (issue 10,
//! docs/PROTOCOL.md "Reliable and blocking reads", "dump_stats", "flush"):
//! `get <q>/open`, `/close`, `/abort`, `/peek`, `/t=<ms>`, the lease
//! timeout, the dead-letter move, `dump_stats` and `flush`, what survives
//! a crash, and what the data directory holds. Every reply that does not
//! depend on timing is compared byte for byte.

mod common;

use common::*;
use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

const CLOSE_FIRST: &[u8] = b"CLIENT_ERROR close current item first\r\n";
const CONFLICT: &[u8] = b"CLIENT_ERROR conflicting options\r\n";
/// The default record length (-B): what one waiting message occupies.
const RECORD: u64 = 1024;

/// The exact reply to a `get` that hands out one message under `key`.
fn got(key: &str, flags: &str, body: &str) -> Vec<u8> {
    let mut out = value_reply(key.as_bytes(), flags, body.as_bytes());
    out.extend_from_slice(END);
    out
}

/// `get <key>\r\n`.
fn get_cmd(key: &str) -> Vec<u8> {
    format!("get {key}\r\n").into_bytes()
}

/// The raw reply to `stats queue`.
fn stats_queue(c: &mut Client) -> String {
    c.send(b"stats queue\r\n");
    show(&c.read_until(END))
}

/// The exact `stats queue` reply for `(queue, set, get)` in that order.
fn queue_reply(rows: &[(&str, u64, u64)]) -> String {
    let mut out = String::new();
    for (q, set, get) in rows {
        out.push_str(&format!("STAT {q} {set}/{get}\r\n"));
    }
    out.push_str("END\r\n");
    show(out.as_bytes())
}

/// The raw `dump_stats` reply with each `age=<digits>` line's number
/// replaced by `N` (the rest is compared exactly); panics if an age is not
/// a decimal number.
#[track_caller]
fn dump_stats(c: &mut Client) -> String {
    c.send(b"dump_stats\r\n");
    let mut raw = Vec::new();
    loop {
        let line = c.read_line();
        let done = line == b"END";
        raw.push(line);
        if done {
            break;
        }
    }
    let mut out = String::new();
    for line in raw {
        let text = String::from_utf8(line).expect("ascii dump_stats");
        match text.strip_prefix("  age=") {
            Some(n) => {
                assert!(
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
                    "age is not a number: {text:?}"
                );
                out.push_str("  age=N\r\n");
            }
            None => {
                out.push_str(&text);
                out.push_str("\r\n");
            }
        }
    }
    out
}

/// What `dump_stats` reports of one queue.
#[derive(Clone, Copy)]
struct Dump<'a> {
    name: &'a str,
    items: u64,
    total: u64,
    open: u64,
    waiters: u64,
    redelivered: u64,
    dead: u64,
}

impl<'a> Dump<'a> {
    fn of(name: &'a str, items: u64, total: u64, open: u64) -> Dump<'a> {
        Dump {
            name,
            items,
            total,
            open,
            waiters: 0,
            redelivered: 0,
            dead: 0,
        }
    }
}

/// The `dump_stats` reply (ages as `N`) for `queues`, in that order.
fn dump_reply(queues: &[Dump<'_>]) -> String {
    let mut out = String::new();
    for d in queues {
        out.push_str(&format!(
            "queue '{}' {{\r\n  items={}\r\n  bytes={}\r\n  total_items={}\r\n  \
             open_transactions={}\r\n  waiters={}\r\n  age=N\r\n  redelivered={}\r\n  \
             dead_lettered={}\r\n}}\r\n",
            d.name,
            d.items,
            d.items * RECORD,
            d.total,
            d.open,
            d.waiters,
            d.redelivered,
            d.dead
        ));
    }
    out.push_str("END\r\n");
    out
}

/// The `dump_stats` block of `queue` alone (ages as `N`).
#[track_caller]
fn dump_of(c: &mut Client, queue: &str) -> String {
    let all = dump_stats(c);
    let head = format!("queue '{queue}' {{\r\n");
    let start = all
        .find(&head)
        .unwrap_or_else(|| panic!("no {queue} in dump_stats:\n{all}"));
    let end = start + all[start..].find("}\r\n").expect("block end") + 3;
    all[start..end].to_string()
}

/// One queue's block as [`dump_reply`] writes it.
fn dump_block(d: Dump<'_>) -> String {
    dump_reply(&[d]).trim_end_matches("END\r\n").to_string()
}

/// Polls `check` every 20 ms until it holds; panics after `limit`.
#[track_caller]
fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `dump_stats` shows `n` requests waiting on `queue`.
#[track_caller]
fn wait_for_waiters(c: &mut Client, queue: &str, n: u64) {
    let want = format!("  waiters={n}\r\n");
    wait_until(&format!("{n} waiters on {queue}"), REPLY_TIMEOUT, || {
        dump_of(c, queue).contains(&want)
    });
}

/// Waits until `dump_stats` shows `n` open messages on `queue`.
#[track_caller]
fn wait_for_open(c: &mut Client, queue: &str, n: u64) {
    let want = format!("  open_transactions={n}\r\n");
    wait_until(&format!("{n} open on {queue}"), REPLY_TIMEOUT, || {
        dump_of(c, queue).contains(&want)
    });
}

/// Sends `get <key>`: whether it handed out a message (`m1`, flags 0).
#[track_caller]
fn hands_out(c: &mut Client, key: &str) -> bool {
    c.send(&get_cmd(key));
    let line = c.read_line();
    if line == b"END" {
        return false;
    }
    let mut rest = line;
    rest.extend_from_slice(b"\r\n");
    rest.extend(c.read_n(b"m1\r\nEND\r\n".len()));
    assert_eq!(show(&rest), show(&got(key, "0", "m1")));
    true
}

/// Reads one whole reply to a `get`: its `VALUE` blocks through `END`, or
/// a single error line (so a wrong reply fails at once instead of waiting
/// for bytes that never come).
#[track_caller]
fn read_get_reply(c: &mut Client) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = c.read_line();
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
        if !line.starts_with(b"VALUE ") {
            return out;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let len: usize = text
            .split(' ')
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad VALUE line {text:?}"));
        out.extend(c.read_n(len + 2));
    }
}

/// Asserts the next reply, a whole `get` reply, is exactly `want`.
#[track_caller]
fn expect_get(c: &mut Client, want: &[u8]) {
    assert_eq!(show(&read_get_reply(c)), show(want), "unexpected get reply");
}

/// Stores `bodies` in `queue` with flags 0.
fn fill(c: &mut Client, queue: &str, bodies: &[&str]) {
    for body in bodies {
        c.set(queue, 0, body.as_bytes());
    }
}

/// The bodies `get` takes from `queue` until `END`.
fn drain_bodies(c: &mut Client, queue: &str) -> Vec<String> {
    c.drain(queue)
        .into_iter()
        .map(|m| String::from_utf8(m.body).expect("utf-8 body"))
        .collect()
}

// ---------------------------------------------------------------------------
// /open, /close, /abort, /peek
// ---------------------------------------------------------------------------

/// `get q/open` hands out the oldest message and leases it: it stays in
/// the queue (`stats queue` unchanged) but nobody else gets it. A second
/// `/open` on the same queue before `/close` answers `CLIENT_ERROR close
/// current item first` and changes nothing, also pipelined in the same
/// turn and also when it comes after another key of the same line (whose
/// message is not taken either). Another queue can be opened meanwhile.
#[test]
fn open_leases_the_oldest_and_a_second_open_is_refused() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    fill(&mut a, "q", &["m1", "m2", "m3"]);
    a.set("other", 4, b"x");

    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    let stats = queue_reply(&[("other", 1, 0), ("q", 3, 0)]);
    assert_eq!(stats_queue(&mut a), stats);

    a.call(b"get q/open\r\n", CLOSE_FIRST);
    a.call(b"gets q/open\r\n", CLOSE_FIRST);
    a.call(b"get other q/open\r\n", CLOSE_FIRST);
    assert_eq!(
        stats_queue(&mut a),
        stats,
        "a refused /open changed nothing"
    );
    assert_eq!(
        dump_of(&mut a, "q"),
        dump_block(Dump::of("q", 2, 3, 1)),
        "m1 is still open"
    );
    // m1 is still A's: B is handed m2, a peek shows m3.
    b.call(b"get q/open\r\n", &got("q/open", "0", "m2"));
    b.call(b"get q/peek\r\n", &got("q/peek", "0", "m3"));
    b.call(b"get q/open\r\n", CLOSE_FIRST);

    // One queue each: A can open `other` while it holds m1 of q.
    a.call(b"get other/open\r\n", &got("other/open", "4", "x"));
    // A /close acknowledges m1 only.
    a.call(b"get q/close\r\n", END);
    assert_eq!(
        stats_queue(&mut a),
        queue_reply(&[("other", 1, 0), ("q", 3, 1)])
    );
    a.call(b"get q/open\r\n", &got("q/open", "0", "m3"));

    // Two opens pipelined in one write: the second is refused.
    let mut c = server.client();
    c.set("p", 0, b"p1");
    c.set("p", 0, b"p2");
    let mut want = got("p/open", "0", "p1");
    want.extend_from_slice(CLOSE_FIRST);
    c.call(b"get p/open\r\nget p/open\r\n", &want);
    // Two opens of one queue on one line: the whole line is refused and
    // nothing is opened.
    let mut d = server.client();
    d.call(b"get p/open p/open\r\n", CLOSE_FIRST);
    assert_eq!(
        dump_of(&mut d, "p"),
        dump_block(Dump::of("p", 1, 2, 1)),
        "the refused line opened nothing"
    );
    d.call(b"get p/open\r\n", &got("p/open", "0", "p2"));
}

/// `get q/close` deletes the open message and answers `END`; with nothing
/// open it answers `END` and deletes nothing. `get q/close/open`
/// acknowledges and opens the next one in one round trip.
#[test]
fn close_deletes_and_close_open_moves_on() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"get q/close\r\n", END);
    fill(&mut c, "q", &["m1", "m2", "m3", "m4"]);
    c.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 4, 0)]));

    c.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    c.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 4, 1)]));
    c.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 4, 1)]));

    // Nothing open: /close/open just opens.
    c.call(b"get q/close/open\r\n", &got("q/close/open", "0", "m2"));
    c.call(b"get q/close/open\r\n", &got("q/close/open", "0", "m3"));
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 4, 2)]));
    // The same options in the other order.
    c.call(b"get q/open/close\r\n", &got("q/open/close", "0", "m4"));
    c.call(b"get q/close/open\r\n", END);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 4, 4)]));
    assert_eq!(dump_stats(&mut c), dump_reply(&[Dump::of("q", 0, 4, 0)]));
    c.call(b"get q\r\n", END);
}

/// `get q/abort` answers `END` and gives the message back: it is the next
/// one delivered on the queue, before older-numbered free ones and while
/// other messages are open. With nothing open `/abort` is a plain `END`.
#[test]
fn abort_gives_the_message_back_first() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    a.call(b"get q/abort\r\n", END);
    fill(&mut a, "q", &["m1", "m2", "m3"]);

    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    b.call(b"get q/open\r\n", &got("q/open", "0", "m2"));
    a.call(b"get q/abort\r\n", END);
    assert_eq!(stats_queue(&mut a), queue_reply(&[("q", 3, 0)]));
    // A may open again right away, and gets m1 back.
    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    a.call(b"get q/abort\r\n", END);
    a.call(b"get q/abort\r\n", END);
    // A plain get takes m1 (m2 is still B's).
    let mut c = server.client();
    c.call(b"get q\r\n", &got("q", "0", "m1"));
    b.call(b"get q/abort\r\n", END);
    c.call(b"get q\r\n", &got("q", "0", "m2"));
    c.call(b"get q\r\n", &got("q", "0", "m3"));
    c.call(b"get q\r\n", END);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 3, 3)]));
}

/// Two consumers: A holds m1, B's plain `get` gets m2. When A vanishes
/// (its connection closed with a FIN, or reset with SO_LINGER 0) its
/// message is given back: the next gets return m1, then m3.
#[test]
fn a_vanished_consumer_gives_its_message_back() {
    for abrupt in [false, true] {
        let (_home, server) = start(&[]);
        let mut a = server.client();
        let mut b = server.client();
        fill(&mut b, "q", &["m1", "m2", "m3"]);
        a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
        b.call(b"get q\r\n", &got("q", "0", "m2"));
        if abrupt {
            set_linger_zero(&a.stream);
        }
        drop(a);
        wait_for_open(&mut b, "q", 0);
        b.call(b"get q\r\n", &got("q", "0", "m1"));
        b.call(b"get q\r\n", &got("q", "0", "m3"));
        b.call(b"get q\r\n", END);
        assert_eq!(
            stats_queue(&mut b),
            queue_reply(&[("q", 3, 3)]),
            "abrupt: {abrupt}"
        );
    }
}

/// `--lease-timeout 1`: an open message not closed in time is given back.
/// The late `/close` of its former holder answers `END` and deletes
/// nothing, whether the message is free again or held by a new holder.
#[test]
fn lease_timeout_gives_the_message_back() {
    let (_home, server) = start(&["--lease-timeout", "1"]);
    let mut a = server.client();
    let mut b = server.client();
    fill(&mut b, "q", &["m1"]);
    let opened = Instant::now();
    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    b.call(b"get q\r\n", END);
    // Free again after about a second, not before.
    wait_until("the lease runs out", Duration::from_secs(5), || {
        hands_out(&mut b, "q/peek")
    });
    let free_after = opened.elapsed();
    assert!(
        free_after >= Duration::from_millis(900),
        "given back after {free_after:?}, before the 1 s lease"
    );
    // The late /close deletes nothing: the message is still there.
    a.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut a), queue_reply(&[("q", 1, 0)]));
    assert_eq!(
        dump_of(&mut a, "q"),
        dump_block(Dump::of("q", 1, 1, 0)),
        "m1 is free"
    );

    // A opens it again (a redelivery), the lease runs out, B opens it;
    // A's late /close leaves it with B.
    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    wait_until("the second lease runs out", Duration::from_secs(5), || {
        hands_out(&mut b, "q/open")
    });
    a.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut a), queue_reply(&[("q", 1, 0)]));
    assert_eq!(
        dump_of(&mut a, "q"),
        dump_block(Dump {
            redelivered: 2,
            ..Dump::of("q", 0, 1, 1)
        }),
        "m1 is B's"
    );
    a.call(b"get q\r\n", END);
    b.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 1, 1)]));
}

/// `--max-deliveries 2`: a message opened twice without being closed is
/// moved, the next time it would be handed out (by `/open` or a plain
/// `get`), to `<q>.dead`, flags and body intact; `get q.dead` reads it
/// with `VALUE q.dead`. `stats queue` counts the move as a get of q and a
/// set of q.dead; `dump_stats` counts it in `dead_lettered`.
#[test]
fn max_deliveries_moves_a_message_to_the_dead_letter_queue() {
    let (_home, server) = start(&["--max-deliveries", "2"]);
    let mut c = server.client();
    c.set("q", 5, b"m1");
    c.set("q", 6, b"m2");
    c.set("q", 7, b"m3");
    for _ in 0..2 {
        c.call(b"get q/open\r\n", &got("q/open", "5", "m1"));
        c.call(b"get q/abort\r\n", END);
    }
    // The third hand-out moves m1 and hands out m2 instead.
    c.call(b"get q/open\r\n", &got("q/open", "6", "m2"));
    assert_eq!(
        stats_queue(&mut c),
        queue_reply(&[("q", 3, 1), ("q.dead", 1, 0)])
    );
    assert_eq!(
        dump_stats(&mut c),
        dump_reply(&[
            Dump {
                redelivered: 1,
                dead: 1,
                ..Dump::of("q", 1, 3, 1)
            },
            Dump::of("q.dead", 1, 1, 0),
        ])
    );
    c.call(b"get q.dead\r\n", &got("q.dead", "5", "m1"));
    c.call(b"get q.dead\r\n", END);

    // m2 again: a plain get moves it too once it was opened twice.
    c.call(b"get q/abort\r\n", END);
    c.call(b"get q/open\r\n", &got("q/open", "6", "m2"));
    c.call(b"get q/abort\r\n", END);
    c.call(b"get q\r\n", &got("q", "7", "m3"));
    c.call(b"get q\r\n", END);
    assert_eq!(
        stats_queue(&mut c),
        queue_reply(&[("q", 3, 3), ("q.dead", 2, 1)])
    );
    c.call(
        b"gets q.dead/peek\r\n",
        b"VALUE q.dead/peek 6 2 2\r\nm2\r\nEND\r\n",
    );
    c.call(b"get q.dead/open\r\n", &got("q.dead/open", "6", "m2"));
    c.call(b"get q.dead/close\r\n", END);
    assert_eq!(
        dump_stats(&mut c),
        dump_reply(&[
            Dump {
                redelivered: 2,
                dead: 2,
                ..Dump::of("q", 0, 3, 0)
            },
            Dump::of("q.dead", 0, 2, 0),
        ])
    );
}

/// Delivery counts survive a graceful restart: opened once, restart
/// (SIGTERM), opened again (count 2, a redelivery), then the next open
/// moves it to `q.dead`.
#[test]
fn delivery_counts_survive_a_restart() {
    let home = Home::new();
    let server = home.start(&["--max-deliveries", "2"]);
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2"]);
    c.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    drop(c);
    server.stop();

    let server = home.start(&["--max-deliveries", "2"]);
    let mut c = server.client();
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 2, 0)]));
    c.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    assert_eq!(
        dump_of(&mut c, "q"),
        dump_block(Dump {
            redelivered: 1,
            ..Dump::of("q", 1, 2, 1)
        }),
        "the second open is a redelivery"
    );
    c.call(b"get q/abort\r\n", END);
    c.call(b"get q/open\r\n", &got("q/open", "0", "m2"));
    c.call(b"get q/close\r\n", END);
    c.call(b"get q.dead\r\n", &got("q.dead", "0", "m1"));
    assert_eq!(
        stats_queue(&mut c),
        queue_reply(&[("q", 2, 2), ("q.dead", 1, 1)])
    );
}

/// `get q/peek` returns the oldest message nobody holds, neither taking
/// nor leasing it; a plain get afterwards returns it.
#[test]
fn peek_shows_the_oldest_free_message() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut c = server.client();
    c.call(b"get q/peek\r\n", END);
    fill(&mut c, "q", &["m1", "m2", "m3"]);
    c.call(b"get q/peek\r\n", &got("q/peek", "0", "m1"));
    c.call(b"get q/peek\r\n", &got("q/peek", "0", "m1"));
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 3, 0)]));
    assert_eq!(dump_stats(&mut c), dump_reply(&[Dump::of("q", 3, 3, 0)]));
    // A peek does not lease: the same connection may open right after.
    c.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    a.call(b"get q/peek\r\n", &got("q/peek", "0", "m2"));
    a.call(b"get q/open\r\n", &got("q/open", "0", "m2"));
    a.call(b"get q/peek\r\n", &got("q/peek", "0", "m3"));
    let mut b = server.client();
    b.call(b"get q\r\n", &got("q", "0", "m3"));
    b.call(b"get q/peek\r\n", END);
    c.call(b"get q/close\r\n", END);
    a.call(b"get q/abort\r\n", END);
    b.call(b"get q/peek\r\n", &got("q/peek", "0", "m2"));
    b.call(b"get q\r\n", &got("q", "0", "m2"));
    b.call(b"get q/peek\r\n", END);
    assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 3, 3)]));
}

/// A plain `get` never returns an open message, and `stats queue` keeps
/// its exact format with `<set> - <get>` = messages held, open ones
/// included: a message counts as taken when it leaves the queue (plain
/// get, /close, flush, dead-letter move), not when it is opened.
#[test]
fn plain_gets_skip_open_messages_and_counts_stay_true() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2", "m3", "m4", "m5", "m6"]);
    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    b.call(b"get q/open\r\n", &got("q/open", "0", "m2"));
    assert_eq!(stats_queue(&mut c), "STAT q 6/0\\r\\nEND\\r\\n");
    c.call(b"get q\r\n", &got("q", "0", "m3"));
    let mut two = value_reply(b"q", "0", b"m4");
    two.extend(value_reply(b"q", "0", b"m5"));
    two.extend_from_slice(END);
    c.call(b"get q q\r\n", &two);
    c.call(b"gets q\r\n", b"VALUE q 0 2 6\r\nm6\r\nEND\r\n");
    c.call(b"get q\r\n", END);
    c.call(b"get q q q\r\n", END);
    // Held: m1 and m2, both open.
    assert_eq!(stats_queue(&mut c), "STAT q 6/4\\r\\nEND\\r\\n");
    assert_eq!(dump_stats(&mut c), dump_reply(&[Dump::of("q", 0, 6, 2)]));
    a.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut c), "STAT q 6/5\\r\\nEND\\r\\n");
    b.call(b"get q/abort\r\n", END);
    assert_eq!(stats_queue(&mut c), "STAT q 6/5\\r\\nEND\\r\\n");
    c.call(b"get q\r\n", &got("q", "0", "m2"));
    assert_eq!(stats_queue(&mut c), "STAT q 6/6\\r\\nEND\\r\\n");
    c.set("q", 0, b"m7");
    c.set("q", 0, b"m8");
    a.call(b"get q/open\r\n", &got("q/open", "0", "m7"));
    c.call(b"flush q\r\n", END);
    assert_eq!(stats_queue(&mut c), "STAT q 8/8\\r\\nEND\\r\\n");
    // The dead-letter move counts as a get of q (and a set of q.dead):
    // see max_deliveries_moves_a_message_to_the_dead_letter_queue.
}

// ---------------------------------------------------------------------------
// /t=<ms>
// ---------------------------------------------------------------------------

/// `get q/t=<ms>` on an empty queue (existing or not) waits about `<ms>`
/// and answers `END`, taking nothing and creating nothing.
#[test]
fn a_wait_on_an_empty_queue_times_out_with_end() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.set("q", 0, b"x");
    c.call(b"get q\r\n", &got("q", "0", "x"));
    for key in ["q/t=300", "missing/t=300", "q/t=300/open"] {
        let begun = Instant::now();
        c.call(&get_cmd(key), END);
        let waited = begun.elapsed();
        assert!(
            waited >= Duration::from_millis(240) && waited < Duration::from_secs(3),
            "{key} answered after {waited:?}"
        );
    }
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 1, 1)]));
    assert_eq!(dump_stats(&mut c), dump_reply(&[Dump::of("q", 0, 1, 0)]));
}

/// A set from another client while a request waits wakes it at once with
/// the message, under the key as asked for (`VALUE q/t=5000`).
#[test]
fn a_set_wakes_a_waiting_get() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    b.set("q", 0, b"x");
    b.call(b"get q\r\n", &got("q", "0", "x"));
    let begun = Instant::now();
    a.send(b"get q/t=5000\r\n");
    wait_for_waiters(&mut b, "q", 1);
    assert_eq!(
        dump_of(&mut b, "q"),
        dump_block(Dump {
            waiters: 1,
            ..Dump::of("q", 0, 1, 0)
        })
    );
    a.expect_silence(Duration::from_millis(100));
    b.set("q", 9, b"hello");
    expect_get(&mut a, &got("q/t=5000", "9", "hello"));
    assert!(begun.elapsed() < Duration::from_secs(4), "woken late");
    assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 2, 2)]));
    assert_eq!(dump_stats(&mut b), dump_reply(&[Dump::of("q", 0, 2, 0)]));
}

/// A request waits on a queue that does not exist yet; the first set
/// creates the queue and wakes it.
#[test]
fn a_wait_on_a_missing_queue_is_woken_by_its_first_set() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    a.send(b"get fresh/t=5000\r\n");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(stats_queue(&mut b), "END\\r\\n", "waiting created a queue");
    b.set("fresh", 1, b"first");
    expect_get(&mut a, &got("fresh/t=5000", "1", "first"));
    assert_eq!(stats_queue(&mut b), queue_reply(&[("fresh", 1, 1)]));
}

/// A set that follows the waiting `get` closely (sent right after it, on
/// another connection) must wake it too: once the set is acknowledged the
/// waiter gets the message, never `END` at its deadline. Tried on new
/// queues and on an existing empty one.
#[test]
fn a_set_right_behind_a_waiting_get_is_not_missed() {
    let (_home, server) = start(&[]);
    let mut b = server.client();
    b.set("warm", 0, b"x");
    b.call(b"get warm\r\n", &got("warm", "0", "x"));
    for i in 0..10 {
        let queue = if i % 2 == 0 {
            format!("race{i}")
        } else {
            "warm".to_string()
        };
        let key = format!("{queue}/t=3000");
        let mut a = server.client();
        let begun = Instant::now();
        a.send(&get_cmd(&key));
        b.set(&queue, i, b"wake");
        let reply = a.read_until(END);
        assert_eq!(
            show(&reply),
            show(&got(&key, &i.to_string(), "wake")),
            "round {i} ({queue}): the waiter missed the set and answered after {:?}",
            begun.elapsed()
        );
    }
}

/// Two requests waiting on one queue are served in arrival order, one
/// message each, whether the messages come one by one or together.
#[test]
fn waiters_are_served_in_arrival_order() {
    let (_home, server) = start(&[]);
    let mut p = server.client();
    p.set("q", 0, b"x");
    p.call(b"get q\r\n", &got("q", "0", "x"));

    let mut a = server.client();
    let mut b = server.client();
    a.send(b"get q/t=5000\r\n");
    wait_for_waiters(&mut p, "q", 1);
    b.send(b"get q/t=5000/open\r\n");
    wait_for_waiters(&mut p, "q", 2);
    p.set("q", 0, b"m1");
    expect_get(&mut a, &got("q/t=5000", "0", "m1"));
    b.expect_silence(Duration::from_millis(100));
    p.set("q", 0, b"m2");
    expect_get(&mut b, &got("q/t=5000/open", "0", "m2"));

    // Both waiting again; two messages in one write.
    a.send(b"get q/t=5000\r\n");
    wait_for_waiters(&mut p, "q", 1);
    let mut c = server.client();
    c.send(b"get q/t=5000\r\n");
    wait_for_waiters(&mut p, "q", 2);
    let mut sets = set_cmd(b"q", 0, b"m3");
    sets.extend(set_cmd(b"q", 0, b"m4"));
    p.call(&sets, &[STORED, STORED].concat());
    expect_get(&mut a, &got("q/t=5000", "0", "m3"));
    expect_get(&mut c, &got("q/t=5000", "0", "m4"));
    assert_eq!(stats_queue(&mut p), queue_reply(&[("q", 5, 4)]));
}

/// While a request waits, its connection's later commands wait behind it:
/// a pipelined `version` is answered only after the waiting get, whether
/// that ends with a message or at its deadline.
#[test]
fn commands_behind_a_waiting_get_wait_for_it() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    b.set("q", 0, b"x");
    b.call(b"get q\r\n", &got("q", "0", "x"));

    let begun = Instant::now();
    a.send(b"get q/t=300\r\nversion\r\n");
    a.expect(&[END, VERSION].concat());
    let waited = begun.elapsed();
    assert!(
        waited >= Duration::from_millis(240) && waited < Duration::from_secs(3),
        "answered after {waited:?}"
    );

    a.send(b"get q/t=5000\r\nversion\r\nget q\r\n");
    wait_for_waiters(&mut b, "q", 1);
    a.expect_silence(Duration::from_millis(200));
    let mut sets = set_cmd(b"q", 0, b"m1");
    sets.extend(set_cmd(b"q", 0, b"m2"));
    b.call(&sets, &[STORED, STORED].concat());
    let mut want = got("q/t=5000", "0", "m1");
    want.extend_from_slice(VERSION);
    want.extend(got("q", "0", "m2"));
    a.expect(&want);
}

/// A waiting client that half-closes its connection gets `END` at once and
/// takes nothing; one that closes outright takes nothing either. The
/// messages stored afterwards are still there.
#[test]
fn a_waiter_that_leaves_takes_nothing() {
    let (_home, server) = start(&[]);
    let mut b = server.client();
    b.set("q", 0, b"x");
    b.call(b"get q\r\n", &got("q", "0", "x"));

    let mut a = server.client();
    a.send(b"get q/t=10000\r\n");
    wait_for_waiters(&mut b, "q", 1);
    let begun = Instant::now();
    a.shutdown_write();
    a.expect(END);
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "END only after {:?}",
        begun.elapsed()
    );
    a.expect_closed();
    wait_for_waiters(&mut b, "q", 0);
    b.set("q", 0, b"m1");
    assert_eq!(dump_of(&mut b, "q"), dump_block(Dump::of("q", 1, 2, 0)));
    b.call(b"get q\r\n", &got("q", "0", "m1"));

    let mut a = server.client();
    a.send(b"get q/t=10000/open\r\n");
    wait_for_waiters(&mut b, "q", 1);
    drop(a);
    wait_for_waiters(&mut b, "q", 0);
    b.set("q", 0, b"m2");
    assert_eq!(dump_of(&mut b, "q"), dump_block(Dump::of("q", 1, 3, 0)));
    b.call(b"get q\r\n", &got("q", "0", "m2"));
    assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 3, 3)]));
}

/// A client that half-closes right behind its waiting `get` (the FIN may
/// arrive with the request, or while the request is still being run) is
/// answered `END` at once too, not at its deadline, and takes nothing.
#[test]
fn a_waiter_that_half_closes_at_once_gets_end_at_once() {
    for flags in [&[][..], &["-N"][..]] {
        let (_home, server) = start(flags);
        let mut b = server.client();
        b.set("q", 0, b"x");
        b.call(b"get q\r\n", &got("q", "0", "x"));
        for round in 0..10 {
            let mut a = server.client();
            let begun = Instant::now();
            a.send(b"get q/t=3000\r\n");
            a.shutdown_write();
            a.expect(END);
            let took = begun.elapsed();
            assert!(
                took < Duration::from_millis(1500),
                "{flags:?} round {round}: END after {took:?}, at the deadline"
            );
            a.expect_closed();
        }
        wait_for_waiters(&mut b, "q", 0);
        b.set("q", 0, b"m1");
        b.call(b"get q\r\n", &got("q", "0", "m1"));
        assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 2, 2)]));
    }
}

/// `/t=` combines with `/open`: the waiter is woken with the message
/// leased to it (nobody else gets it) until it closes it.
#[test]
fn a_wait_combines_with_open() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    b.set("q", 0, b"x");
    b.call(b"get q\r\n", &got("q", "0", "x"));
    a.send(b"get q/open/t=5000\r\n");
    wait_for_waiters(&mut b, "q", 1);
    b.set("q", 3, b"job");
    expect_get(&mut a, &got("q/open/t=5000", "3", "job"));
    b.call(b"get q\r\n", END);
    assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 2, 1)]));
    assert_eq!(dump_of(&mut b, "q"), dump_block(Dump::of("q", 0, 2, 1)));
    // Holding it, A's next wait-and-open is refused at once.
    a.call(b"get q/t=5000/open\r\n", CLOSE_FIRST);
    // /close/open/t=: acknowledges, then waits for the next one.
    a.send(b"get q/close/open/t=5000\r\n");
    wait_for_waiters(&mut b, "q", 1);
    assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 2, 2)]));
    b.set("q", 0, b"next");
    expect_get(&mut a, &got("q/close/open/t=5000", "0", "next"));
    a.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut b), queue_reply(&[("q", 3, 3)]));
}

/// A request waiting with `/peek` is woken by a set like any other, and
/// since it leaves the message where it is, the next waiter in line is
/// woken for the same message instead of waiting out its time.
#[test]
fn a_peeking_waiter_does_not_use_up_the_wake_up() {
    let (_home, server) = start(&[]);
    let mut p = server.client();
    p.set("q", 0, b"x");
    p.call(b"get q\r\n", &got("q", "0", "x"));
    let mut a = server.client();
    let mut b = server.client();
    a.send(b"get q/peek/t=5000\r\n");
    wait_for_waiters(&mut p, "q", 1);
    b.send(b"get q/t=5000\r\n");
    wait_for_waiters(&mut p, "q", 2);
    let begun = Instant::now();
    p.set("q", 0, b"m1");
    expect_get(&mut a, &got("q/peek/t=5000", "0", "m1"));
    expect_get(&mut b, &got("q/t=5000", "0", "m1"));
    let took = begun.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "the second waiter got m1 only after {took:?}"
    );
    assert_eq!(stats_queue(&mut p), queue_reply(&[("q", 2, 2)]));
}

/// Messages given back (`/abort`, a vanished holder, a lease that ran out)
/// wake a request waiting on their queue.
#[test]
fn given_back_messages_wake_waiters() {
    let (_home, server) = start(&["--lease-timeout", "1"]);
    let mut p = server.client();
    p.set("q", 0, b"m1");
    for how in ["abort", "vanish", "lease"] {
        let mut a = server.client();
        a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
        let mut w = server.client();
        w.send(b"get q/t=10000\r\n");
        wait_for_waiters(&mut p, "q", 1);
        match how {
            "abort" => a.call(b"get q/abort\r\n", END),
            "vanish" => drop(a),
            _ => {}
        }
        expect_get(&mut w, &got("q/t=10000", "0", "m1"));
        p.set("q", 0, b"m1");
    }
    assert_eq!(stats_queue(&mut p), queue_reply(&[("q", 4, 3)]));
}

/// Conflicting options answer `CLIENT_ERROR conflicting options`; unknown
/// options, bad `t=` values and `/t=` in a get of several keys answer
/// `CLIENT_ERROR bad command line format`. None of them moves a message
/// (the open one stays open, the others queued), on any key of the line.
#[test]
fn bad_and_conflicting_options_change_nothing() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    fill(&mut a, "q", &["m1", "m2"]);
    a.set("r", 0, b"r1");
    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    let conflicting: &[&str] = &[
        "q/peek/open",
        "q/open/peek",
        "q/abort/open",
        "q/abort/close",
        "q/peek/close",
        "q/close/peek",
        "q/peek/abort",
        "q/abort/close/open",
        "r q/peek/open",
        "q/peek/open r",
        "q/t=5000/peek/open",
    ];
    let bad: &[&str] = &[
        "q/nope",
        "q/t=abc",
        "q/t=",
        "q/t=-1",
        "q/t=5s",
        "q/t=99999999999",
        "q/",
        "q/OPEN",
        "q/open/",
        "q//open",
        "r q/nope",
        "q/t=5000 r",
        "r q/t=5000",
        "q/t=5000 q/t=5000",
        "r/open q/t=5000",
    ];
    let stats = queue_reply(&[("q", 2, 0), ("r", 1, 0)]);
    let dump = dump_reply(&[Dump::of("q", 1, 2, 1), Dump::of("r", 1, 1, 0)]);
    for (keys, reply) in conflicting
        .iter()
        .map(|k| (k, CONFLICT))
        .chain(bad.iter().map(|k| (k, BAD_FORMAT)))
    {
        for cmd in ["get", "gets"] {
            let begun = Instant::now();
            a.call(format!("{cmd} {keys}\r\n").as_bytes(), reply);
            assert!(
                begun.elapsed() < Duration::from_millis(2500),
                "`{cmd} {keys}` waited"
            );
        }
        assert_eq!(stats_queue(&mut a), stats, "after get {keys}");
        assert_eq!(dump_stats(&mut a), dump, "after get {keys}");
    }
    a.call(b"get q/open\r\n", CLOSE_FIRST);
    a.call(b"get q\r\n", &got("q", "0", "m2"));
    a.call(b"get r\r\n", &got("r", "0", "r1"));
    a.call(b"get q/close\r\n", END);
    assert_eq!(
        stats_queue(&mut a),
        queue_reply(&[("q", 2, 2), ("r", 1, 1)])
    );
}

// ---------------------------------------------------------------------------
// dump_stats and flush
// ---------------------------------------------------------------------------

/// `dump_stats` has Kestrel's layout, one block per queue, then `END`; the
/// values that do not depend on time are exact: items (waiting, not open),
/// bytes (items × record length), total_items, open_transactions, waiters,
/// redelivered, dead_lettered. With no queue it is a bare `END`.
#[test]
fn dump_stats_layout_and_values() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"dump_stats\r\n", END);
    fill(&mut c, "a", &["a1", "a2", "a3"]);
    c.set("b", 0, b"b1");
    c.call(b"get b\r\n", &got("b", "0", "b1"));

    let mut holder = server.client();
    holder.call(b"get a/open\r\n", &got("a/open", "0", "a1"));
    let mut w = server.client();
    w.send(b"get b/t=10000\r\n");
    wait_for_waiters(&mut c, "b", 1);

    c.send(b"dump_stats\r\n");
    let raw = c.read_until(b"\r\nEND\r\n");
    let text = String::from_utf8(raw).expect("ascii");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once('=').map_or(*l, |(k, _)| k))
        .collect();
    let block = [
        "  items",
        "  bytes",
        "  total_items",
        "  open_transactions",
        "  waiters",
        "  age",
        "  redelivered",
        "  dead_lettered",
        "}",
    ];
    let mut want_keys = vec!["queue 'a' {"];
    want_keys.extend(block);
    want_keys.push("queue 'b' {");
    want_keys.extend(block);
    want_keys.push("END");
    assert_eq!(keys, want_keys, "layout of {text:?}");
    assert_eq!(
        dump_stats(&mut c),
        dump_reply(&[
            Dump::of("a", 2, 3, 1),
            Dump {
                waiters: 1,
                ..Dump::of("b", 0, 1, 0)
            },
        ])
    );

    // A redelivery: the holder gives a1 back and another connection opens
    // it; the waiter on b is served and leaves.
    holder.call(b"get a/abort\r\n", END);
    c.call(b"get a/open\r\n", &got("a/open", "0", "a1"));
    c.set("b", 0, b"b2");
    expect_get(&mut w, &got("b/t=10000", "0", "b2"));
    assert_eq!(
        dump_stats(&mut c),
        dump_reply(&[
            Dump {
                redelivered: 1,
                ..Dump::of("a", 2, 3, 1)
            },
            Dump::of("b", 0, 2, 0),
        ])
    );
}

/// `dump_stats`' age: 0 for a queue with nothing waiting; about how long
/// the oldest waiting message has been stored otherwise.
#[test]
fn dump_stats_age_follows_the_oldest_waiting_message() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.set("q", 0, b"old");
    thread::sleep(Duration::from_millis(300));
    c.set("q", 0, b"new");
    let age = |c: &mut Client| -> u64 {
        c.send(b"dump_stats\r\n");
        let text = String::from_utf8(c.read_until(b"\r\nEND\r\n")).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("  age="))
            .unwrap_or_else(|| panic!("no age in {text:?}"));
        line.trim_end().parse().expect("age is a number")
    };
    let first = age(&mut c);
    assert!(
        (300..5000).contains(&first),
        "age {first} ms for a message stored 300 ms ago"
    );
    c.call(b"get q\r\n", &got("q", "0", "old"));
    let second = age(&mut c);
    assert!(second < first, "age {second} after taking the oldest");
    c.call(b"get q\r\n", &got("q", "0", "new"));
    assert_eq!(age(&mut c), 0, "nothing waiting");
}

/// `flush <q>` drops every message, open ones included, keeps the queue
/// and answers `END` (also for a queue that does not exist, which it does
/// not create). `stats queue` shows the dropped messages taken; the former
/// holder's `/close` then deletes nothing and counts nothing, and may open
/// again.
#[test]
fn flush_drops_every_message_and_keeps_the_queue() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2", "m3"]);
    c.set("other", 0, b"o1");
    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    c.call(b"flush q\r\n", END);
    assert_eq!(
        stats_queue(&mut c),
        queue_reply(&[("other", 1, 0), ("q", 3, 3)])
    );
    assert_eq!(
        dump_stats(&mut c),
        dump_reply(&[Dump::of("other", 1, 1, 0), Dump::of("q", 0, 3, 0)])
    );
    c.call(b"get q\r\n", END);
    a.call(b"get q/close\r\n", END);
    assert_eq!(
        stats_queue(&mut c),
        queue_reply(&[("other", 1, 0), ("q", 3, 3)])
    );
    c.call(b"flush missing\r\n", END);
    c.call(b"flush q\r\n", END);
    assert_eq!(
        stats_queue(&mut c),
        queue_reply(&[("other", 1, 0), ("q", 3, 3)])
    );
    c.set("q", 0, b"m4");
    a.call(b"get q/open\r\n", &got("q/open", "0", "m4"));
    a.call(b"get q/close\r\n", END);
    c.call(b"get other\r\n", &got("other", "0", "o1"));
    assert_eq!(
        stats_queue(&mut c),
        queue_reply(&[("other", 1, 1), ("q", 4, 4)])
    );
    c.call(b"flush queue.deliveries\r\n", BAD_FORMAT);
}

/// `delete` of a queue whose message is open ends that lease: when the
/// queue is created again, its new messages are handed out normally, and
/// the former holder's `/close` deletes nothing (it was never handed the
/// new message).
#[test]
fn delete_of_a_queue_ends_its_leases() {
    let (_home, server) = start(&[]);
    let mut a = server.client();
    let mut c = server.client();
    c.set("q", 0, b"old");
    a.call(b"get q/open\r\n", &got("q/open", "0", "old"));
    c.call(b"delete q\r\n", b"DELETED\r\n");
    c.set("q", 0, b"new");
    assert_eq!(dump_stats(&mut c), dump_reply(&[Dump::of("q", 1, 1, 0)]));
    a.call(b"get q/close\r\n", END);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 1, 0)]));
    c.call(b"get q\r\n", &got("q", "0", "new"));
}

// ---------------------------------------------------------------------------
// Durability and the data directory
// ---------------------------------------------------------------------------

/// kill -9 with open messages: after the restart every message is back, in
/// order, and the ones taken (plain get, /close) stay taken; the counters
/// are what was committed.
#[test]
fn kill_9_with_open_messages_loses_nothing() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2", "m3", "m4", "m5", "m6"]);
    a.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    b.call(b"get q/open\r\n", &got("q/open", "0", "m2"));
    c.call(b"get q\r\n", &got("q", "0", "m3"));
    b.call(b"get q/close/open\r\n", &got("q/close/open", "0", "m4"));
    server.kill9();

    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 6, 2)]));
    assert_eq!(dump_stats(&mut c), dump_reply(&[Dump::of("q", 4, 6, 0)]));
    assert_eq!(drain_bodies(&mut c, "q"), ["m1", "m4", "m5", "m6"]);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 6, 6)]));
}

/// kill -9 right after a `/close` reply: the closed message stays gone.
#[test]
fn kill_9_right_after_close_keeps_it_closed() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    fill(&mut c, "q", &["m1", "m2", "m3"]);
    c.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    c.call(b"get q/close\r\n", END);
    server.kill9();

    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 3, 1)]));
    c.call(b"get q/open\r\n", &got("q/open", "0", "m2"));
    c.call(b"get q/close/open\r\n", &got("q/close/open", "0", "m3"));
    server.kill9();

    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 3, 2)]));
    assert_eq!(drain_bodies(&mut c, "q"), ["m3"]);
}

/// The record of `body` (flags 0) in queue `queue`, as docs/STORAGE.md
/// lays it out, padded to the 1024-byte record.
fn record(queue: &str, flags: u32, body: &str) -> Vec<u8> {
    let suffix = format!(" {flags} {}\r\n", body.len());
    let mut rec = ((body.len() + 2) as i32).to_le_bytes().to_vec();
    rec.push(suffix.len() as u8);
    rec.push(queue.len() as u8);
    rec.extend_from_slice(&[0, 0]);
    rec.extend_from_slice(queue.as_bytes());
    rec.push(0);
    rec.extend_from_slice(suffix.as_bytes());
    rec.extend_from_slice(body.as_bytes());
    rec.extend_from_slice(b"\r\n");
    rec.resize(RECORD as usize, b' ');
    rec
}

/// A home stopped with SIGTERM while messages are open (and a request
/// waits, which does not delay the stop): the open messages
/// are ordinary records of their DB_QUEUE (as MemcacheQ 0.2.1 would read
/// them), `queue.deliveries` holds their counts (queue name, NUL,
/// big-endian record number → little-endian count), `db5.3_verify`
/// accepts every database, and a restart serves them all again.
#[test]
fn open_messages_are_ordinary_records_on_disk() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut a = server.client();
    let mut b = server.client();
    let mut c = server.client();
    c.set("q", 1, b"m1");
    c.set("q", 2, b"m2");
    c.set("q", 3, b"m3");
    a.call(b"get q/open\r\n", &got("q/open", "1", "m1"));
    b.call(b"get q/open\r\n", &got("q/open", "2", "m2"));
    // A request waiting (on a queue that does not exist) does not hold up
    // the stop either.
    let mut w = server.client();
    w.send(b"get idle/t=30000\r\n");
    thread::sleep(Duration::from_millis(100));
    // Stopped while A and B still hold their messages.
    server.stop();
    drop((a, b, c, w));

    let records = dump_lines(&home.path, "q");
    let want = [
        record("q", 1, "m1"),
        record("q", 2, "m2"),
        record("q", 3, "m3"),
    ];
    assert_eq!(
        records.iter().map(|r| hex(r)).collect::<Vec<_>>(),
        want.iter().map(|r| hex(r)).collect::<Vec<_>>()
    );
    let deliveries = dump_lines(&home.path, "queue.deliveries");
    assert_eq!(
        deliveries.iter().map(|r| hex(r)).collect::<Vec<_>>(),
        [
            hex(b"q\0\0\0\0\x01"),
            hex(&1u32.to_le_bytes()),
            hex(b"q\0\0\0\0\x02"),
            hex(&1u32.to_le_bytes()),
        ]
    );
    for db in ["q", "queue.deliveries", "queue.list"] {
        db_tool("verify", &["-h", home.path_str(), db]);
    }
    assert!(
        !home.files().iter().any(|f| f.ends_with(".dead")),
        "no dead-letter queue without --max-deliveries: {:?}",
        home.files()
    );

    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 3, 0)]));
    assert_eq!(drain_bodies(&mut c, "q"), ["m1", "m2", "m3"]);
}

/// `queue.deliveries` is never a queue: `set` refuses it (swallowing the
/// data block), as do `get` and `delete`; waiting or opening on it is
/// refused too.
#[test]
fn queue_deliveries_is_not_a_queue_name() {
    let (home, server) = start(&[]);
    let mut c = server.client();
    c.set("q", 0, b"m1");
    c.call(b"get q/open\r\n", &got("q/open", "0", "m1"));
    assert!(home.files().contains(&"queue.deliveries".to_string()));
    c.call(b"set queue.deliveries 0 0 2\r\nhi\r\n", BAD_FORMAT);
    c.call(b"get queue.deliveries\r\n", BAD_FORMAT);
    c.call(b"get queue.deliveries/open\r\n", BAD_FORMAT);
    c.call(b"get queue.deliveries/t=100\r\n", BAD_FORMAT);
    c.call(b"delete queue.deliveries\r\n", BAD_FORMAT);
    c.call(b"version\r\n", VERSION);
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 1, 0)]));
}

/// A home written by MemcacheQ 0.2.1 is served with the new reads too:
/// `/peek` and `/open` see its oldest message under the key as asked for,
/// `/close` counts it, and the rest still drains in order.
#[test]
fn original_home_serves_reliable_reads() {
    let home = unpack_fixture("memcacheq-0.2.1-bdb5.3-clean.tar.gz", "home53-clean");
    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(c.queue_stats(), ORIGINAL_QUEUE_STATS);
    let first = value_reply(b"jobs/peek", "10", &original_job_body(10));
    c.call(b"get jobs/peek\r\n", &[first.as_slice(), END].concat());
    let opened = value_reply(b"jobs/open", "10", &original_job_body(10));
    c.call(b"get jobs/open\r\n", &[opened.as_slice(), END].concat());
    let next = value_reply(b"jobs/close/open", "11", &original_job_body(11));
    c.call(b"get jobs/close/open\r\n", &[next.as_slice(), END].concat());
    c.call(b"get jobs/abort\r\n", END);
    let msgs = c.drain("jobs");
    assert_eq!(msgs.len(), 39);
    for (k, m) in msgs.iter().enumerate() {
        let i = 11 + k;
        assert_eq!(
            (m.flags.clone(), show(&m.body)),
            (i.to_string(), show(&original_job_body(i))),
            "jobs message {i}"
        );
    }
    let mut want = ORIGINAL_QUEUE_STATS.to_vec();
    want[3] = "STAT jobs 50/50";
    assert_eq!(c.queue_stats(), want);
}

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

/// Over UDP, which has no connection to hold a lease or a wait, any
/// option answers `CLIENT_ERROR bad command line format` (PROTOCOL.md) and
/// nothing is taken; a plain get still works.
#[test]
fn options_over_udp_are_refused() {
    let udp_port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let (_home, server) = start(&["-U", &udp_port.to_string()]);
    let mut c = server.client();
    c.set("q", 0, b"m1");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let call = |id: u16, payload: &[u8]| -> Vec<u8> {
        let mut req = Vec::new();
        for field in [id, 0, 1, 0] {
            req.extend_from_slice(&field.to_be_bytes());
        }
        req.extend_from_slice(payload);
        socket.send_to(&req, ("127.0.0.1", udp_port)).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = socket.recv_from(&mut buf).expect("a UDP reply");
        assert!(n >= 8, "short datagram");
        assert_eq!(&buf[..8], &[(id >> 8) as u8, id as u8, 0, 0, 0, 1, 0, 0]);
        buf[8..n].to_vec()
    };
    for (id, key) in ["q/open", "q/close", "q/abort", "q/t=100", "q/peek"]
        .iter()
        .enumerate()
    {
        let reply = call(id as u16 + 1, &get_cmd(key));
        assert_eq!(show(&reply), show(BAD_FORMAT), "get {key} over UDP");
    }
    assert_eq!(stats_queue(&mut c), queue_reply(&[("q", 1, 0)]));
    assert_eq!(show(&call(99, b"get q\r\n")), show(&got("q", "0", "m1")));
}
