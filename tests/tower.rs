//! The tower layers under tower's own mock service (`tower-test`): the `poll_ready`/`call`
//! contract, reject vs wait vs timeout, sharing, limit 0; the same stack driven by smol; the
//! axum responses.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dike::error::{TooManyCalls, TooManyCallsKind};
use dike::gate::Gate;
use dike::throttle::{Quota, Throttle};
use dike::time::{AsyncIoTimer, ManualTimer, Timer};
use dike::tower::{Error, GateLayer, ThrottleLayer};
use futures_util::FutureExt;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_test::mock::{self, Handle, Spawn};

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

fn in_use(gate: &Gate) -> usize {
    gate.stats().in_use
}

// ----------------------------------------------------------------------------------------
// GateLayer: the poll_ready / call contract

#[test]
fn gate_a_not_ready_inner_is_never_called_and_its_readiness_is_propagated() {
    let gate = Arc::new(Gate::new(4));
    let (mut service, mut handle) =
        mock::spawn_layer::<&str, &str, _>(GateLayer::shared(gate.clone()));
    handle.allow(0);

    // The permit is reserved first, then the inner's Pending is propagated.
    assert!(service.poll_ready().is_pending());
    assert_eq!(
        in_use(&gate),
        1,
        "the permit is held while the inner is not ready"
    );
    assert!(!service.is_woken());

    handle.allow(1);
    assert!(service.is_woken(), "the inner's wake-up reaches the caller");
    assert!(service.poll_ready().is_ready());
    assert_eq!(
        in_use(&gate),
        1,
        "polling again does not take a second permit"
    );

    let mut response = service.call("hello");
    let (request, send) = next_request(&mut handle).expect("sent at call");
    assert_eq!(request, "hello");
    assert!(poll_once(&mut response).is_pending());
    send.send_response("world");
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok("world"))));
    assert_eq!(in_use(&gate), 0, "released when the response completes");
}

#[test]
fn gate_wait_mode_is_backpressure_in_poll_ready() {
    let (mut first, mut handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1));
    let mut second = Spawn::new(first.get_ref().clone());
    let gate = first.get_ref().gate().clone();

    assert!(first.poll_ready().is_ready());
    let mut response = first.call(1);
    assert!(
        second.poll_ready().is_pending(),
        "the only permit is in the response future"
    );
    assert_eq!(gate.stats().waiting, 1);

    let (_, send) = next_request(&mut handle).unwrap();
    send.send_response(10);
    assert!(!second.is_woken());
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(10))));
    assert!(
        second.is_woken(),
        "the permit was handed to the waiting service"
    );
    assert!(second.poll_ready().is_ready());
    let mut response = second.call(2);
    let (request, send) = next_request(&mut handle).unwrap();
    assert_eq!(request, 2);
    send.send_response(20);
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(20))));
    let stats = gate.stats();
    assert_eq!(
        (stats.in_use, stats.admitted, stats.rejected),
        (0, 2, 0),
        "waiting is no rejection"
    );
}

#[test]
fn gate_permit_released_when_the_response_future_is_dropped_before_completion() {
    let (mut first, mut handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1));
    let mut second = Spawn::new(first.get_ref().clone());
    let gate = first.get_ref().gate().clone();

    assert!(first.poll_ready().is_ready());
    let mut response = first.call(1);
    assert!(poll_once(&mut response).is_pending());
    assert!(second.poll_ready().is_pending());

    drop(response); // cancelled mid-flight
    assert!(second.is_woken(), "the permit passed on");
    assert!(second.poll_ready().is_ready());
    assert_eq!(in_use(&gate), 1);
    drop(second);
    assert_eq!(in_use(&gate), 0, "nothing leaked");

    // The first service is not wedged: it can be made ready and called again.
    assert!(first.poll_ready().is_ready());
    let mut response = first.call(3);
    let (_, _dropped_responder) = next_request(&mut handle).unwrap(); // request 1
    let (request, send) = next_request(&mut handle).unwrap();
    assert_eq!(request, 3);
    send.send_response(30);
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(30))));
    assert_eq!(in_use(&gate), 0);
}

#[test]
fn gate_permit_released_when_a_ready_service_is_dropped_without_a_call() {
    let gate = Arc::new(Gate::new(1));
    let (mut service, _handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::shared(gate.clone()));
    assert!(service.poll_ready().is_ready());
    assert_eq!(in_use(&gate), 1);
    drop(service);
    assert_eq!(in_use(&gate), 0);

    // The same when the inner was not ready yet (the permit was held meanwhile).
    let (mut service, mut handle) =
        mock::spawn_layer::<u32, u32, _>(GateLayer::shared(gate.clone()));
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    assert_eq!(in_use(&gate), 1);
    drop(service);
    assert_eq!(in_use(&gate), 0);
}

