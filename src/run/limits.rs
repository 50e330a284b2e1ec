//! [`Limits`]: how many tasks may run at once and how fast they may start.

use core::fmt;
use core::future::Future;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use alloc::boxed::Box;

use crate::error::{ConfigError, ConfigValue};
use crate::gate::Gate;
use crate::throttle::{Quota, Throttle};
use crate::time::Timer;

/// The limits of one run: `max_at_once` tasks in flight, `max_per_second` starts per second
/// (with a `burst`), and optionally a shared [`Gate`] or [`Throttle`].
///
/// A `Copy` value built with chained setters; every limit left unset is unlimited, so
/// [`Limits::new()`] runs everything at once, like `join_all`. The type parameter records
/// whether a rate is set and on which timer:
///
/// - `Limits<'_, NoRate>` (the default): no start-time limit, **no timer needed**;
/// - `Limits<'_, Rate>`: a rate is set ([`max_per_second`](Limits::max_per_second)) but not
///   yet its timer; the run functions do not accept it until [`timer`](Limits::timer) is
///   called (a compile error, not a run that ignores its rate);
/// - `Limits<'_, Paced<'_, T>>`: starts paced on the timer `T`, by an own rate or by a shared
///   [`Throttle`] ([`throttle`](Limits::throttle)).
///
/// Numbers give **each run its own limits**: two runs with `max_at_once(5)` may have 10 tasks
/// in flight together. To hold a limit across runs (or across tasks and threads), share a
/// [`Gate`] ([`gate`](Limits::gate)) or a [`Throttle`] ([`throttle`](Limits::throttle)).
/// Both kinds may be combined: a task then needs a slot of its run, a permit of the shared
/// gate, and its start time, taken in that order (aiometer's order: concurrency first, then
/// the start time).
///
/// # Examples
///
/// ```
/// use dike::run::Limits;
/// use dike::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let at_most_5 = Limits::new().max_at_once(5)?; // no timer needed
/// let paced = Limits::new()
///     .max_at_once(5)?
///     .max_per_second(10.0)?
///     .burst(2)?
///     .timer(&timer);
/// # let _ = (at_most_5, paced);
///
/// let err = Limits::new().max_per_second(0.0).unwrap_err();
/// assert_eq!(err.to_string(), "invalid max_per_second = 0: expected a finite rate above 0");
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Limits<'a, P = NoRate> {
    max_at_once: Option<NonZeroUsize>,
    gate: Option<&'a Gate>,
    pace: P,
}

/// The pace of [`Limits`] without a rate: tasks start as soon as they have a slot.
///
/// # Examples
///
/// ```
/// let limits: dike::run::Limits<'_, dike::run::NoRate> = dike::run::Limits::new();
/// # let _ = limits;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoRate;

/// The pace of [`Limits`] with a rate but no timer yet: call [`Limits::timer`].
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, Rate};
///
/// let limits: Limits<'_, Rate> = Limits::new().max_per_second(2.5)?;
/// assert_eq!(limits.rate().per_second(), 2.5);
/// assert_eq!(limits.rate().burst(), 1);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
    quota: Quota,
}

impl Rate {
    /// Starts per second, as given.
    ///
    /// # Examples
    ///
    /// ```
    /// let limits = dike::run::Limits::new().max_per_second(0.5)?;
    /// assert_eq!(limits.rate().per_second(), 0.5);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn per_second(&self) -> f64 {
        self.per_second
    }

    /// How many tasks may start at the same instant (default 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let limits = dike::run::Limits::new().max_per_second(4.0)?.burst(3)?;
    /// assert_eq!(limits.rate().burst(), 3);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn burst(&self) -> u32 {
        self.quota.burst()
    }

    /// The spacing of starts, `1 s / max_per_second` rounded up to a whole nanosecond.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// let limits = dike::run::Limits::new().max_per_second(3.0)?;
    /// assert_eq!(limits.rate().interval(), Duration::from_nanos(333_333_334));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn interval(&self) -> Duration {
        let q = self.quota;
        Duration::from_nanos((q.period().as_nanos() as u64).div_ceil(u64::from(q.rate())))
    }
}

