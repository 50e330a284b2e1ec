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
static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// How far before the first read the origin is placed: a paused runtime's virtual clock
/// starts at the real time the runtime was built, which may be a little before the first
/// read, and must not read as before the origin.
const SLACK: Duration = Duration::from_secs(3600);

#[inline]
fn origin() -> Instant {
    *ORIGIN.get_or_init(|| {
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
        Instant::from_std(origin)
    })
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
        Instant::now().saturating_duration_since(origin())
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
            let origin = origin();
            let next = if Instant::now().saturating_duration_since(origin) >= deadline {
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
