//! The batcher against Python dike's `@batch` test suite (ported on `ManualTimer`), plus the
//! cases the original does not cover: wrong lengths, processing timeouts, cancellation,
//! concurrency caps, queue bounds, random schedules (proptest) and a multi-threaded stress run.
#![cfg(not(loom))]

use core::convert::Infallible;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dike::batch::{BatchConfig, BatchError, BatchFn, BatchStats, Batcher, Call, CallOne, Rows};
use dike::error::ConfigValue;
use dike::time::{ManualTimer, Timer};
use futures_util::FutureExt;
use futures_util::future::{join_all, join3};
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

/// Wakes by raising a flag.
#[derive(Default)]
struct Flag(std::sync::atomic::AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `fut` to completion on the virtual clock: polls while it is woken, and when it is
/// pending and not woken, jumps the clock to the next deadline. Panics if it is pending with
/// nothing left to wake it.
fn run<F: Future>(timer: &ManualTimer, fut: F) -> F::Output {
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(fut);
    loop {
        flag.0.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        if flag.0.load(Ordering::SeqCst) {
            continue;
        }
        if timer.advance_to_next().is_none() {
            panic!("stuck: pending with no deadline left at {:?}", timer.now());
        }
    }
}

fn assert_clean<I: Rows, F: BatchFn<I>, T: Timer>(batcher: &Batcher<I, F, T>) {
    let stats = batcher.stats();
    assert_eq!(
        (stats.batches_in_flight, stats.queued_rows, stats.open_rows),
        (0, 0, 0),
        "{stats:?}"
    );
}

/// A batch function over rows of `(number, letter)` that records every batch it sees and
/// returns `results`.
type Seen = Arc<Mutex<Vec<Vec<(i32, &'static str)>>>>;
type Row = (i32, &'static str);
type Ready = core::future::Ready<Result<Vec<i32>, Infallible>>;
type Outcome = Result<Vec<u32>, BatchError<Infallible>>;

fn recording(results: Vec<i32>) -> (Seen, impl Fn(Vec<Row>) -> Ready) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let f = move |rows: Vec<(i32, &'static str)>| {
        log.lock().unwrap().push(rows);
        core::future::ready(Ok(results.clone()))
    };
    (seen, f)
}

// ---- The Python suite -------------------------------------------------------------------

#[test]
fn single_items_batchsize_reached() {
    let timer = ManualTimer::new();
    let (seen, f) = recording(vec![10, 11, 12]);
    let config = BatchConfig::new(3, Duration::from_secs(10));
    let batcher = Batcher::new(timer.clone(), config, f).unwrap();
    let result = run(
        &timer,
        join3(
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(1, "b")]),
            batcher.call(vec![(2, "c")]),
        ),
    );
    assert_eq!(result, (Ok(vec![10]), Ok(vec![11]), Ok(vec![12])));
    assert_eq!(*seen.lock().unwrap(), [vec![(0, "a"), (1, "b"), (2, "c")]]);
    assert_eq!(timer.now(), Duration::ZERO, "sealed by size, no waiting");
    assert_eq!(batcher.stats().sealed_by_size, 1);
}

/// The original's "mixed kwargs" test: its inconsistent-argument cases cannot be written in
/// Rust (the types see to it); the empty call is rejected, and the rest batch by time.
#[test]
fn empty_call_is_rejected_and_the_rest_batch_by_time() {
    let timer = ManualTimer::new();
    let (seen, f) = recording(vec![10, 11]);
    let config = BatchConfig::new(3, Duration::from_millis(10));
    let batcher = Batcher::new(timer.clone(), config, f).unwrap();
    let result = run(
        &timer,
        join3(
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(1, "b")]),
            batcher.call(vec![]),
        ),
    );
    assert_eq!(result, (Ok(vec![10]), Ok(vec![11]), Err(BatchError::Empty)));
    assert_eq!(
        BatchError::<Infallible>::Empty.to_string(),
        "empty call: no rows to batch"
    );
    assert_eq!(*seen.lock().unwrap(), [vec![(0, "a"), (1, "b")]]);
    assert_eq!(timer.now(), 10 * MS);
}

#[test]
fn single_items_timeout() {
    let timer = ManualTimer::new();
    let (seen, f) = recording(vec![10, 11, 12]);
    let config = BatchConfig::new(10, Duration::from_millis(10));
    let batcher = Batcher::new(timer.clone(), config, f).unwrap();
    let result = run(
        &timer,
        join3(
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(1, "b")]),
            batcher.call(vec![(2, "c")]),
        ),
    );
    assert_eq!(result, (Ok(vec![10]), Ok(vec![11]), Ok(vec![12])));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        timer.now(),
        10 * MS,
        "sealed when the first row waited max_wait"
    );
    assert_eq!(batcher.stats().sealed_by_time, 1);
}

