//! [`ThrottleLayer`] and [`ThrottleService`]: a rate limit on request starts as tower
//! middleware.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use tower_layer::Layer;
use tower_service::Service;

use super::{Error, Mode, Refusal, ResponseFuture};
use crate::error::ConfigError;
use crate::throttle::{AcquireOwned, Quota, RateLimited, Throttle};
use crate::time::Timer;

/// Wraps services in a [`ThrottleService`]: at most `rate` request starts per period, with the
/// [`Quota`]'s burst, read on `timer`.
///
/// Two modes:
///
/// - **wait** (the default, as tower's `RateLimit`): `poll_ready` waits on the timer until the
///   throttle admits the request (backpressure). Waiting requests line up in the throttle's
///   own FIFO line, and only the first sleeps on the timer (see [`ThrottleService`]);
/// - **reject** ([`reject`](ThrottleLayer::reject)): `poll_ready` never waits for the
///   throttle, and when the quota is spent the next `call` fails at once with
///   [`Error::RateLimited`], whose [`wait`](RateLimited::wait) is a `Retry-After`.
///
/// The start slot is taken in `poll_ready`, before the inner service's readiness is polled,
/// and belongs to the next `call`. A throttle cannot give a slot back: a service that was
/// ready and is dropped (or never called) has spent its slot, as a request that started would
/// have.
///
/// Built with [`new`](ThrottleLayer::new), every service the layer wraps gets a throttle of
/// its own (clones of that service share it); built with [`shared`](ThrottleLayer::shared),
/// every service shares the one throttle. See
/// [the `Service` contract](super#the-service-contract).
///
/// # Examples
///
/// ```
/// use dike::throttle::Quota;
/// use dike::time::ManualTimer;
/// use dike::tower::ThrottleLayer;
/// use tower::{ServiceBuilder, service_fn};
///
/// let timer = ManualTimer::new(); // TokioTimer, AsyncIoTimer, ... in a real program
/// let handler = service_fn(|req: u32| async move { Ok::<_, ()>(req) });
/// // Backpressure: requests start at most 100 per second, 10 at once after an idle spell.
/// let layer = ThrottleLayer::new(Quota::per_second(100).with_burst(10), timer.clone())?;
/// let _paced = ServiceBuilder::new().layer(layer).service(handler);
/// // Refuse what exceeds 100 per second, with a Retry-After.
/// let layer = ThrottleLayer::new(Quota::per_second(100), timer)?.reject();
/// let _limited = ServiceBuilder::new().layer(layer).service(handler);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ThrottleLayer<T> {
    source: Source,
    timer: T,
    mode: Mode,
}

#[derive(Clone)]
enum Source {
    Quota(Quota),
    Shared(Arc<Throttle>),
}

impl<T: Timer> ThrottleLayer<T> {
    /// A layer giving each service it wraps a throttle of its own with `quota`, waiting on
    /// `timer`, in wait mode.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the quota is invalid, as [`Throttle::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::ThrottleLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let layer = ThrottleLayer::new(Quota::per_second(5), ManualTimer::new())?;
    /// let a = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// let b = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// assert!(!std::sync::Arc::ptr_eq(a.throttle(), b.throttle()), "one throttle each");
    /// assert!(ThrottleLayer::new(Quota::per_second(0), ManualTimer::new()).is_err());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn new(quota: Quota, timer: T) -> Result<Self, ConfigError> {
        Throttle::new(quota)?; // validate once: every later `Throttle::new(quota)` succeeds
        Ok(Self {
            source: Source::Quota(quota),
            timer,
            mode: Mode::Wait,
        })
    }

    /// A layer putting every service it wraps under the one shared `throttle`, waiting on
    /// `timer`, in wait mode.
    ///
    /// Every user of the throttle must read the same clock as `timer` (see
    /// [Timers](crate::throttle#timers)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    /// use dike::tower::ThrottleLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let throttle = Arc::new(Throttle::per_second(50)?);
    /// let layer = ThrottleLayer::shared(Arc::clone(&throttle), ManualTimer::new());
    /// let a = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// assert!(Arc::ptr_eq(a.throttle(), &throttle));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn shared(throttle: Arc<Throttle>, timer: T) -> Self {
        Self {
            source: Source::Shared(throttle),
            timer,
            mode: Mode::Wait,
        }
    }

    /// Switches to reject mode: `poll_ready` never waits for the throttle, and when the quota
    /// is spent the next `call` fails at once with [`Error::RateLimited`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::{Error, ThrottleLayer};
    /// use futures_util::FutureExt;
    /// use tower::{Layer, Service, service_fn};
    ///
    /// let layer = ThrottleLayer::new(Quota::per_second(2), ManualTimer::new())?.reject();
    /// let mut service = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    ///
    /// assert!(service.poll_ready(&mut cx).is_ready());
    /// assert_eq!(service.call(()).now_or_never(), Some(Ok(())));
    /// assert!(service.poll_ready(&mut cx).is_ready());
    /// let err = service.call(()).now_or_never().unwrap().unwrap_err();
    /// assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[must_use]
    pub fn reject(mut self) -> Self {
        self.mode = Mode::Reject;
        self
    }
}

