//! Unit tests: the pure accumulator, and poll-level tests of who wakes whom with a counting
//! waker. Time is a `ManualTimer`.

use crate::test_util::{counting, poll, wakes};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use super::engine::{Accumulator, Push, SealReason};
use super::{BatchConfig, BatchError, Batcher, Part};
use crate::time::{ManualTimer, Timer};

const MS: Duration = Duration::from_millis(1);

// ---- The accumulator ----------------------------------------------------------------------

/// Pushes `rows` and seals by size when the push filled the batch, as the batcher does.
fn joined(
    acc: &mut Accumulator<Vec<u32>>,
    rows: Part<Vec<u32>>,
    len: usize,
) -> (usize, bool, Option<super::engine::Sealed<Vec<u32>>>) {
    match acc.push(rows, len) {
        Push::Joined {
            index,
            opened,
            full,
        } => (
            index,
            opened,
            full.then(|| acc.seal(SealReason::Size)).flatten(),
        ),
        Push::Full(_) => panic!("expected Joined, got Full"),
        Push::Incompatible(_) => panic!("expected Joined, got Incompatible"),
    }
}

/// A call's rows as a part: a single row for one-element vectors (as `call_one` pushes
/// them), several rows otherwise.
fn part(rows: Vec<u32>) -> Part<Vec<u32>> {
    match rows.as_slice() {
        [row] => Part::Row(*row),
        _ => Part::Rows(rows),
    }
}

/// The rows of a sealed batch's live parts, part by part.
fn live(parts: Vec<Option<Part<Vec<u32>>>>) -> Vec<Vec<u32>> {
    parts.into_iter().flatten().map(Part::into_rows).collect()
}

#[test]
fn accumulator_seals_at_the_target_without_splitting_calls() {
    let mut acc = Accumulator::new(3, 10 * MS, usize::MAX);
    let (index, opened, sealed) = joined(&mut acc, part(vec![1]), 1);
    assert_eq!((index, opened, sealed.is_none()), (0, true, true));
    let (index, opened, sealed) = joined(&mut acc, part(vec![2]), 1);
    assert_eq!((index, opened, sealed.is_none()), (1, false, true));
    assert_eq!(acc.queued(), 2);
    let (index, _, sealed) = joined(&mut acc, part(vec![3, 4]), 2);
    let sealed = sealed.expect("4 >= 3 rows: sealed by size");
    assert_eq!(index, 2);
    assert_eq!(live(sealed.parts), [vec![1], vec![2], vec![3, 4]]);
    assert_eq!((sealed.lens.as_slice(), sealed.rows), (&[1, 1, 2][..], 4));
    assert_eq!(sealed.reason, SealReason::Size);
    assert_eq!(acc.queued(), 4, "sealed rows stay queued until started");
    acc.started(4);
    assert_eq!(
        (acc.queued(), acc.open_rows(), acc.deadline()),
        (0, 0, None)
    );
}

#[test]
fn accumulator_seals_by_time_from_its_first_clock_reading() {
    let mut acc = Accumulator::new(10, 10 * MS, usize::MAX);
    joined(&mut acc, part(vec![1]), 1);
    assert_eq!(
        acc.deadline(),
        None,
        "the clock starts at the first seal_due"
    );
    assert!(acc.seal_due(5 * MS).is_none());
    assert_eq!(acc.deadline(), Some(15 * MS));
    joined(&mut acc, part(vec![2]), 1);
    assert!(acc.seal_due(14 * MS).is_none());
    let sealed = acc.seal_due(15 * MS).expect("due");
    assert_eq!(sealed.reason, SealReason::Time);
    assert_eq!(sealed.rows, 2);
    assert!(acc.seal_due(100 * MS).is_none(), "nothing open");
}

#[test]
fn accumulator_withdrawals_keep_the_deadline_and_discard_an_empty_batch() {
    let mut acc = Accumulator::new(10, 10 * MS, usize::MAX);
    joined(&mut acc, part(vec![1]), 1);
    assert!(acc.seal_due(Duration::ZERO).is_none());
    joined(&mut acc, part(vec![2, 3]), 2);
    joined(&mut acc, part(vec![4]), 1);
    let gone = acc.withdraw(0).expect("a live member");
    assert_eq!(
        (gone.rows, gone.len, gone.emptied),
        (Part::Row(1), 1, false)
    );
    assert!(acc.withdraw(0).is_none(), "withdrawn once");
    assert_eq!(acc.deadline(), Some(10 * MS), "the deadline does not move");
    assert_eq!(acc.queued(), 3);
    let sealed = acc.seal(SealReason::Explicit).unwrap();
    assert_eq!(live(sealed.parts), [vec![2, 3], vec![4]]);
    assert_eq!(sealed.lens, [0, 2, 1]);
    assert!(acc.withdraw(1).is_none(), "sealed: no withdrawal");

    joined(&mut acc, part(vec![9]), 1);
    let gone = acc.withdraw(0).unwrap();
    assert!(gone.emptied);
    assert_eq!(acc.open_rows(), 0);
    let (index, opened, _) = joined(&mut acc, part(vec![10]), 1);
    assert_eq!((index, opened), (0, true), "a fresh batch");
}

