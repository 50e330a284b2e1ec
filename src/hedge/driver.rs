//! The hedging loop shared by [`Hedged`](super::Hedged) and the tower layer's `HedgeFuture`.
//!
//! # Implementation notes
//!
//! [`Driver`] holds the first attempt inline (so a request whose first attempt answers before
//! the hedge delay allocates nothing) and the hedges in a `Vec` of boxed futures, started by
//! an [`Attempts`] source. Each poll:
//!
//! 1. polls every attempt in flight, first attempt first, then hedges in start order; the
//!    first accepted output wins. A rejected output is remembered as the fallback answer, its
//!    attempt is dropped, and the next hedge starts at once (if one may);
//! 2. with nothing in flight and no hedge allowed, returns the last rejected output;
//! 3. otherwise polls the hedge sleep; when it fires, a hedge starts (after drawing on the
//!    budget) and the loop goes back to 1.
//!
//! On a result every other attempt and the sleep are dropped, and the source is told no
//! hedge will start, before `poll` returns: the state becomes `Done`. A budget refusal ends
//! hedging for this request; attempts in flight go on.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::{Accept, Policy};
use crate::time::Timer;

/// Where the hedges come from.
pub(crate) trait Attempts {
    /// A hedge's future.
    type Hedge: Future;

    /// Starts a hedge; `last`: no further hedge may start after it.
    fn hedge(&mut self, last: bool) -> Self::Hedge;

    /// No further hedge will start (the budget refused one, or the request is answered).
    #[inline]
    fn stop(&mut self) {}
}

/// [`Attempts`] from an operation called once per attempt.
pub(crate) struct FnAttempts<'a, Op>(pub(crate) &'a mut Op);

impl<Op, F> Attempts for FnAttempts<'_, Op>
where
    Op: FnMut() -> F,
    F: Future,
{
    type Hedge = F;

    #[inline]
    fn hedge(&mut self, _last: bool) -> F {
        (self.0)()
    }
}

/// When a request's hedges may start, decided by the policy as its first attempt starts.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    now: Duration,
    delay: Duration,
    // When the first hedge may start; `None` if none may.
    next_at: Option<Duration>,
}

impl Plan {
    /// The plan of a request whose first attempt starts at `now`.
    #[inline]
    pub(crate) fn new<P: Policy>(policy: &P, now: Duration) -> Self {
        let delay = policy.delay();
        let next_at =
            (delay != Duration::MAX && policy.max_hedges() > 0).then(|| now.saturating_add(delay));
        Self {
            now,
            delay,
            next_at,
        }
    }

    /// Whether a hedge may start.
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn hedges(&self) -> bool {
        self.next_at.is_some()
    }
}

