//! The keyed tower layers under tower's mock service (`tower-test`) and `ManualTimer`: per-key
//! limits, `None` = unlimited, the contract (readiness propagated, a refused request never
//! reaches the inner service, permits live in the response future), cancellation, the axum
//! statuses and headers.

use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::response::IntoResponse;
use dike::error::TooManyCallsKind;
use dike::keyed::{KeyedGate, KeyedThrottle, WhenFull};
use dike::throttle::Quota;
use dike::time::ManualTimer;
use dike::tower::{
    Error, KeyedGateLayer, KeyedGateService, KeyedThrottleLayer, KeyedThrottleService,
};
use futures_util::FutureExt;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock::{self, Handle};

/// A request: its key (`None`: not limited) and a payload.
type Req = (Option<u8>, u32);

fn key(req: &Req) -> Option<u8> {
    req.0
}

fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    future.poll_unpin(&mut Context::from_waker(Waker::noop()))
}

fn next_request<T, U>(handle: &mut Handle<T, U>) -> Option<(T, mock::SendResponse<U>)> {
    match handle.poll_request() {
        Poll::Ready(Some(request)) => Some(request),
        _ => None,
    }
}

/// The mock's error is a `BoxError` (no `PartialEq`): checks for `Ready(Ok(n))`.
#[track_caller]
fn assert_ok<E: std::fmt::Debug>(poll: Poll<Result<u32, E>>, n: u32) {
    match poll {
        Poll::Ready(Ok(got)) => assert_eq!(got, n),
        other => panic!("expected Ready(Ok({n})), got {other:?}"),
    }
}

fn throttle(rate: u32) -> Arc<KeyedThrottle<u8>> {
    Arc::new(KeyedThrottle::new(Quota::per_second(rate)).unwrap())
}

// ----------------------------------------------------------------------------------------
// KeyedThrottleLayer

#[test]
fn throttle_reject_limits_each_key_on_its_own() {
    let timer = ManualTimer::new();
    let layer = KeyedThrottleLayer::new(throttle(1), timer.clone(), key).reject();
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);

    assert!(service.poll_ready().is_ready());
    let mut first = service.call((Some(1), 10));
    let (req, respond) = next_request(&mut handle).expect("key 1's first request is admitted");
    assert_eq!(req, (Some(1), 10));
    respond.send_response(10);
    assert_ok(poll_once(&mut first), 10);

    assert!(service.poll_ready().is_ready());
    let mut second = service.call((Some(1), 11));
    match poll_once(&mut second) {
        Poll::Ready(Err(Error::RateLimited(err))) => {
            assert_eq!(err.wait(), Duration::from_secs(1))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        next_request(&mut handle).is_none(),
        "a refused request never reaches the inner"
    );

    assert!(service.poll_ready().is_ready());
    let mut other_key = service.call((Some(2), 20));
    let (req, respond) = next_request(&mut handle).expect("key 2 has its own quota");
    assert_eq!(req, (Some(2), 20));
    respond.send_response(20);
    assert_ok(poll_once(&mut other_key), 20);

    timer.advance(Duration::from_secs(1));
    assert!(service.poll_ready().is_ready());
    let _third = service.call((Some(1), 12));
    assert!(
        next_request(&mut handle).is_some(),
        "key 1 again after its period"
    );
}

#[test]
fn throttle_none_is_not_limited() {
    let limits = throttle(1);
    let layer = KeyedThrottleLayer::new(Arc::clone(&limits), ManualTimer::new(), key).reject();
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);
    for n in 0..50 {
        assert!(service.poll_ready().is_ready());
        let mut response = service.call((None, n));
        let (req, respond) = next_request(&mut handle).expect("unlimited");
        assert_eq!(req.1, n);
        respond.send_response(n);
        assert_ok(poll_once(&mut response), n);
    }
    assert_eq!(limits.len(), 0, "no entry for requests without a key");
}

#[test]
fn throttle_inner_readiness_is_propagated() {
    let layer = KeyedThrottleLayer::new(throttle(1), ManualTimer::new(), key).reject();
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    handle.allow(1);
    assert!(service.is_woken());
    assert!(service.poll_ready().is_ready());
}

