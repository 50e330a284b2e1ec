//! Circuit breaker: stop calling a dependency that keeps failing, probe it after a break,
//! resume when it answers.
//!
//! ```
//! use core::time::Duration;
//! use dike::breaker::{BreakDuration, Breaker, BreakerState, CountWindow};
//! use dike::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let breaker = Breaker::new(CountWindow::<20>::new())
//!     .with_failure_ratio(0.5)?
//!     .try_with_min_calls(10)?
//!     .with_break(BreakDuration::fixed(Duration::from_secs(5)));
//!
//! for _ in 0..10 {
//!     breaker.try_acquire(&timer).unwrap().failure();
//! }
//! assert_eq!(breaker.state(&timer), BreakerState::Open);
//! let refused = breaker.try_acquire(&timer).unwrap_err();
//! assert_eq!(refused.retry_after(), Some(Duration::from_secs(5)));
//!
//! timer.advance(Duration::from_secs(5));
//! let probe = breaker.try_acquire(&timer).expect("half-open: one probe passes");
//! probe.success();
//! assert_eq!(breaker.state(&timer), BreakerState::Closed);
//! # Ok::<(), dike::error::ConfigError>(())
//! ```
//!
//! # Behaviour
//!
//! - **Closed**: every call passes; its result goes into the window, a [`CountWindow`] (the
//!   last `N` calls) or a [`TimeWindow`] (the calls of the last `B` buckets on the timer).
//!   Once the window holds at least [`min_calls`](Breaker::try_with_min_calls) calls and
//!   `failures ≥ ratio × calls`, the breaker opens, on that very call. A success slower than
//!   [`with_slow_call`](Breaker::with_slow_call)'s threshold counts as a failure.
//! - **Open**: every call is refused at once with [`BreakerOpen`], whose
//!   [`retry_after`](BreakerOpen::retry_after) says when the break ends. The break is a
//!   [`BreakDuration`]: fixed, or growing with each consecutive opening (first, factor,
//!   cap).
//! - **Half-open** (the first call after the break): up to
//!   [`probes`](Breaker::try_with_probes) calls pass at once, each holding a slot through
//!   its [`Call`] permit. All `probes` succeed: closed, window cleared. One fails: open
//!   again, for the next break. A permit dropped without a result frees its slot; a probe
//!   that never answers has its slot back once the half-open round has lasted one break
//!   duration, so the breaker never stays half-open for ever.
//! - **Late results**: a call admitted before a transition (say, before the breaker opened)
//!   that reports after it is counted in [`BreakerStats::late`] and changes nothing: it
//!   cannot re-open, extend a break or close the breaker.
//! - **By hand**: [`isolate`](Breaker::isolate) opens until [`close`](Breaker::close).
//!
//! Only a reported failure counts: a dropped [`Call`], or one reported with
//! [`ignore`](Call::ignore) (a cancelled caller, another layer's refusal such as a full
//! gate), says nothing about the dependency.
//!
//! # Defaults
//!
//! | setting | default | why |
//! |---|---|---|
//! | failure ratio | 0.5 | resilience4j, Polly |
//! | minimum calls | 10 | a few failures among few calls are noise |
//! | break | 5 s fixed | Polly's default |
//! | probes | 1 | resilience4j permits 10; one is the least load on a sick dependency |
//! | slow call | none | |
//!
//! # Cancel safety
//!
//! [`Breaker::call`]'s future may be dropped at any time: the permit it holds is dropped
//! with it, unreported (a probe's slot is freed).
//!
//! No allocation, no lock held across user code: the breaker works in `no_std`.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

mod engine;
mod window;

pub use engine::{BreakDuration, BreakerState};
pub use window::{CountWindow, TimeWindow, Window};

use crate::error::{ConfigError, ConfigValue};
use crate::sync::Mutex;
use crate::time::Timer;
use engine::{Config, Engine, Report, Ticket};

