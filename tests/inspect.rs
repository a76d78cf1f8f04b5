//! `memcacheq-stat` and `memcacheq-upgrade` on real homes: the db_stat
//! reports equal `db5.3_stat`'s, `-Q` agrees with what draining yields (also
//! under load), `--peek` consumes nothing, and the upgrade refuses a dirty
//! Berkeley DB 4.8 home untouched, leaves a 5.3 home alone and upgrades a
//! clean 4.8 home so that every message is served.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("run tool")
}

fn stat(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_memcacheq-stat"), args)
}

fn upgrade(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_memcacheq-upgrade"), args)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Report lines that must agree: the local-time line dropped, and the
/// figures of mutex and region-lock waits (which every attach changes)
/// blanked; every other line exactly.
fn comparable(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| !l.ends_with("\tLocal time"))
        .map(|l| {
            if l.contains("mutex [") || l.contains("region locks that required waiting") {
                let (_, name) = l.split_once('\t').unwrap_or(("", l));
                name.split_once(" [")
                    .map_or(name, |p| p.0)
                    .split(" (")
                    .next()
                    .unwrap()
                    .to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// Asserts `memcacheq-stat <args>` and `db5.3_stat <args>` print the same.
fn assert_same_report(home: &Path, args: &[&str]) {
    let mut full = vec!["-h", home.to_str().unwrap()];
    full.extend_from_slice(args);
    let ours = stat(&full);
    let theirs = Command::new("db5.3_stat")
        .args(&full)
        .output()
        .expect("db5.3_stat");
    assert!(
        ours.status.success(),
        "memcacheq-stat {args:?}: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert!(theirs.status.success(), "db5.3_stat {args:?} failed");
    let (a, b) = (comparable(&text(&ours)), comparable(&text(&theirs)));
    assert!(a.len() > 5, "short report for {args:?}: {a:?}");
    assert_eq!(a, b, "memcacheq-stat vs db5.3_stat for {args:?}");
}

/// Writes three queues: a: 5 messages, 2 taken; b: 3 binary; c: 1, taken.
fn fill(server: &Server) {
    let mut c = server.client();
    for i in 0..5u32 {
        c.set("a", i, format!("message {i}").as_bytes());
    }
    c.get("a");
    c.get("a");
    for i in 0..3u32 {
        c.set("b", 7, &[b"bin\x00\r\n".as_slice(), &[i as u8; 3]].concat());
    }
    c.set("c", 0, b"");
    c.get("c");
}

#[test]
fn reports_equal_db_stat_live_and_stopped() {
    let home = Home::new();
    let server = home.start(&[]);
    fill(&server);
    for args in [
        &["-d", "a"][..],
        &["-d", "queue.list"],
        &["-l"],
        &["-t"],
        &["-c"],
        &["-m"],
        &["-e"],
    ] {
        assert_same_report(&home.path, args);
    }
    server.stop();
    // Stopped, region files still there: the same reports join them.
    for args in [&["-d", "b"][..], &["-e"], &["-l"], &["-t"]] {
        assert_same_report(&home.path, args);
    }
    // No region files: -d and -l work in a private environment, -e fails,
    // as with db_stat; nothing is created in the home.
    for f in home.files() {
        if f.starts_with("__db.0") {
            std::fs::remove_file(home.path.join(f)).unwrap();
        }
    }
    let before = home.files();
    for args in [&["-d", "a"][..], &["-l"]] {
        assert_same_report(&home.path, args);
    }
    let e = stat(&["-h", home.path.to_str().unwrap(), "-e"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("DB_ENV->open"));
    assert_eq!(home.files(), before, "the home changed");
    let v = stat(&["-V"]);
    assert_eq!(text(&v), db_tool("stat", &["-V"]));
}

/// `-Q --json` lines as name -> (waiting, set, get, first, next, bytes).
fn overview(home: &Path) -> BTreeMap<String, [u64; 6]> {
    let o = stat(&["-h", home.to_str().unwrap(), "-Q", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut out = BTreeMap::new();
    for line in text(&o).lines() {
        let field = |k: &str| -> &str {
            let at = line
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {line}"))
                + k.len()
                + 3;
            line[at..].split([',', '}']).next().unwrap()
        };
        let num = |k: &str| field(k).parse::<u64>().unwrap();
        let name = field("queue").trim_matches('"').to_string();
        out.insert(
            name,
            ["waiting", "set", "get", "first", "next", "bytes"].map(num),
        );
    }
    out
}

fn disk_bytes(home: &Path, q: &str) -> u64 {
    list_dir(home)
        .iter()
        .filter(|f| {
            *f == q
                || f.strip_prefix(&format!("__dbq.{q}."))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(|f| std::fs::metadata(home.join(f)).unwrap().len())
        .sum()
}

#[test]
fn queue_overview_matches_draining_under_load() {
    let home = Home::new();
    let server = home.start(&["-E", "2", "-A", "512", "-B", "100"]);
    fill(&server);
    let mut c = server.client();
    for i in 0..40u32 {
        c.set("ext", i, &[b'x'; 60]);
    }
    // Load on another queue while -Q runs.
    let stop = Arc::new(AtomicBool::new(false));
    let port = server.port;
    let load = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                c.set("load", 1, b"busy");
                c.get("load");
                n += 1;
            }
            n
        })
    };
    // Wait until the load queue exists, so -Q runs beside live traffic.
    let mut probe = server.client();
    while probe
        .queue_stats()
        .iter()
        .all(|l| !l.starts_with("STAT load "))
    {
        thread::sleep(std::time::Duration::from_millis(5));
    }
    let seen = overview(&home.path);
    let seen_text = text(&stat(&["-h", home.path.to_str().unwrap(), "-Q"]));
    stop.store(true, Ordering::SeqCst);
    assert!(load.join().unwrap() > 0);
    assert!(
        seen_text
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "ext",
                    "40",
                    "40",
                    "0",
                    "1",
                    "41",
                    &disk_bytes(&home.path, "ext").to_string()
                ]),
        "{seen_text}"
    );
    let expect = [
        ("a", 3, 5, 2, 3, 6),
        ("b", 3, 3, 0, 1, 4),
        ("c", 0, 1, 1, 2, 2),
        ("ext", 40, 40, 0, 1, 41),
    ];
    assert!(
        list_dir(&home.path)
            .iter()
            .filter(|f| f.starts_with("__dbq.ext."))
            .count()
            > 1,
        "ext uses several extent files"
    );
    for (q, waiting, set, get, first, next) in expect {
        let got = seen.get(q).unwrap_or_else(|| panic!("{q} in {seen:?}"));
        assert_eq!(got[..5], [waiting, set, get, first, next], "{q}");
        assert_eq!(got[5], disk_bytes(&home.path, q), "bytes of {q}");
        assert_eq!(c.drain(q).len() as u64, waiting, "drained {q}");
    }
    assert!(seen.contains_key("load"));
    let after = overview(&home.path);
    assert_eq!(after["a"][..3], [0, 5, 5]);
    assert_eq!(after["ext"][..3], [0, 40, 40]);
    server.stop();
}

#[test]
fn peek_shows_the_head_without_consuming() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    c.set("p", 3, b"first\x00\r\n\xff");
    c.set("p", 4294967295, b"second");
    c.set("p", 5, b"third");
    let h = home.path.to_str().unwrap();
    let o = stat(&["-h", h, "-Q", "-d", "p", "--peek", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = text(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "p",
            "3",
            "3",
            "0",
            "1",
            "4",
            &disk_bytes(&home.path, "p").to_string()
        ]
    );
    assert_eq!(lines[2], r"#1 flags 3 length 9 first\x00\r\n\xff");
    assert_eq!(lines[3], "#2 flags -1 length 6 second");
    let j = text(&stat(&["-h", h, "-Q", "-d", "p", "--peek", "1", "--json"]));
    assert!(
        j.contains(concat!(
            r#""body":"first\u0000\r\n"#,
            "\u{fffd}",
            r#"","body_hex":"6669727374000d0aff""#
        )),
        "{j}"
    );
    assert_eq!(c.get("p").unwrap().body, b"first\x00\r\n\xff");
    assert_eq!(c.drain("p").len(), 2);
    server.stop();
}

/// Every file of the home with its bytes.
fn snapshot(home: &Path) -> BTreeMap<String, Vec<u8>> {
    list_dir(home)
        .into_iter()
        .map(|f| {
            let b = std::fs::read(home.join(&f)).unwrap();
            (f, b)
        })
        .collect()
}

#[test]
fn upgrade_refuses_a_dirty_48_home_untouched() {
    let home = unpack_fixture("memcacheq-0.2.1-bdb4.8-dirty.tar.gz", "home48-dirty");
    let before = snapshot(&home.path);
    for args in [&["--dry-run"][..], &[]] {
        let mut full = vec!["-H", home.path.to_str().unwrap()];
        full.extend_from_slice(args);
        let o = upgrade(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("not shut down cleanly")
                && err.contains("db_recover")
                && err.contains("4.8"),
            "{err}"
        );
    }
    assert!(snapshot(&home.path) == before, "the dirty home was changed");
}

#[test]
fn upgrade_leaves_a_53_home_alone() {
    let home = unpack_fixture("memcacheq-0.2.1-bdb5.3-clean.tar.gz", "home53-clean");
    let before = snapshot(&home.path);
    let o = upgrade(&["-H", home.path.to_str().unwrap()]);
    assert!(
        o.status.success() && text(&o).contains("Nothing to do"),
        "{}",
        text(&o)
    );
    assert!(snapshot(&home.path) == before, "the 5.3 home was changed");
    let server = home.start(&[]);
    assert_eq!(server.client().queue_stats(), ORIGINAL_QUEUE_STATS);
    assert_eq!(server.client().drain("jobs").len(), 40);
    server.stop();
}

#[test]
fn upgrade_moves_a_clean_48_home_to_53() {
    let home = unpack_fixture("memcacheq-0.2.1-bdb4.8-clean.tar.gz", "home48-clean");
    let h = home.path.to_str().unwrap();
    let before = snapshot(&home.path);
    let dry = upgrade(&["-H", h, "--dry-run"]);
    assert!(
        dry.status.success() && text(&dry).contains("log version 16"),
        "{}",
        text(&dry)
    );
    assert!(snapshot(&home.path) == before, "dry run changed the home");
    let o = upgrade(&["-H", h]);
    assert!(
        o.status.success(),
        "{}{}",
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !home.files().iter().any(|f| f.starts_with("log.")),
        "old logs left: {:?}",
        home.files()
    );
    for db in ORIGINAL_DATABASES {
        db_tool("verify", &["-h", h, db]);
    }
    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(c.queue_stats(), ORIGINAL_QUEUE_STATS);
    let jobs = c.drain("jobs");
    assert_eq!(jobs.len(), 40);
    for (k, m) in jobs.iter().enumerate() {
        let i = k + 10;
        assert_eq!(
            (m.flags.clone(), show(&m.body)),
            (i.to_string(), show(&original_job_body(i)))
        );
    }
    let bins = c.drain("bin.q-1");
    assert_eq!(bins.len(), 20);
    for (i, m) in bins.iter().enumerate() {
        assert_eq!(
            (m.flags.as_str(), show(&m.body)),
            ("7", show(&original_bin_body(i)))
        );
    }
    assert_eq!(
        c.drain("big"),
        [Message {
            flags: "0".into(),
            body: vec![b'B'; 1001]
        }]
    );
    assert!(c.drain("empty").is_empty());
    // New writes after the upgrade survive a restart.
    c.set("jobs", 1, b"after");
    drop(c);
    server.stop();
    let server = home.start(&[]);
    assert_eq!(server.client().get("jobs").unwrap().body, b"after");
    server.stop();
    let again = upgrade(&["-H", h]);
    assert!(
        again.status.success() && text(&again).contains("Nothing to do"),
        "{}",
        text(&again)
    );
}
