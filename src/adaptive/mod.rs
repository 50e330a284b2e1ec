//! Adaptive concurrency limit: a [`Gate`] whose limit follows what the dependency can take,
//! learned from each call's round-trip time and outcome.
//!
//! ```
//! use core::time::Duration;
//! use dike::adaptive::{AdaptiveGate, Aimd};
//! use dike::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let gate = AdaptiveGate::new(Aimd::new(2));
//! let a = gate.try_enter(&timer)?;
//! let b = gate.try_enter(&timer)?;
//! assert!(gate.try_enter(&timer).is_err(), "limit 2");
//! timer.advance(Duration::from_millis(10));
//! a.success(); // 2 in flight of a limit of 2: the limit is in use, so it grows
//! assert_eq!(gate.limit(), 3);
//! b.dropped(); // the dependency refused: back off
//! assert_eq!(gate.limit(), 2);
//! # Ok::<(), dike::error::TooManyCalls>(())
//! ```
//!
//! # How it works
//!
//! An algorithm ([`Aimd`] or the delay-based [`Gradient`]; see their docs for the formulas,
//! defaults and reasons) is a pure
//! engine: it maps each sample `(now, rtt, in_flight, outcome)` to a limit, with integer
//! arithmetic, no allocation and no clock of its own, so the same samples on a
//! [`ManualTimer`](crate::time::ManualTimer) give the same trajectory, bit for bit, in
//! `no_std` too. [`AdaptiveGate`] owns a [`Gate`] and the algorithm; each permit is the
//! call's feedback token: report [`success`](AdaptivePermit::success),
//! [`dropped`](AdaptivePermit::dropped) (the dependency refused or failed from overload) or
//! [`ignore`](AdaptivePermit::ignore) (says nothing about the dependency). A permit dropped
//! unreported is `ignore`: a cancelled caller says nothing about the server. The new limit
//! is applied with [`Gate::set_limit`] after the algorithm's lock is released.
//!
//! dike's own refusals (this gate full, a breaker open, a retry budget spent) never reach
//! the algorithm: only a permit holder reports.
//!
//! # Composing the layers
//!
//! One order, outermost first; each attempt takes its own permits and gives its own sample:
//!
//! ```text
//! total timeout ─▶ retry (budget) ─▶ circuit breaker ─▶ adaptive gate / gate ─▶ throttle
//!   ─▶ attempt timeout ─▶ call
//! ```
//!
//! The total and attempt timeouts are [`Retry::with_timeout`](crate::retry::Retry::with_timeout)
//! and [`Retry::with_attempt_timeout`](crate::retry::Retry::with_attempt_timeout). dike's own
//! refusals (the gate full, the breaker open, the budget spent) are never reported as the
//! dependency's failures: report them with `ignore`, or not at all.
//!
//! ```
//! use core::time::Duration;
//! use dike::adaptive::{AdaptiveGate, Gradient};
//! use dike::breaker::{Breaker, CountWindow};
//! use dike::retry::{Retry, RetryError};
//! use dike::time::ManualTimer;
//! use futures_util::FutureExt;
//!
//! #[derive(Debug, PartialEq)]
//! enum Error {
//!     Open,      // the breaker refused: not the dependency's fault
//!     Shed,      // the adaptive gate was full
//!     Status(u16),
//! }
//!
//! let ms = Duration::from_millis;
//! let timer = ManualTimer::new();
//! let breaker = Breaker::new(CountWindow::<20>::new());
//! let gate = AdaptiveGate::new(Gradient::new(20));
//! let policy = Retry::fixed(ms(50))
//!     .try_with_attempts(3)?
//!     .with_attempt_timeout(ms(100))
//!     .with_timeout(ms(250))
//!     .when(|e: &Error| matches!(e, Error::Status(503) | Error::Shed));
//!
//! let mut calls = 0;
//! let (b, g, t) = (&breaker, &gate, &timer);
//! let run = policy.run(&timer, || {
//!     calls += 1;
//!     let status = if calls < 2 { 503 } else { 200 };
//!     let (breaker, gate, timer) = (b, g, t);
//!     async move {
//!         let call = breaker.try_acquire(timer).map_err(|_| Error::Open)?;
//!         let Ok(permit) = gate.try_enter(timer) else {
//!             call.ignore(); // our own refusal says nothing about the dependency
//!             return Err(Error::Shed);
//!         };
//!         let result = if status == 200 { Ok("body") } else { Err(Error::Status(status)) };
//!         call.record(&result);
//!         match result {
//!             Ok(_) => permit.success(),
//!             Err(_) => permit.ignore(), // an error reply is not overload
//!         }
//!         result
//!     }
//! });
//! let mut run = Box::pin(run);
//! let result = loop {
//!     if let Some(result) = (&mut run).now_or_never() {
//!         break result;
//!     }
//!     timer.advance_to_next();
//! };
//! assert_eq!(result, Ok("body"));
//! assert_eq!(breaker.stats().calls, 2);
//! # let _: Option<RetryError<Error>> = None;
//! # Ok::<(), dike::error::ConfigError>(())
//! ```
//!
//! # Cancel safety
//!
//! [`AdaptiveGate::try_enter`] does not wait. A permit dropped at any point releases its
//! slot and reports nothing.

