//! Hedging: when an attempt is slower than usual, start another one and take whichever
//! answers first (*The Tail at Scale*, Dean and Barroso 2013; Polly's hedging strategy).
//!
//! ```
//! use core::time::Duration;
//! use dike::hedge::Hedge;
//! use dike::time::{ManualTimer, Timer};
//! use futures_util::FutureExt;
//!
//! let ms = Duration::from_millis;
//! let timer = ManualTimer::new();
//! let policy = Hedge::fixed(ms(15));
//! let mut latencies = [ms(200), ms(10)].into_iter(); // a straggler, then a normal answer
//! let op = || {
//!     let sleep = timer.sleep(latencies.next().unwrap());
//!     async move { sleep.await; "pong" }
//! };
//! let mut run = Box::pin(policy.run(&timer, op));
//! let answer = loop {
//!     if let Some(answer) = (&mut run).now_or_never() { break answer; }
//!     timer.advance_to_next();
//! };
//! assert_eq!(answer, "pong");
//! assert_eq!(timer.now(), ms(25), "the hedge started at 15 ms and answered 10 ms later");
//! assert_eq!(timer.sleepers(), 0, "the straggler was dropped");
//! assert_eq!(policy.stats().hedges, 1);
//! ```
//!
//! # Behaviour
//!
//! [`Hedge::run`] calls the operation once, then, while no attempt has answered:
//!
//! - after the **hedge delay** (counted from the previous attempt's start) it starts another
//!   attempt, up to [`max_hedges`](Hedge::try_with_max_hedges) extra attempts (default 1).
//!   The delay is fixed ([`Hedge::fixed`]) or a quantile of recent latencies
//!   ([`Hedge::quantile`]), read once when the run starts;
//! - every hedge draws on the shared [`RetryBudget`] given with
//!   [`with_budget`](Hedge::with_budget), like a retry (its `retry_cost`); every accepted
//!   answer deposits a refund, like a successful call. An empty budget stops **new** hedges
//!   only: the attempts already in flight go on and may still win (failsafe-go #141);
//! - all attempts are polled inside the one [`Hedged`] future, nothing is spawned. The first
//!   **accepted** output wins (every output, unless [`Hedged::accept`] says otherwise). The
//!   other attempts are dropped at once, before the output is returned, never awaited;
//! - a rejected output (say, an error) never wins while another attempt may still answer; it
//!   starts the next hedge at once, if one may start. When every attempt was rejected and
//!   none may start, the last rejected output is returned.
//!
//! [`with_on_event`](Hedge::with_on_event) reports each hedge ([`HedgeEvent::Hedging`],
//! Polly's `OnHedging`) and each budget refusal; [`Hedge::stats`] counts them.
//!
//! Hedging is for idempotent reads. Only the winner's result is seen: a loser's side effects
//! on the server are not undone by dropping its future.
//!
//! # The quantile estimator
//!
//! [`Hedge::quantile`] keeps the last `N` latencies (default 128) of **accepted answers**,
//! each measured from the winning attempt's own start, in a fixed-size histogram inside the
//! policy (no allocation, no floating point, deterministic; see `window.rs`). The reported
//! quantile is the upper edge of its bucket: never below the true quantile of the window, at
//! most 12.5 % above it. Until `min_samples` answers were recorded the fallback delay is
//! used; `Duration::MAX` as the fallback means "do not hedge yet". Latencies of losers are
//! never seen (they are dropped), so a window could only under-represent stragglers that
//! were hedged: that keeps the delay near the latency of an ordinary answer, which is what
//! the hedge should wait for.
//!
//! # Defaults
//!
//! | setting | default | why |
//! |---|---|---|
//! | max hedges | 1 | one extra attempt removes most of the tail; more multiply load |
//! | budget | none | pass the retry budget the same dependency's retries use |
//! | window | 128 samples | enough for a p95 (6 samples above it), small enough to follow shifts |
//!
//! # Layer order
//!
//! Outermost first: total timeout → retry | hedge (one shared budget) → circuit breaker →
//! adaptive gate → throttle → attempt timeout → call. Each hedge is an attempt of its own:
//! it takes its own permit and gives its own sample. See [`adaptive`](crate::adaptive) for
//! the full composition.
//!
//! # Cancel safety
//!
//! The [`Hedged`] future may be dropped at any time: every attempt in flight and the hedge
//! sleep are dropped with it. No budget token is held across an await (a hedge's tokens are
//! spent when it starts and not given back: the hedge was made).
//!
//! Needs `alloc` (hedges are boxed; a run whose first attempt answers allocates nothing).

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::num::NonZeroU32;
use core::time::Duration;