/// A circuit breaker over a failure [`Window`].
///
/// Build with [`Breaker::new`] and the `with_*` methods; share by reference or `Arc`
/// (`Send + Sync`). Admit a call with [`try_acquire`](Breaker::try_acquire) (a permit you
/// report on) or wrap a future with [`call`](Breaker::call).
///
/// # Examples
///
/// ```
/// use dike::breaker::{Breaker, BreakerError, CountWindow};
/// use dike::time::ManualTimer;
///
/// static BREAKER: Breaker<CountWindow<20>> = Breaker::new(CountWindow::new());
///
/// let timer = ManualTimer::new();
/// let result = smol::block_on(BREAKER.call(&timer, async { Err::<(), _>("503") }));
/// assert_eq!(result, Err(BreakerError::Failed("503")));
/// assert_eq!(BREAKER.stats().failures, 1);
/// ```
pub struct Breaker<W = CountWindow<100>> {
    config: Config,
    engine: Mutex<Engine<W>>,
}

impl<W: Window> fmt::Debug for Breaker<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = self.engine.with(|engine| engine.window.clone());
        f.debug_struct("Breaker")
            .field("config", &self.config)
            .field("window", &engine)
            .finish()
    }
}

impl<W: Window> Breaker<W> {
    /// A closed breaker over `window`, with the [defaults](self#defaults).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, BreakerState, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<50>::new());
    /// assert_eq!(breaker.state(&dike::time::ManualTimer::new()), BreakerState::Closed);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(window: W) -> Self {
        Self {
            config: DEFAULT_CONFIG,
            engine: Mutex::new(Engine::new(window)),
        }
    }

    /// A closed breaker over `window`, with the [defaults](self#defaults).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, BreakerState, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<50>::new());
    /// assert_eq!(breaker.state(&dike::time::ManualTimer::new()), BreakerState::Closed);
    /// ```
    #[cfg(loom)]
    pub fn new(window: W) -> Self {
        Self {
            config: DEFAULT_CONFIG,
            engine: Mutex::new(Engine::new(window)),
        }
    }

    /// Opens once `failures ≥ ratio × calls` (default 0.5).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `failure_ratio` unless `0 < ratio ≤ 1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<10>::new()).with_failure_ratio(0.25)?;
    /// assert!(Breaker::new(CountWindow::<10>::new()).with_failure_ratio(0.0).is_err());
    /// # let _ = breaker;
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn with_failure_ratio(mut self, ratio: f64) -> Result<Self, ConfigError> {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(ConfigError::new(
                "failure_ratio",
                ConfigValue::Float(ratio),
                "more than 0 and at most 1",
            ));
        }
        self.config.failure_ratio = ratio;
        Ok(self)
    }

    /// Judges the ratio only once the window holds at least `min_calls` calls (default 10).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `min_calls` when it is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<10>::new()).try_with_min_calls(5)?;
    /// assert!(Breaker::new(CountWindow::<10>::new()).try_with_min_calls(0).is_err());
    /// # let _ = breaker;
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn try_with_min_calls(mut self, min_calls: u32) -> Result<Self, ConfigError> {
        if min_calls == 0 {
            return Err(ConfigError::new(
                "min_calls",
                ConfigValue::Int(0),
                "at least 1",
            ));
        }
        self.config.min_calls = min_calls;
        Ok(self)
    }

    /// How many probes pass at once while half-open, and how many must succeed to close
    /// (default 1).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `probes` when it is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<10>::new()).try_with_probes(3)?;
    /// # let _ = breaker;
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn try_with_probes(mut self, probes: u32) -> Result<Self, ConfigError> {
        if probes == 0 {
            return Err(ConfigError::new(
                "probes",
                ConfigValue::Int(0),
                "at least 1",
            ));
        }
        self.config.probes = probes;
        Ok(self)
    }

    /// How long to stay open (default: 5 s, fixed).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::breaker::{BreakDuration, Breaker, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<10>::new())
    ///     .with_break(BreakDuration::exponential(Duration::from_secs(5), 2.0, Duration::from_secs(60))?);
    /// # let _ = breaker;
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn with_break(mut self, breaks: BreakDuration) -> Self {
        self.config.breaks = breaks;
        self
    }

    /// Counts a success that took longer than `threshold` (from the permit to its report,
    /// on the timer) as a failure. Off by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::breaker::{Breaker, CountWindow};
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let breaker = Breaker::new(CountWindow::<10>::new()).with_slow_call(Duration::from_secs(1));
    /// let call = breaker.try_acquire(&timer).unwrap();
    /// timer.advance(Duration::from_secs(2));
    /// call.success();
    /// assert_eq!(breaker.stats().failures, 1, "slow");
    /// ```
    pub const fn with_slow_call(mut self, threshold: Duration) -> Self {
        self.config.slow_call = Some(threshold);
        self
    }

    /// Calls `hook` on every state change (Polly's OnCircuitOpened, OnCircuitHalfOpened,
    /// OnCircuitClosed, plus isolation), outside the breaker's lock. A fn pointer, so the
    /// breaker stays `const`-constructible; unset, it costs one branch.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use dike::breaker::{Breaker, BreakerEvent, CountWindow};
    ///
    /// static OPENED: AtomicU32 = AtomicU32::new(0);
    /// fn on_event(event: BreakerEvent) {
    ///     if event == BreakerEvent::Opened {
    ///         OPENED.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let breaker = Breaker::new(CountWindow::<4>::new())
    ///     .try_with_min_calls(1)?
    ///     .with_on_event(on_event);
    /// breaker.try_acquire(dike::time::ManualTimer::new()).unwrap().failure();
    /// assert_eq!(OPENED.load(Ordering::Relaxed), 1);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn with_on_event(mut self, hook: fn(BreakerEvent)) -> Self {
        self.config.on_event = Some(hook);
        self
    }

    /// Admits one call now, or refuses it. The returned [`Call`] permit is the call's
    /// feedback: report [`success`](Call::success), [`failure`](Call::failure) or
    /// [`ignore`](Call::ignore); dropping it unreported is `ignore`.
    ///
    /// # Errors
    ///
    /// [`BreakerOpen`] while open (with the time left), while half-open with every probe
    /// slot taken, or while isolated.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// use dike::time::ManualTimer;
    ///
    /// let breaker = Breaker::new(CountWindow::<10>::new());
    /// let timer = ManualTimer::new();
    /// let call = breaker.try_acquire(&timer)?;
    /// call.success();
    /// # Ok::<(), dike::breaker::BreakerOpen>(())
    /// ```
    pub fn try_acquire<T: Timer>(&self, timer: T) -> Result<Call<'_, W, T>, BreakerOpen> {
        let now = timer.now();
        let (result, transition) = self.engine.with(|e| e.acquire(now, &self.config));
        self.emit(transition);
        match result {
            Ok(ticket) => Ok(Call {
                breaker: self,
                timer,
                start: now,
                ticket,
                reported: false,
            }),
            Err(retry_after) => Err(BreakerOpen { retry_after }),
        }
    }

    /// Runs `fut` through the breaker: refused at once while open, otherwise its `Ok`
    /// counts as a success (a failure if slow) and its `Err` as a failure. The permit is
    /// taken at the first poll.
    ///
    /// For other classifications (an `Err` that says nothing about the dependency), use
    /// [`try_acquire`](Breaker::try_acquire) and report by hand.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `fut` and the permit, unreported: a probe's slot is freed,
    /// and nothing is counted.
    ///
    /// # Errors
    ///
    /// [`BreakerError::Open`] when refused, [`BreakerError::Failed`] with `fut`'s error.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// use dike::time::ManualTimer;
    ///
    /// let breaker = Breaker::new(CountWindow::<10>::new());
    /// let timer = ManualTimer::new();
    /// let value = smol::block_on(breaker.call(&timer, async { Ok::<_, ()>(3) }));
    /// assert_eq!(value, Ok(3));
    /// ```
    pub fn call<T, F, R, E>(&self, timer: T, fut: F) -> BreakerCall<'_, W, T, F>
    where
        T: Timer,
        F: Future<Output = Result<R, E>>,
    {
        BreakerCall {
            breaker: self,
            timer: Some(timer),
            permit: None,
            fut,
            done: false,
        }
    }

    /// The state at `timer.now()`. An open breaker whose break has ended reads as
    /// half-open: the next call is a probe.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, BreakerState, CountWindow};
    /// use dike::time::ManualTimer;
    ///
    /// let breaker = Breaker::new(CountWindow::<10>::new());
    /// breaker.isolate();
    /// assert_eq!(breaker.state(&ManualTimer::new()), BreakerState::Isolated);
    /// ```
    pub fn state<T: Timer>(&self, timer: T) -> BreakerState {
        let now = timer.now();
        self.engine.with(|e| e.state(now))
    }

    /// Opens the breaker by hand until [`close`](Breaker::close): every call is refused,
    /// with no `retry_after`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<10>::new());
    /// breaker.isolate();
    /// let err = breaker.try_acquire(dike::time::ManualTimer::new()).unwrap_err();
    /// assert_eq!(err.retry_after(), None);
    /// ```
    pub fn isolate(&self) {
        self.engine.with(Engine::isolate);
        if let Some(hook) = self.config.on_event {
            hook(BreakerEvent::Isolated);
        }
    }

    /// Closes the breaker by hand (from any state), clears the window and restarts the
    /// break lengths from the first. Calls admitted before are late.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<10>::new());
    /// breaker.isolate();
    /// breaker.close();
    /// assert!(breaker.try_acquire(dike::time::ManualTimer::new()).is_ok());
    /// ```
    pub fn close(&self) {
        self.engine.with(Engine::close);
        if let Some(hook) = self.config.on_event {
            hook(BreakerEvent::Closed);
        }
    }

    /// A snapshot of the counters. `calls` and `failures` are those of the window as last
    /// recorded (a time window's old buckets leave it at the next call).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, CountWindow};
    /// let breaker = Breaker::new(CountWindow::<10>::new());
    /// let timer = dike::time::ManualTimer::new();
    /// breaker.try_acquire(&timer).unwrap().failure();
    /// let stats = breaker.stats();
    /// assert_eq!((stats.calls, stats.failures), (1, 1));
    /// ```
    pub fn stats(&self) -> BreakerStats {
        self.engine.with(|e| {
            let (calls, failures) = e.window.counts(e.last_now);
            BreakerStats {
                calls,
                failures,
                probes_in_flight: e.probes_in_flight(),
                rejected: e.counters.rejected,
                late: e.counters.late,
                opened: e.counters.opened,
            }
        })
    }

    fn report(&self, now: Duration, start: Duration, ticket: Ticket, report: Report) {
        let report = match (report, self.config.slow_call) {
            (Report::Success, Some(slow)) if now.saturating_sub(start) > slow => Report::Failure,
            (report, _) => report,
        };
        let transition = self
            .engine
            .with(|e| e.complete(now, ticket, report, &self.config));
        self.emit(transition);
    }

    /// Calls the event hook, after the lock is released.
    fn emit(&self, transition: engine::Transition) {
        if let (Some(hook), engine::Transition::To(state)) = (self.config.on_event, transition) {
            hook(match state {
                BreakerState::Open => BreakerEvent::Opened,
                BreakerState::HalfOpen => BreakerEvent::HalfOpened,
                BreakerState::Closed => BreakerEvent::Closed,
                BreakerState::Isolated => BreakerEvent::Isolated,
            });
        }
    }
}

