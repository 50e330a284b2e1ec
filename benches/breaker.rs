//! Circuit breaker, closed, against failsafe-rs in the same run. Ids are `<group>/<impl>`:
//!
//! - `breaker/closed_call/*`: admit one call through a closed breaker, run a trivial
//!   successful operation, record the success. Both read a real monotonic clock (dike through
//!   a `timer_fn` over `std::time::Instant`, failsafe reads `Instant` itself).

use core::hint::black_box;
use core::time::Duration;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::breaker::{Breaker, CountWindow};
use dike::time::timer_fn;
use failsafe::CircuitBreaker;

fn closed_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker/closed_call");
    let origin = Instant::now();
    let timer = timer_fn(
        move || origin.elapsed(),
        |_: Duration| core::future::ready(()),
    );
    let breaker = Breaker::new(CountWindow::<100>::new());
    group.bench_function("dike", |b| {
        b.iter(|| {
            let call = black_box(&breaker).try_acquire(&timer).unwrap();
            let result: Result<u32, ()> = Ok(black_box(1));
            call.record(&result);
            black_box(result)
        });
    });
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe", |b| {
        b.iter(|| black_box(black_box(&failsafe).call(|| Ok::<u32, ()>(black_box(1)))));
    });
    group.finish();
}

criterion_group!(benches, closed_call);
criterion_main!(benches);
