//! The policy's hooks: which errors to retry, delay overrides, notification, events, budget.
//!
//! Each hook the policy is given wraps the ones it already has, so a policy's hooks are one
//! value of a small nested type (`Notify<N, When<P, NoHooks>>`) and the retry future needs a
//! single type parameter for all of them. An unset hook is a method of [`NoHooks`] with an
//! empty `#[inline]` body: it compiles to nothing.

use core::borrow::Borrow;
use core::fmt;
use core::time::Duration;

use super::budget::RetryBudget;

mod sealed {
    pub trait Sealed {}
}

/// The hooks of a [`Retry`](super::Retry) policy for errors of type `E`.
///
/// Implemented by [`NoHooks`] and by the wrappers that [`when`](super::Retry::when),
/// [`delay_for`](super::Retry::delay_for), [`notify`](super::Retry::notify),
/// [`on_event`](super::Retry::on_event) and [`with_budget`](super::Retry::with_budget) build; sealed, so it can grow without breaking
/// anyone. Write your logic in those closures instead.
///
/// Every method takes `&self`: a policy is shared by every run of it (see
/// [`Retry::run`](super::Retry::run)), so its hooks are `Fn` closures. Keep counters in a
/// `Cell`, an atomic or a `Mutex`.
///
/// # Examples
///
/// ```
/// use dike::retry::{Hooks, Retry};
///
/// fn assert_hooks<E, H: Hooks<E>>(_: &H) {}
/// let policy = Retry::new().when(|e: &std::io::Error| e.kind() != std::io::ErrorKind::NotFound);
/// assert_hooks::<std::io::Error, _>(policy.hooks());
/// ```
pub trait Hooks<E>: sealed::Sealed {
    /// Whether `error` may be retried at all.
    fn should_retry(&self, error: &E) -> bool;
    /// A delay that replaces the schedule's for this `error` (a Retry-After hint).
    fn delay_override(&self, error: &E) -> Option<Duration>;
    /// Called for each failure that will be retried after `next` (`Some`), or that the
    /// budget refused to retry (`None`).
    fn notify(&self, error: &E, attempt: u32, next: Option<Duration>);
    /// Called for every [`RetryEvent`] of a run; for a failure [`notify`](Hooks::notify)
    /// sees too, right after it.
    fn on_event(&self, event: RetryEvent<'_, E>);
    /// Withdraws a retry from the budget, if any; `false` refuses the retry.
    fn acquire_retry(&self) -> bool;
    /// Gives back a retry acquired but never made (the future was dropped while waiting).
    fn cancel_retry(&self);
    /// Called when the operation succeeds.
    fn on_success(&self);
}

/// No hooks: every error is retried, on the schedule, silently, without a budget.
///
/// # Examples
///
/// ```
/// use dike::retry::{NoHooks, Retry};
///
/// let policy: Retry = Retry::new();
/// let _: &NoHooks = policy.hooks();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl sealed::Sealed for NoHooks {}

impl<E> Hooks<E> for NoHooks {
    #[inline]
    fn should_retry(&self, _: &E) -> bool {
        true
    }
    #[inline]
    fn delay_override(&self, _: &E) -> Option<Duration> {
        None
    }
    #[inline]
    fn notify(&self, _: &E, _: u32, _: Option<Duration>) {}
    #[inline]
    fn on_event(&self, _: RetryEvent<'_, E>) {}
    #[inline]
    fn acquire_retry(&self) -> bool {
        true
    }
    #[inline]
    fn cancel_retry(&self) {}
    #[inline]
    fn on_success(&self) {}
}

/// Writes the listed [`Hooks`] methods as plain forwards to `self.inner`: each wrapper spells
/// out only the methods it changes.
macro_rules! forward {
    ($($method:ident),* $(,)?) => { $(forward!(@ $method);)* };
    (@ should_retry) => {
        #[inline]
        fn should_retry(&self, error: &E) -> bool {
            self.inner.should_retry(error)
        }
    };
    (@ delay_override) => {
        #[inline]
        fn delay_override(&self, error: &E) -> Option<Duration> {
            self.inner.delay_override(error)
        }
    };
    (@ notify) => {
        #[inline]
        fn notify(&self, error: &E, attempt: u32, next: Option<Duration>) {
            self.inner.notify(error, attempt, next);
        }
    };
    (@ on_event) => {
        #[inline]
        fn on_event(&self, event: RetryEvent<'_, E>) {
            self.inner.on_event(event);
        }
    };
    (@ acquire_retry) => {
        #[inline]
        fn acquire_retry(&self) -> bool {
            self.inner.acquire_retry()
        }
    };
    (@ cancel_retry) => {
        #[inline]
        fn cancel_retry(&self) {
            self.inner.cancel_retry();
        }
    };
    (@ on_success) => {
        #[inline]
        fn on_success(&self) {
            self.inner.on_success();
        }
    };
}

macro_rules! wrapper {
    ($(#[$doc:meta])* $name:ident<$f:ident>, $field:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<$f, H = NoHooks> {
            pub(super) $field: $f,
            pub(super) inner: H,
        }

        impl<$f, H> sealed::Sealed for $name<$f, H> {}

        impl<$f, H: fmt::Debug> fmt::Debug for $name<$f, H> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("inner", &self.inner)
                    .finish_non_exhaustive()
            }
        }
    };
}

