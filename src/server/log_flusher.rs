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
//! When it could not be allocated, -N turns wait for a flush like the
//! default mode's.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use mio::Waker;

use super::Durability;
use crate::bdb::{self, Env};
use crate::fatal;
use crate::log_limit;
use crate::storage::LogReserve;

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
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct LogFlusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// With -N, tells whether the log file being written is allocated in
    /// full; `None` in the default mode, where every turn waits for a flush
    /// (and the thread keeps the log file allocated).
    nosync: Option<LogReserve>,
}

impl LogFlusher {
    /// Starts the thread; `waker` wakes the reactor after each flush.
    pub fn start(env: Env, waker: Waker, durability: Durability) -> io::Result<LogFlusher> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let reserve = LogReserve::new(&env);
        let (nosync, thread_reserve) = match durability {
            Durability::NoSync => (Some(reserve), None),
            Durability::FlushBeforeReply => (None, Some(reserve)),
        };
        let thread = thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || flush_loop(&env, &worker, &waker, thread_reserve))?;
        Ok(LogFlusher {
            shared,
            thread: Some(thread),
            nosync,
        })
    }

    /// Whether the replies of the turn just committed must wait for a
    /// flush: always in the default mode; with -N only while the log file
    /// being written is not allocated in full.
    pub fn holds_replies(&mut self) -> bool {
        match &mut self.nosync {
            None => true,
            Some(reserve) => !reserve.check(),
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

fn flush_loop(env: &Env, shared: &Shared, waker: &Waker, mut reserve: Option<LogReserve>) {
    if let Some(reserve) = &mut reserve {
        reserve.check();
    }
    loop {
        let target = {
            let mut p = shared.lock();
            while p.committed == p.settled() && !p.stopping {
                p = shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.committed == p.settled() {
                return;
            }
            p.committed
        };
        let flushed = env.flush_log();
        {
            let mut p = shared.lock();
            match flushed {
                Ok(()) => p.durable = target,
                Err(e) => {
                    p.failed = target;
                    p.error = Some(e);
                }
            }
        }
        shared.changed.notify_all();
        if let Err(e) = waker.wake() {
            log::error!("waking the reactor failed: {e}");
        }
        match flushed {
            Err(e) if !fatal::check("flushing the log", e) => log_limit::error!(
                "log flush",
                "flushing the log failed, sets not acknowledged: {e}"
            ),
            Err(_) => {}
            Ok(()) => {
                if let Some(reserve) = &mut reserve {
                    reserve.check();
                }
            }
        }
    }
}