#[test]
fn throttle_wait_mode_waits_per_key_in_fifo_order() {
    let timer = ManualTimer::new();
    let layer = KeyedThrottleLayer::new(throttle(1), timer.clone(), key);
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);

    let mut responses = Vec::new();
    for n in 0..3 {
        assert!(service.poll_ready().is_ready());
        let mut response = Box::pin(service.call((Some(1), n)));
        assert!(poll_once(&mut response).is_pending());
        responses.push(response);
    }
    let (req, respond) = next_request(&mut handle).expect("the first is admitted at once");
    assert_eq!(req.1, 0);
    respond.send_response(0);
    assert_ok(poll_once(&mut responses[0]), 0);

    // Key 2 is not held up by key 1's line.
    assert!(service.poll_ready().is_ready());
    let mut other = Box::pin(service.call((Some(2), 99)));
    assert!(poll_once(&mut other).is_pending());
    assert_eq!(next_request(&mut handle).unwrap().0.1, 99);

    for n in 1..3u32 {
        for response in &mut responses[n as usize..] {
            assert!(poll_once(response).is_pending());
        }
        assert!(
            next_request(&mut handle).is_none(),
            "nothing before the key's slot"
        );
        timer.advance(Duration::from_secs(1));
        for response in &mut responses[n as usize..] {
            let _ = poll_once(response);
        }
        let (req, respond) = next_request(&mut handle).expect("the next in line");
        assert_eq!(req.1, n, "FIFO per key");
        respond.send_response(n);
        assert_ok(poll_once(&mut responses[n as usize]), n);
    }
}

#[test]
fn throttle_a_dropped_waiting_response_takes_nothing_and_leaves_no_entry() {
    let timer = ManualTimer::new();
    let limits = throttle(1);
    let layer = KeyedThrottleLayer::new(Arc::clone(&limits), timer.clone(), key);
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);

    assert!(service.poll_ready().is_ready());
    let mut first = Box::pin(service.call((Some(1), 0)));
    assert!(poll_once(&mut first).is_pending());
    next_request(&mut handle).unwrap().1.send_response(0);
    assert!(poll_once(&mut first).is_ready());

    assert!(service.poll_ready().is_ready());
    let mut waiting = Box::pin(service.call((Some(1), 1)));
    assert!(poll_once(&mut waiting).is_pending());
    drop(waiting);
    assert!(
        next_request(&mut handle).is_none(),
        "the dropped request never reached the inner"
    );

    timer.advance(Duration::from_secs(1));
    limits.shrink_to_fit(&timer);
    assert_eq!(
        limits.len(),
        0,
        "the key's entry was not kept alive by the dropped waiter"
    );
    assert!(service.poll_ready().is_ready());
    let mut next = Box::pin(service.call((Some(1), 2)));
    assert!(poll_once(&mut next).is_pending());
    assert_eq!(
        next_request(&mut handle).unwrap().0.1,
        2,
        "the slot was not spent by the drop"
    );
}

#[test]
fn throttle_too_many_keys_is_typed_and_never_reaches_the_inner() {
    let limits = Arc::new(
        KeyedThrottle::<u8>::new(Quota::per_second(1))
            .unwrap()
            .with_max_keys(NonZeroUsize::new(1).unwrap()),
    );
    let timer = ManualTimer::new();
    for layer in [
        KeyedThrottleLayer::new(Arc::clone(&limits), timer.clone(), key).reject(),
        KeyedThrottleLayer::new(Arc::clone(&limits), timer.clone(), key),
    ] {
        let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);
        assert!(service.poll_ready().is_ready());
        // Key 1 takes the only entry (live for 1 s); in wait mode, on its first poll.
        let mut first = Box::pin(service.call((Some(1), 0)));
        assert!(poll_once(&mut first).is_pending());
        assert!(next_request(&mut handle).is_some());
        assert!(service.poll_ready().is_ready());
        let mut refused = Box::pin(service.call((Some(2), 0)));
        match poll_once(&mut refused) {
            Poll::Ready(Err(Error::TooManyKeys(err))) => assert_eq!(err.max_keys(), 1),
            other => panic!("{other:?}"),
        }
        assert!(next_request(&mut handle).is_none());
        timer.advance(Duration::from_secs(1));
    }
    let admitting = Arc::new(
        KeyedThrottle::<u8>::new(Quota::per_second(1))
            .unwrap()
            .with_max_keys(NonZeroUsize::new(1).unwrap())
            .when_full(WhenFull::AdmitUntracked),
    );
    let layer = KeyedThrottleLayer::new(admitting, timer, key).reject();
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);
    for k in [1, 2] {
        assert!(service.poll_ready().is_ready());
        drop(service.call((Some(k), 0)));
        assert!(next_request(&mut handle).is_some(), "admitted untracked");
    }
}