impl<S, T: Timer> Layer<S> for ThrottleLayer<T> {
    type Service = ThrottleService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        let throttle = match &self.source {
            Source::Quota(quota) => match Throttle::new(*quota) {
                Ok(throttle) => Arc::new(throttle),
                Err(_) => unreachable!("the quota was validated by `ThrottleLayer::new`"),
            },
            Source::Shared(throttle) => Arc::clone(throttle),
        };
        ThrottleService {
            inner,
            throttle,
            timer: self.timer.clone(),
            mode: self.mode,
            state: State::Idle,
            refusal: None,
            wait: None,
        }
    }
}

impl<T> fmt::Debug for ThrottleLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ThrottleLayer");
        match &self.source {
            Source::Quota(quota) => s.field("quota", quota),
            Source::Shared(throttle) => s.field("shared", throttle),
        };
        s.field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// A service under a [`Throttle`]: its requests start at most at the throttle's rate. Built
/// by [`ThrottleLayer`]; see it for the modes, and
/// [the `Service` contract](super#the-service-contract).
///
/// `poll_ready` takes the start slot (in wait mode, sleeping on the timer until the throttle
/// admits it), then polls the inner service's readiness. A clone shares the throttle but
/// starts without a slot.
///
/// Waiting services line up in the throttle's own FIFO line
/// ([`Throttle::acquire_owned`]), with every other waiter of the throttle: the services of
/// every layer sharing it, their clones, and code awaiting [`Throttle::acquire`]. Only the
/// waiter at the head of the line sleeps on the timer, until the throttle's next slot, and
/// checks again; the others wait for their turn without a timer. When the head is admitted,
/// the next waiter becomes the head. While anyone waits, a new request joins the line instead
/// of trying the throttle first.
///
/// # Fairness
///
/// FIFO among everyone waiting on the throttle: a request that arrives while others wait
/// goes behind them, and one wake-up per slot, not one per waiting request. Only code calling
/// [`Throttle::try_acquire`] directly does not queue, and may take a slot the head was
/// sleeping for (the head then sleeps until the next one).
///
/// # Cancel safety
///
/// A service may be dropped at any point: a waiting service leaves the line (its turn passes
/// to the next waiter) and reserved nothing on the throttle, so dropping it costs nothing. A
/// slot already taken (the service was ready) is spent.
///
/// A waiting service that is neither polled nor dropped keeps its place: when its turn comes,
/// the line waits for it to be polled (as any reservation made by `poll_ready` in tower, drive
/// a service to readiness or drop it).
///
/// # Panics
///
/// `call` panics if `poll_ready` did not return `Ready(Ok(()))` since the last `call`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::throttle::Quota;
/// use dike::time::ManualTimer;
/// use dike::tower::ThrottleLayer;
/// use tower::{Layer, Service, service_fn};
///
/// let timer = ManualTimer::new();
/// let layer = ThrottleLayer::new(Quota::per_second(10), timer.clone())?;
/// let mut service = layer.layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
/// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
///
/// assert!(service.poll_ready(&mut cx).is_ready());
/// let _first = service.call(1);
/// assert!(service.poll_ready(&mut cx).is_pending(), "the next slot is 100 ms away");
/// timer.advance(Duration::from_millis(100));
/// assert!(service.poll_ready(&mut cx).is_ready());
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct ThrottleService<S, T: Timer> {
    inner: S,
    throttle: Arc<Throttle>,
    timer: T,
    mode: Mode,
    /// One byte, so the hot path reads and writes it without decoding a payload.
    state: State,
    /// Why the next call fails, while `state` is `Refused`.
    refusal: Option<RateLimited>,
    /// The wait in the throttle's line while `state` is `Waiting`.
    wait: Option<Pin<Box<AcquireOwned<T>>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// No slot taken, not waiting.
    Idle,
    /// In the throttle's line (wait mode), as `wait` says.
    Waiting,
    /// The slot is taken; the next call starts.
    Admitted,
    /// The next call fails with `refusal`.
    Refused,
}

