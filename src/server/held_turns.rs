//! Replies that wait for durability. A committed turn whose replies may
//! not leave before the log is flushed past its commit (always by default;
//! with -N only while the log file is not allocated in full) is held here
//! until the log flusher says so. Replies leave in turn order, so behind a
//! held turn every later turn is held too. With replication every turn is
//! held, until other sites have confirmed it (`replication`).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Waker;

use super::executor::{self, Entry};
use super::log_flusher::{LogFlusher, Settled};
use super::metrics::Histogram;
use super::replication::Replication;
use super::Durability;
use crate::bdb::Env;

pub struct HeldTurns {
    /// Makes committed turns durable; `None` once stopped.
    flusher: Option<LogFlusher>,
    /// Number of the newest held turn.
    generation: u64,
    /// Held turns, oldest first: their numbers, when they committed (if
    /// they wrote), and their replies.
    held: VecDeque<(u64, Option<Instant>, Vec<Entry>)>,
    /// From a commit to the release of its replies, for the metrics page.
    latency: Histogram,
}

impl HeldTurns {
    /// Starts the log flusher; `waker` is woken when a held turn settles.
    pub fn start(
        env: Env,
        waker: Arc<Waker>,
        durability: Durability,
        replication: Option<Replication>,
    ) -> io::Result<HeldTurns> {
        Ok(HeldTurns {
            flusher: Some(LogFlusher::start(env, waker, durability, replication)?),
            generation: 0,
            held: VecDeque::new(),
            latency: Histogram::default(),
        })
    }

    /// A committed turn's replies: given back to be delivered now, or kept
    /// until its commit is durable. A turn that `wrote` nothing waits only
    /// behind the turns held before it.
    pub fn committed(&mut self, entries: Vec<Entry>, wrote: bool) -> Option<Vec<Entry>> {
        let Some(flusher) = self.flusher.as_mut() else {
            return Some(entries);
        };
        if (!wrote || !flusher.holds_replies()) && self.held.is_empty() {
            if wrote {
                self.latency.observe(Duration::ZERO);
            }
            return Some(entries);
        }
        self.generation += 1;
        flusher.committed(self.generation);
        let committed_at = wrote.then(Instant::now);
        self.held
            .push_back((self.generation, committed_at, entries));
        None
    }

    /// Commit latencies so far: from a commit to its replies' release.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// The held turns the log flusher is done with, oldest first; those of
    /// a turn whose flush failed acknowledge no set.
    pub fn settled(&mut self) -> Vec<Vec<Entry>> {
        let settled = self
            .flusher
            .as_ref()
            .map_or(Settled::ALL, LogFlusher::settled);
        let mut out = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|(g, _, _)| *g <= settled.upto())
        {
            if let Some((g, committed_at, mut entries)) = self.held.pop_front() {
                if g > settled.durable {
                    executor::unconfirmed(&mut entries, settled.error);
                }
                if let Some(at) = committed_at {
                    self.latency.observe(at.elapsed());
                }
                out.push(entries);
            }
        }
        out
    }

    /// At a stop: waits for the last flush, stops the flusher, and gives
    /// back every held turn.
    pub fn stop(&mut self) -> Vec<Vec<Entry>> {
        if let Some(flusher) = &self.flusher {
            flusher.wait_settled(self.generation);
        }
        let settled = self.settled();
        self.flusher = None;
        settled
    }
}
