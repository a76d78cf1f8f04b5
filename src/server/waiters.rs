//! Blocking reads (`get <q>/t=<ms>`) waiting for a message, kept by the
//! reactor: no thread per waiter, one timer set for all of them. Waiters
//! of a queue are served in arrival order; one that runs again and still
//! finds nothing goes back to its place.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::executor::{Entry, Parked};
use crate::protocol::Command;

/// How long a request may wait: its key's `/t=`, if any.
pub fn wait_of(command: &Command) -> Option<Duration> {
    match command {
        Command::Get { keys, .. } => keys.first().and_then(|k| k.options.wait),
        _ => None,
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

/// Every waiting request.
#[derive(Default)]
pub struct Waiters {
    /// By queue, in arrival order.
    by_queue: HashMap<Vec<u8>, VecDeque<Entry>>,
    /// (deadline, arrival number, queue), earliest first.
    deadlines: BTreeSet<(Instant, u64, Vec<u8>)>,
    /// Arrival number of the next new waiter.
    next_seq: u64,
}

impl Waiters {
    /// The place of a request that found nothing: the one it had if it
    /// waited before, else a new one whose time runs from its arrival
    /// (or `now`).
    pub fn place(&mut self, entry: &Entry, now: Instant) -> Parked {
        entry.parked.unwrap_or_else(|| {
            self.next_seq += 1;
            Parked {
                seq: self.next_seq,
                deadline: entry.arrived.unwrap_or(now)
                    + wait_of(&entry.command).unwrap_or_default(),
            }
        })
    }

    /// Adds a waiting request (its `parked` set) at its place.
    pub fn insert(&mut self, entry: Entry) {
        let Some(parked) = entry.parked else {
            return;
        };
        let queue = queue_of(&entry);
        self.deadlines
            .insert((parked.deadline, parked.seq, queue.clone()));
        let waiting = self.by_queue.entry(queue).or_default();
        let at = waiting.partition_point(|e| e.parked.is_some_and(|p| p.seq < parked.seq));
        waiting.insert(at, entry);
    }

    /// `queue`'s waiters, oldest first, to run again for `n` new messages:
    /// `n` of them that take or open one, and every peeking one before
    /// those (a peek leaves the message for the next).
    pub fn take(&mut self, queue: &[u8], n: usize) -> Vec<Entry> {
        let Some(waiting) = self.by_queue.get_mut(queue) else {
            return Vec::new();
        };
        let mut count = 0;
        let mut left = n;
        for entry in waiting.iter() {
            if left == 0 {
                break;
            }
            count += 1;
            if !peeks(entry) {
                left -= 1;
            }
        }
        let taken: Vec<Entry> = waiting.drain(..count).collect();
        if waiting.is_empty() {
            self.by_queue.remove(queue);
        }
        for entry in &taken {
            self.forget_deadline(entry, queue);
        }
        taken
    }

    /// The waiter with arrival number `seq` on `queue`, taken out.
    pub fn remove(&mut self, queue: &[u8], seq: u64) -> Option<Entry> {
        let waiting = self.by_queue.get_mut(queue)?;
        let at = waiting
            .iter()
            .position(|e| e.parked.is_some_and(|p| p.seq == seq))?;
        let entry = waiting.remove(at)?;
        if waiting.is_empty() {
            self.by_queue.remove(queue);
        }
        self.forget_deadline(&entry, queue);
        Some(entry)
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

    /// Every waiter, taken out (the server is stopping).
    pub fn take_all(&mut self) -> Vec<Entry> {
        self.deadlines.clear();
        let mut all: Vec<Entry> = self.by_queue.drain().flat_map(|(_, w)| w).collect();
        all.sort_by_key(|e| e.parked.map(|p| p.seq));
        all
    }

    /// When the next waiter's time is up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _, _)| *at)
    }

    fn forget_deadline(&mut self, entry: &Entry, queue: &[u8]) {
        if let Some(p) = entry.parked {
            self.deadlines.remove(&(p.deadline, p.seq, queue.to_vec()));
        }
    }
}
