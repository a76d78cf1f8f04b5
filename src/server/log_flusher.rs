//! Flushes the Berkeley DB log on its own thread, so the reactor can run the
//! next turn's transaction while the previous one reaches the disk.
//!
//! The reactor commits each turn without a flush and numbers it (its
//! generation). This thread flushes the whole log and then reports the
//! newest generation committed before the flush began: every turn up to it
//! is durable, and only then are its replies sent. A flush that fails (a
//! full or failing disk) settles its turns as failed instead, and their
//! replies go out at once with each `STORED` turned into a `SERVER_ERROR`
//! (`executor::unconfirmed`): no reply waits for a flush that cannot
//! succeed. Nothing is retried here; the next turn's flush tries again,
//! and writes everything still unwritten, failed turns included.
//!
//! With -N a commit is all there is and replies go out right after it, as
//! long as the log file being written is allocated in full (`LogReserve`):
//! what was acknowledged can then always be written, full disk or not.
//! When it is not (Berkeley DB has just moved on to a new log file, or the
//! disk is full), -N turns wait for a flush like the default mode's, and
//! this thread allocates the file after that flush: the reactor never
//! flushes the log itself. With -N this thread also flushes the log in the
//! background, every [`NOSYNC_FLUSH`] while turns commit; no reply waits
//! for that, but Berkeley DB no longer has to flush a log file's last
//! megabytes on the reactor when it moves on to the next file, nor the
//! log when the reactor writes out an old page to make room.
//!
//! With replication, every turn waits here: after its flush (with -N,
//! without one) other sites must confirm they hold the log past its
//! commit (`replication`); a turn they do not confirm in time settles as
//! failed, its `STORED`s turned into `SERVER_ERROR`s.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::Waker;

use super::replication::{Confirmer, Replication};
use super::Durability;
use crate::bdb::{self, Env};
use crate::fatal;
use crate::log_limit;
use crate::storage::LogReserve;

/// How often, with -N, the log is flushed in the background while turns
/// commit. Measured at 16 connections: p99.9 of 1.3-1.7 ms at 10 ms,
/// 1.9-3.3 ms at 50 ms, 3.8-5.3 ms at 200 ms, 6-10 ms without.
const NOSYNC_FLUSH: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Progress {
    /// Newest turn committed (without a flush).
    committed: u64,
    /// Newest turn known to be on disk.
    durable: u64,
    /// Newest turn whose flush failed (durable later if a later flush
    /// succeeds: `durable` then passes it).
    failed: u64,
    /// Why the last flush failed.
    error: Option<bdb::Error>,
    /// Set at shutdown, once everything committed is settled.
    stopping: bool,
}

impl Progress {
    /// Newest turn whose flush is over, one way or the other.
    fn settled(&self) -> u64 {
        self.durable.max(self.failed)
    }
}

/// What became of the committed turns.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// Every turn up to this one is on disk.
    pub durable: u64,
    /// Turns after `durable` up to this one could not be flushed.
    pub failed: u64,
    /// Why, for their replies.
    pub error: Option<bdb::Error>,
}

impl Settled {
    /// Nothing waits: every turn counts as durable.
    pub const ALL: Settled = Settled {
        durable: u64::MAX,
        failed: 0,
        error: None,
    };

    /// Newest turn whose replies can go out.
    pub fn upto(&self) -> u64 {
        self.durable.max(self.failed)
    }
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    /// Wakes the flusher when a turn commits, and waiters when one settles.
    changed: Condvar,
    /// The newest log file allocated in full (0: none yet).
    reserved: AtomicU32,
    /// With -N, turns committed so far (replies held or not), for the
    /// background flush.
    commits: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct LogFlusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The environment, to see which log file is being written; `None` in
    /// the default mode, where every turn waits for a flush, and with
    /// replication, where every turn waits for other sites.
    nosync: Option<Env>,
}

/// What settles a turn beside the local flush.
struct Confirming {
    confirmer: Confirmer,
    /// -N: the local commit is enough here, other sites' disks count.
    skip_flush: bool,
}

