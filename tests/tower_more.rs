//! `RetryLayer`, `CoalesceLayer` and `BatchLayer` under tower's own mock service
//! (`tower-test`): the `poll_ready`/`call` contract, cancellation, typed errors; time on a
//! `ManualTimer`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dike::retry::{Retry, RetryBudget};
use dike::time::ManualTimer;
use dike::tower::{RetryFuture, RetryLayer, RetryService};
use futures_util::FutureExt;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock::{self, Handle};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Polls a future once with a no-op waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    future.poll_unpin(&mut Context::from_waker(Waker::noop()))
}

/// The next request the mock received, if any, and its responder.
fn next_request<T, U>(handle: &mut Handle<T, U>) -> Option<(T, mock::SendResponse<U>)> {
    match handle.poll_request() {
        Poll::Ready(Some(request)) => Some(request),
        _ => None,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ----------------------------------------------------------------------------------------
// RetryLayer

/// A request that counts its clones.
#[derive(Debug)]
struct Counted {
    id: u32,
    clones: Arc<AtomicU32>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::Relaxed);
        Self {
            id: self.id,
            clones: Arc::clone(&self.clones),
        }
    }
}

#[test]
fn retry_retries_on_the_schedule_with_a_clone_of_the_original_per_attempt() {
    let timer = ManualTimer::new();
    let policy = Retry::exponential(ms(10), 2.0)
        .unwrap()
        .try_with_attempts(3)
        .unwrap();
    let (mut service, mut handle) =
        mock::spawn_layer::<Counted, &str, _>(RetryLayer::new(policy, timer.clone()));
    let clones = Arc::new(AtomicU32::new(0));

    assert!(service.poll_ready().is_ready());
    let request = Counted {
        id: 7,
        clones: Arc::clone(&clones),
    };
    let mut response = Box::pin(service.call(request));
    let (first, send) = next_request(&mut handle).expect("the first attempt is sent at call");
    assert_eq!(first.id, 7);
    assert_eq!(
        clones.load(Ordering::Relaxed),
        1,
        "one clone for the first attempt"
    );
    send.send_error("reset");

    assert!(poll_once(&mut response).is_pending(), "sleeping 10 ms");
    assert_eq!(timer.next_deadline(), Some(ms(10)));
    assert!(next_request(&mut handle).is_none());
    timer.advance(ms(10));
    assert!(poll_once(&mut response).is_pending());
    let (second, send) = next_request(&mut handle).expect("the retry");
    assert_eq!((second.id, response.attempts_sent()), (7, 2));
    assert_eq!(
        clones.load(Ordering::Relaxed),
        2,
        "a fresh clone of the original"
    );
    send.send_error("reset");

    assert!(poll_once(&mut response).is_pending());
    assert_eq!(timer.next_deadline(), Some(ms(30)), "then 20 ms");
    timer.advance(ms(20));
    assert!(poll_once(&mut response).is_pending());
    let (_, send) = next_request(&mut handle).expect("the third attempt");
    send.send_response("ok");
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok("ok"))));
    assert_eq!(clones.load(Ordering::Relaxed), 3);
}

/// A waker counting its wake-ups.
struct CountingWaker(AtomicU32);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn retry_future_is_woken_by_the_timer_then_by_the_inner_readiness() {
    let timer = ManualTimer::new();
    let (mut service, mut handle) =
        mock::spawn_layer::<u32, u32, _>(RetryLayer::new(Retry::fixed(ms(10)), timer.clone()));
    let wakes = Arc::new(CountingWaker(AtomicU32::new(0)));
    let waker = Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);

    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    assert!(response.as_mut().poll(&mut cx).is_pending());
    handle.allow(0);
    next_request(&mut handle).unwrap().1.send_error("reset");
    let woken = wakes.0.load(Ordering::Relaxed);
    assert!(woken >= 1, "the failed attempt wakes the task");
    assert!(response.as_mut().poll(&mut cx).is_pending(), "sleeping");
    let woken = wakes.0.load(Ordering::Relaxed);
    timer.advance(ms(10));
    assert_eq!(
        wakes.0.load(Ordering::Relaxed),
        woken + 1,
        "the timer wakes it once"
    );
    assert!(
        response.as_mut().poll(&mut cx).is_pending(),
        "the inner is not ready"
    );
    let woken = wakes.0.load(Ordering::Relaxed);
    handle.allow(1);
    assert_eq!(
        wakes.0.load(Ordering::Relaxed),
        woken + 1,
        "readiness wakes it once"
    );
    assert!(response.as_mut().poll(&mut cx).is_pending());
    next_request(&mut handle).unwrap().1.send_response(5);
    assert!(matches!(
        response.as_mut().poll(&mut cx),
        Poll::Ready(Ok(5))
    ));
}

