//! Durability in the default (fsync on commit) mode: what the server
//! acknowledged survives a `kill -9` and a graceful restart, exactly once
//! and in order, and the `stats queue` counters match what was committed.
//!
//! The crash tests keep clients streaming pipelined commands until the
//! SIGKILL, so commands are always in flight when the server dies.

mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const PRODUCERS: usize = 4;
/// Upper bound of sets per producer; the kill comes long before.
const MAX_PER_PRODUCER: usize = 50_000;
/// A small cache (8 MB: about 2,500 pages, 7,500 messages) and small
/// extent files (64 pages, 192 messages), so that a backlog is soon many
/// times the cache and spread over many extent files.
const SMALL_CACHE: &[&str] = &["-m", "8", "-E", "64"];
/// Messages acknowledged before the kill in the deep backlog test: five
/// times what the small cache holds.
const DEEP_BACKLOG: usize = 40_000;
/// Commands per write while streaming.
const BATCH: usize = 50;

/// Body of message `i` of producer `p`.
fn body(p: usize, i: usize) -> Vec<u8> {
    format!("producer-{p}-message-{i:06}").into_bytes()
}

/// Writes `batch(k)` for k = 0, 1, ... until a write fails or `limit`
/// batches were sent; returns how many commands were handed to the kernel.
fn stream_batches(
    mut out: TcpStream,
    limit: usize,
    sent: Arc<AtomicUsize>,
    batch: impl Fn(usize) -> Vec<u8>,
) {
    for k in 0..limit {
        if out.write_all(&batch(k)).is_err() {
            return;
        }
        sent.fetch_add(BATCH, Ordering::SeqCst);
    }
}

/// Polls `count` until it reaches `at`, then kills the server (SIGKILL).
fn kill_when(server: Server, at: usize, count: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count() < at {
        assert!(Instant::now() < deadline, "only {} replies so far", count());
        thread::sleep(Duration::from_millis(1));
    }
    server.kill9();
}

/// One connection streaming sets of producer `p` into a queue, counting
/// the `STORED` replies as they arrive. Message `i` has flags `i`.
struct Producer {
    /// Sets acknowledged with `STORED`.
    acked: Arc<AtomicUsize>,
    /// Sets written to the socket (an upper bound of what can be stored).
    sent: Arc<AtomicUsize>,
    /// Streams the sets; stops at the first write error.
    writer: JoinHandle<()>,
    /// Reads replies until the connection ends; returns any non-`STORED`.
    reader: JoinHandle<Vec<String>>,
}

impl Producer {
    fn start(port: u16, p: usize, queue: &str) -> Producer {
        let mut client = Client::connect(port);
        let out = client.stream.try_clone().expect("clone stream");
        let queue = queue.to_string();
        let sent = Arc::new(AtomicUsize::new(0));
        let sent_w = sent.clone();
        let writer = thread::spawn(move || {
            stream_batches(out, MAX_PER_PRODUCER / BATCH, sent_w, |k| {
                let mut bytes = Vec::new();
                for i in k * BATCH..(k + 1) * BATCH {
                    bytes.extend(set_cmd(queue.as_bytes(), i as u32, &body(p, i)));
                }
                bytes
            })
        });
        let acked = Arc::new(AtomicUsize::new(0));
        let count = acked.clone();
        let reader = thread::spawn(move || {
            let mut odd = Vec::new();
            while let Some(line) = client.try_read_line() {
                if line == b"STORED" {
                    count.fetch_add(1, Ordering::SeqCst);
                } else {
                    odd.push(show(&line));
                }
            }
            odd
        });
        Producer {
            acked,
            sent,
            writer,
            reader,
        }
    }
}

