//! Hardening (issue 8): behaviour at the edges of operation, each test a
//! self-contained function against the real binary.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `program args` to its end, killing it after `limit`; returns its
/// output and how long it ran.
fn run_with_limit(program: &str, args: &[&str], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    while child.try_wait().expect("try_wait").is_none() && started.elapsed() < limit {
        thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    (child.wait_with_output().expect("wait"), elapsed)
}

/// A second `memcacheq -H` on a home a running server uses must refuse
/// before opening (and recovering) the environment under the first one:
/// it exits non-zero at once naming the home and the first server's pid,
/// the first server keeps serving its messages, the home gains no file,
/// and `memcacheq-stat` still joins the live environment.
#[test]
fn second_server_on_a_live_home_refuses_and_touches_nothing() {
    let home = Home::new();
    let mut first = home.start(&[]);
    let mut c = first.client();
    c.set("jobs", 5, b"still here");
    let files = home.files();
    let h = home.path.to_str().expect("utf-8 home");

    let (second, took) = run_with_limit(
        env!("CARGO_BIN_EXE_memcacheq"),
        &["-H", h, "-p", "0", "-u", "root"],
        Duration::from_secs(15),
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "second server: {} after {took:?}; stderr:\n{err}",
        second.status
    );
    assert!(second.status.code().is_some(), "second server was killed");
    assert!(took < Duration::from_secs(5), "refusal took {took:?}");
    assert!(err.contains(h), "stderr does not name the home: {err}");
    assert!(
        err.contains(&format!("pid {}", first.pid())),
        "stderr does not name pid {}: {err}",
        first.pid()
    );

    first.assert_running();
    assert_eq!(c.stat("pid"), u64::from(first.pid()));
    assert_eq!(home.files(), files, "the home's files changed");
    // memcacheq-stat joins the environment beside the lock holder.
    let stat = Command::new(env!("CARGO_BIN_EXE_memcacheq-stat"))
        .args(["-h", h, "-Q"])
        .output()
        .expect("memcacheq-stat");
    assert!(
        stat.status.success() && String::from_utf8_lossy(&stat.stdout).contains("jobs"),
        "memcacheq-stat -Q beside the server: {}{}",
        String::from_utf8_lossy(&stat.stdout),
        String::from_utf8_lossy(&stat.stderr)
    );
    let stat = Command::new(env!("CARGO_BIN_EXE_memcacheq-stat"))
        .args(["-h", h, "-e"])
        .output()
        .expect("memcacheq-stat");
    assert!(stat.status.success(), "memcacheq-stat -e beside the server");
    let m = c.get("jobs").expect("the message survived");
    assert_eq!(
        (m.flags.as_str(), m.body.as_slice()),
        ("5", &b"still here"[..])
    );
    drop(c);
    first.stop();
    assert_eq!(home.files(), files, "the home's files changed");
}

/// `memcacheq-upgrade` refuses a home a live server holds (dry run or
/// not), naming the server's pid, and changes nothing.
#[test]
fn upgrade_refuses_a_home_a_live_server_holds() {
    let home = Home::new();
    let mut server = home.start(&[]);
    let mut c = server.client();
    c.set("jobs", 0, b"kept");
    let files = home.files();
    let h = home.path.to_str().expect("utf-8 home");
    for dry in [true, false] {
        let mut args = vec!["-H", h];
        if dry {
            args.push("--dry-run");
        }
        let (o, _) = run_with_limit(
            env!("CARGO_BIN_EXE_memcacheq-upgrade"),
            &args,
            Duration::from_secs(15),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "upgrade {args:?}: {err}");
        assert!(
            err.contains(&server.pid().to_string()),
            "upgrade {args:?} does not name pid {}: {err}",
            server.pid()
        );
    }
    server.assert_running();
    assert_eq!(home.files(), files, "the home's files changed");
    assert_eq!(c.get("jobs").expect("message").body, b"kept");
    drop(c);
    server.stop();
}

/// SIGTERM with 1,000 queues stops within a few seconds (systemd kills
/// after 90 s; each database close used to sync every open file), and
/// nothing is lost: the files verify and a restart serves every message.
#[test]
fn shutdown_with_a_thousand_queues_is_quick_and_loses_nothing() {
    const QUEUES: usize = 1000;
    const LIMIT: Duration = Duration::from_secs(10);
    let home = Home::new();
    let h = home.path.to_str().expect("utf-8 home");
    let name = |i: usize| format!("q{i:04}");
    let mut server = home.start(&[]);
    let mut c = server.client();
    for i in 0..QUEUES {
        c.set(name(i), i as u32, format!("message {i}").as_bytes());
    }
    drop(c);

    let started = Instant::now();
    signal(server.pid(), libc::SIGTERM);
    let status = loop {
        if let Some(status) = server.try_wait() {
            break status;
        }
        assert!(
            started.elapsed() < LIMIT,
            "still running {LIMIT:?} after SIGTERM with {QUEUES} queues"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    drop(server);

    for db in ["queue.list", "q0000", "q0001", "q0500", "q0999"] {
        db_tool("verify", &["-h", h, db]);
    }
    let server = home.start(&[]);
    let mut c = server.client();
    for i in 0..QUEUES {
        let m = c
            .get(name(i))
            .unwrap_or_else(|| panic!("{} lost its message", name(i)));
        assert_eq!(
            (m.flags, m.body),
            (i.to_string(), format!("message {i}").into_bytes())
        );
    }
    drop(c);
    server.stop();
}

/// The listen backlog is the original's 1,024, for TCP and for a unix
/// socket (it was mio's 128 for TCP and somaxconn for unix sockets): a
/// burst of clients beyond the backlog has connections dropped and retried
/// a second or more later. `ss` shows a listener's backlog as its Send-Q.
#[test]
fn listen_backlog_is_1024_for_tcp_and_unix_sockets() {
    fn backlog(ss_args: &[&str]) -> String {
        let out = Command::new("ss")
            .args(ss_args)
            .output()
            .expect("run ss (iproute2)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let fields: Vec<&str> = text.split_whitespace().collect();
        let listen = fields
            .iter()
            .position(|f| *f == "LISTEN")
            .unwrap_or_else(|| panic!("ss {ss_args:?} shows no listener: {text:?}"));
        // State, Recv-Q (connections waiting), Send-Q (the backlog).
        fields[listen + 2].to_string()
    }

    let home = Home::new();
    let server = home.start(&[]);
    let port = format!(":{}", server.port);
    assert_eq!(backlog(&["-ltnH", "sport", "=", &port]), "1024", "TCP");
    server.stop();

    let sock = home.parent().join("mcq.sock");
    let sock_arg = sock.to_str().expect("utf-8 path");
    let h = home.path.to_str().expect("utf-8 home");
    let mut unix = Command::new(env!("CARGO_BIN_EXE_memcacheq"))
        .args(["-H", h, "-s", sock_arg, "-u", "root"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn memcacheq -s");
    // Serving (signal handlers installed) once it answers, not once the
    // socket accepts: the socket listens from the start.
    let answers = || -> Option<()> {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"version\r\n").ok()?;
        let mut reply = [0u8; VERSION.len()];
        s.read_exact(&mut reply).ok()?;
        (reply == VERSION).then_some(())
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while answers().is_none() {
        if Instant::now() > deadline || unix.try_wait().expect("try_wait").is_some() {
            let _ = unix.kill();
            panic!("memcacheq -s {sock_arg} did not answer");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let unix_backlog = backlog(&["-lxH", "src", sock_arg]);
    signal(unix.id(), libc::SIGTERM);
    let status = unix.wait().expect("wait");
    assert_eq!(unix_backlog, "1024", "unix socket");
    assert!(status.success(), "memcacheq -s after SIGTERM: {status}");
}
