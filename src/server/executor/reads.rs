//! `get` and its reliable and blocking forms (docs/PROTOCOL.md, "Reliable
//! and blocking reads"): taking, opening, closing, aborting and peeking
//! messages, the dead-letter move, `dump_stats` and `flush`.
//!
//! An open message stays an ordinary record of its queue; what makes it
//! open is a lease in memory (`Leases`). Within a transaction, leases
//! granted and ended are `LeaseChanges` in `PendingReads`, which every
//! later read of the transaction consults; they take effect at the commit,
//! like the counters.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::stored_times::StoredTimes;
use super::{Executor, Origin, Pending};
use crate::bdb::Txn;
use crate::item;
use crate::log_limit::{self, invariant};
use crate::protocol::reply::{self, QueueDump};
use crate::protocol::{GetKey, Reply};
use crate::server::leases::{LeaseChanges, Leases};
use crate::server::metrics::{QueueSample, Slice};
use crate::server::ReadSettings;
use crate::stats::Stats;
use crate::storage::{self, DiskSpace};

/// Queues `dump_stats` reads in one transaction.
const DUMP_SLICE: usize = 100;

/// How a `get`'s reply is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct GetForm {
    /// `gets`: each `VALUE` line carries the record number as cas unique.
    pub cas: bool,
    /// The reply ends with `END` (all but the last slice of a long `get`
    /// leave it to the slice after them).
    pub end: bool,
}

/// How a `get` ended.
pub(super) enum Got {
    /// Its reply is written.
    Answered,
    /// A `/t=` read found nothing to hand out: it waits, no reply yet.
    Waiting,
    /// Refused; it must change nothing.
    Refused(Reply<'static>),
    /// A message is due to move to this dead-letter queue, which does not
    /// exist: the transaction stops, the queue is created in one of its
    /// own, and the transaction runs again.
    CreateFirst(Vec<u8>),
}

/// What `hand_out` found.
enum HandOut {
    Given,
    Empty,
    CreateFirst(Vec<u8>),
    /// The get is refused and takes nothing (e.g. a dead-letter move that
    /// the disk has no room for).
    Refused(Reply<'static>),
}

/// One key of a `get` to hand a message out for, and where its reply goes.
struct Asked<'a> {
    key: &'a GetKey,
    /// The connection asking (`None` over UDP).
    holder: Option<u64>,
    /// `gets`: the reply carries the record number.
    cas: bool,
    out: &'a mut Vec<u8>,
}

/// Why a dead-letter queue could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoDeadLetters {
    /// Not enough disk space: a message due to move stays where it is, and
    /// the get that would move it is refused until there is room.
    NoSpace,
    /// Its name may not be created, or creating it failed: messages due to
    /// move are handed out as if they had no limit (else they would block
    /// their queue for good).
    Impossible,
}

/// What reliable reads keep between turns.
#[derive(Default)]
pub(super) struct Reads {
    pub(super) settings: ReadSettings,
    leases: Leases,
    /// Per queue: what `dump_stats` reports beyond the counters.
    activity: HashMap<Vec<u8>, Activity>,
    /// Queues that got messages to hand out (stored, given back,
    /// dead-lettered), and how many, since the reactor last asked.
    supplied: Vec<(Vec<u8>, usize)>,
    /// Dead-letter queues that could not be created in the transaction
    /// being run, and why.
    pub(super) uncreatable: HashMap<Vec<u8>, NoDeadLetters>,
    /// Why `/open` is refused in the transaction being run:
    /// `queue.deliveries`, where its count goes, could not be created.
    deliveries_refusal: Option<Reply<'static>>,
}

#[derive(Default)]
struct Activity {
    /// What was handed out, closed, opened again and moved since the
    /// server started.
    tally: Tally,
    /// When its messages were stored, for `age`.
    stored: StoredTimes,
}

