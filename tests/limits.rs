//! What one client can make the server hold: replies it never reads, and a
//! `get` naming more keys than one Berkeley DB transaction can lock.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// Resident memory of process `pid`, in KiB (VmRSS of /proc/<pid>/status).
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value")
}

/// Sends `request` `times` times on a fresh connection and never reads.
fn pipeline_without_reading(port: u16, request: &[u8], times: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let burst = request.repeat(times);
    // The server stops reading once its output backlog is full, so the
    // write may block: whatever it took is enough.
    let _ = s.write_all(&burst);
    s
}

/// 20 connections that pipeline `stats queue` over 2,000 queues and never
/// read their replies leave the server's memory bounded: each connection
/// stops being executed once its unsent replies pass the limit, within a
/// turn. (It grew by about 420 MB before; the bound asserted is generous.)
#[test]
fn clients_that_never_read_stats_keep_memory_bounded() {
    let home = Home::new();
    let server = home.start(&["-N"]);
    let mut c = server.client();
    let sets: Vec<u8> = (0..2000)
        .flat_map(|i| {
            set_cmd(
                format!("queue-with-a-longish-name-{i:05}").as_bytes(),
                0,
                b"x",
            )
        })
        .collect();
    c.send(&sets);
    for _ in 0..2000 {
        c.expect(STORED);
    }
    let before = rss_kib(server.pid());
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| pipeline_without_reading(server.port, b"stats queue\r\n", 2000))
        .collect();
    // Let the server run whatever it is willing to run.
    thread::sleep(Duration::from_secs(2));
    c.call(b"version\r\n", VERSION);
    let grown_mib = rss_kib(server.pid()).saturating_sub(before) / 1024;
    eprintln!("grown by {grown_mib} MiB for 20 clients that never read");
    assert!(
        grown_mib < 100,
        "server grew by {grown_mib} MiB for 20 clients that never read"
    );
    drop(idle);
    c.call(b"version\r\n", VERSION);
}

/// A client that pipelines 10,000 `get`s of 4,000-byte messages and does
/// not read has only a bounded number taken off for it while it does not
/// read (what the kernel's socket buffers hold, a few MB, plus the
/// server's limit); once it reads, every message arrives, in order.
#[test]
fn unread_gets_take_a_bounded_number_of_messages() {
    let home = Home::new();
    let server = home.start(&["-N", "-A", "8192", "-B", "4096"]);
    let mut c = server.client();
    let n = 10_000;
    let body = |i: usize| format!("{i:04000}").into_bytes();
    let sets: Vec<u8> = (0..n).flat_map(|i| set_cmd(b"q", 0, &body(i))).collect();
    c.send(&sets);
    for _ in 0..n {
        c.expect(STORED);
    }
    let mut reader = Client::connect(server.port);
    let gets = b"get q\r\n".repeat(n);
    let writer = {
        let mut stream = reader.stream.try_clone().unwrap();
        thread::spawn(move || stream.write_all(&gets).expect("write gets"))
    };
    thread::sleep(Duration::from_secs(2));
    let taken = c.queue_stats()[0]
        .rsplit('/')
        .next()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert!(
        taken < n / 2,
        "{taken} of {n} messages taken for a client that reads nothing"
    );
    for i in 0..n {
        let m = reader.read_value(b"q").expect("a message");
        assert!(m.body == body(i), "message {i} out of order");
        reader.expect(END);
    }
    writer.join().unwrap();
    assert_eq!(c.queue_stats(), [format!("STAT q {n}/{n}")]);
    eprintln!("taken while the client did not read: {taken} of {n}");
}

/// A `get` naming the same queue 45,000 times returns all 45,000 messages
/// in order (one transaction could not lock them all: the 40,000-lock
/// table), and the counters say all were taken.
#[test]
fn a_get_of_45000_keys_returns_every_message() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    let n = 45_000;
    let sets: Vec<u8> = (0..n)
        .flat_map(|i| set_cmd(b"q", 0, format!("{i:05}").as_bytes()))
        .collect();
    let start = Instant::now();
    c.send(&sets);
    for _ in 0..n {
        c.expect(STORED);
    }
    let mut line = b"get".to_vec();
    for _ in 0..n {
        line.extend_from_slice(b" q");
    }
    line.extend_from_slice(b"\r\n");
    c.send(&line);
    for i in 0..n {
        let want = format!("VALUE q 0 5\r\n{i:05}\r\n");
        c.expect(want.as_bytes());
    }
    c.expect(END);
    assert_eq!(c.queue_stats(), [format!("STAT q {n}/{n}")]);
    eprintln!("45,000 sets and one 45,000-key get: {:?}", start.elapsed());
}
