//! Open messages: which connection holds which message (`get <q>/open`),
//! until it closes it, gives it back, leaves, or its lease runs out. Kept
//! in memory only: an open message is still an ordinary record of its
//! queue, so after a restart it is simply free again (delivered at least
//! once, never lost).
//!
//! Two layers: [`Leases`], what committed transactions left, and
//! [`LeaseChanges`], what the transaction being run changed on top of
//! them. Every read of a turn asks the changes first, so each command sees
//! the leases exactly as the commands before it (of any connection) left
//! them; the changes reach `Leases` only when the transaction commits, and
//! are dropped with it when it aborts or is retried.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use crate::log_limit::invariant;

/// One open message.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// The connection that holds it.
    holder: u64,
    /// When it is given back if not closed (`--lease-timeout`).
    expires: Option<Instant>,
}

/// The open records of one queue as runs of consecutive record numbers,
/// so that a reader steps over a whole run at once instead of record by
/// record (`Database::first_not_open`).
#[derive(Default, Debug)]
struct OpenRuns {
    /// First record of each run, to its last.
    runs: BTreeMap<u32, u32>,
}

impl OpenRuns {
    /// The run holding `recno`: its first and last record.
    fn run_of(&self, recno: u32) -> Option<(u32, u32)> {
        let (&first, &last) = self.runs.range(..=recno).next_back()?;
        (recno <= last).then_some((first, last))
    }

    /// The last record of the run holding `recno`.
    fn last_of_run(&self, recno: u32) -> Option<u32> {
        self.run_of(recno).map(|(_, last)| last)
    }

    /// Adds `recno` (not in a run), joining the runs beside it.
    fn insert(&mut self, recno: u32) {
        let before = recno
            .checked_sub(1)
            .and_then(|r| self.run_of(r))
            .map(|(first, _)| first);
        let after = recno.checked_add(1).and_then(|r| self.runs.remove(&r));
        let first = before.unwrap_or(recno);
        self.runs.insert(first, after.unwrap_or(recno));
    }

    /// Takes `recno` out of its run, splitting it.
    fn remove(&mut self, recno: u32) {
        let Some((first, last)) = self.run_of(recno) else {
            return;
        };
        self.runs.remove(&first);
        if first < recno {
            self.runs.insert(first, recno - 1);
        }
        if recno < last {
            self.runs.insert(recno + 1, last);
        }
    }
}

/// The open messages of one queue.
#[derive(Default)]
struct QueueLeases {
    /// By record number.
    records: BTreeMap<u32, Lease>,
    /// The same record numbers, as runs.
    runs: OpenRuns,
}

/// Every open message of the server.
#[derive(Default)]
pub struct Leases {
    /// Open messages by queue.
    by_queue: HashMap<Vec<u8>, QueueLeases>,
    /// What each connection holds: queue and record number (one per queue).
    by_holder: HashMap<u64, HashMap<Vec<u8>, u32>>,
    /// Lease expiry times with their queue and record, earliest first.
    expiries: BTreeSet<(Instant, Vec<u8>, u32)>,
}

impl Leases {
    /// The record `holder` has open on `queue`.
    pub fn held_by(&self, holder: u64, queue: &[u8]) -> Option<u32> {
        self.by_holder.get(&holder)?.get(queue).copied()
    }

    /// Whether record `recno` of `queue` is open.
    pub fn is_open(&self, queue: &[u8], recno: u32) -> bool {
        self.by_queue
            .get(queue)
            .is_some_and(|open| open.records.contains_key(&recno))
    }

    /// If record `recno` of `queue` is open: the last record of the run of
    /// consecutive open records it is in.
    pub fn last_open_from(&self, queue: &[u8], recno: u32) -> Option<u32> {
        self.by_queue.get(queue)?.runs.last_of_run(recno)
    }

    /// How many messages of `queue` are open.
    pub fn open_count(&self, queue: &[u8]) -> usize {
        self.by_queue
            .get(queue)
            .map_or(0, |open| open.records.len())
    }