wrapper! {
    /// Hooks that retry only the errors a predicate accepts; built by
    /// [`Retry::when`](super::Retry::when).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Retry, When};
    ///
    /// fn transient(e: &&str) -> bool { *e == "busy" }
    /// let policy: Retry<_, When<fn(&&str) -> bool>> = Retry::new().when(transient);
    /// # let _ = policy;
    /// ```
    When<P>, predicate
}

impl<E, P: Fn(&E) -> bool, H: Hooks<E>> Hooks<E> for When<P, H> {
    fn should_retry(&self, error: &E) -> bool {
        (self.predicate)(error) && self.inner.should_retry(error)
    }
    forward!(
        delay_override,
        notify,
        on_event,
        acquire_retry,
        cancel_retry,
        on_success
    );
}

wrapper! {
    /// Hooks that let an error choose its own delay; built by
    /// [`Retry::delay_for`](super::Retry::delay_for).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{DelayFor, Retry};
    ///
    /// fn hint(_: &&str) -> Option<Duration> { None }
    /// let policy: Retry<_, DelayFor<fn(&&str) -> Option<Duration>>> =
    ///     Retry::new().delay_for(hint);
    /// # let _ = policy;
    /// ```
    DelayFor<D>, delay
}

impl<E, D: Fn(&E) -> Option<Duration>, H: Hooks<E>> Hooks<E> for DelayFor<D, H> {
    fn delay_override(&self, error: &E) -> Option<Duration> {
        (self.delay)(error).or_else(|| self.inner.delay_override(error))
    }
    forward!(
        should_retry,
        notify,
        on_event,
        acquire_retry,
        cancel_retry,
        on_success
    );
}

wrapper! {
    /// Hooks that report each retried failure; built by
    /// [`Retry::notify`](super::Retry::notify).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::{Notify, Retry};
    ///
    /// fn log(e: &&str, attempt: u32, next: Option<Duration>) {
    ///     println!("attempt {attempt} failed with {e}; next try in {next:?}");
    /// }
    /// let policy: Retry<_, Notify<fn(&&str, u32, Option<Duration>)>> =
    ///     Retry::new().notify(log);
    /// # let _ = policy;
    /// ```
    Notify<N>, notify
}

