//! The Prometheus endpoint (`--metrics-listen`, README "Metrics", issue
//! 18) against the real binary: every series of the page checked after
//! sets, gets, opens, closes, a dead-letter move, a waiting request and a
//! refused connection; the page validated by Debian's `promtool check
//! metrics`; a real `prometheus` scraping it; a taken port refused at
//! start.

mod common;

use common::metrics_page::*;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Free space sets must leave with a clean cache: a log file (10 MiB)
/// and the margin (4 MiB), `memcacheq_disk_refusal_threshold_bytes`.
const KEPT_FREE_CLEAN: f64 = (14u64 << 20) as f64;

/// Scrapes until every `want` series has its value (or 10 s pass, then
/// panics with the differences): some changes reach the page a moment
/// after their reply (a closed connection, a parked request).
#[track_caller]
fn scrape_until(port: u16, want: &BTreeMap<String, f64>) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = page(port);
        let have = samples(&text);
        let wrong: Vec<String> = want
            .iter()
            .filter(|(k, v)| have.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: want {v}, have {:?}", have.get(k)))
            .collect();
        if wrong.is_empty() {
            return text;
        }
        if Instant::now() > deadline {
            panic!("series differ:\n{}\npage:\n{text}", wrong.join("\n"));
        }
        thread::sleep(Duration::from_millis(150));
    }
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    if out.status.success() {
        Ok(())
    } else {
        Err(output_text(&out))
    }
}

/// Free bytes of the filesystem holding `path`, as `df` says.
fn free_bytes(path: &std::path::Path) -> f64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("run df");
    let text = output_text(&out);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("df said {text}"))
}

fn key(name: &str, labels: &str) -> String {
    if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    }
}

/// The expected per-queue series of one queue (age aside).
struct QueueWant {
    ready: u64,
    unacked: u64,
    published: u64,
    delivered: u64,
    acked: u64,
    redelivered: u64,
    dead_lettered: u64,
    waiters: u64,
}

fn want_queue(want: &mut BTreeMap<String, f64>, queue: &str, q: QueueWant) {
    let label = format!("queue=\"{queue}\"");
    for (name, value) in [
        ("memcacheq_queue_messages_ready", q.ready),
        ("memcacheq_queue_messages_unacked", q.unacked),
        ("memcacheq_queue_messages", q.ready + q.unacked),
        ("memcacheq_queue_published_total", q.published),
        ("memcacheq_queue_delivered_total", q.delivered),
        ("memcacheq_queue_acked_total", q.acked),
        ("memcacheq_queue_redelivered_total", q.redelivered),
        ("memcacheq_queue_dead_lettered_total", q.dead_lettered),
        ("memcacheq_queue_waiters", q.waiters),
    ] {
        want.insert(key(name, &label), value as f64);
    }
}

