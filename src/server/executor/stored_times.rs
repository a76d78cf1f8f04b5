//! When a queue's messages were stored, for `dump_stats`'s `age`, in
//! memory bounded per queue whatever the traffic: samples of (first record
//! number, time) at least `spacing` apart, dropped as the messages they
//! date are taken, and thinned (the spacing doubled) when a deep backlog
//! would need more than `MAX_SAMPLES`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Closest spacing of samples, so a busy queue costs a few a second.
const FINEST: Duration = Duration::from_millis(10);
/// Samples kept per queue at most.
const MAX_SAMPLES: usize = 256;

pub(super) struct StoredTimes {
    /// Oldest first: record numbers from `.0` on were stored at `.1` or later.
    samples: VecDeque<(u32, Instant)>,
    spacing: Duration,
}

impl Default for StoredTimes {
    fn default() -> StoredTimes {
        StoredTimes {
            samples: VecDeque::new(),
            spacing: FINEST,
        }
    }
}

impl StoredTimes {
    /// Messages from record `recno` on were stored at `now`.
    pub(super) fn stored(&mut self, recno: u32, now: Instant) {
        let due = self
            .samples
            .back()
            .is_none_or(|&(_, at)| now.duration_since(at) >= self.spacing);
        if !due {
            return;
        }
        self.samples.push_back((recno, now));
        if self.samples.len() > MAX_SAMPLES {
            // Keep every other sample (the newest among them): the age of
            // a deep backlog is then known to twice the spacing.
            let mut keep = false;
            self.samples.retain(|_| {
                keep = !keep;
                keep
            });
            self.spacing *= 2;
        }
    }

    /// Messages up to record `recno` were taken: samples that date only
    /// those are dropped.
    pub(super) fn taken_through(&mut self, recno: u32) {
        while self.samples.len() > 1 && self.samples[1].0 <= recno {
            self.samples.pop_front();
        }
        if self.samples.len() < MAX_SAMPLES / 4 && self.spacing > FINEST {
            self.spacing /= 2;
        }
    }

    /// When record `recno` was stored, as far as the samples tell (an
    /// earlier time when it falls between two).
    pub(super) fn stored_at(&self, recno: u32) -> Option<Instant> {
        let at = self.samples.partition_point(|&(first, _)| first <= recno);
        at.checked_sub(1).map(|i| self.samples[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_bounded_and_date_the_oldest_message() {
        let t0 = Instant::now();
        let mut times = StoredTimes::default();
        // A million messages, one sample's spacing apart, none taken.
        for n in 0..1_000_000u32 {
            times.stored(n + 1, t0 + FINEST * n);
        }
        assert!(times.samples.len() <= MAX_SAMPLES);
        assert_eq!(times.stored_at(1), Some(t0));
        let late = times.stored_at(999_999).expect("dated");
        assert!(
            late > t0 + FINEST * 990_000,
            "a recent message is dated recently"
        );
        // Steady set and get: the samples do not grow.
        let mut steady = StoredTimes::default();
        for n in 0..100_000u32 {
            steady.stored(n + 1, t0 + FINEST * n);
            steady.taken_through(n + 1);
        }
        assert!(steady.samples.len() <= 2, "{}", steady.samples.len());
        assert_eq!(steady.stored_at(100_000), Some(t0 + FINEST * 99_999));
    }
}
