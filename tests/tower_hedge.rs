//! `HedgeLayer`: hedges at the delay, the first answer wins, losers are dropped before the
//! answer returns, the budget stops new hedges only, dropping the response drops every
//! attempt; a hedge's clone is driven to readiness before it is called (tower's own mock
//! service, `tower-test`). Time on a `ManualTimer`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dike::hedge::Hedge;
use dike::retry::RetryBudget;
use dike::time::{ManualTimer, Timer};
use dike::tower::{HedgeFuture, HedgeLayer, HedgeService};
use futures_util::FutureExt;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock::{self, Handle};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls a future once with a no-op waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    future.poll_unpin(&mut Context::from_waker(Waker::noop()))
}

/// Makes `service` ready (it always is here) and calls it.
fn ready_call<S: Service<R>, R>(service: &mut S, request: R) -> S::Future {
    assert!(poll_once(&mut std::future::poll_fn(|cx| service.poll_ready(cx))).is_ready());
    service.call(request)
}

/// A request that counts its clones.
#[derive(Debug)]
struct Req {
    id: u32,
    clones: Arc<AtomicU32>,
}

impl Req {
    fn new(id: u32) -> Self {
        Self {
            id,
            clones: Arc::default(),
        }
    }
}

impl Clone for Req {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::Relaxed);
        Self {
            id: self.id,
            clones: Arc::clone(&self.clones),
        }
    }
}

/// Counts an attempt's response future alive until it is dropped.
struct Live(Arc<AtomicU32>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One scripted call: its latency (`None`: never) and whether it answers `Ok`.
type Step = (Option<Duration>, bool);

/// A backend answering each call after the next scripted latency (`None`: never), with
/// `Ok((request id, attempt number))` or, when scripted, `Err("503")`. Clones share the
/// script and the counters.
#[derive(Clone)]
struct Backend {
    timer: ManualTimer,
    script: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<AtomicU32>,
    live: Arc<AtomicU32>,
}

type Answer = Result<(u32, u32), &'static str>;

impl Backend {
    fn new(timer: &ManualTimer, script: &[(Option<u64>, bool)]) -> Self {
        Self {
            timer: timer.clone(),
            script: Arc::new(Mutex::new(
                script.iter().map(|&(d, ok)| (d.map(ms), ok)).collect(),
            )),
            calls: Arc::default(),
            live: Arc::default(),
        }
    }

    /// Every call answers `Ok` after its latency.
    fn latencies(timer: &ManualTimer, latencies: &[Option<u64>]) -> Self {
        let script: Vec<_> = latencies.iter().map(|&d| (d, true)).collect();
        Self::new(timer, &script)
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    fn live(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
    }
}

impl Service<Req> for Backend {
    type Response = (u32, u32);
    type Error = &'static str;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let attempt = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let (latency, ok) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((None, true));
        self.live.fetch_add(1, Ordering::Relaxed);
        let live = Live(Arc::clone(&self.live));
        let sleep = self.timer.sleep(latency.unwrap_or(Duration::MAX));
        Box::pin(async move {
            let _live = live;
            sleep.await;
            if ok {
                Ok((request.id, attempt))
            } else {
                Err("503")
            }
        })
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    type Policy = Hedge<Arc<RetryBudget>>;
    send_sync::<HedgeLayer<Policy, ManualTimer>>();
    send_sync::<HedgeService<Backend, Policy, ManualTimer>>();
    // The backend's boxed future is `Send` only, so the response future is too.
    send::<HedgeFuture<Backend, Req, Policy, ManualTimer, dike::hedge::AcceptAll>>();
    send_sync::<
        HedgeFuture<
            mock::Mock<u32, u32>,
            u32,
            Policy,
            ManualTimer,
            fn(&Result<u32, Box<dyn std::error::Error + Send + Sync>>) -> bool,
        >,
    >();
}

#[test]
fn a_slow_first_attempt_is_hedged_at_the_delay_and_the_hedge_wins() {
    let timer = ManualTimer::new();
    let backend = Backend::latencies(&timer, &[Some(200), Some(10)]);
    let layer = HedgeLayer::new(Hedge::fixed(ms(15)), timer.clone());
    let mut service = layer.layer(backend.clone());

    let request = Req::new(7);
    let mut response = ready_call(&mut service, request.clone());
    assert_eq!(backend.calls(), 1, "the first attempt is sent at `call`");
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(14));
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(backend.calls(), 1, "no hedge before the delay");
    timer.advance(ms(1));
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(backend.calls(), 2, "the hedge starts at 15 ms");
    assert_eq!(backend.live(), 2);
    timer.advance(ms(10));
    assert_eq!(
        poll_once(&mut response),
        Poll::Ready(Ok((7, 2))),
        "the hedge won"
    );
    assert_eq!(timer.now(), ms(25));
    assert_eq!(backend.live(), 0, "the straggler was dropped");
    assert_eq!(timer.sleepers(), 0);
    let stats = layer.policy().stats();
    assert_eq!((stats.hedges, stats.hedge_wins), (1, 1));
    // One clone for the test's own copy, one for the first attempt; the last hedge the
    // policy allows took the original.
    assert_eq!(request.clones.load(Ordering::Relaxed), 2);
}

#[test]
fn a_fast_answer_never_hedges() {
    let timer = ManualTimer::new();
    let backend = Backend::latencies(&timer, &[Some(10)]);
    let layer = HedgeLayer::new(Hedge::fixed(ms(15)), timer.clone());
    let mut service = layer.layer(backend.clone());

    let mut response = ready_call(&mut service, Req::new(1));
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(timer.sleepers(), 2, "the attempt and the hedge sleep");
    timer.advance(ms(10));
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok((1, 1))));
    assert_eq!(timer.sleepers(), 0, "the hedge sleep was dropped");
    timer.advance(ms(100));
    assert_eq!(backend.calls(), 1);
    assert_eq!(layer.policy().stats().hedges, 0);
}