#[allow(clippy::type_complexity)]
fn multi(target: usize) -> (ManualTimer, Seen, (Vec<i32>, Vec<i32>, Vec<i32>)) {
    let timer = ManualTimer::new();
    let (seen, f) = recording(vec![10, 11, 12, 13, 14]);
    let config = BatchConfig::new(target, Duration::from_millis(10));
    let batcher = Batcher::new(timer.clone(), config, f).unwrap();
    let (a, b, c) = run(
        &timer,
        join3(
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(1, "b"), (2, "c"), (3, "d")]),
            batcher.call(vec![(4, "e")]),
        ),
    );
    assert_clean(&batcher);
    (timer, seen, (a.unwrap(), b.unwrap(), c.unwrap()))
}

#[test]
fn multi_batch_size_reached() {
    let (timer, seen, result) = multi(5);
    assert_eq!(result, (vec![10], vec![11, 12, 13], vec![14]));
    assert_eq!(seen.lock().unwrap()[0].len(), 5);
    assert_eq!(timer.now(), Duration::ZERO);
}

#[test]
fn multi_item_timeout() {
    let (timer, seen, result) = multi(10);
    assert_eq!(result, (vec![10], vec![11, 12, 13], vec![14]));
    assert_eq!(
        seen.lock().unwrap()[0],
        [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")]
    );
    assert_eq!(timer.now(), 10 * MS);
}

#[test]
fn items_running_over_batch_size() {
    let timer = ManualTimer::new();
    let (seen, f) = recording(vec![10, 11, 12, 13, 14, 15]);
    let config = BatchConfig::new(5, Duration::from_secs(2));
    let batcher = Batcher::new(timer.clone(), config, f).unwrap();
    let result = run(
        &timer,
        join3(
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(1, "b"), (2, "c"), (3, "d")]),
            batcher.call(vec![(4, "e"), (5, "f")]),
        ),
    );
    assert_eq!(
        result,
        (Ok(vec![10]), Ok(vec![11, 12, 13]), Ok(vec![14, 15]))
    );
    assert_eq!(seen.lock().unwrap()[0].len(), 6, "calls are never split");
    assert_eq!(batcher.stats().max_batch_size, 6);
}

#[test]
fn upstream_error_reaches_all_callers() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(3, Duration::from_secs(10));
    let batcher = Batcher::new(timer.clone(), config, |rows: Vec<i32>| async move {
        assert_eq!(rows, [0, 1, 2]);
        Err::<Vec<i32>, _>("Upstream exception".to_string())
    })
    .unwrap();
    let (a, b, c) = run(
        &timer,
        join3(
            batcher.call(vec![0]),
            batcher.call(vec![1]),
            batcher.call(vec![2]),
        ),
    );
    let errors = [a.unwrap_err(), b.unwrap_err(), c.unwrap_err()];
    for err in &errors {
        assert_eq!(err.to_string(), "batch function failed: Upstream exception");
    }
    let (BatchError::Failed(first), BatchError::Failed(second)) = (&errors[0], &errors[2]) else {
        panic!("{errors:?}");
    };
    assert!(Arc::ptr_eq(first, second), "one error, shared");
    assert_eq!(batcher.stats().errors, 1);
    assert_clean(&batcher);
}

/// A small deterministic generator for the randomised tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn concurrent_calculations_do_not_clash() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(3, Duration::from_millis(10));
    let rng = Arc::new(Mutex::new(XorShift(0x9e37_79b9_7f4a_7c15)));
    let f_timer = timer.clone();
    let f_rng = Arc::clone(&rng);
    let batcher = Batcher::new(timer.clone(), config, move |rows: Vec<u64>| {
        let delay = Duration::from_micros(f_rng.lock().unwrap().next() % 10_000);
        let sleep = f_timer.sleep(delay);
        async move {
            sleep.await;
            Ok::<_, Infallible>(rows.iter().map(|x| x * 2).collect::<Vec<_>>())
        }
    })
    .unwrap();
    let worker = |_| {
        let (batcher, timer, rng) = (&batcher, &timer, &rng);
        async move {
            for _ in 0..20 {
                let number = rng.lock().unwrap().next() % (1 << 20);
                let result = batcher.call(vec![number]).await.unwrap();
                assert_eq!(result, [number * 2]);
                let pause = Duration::from_micros(rng.lock().unwrap().next() % 100_000);
                timer.sleep(pause).await;
            }
        }
    };
    run(&timer, join_all((0..5).map(worker)));
    let stats = batcher.stats();
    assert_eq!(stats.rows, 100);
    assert_clean(&batcher);
}

