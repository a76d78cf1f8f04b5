//! Requests waiting for a message (`get <q>/t=<ms>`), and everything known
//! about them, in one place: the waiting requests of each queue in arrival
//! order, their deadlines (one timer for all, no thread per waiter), which
//! connection waits where, how many messages each queue has been given,
//! and the requests woken to run again next turn.
//!
//! The executor only reports what happened (a request found nothing; a
//! queue got messages); the reactor asks here what to do about it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use super::command_class::class_of;
use super::executor::{Entry, Origin, Outcome};
use crate::protocol::{Command, Reply};

/// Makes a request that waited answer `END`, as a plain `get` of an empty
/// queue would, taking nothing.
pub fn answer_end(mut entry: Entry) -> Entry {
    entry.outcome = Outcome::Answered;
    entry.reply.clear();
    Reply::End.encode(&mut entry.reply);
    entry
}

/// What a request that may wait carries with it between turns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait {
    /// When it was read: its time runs from then.
    pub arrived: Option<Instant>,
    /// How many messages its queue had been given when it found none.
    /// Messages given after that but before it is parked must not go
    /// unnoticed.
    seen_supply: u64,
    /// Its place among the waiters of its queue, once it has one.
    place: Option<Place>,
}

impl From<Instant> for Wait {
    /// A request that may wait, read at `arrived`.
    fn from(arrived: Instant) -> Wait {
        Wait {
            arrived: Some(arrived),
            ..Wait::default()
        }
    }
}

/// A waiting request's place among the waiters of its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    /// Arrival order.
    seq: u64,
    /// When it is answered `END` if no message came.
    deadline: Instant,
}

/// What became of a request that found nothing.
pub enum Parked {
    /// It waits.
    Waiting,
    /// Its time is up or its client left: answer it now (`END`).
    AnswerNow(Entry),
}

/// Every waiting request, and what decides when each runs again.
#[derive(Default)]
pub struct Waiting {
    /// By queue, in arrival order.
    by_queue: HashMap<Vec<u8>, VecDeque<Entry>>,
    /// (deadline, arrival number, queue), earliest first.
    deadlines: BTreeSet<(Instant, u64, Vec<u8>)>,
    /// Arrival number of the next new waiter.
    next_seq: u64,
    /// Connection number -> the queue and arrival number of its waiting
    /// request (a connection has at most one: its later commands wait).
    by_connection: HashMap<u64, (Vec<u8>, u64)>,
    /// Per queue, how many messages it has been given to hand out (stored,
    /// given back, dead-lettered) since the start.
    supply: HashMap<Vec<u8>, u64>,
    /// Requests woken by messages, to run first next turn.
    woken: Vec<Entry>,
}

impl Waiting {
    /// After a run, before its messages are counted: each request that
    /// found nothing remembers how many messages its queue had been given.
    pub fn found_nothing(&self, entries: &mut [Entry]) {
        for entry in entries.iter_mut().filter(|e| e.outcome == Outcome::Waiting) {
            entry.wait.seen_supply = self.supply_of(&queue_of(entry));
        }
    }

    /// Queues got messages to hand out, and how many: as many of their
    /// waiting requests are woken (and every peeking one before those).
    pub fn supplied(&mut self, supplied: Vec<(Vec<u8>, usize)>) {
        for (queue, n) in supplied {
            let woken = self.take(&queue, n);
            self.woken.extend(woken);
            *self.supply.entry(queue).or_default() += n as u64;
        }
    }

