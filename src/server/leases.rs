//! Open messages: which connection holds which message (`get <q>/open`),
//! until it closes it, gives it back, leaves, or its lease runs out. Kept
//! in memory only: an open message is still an ordinary record of its
//! queue, so after a restart it is simply free again (delivered at least
//! once, never lost).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// One open message.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// The connection that holds it.
    holder: u64,
    /// When it is given back if not closed (`--lease-timeout`).
    expires: Option<Instant>,
}

/// Every open message of the server.
#[derive(Default)]
pub struct Leases {
    /// Open messages by queue, then record number.
    by_queue: HashMap<Vec<u8>, BTreeMap<u32, Lease>>,
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
            .is_some_and(|open| open.contains_key(&recno))
    }

    /// How many messages of `queue` are open.
    pub fn open_count(&self, queue: &[u8]) -> usize {
        self.by_queue.get(queue).map_or(0, BTreeMap::len)
    }

    /// Opens record `recno` of `queue` for `holder`.
    pub fn grant(&mut self, queue: &[u8], recno: u32, holder: u64, expires: Option<Instant>) {
        let lease = Lease { holder, expires };
        self.by_queue
            .entry(queue.to_vec())
            .or_default()
            .insert(recno, lease);
        self.by_holder
            .entry(holder)
            .or_default()
            .insert(queue.to_vec(), recno);
        if let Some(at) = expires {
            self.expiries.insert((at, queue.to_vec(), recno));
        }
    }

    /// Ends the lease on record `recno` of `queue`, if any.
    pub fn release(&mut self, queue: &[u8], recno: u32) {
        let Some(open) = self.by_queue.get_mut(queue) else {
            return;
        };
        let Some(lease) = open.remove(&recno) else {
            return;
        };
        if open.is_empty() {
            self.by_queue.remove(queue);
        }
        if let Some(held) = self.by_holder.get_mut(&lease.holder) {
            held.remove(queue);
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
            .map(|o| o.keys().copied().collect())
            .unwrap_or_default();
        for recno in open {
            self.release(queue, recno);
        }
    }

    /// Ends the leases that ran out by `now`; returns their queues.
    pub fn expire(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut queues = Vec::new();
        while let Some((at, queue, recno)) = self.expiries.first() {
            if *at > now {
                break;
            }
            let (queue, recno) = (queue.clone(), *recno);
            self.release(&queue, recno);
            queues.push(queue);
        }
        queues
    }

    /// When the next lease runs out.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _, _)| *at)
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
}
