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
//! notified with `None`), then notify and the tracing event. The time budget's end is fixed
//! when the first attempt starts, so attempt time counts.
//!
//! The schedule is turned into its iterator at the first failure, so a call that succeeds at
//! once costs no more than the attempt and a few branches.
//!
//! A zero delay does not touch the timer: the future wakes itself and returns `Pending` once,
//! so the executor runs other tasks before the retry (tokio's timer would round a zero sleep
//! up to a 1 ms tick).
//!
//! Cancellation: dropping the future drops the running attempt or the sleep, nothing else is
//! held. A retry-budget withdrawal made for a retry that has not started yet (the future is
//! in `Sleep` or `Yield`) is given back by the `PinnedDrop`.

use core::fmt;
use core::future::Future;
use core::num::NonZeroU32;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::hooks::Hooks;
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

/// The schedule, turned into its iterator at the first retry: a call that succeeds at once
/// never builds it.
enum Schedule<S, I> {
    Fresh(S),
    Live(I),
    Taken,
}

impl<S: IntoIterator<Item = Duration>> Schedule<S, S::IntoIter> {
    fn next(&mut self) -> Option<Duration> {
        if matches!(self, Self::Fresh(_)) {
            if let Self::Fresh(schedule) = core::mem::replace(self, Self::Taken) {
                *self = Self::Live(schedule.into_iter());
            }
        }
        match self {
            Self::Live(iter) => iter.next(),
            _ => None,
        }
    }
}

/// The time budget: none, not started, or ending at an instant.
#[derive(Clone, Copy)]
enum Limit {
    Unlimited,
    Budget(Duration),
    Until(Duration),
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, Sl> {
        Start,
        Attempt { #[pin] fut: Fut },
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
    /// Its type names the timer, the operation, the schedule and the hooks, and nothing
    /// else, however many hooks the policy has.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the running attempt or the pending sleep; nothing else is held. A
    /// retry-budget withdrawal for a retry not yet started is given back.
    ///
    /// # Panics
    ///
    /// Polling it again after it returned `Ready` panics, as for most futures.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Retry, Run};
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let mut calls = 0;
    /// let run = Retry::new().run(&timer, || {
    ///     calls += 1;
    ///     let n = calls;
    ///     async move { if n < 3 { Err("flaky") } else { Ok(n) } }
    /// });
    /// assert_eq!(smol::block_on(run), Ok(3));
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Run<T, F, S, H>
    where
        T: Timer,
        F: Operation,
        S: IntoIterator<Item = Duration>,
        H: Hooks<F::Error>,
    {
        timer: T,
        op: F,
        schedule: Schedule<S, S::IntoIter>,
        hooks: H,
        attempts: Option<NonZeroU32>,
        limit: Limit,
        // Attempts started so far.
        attempt: u32,
        // A retry was withdrawn from the budget and has not started yet.
        retry_held: bool,
        #[pin]
        state: State<F::Future, T::Sleep>,
    }

    impl<T, F, S, H> PinnedDrop for Run<T, F, S, H>
    where
        T: Timer,
        F: Operation,
        S: IntoIterator<Item = Duration>,
        H: Hooks<F::Error>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.retry_held {
                this.hooks.cancel_retry();
            }
        }
    }
}

impl<T, F, S, H> Run<T, F, S, H>
where
    T: Timer,
    F: Operation,
    S: IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
{
    #[inline]
    pub(super) fn new(
        timer: T,
        op: F,
        schedule: S,
        hooks: H,
        attempts: Option<NonZeroU32>,
        max_elapsed: Option<Duration>,
    ) -> Self {
        Self {
            timer,
            op,
            schedule: Schedule::Fresh(schedule),
            hooks,
            attempts,
            limit: match max_elapsed {
                Some(max) => Limit::Budget(max),
                None => Limit::Unlimited,
            },
            attempt: 0,
            retry_held: false,
            state: State::Start,
        }
    }

    /// How many attempts have started so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    ///
    /// let run = Retry::new().run(ManualTimer::new(), || async { Ok::<_, ()>(()) });
    /// assert_eq!(run.attempts_started(), 0, "nothing runs before the first poll");
    /// ```
    pub fn attempts_started(&self) -> u32 {
        self.attempt
    }
}

