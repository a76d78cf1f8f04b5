//! Runs one turn's commands against storage, in order. The `set`s and
//! `get`s of a turn share one transaction and one commit (group commit);
//! the turn is split into several transactions only at a command that
//! runs alone (`delete`, `flush`, the stats, see `command_class`) and
//! every 10,000 records, to stay under the lock table. No reply leaves
//! before its commit succeeded (and, see `held_turns`, is durable).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{Durability, QueueStatsFormat};
use crate::bdb::{self, Txn};
use crate::fatal;
use crate::log_limit;
use crate::protocol::{reply, Command, Dialect, Refusal, Reply};
use crate::queue_name::CreateRefusal;
use crate::stats::Stats;

use super::command_class::{class_of, Execution, ReplySize};
use super::get_slices::GetSlice;
use super::replication::Replication;
use super::waiting::Wait;
use super::ReadSettings;

mod reads;
mod stored_times;
use crate::storage::{self, Counts, DiskSpace, QueueStore};

/// How often a transaction chosen as a deadlock victim is retried.
const DEADLOCK_RETRIES: usize = 10;

/// Records one transaction may store or take: each holds a lock until the
/// commit, and the environment's lock table (40,000) is shared with every
/// other transaction and the chores. A turn with more is split into several
/// transactions, each committed before its replies go out.
const RECORDS_PER_TRANSACTION: usize = 10_000;

/// Reply bytes one slice of a long `get` may need at most (`get_slices`):
/// what a client that never reads can make the server hold beyond the
/// connection's output limit.
const GET_SLICE_REPLY: usize = 256 * 1024;
/// Reply bytes of a `VALUE` line beyond the record: `VALUE`, the name, a
/// cas unique and line ends, generously.
const VALUE_LINE_OVERHEAD: usize = 300;
/// Reply bytes of one `stats queue` line: `STAT`, the longest name, two
/// counters and line end.
const QUEUE_STATS_LINE: usize = 300;
/// Reply bytes of one queue's `dump_stats` block.
const QUEUE_DUMP: usize = 600;
/// Reply bytes of `stats`.
const STATS_REPLY: usize = 1024;
/// Reply bytes of any other single-line reply.
pub const LINE_REPLY: usize = 64;

/// Where a command came from, so its reply can go back there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Origin {
    /// The connection in slot `index`, if it is still the one numbered
    /// `id` (slots are reused, and a reply must never reach a newer client).
    Conn { index: usize, id: u64 },
    /// A UDP request.
    Udp { peer: SocketAddr, request_id: u16 },
}

/// Upper bounds on the bytes of replies, known before their commands run,
/// so that a client that never reads can be stopped before its replies
/// outgrow its share of memory. A copy: I/O threads use it too.
#[derive(Debug, Clone, Copy)]
pub struct ReplyBounds {
    /// The longest record of any queue.
    max_record_len: usize,
    /// How many queues there are.
    queues: usize,
}

impl ReplyBounds {
    /// Bounds for queues of records up to `max_record_len` bytes, and
    /// `queues` of them.
    pub fn new(max_record_len: usize, queues: usize) -> ReplyBounds {
        ReplyBounds {
            max_record_len,
            queues,
        }
    }

    /// The most bytes a reply of `size` may take.
    pub fn of(self, size: ReplySize) -> usize {
        match size {
            ReplySize::Line => LINE_REPLY,
            ReplySize::Stats => STATS_REPLY,
            ReplySize::PerKey(keys) => keys * self.value_block() + LINE_REPLY,
            ReplySize::QueueStats => self.queues * QUEUE_STATS_LINE + LINE_REPLY,
            ReplySize::QueueDumps => self.queues * QUEUE_DUMP + LINE_REPLY,
        }
    }

    /// How many keys of a long `get` run in one slice (at least one).
    pub fn keys_per_get_slice(self) -> usize {
        (GET_SLICE_REPLY / self.value_block()).max(1)
    }

    /// The most bytes of one `VALUE` block.
    fn value_block(self) -> usize {
        self.max_record_len + VALUE_LINE_OVERHEAD
    }
}

/// What running a command came to, beside its reply bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (or not run yet).
    Answered,
    /// A `set` that stored its message: its `STORED` stands only once its
    /// commit is durable (see `unconfirmed`).
    Stored,
    /// The reply is an error, and nothing of the command was done.
    Failed,
    /// A `get <q>/t=<ms>` that found nothing to hand out: no reply yet; it
    /// waits in the reactor and runs again when a message comes.
    Waiting,
}