impl<E, N: Fn(&E, u32, Option<Duration>), H: Hooks<E>> Hooks<E> for Notify<N, H> {
    fn notify(&self, error: &E, attempt: u32, next: Option<Duration>) {
        self.inner.notify(error, attempt, next);
        (self.notify)(error, attempt, next);
    }
    forward!(
        should_retry,
        delay_override,
        on_event,
        acquire_retry,
        cancel_retry,
        on_success
    );
}

wrapper! {
    /// Hooks that report every [`RetryEvent`]; built by
    /// [`Retry::on_event`](super::Retry::on_event).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{OnEvent, Retry, RetryEvent};
    ///
    /// fn log(event: RetryEvent<'_, &str>) {
    ///     println!("{event:?}");
    /// }
    /// let policy: Retry<_, OnEvent<fn(RetryEvent<'_, &str>)>> = Retry::new().on_event(log);
    /// # let _ = policy;
    /// ```
    OnEvent<F>, hook
}

impl<E, F: Fn(RetryEvent<'_, E>), H: Hooks<E>> Hooks<E> for OnEvent<F, H> {
    fn on_event(&self, event: RetryEvent<'_, E>) {
        self.inner.on_event(event);
        (self.hook)(event);
    }
    forward!(
        should_retry,
        delay_override,
        notify,
        acquire_retry,
        cancel_retry,
        on_success
    );
}

wrapper! {
    /// Hooks that draw every retry from a shared [`RetryBudget`]; built by
    /// [`Retry::with_budget`](super::Retry::with_budget).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::{Budgeted, Retry, RetryBudget};
    ///
    /// static BUDGET: RetryBudget = RetryBudget::new();
    /// let policy: Retry<_, Budgeted<&RetryBudget>> = Retry::new().with_budget(&BUDGET);
    /// # let _ = policy;
    /// ```
    Budgeted<B>, budget
}

impl<E, B: Borrow<RetryBudget>, H: Hooks<E>> Hooks<E> for Budgeted<B, H> {
    fn acquire_retry(&self) -> bool {
        if !self.budget.borrow().try_withdraw() {
            return false;
        }
        if self.inner.acquire_retry() {
            return true;
        }
        self.budget.borrow().cancel_withdrawal();
        false
    }
    fn cancel_retry(&self) {
        self.budget.borrow().cancel_withdrawal();
        self.inner.cancel_retry();
    }
    fn on_success(&self) {
        self.budget.borrow().deposit();
        self.inner.on_success();
    }
    forward!(should_retry, delay_override, notify, on_event);
}

/// What a retry run reports to its [`on_event`](super::Retry::on_event) hooks, under
/// Polly's names (see [Events](super#events) for when each fires).
///
/// `attempt` numbers count the first call as 1. `error` is the operation's error, `None`
/// when the attempt ran out its [attempt timeout](super::Retry::with_attempt_timeout)
/// (reported just before by [`AttemptTimedOut`](RetryEvent::AttemptTimedOut)). The event
/// borrows the error for the duration of the call: clone what you keep.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::retry::RetryEvent;
///
/// let event: RetryEvent<'_, &str> = RetryEvent::Retrying {
///     attempt: 1,
///     delay: Duration::from_millis(50),
///     error: Some(&"503"),
/// };
/// assert_eq!(event.attempt(), 1);
/// assert_eq!(event.error(), Some(&"503"));
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEvent<'a, E> {
    /// Polly's `OnRetry`: attempt `attempt` failed and will be retried after `delay`
    /// (the retry is paid for, the sleep not yet started).
    Retrying {
        /// The failed attempt's number.
        attempt: u32,
        /// The delay before the next attempt.
        delay: Duration,
        /// The operation's error; `None` for an attempt that timed out.
        error: Option<&'a E>,
    },
    /// The [`RetryBudget`] refused the retry of attempt `attempt`: the run gives up with
    /// its error (Polly has no such event; hedging reports the same refusal).
    BudgetRefused {
        /// The failed attempt's number.
        attempt: u32,
        /// The operation's error; `None` for an attempt that timed out.
        error: Option<&'a E>,
    },
    /// Polly's `OnTimeout`, of the per-attempt timeout: attempt `attempt` was still running
    /// after `timeout` and was dropped. A retry decision follows
    /// ([`Retrying`](RetryEvent::Retrying), [`BudgetRefused`](RetryEvent::BudgetRefused),
    /// [`TimedOut`](RetryEvent::TimedOut), or nothing when the attempts are spent).
    AttemptTimedOut {
        /// The timed-out attempt's number.
        attempt: u32,
        /// The attempt timeout.
        timeout: Duration,
    },
    /// Polly's `OnTimeout`, of the total timeout: the run ends with
    /// [`RetryError::TimedOut`](super::RetryError::TimedOut), its deadline reached (an
    /// attempt in flight was dropped) or no retry fitting before it.
    TimedOut {
        /// Attempts started in the run.
        attempts: u32,
        /// The total timeout.
        timeout: Duration,
    },
}