#[test]
fn gate_a_clone_of_a_ready_service_starts_without_a_permit() {
    let (mut service, _handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1));
    assert!(service.poll_ready().is_ready());
    let gate = service.get_ref().gate().clone();
    let mut clone = Spawn::new(service.get_ref().clone());
    assert_eq!(in_use(&gate), 1, "cloning did not duplicate the permit");
    assert!(
        clone.poll_ready().is_pending(),
        "the clone shares the limit of 1"
    );
    drop(service);
    assert!(clone.is_woken());
    assert!(clone.poll_ready().is_ready());
}

#[test]
fn gate_a_dropped_waiting_service_leaves_the_queue() {
    let (mut first, _handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1));
    let mut second = Spawn::new(first.get_ref().clone());
    let mut third = Spawn::new(first.get_ref().clone());
    let gate = first.get_ref().gate().clone();
    assert!(first.poll_ready().is_ready());
    assert!(second.poll_ready().is_pending());
    assert!(third.poll_ready().is_pending());
    assert_eq!(gate.stats().waiting, 2);

    drop(second);
    assert_eq!(gate.stats().waiting, 1);
    drop(first);
    assert!(third.is_woken(), "skips the dropped waiter");
    assert!(third.poll_ready().is_ready());
    drop(third);
    assert_eq!((gate.stats().in_use, gate.stats().waiting), (0, 0));
}

#[test]
fn gate_inner_errors_are_typed_and_release_the_permit() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1));
    let gate = service.get_ref().gate().clone();

    assert!(service.poll_ready().is_ready());
    let mut response = service.call(1);
    let (_, send) = next_request(&mut handle).unwrap();
    send.send_error("backend down");
    match poll_once(&mut response) {
        Poll::Ready(Err(Error::Inner(err))) => assert_eq!(err.to_string(), "backend down"),
        other => panic!("{other:?}"),
    }
    assert_eq!(in_use(&gate), 0);

    handle.send_error("broken");
    match service.poll_ready() {
        Poll::Ready(Err(Error::Inner(err))) => assert_eq!(err.to_string(), "broken"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[should_panic(expected = "without a `poll_ready`")]
fn gate_call_without_poll_ready_panics() {
    let (mut service, _handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1));
    drop(service.call(1));
}

#[test]
#[should_panic(expected = "`ResponseFuture` polled after completion")]
fn gate_response_future_polled_after_completion_panics() {
    let mut service = GateLayer::new(1).layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    assert!(poll_once(&mut std::future::poll_fn(|cx| service.poll_ready(cx))).is_ready());
    let mut response = Box::pin(service.call(1));
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(1))));
    let _ = poll_once(&mut response);
}

// ----------------------------------------------------------------------------------------
// GateLayer: reject vs wait vs timeout

#[test]
fn gate_reject_mode_fails_the_next_call_at_once_without_calling_the_inner() {
    let (mut first, mut handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1).reject());
    let mut second = Spawn::new(first.get_ref().clone());
    let gate = first.get_ref().gate().clone();

    assert!(first.poll_ready().is_ready());
    let response = first.call(1);

    assert!(
        second.poll_ready().is_ready(),
        "reject mode never waits for the gate"
    );
    let mut refused = second.call(2);
    match poll_once(&mut refused) {
        Poll::Ready(Err(Error::TooManyCalls(err))) => {
            assert_eq!(err.kind(), TooManyCallsKind::Full);
            assert_eq!(err.limit(), 1);
        }
        other => panic!("{other:?}"),
    }
    let (request, _send) = next_request(&mut handle).unwrap();
    assert_eq!(request, 1);
    assert!(
        next_request(&mut handle).is_none(),
        "the refused request never reached the inner"
    );
    assert_eq!(gate.stats().rejected, 1);

    // poll_ready decides afresh: once the permit is back, the same service goes through.
    assert!(second.poll_ready().is_ready());
    drop(response);
    assert!(second.poll_ready().is_ready());
    let _response = second.call(3);
    assert_eq!(next_request(&mut handle).unwrap().0, 3);
}

#[test]
fn gate_reject_mode_still_propagates_the_inner_readiness() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(GateLayer::new(1).reject());
    handle.allow(0);
    assert!(
        service.poll_ready().is_pending(),
        "the gate had room; the inner is not ready"
    );
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
}

