//! Adaptive gate: one permit cycle (enter, report success, release) against tower-resilience's
//! adaptive limiter and the plain gate's try + release, in the same run. Ids are
//! `<group>/<impl>`:
//!
//! - `adaptive/permit_cycle/dike-aimd-rtt`, `.../dike-gradient`: `try_enter` on an
//!   `AdaptiveGate`, `success()`; the timer is a `timer_fn` over `std::time::Instant` (two
//!   clock reads per cycle, the call's start and end). `dike-aimd-rtt` is AIMD with an RTT
//!   threshold (1 s), as tower-resilience's AIMD always has one.
//! - `adaptive/permit_cycle/dike-aimd`: AIMD without an RTT threshold, on the same timer:
//!   its rule uses neither time, so the gate reads no clock.
//! - `adaptive/permit_cycle/tower-resilience`: one request through
//!   `tower_resilience_adaptive::AdaptiveLimiterLayer` with its AIMD around a service that
//!   answers at once: `poll_ready`, `call`, one poll of the response future (it reads
//!   `Instant::now` twice too, and records the success).
//! - `adaptive/permit_cycle/dike-aimd-free-clock`: `dike-aimd-rtt`'s cycle (both reads
//!   made) on a clock that reads a constant, to separate the engine from the clock's cost.
//! - `adaptive/permit_cycle/dike-aimd-rtt-tsc`: `dike-aimd-rtt`'s cycle on governor's
//!   default clock (a TSC read through `quanta`): dike takes any `Timer`, so a user who wants
//!   the RTT cheaply can have it; tower-resilience always reads `std::time::Instant`.
//! - `adaptive/permit_cycle/gate`: `Gate::try_enter` and drop (no feedback, no clock).
//! - `adaptive/permit_cycle/clock`: the two reads of the real-clock timer alone, what both
//!   `dike-aimd-rtt` and `tower-resilience` pay for the call's RTT.
//!
//! Every AIMD is pinned at 64 (bounds `[64, 64]`), so no cycle changes the limit.

use core::convert::Infallible;
use core::future::Future;
use core::hint::black_box;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::adaptive::{AdaptiveGate, Aimd, Gradient};
use dike::gate::Gate;
use dike::time::{Timer, timer_fn};
use governor::clock::{Clock, QuantaClock, Reference};
use tower::{Layer, Service};

fn permit_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive/permit_cycle");
    let origin = Instant::now();
    let timer = timer_fn(
        move || origin.elapsed(),
        |_: Duration| core::future::ready(()),
    );
    let pinned = Aimd::new(64).with_bounds(64, 64).unwrap();
    let aimd_rtt = AdaptiveGate::new(pinned.with_rtt_threshold(Duration::from_secs(1)));
    group.bench_function("dike-aimd-rtt", |b| {
        b.iter(|| black_box(&aimd_rtt).try_enter(&timer).unwrap().success());
    });
    let aimd = AdaptiveGate::new(pinned);
    group.bench_function("dike-aimd", |b| {
        b.iter(|| black_box(&aimd).try_enter(&timer).unwrap().success());
    });
    let gradient = AdaptiveGate::new(Gradient::new(64));
    group.bench_function("dike-gradient", |b| {
        b.iter(|| black_box(&gradient).try_enter(&timer).unwrap().success());
    });

    let algorithm = tower_resilience_adaptive::Aimd::builder()
        .initial_limit(64)
        .min_limit(64)
        .max_limit(64)
        .latency_threshold(Duration::from_secs(1))
        .build();
    let mut service = tower_resilience_adaptive::AdaptiveLimiterLayer::new(algorithm).layer(
        tower::service_fn(|()| core::future::ready(Ok::<_, Infallible>(()))),
    );
    let mut cx = Context::from_waker(Waker::noop());
    group.bench_function("tower-resilience", |b| {
        b.iter(|| {
            let svc = black_box(&mut service);
            assert!(svc.poll_ready(&mut cx).is_ready());
            let response = pin!(svc.call(()));
            match response.poll(&mut cx) {
                Poll::Ready(Ok(())) => {}
                _ => unreachable!("the service answers at once"),
            }
        });
    });

    // The same cycle on a clock that costs nothing: what the engine itself costs.
    let still = timer_fn(|| Duration::ZERO, |_: Duration| core::future::ready(()));
    group.bench_function("dike-aimd-free-clock", |b| {
        b.iter(|| black_box(&aimd_rtt).try_enter(&still).unwrap().success());
    });
    let clock = QuantaClock::default();
    let start = clock.now();
    let tsc = timer_fn(
        move || Duration::from(clock.now().duration_since(start)),
        |_: Duration| core::future::ready(()),
    );
    group.bench_function("dike-aimd-rtt-tsc", |b| {
        b.iter(|| black_box(&aimd_rtt).try_enter(&tsc).unwrap().success());
    });
    let gate = Gate::new(64);
    group.bench_function("gate", |b| {
        b.iter(|| drop(black_box(black_box(&gate).try_enter())));
    });
    group.bench_function("clock", |b| {
        b.iter(|| {
            let start = black_box(&timer).now();
            black_box(&timer).now().saturating_sub(start)
        });
    });
    group.finish();
}

criterion_group!(benches, permit_cycle);
criterion_main!(benches);
