//! # Implementation notes
//!
//! The engine is a counting semaphore with a lock-free fast path and a locked FIFO queue.
//!
//! ## State
//!
//! - `state: AtomicUsize` is one word of three fields:
//!   `admitted << 32 | available << 1 | SLOW` on 64-bit targets, `available << 1 | SLOW`
//!   elsewhere.
//!   - `available` (bits 1..31) is the number of free permits, at most [`MAX_LIMIT`].
//!   - The admission bits (the top half, 64-bit targets only) count fast-path admissions modulo
//!     2^32, so `try_enter` counts itself in the same compare-and-swap that takes the permit; a
//!     wrap of that half carries into `admitted_carry`. Slow-path admissions, and all of them
//!     on 32-bit targets, go to `admitted`.
//!   - `SLOW` (bit 0) is set exactly when a release must take the lock: some waiter is queued,
//!     or the limit was lowered below the permits in use (`debt > 0`). It is only ever set or
//!     cleared with the lock held (`Slow::slow_flag` mirrors it there, to skip redundant
//!     writes), and it is set in the same compare-and-swap that makes it needed: the one that
//!     sees `available == 0` before a waiter queues, and the one with which `set_limit` takes
//!     the free permits when it must record debt.
//! - `slow: Mutex<Slow>` holds the queue and `debt`, the permits to retire before any is free
//!   again after the limit was lowered.
//! - The queue is a [`WaitQueue`]: entries `(id, waker)` in a slab, chained front to back as a
//!   doubly-linked list of slab keys (`u32`). Ids are `u64`, handed out in arrival order, so
//!   they strictly increase from front to back. A waiter holds a [`Ticket`] (slab key and id)
//!   in its [`Slot`], two words with its phase (idle, queued, done): its
//!   entry leaves the queue in O(1) from anywhere, and the id tells it from a later entry that
//!   reused the key. The slab holds only the waiters alive (a storm's memory is given back by
//!   the first registration after the queue drained, so releases and cancellations never
//!   allocate or free).
//! - `front: FrontMirror` mirrors the id of the queue's front entry (or the next id to hand out
//!   when the queue is empty). Grants pop entries off the front in order, so a registered waiter
//!   whose id is below it has been granted a permit: it can see so without the lock. On targets
//!   without 64-bit atomics (and under `cfg(dike_loom_32)`, so the loom models cover it) the
//!   mirror is absent and the waiter takes the lock to compare against the queue itself.
//!
//! ## Invariant
//!
//! While a waiter is queued, `available == 0`. A waiter only registers after seeing
//! `available == 0` and setting `SLOW` in the same compare-and-swap, with the lock held;
//! afterwards the fast release (which only succeeds while `SLOW` is clear) cannot add a permit,
//! and every locked release or limit increase hands permits to waiters before adding any to
//! `available`. So a barging `try_enter` never takes a permit a waiter is owed, and the queue
//! is strict FIFO. Likewise, while `debt > 0`, `SLOW` is set, so every release pays debt
//! before a permit can become free.
//!
//! ## Transitions
//!
//! - **acquire (fast)**: CAS `available - 1` (and one more admission) while `available > 0`.
//!   No lock.
//! - **release (fast)**: CAS `available + 1` while `SLOW` is clear. No lock.
//! - **release (slow)**, with the lock: pay one unit of `debt`; else pop the front waiter,
//!   publish the new front (release ordering: the permit travels with it) and wake it; else
//!   add the permit to `available` and clear `SLOW`.
//! - **register**, with the lock: re-check `state` (a permit released between the failed fast
//!   path and the lock is taken here, so no wakeup is lost); else refuse if the limit is 0 (a
//!   closed gate: nothing would ever be handed over) or `max_waiting` entries wait (or the store
//!   is full); else set `SLOW` and push `(id, waker)` at the back.
//! - **poll of a registered waiter**: `id < front` means granted: complete. Otherwise, with
//!   the lock, check again and refresh the stored waker.
//! - **drop of a registered waiter**, with the lock: if granted, the permit it owned goes
//!   through the slow release, to the next waiter; else its entry is unlinked from the queue
//!   (O(1)) and, if it was the front, the new front published.
//! - **set_limit**, with the lock: raising pays debt first, then grants waiters from the front,
//!   then adds to `available`. Lowering takes what it can from `available` and, in the same
//!   compare-and-swap, sets `SLOW` if the rest must be recorded as `debt`; then records it.
//!
//! ## Who wakes whom
//!
//! Exactly one waker per permit handed over: a slow release or a dropped granted waiter wakes
//! the one waiter it granted; `set_limit` wakes every waiter it granted. Wakers are called
//! (and dropped) after the lock is released. Nothing else wakes a waiter.

