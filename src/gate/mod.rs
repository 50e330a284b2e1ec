//! Concurrency limiting: a [`Gate`] lets at most `limit` calls run at once.
//!
//! The Rust counterpart of Python dike's `@limit_jobs` and aiometer's `max_at_once`, with both
//! modes side by side: [`try_enter`](Gate::try_enter) turns a call away at once with
//! [`TooManyCalls`] when the gate is full, [`enter`](Gate::enter) waits its turn in FIFO order,
//! and [`enter_timeout`](Gate::enter_timeout) waits at most so long. A bound on the number of
//! waiters ([`with_max_waiting`](Gate::with_max_waiting)) turns the excess away too.
//! [`limit_jobs`] wraps an async function so every call is admitted or rejected at once, like
//! the Python decorator.
//!
//! Entering yields a [`Permit`], an RAII guard: the call holds its slot until the permit is
//! dropped, on completion, error, panic or cancellation alike. There is no manual release to
//! forget.
//!
//! A gate needs no runtime: it works on tokio, smol, async-std, embassy and in the browser.
//! `try_enter` and permits need no heap at all, so a `static` gate runs on a microcontroller;
//! waiting needs the `alloc` feature.
//!
//! [`stats`](Gate::stats) counts permits in use, waiters, admissions, rejections and the peak
//! in use. With the `tracing` feature, every rejection also emits a `debug` event.
//!
//! # Interrupt safety
//!
//! Without `std`, the gate's lock is a [`critical-section`](https://docs.rs/critical-section)
//! mutex, so code that interrupts a gate operation may use the same gate: it waits for the
//! section to end (on a single core, the section masks interrupts) instead of spinning on a
//! lock held by the code it interrupted. The target must provide the critical-section
//! implementation, as every embassy application already does: for example `cortex-m`'s
//! `critical-section-single-core` feature, or the implementation of your HAL or RTOS.
//!
//! Then these are safe from an interrupt handler or a higher-priority executor, whatever the
//! interrupted code was doing with the same gate:
//!
//! - [`try_enter`](Gate::try_enter), [`limit`](Gate::limit): lock-free, never blocked.
//! - dropping a [`Permit`]: lock-free while nobody waits; otherwise a short section that hands
//!   the permit to the first waiter and then wakes it, from the handler (the executor's waker
//!   must be interrupt-safe, as embassy's are).
//! - [`stats`](Gate::stats) and [`set_limit`](Gate::set_limit): short sections (`set_limit`
//!   raising the limit over `n` waiters grants them in one section of O(n)).
//! - polling and dropping a waiting future ([`Enter`] and the others): short O(1) sections.
//!
//! Releasing a permit and dropping a waiter never allocate or free memory. Registering a
//! waiter (the first `Pending` poll) may allocate, and frees the memory a drained storm of
//! waiters left behind; `set_limit` allocates the list of waiters it wakes. From an interrupt
//! these need an interrupt-safe allocator (`embedded-alloc`'s takes a critical section).
//!
//! No user code ever runs inside a section: wakers are woken and dropped after it ends. With
//! `std`, the lock is `std::sync::Mutex`, which is not async-signal-safe: do not touch a gate
//! from a Unix signal handler. `tests/isr.rs` checks all of this on the host, with a signal
//! handler as the interrupt and a critical section that masks the signal: it drops permits
//! while the interrupted thread registers, polls and cancels waiters, calls `try_enter` and
//! reads `stats`, a hundred thousand times.
//!
//! # Examples
//!
//! ```
//! use dike::gate::Gate;
//!
//! static GATE: Gate = Gate::new(2);
//!
//! # smol::block_on(async {
//! let first = GATE.enter().await?;
//! let second = GATE.try_enter()?;
//! assert!(GATE.try_enter().is_err(), "a third concurrent call is turned away");
//! drop(first);
//! let third = GATE.try_enter()?;
//! assert_eq!(GATE.stats().in_use, 2);
//! # drop((second, third));
//! # Ok::<(), dike::error::TooManyCalls>(())
//! # }).unwrap();
//! ```