#[test]
fn retry_gives_up_after_the_attempts_with_the_last_error_typed() {
    let timer = ManualTimer::new();
    let layer = RetryLayer::new(Retry::new().try_with_attempts(2).unwrap(), timer);
    let calls = AtomicU32::new(0);
    let service = layer.layer(service_fn(|n: u32| {
        let attempt = calls.fetch_add(1, Ordering::Relaxed) + 1;
        async move { Err::<u32, _>(std::io::Error::other(format!("{n}: attempt {attempt}"))) }
    }));
    let err = smol::block_on(service.oneshot(5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "5: attempt 2",
        "the last error, an io::Error still"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[test]
fn retry_polls_the_inner_readiness_before_each_retry_and_never_calls_it_unready() {
    let timer = ManualTimer::new();
    let (mut service, mut handle) =
        mock::spawn_layer::<u32, u32, _>(RetryLayer::new(Retry::fixed(ms(5)), timer.clone()));

    handle.allow(0);
    assert!(
        service.poll_ready().is_pending(),
        "the inner's readiness, propagated"
    );
    handle.allow(1);
    assert!(service.is_woken());
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    let (_, send) = next_request(&mut handle).unwrap();
    send.send_error("busy");

    // The inner allows no more calls: after the sleep, the retry waits for readiness.
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(5));
    for _ in 0..3 {
        assert!(poll_once(&mut response).is_pending());
        assert!(
            next_request(&mut handle).is_none(),
            "not ready: never called"
        );
    }
    handle.allow(1);
    assert!(poll_once(&mut response).is_pending());
    let (request, send) = next_request(&mut handle).expect("called once ready");
    assert_eq!(request, 1);
    send.send_response(10);
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(10))));
}

#[test]
fn retry_a_readiness_error_before_a_retry_ends_the_future_with_it() {
    let timer = ManualTimer::new();
    let budget = Arc::new(RetryBudget::new());
    let policy = Retry::new().with_budget(Arc::clone(&budget));
    let (mut service, mut handle) =
        mock::spawn_layer::<u32, u32, _>(RetryLayer::new(policy, timer));
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    let (_, send) = next_request(&mut handle).unwrap();
    handle.send_error("broken"); // the next poll_ready fails
    send.send_error("reset");
    assert!(
        poll_once(&mut response).is_pending(),
        "the zero-delay yield"
    );
    match poll_once(&mut response) {
        Poll::Ready(Err(err)) => assert_eq!(err.to_string(), "broken"),
        other => panic!("{other:?}"),
    }
    assert_eq!(budget.available(), 500, "the retry not sent is given back");
}