pub(crate) const DEFAULT_CONFIG: Config = Config {
    failure_ratio: 0.5,
    min_calls: 10,
    probes: 1,
    breaks: BreakDuration::fixed(Duration::from_secs(5)),
    slow_call: None,
    on_event: None,
};

/// A state change of a [`Breaker`], for [`Breaker::with_on_event`] (Polly's event names).
///
/// # Examples
///
/// ```
/// use dike::breaker::BreakerEvent;
/// assert_ne!(BreakerEvent::Opened, BreakerEvent::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// OnCircuitOpened: the failure ratio was reached, or a probe failed.
    Opened,
    /// OnCircuitHalfOpened: the break ended; probes may pass.
    HalfOpened,
    /// OnCircuitClosed: the probes succeeded, or [`Breaker::close`] was called.
    Closed,
    /// [`Breaker::isolate`] was called.
    Isolated,
}

/// Counters of a [`Breaker`], from [`Breaker::stats`].
///
/// # Examples
///
/// ```
/// use dike::breaker::{Breaker, CountWindow};
/// let stats = Breaker::new(CountWindow::<10>::new()).stats();
/// assert_eq!(stats.opened, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BreakerStats {
    /// Calls in the window.
    pub calls: u32,
    /// Failures (slow calls included) in the window.
    pub failures: u32,
    /// Half-open probes holding a slot.
    pub probes_in_flight: u32,
    /// Calls refused.
    pub rejected: u64,
    /// Results reported after a transition, which changed nothing.
    pub late: u64,
    /// How many times the breaker opened (by its own decision).
    pub opened: u64,
}

