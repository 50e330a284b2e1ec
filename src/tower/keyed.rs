//! [`KeyedThrottleLayer`] and [`KeyedGateLayer`]: limits per key (IP address, API key,
//! tenant) taken from each request, as tower middleware.
//!
//! # Why the decision is made in `call`
//!
//! The other layers decide and reserve in `poll_ready` (see
//! [the `Service` contract](super#the-service-contract)). A keyed layer cannot: `poll_ready`
//! has no request, so it has no key, and reserving "some" capacity there would charge an
//! unknown key. So a keyed service departs from that one rule and decides in `call`, where the
//! key is extracted. The rest of the contract holds:
//!
//! - `poll_ready` is the inner service's readiness, polled and propagated as is;
//! - a request refused for its key (reject mode, a timed-out wait, or
//!   [`TooManyKeys`](crate::keyed::TooManyKeys)) never reaches the inner service: its
//!   [`KeyedResponseFuture`] fails at once;
//! - a key-gate permit moves into the response future and is released when it completes or
//!   is dropped;
//! - a request whose key extractor returns `None` is not limited at all.
//!
//! In wait mode the request waits in its response future, in its key's FIFO line. The inner
//! service was made ready by `poll_ready`, so that ready service moves into the response
//! future (to be called when the key admits the request) and a clone takes its place, as
//! tower recommends for services that call their inner service later: the keyed services
//! therefore need an inner service that is `Clone`.

use alloc::sync::Arc;
use core::convert::Infallible;
use core::fmt;
use core::future::Future;
use core::hash::{BuildHasher, Hash};
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;
use std::hash::RandomState;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Error, Mode};
use crate::keyed::{KeyedAcquire, KeyedEnterTimeout, KeyedGate, KeyedPermit, KeyedThrottle};
use crate::time::Timer;

/// Wraps services in a [`KeyedThrottleService`]: each request's key (from `extract`) is held
/// to the shared [`KeyedThrottle`]'s quota for that key, read on `timer`.
///
/// - **wait** (the default): a request over its key's quota waits in its response future,
///   FIFO among that key's requests, with one timer sleep per key;
/// - **reject** ([`reject`](KeyedThrottleLayer::reject)): it fails at once with
///   [`Error::RateLimited`], whose wait is that key's `Retry-After` (429 with `axum`).
///
/// A request whose key is new while the limiter's table is full of live keys fails with
/// [`Error::TooManyKeys`] (503 with `axum`) in either mode, unless the throttle admits
/// untracked keys. `extract` returning `None` means the request is not limited.
///
/// The decision is made in `call`, not `poll_ready` (which has no request, so no key): see
/// [the `Service` contract](super#the-service-contract). Every
/// service the layer wraps shares the one keyed throttle.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use dike::keyed::KeyedThrottle;
/// use dike::throttle::Quota;
/// use dike::time::ManualTimer;
/// use dike::tower::{Error, KeyedThrottleLayer};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # smol::block_on(async {
/// let timer = ManualTimer::new();
/// let per_user = Arc::new(KeyedThrottle::<String>::new(Quota::per_second(1)).unwrap());
/// let layer = KeyedThrottleLayer::new(per_user, timer, |req: &(String, u32)| {
///     Some(req.0.clone())
/// })
/// .reject();
/// let service = layer.layer(service_fn(|req: (String, u32)| async move { Ok::<_, ()>(req.1) }));
///
/// assert_eq!(service.clone().oneshot(("alice".into(), 1)).await, Ok(1));
/// let refused = service.clone().oneshot(("alice".into(), 2)).await;
/// assert!(matches!(refused, Err(Error::RateLimited(_))));
/// assert_eq!(service.oneshot(("bob".into(), 3)).await, Ok(3), "bob has his own quota");
/// # });
/// ```
pub struct KeyedThrottleLayer<K, F, T, H = RandomState> {
    throttle: Arc<KeyedThrottle<K, H>>,
    extract: F,
    timer: T,
    mode: Mode,
}