#[test]
fn retry_honours_when_delay_for_and_notify() {
    let timer = ManualTimer::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let policy = Retry::fixed(ms(100))
        .when(|e: &BoxError| e.to_string() != "fatal")
        .delay_for(|e: &BoxError| (e.to_string() == "slow down").then_some(ms(7)))
        .notify(move |e: &BoxError, attempt, next| {
            log.lock().unwrap().push((e.to_string(), attempt, next));
        });
    let (mut service, mut handle) =
        mock::spawn_layer::<u32, u32, _>(RetryLayer::new(policy, timer.clone()));

    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    next_request(&mut handle).unwrap().1.send_error("slow down");
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(
        timer.next_deadline(),
        Some(ms(7)),
        "delay_for overrides the schedule"
    );
    timer.advance(ms(7));
    assert!(poll_once(&mut response).is_pending());
    next_request(&mut handle).unwrap().1.send_error("fatal");
    match poll_once(&mut response) {
        Poll::Ready(Err(err)) => assert_eq!(err.to_string(), "fatal", "`when` refused it"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [("slow down".to_string(), 1, Some(ms(7)))],
        "notified once, for the retried failure only"
    );
}

#[test]
fn retry_budget_refuses_retries_and_a_dropped_future_gives_its_withdrawal_back() {
    let timer = ManualTimer::new();
    let budget = Arc::new(RetryBudget::with_capacity(10, 5, 1).unwrap());
    let policy = Arc::new(Retry::fixed(ms(10)).with_budget(Arc::clone(&budget)));
    let layer = RetryLayer::shared(Arc::clone(&policy), timer.clone());
    let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    // Dropped while sleeping before a retry: the withdrawal comes back.
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    next_request(&mut handle).unwrap().1.send_error("reset");
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(budget.available(), 5, "paid for the retry");
    drop(response);
    assert_eq!(budget.available(), 10, "given back");
    assert_eq!(timer.next_deadline(), None, "the sleep is gone");

    // Dropped mid-attempt: the attempt's future is dropped, nothing is held.
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(2));
    assert!(poll_once(&mut response).is_pending());
    let (_, send) = next_request(&mut handle).unwrap();
    drop(response);
    send.send_error("late"); // nobody listens any more: nothing is retried
    assert!(next_request(&mut handle).is_none());
    assert_eq!(budget.available(), 10);

    // Two requests spend the budget; the third failure is not retried.
    let mut responses = Vec::new();
    for n in 0..2 {
        assert!(service.poll_ready().is_ready());
        let mut response = Box::pin(service.call(n));
        next_request(&mut handle).unwrap().1.send_error("reset");
        assert!(poll_once(&mut response).is_pending(), "retrying");
        responses.push(response);
    }
    assert_eq!(budget.available(), 0);
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(3));
    next_request(&mut handle).unwrap().1.send_error("reset");
    match poll_once(&mut response) {
        Poll::Ready(Err(err)) => assert_eq!(err.to_string(), "reset"),
        other => panic!("the budget is empty: {other:?}"),
    }
    timer.advance(ms(10));
    for response in &mut responses {
        assert!(poll_once(response).is_pending());
        next_request(&mut handle).unwrap().1.send_response(1);
        assert!(matches!(poll_once(response), Poll::Ready(Ok(1))));
    }
    assert_eq!(budget.available(), 2, "one back per success");
}

#[test]
fn retry_max_elapsed_counts_from_the_call() {
    let timer = ManualTimer::new();
    let policy = Retry::fixed(ms(40)).with_max_elapsed(ms(100));
    let (mut service, mut handle) =
        mock::spawn_layer::<u32, u32, _>(RetryLayer::new(policy, timer.clone()));
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    timer.advance(ms(30)); // the first attempt takes 30 ms
    next_request(&mut handle).unwrap().1.send_error("e1");
    assert!(poll_once(&mut response).is_pending(), "30 + 40 ≤ 100");
    timer.advance(ms(40));
    assert!(poll_once(&mut response).is_pending());
    next_request(&mut handle).unwrap().1.send_error("e2");
    match poll_once(&mut response) {
        Poll::Ready(Err(err)) => assert_eq!(err.to_string(), "e2", "70 + 40 > 100"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[should_panic(expected = "`RetryFuture` polled after completion")]
fn retry_future_polled_after_completion_panics() {
    let mut service = RetryLayer::new(Retry::new(), ManualTimer::new())
        .layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    let mut response = Box::pin(service.call(1));
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(1))));
    let _ = poll_once(&mut response);
}

