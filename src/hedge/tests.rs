use alloc::rc::Rc;
use core::cell::Cell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::*;
use crate::time::ManualTimer;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Drives `fut` on the manual clock to completion.
fn drive<F: Future>(timer: &ManualTimer, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(core::task::Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        timer
            .advance_to_next()
            .expect("a pending hedge run has a sleeper");
    }
}

/// Counts attempts alive.
struct Live(Rc<Cell<usize>>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// An operation whose attempt `i` answers `Ok(i)` after `latencies[i]` (or `Err(i)` if the
/// latency is in `errors`).
fn op<'a>(
    timer: &'a ManualTimer,
    latencies: &'a [Duration],
    errors: &'a [usize],
    calls: &'a Cell<usize>,
    live: &'a Rc<Cell<usize>>,
) -> impl FnMut() -> core::pin::Pin<Box<dyn Future<Output = Result<usize, usize>> + 'a>> + 'a {
    move || {
        let i = calls.get();
        calls.set(i + 1);
        live.set(live.get() + 1);
        let guard = Live(Rc::clone(live));
        let sleep = timer.sleep(latencies[i]);
        let err = errors.contains(&i);
        Box::pin(async move {
            sleep.await;
            let _guard = guard;
            if err { Err(i) } else { Ok(i) }
        })
    }
}

#[test]
fn fast_first_attempt_no_hedge_no_sleeper() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(15));
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(10)];
    let out = drive(
        &timer,
        policy.run(&timer, op(&timer, &lat, &[], &calls, &live)),
    );
    assert_eq!(out, Ok(0));
    assert_eq!(calls.get(), 1);
    assert_eq!(timer.now(), ms(10));
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(policy.stats().hedges, 0);
}

#[test]
fn hedge_wins_and_the_loser_is_dropped_before_the_result() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(15));
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(200), ms(10)];
    let out = drive(
        &timer,
        policy.run(&timer, op(&timer, &lat, &[], &calls, &live)),
    );
    assert_eq!(out, Ok(1));
    assert_eq!(live.get(), 0, "the straggler is gone");
    assert_eq!(timer.now(), ms(25));
    assert_eq!(timer.sleepers(), 0);
    let stats = policy.stats();
    assert_eq!((stats.hedges, stats.hedge_wins), (1, 1));
}

#[test]
fn max_hedges_spaced_by_the_delay() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(10)).try_with_max_hedges(2).unwrap();
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(100), ms(100), ms(100)];
    let out = drive(
        &timer,
        policy.run(&timer, op(&timer, &lat, &[], &calls, &live)),
    );
    // Attempts at 0, 10, 20 ms; the first answers at 100 ms, and no fourth starts.
    assert_eq!(out, Ok(0));
    assert_eq!(calls.get(), 3);
    assert_eq!(timer.now(), ms(100));
    assert_eq!(live.get(), 0);
}

#[test]
fn zero_delay_starts_every_hedge_at_once() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(Duration::ZERO).try_with_max_hedges(3).unwrap();
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(40), ms(30), ms(20), ms(10)];
    let out = drive(
        &timer,
        policy.run(&timer, op(&timer, &lat, &[], &calls, &live)),
    );
    assert_eq!(out, Ok(3));
    assert_eq!(calls.get(), 4);
    assert_eq!(timer.now(), ms(10));
    assert_eq!(live.get(), 0);
}

#[test]
fn events_are_reported() {
    use std::sync::Mutex;
    static EVENTS: Mutex<Vec<HedgeEvent>> = Mutex::new(Vec::new());
    fn hook(event: HedgeEvent) {
        EVENTS.lock().unwrap().push(event);
    }
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(5, 5, 0).unwrap();
    let policy = Hedge::fixed(ms(10))
        .try_with_max_hedges(3)
        .unwrap()
        .with_budget(&budget)
        .with_on_event(hook);
    drive(&timer, policy.run(&timer, || timer.sleep(ms(100))));
    assert_eq!(
        *EVENTS.lock().unwrap(),
        [
            HedgeEvent::Hedging { attempt: 2 },
            HedgeEvent::BudgetRefused { attempt: 3 }
        ]
    );
}

#[test]
fn rejected_output_starts_the_hedge_at_once_and_never_wins() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(15));
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(1), ms(10)];
    let run = policy
        .run(&timer, op(&timer, &lat, &[0], &calls, &live))
        .accept(Result::is_ok);
    assert_eq!(drive(&timer, run), Ok(1));
    assert_eq!(timer.now(), ms(11), "the hedge started at 1 ms, not at 15");

    // Every attempt rejected: the last rejected output comes back.
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(1), ms(2)];
    let run = policy
        .run(&timer, op(&timer, &lat, &[0, 1], &calls, &live))
        .accept(Result::is_ok);
    assert_eq!(drive(&timer, run), Err(1));
    assert_eq!(calls.get(), 2);
    assert_eq!(live.get(), 0);
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn without_a_predicate_an_error_wins() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(15));
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(1)];
    let out = drive(
        &timer,
        policy.run(&timer, op(&timer, &lat, &[0], &calls, &live)),
    );
    assert_eq!(out, Err(0));
    assert_eq!(calls.get(), 1);
}

