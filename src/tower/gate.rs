//! [`GateLayer`] and [`GateService`]: a concurrency limit as tower middleware.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use super::{Error, Mode, Refusal, ResponseFuture};
use crate::error::TooManyCalls;
use crate::gate::{EnterOwned, EnterTimeoutOwned, Gate, OwnedPermit};
use crate::time::Timer;

/// Wraps services in a [`GateService`]: at most `limit` requests in flight.
///
/// Three modes:
///
/// - **wait** (the default, as tower's `ConcurrencyLimit`): `poll_ready` waits for a permit in
///   the gate's FIFO order (backpressure);
/// - **wait up to a timeout** ([`with_timeout`](GateLayer::with_timeout)): as wait, but a wait
///   that reaches its deadline is a refusal, [`TooManyCallsKind::TimedOut`];
/// - **reject** ([`reject`](GateLayer::reject), as tower's `LoadShed` over a limit):
///   `poll_ready` never waits for the gate, and when the gate is full the next `call` fails
///   at once with [`TooManyCallsKind::Full`].
///
/// A refusal, in any mode, is `poll_ready` returning `Ready(Ok(()))` and the following `call`
/// failing at once with [`Error::TooManyCalls`] without calling the inner service. A limit of
/// zero refuses every request in every mode (never a hang), as the gate itself does; so does a
/// shared gate whose [queue of waiters](Gate::with_max_waiting) is full
/// ([`TooManyCallsKind::QueueFull`]).
///
/// Built with [`new`](GateLayer::new), every service the layer wraps gets a gate of its own
/// (clones of that service share it); built with [`shared`](GateLayer::shared), every service
/// shares the one gate. See [the `Service` contract](super#the-service-contract) for when the
/// permit is taken and released.
///
/// `T` is the timer of a bounded wait, `()` without one.
///
/// [`TooManyCallsKind::TimedOut`]: crate::error::TooManyCallsKind::TimedOut
/// [`TooManyCallsKind::Full`]: crate::error::TooManyCallsKind::Full
/// [`TooManyCallsKind::QueueFull`]: crate::error::TooManyCallsKind::QueueFull
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::ManualTimer;
/// use dike::tower::GateLayer;
/// use tower::{ServiceBuilder, service_fn};
///
/// let handler = service_fn(|req: u32| async move { Ok::<_, ()>(req) });
/// // Backpressure: at most 64 in flight, callers wait in poll_ready.
/// let _wait = ServiceBuilder::new().layer(GateLayer::new(64)).service(handler);
/// // Load shedding: the 65th concurrent request fails at once.
/// let _shed = ServiceBuilder::new().layer(GateLayer::new(64).reject()).service(handler);
/// // Wait at most 50 ms for a permit.
/// let timer = ManualTimer::new();
/// let layer = GateLayer::new(64).with_timeout(timer, Duration::from_millis(50));
/// let _bounded = ServiceBuilder::new().layer(layer).service(handler);
/// ```
#[derive(Clone)]
pub struct GateLayer<T = ()> {
    source: Source,
    mode: Mode,
    timer: T,
    timeout: Duration,
}

#[derive(Clone)]
enum Source {
    Limit(usize),
    Shared(Arc<Gate>),
}

impl GateLayer<()> {
    /// A layer giving each service it wraps a gate of its own with `limit` permits, in wait
    /// mode.
    ///
    /// A limit above [`Gate::MAX_LIMIT`] is clamped to it; a limit of zero refuses every
    /// request.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::GateLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let layer = GateLayer::new(2);
    /// let a = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// let b = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// assert!(!std::sync::Arc::ptr_eq(a.gate(), b.gate()), "one gate each");
    /// assert_eq!(a.gate().limit(), 2);
    /// ```
    pub fn new(limit: usize) -> Self {
        Self {
            source: Source::Limit(limit),
            mode: Mode::Wait,
            timer: (),
            timeout: Duration::MAX,
        }
    }

    /// A layer putting every service it wraps under the one shared `gate`, in wait mode.
    ///
    /// The gate may also be entered directly, or used by other layers: one limit across
    /// routes, services and plain code. Its [`stats`](Gate::stats) count every request.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    /// use dike::tower::GateLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let gate = Arc::new(Gate::new(8));
    /// let layer = GateLayer::shared(Arc::clone(&gate));
    /// let a = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// let b = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// assert!(Arc::ptr_eq(a.gate(), &gate) && Arc::ptr_eq(b.gate(), &gate));
    /// ```
    pub fn shared(gate: Arc<Gate>) -> Self {
        Self {
            source: Source::Shared(gate),
            mode: Mode::Wait,
            timer: (),
            timeout: Duration::MAX,
        }
    }