#[test]
fn illegal_configs_are_rejected() {
    let f = |rows: Vec<u8>| async move { Ok::<_, ()>(rows) };
    let timer = ManualTimer::new();
    let second = Duration::from_secs(1);
    let cases = [
        (
            BatchConfig::new(0, second),
            "target_size",
            ConfigValue::Int(0),
        ),
        (
            BatchConfig::new(1, Duration::ZERO),
            "max_wait",
            ConfigValue::Duration(Duration::ZERO),
        ),
        (
            BatchConfig::new(1, second).with_max_processing_time(Duration::ZERO),
            "max_processing_time",
            ConfigValue::Duration(Duration::ZERO),
        ),
        (
            BatchConfig::new(1, second).with_max_concurrent_batches(0),
            "max_concurrent_batches",
            ConfigValue::Int(0),
        ),
        (
            BatchConfig::new(1, second).with_max_queued_rows(0),
            "max_queued_rows",
            ConfigValue::Int(0),
        ),
    ];
    for (config, parameter, value) in cases {
        let err = Batcher::new(timer.clone(), config, f).unwrap_err();
        assert_eq!((err.parameter(), err.value()), (parameter, value));
        assert!(err.to_string().contains(parameter), "{err}");
    }
    assert!(Batcher::new(timer, BatchConfig::new(1, Duration::from_nanos(1)), f).is_ok());
}

#[test]
fn internal_state_is_empty_after_a_batch() {
    let timer = ManualTimer::new();
    let (_seen, f) = recording(vec![10, 11, 12]);
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(3, Duration::from_secs(10)),
        f,
    )
    .unwrap();
    let result = run(
        &timer,
        join3(
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(0, "a")]),
        ),
    );
    assert_eq!(result, (Ok(vec![10]), Ok(vec![11]), Ok(vec![12])));
    assert_clean(&batcher);
    assert_eq!(timer.sleepers(), 0, "no sleep left behind");
}

#[test]
fn internal_state_is_empty_after_a_cancelled_member() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(3, Duration::from_millis(10));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let batcher = Batcher::new(timer.clone(), config, move |rows: Vec<i32>| {
        log.lock().unwrap().push(rows.clone());
        async move { Ok::<_, Infallible>(rows.iter().map(|x| x + 10).collect::<Vec<_>>()) }
    })
    .unwrap();
    let mut first = Box::pin(batcher.call(vec![0]));
    assert!(first.as_mut().now_or_never().is_none());
    let second = batcher.call(vec![1]);
    let third = batcher.call(vec![2]);
    drop(first);
    let (b, c) = run(&timer, futures_util::future::join(second, third));
    assert_eq!((b, c), (Ok(vec![11]), Ok(vec![12])));
    assert_eq!(
        *seen.lock().unwrap(),
        [vec![1, 2]],
        "the cancelled row was never sent"
    );
    assert_eq!(batcher.stats().rows_withdrawn, 1);
    assert_clean(&batcher);
}

#[test]
fn readme_example() {
    let timer = ManualTimer::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let config = BatchConfig::new(3, Duration::from_secs(10));
    let add_args = Batcher::new(timer.clone(), config, move |rows: Vec<(i32, i32)>| {
        let (arg1, arg2): (Vec<i32>, Vec<i32>) = rows.iter().copied().unzip();
        log.lock().unwrap().push((arg1, arg2));
        async move { Ok::<_, Infallible>(rows.iter().map(|(a, b)| a + b).collect::<Vec<_>>()) }
    })
    .unwrap();
    let result = run(
        &timer,
        join3(
            add_args.call(vec![(0, 1)]),
            add_args.call(vec![(1, 1)]),
            add_args.call(vec![(2, 1), (3, 1)]),
        ),
    );
    assert_eq!(result, (Ok(vec![1]), Ok(vec![2]), Ok(vec![3, 4])));
    assert_eq!(
        *seen.lock().unwrap(),
        [(vec![0, 1, 2, 3], vec![1, 1, 1, 1])]
    );
}

#[cfg(feature = "ndarray")]
#[test]
fn numpy_mode_batches_arrays_along_axis_0() {
    use ndarray::{Array1, Array2, array};

    let timer = ManualTimer::new();
    let config = BatchConfig::new(3, Duration::from_secs(10));
    let batcher = Batcher::new(timer.clone(), config, |rows: Array2<i32>| async move {
        assert_eq!(rows, array![[0, 100], [1, 101], [2, 102]]);
        Ok::<_, Infallible>(Array1::from(vec![10, 11, 12]))
    })
    .unwrap();
    let result = run(
        &timer,
        join3(
            batcher.call(array![[0, 100]]),
            batcher.call(array![[1, 101]]),
            batcher.call(array![[2, 102]]),
        ),
    );
    assert_eq!(result, (Ok(array![10]), Ok(array![11]), Ok(array![12])));
    let mut waiting = Box::pin(batcher.call(array![[1, 2]]));
    assert!(waiting.as_mut().now_or_never().is_none());
    let wrong = batcher.call(array![[1, 2, 3]]).now_or_never();
    assert_eq!(wrong, Some(Err(BatchError::Incompatible)));
    assert_eq!(batcher.stats().rejected, 1);
}