/// The pace of [`Limits`] with a timer: an own rate, or a shared [`Throttle`].
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, Paced};
/// use dike::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let limits: Limits<'_, Paced<'_, &ManualTimer>> =
///     Limits::new().max_per_second(10.0)?.timer(&timer);
/// # let _ = limits;
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Paced<'a, T> {
    rate: RateSource<'a>,
    timer: T,
}

#[derive(Clone, Copy)]
enum RateSource<'a> {
    Own(Quota),
    Shared(&'a Throttle),
}

impl fmt::Debug for RateSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Own(quota) => f.debug_tuple("Own").field(quota).finish(),
            Self::Shared(throttle) => f.debug_tuple("Shared").field(throttle).finish(),
        }
    }
}

impl<T> fmt::Debug for Paced<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paced")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl<P: fmt::Debug> fmt::Debug for Limits<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("max_at_once", &self.max_at_once)
            .field("gate", &self.gate)
            .field("pace", &self.pace)
            .finish()
    }
}

impl Default for Limits<'_, NoRate> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Limits<'a, NoRate> {
    /// No limits: every task starts at once (set some with the chained methods).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, run_all};
    ///
    /// # smol::block_on(async {
    /// let out = run_all((0..3).map(|i| async move { i }), Limits::new()).await;
    /// assert_eq!(out, [0, 1, 2]);
    /// # });
    /// ```
    pub const fn new() -> Self {
        Self {
            max_at_once: None,
            gate: None,
            pace: NoRate,
        }
    }

    /// At most `max_per_second` starts per second, spaced `1 s / max_per_second` apart
    /// (aiometer's `max_per_second`); fractional rates such as `0.5` (one start every two
    /// seconds) are allowed. Needs a timer: follow with [`timer`](Limits::timer).
    ///
    /// The spacing is rounded up to a whole nanosecond, so the rate is never exceeded; rates
    /// above 10⁹ per second are one start per nanosecond.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `max_per_second` and the value when it is not finite, not above
    /// 0, or so small that one start would take longer than `u64::MAX` nanoseconds (about 584
    /// years).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::Limits;
    ///
    /// assert!(Limits::new().max_per_second(0.5).is_ok());
    /// for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
    ///     let err = Limits::new().max_per_second(bad).unwrap_err();
    ///     assert_eq!(err.parameter(), "max_per_second");
    /// }
    /// ```
    pub fn max_per_second(self, max_per_second: f64) -> Result<Limits<'a, Rate>, ConfigError> {
        let bad = |expected| {
            ConfigError::new(
                "max_per_second",
                ConfigValue::Float(max_per_second),
                expected,
            )
        };
        if !max_per_second.is_finite() || max_per_second <= 0.0 {
            return Err(bad("a finite rate above 0"));
        }
        let whole = max_per_second as u32;
        let quota = if f64::from(whole) == max_per_second {
            Quota::per_second(whole)
        } else {
            let nanos = 1e9 / max_per_second;
            if nanos >= u64::MAX as f64 {
                return Err(bad("at least one start per u64::MAX nanoseconds"));
            }
            let truncated = nanos as u64;
            let interval = if (truncated as f64) < nanos {
                truncated + 1
            } else {
                truncated
            };
            Quota::per_second(1).with_period(Duration::from_nanos(interval.max(1)))
        };
        // Checked here once, so that a run's own throttle is always built from a valid quota.
        if Throttle::new(quota).is_err() {
            return Err(bad("at least one start per u64::MAX nanoseconds"));
        }
        Ok(Limits {
            max_at_once: self.max_at_once,
            gate: self.gate,
            pace: Rate {
                per_second: max_per_second,
                quota,
            },
        })
    }

    /// Paces starts with a shared `throttle`, read on `timer`: the rate then holds across
    /// every run (and every other user) of that throttle.
    ///
    /// Only one task of a run waits on the throttle at a time (the next to start), so a run
    /// adds one waiter to the throttle, whatever its size. Use the same timer (or clones of
    /// it) for every call on one throttle.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, run_all};
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::per_second(10)?;
    /// let limits = Limits::new().max_at_once(2)?.throttle(&throttle, &timer);
    /// # let _ = limits;
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn throttle<T: Timer>(self, throttle: &'a Throttle, timer: T) -> Limits<'a, Paced<'a, T>> {
        Limits {
            max_at_once: self.max_at_once,
            gate: self.gate,
            pace: Paced {
                rate: RateSource::Shared(throttle),
                timer,
            },
        }
    }
}