#[test]
fn every_series_has_its_value_and_promtool_accepts_the_page() {
    let spawned = Instant::now();
    let (home, server) = start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--max-deliveries",
        "1",
        "-c",
        "2",
    ]);
    let started = Instant::now();
    let port = other_port(server.pid(), &[server.port]);

    // Anything but GET /metrics is not found.
    assert_eq!(http(port, "GET", "/").0, 404);
    assert_eq!(http(port, "GET", "/metricsx").0, 404);
    assert_eq!(http(port, "POST", "/metrics").0, 404);

    // The start-up probe's connection closed: none open, no queue yet.
    let mut idle = BTreeMap::new();
    idle.insert("memcacheq_connections".to_string(), 0.0);
    let base = samples(&scrape_until(port, &idle));
    assert!(!base.keys().any(|k| k.starts_with("memcacheq_queue_")));
    let base_of = |k: &str| base.get(k).copied().unwrap_or_else(|| panic!("no {k}"));

    let mut a = server.client();
    // jobs: a taken, b opened and closed, c opened and left open; d, e ready.
    let jobs_first_set = Instant::now();
    for body in [b"a", b"b", b"c"] {
        a.set("jobs", 0, body);
    }
    a.call(b"get jobs\r\n", b"VALUE jobs 0 1\r\na\r\nEND\r\n");
    a.call(b"get jobs/open\r\n", b"VALUE jobs/open 0 1\r\nb\r\nEND\r\n");
    a.call(b"get jobs/close\r\n", END);
    a.set("jobs", 0, b"d");
    let jobs_last_set = Instant::now();
    a.set("jobs", 0, b"e");
    a.call(b"get jobs/open\r\n", b"VALUE jobs/open 0 1\r\nc\r\nEND\r\n");

    // mail: opened by a client that leaves without closing it; opened
    // again, it is past --max-deliveries 1 and moves to mail.dead.
    a.set("mail", 0, b"m");
    let mut b = server.client();
    b.call(b"get mail/open\r\n", b"VALUE mail/open 0 1\r\nm\r\nEND\r\n");
    b.send(b"quit\r\n");
    b.expect_closed();
    let before_move = Instant::now();
    a.call(b"get mail/open\r\n", END);
    let after_move = Instant::now();

    // idle: emptied, then a request waits on it.
    a.set("idle", 0, b"x");
    a.call(b"get idle\r\n", b"VALUE idle 0 1\r\nx\r\nEND\r\n");
    let mut w = server.client();
    w.send(b"get idle/t=60000\r\n");
    let mut parked = BTreeMap::new();
    parked.insert("memcacheq_queue_waiters{queue=\"idle\"}".to_string(), 1.0);
    scrape_until(port, &parked);

    // A third connection is past -c 2.
    let mut refused = server.client();
    refused.expect(b"SERVER_ERROR too many open connections\r\n");
    refused.expect_closed();

    a.call(b"version\r\n", VERSION);
    // A meta no-op counts as the command it runs as.
    a.call(b"mn\r\n", b"MN\r\n");
    a.call(b"bogus\r\n", ERROR);
    // The cache is clean after a checkpoint: the dirty ratio is 0 and the
    // refusal threshold its least.
    a.call(b"db_checkpoint\r\n", b"OK\r\n");
    a.send(b"stats\r\n");
    let stats_reply = a.read_until(END);
    let stats = stat_pairs(&stats_reply);
    let stat = |name: &str| -> f64 {
        let (_, v) = stats.iter().find(|(n, _)| n == name).expect("a stat");
        v.parse().expect("a number")
    };
    thread::sleep(Duration::from_millis(300));

    let mut want = BTreeMap::new();
    #[rustfmt::skip]
    let queues = [
        ("jobs", QueueWant { ready: 2, unacked: 1, published: 5, delivered: 3, acked: 1, redelivered: 0, dead_lettered: 0, waiters: 0 }),
        ("mail", QueueWant { ready: 0, unacked: 0, published: 1, delivered: 1, acked: 0, redelivered: 0, dead_lettered: 1, waiters: 0 }),
        ("mail.dead", QueueWant { ready: 1, unacked: 0, published: 1, delivered: 0, acked: 0, redelivered: 0, dead_lettered: 0, waiters: 0 }),
        ("idle", QueueWant { ready: 0, unacked: 0, published: 1, delivered: 1, acked: 0, redelivered: 0, dead_lettered: 0, waiters: 1 }),
    ];
    for (name, q) in queues {
        want_queue(&mut want, name, q);
    }
    for queue in ["mail", "idle"] {
        let k = format!("memcacheq_queue_oldest_message_age_seconds{{queue=\"{queue}\"}}");
        want.insert(k, 0.0);
    }
    // a and w are open; a, b and w were accepted (the refused one is not).
    want.insert("memcacheq_connections".into(), 2.0);
    let connections_total = base_of("memcacheq_connections_total") + 3.0;
    assert_eq!(stat("total_connections"), connections_total);
    want.insert("memcacheq_connections_total".into(), connections_total);
    let commands = [
        ("set", 7.0),
        ("get", 8.0),
        ("gets", 0.0),
        ("delete", 0.0),
        ("flush", 0.0),
        ("stats", 1.0),
        ("stats_queue", 0.0),
        ("stats_replication", 0.0),
        ("stats_reset", 0.0),
        ("dump_stats", 0.0),
        ("version", 1.0),
        ("verbosity", 0.0),
        ("db_checkpoint", 1.0),
        ("db_archive", 0.0),
        ("quit", 1.0),
        ("noop", 1.0),
        ("invalid", 1.0),
    ];
    for (command, n) in commands {
        let k = key(
            "memcacheq_commands_total",
            &format!("command=\"{command}\""),
        );
        want.insert(k.clone(), base_of(&k) + n);
    }
    for (reason, n) in [
        ("disk_full", 0.0),
        ("too_many_connections", 1.0),
        ("not_master", 0.0),
        ("not_acknowledged", 0.0),
    ] {
        want.insert(
            key("memcacheq_refused_total", &format!("reason=\"{reason}\"")),
            n,
        );
    }
    // `stats` counts its own request but not its reply.
    want.insert("memcacheq_read_bytes_total".into(), stat("bytes_read"));
    want.insert(
        "memcacheq_written_bytes_total".into(),
        stat("bytes_written") + stats_reply.len() as f64,
    );
    // Each set and each get (the waiting one too) was a turn that wrote.
    let commits = base_of("memcacheq_commit_seconds_count") + 7.0 + 8.0;
    want.insert("memcacheq_commit_seconds_count".into(), commits);
    want.insert(
        "memcacheq_commit_seconds_bucket{le=\"+Inf\"}".into(),
        commits,
    );
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    want.insert(key("memcacheq_build_info", &version), 1.0);
    want.insert("memcacheq_bdb_cache_dirty_ratio".into(), 0.0);
    want.insert("memcacheq_bdb_deadlocks_total".into(), 0.0);
    want.insert(
        "memcacheq_disk_refusal_threshold_bytes".into(),
        KEPT_FREE_CLEAN,
    );

    let scraped_from = Instant::now();
    let text = scrape_until(port, &want);
    let scraped_by = Instant::now();
    let have = samples(&text);

    // What depends on the clock or the disk, within its bounds.
    let within = |k: &str, low: f64, high: f64| {
        let v = have.get(k).copied().unwrap_or_else(|| panic!("no {k}"));
        assert!(low <= v && v <= high, "{k} = {v}, not in {low}..={high}");
    };
    let secs = |d: Duration| d.as_secs_f64();
    within(
        "memcacheq_queue_oldest_message_age_seconds{queue=\"jobs\"}",
        secs(scraped_from - jobs_last_set) - 0.001,
        secs(scraped_by - jobs_first_set) + 0.001,
    );
    within(
        "memcacheq_queue_oldest_message_age_seconds{queue=\"mail.dead\"}",
        secs(scraped_from - after_move) - 0.001,
        secs(scraped_by - before_move) + 0.001,
    );
    within(
        "memcacheq_uptime_seconds",
        secs(scraped_from - started),
        secs(scraped_by - spawned),
    );
    let free = free_bytes(&home.path);
    within("memcacheq_disk_free_bytes", free - 512e6, free + 512e6);
    // The histogram's buckets are cumulative and end at its count.
    let buckets: Vec<f64> = have
        .iter()
        .filter(|(k, _)| k.starts_with("memcacheq_commit_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 13, "12 bounds and +Inf");
    assert!(buckets.iter().all(|&n| n <= commits));
    within("memcacheq_commit_seconds_sum", 0.0, 60.0);
    // Every series of the page was checked above, and no other is there.
    let checked = |k: &String| {
        want.contains_key(k)
            || k.starts_with("memcacheq_commit_seconds_")
            || [
                "memcacheq_uptime_seconds",
                "memcacheq_disk_free_bytes",
                "memcacheq_queue_oldest_message_age_seconds{queue=\"jobs\"}",
                "memcacheq_queue_oldest_message_age_seconds{queue=\"mail.dead\"}",
            ]
            .contains(&k.as_str())
    };
    let unchecked: Vec<&String> = have.keys().filter(|k| !checked(k)).collect();
    assert!(unchecked.is_empty(), "series not checked: {unchecked:?}");

    if let Err(complaints) = promtool_check(&text) {
        panic!("promtool check metrics refused the page:\n{complaints}\npage:\n{text}");
    }
    // The waiting request is answered END at the stop, which is clean.
    server.stop();
    w.expect(END);
}

#[test]
fn a_taken_metrics_port_is_refused_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let home = Home::new();
    let out = Command::new(server_binary())
        .arg("-H")
        .arg(&home.path)
        .args(["-p", "0", "-u", "root", "--metrics-listen", &addr])
        .args(test_threads(&[]))
        .stdin(Stdio::null())
        .output()
        .expect("run memcacheq");
    let text = output_text(&out);
    assert!(!out.status.success(), "started anyway: {text}");
    assert!(
        text.contains(&format!("failed to listen on --metrics-listen {addr}: ")),
        "{text}"
    );
}