#[test]
fn gate_timeout_mode_refuses_at_the_deadline() {
    let timer = ManualTimer::new();
    let layer = GateLayer::new(1).with_timeout(timer.clone(), Duration::from_millis(50));
    let (mut first, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    let mut second = Spawn::new(first.get_ref().clone());
    let gate = first.get_ref().gate().clone();

    assert!(first.poll_ready().is_ready());
    let _held = first.call(1);
    assert!(second.poll_ready().is_pending());
    assert_eq!(timer.next_deadline(), Some(Duration::from_millis(50)));
    timer.advance(Duration::from_millis(49));
    assert!(!second.is_woken());
    timer.advance(Duration::from_millis(1));
    assert!(second.is_woken());
    assert!(second.poll_ready().is_ready(), "ready, to fail at once");
    assert_eq!(
        gate.stats().waiting,
        0,
        "the timed-out waiter left the queue"
    );
    assert_eq!(gate.stats().rejected, 1, "counted once, as timed out");
    match poll_once(&mut second.call(2)) {
        Poll::Ready(Err(Error::TooManyCalls(err))) => {
            assert_eq!(err.kind(), TooManyCallsKind::TimedOut)
        }
        other => panic!("{other:?}"),
    }
    next_request(&mut handle).unwrap();
    assert!(next_request(&mut handle).is_none());
}

#[test]
fn gate_timeout_mode_admits_when_freed_before_the_deadline() {
    let timer = ManualTimer::new();
    let layer = GateLayer::new(1).with_timeout(timer.clone(), Duration::from_millis(50));
    let (mut first, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    let mut second = Spawn::new(first.get_ref().clone());

    assert!(first.poll_ready().is_ready());
    let held = first.call(1);
    assert!(second.poll_ready().is_pending());
    timer.advance(Duration::from_millis(30));
    drop(held);
    assert!(second.is_woken());
    assert!(second.poll_ready().is_ready());
    timer.advance(Duration::from_millis(30)); // past the deadline: the permit is held already
    let mut response = second.call(2);
    next_request(&mut handle).unwrap();
    let (request, send) = next_request(&mut handle).unwrap();
    assert_eq!(request, 2);
    send.send_response(20);
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(20))));
    assert_eq!(
        timer.sleepers(),
        0,
        "the deadline's sleep was dropped with the wait"
    );
}

