//! Berkeley DB's background chores, each on its own thread: checkpoints,
//! memp_trickle and deadlock detection (docs/STORAGE.md, "What runs in the
//! environment").
//!
//! Trickle has two reasons to run. The original's clock: every -T seconds,
//! memp_trickle towards -e percent clean pages. And a deep backlog's need:
//! the store counts the messages it stores ([`CacheWatch`]) and wakes the
//! trickle thread each time about a hundredth of the cache may have been
//! filled; while the queues hold more messages than a quarter of the
//! cache, once more than 10 percent of it is dirty (or 100 - e, if less),
//! the thread writes every dirty page, and it does so at once when a deep
//! queue leaves an extent file. A thread that needs room in the cache (the
//! reactor, storing a message) then drops a clean page instead of writing
//! a dirty one itself; and a closed extent file's pages, which it could
//! not write at all, do not stay in the cache for good.
//!
//! Taking messages does not wake the thread: the pages it leaves dirty
//! hold no message any more, and the reactor drops or writes them cheaply
//! when it needs room (their log records are on disk by then), or
//! Berkeley DB discards them with their emptied extent file. Draining a
//! deep backlog that way runs 10-20% faster than with the thread writing
//! them (157,000-180,000 messages/s against 145,000-164,000, 2,000,000
//! messages, two cores shared with the load).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::bdb::{self, Env};

/// How often each chore runs; `None` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct ChoreSchedule {
    /// -C.
    pub checkpoint: Option<Duration>,
    /// -T.
    pub trickle: Option<Duration>,
    /// -e: the clean-page percentage trickle aims at, and below which the
    /// cache's need starts it between two -T runs.
    pub trickle_percent: i32,
    /// -D.
    pub deadlock_detect: Option<Duration>,
}

/// What a chore thread waits for between runs.
#[derive(Default)]
struct Signal {
    state: Mutex<SignalState>,
    wake: Condvar,
}

#[derive(Default)]
struct SignalState {
    /// The chores must end.
    stopped: bool,
    /// The trickle thread should look at the cache.
    nudged: bool,
    /// The trickle thread should write every dirty page now.
    urgent: bool,
}

/// What ended a chore thread's wait.
#[derive(Debug, PartialEq, Eq)]
enum Woke {
    Stopped,
    /// Look at the cache.
    Nudged,
    /// Write every dirty page.
    Urgent,
    /// The period passed.
    Due,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, SignalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps `period` at most (`None`: until stopped or nudged), and says
    /// why it woke; a nudge is used up by the wake it causes.
    fn wait(&self, period: Option<Duration>) -> Woke {
        let idle = |s: &mut SignalState| !s.stopped && !s.nudged && !s.urgent;
        let state = self.lock();
        let mut state = match period {
            Some(period) => {
                self.wake
                    .wait_timeout_while(state, period, idle)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self
                .wake
                .wait_while(state, idle)
                .unwrap_or_else(|e| e.into_inner()),
        };
        if state.stopped {
            Woke::Stopped
        } else if state.urgent {
            state.urgent = false;
            state.nudged = false;
            Woke::Urgent
        } else if state.nudged {
            state.nudged = false;
            Woke::Nudged
        } else {
            Woke::Due
        }
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
    }

    fn nudge(&self) {
        self.lock().nudged = true;
        self.wake.notify_all();
    }

    fn hurry(&self) {
        self.lock().urgent = true;
        self.wake.notify_all();
    }
}

/// What the store tells the trickle chore: how many messages it stores,
/// so that the chore looks at the cache every so many of them and never
/// while nothing is stored; how many messages the queues hold, since only
/// a backlog that competes for the cache needs pages written ahead of
/// time; and when Berkeley DB closes an extent file of a deep queue.
/// Clones share the counts; without a trickle chore the counts are all
/// there is.
#[derive(Clone)]
pub struct CacheWatch {
    inner: Arc<Watch>,
}

struct Watch {
    /// Messages stored so far.
    stored: AtomicU64,
    /// Wake the chore every this many messages stored.
    every: u64,
    /// Messages in all queues (stored minus taken), about.
    backlog: AtomicU64,
    /// From this many messages on, the backlog competes for the cache.
    deep: u64,
    signal: Arc<Signal>,
}

impl CacheWatch {
    /// A watch waking its chore every `every` messages stored, and
    /// calling a backlog deep from `deep` messages on.
    pub fn new(every: u64, deep: u64) -> CacheWatch {
        CacheWatch {
            inner: Arc::new(Watch {
                stored: AtomicU64::new(0),
                every: every.max(1),
                backlog: AtomicU64::new(0),
                deep,
                signal: Arc::default(),
            }),
        }
    }

    /// A watch for a cache of `cache_bytes` holding records of about
    /// `record_len` bytes: a wake-up per hundredth of the cache, and a
    /// backlog is deep once its records would fill a quarter of it.
    pub fn for_cache(cache_bytes: u64, record_len: u64) -> CacheWatch {
        let records = cache_bytes / record_len.max(1);
        CacheWatch::new(records / 100, records / 4)
    }