#[test]
fn throttle_refusals_answer_429_with_the_keys_retry_after() {
    let timer = ManualTimer::new();
    let limits = Arc::new(
        KeyedThrottle::<u8>::new(Quota::per_minute(1))
            .unwrap()
            .with_max_keys(NonZeroUsize::new(1).unwrap()),
    );
    let layer = KeyedThrottleLayer::new(limits, timer.clone(), key).reject();
    let service = layer.layer(service_fn(
        |req: Req| async move { Ok::<_, Infallible>(req.1) },
    ));

    assert_eq!(
        service
            .clone()
            .oneshot((Some(1), 1))
            .now_or_never()
            .unwrap(),
        Ok(1)
    );
    timer.advance(Duration::from_millis(1500));
    let err = service
        .clone()
        .oneshot((Some(1), 2))
        .now_or_never()
        .unwrap()
        .unwrap_err();
    let response = err.into_response();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["retry-after"],
        "59",
        "58.5 s, rounded up"
    );

    let err = service
        .oneshot((Some(2), 3))
        .now_or_never()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::TooManyKeys(_)));
    assert_eq!(err.into_response().status(), 503);
}

// ----------------------------------------------------------------------------------------
// KeyedGateLayer

fn gate(limit: usize) -> Arc<KeyedGate<u8>> {
    Arc::new(KeyedGate::new(limit).unwrap())
}

#[test]
fn gate_reject_limits_in_flight_per_key_and_the_permit_lives_in_the_response() {
    let gate = gate(1);
    let layer = KeyedGateLayer::new(Arc::clone(&gate), ManualTimer::new(), key).reject();
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);

    assert!(service.poll_ready().is_ready());
    let mut first = service.call((Some(1), 0));
    let (_, respond) = next_request(&mut handle).unwrap();

    assert!(service.poll_ready().is_ready());
    let mut refused = service.call((Some(1), 1));
    match poll_once(&mut refused) {
        Poll::Ready(Err(Error::TooManyCalls(err))) => {
            assert_eq!(err.kind(), TooManyCallsKind::Full);
            assert_eq!(err.into_response().status(), 503);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        next_request(&mut handle).is_none(),
        "a refused request never reaches the inner"
    );

    assert!(service.poll_ready().is_ready());
    let _other = service.call((Some(2), 2));
    assert!(next_request(&mut handle).is_some(), "key 2 is not held up");

    respond.send_response(0);
    assert_ok(poll_once(&mut first), 0);
    assert!(service.poll_ready().is_ready());
    let _again = service.call((Some(1), 3));
    assert!(
        next_request(&mut handle).is_some(),
        "released on completion"
    );
}

#[test]
fn gate_permit_released_when_the_response_is_dropped_before_completion() {
    let gate = gate(1);
    let layer = KeyedGateLayer::new(Arc::clone(&gate), ManualTimer::new(), key).reject();
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);
    assert!(service.poll_ready().is_ready());
    let first = service.call((Some(1), 0));
    let _ = next_request(&mut handle).unwrap();
    assert!(gate.try_enter(&1).is_err());
    drop(first);
    assert!(gate.try_enter(&1).is_ok());
    gate.shrink_to_fit();
    assert_eq!(gate.len(), 0, "no entry leaked");
}