/// A process the test started, killed when the test ends.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_page() {
    let (_home, server) = start(&["--metrics-listen", "127.0.0.1:0"]);
    let port = other_port(server.pid(), &[server.port]);
    let mut c = server.client();
    for body in [b"1", b"2", b"3"] {
        c.set("jobs", 0, body);
    }
    assert!(c.get("jobs").is_some());

    let dir = TempDir::new("prometheus");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: memcacheq\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run prometheus (Debian package prometheus; scripts/test installs it)");
    let prometheus = Spawned(prometheus);
    let web = other_port(prometheus.0.id(), &[]);

    // memcacheq_queue_messages_ready{queue="jobs"}, URL-encoded.
    let query = "/api/v1/query?query=memcacheq_queue_messages_ready%7Bqueue%3D%22jobs%22%7D";
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let (status, body) = http(web, "GET", query);
        if status == 200 && body.contains("\"result\":[{") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never had the series: {status} {body}"
        );
        thread::sleep(Duration::from_millis(250));
    };
    assert!(
        answer.contains("\"metric\":{\"__name__\":\"memcacheq_queue_messages_ready\""),
        "{answer}"
    );
    assert!(answer.contains("\"queue\":\"jobs\""), "{answer}");
    assert!(answer.ends_with(",\"2\"]}]}}"), "the value is 2: {answer}");
    drop(prometheus);
    server.stop();
}

