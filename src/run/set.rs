//! # Implementation notes
//!
//! [`TaskSet`] is a small, safe `FuturesUnordered`: every future of one run has the same type,
//! so the set is a `Vec` of slots, each a reusable `Pin<Box<Option<Fut>>>` (a finished future
//! is dropped in place with `Pin::set(None)`; the next task started in that slot is written in
//! place, so a run that never has more than `n` futures allocates `n` boxes, once).
//!
//! Each slot has its own waker, made once: an `Arc<SlotWaker>` holding the slot index, a
//! `queued` flag and the set's shared ready list. Waking a slot whose flag is clear sets it and
//! pushes the index on the ready list under the lock, takes the run's waker out of the lock,
//! and wakes it after the section. The driver swaps the whole list out in one section (it
//! also stores its waker there, only when it is about to return `Pending`), clears a slot's
//! flag just before polling it, and polls only the slots in the list: a wake-up costs one
//! lock, a poll of the run costs no lock at all when nothing was woken (the `pending` atomic
//! says so).
//!
//! A waker outlives its task: a stale wake-up for a slot that is empty or holds a newer task
//! is a spurious poll (allowed by the `Future` contract) or a skip, never a lost wake-up.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::mem;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicBool, Ordering};

/// The ready list and the run's waker, behind one lock.
#[derive(Debug, Default)]
struct Queue {
    ready: Vec<usize>,
    parent: Option<Waker>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Set (under the lock) when `ready` is not empty; read without it.
    pending: AtomicBool,
}

#[derive(Debug)]
struct SlotWaker {
    index: usize,
    queued: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return; // already in the list
        }
        let parent = self.shared.queue.with(|q| {
            q.ready.push(self.index);
            self.shared.pending.store(true, Ordering::Release);
            q.parent.take()
        });
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

struct Slot<F, X> {
    future: Pin<Box<Option<F>>>,
    /// What travels with the task (its index, its gate permit); `None` when the slot is free.
    extra: Option<X>,
    token: Arc<SlotWaker>,
    waker: Waker,
}

/// An unordered set of futures of one type, polled only when woken.
pub(crate) struct TaskSet<F, X> {
    slots: Vec<Slot<F, X>>,
    free: Vec<usize>,
    len: usize,
    shared: Arc<Shared>,
    /// The ready list being worked through (kept to reuse its allocation), and how far.
    scratch: Vec<usize>,
    cursor: usize,
}

impl<F, X> core::fmt::Debug for TaskSet<F, X> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TaskSet")
            .field("len", &self.len)
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<F: Future, X> TaskSet<F, X> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            shared: Arc::new(Shared::default()),
            scratch: Vec::new(),
            cursor: 0,
        }
    }

    /// Futures in the set.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `future` and polls it once, in its slot. `Ready` hands back the output and the
    /// extra at once (the slot is free again).
    #[inline]
    pub(crate) fn start(&mut self, future: F, extra: X) -> Option<(F::Output, X)> {
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index].future.as_mut().set(Some(future));
                index
            }
            None => {
                let index = self.slots.len();
                let token = Arc::new(SlotWaker {
                    index,
                    queued: AtomicBool::new(false),
                    shared: Arc::clone(&self.shared),
                });
                let waker = Waker::from(Arc::clone(&token));
                self.slots.push(Slot {
                    future: Box::pin(Some(future)),
                    extra: None,
                    token,
                    waker,
                });
                index
            }
        };
        self.slots[index].extra = Some(extra);
        self.len += 1;
        self.poll_slot(index)
    }

    /// Polls the slot at `index` if it holds a future; on `Ready` frees the slot.
    #[inline]
    fn poll_slot(&mut self, index: usize) -> Option<(F::Output, X)> {
        let slot = &mut self.slots[index];
        let future = slot.future.as_mut().as_pin_mut()?;
        let mut cx = Context::from_waker(&slot.waker);
        match future.poll(&mut cx) {
            Poll::Pending => None,
            Poll::Ready(output) => {
                slot.future.as_mut().set(None);
                let extra = slot.extra.take();
                self.free.push(index);
                self.len -= 1;
                extra.map(|extra| (output, extra))
            }
        }
    }

    /// Whether some slot was woken since the last [`take_woken`](Self::take_woken).
    #[inline]
    pub(crate) fn has_woken(&self) -> bool {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Polls the slots woken so far, each once, at most `limit` of them, handing each output
    /// to `sink`. Returns how many futures were polled; the woken slots beyond `limit` are
    /// kept for the next call ([`has_leftover`](Self::has_leftover)).
    pub(crate) fn poll_woken(&mut self, limit: usize, mut sink: impl FnMut(F::Output, X)) -> usize {
        if self.cursor == self.scratch.len() {
            if !self.has_woken() {
                return 0;
            }
            self.scratch.clear();
            self.cursor = 0;
            let scratch = &mut self.scratch;
            let shared = &self.shared;
            shared.queue.with(|q| {
                mem::swap(&mut q.ready, scratch);
                shared.pending.store(false, Ordering::Release);
            });
        }
        let mut polled = 0;
        while polled < limit && self.cursor < self.scratch.len() {
            let index = self.scratch[self.cursor];
            self.cursor += 1;
            polled += 1;
            // Cleared before the poll: a wake-up during the poll queues the slot again.
            self.slots[index]
                .token
                .queued
                .store(false, Ordering::Release);
            if let Some((output, extra)) = self.poll_slot(index) {
                sink(output, extra);
            }
        }
        polled
    }

    /// Whether the last [`poll_woken`](Self::poll_woken) left woken slots unpolled.
    #[inline]
    pub(crate) fn has_leftover(&self) -> bool {
        self.cursor < self.scratch.len()
    }

    /// Stores the run's waker for the next wake-up. `false` (and nothing stored) when a slot
    /// was woken meanwhile: poll again instead of returning `Pending`.
    pub(crate) fn register(&self, waker: &Waker) -> bool {
        let (stored, old) = self.shared.queue.with(|q| {
            if !q.ready.is_empty() {
                return (false, None);
            }
            match &q.parent {
                Some(parent) if parent.will_wake(waker) => (true, None),
                _ => (true, q.parent.replace(waker.clone())),
            }
        });
        drop(old); // outside the section
        stored
    }
}
