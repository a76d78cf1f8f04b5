//! Where we differ from the original on purpose (docs/PROTOCOL.md, "Where
//! we differ", items 1 to 6), plus hostile input: garbage bytes and clients that vanish in the
//! middle of a command.

mod common;

use common::*;
use std::time::Duration;

/// `set <name> 0 0 7` with a 7-byte data block that reads `version`, then a
/// real `version`: a server that skips the refused set's block answers the
/// second `version` only.
fn refused_set(name: &[u8]) -> Vec<u8> {
    let mut cmd = b"set ".to_vec();
    cmd.extend_from_slice(name);
    cmd.extend_from_slice(b" 0 0 7\r\nversion\r\nversion\r\n");
    cmd
}

/// `<verb> <name>\r\n`.
fn line(verb: &str, name: &[u8]) -> Vec<u8> {
    let mut cmd = format!("{verb} ").into_bytes();
    cmd.extend_from_slice(name);
    cmd.extend_from_slice(b"\r\n");
    cmd
}

/// Asserts set, get and delete of `name` are refused with
/// `CLIENT_ERROR bad command line format`, the set's data block skipped.
fn assert_name_refused(c: &mut Client, name: &[u8]) {
    let mut want = BAD_FORMAT.to_vec();
    want.extend_from_slice(VERSION);
    c.send(&refused_set(name));
    let got = c.read_n(want.len());
    assert_eq!(show(&got), show(&want), "set of name {}", show(name));
    for verb in ["get", "delete"] {
        c.send(&line(verb, name));
        let got = c.read_n(BAD_FORMAT.len());
        assert_eq!(
            show(&got),
            show(BAD_FORMAT),
            "{verb} of name {}",
            show(name)
        );
    }
}

/// Names that would escape the home or hit Berkeley DB's own files are
/// refused for set, get and delete; names with control bytes are refused
/// for set only. No file appears inside the home or next to it; the server
/// still restarts cleanly on that home afterwards.
#[test]
fn hostile_queue_names_are_refused_and_touch_no_file() {
    let (home, server) = start(&[]);
    let mut c = server.client();
    c.set("keep", 0, b"safe");
    let home_before = home.files();
    let absolute = format!("{}/escaped", home.parent().display());
    let names: Vec<&[u8]> = vec![
        b"../x",
        b"../../x",
        b"a/b",
        absolute.as_bytes(),
        b"queue.list",
        b"__db.001",
        b"__db.register",
        b"__dbq.keep.0",
        b"log.0000000001",
        b"log.0000000002",
        b".",
        b"..",
    ];
    for name in &names {
        assert_name_refused(&mut c, name);
    }
    // Control bytes are harmless to look up (the original created such
    // queues, so a home may hold one), but no new queue gets them.
    let mut refused = BAD_FORMAT.to_vec();
    refused.extend_from_slice(VERSION);
    for name in [&b"a\x01b"[..], b"\x1b[31m", b"tab\there", b"cr\rhere"] {
        c.send(&refused_set(name));
        let got = c.read_n(refused.len());
        assert_eq!(show(&got), show(&refused), "set of name {}", show(name));
        c.call(&line("get", name), END);
        c.call(&line("delete", name), b"NOT_FOUND\r\n");
    }
    assert_eq!(list_dir(home.parent()), ["home"], "a file escaped the home");
    assert_eq!(home.files(), home_before, "files in the home changed");
    assert_eq!(c.queue_stats(), ["STAT keep 1/0"]);
    drop(c);
    server.stop();
    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(c.queue_stats(), ["STAT keep 1/0"]);
    assert_eq!(c.get("keep").map(|m| m.body), Some(b"safe".to_vec()));
}

/// `DB_CONFIG` is read by Berkeley DB from the home when the environment
/// opens; a queue of that name would be parsed as configuration at the next
/// start, so it is refused like the other reserved names.
#[test]
fn db_config_name_is_refused() {
    let (home, server) = start(&[]);
    let mut c = server.client();
    assert_name_refused(&mut c, b"DB_CONFIG");
    assert!(!home.path.join("DB_CONFIG").exists(), "DB_CONFIG created");
    drop(c);
    server.stop();
    home.start(&[]).client().call(b"version\r\n", VERSION);
}

