//! Gate against the semaphores a user would otherwise pick: tokio's and async-lock's, in the
//! same run. Ids are `<group>/<impl>`:
//!
//! - `gate/try_enter/*`: try to enter and release at once, one task.
//! - `gate/enter/*`: an uncontended waiting entry (create the future, poll it once, it is
//!   ready) and release.
//! - `gate/contended/*`: 64 tasks × 1000 enter / yield / exit through 4 permits on a tokio
//!   multi-thread runtime with 2 workers; the same work per iteration for every impl.

use core::hint::black_box;

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

criterion_group!(benches, try_enter, enter, contended);
criterion_main!(benches);
