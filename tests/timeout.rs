//! Timeouts on a virtual clock: `time::timeout` / `time::deadline`, and Retry's attempt and
//! total timeouts (issue 16, test D), with cancellation at every await point.

use core::cell::RefCell;
use core::future::{Future, pending};
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use dike::error::Elapsed;
use dike::gate::Gate;
use dike::retry::{
    AttemptError, Backoff, Budgeted, Retry, RetryBudget, RetryError, RetryEvent, WithTimeouts,
};
use dike::time::{ManualTimer, Timer, deadline, timeout};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn poll_once<F: Future>(fut: core::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `fut`, jumping the clock to each next deadline, until it resolves.
fn drive<F: Future>(timer: &ManualTimer, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = poll_once(fut.as_mut()) {
            return out;
        }
        timer
            .advance_to_next()
            .expect("pending with no timer armed: wedged");
    }
}

// ---- time::timeout / time::deadline ----

#[test]
fn timeout_passes_a_quick_result_through() {
    let timer = ManualTimer::new();
    let fut = timeout(&timer, ms(10), async { 5 });
    assert_eq!(drive(&timer, fut), Ok(5));
    assert_eq!(timer.now(), Duration::ZERO);
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn timeout_fires_exactly_at_the_deadline_and_drops_the_future() {
    let timer = ManualTimer::new();
    timer.advance(ms(5));
    let inner = timer.sleep(ms(100));
    let mut fut = pin!(timeout(&timer, ms(20), inner));
    assert!(poll_once(fut.as_mut()).is_pending());
    assert_eq!(timer.sleepers(), 2);
    timer.advance(ms(19));
    assert!(poll_once(fut.as_mut()).is_pending(), "never early");
    timer.advance(ms(1));
    assert_eq!(
        poll_once(fut.as_mut()),
        Poll::Ready(Err(Elapsed::new(ms(25))))
    );
    assert_eq!(
        timer.sleepers(),
        0,
        "the guarded future and the sleep are dropped"
    );
}

#[test]
fn a_future_ready_at_the_deadline_wins() {
    let timer = ManualTimer::new();
    let inner = timer.sleep(ms(10));
    let mut fut = pin!(timeout(&timer, ms(10), inner));
    assert!(poll_once(fut.as_mut()).is_pending());
    timer.advance(ms(10));
    assert_eq!(poll_once(fut.as_mut()), Poll::Ready(Ok(())));
}

#[test]
fn deadline_in_the_past_fails_on_first_poll() {
    let timer = ManualTimer::new();
    timer.advance(ms(50));
    let mut fut = pin!(deadline(&timer, ms(10), pending::<()>()));
    assert_eq!(
        poll_once(fut.as_mut()),
        Poll::Ready(Err(Elapsed::new(ms(10))))
    );
}

#[test]
fn dropping_a_timeout_leaves_no_sleeper() {
    let timer = ManualTimer::new();
    {
        let mut fut = pin!(timeout(&timer, ms(10), timer.sleep(ms(100))));
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(timer.sleepers(), 2);
    }
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn timeout_wakes_the_task_at_the_deadline() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    let timer = ManualTimer::new();
    let mut fut = pin!(timeout(&timer, ms(10), pending::<()>()));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    timer.advance(ms(10));
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(poll_once(fut.as_mut()).is_ready());
}

#[test]
#[should_panic(expected = "`Timeout` polled after completion")]
fn timeout_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let mut fut = pin!(timeout(&timer, ms(10), async {}));
    assert!(poll_once(fut.as_mut()).is_ready());
    let _ = poll_once(fut.as_mut());
}

// ---- Retry: test D ----

/// Test D: 3 attempts, backoff 50 ms, attempt timeout 100 ms, total 250 ms, a hanging
/// dependency that holds a gate permit; a retry budget pays for the retries.
struct TestD {
    timer: ManualTimer,
    gate: Gate,
    budget: RetryBudget,
    starts: RefCell<Vec<Duration>>,
}

