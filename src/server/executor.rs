//! Runs one turn's commands against storage: every command that arrived in
//! the turn shares one transaction and one commit (group commit), and no
//! reply leaves before that commit succeeded.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::bdb::{self, Txn};
use crate::log_limit;
use crate::protocol::{reply, Command};
use crate::stats::{Stats, VERSION};
use crate::storage::record;
use crate::storage::{Counts, QueueStore};

/// How often a transaction chosen as a deadlock victim is retried.
const DEADLOCK_RETRIES: usize = 10;

/// Where a command came from, so its reply can go back there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Origin {
    /// The connection in slot `index`, if it is still the one numbered
    /// `id` (slots are reused, and a reply must never reach a newer client).
    Conn { index: usize, id: u64 },
    /// A UDP request.
    Udp { peer: SocketAddr, request_id: u16 },
}

/// One command of the turn, with where it came from and its reply.
#[derive(Debug)]
pub struct Entry {
    pub origin: Origin,
    pub command: Command,
    /// The reply bytes, sent once the turn has committed.
    pub reply: Vec<u8>,
}

/// Changes a transaction makes visible only once it commits.
#[derive(Default)]
struct Pending {
    counts: HashMap<Vec<u8>, Counts>,
    get_cmds: u64,
    get_hits: u64,
    set_cmds: u64,
    set_hits: u64,
}

impl Pending {
    /// The counter delta of `queue`; the name is copied only once per
    /// transaction.
    fn count(&mut self, queue: &[u8]) -> &mut Counts {
        if !self.counts.contains_key(queue) {
            self.counts.insert(queue.to_vec(), Counts::default());
        }
        self.counts.get_mut(queue).expect("inserted above")
    }
}

/// Why a transaction stopped before its commit.
enum Stop {
    /// A deadlock victim: run the whole segment again.
    Retry,
    /// Entry `index` failed on its own: run again without it.
    Failed(usize, bdb::Error),
    /// The transaction itself failed: nothing of it is acknowledged.
    Txn(bdb::Error),
}

/// Executes commands in order; owns the queues.
pub struct Executor {
    store: QueueStore,
    /// Reused record buffer for consumed messages.
    record: Vec<u8>,
    /// -Z: `stats queue` lists names only, as MemcacheQ 0.1.x did.
    names_only_stats: bool,
    /// Commit turns without flushing the log; the log flusher makes them
    /// durable before their replies are sent.
    deferred_flush: bool,
}

impl Executor {
    pub fn new(store: QueueStore, names_only_stats: bool, deferred_flush: bool) -> Executor {
        Executor {
            store,
            record: Vec::new(),
            names_only_stats,
            deferred_flush,
        }
    }

    pub fn store(&self) -> &QueueStore {
        &self.store
    }

    /// Runs `entries` in order, filling each reply.
    pub fn run(&mut self, entries: &mut [Entry], stats: &mut Stats) {
        let mut start = 0;
        while start < entries.len() {
            // Commands outside set/get see committed state, so the run of
            // set/get before them commits first.
            let end = entries[start..]
                .iter()
                .position(|e| !in_transaction(&e.command))
                .map_or(entries.len(), |i| start + i);
            if end > start {
                self.run_transaction(&mut entries[start..end], stats);
                start = end;
            } else {
                let entry = &mut entries[start];
                self.run_alone(&entry.command, &mut entry.reply, stats);
                start += 1;
            }
        }
    }

