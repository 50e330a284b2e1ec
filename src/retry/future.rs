//! # Implementation notes
//!
//! [`Run`] is one state machine driven from one `poll`:
//!
//! ```text
//! Start ──call op──▶ Attempt ──Ok──▶ Done (on_success)
//!   ▲                   │
//!   │                   └─Err─▶ decide ──no──▶ Done (the error, unchanged)
//!   │                              │
//!   │                   zero delay ├──────▶ Yield ──wake_by_ref, Pending──┐
//!   │                              └──────▶ Sleep ──timer fires──────────┤
//!   └────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! `decide` reads the hooks and limits in a fixed order: the predicate, the attempt count,
//! the schedule (an exhausted iterator stops), the delay override, the time budget (no retry
//! once it is spent, nor one whose sleep would end past it), the retry budget (a refusal is
//! notified with `None` and reported as `BudgetRefused`), then the tracing event, notify and
//! the `Retrying` event. It borrows the error (`Failure`), so both the loop here and the
//! tower layer's future keep theirs to return. The time budget's end is fixed
//! when the first attempt starts, so attempt time counts.
//!
//! A run borrows its policy: the schedule is cloned from it and turned into its iterator at
//! the first failure (a call that succeeds at once costs no more than the attempt and a few
//! branches), and the hooks are read through the borrow. A run's own hooks (`Run::when` and
//! its siblings) are layered over the policy's.
//!
//! A zero delay does not touch the timer: the future wakes itself and returns `Pending` once,
//! so the executor runs other tasks before the retry (tokio's timer would round a zero sleep
//! up to a 1 ms tick).
//!
//! Timeouts (a policy with [`WithTimeouts`](super::WithTimeouts)): `Start` fixes the total
//! deadline at the first attempt and arms a guard sleep beside each attempt, at the
//! attempt's own timeout or the total deadline, whichever comes first (`cut` says it is the
//! total one). A guard that fires drops the attempt: its own timeout becomes an
//! `AttemptError::TimedOut` and goes through `decide` like any error; the total deadline
//! ends the run with `TimedOut` and the previous attempt's error, kept in `last` (only
//! under a total deadline). `decide` refuses a delay that ends at or past the deadline.
//! Events: `AttemptTimedOut` when a guard fires at the attempt's own timeout (before
//! `decide`), `TimedOut` wherever the run returns `RetryError::TimedOut`; each after the
//! attempt's future and guard were dropped.
//! Without timeouts `M = NoTimeouts` and the guard is always `None`.
//!
//! Cancellation: dropping the future drops the running attempt or the sleep, nothing else is
//! held. A retry-budget withdrawal made for a retry that has not started yet (the future is
//! in `Sleep` or `Yield`, or the user's notify hook panicked) is given back by the `Refund`
//! field's `Drop`, so `Run` itself has no `Drop` and can be rebuilt by `Run::when`. A retry
//! whose sleep ended past the total deadline never starts: `Start` gives it back at once.

use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::hooks::{DelayFor, Hooks, Layered, NoHooks, Notify, OnEvent, RetryEvent, When};
use super::timeouts::{AttemptError, NoTimeouts, RetryError, Timeouts};
use crate::error::Elapsed;
use crate::time::Timer;

mod sealed {
    pub trait Sealed {}
}

/// An operation the retry loop can call again and again: a closure returning a future of a
/// `Result`.
///
/// Implemented for every `FnMut() -> impl Future<Output = Result<T, E>>`; sealed.
///
/// # Examples
///
/// ```
/// use dike::retry::Operation;
///
/// fn assert_operation<O: Operation<Ok = u8, Error = &'static str>>(_: O) {}
/// assert_operation(|| async { Ok(1) });
/// ```
pub trait Operation: sealed::Sealed {
    /// The success type.
    type Ok;
    /// The error type.
    type Error;
    /// The future of one attempt.
    type Future: Future<Output = Result<Self::Ok, Self::Error>>;
    /// Starts one attempt.
    fn call(&mut self) -> Self::Future;
}

impl<F, Fut, T, E> sealed::Sealed for F
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
}

impl<F, Fut, T, E> Operation for F
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Ok = T;
    type Error = E;
    type Future = Fut;

    #[inline]
    fn call(&mut self) -> Fut {
        self()
    }
}