impl<K, F, T, H> KeyedThrottleLayer<K, F, T, H> {
    /// A layer holding every request to `throttle`'s quota for the key `extract` returns,
    /// waiting on `timer`, in wait mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedThrottleLayer;
    ///
    /// let per_ip = Arc::new(KeyedThrottle::<u32>::new(Quota::per_second(10)).unwrap());
    /// let layer = KeyedThrottleLayer::new(per_ip, ManualTimer::new(), |ip: &u32| Some(*ip));
    /// assert_eq!(layer.throttle().quota().burst(), 1);
    /// ```
    pub fn new(throttle: Arc<KeyedThrottle<K, H>>, timer: T, extract: F) -> Self {
        Self {
            throttle,
            extract,
            timer,
            mode: Mode::Wait,
        }
    }

    /// Switches to reject mode: a request over its key's quota fails at once with
    /// [`Error::RateLimited`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedThrottleLayer;
    ///
    /// let per_ip = Arc::new(KeyedThrottle::<u32>::new(Quota::per_second(10)).unwrap());
    /// let _layer = KeyedThrottleLayer::new(per_ip, ManualTimer::new(), |ip: &u32| Some(*ip))
    ///     .reject();
    /// ```
    #[must_use]
    pub fn reject(mut self) -> Self {
        self.mode = Mode::Reject;
        self
    }

    /// The shared keyed throttle.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedThrottleLayer;
    ///
    /// let per_ip = Arc::new(KeyedThrottle::<u32>::new(Quota::per_second(10)).unwrap());
    /// let extract = |_: &()| None::<u32>;
    /// let layer = KeyedThrottleLayer::new(Arc::clone(&per_ip), ManualTimer::new(), extract);
    /// assert!(Arc::ptr_eq(layer.throttle(), &per_ip));
    /// ```
    pub fn throttle(&self) -> &Arc<KeyedThrottle<K, H>> {
        &self.throttle
    }
}

impl<K, F: Clone, T: Clone, H> Clone for KeyedThrottleLayer<K, F, T, H> {
    fn clone(&self) -> Self {
        Self {
            throttle: Arc::clone(&self.throttle),
            extract: self.extract.clone(),
            timer: self.timer.clone(),
            mode: self.mode,
        }
    }
}

