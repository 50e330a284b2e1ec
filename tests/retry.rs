//! Retry on a virtual clock: the Python dike suite ported case by case, then predicates,
//! caps, time and retry budgets, zero-delay yields and cancellation at every await point.

use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

extern crate alloc;
use alloc::sync::Arc;
use alloc::task::Wake;

use dike::prelude::*;
use dike::retry::{Backoff, Jitter, Retry, RetryBudget, RetryEvent, retry};
use dike::time::{ManualTimer, Timer};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, PartialEq)]
struct Failed(u32);

/// Counts wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A tiny executor on the virtual clock: poll; if the future woke itself, poll again; else
/// jump to the next timer deadline. Panics if the future waits with nothing to wake it.
fn drive<F: Future>(timer: &ManualTimer, fut: F) -> F::Output {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        let before = counter.count();
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        if counter.count() > before {
            continue;
        }
        assert!(
            timer.advance_to_next().is_some(),
            "wedged: pending, nothing to wake it"
        );
        assert!(
            counter.count() > before,
            "advancing the timer did not wake the retry"
        );
    }
}

/// An operation that fails `failures` times, then succeeds with the attempt number; it logs
/// the virtual time at which each attempt starts.
struct Flaky<'a> {
    timer: &'a ManualTimer,
    failures: u32,
    calls: Cell<u32>,
    starts: RefCell<Vec<Duration>>,
}

impl<'a> Flaky<'a> {
    fn new(timer: &'a ManualTimer, failures: u32) -> Self {
        Self {
            timer,
            failures,
            calls: Cell::new(0),
            starts: RefCell::new(Vec::new()),
        }
    }

    fn op(&self) -> impl FnMut() -> core::future::Ready<Result<u32, Failed>> + '_ {
        move || {
            let n = self.calls.get() + 1;
            self.calls.set(n);
            self.starts.borrow_mut().push(self.timer.now());
            core::future::ready(if n <= self.failures {
                Err(Failed(n))
            } else {
                Ok(n)
            })
        }
    }

    /// The waits between consecutive attempts.
    fn sleeps(&self) -> Vec<Duration> {
        self.starts
            .borrow()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect()
    }
}

fn with_attempts(attempts: Option<u32>) -> Retry {
    match attempts {
        Some(n) => Retry::new().try_with_attempts(n).unwrap(),
        None => Retry::new(),
    }
}

// ---- the Python dike suite ----

#[test]
fn no_error_calls_once() {
    for attempts in [None, Some(1), Some(2), Some(3)] {
        let timer = ManualTimer::new();
        let flaky = Flaky::new(&timer, 0);
        let notified = Cell::new(0);
        let policy =
            with_attempts(attempts).notify(|_: &Failed, _, _| notified.set(notified.get() + 1));
        assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(1));
        assert_eq!(flaky.calls.get(), 1, "attempts {attempts:?}");
        assert_eq!(notified.get(), 0);
    }
}

#[test]
fn one_failure_then_success() {
    for attempts in [None, Some(2), Some(3)] {
        let timer = ManualTimer::new();
        let flaky = Flaky::new(&timer, 1);
        let notified = RefCell::new(Vec::new());
        let policy = with_attempts(attempts)
            .with_schedule(Backoff::constant(ms(10)))
            .notify(|e: &Failed, n, d| notified.borrow_mut().push((e.clone(), n, d)));
        assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(2));
        assert_eq!(flaky.calls.get(), 2, "attempts {attempts:?}");
        assert_eq!(*notified.borrow(), [(Failed(1), 1, Some(ms(10)))]);
        assert_eq!(flaky.sleeps(), [ms(10)]);
    }
}

#[test]
fn failing_past_attempts_returns_the_original_error() {
    for attempts in [1, 2, 3, 5] {
        let timer = ManualTimer::new();
        let flaky = Flaky::new(&timer, u32::MAX);
        let notified = RefCell::new(Vec::new());
        let policy = Retry::fixed(ms(10))
            .try_with_attempts(attempts)
            .unwrap()
            .notify(|e: &Failed, n, _| notified.borrow_mut().push((e.clone(), n)));
        let result = drive(&timer, policy.run(&timer, flaky.op()));
        assert_eq!(result, Err(Failed(attempts)), "the last error, unchanged");
        assert_eq!(flaky.calls.get(), attempts);
        let expected: Vec<_> = (1..attempts).map(|n| (Failed(n), n)).collect();
        assert_eq!(*notified.borrow(), expected, "notified attempts - 1 times");
        assert_eq!(timer.sleepers(), 0);
    }
}