impl TestD {
    fn new() -> Self {
        Self {
            timer: ManualTimer::new(),
            gate: Gate::new(4),
            budget: RetryBudget::with_capacity(100, 10, 1).unwrap(),
            starts: RefCell::new(Vec::new()),
        }
    }

    fn policy(&self) -> Retry<Backoff, Budgeted<&RetryBudget>, WithTimeouts> {
        Retry::fixed(ms(50))
            .try_with_attempts(3)
            .unwrap()
            .with_attempt_timeout(ms(100))
            .with_timeout(ms(250))
            .with_budget(&self.budget)
    }

    /// One attempt: takes a permit, records its start, then hangs forever.
    async fn hang(&self) -> Result<(), &'static str> {
        let _permit = self.gate.try_enter().map_err(|_| "gate full")?;
        self.starts.borrow_mut().push(self.timer.now());
        pending::<()>().await;
        Ok(())
    }
}

#[test]
fn test_d_hanging_dependency() {
    let d = TestD::new();
    let policy = d.policy();
    let mut run = pin!(policy.run(&d.timer, || d.hang()));

    assert!(poll_once(run.as_mut()).is_pending());
    assert_eq!(d.gate.stats().in_use, 1);
    // The first attempt's timeout is the only deadline.
    assert_eq!(d.timer.next_deadline(), Some(ms(100)));
    d.timer.advance_to(ms(100));
    assert!(poll_once(run.as_mut()).is_pending());
    assert_eq!(
        d.gate.stats().in_use,
        0,
        "the timed-out attempt was dropped"
    );
    assert_eq!(d.budget.available(), 90, "one retry paid for");
    assert_eq!(d.timer.next_deadline(), Some(ms(150)), "a 50 ms backoff");
    d.timer.advance_to(ms(150));
    assert!(poll_once(run.as_mut()).is_pending());
    assert_eq!(d.gate.stats().in_use, 1);
    assert_eq!(d.timer.next_deadline(), Some(ms(250)));
    d.timer.advance_to(ms(249));
    assert!(poll_once(run.as_mut()).is_pending(), "never early");
    d.timer.advance_to(ms(250));
    let result = poll_once(run.as_mut());

    assert_eq!(*d.starts.borrow(), [ms(0), ms(150)], "no third attempt");
    assert_eq!(
        result,
        Poll::Ready(Err(RetryError::TimedOut {
            last: Some(AttemptError::TimedOut(Elapsed::new(ms(250))))
        })),
        "the total-timeout error carries the last attempt's error"
    );
    assert_eq!(d.timer.now(), ms(250));
    assert_eq!(d.timer.sleepers(), 0, "no third sleep, no live timer");
    assert_eq!(d.gate.stats().in_use, 0);
    assert_eq!(d.budget.available(), 90, "the retry made keeps its token");
}

#[test]
fn test_d_drop_at_every_await_point_leaves_nothing() {
    // Drop the outer future at each instant of test D: during attempt 1, the backoff,
    // attempt 2, and just before the end.
    for drop_at in [0, 50, 99, 100, 120, 149, 150, 200, 249] {
        let d = TestD::new();
        let policy = d.policy();
        {
            let mut run = pin!(policy.run(&d.timer, || d.hang()));
            assert!(poll_once(run.as_mut()).is_pending());
            while d.timer.now() < ms(drop_at) {
                let next = d.timer.next_deadline().unwrap().min(ms(drop_at));
                d.timer.advance_to(next);
                assert!(poll_once(run.as_mut()).is_pending());
            }
        }
        assert_eq!(d.timer.sleepers(), 0, "drop at {drop_at} ms: a live timer");
        assert_eq!(d.gate.stats().in_use, 0, "drop at {drop_at} ms: a permit");
        // A retry whose attempt started keeps its token (it was made); one still waiting
        // in the backoff is given back.
        let expected = if drop_at >= 150 { 90 } else { 100 };
        assert_eq!(
            d.budget.available(),
            expected,
            "drop at {drop_at} ms: budget"
        );
    }
}

