//! The errors of the fleet-wide limiters.

use core::fmt;
use core::time::Duration;

use dike::error::TooManyCalls;

/// What went wrong talking to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// No answer within the limiter's timeout (a paused, overloaded or unreachable server).
    ///
    /// A timed-out request may still run on the server later (a request queued in a paused
    /// Redis runs when it resumes): a throttle slot or a gate lease may be taken without the
    /// caller knowing. The damage is bounded: an orphaned throttle slot is one slot, an
    /// orphaned lease lives at most its TTL.
    Timeout,
    /// The connection failed or was refused (the server is down or restarting).
    Unreachable,
    /// The server answered with an error (for example an ACL refusal or a cluster error).
    Server,
}

impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out",
            Self::Unreachable => "unreachable",
            Self::Server => "refused the request",
        })
    }
}

/// Redis could not be asked: down, paused past the timeout, or refusing the script.
///
/// The message never contains credentials: the password of the connection URL is replaced by
/// `***` wherever the driver's message would have shown it.
///
/// # Examples
///
/// ```no_run
/// use core::time::Duration;
/// use dike::throttle::Quota;
/// use dike::time::TokioTimer;
/// use dike_redis::{BackendErrorKind, Connection, FailMode, RedisThrottle, ThrottleError};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Connection::open("redis://127.0.0.1:1/")?; // nothing listens on port 1
/// let throttle = RedisThrottle::new(&conn, "api", Quota::per_second(10))?
///     .with_fail_mode(FailMode::Closed);
/// match throttle.try_acquire(&TokioTimer::new()).await {
///     Err(ThrottleError::Backend(err)) => assert_eq!(err.kind(), BackendErrorKind::Unreachable),
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis {kind}: {message}")]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
}

impl BackendError {
    pub(crate) fn timeout(after: Duration) -> Self {
        Self {
            kind: BackendErrorKind::Timeout,
            message: format!("no answer within {after:?}"),
        }
    }

    pub(crate) fn from_redis(err: &redis::RedisError, secret: Option<&str>) -> Self {
        let kind = if err.is_timeout() {
            BackendErrorKind::Timeout
        } else if err.is_io_error() || err.is_connection_refusal() || err.is_connection_dropped() {
            BackendErrorKind::Unreachable
        } else {
            BackendErrorKind::Server
        };
        let mut message = err.to_string();
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            message = message.replace(secret, "***");
        }
        Self { kind, message }
    }

    pub(crate) fn protocol(what: &str) -> Self {
        Self {
            kind: BackendErrorKind::Server,
            message: format!("unexpected reply: {what}"),
        }
    }

    /// What went wrong.
    ///
    /// # Examples
    ///
    /// See [`BackendError`].
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }
}

/// A throttle refusal: the fleet's quota (for a [`RedisKeyedThrottle`](crate::RedisKeyedThrottle),
/// the key's) is spent for now.
///
/// # Examples
///
/// ```no_run
/// use dike::throttle::Quota;
/// use dike::time::TokioTimer;
/// use dike_redis::{Connection, RedisThrottle, ThrottleError};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Connection::open("redis://127.0.0.1:6379/")?;
/// let throttle = RedisThrottle::new(&conn, "doc-rate-limited", Quota::per_second(1))?;
/// let timer = TokioTimer::new();
/// throttle.try_acquire(&timer).await?;
/// if let Err(ThrottleError::RateLimited(err)) = throttle.try_acquire(&timer).await {
///     println!("retry after {:?}", err.wait());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: ready in {wait:?}")]
pub struct RateLimited {
    wait: Duration,
}

impl RateLimited {
    pub(crate) fn new(wait: Duration) -> Self {
        Self { wait }
    }

    /// How long until the refused request would be admitted if nothing else is admitted
    /// before it (measured on the server's clock; for a keyed throttle, the key's own
    /// schedule): a `Retry-After`.
    ///
    /// # Examples
    ///
    /// See [`RateLimited`].
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// The error of [`RedisThrottle`](crate::RedisThrottle)'s and
/// [`RedisKeyedThrottle`](crate::RedisKeyedThrottle)'s methods.
///
/// # Examples
///
/// ```
/// use dike_redis::ThrottleError;
///
/// let err = ThrottleError::ExceedsBurst { n: 5, burst: 4 };
/// assert_eq!(err.to_string(), "cost 5 exceeds the burst of 4: it can never be admitted");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThrottleError {
    /// The quota is spent for now (only from `try_acquire*`; `acquire*` waits instead).
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The cost is larger than the burst: it can never be admitted (no round trip is made).
    #[error("cost {n} exceeds the burst of {burst}: it can never be admitted")]
    ExceedsBurst {
        /// The cost asked for.
        n: u32,
        /// The quota's burst.
        burst: u32,
    },
    /// Redis could not be asked and the throttle fails closed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A release or renewal with a fencing token that no longer holds a lease: the lease expired
/// (and may have been handed to someone else), or the server lost its data.
///
/// Nothing else is freed or extended by the refused call.
///
/// # Examples
///
/// ```
/// use dike_redis::{GateError, StaleToken};
///
/// fn is_stale(err: &GateError) -> bool {
///     matches!(err, GateError::StaleToken(StaleToken { .. }))
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stale fencing token {token}: the lease expired or was lost")]
#[non_exhaustive]
pub struct StaleToken {
    /// The token that was refused.
    pub token: u64,
}

/// The error of [`RedisGate`](crate::RedisGate)'s methods.
///
/// # Examples
///
/// ```
/// use dike::error::{TooManyCalls, TooManyCallsKind};
/// use dike_redis::GateError;
///
/// let err = GateError::from(TooManyCalls::new(3, TooManyCallsKind::Full));
/// assert_eq!(err.to_string(), "too many calls: limit of 3 reached");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// Every lease is held (`try_enter`), or the timed wait ran out (`enter_timeout`).
    #[error(transparent)]
    TooManyCalls(#[from] TooManyCalls),
    /// The permit's lease is no longer held.
    #[error(transparent)]
    StaleToken(#[from] StaleToken),
    /// Redis could not be asked and the gate fails closed (or a release/renew failed).
    #[error(transparent)]
    Backend(#[from] BackendError),
}
