//! # Implementation notes
//!
//! The engine is a counting semaphore with a lock-free fast path and a locked FIFO queue.
//!
//! ## State
//!
//! - `state: AtomicUsize` holds `available << 1 | SLOW`. `available` is the number of free
//!   permits. `SLOW` is set exactly when a release must take the lock: some waiter has not been
//!   granted a permit yet, or the limit was lowered below the permits in use (`debt > 0`).
//!   `SLOW` is only ever set or cleared with the lock held.
//! - `slow: Mutex<Slow>` holds the waiter queue, a `VecDeque` of `(id, waker)` sorted by id
//!   (ids only grow and waiters join at the back), the number `granted` of entries at the
//!   front that already own a permit, and `debt`, the permits to retire before any is free
//!   again after the limit was lowered.
//!
//! Grants are made in queue order, so the granted entries always form a prefix of the queue:
//! `queue[..granted]` own a permit they have not observed yet, `queue[granted..]` wait.
//!
//! ## Invariant
//!
//! While a waiter is not granted, `available == 0`. A waiter only registers after seeing
//! `available == 0` and setting `SLOW` in the same compare-and-swap; afterwards the fast
//! release (which only succeeds while `SLOW` is clear) cannot add a permit, and every locked
//! release or limit increase hands permits to waiters before adding any to `available`. So a
//! barging `try_enter` never takes a permit a waiter is owed, and the queue is strict FIFO.
//!
//! ## Transitions
//!
//! - **acquire (fast)**: CAS `available - 1` while `available > 0`. No lock.
//! - **release (fast)**: CAS `available + 1` while `SLOW` is clear. No lock.
//! - **release (slow)**, with the lock: pay one unit of `debt`; else grant the first waiting
//!   entry (`granted += 1`) and wake it; else add the permit to `available` and clear `SLOW`.
//! - **register**, with the lock: re-check `state` (a permit released between the failed fast
//!   path and the lock is taken here, so no wakeup is lost); else refuse if the number of
//!   waiting entries reached `max_waiting`; else set `SLOW` and push `(id, waker)`.
//! - **poll of a registered waiter**, with the lock: if its entry is in the granted prefix,
//!   remove it and complete; else refresh its waker.
//! - **drop of a registered waiter**, with the lock: remove its entry; if it was granted, the
//!   permit it owned goes through the slow release, to the next waiter.
//! - **set_limit**: raising pays debt first, then grants waiters, then adds to `available`;
//!   lowering takes what it can from `available` and records the rest as `debt`.
//!
//! ## Who wakes whom
//!
//! Exactly one waker per permit handed over: a slow release or a dropped granted waiter wakes
//! the one waiter it granted; `set_limit` wakes every waiter it granted. Wakers are called
//! after the lock is released. Nothing else wakes a waiter.

#[cfg(feature = "alloc")]
use alloc::collections::VecDeque;
#[cfg(feature = "alloc")]
use alloc::vec::Vec;
#[cfg(feature = "alloc")]
use core::task::{Context, Poll, Waker};

#[cfg(feature = "alloc")]
use crate::error::TooManyCallsKind;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// The `SLOW` flag in `state`.
const SLOW: usize = 1;
/// One permit in `state`.
const ONE: usize = 2;
/// The largest limit a gate accepts; larger limits are clamped to it.
pub(crate) const MAX_LIMIT: usize = usize::MAX >> 2;

/// The counting semaphore behind [`Gate`](super::Gate).
pub(crate) struct Engine {
    /// `available << 1 | SLOW`.
    state: AtomicUsize,
    /// The current limit; written with the lock held.
    limit: AtomicUsize,
    /// Waiters beyond this many are refused.
    max_waiting: usize,
    admitted: AtomicUsize,
    rejected: AtomicUsize,
    peak: AtomicUsize,
    slow: Mutex<Slow>,
}

/// The part of the engine behind the lock.
struct Slow {
    /// Waiters in arrival order; ids strictly increase from front to back.
    #[cfg(feature = "alloc")]
    queue: VecDeque<Waiter>,
    /// `queue[..granted]` own a permit they have not observed yet.
    #[cfg(feature = "alloc")]
    granted: usize,
    #[cfg(feature = "alloc")]
    next_id: u64,
    /// Permits to retire, on release, before any becomes available again.
    debt: usize,
}

#[cfg(feature = "alloc")]
struct Waiter {
    id: u64,
    waker: Option<Waker>,
}

impl Slow {
    /// Entries still waiting for a permit.
    fn waiting(&self) -> usize {
        #[cfg(feature = "alloc")]
        {
            self.queue.len() - self.granted
        }
        #[cfg(not(feature = "alloc"))]
        {
            0
        }
    }