pub(crate) mod driver;
mod future;
mod window;

pub use future::Hedged;

use crate::error::{ConfigError, ConfigValue};
use crate::retry::RetryBudget;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::time::Timer;
use window::Window;

/// A hedging policy: the hedge delay (fixed or a latency quantile), the number of hedges and
/// an optional shared [`RetryBudget`].
///
/// Run it with [`run`](Hedge::run); it is borrowed, so one policy (and its latency window)
/// serves every call. `Send + Sync` when the budget handle is.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::hedge::Hedge;
/// use dike::retry::RetryBudget;
///
/// let budget = RetryBudget::with_capacity(100, 10, 1)?; // about one hedge per 10 answers
/// let policy = Hedge::quantile(0.95, 100, Duration::MAX)? // no hedge before 100 samples
///     .try_with_max_hedges(2)?
///     .with_budget(&budget);
/// assert_eq!(policy.hedge_delay(), Duration::MAX);
/// assert_eq!(policy.max_hedges(), 2);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct Hedge<B = &'static RetryBudget, const N: usize = 128> {
    fixed: Duration,
    quantile_ppm: u32,
    min_samples: u32,
    max_hedges: u32,
    budget: Option<B>,
    window: Mutex<Window<N>>,
    hedges: AtomicU32,
    refused: AtomicU32,
    hedge_wins: AtomicU32,
    on_event: Option<fn(HedgeEvent)>,
}

/// What a [`Hedge`] policy reports to its [`with_on_event`](Hedge::with_on_event) hook
/// (Polly's `OnHedging`, plus the budget's refusal).
///
/// # Examples
///
/// ```
/// use dike::hedge::HedgeEvent;
///
/// let event = HedgeEvent::Hedging { attempt: 2 };
/// assert_ne!(event, HedgeEvent::BudgetRefused { attempt: 2 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeEvent {
    /// A hedge starts: `attempt` is its number in the run (2 for the first hedge).
    Hedging {
        /// The attempt's number, the first attempt being 1.
        attempt: u32,
    },
    /// The budget refused the hedge that would have been attempt `attempt`; no further
    /// hedge starts in this run, attempts in flight go on.
    BudgetRefused {
        /// The refused attempt's number.
        attempt: u32,
    },
}

/// Counters of a [`Hedge`] policy, from [`Hedge::stats`] (wrapping at `u32::MAX`).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::hedge::{Hedge, HedgeStats};
///
/// let policy = Hedge::fixed(Duration::from_millis(15));
/// assert_eq!(policy.stats(), HedgeStats::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeStats {
    /// Hedges started (attempts after the first).
    pub hedges: u32,
    /// Hedges the budget refused.
    pub refused: u32,
    /// Runs won by a hedge rather than the first attempt.
    pub hedge_wins: u32,
    /// Latencies in the quantile window (0 with a fixed delay).
    pub samples: u32,
}

/// Decides whether an attempt's output may win (see [`Hedged::accept`]). Implemented by
/// [`AcceptAll`] and by every `FnMut(&O) -> bool`.
///
/// # Examples
///
/// ```
/// use dike::hedge::{Accept, AcceptAll};
///
/// let mut ok_only = |r: &Result<u32, &str>| r.is_ok();
/// assert!(!ok_only.accept(&Err("503")));
/// assert!(AcceptAll.accept(&Err::<u32, _>("503")));
/// ```
pub trait Accept<O> {
    /// `true` if `output` may win.
    fn accept(&mut self, output: &O) -> bool;
}

/// Accepts every output: the first attempt to finish wins.
///
/// # Examples
///
/// ```
/// use dike::hedge::{Accept, AcceptAll};
///
/// assert!(AcceptAll.accept(&()));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl<O> Accept<O> for AcceptAll {
    fn accept(&mut self, _: &O) -> bool {
        true
    }
}

impl<O, F: FnMut(&O) -> bool> Accept<O> for F {
    fn accept(&mut self, output: &O) -> bool {
        self(output)
    }
}

impl Hedge {
    /// Hedges after a fixed `delay` (zero starts every hedge at once: parallel requests),
    /// one hedge at most, no budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    ///
    /// let policy = Hedge::fixed(Duration::from_millis(15));
    /// assert_eq!(policy.hedge_delay(), Duration::from_millis(15));
    /// assert_eq!(policy.max_hedges(), 1);
    ///
    /// // `const`, so a policy (and its counters) can live in a `static`:
    /// static HEDGE: Hedge = Hedge::fixed(Duration::from_millis(15));
    /// assert_eq!(HEDGE.stats().hedges, 0);
    /// ```
    #[cfg(not(loom))]
    pub const fn fixed(delay: Duration) -> Self {
        Self::build(delay, 0, 0)
    }

