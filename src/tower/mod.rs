//! tower middleware: a [`Gate`](crate::gate::Gate), a [`Throttle`](crate::throttle::Throttle),
//! a [`Retry`](crate::retry::Retry) policy, a [`Hedge`](crate::hedge::Hedge) policy, a
//! [`Coalescer`](crate::coalesce::Coalescer) and a [`Batcher`](crate::batch::Batcher) as
//! [`Layer`]s, on any runtime (feature `tower`).
//!
//! | layer | service | what it does | refusal |
//! |---|---|---|---|
//! | [`GateLayer`] | [`GateService`] | at most `limit` requests in flight: wait (backpressure), wait up to a timeout, or shed load | [`Error::TooManyCalls`] (503 with `axum`) |
//! | [`ThrottleLayer`] | [`ThrottleService`] | at most `rate` request starts per period: wait for the start slot, or refuse | [`Error::RateLimited`] (429 with `Retry-After`) |
//! | [`KeyedThrottleLayer`] | [`KeyedThrottleService`] | a rate limit per key (IP, API key, tenant) taken from the request, in bounded memory | [`Error::RateLimited`] (429 with `Retry-After`), [`Error::TooManyKeys`] (503) |
//! | [`KeyedGateLayer`] | [`KeyedGateService`] | at most N requests in flight per key taken from the request | [`Error::TooManyCalls`] (503), [`Error::TooManyKeys`] (503) |
//! | [`RetryLayer`] | [`RetryService`] | retries a failed request per a dike [`Retry`](crate::retry::Retry) policy (requests must be `Clone`) | none: the last error, unchanged |
//! | [`HedgeLayer`] | [`HedgeService`] | a slow request is sent again (to a clone of the inner service) after a dike [`Hedge`](crate::hedge::Hedge) policy's delay; the first answer wins, the others are dropped (requests and the inner service must be `Clone`) | none: the winning answer, unchanged |
//! | [`CoalesceLayer`] | [`CoalesceService`] | requests with equal keys in flight share one inner call; joiners never call the inner service | none: [`RunError`](crate::coalesce::RunError) wraps the shared error |
//! | [`BatchLayer`] | [`BatchService`] | concurrent requests gathered into one call of an inner batch service, each answered by its own row | none: [`BatchError`](crate::batch::BatchError) |
//!
//! The layers depend only on `tower-service` and `tower-layer`, never on a runtime: waiting goes
//! through the dike [`Timer`](crate::time::Timer) you give them (or none at all, for a gate
//! without a timeout). The same stack runs on tokio, smol, async-std or anything else that
//! polls futures. tower's own `ConcurrencyLimit` and `RateLimit` hold a tokio semaphore and a
//! tokio `Sleep`.
//!
//! # The `Service` contract
//!
//! Both layers keep tower's contract exactly, as tower's `ConcurrencyLimit` and `LoadShed` do:
//!
//! - **Capacity is decided and reserved in `poll_ready`**: a gate permit, or a throttle start
//!   slot. Only then is the inner service's `poll_ready` polled, and its readiness is always
//!   propagated: a service that is not ready is never called. While the inner service is not
//!   ready, the reservation stays held.
//! - **The request is sent at `call`**, as tower does. A gate permit moves into the
//!   [`ResponseFuture`] and is released when that future completes or is dropped, or when a
//!   service that was ready is dropped without a call. A clone of a service starts with no
//!   reservation of its own.
//! - **A refusal never makes `poll_ready` fail**: a failed `poll_ready` would mean the service
//!   is broken for good. Instead `poll_ready` returns `Ready(Ok(()))` and the next `call` fails
//!   at once with the refusal, without calling the inner service (load shedding, as tower's
//!   `LoadShed`). A later `poll_ready` without a call decides afresh.
//! - Calling `call` without a `poll_ready` that returned `Ready(Ok(()))` first is a contract
//!   violation and panics, as in tower's `ConcurrencyLimit`.
//!
//! **The keyed layers** ([`KeyedThrottleLayer`], [`KeyedGateLayer`]) depart from the first
//! rule, and only from it: their limit depends on a key taken from the request, and
//! `poll_ready` has no request, so they decide in `call`. Their `poll_ready` is the inner
//! service's; a request refused for its key never reaches the inner service; a key's gate
//! permit moves into the [`KeyedResponseFuture`] and is released when it completes or is
//! dropped; in wait mode the request waits in its response future, in its key's FIFO line,
//! with the inner service that was made ready (a clone takes its place, so the inner service
//! must be `Clone`). See [`KeyedThrottleLayer`].
//!
//! **The retry, hedging, coalescing and batching layers** reserve nothing of their own. A
//! [`RetryService`]'s `poll_ready` is the inner service's; before each retry its response
//! future polls the inner service (the one that was made ready for the first attempt) to
//! readiness again. A [`CoalesceService`] and a [`BatchService`] are always ready: a request
//! that joins a call in flight or a batch would never use a reservation of the inner
//! service's capacity, so instead the call they make (the coalesced call, the batch) polls a
//! clone of the inner service to readiness first. In all three a service that is not ready is
//! never called, and all three need an inner service that is `Clone`. A [`HedgeService`]'s
//! `poll_ready` is the inner service's too, for the first attempt; each hedge sends the
//! request to a fresh clone of the inner service, which its response future polls to
//! readiness before calling it.
//!
//! **Sharing.** Clones of one service share its limit. A layer built from a number
//! ([`GateLayer::new`], [`ThrottleLayer::new`]) gives each service it wraps a gate or a throttle
//! of its own; a layer built from a shared `Arc` ([`GateLayer::shared`],
//! [`ThrottleLayer::shared`]) puts every service it wraps under that one limit: one limit across
//! several routes, or between middleware and code that enters the gate directly.
//!
//! **Waiting** is FIFO in both: waiting gate services queue in the gate itself, and waiting
//! throttle services line up in the throttle's own line ([`Throttle::acquire_owned`]), with
//! every other waiter of the throttle, where only the first sleeps on the timer (one wake-up
//! per slot, however many wait).
//!
//! [`Throttle::acquire_owned`]: crate::throttle::Throttle::acquire_owned
//!
//! **In axum**, a `Router` whose handlers have not been given their state builds each
//! handler's route, calling every layer's `layer` again, for each connection
//! (`axum::serve(listener, router)`) or, when the router itself is called as a service, for
//! each request. A layer built from a number would then limit each connection or request
//! alone. End the router with `.with_state(state)` (`.with_state(())` without state) before
//! serving it, which builds each route once, or build the layer with `shared`.
//!
//! # Errors
//!
//! The gate's and the throttle's error is [`Error<E>`], where `E` is the inner service's
//! error: a refusal
//! ([`Error::TooManyCalls`], [`Error::RateLimited`]) or the inner error ([`Error::Inner`]),
//! typed all the way down, no `BoxError`. Stacked layers nest: a `GateLayer` over a
//! `ThrottleLayer` over a service failing with `E` fails with `Error<Error<E>>`, so
//! `Error::TooManyCalls(_)`, `Error::Inner(Error::RateLimited(_))` and
//! `Error::Inner(Error::Inner(e))`; [`Error::flatten`] turns that into one `Error<E>`.
//! `Error<E>` implements [`std::error::Error`] when `E` does (its `source` is the inner error),
//! so where a stack demands `BoxError` it converts with `?`/`Into` and downcasts back to
//! `Error<E>`.
//!
//! The other layers refuse nothing: [`RetryLayer`]'s error is the inner service's, unchanged
//! (the last attempt's), and so is [`HedgeLayer`]'s (the winning attempt's); [`CoalesceLayer`]'s is [`RunError<E>`](crate::coalesce::RunError)
//! (the shared error, or a contained panic); [`BatchLayer`]'s is
//! [`BatchError<E>`](crate::batch::BatchError) (the shared inner error, a wrong length, a
//! timeout or a full queue).
//!
//! With the `axum` feature, [`TooManyCalls`] answers 503, [`RateLimited`] 429 with a
//! `Retry-After` header (whole seconds, rounded up), and `Error<E>` either of those or `E`'s
//! own response, so `?` in a handler or an axum `HandleErrorLayer` needs no mapping code.
//!
//! # Examples
//!
//! A service behind a limit of 2 in flight and 100 starts per second, driven by smol:
//!
//! ```
//! use std::sync::Arc;
//! use dike::gate::Gate;
//! use dike::throttle::Quota;
//! use dike::time::ManualTimer;
//! use dike::tower::{Error, GateLayer, ThrottleLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let timer = ManualTimer::new(); // AsyncIoTimer or TokioTimer in a real program
//! let gate = Arc::new(Gate::new(2));
//! let service = ServiceBuilder::new()
//!     .layer(GateLayer::shared(Arc::clone(&gate)).reject())
//!     .layer(ThrottleLayer::new(Quota::per_second(100).with_burst(10), timer)?)
//!     .service(service_fn(|name: &'static str| async move {
//!         Ok::<_, std::convert::Infallible>(format!("hello {name}"))
//!     }));
//!
//! smol::block_on(async {
//!     let answer = service.clone().oneshot("dike").await;
//!     assert_eq!(answer.unwrap(), "hello dike");
//!
//!     let _both = (gate.try_enter()?, gate.try_enter()?); // the gate is full
//!     match service.oneshot("late").await {
//!         Err(Error::TooManyCalls(refusal)) => assert_eq!(refusal.limit(), 2),
//!         other => panic!("{other:?}"),
//!     }
//!     Ok(())
//! })
//! # }
//! ```
//!
//! [`Layer`]: tower_layer::Layer

