//! A replication group of real servers on loopback (--rep-*, README
//! "Replication"): three sites with their own homes and ports, a master
//! elected among them, replicas that serve reads and refuse changes, and
//! failover when the master is killed or frozen.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long a group may take to agree on a master (the bound).
const ELECTION_BOUND: Duration = Duration::from_secs(10);

/// A free TCP port for a site's replication address. Ports are handed out
/// from a range of this test process's own (test binaries run one at a
/// time), skipping any that is taken.
fn rep_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 200) as u16 * 100;
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
}

impl Group {
    /// `n` sites, each with `extra` flags; the first creates the group and
    /// is its first master.
    fn start(n: usize, extra: &[&str]) -> Group {
        let mut group = Group {
            sites: Vec::new(),
            creator: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
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
                .map(|&i| (i, replication_stats(self, i)))
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
            assert!(
                Instant::now() < deadline,
                "no single master within {ELECTION_BOUND:?}: {last:?}"
            );
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
