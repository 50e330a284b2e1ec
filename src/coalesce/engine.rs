//! # Implementation notes
//!
//! The in-flight map: one entry per key with a run in flight, and with each run the shared work
//! itself, so that no caller owns it.
//!
//! ## State
//!
//! One lock over `Inner { map, runs }`:
//!
//! - `map: HashTable<usize>`: the runs whose key is in flight, by index in `runs`, found by the
//!   key's hash (computed once, before the lock, and kept in the run) and the key's `Eq` (never
//!   by hash alone). Lookups go through `Borrow`, so a joiner never builds an owned key.
//! - `runs: Runs<State>` (a slab: a `Vec` and a free list): per run, its `key` and `hash`, the
//!   `Phase`, `live` (waiters that have not finished: each `Run` counts until it returned
//!   `Ready` or was dropped), `shared`
//!   (someone joined), `wakers` (a slab of the wakers of waiters that returned `Pending`; a
//!   waiter keeps its slab key) and `driver` (the slab key of the waiter whose waker the work
//!   holds, from its last poll). A run's state is removed when its last waiter finishes or
//!   leaves, so the run's index, which every waiter's ticket holds, stays valid while the
//!   ticket counts in `live` (no generation needed) and a newer run never shares it.
//! - The key lives in the run's state, read under the lock only. Hooks read it without the
//!   lock, so when the coalescer's hooks are called at all (`Hooks::__called`: `false` only for
//!   [`NoHooks`](super::NoHooks)) the state keeps it in an `Arc` and each ticket holds a clone;
//!   without hooks a call allocates nothing for the key beyond the owned key itself.
//! - `Phase`: `Starting` (the executor is calling its closure, outside the lock) → `Idle(work)`
//!   (boxed, waiting to be polled) ⇄ `Polling` (a waiter took the work out and polls it without
//!   the lock) → `Done(Arc<outcome>)` (the remaining waiters clone it).
//!
//! Invariant: a run is in the map exactly while it is `Starting`, `Idle` or `Polling` and was
//! not forgotten. Completing, failing and abandoning a run unmap it in the same section, so a
//! caller never finds a finished run.
//!
//! ## Transitions (each one lock section)
//!
//! - **join** (`run`): an entry for an equal key is joined (`live += 1`, `shared = true`);
//!   otherwise a new run in `Starting` is inserted and the caller is its executor.
//! - **start**: the executor calls its closure (and the apply/execute hooks) outside the lock,
//!   then stores the work: `Starting → Idle`. A guard fails the run with `Panicked` if the
//!   closure or a hook unwinds, so joiners never wait for a work that will not come.
//! - **poll** of a waiter: `Idle` → take the work (`Polling`), poll it outside the lock with
//!   this waiter's context; `Pending` puts it back (`Idle`), makes this waiter the driver and
//!   records its waker; `Ready` finishes the run. `Starting` or `Polling` (another waiter is
//!   inside the work) → record the waker, `Pending`. `Done` → clone the shared outcome and
//!   finish this waiter (the last one to collect takes it out of the `Arc` without a clone).
//! - **finish** (the waiter whose poll completed the work): `Done(Arc)` unless it is the last
//!   waiter (then it keeps the outcome, no `Arc`, and the state goes), take the whole waker
//!   slab, unmap the run (found by its index: a `forget` may have put a newer run under the
//!   key). With `std` a
//!   panic inside the work's `poll` is caught and finishes the run with `Panicked`; without
//!   `std` a guard does the same while the panic unwinds.
//! - **leave** (a waiter dropped before finishing): `live -= 1`, remove its waker. The last one
//!   out of an unfinished run takes the work and unmaps the run: the work is dropped (after
//!   the lock) and the key is free. Otherwise, if the leaver was the driver, or there is no
//!   driver, driving is handed on: one other recorded waker is taken and woken (a scan of the
//!   waker slab, O(waiters), only on this path).
//! - **forget**: unmap the run; its waiters keep it (and its key, until the last one goes).
//!
//! ## Who wakes whom
//!
//! The work holds the waker of its driver only (the last waiter that polled it). Finishing
//! wakes every recorded waiter. A driver that leaves, and a `start` that finds waiters that
//! polled during `Starting`, wake exactly one recorded waiter, which drives the work on its next
//! poll (and, if it leaves first, hands on in turn). So while the work is pending and someone
//! waits, some waiter is always due to poll it. Wakers are woken and dropped, works dropped and
//! hooks called only after the lock is released.
//!
//! ## User code under the lock
//!
//! Only the key's `Eq` (lookups) and `ToOwned` (the executor's key) run with the lock held; the
//! key is hashed before it. Closures, works, hooks, `Clone` of outcomes, wakers and every drop of
//! a user value (keys, works, outcomes) run outside.
//!
//! ## Costs
//!
//! A call that starts a run, without hooks: one hash, the owned key, the boxed work (free for a
//! zero-sized future; an `async` block is at least one byte), four lock sections (insert, store
//! the work, take it to poll, finish). A lone call that completes on its first poll clones no
//! waker and allocates no shared outcome. With hooks, one more allocation (the key's `Arc`).
//! A joiner: one hash, one section to join, one per poll (and an `Arc` clone with hooks).
//! Collecting a shared outcome clones it outside the lock, except for the last waiter, which
//! takes it. One lock serves every key: sections are short and never wait on user code.
//!
//! None of the four sections of a lone call can go without changing the contract: the work is
//! stored at construction so that a joiner can drive it while the executor's future is never
//! polled (`let a = run(k); let b = run(k); b.await` completes); the closure is called after the
//! join section because only the executor may call it (joiners' closures never run, and the
//! execute hook comes before it); taking the work and finishing straddle the user's `poll`,
//! which never runs under the lock.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::future::Future;
use core::hash::{BuildHasher, Hash};
use core::mem;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use hashbrown::HashTable;
use slab::Slab;