use core::task::{Context, Poll, Waker};

use super::queue::{Ticket, WaitQueue, WakeList};
use crate::error::TooManyCallsKind;
use crate::sync::Mutex;
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
    /// `admitted << 32 | available << 1 | SLOW` (see the notes).
    state: AtomicUsize,
    /// The current limit; written with the lock held.
    limit: AtomicUsize,
    /// Waiters beyond this many are refused.
    max_waiting: usize,
    /// Admissions not counted in `state`.
    admitted: AtomicUsize,
    /// Wraps of the admission count in `state`'s top half.
    // Only 64-bit targets count admissions in `state`, so only they carry.
    #[cfg_attr(not(target_pointer_width = "64"), allow(dead_code))]
    admitted_carry: AtomicUsize,
    rejected: AtomicUsize,
    peak: AtomicUsize,
    /// Mirror of the queue's front id: registered ids below it were granted.
    front: FrontMirror,
    slow: Mutex<Slow>,
}

/// The part of the engine behind the lock.
struct Slow {
    /// Waiting entries in arrival order.
    queue: WaitQueue,
    /// Permits to retire, on release, before any becomes available again.
    debt: usize,
    /// Whether `SLOW` is set in `state`.
    slow_flag: bool,
}

impl Slow {
    /// Whether releases must take the lock.
    fn needs_slow(&self) -> bool {
        self.debt > 0 || self.queue.len() > 0
    }
}

/// The queue's front id, readable without the lock (where there are 64-bit atomics).
#[cfg(all(target_has_atomic = "64", not(dike_loom_32)))]
struct FrontMirror(crate::sync::atomic::AtomicU64);

#[cfg(all(target_has_atomic = "64", not(dike_loom_32)))]
impl FrontMirror {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self(crate::sync::atomic::AtomicU64::new(0))
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self(crate::sync::atomic::AtomicU64::new(0))
    }

    /// Publishes the queue's front id (lock held; release ordering: a granted permit travels
    /// with it).
    #[inline]
    fn publish(&self, front: u64) {
        self.0.store(front, Ordering::Release);
    }

    /// `true` if the waiter with `id` was surely granted; `false` means "ask the queue".
    #[inline]
    fn granted(&self, id: u64) -> bool {
        id < self.0.load(Ordering::Acquire)
    }
}

/// Without 64-bit atomics there is no mirror: every check takes the lock.
#[cfg(any(not(target_has_atomic = "64"), dike_loom_32))]
struct FrontMirror;

#[cfg(any(not(target_has_atomic = "64"), dike_loom_32))]
impl FrontMirror {
    const fn new() -> Self {
        Self
    }

    #[inline]
    fn publish(&self, _front: u64) {}

    #[inline]
    fn granted(&self, _id: u64) -> bool {
        false
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

/// The outcome of a registration attempt, decided with the lock held.
enum Registered {
    /// A permit was free after all; `state` after taking it.
    Admitted(usize),
    /// Turned away.
    Refused(TooManyCallsKind),
    /// Queued.
    Queued(Ticket),
}

/// A waiter's registration: its phase and, while queued, its ticket. Two words (the phase
/// sits beside the `u32` key), so a waiting future is three.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    id: u64,
    key: u32,
    phase: Phase,
}

/// `u32`, so a [`Slot`] has no padding and is written whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
enum Phase {
    /// Not queued yet.
    Idle,
    /// Queued under the ticket.
    Queued,
    /// Completed (admitted, refused, withdrawn or cancelled).
    Done,
}

#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
impl Slot {
    /// A waiter that has not tried yet.
    pub(crate) const fn new() -> Self {
        Self {
            id: 0,
            key: 0,
            phase: Phase::Idle,
        }
    }

    /// Whether the waiter is in the queue (or was granted and has not seen it yet).
    #[inline]
    pub(crate) fn is_queued(&self) -> bool {
        self.phase == Phase::Queued
    }

    /// Whether the waiter has completed.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    #[inline]
    fn queue(&mut self, ticket: Ticket) {
        *self = Self {
            id: ticket.id,
            key: ticket.key,
            phase: Phase::Queued,
        };
    }