/// A call admitted by a [`Breaker`]: report its result with [`success`](Call::success),
/// [`failure`](Call::failure) or [`ignore`](Call::ignore). Dropping it unreported is
/// `ignore`: a half-open probe's slot is freed, nothing is counted.
///
/// # Examples
///
/// ```
/// use dike::breaker::{Breaker, CountWindow};
/// use dike::time::ManualTimer;
///
/// let breaker = Breaker::new(CountWindow::<10>::new());
/// let call = breaker.try_acquire(ManualTimer::new()).unwrap();
/// let response: Result<u32, &str> = Ok(200);
/// call.record(&response);
/// assert_eq!(breaker.stats().calls, 1);
/// ```
#[clippy::has_significant_drop]
#[must_use = "report the call's result, or drop the permit to say nothing"]
pub struct Call<'a, W: Window, T: Timer> {
    breaker: &'a Breaker<W>,
    timer: T,
    start: Duration,
    ticket: Ticket,
    reported: bool,
}

impl<W: Window, T: Timer> fmt::Debug for Call<'_, W, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("start", &self.start)
            .field("probe", &self.ticket.probe)
            .finish_non_exhaustive()
    }
}

impl<W: Window, T: Timer> Call<'_, W, T> {
    /// The dependency answered: a success (a failure if slower than the slow-call
    /// threshold).
    ///
    /// # Examples
    ///
    /// ```
    /// # let breaker = dike::breaker::Breaker::new(dike::breaker::CountWindow::<4>::new());
    /// breaker.try_acquire(dike::time::ManualTimer::new()).unwrap().success();
    /// ```
    pub fn success(self) {
        self.finish(Report::Success);
    }

    /// The dependency failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let breaker = dike::breaker::Breaker::new(dike::breaker::CountWindow::<4>::new());
    /// breaker.try_acquire(dike::time::ManualTimer::new()).unwrap().failure();
    /// assert_eq!(breaker.stats().failures, 1);
    /// ```
    pub fn failure(self) {
        self.finish(Report::Failure);
    }

    /// The call says nothing about the dependency (cancelled, refused by another layer):
    /// not counted; a probe's slot is freed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let breaker = dike::breaker::Breaker::new(dike::breaker::CountWindow::<4>::new());
    /// breaker.try_acquire(dike::time::ManualTimer::new()).unwrap().ignore();
    /// assert_eq!(breaker.stats().calls, 0);
    /// ```
    pub fn ignore(self) {
        self.finish(Report::Ignore);
    }

    /// `Ok` is a success, `Err` a failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # let breaker = dike::breaker::Breaker::new(dike::breaker::CountWindow::<4>::new());
    /// let call = breaker.try_acquire(dike::time::ManualTimer::new()).unwrap();
    /// call.record(&Err::<(), _>("timeout"));
    /// assert_eq!(breaker.stats().failures, 1);
    /// ```
    pub fn record<R, E>(self, result: &Result<R, E>) {
        self.finish(if result.is_ok() {
            Report::Success
        } else {
            Report::Failure
        });
    }

    /// Whether this call is a half-open probe.
    ///
    /// # Examples
    ///
    /// ```
    /// # let breaker = dike::breaker::Breaker::new(dike::breaker::CountWindow::<4>::new());
    /// assert!(!breaker.try_acquire(dike::time::ManualTimer::new()).unwrap().is_probe());
    /// ```
    pub fn is_probe(&self) -> bool {
        self.ticket.probe
    }

    fn finish(mut self, report: Report) {
        self.reported = true;
        self.breaker
            .report(self.timer.now(), self.start, self.ticket, report);
    }
}

