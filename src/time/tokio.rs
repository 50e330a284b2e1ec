//! [`Timer`] over tokio's clock.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::Timer;

/// A [`Timer`] on tokio's clock: works on current-thread and multi-thread runtimes, and
/// follows tokio's paused time (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`).
///
/// `now()` is the time since [`TokioTimer::new`] on `tokio::time::Instant`. Sleeps are
/// `tokio::time::Sleep`, which rounds up to tokio's millisecond tick and so never fires early;
/// a deadline already reached completes on the first poll, with no timer round trip; a
/// deadline past what `Instant` can hold never completes.
///
/// Sleeps must be polled inside a tokio runtime with the time driver enabled
/// (`enable_time()` or `enable_all()`), as any tokio sleep must.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::{Timer, TokioTimer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let timer = TokioTimer::new();
/// timer.sleep(Duration::from_millis(1)).await;
/// assert!(timer.now() >= Duration::from_millis(1));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub struct TokioTimer {
    origin: Instant,
}

impl TokioTimer {
    /// A timer whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for TokioTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer for TokioTimer {
    type Sleep = TokioSleep;

    #[inline]
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    fn sleep_until(&self, deadline: Duration) -> TokioSleep {
        let state = if self.now() >= deadline {
            State::Done
        } else {
            match self.origin.checked_add(deadline) {
                Some(at) => State::Sleeping {
                    sleep: tokio::time::sleep_until(at),
                },
                None => State::Never,
            }
        };
        TokioSleep { state }
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Done,
        Never,
        Sleeping { #[pin] sleep: tokio::time::Sleep },
    }
}

pin_project! {
    /// The sleep of a [`TokioTimer`].
    #[must_use = "futures do nothing unless you .await or poll them"]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub struct TokioSleep {
        #[pin]
        state: State,
    }
}

impl core::fmt::Debug for TokioSleep {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match &self.state {
            State::Done => "done",
            State::Never => "never",
            State::Sleeping { .. } => "sleeping",
        };
        f.debug_struct("TokioSleep").field("state", &state).finish()
    }
}

impl Future for TokioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().state.project() {
            StateProj::Done => Poll::Ready(()),
            StateProj::Never => Poll::Pending,
            StateProj::Sleeping { sleep } => sleep.poll(cx),
        }
    }
}
