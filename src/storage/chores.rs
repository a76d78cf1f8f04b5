//! Berkeley DB's periodic chores, each on its own thread: checkpoints,
//! memp_trickle and deadlock detection (docs/STORAGE.md, "What runs in the environment").

use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::bdb::Env;

/// How often each chore runs; `None` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct ChoreSchedule {
    /// -C.
    pub checkpoint: Option<Duration>,
    /// -T.
    pub trickle: Option<Duration>,
    /// -e: the clean-page percentage trickle aims at.
    pub trickle_percent: i32,
    /// -D.
    pub deadlock_detect: Option<Duration>,
}

/// Set once when the chores must end; threads wait on it between runs.
#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    /// Sleeps `period`; true when stopped meanwhile.
    fn wait(&self, period: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, period, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        *stopped
    }
}

/// The running chore threads.
pub struct Chores {
    stop: Arc<StopSignal>,
    threads: Vec<JoinHandle<()>>,
}

impl Chores {
    pub fn start(env: &Env, schedule: ChoreSchedule) -> std::io::Result<Chores> {
        let mut chores = Chores {
            stop: Arc::new(StopSignal::default()),
            threads: Vec::new(),
        };
        if let Some(period) = schedule.checkpoint {
            chores.spawn("checkpoint", env, period, |env| {
                env.checkpoint().map(|()| log::debug!("checkpoint written"))
            })?;
        }
        if let Some(period) = schedule.trickle {
            let percent = schedule.trickle_percent;
            chores.spawn("trickle", env, period, move |env| {
                env.trickle(percent)
                    .map(|n| log::debug!("memp_trickle wrote {n} page(s)"))
            })?;
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
        chore: impl Fn(&Env) -> crate::bdb::Result<()> + Send + 'static,
    ) -> std::io::Result<()> {
        let env = env.clone();
        let stop = self.stop.clone();
        let label = name.to_string();
        let handle = thread::Builder::new()
            .name(format!("bdb-{name}"))
            .spawn(move || {
                while !stop.wait(period) {
                    if let Err(e) = chore(&env) {
                        if !crate::fatal::check(&label, e) {
                            log::error!("{label} failed: {e}");
                        }
                    }
                }
            })?;
        self.threads.push(handle);
        Ok(())
    }

    /// Stops every chore and waits for the threads to end.
    pub fn stop(self) {
        *self.stop.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.wake.notify_all();
        for t in self.threads {
            let _ = t.join();
        }
    }
}