#[test]
fn empty_budget_stops_new_hedges_only() {
    let timer = ManualTimer::new();
    // Room for exactly one hedge, no refund.
    let budget = RetryBudget::with_capacity(5, 5, 0).unwrap();
    let policy = Hedge::fixed(ms(10))
        .try_with_max_hedges(3)
        .unwrap()
        .with_budget(&budget);
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(100), ms(50)];
    let out = drive(
        &timer,
        policy.run(&timer, op(&timer, &lat, &[], &calls, &live)),
    );
    // The hedge (started at 10 ms) kept running after the budget refused the second one at
    // 20 ms, and won at 60 ms.
    assert_eq!(out, Ok(1));
    assert_eq!(timer.now(), ms(60));
    assert_eq!(calls.get(), 2);
    let stats = policy.stats();
    assert_eq!((stats.hedges, stats.refused, stats.hedge_wins), (1, 1, 1));
    assert_eq!(budget.available(), 0);
}

#[test]
fn accepted_answers_refund_the_budget() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    assert!(budget.try_withdraw());
    let policy = Hedge::fixed(ms(10)).with_budget(&budget);
    drive(&timer, policy.run(&timer, || async { 1 }));
    assert_eq!(budget.available(), 6);
}

#[test]
fn quantile_delay_after_min_samples() {
    let timer = ManualTimer::new();
    let policy = Hedge::quantile(0.95, 10, Duration::MAX).unwrap();
    for _ in 0..9 {
        drive(&timer, policy.run(&timer, || timer.sleep(ms(10))));
        assert_eq!(policy.hedge_delay(), Duration::MAX, "not yet");
    }
    drive(&timer, policy.run(&timer, || timer.sleep(ms(10))));
    // 10 000 µs is in the bucket [9216, 10240).
    assert_eq!(policy.hedge_delay(), Duration::from_micros(10_240));
    assert_eq!(policy.stats().samples, 10);
    assert_eq!(
        policy.stats().hedges,
        0,
        "no hedge while the fallback is MAX"
    );
}

#[test]
fn dropping_mid_flight_leaves_nothing() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(10));
    let (calls, live) = (Cell::new(0), Rc::new(Cell::new(0)));
    let lat = [ms(100), ms(100)];
    let mut cx = Context::from_waker(core::task::Waker::noop());
    {
        let mut run = Box::pin(policy.run(&timer, op(&timer, &lat, &[], &calls, &live)));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        assert_eq!(timer.sleepers(), 2, "the attempt and the hedge delay");
        timer.advance(ms(10));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        assert_eq!(live.get(), 2);
    }
    assert_eq!(live.get(), 0);
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn wakes_on_the_hedge_delay() {
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::{AtomicUsize, Ordering};
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Arc::clone(&count).into();
    let mut cx = Context::from_waker(&waker);
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(10));
    let calls = Cell::new(0);
    let mut run = Box::pin(policy.run(&timer, || {
        calls.set(calls.get() + 1);
        core::future::pending::<()>()
    }));
    assert!(run.as_mut().poll(&mut cx).is_pending());
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    timer.advance(ms(10));
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "woken by the hedge delay"
    );
    assert!(run.as_mut().poll(&mut cx).is_pending());
    assert_eq!(calls.get(), 2);
    assert_eq!(timer.sleepers(), 0, "max hedges reached: no sleep left");
}

#[test]
#[should_panic(expected = "polled after completion")]
fn poll_after_completion_panics() {
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(10));
    let mut run = Box::pin(policy.run(&timer, || async { 1 }));
    let mut cx = Context::from_waker(core::task::Waker::noop());
    assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready(1));
    let _ = run.as_mut().poll(&mut cx);
}

#[test]
fn config_errors_name_the_parameter() {
    assert_eq!(
        Hedge::quantile(0.0, 10, ms(1)).unwrap_err().parameter(),
        "quantile"
    );
    assert_eq!(
        Hedge::quantile(f64::NAN, 10, ms(1))
            .unwrap_err()
            .parameter(),
        "quantile"
    );
    assert_eq!(
        Hedge::quantile(0.5, 0, ms(1)).unwrap_err().parameter(),
        "min_samples"
    );
    let q = Hedge::quantile(0.5, 100, ms(1)).unwrap();
    assert_eq!(
        q.with_window::<50>().unwrap_err().parameter(),
        "min_samples"
    );
    assert_eq!(
        Hedge::fixed(ms(1))
            .with_window::<0>()
            .unwrap_err()
            .parameter(),
        "window"
    );
    assert_eq!(
        Hedge::fixed(ms(1))
            .try_with_max_hedges(0)
            .unwrap_err()
            .parameter(),
        "max_hedges"
    );
}

#[test]
fn send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Hedge>();
    send_sync::<Hedge<alloc::sync::Arc<RetryBudget>, 64>>();
    send_sync::<HedgeStats>();
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(ms(1));
    send(&policy.run(&timer, || async { 1 }));
}
