//! # Implementation notes
//!
//! The accumulator: the pure part of a [`Batcher`](super::Batcher). It holds the one *open*
//! batch (the batch accepting rows) and the count of queued rows, and decides when a batch is
//! sealed. It never reads a clock (every method that needs the time takes `now`), never
//! wakes anything and never calls user code except [`Rows::compatible_parts`]; the facade
//! (`state.rs`) keeps it behind the batcher's lock together with the table of sealed
//! batches.
//!
//! ## State
//!
//! - `open`: `None`, or the open batch: the instant its clock started (`opened_at`: the
//!   first `seal_due` after it opened, which the facade calls on the very poll that pushed
//!   the batch's first rows, so in effect their arrival), its parts (one slot per member in arrival order; `None` once that member withdrew), their
//!   lengths, the live row count and the live member count.
//! - `queued`: rows accepted and not yet handed to the batch function: the open batch's, plus
//!   those of sealed batches that have not started (waiting for a concurrency slot).
//!
//! ## Transitions
//!
//! - **push(rows, len)**: refused with `Full(rows)` when `queued + len` would exceed
//!   `max_queued_rows` (so a call larger than the bound is always refused), and with
//!   `Incompatible(rows)` when the rows cannot join the open batch's. Otherwise the rows join
//!   the open batch (opening one if there is none) as member `index`; when the batch
//!   then holds `>= target_size` rows the push says so (`full`) and the caller seals it by
//!   size at once (`seal(Size)`, in the same lock section). Calls
//!   are never split, so a sealed batch may exceed the target.
//! - **withdraw(index)**: a member of the open batch leaves before sealing; its part is handed
//!   back (for the facade to drop outside the lock). When the last member leaves, the open
//!   batch is discarded: the next push opens a fresh one with a fresh deadline. A withdrawal
//!   never moves the deadline of a batch that still has members.
//! - **seal_due(now)**: seals by time when `now >= opened_at + max_wait`.
//! - **flush()**: seals the open batch now, whatever its size.
//! - **started(rows)**: rows of a sealed batch left the queue (the batch function was called,
//!   or every member of the sealed batch was dropped before it started).
//!
//! A sealed batch carries its parts by member (`None` for a withdrawn member) and every
//! member's length (0 for a withdrawn member), so the facade can split the result back by
//! member. A part is a [`Part`]: a single row (`call_one`) stays a row, so a single-row call
//! allocates nothing of its own on the way in or out.
//!
//! Buffers: the part and length lists of a batch are reused for a later batch (a few are kept
//! spare), because batches come one after the other with the same shape; allocating them
//! afresh for each batch showed up in the benchmark.

use alloc::vec::Vec;
use core::time::Duration;

use super::{Part, Rows};

/// Why a batch was sealed.
///
/// # Examples
///
/// ```
/// use dike::batch::SealReason;
///
/// assert_ne!(SealReason::Size, SealReason::Time);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SealReason {
    /// The batch reached `target_size` rows.
    Size,
    /// Its first row waited `max_wait`.
    Time,
    /// [`Batcher::flush`](super::Batcher::flush) sealed it.
    Explicit,
}

/// The accumulator of the open batch; see the module notes.
pub(crate) struct Accumulator<I: Rows> {
    target: usize,
    max_wait: Duration,
    max_queued: usize,
    open: Option<Open<I>>,
    queued: usize,
    /// Emptied part lists and length lists of earlier batches, reused for the next ones.
    spare_parts: Vec<Vec<Option<Part<I>>>>,
    spare_lens: Vec<Vec<usize>>,
}

/// How many spare buffers of each kind the accumulator keeps.
const SPARE: usize = 4;

struct Open<I: Rows> {
    /// When the batch's clock started: the first [`Accumulator::seal_due`] after it opened.
    opened_at: Option<Duration>,
    parts: Vec<Option<Part<I>>>,
    lens: Vec<usize>,
    rows: usize,
    live: usize,
}

/// The outcome of [`Accumulator::push`].
pub(crate) enum Push<I: Rows> {
    /// The rows joined the open batch as member `index`. `opened` says the push opened it;
    /// `full` that it now holds `>= target_size` rows: the caller seals it by size with
    /// [`Accumulator::seal`] (kept out of this value, so the common push moves no batch).
    Joined {
        index: usize,
        opened: bool,
        full: bool,
    },
    /// Refused: `max_queued_rows` would be exceeded. The rows are handed back.
    Full(Part<I>),
    /// Refused: the rows cannot be concatenated with the open batch's. Handed back.
    Incompatible(Part<I>),
}

/// A batch taken out of the accumulator.
pub(crate) struct Sealed<I: Rows> {
    /// The parts of the members by member index, in arrival order (`None` for a withdrawn
    /// member). Hand the emptied list back with [`Accumulator::recycle_parts`].
    pub(crate) parts: Vec<Option<Part<I>>>,
    /// Every member's row count, by member index (0 for a withdrawn member).
    pub(crate) lens: Vec<usize>,
    /// The batch's row count (the sum of `lens`).
    pub(crate) rows: usize,
    pub(crate) reason: SealReason,
}

