//! The policy's hooks: which errors to retry, delay overrides, notification, budget.
//!
//! Each hook the policy is given wraps the ones it already has, so a policy's hooks are one
//! value of a small nested type (`Notify<N, When<P, NoHooks>>`) and the retry future needs a
//! single type parameter for all of them.

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
/// [`delay_for`](super::Retry::delay_for), [`notify`](super::Retry::notify) and
/// [`with_budget`](super::Retry::with_budget) build; sealed, so it can grow without breaking
/// anyone. Write your logic in those closures instead.
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
    fn should_retry(&mut self, error: &E) -> bool;
    /// A delay that replaces the schedule's for this `error` (a Retry-After hint).
    fn delay_override(&mut self, error: &E) -> Option<Duration>;
    /// Called for each failure that will be retried after `next` (`Some`), or that the
    /// budget refused to retry (`None`).
    fn notify(&mut self, error: &E, attempt: u32, next: Option<Duration>);
    /// Withdraws a retry from the budget, if any; `false` refuses the retry.
    fn acquire_retry(&mut self) -> bool;
    /// Gives back a retry acquired but never made (the future was dropped while waiting).
    fn cancel_retry(&mut self);
    /// Called when the operation succeeds.
    fn on_success(&mut self);
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
    fn should_retry(&mut self, _: &E) -> bool {
        true
    }
    #[inline]
    fn delay_override(&mut self, _: &E) -> Option<Duration> {
        None
    }
    #[inline]
    fn notify(&mut self, _: &E, _: u32, _: Option<Duration>) {}
    #[inline]
    fn acquire_retry(&mut self) -> bool {
        true
    }
    #[inline]
    fn cancel_retry(&mut self) {}
    #[inline]
    fn on_success(&mut self) {}
}

/// Writes the listed [`Hooks`] methods as plain forwards to `self.inner`: each wrapper spells
/// out only the methods it changes.
macro_rules! forward {
    ($($method:ident),* $(,)?) => { $(forward!(@ $method);)* };
    (@ should_retry) => {
        #[inline]
        fn should_retry(&mut self, error: &E) -> bool {
            self.inner.should_retry(error)
        }
    };
    (@ delay_override) => {
        #[inline]
        fn delay_override(&mut self, error: &E) -> Option<Duration> {
            self.inner.delay_override(error)
        }
    };
    (@ notify) => {
        #[inline]
        fn notify(&mut self, error: &E, attempt: u32, next: Option<Duration>) {
            self.inner.notify(error, attempt, next);
        }
    };
    (@ acquire_retry) => {
        #[inline]
        fn acquire_retry(&mut self) -> bool {
            self.inner.acquire_retry()
        }
    };
    (@ cancel_retry) => {
        #[inline]
        fn cancel_retry(&mut self) {
            self.inner.cancel_retry();
        }
    };
    (@ on_success) => {
        #[inline]
        fn on_success(&mut self) {
            self.inner.on_success();
        }
    };
}

macro_rules! wrapper {
    ($(#[$doc:meta])* $name:ident<$f:ident>, $field:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<$f, H> {
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
    /// use dike::retry::{NoHooks, Retry, When};
    ///
    /// fn transient(e: &&str) -> bool { *e == "busy" }
    /// let policy: Retry<_, When<fn(&&str) -> bool, NoHooks>> = Retry::new().when(transient);
    /// # let _ = policy;
    /// ```
    When<P>, predicate
}

impl<E, P: FnMut(&E) -> bool, H: Hooks<E>> Hooks<E> for When<P, H> {
    fn should_retry(&mut self, error: &E) -> bool {
        (self.predicate)(error) && self.inner.should_retry(error)
    }
    forward!(
        delay_override,
        notify,
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
    /// use dike::retry::{DelayFor, NoHooks, Retry};
    ///
    /// fn hint(_: &&str) -> Option<Duration> { None }
    /// let policy: Retry<_, DelayFor<fn(&&str) -> Option<Duration>, NoHooks>> =
    ///     Retry::new().delay_for(hint);
    /// # let _ = policy;
    /// ```
    DelayFor<D>, delay
}

impl<E, D: FnMut(&E) -> Option<Duration>, H: Hooks<E>> Hooks<E> for DelayFor<D, H> {
    fn delay_override(&mut self, error: &E) -> Option<Duration> {
        (self.delay)(error).or_else(|| self.inner.delay_override(error))
    }
    forward!(
        should_retry,
        notify,
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
    /// use dike::retry::{NoHooks, Notify, Retry};
    ///
    /// fn log(e: &&str, attempt: u32, next: Option<Duration>) {
    ///     println!("attempt {attempt} failed with {e}; next try in {next:?}");
    /// }
    /// let policy: Retry<_, Notify<fn(&&str, u32, Option<Duration>), NoHooks>> =
    ///     Retry::new().notify(log);
    /// # let _ = policy;
    /// ```
    Notify<N>, notify
}

impl<E, N: FnMut(&E, u32, Option<Duration>), H: Hooks<E>> Hooks<E> for Notify<N, H> {
    fn notify(&mut self, error: &E, attempt: u32, next: Option<Duration>) {
        self.inner.notify(error, attempt, next);
        (self.notify)(error, attempt, next);
    }
    forward!(
        should_retry,
        delay_override,
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
    /// use dike::retry::{Budgeted, NoHooks, Retry, RetryBudget};
    ///
    /// static BUDGET: RetryBudget = RetryBudget::new();
    /// let policy: Retry<_, Budgeted<&RetryBudget, NoHooks>> = Retry::new().with_budget(&BUDGET);
    /// # let _ = policy;
    /// ```
    Budgeted<B>, budget
}

impl<E, B: Borrow<RetryBudget>, H: Hooks<E>> Hooks<E> for Budgeted<B, H> {
    fn acquire_retry(&mut self) -> bool {
        if !self.budget.borrow().try_withdraw() {
            return false;
        }
        if self.inner.acquire_retry() {
            return true;
        }
        self.budget.borrow().cancel_withdrawal();
        false
    }
    fn cancel_retry(&mut self) {
        self.budget.borrow().cancel_withdrawal();
        self.inner.cancel_retry();
    }
    fn on_success(&mut self) {
        self.budget.borrow().deposit();
        self.inner.on_success();
    }
    forward!(should_retry, delay_override, notify);
}
