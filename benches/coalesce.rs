//! Coalescer against async_singleflight, the crate a user would otherwise pick, in the same
//! run. Ids are `coalesce/<case>/<impl>`:
//!
//! - `coalesce/single_call/*`: one call, no contention: register, run a work that is ready
//!   at once, free the key.
//! - `coalesce/1000_waiters/*`: 1 000 calls for one key made at once in one task (joined with
//!   `join_all`); the work yields once, so every other call joins the first; all get the value.
//!
//! `single_call` polls each call once by hand (`now_or_never`: both complete on their first
//! poll, and tokio's locks need no runtime); `1000_waiters` runs on a tokio current-thread
//! runtime. Keys are `String`s looked up as `&str`; values are `u64`.

use core::future::Future;
use core::hint::black_box;
use core::pin::Pin;
use core::task::{Context, Poll};

use async_singleflight::Group;
use criterion::{Criterion, criterion_group};
use dike::coalesce::Coalescer;
use futures_util::FutureExt;
use futures_util::future::join_all;

const WAITERS: usize = 1000;

/// Pending once, then ready: in flight long enough for every other call to join it.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

async fn work() -> Result<u64, ()> {
    YieldOnce(false).await;
    Ok(42)
}

fn single_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("coalesce/single_call");
    let coalescer: Coalescer<String, u64, ()> = Coalescer::new();
    group.bench_function("dike", |b| {
        b.iter(|| {
            let run = coalescer.run(black_box("users/42"), || async { Ok(42) });
            black_box(run.now_or_never().unwrap().into_result().unwrap())
        });
    });
    let group_sf: Group<String, u64, ()> = Group::new();
    group.bench_function("async_singleflight", |b| {
        b.iter(|| {
            let work = group_sf.work(black_box("users/42"), async { Ok(42) });
            black_box(work.now_or_never().unwrap().unwrap())
        });
    });
    group.finish();
}

fn thousand_waiters(c: &mut Criterion) {
    let mut group = c.benchmark_group("coalesce/1000_waiters");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let coalescer: Coalescer<String, u64, ()> = Coalescer::new();
    group.bench_function("dike", |b| {
        b.to_async(&rt).iter(|| async {
            let runs = (0..WAITERS).map(|_| coalescer.run("users/42", work));
            let outcomes = join_all(runs).await;
            assert!(outcomes.iter().all(|o| o.result() == &Ok(42)));
            black_box(outcomes)
        });
    });
    let group_sf: Group<String, u64, ()> = Group::new();
    group.bench_function("async_singleflight", |b| {
        b.to_async(&rt).iter(|| async {
            let runs = (0..WAITERS).map(|_| group_sf.work("users/42", work()));
            let values = join_all(runs).await;
            assert!(values.iter().all(|v| v == &Ok(42)));
            black_box(values)
        });
    });
    group.finish();
}

criterion_group!(benches, single_call, thousand_waiters);

/// Measurement helper, not a case: with `COALESCE_CALLS=<n>` (and optionally
/// `COALESCE_IMPL=async_singleflight`), makes `n` `single_call` calls exactly as the case does
/// and exits, for instruction counts (`valgrind --tool=callgrind`: run with two values of `n`
/// and divide the difference).
fn calls_only() -> bool {
    let Some(n) = std::env::var("COALESCE_CALLS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    if std::env::var("COALESCE_IMPL").as_deref() == Ok("async_singleflight") {
        let group_sf: Group<String, u64, ()> = Group::new();
        for _ in 0..n {
            let work = group_sf.work(black_box("users/42"), async { Ok(42) });
            black_box(work.now_or_never().unwrap().unwrap());
        }
    } else {
        let coalescer: Coalescer<String, u64, ()> = Coalescer::new();
        for _ in 0..n {
            let run = coalescer.run(black_box("users/42"), || async { Ok(42) });
            black_box(run.now_or_never().unwrap().into_result().unwrap());
        }
    }
    true
}

fn main() {
    if calls_only() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