/// Per queue, what its reads did (counted from the server's start).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Messages taken by `get` or opened.
    delivered: u64,
    /// Open messages closed.
    acked: u64,
    /// Messages opened again.
    redelivered: u64,
    /// Messages moved to `<q>.dead`.
    dead_lettered: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.delivered += other.delivered;
        self.acked += other.acked;
        self.redelivered += other.redelivered;
        self.dead_lettered += other.dead_lettered;
    }
}

impl Reads {
    /// `queue` got `messages` to hand out: waiting requests may run again.
    pub(super) fn supplied(&mut self, queue: &[u8], messages: usize) {
        match self.supplied.last_mut() {
            Some((last, n)) if last == queue => *n += messages,
            _ => self.supplied.push((queue.to_vec(), messages)),
        }
    }

    /// A queue was deleted: its leases and activity go with it.
    pub(super) fn forget_queue(&mut self, queue: &[u8]) {
        self.leases.release_queue(queue);
        self.activity.remove(queue);
    }
}

/// Reliable-read changes of one transaction attempt.
#[derive(Default)]
pub(super) struct PendingReads {
    /// Leases granted and ended, in the order the commands ran.
    leases: LeaseChanges,
    /// Delivery counts written (0: forgotten).
    deliveries: HashMap<(Vec<u8>, u32), u32>,
    /// Messages stored: queue and first record number of the turn.
    stored: Vec<(Vec<u8>, u32)>,
    /// Messages taken for good: queue and the highest record number.
    taken: Vec<(Vec<u8>, u32)>,
    /// Queues given a message back (`/abort`).
    woken: Vec<Vec<u8>>,
    /// Per queue, what this attempt's reads did.
    tallies: HashMap<Vec<u8>, Tally>,
}

impl PendingReads {
    /// Notes a stored message, for `dump_stats`'s `age`.
    pub(super) fn stored(&mut self, queue: &[u8], recno: u32) {
        if self.stored.last().is_none_or(|(q, _)| q != queue) {
            self.stored.push((queue.to_vec(), recno));
        }
    }

    /// The tally of `queue`; the name is copied once per transaction.
    fn tally(&mut self, queue: &[u8]) -> &mut Tally {
        if !self.tallies.contains_key(queue) {
            self.tallies.insert(queue.to_vec(), Tally::default());
        }
        self.tallies.get_mut(queue).expect("inserted above")
    }

    /// Notes a message taken for good, so `age` forgets its time.
    fn taken(&mut self, queue: &[u8], recno: u32) {
        match self.taken.last_mut() {
            Some((q, highest)) if q == queue => *highest = (*highest).max(recno),
            _ => self.taken.push((queue.to_vec(), recno)),
        }
    }
}

/// The dead-letter queue of `queue`.
fn dead_letter_queue(queue: &[u8]) -> Vec<u8> {
    [queue, b".dead"].concat()
}

impl Executor {
    /// Before a turn's transaction: `queue.deliveries`, which `/open`
    /// writes, must exist (it is created in a transaction of its own, and
    /// charged to the disk budget as a queue is).
    pub(super) fn prepare_reads(&mut self, entries: &[super::Entry]) {
        let opens = entries.iter().any(|e| {
            matches!(&e.command, super::Command::Get { keys, .. }
                if keys.iter().any(|k| k.options.open))
        });
        self.reads.deliveries_refusal = None;
        if !opens || self.store.deliveries().file_exists() {
            return;
        }
        if self.space.budget() < DiskSpace::queue_cost() {
            self.reads.deliveries_refusal = Some(reply::NO_SPACE);
            return;
        }
        let (deliveries, env) = self.store.deliveries_mut();
        if let Err(err) = deliveries.ensure_file(env) {
            log_limit::error!(
                "deliveries file",
                "creating {}: {err}",
                storage::deliveries::FILE_NAME
            );
            self.reads.deliveries_refusal = Some(if err.is_disk_full() {
                reply::NO_SPACE
            } else {
                reply::STORAGE_FAILED
            });
        }
    }

