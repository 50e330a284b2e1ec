//! Unit tests of the task set, the engine and the limits, beside the code.

use crate::test_util::{Counter, wakes};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::future::Future;
use core::pin::{Pin, pin};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use super::engine::{BUDGET, Engine};
use super::limits::Pace;
use super::set::TaskSet;
use super::source::IntoSource;
use super::*;
use crate::time::{ManualTimer, Timer};
use proptest::strategy::Strategy;

/// A future that is pending until `open` is set, and stores the waker it was given.
struct Latch<'a> {
    open: &'a Cell<bool>,
    waker: &'a Cell<Option<Waker>>,
    polls: &'a Cell<usize>,
}

impl Future for Latch<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        if self.open.get() {
            Poll::Ready(())
        } else {
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    }
}

#[test]
fn set_polls_only_woken_slots_and_wakes_the_parent_once() {
    let (open, polls) = (
        [Cell::new(false), Cell::new(false)],
        [Cell::new(0), Cell::new(0)],
    );
    let wakers = [Cell::new(None), Cell::new(None)];
    let mut set = TaskSet::new();
    for i in 0..2 {
        let latch = Latch {
            open: &open[i],
            waker: &wakers[i],
            polls: &polls[i],
        };
        assert!(set.start(latch, i).is_none(), "pending on its first poll");
    }
    assert_eq!(set.len(), 2);
    let parent = Arc::new(Counter::default());
    assert!(set.register(&Waker::from(parent.clone())));

    open[1].set(true);
    let w = wakers[1].take().unwrap();
    w.wake_by_ref();
    w.wake_by_ref(); // already queued: no second entry, no second parent wake-up
    assert_eq!(wakes(&parent), 1);
    assert!(set.has_woken());

    let mut out = Vec::new();
    assert_eq!(set.poll_woken(usize::MAX, |(), i| out.push(i)), 1);
    assert_eq!(out, [1]);
    assert_eq!(
        (polls[0].get(), polls[1].get()),
        (1, 2),
        "slot 0 was not polled"
    );
    assert_eq!(set.len(), 1);
    assert!(!set.has_woken());
}

#[test]
fn set_reuses_slots_and_tolerates_a_stale_waker() {
    let (open, polls) = (Cell::new(false), Cell::new(0));
    let waker = Cell::new(None);
    let mut set = TaskSet::new();
    assert!(
        set.start(
            Latch {
                open: &open,
                waker: &waker,
                polls: &polls
            },
            0
        )
        .is_none()
    );
    let stale = waker.take().unwrap();
    open.set(true);
    stale.wake_by_ref();
    assert_eq!(set.poll_woken(usize::MAX, |(), _| {}), 1);
    assert_eq!(set.len(), 0);

    // A new task in the same slot; the old task's waker fires: a spurious poll, no harm.
    let (open2, polls2) = (Cell::new(false), Cell::new(0));
    let waker2 = Cell::new(None);
    assert!(
        set.start(
            Latch {
                open: &open2,
                waker: &waker2,
                polls: &polls2
            },
            1
        )
        .is_none()
    );
    stale.wake();
    assert_eq!(set.poll_woken(usize::MAX, |(), _| panic!("not ready")), 1);
    assert_eq!(polls2.get(), 2);
    // Its own waker still works.
    open2.set(true);
    waker2.take().unwrap().wake();
    let mut done = Vec::new();
    set.poll_woken(usize::MAX, |(), i| done.push(i));
    assert_eq!(done, [1]);
}

#[test]
fn register_refuses_when_a_slot_was_woken_meanwhile() {
    let (open, polls) = (Cell::new(false), Cell::new(0));
    let waker = Cell::new(None);
    let mut set = TaskSet::new();
    assert!(
        set.start(
            Latch {
                open: &open,
                waker: &waker,
                polls: &polls
            },
            0
        )
        .is_none()
    );
    waker.take().unwrap().wake();
    assert!(!set.register(Waker::noop()), "poll again rather than sleep");
}

#[test]
fn poll_woken_stops_at_its_limit_and_keeps_the_rest() {
    let opens: Vec<Cell<bool>> = (0..5).map(|_| Cell::new(true)).collect();
    let polls: Vec<Cell<usize>> = (0..5).map(|_| Cell::new(0)).collect();
    let wakers: Vec<Cell<Option<Waker>>> = (0..5).map(|_| Cell::new(None)).collect();
    let mut set = TaskSet::new();
    for i in 0..5 {
        opens[i].set(false);
        let latch = Latch {
            open: &opens[i],
            waker: &wakers[i],
            polls: &polls[i],
        };
        assert!(set.start(latch, i).is_none());
        opens[i].set(true);
    }
    for w in &wakers {
        w.take().unwrap().wake();
    }
    let mut out = Vec::new();
    assert_eq!(set.poll_woken(2, |(), i| out.push(i)), 2);
    assert!(set.has_leftover());
    assert_eq!(set.poll_woken(10, |(), i| out.push(i)), 3);
    assert!(!set.has_leftover());
    assert_eq!(out, [0, 1, 2, 3, 4]);
}

