//! # Implementation notes
//!
//! [`Hedged`] holds the first attempt inline (so a request whose first attempt answers before
//! the hedge delay allocates nothing) and the hedges in a `Vec` of boxed futures. Each poll:
//!
//! 1. polls every attempt in flight, first attempt first, then hedges in start order; the
//!    first accepted output wins. A rejected output is remembered as the fallback answer, its
//!    attempt is dropped, and the next hedge starts at once (if one may);
//! 2. with nothing in flight and no hedge allowed, returns the last rejected output;
//! 3. otherwise polls the hedge sleep; when it fires, a hedge starts (after drawing on the
//!    budget) and the loop goes back to 1.
//!
//! On a result every other attempt and the sleep are dropped before `poll` returns: the state
//! becomes `Done`. A budget refusal ends hedging for this request; attempts in flight go on.

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

pin_project! {
    #[project = SlotProj]
    enum Slot<F> {
        Busy { #[pin] fut: F },
        Empty,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Sl> {
        Start,
        Running {
            #[pin] first: Slot<F>,
            first_start: Duration,
            hedges: Vec<(Pin<Box<F>>, Duration)>,
            #[pin] sleep: Slot<Sl>,
            // When the next hedge may start; `None` once no further hedge may.
            next_at: Option<Duration>,
        },
        Done,
    }
}

pin_project! {
    /// The future of [`Hedge::run`]: the first accepted output of the attempts, or the last
    /// rejected one when every attempt was rejected and no hedge may start.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops every attempt in flight and the hedge sleep; nothing stays
    /// registered with the timer and no budget token is held (a hedge's tokens are spent when
    /// it starts).
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics ("`Hedged` polled after completion").
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::{Hedge, Hedged};
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Hedge::fixed(Duration::from_millis(15));
    /// let run = policy.run(&timer, || async { 7 });
    /// assert_eq!(smol::block_on(run), 7);
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Hedged<'a, T: Timer, Op, F, P, A> {
        policy: &'a P,
        timer: &'a T,
        op: Op,
        accept: A,
        delay: Duration,
        started: u32,
        #[pin]
        state: State<F, T::Sleep>,
    }
}

impl<'a, T, Op, F, P, A> Hedged<'a, T, Op, F, P, A>
where
    T: Timer,
{
    pub(super) fn new(policy: &'a P, timer: &'a T, op: Op, accept: A) -> Self {
        Self {
            policy,
            timer,
            op,
            accept,
            delay: Duration::ZERO,
            started: 0,
            state: State::Start,
        }
    }

    /// Accepts only the outputs `accept` returns `true` for: a rejected output (say, an
    /// error) never wins while another attempt may still answer, and starts the next hedge at
    /// once. When every attempt was rejected, the last rejected output is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::cell::Cell;
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Hedge::fixed(Duration::from_millis(15));
    /// let calls = Cell::new(0);
    /// let op = || {
    ///     calls.set(calls.get() + 1);
    ///     let n = calls.get();
    ///     async move { if n == 1 { Err("503") } else { Ok(n) } }
    /// };
    /// // The first attempt fails at once: the hedge starts without waiting 15 ms.
    /// let result = smol::block_on(policy.run(&timer, op).accept(Result::is_ok));
    /// assert_eq!(result, Ok(2));
    /// ```
    pub fn accept<A2>(self, accept: A2) -> Hedged<'a, T, Op, F, P, A2>
    where
        A2: FnMut(&F::Output) -> bool,
        F: Future,
    {
        Hedged {
            policy: self.policy,
            timer: self.timer,
            op: self.op,
            accept,
            delay: self.delay,
            started: self.started,
            state: self.state,
        }
    }
}

impl<T: Timer, Op, F, P, A> fmt::Debug for Hedged<'_, T, Op, F, P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (in_flight, done) = match &self.state {
            State::Start => (0, false),
            State::Running { first, hedges, .. } => (
                usize::from(matches!(first, Slot::Busy { .. })) + hedges.len(),
                false,
            ),
            State::Done => (0, true),
        };
        f.debug_struct("Hedged")
            .field("delay", &self.delay)
            .field("started", &self.started)
            .field("in_flight", &in_flight)
            .field("done", &done)
            .finish_non_exhaustive()
    }
}

impl<T, Op, F, P, A> Future for Hedged<'_, T, Op, F, P, A>
where
    T: Timer,
    Op: FnMut() -> F,
    F: Future,
    P: Policy,
    A: Accept<F::Output>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let policy = *this.policy;
        if let StateProj::Start = this.state.as_mut().project() {
            let now = this.timer.now();
            *this.delay = policy.delay();
            let next_at = (*this.delay != Duration::MAX && policy.max_hedges() > 0)
                .then(|| now.saturating_add(*this.delay));
            *this.started = 1;
            this.state.set(State::Running {
                first: Slot::Busy { fut: (this.op)() },
                first_start: now,
                hedges: Vec::new(),
                sleep: Slot::Empty,
                next_at,
            });
        }
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
                panic!("`Hedged` polled after completion");
            };
            let mut start_now = false;
            // 1. The attempts.
            if let SlotProj::Busy { fut } = first.as_mut().project() {
                if let Poll::Ready(out) = fut.poll(cx) {
                    first.set(Slot::Empty);
                    if this.accept.accept(&out) {
                        let latency = policy
                            .records()
                            .then(|| this.timer.now().saturating_sub(*first_start));
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
                    if this.accept.accept(&out) {
                        let latency = policy
                            .records()
                            .then(|| this.timer.now().saturating_sub(started_at));
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
                *next_at = None;
                sleep.set(Slot::Empty);
                let (started, next) = start_hedge(
                    policy,
                    *this.timer,
                    this.op,
                    *this.delay,
                    this.started,
                    hedges,
                );
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
                return Poll::Ready(out);
            };
            if let Slot::Empty = &*sleep {
                sleep.set(Slot::Busy {
                    fut: this.timer.sleep_until(at),
                });
            }
            let SlotProj::Busy { fut } = sleep.as_mut().project() else {
                unreachable!("the sleep was just set");
            };
            if fut.poll(cx).is_pending() {
                return Poll::Pending;
            }
            sleep.set(Slot::Empty);
            let (_, next) = start_hedge(
                policy,
                *this.timer,
                this.op,
                *this.delay,
                this.started,
                hedges,
            );
            *next_at = next;
        };
        // Losers and the sleep are dropped before the result is handed out.
        this.state.set(State::Done);
        policy.finish(latency, by_hedge);
        Poll::Ready(output)
    }
}

/// Starts a hedge if `max_hedges` and the budget allow. Returns whether one started and when
/// the next may start.
fn start_hedge<T, Op, F, P: Policy>(
    policy: &P,
    timer: &T,
    op: &mut Op,
    delay: Duration,
    started: &mut u32,
    hedges: &mut Vec<(Pin<Box<F>>, Duration)>,
) -> (bool, Option<Duration>)
where
    T: Timer,
    Op: FnMut() -> F,
{
    if *started > policy.max_hedges() || !policy.draw(*started + 1) {
        return (false, None);
    }
    *started += 1;
    let now = timer.now();
    hedges.push((Box::pin(op()), now));
    let next = (*started <= policy.max_hedges()).then(|| now.saturating_add(delay));
    (true, next)
}
