//! Shared helpers for the integration tests.
//!
//! - [`TempDir`] / [`Home`]: a private directory per test, removed on drop;
//!   the server's home is `<dir>/home`, so anything that escapes the home
//!   lands in `<dir>` where a test can see it.
//! - [`Server`]: starts the real `memcacheq` binary on port 0, reads the
//!   port back, waits
//!   until it accepts, stops it with SIGTERM (graceful) or SIGKILL (crash).
//! - [`Client`]: a raw TCP client that sends bytes and reads replies with a
//!   timeout, plus small typed helpers (`set`, `get`, `stats`, ...).
//! - [`db_tool`] and [`dump_lines`]: Debian's `db5.3_*` utilities.
//! - [`start`]: a fresh home and a server on it, in one call.
//! - [`fixtures`]: the MemcacheQ 0.2.1 homes of tests/fixtures, unpacked,
//!   and what they hold.
//! - [`daemon`]: the init-script way of starting the server (`-d -P`), for
//!   tests that check the process from outside.

#![allow(dead_code)]
// Signals, rlimits, waitpid and getpwnam need libc.
#![allow(unsafe_code)]

pub mod binary_frames;
pub mod daemon;
pub mod fixtures;
pub mod metrics_page;

// The fixture helpers are part of `common::*`, as ORIGINAL_QUEUE_STATS
// always was; a test crate that uses none of them would otherwise warn.
#[allow(unused_imports)]
pub use fixtures::*;

use proptest::test_runner::{Config, RngSeed, TestRunner};
use std::collections::HashSet;
use std::env;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a test waits for any single reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the server may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a graceful stop (checkpoint, close) may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The exact error replies the tests expect.
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
pub const ERROR: &[u8] = b"ERROR\r\n";
pub const STORED: &[u8] = b"STORED\r\n";
pub const END: &[u8] = b"END\r\n";
pub const VERSION: &[u8] = b"VERSION 0.2.1\r\n";

/// Bytes shown with non-printable characters escaped, for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// A directory under the system temp dir, unique to this process and call,
/// removed with everything in it when dropped.
pub struct TempDir {
    /// Absolute path of the directory.
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("mcq-test-{tag}-{}-{n}-{nanos}", std::process::id());
        let path = env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A server home inside its own temp dir. Declare it before the [`Server`]
/// so the server is stopped before the directory is removed.
pub struct Home {
    /// Owns the parent directory; everything is removed on drop.
    dir: TempDir,
    /// The directory passed to `-H`.
    pub path: PathBuf,
}

impl Home {
    /// An empty home `<tempdir>/home`.
    pub fn new() -> Home {
        let dir = TempDir::new("home");
        let path = dir.path().join("home");
        fs::create_dir(&path).expect("create home");
        Home { dir, path }
    }

    /// A home at `rel` inside an existing temp dir (e.g. an unpacked archive).
    pub fn inside(dir: TempDir, rel: &str) -> Home {
        let path = dir.path().join(rel);
        assert!(path.is_dir(), "{} is not a directory", path.display());
        Home { dir, path }
    }

    /// The directory that contains the home.
    pub fn parent(&self) -> &Path {
        self.dir.path()
    }

    /// Starts a server on this home with `extra` flags.
    pub fn start(&self, extra: &[&str]) -> Server {
        Server::start(&self.path, extra)
    }

    /// Sorted names of the entries directly in the home.
    pub fn files(&self) -> Vec<String> {
        list_dir(&self.path)
    }

    /// The home's path as a command-line argument (`-h` of the db tools).
    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 home")
    }
}

/// A server on a fresh home. Bind as `let (_home, server)` (or
/// `(home, server)`): locals drop in reverse order, so the server stops
/// before its home is removed.
///
/// With `MEMCACHEQ_TEST_ADDR=host:port` the server is instead the one
/// already running there (MemcacheQ 0.2.1, say, to see where we differ),
/// emptied of every queue first, and `extra` is not applied: run such a
/// suite with `--test-threads=1`. Tests that restart the server or read
/// its files use [`Home::start`] and always start their own.
pub fn start(extra: &[&str]) -> (Home, Server) {
    let home = Home::new();
    let server = match external_server() {
        Some(addr) => Server::external(addr),
        None => home.start(extra),
    };
    (home, server)
}

