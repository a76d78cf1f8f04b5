//! `memcacheq-top`: `--once` against the real server, its live screen under
//! tmux while a client stores messages, and `--once` against a canned
//! MemcacheQ 0.2.1 (which answers `dump_stats` with `ERROR`).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn top(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memcacheq-top"))
        .args(args)
        .output()
        .expect("run memcacheq-top")
}

/// `--once`'s stdout, after checking that it exited 0 and said nothing on
/// stderr.
fn once(addr: &str, interval: &str) -> String {
    let out = top(&["--once", "-i", interval, addr]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        output_text(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `text` with the uptime and every age cell (a column of eight, its title
/// ending where `AGE` does) replaced by placeholders of the same width,
/// after checking that they look like an uptime and ages.
fn mask_times(text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let (before, rest) = lines[0].split_once("uptime ").expect("an uptime");
    let (uptime, after) = rest.split_once("  ").expect("more after the uptime");
    assert!(
        uptime.len() == 8 && uptime.bytes().all(|b| b.is_ascii_digit() || b == b':'),
        "uptime {uptime}"
    );
    lines[0] = format!("{before}uptime HH:MM:SS  {after}");
    let titles = lines
        .iter()
        .position(|l| l.starts_with("QUEUE"))
        .expect("titles");
    let end = lines[titles].find("AGE").expect("an AGE column") + 3;
    for line in &mut lines[titles + 1..] {
        let cell = line[end - 8..end].trim().to_string();
        let number = cell.trim_end_matches("ms").trim_end_matches('s');
        if cell != "-" {
            assert!(
                !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                "age {cell:?} in {line:?}"
            );
            line.replace_range(end - 8..end, "   <age>");
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn once_shows_every_queue_of_the_real_server() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    for _ in 0..3 {
        c.set("jobs", 0, b"job");
    }
    // One of them open (unacked) as long as this client stays connected.
    c.send(b"get jobs/open\r\n");
    c.read_value(b"jobs/open").expect("a message to open");
    c.expect(END);
    for _ in 0..5 {
        c.set("big", 0, b"payload");
    }
    c.set("mail", 0, b"m");
    c.get("mail").expect("mail's message");
    c.set("a.dead", 0, b"d");

    let addr = format!("127.0.0.1:{}", server.port);
    // Nothing happens between the two polls: every rate is exactly 0.
    // Connected: this client and memcacheq-top.
    assert_eq!(
        mask_times(&once(&addr, "0.3")),
        format!(
            "{addr}  version 0.2.1  uptime HH:MM:SS  connections 2\n\
             messages in/s 0.0  out/s 0.0  queues 4  (dump_stats)\n\
             \n\
             QUEUE      READY   UNACKED      IN/S     OUT/S       AGE   WAITERS\n\
             big            5         0       0.0       0.0     <age>         0\n\
             jobs           2         1       0.0       0.0     <age>         0\n\
             a.dead         1         0       0.0       0.0     <age>         0\n\
             mail           0         0       0.0       0.0         -         0\n"
        )
    );
    server.stop();
}

/// A tmux server of its own (`-L`), so no other session is ever touched;
/// it and its session are ended by their name when dropped.
struct Tmux {
    /// Socket and session name.
    name: String,
}

impl Tmux {
    /// A detached 100x24 session running `command`.
    fn start(command: &[&str]) -> Tmux {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mcq-top-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { name };
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            &tmux.name,
            "-x",
            "100",
            "-y",
            "24",
        ];
        args.extend(command);
        tmux.run(&args);
        tmux
    }

    /// Runs `tmux -L <name> <args>` and returns its stdout; panics unless
    /// it succeeds.
    fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(out.status.success(), "tmux {args:?}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn try_run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.name, "-f", "/dev/null"])
            .args(args)
            // tmux refuses to start without a terminal type.
            .env("TERM", "xterm-256color")
            .output()
            .expect("run tmux (Debian's tmux package)")
    }

    /// The screen's text.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Whether the session still runs (its program has not exited).
    fn alive(&self) -> bool {
        self.try_run(&["has-session", "-t", &self.name])
            .status
            .success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The socket is this test's own: its server holds nothing else.
        let _ = self.try_run(&["kill-server"]);
    }
}

/// The cells of `queue`'s row on `screen`, if it is there.
fn row<'a>(screen: &'a str, queue: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&queue))
}

#[test]
fn live_screen_shows_queues_and_rates_and_q_quits() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.set("idle", 0, b"x");
    let addr = format!("127.0.0.1:{}", server.port);
    let tmux = Tmux::start(&[env!("CARGO_BIN_EXE_memcacheq-top"), "-i", "0.5", &addr]);

    // A producer: a message every 10 ms into `jobs`, for 20 s at most.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        let mut c = server.client();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                c.set("jobs", 0, b"job");
                thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let deadline = Instant::now() + Duration::from_secs(15);
    let screen = loop {
        let screen = tmux.screen();
        let jobs_in = row(&screen, "jobs").and_then(|cells| cells[3].parse::<f64>().ok());
        if jobs_in.is_some_and(|rate| rate > 0.0) {
            break screen;
        }
        assert!(Instant::now() < deadline, "no rate for jobs:\n{screen}");
        thread::sleep(Duration::from_millis(100));
    };
    stop.store(true, Ordering::SeqCst);
    producer.join().expect("producer");

    assert!(
        screen.contains(&format!("{addr}  version 0.2.1")),
        "{screen}"
    );
    assert!(
        screen.contains("QUEUE     READY   UNACKED      IN/S     OUT/S       AGE   WAITERS"),
        "{screen}"
    );
    // jobs is the deeper: it comes first; idle has one message and no rate.
    let jobs = screen.find("\njobs ").expect("jobs row");
    let idle = screen.find("\nidle ").expect("idle row");
    assert!(jobs < idle, "{screen}");
    let idle_cells = row(&screen, "idle").expect("idle row");
    assert_eq!(idle_cells[1..5], ["1", "0", "0.0", "0.0"], "{screen}");
    let total_in = screen
        .split("messages in/s ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|rate| rate.parse::<f64>().ok());
    assert!(total_in.is_some_and(|r| r > 0.0), "{screen}");

    tmux.run(&["send-keys", "-t", &tmux.name, "q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.alive() {
        assert!(
            Instant::now() < deadline,
            "q did not end it:\n{}",
            tmux.screen()
        );
        thread::sleep(Duration::from_millis(50));
    }
    server.stop();
}

/// MemcacheQ 0.2.1's `stats` (its seventeen lines, as ours).
const ORIGINAL_STATS: &str = "STAT pid 4242\r\nSTAT uptime 93784\r\nSTAT time 1700000000\r\n\
    STAT version 0.2.1\r\nSTAT pointer_size 64\r\nSTAT rusage_user 1.250000\r\n\
    STAT rusage_system 0.750000\r\nSTAT curr_connections 7\r\nSTAT total_connections 90\r\n\
    STAT connection_structures 9\r\nSTAT get_cmds 130\r\nSTAT get_hits 110\r\n\
    STAT set_cmds 200\r\nSTAT set_hits 200\r\nSTAT bytes_read 9000\r\n\
    STAT bytes_written 8000\r\nSTAT threads 4\r\nEND\r\n";

/// A canned MemcacheQ 0.2.1 on a loopback port: `stats` as above,
/// `dump_stats` (and anything else) `ERROR`, and `stats queue` where
/// `jobs` gains one message stored and one taken at every ask.
fn original_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            thread::spawn(move || answer_as_original(conn));
        }
    });
    port
}