#[test]
fn accumulator_refuses_past_the_queue_bound() {
    let mut acc = Accumulator::new(10, 10 * MS, 3);
    joined(&mut acc, part(vec![1, 2]), 2);
    assert!(
        matches!(acc.push(part(vec![3, 4]), 2), Push::Full(Part::Rows(rows)) if rows == [3, 4])
    );
    assert!(matches!(acc.push(part(vec![0; 4]), 4), Push::Full(_)));
    joined(&mut acc, part(vec![3]), 1);
    assert_eq!(acc.queued(), 3);
    let sealed = acc.seal(SealReason::Explicit).unwrap();
    assert!(
        matches!(acc.push(part(vec![5]), 1), Push::Full(_)),
        "sealed rows still queue"
    );
    acc.started(sealed.rows);
    joined(&mut acc, part(vec![5]), 1);
}

// ---- Poll-level wake tests ----------------------------------------------------------------

type Echo = fn(Vec<u32>) -> core::future::Ready<Result<Vec<u32>, Infallible>>;

fn echo(rows: Vec<u32>) -> core::future::Ready<Result<Vec<u32>, Infallible>> {
    core::future::ready(Ok(rows))
}

fn batcher(timer: &ManualTimer, target: usize) -> Batcher<Vec<u32>, Echo, ManualTimer> {
    let config = BatchConfig::new(target, 10 * MS);
    Batcher::new(timer.clone(), config, echo as Echo).unwrap()
}

#[test]
fn the_sealer_completes_at_once_and_wakes_each_other_member_once() {
    let timer = ManualTimer::new();
    let batcher = batcher(&timer, 3);
    let (ca, wa) = counting();
    let (cb, wb) = counting();
    let (cc, wc) = counting();
    let mut a = batcher.call(vec![1]);
    let mut b = batcher.call(vec![2]);
    let mut c = batcher.call(vec![3]);
    assert!(poll(&mut a, &wa).is_pending());
    assert_eq!(
        timer.sleepers(),
        1,
        "the opener sleeps on the seal deadline"
    );
    assert!(poll(&mut b, &wb).is_pending());
    assert_eq!(timer.sleepers(), 1, "only the driver sleeps");
    assert_eq!(
        poll(&mut c, &wc),
        Poll::Ready(Ok(vec![3])),
        "the sealer drives"
    );
    assert_eq!((wakes(&ca), wakes(&cb), wakes(&cc)), (1, 1, 0));
    assert_eq!(poll(&mut b, &wb), Poll::Ready(Ok(vec![2])));
    assert_eq!(poll(&mut a, &wa), Poll::Ready(Ok(vec![1])));
    assert_eq!(timer.sleepers(), 0, "the opener dropped its sleep");
    assert_eq!(
        (wakes(&ca), wakes(&cb), wakes(&cc)),
        (1, 1, 0),
        "no spurious wakes"
    );
    assert_eq!(batcher.stats().batches_in_flight, 0);
}

#[test]
fn the_deadline_wakes_the_driver_only() {
    let timer = ManualTimer::new();
    let batcher = batcher(&timer, 10);
    let (ca, wa) = counting();
    let (cb, wb) = counting();
    let mut a = batcher.call(vec![1]);
    let mut b = batcher.call(vec![2]);
    assert!(poll(&mut a, &wa).is_pending());
    assert!(poll(&mut b, &wb).is_pending());
    timer.advance(10 * MS);
    assert_eq!(
        (wakes(&ca), wakes(&cb)),
        (1, 0),
        "the timer wakes the driver"
    );
    assert_eq!(poll(&mut a, &wa), Poll::Ready(Ok(vec![1])));
    assert_eq!(wakes(&cb), 1, "completion wakes the other member");
    assert_eq!(poll(&mut b, &wb), Poll::Ready(Ok(vec![2])));
    assert_eq!(batcher.stats().sealed_by_time, 1);
}

#[test]
fn a_dropped_driver_hands_over_to_one_member() {
    let timer = ManualTimer::new();
    let batcher = batcher(&timer, 10);
    let (_, wa) = counting();
    let (cb, wb) = counting();
    let (cc, wc) = counting();
    let mut a = batcher.call(vec![1]);
    let mut b = batcher.call(vec![2]);
    let mut c = batcher.call(vec![3]);
    assert!(poll(&mut a, &wa).is_pending());
    assert!(poll(&mut b, &wb).is_pending());
    assert!(poll(&mut c, &wc).is_pending());
    drop(a);
    assert_eq!(timer.sleepers(), 0, "the driver's sleep went with it");
    assert_eq!(
        (wakes(&cb), wakes(&cc)),
        (1, 0),
        "exactly one member is woken to drive"
    );
    assert!(poll(&mut b, &wb).is_pending());
    assert_eq!(
        timer.sleepers(),
        1,
        "the new driver sleeps on the same deadline"
    );
    assert_eq!(timer.next_deadline(), Some(10 * MS));
    timer.advance(10 * MS);
    assert_eq!((wakes(&cb), wakes(&cc)), (2, 0));
    assert_eq!(poll(&mut b, &wb), Poll::Ready(Ok(vec![2])));
    assert_eq!(wakes(&cc), 1);
    assert_eq!(poll(&mut c, &wc), Poll::Ready(Ok(vec![3])));
    assert_eq!(batcher.stats().rows_withdrawn, 1);
}