    /// Creates the dead-letter queue `dead` before the transaction that
    /// moves a message into it runs again; a queue that cannot be created
    /// is remembered for the rest of the transaction's attempts.
    pub(super) fn create_dead_letter_queue(&mut self, dead: Vec<u8>) {
        let created = match self.store.name_rules().check_new(&dead) {
            Ok(()) if self.space.budget() < DiskSpace::queue_cost() => Err(NoDeadLetters::NoSpace),
            Ok(()) => self.store.create(&dead).map_err(|e| {
                log_limit::error!(
                    "dead-letter queue",
                    "creating dead-letter queue {:?} failed: {e}",
                    String::from_utf8_lossy(&dead)
                );
                if e.is_disk_full() {
                    NoDeadLetters::NoSpace
                } else {
                    NoDeadLetters::Impossible
                }
            }),
            Err(why) => {
                log_limit::error!(
                    "dead-letter queue",
                    "no dead-letter queue {:?} ({why:?}): its messages are handed out without a limit",
                    String::from_utf8_lossy(&dead)
                );
                Err(NoDeadLetters::Impossible)
            }
        };
        if let Err(why) = created {
            self.reads.uncreatable.insert(dead, why);
        }
    }

    /// Whether record `recno` of `queue` is open, as of this attempt.
    fn is_open(&self, queue: &[u8], recno: u32, pending: &PendingReads) -> bool {
        pending.leases.is_open(&self.reads.leases, queue, recno)
    }

    /// How often record `recno` of `queue` has been opened.
    fn deliveries_of(&self, queue: &[u8], recno: u32, pending: &PendingReads) -> u32 {
        // Checked for emptiness first: plain gets pass here for every
        // message and should not pay for building a key.
        if !pending.deliveries.is_empty() {
            if let Some(&n) = pending.deliveries.get(&(queue.to_vec(), recno)) {
                return n;
            }
        }
        self.store.deliveries().count(queue, recno)
    }

    /// Writes a delivery count in `txn` (0 forgets it).
    fn write_deliveries(
        &self,
        txn: &Txn<'_>,
        queue: &[u8],
        recno: u32,
        count: u32,
        pending: &mut PendingReads,
    ) -> storage::Result<()> {
        let known = self.deliveries_of(queue, recno, pending);
        if known == count {
            return Ok(());
        }
        self.store.deliveries().write(txn, queue, recno, count)?;
        pending.deliveries.insert((queue.to_vec(), recno), count);
        Ok(())
    }

    /// A message nobody holds leaves `queue` for good: its count goes too.
    fn gone(
        &self,
        txn: &Txn<'_>,
        queue: &[u8],
        recno: u32,
        pending: &mut Pending,
    ) -> storage::Result<()> {
        invariant!(
            !self.is_open(queue, recno, &pending.reads),
            "record {recno} of {:?} taken while open",
            String::from_utf8_lossy(queue)
        );
        pending.count(queue).get += 1;
        pending.reads.taken(queue, recno);
        self.write_deliveries(txn, queue, recno, 0, &mut pending.reads)
    }

    /// Runs one `get` or `gets` line.
    pub(super) fn get(
        &mut self,
        txn: &Txn<'_>,
        origin: Origin,
        keys: &[GetKey],
        form: GetForm,
        out: &mut Vec<u8>,
        pending: &mut Pending,
    ) -> storage::Result<Got> {
        let holder = match origin {
            Origin::Conn { id, .. } => Some(id),
            Origin::Udp { .. } => None,
        };
        for key in keys {
            let queue = key.queue();
            let options = key.options;
            let committed = &self.reads.leases;
            let held = holder.and_then(|h| pending.reads.leases.held_by(committed, h, queue));
            if options.close {
                if let Some(recno) = held {
                    pending.reads.leases.release(committed, queue, recno);
                    self.store.remove(txn, queue, recno)?;
                    self.gone(txn, queue, recno, pending)?;
                    pending.reads.tally(queue).acked += 1;
                }
            } else if options.abort {
                if let Some(recno) = held {
                    pending.reads.leases.release(committed, queue, recno);
                    pending.reads.woken.push(queue.to_vec());
                }
            } else if options.open && held.is_some() {
                return Ok(Got::Refused(reply::CLOSE_FIRST));
            }
            if !options.hands_out() {
                continue;
            }
            let asked = Asked {
                key,
                holder,
                cas: form.cas,
                out: &mut *out,
            };
            match self.hand_out(txn, asked, pending)? {
                HandOut::Given => {}
                HandOut::Empty if options.wait.is_some() => return Ok(Got::Waiting),
                HandOut::Empty => {}
                HandOut::CreateFirst(dead) => return Ok(Got::CreateFirst(dead)),
                HandOut::Refused(refusal) => return Ok(Got::Refused(refusal)),
            }
        }
        if form.end {
            Reply::End.encode(out);
        }
        Ok(Got::Answered)
    }

