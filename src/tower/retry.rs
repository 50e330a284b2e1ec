//! [`RetryLayer`] and [`RetryService`]: a dike [`Retry`] policy as tower middleware.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::num::NonZeroU32;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::retry::{Decision, Failure, Hooks, Limit, Retry, decide};
use crate::time::Timer;

/// Wraps services in a [`RetryService`]: each request is retried per a dike [`Retry`] policy,
/// waiting on `timer` between attempts.
///
/// The policy is shared (an `Arc`) by every service the layer wraps and by every response
/// future, so the futures are `'static` and one [`RetryBudget`](crate::retry::RetryBudget)
/// given to the policy with [`with_budget`](Retry::with_budget) caps the retries of all of
/// them. The policy's attempts, schedule, time budget and hooks
/// ([`when`](Retry::when), [`delay_for`](Retry::delay_for), [`notify`](Retry::notify),
/// [`on_event`](Retry::on_event), [`with_budget`](Retry::with_budget)) apply as in
/// [`Retry::run`]; see
/// [the retry module's Behaviour](crate::retry#behaviour). The time budget
/// ([`with_max_elapsed`](Retry::with_max_elapsed)) counts from `call`, when the first attempt
/// is sent.
///
/// # Stacking
///
/// Put the retry layer above a [`GateLayer`](super::GateLayer) or a
/// [`ThrottleLayer`](super::ThrottleLayer) to send every attempt through them (each retry
/// waits for the inner readiness, so for a permit or a start slot). Their refusals are then
/// errors like any other to the policy; to retry only the inner service's own failures, give
/// the policy a [`when`](Retry::when) such as `|e: &Error<_>| !e.is_refusal()`.
///
/// # Cloning the request
///
/// The request type must be `Clone`. At `call` the layer keeps the original and sends a
/// clone of it; each retry sends a fresh clone of that original, never a request an attempt
/// consumed. So one request costs one clone per attempt (a success at the first attempt
/// costs one clone), plus one clone of the inner service for the retries.
///
/// A request that cannot be cloned cannot be retried: an `http::Request` whose body is a
/// stream is not `Clone`. Buffer such a body first (e.g. into `Bytes`, which clones by a
/// reference count), or put the retry below the layer that builds the request, as in a
/// client whose service takes a request description and builds the `http::Request` per
/// attempt.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::Retry;
/// use dike::time::ManualTimer;
/// use dike::tower::RetryLayer;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let calls = AtomicU32::new(0);
/// let flaky = service_fn(|n: u32| {
///     let attempt = calls.fetch_add(1, Ordering::Relaxed) + 1;
///     async move { if attempt < 3 { Err("flaky") } else { Ok(n * 10) } }
/// });
/// let policy = Retry::new().try_with_attempts(4)?; // no delay: ManualTimer needs no advance
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(policy, ManualTimer::new()))
///     .service(flaky);
/// assert_eq!(smol::block_on(service.oneshot(4)), Ok(40));
/// assert_eq!(calls.load(Ordering::Relaxed), 3);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct RetryLayer<B, H, T> {
    policy: Arc<Retry<B, H>>,
    timer: T,
}

impl<B, H, T: Timer> RetryLayer<B, H, T> {
    /// A layer retrying per `policy`, waiting on `timer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    /// use dike::tower::RetryLayer;
    ///
    /// let policy = Retry::exponential(Duration::from_millis(50), 2.0)?.try_with_attempts(3)?;
    /// let layer = RetryLayer::new(policy, ManualTimer::new());
    /// assert_eq!(layer.policy().attempts(), Some(3));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn new(policy: Retry<B, H>, timer: T) -> Self {
        Self::shared(Arc::new(policy), timer)
    }

    /// A layer retrying per a shared `policy` (shared with other layers or with code that
    /// runs it directly), waiting on `timer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::retry::{Retry, RetryBudget};
    /// use dike::time::ManualTimer;
    /// use dike::tower::RetryLayer;
    ///
    /// let policy = Arc::new(Retry::new().try_with_attempts(3)?.with_budget(RetryBudget::new()));
    /// let a = RetryLayer::shared(Arc::clone(&policy), ManualTimer::new());
    /// let b = RetryLayer::shared(Arc::clone(&policy), ManualTimer::new());
    /// assert!(Arc::ptr_eq(a.policy(), b.policy()), "one budget for both");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn shared(policy: Arc<Retry<B, H>>, timer: T) -> Self {
        Self { policy, timer }
    }

    /// The policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    /// use dike::tower::RetryLayer;
    ///
    /// let layer = RetryLayer::new(Retry::new(), ManualTimer::new());
    /// assert_eq!(layer.policy().attempts(), None);
    /// ```
    pub fn policy(&self) -> &Arc<Retry<B, H>> {
        &self.policy
    }
}

