//! [`HedgeLayer`] and [`HedgeService`]: a dike [`Hedge`] policy as tower middleware.
//!
//! # Implementation notes
//!
//! [`HedgeFuture`] is the hedging driver [`Hedged`](crate::hedge::Hedged) runs on (its loop,
//! shared), owning what `Hedged` borrows (the policy behind an `Arc`, the timer), so the
//! future is `'static`. The first attempt is the inner service's response future, inline;
//! each hedge is a boxed [`Attempt`]: a clone of the inner service driven to readiness inside
//! the response future, then called with a clone of the request (the last hedge takes the
//! originals). On a result every other attempt and the sleep are dropped before `poll`
//! returns.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::hedge::driver::{Attempts, Driver, Plan};
use crate::hedge::{Accept, AcceptAll, Hedge, Policy};
use crate::time::Timer;

/// Wraps services in a [`HedgeService`]: when a request's answer is slower than the
/// [`Hedge`] policy's delay, the same request is sent again, to a clone of the inner
/// service, and whichever answer comes first wins.
///
/// The policy is shared (an `Arc`) by every service the layer wraps and by every response
/// future, so one latency window (for [`Hedge::quantile`]) learns from all of them and one
/// [`RetryBudget`](crate::retry::RetryBudget) given with [`Hedge::with_budget`] caps the
/// hedges of all of them (give it the budget the same dependency's retries use). The
/// policy's behaviour is [`Hedge::run`]'s, see
/// [the hedge module's Behaviour](crate::hedge#behaviour): hedges start after the delay,
/// counted from the previous attempt's start, up to `max_hedges`; each draws on the budget,
/// and an empty budget stops new hedges only (attempts in flight go on and may still win);
/// the first accepted answer wins and every other attempt is dropped at once, before the
/// answer is returned.
///
/// Hedging is for idempotent requests: a loser's side effects are not undone by dropping
/// its response future.
///
/// # Cloning the request and the service
///
/// The request and the inner service must be `Clone`. At `call` the first attempt is sent to
/// the inner service that was made ready, with a clone of the request; the response future
/// keeps the original request and a clone of the inner service for the hedges. Each hedge
/// sends a fresh clone of the request to a fresh clone of the service (the last hedge the
/// policy allows takes the originals). When the policy cannot hedge this request (its delay
/// is `Duration::MAX`, as a quantile policy before its first samples with that fallback),
/// nothing is cloned: the request goes to the inner service as it is.
///
/// # Readiness
///
/// A service that is not ready is never called. `poll_ready` is the inner service's own and
/// readies it for the first attempt. A hedge's clone of the service has reserved nothing, so
/// the response future polls that clone's `poll_ready` itself before calling it (as
/// `tower::util::Oneshot` does): the hedge is in flight from the moment it starts, whether it
/// is still waiting for readiness (a gate permit, a throttle slot below this layer) or
/// already called. An error from the clone's `poll_ready` is that attempt's answer (an
/// `Err`, so it wins unless an accept predicate rejects errors).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::hedge::Hedge;
/// use dike::time::ManualTimer;
/// use dike::tower::HedgeLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let timer = ManualTimer::new();
/// let service = ServiceBuilder::new()
///     .layer(HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), timer.clone()))
///     .service(service_fn(|id: u32| async move { Ok::<_, ()>(id * 10) }));
/// assert_eq!(smol::block_on(service.oneshot(4)), Ok(40));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct HedgeLayer<P, T, A = AcceptAll> {
    policy: Arc<P>,
    timer: T,
    accept: A,
}

impl<B, const N: usize, T: Timer> HedgeLayer<Hedge<B, N>, T> {
    /// A layer hedging per `policy`, sleeping on `timer`; every answer is accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::retry::RetryBudget;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    ///
    /// static BUDGET: RetryBudget = RetryBudget::new();
    /// let policy = Hedge::quantile(0.95, 100, Duration::MAX)?.with_budget(&BUDGET);
    /// let layer = HedgeLayer::new(policy, ManualTimer::new());
    /// assert_eq!(layer.policy().max_hedges(), 1);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn new(policy: Hedge<B, N>, timer: T) -> Self {
        Self::shared(Arc::new(policy), timer)
    }

    /// A layer hedging per a shared `policy` (shared with other layers or with code that runs
    /// it directly, so with its latency window and counters), sleeping on `timer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Arc;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    ///
    /// let policy = Arc::new(Hedge::fixed(Duration::from_millis(20)));
    /// let a = HedgeLayer::shared(Arc::clone(&policy), ManualTimer::new());
    /// let b = HedgeLayer::shared(Arc::clone(&policy), ManualTimer::new());
    /// assert!(Arc::ptr_eq(a.policy(), b.policy()));
    /// ```
    pub fn shared(policy: Arc<Hedge<B, N>>, timer: T) -> Self {
        Self {
            policy,
            timer,
            accept: AcceptAll,
        }
    }
}