    /// Hands out the oldest free message of the key's queue as its options
    /// say.
    fn hand_out(
        &mut self,
        txn: &Txn<'_>,
        asked: Asked<'_>,
        pending: &mut Pending,
    ) -> storage::Result<HandOut> {
        // The reusable buffer goes back whatever happens.
        let mut record = std::mem::take(&mut self.record);
        let result = self.hand_out_with(txn, asked, pending, &mut record);
        self.record = record;
        result
    }

    /// `hand_out` with `record` as the buffer of records read.
    fn hand_out_with(
        &mut self,
        txn: &Txn<'_>,
        asked: Asked<'_>,
        pending: &mut Pending,
        record: &mut Vec<u8>,
    ) -> storage::Result<HandOut> {
        let Asked {
            key,
            holder,
            cas,
            out,
        } = asked;
        let queue = key.queue();
        let options = key.options;
        if let Some(refusal) = self.reads.deliveries_refusal.filter(|_| options.open) {
            return Ok(HandOut::Refused(refusal));
        }
        let max = self.reads.settings.max_deliveries;
        loop {
            // A plain get on a queue with nothing open takes the head
            // record as the original does; otherwise open records are
            // stepped over.
            let takes = !options.keeps_message();
            let consumed = takes && !pending.reads.leases.any_open(&self.reads.leases, queue);
            let found = if consumed {
                self.store.consume(txn, queue, record)?
            } else {
                self.store.first_not_open(txn, queue, record, |r| {
                    pending
                        .reads
                        .leases
                        .last_open_from(&self.reads.leases, queue, r)
                })?
            };
            let Some(recno) = found else {
                break Ok(HandOut::Empty);
            };
            // An undecodable record fails the command, and the abort puts
            // the message back: a server error never takes a message.
            let message = item::decode(record).ok_or(storage::Error::CorruptRecord)?;
            let delivered = self.deliveries_of(queue, recno, &pending.reads);
            let used = message.encoded_len();
            let mut dead =
                (max > 0 && delivered >= max && !options.peek).then(|| dead_letter_queue(queue));
            match dead.as_ref().and_then(|d| self.reads.uncreatable.get(d)) {
                Some(NoDeadLetters::NoSpace) => break Ok(HandOut::Refused(reply::NO_SPACE)),
                Some(NoDeadLetters::Impossible) => dead = None,
                None => {}
            }
            if let Some(dead) = dead.as_ref().filter(|dead| !self.store.contains(dead)) {
                break Ok(HandOut::CreateFirst(dead.clone()));
            }
            let dead = dead.and_then(|dead| {
                let len = self.store.record_len(&dead).filter(|&len| used <= len)?;
                Some((dead, len))
            });
            if let Some((dead, dead_len)) = dead {
                // The move stores a message: charged as a set is.
                if !self.charge(pending, DiskSpace::message_cost(dead_len)) {
                    break Ok(HandOut::Refused(reply::NO_SPACE));
                }
                pending.stored_bytes += dead_len as u64;
                if !consumed {
                    self.store.remove(txn, queue, recno)?;
                }
                self.gone(txn, queue, recno, pending)?;
                if let Some(moved) = self.store.append(txn, &dead, &record[..used])? {
                    pending.reads.stored(&dead, moved);
                    pending.count(&dead).set += 1;
                }
                pending.reads.tally(queue).dead_lettered += 1;
                // The dead queue's set count wakes its waiters at the
                // commit, once per message.
                continue;
            }
            // The key as asked for, options included (a dead letter's
            // record still carries its first queue's name).
            Reply::Value {
                message: &message,
                key: Some(&key.key),
                cas: cas.then_some(u64::from(recno)),
            }
            .encode(out);
            pending.get_hits += 1;
            if options.open || takes {
                pending.reads.tally(queue).delivered += 1;
            }
            if options.open {
                let holder = holder.expect("the reactor refuses /open over UDP");
                pending
                    .reads
                    .leases
                    .grant(&self.reads.leases, queue, recno, holder);
                if delivered > 0 {
                    pending.reads.tally(queue).redelivered += 1;
                }
                self.write_deliveries(txn, queue, recno, delivered + 1, &mut pending.reads)?;
            } else if takes {
                if !consumed {
                    self.store.remove(txn, queue, recno)?;
                }
                self.gone(txn, queue, recno, pending)?;
            }
            break Ok(HandOut::Given);
        }
    }