impl<K, F, T, H> fmt::Debug for KeyedThrottleLayer<K, F, T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedThrottleLayer")
            .field("throttle", &self.throttle)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<S, K, F: Clone, T: Clone, H> Layer<S> for KeyedThrottleLayer<K, F, T, H> {
    type Service = KeyedThrottleService<S, K, F, T, H>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedThrottleService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service under a [`KeyedThrottle`]: each request is held to its key's quota. Built by
/// [`KeyedThrottleLayer`]; see it for the modes, and
/// [the `Service` contract](super#the-service-contract).
///
/// # Cancel safety
///
/// Dropping a [`KeyedResponseFuture`] that waits for its key's slot takes nothing from the
/// key's quota and leaves the key's line (a dropped head passes its turn on); the inner
/// service was not called.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use dike::keyed::KeyedThrottle;
/// use dike::throttle::Quota;
/// use dike::time::ManualTimer;
/// use dike::tower::{KeyedThrottleLayer, KeyedThrottleService};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # smol::block_on(async {
/// let per_ip = Arc::new(KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap());
/// let layer = KeyedThrottleLayer::new(per_ip, ManualTimer::new(), |ip: &u8| Some(*ip));
/// let service = layer.layer(service_fn(|ip: u8| async move { Ok::<_, ()>(ip) }));
/// assert_eq!(service.oneshot(7).await, Ok(7));
/// # });
/// ```
pub struct KeyedThrottleService<S, K, F, T, H = RandomState> {
    inner: S,
    layer: KeyedThrottleLayer<K, F, T, H>,
}

impl<S, K, F, T, H> KeyedThrottleService<S, K, F, T, H> {
    /// The shared keyed throttle.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedThrottleLayer;
    /// use tower::Layer;
    ///
    /// let per_ip = Arc::new(KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap());
    /// let extract = |_: &()| None::<u8>;
    /// let layer = KeyedThrottleLayer::new(Arc::clone(&per_ip), ManualTimer::new(), extract);
    /// assert!(Arc::ptr_eq(layer.layer("inner").throttle(), &per_ip));
    /// ```
    pub fn throttle(&self) -> &Arc<KeyedThrottle<K, H>> {
        &self.layer.throttle
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedThrottleLayer;
    /// use tower::Layer;
    ///
    /// let per_ip = Arc::new(KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap());
    /// let extract = |_: &()| None::<u8>;
    /// let layer = KeyedThrottleLayer::new(per_ip, ManualTimer::new(), extract);
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
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedThrottleLayer;
    /// use tower::Layer;
    ///
    /// let per_ip = Arc::new(KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap());
    /// let extract = |_: &()| None::<u8>;
    /// let layer = KeyedThrottleLayer::new(per_ip, ManualTimer::new(), extract);
    /// let mut service = layer.layer(1);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service (the layer holds no permit between calls: nothing is released).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedThrottleLayer;
    /// use tower::Layer;
    ///
    /// let per_ip = Arc::new(KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap());
    /// let extract = |_: &()| None::<u8>;
    /// let layer = KeyedThrottleLayer::new(per_ip, ManualTimer::new(), extract);
    /// assert_eq!(layer.layer("inner").into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, F: Clone, T: Clone, H> Clone for KeyedThrottleService<S, K, F, T, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, K, F, T, H> fmt::Debug for KeyedThrottleService<S, K, F, T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedThrottleService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, R, K, F, T, H> Service<R> for KeyedThrottleService<S, K, F, T, H>
where
    S: Service<R> + Clone,
    F: Fn(&R) -> Option<K>,
    K: Hash + Eq + Clone + 'static,
    H: BuildHasher + 'static,
    T: Timer,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = KeyedResponseFuture<S, R, KeyedAcquire<'static, K, K, H, T>, ()>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let Some(key) = (self.layer.extract)(&request) else {
            return KeyedResponseFuture::called(self.inner.call(request), None);
        };
        let layer = &self.layer;
        match layer.mode {
            Mode::Reject => match layer.throttle.try_acquire(&layer.timer, &key) {
                Ok(()) => KeyedResponseFuture::called(self.inner.call(request), None),
                Err(refusal) => KeyedResponseFuture::refused(refusal.into()),
            },
            Mode::Wait => {
                let wait = layer.throttle.acquire_shared(layer.timer.clone(), key);
                KeyedResponseFuture::waiting(wait, take_ready(&mut self.inner), request)
            }
        }
    }
}

/// Moves the service that was made ready out, leaving a clone in its place.
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    core::mem::replace(inner, clone)
}

