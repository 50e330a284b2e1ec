//! Rate limiting: [`Throttle`] spaces starts to at most `rate` per `period`, with an explicit
//! `burst` (aiometer's `max_per_second`, governor's rate limiter).
//!
//! A [`Throttle`] runs GCRA (the generic cell rate algorithm) over a [`Timer`]'s clock. Its
//! schedule is one 64-bit atomic, so [`try_acquire`](Throttle::try_acquire) is lock-free
//! (a short critical section on [targets without 64-bit atomics](self#targets-without-64-bit-atomics));
//! [`acquire`](Throttle::acquire) waits in a FIFO line on the timer you pass it (tokio, smol,
//! embassy, WASM or [`ManualTimer`](crate::time::ManualTimer) in tests), and a throttle can
//! live in a `static` ([`Throttle::const_new`]), on a microcontroller too.
//!
//! # The guarantee
//!
//! Configured with a [`Quota`] of `rate` per `period` and a `burst` `b`, let the emission
//! interval be `T = period / rate` (rounded up to a whole nanosecond, so the rate is never
//! exceeded). Then:
//!
//! - **In any window of length `w`, at most `b + ⌊w / T⌋` units are admitted** (a window
//!   that includes both ends; an acquire of cost `n` counts `n`).
//! - **Idle time earns at most `b`.** A throttle idle for `b·T` or longer admits `b` units at
//!   once, then one every `T`; however long it was idle, never more. Unused capacity is not
//!   banked beyond `b`.
//! - **Under continuous demand, admissions are exactly `T` apart** once the burst is spent:
//!   the largest gap between consecutive starts is `T` (aiometer's property), plus however
//!   late the timer wakes a waiter.
//! - With the default `burst = 1`, starts are strictly spaced: never two within `T` of each
//!   other, as aiometer's `max_per_second` does. A late wake-up then pushes every later start
//!   back by as much; with a burst of 2 or more the schedule absorbs it and catches up.
//!
//! `burst` is not "extra requests per period on top of the rate": it is how many units may be
//! admitted at the *same instant*. A quota of 10 per second with burst 10 admits 10 at once
//! after an idle second, then one every 100 ms (19 within the first second of a busy run, not
//! 20), and no second 10 until it has been idle (or under-used) for another second: at most
//! `10 + ⌊w / 100 ms⌋` in any window `w`.
//!
//! # Admission timeline
//!
//! 2 per second, burst 3 (`T` = 500 ms), under continuous demand from an idle start:
//!
//! | time | admitted | why |
//! |---|---|---|
//! | 0 ms | 3 | an idle throttle admits `burst` at once |
//! | 500 ms | 1 | then one every `T` |
//! | 1000 ms | 1 | |
//! | 1500 ms | 1 | |
//! | (idle until 5000 ms) | | idle time earns at most `burst` |
//! | 5000 ms | 3 | the burst again, never more |
//! | 5500 ms | 1 | |
//!
//! Same quota, but demand stops after the first burst and resumes at 700 ms: one unit was
//! earned back at 500 ms and another is not due until 1000 ms, so one is admitted at 700 ms,
//! the next at 1000 ms (not 1200 ms: the schedule, not the last start, sets the pace).
//!
//! # Exact semantics
//!
//! The state is the *theoretical arrival time* `tat` (initially 0, "idle since the timer's
//! origin"). An acquire of cost `n` at `now` is admitted iff
//! `max(tat, now) + n·T <= now + b·T`, and then sets `tat = max(tat, now) + n·T`. A refused
//! acquire changes nothing and reports the first instant it would be admitted,
//! `max(tat, now) + n·T - b·T`.
//!
//! # Timers
//!
//! A throttle holds no timer: every call takes one (by value; `&timer` is a timer too). Its
//! state is a time on the caller's clock, so every call on one throttle must read the same
//! clock. Which timers may be mixed on one throttle:
//!
//! - any `TokioTimer`s (all instances share one process-wide clock, so
//!   `throttle.acquire(TokioTimer::new())` at each call is fine), or any `AsyncIoTimer`s
//!   likewise; `EmbassyTimer`s (one clock per device); `WasmTimer`s (one per page);
//! - clones of one [`ManualTimer`](crate::time::ManualTimer) (two `ManualTimer::new()` are two
//!   separate clocks) or of one [`timer_fn`](crate::time::timer_fn) timer;
//! - never two different timer types (a `TokioTimer` and an `AsyncIoTimer` have different
//!   origins), nor tokio timers from runtimes whose clocks differ (a paused runtime and a real
//!   one).
//!
//! Mixing clocks does not break memory safety or panic; it makes the throttle wait for an
//! instant read on the wrong clock. The clock must be monotonic, as [`Timer`] requires.
//!
//! # Fairness
//!
//! With the `alloc` feature, waiting is FIFO, as aiometer's single spawner is:
//! [`acquire`](Throttle::acquire) joins the throttle's line on its first poll, and only the
//! waiter at the head of the line checks the schedule and sleeps until its slot. Once
//! admitted, it hands the head to the next waiter (waking it), which sleeps until the next
//! slot. So:
//!
//! - admission order is arrival order (the order of first polls), for any mix of costs: a
//!   waiter for a large cost ([`acquire_n`](Throttle::acquire_n)) is not overtaken by later
//!   small ones;
//! - however many tasks wait, **one** sleep is registered on the timer at a time, and each
//!   slot wakes one task (no stampede of sleepers per slot);
//! - a waiter dropped in the line leaves it; one dropped at the head (asleep, woken but not
//!   yet run, or just handed the head) passes the head to the next waiter at once. Nothing is
//!   reserved while waiting, so no slot is lost either way.
//!
//! [`acquire_owned`](Throttle::acquire_owned), for an `Arc<Throttle>`, waits in the same line
//! (so do the services of a `dike::tower::ThrottleLayer`, feature `tower`).
//!
//! [`try_acquire`](Throttle::try_acquire) does not queue: it stays lock-free and takes a slot
//! whenever the schedule allows, ahead of the head of the line if it checks first (the head
//! then sleeps until the next slot). Where strict order matters, acquire through `acquire`
//! only.
//!
//! The head holds up the line until it completes or is dropped, as a held gate permit does:
//! a waiter that is kept alive but not polled (say, stored and awaited later) delays everyone
//! behind it, and with a small burst the slots it lets pass are not banked. Drop a waiter you
//! no longer poll.
//!
//! The line is a [`Gate`](crate::gate::Gate) of one permit held by the head, so it costs an
//! uncontended `acquire` two more atomic operations (enter and leave the line) and takes the
//! gate's lock only while others wait.
//!
//! Without `alloc` there is no queue: every waiter sleeps until the instant the throttle
//! would admit it and checks again, and whoever checks first at that instant wins; the
//! others sleep until the next slot. Order is then arbitrary, `k` waiters all wake for each
//! slot, and a large cost can be starved by small ones; put one waiter per throttle (one
//! task) where that matters.
//!
//! # The end of time
//!
//! Times are whole nanoseconds in a `u64` (584 years). The throttle's clock stops at its
//! *horizon*, `u64::MAX` nanoseconds minus `b·T`; a timer reading later (a clock saturated at
//! its end, such as a [`ManualTimer`](crate::time::ManualTimer) advanced by
//! [`Duration::MAX`]) counts as the horizon, so every computation stays exact. There, the
//! throttle admits what is left of its burst and then refuses for ever:
//! [`RateLimited::is_never`] is true, [`ready_at`](RateLimited::ready_at) and
//! [`wait`](RateLimited::wait) are [`Duration::MAX`], and [`acquire`](Throttle::acquire)
//! stays pending without registering a sleep. It never admits more than the burst at one
//! instant, however far the clock saturates.
//!
//! # Targets without 64-bit atomics
//!
//! Where the target has no native 64-bit atomic (such as `thumbv7em-none-eabihf`), the
//! schedule lives behind the crate's lock instead: a `critical-section` mutex without `std`
//! (the target provides the implementation, as every embassy application does), so
//! `try_acquire` there is one short critical section rather than lock-free. That keeps it safe
//! from interrupt context: an interrupt cannot preempt the section, so a handler that checks
//! the throttle never spins on a half-done update of the code it interrupted (which
//! portable-atomic's 64-bit fallback, a seqlock over 32-bit CAS with spinning writers, could
//! not promise). Nanosecond resolution and a 584-year range were chosen over a lock-free
//! 32-bit tick count, whose wrap-around would need a period and a tick size per target.
//! Waiting with `alloc` also takes the gate's lock (a critical section without `std`).
//!
//! # Examples
//!
//! ```
//! use core::time::Duration;
//! use dike::throttle::{Quota, Throttle};
//! use dike::time::{ManualTimer, Timer};
//!
//! # fn main() -> Result<(), dike::error::ConfigError> {
//! let timer = ManualTimer::new();
//! let throttle = Throttle::new(Quota::per_second(2).with_burst(3))?;
//!
//! // The burst: three at once from idle, then the fourth must wait 500 ms.
//! for _ in 0..3 {
//!     assert!(throttle.try_acquire(&timer).is_ok());
//! }
//! let err = throttle.try_acquire(&timer).unwrap_err();
//! assert_eq!(err.ready_at(), Duration::from_millis(500));
//!
//! // `acquire` waits for that instant on the timer.
//! smol::block_on(async {
//!     let wait = throttle.acquire(&timer);
//!     timer.advance(Duration::from_millis(500));
//!     wait.await;
//! });
//! assert_eq!(timer.now(), Duration::from_millis(500));
//! # Ok(())
//! # }
//! ```