/// The server named by `MEMCACHEQ_TEST_ADDR`, if any.
fn external_server() -> Option<SocketAddr> {
    let addr = env::var("MEMCACHEQ_TEST_ADDR").ok()?;
    let resolved = addr.to_socket_addrs().ok().and_then(|mut a| a.next());
    Some(resolved.unwrap_or_else(|| panic!("MEMCACHEQ_TEST_ADDR={addr} is not host:port")))
}

/// The host test clients connect to: `MEMCACHEQ_TEST_ADDR`'s, else
/// loopback.
fn server_ip() -> IpAddr {
    external_server().map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip())
}

/// Sorted names of the entries directly in `dir`.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The TCP ports process `pid` listens on: its socket descriptors matched
/// against the LISTEN rows of /proc/net/tcp and tcp6. Servers in tests are
/// started on `-p 0` and found this way, so no port is ever picked by
/// binding and releasing it (a race with every other process).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    const LISTEN: &str = "0A";
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: HashSet<String> = fds
        .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut ports: Vec<u16> = ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|row| {
                    let cols: Vec<&str> = row.split_whitespace().collect();
                    if cols.len() < 10 || cols[3] != LISTEN || !inodes.contains(cols[9]) {
                        return None;
                    }
                    let (_, port) = cols[1].rsplit_once(':')?;
                    u16::from_str_radix(port, 16).ok()
                })
                .collect::<Vec<u16>>()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits up to `wait` for process `pid` to listen on a TCP port `accept`s;
/// returns it.
pub fn wait_for_listening_port(
    pid: u32,
    wait: Duration,
    accept: impl Fn(u16) -> bool,
) -> Option<u16> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(port) = listening_ports(pid).into_iter().find(|&p| accept(p)) {
            return Some(port);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `RssAnon` of process `pid`, in kB: its anonymous memory (the Berkeley
/// DB cache is a file mapping and does not count).
pub fn anonymous_kb(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc status")
}

/// `bytes` split where each of `cuts` says, as a fraction of its length
/// (`cut / scale`); the pieces, in order, none empty unless `bytes` is.
/// How the tests choose random write boundaries.
pub fn split_at_fractions<'a>(bytes: &'a [u8], cuts: &[u16], scale: usize) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| bytes.len() * usize::from(c) / scale)
        .filter(|&n| n > 0 && n < bytes.len())
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for n in at {
        out.push(&bytes[start..n]);
        start = n;
    }
    out.push(&bytes[start..]);
    out
}

/// The number in environment variable `name`, else `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A proptest runner for `cases` random inputs, from the seed in
/// environment variable `seed_var` or else a new one; returns the seed,
/// to be printed with any failure so that the run can be replayed.
pub fn seeded_runner(seed_var: &str, cases: u32, shrink_iters: u32) -> (TestRunner, u64) {
    let fresh = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seed = env_number(seed_var, fresh);
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: shrink_iters,
        ..Config::default()
    };
    (TestRunner::new(config), seed)
}

/// `-t N` when `MEMCACHEQ_TEST_THREADS=N` asks every server of the suite
/// for N threads and `args` does not choose (scripts/test runs the suite
/// with the default and with `-t 1`).
pub fn test_threads(args: &[&str]) -> Vec<String> {
    match env::var("MEMCACHEQ_TEST_THREADS") {
        Ok(n) if !args.contains(&"-t") => vec!["-t".to_string(), n],
        _ => Vec::new(),
    }
}

/// The `memcacheq` binary under test.
pub fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_memcacheq")
}

/// A resource limit to set in a started process before it executes the
/// binary: (resource, soft, hard).
pub type Limit = (libc::__rlimit_resource_t, libc::rlim_t, libc::rlim_t);

