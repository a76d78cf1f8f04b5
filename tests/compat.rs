//! What memcache clients send beyond MemcacheQ 0.2.1's subset, and the
//! original's last byte-level fine points (docs/PROTOCOL.md, "Where we
//! differ"): `noreply`, `gets`, the storage commands we do not run, flags
//! as `strtoul` reads them, `verbosity`, tabs in keys, and long names.
//! Every reply is asserted as exact bytes against the real binary.

mod common;

use common::*;

const OK: &[u8] = b"OK\r\n";
const TOO_LONG_FOR_EXTENTS: &[u8] =
    b"CLIENT_ERROR queue name too long for its extent file names\r\n";

/// `set ... noreply` stores and sends nothing: the next reply the client
/// reads is the one to its next command (pymemcache's default).
#[test]
fn noreply_set_stores_and_sends_nothing() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(
        b"set q 5 0 2 noreply\r\nhi\r\nset q 0 0 3 noreply\r\nyou\r\nget q\r\n",
        b"VALUE q 5 2\r\nhi\r\nEND\r\n",
    );
    c.call(b"get q\r\n", b"VALUE q 0 3\r\nyou\r\nEND\r\n");
    assert_eq!(c.queue_stats(), ["STAT q 2/2"]);
}

/// A refused `noreply` set (bad name, too large, bad chunk) still swallows
/// its data block and sends no line; the next command is answered.
#[test]
fn refused_noreply_sets_swallow_their_block_silently() {
    let (_home, server) = start(&["-B", "64"]);
    let mut c = server.client();
    let big = "x".repeat(100);
    c.call(
        format!("set ../x 0 0 2 noreply\r\nhi\r\nset q 0 0 100 noreply\r\n{big}\r\nversion\r\n")
            .as_bytes(),
        VERSION,
    );
    assert_eq!(c.queue_stats(), Vec::<String>::new());
}

/// `delete q noreply` (and with a time before it) deletes and sends
/// nothing; a plain `delete q <time>` still answers.
#[test]
fn noreply_delete_deletes_silently() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    for q in ["a", "b", "c"] {
        c.set(q, 0, b"x");
    }
    c.call(
        b"delete a noreply\r\ndelete b 0 noreply\r\nversion\r\n",
        VERSION,
    );
    c.call(b"delete c 0\r\n", b"DELETED\r\n");
    c.call(b"delete a noreply\r\nversion\r\n", VERSION);
    assert_eq!(c.queue_stats(), Vec::<String>::new());
}

/// `gets` consumes like `get` and adds the record number as cas unique.
#[test]
fn gets_consumes_with_a_cas_unique() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.set("q", 3, b"one");
    c.set("q", 0, b"two");
    c.set("r", 0, b"r1");
    c.call(b"gets q\r\n", b"VALUE q 3 3 1\r\none\r\nEND\r\n");
    c.call(
        b"gets q missing r\r\n",
        b"VALUE q 0 3 2\r\ntwo\r\nVALUE r 0 2 1\r\nr1\r\nEND\r\n",
    );
    c.call(b"gets q\r\n", END);
    c.call(b"gets\r\n", ERROR);
    assert_eq!(c.queue_stats(), ["STAT q 2/2", "STAT r 1/1"]);
}

/// `add`, `replace`, `append`, `prepend` and `cas` with a valid length
/// answer one `NOT_STORED`, swallow their block and store nothing; with
/// `noreply` they send nothing. Without a valid length only the line is
/// read and the answer is the original's `ERROR`; so is a `set` with a
/// stray fifth argument, whose block is swallowed too.
#[test]
fn unsupported_storage_commands_answer_one_line() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    for verb in ["add", "replace", "append", "prepend"] {
        c.call(
            format!("{verb} q 0 0 5\r\nhello\r\nversion\r\n").as_bytes(),
            b"NOT_STORED\r\nVERSION 0.2.1\r\n",
        );
        c.call(
            format!("{verb} q 0 0 5 noreply\r\nhello\r\nversion\r\n").as_bytes(),
            VERSION,
        );
    }
    c.call(
        b"cas q 0 0 5 12\r\nhello\r\nversion\r\n",
        b"NOT_STORED\r\nVERSION 0.2.1\r\n",
    );
    c.call(b"cas q 0 0 5 12 noreply\r\nhello\r\nversion\r\n", VERSION);
    c.call(b"add q 0 0 x\r\nversion\r\n", b"ERROR\r\nVERSION 0.2.1\r\n");
    c.call(
        b"set q 0 0 5 junk\r\nhello\r\nversion\r\n",
        b"ERROR\r\nVERSION 0.2.1\r\n",
    );
    assert_eq!(c.queue_stats(), Vec::<String>::new());
    c.call(b"incr q 1 noreply\r\nversion\r\n", VERSION);
    c.call(b"incr q 1\r\n", ERROR);
}