/// The operation of [`RetryFn::call`]: the wrapped function and a clone of its arguments per
/// attempt.
///
/// # Examples
///
/// ```
/// let retried = dike::retry::retry(
///     dike::retry::Retry::new(),
///     dike::time::ManualTimer::new(),
///     |n: u32| async move { Ok::<_, ()>(n) },
/// );
/// // `Run<ManualTimer, CallWith<'_, _, u32>, Backoff, NoHooks>`
/// let run = retried.call(1);
/// assert_eq!(smol::block_on(run), Ok(1));
/// ```
pub struct CallWith<'a, F, A> {
    f: &'a F,
    args: A,
}

impl<F, A: fmt::Debug> fmt::Debug for CallWith<'_, F, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallWith")
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl<F, A, Fut, T, E> sealed::Sealed for CallWith<'_, F, A>
where
    F: Fn(A) -> Fut,
    A: Clone,
    Fut: Future<Output = Result<T, E>>,
{
}

impl<F, A, Fut, T, E> Operation for CallWith<'_, F, A>
where
    F: Fn(A) -> Fut,
    A: Clone,
    Fut: Future<Output = Result<T, E>>,
{
    type Ok = T;
    type Error = E;
    type Future = Fut;

    #[inline]
    fn call(&mut self) -> Fut {
        (self.f)(self.args.clone())
    }
}

impl<'a, F, A> CallWith<'a, F, A> {
    pub(super) fn new(f: &'a F, args: A) -> Self {
        Self { f, args }
    }
}

/// The schedule, cloned from the policy and turned into its iterator at the first retry: a
/// call that succeeds at once never builds it.
enum Schedule<'a, S: IntoIterator> {
    Fresh(&'a S),
    Live(S::IntoIter),
}

impl<S: Clone + IntoIterator<Item = Duration>> Schedule<'_, S> {
    fn next(&mut self) -> Option<Duration> {
        if let Self::Fresh(schedule) = self {
            *self = Self::Live((*schedule).clone().into_iter());
        }
        match self {
            Self::Live(iter) => iter.next(),
            Self::Fresh(_) => None,
        }
    }
}

/// The time budget: none, not started, or ending at an instant.
#[derive(Clone, Copy)]
pub(crate) enum Limit {
    Unlimited,
    Budget(Duration),
    Until(Duration),
}

/// The policy's hooks, and whether a retry was paid for (withdrawn from a
/// [`RetryBudget`](super::RetryBudget)) and has not started yet: dropping it then gives the
/// withdrawal back. A field of its own so that [`Run`] needs no `Drop` and can be rebuilt by
/// [`Run::when`] and its siblings.
struct Refund<'a, E, H: Hooks<E>> {
    hooks: &'a H,
    held: bool,
    _error: PhantomData<fn(&E)>,
}