// ---- Retry: events (Polly's OnTimeout / OnRetry) ----

/// An event as logged by the tests: the time it fired and the event, the error reduced to
/// a `&str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Retrying(u32, Duration, Option<&'static str>),
    BudgetRefused(u32, Option<&'static str>),
    AttemptTimedOut(u32, Duration),
    TimedOut(u32, Duration),
}

fn ev(event: RetryEvent<'_, &'static str>) -> Ev {
    match event {
        RetryEvent::Retrying {
            attempt,
            delay,
            error,
        } => Ev::Retrying(attempt, delay, error.copied()),
        RetryEvent::BudgetRefused { attempt, error } => Ev::BudgetRefused(attempt, error.copied()),
        RetryEvent::AttemptTimedOut { attempt, timeout } => Ev::AttemptTimedOut(attempt, timeout),
        RetryEvent::TimedOut { attempts, timeout } => Ev::TimedOut(attempts, timeout),
        _ => unreachable!("a new event variant: extend the test"),
    }
}

#[test]
fn test_d_events_fire_exactly_when_documented() {
    let d = TestD::new();
    let log = RefCell::new(Vec::new());
    let policy = d
        .policy()
        .on_event(|e: RetryEvent<'_, &'static str>| log.borrow_mut().push((d.timer.now(), ev(e))));
    let mut run = pin!(policy.run(&d.timer, || d.hang()));
    let events = || log.borrow().clone();

    assert!(poll_once(run.as_mut()).is_pending());
    d.timer.advance_to(ms(99));
    assert!(poll_once(run.as_mut()).is_pending());
    assert_eq!(events(), [], "nothing before the attempt timeout");
    d.timer.advance_to(ms(100));
    assert!(poll_once(run.as_mut()).is_pending());
    assert_eq!(
        events(),
        [
            (ms(100), Ev::AttemptTimedOut(1, ms(100))),
            (ms(100), Ev::Retrying(1, ms(50), None)),
        ],
        "OnTimeout for attempt 1 at 100 ms, then OnRetry with the 50 ms backoff"
    );
    d.timer.advance_to(ms(150));
    assert!(poll_once(run.as_mut()).is_pending());
    d.timer.advance_to(ms(249));
    assert!(poll_once(run.as_mut()).is_pending());
    assert_eq!(events().len(), 2, "nothing while attempt 2 runs");
    d.timer.advance_to(ms(250));
    assert!(poll_once(run.as_mut()).is_ready());
    assert_eq!(
        events()[2..],
        [
            (ms(250), Ev::AttemptTimedOut(2, ms(100))),
            (ms(250), Ev::TimedOut(2, ms(250))),
        ],
        "OnTimeout for attempt 2, then the total timeout, at 250 ms; no retry event"
    );
}

#[test]
fn a_deadline_cutting_an_attempt_reports_only_the_total_timeout() {
    let timer = ManualTimer::new();
    let log = RefCell::new(Vec::new());
    let policy = Retry::new()
        .with_attempt_timeout(ms(100))
        .with_timeout(ms(30))
        .on_event(|e: RetryEvent<'_, &'static str>| log.borrow_mut().push((timer.now(), ev(e))));
    let result = drive(&timer, policy.run(&timer, pending::<Result<(), &str>>));
    assert_eq!(result, Err(RetryError::TimedOut { last: None }));
    assert_eq!(*log.borrow(), [(ms(30), Ev::TimedOut(1, ms(30)))]);
}