/// Flags are `strtoul` kept in 32 bits: `-5` is echoed as `-5`,
/// 4294967296 wraps to 0, 2^64-1 is -1; only what `strtoul` refuses (beyond
/// 64 bits) is refused, and its block is swallowed.
#[test]
fn flags_wrap_as_the_original_stores_them() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"set q -5 0 1\r\na\r\n", STORED);
    c.call(b"set q 4294967296 0 1\r\nb\r\n", STORED);
    c.call(b"set q 18446744073709551615 0 1\r\nc\r\n", STORED);
    c.call(
        b"set q 18446744073709551616 0 1\r\nd\r\nversion\r\n",
        b"CLIENT_ERROR bad command line format\r\nVERSION 0.2.1\r\n",
    );
    c.call(
        b"get q q q q\r\n",
        b"VALUE q -5 1\r\na\r\nVALUE q 0 1\r\nb\r\nVALUE q -1 1\r\nc\r\nEND\r\n",
    );
}

/// `verbosity` answers `OK` unless `strtoul` refuses its number.
#[test]
fn verbosity_refuses_out_of_range_numbers() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"verbosity 1\r\n", OK);
    c.call(b"verbosity -1\r\n", OK);
    c.call(b"verbosity x\r\n", OK);
    c.call(b"verbosity 18446744073709551616\r\n", BAD_FORMAT);
    c.call(b"verbosity 1 noreply\r\nversion\r\n", VERSION);
}

/// A tab after a key is part of the key: nothing is found, `END`, and the
/// message under the plain name stays.
#[test]
fn a_tab_belongs_to_the_key() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.set("q", 0, b"kept");
    c.call(b"get q\t\r\n", END);
    c.call(b"delete q\t\r\n", b"NOT_FOUND\r\n");
    c.call(b"get q\r\n", b"VALUE q 0 4\r\nkept\r\nEND\r\n");
}

/// Names of 244 to 250 bytes: `get` answers `END`, `delete` `NOT_FOUND`,
/// and creating one is refused with a line saying why (its block
/// swallowed, no file left). A queue with such a name that already exists
/// in a home (here made without extents, as the original could) is served.
#[test]
fn long_names_are_looked_up_but_not_created() {
    let home = Home::new();
    let names: Vec<String> = [244, 247, 250].iter().map(|&n| "L".repeat(n)).collect();
    {
        let server = home.start(&[]);
        let mut c = server.client();
        for name in &names {
            c.call(format!("get {name}\r\n").as_bytes(), END);
            c.call(format!("delete {name}\r\n").as_bytes(), b"NOT_FOUND\r\n");
            c.call(
                format!("set {name} 0 0 2\r\nhi\r\nversion\r\n").as_bytes(),
                &[TOO_LONG_FOR_EXTENTS, VERSION].concat(),
            );
        }
        assert_eq!(c.queue_stats(), Vec::<String>::new());
        let leftovers: Vec<String> = home
            .files()
            .into_iter()
            .filter(|f| f.contains("LLLL"))
            .collect();
        assert_eq!(leftovers, Vec::<String>::new());
        drop(c);
        server.stop();
    }
    {
        let server = home.start(&["-E", "0"]);
        let mut c = server.client();
        c.set(&names[2], 0, b"made without extents");
        drop(c);
        server.stop();
    }
    let server = home.start(&[]);
    let mut c = server.client();
    assert_eq!(c.queue_stats(), [format!("STAT {} 1/0", names[2])]);
    c.set(&names[2], 0, b"second");
    assert_eq!(
        c.get(&names[2]).map(|m| m.body),
        Some(b"made without extents".to_vec())
    );
    assert_eq!(c.get(&names[2]).map(|m| m.body), Some(b"second".to_vec()));
    c.call(
        format!("delete {}\r\n", names[2]).as_bytes(),
        b"DELETED\r\n",
    );
}