#[cfg(feature = "ndarray")]
#[test]
fn numpy_mode_call_one_takes_a_row_and_checks_its_shape() {
    use ndarray::{Array1, Array2, array};

    let timer = ManualTimer::new();
    let config = BatchConfig::new(3, Duration::from_secs(10));
    let batcher = Batcher::new(timer.clone(), config, |rows: Array2<i32>| async move {
        assert_eq!(rows, array![[0, 100], [1, 101], [2, 102]]);
        Ok::<_, Infallible>(rows.sum_axis(ndarray::Axis(1)))
    })
    .unwrap();
    let result = run(
        &timer,
        join3(
            batcher.call_one(array![0, 100]),
            batcher.call(array![[1, 101]]),
            batcher.call_one(Array1::from(vec![2, 102])),
        ),
    );
    // `call_one` resolves to the output's row (a 0-d array here), `call` to its slice.
    assert_eq!(result.0.map(|r| r.into_scalar()), Ok(100));
    assert_eq!(result.1, Ok(array![102]));
    assert_eq!(result.2.map(|r| r.into_scalar()), Ok(104));
    let mut waiting = Box::pin(batcher.call_one(array![1, 2]));
    assert!(waiting.as_mut().now_or_never().is_none());
    let wrong = batcher.call_one(array![1, 2, 3]).now_or_never();
    assert_eq!(wrong.map(|r| r.err()), Some(Some(BatchError::Incompatible)));
    let wrong = batcher.call(array![[1, 2, 3]]).now_or_never();
    assert_eq!(wrong, Some(Err(BatchError::Incompatible)));
    drop(waiting);
    assert_clean(&batcher);
}

#[test]
fn call_one_and_call_share_a_batch_in_arrival_order() {
    let timer = ManualTimer::new();
    let (seen, f) = recording(vec![10, 11, 12, 13, 14]);
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(5, Duration::from_secs(1)),
        f,
    )
    .unwrap();
    let (a, b, c) = run(
        &timer,
        join3(
            batcher.call_one((0, "a")),
            batcher.call(vec![(1, "b"), (2, "c"), (3, "d")]),
            batcher.call(vec![(4, "e")]),
        ),
    );
    assert_eq!((a, b, c), (Ok(10), Ok(vec![11, 12, 13]), Ok(vec![14])));
    assert_eq!(
        *seen.lock().unwrap(),
        [vec![(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")]]
    );
    assert_clean(&batcher);
}

/// A `Rows` that implements only the required methods, so the batcher goes through the
/// default part-level methods (`concat`/`split` underneath).
#[derive(Debug, Clone, PartialEq)]
struct Column(Vec<i32>);

impl Rows for Column {
    type Row = i32;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn concat(parts: Vec<Self>) -> Self {
        Column(parts.into_iter().flat_map(|p| p.0).collect())
    }

    fn split(self, lens: &[usize]) -> Vec<Self> {
        let mut rows = self.0.into_iter();
        lens.iter()
            .map(|&n| Column(rows.by_ref().take(n).collect()))
            .collect()
    }

    fn from_row(row: i32) -> Self {
        Column(vec![row])
    }

    fn into_row(self) -> Result<i32, Self> {
        match self.0.as_slice() {
            [row] => Ok(*row),
            _ => Err(self),
        }
    }
}

#[test]
fn a_rows_type_with_only_the_required_methods_batches_rows_and_calls() {
    let timer = ManualTimer::new();
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(4, Duration::from_secs(1)),
        |rows: Column| async move {
            assert_eq!(rows, Column(vec![1, 2, 3, 4]));
            Ok::<_, Infallible>(Column(rows.0.iter().map(|x| x * 10).collect()))
        },
    )
    .unwrap();
    let (a, b, c) = run(
        &timer,
        join3(
            batcher.call_one(1),
            batcher.call(Column(vec![2, 3])),
            batcher.call_one(4),
        ),
    );
    assert_eq!((a, b, c), (Ok(10), Ok(Column(vec![20, 30])), Ok(40)));
    assert_clean(&batcher);
}

// ---- Beyond the original ------------------------------------------------------------------

#[test]
fn wrong_length_is_an_error_for_every_caller() {
    let timer = ManualTimer::new();
    let (_seen, f) = recording(vec![10, 11]);
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(4, Duration::from_secs(1)),
        f,
    )
    .unwrap();
    let (a, b, c) = run(
        &timer,
        join3(
            batcher.call(vec![(0, "a")]),
            batcher.call(vec![(1, "b"), (2, "c")]),
            batcher.call(vec![(3, "d")]),
        ),
    );
    let expected = BatchError::WrongLength {
        expected: 4,
        actual: 2,
    };
    assert_eq!(
        (a, b, c),
        (
            Err(expected.clone()),
            Err(expected.clone()),
            Err(expected.clone())
        )
    );
    assert_eq!(
        expected.to_string(),
        "batch function returned 2 rows for a batch of 4"
    );
    assert_eq!(batcher.stats().errors, 1);
    assert_clean(&batcher);
}

