//! [`BatchLayer`] and [`BatchService`]: requests batched into one call of an inner batch
//! service, built on [`Batcher`].

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::batch::{BatchConfig, BatchError, BatchFn, Batcher, CallOwned, Rows};
use crate::error::ConfigError;
use crate::time::Timer;

/// Turns an inner *batch* service (`Service<Vec<Req>, Response = Vec<Resp>>`) into a
/// [`BatchService`] of single requests: concurrent requests are gathered into one call of
/// the inner service, and each gets its own response (row `i` of the inner response answers
/// row `i` of its request).
///
/// Built on a [`Batcher`] with the [`BatchConfig`] you give: a batch is sent when it holds
/// `target_size` requests, or when its first request has waited `max_wait` on `timer`, and
/// the config's other bounds (processing time, batches at once, queued rows) apply. See
/// [the batch module](crate::batch) for how batches form and who drives them (the callers'
/// own response futures: nothing is spawned).
///
/// `Req` is a type parameter of the layer because the batcher is built for it when the layer
/// wraps a service. Each service the layer wraps gets a batcher of its own; clones of that
/// service share it. (In axum, give the router its state with `.with_state(..)`, or the
/// batcher is built per connection: see [the axum note](super#the-service-contract).)
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::batch::BatchConfig;
/// use dike::time::ManualTimer;
/// use dike::tower::BatchLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// // One model call for many rows.
/// let model = service_fn(|rows: Vec<u32>| async move {
///     Ok::<_, String>(rows.into_iter().map(|x| x * 2).collect::<Vec<_>>())
/// });
/// let layer = BatchLayer::new(BatchConfig::new(2, Duration::from_millis(5)), ManualTimer::new())?;
/// let service = layer.layer(model);
/// smol::block_on(async {
///     let (a, b) = futures_util::join!(service.clone().oneshot(1), service.clone().oneshot(20));
///     assert_eq!((a.unwrap(), b.unwrap()), (2, 40));
/// });
/// assert_eq!(service.batcher().stats().batches, 1, "both in one batch");
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct BatchLayer<Req, T> {
    config: BatchConfig,
    timer: T,
    _request: PhantomData<fn(Req)>,
}

impl<Req, T: Timer> BatchLayer<Req, T> {
    /// A layer batching requests of type `Req` per `config`, waiting on `timer`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the config is invalid, as [`Batcher::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    /// use dike::time::ManualTimer;
    /// use dike::tower::BatchLayer;
    ///
    /// let ok = BatchLayer::<u32, _>::new(BatchConfig::new(64, Duration::from_millis(2)), ManualTimer::new());
    /// assert!(ok.is_ok());
    /// let zero = BatchLayer::<u32, _>::new(BatchConfig::new(0, Duration::from_millis(2)), ManualTimer::new());
    /// assert!(zero.is_err(), "a target size of 0");
    /// ```
    pub fn new(config: BatchConfig, timer: T) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            timer,
            _request: PhantomData,
        })
    }
}

impl<Req, T: Clone> Clone for BatchLayer<Req, T> {
    fn clone(&self) -> Self {
        Self {
            config: self.config,
            timer: self.timer.clone(),
            _request: PhantomData,
        }
    }
}

impl<Req, T> fmt::Debug for BatchLayer<Req, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, Req, Resp, T> Layer<S> for BatchLayer<Req, T>
where
    S: Service<Vec<Req>, Response = Vec<Resp>> + Clone,
    T: Timer,
{
    type Service = BatchService<S, Req, T>;

    fn layer(&self, inner: S) -> Self::Service {
        match Batcher::new(self.timer.clone(), self.config, Inner(inner)) {
            Ok(batcher) => BatchService {
                batcher: Arc::new(batcher),
            },
            Err(_) => unreachable!("the config was validated by `BatchLayer::new`"),
        }
    }
}

/// The batch function of a [`BatchService`]'s batcher: a clone of the inner service per
/// batch, called once ready.
struct Inner<S>(S);

impl<S, Req> BatchFn<Vec<Req>> for Inner<S>
where
    S: Service<Vec<Req>> + Clone,
    S::Response: Rows,
{
    type Output = S::Response;
    type Error = S::Error;
    type Future = ReadyCall<S, Vec<Req>>;

    fn call(&self, rows: Vec<Req>) -> Self::Future {
        ReadyCall {
            service: self.0.clone(),
            request: Some(rows),
            future: None,
        }
    }
}

impl<S> fmt::Debug for Inner<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inner")
    }
}

pin_project! {
    /// Polls a service's readiness, then calls it with the request.
    struct ReadyCall<S: Service<R>, R> {
        service: S,
        request: Option<R>,
        #[pin]
        future: Option<S::Future>,
    }
}

impl<S: Service<R>, R> Future for ReadyCall<S, R> {
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(future) = this.future.as_mut().as_pin_mut() {
                return future.poll(cx);
            }
            ready!(this.service.poll_ready(cx))?;
            let Some(request) = this.request.take() else {
                unreachable!("the request is taken once, when the future is set");
            };
            this.future.set(Some(this.service.call(request)));
        }
    }
}

