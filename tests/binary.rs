//! memcached's binary protocol against the real server, byte for byte:
//! every opcode it runs or refuses, quiet variants, opaque echo, the
//! record number as CAS, pipelines cut at every byte, malformed headers,
//! and a half-close after a `Get` (docs/PROTOCOL.md, "The binary
//! protocol").

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCR: u8 = 0x05;
const DECR: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const STAT: u8 = 0x10;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const DELETEQ: u8 = 0x14;
const QUITQ: u8 = 0x17;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const SASL_LIST_MECHS: u8 = 0x20;

const OK: u16 = 0x0000;
const NOT_FOUND: u16 = 0x0001;
const EXISTS: u16 = 0x0002;
const TOO_LARGE: u16 = 0x0003;
const INVALID: u16 = 0x0004;
const NOT_STORED: u16 = 0x0005;
const UNKNOWN: u16 = 0x0081;

use common::binary_frames::{request as req, response as resp};

/// A `Set` (or `SetQ`) of `value` with `flags` to `key`.
fn set(opcode: u8, key: &[u8], flags: u32, value: &[u8], opaque: u32) -> Vec<u8> {
    let mut extras = flags.to_be_bytes().to_vec();
    extras.extend_from_slice(&[0, 0, 0, 0]);
    req(opcode, &extras, key, value, opaque)
}

/// A success with no body.
fn ok(opcode: u8, opaque: u32) -> Vec<u8> {
    resp(opcode, OK, b"", b"", b"", opaque, 0)
}

/// A failure with its message.
fn err(opcode: u8, status: u16, why: &str, opaque: u32) -> Vec<u8> {
    resp(opcode, status, b"", b"", why.as_bytes(), opaque, 0)
}

/// A message as `Get` (no key) returns it: flags in the extras, the record
/// number as CAS.
fn value(opcode: u8, key: &[u8], flags: u32, data: &[u8], opaque: u32, recno: u64) -> Vec<u8> {
    resp(opcode, OK, &flags.to_be_bytes(), key, data, opaque, recno)
}

/// Reads one response packet: (header, body).
fn read_packet(c: &mut Client) -> (Vec<u8>, Vec<u8>) {
    let header = c.read_n(24);
    assert_eq!(header.len(), 24, "a whole header: {}", show(&header));
    let body_len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let body = c.read_n(body_len);
    (header, body)
}

#[test]
fn stores_and_takes_with_flags_cas_and_opaque() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(&set(SET, b"jobs", 7, b"first", 11), &ok(SET, 11));
    c.call(&set(SET, b"jobs", 0xffff_ffff, b"second", 12), &ok(SET, 12));
    c.call(&set(SET, b"jobs", 0, b"third", 13), &ok(SET, 13));
    c.call(&set(SET, b"jobs", 0, b"fourth", 14), &ok(SET, 14));
    c.call(
        &req(GET, b"", b"jobs", b"", 21),
        &value(GET, b"", 7, b"first", 21, 1),
    );
    c.call(
        &req(GETK, b"", b"jobs", b"", 22),
        &value(GETK, b"jobs", 0xffff_ffff, b"second", 22, 2),
    );
    c.call(
        &req(GETQ, b"", b"jobs", b"", 23),
        &value(GETQ, b"", 0, b"third", 23, 3),
    );
    c.call(
        &req(GETKQ, b"", b"jobs", b"", 24),
        &value(GETKQ, b"jobs", 0, b"fourth", 24, 4),
    );
    c.call(
        &req(GET, b"", b"jobs", b"", 25),
        &err(GET, NOT_FOUND, "Not found", 25),
    );
    c.call(
        &req(GETK, b"", b"jobs", b"", 26),
        &resp(GETK, NOT_FOUND, b"", b"jobs", b"Not found", 26, 0),
    );
    // The text side sees the same queue, flags as the original prints them.
    c.call(&req(NOOP, b"", b"", b"", 27), &ok(NOOP, 27));
    let mut text = server.client();
    assert_eq!(text.queue_stats(), ["STAT jobs 4/4"]);
    text.set("jobs", 3, b"from text");
    c.call(
        &req(GET, b"", b"jobs", b"", 28),
        &value(GET, b"", 3, b"from text", 28, 5),
    );
}

