//! What the reactor counts for the metrics page: commands by kind,
//! refusals by reason, and a histogram of commit latency. Plain integers,
//! owned by the reactor: counting costs it an array increment, and a
//! snapshot copies them.

use std::time::Duration;

use crate::protocol::{reply, Command, Reply};

/// The `command` label of `memcacheq_commands_total`, by `command_index`.
pub const COMMANDS: [&str; 17] = [
    "set",
    "get",
    "gets",
    "delete",
    "flush",
    "stats",
    "stats_queue",
    "stats_replication",
    "stats_reset",
    "dump_stats",
    "version",
    "verbosity",
    "db_checkpoint",
    "db_archive",
    "quit",
    "noop",
    // Lines answered without running anything (ERROR, CLIENT_ERROR).
    "invalid",
];

fn command_index(command: &Command) -> usize {
    match command {
        Command::Set { .. } => 0,
        Command::Get { cas: false, .. } => 1,
        Command::Get { cas: true, .. } => 2,
        Command::Delete { .. } => 3,
        Command::Flush { .. } => 4,
        Command::Stats => 5,
        Command::StatsQueue => 6,
        Command::StatsReplication => 7,
        Command::StatsReset => 8,
        Command::DumpStats => 9,
        Command::Version => 10,
        Command::Verbosity => 11,
        Command::Checkpoint => 12,
        Command::Archive => 13,
        Command::Quit => 14,
        Command::Noop => 15,
        Command::Refused(_) => 16,
    }
}

/// Why a request was refused (`memcacheq_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `SERVER_ERROR out of disk space`.
    DiskFull,
    /// A connection past -c.
    TooManyConnections,
    /// A replica refusing what would change data.
    NotMaster,
    /// A commit other sites did not confirm in time (--rep-ack).
    NotAcknowledged,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::DiskFull,
        Reason::TooManyConnections,
        Reason::NotMaster,
        Reason::NotAcknowledged,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::DiskFull => "disk_full",
            Reason::TooManyConnections => "too_many_connections",
            Reason::NotMaster => "not_master",
            Reason::NotAcknowledged => "not_acknowledged",
        }
    }

    /// The refusal a failed command's reply is, if it is one.
    fn of_reply(reply_bytes: &[u8]) -> Option<Reason> {
        let is = |r: Reply| reply_bytes.starts_with(&r.to_vec()[..]);
        if is(reply::NO_SPACE) {
            Some(Reason::DiskFull)
        } else if reply_bytes.starts_with(b"SERVER_ERROR not the master") {
            Some(Reason::NotMaster)
        } else if is(reply::NOT_ACKNOWLEDGED) {
            Some(Reason::NotAcknowledged)
        } else {
            None
        }
    }
}

/// Counters since the process started.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    commands: [u64; COMMANDS.len()],
    refused: [u64; Reason::ALL.len()],
}

impl Counters {
    /// A request arrived (counted once, however often it waits or in how
    /// many slices it runs).
    pub fn command(&mut self, command: &Command) {
        self.commands[command_index(command)] += 1;
    }

    pub fn refused(&mut self, reason: Reason) {
        self.refused[reason as usize] += 1;
    }

    /// A command failed with `reply`: counted if that is a refusal.
    pub fn failed(&mut self, reply: &[u8]) {
        if let Some(reason) = Reason::of_reply(reply) {
            self.refused(reason);
        }
    }

    /// Each command label with its count.
    pub fn commands(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COMMANDS.iter().copied().zip(self.commands.iter().copied())
    }

    /// Each refusal reason with its count.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|r| r.label())
            .zip(self.refused.iter().copied())
    }
}

/// Upper bounds, in seconds, of the commit latency buckets: from a
/// commit without a flush (-N) to a disk that takes a second.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A histogram with `COMMIT_BUCKETS`; the +Inf bucket is `count`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); past the last bound none.
    buckets: [u64; COMMIT_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = COMMIT_BUCKETS.iter().position(|&le| secs <= le) {
            self.buckets[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Each finite upper bound with the observations in its bucket alone.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        COMMIT_BUCKETS
            .iter()
            .copied()
            .zip(self.buckets.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_other_failures() {
        assert_eq!(
            Reason::of_reply(&reply::NO_SPACE.to_vec()),
            Some(Reason::DiskFull)
        );
        assert_eq!(
            Reason::of_reply(b"SERVER_ERROR not the master; master is h:1\r\n"),
            Some(Reason::NotMaster)
        );
        assert_eq!(Reason::of_reply(&reply::STORAGE_FAILED.to_vec()), None);
        assert_eq!(Reason::of_reply(b"NOT_STORED\r\n"), None);
    }

    #[test]
    fn histogram_buckets_hold_their_own_observations() {
        let mut h = Histogram::default();
        h.observe(Duration::ZERO);
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(2));
        assert_eq!(h.count(), 3);
        let b = h.buckets();
        assert_eq!(b[0], (0.0001, 1));
        assert_eq!(b[5], (0.005, 1));
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }
}
