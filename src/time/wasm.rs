//! [`Timer`] for `wasm32-unknown-unknown` in browsers and Node.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use gloo_timers::future::TimeoutFuture;
use js_sys::wasm_bindgen::JsCast;
use js_sys::{Function, Reflect};

use super::{Timer, ceil_units};
use crate::sync::AtomicU64;
use crate::sync::atomic::Ordering;

/// The longest delay `setTimeout` honours (2³¹ − 1 ms, about 24.8 days); longer ones fire at
/// once in browsers, so longer sleeps are chained.
const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

/// A [`Timer`] for browsers and Node on `wasm32-unknown-unknown`.
///
/// `now()` reads `performance.now()` (monotonic, from the page's or process's time origin),
/// or `Date.now()` where there is no `performance` object (a wall clock, which can jump
/// back: `now()` then holds at its latest reading until the clock passes it again, so it never
/// goes backwards). All instances read one clock. Sleeps are `setTimeout` timers via gloo-timers, rounded **up** to whole milliseconds. After
/// each timeout the sleep re-reads `now()` and waits again if the deadline has not been
/// reached, so it never completes early even where a browser clamps or fires a timer early,
/// and a sleep longer than `setTimeout`'s 24.8-day limit is chained rather than fired at once.
///
/// Building a sleep calls no JavaScript: the clock is read and the timeout armed on the first
/// poll. Polling a sleep again after it completed returns `Ready` again (timer sleeps are
/// the crate's one exception to the poll-after-completion rule: see [`time`](crate::time)).
/// Its sleep is not `Send`: JavaScript timers belong to their thread.
///
/// # Examples
///
/// ```no_run
/// use core::time::Duration;
/// use dike::time::{Timer, WasmTimer};
///
/// async fn tick() {
///     let timer = WasmTimer::new();
///     timer.sleep(Duration::from_millis(20)).await;
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "wasm")))]
pub struct WasmTimer;

impl WasmTimer {
    /// The JavaScript clock (origin: the page's or process's time origin).
    pub const fn new() -> Self {
        Self
    }
}

/// `performance.now()` in milliseconds, falling back to `Date.now()` where there is no
/// `performance` object.
fn now_ms() -> f64 {
    let perf = Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .filter(|p| p.is_object());
    let from_perf = perf.and_then(|perf| {
        let now = Reflect::get(&perf, &"now".into()).ok()?;
        let now = now.dyn_into::<Function>().ok()?;
        now.call0(&perf).ok()?.as_f64()
    });
    from_perf.unwrap_or_else(js_sys::Date::now)
}

/// A JavaScript time in milliseconds as a duration: rounded to the **nearest** nanosecond
/// (`try_from_secs_f64` rounds to nearest; the conversion never decreases as `ms` grows);
/// zero for a negative or NaN reading; `Duration::MAX` past its range.
fn ms_to_duration(ms: f64) -> Duration {
    if ms.is_nan() || ms <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
    }
}

/// The latest reading of any `WasmTimer`, in nanoseconds.
static LAST: AtomicU64 = AtomicU64::new(0);

/// `reading`, or the latest earlier reading if that is later: never goes backwards.
/// Saturates at `u64::MAX` nanoseconds (584 years).
fn monotonic(last: &AtomicU64, reading: Duration) -> Duration {
    let nanos = u64::try_from(reading.as_nanos()).unwrap_or(u64::MAX);
    let prev = last.fetch_max(nanos, Ordering::Relaxed);
    Duration::from_nanos(prev.max(nanos))
}

impl Timer for WasmTimer {
    type Sleep = WasmSleep;

    /// `performance.now()` (or `Date.now()`), clamped so it never goes backwards.
    fn now(&self) -> Duration {
        monotonic(&LAST, ms_to_duration(now_ms()))
    }

    fn sleep_until(&self, deadline: Duration) -> WasmSleep {
        WasmSleep {
            deadline,
            timeout: None,
        }
    }
}

/// The sleep of a [`WasmTimer`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you .await or poll them"]
#[cfg_attr(docsrs, doc(cfg(feature = "wasm")))]
pub struct WasmSleep {
    deadline: Duration,
    timeout: Option<TimeoutFuture>,
}

impl Future for WasmSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(timeout) = &mut self.timeout {
                ready!(Pin::new(timeout).poll(cx));
                self.timeout = None;
            }
            let now = WasmTimer::new().now();
            if now >= self.deadline {
                return Poll::Ready(());
            }
            let ms = ceil_units(self.deadline - now, 1_000)
                .unwrap_or(MAX_TIMEOUT_MS)
                .clamp(1, MAX_TIMEOUT_MS);
            // `ms` <= i32::MAX, so it fits in u32.
            self.timeout = Some(TimeoutFuture::new(ms as u32));
        }
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::{AtomicU64, monotonic, ms_to_duration};

    #[test]
    fn a_clock_that_jumps_back_holds_its_latest_reading() {
        let last = AtomicU64::new(0);
        let ms = Duration::from_millis;
        let readings = [5, 3, 7, 7, 2, 9].map(ms);
        let seen = readings.map(|r| monotonic(&last, r));
        assert_eq!(seen, [5, 5, 7, 7, 7, 9].map(ms));
        assert_eq!(
            monotonic(&last, Duration::MAX),
            Duration::from_nanos(u64::MAX)
        );
        assert_eq!(monotonic(&last, ms(1)), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn milliseconds_round_to_the_nearest_nanosecond() {
        assert_eq!(ms_to_duration(f64::NAN), Duration::ZERO);
        assert_eq!(ms_to_duration(-1.0), Duration::ZERO);
        assert_eq!(ms_to_duration(0.0), Duration::ZERO);
        assert_eq!(ms_to_duration(f64::INFINITY), Duration::MAX);
        assert_eq!(ms_to_duration(1e300), Duration::MAX);
        assert_eq!(ms_to_duration(1.5), Duration::from_micros(1_500));
        // 0.0000006 ms = 0.6 ns: to nearest, not down.
        assert_eq!(ms_to_duration(0.000_000_6), Duration::from_nanos(1));
        assert_eq!(ms_to_duration(0.000_000_4), Duration::ZERO);
        // Never decreasing over a sweep of nearby readings.
        let mut prev = Duration::ZERO;
        for i in 0..10_000 {
            let d = ms_to_duration(1_700_000_000_000.0 + f64::from(i) * 0.001);
            assert!(d >= prev);
            prev = d;
        }
    }
}