/// Sets its flag when dropped: shows the batch function's future was dropped.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn processing_timeout_reaches_every_caller_and_drops_the_future() {
    let timer = ManualTimer::new();
    let dropped = Arc::new(AtomicUsize::new(0));
    let config = BatchConfig::new(2, Duration::from_secs(1))
        .with_max_processing_time(Duration::from_millis(100));
    let (f_timer, f_dropped) = (timer.clone(), Arc::clone(&dropped));
    let batcher = Batcher::new(timer.clone(), config, move |rows: Vec<u8>| {
        let flag = DropFlag(Arc::clone(&f_dropped));
        let sleep = f_timer.sleep(Duration::from_secs(5));
        async move {
            let _flag = flag;
            sleep.await;
            Ok::<_, Infallible>(rows)
        }
    })
    .unwrap();
    let (a, b) = run(
        &timer,
        futures_util::future::join(batcher.call(vec![1]), batcher.call(vec![2])),
    );
    let expected = BatchError::TimedOut {
        after: Duration::from_millis(100),
    };
    assert_eq!((a, b), (Err(expected.clone()), Err(expected)));
    assert_eq!(timer.now(), Duration::from_millis(100));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the future was dropped");
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(batcher.stats().timeouts, 1);
    assert_clean(&batcher);
}

#[test]
fn withdraw_before_seal_never_sends_the_rows() {
    let timer = ManualTimer::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(4, Duration::from_secs(1)),
        move |rows: Vec<i32>| {
            log.lock().unwrap().push(rows.clone());
            async move { Ok::<_, Infallible>(rows) }
        },
    )
    .unwrap();
    let mut first = Box::pin(batcher.call(vec![0]));
    let mut middle = Box::pin(batcher.call(vec![1, 2]));
    assert!(first.as_mut().now_or_never().is_none());
    assert!(middle.as_mut().now_or_never().is_none());
    assert_eq!(batcher.stats().open_rows, 3);
    drop(middle); // withdraws 2 rows: the batch, 1 row of 4, stays open
    assert_eq!(batcher.stats().open_rows, 1);
    let (a, b, c) = run(
        &timer,
        join3(first, batcher.call(vec![3, 4]), batcher.call(vec![5])),
    );
    assert_eq!((a, b, c), (Ok(vec![0]), Ok(vec![3, 4]), Ok(vec![5])));
    assert_eq!(*seen.lock().unwrap(), [vec![0, 3, 4, 5]]);
    assert_eq!(timer.now(), Duration::ZERO, "sealed by size");
    let stats = batcher.stats();
    assert_eq!((stats.rows_withdrawn, stats.batches_dropped), (2, 0));
    assert_clean(&batcher);
}

#[test]
fn first_caller_dropped_while_the_others_wait_for_the_deadline() {
    let timer = ManualTimer::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(10, Duration::from_millis(10)),
        move |rows: Vec<i32>| {
            log.lock().unwrap().push(rows.clone());
            async move { Ok::<_, Infallible>(rows) }
        },
    )
    .unwrap();
    let mut first = Box::pin(batcher.call(vec![0]));
    let mut second = Box::pin(batcher.call(vec![1]));
    let mut third = Box::pin(batcher.call(vec![2]));
    assert!(first.as_mut().now_or_never().is_none());
    timer.advance(4 * MS);
    assert!(second.as_mut().now_or_never().is_none());
    assert!(third.as_mut().now_or_never().is_none());
    assert_eq!(timer.sleepers(), 1, "only the driver sleeps");
    drop(first);
    let (b, c) = run(&timer, futures_util::future::join(second, third));
    assert_eq!((b, c), (Ok(vec![1]), Ok(vec![2])));
    assert_eq!(
        timer.now(),
        10 * MS,
        "the batch keeps the first row's deadline"
    );
    assert_eq!(*seen.lock().unwrap(), [vec![1, 2]]);
    assert_clean(&batcher);
}

#[test]
fn every_member_of_a_sealed_batch_dropped_drops_its_call() {
    let timer = ManualTimer::new();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (f_timer, f_dropped) = (timer.clone(), Arc::clone(&dropped));
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(2, Duration::from_secs(1)),
        move |rows: Vec<u8>| {
            let flag = DropFlag(Arc::clone(&f_dropped));
            let sleep = f_timer.sleep(Duration::from_secs(1));
            async move {
                let _flag = flag;
                sleep.await;
                Ok::<_, Infallible>(rows)
            }
        },
    )
    .unwrap();
    let mut a = Box::pin(batcher.call(vec![1]));
    let mut b = Box::pin(batcher.call(vec![2]));
    assert!(a.as_mut().now_or_never().is_none());
    assert!(
        b.as_mut().now_or_never().is_none(),
        "sealed and started, still running"
    );
    assert_eq!(batcher.stats().batches, 1);
    drop(b); // the driver: hands over to `a`
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "a's slice is still wanted"
    );
    drop(a);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "nobody is left: the call is dropped"
    );
    assert_eq!(batcher.stats().batches_dropped, 1);
    assert_eq!(timer.sleepers(), 0);
    assert_clean(&batcher);
}