#[test]
fn sleep_sequence_is_d_times_b_to_the_n_minus_1() {
    let delays = [
        None,
        Some(ms(10)),
        Some(Duration::from_secs(1)),
        Some(Duration::from_secs(2)),
    ];
    for delay in delays {
        for backoff in [1.0, 2.5] {
            let timer = ManualTimer::new();
            let flaky = Flaky::new(&timer, 5);
            let d = delay.unwrap_or(Duration::ZERO);
            // Python dike accepts `backoff` without `delay` and never waits (0 × bⁿ); dike
            // rejects that spelling, so the no-delay case runs with no backoff instead.
            let policy = match Retry::exponential(d, backoff) {
                Ok(policy) => policy,
                Err(err) => {
                    assert!(d.is_zero() && backoff > 1.0, "{err}");
                    assert_eq!(err.parameter(), "first_delay");
                    Retry::new()
                }
            };
            let policy = policy.try_with_attempts(6).unwrap();
            assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(6));
            let expected: Vec<_> = (0..5)
                .map(|k| {
                    let b = if d.is_zero() { 1.0 } else { backoff };
                    Duration::from_nanos((d.as_nanos() as f64 * b.powi(k)).round() as u64)
                })
                .collect();
            assert_eq!(
                flaky.sleeps(),
                expected,
                "delay {delay:?} backoff {backoff}"
            );
        }
    }
}

#[test]
fn the_documented_exponential_spelling_backs_off() {
    // Issue 11: `with_backoff(2.0)` on the default zero delay retried at once, silently.
    // The documented spelling waits 100, 200, 400 ms (full jitter: at most that).
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::exponential(ms(100), 2.0)
        .unwrap()
        .with_attempts(core::num::NonZeroU32::new(4).unwrap());
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(4))
    );
    assert_eq!(flaky.sleeps(), [ms(100), ms(200), ms(400)]);

    let flaky = Flaky::new(&timer, u32::MAX);
    let jittered = policy.with_jitter(Jitter::Full).with_seed(5);
    drive(&timer, jittered.run(&timer, flaky.op())).unwrap_err();
    let sleeps = flaky.sleeps();
    assert_eq!(sleeps.len(), 3);
    for (sleep, cap) in sleeps.iter().zip([ms(100), ms(200), ms(400)]) {
        assert!(*sleep <= cap, "{sleep:?} > {cap:?}");
    }
    assert!(
        sleeps.iter().any(|d| !d.is_zero()),
        "jitter does not zero the schedule"
    );

    // The trap is gone: a multiplier without a first delay cannot be built.
    let err = Retry::exponential(Duration::ZERO, 2.0).unwrap_err();
    assert_eq!(err.parameter(), "first_delay");
    assert!(Backoff::none().with_multiplier(2.0).is_err());
}

// ---- beyond the Python suite ----

#[test]
fn predicate_stops_retries() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, u32::MAX);
    let notified = Cell::new(0);
    let policy = Retry::new()
        .when(|e: &Failed| e.0 < 3)
        .notify(|_: &Failed, _, _| notified.set(notified.get() + 1));
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(3))
    );
    assert_eq!(flaky.calls.get(), 3);
    assert_eq!(notified.get(), 2, "a rejected error is final, not notified");

    // Two predicates must both accept.
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new()
        .when(|e: &Failed| e.0 < 5)
        .when(|e: &Failed| e.0 != 2);
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(2))
    );
}

#[test]
fn max_delay_caps_the_sleeps() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 5);
    let policy = Retry::exponential(ms(10), 3.0)
        .unwrap()
        .with_max_delay(ms(100));
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(6));
    assert_eq!(flaky.sleeps(), [ms(10), ms(30), ms(90), ms(100), ms(100)]);
}

#[test]
fn jittered_sleeps_follow_the_seeded_schedule() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 6);
    let policy = Retry::exponential(ms(50), 2.0)
        .unwrap()
        .with_jitter(Jitter::Decorrelated)
        .with_max_delay(Duration::from_secs(1))
        .with_seed(99);
    let expected: Vec<_> = policy.schedule().iter().take(6).collect();
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(7));
    assert_eq!(flaky.sleeps(), expected);
}

