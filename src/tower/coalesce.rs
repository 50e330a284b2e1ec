//! [`CoalesceLayer`] and [`CoalesceService`]: identical requests in flight share one call of
//! the inner service.

use alloc::sync::Arc;
use core::fmt;
use core::future::{Future, poll_fn};
use core::hash::{BuildHasher, Hash};
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::coalesce::{Coalescer, DefaultHashBuilder, Hooks, NoHooks, RunError, RunOwned};

/// Wraps services in a [`CoalesceService`]: requests with equal keys (`key(&request)`) in
/// flight at the same time share one call of the inner service, each getting a clone of its
/// response or error.
///
/// The first request for a key (the leader) calls the inner service; requests with an equal
/// key that arrive while it is in flight join it and **never call the inner service** (their
/// own request is dropped unused). Nothing is cached: once the call completes, the next
/// request for the key calls again. See [`Coalescer`] for the rest (panics contained, hooks,
/// cancellation).
///
/// The layer holds one [`Coalescer`]: every service it wraps, and every clone of them,
/// coalesces through it. Wrap one inner service per layer (or put what tells the services
/// apart, such as the route, in the key). That is also what makes it work in axum whatever
/// the router does with layers (see [the axum note](super#the-service-contract)). Build it from
/// a coalescer of your own with [`shared`](CoalesceLayer::shared), e.g. one with
/// [`Stats`](crate::coalesce::Stats) hooks.
///
/// The inner service's responses and errors must be `Clone` (each waiter gets a copy), and
/// its future `Send + 'static`, as the coalescer needs: the call lives in the coalescer and
/// is driven by whichever waiter is polled.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use dike::tower::CoalesceLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&calls);
/// let users = service_fn(move |id: u32| {
///     counter.fetch_add(1, Ordering::Relaxed);
///     async move {
///         smol::future::yield_now().await; // in flight for a while
///         Ok::<_, String>(format!("user {id}"))
///     }
/// });
/// let layer = CoalesceLayer::new(|id: &u32| *id);
/// let service = layer.layer(users);
/// smol::block_on(async {
///     let (a, b) = futures_util::join!(service.clone().oneshot(42), service.oneshot(42));
///     assert_eq!((a.unwrap(), b.unwrap()), ("user 42".into(), "user 42".into()));
/// });
/// assert_eq!(calls.load(Ordering::Relaxed), 1, "one call for both");
/// ```
pub struct CoalesceLayer<F, K, T, E, H = NoHooks, S = DefaultHashBuilder> {
    key: F,
    coalescer: Arc<Coalescer<K, T, E, H, S>>,
}

impl<F, K, T, E> CoalesceLayer<F, K, T, E> {
    /// A layer coalescing by `key`, through a new [`Coalescer`] without hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::CoalesceLayer;
    ///
    /// // Coalesce `GET /users/{id}` by id: responses `String`, errors `u16`.
    /// let layer = CoalesceLayer::<_, u64, String, u16>::new(|path: &(String, u64)| path.1);
    /// assert_eq!(layer.coalescer().in_flight(), 0);
    /// ```
    pub fn new(key: F) -> Self {
        Self::shared(Arc::new(Coalescer::new()), key)
    }
}

impl<F, K, T, E, H, S> CoalesceLayer<F, K, T, E, H, S> {
    /// A layer coalescing by `key` through a shared `coalescer` (with hooks or a hasher of
    /// your choosing, or shared with code that runs it directly).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::coalesce::{Coalescer, Stats};
    /// use dike::tower::CoalesceLayer;
    ///
    /// let coalescer: Arc<Coalescer<u64, String, u16, Stats>> =
    ///     Arc::new(Coalescer::with_hooks(Stats::new()));
    /// let layer = CoalesceLayer::shared(Arc::clone(&coalescer), |id: &u64| *id);
    /// assert_eq!(layer.coalescer().hooks().counts().executed, 0);
    /// ```
    pub fn shared(coalescer: Arc<Coalescer<K, T, E, H, S>>, key: F) -> Self {
        Self { key, coalescer }
    }

    /// The coalescer.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::CoalesceLayer;
    ///
    /// let layer = CoalesceLayer::<_, u8, u8, ()>::new(|n: &u8| *n);
    /// assert_eq!(layer.coalescer().in_flight(), 0);
    /// ```
    pub fn coalescer(&self) -> &Arc<Coalescer<K, T, E, H, S>> {
        &self.coalescer
    }
}

impl<F: Clone, K, T, E, H, S> Clone for CoalesceLayer<F, K, T, E, H, S> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            coalescer: Arc::clone(&self.coalescer),
        }
    }
}

impl<Svc, F: Clone, K, T, E, H, S> Layer<Svc> for CoalesceLayer<F, K, T, E, H, S> {
    type Service = CoalesceService<Svc, F, K, T, E, H, S>;

    fn layer(&self, inner: Svc) -> Self::Service {
        CoalesceService {
            inner,
            key: self.key.clone(),
            coalescer: Arc::clone(&self.coalescer),
        }
    }
}

impl<F, K, T, E, H: fmt::Debug, S> fmt::Debug for CoalesceLayer<F, K, T, E, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceLayer")
            .field("coalescer", &self.coalescer)
            .finish_non_exhaustive()
    }
}

