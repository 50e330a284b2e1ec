//! [`Timer`] over tokio's clock.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::OnceLock;

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::Timer;

/// The origin every [`TokioTimer`] measures from, fixed on first use.
static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// How far before the first read the origin is placed: a paused runtime's virtual clock
/// starts at the real time the runtime was built, which may be a little before the first
/// read, and must not read as before the origin.
const SLACK: Duration = Duration::from_secs(3600);

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// The origin, and the same instant as raw `(seconds, nanoseconds)` when std's `Instant`
/// gives those out through `Hash` (checked once, see [`Raw`]).
struct Origin {
    instant: Instant,
    raw: Option<(i64, u32)>,
}

#[inline]
fn origin() -> &'static Origin {
    ORIGIN.get_or_init(|| {
        // Read the real clock, never a paused runtime's virtual one (which may run days
        // ahead of the real clock and would leave every other runtime reading zero).
        let now = std::time::Instant::now();
        // As far back as the platform's `Instant` allows, up to `SLACK`.
        let mut slack = SLACK;
        let origin = loop {
            match now.checked_sub(slack) {
                Some(origin) => break origin,
                None if slack.is_zero() => break now,
                None => slack /= 2,
            }
        };
        Origin {
            instant: Instant::from_std(origin),
            raw: Raw::checked_origin(origin),
        }
    })
}

/// Reads an `Instant` as `(seconds, nanoseconds)` through its `Hash` implementation, with
/// no `unsafe` and no call into std's out-of-line `Instant` subtraction (`sub_timespec`,
/// `duration_since`: 55 instructions of a `now()` that is otherwise a clock read).
///
/// std's `Instant` is a `(seconds, nanoseconds)` pair on every platform it supports (a
/// `timespec` on Unix, a `Duration` on Windows), and its derived `Hash` writes exactly those
/// two fields. That is not a documented guarantee, so it is checked once, when the origin is
/// taken: the hasher must see exactly a 64-bit integer then a `u32` below 10⁹, and the raw
/// difference between the origin and a later instant must equal std's own
/// `duration_since`. Otherwise (another platform, another std) every read takes std's
/// subtraction, as before. Either way `now()` returns the same value.
#[derive(Default)]
struct Raw {
    secs: Option<i64>,
    nanos: Option<u32>,
    other: bool,
}

impl Raw {
    #[inline]
    fn read(instant: std::time::Instant) -> Option<(i64, u32)> {
        use core::hash::Hash;
        let mut raw = Self::default();
        instant.hash(&mut raw);
        match raw {
            Self {
                secs: Some(secs),
                nanos: Some(nanos),
                other: false,
            } if nanos < NANOS_PER_SEC => Some((secs, nanos)),
            _ => None,
        }
    }

    /// `origin` as raw parts, if reading them agrees with std's arithmetic.
    fn checked_origin(origin: std::time::Instant) -> Option<(i64, u32)> {
        let raw = Self::read(origin)?;
        let later = std::time::Instant::now().checked_add(Duration::from_nanos(999_999_999))?;
        let raw_later = Self::read(later)?;
        (since(raw_later, raw) == later.saturating_duration_since(origin)
            && since(raw, raw_later) == Duration::ZERO)
            .then_some(raw)
    }
}

impl core::hash::Hasher for Raw {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, _bytes: &[u8]) {
        self.other = true;
    }

    #[inline]
    fn write_i64(&mut self, secs: i64) {
        self.write_secs(secs);
    }

    #[inline]
    fn write_u64(&mut self, secs: u64) {
        match i64::try_from(secs) {
            Ok(secs) => self.write_secs(secs),
            Err(_) => self.other = true,
        }
    }

    #[inline]
    fn write_u32(&mut self, nanos: u32) {
        if self.secs.is_none() || self.nanos.is_some() {
            self.other = true;
        }
        self.nanos = Some(nanos);
    }
}

impl Raw {
    #[inline]
    fn write_secs(&mut self, secs: i64) {
        if self.secs.is_some() {
            self.other = true;
        }
        self.secs = Some(secs);
    }
}

/// `now - origin` on raw parts (nanoseconds below 10⁹), saturating at zero: what std's
/// `saturating_duration_since` returns.
#[inline]
fn since((secs, nanos): (i64, u32), (origin_secs, origin_nanos): (i64, u32)) -> Duration {
    if (secs, nanos) <= (origin_secs, origin_nanos) {
        return Duration::ZERO;
    }
    // secs >= origin_secs here; the difference of two `i64` fits in a `u64`.
    let whole = secs.wrapping_sub(origin_secs) as u64;
    if nanos >= origin_nanos {
        Duration::new(whole, nanos - origin_nanos)
    } else {
        // secs > origin_secs, so whole >= 1.
        Duration::new(whole - 1, nanos + NANOS_PER_SEC - origin_nanos)
    }
}

