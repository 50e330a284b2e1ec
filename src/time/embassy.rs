//! [`Timer`] over embassy-time.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use embassy_time::{Instant, TICK_HZ};

use super::{Never, Timer, ceil_units, units_to_duration};

/// A [`Timer`] on embassy-time's clock, for embassy executors on microcontrollers (no_std, no
/// alloc) and on the host.
///
/// `now()` is the time since boot, converted from ticks rounding down; deadlines are converted
/// to ticks rounding **up**, so a sleep never ends before its deadline even when a tick is
/// coarser than a microsecond. A deadline past the tick counter's range never completes.
///
/// The program must link an embassy-time driver (a HAL's, or `std` on the host), as any use of
/// embassy-time must.
///
/// **Timer queue.** [`run`](crate::run), [`Coalescer`](crate::coalesce::Coalescer) and
/// [`Batcher`](crate::batch::Batcher) poll futures with wakers of their own (to wake the right
/// caller or task slot), and embassy-time's default *integrated* timer queue accepts only
/// wakers made by the embassy executor: a sleep polled there panics with "Found waker not
/// created by the Embassy executor". Enable one of embassy-time's `generic-queue-N` features
/// (a queue of any wakers, `N` timers at once) when sleeps run inside those primitives. The
/// gate, the throttle and retry poll with the task's own waker and work with either queue.
///
/// # Examples
///
/// ```no_run
/// use core::time::Duration;
/// use dike::time::{EmbassyTimer, Timer};
///
/// async fn blink() {
///     let timer = EmbassyTimer::new();
///     timer.sleep(Duration::from_micros(1500)).await;
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "embassy")))]
pub struct EmbassyTimer;

impl EmbassyTimer {
    /// The embassy-time clock (origin: boot).
    pub const fn new() -> Self {
        Self
    }
}

impl Timer for EmbassyTimer {
    type Sleep = EmbassySleep;

    #[inline]
    fn now(&self) -> Duration {
        units_to_duration(Instant::now().as_ticks(), TICK_HZ)
    }

    fn sleep_until(&self, deadline: Duration) -> EmbassySleep {
        EmbassySleep {
            state: State::Unpolled(deadline),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Built, never polled: has read no clock and armed nothing.
    Unpolled(Duration),
    Done,
    Never(Never),
    Sleeping(embassy_time::Timer),
}

/// The sleep of an [`EmbassyTimer`].
///
/// Reads the clock and arms the embassy timer on the first poll, not when built. Polling it
/// again after it completed returns `Ready` again (timer sleeps are the crate's one exception
/// to the poll-after-completion rule: see [`time`](crate::time)).
#[derive(Debug)]
#[must_use = "futures do nothing unless you .await or poll them"]
#[cfg_attr(docsrs, doc(cfg(feature = "embassy")))]
pub struct EmbassySleep {
    state: State,
}

impl Future for EmbassySleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let State::Unpolled(deadline) = self.state {
            self.state = match ceil_units(deadline, TICK_HZ) {
                Some(ticks) if ticks <= Instant::now().as_ticks() => State::Done,
                Some(ticks) => State::Sleeping(embassy_time::Timer::at(Instant::from_ticks(ticks))),
                None => State::Never(Never),
            };
        }
        match &mut self.state {
            State::Done => Poll::Ready(()),
            State::Never(never) => Pin::new(never).poll(cx),
            State::Sleeping(timer) => Pin::new(timer).poll(cx),
            State::Unpolled(_) => Poll::Pending,
        }
    }
}