impl<S, T: Timer> ThrottleService<S, T> {
    /// The throttle this service's requests pass through.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    /// use dike::tower::ThrottleLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let layer = ThrottleLayer::new(Throttle::per_second(4)?.quota(), ManualTimer::new())?;
    /// let service = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// assert_eq!(service.throttle().interval(), Duration::from_millis(250));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::ThrottleLayer;
    /// use tower::Layer;
    ///
    /// let service = ThrottleLayer::new(Quota::per_second(1), ManualTimer::new())?.layer("inner");
    /// assert_eq!(*service.get_ref(), "inner");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::ThrottleLayer;
    /// use tower::Layer;
    ///
    /// let mut service = ThrottleLayer::new(Quota::per_second(1), ManualTimer::new())?.layer(1);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 2);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::ThrottleLayer;
    /// use tower::Layer;
    ///
    /// let service = ThrottleLayer::new(Quota::per_second(1), ManualTimer::new())?.layer("inner");
    /// assert_eq!(service.into_inner(), "inner");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, R> Service<R> for ThrottleService<S, T>
where
    S: Service<R>,
    T: Timer,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.state {
            State::Admitted => return self.inner.poll_ready(cx).map_err(Error::Inner),
            // Decide afresh: the quota may have room now. While others wait, a new request
            // goes behind them.
            State::Idle | State::Refused => {
                if self.mode == Mode::Reject || self.throttle.line_is_empty() {
                    match self.throttle.try_acquire(&self.timer) {
                        Ok(()) => {
                            self.state = State::Admitted;
                            return self.inner.poll_ready(cx).map_err(Error::Inner);
                        }
                        Err(refusal) if self.mode == Mode::Reject => {
                            // Ready, so that the next call fails at once (a failed
                            // `poll_ready` would mean a broken service).
                            self.state = State::Refused;
                            self.refusal = Some(refusal);
                            return Poll::Ready(Ok(()));
                        }
                        Err(_) => {}
                    }
                }
                self.join_line();
            }
            State::Waiting => {}
        }
        if let Some(wait) = &mut self.wait {
            ready!(wait.as_mut().poll(cx));
            self.wait = None; // completed: the turn passed on already
        }
        self.state = State::Admitted;
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    #[inline]
    fn call(&mut self, request: R) -> Self::Future {
        match core::mem::replace(&mut self.state, State::Idle) {
            State::Admitted => ResponseFuture::called(self.inner.call(request), None),
            State::Refused => match self.refusal.take() {
                Some(refusal) => ResponseFuture::refused(Refusal::RateLimited(refusal)),
                None => unreachable!("a refused service holds its refusal"),
            },
            State::Idle | State::Waiting => panic!(
                "`ThrottleService::call` without a `poll_ready` that returned `Ready(Ok(()))`"
            ),
        }
    }
}

impl<S, T: Timer> ThrottleService<S, T> {
    /// Joins the end of the throttle's line.
    #[cold]
    fn join_line(&mut self) {
        self.wait = Some(Box::pin(self.throttle.acquire_owned(self.timer.clone())));
        self.state = State::Waiting;
    }
}

impl<S: Clone, T: Timer> Clone for ThrottleService<S, T> {
    /// A clone shares the throttle and starts without a slot.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            throttle: Arc::clone(&self.throttle),
            timer: self.timer.clone(),
            mode: self.mode,
            state: State::Idle,
            refusal: None,
            wait: None,
        }
    }
}

impl<S: fmt::Debug, T: Timer> fmt::Debug for ThrottleService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Waiting => "waiting",
            State::Admitted => "admitted",
            State::Refused => "refused",
        };
        f.debug_struct("ThrottleService")
            .field("inner", &self.inner)
            .field("throttle", &self.throttle)
            .field("mode", &self.mode)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