    /// Requests woken since the last call, oldest first.
    pub fn take_woken(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.woken)
    }

    /// Whether requests were woken and wait for the next turn.
    pub fn has_woken(&self) -> bool {
        !self.woken.is_empty()
    }

    /// Parks a request that found nothing, at its old place if it waited
    /// before; `client_left` when its client closed its side.
    pub fn park(&mut self, mut entry: Entry, client_left: bool, now: Instant) -> Parked {
        let Origin::Conn { id, .. } = entry.origin else {
            return Parked::AnswerNow(entry);
        };
        let place = self.place(&entry, now);
        if place.deadline <= now || client_left {
            return Parked::AnswerNow(entry);
        }
        entry.wait.place = Some(place);
        let queue = queue_of(&entry);
        if self.supply_of(&queue) != entry.wait.seen_supply {
            // A message came between its empty read and now: run again.
            self.woken.push(entry);
            return Parked::Waiting;
        }
        self.deadlines
            .insert((place.deadline, place.seq, queue.clone()));
        self.by_connection.insert(id, (queue.clone(), place.seq));
        let waiting = self.by_queue.entry(queue).or_default();
        let at = waiting.partition_point(|e| e.wait.place.is_some_and(|p| p.seq < place.seq));
        waiting.insert(at, entry);
        Parked::Waiting
    }

    /// Whether connection `id` has a request waiting.
    pub fn waits_for(&self, id: u64) -> bool {
        self.by_connection.contains_key(&id)
    }

    /// The waiting request of connection `id`, taken out.
    pub fn remove_of(&mut self, id: u64) -> Option<Entry> {
        let (queue, seq) = self.by_connection.get(&id)?.clone();
        self.remove(&queue, seq)
    }

    /// The waiters whose time is up by `now`, taken out.
    pub fn expired(&mut self, now: Instant) -> Vec<Entry> {
        let mut due = Vec::new();
        while let Some((deadline, seq, queue)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            match self.remove(&queue, seq) {
                Some(entry) => due.push(entry),
                None => {
                    self.deadlines.pop_first();
                }
            }
        }
        due
    }

    /// Every waiting or woken request, taken out (the server is stopping).
    pub fn take_all(&mut self) -> Vec<Entry> {
        self.deadlines.clear();
        self.by_connection.clear();
        let mut all: Vec<Entry> = self.by_queue.drain().flat_map(|(_, w)| w).collect();
        all.sort_by_key(|e| e.wait.place.map(|p| p.seq));
        all.append(&mut self.woken);
        all
    }

    /// When the next waiter's time is up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _, _)| *at)
    }

    /// How many requests wait on `queue` (`dump_stats`).
    pub fn count(&self, queue: &[u8]) -> usize {
        self.by_queue.get(queue).map_or(0, VecDeque::len)
    }

    fn supply_of(&self, queue: &[u8]) -> u64 {
        self.supply.get(queue).copied().unwrap_or(0)
    }

    /// The place of a request that found nothing: the one it had if it
    /// waited before, else a new one whose time runs from its arrival.
    fn place(&mut self, entry: &Entry, now: Instant) -> Place {
        entry.wait.place.unwrap_or_else(|| {
            self.next_seq += 1;
            Place {
                seq: self.next_seq,
                deadline: entry.wait.arrived.unwrap_or(now)
                    + class_of(&entry.command).wait.unwrap_or_default(),
            }
        })
    }

    /// `queue`'s waiters, oldest first, to run again for `n` new messages:
    /// `n` of them that take or open one, and every peeking one before
    /// those (a peek leaves the message for the next).
    fn take(&mut self, queue: &[u8], n: usize) -> Vec<Entry> {
        let Some(waiting) = self.by_queue.get(queue) else {
            return Vec::new();
        };
        let mut count = 0;
        let mut left = n;
        for entry in waiting {
            if left == 0 {
                break;
            }
            count += 1;
            if !peeks(entry) {
                left -= 1;
            }
        }
        let seqs: Vec<u64> = waiting
            .iter()
            .take(count)
            .filter_map(|e| e.wait.place.map(|p| p.seq))
            .collect();
        seqs.into_iter()
            .filter_map(|seq| self.remove(queue, seq))
            .collect()
    }

    /// The waiter with arrival number `seq` on `queue`, taken out.
    fn remove(&mut self, queue: &[u8], seq: u64) -> Option<Entry> {
        let waiting = self.by_queue.get_mut(queue)?;
        let at = waiting
            .iter()
            .position(|e| e.wait.place.is_some_and(|p| p.seq == seq))?;
        let entry = waiting.remove(at)?;
        if waiting.is_empty() {
            self.by_queue.remove(queue);
        }
        if let Some(p) = entry.wait.place {
            self.deadlines.remove(&(p.deadline, p.seq, queue.to_vec()));
        }
        if let Origin::Conn { id, .. } = entry.origin {
            self.by_connection.remove(&id);
        }
        Some(entry)
    }
}

/// Whether a waiting request only peeks.
fn peeks(entry: &Entry) -> bool {
    matches!(&entry.command, Command::Get { keys, .. } if keys.first().is_some_and(|k| k.options.peek))
}

/// The queue a waiting request reads.
fn queue_of(entry: &Entry) -> Vec<u8> {
    match &entry.command {
        Command::Get { keys, .. } => keys.first().map(|k| k.queue().to_vec()).unwrap_or_default(),
        _ => Vec::new(),
    }
}