impl<W: Window, T: Timer> Drop for Call<'_, W, T> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker
                .report(self.timer.now(), self.start, self.ticket, Report::Ignore);
        }
    }
}

/// A call refused by a [`Breaker`].
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::breaker::{Breaker, CountWindow};
/// use dike::time::ManualTimer;
///
/// let breaker = Breaker::new(CountWindow::<10>::new()).try_with_min_calls(1)?;
/// let timer = ManualTimer::new();
/// breaker.try_acquire(&timer).unwrap().failure();
/// let err = breaker.try_acquire(&timer).unwrap_err();
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
/// assert_eq!(err.to_string(), "circuit breaker open: retry after 5s");
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BreakerOpen {
    retry_after: Option<Duration>,
}

impl BreakerOpen {
    /// How long until a call may pass: the rest of the break (or, half-open with every probe
    /// slot taken, until a hung probe's slot would come back); `None` while isolated.
    ///
    /// # Examples
    ///
    /// ```
    /// # let breaker = dike::breaker::Breaker::new(dike::breaker::CountWindow::<4>::new());
    /// breaker.isolate();
    /// assert_eq!(breaker.try_acquire(dike::time::ManualTimer::new()).unwrap_err().retry_after(), None);
    /// ```
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(after) => write!(f, "circuit breaker open: retry after {after:?}"),
            None => f.write_str("circuit breaker isolated"),
        }
    }
}