/// Makes `cmd` set each `(resource, soft, hard)` of `limits` in the child
/// before it executes the program (as `ulimit` in a shell would).
pub fn set_limits(cmd: &mut Command, limits: &[Limit]) {
    if limits.is_empty() {
        return;
    }
    let limits = limits.to_vec();
    // SAFETY: setrlimit is async-signal-safe; the closure only reads its
    // own copy of the limits.
    unsafe {
        cmd.pre_exec(move || {
            for &(resource, soft, hard) in &limits {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Whether the server on 127.0.0.1:`port` reports `STAT pid <pid>`.
fn answers_as(port: u16, pid: u32) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"stats\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => reply.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
    let expected = format!("STAT pid {pid}\r\n");
    String::from_utf8_lossy(&reply).contains(&expected)
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and has no memory effects here.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Makes the next close of `stream` abortive (RST instead of FIN).
pub fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the lifetime of `stream`, and the option
    // value is a properly sized `linger` struct living on the stack.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
}

/// A running `memcacheq` process. Dropping it kills the process (SIGKILL).
pub struct Server {
    /// The process; `None` once stopped.
    child: Option<Child>,
    /// The TCP port it listens on.
    pub port: u16,
    /// Its home directory (-H).
    pub home: PathBuf,
    /// Everything it wrote to stdout and stderr so far.
    output: Arc<Mutex<Vec<u8>>>,
    /// Threads copying the process's stdout and stderr into `output`.
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Runs `memcacheq -H <home> -p 0 -u root <extra>` and waits until
    /// it accepts TCP connections. Panics with its output if it exits first.
    pub fn start(home: &Path, extra: &[&str]) -> Server {
        Server::start_with_limits(home, extra, &[])
    }

    /// [`Server::start`] with the resource `limits` set in the process
    /// before it executes (e.g. a small `RLIMIT_NOFILE`). The server gets
    /// `-p 0` and the port the kernel gave it is read back.
    pub fn start_with_limits(home: &Path, extra: &[&str], limits: &[Limit]) -> Server {
        let mut cmd = Command::new(server_binary());
        cmd.arg("-H")
            .arg(home)
            .args(["-p", "0", "-u", "root"])
            .args(test_threads(extra))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        set_limits(&mut cmd, limits);
        let mut child = cmd.spawn().expect("spawn memcacheq");
        let output = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            copy_into(child.stdout.take().expect("stdout"), output.clone()),
            copy_into(child.stderr.take().expect("stderr"), output.clone()),
        ];
        let mut server = Server {
            child: Some(child),
            port: 0,
            home: home.to_path_buf(),
            output,
            readers,
        };
        let pid = server.pid();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.try_wait() {
                server.join_readers();
                panic!(
                    "memcacheq -H {} {} exited before accepting connections; output:\n{}\n[exit status: {status}]",
                    home.display(),
                    extra.join(" "),
                    server.output()
                );
            }
            let poll = Duration::from_millis(20);
            if let Some(port) = wait_for_listening_port(pid, poll, |p| answers_as(p, pid)) {
                server.port = port;
                return server;
            }
            if Instant::now() > deadline {
                let out = server.output();
                drop(server);
                panic!("memcacheq did not accept within {START_TIMEOUT:?}; output:\n{out}");
            }
        }
    }

    /// The server already running at `addr` (`MEMCACHEQ_TEST_ADDR`), with
    /// every queue deleted, as a fresh home would have none. Stopping it
    /// or dropping it leaves it running.
    fn external(addr: SocketAddr) -> Server {
        let server = Server {
            child: None,
            port: addr.port(),
            home: PathBuf::new(),
            output: Arc::new(Mutex::new(Vec::new())),
            readers: Vec::new(),
        };
        let mut c = server.client();
        c.send(b"stats queue\r\n");
        let listing = String::from_utf8_lossy(&c.read_until(END)).into_owned();
        for line in listing.lines() {
            if let Some(name) = line.strip_prefix("STAT ").and_then(|l| l.split(' ').next()) {
                c.send(format!("delete {name}\r\n").as_bytes());
                c.read_line();
            }
        }
        server
    }

    /// Whether this is a server the test did not start.
    fn is_external(&self) -> bool {
        self.child.is_none() && self.readers.is_empty()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// What the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        let out = self.output.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A new raw client connected to the server.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// `Some(status)` if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .map(|c| c.try_wait().expect("try_wait"))
            .unwrap_or(None)
    }

    /// Panics (with the server output) unless the process is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_wait() {
            self.join_readers();
            panic!("memcacheq exited ({status}); output:\n{}", self.output());
        }
    }

    /// Graceful stop: SIGTERM, then wait for a successful exit.
    pub fn stop(mut self) {
        if self.is_external() {
            return;
        }
        signal(self.pid(), libc::SIGTERM);
        let status = self.wait(STOP_TIMEOUT);
        assert!(
            status.success(),
            "memcacheq did not exit cleanly after SIGTERM: {status}; output:\n{}",
            self.output()
        );
    }

    /// Crash: SIGKILL and reap the process.
    pub fn kill9(mut self) {
        signal(self.pid(), libc::SIGKILL);
        self.wait(STOP_TIMEOUT);
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                self.child = None;
                self.join_readers();
                return status;
            }
            if Instant::now() > deadline {
                let out = self.output();
                panic!("memcacheq still running after {limit:?}; output:\n{out}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A thread that appends everything read from `from` to `into`.
fn copy_into(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    })
}

/// One message as `get` returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The flags exactly as the server printed them.
    pub flags: String,
    /// The message body.
    pub body: Vec<u8>,
}