impl<E, H: Hooks<E>> Drop for Refund<'_, E, H> {
    fn drop(&mut self) {
        // Only the policy's hooks can hold a budget: a run's own hooks are `when`,
        // `notify`, `on_event` and `delay_for` over `NoHooks`, whose withdrawals are no-ops.
        if self.held {
            self.hooks.cancel_retry();
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, Sl> {
        Start,
        Attempt {
            #[pin] fut: Fut,
            // The attempt's timeout (its own or what is left of the total), if any.
            #[pin] guard: Option<Sl>,
            // When the guard fires, and whether that is the total deadline cutting the
            // attempt before its own timeout.
            end: Duration,
            cut: bool,
        },
        Sleep { #[pin] sleep: Sl },
        Yield,
        Done,
    }
}

pin_project! {
    /// The future of a retried operation: resolves to the first success, or to the last error
    /// once the policy gives up. Returned by [`Retry::run`](super::Retry::run),
    /// [`RetryExt::retry`](super::RetryExt::retry) and [`RetryFn::call`].
    ///
    /// It borrows the policy (`'a`), so one policy serves any number of runs. Its type names
    /// the timer, the operation, the schedule, the policy's hooks and the run's own hooks
    /// (`X`, [`NoHooks`](super::NoHooks) unless [`when`](Run::when),
    /// [`notify`](Run::notify) or [`delay_for`](Run::delay_for) added some), however many
    /// hooks the policy has.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the running attempt or the pending sleep; nothing else is held. A
    /// retry-budget withdrawal for a retry not yet started is given back.
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics ("`Run` polled after completion"); it
    /// never runs the operation again.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Retry, Run};
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let mut calls = 0;
    /// let policy = Retry::new();
    /// let run = policy.run(&timer, || {
    ///     calls += 1;
    ///     let n = calls;
    ///     async move { if n < 3 { Err("flaky") } else { Ok(n) } }
    /// });
    /// assert_eq!(smol::block_on(run), Ok(3));
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Run<'a, T, F, S, H, X = NoHooks, M = NoTimeouts>
    where
        T: Timer,
        F: Operation,
        S: Clone,
        S: IntoIterator<Item = Duration>,
        H: Hooks<F::Error>,
        X: Hooks<F::Error>,
        M: Timeouts,
    {
        timer: T,
        op: F,
        schedule: Schedule<'a, S>,
        extra: X,
        refund: Refund<'a, F::Error, H>,
        attempts: Option<NonZeroU32>,
        limit: Limit,
        // Attempts started so far.
        attempt: u32,
        timeouts: M,
        // The total timeout's end, once the first attempt started.
        deadline: Option<Duration>,
        // The last attempt's error, kept only under a total timeout (for `TimedOut`).
        last: Option<AttemptError<F::Error>>,
        #[pin]
        state: State<F::Future, T::Sleep>,
    }
}

impl<'a, T, F, S, H, M> Run<'a, T, F, S, H, NoHooks, M>
where
    T: Timer,
    F: Operation,
    S: Clone + IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
    M: Timeouts,
{
    #[inline]
    pub(super) fn new(timer: T, op: F, policy: &'a super::Retry<S, H, M>) -> Self {
        Self {
            timer,
            op,
            schedule: Schedule::Fresh(&policy.schedule),
            extra: NoHooks,
            refund: Refund {
                hooks: &policy.hooks,
                held: false,
                _error: PhantomData,
            },
            attempts: policy.attempts,
            limit: match policy.max_elapsed {
                Some(max) => Limit::Budget(max),
                None => Limit::Unlimited,
            },
            attempt: 0,
            timeouts: policy.timeouts,
            deadline: None,
            last: None,
            state: State::Start,
        }
    }
}

impl<'a, T, F, S, H, X, M> Run<'a, T, F, S, H, X, M>
where
    T: Timer,
    F: Operation,
    S: Clone + IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
    X: Hooks<F::Error>,
    M: Timeouts,
{
    /// How many attempts have started so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    ///
    /// let policy = Retry::new();
    /// let run = policy.run(ManualTimer::new(), || async { Ok::<_, ()>(()) });
    /// assert_eq!(run.attempts_started(), 0, "nothing runs before the first poll");
    /// ```
    pub fn attempts_started(&self) -> u32 {
        self.attempt
    }

    /// Retries only the errors `predicate` accepts, for this run, on top of the policy's
    /// own [`when`](super::Retry::when): both must accept.
    ///
    /// The error type is known here (it is the operation's), so the closure needs no
    /// annotation, as with backon's `.retry(..).when(..)`.
    ///
    /// # Cancel safety
    ///
    /// The returned future is cancel safe as [`Run`] is: dropping it leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::prelude::*;
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    ///
    /// static POLICY: Retry = Retry::new();
    /// let fetch = || async { Err::<(), _>(std::io::Error::other("reset")) };
    /// let result = smol::block_on(
    ///     fetch
    ///         .retry(&POLICY, ManualTimer::new())
    ///         .when(|e| e.kind() != std::io::ErrorKind::Other), // `e: &io::Error`, inferred
    /// );
    /// assert!(result.is_err(), "not retried: the predicate refused it");
    /// ```
    pub fn when<P>(self, predicate: P) -> Run<'a, T, F, S, H, When<P, X>, M>
    where
        P: Fn(&F::Error) -> bool,
    {
        self.with_extra(|inner| When { predicate, inner })
    }

    /// Lets an error choose its own delay for this run, as [`Retry::delay_for`] does for
    /// every run; this run's override wins over the policy's.
    ///
    /// [`Retry::delay_for`]: super::Retry::delay_for
    ///
    /// # Cancel safety
    ///
    /// The returned future is cancel safe as [`Run`] is: dropping it leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::prelude::*;
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    ///
    /// struct Busy { retry_after: Duration }
    /// # impl core::fmt::Debug for Busy {
    /// #     fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str("Busy") }
    /// # }
    /// let policy = Retry::fixed(Duration::from_millis(10)).try_with_attempts(2)?;
    /// let timer = ManualTimer::new();
    /// let op = || async { Err::<(), _>(Busy { retry_after: Duration::from_secs(2) }) };
    /// let run = op.retry(&policy, &timer).delay_for(|e| Some(e.retry_after));
    /// let mut run = core::pin::pin!(run);
    /// assert!(futures_util::FutureExt::now_or_never(run.as_mut()).is_none());
    /// assert_eq!(timer.next_deadline(), Some(Duration::from_secs(2)));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn delay_for<D>(self, delay: D) -> Run<'a, T, F, S, H, DelayFor<D, X>, M>
    where
        D: Fn(&F::Error) -> Option<Duration>,
    {
        self.with_extra(|inner| DelayFor { delay, inner })
    }

    /// Calls `hook(&error, attempt, next)` for each failure of this run that will be retried
    /// (after the policy's own [`notify`](super::Retry::notify)).
    ///
    /// # Cancel safety
    ///
    /// The returned future is cancel safe as [`Run`] is: dropping it leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::prelude::*;
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    ///
    /// let policy = Retry::new().try_with_attempts(3)?;
    /// let failures = core::cell::Cell::new(0);
    /// let op = || async { Err::<(), _>("down") };
    /// let run = op
    ///     .retry(&policy, ManualTimer::new())
    ///     .notify(|e, attempt, _| {
    ///         assert_eq!(*e, "down");
    ///         failures.set(attempt);
    ///     });
    /// assert_eq!(smol::block_on(run), Err("down"));
    /// assert_eq!(failures.get(), 2);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn notify<N>(self, hook: N) -> Run<'a, T, F, S, H, Notify<N, X>, M>
    where
        N: Fn(&F::Error, u32, Option<Duration>),
    {
        self.with_extra(|inner| Notify {
            notify: hook,
            inner,
        })
    }

    /// Calls `hook` with every [`RetryEvent`] of this run (after the policy's own
    /// [`on_event`](super::Retry::on_event)); the error type is inferred.
    ///
    /// # Cancel safety
    ///
    /// The returned future is cancel safe as [`Run`] is: dropping it leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::prelude::*;
    /// use dike::retry::{Retry, RetryEvent};
    /// use dike::time::ManualTimer;
    ///
    /// let policy = Retry::new().try_with_attempts(3)?;
    /// let retries = core::cell::Cell::new(0);
    /// let op = || async { Err::<(), _>("down") };
    /// let run = op.retry(&policy, ManualTimer::new()).on_event(|event| {
    ///     if let RetryEvent::Retrying { error, .. } = event {
    ///         assert_eq!(error, Some(&"down"));
    ///         retries.set(retries.get() + 1);
    ///     }
    /// });
    /// assert_eq!(smol::block_on(run), Err("down"));
    /// assert_eq!(retries.get(), 2);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn on_event<G>(self, hook: G) -> Run<'a, T, F, S, H, OnEvent<G, X>, M>
    where
        G: Fn(RetryEvent<'_, F::Error>),
    {
        self.with_extra(|inner| OnEvent { hook, inner })
    }

    /// Resolves to an [`Outcome`]: the result together with the number of attempts made and
    /// the time taken (tenacity's statistics, failsafe's `ExecutionResult`).
    ///
    /// # Cancel safety
    ///
    /// The returned future is cancel safe as [`Run`] is: dropping it leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::prelude::*;
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    ///
    /// let policy = Retry::new().try_with_attempts(3)?;
    /// let op = || async { Err::<(), _>("down") };
    /// let outcome = smol::block_on(op.retry(&policy, ManualTimer::new()).outcome());
    /// assert_eq!(outcome.attempts(), 3);
    /// assert_eq!(outcome.elapsed(), Duration::ZERO);
    /// assert_eq!(outcome.into_result(), Err("down"));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn outcome(self) -> RunOutcome<Self> {
        RunOutcome {
            run: self,
            start: None,
            done: false,
        }
    }

    fn with_extra<X2>(self, f: impl FnOnce(X) -> X2) -> Run<'a, T, F, S, H, X2, M>
    where
        X2: Hooks<F::Error>,
    {
        let Self {
            timer,
            op,
            schedule,
            extra,
            refund,
            attempts,
            limit,
            attempt,
            timeouts,
            deadline,
            last,
            state,
        } = self;
        Run {
            timer,
            op,
            schedule,
            extra: f(extra),
            refund,
            attempts,
            limit,
            attempt,
            timeouts,
            deadline,
            last,
            state,
        }
    }
}

impl<T, F, S, H, X, M> fmt::Debug for Run<'_, T, F, S, H, X, M>
where
    T: Timer,
    F: Operation,
    S: Clone + IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
    X: Hooks<F::Error>,
    M: Timeouts,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "start",
            State::Attempt { .. } => "attempt",
            State::Sleep { .. } => "sleep",
            State::Yield => "yield",
            State::Done => "done",
        };
        f.debug_struct("Run")
            .field("attempt", &self.attempt)
            .field("state", &format_args!("{state}"))
            .finish_non_exhaustive()
    }
}