#[test]
fn delete_version_noop_and_stats() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(&set(SET, b"gone", 0, b"x", 1), &ok(SET, 1));
    c.call(&req(DELETE, b"", b"gone", b"", 2), &ok(DELETE, 2));
    c.call(
        &req(DELETE, b"", b"gone", b"", 3),
        &err(DELETE, NOT_FOUND, "Not found", 3),
    );
    c.call(&req(NOOP, b"", b"", b"", 4), &ok(NOOP, 4));
    c.call(
        &req(VERSION, b"", b"", b"", 5),
        &resp(VERSION, OK, b"", b"", b"0.2.1", 5, 0),
    );
    c.call(&set(SET, b"jobs", 0, b"m", 6), &ok(SET, 6));
    // `Stat` with no key: one packet per `stats` line, then an empty one.
    c.send(&req(STAT, b"", b"", b"", 7));
    let mut names = Vec::new();
    loop {
        let (header, body) = read_packet(&mut c);
        assert_eq!(&header[..2], &[0x81, STAT]);
        assert_eq!(&header[6..8], &OK.to_be_bytes());
        assert_eq!(&header[12..16], &7u32.to_be_bytes(), "opaque echoed");
        let key_len = u16::from_be_bytes([header[2], header[3]]) as usize;
        if key_len == 0 {
            assert!(body.is_empty());
            break;
        }
        let name = String::from_utf8_lossy(&body[..key_len]).into_owned();
        let stat = String::from_utf8_lossy(&body[key_len..]).into_owned();
        if name == "version" {
            assert_eq!(stat, "0.2.1");
        }
        names.push(name);
    }
    assert_eq!(&names[..2], ["pid", "uptime"]);
    assert!(names.contains(&"set_cmds".to_string()), "{names:?}");
    // `Stat queue`: the `stats queue` lines.
    let mut want = resp(STAT, OK, b"", b"jobs", b"1/0", 8, 0);
    want.extend(ok(STAT, 8));
    c.call(&req(STAT, b"", b"queue", b"", 8), &want);
    c.call(
        &req(STAT, b"", b"nonsense", b"", 9),
        &err(STAT, UNKNOWN, "Unknown command", 9),
    );
}

/// Every opcode a queue does not run gets its error, the opaque echoed
/// and its whole body skipped; the next request is answered in step.
#[test]
fn other_opcodes_are_refused_in_step() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(&set(SET, b"q", 0, b"kept", 1), &ok(SET, 1));
    let refused = [
        (
            set(ADD, b"q", 0, b"x", 10),
            err(ADD, EXISTS, "Data exists for key", 10),
        ),
        (
            set(ADDQ, b"q", 0, b"x", 11),
            err(ADDQ, EXISTS, "Data exists for key", 11),
        ),
        (
            set(REPLACE, b"q", 0, b"x", 12),
            err(REPLACE, NOT_FOUND, "Not found", 12),
        ),
        (
            req(APPEND, b"", b"q", b"more", 13),
            err(APPEND, NOT_STORED, "Not stored", 13),
        ),
        (
            req(PREPEND, b"", b"q", b"more", 14),
            err(PREPEND, NOT_STORED, "Not stored", 14),
        ),
        (
            req(INCR, &[0; 20], b"q", b"", 15),
            err(INCR, UNKNOWN, "Unknown command", 15),
        ),
        (
            req(DECR, &[0; 20], b"q", b"", 16),
            err(DECR, UNKNOWN, "Unknown command", 16),
        ),
        (
            req(FLUSH, &[0; 4], b"", b"", 17),
            err(FLUSH, UNKNOWN, "Unknown command", 17),
        ),
        (
            req(TOUCH, &[0; 4], b"q", b"", 18),
            err(TOUCH, UNKNOWN, "Unknown command", 18),
        ),
        (
            req(GAT, &[0; 4], b"q", b"", 19),
            err(GAT, UNKNOWN, "Unknown command", 19),
        ),
        (
            req(SASL_LIST_MECHS, b"", b"", b"", 20),
            err(SASL_LIST_MECHS, UNKNOWN, "Unknown command", 20),
        ),
        (
            req(0x7f, b"", b"q", b"abc", 21),
            err(0x7f, UNKNOWN, "Unknown command", 21),
        ),
    ];
    for (request, answer) in &refused {
        c.call(request, answer);
        c.call(&req(NOOP, b"", b"", b"", 99), &ok(NOOP, 99));
    }
    // A set with a CAS has nothing to compare: not stored.
    let mut with_cas = set(SET, b"q", 0, b"x", 30);
    with_cas[16..24].copy_from_slice(&5u64.to_be_bytes());
    c.call(&with_cas, &err(SET, EXISTS, "Data exists for key", 30));
    // Keys no text line could carry, and bad options, are refused.
    c.call(
        &set(SET, b"a b", 0, b"x", 31),
        &err(SET, INVALID, "bad command line format", 31),
    );
    c.call(
        &req(GET, b"", b"q/opne", b"", 32),
        &err(GET, INVALID, "bad command line format", 32),
    );
    c.call(
        &req(GET, b"", b"q", b"", 33),
        &value(GET, b"", 0, b"kept", 33, 1),
    );
    assert_eq!(server.client().queue_stats(), ["STAT q 1/1"]);
}