/// A service whose identical requests in flight share one call of the inner service. Built
/// by [`CoalesceLayer`]; see it for the sharing.
///
/// # The `Service` contract
///
/// `poll_ready` is always ready: the service reserves nothing of its own, and it cannot
/// reserve the inner service's capacity, since a request that joins a call in flight never
/// uses it (a reservation made for it would be held for nothing). Instead the leader's call
/// takes a clone of the inner service, polls its readiness and calls it only once it is
/// ready: a service that is not ready is never called, and joiners never touch it. An error
/// of the inner `poll_ready` is the call's error, shared by its waiters.
///
/// The error is [`RunError<E>`]: [`RunError::Failed`] with a clone of the inner service's
/// error, or [`RunError::Panicked`] when the inner call panicked (with `std`).
///
/// # Examples
///
/// ```
/// use dike::coalesce::RunError;
/// use dike::tower::CoalesceLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let service = CoalesceLayer::new(|id: &u32| *id)
///     .layer(service_fn(|_: u32| async { Err::<String, _>(503_u16) }));
/// let err = smol::block_on(service.oneshot(1)).unwrap_err();
/// assert_eq!(err, RunError::Failed(503));
/// ```
pub struct CoalesceService<Svc, F, K, T, E, H = NoHooks, S = DefaultHashBuilder> {
    inner: Svc,
    key: F,
    coalescer: Arc<Coalescer<K, T, E, H, S>>,
}

impl<Svc, F, K, T, E, H, S> CoalesceService<Svc, F, K, T, E, H, S> {
    /// The coalescer.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::CoalesceLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let layer = CoalesceLayer::<_, u8, u8, ()>::new(|n: &u8| *n);
    /// let service = layer.layer(service_fn(|n: u8| async move { Ok::<_, ()>(n) }));
    /// assert!(std::sync::Arc::ptr_eq(service.coalescer(), layer.coalescer()));
    /// ```
    pub fn coalescer(&self) -> &Arc<Coalescer<K, T, E, H, S>> {
        &self.coalescer
    }
}

impl<Svc: Clone, F: Clone, K, T, E, H, S> Clone for CoalesceService<Svc, F, K, T, E, H, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key.clone(),
            coalescer: Arc::clone(&self.coalescer),
        }
    }
}

impl<Svc: fmt::Debug, F, K, T, E, H: fmt::Debug, S> fmt::Debug
    for CoalesceService<Svc, F, K, T, E, H, S>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceService")
            .field("inner", &self.inner)
            .field("coalescer", &self.coalescer)
            .finish_non_exhaustive()
    }
}

impl<Svc, Req, F, K, H, S> Service<Req>
    for CoalesceService<Svc, F, K, Svc::Response, Svc::Error, H, S>
where
    Svc: Service<Req> + Clone + Send + 'static,
    Svc::Future: Send + 'static,
    Svc::Response: Clone,
    Svc::Error: Clone,
    Req: Send + 'static,
    F: Fn(&Req) -> K,
    K: Hash + Eq + Clone,
    H: Hooks<K, Svc::Response, Svc::Error>,
    S: BuildHasher,
{
    type Response = Svc::Response;
    type Error = RunError<Svc::Error>;
    type Future = CoalesceFuture<K, Svc::Response, Svc::Error, H, S>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key)(&request);
        let inner = &self.inner;
        // Only the leader's closure runs: joiners clone nothing and never call the inner.
        let run = self.coalescer.run_owned(&key, || {
            let mut service = inner.clone();
            async move {
                poll_fn(|cx| service.poll_ready(cx)).await?;
                service.call(request).await
            }
        });
        CoalesceFuture { run, done: false }
    }
}

pin_project! {
    /// The response future of a [`CoalesceService`]: the shared call's response or error,
    /// cloned.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Cancel safety
    ///
    /// Dropping it leaves the shared call without disturbing the other waiters, who keep
    /// driving it. When the last waiter of a call is dropped, the inner call is dropped
    /// unfinished and the key is free (nothing is spawned to finish it).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::{CoalesceFuture, CoalesceLayer};
    /// use tower::{Layer, Service, service_fn};
    ///
    /// let mut service = CoalesceLayer::new(|n: &u8| *n)
    ///     .layer(service_fn(|n: u8| async move { Ok::<_, ()>(n * 2) }));
    /// let response: CoalesceFuture<u8, u8, ()> = service.call(4);
    /// assert_eq!(smol::block_on(response), Ok(8));
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct CoalesceFuture<K, T, E, H = NoHooks, S = DefaultHashBuilder>
    where
        H: Hooks<K, T, E>,
    {
        #[pin]
        run: RunOwned<K, T, E, H, S>,
        done: bool,
    }
}

impl<K, T: Clone, E: Clone, H: Hooks<K, T, E>, S> Future for CoalesceFuture<K, T, E, H, S> {
    type Output = Result<T, RunError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        assert!(!*this.done, "`CoalesceFuture` polled after completion");
        let outcome = ready!(this.run.poll(cx));
        *this.done = true;
        Poll::Ready(outcome.into_result())
    }
}

impl<K: fmt::Debug, T, E, H: Hooks<K, T, E>, S> fmt::Debug for CoalesceFuture<K, T, E, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceFuture")
            .field("run", &self.run)
            .finish()
    }
}
