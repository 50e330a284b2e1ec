//! The [`Acquire`] future.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::engine::Decision;
use super::{Throttle, nanos};
use crate::time::Timer;

pin_project! {
    /// The future of [`Throttle::acquire`] and [`Throttle::acquire_n`]: resolves once its
    /// units are admitted.
    ///
    /// Checks the throttle on each poll that is not waiting on a sleep; when refused, sleeps
    /// on the timer until the instant the throttle would admit it, and checks again. Holds no
    /// reservation: dropping it at any point consumes nothing.
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
        sleep: Option<T::Sleep>,
    }
}

impl<'a, T: Timer> Acquire<'a, T> {
    pub(super) fn new(throttle: &'a Throttle, timer: T, n: u32) -> Self {
        Self {
            throttle,
            timer,
            n,
            sleep: None,
        }
    }
}

impl<T: Timer> fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("throttle", self.throttle)
            .field("n", &self.n)
            .field("sleeping", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Timer> Future for Acquire<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if *this.n == 0 {
            return Poll::Ready(());
        }
        // Normally: check, sleep until `NotUntil`, return `Pending` on that sleep. A sleep
        // that is already over (the clock moved on, or another caller took the slot we woke
        // for) goes round again; a timer whose sleeps complete before its clock reaches the
        // deadline breaks the `Timer` contract, and then we yield rather than spin.
        for _ in 0..3 {
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                ready!(sleep.poll(cx));
                this.sleep.set(None);
            }
            match this.throttle.engine.check(nanos(this.timer.now()), *this.n) {
                Decision::Ok => {
                    // A poll after completion must not take another unit.
                    *this.n = 0;
                    return Poll::Ready(());
                }
                // The end of time: never admitted, so wait for ever without a sleep.
                Decision::Never => return Poll::Pending,
                Decision::NotUntil(at) => {
                    let sleep = this.timer.sleep_until(Duration::from_nanos(at));
                    this.sleep.set(Some(sleep));
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
