//! Backoff schedules: plain data that turns into an iterator of delays.

use core::fmt;
use core::iter::FusedIterator;
use core::time::Duration;

use super::jitter::Jitter;
use super::rng::{SplitMix64, entropy_seed};
use crate::error::{ConfigError, ConfigValue};

/// The built-in backoff schedule: `d, d·b, d·b², …`, capped at `max_delay`, then jittered.
///
/// A `Backoff` is a `Copy` value built in `const` context; iterating it yields the delay
/// before each retry, endlessly (the number of attempts and the time budget belong to
/// [`Retry`](super::Retry)). Two iterators of a backoff with the same
/// [seed](Backoff::with_seed) yield the same delays, so tests can assert them; without a seed
/// every iterator draws a fresh one.
///
/// Any `Iterator<Item = Duration>` is a schedule too: see
/// [`Retry::with_schedule`](super::Retry::with_schedule).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::Backoff;
///
/// let ms = Duration::from_millis;
/// let backoff = Backoff::exponential(ms(10), 2.0)?.with_max_delay(ms(50));
/// let delays: Vec<_> = backoff.into_iter().take(5).collect();
/// assert_eq!(delays, [ms(10), ms(20), ms(40), ms(50), ms(50)]);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct Backoff {
    delay: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: Jitter,
    seed: Option<u64>,
}

impl Backoff {
    /// No delay at all: every retry follows the failure at once (after one yield to the
    /// executor). The default, as in Python dike.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// assert!(Backoff::none().into_iter().take(3).all(|d| d == Duration::ZERO));
    /// ```
    pub const fn none() -> Self {
        Self::constant(Duration::ZERO)
    }

    /// The same `delay` before every retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// let s = Duration::from_secs(1);
    /// assert_eq!(Backoff::constant(s).into_iter().nth(9), Some(s));
    /// ```
    pub const fn constant(delay: Duration) -> Self {
        Self {
            delay,
            multiplier: 1.0,
            max_delay: Duration::MAX,
            jitter: Jitter::None,
            seed: None,
        }
    }

    /// `first_delay` before the first retry, then each delay `multiplier` times the previous
    /// one.
    ///
    /// Growth saturates: a delay past about 584 years becomes [`Duration::MAX`], which
    /// sleeps forever. Set [`with_max_delay`](Backoff::with_max_delay) to keep delays sane.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `multiplier` unless it is finite and at least 1 (a NaN,
    /// negative, shrinking or infinite multiplier is a mistake, not a schedule), and naming
    /// `first_delay` when it is zero with a multiplier above 1: `0 × bⁿ` is 0 for every `n`,
    /// so such a schedule would never back off at all.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let delays: Vec<_> = Backoff::exponential(ms(10), 2.5)?.into_iter().take(3).collect();
    /// assert_eq!(delays, [ms(10), ms(25), Duration::from_micros(62_500)]);
    ///
    /// let err = Backoff::exponential(ms(10), f64::NAN).unwrap_err();
    /// assert_eq!(err.parameter(), "multiplier");
    /// let err = Backoff::exponential(Duration::ZERO, 2.0).unwrap_err();
    /// assert_eq!(err.parameter(), "first_delay");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn exponential(first_delay: Duration, multiplier: f64) -> Result<Self, ConfigError> {
        Self::constant(first_delay).with_multiplier(multiplier)
    }

    /// Sets the growth factor between delays, keeping the rest.
    ///
    /// There is no setter for the first delay: it comes from the constructor, so that a
    /// multiplier can never end up applied to a zero delay.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `multiplier` unless it is finite and at least 1, and naming
    /// `first_delay` when the first delay is zero and `multiplier` above 1 (a schedule of
    /// zeros that only looks like a backoff).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let backoff = Backoff::constant(ms(1)).with_multiplier(3.0)?;
    /// assert_eq!(backoff.into_iter().nth(2), Some(ms(9)));
    /// assert!(Backoff::constant(ms(1)).with_multiplier(f64::INFINITY).is_err());
    /// assert!(Backoff::none().with_multiplier(2.0).is_err(), "0 × 2ⁿ = 0: rejected");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn with_multiplier(mut self, multiplier: f64) -> Result<Self, ConfigError> {
        // Written so that NaN fails too.
        if !(multiplier >= 1.0 && multiplier < f64::INFINITY) {
            return Err(ConfigError::new(
                "multiplier",
                ConfigValue::Float(multiplier),
                "a finite number >= 1",
            ));
        }
        if multiplier > 1.0 && self.delay.is_zero() {
            return Err(ConfigError::new(
                "first_delay",
                ConfigValue::Duration(self.delay),
                "more than zero with a multiplier above 1",
            ));
        }
        self.multiplier = multiplier;
        Ok(self)
    }

    /// Caps every delay at `max_delay`. The cap applies before jitter: no jitter kind exceeds
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// let backoff = Backoff::exponential(Duration::from_secs(1), 10.0)?
    ///     .with_max_delay(Duration::from_secs(30));
    /// assert_eq!(backoff.into_iter().nth(5), Some(Duration::from_secs(30)));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Randomises each delay; see [`Jitter`] for the formulas.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Backoff, Jitter};
    ///
    /// let d = Duration::from_millis(100);
    /// let backoff = Backoff::constant(d).with_jitter(Jitter::Full);
    /// assert!(backoff.into_iter().take(10).all(|delay| delay <= d));
    /// ```
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Fixes the seed of the jitter's random numbers, making every iterator of this backoff
    /// yield the same delays. Without a seed each iterator draws its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Backoff, Jitter};
    ///
    /// let backoff = Backoff::constant(Duration::from_secs(1))
    ///     .with_jitter(Jitter::Full)
    ///     .with_seed(42);
    /// assert!(backoff.into_iter().take(5).eq(backoff.into_iter().take(5)));
    /// ```
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The delay before the first retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// assert_eq!(Backoff::none().first_delay(), Duration::ZERO);
    /// ```
    pub const fn first_delay(&self) -> Duration {
        self.delay
    }

    /// The growth factor between delays (1 for a constant schedule).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// assert_eq!(Backoff::exponential(Duration::from_millis(1), 2.0)?.multiplier(), 2.0);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The cap on each delay ([`Duration::MAX`] when none was set).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// assert_eq!(Backoff::none().max_delay(), Duration::MAX);
    /// ```
    pub const fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The jitter kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Backoff, Jitter};
    ///
    /// assert_eq!(Backoff::none().jitter(), Jitter::None);
    /// ```
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// An iterator over the delays; the same as `self.into_iter()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Backoff;
    ///
    /// let backoff = Backoff::constant(Duration::from_millis(3));
    /// assert_eq!(backoff.iter().next(), Some(Duration::from_millis(3)));
    /// ```
    #[inline]
    pub fn iter(&self) -> BackoffIter {
        let seed = match self.seed {
            Some(seed) => seed,
            None if matches!(self.jitter, Jitter::None) => 0,
            None => entropy_seed(),
        };
        BackoffIter {
            backoff: *self,
            nominal: self.delay,
            prev: self.delay,
            rng: SplitMix64::new(seed),
        }
    }
}

