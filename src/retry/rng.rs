//! A tiny seedable random number generator for jitter: SplitMix64.
//!
//! # Implementation notes
//!
//! SplitMix64 (Steele, Lea, Flood 2014; the seeder of xoshiro) is one `u64` of state, an add
//! and three xor-shift-multiplies per output: no_std, no allocation, no dependency, and good
//! enough statistics for spreading retries. It is not cryptographic and need not be.
//!
//! Without an explicit seed, each schedule draws a fresh one from [`entropy_seed`]: a
//! process-wide counter mixed, with `std`, with the per-process random keys of
//! `std::collections::hash_map::RandomState`. Without `std` there is no entropy source in
//! `core`; the counter and a stack address only separate the schedules of one device, so
//! devices that must not retry in step should seed from a hardware source.

/// SplitMix64: a 64-bit state, one output per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// A uniform integer in `lo..=hi` (`lo` when `hi <= lo`).
    ///
    /// Lemire's multiply-shift: the bias is below `(hi - lo + 1) / 2^64`, far under anything a
    /// backoff could notice, and no division.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = u128::from(hi - lo) + 1;
        let scaled = (u128::from(self.next_u64()) * span) >> 64;
        // scaled < span <= u64::MAX + 1, and lo + scaled <= hi.
        lo + scaled as u64
    }
}

const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for a schedule built without one: differs per call within a process, and with `std`
/// across processes.
pub(crate) fn entropy_seed() -> u64 {
    let local = 0u8;
    let seed = mix(next_count().wrapping_mul(GOLDEN_GAMMA)) ^ mix((&raw const local).addr() as u64);
    #[cfg(feature = "std")]
    {
        use core::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(seed);
        hasher.finish()
    }
    #[cfg(not(feature = "std"))]
    seed
}

#[cfg(not(loom))]
fn next_count() -> u64 {
    use crate::sync::atomic::{AtomicU32, Ordering};
    // 32-bit: thumbv7em has no 64-bit atomics. Wrapping is harmless, it only decorrelates.
    static COUNT: AtomicU32 = AtomicU32::new(0);
    u64::from(COUNT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(loom)]
fn next_count() -> u64 {
    // loom atomics cannot live in a static; the stack address still varies.
    0
}