impl<T, F, S, H, X, M> Future for Run<'_, T, F, S, H, X, M>
where
    T: Timer,
    F: Operation,
    F::Error: fmt::Debug,
    S: Clone + IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
    X: Hooks<F::Error>,
    M: Timeouts,
{
    type Output = Result<F::Ok, M::Error<F::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Start => {
                    // The retry paid for (if any) starts now, unless the deadline passed.
                    let paid = core::mem::take(&mut this.refund.held);
                    // Read the clock only when something needs it: a plain policy's
                    // first attempt costs no clock read.
                    let timed =
                        this.timeouts.attempt().is_some() || this.timeouts.total().is_some();
                    let now = if timed || matches!(this.limit, Limit::Budget(_)) {
                        this.timer.now()
                    } else {
                        Duration::ZERO
                    };
                    if let Limit::Budget(max) = *this.limit {
                        *this.limit = Limit::Until(now.saturating_add(max));
                    }
                    if this.deadline.is_none() {
                        *this.deadline = this.timeouts.total().map(|t| now.saturating_add(t));
                    }
                    if let Some(deadline) = *this.deadline {
                        // A sleep that overran the deadline (a late real timer): no attempt.
                        if now >= deadline {
                            this.state.set(State::Done);
                            if paid {
                                // No attempt: the retry was never made; give it back.
                                this.refund.hooks.cancel_retry();
                            }
                            let hooks = Layered {
                                outer: &*this.extra,
                                inner: this.refund.hooks,
                            };
                            let last = this.last.take();
                            return Poll::Ready(Err(timed_out(
                                &hooks,
                                *this.attempt,
                                this.timeouts,
                                last,
                            )));
                        }
                    }
                    // The attempt's guard: its own timeout, cut to the total deadline.
                    let own = this.timeouts.attempt().map(|t| now.saturating_add(t));
                    let (end, cut) = match (own, *this.deadline) {
                        (Some(own), Some(total)) if total < own => (Some(total), true),
                        (Some(own), _) => (Some(own), false),
                        (None, Some(total)) => (Some(total), true),
                        (None, None) => (None, false),
                    };
                    *this.attempt = this.attempt.saturating_add(1);
                    let fut = this.op.call();
                    let guard = end.map(|end| this.timer.sleep_until(end));
                    this.state.set(State::Attempt {
                        fut,
                        guard,
                        end: end.unwrap_or(Duration::MAX),
                        cut,
                    });
                }
                StateProj::Attempt {
                    fut,
                    guard,
                    end,
                    cut,
                } => {
                    let error = match fut.poll(cx) {
                        Poll::Pending => {
                            let fired = guard.as_pin_mut().is_some_and(|g| g.poll(cx).is_ready());
                            if !fired {
                                return Poll::Pending;
                            }
                            if *cut {
                                // The total deadline cut the attempt: it has no error of its
                                // own; report the one before.
                                this.state.set(State::Done);
                                let hooks = Layered {
                                    outer: &*this.extra,
                                    inner: this.refund.hooks,
                                };
                                let last = this.last.take();
                                return Poll::Ready(Err(timed_out(
                                    &hooks,
                                    *this.attempt,
                                    this.timeouts,
                                    last,
                                )));
                            }
                            AttemptError::TimedOut(Elapsed::new(*end))
                        }
                        Poll::Ready(Ok(value)) => {
                            this.state.set(State::Done);
                            *this.last = None;
                            Layered {
                                outer: &*this.extra,
                                inner: this.refund.hooks,
                            }
                            .on_success();
                            return Poll::Ready(Ok(value));
                        }
                        Poll::Ready(Err(error)) => AttemptError::Failed(error),
                    };
                    // The attempt's future and its guard are dropped before the hooks run.
                    this.state.set(State::Done);
                    let now = this.timer.now();
                    let hooks = Layered {
                        outer: &*this.extra,
                        inner: this.refund.hooks,
                    };
                    let failure = match &error {
                        AttemptError::Failed(error) => Failure::Error(error),
                        AttemptError::TimedOut(elapsed) => {
                            hooks.on_event(RetryEvent::AttemptTimedOut {
                                attempt: *this.attempt,
                                timeout: this.timeouts.attempt().unwrap_or_default(),
                            });
                            Failure::TimedOut(*elapsed)
                        }
                    };
                    let decision = decide(
                        failure,
                        *this.attempt,
                        *this.attempts,
                        *this.limit,
                        *this.deadline,
                        now,
                        || this.schedule.next(),
                        &hooks,
                        &mut this.refund.held,
                    );
                    let delay = match decision {
                        Decision::Retry(delay) => delay,
                        Decision::GiveUp => return Poll::Ready(Err(M::error(error.into()))),
                        Decision::OutOfTime => {
                            return Poll::Ready(Err(timed_out(
                                &hooks,
                                *this.attempt,
                                this.timeouts,
                                Some(error),
                            )));
                        }
                    };
                    if this.deadline.is_some() {
                        *this.last = Some(error);
                    }
                    if delay.is_zero() {
                        this.state.set(State::Yield);
                    } else {
                        let sleep = this.timer.sleep_until(now.saturating_add(delay));
                        this.state.set(State::Sleep { sleep });
                    }
                }
                StateProj::Sleep { sleep } => {
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.state.set(State::Start);
                }
                StateProj::Yield => {
                    this.state.set(State::Start);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                StateProj::Done => panic!("`Run` polled after completion"),
            }
        }
    }
}

