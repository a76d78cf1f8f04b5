//! A full disk: the home lives on a small tmpfs that producers fill with
//! 900-byte messages. Sets must then be refused with `SERVER_ERROR` (never
//! `STORED` for a message not on disk), gets, stats and new clients keep
//! being served, SIGTERM stops the server within seconds, and once there is
//! space again every acknowledged message is still there and sets work.
//!
//! The tests mount a tmpfs (they run as root); where mounting is not
//! allowed they print why they were skipped and pass.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const MB: u64 = 1024 * 1024;
/// Size of the tmpfs while the server starts: room for its region files.
const ROOMY: u64 = 512 * MB;
/// Free space left for messages once the server runs.
const LEFT_FOR_DATA: u64 = 40 * MB;
/// Connections producing at once, each into its own queue `q<n>`.
const PRODUCERS: usize = 4;
/// Sets written per round trip by each producer.
const BATCH: usize = 16;
/// Upper bound of sets per producer; the disk fills long before.
const MAX_PER_PRODUCER: usize = 100_000;
/// Message body length.
const BODY_LEN: usize = 900;
/// How long SIGTERM may take on a full disk.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A tmpfs mounted on a fresh temp dir, unmounted when dropped. Declare it
/// before the [`Server`] so the server is gone before the unmount.
struct Tmpfs {
    /// The mount point (removed by `dir` after the unmount).
    path: PathBuf,
    /// Owns the directory holding the mount point.
    _dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes, or says why it cannot.
    fn mount(size: u64) -> Result<Tmpfs, String> {
        let dir = TempDir::new("diskfull");
        let path = dir.path().join("mnt");
        fs::create_dir(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={}k", size / 1024)])
            .arg("tmpfs")
            .arg(&path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { path, _dir: dir })
    }

    /// Sets the size limit to `size` bytes (at least what is in use).
    fn resize(&self, size: u64) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={}k", size.div_ceil(1024))])
            .arg(&self.path)
            .output()
            .expect("run mount -o remount");
        assert!(
            out.status.success(),
            "remount {} to {size} bytes: {}",
            self.path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Bytes in use on the tmpfs.
    fn used(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=used"])
            .arg(&self.path)
            .output()
            .expect("run df");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().nth(1).unwrap_or_default();
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("df output: {text:?}"))
    }

    /// Leaves `free` bytes free.
    fn leave_free(&self, free: u64) {
        self.resize(self.used() + free);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Mounts a tmpfs, or prints why the test is skipped.
fn tmpfs_or_skip(test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(ROOMY) {
        Ok(fs) => Some(fs),
        Err(reason) => {
            eprintln!("{test}: skipped: cannot mount tmpfs ({reason})");
            None
        }
    }
}

/// Body of message `i` of producer `p`: unique and 900 bytes long.
fn body(p: usize, i: usize) -> Vec<u8> {
    let mut b = format!("p{p}-m{i:08}-").into_bytes();
    b.resize(BODY_LEN, b'x');
    b
}

/// What the producers saw.
struct Produced {
    /// Bodies acknowledged with `STORED`, per producer, in order.
    acked: Vec<Vec<Vec<u8>>>,
    /// Every reply other than `STORED`.
    refusals: Vec<String>,
}

/// Runs the producers until each has a set refused; every reply must come
/// (a reply held forever fails the read with a timeout).
fn produce(server: &mut Server) -> Produced {
    let port = server.port;
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            thread::spawn(move || {
                let mut c = Client::connect(port);
                let queue = format!("q{p}");
                let mut acked = Vec::new();
                let mut refusals = Vec::new();
                let mut i = 0;
                while refusals.is_empty() && i < MAX_PER_PRODUCER {
                    let mut bytes = Vec::new();
                    for k in i..i + BATCH {
                        bytes.extend(set_cmd(queue.as_bytes(), 0, &body(p, k)));
                    }
                    c.send(&bytes);
                    for k in i..i + BATCH {
                        let line = c.read_line();
                        if line == b"STORED" {
                            acked.push(body(p, k));
                        } else {
                            refusals.push(show(&line));
                        }
                    }
                    i += BATCH;
                }
                (acked, refusals)
            })
        })
        .collect();
    let mut produced = Produced {
        acked: Vec::new(),
        refusals: Vec::new(),
    };
    for t in threads {
        let Ok((acked, refusals)) = t.join() else {
            server.assert_running();
            panic!("a producer failed; server output:\n{}", server.output());
        };
        produced.acked.push(acked);
        produced.refusals.extend(refusals);
    }
    produced
}

/// Takes one message off `q<p>` and remembers it; it must be there.
fn take_one(c: &mut Client, p: usize, delivered: &mut [Vec<Vec<u8>>]) {
    let queue = format!("q{p}");
    let m = c
        .get(&queue)
        .unwrap_or_else(|| panic!("{queue} is empty while the disk is full"));
    delivered[p].push(m.body);
}

/// A `set` that must be refused with a `SERVER_ERROR` line.
fn set_refused(c: &mut Client, what: &str) {
    c.send(&set_cmd(b"refused", 0, &body(9, 0)));
    let line = c.read_line();
    assert!(
        line.starts_with(b"SERVER_ERROR "),
        "{what}: a set got {}",
        show(&line)
    );
}

/// Stats and a new client are served, and the new client's set refused.
fn still_answering(server: &Server, c: &mut Client, what: &str) {
    assert!(c.stat("curr_connections") >= 1, "{what}: stats");
    let mut fresh = server.client();
    assert_eq!(fresh.stat("pid"), server.pid() as u64, "{what}: new client");
    set_refused(&mut fresh, what);
}

/// Every message left in `queue` (pipelined gets, 64 per write).
fn drain(c: &mut Client, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        c.send(&format!("get {queue}\r\n").repeat(64).into_bytes());
        let mut empty = false;
        for _ in 0..64 {
            match c.read_value(queue.as_bytes()) {
                Some(m) => {
                    c.expect(END);
                    out.push(m.body);
                }
                None => empty = true,
            }
        }
        if empty {
            return out;
        }
    }
}