impl<'a> Limits<'a, Rate> {
    /// How many tasks may start at the same instant (default 1: strictly spaced starts, as
    /// aiometer). An idle run starts `burst` tasks at once, then one every interval; see
    /// [`throttle`](crate::throttle) for the exact guarantee.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `burst` when it is 0, or when `burst` intervals exceed
    /// `u64::MAX` nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::Limits;
    ///
    /// let limits = Limits::new().max_per_second(10.0)?.burst(5)?;
    /// assert_eq!(limits.rate().burst(), 5);
    /// let err = Limits::new().max_per_second(10.0)?.burst(0).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid burst = 0: expected at least 1");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn burst(mut self, burst: u32) -> Result<Self, ConfigError> {
        let quota = self.pace.quota.with_burst(burst);
        Throttle::new(quota)?;
        self.pace.quota = quota;
        Ok(self)
    }

    /// The rate set by [`max_per_second`](Limits::max_per_second).
    ///
    /// # Examples
    ///
    /// ```
    /// let limits = dike::run::Limits::new().max_per_second(20.0)?;
    /// assert_eq!(limits.rate().per_second(), 20.0);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn rate(&self) -> Rate {
        self.pace
    }

    /// The timer the rate is read and waited on. Each run gets a fresh schedule of its own:
    /// its first `burst` tasks start at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::Limits;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = Limits::new().max_per_second(10.0)?.timer(timer.clone());
    /// # let _ = limits;
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn timer<T: Timer>(self, timer: T) -> Limits<'a, Paced<'a, T>> {
        Limits {
            max_at_once: self.max_at_once,
            gate: self.gate,
            pace: Paced {
                rate: RateSource::Own(self.pace.quota),
                timer,
            },
        }
    }
}

impl<'a, P> Limits<'a, P> {
    /// At most `max_at_once` tasks of this run in flight at once (aiometer's `max_at_once`).
    ///
    /// A finished task's output that the run has not handed out yet keeps its slot (see
    /// [Backpressure](super#backpressure)).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `max_at_once` when it is 0 (a run that could start nothing
    /// would hang).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::Limits;
    ///
    /// assert_eq!(Limits::new().max_at_once(5)?.get_max_at_once(), Some(5));
    /// let err = Limits::new().max_at_once(0).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid max_at_once = 0: expected at least 1");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn max_at_once(self, max_at_once: usize) -> Result<Self, ConfigError> {
        match NonZeroUsize::new(max_at_once) {
            Some(n) => Ok(Self {
                max_at_once: Some(n),
                ..self
            }),
            None => Err(ConfigError::new(
                "max_at_once",
                ConfigValue::Int(0),
                "at least 1",
            )),
        }
    }

    /// The `max_at_once` set, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::run::Limits::new().get_max_at_once(), None);
    /// ```
    pub fn get_max_at_once(&self) -> Option<usize> {
        self.max_at_once.map(NonZeroUsize::get)
    }

    /// Each task also holds a permit of the shared `gate` while it runs, so the gate's limit
    /// holds across every run (and every other user) of that gate.
    ///
    /// Only one task of a run waits on the gate at a time (the next to start). The permit is
    /// taken after the run's own slot and before the start time, and released when the task
    /// finishes or is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    /// use dike::run::{Limits, run_all};
    ///
    /// let gate = Gate::new(3);
    /// # smol::block_on(async {
    /// let (a, b) = futures_util::join!(
    ///     run_all((0..10).map(|i| async move { i }), Limits::new().gate(&gate)),
    ///     run_all((0..10).map(|i| async move { i }), Limits::new().gate(&gate)),
    /// );
    /// assert_eq!(a, b);
    /// assert!(gate.stats().peak_in_use <= 3);
    /// # });
    /// ```
    pub fn gate(self, gate: &'a Gate) -> Self {
        Self {
            gate: Some(gate),
            ..self
        }
    }

    pub(crate) fn parts(self) -> (usize, Option<&'a Gate>, P) {
        (
            self.max_at_once.map_or(usize::MAX, NonZeroUsize::get),
            self.gate,
            self.pace,
        )
    }
}