/// Kills the server (SIGKILL) once `producers` have had `at` sets
/// acknowledged in all, and returns how many sets each had acknowledged
/// and how many it had written by then.
fn kill_during(server: Server, at: usize, producers: Vec<Producer>) -> (Vec<usize>, Vec<usize>) {
    let acked_total = || {
        producers
            .iter()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    kill_when(server, at, acked_total);
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    for (p, producer) in producers.into_iter().enumerate() {
        producer.writer.join().expect("writer thread");
        let odd = producer.reader.join().expect("reader thread");
        assert_eq!(odd, Vec::<String>::new(), "producer {p} got other replies");
        acked.push(producer.acked.load(Ordering::SeqCst));
        sent.push(producer.sent.load(Ordering::SeqCst));
    }
    assert!(
        acked.iter().zip(&sent).any(|(a, s)| a < s),
        "every set was acknowledged before the kill; the test proves nothing"
    );
    eprintln!("at the kill: acknowledged {acked:?}, written {sent:?}");
    (acked, sent)
}

/// Parses a `STAT <q> <set>/<get>` line list into (queue, set, get).
fn counters(lines: &[String]) -> Vec<(String, usize, usize)> {
    lines
        .iter()
        .map(|l| {
            let rest = l.strip_prefix("STAT ").expect("STAT line");
            let (q, c) = rest.split_once(' ').expect("STAT <q> <counts>");
            let (s, g) = c.split_once('/').expect("<set>/<get>");
            (q.to_string(), s.parse().unwrap(), g.parse().unwrap())
        })
        .collect()
}

/// Every message left in `queue`, oldest first, fetched with pipelined
/// `get`s (256 per write) to keep the drain fast.
fn drain_pipelined(c: &mut Client, queue: &str) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        c.send(&format!("get {queue}\r\n").repeat(256).into_bytes());
        let mut empty = false;
        for _ in 0..256 {
            match c.read_value(queue.as_bytes()) {
                Some(m) => {
                    assert!(!empty, "{queue}: a message after an empty reply");
                    c.expect(END);
                    out.push(m);
                }
                None => empty = true,
            }
        }
        if empty {
            return out;
        }
    }
}

/// Four producers stream pipelined sets; the server is killed with SIGKILL
/// while they run. After a restart every acknowledged message is delivered
/// exactly once, each queue in order with nothing missing in between, and
/// the `stats queue` counters equal what was committed.
#[test]
fn acknowledged_sets_survive_kill_9() {
    let home = Home::new();
    let server = home.start(&[]);
    let producers: Vec<Producer> = (0..PRODUCERS)
        .map(|p| Producer::start(server.port, p, &format!("p{p}")))
        .collect();
    let (acked, sent) = kill_during(server, 2000, producers);

    let server = home.start(&[]);
    let mut c = server.client();
    let before = counters(&c.queue_stats());
    eprintln!("stats queue after the restart: {before:?}");
    for p in 0..PRODUCERS {
        let queue = format!("p{p}");
        let msgs = drain_pipelined(&mut c, &queue);
        let n = msgs.len();
        assert!(
            n >= acked[p],
            "{queue}: {} acknowledged, {n} delivered",
            acked[p]
        );
        assert!(n <= sent[p], "{queue}: {} written, {n} delivered", sent[p]);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(
                (show(&m.body), m.flags.clone()),
                (show(&body(p, i)), i.to_string()),
                "{queue}: message {i} out of order, duplicated or missing"
            );
        }
        // A queue whose first set never committed may not exist at all.
        let listed = before.iter().find(|(q, _, _)| *q == queue);
        let (set, get) = listed.map_or((0, 0), |(_, s, g)| (*s, *g));
        assert!(listed.is_some() || n == 0, "{queue} not in {before:?}");
        assert_eq!((set, get), (n, 0), "{queue}: counters after kill -9");
    }
    let after = counters(&c.queue_stats());
    for (q, set, get) in &after {
        assert_eq!(set, get, "{q}: counters after draining");
    }
    drop(c);
    server.stop();

    // A graceful restart keeps the drained counters.
    let server = home.start(&[]);
    assert_eq!(counters(&server.client().queue_stats()), after);
}