    /// Runs set/get commands in one transaction, retrying deadlock victims
    /// and leaving out commands that fail on their own.
    fn run_transaction(&mut self, entries: &mut [Entry], stats: &mut Stats) {
        let mut failed = vec![false; entries.len()];
        self.create_missing_queues(entries, &mut failed);
        let mut retries = 0;
        loop {
            let mut pending = Pending::default();
            for e in entries.iter_mut() {
                e.reply.clear();
            }
            match self.try_transaction(entries, &failed, &mut pending) {
                Ok(()) => {
                    self.apply(pending, stats);
                    return;
                }
                Err(Stop::Retry) if retries < DEADLOCK_RETRIES => retries += 1,
                Err(Stop::Retry) => {
                    log_limit::error!("deadlock", "giving up after {retries} deadlock retries");
                    return fail_all(entries, stats);
                }
                Err(Stop::Failed(i, e)) => {
                    log_limit::error!(
                        "command",
                        "command failed, running the others without it: {e}"
                    );
                    failed[i] = true;
                }
                Err(Stop::Txn(e)) => {
                    log_limit::error!(
                        "transaction",
                        "transaction failed, nothing of it acknowledged: {e}"
                    );
                    return fail_all(entries, stats);
                }
            }
        }
    }

    /// Queue creation commits on its own, before the transaction that
    /// stores into the new queue.
    fn create_missing_queues(&mut self, entries: &[Entry], failed: &mut [bool]) {
        for (i, e) in entries.iter().enumerate() {
            if let Command::Set { queue, .. } = &e.command {
                if !self.store.contains(queue) {
                    if let Err(err) = self.store.create(queue) {
                        log_limit::error!(
                            "queue creation",
                            "creating queue {:?} failed: {err}",
                            String::from_utf8_lossy(queue)
                        );
                        failed[i] = true;
                    }
                }
            }
        }
    }

    fn try_transaction(
        &mut self,
        entries: &mut [Entry],
        failed: &[bool],
        pending: &mut Pending,
    ) -> Result<(), Stop> {
        // A clone, so the transaction does not borrow `self`.
        let env = self.store.env().clone();
        let txn = env.begin().map_err(Stop::Txn)?;
        for (i, e) in entries.iter_mut().enumerate() {
            let result = match &e.command {
                Command::Set { queue, record } => {
                    pending.set_cmds += 1;
                    if failed[i] {
                        e.reply.extend_from_slice(reply::NOT_STORED);
                        Ok(())
                    } else {
                        self.set(&txn, queue, record, &mut e.reply, pending)
                    }
                }
                Command::Get { queues } => {
                    pending.get_cmds += queues.len() as u64;
                    if failed[i] {
                        e.reply.extend_from_slice(reply::STORAGE_FAILED);
                        Ok(())
                    } else {
                        self.get(&txn, queues, &mut e.reply, pending)
                    }
                }
                other => {
                    if *other == Command::BadDataChunk {
                        pending.set_cmds += 1;
                    }
                    fixed_reply(other, &mut e.reply);
                    Ok(())
                }
            };
            match result {
                Ok(()) => {}
                Err(err) if err.is_retryable() => return Err(Stop::Retry),
                Err(err) => return Err(Stop::Failed(i, err)),
            }
        }
        for (queue, delta) in &pending.counts {
            self.store.save_counts(&txn, queue, *delta).map_err(|e| {
                if e.is_retryable() {
                    Stop::Retry
                } else {
                    Stop::Txn(e)
                }
            })?;
        }
        let committed = if self.deferred_flush {
            txn.commit_no_flush()
        } else {
            txn.commit()
        };
        committed.map_err(Stop::Txn)
    }

    fn set(
        &self,
        txn: &Txn<'_>,
        queue: &[u8],
        record: &[u8],
        out: &mut Vec<u8>,
        pending: &mut Pending,
    ) -> bdb::Result<()> {
        if self.store.append(txn, queue, record)? {
            pending.set_hits += 1;
            pending.count(queue).set += 1;
            out.extend_from_slice(reply::STORED);
        } else {
            out.extend_from_slice(reply::TOO_LARGE);
        }
        Ok(())
    }

