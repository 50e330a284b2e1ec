//! Retry overhead: dike's retry loop against backon's, both on a tokio current-thread runtime
//! with their tokio timer, and a direct call as the floor.
//!
//! Run: `cargo bench --features tokio --bench retry`.

use core::hint::black_box;
use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use backon::{ConstantBuilder, ExponentialBuilder, Retryable};
use criterion::{Criterion, criterion_group, criterion_main};
use dike::retry::Retry;
use dike::time::TokioTimer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

async fn ok() -> Result<u32, &'static str> {
    Ok(black_box(1))
}

fn ok_first_try(c: &mut Criterion) {
    let rt = runtime();
    let timer = rt.block_on(async { TokioTimer::new() });
    let mut group = c.benchmark_group("retry/ok_first_try");
    group.bench_function("dike", |b| {
        let policy = Retry::exponential(Duration::from_millis(10), 2.0)
            .expect("valid")
            .with_attempts(NonZeroU32::new(4).expect("valid"));
        b.to_async(&rt)
            .iter(|| async { policy.run(&timer, ok).await });
    });
    group.bench_function("backon", |b| {
        let builder = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(10))
            .with_factor(2.0)
            .with_max_times(3)
            .without_max_delay();
        b.to_async(&rt)
            .iter(|| async { ok.retry(builder).sleep(tokio::time::sleep).await });
    });
    group.bench_function("direct", |b| {
        b.to_async(&rt).iter(|| async { ok().await });
    });
    group.finish();
}

/// An operation that fails twice, then succeeds; `calls` is reset per iteration.
fn fail_twice(calls: &AtomicU32) -> impl FnMut() -> core::future::Ready<Result<u32, &'static str>> {
    calls.store(0, Ordering::Relaxed);
    move || {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        core::future::ready(if n < 2 { Err("flaky") } else { Ok(n) })
    }
}

fn fail_twice_zero_delay(c: &mut Criterion) {
    let rt = runtime();
    let timer = rt.block_on(async { TokioTimer::new() });
    let mut group = c.benchmark_group("retry/fail_twice_zero_delay");
    group.bench_function("dike", |b| {
        let policy = Retry::new().with_attempts(NonZeroU32::new(3).expect("valid"));
        let calls = AtomicU32::new(0);
        b.to_async(&rt)
            .iter(|| async { policy.run(&timer, fail_twice(&calls)).await });
    });
    group.bench_function("backon", |b| {
        let builder = ConstantBuilder::default()
            .with_delay(Duration::ZERO)
            .with_max_times(2);
        let calls = AtomicU32::new(0);
        b.to_async(&rt).iter(|| async {
            fail_twice(&calls)
                .retry(builder)
                .sleep(tokio::time::sleep)
                .await
        });
    });
    group.finish();
}

criterion_group!(benches, ok_first_try, fail_twice_zero_delay);
criterion_main!(benches);
