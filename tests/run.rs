//! run: aiometer's test suite ported to `ManualTimer`, plus the contract of laziness,
//! progress, cancellation and shared limits.

use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::Wake;

use dike::gate::Gate;
use dike::run::{
    EmptyInput, Limits, amap, amap_indexed, from_stream, run_all, run_all_settled, run_any,
    run_each, try_run_all,
};
use dike::throttle::Throttle;
use dike::time::{ManualTimer, Timer};
use futures_core::Stream;
use futures_util::{StreamExt, TryStreamExt};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A waker that records that it was woken.
#[derive(Default)]
struct Flag(AtomicBool, AtomicUsize);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `fut` to completion on the virtual clock, polling it only when it was woken (so a
/// missing wake-up is a failure, not hidden by busy polling) and jumping the clock to the
/// next sleeper whenever nothing is woken.
fn drive<F: Future>(timer: &ManualTimer, fut: F) -> F::Output {
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        flag.0.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        while !flag.0.load(Ordering::SeqCst) {
            assert!(
                timer.advance_to_next().is_some(),
                "pending, not woken, and no sleeper: the run is stuck"
            );
        }
    }
}

/// Collects a stream with [`drive`].
fn drive_stream<S: Stream>(timer: &ManualTimer, stream: S) -> Vec<S::Item> {
    drive(timer, stream.collect::<Vec<_>>())
}

/// A small deterministic generator for "random" durations.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// aiometer's `TestMaxAtOnce.Spy`: counts the tasks running and the peak.
#[derive(Default)]
struct Spy {
    running: Cell<usize>,
    peak: Cell<usize>,
}

impl Spy {
    async fn task(&self, timer: &ManualTimer, sleep: Duration) {
        self.running.set(self.running.get() + 1);
        self.peak.set(self.peak.get().max(self.running.get()));
        timer.sleep(sleep).await;
        self.running.set(self.running.get() - 1);
    }
}

const MAX_AT_ONCE: [usize; 5] = [1, 2, 5, 10, 20];
const MAX_PER_SECOND: [u32; 8] = [5, 10, 20, 30, 40, 50, 70, 100];
/// aiometer: `max(max_at_once_params) + 10` tasks.
const TASKS: usize = 30;

fn random_sleeps(seed: u64) -> Vec<Duration> {
    let mut rng = Lcg(seed);
    (0..TASKS)
        .map(|_| Duration::from_micros(rng.below(10_000)))
        .collect()
}

// ---- aiometer: TestRunners ----

#[test]
fn run_each_processes_every_item() {
    let timer = ManualTimer::new();
    let output = RefCell::new(BTreeSet::new());
    let items = ["apple", "banana", "cherry", "apple"];
    let result: () = drive(
        &timer,
        run_each(
            |item| {
                output.borrow_mut().insert(item);
                async {}
            },
            items,
            Limits::new(),
        ),
    );
    assert_eq!(result, ());
    assert_eq!(
        output.into_inner(),
        BTreeSet::from(["apple", "banana", "cherry"])
    );
}

/// A fast and a slow task as one future type.
async fn process(timer: &ManualTimer, slow: bool) -> &'static str {
    if slow {
        timer.sleep(ms(10)).await;
        "slow"
    } else {
        "fast"
    }
}

#[test]
fn run_all_returns_outputs_in_input_order() {
    let timer = ManualTimer::new();
    let out = drive(
        &timer,
        run_all([false, true].map(|s| process(&timer, s)), Limits::new()),
    );
    assert_eq!(out, ["fast", "slow"]);
    let out = drive(
        &timer,
        run_all([true, false].map(|s| process(&timer, s)), Limits::new()),
    );
    assert_eq!(out, ["slow", "fast"]);
}

#[test]
fn amap_yields_every_mapped_item() {
    let timer = ManualTimer::new();
    let items = ["apple", "banana", "cherry", "apple"];
    let capitalize = |s: &str| {
        let s = s.to_string();
        async move {
            let mut c = s.chars();
            let first = c.next().unwrap().to_uppercase().to_string();
            first + c.as_str()
        }
    };
    let output: BTreeSet<String> = drive_stream(&timer, amap(capitalize, items, Limits::new()))
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = ["Apple", "Banana", "Cherry"].map(String::from).into();
    assert_eq!(output, expected);
}