impl<E> Clone for RetryEvent<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for RetryEvent<'_, E> {}

impl<'a, E> RetryEvent<'a, E> {
    /// The attempt the event is about: the failed or timed-out one, or for
    /// [`TimedOut`](RetryEvent::TimedOut) the number of attempts started.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::retry::RetryEvent;
    ///
    /// let event: RetryEvent<'_, ()> =
    ///     RetryEvent::AttemptTimedOut { attempt: 2, timeout: Duration::from_secs(1) };
    /// assert_eq!(event.attempt(), 2);
    /// ```
    pub const fn attempt(&self) -> u32 {
        match *self {
            Self::Retrying { attempt, .. }
            | Self::BudgetRefused { attempt, .. }
            | Self::AttemptTimedOut { attempt, .. } => attempt,
            Self::TimedOut { attempts, .. } => attempts,
        }
    }

    /// The operation's error the event carries, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryEvent;
    ///
    /// let event = RetryEvent::BudgetRefused { attempt: 3, error: Some(&"busy") };
    /// assert_eq!(event.error(), Some(&"busy"));
    /// ```
    pub const fn error(&self) -> Option<&'a E> {
        match *self {
            Self::Retrying { error, .. } | Self::BudgetRefused { error, .. } => error,
            Self::AttemptTimedOut { .. } | Self::TimedOut { .. } => None,
        }
    }
}

/// A run's own hooks (`outer`, from [`Run::when`](super::Run::when) and its siblings) over
/// the policy's (`inner`): both predicates must accept, the run's delay override wins, both
/// are notified (the policy's first).
pub(super) struct Layered<'a, X, H> {
    pub(super) outer: &'a X,
    pub(super) inner: &'a H,
}

impl<X, H> sealed::Sealed for Layered<'_, X, H> {}

impl<E, X: Hooks<E>, H: Hooks<E>> Hooks<E> for Layered<'_, X, H> {
    fn should_retry(&self, error: &E) -> bool {
        self.outer.should_retry(error) && self.inner.should_retry(error)
    }
    fn delay_override(&self, error: &E) -> Option<Duration> {
        self.outer
            .delay_override(error)
            .or_else(|| self.inner.delay_override(error))
    }
    fn notify(&self, error: &E, attempt: u32, next: Option<Duration>) {
        self.inner.notify(error, attempt, next);
        self.outer.notify(error, attempt, next);
    }
    fn on_event(&self, event: RetryEvent<'_, E>) {
        self.inner.on_event(event);
        self.outer.on_event(event);
    }
    fn acquire_retry(&self) -> bool {
        if !self.inner.acquire_retry() {
            return false;
        }
        if self.outer.acquire_retry() {
            return true;
        }
        self.inner.cancel_retry();
        false
    }
    fn cancel_retry(&self) {
        self.inner.cancel_retry();
        self.outer.cancel_retry();
    }
    fn on_success(&self) {
        self.inner.on_success();
        self.outer.on_success();
    }
}