#[test]
fn losers_are_dropped_before_the_answer_returns() {
    let timer = ManualTimer::new();
    // Attempts start at 0, 10 and 20 ms; the third answers at 25 ms.
    let backend = Backend::latencies(&timer, &[None, None, Some(5)]);
    let policy = Hedge::fixed(ms(10)).try_with_max_hedges(2).unwrap();
    let mut service = HedgeLayer::new(policy, timer.clone()).layer(backend.clone());

    let mut response = Box::pin(ready_call(&mut service, Req::new(3)));
    for _ in 0..3 {
        assert!(poll_once(&mut response).is_pending());
        timer.advance_to_next();
    }
    assert_eq!(backend.calls(), 3);
    assert_eq!(timer.now(), ms(25));
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok((3, 3))));
    // The response future is still alive: the two losers went before it returned.
    assert_eq!(backend.live(), 0);
    assert_eq!(timer.sleepers(), 0);
    drop(response);
}

#[test]
fn an_exhausted_budget_stops_hedges_but_not_the_first_attempt() {
    let timer = ManualTimer::new();
    let budget = Arc::new(RetryBudget::with_capacity(1, 1, 0).unwrap());
    let policy = Hedge::fixed(ms(15)).with_budget(Arc::clone(&budget));
    let backend = Backend::latencies(&timer, &[Some(100), Some(10), Some(100)]);
    let mut service = HedgeLayer::new(policy, timer.clone()).layer(backend.clone());

    // The first request spends the only token on its hedge, which wins.
    let first = ready_call(&mut service, Req::new(1));
    let mut first = first.boxed();
    assert!(poll_once(&mut first).is_pending());
    timer.advance(ms(15));
    assert!(poll_once(&mut first).is_pending());
    timer.advance(ms(10));
    assert_eq!(poll_once(&mut first), Poll::Ready(Ok((1, 2))));
    assert_eq!(budget.available(), 0);

    // The second cannot hedge: its first attempt goes on and answers.
    let mut second = ready_call(&mut service, Req::new(2)).boxed();
    assert!(poll_once(&mut second).is_pending());
    timer.advance(ms(15));
    assert!(poll_once(&mut second).is_pending());
    assert_eq!(backend.calls(), 3, "no hedge: the budget is empty");
    assert_eq!(
        timer.sleepers(),
        1,
        "only the first attempt's own sleep is left"
    );
    timer.advance(ms(85));
    assert_eq!(poll_once(&mut second), Poll::Ready(Ok((2, 3))));
    let stats = service.policy().stats();
    assert_eq!((stats.hedges, stats.refused), (1, 1));
}

