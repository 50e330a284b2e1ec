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
    let _: Pin<Box<RetryFuture<_, u32, _, _, _>>> = Box::pin(response);
    send_sync::<RetryLayer<dike::retry::Backoff, dike::retry::NoHooks, ManualTimer>>();
    send_sync::<RetryService<(), dike::retry::Backoff, dike::retry::NoHooks, ManualTimer>>();
}