impl LogFlusher {
    /// Starts the thread; `waker` wakes the reactor after each flush.
    pub fn start(
        env: Env,
        waker: Arc<Waker>,
        durability: Durability,
        replication: Option<Replication>,
    ) -> io::Result<LogFlusher> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let no_sync = durability == Durability::NoSync;
        let background = no_sync.then_some(NOSYNC_FLUSH);
        let mut confirmation = replication.map(|replication| Confirming {
            confirmer: Confirmer::new(replication),
            skip_flush: no_sync,
        });
        let nosync = (no_sync && confirmation.is_none()).then(|| env.clone());
        let thread = thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || flush_loop(&env, &worker, &waker, background, confirmation.as_mut()))?;
        Ok(LogFlusher {
            shared,
            thread: Some(thread),
            nosync,
        })
    }

    /// Called once per committed turn: counts the commit (with -N the
    /// flusher flushes on its timer only if commits came since its last
    /// flush), and tells whether the turn's replies must wait for a flush:
    /// always in the default mode and with replication; with -N only while
    /// the log file being written is not allocated in full (the flush that
    /// settles the turn is followed by its allocation).
    pub fn holds_replies(&mut self) -> bool {
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        let Some(env) = &self.nosync else {
            return true;
        };
        match env.log_tail_file() {
            Ok(file) => file != self.shared.reserved.load(Ordering::Acquire),
            Err(e) => {
                log_limit::error!("log stat", "reading the log position failed: {e}");
                true
            }
        }
    }

    /// Reports that turn `generation` has committed.
    pub fn committed(&self, generation: u64) {
        self.shared.lock().committed = generation;
        self.shared.changed.notify_all();
    }

    /// What became of the committed turns so far.
    pub fn settled(&self) -> Settled {
        let p = self.shared.lock();
        Settled {
            durable: p.durable,
            failed: p.failed,
            error: p.error,
        }
    }

    /// Blocks until turn `generation` is durable or its flush failed.
    pub fn wait_settled(&self, generation: u64) {
        let mut p = self.shared.lock();
        while p.settled() < generation {
            p = self
                .shared
                .changed
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Flushes whenever a turn commits (the default mode) or replies wait for
/// it (-N), and with `background` (-N) also that often while turns commit;
/// keeps the log file being written allocated in full.
fn flush_loop(
    env: &Env,
    shared: &Shared,
    waker: &Waker,
    background: Option<Duration>,
    mut confirmation: Option<&mut Confirming>,
) {
    let mut reserve = LogReserve::new(env);
    keep_reserved(&mut reserve, shared);
    let mut flushed_commits = 0;
    loop {
        let target = {
            let mut p = shared.lock();
            loop {
                if p.committed != p.settled() || p.stopping {
                    break;
                }
                match background {
                    None => p = shared.changed.wait(p).unwrap_or_else(|e| e.into_inner()),
                    Some(period) => {
                        let (guard, timeout) = shared
                            .changed
                            .wait_timeout(p, period)
                            .unwrap_or_else(|e| e.into_inner());
                        p = guard;
                        let commits = shared.commits.load(Ordering::Relaxed);
                        if timeout.timed_out() && commits != flushed_commits {
                            break;
                        }
                    }
                }
            }
            if p.committed == p.settled() && p.stopping {
                return;
            }
            (p.committed, p.committed > p.settled())
        };
        let (target, waiting) = target;
        let commits = shared.commits.load(Ordering::Relaxed);
        // The newest commit, the target's or a later one, for other sites
        // to confirm.
        let last = env.last_commit();
        let flushed = match &confirmation {
            Some(c) if c.skip_flush && waiting => Ok(()),
            _ => env.flush_log(),
        };
        if flushed.is_ok() {
            flushed_commits = commits;
        }
        // Only turns that wait are confirmed, not a background flush.
        let flushed = match (flushed, confirmation.as_deref_mut(), last) {
            (Ok(()), Some(c), Some(last)) if waiting => confirm(c, env, &last),
            (flushed, _, _) => flushed,
        };
        let settled = {
            let mut p = shared.lock();
            let settles = target > p.settled();
            if settles {
                match flushed {
                    Ok(()) => p.durable = target,
                    Err(e) => {
                        p.failed = target;
                        p.error = Some(e);
                    }
                }
            }
            settles
        };
        if settled {
            shared.changed.notify_all();
            if let Err(e) = waker.wake() {
                log::error!("waking the reactor failed: {e}");
            }
        }
        match flushed {
            Err(e) if fatal::check("flushing the log", e) => {}
            // Logged by the confirmer.
            Err(e) if e.is_unacknowledged() || e.is_superseded() => {}
            Err(e) if settled => log_limit::error!(
                "log flush",
                "flushing the log failed, sets not acknowledged: {e}"
            ),
            Err(e) => log_limit::error!("log flush", "flushing the log failed: {e}"),
            Ok(()) => keep_reserved(&mut reserve, shared),
        }
    }
}

/// Asks other sites to confirm the commit of `last` (and so every one
/// before it); an error when they do not in time (DB_REP_UNAVAIL, as
/// Berkeley DB reports an unmet policy), or when another site has become
/// master without it (DB_REP_DUPMASTER).
fn confirm(c: &mut Confirming, env: &Env, last: &bdb::CommitToken) -> bdb::Result<()> {
    match c.confirmer.confirm(env, last) {
        bdb::Confirmation::Yes => Ok(()),
        bdb::Confirmation::No => Err(bdb::Error::Other(libdb_sys::DB_REP_UNAVAIL)),
        bdb::Confirmation::Superseded => Err(bdb::Error::Other(libdb_sys::DB_REP_DUPMASTER)),
    }
}

/// Allocates the log file being written in full if it is not yet, and
/// publishes the newest one that is.
fn keep_reserved(reserve: &mut LogReserve, shared: &Shared) {
    if let Some(file) = reserve.check() {
        shared.reserved.store(file, Ordering::Release);
    }
}