use core::fmt;
use core::time::Duration;

mod engine;
mod gradient;

pub use engine::{Aimd, Outcome};
pub use gradient::Gradient;

/// A limit algorithm: a pure function of its samples. Implemented by [`Aimd`] and
/// [`Gradient`].
///
/// # Implementing
///
/// - [`on_sample`](Algorithm::on_sample) MUST NOT read a clock or block: `now` is given.
/// - It MUST return a limit of at least 1.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::adaptive::{AdaptiveGate, Algorithm, Outcome};
///
/// /// A limit that never moves.
/// #[derive(Debug, Clone)]
/// struct Fixed(u32);
///
/// impl Algorithm for Fixed {
///     fn limit(&self) -> u32 {
///         self.0
///     }
///     fn on_sample(&mut self, _: Duration, _: Duration, _: u32, _: Outcome) -> u32 {
///         self.0
///     }
/// }
///
/// let gate = AdaptiveGate::new(Fixed(3));
/// assert_eq!(gate.limit(), 3);
/// ```
pub trait Algorithm {
    /// The current limit.
    fn limit(&self) -> u32;
    /// Feeds one sample (`rtt` of a call that finished at `now`, `in_flight` calls in flight
    /// when it started, itself included) and returns the new limit.
    fn on_sample(&mut self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) -> u32;
}

impl Algorithm for Aimd {
    fn limit(&self) -> u32 {
        Aimd::limit(self)
    }
    fn on_sample(&mut self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) -> u32 {
        Aimd::on_sample(self, now, rtt, in_flight, outcome)
    }
}

impl Algorithm for Gradient {
    fn limit(&self) -> u32 {
        Gradient::limit(self)
    }
    fn on_sample(&mut self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) -> u32 {
        Gradient::on_sample(self, now, rtt, in_flight, outcome)
    }
}

use crate::error::TooManyCalls;
use crate::gate::{Gate, GateStats, Permit};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::time::Timer;

/// A [`Gate`] whose limit an [`Algorithm`] ([`Aimd`] by default, or [`Gradient`]) sets
/// from each call's feedback.
///
/// # Examples
///
/// ```
/// use dike::adaptive::{AdaptiveGate, Aimd};
/// use dike::time::ManualTimer;
///
/// let gate = AdaptiveGate::new(Aimd::new(10).with_bounds(5, 50)?);
/// let permit = gate.try_enter(ManualTimer::new()).unwrap();
/// permit.success();
/// assert_eq!(gate.stats().in_use, 0);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct AdaptiveGate<A = Aimd> {
    gate: Gate,
    algorithm: Mutex<A>,
    // Calls holding a permit: the `in_flight` of each sample, without locking the gate.
    in_flight: AtomicU32,
}

impl<A: Algorithm + Clone + fmt::Debug> fmt::Debug for AdaptiveGate<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = self.algorithm.with(|a| a.clone());
        f.debug_struct("AdaptiveGate")
            .field("gate", &self.gate)
            .field("algorithm", &algorithm)
            .finish()
    }
}

impl<A: Algorithm> AdaptiveGate<A> {
    /// A gate starting at the algorithm's limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(20));
    /// assert_eq!(gate.limit(), 20);
    /// ```
    pub fn new(algorithm: A) -> Self {
        Self {
            gate: Gate::new(algorithm.limit() as usize),
            algorithm: Mutex::new(algorithm),
            in_flight: AtomicU32::new(0),
        }
    }

