//! The Prometheus endpoint (`--metrics-listen`, README "Metrics"), in
//! four parts so that a scrape never makes the reactor wait:
//!
//! - `tally`: what the reactor counts as it goes (commands, refusals,
//!   commit latency), in plain integers it alone touches.
//! - `collect`: the reactor's side of a scrape. Asked through a channel
//!   and its waker, it samples the queues a slice at a time between turns
//!   (`QUEUES_PER_TURN`), then hands the finished `Snapshot` back.
//! - `endpoint`: the HTTP thread. It serves `GET /metrics` from a
//!   snapshot at most `SNAPSHOT_REUSE` old, asking the reactor for a new
//!   one otherwise, and reads what Berkeley DB and the filesystem say
//!   (cache, deadlocks, free space, replication) itself.
//! - `page`: the exposition format, written with prometheus-client.

mod collect;
mod endpoint;
mod page;
mod tally;

use std::time::Duration;

pub use collect::Scrapes;
pub use endpoint::{Endpoint, EnvProbe};
pub use tally::{Counters, Histogram, Reason};

/// Which queues to sample at once: those after the name `after` (from
/// the first when `None`), at most `max` of them, and no more once `time`
/// has passed (at least one).
#[derive(Debug, Clone, Copy)]
pub struct Slice<'a> {
    pub after: Option<&'a [u8]>,
    pub max: usize,
    pub time: Duration,
}

/// One queue, as `dump_stats` and the metrics page report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSample {
    pub name: Vec<u8>,
    /// Messages waiting that nobody holds open.
    pub ready: u64,
    /// Messages open (`get <q>/open`) and not yet closed or given back.
    pub unacked: u64,
    /// Messages ever stored: the set count `stats queue` keeps on disk.
    pub published: u64,
    /// Messages taken by `get` or opened, since the server started.
    pub delivered: u64,
    /// Open messages closed (`/close`), since the server started.
    pub acked: u64,
    /// Messages opened again, since the server started.
    pub redelivered: u64,
    /// Messages moved to `<q>.dead`, since the server started.
    pub dead_lettered: u64,
    /// Requests waiting for a message (`/t=`).
    pub waiters: u64,
    /// Milliseconds since the oldest ready message was stored.
    pub age_ms: u64,
}

/// What the reactor knows of the whole server at the end of a snapshot.
#[derive(Debug, Clone)]
pub struct ServerSample {
    pub connections: u64,
    /// Accepted since the start (`stats reset` does not touch it).
    pub connections_total: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub counters: Counters,
    /// From a turn's commit to the release of its replies.
    pub commit: Histogram,
    pub uptime: Duration,
}

/// Everything the reactor contributes to one page.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// In name order.
    pub queues: Vec<QueueSample>,
    pub server: ServerSample,
}
