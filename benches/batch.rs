//! Batcher against the batcher a tokio user writes by hand: an mpsc channel to a spawned
//! worker that collects up to 64 rows (or waits `max_wait` for more), calls the batch function
//! and answers each caller through a oneshot. Ids are `batch/<case>/<impl>`:
//!
//! - `batch/100k_b64/*`: 100 000 single-row calls from 64 concurrent callers (each awaits
//!   its result before its next call, as request handlers do), on a tokio current-thread
//!   runtime; target 64 rows, `max_wait` 1 ms; the same batch function (double every row).
//! - `batch/100k_b64_at_once/*`: the same 100 000 calls issued all at once from one task
//!   (`join_all`): 100 000 futures alive together, so it mostly measures memory traffic.
//! - `batch/100k_b64/floor`: no real batcher, the least any batcher does in this harness: a
//!   single-threaded batch of 64 parked calls (wakers kept and woken by reference, no lock, no
//!   row or result moved) that the 64th call releases. Every batcher suspends each call but
//!   the one that fills the batch and wakes it once, so this bounds every design from below.

use core::convert::Infallible;
use core::time::Duration;

use criterion::{Criterion, criterion_group};
use dike::batch::{BatchConfig, Batcher};
use dike::time::TokioTimer;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

const CALLS: u64 = 100_000;
const CALLERS: u64 = 64;
const TARGET: usize = 64;
const MAX_WAIT: Duration = Duration::from_millis(1);

async fn model(rows: Vec<u64>) -> Result<Vec<u64>, Infallible> {
    Ok(rows.iter().map(|x| x * 2).collect())
}

/// `CALLS` calls of `call(i)`, either from `CALLERS` sequential callers or all at once.
async fn drive<F, Fut>(at_once: bool, call: F)
where
    F: Fn(u64) -> Fut,
    Fut: core::future::Future<Output = u64>,
{
    if at_once {
        let results = join_all((0..CALLS).map(&call)).await;
        assert!(results.iter().enumerate().all(|(i, r)| *r == 2 * i as u64));
    } else {
        let per_caller = CALLS / CALLERS;
        join_all((0..CALLERS).map(|c| {
            let call = &call;
            async move {
                for i in c * per_caller..(c + 1) * per_caller {
                    assert_eq!(call(i).await, 2 * i);
                }
            }
        }))
        .await;
    }
}

async fn dike_100k(at_once: bool) {
    let config = BatchConfig::new(TARGET, MAX_WAIT);
    let batcher = Batcher::new(TokioTimer::new(), config, model).unwrap();
    drive(at_once, |i| {
        let call = batcher.call_one(i);
        async move { call.await.unwrap() }
    })
    .await;
}

/// The usual hand-written batcher.
async fn mpsc_100k(at_once: bool) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, oneshot::Sender<u64>)>();
    let worker = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(TARGET);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            let deadline = tokio::time::Instant::now() + MAX_WAIT;
            while batch.len() < TARGET {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    _ => break,
                }
            }
            let (rows, replies): (Vec<u64>, Vec<oneshot::Sender<u64>>) = batch.drain(..).unzip();
            let results = model(rows).await.unwrap();
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
    });
    let call = |i: u64| {
        let tx = &tx;
        async move {
            let (reply, result) = oneshot::channel();
            tx.send((i, reply)).unwrap();
            result.await.unwrap()
        }
    };
    drive(at_once, call).await;
    drop(tx);
    worker.await.unwrap();
}

/// The least any batcher does in this harness, with no batching work at all: single-threaded
/// (no lock, no atomics of its own), each row's answer computed by its caller; a call parks
/// (keeping its waker, cloned only when the slot's task changed) until the call that fills the
/// batch wakes the others by reference.
#[derive(Default)]
struct Floor {
    wakers: core::cell::RefCell<Vec<core::task::Waker>>,
    parked: core::cell::Cell<usize>,
    sealed: core::cell::Cell<u64>,
}

struct FloorCall<'a> {
    floor: &'a Floor,
    row: u64,
    ticket: Option<u64>,
}

impl core::future::Future for FloorCall<'_> {
    type Output = u64;
    fn poll(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<u64> {
        let floor = self.floor;
        if let Some(batch) = self.ticket {
            if floor.sealed.get() > batch {
                return core::task::Poll::Ready(self.row * 2);
            }
            return core::task::Poll::Pending;
        }
        let parked = floor.parked.get();
        if parked + 1 == TARGET {
            floor.parked.set(0);
            floor.sealed.set(floor.sealed.get() + 1);
            for waker in floor.wakers.borrow()[..parked].iter() {
                waker.wake_by_ref();
            }
            return core::task::Poll::Ready(self.row * 2);
        }
        let mut wakers = floor.wakers.borrow_mut();
        match wakers.get_mut(parked) {
            Some(slot) if slot.will_wake(cx.waker()) => {}
            Some(slot) => *slot = cx.waker().clone(),
            None => wakers.push(cx.waker().clone()),
        }
        floor.parked.set(parked + 1);
        self.ticket = Some(floor.sealed.get());
        core::task::Poll::Pending
    }
}

async fn floor_100k(at_once: bool) {
    let floor = Floor::default();
    drive(at_once, |row| FloorCall {
        floor: &floor,
        row,
        ticket: None,
    })
    .await;
}

fn batch_100k(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for (name, at_once) in [("batch/100k_b64", false), ("batch/100k_b64_at_once", true)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.bench_function("dike", |b| b.iter(|| rt.block_on(dike_100k(at_once))));
        group.bench_function("tokio-mpsc", |b| b.iter(|| rt.block_on(mpsc_100k(at_once))));
        if !at_once {
            group.bench_function("floor", |b| b.iter(|| rt.block_on(floor_100k(at_once))));
        }
        group.finish();
    }
}

criterion_group!(benches, batch_100k);

/// `DIKE_BATCH_RUNS=<impl>:<n>` runs one harness of `batch/100k_b64` `n` times and exits (no
/// criterion), for `perf stat -e task-clock` (CPU time, steadier than wall time on a loaded
/// machine) or `perf record`; `<impl>` is `dike`, `tokio-mpsc` or `floor`.
fn main() {
    if let Ok(spec) = std::env::var("DIKE_BATCH_RUNS") {
        let (name, runs) = spec.split_once(':').expect("DIKE_BATCH_RUNS=<impl>:<n>");
        let runs: u32 = runs.parse().expect("a run count");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        for _ in 0..runs {
            match name {
                "dike" => rt.block_on(dike_100k(false)),
                "tokio-mpsc" => rt.block_on(mpsc_100k(false)),
                "floor" => rt.block_on(floor_100k(false)),
                _ => panic!("unknown impl {name}"),
            }
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
