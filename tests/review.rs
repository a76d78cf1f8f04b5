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
