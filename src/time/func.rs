//! A timer from two closures.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::Timer;

/// Builds a [`Timer`] from two closures: `now()` and `sleep_until(deadline)`.
///
/// This plugs any clock into dike with no feature flag: a HAL timer on a microcontroller, a
/// simulation clock, another runtime's sleep. The closures must be `Clone` (closures are
/// when what they capture is).
///
/// The returned timer re-checks `now()` whenever the inner sleep completes and sleeps again
/// if the deadline has not been reached, so a sleep that fires early (a millisecond timer
/// given a sub-millisecond deadline, say) never makes a dike primitive act early. `now` must
/// still be monotonic and saturating, as [`Timer`] requires.
///
/// # Examples
///
/// A timer over tokio's clock, written by hand:
///
/// ```
/// use core::time::Duration;
/// use dike::time::{Timer, timer_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let origin = tokio::time::Instant::now();
/// let timer = timer_fn(
///     move || origin.elapsed(),
///     move |deadline: Duration| tokio::time::sleep_until(origin + deadline),
/// );
/// let before = timer.now();
/// timer.sleep(Duration::from_millis(2)).await;
/// assert!(timer.now() >= before + Duration::from_millis(2));
/// # }
/// ```
pub fn timer_fn<N, S, F>(now: N, sleep_until: S) -> FnTimer<N, S>
where
    N: Fn() -> Duration + Clone,
    S: Fn(Duration) -> F + Clone,
    F: Future<Output = ()>,
{
    FnTimer { now, sleep_until }
}

/// A [`Timer`] made of two closures; built by [`timer_fn`].
#[derive(Clone, Copy)]
pub struct FnTimer<N, S> {
    now: N,
    sleep_until: S,
}

impl<N, S> fmt::Debug for FnTimer<N, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnTimer").finish_non_exhaustive()
    }
}

impl<N, S, F> Timer for FnTimer<N, S>
where
    N: Fn() -> Duration + Clone,
    S: Fn(Duration) -> F + Clone,
    F: Future<Output = ()>,
{
    type Sleep = FnSleep<N, S, F>;

    #[inline]
    fn now(&self) -> Duration {
        (self.now)()
    }

    fn sleep_until(&self, deadline: Duration) -> FnSleep<N, S, F> {
        FnSleep {
            timer: self.clone(),
            deadline,
            inner: None,
        }
    }
}

pin_project! {
    /// The sleep of an [`FnTimer`]: the user's sleep, re-armed until `now()` reaches the
    /// deadline.
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct FnSleep<N, S, F> {
        timer: FnTimer<N, S>,
        deadline: Duration,
        #[pin]
        inner: Option<F>,
    }
}

impl<N, S, F> fmt::Debug for FnSleep<N, S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSleep")
            .field("deadline", &self.deadline)
            .field("armed", &self.inner.is_some())
            .finish()
    }
}

impl<N, S, F> Future for FnSleep<N, S, F>
where
    N: Fn() -> Duration,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // A sleep that completes before `now()` reaches the deadline is re-armed. If the
        // fresh one completes at once too, yield to the executor rather than spin inside
        // this poll: a coarse clock only moves while others run.
        for _ in 0..2 {
            if let Some(inner) = this.inner.as_mut().as_pin_mut() {
                ready!(inner.poll(cx));
                this.inner.set(None);
            }
            if (this.timer.now)() >= *this.deadline {
                return Poll::Ready(());
            }
            this.inner
                .set(Some((this.timer.sleep_until)(*this.deadline)));
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
