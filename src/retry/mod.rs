//! Retry: call an async operation again when it fails, with backoff, jitter, a time budget
//! and a shared retry budget (Python dike's `@retry`).
//!
//! ```
//! use core::num::NonZeroU32;
//! use core::time::Duration;
//! use dike::prelude::*;
//! use dike::retry::{Jitter, Retry};
//! # use dike::time::ManualTimer as TokioTimer;
//!
//! // 4 attempts, 100 ms then 200 ms then 400 ms apart (jittered), never more than 2 s.
//! let policy = Retry::exponential(Duration::from_millis(100), 2.0)?
//!     .with_max_delay(Duration::from_secs(2))
//!     .with_jitter(Jitter::Full)
//!     .with_attempts(NonZeroU32::new(4).unwrap());
//!
//! async fn fetch() -> Result<String, std::io::Error> {
//!     Ok("<html>".into())
//! }
//! # smol::block_on(async {
//! let timer = TokioTimer::new();
//! let page = fetch.retry(&policy, &timer).await;
//! # assert!(page.is_ok());
//! # });
//! # Ok::<(), dike::error::ConfigError>(())
//! ```
//!
//! A [`Retry`] policy is plain data: how many attempts, which delays (a [`Backoff`] or any
//! `Iterator<Item = Duration>`), how long in total, and optional hooks (which errors to
//! retry, a per-error delay such as a Retry-After hint, a notification per failure, a
//! [`RetryBudget`]). Running it **borrows** it, so one policy (in a struct field, a `static`,
//! a `const`) serves every call. It runs an operation three ways:
//!
//! - [`policy.run(&timer, op)`](Retry::run);
//! - [`op.retry(&policy, &timer)`](RetryExt::retry), with [`RetryExt`] from `dike::prelude`;
//! - [`retry(policy, timer, f)`](retry()), which wraps an async function like the Python
//!   decorator.
//!
//! All three return a [`Run`] future that resolves to the first success or to the last
//! error, unchanged; [`Run::outcome`] resolves to an [`Outcome`] with the attempt count too.
//!
//! # Constructors and defaults
//!
//! | | [`Retry::exponential(d, f)`](Retry::exponential) | [`Retry::fixed(d)`](Retry::fixed) | [`Retry::new()`](Retry::new) | Python dike `@retry()` | backon `ExponentialBuilder::default()` | tenacity `@retry` |
//! |---|---|---|---|---|---|---|
//! | attempts | unlimited | unlimited | unlimited | unlimited | 4 (3 retries) | unlimited |
//! | first delay | `d` (> 0) | `d` | 0 | 0 | 1 s | 0 (`wait_none`) |
//! | multiplier | `f` (≥ 1) | 1 | 1 | 1 | 2 | none (`wait_exponential`: 2, from 1 s) |
//! | cap | none | none | none | none | 60 s | none (`wait_exponential`: `max`) |
//! | jitter | none | none | none | none | none | none (`wait_random_exponential`: full) |
//! | total time | unlimited | unlimited | unlimited | unlimited | unlimited | unlimited |
//! | errors retried | all | all | all | all (`Exception`) | all | all |
//!
//! Every column is changed with the same `with_*` methods: [`with_attempts`](Retry::with_attempts),
//! [`with_max_delay`](Retry::with_max_delay), [`with_jitter`](Retry::with_jitter),
//! [`with_max_elapsed`](Retry::with_max_elapsed), [`when`](Retry::when).
//!
//! A multiplier needs a first delay: `0 × 2ⁿ` is 0, so an "exponential" backoff from zero
//! would retry at once, forever, and say nothing. [`Retry::exponential`] and
//! [`Backoff::with_multiplier`] reject it with a [`ConfigError`]
//! naming `first_delay`, and there is no setter that could set the first delay back to zero
//! afterwards. (Python dike accepts `@retry(backoff=2)` without a delay and never waits.)
//!
//! # Storing a policy
//!
//! A policy with no closures has a short type, [`Retry`], and can be a `const` or `static`:
//! the constructors are `const fn`, and the checks run at compile time.
//!
//! ```
//! use core::num::NonZeroU32;
//! use core::time::Duration;
//! use dike::retry::{Jitter, Retry};
//!
//! static POLICY: Retry = match Retry::exponential(Duration::from_millis(100), 2.0) {
//!     Ok(policy) => policy
//!         .with_max_delay(Duration::from_secs(2))
//!         .with_jitter(Jitter::Full)
//!         .with_attempts(NonZeroU32::new(4).unwrap()),
//!     Err(_) => panic!("invalid retry policy"), // a compile error, never a runtime panic
//! };
//! assert_eq!(POLICY.attempts(), Some(4));
//! ```
//!
//! With hooks (built at run time: the hook methods are not `const`), name them with fn
//! pointers in a type alias (every hook type defaults its inner hooks to [`NoHooks`]), or
//! return `impl Hooks<E>` from a constructor function:
//!
//! ```
//! use core::time::Duration;
//! use dike::retry::{Backoff, Hooks, Retry, When};
//! use dike::time::ManualTimer;
//! use std::io;
//!
//! fn transient(e: &io::Error) -> bool {
//!     e.kind() != io::ErrorKind::NotFound
//! }
//!
//! // A type alias with a fn pointer: nameable in a struct field.
//! type Policy = Retry<Backoff, When<fn(&io::Error) -> bool>>;
//!
//! fn policy() -> Policy {
//!     Retry::fixed(Duration::from_millis(10)).when(transient as fn(&_) -> _)
//! }
//!
//! // Or a constructor returning `impl Hooks`: closures allowed, the type is never written.
//! fn closure_policy() -> Retry<Backoff, impl Hooks<io::Error>> {
//!     Retry::fixed(Duration::from_millis(10))
//!         .when(|e: &io::Error| e.kind() != io::ErrorKind::NotFound)
//! }
//!
//! struct Client {
//!     policy: Policy,
//!     timer: ManualTimer,
//! }
//!
//! impl Client {
//!     async fn get(&self) -> Result<String, io::Error> {
//!         // `run` borrows the policy: `&self` is enough, nothing is cloned.
//!         self.policy.run(&self.timer, || async { Err(io::ErrorKind::NotFound.into()) }).await
//!     }
//! }
//!
//! let client = Client { policy: policy(), timer: ManualTimer::new() };
//! assert!(smol::block_on(client.get()).is_err());
//! assert!(smol::block_on(client.get()).is_err(), "the same policy, run again");
//! let _ = closure_policy();
//! ```
//!
//! A predicate on the policy names its error type, because the policy is built before any
//! operation. To let the compiler infer it, as backon does, attach it to the run instead:
//! [`op.retry(&policy, &timer).when(|e| ..)`](Run::when) (also [`Run::notify`] and
//! [`Run::delay_for`]).
//!
//! # Behaviour
//!
//! After attempt `n` fails with error `e`, the loop gives up and returns `e` when:
//!
//! 1. a [`when`](Retry::when) predicate rejects `e` (no notification);
//! 2. `n` reached [`with_attempts`](Retry::with_attempts) (attempts count the first call);
//! 3. the schedule iterator is exhausted;
//! 4. the time budget of [`with_max_elapsed`](Retry::with_max_elapsed), counted from the
//!    first attempt's start (so attempt time counts), is spent, or `now + delay` would end
//!    past it;
//! 5. the [`RetryBudget`] is empty (notified with a `None` delay);
//! 6. with a total [timeout](Retry::with_timeout), the delay would end at or past it (see
//!    [Timeouts](#timeouts)).
//!
//! Otherwise it calls the [`notify`](Retry::notify) hooks with `(&e, n, Some(delay))` and the
//! [`on_event`](Retry::on_event) hooks with [`RetryEvent::Retrying`], emits
//! a `tracing` warn event "Caught error … Retrying in 0.01s ..." (with the `tracing`
//! feature), waits `delay` and calls the operation again. The delay is the schedule's next
//! one, unless a [`delay_for`](Retry::delay_for) hook returns one for `e`. A zero delay
//! yields to the executor once instead of going through the timer.
//!
//! # Timeouts
//!
//! [`with_attempt_timeout`](Retry::with_attempt_timeout) drops an attempt still running
//! after its limit and retries it like any failure; [`with_timeout`](Retry::with_timeout)
//! is a hard deadline on the whole run, counted from the first attempt's start. Under a
//! deadline the loop never starts a delay that would end at or past it (no attempt could
//! follow), and an attempt's own timeout is cut to what is left. A policy with either fails
//! with a [`RetryError`]: [`Failed`](RetryError::Failed) (the operation's error, the policy
//! gave up), [`AttemptTimedOut`](RetryError::AttemptTimedOut), or
//! [`TimedOut`](RetryError::TimedOut) carrying the last attempt's error. Without them the
//! error is the operation's own, unchanged, as before. For one future without retries, see
//! [`time::timeout`](crate::time::timeout).
//!
//! ```
//! use core::time::Duration;
//! use dike::error::Elapsed;
//! use dike::retry::{AttemptError, Retry, RetryError};
//! use dike::time::{ManualTimer, Timer};
//! use futures_util::FutureExt;
//!
//! let ms = Duration::from_millis;
//! let policy = Retry::fixed(ms(50))
//!     .try_with_attempts(3)?
//!     .with_attempt_timeout(ms(100))
//!     .with_timeout(ms(250));
//! let timer = ManualTimer::new();
//! let hanging = || core::future::pending::<Result<(), std::io::Error>>();
//! let mut run = Box::pin(policy.run(&timer, hanging));
//! let result = loop {
//!     if let Some(result) = (&mut run).now_or_never() {
//!         break result;
//!     }
//!     timer.advance_to_next();
//! };
//! // Attempts at 0 and 150 ms; a third would start at 300 ms, past the deadline.
//! assert_eq!(timer.now(), ms(250));
//! assert!(matches!(
//!     result,
//!     Err(RetryError::TimedOut { last: Some(AttemptError::TimedOut(e)) }) if e == Elapsed::new(ms(250))
//! ));
//! # Ok::<(), dike::error::ConfigError>(())
//! ```
//!
//! # Events
//!
//! [`on_event`](Retry::on_event) (or [`Run::on_event`] for one run) reports what a run does,
//! under Polly's names, as [breakers](crate::breaker::BreakerEvent) and
//! [hedges](crate::hedge::HedgeEvent) do. Each event is reported on the task polling the run,
//! outside any lock, after the attempt it is about was dropped:
//!
//! | [`RetryEvent`] | Polly | reported when |
//! |---|---|---|
//! | [`Retrying`](RetryEvent::Retrying) | `OnRetry` | a failed or timed-out attempt will be retried: the retry budget paid for it, the sleep is about to start |
//! | [`BudgetRefused`](RetryEvent::BudgetRefused) | (none) | the retry budget refused that retry; the run returns the error |
//! | [`AttemptTimedOut`](RetryEvent::AttemptTimedOut) | `OnTimeout` of the attempt timeout | an attempt ran out its own [timeout](Retry::with_attempt_timeout) and was dropped; before the retry decision |
//! | [`TimedOut`](RetryEvent::TimedOut) | `OnTimeout` of the total timeout | the run ends with [`RetryError::TimedOut`]: its [deadline](Retry::with_timeout) cut an attempt, or no retry fits before it |
//!
//! A run that gives up for any other reason (a predicate, the attempts, the schedule, the
//! time budget) reports nothing more: its error is the report. Attempt numbers count the
//! first call as 1 (Polly's `AttemptNumber` counts it as 0).
//!
//! [`notify`](Retry::notify) stays what it was, the view of the operation's own errors:
//! `notify(e, n, Some(d))` is `Retrying { attempt: n, delay: d, error: Some(e) }` and
//! `notify(e, n, None)` is `BudgetRefused { attempt: n, error: Some(e) }`, called just before
//! the event for the same failure. Only `on_event` sees timeouts. The
//! [`RetryLayer`](crate::tower::RetryLayer) reports through the same hooks (it has no
//! timeouts, so only `Retrying` and `BudgetRefused`).
//!
//! Hooks cost nothing unset: they are one nested generic type whose default, [`NoHooks`],
//! has empty `#[inline]` methods, so a policy without `on_event` builds no event.
//!
//! ```
//! use core::cell::RefCell;
//! use core::time::Duration;
//! use dike::retry::{Retry, RetryEvent};
//! use dike::time::{ManualTimer, Timer};
//! use futures_util::FutureExt;
//!
//! let ms = Duration::from_millis;
//! let timer = ManualTimer::new();
//! let log = RefCell::new(Vec::new());
//! let policy = Retry::fixed(ms(50))
//!     .try_with_attempts(3)?
//!     .with_attempt_timeout(ms(100))
//!     .with_timeout(ms(250))
//!     .on_event(|event: RetryEvent<'_, std::io::Error>| {
//!         log.borrow_mut().push((timer.now(), format!("{event:?}")));
//!     });
//! let hanging = || core::future::pending::<Result<(), std::io::Error>>();
//! let mut run = Box::pin(policy.run(&timer, hanging));
//! while (&mut run).now_or_never().is_none() {
//!     timer.advance_to_next();
//! }
//! assert_eq!(*log.borrow(), [
//!     (ms(100), "AttemptTimedOut { attempt: 1, timeout: 100ms }".into()),
//!     (ms(100), "Retrying { attempt: 1, delay: 50ms, error: None }".into()),
//!     (ms(250), "AttemptTimedOut { attempt: 2, timeout: 100ms }".into()),
//!     (ms(250), "TimedOut { attempts: 2, timeout: 250ms }".into()),
//! ]);
//! # Ok::<(), dike::error::ConfigError>(())
//! ```
//!
//! # What to know
//!
//! - The error type must implement `Debug` (every `std::error::Error` does), so that failures
//!   can be logged.
//! - The operation is a closure called once per attempt; a dropped [`Run`] drops the attempt
//!   in progress (see [`Retry::run`]'s cancel safety). Nothing is spawned.
//! - Hooks are `Fn` closures, since every run of a policy shares them: keep counters in a
//!   `Cell` or an atomic.
//! - [`Run`] is `Send` when the timer, the operation, its future, the schedule, the hooks
//!   and the timer's sleep are (the hooks must be `Sync`, being borrowed).
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
//! let policy = Retry::exponential(Duration::from_millis(10), 2.0)?
//!     .try_with_attempts(3)?
//!     .notify(|e: &&str, attempt, next| println!("attempt {attempt}: {e}; retrying in {next:?}"));
//!
//! let calls = core::cell::Cell::new(0);
//! let run = policy.run(&timer, || {
//!     calls.set(calls.get() + 1);
//!     async { Err::<(), _>("connection reset") }
//! });
//! let mut run = core::pin::pin!(run.outcome());
//! let outcome = loop {
//!     if let Some(outcome) = run.as_mut().now_or_never() {
//!         break outcome;
//!     }
//!     timer.advance_to_next();
//! };
//! assert_eq!(outcome.result(), &Err("connection reset"));
//! assert_eq!(outcome.attempts(), 3);
//! assert_eq!(outcome.elapsed(), Duration::from_millis(30)); // 10 ms, then 20 ms
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
mod timeouts;

