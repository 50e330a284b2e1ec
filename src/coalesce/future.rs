//! The named futures of [`Coalescer`]: one waiter ([`Waiter`]) behind the borrowed
//! ([`Run`]), owned ([`RunOwned`]) and wrapped-function ([`Call`]) forms.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::hash::{BuildHasher, Hash};
use core::ops::Deref;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::engine::Ticket;
use super::{Coalescer, Hooks, Outcome, RunError};

/// A waiter reached through a borrowed coalescer.
type Borrowed<'a, K, T, E, H, S> = Waiter<&'a Coalescer<K, T, E, H, S>, K, T, E, H, S>;
/// A waiter holding an `Arc` of its coalescer.
type Owned<K, T, E, H, S> = Waiter<Arc<Coalescer<K, T, E, H, S>>, K, T, E, H, S>;

/// One caller of a run, through `C` (`&Coalescer` or `Arc<Coalescer>`).
///
/// Registered in the run from construction; dropping it before it finished leaves the run
/// (the last one out drops the work).
pub(crate) struct Waiter<C, K, T, E, H, S>
where
    C: Deref<Target = Coalescer<K, T, E, H, S>>,
    H: Hooks<K, T, E>,
{
    coalescer: C,
    ticket: Option<Ticket<K>>,
    executor: bool,
}

impl<C, K, T, E, H, S> Waiter<C, K, T, E, H, S>
where
    C: Deref<Target = Coalescer<K, T, E, H, S>>,
    H: Hooks<K, T, E>,
    K: Hash + Eq,
    S: BuildHasher,
{
    /// Joins the run in flight for `key`, or starts one with `work()`.
    ///
    /// `to_owned` makes the map's key (called with the map lock held, for the executor only);
    /// `work` is called without any lock, for the executor only.
    #[inline]
    pub(crate) fn new<Q, W, Fut>(
        coalescer: C,
        key: &Q,
        to_owned: impl FnOnce(&Q) -> K,
        work: W,
    ) -> Self
    where
        K: core::borrow::Borrow<Q>,
        Q: ?Sized + Hash + Eq,
        W: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let mut waiter = Self::register(coalescer, key, to_owned);
        waiter.begin(work);
        waiter
    }

    /// Registers in the run for `key` (joining or as its executor), without calling hooks.
    #[inline]
    pub(crate) fn register<Q>(coalescer: C, key: &Q, to_owned: impl FnOnce(&Q) -> K) -> Self
    where
        K: core::borrow::Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let keyed = coalescer.hooks.__called();
        let (ticket, executor) = coalescer.engine.join(key, to_owned, keyed);
        Self {
            coalescer,
            ticket: Some(ticket),
            executor,
        }
    }

    /// Calls the hooks and, for the executor, `work()`, storing the work in the run.
    #[inline]
    pub(crate) fn begin<W, Fut>(&mut self, work: W)
    where
        W: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let ticket = self.ticket.as_ref().expect("just registered");
        let coalescer = &*self.coalescer;
        let hooks = &coalescer.hooks;
        if self.executor {
            // If a hook or the closure unwinds, the run fails for the joiners (the guard)
            // and this waiter leaves it (its drop).
            let mut guard = StartGuard {
                coalescer,
                ticket,
                armed: true,
            };
            if let Some(key) = &ticket.key {
                hooks.apply(key);
                hooks.execute(key);
            }
            let work = Box::pin(work());
            guard.armed = false;
            coalescer.engine.start(ticket, work);
        } else {
            drop(work);
            if let Some(key) = &ticket.key {
                hooks.apply(key);
                hooks.join(key);
            }
        }
    }
}

impl<C, K, T, E, H, S> Waiter<C, K, T, E, H, S>
where
    C: Deref<Target = Coalescer<K, T, E, H, S>>,
    H: Hooks<K, T, E>,
    T: Clone,
    E: Clone,
{
    #[inline]
    fn poll(&mut self, cx: &mut Context<'_>, name: &str) -> Poll<Outcome<T, E>> {
        if self.ticket.is_none() {
            panic!("`{name}` polled after completion");
        }
        let engine = &self.coalescer.engine;
        let hooks = &self.coalescer.hooks;
        engine.poll(
            &mut self.ticket,
            cx,
            self.executor,
            |key, result| match result {
                Ok(value) => hooks.success(key, value),
                Err(error) => hooks.error(key, error),
            },
        )
    }
}

impl<C, K, T, E, H, S> Drop for Waiter<C, K, T, E, H, S>
where
    C: Deref<Target = Coalescer<K, T, E, H, S>>,
    H: Hooks<K, T, E>,
{
    #[inline]
    fn drop(&mut self) {
        // A waiter that finished (the usual case) has nothing to do: only the check is inline.
        if self.ticket.is_some() {
            self.leave();
        }
    }
}

impl<C, K, T, E, H, S> Waiter<C, K, T, E, H, S>
where
    C: Deref<Target = Coalescer<K, T, E, H, S>>,
    H: Hooks<K, T, E>,
{
    /// Leaves the run unfinished (the waiter was dropped before it finished).
    #[inline(never)]
    fn leave(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let (key, abandoned) = self.coalescer.engine.leave(ticket);
            if let (true, Some(key)) = (abandoned, &key) {
                self.coalescer.hooks.abandon(key);
            }
        }
    }
}

