//! Request coalescing: identical calls in flight at the same time share one execution.
//!
//! The Rust counterpart of Python's `async_reduce` and Go's `singleflight`. N simultaneous
//! `GET /users/42` become one call to the user service: the first caller for a key runs its
//! closure, callers with an equal key (by `Eq`, never by hash alone) join it while it is in
//! flight, and every one of them gets a clone of the same outcome, error included. Nothing is
//! cached: once the run completes its key is free, and the next call runs again.
//!
//! What it adds to the originals:
//!
//! - **The work belongs to the run, not to its first caller.** Whichever waiter is polled
//!   drives the shared work (nothing is spawned, so this works on any executor). Dropping
//!   any waiter, the first included, never disturbs the others; the work is dropped only when
//!   every waiter is gone, and the key is freed then too (no leaked entry).
//! - **Panics are contained.** With `std`, a panic in the work reaches every waiter as
//!   [`RunError::Panicked`] and frees the key.
//! - **Hooks** ([`Hooks`]: apply, execute, join, success, error, abandon), combinable by
//!   tuples, with ready-made [`DebugHooks`], [`Stats`] and [`KeyStats`] counting
//!   "executed" one way: runs started.
//! - [`coalesceable`] wraps an async function so its argument is the key, like
//!   `@async_reduceable()`; [`forget`](Coalescer::forget) lets the next caller start afresh;
//!   [`in_flight`](Coalescer::in_flight) counts keys in flight; every [`Outcome`] says
//!   whether it was shared.
//! - `no_std` with `alloc`; `Send + Sync` when the keys, values, errors and hooks are.
//!
//! # Examples
//!
//! ```
//! use dike::coalesce::Coalescer;
//!
//! # smol::block_on(async {
//! let users: Coalescer<String, String, String> = Coalescer::new();
//! let fetch = |id: u32| async move { Ok(format!("user {id}")) };
//!
//! // Two identical requests at once: one fetch, two answers.
//! let a = users.run("users/42", || fetch(42));
//! let b = users.run("users/42", || fetch(42)); // joins: this closure never runs
//! let (a, b) = futures_util::join!(a, b);
//! assert!(!a.is_joined() && b.is_joined() && b.is_shared());
//! assert_eq!(a.into_result(), Ok("user 42".to_string()));
//! assert_eq!(b.into_result(), Ok("user 42".to_string()));
//!
//! // Nothing is cached: the key is free again.
//! assert_eq!(users.in_flight(), 0);
//! # });
//! ```

use alloc::borrow::ToOwned;
use alloc::sync::Arc;
use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::hash::{BuildHasher, Hash};

mod engine;
mod future;
mod hooks;
mod stats;

pub use future::{Call, Run, RunOwned};
pub use hooks::{DebugHooks, Hooks, NoHooks};
pub use stats::{Counts, KeyStats, Stats};

use engine::Engine;
use future::Waiter;

/// The hasher a [`Coalescer`] uses unless given another: `std`'s randomly seeded SipHash
/// ([`std::hash::RandomState`]), resistant to keys chosen to collide.
///
/// # Examples
///
/// ```
/// use dike::coalesce::{Coalescer, DefaultHashBuilder, NoHooks};
///
/// let coalescer: Coalescer<u64, u64, (), NoHooks, DefaultHashBuilder> = Coalescer::new();
/// # let _ = coalescer;
/// ```
#[cfg(feature = "std")]
pub type DefaultHashBuilder = std::hash::RandomState;

/// Without `std` there is no default hasher: give one to [`Coalescer::with_hasher`] (this
/// type only stands in the default position and cannot be built).
#[cfg(not(feature = "std"))]
pub type DefaultHashBuilder = NoDefaultHasher;

/// Without `std` there is no default hasher: give one to [`Coalescer::with_hasher`]. This type
/// only fills the default type parameter and has no values.
#[cfg(not(feature = "std"))]
#[derive(Debug, Clone, Copy)]
pub enum NoDefaultHasher {}