#[test]
fn retry_future_is_static_and_send() {
    fn assert_static_send<F: Future + Send + 'static>(_: &F) {}
    fn send_sync<T: Send + Sync>() {}
    let mut service = RetryLayer::new(Retry::new(), ManualTimer::new())
        .layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    let response = service.call(1);
    assert_static_send(&response);
    let mut named: Pin<Box<RetryFuture<_, u32, _, _, _>>> = Box::pin(response);
    assert!(matches!(poll_once(&mut named), Poll::Ready(Ok(1))));
    send_sync::<RetryLayer<dike::retry::Backoff, dike::retry::NoHooks, ManualTimer>>();
    send_sync::<RetryService<(), dike::retry::Backoff, dike::retry::NoHooks, ManualTimer>>();
}

// ----------------------------------------------------------------------------------------
// CoalesceLayer

use dike::batch::{BatchConfig, BatchError};
use dike::coalesce::{Coalescer, RunError, Stats};
use dike::tower::{BatchLayer, CoalesceLayer};
use tower::ServiceBuilder;
use tower_test::mock::Spawn;

/// A mock whose errors are `String` (coalescing shares clones of them), and its handle.
fn string_mock<T, U>() -> (
    impl Service<T, Response = U, Error = String, Future: Send + 'static> + Clone + Send + 'static,
    Handle<T, U>,
)
where
    T: Send + 'static,
    U: Send + 'static,
{
    let (mock, handle) = mock::pair::<T, U>();
    let service = ServiceBuilder::new()
        .map_err(|e: BoxError| e.to_string())
        .service(mock);
    (service, handle)
}

#[test]
fn coalesce_joiners_never_call_the_inner_and_everyone_gets_a_clone() {
    let (inner, mut handle) = string_mock::<(u32, &str), String>();
    let coalescer = Arc::new(Coalescer::with_hooks(Stats::new()));
    let layer = CoalesceLayer::shared(Arc::clone(&coalescer), |req: &(u32, &str)| req.0);
    let mut service = Spawn::new(layer.layer(inner));

    assert!(service.poll_ready().is_ready(), "always ready");
    let mut a = Box::pin(service.call((1, "a")));
    let mut b = Box::pin(service.call((1, "b")));
    let mut c = Box::pin(service.call((2, "c")));
    for future in [&mut a, &mut b] {
        assert!(poll_once(future).is_pending());
    }
    assert!(poll_once(&mut c).is_pending());
    let (first, send_1) = next_request(&mut handle).expect("the leader of key 1");
    let (second, send_2) = next_request(&mut handle).expect("the leader of key 2");
    assert!(
        next_request(&mut handle).is_none(),
        "the joiner never called the inner"
    );
    assert_eq!((first, second), ((1, "a"), (2, "c")));

    send_1.send_response("user 1".to_string());
    send_2.send_error("not found");
    assert_eq!(poll_once(&mut a), Poll::Ready(Ok("user 1".to_string())));
    assert_eq!(poll_once(&mut b), Poll::Ready(Ok("user 1".to_string())));
    assert_eq!(
        poll_once(&mut c),
        Poll::Ready(Err(RunError::Failed("not found".to_string()))),
        "the inner error, typed"
    );
    let counts = coalescer.hooks().counts();
    assert_eq!((counts.executed, counts.joined), (2, 1));
    assert_eq!(coalescer.in_flight(), 0, "nothing cached");
}

#[test]
fn coalesce_a_not_ready_inner_is_never_called() {
    let (inner, mut handle) = string_mock::<u32, u32>();
    let mut service = Spawn::new(CoalesceLayer::new(|n: &u32| *n).layer(inner));
    handle.allow(0);
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    for _ in 0..3 {
        assert!(poll_once(&mut response).is_pending());
        assert!(next_request(&mut handle).is_none(), "not ready: not called");
    }
    handle.allow(1);
    assert!(poll_once(&mut response).is_pending());
    next_request(&mut handle)
        .expect("called once ready")
        .1
        .send_response(2);
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok(2)));
}

