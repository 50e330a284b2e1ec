//! Time: the [`Timer`] trait every time-based primitive reads, and its implementations.
//!
//! dike never reads a global clock. Every primitive that waits (a timed gate entry, a
//! throttle, a retry delay, a batch deadline) takes a [`Timer`] value and reads time only
//! through it, so the same code runs on tokio, smol, async-std, embassy and in a browser, and
//! tests run on a virtual clock.
//!
//! | timer | feature | runtime |
//! |---|---|---|
//! | [`ManualTimer`] | `alloc` (default) | none: a virtual clock moved by [`ManualTimer::advance`], for tests |
//! | `TokioTimer` | `tokio` | tokio, current-thread or multi-thread, paused time included |
//! | `AsyncIoTimer` | `async-io` (alias `async-std`) | smol, async-std, anything driving async-io |
//! | `EmbassyTimer` | `embassy` | embassy-time (no_std), any embassy executor |
//! | `WasmTimer` | `wasm` | browsers and Node on `wasm32-unknown-unknown` |
//! | [`FnTimer`] | none | your own clock, from two closures: see [`timer_fn`] |
//!
//! [`timeout`] and [`deadline`] bound any future by a duration or an instant on a timer,
//! failing with [`Elapsed`](crate::error::Elapsed).
//!
//! A time is a [`Duration`] since the clock's origin. Clones of a timer always share one
//! clock. Whether two timers built separately share one depends on the type:
//!
//! | timer | clock of `T::new()` |
//! |---|---|
//! | `TokioTimer`, `AsyncIoTimer` | one per process: every instance reads the same clock, from a process-wide origin |
//! | `EmbassyTimer` | one per device: time since boot |
//! | `WasmTimer` | one per page or Node process: the JavaScript time origin |
//! | [`ManualTimer`] | its own: each `ManualTimer::new()` is a separate virtual clock (clones share it) |
//! | [`FnTimer`] | whatever the closures read |
//!
//! A primitive that stores a time (a [`Throttle`](crate::throttle::Throttle)'s schedule) must
//! be read through one clock: clones of one timer, or any instances of a type whose instances
//! share a clock.
//!
//! # Polling a sleep after it completed
//!
//! Named futures that hand something out panic when polled after they returned `Ready` (the
//! crate-wide rule). Timer sleeps are the one exception: they hand out nothing, so a sleep
//! polled again after completing returns `Ready` again, in every timer of this module.
//!
//! # Examples
//!
//! ```
//! use core::time::Duration;
//! use dike::time::{ManualTimer, Timer};
//!
//! use futures_util::FutureExt;
//!
//! let timer = ManualTimer::new();
//! let mut sleep = Box::pin(timer.sleep(Duration::from_millis(5)));
//! assert!((&mut sleep).now_or_never().is_none()); // pending: registered with the clock
//! assert_eq!(timer.next_deadline(), Some(Duration::from_millis(5)));
//! timer.advance(Duration::from_millis(5));
//! sleep.now_or_never().expect("deadline reached");
//! ```

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

mod func;
#[cfg(feature = "alloc")]
mod manual;
mod timeout;

#[cfg(feature = "async-io")]
mod async_io;
#[cfg(feature = "embassy")]
mod embassy;
#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "wasm")]
mod wasm;

pub use func::{FnSleep, FnTimer, timer_fn};
#[cfg(feature = "alloc")]
pub use manual::{ManualSleep, ManualTimer};
pub use timeout::{Timeout, deadline, timeout};

#[cfg(feature = "async-io")]
pub use self::async_io::{AsyncIoSleep, AsyncIoTimer};
#[cfg(feature = "embassy")]
pub use self::embassy::{EmbassySleep, EmbassyTimer};
#[cfg(feature = "tokio")]
pub use self::tokio::{TokioSleep, TokioTimer};
#[cfg(feature = "wasm")]
pub use self::wasm::{WasmSleep, WasmTimer};

