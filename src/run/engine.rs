//! # Implementation notes
//!
//! One [`Engine`] drives every run function. It owns the input ([`Source`]), the pacer (the
//! start-time limit, [`Pacer`]), the in-flight futures ([`TaskSet`]) and the outputs that
//! finished but were not yet handed out (`done`, in completion order). Nothing is spawned:
//! the engine makes progress only inside [`Engine::poll_next`], called by the run's own
//! future or stream.
//!
//! One call of `poll_next` is one pass:
//! 1. **Woken tasks.** Every in-flight future whose waker fired since the last pass is polled,
//!    once; the outputs of those that finish go to `done`, and their gate permit is released
//!    at that moment.
//! 2. **Hand out.** The oldest output in `done` is taken out to be returned.
//! 3. **Refill.** While `in flight + done < max_at_once` and the input is not exhausted, a
//!    start is prepared in aiometer's order, concurrency first:
//!    - the slot (the count above);
//!    - the next item of the input (an input of futures creates the future now, in its slot,
//!      so at most `max_at_once` futures ever exist; for `amap` / `run_each` the item is the
//!      argument, and `f` is not called yet);
//!    - a permit of the shared gate, if one is set;
//!    - last, the start time from the pacer;
//!
//!    and then the task starts: the future is made (`f(item)`) and polled for the first
//!    time, in the same pass; if it finishes at once its output goes to `done`. Any `Pending`
//!    (input, gate or pacer) ends the refill; whichever was pending has registered the run's
//!    waker, and what was obtained (the item, the permit) waits in the engine for the next
//!    pass. The start time is taken last and spent only by a start at that very instant, so
//!    starts stay spaced by the rate even behind a slow input or gate; an input that ends
//!    costs no permit and no start time; a run waiting for its input holds no shared permit.
//!    If nothing was woken and the new tasks finished at once, the output handed out comes
//!    from this step, and its slot is refilled in a second round.
//! 4. Return the output taken in step 2 (or one produced by step 3), or `None` when the input
//!    is exhausted and nothing is in flight or buffered, or else `Pending` after storing the
//!    run's waker in the task set (if a task was woken meanwhile, the pass starts over).
//!
//! An output waiting in `done` keeps its slot: `max_at_once` bounds futures and unconsumed
//! outputs together, so memory stays bounded whatever the input's length, and a consumer that
//! does not take outputs slows the start of new tasks (backpressure), never the progress of
//! started ones while the run is polled. One poll of a run's future or stream polls at most
//! [`BUDGET`] futures (woken ones beyond it wait in the set's list); past it the run wakes
//! itself and returns `Pending`, so tasks that keep waking themselves cannot monopolise the
//! executor's thread.
//!
//! Dropping the engine drops every in-flight future with its permit, the pending gate entry
//! (leaving the gate's queue) and the pending start-time sleep.

use alloc::collections::VecDeque;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::limits::Pacer;
use super::set::TaskSet;
use super::source::Source;
use crate::gate::{Enter, Gate, Permit};

/// The most futures one pass polls before the run yields to its executor.
pub(crate) const BUDGET: usize = 256;

type Output<S> = <<S as Source>::Item as Future>::Output;