#[derive(Debug, PartialEq)]
struct Failure(&'static str);

#[test]
fn amap_task_error_surfaces_unchanged() {
    let timer = ManualTimer::new();
    let items = ["apple", "banana", "fail", "apple"];
    let process = |item: &'static str| async move {
        if item == "fail" {
            Err(Failure(item))
        } else {
            Ok(item)
        }
    };
    let out = drive(
        &timer,
        amap(process, items, Limits::new()).try_collect::<Vec<_>>(),
    );
    assert_eq!(out, Err(Failure("fail")));
}

#[test]
fn run_any_returns_the_fast_one() {
    let timer = ManualTimer::new();
    let out = drive(
        &timer,
        run_any([true, false].map(|s| process(&timer, s)), Limits::new()),
    );
    assert_eq!(out, Ok("fast"));
    assert_eq!(timer.sleepers(), 0, "the slow one was dropped");
}

// ---- aiometer: TestMaxAtOnce ----

fn assert_peak(spy: &Spy, max_at_once: usize) {
    let peak = spy.peak.get();
    assert!(
        0 < peak && peak <= max_at_once,
        "peak {peak} for max_at_once {max_at_once}"
    );
}

#[test]
fn max_at_once_run_each() {
    for (i, max) in MAX_AT_ONCE.into_iter().enumerate() {
        let (timer, spy) = (ManualTimer::new(), Spy::default());
        let limits = Limits::new().max_at_once(max).unwrap();
        drive(
            &timer,
            run_each(|d| spy.task(&timer, d), random_sleeps(i as u64), limits),
        );
        assert_peak(&spy, max);
        assert_eq!(spy.running.get(), 0);
    }
}

#[test]
fn max_at_once_run_all() {
    for (i, max) in MAX_AT_ONCE.into_iter().enumerate() {
        let (timer, spy) = (ManualTimer::new(), Spy::default());
        let limits = Limits::new().max_at_once(max).unwrap();
        let tasks = random_sleeps(i as u64)
            .into_iter()
            .map(|d| spy.task(&timer, d));
        assert_eq!(drive(&timer, run_all(tasks, limits)).len(), TASKS);
        assert_peak(&spy, max);
    }
}

#[test]
fn max_at_once_amap() {
    for (i, max) in MAX_AT_ONCE.into_iter().enumerate() {
        let (timer, spy) = (ManualTimer::new(), Spy::default());
        let limits = Limits::new().max_at_once(max).unwrap();
        let out = drive_stream(
            &timer,
            amap(|d| spy.task(&timer, d), random_sleeps(i as u64), limits),
        );
        assert_eq!(out.len(), TASKS);
        assert_peak(&spy, max);
    }
}

#[test]
fn max_at_once_run_any() {
    for (i, max) in MAX_AT_ONCE.into_iter().enumerate() {
        let (timer, spy) = (ManualTimer::new(), Spy::default());
        let limits = Limits::new().max_at_once(max).unwrap();
        let tasks = random_sleeps(i as u64)
            .into_iter()
            .map(|d| spy.task(&timer, d + ms(1)));
        assert_eq!(drive(&timer, run_any(tasks, limits)), Ok(()));
        assert_peak(&spy, max);
        assert_eq!(
            spy.peak.get(),
            max,
            "every slot was filled before the first finished"
        );
    }
}

#[test]
fn max_at_once_must_be_positive() {
    let err = Limits::new().max_at_once(0).unwrap_err();
    assert_eq!(err.parameter(), "max_at_once");
    assert_eq!(err.value(), dike::error::ConfigValue::Int(0));
}

// ---- aiometer: TestMaxPerSecond ----

/// Start times recorded by each task.
#[derive(Default)]
struct Starts(RefCell<Vec<Duration>>);

impl Starts {
    /// Records its start; with `hold`, then sleeps that long.
    async fn task(&self, timer: &ManualTimer, hold: Duration) {
        self.0.borrow_mut().push(timer.now());
        if !hold.is_zero() {
            timer.sleep(hold).await;
        }
    }

    fn gaps(&self) -> Vec<Duration> {
        self.0.borrow().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// `1 s / rate` on the virtual clock, in whole nanoseconds rounded up (so the rate is never
/// exceeded): exact for 5, 10, 20, 40, 50 and 100 per second; 33 333 334 ns for 30.
fn period(rate: u32) -> Duration {
    Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(rate)))
}

fn assert_gaps(starts: &Starts, rate: u32, count: usize) {
    assert_eq!(starts.0.borrow().len(), count, "rate {rate}");
    assert_eq!(starts.0.borrow()[0], Duration::ZERO);
    for gap in starts.gaps() {
        assert_eq!(gap, period(rate), "rate {rate}");
    }
}