/// One command of the turn, with where it came from and its reply.
#[derive(Debug)]
pub struct Entry {
    pub origin: Origin,
    pub command: Command,
    /// The client asked for no reply (memcached's `noreply`): the reply is
    /// made as usual but never sent.
    pub noreply: bool,
    /// Output bytes reserved for the reply when the command was taken (see
    /// `ReplyBounds`); returned when the reply is delivered.
    pub reserved: usize,
    /// The reply bytes, sent once the turn has committed.
    pub reply: Vec<u8>,
    /// What running it came to, beside the reply bytes.
    pub outcome: Outcome,
    /// What a request that may wait carries between turns.
    pub wait: Wait,
    /// Which slice of a long `get` this is, if it is one (`get_slices`).
    pub slice: Option<GetSlice>,
    /// The framing its reply goes back in: the reply above is made in
    /// text, and re-encoded on delivery (`protocol::Dialect`).
    pub dialect: Dialect,
}

impl Entry {
    /// A command from `origin`, not yet run.
    pub fn new(origin: Origin, command: Command) -> Entry {
        Entry {
            origin,
            command,
            noreply: false,
            reserved: 0,
            reply: Vec::new(),
            outcome: Outcome::Answered,
            wait: Wait::default(),
            slice: None,
            dialect: Dialect::Text,
        }
    }
}

/// Changes a transaction makes visible only once it commits.
#[derive(Default)]
struct Pending {
    /// Disk space new messages may still take in this attempt, measured
    /// when first needed (see `Executor::charge`).
    space: Option<u64>,
    /// Bytes of queue records stored in this attempt.
    stored_bytes: u64,
    counts: HashMap<Vec<u8>, Counts>,
    get_cmds: u64,
    get_hits: u64,
    set_cmds: u64,
    set_hits: u64,
    /// Reliable reads of this attempt (`reads.rs`).
    reads: reads::PendingReads,
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
    Failed(usize, storage::Error),
    /// Entry `index` is refused with a reply and must change nothing:
    /// run again without it.
    Refused(usize, Reply<'static>),
    /// The transaction itself failed: nothing of it is acknowledged.
    Txn(storage::Error),
    /// A dead-letter queue is needed: create it, then run again.
    CreateQueue(Vec<u8>),
}

/// Executes commands in order; owns the queues.
pub struct Executor {
    store: QueueStore,
    /// Reused record buffer for consumed messages.
    record: Vec<u8>,
    /// -Z: what `stats queue` lists.
    queue_stats: QueueStatsFormat,
    /// -N: how a turn's commit becomes durable.
    durability: Durability,
    /// Refuses sets while the disk is (nearly) full.
    space: DiskSpace,
    /// Open messages and what reliable reads remember (`reads.rs`).
    reads: reads::Reads,
    /// The replication group this site belongs to, for `stats
    /// replication`.
    replication: Option<Replication>,
}

impl Executor {
    /// Runs commands on `store`, listing `stats queue` as `queue_stats`
    /// and committing for `durability`.
    pub fn new(
        store: QueueStore,
        queue_stats: QueueStatsFormat,
        durability: Durability,
    ) -> Executor {
        let space = DiskSpace::new(store.home(), store.env());
        Executor {
            store,
            record: Vec::new(),
            queue_stats,
            durability,
            space,
            reads: reads::Reads::default(),
            replication: None,
        }
    }

    /// Answers `stats replication` for this site of `replication`.
    pub fn with_replication(mut self, replication: Option<Replication>) -> Executor {
        self.replication = replication;
        self
    }

    /// Serves reliable reads with these settings (--lease-timeout,
    /// --max-deliveries).
    pub fn with_reads(mut self, settings: ReadSettings) -> Executor {
        self.reads.settings = settings;
        self
    }

    pub fn store(&self) -> &QueueStore {
        &self.store
    }

    /// Gives the queues back, for the shutdown's last checkpoint.
    pub fn into_store(self) -> QueueStore {
        self.store
    }

    /// Upper bounds on replies as the store stands now.
    pub fn reply_bounds(&self) -> ReplyBounds {
        ReplyBounds::new(self.store.max_record_len(), self.store.queue_count())
    }