impl<P, T, A> HedgeLayer<P, T, A> {
    /// Accepts only the answers `accept` returns `true` for (say `Result::is_ok`): a rejected
    /// answer never wins while another attempt may still answer, and starts the next hedge
    /// at once (if the policy and the budget allow one). When every attempt was rejected and
    /// no hedge may start, the last rejected answer is returned. The predicate is cloned for
    /// each request.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// let flaky = service_fn(|_: ()| async {
    ///     let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    ///     if n == 1 { Err("503") } else { Ok(n) }
    /// });
    /// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new())
    ///     .accept(|answer: &Result<u32, &str>| answer.is_ok());
    /// // The first attempt fails at once: the hedge starts without waiting 15 ms.
    /// assert_eq!(smol::block_on(layer.layer(flaky).oneshot(())), Ok(2));
    /// ```
    pub fn accept<A2: Clone>(self, accept: A2) -> HedgeLayer<P, T, A2> {
        HedgeLayer {
            policy: self.policy,
            timer: self.timer,
            accept,
        }
    }

    /// The policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    ///
    /// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new());
    /// assert_eq!(layer.policy().hedge_delay(), Duration::from_millis(15));
    /// assert_eq!(layer.policy().stats().hedges, 0);
    /// ```
    pub fn policy(&self) -> &Arc<P> {
        &self.policy
    }
}

impl<P, T: Clone, A: Clone> Clone for HedgeLayer<P, T, A> {
    fn clone(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
            accept: self.accept.clone(),
        }
    }
}

impl<S, P, T: Clone, A: Clone> Layer<S> for HedgeLayer<P, T, A> {
    type Service = HedgeService<S, P, T, A>;

    fn layer(&self, inner: S) -> Self::Service {
        HedgeService {
            inner,
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
            accept: self.accept.clone(),
        }
    }
}

impl<P: fmt::Debug, T, A> fmt::Debug for HedgeLayer<P, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A service whose slow requests are hedged per a dike [`Hedge`] policy. Built by
/// [`HedgeLayer`]; see it for how requests and services are cloned and how a hedge's
/// readiness is handled.
///
/// `poll_ready` is the inner service's own; `call` sends the first attempt to the inner
/// service and returns a [`HedgeFuture`], which starts the hedges. The error is the inner
/// service's, unchanged: the winning attempt's (or the last rejected one's).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::hedge::Hedge;
/// use dike::time::ManualTimer;
/// use dike::tower::HedgeLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new());
/// let service = layer.layer(service_fn(|_: ()| async { Err::<(), _>("down") }));
/// assert_eq!(smol::block_on(service.oneshot(())), Err("down"), "the error, unchanged");
/// ```
pub struct HedgeService<S, P, T, A = AcceptAll> {
    inner: S,
    policy: Arc<P>,
    timer: T,
    accept: A,
}

impl<S, P, T, A> HedgeService<S, P, T, A> {
    /// The policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    /// use tower::Layer;
    ///
    /// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new());
    /// let service = layer.layer("inner");
    /// assert!(std::sync::Arc::ptr_eq(service.policy(), layer.policy()));
    /// ```
    pub fn policy(&self) -> &Arc<P> {
        &self.policy
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    /// use tower::Layer;
    ///
    /// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new());
    /// assert_eq!(*layer.layer("inner").get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    /// use tower::Layer;
    ///
    /// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new());
    /// let mut service = layer.layer(1);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::HedgeLayer;
    /// use tower::Layer;
    ///
    /// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new());
    /// assert_eq!(layer.layer("inner").into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P, T: Clone, A: Clone> Clone for HedgeService<S, P, T, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
            accept: self.accept.clone(),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, T, A> fmt::Debug for HedgeService<S, P, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeService")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, R, P, T, A> Service<R> for HedgeService<S, P, T, A>
where
    S: Service<R> + Clone,
    R: Clone,
    P: Policy,
    T: Timer,
    A: Accept<Result<S::Response, S::Error>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HedgeFuture<S, R, P, T, A>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let plan = Plan::new(&*self.policy, self.timer.now());
        let (first, template) = if plan.hedges() {
            let first = self.inner.call(request.clone());
            (first, Some((self.inner.clone(), request)))
        } else {
            (self.inner.call(request), None)
        };
        HedgeFuture {
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
            accept: self.accept.clone(),
            template: Template(template),
            driver: Driver::running(plan, first),
        }
    }
}