pin_project! {
    /// The driving loop of every run function.
    pub(crate) struct Engine<'a, S, P>
    where
        S: Source,
        S::Item: Future,
    {
        #[pin]
        source: S,
        #[pin]
        pacer: P,
        set: TaskSet<S::Item, (usize, Option<Permit<'a>>)>,
        done: VecDeque<(usize, Output<S>)>,
        max: usize,
        gate: Option<&'a Gate>,
        enter: Option<Enter<'a>>,
        // The next task, pulled from the input, and its gate permit, while they wait for the
        // permit and the start time.
        next: Option<S::Raw>,
        permit: Option<Permit<'a>>,
        next_index: usize,
        input_done: bool,
        peak: usize,
    }
}

impl<'a, S, P> Engine<'a, S, P>
where
    S: Source,
    S::Item: Future,
    P: Pacer,
{
    pub(crate) fn new(source: S, pacer: P, max: usize, gate: Option<&'a Gate>) -> Self {
        Self {
            source,
            pacer,
            set: TaskSet::new(),
            done: VecDeque::new(),
            max,
            gate,
            enter: None,
            next: None,
            permit: None,
            next_index: 0,
            input_done: false,
            peak: 0,
        }
    }

    /// The input's lower bound of items not yet pulled.
    pub(crate) fn remaining_hint(&self) -> usize {
        self.source.size_hint().0
    }

    /// Outputs still to come: buffered, in flight, pulled, and the input's bounds.
    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        let here = self.done.len() + self.set.len() + usize::from(self.next.is_some());
        if self.input_done {
            return (here, Some(here));
        }
        let (lower, upper) = self.source.size_hint();
        (
            here.saturating_add(lower),
            upper.and_then(|upper| upper.checked_add(here)),
        )
    }

    /// Futures in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.set.len()
    }

    /// The most futures that were in flight at once.
    #[allow(dead_code)] // read by the unit tests
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// The next output in completion order, with the index of its input.
    ///
    /// Polls at most `*budget` futures (and counts them off); with the budget spent and no
    /// output to hand out, wakes the caller and returns `Pending`.
    pub(crate) fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        budget: &mut usize,
    ) -> Poll<Option<(usize, Output<S>)>> {
        let mut this = self.project();
        loop {
            // 1. Woken tasks.
            let done = &mut *this.done;
            *budget -= this.set.poll_woken(*budget, |output, (index, permit)| {
                drop(permit);
                done.push_back((index, output));
            });

            // 2. Hand out.
            let mut out = this.done.pop_front();

            // 3. Refill. A slot freed by handing out an output produced by the refill itself
            // (nothing was woken, the new task finished at once) is refilled in a second round.
            for round in 0..2 {
                while !*this.input_done
                    && this.set.len() + this.done.len() < *this.max
                    && *budget > 0
                {
                    if this.next.is_none() {
                        if this.source.size_hint().1 == Some(0) {
                            *this.input_done = true;
                            break;
                        }
                        match this.source.as_mut().poll_item(cx) {
                            Poll::Pending => break,
                            Poll::Ready(None) => {
                                *this.input_done = true;
                                break;
                            }
                            Poll::Ready(Some(raw)) => *this.next = Some(raw),
                        }
                    }
                    if let (Some(gate), None) = (*this.gate, &*this.permit) {
                        let enter = this.enter.get_or_insert_with(|| gate.enter());
                        match Pin::new(enter).poll(cx) {
                            Poll::Pending => break,
                            Poll::Ready(Ok(permit)) => {
                                *this.enter = None;
                                *this.permit = Some(permit);
                            }
                            Poll::Ready(Err(_refused)) => {
                                // A closed gate or a full waiter queue: ask again at the next
                                // poll (see "Shared limits" in the module docs).
                                *this.enter = None;
                                cx.waker().wake_by_ref();
                                break;
                            }
                        }
                    }
                    if this.pacer.as_mut().poll_start(cx).is_pending() {
                        break;
                    }
                    let Some(raw) = this.next.take() else {
                        break; // unreachable: `next` was filled above
                    };
                    let future = this.source.as_mut().make(raw);
                    let index = *this.next_index;
                    *this.next_index += 1;
                    *budget -= 1;
                    let permit = this.permit.take();
                    *this.peak = (*this.peak).max(this.set.len() + 1);
                    if let Some((output, (index, permit))) = this.set.start(future, (index, permit))
                    {
                        drop(permit);
                        this.done.push_back((index, output));
                    }
                }
                if round == 0 && out.is_none() {
                    out = this.done.pop_front();
                    if out.is_some() {
                        continue;
                    }
                }
                break;
            }

            // 4. Return.
            if out.is_some() {
                return Poll::Ready(out);
            }
            if *this.input_done && this.set.len() == 0 {
                return Poll::Ready(None);
            }
            if *budget == 0 || this.set.has_leftover() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if this.set.register(cx.waker()) {
                return Poll::Pending;
            }
        }
    }
}

impl<S, P> core::fmt::Debug for Engine<'_, S, P>
where
    S: Source,
    S::Item: Future,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("in_flight", &self.set.len())
            .field("done", &self.done.len())
            .field("max_at_once", &self.max)
            .field("started", &self.next_index)
            .field("input_done", &self.input_done)
            .finish_non_exhaustive()
    }
}
