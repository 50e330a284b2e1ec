//! `limit_jobs` forms added for issue 11: a shared gate, a zero-argument call, any future
//! under the limit, the nameable `LimitJobs`; each cancel safe and panicking when polled
//! after completion.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;

use dike::gate::{Gate, LimitJobs, limit_jobs};

fn poll_once<F: Future>(fut: core::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn functions_over_one_gate_share_its_limit() {
    let gate = Arc::new(Gate::new(2));
    let read = LimitJobs::with_gate(Arc::clone(&gate), |id: u32| async move {
        smol::future::yield_now().await;
        id
    });
    let write = LimitJobs::with_gate(Arc::clone(&gate), |()| async {
        smol::future::yield_now().await;
        "written"
    });
    let mut a = pin!(read.call(1));
    let mut b = pin!(write.call(()));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(gate.stats().in_use, 2, "one limit for both functions");
    let rejected = smol::block_on(read.call(3)).unwrap_err();
    assert_eq!(rejected.limit(), 2);
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Ok(1)));
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Ok("written")));
    assert_eq!(gate.stats().in_use, 0);
    assert!(Arc::ptr_eq(read.gate(), &gate));
}

#[test]
fn call0_calls_a_function_of_no_argument_only_when_admitted() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let ping = limit_jobs(1, move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async {
            smol::future::yield_now().await;
            "pong"
        }
    });
    let mut first = pin!(ping.call0());
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(smol::block_on(ping.call0()).is_err());
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "rejected: f not called"
    );
    assert_eq!(poll_once(first.as_mut()), Poll::Ready(Ok("pong")));
}

#[test]
fn run_drops_a_rejected_future_unpolled_and_frees_the_slot_on_drop() {
    let jobs = LimitJobs::new(1);
    let mut held = Box::pin(jobs.run(smol::future::yield_now()));
    assert!(poll_once(held.as_mut()).is_pending());
    let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&polled);
    let rejected = smol::block_on(jobs.run(async move {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    }));
    assert!(rejected.is_err());
    assert!(
        !polled.load(std::sync::atomic::Ordering::SeqCst),
        "never polled"
    );
    drop(held); // cancelled mid-run
    assert_eq!(jobs.gate().stats().in_use, 0, "the slot is free again");
    assert_eq!(smol::block_on(jobs.run(async { 5 })), Ok(5));
}

#[test]
#[should_panic(expected = "`LimitedCall` polled after completion")]
fn a_limited_call_polled_after_completion_panics() {
    let jobs = LimitJobs::new(1);
    let mut call = pin!(jobs.run(async { 1 }));
    assert_eq!(poll_once(call.as_mut()), Poll::Ready(Ok(1)));
    let _ = poll_once(call.as_mut());
}

#[test]
fn the_nameable_type_works_as_axum_state() {
    use axum::extract::State;
    use axum::http::StatusCode;

    async fn handler(State(jobs): State<LimitJobs>) -> Result<&'static str, StatusCode> {
        jobs.run(async { "ok" })
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
    }
    let _app: axum::Router = axum::Router::new()
        .route("/", axum::routing::get(handler))
        .with_state(LimitJobs::new(1));
    let jobs = LimitJobs::new(1);
    assert_eq!(smol::block_on(handler(State(jobs.clone()))), Ok("ok"));
}

#[test]
fn send_sync_and_static() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send_static<T: Send + 'static>(_: &T) {}
    let jobs = LimitJobs::new(1);
    send_sync(&jobs);
    send_static(&jobs.run(async { 1 }));
    let ping = limit_jobs(1, || async { 1 });
    send_static(&ping.call0());
    assert_eq!(
        format!("{:?}", jobs.run(async {})),
        "LimitedCall { state: start }"
    );
}