    /// Enters at once, or refuses when the limit is reached (the refusal says nothing to
    /// the algorithm).
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] when every slot of the current limit is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::adaptive::{AdaptiveGate, Aimd};
    /// let gate = AdaptiveGate::new(Aimd::new(1));
    /// let timer = dike::time::ManualTimer::new();
    /// let _held = gate.try_enter(&timer)?;
    /// assert!(gate.try_enter(&timer).is_err());
    /// # Ok::<(), dike::error::TooManyCalls>(())
    /// ```
    pub fn try_enter<T: Timer>(&self, timer: T) -> Result<AdaptivePermit<'_, T, A>, TooManyCalls> {
        let permit = self.gate.try_enter()?;
        let in_flight = self
            .in_flight
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let start = timer.now();
        Ok(AdaptivePermit {
            owner: self,
            permit: Some(permit),
            timer,
            start,
            in_flight,
        })
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(3)).limit(), 3);
    /// ```
    pub fn limit(&self) -> usize {
        self.gate.limit()
    }

    /// The underlying gate's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(3));
    /// assert_eq!(gate.stats().limit, 3);
    /// ```
    pub fn stats(&self) -> GateStats {
        self.gate.stats()
    }

    /// A copy of the algorithm's state (its limit, baseline, last RTT).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::adaptive::{AdaptiveGate, Gradient};
    /// let gate = AdaptiveGate::new(Gradient::new(20));
    /// assert_eq!(gate.algorithm().baseline(), None);
    /// ```
    pub fn algorithm(&self) -> A
    where
        A: Clone,
    {
        self.algorithm.with(|a| a.clone())
    }

    fn report(&self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) {
        if outcome == Outcome::Ignore {
            return;
        }
        let (before, after) = self.algorithm.with(|a| {
            let before = a.limit();
            (before, a.on_sample(now, rtt, in_flight, outcome))
        });
        if before != after {
            self.gate.set_limit(after as usize);
        }
    }
}

/// A slot in an [`AdaptiveGate`] and the call's feedback token. Report
/// [`success`](AdaptivePermit::success), [`dropped`](AdaptivePermit::dropped) or
/// [`ignore`](AdaptivePermit::ignore); dropped unreported it is `ignore`. The slot is
/// released either way.
///
/// # Examples
///
/// ```
/// use dike::adaptive::{AdaptiveGate, Aimd};
/// let gate = AdaptiveGate::new(Aimd::new(4));
/// let permit = gate.try_enter(dike::time::ManualTimer::new()).unwrap();
/// drop(permit); // cancelled: no sample
/// assert_eq!(gate.limit(), 4);
/// ```
#[clippy::has_significant_drop]
#[must_use = "report the call's outcome; dropping the permit releases it with no sample"]
pub struct AdaptivePermit<'a, T: Timer, A: Algorithm = Aimd> {
    owner: &'a AdaptiveGate<A>,
    permit: Option<Permit<'a>>,
    timer: T,
    start: Duration,
    in_flight: u32,
}

impl<T: Timer, A: Algorithm> fmt::Debug for AdaptivePermit<'_, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptivePermit")
            .field("start", &self.start)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl<T: Timer, A: Algorithm> AdaptivePermit<'_, T, A> {
    /// The call succeeded: its round-trip time is a sample.
    ///
    /// # Examples
    ///
    /// ```
    /// # let gate = dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(1));
    /// gate.try_enter(dike::time::ManualTimer::new()).unwrap().success();
    /// assert_eq!(gate.limit(), 2);
    /// ```
    pub fn success(self) {
        self.finish(Outcome::Success);
    }

    /// The dependency dropped or refused the call: back off.
    ///
    /// # Examples
    ///
    /// ```
    /// # let gate = dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(10));
    /// gate.try_enter(dike::time::ManualTimer::new()).unwrap().dropped();
    /// assert_eq!(gate.limit(), 9);
    /// ```
    pub fn dropped(self) {
        self.finish(Outcome::Dropped);
    }

    /// The call says nothing about the dependency: no sample.
    ///
    /// # Examples
    ///
    /// ```
    /// # let gate = dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(10));
    /// gate.try_enter(dike::time::ManualTimer::new()).unwrap().ignore();
    /// assert_eq!(gate.limit(), 10);
    /// ```
    pub fn ignore(self) {
        self.finish(Outcome::Ignore);
    }

    fn finish(mut self, outcome: Outcome) {
        // The slot is released before the sample, so the new limit applies to a gate that
        // no longer counts this call.
        self.release();
        if outcome != Outcome::Ignore {
            let now = self.timer.now();
            let rtt = now.saturating_sub(self.start);
            self.owner.report(now, rtt, self.in_flight, outcome);
        }
    }

    fn release(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.owner.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        }
    }
}

impl<T: Timer, A: Algorithm> Drop for AdaptivePermit<'_, T, A> {
    fn drop(&mut self) {
        // Unreported: `ignore`, no sample.
        self.release();
    }
}

#[cfg(test)]
mod tests;