#[test]
fn max_elapsed_refuses_a_sleep_that_would_overrun() {
    let timer = ManualTimer::new();
    timer.advance(Duration::from_secs(100)); // the budget counts from the first attempt
    let flaky = Flaky::new(&timer, u32::MAX);
    // Sleeps 10, 20, 40, 80 ms: starts at 0, 10, 30, 70; the 80 ms sleep would end at 150 > 100.
    let policy = Retry::exponential(ms(10), 2.0)
        .unwrap()
        .with_max_elapsed(ms(100));
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(4))
    );
    assert_eq!(flaky.sleeps(), [ms(10), ms(20), ms(40)]);
    assert_eq!(
        timer.now(),
        Duration::from_secs(100) + ms(70),
        "gave up at once, no sleep"
    );
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn max_elapsed_counts_attempt_time() {
    let timer = ManualTimer::new();
    let calls = Cell::new(0);
    // Each attempt takes 40 ms, each sleep 10 ms. Attempts start at 0 and 50; the second
    // fails at 90 and its sleep ends at 100, exactly the budget: allowed. The third fails at
    // 140, past the budget. Counting sleeps alone, ten retries would have fit.
    let policy = Retry::fixed(ms(10)).with_max_elapsed(ms(100));
    let op = || {
        calls.set(calls.get() + 1);
        let slow = timer.sleep(ms(40));
        async move {
            slow.await;
            Err::<(), _>(Failed(0))
        }
    };
    assert_eq!(drive(&timer, policy.run(&timer, op)), Err(Failed(0)));
    assert_eq!(calls.get(), 3);
    assert_eq!(timer.now(), ms(140));
}

#[test]
fn spent_max_elapsed_stops_zero_delay_retries() {
    // With no time left, even a zero-delay retry is refused: no busy loop at the boundary.
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new().with_max_elapsed(Duration::ZERO);
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(1))
    );
    assert_eq!(flaky.calls.get(), 1);
}

#[test]
fn delay_override_takes_precedence() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 3);
    let policy =
        Retry::fixed(ms(10)).delay_for(|e: &Failed| (e.0 == 2).then_some(Duration::from_secs(5)));
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(4));
    assert_eq!(flaky.sleeps(), [ms(10), Duration::from_secs(5), ms(10)]);

    // The last override set wins.
    let flaky = Flaky::new(&timer, 1);
    let policy = Retry::new()
        .delay_for(|_: &Failed| Some(ms(1)))
        .delay_for(|_: &Failed| Some(ms(2)));
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(2));
    assert_eq!(flaky.sleeps(), [ms(2)]);
}

#[test]
fn any_iterator_is_a_schedule_and_its_end_stops() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new().with_schedule([ms(3), ms(1), ms(4)]);
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(4))
    );
    assert_eq!(flaky.sleeps(), [ms(3), ms(1), ms(4)]);

    let flaky = Flaky::new(&timer, 2);
    let policy = Retry::new().with_schedule((1..).map(ms));
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(3));
    assert_eq!(flaky.sleeps(), [ms(1), ms(2)]);
}

#[test]
fn budget_exhaustion_stops_retries_and_is_notified() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    let notified = RefCell::new(Vec::new());
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new()
        .with_budget(&budget)
        .notify(|e: &Failed, n, d| notified.borrow_mut().push((e.0, n, d)));
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(3))
    );
    assert_eq!(
        *notified.borrow(),
        [
            (1, 1, Some(Duration::ZERO)),
            (2, 2, Some(Duration::ZERO)),
            (3, 3, None)
        ]
    );
    assert_eq!(budget.available(), 0);

    // An empty budget still lets first attempts through, and a success refunds.
    let flaky = Flaky::new(&timer, 0);
    let policy = Retry::new().with_budget(&budget);
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(1));
    assert_eq!(budget.available(), 1);

    // A budget in an Arc works the same.
    let shared = Arc::new(RetryBudget::new());
    let flaky = Flaky::new(&timer, 2);
    let policy = Retry::new().with_budget(Arc::clone(&shared));
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(3));
    assert_eq!(shared.available(), 500 - 10 + 1);
}

// ---- events (Polly's OnRetry) ----

