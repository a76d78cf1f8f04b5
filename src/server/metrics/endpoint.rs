//! The HTTP thread of `--metrics-listen`: `GET /metrics` is the page,
//! anything else 404. The reactor is only asked for a snapshot (through a
//! channel and its waker) and never waited on: the thread gives up after
//! `REACTOR_ANSWER` with a 503. What the environment and the filesystem
//! tell is read here, off the reactor.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::Waker;
use tiny_http::{Header, Method, Request, Response, Server};

use super::collect::Answer;
use super::{page, Snapshot};
use crate::bdb::Env;
use crate::os;
use crate::server::replication::Replication;
use crate::storage::DiskSpace;

/// A scrape within this time of the last snapshot is served from it, so
/// however often the page is asked for, the reactor takes at most ten
/// snapshots a second.
pub const SNAPSHOT_REUSE: Duration = Duration::from_millis(100);
/// How long a scrape waits for the reactor before answering 503.
const REACTOR_ANSWER: Duration = Duration::from_secs(5);
/// How long writing a page may make no progress before the scrape is
/// dropped: a scraper that stops reading holds the page's one thread (and
/// a stop waiting for it) no longer.
const PAGE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the endpoint reads what the reactor does not know.
#[derive(Clone)]
pub struct EnvProbe {
    pub env: Env,
    /// The home, whose filesystem's free space is reported.
    pub home: PathBuf,
    pub replication: Option<Replication>,
}

/// What the probe read for one page.
#[derive(Debug, Clone, Default)]
pub struct EnvSample {
    pub disk_free: u64,
    /// Free space below which sets are refused (`DiskSpace`).
    pub refusal_threshold: u64,
    pub dirty_ratio: f64,
    pub deadlocks: u64,
    pub replication: Option<RepSample>,
}

/// This site's place in its replication group.
#[derive(Debug, Clone)]
pub struct RepSample {
    pub role: &'static str,
    pub connected: u64,
    pub perm_failed: u64,
}

impl EnvProbe {
    /// Reads the environment now; a figure that cannot be read is 0 (and
    /// logged at debug level: a scrape is no reason to fill the log).
    fn read(&self) -> EnvSample {
        let cache = self.env.cache_stats().unwrap_or_default();
        let capacity = cache.capacity();
        EnvSample {
            disk_free: os::free_bytes(&self.home).unwrap_or_else(|e| {
                log::debug!("metrics: statvfs failed: {e}");
                0
            }),
            refusal_threshold: DiskSpace::kept_free(&self.env),
            dirty_ratio: if capacity == 0 {
                0.0
            } else {
                cache.dirty_pages as f64 / capacity as f64
            },
            deadlocks: self.env.lock_stats().map_or(0, |s| s.deadlocks),
            replication: self.replication.as_ref().map(|r| RepSample {
                role: r.role().name(),
                connected: r.connected_sites(&self.env),
                perm_failed: r.perm_failed(),
            }),
        }
    }
}

/// The running HTTP thread; stopped (and joined) when dropped, so that
/// its handle on the environment is gone before the environment closes.
pub struct Endpoint {
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Serves the page on `listener` (bound by `run` before privileges
    /// were dropped). Returns the endpoint and the receiving end of its
    /// scrapes; `waker` wakes the reactor when one is sent.
    pub fn start(
        listener: TcpListener,
        waker: Arc<Waker>,
        probe: EnvProbe,
    ) -> io::Result<(Endpoint, Receiver<Answer>)> {
        os::set_send_timeout(listener.as_raw_fd(), PAGE_WRITE_TIMEOUT)?;
        let server = Server::from_listener(listener, None)
            .map(Arc::new)
            .map_err(io::Error::other)?;
        let (ask, asked) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let mut serving = Serving {
            server: server.clone(),
            stopping: stopping.clone(),
            ask,
            waker,
            probe,
            last: None,
        };
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serving.run())?;
        let endpoint = Endpoint {
            server,
            stopping,
            thread: Some(thread),
        };
        Ok((endpoint, asked))
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The HTTP thread's state.
struct Serving {
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    /// Sends the reactor a scrape (where to answer).
    ask: Sender<Answer>,
    waker: Arc<Waker>,
    probe: EnvProbe,
    /// The last snapshot and when it arrived.
    last: Option<(Instant, Arc<Snapshot>)>,
}

impl Serving {
    fn run(&mut self) {
        while !self.stopping.load(Ordering::SeqCst) {
            match self.server.recv() {
                Ok(request) => self.answer(request),
                // An accept that failed, or the unblocking at a stop.
                Err(e) => log::debug!("metrics: {e}"),
            }
        }
    }

    fn answer(&mut self, request: Request) {
        let path = request.url().split('?').next().unwrap_or_default();
        let response = if *request.method() != Method::Get || path != "/metrics" {
            Response::from_string("not found; the metrics are at GET /metrics\n")
                .with_status_code(404)
        } else {
            match self.snapshot() {
                Some(snapshot) => {
                    let text = page::render(snapshot, self.probe.read());
                    let content_type = Header::from_bytes("Content-Type", page::CONTENT_TYPE)
                        .expect("a valid header");
                    Response::from_string(text).with_header(content_type)
                }
                None => Response::from_string("the server did not answer in time\n")
                    .with_status_code(503),
            }
        };
        if let Err(e) = request.respond(response) {
            log::debug!("metrics: writing a response failed: {e}");
        }
    }

    /// A snapshot at most `SNAPSHOT_REUSE` old, if the reactor answers.
    fn snapshot(&mut self) -> Option<Arc<Snapshot>> {
        if let Some((at, snapshot)) = &self.last {
            if at.elapsed() < SNAPSHOT_REUSE {
                return Some(snapshot.clone());
            }
        }
        let (answer, answered) = mpsc::sync_channel(1);
        self.ask.send(answer).ok()?;
        self.waker.wake().ok()?;
        let snapshot = answered.recv_timeout(REACTOR_ANSWER).ok()?;
        self.last = Some((Instant::now(), snapshot.clone()));
        Some(snapshot)
    }
}