#[test]
fn max_per_second_run_each() {
    for rate in MAX_PER_SECOND {
        let (timer, starts) = (ManualTimer::new(), Starts::default());
        let limits = Limits::new()
            .max_per_second(f64::from(rate))
            .unwrap()
            .timer(&timer);
        drive(
            &timer,
            run_each(|_| starts.task(&timer, Duration::ZERO), 0..10, limits),
        );
        assert_gaps(&starts, rate, 10);
    }
}

#[test]
fn max_per_second_run_all() {
    for rate in MAX_PER_SECOND {
        let (timer, starts) = (ManualTimer::new(), Starts::default());
        let limits = Limits::new()
            .max_per_second(f64::from(rate))
            .unwrap()
            .timer(&timer);
        let tasks = (0..10).map(|_| starts.task(&timer, Duration::ZERO));
        drive(&timer, run_all(tasks, limits));
        assert_gaps(&starts, rate, 10);
    }
}

#[test]
fn max_per_second_amap() {
    for rate in MAX_PER_SECOND {
        let (timer, starts) = (ManualTimer::new(), Starts::default());
        let limits = Limits::new()
            .max_per_second(f64::from(rate))
            .unwrap()
            .timer(&timer);
        drive_stream(
            &timer,
            amap(|_| starts.task(&timer, Duration::ZERO), 0..10, limits),
        );
        assert_gaps(&starts, rate, 10);
    }
}

#[test]
fn max_per_second_run_any() {
    for rate in MAX_PER_SECOND {
        let (timer, starts) = (ManualTimer::new(), Starts::default());
        let limits = Limits::new()
            .max_per_second(f64::from(rate))
            .unwrap()
            .timer(&timer);
        // Each task holds for a second, so the first finishes after 1 s; every start before
        // that is paced.
        let tasks = (0..3).map(|_| starts.task(&timer, Duration::from_secs(1)));
        assert_eq!(drive(&timer, run_any(tasks, limits)), Ok(()));
        assert_gaps(&starts, rate, 3);
    }
}

#[test]
fn invalid_limits_are_errors() {
    for bad in [
        0.0,
        -0.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-30,
    ] {
        let err = Limits::new().max_per_second(bad).unwrap_err();
        assert_eq!(err.parameter(), "max_per_second", "{bad}");
    }
    let err = Limits::new()
        .max_per_second(1.0)
        .unwrap()
        .burst(0)
        .unwrap_err();
    assert_eq!(err.parameter(), "burst");
    assert_eq!(err.to_string(), "invalid burst = 0: expected at least 1");
    assert!(Limits::new().max_at_once(0).is_err());
}

// ---- beyond aiometer ----

#[test]
fn fractional_rate_spaces_starts_by_its_inverse() {
    let (timer, starts) = (ManualTimer::new(), Starts::default());
    let limits = Limits::new().max_per_second(0.5).unwrap().timer(&timer);
    drive(
        &timer,
        run_each(|_| starts.task(&timer, Duration::ZERO), 0..4, limits),
    );
    assert_eq!(starts.gaps(), [Duration::from_secs(2); 3]);
}

#[test]
fn burst_starts_that_many_at_once_then_spaces() {
    let (timer, starts) = (ManualTimer::new(), Starts::default());
    let limits = Limits::new()
        .max_per_second(10.0)
        .unwrap()
        .burst(3)
        .unwrap()
        .timer(&timer);
    drive(
        &timer,
        run_each(|_| starts.task(&timer, Duration::ZERO), 0..6, limits),
    );
    assert_eq!(*starts.0.borrow(), [0, 0, 0, 100, 200, 300].map(ms));
}

#[test]
fn both_limits_take_the_slot_then_the_start_time() {
    // Tasks of 250 ms, one at a time, 10 per second: the slot is the binding limit, and a
    // task that gets its slot still waits for its start time (never two within 100 ms).
    let (timer, starts) = (ManualTimer::new(), Starts::default());
    let limits = Limits::new()
        .max_at_once(1)
        .unwrap()
        .max_per_second(10.0)
        .unwrap()
        .timer(&timer);
    drive(
        &timer,
        run_each(|_| starts.task(&timer, ms(250)), 0..3, limits),
    );
    assert_eq!(*starts.0.borrow(), [0, 250, 500].map(ms));

    // Tasks of 50 ms, two at once: the rate is the binding limit.
    let (timer, starts) = (ManualTimer::new(), Starts::default());
    let limits = Limits::new()
        .max_at_once(2)
        .unwrap()
        .max_per_second(10.0)
        .unwrap()
        .timer(&timer);
    drive(
        &timer,
        run_each(|_| starts.task(&timer, ms(50)), 0..4, limits),
    );
    assert_eq!(*starts.0.borrow(), [0, 100, 200, 300].map(ms));
}

