//! The on-disk layout of docs/STORAGE.md, checked with Debian's Berkeley
//! DB 5.3 tools (`db5.3_dump`, `db5.3_stat`, `db5.3_verify`) on a home the
//! server wrote and then left with a graceful stop.

mod common;

use common::*;

/// The 16-byte queue.list value: set count then get count, little-endian.
fn counters(set: i64, get: i64) -> Vec<u8> {
    let mut v = set.to_le_bytes().to_vec();
    v.extend_from_slice(&get.to_le_bytes());
    v
}

/// Runs the server on `home` with `extra` flags, sends `requests` (each
/// with its expected reply), then stops it gracefully.
fn run(home: &Home, extra: &[&str], requests: &[(&[u8], &[u8])]) {
    let server = home.start(extra);
    let mut c = server.client();
    for (req, want) in requests {
        c.call(req, want);
    }
    drop(c);
    server.stop();
}

/// A message is stored as the original's item: length, suffix length, name
/// length, padding, name and NUL, " <flags> <len>\r\n", data and "\r\n",
/// then padded with spaces to the 1024-byte record.
#[test]
fn record_bytes_match_the_original_layout() {
    let home = Home::new();
    run(&home, &[], &[(b"set jobs 0 0 3\r\nabc\r\n", STORED)]);
    let records = dump_lines(&home.path, "jobs");
    assert_eq!(records.len(), 1, "one record in jobs");
    let mut want = unhex("05000000060400006a6f627300203020330d0a6162630d0a");
    want.resize(1024, b' ');
    assert_eq!(hex(&records[0]), hex(&want));
    assert_has_lines(
        dump_header(&home.path, "jobs"),
        &[
            "type=queue",
            "re_len=1024",
            "db_pagesize=4096",
            "extentsize=16384",
        ],
    );
}

/// `db5.3_verify` accepts the queue database and queue.list.
#[test]
fn verify_accepts_queue_and_queue_list() {
    let home = Home::new();
    run(
        &home,
        &[],
        &[
            (b"set jobs 0 0 3\r\nabc\r\n", STORED),
            (b"set jobs 9 0 4\r\nabcd\r\n", STORED),
            (b"get jobs\r\n", b"VALUE jobs 0 3\r\nabc\r\nEND\r\n"),
            (b"set other 1 0 1\r\nz\r\n", STORED),
        ],
    );
    for db in ["jobs", "other", "queue.list"] {
        db_tool("verify", &["-h", home.path_str(), db]);
    }
}

/// `db5.3_stat -d` reports a queue with 1024-byte records, 4096-byte pages
/// and 16384-page extents by default.
#[test]
fn stat_reports_default_record_page_and_extent_sizes() {
    let home = Home::new();
    run(&home, &[], &[(b"set jobs 0 0 3\r\nabc\r\n", STORED)]);
    let stat = db_tool("stat", &["-h", home.path_str(), "-d", "jobs"]);
    assert_has_lines(
        stat.lines(),
        &[
            "1024\tFixed-length record size",
            "4096\tUnderlying database page size",
            "16384\tUnderlying database extent size",
            "1\tNumber of records in the database",
        ],
    );
    assert!(home.path.join("__dbq.jobs.0").exists(), "no extent file");
}

/// queue.list is a btree whose key is the queue name plus NUL and whose
/// data is the set count then the get count as little-endian i64.
#[test]
fn queue_list_holds_name_and_counters() {
    let home = Home::new();
    run(
        &home,
        &[],
        &[
            (b"set jobs 0 0 3\r\nabc\r\n", STORED),
            (b"set jobs 0 0 3\r\ndef\r\n", STORED),
            (b"get jobs\r\n", b"VALUE jobs 0 3\r\nabc\r\nEND\r\n"),
            (b"set e 0 0 0\r\n\r\n", STORED),
        ],
    );
    assert_has_lines(dump_header(&home.path, "queue.list"), &["type=btree"]);
    let lines = dump_lines(&home.path, "queue.list");
    let want = [
        b"e\0".to_vec(),
        counters(1, 0),
        b"jobs\0".to_vec(),
        counters(2, 1),
    ];
    let shown: Vec<String> = lines.iter().map(|l| hex(l)).collect();
    let wanted: Vec<String> = want.iter().map(|l| hex(l)).collect();
    assert_eq!(shown, wanted);
    // The consumed message is gone from the queue file.
    let records = dump_lines(&home.path, "jobs");
    assert_eq!(records.len(), 1);
    assert!(records[0].windows(5).any(|w| w == b"def\r\n"));
}