use core::fmt;
#[cfg(feature = "alloc")]
use core::time::Duration;

#[cfg(feature = "alloc")]
use alloc::sync::Arc;

use crate::error::{TooManyCalls, TooManyCallsKind};
#[cfg(feature = "alloc")]
use crate::time::Timer;

mod engine;
#[cfg(feature = "alloc")]
mod future;
#[cfg(feature = "alloc")]
mod limit_jobs;
mod queue;

#[cfg(feature = "alloc")]
pub use future::{Enter, EnterOwned, EnterTimeout, EnterTimeoutOwned};
#[cfg(feature = "alloc")]
pub(crate) use future::{EnterBy, PermitBy};
#[cfg(feature = "alloc")]
pub use limit_jobs::{LimitJobs, LimitedCall, limit_jobs};

use engine::Engine;

/// A concurrency limit: at most `limit` [`Permit`]s are held at any time.
///
/// (Right after [`set_limit`](Gate::set_limit) lowers the limit, permits already held stay
/// valid; no new one is given out until fewer than the new limit are held.)
///
/// Enter with [`try_enter`](Gate::try_enter) (never waits), [`enter`](Gate::enter) (waits
/// for a permit), or [`enter_timeout`](Gate::enter_timeout) /
/// [`enter_until`](Gate::enter_until) (waits up to a deadline read from any timer, see
/// [`time`](crate::time)). Each has an `_owned` variant for an `Arc<Gate>` whose permit is
/// `'static`, to move into a spawned task.
///
/// A gate is `const`-constructible, so it can be a `static`. It is `Send + Sync`; entering is
/// one atomic compare-and-swap when a permit is free and so is leaving when nobody waits.
///
/// A limit of zero closes the gate: every call is rejected at once, `try_enter` and the
/// waiting methods alike (a wait that nothing could ever end would be a hang, not a limit).
/// Waiters already queued when [`set_limit`](Gate::set_limit) lowers the limit to zero stay
/// queued and are served once it is raised again. Limits above [`Gate::MAX_LIMIT`] are
/// clamped to it.
///
/// # Fairness
///
/// Waiters are served strictly in the order they first waited (first poll that returned
/// `Pending`). A released permit is handed directly to the first waiter, never put back for
/// grabs, so a stream of `try_enter` calls cannot overtake or starve a waiter: while anyone
/// waits, `try_enter` is turned away. A waiter that is dropped leaves the queue without
/// disturbing the order of the others.
///
/// # Cancel safety
///
/// Every waiting future may be dropped at any time. A dropped waiter leaves the queue, in
/// constant time wherever it stands in it (a storm of dropped waiters costs time linear in
/// their number); if a permit had already been handed to it but it had not yet been polled to
/// see it, that permit passes on to the next waiter (or back to the gate). No permit is lost
/// or leaked.
///
/// # Examples
///
/// Reject mode and wait mode on one gate:
///
/// ```
/// use core::time::Duration;
/// use dike::error::TooManyCallsKind;
/// use dike::gate::Gate;
/// use dike::time::ManualTimer;
///
/// # smol::block_on(async {
/// let gate = Gate::new(1);
/// let timer = ManualTimer::new();
///
/// let held = gate.try_enter().expect("free");
/// let err = gate.try_enter().unwrap_err();
/// assert_eq!(err.kind(), TooManyCallsKind::Full);
///
/// // A bounded wait: the deadline passes while `held` is still held.
/// let wait = gate.enter_timeout(&timer, Duration::from_millis(10));
/// timer.advance(Duration::from_millis(10));
/// assert_eq!(wait.await.unwrap_err().kind(), TooManyCallsKind::TimedOut);
///
/// drop(held);
/// let _permit = gate.enter().await.expect("free again");
/// # });
/// ```
pub struct Gate {
    engine: Engine,
}