#[test]
fn settled_keeps_every_result_in_order() {
    let timer = ManualTimer::new();
    let calls = (0..6u64).map(|i| {
        let timer = &timer;
        async move {
            timer.sleep(ms(10 * (6 - i))).await; // finish in reverse order
            if i % 2 == 0 {
                Ok(i)
            } else {
                Err(format!("{i} failed"))
            }
        }
    });
    let out = drive(
        &timer,
        run_all_settled(calls, Limits::new().max_at_once(3).unwrap()),
    );
    let expected: Vec<Result<u64, String>> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                Ok(i)
            } else {
                Err(format!("{i} failed"))
            }
        })
        .collect();
    assert_eq!(out, expected);
}

/// Counts the futures alive.
struct Live<'a>(&'a Cell<usize>);

impl<'a> Live<'a> {
    fn new(live: &'a Cell<usize>, peak: &'a Cell<usize>) -> Self {
        live.set(live.get() + 1);
        peak.set(peak.get().max(live.get()));
        Self(live)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

#[test]
fn a_huge_iterator_is_consumed_lazily() {
    let timer = ManualTimer::new();
    let (live, peak, pulled) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let items = (0..10_000_000u64).inspect(|_| pulled.set(pulled.get() + 1));
    let task = |i: u64| {
        let guard = Live::new(&live, &peak);
        let timer = &timer;
        async move {
            let _guard = guard;
            timer.sleep(ms(i % 7)).await;
            i
        }
    };
    let stream = amap(task, items, Limits::new().max_at_once(8).unwrap());
    let first: Vec<u64> = drive(&timer, stream.take(1_000).collect());
    assert_eq!(first.len(), 1_000);
    assert!(peak.get() <= 8, "peak live futures {}", peak.get());
    assert_eq!(peak.get(), 8);
    assert_eq!(live.get(), 0, "dropping the stream dropped the rest");
    assert!(pulled.get() <= 1_000 + 8, "pulled {}", pulled.get());
}

#[test]
fn stream_input() {
    let timer = ManualTimer::new();
    // A stream that is itself pending between items (one item every 5 ms).
    let items = futures_util::stream::unfold(0u64, |i| {
        let timer = timer.clone();
        async move {
            if i == 6 {
                return None;
            }
            timer.sleep(ms(5)).await;
            Some((i, i + 1))
        }
    });
    let out = drive(
        &timer,
        run_all(
            from_stream(items.map(|i| async move { i * 10 })),
            Limits::new().max_at_once(2).unwrap(),
        ),
    );
    assert_eq!(out, [0, 10, 20, 30, 40, 50]);

    let items = futures_util::stream::iter(["a", "bb", "ccc"]);
    let mut lens = drive_stream(
        &timer,
        amap_indexed(
            |s: &str| async move { s.len() },
            from_stream(items),
            Limits::new(),
        ),
    );
    lens.sort();
    assert_eq!(lens, [(0, 1), (1, 2), (2, 3)]);
}

#[test]
fn a_slow_input_does_not_squeeze_starts_closer_than_the_rate() {
    // Items come 90 ms apart, the rate allows one start per 100 ms: the start time is taken
    // when the item is there, so no two starts are closer than 100 ms.
    let (timer, starts) = (ManualTimer::new(), Starts::default());
    let items = futures_util::stream::unfold(0, |i| {
        let timer = timer.clone();
        async move {
            if i == 5 {
                return None;
            }
            timer.sleep(ms(90)).await;
            Some((i, i + 1))
        }
    });
    let limits = Limits::new().max_per_second(10.0).unwrap().timer(&timer);
    drive(
        &timer,
        run_each(
            |_| starts.task(&timer, Duration::ZERO),
            from_stream(items),
            limits,
        ),
    );
    assert_eq!(starts.0.borrow().len(), 5);
    for gap in starts.gaps() {
        assert!(gap >= ms(100), "{:?}", starts.0.borrow());
    }
}

#[test]
fn a_run_waiting_for_its_input_holds_no_permit_and_drops_cleanly() {
    let timer = ManualTimer::new();
    let gate = Gate::new(1);
    let items = futures_util::stream::unfold(0, |i| {
        let timer = timer.clone();
        async move {
            timer.sleep(ms(100)).await;
            Some((i, i + 1))
        }
    });
    let limits = Limits::new()
        .gate(&gate)
        .max_per_second(1.0)
        .unwrap()
        .timer(&timer);
    let mut run = Box::pin(run_each(|_: i32| async {}, from_stream(items), limits));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(
        gate.stats().in_use,
        0,
        "no permit while the input is pending"
    );
    assert_eq!(timer.sleepers(), 1, "the input's own sleep");
    drop(run);
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn dropping_amap_drops_every_task_and_frees_a_shared_gate() {
    let timer = ManualTimer::new();
    let gate = Gate::new(2);
    let (live, peak) = (Cell::new(0), Cell::new(0));
    let task = |_: u32| {
        let guard = Live::new(&live, &peak);
        let timer = &timer;
        async move {
            let _guard = guard;
            timer.sleep(ms(100)).await;
        }
    };
    let mut stream = Box::pin(amap(
        task,
        0..10,
        Limits::new().max_at_once(5).unwrap().gate(&gate),
    ));
    assert!(poll_stream(stream.as_mut()).is_pending());
    assert_eq!(stream.in_flight(), 2, "the shared gate admits 2");
    assert_eq!(gate.stats().in_use, 2);
    assert_eq!(gate.stats().waiting, 1, "the next task waits on the gate");
    // The third item waits for a permit; `f` is called only at its start.
    assert_eq!(live.get(), 2);
    drop(stream);
    assert_eq!(live.get(), 0);
    assert_eq!(gate.stats().in_use, 0);
    assert_eq!(gate.stats().waiting, 0);
    assert_eq!(timer.sleepers(), 0);
    assert!(gate.try_enter().is_ok());
}

fn poll_stream<S: Stream>(stream: Pin<&mut S>) -> Poll<Option<S::Item>> {
    stream.poll_next(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn a_slow_consumer_does_not_stall_in_flight_futures() {
    // Three tasks wake at 10 ms. The consumer takes one output and then works for a long
    // time without polling: during that time the other two must already have run to their
    // end, and the free slots must hold new tasks that have started.
    let timer = ManualTimer::new();
    let finished = RefCell::new(Vec::new());
    let started = Cell::new(0);
    let task = |i: u32| {
        let (timer, finished, started) = (&timer, &finished, &started);
        async move {
            started.set(started.get() + 1);
            timer.sleep(ms(10)).await;
            finished.borrow_mut().push((i, timer.now()));
            i
        }
    };
    let mut stream = pin!(amap(task, 0..6, Limits::new().max_at_once(3).unwrap()));
    assert!(poll_stream(stream.as_mut()).is_pending());
    assert_eq!(started.get(), 3);
    timer.advance(ms(10));
    assert!(matches!(poll_stream(stream.as_mut()), Poll::Ready(Some(0))));
    // One poll: all three ran to their end at 10 ms, and one freed slot (the output handed
    // out) holds a started task; the two outputs not yet taken keep theirs.
    assert_eq!(*finished.borrow(), [(0, ms(10)), (1, ms(10)), (2, ms(10))]);
    assert_eq!(started.get(), 4);
    // The consumer is slow: 500 ms pass without a poll. Then the buffered outputs come at
    // once and the rest of the run continues.
    timer.advance(ms(500));
    assert!(matches!(poll_stream(stream.as_mut()), Poll::Ready(Some(1))));
    assert!(matches!(poll_stream(stream.as_mut()), Poll::Ready(Some(_))));
    let rest = drive_stream(&timer, stream);
    assert_eq!(rest.len(), 3);
    assert_eq!(finished.borrow().len(), 6);
}

#[test]
fn shared_gate_holds_across_two_concurrent_runs() {
    let timer = ManualTimer::new();
    let gate = Gate::new(3);
    let spy = Spy::default();
    let limits = Limits::new().max_at_once(3).unwrap().gate(&gate);
    let a = run_all(
        random_sleeps(1).into_iter().map(|d| spy.task(&timer, d)),
        limits,
    );
    let b = run_all(
        random_sleeps(2).into_iter().map(|d| spy.task(&timer, d)),
        limits,
    );
    let (a, b) = drive(&timer, futures_util::future::join(a, b));
    assert_eq!((a.len(), b.len()), (TASKS, TASKS));
    assert_eq!(spy.peak.get(), 3, "3 in total, not 3 per run");
    assert_eq!(gate.stats().in_use, 0);
    assert_eq!(gate.stats().peak_in_use, 3);
}

#[test]
fn shared_throttle_holds_across_two_concurrent_runs() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(10).unwrap();
    let starts = Starts::default();
    let limits = Limits::new().throttle(&throttle, &timer);
    let a = run_each(|_| starts.task(&timer, Duration::ZERO), 0..5, limits);
    let b = run_each(|_| starts.task(&timer, Duration::ZERO), 0..5, limits);
    drive(&timer, futures_util::future::join(a, b));
    assert_eq!(
        *starts.0.borrow(),
        (0..10).map(|i| ms(100 * i)).collect::<Vec<_>>()
    );
}

#[test]
fn try_run_all_returns_the_first_error_and_drops_the_rest() {
    let timer = ManualTimer::new();
    let (live, peak) = (Cell::new(0), Cell::new(0));
    let calls = (0..10u64).map(|i| {
        let guard = Live::new(&live, &peak);
        let timer = &timer;
        async move {
            let _guard = guard;
            timer.sleep(ms(10 + i)).await;
            if i == 2 { Err(Failure("two")) } else { Ok(i) }
        }
    });
    let out = drive(
        &timer,
        try_run_all(calls, Limits::new().max_at_once(4).unwrap()),
    );
    assert_eq!(out, Err(Failure("two")));
    assert_eq!(live.get(), 0, "the tasks in flight were dropped");
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(peak.get(), 4);

    let ok = drive(
        &timer,
        try_run_all(
            (0..5).map(|i| async move { Ok::<_, Failure>(i) }),
            Limits::new(),
        ),
    );
    assert_eq!(ok, Ok(vec![0, 1, 2, 3, 4]));
}

#[test]
fn run_any_of_nothing_is_an_error() {
    let timer = ManualTimer::new();
    let none = core::iter::empty::<core::future::Ready<u8>>();
    assert_eq!(drive(&timer, run_any(none, Limits::new())), Err(EmptyInput));
    let none = futures_util::stream::empty::<core::future::Ready<u8>>();
    let paced = Limits::new().max_per_second(1.0).unwrap().timer(&timer);
    assert_eq!(
        drive(&timer, run_any(from_stream(none), paced)),
        Err(EmptyInput)
    );
}

#[test]
fn dropping_a_run_waiting_for_its_start_time_cancels_the_sleep() {
    let timer = ManualTimer::new();
    let limits = Limits::new().max_per_second(1.0).unwrap().timer(&timer);
    let mut run = Box::pin(run_all((0..3).map(|i| async move { i }), limits));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(
        timer.sleepers(),
        1,
        "only the next task waits for a start time"
    );
    drop(run);
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn a_woken_task_wakes_the_run() {
    let timer = ManualTimer::new();
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut run = pin!(run_all((1..=3).map(|i| timer.sleep(ms(i))), Limits::new()));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(flag.1.load(Ordering::SeqCst), 0);
    timer.advance(ms(1));
    assert_eq!(flag.1.load(Ordering::SeqCst), 1);
    timer.advance(ms(1)); // not polled meanwhile: the run was already woken, no second wake
    assert!(flag.1.load(Ordering::SeqCst) <= 2);
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    timer.advance(ms(1));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
    );
}

/// A future that wakes itself `n` times before it completes.
struct YieldN(u32);

impl Future for YieldN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn self_waking_tasks_make_the_run_yield_to_its_executor() {
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut run = pin!(run_each(|_| YieldN(50), 0..1_000, Limits::new()));
    let mut cx = Context::from_waker(&waker);
    let mut pendings = 0;
    while run.as_mut().poll(&mut cx).is_pending() {
        assert!(
            flag.0.swap(false, Ordering::SeqCst),
            "yielded without a wake-up"
        );
        pendings += 1;
    }
    // 51 000 polls in passes of at most BUDGET (256) futures.
    assert!(pendings >= 51_000 / 256, "{pendings}");
}

#[test]
fn a_closed_shared_gate_delays_the_run_without_failing_or_hanging() {
    let gate = Gate::new(0);
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut run = pin!(run_all(
        (0..3).map(|i| async move { i }),
        Limits::new().gate(&gate)
    ));
    let mut cx = Context::from_waker(&waker);
    assert!(run.as_mut().poll(&mut cx).is_pending());
    assert!(
        flag.0.load(Ordering::SeqCst),
        "it asks again at the next poll"
    );
    gate.set_limit(1);
    assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready(vec![0, 1, 2]));
}

#[test]
#[should_panic(expected = "`RunAll` polled after completion")]
fn run_all_polled_after_completion_panics() {
    let mut run = pin!(run_all([async { 1 }], Limits::new()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_ready());
    let _ = run.as_mut().poll(&mut cx);
}

#[test]
#[should_panic(expected = "`TryRunAll` polled after completion")]
fn try_run_all_polled_after_completion_panics() {
    let mut run = pin!(try_run_all([async { Ok::<_, ()>(1) }], Limits::new()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_ready());
    let _ = run.as_mut().poll(&mut cx);
}

#[test]
#[should_panic(expected = "`RunEach` polled after completion")]
fn run_each_polled_after_completion_panics() {
    let mut run = pin!(run_each(|_| async {}, [1], Limits::new()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_ready());
    let _ = run.as_mut().poll(&mut cx);
}

#[test]
#[should_panic(expected = "`RunAny` polled after completion")]
fn run_any_polled_after_completion_panics() {
    let mut run = pin!(run_any([async { 1 }], Limits::new()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_ready());
    let _ = run.as_mut().poll(&mut cx);
}

#[test]
fn amap_keeps_returning_none_after_the_end() {
    use futures_core::stream::FusedStream;
    let mut stream = pin!(amap(|i: u8| async move { i }, [1], Limits::new()));
    assert_eq!(stream.size_hint(), (1, Some(1)));
    assert!(!stream.is_terminated());
    assert_eq!(poll_stream(stream.as_mut()), Poll::Ready(Some(1)));
    assert_eq!(poll_stream(stream.as_mut()), Poll::Ready(None));
    assert!(stream.is_terminated());
    assert_eq!(stream.size_hint(), (0, Some(0)));
    assert_eq!(poll_stream(stream.as_mut()), Poll::Ready(None));
}

#[test]
fn amap_size_hint_counts_what_is_still_to_come() {
    let timer = ManualTimer::new();
    let mut stream = pin!(amap(
        |d: u64| timer.sleep(ms(d)),
        [5, 1, 3, 2],
        Limits::new().max_at_once(2).unwrap()
    ));
    assert_eq!(stream.size_hint(), (4, Some(4)));
    assert!(poll_stream(stream.as_mut()).is_pending());
    assert_eq!(
        stream.size_hint(),
        (4, Some(4)),
        "2 in flight, 2 in the input"
    );
    timer.advance(ms(1));
    assert!(poll_stream(stream.as_mut()).is_ready());
    assert_eq!(stream.size_hint(), (3, Some(3)));
    let unknown = amap(
        |i: u32| async move { i },
        (0..10).filter(|i| i % 2 == 0),
        Limits::new(),
    );
    assert_eq!(unknown.size_hint(), (0, Some(10)));
}

#[test]
fn send_and_sync_when_the_tasks_are() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Sync>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Limits<'static>>();
    send_sync::<Limits<'static, dike::run::Rate>>();
    send_sync::<Limits<'static, dike::run::Paced<'static, &ManualTimer>>>();
    send_sync::<EmptyInput>();
    let gate = Gate::new(1);
    let timer = ManualTimer::new();
    let limits = Limits::new()
        .gate(&gate)
        .max_per_second(5.0)
        .unwrap()
        .timer(&timer);
    let run = run_all((0..3).map(|i| async move { i }), limits);
    send(&run);
    sync(&run);
    let stream = amap(|i: u32| async move { i }, 0..3, limits);
    send(&stream);
    let each = run_each(
        |i: u32| async move {
            let _ = i;
        },
        0..3,
        Limits::new(),
    );
    send(&each);
    let any = run_any([async { 1 }], Limits::new().max_at_once(1).unwrap());
    send(&any);

    // Unpin over an iterator whatever the timer's sleep, so `.next().await` needs no pin.
    fn unpin<T: Unpin>(_: &T) {}
    unpin(&stream);
    #[cfg(feature = "tokio")]
    {
        let paced = Limits::new()
            .max_per_second(1.0)
            .unwrap()
            .timer(dike::time::TokioTimer::new());
        unpin(&amap(|i: u32| async move { i }, 0..3, paced));
    }
}

/// On the real tokio runtime (paused clock) with `TokioTimer`: starts are paced by the rate
/// and capped by `max_at_once`, measured on tokio's clock.
#[cfg(feature = "tokio")]
#[test]
fn paced_on_tokio() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let origin = tokio::time::Instant::now();
        let starts = RefCell::new(Vec::new());
        let limits = Limits::new()
            .max_at_once(2)
            .unwrap()
            .max_per_second(10.0)
            .unwrap()
            .timer(dike::time::TokioTimer::new());
        let task = |i: u64| {
            let starts = &starts;
            async move {
                starts.borrow_mut().push(origin.elapsed());
                tokio::time::sleep(ms(250)).await;
                i
            }
        };
        let mut out: Vec<u64> = amap(task, 0..6, limits).collect().await;
        out.sort_unstable();
        assert_eq!(out, [0, 1, 2, 3, 4, 5]);
        let starts = starts.into_inner();
        // 10/s, 2 at once, 250 ms each: starts at 0, 100, 250, 350, 500, 600 ms (never
        // early; a paused clock jumps exactly to each deadline, at most 1 ms late from the
        // millisecond rounding of tokio's timer).
        let expected = [0, 100, 250, 350, 500, 600].map(ms);
        for (start, expected) in starts.iter().zip(expected) {
            assert!(
                *start >= expected && *start <= expected + ms(2),
                "{starts:?}"
            );
        }
    });
}

#[test]
fn stress_on_a_multi_threaded_runtime_loses_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let gate = Arc::new(Gate::new(3));
    let done = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (gate, done) = (gate.clone(), done.clone());
                tokio::spawn(async move {
                    let items = (0..200u32).map(move |i| w * 1000 + i);
                    let task = |i: u32| {
                        let done = done.clone();
                        async move {
                            // Woken from the other thread via the runtime's timer.
                            tokio::time::sleep(Duration::from_micros(u64::from(i % 3))).await;
                            tokio::task::yield_now().await;
                            done.fetch_add(1, Ordering::SeqCst);
                            i
                        }
                    };
                    let limits = Limits::new().max_at_once(4).unwrap().gate(&gate);
                    let out: Vec<u32> = amap(task, items, limits).collect().await;
                    out.len()
                })
            })
            .collect();
        for w in workers {
            assert_eq!(w.await.unwrap(), 200);
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 800);
    assert_eq!(gate.stats().in_use, 0);
    assert!(gate.stats().peak_in_use <= 3);
}