pub use backoff::{Backoff, BackoffIter};
pub use budget::RetryBudget;
pub use future::{CallWith, Operation, Outcome, RetryFn, Run, RunOutcome};
pub use hooks::{Budgeted, DelayFor, Hooks, NoHooks, Notify, OnEvent, RetryEvent, When};
pub use jitter::Jitter;
pub use timeouts::{AttemptError, NoTimeouts, RetryError, Timeouts, WithTimeouts};

#[cfg(feature = "tower")]
pub(crate) use future::{Decision, Failure, Limit, decide};

use crate::error::{ConfigError, ConfigValue};
use crate::time::Timer;

/// A retry policy: attempts, schedule, time budget and hooks, in one value.
///
/// Start from [`Retry::exponential`], [`Retry::fixed`] or [`Retry::new`] (see the
/// [defaults table](self#constructors-and-defaults)) and chain `with_*` methods. Methods
/// that take a plain number validate it and return [`ConfigError`] instead of accepting a
/// meaningless value; the others take types that cannot be wrong (`NonZeroU32`,
/// `Duration`) and are `const fn`, so a whole policy can be a `const` or a `static`.
///
/// Running a policy borrows it ([`run`](Retry::run) takes `&self`), so it can live in a
/// struct field or a `static` and serve any number of calls, even at once. The policy is
/// `Copy` when its schedule and hooks are (a [`Backoff`] and plain closures are).
///
/// `S` is the schedule (any `Clone + IntoIterator<Item = Duration>`, [`Backoff`] by
/// default), `H` the hooks ([`NoHooks`] by default; each hook method wraps them in one more
/// layer).
///
/// # Examples
///
/// ```
/// use core::num::NonZeroU32;
/// use core::time::Duration;
/// use dike::retry::{Jitter, Retry};
///
/// const POLICY: Retry = Retry::fixed(Duration::from_millis(100))
///     .with_jitter(Jitter::Full)
///     .with_max_elapsed(Duration::from_secs(30))
///     .with_attempts(NonZeroU32::new(5).unwrap());
/// assert_eq!(POLICY.attempts(), Some(5));
///
/// let dynamic = Retry::exponential(Duration::from_millis(100), 2.0)?.try_with_attempts(5)?;
/// assert_eq!(dynamic.schedule().multiplier(), 2.0);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Retry<S = Backoff, H = NoHooks, M = NoTimeouts> {
    schedule: S,
    hooks: H,
    attempts: Option<NonZeroU32>,
    max_elapsed: Option<Duration>,
    timeouts: M,
}

