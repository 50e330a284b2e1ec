//! axum responses for the refusals (feature `axum`, through `axum-core` only).
//!
//! - [`TooManyCalls`]: `503 Service Unavailable` (a full gate, a full queue and a timed-out
//!   wait alike), the message as a `text/plain` body.
//! - [`RateLimited`]: `429 Too Many Requests` with a `Retry-After` header of whole seconds,
//!   rounded up (a wait of 1 ms says 1, never 0 unless the wait is zero), the message as the
//!   body.
//! - [`TooManyKeys`]: `503 Service Unavailable`, the message as the body.
//! - [`Error<E>`]: the refusal's response, or `E`'s own for [`Error::Inner`].

use alloc::string::ToString;
use core::time::Duration;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::RETRY_AFTER;

use super::Error;
use crate::error::TooManyCalls;
use crate::keyed::TooManyKeys;
use crate::throttle::RateLimited;

impl IntoResponse for TooManyCalls {
    /// `503 Service Unavailable`, with the message as the body.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use dike::gate::Gate;
    ///
    /// let refusal = Gate::new(0).try_enter().unwrap_err();
    /// assert_eq!(refusal.into_response().status(), 503);
    /// ```
    fn into_response(self) -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, self.to_string()).into_response()
    }
}

impl IntoResponse for RateLimited {
    /// `429 Too Many Requests` with `Retry-After` in whole seconds, rounded up, and the
    /// message as the body.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use dike::throttle::Throttle;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let throttle = Throttle::per_second(4)?;
    /// throttle.try_acquire(&timer).unwrap();
    /// let response = throttle.try_acquire(&timer).unwrap_err().into_response();
    /// assert_eq!(response.status(), 429);
    /// assert_eq!(response.headers()["retry-after"], "1"); // 250 ms, rounded up
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    fn into_response(self) -> Response {
        let retry_after = whole_seconds_up(self.wait()).to_string();
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, retry_after)],
            self.to_string(),
        )
            .into_response()
    }
}

impl IntoResponse for TooManyKeys {
    /// `503 Service Unavailable`, with the message as the body: the limiter is out of room for
    /// new keys, which says nothing about this client's own rate.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroUsize;
    /// use axum::response::IntoResponse;
    /// use dike::keyed::{KeyedGate, KeyedGateError};
    ///
    /// let gate = KeyedGate::<u8>::new(1).unwrap().with_max_keys(NonZeroUsize::new(1).unwrap());
    /// let _held = gate.try_enter(&1).unwrap();
    /// let Err(KeyedGateError::TooManyKeys(err)) = gate.try_enter(&2) else { panic!() };
    /// assert_eq!(err.into_response().status(), 503);
    /// ```
    fn into_response(self) -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, self.to_string()).into_response()
    }
}

impl<E: IntoResponse> IntoResponse for Error<E> {
    /// The refusal's response (503, or 429 with `Retry-After`), or the inner error's own.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use axum::response::IntoResponse;
    /// use dike::gate::Gate;
    /// use dike::tower::Error;
    ///
    /// let refused: Error<StatusCode> = Gate::new(0).try_enter().unwrap_err().into();
    /// assert_eq!(refused.into_response().status(), 503);
    /// let inner: Error<StatusCode> = Error::Inner(StatusCode::BAD_GATEWAY);
    /// assert_eq!(inner.into_response().status(), 502);
    /// ```
    fn into_response(self) -> Response {
        match self {
            Self::TooManyCalls(err) => err.into_response(),
            Self::RateLimited(err) => err.into_response(),
            Self::TooManyKeys(err) => err.into_response(),
            Self::Inner(err) => err.into_response(),
        }
    }
}

/// `d` in whole seconds, rounded up, saturating.
pub(super) fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}