#[test]
fn a_retry_that_cannot_fit_reports_the_total_timeout_at_once() {
    // Attempts fail at once with "503"; 40 ms apart; the deadline at 100 ms leaves no room
    // for a fourth attempt (at 120 ms): the run ends at 80 ms with TimedOut.
    let timer = ManualTimer::new();
    let log = RefCell::new(Vec::new());
    let notified = RefCell::new(Vec::new());
    let policy = Retry::fixed(ms(40))
        .with_timeout(ms(100))
        .notify(|e: &&str, n, d| notified.borrow_mut().push((timer.now(), *e, n, d)))
        .on_event(|e: RetryEvent<'_, &'static str>| log.borrow_mut().push((timer.now(), ev(e))));
    let result = drive(&timer, policy.run(&timer, || async { Err::<(), _>("503") }));
    assert!(matches!(result, Err(RetryError::TimedOut { .. })));
    assert_eq!(
        *log.borrow(),
        [
            (ms(0), Ev::Retrying(1, ms(40), Some("503"))),
            (ms(40), Ev::Retrying(2, ms(40), Some("503"))),
            (ms(80), Ev::TimedOut(3, ms(100))),
        ]
    );
    // notify is the error-only view of the same retries.
    assert_eq!(
        *notified.borrow(),
        [
            (ms(0), "503", 1, Some(ms(40))),
            (ms(40), "503", 2, Some(ms(40)))
        ]
    );
}

#[test]
fn a_late_sleep_past_the_deadline_reports_the_total_timeout() {
    // The clock jumps past the deadline during the backoff (a late real timer): the run
    // ends at the next poll, with no attempt started.
    let timer = ManualTimer::new();
    let log = RefCell::new(Vec::new());
    let policy = Retry::fixed(ms(50))
        .with_timeout(ms(100))
        .on_event(|e: RetryEvent<'_, &'static str>| log.borrow_mut().push((timer.now(), ev(e))));
    let mut run = pin!(policy.run(&timer, || async { Err::<(), _>("503") }));
    assert!(poll_once(run.as_mut()).is_pending());
    timer.advance_to(ms(300));
    assert_eq!(
        poll_once(run.as_mut()),
        Poll::Ready(Err(RetryError::TimedOut {
            last: Some(AttemptError::Failed("503"))
        }))
    );
    assert_eq!(
        *log.borrow(),
        [
            (ms(0), Ev::Retrying(1, ms(50), Some("503"))),
            (ms(300), Ev::TimedOut(1, ms(100))),
        ]
    );
}

#[test]
fn a_retry_paid_for_but_overtaken_by_the_deadline_is_refunded() {
    // Regression (found by tests/cancel_resilience.rs): the backoff's sleep ends past the
    // deadline (a late timer), so the retry it paid for never starts; its token comes back
    // at once, not only when the finished run is dropped.
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(100, 10, 1).unwrap();
    let policy = Retry::fixed(ms(50))
        .with_timeout(ms(100))
        .with_budget(&budget);
    let mut run = pin!(policy.run(&timer, || async { Err::<(), _>("503") }));
    assert!(poll_once(run.as_mut()).is_pending());
    assert_eq!(budget.available(), 90, "the retry is paid for");
    timer.advance_to(ms(300));
    assert!(matches!(
        poll_once(run.as_mut()),
        Poll::Ready(Err(RetryError::TimedOut { .. }))
    ));
    assert_eq!(budget.available(), 100, "no attempt started: refunded");
}

#[test]
fn a_timed_out_attempt_refused_by_the_budget_is_reported_without_an_error() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 10, 1).unwrap(); // one retry
    let log = RefCell::new(Vec::new());
    let policy = Retry::fixed(ms(5))
        .with_attempt_timeout(ms(10))
        .with_budget(&budget)
        .on_event(|e: RetryEvent<'_, &'static str>| log.borrow_mut().push((timer.now(), ev(e))));
    let result = drive(&timer, policy.run(&timer, pending::<Result<(), &str>>));
    assert_eq!(
        result,
        Err(RetryError::AttemptTimedOut(Elapsed::new(ms(25))))
    );
    assert_eq!(
        *log.borrow(),
        [
            (ms(10), Ev::AttemptTimedOut(1, ms(10))),
            (ms(10), Ev::Retrying(1, ms(5), None)),
            (ms(25), Ev::AttemptTimedOut(2, ms(10))),
            (ms(25), Ev::BudgetRefused(2, None)),
        ]
    );
}

