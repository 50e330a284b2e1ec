//! Adaptive concurrency limit: a [`Gate`](crate::gate::Gate)-like limit that follows what the
//! dependency can take, learned from each call's round-trip time and outcome.
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
//! `no_std` too. [`AdaptiveGate`] owns the algorithm and the count of calls in flight; each
//! permit is the call's feedback token: report [`success`](AdaptivePermit::success),
//! [`dropped`](AdaptivePermit::dropped) (the dependency refused or failed from overload) or
//! [`ignore`](AdaptivePermit::ignore) (says nothing about the dependency). A permit dropped
//! unreported is `ignore`: a cancelled caller says nothing about the server. The new limit
//! is written under the algorithm's lock, so it always follows the algorithm's in sample
//! order; [`with_on_limit_change`](AdaptiveGate::with_on_limit_change) hears of each change,
//! after the lock.
//!
//! A cycle (enter, report, release) is two atomic read-modify-writes on the slot count (as
//! a [`Gate`](crate::gate::Gate)'s `try_enter` and release) plus the algorithm's lock, and
//! two reads of the timer (the call's start and end) unless nothing uses the call's times
//! ([`Algorithm::needs_clock`]: an [`Aimd`] without an RTT threshold and no hook).
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

    /// Whether [`on_sample`](Algorithm::on_sample) reads `now` or `rtt` (by default, yes).
    /// Asked once, when the [`AdaptiveGate`] is built: if not, and no
    /// [`with_on_limit_change`](AdaptiveGate::with_on_limit_change) hook wants the sample's
    /// times either, the gate never reads its timer and passes [`Duration::ZERO`] for both
    /// (an [`Aimd`] without an RTT threshold saves two clock reads per call).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::adaptive::{Aimd, Algorithm};
    /// assert!(!Aimd::new(10).needs_clock());
    /// assert!(Aimd::new(10).with_rtt_threshold(Duration::from_millis(100)).needs_clock());
    /// ```
    fn needs_clock(&self) -> bool {
        true
    }
}

impl Algorithm for Aimd {
    #[inline]
    fn limit(&self) -> u32 {
        Aimd::limit(self)
    }
    #[inline]
    fn on_sample(&mut self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) -> u32 {
        Aimd::on_sample(self, now, rtt, in_flight, outcome)
    }
    /// Only with an RTT threshold: AIMD's rule reads neither time otherwise.
    fn needs_clock(&self) -> bool {
        self.rtt_threshold().is_some()
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

use crate::error::{TooManyCalls, TooManyCallsKind};
use crate::gate::GateStats;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use crate::time::Timer;

/// One admission in [`AdaptiveGate`]'s state word: its count lives in the top half on 64-bit
/// targets (counted by the same compare-and-swap that takes the slot), in `admitted`
/// elsewhere.
#[cfg(target_pointer_width = "64")]
const ADMIT: usize = 1 << 32;
#[cfg(not(target_pointer_width = "64"))]
const ADMIT: usize = 0;
/// The calls in flight: the low half of the state word (all of it without 64-bit `usize`).
const IN_FLIGHT: usize = if ADMIT == 0 { usize::MAX } else { ADMIT - 1 };

/// A [`Gate`](crate::gate::Gate)-like limit that an [`Algorithm`] ([`Aimd`] by default, or
/// [`Gradient`]) sets from each call's feedback.
///
/// It admits with [`try_enter`](AdaptiveGate::try_enter) only (a refused call is shed, it
/// does not wait), so its slots are one word: the calls in flight, taken and given back
/// without a lock. The algorithm sits behind a lock taken once per reported sample; the new
/// limit is written under that same lock, so the limit admissions see always follows the
/// algorithm's, in the order the samples were taken. Lowering the limit below the calls in
/// flight evicts nobody: new calls are refused until fewer than the new limit are in flight.
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
    /// `admitted << 32 | in_flight` on 64-bit targets, `in_flight` elsewhere.
    state: AtomicUsize,
    /// The algorithm's limit, written with `algorithm`'s lock held.
    limit: AtomicU32,
    /// Admissions not counted in `state` (all of them without 64-bit `usize`).
    #[cfg_attr(target_pointer_width = "64", allow(dead_code))]
    admitted: AtomicUsize,
    /// Wraps of the admission count in `state`'s top half.
    #[cfg_attr(not(target_pointer_width = "64"), allow(dead_code))]
    admitted_carry: AtomicUsize,
    rejected: AtomicUsize,
    peak: AtomicUsize,
    algorithm: Mutex<A>,
    on_limit_change: Option<fn(LimitChange)>,
    /// Read the timer: the algorithm or the hook uses the sample's times.
    clock: bool,
}

impl<A: Algorithm + Clone + fmt::Debug> fmt::Debug for AdaptiveGate<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = self.algorithm.with(|a| a.clone());
        f.debug_struct("AdaptiveGate")
            .field("limit", &self.limit())
            .field("in_use", &self.in_use())
            .field("algorithm", &algorithm)
            .finish_non_exhaustive()
    }
}