impl Gate {
    /// The largest limit a gate holds, 2^30 - 1 (over a billion concurrent calls); larger
    /// limits are clamped to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// assert_eq!(Gate::new(usize::MAX).limit(), Gate::MAX_LIMIT);
    /// ```
    pub const MAX_LIMIT: usize = engine::MAX_LIMIT;

    /// A gate admitting at most `limit` concurrent calls, with an unbounded wait queue.
    ///
    /// `limit` 0 admits nothing until [`set_limit`](Gate::set_limit) raises it. A limit above
    /// [`Gate::MAX_LIMIT`] is clamped to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// static GATE: Gate = Gate::new(4);
    /// assert_eq!(GATE.limit(), 4);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(limit: usize) -> Self {
        Self {
            engine: Engine::new(limit),
        }
    }

    /// A gate admitting at most `limit` concurrent calls (loom build: not `const`).
    #[cfg(loom)]
    pub fn new(limit: usize) -> Self {
        Self {
            engine: Engine::new(limit),
        }
    }

    /// Bounds the number of waiters: a call that would wait while `max_waiting` others already
    /// wait is turned away with [`TooManyCallsKind::QueueFull`].
    ///
    /// `max_waiting` 0 makes every waiting method reject at once when the gate is full, like
    /// [`try_enter`](Gate::try_enter). Waiters only: calls holding a permit are not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::error::TooManyCallsKind;
    /// use dike::gate::Gate;
    /// use futures_util::FutureExt;
    ///
    /// let gate = Gate::new(1).with_max_waiting(1);
    /// let _held = gate.try_enter().unwrap();
    /// let mut first = Box::pin(gate.enter());
    /// assert!((&mut first).now_or_never().is_none(), "waits");
    /// let second = gate.enter().now_or_never().expect("rejected at once");
    /// assert_eq!(second.unwrap_err().kind(), TooManyCallsKind::QueueFull);
    /// ```
    #[must_use]
    pub const fn with_max_waiting(mut self, max_waiting: usize) -> Self {
        self.engine.set_max_waiting(max_waiting);
        self
    }

    /// The current limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// assert_eq!(Gate::new(3).limit(), 3);
    /// ```
    #[inline]
    pub fn limit(&self) -> usize {
        self.engine.limit()
    }

    /// Changes the limit; every permit already held stays valid.
    ///
    /// Raising the limit hands the new permits to waiters first, in FIFO order, waking them.
    /// Lowering it below the permits in use takes effect as permits come back: no new call is
    /// admitted until fewer than the new limit are in use. A limit above [`Gate::MAX_LIMIT`]
    /// is clamped to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// let gate = Gate::new(2);
    /// let a = gate.try_enter().unwrap();
    /// let b = gate.try_enter().unwrap();
    /// gate.set_limit(1);
    /// drop(a);
    /// assert!(gate.try_enter().is_err(), "still one in use, the new limit");
    /// drop(b);
    /// assert!(gate.try_enter().is_ok());
    /// ```
    pub fn set_limit(&self, limit: usize) {
        self.engine.set_limit(limit);
    }

    /// Enters if a permit is free, without waiting.
    ///
    /// Turned away while waiters are queued, even if a permit is being handed over: see
    /// [Fairness](Gate#fairness).
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] of kind [`Full`](TooManyCallsKind::Full) when `limit` permits are in
    /// use (always, for a limit of zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// let gate = Gate::new(1);
    /// let permit = gate.try_enter()?;
    /// assert!(gate.try_enter().is_err());
    /// drop(permit);
    /// assert!(gate.try_enter().is_ok());
    /// # Ok::<(), dike::error::TooManyCalls>(())
    /// ```
    #[inline]
    pub fn try_enter(&self) -> Result<Permit<'_>, TooManyCalls> {
        if self.engine.try_acquire() {
            Ok(Permit::new(self))
        } else {
            Err(self.full())
        }
    }

    #[cold]
    fn full(&self) -> TooManyCalls {
        self.engine.note_rejected(TooManyCallsKind::Full);
        TooManyCalls::new(self.limit(), TooManyCallsKind::Full)
    }

    /// Waits for a permit, in FIFO order.
    ///
    /// Completes at once when a permit is free and nobody waits; otherwise joins the queue on
    /// its first poll and completes when a permit is handed to it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future gives up the place in the queue, and a permit handed to
    /// it but not yet observed passes on to the next waiter.
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] of kind [`QueueFull`](TooManyCallsKind::QueueFull) when the gate is full
    /// and [`with_max_waiting`](Gate::with_max_waiting) waiters already wait, and of kind
    /// [`Full`](TooManyCallsKind::Full) at once when the limit is zero. Never fails otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// # smol::block_on(async {
    /// let gate = Gate::new(1);
    /// let permit = gate.enter().await?;
    /// assert_eq!(gate.stats().in_use, 1);
    /// drop(permit);
    /// # Ok::<(), dike::error::TooManyCalls>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "alloc")]
    #[inline]
    pub fn enter(&self) -> Enter<'_> {
        Enter::new(self)
    }

    /// Waits for a permit for at most `timeout`, as measured by `timer`.
    ///
    /// The deadline is `timer.now() + timeout` (saturating), read when this is called. Same as
    /// [`enter_until`](Gate::enter_until) with that deadline.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`enter`](Gate::enter).
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] of kind [`TimedOut`](TooManyCallsKind::TimedOut) when the deadline
    /// passes first, or [`QueueFull`](TooManyCallsKind::QueueFull) or [`Full`](TooManyCallsKind::Full) as for `enter`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::gate::Gate;
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let gate = Gate::new(1);
    /// let timer = ManualTimer::new();
    /// let held = gate.try_enter().unwrap();
    /// let wait = gate.enter_timeout(&timer, Duration::from_secs(1));
    /// drop(held); // freed before the deadline
    /// assert!(wait.await.is_ok());
    /// # });
    /// ```
    #[cfg(feature = "alloc")]
    pub fn enter_timeout<T: Timer>(&self, timer: &T, timeout: Duration) -> EnterTimeout<'_, T> {
        EnterTimeout::new(self, timer.sleep(timeout))
    }

    /// Waits for a permit until `deadline`, as read by `timer`'s [`now`](Timer::now).
    ///
    /// If a permit is handed over at the instant the deadline passes, the permit wins: the
    /// future completes with it rather than losing it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`enter`](Gate::enter).
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] of kind [`TimedOut`](TooManyCallsKind::TimedOut) when the deadline
    /// passes first (at once for a deadline already past and a full gate), or
    /// [`QueueFull`](TooManyCallsKind::QueueFull) or [`Full`](TooManyCallsKind::Full) as for `enter`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::gate::Gate;
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let gate = Gate::new(1);
    /// let _held = gate.try_enter().unwrap();
    /// let timer = ManualTimer::new();
    /// let wait = gate.enter_until(&timer, Duration::from_secs(5));
    /// timer.advance(Duration::from_secs(5));
    /// assert!(wait.await.is_err());
    /// # });
    /// ```
    #[cfg(feature = "alloc")]
    pub fn enter_until<T: Timer>(&self, timer: &T, deadline: Duration) -> EnterTimeout<'_, T> {
        EnterTimeout::new(self, timer.sleep_until(deadline))
    }

    /// [`try_enter`](Gate::try_enter) for an `Arc<Gate>`: the permit holds the `Arc` and is
    /// `'static`.
    ///
    /// # Errors
    ///
    /// As [`try_enter`](Gate::try_enter).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    ///
    /// let gate = Arc::new(Gate::new(1));
    /// let permit = gate.try_enter_owned()?;
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert!(gate.try_enter().is_ok());
    /// # Ok::<(), dike::error::TooManyCalls>(())
    /// ```
    #[cfg(feature = "alloc")]
    pub fn try_enter_owned(self: &Arc<Self>) -> Result<OwnedPermit, TooManyCalls> {
        if self.engine.try_acquire() {
            Ok(OwnedPermit::new(Arc::clone(self)))
        } else {
            Err(self.full())
        }
    }

    /// [`enter`](Gate::enter) for an `Arc<Gate>`: the future and its permit are `'static`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`enter`](Gate::enter).
    ///
    /// # Errors
    ///
    /// As [`enter`](Gate::enter).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), dike::error::TooManyCalls> {
    /// let gate = Arc::new(Gate::new(2));
    /// let permit = gate.enter_owned().await?;
    /// tokio::spawn(async move {
    ///     let _permit = permit; // released when the task ends
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(gate.stats().in_use, 0);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "alloc")]
    #[inline]
    pub fn enter_owned(self: &Arc<Self>) -> EnterOwned {
        EnterOwned::new(Arc::clone(self))
    }

    /// [`enter_timeout`](Gate::enter_timeout) for an `Arc<Gate>`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`enter`](Gate::enter).
    ///
    /// # Errors
    ///
    /// As [`enter_timeout`](Gate::enter_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let gate = Arc::new(Gate::new(1));
    /// let timer = ManualTimer::new();
    /// let permit = gate.enter_timeout_owned(&timer, Duration::from_secs(1)).await?;
    /// drop(permit);
    /// # Ok::<(), dike::error::TooManyCalls>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "alloc")]
    pub fn enter_timeout_owned<T: Timer>(
        self: &Arc<Self>,
        timer: &T,
        timeout: Duration,
    ) -> EnterTimeoutOwned<T> {
        EnterTimeoutOwned::new(Arc::clone(self), timer.sleep(timeout))
    }

    /// [`enter_until`](Gate::enter_until) for an `Arc<Gate>`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`enter`](Gate::enter).
    ///
    /// # Errors
    ///
    /// As [`enter_until`](Gate::enter_until).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let gate = Arc::new(Gate::new(1));
    /// let _held = gate.try_enter().unwrap();
    /// let timer = ManualTimer::new();
    /// timer.advance(Duration::from_secs(2));
    /// // The deadline is already past: turned away at once.
    /// assert!(gate.enter_until_owned(&timer, Duration::from_secs(1)).await.is_err());
    /// # });
    /// ```
    #[cfg(feature = "alloc")]
    pub fn enter_until_owned<T: Timer>(
        self: &Arc<Self>,
        timer: &T,
        deadline: Duration,
    ) -> EnterTimeoutOwned<T> {
        EnterTimeoutOwned::new(Arc::clone(self), timer.sleep_until(deadline))
    }

    /// A snapshot of the gate's counters.
    ///
    /// Taken under the gate's lock, so `in_use` and `waiting` are consistent with each other;
    /// calls racing with it may or may not be counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// let gate = Gate::new(1);
    /// let permit = gate.try_enter().unwrap();
    /// let _ = gate.try_enter();
    /// let stats = gate.stats();
    /// assert_eq!((stats.in_use, stats.admitted, stats.rejected), (1, 1, 1));
    /// # drop(permit);
    /// ```
    pub fn stats(&self) -> GateStats {
        let s = self.engine.snapshot();
        GateStats {
            limit: s.limit,
            in_use: s.in_use,
            waiting: s.waiting,
            admitted: s.admitted,
            rejected: s.rejected,
            peak_in_use: s.peak,
        }
    }
}