/// The events of a run, the error reduced to its number, with the time and, for notify,
/// a marker that says which hook spoke (to check their order).
type Log = RefCell<Vec<(Duration, &'static str, u32, Option<Duration>, Option<u32>)>>;

fn log_event(log: &Log, now: Duration, event: RetryEvent<'_, Failed>) {
    let entry = match event {
        RetryEvent::Retrying {
            attempt,
            delay,
            error,
        } => ("retrying", attempt, Some(delay), error.map(|e| e.0)),
        RetryEvent::BudgetRefused { attempt, error } => {
            ("budget refused", attempt, None, error.map(|e| e.0))
        }
        other => panic!("no timeouts in this policy: {other:?}"),
    };
    log.borrow_mut()
        .push((now, entry.0, entry.1, entry.2, entry.3));
}

#[test]
fn on_retry_fires_after_notify_for_each_retry_and_budget_refusal() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap(); // two retries
    let log: Log = RefCell::new(Vec::new());
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::fixed(ms(10))
        .with_budget(&budget)
        .notify(|e: &Failed, n, d| {
            log.borrow_mut()
                .push((timer.now(), "notify", n, d, Some(e.0)));
        })
        .on_event(|event: RetryEvent<'_, Failed>| log_event(&log, timer.now(), event));
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(3))
    );
    assert_eq!(
        *log.borrow(),
        [
            (ms(0), "notify", 1, Some(ms(10)), Some(1)),
            (ms(0), "retrying", 1, Some(ms(10)), Some(1)),
            (ms(10), "notify", 2, Some(ms(10)), Some(2)),
            (ms(10), "retrying", 2, Some(ms(10)), Some(2)),
            (ms(20), "notify", 3, None, Some(3)),
            (ms(20), "budget refused", 3, None, Some(3)),
        ]
    );
}

#[test]
fn no_event_when_the_policy_gives_up_otherwise() {
    let timer = ManualTimer::new();
    let log: Log = RefCell::new(Vec::new());
    // The predicate refuses, then the attempts run out, then the schedule ends.
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new()
        .when(|_: &Failed| false)
        .on_event(|event: RetryEvent<'_, Failed>| log_event(&log, timer.now(), event));
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(1))
    );
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new()
        .try_with_attempts(2)
        .unwrap()
        .on_event(|event: RetryEvent<'_, Failed>| log_event(&log, timer.now(), event));
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(2))
    );
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new()
        .with_schedule([ms(1)])
        .on_event(|event: RetryEvent<'_, Failed>| log_event(&log, timer.now(), event));
    assert_eq!(
        drive(&timer, policy.run(&timer, flaky.op())),
        Err(Failed(2))
    );
    assert_eq!(
        *log.borrow(),
        [
            (ms(0), "retrying", 1, Some(Duration::ZERO), Some(1)),
            (ms(0), "retrying", 1, Some(ms(1)), Some(1)),
        ],
        "one retry each for the last two policies; nothing for giving up"
    );
}

#[test]
fn a_success_reports_no_event() {
    let timer = ManualTimer::new();
    let log: Log = RefCell::new(Vec::new());
    let flaky = Flaky::new(&timer, 0);
    let policy =
        Retry::new().on_event(|event: RetryEvent<'_, Failed>| log_event(&log, timer.now(), event));
    assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(1));
    assert!(log.borrow().is_empty());
}

#[test]
fn event_accessors() {
    let e = Failed(4);
    let event = RetryEvent::Retrying {
        attempt: 2,
        delay: ms(5),
        error: Some(&e),
    };
    let copy = event; // Copy even though `Failed` is not
    assert_eq!((copy.attempt(), copy.error()), (2, Some(&Failed(4))));
    assert_eq!(event, copy);
    let timed: RetryEvent<'_, Failed> = RetryEvent::TimedOut {
        attempts: 3,
        timeout: ms(250),
    };
    assert_eq!((timed.attempt(), timed.error()), (3, None));
}

#[cfg(feature = "tower")]
#[test]
fn the_tower_layer_reports_through_the_same_hooks() {
    use tower::{Layer, ServiceExt, service_fn};

    let timer = ManualTimer::new();
    let log: Log = RefCell::new(Vec::new());
    let calls = Cell::new(0);
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap(); // two retries
    let policy = Retry::fixed(ms(10))
        .with_budget(&budget)
        .on_event(|event: RetryEvent<'_, Failed>| log_event(&log, timer.now(), event));
    let service = dike::tower::RetryLayer::new(policy, timer.clone()).layer(service_fn(|()| {
        calls.set(calls.get() + 1);
        core::future::ready(Err::<(), _>(Failed(calls.get())))
    }));
    assert_eq!(drive(&timer, service.oneshot(())), Err(Failed(3)));
    assert_eq!(
        *log.borrow(),
        [
            (ms(0), "retrying", 1, Some(ms(10)), Some(1)),
            (ms(10), "retrying", 2, Some(ms(10)), Some(2)),
            (ms(20), "budget refused", 3, None, Some(3)),
        ]
    );
}

#[test]
fn construction_errors_name_the_parameter() {
    let err = Retry::new().try_with_attempts(0).unwrap_err();
    assert_eq!(err.parameter(), "attempts");
    assert_eq!(err.to_string(), "invalid attempts = 0: expected at least 1");
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let err = Retry::exponential(ms(1), bad).unwrap_err();
        assert_eq!(err.parameter(), "multiplier");
    }
    let err = Retry::exponential(Duration::ZERO, 1.5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid first_delay = 0ns: expected more than zero with a multiplier above 1"
    );
    // A multiplier of 1 from zero is `Retry::new()`: no promise of a backoff to break.
    assert!(Retry::exponential(Duration::ZERO, 1.0).is_ok());
    let err = Backoff::exponential(ms(1), -2.5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid multiplier = -2.5: expected a finite number >= 1"
    );
}