    /// Waits for a permit for at most `timeout` on `timer`, measured from the first
    /// `poll_ready` that finds the gate full; then refuses with
    /// [`TooManyCallsKind::TimedOut`](crate::error::TooManyCallsKind::TimedOut). Puts the
    /// layer in wait mode (undoing [`reject`](GateLayer::reject)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::error::TooManyCallsKind;
    /// use dike::time::ManualTimer;
    /// use dike::tower::{Error, GateLayer};
    /// use futures_util::FutureExt;
    /// use tower::{Layer, Service, service_fn};
    ///
    /// let timer = ManualTimer::new();
    /// let layer = GateLayer::new(1).with_timeout(timer.clone(), Duration::from_millis(50));
    /// let mut first = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// let mut second = first.clone();
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    ///
    /// assert!(first.poll_ready(&mut cx).is_ready()); // holds the only permit
    /// assert!(second.poll_ready(&mut cx).is_pending()); // waits
    /// timer.advance(Duration::from_millis(50));
    /// assert!(second.poll_ready(&mut cx).is_ready()); // ready to fail
    /// match second.call(()).now_or_never() {
    ///     Some(Err(Error::TooManyCalls(e))) => assert_eq!(e.kind(), TooManyCallsKind::TimedOut),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn with_timeout<T: Timer>(self, timer: T, timeout: Duration) -> GateLayer<T> {
        GateLayer {
            source: self.source,
            mode: Mode::Wait,
            timer,
            timeout,
        }
    }
}

impl<T> GateLayer<T> {
    /// Switches to reject mode (load shedding): `poll_ready` never waits for the gate, and
    /// when it is full the next `call` fails at once with
    /// [`TooManyCallsKind::Full`](crate::error::TooManyCallsKind::Full).
    /// A timeout set by [`with_timeout`](GateLayer::with_timeout) is then unused.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::{Error, GateLayer};
    /// use futures_util::FutureExt;
    /// use tower::{Layer, Service, service_fn};
    ///
    /// let mut first = GateLayer::new(1).reject().layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// let mut second = first.clone();
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    ///
    /// assert!(first.poll_ready(&mut cx).is_ready()); // takes the permit
    /// assert!(second.poll_ready(&mut cx).is_ready()); // ready, to fail at once
    /// assert!(matches!(second.call(()).now_or_never(), Some(Err(Error::TooManyCalls(_)))));
    /// ```
    #[must_use]
    pub fn reject(mut self) -> Self {
        self.mode = Mode::Reject;
        self
    }
}

impl<S, T: WaitTimer> Layer<S> for GateLayer<T> {
    type Service = GateService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        let gate = match &self.source {
            Source::Limit(limit) => Arc::new(Gate::new(*limit)),
            Source::Shared(gate) => Arc::clone(gate),
        };
        GateService {
            inner,
            gate,
            mode: self.mode,
            timer: self.timer.clone(),
            timeout: self.timeout,
            permit: None,
            state: State::Idle,
            wait: None,
        }
    }
}

impl<T> fmt::Debug for GateLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("GateLayer");
        match &self.source {
            Source::Limit(limit) => s.field("limit", limit),
            Source::Shared(gate) => s.field("shared", gate),
        };
        s.field("mode", &self.mode);
        if self.timeout != Duration::MAX {
            s.field("timeout", &self.timeout);
        }
        s.finish_non_exhaustive()
    }
}

/// The timer of a [`GateLayer`]'s wait: `()` for a wait without a deadline, or any
/// [`Timer`] for a bounded one ([`GateLayer::with_timeout`]).
///
/// Sealed: implemented for `()` and for every [`Timer`].
///
/// # Examples
///
/// ```
/// use dike::time::ManualTimer;
/// use dike::tower::WaitTimer;
///
/// fn takes<T: WaitTimer>(_: T) {}
/// takes(());
/// takes(ManualTimer::new());
/// ```
pub trait WaitTimer: sealed::Sealed {}

impl WaitTimer for () {}
impl<T: Timer> WaitTimer for T {}

