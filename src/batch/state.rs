//! The batcher's shared state: the accumulator and the table of batches, behind one lock,
//! and the member state machine every [`Call`](super::Call) runs.
//!
//! # Who drives
//!
//! Nothing is spawned. Each batch in the table has at most one *driver*: the member that
//! polls the batch's pending work (the seal deadline while open, the concurrency slot while
//! sealed, the batch function's future and the processing deadline while running). Every
//! other member only stores its waker and waits for its result. A member polled while its
//! batch has no driver becomes the driver. The member whose push seals a batch by size takes
//! the drive over (it is being polled right now, so the batch starts without a wake-up).
//!
//! The driver takes the work out of the table (a future, the gate entry), polls it with the
//! lock released, and puts it back. A driver dropped before the batch completes hands the
//! drive to another live member and wakes it; when no live member is left, the batch is
//! abandoned and its work dropped (outside the lock). A driver that unwinds out of user code
//! while holding the work leaves the other members a [`BatchError::Panicked`].
//!
//! # Completion
//!
//! The driver splits the result outside the lock (user [`Rows::split_parts`]), then, with the lock,
//! gives each waiting member its piece and takes their wakers; pieces of members dropped after
//! sealing are dropped outside the lock. Wakers are woken (by reference) after the lock is
//! released, and then kept, the driver's first, as the batcher's waker cache: a call that joins
//! next from the same task (a request handler's next call) takes its waker from there instead
//! of cloning one, so the steady state clones and drops no waker per call. The cache holds at
//! most one batch's wakers; the previous ones are dropped outside the lock. A slot of
//! the table is freed when the last member that refers to it has taken its result or gone;
//! its member list (then holding no user data) is kept for a later batch.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use slab::Slab;

use super::engine::{Accumulator, Push, SealReason, Sealed};
use super::{BatchError, BatchFn, BatchStats, Batcher, Part, Rows};
use crate::gate::{EnterOwned, Gate, OwnedPermit};
use crate::time::Timer;

/// A member's piece of the result: its rows (a single row stays a row), or the error.
pub(super) type Out<I, F> =
    Result<Part<<F as BatchFn<I>>::Output>, BatchError<<F as BatchFn<I>>::Error>>;

/// Everything behind the batcher's lock.
pub(super) struct Shared<I: Rows, F: BatchFn<I>> {
    pub(super) acc: Accumulator<I>,
    batches: Slab<Batch<I, F>>,
    /// The slot of the open batch.
    open: Option<usize>,
    pub(super) stats: BatchStats,
    /// Member lists of freed slots, for reuse.
    spare_members: Vec<Vec<Member<I, F>>>,
    /// The wakers of the last completed batch (its driver's first, then its members' in
    /// order), kept after they were woken: the calls that join next mostly come from the
    /// same tasks in that order, and take their waker from here instead of cloning one.
    /// `wake_cursor` is where the next joiner looks. At most one batch's wakers are kept;
    /// they are dropped (outside the lock) when the next batch completes, or with the
    /// batcher.
    wake_cache: Vec<Option<Waker>>,
    wake_cursor: usize,
}

/// How many spare buffers of each kind a batcher keeps.
pub(super) const SPARE: usize = 4;

struct Batch<I: Rows, F: BatchFn<I>> {
    phase: Phase<I, F>,
    members: Vec<Member<I, F>>,
    /// Members still referring to this slot (neither gone nor finished).
    present: usize,
    driver: Option<usize>,
}

enum Phase<I: Rows, F: BatchFn<I>> {
    Open,
    /// Sealed, not started. `enter` is the wait for a concurrency slot (taken out while the
    /// driver polls it).
    Sealed {
        parts: Vec<Option<Part<I>>>,
        lens: Vec<usize>,
        rows: usize,
        enter: Option<EnterOwned>,
    },
    /// The driver is concatenating the rows and calling the batch function.
    Starting,
    Running {
        /// `None` while the driver polls it.
        fut: Option<Pin<Box<F::Future>>>,
        lens: Vec<usize>,
        deadline: Duration,
        /// The concurrency slot, held until the phase is dropped.
        _permit: Option<OwnedPermit>,
    },
    Done,
}

