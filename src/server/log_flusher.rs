//! Flushes the Berkeley DB log on its own thread, so the reactor can run the
//! next turn's transaction while the previous one reaches the disk.
//!
//! The reactor commits each turn without a flush and numbers it (its
//! generation). This thread flushes the whole log and then reports the
//! newest generation committed before the flush began: every turn up to it
//! is durable, and only then are its replies sent.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::Waker;

use crate::bdb::Env;
use crate::log_limit;

/// Pause before retrying a failed flush.
const RETRY_DELAY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Progress {
    /// Newest turn committed (without a flush).
    committed: u64,
    /// Newest turn known to be on disk.
    durable: u64,
    /// Set at shutdown, once everything committed is durable.
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    /// Wakes the flusher when a turn commits, and waiters when one is durable.
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
}

impl LogFlusher {
    /// Starts the thread; `waker` wakes the reactor after each flush.
    pub fn start(env: Env, waker: Waker) -> std::io::Result<LogFlusher> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let thread = thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || flush_loop(&env, &worker, &waker))?;
        Ok(LogFlusher {
            shared,
            thread: Some(thread),
        })
    }

    /// Reports that turn `generation` has committed.
    pub fn committed(&self, generation: u64) {
        self.shared.lock().committed = generation;
        self.shared.changed.notify_all();
    }

    /// The newest durable turn.
    pub fn durable(&self) -> u64 {
        self.shared.lock().durable
    }

    /// Blocks until turn `generation` is durable.
    pub fn wait_durable(&self, generation: u64) {
        let mut p = self.shared.lock();
        while p.durable < generation {
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

fn flush_loop(env: &Env, shared: &Shared, waker: &Waker) {
    loop {
        let target = {
            let mut p = shared.lock();
            while p.committed == p.durable && !p.stopping {
                p = shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.committed == p.durable {
                return;
            }
            p.committed
        };
        if let Err(e) = env.flush_log() {
            // Replies stay held: nothing is acknowledged that is not on disk.
            log_limit::error!("log flush", "flushing the log failed, retrying: {e}");
            thread::sleep(RETRY_DELAY);
            continue;
        }
        shared.lock().durable = target;
        shared.changed.notify_all();
        if let Err(e) = waker.wake() {
            log::error!("waking the reactor failed: {e}");
        }
    }
}