/// Takes messages off every queue, 64 gets per write, until the queues
/// are empty or gets are refused (on a disk full to the last byte, once
/// the log needs a new file); every reply must come, and a refusal must be
/// a `SERVER_ERROR`. Returns the refusals.
fn take_until_refused(c: &mut Client, delivered: &mut [Vec<Vec<u8>>]) -> usize {
    let mut refused = 0;
    for (p, taken) in delivered.iter_mut().enumerate() {
        let queue = format!("q{p}");
        while refused == 0 {
            c.send(&format!("get {queue}\r\n").repeat(64).into_bytes());
            let mut empty = false;
            for _ in 0..64 {
                let line = c.read_line();
                if line == b"END" {
                    empty = true;
                } else if line.starts_with(b"VALUE ") {
                    let len: usize = String::from_utf8_lossy(&line)
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .expect("VALUE length");
                    let mut body = c.read_n(len + 2);
                    body.truncate(len);
                    taken.push(body);
                    c.expect(END);
                } else {
                    assert!(
                        line.starts_with(b"SERVER_ERROR "),
                        "a get got {}",
                        show(&line)
                    );
                    refused += 1;
                }
            }
            if empty {
                break;
            }
        }
    }
    refused
}

/// Stops the server with SIGTERM and asserts it took less than the limit.
fn stop_quickly(server: Server, what: &str) {
    let start = Instant::now();
    server.stop();
    let took = start.elapsed();
    assert!(took < STOP_LIMIT, "{what}: SIGTERM took {took:?}");
    eprintln!("{what}: SIGTERM took {took:?}");
}