// ---- poll level ----

#[test]
fn zero_delay_yields_once_without_the_timer() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 1);
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let policy = Retry::new();
    let mut run = pin!(policy.run(&timer, flaky.op()));

    assert!(
        run.as_mut().poll(&mut cx).is_pending(),
        "yields after the failure"
    );
    assert_eq!(counter.count(), 1, "woke itself");
    assert_eq!(timer.sleepers(), 0, "no timer round trip");
    assert_eq!(flaky.calls.get(), 1);
    assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready(Ok(2)));
    assert_eq!(timer.now(), Duration::ZERO);
}

#[test]
fn sleep_wakes_the_task_exactly_at_the_deadline() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 1);
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let policy = Retry::fixed(ms(10));
    let mut run = pin!(policy.run(&timer, flaky.op()));

    assert!(run.as_mut().poll(&mut cx).is_pending());
    assert_eq!(counter.count(), 0);
    assert_eq!(timer.next_deadline(), Some(ms(10)));
    timer.advance(ms(9));
    assert_eq!(counter.count(), 0, "not early");
    assert!(run.as_mut().poll(&mut cx).is_pending());
    timer.advance(ms(1));
    assert_eq!(counter.count(), 1);
    assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready(Ok(2)));
    assert_eq!(flaky.starts.borrow().as_slice(), [Duration::ZERO, ms(10)]);
}

/// Sets its flag when dropped: proves an attempt's future was dropped.
struct DropFlag<'a>(&'a Cell<bool>);

impl Drop for DropFlag<'_> {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn dropping_mid_attempt_drops_the_attempt() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    let dropped = Cell::new(false);
    let calls = Cell::new(0);
    let op = || {
        calls.set(calls.get() + 1);
        let flag = DropFlag(&dropped);
        let slow = timer.sleep(Duration::from_secs(1));
        async move {
            let _flag = flag;
            slow.await;
            Err::<(), _>(Failed(0))
        }
    };
    let policy = Retry::new().with_budget(&budget);
    let mut run = Box::pin(policy.run(&timer, op));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(timer.sleepers(), 1, "the attempt waits");
    drop(run);
    assert!(dropped.get(), "the attempt's future is dropped");
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(calls.get(), 1);
    assert_eq!(budget.available(), 10, "no retry was paid for");
}

#[test]
fn a_panicking_notify_hook_refunds_the_paid_retry() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::fixed(ms(10))
        .with_budget(&budget)
        .notify(|_: &Failed, _, _| panic!("hook failed"));
    let mut run = Box::pin(policy.run(&timer, flaky.op()));
    let unwound = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let _ = run.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    }));
    assert!(unwound.is_err(), "the hook's panic reaches the poller");
    assert_eq!(
        budget.available(),
        5,
        "the retry was paid before the hook ran"
    );
    drop(run);
    assert_eq!(budget.available(), 10, "dropping the future refunds it");
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn dropping_mid_sleep_leaves_nothing_behind() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::fixed(ms(10)).with_budget(&budget);
    let mut run = Box::pin(policy.run(&timer, flaky.op()));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(timer.sleepers(), 1, "sleeping before the retry");
    assert_eq!(budget.available(), 5, "the retry is paid for");
    drop(run);
    assert_eq!(timer.sleepers(), 0, "the sleep is gone");
    assert_eq!(budget.available(), 10, "the unused retry is refunded");
    timer.advance(Duration::from_secs(1));
    assert_eq!(flaky.calls.get(), 1, "no call after the drop");
}