impl fmt::Debug for Backoff {
    /// `Backoff { first_delay: 100ms, multiplier: 2.0, max_delay: none, jitter: Full, seed:
    /// none }`: no cap and no seed read as `none`, not as `Duration::MAX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Backoff");
        s.field("first_delay", &self.delay)
            .field("multiplier", &self.multiplier);
        if self.max_delay == Duration::MAX {
            s.field("max_delay", &format_args!("none"));
        } else {
            s.field("max_delay", &self.max_delay);
        }
        s.field("jitter", &self.jitter);
        match self.seed {
            Some(seed) => s.field("seed", &seed),
            None => s.field("seed", &format_args!("none")),
        };
        s.finish()
    }
}

impl Default for Backoff {
    /// [`Backoff::none`].
    fn default() -> Self {
        Self::none()
    }
}

impl IntoIterator for Backoff {
    type Item = Duration;
    type IntoIter = BackoffIter;

    #[inline]
    fn into_iter(self) -> BackoffIter {
        self.iter()
    }
}

impl IntoIterator for &Backoff {
    type Item = Duration;
    type IntoIter = BackoffIter;

    #[inline]
    fn into_iter(self) -> BackoffIter {
        self.iter()
    }
}

/// The delays of a [`Backoff`], endlessly.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::{Backoff, BackoffIter};
///
/// let mut delays: BackoffIter = Backoff::constant(Duration::from_millis(1)).into_iter();
/// assert_eq!(delays.next(), Some(Duration::from_millis(1)));
/// ```
#[derive(Clone)]
pub struct BackoffIter {
    backoff: Backoff,
    /// The next delay before cap and jitter.
    nominal: Duration,
    /// The previous delay handed out (the initial delay before the first).
    prev: Duration,
    rng: SplitMix64,
}

impl fmt::Debug for BackoffIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffIter")
            .field("next_nominal", &self.nominal)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl Iterator for BackoffIter {
    type Item = Duration;

    #[inline]
    fn next(&mut self) -> Option<Duration> {
        let b = &self.backoff;
        let capped = self.nominal.min(b.max_delay);
        let delay = b
            .jitter
            .apply(&mut self.rng, capped, b.delay, self.prev, b.max_delay);
        self.prev = delay;
        if self.nominal < b.max_delay {
            self.nominal = grow(self.nominal, b.multiplier);
        }
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

impl FusedIterator for BackoffIter {}

/// `d · multiplier`, rounded to the nanosecond, saturating at [`Duration::MAX`], never less
/// than `d`.
fn grow(d: Duration, multiplier: f64) -> Duration {
    if multiplier == 1.0 {
        return d;
    }
    // u64::MAX as f64 rounds up to 2^64, so `>=` catches every value that does not fit.
    let nanos = d.as_nanos() as f64 * multiplier;
    if nanos >= u64::MAX as f64 {
        return Duration::MAX;
    }
    // nanos >= 0: `as` truncates, + 0.5 rounds to nearest.
    Duration::from_nanos((nanos + 0.5) as u64).max(d)
}