/// A `set` refused for a 251-byte key still reads and discards its data
/// block, so the next pipelined command works normally.
#[test]
fn refused_long_key_skips_its_data_block() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let mut want = BAD_FORMAT.to_vec();
    want.extend_from_slice(VERSION);
    c.call(&refused_set("k".repeat(251).as_bytes()), &want);
    c.call(b"stats queue\r\n", END);
}

/// Names of 248..250 bytes (too long for Berkeley DB's extent file name
/// `__dbq.<name>.<n>`) are refused cleanly, with a line saying why, and
/// leave no ghost queue: not in `stats queue`, no file, not even after a
/// restart. 240 bytes works.
#[test]
fn names_too_long_for_extent_files_leave_no_ghost_queue() {
    let (home, server) = start(&[]);
    let mut c = server.client();
    for n in 248..=250 {
        let name = "g".repeat(n);
        let mut want = b"CLIENT_ERROR queue name too long for its extent file names\r\n".to_vec();
        want.extend_from_slice(VERSION);
        c.send(&refused_set(name.as_bytes()));
        let got = c.read_n(want.len());
        assert_eq!(show(&got), show(&want), "set of a {n}-byte name");
    }
    c.call(b"stats queue\r\n", END);
    let ghosts: Vec<String> = home
        .files()
        .into_iter()
        .filter(|f| f.contains("gggggggggg"))
        .collect();
    assert_eq!(ghosts, Vec::<String>::new(), "files left by refused names");

    let ok = "g".repeat(240);
    c.set(&ok, 0, b"fits");
    assert_eq!(c.queue_stats(), [format!("STAT {ok} 1/0")]);
    assert_eq!(c.get(&ok).map(|m| m.body), Some(b"fits".to_vec()));
    assert_eq!(c.queue_stats(), [format!("STAT {ok} 1/1")]);
    assert!(
        home.path.join(&ok).exists(),
        "no file for the 240-byte queue"
    );

    drop(c);
    server.stop();
    let server = home.start(&[]);
    assert_eq!(server.client().queue_stats(), [format!("STAT {ok} 1/1")]);
}

/// A multi-key `get` with one bad key in the middle is refused as a whole
/// and consumes nothing from the valid keys.
#[test]
fn multi_key_get_with_bad_key_consumes_nothing() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.set("a", 1, b"first");
    c.set("b", 2, b"second");
    let long = "x".repeat(251);
    for bad in [long.as_str(), "../x", "queue.list"] {
        c.call(format!("get a {bad} b\r\n").as_bytes(), BAD_FORMAT);
    }
    c.call(
        b"get a b\r\n",
        b"VALUE a 1 5\r\nfirst\r\nVALUE b 2 6\r\nsecond\r\nEND\r\n",
    );
    assert_eq!(c.queue_stats(), ["STAT a 1/1", "STAT b 1/1"]);
}

/// Sends `bytes` ignoring write errors (the server may close first).
fn send_lossy(c: &mut Client, bytes: &[u8]) {
    use std::io::Write;
    let _ = c.stream.write_all(bytes);
}

/// Asserts the reply is exactly `CLIENT_ERROR line too long` and the server
/// then closes the connection.
fn expect_line_too_long(c: &mut Client) {
    c.expect(b"CLIENT_ERROR line too long\r\n");
    c.expect_closed();
}

/// A command line longer than 8192 bytes without `\n` gets
/// `CLIENT_ERROR line too long` and the connection is closed; the server
/// keeps serving others.
#[test]
fn overlong_command_line_is_refused_and_closed() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    send_lossy(&mut c, &[b'x'; 9000]);
    expect_line_too_long(&mut c);

    let mut c = server.client();
    let mut set = b"set ".to_vec();
    set.extend(std::iter::repeat_n(b'k', 9000));
    send_lossy(&mut c, &set);
    expect_line_too_long(&mut c);

    server.client().call(b"version\r\n", VERSION);
}

