//! The [`Acquire`] future.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::engine::Decision;
use super::line::{Join, Turn};
use super::{Throttle, nanos};
use crate::time::Timer;

pin_project! {
    /// Where an [`Acquire`] is: one state machine, each state holding only what it needs.
    #[project = StateProj]
    enum State<'a, S> {
        /// Not polled yet.
        Start,
        /// In the line, waiting for its turn.
        Queued { #[pin] join: Join<'a> },
        /// Head of the line: checks the schedule, sleeps until its slot. Dropping the turn
        /// hands the head to the next waiter.
        Head { turn: Turn<'a>, #[pin] sleep: Option<S> },
        /// Completed: admitted (or a cost of zero).
        Done,
    }
}

pin_project! {
    /// The future of [`Throttle::acquire`] and [`Throttle::acquire_n`]: resolves once its
    /// units are admitted.
    ///
    /// On its first poll it joins the throttle's FIFO line (with `alloc`). Only the head of
    /// the line checks the throttle: when refused, it sleeps on the timer until the instant
    /// the throttle would admit it and checks again; once admitted it completes and the next
    /// waiter becomes the head. So however many wait, one sleep is registered at a time, and
    /// admission order is arrival order (see [Fairness](super#fairness)).
    ///
    /// Holds no reservation: dropping it at any point consumes no unit. Dropped in the line,
    /// it leaves the line; dropped at the head, it passes its turn to the next waiter.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::{ManualTimer, Timer};
    /// use futures_util::FutureExt;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::per_second(1)?;
    /// throttle.try_acquire(&timer).unwrap();
    ///
    /// let mut wait = Box::pin(throttle.acquire(&timer));
    /// assert!(wait.as_mut().now_or_never().is_none()); // pending: sleeps until 1 s
    /// drop(wait); // reserved nothing
    ///
    /// timer.advance(Duration::from_secs(1));
    /// assert!(throttle.try_acquire(&timer).is_ok());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Acquire<'a, T: Timer> {
        throttle: &'a Throttle,
        timer: T,
        n: u32,
        #[pin]
        state: State<'a, T::Sleep>,
    }
}

impl<'a, T: Timer> Acquire<'a, T> {
    pub(super) fn new(throttle: &'a Throttle, timer: T, n: u32) -> Self {
        Self {
            throttle,
            timer,
            n,
            state: State::Start,
        }
    }
}

impl<T: Timer> fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Start => "unpolled",
            State::Queued { .. } => "queued",
            State::Head { sleep: Some(_), .. } => "sleeping",
            State::Head { .. } => "head",
            State::Done => "done",
        };
        f.debug_struct("Acquire")
            .field("throttle", self.throttle)
            .field("n", &self.n)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<T: Timer> Future for Acquire<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Start if *this.n == 0 => {
                    this.state.set(State::Done);
                    return Poll::Ready(());
                }
                StateProj::Start => {
                    let join = this.throttle.line.join();
                    this.state.set(State::Queued { join });
                }
                StateProj::Queued { join } => {
                    let turn = ready!(join.poll_turn(cx));
                    this.state.set(State::Head { turn, sleep: None });
                }
                StateProj::Head { sleep, .. } => {
                    ready!(poll_schedule(this.throttle, this.timer, *this.n, sleep, cx));
                    // Dropping the turn hands the head to the next waiter, waking it.
                    this.state.set(State::Done);
                    return Poll::Ready(());
                }
                StateProj::Done => panic!("`Acquire` polled after completion"),
            }
        }
    }
}

/// The head of the line's wait: `Ready` once `n` units are admitted (and taken).
///
/// Check, sleep until `NotUntil`, return `Pending` on that sleep. A sleep that is already over
/// (the clock moved on, or a `try_acquire` took the slot we woke for) goes round again; a
/// timer whose sleeps complete before its clock reaches the deadline breaks the `Timer`
/// contract, and then we yield rather than spin.
pub(super) fn poll_schedule<T: Timer>(
    throttle: &Throttle,
    timer: &T,
    n: u32,
    mut sleep: Pin<&mut Option<T::Sleep>>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    for _ in 0..3 {
        if let Some(pending) = sleep.as_mut().as_pin_mut() {
            ready!(pending.poll(cx));
            sleep.set(None);
        }
        match throttle.engine.check(nanos(timer.now()), n) {
            Decision::Ok => return Poll::Ready(()),
            // The end of time: never admitted, so wait for ever without a sleep.
            Decision::Never => return Poll::Pending,
            Decision::NotUntil(at) => sleep.set(Some(timer.sleep_until(Duration::from_nanos(at)))),
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}
