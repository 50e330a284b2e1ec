//! Per-attempt and total timeouts of a retry policy, and the errors they produce.

use core::fmt;
use core::time::Duration;

use crate::error::Elapsed;

mod sealed {
    pub trait Sealed {}
}

/// Whether a [`Retry`](super::Retry) policy has timeouts, and so what its runs fail with:
/// the operation's own error without ([`NoTimeouts`]), a [`RetryError`] with
/// ([`WithTimeouts`]). Sealed.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::{NoTimeouts, Retry, Timeouts, WithTimeouts};
///
/// let plain: Retry = Retry::new(); // `Retry<Backoff, NoHooks, NoTimeouts>`
/// let timed: Retry<_, _, WithTimeouts> = plain.with_timeout(Duration::from_secs(1));
/// assert_eq!(timed.timeouts().total(), Some(Duration::from_secs(1)));
/// ```
pub trait Timeouts: sealed::Sealed + Copy {
    /// What a run fails with: `E` itself, or a [`RetryError<E>`].
    type Error<E>;

    /// The time limit of each attempt, if any.
    fn attempt(&self) -> Option<Duration>;

    /// The time limit of the whole run, attempts and delays included, if any.
    fn total(&self) -> Option<Duration>;

    /// Converts the run's final error.
    #[doc(hidden)]
    fn error<E>(error: RetryError<E>) -> Self::Error<E>;
}

/// No timeouts: a run fails with the operation's last error, unchanged (the default).
///
/// # Examples
///
/// ```
/// use dike::retry::{NoTimeouts, Retry, Timeouts};
///
/// let policy: Retry = Retry::new();
/// let _: &NoTimeouts = policy.timeouts();
/// assert_eq!(policy.timeouts().total(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoTimeouts;

impl sealed::Sealed for NoTimeouts {}

impl Timeouts for NoTimeouts {
    type Error<E> = E;

    #[inline]
    fn attempt(&self) -> Option<Duration> {
        None
    }

    #[inline]
    fn total(&self) -> Option<Duration> {
        None
    }

    #[inline]
    fn error<E>(error: RetryError<E>) -> E {
        match error {
            RetryError::Failed(error) => error,
            // A policy without timeouts never arms a timer for an attempt or the run.
            RetryError::AttemptTimedOut(_) | RetryError::TimedOut { .. } => {
                unreachable!("a policy without timeouts timed out")
            }
        }
    }
}

/// A per-attempt and/or a total time limit, set by
/// [`Retry::with_attempt_timeout`](super::Retry::with_attempt_timeout) and
/// [`Retry::with_timeout`](super::Retry::with_timeout): a run fails with a [`RetryError`].
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::{Retry, Timeouts};
///
/// let policy = Retry::new().with_attempt_timeout(Duration::from_millis(100));
/// assert_eq!(policy.timeouts().attempt(), Some(Duration::from_millis(100)));
/// assert_eq!(policy.timeouts().total(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WithTimeouts {
    pub(super) attempt: Option<Duration>,
    pub(super) total: Option<Duration>,
}

impl sealed::Sealed for WithTimeouts {}

impl Timeouts for WithTimeouts {
    type Error<E> = RetryError<E>;

    #[inline]
    fn attempt(&self) -> Option<Duration> {
        self.attempt
    }

    #[inline]
    fn total(&self) -> Option<Duration> {
        self.total
    }

    #[inline]
    fn error<E>(error: RetryError<E>) -> RetryError<E> {
        error
    }
}

/// How one attempt failed: with the operation's error, or by running out its
/// [attempt timeout](super::Retry::with_attempt_timeout).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::error::Elapsed;
/// use dike::retry::AttemptError;
///
/// let failed: AttemptError<&str> = AttemptError::Failed("503");
/// assert_eq!(failed.to_string(), "503");
/// let slow: AttemptError<&str> = AttemptError::TimedOut(Elapsed::new(Duration::from_millis(100)));
/// assert_eq!(slow.to_string(), "attempt timed out: deadline of 100ms elapsed");
/// assert_eq!(failed.into_error(), Some("503"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError<E> {
    /// The operation returned this error.
    Failed(E),
    /// The attempt was still running at its deadline and was dropped.
    TimedOut(Elapsed),
}

impl<E> AttemptError<E> {
    /// The operation's error, if the attempt did not time out.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::AttemptError;
    /// assert_eq!(AttemptError::Failed(3).into_error(), Some(3));
    /// ```
    pub fn into_error(self) -> Option<E> {
        match self {
            Self::Failed(error) => Some(error),
            Self::TimedOut(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for AttemptError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => error.fmt(f),
            Self::TimedOut(elapsed) => write!(f, "attempt timed out: {elapsed}"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for AttemptError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Failed(error) => Some(error),
            Self::TimedOut(elapsed) => Some(elapsed),
        }
    }
}

/// Why a run of a policy with timeouts failed.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::error::Elapsed;
/// use dike::retry::{AttemptError, RetryError};
///
/// let err: RetryError<&str> = RetryError::TimedOut {
///     last: Some(AttemptError::Failed("503")),
/// };
/// assert_eq!(err.to_string(), "retry timed out; last attempt: 503");
/// assert_eq!(err.last_error(), Some(&"503"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryError<E> {
    /// The last attempt failed with this error and the policy gave up (attempts or schedule
    /// spent, a predicate refused it, the retry budget was empty).
    Failed(E),
    /// The last attempt ran out its attempt timeout and the policy gave up.
    AttemptTimedOut(Elapsed),
    /// The total timeout was reached, or no retry fit in what was left of it; `last` is the
    /// last attempt's error (`None` if the first attempt was cut by the total timeout).
    TimedOut {
        /// How the last finished attempt failed.
        last: Option<AttemptError<E>>,
    },
}

impl<E> RetryError<E> {
    /// The operation's last error, if the last finished attempt returned one (rather than
    /// timing out).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryError;
    /// assert_eq!(RetryError::Failed("down").last_error(), Some(&"down"));
    /// assert_eq!(RetryError::<()>::TimedOut { last: None }.last_error(), None);
    /// ```
    pub fn last_error(&self) -> Option<&E> {
        match self {
            Self::Failed(error)
            | Self::TimedOut {
                last: Some(AttemptError::Failed(error)),
            } => Some(error),
            _ => None,
        }
    }

    /// Whether a timeout (of the last attempt or of the run) ended the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryError;
    /// assert!(!RetryError::Failed("down").is_timeout());
    /// assert!(RetryError::<()>::TimedOut { last: None }.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        !matches!(self, Self::Failed(_))
    }
}

impl<E> From<AttemptError<E>> for RetryError<E> {
    fn from(error: AttemptError<E>) -> Self {
        match error {
            AttemptError::Failed(error) => Self::Failed(error),
            AttemptError::TimedOut(elapsed) => Self::AttemptTimedOut(elapsed),
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => error.fmt(f),
            Self::AttemptTimedOut(elapsed) => write!(f, "attempt timed out: {elapsed}"),
            Self::TimedOut { last: None } => f.write_str("retry timed out"),
            Self::TimedOut { last: Some(last) } => {
                write!(f, "retry timed out; last attempt: {last}")
            }
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Failed(error) => Some(error),
            Self::AttemptTimedOut(elapsed) => Some(elapsed),
            Self::TimedOut { last: Some(last) } => Some(last),
            Self::TimedOut { last: None } => None,
        }
    }
}