#[test]
fn gate_limit_zero_is_a_refusal_in_every_mode_never_a_hang() {
    let timer = ManualTimer::new();
    let wait = GateLayer::new(0);
    let timed = GateLayer::new(0).with_timeout(timer.clone(), Duration::from_secs(60));
    let reject = GateLayer::new(0).reject();

    let (mut a, mut ha) = mock::spawn_layer::<u32, u32, _>(wait);
    let (mut b, mut hb) = mock::spawn_layer::<u32, u32, _>(timed);
    let (mut c, mut hc) = mock::spawn_layer::<u32, u32, _>(reject);
    for result in [
        (a.poll_ready(), poll_once(&mut a.call(1))),
        (b.poll_ready(), poll_once(&mut b.call(1))),
        (c.poll_ready(), poll_once(&mut c.call(1))),
    ] {
        assert!(matches!(result.0, Poll::Ready(Ok(()))));
        match result.1 {
            Poll::Ready(Err(Error::TooManyCalls(err))) => {
                assert_eq!((err.limit(), err.kind()), (0, TooManyCallsKind::Full))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(timer.sleepers(), 0, "no wait was even started");
    assert!(next_request(&mut ha).is_none());
    assert!(next_request(&mut hb).is_none());
    assert!(next_request(&mut hc).is_none());
}

// ----------------------------------------------------------------------------------------
// GateLayer: sharing

#[test]
fn gate_shared_arc_limits_two_services_together() {
    let gate = Arc::new(Gate::new(1));
    let layer = GateLayer::shared(gate.clone());
    let (mut predict, mut hp) = mock::spawn_layer::<u32, u32, _>(layer.clone());
    let (mut batch, mut hb) = mock::spawn_layer::<u32, u32, _>(layer);

    assert!(predict.poll_ready().is_ready());
    let mut response = predict.call(1);
    assert!(
        batch.poll_ready().is_pending(),
        "the other route waits on the same gate"
    );
    assert!(gate.try_enter().is_err(), "and so does plain code");

    let (_, send) = next_request(&mut hp).unwrap();
    send.send_response(1);
    assert!(matches!(poll_once(&mut response), Poll::Ready(Ok(1))));
    assert!(batch.is_woken());
    assert!(batch.poll_ready().is_ready());
    drop(batch.call(2));
    assert_eq!(next_request(&mut hb).unwrap().0, 2);
    assert_eq!(gate.stats().admitted, 2);
}

#[test]
fn gate_layer_from_a_limit_gives_each_service_its_own_gate() {
    let layer = GateLayer::new(1);
    let (mut a, _ha) = mock::spawn_layer::<u32, u32, _>(layer.clone());
    let (mut b, _hb) = mock::spawn_layer::<u32, u32, _>(layer);
    assert!(a.poll_ready().is_ready());
    assert!(b.poll_ready().is_ready(), "b has a limit of its own");
}

// ----------------------------------------------------------------------------------------
// ThrottleLayer

#[test]
fn throttle_wait_mode_sleeps_until_the_next_slot() {
    let timer = ManualTimer::new();
    let layer = ThrottleLayer::new(Quota::per_second(10), timer.clone()).unwrap();
    let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    assert!(service.poll_ready().is_ready());
    let _first = service.call(1);
    assert!(service.poll_ready().is_pending());
    assert_eq!(timer.next_deadline(), Some(Duration::from_millis(100)));
    assert_eq!(timer.sleepers(), 1, "one sleep, no polling");
    timer.advance(Duration::from_millis(99));
    assert!(!service.is_woken());
    timer.advance(Duration::from_millis(1));
    assert!(service.is_woken());
    assert!(service.poll_ready().is_ready());
    let _second = service.call(2);
    assert_eq!(next_request(&mut handle).unwrap().0, 1);
    assert_eq!(next_request(&mut handle).unwrap().0, 2);
}

#[test]
fn throttle_reject_mode_fails_the_next_call_with_a_retry_after() {
    let timer = ManualTimer::new();
    let layer = ThrottleLayer::new(Quota::per_second(4), timer.clone())
        .unwrap()
        .reject();
    let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    assert!(service.poll_ready().is_ready());
    let _first = service.call(1);
    timer.advance(Duration::from_millis(100));
    assert!(
        service.poll_ready().is_ready(),
        "reject mode never waits for the throttle"
    );
    let err = match poll_once(&mut service.call(2)) {
        Poll::Ready(Err(err)) => err,
        other => panic!("{other:?}"),
    };
    assert!(matches!(err, Error::RateLimited(_)));
    assert_eq!(err.retry_after(), Some(Duration::from_millis(150)));
    assert_eq!(next_request(&mut handle).unwrap().0, 1);
    assert!(
        next_request(&mut handle).is_none(),
        "the refused request never reached the inner"
    );

    timer.advance(Duration::from_millis(150));
    assert!(service.poll_ready().is_ready());
    let _third = service.call(3);
    assert_eq!(next_request(&mut handle).unwrap().0, 3);
}

#[test]
fn throttle_takes_the_slot_before_polling_a_not_ready_inner() {
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::per_second(1).unwrap());
    let layer = ThrottleLayer::shared(throttle.clone(), timer.clone());
    let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    handle.allow(0);

    assert!(service.poll_ready().is_pending(), "the inner is not ready");
    assert!(
        throttle.try_acquire(&timer).is_err(),
        "the slot belongs to the next call"
    );
    assert!(service.poll_ready().is_pending());
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
    let _response = service.call(1);
    assert_eq!(next_request(&mut handle).unwrap().0, 1);
}

#[test]
fn throttle_a_dropped_waiting_service_spends_nothing() {
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::per_second(1).unwrap());
    let layer = ThrottleLayer::shared(throttle.clone(), timer.clone());
    let (mut first, _h1) = mock::spawn_layer::<u32, u32, _>(layer.clone());
    let (mut second, _h2) = mock::spawn_layer::<u32, u32, _>(layer);

    assert!(first.poll_ready().is_ready());
    assert!(second.poll_ready().is_pending());
    drop(second);
    assert_eq!(timer.sleepers(), 0, "its sleep went with it");
    timer.advance(Duration::from_secs(1));
    assert!(
        throttle.try_acquire(&timer).is_ok(),
        "the next slot is still free"
    );
}

#[test]
fn throttle_shared_across_two_services_and_a_clone_starts_without_a_slot() {
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::new(Quota::per_second(1).with_burst(2)).unwrap());
    let layer = ThrottleLayer::shared(throttle.clone(), timer.clone()).reject();
    let (mut a, _ha) = mock::spawn_layer::<u32, u32, _>(layer.clone());
    let (mut b, _hb) = mock::spawn_layer::<u32, u32, _>(layer);

    assert!(a.poll_ready().is_ready());
    let mut clone = Spawn::new(a.get_ref().clone());
    assert!(b.poll_ready().is_ready());
    drop(b.call(1)); // the second unit of the burst
    assert!(clone.poll_ready().is_ready());
    assert!(
        matches!(
            poll_once(&mut clone.call(2)),
            Poll::Ready(Err(Error::RateLimited(_)))
        ),
        "the clone did not inherit a's slot, and the burst of 2 is spent"
    );
}

