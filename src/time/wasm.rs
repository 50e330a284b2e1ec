//! [`Timer`] for `wasm32-unknown-unknown` in browsers and Node.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use gloo_timers::future::TimeoutFuture;
use js_sys::wasm_bindgen::JsCast;
use js_sys::{Function, Reflect};

use super::{Timer, ceil_units};

/// The longest delay `setTimeout` honours (2³¹ − 1 ms, about 24.8 days); longer ones fire at
/// once in browsers, so longer sleeps are chained.
const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

/// A [`Timer`] for browsers and Node on `wasm32-unknown-unknown`.
///
/// `now()` reads `performance.now()` (monotonic, from the page's or process's time origin);
/// sleeps are `setTimeout` timers via gloo-timers, rounded **up** to whole milliseconds. After
/// each timeout the sleep re-reads `now()` and waits again if the deadline has not been
/// reached, so it never completes early even where a browser clamps or fires a timer early,
/// and a sleep longer than `setTimeout`'s 24.8-day limit is chained rather than fired at once.
///
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

impl Timer for WasmTimer {
    type Sleep = WasmSleep;

    fn now(&self) -> Duration {
        let ms = now_ms();
        if ms.is_finite() && ms > 0.0 {
            // Rounds down to the nanosecond; saturates at Duration::MAX.
            Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        }
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
            let now = WasmTimer.now();
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