use super::{Outcome, RunError};
use crate::sync::{Arc, Mutex};

/// The shared work of one run.
pub(crate) type Work<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The outcome of a run, shared by its waiters once it completed.
type Shared<T, E> = alloc::sync::Arc<Result<T, RunError<E>>>;

/// The in-flight map behind [`Coalescer`](super::Coalescer).
pub(crate) struct Engine<K, T, E, S> {
    hasher: S,
    inner: Mutex<Inner<K, T, E>>,
}

struct Inner<K, T, E> {
    /// The runs whose key is in flight, by index in `runs`.
    map: HashTable<usize>,
    runs: Runs<State<K, T, E>>,
}

/// The runs' states by index: a `Vec` and a free list (`slab`'s layout). Its own, so that
/// inserting writes the new state in place: `slab`'s out-of-line `insert_at` took it by
/// reference from a stack copy just written in 8-byte pieces, and its 16-byte reads of them
/// stalled.
struct Runs<S> {
    entries: Vec<Entry<S>>,
    /// The first vacant entry; `entries.len()` when none is.
    free: usize,
}

enum Entry<S> {
    /// The next vacant entry (as `Runs::free`).
    Vacant(usize),
    Occupied(S),
}

impl<S> Runs<S> {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: 0,
        }
    }

    /// Inserts `make()`, built once its entry is known (so it can be written there directly).
    #[inline]
    fn insert_with(&mut self, make: impl FnOnce() -> S) -> usize {
        let index = self.free;
        match self.entries.get_mut(index) {
            Some(entry @ Entry::Vacant(_)) => {
                if let Entry::Vacant(next) = *entry {
                    self.free = next;
                }
                *entry = Entry::Occupied(make());
            }
            Some(Entry::Occupied(_)) => unreachable!("the free list holds vacant entries"),
            None => {
                self.entries.push(Entry::Occupied(make()));
                self.free = self.entries.len();
            }
        }
        index
    }

    #[inline]
    fn remove(&mut self, index: usize) -> S {
        let entry = &mut self.entries[index];
        match mem::replace(entry, Entry::Vacant(self.free)) {
            Entry::Occupied(state) => {
                self.free = index;
                state
            }
            Entry::Vacant(next) => {
                *entry = Entry::Vacant(next);
                unreachable!("no run at index {index}")
            }
        }
    }
}

impl<S> core::ops::Index<usize> for Runs<S> {
    type Output = S;

    #[inline]
    fn index(&self, index: usize) -> &S {
        match &self.entries[index] {
            Entry::Occupied(state) => state,
            Entry::Vacant(_) => unreachable!("no run at index {index}"),
        }
    }
}

impl<S> core::ops::IndexMut<usize> for Runs<S> {
    #[inline]
    fn index_mut(&mut self, index: usize) -> &mut S {
        match &mut self.entries[index] {
            Entry::Occupied(state) => state,
            Entry::Vacant(_) => unreachable!("no run at index {index}"),
        }
    }
}

/// A run's key, as the run keeps it.
enum Key<K> {
    /// Only the map reads it (under the lock).
    Owned(K),
    /// Hooks read it too, without the lock: every waiter holds a clone.
    Shared(Arc<K>),
}

impl<K> Key<K> {
    #[inline]
    fn get(&self) -> &K {
        match self {
            Self::Owned(key) => key,
            Self::Shared(key) => key,
        }
    }