    /// Runs `entries` in order, filling each reply.
    /// `waiters_on(queue)` tells how many requests wait on a queue (for
    /// `dump_stats`).
    pub fn run(
        &mut self,
        entries: &mut [Entry],
        stats: &mut Stats,
        waiters_on: &dyn Fn(&[u8]) -> usize,
    ) {
        let mut start = 0;
        while start < entries.len() {
            let first = &entries[start];
            if class_of(&first.command).execution == Execution::Alone {
                let entry = &mut entries[start];
                self.run_alone(&entry.command, &mut entry.reply, stats, waiters_on);
                start += 1;
                continue;
            }
            // Commands outside set/get see committed state, so the run of
            // set/get before them commits first.
            let mut end = start;
            let mut records = 0;
            while let Some(e) = entries.get(end) {
                let class = class_of(&e.command);
                let alone = class.execution == Execution::Alone;
                if alone || records + class.records > RECORDS_PER_TRANSACTION {
                    break;
                }
                records += class.records;
                end += 1;
            }
            // A command alone past the limit still runs, in its own
            // transaction (gets are sliced well below it, see `get_slices`).
            end = end.max(start + 1);
            self.run_transaction(&mut entries[start..end], stats);
            start = end;
        }
    }

    /// Runs set/get commands in one transaction, retrying deadlock victims
    /// and leaving out commands that fail on their own.
    fn run_transaction(&mut self, entries: &mut [Entry], stats: &mut Stats) {
        // The reply of each command left out of the transaction.
        let mut failed: Vec<Option<Reply<'static>>> = vec![None; entries.len()];
        self.create_missing_queues(entries, &mut failed);
        self.reads.uncreatable.clear();
        let mut retries = 0;
        loop {
            let mut pending = Pending {
                ..Pending::default()
            };
            for e in entries.iter_mut() {
                e.reply.clear();
                e.outcome = Outcome::Answered;
            }
            match self.try_transaction(entries, &failed, &mut pending, stats.version()) {
                Ok(()) => {
                    self.apply(pending, stats);
                    return;
                }
                Err(Stop::Retry) if retries < DEADLOCK_RETRIES => retries += 1,
                Err(Stop::Retry) => {
                    log_limit::error!("deadlock", "giving up after {retries} deadlock retries");
                    return fail_all(entries, stats, None);
                }
                Err(Stop::Refused(i, refusal)) => failed[i] = Some(refusal),
                Err(Stop::CreateQueue(dead)) => self.create_dead_letter_queue(dead),
                Err(Stop::Failed(i, e)) if !affects_everything(e) => {
                    log_limit::error!(
                        "command",
                        "command failed, running the others without it: {e}"
                    );
                    failed[i] = Some(match entries[i].command {
                        Command::Set { .. } => Reply::NotStored,
                        _ => reply::STORAGE_FAILED,
                    });
                }
                Err(Stop::Failed(_, e) | Stop::Txn(e)) => {
                    if !needs_recovery("a transaction", e) {
                        log_limit::error!(
                            "transaction",
                            "transaction failed, nothing of it acknowledged: {e}"
                        );
                    }
                    return fail_all(entries, stats, Some(e));
                }
            }
        }
    }

