//! Jitter kinds: how a nominal delay is randomised.

use core::time::Duration;

use super::rng::SplitMix64;

/// How a [`Backoff`](super::Backoff) randomises each delay, so that clients that failed
/// together do not retry together.
///
/// With `c` the capped nominal delay `min(d·bⁿ⁻¹, max_delay)`, `d` the initial delay and
/// `prev` the previous jittered delay (`d` before the first):
///
/// | kind | delay | range |
/// |---|---|---|
/// | [`None`](Jitter::None) | `c` | exactly `c` |
/// | [`Full`](Jitter::Full) | `uniform(0, c)` | `[0, c]` |
/// | [`Equal`](Jitter::Equal) | `c/2 + uniform(0, c/2)` | `[c/2, c]` |
/// | [`Decorrelated`](Jitter::Decorrelated) | `min(max_delay, uniform(d, 3·prev))` | `[min(d, max_delay), max_delay]` |
///
/// Full, equal and decorrelated are the three of the AWS Architecture Blog's "Exponential
/// Backoff And Jitter". Decorrelated jitter grows by its own factor of 3 from the previous
/// delay and ignores the multiplier. The cap applies before jitter, so no kind ever exceeds
/// `max_delay`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::{Backoff, Jitter};
///
/// let d = Duration::from_millis(100);
/// let backoff = Backoff::constant(d).with_jitter(Jitter::Equal).with_seed(7);
/// for delay in backoff.into_iter().take(100) {
///     assert!(delay >= d / 2 && delay <= d);
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: the nominal delay.
    #[default]
    None,
    /// Anywhere from zero to the nominal delay.
    Full,
    /// At least half the nominal delay, at most all of it.
    Equal,
    /// From the initial delay up to three times the previous delay, capped.
    Decorrelated,
}

impl Jitter {
    /// The jittered delay for nominal `capped`; `prev` is only read by `Decorrelated`.
    pub(crate) fn apply(
        self,
        rng: &mut SplitMix64,
        capped: Duration,
        initial: Duration,
        prev: Duration,
        max_delay: Duration,
    ) -> Duration {
        match self {
            Self::None => capped,
            Self::Full => from_nanos(rng.between(0, nanos(capped))),
            Self::Equal => {
                let half = nanos(capped) / 2;
                let rest = nanos(capped) - half;
                from_nanos(half + rng.between(0, rest))
            }
            Self::Decorrelated => {
                let lo = nanos(initial);
                let hi = nanos(prev).saturating_mul(3).max(lo);
                from_nanos(rng.between(lo, hi)).min(max_delay)
            }
        }
    }
}

/// Whole nanoseconds, saturating at `u64::MAX` (about 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn from_nanos(n: u64) -> Duration {
    Duration::from_nanos(n)
}