#[test]
fn dropping_mid_yield_refunds_the_retry() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new().with_budget(&budget);
    let mut run = Box::pin(policy.run(&timer, flaky.op()));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(budget.available(), 5);
    drop(run);
    assert_eq!(budget.available(), 10);
}

#[test]
fn retried_attempt_keeps_its_payment_when_dropped() {
    // Once the retry has started, its tokens are spent: dropping then refunds nothing.
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    let calls = Cell::new(0);
    let op = || {
        calls.set(calls.get() + 1);
        let first = calls.get() == 1;
        let slow = timer.sleep(Duration::from_secs(1));
        async move {
            if first {
                return Err::<(), _>(Failed(1));
            }
            slow.await;
            Ok(())
        }
    };
    let policy = Retry::new().with_budget(&budget);
    let mut run = Box::pin(policy.run(&timer, op));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_pending()); // failed, yielding
    assert!(run.as_mut().poll(&mut cx).is_pending()); // second attempt waits
    assert_eq!(calls.get(), 2);
    drop(run);
    assert_eq!(budget.available(), 5);
}

#[test]
fn the_decorator_form_retries_each_call() {
    let timer = ManualTimer::new();
    let calls = Cell::new(0);
    let web_request = retry(
        Retry::fixed(ms(10)).try_with_attempts(2).unwrap(),
        &timer,
        |url: &str| {
            calls.set(calls.get() + 1);
            let url = url.to_owned();
            async move { Err::<(), _>(format!("{url}: request failed")) }
        },
    );
    let result = drive(&timer, web_request.call("a"));
    assert_eq!(result, Err("a: request failed".to_owned()));
    assert_eq!(
        drive(&timer, web_request.call("b")),
        Err("b: request failed".to_owned())
    );
    assert_eq!(calls.get(), 4);
    assert_eq!(timer.now(), ms(20));
}

#[test]
fn the_extension_form_reads_naturally() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 2);
    let policy = Retry::new().try_with_attempts(3).unwrap();
    let run = flaky.op().retry(&policy, &timer);
    assert_eq!(drive(&timer, run), Ok(3));
}

// ---- reuse, outcome, run-level hooks (issue 11) ----

/// A full policy in a `static`, built at compile time without a runtime unwrap.
static POLICY: Retry = match Retry::exponential(ms(10), 2.0) {
    Ok(policy) => policy
        .with_max_delay(ms(25))
        .with_attempts(core::num::NonZeroU32::new(4).unwrap()),
    Err(_) => panic!("invalid retry policy"),
};

#[test]
fn a_static_policy_runs_many_times() {
    let timer = ManualTimer::new();
    for _ in 0..3 {
        let flaky = Flaky::new(&timer, u32::MAX);
        assert_eq!(
            drive(&timer, POLICY.run(&timer, flaky.op())),
            Err(Failed(4))
        );
        assert_eq!(flaky.sleeps(), [ms(10), ms(20), ms(25)]);
    }
}

#[test]
fn a_policy_in_a_struct_field_serves_concurrent_runs() {
    // The documented storing pattern: a type alias over fn pointers.
    type Policy = Retry<Backoff, dike::retry::Notify<fn(&Failed, u32, Option<Duration>)>>;
    struct Client {
        policy: Policy,
    }
    fn log(_: &Failed, _: u32, _: Option<Duration>) {}
    let client = Client {
        policy: Retry::fixed(ms(10))
            .try_with_attempts(3)
            .unwrap()
            .notify(log as fn(&_, _, _)),
    };
    let timer = ManualTimer::new();
    let a = Flaky::new(&timer, 1);
    let b = Flaky::new(&timer, u32::MAX);
    // Two runs of one borrowed policy at once, each with its own schedule and count.
    let both = futures_util::future::join(
        client.policy.run(&timer, a.op()),
        client.policy.run(&timer, b.op()),
    );
    let (ra, rb) = drive(&timer, both);
    assert_eq!((ra, rb), (Ok(2), Err(Failed(3))));
    assert_eq!(a.sleeps(), [ms(10)]);
    assert_eq!(b.sleeps(), [ms(10), ms(10)]);
}

#[test]
fn outcome_reports_attempts_and_elapsed_time() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 2);
    let policy = Retry::exponential(ms(10), 2.0).unwrap();
    let outcome = drive(&timer, policy.run(&timer, flaky.op()).outcome());
    assert_eq!(outcome.result(), &Ok(3));
    assert_eq!(outcome.attempts(), 3);
    assert_eq!(outcome.elapsed(), ms(30));

    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::new().try_with_attempts(5).unwrap();
    let outcome = drive(&timer, flaky.op().retry(&policy, &timer).outcome());
    assert_eq!(
        (outcome.attempts(), outcome.into_result()),
        (5, Err(Failed(5)))
    );
}