    /// The ticket if queued; the slot is done afterwards either way.
    #[inline]
    fn finish(&mut self) -> Option<Ticket> {
        let ticket = self.is_queued().then_some(Ticket {
            key: self.key,
            id: self.id,
        });
        self.phase = Phase::Done;
        ticket
    }
}

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
            front: FrontMirror::new(),
            slow: Mutex::new(Slow {
                queue: WaitQueue::new(),
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

    /// Whether a permit is free right now: one atomic load, no lock (a hint that may be stale
    /// by the time it is read).
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn has_free_permit(&self) -> bool {
        available(self.state.load(Ordering::Acquire)) > 0
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
        #[cfg(not(target_pointer_width = "64"))]
        {
            let _ = ADMIT;
            self.admitted.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(target_pointer_width = "64")]
        if after < ADMIT {
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
        if let Some(waker) = self.slow.with(|slow| self.release_locked(slow)) {
            waker.wake();
        }
    }

    /// Returns one permit with the lock held; returns the waker of the waiter it was handed to.
    fn release_locked(&self, slow: &mut Slow) -> Option<Waker> {
        if slow.debt > 0 {
            slow.debt -= 1;
            self.sync_slow_flag(slow);
            return None;
        }
        if let Some(waker) = slow.queue.pop_front() {
            self.front.publish(slow.queue.front_id());
            self.sync_slow_flag(slow);
            return Some(waker);
        }
        self.add_available(slow, 1);
        None
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

    /// Changes the limit; held permits stay valid. Wakes the waiters it grants.
    pub(crate) fn set_limit(&self, limit: usize) {
        let limit = limit.min(MAX_LIMIT);
        self.slow
            .with(|slow| self.set_limit_locked(slow, limit))
            .wake_all();
    }

    /// [`set_limit`](Self::set_limit) with the lock held; returns the wakers of the waiters
    /// it granted.
    fn set_limit_locked(&self, slow: &mut Slow, limit: usize) -> WakeList {
        let old = self.limit();
        self.limit.store(limit, Ordering::Relaxed);
        if limit > old {
            let mut add = limit - old;
            let paid = add.min(slow.debt);
            slow.debt -= paid;
            add -= paid;
            let grant = add.min(slow.queue.len());
            let wakers = slow.queue.pop_front_n(grant);
            add -= grant;
            self.front.publish(slow.queue.front_id());
            if add > 0 {
                self.add_available(slow, add);
            } else {
                self.sync_slow_flag(slow);
            }
            // Granting waiters raised the permits in use.
            let free = available(self.state.load(Ordering::Acquire));
            let in_use = (limit + slow.debt).saturating_sub(free);
            self.peak.fetch_max(in_use, Ordering::Relaxed);
            wakers
        } else {
            if limit < old {
                self.lower_locked(slow, old - limit);
            }
            WakeList::new()
        }
    }

    /// Retires `sub` permits: the free ones at once, the rest as debt.
    fn lower_locked(&self, slow: &mut Slow, sub: usize) {
        // Take what is free and, if that is not enough, set `SLOW` in the same
        // compare-and-swap: from then on a release takes the lock and pays the debt, so a
        // permit dropped meanwhile can never go back to `available` while debt is owed.
        let mut s = self.state.load(Ordering::Relaxed);
        let owed = loop {
            let take = sub.min(available(s));
            let owed = sub - take;
            let new = if owed > 0 {
                (s - take * ONE) | SLOW
            } else {
                s - take * ONE
            };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break owed,
                Err(actual) => s = actual,
            }
        };
        if owed > 0 {
            slow.debt += owed;
            slow.slow_flag = true;
        }
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
                waiting: slow.queue.len(),
                admitted: self.admitted(state),
                rejected: self.rejected.load(Ordering::Relaxed),
                peak: self.peak.load(Ordering::Relaxed),
            }
        })
    }

    /// Sets the fast-path admission count kept in `state` (tests of its wrap-around).
    #[cfg(all(test, target_pointer_width = "64"))]
    pub(crate) fn preset_fast_admissions(&self, count: u32) {
        let s = self.state.load(Ordering::Relaxed);
        let top = usize::try_from(count).expect("64-bit usize") << 32;
        self.state
            .store((s & AVAILABLE_MASK) | top, Ordering::Relaxed);
    }
}

