//! The two failure windows: the last N calls, or the calls of the last B time buckets.

use core::fmt;
use core::time::Duration;

use crate::error::{ConfigError, ConfigValue};

mod sealed {
    pub trait Sealed {}
}

/// Where a [`Breaker`](super::Breaker) counts calls and failures: [`CountWindow`] (the
/// last `N` calls) or [`TimeWindow`] (the calls of the last `B` time buckets). Sealed.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::breaker::{Breaker, CountWindow, TimeWindow};
///
/// let by_count = Breaker::new(CountWindow::<20>::new());
/// let by_time = Breaker::new(TimeWindow::<10>::new(Duration::from_secs(1))?);
/// # let _ = (by_count, by_time);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub trait Window: sealed::Sealed + Clone + fmt::Debug {
    /// Records one call at `now`, failed or not.
    #[doc(hidden)]
    fn record(&mut self, now: Duration, failure: bool);
    /// `(calls, failures)` in the window at `now`.
    #[doc(hidden)]
    fn counts(&self, now: Duration) -> (u32, u32);
    /// Forgets every call.
    #[doc(hidden)]
    fn clear(&mut self);
}

/// The last `N` calls, in a ring of `N` bits: no allocation, O(1) per call.
///
/// # Examples
///
/// ```
/// use dike::breaker::{Breaker, CountWindow};
///
/// let breaker = Breaker::new(CountWindow::<100>::new());
/// assert_eq!(breaker.stats().calls, 0);
/// ```
#[derive(Clone)]
pub struct CountWindow<const N: usize> {
    // One flag per slot: failed or not. `len` slots are in use, `next` is the oldest once full.
    failed: [bool; N],
    next: usize,
    len: u32,
    failures: u32,
}

impl<const N: usize> CountWindow<N> {
    /// An empty window of the last `N` calls. `N` must be at least 1 (checked at compile
    /// time).
    ///
    /// # Examples
    ///
    /// ```
    /// let window = dike::breaker::CountWindow::<20>::new();
    /// # let _ = window;
    /// ```
    pub const fn new() -> Self {
        const {
            assert!(
                N > 0 && N <= u32::MAX as usize,
                "CountWindow needs 1 ≤ N ≤ u32::MAX"
            )
        };
        Self {
            failed: [false; N],
            next: 0,
            len: 0,
            failures: 0,
        }
    }
}

impl<const N: usize> Default for CountWindow<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for CountWindow<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountWindow")
            .field("size", &N)
            .field("calls", &self.len)
            .field("failures", &self.failures)
            .finish()
    }
}

impl<const N: usize> sealed::Sealed for CountWindow<N> {}

impl<const N: usize> Window for CountWindow<N> {
    fn record(&mut self, _now: Duration, failure: bool) {
        if self.len as usize == N {
            // Full: the oldest call leaves.
            if self.failed[self.next] {
                self.failures -= 1;
            }
        } else {
            self.len += 1;
        }
        self.failed[self.next] = failure;
        if failure {
            self.failures += 1;
        }
        self.next = (self.next + 1) % N;
    }

    fn counts(&self, _now: Duration) -> (u32, u32) {
        (self.len, self.failures)
    }

    fn clear(&mut self) {
        *self = Self::new();
    }
}

/// The calls of the last `B` buckets of `bucket` each, on the breaker's timer: the current
/// bucket (still filling) and the `B - 1` before it. A call at exactly `k·bucket` falls in
/// bucket `k`, so a bucket's calls leave the window at once when bucket `k + B` begins.
/// No allocation.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::breaker::TimeWindow;
///
/// // About the last 10 s, in 1 s steps.
/// let window = TimeWindow::<10>::new(Duration::from_secs(1))?;
/// assert_eq!(window.span(), Duration::from_secs(10));
/// assert!(TimeWindow::<10>::new(Duration::ZERO).is_err());
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct TimeWindow<const B: usize> {
    bucket: Duration,
    // Per slot: the bucket number it holds, its calls and failures.
    slots: [(u64, u32, u32); B],
}

impl<const B: usize> TimeWindow<B> {
    /// An empty window of `B` buckets of `bucket` each. `B` must be at least 1 (checked at
    /// compile time).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `bucket` when it is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// let window = dike::breaker::TimeWindow::<6>::new(Duration::from_millis(500))?;
    /// # let _ = window;
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn new(bucket: Duration) -> Result<Self, ConfigError> {
        const { assert!(B > 0, "TimeWindow needs at least one bucket") };
        if bucket.is_zero() {
            return Err(ConfigError::new(
                "bucket",
                ConfigValue::Duration(bucket),
                "more than zero",
            ));
        }
        Ok(Self {
            bucket,
            slots: [(u64::MAX, 0, 0); B],
        })
    }

    /// How long the window reaches back at most: `B × bucket`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// let window = dike::breaker::TimeWindow::<4>::new(Duration::from_secs(2))?;
    /// assert_eq!(window.span(), Duration::from_secs(8));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn span(&self) -> Duration {
        self.bucket.saturating_mul(B as u32)
    }

    fn index(&self, now: Duration) -> u64 {
        let n = now.as_nanos() / self.bucket.as_nanos();
        u64::try_from(n).unwrap_or(u64::MAX - 1)
    }
}

impl<const B: usize> fmt::Debug for TimeWindow<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindow")
            .field("buckets", &B)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl<const B: usize> sealed::Sealed for TimeWindow<B> {}

impl<const B: usize> Window for TimeWindow<B> {
    fn record(&mut self, now: Duration, failure: bool) {
        let index = self.index(now);
        let slot = &mut self.slots[(index % B as u64) as usize];
        if slot.0 != index {
            *slot = (index, 0, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        if failure {
            slot.2 = slot.2.saturating_add(1);
        }
    }

    fn counts(&self, now: Duration) -> (u32, u32) {
        let index = self.index(now);
        let oldest = index.saturating_sub(B as u64 - 1);
        self.slots
            .iter()
            .filter(|slot| slot.0 != u64::MAX && slot.0 >= oldest && slot.0 <= index)
            .fold((0u32, 0u32), |(calls, failures), slot| {
                (
                    calls.saturating_add(slot.1),
                    failures.saturating_add(slot.2),
                )
            })
    }

    fn clear(&mut self) {
        self.slots = [(u64::MAX, 0, 0); B];
    }
}
