//! # Implementation notes
//!
//! The engine is a counting semaphore with a lock-free fast path and a locked FIFO queue.
//!
//! ## State
//!
//! - `state: AtomicUsize` holds `admitted << 32 | available << 1 | SLOW` on 64-bit targets
//!   and `available << 1 | SLOW` elsewhere. `available` is the number of free permits (at most
//!   2^30 - 1). The top half counts fast-path admissions modulo 2^32, so `try_enter` counts
//!   itself in the same compare-and-swap that takes the permit; a wrap of that half carries into
//!   `admitted_carry`. Slow-path admissions, and all of them on 32-bit targets, go to
//!   `admitted`. `SLOW` is set exactly when a release must take the lock: some waiter is queued,
//!   or the limit was lowered below the permits in use (`debt > 0`). `SLOW` is only ever set or
//!   cleared with the lock held (`Slow::slow_flag` mirrors it there, to skip redundant writes).
//! - `slow: Mutex<Slow>` holds the queue of waiting entries, a `VecDeque` of `(id, waker)`
//!   sorted by id (ids are `u64`, only grow, and waiters join at the back), and `debt`, the
//!   permits to retire before any is free again after the limit was lowered.
//! - `first_waiting: AtomicU64` mirrors the id of the queue's front entry (or the next id to
//!   hand out when the queue is empty). Grants pop entries off the front in order, so a
//!   registered waiter whose id is below it has been granted a permit: it can see so without
//!   the lock. On targets without 64-bit atomics the mirror is absent and the waiter takes the
//!   lock to compare against the queue itself.
//!
//! ## Invariant
//!
//! While a waiter is queued, `available == 0`. A waiter only registers after seeing
//! `available == 0` and setting `SLOW` in the same compare-and-swap, with the lock held;
//! afterwards the fast release (which only succeeds while `SLOW` is clear) cannot add a permit,
//! and every locked release or limit increase hands permits to waiters before adding any to
//! `available`. So a barging `try_enter` never takes a permit a waiter is owed, and the queue
//! is strict FIFO.
//!
//! ## Transitions
//!
//! - **acquire (fast)**: CAS `available - 1` while `available > 0`. No lock.
//! - **release (fast)**: CAS `available + 1` while `SLOW` is clear. No lock.
//! - **release (slow)**, with the lock: pay one unit of `debt`; else pop the front waiter,
//!   publish the new `first_waiting` (release ordering: the permit travels with it) and wake
//!   it; else add the permit to `available` and clear `SLOW`.
//! - **register**, with the lock: re-check `state` (a permit released between the failed fast
//!   path and the lock is taken here, so no wakeup is lost); else refuse if the limit is 0 (a
//!   closed gate: nothing would ever be handed over) or `max_waiting` entries wait; else set
//!   `SLOW` and push `(id, waker)`.
//! - **poll of a registered waiter**: `id < first_waiting` means granted: complete. Otherwise,
//!   with the lock, check again and refresh the stored waker.
//! - **drop of a registered waiter**, with the lock: if granted, the permit it owned goes
//!   through the slow release, to the next waiter; else its entry leaves the queue.
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

use crate::error::TooManyCallsKind;
use crate::sync::Mutex;
#[cfg(all(feature = "alloc", target_has_atomic = "64"))]
use crate::sync::atomic::AtomicU64;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// The `SLOW` flag in `state`.
const SLOW: usize = 1;
/// One permit in `state`.
const ONE: usize = 2;
/// The bits of `state` holding `available` and `SLOW`.
const AVAILABLE_MASK: usize = (1 << 31) - 1;
/// One fast-path admission in `state` (64-bit targets: the top half counts them).
#[cfg(target_pointer_width = "64")]
const ADMIT: usize = 1 << 32;
#[cfg(not(target_pointer_width = "64"))]
const ADMIT: usize = 0;
/// The largest limit a gate accepts; larger limits are clamped to it.
pub(crate) const MAX_LIMIT: usize = (1 << 30) - 1;

/// Free permits in a `state` value.
#[inline]
const fn available(state: usize) -> usize {
    (state & AVAILABLE_MASK) / ONE
}

/// The counting semaphore behind [`Gate`](super::Gate).
pub(crate) struct Engine {
    /// `available << 1 | SLOW`.
    state: AtomicUsize,
    /// The current limit; written with the lock held.
    limit: AtomicUsize,
    /// Waiters beyond this many are refused.
    max_waiting: usize,
    /// Admissions not counted in `state`.
    admitted: AtomicUsize,
    /// Wraps of the admission count in `state`'s top half.
    admitted_carry: AtomicUsize,
    rejected: AtomicUsize,
    peak: AtomicUsize,
    /// Mirror of [`Slow::first_waiting`]: registered ids below it were granted.
    #[cfg(all(feature = "alloc", target_has_atomic = "64"))]
    first_waiting: AtomicU64,
    slow: Mutex<Slow>,
}