#[test]
fn spent_attempts_after_a_timeout_report_only_the_timeout() {
    let timer = ManualTimer::new();
    let log = RefCell::new(Vec::new());
    let policy = Retry::fixed(ms(5))
        .try_with_attempts(1)
        .unwrap()
        .with_attempt_timeout(ms(10))
        .on_event(|e: RetryEvent<'_, &'static str>| log.borrow_mut().push((timer.now(), ev(e))));
    let result = drive(&timer, policy.run(&timer, pending::<Result<(), &str>>));
    assert_eq!(
        result,
        Err(RetryError::AttemptTimedOut(Elapsed::new(ms(10))))
    );
    assert_eq!(*log.borrow(), [(ms(10), Ev::AttemptTimedOut(1, ms(10)))]);
}

#[test]
fn run_level_event_hooks_follow_the_policys() {
    let timer = ManualTimer::new();
    let log = RefCell::new(Vec::new());
    let policy = Retry::fixed(ms(5))
        .try_with_attempts(2)
        .unwrap()
        .with_attempt_timeout(ms(10))
        .on_event(|e: RetryEvent<'_, &'static str>| log.borrow_mut().push(("policy", ev(e))));
    let run = policy
        .run(&timer, pending::<Result<(), &'static str>>)
        .on_event(|e| log.borrow_mut().push(("run", ev(e))));
    let _ = drive(&timer, run);
    assert_eq!(
        *log.borrow(),
        [
            ("policy", Ev::AttemptTimedOut(1, ms(10))),
            ("run", Ev::AttemptTimedOut(1, ms(10))),
            ("policy", Ev::Retrying(1, ms(5), None)),
            ("run", Ev::Retrying(1, ms(5), None)),
            ("policy", Ev::AttemptTimedOut(2, ms(10))),
            ("run", Ev::AttemptTimedOut(2, ms(10))),
        ]
    );
}

// ---- Retry: other timeout paths ----

#[test]
fn attempt_timeouts_are_retried_then_reported() {
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(10))
        .try_with_attempts(3)
        .unwrap()
        .with_attempt_timeout(ms(100));
    let starts = RefCell::new(Vec::new());
    let result = drive(
        &timer,
        policy.run(&timer, || {
            starts.borrow_mut().push(timer.now());
            pending::<Result<(), &str>>()
        }),
    );
    assert_eq!(*starts.borrow(), [ms(0), ms(110), ms(220)]);
    assert_eq!(
        result,
        Err(RetryError::AttemptTimedOut(Elapsed::new(ms(320))))
    );
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn own_errors_pass_through_as_failed() {
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(50))
        .try_with_attempts(3)
        .unwrap()
        .with_attempt_timeout(ms(100))
        .with_timeout(ms(1000));
    let result = drive(
        &timer,
        policy.run(&timer, || {
            let t = timer.clone();
            async move {
                t.sleep(ms(30)).await;
                Err::<(), _>("503")
            }
        }),
    );
    assert_eq!(result, Err(RetryError::Failed("503")));
    assert_eq!(timer.now(), ms(30 + 50 + 30 + 50 + 30));
}

#[test]
fn a_success_within_the_attempt_timeout_is_returned() {
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(5)).with_attempt_timeout(ms(100));
    let calls = RefCell::new(0);
    let result = drive(
        &timer,
        policy.run(&timer, || {
            *calls.borrow_mut() += 1;
            let n = *calls.borrow();
            let t = timer.clone();
            async move {
                // The first attempt hangs, the second answers after 40 ms.
                if n == 1 {
                    pending::<()>().await;
                }
                t.sleep(ms(40)).await;
                Ok::<_, &str>(n)
            }
        }),
    );
    assert_eq!(result, Ok(2));
    assert_eq!(timer.now(), ms(100 + 5 + 40));
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn the_total_timeout_cuts_an_attempt_and_reports_the_one_before() {
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(50)).with_timeout(ms(100));
    let calls = RefCell::new(0);
    let result = drive(
        &timer,
        policy.run(&timer, || {
            *calls.borrow_mut() += 1;
            let n = *calls.borrow();
            let t = timer.clone();
            async move {
                if n == 1 {
                    t.sleep(ms(10)).await;
                    return Err("503");
                }
                pending::<Result<(), _>>().await
            }
        }),
    );
    assert_eq!(timer.now(), ms(100), "cut at the total deadline");
    assert_eq!(
        result,
        Err(RetryError::TimedOut {
            last: Some(AttemptError::Failed("503"))
        })
    );
    assert_eq!(result.unwrap_err().last_error(), Some(&"503"));
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn a_first_attempt_cut_by_the_total_timeout_has_no_last_error() {
    let timer = ManualTimer::new();
    let policy = Retry::new().with_timeout(ms(30));
    let result = drive(&timer, policy.run(&timer, pending::<Result<(), &str>>));
    assert_eq!(result, Err(RetryError::TimedOut { last: None }));
    assert_eq!(timer.now(), ms(30));
}

