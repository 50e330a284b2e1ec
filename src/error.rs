//! Small errors shared by several primitives.
//!
//! Each operation has its own small error, named after it; the ones here are shared:
//! [`ConfigError`] for every constructor that validates its input, [`TooManyCalls`] for a
//! call turned away by a concurrency limit.

use core::fmt;
use core::time::Duration;

/// A configuration value was rejected at construction.
///
/// Every constructor that can be handed a meaningless value (a zero attempt count, a NaN
/// multiplier, a zero rate) returns this instead of panicking. It names the parameter, the
/// value given and what was expected.
///
/// # Examples
///
/// ```
/// use dike::error::{ConfigError, ConfigValue};
///
/// let err = ConfigError::new("attempts", ConfigValue::Int(0), "at least 1");
/// assert_eq!(err.parameter(), "attempts");
/// assert_eq!(err.to_string(), "invalid attempts = 0: expected at least 1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid {parameter} = {value}: expected {expected}")]
pub struct ConfigError {
    parameter: &'static str,
    value: ConfigValue,
    expected: &'static str,
}

impl ConfigError {
    /// A rejected `value` for `parameter`; `expected` says what would have been accepted.
    pub const fn new(parameter: &'static str, value: ConfigValue, expected: &'static str) -> Self {
        Self {
            parameter,
            value,
            expected,
        }
    }

    /// The name of the rejected parameter, as spelled in the API.
    pub const fn parameter(&self) -> &'static str {
        self.parameter
    }

    /// The value that was given.
    pub const fn value(&self) -> ConfigValue {
        self.value
    }

    /// What would have been accepted, e.g. `"at least 1"`.
    pub const fn expected(&self) -> &'static str {
        self.expected
    }
}

/// The rejected value inside a [`ConfigError`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ConfigValue {
    /// An integer (counts, limits).
    Int(i128),
    /// A floating-point number (multipliers, rates).
    Float(f64),
    /// A duration.
    Duration(Duration),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Duration(v) => write!(f, "{v:?}"),
        }
    }
}

/// A call was turned away by a [`Gate`](crate::gate::Gate): the limit was reached.
///
/// [`kind`](TooManyCalls::kind) says why: the gate was full and the call could not wait
/// ([`try_enter`](crate::gate::Gate::try_enter), [`limit_jobs`](crate::gate::limit_jobs)),
/// the queue of waiters was full (a gate built
/// [`with_max_waiting`](crate::gate::Gate::with_max_waiting)), or a timed wait reached its
/// deadline. [`limit`](TooManyCalls::limit) is the gate's limit when the call was turned away.
///
/// # Examples
///
/// ```
/// use dike::error::TooManyCallsKind;
/// use dike::gate::Gate;
///
/// let gate = Gate::new(1);
/// let _held = gate.try_enter()?;
/// let err = gate.try_enter().unwrap_err();
/// assert_eq!(err.limit(), 1);
/// assert_eq!(err.kind(), TooManyCallsKind::Full);
/// assert_eq!(err.to_string(), "too many calls: limit of 1 reached");
/// # Ok::<(), dike::error::TooManyCalls>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("too many calls: {}", Reason(*self))]
pub struct TooManyCalls {
    limit: usize,
    kind: TooManyCallsKind,
}

impl TooManyCalls {
    /// A rejection by a gate whose limit is `limit`, for the reason `kind`.
    pub const fn new(limit: usize, kind: TooManyCallsKind) -> Self {
        Self { limit, kind }
    }

    /// The gate's limit (concurrent calls allowed) when the call was turned away.
    pub const fn limit(&self) -> usize {
        self.limit
    }

    /// Why the call was turned away.
    pub const fn kind(&self) -> TooManyCallsKind {
        self.kind
    }
}

/// Why a [`TooManyCalls`] was returned.
///
/// # Examples
///
/// ```
/// use dike::error::TooManyCallsKind;
/// use dike::gate::Gate;
/// use futures_util::FutureExt;
///
/// let gate = Gate::new(1).with_max_waiting(0);
/// let _held = gate.try_enter().unwrap();
/// let err = gate.enter().now_or_never().unwrap().unwrap_err();
/// match err.kind() {
///     TooManyCallsKind::QueueFull => {} // shed load: nobody may even wait
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TooManyCallsKind {
    /// Every permit was taken and the call did not wait.
    Full,
    /// Every permit was taken and the queue of waiters was at its bound.
    QueueFull,
    /// The call waited until its deadline without getting a permit.
    TimedOut,
}

/// The `Display` of a [`TooManyCalls`] after "too many calls: ".
struct Reason(TooManyCalls);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = self.0.limit;
        match self.0.kind {
            TooManyCallsKind::Full => write!(f, "limit of {limit} reached"),
            TooManyCallsKind::QueueFull => {
                write!(f, "limit of {limit} reached and the waiting queue is full")
            }
            TooManyCallsKind::TimedOut => {
                write!(f, "limit of {limit} reached and the wait timed out")
            }
        }
    }
}

/// A deadline passed before the future it guarded completed: the error of
/// [`timeout`](crate::time::timeout) and [`deadline`](crate::time::deadline), and of a retry
/// attempt cut by [`Retry::with_attempt_timeout`](crate::retry::Retry::with_attempt_timeout).
///
/// [`deadline`](Elapsed::deadline) is the instant, on the timer's clock, that was reached.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::error::Elapsed;
///
/// let err = Elapsed::new(Duration::from_millis(250));
/// assert_eq!(err.deadline(), Duration::from_millis(250));
/// assert_eq!(err.to_string(), "deadline of 250ms elapsed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("deadline of {deadline:?} elapsed")]
pub struct Elapsed {
    deadline: Duration,
}

impl Elapsed {
    /// The error for a deadline reached at `deadline` (a time on the timer's clock).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// let err = dike::error::Elapsed::new(Duration::from_secs(1));
    /// assert_eq!(err.deadline(), Duration::from_secs(1));
    /// ```
    pub const fn new(deadline: Duration) -> Self {
        Self { deadline }
    }

    /// The deadline that was reached, as a time on the timer's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// let err = dike::error::Elapsed::new(Duration::from_secs(1));
    /// assert_eq!(err.deadline(), Duration::from_secs(1));
    /// ```
    pub const fn deadline(&self) -> Duration {
        self.deadline
    }
}
