//! dike's tower layers against tower's own, in the same run. Ids are `tower/<case>/<impl>`:
//!
//! - `tower/concurrency_limit/{dike,tower}`: one request through a limit of 64 over an inner
//!   service that is always ready and answers at once, uncontended: `poll_ready` (takes the
//!   permit), `call`, poll the response to completion (releases it). dike's `GateLayer::new(64)`
//!   (wait mode) vs tower's `ConcurrencyLimitLayer::new(64)`.
//! - `tower/rate_limit/{dike,tower}`: the same, through a rate high enough that every request
//!   is allowed. dike's `ThrottleLayer` (10⁹ per second, burst 10⁶, on `TokioTimer`) vs
//!   tower's `RateLimitLayer` (2⁶³ per second). Both read tokio's clock once per request.
//!   For reference, `tower/rate_limit/dike-quanta` is dike's layer on governor's default
//!   clock (a TSC read through `quanta`), which tower's layer cannot use.
//! - `tower/clock_read/{dike,tokio}`: the clock read inside both: `TokioTimer::now()` vs
//!   tokio's `Instant::now()`, which `TokioTimer` reads and measures from its origin.
//! - `tower/hedge_not_fired/{dike,direct}`: one request through `HedgeLayer` (a fixed 15 ms
//!   hedge on `TokioTimer`) over the same inner service, answering before any hedge, against
//!   the inner service alone: the layer's cost on the common path (one clock read, one clone
//!   of the service and of the request, the policy's `Arc`).
//!
//! `cargo bench --all-features --bench tower -- --output-format bencher`

use core::convert::Infallible;
use core::future::{Future, Ready, pending, ready};
use core::hint::black_box;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::hedge::Hedge;
use dike::throttle::Quota;
use dike::time::{Timer, TokioTimer, timer_fn};
use dike::tower::{GateLayer, HedgeLayer, ThrottleLayer};
use governor::clock::{Clock, QuantaClock, Reference};
use tower::Layer;
use tower::Service;
use tower::limit::{ConcurrencyLimitLayer, RateLimitLayer};

/// dike on governor's default clock, a TSC read (as in `benches/throttle.rs`).
fn quanta_timer() -> impl Timer {
    let clock = QuantaClock::default();
    let origin = clock.now();
    timer_fn(
        move || Duration::from(clock.now().duration_since(origin)),
        |_| pending::<()>(),
    )
}

/// An inner service that is always ready and answers at once.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: u64) -> Self::Future {
        ready(Ok(request))
    }
}

/// One request: ready, call, response; panics if any step is not immediate.
#[inline]
fn one_request<S>(service: &mut S, cx: &mut Context<'_>, request: u64) -> S::Response
where
    S: Service<u64>,
    S::Error: core::fmt::Debug,
{
    match service.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("not ready"),
    }
    let response = pin!(service.call(request));
    match response.poll(cx) {
        Poll::Ready(Ok(response)) => response,
        _ => panic!("no response"),
    }
}

fn concurrency_limit(c: &mut Criterion) {
    let mut group = c.benchmark_group("tower/concurrency_limit");
    let mut cx = Context::from_waker(Waker::noop());

    let mut dike = GateLayer::new(64).layer(Echo);
    group.bench_function("dike", |b| {
        b.iter(|| black_box(one_request(&mut dike, &mut cx, black_box(1))));
    });
    assert_eq!(dike.gate().stats().in_use, 0);

    let mut tower = ConcurrencyLimitLayer::new(64).layer(Echo);
    group.bench_function("tower", |b| {
        b.iter(|| black_box(one_request(&mut tower, &mut cx, black_box(1))));
    });
    group.finish();
}

fn rate_limit(c: &mut Criterion) {
    let mut group = c.benchmark_group("tower/rate_limit");
    let mut cx = Context::from_waker(Waker::noop());
    // tower's RateLimit creates a tokio Sleep when built: it needs a runtime context.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _context = runtime.enter();

    let quota = Quota::per_second(1_000_000_000).with_burst(1_000_000);
    let mut dike = ThrottleLayer::new(quota, TokioTimer::new())
        .expect("valid quota")
        .layer(Echo);
    group.bench_function("dike", |b| {
        b.iter(|| black_box(one_request(&mut dike, &mut cx, black_box(1))));
    });

    let mut dike_quanta = ThrottleLayer::new(quota, quanta_timer())
        .expect("valid quota")
        .layer(Echo);
    group.bench_function("dike-quanta", |b| {
        b.iter(|| black_box(one_request(&mut dike_quanta, &mut cx, black_box(1))));
    });

    let mut tower = RateLimitLayer::new(1 << 63, Duration::from_secs(1)).layer(Echo);
    group.bench_function("tower", |b| {
        b.iter(|| black_box(one_request(&mut tower, &mut cx, black_box(1))));
    });
    group.finish();
}

criterion_group!(benches, concurrency_limit, rate_limit, clock_read, hedge);
criterion_main!(benches);

/// `HedgeLayer`'s cost when no hedge fires: one request through a fixed 15 ms hedge over an
/// inner service that answers at once, against the inner service alone.
fn hedge(c: &mut Criterion) {
    let mut group = c.benchmark_group("tower/hedge_not_fired");
    let mut cx = Context::from_waker(Waker::noop());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let mut dike =
        HedgeLayer::new(Hedge::fixed(Duration::from_millis(15)), TokioTimer::new()).layer(Echo);
    group.bench_function("dike", |b| {
        b.iter(|| black_box(one_request(&mut dike, &mut cx, black_box(1))));
    });
    assert_eq!(dike.policy().stats().hedges, 0);
    let mut direct = Echo;
    group.bench_function("direct", |b| {
        b.iter(|| black_box(one_request(&mut direct, &mut cx, black_box(1))));
    });
    group.finish();
}

/// The clock read both rate-limit layers pay once per request: tokio's `Instant::now()`
/// (tower's `RateLimit`) and `TokioTimer::now()` (the same read, measured from dike's origin).
fn clock_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("tower/clock_read");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let timer = TokioTimer::new();
    group.bench_function("dike", |b| b.iter(|| black_box(black_box(&timer).now())));
    group.bench_function("tokio", |b| {
        b.iter(|| black_box(tokio::time::Instant::now()))
    });
    group.finish();
}