/// Wraps services in a [`KeyedGateService`]: at most the shared [`KeyedGate`]'s limit of
/// requests in flight per key (from `extract`).
///
/// Three modes, as [`GateLayer`](super::GateLayer):
///
/// - **wait** (the default): a request whose key is full waits in its response future, FIFO
///   among that key's requests;
/// - **wait with a timeout** ([`wait_timeout`](KeyedGateLayer::wait_timeout)): gives up after
///   the timeout on `timer` with [`Error::TooManyCalls`] of kind `TimedOut`;
/// - **reject** ([`reject`](KeyedGateLayer::reject)): fails at once with
///   [`Error::TooManyCalls`] (503 with `axum`).
///
/// A new key while the table is full of live keys fails with [`Error::TooManyKeys`] (503). The
/// key's permit lives in the [`KeyedResponseFuture`] until it completes or is dropped.
/// `extract` returning `None` means the request is not limited. `timer` is read only by
/// `wait_timeout`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use dike::keyed::KeyedGate;
/// use dike::time::ManualTimer;
/// use dike::tower::{Error, KeyedGateLayer};
/// use futures_util::FutureExt;
/// use tower::{Layer, Service, service_fn};
///
/// let per_tenant = Arc::new(KeyedGate::<u32>::new(1).unwrap());
/// let layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), |t: &u32| Some(*t)).reject();
/// let mut service = layer.layer(service_fn(|t: u32| async move { Ok::<_, ()>(t) }));
/// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
///
/// assert!(service.poll_ready(&mut cx).is_ready());
/// let first = service.call(1); // holds tenant 1's permit until it completes or is dropped
/// assert!(service.poll_ready(&mut cx).is_ready());
/// let second = service.call(1).now_or_never().unwrap();
/// assert!(matches!(second, Err(Error::TooManyCalls(_))));
/// assert!(service.poll_ready(&mut cx).is_ready());
/// assert_eq!(service.call(2).now_or_never(), Some(Ok(2)), "tenant 2 is not held up");
/// drop(first);
/// ```
pub struct KeyedGateLayer<K, F, T, H = RandomState> {
    gate: Arc<KeyedGate<K, H>>,
    extract: F,
    timer: T,
    mode: Mode,
    timeout: Option<Duration>,
}

impl<K, F, T, H> KeyedGateLayer<K, F, T, H> {
    /// A layer holding every request to `gate`'s limit for the key `extract` returns, in wait
    /// mode (`timer` serves [`wait_timeout`](KeyedGateLayer::wait_timeout)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), |t: &u32| Some(*t));
    /// assert_eq!(layer.gate().limit(), 2);
    /// ```
    pub fn new(gate: Arc<KeyedGate<K, H>>, timer: T, extract: F) -> Self {
        Self {
            gate,
            extract,
            timer,
            mode: Mode::Wait,
            timeout: None,
        }
    }

    /// Switches to reject mode: a request whose key is full fails at once with
    /// [`Error::TooManyCalls`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), |t: &u32| Some(*t));
    /// let _reject = layer.reject();
    /// ```
    #[must_use]
    pub fn reject(mut self) -> Self {
        self.mode = Mode::Reject;
        self.timeout = None;
        self
    }

    /// Switches to waiting at most `timeout` (on the layer's timer) for the key's permit, then
    /// failing with [`Error::TooManyCalls`] of kind `TimedOut`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let _layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), |t: &u32| Some(*t))
    ///     .wait_timeout(Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.mode = Mode::Wait;
        self.timeout = Some(timeout);
        self
    }

    /// The shared keyed gate.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let extract = |_: &()| None::<u32>;
    /// let layer = KeyedGateLayer::new(Arc::clone(&per_tenant), ManualTimer::new(), extract);
    /// assert!(Arc::ptr_eq(layer.gate(), &per_tenant));
    /// ```
    pub fn gate(&self) -> &Arc<KeyedGate<K, H>> {
        &self.gate
    }
}

impl<K, F: Clone, T: Clone, H> Clone for KeyedGateLayer<K, F, T, H> {
    fn clone(&self) -> Self {
        Self {
            gate: Arc::clone(&self.gate),
            extract: self.extract.clone(),
            timer: self.timer.clone(),
            mode: self.mode,
            timeout: self.timeout,
        }
    }
}