#[test]
fn max_concurrent_batches_runs_batches_one_at_a_time() {
    let timer = ManualTimer::new();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f_timer, f_running, f_peak) = (timer.clone(), Arc::clone(&running), Arc::clone(&peak));
    let config = BatchConfig::new(1, Duration::from_secs(1)).with_max_concurrent_batches(1);
    let batcher = Batcher::new(timer.clone(), config, move |rows: Vec<u8>| {
        let now = f_running.fetch_add(1, Ordering::SeqCst) + 1;
        f_peak.fetch_max(now, Ordering::SeqCst);
        let sleep = f_timer.sleep(Duration::from_millis(10));
        let running = Arc::clone(&f_running);
        async move {
            sleep.await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(rows)
        }
    })
    .unwrap();
    let timed = |row: u8| {
        let (batcher, timer) = (&batcher, &timer);
        async move {
            let out = batcher.call_one(row).await.unwrap();
            (out, timer.now())
        }
    };
    let (a, b, c) = run(&timer, join3(timed(1), timed(2), timed(3)));
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    let mut ends = [a.1, b.1, c.1];
    ends.sort();
    assert_eq!(
        ends,
        [10 * MS, 20 * MS, 30 * MS],
        "one batch after the other"
    );
    assert_eq!((a.0, b.0, c.0), (1, 2, 3));
    assert_clean(&batcher);
}

#[test]
fn max_queued_rows_rejects_at_once() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(10, Duration::from_millis(5)).with_max_queued_rows(3);
    let batcher = Batcher::new(timer.clone(), config, |rows: Vec<u8>| async move {
        Ok::<_, Infallible>(rows)
    })
    .unwrap();
    let mut first = Box::pin(batcher.call(vec![1, 2]));
    assert!(first.as_mut().now_or_never().is_none());
    let rejected = batcher.call(vec![3, 4]).now_or_never();
    assert_eq!(
        rejected,
        Some(Err(BatchError::QueueFull { max_queued_rows: 3 }))
    );
    let too_big = batcher.call(vec![0; 4]).now_or_never();
    assert!(matches!(too_big, Some(Err(BatchError::QueueFull { .. }))));
    let (a, b) = run(
        &timer,
        futures_util::future::join(first, batcher.call(vec![3])),
    );
    assert_eq!((a, b), (Ok(vec![1, 2]), Ok(vec![3])));
    assert_eq!(batcher.stats().rejected, 2);
    assert_clean(&batcher);
}

#[test]
fn flush_seals_now() {
    let timer = ManualTimer::new();
    let batcher = Batcher::new(
        timer.clone(),
        BatchConfig::new(10, Duration::from_secs(60)),
        |rows: Vec<u8>| async move { Ok::<_, Infallible>(rows) },
    )
    .unwrap();
    assert_eq!(batcher.flush(), 0, "nothing open");
    let mut a = Box::pin(batcher.call(vec![1]));
    let mut b = Box::pin(batcher.call(vec![2, 3]));
    assert!(a.as_mut().now_or_never().is_none());
    assert!(b.as_mut().now_or_never().is_none());
    assert_eq!(batcher.flush(), 3);
    assert_eq!(
        b.now_or_never(),
        Some(Ok(vec![2, 3])),
        "any member may drive"
    );
    assert_eq!(a.now_or_never(), Some(Ok(vec![1])));
    assert_eq!(batcher.stats().sealed_explicitly, 1);
    assert_eq!(timer.now(), Duration::ZERO);
    assert_clean(&batcher);
}

#[test]
fn several_batchers_share_one_timer() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(10, Duration::from_millis(5));
    let double = Batcher::new(timer.clone(), config, |rows: Vec<u32>| async move {
        Ok::<_, Infallible>(rows.iter().map(|x| x * 2).collect::<Vec<_>>())
    })
    .unwrap();
    let negate =
        Batcher::new(
            timer.clone(),
            config.with_max_wait(Duration::from_millis(7)),
            |rows: Vec<i32>| async move {
                Ok::<_, Infallible>(rows.iter().map(|x| -x).collect::<Vec<_>>())
            },
        )
        .unwrap();
    let (a, b) = run(
        &timer,
        futures_util::future::join(double.call_one(4), negate.call_one(4)),
    );
    assert_eq!((a, b), (Ok(8), Ok(-4)));
    assert_eq!(timer.now(), 7 * MS);
}

#[test]
#[should_panic(expected = "`Call` polled after completion")]
fn call_polled_after_completion_panics() {
    let batcher = Batcher::new(
        ManualTimer::new(),
        BatchConfig::new(1, Duration::from_secs(1)),
        |rows: Vec<u8>| async move { Ok::<_, Infallible>(rows) },
    )
    .unwrap();
    let mut call = batcher.call(vec![1]);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut call).poll(&mut cx).is_ready());
    let _ = Pin::new(&mut call).poll(&mut cx);
}

