//! Group commit as a user can observe it: pipelined commands share
//! transactions (Berkeley DB's own counters say so), and -Z serves the
//! names-only `stats queue` of MemcacheQ 0.1.x.

mod common;

use common::*;

/// The number in the `db5.3_stat -t` line ending with `label`.
fn txn_stat(home: &std::path::Path, label: &str) -> u64 {
    let text = db_tool("stat", &["-h", home.to_str().unwrap(), "-t"]);
    let line = text
        .lines()
        .find(|l| l.ends_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in db5.3_stat -t output:\n{text}"));
    line.split('\t').next().unwrap().parse().unwrap()
}

/// 1000 sets written at once are stored by a handful of transactions, not
/// one commit (and one log flush) each; every one is acknowledged and kept.
#[test]
fn pipelined_sets_share_transactions() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut c = server.client();
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(set_cmd(b"g", 0, format!("m{i}").as_bytes()));
    }
    c.call(&batch, &STORED.repeat(1000));
    let committed = txn_stat(&server.home, "Number of transactions committed");
    assert!(
        committed <= 20,
        "{committed} transactions committed for 1000 pipelined sets"
    );
    for i in 0..1000 {
        let m = c.get("g").expect("message kept");
        assert_eq!(show(&m.body), format!("m{i}"));
    }
}

/// Several clients' commands in one turn also share one commit, and each
/// client gets its own replies.
#[test]
fn concurrent_clients_get_their_own_replies() {
    let home = Home::new();
    let server = home.start(&[]);
    let mut clients: Vec<Client> = (0..8).map(|_| server.client()).collect();
    for round in 0..50 {
        for (k, c) in clients.iter_mut().enumerate() {
            c.send(&set_cmd(
                format!("q{k}").as_bytes(),
                k as u32,
                format!("{k}-{round}").as_bytes(),
            ));
        }
        for c in clients.iter_mut() {
            c.expect(STORED);
        }
    }
    for (k, c) in clients.iter_mut().enumerate() {
        for round in 0..50 {
            let m = c.get(format!("q{k}")).expect("message");
            assert_eq!(show(&m.body), format!("{k}-{round}"));
        }
    }
}

/// -Z answers `stats queue` with `STAT <name>` lines only, which is what
/// Zend_Queue's Memcacheq adapter looks for before creating a queue.
#[test]
fn names_only_stats_queue_for_zend_queue() {
    let home = Home::new();
    let server = home.start(&["-Z"]);
    let mut c = server.client();
    c.set("orders", 0, b"x");
    c.call(b"stats queue\r\n", b"STAT orders\r\nEND\r\n");
    let home2 = Home::new();
    let server2 = home2.start(&[]);
    let mut c2 = server2.client();
    c2.set("orders", 0, b"x");
    c2.call(b"stats queue\r\n", b"STAT orders 1/0\r\nEND\r\n");
}
