//! memcached's meta commands against the real server, byte for byte: `ms`,
//! `mg` (taking with `v`, looking without), `md`, `mn`, the flags clients
//! send, quiet mode, base64 keys, reliable and blocking reads through meta
//! keys, and what is refused (docs/PROTOCOL.md, "Meta commands").

mod common;

use common::*;

#[test]
fn ms_then_mg_takes_in_order_with_the_flags_asked() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"ms jobs 5 F7 T0\r\nfirst\r\n", b"HD\r\n");
    c.call(
        b"ms jobs 6 F4294967295 Oab k\r\nsecond\r\n",
        b"HD Oab kjobs\r\n",
    );
    c.call(b"ms jobs 5\r\nthird\r\n", b"HD\r\n");
    c.call(b"mg jobs v f t\r\n", b"VA 5 f7 t-1\r\nfirst\r\n");
    c.call(
        b"mg jobs s v c k O99 f l h\r\n",
        b"VA 6 s6 c2 kjobs O99 f4294967295\r\nsecond\r\n",
    );
    // Without `v` it only looks: the message stays.
    c.call(b"mg jobs s f\r\n", b"HD s5 f0\r\n");
    c.call(b"mg jobs v\r\n", b"VA 5\r\nthird\r\n");
    c.call(b"mg jobs v k O1\r\n", b"EN kjobs O1\r\n");
    c.call(b"mg jobs\r\n", b"EN\r\n");
    // The text protocol sees the same queue, on the same connection.
    c.call(
        b"ms jobs 4 F3\r\ntext\r\nget jobs\r\n",
        b"HD\r\nVALUE jobs 3 4\r\ntext\r\nEND\r\n",
    );
    assert_eq!(c.queue_stats(), ["STAT jobs 4/4"]);
}

#[test]
fn quiet_mode_in_one_pipeline_ends_with_mn() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(
        b"ms q 1 q\r\na\r\nms q 1 q O5\r\nb\r\nmg q v q k\r\nmg empty v q\r\nmg q v q\r\nmd nothere q\r\nms q 1 q MA O6\r\nz\r\nmn\r\n",
        b"VA 1 kq\r\na\r\nVA 1\r\nb\r\nNS O6\r\nMN\r\n",
    );
    c.call(b"md q q\r\nmd q k\r\nmn\r\n", b"NF kq\r\nMN\r\n");
}

#[test]
fn md_base64_keys_and_refusals() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    // "jobs" is am9icw== in base64.
    c.call(b"ms am9icw== 2 b k\r\nhi\r\n", b"HD kam9icw== b\r\n");
    c.call(b"mg am9icw== b v\r\n", b"VA 2\r\nhi\r\n");
    c.call(
        b"ms jobs 1\r\nx\r\nmd jobs\r\nmd jobs\r\n",
        b"HD\r\nHD\r\nNF\r\n",
    );
    // Modes other than set, and compare-and-swap: not stored, block skipped.
    for mode in ["ME", "MA", "MP", "MR", "C5"] {
        let line = format!("ms q 3 {mode}\r\nabc\r\nmn\r\n");
        c.call(line.as_bytes(), b"NS\r\nMN\r\n");
    }
    c.call(
        b"ms q 3 Z\r\nabc\r\nmn\r\n",
        b"CLIENT_ERROR invalid flag\r\nMN\r\n",
    );
    c.call(b"mg q v Z\r\n", b"CLIENT_ERROR invalid flag\r\n");
    c.call(b"md q x\r\n", b"CLIENT_ERROR not supported by a queue\r\n");
    c.call(
        b"mg q/open\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.call(
        b"mg q v Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
        b"CLIENT_ERROR invalid flag\r\n",
    );
    c.call(
        b"mg @@@ b v\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.call(b"mg\r\n", b"CLIENT_ERROR bad command line format\r\n");
    // A queue holds no counters and no cache items.
    c.call(b"ma q\r\nma q q O3\r\nme q\r\n", b"NF\r\nNF O3\r\nEN\r\n");
    // Too large for a record (-B 1024 by default): refused, block skipped.
    let mut big = b"ms q 2000\r\n".to_vec();
    big.extend(vec![b'x'; 2000]);
    big.extend(b"\r\nmn\r\n");
    c.call(&big, b"SERVER_ERROR out of memory storing object\r\nMN\r\n");
    // As `set`: the block's length is taken, the rest is a line of its own.
    c.call(
        b"ms q 3\r\nabcde\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    assert_eq!(c.queue_stats(), Vec::<String>::new());
}

#[test]
fn reliable_and_blocking_reads_through_meta_keys() {
    let (_home, server) = start(&[]);
    let mut c = server.client();
    c.call(b"ms jobs 4\r\ntask\r\n", b"HD\r\n");
    c.call(b"mg jobs/open v k\r\n", b"VA 4 kjobs/open\r\ntask\r\n");
    let mut other = server.client();
    other.call(b"mg jobs v\r\n", b"EN\r\n");
    c.call(b"mg jobs/close\r\n", b"EN\r\n");
    // A blocking read is answered by a message set meanwhile.
    c.send(b"mg jobs/t=5000 v\r\n");
    other.call(b"ms jobs 5\r\nlater\r\n", b"HD\r\n");
    c.expect(b"VA 5\r\nlater\r\n");
    c.call(b"mg jobs/t=50 v\r\n", b"EN\r\n");
    assert_eq!(c.queue_stats(), ["STAT jobs 2/2"]);
}