#[test]
fn throttle_waiting_services_line_up_fifo_and_only_the_head_sleeps() {
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::per_second(10).unwrap()); // a slot every 100 ms
    let layer = ThrottleLayer::shared(throttle.clone(), timer.clone());
    let (mut first, mut handle) = mock::spawn_layer::<u32, u32, _>(layer.clone());
    let mut waiting: Vec<_> = (0..3)
        .map(|_| Spawn::new(first.get_ref().clone()))
        .collect();

    assert!(first.poll_ready().is_ready());
    drop(first.call(0));
    for service in &mut waiting {
        assert!(service.poll_ready().is_pending());
    }
    assert_eq!(
        timer.sleepers(),
        1,
        "only the head sleeps; the others wait for their turn"
    );

    for (slot, expected) in [(1u64, 0usize), (2, 1), (3, 2)] {
        timer.advance_to(Duration::from_millis(100 * slot));
        for (i, service) in waiting.iter_mut().enumerate() {
            assert_eq!(
                service.is_woken(),
                i == expected,
                "slot {slot}: only #{expected} wakes"
            );
        }
        // A newcomer at the very instant of the slot does not overtake the line.
        let mut newcomer = Spawn::new(waiting[0].get_ref().clone());
        if expected < 2 {
            assert!(
                newcomer.poll_ready().is_pending(),
                "joins the end of the line"
            );
        }
        assert!(
            waiting[expected].poll_ready().is_ready(),
            "#{expected} gets slot {slot}"
        );
        drop(waiting[expected].call(slot as u32));
        drop(newcomer);
        assert!(timer.sleepers() <= 1);
    }
    let order: Vec<u32> =
        std::iter::from_fn(|| next_request(&mut handle).map(|(r, _)| r)).collect();
    assert_eq!(order, [0, 1, 2, 3]);

    // Everyone is served: the next request takes the fast path again.
    timer.advance(Duration::from_millis(100));
    let (mut later, _h) = mock::spawn_layer::<u32, u32, _>(layer);
    assert!(later.poll_ready().is_ready());
}

#[test]
fn throttle_a_dropped_head_or_queued_service_passes_its_turn_on() {
    let timer = ManualTimer::new();
    let layer = ThrottleLayer::new(Quota::per_second(10), timer.clone()).unwrap();
    let (mut first, _handle) = mock::spawn_layer::<u32, u32, _>(layer);
    let mut head = Spawn::new(first.get_ref().clone());
    let mut queued = Spawn::new(first.get_ref().clone());
    let mut last = Spawn::new(first.get_ref().clone());

    assert!(first.poll_ready().is_ready());
    drop(first.call(0));
    assert!(head.poll_ready().is_pending());
    assert!(queued.poll_ready().is_pending());
    assert!(last.poll_ready().is_pending());

    drop(queued); // leaves the line: nothing changes for the others
    assert!(!last.is_woken());
    drop(head); // the head leaves: its turn passes on, its sleep goes with it
    assert!(last.is_woken());
    assert!(
        last.poll_ready().is_pending(),
        "now the head, sleeping until the slot"
    );
    assert_eq!(timer.sleepers(), 1);
    timer.advance(Duration::from_millis(100));
    assert!(last.is_woken());
    assert!(last.poll_ready().is_ready());
}

#[test]
fn throttle_layer_rejects_an_invalid_quota_at_construction() {
    let err = ThrottleLayer::new(Quota::per_second(0), ManualTimer::new()).unwrap_err();
    assert_eq!(err.parameter(), "rate");
}

// ----------------------------------------------------------------------------------------
// Stacks

#[test]
fn stacked_errors_nest_and_flatten() {
    let timer = ManualTimer::new();
    let gate = Arc::new(Gate::new(1));
    let mut service = ServiceBuilder::new()
        .layer(GateLayer::shared(gate.clone()).reject())
        .layer(
            ThrottleLayer::new(Quota::per_second(1), timer.clone())
                .unwrap()
                .reject(),
        )
        .service(service_fn(|n: u32| async move {
            if n == 0 { Err("zero") } else { Ok(n) }
        }));
    let ready = |service: &mut _| -> bool {
        poll_once(&mut std::future::poll_fn(|cx| {
            Service::<u32>::poll_ready(service, cx)
        }))
        .is_ready()
    };

    assert!(ready(&mut service));
    let result: Result<u32, Error<Error<&str>>> = service.call(0).now_or_never().unwrap();
    assert!(matches!(result, Err(Error::Inner(Error::Inner("zero")))));

    assert!(ready(&mut service));
    let result = service.call(1).now_or_never().unwrap();
    assert!(matches!(result, Err(Error::Inner(Error::RateLimited(_)))));
    assert!(result.unwrap_err().flatten().retry_after().is_some());

    let _held = gate.try_enter().unwrap();
    assert!(ready(&mut service));
    let result = service.call(1).now_or_never().unwrap();
    assert!(matches!(
        result.unwrap_err().flatten(),
        Error::TooManyCalls(_)
    ));
}

