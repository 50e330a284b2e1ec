//! The [`AcquireOwned`] future: [`Acquire`](super::Acquire) through an `Arc<Throttle>`.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::ops::Deref;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::Throttle;
use super::future::poll_schedule;
use crate::gate::{EnterBy, Gate, PermitBy};
use crate::time::Timer;

/// The throttle's waiting line, reached through the `Arc` that keeps the throttle alive.
#[derive(Clone)]
pub(super) struct LineOf(Arc<Throttle>);

impl Deref for LineOf {
    type Target = Gate;

    #[inline]
    fn deref(&self) -> &Gate {
        self.0.line.gate()
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S> {
        Start,
        Queued { enter: EnterBy<LineOf> },
        Head { turn: Option<PermitBy<LineOf>>, #[pin] sleep: Option<S> },
        Done,
    }
}

pin_project! {
    /// The future of [`Throttle::acquire_owned`]: [`Acquire`](super::Acquire) for an
    /// `Arc<Throttle>`, so it is `'static` (and `Send` when the timer and its sleep are), to
    /// keep in a struct or move into a spawned task.
    ///
    /// It waits in the throttle's own FIFO line with every other waiter of the throttle,
    /// borrowed or owned: only the head of the line checks the throttle and sleeps until its
    /// slot (see [Fairness](super#fairness)).
    ///
    /// Holds no reservation: dropping it at any point consumes no unit. Dropped in the line,
    /// it leaves the line; dropped at the head, it passes its turn to the next waiter.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use core::time::Duration;
    /// use dike::throttle::{AcquireOwned, Throttle};
    /// use dike::time::ManualTimer;
    /// use futures_util::FutureExt;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Arc::new(Throttle::per_second(1)?);
    /// throttle.try_acquire(&timer).unwrap();
    /// let mut wait: AcquireOwned<ManualTimer> = throttle.acquire_owned(timer.clone());
    /// assert!((&mut wait).now_or_never().is_none(), "the next slot is 1 s away");
    /// timer.advance(Duration::from_secs(1));
    /// assert_eq!(wait.now_or_never(), Some(()));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct AcquireOwned<T: Timer> {
        throttle: Arc<Throttle>,
        timer: T,
        n: u32,
        #[pin]
        state: State<T::Sleep>,
    }
}

impl<T: Timer> AcquireOwned<T> {
    pub(super) fn new(throttle: Arc<Throttle>, timer: T, n: u32) -> Self {
        Self {
            throttle,
            timer,
            n,
            state: State::Start,
        }
    }
}

impl<T: Timer> fmt::Debug for AcquireOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Start => "unpolled",
            State::Queued { .. } => "queued",
            State::Head { sleep: Some(_), .. } => "sleeping",
            State::Head { .. } => "head",
            State::Done => "done",
        };
        f.debug_struct("AcquireOwned")
            .field("throttle", &*self.throttle)
            .field("n", &self.n)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<T: Timer> Future for AcquireOwned<T> {
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
                    let enter = EnterBy::new(LineOf(Arc::clone(this.throttle)));
                    this.state.set(State::Queued { enter });
                }
                StateProj::Queued { enter } => {
                    // A gate of one without a bound on waiters never refuses; if it did, the
                    // waiter would wait unordered.
                    let turn = ready!(enter.poll_enter(cx, "AcquireOwned")).ok();
                    this.state.set(State::Head { turn, sleep: None });
                }
                StateProj::Head { sleep, .. } => {
                    ready!(poll_schedule(this.throttle, this.timer, *this.n, sleep, cx));
                    // Dropping the turn hands the head to the next waiter, waking it.
                    this.state.set(State::Done);
                    return Poll::Ready(());
                }
                StateProj::Done => panic!("`AcquireOwned` polled after completion"),
            }
        }
    }
}