// ---- properties ----

/// Runs `durations` through `amap_indexed` under `limits`; returns (indices in completion
/// order, start times in start order, peak running).
fn run_recorded<'a, P: dike::run::Pace<'a>>(
    timer: &'a ManualTimer,
    durations: &'a [u64],
    limits: Limits<'a, P>,
) -> (Vec<usize>, Vec<Duration>, usize) {
    let spy = Spy::default();
    let starts = Starts::default();
    let task = |i: usize| {
        let (spy, starts) = (&spy, &starts);
        async move {
            starts.0.borrow_mut().push(timer.now());
            spy.task(timer, ms(durations[i])).await;
        }
    };
    let out = drive_stream(timer, amap_indexed(task, 0..durations.len(), limits));
    let indices = out.into_iter().map(|(i, ())| i).collect();
    let peak = spy.peak.get();
    (indices, starts.0.into_inner(), peak)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn every_input_runs_once_within_both_limits(
        durations in proptest::collection::vec(0u64..20, 0..40),
        max_at_once in 1usize..8,
        rate in proptest::option::of(1u32..60),
        burst in 1u32..4,
    ) {
        let timer = ManualTimer::new();
        let base = Limits::new().max_at_once(max_at_once).unwrap();
        let (mut indices, starts, peak) = match rate {
            None => run_recorded(&timer, &durations, base),
            Some(rate) => {
                let limits = base
                    .max_per_second(f64::from(rate)).unwrap()
                    .burst(burst).unwrap()
                    .timer(&timer);
                run_recorded(&timer, &durations, limits)
            }
        };
        indices.sort_unstable();
        proptest::prop_assert_eq!(indices, (0..durations.len()).collect::<Vec<_>>());
        proptest::prop_assert!(peak <= max_at_once);
        if let Some(rate) = rate {
            // At most `burst` starts at once, then one per interval: any `burst + 1`
            // consecutive starts span at least one interval.
            let b = burst as usize;
            for i in b..starts.len() {
                proptest::prop_assert!(starts[i] - starts[i - b] >= period(rate));
            }
        }
    }
}