    /// Hedges after a fixed `delay` (loom build: not `const`).
    #[cfg(loom)]
    pub fn fixed(delay: Duration) -> Self {
        Self::build(delay, 0, 0)
    }

    /// Hedges after the `q` quantile of the latencies of the last 128 accepted answers
    /// (`0.95`: The Tail at Scale's p95), once `min_samples` were recorded; before that after
    /// `fallback` (`Duration::MAX`: no hedge). Change the window size with
    /// [`with_window`](Hedge::with_window).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `quantile` unless `0 < q ≤ 1`, or `min_samples` unless it is
    /// between 1 and the window size.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    ///
    /// let policy = Hedge::quantile(0.95, 100, Duration::from_millis(50))?;
    /// assert_eq!(policy.hedge_delay(), Duration::from_millis(50), "no samples yet");
    /// assert_eq!(Hedge::quantile(1.5, 100, Duration::MAX).unwrap_err().parameter(), "quantile");
    /// assert_eq!(Hedge::quantile(0.9, 500, Duration::MAX).unwrap_err().parameter(), "min_samples");
    ///
    /// static P95: Hedge = match Hedge::quantile(0.95, 100, Duration::MAX) {
    ///     Ok(policy) => policy,
    ///     Err(_) => panic!("invalid hedge policy"), // a compile error, never a runtime panic
    /// };
    /// assert_eq!(P95.hedge_delay(), Duration::MAX);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[cfg(not(loom))]
    pub const fn quantile(
        q: f64,
        min_samples: u32,
        fallback: Duration,
    ) -> Result<Self, ConfigError> {
        match quantile_ppm(q, min_samples) {
            Ok(ppm) => Ok(Self::build(fallback, ppm, min_samples)),
            Err(e) => Err(e),
        }
    }

    /// Hedges after the `q` quantile of recent latencies (loom build: not `const`).
    ///
    /// # Errors
    ///
    /// As the `const` version.
    #[cfg(loom)]
    pub fn quantile(q: f64, min_samples: u32, fallback: Duration) -> Result<Self, ConfigError> {
        let ppm = quantile_ppm(q, min_samples)?;
        Ok(Self::build(fallback, ppm, min_samples))
    }

    #[cfg(not(loom))]
    const fn build(fixed: Duration, quantile_ppm: u32, min_samples: u32) -> Self {
        Self {
            fixed,
            quantile_ppm,
            min_samples,
            max_hedges: 1,
            budget: None,
            window: Mutex::new(Window::new()),
            hedges: AtomicU32::new(0),
            refused: AtomicU32::new(0),
            hedge_wins: AtomicU32::new(0),
            on_event: None,
        }
    }

    #[cfg(loom)]
    fn build(fixed: Duration, quantile_ppm: u32, min_samples: u32) -> Self {
        Self {
            fixed,
            quantile_ppm,
            min_samples,
            max_hedges: 1,
            budget: None,
            window: Mutex::new(Window::new()),
            hedges: AtomicU32::new(0),
            refused: AtomicU32::new(0),
            hedge_wins: AtomicU32::new(0),
            on_event: None,
        }
    }
}

/// `q` in parts per million, at least 1, after checking `q` and `min_samples`.
const fn quantile_ppm(q: f64, min_samples: u32) -> Result<u32, ConfigError> {
    // NaN fails both comparisons.
    if !(q > 0.0 && q <= 1.0) {
        return Err(ConfigError::new(
            "quantile",
            ConfigValue::Float(q),
            "in (0, 1]",
        ));
    }
    if let Err(e) = check_min_samples(min_samples, 128) {
        return Err(e);
    }
    let ppm = (q * 1_000_000.0) as u32;
    Ok(if ppm == 0 { 1 } else { ppm })
}

const fn check_min_samples(min_samples: u32, window: usize) -> Result<(), ConfigError> {
    if min_samples == 0 || min_samples as usize > window {
        return Err(ConfigError::new(
            "min_samples",
            ConfigValue::Int(min_samples as i128),
            "between 1 and the window size",
        ));
    }
    Ok(())
}

impl<B, const N: usize> Hedge<B, N> {
    /// At most `max_hedges` extra attempts per run.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroU32;
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    ///
    /// let policy = Hedge::fixed(Duration::from_millis(15)).with_max_hedges(NonZeroU32::new(3).unwrap());
    /// assert_eq!(policy.max_hedges(), 3);
    /// ```
    pub const fn with_max_hedges(mut self, max_hedges: NonZeroU32) -> Self {
        self.max_hedges = max_hedges.get();
        self
    }