#[test]
fn gate_wait_mode_admits_in_fifo_order_and_a_dropped_waiter_leaves() {
    let gate = gate(1);
    let layer = KeyedGateLayer::new(Arc::clone(&gate), ManualTimer::new(), key);
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);

    let mut responses = Vec::new();
    for n in 0..4 {
        assert!(service.poll_ready().is_ready());
        let mut response = Box::pin(service.call((Some(1), n)));
        let _ = poll_once(&mut response);
        responses.push(response);
    }
    let (req, respond) = next_request(&mut handle).unwrap();
    assert_eq!(req.1, 0);
    assert!(
        next_request(&mut handle).is_none(),
        "one in flight for key 1"
    );
    drop(responses.remove(1)); // request 1 gives up while waiting
    respond.send_response(0);
    assert_ok(poll_once(&mut responses[0]), 0);
    for response in &mut responses[1..] {
        let _ = poll_once(response);
    }
    let (req, respond) = next_request(&mut handle).unwrap();
    assert_eq!(req.1, 2, "FIFO, skipping the dropped waiter");
    assert!(next_request(&mut handle).is_none());
    respond.send_response(2);
    assert_ok(poll_once(&mut responses[1]), 2);
    let _ = poll_once(&mut responses[2]);
    next_request(&mut handle).unwrap().1.send_response(3);
    assert_ok(poll_once(&mut responses[2]), 3);

    drop(responses);
    gate.shrink_to_fit();
    assert_eq!(gate.len(), 0, "permits and queue places all released");
}

#[test]
fn gate_wait_timeout_refuses_at_the_deadline_without_calling_the_inner() {
    let timer = ManualTimer::new();
    let gate = gate(1);
    let layer = KeyedGateLayer::new(Arc::clone(&gate), timer.clone(), key)
        .wait_timeout(Duration::from_millis(100));
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);

    assert!(service.poll_ready().is_ready());
    let mut first = Box::pin(service.call((Some(1), 0)));
    let _ = poll_once(&mut first);
    let (_, respond) = next_request(&mut handle).unwrap();

    assert!(service.poll_ready().is_ready());
    let mut late = Box::pin(service.call((Some(1), 1)));
    assert!(poll_once(&mut late).is_pending());
    timer.advance(Duration::from_millis(100));
    match poll_once(&mut late) {
        Poll::Ready(Err(Error::TooManyCalls(err))) => {
            assert_eq!(err.kind(), TooManyCallsKind::TimedOut)
        }
        other => panic!("{other:?}"),
    }
    assert!(next_request(&mut handle).is_none());

    // Freed before the deadline: admitted.
    assert!(service.poll_ready().is_ready());
    let mut next = Box::pin(service.call((Some(1), 2)));
    assert!(poll_once(&mut next).is_pending());
    respond.send_response(0);
    assert!(poll_once(&mut first).is_ready());
    timer.advance(Duration::from_millis(50));
    let _ = poll_once(&mut next);
    assert_eq!(next_request(&mut handle).unwrap().0.1, 2);
}

#[test]
fn gate_none_is_unlimited_and_too_many_keys_is_503() {
    let gate = Arc::new(
        KeyedGate::<u8>::new(1)
            .unwrap()
            .with_max_keys(NonZeroUsize::new(1).unwrap()),
    );
    let layer = KeyedGateLayer::new(Arc::clone(&gate), ManualTimer::new(), key).reject();
    let (mut service, mut handle) = mock::spawn_layer::<Req, u32, _>(layer);
    let mut held = Vec::new();
    for n in 0..10 {
        assert!(service.poll_ready().is_ready());
        held.push(service.call((None, n)));
        assert!(next_request(&mut handle).is_some());
    }
    assert_eq!(gate.len(), 0);
    assert!(service.poll_ready().is_ready());
    held.push(service.call((Some(1), 0)));
    assert!(next_request(&mut handle).is_some());
    assert!(service.poll_ready().is_ready());
    let mut refused = service.call((Some(2), 0));
    match poll_once(&mut refused) {
        Poll::Ready(Err(Error::TooManyKeys(err))) => {
            assert_eq!(err.into_response().status(), 503)
        }
        other => panic!("{other:?}"),
    }
    assert!(next_request(&mut handle).is_none());
}