#[test]
fn no_sleep_starts_that_cannot_fit() {
    // Attempt timeout 100 ms, total 120 ms: after the first timeout at 100 ms a 50 ms
    // backoff would end past the deadline, so the run ends at once, at 100 ms.
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(50))
        .with_attempt_timeout(ms(100))
        .with_timeout(ms(120));
    let calls = RefCell::new(0);
    let result = drive(
        &timer,
        policy.run(&timer, || {
            *calls.borrow_mut() += 1;
            pending::<Result<(), &str>>()
        }),
    );
    assert_eq!(*calls.borrow(), 1);
    assert_eq!(timer.now(), ms(100));
    assert_eq!(
        result,
        Err(RetryError::TimedOut {
            last: Some(AttemptError::TimedOut(Elapsed::new(ms(100))))
        })
    );
    // A backoff ending exactly at the deadline would leave no time for an attempt either.
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(20))
        .with_attempt_timeout(ms(100))
        .with_timeout(ms(120));
    let calls = RefCell::new(0);
    let _ = drive(
        &timer,
        policy.run(&timer, || {
            *calls.borrow_mut() += 1;
            pending::<Result<(), &str>>()
        }),
    );
    assert_eq!((*calls.borrow(), timer.now()), (1, ms(100)));
}

#[test]
fn timeouts_stay_out_of_the_predicate_and_notify_hooks() {
    let timer = ManualTimer::new();
    let notified = RefCell::new(Vec::new());
    let policy = Retry::fixed(ms(1))
        .try_with_attempts(2)
        .unwrap()
        .with_attempt_timeout(ms(10))
        .when(|_: &&str| false)
        .notify(|e: &&str, n, _| notified.borrow_mut().push((*e, n)));
    let result = drive(&timer, policy.run(&timer, pending::<Result<(), &str>>));
    assert!(matches!(result, Err(RetryError::AttemptTimedOut(_))));
    assert!(notified.borrow().is_empty());
}

#[test]
fn outcome_reports_attempts_of_a_timed_run() {
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(50))
        .try_with_attempts(3)
        .unwrap()
        .with_attempt_timeout(ms(100))
        .with_timeout(ms(250));
    let outcome = drive(
        &timer,
        policy.run(&timer, pending::<Result<(), &str>>).outcome(),
    );
    assert_eq!(outcome.attempts(), 2);
    assert_eq!(outcome.elapsed(), ms(250));
    assert!(outcome.result().as_ref().unwrap_err().is_timeout());
}

#[test]
fn display_and_source() {
    let err: RetryError<std::io::Error> = RetryError::TimedOut {
        last: Some(AttemptError::Failed(std::io::Error::other("reset"))),
    };
    assert_eq!(err.to_string(), "retry timed out; last attempt: reset");
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(source.to_string(), "reset");
}

#[test]
fn timed_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Elapsed>();
    assert_send_sync::<RetryError<std::io::Error>>();
    assert_send_sync::<AttemptError<std::io::Error>>();
    assert_send_sync::<dike::retry::WithTimeouts>();
    assert_send_sync::<dike::time::Timeout<core::future::Ready<()>, dike::time::ManualSleep>>();
}