    /// Makes a committed transaction's reliable-read changes visible.
    pub(super) fn apply_reads(&mut self, pending: PendingReads) {
        let now = Instant::now();
        let expires = self.reads.settings.lease_timeout.map(|t| now + t);
        pending.leases.commit(&mut self.reads.leases, expires);
        for ((queue, recno), count) in pending.deliveries {
            self.store.deliveries_mut().0.apply(&queue, recno, count);
        }
        for (queue, recno) in pending.stored {
            let activity = self.reads.activity.entry(queue).or_default();
            activity.stored.stored(recno, now);
        }
        for (queue, recno) in pending.taken {
            if let Some(activity) = self.reads.activity.get_mut(&queue) {
                activity.stored.taken_through(recno);
            }
        }
        for (queue, tally) in pending.tallies {
            self.reads
                .activity
                .entry(queue)
                .or_default()
                .tally
                .add(tally);
        }
        for queue in pending.woken {
            self.reads.supplied(&queue, 1);
        }
    }

    /// The connection `holder` is gone: its open messages are given back.
    pub fn release_holder(&mut self, holder: u64) {
        for queue in self.reads.leases.release_holder(holder) {
            self.reads.supplied(&queue, 1);
        }
    }

    /// Gives back the open messages whose lease ran out by `now`.
    pub fn expire_leases(&mut self, now: Instant) {
        for queue in self.reads.leases.expire(now) {
            self.reads.supplied(&queue, 1);
        }
    }

    /// When the next lease runs out.
    pub fn next_lease_expiry(&self) -> Option<Instant> {
        self.reads.leases.next_expiry()
    }

    /// Queues that got messages to hand out since the last call, and how
    /// many (so that as many waiting requests can run again).
    pub fn take_supplied(&mut self) -> Vec<(Vec<u8>, usize)> {
        std::mem::take(&mut self.reads.supplied)
    }

    /// `dump_stats`: Kestrel's per-queue report.
    pub(super) fn dump_stats(
        &mut self,
        out: &mut Vec<u8>,
        stats: &Stats,
        waiters_on: &dyn Fn(&[u8]) -> usize,
    ) {
        let mut samples: Vec<QueueSample> = Vec::new();
        loop {
            // Slices keep each read transaction's locks few, whatever the
            // number of queues (the lock table has 40,000 entries).
            let after = samples.last().map(|q| q.name.clone());
            let slice = Slice {
                after: after.as_deref(),
                max: DUMP_SLICE,
                time: Duration::MAX,
            };
            if self.sample_queues(slice, &mut samples, stats, waiters_on) {
                break;
            }
        }
        for sample in samples {
            let record_len = self.store.record_len(&sample.name).unwrap_or(0) as u64;
            let dump = QueueDump {
                name: &sample.name,
                items: sample.ready,
                bytes: sample.ready * record_len,
                total_items: sample.published,
                open: sample.unacked,
                waiters: sample.waiters,
                age_ms: sample.age_ms,
                redelivered: sample.redelivered,
                dead_lettered: sample.dead_lettered,
            };
            Reply::QueueDump(&dump).encode(out);
        }
        Reply::End.encode(out);
    }

