//! What this server may do with its queues. Alone, or as the master of
//! its replication group: everything, through the executor. As a replica
//! (or while an election is under way): each command that only reads runs
//! on the queues as replicated so far, opened afresh for the turn (a
//! replica's handles go stale as the master creates and deletes queues,
//! and die when Berkeley DB rolls the site back), and every command that
//! would change data is refused with a line naming the master.

use std::path::PathBuf;

use super::command_class::class_of;
use super::executor::{self, Entry, Executor, Outcome, ReplyBounds};
use super::metrics::{QueueSample, Slice};
use super::replication::{Replication, Role};
use super::{Durability, QueueStatsFormat, ReadSettings};
use crate::bdb::{Env, QueueFormat};
use crate::log_limit;
use crate::protocol::{Command, Reply};
use crate::queue_name::NameRules;
use crate::stats::Stats;
use crate::storage::QueueStore;

/// How to open the queues and serve them (the command line's part).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub home: PathBuf,
    pub cache_bytes: u64,
    pub format: QueueFormat,
    pub names: NameRules,
    pub queue_stats: QueueStatsFormat,
    pub durability: Durability,
    pub reads: ReadSettings,
}

impl StoreSettings {
    fn executor(&self, store: QueueStore, replication: Option<&Replication>) -> Executor {
        Executor::new(store, self.queue_stats, self.durability)
            .with_reads(self.reads)
            .with_replication(replication.cloned())
    }

    fn open(&self, env: &Env) -> crate::storage::Result<QueueStore> {
        QueueStore::open_in(
            env.clone(),
            &self.home,
            self.cache_bytes,
            self.format,
            self.names,
        )
    }
}

pub struct Site {
    env: Env,
    /// Serves everything; `None` on a replica.
    executor: Option<Executor>,
    replication: Option<Replication>,
    settings: StoreSettings,
    /// Queues a replica found at its last read, for its reply bounds.
    replica_queues: usize,
}

impl Site {
    /// A server on its own.
    pub fn standalone(executor: Executor, settings: StoreSettings) -> Site {
        Site {
            env: executor.store().env().clone(),
            executor: Some(executor),
            replication: None,
            settings,
            replica_queues: 0,
        }
    }

    /// A site of a replication group, serving as its role says.
    pub fn replicated(env: Env, replication: Replication, settings: StoreSettings) -> Site {
        let mut site = Site {
            env,
            executor: None,
            replication: Some(replication),
            settings,
            replica_queues: 0,
        };
        site.follow_role();
        site
    }