/// Coalesces identical calls in flight: one execution per key at a time, its outcome
/// shared by every caller that asked meanwhile.
///
/// `K` is the key, `T` and `E` the work's `Ok` and `Err` types (both `Clone`: each waiter gets
/// its own copy; the last one to collect gets the original without a clone), `H` the
/// [`Hooks`], `S` the key hasher.
///
/// The work must be `Send + 'static`: it lives in the coalescer, not in the caller that
/// created it, so any waiter may poll it and it may outlive its creator. Capture owned data
/// (clone an `Arc` of your client into the closure).
///
/// # Cancel safety
///
/// Every waiter ([`Run`], [`RunOwned`], [`Call`]) may be dropped at any time. A dropped waiter
/// leaves its run; the others keep waiting and the work keeps being driven by whichever of
/// them is polled. When the last waiter of a run is dropped the work is dropped with it,
/// unfinished, and the key is free: *no spawning* means nobody is left to finish it. (The
/// Python original runs the work as a task and finishes it even when every waiter left; to get
/// that, spawn a task that awaits the call.)
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use dike::coalesce::Coalescer;
///
/// # smol::block_on(async {
/// let calls = Arc::new(AtomicUsize::new(0));
/// let coalescer: Coalescer<u64, u64, String> = Coalescer::new();
/// let runs: Vec<_> = (0..10)
///     .map(|_| {
///         let calls = Arc::clone(&calls);
///         coalescer.run(&7, move || async move {
///             calls.fetch_add(1, Ordering::Relaxed);
///             smol::future::yield_now().await; // in flight for a while
///             Ok(49)
///         })
///     })
///     .collect();
/// let outcomes = futures_util::future::join_all(runs).await;
/// assert!(outcomes.iter().all(|o| o.result() == &Ok(49)));
/// assert_eq!(calls.load(Ordering::Relaxed), 1);
/// # });
/// ```
pub struct Coalescer<K, T, E, H = NoHooks, S = DefaultHashBuilder> {
    engine: Engine<K, T, E, S>,
    hooks: H,
}

#[cfg(feature = "std")]
impl<K, T, E> Coalescer<K, T, E> {
    /// A coalescer with no hooks and the default hasher.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Coalescer;
    ///
    /// let coalescer: Coalescer<String, Vec<u8>, std::io::ErrorKind> = Coalescer::new();
    /// assert_eq!(coalescer.in_flight(), 0);
    /// ```
    pub fn new() -> Self {
        Self::with_hasher_and_hooks(DefaultHashBuilder::default(), NoHooks)
    }
}

#[cfg(feature = "std")]
impl<K, T, E> Default for Coalescer<K, T, E> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl<K, T, E, H> Coalescer<K, T, E, H> {
    /// A coalescer that reports to `hooks`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, DebugHooks, Stats};
    ///
    /// let coalescer: Coalescer<u32, u32, (), _> =
    ///     Coalescer::with_hooks((Stats::new(), DebugHooks::stderr()));
    /// assert_eq!(coalescer.hooks().0.counts().total, 0);
    /// ```
    pub fn with_hooks(hooks: H) -> Self {
        Self::with_hasher_and_hooks(DefaultHashBuilder::default(), hooks)
    }
}

impl<K, T, E, S> Coalescer<K, T, E, NoHooks, S> {
    /// A coalescer hashing keys with `hasher` (without `std`, the way to build one).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::hash::BuildHasherDefault;
    /// use dike::coalesce::{Coalescer, NoHooks};
    ///
    /// // A fixed-key hasher: fine for keys an attacker does not choose.
    /// type Fixed = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;
    /// let coalescer: Coalescer<u32, u32, (), NoHooks, Fixed> =
    ///     Coalescer::with_hasher(Fixed::default());
    /// # let _ = coalescer;
    /// ```
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_hasher_and_hooks(hasher, NoHooks)
    }
}