    /// Opens record `recno` of `queue` for `holder`, which must hold no
    /// other message of `queue`, on a record nobody holds.
    fn grant(&mut self, queue: &[u8], recno: u32, holder: u64, expires: Option<Instant>) {
        let lease = Lease { holder, expires };
        let open = self.by_queue.entry(queue.to_vec()).or_default();
        let before = open.records.insert(recno, lease);
        invariant!(
            before.is_none(),
            "record {recno} of {:?} leased twice",
            String::from_utf8_lossy(queue)
        );
        if before.is_none() {
            open.runs.insert(recno);
        }
        let before = self
            .by_holder
            .entry(holder)
            .or_default()
            .insert(queue.to_vec(), recno);
        invariant!(
            before.is_none(),
            "connection {holder} given a second open message of {:?}",
            String::from_utf8_lossy(queue)
        );
        if let Some(at) = expires {
            self.expiries.insert((at, queue.to_vec(), recno));
        }
    }

    /// The connection that holds record `recno` of `queue`.
    fn holder_of(&self, queue: &[u8], recno: u32) -> Option<u64> {
        Some(self.by_queue.get(queue)?.records.get(&recno)?.holder)
    }

    /// Ends the lease on record `recno` of `queue`, if any.
    pub fn release(&mut self, queue: &[u8], recno: u32) {
        let Some(open) = self.by_queue.get_mut(queue) else {
            return;
        };
        let Some(lease) = open.records.remove(&recno) else {
            return;
        };
        open.runs.remove(recno);
        if open.records.is_empty() {
            self.by_queue.remove(queue);
        }
        if let Some(held) = self.by_holder.get_mut(&lease.holder) {
            if held.get(queue) == Some(&recno) {
                held.remove(queue);
            }
            if held.is_empty() {
                self.by_holder.remove(&lease.holder);
            }
        }
        if let Some(at) = lease.expires {
            self.expiries.remove(&(at, queue.to_vec(), recno));
        }
    }

    /// Ends every lease of `holder` (its connection is gone); returns the
    /// queues that got a message back.
    pub fn release_holder(&mut self, holder: u64) -> Vec<Vec<u8>> {
        let held: Vec<(Vec<u8>, u32)> = self
            .by_holder
            .get(&holder)
            .map(|h| h.iter().map(|(q, &r)| (q.clone(), r)).collect())
            .unwrap_or_default();
        for (queue, recno) in &held {
            self.release(queue, *recno);
        }
        held.into_iter().map(|(queue, _)| queue).collect()
    }

    /// Ends every lease on `queue` (its messages are gone).
    pub fn release_queue(&mut self, queue: &[u8]) {
        let open: Vec<u32> = self
            .by_queue
            .get(queue)
            .map(|o| o.records.keys().copied().collect())
            .unwrap_or_default();
        for recno in open {
            self.release(queue, recno);
        }
    }

    /// Ends the leases that ran out by `now`; returns their queues.
    pub fn expire(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut queues = Vec::new();
        while self.expiries.first().is_some_and(|(at, _, _)| *at <= now) {
            let Some((_, queue, recno)) = self.expiries.pop_first() else {
                break;
            };
            // An entry whose lease already ended is only dropped.
            if self.is_open(&queue, recno) {
                self.release(&queue, recno);
                queues.push(queue);
            }
        }
        queues
    }

    /// When the next lease runs out.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _, _)| *at)
    }
}

/// The lease changes of one transaction attempt, over the committed
/// [`Leases`]: the latest state of each record and holder it touched.
#[derive(Default)]
pub struct LeaseChanges {
    /// Per queue and record: `Some(holder)` opened in this attempt, `None`
    /// ended in it (closed, given back, taken).
    records: HashMap<Vec<u8>, BTreeMap<u32, Option<u64>>>,
    /// Per holder and queue: the record it holds after this attempt
    /// (`None`: nothing), for every holder whose lease changed.
    holders: HashMap<u64, HashMap<Vec<u8>, Option<u32>>>,
}

impl LeaseChanges {
    /// Whether record `recno` of `queue` is open, as of this attempt.
    pub fn is_open(&self, committed: &Leases, queue: &[u8], recno: u32) -> bool {
        match self.records.get(queue).and_then(|r| r.get(&recno)) {
            Some(state) => state.is_some(),
            None => committed.is_open(queue, recno),
        }
    }