/// Four producers stream pipelined sets into one queue until it holds
/// several times what the cache does, over many extent files, so that the
/// cache is full of queue pages and Berkeley DB writes them out (the
/// trickle chore, evictions, extent files closing) when the server is
/// killed with SIGKILL. After a restart every acknowledged message is
/// there exactly once, each producer's in order with nothing missing in
/// between, nothing beyond what was written, and the counters agree.
#[test]
fn acknowledged_sets_survive_kill_9_during_a_deep_backlog() {
    let home = Home::new();
    let server = home.start(SMALL_CACHE);
    let producers: Vec<Producer> = (0..PRODUCERS)
        .map(|p| Producer::start(server.port, p, "deep"))
        .collect();
    let (acked, sent) = kill_during(server, DEEP_BACKLOG, producers);

    let server = home.start(SMALL_CACHE);
    let mut c = server.client();
    let before = counters(&c.queue_stats());
    let msgs = drain_pipelined(&mut c, "deep");
    // Each producer's messages, in the order they came out.
    let mut next = [0; PRODUCERS];
    for m in &msgs {
        let body = String::from_utf8(m.body.clone()).expect("ascii body");
        let (p, i) = body
            .strip_prefix("producer-")
            .and_then(|rest| rest.split_once("-message-"))
            .and_then(|(p, i)| Some((p.parse::<usize>().ok()?, i.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("not a message of this test: {body:?}"));
        assert!(p < PRODUCERS, "{body:?}");
        assert_eq!(
            (i, m.flags.clone()),
            (next[p], next[p].to_string()),
            "producer {p}: message out of order, duplicated or missing"
        );
        next[p] += 1;
    }
    for p in 0..PRODUCERS {
        assert!(
            next[p] >= acked[p],
            "producer {p}: {} acknowledged, {} delivered",
            acked[p],
            next[p]
        );
        assert!(
            next[p] <= sent[p],
            "producer {p}: {} written, {} delivered",
            sent[p],
            next[p]
        );
    }
    assert_eq!(
        before,
        [("deep".to_string(), msgs.len(), 0)],
        "counters after kill -9"
    );
}

/// A consumer streams pipelined `get`s while the server is killed with
/// SIGKILL. No message delivered before the crash is delivered again after
/// it, the rest come out in order, and the get counter equals what was
/// consumed.
#[test]
fn delivered_messages_are_not_redelivered_after_kill_9() {
    const N: usize = 20_000;
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    let mut sets = Vec::new();
    for i in 0..N {
        sets.extend(set_cmd(b"work", 0, &body(0, i)));
    }
    c.call(&sets, &STORED.repeat(N));

    let out = c.stream.try_clone().expect("clone stream");
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_w = sent.clone();
    let writer = thread::spawn(move || {
        stream_batches(out, N / BATCH, sent_w, |_| b"get work\r\n".repeat(BATCH))
    });
    // The reader kills the server the moment it has N / 10 messages, so
    // the rest of the streamed gets are in flight.
    let pid = server.pid();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(body) = read_one_value(&mut c) {
            got.push(body);
            if got.len() == N / 10 {
                signal(pid, libc::SIGKILL);
            }
        }
        got
    });
    writer.join().expect("writer");
    let got = reader.join().expect("reader");
    server.kill9();
    assert!(got.len() < N, "all gets finished before the kill");
    for (i, b) in got.iter().enumerate() {
        assert_eq!(show(b), show(&body(0, i)), "delivered out of order");
    }

    let server = home.start(&[]);
    let mut c = server.client();
    let stats = counters(&c.queue_stats());
    let rest = drain_pipelined(&mut c, "work");
    let first = N - rest.len();
    eprintln!(
        "delivered before the kill: {}, consumed: {first}, gets written: {}",
        got.len(),
        sent.load(Ordering::SeqCst)
    );
    assert!(
        first >= got.len(),
        "{} delivered, but {first} consumed",
        got.len()
    );
    for (k, m) in rest.iter().enumerate() {
        assert_eq!(
            show(&m.body),
            show(&body(0, first + k)),
            "redelivered or out of order"
        );
    }
    assert_eq!(
        stats,
        [("work".to_string(), N, first)],
        "counters after kill -9"
    );
}

/// Reads one `get work` reply; `Some(body)` for a message, skipping bare
/// `END`s; `None` when the connection ends.
fn read_one_value(c: &mut Client) -> Option<Vec<u8>> {
    loop {
        let line = c.try_read_line()?;
        if line == b"END" {
            continue;
        }
        let text = String::from_utf8(line).expect("ascii VALUE line");
        let len: usize = text
            .strip_prefix("VALUE work 0 ")
            .unwrap_or_else(|| panic!("unexpected reply {text:?}"))
            .parse()
            .expect("length");
        let mut body = c.read_n(len + 2);
        if body.len() < len + 2 {
            return None;
        }
        body.truncate(len);
        return Some(body);
    }
}

/// A graceful SIGTERM restart keeps every message, its flags, the order
/// and the `stats queue` counters.
#[test]
fn graceful_restart_keeps_everything() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    for q in 0..3 {
        for i in 0..100 {
            c.set(format!("g{q}"), (q * 1000 + i) as u32, &body(q, i));
        }
    }
    for i in 0..30 {
        assert_eq!(c.get("g1").map(|m| m.body), Some(body(1, i)));
    }
    let want = vec![
        "STAT g0 100/0".to_string(),
        "STAT g1 100/30".to_string(),
        "STAT g2 100/0".to_string(),
    ];
    assert_eq!(c.queue_stats(), want);
    drop(c);
    server.stop();

    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(c.queue_stats(), want);
    for q in 0..3 {
        let first = if q == 1 { 30 } else { 0 };
        let msgs = c.drain(&format!("g{q}"));
        let got: Vec<(String, String)> = msgs
            .iter()
            .map(|m| (m.flags.clone(), show(&m.body)))
            .collect();
        let wanted: Vec<(String, String)> = (first..100)
            .map(|i| ((q * 1000 + i).to_string(), show(&body(q, i))))
            .collect();
        assert_eq!(got, wanted, "queue g{q}");
    }
    assert_eq!(
        c.queue_stats(),
        ["STAT g0 100/100", "STAT g1 100/100", "STAT g2 100/100"]
    );
}