    /// Whether releases must take the lock.
    fn needs_slow(&self) -> bool {
        self.debt > 0 || self.waiting() > 0
    }
}

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) limit: usize,
    pub(crate) in_use: usize,
    pub(crate) waiting: usize,
    pub(crate) admitted: usize,
    pub(crate) rejected: usize,
    pub(crate) peak: usize,
}

/// A waiter's registration: `None` until it joins the queue, and again once it leaves it.
#[cfg(feature = "alloc")]
pub(crate) type Slot = Option<u64>;

macro_rules! engine_new {
    ($limit:expr) => {{
        let limit = if $limit > MAX_LIMIT {
            MAX_LIMIT
        } else {
            $limit
        };
        Engine {
            state: AtomicUsize::new(limit * ONE),
            limit: AtomicUsize::new(limit),
            max_waiting: usize::MAX,
            admitted: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            slow: Mutex::new(Slow {
                #[cfg(feature = "alloc")]
                queue: VecDeque::new(),
                #[cfg(feature = "alloc")]
                granted: 0,
                #[cfg(feature = "alloc")]
                next_id: 0,
                debt: 0,
            }),
        }
    }};
}

impl Engine {
    /// An engine with `limit` free permits (clamped to [`MAX_LIMIT`]).
    #[cfg(not(loom))]
    pub(crate) const fn new(limit: usize) -> Self {
        engine_new!(limit)
    }

    /// An engine with `limit` free permits (clamped to [`MAX_LIMIT`]).
    #[cfg(loom)]
    pub(crate) fn new(limit: usize) -> Self {
        engine_new!(limit)
    }

    pub(crate) const fn set_max_waiting(&mut self, max_waiting: usize) {
        self.max_waiting = max_waiting;
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Takes a free permit without waiting.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s < ONE {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, s - ONE, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.note_admitted(s - ONE);
                    return true;
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Counts an admission that left `state` at `after`.
    #[inline]
    fn note_admitted(&self, after: usize) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
        // `available > 0` before the admission, so there was no debt: in use is exact up to a
        // concurrent `set_limit`. A load first keeps the common case free of a second RMW.
        let in_use = self.limit().saturating_sub(after / ONE);
        if in_use > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(in_use, Ordering::Relaxed);
        }
    }

    /// Counts a call turned away.
    #[inline]
    pub(crate) fn note_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns one permit.
    #[inline]
    pub(crate) fn release(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & SLOW != 0 {
                self.release_slow();
                return;
            }
            match self
                .state
                .compare_exchange_weak(s, s + ONE, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
    }

    #[cold]
    fn release_slow(&self) {
        let mut slow = self.slow.lock();
        #[cfg(feature = "alloc")]
        let waker = self.release_locked(&mut slow);
        #[cfg(not(feature = "alloc"))]
        self.release_locked(&mut slow);
        drop(slow);
        #[cfg(feature = "alloc")]
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Returns one permit with the lock held; returns the waker of the waiter it was handed to.
    #[cfg(feature = "alloc")]
    fn release_locked(&self, slow: &mut Slow) -> Option<Waker> {
        if slow.debt > 0 {
            slow.debt -= 1;
            self.sync_slow_flag(slow);
            return None;
        }
        if slow.waiting() > 0 {
            let waker = slow.queue[slow.granted].waker.take();
            slow.granted += 1;
            self.sync_slow_flag(slow);
            return waker;
        }
        self.add_available(1);
        None
    }

    /// Returns one permit with the lock held.
    #[cfg(not(feature = "alloc"))]
    fn release_locked(&self, slow: &mut Slow) {
        if slow.debt > 0 {
            slow.debt -= 1;
            self.sync_slow_flag(slow);
            return;
        }
        self.add_available(1);
    }

    /// Adds `n` free permits and clears `SLOW`; only with the lock held and nothing owed.
    fn add_available(&self, n: usize) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let new = (s & !SLOW) + n * ONE;
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// Sets or clears `SLOW` to match the locked state.
    fn sync_slow_flag(&self, slow: &Slow) {
        if slow.needs_slow() {
            self.state.fetch_or(SLOW, Ordering::AcqRel);
        } else {
            self.state.fetch_and(!SLOW, Ordering::AcqRel);
        }
    }

    /// Changes the limit; held permits stay valid. Wakes the waiters it grants.
    pub(crate) fn set_limit(&self, limit: usize) {
        let limit = limit.min(MAX_LIMIT);
        let mut slow = self.slow.lock();
        let old = self.limit();
        self.limit.store(limit, Ordering::Relaxed);
        #[cfg(feature = "alloc")]
        let mut wakers = Vec::new();
        if limit > old {
            let mut add = limit - old;
            let paid = add.min(slow.debt);
            slow.debt -= paid;
            add -= paid;
            #[cfg(feature = "alloc")]
            while add > 0 && slow.waiting() > 0 {
                let granted = slow.granted;
                if let Some(waker) = slow.queue[granted].waker.take() {
                    wakers.push(waker);
                }
                slow.granted += 1;
                add -= 1;
            }
            if add > 0 {
                self.add_available(add);
            } else {
                self.sync_slow_flag(&slow);
            }
            // Granting waiters raised the permits in use.
            let in_use =
                (limit + slow.debt).saturating_sub(self.state.load(Ordering::Acquire) / ONE);
            self.peak.fetch_max(in_use, Ordering::Relaxed);
        } else if limit < old {
            let mut sub = old - limit;
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                let take = sub.min(s / ONE);
                match self.state.compare_exchange_weak(
                    s,
                    s - take * ONE,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        sub -= take;
                        break;
                    }
                    Err(actual) => s = actual,
                }
            }
            slow.debt += sub;
            self.sync_slow_flag(&slow);
        }
        drop(slow);
        #[cfg(feature = "alloc")]
        for waker in wakers {
            waker.wake();
        }
    }