#[test]
fn coalesce_a_readiness_error_is_shared_by_the_waiters() {
    let (inner, mut handle) = string_mock::<u32, u32>();
    let mut service = Spawn::new(CoalesceLayer::new(|n: &u32| *n).layer(inner));
    handle.send_error("down");
    let mut a = Box::pin(service.call(1));
    let mut b = Box::pin(service.call(1));
    assert_eq!(
        poll_once(&mut a),
        Poll::Ready(Err(RunError::Failed("down".into())))
    );
    assert_eq!(
        poll_once(&mut b),
        Poll::Ready(Err(RunError::Failed("down".into())))
    );
}

#[test]
fn coalesce_a_dropped_leader_leaves_the_call_to_its_joiners_and_the_last_drop_frees_the_key() {
    let (inner, mut handle) = string_mock::<u32, u32>();
    let layer = CoalesceLayer::new(|n: &u32| *n);
    let coalescer = Arc::clone(layer.coalescer());
    let mut service = Spawn::new(layer.layer(inner));

    let mut leader = Box::pin(service.call(1));
    let mut joiner = Box::pin(service.call(1));
    assert!(poll_once(&mut leader).is_pending());
    let (_, send) = next_request(&mut handle).unwrap();
    drop(leader);
    send.send_response(10);
    assert_eq!(
        poll_once(&mut joiner),
        Poll::Ready(Ok(10)),
        "the joiner drove it"
    );

    // Every waiter dropped mid-call: the inner call is dropped and the key is free.
    let mut a = Box::pin(service.call(2));
    let b = Box::pin(service.call(2));
    assert!(poll_once(&mut a).is_pending());
    let (_, _abandoned) = next_request(&mut handle).unwrap();
    assert_eq!(coalescer.in_flight(), 1);
    drop((a, b));
    assert_eq!(coalescer.in_flight(), 0, "no leaked entry");
    let mut again = Box::pin(service.call(2));
    assert!(poll_once(&mut again).is_pending());
    next_request(&mut handle)
        .expect("the next call runs afresh")
        .1
        .send_response(20);
    assert_eq!(poll_once(&mut again), Poll::Ready(Ok(20)));
}

#[test]
#[should_panic(expected = "`CoalesceFuture` polled after completion")]
fn coalesce_future_polled_after_completion_panics() {
    let mut service =
        CoalesceLayer::new(|n: &u32| *n).layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    let mut response = Box::pin(service.call(1));
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok(1)));
    let _ = poll_once(&mut response);
}

// ----------------------------------------------------------------------------------------
// BatchLayer

#[test]
fn batch_gathers_requests_into_one_inner_call_and_answers_each_with_its_row() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(3, ms(50));
    let (mut service, mut handle) =
        mock::spawn_layer::<Vec<u32>, Vec<String>, _>(BatchLayer::new(config, timer).unwrap());
    assert!(service.poll_ready().is_ready());
    let mut calls: Vec<_> = (1..=3).map(|n| Box::pin(service.call(n))).collect();
    for call in &mut calls {
        assert!(poll_once(call).is_pending());
    }
    let (rows, send) = next_request(&mut handle).expect("sealed by size: one inner call");
    assert_eq!(rows, [1, 2, 3]);
    assert!(next_request(&mut handle).is_none());
    send.send_response(rows.iter().map(|n| format!("row {n}")).collect());
    for (n, call) in calls.iter_mut().enumerate() {
        assert!(matches!(poll_once(call), Poll::Ready(Ok(row)) if row == format!("row {}", n + 1)));
    }
}