impl<T, F, S, H> fmt::Debug for Run<T, F, S, H>
where
    T: Timer,
    F: Operation,
    S: IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
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
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<T, F, S, H> Future for Run<T, F, S, H>
where
    T: Timer,
    F: Operation,
    F::Error: fmt::Debug,
    S: IntoIterator<Item = Duration>,
    H: Hooks<F::Error>,
{
    type Output = Result<F::Ok, F::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Start => {
                    if let Limit::Budget(max) = *this.limit {
                        *this.limit = Limit::Until(this.timer.now().saturating_add(max));
                    }
                    *this.retry_held = false;
                    *this.attempt = this.attempt.saturating_add(1);
                    let fut = this.op.call();
                    this.state.set(State::Attempt { fut });
                }
                StateProj::Attempt { fut } => {
                    let error = match fut.poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(value)) => {
                            this.state.set(State::Done);
                            this.hooks.on_success();
                            return Poll::Ready(Ok(value));
                        }
                        Poll::Ready(Err(error)) => error,
                    };
                    // The attempt's future is dropped before the hooks run.
                    this.state.set(State::Done);
                    let now = this.timer.now();
                    let Some(delay) = decide(
                        &error,
                        *this.attempt,
                        *this.attempts,
                        *this.limit,
                        now,
                        this.schedule,
                        this.hooks,
                        this.retry_held,
                    ) else {
                        return Poll::Ready(Err(error));
                    };
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

/// After a failure of attempt number `attempt`: the delay before the next one, or `None` to
/// give up. Notifies (and traces) every retry and every budget refusal.
///
/// `retry_held` is set as soon as the budget pays for the retry, before the user's `notify`
/// runs: if that hook panics, dropping the future still gives the withdrawal back.
#[allow(clippy::too_many_arguments)] // the loop's state, passed apart to keep borrows split
fn decide<E: fmt::Debug, S: IntoIterator<Item = Duration>, H: Hooks<E>>(
    error: &E,
    attempt: u32,
    attempts: Option<NonZeroU32>,
    limit: Limit,
    now: Duration,
    schedule: &mut Schedule<S, S::IntoIter>,
    hooks: &mut H,
    retry_held: &mut bool,
) -> Option<Duration> {
    if !hooks.should_retry(error) {
        return None;
    }
    if attempts.is_some_and(|max| attempt >= max.get()) {
        return None;
    }
    let scheduled = schedule.next()?;
    let delay = hooks.delay_override(error).unwrap_or(scheduled);
    if let Limit::Until(limit) = limit {
        // Time must be left, and the sleep must end within it.
        if now >= limit || now.saturating_add(delay) > limit {
            return None;
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
        hooks.notify(error, attempt, None);
        return None;
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
    hooks.notify(error, attempt, Some(delay));
    Some(delay)
}

/// An async function wrapped so that every call is retried, like Python dike's `@retry`
/// decorator; built by [`retry`](super::retry).
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
/// let double = retry(Retry::new().with_attempts(3)?, ManualTimer::new(), double);
/// assert_eq!(smol::block_on(double.call(21)), Ok(42));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct RetryFn<T, F, S, H> {
    pub(super) policy: super::Retry<S, H>,
    pub(super) timer: T,
    pub(super) f: F,
}

impl<T, F, S: fmt::Debug, H: fmt::Debug> fmt::Debug for RetryFn<T, F, S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryFn")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T, F, S, H> RetryFn<T, F, S, H>
where
    T: Timer,
    S: IntoIterator<Item = Duration> + Clone,
    H: Clone,
{
    /// Calls the wrapped function with `args`, retrying per the policy; each attempt gets a
    /// clone of `args`. Several arguments go in a tuple.
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
    pub fn call<A, Fut, R, E>(&self, args: A) -> Run<T, CallWith<'_, F, A>, S, H>
    where
        F: Fn(A) -> Fut,
        A: Clone,
        Fut: Future<Output = Result<R, E>>,
        H: Hooks<E>,
    {
        self.policy
            .clone()
            .run(self.timer.clone(), CallWith::new(&self.f, args))
    }
}