impl Gate {
    /// Crate-internal: whether a permit is free right now, without the lock (a hint). For a
    /// gate of one used as a FIFO line, `true` means nobody is in the line.
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn has_free_permit(&self) -> bool {
        self.engine.has_free_permit()
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stats();
        f.debug_struct("Gate")
            .field("limit", &s.limit)
            .field("in_use", &s.in_use)
            .field("waiting", &s.waiting)
            .finish_non_exhaustive()
    }
}

/// Counters of a [`Gate`], from [`Gate::stats`].
///
/// `admitted` and `rejected` count since the gate was created and wrap around at
/// `usize::MAX` (on 32-bit targets, after about four billion calls).
///
/// # Examples
///
/// ```
/// use dike::gate::Gate;
///
/// let gate = Gate::new(2);
/// let a = gate.try_enter().unwrap();
/// let b = gate.try_enter().unwrap();
/// drop((a, b));
/// let stats = gate.stats();
/// assert_eq!(stats.in_use, 0);
/// assert_eq!(stats.peak_in_use, 2);
/// assert_eq!(stats.admitted, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GateStats {
    /// The limit at the time of the snapshot.
    pub limit: usize,
    /// Permits held, including one handed to a waiter that has not yet been polled to see it.
    /// May exceed `limit` right after [`Gate::set_limit`] lowered it.
    pub in_use: usize,
    /// Waiters queued for a permit.
    pub waiting: usize,
    /// Calls that got a permit.
    pub admitted: usize,
    /// Calls turned away with [`TooManyCalls`] (full, queue full or timed out).
    pub rejected: usize,
    /// The most permits ever in use at once.
    pub peak_in_use: usize,
}