/// A pace the run functions accept: [`NoRate`] or [`Paced`] (not a [`Rate`] without its
/// timer). Sealed.
///
/// A rate without its timer does not compile:
///
/// ```compile_fail
/// use dike::run::{Limits, run_all};
///
/// let limits = Limits::new().max_per_second(10.0)?; // no `.timer(..)`
/// let run = run_all((0..3).map(|i| async move { i }), limits);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
///
/// # Examples
///
/// ```
/// fn takes_any<'a, P: dike::run::Pace<'a>>(limits: dike::run::Limits<'a, P>) {
///     # let _ = limits;
/// }
/// takes_any(dike::run::Limits::new());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pace a run can use",
    label = "a rate needs its timer",
    note = "call `.timer(&timer)` after `.max_per_second(..)`"
)]
pub trait Pace<'a>: private::Sealed {
    /// The per-run state that waits for start times.
    #[doc(hidden)]
    type Pacer: Pacer;
    /// Makes the per-run state.
    #[doc(hidden)]
    fn into_pacer(self) -> Self::Pacer;
}

/// The per-run start-time state of a [`Pace`]. Sealed; internal.
#[doc(hidden)]
pub trait Pacer: private::Sealed {
    /// Waits for the next start time; `Ready` spends it.
    #[doc(hidden)]
    fn poll_start(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

mod private {
    pub trait Sealed {}
}

impl private::Sealed for NoRate {}
impl<T> private::Sealed for Paced<'_, T> {}
impl<T: Timer> private::Sealed for ThrottlePacer<'_, T> {}

impl Pace<'_> for NoRate {
    type Pacer = NoRate;

    #[inline]
    fn into_pacer(self) -> NoRate {
        NoRate
    }
}

impl Pacer for NoRate {
    #[inline(always)]
    fn poll_start(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

impl<'a, T: Timer> Pace<'a> for Paced<'a, T> {
    type Pacer = ThrottlePacer<'a, T>;

    fn into_pacer(self) -> ThrottlePacer<'a, T> {
        let throttle = match self.rate {
            // Validated when the rate was set, so `new` cannot fail here.
            RateSource::Own(quota) => Throttle::new(quota).ok().map(Own::Own),
            RateSource::Shared(throttle) => Some(Own::Shared(throttle)),
        };
        ThrottlePacer {
            throttle,
            timer: self.timer,
            sleep: None,
        }
    }
}

enum Own<'a> {
    Own(Throttle),
    Shared(&'a Throttle),
}

impl Own<'_> {
    fn get(&self) -> &Throttle {
        match self {
            Own::Own(throttle) => throttle,
            Own::Shared(throttle) => throttle,
        }
    }
}

/// Waits for start times on a throttle (internal): `try_acquire`, and when refused, a sleep until the
/// instant it names (the public [`Throttle`] API, so the throttle may be owned).
///
/// The sleep is boxed, so the pacer (and a run over an `Unpin` input) is `Unpin` whatever
/// the timer: `amap(..).next().await` works without pinning. One allocation per wait, and
/// only a start that has to wait waits.
#[doc(hidden)]
pub struct ThrottlePacer<'a, T: Timer> {
    throttle: Option<Own<'a>>,
    timer: T,
    sleep: Option<Pin<Box<T::Sleep>>>,
}

// Nothing in it is pinned structurally (the sleep is boxed), so moving it is fine.
impl<T: Timer> Unpin for ThrottlePacer<'_, T> {}

impl<T: Timer> fmt::Debug for ThrottlePacer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottlePacer")
            .field("throttle", &self.throttle.as_ref().map(Own::get))
            .field("sleeping", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Timer> Pacer for ThrottlePacer<'_, T> {
    fn poll_start(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(throttle) = this.throttle.as_ref() else {
            return Poll::Ready(());
        };
        let throttle = throttle.get();
        // As `Throttle::acquire`: check, sleep until the instant named, check again. A timer
        // whose sleeps end before its clock reaches the deadline makes us yield, not spin.
        for _ in 0..3 {
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            match throttle.try_acquire(&this.timer) {
                Ok(()) => return Poll::Ready(()),
                Err(limited) => {
                    this.sleep = Some(Box::pin(this.timer.sleep_until(limited.ready_at())));
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
