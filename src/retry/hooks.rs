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
    forward!(should_retry, delay_override, notify);
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