/// Proof of entry into a [`Gate`]: the slot is held until this is dropped.
///
/// # Examples
///
/// ```
/// use dike::gate::Gate;
///
/// let gate = Gate::new(1);
/// {
///     let _permit = gate.try_enter().unwrap();
///     assert!(gate.try_enter().is_err());
/// } // released here
/// assert!(gate.try_enter().is_ok());
/// ```
#[clippy::has_significant_drop]
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit<'a> {
    gate: &'a Gate,
}

impl<'a> Permit<'a> {
    #[inline]
    fn new(gate: &'a Gate) -> Self {
        Self { gate }
    }

    /// The gate this permit belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::Gate;
    ///
    /// let gate = Gate::new(1);
    /// let permit = gate.try_enter().unwrap();
    /// assert!(core::ptr::eq(permit.gate(), &gate));
    /// ```
    pub fn gate(&self) -> &'a Gate {
        self.gate
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.gate.engine.release();
    }
}

/// Shows the gate it belongs to: `Permit { gate: Gate { limit: 1, in_use: 1, waiting: 0, .. } }`.
impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("gate", self.gate).finish()
    }
}

/// Proof of entry into an `Arc<Gate>`, from the `_owned` methods: `'static`, so it can move
/// into a spawned task.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use dike::gate::Gate;
///
/// let gate = Arc::new(Gate::new(1));
/// let permit = gate.try_enter_owned().unwrap();
/// assert!(Arc::ptr_eq(permit.gate(), &gate));
/// drop(permit);
/// assert_eq!(gate.stats().in_use, 0);
/// ```
#[cfg(feature = "alloc")]
#[clippy::has_significant_drop]
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedPermit {
    gate: Arc<Gate>,
}

#[cfg(feature = "alloc")]
impl OwnedPermit {
    #[inline]
    fn new(gate: Arc<Gate>) -> Self {
        Self { gate }
    }

    /// The gate this permit belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    ///
    /// let gate = Arc::new(Gate::new(1));
    /// let permit = gate.try_enter_owned().unwrap();
    /// assert_eq!(permit.gate().limit(), 1);
    /// ```
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }
}

#[cfg(feature = "alloc")]
impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        self.gate.engine.release();
    }
}

#[cfg(feature = "alloc")]
/// Shows the gate it belongs to, as [`Permit`]'s does.
impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("gate", &*self.gate)
            .finish()
    }
}

#[cfg(all(test, feature = "std"))]
mod tests;