use core::fmt;
use core::time::Duration;

use crate::error::{ConfigError, ConfigValue};
use crate::time::Timer;

pub(crate) mod engine;
mod future;
mod line;
#[cfg(feature = "alloc")]
mod owned;

pub use future::Acquire;
#[cfg(feature = "alloc")]
pub use owned::AcquireOwned;

use engine::{Decision, Gcra};
use line::Line;

/// A rate: `rate` units per `period`, with a `burst`; validated by [`Throttle::new`].
///
/// Built with [`per_second`](Quota::per_second) or [`per_minute`](Quota::per_minute) and
/// adjusted with the chained `with_*` methods. The defaults are a period of one second and a
/// burst of 1 (strict spacing). See the [module docs](self) for exactly what a quota allows.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::throttle::Quota;
///
/// // 3 per 100 ms, up to 5 at once.
/// let quota = Quota::per_second(3)
///     .with_period(Duration::from_millis(100))
///     .with_burst(5);
/// assert_eq!(quota.rate(), 3);
/// assert_eq!(quota.period(), Duration::from_millis(100));
/// assert_eq!(quota.burst(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: u32,
    period: Duration,
    burst: u32,
}

impl Quota {
    /// `rate` units per second, burst 1.
    ///
    /// A zero rate is rejected by [`Throttle::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Quota;
    ///
    /// let quota = Quota::per_second(10);
    /// assert_eq!(quota.period(), Duration::from_secs(1));
    /// assert_eq!(quota.burst(), 1);
    /// ```
    pub const fn per_second(rate: u32) -> Self {
        Self {
            rate,
            period: Duration::from_secs(1),
            burst: 1,
        }
    }