// ----------------------------------------------------------------------------------------
// Runtime independence: the same stack driven by smol, on async-io's timer

#[test]
fn the_stack_runs_on_smol_with_waiting_gate_and_throttle() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let timer = AsyncIoTimer::new();
    let service = {
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        ServiceBuilder::new()
            .layer(GateLayer::new(2).with_timeout(timer, Duration::from_secs(10)))
            .layer(ThrottleLayer::new(Quota::per_second(200).with_burst(2), timer).unwrap())
            .service(service_fn(move |n: u32| {
                let (in_flight, peak) = (in_flight.clone(), peak.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    async_io::Timer::after(Duration::from_millis(5)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(n * 10)
                }
            }))
    };

    let start = timer.now();
    let results = smol::block_on(async {
        let calls = (0..10).map(|n| service.clone().oneshot(n));
        futures_util::future::join_all(calls).await
    });
    let elapsed = timer.now() - start;

    let results: Vec<u32> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(results, (0..10).map(|n| n * 10).collect::<Vec<_>>());
    assert!(peak.load(Ordering::SeqCst) <= 2, "the gate held");
    // 10 starts at 200/s with a burst of 2: the last starts at least 8 intervals in.
    assert!(
        elapsed >= Duration::from_millis(40),
        "the throttle held: {elapsed:?}"
    );
    assert_eq!(service.gate().stats().in_use, 0);
}