    /// Appends to `out` the queues of `slice`, in name order, as
    /// `dump_stats` and the metrics page report them; returns whether the
    /// last queue is in.
    pub fn sample_queues(
        &mut self,
        slice: Slice<'_>,
        out: &mut Vec<QueueSample>,
        stats: &Stats,
        waiters_on: &dyn Fn(&[u8]) -> usize,
    ) -> bool {
        let now = Instant::now();
        let mut queues: Vec<(Vec<u8>, storage::Counts)> = self
            .store
            .counts_after(slice.after)
            .take(slice.max.saturating_add(1))
            .map(|(n, c)| (n.to_vec(), c))
            .collect();
        let mut done = queues.len() <= slice.max;
        queues.truncate(slice.max);
        // One transaction for the slice's reads: beginning and committing
        // one per queue cost more than the reads.
        let env = self.store.env().clone();
        let txn = env.begin().ok();
        for (taken, (name, counts)) in queues.into_iter().enumerate() {
            if taken > 0 && now.elapsed() >= slice.time {
                done = false;
                break;
            }
            let open = self.reads.leases.open_count(&name) as u64;
            let held = u64::try_from(counts.set - counts.get).unwrap_or(0);
            let ready = held.saturating_sub(open);
            let oldest = match &txn {
                Some(txn) if ready > 0 => self.oldest_waiting(txn, &name),
                _ => None,
            };
            let age_ms = oldest.map_or(0, |recno| self.stored_age(&name, recno, now, stats));
            let tally = self
                .reads
                .activity
                .get(&name)
                .map(|a| a.tally)
                .unwrap_or_default();
            out.push(QueueSample {
                ready,
                unacked: open,
                published: u64::try_from(counts.set).unwrap_or(0),
                delivered: tally.delivered,
                acked: tally.acked,
                redelivered: tally.redelivered,
                dead_lettered: tally.dead_lettered,
                waiters: waiters_on(&name) as u64,
                age_ms,
                name,
            });
        }
        if let Some(txn) = txn {
            let _ = txn.commit();
        }
        done
    }

    /// The record number of the oldest message of `queue` nobody holds.
    /// `txn` only reads.
    fn oldest_waiting(&mut self, txn: &Txn<'_>, queue: &[u8]) -> Option<u32> {
        let mut record = std::mem::take(&mut self.record);
        let leases = &self.reads.leases;
        let found = self
            .store
            .first_not_open(txn, queue, &mut record, |r| leases.last_open_from(queue, r));
        self.record = record;
        found.ok().flatten()
    }

    /// Milliseconds since record `recno` of `queue` was stored, as far as
    /// the server saw (from its start for older messages).
    fn stored_age(&self, queue: &[u8], recno: u32, now: Instant, stats: &Stats) -> u64 {
        let at = self
            .reads
            .activity
            .get(queue)
            .and_then(|a| a.stored.stored_at(recno))
            .unwrap_or(stats.started());
        now.duration_since(at).as_millis() as u64
    }

    /// `flush <q>`: every message of the queue goes, open ones included;
    /// the queue stays. `END` in any case.
    pub(super) fn flush(&mut self, queue: &[u8], out: &mut Vec<u8>) {
        match self.store.flush(queue) {
            Ok(_) => {
                self.reads.leases.release_queue(queue);
                // Every message went, and record numbers start again.
                if let Some(activity) = self.reads.activity.get_mut(queue) {
                    activity.stored = StoredTimes::default();
                }
            }
            Err(e) => log::error!("flush of {:?} failed: {e}", String::from_utf8_lossy(queue)),
        }
        Reply::End.encode(out);
    }
}
