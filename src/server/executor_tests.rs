//! The executor's turns against a real environment in a temporary home:
//! a deadlock victim is retried, a command that fails on its own is left
//! out while the rest commit, and a transaction that fails acknowledges
//! nothing. (Kept beside `executor.rs` rather than in it, so that changes
//! to how replies are written and these tests do not touch the same file.)

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::executor::{Entry, Executor, Origin};
use super::{Durability, QueueStatsFormat};
use crate::bdb::{Database, EnvConfig, IfMissing, QueueFormat};
use crate::item;
use crate::protocol::{Command, GetKey};
use crate::queue_name::NameRules;
use crate::stats::Stats;
use crate::storage::{queue_list, ChoreSchedule, Chores, Counts, QueueStore};
use crate::test_home::TempHome;

const FORMAT: QueueFormat = QueueFormat {
    record_len: 256,
    page_size: 4096,
    extent_pages: 16,
};

/// A record `item::decode` refuses: its data length is negative.
const UNDECODABLE: [u8; 8] = [0xff; 8];

/// A fresh home, removed on drop.
struct Home(TempHome);

impl Home {
    fn new(tag: &str) -> Home {
        Home(TempHome::new(&format!("executor-{tag}")))
    }

    /// Opens (creating and recovering) the store in this home.
    fn open(&self) -> QueueStore {
        open_store(self.0.path())
    }
}

fn open_store(home: &Path) -> QueueStore {
    let config = EnvConfig {
        cache_bytes: 1 << 20,
        log_buffer_bytes: 64 * 1024,
        lock_table_size: 1000,
        nosync: false,
        auto_remove_logs: false,
    };
    let names = NameRules::new(FORMAT.record_len, FORMAT.page_size, FORMAT.extent_pages);
    QueueStore::open(home, &config, FORMAT, names).expect("open the store")
}

fn executor(store: QueueStore) -> Executor {
    Executor::new(
        store,
        QueueStatsFormat::Counters,
        Durability::FlushBeforeReply,
    )
}

fn set(queue: &str, body: &str) -> Command {
    let mut record = Vec::new();
    item::encode(&mut record, queue.as_bytes(), 0, body.as_bytes());
    Command::Set {
        queue: queue.as_bytes().to_vec(),
        record,
    }
}

fn get(queue: &str) -> Command {
    Command::Get {
        keys: vec![GetKey::plain(queue.as_bytes())],
        cas: false,
    }
}

/// Runs `commands` as one turn; returns each reply, escaped for readable
/// assertions.
fn turn(executor: &mut Executor, stats: &mut Stats, commands: Vec<Command>) -> Vec<String> {
    let mut entries: Vec<Entry> = commands
        .into_iter()
        .map(|command| Entry::new(Origin::Conn { index: 0, id: 1 }, command))
        .collect();
    executor.run(&mut entries, stats, &|_| 0);
    entries
        .iter()
        .map(|e| e.reply.escape_ascii().to_string())
        .collect()
}

fn value(queue: &str, body: &str) -> String {
    format!("VALUE {queue} 0 {}\\r\\n{body}\\r\\nEND\\r\\n", body.len())
}

const STORED: &str = "STORED\\r\\n";
const NOT_STORED: &str = "NOT_STORED\\r\\n";
const STORAGE_FAILED: &str = "SERVER_ERROR storage failure\\r\\n";

/// Every record left in `queue`, oldest first, taken in a transaction that
/// is aborted, so the queue keeps them.
fn records(store: &QueueStore, queue: &str) -> Vec<Vec<u8>> {
    let txn = store.env().begin().unwrap();
    let mut record = Vec::new();
    let mut all = Vec::new();
    while store
        .consume(&txn, queue.as_bytes(), &mut record)
        .unwrap()
        .is_some()
    {
        all.push(record.clone());
    }
    txn.abort().unwrap();
    all
}

/// The message bodies of `records`; `None` for a record that does not
/// decode.
fn bodies(records: &[Vec<u8>]) -> Vec<Option<String>> {
    records
        .iter()
        .map(|r| {
            item::decode(r).map(|m| {
                let body = m.data_crlf.strip_suffix(b"\r\n").unwrap();
                String::from_utf8_lossy(body).into_owned()
            })
        })
        .collect()
}

