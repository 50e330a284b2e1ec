//! Retry: call an async operation again when it fails, with backoff, jitter, a time budget
//! and a shared retry budget (Python dike's `@retry`).
//!
//! A [`Retry`] policy is plain data: how many attempts, which delays (a [`Backoff`] or any
//! `Iterator<Item = Duration>`), how long in total, and optional hooks (which errors to
//! retry, a per-error delay such as a Retry-After hint, a notification per failure, a
//! [`RetryBudget`]). It runs an operation three ways:
//!
//! - [`policy.run(&timer, op)`](Retry::run);
//! - [`op.retry(policy, &timer)`](RetryExt::retry), with [`RetryExt`] from `dike::prelude`;
//! - [`retry(policy, timer, f)`](retry()), which wraps an async function like the Python
//!   decorator.
//!
//! All three return a [`Run`] future that resolves to the first success or to the last
//! error, unchanged.
//!
//! # Behaviour
//!
//! After attempt `n` fails with error `e`, the loop gives up and returns `e` when:
//!
//! 1. the [`when`](Retry::when) predicate rejects `e` (no notification);
//! 2. `n` reached [`with_attempts`](Retry::with_attempts) (attempts count the first call);
//! 3. the schedule iterator is exhausted;
//! 4. the time budget of [`with_max_elapsed`](Retry::with_max_elapsed), counted from the
//!    first attempt's start (so attempt time counts), is spent, or `now + delay` would end
//!    past it;
//! 5. the [`RetryBudget`] is empty (notified with a `None` delay).
//!
//! Otherwise it calls the [`notify`](Retry::notify) hook with `(&e, n, Some(delay))`, emits a
//! `tracing` warn event "Caught error … Retrying in 0.01s ..." (with the `tracing` feature),
//! waits `delay` and calls the operation again. The delay is the schedule's next one, unless
//! [`delay_for`](Retry::delay_for) returns one for `e`. A zero delay yields to the executor
//! once instead of going through the timer.
//!
//! # What to know
//!
//! - The error type must implement `Debug` (every `std::error::Error` does), so that failures
//!   can be logged.
//! - The operation is a closure called once per attempt; a dropped [`Run`] drops the attempt
//!   in progress (see [`Retry::run`]'s cancel safety). Nothing is spawned.
//! - [`Run`] is `Send` when the timer, the operation, its future, the schedule, the hooks
//!   and the timer's sleep are. Its type has four parameters however many hooks are set.
//! - The policy never reads a global clock: pass the [`Timer`] of your runtime, or a
//!   [`ManualTimer`](crate::time::ManualTimer) in tests to assert exact delays.
//!
//! # Schedules and jitter
//!
//! [`Backoff`] yields `d, d·b, d·b², …`, capped at `max_delay`, then jittered. With `c` the
//! capped delay, `d` the initial delay and `prev` the previous jittered delay:
//!
//! | [`Jitter`] | delay | range |
//! |---|---|---|
//! | `None` | `c` | exactly `c` |
//! | `Full` | `uniform(0, c)` | `[0, c]` |
//! | `Equal` | `c/2 + uniform(0, c/2)` | `[c/2, c]` |
//! | `Decorrelated` | `min(max_delay, uniform(d, 3·prev))` | `[min(d, max_delay), max_delay]` |
//!
//! Random numbers come from a small seedable generator (SplitMix64); with
//! [`Backoff::with_seed`] the delays are reproducible.
//!
//! # Examples
//!
//! A flaky call retried on a virtual clock, each failure reported:
//!
//! ```
//! use core::time::Duration;
//! use dike::retry::Retry;
//! use dike::time::{ManualTimer, Timer};
//! use futures_util::FutureExt;
//!
//! let timer = ManualTimer::new();
//! let policy = Retry::new()
//!     .with_attempts(3)?
//!     .with_delay(Duration::from_millis(10))
//!     .notify(|e: &&str, attempt, next| println!("attempt {attempt}: {e}; retrying in {next:?}"));
//!
//! let calls = core::cell::Cell::new(0);
//! let run = policy.run(&timer, || {
//!     calls.set(calls.get() + 1);
//!     async { Err::<(), _>("connection reset") }
//! });
//! let mut run = core::pin::pin!(run);
//! let result = loop {
//!     if let Some(result) = run.as_mut().now_or_never() {
//!         break result;
//!     }
//!     timer.advance_to_next();
//! };
//! assert_eq!(result, Err("connection reset"));
//! assert_eq!(calls.get(), 3);
//! assert_eq!(timer.now(), Duration::from_millis(20));
//! # Ok::<(), dike::error::ConfigError>(())
//! ```

