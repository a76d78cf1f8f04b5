//! Compatibility of the on-disk layout (docs/STORAGE.md) in both
//! directions, checked with an encoder and decoder written here from the
//! record table alone, and Debian's `db5.3_load` / `db5.3_dump`:
//!
//! - a home built by hand (no code of this project involved) is served
//!   unchanged: counters, order, flags and bodies;
//! - a home written by the server decodes to what was sent.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::*;

/// One message as the legacy layout stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    /// The queue name.
    name: Vec<u8>,
    /// Flags as the protocol prints them (signed 32-bit decimal).
    flags: String,
    /// The message body.
    body: Vec<u8>,
}

impl Msg {
    /// A message whose flags were given to `set` as the unsigned `flags`.
    fn new(name: &str, flags: u32, body: &[u8]) -> Msg {
        Msg {
            name: name.as_bytes().to_vec(),
            flags: (flags as i32).to_string(),
            body: body.to_vec(),
        }
    }

    /// What `get` returns for it.
    fn as_message(&self) -> Message {
        Message {
            flags: self.flags.clone(),
            body: self.body.clone(),
        }
    }
}

/// The unpadded record bytes of `msg`, built from the record table: i32 LE
/// data length + 2, suffix length, name length, two zero bytes, name, NUL,
/// `" <flags> <len>\r\n"`, data, `\r\n`.
fn encode(msg: &Msg) -> Vec<u8> {
    let suffix = format!(" {} {}\r\n", msg.flags, msg.body.len());
    let mut rec = Vec::new();
    rec.extend_from_slice(&(msg.body.len() as i32 + 2).to_le_bytes());
    rec.push(u8::try_from(suffix.len()).expect("suffix length"));
    rec.push(u8::try_from(msg.name.len()).expect("name length"));
    rec.extend_from_slice(&[0, 0]);
    rec.extend_from_slice(&msg.name);
    rec.push(0);
    rec.extend_from_slice(suffix.as_bytes());
    rec.extend_from_slice(&msg.body);
    rec.extend_from_slice(b"\r\n");
    rec
}

/// Decodes one fixed-length record, checking every field against the
/// others and that the rest up to `re_len` is space padding.
fn decode(rec: &[u8], re_len: usize) -> Msg {
    assert_eq!(rec.len(), re_len, "record length: {}", show(rec));
    let nbytes = i32::from_le_bytes(rec[0..4].try_into().unwrap());
    let suffix_len = rec[4] as usize;
    let name_len = rec[5] as usize;
    assert_eq!(&rec[6..8], &[0, 0], "padding bytes: {}", show(rec));
    let name = rec[8..8 + name_len].to_vec();
    assert_eq!(rec[8 + name_len], 0, "no NUL after name: {}", show(rec));
    let at = 9 + name_len;
    let suffix = std::str::from_utf8(&rec[at..at + suffix_len]).expect("ascii suffix");
    let fields = suffix
        .strip_prefix(' ')
        .and_then(|s| s.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("suffix {suffix:?}"));
    let (flags, len) = fields
        .split_once(' ')
        .unwrap_or_else(|| panic!("suffix {suffix:?}"));
    flags
        .parse::<i32>()
        .unwrap_or_else(|_| panic!("flags in {suffix:?}"));
    let len: usize = len.parse().unwrap_or_else(|_| panic!("len in {suffix:?}"));
    assert_eq!(
        nbytes as usize,
        len + 2,
        "length field vs suffix {suffix:?}"
    );
    let at = at + suffix_len;
    let body = rec[at..at + len].to_vec();
    assert_eq!(show(&rec[at + len..at + len + 2]), "\\r\\n", "data end");
    let pad = &rec[at + len + 2..];
    assert!(
        pad.iter().all(|&b| b == b' '),
        "padding not spaces: {}",
        show(pad)
    );
    Msg {
        name,
        flags: flags.to_string(),
        body,
    }
}

/// `db_dump` bytevalue text of a queue database holding `records` in
/// order (no keys: `db_load` numbers them from 1). No `re_pad` line: the
/// default pad is the space the layout needs (and `db_load` would take the
/// first character of the value, not a number).
fn queue_dump(re_len: usize, pagesize: usize, extentsize: usize, records: &[Vec<u8>]) -> String {
    let mut text = format!("VERSION=3\nformat=bytevalue\ntype=queue\nre_len={re_len}\n");
    // 0 (no extent files) is written by leaving the line out.
    if extentsize > 0 {
        text.push_str(&format!("extentsize={extentsize}\n"));
    }
    text.push_str(&format!("db_pagesize={pagesize}\nHEADER=END\n"));
    for rec in records {
        text.push(' ');
        text.push_str(&hex(rec));
        text.push('\n');
    }
    text.push_str("DATA=END\n");
    text
}

/// Loads dump `text` into database `db` of `home` with `db5.3_load`.
fn load(home: &Home, db: &str, text: &str) {
    let file = home.parent().join(format!("{db}.dump"));
    fs::write(&file, text).expect("write dump file");
    let file = file.to_str().expect("utf-8 path");
    db_tool("load", &["-h", home.path_str(), "-f", file, db]);
}