#[test]
fn dropping_the_response_drops_every_attempt_and_holds_no_budget_token() {
    let timer = ManualTimer::new();
    let budget = Arc::new(RetryBudget::with_capacity(10, 2, 1).unwrap());
    let policy = Hedge::fixed(ms(15))
        .try_with_max_hedges(2)
        .unwrap()
        .with_budget(Arc::clone(&budget));
    let backend = Backend::latencies(&timer, &[None, None, None, Some(1)]);
    let mut service = HedgeLayer::new(policy, timer.clone()).layer(backend.clone());

    let mut response = ready_call(&mut service, Req::new(1));
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(15));
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(15));
    assert!(poll_once(&mut response).is_pending());
    assert_eq!((backend.calls(), backend.live()), (3, 3));
    assert_eq!(budget.available(), 6, "two hedges, 2 tokens each");
    drop(response);
    assert_eq!(backend.live(), 0, "every attempt was dropped");
    assert_eq!(timer.sleepers(), 0, "and the hedge sleep");
    assert_eq!(
        budget.available(),
        6,
        "spent on hedges made, nothing else held"
    );

    // The budget still works: an answer deposits its refund.
    let mut next = ready_call(&mut service, Req::new(2));
    assert!(poll_once(&mut next).is_pending());
    timer.advance(ms(1));
    assert_eq!(poll_once(&mut next), Poll::Ready(Ok((2, 4))));
    assert_eq!(budget.available(), 7);
}

#[test]
fn dropping_at_every_point_leaves_nothing_behind() {
    // Drop the response after each step of a run with two hedges.
    for steps in 0u32..4 {
        let timer = ManualTimer::new();
        let budget = Arc::new(RetryBudget::with_capacity(10, 1, 1).unwrap());
        let policy = Hedge::fixed(ms(10))
            .try_with_max_hedges(2)
            .unwrap()
            .with_budget(Arc::clone(&budget));
        let backend = Backend::latencies(&timer, &[None, None, Some(100)]);
        let mut service = HedgeLayer::new(policy, timer.clone()).layer(backend.clone());
        let mut response = ready_call(&mut service, Req::new(1));
        for _ in 0..steps {
            assert!(poll_once(&mut response).is_pending());
            timer.advance(ms(10));
        }
        drop(response);
        assert_eq!(backend.live(), 0, "after {steps} steps");
        assert_eq!(timer.sleepers(), 0, "after {steps} steps");
        let hedges = steps.saturating_sub(1).min(2);
        assert_eq!(backend.calls(), 1 + hedges, "after {steps} steps");
        assert_eq!(budget.available(), 10 - hedges, "after {steps} steps");
    }
}

#[test]
fn a_rejected_answer_starts_the_hedge_at_once_and_the_last_rejection_is_returned() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(Some(1), false), (Some(5), true)]);
    let layer = HedgeLayer::new(Hedge::fixed(ms(15)), timer.clone()).accept(|a: &Answer| a.is_ok());
    let mut service = layer.layer(backend.clone());
    let mut response = ready_call(&mut service, Req::new(1));
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(1));
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(backend.calls(), 2, "the hedge started at 1 ms, not 15 ms");
    timer.advance(ms(5));
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok((1, 2))));

    // Every attempt rejected, no hedge left: the last rejection is the answer.
    let backend = Backend::new(&timer, &[(Some(1), false), (Some(1), false)]);
    let mut service = layer.layer(backend.clone());
    let mut response = ready_call(&mut service, Req::new(1));
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(1));
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(1));
    assert_eq!(poll_once(&mut response), Poll::Ready(Err("503")));
    assert_eq!(backend.calls(), 2);
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn a_policy_that_cannot_hedge_yet_clones_nothing() {
    let timer = ManualTimer::new();
    let policy = Hedge::quantile(0.95, 10, Duration::MAX).unwrap();
    let backend = Backend::latencies(&timer, &[Some(50)]);
    let mut service = HedgeLayer::new(policy, timer.clone()).layer(backend.clone());
    let request = Req::new(1);
    let clones = Arc::clone(&request.clones);
    let mut response = ready_call(&mut service, request);
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(timer.sleepers(), 1, "no hedge sleep");
    timer.advance(ms(50));
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok((1, 1))));
    assert_eq!(clones.load(Ordering::Relaxed), 0);
    assert_eq!(
        service.policy().stats().samples,
        1,
        "the answer's latency was recorded"
    );
}