use core::borrow::Borrow;
use core::fmt;
use core::num::NonZeroU32;
use core::time::Duration;

mod backoff;
mod budget;
mod future;
mod hooks;
mod jitter;
mod rng;

pub use backoff::{Backoff, BackoffIter};
pub use budget::RetryBudget;
pub use future::{CallWith, Operation, RetryFn, Run};
pub use hooks::{Budgeted, DelayFor, Hooks, NoHooks, Notify, When};
pub use jitter::Jitter;

use crate::error::{ConfigError, ConfigValue};
use crate::time::Timer;

/// A retry policy: attempts, schedule, time budget and hooks, in one value.
///
/// `Retry::new()` retries every error, without limit and without delay, like Python dike's
/// `@retry()`. Chain `with_*` methods to configure it; they validate their input and return
/// [`ConfigError`] instead of accepting a meaningless value. The policy is `Copy` when its
/// schedule and hooks are (a [`Backoff`] and plain closures are), and `Clone` when they are.
///
/// `S` is the schedule (any `IntoIterator<Item = Duration>`, [`Backoff`] by default), `H` the
/// hooks ([`NoHooks`] by default; each hook method wraps them in one more layer).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::{Jitter, Retry};
///
/// const POLICY: Retry = Retry::new()
///     .with_delay(Duration::from_millis(100))
///     .with_max_delay(Duration::from_secs(5))
///     .with_jitter(Jitter::Full)
///     .with_max_elapsed(Duration::from_secs(30));
///
/// let policy = POLICY.with_attempts(5)?.with_backoff(2.0)?;
/// assert_eq!(policy.attempts(), Some(5));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Retry<S = Backoff, H = NoHooks> {
    schedule: S,
    hooks: H,
    attempts: Option<NonZeroU32>,
    max_elapsed: Option<Duration>,
}

impl<S: fmt::Debug, H: fmt::Debug> fmt::Debug for Retry<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("attempts", &self.attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("schedule", &self.schedule)
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl Retry {
    /// Unlimited attempts, no delay, no time budget, every error retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    ///
    /// let policy = Retry::new();
    /// assert_eq!(policy.attempts(), None);
    /// ```
    pub const fn new() -> Self {
        Self {
            schedule: Backoff::none(),
            hooks: NoHooks,
            attempts: None,
            max_elapsed: None,
        }
    }
}

impl Default for Retry {
    /// [`Retry::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<H> Retry<Backoff, H> {
    /// Sets the delay before the first retry (zero by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let policy = Retry::new().with_delay(Duration::from_millis(10));
    /// assert_eq!(policy.schedule().delay(), Duration::from_millis(10));
    /// ```
    pub const fn with_delay(mut self, delay: Duration) -> Self {
        self.schedule = self.schedule.with_delay(delay);
        self
    }

    /// Multiplies each delay by `multiplier` to get the next (1 by default: constant delays).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `multiplier` unless it is finite and at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let policy = Retry::new().with_delay(Duration::from_millis(10)).with_backoff(2.0)?;
    /// assert_eq!(policy.schedule().multiplier(), 2.0);
    /// assert!(Retry::new().with_backoff(-1.0).is_err());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn with_backoff(mut self, multiplier: f64) -> Result<Self, ConfigError> {
        self.schedule = self.schedule.with_multiplier(multiplier)?;
        Ok(self)
    }

    /// Caps every delay at `max_delay`, before jitter.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let policy = Retry::new().with_max_delay(Duration::from_secs(1));
    /// assert_eq!(policy.schedule().max_delay(), Duration::from_secs(1));
    /// ```
    pub const fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.schedule = self.schedule.with_max_delay(max_delay);
        self
    }

    /// Randomises each delay; see [`Jitter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Jitter, Retry};
    ///
    /// let policy = Retry::new().with_jitter(Jitter::Decorrelated);
    /// assert_eq!(policy.schedule().jitter(), Jitter::Decorrelated);
    /// ```
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.schedule = self.schedule.with_jitter(jitter);
        self
    }

    /// Fixes the jitter's random seed, for reproducible delays.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Jitter, Retry};
    ///
    /// let policy = Retry::new()
    ///     .with_delay(Duration::from_secs(1))
    ///     .with_jitter(Jitter::Full)
    ///     .with_seed(3);
    /// assert!(policy.schedule().iter().take(4).eq(policy.schedule().iter().take(4)));
    /// ```
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.schedule = self.schedule.with_seed(seed);
        self
    }
}