/// The data records of queue `db`, decoded.
fn decoded(home: &Path, db: &str, re_len: usize) -> Vec<Msg> {
    dump_lines(home, db)
        .iter()
        .map(|r| decode(r, re_len))
        .collect()
}

/// queue.list decoded to name -> (set count, get count).
fn queue_list(home: &Path) -> BTreeMap<String, (i64, i64)> {
    let lines = dump_lines(home, "queue.list");
    assert!(lines.len().is_multiple_of(2), "key/data pairs: {lines:?}");
    lines
        .chunks(2)
        .map(|kv| {
            let key = kv[0].strip_suffix(&[0]).expect("key ends with NUL");
            let name = String::from_utf8(key.to_vec()).expect("utf-8 name");
            assert_eq!(kv[1].len(), 16, "value of {name}: {}", show(&kv[1]));
            let set = i64::from_le_bytes(kv[1][..8].try_into().unwrap());
            let get = i64::from_le_bytes(kv[1][8..].try_into().unwrap());
            (name, (set, get))
        })
        .collect()
}

/// A body of `len` bytes cycling through every byte value from `start`.
fn binary(len: usize, start: u8) -> Vec<u8> {
    (0..len).map(|i| start.wrapping_add(i as u8)).collect()
}

/// The longest body for `name` and `flags` that fits `re_len` exactly.
fn body_at_limit(name: &str, flags: u32, re_len: usize) -> Vec<u8> {
    let fits = |len: usize| encode(&Msg::new(name, flags, &vec![b'x'; len])).len() <= re_len;
    let mut len = 0;
    while fits(len + 1) {
        len += 1;
    }
    let body = binary(len, 7);
    assert_eq!(encode(&Msg::new(name, flags, &body)).len(), re_len);
    body
}

/// Extent files `__dbq.<queue>.<n>` in `dir`.
fn extents(dir: &Path, queue: &str) -> Vec<String> {
    let prefix = format!("__dbq.{queue}.");
    list_dir(dir)
        .into_iter()
        .filter(|f| f.starts_with(&prefix))
        .collect()
}

/// The hand-built legacy queues: name, re_len, pagesize, extentsize and
/// the messages, oldest first.
fn legacy_queues() -> Vec<(&'static str, usize, usize, usize, Vec<Msg>)> {
    let jobs = vec![
        Msg::new("jobs", 0, b"hello"),
        Msg::new("jobs", 4294967295, b"a\0b\r\nc\r\nEND\r\n"),
        Msg::new("jobs", 123456, b""),
        Msg::new("jobs", 2147483648, b"VALUE jobs 0 1\r\n"),
        Msg::new("jobs", 7, &body_at_limit("jobs", 7, 1024)),
    ];
    let mail = vec![
        Msg::new("mail.box", 1, &binary(256, 0)),
        Msg::new("mail.box", 65536, b"\r\n"),
    ];
    let tiny: Vec<Msg> = (0..29u32)
        .map(|i| Msg::new("tiny", i * 1000, format!("msg-{i}").as_bytes()))
        .chain([Msg::new(
            "tiny",
            4294967294,
            &body_at_limit("tiny", 4294967294, 100),
        )])
        .collect();
    vec![
        ("empty", 1024, 4096, 16384, vec![]),
        ("jobs", 1024, 4096, 16384, jobs),
        ("mail.box", 1024, 4096, 0, mail),
        ("tiny", 100, 512, 2, tiny),
    ]
}

