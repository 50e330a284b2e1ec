//! # Implementation notes
//!
//! [`Timeout`] holds the guarded future and the timer's sleep side by side and polls the
//! future first, so a future that is ready at the deadline wins over the deadline. Once it
//! resolves, both are dropped at once (the state becomes `Done`): no sleep stays registered
//! with the clock after the result is handed out.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::Timer;
use crate::error::Elapsed;

/// Runs `fut` for at most `duration` on `timer`: resolves to `Ok(output)` if it completes in
/// time, or to `Err(`[`Elapsed`]`)` once `timer.now() + duration` (read now) is reached; the
/// future is dropped then.
///
/// The deadline is fixed when `timeout` is called, not at the first poll. A future that is
/// ready at the deadline wins: it is polled before the deadline is checked.
///
/// # Cancel safety
///
/// Dropping the returned future drops `fut` and the sleep; nothing stays registered with the
/// timer. Work `fut` did before it was dropped is not undone.
///
/// # Errors
///
/// [`Elapsed`] with the deadline, if `fut` has not completed by then.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::{ManualTimer, Timer, timeout};
/// use futures_util::FutureExt;
///
/// let timer = ManualTimer::new();
/// let slow = timer.sleep(Duration::from_secs(5));
/// let mut guarded = Box::pin(timeout(&timer, Duration::from_secs(1), slow));
/// assert!((&mut guarded).now_or_never().is_none());
/// timer.advance(Duration::from_secs(1));
/// let err = guarded.now_or_never().unwrap().unwrap_err();
/// assert_eq!(err.deadline(), Duration::from_secs(1));
/// assert_eq!(timer.sleepers(), 0, "both sleeps are gone");
///
/// let quick = timeout(&timer, Duration::from_secs(1), async { 7 });
/// assert_eq!(quick.now_or_never(), Some(Ok(7)));
/// ```
pub fn timeout<T: Timer, F: Future>(timer: &T, duration: Duration, fut: F) -> Timeout<F, T::Sleep> {
    deadline(timer, timer.now().saturating_add(duration), fut)
}

/// Runs `fut` until the instant `at` on `timer`'s clock: resolves to `Ok(output)` if it
/// completes first, or to `Err(`[`Elapsed`]`)` once `at` is reached. A deadline already
/// past fails on the first poll unless `fut` is ready then.
///
/// # Cancel safety
///
/// Dropping the returned future drops `fut` and the sleep; nothing stays registered with the
/// timer.
///
/// # Errors
///
/// [`Elapsed`] with `at`, if `fut` has not completed by then.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::{ManualTimer, Timer, deadline};
/// use futures_util::FutureExt;
///
/// let timer = ManualTimer::new();
/// let at = timer.now() + Duration::from_millis(300);
/// // Several steps share one deadline.
/// let first = deadline(&timer, at, timer.sleep(Duration::from_millis(100)));
/// let mut first = Box::pin(first);
/// assert!((&mut first).now_or_never().is_none());
/// timer.advance(Duration::from_millis(100));
/// assert_eq!(first.now_or_never(), Some(Ok(())));
///
/// let second = deadline(&timer, at, core::future::pending::<()>());
/// let mut second = Box::pin(second);
/// assert!((&mut second).now_or_never().is_none());
/// timer.advance(Duration::from_millis(200));
/// assert!(second.now_or_never().unwrap().is_err());
/// ```
pub fn deadline<T: Timer, F: Future>(timer: &T, at: Duration, fut: F) -> Timeout<F, T::Sleep> {
    Timeout {
        state: State::Running {
            fut,
            sleep: timer.sleep_until(at),
        },
        deadline: at,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Sl> {
        Running { #[pin] fut: F, #[pin] sleep: Sl },
        Done,
    }
}

pin_project! {
    /// The future of [`timeout`] and [`deadline`]: `fut`'s output, or [`Elapsed`] once the
    /// deadline is reached.
    ///
    /// `Sl` is the timer's sleep type.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the guarded future and the sleep.
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics ("`Timeout` polled after completion").
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::time::{ManualSleep, ManualTimer, Timeout, timeout};
    ///
    /// let timer = ManualTimer::new();
    /// let guarded: Timeout<_, ManualSleep> = timeout(&timer, Duration::from_secs(1), async { 1 });
    /// assert_eq!(guarded.deadline(), Duration::from_secs(1));
    /// assert_eq!(smol::block_on(guarded), Ok(1));
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Timeout<F, Sl> {
        #[pin]
        state: State<F, Sl>,
        deadline: Duration,
    }
}

impl<F, Sl> Timeout<F, Sl> {
    /// The deadline, as a time on the timer's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::time::{ManualTimer, timeout};
    ///
    /// let timer = ManualTimer::new();
    /// timer.advance(Duration::from_secs(2));
    /// let guarded = timeout(&timer, Duration::from_secs(1), async {});
    /// assert_eq!(guarded.deadline(), Duration::from_secs(3));
    /// ```
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl<F, Sl> fmt::Debug for Timeout<F, Sl> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.deadline)
            .field("done", &matches!(self.state, State::Done))
            .finish_non_exhaustive()
    }
}

impl<F: Future, Sl: Future<Output = ()>> Future for Timeout<F, Sl> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = match this.state.as_mut().project() {
            StateProj::Running { fut, sleep } => {
                if let Poll::Ready(output) = fut.poll(cx) {
                    Ok(output)
                } else if sleep.poll(cx).is_ready() {
                    Err(Elapsed::new(*this.deadline))
                } else {
                    return Poll::Pending;
                }
            }
            StateProj::Done => panic!("`Timeout` polled after completion"),
        };
        this.state.set(State::Done);
        Poll::Ready(result)
    }
}
