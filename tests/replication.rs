//! A replication group of real servers on loopback (--rep-*, README
//! "Replication"): three sites with their own homes and ports, a master
//! elected among them, replicas that serve reads and refuse changes, and
//! failover when the master is killed or frozen.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::metrics_page::{other_port, page, samples};
use common::*;

/// How long a group may take to agree on a master (the issue's bound).
const ELECTION_BOUND: Duration = Duration::from_secs(10);

/// A free TCP port for a site's replication address. Ports are handed out
/// from a range of this test process's own (test binaries run one at a
/// time), skipping any that is taken.
fn rep_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Below the kernel's ephemeral range (32768 and up), where other
    // tests' `-p 0` listeners and outgoing connections take ports.
    let base = 20_000 + (std::process::id() % 120) as u16 * 100;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst) % 100;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One site of a group: its home, its replication port, and its server
/// while it runs.
struct Site {
    home: Home,
    rep_port: u16,
    server: Option<Server>,
}

struct Group {
    sites: Vec<Site>,
    /// The replication port of the site that created the group.
    creator: u16,
    extra: Vec<String>,
    /// Groups run one at a time: three servers each, elections timed in
    /// seconds, and two cores. Dropped last, once the servers are.
    _alone: MutexGuard<'static, ()>,
}

impl Group {
    /// `n` sites, each with `extra` flags; the first creates the group and
    /// is its first master.
    fn start(n: usize, extra: &[&str]) -> Group {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let mut group = Group {
            sites: Vec::new(),
            creator: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _alone: ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()),
        };
        for i in 0..n {
            let rep_port = rep_port();
            if i == 0 {
                group.creator = rep_port;
            }
            group.sites.push(Site {
                home: Home::new(),
                rep_port,
                server: None,
            });
            group.run(i);
            if i == 0 {
                group.wait_for_master(&[0]);
            }
        }
        group.wait_for_master(&(0..n).collect::<Vec<_>>());
        // Every site knows every other, and is connected to it: only then
        // can the rest of the group elect a master without any one site.
        let deadline = Instant::now() + ELECTION_BOUND;
        for i in 0..n {
            loop {
                let stats = replication_stats(&group, i);
                if stats["sites"] == n.to_string() && stats["connected"] == (n - 1).to_string() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "site {i} never saw the whole group: {stats:?}"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        group
    }

    /// Starts site `i` (again) on its home.
    fn run(&mut self, i: usize) {
        let site = &self.sites[i];
        let listen = format!("127.0.0.1:{}", site.rep_port);
        let creator = format!("127.0.0.1:{}", self.creator);
        let mut args: Vec<&str> = vec!["--rep-listen", &listen];
        if site.rep_port != self.creator {
            args.extend(["--rep-peer", &creator]);
        }
        args.push("-v");
        args.extend(self.extra.iter().map(String::as_str));
        let server = Server::start(&site.home.path, &args);
        self.sites[i].server = Some(server);
    }

    fn server(&self, i: usize) -> &Server {
        self.sites[i].server.as_ref().expect("site running")
    }

    fn client(&self, i: usize) -> Client {
        self.server(i).client()
    }

    fn address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.server(i).port)
    }

    fn take(&mut self, i: usize) -> Server {
        self.sites[i].server.take().expect("site running")
    }

    /// Waits until every site of `live` answers `stats replication` and
    /// all agree on one master among them; returns its index.
    fn wait_for_master(&self, live: &[usize]) -> usize {
        let deadline = Instant::now() + ELECTION_BOUND;
        loop {
            let last: Vec<(usize, HashMap<String, String>)> = live
                .iter()
                .map(|&i| {
                    if TcpStream::connect(("127.0.0.1", self.server(i).port)).is_err() {
                        panic!(
                            "site {i} does not accept connections; its output:\n{}",
                            self.server(i).output()
                        );
                    }
                    (i, replication_stats(self, i))
                })
                .collect();
            let masters: Vec<usize> = last
                .iter()
                .filter(|(_, s)| s["role"] == "master")
                .map(|(i, _)| *i)
                .collect();
            if let [master] = masters[..] {
                let address = self.address(master);
                if last.iter().all(|(_, s)| s["master"] == address) {
                    return master;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = live
                    .iter()
                    .map(|&i| {
                        let out = self.server(i).output();
                        let tail: Vec<&str> = out.lines().rev().take(15).collect();
                        format!(
                            "site {i}:\n{}",
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        )
                    })
                    .collect();
                panic!(
                    "no single master within {ELECTION_BOUND:?}: {last:?}\n{}",
                    logs.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn replication_stats(group: &Group, i: usize) -> HashMap<String, String> {
    let mut c = group.client(i);
    c.send(b"stats replication\r\n");
    stat_pairs(&c.read_until(END)).into_iter().collect()
}

/// Sets `count` messages `<prefix><n>` on `queue`, pipelined.
fn set_many(c: &mut Client, queue: &str, prefix: &str, range: std::ops::Range<usize>) {
    for chunk in range.collect::<Vec<_>>().chunks(500) {
        let mut batch = Vec::new();
        for n in chunk {
            batch.extend(set_cmd(
                queue.as_bytes(),
                0,
                format!("{prefix}{n}").as_bytes(),
            ));
        }
        c.send(&batch);
        for _ in chunk {
            c.expect(STORED);
        }
    }
}

/// Waits until site `i`, just elected, acknowledges a write: the other
/// live site may still be catching up with it, and a set it cannot confirm
/// in time answers `SERVER_ERROR not acknowledged` (which is right, but
/// not what the tests that count messages after a failover are about).
/// The probe goes to a queue of its own.
fn wait_until_acknowledged(group: &Group, i: usize) {
    let deadline = Instant::now() + ELECTION_BOUND;
    let mut c = group.client(i);
    loop {
        c.send(&set_cmd(b"probe", 0, b"p"));
        let line = c.read_line();
        if line == b"STORED" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "site {i} acknowledges no write: {}",
            show(&line)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Takes `count` messages off `queue`, pipelined; returns their bodies.
fn get_many(c: &mut Client, queue: &str, count: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        c.send(format!("get {queue}\r\n").repeat(chunk.len()).as_bytes());
        for _ in chunk {
            let m = c.read_value(queue.as_bytes()).expect("a message");
            c.expect(END);
            bodies.push(String::from_utf8(m.body).expect("ascii body"));
        }
    }
    bodies
}

/// Waits until site `i` lists `line` in `stats queue` (replication is
/// asynchronous for reads).
fn wait_for_queue_line(group: &Group, i: usize, line: &str) {
    let deadline = Instant::now() + ELECTION_BOUND;
    loop {
        let lines = group.client(i).queue_stats();
        if lines.iter().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "site {i} never listed {line:?}: {lines:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_replica_refuses_every_changing_command_and_consumes_nothing() {
    let group = Group::start(3, &[]);
    let mut master = group.client(0);
    for body in ["m1", "m2", "m3"] {
        master.set("jobs", 0, body.as_bytes());
    }
    wait_for_queue_line(&group, 1, "STAT jobs 3/0");
    let refusal = format!(
        "SERVER_ERROR not the master; master is {}\r\n",
        group.address(0)
    );
    let replica_home = group.sites[1].home.path_str();
    let stat_before = db_tool("stat", &["-h", replica_home, "-d", "jobs"]);

    let mut replica = group.client(1);
    let changing: [&[u8]; 10] = [
        b"set jobs 0 0 5\r\nhello\r\n",
        b"get jobs\r\n",
        b"gets jobs\r\n",
        b"get jobs/open\r\n",
        b"get jobs/close\r\n",
        b"get jobs/abort\r\n",
        b"get jobs/t=100\r\n",
        b"get other jobs/peek\r\n",
        b"delete jobs\r\n",
        b"flush jobs\r\n",
    ];
    for request in changing {
        replica.send(request);
        assert_eq!(
            show(&replica.read_line()),
            show(refusal.trim_end().as_bytes()),
            "reply to {}",
            show(request)
        );
    }
    // What only reads is served from the replica's own copy.
    let mut peeked = value_reply(b"jobs/peek", "0", b"m1");
    peeked.extend_from_slice(END);
    replica.call(b"get jobs/peek\r\n", &peeked);
    replica.call(b"stats queue\r\n", b"STAT jobs 3/0\r\nEND\r\n");
    replica.call(b"version\r\n", VERSION);
    let stat_after = db_tool("stat", &["-h", replica_home, "-d", "jobs"]);
    assert_eq!(stat_before, stat_after, "the replica's queue changed");

    // The master still has all three, in order.
    let bodies: Vec<Vec<u8>> = master.drain("jobs").into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [b"m1".to_vec(), b"m2".to_vec(), b"m3".to_vec()]);

    // Known limitation (README): for 30 s after the master helped a
    // replica catch up (here: the group has just started), Berkeley DB
    // refuses to remove a database; the master says so, and loses nothing.
    master.set("kept", 0, b"k");
    master.call(b"delete kept\r\n", b"SERVER_ERROR while delete a item\r\n");
    assert_eq!(master.get("kept").map(|m| m.body), Some(b"k".to_vec()));
}

#[test]
fn stats_replication_describes_the_group_and_is_unknown_without_it() {
    let group = Group::start(3, &[]);
    let master = replication_stats(&group, 0);
    let replica = replication_stats(&group, 2);
    let mut c = group.client(0);
    c.send(b"stats replication\r\n");
    let names: Vec<String> = stat_pairs(&c.read_until(END))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "role",
            "master",
            "sites",
            "connected",
            "perm_failed",
            "elections"
        ]
    );
    assert_eq!(master["role"], "master");
    assert_eq!(replica["role"], "replica");
    assert_eq!(master["master"], group.address(0));
    assert_eq!(replica["master"], group.address(0));
    assert_eq!(master["sites"], "3");
    assert_eq!(master["connected"], "2");
    assert_eq!(master["perm_failed"], "0");

    let (_home, alone) = start(&[]);
    alone.client().call(b"stats replication\r\n", ERROR);
}

#[test]
fn killing_the_master_elects_another_that_holds_exactly_what_is_left() {
    let mut group = Group::start(3, &[]);
    let mut master = group.client(0);
    set_many(&mut master, "jobs", "m", 0..5000);
    let taken = get_many(&mut master, "jobs", 2000);
    let want: Vec<String> = (0..2000).map(|n| format!("m{n}")).collect();
    assert_eq!(taken, want);
    drop(master);

    let killed_at = Instant::now();
    group.take(0).kill9();
    let new_master = group.wait_for_master(&[1, 2]);
    let elected_in = killed_at.elapsed();
    assert!(elected_in < ELECTION_BOUND, "election took {elected_in:?}");

    let mut c = group.client(new_master);
    let left = get_many(&mut c, "jobs", 3000);
    let want: Vec<String> = (2000..5000).map(|n| format!("m{n}")).collect();
    assert_eq!(left, want, "the new master's messages");
    c.call(b"get jobs\r\n", END);
}

#[test]
fn a_frozen_master_is_replaced_and_rejoins_as_a_replica() {
    let group = Group::start(3, &[]);
    let mut master = group.client(0);
    set_many(&mut master, "jobs", "m", 0..100);
    drop(master);

    signal(group.server(0).pid(), libc::SIGSTOP);
    let new_master = group.wait_for_master(&[1, 2]);
    wait_until_acknowledged(&group, new_master);
    let mut c = group.client(new_master);
    set_many(&mut c, "jobs", "n", 0..10);
    signal(group.server(0).pid(), libc::SIGCONT);

    // One master afterwards, and not the old one: it found another master
    // in its place and stepped down (it may have forced one more election
    // on the way).
    let master = group.wait_for_master(&[0, 1, 2]);
    assert_ne!(master, 0, "the frozen master is master again");
    let mut bodies = get_many(&mut group.client(master), "jobs", 110);
    let mut want: Vec<String> = (0..100).map(|n| format!("m{n}")).collect();
    want.extend((0..10).map(|n| format!("n{n}")));
    assert_eq!(bodies.len(), want.len());
    bodies.truncate(want.len());
    assert_eq!(bodies, want);
}

#[test]
fn a_restarted_master_rejoins_catches_up_and_its_home_then_serves_alone() {
    let mut group = Group::start(3, &[]);
    let mut master = group.client(0);
    set_many(&mut master, "jobs", "m", 0..50);
    drop(master);
    group.take(0).kill9();
    let new_master = group.wait_for_master(&[1, 2]);
    wait_until_acknowledged(&group, new_master);
    let mut c = group.client(new_master);
    assert_eq!(get_many(&mut c, "jobs", 10).len(), 10);
    set_many(&mut c, "jobs", "n", 0..5);

    group.run(0);
    let master = group.wait_for_master(&[0, 1, 2]);
    assert_ne!(master, 0, "the old master rejoined as a replica");
    wait_for_queue_line(&group, 0, "STAT jobs 55/10");

    // Its home, started on its own, serves what the group held.
    let server = group.take(0);
    server.stop();
    let home = group.sites[0].home.path.clone();
    let alone = Server::start(&home, &[]);
    let mut c = alone.client();
    let mut want: Vec<String> = (10..50).map(|n| format!("m{n}")).collect();
    want.extend((0..5).map(|n| format!("n{n}")));
    assert_eq!(get_many(&mut c, "jobs", 45), want);
    c.call(b"get jobs\r\n", END);
    alone.stop();
}

#[test]
fn a_set_the_ack_policy_cannot_confirm_is_not_acknowledged_and_still_kept() {
    let mut group = Group::start(3, &["--rep-ack", "all", "--rep-ack-timeout", "300"]);
    let mut master = group.client(0);
    // Replicas confirm once they have synced with the master's
    // generation, which a loaded machine may take a moment to do.
    let deadline = Instant::now() + ELECTION_BOUND;
    loop {
        master.send(&set_cmd(b"probe", 0, b"x"));
        if master.read_line() == b"STORED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never confirmed a set"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let perm_failed_before: u64 = replication_stats(&group, 0)["perm_failed"].parse().unwrap();
    master.set("jobs", 0, b"both replicas have it");
    group.take(2).kill9();

    // One replica left: `all` cannot be met, so the set is not
    // acknowledged; the message may still be delivered (at least once).
    let started = Instant::now();
    master.send(&set_cmd(b"jobs", 0, b"only one has it"));
    master
        .expect(b"SERVER_ERROR not acknowledged by enough replicas; it may still be delivered\r\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let perm_failed: u64 = replication_stats(&group, 0)["perm_failed"].parse().unwrap();
    assert_eq!(perm_failed, perm_failed_before + 1);
    // A reliable read: the open keeps its VALUE (at least once); the
    // close is told it was not acknowledged.
    master.send(b"get jobs/open\r\n");
    let opened = master.read_value(b"jobs/open").expect("an open message");
    master.expect(END);
    assert_eq!(opened.body, b"both replicas have it");
    master.call(
        b"get jobs/close\r\n",
        b"SERVER_ERROR not acknowledged by enough replicas; it may still be delivered\r\n",
    );
    let bodies: Vec<Vec<u8>> = master.drain("jobs").into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [b"only one has it".to_vec()]);
}

#[test]
fn with_the_default_quorum_one_replica_down_still_acknowledges() {
    let mut group = Group::start(3, &[]);
    group.take(1).kill9();
    let mut master = group.client(0);
    set_many(&mut master, "jobs", "m", 0..20);
    assert_eq!(replication_stats(&group, 0)["perm_failed"], "0");
    wait_for_queue_line(&group, 2, "STAT jobs 20/0");
}

/// What the clients of the load test saw, each event numbered in the order
/// it happened (over all threads).
#[derive(Default)]
struct Seen {
    next: u64,
    /// Sets answered `STORED`.
    stored: Vec<String>,
    /// Every message handed out (plain get, `/open`, the final drain),
    /// with its event number.
    delivered: Vec<(u64, String)>,
    /// How each event came about, for a failure's message.
    kinds: HashMap<u64, &'static str>,
    /// Messages whose taking was acknowledged (a plain get's `VALUE`, a
    /// `/close` answered), with its event number.
    consumed: Vec<(u64, String)>,
    /// Plain gets whose connection broke before their reply was read.
    broken_gets: usize,
}

impl Seen {
    fn event(&mut self, kind: &'static str) -> u64 {
        self.next += 1;
        self.kinds.insert(self.next, kind);
        self.next
    }
}

/// What a [`Follower`] got for a request.
enum Answer {
    /// A reply line other than `VALUE`.
    Line(String),
    /// A `VALUE` block's body (its `END` read too).
    Value(String),
    /// `SERVER_ERROR not the master`: not run; the follower moves to the
    /// master it names.
    Refused,
    /// The connection broke after the request was sent: it may or may
    /// not have run.
    Broken,
}

/// A client of whichever site is master: it follows a refusal line to the
/// master it names, and tries every site when its connection breaks.
struct Follower {
    ports: Arc<Mutex<Vec<u16>>>,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
    /// Where a refusal line sent it.
    next_port: Option<u16>,
    /// Which site to try next when no refusal named one.
    turn: usize,
    /// Connections made so far: an open message belongs to one.
    connections: usize,
    /// Where each request is cut into separate writes.
    rng: Rng,
}

impl Follower {
    fn new(load: &Load, client: u64) -> Follower {
        Follower {
            ports: load.ports.clone(),
            rng: Rng::new(load.seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            conn: None,
            next_port: None,
            turn: 0,
            connections: 0,
        }
    }

    /// Sends `request` and reads its reply: one line, or a `VALUE` block
    /// and its `END`. `None` when it could not connect at all.
    fn call(&mut self, request: &[u8]) -> Option<Answer> {
        if self.conn.is_none() {
            self.connect();
        }
        let rng = &mut self.rng;
        let Some((stream, reader)) = self.conn.as_mut() else {
            thread::sleep(Duration::from_millis(50));
            return None;
        };
        let reply = (|| -> std::io::Result<Answer> {
            // One to three writes, cut at random places.
            let mut rest = request;
            for _ in 0..rng.next_u64() % 3 {
                let cut = (rng.next_u64() as usize) % (rest.len() + 1);
                stream.write_all(&rest[..cut])?;
                rest = &rest[cut..];
                thread::sleep(Duration::from_micros(rng.next_u64() % 500));
            }
            stream.write_all(rest)?;
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if !line.starts_with("VALUE ") {
                return Ok(Answer::Line(line));
            }
            let mut body = String::new();
            reader.read_line(&mut body)?;
            let mut end = String::new();
            reader.read_line(&mut end)?;
            if end != "END\r\n" {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            Ok(Answer::Value(body.trim_end().to_string()))
        })();
        Some(match reply {
            Ok(Answer::Line(line)) if line.starts_with("SERVER_ERROR not the master; ") => {
                self.next_port = line
                    .trim_end()
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok());
                self.conn = None;
                thread::sleep(Duration::from_millis(20));
                Answer::Refused
            }
            Ok(answer) => answer,
            Err(_) => {
                self.conn = None;
                thread::sleep(Duration::from_millis(50));
                Answer::Broken
            }
        })
    }

    fn connect(&mut self) {
        let ports = self.ports.lock().unwrap().clone();
        let port = self.next_port.take().unwrap_or_else(|| {
            self.turn += 1;
            ports[self.turn % ports.len()]
        });
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.set_nodelay(true).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let reader = BufReader::new(stream.try_clone().unwrap());
            self.conn = Some((stream, reader));
            self.connections += 1;
        }
    }
}

/// What the load test's clients share.
#[derive(Clone)]
struct Load {
    ports: Arc<Mutex<Vec<u16>>>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    seed: u64,
}

fn producer(load: Load) {
    let (seen, stop) = (load.seen.clone(), load.stop.clone());
    let mut c = Follower::new(&load, 0);
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let body = format!("p{n}");
        match c.call(&set_cmd(b"jobs", 0, body.as_bytes())) {
            Some(Answer::Line(line)) if line == "STORED\r\n" => {
                seen.lock().unwrap().stored.push(body);
                n += 1;
            }
            // Not acknowledged, or no answer: it may or may not be
            // stored; a new body follows.
            Some(Answer::Line(_) | Answer::Value(_) | Answer::Broken) => n += 1,
            // Refused, or not sent: nothing was stored; send it again.
            Some(Answer::Refused) | None => {}
        }
    }
}

fn plain_consumer(load: Load) {
    let (seen, stop) = (load.seen.clone(), load.stop.clone());
    let mut c = Follower::new(&load, 1);
    while !stop.load(Ordering::SeqCst) {
        match c.call(b"get jobs\r\n") {
            Some(Answer::Value(body)) => {
                let mut seen = seen.lock().unwrap();
                let at = seen.event("plain get");
                seen.delivered.push((at, body.clone()));
                seen.consumed.push((at, body));
            }
            // A plain get is taken when it runs: if the connection breaks
            // before its reply is read (a killed server's reset discards
            // what it sent), the message is gone. That is what reliable
            // reads are for; the test allows one such loss per break.
            Some(Answer::Broken) => seen.lock().unwrap().broken_gets += 1,
            _ => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn reliable_consumer(load: Load) {
    let (seen, stop) = (load.seen.clone(), load.stop.clone());
    let mut c = Follower::new(&load, 2);
    while !stop.load(Ordering::SeqCst) {
        let Some(Answer::Value(body)) = c.call(b"get jobs/open\r\n") else {
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        let connection = c.connections;
        {
            let mut seen = seen.lock().unwrap();
            let at = seen.event("open");
            seen.delivered.push((at, body.clone()));
        }
        // A close on another connection than the open's closes nothing
        // (and answers `END` all the same).
        if let Some(Answer::Line(line)) = c.call(b"get jobs/close\r\n") {
            if line == "END\r\n" && c.connections == connection {
                let mut seen = seen.lock().unwrap();
                let at = seen.event("close");
                seen.consumed.push((at, body));
            }
        }
    }
}

/// The group under a producer, a plain and a reliable consumer, all
/// following the master, through a random run of master failures (kill -9
/// and restart, or SIGSTOP past the election timeout and SIGCONT).
/// Checked against what the clients were told: every set answered
/// `STORED` is delivered at least once, and no message whose taking was
/// acknowledged is delivered again afterwards.
#[test]
fn under_load_through_random_failovers_nothing_acknowledged_is_lost_or_taken_twice() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = env_number("MEMCACHEQ_REP_SEED", now.unwrap().as_nanos() as u64 | 1);
    let faults = env_number("MEMCACHEQ_REP_FAULTS", 3);
    // Freezing the master under load is left out by default: see the
    // README's "Replication", "What is not guaranteed".
    let freezes = env_number("MEMCACHEQ_REP_FREEZES", 0) == 1;
    println!(
        "MEMCACHEQ_REP_SEED={seed} MEMCACHEQ_REP_FAULTS={faults} MEMCACHEQ_REP_FREEZES={}",
        u8::from(freezes)
    );
    let mut rng = Rng::new(seed);
    let mut group = Group::start(3, &["--lease-timeout", "2"]);
    let ports = Arc::new(Mutex::new(
        (0..3).map(|i| group.server(i).port).collect::<Vec<_>>(),
    ));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        ports: ports.clone(),
        seen: seen.clone(),
        stop: stop.clone(),
        seed,
    };
    let clients: Vec<_> = [producer, plain_consumer, reliable_consumer]
        .into_iter()
        .map(|client| {
            let load = load.clone();
            thread::spawn(move || client(load))
        })
        .collect();

    let mut master = 0;
    for _ in 0..faults {
        thread::sleep(Duration::from_millis(500 + rng.next_u64() % 1000));
        let others: Vec<usize> = (0..3).filter(|&i| i != master).collect();
        if !freezes || rng.next_u64().is_multiple_of(2) {
            group.take(master).kill9();
            group.wait_for_master(&others);
            group.run(master);
            ports.lock().unwrap()[master] = group.server(master).port;
        } else {
            signal(group.server(master).pid(), libc::SIGSTOP);
            group.wait_for_master(&others);
            signal(group.server(master).pid(), libc::SIGCONT);
        }
        master = group.wait_for_master(&[0, 1, 2]);
    }
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("client thread");
    }

    // What is left, once the reliable consumer's leases have run out.
    thread::sleep(Duration::from_secs(3));
    let master = group.wait_for_master(&[0, 1, 2]);
    let mut c = group.client(master);
    let mut seen = seen.lock().unwrap();
    while let Some(m) = c.get("jobs") {
        let at = seen.event("drain");
        seen.delivered
            .push((at, String::from_utf8(m.body).unwrap()));
    }

    let delivered: HashSet<&String> = seen.delivered.iter().map(|(_, b)| b).collect();
    let lost: Vec<&String> = seen
        .stored
        .iter()
        .filter(|b| !delivered.contains(b))
        .collect();
    assert!(
        lost.len() <= seen.broken_gets,
        "acknowledged sets never delivered: {lost:?}, more than the {} plain gets cut off",
        seen.broken_gets
    );
    for (consumed_at, body) in &seen.consumed {
        let again: Vec<u64> = seen
            .delivered
            .iter()
            .filter(|(at, b)| b == body && at > consumed_at)
            .map(|(at, _)| *at)
            .collect();
        let kinds: Vec<&str> = again.iter().map(|at| seen.kinds[at]).collect();
        assert!(
            again.is_empty(),
            "{body} was taken (event {consumed_at}, {}) and delivered again (events {again:?}: {kinds:?})",
            seen.kinds[consumed_at]
        );
    }
    assert!(
        seen.stored.len() > 100,
        "too little traffic to mean anything: {} sets",
        seen.stored.len()
    );
    println!(
        "{} sets acknowledged, {} deliveries, {} takings acknowledged, {} lost with {} plain gets cut off",
        seen.stored.len(),
        seen.delivered.len(),
        seen.consumed.len(),
        lost.len(),
        seen.broken_gets
    );
}

/// `memcacheq-stat -r` prints what `db5.3_stat -r` prints on a site's
/// home: the same lines in the same order. The figures of message and
/// heartbeat counters move between the two calls, so each line is
/// compared by its description (what follows the figure).
#[test]
fn memcacheq_stat_r_reports_replication_as_db_stat_does() {
    let group = Group::start(3, &[]);
    group.client(0).set("jobs", 0, b"m");
    wait_for_queue_line(&group, 1, "STAT jobs 1/0");
    for site in [0, 1] {
        let home = group.sites[site].home.path_str();
        let ours = std::process::Command::new(env!("CARGO_BIN_EXE_memcacheq-stat"))
            .args(["-h", home, "-r"])
            .output()
            .expect("run memcacheq-stat");
        assert!(ours.status.success(), "memcacheq-stat -r failed");
        let theirs = db_tool("stat", &["-h", home, "-r"]);
        let descriptions = |report: &str| -> Vec<String> {
            report
                .lines()
                .map(|l| l.split_once('\t').map_or(l, |(_, d)| d).to_string())
                .collect()
        };
        let ours = descriptions(&String::from_utf8_lossy(&ours.stdout));
        assert!(ours.len() > 20, "short report: {ours:?}");
        assert_eq!(ours, descriptions(&theirs), "site {site}");
        let role = if site == 0 { "master" } else { "client" };
        assert!(
            ours.contains(&format!("Environment configured as a replication {role}")),
            "site {site}: {ours:?}"
        );
    }
}

#[test]
fn the_metrics_page_shows_each_site_s_role_and_a_replica_s_refusals() {
    let group = Group::start(2, &["--metrics-listen", "127.0.0.1:0"]);
    let page_of = |i: usize| {
        let server = group.server(i);
        let port = other_port(server.pid(), &[server.port, group.sites[i].rep_port]);
        samples(&page(port))
    };
    group.client(0).set("jobs", 0, b"m1");
    wait_for_queue_line(&group, 1, "STAT jobs 1/0");
    let mut replica = group.client(1);
    replica.send(b"set jobs 0 0 1\r\nx\r\n");
    let refusal = replica.read_line();
    assert!(
        refusal.starts_with(b"SERVER_ERROR not the master"),
        "{}",
        show(&refusal)
    );

    let role = |page: &std::collections::BTreeMap<String, f64>, role: &str| {
        page[&format!("memcacheq_replication_role{{role=\"{role}\"}}")]
    };
    let master = page_of(0);
    assert_eq!(
        [
            role(&master, "master"),
            role(&master, "replica"),
            role(&master, "electing")
        ],
        [1.0, 0.0, 0.0]
    );
    assert_eq!(master["memcacheq_replication_sites_connected"], 1.0);
    assert_eq!(master["memcacheq_replication_perm_failed_total"], 0.0);
    assert_eq!(
        master["memcacheq_queue_messages_ready{queue=\"jobs\"}"],
        1.0
    );
    assert_eq!(
        master["memcacheq_refused_total{reason=\"not_master\"}"],
        0.0
    );

    let replica = page_of(1);
    assert_eq!(
        [
            role(&replica, "master"),
            role(&replica, "replica"),
            role(&replica, "electing")
        ],
        [0.0, 1.0, 0.0]
    );
    assert_eq!(replica["memcacheq_replication_sites_connected"], 1.0);
    assert_eq!(
        replica["memcacheq_refused_total{reason=\"not_master\"}"],
        1.0
    );
    // A replica opens its queues only for the turn that reads them.
    assert!(!replica.keys().any(|k| k.starts_with("memcacheq_queue_")));
}