    /// [`with_max_hedges`](Hedge::with_max_hedges) from a plain number.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `max_hedges` when it is 0 (a policy that never hedges).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    ///
    /// let policy = Hedge::fixed(Duration::from_millis(15)).try_with_max_hedges(2)?;
    /// assert_eq!(policy.max_hedges(), 2);
    /// let err = Hedge::fixed(Duration::ZERO).try_with_max_hedges(0).unwrap_err();
    /// assert_eq!(err.parameter(), "max_hedges");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn try_with_max_hedges(self, max_hedges: u32) -> Result<Self, ConfigError> {
        match NonZeroU32::new(max_hedges) {
            Some(n) => Ok(self.with_max_hedges(n)),
            None => Err(ConfigError::new(
                "max_hedges",
                ConfigValue::Int(0),
                "at least 1",
            )),
        }
    }

    /// Draws every hedge on `budget` (anything that borrows a [`RetryBudget`]: `&budget`,
    /// `Arc<RetryBudget>`), the budget the same dependency's retries use. A hedge costs
    /// `retry_cost` tokens; an accepted answer refunds `success_refund`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Arc;
    /// use dike::hedge::Hedge;
    /// use dike::retry::RetryBudget;
    ///
    /// let budget = Arc::new(RetryBudget::new());
    /// let policy = Hedge::fixed(Duration::from_millis(15)).with_budget(Arc::clone(&budget));
    /// assert_eq!(policy.max_hedges(), 1);
    /// ```
    pub fn with_budget<B2: Borrow<RetryBudget>>(self, budget: B2) -> Hedge<B2, N> {
        Hedge {
            fixed: self.fixed,
            quantile_ppm: self.quantile_ppm,
            min_samples: self.min_samples,
            max_hedges: self.max_hedges,
            budget: Some(budget),
            window: self.window,
            hedges: self.hedges,
            refused: self.refused,
            hedge_wins: self.hedge_wins,
            on_event: self.on_event,
        }
    }

    /// The quantile window with `M` samples instead of 128 (samples recorded so far are
    /// dropped).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `window` when `M` is 0 or above 65 535, or `min_samples` when it
    /// is above `M`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    ///
    /// let policy = Hedge::quantile(0.99, 500, Duration::MAX)
    ///     .or_else(|_| Hedge::quantile(0.99, 100, Duration::MAX))?
    ///     .with_window::<1024>()?;
    /// assert_eq!(policy.stats().samples, 0);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn with_window<const M: usize>(self) -> Result<Hedge<B, M>, ConfigError> {
        if M == 0 || M > u16::MAX as usize {
            return Err(ConfigError::new(
                "window",
                ConfigValue::Int(M as i128),
                "between 1 and 65535",
            ));
        }
        if self.quantile_ppm != 0 {
            check_min_samples(self.min_samples, M)?;
        }
        Ok(Hedge {
            fixed: self.fixed,
            quantile_ppm: self.quantile_ppm,
            min_samples: self.min_samples,
            max_hedges: self.max_hedges,
            budget: self.budget,
            window: Mutex::new(Window::new()),
            hedges: self.hedges,
            refused: self.refused,
            hedge_wins: self.hedge_wins,
            on_event: self.on_event,
        })
    }

    /// Calls `hook` for every [`HedgeEvent`], outside any lock, on the task polling the run.
    /// A plain `fn`: nothing is stored or called when unset.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use core::time::Duration;
    /// use dike::hedge::{Hedge, HedgeEvent};
    /// use dike::time::ManualTimer;
    /// use futures_util::FutureExt;
    ///
    /// static HEDGING: AtomicU32 = AtomicU32::new(0);
    /// fn on_event(event: HedgeEvent) {
    ///     if let HedgeEvent::Hedging { .. } = event {
    ///         HEDGING.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Hedge::fixed(Duration::from_millis(10)).with_on_event(on_event);
    /// let mut run = Box::pin(policy.run(&timer, || core::future::pending::<()>()));
    /// assert!((&mut run).now_or_never().is_none());
    /// timer.advance(Duration::from_millis(10));
    /// assert!((&mut run).now_or_never().is_none());
    /// assert_eq!(HEDGING.load(Ordering::Relaxed), 1);
    /// ```
    pub fn with_on_event(mut self, hook: fn(HedgeEvent)) -> Self {
        self.on_event = Some(hook);
        self
    }

    /// The most extra attempts per run.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    ///
    /// assert_eq!(Hedge::fixed(Duration::from_millis(15)).max_hedges(), 1);
    /// ```
    pub fn max_hedges(&self) -> u32 {
        self.max_hedges
    }

    /// The delay a run started now would hedge after: the fixed delay, or the quantile of
    /// the window once it holds `min_samples` (the fallback before). `Duration::MAX` means
    /// no hedge.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Hedge::quantile(0.5, 1, Duration::MAX)?;
    /// assert_eq!(policy.hedge_delay(), Duration::MAX);
    /// smol::block_on(policy.run(&timer, || async {}));
    /// // One answer after 0 µs: the median is the bucket [0, 1 µs).
    /// assert_eq!(policy.hedge_delay(), Duration::from_micros(1));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn hedge_delay(&self) -> Duration {
        if self.quantile_ppm == 0 {
            return self.fixed;
        }
        let (ppm, min) = (self.quantile_ppm, self.min_samples as usize);
        self.window
            .with(|w| {
                if w.len() >= min {
                    w.quantile(ppm)
                } else {
                    None
                }
            })
            .unwrap_or(self.fixed)
    }

    /// The policy's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    ///
    /// assert_eq!(Hedge::fixed(Duration::from_millis(15)).stats().hedges, 0);
    /// ```
    pub fn stats(&self) -> HedgeStats {
        HedgeStats {
            hedges: self.hedges.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            hedge_wins: self.hedge_wins.load(Ordering::Relaxed),
            samples: if self.quantile_ppm == 0 {
                0
            } else {
                self.window.with(|w| w.len()) as u32
            },
        }
    }
}