#[test]
fn quiet_requests_in_one_pipeline() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let mut pipeline = Vec::new();
    for (i, body) in [b"a", b"b", b"c"].iter().enumerate() {
        pipeline.extend(set(SETQ, b"jobs", i as u32, *body, i as u32));
    }
    pipeline.extend(req(GETKQ, b"", b"jobs", b"", 10));
    pipeline.extend(req(GETKQ, b"", b"empty", b"", 11));
    pipeline.extend(req(GETQ, b"", b"jobs", b"", 12));
    pipeline.extend(req(DELETEQ, b"", b"nothere", b"", 13));
    pipeline.extend(req(DELETEQ, b"", b"jobs", b"", 14));
    pipeline.extend(req(NOOP, b"", b"", b"", 15));
    let mut want = value(GETKQ, b"jobs", 0, b"a", 10, 1);
    want.extend(value(GETQ, b"", 1, b"b", 12, 2));
    want.extend(err(DELETEQ, NOT_FOUND, "Not found", 13));
    want.extend(ok(NOOP, 15));
    c.call(&pipeline, &want);
    assert_eq!(server.client().queue_stats(), Vec::<String>::new());
}

/// A pipeline of `Set`, `Get`, `Noop`, the `Set` cut at every byte (the
/// first piece sent, a pause, then the rest): each round stores and takes
/// one message, answered exactly, on the same connection.
#[test]
fn a_pipeline_cut_at_every_byte_of_a_set() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    let round = |i: u32| {
        let body = format!("message {i:03}");
        let mut pipeline = set(SET, b"jobs", i, body.as_bytes(), i);
        let set_len = pipeline.len();
        pipeline.extend(req(GET, b"", b"jobs", b"", 1000 + i));
        pipeline.extend(req(NOOP, b"", b"", b"", 2000 + i));
        let mut want = ok(SET, i);
        want.extend(value(
            GET,
            b"",
            i,
            body.as_bytes(),
            1000 + i,
            u64::from(i) + 1,
        ));
        want.extend(ok(NOOP, 2000 + i));
        (pipeline, set_len, want)
    };
    let (_, set_len, _) = round(0);
    for cut in 0..=set_len {
        let (pipeline, _, want) = round(cut as u32);
        c.send(&pipeline[..cut]);
        std::thread::sleep(std::time::Duration::from_millis(3));
        c.send(&pipeline[cut..]);
        c.expect(&want);
    }
    let n = set_len + 1;
    assert_eq!(
        server.client().queue_stats(),
        [format!("STAT jobs {n}/{n}")]
    );
}

