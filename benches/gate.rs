//! Gate against the semaphores a user would otherwise pick: tokio's and async-lock's, in the
//! same run. Ids are `<group>/<impl>`:
//!
//! - `gate/try_enter/*`: try to enter and release at once, one task.
//! - `gate/enter/*`: an uncontended waiting entry (create the future, poll it once, it is
//!   ready) and release.
//! - `gate/contended/*`: 64 tasks × 1000 enter / yield / exit through 4 permits on a tokio
//!   multi-thread runtime with 2 workers; the same work per iteration for every impl.
//! - `gate/cancel_storm_100k/*`: 100 000 waiters queued behind a held permit, then dropped
//!   from the middle of the queue outwards (a storm of client disconnects). Only the drops are
//!   timed; every waiter is boxed for every impl.

use core::future::Future;
use core::hint::black_box;
use core::pin::Pin;
use core::task::{Context, Waker};
use std::time::{Duration, Instant};

extern crate alloc;
use alloc::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::gate::Gate;
use futures_util::FutureExt;

const TASKS: usize = 64;
const ROUNDS: usize = 1000;
const PERMITS: usize = 4;

fn try_enter(c: &mut Criterion) {
    let mut group = c.benchmark_group("gate/try_enter");
    let gate = Gate::new(PERMITS);
    group.bench_function("dike", |b| {
        b.iter(|| drop(black_box(black_box(&gate).try_enter())));
    });
    let sem = tokio::sync::Semaphore::new(PERMITS);
    group.bench_function("tokio", |b| {
        b.iter(|| drop(black_box(black_box(&sem).try_acquire())));
    });
    let sem = async_lock::Semaphore::new(PERMITS);
    group.bench_function("async-lock", |b| {
        b.iter(|| drop(black_box(black_box(&sem).try_acquire())));
    });
    group.finish();
}

fn enter(c: &mut Criterion) {
    let mut group = c.benchmark_group("gate/enter");
    let gate = Gate::new(PERMITS);
    group.bench_function("dike", |b| {
        b.iter(|| drop(black_box(black_box(&gate).enter().now_or_never())));
    });
    let sem = tokio::sync::Semaphore::new(PERMITS);
    group.bench_function("tokio", |b| {
        b.iter(|| drop(black_box(black_box(&sem).acquire().now_or_never())));
    });
    let sem = async_lock::Semaphore::new(PERMITS);
    group.bench_function("async-lock", |b| {
        b.iter(|| drop(black_box(black_box(&sem).acquire().now_or_never())));
    });
    group.finish();
}

/// Runs `TASKS` tasks of `ROUNDS` enter / yield / exit each and waits for all of them.
macro_rules! contended {
    ($rt:expr, $limiter:expr, |$l:ident| $enter:expr) => {{
        let limiter = $limiter;
        $rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let $l = Arc::clone(&limiter);
                    tokio::spawn(async move {
                        for _ in 0..ROUNDS {
                            let permit = $enter;
                            tokio::task::yield_now().await;
                            drop(permit);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    }};
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("gate/contended");
    group.sample_size(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let gate = Arc::new(Gate::new(PERMITS));
    group.bench_function("dike", |b| {
        b.iter(|| contended!(rt, &gate, |g| g.enter().await.unwrap()));
    });
    let sem = Arc::new(tokio::sync::Semaphore::new(PERMITS));
    group.bench_function("tokio", |b| {
        b.iter(|| contended!(rt, &sem, |s| s.acquire().await.unwrap()));
    });
    let sem = Arc::new(async_lock::Semaphore::new(PERMITS));
    group.bench_function("async-lock", |b| {
        b.iter(|| contended!(rt, &sem, |s| s.acquire().await));
    });
    group.finish();
}

const STORM: usize = 100_000;

/// The order of a storm: the middle index first, then alternately one step further out on
/// each side.
fn middle_outwards(n: usize) -> Vec<usize> {
    let mid = n / 2;
    let mut order = Vec::with_capacity(n);
    order.push(mid);
    for step in 1..=mid {
        if let Some(i) = mid.checked_sub(step) {
            order.push(i);
        }
        if mid + step < n {
            order.push(mid + step);
        }
    }
    debug_assert_eq!(order.len(), n);
    order
}

/// Queues `STORM` waiters made by `make` (each polled once, so it waits), then times dropping
/// them in `order`.
fn storm<F: Future>(order: &[usize], mut make: impl FnMut() -> F) -> Duration {
    let mut cx = Context::from_waker(Waker::noop());
    let mut waiters: Vec<Option<Pin<Box<F>>>> = (0..STORM)
        .map(|_| {
            let mut fut = Box::pin(make());
            assert!(
                fut.as_mut().poll(&mut cx).is_pending(),
                "the permit is held"
            );
            Some(fut)
        })
        .collect();
    let start = Instant::now();
    for &i in order {
        drop(black_box(waiters[i].take()));
    }
    start.elapsed()
}

fn cancel_storm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gate/cancel_storm_100k");
    group.sample_size(10);
    let order = middle_outwards(STORM);
    let gate = Gate::new(1);
    let _held = gate.try_enter().unwrap();
    group.bench_function("dike", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| storm(&order, || gate.enter())).sum());
    });
    let sem = tokio::sync::Semaphore::new(1);
    let _held = sem.try_acquire().unwrap();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| storm(&order, || sem.acquire())).sum());
    });
    group.finish();
}

criterion_group!(benches, try_enter, enter, contended, cancel_storm);
criterion_main!(benches);