    /// `rate` units per minute, burst 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Quota;
    ///
    /// let quota = Quota::per_minute(30);
    /// assert_eq!(quota.period(), Duration::from_secs(60));
    /// ```
    pub const fn per_minute(rate: u32) -> Self {
        Self {
            rate,
            period: Duration::from_secs(60),
            burst: 1,
        }
    }

    /// The same rate over another `period`: `rate` units per `period`.
    ///
    /// A zero period, or one longer than `u64::MAX` nanoseconds (about 584 years), is
    /// rejected by [`Throttle::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Quota;
    ///
    /// // One per hour.
    /// let quota = Quota::per_second(1).with_period(Duration::from_secs(3600));
    /// assert_eq!(quota.rate(), 1);
    /// ```
    #[must_use]
    pub const fn with_period(self, period: Duration) -> Self {
        Self { period, ..self }
    }

    /// How many units may be admitted at the same instant (default 1).
    ///
    /// An idle throttle admits `burst` units at once, then one every `period / rate`; idle
    /// time never earns more than `burst`. A zero burst is rejected by [`Throttle::new`], and
    /// so is a burst whose span `burst × period / rate` exceeds 584 years.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    ///
    /// let quota = Quota::per_second(2).with_burst(3);
    /// assert_eq!(quota.burst(), 3);
    /// ```
    #[must_use]
    pub const fn with_burst(self, burst: u32) -> Self {
        Self { burst, ..self }
    }