impl<K, T, E, H, S> Coalescer<K, T, E, H, S> {
    /// A coalescer hashing keys with `hasher` and reporting to `hooks`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::hash::RandomState;
    /// use dike::coalesce::{Coalescer, Stats};
    ///
    /// let coalescer: Coalescer<u32, u32, (), _, _> =
    ///     Coalescer::with_hasher_and_hooks(RandomState::new(), Stats::new());
    /// # let _ = coalescer;
    /// ```
    pub fn with_hasher_and_hooks(hasher: S, hooks: H) -> Self {
        Self {
            engine: Engine::new(hasher),
            hooks,
        }
    }

    /// The hooks, e.g. to read statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, Stats};
    ///
    /// let coalescer: Coalescer<u32, u32, (), _> = Coalescer::with_hooks(Stats::new());
    /// assert_eq!(coalescer.hooks().counts().executed, 0);
    /// ```
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The key hasher.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::hash::BuildHasher;
    /// use dike::coalesce::Coalescer;
    ///
    /// let coalescer: Coalescer<u32, u32, ()> = Coalescer::new();
    /// let _ = coalescer.hasher().hash_one(1_u32);
    /// ```
    pub fn hasher(&self) -> &S {
        self.engine.hasher()
    }

    /// How many keys have a run in flight.
    ///
    /// A key counts from the call that starts its run until the run completes, is abandoned
    /// or [forgotten](Coalescer::forget). Calls racing with this may or may not be counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Coalescer;
    ///
    /// let coalescer: Coalescer<String, u8, ()> = Coalescer::new();
    /// let a = coalescer.run("a", || async { Ok(1) });
    /// let b = coalescer.run("b", || async { Ok(2) });
    /// let a2 = coalescer.run("a", || async { Ok(3) });
    /// assert_eq!(coalescer.in_flight(), 2);
    /// drop((a, a2)); // every waiter of "a" left: its work is dropped, the key freed
    /// assert_eq!(coalescer.in_flight(), 1);
    /// # drop(b);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }
}

