//! Adaptive gate: one permit cycle (enter, report success, release) against the plain gate's
//! try + release, in the same run. Ids are `<group>/<impl>`:
//!
//! - `adaptive/permit_cycle/dike-aimd`, `.../dike-gradient`: `try_enter` on an
//!   `AdaptiveGate`, `success()`; the timer is a `timer_fn` over `std::time::Instant`.
//! - `adaptive/permit_cycle/dike-aimd-free-clock`: the same on a clock that reads a constant,
//!   to separate the engine from the two clock reads.
//! - `adaptive/permit_cycle/gate`: `Gate::try_enter` and drop (no feedback, no clock).

use core::hint::black_box;
use core::time::Duration;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::adaptive::{AdaptiveGate, Aimd, Gradient};
use dike::gate::Gate;
use dike::time::timer_fn;

fn permit_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive/permit_cycle");
    let origin = Instant::now();
    let timer = timer_fn(
        move || origin.elapsed(),
        |_: Duration| core::future::ready(()),
    );
    let aimd = AdaptiveGate::new(Aimd::new(64).with_bounds(64, 64).unwrap());
    group.bench_function("dike-aimd", |b| {
        b.iter(|| black_box(&aimd).try_enter(&timer).unwrap().success());
    });
    let gradient = AdaptiveGate::new(Gradient::new(64));
    group.bench_function("dike-gradient", |b| {
        b.iter(|| black_box(&gradient).try_enter(&timer).unwrap().success());
    });
    // The same cycle on a clock that costs nothing: what the engine itself costs.
    let still = timer_fn(|| Duration::ZERO, |_: Duration| core::future::ready(()));
    group.bench_function("dike-aimd-free-clock", |b| {
        b.iter(|| black_box(&aimd).try_enter(&still).unwrap().success());
    });
    let gate = Gate::new(64);
    group.bench_function("gate", |b| {
        b.iter(|| drop(black_box(black_box(&gate).try_enter())));
    });
    group.finish();
}

criterion_group!(benches, permit_cycle);
criterion_main!(benches);