/// A monotonic clock that can sleep: the only way dike reads or waits for time.
///
/// Primitives take a timer by reference (`&T`, which is itself a `Timer`) or by value
/// (timers are cheap to clone: the adapters are `Copy`, [`ManualTimer`] is an `Arc`).
///
/// # Implementing
///
/// - [`now`](Timer::now) MUST be monotonic: it never returns less than an earlier call on the
///   same timer or any clone of it.
/// - Clones MUST read one clock. Two values built separately (two `T::new()`) may read
///   different clocks; a type whose instances all read one clock MUST say so in its docs,
///   and then a primitive may be passed any instance (see the table in the
///   [module docs](self)). A primitive may assume no more than this: that clones agree, and
///   that instances agree where the type documents it.
/// - `now` MUST NOT panic or fail, and MUST saturate rather than overflow.
/// - [`sleep_until`](Timer::sleep_until) MUST NOT complete before `now()` would return at least
///   `deadline`: it may complete late, never early. Round durations **up** when converting
///   to a coarser unit (ticks, milliseconds); never truncate.
/// - A deadline the clock cannot represent (including [`Duration::MAX`]) MUST mean "never":
///   the sleep stays pending forever, and nothing panics.
/// - A deadline at or before `now()` SHOULD complete on the first poll.
/// - The sleep future MUST be safe to drop at any time, before or after it completes, and
///   SHOULD return `Ready` again if polled after completing.
/// - Building a sleep SHOULD NOT need a runtime: create runtime resources (a reactor timer)
///   on the first poll, so a future holding a sleep can be built anywhere and polled on its
///   runtime.
/// - The sleep need not be `Send` (browser timers are not); primitives are `Send` when their
///   timer's sleep is.
///
/// [`timer_fn`] builds a timer from two closures and re-checks `now()` after the inner
/// sleep completes, so a clock whose sleeps can fire early still meets this contract.
pub trait Timer: Clone {
    /// The future returned by [`sleep_until`](Timer::sleep_until).
    type Sleep: Future<Output = ()>;

    /// Monotonic time since this timer's origin.
    fn now(&self) -> Duration;

    /// A future that completes at or after `deadline`, as read by [`now`](Timer::now), never
    /// before.
    ///
    /// # Cancel safety
    ///
    /// The returned future may be dropped at any time; dropping it cancels the sleep.
    fn sleep_until(&self, deadline: Duration) -> Self::Sleep;

    /// A future that completes once `duration` has passed from now.
    ///
    /// `now() + duration` saturates, so a huge duration sleeps forever.
    ///
    /// # Cancel safety
    ///
    /// The returned future may be dropped at any time; dropping it cancels the sleep.
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        self.sleep_until(self.now().saturating_add(duration))
    }
}

impl<T: Timer> Timer for &T {
    type Sleep = T::Sleep;

    #[inline]
    fn now(&self) -> Duration {
        (**self).now()
    }

    #[inline]
    fn sleep_until(&self, deadline: Duration) -> Self::Sleep {
        (**self).sleep_until(deadline)
    }

    #[inline]
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        (**self).sleep(duration)
    }
}

/// A future that never completes: the sleep for a deadline no clock can reach.
#[derive(Debug, Clone, Copy, Default)]
#[allow(dead_code)] // used by the adapters whose clocks have a finite range
pub(crate) struct Never;

impl Future for Never {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Whole units of `unit_nanos` nanoseconds covering `d`, rounded up; `None` on overflow.
#[allow(dead_code)] // used by the tick- and millisecond-based adapters
pub(crate) fn ceil_units(d: Duration, units_per_sec: u64) -> Option<u64> {
    let whole = d.as_secs().checked_mul(units_per_sec)?;
    let frac = (u128::from(d.subsec_nanos()) * u128::from(units_per_sec)).div_ceil(1_000_000_000);
    // frac <= units_per_sec, so it fits in u64.
    whole.checked_add(frac as u64)
}

/// `units` of a clock ticking `units_per_sec` times a second, as a duration rounded down.
#[allow(dead_code)] // used by the tick-based adapters
pub(crate) fn units_to_duration(units: u64, units_per_sec: u64) -> Duration {
    let secs = units / units_per_sec;
    let rem = units % units_per_sec;
    let nanos = u128::from(rem) * 1_000_000_000 / u128::from(units_per_sec);
    // rem < units_per_sec, so nanos < 1e9.
    Duration::new(secs, nanos as u32)
}

#[cfg(test)]
mod tests;
