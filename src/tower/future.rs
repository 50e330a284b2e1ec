//! The response future shared by the layers.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{Error, Refusal};
use crate::gate::OwnedPermit;

pin_project! {
    /// The response future of [`GateService`](super::GateService) and
    /// [`ThrottleService`](super::ThrottleService): the inner service's response, or the
    /// layer's refusal at once.
    ///
    /// A gate permit reserved in `poll_ready` lives here from `call` on, and is released as
    /// soon as the inner future completes (before this future returns) or when this future is
    /// dropped, whichever comes first.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner response future and releases the permit it holds; nothing
    /// else is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    /// use dike::tower::{GateLayer, ResponseFuture};
    /// use futures_util::FutureExt;
    /// use tower::{Layer, Service, service_fn};
    ///
    /// let gate = Arc::new(Gate::new(1));
    /// let mut service = GateLayer::shared(Arc::clone(&gate))
    ///     .layer(service_fn(|n: u32| async move { Ok::<_, ()>(n + 1) }));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert!(service.poll_ready(&mut cx).is_ready());
    /// let response: ResponseFuture<_> = service.call(1);
    /// assert_eq!(gate.stats().in_use, 1, "the permit moved into the response future");
    /// assert_eq!(response.now_or_never(), Some(Ok(2)));
    /// assert_eq!(gate.stats().in_use, 0);
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct ResponseFuture<F> {
        #[pin]
        future: Option<F>,
        refusal: Option<Refusal>,
        permit: Option<OwnedPermit>,
        done: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(future: F, permit: Option<OwnedPermit>) -> Self {
        Self {
            future: Some(future),
            refusal: None,
            permit,
            done: false,
        }
    }

    pub(super) fn refused(refusal: Refusal) -> Self {
        Self {
            future: None,
            refusal: Some(refusal),
            permit: None,
            done: false,
        }
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, Error<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        assert!(!*this.done, "`ResponseFuture` polled after completion");
        let output = match this.future.as_pin_mut() {
            Some(future) => match future.poll(cx) {
                Poll::Ready(result) => result.map_err(Error::Inner),
                Poll::Pending => return Poll::Pending,
            },
            None => match this.refusal.take() {
                Some(refusal) => Err(refusal.into_error()),
                None => unreachable!("a response future is either called or refused"),
            },
        };
        *this.done = true;
        // Release the permit now: the request is over, even if this future is kept around.
        drop(this.permit.take());
        Poll::Ready(output)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("called", &self.future.is_some())
            .field("refusal", &self.refusal)
            .field("holds_permit", &self.permit.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
