//! The general counters reported by `stats`, in the original's order.

use crate::protocol::Reply;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The version clients see in `version` and `stats`, unless
/// `--report-version` says otherwise.
pub const VERSION: &str = "0.2.1";

/// Server-wide counters; owned by the reactor thread. The traffic
/// counters count from the start; `stats` reports them from the last
/// `stats reset` (`at_reset`), the metrics page from the start, as
/// Prometheus expects of a counter.
#[derive(Debug)]
pub struct Stats {
    /// When the server started, for `uptime`.
    started: Instant,
    /// Open client connections.
    pub curr_connections: u64,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Connection slots ever allocated.
    pub connection_structures: u64,
    /// Keys asked for by `get`.
    pub get_cmds: u64,
    /// Messages returned by `get`.
    pub get_hits: u64,
    /// `set` commands whose data block arrived.
    pub set_cmds: u64,
    /// Messages stored.
    pub set_hits: u64,
    /// Bytes read from clients.
    pub bytes_read: u64,
    /// Bytes written to clients.
    pub bytes_written: u64,
    /// The traffic counters at the last `stats reset`.
    at_reset: Traffic,
    /// -t, reported as `threads`.
    threads: u32,
    /// Reported by `version` and `stats`.
    version: String,
}

impl Stats {
    pub fn new(threads: u32) -> Stats {
        Stats {
            started: Instant::now(),
            curr_connections: 0,
            total_connections: 0,
            connection_structures: 0,
            get_cmds: 0,
            get_hits: 0,
            set_cmds: 0,
            set_hits: 0,
            bytes_read: 0,
            bytes_written: 0,
            at_reset: Traffic::default(),
            threads,
            version: VERSION.to_string(),
        }
    }

    /// Reports `version` instead of MemcacheQ 0.2.1's.
    pub fn with_version(mut self, version: &str) -> Stats {
        self.version = version.to_string();
        self
    }

    /// What `version` and `stats` report.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// When the server started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// `stats reset`: `stats` counts traffic from now on (open
    /// connections stay counted).
    pub fn reset(&mut self) {
        self.at_reset = self.traffic();
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            total_connections: self.total_connections,
            get_cmds: self.get_cmds,
            get_hits: self.get_hits,
            set_cmds: self.set_cmds,
            set_hits: self.set_hits,
            bytes_read: self.bytes_read,
            bytes_written: self.bytes_written,
        }
    }

    /// Appends the `stats` reply.
    pub fn write_report(&self, out: &mut Vec<u8>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (user, system) = crate::os::cpu_times();
        let traffic = self.traffic();
        let since = |f: fn(&Traffic) -> u64| (f(&traffic) - f(&self.at_reset)).to_string();
        let lines: [(&str, String); 17] = [
            ("pid", std::process::id().to_string()),
            ("uptime", self.started.elapsed().as_secs().to_string()),
            ("time", now.to_string()),
            ("version", self.version.clone()),
            ("pointer_size", (usize::BITS).to_string()),
            ("rusage_user", user),
            ("rusage_system", system),
            ("curr_connections", self.curr_connections.to_string()),
            ("total_connections", since(|t| t.total_connections)),
            (
                "connection_structures",
                self.connection_structures.to_string(),
            ),
            ("get_cmds", since(|t| t.get_cmds)),
            ("get_hits", since(|t| t.get_hits)),
            ("set_cmds", since(|t| t.set_cmds)),
            ("set_hits", since(|t| t.set_hits)),
            ("bytes_read", since(|t| t.bytes_read)),
            ("bytes_written", since(|t| t.bytes_written)),
            ("threads", self.threads.to_string()),
        ];
        for (name, value) in lines {
            Reply::Stat(name, &value).encode(out);
        }
        Reply::End.encode(out);
    }
}

/// The counters `stats reset` starts `stats` from.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    total_connections: u64,
    get_cmds: u64,
    get_hits: u64,
    set_cmds: u64,
    set_hits: u64,
    bytes_read: u64,
    bytes_written: u64,
}