#[test]
#[should_panic(expected = "`CallOne` polled after completion")]
fn call_one_polled_after_completion_panics() {
    let batcher = Batcher::new(
        ManualTimer::new(),
        BatchConfig::new(1, Duration::from_secs(1)),
        |rows: Vec<u8>| async move { Ok::<_, Infallible>(rows) },
    )
    .unwrap();
    let mut call = batcher.call_one(1);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut call).poll(&mut cx).is_ready());
    let _ = Pin::new(&mut call).poll(&mut cx);
}

#[test]
#[should_panic(expected = "`CallOwned` polled after completion")]
fn call_owned_polled_after_completion_panics() {
    let batcher = Arc::new(
        Batcher::new(
            ManualTimer::new(),
            BatchConfig::new(1, Duration::from_secs(1)),
            |rows: Vec<u8>| async move { Ok::<_, Infallible>(rows) },
        )
        .unwrap(),
    );
    let mut call = batcher.call_owned(vec![1]);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut call).poll(&mut cx).is_ready());
    let _ = Pin::new(&mut call).poll(&mut cx);
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<BatchConfig>();
    send_sync::<BatchStats>();
    send_sync::<BatchError<std::io::Error>>();
    let batcher = Batcher::new(
        ManualTimer::new(),
        BatchConfig::new(1, Duration::from_secs(1)),
        |rows: Vec<u8>| async move { Ok::<_, std::io::Error>(rows) },
    )
    .unwrap();
    fn sync<T: Send + Sync>(_: &T) {}
    sync(&batcher);
    let call: Call<'_, _, _, _> = batcher.call(vec![1]);
    send(&call);
    let one: CallOne<'_, _, _, _> = batcher.call_one(1);
    send(&one);
    drop((call, one));
    let batcher = Arc::new(batcher);
    let owned: dike::batch::CallOwned<_, _, _> = batcher.call_owned(vec![1]);
    fn send_static<T: Send + 'static>(_: &T) {}
    send_static(&owned);
}