enum Member<I: Rows, F: BatchFn<I>> {
    Waiting(Option<Waker>),
    Ready(Out<I, F>),
    /// Dropped (withdrawn before sealing, or its slice is discarded).
    Gone,
    /// Took its result.
    Finished,
}

/// What a [`Call`](super::Call) holds once its rows joined a batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    key: usize,
    index: usize,
}

/// Work a driver does with the lock released.
enum Step<I: Rows, F: BatchFn<I>> {
    /// Read the clock and step again.
    NeedNow,
    Done(Out<I, F>),
    Wait,
    /// Sleep until the open batch's seal deadline.
    Sleep(Duration),
    Enter(EnterOwned),
    Start {
        parts: Vec<Option<Part<I>>>,
        lens: Vec<usize>,
        rows: usize,
        permit: Option<OwnedPermit>,
    },
    Poll(Pin<Box<F::Future>>, Duration),
}

/// How a batch ended, for the counters.
enum Outcome {
    Ok,
    Error,
    TimedOut,
}

/// Things to wake or drop once the lock is released.
pub(super) struct Garbage<I: Rows, F: BatchFn<I>> {
    wake: Vec<Waker>,
    stale: Option<Waker>,
    rows: Option<Part<I>>,
    outs: Vec<Out<I, F>>,
    phase: Option<Phase<I, F>>,
}

impl<I: Rows, F: BatchFn<I>> Default for Garbage<I, F> {
    fn default() -> Self {
        Self {
            wake: Vec::new(),
            stale: None,
            rows: None,
            outs: Vec::new(),
            phase: None,
        }
    }
}

impl<I: Rows, F: BatchFn<I>> Garbage<I, F> {
    /// Wakes and drops everything; call with no lock held. (By reference: the struct is
    /// large, and most of the time empty.)
    #[inline]
    fn flush(&mut self) {
        if self.wake.is_empty()
            && self.stale.is_none()
            && self.rows.is_none()
            && self.outs.is_empty()
            && self.phase.is_none()
        {
            return;
        }
        self.flush_slow();
    }

    #[cold]
    fn flush_slow(&mut self) {
        drop(self.stale.take());
        drop(self.rows.take());
        drop(core::mem::take(&mut self.outs));
        drop(self.phase.take());
        for waker in self.wake.drain(..) {
            waker.wake();
        }
    }
}

impl<I: Rows, F: BatchFn<I>> Shared<I, F> {
    pub(super) fn new(acc: Accumulator<I>) -> Self {
        Self {
            acc,
            batches: Slab::new(),
            open: None,
            stats: BatchStats::default(),
            spare_members: Vec::new(),
            wake_cache: Vec::new(),
            wake_cursor: 0,
        }
    }

    /// A waker for a joining member that is polled with `waker`: the cached one at the
    /// cursor (or just past it) when it wakes the same task, or a clone. Drops nothing.
    #[inline]
    fn reuse_waker(&mut self, waker: &Waker) -> Waker {
        let at = self.wake_cursor;
        for i in at..at + 2 {
            if let Some(slot) = self.wake_cache.get_mut(i) {
                if let Some(cached) = slot.take_if(|cached| cached.will_wake(waker)) {
                    self.wake_cursor = i + 1;
                    return cached;
                }
            }
        }
        waker.clone()
    }

    /// Keeps the member list of a freed slot for the next batch (a batch's buffers are the
    /// same size every time; reusing them keeps them warm and out of the allocator).
    /// Every member of a freed slot is gone or finished: clearing drops no user data.
    fn recycle_members(&mut self, mut members: Vec<Member<I, F>>) {
        debug_assert!(
            members
                .iter()
                .all(|m| matches!(m, Member::Gone | Member::Finished))
        );
        members.clear();
        if self.spare_members.len() < SPARE {
            self.spare_members.push(members);
        }
    }

    /// Batches in the table (open, sealed, running, or done with results not yet taken).
    pub(super) fn batches(&self) -> usize {
        self.batches.len()
    }

