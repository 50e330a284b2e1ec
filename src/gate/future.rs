//! The named futures of [`Gate`]: one state machine ([`Acquire`]) driven by every waiting
//! method, owned or borrowed, with or without a deadline.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::ops::Deref;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::engine::Slot;
use super::{Gate, OwnedPermit, Permit};
use crate::error::{TooManyCalls, TooManyCallsKind};
use crate::time::Timer;

/// A waiting entry into a gate reached through `G` (`&Gate` or `Arc<Gate>`).
///
/// Dropping it withdraws its registration; a permit it had been granted but not observed
/// passes on to the next waiter. Once it has completed, polling it again panics with the
/// message "`<name>` polled after completion", `name` being the public future's.
///
/// `repr(C)` with the slot first: a new future is written as one 16-byte slot and one word,
/// and copied (moved into an executor or a combinator) the same way, so the copy's loads are
/// served straight from those stores.
#[repr(C)]
struct Acquire<G: Deref<Target = Gate>> {
    slot: Slot,
    gate: G,
}

impl<G: Deref<Target = Gate>> Acquire<G> {
    #[inline]
    fn new(gate: G) -> Self {
        Self {
            gate,
            slot: Slot::new(),
        }
    }

    #[inline]
    fn poll(&mut self, cx: &mut Context<'_>, name: &str) -> Poll<Result<(), TooManyCalls>> {
        if self.slot.is_done() {
            polled_after_completion(name);
        }
        let engine = &self.gate.engine;
        engine
            .poll_acquire(&mut self.slot, cx)
            .map_err(|kind| TooManyCalls::new(engine.limit(), kind))
    }

    /// Gives up waiting at a deadline: `Ok` if a permit was granted meanwhile.
    fn time_out(&mut self) -> Result<(), TooManyCalls> {
        let engine = &self.gate.engine;
        if engine.withdraw(&mut self.slot) {
            Ok(())
        } else {
            engine.note_rejected(TooManyCallsKind::TimedOut);
            Err(TooManyCalls::new(
                engine.limit(),
                TooManyCallsKind::TimedOut,
            ))
        }
    }
}

impl<G: Deref<Target = Gate>> Drop for Acquire<G> {
    #[inline]
    fn drop(&mut self) {
        if self.slot.is_queued() {
            self.gate.engine.cancel(&mut self.slot);
        }
    }
}

#[cold]
#[track_caller]
fn polled_after_completion(name: &str) -> ! {
    panic!("`{name}` polled after completion")
}

impl<G: Deref<Target = Gate>> fmt::Debug for Acquire<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("gate", &*self.gate)
            .field("queued", &self.slot.is_queued())
            .field("done", &self.slot.is_done())
            .finish()
    }
}

/// The future returned by [`Gate::enter`]: resolves to a [`Permit`] once one is free.
///
/// It joins the gate's queue on its first `Pending` poll and leaves it when dropped.
/// Polling it again after it completed panics.
///
/// # Examples
///
/// ```
/// use dike::gate::{Enter, Gate};
/// use futures_util::FutureExt;
///
/// let gate = Gate::new(1);
/// let held = gate.try_enter().unwrap();
/// let mut enter: Enter<'_> = gate.enter();
/// assert!((&mut enter).now_or_never().is_none());
/// assert_eq!(gate.stats().waiting, 1);
/// drop(held); // handed straight to the waiter
/// assert!(enter.now_or_never().unwrap().is_ok());
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct Enter<'a> {
    acquire: Acquire<&'a Gate>,
}

impl<'a> Enter<'a> {
    #[inline]
    pub(super) fn new(gate: &'a Gate) -> Self {
        Self {
            acquire: Acquire::new(gate),
        }
    }
}

impl<'a> Future for Enter<'a> {
    type Output = Result<Permit<'a>, TooManyCalls>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let gate = self.acquire.gate;
        self.acquire
            .poll(cx, "Enter")
            .map_ok(|()| Permit::new(gate))
    }
}

/// The future returned by [`Gate::enter_owned`]: resolves to an [`OwnedPermit`] once one is
/// free.
///
/// `'static` and `Send`, so a spawned task can wait on it. Polling it again after it
/// completed panics.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use dike::gate::{EnterOwned, Gate};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let gate = Arc::new(Gate::new(1));
/// let held = gate.try_enter_owned().unwrap();
/// let enter: EnterOwned = gate.enter_owned();
/// let task = tokio::spawn(async move { enter.await.is_ok() });
/// drop(held);
/// assert!(task.await.unwrap());
/// # }
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct EnterOwned {
    acquire: Acquire<Arc<Gate>>,
}

impl EnterOwned {
    #[inline]
    pub(super) fn new(gate: Arc<Gate>) -> Self {
        Self {
            acquire: Acquire::new(gate),
        }
    }
}

impl Future for EnterOwned {
    type Output = Result<OwnedPermit, TooManyCalls>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let acquire = &mut self.acquire;
        acquire
            .poll(cx, "EnterOwned")
            .map_ok(|()| OwnedPermit::new(Arc::clone(&acquire.gate)))
    }
}

