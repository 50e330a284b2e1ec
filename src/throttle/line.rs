//! The throttle's waiting line: who may wait on the schedule.
//!
//! With `alloc`, a FIFO line: a [`Gate`] of one permit. A waiter joins it (`Gate::enter`,
//! FIFO, cancel safe) and the one holding the permit is the head of the line: the only
//! waiter that checks the schedule and sleeps until its slot. Once admitted it drops the
//! permit, which the gate hands to the next waiter and wakes it. A head dropped while
//! sleeping drops the permit the same way, passing its turn on; a waiter dropped in the line
//! leaves the gate's queue.
//!
//! Without `alloc` there is no queue to wait in: every waiter is its own head at once, and
//! waiting is the unordered "check, sleep until the slot, check again" loop.
//!
//! Either way the waiting future ([`Acquire`](super::Acquire)) follows one story: join the
//! line, wait for its turn, then wait on the schedule holding the turn.

use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};

#[cfg(feature = "alloc")]
use core::future::Future;

#[cfg(feature = "alloc")]
use crate::gate::{Enter, Gate, Permit};

/// The waiting line of one throttle.
pub(super) struct Line {
    #[cfg(feature = "alloc")]
    gate: Gate,
}

impl Line {
    #[cfg(not(loom))]
    pub(super) const fn new() -> Self {
        Self {
            #[cfg(feature = "alloc")]
            gate: Gate::new(1),
        }
    }

    #[cfg(loom)]
    pub(super) fn new() -> Self {
        Self {
            #[cfg(feature = "alloc")]
            gate: Gate::new(1),
        }
    }

    /// Joins the line; the returned future resolves to this waiter's turn.
    pub(super) fn join(&self) -> Join<'_> {
        Join {
            #[cfg(feature = "alloc")]
            enter: self.gate.enter(),
            #[cfg(not(feature = "alloc"))]
            _line: self,
        }
    }

    /// The line's gate of one, for a `'static` waiter reaching it through its `Arc<Throttle>`.
    #[cfg(feature = "alloc")]
    pub(super) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Whether nobody waits in the line, from one atomic load (a hint): the head holds the
    /// line's only permit, and nobody queues while it is free.
    #[cfg(feature = "tower")]
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.gate.has_free_permit()
    }

    /// Waiters in the line, the head included.
    pub(super) fn waiting(&self) -> usize {
        #[cfg(feature = "alloc")]
        {
            let stats = self.gate.stats();
            stats.in_use + stats.waiting
        }
        #[cfg(not(feature = "alloc"))]
        {
            0
        }
    }
}

/// The head of the line's turn: held while it waits on the schedule, given up on drop.
pub(super) struct Turn<'a> {
    /// `None` only if the gate refused (it never does: its limit is 1 and its queue is
    /// unbounded); the waiter then waits unordered.
    #[cfg(feature = "alloc")]
    _permit: Option<Permit<'a>>,
    #[cfg(not(feature = "alloc"))]
    _line: &'a Line,
}

#[cfg(feature = "alloc")]
pin_project_lite::pin_project! {
    /// Waiting for a turn: in the gate's FIFO queue.
    pub(super) struct Join<'a> {
        #[pin]
        enter: Enter<'a>,
    }
}

/// Waiting for a turn: without a queue, every waiter has its turn at once.
#[cfg(not(feature = "alloc"))]
pub(super) struct Join<'a> {
    _line: &'a Line,
}

impl<'a> Join<'a> {
    pub(super) fn poll_turn(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn<'a>> {
        #[cfg(feature = "alloc")]
        {
            self.project().enter.poll(cx).map(|permit| Turn {
                _permit: permit.ok(),
            })
        }
        #[cfg(not(feature = "alloc"))]
        {
            let _ = cx;
            Poll::Ready(Turn { _line: self._line })
        }
    }
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Line")
            .field("waiting", &self.waiting())
            .finish()
    }
}