/// Ends a run on its total timeout: the `TimedOut` event (after `attempts` attempts), then the
/// error carrying the last attempt's error, if any.
fn timed_out<E, K: Hooks<E>, M: Timeouts>(
    hooks: &K,
    attempts: u32,
    timeouts: &M,
    last: Option<AttemptError<E>>,
) -> M::Error<E> {
    hooks.on_event(RetryEvent::TimedOut {
        attempts,
        timeout: timeouts.total().unwrap_or_default(),
    });
    M::error(RetryError::TimedOut { last })
}

/// What a retried call came to: its result, how many attempts it took and how long; from
/// [`Run::outcome`].
///
/// # Examples
///
/// ```
/// use dike::prelude::*;
/// use dike::retry::{Outcome, Retry};
/// use dike::time::ManualTimer;
///
/// let policy = Retry::new();
/// let mut calls = 0;
/// let op = || {
///     calls += 1;
///     let n = calls;
///     async move { if n < 2 { Err("flaky") } else { Ok(n) } }
/// };
/// let outcome: Outcome<u32, &str> = smol::block_on(op.retry(&policy, ManualTimer::new()).outcome());
/// assert_eq!((outcome.attempts(), outcome.result()), (2, &Ok(2)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T, E> {
    result: Result<T, E>,
    attempts: u32,
    elapsed: Duration,
}