    /// Units per [`period`](Quota::period).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::throttle::Quota::per_minute(7).rate(), 7);
    /// ```
    pub const fn rate(&self) -> u32 {
        self.rate
    }

    /// The period the [`rate`](Quota::rate) is counted over.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// assert_eq!(dike::throttle::Quota::per_minute(7).period(), Duration::from_secs(60));
    /// ```
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// How many units may be admitted at the same instant.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::throttle::Quota::per_second(7).burst(), 1);
    /// ```
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// Validates the quota: `(interval, capacity)` in nanoseconds.
    pub(crate) const fn params(self) -> Result<(u64, u64), ConfigError> {
        if self.rate == 0 {
            return Err(ConfigError::new("rate", ConfigValue::Int(0), "at least 1"));
        }
        if self.burst == 0 {
            return Err(ConfigError::new("burst", ConfigValue::Int(0), "at least 1"));
        }
        if self.period.is_zero() {
            return Err(ConfigError::new(
                "period",
                ConfigValue::Duration(self.period),
                "longer than zero",
            ));
        }
        let period = self.period.as_nanos();
        if period > u64::MAX as u128 {
            return Err(ConfigError::new(
                "period",
                ConfigValue::Duration(self.period),
                "at most u64::MAX nanoseconds (about 584 years)",
            ));
        }
        // Rounded up: the admitted rate never exceeds the configured one. At least 1 ns.
        let interval = (period as u64).div_ceil(self.rate as u64);
        match interval.checked_mul(self.burst as u64) {
            Some(capacity) => Ok((interval, capacity)),
            None => Err(ConfigError::new(
                "burst",
                ConfigValue::Int(self.burst as i128),
                "burst × period / rate within u64::MAX nanoseconds (about 584 years)",
            )),
        }
    }
}

/// A GCRA rate limiter: admits at most `rate` units per `period`, `burst` at once.
///
/// See the [module docs](self) for the guarantee, an admission timeline and the fairness of
/// waiting. `Throttle` is `Send + Sync`; share it by reference, in an `Arc`, or as a `static`
/// (built with [`const_new`](Throttle::const_new)). Only waiting allocates (a place in the
/// FIFO line, with `alloc`); `try_acquire` never does. Every method takes the [`Timer`] to read (pass `&timer` or a
/// clone), and every call on one throttle must use the same clock.
///
/// # Examples
///
/// A throttle in a `static`, spacing starts 100 ms apart:
///
/// ```
/// use core::time::Duration;
/// use dike::throttle::{Quota, Throttle};
/// use dike::time::{ManualTimer, Timer};
///
/// static TEN_PER_SECOND: Throttle = Throttle::const_new(Quota::per_second(10));
///
/// let timer = ManualTimer::new();
/// smol::block_on(async {
///     let mut starts = Vec::new();
///     for _ in 0..3 {
///         let mut wait = Box::pin(TEN_PER_SECOND.acquire(&timer));
///         while futures_util::poll!(wait.as_mut()).is_pending() {
///             timer.advance_to_next();
///         }
///         starts.push(timer.now());
///     }
///     assert_eq!(starts, [0, 100, 200].map(Duration::from_millis));
/// });
/// ```
pub struct Throttle {
    engine: Gcra,
    quota: Quota,
    line: Line,
}

impl Throttle {
    /// A throttle for `quota`, idle since the timer's origin (a first burst is admitted at
    /// once).
    ///
    /// `const`, so a throttle can be a `static`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the parameter and the value when `rate` is 0, `burst` is 0,
    /// `period` is zero or longer than `u64::MAX` nanoseconds, or `burst × period / rate` is
    /// longer than `u64::MAX` nanoseconds (about 584 years).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::{Quota, Throttle};
    ///
    /// let throttle = Throttle::new(Quota::per_minute(30).with_burst(5))?;
    /// assert_eq!(throttle.quota().burst(), 5);
    ///
    /// let err = Throttle::new(Quota::per_second(0)).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid rate = 0: expected at least 1");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[cfg(not(loom))]
    pub const fn new(quota: Quota) -> Result<Self, ConfigError> {
        match quota.params() {
            Ok((interval, capacity)) => Ok(Self {
                engine: Gcra::new(interval, capacity),
                quota,
                line: Line::new(),
            }),
            Err(err) => Err(err),
        }
    }