#[test]
fn the_reject_stack_runs_on_smol_tasks() {
    let timer = AsyncIoTimer::new();
    let gate = Arc::new(Gate::new(1));
    let service = ServiceBuilder::new()
        .layer(GateLayer::shared(gate.clone()).reject())
        .layer(
            ThrottleLayer::new(Quota::per_second(1000), timer)
                .unwrap()
                .reject(),
        )
        .service(service_fn(|n: u32| async move {
            async_io::Timer::after(Duration::from_millis(200)).await;
            Ok::<_, Infallible>(n)
        }));

    smol::block_on(async {
        let slow = smol::spawn(service.clone().oneshot(1));
        // Wait until the spawned request holds the permit.
        while gate.stats().in_use == 0 {
            async_io::Timer::after(Duration::from_millis(1)).await;
        }
        let shed = service.clone().oneshot(2).await;
        assert!(matches!(
            shed.map_err(Error::flatten),
            Err(Error::TooManyCalls(_))
        ));
        assert_eq!(slow.await.unwrap(), 1);
        async_io::Timer::after(Duration::from_millis(2)).await;
        assert_eq!(service.oneshot(3).await.unwrap(), 3);
    });
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn a_bounded_gate_wait_times_out_on_smol_with_async_io_timer() {
    let timer = AsyncIoTimer::new();
    let gate = Arc::new(Gate::new(1));
    let service = ServiceBuilder::new()
        .layer(GateLayer::shared(gate.clone()).with_timeout(timer, Duration::from_millis(20)))
        .service(service_fn(|n: u32| async move {
            async_io::Timer::after(Duration::from_millis(200)).await;
            Ok::<_, Infallible>(n)
        }));

    smol::block_on(async {
        let slow = smol::spawn(service.clone().oneshot(1));
        while gate.stats().in_use == 0 {
            async_io::Timer::after(Duration::from_millis(1)).await;
        }
        let start = timer.now();
        match service.clone().oneshot(2).await {
            Err(Error::TooManyCalls(err)) => assert_eq!(err.kind(), TooManyCallsKind::TimedOut),
            other => panic!("{other:?}"),
        }
        let waited = timer.now() - start;
        assert!(
            waited >= Duration::from_millis(20),
            "never early: {waited:?}"
        );
        assert_eq!(slow.await.unwrap(), 1);
    });
    let stats = gate.stats();
    assert_eq!((stats.in_use, stats.waiting, stats.rejected), (0, 0, 1));
}

// ----------------------------------------------------------------------------------------
// axum

mod axum_responses {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    use axum::extract::State;
    use axum::http::{Request, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    async fn body(response: axum::response::Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn get_request(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[test]
    fn too_many_calls_is_503_for_every_kind() {
        smol::block_on(async {
            for kind in [
                TooManyCallsKind::Full,
                TooManyCallsKind::QueueFull,
                TooManyCallsKind::TimedOut,
            ] {
                let response = TooManyCalls::new(3, kind).into_response();
                assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert!(response.headers().get("retry-after").is_none());
                assert!(
                    body(response)
                        .await
                        .starts_with("too many calls: limit of 3")
                );
            }
        });
    }

    #[test]
    fn rate_limited_is_429_with_retry_after_rounded_up() {
        let timer = ManualTimer::new();
        let cases = [
            (Quota::per_second(4), "1"),  // 250 ms
            (Quota::per_second(1), "1"),  // 1 s exactly
            (Quota::per_minute(40), "2"), // 1.5 s
            (
                Quota::per_second(1).with_period(Duration::from_millis(1)),
                "1",
            ), // 1 ms
        ];
        smol::block_on(async {
            for (quota, expected) in cases {
                let throttle = Throttle::new(quota).unwrap();
                throttle.try_acquire(&timer).unwrap();
                let refusal = throttle.try_acquire(&timer).unwrap_err();
                let response = refusal.into_response();
                assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
                assert_eq!(response.headers()["retry-after"], expected, "{quota:?}");
                assert!(body(response).await.starts_with("rate limited"));
            }
        });
    }

    #[test]
    fn the_layer_error_answers_the_refusal_or_the_inner_response() {
        let refused: Error<StatusCode> = TooManyCalls::new(1, TooManyCallsKind::TimedOut).into();
        assert_eq!(refused.into_response().status(), 503);
        let inner: Error<(StatusCode, &str)> = Error::Inner((StatusCode::IM_A_TEAPOT, "tea"));
        assert_eq!(inner.into_response().status(), 418);
        let nested: Error<Error<Infallible>> =
            Error::Inner(TooManyCalls::new(1, TooManyCallsKind::Full).into());
        assert_eq!(nested.into_response().status(), 503);
    }

    #[test]
    fn question_mark_in_a_handler_needs_no_mapping() {
        async fn handler(State(gate): State<Arc<Gate>>) -> Result<&'static str, TooManyCalls> {
            let _permit = gate.try_enter()?;
            Ok("ok")
        }
        let gate = Arc::new(Gate::new(1));
        let app = Router::new()
            .route("/", get(handler))
            .with_state(gate.clone());

        smol::block_on(async {
            let response = app.clone().oneshot(get_request("/")).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let _held = gate.try_enter().unwrap();
            let response = app.oneshot(get_request("/")).await.unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        });
    }

    /// `GET /` over a fresh TCP connection; the status line's code.
    async fn http_get(addr: std::net::SocketAddr) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response[9..12].parse().unwrap()
    }

    #[test]
    fn axum_serve_sheds_load_with_one_limit_across_connections() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let entered = Arc::new(tokio::sync::Notify::new());
            let release = Arc::new(tokio::sync::Notify::new());
            let handler = {
                let (entered, release) = (entered.clone(), release.clone());
                move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "done"
                }
            };
            let app = Router::new()
                .route("/", get(handler))
                .layer(
                    ServiceBuilder::new()
                        .layer(HandleErrorLayer::new(|err: Error<Infallible>| async move {
                            err
                        }))
                        .layer(GateLayer::new(1).reject()),
                )
                // One route, so one gate, for every connection (see the module docs).
                .with_state(());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

            let first = tokio::spawn(http_get(addr));
            entered.notified().await; // the first request holds the only permit
            assert_eq!(http_get(addr).await, 503, "a second connection is shed");
            release.notify_one();
            assert_eq!(first.await.unwrap(), 200);
            let again = tokio::spawn(http_get(addr));
            entered.notified().await;
            release.notify_one();
            assert_eq!(again.await.unwrap(), 200, "the permit came back");
        });
    }

    #[test]
    fn layers_on_a_router_with_handle_error_layer_need_no_mapping() {
        let timer = ManualTimer::new();
        let gate = Arc::new(Gate::new(1));
        let app = Router::new()
            .route("/predict", get(|| async { "predicted" }))
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(
                        |err: Error<Error<Infallible>>| async move { err },
                    ))
                    .layer(GateLayer::shared(gate.clone()).reject())
                    .layer(
                        ThrottleLayer::new(Quota::per_second(2), timer.clone())
                            .unwrap()
                            .reject(),
                    ),
            )
            // Builds the handler's route (and so the layers) once: without it axum builds a
            // handler's route per request, and a layer built from a number would count each
            // request alone.
            .with_state(());

        smol::block_on(async {
            let ok = app.clone().oneshot(get_request("/predict")).await.unwrap();
            assert_eq!(ok.status(), StatusCode::OK);
            assert_eq!(body(ok).await, "predicted");

            let limited = app.clone().oneshot(get_request("/predict")).await.unwrap();
            assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(limited.headers()["retry-after"], "1");

            timer.advance(Duration::from_secs(1));
            let _held = gate.try_enter().unwrap();
            let shed = app.clone().oneshot(get_request("/predict")).await.unwrap();
            assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        });
    }
}