impl<T, E> Outcome<T, E> {
    /// The first success, or the last error, unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # use dike::prelude::*;
    /// # let policy = dike::retry::Retry::new();
    /// let op = || async { Ok::<_, ()>(7) };
    /// let outcome = smol::block_on(op.retry(&policy, dike::time::ManualTimer::new()).outcome());
    /// assert_eq!(outcome.result(), &Ok(7));
    /// ```
    pub const fn result(&self) -> &Result<T, E> {
        &self.result
    }

    /// The result, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// # use dike::prelude::*;
    /// # let policy = dike::retry::Retry::new();
    /// let op = || async { Ok::<_, ()>(7) };
    /// let outcome = smol::block_on(op.retry(&policy, dike::time::ManualTimer::new()).outcome());
    /// assert_eq!(outcome.into_result(), Ok(7));
    /// ```
    pub fn into_result(self) -> Result<T, E> {
        self.result
    }

    /// How many times the operation was called, the first call included (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// # use dike::prelude::*;
    /// # let policy = dike::retry::Retry::new();
    /// let op = || async { Ok::<_, ()>(7) };
    /// let outcome = smol::block_on(op.retry(&policy, dike::time::ManualTimer::new()).outcome());
    /// assert_eq!(outcome.attempts(), 1);
    /// ```
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The timer's time from the first attempt's start to the outcome: attempts and delays.
    ///
    /// # Examples
    ///
    /// ```
    /// # use dike::prelude::*;
    /// # let policy = dike::retry::Retry::new();
    /// let op = || async { Ok::<_, ()>(7) };
    /// let outcome = smol::block_on(op.retry(&policy, dike::time::ManualTimer::new()).outcome());
    /// assert_eq!(outcome.elapsed(), core::time::Duration::ZERO);
    /// ```
    pub const fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

pin_project! {
    /// A [`Run`] that resolves to an [`Outcome`] (result, attempts, elapsed time) instead of
    /// the bare result; built by [`Run::outcome`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Run`]: dropping it drops the attempt or the sleep in progress.
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics ("`RunOutcome` polled after completion").
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::prelude::*;
    /// use dike::retry::{Retry, RunOutcome};
    ///
    /// let policy = Retry::new();
    /// let op = || async { Ok::<_, ()>(1) };
    /// let outcome = op.retry(&policy, dike::time::ManualTimer::new()).outcome();
    /// assert_eq!(smol::block_on(outcome).attempts(), 1);
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct RunOutcome<R> {
        #[pin]
        run: R,
        start: Option<Duration>,
        done: bool,
    }
}

impl<R: fmt::Debug> fmt::Debug for RunOutcome<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOutcome")
            .field("run", &self.run)
            .finish()
    }
}