pin_project! {
    /// One hedge: a clone of the inner service, driven to readiness, then called.
    #[project = AttemptProj]
    enum Attempt<S, R, F> {
        Readying { service: S, request: Option<R> },
        Called { #[pin] fut: F },
    }
}

impl<S, R> Future for Attempt<S, R, S::Future>
where
    S: Service<R>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                AttemptProj::Readying { service, request } => {
                    if let Err(e) = core::task::ready!(service.poll_ready(cx)) {
                        return Poll::Ready(Err(e));
                    }
                    let request = request.take().expect("an attempt is called once");
                    let fut = service.call(request);
                    self.set(Attempt::Called { fut });
                }
                AttemptProj::Called { fut } => return fut.poll(cx),
            }
        }
    }
}

/// The service and request the hedges clone; `None` once no further hedge may start.
struct Template<S, R>(Option<(S, R)>);

impl<S, R> Attempts for Template<S, R>
where
    S: Service<R> + Clone,
    R: Clone,
{
    type Hedge = Attempt<S, R, S::Future>;

    #[inline]
    fn hedge(&mut self, last: bool) -> Self::Hedge {
        // The last hedge takes the originals; the others clone them.
        let (service, request) = if last {
            self.0.take()
        } else {
            self.0
                .as_ref()
                .map(|(service, request)| (service.clone(), request.clone()))
        }
        .expect("the template is kept while a hedge may start");
        Attempt::Readying {
            service,
            request: Some(request),
        }
    }

    #[inline]
    fn stop(&mut self) {
        self.0 = None;
    }
}

pin_project! {
    /// The response future of [`HedgeService`]: the first accepted answer of the attempts,
    /// or the last rejected one when every attempt was rejected and no hedge may start.
    ///
    /// Polling it again after it completed panics ("`HedgeFuture` polled after completion").
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops every attempt in flight (each hedge, whether still waiting for its
    /// clone's readiness or called) and the hedge sleep; nothing stays registered with the
    /// timer and no budget token is held (a hedge's tokens are spent when it starts, and an
    /// answer's refund is deposited only when it is returned). Work the attempts did is not
    /// undone.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::hedge::Hedge;
    /// use dike::time::ManualTimer;
    /// use dike::tower::{HedgeFuture, HedgeLayer};
    /// use tower::{Layer, Service, service_fn};
    ///
    /// let layer = HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), ManualTimer::new());
    /// let mut service = layer.layer(service_fn(|n: u32| async move { Ok::<_, ()>(n + 1) }));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert!(service.poll_ready(&mut cx).is_ready());
    /// let response: HedgeFuture<_, _, _, _, _> = service.call(1);
    /// assert_eq!(smol::block_on(response), Ok(2));
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct HedgeFuture<S: Service<R>, R, P, T: Timer, A> {
        policy: Arc<P>,
        timer: T,
        accept: A,
        template: Template<S, R>,
        #[pin]
        driver: Driver<S::Future, Attempt<S, R, S::Future>, T::Sleep>,
    }
}

impl<S, R, P, T, A> Future for HedgeFuture<S, R, P, T, A>
where
    S: Service<R> + Clone,
    R: Clone,
    P: Policy,
    T: Timer,
    A: Accept<Result<S::Response, S::Error>>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.driver.poll(
            cx,
            "HedgeFuture",
            &**this.policy,
            &*this.timer,
            this.accept,
            this.template,
        )
    }
}

impl<S: Service<R>, R, P, T: Timer, A> fmt::Debug for HedgeFuture<S, R, P, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.driver.fmt_as("HedgeFuture", f)
    }
}