impl<K, T, E, H, S> Coalescer<K, T, E, H, S>
where
    K: Hash + Eq,
    H: Hooks<K, T, E>,
    S: BuildHasher,
{
    /// Runs `work()` for `key`, or joins the run already in flight for an equal key.
    ///
    /// The call is registered at once: the first call for a key calls its closure (and only
    /// that one: joiners' closures are never called) and stores the work in the coalescer;
    /// later calls with an equal key join it until it completes. The work starts when one of
    /// its waiters is first polled, and is driven by whichever waiter is polled. Every
    /// waiter resolves to the same outcome, cloned.
    ///
    /// The key is looked up by reference (`Borrow`), so `run("users/42", ..)` on a
    /// `Coalescer<String, ..>` builds a `String` only for the call that starts a run.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future leaves the run without disturbing its other waiters.
    /// When the last waiter leaves, the work is dropped unfinished and the key is free (see
    /// [Cancel safety](Coalescer#cancel-safety): nothing is spawned to finish it).
    ///
    /// # Errors
    ///
    /// The outcome holds [`RunError::Failed`] with a clone of the work's error, or
    /// [`RunError::Panicked`] if the work panicked (caught with `std`; without `std` the
    /// panic unwinds through the waiter that polled it, and the other waiters get
    /// `Panicked`).
    ///
    /// # Panics
    ///
    /// If `work()` itself panics (not the future it returns), the panic reaches this caller;
    /// waiters that joined meanwhile get [`RunError::Panicked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, RunError};
    ///
    /// # smol::block_on(async {
    /// let coalescer: Coalescer<String, u32, String> = Coalescer::new();
    /// let a = coalescer.run("users/42", || async { Err("503".to_string()) });
    /// let b = coalescer.run("users/42", || async { Ok(42) });
    /// let (a, b) = futures_util::join!(a, b);
    /// // The error is shared too.
    /// assert_eq!(a.into_result(), Err(RunError::Failed("503".to_string())));
    /// assert_eq!(b.into_result(), Err(RunError::Failed("503".to_string())));
    /// // The next call runs again.
    /// let c = coalescer.run("users/42", || async { Ok(42) }).await;
    /// assert_eq!(c.into_result(), Ok(42));
    /// # });
    /// ```
    pub fn run<Q, W, Fut>(&self, key: &Q, work: W) -> Run<'_, K, T, E, H, S>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
        W: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        Run {
            waiter: Waiter::new(self, key, Q::to_owned, work),
        }
    }

    /// [`run`](Coalescer::run) for an `Arc<Coalescer>`: the future is `'static`, to move
    /// into a spawned task.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Coalescer::run).
    ///
    /// # Errors
    ///
    /// As [`run`](Coalescer::run).
    ///
    /// # Panics
    ///
    /// As [`run`](Coalescer::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::coalesce::Coalescer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let coalescer: Arc<Coalescer<u8, u8, ()>> = Arc::new(Coalescer::new());
    /// let tasks: Vec<_> = (0..3)
    ///     .map(|_| tokio::spawn(coalescer.run_owned(&1, || async {
    ///         tokio::task::yield_now().await;
    ///         Ok(1)
    ///     })))
    ///     .collect();
    /// for task in tasks {
    ///     assert_eq!(task.await.unwrap().into_result(), Ok(1));
    /// }
    /// # }
    /// ```
    pub fn run_owned<Q, W, Fut>(self: &Arc<Self>, key: &Q, work: W) -> RunOwned<K, T, E, H, S>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
        W: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        RunOwned {
            waiter: Waiter::new(Arc::clone(self), key, Q::to_owned, work),
        }
    }

    /// Forgets the run in flight for `key`: the next call for it starts a new run, while the
    /// waiters of the forgotten one keep waiting for theirs. `true` if a run was in flight.
    ///
    /// Go's `Forget`: use it when the run in flight is known to be stale (the data changed
    /// after it started).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Coalescer;
    ///
    /// # smol::block_on(async {
    /// let coalescer: Coalescer<u8, &str, ()> = Coalescer::new();
    /// let old = coalescer.run(&1, || async { Ok("old") });
    /// assert!(coalescer.forget(&1));
    /// let new = coalescer.run(&1, || async { Ok("new") });
    /// assert_eq!(old.await.into_result(), Ok("old"));
    /// assert_eq!(new.await.into_result(), Ok("new"));
    /// assert!(!coalescer.forget(&1));
    /// # });
    /// ```
    pub fn forget<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.engine.forget(key)
    }
}

impl<K, T, E, H: fmt::Debug, S> fmt::Debug for Coalescer<K, T, E, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescer")
            .field("in_flight", &self.in_flight())
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

/// Why a coalesced run did not produce a value.
///
/// # Examples
///
/// ```
/// use dike::coalesce::RunError;
///
/// let err: RunError<&str> = RunError::Failed("timeout");
/// assert_eq!(err.failed(), Some(&"timeout"));
/// assert_eq!(err.to_string(), "the coalesced work failed");
/// assert_eq!(RunError::<&str>::Panicked.to_string(), "the coalesced work panicked");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunError<E> {
    /// The work returned this error (every waiter gets a clone).
    Failed(E),
    /// The work panicked while polled (with `std`), or the closure of the call that started
    /// the run panicked (for the callers that joined it).
    Panicked,
}

impl<E> RunError<E> {
    /// The work's error, unless it panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::RunError;
    ///
    /// assert_eq!(RunError::Failed(5).failed(), Some(&5));
    /// assert_eq!(RunError::<i32>::Panicked.failed(), None);
    /// ```
    pub fn failed(&self) -> Option<&E> {
        match self {
            Self::Failed(e) => Some(e),
            Self::Panicked => None,
        }
    }

    /// The work's error, unless it panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::RunError;
    ///
    /// assert_eq!(RunError::Failed("e").into_failed(), Some("e"));
    /// ```
    pub fn into_failed(self) -> Option<E> {
        match self {
            Self::Failed(e) => Some(e),
            Self::Panicked => None,
        }
    }
}