impl<S: fmt::Debug, H: fmt::Debug, M: Timeouts> fmt::Debug for Retry<S, H, M> {
    /// `Retry { attempts: 4, max_elapsed: unlimited, schedule: Backoff { .. }, hooks: .. }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Retry");
        match self.attempts {
            Some(n) => s.field("attempts", &n.get()),
            None => s.field("attempts", &format_args!("unlimited")),
        };
        match self.max_elapsed {
            Some(max) => s.field("max_elapsed", &max),
            None => s.field("max_elapsed", &format_args!("unlimited")),
        };
        if let Some(attempt) = self.timeouts.attempt() {
            s.field("attempt_timeout", &attempt);
        }
        if let Some(total) = self.timeouts.total() {
            s.field("timeout", &total);
        }
        s.field("schedule", &self.schedule)
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl Retry {
    /// Unlimited attempts, no delay, no time budget, every error retried: Python dike's
    /// `@retry()`. Mostly a starting point for [`with_schedule`](Retry::with_schedule);
    /// prefer [`exponential`](Retry::exponential) or [`fixed`](Retry::fixed) for calls over a
    /// network.
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
        Self::with_backoff(Backoff::none())
    }

    /// Waits `first_delay` before the first retry and `factor` times longer before each
    /// next one: `d, d·f, d·f², …`. Unlimited attempts, no cap and no jitter until set.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `multiplier` unless `factor` is finite and at least 1, and
    /// naming `first_delay` when it is zero while `factor` is above 1 (`0 × fⁿ` is always 0:
    /// no backoff at all).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let ms = Duration::from_millis;
    /// let policy = Retry::exponential(ms(100), 2.0)?.with_max_delay(ms(300));
    /// let delays: Vec<_> = policy.schedule().iter().take(4).collect();
    /// assert_eq!(delays, [ms(100), ms(200), ms(300), ms(300)]);
    ///
    /// let err = Retry::exponential(Duration::ZERO, 2.0).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid first_delay = 0ns: expected more than zero with a multiplier above 1");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn exponential(first_delay: Duration, factor: f64) -> Result<Self, ConfigError> {
        match Backoff::exponential(first_delay, factor) {
            Ok(backoff) => Ok(Self::with_backoff(backoff)),
            Err(err) => Err(err),
        }
    }

    /// The same `delay` before every retry. Unlimited attempts until set.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let policy = Retry::fixed(Duration::from_millis(10));
    /// assert!(policy.schedule().iter().take(5).all(|d| d == Duration::from_millis(10)));
    /// ```
    pub const fn fixed(delay: Duration) -> Self {
        Self::with_backoff(Backoff::constant(delay))
    }

    /// A policy on any [`Backoff`]: unlimited attempts, no time budget, no hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Backoff, Retry};
    ///
    /// let backoff = Backoff::constant(Duration::from_secs(1));
    /// assert_eq!(Retry::with_backoff(backoff).schedule(), &backoff);
    /// ```
    pub const fn with_backoff(backoff: Backoff) -> Self {
        Self {
            schedule: backoff,
            hooks: NoHooks,
            attempts: None,
            max_elapsed: None,
            timeouts: NoTimeouts,
        }
    }
}