#[test]
fn batch_sends_a_partial_batch_after_max_wait_and_never_calls_a_not_ready_inner() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(10, ms(5));
    let (mut service, mut handle) =
        mock::spawn_layer::<Vec<u32>, Vec<u32>, _>(BatchLayer::new(config, timer.clone()).unwrap());
    handle.allow(0);
    let mut a = Box::pin(service.call(1));
    let mut b = Box::pin(service.call(2));
    assert!(poll_once(&mut a).is_pending() && poll_once(&mut b).is_pending());
    timer.advance(ms(5));
    for _ in 0..3 {
        assert!(poll_once(&mut a).is_pending() && poll_once(&mut b).is_pending());
        assert!(
            next_request(&mut handle).is_none(),
            "not ready: never called"
        );
    }
    handle.allow(1);
    assert!(poll_once(&mut a).is_pending() && poll_once(&mut b).is_pending());
    let (rows, send) = next_request(&mut handle).expect("called once ready");
    assert_eq!(rows, [1, 2]);
    send.send_response(vec![10, 20]);
    assert!(matches!(poll_once(&mut a), Poll::Ready(Ok(10))));
    assert!(matches!(poll_once(&mut b), Poll::Ready(Ok(20))));
}

#[test]
fn batch_a_request_dropped_before_the_batch_is_sent_is_never_sent() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(10, ms(5));
    let (mut service, mut handle) =
        mock::spawn_layer::<Vec<u32>, Vec<u32>, _>(BatchLayer::new(config, timer.clone()).unwrap());
    let mut kept = Box::pin(service.call(1));
    let mut dropped = Box::pin(service.call(2));
    assert!(poll_once(&mut kept).is_pending() && poll_once(&mut dropped).is_pending());
    drop(dropped);
    timer.advance(ms(5));
    assert!(poll_once(&mut kept).is_pending());
    let (rows, send) = next_request(&mut handle).unwrap();
    assert_eq!(rows, [1], "the dropped request left the batch");
    send.send_response(vec![1]);
    assert!(matches!(poll_once(&mut kept), Poll::Ready(Ok(1))));
}

#[test]
fn batch_a_request_dropped_after_the_batch_is_sent_leaves_the_others_their_rows() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(2, ms(5));
    let (mut service, mut handle) =
        mock::spawn_layer::<Vec<u32>, Vec<u32>, _>(BatchLayer::new(config, timer).unwrap());
    let mut driver = Box::pin(service.call(1));
    let mut other = Box::pin(service.call(2));
    assert!(poll_once(&mut driver).is_pending() && poll_once(&mut other).is_pending());
    let (rows, send) = next_request(&mut handle).expect("sealed by size and sent");
    assert_eq!(rows, [1, 2]);
    drop(driver); // the member driving the batch: the drive passes on
    send.send_response(vec![10, 20]);
    assert!(matches!(poll_once(&mut other), Poll::Ready(Ok(20))));
    assert_eq!(
        service.get_ref().batcher().stats().batches_in_flight,
        0,
        "nothing held"
    );
}

#[test]
fn batch_an_inner_readiness_error_fails_the_batch() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(1, ms(5));
    let (mut service, mut handle) =
        mock::spawn_layer::<Vec<u32>, Vec<u32>, _>(BatchLayer::new(config, timer).unwrap());
    handle.send_error("broken");
    let mut call = Box::pin(service.call(1));
    match poll_once(&mut call) {
        Poll::Ready(Err(BatchError::Failed(err))) => assert_eq!(err.to_string(), "broken"),
        other => panic!("{other:?}"),
    }
    assert!(next_request(&mut handle).is_none(), "never called");
}

