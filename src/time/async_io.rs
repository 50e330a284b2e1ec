//! [`Timer`] over async-io, for smol and async-std.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::time::Instant;

use super::Timer;

/// A [`Timer`] on async-io's reactor: serves smol, async-std (whose timers are async-io's) and
/// any executor that runs alongside async-io.
///
/// `now()` is the time since [`AsyncIoTimer::new`] on `std::time::Instant`. Sleeps are
/// `async_io::Timer`s, driven by async-io's own reactor thread, so they work under any
/// executor; a deadline past what `Instant` can hold never completes.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::{AsyncIoTimer, Timer};
///
/// smol::block_on(async {
///     let timer = AsyncIoTimer::new();
///     timer.sleep(Duration::from_millis(1)).await;
///     assert!(timer.now() >= Duration::from_millis(1));
/// });
/// ```
#[derive(Debug, Clone, Copy)]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
pub struct AsyncIoTimer {
    origin: Instant,
}

impl AsyncIoTimer {
    /// A timer whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for AsyncIoTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer for AsyncIoTimer {
    type Sleep = AsyncIoSleep;

    #[inline]
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    fn sleep_until(&self, deadline: Duration) -> AsyncIoSleep {
        let inner = match self.origin.checked_add(deadline) {
            Some(at) => async_io::Timer::at(at),
            None => async_io::Timer::never(),
        };
        AsyncIoSleep { inner }
    }
}

/// The sleep of an [`AsyncIoTimer`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you .await or poll them"]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
pub struct AsyncIoSleep {
    inner: async_io::Timer,
}

impl Future for AsyncIoSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.inner).poll(cx).map(drop)
    }
}
