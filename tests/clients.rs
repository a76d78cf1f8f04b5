//! Real memcache client libraries talk to the server unchanged: Python's
//! pymemcache and PHP's memcache extension. `scripts/test` installs both;
//! when one is missing these tests fail and say so.

mod common;

use common::*;
use std::process::{Command, Output};

/// The Python that has pymemcache: `$MEMCACHEQ_TEST_PYTHON` (exported by
/// scripts/test), else `python3` from PATH.
fn python() -> String {
    std::env::var("MEMCACHEQ_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Runs `program args`, failing the test with an installation hint if the
/// program cannot be started.
fn run(program: &str, args: &[&str], hint: &str) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); {hint}"))
}

/// Asserts `out` succeeded and its stdout lines equal `want`.
fn assert_lines(out: &Output, want: &[&str]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got, want, "client output; stderr:\n{stderr}");
}

/// The pymemcache session. `default_noreply=False` is required with
/// MemcacheQ: pymemcache otherwise sends `set ... noreply`, a 5-argument set
/// that MemcacheQ (like the original) answers with `ERROR`.
const PY_SCRIPT: &str = r#"
import sys
from pymemcache.client.base import Client
c = Client(("127.0.0.1", int(sys.argv[1])), default_noreply=False,
           connect_timeout=10, timeout=10)
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
"#;

/// pymemcache sets and gets through the server: each get takes the oldest
/// message, an empty queue reads as None, multi-get, stats and delete work.
#[test]
fn pymemcache_sets_and_gets() {
    let python = python();
    let hint = "run scripts/test, which installs pymemcache and exports MEMCACHEQ_TEST_PYTHON";
    let check = run(&python, &["-c", "import pymemcache"], hint);
    assert!(
        check.status.success(),
        "pymemcache is not importable by {python}: {}; {hint}",
        String::from_utf8_lossy(&check.stderr)
    );
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run(&python, &["-c", PY_SCRIPT, &port], hint);
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
            "True False",
        ],
    );
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
    let hint = "run scripts/test, which installs php-cli and php-memcache";
    let check = run(
        "php",
        &["-r", "exit(extension_loaded('memcache') ? 0 : 3);"],
        hint,
    );
    assert!(
        check.status.success(),
        "PHP's memcache extension is not loaded; {hint}"
    );
    let home = Home::new();
    let server = home.start(&[]);
    let port = server.port.to_string();
    let out = run("php", &["-r", PHP_SCRIPT, &port], hint);
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
