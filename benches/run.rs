//! run against futures' `buffer_unordered` / `buffered`, in the same run, on 100 000 ready
//! futures with at most 16 in flight and no rate (the cost of the machinery itself). Ids are
//! `run/<case>/<impl>`:
//!
//! - `run/unordered_100k_c16/*`: `amap` (stream in completion order) vs
//!   `buffer_unordered(16)`, both collected into a `Vec`.
//! - `run/ordered_100k_c16/*`: `run_all` (input order) vs `buffered(16)` collected.
//!
//! Each future is `async move { i }` (ready on its first poll). Both sides are driven by the
//! same minimal executor loop (poll with a no-op waker until ready; both yield now and then
//! after waking themselves), so no runtime cost is in the figures.

use core::hint::black_box;

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use criterion::{Criterion, criterion_group, criterion_main};
use dike::run::{Limits, amap, run_all};
use futures_util::{StreamExt, stream};

/// Polls `fut` until it is ready (it only yields after waking itself).
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

const N: u64 = 100_000;
const C: usize = 16;

fn unordered(c: &mut Criterion) {
    let mut group = c.benchmark_group("run/unordered_100k_c16");
    group.bench_function("dike", |b| {
        b.iter(|| {
            let limits = Limits::new().max_at_once(C).unwrap();
            let out: Vec<u64> =
                block_on(amap(|i| async move { i }, 0..black_box(N), limits).collect());
            black_box(out)
        });
    });
    group.bench_function("buffer_unordered", |b| {
        b.iter(|| {
            let out: Vec<u64> = block_on(
                stream::iter(0..black_box(N))
                    .map(|i| async move { i })
                    .buffer_unordered(C)
                    .collect(),
            );
            black_box(out)
        });
    });
    group.finish();
}

fn ordered(c: &mut Criterion) {
    let mut group = c.benchmark_group("run/ordered_100k_c16");
    group.bench_function("dike", |b| {
        b.iter(|| {
            let limits = Limits::new().max_at_once(C).unwrap();
            let out = block_on(run_all((0..black_box(N)).map(|i| async move { i }), limits));
            black_box(out)
        });
    });
    group.bench_function("buffered", |b| {
        b.iter(|| {
            let out: Vec<u64> = block_on(
                stream::iter(0..black_box(N))
                    .map(|i| async move { i })
                    .buffered(C)
                    .collect(),
            );
            black_box(out)
        });
    });
    group.finish();
}

criterion_group!(benches, unordered, ordered);
criterion_main!(benches);