#[test]
fn a_value_too_large_is_refused_and_skipped() {
    let (_home, server) = start(&["-B", "1024"]);
    let mut c = server.client();
    let big = vec![b'x'; 2000];
    c.call(
        &set(SET, b"q", 0, &big, 1),
        &err(SET, TOO_LARGE, "out of memory storing object", 1),
    );
    // A body far larger than any buffer is skipped as it arrives.
    let huge = vec![b'y'; 3 << 20];
    c.call(
        &set(SETQ, b"q", 0, &huge, 2),
        &err(SETQ, TOO_LARGE, "out of memory storing object", 2),
    );
    c.call(
        &req(GET, b"", b"q", b"", 3),
        &err(GET, NOT_FOUND, "Not found", 3),
    );
    assert_eq!(server.client().queue_stats(), Vec::<String>::new());
}

/// Headers that cannot be framed: an error, then the close; what came
/// before is answered and kept.
#[test]
fn malformed_headers_close_after_an_error() {
    let (_home, server) = start(&[]);
    let mut bad_magic = req(GET, b"", b"q", b"", 5);
    bad_magic[0] = 0x81;
    let mut body_too_large = req(GET, b"", b"q", b"", 6);
    body_too_large[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut key_beyond_body = req(GET, b"", b"q", b"", 7);
    key_beyond_body[2..4].copy_from_slice(&300u16.to_be_bytes());
    for (i, (bad, why)) in [
        (bad_magic, "bad magic byte"),
        (body_too_large, "body too large"),
        (key_beyond_body, "key and extras longer than the body"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = server.client();
        let mut pipeline = set(SET, b"q", 0, b"kept", 1);
        pipeline.extend(&bad);
        let mut want = ok(SET, 1);
        if i == 0 {
            // No header to echo: the answer names no request (`Noop`).
            want.extend(err(NOOP, INVALID, why, 0));
        } else {
            let opaque = u32::from_be_bytes([bad[12], bad[13], bad[14], bad[15]]);
            want.extend(err(bad[1], INVALID, why, opaque));
        }
        c.call(&pipeline, &want);
        c.expect_closed();
    }
    assert_eq!(server.client().queue_stats(), ["STAT q 3/0"]);
}

/// A binary client that sends two `Get`s and half-closes at once gets both
/// messages, then the close, as a text client does; the third message
/// stays.
#[test]
fn a_half_close_after_gets_delivers_them() {
    let (_home, server) = start(&[]);
    let mut text = server.client();
    for body in [&b"one"[..], b"two", b"three"] {
        text.set("q", 0, body);
    }
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut pipeline = req(GET, b"", b"q", b"", 1);
    pipeline.extend(req(GETK, b"", b"q", b"", 2));
    stream.write_all(&pipeline).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("the close");
    let mut want = value(GET, b"", 0, b"one", 1, 1);
    want.extend(value(GETK, b"q", 0, b"two", 2, 2));
    assert_eq!(show(&got), show(&want));
    assert_eq!(text.drain("q").len(), 1);
}

/// Reliable reads through binary keys: `/open` hands out and leases, a
/// `GetK` echoes the key with its options, `/close` answers not found
/// (nothing handed out) and deletes; `Quit` answers then closes, `QuitQ`
/// closes silently.
#[test]
fn reliable_reads_and_quit() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(&set(SET, b"jobs", 0, b"task", 1), &ok(SET, 1));
    c.call(
        &req(GETK, b"", b"jobs/open", b"", 2),
        &value(GETK, b"jobs/open", 0, b"task", 2, 1),
    );
    let mut other = server.client();
    other.call(b"get jobs\r\n", b"END\r\n");
    c.call(
        &req(GETK, b"", b"jobs/close", b"", 3),
        &resp(GETK, NOT_FOUND, b"", b"jobs/close", b"Not found", 3, 0),
    );
    c.call(&req(QUIT, b"", b"", b"", 4), &ok(QUIT, 4));
    c.expect_closed();
    let mut q = server.client();
    q.send(&req(QUITQ, b"", b"", b"", 5));
    q.expect_closed();
    assert_eq!(server.client().queue_stats(), ["STAT jobs 1/1"]);
}
