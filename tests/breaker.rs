//! Circuit breaker on a virtual clock: issue 16's tests B, one by one, and cancellation.
//!
//! The setting of test B: count window 20, failure ratio 0.5, minimum 10 calls, break 5 s
//! (growing ×2 per consecutive opening, capped at 60 s), 3 probes, 100 calls/s.

use core::cell::Cell;
use core::future::{Future, pending};
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use dike::breaker::{
    BreakDuration, Breaker, BreakerError, BreakerState, CountWindow, TimeWindow, Window,
};
use dike::time::{ManualTimer, Timer};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn test_b() -> Breaker<CountWindow<20>> {
    Breaker::new(CountWindow::<20>::new())
        .with_failure_ratio(0.5)
        .unwrap()
        .try_with_min_calls(10)
        .unwrap()
        .try_with_probes(3)
        .unwrap()
        .with_break(BreakDuration::exponential(secs(5), 2.0, secs(60)).unwrap())
}

/// SplitMix64: a seeded generator for the failure pattern.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One call at 100 calls/s: 10 ms later than the previous one.
fn call<W: Window>(breaker: &Breaker<W>, timer: &ManualTimer, fail: bool) -> bool {
    timer.advance(ms(10));
    match breaker.try_acquire(timer) {
        Ok(call) if fail => {
            call.failure();
            true
        }
        Ok(call) => {
            call.success();
            true
        }
        Err(_) => false,
    }
}

/// Opens a test-B breaker after healthy traffic; returns the time it opened.
fn open_it(breaker: &Breaker<CountWindow<20>>, timer: &ManualTimer) -> Duration {
    for _ in 0..100 {
        assert!(call(breaker, timer, false));
    }
    for _ in 0..10 {
        assert!(call(breaker, timer, true));
    }
    assert_eq!(breaker.state(timer), BreakerState::Open);
    timer.now()
}

#[test]
fn b1_one_percent_failures_never_open_it() {
    for seed in [1, 2, 3] {
        let timer = ManualTimer::new();
        let breaker = test_b();
        let mut rng = Rng(seed);
        let mut failures = 0;
        for _ in 0..10_000 {
            let fail = rng.chance(1);
            failures += u32::from(fail);
            assert!(
                call(&breaker, &timer, fail),
                "seed {seed}: a call was refused"
            );
        }
        assert!(
            failures > 50,
            "seed {seed}: the pattern has failures ({failures})"
        );
        assert_eq!(breaker.stats().opened, 0);
        assert_eq!(breaker.state(&timer), BreakerState::Closed);
    }
}

#[test]
fn b2_a_burst_opens_it_on_exactly_the_tenth_failing_call() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    for _ in 0..100 {
        assert!(call(&breaker, &timer, false));
    }
    for k in 1..=10 {
        assert_eq!(
            breaker.state(&timer),
            BreakerState::Closed,
            "before failure {k}"
        );
        assert!(call(&breaker, &timer, true));
    }
    assert_eq!(breaker.state(&timer), BreakerState::Open, "k = 10");
    assert_eq!(breaker.stats().opened, 1);
}

#[test]
fn b3_no_call_reaches_the_dependency_while_open() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let opened = open_it(&breaker, &timer);
    let reached = Cell::new(0);
    // 100 calls/s for the whole break: every one refused with the time left.
    while timer.now() + ms(10) < opened + secs(5) {
        timer.advance(ms(10));
        let result = smol::block_on(breaker.call(&timer, async {
            reached.set(reached.get() + 1);
            Ok::<_, ()>(())
        }));
        let Err(BreakerError::Open(open)) = result else {
            panic!("admitted while open at {:?}", timer.now());
        };
        assert_eq!(open.retry_after(), Some(opened + secs(5) - timer.now()));
    }
    assert_eq!(reached.get(), 0);
    assert_eq!(breaker.stats().rejected, 499);
}

#[test]
fn b4_exactly_three_probes_pass_at_plus_5s_others_get_retry_after() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let opened = open_it(&breaker, &timer);
    timer.advance_to(opened + secs(5));
    assert_eq!(breaker.state(&timer), BreakerState::HalfOpen);
    let probes: Vec<_> = (0..3)
        .map(|_| breaker.try_acquire(&timer).unwrap())
        .collect();
    assert!(probes.iter().all(|p| p.is_probe()));
    for _ in 0..5 {
        let refused = breaker.try_acquire(&timer).unwrap_err();
        assert_eq!(
            refused.retry_after(),
            Some(secs(5)),
            "until a hung probe's slot returns"
        );
    }
    assert_eq!(breaker.stats().probes_in_flight, 3);
    drop(probes);
}

