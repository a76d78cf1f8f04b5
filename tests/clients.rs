//! Real memcache client libraries talk to the server unchanged, with their
//! default settings: Python's pymemcache and python-memcached, PHP's
//! memcache extension and Go's gomemcache. `scripts/test` installs all of
//! them; when one is missing these tests fail and say so.
//!
//! What the clients send beyond `set`/`get`/`delete` (issue 7):
//! - pymemcache sends `set ... noreply` and `delete ... noreply` by default
//!   and reads no reply; the server must send none.
//! - `add`/`replace`/`append`/`prepend`/`cas` are not queue operations: the
//!   server reads and discards their data block and answers one `ERROR`
//!   (nothing with `noreply`), so the client can go on on the same
//!   connection and nothing is stored.
//! - gomemcache's `Get` sends `gets`, which takes a message like `get` and
//!   adds the record number as the cas value.
//!
//! And the clients of the other two protocols (issue 17), each through 100
//! messages in order, an unsupported command in the middle that leaves it
//! in step, a reliable read, its multi-get and its stats where it has them:
//! Ruby's dalli 3.0 and node's memjs (binary), python-binary-memcached
//! (binary) and meta-memcache (meta commands).

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// The Python that has the Python clients: `$MEMCACHEQ_TEST_PYTHON`
/// (exported by scripts/test), else `python3` from PATH.
fn python() -> String {
    std::env::var("MEMCACHEQ_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// What to do when a Python client is missing.
const PY_HINT: &str = "run scripts/test, which installs pymemcache and python-memcached \
                       and exports MEMCACHEQ_TEST_PYTHON";

/// What to do when PHP or its memcache extension is missing.
const PHP_HINT: &str = "run scripts/test, which installs php-cli and php-memcache";

/// What to do when Go or gomemcache is missing.
const GO_HINT: &str = "run scripts/test, which installs golang-go and \
                       golang-github-bradfitz-gomemcache-dev";

/// Where Debian's golang-github-bradfitz-gomemcache-dev puts its sources:
/// a GOPATH whose `src/` holds `github.com/bradfitz/gomemcache`.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// Runs `program args`, failing the test with an installation hint if the
/// program cannot be started.
fn run(program: &str, args: &[&str], hint: &str) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); {hint}"))
}

/// Asserts `out` succeeded and its stdout lines equal `want`; a mismatch
/// names the first line that differs.
fn assert_lines<S: AsRef<str>>(out: &Output, want: &[S]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let got: Vec<&str> = stdout.lines().collect();
    let want: Vec<&str> = want.iter().map(AsRef::as_ref).collect();
    if got != want {
        let n = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
        panic!(
            "client output differs at line {}: got {:?}, want {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            n + 1,
            got.get(n),
            want.get(n)
        );
    }
}