/// `get` lines may be far longer than 8 KiB (a 400 KiB line of missing
/// queues is answered), but past 512 KiB without `\n` they are refused
/// with `CLIENT_ERROR line too long` and closed.
#[test]
fn get_lines_have_a_larger_limit() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let mut get = b"get".to_vec();
    for i in 0..4200 {
        get.extend(format!(" missing-queue-{i:05}-{}", "m".repeat(80)).bytes());
    }
    assert!(get.len() > 400 * 1024);
    get.extend_from_slice(b"\r\n");
    c.call(&get, END);

    let mut c = server.client();
    let mut get = b"get".to_vec();
    while get.len() <= 512 * 1024 + 1000 {
        get.extend_from_slice(b" some-missing-queue");
    }
    send_lossy(&mut c, &get);
    expect_line_too_long(&mut c);
    server.client().call(b"version\r\n", VERSION);
}

/// A `get` naming 300 keys (a line over 8 KiB) answers every key, in order.
#[test]
fn get_with_300_keys_answers_all_in_order() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let queues: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|p| format!("{p}-{}", "q".repeat(58)))
        .collect();
    let mut sets = Vec::new();
    let mut stored = Vec::new();
    for i in 0..100u32 {
        for q in &queues {
            sets.extend(set_cmd(q.as_bytes(), i, format!("{q}#{i}").as_bytes()));
            stored.extend_from_slice(STORED);
        }
    }
    c.call(&sets, &stored);

    let mut get = b"get".to_vec();
    let mut want = Vec::new();
    for i in 0..100u32 {
        for q in &queues {
            get.extend(format!(" {q}").bytes());
            let body = format!("{q}#{i}");
            want.extend(value_reply(q.as_bytes(), &i.to_string(), body.as_bytes()));
        }
    }
    assert!(get.len() > 8192);
    get.extend_from_slice(b"\r\n");
    want.extend_from_slice(END);
    c.call(&get, &want);
}

/// A negative, non-numeric or too large length gets
/// `CLIENT_ERROR bad command line format`, no data block is read, and a
/// valid `set` pipelined right after it is `STORED`.
#[test]
fn bad_length_tokens_are_refused_without_reading_data() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let tokens = [
        "-1",
        "-5",
        "abc",
        "2147483646",
        "4294967296",
        "4294967298",
        "99999999999999999999",
    ];
    for tok in tokens {
        let req = format!("set q 0 0 {tok}\r\nset q 0 0 1\r\nx\r\n");
        let mut want = BAD_FORMAT.to_vec();
        want.extend_from_slice(STORED);
        c.send(req.as_bytes());
        let got = c.read_n(want.len());
        assert_eq!(show(&got), show(&want), "length token {tok}");
    }
    let stored = tokens.len() as u32;
    assert_eq!(c.queue_stats(), [format!("STAT q {stored}/0")]);
    for _ in 0..stored {
        assert_eq!(c.get("q").map(|m| m.body), Some(b"x".to_vec()));
    }
}

/// With -B 1024, queue `big` holds a 1001-byte message but not a 1002-byte
/// one: `SERVER_ERROR out of memory storing object`, the block is
/// discarded and the next command works. A far larger block is discarded
/// the same way.
#[test]
fn message_too_large_for_record_is_refused_and_discarded() {
    let (_home, server) = start(&["-B", "1024"]);
    let mut c = server.client();
    let oom = b"SERVER_ERROR out of memory storing object\r\n";
    c.call(&set_cmd(b"big", 0, &[b'B'; 1001]), STORED);
    for len in [1002, 100_000] {
        let mut req = set_cmd(b"big", 0, &vec![b'C'; len]);
        req.extend_from_slice(b"version\r\n");
        let mut want = oom.to_vec();
        want.extend_from_slice(VERSION);
        c.call(&req, &want);
    }
    let msg = c.get("big").expect("the 1001-byte message");
    assert_eq!(msg.body, vec![b'B'; 1001]);
    c.call(b"get big\r\n", END);
    assert_eq!(c.queue_stats(), ["STAT big 1/1"]);
}