impl<K, F, T, H> fmt::Debug for KeyedGateLayer<K, F, T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGateLayer")
            .field("gate", &self.gate)
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<S, K, F: Clone, T: Clone, H> Layer<S> for KeyedGateLayer<K, F, T, H> {
    type Service = KeyedGateService<S, K, F, T, H>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedGateService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service under a [`KeyedGate`]: at most the gate's limit of requests in flight per key.
/// Built by [`KeyedGateLayer`]; see it for the modes, and
/// [the `Service` contract](super#the-service-contract).
///
/// # Cancel safety
///
/// Dropping a [`KeyedResponseFuture`] releases the key's permit it holds, or leaves the key's
/// queue if it was waiting (the inner service was then not called); nothing leaks, and the
/// key's entry can be forgotten once idle.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use dike::keyed::KeyedGate;
/// use dike::time::ManualTimer;
/// use dike::tower::KeyedGateLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # smol::block_on(async {
/// let per_tenant = Arc::new(KeyedGate::<u32>::new(1).unwrap());
/// let layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), |t: &u32| Some(*t));
/// let service = layer.layer(service_fn(|t: u32| async move { Ok::<_, ()>(t) }));
/// assert_eq!(service.oneshot(3).await, Ok(3));
/// # });
/// ```
pub struct KeyedGateService<S, K, F, T, H = RandomState> {
    inner: S,
    layer: KeyedGateLayer<K, F, T, H>,
}

impl<S, K, F, T, H> KeyedGateService<S, K, F, T, H> {
    /// The shared keyed gate.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    /// use tower::Layer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let extract = |_: &()| None::<u32>;
    /// let layer = KeyedGateLayer::new(Arc::clone(&per_tenant), ManualTimer::new(), extract);
    /// assert!(Arc::ptr_eq(layer.layer("inner").gate(), &per_tenant));
    /// ```
    pub fn gate(&self) -> &Arc<KeyedGate<K, H>> {
        &self.layer.gate
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    /// use tower::Layer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let extract = |_: &()| None::<u32>;
    /// let layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), extract);
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
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    /// use tower::Layer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let extract = |_: &()| None::<u32>;
    /// let layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), extract);
    /// let mut service = layer.layer(1);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service (the layer holds no permit between calls: nothing is released).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    /// use tower::Layer;
    ///
    /// let per_tenant = Arc::new(KeyedGate::<u32>::new(2).unwrap());
    /// let extract = |_: &()| None::<u32>;
    /// let layer = KeyedGateLayer::new(per_tenant, ManualTimer::new(), extract);
    /// assert_eq!(layer.layer("inner").into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, F: Clone, T: Clone, H> Clone for KeyedGateService<S, K, F, T, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, K, F, T, H> fmt::Debug for KeyedGateService<S, K, F, T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGateService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, R, K, F, T, H> Service<R> for KeyedGateService<S, K, F, T, H>
where
    S: Service<R> + Clone,
    F: Fn(&R) -> Option<K>,
    K: Hash + Eq + Clone + 'static,
    H: BuildHasher + 'static,
    T: Timer,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = KeyedResponseFuture<
        S,
        R,
        KeyedEnterTimeout<'static, K, K, H, T>,
        KeyedPermit<'static, K, H>,
    >;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let Some(key) = (self.layer.extract)(&request) else {
            return KeyedResponseFuture::called(self.inner.call(request), None);
        };
        let layer = &self.layer;
        match layer.mode {
            Mode::Reject => match layer.gate.try_enter_shared(&key) {
                Ok(permit) => KeyedResponseFuture::called(self.inner.call(request), Some(permit)),
                Err(refusal) => KeyedResponseFuture::refused(refusal.into()),
            },
            Mode::Wait => {
                let wait = layer.gate.enter_shared(key, &layer.timer, layer.timeout);
                KeyedResponseFuture::waiting(wait, take_ready(&mut self.inner), request)
            }
        }
    }
}

pin_project! {
    /// The response future of [`KeyedThrottleService`] and [`KeyedGateService`]: waits for the
    /// request's key to admit it (wait modes), then is the inner service's response; or fails
    /// at once with the refusal, without calling the inner service.
    ///
    /// `W` is the wait for the key and `P` the permit it yields (kept until the response
    /// completes or this future is dropped).
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Cancel safety
    ///
    /// Dropping it while it waits leaves the key's line (nothing is taken from the key's quota
    /// or gate, the inner service is not called); dropping it later drops the inner response
    /// future and releases the key's permit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::keyed::KeyedGate;
    /// use dike::time::ManualTimer;
    /// use dike::tower::KeyedGateLayer;
    /// use futures_util::FutureExt;
    /// use tower::{Layer, Service, service_fn};
    ///
    /// let gate = Arc::new(KeyedGate::<u8>::new(1).unwrap());
    /// let layer = KeyedGateLayer::new(Arc::clone(&gate), ManualTimer::new(), |k: &u8| Some(*k));
    /// let mut service = layer.layer(service_fn(|k: u8| async move { Ok::<_, ()>(k) }));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert!(service.poll_ready(&mut cx).is_ready());
    /// let mut first = Box::pin(service.call(1));
    /// assert_eq!(first.as_mut().now_or_never(), Some(Ok(1)));
    /// assert_eq!(gate.len(), 1);
    /// gate.shrink_to_fit();
    /// assert_eq!(gate.len(), 0, "the permit was released on completion");
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedResponseFuture<S, R, W, P>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, W, P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R, W, P>
    where
        S: Service<R>,
    {
        /// Waiting for the key; the ready inner service and the request wait with it.
        Waiting { #[pin] wait: W, service: Option<S>, request: Option<R> },
        /// The inner service was called; the key's permit (gate) is held until it completes.
        Called { #[pin] future: S::Future, permit: Option<P> },
        /// Refused: the inner service was not called.
        Refused { refusal: Error<Infallible> },
        Done,
    }
}

impl<S: Service<R>, R, W, P> KeyedResponseFuture<S, R, W, P> {
    fn called(future: S::Future, permit: Option<P>) -> Self {
        Self {
            state: State::Called { future, permit },
        }
    }

    fn refused(refusal: Error<Infallible>) -> Self {
        Self {
            state: State::Refused { refusal },
        }
    }

    fn waiting(wait: W, service: S, request: R) -> Self {
        Self {
            state: State::Waiting {
                wait,
                service: Some(service),
                request: Some(request),
            },
        }
    }
}

impl<S, R, W, P, E> Future for KeyedResponseFuture<S, R, W, P>
where
    S: Service<R>,
    W: Future<Output = Result<P, E>>,
    E: Into<Error<Infallible>>,
{
    type Output = Result<S::Response, Error<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let output = match state.as_mut().project() {
                StateProj::Waiting {
                    wait,
                    service,
                    request,
                } => {
                    let admitted = ready!(wait.poll(cx));
                    match admitted {
                        Ok(permit) => {
                            let (Some(mut service), Some(request)) =
                                (service.take(), request.take())
                            else {
                                unreachable!("a waiting response holds its service and request")
                            };
                            let future = service.call(request);
                            state.set(State::Called {
                                future,
                                permit: Some(permit),
                            });
                            continue;
                        }
                        Err(refusal) => Err(widen(refusal.into())),
                    }
                }
                StateProj::Called { future, .. } => ready!(future.poll(cx)).map_err(Error::Inner),
                StateProj::Refused { refusal } => Err(widen(refusal.clone())),
                StateProj::Done => panic!("`KeyedResponseFuture` polled after completion"),
            };
            // Drops the inner future and releases the permit now.
            state.set(State::Done);
            return Poll::Ready(output);
        }
    }
}

fn widen<E>(refusal: Error<Infallible>) -> Error<E> {
    refusal.map_inner(|never| match never {})
}

impl<S: Service<R>, R, W, P> fmt::Debug for KeyedResponseFuture<S, R, W, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting for the key",
            State::Called { permit, .. } if permit.is_some() => "called, holding a permit",
            State::Called { .. } => "called",
            State::Refused { .. } => "refused",
            State::Done => "done",
        };
        f.debug_struct("KeyedResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