use core::fmt;
use core::time::Duration;

use crate::error::TooManyCalls;
use crate::keyed::{KeyedGateError, KeyedThrottleError, TooManyKeys};
use crate::throttle::RateLimited;

mod batch;
mod coalesce;
mod future;
mod gate;
mod hedge;
mod keyed;
mod retry;
mod throttle;

#[cfg(feature = "axum")]
mod axum;

pub use batch::{BatchFuture, BatchLayer, BatchService};
pub use coalesce::{CoalesceFuture, CoalesceLayer, CoalesceService};
pub use future::ResponseFuture;
pub use gate::{GateLayer, GateService, WaitTimer};
pub use hedge::{HedgeFuture, HedgeLayer, HedgeService};
pub use keyed::{
    KeyedGateLayer, KeyedGateService, KeyedResponseFuture, KeyedThrottleLayer, KeyedThrottleService,
};
pub use retry::{RetryFuture, RetryLayer, RetryService};
pub use throttle::{ThrottleLayer, ThrottleService};

/// The error of every dike tower layer: a refusal, or the inner service's error `E`.
///
/// Stacked layers nest (`Error<Error<E>>`); [`flatten`](Error::flatten) joins them. See
/// [Errors](self#errors).
///
/// `Display` is the refusal's own message, or "inner service failed" for
/// [`Inner`](Error::Inner), whose error is the [`source`](core::error::Error::source).
///
/// # Examples
///
/// ```
/// use dike::error::TooManyCallsKind;
/// use dike::gate::Gate;
/// use dike::tower::Error;
///
/// let gate = Gate::new(0);
/// let err: Error<std::io::Error> = gate.try_enter().unwrap_err().into();
/// match &err {
///     Error::TooManyCalls(refusal) => assert_eq!(refusal.kind(), TooManyCallsKind::Full),
///     other => panic!("{other:?}"),
/// }
/// assert!(err.is_refusal());
/// assert_eq!(err.to_string(), "too many calls: limit of 0 reached");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// A [`GateLayer`] turned the request away: the gate was full (reject mode), its limit
    /// is zero, its queue of waiters was full, or a bounded wait timed out
    /// ([`kind`](TooManyCalls::kind) says which). The inner service was not called.
    TooManyCalls(TooManyCalls),
    /// A [`ThrottleLayer`] in reject mode refused the request:
    /// [`wait`](RateLimited::wait) is how long until it would be admitted (a `Retry-After`).
    /// The inner service was not called.
    RateLimited(RateLimited),
    /// A [`KeyedThrottleLayer`] or [`KeyedGateLayer`] turned the request away because its key
    /// is new and the keyed limiter's table is full of live entries (see
    /// [the cap on keys](crate::keyed#the-cap-on-keys)). The inner service was not called.
    TooManyKeys(TooManyKeys),
    /// The inner service failed, in `poll_ready` or in its response future.
    Inner(E),
}