impl<B, H, T: Clone> Clone for RetryLayer<B, H, T> {
    fn clone(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
        }
    }
}

impl<S, B, H, T: Timer> Layer<S> for RetryLayer<B, H, T> {
    type Service = RetryService<S, B, H, T>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
        }
    }
}

impl<B: fmt::Debug, H: fmt::Debug, T> fmt::Debug for RetryLayer<B, H, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A service whose requests are retried per a dike [`Retry`] policy. Built by
/// [`RetryLayer`]; see it for how the request is cloned.
///
/// `poll_ready` is the inner service's own. `call` sends a clone of the request to the inner
/// service made ready, and moves that service into the [`RetryFuture`] for the retries
/// (leaving a clone of it here, which needs its own `poll_ready` before the next `call`, as
/// the tower contract wants anyway). Before each retry, the future polls that service's
/// readiness again: a service that is not ready is never called.
///
/// The error is the inner service's, unchanged: the last attempt's error once the policy
/// gives up, or an error the inner service's `poll_ready` returned before a retry (a service
/// that failed readiness is broken, so the future stops there).
///
/// # Examples
///
/// ```
/// use dike::retry::Retry;
/// use dike::time::ManualTimer;
/// use dike::tower::RetryLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let layer = RetryLayer::new(Retry::new().try_with_attempts(2)?, ManualTimer::new());
/// let service = layer.layer(service_fn(|_: ()| async { Err::<(), _>("down") }));
/// assert_eq!(smol::block_on(service.oneshot(())), Err("down"), "the last error, unchanged");
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct RetryService<S, B, H, T> {
    inner: S,
    policy: Arc<Retry<B, H>>,
    timer: T,
}

impl<S, B, H, T> RetryService<S, B, H, T> {
    /// The policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    /// use dike::tower::RetryLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let layer = RetryLayer::new(Retry::new(), ManualTimer::new());
    /// let service = layer.layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// assert!(std::sync::Arc::ptr_eq(service.policy(), layer.policy()));
    /// ```
    pub fn policy(&self) -> &Arc<Retry<B, H>> {
        &self.policy
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    /// use dike::tower::RetryLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let service = RetryLayer::new(Retry::new(), ManualTimer::new())
    ///     .layer(service_fn(|()| async { Ok::<_, ()>(()) }));
    /// let _inner = service.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, B, H, T: Clone> Clone for RetryService<S, B, H, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
        }
    }
}

impl<S: fmt::Debug, B: fmt::Debug, H: fmt::Debug, T> fmt::Debug for RetryService<S, B, H, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, Req, B, H, T> Service<Req> for RetryService<S, B, H, T>
where
    S: Service<Req> + Clone,
    S::Error: fmt::Debug,
    Req: Clone,
    B: Clone + IntoIterator<Item = Duration>,
    H: Hooks<S::Error>,
    T: Timer,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RetryFuture<S, Req, B, H, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The service made ready sends the first attempt and goes into the future; a clone
        // stays here (tower's usual swap).
        let clone = self.inner.clone();
        let mut ready = core::mem::replace(&mut self.inner, clone);
        let future = ready.call(request.clone());
        let policy = &*self.policy;
        let limit = match policy.max_elapsed() {
            Some(max) => Limit::Until(self.timer.now().saturating_add(max)),
            None => Limit::Unlimited,
        };
        RetryFuture {
            service: ready,
            request,
            timer: self.timer.clone(),
            schedule: None,
            attempts: policy.attempts().and_then(NonZeroU32::new),
            limit,
            attempt: 1,
            refund: Refund {
                policy: Arc::clone(&self.policy),
                held: false,
                _error: PhantomData,
            },
            state: State::Attempt { future },
        }
    }
}

/// The policy, and whether a retry was paid for (withdrawn from a budget) and has not been
/// sent yet: dropping it then gives the withdrawal back.
struct Refund<B, H: Hooks<E>, E> {
    policy: Arc<Retry<B, H>>,
    held: bool,
    _error: PhantomData<fn(&E)>,
}