    /// Queue creation commits on its own, before the transaction that
    /// stores into the new queue. A name that may not be created is
    /// refused here rather than by the parser, so that existing queues with
    /// such names (written by the original) are still served. No queue is
    /// created on a full disk.
    fn create_missing_queues(&mut self, entries: &[Entry], failed: &mut [Option<Reply<'static>>]) {
        self.prepare_reads(entries);
        let mut space = None;
        for (i, e) in entries.iter().enumerate() {
            let Command::Set { queue, .. } = &e.command else {
                continue;
            };
            if self.store.contains(queue) {
                continue;
            }
            match self.store.name_rules().check_new(queue) {
                Err(CreateRefusal::BadName) => {
                    failed[i] = Some(reply::BAD_FORMAT);
                    continue;
                }
                Err(CreateRefusal::TooLongForExtents) => {
                    failed[i] = Some(reply::NAME_TOO_LONG_FOR_EXTENTS);
                    continue;
                }
                Ok(()) => {}
            }
            let space = space.get_or_insert_with(|| self.space.budget());
            if *space < DiskSpace::queue_cost() {
                failed[i] = Some(reply::NO_SPACE);
                continue;
            }
            *space -= DiskSpace::queue_cost();
            if let Err(err) = self.store.create(queue) {
                if !needs_recovery("creating a queue", err) {
                    log_limit::error!(
                        "queue creation",
                        "creating queue {:?} failed: {err}",
                        String::from_utf8_lossy(queue)
                    );
                }
                failed[i] = Some(if err.is_disk_full() {
                    reply::NO_SPACE
                } else {
                    Reply::NotStored
                });
            }
        }
    }

    fn try_transaction(
        &mut self,
        entries: &mut [Entry],
        failed: &[Option<Reply<'static>>],
        pending: &mut Pending,
        version: &str,
    ) -> Result<(), Stop> {
        // A clone, so the transaction does not borrow `self`.
        let env = self.store.env().clone();
        let txn = env.begin().map_err(|e| Stop::Txn(e.into()))?;
        for (i, e) in entries.iter_mut().enumerate() {
            let result = match &e.command {
                Command::Set { queue, record } => {
                    pending.set_cmds += 1;
                    match failed[i] {
                        Some(refusal) => {
                            refusal.encode(&mut e.reply);
                            e.outcome = Outcome::Failed;
                            Ok(())
                        }
                        None => self
                            .set(&txn, queue, record, &mut e.reply, pending)
                            .map(|outcome| e.outcome = outcome),
                    }
                }
                Command::Get { keys, cas } => {
                    pending.get_cmds += keys.len() as u64;
                    let form = reads::GetForm {
                        cas: *cas,
                        end: e.slice.is_none_or(GetSlice::ends_reply),
                    };
                    match failed[i] {
                        Some(refusal) => {
                            refusal.encode(&mut e.reply);
                            e.outcome = Outcome::Failed;
                            Ok(())
                        }
                        None => match self.get(&txn, e.origin, keys, form, &mut e.reply, pending) {
                            Ok(reads::Got::Answered) => Ok(()),
                            Ok(reads::Got::Waiting) => {
                                e.outcome = Outcome::Waiting;
                                Ok(())
                            }
                            Ok(reads::Got::Refused(refusal)) => {
                                return Err(Stop::Refused(i, refusal))
                            }
                            Ok(reads::Got::CreateFirst(dead)) => {
                                return Err(Stop::CreateQueue(dead))
                            }
                            Err(err) => Err(err),
                        },
                    }
                }
                other => {
                    if matches!(other, Command::Refused(Refusal::BadDataChunk)) {
                        pending.set_cmds += 1;
                    }
                    fixed_reply(other, &mut e.reply, version);
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
        let committed = match self.durability {
            // The log flusher makes the commit durable before its replies
            // are sent.
            Durability::FlushBeforeReply => txn.commit_no_flush(),
            Durability::NoSync => txn.commit(),
        };
        committed.map_err(|e| Stop::Txn(e.into()))
    }

    fn set(
        &mut self,
        txn: &Txn<'_>,
        queue: &[u8],
        record: &[u8],
        out: &mut Vec<u8>,
        pending: &mut Pending,
    ) -> storage::Result<Outcome> {
        let record_len = self.store.record_len(queue).unwrap_or(0);
        if !self.charge(pending, DiskSpace::message_cost(record_len)) {
            reply::NO_SPACE.encode(out);
            return Ok(Outcome::Failed);
        }
        if let Some(recno) = self.store.append(txn, queue, record)? {
            pending.reads.stored(queue, recno);
            pending.stored_bytes += record_len as u64;
            pending.set_hits += 1;
            pending.count(queue).set += 1;
            Reply::Stored.encode(out);
            Ok(Outcome::Stored)
        } else {
            reply::TOO_LARGE.encode(out);
            Ok(Outcome::Failed)
        }
    }

    /// Takes `cost` bytes of the attempt's disk budget, measured once per
    /// attempt when first needed; false (and nothing taken) when they are
    /// not there.
    fn charge(&mut self, pending: &mut Pending, cost: u64) -> bool {
        let space = pending.space.get_or_insert_with(|| self.space.budget());
        if *space < cost {
            return false;
        }
        *space -= cost;
        true
    }

    /// Makes a committed transaction's counters visible.
    fn apply(&mut self, pending: Pending, stats: &mut Stats) {
        self.space.charge(pending.stored_bytes);
        for (queue, delta) in &pending.counts {
            if delta.set > 0 {
                self.reads.supplied(queue, delta.set as usize);
            }
        }
        for (queue, delta) in pending.counts {
            self.store.add_counts(&queue, delta);
        }
        self.apply_reads(pending.reads);
        stats.get_cmds += pending.get_cmds;
        stats.get_hits += pending.get_hits;
        stats.set_cmds += pending.set_cmds;
        stats.set_hits += pending.set_hits;
    }

    /// Commands that commit on their own or only read committed state.
    fn run_alone(
        &mut self,
        command: &Command,
        out: &mut Vec<u8>,
        stats: &mut Stats,
        waiters_on: &dyn Fn(&[u8]) -> usize,
    ) {
        match command {
            Command::Delete { queue } => match self.store.delete(queue) {
                Ok(true) => {
                    self.reads.forget_queue(queue);
                    Reply::Deleted.encode(out)
                }
                Ok(false) => Reply::NotFound.encode(out),
                Err(e) => {
                    if !needs_recovery("deleting a queue", e) {
                        log::error!("deleting {:?} failed: {e}", String::from_utf8_lossy(queue));
                    }
                    reply::DELETE_FAILED.encode(out);
                }
            },
            Command::Stats => stats.write_report(out),
            Command::StatsReplication => match &self.replication {
                Some(replication) => out.extend(replication.report(self.store.env())),
                None => Reply::Error.encode(out),
            },
            Command::StatsQueue => self.write_queue_stats(out),
            Command::StatsReset => {
                stats.reset();
                Reply::Reset.encode(out);
            }
            Command::DumpStats => self.dump_stats(out, stats, waiters_on),
            Command::Flush { queue } => self.flush(queue, out),
            Command::Checkpoint => ok_or_error(self.store.env().checkpoint(), out),
            Command::Archive => ok_or_error(self.store.env().remove_unneeded_logs(), out),
            other => fixed_reply(other, out, stats.version()),
        }
    }

    fn write_queue_stats(&self, out: &mut Vec<u8>) {
        for (name, counts) in self.store.counts() {
            let counts = match self.queue_stats {
                QueueStatsFormat::Counters => Some((counts.set, counts.get)),
                QueueStatsFormat::NamesOnly => None,
            };
            Reply::QueueStat { name, counts }.encode(out);
        }
        Reply::End.encode(out);
    }
}

/// Replies that need no storage.
pub fn fixed_reply(command: &Command, out: &mut Vec<u8>, version: &str) {
    match command {
        Command::Version => Reply::Version(version).encode(out),
        Command::Verbosity => Reply::Ok.encode(out),
        Command::Refused(refusal) => refusal.reply().encode(out),
        _ => {}
    }
}

fn ok_or_error(result: bdb::Result<()>, out: &mut Vec<u8>) {
    match result {
        Ok(()) => Reply::Ok.encode(out),
        Err(e) => {
            if !fatal::check("a db_checkpoint or db_archive command", e) {
                log::error!("{e}");
            }
            Reply::Error.encode(out);
        }
    }
}

/// Errors after which no command of the transaction can succeed: a full
/// disk, a failing one, an environment that needs recovery.
fn affects_everything(e: storage::Error) -> bool {
    e.is_disk_full()
        || matches!(
            e.as_bdb(),
            Some(bdb::Error::RunRecovery | bdb::Error::Other(libc::EIO))
        )
}

/// Whether `e`, met while doing `what`, means the environment needs
/// recovery (see `fatal`).
fn needs_recovery(what: &str, e: storage::Error) -> bool {
    e.as_bdb().is_some_and(|e| fatal::check(what, e))
}

/// After a failed transaction (`error`, if not a deadlock): nothing
/// stored, nothing taken.
fn fail_all(entries: &mut [Entry], stats: &mut Stats, error: Option<storage::Error>) {
    let disk_full = error.is_some_and(storage::Error::is_disk_full);
    for e in entries.iter_mut() {
        e.reply.clear();
        // A waiting get is answered with the error, not parked.
        e.outcome = Outcome::Answered;
        match &e.command {
            Command::Set { .. } => {
                stats.set_cmds += 1;
                e.outcome = Outcome::Failed;
                let reply = if disk_full {
                    reply::NO_SPACE
                } else {
                    Reply::NotStored
                };
                reply.encode(&mut e.reply);
            }
            Command::Get { .. } => {
                e.outcome = Outcome::Failed;
                let reply = if disk_full {
                    reply::NO_SPACE
                } else {
                    reply::STORAGE_FAILED
                };
                reply.encode(&mut e.reply);
            }
            other => fixed_reply(other, &mut e.reply, stats.version()),
        }
    }
}

/// Rewrites the replies of a committed turn whose log flush failed with
/// `error`: a set's `STORED` becomes a `SERVER_ERROR`, since the message
/// may never reach the disk (the client may send it again: at least once,
/// never a `STORED` that is not on disk). A get keeps its `VALUE`: the
/// message is taken off in memory and would be lost if withheld; should
/// the taking never reach the disk, a restart delivers it again.
///
/// With replication, a turn committed by a site that another site has
/// since replaced as master will be rolled back: none of its changes
/// stands, so every command that would have changed data is told so, its
/// `VALUE`s included (the messages stay with the new master).
pub fn unconfirmed(entries: &mut [Entry], error: Option<bdb::Error>) {
    if error.is_some_and(bdb::Error::is_superseded) {
        let changed = entries.iter_mut().filter(|e| {
            !matches!(e.outcome, Outcome::Failed | Outcome::Waiting)
                && class_of(&e.command).changes_data
        });
        for e in changed {
            e.reply.clear();
            reply::SUPERSEDED.encode(&mut e.reply);
            e.outcome = Outcome::Failed;
        }
        return;
    }
    let unacknowledged = error.is_some_and(bdb::Error::is_unacknowledged);
    let refusal = match error {
        Some(e) if e.is_disk_full() => reply::NO_SPACE,
        _ if unacknowledged => reply::NOT_ACKNOWLEDGED,
        _ => reply::STORAGE_FAILED,
    };
    // With replication, a `/close` that hands out nothing is told its
    // closing was not acknowledged (should a failover undo it, the message
    // comes back: at least once).
    let closes_only = |e: &Entry| match &e.command {
        Command::Get { keys, .. } => keys
            .iter()
            .all(|k| k.options.close && !k.options.hands_out()),
        _ => false,
    };
    for e in entries.iter_mut().filter(|e| {
        e.outcome == Outcome::Stored
            || (unacknowledged && e.outcome == Outcome::Answered && closes_only(e))
    }) {
        e.reply.clear();
        refusal.encode(&mut e.reply);
        e.outcome = Outcome::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::GetKey;

    fn entry(command: Command, reply: Reply) -> Entry {
        let outcome = match reply {
            Reply::Stored => Outcome::Stored,
            Reply::ServerError(_) => Outcome::Failed,
            _ => Outcome::Answered,
        };
        Entry {
            reply: reply.to_vec(),
            outcome,
            ..Entry::new(Origin::Conn { index: 0, id: 1 }, command)
        }
    }

    #[test]
    fn an_unflushed_turn_acknowledges_no_set_but_keeps_its_values() {
        let set = || Command::Set {
            queue: b"q".to_vec(),
            record: Vec::new(),
        };
        let value = b"VALUE q 0 1\r\nx\r\nEND\r\n";
        let get = Command::Get {
            keys: vec![GetKey::plain(b"q")],
            cas: false,
        };
        let mut entries = vec![
            entry(set(), Reply::Stored),
            entry(set(), reply::TOO_LARGE),
            Entry {
                reply: value.to_vec(),
                ..entry(get, Reply::End)
            },
            entry(Command::Version, Reply::Version("0.2.1")),
        ];
        unconfirmed(&mut entries, Some(bdb::Error::Other(libc::ENOSPC)));
        let replies: Vec<Vec<u8>> = entries.iter().map(|e| e.reply.clone()).collect();
        let want: Vec<Vec<u8>> = vec![
            reply::NO_SPACE.to_vec(),
            reply::TOO_LARGE.to_vec(),
            value.to_vec(),
            b"VERSION 0.2.1\r\n".to_vec(),
        ];
        assert_eq!(replies, want);
        unconfirmed(&mut entries[..1], Some(bdb::Error::Other(libc::EIO)));
        assert_eq!(
            entries[0].reply,
            reply::NO_SPACE.to_vec(),
            "only STORED is rewritten"
        );
        let mut stored = vec![entry(set(), Reply::Stored)];
        unconfirmed(&mut stored, Some(bdb::Error::Other(libc::EIO)));
        assert_eq!(stored[0].reply, reply::STORAGE_FAILED.to_vec());
    }
}