    /// A throttle for `quota` (loom build: not `const`).
    #[cfg(loom)]
    pub fn new(quota: Quota) -> Result<Self, ConfigError> {
        let (interval, capacity) = quota.params()?;
        Ok(Self {
            engine: Gcra::new(interval, capacity),
            quota,
            line: Line::new(),
        })
    }

    /// A throttle for `quota`, checked at compile time: for a `static` or a `const`.
    ///
    /// With `alloc` a throttle owns its waiting line, so it has a destructor, and stable Rust
    /// cannot unwrap the `Result` of [`new`](Throttle::new) in a `static` (a `match` on it is
    /// error E0493). `const_new` validates the quota the same way and panics on an invalid
    /// one, which in a `static` or `const` is a compile error, never a run-time panic. For a
    /// quota that comes from run-time input, use [`new`](Throttle::new).
    ///
    /// # Panics
    ///
    /// When `quota` is invalid (the cases [`new`](Throttle::new) returns an error for); at
    /// compile time in a `static` or `const`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::{Quota, Throttle};
    ///
    /// static API: Throttle = Throttle::const_new(Quota::per_second(20).with_burst(5));
    /// assert_eq!(API.quota().burst(), 5);
    /// ```
    ///
    /// An invalid quota does not compile:
    ///
    /// ```compile_fail
    /// use dike::throttle::{Quota, Throttle};
    ///
    /// static NONE: Throttle = Throttle::const_new(Quota::per_second(0));
    /// ```
    #[cfg(not(loom))]
    pub const fn const_new(quota: Quota) -> Self {
        match quota.params() {
            Ok((interval, capacity)) => Self {
                engine: Gcra::new(interval, capacity),
                quota,
                line: Line::new(),
            },
            Err(err) => panic!("{}", err.parameter()),
        }
    }

    /// A throttle admitting `rate` units per second, one at a time: starts at least
    /// `1 s / rate` apart (aiometer's `max_per_second`).
    ///
    /// Shorthand for `Throttle::new(Quota::per_second(rate))`; `const`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `rate` when `rate` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    ///
    /// let throttle = Throttle::per_second(4)?;
    /// assert_eq!(throttle.interval(), Duration::from_millis(250));
    /// assert!(Throttle::per_second(0).is_err());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[cfg(not(loom))]
    pub const fn per_second(rate: u32) -> Result<Self, ConfigError> {
        Self::new(Quota::per_second(rate))
    }

    /// `rate` per second (loom build: not `const`).
    #[cfg(loom)]
    pub fn per_second(rate: u32) -> Result<Self, ConfigError> {
        Self::new(Quota::per_second(rate))
    }

