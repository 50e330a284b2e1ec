//! # Implementation notes
//!
//! [`Hedged`] is the shared hedging `Driver` (see its notes) over the attempts `op` makes:
//! the first attempt is made on the first poll, inline; each hedge is a boxed call of `op`.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::driver::{Driver, FnAttempts, Plan};
use super::{Accept, Policy};
use crate::time::Timer;

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
        #[pin]
        driver: Driver<F, F, T::Sleep>,
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
            driver: Driver::new(),
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
            driver: self.driver,
        }
    }
}

impl<T: Timer, Op, F, P, A> fmt::Debug for Hedged<'_, T, Op, F, P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.driver.fmt_as("Hedged", f)
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
        let (policy, timer) = (*this.policy, *this.timer);
        if this.driver.is_new() {
            let plan = Plan::new(policy, timer.now());
            this.driver.as_mut().begin(plan, (this.op)());
        }
        this.driver.poll(
            cx,
            "Hedged",
            policy,
            timer,
            this.accept,
            &mut FnAttempts(this.op),
        )
    }
}
