//! # Implementation notes
//!
//! A sliding window of the last `N` latencies, kept as a histogram on a log-linear scale
//! (HdrHistogram's layout with 3 significant bits): 16 linear buckets of 1 µs, then 8
//! buckets per power of two up to 2³² µs (≈ 71 min; longer latencies share the last
//! bucket). A ring of `N` bucket indices remembers which bucket each sample went to, so the
//! oldest sample leaves the histogram when a new one arrives. Insertion is O(1), a quantile
//! a walk over 240 counters; no floating point, no allocation, the same answers for the same
//! samples on every target. A quantile is reported as the upper edge of its bucket, so it is
//! never below the true sample quantile and at most 12.5 % above it.

/// Number of histogram buckets.
const BUCKETS: usize = 240;
/// Linear buckets below 16 µs.
const LINEAR: u64 = 16;

/// The bucket of a latency in microseconds.
fn bucket(us: u64) -> u8 {
    if us < LINEAR {
        return us as u8;
    }
    // p ≥ 4: the position of the top bit.
    let p = 63 - us.leading_zeros() as u64;
    if p >= 32 {
        return (BUCKETS - 1) as u8;
    }
    let sub = (us >> (p - 3)) & 7;
    (LINEAR + (p - 4) * 8 + sub) as u8
}

/// The exclusive upper edge of a bucket, in microseconds.
fn upper_edge(index: usize) -> u64 {
    if (index as u64) < LINEAR {
        return index as u64 + 1;
    }
    let i = index as u64 - LINEAR;
    let p = i / 8 + 4;
    let sub = i % 8;
    // Bucket [ (8 + sub) << (p - 3), (9 + sub) << (p - 3) ).
    (9 + sub) << (p - 3)
}

/// The last `N` latencies as a histogram (see the implementation notes above).
#[derive(Clone)]
pub(crate) struct Window<const N: usize> {
    counts: [u16; BUCKETS],
    ring: [u8; N],
    len: usize,
    next: usize,
}

impl<const N: usize> Window<N> {
    pub(crate) const fn new() -> Self {
        Self {
            counts: [0; BUCKETS],
            ring: [0; N],
            len: 0,
            next: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn record(&mut self, latency: core::time::Duration) {
        if N == 0 {
            return;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let b = bucket(us);
        if self.len == N {
            let old = self.ring[self.next] as usize;
            self.counts[old] -= 1;
        } else {
            self.len += 1;
        }
        self.ring[self.next] = b;
        self.counts[b as usize] += 1;
        self.next = (self.next + 1) % N;
    }

    /// The `ppm / 10⁶` quantile (rank `⌈q·len⌉`, at least 1), as its bucket's upper edge;
    /// `None` while empty.
    pub(crate) fn quantile(&self, ppm: u32) -> Option<core::time::Duration> {
        if self.len == 0 {
            return None;
        }
        let rank = (self.len as u64 * u64::from(ppm))
            .div_ceil(1_000_000)
            .max(1);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                return Some(core::time::Duration::from_micros(upper_edge(index)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut last = 0;
        for us in 0..200_000u64 {
            let b = bucket(us) as usize;
            assert!(b >= last && b <= last + 1, "us {us}");
            last = b;
            assert!(us < upper_edge(b), "us {us} below its edge");
            if us >= LINEAR {
                // Relative error of the edge at most 1/8.
                assert!(upper_edge(b) * 8 <= (us + 1) * 9 + 8, "us {us}");
            }
        }
        assert_eq!(bucket(u64::MAX) as usize, BUCKETS - 1);
        assert_eq!(bucket((1 << 32) - 1) as usize, BUCKETS - 1);
    }

    #[test]
    fn quantile_of_a_sliding_window() {
        let mut w = Window::<100>::new();
        assert_eq!(w.quantile(950_000), None);
        for i in 1..=100u64 {
            w.record(Duration::from_micros(i * 100));
        }
        // p95 of 100..=10000 µs is 9500 µs: its bucket [9216, 10240).
        assert_eq!(w.quantile(950_000), Some(Duration::from_micros(10_240)));
        assert_eq!(w.quantile(1), Some(Duration::from_micros(104)));
        // Slide: 100 new samples of 1 ms replace all the old ones.
        for _ in 0..100 {
            w.record(Duration::from_millis(1));
        }
        assert_eq!(w.len(), 100);
        assert_eq!(w.quantile(1_000_000), Some(Duration::from_micros(1024)));
        assert_eq!(w.counts.iter().map(|&c| u32::from(c)).sum::<u32>(), 100);
    }

    proptest::proptest! {
        /// Against a sorted copy of the last N samples: the reported quantile is never below
        /// the true one and at most 12.5 % (+1 µs) above it.
        #[test]
        fn quantile_bounds_the_true_one(
            samples in proptest::collection::vec(0u64..5_000_000, 1..300),
            ppm in 1u32..=1_000_000,
        ) {
            let mut w = Window::<64>::new();
            for &us in &samples {
                w.record(Duration::from_micros(us));
            }
            let mut last: alloc::vec::Vec<u64> =
                samples[samples.len().saturating_sub(64)..].to_vec();
            last.sort_unstable();
            let rank = (last.len() as u64 * u64::from(ppm)).div_ceil(1_000_000).max(1);
            let truth = last[rank as usize - 1];
            let got = w.quantile(ppm).unwrap().as_micros() as u64;
            proptest::prop_assert!(got > truth, "{got} <= {truth}");
            proptest::prop_assert!(got * 8 <= truth * 9 + 9, "{got} vs {truth}");
        }
    }
}