#[test]
fn public_futures_and_services_are_send() {
    fn send<T: Send>(_: &T) {}
    let gate = GateLayer::new(1).with_timeout(AsyncIoTimer::new(), Duration::from_secs(1));
    let mut service = gate.layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    send(&service);
    let mut ready = pin!(std::future::poll_fn(|cx| service.poll_ready(cx)));
    assert!(
        ready
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    );
    send(&service.call(1));
}

// ----------------------------------------------------------------------------------------
// Wake-ups, a misbehaving timer, and a stress run on a multi-threaded runtime

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn gate_a_waiting_service_is_woken_once_per_hand_off() {
    let layer = GateLayer::new(1);
    let mut first = layer.layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    let mut second = first.clone();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);

    assert!(first.poll_ready(&mut cx).is_ready());
    let response = first.call(1);
    assert!(second.poll_ready(&mut cx).is_pending());
    assert!(
        second.poll_ready(&mut cx).is_pending(),
        "polling again keeps its place"
    );
    assert_eq!(first.gate().stats().waiting, 1);
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    drop(response);
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "one wake-up, for the hand-off"
    );
    assert!(second.poll_ready(&mut cx).is_ready());
}

#[test]
fn throttle_a_timer_whose_sleeps_end_early_makes_it_yield_not_spin() {
    // A broken timer: the clock never moves and every sleep is over at once.
    let broken = dike::time::timer_fn(|| Duration::ZERO, |_| std::future::ready(()));
    let layer = ThrottleLayer::new(Quota::per_second(1), broken).unwrap();
    let mut service = layer.layer(service_fn(|n: u32| async move { Ok::<_, ()>(n) }));
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);

    assert!(service.poll_ready(&mut cx).is_ready());
    drop(service.call(1));
    assert!(
        service.poll_ready(&mut cx).is_pending(),
        "returns instead of looping"
    );
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "and asks to be polled again"
    );
}

#[test]
fn stress_on_a_multi_threaded_runtime_loses_and_leaks_nothing() {
    const LIMIT: usize = 4;
    const TASKS: usize = 32;
    const ROUNDS: usize = 200;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let service = {
        let (in_flight, peak, completed) = (in_flight.clone(), peak.clone(), completed.clone());
        GateLayer::new(LIMIT).layer(service_fn(move |n: usize| {
            let (in_flight, peak, completed) = (in_flight.clone(), peak.clone(), completed.clone());
            async move {
                /// Leaves the count when the call ends, completed or dropped.
                struct InFlight(Arc<AtomicUsize>);
                impl Drop for InFlight {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                let _in_flight = InFlight(in_flight);
                peak.fetch_max(now, Ordering::SeqCst);
                for _ in 0..n % 3 {
                    tokio::task::yield_now().await;
                }
                completed.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(n)
            }
        }))
    };

    let awaited = runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let service = service.clone();
                tokio::spawn(async move {
                    let mut awaited = 0;
                    for round in 0..ROUNDS {
                        let n = task * ROUNDS + round;
                        let mut service = service.clone();
                        match n % 4 {
                            // Given up while waiting for a permit (or just after getting one).
                            0 => {
                                let ready = std::future::poll_fn(|cx| service.poll_ready(cx));
                                let _ = futures_util::poll!(pin!(ready));
                            }
                            // Called, then the response dropped after one poll.
                            1 => {
                                std::future::poll_fn(|cx| service.poll_ready(cx))
                                    .await
                                    .unwrap();
                                let _ = futures_util::poll!(pin!(service.call(n)));
                            }
                            _ => {
                                std::future::poll_fn(|cx| service.poll_ready(cx))
                                    .await
                                    .unwrap();
                                assert_eq!(service.call(n).await.unwrap(), n);
                                awaited += 1;
                            }
                        }
                        drop(service);
                        tokio::task::yield_now().await;
                    }
                    awaited
                })
            })
            .collect();
        let mut awaited = 0;
        for task in tasks {
            awaited += task.await.unwrap();
        }
        awaited
    });

    let stats = service.gate().stats();
    assert!(
        peak.load(Ordering::SeqCst) <= LIMIT,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(
        (stats.in_use, stats.waiting),
        (0, 0),
        "no permit or waiter leaked: {stats:?}"
    );
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(awaited, TASKS * ROUNDS / 2);
    assert!(completed.load(Ordering::SeqCst) >= awaited);
    assert_eq!(stats.rejected, 0, "waiting is no rejection");
}