impl<E> Error<E> {
    /// Whether this is a refusal by a dike layer (the inner service was not called), not an
    /// error of the inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::Error;
    ///
    /// assert!(!Error::Inner("boom").is_refusal());
    /// ```
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Inner(_))
    }

    /// How long a client should wait before retrying, when the layer knows: the throttle's
    /// [`wait`](RateLimited::wait) for [`RateLimited`](Error::RateLimited), `None` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    /// use dike::tower::Error;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::per_second(4)?;
    /// throttle.try_acquire(&timer).unwrap();
    /// let err: Error<()> = throttle.try_acquire(&timer).unwrap_err().into();
    /// assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited(err) => Some(err.wait()),
            _ => None,
        }
    }

    /// The inner service's error, if that is what this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::Error;
    ///
    /// assert_eq!(Error::Inner("boom").into_inner(), Some("boom"));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(err) => Some(err),
            _ => None,
        }
    }

    /// Maps the inner service's error, keeping refusals as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::tower::Error;
    ///
    /// assert_eq!(Error::Inner(4).map_inner(|n| n * 2), Error::Inner(8));
    /// ```
    pub fn map_inner<F, E2>(self, f: F) -> Error<E2>
    where
        F: FnOnce(E) -> E2,
    {
        match self {
            Self::TooManyCalls(err) => Error::TooManyCalls(err),
            Self::RateLimited(err) => Error::RateLimited(err),
            Self::TooManyKeys(err) => Error::TooManyKeys(err),
            Self::Inner(err) => Error::Inner(f(err)),
        }
    }
}