/// The outcome of [`Accumulator::withdraw`].
pub(crate) struct Withdrawn<I: Rows> {
    /// The member's rows, never sent.
    pub(crate) rows: Part<I>,
    pub(crate) len: usize,
    /// The open batch lost its last member and was discarded.
    pub(crate) emptied: bool,
}

impl<I: Rows> Accumulator<I> {
    /// An empty accumulator. `target >= 1` (checked by the config).
    pub(crate) const fn new(target: usize, max_wait: Duration, max_queued: usize) -> Self {
        Self {
            target,
            max_wait,
            max_queued,
            open: None,
            queued: 0,
            spare_parts: Vec::new(),
            spare_lens: Vec::new(),
        }
    }

    /// Takes back a sealed batch's length list once its results are handed out.
    pub(crate) fn recycle_lens(&mut self, mut lens: Vec<usize>) {
        lens.clear();
        if self.spare_lens.len() < SPARE {
            self.spare_lens.push(lens);
        }
    }

    /// Takes back a sealed batch's part list once its rows are concatenated.
    pub(crate) fn recycle_parts(&mut self, mut parts: Vec<Option<Part<I>>>) {
        parts.clear(); // emptied by the caller: holds no rows
        if self.spare_parts.len() < SPARE {
            self.spare_parts.push(parts);
        }
    }

    /// Members to make room for when a batch opens: single-row calls fill it in `target`
    /// calls (bounded, so a huge target does not reserve a huge buffer up front).
    pub(crate) fn expected_members(&self) -> usize {
        if self.target < 256 { self.target } else { 256 }
    }

    /// Rows accepted and not yet started.
    pub(crate) const fn queued(&self) -> usize {
        self.queued
    }

    /// Rows in the open batch.
    pub(crate) fn open_rows(&self) -> usize {
        self.open.as_ref().map_or(0, |open| open.rows)
    }

    /// When the open batch is due to be sealed by time (`None` before its clock started).
    pub(crate) fn deadline(&self) -> Option<Duration> {
        let open = self.open.as_ref()?;
        Some(open.opened_at?.saturating_add(self.max_wait))
    }

    /// Adds `rows` (`len` of them, `len >= 1`) to the open batch; see the module notes.
    #[inline]
    pub(crate) fn push(&mut self, rows: Part<I>, len: usize) -> Push<I> {
        if len > self.max_queued.saturating_sub(self.queued) {
            return Push::Full(rows);
        }
        let opened = self.open.is_none();
        let capacity = self.expected_members();
        let (spare_parts, spare_lens) = (&mut self.spare_parts, &mut self.spare_lens);
        let open = self.open.get_or_insert_with(|| Open {
            opened_at: None,
            parts: spare_parts
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(capacity)),
            lens: spare_lens
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(capacity)),
            rows: 0,
            live: 0,
        });
        if let Some(first) = open.parts.iter().flatten().next() {
            if !I::compatible_parts(first, &rows) {
                return Push::Incompatible(rows);
            }
        }
        let index = open.parts.len();
        super::push_in_place(&mut open.parts, || Some(rows));
        super::push_in_place(&mut open.lens, || len);
        open.rows += len;
        open.live += 1;
        self.queued += len;
        Push::Joined {
            index,
            opened,
            full: open.rows >= self.target,
        }
    }

    /// Member `index` of the open batch leaves it. `None` if it is not a live member of the
    /// open batch (already withdrawn, or the batch is sealed).
    pub(crate) fn withdraw(&mut self, index: usize) -> Option<Withdrawn<I>> {
        let open = self.open.as_mut()?;
        let rows = open.parts.get_mut(index)?.take()?;
        let len = core::mem::take(&mut open.lens[index]);
        open.rows -= len;
        open.live -= 1;
        self.queued -= len;
        let emptied = open.live == 0;
        if emptied {
            if let Some(mut open) = self.open.take() {
                // Every part was withdrawn: the lists hold no rows.
                open.parts.clear();
                open.lens.clear();
                if self.spare_parts.len() < SPARE {
                    self.spare_parts.push(open.parts);
                }
                if self.spare_lens.len() < SPARE {
                    self.spare_lens.push(open.lens);
                }
            }
        }
        Some(Withdrawn { rows, len, emptied })
    }

    /// Seals the open batch by time if its deadline has passed at `now`. The first call for
    /// an open batch starts its clock at `now`.
    pub(crate) fn seal_due(&mut self, now: Duration) -> Option<Sealed<I>> {
        let open = self.open.as_mut()?;
        open.opened_at.get_or_insert(now);
        if now >= self.deadline()? {
            self.seal(SealReason::Time)
        } else {
            None
        }
    }

    /// Seals the open batch now (for any reason), if there is one.
    pub(crate) fn seal(&mut self, reason: SealReason) -> Option<Sealed<I>> {
        let open = self.open.take()?;
        Some(Sealed {
            parts: open.parts,
            lens: open.lens,
            rows: open.rows,
            reason,
        })
    }

    /// `rows` of a sealed batch left the queue.
    pub(crate) fn started(&mut self, rows: usize) {
        self.queued -= rows;
    }
}