impl<S, H> Retry<S, H> {
    /// Limits the number of calls, the first included (unlimited by default).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `attempts` when it is 0: a retry policy that never calls is a
    /// mistake, not a policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    ///
    /// assert_eq!(Retry::new().with_attempts(3)?.attempts(), Some(3));
    /// let err = Retry::new().with_attempts(0).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid attempts = 0: expected at least 1");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn with_attempts(mut self, attempts: u32) -> Result<Self, ConfigError> {
        match NonZeroU32::new(attempts) {
            Some(n) => {
                self.attempts = Some(n);
                Ok(self)
            }
            None => Err(ConfigError::new(
                "attempts",
                ConfigValue::Int(0),
                "at least 1",
            )),
        }
    }

    /// Limits the total time: counted from the start of the first attempt, attempts
    /// included. No retry is made once the budget is spent, nor one whose delay would end
    /// past it (a retry may start exactly at the end); the last error is returned at once.
    /// Unlimited by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let policy = Retry::new().with_max_elapsed(Duration::from_secs(10));
    /// assert_eq!(policy.max_elapsed(), Some(Duration::from_secs(10)));
    /// ```
    pub const fn with_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Replaces the schedule with any `IntoIterator<Item = Duration>`: each item is the delay
    /// before the next retry, and an exhausted iterator stops retrying. The iterator is
    /// created afresh for each run.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::pin::pin;
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    /// use futures_util::FutureExt;
    ///
    /// let ms = Duration::from_millis;
    /// // Two retries, then give up: a schedule of two delays.
    /// let policy = Retry::new().with_schedule([ms(10), ms(100)]);
    /// let timer = ManualTimer::new();
    /// let mut run = pin!(policy.run(&timer, || async { Err::<(), _>("down") }));
    /// assert!(run.as_mut().now_or_never().is_none());
    /// assert_eq!(timer.advance_to_next(), Some(ms(10)));
    /// assert!(run.as_mut().now_or_never().is_none());
    /// assert_eq!(timer.advance_to_next(), Some(ms(110)));
    /// assert_eq!(run.now_or_never(), Some(Err("down")));
    /// ```
    pub fn with_schedule<S2>(self, schedule: S2) -> Retry<S2, H>
    where
        S2: IntoIterator<Item = Duration>,
    {
        Retry {
            schedule,
            hooks: self.hooks,
            attempts: self.attempts,
            max_elapsed: self.max_elapsed,
        }
    }

    /// Retries only the errors `predicate` accepts; others are returned at once, without a
    /// notification. Several predicates must all accept.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum Error { Busy, Invalid }
    ///
    /// let policy = Retry::new().when(|e: &Error| *e == Error::Busy);
    /// let mut calls = 0;
    /// let run = policy.run(dike::time::ManualTimer::new(), || {
    ///     calls += 1;
    ///     async { Err::<(), _>(Error::Invalid) }
    /// });
    /// assert_eq!(smol::block_on(run), Err(Error::Invalid));
    /// assert_eq!(calls, 1);
    /// ```
    pub fn when<E, P>(self, predicate: P) -> Retry<S, When<P, H>>
    where
        P: FnMut(&E) -> bool,
    {
        self.wrap(|inner| When { predicate, inner })
    }

    /// Lets an error choose its own delay (a Retry-After hint, say): when `delay` returns
    /// `Some`, it replaces the schedule's delay for that retry. The schedule still advances,
    /// the cap and jitter do not apply to the override, the time budget does. When several
    /// are set, the last one set that returns `Some` wins.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    /// use dike::time::{ManualTimer, Timer};
    /// use futures_util::FutureExt;
    ///
    /// #[derive(Debug)]
    /// struct TooManyRequests { retry_after: Duration }
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Retry::new()
    ///     .with_attempts(2)?
    ///     .delay_for(|e: &TooManyRequests| Some(e.retry_after));
    /// let run = policy.run(&timer, || async {
    ///     Err::<(), _>(TooManyRequests { retry_after: Duration::from_secs(3) })
    /// });
    /// let mut run = core::pin::pin!(run);
    /// assert!(run.as_mut().now_or_never().is_none());
    /// assert_eq!(timer.next_deadline(), Some(Duration::from_secs(3)));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn delay_for<E, D>(self, delay: D) -> Retry<S, DelayFor<D, H>>
    where
        D: FnMut(&E) -> Option<Duration>,
    {
        self.wrap(|inner| DelayFor { delay, inner })
    }

    /// Calls `hook(&error, attempt, next)` for each failure that will be retried, with the
    /// failed attempt's number (1 for the first call) and `Some(delay)` before the next; and
    /// with `None` when a [`RetryBudget`] refused the retry. The final error is not notified:
    /// it is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let mut log = Vec::new();
    /// let policy = Retry::new()
    ///     .with_attempts(3)?
    ///     .notify(|e: &&str, attempt, next| {
    ///         log.push(format!("{attempt}: {e}, retry in {next:?}"));
    ///     });
    /// let result = smol::block_on(policy.run(dike::time::ManualTimer::new(), || async {
    ///     Err::<(), _>("refused")
    /// }));
    /// assert_eq!(result, Err("refused"));
    /// assert_eq!(log, ["1: refused, retry in Some(0ns)", "2: refused, retry in Some(0ns)"]);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn notify<E, N>(self, hook: N) -> Retry<S, Notify<N, H>>
    where
        N: FnMut(&E, u32, Option<Duration>),
    {
        self.wrap(|inner| Notify {
            notify: hook,
            inner,
        })
    }

    /// Draws every retry from a shared [`RetryBudget`] (by reference, `Arc` or value: any
    /// `Borrow<RetryBudget>`), and refunds it on success.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Retry, RetryBudget};
    ///
    /// let budget = RetryBudget::with_capacity(10, 5, 1)?;
    /// let policy = Retry::new().with_budget(&budget);
    /// let result = smol::block_on(policy.run(dike::time::ManualTimer::new(), || async {
    ///     Err::<(), _>("down")
    /// }));
    /// assert_eq!(result, Err("down"), "two retries, then the budget is empty");
    /// assert_eq!(budget.available(), 0);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn with_budget<B>(self, budget: B) -> Retry<S, Budgeted<B, H>>
    where
        B: Borrow<RetryBudget>,
    {
        self.wrap(|inner| Budgeted { budget, inner })
    }

    /// The attempt limit, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    ///
    /// assert_eq!(Retry::new().attempts(), None);
    /// ```
    pub const fn attempts(&self) -> Option<u32> {
        match self.attempts {
            Some(n) => Some(n.get()),
            None => None,
        }
    }

    /// The total time budget, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    ///
    /// assert_eq!(Retry::new().max_elapsed(), None);
    /// ```
    pub const fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// The schedule.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// assert_eq!(Retry::new().schedule().delay(), Duration::ZERO);
    /// ```
    pub const fn schedule(&self) -> &S {
        &self.schedule
    }

    /// The hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{NoHooks, Retry};
    ///
    /// let _: &NoHooks = Retry::new().hooks();
    /// ```
    pub const fn hooks(&self) -> &H {
        &self.hooks
    }

    /// Runs `op` until it succeeds or the policy gives up, waiting on `timer` between
    /// attempts.
    ///
    /// `op` is called once per attempt and returns that attempt's future. The first attempt
    /// starts on the first poll. `timer` may be a reference (`&timer`) or a value.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the attempt in progress or the pending sleep and returns any
    /// retry-budget withdrawal for a retry not yet made; nothing is left behind. Work an
    /// attempt did before it was dropped is, of course, not undone.
    ///
    /// # Errors
    ///
    /// The last attempt's error, unchanged, once the policy gives up (see the
    /// [module docs](self) for when).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let mut calls = 0;
    /// let result = smol::block_on(Retry::new().run(&timer, || {
    ///     calls += 1;
    ///     let ok = calls == 2;
    ///     async move { if ok { Ok("done") } else { Err("flaky") } }
    /// }));
    /// assert_eq!(result, Ok("done"));
    /// ```
    #[inline]
    pub fn run<T, F>(self, timer: T, op: F) -> Run<T, F, S, H>
    where
        T: Timer,
        F: Operation,
        S: IntoIterator<Item = Duration>,
        H: Hooks<F::Error>,
    {
        Run::new(
            timer,
            op,
            self.schedule,
            self.hooks,
            self.attempts,
            self.max_elapsed,
        )
    }

    fn wrap<H2>(self, f: impl FnOnce(H) -> H2) -> Retry<S, H2> {
        Retry {
            schedule: self.schedule,
            hooks: f(self.hooks),
            attempts: self.attempts,
            max_elapsed: self.max_elapsed,
        }
    }
}