    /// Moves a batch just sealed out of the accumulator into the open slot's phase.
    fn install_sealed(&mut self, sealed: Sealed<I>, gate: Option<&Arc<Gate>>) -> usize {
        let key = self.open.take().expect("a sealed batch was open");
        let Sealed {
            parts,
            lens,
            rows,
            reason,
        } = sealed;
        match reason {
            SealReason::Size => self.stats.sealed_by_size += 1,
            SealReason::Time => self.stats.sealed_by_time += 1,
            SealReason::Explicit => self.stats.sealed_explicitly += 1,
        }
        self.batches[key].phase = Phase::Sealed {
            parts,
            lens,
            rows,
            enter: gate.map(Gate::enter_owned),
        };
        key
    }
}

/// Emits the tracing event of a sealed batch (outside the lock: a subscriber is user code).
#[inline]
fn trace_seal(rows: usize, reason: Option<SealReason>) {
    #[cfg(feature = "tracing")]
    if let Some(reason) = reason {
        tracing::debug!(rows, ?reason, "batch: sealed");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (rows, reason);
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Batcher<I, F, T> {
    /// Joins the open batch with `rows`; the result is the caller's ticket, or an error to
    /// return at once.
    ///
    /// With the ticket comes whether the caller must drive now (it opened the batch, so it
    /// sleeps on the seal deadline, or it sealed it); otherwise it just waits.
    #[inline]
    pub(super) fn join(
        &self,
        rows: Part<I>,
        cx: &Context<'_>,
    ) -> Result<(Ticket, bool), BatchError<F::Error>> {
        let len = rows.len();
        if rows.is_empty() {
            return Err(BatchError::Empty);
        }
        // Rows refused, to drop after the lock.
        let mut refused = None;
        let mut sealed_rows = None;
        let result = self.shared.with(|s| match s.acc.push(rows, len) {
            Push::Full(rows) => {
                refused = Some(rows);
                s.stats.rejected += 1;
                Err(BatchError::QueueFull {
                    max_queued_rows: self.config.max_queued_rows.unwrap_or(usize::MAX),
                })
            }
            Push::Incompatible(rows) => {
                refused = Some(rows);
                s.stats.rejected += 1;
                Err(BatchError::Incompatible)
            }
            Push::Joined {
                index,
                opened: false,
                full: false,
            } => {
                // The common case: one more member of the open batch, which waits.
                let waker = s.reuse_waker(cx.waker());
                let key = s.open.expect("the batch just joined is open");
                let batch = &mut s.batches[key];
                debug_assert_eq!(batch.members.len(), index);
                super::push_in_place(&mut batch.members, || Member::Waiting(Some(waker)));
                batch.present += 1;
                Ok((Ticket { key, index }, false))
            }
            Push::Joined {
                index,
                opened,
                full,
            } => {
                let waker = s.reuse_waker(cx.waker());
                let ticket = self.join_and_drive(s, index, opened, full, waker, &mut sealed_rows);
                Ok((ticket, true))
            }
        });
        drop(refused);
        if let Some((rows, reason)) = sealed_rows {
            trace_seal(rows, reason);
        }
        result
    }

    /// The rare cases of [`join`](Self::join): the push opened the batch (the caller drives
    /// its seal deadline) or sealed it (the caller drives it).
    #[cold]
    fn join_and_drive(
        &self,
        s: &mut Shared<I, F>,
        index: usize,
        opened: bool,
        full: bool,
        waker: Waker,
        sealed_rows: &mut Option<(usize, Option<SealReason>)>,
    ) -> Ticket {
        if opened {
            let key = s.batches.insert(Batch {
                phase: Phase::Open,
                members: s
                    .spare_members
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(s.acc.expected_members())),
                present: 0,
                driver: None,
            });
            s.open = Some(key);
        }
        let key = s.open.expect("the batch just joined is open");
        let batch = &mut s.batches[key];
        debug_assert_eq!(batch.members.len(), index);
        super::push_in_place(&mut batch.members, || Member::Waiting(Some(waker)));
        batch.present += 1;
        // The opener sleeps on the seal deadline. The sealer is being polled: it drives. The
        // previous driver (sleeping on the seal deadline) drops its sleep when it next sees
        // it no longer drives.
        batch.driver = Some(index);
        if let Some(sealed) = full.then(|| s.acc.seal(SealReason::Size)).flatten() {
            *sealed_rows = Some((sealed.rows, Some(sealed.reason)));
            s.install_sealed(sealed, self.gate.as_ref());
        }
        Ticket { key, index }
    }

    /// Seals the open batch now and wakes its driver; the rows sealed (0 if none was open).
    pub(super) fn flush_open(&self) -> usize {
        let (rows, waker) = self.shared.with(|s| {
            let Some(sealed) = s.acc.seal(SealReason::Explicit) else {
                return (0, None);
            };
            let rows = sealed.rows;
            let key = s.install_sealed(sealed, self.gate.as_ref());
            let batch = &mut s.batches[key];
            let waker = batch.driver.and_then(|d| match &mut batch.members[d] {
                Member::Waiting(w) => w.clone(),
                _ => None,
            });
            (rows, waker)
        });
        if rows > 0 {
            trace_seal(rows, Some(SealReason::Explicit));
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        rows
    }

    /// Polls member `ticket`: drives its batch if it is (or becomes) the driver, or waits.
    /// `sleep` is the member's own deadline sleep.
    #[inline]
    pub(super) fn poll_member(
        &self,
        ticket: Ticket,
        sleep: &mut Option<Pin<Box<DriverSleep<T::Sleep>>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Out<I, F>> {
        // Fast path: the result is waiting (a woken member that does not drive). Otherwise
        // the same lock section takes the first step of the slow path.
        // `freed`: the phase of a slot this member freed, if it holds anything to drop.
        let mut freed = None;
        let mut first = None;
        let ready = self.shared.with(|s| {
            let batch = &mut s.batches[ticket.key];
            let member = &mut batch.members[ticket.index];
            if !matches!(member, Member::Ready(_)) {
                let mut garbage = Garbage::<I, F>::default();
                let mut sealed_now = None;
                let step = self.step_locked(s, ticket, None, cx, &mut garbage, &mut sealed_now);
                first = Some((garbage, sealed_now, step));
                return Poll::Pending;
            }
            let Member::Ready(out) = core::mem::replace(member, Member::Finished) else {
                unreachable!()
            };
            batch.present -= 1;
            batch.driver = None;
            if batch.present == 0 {
                Self::free_slot(s, ticket.key, &mut freed);
            }
            Poll::Ready(out)
        });
        // (The result stays in the one `Poll` it was read into: copying it between types of
        // different layouts made the CPU stall reading back what it just wrote.)
        if ready.is_ready() {
            if freed.is_some() {
                drop(freed);
            }
            if sleep.is_some() {
                *sleep = None;
            }
            return ready;
        }
        let first = first.expect("not ready: the slow path took its first step");
        self.poll_drive(ticket, first, sleep, cx)
    }

    /// [`poll_member`](Self::poll_member) past the fast path: drive, or store the waker.
    #[inline(never)]
    fn poll_drive(
        &self,
        ticket: Ticket,
        first: (Garbage<I, F>, Option<usize>, Step<I, F>),
        sleep: &mut Option<Pin<Box<DriverSleep<T::Sleep>>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Out<I, F>> {
        // The clock is read only when a step needs it (the open batch's deadline).
        let mut now = None;
        // Wakers of a batch just completed, for the cache; and the cache they replace.
        let mut woken: Option<Vec<Option<Waker>>> = None;
        let mut old_cache = Vec::new();
        let mut first = Some(first);
        loop {
            let (mut garbage, sealed_now, step) = if let Some(first) = first.take() {
                first
            } else {
                let mut garbage = Garbage::<I, F>::default();
                let mut sealed_now = None;
                let step = self.shared.with(|s| {
                    if let Some(woken) = woken.take() {
                        // The wakers of the batch this driver just completed become the
                        // cache (here, not in a section of their own).
                        s.wake_cursor = 0;
                        old_cache = core::mem::replace(&mut s.wake_cache, woken);
                    }
                    self.step_locked(s, ticket, now, cx, &mut garbage, &mut sealed_now)
                });
                (garbage, sealed_now, step)
            };
            drop(core::mem::take(&mut old_cache));
            garbage.flush();
            if let Some(rows) = sealed_now {
                trace_seal(rows, Some(SealReason::Time));
            }
            match step {
                Step::NeedNow => now = Some(self.timer.now()),
                Step::Done(out) => {
                    *sleep = None;
                    return Poll::Ready(out);
                }
                Step::Wait => {
                    *sleep = None;
                    return Poll::Pending;
                }
                Step::Sleep(deadline) => {
                    if poll_sleep(&self.timer, sleep, deadline, cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Due: the next round seals by time.
                    now = Some(self.timer.now());
                }
                Step::Enter(mut enter) => match Pin::new(&mut enter).poll(cx) {
                    Poll::Ready(permit) => {
                        // Never an error: the gate's limit is at least 1 and its queue is
                        // unbounded.
                        let step = self
                            .shared
                            .with(|s| Self::take_start(s, ticket.key, permit.ok()));
                        if let Step::Start {
                            parts,
                            lens,
                            rows,
                            permit,
                        } = step
                        {
                            self.start(ticket, parts, lens, rows, permit);
                        }
                    }
                    Poll::Pending => {
                        let unplaced = self.put_back(ticket, |phase| match phase {
                            Phase::Sealed { enter: slot, .. } => {
                                *slot = Some(enter);
                                None
                            }
                            _ => Some(enter),
                        });
                        drop(unplaced); // never: only the driver moves a sealed batch on
                        return Poll::Pending;
                    }
                },
                Step::Start {
                    parts,
                    lens,
                    rows,
                    permit,
                } => self.start(ticket, parts, lens, rows, permit),
                Step::Poll(mut fut, deadline) => {
                    if let Poll::Ready(result) = fut.as_mut().poll(cx) {
                        drop(fut);
                        woken =
                            Some(self.complete(
                                ticket,
                                result.map_err(|e| BatchError::Failed(Arc::new(e))),
                            ));
                        continue;
                    }
                    if poll_sleep(&self.timer, sleep, deadline, cx).is_ready() {
                        drop(fut);
                        woken = Some(self.complete(
                            ticket,
                            Err(BatchError::TimedOut {
                                after: self.config.max_processing_time,
                            }),
                        ));
                        continue;
                    }
                    let unplaced = self.put_back(ticket, |phase| match phase {
                        Phase::Running { fut: slot, .. } => {
                            *slot = Some(fut);
                            None
                        }
                        _ => Some(fut),
                    });
                    drop(unplaced); // never: only the driver completes a running batch
                    return Poll::Pending;
                }
            }
        }
    }

    /// One locked step of [`poll_member`](Self::poll_member).
    fn step_locked(
        &self,
        s: &mut Shared<I, F>,
        ticket: Ticket,
        now: Option<Duration>,
        cx: &Context<'_>,
        garbage: &mut Garbage<I, F>,
        sealed_now: &mut Option<usize>,
    ) -> Step<I, F> {
        let Ticket { key, index } = ticket;
        let batch = &mut s.batches[key];
        if let Member::Ready(_) = batch.members[index] {
            let Member::Ready(out) =
                core::mem::replace(&mut batch.members[index], Member::Finished)
            else {
                unreachable!()
            };
            Self::leave(s, key, garbage);
            return Step::Done(out);
        }
        if batch.driver.is_some_and(|d| d != index) {
            // Another member drives. Take over if its work is lying in the table (the driver
            // is not polling it right now): whoever is polled makes progress.
            let idle_work = match &batch.phase {
                Phase::Open => match now {
                    None => return Step::NeedNow,
                    Some(now) => s.acc.deadline().is_some_and(|d| now >= d),
                },
                Phase::Sealed { enter, .. } => self.gate.is_none() || enter.is_some(),
                Phase::Running { fut, .. } => fut.is_some(),
                Phase::Starting | Phase::Done => false,
            };
            if !idle_work {
                if let Member::Waiting(slot) = &mut batch.members[index] {
                    store_waker(slot, cx, garbage);
                }
                return Step::Wait;
            }
        }
        batch.driver = Some(index);
        if let Member::Waiting(slot) = &mut batch.members[index] {
            store_waker(slot, cx, garbage);
        }
        match &mut batch.phase {
            Phase::Open => {
                let Some(now) = now else {
                    return Step::NeedNow;
                };
                if let Some(sealed) = s.acc.seal_due(now) {
                    *sealed_now = Some(sealed.rows);
                    s.install_sealed(sealed, self.gate.as_ref());
                    return self.step_locked(s, ticket, Some(now), cx, garbage, sealed_now);
                }
                Step::Sleep(s.acc.deadline().expect("the open batch has a deadline"))
            }
            Phase::Sealed {
                parts,
                lens,
                rows,
                enter,
            } => {
                if let Some(gate) = &self.gate {
                    if let Some(enter) = enter.take() {
                        return Step::Enter(enter);
                    }
                    return Step::Enter(gate.enter_owned());
                }
                let _ = (parts, lens, rows, enter);
                Self::take_start(s, key, None)
            }
            Phase::Starting => unreachable!("only the driver starts a batch"),
            Phase::Running { fut, deadline, .. } => {
                let fut = fut.take().expect("only the driver takes the future");
                Step::Poll(fut, *deadline)
            }
            Phase::Done => unreachable!("a member of a done batch has its result"),
        }
    }

    /// Takes a sealed batch's rows for its driver to start.
    fn take_start(s: &mut Shared<I, F>, key: usize, permit: Option<OwnedPermit>) -> Step<I, F> {
        let batch = &mut s.batches[key];
        let Phase::Sealed {
            parts, lens, rows, ..
        } = core::mem::replace(&mut batch.phase, Phase::Done)
        else {
            unreachable!("only a sealed batch starts")
        };
        batch.phase = Phase::Starting;
        s.acc.started(rows);
        s.stats.batches += 1;
        s.stats.rows += rows;
        s.stats.max_batch_size = s.stats.max_batch_size.max(rows);
        Step::Start {
            parts,
            lens,
            rows,
            permit,
        }
    }

    /// Concatenates the rows, calls the batch function and stores its future (the driver,
    /// with the lock released: both are user code).
    fn start(
        &self,
        ticket: Ticket,
        mut parts: Vec<Option<Part<I>>>,
        lens: Vec<usize>,
        rows: usize,
        permit: Option<OwnedPermit>,
    ) {
        let input = I::concat_parts(parts.drain(..).flatten(), rows);
        let now = self.timer.now();
        let fut = Box::pin(self.f.call(input));
        let deadline = now.saturating_add(self.config.max_processing_time);
        let old = self.shared.with(move |s| {
            s.acc.recycle_parts(parts); // drained: holds no rows
            let running = Phase::Running {
                fut: Some(fut),
                lens,
                deadline,
                _permit: permit,
            };
            core::mem::replace(&mut s.batches[ticket.key].phase, running) // `Starting`: empty
        });
        drop(old);
    }

    /// Runs `f` on the phase of the ticket's batch, with the lock. `f` must not drop user
    /// work there: it returns what it could not place, for the caller to drop after.
    fn put_back<R>(&self, ticket: Ticket, f: impl FnOnce(&mut Phase<I, F>) -> R) -> R {
        self.shared.with(|s| f(&mut s.batches[ticket.key].phase))
    }

    /// The driver finished the batch with `result`: split it, hand out the pieces, wake.
    /// Returns the wakers it woke, the driver's first, for the driver's next lock section to
    /// keep as the waker cache.
    #[must_use]
    fn complete(
        &self,
        ticket: Ticket,
        result: Result<F::Output, BatchError<F::Error>>,
    ) -> Vec<Option<Waker>> {
        let lens = self
            .shared
            .with(|s| match &mut s.batches[ticket.key].phase {
                Phase::Running { lens, .. } => core::mem::take(lens),
                _ => unreachable!("only a running batch completes"),
            });
        let expected: usize = lens.iter().sum();
        // The pieces, or the one error every caller gets. `split` is user code: no lock.
        let (mut pieces, outcome) = match result {
            Ok(output) if output.len() == expected => {
                let mut pieces = Vec::with_capacity(lens.len());
                if lens.contains(&0) {
                    let sizes: Vec<usize> = lens.iter().copied().filter(|&n| n > 0).collect();
                    output.split_parts(&sizes, &mut pieces);
                } else {
                    output.split_parts(&lens, &mut pieces);
                }
                (Ok(pieces.into_iter()), Outcome::Ok)
            }
            Ok(output) => {
                let err = BatchError::WrongLength {
                    expected,
                    actual: output.len(),
                };
                drop(output);
                (Err(err), Outcome::Error)
            }
            Err(err) => {
                let outcome = if matches!(err, BatchError::TimedOut { .. }) {
                    Outcome::TimedOut
                } else {
                    Outcome::Error
                };
                (Err(err), outcome)
            }
        };
        let mut garbage = Garbage::<I, F>::default();
        // The wakers of the waiting members, the driver's first (it is being polled: it is
        // not woken). Kept afterwards for the next batch: see `Shared::reuse_waker`.
        let mut wake: Vec<Option<Waker>> = Vec::with_capacity(lens.len() + 1);
        wake.push(None);
        self.shared.with(|s| {
            let batch = &mut s.batches[ticket.key];
            let phase = core::mem::replace(&mut batch.phase, Phase::Done);
            garbage.phase = Some(phase);
            let members = batch.members.iter_mut().zip(&lens).enumerate();
            // One loop per outcome, so the common one (pieces) is a tight loop.
            match &mut pieces {
                Ok(pieces) => {
                    for (i, (member, &n)) in members {
                        if n == 0 {
                            continue; // withdrawn before sealing: gone, no piece
                        }
                        // A `split` that returns too few pieces is a broken `Rows`.
                        let out = pieces.next().ok_or(BatchError::WrongLength {
                            expected,
                            actual: expected,
                        });
                        hand_out(member, out, i == ticket.index, &mut wake, &mut garbage.outs);
                    }
                }
                Err(err) => {
                    for (i, (member, &n)) in members {
                        if n > 0 {
                            let out = Err(err.clone());
                            hand_out(member, out, i == ticket.index, &mut wake, &mut garbage.outs);
                        }
                    }
                }
            }
            s.acc.recycle_lens(lens);
            match outcome {
                Outcome::Ok => {}
                Outcome::Error => s.stats.errors += 1,
                Outcome::TimedOut => s.stats.timeouts += 1,
            }
        });
        garbage.flush();
        drop(pieces); // pieces a broken `split` returned in excess
        for waker in wake.iter().skip(1).flatten() {
            waker.wake_by_ref();
        }
        wake
    }

    /// A member left a done batch (took its result): free the slot when nobody refers to it.
    fn leave(s: &mut Shared<I, F>, key: usize, garbage: &mut Garbage<I, F>) {
        garbage.phase = Self::leave_slot(s, key);
    }

    /// [`leave`](Self::leave), handing back the phase of a freed slot (to drop outside the
    /// lock).
    #[inline]
    fn leave_slot(s: &mut Shared<I, F>, key: usize) -> Option<Phase<I, F>> {
        let batch = &mut s.batches[key];
        batch.present -= 1;
        batch.driver = None;
        let mut freed = None;
        if batch.present == 0 {
            Self::free_slot(s, key, &mut freed);
        }
        freed
    }

    /// Frees the slot `key`, which no member refers to any more. Its phase is `Done` (members
    /// take results only from a done batch), which holds no user data and is dropped here;
    /// any other phase goes to `freed`, to drop outside the lock.
    #[cold]
    #[inline(never)]
    fn free_slot(s: &mut Shared<I, F>, key: usize, freed: &mut Option<Phase<I, F>>) {
        let batch = s.batches.remove(key);
        s.recycle_members(batch.members);
        if !matches!(batch.phase, Phase::Done) {
            *freed = Some(batch.phase);
        }
    }

    /// A member's future is dropped before it took its result; see the module notes.
    pub(super) fn drop_member(&self, ticket: Ticket) {
        let Ticket { key, index } = ticket;
        let mut garbage = Garbage::<I, F>::default();
        self.shared.with(|s| {
            let batch = &mut s.batches[key];
            match core::mem::replace(&mut batch.members[index], Member::Gone) {
                Member::Waiting(waker) => garbage.stale = waker,
                Member::Ready(out) => garbage.outs.push(out),
                Member::Gone | Member::Finished => return,
            }
            batch.present -= 1;
            if let Phase::Open = batch.phase {
                let withdrawn = s.acc.withdraw(index).expect("a member of the open batch");
                s.stats.rows_withdrawn += withdrawn.len;
                garbage.rows = Some(withdrawn.rows);
                if withdrawn.emptied {
                    s.open = None;
                }
            }
            let batch = &mut s.batches[key];
            let busy = matches!(
                batch.phase,
                Phase::Starting | Phase::Running { fut: None, .. }
            );
            let was_driver = batch.driver == Some(index);
            if was_driver {
                batch.driver = None;
            }
            if batch.present == 0 {
                let batch = s.batches.remove(key);
                if let Phase::Sealed { rows, .. } = &batch.phase {
                    s.acc.started(*rows);
                }
                if !matches!(batch.phase, Phase::Done | Phase::Open) {
                    s.stats.batches_dropped += 1;
                }
                garbage.phase = Some(batch.phase);
                s.recycle_members(batch.members);
                return;
            }
            if was_driver && busy {
                // The driver unwound out of user code holding the batch's work: the work is
                // gone; every other member gets an error instead of waiting for ever.
                garbage.phase = Some(core::mem::replace(&mut batch.phase, Phase::Done));
                for member in &mut batch.members {
                    if let Member::Waiting(waker) = member {
                        if let Some(waker) = waker.take() {
                            garbage.wake.push(waker);
                        }
                        *member = Member::Ready(Err(BatchError::Panicked));
                    }
                }
                return;
            }
            if was_driver && !matches!(batch.phase, Phase::Done) {
                // Hand the drive to the first live member and wake it.
                if let Some(waker) = batch.members.iter_mut().find_map(|m| match m {
                    Member::Waiting(w) => Some(w.clone()),
                    _ => None,
                }) {
                    garbage.wake.extend(waker);
                }
            }
        });
        garbage.flush();
    }
}

/// Gives a member of a completing batch its piece `out`: a waiting member becomes ready and
/// its waker goes to `wake` (the driver's, which is not woken, to `wake[0]`); the piece of a
/// member already gone goes to `outs`, to drop outside the lock.
#[inline(always)]
fn hand_out<I: Rows, F: BatchFn<I>>(
    member: &mut Member<I, F>,
    out: Out<I, F>,
    driver: bool,
    wake: &mut Vec<Option<Waker>>,
    outs: &mut Vec<Out<I, F>>,
) {
    match core::mem::replace(member, Member::Ready(out)) {
        Member::Waiting(waker) => {
            if driver {
                wake[0] = waker;
            } else if waker.is_some() {
                super::push_in_place(wake, || waker);
            }
        }
        other => {
            let Member::Ready(out) = core::mem::replace(member, other) else {
                unreachable!("just stored")
            };
            outs.push(out);
        }
    }
}

/// Stores `cx`'s waker in `slot` unless it already wakes the same task; the replaced one goes
/// to the garbage.
fn store_waker<I: Rows, F: BatchFn<I>>(
    slot: &mut Option<Waker>,
    cx: &Context<'_>,
    garbage: &mut Garbage<I, F>,
) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => garbage.stale = slot.replace(cx.waker().clone()),
    }
}

pin_project_lite::pin_project! {
    /// A driver's sleep and the instant it sleeps until (boxed in the call, which only a
    /// driver needs, so a call stays small).
    pub(super) struct DriverSleep<S> {
        at: Duration,
        #[pin]
        sleep: S,
    }
}

/// Polls the member's sleep for `deadline`, creating it (or replacing one for another
/// instant) first.
fn poll_sleep<T: Timer>(
    timer: &T,
    sleep: &mut Option<Pin<Box<DriverSleep<T::Sleep>>>>,
    deadline: Duration,
    cx: &mut Context<'_>,
) -> Poll<()> {
    match sleep {
        Some(sleep) if sleep.at == deadline => sleep.as_mut().project().sleep.poll(cx),
        _ => sleep
            .insert(Box::pin(DriverSleep {
                at: deadline,
                sleep: timer.sleep_until(deadline),
            }))
            .as_mut()
            .project()
            .sleep
            .poll(cx),
    }
}
