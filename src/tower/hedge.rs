//! [`HedgeLayer`] and [`HedgeService`]: a dike [`Hedge`] policy as tower middleware.
//!
//! # Implementation notes
//!
//! [`HedgeFuture`] is [`Hedged`](crate::hedge::Hedged)'s loop over tower attempts, owning
//! what `Hedged` borrows (the policy behind an `Arc`, the timer), so the future is `'static`.
//! The first attempt is the inner service's response future, inline; each hedge is a boxed
//! [`Attempt`]: a clone of the inner service driven to readiness inside the response future,
//! then called with a clone of the request. Each poll:
//!
//! 1. polls every attempt in flight, first attempt first, then hedges in start order; the
//!    first accepted output wins. A rejected output is remembered as the fallback answer, its
//!    attempt is dropped, and the next hedge starts at once (if one may);
//! 2. with nothing in flight and no hedge allowed, returns the last rejected output;
//! 3. otherwise polls the hedge sleep; when it fires, a hedge starts (after drawing on the
//!    budget) and the loop goes back to 1.
//!
//! On a result every other attempt and the sleep are dropped before `poll` returns.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

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
        let now = self.timer.now();
        let delay = self.policy.delay();
        let next_at = (delay != Duration::MAX && self.policy.max_hedges() > 0)
            .then(|| now.saturating_add(delay));
        let (first, template) = if next_at.is_some() {
            let first = self.inner.call(request.clone());
            (first, Some((self.inner.clone(), request)))
        } else {
            (self.inner.call(request), None)
        };
        HedgeFuture {
            policy: Arc::clone(&self.policy),
            timer: self.timer.clone(),
            accept: self.accept.clone(),
            template,
            delay,
            started: 1,
            hedges: Vec::new(),
            state: State::Running {
                first: Slot::Busy { fut: first },
                first_start: now,
                sleep: Slot::Empty,
                next_at,
            },
        }
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
    enum State<F, Sl> {
        Running {
            #[pin] first: Slot<F>,
            first_start: Duration,
            #[pin] sleep: Slot<Sl>,
            // When the next hedge may start; `None` once no further hedge may.
            next_at: Option<Duration>,
        },
        Done,
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

type Hedges<S, R> = Vec<(Pin<Box<Attempt<S, R, <S as Service<R>>::Future>>>, Duration)>;

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
        // The service and request the hedges clone; `None` once no further hedge may start.
        template: Option<(S, R)>,
        delay: Duration,
        started: u32,
        hedges: Hedges<S, R>,
        #[pin]
        state: State<S::Future, T::Sleep>,
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
        let mut this = self.project();
        let policy: &P = this.policy;
        let mut last: Option<Self::Output> = None;
        let (output, latency, by_hedge) = 'found: loop {
            let StateProj::Running {
                mut first,
                first_start,
                mut sleep,
                next_at,
            } = this.state.as_mut().project()
            else {
                panic!("`HedgeFuture` polled after completion");
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
            while i < this.hedges.len() {
                if let Poll::Ready(out) = this.hedges[i].0.as_mut().poll(cx) {
                    let (_, started_at) = this.hedges.remove(i);
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
            let in_flight = matches!(&*first, Slot::Busy { .. }) || !this.hedges.is_empty();
            // 2./3. Start a hedge now (a rejection, nothing in flight) or when the sleep fires.
            if next_at.is_some() && (start_now || !in_flight) {
                sleep.set(Slot::Empty);
                let (started, next) = start_hedge(
                    policy,
                    &*this.timer,
                    this.template,
                    *this.delay,
                    this.started,
                    this.hedges,
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
                &*this.timer,
                this.template,
                *this.delay,
                this.started,
                this.hedges,
            );
            *next_at = next;
        };
        // Losers and the sleep are dropped before the answer is handed out.
        this.state.set(State::Done);
        this.hedges.clear();
        *this.template = None;
        policy.finish(latency, by_hedge);
        Poll::Ready(output)
    }
}

/// Starts a hedge if `max_hedges` and the budget allow. Returns whether one started and when
/// the next may start (`None`: never, and the template is dropped).
fn start_hedge<S, R, P, T>(
    policy: &P,
    timer: &T,
    template: &mut Option<(S, R)>,
    delay: Duration,
    started: &mut u32,
    hedges: &mut Hedges<S, R>,
) -> (bool, Option<Duration>)
where
    S: Service<R> + Clone,
    R: Clone,
    P: Policy,
    T: Timer,
{
    if template.is_none() || *started > policy.max_hedges() || !policy.draw(*started + 1) {
        *template = None;
        return (false, None);
    }
    *started += 1;
    let now = timer.now();
    let more = *started <= policy.max_hedges();
    // The last hedge takes the originals; the others clone them.
    let (service, request) = if more {
        let (service, request) = template.as_ref().expect("checked above");
        (service.clone(), request.clone())
    } else {
        template.take().expect("checked above")
    };
    hedges.push((
        Box::pin(Attempt::Readying {
            service,
            request: Some(request),
        }),
        now,
    ));
    (true, more.then(|| now.saturating_add(delay)))
}

impl<S: Service<R>, R, P, T: Timer, A> fmt::Debug for HedgeFuture<S, R, P, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (in_flight, done) = match &self.state {
            State::Running { first, .. } => (
                usize::from(matches!(first, Slot::Busy { .. })) + self.hedges.len(),
                false,
            ),
            State::Done => (0, true),
        };
        f.debug_struct("HedgeFuture")
            .field("delay", &self.delay)
            .field("started", &self.started)
            .field("in_flight", &in_flight)
            .field("done", &done)
            .finish_non_exhaustive()
    }
}