impl Default for Retry {
    /// [`Retry::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<H, M> Retry<Backoff, H, M> {
    /// Caps every delay at `max_delay`, before jitter (no cap by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let policy = Retry::fixed(Duration::from_secs(5)).with_max_delay(Duration::from_secs(1));
    /// assert_eq!(policy.schedule().max_delay(), Duration::from_secs(1));
    /// ```
    pub const fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.schedule = self.schedule.with_max_delay(max_delay);
        self
    }

    /// Randomises each delay; see [`Jitter`] (none by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Jitter, Retry};
    ///
    /// let policy = Retry::fixed(Duration::from_secs(1)).with_jitter(Jitter::Decorrelated);
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
    /// let policy = Retry::fixed(Duration::from_secs(1))
    ///     .with_jitter(Jitter::Full)
    ///     .with_seed(3);
    /// assert!(policy.schedule().iter().take(4).eq(policy.schedule().iter().take(4)));
    /// ```
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.schedule = self.schedule.with_seed(seed);
        self
    }
}

impl<S, H> Retry<S, H, NoTimeouts> {
    /// Drops each attempt still running after `timeout` and counts it as a failed attempt
    /// ([`AttemptError::TimedOut`]); the policy then retries it like any failure (the
    /// [`when`](Retry::when), [`delay_for`](Retry::delay_for) and [`notify`](Retry::notify)
    /// hooks see only the operation's own errors, so a timed-out attempt is always
    /// retryable). No limit by default.
    ///
    /// A policy with a timeout fails with a [`RetryError`] instead of the bare error, so
    /// the caller can tell a timeout from the dependency's own failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::error::Elapsed;
    /// use dike::retry::{Retry, RetryError};
    /// use dike::time::ManualTimer;
    /// use futures_util::FutureExt;
    ///
    /// let policy = Retry::fixed(Duration::from_millis(10))
    ///     .try_with_attempts(2)?
    ///     .with_attempt_timeout(Duration::from_millis(100));
    /// let timer = ManualTimer::new();
    /// let hanging = || core::future::pending::<Result<(), &str>>();
    /// let mut run = Box::pin(policy.run(&timer, hanging));
    /// let result = loop {
    ///     if let Some(result) = (&mut run).now_or_never() {
    ///         break result;
    ///     }
    ///     timer.advance_to_next();
    /// };
    /// // The first attempt timed out at 100 ms, the second at 10 + 100 + 100 ms.
    /// let ms = Duration::from_millis;
    /// assert_eq!(result, Err(RetryError::AttemptTimedOut(Elapsed::new(ms(210)))));
    /// assert_eq!(timer.sleepers(), 0);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn with_attempt_timeout(self, timeout: Duration) -> Retry<S, H, WithTimeouts> {
        let Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts: _no_timeouts,
        } = self;
        Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts: WithTimeouts {
                attempt: Some(timeout),
                total: None,
            },
        }
    }

    /// Limits the whole run (attempts and delays) to `timeout` from the first attempt's
    /// start, as a hard deadline: an attempt still running then is dropped, no delay is
    /// started that would end at or past it (no attempt could run after it), and each
    /// attempt's own [timeout](Retry::with_attempt_timeout) is cut to what is left. The run
    /// then fails with [`RetryError::TimedOut`], carrying the last attempt's error. No
    /// limit by default.
    ///
    /// [`with_max_elapsed`](Retry::with_max_elapsed) is the soft variant: it never cuts an
    /// attempt and returns the last error unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{AttemptError, Retry, RetryError};
    /// use dike::time::{ManualTimer, Timer};
    /// use futures_util::FutureExt;
    ///
    /// let policy = Retry::fixed(Duration::from_millis(40)).with_timeout(Duration::from_millis(100));
    /// let timer = ManualTimer::new();
    /// let mut run = Box::pin(policy.run(&timer, || async { Err::<(), _>("503") }));
    /// let result = loop {
    ///     if let Some(result) = (&mut run).now_or_never() {
    ///         break result;
    ///     }
    ///     timer.advance_to_next();
    /// };
    /// // Attempts at 0, 40 and 80 ms; a fourth at 120 ms would be past the deadline.
    /// assert_eq!(timer.now(), Duration::from_millis(80));
    /// assert_eq!(result, Err(RetryError::TimedOut { last: Some(AttemptError::Failed("503")) }));
    /// ```
    pub fn with_timeout(self, timeout: Duration) -> Retry<S, H, WithTimeouts> {
        let Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts: _no_timeouts,
        } = self;
        Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts: WithTimeouts {
                attempt: None,
                total: Some(timeout),
            },
        }
    }
}