pin_project! {
    #[project = SlotProj]
    enum Slot<F> {
        Busy { #[pin] fut: F },
        Empty,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, H, Sl> {
        Start,
        Running {
            #[pin] first: Slot<F>,
            first_start: Duration,
            hedges: Vec<(Pin<Box<H>>, Duration)>,
            #[pin] sleep: Slot<Sl>,
            // When the next hedge may start; `None` once no further hedge may.
            next_at: Option<Duration>,
        },
        Done,
    }
}

pin_project! {
    /// The state of one hedged request: the first attempt `F`, the hedges `H`, the hedge
    /// sleep `Sl`.
    pub(crate) struct Driver<F, H, Sl> {
        delay: Duration,
        started: u32,
        #[pin]
        state: State<F, H, Sl>,
    }
}

impl<F, H, Sl> Driver<F, H, Sl> {
    /// A driver whose first attempt has not started: [`begin`](Self::begin) it before
    /// polling.
    #[inline]
    pub(crate) const fn new() -> Self {
        Self {
            delay: Duration::ZERO,
            started: 0,
            state: State::Start,
        }
    }

    /// A driver whose first attempt `first` started per `plan`.
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn running(plan: Plan, first: F) -> Self {
        Self {
            delay: plan.delay,
            started: 1,
            state: State::Running {
                first: Slot::Busy { fut: first },
                first_start: plan.now,
                hedges: Vec::new(),
                sleep: Slot::Empty,
                next_at: plan.next_at,
            },
        }
    }

    /// Whether the first attempt has not started.
    #[inline]
    pub(crate) fn is_new(&self) -> bool {
        matches!(self.state, State::Start)
    }

    /// Starts: the first attempt `first` started per `plan`.
    #[inline]
    pub(crate) fn begin(self: Pin<&mut Self>, plan: Plan, first: F) {
        // Field by field: setting the whole driver would build it aside and copy it in.
        let mut this = self.project();
        *this.delay = plan.delay;
        *this.started = 1;
        this.state.set(State::Running {
            first: Slot::Busy { fut: first },
            first_start: plan.now,
            hedges: Vec::new(),
            sleep: Slot::Empty,
            next_at: plan.next_at,
        });
    }

    /// The `Debug` output of the future `name` driven by this.
    pub(crate) fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (in_flight, done) = match &self.state {
            State::Start => (0, false),
            State::Running { first, hedges, .. } => (
                usize::from(matches!(first, Slot::Busy { .. })) + hedges.len(),
                false,
            ),
            State::Done => (0, true),
        };
        f.debug_struct(name)
            .field("delay", &self.delay)
            .field("started", &self.started)
            .field("in_flight", &in_flight)
            .field("done", &done)
            .finish_non_exhaustive()
    }

    /// Polls the request: the first accepted output, or the last rejected one when every
    /// attempt was rejected and no hedge may start. On an accepted output every loser and the
    /// sleep are dropped and `attempts` is stopped before the policy's `finish` and the
    /// return. Panics ("`name` polled after completion") once it returned `Ready`.
    // Always inlined: each wrapper's `poll` is this loop, as one function.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn poll<P, T, A, At>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        name: &'static str,
        policy: &P,
        timer: &T,
        accept: &mut A,
        attempts: &mut At,
    ) -> Poll<F::Output>
    where
        F: Future,
        H: Future<Output = F::Output>,
        Sl: Future<Output = ()>,
        P: Policy,
        T: Timer<Sleep = Sl>,
        A: Accept<F::Output>,
        At: Attempts<Hedge = H>,
    {
        let mut this = self.project();
        let mut last: Option<F::Output> = None;
        let (output, latency, by_hedge) = 'found: loop {
            let StateProj::Running {
                mut first,
                first_start,
                hedges,
                mut sleep,
                next_at,
            } = this.state.as_mut().project()
            else {
                polled_after_completion(name);
            };
            let mut start_now = false;
            // 1. The attempts.
            if let SlotProj::Busy { fut } = first.as_mut().project() {
                if let Poll::Ready(out) = fut.poll(cx) {
                    first.set(Slot::Empty);
                    if accept.accept(&out) {
                        let latency = policy
                            .records()
                            .then(|| timer.now().saturating_sub(*first_start));
                        break 'found (out, latency, false);
                    }
                    last = Some(out);
                    start_now = true;
                }
            }
            let mut i = 0;
            while i < hedges.len() {
                if let Poll::Ready(out) = hedges[i].0.as_mut().poll(cx) {
                    let (_, started_at) = hedges.remove(i);
                    if accept.accept(&out) {
                        let latency = policy
                            .records()
                            .then(|| timer.now().saturating_sub(started_at));
                        break 'found (out, latency, true);
                    }
                    last = Some(out);
                    start_now = true;
                } else {
                    i += 1;
                }
            }
            let in_flight = matches!(&*first, Slot::Busy { .. }) || !hedges.is_empty();
            // 2./3. Start a hedge now (a rejection, nothing in flight) or when the sleep fires.
            if next_at.is_some() && (start_now || !in_flight) {
                sleep.set(Slot::Empty);
                let (started, next) =
                    start_hedge(policy, timer, attempts, *this.delay, this.started, hedges);
                *next_at = next;
                if started {
                    continue;
                }
            }
            let Some(at) = *next_at else {
                if in_flight {
                    return Poll::Pending;
                }
                let out = last.take().expect("a finished attempt left its output");
                this.state.set(State::Done);
                attempts.stop();
                return Poll::Ready(out);
            };
            if let Slot::Empty = &*sleep {
                sleep.set(Slot::Busy {
                    fut: timer.sleep_until(at),
                });
            }
            let SlotProj::Busy { fut } = sleep.as_mut().project() else {
                unreachable!("the sleep was just set");
            };
            if fut.poll(cx).is_pending() {
                return Poll::Pending;
            }
            sleep.set(Slot::Empty);
            let (_, next) = start_hedge(policy, timer, attempts, *this.delay, this.started, hedges);
            *next_at = next;
        };
        // Losers and the sleep are dropped before the result is handed out.
        this.state.set(State::Done);
        attempts.stop();
        policy.finish(latency, by_hedge);
        Poll::Ready(output)
    }
}

#[cold]
#[inline(never)]
fn polled_after_completion(name: &str) -> ! {
    panic!("`{name}` polled after completion")
}

/// Starts a hedge if `max_hedges` and the budget allow. Returns whether one started and when
/// the next may start (`None`: never, and `attempts` is stopped).
fn start_hedge<P, T, At>(
    policy: &P,
    timer: &T,
    attempts: &mut At,
    delay: Duration,
    started: &mut u32,
    hedges: &mut Vec<(Pin<Box<At::Hedge>>, Duration)>,
) -> (bool, Option<Duration>)
where
    P: Policy,
    T: Timer,
    At: Attempts,
{
    if *started > policy.max_hedges() || !policy.draw(*started + 1) {
        attempts.stop();
        return (false, None);
    }
    *started += 1;
    let now = timer.now();
    let more = *started <= policy.max_hedges();
    hedges.push((Box::pin(attempts.hedge(!more)), now));
    (true, more.then(|| now.saturating_add(delay)))
}