impl<T, F, S, H, X, M> Future for RunOutcome<Run<'_, T, F, S, H, X, M>>
where
    T: Timer,
    F: Operation,
    F::Error: fmt::Debug,
    S: Clone + IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
    X: Hooks<F::Error>,
    M: Timeouts,
{
    type Output = Outcome<F::Ok, M::Error<F::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        assert!(!*this.done, "`RunOutcome` polled after completion");
        let start = *this.start.get_or_insert_with(|| this.run.timer.now());
        let mut run = this.run;
        let result = core::task::ready!(run.as_mut().poll(cx));
        *this.done = true;
        let end = run.as_mut().project().timer.now();
        Poll::Ready(Outcome {
            result,
            attempts: run.attempt,
            elapsed: end.saturating_sub(start),
        })
    }
}

/// What to do after a failed attempt.
pub(crate) enum Decision {
    /// Retry after this delay.
    Retry(Duration),
    /// Give up: return the attempt's error.
    GiveUp,
    /// Give up because no retry fits before the total timeout.
    OutOfTime,
}

/// How an attempt failed, as [`decide`] needs to see it: the operation's error, borrowed
/// (the caller keeps it, to return or to remember), or the attempt's timeout.
pub(crate) enum Failure<'a, E> {
    Error(&'a E),
    // The attempt's deadline: only the tracing event reads it.
    TimedOut(#[cfg_attr(not(feature = "tracing"), allow(dead_code))] Elapsed),
}

impl<E> Clone for Failure<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Failure<'_, E> {}

impl<'a, E> Failure<'a, E> {
    fn error(self) -> Option<&'a E> {
        match self {
            Self::Error(error) => Some(error),
            Self::TimedOut(_) => None,
        }
    }
}

/// After a failure of attempt number `attempt`: the delay before the next one, or why to
/// give up. Notifies, reports an event for (and traces) every retry and every budget
/// refusal. A timed-out attempt has no error for the hooks: it is always retryable, on the
/// schedule, unnotified (its events carry no error).
///
/// `retry_held` is set as soon as the budget pays for the retry, before the user's `notify`
/// runs: if that hook panics, dropping the future still gives the withdrawal back.
#[allow(clippy::too_many_arguments)] // the loop's state, passed apart to keep borrows split
pub(crate) fn decide<E: fmt::Debug, H: Hooks<E>>(
    failure: Failure<'_, E>,
    attempt: u32,
    attempts: Option<NonZeroU32>,
    limit: Limit,
    deadline: Option<Duration>,
    now: Duration,
    next_scheduled: impl FnOnce() -> Option<Duration>,
    hooks: &H,
    retry_held: &mut bool,
) -> Decision {
    let own = failure.error();
    if own.is_some_and(|error| !hooks.should_retry(error)) {
        return Decision::GiveUp;
    }
    // The operation's own error as it always was, or the attempt timeout.
    #[cfg(feature = "tracing")]
    let error: &dyn fmt::Debug = match &failure {
        Failure::Error(error) => error,
        Failure::TimedOut(elapsed) => elapsed,
    };
    if attempts.is_some_and(|max| attempt >= max.get()) {
        return Decision::GiveUp;
    }
    let Some(scheduled) = next_scheduled() else {
        return Decision::GiveUp;
    };
    let delay = own
        .and_then(|error| hooks.delay_override(error))
        .unwrap_or(scheduled);
    let wake = now.saturating_add(delay);
    if let Some(deadline) = deadline {
        // The next attempt needs some time before the deadline.
        if wake >= deadline {
            return Decision::OutOfTime;
        }
    }
    if let Limit::Until(limit) = limit {
        // Time must be left, and the sleep must end within it.
        if now >= limit || wake > limit {
            return Decision::GiveUp;
        }
    }
    if !hooks.acquire_retry() {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            attempt,
            error = ?error,
            "Caught error {:?}. Retry budget exhausted, not retrying",
            error
        );
        if let Some(error) = own {
            hooks.notify(error, attempt, None);
        }
        hooks.on_event(RetryEvent::BudgetRefused {
            attempt,
            error: own,
        });
        return Decision::GiveUp;
    }
    *retry_held = true;
    #[cfg(feature = "tracing")]
    tracing::warn!(
        attempt,
        delay = ?delay,
        error = ?error,
        "Caught error {:?}. Retrying in {}s ...",
        error,
        delay.as_secs_f64()
    );
    if let Some(error) = own {
        hooks.notify(error, attempt, Some(delay));
    }
    hooks.on_event(RetryEvent::Retrying {
        attempt,
        delay,
        error: own,
    });
    Decision::Retry(delay)
}

