//! A log-linear latency histogram with a fixed relative error.
//!
//! Values below 128 get a bucket each; every power of two above that is cut
//! into 64 equal buckets, so a bucket is never wider than 1/64 of its lower
//! bound (about 1.6 %). The whole `u64` range fits in a few thousand
//! counters, recording is a couple of shifts, and per-thread histograms merge
//! by adding counters.

/// log2 of the number of buckets per power of two.
const SUB_BITS: u32 = 6;
/// Values below this are counted exactly, one bucket per value.
const LINEAR_LIMIT: u64 = 1 << (SUB_BITS + 1);
/// Enough buckets for `u64::MAX`.
const BUCKETS: usize = bucket_of(u64::MAX) + 1;

/// The index of the bucket that counts `value`.
const fn bucket_of(value: u64) -> usize {
    if value < LINEAR_LIMIT {
        return value as usize;
    }
    let top_bit = 63 - value.leading_zeros();
    let shift = top_bit - SUB_BITS;
    // `value >> shift` keeps the top SUB_BITS + 1 bits: 64..=127.
    ((shift as usize) << SUB_BITS) + (value >> shift) as usize
}

/// The smallest value counted by bucket `index`.
fn lowest_in(index: usize) -> u64 {
    if (index as u64) < LINEAR_LIMIT {
        return index as u64;
    }
    let shift = (index >> SUB_BITS) - 1;
    let top = (index & ((1 << SUB_BITS) - 1)) as u64 + (1 << SUB_BITS);
    top << shift
}

/// The largest value counted by bucket `index`.
fn highest_in(index: usize) -> u64 {
    if index + 1 >= BUCKETS {
        u64::MAX
    } else {
        lowest_in(index + 1) - 1
    }
}

/// Counts of recorded values (nanoseconds here, but any unit works).
pub struct Histogram {
    /// One counter per bucket, see [`bucket_of`].
    counts: Vec<u64>,
    /// How many values were recorded, so quantiles need no extra pass.
    total: u64,
    /// The exact smallest value, which a bucket bound would round.
    min: u64,
    /// The exact largest value, which a bucket bound would round.
    max: u64,
    /// The exact sum, for the mean (u128 cannot overflow in practice).
    sum: u128,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Adds every value recorded in `other` to `self`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below or at which a fraction `q` (0..=1) of the recorded
    /// values lie, rounded up to its bucket's upper bound but never beyond
    /// the largest value seen. Zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return highest_in(index).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        for index in 0..BUCKETS - 1 {
            let low = lowest_in(index);
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(highest_in(index)), index);
            assert_eq!(highest_in(index) + 1, lowest_in(index + 1));
            let width = highest_in(index) - low + 1;
            assert!(width == 1 || width <= low / 64, "bucket {index}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((500_000..=508_000).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert!((1000..=1007).contains(&h.quantile(0.0)));
        let mut other = Histogram::new();
        other.record(5_000_000);
        h.merge(&other);
        assert_eq!(h.total, 1001);
        assert_eq!(h.max(), 5_000_000);
    }
}