/// A home built by hand with `db5.3_load` is served unchanged: `stats
/// queue` shows the stored counters, each queue drains to exactly the
/// stored messages in order, an old queue keeps its own record format
/// while a new one gets the server's, and the counters are written back.
#[test]
fn hand_built_legacy_home_is_served_unchanged() {
    let home = Home::new();
    let list =
        fs::read_to_string(fixture_path("legacy/queue.list.dump")).expect("queue.list fixture");
    load(&home, "queue.list", &list);
    let queues = legacy_queues();
    for (name, re_len, pagesize, extentsize, msgs) in &queues {
        let records: Vec<Vec<u8>> = msgs.iter().map(encode).collect();
        load(
            &home,
            name,
            &queue_dump(*re_len, *pagesize, *extentsize, &records),
        );
        // The loaded file holds what we meant, independently of the server.
        assert_eq!(&decoded(&home.path, name, *re_len), msgs, "loaded {name}");
    }
    let tiny_extents = extents(&home.path, "tiny");
    assert!(tiny_extents.len() >= 3, "tiny extents: {tiny_extents:?}");
    assert_eq!(extents(&home.path, "mail.box"), Vec::<String>::new());
    let want_list: BTreeMap<String, (i64, i64)> = [
        ("empty", (3, 3)),
        ("jobs", (12, 7)),
        ("mail.box", (2, 1)),
        ("tiny", (300, 270)),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect();
    assert_eq!(queue_list(&home.path), want_list, "loaded queue.list");

    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(
        c.queue_stats(),
        [
            "STAT empty 3/3",
            "STAT jobs 12/7",
            "STAT mail.box 2/1",
            "STAT tiny 300/270"
        ]
    );
    for (name, _, _, _, msgs) in &queues {
        let want: Vec<Message> = msgs.iter().map(Msg::as_message).collect();
        assert_eq!(c.drain(name), want, "drained {name}");
    }
    assert_eq!(
        c.queue_stats(),
        [
            "STAT empty 3/3",
            "STAT jobs 12/12",
            "STAT mail.box 2/3",
            "STAT tiny 300/300"
        ]
    );
    // The old queue still takes messages; a new one is created as usual.
    c.set("tiny", 5, b"after");
    c.set("fresh", 9, b"new");
    assert_eq!(
        c.get("tiny"),
        Some(Message {
            flags: "5".into(),
            body: b"after".to_vec()
        })
    );
    drop(c);
    server.stop();

    assert_has_lines(
        dump_header(&home.path, "tiny"),
        &["re_len=100", "extentsize=2", "db_pagesize=512"],
    );
    assert_has_lines(
        dump_header(&home.path, "fresh"),
        &["re_len=1024", "extentsize=16384", "db_pagesize=4096"],
    );
    assert_eq!(
        decoded(&home.path, "fresh", 1024),
        [Msg::new("fresh", 9, b"new")]
    );
    assert_eq!(decoded(&home.path, "tiny", 100), []);
    let mut want_list = want_list;
    want_list.insert("jobs".into(), (12, 12));
    want_list.insert("mail.box".into(), (2, 3));
    want_list.insert("tiny".into(), (301, 301));
    want_list.insert("fresh".into(), (1, 0));
    assert_eq!(queue_list(&home.path), want_list, "queue.list after stop");
}

/// A home the server wrote with default flags decodes, record by record,
/// to the names, flags and bodies that were sent, and queue.list to the
/// counters.
#[test]
fn server_home_decodes_independently() {
    let home = Home::new();
    let alpha = [
        Msg::new("alpha", 0, b"first"),
        Msg::new("alpha", 4294967295, b"\0\r\n\0"),
        Msg::new("alpha", 65536, &binary(300, 200)),
        Msg::new("alpha", 2147483647, b"END\r\nVALUE x 0 0\r\n"),
        Msg::new("alpha", 1, b""),
    ];
    let beta = [
        Msg::new("beta.q", 42, &body_at_limit("beta.q", 42, 1024)),
        Msg::new("beta.q", 2147483648, &binary(900, 0)),
    ];
    let server = home.start(&[]);
    let mut c = server.client();
    for m in alpha.iter().chain(&beta) {
        c.set(&m.name, m.flags.parse::<i32>().unwrap() as u32, &m.body);
    }
    assert_eq!(c.get("alpha"), Some(alpha[0].as_message()));
    assert_eq!(c.get("alpha"), Some(alpha[1].as_message()));
    drop(c);
    server.stop();

    assert_eq!(decoded(&home.path, "alpha", 1024), alpha[2..]);
    assert_eq!(decoded(&home.path, "beta.q", 1024), beta);
    let want: BTreeMap<String, (i64, i64)> = [
        ("alpha".to_string(), (5, 2)),
        ("beta.q".to_string(), (2, 0)),
    ]
    .into();
    assert_eq!(queue_list(&home.path), want);
}

/// With -B 100 -A 512 -E 2 the server writes 100-byte records in 2-page
/// extents; what is left after some gets decodes to the rest, in order.
#[test]
fn server_home_with_small_records_and_extents_decodes() {
    let home = Home::new();
    let mut msgs: Vec<Msg> = (0..40u32)
        .map(|i| {
            Msg::new(
                "ext",
                i.wrapping_mul(2654435761),
                &binary(i as usize, i as u8),
            )
        })
        .collect();
    msgs.push(Msg::new("ext", 3, &body_at_limit("ext", 3, 100)));
    let server = home.start(&["-B", "100", "-A", "512", "-E", "2"]);
    let mut c = server.client();
    for m in &msgs {
        c.set("ext", m.flags.parse::<i32>().unwrap() as u32, &m.body);
    }
    for m in &msgs[..9] {
        assert_eq!(c.get("ext"), Some(m.as_message()));
    }
    drop(c);
    server.stop();

    assert_has_lines(
        dump_header(&home.path, "ext"),
        &["re_len=100", "extentsize=2", "db_pagesize=512"],
    );
    let files = extents(&home.path, "ext");
    assert!(files.len() >= 3, "ext extents: {files:?}");
    assert_eq!(decoded(&home.path, "ext", 100), msgs[9..]);
    let want: BTreeMap<String, (i64, i64)> = [("ext".to_string(), (41, 9))].into();
    assert_eq!(queue_list(&home.path), want);
}