/// A raw protocol client. Reads go through a buffer so several replies that
/// arrive in one segment are split correctly.
pub struct Client {
    /// The connection.
    pub stream: TcpStream,
    /// Bytes received but not yet handed to the test.
    buf: Vec<u8>,
    /// Set once the server closed the connection (EOF or reset).
    closed: bool,
}

impl Client {
    /// Connects to `port` of the server's host (loopback, unless
    /// `MEMCACHEQ_TEST_ADDR` names another).
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect((server_ip(), port)).expect("connect to memcacheq");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to memcacheq");
    }

    /// Reads one more chunk into the buffer. Returns false on EOF, reset or
    /// timeout.
    fn fill(&mut self) -> bool {
        if self.closed {
            return false;
        }
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Up to `n` bytes; fewer only if the server closed or went quiet.
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n && self.fill() {}
        let take = n.min(self.buf.len());
        self.buf.drain(..take).collect()
    }

    /// Reads exactly `expected.len()` bytes and asserts they equal `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_n(expected.len());
        assert_eq!(show(&got), show(expected), "unexpected reply bytes");
    }

    /// Sends `request` and asserts the reply is exactly `expected`.
    pub fn call(&mut self, request: &[u8], expected: &[u8]) {
        self.send(request);
        self.expect(expected);
    }

    /// Reads through the first occurrence of `term` and returns it all.
    pub fn read_until(&mut self, term: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = find(&self.buf, term) {
                return self.buf.drain(..i + term.len()).collect();
            }
            if !self.fill() {
                panic!(
                    "no {} from memcacheq (closed: {}); got so far: {}",
                    show(term),
                    self.closed,
                    show(&self.buf)
                );
            }
        }
    }

    /// One reply line without its `\r\n`, or `None` if the connection
    /// closed or went quiet first.
    pub fn try_read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..i + 2).collect();
                line.truncate(i);
                return Some(line);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// One reply line without its `\r\n`.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = self.read_until(b"\r\n");
        line.truncate(line.len() - 2);
        line
    }

    /// Asserts the server closes the connection without sending anything more.
    pub fn expect_closed(&mut self) {
        while self.fill() {}
        assert!(
            self.closed,
            "connection still open; pending: {}",
            show(&self.buf)
        );
        assert_eq!(show(&self.buf), "", "bytes before the close");
    }

    /// Asserts nothing arrives within `wait` and the connection stays open.
    pub fn expect_silence(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let more = self.fill();
        self.stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        assert!(
            !more && !self.closed,
            "unexpected: {} (closed: {})",
            show(&self.buf),
            self.closed
        );
    }

    /// Closes our sending side (the server sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// `set <queue> <flags> 0 <len>` and asserts `STORED`.
    pub fn set(&mut self, queue: impl AsRef<[u8]>, flags: u32, body: &[u8]) {
        self.send(&set_cmd(queue.as_ref(), flags, body));
        self.expect(STORED);
    }

    /// `get <queue>`: the message, or `None` on a bare `END`.
    pub fn get(&mut self, queue: impl AsRef<[u8]>) -> Option<Message> {
        let queue = queue.as_ref();
        let mut cmd = b"get ".to_vec();
        cmd.extend_from_slice(queue);
        cmd.extend_from_slice(b"\r\n");
        self.send(&cmd);
        let msg = self.read_value(queue);
        if msg.is_some() {
            self.expect(END);
        }
        msg
    }

    /// Reads one `VALUE <queue> ...` block, or `None` if the next line is `END`.
    pub fn read_value(&mut self, queue: &[u8]) -> Option<Message> {
        let line = self.read_line();
        if line == b"END" {
            return None;
        }
        let mut prefix = b"VALUE ".to_vec();
        prefix.extend_from_slice(queue);
        prefix.push(b' ');
        assert!(
            line.starts_with(&prefix),
            "expected {}..., got {}",
            show(&prefix),
            show(&line)
        );
        let rest = String::from_utf8(line[prefix.len()..].to_vec()).expect("ascii VALUE line");
        let (flags, len) = rest.split_once(' ').expect("VALUE <q> <flags> <bytes>");
        let len: usize = len.parse().expect("VALUE length");
        let mut body = self.read_n(len + 2);
        assert_eq!(body.len(), len + 2, "short VALUE body: {}", show(&body));
        assert_eq!(show(&body[len..]), "\\r\\n", "body not followed by \\r\\n");
        body.truncate(len);
        Some(Message {
            flags: flags.to_string(),
            body,
        })
    }

    /// Every message left in `queue`, oldest first (gets until `END`).
    pub fn drain(&mut self, queue: &str) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.get(queue) {
            out.push(m);
        }
        out
    }

    /// `stats` as (name, value) pairs in the order the server sent them.
    pub fn stats(&mut self) -> Vec<(String, String)> {
        self.send(b"stats\r\n");
        stat_pairs(&self.read_until(b"END\r\n"))
    }

    /// One named `stats` value, parsed as a number.
    pub fn stat(&mut self, name: &str) -> u64 {
        let stats = self.stats();
        let (_, value) = stats
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no STAT {name} in {stats:?}"));
        value
            .parse()
            .unwrap_or_else(|_| panic!("STAT {name} {value}"))
    }

    /// `stats queue` as the sorted set of its lines without `\r\n`.
    pub fn queue_stats(&mut self) -> Vec<String> {
        self.send(b"stats queue\r\n");
        queue_lines(&self.read_until(b"END\r\n"))
    }
}