/// Crate-internal: a waiting entry into a gate reached through any owner `G` that derefs to
/// it (the throttle's line inside an `Arc<Throttle>`), for `'static` waiting futures of
/// other primitives. Unpin; dropping it leaves the queue, as [`Enter`] does.
pub(crate) struct EnterBy<G: Deref<Target = Gate>> {
    acquire: Acquire<G>,
}

impl<G: Deref<Target = Gate> + Clone> EnterBy<G> {
    #[inline]
    pub(crate) fn new(gate: G) -> Self {
        Self {
            acquire: Acquire::new(gate),
        }
    }

    /// Polls for the permit; `name` is the public future's, for a poll after completion.
    #[inline]
    pub(crate) fn poll_enter(
        &mut self,
        cx: &mut Context<'_>,
        name: &str,
    ) -> Poll<Result<PermitBy<G>, TooManyCalls>> {
        let acquire = &mut self.acquire;
        acquire
            .poll(cx, name)
            .map_ok(|()| PermitBy(acquire.gate.clone()))
    }
}

/// Crate-internal: a permit of a gate reached through `G`, released on drop.
pub(crate) struct PermitBy<G: Deref<Target = Gate>>(G);

impl<G: Deref<Target = Gate>> Drop for PermitBy<G> {
    #[inline]
    fn drop(&mut self) {
        self.0.engine.release();
    }
}

pin_project! {
    /// The future returned by [`Gate::enter_timeout`] and [`Gate::enter_until`]: resolves to
    /// a [`Permit`] once one is free, or to [`TooManyCalls`] at the deadline.
    ///
    /// A permit handed over by the time the deadline is seen wins over the timeout. Polling it
    /// again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::gate::Gate;
    /// use dike::time::ManualTimer;
    /// use futures_util::FutureExt;
    ///
    /// let gate = Gate::new(1);
    /// let timer = ManualTimer::new();
    /// let held = gate.try_enter().unwrap();
    /// let mut wait = Box::pin(gate.enter_timeout(&timer, Duration::from_millis(5)));
    /// assert!(wait.as_mut().now_or_never().is_none());
    /// drop(held);
    /// timer.advance(Duration::from_millis(5));
    /// assert!(wait.now_or_never().unwrap().is_ok(), "granted before the deadline was seen");
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct EnterTimeout<'a, T: Timer> {
        acquire: Acquire<&'a Gate>,
        #[pin]
        sleep: T::Sleep,
    }
}

impl<'a, T: Timer> EnterTimeout<'a, T> {
    pub(super) fn new(gate: &'a Gate, sleep: T::Sleep) -> Self {
        Self {
            acquire: Acquire::new(gate),
            sleep,
        }
    }
}

impl<'a, T: Timer> Future for EnterTimeout<'a, T> {
    type Output = Result<Permit<'a>, TooManyCalls>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let gate = this.acquire.gate;
        poll_timed(this.acquire, this.sleep, cx, "EnterTimeout").map_ok(|()| Permit::new(gate))
    }
}

impl<T: Timer> fmt::Debug for EnterTimeout<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterTimeout")
            .field("acquire", &self.acquire)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future returned by [`Gate::enter_timeout_owned`] and [`Gate::enter_until_owned`]:
    /// resolves to an [`OwnedPermit`] once one is free, or to [`TooManyCalls`] at the
    /// deadline.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Arc;
    /// use dike::error::TooManyCallsKind;
    /// use dike::gate::Gate;
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let gate = Arc::new(Gate::new(1));
    /// let _held = gate.try_enter().unwrap();
    /// let timer = ManualTimer::new();
    /// let wait = gate.enter_timeout_owned(&timer, Duration::from_secs(1));
    /// timer.advance(Duration::from_secs(1));
    /// assert_eq!(wait.await.unwrap_err().kind(), TooManyCallsKind::TimedOut);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct EnterTimeoutOwned<T: Timer> {
        acquire: Acquire<Arc<Gate>>,
        #[pin]
        sleep: T::Sleep,
    }
}

impl<T: Timer> EnterTimeoutOwned<T> {
    pub(super) fn new(gate: Arc<Gate>, sleep: T::Sleep) -> Self {
        Self {
            acquire: Acquire::new(gate),
            sleep,
        }
    }
}

impl<T: Timer> Future for EnterTimeoutOwned<T> {
    type Output = Result<OwnedPermit, TooManyCalls>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let acquire = this.acquire;
        match poll_timed(acquire, this.sleep, cx, "EnterTimeoutOwned") {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(OwnedPermit::new(Arc::clone(&acquire.gate)))),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Timer> fmt::Debug for EnterTimeoutOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterTimeoutOwned")
            .field("acquire", &self.acquire)
            .finish_non_exhaustive()
    }
}

/// Polls the entry first, then the deadline; a permit granted by the time the deadline is seen
/// wins over the timeout.
fn poll_timed<G: Deref<Target = Gate>, S: Future<Output = ()>>(
    acquire: &mut Acquire<G>,
    sleep: Pin<&mut S>,
    cx: &mut Context<'_>,
    name: &str,
) -> Poll<Result<(), TooManyCalls>> {
    if let Poll::Ready(result) = acquire.poll(cx, name) {
        return Poll::Ready(result);
    }
    match sleep.poll(cx) {
        Poll::Ready(()) => Poll::Ready(acquire.time_out()),
        Poll::Pending => Poll::Pending,
    }
}