/// -B, -A and -E are honoured: with -B 200 a 176-byte body fits queue
/// `small` and 177 bytes does not, and the database has 200-byte records,
/// 1024-byte pages and 8-page extents.
#[test]
fn record_page_and_extent_flags_are_honoured() {
    let home = Home::new();
    let oom: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
    let fits = set_cmd(b"small", 0, &[b'f'; 176]);
    let too_big = set_cmd(b"small", 0, &[b't'; 177]);
    run(
        &home,
        &["-B", "200", "-A", "1024", "-E", "8"],
        &[(&fits, STORED), (&too_big, oom)],
    );
    let stat = db_tool("stat", &["-h", home.path_str(), "-d", "small"]);
    assert_has_lines(
        stat.lines(),
        &[
            "200\tFixed-length record size",
            "1024\tUnderlying database page size",
            "8\tUnderlying database extent size",
            "1\tNumber of records in the database",
        ],
    );
    let records = dump_lines(&home.path, "small");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].len(), 200, "record length");
    assert!(
        records[0].ends_with(b"ff\r\n"),
        "the record is full, no padding"
    );
}

/// -E 0 makes queues without extent files.
#[test]
fn extent_size_zero_means_no_extent_files() {
    let home = Home::new();
    run(&home, &["-E", "0"], &[(b"set flat 0 0 1\r\nx\r\n", STORED)]);
    let extents: Vec<String> = home
        .files()
        .into_iter()
        .filter(|f| f.starts_with("__dbq."))
        .collect();
    assert_eq!(extents, Vec::<String>::new());
    let stat = db_tool("stat", &["-h", home.path_str(), "-d", "flat"]);
    assert_has_lines(stat.lines(), &["0\tUnderlying database extent size"]);
    assert_eq!(dump_lines(&home.path, "flat").len(), 1);
}

/// `delete` removes the queue's file, its extent files and its queue.list
/// entry, and leaves the other queues alone.
#[test]
fn delete_removes_file_and_queue_list_entry() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    c.set("jobs", 0, b"abc");
    c.set("other", 0, b"xyz");
    assert!(home.path.join("jobs").exists(), "queue file not created");
    c.call(b"delete jobs\r\n", b"DELETED\r\n");
    let left = |home: &Home| -> Vec<String> {
        home.files()
            .into_iter()
            .filter(|f| f == "jobs" || f.starts_with("__dbq.jobs."))
            .collect()
    };
    assert_eq!(left(&home), Vec::<String>::new(), "files after DELETED");
    drop(c);
    server.stop();
    assert_eq!(left(&home), Vec::<String>::new(), "files after stop");
    let keys: Vec<Vec<u8>> = dump_lines(&home.path, "queue.list")
        .into_iter()
        .step_by(2)
        .collect();
    assert_eq!(keys, [b"other\0".to_vec()]);
    db_tool("verify", &["-h", home.path_str(), "queue.list"]);
}

/// After a crash (SIGKILL) and a restart with recovery, the files still
/// verify and hold what was acknowledged.
#[test]
fn files_verify_after_crash_and_recovery() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    for i in 0..20 {
        c.set("crash", i, format!("m{i}").as_bytes());
    }
    drop(c);
    server.kill9();
    run(&home, &[], &[(b"version\r\n", VERSION)]);
    db_tool("verify", &["-h", home.path_str(), "crash"]);
    db_tool("verify", &["-h", home.path_str(), "queue.list"]);
    assert_eq!(dump_lines(&home.path, "crash").len(), 20);
    let lines = dump_lines(&home.path, "queue.list");
    assert_eq!(lines, [b"crash\0".to_vec(), counters(20, 0)]);
}