mod sealed {
    use super::*;

    /// Where a waiting entry lives between polls: one allocation per service, reused for
    /// every wait and emptied as soon as the wait completes.
    pub(crate) type WaitSlot<W> = Option<Pin<Box<Option<W>>>>;

    /// How a [`GateService`] waits for a permit.
    #[allow(unreachable_pub)] // sealed: nameable only inside the crate
    pub trait Sealed: Clone {
        /// The waiting future.
        type Wait: Future<Output = Result<OwnedPermit, TooManyCalls>>;

        /// Enters `gate` waiting up to `timeout`: polls the entry once and, when it must wait,
        /// leaves it in `slot` for [`poll_wait`].
        fn start(
            &self,
            gate: &Arc<Gate>,
            timeout: Duration,
            slot: &mut WaitSlot<Self::Wait>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<OwnedPermit, TooManyCalls>>;
    }

    impl Sealed for () {
        type Wait = EnterOwned;

        #[inline]
        fn start(
            &self,
            gate: &Arc<Gate>,
            _timeout: Duration,
            slot: &mut WaitSlot<EnterOwned>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<OwnedPermit, TooManyCalls>> {
            // `EnterOwned` is `Unpin`: poll it in place, and box it only if it must wait.
            let mut enter = gate.enter_owned();
            let poll = Pin::new(&mut enter).poll(cx);
            if poll.is_pending() {
                put(slot, enter);
            }
            poll
        }
    }

    impl<T: Timer> Sealed for T {
        type Wait = EnterTimeoutOwned<T>;

        fn start(
            &self,
            gate: &Arc<Gate>,
            timeout: Duration,
            slot: &mut WaitSlot<EnterTimeoutOwned<T>>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<OwnedPermit, TooManyCalls>> {
            // A timer's sleep may be `!Unpin`: the entry is pinned in the slot from the start.
            put(slot, gate.enter_timeout_owned(self, timeout));
            poll_wait(slot, cx)
        }
    }

    /// Puts `wait` in `slot`, reusing its allocation.
    fn put<W>(slot: &mut WaitSlot<W>, wait: W) {
        match slot {
            Some(boxed) => boxed.as_mut().set(Some(wait)),
            None => *slot = Some(Box::pin(Some(wait))),
        }
    }