/// The part of the engine behind the lock.
struct Slow {
    /// Waiting entries in arrival order; ids strictly increase from front to back.
    #[cfg(feature = "alloc")]
    queue: VecDeque<Waiter>,
    #[cfg(feature = "alloc")]
    next_id: u64,
    /// Permits to retire, on release, before any becomes available again.
    debt: usize,
    /// Whether `SLOW` is set in `state`.
    slow_flag: bool,
}

#[cfg(feature = "alloc")]
struct Waiter {
    id: u64,
    waker: Option<Waker>,
}

impl Slow {
    /// Entries waiting for a permit.
    fn waiting(&self) -> usize {
        #[cfg(feature = "alloc")]
        {
            self.queue.len()
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

    /// The id of the first waiting entry, or the next id if none waits. Registered ids below
    /// it have been granted.
    #[cfg(feature = "alloc")]
    fn first_waiting(&self) -> u64 {
        self.queue.front().map_or(self.next_id, |w| w.id)
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

/// What [`Engine::set_limit_locked`] hands back to wake: the granted waiters' wakers.
#[cfg(feature = "alloc")]
type Wakers = Vec<Waker>;
#[cfg(not(feature = "alloc"))]
type Wakers = ();

/// The outcome of a registration attempt, decided with the lock held.
#[cfg(feature = "alloc")]
enum Registered {
    /// A permit was free after all; `state` after taking it.
    Admitted(usize),
    /// Turned away.
    Refused(TooManyCallsKind),
    /// Queued under this id.
    Queued(u64),
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
            admitted_carry: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            #[cfg(all(feature = "alloc", target_has_atomic = "64"))]
            first_waiting: AtomicU64::new(0),
            slow: Mutex::new(Slow {
                #[cfg(feature = "alloc")]
                queue: VecDeque::new(),
                #[cfg(feature = "alloc")]
                next_id: 0,
                debt: 0,
                slow_flag: false,
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

    #[inline]
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Takes a free permit without waiting.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & AVAILABLE_MASK < ONE {
                return false;
            }
            let new = (s - ONE).wrapping_add(ADMIT);
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.note_admitted(new);
                    return true;
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Completes the count of a fast admission that left `state` at `after` (counted in
    /// `after` itself on 64-bit targets) and tracks the peak.
    #[inline]
    fn note_admitted(&self, after: usize) {
        if ADMIT == 0 {
            self.admitted.fetch_add(1, Ordering::Relaxed);
        } else if after < ADMIT {
            // The count in the top half wrapped to zero.
            self.admitted_carry.fetch_add(1, Ordering::Relaxed);
        }
        // `available > 0` before the admission, so there was no debt: in use is exact up to a
        // concurrent `set_limit`. A load first keeps the common case free of a second RMW.
        let in_use = self.limit().saturating_sub(available(after));
        if in_use > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(in_use, Ordering::Relaxed);
        }
    }

    /// Counts a call turned away (and, with `tracing`, emits a debug event).
    #[cold]
    pub(crate) fn note_rejected(&self, kind: TooManyCallsKind) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        tracing::debug!(limit = self.limit(), ?kind, "gate: too many calls");
        #[cfg(not(feature = "tracing"))]
        let _ = kind;
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

    #[inline(never)]
    fn release_slow(&self) {
        #[cfg(feature = "alloc")]
        if let Some(waker) = self.slow.with(|slow| self.release_locked(slow)) {
            waker.wake();
        }
        #[cfg(not(feature = "alloc"))]
        self.slow.with(|slow| self.release_locked(slow));
    }

    /// Returns one permit with the lock held; returns the waker of the waiter it was handed to.
    #[cfg(feature = "alloc")]
    fn release_locked(&self, slow: &mut Slow) -> Option<Waker> {
        if slow.debt > 0 {
            slow.debt -= 1;
            self.sync_slow_flag(slow);
            return None;
        }
        if let Some(waiter) = slow.queue.pop_front() {
            self.publish_first_waiting(slow);
            self.sync_slow_flag(slow);
            return waiter.waker;
        }
        self.add_available(slow, 1);
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
        self.add_available(slow, 1);
    }

    /// Adds `n` free permits and clears `SLOW`; only with the lock held and nothing owed.
    fn add_available(&self, slow: &mut Slow, n: usize) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let new = (s & !SLOW) + n * ONE;
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        slow.slow_flag = false;
    }

    /// Sets or clears `SLOW` to match the locked state.
    fn sync_slow_flag(&self, slow: &mut Slow) {
        let needed = slow.needs_slow();
        if needed != slow.slow_flag {
            if needed {
                self.state.fetch_or(SLOW, Ordering::AcqRel);
            } else {
                self.state.fetch_and(!SLOW, Ordering::AcqRel);
            }
            slow.slow_flag = needed;
        }
    }

    /// Publishes the queue's new front after it changed (lock held).
    #[cfg(feature = "alloc")]
    #[inline]
    fn publish_first_waiting(&self, slow: &Slow) {
        #[cfg(target_has_atomic = "64")]
        self.first_waiting
            .store(slow.first_waiting(), Ordering::Release);
        #[cfg(not(target_has_atomic = "64"))]
        let _ = slow;
    }

    /// Changes the limit; held permits stay valid. Wakes the waiters it grants.
    pub(crate) fn set_limit(&self, limit: usize) {
        let limit = limit.min(MAX_LIMIT);
        #[cfg(feature = "alloc")]
        let wakers = self.slow.with(|slow| self.set_limit_locked(slow, limit));
        #[cfg(not(feature = "alloc"))]
        self.slow.with(|slow| self.set_limit_locked(slow, limit));
        #[cfg(feature = "alloc")]
        for waker in wakers {
            waker.wake();
        }
    }

    /// [`set_limit`](Self::set_limit) with the lock held; returns the wakers of the waiters
    /// it granted.
    fn set_limit_locked(&self, slow: &mut Slow, limit: usize) -> Wakers {
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
            {
                let grant = add.min(slow.queue.len());
                wakers.extend(slow.queue.drain(..grant).filter_map(|w| w.waker));
                add -= grant;
                self.publish_first_waiting(slow);
            }
            if add > 0 {
                self.add_available(slow, add);
            } else {
                self.sync_slow_flag(slow);
            }
            // Granting waiters raised the permits in use.
            let free = available(self.state.load(Ordering::Acquire));
            let in_use = (limit + slow.debt).saturating_sub(free);
            self.peak.fetch_max(in_use, Ordering::Relaxed);
        } else if limit < old {
            // Take what is free and, if that is not enough, set `SLOW` in the same
            // compare-and-swap: from then on a release takes the lock and pays the debt, so a
            // permit dropped meanwhile can never go back to `available` while debt is owed.
            let sub = old - limit;
            let mut s = self.state.load(Ordering::Relaxed);
            let owed = loop {
                let take = sub.min(available(s));
                let owed = sub - take;
                let new = if owed > 0 {
                    (s - take * ONE) | SLOW
                } else {
                    s - take * ONE
                };
                match self.state.compare_exchange_weak(
                    s,
                    new,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break owed,
                    Err(actual) => s = actual,
                }
            };
            if owed > 0 {
                slow.debt += owed;
                slow.slow_flag = true;
            }
        }
        #[cfg(feature = "alloc")]
        wakers
    }

    /// Drives a waiting acquire: `Ready(Ok)` once it owns a permit.
    ///
    /// `slot` is the waiter's registration; it is `None` again when this returns `Ready`.
    #[cfg(feature = "alloc")]
    #[inline]
    pub(crate) fn poll_acquire(
        &self,
        slot: &mut Slot,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TooManyCallsKind>> {
        match *slot {
            None if self.try_acquire() => Poll::Ready(Ok(())),
            None => self.register(slot, cx),
            Some(id) => self.poll_registered(slot, id, cx),
        }
    }

    #[cfg(feature = "alloc")]
    fn poll_registered(
        &self,
        slot: &mut Slot,
        id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TooManyCallsKind>> {
        #[cfg(target_has_atomic = "64")]
        if id < self.first_waiting.load(Ordering::Acquire) {
            *slot = None;
            self.admitted.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        let polled = self.slow.with(|slow| {
            if id < slow.first_waiting() {
                return Err(());
            }
            // Not granted, so still queued: entries leave the queue only when granted or
            // withdrawn by their own waiter, which clears its slot.
            let mut stale = None;
            if let Ok(index) = slow.queue.binary_search_by_key(&id, |w| w.id) {
                let entry = &mut slow.queue[index];
                if !entry
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    stale = entry.waker.replace(cx.waker().clone());
                }
            }
            Ok(stale)
        });
        match polled {
            Err(()) => {
                *slot = None;
                self.admitted.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Ok(()))
            }
            Ok(stale) => {
                // A waker may run arbitrary code when dropped: never with the lock held.
                drop(stale);
                Poll::Pending
            }
        }
    }

    #[cfg(feature = "alloc")]
    fn register(
        &self,
        slot: &mut Slot,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TooManyCallsKind>> {
        let outcome = self.slow.with(|slow| {
            let mut s = self.state.load(Ordering::Acquire);
            loop {
                if s & AVAILABLE_MASK >= ONE {
                    // A permit came back after the fast path failed: take it.
                    let new = (s - ONE).wrapping_add(ADMIT);
                    match self.state.compare_exchange_weak(
                        s,
                        new,
                        Ordering::Acquire,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Registered::Admitted(new),
                        Err(actual) => s = actual,
                    }
                } else if self.limit.load(Ordering::Relaxed) == 0 {
                    // A closed gate: nothing would ever be handed to this waiter. (`limit` is
                    // written with the lock held, so this reads the current limit.)
                    return Registered::Refused(TooManyCallsKind::Full);
                } else if slow.queue.len() >= self.max_waiting {
                    return Registered::Refused(TooManyCallsKind::QueueFull);
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
            slow.slow_flag = true;
            // The new id is `first_waiting` if the queue was empty, and above it otherwise:
            // the published value does not change.
            let id = slow.next_id;
            slow.next_id += 1;
            slow.queue.push_back(Waiter {
                id,
                waker: Some(cx.waker().clone()),
            });
            Registered::Queued(id)
        });
        match outcome {
            Registered::Admitted(new) => {
                self.note_admitted(new);
                Poll::Ready(Ok(()))
            }
            Registered::Refused(kind) => {
                self.note_rejected(kind);
                Poll::Ready(Err(kind))
            }
            Registered::Queued(id) => {
                *slot = Some(id);
                Poll::Pending
            }
        }
    }

    /// Takes a registered waiter out of the queue. Returns `true` if it had been granted a
    /// permit, which the caller now owns.
    #[cfg(feature = "alloc")]
    pub(crate) fn withdraw(&self, slot: &mut Slot) -> bool {
        let Some(id) = slot.take() else {
            return false;
        };
        let (granted, stale) = self.slow.with(|slow| self.remove_locked(slow, id));
        drop(stale);
        if granted {
            self.admitted.fetch_add(1, Ordering::Relaxed);
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
        let (stale, next) = self.slow.with(|slow| {
            let (granted, stale) = self.remove_locked(slow, id);
            let next = if granted {
                self.release_locked(slow)
            } else {
                None
            };
            (stale, next)
        });
        drop(stale);
        if let Some(waker) = next {
            waker.wake();
        }
    }

    /// Whether registration `id` was granted; if not, removes its entry and returns its waker,
    /// for the caller to drop once the lock is released.
    #[cfg(feature = "alloc")]
    fn remove_locked(&self, slow: &mut Slow, id: u64) -> (bool, Option<Waker>) {
        if id < slow.first_waiting() {
            return (true, None);
        }
        let Ok(index) = slow.queue.binary_search_by_key(&id, |w| w.id) else {
            return (false, None);
        };
        let removed = slow.queue.remove(index);
        if index == 0 {
            self.publish_first_waiting(slow);
        }
        self.sync_slow_flag(slow);
        (false, removed.and_then(|w| w.waker))
    }

    /// Sets the fast-path admission count kept in `state` (tests of its wrap-around).
    #[cfg(all(test, target_pointer_width = "64"))]
    pub(crate) fn preset_fast_admissions(&self, count: u32) {
        let s = self.state.load(Ordering::Relaxed);
        let top = usize::try_from(count).expect("64-bit usize") << 32;
        self.state
            .store((s & AVAILABLE_MASK) | top, Ordering::Relaxed);
    }

    /// The admission count, given a fresh `state`.
    fn admitted(&self, state: usize) -> usize {
        let counted = self.admitted.load(Ordering::Relaxed);
        #[cfg(target_pointer_width = "64")]
        {
            let carry = self.admitted_carry.load(Ordering::Relaxed);
            counted.wrapping_add((carry << 32) | (state >> 32))
        }
        #[cfg(not(target_pointer_width = "64"))]
        {
            let _ = state;
            counted
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.slow.with(|slow| {
            let limit = self.limit();
            let state = self.state.load(Ordering::Acquire);
            Snapshot {
                limit,
                in_use: (limit + slow.debt).saturating_sub(available(state)),
                waiting: slow.waiting(),
                admitted: self.admitted(state),
                rejected: self.rejected.load(Ordering::Relaxed),
                peak: self.peak.load(Ordering::Relaxed),
            }
        })
    }
}