    /// Counts `n` messages the queues held when they were opened.
    pub fn held(&self, n: u64) {
        self.inner.backlog.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` messages stored.
    pub fn stored(&self, n: u64) {
        self.inner.backlog.fetch_add(n, Ordering::Relaxed);
        let every = self.inner.every;
        let before = self.inner.stored.fetch_add(n, Ordering::Relaxed);
        if before / every != (before + n) / every {
            self.inner.signal.nudge();
        }
    }

    /// Counts `n` messages taken off, or deleted with their queue.
    pub fn taken(&self, n: u64) {
        let backlog = &self.inner.backlog;
        let _ = backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            Some(b.saturating_sub(n))
        });
    }

    /// Says that Berkeley DB has just closed an extent file of a queue
    /// with a backlog, whose dirty pages the reactor can no longer write
    /// to make room: the trickle chore writes them at once (see
    /// [`trickle_loop`]).
    pub fn extent_closed(&self) {
        self.inner.signal.hurry();
    }

    /// Messages stored so far.
    pub fn stored_so_far(&self) -> u64 {
        self.inner.stored.load(Ordering::Relaxed)
    }

    /// Messages in the queues, about.
    pub fn backlog(&self) -> u64 {
        self.inner.backlog.load(Ordering::Relaxed)
    }

    /// Whether the queues hold enough messages to compete for the cache.
    pub fn is_deep(&self) -> bool {
        self.backlog() >= self.inner.deep
    }
}

/// The running chore threads.
pub struct Chores {
    /// What every thread waits on: stopping sets them all.
    signals: Vec<Arc<Signal>>,
    threads: Vec<JoinHandle<()>>,
}

impl Chores {
    /// Starts the chores of `schedule`; trickle runs on the -T clock only.
    pub fn start(env: &Env, schedule: ChoreSchedule) -> std::io::Result<Chores> {
        Chores::start_watching(env, schedule, None)
    }

    /// Starts the chores of `schedule`, trickle also when `watch` says
    /// that enough has been written for the cache to need it.
    pub fn start_watching(
        env: &Env,
        schedule: ChoreSchedule,
        watch: Option<&CacheWatch>,
    ) -> std::io::Result<Chores> {
        let mut chores = Chores {
            signals: vec![Arc::default()],
            threads: Vec::new(),
        };
        if let Some(period) = schedule.checkpoint {
            chores.spawn("checkpoint", env, period, |env| {
                env.checkpoint().map(|()| log::debug!("checkpoint written"))
            })?;
        }
        let percent = schedule.trickle_percent;
        match watch {
            Some(watch) => {
                chores.signals.push(Arc::clone(&watch.inner.signal));
                let env = env.clone();
                let watch = watch.clone();
                let period = schedule.trickle;
                let handle = thread::Builder::new()
                    .name("bdb-trickle".into())
                    .spawn(move || trickle_loop(&env, &watch, period, percent))?;
                chores.threads.push(handle);
            }
            None => {
                if let Some(period) = schedule.trickle {
                    chores.spawn("trickle", env, period, move |env| {
                        env.trickle(percent)
                            .map(|n| log::debug!("memp_trickle wrote {n} page(s)"))
                    })?;
                }
            }
        }
        if let Some(period) = schedule.deadlock_detect {
            chores.spawn("deadlock", env, period, |env| {
                env.detect_deadlocks().map(|n| {
                    if n > 0 {
                        log::warn!("deadlock detector rejected {n} lock request(s)");
                    }
                })
            })?;
        }
        Ok(chores)
    }

    fn spawn(
        &mut self,
        name: &str,
        env: &Env,
        period: Duration,
        chore: impl Fn(&Env) -> bdb::Result<()> + Send + 'static,
    ) -> std::io::Result<()> {
        let env = env.clone();
        let stop = Arc::clone(&self.signals[0]);
        let label = name.to_string();
        let handle = thread::Builder::new()
            .name(format!("bdb-{name}"))
            .spawn(move || {
                while stop.wait(Some(period)) != Woke::Stopped {
                    report(&label, chore(&env));
                }
            })?;
        self.threads.push(handle);
        Ok(())
    }

    /// Stops every chore and waits for the threads to end.
    pub fn stop(self) {
        for signal in &self.signals {
            signal.stop();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Logs a chore's failure (or stops the server if Berkeley DB asks for
/// recovery).
fn report(label: &str, result: bdb::Result<()>) {
    if let Err(e) = result {
        if !crate::fatal::check(label, e) {
            log::error!("{label} failed: {e}");
        }
    }
}

/// The trickle thread: towards `percent` clean pages every `period`, as
/// the original; and while the queues hold a deep backlog, whenever woken
/// by its [`CacheWatch`], every dirty page once more than 10 percent (or
/// 100 - `percent`, if less) of the cache is dirty.
///
/// Without a deep backlog the cache fills with pages whose messages were
/// taken, and the reactor drops or writes those itself when it needs room
/// (cheaply: their log records are long on disk); writing them here
/// instead would also write the few pages the reactor is changing right
/// then, which it must then wait for.
fn trickle_loop(env: &Env, watch: &CacheWatch, period: Option<Duration>, percent: i32) {
    let signal = &watch.inner.signal;
    let mut due = period.map(|p| Instant::now() + p);
    loop {
        let wait = due.map(|at| at.saturating_duration_since(Instant::now()));
        match signal.wait(wait) {
            Woke::Stopped => return,
            Woke::Due => {
                report(
                    "trickle",
                    env.trickle(percent)
                        .map(|n| log::debug!("memp_trickle wrote {n} page(s)")),
                );
                due = period.map(|p| Instant::now() + p);
            }
            Woke::Nudged if watch.is_deep() => report("trickle", trickle_if_needed(env, percent)),
            Woke::Nudged => {}
            Woke::Urgent => report("trickle", trickle_all(env)),
        }
    }
}

/// Clean pages a deep backlog keeps at least, in percent of the cache
/// (-e may ask for more): beyond 10 percent dirty, every dirty page is
/// written.
const DEEP_CLEAN_PERCENT: i32 = 90;
/// memp_trickle's target that writes every dirty page.
const ALL_CLEAN: i32 = 100;

/// Writes every dirty page if less than `DEEP_CLEAN_PERCENT` (or `percent`,
/// if more) of the cache is clean.
fn trickle_if_needed(env: &Env, percent: i32) -> bdb::Result<()> {
    let cache = env.cache_stats()?;
    let clean = percent.max(DEEP_CLEAN_PERCENT);
    if !needs_trickle(cache.dirty_pages, cache.capacity(), clean) {
        return Ok(());
    }
    let started = Instant::now();
    let written = env.trickle(ALL_CLEAN)?;
    log::debug!(
        "{} of about {} cache pages were dirty; memp_trickle wrote {written} in {:?}",
        cache.dirty_pages,
        cache.capacity(),
        started.elapsed()
    );
    Ok(())
}

/// Writes every dirty page, twice over: memp_trickle counts the dirty
/// pages first and then writes that many in file and page order, so
/// pages dirtied meanwhile push the last ones of that order out of the
/// round (often the closed extent's last pages); the second round writes
/// most of those.
fn trickle_all(env: &Env) -> bdb::Result<()> {
    let started = Instant::now();
    let written = env.trickle(ALL_CLEAN)? + env.trickle(ALL_CLEAN)?;
    log::debug!(
        "an extent file was closed; memp_trickle wrote {written} page(s) in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// Whether `dirty` pages of a cache of `capacity` leave less than
/// `percent` percent of it clean (or free).
fn needs_trickle(dirty: u64, capacity: u64, percent: i32) -> bool {
    let dirty_limit = 100 - u64::from(percent.clamp(0, 100) as u32);
    dirty * 100 > capacity * dirty_limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickle_is_needed_below_the_clean_percentage() {
        assert!(!needs_trickle(0, 20_000, 60));
        assert!(!needs_trickle(8_000, 20_000, 60));
        assert!(needs_trickle(8_001, 20_000, 60));
        // -e 0 never asks for it, -e 100 as soon as a page is dirty.
        assert!(!needs_trickle(20_000, 20_000, 0));
        assert!(needs_trickle(1, 20_000, 100));
        assert!(!needs_trickle(0, 20_000, 100));
    }

    #[test]
    fn the_watch_nudges_every_so_many_records() {
        let watch = CacheWatch::new(10, 100);
        let signal = &watch.inner.signal;
        watch.stored(9);
        watch.taken(5);
        assert_eq!(signal.wait(Some(Duration::ZERO)), Woke::Due);
        watch.stored(1);
        assert_eq!(signal.wait(Some(Duration::ZERO)), Woke::Nudged);
        assert_eq!(signal.wait(Some(Duration::ZERO)), Woke::Due);
        watch.stored(25);
        assert_eq!(signal.wait(None), Woke::Nudged);
        watch.extent_closed();
        assert_eq!(signal.wait(None), Woke::Urgent);
        assert_eq!(watch.stored_so_far(), 35);
        signal.stop();
        assert_eq!(signal.wait(None), Woke::Stopped);
    }

    #[test]
    fn the_watch_knows_a_deep_backlog() {
        let watch = CacheWatch::new(10, 100);
        watch.held(60);
        watch.stored(39);
        assert!(!watch.is_deep());
        watch.stored(1);
        assert!(watch.is_deep());
        watch.taken(50);
        watch.taken(70);
        assert_eq!((watch.backlog(), watch.stored_so_far()), (0, 40));
    }

    #[test]
    fn a_watch_sized_for_the_cache() {
        let watch = CacheWatch::for_cache(64 << 20, 1024);
        assert_eq!((watch.inner.every, watch.inner.deep), (655, 16384));
        assert_eq!(CacheWatch::for_cache(1 << 20, 1 << 20).inner.every, 1);
    }
}