/// A service of single requests in front of an inner batch service. Built by
/// [`BatchLayer`]; see it for how batches form.
///
/// # The `Service` contract
///
/// `poll_ready` is always ready: a request joins the open batch when its response future is
/// first polled, and the batcher's own bounds (`max_queued_rows`) refuse what would queue
/// too much, at once, with [`BatchError::QueueFull`]. The inner service's capacity is not
/// reserved ahead: when a batch is sent, a clone of the inner service is polled to readiness
/// and only then called, so a service that is not ready is never called. An error of its
/// `poll_ready` is the batch's error.
///
/// The error is [`BatchError<E>`] with `E` the inner service's error: the inner error
/// ([`BatchError::Failed`], shared by every request of the batch as an `Arc`), an inner
/// response of the wrong length, a processing timeout or a full queue.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::batch::{BatchConfig, BatchError};
/// use dike::time::ManualTimer;
/// use dike::tower::BatchLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let broken = service_fn(|_: Vec<u8>| async { Err::<Vec<u8>, _>("model down") });
/// let service = BatchLayer::new(BatchConfig::new(1, Duration::from_millis(5)), ManualTimer::new())?
///     .layer(broken);
/// match smol::block_on(service.oneshot(1)) {
///     Err(BatchError::Failed(err)) => assert_eq!(*err, "model down"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct BatchService<S, Req, T>
where
    S: Service<Vec<Req>> + Clone,
    S::Response: Rows,
    T: Timer,
{
    batcher: Arc<Batcher<Vec<Req>, Inner<S>, T>>,
}

impl<S, Req, Resp, T> BatchService<S, Req, T>
where
    S: Service<Vec<Req>, Response = Vec<Resp>> + Clone,
    T: Timer,
{
    /// The batcher, for its [`stats`](Batcher::stats) or to [`flush`](Batcher::flush) it.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    /// use dike::time::ManualTimer;
    /// use dike::tower::BatchLayer;
    /// use tower::{Layer, service_fn};
    ///
    /// let service = BatchLayer::new(BatchConfig::new(8, Duration::from_millis(5)), ManualTimer::new())?
    ///     .layer(service_fn(|rows: Vec<u8>| async move { Ok::<_, ()>(rows) }));
    /// assert_eq!(service.batcher().stats().batches, 0);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn batcher(&self) -> &Arc<Batcher<Vec<Req>, impl BatchFn<Vec<Req>>, T>> {
        &self.batcher
    }
}

impl<S, Req, T> Clone for BatchService<S, Req, T>
where
    S: Service<Vec<Req>> + Clone,
    S::Response: Rows,
    T: Timer,
{
    fn clone(&self) -> Self {
        Self {
            batcher: Arc::clone(&self.batcher),
        }
    }
}

impl<S, Req, T> fmt::Debug for BatchService<S, Req, T>
where
    S: Service<Vec<Req>> + Clone,
    S::Response: Rows,
    T: Timer,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchService")
            .field("config", &self.batcher.config())
            .finish_non_exhaustive()
    }
}

impl<S, Req, Resp, T> Service<Req> for BatchService<S, Req, T>
where
    S: Service<Vec<Req>, Response = Vec<Resp>> + Clone,
    T: Timer,
{
    type Response = Resp;
    type Error = BatchError<S::Error>;
    type Future = BatchFuture<S, Req, T>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        BatchFuture {
            call: self.batcher.call_owned(alloc::vec![request]),
            done: false,
        }
    }
}

/// The response future of a [`BatchService`]: this request's own response from its
/// batch's inner call.
///
/// Polling it again after it completed panics.
///
/// # Cancel safety
///
/// As [`Batcher::call`]'s: dropped before its batch is sent, the request leaves the batch
/// and is never sent; dropped after, the batch runs without it and its response is
/// discarded. Dropping the member that drives a batch passes the drive to another one; when
/// every request of a sent batch is dropped, the inner call is dropped.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::batch::BatchConfig;
/// use dike::time::ManualTimer;
/// use dike::tower::{BatchFuture, BatchLayer};
/// use tower::{Layer, Service, service_fn};
///
/// let mut service = BatchLayer::new(BatchConfig::new(1, Duration::from_millis(5)), ManualTimer::new())?
///     .layer(service_fn(|rows: Vec<u8>| async move { Ok::<_, ()>(rows) }));
/// let response: BatchFuture<_, u8, _> = service.call(3);
/// assert_eq!(smol::block_on(response), Ok(3));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct BatchFuture<S, Req, T>
where
    S: Service<Vec<Req>> + Clone,
    S::Response: Rows,
    T: Timer,
{
    call: CallOwned<Vec<Req>, Inner<S>, T>,
    done: bool,
}

impl<S, Req, Resp, T> Future for BatchFuture<S, Req, T>
where
    S: Service<Vec<Req>, Response = Vec<Resp>> + Clone,
    T: Timer,
{
    type Output = Result<Resp, BatchError<S::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "`BatchFuture` polled after completion");
        let rows = ready!(Pin::new(&mut this.call).poll(cx));
        this.done = true;
        // The batcher checked the inner response's length: this request's piece is one row.
        Poll::Ready(rows.and_then(|rows| {
            rows.into_iter().next().ok_or(BatchError::WrongLength {
                expected: 1,
                actual: 0,
            })
        }))
    }
}

impl<S, Req, T> fmt::Debug for BatchFuture<S, Req, T>
where
    S: Service<Vec<Req>> + Clone,
    S::Response: Rows,
    T: Timer,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchFuture")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
