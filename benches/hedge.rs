//! Hedging when no hedge fires, against awaiting the call directly. Ids are `<group>/<impl>`:
//!
//! - `hedge/no_hedge_fired/*`: one request whose (trivial) attempt answers on its first
//!   poll. `dike` runs it through a fixed-delay `Hedge` policy with a retry budget (a budget
//!   refund per answer); `direct` awaits the attempt itself. The difference is the cost of the
//!   policy on the common path: no sleep is created and nothing is allocated.
//! - `hedge/no_hedge_fired/dike_p95`: the same with a p95 hedge delay (one window lock to
//!   read the delay, one to record the latency).

use core::hint::black_box;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::hedge::Hedge;
use dike::retry::RetryBudget;
use dike::time::ManualTimer;

fn poll_once<F: core::future::Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("the attempt answers at once"),
    }
}

fn no_hedge_fired(c: &mut Criterion) {
    let mut group = c.benchmark_group("hedge/no_hedge_fired");
    let timer = ManualTimer::new();
    let budget = RetryBudget::new();
    let policy = Hedge::fixed(Duration::from_millis(15)).with_budget(&budget);
    group.bench_function("dike", |b| {
        b.iter(|| {
            poll_once(black_box(&policy).run(&timer, || async { Ok::<u32, ()>(black_box(1)) }))
        });
    });
    let p95 = Hedge::quantile(0.95, 100, Duration::from_millis(15))
        .unwrap()
        .with_budget(&budget);
    group.bench_function("dike_p95", |b| {
        b.iter(|| poll_once(black_box(&p95).run(&timer, || async { Ok::<u32, ()>(black_box(1)) })));
    });
    group.bench_function("direct", |b| {
        b.iter(|| poll_once(async { Ok::<u32, ()>(black_box(1)) }));
    });
    group.finish();
}

criterion_group!(benches, no_hedge_fired);
criterion_main!(benches);