/// Waiting. The waiting futures need `alloc` (without it the queue has no room and nothing
/// calls these).
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
impl Engine {
    /// Drives a waiting acquire: `Ready(Ok)` once it owns a permit.
    ///
    /// `slot` is the waiter's registration; it is done once this returns `Ready`, and must not
    /// be polled again (the futures check).
    #[inline]
    pub(crate) fn poll_acquire(
        &self,
        slot: &mut Slot,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TooManyCallsKind>> {
        match slot.phase {
            Phase::Idle if self.try_acquire() => {
                slot.phase = Phase::Done;
                Poll::Ready(Ok(()))
            }
            Phase::Idle => self.register(slot, cx),
            Phase::Queued | Phase::Done => {
                debug_assert!(slot.is_queued(), "polled after completion");
                let ticket = Ticket {
                    key: slot.key,
                    id: slot.id,
                };
                self.poll_registered(slot, ticket, cx)
            }
        }
    }

    fn poll_registered(
        &self,
        slot: &mut Slot,
        ticket: Ticket,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TooManyCallsKind>> {
        if self.front.granted(ticket.id) {
            return self.complete_granted(slot);
        }
        let polled = self.slow.with(|slow| {
            if ticket.id < slow.queue.front_id() {
                return Err(());
            }
            // Not granted, so still queued: entries leave the queue only when granted or
            // withdrawn by their own waiter, which clears its slot.
            let mut stale = None;
            if let Some(waker) = slow.queue.waker_mut(ticket) {
                if !waker.will_wake(cx.waker()) {
                    // Swapped out rather than `clone_from`, which would drop the old waker
                    // here: a waker may run arbitrary code when dropped.
                    stale = Some(core::mem::replace(waker, cx.waker().clone()));
                }
            }
            Ok(stale)
        });
        match polled {
            Err(()) => self.complete_granted(slot),
            Ok(stale) => {
                drop(stale);
                Poll::Pending
            }
        }
    }

    /// A registered waiter saw its grant: it owns the permit.
    fn complete_granted(&self, slot: &mut Slot) -> Poll<Result<(), TooManyCallsKind>> {
        slot.phase = Phase::Done;
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }

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
                } else if slow.queue.len() >= self.max_waiting || !slow.queue.has_room() {
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
            // The new id is the front if the queue was empty, and above it otherwise: the
            // published front does not change.
            match slow.queue.push_back(cx.waker().clone()) {
                Some(ticket) => Registered::Queued(ticket),
                None => unreachable!("room was checked"),
            }
        });
        match outcome {
            Registered::Admitted(new) => {
                slot.phase = Phase::Done;
                self.note_admitted(new);
                Poll::Ready(Ok(()))
            }
            Registered::Refused(kind) => {
                slot.phase = Phase::Done;
                self.note_rejected(kind);
                Poll::Ready(Err(kind))
            }
            Registered::Queued(ticket) => {
                slot.queue(ticket);
                Poll::Pending
            }
        }
    }

    /// Takes a registered waiter out of the queue; the slot is done. Returns `true` if it had
    /// been granted a permit, which the caller now owns.
    pub(crate) fn withdraw(&self, slot: &mut Slot) -> bool {
        let Some(ticket) = slot.finish() else {
            return false;
        };
        let (granted, stale) = self.slow.with(|slow| self.remove_locked(slow, ticket));
        drop(stale);
        if granted {
            self.admitted.fetch_add(1, Ordering::Relaxed);
        }
        granted
    }

    /// Cancels a registered waiter: its entry leaves the queue, and a permit it had been
    /// granted passes to the next waiter.
    pub(crate) fn cancel(&self, slot: &mut Slot) {
        let Some(ticket) = slot.finish() else {
            return;
        };
        let (stale, next) = self.slow.with(|slow| {
            let (granted, stale) = self.remove_locked(slow, ticket);
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

    /// Whether `ticket` was granted; if not, unlinks its entry and returns its waker, for the
    /// caller to drop once the lock is released.
    fn remove_locked(&self, slow: &mut Slow, ticket: Ticket) -> (bool, Option<Waker>) {
        let front = slow.queue.front_id();
        if ticket.id < front {
            return (true, None);
        }
        let removed = slow.queue.remove(ticket);
        if ticket.id == front {
            // It was the front entry: the next one is the front now.
            self.front.publish(slow.queue.front_id());
        }
        self.sync_slow_flag(slow);
        (false, removed)
    }
}