    /// Drives a waiting acquire: `Ready(Ok)` once it owns a permit.
    ///
    /// `slot` is the waiter's registration; it is `None` again when this returns `Ready`.
    #[cfg(feature = "alloc")]
    pub(crate) fn poll_acquire(
        &self,
        slot: &mut Slot,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TooManyCallsKind>> {
        let Some(id) = *slot else {
            if self.try_acquire() {
                return Poll::Ready(Ok(()));
            }
            return self.register(slot, cx);
        };
        let mut slow = self.slow.lock();
        let Ok(index) = slow.queue.binary_search_by_key(&id, |w| w.id) else {
            // Unreachable while the engine upholds its invariants: an entry leaves the queue
            // only through its own waiter. Recover as if never registered.
            drop(slow);
            *slot = None;
            return self.poll_acquire(slot, cx);
        };
        if index < slow.granted {
            slow.queue.remove(index);
            slow.granted -= 1;
            drop(slow);
            *slot = None;
            self.admitted.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        let entry = &mut slow.queue[index];
        match &mut entry.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => entry.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    #[cfg(feature = "alloc")]
    fn register(
        &self,
        slot: &mut Slot,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TooManyCallsKind>> {
        let mut slow = self.slow.lock();
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s >= ONE {
                // A permit came back after the fast path failed: take it.
                match self.state.compare_exchange_weak(
                    s,
                    s - ONE,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        drop(slow);
                        self.note_admitted(s - ONE);
                        return Poll::Ready(Ok(()));
                    }
                    Err(actual) => s = actual,
                }
            } else if slow.waiting() >= self.max_waiting {
                drop(slow);
                self.note_rejected();
                return Poll::Ready(Err(TooManyCallsKind::QueueFull));
            } else if s & SLOW != 0 {
                break;
            } else {
                match self.state.compare_exchange_weak(
                    s,
                    s | SLOW,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => s = actual,
                }
            }
        }
        let id = slow.next_id;
        slow.next_id += 1;
        slow.queue.push_back(Waiter {
            id,
            waker: Some(cx.waker().clone()),
        });
        *slot = Some(id);
        Poll::Pending
    }

    /// Takes a registered waiter out of the queue. Returns `true` if it had been granted a
    /// permit, which the caller now owns.
    #[cfg(feature = "alloc")]
    pub(crate) fn withdraw(&self, slot: &mut Slot) -> bool {
        let Some(id) = slot.take() else {
            return false;
        };
        let mut slow = self.slow.lock();
        let granted = Self::remove_locked(&mut slow, id);
        if granted {
            self.admitted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.sync_slow_flag(&slow);
        }
        granted
    }

    /// Cancels a registered waiter: its entry leaves the queue, and a permit it had been
    /// granted passes to the next waiter.
    #[cfg(feature = "alloc")]
    pub(crate) fn cancel(&self, slot: &mut Slot) {
        let Some(id) = slot.take() else {
            return;
        };
        let mut slow = self.slow.lock();
        let waker = if Self::remove_locked(&mut slow, id) {
            self.release_locked(&mut slow)
        } else {
            self.sync_slow_flag(&slow);
            None
        };
        drop(slow);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Removes entry `id`; returns whether it was granted.
    #[cfg(feature = "alloc")]
    fn remove_locked(slow: &mut Slow, id: u64) -> bool {
        let Ok(index) = slow.queue.binary_search_by_key(&id, |w| w.id) else {
            return false;
        };
        slow.queue.remove(index);
        if index < slow.granted {
            slow.granted -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let slow = self.slow.lock();
        let limit = self.limit();
        let available = self.state.load(Ordering::Acquire) / ONE;
        Snapshot {
            limit,
            in_use: (limit + slow.debt).saturating_sub(available),
            waiting: slow.waiting(),
            admitted: self.admitted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
        }
    }
}