/// The Python from [`python`], after checking it can import `module`.
fn python_with(module: &str) -> String {
    let python = python();
    let check = run(&python, &["-c", &format!("import {module}")], PY_HINT);
    assert!(
        check.status.success(),
        "{module} is not importable by {python}: {}; {PY_HINT}",
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

/// Checks that `php` runs and has the memcache extension.
fn require_php_memcache() {
    let check = run(
        "php",
        &["-r", "exit(extension_loaded('memcache') ? 0 : 3);"],
        PHP_HINT,
    );
    assert!(
        check.status.success(),
        "PHP's memcache extension is not loaded; {PHP_HINT}"
    );
}

/// The body of message `i` in the 100-message sessions (the scripts format
/// it the same way).
fn body(i: usize) -> String {
    format!("message {i:03}")
}

/// The pymemcache session with pymemcache's defaults (`default_noreply` is
/// True, so `set` and `delete` send `noreply` and return True unread).
const PY_SCRIPT: &str = r#"
import sys
from pymemcache.client.base import Client
c = Client(("127.0.0.1", int(sys.argv[1])), connect_timeout=10, timeout=10)
print(repr(c.version()))
print(c.set("jobs", b"hello"))
print(c.set("jobs", b"world"))
print(repr(c.get("jobs")))
print(repr(c.get("jobs")))
print(repr(c.get("jobs")))
print(c.set("a", b"1"), c.set("b", b"\x00\r\n2"))
print(sorted(c.get_many(["a", "missing", "b"]).items()))
print(sorted(c.stats("queue").items()))
print(c.delete("a"), c.delete("a"))
print(sorted(c.stats("queue").items()))
"#;

/// pymemcache, default settings, sets and gets through the server: each get
/// takes the oldest message, an empty queue reads as None, multi-get, stats
/// and delete work.
#[test]
fn pymemcache_sets_and_gets() {
    let python = python_with("pymemcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_SCRIPT, &port], PY_HINT);
    assert_lines(
        &out,
        &[
            "b'0.2.1'",
            "True",
            "True",
            "b'hello'",
            "b'world'",
            "None",
            "True True",
            r"[('a', b'1'), ('b', b'\x00\r\n2')]",
            "[(b'a', b'1/1'), (b'b', b'1/1'), (b'jobs', b'2/2')]",
            // `delete ... noreply` returns True without reading a reply, so
            // the second delete of the same queue is True too (it was
            // False with default_noreply=False); the stats below show the
            // first one took effect.
            "True True",
            "[(b'b', b'1/1'), (b'jobs', b'2/2')]",
        ],
    );
}

/// pymemcache defaults around an `add`: 50 noreply sets, an `add` with
/// noreply (True, unread), an `add` that waits for the reply (`NOT_STORED`:
/// False), 50 more sets, 100 gets, one get too many, and a noreply delete.
const PY_NOREPLY_ADD_SCRIPT: &str = r#"
import sys
from pymemcache.client.base import Client
c = Client(("127.0.0.1", int(sys.argv[1])), connect_timeout=10, timeout=10)
def body(i):
    return b"message %03d" % i
print("set", [c.set("jobs", body(i)) for i in range(50)].count(True))
print("add", c.add("jobs", b"x"))
try:
    print("add noreply=False returned", c.add("jobs", b"y", noreply=False))
except Exception as e:
    print("add noreply=False raised", type(e).__name__)
print("set", [c.set("jobs", body(i)) for i in range(50, 100)].count(True))
for i in range(100):
    print(repr(c.get("jobs")))
print(repr(c.get("jobs")))
print(c.stats("queue")[b"jobs"])
print("delete", c.delete("jobs"))
print("jobs listed", b"jobs" in c.stats("queue"))
"#;

/// pymemcache with its defaults: `set ... noreply` stores without a reply,
/// `add` (noreply or not) stores nothing and leaves the connection usable,
/// the 100 messages come back in order and nothing else, and a noreply
/// `delete` removes the queue.
#[test]
fn pymemcache_default_noreply_and_add() {
    let python = python_with("pymemcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_NOREPLY_ADD_SCRIPT, &port], PY_HINT);
    let mut want = vec![
        "set 50".to_string(),
        "add True".to_string(),
        "add noreply=False returned False".to_string(),
        "set 50".to_string(),
    ];
    want.extend((0..100).map(|i| format!("b'{}'", body(i))));
    want.extend([
        "None".to_string(),
        "b'100/100'".to_string(),
        "delete True".to_string(),
        "jobs listed False".to_string(),
    ]);
    assert_lines(&out, &want);
}

/// pymemcache's `gets` and `gets_many` (defaults, so the sets are noreply).
const PY_GETS_SCRIPT: &str = r#"
import sys
from pymemcache.client.base import Client
c = Client(("127.0.0.1", int(sys.argv[1])), connect_timeout=10, timeout=10)
c.set("q", b"first")
c.set("q", b"second")
print(c.gets("q"))
print(c.gets("q"))
print(c.gets("q"))
c.set("a", b"1")
c.set("b", b"2")
c.set("b", b"3")
print(sorted(c.gets_many(["a", "missing", "b"]).items()))
print(sorted(c.stats("queue").items()))
"#;

/// `gets` takes the oldest message like `get`, with its record number as the
/// cas value; an empty queue gives pymemcache's (None, None).
#[test]
fn pymemcache_gets_takes_messages_with_cas() {
    let python = python_with("pymemcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_GETS_SCRIPT, &port], PY_HINT);
    assert_lines(
        &out,
        &[
            "(b'first', b'1')",
            "(b'second', b'2')",
            "(None, None)",
            "[('a', (b'1', b'1')), ('b', (b'2', b'1'))]",
            "[(b'a', b'1/1'), (b'b', b'2/1'), (b'q', b'2/2')]",
        ],
    );
}

/// python-memcached (module `memcache`) with its defaults: plain sets, gets,
/// multi-get and delete. `debug=1` only logs unexpected replies to stderr.
const PY_MEMCACHED_SCRIPT: &str = r#"
import sys, memcache
mc = memcache.Client(["127.0.0.1:" + sys.argv[1]], debug=1, socket_timeout=10)
print("set", [mc.set("jobs", "message %03d" % i) for i in range(100)].count(True))
for i in range(100):
    print(repr(mc.get("jobs")))
print(repr(mc.get("jobs")))
print(mc.set("a", "1"), mc.set("a", "2"), mc.set("b", b"3"))
print(sorted(mc.get_multi(["a", "missing", "b"]).items()))
print(mc.delete("a"))
print(repr(mc.get("a")))
"#;

/// python-memcached sets and gets through the server: 100 messages in order,
/// then None; multi-get takes one message per queue; delete drops the queue
/// with the message still in it. (What `delete` of a missing key returns
/// differs between python-memcached releases, so it is not printed.)
#[test]
fn python_memcached_sets_and_gets() {
    let python = python_with("memcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_MEMCACHED_SCRIPT, &port], PY_HINT);
    let mut want = vec!["set 100".to_string()];
    want.extend((0..100).map(|i| format!("'{}'", body(i))));
    want.extend([
        "None".to_string(),
        "True True True".to_string(),
        "[('a', '1'), ('b', b'3')]".to_string(),
        "1".to_string(),
        "None".to_string(),
    ]);
    assert_lines(&out, &want);
}

/// python-memcached with an `add` between two runs of 50 sets.
const PY_MEMCACHED_ADD_SCRIPT: &str = r#"
import sys, memcache
mc = memcache.Client(["127.0.0.1:" + sys.argv[1]], debug=1, socket_timeout=10)
print("set", [mc.set("jobs", "message %03d" % i) for i in range(50)].count(True))
print("add", repr(mc.add("jobs", "x")))
print("set", [mc.set("jobs", "message %03d" % i) for i in range(50, 100)].count(True))
for i in range(100):
    print(repr(mc.get("jobs")))
print(repr(mc.get("jobs")))
print("delete", mc.delete("jobs"))
"#;

/// python-memcached's `add` gets a falsy answer, stores nothing, and the
/// sets after it and all 100 gets still work on the same connection.
#[test]
fn python_memcached_add_stores_nothing() {
    let python = python_with("memcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_MEMCACHED_ADD_SCRIPT, &port], PY_HINT);
    let mut want = vec![
        "set 50".to_string(),
        "add False".to_string(),
        "set 50".to_string(),
    ];
    want.extend((0..100).map(|i| format!("'{}'", body(i))));
    want.extend(["None".to_string(), "delete 1".to_string()]);
    assert_lines(&out, &want);
}

/// The PHP session, printing each result as JSON.
const PHP_SCRIPT: &str = r#"
$m = new Memcache;
if (!$m->connect('127.0.0.1', (int)$argv[1], 10)) { echo "connect failed\n"; exit(1); }
$p = function ($v) { echo json_encode($v), "\n"; };
$p($m->getVersion());
$p($m->set('q', 'hi'));
$p($m->set('q', 'there'));
$p($m->get('q'));
$p($m->get('q'));
$p($m->get('q'));
$p($m->set('a', '1') && $m->set('b', '2'));
$p($m->get(['a', 'missing', 'b']));
$p($m->delete('a'));
$p($m->get('a'));
"#;

/// PHP's memcache extension sets and gets through the server: FIFO gets,
/// `false` for an empty queue, multi-key get and delete.
#[test]
fn php_memcache_sets_and_gets() {
    require_php_memcache();
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run("php", &["-r", PHP_SCRIPT, &port], PHP_HINT);
    assert_lines(
        &out,
        &[
            r#""0.2.1""#,
            "true",
            "true",
            r#""hi""#,
            r#""there""#,
            "false",
            "true",
            r#"{"a":"1","b":"2"}"#,
            "true",
            "false",
        ],
    );
}

/// PHP with an `add` between two runs of 50 sets; the extension's notices go
/// to stderr.
const PHP_ADD_SCRIPT: &str = r#"
$m = new Memcache;
if (!$m->connect('127.0.0.1', (int)$argv[1], 10)) { echo "connect failed\n"; exit(1); }
$p = function ($v) { echo json_encode($v), "\n"; };
$sets = function ($from, $to) use ($m) {
    $n = 0;
    for ($i = $from; $i < $to; $i++) {
        if ($m->set('jobs', sprintf('message %03d', $i))) { $n++; }
    }
    echo "set $n\n";
};
$sets(0, 50);
$p($m->add('jobs', 'x'));
$sets(50, 100);
for ($i = 0; $i < 100; $i++) { $p($m->get('jobs')); }
$p($m->get('jobs'));
"#;

/// PHP's `add` returns false, stores nothing, and the client keeps working:
/// the 50 sets after it succeed and the 100 messages come back in order.
///
/// The extension (4.0.5.2, Debian 12) takes a bare `ERROR` reply to a store
/// command as a server failure: it logs "failed with: ERROR", marks the
/// server failed for its retry interval (15 s) and every later call in the
/// script returns false. That is why `add` answers `NOT_STORED`.
#[test]
fn php_memcache_add_stores_nothing() {
    require_php_memcache();
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run("php", &["-r", PHP_ADD_SCRIPT, &port], PHP_HINT);
    let mut want = vec![
        "set 50".to_string(),
        "false".to_string(),
        "set 50".to_string(),
    ];
    want.extend((0..100).map(|i| format!("\"{}\"", body(i))));
    want.push("false".to_string());
    assert_lines(&out, &want);
}

/// The gomemcache program: three sets (flags 7), three gets (gomemcache's
/// `Get` sends `gets`), then a get of the empty queue. The timeout is raised
/// from gomemcache's 100 ms default because a set waits for its fsync.
const GO_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

func main() {
	c := memcache.New("127.0.0.1:" + os.Args[1])
	c.Timeout = 10 * time.Second
	for i := 0; i < 3; i++ {
		err := c.Set(&memcache.Item{Key: "jobs", Value: []byte(fmt.Sprintf("message %d", i)), Flags: 7})
		fmt.Println("set", err)
	}
	for i := 0; i < 3; i++ {
		it, err := c.Get("jobs")
		if err != nil {
			fmt.Println("get", err)
			continue
		}
		fmt.Println("get", it.Key, string(it.Value), it.Flags)
	}
	_, err := c.Get("jobs")
	fmt.Println("miss", err == memcache.ErrCacheMiss, err)
}
"#;

/// Builds [`GO_PROGRAM`] in `dir` against Debian's gomemcache, offline
/// (GOPATH mode, no module proxy), and returns the binary's path.
fn build_go_client(dir: &Path) -> String {
    let gomemcache = Path::new(DEBIAN_GOPATH).join("src/github.com/bradfitz/gomemcache/memcache");
    assert!(
        gomemcache.is_dir(),
        "{} is missing; {GO_HINT}",
        gomemcache.display()
    );
    let src = dir.join("main.go");
    fs::write(&src, GO_PROGRAM).expect("write main.go");
    let bin = dir.join("mcq-go-client");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .current_dir(dir)
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap_or_else(|e| panic!("cannot run go ({e}); {GO_HINT}"));
    assert!(
        out.status.success(),
        "go build of the gomemcache client failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    bin.to_str().expect("utf-8 temp path").to_string()
}

/// gomemcache sets, gets (through `gets`) in order with the flags echoed,
/// and sees `ErrCacheMiss` on the empty queue.
#[test]
fn gomemcache_sets_and_gets() {
    let dir = TempDir::new("go");
    let bin = build_go_client(dir.path());
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&bin, &[&port], GO_HINT);
    assert_lines(
        &out,
        &[
            "set <nil>",
            "set <nil>",
            "set <nil>",
            "get jobs message 0 7",
            "get jobs message 1 7",
            "get jobs message 2 7",
            "miss true memcache: cache miss",
        ],
    );
}

/// pymemcache (default Client, so sets are noreply) as a reliable and a
/// blocking consumer: `get("jobs/t=200/open")`, `get("jobs/close/open")`,
/// a wait woken by another client's set, and a refused second open (a
/// client error, after which pymemcache closes its connection, which
/// gives the open message back). pymemcache 4 checks that each `VALUE`
/// names the key it asked for.
const PY_RELIABLE_SCRIPT: &str = r#"
import sys, threading, time
from pymemcache.client.base import Client
port = int(sys.argv[1])
c = Client(("127.0.0.1", port), connect_timeout=10, timeout=10)
p = Client(("127.0.0.1", port), connect_timeout=10, timeout=10)
print(c.set("jobs", b"one"), c.set("jobs", b"two"))
print(repr(c.get("jobs/t=200/open")))
print(repr(p.get("jobs")))
print(repr(p.get("jobs")))
print(sorted(p.stats("queue").items()))
print(repr(c.get("jobs/close/open")))
print(sorted(p.stats("queue").items()))
t0 = time.monotonic()
print(repr(c.get("jobs/t=200/open")))
waited = time.monotonic() - t0
print("waited", 0.16 <= waited < 3)
threading.Timer(0.2, lambda: p.set("jobs", b"three")).start()
print(repr(c.get("jobs/t=5000/open")))
print(p.set("jobs", b"four", noreply=False))
print(repr(c.get("jobs/close/open")))
try:
    print("second open returned", repr(c.get("jobs/open")))
except Exception as e:
    print("second open raised", type(e).__name__, e)
print(sorted(p.stats("queue").items()))
"#;

/// pymemcache drives reliable and blocking reads unchanged: the options
/// travel in the key and the replies echo it, an open message is skipped
/// by plain gets, an empty wait times out as a miss (None), a set wakes a
/// waiter, and a second open is a client error.
#[test]
fn pymemcache_reliable_and_blocking_reads() {
    let python = python_with("pymemcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_RELIABLE_SCRIPT, &port], PY_HINT);
    assert_lines(
        &out,
        &[
            "True True",
            "b'one'",
            "b'two'",
            "None",
            "[(b'jobs', b'2/1')]",
            "None",
            "[(b'jobs', b'2/2')]",
            "None",
            "waited True",
            "b'three'",
            "True",
            "b'four'",
            "second open raised MemcacheClientError b'close current item first'",
            "[(b'jobs', b'4/3')]",
        ],
    );
}

/// What to do when libmemcached's tools are missing.
const LIBMEMCACHED_HINT: &str = "run scripts/test, which installs libmemcached-tools";

/// libmemcached 1.1 (memcstat, memccat) refuses a server whose version
/// has a major number of 0, so it refuses `VERSION 0.2.1`, as it does
/// with MemcacheQ 0.2.1; `--report-version 1.4.0` lets it in: memcstat
/// prints the server's stats and memccat takes a message off its queue.
#[test]
fn libmemcached_works_with_report_version() {
    let home = Home::new();
    let plain = home.start(&[]);
    let servers = format!("--servers=127.0.0.1:{}", plain.port);
    let out = run("memcstat", &[&servers], LIBMEMCACHED_HINT);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("failed to parse major version"),
        "memcstat against VERSION 0.2.1: {said}"
    );
    plain.stop();

    let server = home.start(&["--report-version", "1.4.0"]);
    let mut c = server.client();
    c.call(b"version\r\n", b"VERSION 1.4.0\r\n");
    c.set("jobs", 0, b"from libmemcached");
    let servers = format!("--servers=127.0.0.1:{}", server.port);
    let out = run("memcstat", &[&servers], LIBMEMCACHED_HINT);
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "memcstat failed: {stats}");
    assert!(
        stats.contains("version: 1.4.0"),
        "memcstat printed: {stats}"
    );
    assert!(stats.contains(&format!("pid: {}", server.pid())), "{stats}");
    let out = run("memccat", &[&servers, "jobs"], LIBMEMCACHED_HINT);
    assert_lines(&out, &["from libmemcached"]);
    assert_eq!(c.queue_stats(), ["STAT jobs 1/1"]);
}

/// pymemcache's `get_many` over 600 queues, one message each: the server
/// runs such a get in slices (issue 20), and the client, with its
/// defaults, gets every message and none twice.
const PY_GET_MANY_SCRIPT: &str = r#"
import sys
from pymemcache.client.base import Client
c = Client(("127.0.0.1", int(sys.argv[1])), connect_timeout=10, timeout=10)
keys = ["q%03d" % i for i in range(600)]
for k in keys:
    c.set(k, ("body of " + k).encode() + b"x" * 900)
got = c.get_many(keys)
print(len(got), all(got[k] == ("body of " + k).encode() + b"x" * 900 for k in keys))
print(len(c.get_many(keys)))
"#;

#[test]
fn pymemcache_get_many_of_600_queues_is_served_in_slices_whole() {
    let python = python_with("pymemcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_GET_MANY_SCRIPT, &port], PY_HINT);
    assert_lines(&out, &["600 True", "0"]);
}

/// What to do when Ruby or dalli is missing.
const RUBY_HINT: &str = "run scripts/test, which installs ruby and ruby-dalli";

/// dalli 3.0 (Debian's ruby-dalli), binary protocol, default settings (its
/// values are Marshal'ed, flag 1, and come back unmarshaled): `add` is
/// "not stored" and `incr` an error the client raises and survives;
/// `get_multi` pipelines `GetKQ`s and a `Noop`.
const DALLI_SCRIPT: &str = r#"
require 'dalli'
c = Dalli::Client.new("127.0.0.1:#{ARGV[0]}", socket_timeout: 10)
puts c.version.values.first
want = (0...100).map { |i| format('message %03d', i) }
want.each { |m| c.set('jobs', m) }
got = (0...50).map { c.get('jobs') }
puts got == want[0...50]
puts c.add('jobs', 'x').inspect
begin
  c.incr('jobs', 1)
rescue Dalli::DalliError => e
  puts "incr: #{e.message}"
end
got = (50...100).map { c.get('jobs') }
puts got == want[50...100]
puts c.get('jobs').inspect
c.set('work', 'w1')
puts c.get('work/open').inspect
puts c.get('work/close').inspect
puts c.get('work').inspect
c.set('a', 'x1')
c.set('b', 'y1')
puts c.get_multi('a', 'missing', 'b').sort.inspect
puts c.stats.values.first['version']
"#;

#[test]
fn dalli_over_the_binary_protocol() {
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run("ruby", &["-e", DALLI_SCRIPT, &port], RUBY_HINT);
    assert_lines(
        &out,
        &[
            "0.2.1",
            "true",
            "false",
            "incr: Response error 129: Unknown command",
            "true",
            "nil",
            "\"w1\"",
            "nil",
            "nil",
            "[[\"a\", \"x1\"], [\"b\", \"y1\"]]",
            "0.2.1",
        ],
    );
    let mut c = server.client();
    assert_eq!(
        c.queue_stats(),
        [
            "STAT a 1/1",
            "STAT b 1/1",
            "STAT jobs 100/100",
            "STAT work 1/1"
        ]
    );
}

/// What to do when node or memjs is missing.
const NODE_HINT: &str = "run scripts/test, which installs memjs with npm and exports \
                         MEMCACHEQ_TEST_NODE_PATH";

/// memjs (npm), binary protocol, default settings but no retries; it has
/// no multi-get, and `statsWithKey` asks `Stat` with a key (`queue`).
const MEMJS_SCRIPT: &str = r#"
const memjs = require('memjs');
const c = memjs.Client.create(`127.0.0.1:${process.argv[1]}`, {retries: 0, timeout: 10, logger: {log() {}}});
const text = (r) => (r.value === null ? 'null' : r.value.toString());
(async () => {
  const want = Array.from({length: 100}, (_, i) => `message ${String(i).padStart(3, '0')}`);
  for (const m of want) await c.set('jobs', m, {});
  const got = [];
  for (let i = 0; i < 50; i++) got.push(text(await c.get('jobs')));
  console.log(JSON.stringify(got) === JSON.stringify(want.slice(0, 50)));
  console.log(await c.add('jobs', 'x', {}));
  try { await c.increment('jobs', 1, {}); console.log('incr stored'); } catch (e) { console.log(e.message); }
  for (let i = 50; i < 100; i++) got.push(text(await c.get('jobs')));
  console.log(JSON.stringify(got) === JSON.stringify(want));
  console.log(text(await c.get('jobs')));
  await c.set('work', 'w1', {});
  console.log(text(await c.get('work/open')));
  console.log(text(await c.get('work/close')));
  console.log(text(await c.get('work')));
  await new Promise((done) => c.stats((err, server, stats) => { console.log(err, stats.version); done(); }));
  await new Promise((done) => c.statsWithKey('queue', (err, server, stats) => { console.log(err, JSON.stringify(stats)); done(); }));
  c.close();
})().catch((e) => { console.log('failed:', e.message); c.close(); process.exit(1); });
"#;

#[test]
fn memjs_over_the_binary_protocol() {
    let node_path = std::env::var("MEMCACHEQ_TEST_NODE_PATH").unwrap_or_default();
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = Command::new("node")
        .args(["-e", MEMJS_SCRIPT, &port])
        .env("NODE_PATH", &node_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); {NODE_HINT}"));
    assert_lines(
        &out,
        &[
            "true",
            "false",
            "MemJS INCREMENT: Unknown command",
            "true",
            "null",
            "w1",
            "null",
            "null",
            "null 0.2.1",
            "null {\"jobs\":\"100/100\",\"work\":\"1/1\"}",
        ],
    );
}

/// python-binary-memcached (module bmemcached), default settings:
/// `get_multi` sends `GetKQ`s and a `Noop`; `stats("queue")` asks `Stat`
/// with a key.
const BMEMCACHED_SCRIPT: &str = r#"
import sys
import bmemcached
c = bmemcached.Client(["127.0.0.1:" + sys.argv[1]])
want = ["message %03d" % i for i in range(100)]
print(all(c.set("jobs", m) for m in want))
print([c.get("jobs") for _ in range(50)] == want[:50])
print(c.add("jobs", "x"))
try:
    c.incr("jobs", 1)
except bmemcached.exceptions.MemcachedException as e:
    print("incr:", e)
print([c.get("jobs") for _ in range(50)] == want[50:])
print(c.get("jobs"))
c.set("work", "w1")
print(c.get("work/open"), c.get("work/close"), c.get("work"))
c.set("a", "x1")
c.set("b", "y1")
print(sorted(c.get_multi(["a", "missing", "b"]).items()))
print(list(c.stats().values())[0]["version"])
print(sorted(list(c.stats("queue").values())[0].items()))
"#;

#[test]
fn python_binary_memcached_over_the_binary_protocol() {
    let python = python_with("bmemcached");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", BMEMCACHED_SCRIPT, &port], PY_HINT);
    assert_lines(
        &out,
        &[
            "True",
            "True",
            "False",
            "incr: Code: 129 Message: b'Unknown command' (code 129)",
            "True",
            "None",
            "w1 None None",
            "[('a', 'x1'), ('b', 'y1')]",
            "b'0.2.1'",
            "[('a', b'1/1'), ('b', b'1/1'), ('jobs', b'100/100'), ('work', b'1/1')]",
        ],
    );
}

/// meta-memcache, default settings (its gets ask `v t f l h`): an `add`
/// (`ms ... ME`) is not stored, `ma` answers as for a missing counter,
/// `multi_get` pipelines `mg`s.
const META_MEMCACHE_SCRIPT: &str = r#"
import sys
from meta_memcache import CacheClient, Key, ServerAddress, connection_pool_factory_builder
from meta_memcache.protocol import SetMode
c = CacheClient.cache_client_from_servers(
    servers=[ServerAddress(host="127.0.0.1", port=int(sys.argv[1]))],
    connection_pool_factory_fn=connection_pool_factory_builder(),
)
want = ["message %03d" % i for i in range(100)]
print(all(c.set(Key("jobs"), m, ttl=0) for m in want))
print([c.get(Key("jobs")) for _ in range(50)] == want[:50])
print(c.set(Key("jobs"), "x", ttl=0, set_mode=SetMode.ADD))
print(c.delta(Key("jobs"), 1))
print([c.get(Key("jobs")) for _ in range(50)] == want[50:])
print(c.get(Key("jobs")))
c.set(Key("work"), "w1", ttl=0)
print(c.get(Key("work/open")), c.get(Key("work/close")), c.get(Key("work")))
c.set(Key("a"), "x1", ttl=0)
c.set(Key("b"), "y1", ttl=0)
print(sorted((k.key, v) for k, v in c.multi_get([Key("a"), Key("missing"), Key("b")]).items()))
print(c.delete(Key("a")), c.delete(Key("a")))
"#;

/// meta-memcache has no stats call; the server's `stats queue` is checked
/// instead.
#[test]
fn meta_memcache_over_meta_commands() {
    let python = python_with("meta_memcache");
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", META_MEMCACHE_SCRIPT, &port], PY_HINT);
    assert_lines(
        &out,
        &[
            "True",
            "True",
            "False",
            "False",
            "True",
            "None",
            "w1 None None",
            "[('a', 'x1'), ('b', 'y1'), ('missing', None)]",
            "True False",
        ],
    );
    let mut c = server.client();
    assert_eq!(
        c.queue_stats(),
        ["STAT b 1/1", "STAT jobs 100/100", "STAT work 1/1"]
    );
}