impl<B, H: Hooks<E>, E> Drop for Refund<B, H, E> {
    fn drop(&mut self) {
        if self.held {
            self.policy.hooks().cancel_retry();
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Sl> {
        Attempt { #[pin] future: F },
        Sleep { #[pin] sleep: Sl },
        Yield,
        Ready,
        Done,
    }
}

pin_project! {
    /// The response future of a [`RetryService`]: the first success, or the last error once
    /// the policy gives up.
    ///
    /// It owns what it needs (the original request, a clone of the inner service, the
    /// timer, the shared policy), so it is `'static` when they are, and `Send` when they
    /// and the inner future and the timer's sleep are.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the attempt in progress (the inner response future) or the pending
    /// sleep, and gives back a retry-budget withdrawal for a retry not yet sent; nothing else
    /// is held. What an attempt did before it was dropped is not undone.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    /// use dike::tower::{RetryFuture, RetryLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// let mut service = RetryLayer::new(Retry::new(), ManualTimer::new())
    ///     .layer(service_fn(|n: u8| async move { Ok::<_, ()>(n) }));
    /// smol::block_on(async {
    ///     let ready = service.ready().await.unwrap();
    ///     let response: RetryFuture<_, u8, _, _, _> = ready.call(7);
    ///     assert_eq!(response.await, Ok(7));
    /// });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct RetryFuture<S, Req, B, H, T>
    where
        S: Service<Req>,
        B: IntoIterator,
        H: Hooks<S::Error>,
        T: Timer,
    {
        service: S,
        request: Req,
        timer: T,
        schedule: Option<B::IntoIter>,
        attempts: Option<NonZeroU32>,
        limit: Limit,
        attempt: u32,
        refund: Refund<B, H, S::Error>,
        #[pin]
        state: State<S::Future, T::Sleep>,
    }
}

impl<S, Req, B, H, T> RetryFuture<S, Req, B, H, T>
where
    S: Service<Req>,
    B: IntoIterator,
    H: Hooks<S::Error>,
    T: Timer,
{
    /// How many attempts have been sent to the inner service so far (1 from `call` on).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::Retry;
    /// use dike::time::ManualTimer;
    /// use dike::tower::RetryLayer;
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// let mut service = RetryLayer::new(Retry::new(), ManualTimer::new())
    ///     .layer(service_fn(|n: u8| async move { Ok::<_, ()>(n) }));
    /// smol::block_on(async {
    ///     let response = service.ready().await.unwrap().call(7);
    ///     assert_eq!(response.attempts_sent(), 1);
    /// });
    /// ```
    pub fn attempts_sent(&self) -> u32 {
        self.attempt
    }
}

impl<S, Req, B, H, T> Future for RetryFuture<S, Req, B, H, T>
where
    S: Service<Req>,
    S::Error: fmt::Debug,
    Req: Clone,
    B: Clone + IntoIterator<Item = Duration>,
    H: Hooks<S::Error>,
    T: Timer,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Attempt { future } => {
                    let error = match future.poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(response)) => {
                            this.state.set(State::Done);
                            this.refund.policy.hooks().on_success();
                            return Poll::Ready(Ok(response));
                        }
                        Poll::Ready(Err(error)) => error,
                    };
                    this.state.set(State::Done);
                    let now = this.timer.now();
                    let policy = Arc::clone(&this.refund.policy);
                    let schedule = &mut *this.schedule;
                    let next_scheduled = || {
                        schedule
                            .get_or_insert_with(|| policy.schedule().clone().into_iter())
                            .next()
                    };
                    let decision = decide(
                        Failure::Error(&error),
                        *this.attempt,
                        *this.attempts,
                        *this.limit,
                        None,
                        now,
                        next_scheduled,
                        policy.hooks(),
                        &mut this.refund.held,
                    );
                    let Decision::Retry(delay) = decision else {
                        return Poll::Ready(Err(error));
                    };
                    if delay.is_zero() {
                        this.state.set(State::Yield);
                    } else {
                        let sleep = this.timer.sleep_until(now.saturating_add(delay));
                        this.state.set(State::Sleep { sleep });
                    }
                }
                StateProj::Sleep { sleep } => {
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.state.set(State::Ready);
                }
                StateProj::Yield => {
                    this.state.set(State::Ready);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                StateProj::Ready => match this.service.poll_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(error)) => {
                        // The retry is not sent: give its withdrawal back now.
                        this.state.set(State::Done);
                        this.refund.held = false;
                        this.refund.policy.hooks().cancel_retry();
                        return Poll::Ready(Err(error));
                    }
                    Poll::Ready(Ok(())) => {
                        this.refund.held = false;
                        *this.attempt = this.attempt.saturating_add(1);
                        let future = this.service.call(this.request.clone());
                        this.state.set(State::Attempt { future });
                    }
                },
                StateProj::Done => panic!("`RetryFuture` polled after completion"),
            }
        }
    }
}

impl<S, Req, B, H, T> fmt::Debug for RetryFuture<S, Req, B, H, T>
where
    S: Service<Req>,
    B: IntoIterator,
    H: Hooks<S::Error>,
    T: Timer,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Attempt { .. } => "attempt",
            State::Sleep { .. } => "sleep",
            State::Yield => "yield",
            State::Ready => "polling the service's readiness",
            State::Done => "done",
        };
        f.debug_struct("RetryFuture")
            .field("attempt", &self.attempt)
            .field("state", &format_args!("{state}"))
            .finish_non_exhaustive()
    }
}