#[test]
fn b5_probes_succeed_then_closed() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let opened = open_it(&breaker, &timer);
    timer.advance_to(opened + secs(5));
    let probes: Vec<_> = (0..3)
        .map(|_| breaker.try_acquire(&timer).unwrap())
        .collect();
    for (i, probe) in probes.into_iter().enumerate() {
        assert_eq!(breaker.state(&timer), BreakerState::HalfOpen, "before {i}");
        probe.success();
    }
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    assert_eq!(breaker.stats().calls, 0, "a fresh window");
    // Closed again: back to needing 10 failures of 20, and the first break again 5 s.
    for _ in 0..9 {
        assert!(call(&breaker, &timer, true));
    }
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    assert!(call(&breaker, &timer, true));
    assert_eq!(
        breaker.try_acquire(&timer).unwrap_err().retry_after(),
        Some(secs(5))
    );
}

#[test]
fn b6_probes_fail_then_open_10s_20s_capped_at_60s() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    open_it(&breaker, &timer);
    let mut lengths = Vec::new();
    for _ in 0..6 {
        let wait = breaker
            .try_acquire(&timer)
            .unwrap_err()
            .retry_after()
            .unwrap();
        timer.advance(wait);
        let probe = breaker.try_acquire(&timer).unwrap();
        probe.failure();
        assert_eq!(breaker.state(&timer), BreakerState::Open);
        lengths.push(
            breaker
                .try_acquire(&timer)
                .unwrap_err()
                .retry_after()
                .unwrap(),
        );
    }
    assert_eq!(
        lengths,
        [secs(10), secs(20), secs(40), secs(60), secs(60), secs(60)]
    );
}

#[test]
fn b7_a_dropped_probe_frees_its_slot() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let opened = open_it(&breaker, &timer);
    timer.advance_to(opened + secs(5));
    let mut probes: Vec<_> = (0..3)
        .map(|_| breaker.try_acquire(&timer).unwrap())
        .collect();
    assert!(breaker.try_acquire(&timer).is_err());
    drop(probes.pop());
    let replacement = breaker.try_acquire(&timer).expect("the slot is free again");
    assert!(replacement.is_probe());
    assert_eq!(breaker.stats().probes_in_flight, 3);
    // The dropped one counted for nothing: three successes are still needed.
    probes.into_iter().for_each(|p| p.success());
    assert_eq!(breaker.state(&timer), BreakerState::HalfOpen);
    replacement.success();
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
}

#[test]
fn b8_a_hung_probe_slot_returns_after_5s_and_its_late_failure_changes_nothing() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let opened = open_it(&breaker, &timer);
    timer.advance_to(opened + secs(5));
    // Every probe hangs: they hold all three slots for one break duration, not for ever.
    let hung: Vec<_> = (0..3)
        .map(|_| breaker.try_acquire(&timer).unwrap())
        .collect();
    timer.advance(secs(5) - ms(1));
    assert_eq!(
        breaker.try_acquire(&timer).unwrap_err().retry_after(),
        Some(ms(1))
    );
    timer.advance(ms(1));
    let fresh: Vec<_> = (0..3)
        .map(|_| {
            breaker
                .try_acquire(&timer)
                .expect("the hung probes' slots are back")
        })
        .collect();
    assert!(breaker.try_acquire(&timer).is_err(), "still three at most");
    fresh.into_iter().for_each(|p| p.success());
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    // The hung probes finally fail: late, nothing changes.
    hung.into_iter().for_each(|p| p.failure());
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    assert_eq!(breaker.stats().late, 3);
    assert_eq!(breaker.stats().failures, 0);
}

#[test]
fn b8b_a_hung_probe_among_successes_does_not_block_closing() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let opened = open_it(&breaker, &timer);
    timer.advance_to(opened + secs(5));
    let hung = breaker.try_acquire(&timer).unwrap();
    breaker.try_acquire(&timer).unwrap().success();
    breaker.try_acquire(&timer).unwrap().success();
    breaker.try_acquire(&timer).unwrap().success();
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    hung.failure();
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    assert_eq!(breaker.stats().late, 1);
}