#[test]
#[should_panic(expected = "`Run` polled after completion")]
fn run_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let policy = Retry::new();
    let mut run = pin!(policy.run(&timer, || async { Ok::<_, Failed>(1) }));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
    let _ = run.as_mut().poll(&mut cx);
}

#[test]
#[should_panic(expected = "`RunOutcome` polled after completion")]
fn outcome_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let policy = Retry::new();
    let mut run = pin!(
        policy
            .run(&timer, || async { Ok::<_, Failed>(1) })
            .outcome()
    );
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_ready());
    let _ = run.as_mut().poll(&mut cx);
}

#[test]
fn run_level_hooks_infer_the_error_type_and_layer_over_the_policy() {
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy_notified = Cell::new(0);
    let run_notified = RefCell::new(Vec::new());
    let policy = Retry::fixed(ms(10))
        .when(|e: &Failed| e.0 < 5)
        .notify(|_: &Failed, _, _| policy_notified.set(policy_notified.get() + 1));
    let run = flaky
        .op()
        .retry(&policy, &timer)
        .when(|e| e.0 != 3) // `e: &Failed`, inferred from the operation
        .delay_for(|e| (e.0 == 2).then_some(ms(50)))
        .notify(|e, attempt, next| run_notified.borrow_mut().push((e.0, attempt, next)));
    assert_eq!(
        drive(&timer, run),
        Err(Failed(3)),
        "the run's predicate stops at 3"
    );
    assert_eq!(policy_notified.get(), 2);
    assert_eq!(
        *run_notified.borrow(),
        [(1, 1, Some(ms(10))), (2, 2, Some(ms(50)))]
    );
    assert_eq!(flaky.sleeps(), [ms(10), ms(50)]);
}

#[test]
fn run_level_hooks_keep_the_budget_refund() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    let flaky = Flaky::new(&timer, u32::MAX);
    let policy = Retry::fixed(ms(10)).with_budget(&budget);
    let mut run = Box::pin(flaky.op().retry(&policy, &timer).when(|_| true));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(budget.available(), 5, "the retry is paid for");
    drop(run);
    assert_eq!(budget.available(), 10, "refunded on drop");
}

#[test]
fn debug_output_is_readable() {
    let policy = Retry::exponential(ms(100), 2.0)
        .unwrap()
        .with_jitter(Jitter::Full)
        .try_with_attempts(4)
        .unwrap();
    let text = format!("{policy:?}");
    assert_eq!(
        text,
        "Retry { attempts: 4, max_elapsed: unlimited, schedule: Backoff { first_delay: 100ms, \
         multiplier: 2.0, max_delay: none, jitter: Full, seed: none }, hooks: NoHooks }"
    );
    assert!(!text.contains("18446744073709551615"));
    let capped = Retry::fixed(ms(1))
        .with_max_delay(ms(5))
        .with_seed(7)
        .with_max_elapsed(Duration::from_secs(1));
    assert_eq!(
        format!("{capped:?}"),
        "Retry { attempts: unlimited, max_elapsed: 1s, schedule: Backoff { first_delay: 1ms, \
         multiplier: 1.0, max_delay: 5ms, jitter: None, seed: 7 }, hooks: NoHooks }"
    );
    let timer = ManualTimer::new();
    let run = policy.run(&timer, || async { Ok::<_, Failed>(()) });
    assert_eq!(format!("{run:?}"), "Run { attempt: 0, state: start, .. }");
}