#[test]
fn the_quantile_delay_follows_recorded_latencies() {
    let timer = ManualTimer::new();
    let policy = Hedge::quantile(0.5, 3, Duration::MAX).unwrap();
    let backend = Backend::latencies(&timer, &[Some(20), Some(20), Some(20), None, Some(1)]);
    let mut service = HedgeLayer::new(policy, timer.clone()).layer(backend.clone());
    for _ in 0..3 {
        let mut response = ready_call(&mut service, Req::new(1));
        assert!(poll_once(&mut response).is_pending());
        timer.advance(ms(20));
        assert!(poll_once(&mut response).is_ready());
    }
    let delay = service.policy().hedge_delay();
    assert!(delay >= ms(20) && delay <= ms(23), "{delay:?}");
    let mut response = ready_call(&mut service, Req::new(2));
    assert!(poll_once(&mut response).is_pending());
    timer.advance(delay);
    assert!(poll_once(&mut response).is_pending());
    assert_eq!(backend.calls(), 5, "hedged at the median");
    timer.advance(ms(1));
    assert_eq!(poll_once(&mut response), Poll::Ready(Ok((2, 5))));
}

#[test]
#[should_panic(expected = "`HedgeFuture` polled after completion")]
fn polling_after_completion_panics() {
    let timer = ManualTimer::new();
    let backend = Backend::latencies(&timer, &[Some(0)]);
    let mut service = HedgeLayer::new(Hedge::fixed(ms(15)), timer).layer(backend);
    let mut response = ready_call(&mut service, Req::new(1));
    assert!(poll_once(&mut response).is_ready());
    let _ = poll_once(&mut response);
}

/// The next request the mock received, if any, and its responder.
fn next_request<T, U>(handle: &mut Handle<T, U>) -> Option<(T, mock::SendResponse<U>)> {
    match handle.poll_request() {
        Poll::Ready(Some(request)) => Some(request),
        _ => None,
    }
}

#[test]
fn a_hedge_waits_for_its_clones_readiness_before_calling() {
    let timer = ManualTimer::new();
    let (mock, mut handle) = mock::pair::<u32, u32>();
    handle.allow(1);
    let layer = HedgeLayer::new(Hedge::fixed(ms(15)), timer.clone());
    let mut service = layer.layer(mock);

    let mut response = ready_call(&mut service, 9);
    let (request, _first) = next_request(&mut handle).expect("the first attempt");
    assert_eq!(request, 9);
    assert!(poll_once(&mut response).is_pending());
    timer.advance(ms(15));
    // The hedge started: its clone of the mock is not ready (no capacity left), so it is
    // not called (the mock would panic), and waits for readiness.
    assert!(poll_once(&mut response).is_pending());
    assert!(next_request(&mut handle).is_none());
    assert_eq!(layer.policy().stats().hedges, 1);
    handle.allow(1);
    assert!(poll_once(&mut response).is_pending());
    let (request, hedge) = next_request(&mut handle).expect("the hedge, once ready");
    assert_eq!(request, 9);
    hedge.send_response(90);
    assert_eq!(
        poll_once(&mut response).map(Result::unwrap),
        Poll::Ready(90)
    );
}

#[test]
fn a_hedge_whose_readiness_fails_answers_with_that_error() {
    let timer = ManualTimer::new();
    let (mock, mut handle) = mock::pair::<u32, u32>();
    let layer = HedgeLayer::new(Hedge::fixed(ms(15)), timer.clone());
    let mut service = layer.layer(mock);
    let mut response = ready_call(&mut service, 1);
    let (_, _first) = next_request(&mut handle).expect("the first attempt");
    assert!(poll_once(&mut response).is_pending());
    handle.send_error("broken");
    timer.advance(ms(15));
    match poll_once(&mut response) {
        Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "broken"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn oneshot_through_a_service_builder_stack() {
    let timer = ManualTimer::new();
    let backend = Backend::latencies(&timer, &[Some(0)]);
    let service = tower::ServiceBuilder::new()
        .layer(HedgeLayer::new(Hedge::fixed(ms(15)), timer.clone()))
        .service(backend);
    let answer = smol::block_on(service.oneshot(Req::new(5)));
    assert_eq!(answer, Ok((5, 1)));
}