    fn get(
        &mut self,
        txn: &Txn<'_>,
        queues: &[Vec<u8>],
        out: &mut Vec<u8>,
        pending: &mut Pending,
    ) -> bdb::Result<()> {
        for queue in queues {
            if !self.store.consume(txn, queue, &mut self.record)? {
                continue;
            }
            // An undecodable record fails the command, and the abort puts
            // the message back: a server error never takes a message.
            let message = record::decode(&self.record).ok_or(bdb::Error::Other(libc::EILSEQ))?;
            message.write_value(out);
            pending.get_hits += 1;
            pending.count(queue).get += 1;
        }
        out.extend_from_slice(reply::END);
        Ok(())
    }

    /// Makes a committed transaction's counters visible.
    fn apply(&mut self, pending: Pending, stats: &mut Stats) {
        for (queue, delta) in pending.counts {
            self.store.add_counts(&queue, delta);
        }
        stats.get_cmds += pending.get_cmds;
        stats.get_hits += pending.get_hits;
        stats.set_cmds += pending.set_cmds;
        stats.set_hits += pending.set_hits;
    }

    /// Commands that commit on their own or only read committed state.
    fn run_alone(&mut self, command: &Command, out: &mut Vec<u8>, stats: &mut Stats) {
        match command {
            Command::Delete { queue } => match self.store.delete(queue) {
                Ok(true) => out.extend_from_slice(reply::DELETED),
                Ok(false) => out.extend_from_slice(reply::NOT_FOUND),
                Err(e) => {
                    log::error!("deleting {:?} failed: {e}", String::from_utf8_lossy(queue));
                    out.extend_from_slice(reply::DELETE_FAILED);
                }
            },
            Command::Stats => stats.write_report(out),
            Command::StatsQueue => self.write_queue_stats(out),
            Command::StatsReset => {
                stats.reset();
                out.extend_from_slice(reply::RESET);
            }
            Command::Checkpoint => ok_or_error(self.store.env().checkpoint(), out),
            Command::Archive => ok_or_error(self.store.env().remove_unneeded_logs(), out),
            other => fixed_reply(other, out),
        }
    }

    fn write_queue_stats(&self, out: &mut Vec<u8>) {
        for (name, counts) in self.store.counts() {
            out.extend_from_slice(b"STAT ");
            out.extend_from_slice(name);
            if !self.names_only_stats {
                out.extend_from_slice(format!(" {}/{}", counts.set, counts.get).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(reply::END);
    }
}

/// Whether a command runs inside the turn's shared transaction.
fn in_transaction(command: &Command) -> bool {
    !matches!(
        command,
        Command::Delete { .. }
            | Command::Stats
            | Command::StatsQueue
            | Command::StatsReset
            | Command::Checkpoint
            | Command::Archive
    )
}

/// Replies that need no storage.
fn fixed_reply(command: &Command, out: &mut Vec<u8>) {
    match command {
        Command::Version => out.extend_from_slice(format!("VERSION {VERSION}\r\n").as_bytes()),
        Command::Verbosity => out.extend_from_slice(reply::OK),
        Command::BadDataChunk => out.extend_from_slice(reply::BAD_CHUNK),
        Command::Reply(text) | Command::ReplyAndClose(text) => out.extend_from_slice(text),
        _ => {}
    }
}

fn ok_or_error(result: bdb::Result<()>, out: &mut Vec<u8>) {
    match result {
        Ok(()) => out.extend_from_slice(reply::OK),
        Err(e) => {
            log::error!("{e}");
            out.extend_from_slice(reply::ERROR);
        }
    }
}

/// After a failed transaction: nothing stored, nothing taken.
fn fail_all(entries: &mut [Entry], stats: &mut Stats) {
    for e in entries.iter_mut() {
        e.reply.clear();
        match &e.command {
            Command::Set { .. } => {
                stats.set_cmds += 1;
                e.reply.extend_from_slice(reply::NOT_STORED);
            }
            Command::Get { .. } => e.reply.extend_from_slice(reply::STORAGE_FAILED),
            other => fixed_reply(other, &mut e.reply),
        }
    }
}