impl core::error::Error for BreakerOpen {}

/// The error of [`Breaker::call`]: refused by the breaker, or the call's own error.
///
/// # Examples
///
/// ```
/// use dike::breaker::BreakerError;
/// let err: BreakerError<&str> = BreakerError::Failed("503");
/// assert_eq!(err.to_string(), "503");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerError<E> {
    /// The breaker refused the call; the dependency was not called.
    Open(BreakerOpen),
    /// The call ran and failed with this error.
    Failed(E),
}

impl<E: fmt::Display> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(open) => open.fmt(f),
            Self::Failed(error) => error.fmt(f),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for BreakerError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Open(open) => Some(open),
            Self::Failed(error) => Some(error),
        }
    }
}

pin_project! {
    /// The future of [`Breaker::call`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the call and its permit, unreported.
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics ("`BreakerCall` polled after completion").
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::breaker::{Breaker, BreakerCall, CountWindow};
    /// use dike::time::ManualTimer;
    ///
    /// let breaker = Breaker::new(CountWindow::<4>::new());
    /// let timer = ManualTimer::new();
    /// let call = breaker.call(&timer, async { Ok::<_, ()>(1) });
    /// assert_eq!(smol::block_on(call), Ok(1));
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct BreakerCall<'a, W: Window, T: Timer, F> {
        breaker: &'a Breaker<W>,
        timer: Option<T>,
        permit: Option<Call<'a, W, T>>,
        #[pin]
        fut: F,
        done: bool,
    }
}

impl<W: Window, T: Timer, F> fmt::Debug for BreakerCall<'_, W, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerCall")
            .field("admitted", &self.permit.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<W, T, F, R, E> Future for BreakerCall<'_, W, T, F>
where
    W: Window,
    T: Timer,
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, BreakerError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        assert!(!*this.done, "`BreakerCall` polled after completion");
        if let Some(timer) = this.timer.take() {
            match this.breaker.try_acquire(timer) {
                Ok(permit) => *this.permit = Some(permit),
                Err(open) => {
                    *this.done = true;
                    return Poll::Ready(Err(BreakerError::Open(open)));
                }
            }
        }
        let result = core::task::ready!(this.fut.poll(cx));
        *this.done = true;
        if let Some(permit) = this.permit.take() {
            permit.record(&result);
        }
        Poll::Ready(result.map_err(BreakerError::Failed))
    }
}

#[cfg(test)]
mod tests;