/// An async function wrapped so that every call is retried, like Python dike's `@retry`
/// decorator; built by [`retry`](super::retry).
///
/// It owns its policy and timer; each call borrows them, so nothing is cloned per call.
///
/// # Examples
///
/// ```
/// use dike::retry::{Retry, retry};
/// use dike::time::ManualTimer;
///
/// async fn double(n: u32) -> Result<u32, &'static str> {
///     Ok(n * 2)
/// }
///
/// let double = retry(Retry::new().try_with_attempts(3)?, ManualTimer::new(), double);
/// assert_eq!(smol::block_on(double.call(21)), Ok(42));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct RetryFn<T, F, S, H, M = NoTimeouts> {
    pub(super) policy: super::Retry<S, H, M>,
    pub(super) timer: T,
    pub(super) f: F,
}

impl<T, F, S: fmt::Debug, H: fmt::Debug, M: Timeouts> fmt::Debug for RetryFn<T, F, S, H, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryFn")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T, F, S, H, M> RetryFn<T, F, S, H, M>
where
    T: Timer,
    S: Clone + IntoIterator<Item = Duration>,
    M: Timeouts,
{
    /// Calls the wrapped function with `args`, retrying per the policy; each attempt gets a
    /// clone of `args`. Several arguments go in a tuple; none, see [`call0`](Self::call0).
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future cancels the call, as for [`Run`].
    ///
    /// # Errors
    ///
    /// The last attempt's error, unchanged, once the policy gives up.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Retry, retry};
    /// use dike::time::ManualTimer;
    ///
    /// let add = retry(Retry::new(), ManualTimer::new(), |(a, b): (u32, u32)| async move {
    ///     a.checked_add(b).ok_or("overflow")
    /// });
    /// assert_eq!(smol::block_on(add.call((2, 3))), Ok(5));
    /// ```
    pub fn call<A, Fut, R, E>(&self, args: A) -> Run<'_, &T, CallWith<'_, F, A>, S, H, NoHooks, M>
    where
        F: Fn(A) -> Fut,
        A: Clone,
        Fut: Future<Output = Result<R, E>>,
        H: Hooks<E>,
    {
        self.policy.run(&self.timer, CallWith::new(&self.f, args))
    }

    /// Calls the wrapped function, which takes no argument, retrying per the policy.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future cancels the call, as for [`Run`].
    ///
    /// # Errors
    ///
    /// The last attempt's error, unchanged, once the policy gives up.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Retry, retry};
    /// use dike::time::ManualTimer;
    ///
    /// async fn ping() -> Result<&'static str, &'static str> {
    ///     Ok("pong")
    /// }
    ///
    /// let ping = retry(Retry::new(), ManualTimer::new(), ping);
    /// assert_eq!(smol::block_on(ping.call0()), Ok("pong"));
    /// ```
    pub fn call0<Fut, R, E>(&self) -> Run<'_, &T, &F, S, H, NoHooks, M>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<R, E>>,
        H: Hooks<E>,
    {
        self.policy.run(&self.timer, &self.f)
    }
}