#[test]
fn batch_errors_are_typed_inner_failure_and_wrong_length() {
    let timer = ManualTimer::new();
    let config = BatchConfig::new(2, ms(5));
    let (mut service, mut handle) =
        mock::spawn_layer::<Vec<u32>, Vec<u32>, _>(BatchLayer::new(config, timer).unwrap());
    let mut a = Box::pin(service.call(1));
    let mut b = Box::pin(service.call(2));
    assert!(poll_once(&mut a).is_pending() && poll_once(&mut b).is_pending());
    next_request(&mut handle)
        .unwrap()
        .1
        .send_error("model down");
    for call in [&mut a, &mut b] {
        match poll_once(call) {
            Poll::Ready(Err(BatchError::Failed(err))) => assert_eq!(err.to_string(), "model down"),
            other => panic!("{other:?}"),
        }
    }

    let mut a = Box::pin(service.call(1));
    let mut b = Box::pin(service.call(2));
    assert!(poll_once(&mut a).is_pending() && poll_once(&mut b).is_pending());
    next_request(&mut handle).unwrap().1.send_response(vec![1]);
    for call in [&mut a, &mut b] {
        match poll_once(call) {
            Poll::Ready(Err(BatchError::WrongLength { expected, actual })) => {
                assert_eq!((expected, actual), (2, 1));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
#[should_panic(expected = "`BatchFuture` polled after completion")]
fn batch_future_polled_after_completion_panics() {
    let config = BatchConfig::new(1, ms(5));
    let mut service = BatchLayer::new(config, ManualTimer::new())
        .unwrap()
        .layer(service_fn(
            |rows: Vec<u32>| async move { Ok::<_, ()>(rows) },
        ));
    let mut response = Box::pin(service.call(1));
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok(1)));
    let _ = poll_once(&mut response);
}

#[test]
fn coalesce_and_batch_futures_are_static_and_send() {
    fn assert_static_send<F: Future + Send + 'static>(_: &F) {}
    let mut coalesced =
        CoalesceLayer::new(|n: &u32| *n).layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    assert_static_send(&coalesced.call(1));
    let mut batched = BatchLayer::new(BatchConfig::new(1, ms(5)), ManualTimer::new())
        .unwrap()
        .layer(service_fn(
            |rows: Vec<u32>| async move { Ok::<_, ()>(rows) },
        ));
    assert_static_send(&batched.call(1));
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&coalesced);
    send_sync(&batched);
}

// ----------------------------------------------------------------------------------------
// Throttle::acquire_owned, and ThrottleLayer waiting in the throttle's own line

use dike::throttle::{AcquireOwned, Throttle};
use dike::tower::ThrottleLayer;

#[test]
fn acquire_owned_waits_in_the_same_fifo_line_as_acquire_and_only_the_head_sleeps() {
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::per_second(10).unwrap()); // one slot per 100 ms
    throttle.try_acquire(&timer).unwrap();

    let mut owned_first = Box::pin(throttle.acquire_owned(timer.clone()));
    let mut borrowed = Box::pin(throttle.acquire(&timer));
    let mut owned_last = Box::pin(throttle.acquire_owned(timer.clone()));
    assert!(poll_once(&mut owned_first).is_pending());
    assert!(poll_once(&mut borrowed).is_pending());
    assert!(poll_once(&mut owned_last).is_pending());
    assert_eq!(
        timer.next_deadline(),
        Some(ms(100)),
        "one sleep, the head's"
    );

    timer.advance(ms(100));
    assert!(poll_once(&mut owned_last).is_pending(), "not its turn");
    assert!(poll_once(&mut borrowed).is_pending(), "not its turn");
    assert_eq!(poll_once(&mut owned_first), Poll::Ready(()));
    timer.advance(ms(100));
    assert!(poll_once(&mut owned_last).is_pending());
    assert_eq!(poll_once(&mut borrowed), Poll::Ready(()), "arrival order");
    timer.advance(ms(100));
    assert_eq!(poll_once(&mut owned_last), Poll::Ready(()));
}

#[test]
fn acquire_owned_dropped_at_the_head_passes_its_turn_and_consumes_nothing() {
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::per_second(10).unwrap());
    throttle.try_acquire(&timer).unwrap();
    let mut head = Box::pin(throttle.acquire_owned(timer.clone()));
    let mut next = Box::pin(throttle.acquire_owned(timer.clone()));
    assert!(poll_once(&mut head).is_pending());
    assert!(poll_once(&mut next).is_pending());
    drop(head);
    timer.advance(ms(100));
    assert_eq!(poll_once(&mut next), Poll::Ready(()), "the turn passed on");
    assert!(
        throttle.try_acquire(&timer).is_err(),
        "one slot taken, by `next` only"
    );
}