    #[inline]
    fn shared(&self) -> Option<Arc<K>> {
        match self {
            Self::Owned(_) => None,
            Self::Shared(key) => Some(Arc::clone(key)),
        }
    }
}

struct State<K, T, E> {
    key: Key<K>,
    hash: u64,
    phase: Phase<T, E>,
    /// Waiters that have neither finished nor left.
    live: usize,
    /// Whether a caller joined the run.
    shared: bool,
    /// Wakers of waiters that returned `Pending`, by the waiter's slab key.
    wakers: Slab<Option<Waker>>,
    /// The waiter whose waker the work holds.
    driver: Option<usize>,
}

enum Phase<T, E> {
    Starting,
    Idle(Work<T, E>),
    Polling,
    Done(Shared<T, E>),
}

/// A waiter's registration in a run.
pub(crate) struct Ticket<K> {
    /// The run's index in `runs`: it stays there while this waiter counts in `live`.
    run: usize,
    /// The waiter's slab key in `wakers`, once it returned `Pending`.
    slot: Option<usize>,
    /// The run's key, for the hooks (none without hooks).
    pub(crate) key: Option<Arc<K>>,
}

/// What a waiter found under the lock.
enum Step<K, T, E> {
    Drive(Work<T, E>),
    Wait(Option<Waker>),
    /// The outcome, whether it was shared, and the key if this waiter was the last.
    Take(Shared<T, E>, bool, Option<Key<K>>),
}

impl<K, T, E> Inner<K, T, E> {
    /// Removes run `run` from the map if it is still there (a forgotten run is not; a newer
    /// run under an equal key has another index and is left alone).
    #[inline]
    fn unmap(&mut self, run: usize) {
        let hash = self.runs[run].hash;
        if let Ok(found) = self.map.find_entry(hash, |&i| i == run) {
            found.remove();
        }
    }
}

impl<K, T, E, S> Engine<K, T, E, S> {
    pub(crate) fn new(hasher: S) -> Self {
        Self {
            hasher,
            inner: Mutex::new(Inner {
                map: HashTable::new(),
                runs: Runs::new(),
            }),
        }
    }

    pub(crate) fn hasher(&self) -> &S {
        &self.hasher
    }

    /// Keys in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.inner.with(|inner| inner.map.len())
    }
}

impl<K, T, E, S> Engine<K, T, E, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// Joins the run in flight for `key`, or registers a new one; `true` when the caller is
    /// the executor and must [`start`](Self::start) the work. With `keyed`, the run keeps its
    /// key in an `Arc` and the ticket holds a clone, for the hooks.
    #[inline]
    pub(crate) fn join<Q>(
        &self,
        key: &Q,
        to_owned: impl FnOnce(&Q) -> K,
        keyed: bool,
    ) -> (Ticket<K>, bool)
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let hash = self.hasher.hash_one(key);
        self.inner.with(|inner| {
            let Inner { map, runs } = inner;
            if let Some(&run) = map.find(hash, |&i| runs[i].key.get().borrow() == key) {
                let state = &mut runs[run];
                state.live += 1;
                state.shared = true;
                let key = state.key.shared();
                return (
                    Ticket {
                        run,
                        slot: None,
                        key,
                    },
                    false,
                );
            }
            let owned = to_owned(key);
            let (stored, key) = if keyed {
                let shared = Arc::new(owned);
                (Key::Shared(Arc::clone(&shared)), Some(shared))
            } else {
                (Key::Owned(owned), None)
            };
            let run = runs.insert_with(|| State {
                key: stored,
                hash,
                phase: Phase::Starting,
                live: 1,
                shared: false,
                wakers: Slab::new(),
                driver: None,
            });
            map.insert_unique(hash, run, |&i| runs[i].hash);
            (
                Ticket {
                    run,
                    slot: None,
                    key,
                },
                true,
            )
        })
    }

    /// Removes the entry for `key` from the map; `true` if there was one.
    pub(crate) fn forget<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let hash = self.hasher.hash_one(key);
        self.inner.with(|inner| {
            let Inner { map, runs } = inner;
            match map.find_entry(hash, |&i| runs[i].key.get().borrow() == key) {
                Ok(found) => {
                    found.remove();
                    true
                }
                Err(_) => false,
            }
        })
    }
}

