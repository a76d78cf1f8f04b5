//! Clients that half-close (`shutdown(SHUT_WR)` after sending, as
//! `nc -N` does) get every command they sent answered, in order, and the
//! server closes the connection right after the last reply: no consumed
//! message is lost on the way out, and no socket is left in CLOSE-WAIT.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// How long the server may take to close sockets whose peers have gone.
const SETTLE: Duration = Duration::from_secs(5);

/// Connects, writes `request`, shuts down the sending side, and returns
/// everything the server sent until it closed the connection.
fn send_and_half_close(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.write_all(request).expect("write request");
    stream.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .unwrap_or_else(|e| panic!("no close after {}: {e}", show(&reply)));
    reply
}

/// 200 clients each send `get q` and half-close at once (the FIN usually
/// arrives in the same read as the command); every one of them receives
/// exactly one message and then the close, so all 200 are delivered. In
/// both modes: with the log flush (replies held until it) and with -N.
#[test]
fn get_then_half_close_delivers_every_message() {
    for flags in [&[][..], &["-N"]] {
        let home = Home::new();
        let server = home.start(flags);
        let mut c = server.client();
        for i in 0..200 {
            c.set("q", 0, format!("m{i:03}").as_bytes());
        }
        let mut delivered = Vec::new();
        for _ in 0..200 {
            let reply = send_and_half_close(server.port, b"get q\r\n");
            assert!(
                reply.starts_with(b"VALUE q 0 4\r\n") && reply.ends_with(b"\r\nEND\r\n"),
                "reply to a half-closed get ({flags:?}): {}",
                show(&reply)
            );
            delivered.push(reply[13..17].to_vec());
        }
        let want: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i:03}").into_bytes()).collect();
        assert_eq!(delivered, want, "messages delivered ({flags:?})");
        assert_eq!(c.queue_stats(), ["STAT q 200/200"]);
        assert_eq!(settle_close_wait(server.port, SETTLE), 0, "CLOSE-WAIT left");
    }
}

/// A pipelined burst longer than one turn's share (600 gets, then
/// `version`) followed by the FIN: every command is answered in order.
#[test]
fn pipelined_commands_before_the_fin_are_all_answered() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    for i in 0..600 {
        c.set("q", 0, format!("{i:03}").as_bytes());
    }
    let request = [b"get q\r\n".repeat(600), b"version\r\n".to_vec()].concat();
    let reply = send_and_half_close(server.port, &request);
    let mut want = Vec::new();
    for i in 0..600 {
        want.extend_from_slice(format!("VALUE q 0 3\r\n{i:03}\r\nEND\r\n").as_bytes());
    }
    want.extend_from_slice(VERSION);
    let values = reply.windows(6).filter(|w| w == b"VALUE ").count();
    assert!(
        reply == want,
        "{} bytes with {values} VALUE lines instead of {}; the last 40: {}",
        reply.len(),
        want.len(),
        show(&reply[reply.len().saturating_sub(40)..])
    );
    assert_eq!(c.queue_stats(), ["STAT q 600/600"]);
}

/// `version` then the FIN, 100 times: each gets its `VERSION` line, and
/// nothing is left in CLOSE-WAIT.
#[test]
fn version_then_half_close_is_answered_and_closed() {
    let home = Home::new();
    let server = home.start(&[]);
    for _ in 0..100 {
        let reply = send_and_half_close(server.port, b"version\r\n");
        assert_eq!(show(&reply), show(VERSION));
    }
    assert_eq!(settle_close_wait(server.port, SETTLE), 0, "CLOSE-WAIT left");
}

/// Half a data block then the FIN: the unfinished `set` stores nothing and
/// the server closes. A `-c 4` server that served 30 such clients (each
/// closing fully afterwards) has no CLOSE-WAIT socket and still accepts.
#[test]
fn half_closed_partial_commands_leak_no_connection() {
    let home = Home::new();
    let server = home.start(&["-c", "4"]);
    for _ in 0..30 {
        let reply = send_and_half_close(server.port, b"set q 0 0 10\r\nabc");
        assert_eq!(show(&reply), "", "reply to an unfinished set");
    }
    assert_eq!(settle_close_wait(server.port, SETTLE), 0, "CLOSE-WAIT left");
    let mut c = server.client();
    c.call(b"version\r\n", VERSION);
    assert_eq!(c.queue_stats(), Vec::<String>::new());
    assert_eq!(c.stat("curr_connections"), 1);
}

/// A client that sends half a data block, half-closes and then closes
/// without reading (the `nc` pattern): after 100 of them a `-c 4` server
/// still serves new clients.
#[test]
fn clients_that_half_close_and_vanish_do_not_use_up_connections() {
    let home = Home::new();
    let server = home.start(&["-c", "4"]);
    for _ in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        // While earlier ones are still being closed, a client may be over
        // the -c limit and refused: the server closes it first, so these
        // calls may fail, which is no leak.
        let _ = s.write_all(b"set q 0 0 10\r\nabc");
        let _ = s.shutdown(Shutdown::Write);
        drop(s);
    }
    assert_eq!(settle_close_wait(server.port, SETTLE), 0, "CLOSE-WAIT left");
    let mut c = server.client();
    c.call(b"version\r\n", VERSION);
    assert_eq!(c.stat("curr_connections"), 1);
}