    /// The quota this throttle was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::{Quota, Throttle};
    ///
    /// let quota = Quota::per_second(5).with_burst(2);
    /// assert_eq!(Throttle::new(quota)?.quota(), quota);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn quota(&self) -> Quota {
        self.quota
    }

    /// The emission interval `T = period / rate`, rounded up to a whole nanosecond: the
    /// spacing of admissions under continuous demand.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    ///
    /// // 1 s / 3 = 333 333 333.3 ns, rounded up so that 3 per second is never exceeded.
    /// assert_eq!(Throttle::per_second(3)?.interval(), Duration::from_nanos(333_333_334));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn interval(&self) -> Duration {
        Duration::from_nanos(self.engine.interval())
    }

    /// Admits one unit now, or says when it could be admitted.
    ///
    /// Never waits and never queues; lock-free (one atomic load, plus one compare-and-swap
    /// when admitted), or one short critical section on
    /// [targets without 64-bit atomics](self#targets-without-64-bit-atomics). A refusal
    /// consumes nothing.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] when the quota is spent; [`RateLimited::ready_at`] is the first instant
    /// at which one unit would be admitted if nothing else is admitted before.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::per_second(10)?;
    /// assert!(throttle.try_acquire(&timer).is_ok());
    /// let err = throttle.try_acquire(&timer).unwrap_err();
    /// assert_eq!(err.wait(), Duration::from_millis(100));
    ///
    /// timer.advance(Duration::from_millis(100));
    /// assert!(throttle.try_acquire(&timer).is_ok());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_acquire<T: Timer>(&self, timer: T) -> Result<(), RateLimited> {
        let now = timer.now();
        match self.engine.check(nanos(now), 1) {
            Decision::Ok => Ok(()),
            Decision::NotUntil(at) => Err(RateLimited::new(now, at)),
            Decision::Never => Err(RateLimited::new(now, NEVER)),
        }
    }

    /// Admits `n` units at once now, or says when they could be.
    ///
    /// The `n` units are admitted together or not at all. `n = 0` is always admitted and
    /// consumes nothing.
    ///
    /// # Errors
    ///
    /// - [`TryAcquireError::ExceedsBurst`] when `n` is larger than the burst: such a request
    ///   can never be admitted, at any time.
    /// - [`TryAcquireError::RateLimited`] when not enough of the quota is left now.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::{Quota, Throttle, TryAcquireError};
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::new(Quota::per_second(4).with_burst(4))?;
    /// assert!(throttle.try_acquire_n(&timer, 3).is_ok());
    /// match throttle.try_acquire_n(&timer, 2) {
    ///     Err(TryAcquireError::RateLimited(err)) => {
    ///         assert_eq!(err.ready_at(), Duration::from_millis(250))
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(matches!(
    ///     throttle.try_acquire_n(&timer, 5),
    ///     Err(TryAcquireError::ExceedsBurst(_))
    /// ));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn try_acquire_n<T: Timer>(&self, timer: T, n: u32) -> Result<(), TryAcquireError> {
        self.check_cost(n)?;
        if n == 0 {
            return Ok(());
        }
        let now = timer.now();
        match self.engine.check(nanos(now), n) {
            Decision::Ok => Ok(()),
            Decision::NotUntil(at) => Err(RateLimited::new(now, at).into()),
            Decision::Never => Err(RateLimited::new(now, NEVER).into()),
        }
    }

    /// Waits until one unit is admitted.
    ///
    /// The returned future joins the throttle's FIFO line when first polled (with `alloc`; see
    /// [Fairness](self#fairness)) and completes at once if it is alone and the throttle
    /// admits it. Otherwise it waits for its turn at the head of the line, then sleeps on
    /// `timer` until the instant the throttle would admit it and checks again (a
    /// [`try_acquire`](Throttle::try_acquire) may have taken that slot). Only the head sleeps,
    /// so one sleep is registered at a time however many wait.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. Nothing is reserved while waiting: the unit is taken only at the moment
    /// the future completes, so dropping it at any point consumes nothing. Dropped in the
    /// line it leaves the line; dropped at its head it passes the head to the next waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::{ManualTimer, Timer};
    ///
    /// # fn main() -> Result<(), dike::error::ConfigError> {
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::per_second(2)?;
    /// throttle.try_acquire(&timer).unwrap();
    ///
    /// smol::block_on(async {
    ///     let mut wait = Box::pin(throttle.acquire(&timer));
    ///     assert!(futures_util::poll!(wait.as_mut()).is_pending());
    ///     assert_eq!(timer.next_deadline(), Some(Duration::from_millis(500)));
    ///     timer.advance(Duration::from_millis(500));
    ///     wait.await;
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire<T: Timer>(&self, timer: T) -> Acquire<'_, T> {
        Acquire::new(self, timer, 1)
    }

    /// Waits until `n` units are admitted together.
    ///
    /// As [`acquire`](Throttle::acquire), for a cost of `n`. `n = 0` completes on the first
    /// poll and consumes nothing. The request is checked against the burst before any
    /// waiting, so an impossible cost fails at once instead of waiting forever.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Throttle::acquire): the `n` units are taken only at the
    /// moment the future completes, so dropping it at any point consumes nothing, and a
    /// dropped head passes its turn on.
    ///
    /// # Errors
    ///
    /// [`ExceedsBurst`] when `n` is larger than the burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::{Quota, Throttle};
    /// use dike::time::{ManualTimer, Timer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::new(Quota::per_second(10).with_burst(5))?;
    /// throttle.acquire_n(&timer, 5)?; // a future that is not polled does nothing
    /// assert!(throttle.acquire_n(&timer, 6).is_err());
    ///
    /// smol::block_on(async {
    ///     throttle.acquire_n(&timer, 5)?.await; // the whole burst at once
    ///     let mut wait = Box::pin(throttle.acquire_n(&timer, 2)?);
    ///     assert!(futures_util::poll!(wait.as_mut()).is_pending());
    ///     timer.advance(Duration::from_millis(200));
    ///     wait.await;
    ///     Ok::<_, dike::throttle::ExceedsBurst>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_n<T: Timer>(&self, timer: T, n: u32) -> Result<Acquire<'_, T>, ExceedsBurst> {
        self.check_cost(n)?;
        Ok(Acquire::new(self, timer, n))
    }

    /// [`acquire`](Throttle::acquire) for an `Arc<Throttle>`: the future is `'static`, to keep
    /// in a struct (a tower service's `poll_ready`) or move into a spawned task. It waits in
    /// the same FIFO line as every other waiter of the throttle.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Throttle::acquire): nothing is reserved while waiting, so
    /// dropping it at any point consumes nothing; dropped at the head of the line it passes
    /// its turn on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::{ManualTimer, Timer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dike::error::ConfigError> {
    /// let timer = ManualTimer::new();
    /// let throttle = Arc::new(Throttle::per_second(2)?);
    /// throttle.try_acquire(&timer).unwrap();
    /// let task = tokio::spawn(throttle.acquire_owned(timer.clone()));
    /// tokio::task::yield_now().await;
    /// assert_eq!(timer.next_deadline(), Some(Duration::from_millis(500)));
    /// timer.advance(Duration::from_millis(500));
    /// task.await.unwrap();
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "alloc")]
    pub fn acquire_owned<T: Timer>(self: &alloc::sync::Arc<Self>, timer: T) -> AcquireOwned<T> {
        AcquireOwned::new(alloc::sync::Arc::clone(self), timer, 1)
    }

    /// Whether nobody waits in the throttle's line, without a lock (a hint).
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn line_is_empty(&self) -> bool {
        self.line.is_empty()
    }

    fn check_cost(&self, n: u32) -> Result<(), ExceedsBurst> {
        if n > self.quota.burst {
            Err(ExceedsBurst {
                n,
                burst: self.quota.burst,
            })
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("quota", &self.quota)
            .field("interval", &self.interval())
            .field("waiting", &self.line.waiting())
            .finish()
    }
}