impl<B: Borrow<RetryBudget>, const N: usize> Hedge<B, N> {
    /// Runs `op` (called once per attempt) with hedging on `timer`: resolves to the first
    /// accepted output. Borrows the policy: run it from many tasks at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops every attempt in flight and the hedge sleep; no budget
    /// token is held. Work the attempts did is not undone.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Hedge::fixed(Duration::from_millis(15));
    /// let answer = smol::block_on(policy.run(&timer, || async { Ok::<_, ()>(42) }));
    /// assert_eq!(answer, Ok(42));
    /// assert_eq!(policy.stats().hedges, 0, "answered before the hedge delay");
    /// ```
    pub fn run<'a, T, Op, F>(
        &'a self,
        timer: &'a T,
        op: Op,
    ) -> Hedged<'a, T, Op, F, Self, AcceptAll>
    where
        T: Timer,
        Op: FnMut() -> F,
        F: Future,
    {
        Hedged::new(self, timer, op, AcceptAll)
    }
}

mod sealed {
    use core::time::Duration;

    /// What a [`Hedged`](super::Hedged) run needs of its policy (sealed: only
    /// [`Hedge`](super::Hedge) implements it).
    pub trait Policy {
        #[doc(hidden)]
        fn delay(&self) -> Duration;
        #[doc(hidden)]
        fn max_hedges(&self) -> u32;
        #[doc(hidden)]
        fn draw(&self, attempt: u32) -> bool;
        #[doc(hidden)]
        fn records(&self) -> bool;
        #[doc(hidden)]
        fn finish(&self, latency: Option<Duration>, by_hedge: bool);
    }
}
pub(crate) use sealed::Policy;

impl<B: Borrow<RetryBudget>, const N: usize> Policy for Hedge<B, N> {
    fn delay(&self) -> Duration {
        self.hedge_delay()
    }

    fn max_hedges(&self) -> u32 {
        self.max_hedges
    }

    /// Draws hedge `attempt` on the budget; counts and reports it.
    fn draw(&self, attempt: u32) -> bool {
        if let Some(budget) = &self.budget {
            if !budget.borrow().try_withdraw() {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(hook) = self.on_event {
                    hook(HedgeEvent::BudgetRefused { attempt });
                }
                return false;
            }
        }
        self.hedges.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = self.on_event {
            hook(HedgeEvent::Hedging { attempt });
        }
        true
    }

    fn records(&self) -> bool {
        self.quantile_ppm != 0
    }

    /// An accepted answer after `latency` (from its attempt's start; `None` unless
    /// `records`).
    fn finish(&self, latency: Option<Duration>, by_hedge: bool) {
        if let Some(latency) = latency {
            self.window.with(|w| w.record(latency));
        }
        if let Some(budget) = &self.budget {
            budget.borrow().deposit();
        }
        if by_hedge {
            self.hedge_wins.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<B: fmt::Debug, const N: usize> fmt::Debug for Hedge<B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("delay", &self.hedge_delay())
            .field("quantile_ppm", &self.quantile_ppm)
            .field("min_samples", &self.min_samples)
            .field("max_hedges", &self.max_hedges)
            .field("budget", &self.budget)
            .field("window", &N)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests;
