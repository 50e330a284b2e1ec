//! [`Timer`] over async-io, for smol and async-std.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::OnceLock;
use std::time::Instant;

use super::Timer;

/// The origin every [`AsyncIoTimer`] measures from: the first instant any of them read.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

#[inline]
fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// A [`Timer`] on async-io's reactor: serves smol, async-std (whose timers are async-io's) and
/// any executor that runs alongside async-io.
///
/// **One clock per process.** Every `AsyncIoTimer` reads `std::time::Instant` from one
/// process-wide origin, fixed the first time any `AsyncIoTimer` reads the clock. Two instances
/// always agree on [`now`](Timer::now), so a [`Throttle`](crate::throttle::Throttle) (or
/// anything else that stores a time) may be passed a fresh `AsyncIoTimer::new()` at every call,
/// and `new` is `const`, so a timer can be a `static`.
///
/// Sleeps are `async_io::Timer`s, driven by async-io's own reactor thread, so they work under
/// any executor; a deadline past what `Instant` can hold never completes. The async-io timer
/// is created on the first poll, not when the sleep is built.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::{AsyncIoTimer, Timer};
///
/// static TIMER: AsyncIoTimer = AsyncIoTimer::new();
///
/// smol::block_on(async {
///     TIMER.sleep(Duration::from_millis(1)).await;
///     assert!(TIMER.now() >= Duration::from_millis(1));
///     // Every instance reads the same clock.
///     assert!(AsyncIoTimer::new().now() >= Duration::from_millis(1));
/// });
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
pub struct AsyncIoTimer;

impl AsyncIoTimer {
    /// The std monotonic clock, measured from the process-wide origin.
    pub const fn new() -> Self {
        Self
    }
}

impl Timer for AsyncIoTimer {
    type Sleep = AsyncIoSleep;

    #[inline]
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(origin())
    }

    fn sleep_until(&self, deadline: Duration) -> AsyncIoSleep {
        AsyncIoSleep {
            state: State::Unpolled(deadline),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Built, never polled: holds no reactor resource.
    Unpolled(Duration),
    Sleeping(async_io::Timer),
    Done,
}

/// The sleep of an [`AsyncIoTimer`].
///
/// Polling it again after it completed returns `Ready` again (timer sleeps are the crate's one
/// exception to the poll-after-completion rule: see [`time`](crate::time)).
#[derive(Debug)]
#[must_use = "futures do nothing unless you .await or poll them"]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
pub struct AsyncIoSleep {
    state: State,
}

impl Future for AsyncIoSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let State::Unpolled(deadline) = self.state {
            self.state = match origin().checked_add(deadline) {
                Some(at) => State::Sleeping(async_io::Timer::at(at)),
                None => State::Sleeping(async_io::Timer::never()),
            };
        }
        match &mut self.state {
            State::Sleeping(timer) => {
                if Pin::new(timer).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // An async-io timer that fired stays pending if polled again: remember.
                self.state = State::Done;
                Poll::Ready(())
            }
            State::Done => Poll::Ready(()),
            State::Unpolled(_) => Poll::Pending,
        }
    }
}