fn answer_as_original(conn: TcpStream) {
    let mut out = conn.try_clone().expect("clone");
    let mut asked = 0;
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let reply = match line.trim_end() {
            "stats" => ORIGINAL_STATS.to_string(),
            "stats queue" => {
                asked += 1;
                format!(
                    "STAT big 1/0\r\nSTAT empty 1/1\r\nSTAT jobs {}/{}\r\nSTAT mail 9/2\r\nEND\r\n",
                    50 + asked,
                    10 + asked
                )
            }
            _ => "ERROR\r\n".to_string(),
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn once_against_the_originals_stats_queue() {
    let addr = format!("127.0.0.1:{}", original_server());
    // One message in and one out over 2 s: 0.5/s, which the rounding to a
    // tenth keeps whether the polls were 1.82 or 2.22 s apart.
    assert_eq!(
        once(&addr, "2"),
        format!(
            "{addr}  version 0.2.1  uptime 1d 02:03:04  connections 7\n\
             messages in/s 0.0  out/s 0.0  queues 4  (stats queue: no unacked, age or waiters)\n\
             \n\
             QUEUE     READY   UNACKED      IN/S     OUT/S       AGE   WAITERS\n\
             jobs         40         -       0.5       0.5         -         -\n\
             mail          7         -       0.0       0.0         -         -\n\
             big           1         -       0.0       0.0         -         -\n\
             empty         0         -       0.0       0.0         -         -\n"
        )
    );
}

#[test]
fn once_fails_clearly_without_a_server() {
    let out = top(&["--once", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "memcacheq-top: cannot connect to 127.0.0.1:1: Connection refused (os error 111)\n"
    );
}