/// Every acknowledged message is either delivered already or still queued.
fn nothing_lost(
    acked: &[Vec<Vec<u8>>],
    delivered: &[Vec<Vec<u8>>],
    drained: &HashMap<usize, Vec<Vec<u8>>>,
) {
    for (p, bodies) in acked.iter().enumerate() {
        let seen: HashSet<&Vec<u8>> = delivered[p].iter().chain(&drained[&p]).collect();
        let lost: Vec<String> = bodies
            .iter()
            .filter(|b| !seen.contains(b))
            .map(|b| show(&b[..16]))
            .collect();
        assert!(
            lost.is_empty(),
            "q{p}: {} of {} acknowledged messages lost, e.g. {:?}",
            lost.len(),
            bodies.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// The whole story in one mode (`extra` flags): fill, check, stop while
/// full, give space, restart, check nothing acknowledged was lost.
fn fill_the_disk(test: &str, extra: &[&str]) {
    let Some(fs) = tmpfs_or_skip(test) else {
        return;
    };
    let home = fs.path.join("home");
    fs::create_dir(&home).expect("create home");
    let mut server = Server::start(&home, extra);
    fs.leave_free(LEFT_FOR_DATA);

    let produced = produce(&mut server);
    let acked_total: usize = produced.acked.iter().map(Vec::len).sum();
    eprintln!(
        "{test}: {acked_total} STORED before the refusals {:?}",
        produced.refusals.iter().collect::<HashSet<_>>()
    );
    for r in &produced.refusals {
        assert!(r.starts_with("SERVER_ERROR "), "{test}: a set got {r}");
    }
    assert!(acked_total > 1000, "{test}: only {acked_total} sets stored");
    let mut acked = produced.acked;
    let mut delivered = vec![Vec::new(); PRODUCERS];

    // Full as far as the server is concerned.
    let mut c = server.client();
    for p in 0..PRODUCERS {
        take_one(&mut c, p, &mut delivered);
    }
    still_answering(&server, &mut c, "full");

    // Space comes back: sets work again without a restart.
    fs.resize(ROOMY);
    let late = body(0, MAX_PER_PRODUCER);
    c.set("q0", 0, &late);
    acked[0].push(late);

    // Full to the last byte, as when another program fills the disk.
    fs.leave_free(0);
    // Gets go on in the log file already allocated, until the log needs
    // a new one.
    still_answering(&server, &mut c, "completely full");
    let refused = take_until_refused(&mut c, &mut delivered);
    let taken: usize = delivered.iter().map(Vec::len).sum();
    eprintln!("{test}: completely full: {taken} messages taken, then {refused} gets refused");
    // The server's stderr reaches us through a reader thread: give the
    // lines a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while refused > 0
        && !server.output().contains("No space left on device")
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    let output = server.output();
    eprintln!("{test}: server errors so far:\n{output}");
    assert!(
        refused == 0 || output.contains("No space left on device"),
        "{test}: gets refused, but Berkeley DB reported no full disk"
    );
    drop(c);
    stop_quickly(server, test);

    // More space, a restart, and everything acknowledged is there.
    fs.resize(ROOMY);
    let server = Server::start(&home, extra);
    let mut c = server.client();
    let drained: HashMap<usize, Vec<Vec<u8>>> = (0..PRODUCERS)
        .map(|p| (p, drain(&mut c, &format!("q{p}"))))
        .collect();
    nothing_lost(&acked, &delivered, &drained);
    c.set("after", 0, b"space again");
    assert_eq!(
        c.get("after").map(|m| m.body),
        Some(b"space again".to_vec())
    );
    stop_quickly(server, test);
}

#[test]
fn full_disk_refuses_sets_and_loses_nothing() {
    fill_the_disk("full_disk_refuses_sets_and_loses_nothing", &[]);
}

#[test]
fn full_disk_with_nosync_loses_nothing_on_a_clean_stop() {
    fill_the_disk(
        "full_disk_with_nosync_loses_nothing_on_a_clean_stop",
        &["-N"],
    );
}

/// When Berkeley DB says the environment needs recovery (here another
/// process panics it, as a failed write can), the server exits with a
/// failure and says why; the restart runs recovery and serves what was
/// stored.
#[test]
fn environment_needing_recovery_ends_the_server_with_a_failure() {
    let home = Home::new();
    let mut server = home.start(&[]);
    let mut c = server.client();
    c.set("jobs", 0, b"kept");
    let env =
        memcacheq::bdb::Env::join(&home.path, c"disk_full test").expect("join the environment");
    env.panic().expect("panic the environment");
    drop(env);
    let deadline = Instant::now() + STOP_LIMIT;
    let status = loop {
        if let Some(status) = server.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the panic:\n{}",
            server.output()
        );
        thread::sleep(Duration::from_millis(20));
    };
    let output = server.output();
    eprintln!("after the panic ({status}):\n{output}");
    assert!(!status.success(), "exit status {status}; output:\n{output}");
    assert!(output.contains("needs recovery"), "output:\n{output}");
    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(c.get("jobs").map(|m| m.body), Some(b"kept".to_vec()));
    server.stop();
}

/// Issue 20: what reliable reads write is charged to the disk budget like
/// a set. Near a full disk, a message due for its dead-letter queue is not
/// moved (whether `<q>.dead` is missing or there), and the first `/open`
/// on a home without `queue.deliveries` does not create it: each such get
/// is refused with `SERVER_ERROR out of disk space` and takes nothing, the
/// other commands of its write are served, and once there is space the
/// messages move and open as usual.
#[test]
fn reliable_reads_near_a_full_disk_are_refused_and_move_nothing() {
    let test = "reliable_reads_near_a_full_disk";
    let Some(fs) = tmpfs_or_skip(test) else {
        return;
    };
    let flags = ["--max-deliveries", "1"];
    let (home, fresh_home) = (fs.path.join("home"), fs.path.join("fresh"));
    fs::create_dir(&home).expect("create home");
    fs::create_dir(&fresh_home).expect("create home");
    let server = Server::start(&home, &flags);
    let fresh = Server::start(&fresh_home, &flags);
    let mut c = server.client();
    for (q, bodies) in [("q1", ["m1", "m2"]), ("q2", ["n1", "n2"])] {
        for body in bodies {
            c.set(q, 0, body.as_bytes());
        }
    }
    c.set("other", 0, b"o1");
    // q2: n1 is opened, given back, and moved to q2.dead by the next
    // /open, which hands out n2; n2 is given back too.
    c.call(
        b"get q2/open\r\n",
        &[&value_reply(b"q2/open", "0", b"n1")[..], END].concat(),
    );
    c.call(b"get q2/abort\r\n", END);
    c.call(
        b"get q2/open\r\n",
        &[&value_reply(b"q2/open", "0", b"n2")[..], END].concat(),
    );
    c.call(b"get q2/abort\r\n", END);
    // q1: m1 is due, and q1.dead does not exist.
    c.call(
        b"get q1/open\r\n",
        &[&value_reply(b"q1/open", "0", b"m1")[..], END].concat(),
    );
    c.call(b"get q1/abort\r\n", END);
    let mut f = fresh.client();
    f.set("r", 0, b"r1");
    assert!(!fresh_home.join("queue.deliveries").exists());

    fs.leave_free(256 * 1024);
    let no_space = b"SERVER_ERROR out of disk space\r\n";
    c.call(
        b"get q1/open\r\nget q2/open\r\nget other\r\n",
        &[
            no_space,
            no_space,
            &value_reply(b"other", "0", b"o1")[..],
            END,
        ]
        .concat(),
    );
    f.call(b"get r/open\r\n", no_space);
    assert!(!fresh_home.join("queue.deliveries").exists());
    c.call(
        b"stats queue\r\n",
        b"STAT other 1/1\r\nSTAT q1 2/0\r\nSTAT q2 2/1\r\nSTAT q2.dead 1/0\r\nEND\r\n",
    );

    fs.resize(ROOMY);
    c.call(
        b"get q1/open\r\n",
        &[&value_reply(b"q1/open", "0", b"m2")[..], END].concat(),
    );
    c.call(
        b"get q1.dead q2/open q2.dead q2.dead\r\n",
        &[
            &value_reply(b"q1.dead", "0", b"m1")[..],
            &value_reply(b"q2.dead", "0", b"n1"),
            &value_reply(b"q2.dead", "0", b"n2"),
            END,
        ]
        .concat(),
    );
    f.call(
        b"get r/open\r\n",
        &[&value_reply(b"r/open", "0", b"r1")[..], END].concat(),
    );
    drop((c, f));
    stop_quickly(fresh, test);
    stop_quickly(server, test);
}
