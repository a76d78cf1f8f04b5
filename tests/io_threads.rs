//! I/O threads (-t, issue 15): many connections at once, so that the
//! reactor hands their reads and writes to other threads, each sending
//! random pipelined mixes of sets and gets with random write boundaries.
//! Every connection must read exactly the replies a FIFO model of its own
//! queue gives, in order, and the messages of a queue they all share must
//! each be taken exactly once. `MEMCACHEQ_IO_SEED` replays a run.

mod common;

use common::*;
use std::collections::{HashMap, VecDeque};
use std::thread;

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 40;

/// One connection's run: returns the bodies it took from the shared queue.
fn client(port: u16, conn: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed ^ (conn as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut c = Client::connect(port);
    let own = format!("own{conn}");
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut next = 0u64;
    let mut shared_taken = Vec::new();
    for round in 0..ROUNDS {
        // A pipelined batch of commands, and the replies the model expects
        // (None: a shared get, whose reply is checked as it comes).
        let mut bytes = Vec::new();
        let mut expected: Vec<Option<Vec<u8>>> = Vec::new();
        for _ in 0..1 + rng.next_u64() % 12 {
            match rng.next_u64() % 4 {
                0 | 1 => {
                    let body = format!("c{conn}-m{next}").into_bytes();
                    next += 1;
                    let queue = if rng.next_u64().is_multiple_of(3) {
                        "shared"
                    } else {
                        &own
                    };
                    bytes.extend(set_cmd(queue.as_bytes(), 0, &body));
                    expected.push(Some(STORED.to_vec()));
                    if queue == own {
                        model.push_back(body);
                    }
                }
                2 => {
                    bytes.extend_from_slice(format!("get {own}\r\n").as_bytes());
                    expected.push(Some(match model.pop_front() {
                        Some(body) => [&value_reply(own.as_bytes(), "0", &body)[..], END].concat(),
                        None => END.to_vec(),
                    }));
                }
                _ => {
                    bytes.extend_from_slice(b"get shared\r\n");
                    expected.push(None);
                }
            }
        }
        // Random write boundaries, inside commands too.
        let mut at = 0;
        while at < bytes.len() {
            let n = 1 + (rng.next_u64() as usize) % (bytes.len() - at);
            c.send(&bytes[at..at + n]);
            at += n;
        }
        for (i, want) in expected.into_iter().enumerate() {
            match want {
                Some(want) => {
                    let got = c.read_n(want.len());
                    assert_eq!(
                        show(&got),
                        show(&want),
                        "connection {conn}, round {round}, reply {i} (MEMCACHEQ_IO_SEED={seed})"
                    );
                }
                None => {
                    if let Some(m) = c.read_value(b"shared") {
                        c.expect(END);
                        shared_taken.push(m.body);
                    }
                }
            }
        }
    }
    shared_taken
}

#[test]
fn many_connections_on_io_threads_each_see_their_own_queue_in_order() {
    let seed = std::env::var("MEMCACHEQ_IO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("io threads test: MEMCACHEQ_IO_SEED={seed}");
    let (_home, server) = start(&["-N", "-t", "4"]);
    let port = server.port;
    let idle: u64 = io_thread_times(server.pid()).iter().map(|(_, ns)| ns).sum();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|conn| thread::spawn(move || client(port, conn, seed)))
        .collect();
    let mut taken: HashMap<Vec<u8>, usize> = HashMap::new();
    for t in threads {
        for body in t.join().expect("a client thread failed") {
            *taken.entry(body).or_default() += 1;
        }
    }
    // What is left of the shared queue, taken now.
    let mut c = server.client();
    while let Some(m) = c.get("shared") {
        *taken.entry(m.body).or_default() += 1;
    }
    let twice: Vec<_> = taken.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "taken more than once: {twice:?} (MEMCACHEQ_IO_SEED={seed})"
    );
    c.send(b"stats queue\r\n");
    let stats = String::from_utf8(c.read_until(END)).expect("utf-8");
    let line = stats
        .lines()
        .find(|l| l.starts_with("STAT shared "))
        .unwrap_or("STAT shared 0/0");
    let counts: Vec<usize> = line["STAT shared ".len()..]
        .split('/')
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert_eq!(counts[0], counts[1], "shared queue: {line}");
    assert_eq!(
        counts[0],
        taken.len(),
        "every shared message taken once: {line}"
    );
    assert_eq!(c.stat("threads"), 4);
    // The work did reach the I/O threads: there are three, and they ran
    // while the clients did.
    let io_threads = io_thread_times(server.pid());
    assert_eq!(io_threads.len(), 3, "I/O threads: {io_threads:?}");
    let busy: u64 = io_threads.iter().map(|(_, ns)| ns).sum();
    assert!(busy > idle, "the I/O threads did nothing: {io_threads:?}");
}

/// The server's threads named `io-*` and their CPU time in nanoseconds.
fn io_thread_times(pid: u32) -> Vec<(String, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc task list");
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let name = name.trim().to_string();
            let ns = std::fs::read_to_string(path.join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            name.starts_with("io-").then_some((name, ns))
        })
        .collect()
}