impl<S, H> Retry<S, H, WithTimeouts> {
    /// Sets or replaces the per-attempt timeout of a policy that has timeouts; see
    /// [`Retry::with_attempt_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Retry, Timeouts};
    ///
    /// let policy = Retry::new()
    ///     .with_timeout(Duration::from_secs(1))
    ///     .with_attempt_timeout(Duration::from_millis(200));
    /// assert_eq!(policy.timeouts().attempt(), Some(Duration::from_millis(200)));
    /// assert_eq!(policy.timeouts().total(), Some(Duration::from_secs(1)));
    /// ```
    pub const fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.attempt = Some(timeout);
        self
    }

    /// Sets or replaces the total timeout of a policy that has timeouts; see
    /// [`Retry::with_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Retry, Timeouts};
    ///
    /// let policy = Retry::new()
    ///     .with_attempt_timeout(Duration::from_millis(200))
    ///     .with_timeout(Duration::from_secs(1));
    /// assert_eq!(policy.timeouts().total(), Some(Duration::from_secs(1)));
    /// ```
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.total = Some(timeout);
        self
    }
}

impl<S, H, M> Retry<S, H, M> {
    /// Limits the number of calls, the first included (unlimited by default).
    ///
    /// `NonZeroU32` because a policy that never calls is a mistake, not a policy; in a
    /// `const` or `static`, `NonZeroU32::new(4).unwrap()` is checked at compile time. For a
    /// count read at run time, [`try_with_attempts`](Retry::try_with_attempts) returns a
    /// [`ConfigError`] instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroU32;
    /// use dike::retry::Retry;
    ///
    /// const THREE: NonZeroU32 = NonZeroU32::new(3).unwrap();
    /// assert_eq!(Retry::new().with_attempts(THREE).attempts(), Some(3));
    /// ```
    pub const fn with_attempts(mut self, attempts: NonZeroU32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// [`with_attempts`](Retry::with_attempts) for a count known only at run time.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `attempts` when it is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    ///
    /// assert_eq!(Retry::new().try_with_attempts(3)?.attempts(), Some(3));
    /// let err = Retry::new().try_with_attempts(0).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid attempts = 0: expected at least 1");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn try_with_attempts(self, attempts: u32) -> Result<Self, ConfigError> {
        match NonZeroU32::new(attempts) {
            Some(n) => Ok(self.with_attempts(n)),
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

    /// Replaces the schedule with any `Clone + IntoIterator<Item = Duration>`: each item is
    /// the delay before the next retry, and an exhausted iterator stops retrying. Each run
    /// clones the schedule at its first failure and iterates its own copy.
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
    pub fn with_schedule<S2>(self, schedule: S2) -> Retry<S2, H, M>
    where
        S2: Clone + IntoIterator<Item = Duration>,
    {
        Retry {
            schedule,
            hooks: self.hooks,
            attempts: self.attempts,
            max_elapsed: self.max_elapsed,
            timeouts: self.timeouts,
        }
    }

    /// Retries only the errors `predicate` accepts; others are returned at once, without a
    /// notification. Several predicates must all accept.
    ///
    /// The closure names its error type (`|e: &MyError| ..`), because the policy exists
    /// before any operation; [`Run::when`] infers it instead.
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
    pub fn when<E, P>(self, predicate: P) -> Retry<S, When<P, H>, M>
    where
        P: Fn(&E) -> bool,
    {
        let Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts,
        } = self;
        Retry {
            schedule,
            hooks: When {
                predicate,
                inner: hooks,
            },
            attempts,
            max_elapsed,
            timeouts,
        }
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
    /// let policy = Retry::fixed(Duration::from_millis(100))
    ///     .try_with_attempts(2)?
    ///     .delay_for(|e: &TooManyRequests| Some(e.retry_after));
    /// let run = policy.run(&timer, || async {
    ///     Err::<(), _>(TooManyRequests { retry_after: Duration::from_secs(3) })
    /// });
    /// let mut run = core::pin::pin!(run);
    /// assert!(run.as_mut().now_or_never().is_none());
    /// assert_eq!(timer.next_deadline(), Some(Duration::from_secs(3)));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn delay_for<E, D>(self, delay: D) -> Retry<S, DelayFor<D, H>, M>
    where
        D: Fn(&E) -> Option<Duration>,
    {
        let Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts,
        } = self;
        Retry {
            schedule,
            hooks: DelayFor {
                delay,
                inner: hooks,
            },
            attempts,
            max_elapsed,
            timeouts,
        }
    }

    /// Calls `hook(&error, attempt, next)` for each failure that will be retried, with the
    /// failed attempt's number (1 for the first call) and `Some(delay)` before the next; and
    /// with `None` when a [`RetryBudget`] refused the retry. The final error is not notified:
    /// it is returned. Timed-out attempts are not notified (they have no error): for them,
    /// and for the same retries as [`RetryEvent`]s, see [`on_event`](Retry::on_event).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::cell::RefCell;
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    ///
    /// let log = RefCell::new(Vec::new());
    /// let policy = Retry::new()
    ///     .try_with_attempts(3)?
    ///     .notify(|e: &&str, attempt, next: Option<Duration>| {
    ///         log.borrow_mut().push(format!("{attempt}: {e}, retry in {next:?}"));
    ///     });
    /// let result = smol::block_on(policy.run(dike::time::ManualTimer::new(), || async {
    ///     Err::<(), _>("refused")
    /// }));
    /// assert_eq!(result, Err("refused"));
    /// assert_eq!(*log.borrow(), ["1: refused, retry in Some(0ns)", "2: refused, retry in Some(0ns)"]);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn notify<E, N>(self, hook: N) -> Retry<S, Notify<N, H>, M>
    where
        N: Fn(&E, u32, Option<Duration>),
    {
        let Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts,
        } = self;
        Retry {
            schedule,
            hooks: Notify {
                notify: hook,
                inner: hooks,
            },
            attempts,
            max_elapsed,
            timeouts,
        }
    }