    /// If record `recno` of `queue` is open as of this attempt: the last
    /// record of the run of consecutive open records it starts. Each step
    /// jumps a committed run, cut where this attempt ended a lease; the
    /// steps are bounded by the records this attempt touched.
    pub fn last_open_from(&self, committed: &Leases, queue: &[u8], recno: u32) -> Option<u32> {
        let changes = self.records.get(queue);
        let changed = |r: u32| changes.and_then(|c| c.get(&r)).copied();
        let open_from = |r: u32| match changed(r) {
            Some(Some(_)) => Some(r),
            Some(None) => None,
            None => committed.last_open_from(queue, r),
        };
        let mut last = open_from(recno)?;
        loop {
            // The first lease this attempt ended inside the run cuts it.
            if let Some(changes) = changes {
                let ended = changes
                    .range(recno..=last)
                    .find(|(_, state)| state.is_none());
                if let Some((&ended, _)) = ended {
                    return Some(ended - 1);
                }
            }
            match last.checked_add(1).and_then(open_from) {
                Some(further) => last = further,
                None => return Some(last),
            }
        }
    }

    /// The record `holder` has open on `queue`, as of this attempt.
    pub fn held_by(&self, committed: &Leases, holder: u64, queue: &[u8]) -> Option<u32> {
        match self.holders.get(&holder).and_then(|h| h.get(queue)) {
            Some(state) => *state,
            None => committed.held_by(holder, queue),
        }
    }

    /// Whether any message of `queue` may be open, as of this attempt
    /// (true also when every committed one was ended in it: then readers
    /// only step over records instead of taking the head blindly).
    pub fn any_open(&self, committed: &Leases, queue: &[u8]) -> bool {
        committed.open_count(queue) > 0
            || self
                .records
                .get(queue)
                .is_some_and(|r| r.values().any(Option::is_some))
    }

    /// Opens record `recno` of `queue` for `holder`.
    pub fn grant(&mut self, committed: &Leases, queue: &[u8], recno: u32, holder: u64) {
        invariant!(
            !self.is_open(committed, queue, recno),
            "record {recno} of {:?} opened while open",
            String::from_utf8_lossy(queue)
        );
        self.set(queue, recno, Some(holder));
        self.holders
            .entry(holder)
            .or_default()
            .insert(queue.to_vec(), Some(recno));
    }

    /// Ends the lease on record `recno` of `queue`, if it is open.
    pub fn release(&mut self, committed: &Leases, queue: &[u8], recno: u32) {
        let holder = match self.records.get(queue).and_then(|r| r.get(&recno)) {
            Some(state) => *state,
            None => committed.holder_of(queue, recno),
        };
        let Some(holder) = holder else {
            return;
        };
        self.set(queue, recno, None);
        self.holders
            .entry(holder)
            .or_default()
            .insert(queue.to_vec(), None);
    }

    fn set(&mut self, queue: &[u8], recno: u32, state: Option<u64>) {
        if !self.records.contains_key(queue) {
            self.records.insert(queue.to_vec(), BTreeMap::new());
        }
        if let Some(records) = self.records.get_mut(queue) {
            records.insert(recno, state);
        }
    }