/// Whole nanoseconds in `d`, saturating at `u64::MAX` (584 years).
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// The `ready_at` of a refusal that can never be admitted: no reachable instant is
/// `u64::MAX` nanoseconds, since the engine's horizon is `u64::MAX - capacity` and every
/// reachable refusal instant is at most the horizon.
pub(crate) const NEVER: u64 = u64::MAX;

/// The error of [`Throttle::try_acquire`]: the quota is spent for now.
///
/// Its `Debug` shows the two instants and the wait, all as durations on the timer's clock:
/// `RateLimited { now: 1s, ready_at: 1.25s, wait: 250ms }`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::throttle::Throttle;
/// use dike::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let throttle = Throttle::per_second(4)?;
/// throttle.try_acquire(&timer).unwrap();
/// let err = throttle.try_acquire(&timer).unwrap_err();
/// assert_eq!(err.ready_at(), Duration::from_millis(250));
/// assert_eq!(err.to_string(), "rate limited: ready in 250ms");
/// assert_eq!(
///     format!("{err:?}"),
///     "RateLimited { now: 0ns, ready_at: 250ms, wait: 250ms }"
/// );
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    now: Duration,
    /// Nanoseconds, or [`NEVER`]; converted only when asked, to keep refusals cheap.
    ready_at: u64,
}

impl RateLimited {
    #[inline]
    pub(crate) const fn new(now: Duration, ready_at: u64) -> Self {
        Self { now, ready_at }
    }