/// The lines of a `stats queue` reply, sorted, without `END`.
pub fn queue_lines(reply: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(reply);
    assert!(text.ends_with("END\r\n"), "stats queue reply: {text:?}");
    let mut lines: Vec<String> = text
        .split_terminator("\r\n")
        .filter(|l| *l != "END")
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Parses `STAT <name> <value>` lines ending with `END`.
pub fn stat_pairs(reply: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8(reply.to_vec()).expect("ascii stats");
    let mut lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(lines.pop(), Some("END"), "stats reply: {text:?}");
    lines
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("STAT ")
                .unwrap_or_else(|| panic!("line {l:?}"));
            let (n, v) = rest.split_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            (n.to_string(), v.to_string())
        })
        .collect()
}

/// The bytes of `set <queue> <flags> 0 <len>\r\n<body>\r\n`.
pub fn set_cmd(queue: &[u8], flags: u32, body: &[u8]) -> Vec<u8> {
    let mut cmd = b"set ".to_vec();
    cmd.extend_from_slice(queue);
    cmd.extend_from_slice(format!(" {flags} 0 {}\r\n", body.len()).as_bytes());
    cmd.extend_from_slice(body);
    cmd.extend_from_slice(b"\r\n");
    cmd
}

/// The exact reply to `get` of one message.
pub fn value_reply(queue: &[u8], flags: &str, body: &[u8]) -> Vec<u8> {
    let mut out = b"VALUE ".to_vec();
    out.extend_from_slice(queue);
    out.extend_from_slice(format!(" {flags} {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    out
}

/// Asserts each line of `want` is one of the lines of `have`, in any order
/// (e.g. a `db5.3_dump` header, or `db5.3_stat` output as `text.lines()`);
/// a failure names the missing line and shows all of `have`.
pub fn assert_has_lines<S: AsRef<str>>(have: impl IntoIterator<Item = S>, want: &[&str]) {
    let have: Vec<String> = have.into_iter().map(|l| l.as_ref().to_string()).collect();
    for line in want {
        assert!(
            have.iter().any(|l| l == line),
            "{line:?} not in:\n{}",
            have.join("\n")
        );
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a finished process printed: its stdout, then its stderr, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `db5.3_<tool> <args>`, asserts it succeeds, returns stdout + stderr.
pub fn db_tool(tool: &str, args: &[&str]) -> String {
    let name = format!("db5.3_{tool}");
    let out = Command::new(&name).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {name} ({e}): install db5.3-util, e.g. by running scripts/test")
    });
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "{name} {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

/// The data lines of `db5.3_dump -h <home> <db>` (bytevalue format),
/// decoded. For a queue each line is one record; for a btree, lines
/// alternate key and data.
pub fn dump_lines(home: &Path, db: &str) -> Vec<Vec<u8>> {
    let text = dump_text(home, db);
    let body = text
        .split_once("HEADER=END\n")
        .unwrap_or_else(|| panic!("no HEADER=END in dump:\n{text}"))
        .1;
    let body = body
        .split_once("DATA=END\n")
        .unwrap_or_else(|| panic!("no DATA=END in dump:\n{text}"))
        .0;
    body.lines().map(|l| unhex(l.trim())).collect()
}

/// The whole output of `db5.3_dump -h <home> <db>` (bytevalue format).
fn dump_text(home: &Path, db: &str) -> String {
    let home = home.to_str().expect("utf-8 home");
    db_tool("dump", &["-h", home, db])
}

/// The header lines (`key=value`) of `db5.3_dump -h <home> <db>`.
pub fn dump_header(home: &Path, db: &str) -> Vec<String> {
    let text = dump_text(home, db);
    let head = text
        .split_once("HEADER=END\n")
        .map(|(h, _)| h)
        .unwrap_or("");
    head.lines().map(str::to_string).collect()
}

/// Lower-case hex of `bytes` (as `db5.3_dump` writes data lines).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// A deterministic pseudo-random byte stream (xorshift64*), so a failing
/// garbage test can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}

/// Sockets on local port `port` in TCP state CLOSE-WAIT (the peer closed,
/// the server has not), read from /proc/net/tcp and tcp6.
pub fn close_wait_sockets(port: u16) -> usize {
    const CLOSE_WAIT: &str = "08";
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|row| {
                    let cols: Vec<&str> = row.split_whitespace().collect();
                    cols.len() > 3 && cols[1].ends_with(&local) && cols[3] == CLOSE_WAIT
                })
                .count()
        })
        .sum()
}

/// Waits up to `wait` for no socket of `port` to be left in CLOSE-WAIT;
/// returns how many still are.
pub fn settle_close_wait(port: u16, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    loop {
        let n = close_wait_sockets(port);
        if n == 0 || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP connection to `port` whose receive buffer is set to `bytes`
/// before it connects, so the window it offers stays that small.
pub fn connect_with_receive_buffer(port: u16, bytes: libc::c_int) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: socket(2) with constant arguments; the descriptor is checked
    // and then owned by the TcpStream made from it.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket");
    // SAFETY: `fd` is open; the value is a c_int on the stack of the size
    // given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `fd` is open and `addr` a sockaddr_in of the length given.
    let rc = unsafe {
        libc::connect(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect to the metrics port");
    // SAFETY: `fd` is an open, connected socket no one else owns.
    unsafe { std::net::TcpStream::from_raw_fd(fd) }
}