impl<K, T, E, S> Engine<K, T, E, S> {
    /// Stores the executor's work: `Starting → Idle`. Waiters that polled meanwhile are
    /// waiting for a driver: one of them is woken to become it.
    #[inline]
    pub(crate) fn start(&self, ticket: &Ticket<K>, work: Work<T, E>) {
        let wake = self.inner.with(|inner| {
            let run = &mut inner.runs[ticket.run];
            debug_assert!(matches!(run.phase, Phase::Starting));
            run.phase = Phase::Idle(work);
            take_one(run)
        });
        if let Some(waker) = wake {
            waker.wake();
        }
    }

    /// Fails a run whose executor unwound before storing its work, or whose work panicked
    /// while polled without `std`: every waiter gets [`RunError::Panicked`], the key is free.
    pub(crate) fn fail(&self, ticket: &Ticket<K>) {
        let (stale, wakers) = self.inner.with(|inner| {
            let run = &mut inner.runs[ticket.run];
            let stale = mem::replace(
                &mut run.phase,
                Phase::Done(alloc::sync::Arc::new(Err(RunError::Panicked))),
            );
            run.driver = None;
            let wakers = mem::take(&mut run.wakers);
            inner.unmap(ticket.run);
            (stale, wakers)
        });
        for (_, waker) in wakers {
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        drop(stale);
    }

    /// Polls a waiter: drives the work if nobody is inside it, or waits for the outcome.
    ///
    /// Takes the ticket out of `ticket` before anything that may unwind once the waiter has
    /// finished, so a panic never makes it leave twice. If this waiter's poll completed the
    /// work, `report` gets the key (with hooks) and the result, after the work was dropped.
    /// The outcome is built last, straight into the returned `Poll`, after the key's drop
    /// (moving it across that drop made the compiler copy it piecewise, and the wider reads
    /// of those pieces stalled).
    #[inline]
    pub(crate) fn poll(
        &self,
        ticket: &mut Option<Ticket<K>>,
        cx: &mut Context<'_>,
        executed: bool,
        report: impl FnOnce(&K, &Result<T, RunError<E>>),
    ) -> Poll<Outcome<T, E>>
    where
        T: Clone,
        E: Clone,
    {
        let t = ticket.as_mut().expect("a waiting ticket");
        let step = self.inner.with(|inner| {
            let run = &mut inner.runs[t.run];
            match mem::replace(&mut run.phase, Phase::Polling) {
                Phase::Idle(work) => Step::Drive(work),
                Phase::Done(shared) => {
                    run.live -= 1;
                    let shared_flag = run.shared;
                    if run.live == 0 {
                        // The last waiter: the run's state goes (dropped after the lock).
                        let state = inner.runs.remove(t.run);
                        Step::Take(shared, shared_flag, Some(state.key))
                    } else {
                        run.phase = Phase::Done(alloc::sync::Arc::clone(&shared));
                        Step::Take(shared, shared_flag, None)
                    }
                }
                other @ (Phase::Starting | Phase::Polling) => {
                    run.phase = other;
                    Step::Wait(record(run, &mut t.slot, cx.waker()))
                }
            }
        });
        match step {
            Step::Wait(stale) => {
                drop(stale);
                Poll::Pending
            }
            Step::Take(outcome, shared, gone) => {
                drop(gone);
                let Ticket { key, .. } = ticket.take().expect("a waiting ticket");
                drop(key);
                Poll::Ready(Outcome {
                    result: alloc::sync::Arc::try_unwrap(outcome).unwrap_or_else(|o| (*o).clone()),
                    shared,
                    executed,
                })
            }
            Step::Drive(mut work) => {
                let mut guard = Unwind {
                    engine: self,
                    ticket: t,
                    armed: true,
                };
                let polled = poll_work(&mut work, cx);
                guard.armed = false;
                drop(guard);
                let result = match polled {
                    Some(Poll::Pending) => {
                        let stale = self.inner.with(|inner| {
                            let run = &mut inner.runs[t.run];
                            run.phase = Phase::Idle(work);
                            let stale = record(run, &mut t.slot, cx.waker());
                            run.driver = t.slot;
                            stale
                        });
                        drop(stale);
                        return Poll::Pending;
                    }
                    Some(Poll::Ready(result)) => result.map_err(RunError::Failed),
                    None => Err(RunError::Panicked),
                };
                let (key, result, shared) = self.finish(ticket, result);
                drop(work);
                if let Some(key) = key {
                    report(&key, &result);
                }
                Poll::Ready(Outcome {
                    result,
                    shared,
                    executed,
                })
            }
        }
    }

    /// Completes the run with `result`, on behalf of the waiter in `ticket`, whose poll of the
    /// work returned it; returns the key (with hooks), this waiter's result and whether the
    /// run was shared.
    #[inline]
    #[allow(clippy::type_complexity)]
    fn finish(
        &self,
        ticket: &mut Option<Ticket<K>>,
        result: Result<T, RunError<E>>,
    ) -> (Option<Arc<K>>, Result<T, RunError<E>>, bool)
    where
        T: Clone,
        E: Clone,
    {
        let Ticket { run, slot, key } = ticket.take().expect("a waiting ticket");
        let mut result = Some(result);
        let (kept, shared, wakers, gone) = self.inner.with(|inner| {
            inner.unmap(run);
            let state = &mut inner.runs[run];
            let shared = state.shared;
            if state.live == 1 {
                // Nobody else waits: the state goes (its key dropped after the lock), the
                // outcome stays with this waiter. Nothing is written to the state first: it is
                // read whole right away (a fresh narrow store would stall that read).
                let state = inner.runs.remove(run);
                (None, shared, state.wakers, Some(state.key))
            } else {
                state.live -= 1;
                state.driver = None;
                let outcome = alloc::sync::Arc::new(result.take().expect("set above"));
                state.phase = Phase::Done(alloc::sync::Arc::clone(&outcome));
                (Some(outcome), shared, mem::take(&mut state.wakers), None)
            }
        });
        if !wakers.is_empty() {
            for (key, waker) in wakers {
                if let Some(waker) = waker {
                    if Some(key) != slot {
                        waker.wake();
                    }
                }
            }
        }
        drop(gone);
        let result = match kept {
            None => result.take().expect("kept for the last waiter"),
            Some(outcome) => (*outcome).clone(),
        };
        (key, result, shared)
    }

    /// A waiter dropped before it finished; `true` if it was the last one, so the work was
    /// dropped unfinished (abandoned) and the key freed. Returns the run's key, for the hooks.
    #[inline]
    pub(crate) fn leave(&self, ticket: Ticket<K>) -> (Option<Arc<K>>, bool) {
        let Ticket { run, slot, key } = ticket;
        let (stale, wake, gone, abandoned) = self.inner.with(|inner| {
            let state = &mut inner.runs[run];
            state.live -= 1;
            if let Phase::Done(_) = state.phase {
                // The finisher took the waker slab; the last one out removes the state.
                let gone = (state.live == 0).then(|| inner.runs.remove(run));
                return (None, None, gone, false);
            }
            let stale = slot.and_then(|key| state.wakers.try_remove(key)).flatten();
            if slot.is_some() && state.driver == slot {
                state.driver = None;
            }
            if state.live == 0 {
                inner.unmap(run);
                let gone = inner.runs.remove(run);
                return (stale, None, Some(gone), true);
            }
            let wake = match state.phase {
                Phase::Idle(_) if state.driver.is_none() => take_one(state),
                _ => None,
            };
            (stale, wake, None, false)
        });
        if let Some(waker) = wake {
            waker.wake();
        }
        drop((stale, gone));
        (key, abandoned)
    }
}

/// Records `waker` for the waiter with slab key `slot` (registering it on first use); returns
/// the waker it replaces, to be dropped outside the lock.
fn record<K, T, E>(
    s: &mut State<K, T, E>,
    slot: &mut Option<usize>,
    waker: &Waker,
) -> Option<Waker> {
    match *slot {
        Some(key) => {
            let current = &mut s.wakers[key];
            match current {
                Some(w) if w.will_wake(waker) => None,
                _ => current.replace(waker.clone()),
            }
        }
        None => {
            *slot = Some(s.wakers.insert(Some(waker.clone())));
            None
        }
    }
}

/// Takes one recorded waker, to hand driving to its waiter.
fn take_one<K, T, E>(s: &mut State<K, T, E>) -> Option<Waker> {
    s.wakers.iter_mut().find_map(|(_, waker)| waker.take())
}

/// Polls the work; `None` if it panicked (caught with `std`).
#[inline]
fn poll_work<T, E>(work: &mut Work<T, E>, cx: &mut Context<'_>) -> Option<Poll<Result<T, E>>> {
    #[cfg(feature = "std")]
    {
        std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| work.as_mut().poll(cx))).ok()
    }
    #[cfg(not(feature = "std"))]
    {
        Some(work.as_mut().poll(cx))
    }
}

/// Fails the run if the poll of its work unwinds (without `std`, where it is not caught).
struct Unwind<'a, K, T, E, S> {
    engine: &'a Engine<K, T, E, S>,
    ticket: &'a Ticket<K>,
    armed: bool,
}

impl<K, T, E, S> Drop for Unwind<'_, K, T, E, S> {
    fn drop(&mut self) {
        if self.armed {
            self.engine.fail(self.ticket);
        }
    }
}