    /// Calls `hook` with every [`RetryEvent`] of a run: each retry (Polly's `OnRetry`, timed
    /// out attempts included), each budget refusal, each attempt timeout and the total
    /// timeout (Polly's `OnTimeout`); see [Events](self#events) for exactly when. Called on
    /// the task polling the run, outside any lock; several hooks are called in the order
    /// they were set. Unset, it costs nothing.
    ///
    /// The closure names its error type (`|event: RetryEvent<'_, MyError>| ..`);
    /// [`Run::on_event`] infers it instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::cell::RefCell;
    /// use core::time::Duration;
    /// use dike::retry::{Retry, RetryEvent};
    ///
    /// let log = RefCell::new(Vec::new());
    /// let policy = Retry::new()
    ///     .try_with_attempts(2)?
    ///     .on_event(|event: RetryEvent<'_, &str>| log.borrow_mut().push(format!("{event:?}")));
    /// let result = smol::block_on(policy.run(dike::time::ManualTimer::new(), || async {
    ///     Err::<(), _>("refused")
    /// }));
    /// assert_eq!(result, Err("refused"));
    /// assert_eq!(*log.borrow(), [r#"Retrying { attempt: 1, delay: 0ns, error: Some("refused") }"#]);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn on_event<E, F>(self, hook: F) -> Retry<S, OnEvent<F, H>, M>
    where
        F: Fn(RetryEvent<'_, E>),
    {
        let Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts,
        } = self;
        Retry {
            schedule,
            hooks: OnEvent { hook, inner: hooks },
            attempts,
            max_elapsed,
            timeouts,
        }
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
    pub fn with_budget<B>(self, budget: B) -> Retry<S, Budgeted<B, H>, M>
    where
        B: Borrow<RetryBudget>,
    {
        let Retry {
            schedule,
            hooks,
            attempts,
            max_elapsed,
            timeouts,
        } = self;
        Retry {
            schedule,
            hooks: Budgeted {
                budget,
                inner: hooks,
            },
            attempts,
            max_elapsed,
            timeouts,
        }
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

    /// The timeouts: [`NoTimeouts`], or the [`WithTimeouts`] set by
    /// [`with_attempt_timeout`](Retry::with_attempt_timeout) and
    /// [`with_timeout`](Retry::with_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Retry, Timeouts};
    ///
    /// assert_eq!(Retry::new().timeouts().attempt(), None);
    /// let timed = Retry::new().with_attempt_timeout(Duration::from_secs(1));
    /// assert_eq!(timed.timeouts().attempt(), Some(Duration::from_secs(1)));
    /// ```
    pub const fn timeouts(&self) -> &M {
        &self.timeouts
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
    /// assert_eq!(Retry::new().schedule().first_delay(), Duration::ZERO);
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
    /// attempts. Borrows the policy: run it again, or from many tasks at once.
    ///
    /// `op` is called once per attempt and returns that attempt's future. The first attempt
    /// starts on the first poll. `timer` may be a reference (`&timer`) or a value. Add
    /// per-run hooks with an inferred error type by chaining [`Run::when`],
    /// [`Run::notify`] or [`Run::delay_for`]; get the attempt count with [`Run::outcome`].
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
    /// struct Client { policy: Retry, timer: ManualTimer }
    ///
    /// impl Client {
    ///     async fn get(&self, ok_on: u32) -> Result<&'static str, &'static str> {
    ///         let mut calls = 0;
    ///         self.policy
    ///             .run(&self.timer, || {
    ///                 calls += 1;
    ///                 let ok = calls == ok_on;
    ///                 async move { if ok { Ok("done") } else { Err("flaky") } }
    ///             })
    ///             .await
    ///     }
    /// }
    ///
    /// let client = Client { policy: Retry::new(), timer: ManualTimer::new() };
    /// assert_eq!(smol::block_on(client.get(2)), Ok("done"));
    /// assert_eq!(smol::block_on(client.get(3)), Ok("done"));
    /// ```
    #[inline]
    pub fn run<T, F>(&self, timer: T, op: F) -> Run<'_, T, F, S, H, NoHooks, M>
    where
        T: Timer,
        F: Operation,
        S: Clone + IntoIterator<Item = Duration>,
        H: Hooks<F::Error>,
        M: Timeouts,
    {
        Run::new(timer, op, self)
    }
}

/// Wraps an async function so that each call is retried per `policy`, like Python dike's
/// `@retry` decorator.
///
/// The function takes one argument (a tuple for several), cloned for each attempt; call the
/// result with [`RetryFn::call`], or [`RetryFn::call0`] for a function of no argument.
/// Each call borrows the policy and the timer.
///
/// # Examples
///
/// ```
/// use dike::retry::{Retry, retry};
/// use dike::time::ManualTimer;
///
/// async fn web_request(url: &'static str) -> Result<String, String> {
///     Err(format!("{url}: request failed"))
/// }
///
/// let web_request = retry(
///     Retry::new().try_with_attempts(2)?,
///     ManualTimer::new(),
///     web_request,
/// );
/// let result = smol::block_on(web_request.call("https://example.com"));
/// assert_eq!(result, Err("https://example.com: request failed".to_string()));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub fn retry<T, F, S, H, M>(policy: Retry<S, H, M>, timer: T, f: F) -> RetryFn<T, F, S, H, M>
where
    T: Timer,
{
    RetryFn { policy, timer, f }
}

/// `op.retry(&policy, &timer)`: retry any `FnMut() -> impl Future<Output = Result<..>>`.
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
/// let policy = Retry::new().try_with_attempts(3)?;
/// let value = smol::block_on(fetch.retry(&policy, &timer));
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
    ///     async { Err::<(), _>(std::io::Error::other("nope")) }
    /// };
    /// let timer = dike::time::ManualTimer::new();
    /// let policy = Retry::new().try_with_attempts(2)?;
    /// // The error type is inferred from `op`: no annotation on `e`.
    /// let result = smol::block_on(op.retry(&policy, &timer).when(|e| e.kind() == std::io::ErrorKind::Other));
    /// assert!(result.is_err());
    /// assert_eq!(calls, 2);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    fn retry<T, S, H, M>(
        self,
        policy: &Retry<S, H, M>,
        timer: T,
    ) -> Run<'_, T, Self, S, H, NoHooks, M>
    where
        T: Timer,
        S: Clone + IntoIterator<Item = Duration>,
        H: Hooks<Self::Error>,
        M: Timeouts,
    {
        policy.run(timer, self)
    }
}

impl<O: Operation> RetryExt for O {}

#[cfg(test)]
mod tests;