/// A [`Timer`] on tokio's clock: works on current-thread and multi-thread runtimes, and
/// follows tokio's paused time (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`).
///
/// **One clock per process.** Every `TokioTimer` reads `tokio::time::Instant` from one
/// process-wide origin, fixed the first time any `TokioTimer` reads the clock. Two instances
/// always agree on [`now`](Timer::now), so a [`Throttle`](crate::throttle::Throttle) (or
/// anything else that stores a time) may be passed a fresh `TokioTimer::new()` at every call,
/// and `new` is `const`, so a timer can be a `static`.
///
/// The origin is taken on the real clock (never a paused one) the first time any
/// `TokioTimer` reads time, and placed up to an hour before that read, so `now()` is an
/// arbitrary process-wide offset, not the time since the first use.
///
/// **Paused time** is per runtime: inside a runtime whose clock is paused, `now()` is that
/// runtime's virtual time measured from the same origin. A paused clock starts at the real
/// time its runtime was built, so it reads after the origin unless the runtime was built more
/// than an hour before the first read and never advanced (it then reads zero until its
/// virtual time passes the origin). Within one runtime `now()` is monotonic; do not share a
/// primitive that stores a time between runtimes whose clocks differ (a paused one and a real
/// one, or two paused ones), as their instants are not comparable.
///
/// Sleeps are `tokio::time::Sleep`, which rounds up to tokio's millisecond tick and so never
/// fires early; a deadline already reached completes on the first poll, with no timer round
/// trip; a deadline past what `Instant` can hold never completes.
///
/// Building a sleep touches no runtime: the tokio `Sleep` is created on the first poll, so a
/// sleep (or a future holding one, such as [`Gate::enter_timeout`](crate::gate::Gate::enter_timeout))
/// can be built outside a runtime and polled inside one. Polling must happen inside a tokio
/// runtime with the time driver enabled (`enable_time()` or `enable_all()`), as for any tokio
/// sleep.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::{Timer, TokioTimer};
///
/// static TIMER: TokioTimer = TokioTimer::new();
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// TIMER.sleep(Duration::from_millis(1)).await;
/// assert!(TIMER.now() >= Duration::from_millis(1));
/// // Every instance reads the same clock.
/// assert!(TokioTimer::new().now() >= Duration::from_millis(1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub struct TokioTimer;

impl TokioTimer {
    /// The tokio clock, measured from the process-wide origin.
    pub const fn new() -> Self {
        Self
    }
}

impl Timer for TokioTimer {
    type Sleep = TokioSleep;

    #[inline]
    fn now(&self) -> Duration {
        let now = Instant::now();
        let origin = origin();
        if let Some(raw_origin) = origin.raw {
            if let Some(raw) = Raw::read(now.into_std()) {
                return since(raw, raw_origin);
            }
        }
        now.saturating_duration_since(origin.instant)
    }

    fn sleep_until(&self, deadline: Duration) -> TokioSleep {
        TokioSleep {
            state: State::Unpolled { deadline },
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        // Built, never polled: holds no runtime resource.
        Unpolled { deadline: Duration },
        Done,
        Never,
        Sleeping { #[pin] sleep: tokio::time::Sleep },
    }
}

pin_project! {
    /// The sleep of a [`TokioTimer`].
    ///
    /// Creates its tokio `Sleep` on the first poll, not when built. Polling it again after it
    /// completed returns `Ready` again (timer sleeps are the crate's one exception to the
    /// poll-after-completion rule: see [`time`](crate::time)).
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
            State::Unpolled { .. } => "unpolled",
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
        let mut state = self.project().state;
        if let StateProj::Unpolled { deadline } = state.as_mut().project() {
            let deadline = *deadline;
            let origin = origin().instant;
            let next = if TokioTimer.now() >= deadline {
                State::Done
            } else {
                match origin.checked_add(deadline) {
                    Some(at) => State::Sleeping {
                        sleep: tokio::time::sleep_until(at),
                    },
                    None => State::Never,
                }
            };
            state.set(next);
        }
        match state.project() {
            StateProj::Done => Poll::Ready(()),
            StateProj::Never | StateProj::Unpolled { .. } => Poll::Pending,
            StateProj::Sleeping { sleep } => sleep.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_parts_subtract_as_std_does() {
        let origin = origin();
        #[cfg(any(target_os = "linux", target_os = "macos", windows))]
        assert!(
            origin.raw.is_some(),
            "the fast path is taken on this platform"
        );
        let base = std::time::Instant::now();
        let raw_base = Raw::read(base).expect("readable");
        let steps = [
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            1_500_000_000,
            86_400_000_000_123,
        ];
        for &a in &steps {
            for &b in &steps {
                let x = base + Duration::from_nanos(a);
                let y = base + Duration::from_nanos(b);
                let (raw_x, raw_y) = (Raw::read(x).unwrap(), Raw::read(y).unwrap());
                assert_eq!(
                    since(raw_x, raw_y),
                    x.saturating_duration_since(y),
                    "{a} - {b}"
                );
            }
        }
        assert_eq!(
            since(raw_base, raw_base),
            Duration::ZERO,
            "an instant minus itself"
        );
    }

    #[test]
    fn now_is_the_tokio_instant_since_the_origin() {
        let runtime = ::tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let timer = TokioTimer::new();
            let expected = Instant::now().saturating_duration_since(origin().instant);
            assert_eq!(timer.now(), expected, "paused: exact");
            ::tokio::time::advance(Duration::from_nanos(1_999_999_999)).await;
            assert_eq!(
                timer.now(),
                expected + Duration::from_nanos(1_999_999_999),
                "follows `advance`"
            );
        });
    }
}