// ---- threads ----

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn send_and_sync() {
    assert_send_sync::<Retry>();
    assert_send_sync::<RetryBudget>();
    assert_send_sync::<Backoff>();
    assert_send_sync::<RetryEvent<'static, u8>>();
    let timer = ManualTimer::new();
    let budget = Arc::new(RetryBudget::new());
    let policy = Retry::new()
        .with_budget(Arc::clone(&budget))
        .when(|_: &u8| true)
        .notify(|_: &u8, _, _| {})
        .delay_for(|_: &u8| None)
        .on_event(|_: RetryEvent<'_, u8>| {});
    let run = policy.run(timer.clone(), || async { Err::<(), u8>(1) });
    assert_send(&run);
    let outcome = run.when(|_| true).on_event(|_| {}).outcome();
    assert_send(&outcome);
}

#[test]
fn budget_is_conserved_under_a_multithreaded_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let budget = Arc::new(RetryBudget::new());
    let timer = ManualTimer::new();
    let tasks = 40;
    rt.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let budget = Arc::clone(&budget);
            let timer = timer.clone();
            handles.push(tokio::spawn(async move {
                let calls = Arc::new(AtomicUsize::new(0));
                let op = {
                    let calls = Arc::clone(&calls);
                    move || {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        async move { if n == 0 { Err("once") } else { Ok(n) } }
                    }
                };
                Retry::new().with_budget(budget).run(timer, op).await
            }));
        }
        for handle in handles {
            assert_eq!(handle.await.unwrap(), Ok(1));
        }
    });
    // Each task paid 5 for its retry and got 1 back; a refund always follows its own
    // withdrawal, so the cap never clipped one.
    assert_eq!(budget.available(), 500 - tasks * 5 + tasks);
}

#[test]
fn jitter_never_breaks_the_cap_in_the_loop() {
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let timer = ManualTimer::new();
        let flaky = Flaky::new(&timer, 20);
        let policy = Retry::exponential(ms(10), 2.0)
            .unwrap()
            .with_max_delay(ms(200))
            .with_jitter(jitter);
        assert_eq!(drive(&timer, policy.run(&timer, flaky.op())), Ok(21));
        assert!(flaky.sleeps().iter().all(|&d| d <= ms(200)), "{jitter:?}");
    }
}

// ---- real runtimes ----

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn tokio_timer_waits_the_schedule_never_less() {
    use dike::time::TokioTimer;

    let timer = TokioTimer::new();
    let starts = RefCell::new(Vec::new());
    let policy = Retry::exponential(ms(10), 2.0)
        .unwrap()
        .try_with_attempts(3)
        .unwrap();
    let result = policy
        .run(timer, || {
            starts.borrow_mut().push(tokio::time::Instant::now());
            async { Err::<(), _>("down") }
        })
        .await;
    assert_eq!(result, Err("down"));
    let starts = starts.into_inner();
    for (gap, want) in starts.windows(2).map(|w| w[1] - w[0]).zip([ms(10), ms(20)]) {
        assert!(gap >= want && gap <= want + ms(1), "{gap:?} for {want:?}");
    }
}

#[test]
fn smol_zero_delay_retries_without_a_timer() {
    // A zero delay only yields: the timer is never asked to sleep, so any timer will do.
    let timer = ManualTimer::new();
    let flaky = Flaky::new(&timer, 3);
    let result = smol::block_on(flaky.op().retry(&Retry::new(), &timer));
    assert_eq!(result, Ok(4));
    assert_eq!(timer.sleepers(), 0);
}

// ---- properties ----

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// For any failure count, attempt limit and schedule: the call count, the outcome, the
    /// notifications and the waits are exactly what the policy says.
    #[test]
    fn the_loop_follows_the_policy(
        failures in 0u32..12,
        attempts in 1u32..12,
        delay_us in 0u64..50_000,
        backoff in 1.0f64..3.0,
        jitter in proptest::sample::select(vec![
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ]),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let timer = ManualTimer::new();
        let flaky = Flaky::new(&timer, failures);
        let notified = Cell::new(0);
        // A zero first delay cannot grow: the policy is then fixed at zero.
        let d = Duration::from_micros(delay_us);
        let base = if d.is_zero() { Retry::new() } else { Retry::exponential(d, backoff).unwrap() };
        let policy = base
            .try_with_attempts(attempts)
            .unwrap()
            .with_max_delay(ms(30))
            .with_jitter(jitter)
            .with_seed(seed)
            .notify(|_: &Failed, _, _| notified.set(notified.get() + 1));
        let expected_sleeps: Vec<_> =
            policy.schedule().iter().take(attempts as usize - 1).collect();
        let result = drive(&timer, policy.run(&timer, flaky.op()));
        let calls = (failures + 1).min(attempts);
        proptest::prop_assert_eq!(flaky.calls.get(), calls);
        if failures < attempts {
            proptest::prop_assert_eq!(result, Ok(calls));
        } else {
            proptest::prop_assert_eq!(result, Err(Failed(attempts)));
        }
        proptest::prop_assert_eq!(notified.get(), calls - 1);
        proptest::prop_assert_eq!(flaky.sleeps(), &expected_sleeps[..calls as usize - 1]);
        proptest::prop_assert_eq!(timer.sleepers(), 0);
    }
}