impl<E> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(_) => f.write_str("the coalesced work failed"),
            Self::Panicked => f.write_str("the coalesced work panicked"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for RunError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Failed(e) => Some(e),
            Self::Panicked => None,
        }
    }
}

/// What one caller of [`Coalescer::run`] gets: the run's result and how it got it.
///
/// # Examples
///
/// ```
/// use dike::coalesce::Coalescer;
///
/// # smol::block_on(async {
/// let coalescer: Coalescer<u8, u8, ()> = Coalescer::new();
/// let alone = coalescer.run(&1, || async { Ok(1) }).await;
/// assert!(!alone.is_joined() && !alone.is_shared());
/// assert_eq!(alone.into_result(), Ok(1));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T, E> {
    result: Result<T, RunError<E>>,
    shared: bool,
    executed: bool,
}

impl<T, E> Outcome<T, E> {
    /// The result of the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Coalescer;
    ///
    /// # smol::block_on(async {
    /// let coalescer: Coalescer<u8, u8, ()> = Coalescer::new();
    /// let outcome = coalescer.run(&1, || async { Ok(1) }).await;
    /// assert_eq!(outcome.result(), &Ok(1));
    /// # });
    /// ```
    pub fn result(&self) -> &Result<T, RunError<E>> {
        &self.result
    }

    /// The result of the run, owned.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Coalescer;
    ///
    /// # smol::block_on(async {
    /// let coalescer: Coalescer<u8, String, ()> = Coalescer::new();
    /// let name: String = coalescer.run(&1, || async { Ok("ada".into()) }).await.into_result()?;
    /// assert_eq!(name, "ada");
    /// # Ok::<(), dike::coalesce::RunError<()>>(())
    /// # }).unwrap();
    /// ```
    pub fn into_result(self) -> Result<T, RunError<E>> {
        self.result
    }

    /// Whether the run's result went to more than one caller: some other call joined it
    /// (Go's `shared`). Always `true` for a caller that joined.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Coalescer;
    ///
    /// # smol::block_on(async {
    /// let coalescer: Coalescer<u8, u8, ()> = Coalescer::new();
    /// let a = coalescer.run(&1, || async { Ok(1) });
    /// let b = coalescer.run(&1, || async { Ok(1) });
    /// let (a, b) = futures_util::join!(a, b);
    /// assert!(a.is_shared() && b.is_shared());
    /// # });
    /// ```
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether this caller joined a run started by another (its closure never ran).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Coalescer;
    ///
    /// # smol::block_on(async {
    /// let coalescer: Coalescer<u8, u8, ()> = Coalescer::new();
    /// let a = coalescer.run(&1, || async { Ok(1) });
    /// let b = coalescer.run(&1, || async { Ok(2) });
    /// let (a, b) = futures_util::join!(a, b);
    /// assert!(!a.is_joined());
    /// assert!(b.is_joined());
    /// # });
    /// ```
    pub fn is_joined(&self) -> bool {
        !self.executed
    }
}

/// Wraps the async function `f` so that identical calls in flight share one execution: its
/// argument is the key, like async_reduce's `@async_reduceable()` decorator.
///
/// `f` takes one argument (a tuple for several); calls with equal arguments (by `Eq`) made
/// while one is in flight join it. The argument is cloned once per run (into the map); a
/// joiner's argument is dropped. Use [`Coalesceable::with_coalescer`] to add hooks or share a
/// coalescer.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use dike::coalesce::coalesceable;
///
/// # smol::block_on(async {
/// let calls = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&calls);
/// let foo = coalesceable(move |(arg, kw): (&'static str, &'static str)| {
///     counter.fetch_add(1, Ordering::Relaxed);
///     async move {
///         smol::future::yield_now().await;
///         Ok::<_, ()>(format!("result {arg} {kw}"))
///     }
/// });
/// let (a, b) = futures_util::join!(foo.call(("arg", "kw")), foo.call(("arg", "kw")));
/// assert_eq!(a, Ok("result arg kw".to_string()));
/// assert_eq!(b, Ok("result arg kw".to_string()));
/// assert_eq!(calls.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[cfg(feature = "std")]
pub fn coalesceable<A, T, E, F, Fut>(f: F) -> Coalesceable<F, A, T, E>
where
    F: Fn(A) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    Coalesceable::with_coalescer(Arc::new(Coalescer::new()), f)
}

