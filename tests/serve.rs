//! `server::serve` in-process: a store on a temporary home, a listener on
//! port 0, a real socket, and a stop through the `stop` stream, with no
//! process, signal, daemon or pid file around it.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{Client, TempDir, END, STORED};
use memcacheq::bdb::{EnvConfig, QueueFormat};
use memcacheq::item;
use memcacheq::queue_name::NameRules;
use memcacheq::server::{self, Listeners, ServeOptions};
use memcacheq::storage::{Counts, QueueStore};

const FORMAT: QueueFormat = QueueFormat {
    record_len: 1024,
    page_size: 4096,
    extent_pages: 16384,
};

/// Opens (creating and recovering) the store in `home`, small enough for
/// a test.
fn open_store(home: &Path) -> QueueStore {
    let env_config = EnvConfig {
        cache_bytes: 4 << 20,
        log_buffer_bytes: 64 << 10,
        lock_table_size: 1000,
        nosync: false,
        auto_remove_logs: false,
    };
    let names = NameRules::new(FORMAT.record_len, FORMAT.page_size, FORMAT.extent_pages);
    QueueStore::open(home, &env_config, FORMAT, names).expect("open the store")
}

/// How long `serve` may take to return once told to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// `serve` on a thread, on 127.0.0.1 and a port the kernel picks.
struct InProcess {
    port: u16,
    /// Our end of `serve`'s `stop` stream.
    stopper: UnixStream,
    thread: JoinHandle<std::io::Result<QueueStore>>,
}

impl InProcess {
    fn start(store: QueueStore) -> InProcess {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let port = listener.local_addr().unwrap().port();
        let listeners = Listeners::tcp(listener).expect("listen");
        let (stop, stopper) = UnixStream::pair().expect("stop stream");
        let thread =
            thread::spawn(move || server::serve(listeners, store, &ServeOptions::default(), stop));
        InProcess {
            port,
            stopper,
            thread,
        }
    }
}

/// What `serve` returned, once its thread ends; fails the test rather than
/// hanging if it does not end.
fn returned(thread: JoinHandle<std::io::Result<QueueStore>>) -> QueueStore {
    let deadline = Instant::now() + STOP_TIMEOUT;
    while !thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "serve did not return once stopped"
        );
        thread::sleep(Duration::from_millis(10));
    }
    thread
        .join()
        .expect("serve panicked")
        .expect("serve failed")
}

/// Takes every message left in `queue` straight from storage, oldest first.
fn take_all(store: &QueueStore, queue: &[u8]) -> Vec<Vec<u8>> {
    let txn = store.env().begin().unwrap();
    let mut record = Vec::new();
    let mut bodies = Vec::new();
    while store.consume(&txn, queue, &mut record).unwrap().is_some() {
        let message = item::decode(&record).expect("a decodable record");
        let body = message.data_crlf.strip_suffix(b"\r\n").unwrap();
        bodies.push(body.to_vec());
    }
    txn.abort().unwrap();
    bodies
}

#[test]
fn serve_answers_on_a_real_socket_and_returns_the_store_when_stopped() {
    let dir = TempDir::new("serve");
    let served = InProcess::start(open_store(dir.path()));

    let mut client = Client::connect(served.port);
    for body in [&b"first"[..], b"second", b"third"] {
        client.set("jobs", 7, body);
    }
    let got = client.get("jobs").expect("a message");
    assert_eq!(
        (got.flags.as_str(), got.body.as_slice()),
        ("7", &b"first"[..])
    );
    // Pipelined: both answered, in order, in one turn or two.
    client.send(b"set other 0 0 1\r\nx\r\nstats queue\r\n");
    client.expect(STORED);
    client.expect(b"STAT jobs 3/1\r\nSTAT other 1/0\r\n");
    client.expect(END);

    let mut stopper = served.stopper;
    stopper.write_all(b"x").expect("ask serve to stop");
    let store = returned(served.thread);
    client.expect_closed();
    let counts: Vec<(Vec<u8>, Counts)> = store.counts().map(|(n, c)| (n.to_vec(), c)).collect();
    assert_eq!(
        counts,
        [
            (b"jobs".to_vec(), Counts { set: 3, get: 1 }),
            (b"other".to_vec(), Counts { set: 1, get: 0 }),
        ]
    );
    drop(store);

    // Reopened (with recovery, as no checkpoint was written): queue.list
    // holds the counters, the queue the two messages not taken.
    let store = open_store(dir.path());
    let counts: Vec<(Vec<u8>, Counts)> = store.counts().map(|(n, c)| (n.to_vec(), c)).collect();
    assert_eq!(
        counts,
        [
            (b"jobs".to_vec(), Counts { set: 3, get: 1 }),
            (b"other".to_vec(), Counts { set: 1, get: 0 }),
        ]
    );
    assert_eq!(
        take_all(&store, b"jobs"),
        [b"second".to_vec(), b"third".to_vec()]
    );
}

#[test]
fn closing_the_other_end_of_stop_stops_serve_too() {
    let dir = TempDir::new("serve-close");
    let served = InProcess::start(open_store(dir.path()));
    let mut client = Client::connect(served.port);
    client.set("q", 0, b"kept");

    drop(served.stopper);
    let store = returned(served.thread);
    client.expect_closed();
    drop(store);
    assert_eq!(take_all(&open_store(dir.path()), b"q"), [b"kept".to_vec()]);
}