#[test]
fn flush_wakes_the_driver() {
    let timer = ManualTimer::new();
    let batcher = batcher(&timer, 10);
    let (ca, wa) = counting();
    let (cb, wb) = counting();
    let mut a = batcher.call(vec![1]);
    let mut b = batcher.call(vec![2]);
    assert!(poll(&mut a, &wa).is_pending());
    assert!(poll(&mut b, &wb).is_pending());
    assert_eq!(batcher.flush(), 2);
    assert_eq!((wakes(&ca), wakes(&cb)), (1, 0));
    assert_eq!(poll(&mut a, &wa), Poll::Ready(Ok(vec![1])));
    assert_eq!(wakes(&cb), 1);
    assert_eq!(poll(&mut b, &wb), Poll::Ready(Ok(vec![2])));
}

/// A future that completes when told, counting its polls.
struct Gated {
    open: Arc<AtomicUsize>,
    rows: Option<Vec<u32>>,
}

impl Future for Gated {
    type Output = Result<Vec<u32>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.open.load(Ordering::SeqCst) > 0 {
            Poll::Ready(Ok(self.rows.take().unwrap()))
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn a_member_polled_while_the_driver_is_away_takes_over() {
    let timer = ManualTimer::new();
    let open = Arc::new(AtomicUsize::new(0));
    let gate = Arc::clone(&open);
    let config = BatchConfig::new(2, 10 * MS);
    let batcher = Batcher::new(timer.clone(), config, move |rows: Vec<u32>| Gated {
        open: Arc::clone(&gate),
        rows: Some(rows),
    })
    .unwrap();
    let (ca, wa) = counting();
    let (cb, wb) = counting();
    let mut a = batcher.call(vec![1]);
    let mut b = batcher.call(vec![2]);
    assert!(poll(&mut a, &wa).is_pending());
    assert!(
        poll(&mut b, &wb).is_pending(),
        "b sealed and started the batch"
    );
    assert_eq!(
        timer.sleepers(),
        2,
        "a's seal sleep (stale), b's processing deadline"
    );
    open.store(1, Ordering::SeqCst);
    // `a` is polled first (spuriously): the future lies in the table, so `a` drives it.
    assert_eq!(poll(&mut a, &wa), Poll::Ready(Ok(vec![1])));
    assert_eq!((wakes(&ca), wakes(&cb)), (0, 1));
    assert_eq!(poll(&mut b, &wb), Poll::Ready(Ok(vec![2])));
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn a_panicking_batch_function_fails_the_other_members() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(2, 10 * MS);
    let batcher = Batcher::new(timer.clone(), config, |rows: Vec<u32>| {
        assert!(rows.len() < 2, "the model panics");
        core::future::ready(Ok::<_, Infallible>(rows))
    })
    .unwrap();
    let (ca, wa) = counting();
    let mut a = batcher.call(vec![1]);
    assert!(poll(&mut a, &wa).is_pending());
    let panicked = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let mut b = batcher.call(vec![2]);
        let _ = poll(&mut b, Waker::noop());
    }));
    assert!(panicked.is_err());
    assert_eq!(wakes(&ca), 1);
    assert_eq!(poll(&mut a, &wa), Poll::Ready(Err(BatchError::Panicked)));
    assert_eq!(batcher.stats().batches_in_flight, 0);
}

#[test]
fn a_stale_waker_is_replaced_and_dropped_outside_the_lock() {
    let timer = ManualTimer::new();
    let batcher = batcher(&timer, 3);
    let (c1, w1) = counting();
    let (c2, w2) = counting();
    let mut a = batcher.call(vec![1]);
    let mut b = batcher.call(vec![2]);
    assert!(poll(&mut a, &Waker::noop().clone()).is_pending());
    assert!(poll(&mut b, &w1).is_pending());
    assert!(poll(&mut b, &w2).is_pending(), "moved to another task");
    let mut c = batcher.call(vec![3]);
    assert!(poll(&mut c, Waker::noop()).is_ready());
    assert_eq!(
        (wakes(&c1), wakes(&c2)),
        (0, 1),
        "the latest waker is woken"
    );
    assert_eq!(Arc::strong_count(&c1), 2, "the stale waker was dropped");
    assert_eq!(poll(&mut b, &w2), Poll::Ready(Ok(vec![2])));
    assert_eq!(poll(&mut a, Waker::noop()), Poll::Ready(Ok(vec![1])));
    let _ = timer.now();
}