#[test]
fn b9_late_failures_while_open_never_reopen_or_extend() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    for _ in 0..100 {
        assert!(call(&breaker, &timer, false));
    }
    // 30 calls admitted while closed and still in flight.
    let mut in_flight: Vec<_> = (0..30)
        .map(|_| breaker.try_acquire(&timer).unwrap())
        .collect();
    let opened = open_it_from_here(&breaker, &timer);
    timer.advance(secs(1));
    for late in in_flight.drain(..15) {
        late.failure();
    }
    assert_eq!(breaker.stats().late, 15);
    assert_eq!(breaker.stats().opened, 1);
    assert_eq!(
        breaker.try_acquire(&timer).unwrap_err().retry_after(),
        Some(opened + secs(5) - timer.now()),
        "not extended"
    );
    // Late failures reported while half-open neither re-open nor use a probe slot.
    timer.advance_to(opened + secs(5));
    let probes: Vec<_> = (0..3)
        .map(|_| breaker.try_acquire(&timer).unwrap())
        .collect();
    for late in in_flight {
        late.failure();
    }
    assert_eq!(breaker.stats().late, 30);
    assert_eq!(breaker.state(&timer), BreakerState::HalfOpen);
    probes.into_iter().for_each(|p| p.success());
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    assert_eq!(breaker.stats().opened, 1);
}

fn open_it_from_here(breaker: &Breaker<CountWindow<20>>, timer: &ManualTimer) -> Duration {
    for _ in 0..10 {
        assert!(call(breaker, timer, true));
    }
    assert_eq!(breaker.state(timer), BreakerState::Open);
    timer.now()
}

#[test]
fn b10_time_window_opens_on_the_first_call_where_both_hold_bucket_edges_included() {
    // 10 buckets of 1 s: the current bucket and the 9 before it.
    let timer = ManualTimer::new();
    let breaker = Breaker::new(TimeWindow::<10>::new(secs(1)).unwrap())
        .with_failure_ratio(0.5)
        .unwrap()
        .try_with_min_calls(10)
        .unwrap();
    let record = |fail: bool| {
        let call = breaker.try_acquire(&timer).unwrap();
        if fail { call.failure() } else { call.success() }
    };
    for _ in 0..12 {
        record(false); // bucket 0, at t = 0
    }
    timer.advance_to(secs(5));
    for _ in 0..9 {
        record(true); // bucket 5: 21 calls, 9 failures
    }
    timer.advance_to(secs(10) - Duration::from_nanos(1));
    record(false); // bucket 9: bucket 0 still in: 22 calls, 9 failures
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    assert_eq!(breaker.stats().calls, 22);
    timer.advance_to(secs(10));
    // Bucket 10 begins: bucket 0 leaves at this very instant; 11 calls, 9 failures.
    record(false);
    assert_eq!(
        breaker.state(&timer),
        BreakerState::Open,
        "opened on a success"
    );
}

#[test]
fn b11_time_window_needs_the_minimum_inside_the_window() {
    let timer = ManualTimer::new();
    let breaker = Breaker::new(TimeWindow::<10>::new(secs(1)).unwrap());
    // One failure a second for a minute: never 10 calls inside 10 buckets... until it is.
    for n in 0..9 {
        timer.advance_to(secs(2 * n));
        breaker.try_acquire(&timer).unwrap().failure();
    }
    // At t = 16 s the window holds t = 8..=16: 5 failures of 5 calls, below the minimum.
    assert_eq!(breaker.stats().calls, 5);
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    for _ in 0..4 {
        breaker.try_acquire(&timer).unwrap().failure();
    }
    assert_eq!(breaker.state(&timer), BreakerState::Closed, "9 calls");
    breaker.try_acquire(&timer).unwrap().failure();
    assert_eq!(breaker.state(&timer), BreakerState::Open, "the 10th");
}

#[test]
fn slow_successes_count_as_failures() {
    let timer = ManualTimer::new();
    let breaker = Breaker::new(CountWindow::<4>::new())
        .try_with_min_calls(2)
        .unwrap()
        .with_slow_call(ms(100));
    let quick = breaker.try_acquire(&timer).unwrap();
    timer.advance(ms(100));
    quick.success(); // exactly the threshold: not slow
    assert_eq!(breaker.stats().failures, 0);
    let slow = breaker.try_acquire(&timer).unwrap();
    timer.advance(ms(101));
    slow.success();
    assert_eq!(breaker.stats().failures, 1);
    assert_eq!(breaker.state(&timer), BreakerState::Open, "1 of 2 ≥ 0.5");
}

#[test]
fn isolate_and_close_by_hand() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let before = breaker.try_acquire(&timer).unwrap();
    breaker.isolate();
    assert_eq!(breaker.state(&timer), BreakerState::Isolated);
    timer.advance(secs(3600));
    let refused = breaker.try_acquire(&timer).unwrap_err();
    assert_eq!(refused.retry_after(), None);
    assert_eq!(refused.to_string(), "circuit breaker isolated");
    before.failure(); // late
    breaker.close();
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
    breaker.try_acquire(&timer).unwrap().success();
    assert_eq!(breaker.stats().late, 1);
    // Closing by hand from open works too.
    open_it(&breaker, &timer);
    breaker.close();
    assert!(breaker.try_acquire(&timer).is_ok());
}