// ---- Random schedules -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// A new call with this many rows, polled once.
    Call(usize),
    /// Drop the pending call at this index (modulo the live ones).
    Drop(usize),
    /// Poll every pending call once.
    PollAll,
    Advance(u64),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..5).prop_map(Op::Call),
        2 => any::<usize>().prop_map(Op::Drop),
        2 => Just(Op::PollAll),
        1 => (0u64..15).prop_map(Op::Advance),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    /// Every surviving caller gets exactly its rows' results; no row is sent twice; every row
    /// of a surviving caller is sent; rows withdrawn before sealing are never sent.
    #[test]
    fn random_arrivals_sizes_and_drops(
        ops in proptest::collection::vec(op(), 1..60),
        target in 1usize..6,
        cap in proptest::option::of(1usize..3),
        slow in any::<bool>(),
    ) {
        let timer = ManualTimer::new();
        let mut config = BatchConfig::new(target, Duration::from_millis(10))
            .with_max_processing_time(Duration::from_millis(25));
        if let Some(cap) = cap {
            config = config.with_max_concurrent_batches(cap);
        }
        let sent = Arc::new(Mutex::new(Vec::<u32>::new()));
        let (log, f_timer) = (Arc::clone(&sent), timer.clone());
        let batcher = Batcher::new(timer.clone(), config, move |rows: Vec<u32>| {
            log.lock().unwrap().extend(&rows);
            let sleep = f_timer.sleep(if slow { Duration::from_millis(3) } else { Duration::ZERO });
            async move {
                sleep.await;
                Ok::<_, Infallible>(rows.iter().map(|x| x * 2 + 1).collect::<Vec<_>>())
            }
        })
        .unwrap();
        let mut next = 0u32;
        let mut pending: Vec<(Vec<u32>, Pin<Box<Call<'_, _, _, _>>>)> = Vec::new();
        let mut done: Vec<(Vec<u32>, Outcome)> = Vec::new();
        let mut withdrawn_unsealed: Vec<u32> = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut poll_all = |pending: &mut Vec<(Vec<u32>, Pin<Box<Call<'_, _, _, _>>>)>,
                            done: &mut Vec<_>| {
            let mut i = 0;
            while i < pending.len() {
                if let Poll::Ready(out) = pending[i].1.as_mut().poll(&mut cx) {
                    let (rows, _) = pending.remove(i);
                    done.push((rows, out));
                } else {
                    i += 1;
                }
            }
        };
        for op in ops {
            match op {
                Op::Call(n) => {
                    let rows: Vec<u32> = (next..next + n as u32).collect();
                    next += n as u32;
                    pending.push((rows.clone(), Box::pin(batcher.call(rows))));
                    let last = pending.len() - 1;
                    let mut cx = Context::from_waker(Waker::noop());
                    if let Poll::Ready(out) = pending[last].1.as_mut().poll(&mut cx) {
                        let (rows, _) = pending.remove(last);
                        done.push((rows, out));
                    }
                }
                Op::Drop(i) if !pending.is_empty() => {
                    let open_before = batcher.stats().open_rows;
                    let (rows, call) = pending.remove(i % pending.len());
                    drop(call);
                    if batcher.stats().open_rows + rows.len() == open_before {
                        withdrawn_unsealed.extend(rows);
                    }
                }
                Op::Drop(_) => {}
                Op::PollAll => poll_all(&mut pending, &mut done),
                Op::Advance(ms) => timer.advance(Duration::from_millis(ms)),
                Op::Flush => {
                    batcher.flush();
                }
            }
        }
        // Let everything finish.
        let mut rounds = 0;
        while !pending.is_empty() {
            poll_all(&mut pending, &mut done);
            if !pending.is_empty() && timer.advance_to_next().is_none() {
                batcher.flush();
            }
            rounds += 1;
            prop_assert!(rounds < 10_000, "stuck");
        }
        let sent = sent.lock().unwrap().clone();
        let mut counts = HashMap::new();
        for row in &sent {
            *counts.entry(*row).or_insert(0) += 1;
        }
        prop_assert!(counts.values().all(|&c| c == 1), "a row was sent twice: {sent:?}");
        for (rows, out) in &done {
            match out {
                Ok(out) => {
                    let expected: Vec<u32> = rows.iter().map(|x| x * 2 + 1).collect();
                    prop_assert_eq!(out, &expected);
                    for row in rows {
                        prop_assert!(counts.contains_key(row), "row {} lost", row);
                    }
                }
                Err(BatchError::TimedOut { .. }) => prop_assert!(slow),
                Err(err) => prop_assert!(false, "unexpected {:?}", err),
            }
        }
        for row in &withdrawn_unsealed {
            prop_assert!(!counts.contains_key(row), "withdrawn row {} was sent", row);
        }
        assert_clean(&batcher);
        prop_assert_eq!(timer.sleepers(), 0);
    }
}

// ---- Multi-threaded stress ----------------------------------------------------------------

#[test]
fn stress_two_workers_100k_rows() {
    const TASKS: u64 = 100;
    const CALLS: u64 = 1_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let timer = ManualTimer::new();
    let config = BatchConfig::new(64, Duration::from_millis(1))
        .with_max_concurrent_batches(4)
        .with_max_queued_rows(10_000);
    // Every row ever sent to the batch function: none may arrive twice.
    let sent = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let log = Arc::clone(&sent);
    let batcher = Arc::new(
        Batcher::new(timer.clone(), config, move |rows: Vec<u64>| {
            let mut log = log.lock().unwrap();
            for row in &rows {
                assert!(log.insert(*row), "row {row} sent twice");
            }
            async move {
                tokio::task::yield_now().await;
                Ok::<_, Infallible>(rows.iter().map(|x| x ^ 0xABCD).collect::<Vec<_>>())
            }
        })
        .unwrap(),
    );
    rt.block_on(async {
        let ticker = {
            let timer = timer.clone();
            tokio::spawn(async move {
                loop {
                    timer.advance(Duration::from_micros(100));
                    tokio::task::yield_now().await;
                }
            })
        };
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move {
                    let mut ok = Vec::new();
                    for i in 0..CALLS {
                        let row = t * CALLS + i;
                        // Every tenth call brings two rows, some calls are abandoned.
                        if i % 10 == 0 {
                            let out = batcher.call(vec![row, row + 1_000_000]).await.unwrap();
                            assert_eq!(out, [row ^ 0xABCD, (row + 1_000_000) ^ 0xABCD]);
                            ok.push(row + 1_000_000);
                        } else if i % 97 == 0 {
                            // Abandoned after one poll, wherever its batch stands.
                            let mut call = core::pin::pin!(batcher.call_one(row));
                            if let Poll::Ready(out) = futures_util::poll!(call.as_mut()) {
                                assert_eq!(out.unwrap(), row ^ 0xABCD);
                            }
                            continue;
                        } else {
                            assert_eq!(batcher.call_one(row).await.unwrap(), row ^ 0xABCD);
                        }
                        ok.push(row);
                    }
                    ok
                })
            })
            .collect();
        let mut ok = Vec::new();
        for task in tasks {
            ok.extend(task.await.unwrap());
        }
        ticker.abort();
        assert!(ok.len() > 90_000);
        // Every row of a surviving caller was sent (exactly once, checked as sent).
        let sent = sent.lock().unwrap();
        assert!(ok.iter().all(|row| sent.contains(row)), "a row was lost");
    });
    let stats = batcher.stats();
    assert_eq!(stats.rows, sent.lock().unwrap().len());
    assert!(stats.rows >= 100_000, "{stats:?}");
    assert!(stats.max_batch_size >= 64);
    assert_clean(&batcher);
}