/// A change of an [`AdaptiveGate`]'s limit, given to the hook set with
/// [`with_on_limit_change`](AdaptiveGate::with_on_limit_change): the limit before and after,
/// and the sample that moved it.
///
/// # Examples
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use dike::adaptive::{AdaptiveGate, Aimd, LimitChange, Outcome};
///
/// static LAST: AtomicU32 = AtomicU32::new(0);
/// fn on_change(change: LimitChange) {
///     assert_eq!(change.outcome, Outcome::Dropped);
///     LAST.store(change.old << 16 | change.new, Ordering::Relaxed);
/// }
///
/// let gate = AdaptiveGate::new(Aimd::new(10)).with_on_limit_change(on_change);
/// gate.try_enter(dike::time::ManualTimer::new()).unwrap().dropped();
/// assert_eq!(LAST.load(Ordering::Relaxed), 10 << 16 | 9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitChange {
    /// The limit before the sample.
    pub old: u32,
    /// The limit after it (never equal to `old`).
    pub new: u32,
    /// When the call finished (the sample's `now`).
    pub now: Duration,
    /// The call's round-trip time.
    pub rtt: Duration,
    /// Calls in flight when it started, itself included.
    pub in_flight: u32,
    /// What the call reported ([`Outcome::Success`] or [`Outcome::Dropped`]).
    pub outcome: Outcome,
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
            state: AtomicUsize::new(0),
            limit: AtomicU32::new(algorithm.limit()),
            admitted: AtomicUsize::new(0),
            admitted_carry: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            clock: algorithm.needs_clock(),
            algorithm: Mutex::new(algorithm),
            on_limit_change: None,
        }
    }

    /// Calls `hook` once for each sample that changes the limit (OnLimitChanged), never
    /// for one that leaves it where it was, nor for a refusal or an unreported permit.
    ///
    /// The hook runs on the thread that reported the sample, after the gate's lock is
    /// released, so it may use the gate (read [`limit`](AdaptiveGate::limit), enter). From
    /// samples reported at the same time on several threads, the hooks may run in another
    /// order than the changes took effect; each [`LimitChange`] carries its own `old` and
    /// `new`, and those chain in the order the samples were taken. A fn pointer, like the
    /// breaker's and the hedge's hooks; unset, it costs one branch per limit change and
    /// nothing per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use core::time::Duration;
    /// use dike::adaptive::{AdaptiveGate, Aimd, LimitChange};
    /// use dike::time::ManualTimer;
    ///
    /// static CHANGES: AtomicU32 = AtomicU32::new(0);
    /// fn on_change(change: LimitChange) {
    ///     assert_ne!(change.old, change.new);
    ///     CHANGES.fetch_add(1, Ordering::Relaxed);
    /// }
    ///
    /// let timer = ManualTimer::new();
    /// let gate = AdaptiveGate::new(Aimd::new(4).with_bounds(1, 5)?).with_on_limit_change(on_change);
    /// let held: Vec<_> = (0..4).map(|_| gate.try_enter(&timer).unwrap()).collect();
    /// timer.advance(Duration::from_millis(10));
    /// for permit in held {
    ///     permit.success(); // 4 → 5, then at the bound 5 stays: one change
    /// }
    /// gate.try_enter(&timer).unwrap().ignore(); // no sample
    /// assert_eq!(CHANGES.load(Ordering::Relaxed), 1);
    /// assert_eq!(gate.limit(), 5);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_on_limit_change(mut self, hook: fn(LimitChange)) -> Self {
        self.on_limit_change = Some(hook);
        // The hook hears the sample's times.
        self.clock = true;
        self
    }

    /// Enters at once, or refuses when the limit is reached (the refusal says nothing to
    /// the algorithm). Reads `timer` once, for the call's start (unless nothing needs the
    /// call's times: see [`Algorithm::needs_clock`]).
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] of kind [`Full`](TooManyCallsKind::Full) when as many calls as the
    /// current limit are in flight.
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
    #[inline]
    pub fn try_enter<T: Timer>(&self, timer: T) -> Result<AdaptivePermit<'_, T, A>, TooManyCalls> {
        let limit = self.limit.load(Ordering::Relaxed) as usize;
        let mut s = self.state.load(Ordering::Relaxed);
        let in_flight = loop {
            let held = s & IN_FLIGHT;
            if held >= limit {
                return Err(self.full());
            }
            let new = (s + 1).wrapping_add(ADMIT);
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.note_admitted(new, held + 1);
                    break held + 1;
                }
                Err(actual) => s = actual,
            }
        };
        let start = if self.clock {
            timer.now()
        } else {
            Duration::ZERO
        };
        Ok(AdaptivePermit {
            owner: self,
            timer,
            start,
            // At most the limit, a `u32`.
            in_flight: in_flight as u32,
            live: true,
        })
    }

    #[cold]
    fn full(&self) -> TooManyCalls {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        TooManyCalls::new(self.limit(), TooManyCallsKind::Full)
    }

    /// Completes the count of an admission that left `state` at `after`, with `in_flight`
    /// calls in flight, and tracks the peak.
    #[inline]
    fn note_admitted(&self, after: usize, in_flight: usize) {
        #[cfg(not(target_pointer_width = "64"))]
        {
            let _ = after;
            self.admitted.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(target_pointer_width = "64")]
        if after < ADMIT {
            // The count in the top half wrapped to zero.
            self.admitted_carry.fetch_add(1, Ordering::Relaxed);
        }
        // A load first keeps the common case free of a second read-modify-write.
        if in_flight > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(in_flight, Ordering::Relaxed);
        }
    }

    /// Gives one slot back.
    #[inline]
    fn release(&self) {
        self.state.fetch_sub(1, Ordering::Release);
    }

    /// Sets the admission count kept in `state` (tests of its wrap-around).
    #[cfg(all(test, target_pointer_width = "64"))]
    pub(crate) fn preset_admissions(&self, count: u32) {
        let s = self.state.load(Ordering::Relaxed);
        let top = usize::try_from(count).expect("64-bit usize") << 32;
        self.state.store((s & IN_FLIGHT) | top, Ordering::Relaxed);
    }

    fn in_use(&self) -> usize {
        self.state.load(Ordering::Acquire) & IN_FLIGHT
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(3)).limit(), 3);
    /// ```
    #[inline]
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed) as usize
    }

    /// The gate's counters, in the [`Gate`](crate::gate::Gate)'s shape: `in_use` is the
    /// calls in flight (it may exceed `limit` right after the limit was lowered), `waiting`
    /// is always 0 (nobody waits), `admitted` and `rejected` count since creation and wrap
    /// at `usize::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = dike::adaptive::AdaptiveGate::new(dike::adaptive::Aimd::new(3));
    /// let timer = dike::time::ManualTimer::new();
    /// let permit = gate.try_enter(&timer).unwrap();
    /// let stats = gate.stats();
    /// assert_eq!((stats.limit, stats.in_use, stats.admitted), (3, 1, 1));
    /// # drop(permit);
    /// ```
    pub fn stats(&self) -> GateStats {
        let state = self.state.load(Ordering::Acquire);
        #[cfg(target_pointer_width = "64")]
        let admitted = (self.admitted_carry.load(Ordering::Relaxed) << 32) | (state >> 32);
        #[cfg(not(target_pointer_width = "64"))]
        let admitted = self.admitted.load(Ordering::Relaxed);
        GateStats {
            limit: self.limit(),
            in_use: state & IN_FLIGHT,
            waiting: 0,
            admitted,
            rejected: self.rejected.load(Ordering::Relaxed),
            peak_in_use: self.peak.load(Ordering::Relaxed),
        }
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

    /// Feeds a `Success` or `Dropped` sample; the new limit is written under the
    /// algorithm's lock, the hook called after it.
    #[inline]
    fn report(&self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) {
        let change = self.algorithm.with(|a| {
            let old = a.limit();
            let new = a.on_sample(now, rtt, in_flight, outcome);
            (new != old).then(|| {
                self.limit.store(new, Ordering::Relaxed);
                (old, new)
            })
        });
        if let Some((old, new)) = change {
            self.changed(LimitChange {
                old,
                new,
                now,
                rtt,
                in_flight,
                outcome,
            });
        }
    }

    #[cold]
    fn changed(&self, change: LimitChange) {
        if let Some(hook) = self.on_limit_change {
            hook(change);
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
    timer: T,
    start: Duration,
    in_flight: u32,
    /// Still holds its slot.
    live: bool,
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
    #[inline]
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
    #[inline]
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
    #[inline]
    pub fn ignore(self) {
        // Dropping releases the slot and reports nothing.
        drop(self);
    }

    #[inline]
    fn finish(mut self, outcome: Outcome) {
        // The slot is released before the sample, so the new limit applies to a gate that
        // no longer counts this call.
        self.live = false;
        self.owner.release();
        let now = if self.owner.clock {
            self.timer.now()
        } else {
            Duration::ZERO
        };
        let rtt = now.saturating_sub(self.start);
        self.owner.report(now, rtt, self.in_flight, outcome);
    }
}

impl<T: Timer, A: Algorithm> Drop for AdaptivePermit<'_, T, A> {
    #[inline]
    fn drop(&mut self) {
        // Unreported: `ignore`, no sample.
        if self.live {
            self.owner.release();
        }
    }
}

#[cfg(test)]
mod tests;
