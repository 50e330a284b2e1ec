//! # Implementation notes
//!
//! A pure function of its samples: `Aimd::on_sample(now, rtt, in_flight, outcome)` returns
//! the new limit and touches nothing else, so the same samples give the same trajectory,
//! bit for bit, on any target. Integer arithmetic only (the back-off ratio is in
//! thousandths), no float, no allocation.

use core::time::Duration;

use crate::error::{ConfigError, ConfigValue};

/// What one call says about the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It answered; its round-trip time is a sample.
    Success,
    /// It says nothing about the dependency (cancelled, refused by another layer).
    Ignore,
    /// It was dropped or refused by the dependency: a sign of overload.
    Dropped,
}

/// AIMD: additive increase, multiplicative decrease (Netflix concurrency-limits'
/// `AIMDLimit`, TCP Reno's rule).
///
/// - A loss (an [`Outcome::Dropped`] sample, or a success slower than
///   [`with_rtt_threshold`](Aimd::with_rtt_threshold)) multiplies the limit by the back-off
///   ratio (default 0.9), rounded down.
/// - A success grows the limit by 1, but only while `in_flight × 2 ≥ limit`: the limit grows
///   only while it is being used (Netflix's guard), so an idle client does not inflate it.
/// - [`Outcome::Ignore`] changes nothing.
/// - The limit stays within `[min, max]` (default `[1, 1000]`).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::adaptive::{Aimd, Outcome};
///
/// let mut aimd = Aimd::new(20);
/// let ms = Duration::from_millis;
/// assert_eq!(aimd.on_sample(ms(0), ms(10), 15, Outcome::Success), 21); // used: grows
/// assert_eq!(aimd.on_sample(ms(1), ms(10), 2, Outcome::Success), 21); // idle: holds
/// assert_eq!(aimd.on_sample(ms(2), ms(10), 15, Outcome::Dropped), 18); // 21 × 0.9
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aimd {
    limit: u32,
    min: u32,
    max: u32,
    backoff_permille: u32,
    rtt_threshold: Option<Duration>,
}

impl Aimd {
    /// Starts at `initial` (clamped to the bounds), back-off 0.9, bounds `[1, 1000]`, no RTT
    /// threshold.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::Aimd::new(20).limit(), 20);
    /// ```
    pub const fn new(initial: u32) -> Self {
        let limit = if initial < 1 {
            1
        } else if initial > 1000 {
            1000
        } else {
            initial
        };
        Self {
            limit,
            min: 1,
            max: 1000,
            backoff_permille: 900,
            rtt_threshold: None,
        }
    }

    /// Keeps the limit within `[min, max]`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `min` when it is 0, or `max` when it is below `min`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::adaptive::Aimd;
    /// assert_eq!(Aimd::new(20).with_bounds(30, 100)?.limit(), 30);
    /// assert!(Aimd::new(20).with_bounds(10, 5).is_err());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn with_bounds(mut self, min: u32, max: u32) -> Result<Self, ConfigError> {
        if min == 0 {
            return Err(ConfigError::new("min", ConfigValue::Int(0), "at least 1"));
        }
        if max < min {
            return Err(ConfigError::new(
                "max",
                ConfigValue::Int(max as i128),
                "at least min",
            ));
        }
        self.min = min;
        self.max = max;
        self.limit = if self.limit < min {
            min
        } else if self.limit > max {
            max
        } else {
            self.limit
        };
        Ok(self)
    }

    /// The factor applied on a loss, in `[0.5, 1)` (default 0.9), kept to thousandths.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `backoff` outside `[0.5, 1)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::adaptive::{Aimd, Outcome};
    /// let mut aimd = Aimd::new(100).with_backoff(0.5)?;
    /// assert_eq!(aimd.on_sample(Duration::ZERO, Duration::ZERO, 0, Outcome::Dropped), 50);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn with_backoff(mut self, backoff: f64) -> Result<Self, ConfigError> {
        if !(backoff >= 0.5 && backoff < 1.0) {
            return Err(ConfigError::new(
                "backoff",
                ConfigValue::Float(backoff),
                "at least 0.5 and below 1",
            ));
        }
        self.backoff_permille = (backoff * 1000.0) as u32;
        Ok(self)
    }

    /// Counts a success slower than `threshold` as a loss (off by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::adaptive::{Aimd, Outcome};
    /// let ms = Duration::from_millis;
    /// let mut aimd = Aimd::new(10).with_rtt_threshold(ms(100));
    /// assert_eq!(aimd.on_sample(ms(0), ms(150), 10, Outcome::Success), 9);
    /// ```
    pub const fn with_rtt_threshold(mut self, threshold: Duration) -> Self {
        self.rtt_threshold = Some(threshold);
        self
    }

    /// The RTT above which a success counts as a loss, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::adaptive::Aimd;
    /// assert_eq!(Aimd::new(7).rtt_threshold(), None);
    /// let ms = Duration::from_millis;
    /// assert_eq!(Aimd::new(7).with_rtt_threshold(ms(50)).rtt_threshold(), Some(ms(50)));
    /// ```
    pub const fn rtt_threshold(&self) -> Option<Duration> {
        self.rtt_threshold
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::Aimd::new(7).limit(), 7);
    /// ```
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// Feeds one sample: `rtt` of a call that finished at `now`, with `in_flight` calls
    /// (itself included) in flight when it started. Returns the new limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::adaptive::{Aimd, Outcome};
    /// let mut aimd = Aimd::new(4);
    /// assert_eq!(aimd.on_sample(Duration::ZERO, Duration::ZERO, 4, Outcome::Ignore), 4);
    /// ```
    #[inline]
    pub fn on_sample(
        &mut self,
        _now: Duration,
        rtt: Duration,
        in_flight: u32,
        outcome: Outcome,
    ) -> u32 {
        let slow = self.rtt_threshold.is_some_and(|t| rtt > t);
        let limit = match outcome {
            Outcome::Ignore => self.limit,
            Outcome::Dropped => self.backed_off(),
            Outcome::Success if slow => self.backed_off(),
            Outcome::Success if in_flight.saturating_mul(2) >= self.limit => {
                self.limit.saturating_add(1)
            }
            Outcome::Success => self.limit,
        };
        self.limit = limit.clamp(self.min, self.max);
        self.limit
    }

    #[inline]
    fn backed_off(&self) -> u32 {
        // Integer, rounded down; at least one less while above the floor, so a small limit
        // still backs off.
        let scaled = (u64::from(self.limit) * u64::from(self.backoff_permille) / 1000) as u32;
        scaled.min(self.limit.saturating_sub(1))
    }
}