/// An async function whose identical calls in flight share one execution; built by
/// [`coalesceable`] or [`Coalesceable::with_coalescer`].
///
/// Cheap to clone: clones share the coalescer and the function.
///
/// # Examples
///
/// ```
/// use dike::coalesce::coalesceable;
///
/// # smol::block_on(async {
/// let double = coalesceable(|x: u32| async move { Ok::<u32, ()>(x * 2) });
/// assert_eq!(double.call(21).await, Ok(42));
/// assert_eq!(double.coalescer().in_flight(), 0);
/// # });
/// ```
pub struct Coalesceable<F, K, T, E, H = NoHooks, S = DefaultHashBuilder> {
    coalescer: Arc<Coalescer<K, T, E, H, S>>,
    f: Arc<F>,
}

impl<F, K, T, E, H, S> Coalesceable<F, K, T, E, H, S> {
    /// Wraps `f` with a given coalescer (for hooks, a hasher, or one shared with other
    /// callers).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::coalesce::{Coalesceable, Coalescer, Stats};
    ///
    /// # smol::block_on(async {
    /// let coalescer = Arc::new(Coalescer::with_hooks(Stats::new()));
    /// let fetch = Coalesceable::with_coalescer(Arc::clone(&coalescer), |id: u64| async move {
    ///     Ok::<_, ()>(id + 1)
    /// });
    /// assert_eq!(fetch.call(1).await, Ok(2));
    /// assert_eq!(coalescer.hooks().counts().executed, 1);
    /// # });
    /// ```
    pub fn with_coalescer(coalescer: Arc<Coalescer<K, T, E, H, S>>, f: F) -> Self {
        Self {
            coalescer,
            f: Arc::new(f),
        }
    }

    /// The coalescer behind the function.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::coalesceable;
    ///
    /// let f = coalesceable(|x: u8| async move { Ok::<u8, ()>(x) });
    /// let _call = f.call(1);
    /// assert_eq!(f.coalescer().in_flight(), 1);
    /// ```
    pub fn coalescer(&self) -> &Arc<Coalescer<K, T, E, H, S>> {
        &self.coalescer
    }
}

impl<F, K, T, E, H, S, Fut> Coalesceable<F, K, T, E, H, S>
where
    F: Fn(K) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    K: Hash + Eq + Clone,
    H: Hooks<K, T, E>,
    S: BuildHasher,
{
    /// Calls the function with `arg`, or joins the identical call in flight.
    ///
    /// # Cancel safety
    ///
    /// As [`Coalescer::run`].
    ///
    /// # Errors
    ///
    /// As [`Coalescer::run`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::coalesceable;
    ///
    /// # smol::block_on(async {
    /// let len = coalesceable(|s: String| async move { Ok::<usize, ()>(s.len()) });
    /// assert_eq!(len.call("four".to_string()).await, Ok(4));
    /// # });
    /// ```
    pub fn call(&self, arg: K) -> Call<K, T, E, H, S> {
        let mut waiter = Waiter::register(Arc::clone(&self.coalescer), &arg, K::clone);
        waiter.begin(|| (self.f)(arg));
        Call { waiter }
    }
}

impl<F, K, T, E, H, S> Clone for Coalesceable<F, K, T, E, H, S> {
    fn clone(&self) -> Self {
        Self {
            coalescer: Arc::clone(&self.coalescer),
            f: Arc::clone(&self.f),
        }
    }
}

impl<F, K, T, E, H: fmt::Debug, S> fmt::Debug for Coalesceable<F, K, T, E, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalesceable")
            .field("coalescer", &self.coalescer)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "std"))]
mod tests;