fn engine_of<'a, I, P>(input: I, limits: Limits<'a, P>) -> Engine<'a, I::Source, P::Pacer>
where
    I: IntoSource,
    I::Item: Future,
    P: Pace<'a>,
{
    let (max, gate, pace) = limits.parts();
    Engine::new(input.into_source(), pace.into_pacer(), max, gate)
}

#[test]
fn engine_never_has_more_than_max_at_once_futures() {
    let timer = ManualTimer::new();
    let tasks = (0..100u64).map(|i| {
        let timer = &timer;
        async move {
            timer.sleep(Duration::from_millis(i % 5 + 1)).await;
            i
        }
    });
    let mut engine = pin!(engine_of(tasks, Limits::new().max_at_once(7).unwrap()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut outputs = Vec::new();
    loop {
        let mut budget = BUDGET;
        match engine.as_mut().poll_next(&mut cx, &mut budget) {
            Poll::Ready(Some((i, out))) => {
                assert_eq!(i as u64, out, "the index is the input's");
                outputs.push(out);
            }
            Poll::Ready(None) => break,
            Poll::Pending => {
                assert!(engine.in_flight() <= 7);
                timer.advance_to_next().expect("a sleeper");
            }
        }
    }
    assert_eq!(engine.peak(), 7);
    outputs.sort_unstable();
    assert_eq!(outputs, (0..100).collect::<Vec<_>>());
}

#[test]
fn an_unconsumed_output_keeps_its_slot() {
    // Ready futures, max 3: the first poll starts 3, hands out 1 and starts 1 in its slot; the
    // 2 outputs waiting hold theirs, so exactly one more starts per output taken.
    let started = Cell::new(0);
    let tasks = (0..10).map(|i| {
        started.set(started.get() + 1);
        async move { i }
    });
    let mut engine = pin!(engine_of(tasks, Limits::new().max_at_once(3).unwrap()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut budget = BUDGET;
    assert!(matches!(
        engine.as_mut().poll_next(&mut cx, &mut budget),
        Poll::Ready(Some((0, 0)))
    ));
    assert_eq!(started.get(), 4);
    assert!(matches!(
        engine.as_mut().poll_next(&mut cx, &mut budget),
        Poll::Ready(Some((1, 1)))
    ));
    assert_eq!(started.get(), 5);
    assert!(matches!(
        engine.as_mut().poll_next(&mut cx, &mut budget),
        Poll::Ready(Some((2, 2)))
    ));
    assert_eq!(started.get(), 6);
}

#[test]
fn rate_intervals() {
    let interval = |r: f64| Limits::new().max_per_second(r).unwrap().rate().interval();
    assert_eq!(interval(10.0), Duration::from_millis(100));
    assert_eq!(interval(0.5), Duration::from_secs(2));
    assert_eq!(interval(3.0), Duration::from_nanos(333_333_334));
    assert_eq!(interval(2.5), Duration::from_millis(400));
    assert_eq!(
        interval(1e12),
        Duration::from_nanos(1),
        "capped at one per nanosecond"
    );
    assert_eq!(interval(1.0 / 3.0), Duration::from_secs(3));
    assert!(Limits::new().max_per_second(1e-12).is_err());
    assert_eq!(
        interval(1e-10),
        Duration::from_nanos(10_000_000_000_000_000_000)
    );
}

#[test]
fn the_end_of_a_stream_costs_no_permit() {
    // A stream that does not know its end: the item is pulled before the permit is taken, so
    // finding the end takes nothing from the gate.
    let gate = crate::gate::Gate::new(1);
    let items = futures_util::stream::unfold(0, |i| async move {
        (i < 2).then_some((async move { i }, i + 1))
    });
    let out = futures_util::FutureExt::now_or_never(run_all(
        from_stream(items),
        Limits::new().gate(&gate),
    ));
    assert_eq!(out, Some(vec![0, 1]));
    assert_eq!(gate.stats().in_use, 0);
    assert_eq!(gate.stats().admitted, 2, "two tasks, no permit for the end");
}

#[test]
fn a_paced_run_only_sleeps_for_the_next_start() {
    let timer = ManualTimer::new();
    let limits = Limits::new().max_per_second(10.0).unwrap().timer(&timer);
    let mut run = pin!(run_all((0..50).map(|i| async move { i }), limits));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_pending());
    assert_eq!(timer.sleepers(), 1);
    assert_eq!(timer.next_deadline(), Some(Duration::from_millis(100)));
}

proptest::proptest! {
    #[test]
    fn in_order_puts_any_arrival_order_back_in_input_order(
        order in (0..64usize).prop_flat_map(|n| proptest::strategy::Just((0..n).collect::<Vec<_>>()).prop_shuffle()),
    ) {
        let mut in_order = super::future::InOrder::with_capacity(0);
        for &index in &order {
            in_order.insert(index, index * 10);
        }
        let expected: Vec<usize> = (0..order.len()).map(|i| i * 10).collect();
        proptest::prop_assert_eq!(in_order.take(), expected);
    }
}