#[test]
#[should_panic(expected = "polled after completion")]
fn response_future_polled_after_completion_panics() {
    let layer = KeyedGateLayer::new(gate(1), ManualTimer::new(), key).reject();
    let mut service = layer.layer(service_fn(|req: Req| async move { Ok::<_, ()>(req.1) }));
    let mut response = Box::pin(service.call((Some(1), 0)));
    assert!(poll_once(&mut response).is_ready());
    let _ = poll_once(&mut response);
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    type Svc = tower::util::ServiceFn<fn(Req) -> std::future::Ready<Result<u32, ()>>>;
    type Extract = fn(&Req) -> Option<u8>;
    type Throttled = KeyedThrottleService<Svc, u8, Extract, ManualTimer>;
    type Gated = KeyedGateService<Svc, u8, Extract, ManualTimer>;
    send_sync::<KeyedThrottleLayer<u8, Extract, ManualTimer>>();
    send_sync::<KeyedGateLayer<u8, Extract, ManualTimer>>();
    send_sync::<Throttled>();
    send_sync::<Gated>();
    fn send<T: Send>() {}
    send::<<Throttled as Service<Req>>::Future>();
    send::<<Gated as Service<Req>>::Future>();
}

// ----------------------------------------------------------------------------------------
// axum: one router, per-IP and per-API-key limits

#[test]
fn axum_router_answers_429_per_ip_and_per_key_and_503_for_a_full_table() {
    use axum::Router;
    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    use axum::extract::{ConnectInfo, Request};
    use axum::routing::get;
    use std::net::{IpAddr, SocketAddr};
    use tower::ServiceBuilder;

    async fn refusal(err: Error<Infallible>) -> axum::response::Response {
        err.into_response()
    }
    fn ip(req: &Request) -> Option<IpAddr> {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    }
    fn api_key(req: &Request) -> Option<String> {
        Some(req.headers().get("x-api-key")?.to_str().ok()?.to_owned())
    }

    let timer = ManualTimer::new();
    let per_ip = Arc::new(KeyedThrottle::<IpAddr>::new(Quota::per_second(1)).unwrap());
    let per_key = Arc::new(
        KeyedThrottle::<String>::new(Quota::per_minute(2))
            .unwrap()
            .with_max_keys(NonZeroUsize::new(2).unwrap()),
    );
    let app = Router::new()
        .route(
            "/public",
            get(|| async { "public" }).route_layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(refusal))
                    .layer(
                        KeyedThrottleLayer::new(Arc::clone(&per_ip), timer.clone(), ip).reject(),
                    ),
            ),
        )
        .route(
            "/api",
            get(|| async { "api" }).route_layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(refusal))
                    .layer(
                        KeyedThrottleLayer::new(Arc::clone(&per_key), timer.clone(), api_key)
                            .reject(),
                    ),
            ),
        )
        .with_state(());

    let get = |path: &str, peer: [u8; 4], key: Option<&str>| {
        let mut req = Request::get(path);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((peer, 4000))));
        app.clone().oneshot(req).now_or_never().unwrap().unwrap()
    };

    assert_eq!(get("/public", [10, 0, 0, 1], None).status(), 200);
    let refused = get("/public", [10, 0, 0, 1], None);
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        get("/public", [10, 0, 0, 2], None).status(),
        200,
        "another IP"
    );

    for _ in 0..10 {
        assert_eq!(
            get("/api", [10, 0, 0, 1], None).status(),
            200,
            "no key: not limited"
        );
    }
    assert_eq!(get("/api", [10, 0, 0, 1], Some("a")).status(), 200);
    let refused = get("/api", [10, 0, 0, 9], Some("a"));
    assert_eq!(refused.status(), 429, "per key, whatever the IP");
    assert_eq!(refused.headers()["retry-after"], "30");
    assert_eq!(get("/api", [10, 0, 0, 1], Some("b")).status(), 200);
    // Both entries are live (each spent for 30 s) and the cap is 2: a third key is refused.
    let full = get("/api", [10, 0, 0, 1], Some("c"));
    assert_eq!(full.status(), 503);
    assert!(full.headers().get("retry-after").is_none());
    timer.advance(Duration::from_secs(30));
    assert_eq!(
        get("/api", [10, 0, 0, 1], Some("c")).status(),
        200,
        "idle keys made room"
    );
}