/// Fails a run whose executor unwound (in a hook or its closure) before storing the work.
struct StartGuard<'a, K, T, E, H, S> {
    coalescer: &'a Coalescer<K, T, E, H, S>,
    ticket: &'a Ticket<K>,
    armed: bool,
}

impl<K, T, E, H, S> Drop for StartGuard<'_, K, T, E, H, S> {
    fn drop(&mut self) {
        if self.armed {
            self.coalescer.engine.fail(self.ticket);
        }
    }
}

impl<C, K, T, E, H, S> fmt::Debug for Waiter<C, K, T, E, H, S>
where
    C: Deref<Target = Coalescer<K, T, E, H, S>>,
    H: Hooks<K, T, E>,
    K: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Waiter");
        match &self.ticket {
            // Without hooks the key lives only in the map, behind its lock.
            Some(ticket) => match &ticket.key {
                Some(key) => d.field("key", &**key),
                None => d.field("finished", &false),
            },
            None => d.field("finished", &true),
        };
        d.field("executor", &self.executor).finish()
    }
}

/// The future returned by [`Coalescer::run`]: resolves to the [`Outcome`] of the run this
/// call started or joined.
///
/// The call is registered when `run` returns; the work is polled by whichever of its waiters
/// is polled (no task is spawned). Dropping this future leaves the run without disturbing its
/// other waiters; the last waiter to leave drops the work.
///
/// # Panics
///
/// Polling it again after it completed panics.
///
/// # Examples
///
/// ```
/// use dike::coalesce::{Coalescer, Run};
///
/// # smol::block_on(async {
/// let coalescer: Coalescer<u32, &str, ()> = Coalescer::new();
/// let run: Run<'_, u32, &str, ()> = coalescer.run(&1, || async { Ok("one") });
/// assert_eq!(coalescer.in_flight(), 1, "registered before it is polled");
/// assert_eq!(run.await.into_result(), Ok("one"));
/// assert_eq!(coalescer.in_flight(), 0);
/// # });
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Run<'a, K, T, E, H = super::NoHooks, S = super::DefaultHashBuilder>
where
    H: Hooks<K, T, E>,
{
    pub(super) waiter: Borrowed<'a, K, T, E, H, S>,
}

impl<K, T: Clone, E: Clone, H: Hooks<K, T, E>, S> Future for Run<'_, K, T, E, H, S> {
    type Output = Outcome<T, E>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.waiter.poll(cx, "Run")
    }
}

impl<K: fmt::Debug, T, E, H: Hooks<K, T, E>, S> fmt::Debug for Run<'_, K, T, E, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run").field("waiter", &self.waiter).finish()
    }
}

/// The future returned by [`Coalescer::run_owned`]: [`Run`] holding an `Arc` of the
/// coalescer, so it is `'static` (and `Send` when the types are), to move into a spawned task.
///
/// # Panics
///
/// Polling it again after it completed panics.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use dike::coalesce::{Coalescer, RunOwned};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let coalescer: Arc<Coalescer<u32, u32, ()>> = Arc::new(Coalescer::new());
/// let run: RunOwned<u32, u32, ()> = coalescer.run_owned(&2, || async { Ok(4) });
/// let task = tokio::spawn(run);
/// assert_eq!(task.await.unwrap().into_result(), Ok(4));
/// # }
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct RunOwned<K, T, E, H = super::NoHooks, S = super::DefaultHashBuilder>
where
    H: Hooks<K, T, E>,
{
    pub(super) waiter: Owned<K, T, E, H, S>,
}

impl<K, T: Clone, E: Clone, H: Hooks<K, T, E>, S> Future for RunOwned<K, T, E, H, S> {
    type Output = Outcome<T, E>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.waiter.poll(cx, "RunOwned")
    }
}

impl<K: fmt::Debug, T, E, H: Hooks<K, T, E>, S> fmt::Debug for RunOwned<K, T, E, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOwned")
            .field("waiter", &self.waiter)
            .finish()
    }
}

/// The future of one [`Coalesceable::call`](super::Coalesceable::call): resolves to the
/// wrapped function's result, shared with every identical call in flight.
///
/// `'static`, like [`RunOwned`].
///
/// # Panics
///
/// Polling it again after it completed panics.
///
/// # Examples
///
/// ```
/// use dike::coalesce::{Call, coalesceable};
///
/// # smol::block_on(async {
/// let square = coalesceable(|x: u64| async move { Ok::<u64, ()>(x * x) });
/// let call: Call<u64, u64, ()> = square.call(12);
/// assert_eq!(call.await, Ok(144));
/// # });
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Call<K, T, E, H = super::NoHooks, S = super::DefaultHashBuilder>
where
    H: Hooks<K, T, E>,
{
    pub(super) waiter: Owned<K, T, E, H, S>,
}

impl<K, T: Clone, E: Clone, H: Hooks<K, T, E>, S> Future for Call<K, T, E, H, S> {
    type Output = Result<T, RunError<E>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.waiter.poll(cx, "Call").map(Outcome::into_result)
    }
}

impl<K: fmt::Debug, T, E, H: Hooks<K, T, E>, S> fmt::Debug for Call<K, T, E, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("waiter", &self.waiter)
            .finish()
    }
}