    /// Whether commands may change the queues here (alone, or master).
    pub fn writes(&self) -> bool {
        self.executor.is_some()
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn replication(&self) -> Option<&Replication> {
        self.replication.as_ref()
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// What tells the trickle chore how much the queues have written, if
    /// this site serves them now (a replica's trickle runs on its timer).
    pub fn cache_watch(&self) -> Option<crate::storage::CacheWatch> {
        Some(self.executor.as_ref()?.store().cache_watch().clone())
    }

    /// Gives the queues back, if this site serves them (for the
    /// shutdown's last checkpoint, and `serve`'s caller).
    pub fn into_store(self) -> Option<QueueStore> {
        self.executor.map(Executor::into_store)
    }

    /// Opens the queues when this site has become the master, and lets
    /// them go when it no longer is (its leases go with them: the messages
    /// are free again on whichever site is master).
    pub fn follow_role(&mut self) {
        let Some(replication) = &self.replication else {
            return;
        };
        let master = replication.role() == Role::Master;
        if master && self.executor.is_none() {
            match self.settings.open(&self.env) {
                Ok(store) => {
                    log::warn!(
                        "replication: serving {} queue(s) as the master",
                        store.queue_count()
                    );
                    self.executor = Some(self.settings.executor(store, Some(replication)));
                }
                Err(e) => log_limit::error!("promotion", "opening the queues failed: {e}"),
            }
        } else if !master && self.executor.take().is_some() {
            log::warn!("replication: serving as a replica, reads only");
        }
    }

    /// Runs a turn's commands, filling each reply.
    pub fn run(
        &mut self,
        entries: &mut [Entry],
        stats: &mut Stats,
        waiters_on: &dyn Fn(&[u8]) -> usize,
    ) {
        let (Some(replication), None) = (&self.replication, &mut self.executor) else {
            if let Some(executor) = &mut self.executor {
                executor.run(entries, stats, waiters_on);
            }
            return;
        };
        // A replica opens the queues once per turn, when a command needs
        // them; before they have arrived from the master there are none.
        let mut reader: Option<Option<Executor>> = None;
        for e in entries.iter_mut() {
            if class_of(&e.command).changes_data {
                e.reply = replication.refusal();
                e.outcome = Outcome::Failed;
                continue;
            }
            let reads_queues = matches!(
                e.command,
                Command::StatsQueue
                    | Command::DumpStats
                    | Command::Get { .. }
                    | Command::Checkpoint
                    | Command::Archive
            );
            if !reads_queues {
                answer_without_queues(e, stats, replication, &self.env);
                continue;
            }
            let reader = reader.get_or_insert_with(|| {
                let store = self.settings.open(&self.env).ok()?;
                self.replica_queues = store.queue_count();
                Some(self.settings.executor(store, Some(replication)))
            });
            match reader {
                Some(executor) => executor.run(std::slice::from_mut(e), stats, waiters_on),
                None => answer_without_queues(e, stats, replication, &self.env),
            }
        }
    }

    /// Upper bounds on replies as the queues stand now.
    pub fn reply_bounds(&self) -> ReplyBounds {
        match &self.executor {
            Some(executor) => executor.reply_bounds(),
            // A replica's queues may have any record length a page holds.
            None => ReplyBounds::new(self.settings.format.page_size as usize, self.replica_queues),
        }
    }

    /// The metrics page's queues, a slice at a time (see
    /// `Executor::sample_queues`). A replica, whose queues are open only
    /// within a turn, reports none.
    pub fn sample_queues(
        &mut self,
        slice: Slice<'_>,
        out: &mut Vec<QueueSample>,
        stats: &Stats,
        waiters_on: &dyn Fn(&[u8]) -> usize,
    ) -> bool {
        match &mut self.executor {
            Some(executor) => executor.sample_queues(slice, out, stats, waiters_on),
            None => true,
        }
    }

    pub fn next_lease_expiry(&self) -> Option<std::time::Instant> {
        self.executor.as_ref()?.next_lease_expiry()
    }

    pub fn expire_leases(&mut self, now: std::time::Instant) {
        if let Some(executor) = &mut self.executor {
            executor.expire_leases(now);
        }
    }

    pub fn take_supplied(&mut self) -> Vec<(Vec<u8>, usize)> {
        self.executor
            .as_mut()
            .map(Executor::take_supplied)
            .unwrap_or_default()
    }

    pub fn release_holder(&mut self, holder: u64) {
        if let Some(executor) = &mut self.executor {
            executor.release_holder(holder);
        }
    }
}

/// A replica's answer without its queues: to the commands that need none,
/// and, before any queue has arrived from the master, to the others as
/// for no queues and no messages.
fn answer_without_queues(e: &mut Entry, stats: &mut Stats, replication: &Replication, env: &Env) {
    match &e.command {
        Command::StatsReplication => e.reply = replication.report(env),
        Command::Stats => stats.write_report(&mut e.reply),
        Command::StatsReset => {
            stats.reset();
            Reply::Reset.encode(&mut e.reply);
        }
        Command::StatsQueue | Command::DumpStats | Command::Get { .. } => {
            Reply::End.encode(&mut e.reply)
        }
        Command::Checkpoint | Command::Archive => Reply::Error.encode(&mut e.reply),
        other => executor::fixed_reply(other, &mut e.reply, stats.version()),
    }
}
