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
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        /// The inner service was called; the permit (gate only) is held until it completes.
        Called { #[pin] future: F, permit: Option<OwnedPermit> },
        /// The layer refused the request: the inner service was not called.
        Refused { refusal: Refusal },
        /// Completed: the inner future and the permit are dropped.
        Done,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(super) fn called(future: F, permit: Option<OwnedPermit>) -> Self {
        Self {
            state: State::Called { future, permit },
        }
    }

    #[inline]
    pub(super) fn refused(refusal: Refusal) -> Self {
        Self {
            state: State::Refused { refusal },
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
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Called { future, .. } => match future.poll(cx) {
                Poll::Ready(result) => result.map_err(Error::Inner),
                Poll::Pending => return Poll::Pending,
            },
            StateProj::Refused { refusal } => Err(refusal.into_error()),
            StateProj::Done => panic!("`ResponseFuture` polled after completion"),
        };
        // Drops the inner future and releases the permit now: the request is over, even if
        // this future is kept around.
        state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { permit, .. } if permit.is_some() => "called, holding a permit",
            State::Called { .. } => "called",
            State::Refused { .. } => "refused",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
