//! Throttle vs governor, both reading the std monotonic clock (`std::time::Instant`): ids
//! `dike` and `governor`. For reference, both again on governor's default clock (quanta, a
//! TSC read, much cheaper than `Instant::now` on most machines): `dike-quanta` and
//! `governor-quanta`.
//!
//! - `throttle/allowed/*`: a generous quota (10⁹ per second, burst 10⁶), so every check is
//!   admitted: clock read + compare-and-swap.
//! - `throttle/denied/*`: an exhausted quota (1 per hour), so every check is refused: clock
//!   read + load, and the refusal's "ready at".
//!
//! - `throttle/waiters_100/*`: 100 tasks on a tokio current-thread runtime take 10 slots each
//!   (1 000 in total) from a fresh throttle of 100 000 per second, burst 100, each waiting
//!   with its library's waiting call: dike's `acquire` on `TokioTimer`, governor's
//!   `until_ready` (futures-timer). Demand far exceeds the rate, so this measures the waiting
//!   machinery: dike wakes the head of its FIFO line only, governor every waiter whose own
//!   delay ends.
//!
//! `cargo bench --all-features --bench throttle -- --output-format bencher`

use core::future::pending;
use core::hint::black_box;
use core::num::NonZeroU32;
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::throttle::{Quota, Throttle};
use dike::time::{Timer, TokioTimer, timer_fn};
use governor::clock::{Clock, MonotonicClock, QuantaClock, Reference};
use governor::{Quota as GovernorQuota, RateLimiter};

const RATE: u32 = 1_000_000_000;
const BURST: u32 = 1_000_000;

/// dike on the same clock governor's `MonotonicClock` reads.
fn std_timer() -> impl Timer {
    let origin = Instant::now();
    timer_fn(move || origin.elapsed(), |_| pending::<()>())
}

/// dike on governor's default clock.
fn quanta_timer() -> impl Timer {
    let clock = QuantaClock::default();
    let origin = clock.now();
    timer_fn(
        move || Duration::from(clock.now().duration_since(origin)),
        |_| pending::<()>(),
    )
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

fn allowed(c: &mut Criterion) {
    let mut group = c.benchmark_group("throttle/allowed");

    let timer = std_timer();
    let throttle = Throttle::new(Quota::per_second(RATE).with_burst(BURST)).unwrap();
    group.bench_function("dike", |b| {
        b.iter(|| black_box(throttle.try_acquire(&timer)).unwrap());
    });

    let limiter = RateLimiter::direct_with_clock(
        GovernorQuota::per_second(nonzero(RATE)).allow_burst(nonzero(BURST)),
        MonotonicClock,
    );
    group.bench_function("governor", |b| {
        b.iter(|| black_box(limiter.check()).unwrap());
    });

    let timer = quanta_timer();
    let throttle = Throttle::new(Quota::per_second(RATE).with_burst(BURST)).unwrap();
    group.bench_function("dike-quanta", |b| {
        b.iter(|| black_box(throttle.try_acquire(&timer)).unwrap());
    });

    let limiter = RateLimiter::direct_with_clock(
        GovernorQuota::per_second(nonzero(RATE)).allow_burst(nonzero(BURST)),
        QuantaClock::default(),
    );
    group.bench_function("governor-quanta", |b| {
        b.iter(|| black_box(limiter.check()).unwrap());
    });
    group.finish();
}

fn denied(c: &mut Criterion) {
    let mut group = c.benchmark_group("throttle/denied");

    let timer = std_timer();
    let throttle =
        Throttle::new(Quota::per_second(1).with_period(Duration::from_secs(3_600))).unwrap();
    throttle.try_acquire(&timer).unwrap();
    group.bench_function("dike", |b| {
        b.iter(|| black_box(throttle.try_acquire(&timer)).unwrap_err());
    });

    let limiter = RateLimiter::direct_with_clock(
        GovernorQuota::with_period(Duration::from_secs(3_600)).unwrap(),
        MonotonicClock,
    );
    limiter.check().unwrap();
    group.bench_function("governor", |b| {
        b.iter(|| black_box(limiter.check()).unwrap_err());
    });

    let timer = quanta_timer();
    let throttle =
        Throttle::new(Quota::per_second(1).with_period(Duration::from_secs(3_600))).unwrap();
    throttle.try_acquire(&timer).unwrap();
    group.bench_function("dike-quanta", |b| {
        b.iter(|| black_box(throttle.try_acquire(&timer)).unwrap_err());
    });

    let limiter = RateLimiter::direct_with_clock(
        GovernorQuota::with_period(Duration::from_secs(3_600)).unwrap(),
        QuantaClock::default(),
    );
    limiter.check().unwrap();
    group.bench_function("governor-quanta", |b| {
        b.iter(|| black_box(limiter.check()).unwrap_err());
    });
    group.finish();
}

const WAITERS: usize = 100;
const SLOTS_EACH: usize = 10;
const WAIT_RATE: u32 = 100_000;
const WAIT_BURST: u32 = 100;

fn waiters_100(c: &mut Criterion) {
    let mut group = c.benchmark_group("throttle/waiters_100");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    group.bench_function("dike", |b| {
        b.to_async(&rt).iter(|| async {
            let quota = Quota::per_second(WAIT_RATE).with_burst(WAIT_BURST);
            let throttle = Arc::new(Throttle::new(quota).unwrap());
            let tasks: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let throttle = throttle.clone();
                    tokio::spawn(async move {
                        for _ in 0..SLOTS_EACH {
                            throttle.acquire(TokioTimer::new()).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    });

    group.bench_function("governor", |b| {
        b.to_async(&rt).iter(|| async {
            let quota =
                GovernorQuota::per_second(nonzero(WAIT_RATE)).allow_burst(nonzero(WAIT_BURST));
            let limiter = Arc::new(RateLimiter::direct(quota));
            let tasks: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let limiter = limiter.clone();
                    tokio::spawn(async move {
                        for _ in 0..SLOTS_EACH {
                            limiter.until_ready().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, allowed, denied, waiters_100);
criterion_main!(benches);