    /// Makes the changes of a committed attempt take effect: every lease
    /// on a record it touched ends, then the ones it opened start (and run
    /// out at `expires`).
    pub fn commit(self, leases: &mut Leases, expires: Option<Instant>) {
        for (queue, records) in &self.records {
            for &recno in records.keys() {
                leases.release(queue, recno);
            }
        }
        for (queue, records) in &self.records {
            for (&recno, state) in records {
                if let Some(holder) = *state {
                    leases.grant(queue, recno, holder, expires);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grant_release_and_holders() {
        let mut l = Leases::default();
        l.grant(b"q", 7, 1, None);
        l.grant(b"r", 3, 1, None);
        l.grant(b"q", 8, 2, None);
        assert_eq!(l.held_by(1, b"q"), Some(7));
        assert!(l.is_open(b"q", 8) && !l.is_open(b"q", 9));
        assert_eq!(l.open_count(b"q"), 2);
        l.release(b"q", 7);
        assert_eq!(l.held_by(1, b"q"), None);
        let mut back = l.release_holder(1);
        back.sort();
        assert_eq!(back, vec![b"r".to_vec()]);
        assert_eq!(l.open_count(b"r"), 0);
    }

    #[test]
    fn leases_run_out_in_time_order() {
        let mut l = Leases::default();
        let now = Instant::now();
        l.grant(b"q", 1, 1, Some(now + Duration::from_secs(2)));
        l.grant(b"q", 2, 2, Some(now + Duration::from_secs(1)));
        assert_eq!(l.next_expiry(), Some(now + Duration::from_secs(1)));
        assert_eq!(
            l.expire(now + Duration::from_millis(1500)),
            vec![b"q".to_vec()]
        );
        assert!(l.is_open(b"q", 1) && !l.is_open(b"q", 2));
        l.release(b"q", 1);
        assert_eq!(l.next_expiry(), None);
    }

    #[test]
    fn changes_are_seen_in_order_and_committed_as_last_seen() {
        let mut l = Leases::default();
        l.grant(b"q", 5, 1, None);
        let mut c = LeaseChanges::default();
        // Holder 1 gives record 5 back and opens 3; holder 2 opens 5.
        c.release(&l, b"q", 5);
        assert!(!c.is_open(&l, b"q", 5) && c.held_by(&l, 1, b"q").is_none());
        c.grant(&l, b"q", 3, 1);
        c.grant(&l, b"q", 5, 2);
        // Holder 1 closes 3 in the same attempt: nothing is left of it.
        c.release(&l, b"q", 3);
        assert_eq!(c.held_by(&l, 1, b"q"), None);
        assert_eq!(c.held_by(&l, 2, b"q"), Some(5));
        assert!(l.is_open(b"q", 5) && l.held_by(1, b"q") == Some(5));
        c.commit(&mut l, None);
        assert_eq!(l.held_by(1, b"q"), None);
        assert_eq!(l.held_by(2, b"q"), Some(5));
        assert_eq!(l.open_count(b"q"), 1);
        assert!(l.release_holder(1).is_empty());
    }

    #[test]
    fn open_records_form_runs_that_join_and_split() {
        let mut runs = OpenRuns::default();
        for r in [5, 7, 6, 1, 9] {
            runs.insert(r);
        }
        assert_eq!(runs.last_of_run(5), Some(7));
        assert_eq!(runs.last_of_run(6), Some(7));
        assert_eq!((runs.last_of_run(8), runs.last_of_run(9)), (None, Some(9)));
        runs.remove(6);
        assert_eq!(
            (runs.last_of_run(5), runs.last_of_run(7)),
            (Some(5), Some(7))
        );
        runs.insert(8);
        assert_eq!(runs.last_of_run(7), Some(9));
        runs.insert(u32::MAX);
        runs.insert(0);
        assert_eq!(
            (runs.last_of_run(0), runs.last_of_run(u32::MAX)),
            (Some(1), Some(u32::MAX))
        );
        for r in [0, 1, 5, 7, 8, 9, u32::MAX] {
            runs.remove(r);
        }
        assert!(runs.runs.is_empty());
    }

    #[test]
    fn a_run_seen_by_an_attempt_includes_its_grants_and_stops_at_its_releases() {
        let mut l = Leases::default();
        for (recno, holder) in [(1, 1), (2, 2), (3, 3), (5, 5), (6, 6)] {
            l.grant(b"q", recno, holder, None);
        }
        let mut c = LeaseChanges::default();
        assert_eq!(c.last_open_from(&l, b"q", 1), Some(3));
        assert_eq!(c.last_open_from(&l, b"q", 4), None);
        // Opening 4 joins the runs; giving 6 back and closing 2 cut them.
        c.grant(&l, b"q", 4, 4);
        assert_eq!(c.last_open_from(&l, b"q", 1), Some(6));
        c.release(&l, b"q", 6);
        assert_eq!(c.last_open_from(&l, b"q", 3), Some(5));
        c.release(&l, b"q", 2);
        assert_eq!(c.last_open_from(&l, b"q", 1), Some(1));
        assert_eq!(c.last_open_from(&l, b"q", 2), None);
        assert_eq!(c.last_open_from(&l, b"r", 1), None);
        c.commit(&mut l, None);
        assert_eq!(l.last_open_from(b"q", 3), Some(5));
        assert_eq!(l.last_open_from(b"q", 1), Some(1));
    }

    #[test]
    fn a_stale_expiry_entry_is_dropped_not_spun_on() {
        let mut l = Leases::default();
        let now = Instant::now();
        l.grant(b"q", 1, 1, Some(now));
        l.by_queue.clear();
        l.by_holder.clear();
        assert!(l.expire(now + Duration::from_secs(1)).is_empty());
        assert_eq!(l.next_expiry(), None);
    }
}