/// The contrib directory of the source tree.
fn contrib() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib")
}

/// Every `memcacheq_...` name in `text`.
fn names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("memcacheq_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_alert_rules_and_the_dashboard_use_the_names_of_the_page() {
    for args in [
        ["check", "rules", "memcacheq-alerts.yml"],
        ["test", "rules", "memcacheq-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(contrib())
            .output()
            .expect("run promtool (Debian package prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            output_text(&out)
        );
    }
    let dashboard = contrib().join("grafana-memcacheq.json");
    let out = Command::new("python3")
        .args(["-c", "import json, sys; json.load(open(sys.argv[1]))"])
        .arg(&dashboard)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "not JSON: {}", output_text(&out));

    let (_home, server) = start(&["--metrics-listen", "127.0.0.1:0"]);
    let port = other_port(server.pid(), &[server.port]);
    server.client().set("jobs", 0, b"x");
    let text = page(port);
    let on_page: Vec<String> = samples(&text)
        .keys()
        .map(|k| k.split('{').next().unwrap_or(k).to_string())
        .collect();
    for file in [contrib().join("memcacheq-alerts.yml"), dashboard] {
        let used = std::fs::read_to_string(&file).expect("read contrib file");
        for name in names_in(&used) {
            assert!(
                on_page.contains(&name),
                "{} uses {name}, which the page does not have:\n{text}",
                file.display()
            );
        }
    }
    server.stop();
}

#[test]
fn stats_reset_leaves_the_counters_of_the_page_alone() {
    let (_home, server) = start(&["--metrics-listen", "127.0.0.1:0"]);
    let port = other_port(server.pid(), &[server.port]);
    let mut c = server.client();
    c.set("q", 0, b"x");
    c.call(b"stats reset\r\n", b"RESET\r\n");
    assert_eq!(c.stat("set_cmds"), 0);
    assert_eq!(c.stat("total_connections"), 0);
    let have = samples(&page(port));
    assert_eq!(have["memcacheq_commands_total{command=\"set\"}"], 1.0);
    assert!(have["memcacheq_connections_total"] >= 1.0);
    assert!(have["memcacheq_read_bytes_total"] > 0.0);
    server.stop();
}

/// A scraper that sends `GET /metrics` and never reads its page (here with
/// a receive buffer of 4 KB, and a page of 9,000 queues, about 5 MB, more
/// than the kernel's largest send buffer of 4 MB) holds the page's
/// thread only for the write timeout: later scrapes are answered, and a
/// stop is not held up by it (found in review: the thread blocked for
/// good, and SIGTERM waited on it forever).
#[test]
fn a_scraper_that_never_reads_holds_up_nothing() {
    const QUEUES: usize = 9000;
    let home = Home::new();
    let server = home.start(&["-N", "-E", "0", "--metrics-listen", "127.0.0.1:0"]);
    let port = other_port(server.pid(), &[server.port]);
    let mut c = server.client();
    let mut sets = Vec::new();
    for i in 0..QUEUES {
        sets.extend(set_cmd(format!("queue{i:04}").as_bytes(), 0, b"m"));
    }
    c.send(&sets);
    for _ in 0..QUEUES {
        c.expect(STORED);
    }
    let big = page(port);
    assert!(big.len() > 4 << 20, "a page of {} bytes", big.len());

    let stalled = connect_with_receive_buffer(port, 4096);
    (&stalled)
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send the request");
    thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let (status, _) = http(port, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the next scrape waited {:?}",
        asked.elapsed()
    );
    let stopping = Instant::now();
    server.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "the stop waited {:?}",
        stopping.elapsed()
    );
    drop(stalled);
}

/// Queue names that are not UTF-8 (the protocol allows any byte above
/// 0x7f) get labels of their own, escaped, so that two of them never make
/// one series twice, which would make Prometheus drop the whole scrape.
#[test]
fn names_that_are_not_utf8_keep_distinct_labels() {
    let home = Home::new();
    let server = home.start(&["--metrics-listen", "127.0.0.1:0"]);
    let port = other_port(server.pid(), &[server.port]);
    let mut c = server.client();
    c.set(b"q\xfe", 0, b"one");
    c.set(b"q\xff", 0, b"two");
    c.set(b"q\xff", 0, b"three");
    let mut want = BTreeMap::new();
    want.insert(
        r#"memcacheq_queue_messages_ready{queue="q\\xfe"}"#.to_string(),
        1.0,
    );
    want.insert(
        r#"memcacheq_queue_messages_ready{queue="q\\xff"}"#.to_string(),
        2.0,
    );
    let text = scrape_until(port, &want);
    if let Err(complaints) = promtool_check(&text) {
        panic!("promtool check metrics: {complaints}");
    }
}