impl<E> Error<Error<E>> {
    /// Joins the errors of two stacked dike layers into one: a refusal by either, or the
    /// innermost service's error.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    /// use dike::tower::Error;
    ///
    /// let refusal = Gate::new(0).try_enter().unwrap_err();
    /// let nested: Error<Error<&str>> = Error::Inner(Error::TooManyCalls(refusal));
    /// assert_eq!(nested.flatten(), Error::TooManyCalls(refusal));
    /// let nested: Error<Error<&str>> = Error::Inner(Error::Inner("boom"));
    /// assert_eq!(nested.flatten(), Error::Inner("boom"));
    /// ```
    pub fn flatten(self) -> Error<E> {
        match self {
            Self::TooManyCalls(err) => Error::TooManyCalls(err),
            Self::RateLimited(err) => Error::RateLimited(err),
            Self::TooManyKeys(err) => Error::TooManyKeys(err),
            Self::Inner(inner) => inner,
        }
    }
}

impl<E> From<TooManyCalls> for Error<E> {
    fn from(err: TooManyCalls) -> Self {
        Self::TooManyCalls(err)
    }
}

impl<E> From<TooManyKeys> for Error<E> {
    fn from(err: TooManyKeys) -> Self {
        Self::TooManyKeys(err)
    }
}

impl<E> From<KeyedThrottleError> for Error<E> {
    fn from(err: KeyedThrottleError) -> Self {
        match err {
            KeyedThrottleError::RateLimited(err) => Self::RateLimited(err),
            KeyedThrottleError::TooManyKeys(err) => Self::TooManyKeys(err),
        }
    }
}

impl<E> From<KeyedGateError> for Error<E> {
    fn from(err: KeyedGateError) -> Self {
        match err {
            KeyedGateError::TooManyCalls(err) => Self::TooManyCalls(err),
            KeyedGateError::TooManyKeys(err) => Self::TooManyKeys(err),
        }
    }
}

impl<E> From<RateLimited> for Error<E> {
    fn from(err: RateLimited) -> Self {
        Self::RateLimited(err)
    }
}

impl<E> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyCalls(err) => fmt::Display::fmt(err, f),
            Self::RateLimited(err) => fmt::Display::fmt(err, f),
            Self::TooManyKeys(err) => fmt::Display::fmt(err, f),
            Self::Inner(_) => f.write_str("inner service failed"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Inner(err) => Some(err),
            _ => None,
        }
    }
}

/// Why a layer turned a request away, carried from `poll_ready` to the response future.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    TooManyCalls(TooManyCalls),
    RateLimited(RateLimited),
}

impl Refusal {
    #[inline]
    fn into_error<E>(self) -> Error<E> {
        match self {
            Self::TooManyCalls(err) => Error::TooManyCalls(err),
            Self::RateLimited(err) => Error::RateLimited(err),
        }
    }
}

/// Whether a layer waits for capacity or refuses at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wait,
    Reject,
}

#[cfg(test)]
mod tests;