#[test]
fn ignored_and_dropped_calls_count_for_nothing() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    for _ in 0..50 {
        breaker.try_acquire(&timer).unwrap().ignore();
        drop(breaker.try_acquire(&timer).unwrap());
    }
    assert_eq!(breaker.stats().calls, 0);
}

fn poll_once<F: Future>(fut: core::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn dropping_a_pending_probe_call_frees_its_slot() {
    let timer = ManualTimer::new();
    let breaker = test_b().try_with_probes(1).unwrap();
    let opened = open_it(&breaker, &timer);
    timer.advance_to(opened + secs(5));
    {
        let mut call = pin!(breaker.call(&timer, pending::<Result<(), ()>>()));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(breaker.stats().probes_in_flight, 1);
        assert!(breaker.try_acquire(&timer).is_err());
    }
    assert_eq!(breaker.stats().probes_in_flight, 0);
    let result = smol::block_on(breaker.call(&timer, async { Ok::<_, ()>(1) }));
    assert_eq!(result, Ok(1));
    assert_eq!(breaker.state(&timer), BreakerState::Closed);
}

#[test]
fn a_call_built_before_opening_is_admitted_at_its_first_poll() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let reached = Cell::new(false);
    let call = breaker.call(&timer, async {
        reached.set(true);
        Ok::<_, ()>(())
    });
    open_it(&breaker, &timer);
    assert!(matches!(smol::block_on(call), Err(BreakerError::Open(_))));
    assert!(!reached.get());
}

#[test]
#[should_panic(expected = "`BreakerCall` polled after completion")]
fn breaker_call_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let breaker = test_b();
    let mut call = pin!(breaker.call(&timer, async { Ok::<_, ()>(()) }));
    assert!(poll_once(call.as_mut()).is_ready());
    let _ = poll_once(call.as_mut());
}

#[test]
fn invalid_settings_are_rejected_with_their_name() {
    let w = CountWindow::<4>::new;
    for bad in [0.0, -0.1, 1.01, f64::NAN] {
        let err = Breaker::new(w()).with_failure_ratio(bad).unwrap_err();
        assert_eq!(err.parameter(), "failure_ratio");
    }
    assert_eq!(
        Breaker::new(w())
            .try_with_min_calls(0)
            .unwrap_err()
            .parameter(),
        "min_calls"
    );
    assert_eq!(
        Breaker::new(w())
            .try_with_probes(0)
            .unwrap_err()
            .parameter(),
        "probes"
    );
    assert_eq!(
        TimeWindow::<3>::new(Duration::ZERO)
            .unwrap_err()
            .parameter(),
        "bucket"
    );
    assert_eq!(
        BreakDuration::exponential(secs(1), 0.5, secs(2))
            .unwrap_err()
            .parameter(),
        "factor"
    );
    assert_eq!(
        BreakDuration::exponential(secs(3), 2.0, secs(2))
            .unwrap_err()
            .parameter(),
        "cap"
    );
}

#[test]
fn breaker_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Breaker<CountWindow<20>>>();
    assert_send_sync::<Breaker<TimeWindow<10>>>();
    assert_send_sync::<dike::breaker::Call<'static, CountWindow<20>, ManualTimer>>();
    assert_send_sync::<dike::breaker::BreakerOpen>();
    assert_send_sync::<BreakerError<std::io::Error>>();
    assert_send_sync::<
        dike::breaker::BreakerCall<
            'static,
            CountWindow<20>,
            ManualTimer,
            core::future::Ready<Result<(), ()>>,
        >,
    >();
}

#[test]
fn events_follow_every_transition_in_order() {
    use std::sync::Mutex;
    static EVENTS: Mutex<Vec<dike::breaker::BreakerEvent>> = Mutex::new(Vec::new());
    fn record(event: dike::breaker::BreakerEvent) {
        EVENTS.lock().unwrap().push(event);
    }
    use dike::breaker::BreakerEvent::*;
    let timer = ManualTimer::new();
    let breaker = test_b().with_on_event(record);
    let opened = open_it(&breaker, &timer);
    timer.advance_to(opened + secs(5));
    breaker.try_acquire(&timer).unwrap().failure(); // half-open, then open again
    timer.advance(secs(10));
    let probes: Vec<_> = (0..3)
        .map(|_| breaker.try_acquire(&timer).unwrap())
        .collect();
    probes.into_iter().for_each(|p| p.success());
    breaker.isolate();
    breaker.close();
    assert_eq!(
        *EVENTS.lock().unwrap(),
        [
            Opened, HalfOpened, Opened, HalfOpened, Closed, Isolated, Closed
        ]
    );
}