    /// The first instant (on the timer's clock) at which the refused request would be
    /// admitted, if nothing else is admitted before it.
    ///
    /// [`Duration::MAX`] means never: the throttle's clock has reached its end (see
    /// [the end of time](self#the-end-of-time)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// timer.advance(Duration::from_secs(7));
    /// let throttle = Throttle::per_second(1)?;
    /// throttle.try_acquire(&timer).unwrap();
    /// let err = throttle.try_acquire(&timer).unwrap_err();
    /// assert_eq!(err.ready_at(), Duration::from_secs(8));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn ready_at(&self) -> Duration {
        if self.is_never() {
            Duration::MAX
        } else {
            Duration::from_nanos(self.ready_at)
        }
    }

    /// How long from the refusal until [`ready_at`](RateLimited::ready_at): a `Retry-After`.
    /// [`Duration::MAX`] means never.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// timer.advance(Duration::from_secs(7));
    /// let throttle = Throttle::per_second(1)?;
    /// throttle.try_acquire(&timer).unwrap();
    /// assert_eq!(throttle.try_acquire(&timer).unwrap_err().wait(), Duration::from_secs(1));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn wait(&self) -> Duration {
        if self.is_never() {
            Duration::MAX
        } else {
            self.ready_at().saturating_sub(self.now)
        }
    }

    /// Whether the request can never be admitted: the throttle's clock has reached its end
    /// (see [the end of time](self#the-end-of-time)), so [`ready_at`](RateLimited::ready_at)
    /// and [`wait`](RateLimited::wait) are [`Duration::MAX`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::per_second(1)?;
    /// throttle.try_acquire(&timer).unwrap();
    /// assert!(!throttle.try_acquire(&timer).unwrap_err().is_never());
    ///
    /// timer.advance(Duration::MAX); // the end of time
    /// throttle.try_acquire(&timer).unwrap(); // what is left of the burst
    /// let err = throttle.try_acquire(&timer).unwrap_err();
    /// assert!(err.is_never());
    /// assert_eq!(err.to_string(), "rate limited: never ready (the clock has reached its end)");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn is_never(&self) -> bool {
        self.ready_at == NEVER
    }
}

impl fmt::Debug for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimited")
            .field("now", &self.now)
            .field("ready_at", &self.ready_at())
            .field("wait", &self.wait())
            .finish()
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            f.write_str("rate limited: never ready (the clock has reached its end)")
        } else {
            write!(f, "rate limited: ready in {:?}", self.wait())
        }
    }
}

impl core::error::Error for RateLimited {}

/// The error of [`Throttle::acquire_n`]: the cost is larger than the burst, so it can never
/// be admitted.
///
/// # Examples
///
/// ```
/// use dike::throttle::{Quota, Throttle};
/// use dike::time::ManualTimer;
///
/// let throttle = Throttle::new(Quota::per_second(10).with_burst(4))?;
/// let err = throttle.acquire_n(ManualTimer::new(), 5).unwrap_err();
/// assert_eq!((err.n(), err.burst()), (5, 4));
/// assert_eq!(err.to_string(), "cost 5 exceeds the burst of 4: it can never be admitted");
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cost {n} exceeds the burst of {burst}: it can never be admitted")]
pub struct ExceedsBurst {
    n: u32,
    burst: u32,
}

impl ExceedsBurst {
    /// The cost asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let throttle = Throttle::per_second(10)?;
    /// assert_eq!(throttle.acquire_n(ManualTimer::new(), 2).unwrap_err().n(), 2);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn n(&self) -> u32 {
        self.n
    }

    /// The throttle's burst, the largest cost it can ever admit.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let throttle = Throttle::per_second(10)?;
    /// assert_eq!(throttle.acquire_n(ManualTimer::new(), 2).unwrap_err().burst(), 1);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn burst(&self) -> u32 {
        self.burst
    }
}

/// The error of [`Throttle::try_acquire_n`].
///
/// # Examples
///
/// ```
/// use dike::throttle::{Throttle, TryAcquireError};
/// use dike::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let throttle = Throttle::per_second(10)?;
/// throttle.try_acquire_n(&timer, 1).unwrap();
/// let err = throttle.try_acquire_n(&timer, 1).unwrap_err();
/// assert!(matches!(err, TryAcquireError::RateLimited(_)));
/// assert_eq!(err.to_string(), "rate limited: ready in 100ms");
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryAcquireError {
    /// Not enough of the quota is left now; it will be at [`RateLimited::ready_at`].
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The cost is larger than the burst: it can never be admitted.
    #[error(transparent)]
    ExceedsBurst(#[from] ExceedsBurst),
}

#[cfg(test)]
mod tests;