    /// Polls the wait in `slot`; empties the slot (dropping the entry and its sleep) once it
    /// completes.
    pub(crate) fn poll_wait<W>(
        slot: &mut WaitSlot<W>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<OwnedPermit, TooManyCalls>>
    where
        W: Future<Output = Result<OwnedPermit, TooManyCalls>>,
    {
        let Some(boxed) = slot else {
            unreachable!("a waiting service has its wait in its slot")
        };
        let Some(wait) = boxed.as_mut().as_pin_mut() else {
            unreachable!("a waiting service has its wait in its slot")
        };
        let poll = wait.poll(cx);
        if poll.is_ready() {
            boxed.as_mut().set(None);
        }
        poll
    }
}

/// A service under a [`Gate`]: at most `limit` of its requests in flight. Built by
/// [`GateLayer`]; see it for the modes, and [the `Service` contract](super#the-service-contract).
///
/// `poll_ready` reserves a permit (waiting for one in wait mode), then polls the inner
/// service's readiness; `call` moves the permit into the [`ResponseFuture`]. A clone shares the
/// gate but starts without a permit.
///
/// # Fairness
///
/// Waiting services are served in the gate's FIFO order (see [Fairness](Gate#fairness)): the
/// order in which they first found the gate full. A permit released is handed straight to the
/// first waiter and wakes only it. In the gate's [`stats`](Gate::stats), a request that waits
/// and is admitted counts as admitted only; a refusal (reject mode, limit 0, full queue, timed
/// out) counts once as rejected.
///
/// # Cancel safety
///
/// A service may be dropped at any point: while it waits for a permit it leaves the gate's
/// queue (a permit handed to it at that instant passes to the next waiter); when it holds a
/// permit it was not called with, the permit is released.
///
/// A permit is handed to the first waiting service whether or not it is being polled: a
/// waiting service that is neither polled nor dropped holds the permit it was given (as any
/// reservation made by `poll_ready` in tower, drive a service to readiness or drop it).
///
/// # Panics
///
/// `call` panics if `poll_ready` did not return `Ready(Ok(()))` since the last `call`.
///
/// # Examples
///
/// ```
/// use dike::tower::GateLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # smol::block_on(async {
/// let service = GateLayer::new(4).layer(service_fn(|n: u32| async move { Ok::<_, ()>(n * 2) }));
/// assert_eq!(service.clone().oneshot(21).await, Ok(42));
/// assert_eq!(service.gate().stats().admitted, 1);
/// # });
/// ```
pub struct GateService<S, T: WaitTimer = ()> {
    inner: S,
    gate: Arc<Gate>,
    mode: Mode,
    timer: T,
    timeout: Duration,
    /// The permit reserved for the next call (`state` is then `Idle`).
    permit: Option<OwnedPermit>,
    /// Where the service is when it holds no permit; plain data, so the hot path writes it
    /// without drop glue.
    state: State,
    wait: sealed::WaitSlot<<T as sealed::Sealed>::Wait>,
}

#[derive(Clone, Copy)]
enum State {
    /// Not waiting: holding a permit (in `permit`) or nothing yet.
    Idle,
    /// Waiting for a permit (wait mode); the wait is in the service's `wait` slot.
    Waiting,
    /// The next call fails with this.
    Refused(TooManyCalls),
}

impl<S, T: WaitTimer> GateService<S, T> {
    /// The gate this service's requests pass through (shared with its clones, and with every
    /// service of a [`GateLayer::shared`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::GateLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let service = GateLayer::new(3).layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// assert_eq!(service.gate().stats().in_use, 0);
    /// ```
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::GateLayer;
    /// use tower::Layer;
    ///
    /// let service = GateLayer::new(3).layer("inner");
    /// assert_eq!(*service.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::GateLayer;
    /// use tower::Layer;
    ///
    /// let mut service = GateLayer::new(3).layer(1);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service; a reserved permit is released.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::GateLayer;
    /// use tower::Layer;
    ///
    /// let service = GateLayer::new(3).layer("inner");
    /// assert_eq!(service.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, R> Service<R> for GateService<S, T>
where
    S: Service<R>,
    T: WaitTimer,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_some() {
            return self.inner.poll_ready(cx).map_err(Error::Inner);
        }
        let entered = match self.state {
            // Decide afresh: the gate may have room now.
            State::Idle | State::Refused(_) => match self.mode {
                Mode::Reject => Poll::Ready(self.gate.try_enter_owned()),
                Mode::Wait => {
                    sealed::Sealed::start(&self.timer, &self.gate, self.timeout, &mut self.wait, cx)
                }
            },
            State::Waiting => sealed::poll_wait(&mut self.wait, cx),
        };
        match entered {
            Poll::Ready(Ok(permit)) => {
                self.permit = Some(permit);
                self.state = State::Idle;
                self.inner.poll_ready(cx).map_err(Error::Inner)
            }
            Poll::Ready(Err(refusal)) => {
                // Ready, so that the next call fails at once (a failed `poll_ready` would
                // mean a broken service).
                self.state = State::Refused(refusal);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                self.state = State::Waiting;
                Poll::Pending
            }
        }
    }

    #[inline]
    fn call(&mut self, request: R) -> Self::Future {
        if let Some(permit) = self.permit.take() {
            return ResponseFuture::called(self.inner.call(request), Some(permit));
        }
        match core::mem::replace(&mut self.state, State::Idle) {
            State::Refused(refusal) => ResponseFuture::refused(Refusal::TooManyCalls(refusal)),
            State::Idle | State::Waiting => {
                panic!("`GateService::call` without a `poll_ready` that returned `Ready(Ok(()))`")
            }
        }
    }
}

impl<S: Clone, T: WaitTimer> Clone for GateService<S, T> {
    /// A clone shares the gate and starts without a permit.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            gate: Arc::clone(&self.gate),
            mode: self.mode,
            timer: self.timer.clone(),
            timeout: self.timeout,
            permit: None,
            state: State::Idle,
            wait: None,
        }
    }
}

impl<S: fmt::Debug, T: WaitTimer> fmt::Debug for GateService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            _ if self.permit.is_some() => "reserved",
            State::Idle => "idle",
            State::Waiting => "waiting",
            State::Refused(_) => "refused",
        };
        f.debug_struct("GateService")
            .field("inner", &self.inner)
            .field("gate", &self.gate)
            .field("mode", &self.mode)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