/// Wraps an async function so that each call is retried per `policy`, like Python dike's
/// `@retry` decorator.
///
/// The function takes one argument (a tuple for several), cloned for each attempt; call the
/// result with [`RetryFn::call`]. The policy and timer are cloned per call.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::{Retry, retry};
/// use dike::time::ManualTimer;
///
/// async fn web_request(url: &'static str) -> Result<String, String> {
///     Err(format!("{url}: request failed"))
/// }
///
/// let web_request = retry(
///     Retry::new().with_attempts(2)?,
///     ManualTimer::new(),
///     web_request,
/// );
/// let result = smol::block_on(web_request.call("https://example.com"));
/// assert_eq!(result, Err("https://example.com: request failed".to_string()));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub fn retry<T, F, S, H>(policy: Retry<S, H>, timer: T, f: F) -> RetryFn<T, F, S, H>
where
    T: Timer,
{
    RetryFn { policy, timer, f }
}

/// `op.retry(policy, &timer)`: retry any `FnMut() -> impl Future<Output = Result<..>>`.
///
/// In `dike::prelude`.
///
/// # Examples
///
/// ```
/// use dike::prelude::*;
/// use dike::retry::Retry;
/// use dike::time::ManualTimer;
///
/// async fn fetch() -> Result<u32, &'static str> {
///     Ok(7)
/// }
///
/// let timer = ManualTimer::new();
/// let value = smol::block_on(fetch.retry(Retry::new().with_attempts(3)?, &timer));
/// assert_eq!(value, Ok(7));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub trait RetryExt: Operation + Sized {
    /// Runs `self` until it succeeds or `policy` gives up, waiting on `timer`; the same as
    /// [`policy.run(timer, self)`](Retry::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`Retry::run`]: dropping the future leaves nothing behind.
    ///
    /// # Errors
    ///
    /// The last attempt's error, unchanged, once the policy gives up.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::prelude::*;
    /// use dike::retry::Retry;
    ///
    /// let mut calls = 0;
    /// let op = || {
    ///     calls += 1;
    ///     async { Err::<(), _>("nope") }
    /// };
    /// let timer = dike::time::ManualTimer::new();
    /// let result = smol::block_on(op.retry(Retry::new().with_attempts(2)?, &timer));
    /// assert_eq!(result, Err("nope"));
    /// assert_eq!(calls, 2);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    fn retry<T, S, H>(self, policy: Retry<S, H>, timer: T) -> Run<T, Self, S, H>
    where
        T: Timer,
        S: IntoIterator<Item = Duration>,
        H: Hooks<Self::Error>,
    {
        policy.run(timer, self)
    }
}

impl<O: Operation> RetryExt for O {}

#[cfg(test)]
mod tests;