/// A real deadlock. Another transaction writes the queue's key in
/// queue.list (holding the btree's leaf page); once the turn waits for
/// that page to update its counters, having appended its first message,
/// the other overwrites that message's record: each waits for the other.
/// The deadlock detector (the -D chore) rejects the younger transaction,
/// the turn's, and the executor runs the whole turn again, which then
/// waits until the other transaction ends.
#[test]
fn a_deadlock_victim_is_retried_until_it_commits() {
    let home = Home::new("retry");
    let mut executor = executor(home.open());
    let mut stats = Stats::new(4);
    assert_eq!(
        turn(&mut executor, &mut stats, vec![set("q", "a")]),
        [STORED]
    );
    let env = executor.store().env().clone();
    let detector = Chores::start(
        &env,
        ChoreSchedule {
            checkpoint: None,
            trickle: None,
            trickle_percent: 0,
            deadlock_detect: Some(Duration::from_millis(10)),
        },
    )
    .unwrap();
    let before = env.lock_stats().unwrap();

    let (held_tx, held_rx) = mpsc::channel();
    let other = {
        let env = env.clone();
        thread::spawn(move || {
            let list = Database::open_btree(&env, queue_list::FILE_NAME.as_bytes()).unwrap();
            let queue = Database::open_queue(&env, None, b"q", FORMAT, IfMissing::Fail).unwrap();
            let txn = env.begin().unwrap();
            let key = queue_list::key(b"q");
            list.put(&txn, &key, &Counts { set: 9, get: 9 }.encode())
                .unwrap();
            held_tx.send(()).unwrap();
            // The turn waits for the page only after its sets and get.
            let deadline = Instant::now() + Duration::from_secs(30);
            while env.lock_stats().unwrap().waits == before.waits {
                assert!(Instant::now() < deadline, "the turn never waited");
                thread::sleep(Duration::from_millis(1));
            }
            // Record 1 holds "a": the turn's first set appended record 2.
            let overwrote = queue.put(&txn, &2u32.to_ne_bytes(), b"other");
            thread::sleep(Duration::from_millis(100));
            txn.abort().unwrap();
            overwrote
        })
    };
    held_rx.recv().unwrap();
    let mut stats = Stats::new(4);
    let replies = turn(
        &mut executor,
        &mut stats,
        vec![set("q", "b"), get("q"), set("q", "c")],
    );
    let overwrote = other.join().unwrap();
    detector.stop();

    overwrote.expect("the other transaction was the deadlock's victim");
    let after = env.lock_stats().unwrap();
    assert_eq!(
        after.deadlocks,
        before.deadlocks + 1,
        "no deadlock was broken"
    );
    assert_eq!(
        replies,
        [STORED.to_string(), value("q", "a"), STORED.into()]
    );
    // Counted once, however many times the turn ran.
    assert_eq!((stats.set_cmds, stats.set_hits), (2, 2));
    assert_eq!((stats.get_cmds, stats.get_hits), (1, 1));
    let counts: Vec<_> = executor.store().counts().collect();
    assert_eq!(counts, [(&b"q"[..], Counts { set: 3, get: 1 })]);
    assert_eq!(
        bodies(&records(executor.store(), "q")),
        [Some("b".into()), Some("c".into())]
    );
}

/// A `get` that meets an undecodable record fails on its own: it is left
/// out, the sets around it commit, and the abort of the failed attempt put
/// the record back.
#[test]
fn a_command_failing_on_its_own_is_left_out_and_the_rest_commit() {
    let home = Home::new("left-out");
    let mut store = home.open();
    store.create(b"q").unwrap();
    {
        let env = store.env();
        let queue = Database::open_queue(env, None, b"q", FORMAT, IfMissing::Fail).unwrap();
        let txn = env.begin().unwrap();
        queue.append(&txn, &UNDECODABLE).unwrap();
        txn.commit().unwrap();
    }
    let mut executor = executor(store);
    let mut stats = Stats::new(4);

    let replies = turn(
        &mut executor,
        &mut stats,
        vec![set("q", "a"), get("q"), set("q", "b")],
    );

    assert_eq!(replies, [STORED, STORAGE_FAILED, STORED]);
    assert_eq!((stats.set_cmds, stats.set_hits), (2, 2));
    assert_eq!((stats.get_cmds, stats.get_hits), (1, 0));
    let counts: Vec<_> = executor.store().counts().collect();
    assert_eq!(counts, [(&b"q"[..], Counts { set: 2, get: 0 })]);
    let left = records(executor.store(), "q");
    assert!(left[0].starts_with(&UNDECODABLE), "the bad record was lost");
    assert_eq!(bodies(&left), [None, Some("a".into()), Some("b".into())]);
}

/// When the transaction itself cannot run (here the environment needs
/// recovery, so not even a transaction begins), no set is acknowledged
/// and no get takes anything: after recovery the queue is as it was.
#[test]
fn a_failed_transaction_acknowledges_nothing() {
    let home = Home::new("failed");
    let mut executor = executor(home.open());
    let mut stats = Stats::new(4);
    assert_eq!(
        turn(&mut executor, &mut stats, vec![set("q", "old")]),
        [STORED]
    );
    // As the log flusher does before the reply leaves.
    executor.store().env().flush_log().unwrap();

    executor.store().env().panic().unwrap();
    let mut stats = Stats::new(4);
    let replies = turn(
        &mut executor,
        &mut stats,
        vec![set("q", "new"), get("q"), set("q", "newer")],
    );

    assert_eq!(replies, [NOT_STORED, STORAGE_FAILED, NOT_STORED]);
    assert_eq!((stats.set_cmds, stats.set_hits), (2, 0));
    assert_eq!(stats.get_hits, 0);
    drop(executor);
    let store = home.open();
    let counts: Vec<_> = store.counts().collect();
    assert_eq!(counts, [(&b"q"[..], Counts { set: 1, get: 0 })]);
    assert_eq!(bodies(&records(&store, "q")), [Some("old".into())]);
}