#[test]
#[should_panic(expected = "`AcquireOwned` polled after completion")]
fn acquire_owned_polled_after_completion_panics() {
    let throttle = Arc::new(Throttle::per_second(10).unwrap());
    let mut wait = Box::pin(throttle.acquire_owned(ManualTimer::new()));
    assert_eq!(poll_once(&mut wait), Poll::Ready(()));
    let _ = poll_once(&mut wait);
}

#[test]
fn acquire_owned_is_static_and_send() {
    fn assert_static_send<F: Future + Send + Sync + 'static>(_: &F) {}
    let throttle = Arc::new(Throttle::per_second(10).unwrap());
    let wait: AcquireOwned<ManualTimer> = throttle.acquire_owned(ManualTimer::new());
    assert_static_send(&wait);
}

#[test]
fn throttle_layer_services_queue_in_the_throttle_line_with_direct_waiters() {
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::per_second(10).unwrap());
    let layer = ThrottleLayer::shared(Arc::clone(&throttle), timer.clone());
    let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    throttle.try_acquire(&timer).unwrap();

    // A direct waiter first, then the service: the service goes behind it.
    let mut direct = Box::pin(throttle.acquire(&timer));
    assert!(poll_once(&mut direct).is_pending());
    assert!(service.poll_ready().is_pending());
    timer.advance(ms(100));
    assert!(
        service.poll_ready().is_pending(),
        "the direct waiter is ahead"
    );
    assert_eq!(poll_once(&mut direct), Poll::Ready(()));
    assert!(service.is_woken(), "its turn came");
    assert!(
        service.poll_ready().is_pending(),
        "sleeping for the next slot"
    );
    timer.advance(ms(100));
    assert!(service.poll_ready().is_ready());
    let mut response = Box::pin(service.call(1));
    next_request(&mut handle).unwrap().1.send_response(2);
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(2))));
}

// ----------------------------------------------------------------------------------------
// Runtime independence: the stack driven by smol on async-io's timer

#[test]
fn retry_coalesce_and_batch_run_on_smol_with_the_async_io_timer() {
    use dike::throttle::Quota;
    use dike::time::AsyncIoTimer;

    let timer = AsyncIoTimer::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    // Coalesce over retry over throttle over a service failing every other call.
    let flaky = service_fn(move |id: u32| {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            smol::Timer::after(ms(2)).await;
            if n % 2 == 1 {
                Err("reset".to_string())
            } else {
                Ok(id * 10)
            }
        }
    });
    let policy = Retry::fixed(ms(1)).try_with_attempts(3).unwrap();
    let service = ServiceBuilder::new()
        .layer(CoalesceLayer::new(|id: &u32| *id))
        .layer(RetryLayer::new(policy, timer))
        .layer(ThrottleLayer::new(Quota::per_second(1000), timer).unwrap())
        .service(flaky);
    let model = service_fn(|rows: Vec<u32>| async move {
        Ok::<_, ()>(rows.into_iter().map(|x| x + 1).collect::<Vec<_>>())
    });
    let batched = BatchLayer::new(BatchConfig::new(64, ms(2)), timer)
        .unwrap()
        .layer(model);

    smol::block_on(async {
        let (a, b) = futures_util::join!(service.clone().oneshot(4), service.clone().oneshot(4));
        assert_eq!((a, b), (Ok(40), Ok(40)), "one fetch, retried once, shared");
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        let rows = futures_util::future::join_all((0..3).map(|n| batched.clone().oneshot(n))).await;
        assert_eq!(
            rows,
            [Ok(1), Ok(2), Ok(3)],
            "sealed by max_wait on the real timer"
        );
    });
    assert_eq!(batched.batcher().stats().batches, 1);
}