/// Clients that vanish mid-command (half a data block, half a command line,
/// an abortive reset) lose nothing already stored, store nothing partial,
/// and the server keeps serving.
#[test]
fn vanishing_clients_lose_nothing() {
    let (_home, mut server) = start(&[]);
    let mut c = server.client();
    for i in 0..3 {
        c.set("q", i, format!("kept-{i}").as_bytes());
    }
    c.send(b"set q 0 0 100\r\n");
    c.send(&[b'h'; 50]);
    drop(c);

    let mut c = server.client();
    c.send(b"set q 0 0");
    drop(c);

    let mut c = server.client();
    c.send(b"set q 0 0 10\r\nhalf");
    set_linger_zero(&c.stream);
    drop(c);

    let mut c = server.client();
    c.send(b"get q q q q\r");
    c.shutdown_write();
    drop(c);

    std::thread::sleep(std::time::Duration::from_millis(300));
    server.assert_running();
    let mut c = server.client();
    for i in 0..3 {
        let msg = c.get("q").expect("stored message survived");
        assert_eq!(
            (msg.flags, msg.body),
            (i.to_string(), format!("kept-{i}").into_bytes())
        );
    }
    c.call(b"get q\r\n", END);
    assert_eq!(c.queue_stats(), ["STAT q 3/3"]);
}

/// Random bytes: without newlines (one reply when the line ends), with
/// newlines (one `ERROR` or `CLIENT_ERROR` line per garbage line), and an
/// endless line. The server never crashes and serves normally afterwards.
#[test]
fn garbage_bytes_get_errors_and_never_crash() {
    let (_home, mut server) = start(&[]);
    let mut rng = Rng::new(0x6d63_7121);

    // 4000 bytes with no newline, then one.
    let mut c = server.client();
    let mut junk: Vec<u8> = (0..4000)
        .map(|_| rng.byte())
        .filter(|b| *b != b'\n')
        .collect();
    junk.push(b'\n');
    c.send(&junk);
    assert_error_line(&c.read_line());
    c.call(b"version\r\n", VERSION);

    // About 1300 random lines, then `version`.
    let mut c = server.client();
    let mut junk = Vec::new();
    while junk.len() < 64 * 1024 {
        let b = rng.byte();
        junk.push(if b < 5 { b'\n' } else { b });
    }
    junk.push(b'\n');
    let lines = junk.iter().filter(|b| **b == b'\n').count();
    junk.extend_from_slice(b"version\r\n");
    c.send(&junk);
    for _ in 0..lines {
        assert_error_line(&c.read_line());
    }
    c.expect(VERSION);

    // A line that never ends.
    let mut c = server.client();
    let junk: Vec<u8> = (0..20_000).map(|_| rng.byte() | 0x80).collect();
    send_lossy(&mut c, &junk);
    c.expect(b"CLIENT_ERROR line too long\r\n");

    server.assert_running();
    let mut c = server.client();
    c.set("after", 0, b"still serving");
    assert_eq!(
        c.get("after").map(|m| m.body),
        Some(b"still serving".to_vec())
    );
}

/// A reply to a garbage line: `ERROR` or some `CLIENT_ERROR`.
fn assert_error_line(line: &[u8]) {
    assert!(
        line == b"ERROR" || line.starts_with(b"CLIENT_ERROR "),
        "reply to garbage: {}",
        show(line)
    );
}

/// Whether `client` answers `version` within `wait`.
fn answers_version(client: &mut Client, wait: Duration) -> bool {
    client.send(b"version\r\n");
    client.stream.set_read_timeout(Some(wait)).unwrap();
    let line = client.try_read_line();
    client.stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    line.as_deref() == Some(&VERSION[..VERSION.len() - 2])
}

/// Out of file descriptors (EMFILE), waiting connections stay in the
/// backlog and are served as soon as other connections close.
#[test]
fn connections_waiting_on_emfile_are_served_after_others_close() {
    let home = Home::new();
    // As `ulimit -n 64` would: 64 descriptors, soft and hard.
    let server = Server::start_with_limits(
        &home.path,
        &["-c", "1000"],
        &[(libc::RLIMIT_NOFILE, 64, 64)],
    );
    let port = server.port;
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..80 {
        let mut c = Client::connect(port);
        if waiting.is_empty() && answers_version(&mut c, Duration::from_millis(500)) {
            served.push(c);
        } else {
            waiting.push(c);
        }
    }
    assert!(
        !waiting.is_empty(),
        "64 descriptors should not hold 80 clients"
    );
    assert!(served.len() >= waiting.len(), "too few served to free room");
    served.truncate(served.len() - waiting.len());
    for (i, c) in waiting.iter_mut().enumerate() {
        // The first one already asked while we probed.
        if i > 0 {
            c.send(b"version\r\n");
        }
        c.expect(VERSION);
    }
}
