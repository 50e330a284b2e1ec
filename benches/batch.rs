//! Batcher against the batcher a tokio user writes by hand: an mpsc channel to a spawned
//! worker that collects up to 64 rows (or waits `max_wait` for more), calls the batch function
//! and answers each caller through a oneshot. Ids are `batch/<case>/<impl>`:
//!
//! - `batch/100k_b64/*`: 100 000 single-row calls, all issued at once from one task
//!   (`join_all`) on a tokio current-thread runtime; target 64 rows, `max_wait` 1 ms; the
//!   same batch function (double every row) for both.

use core::convert::Infallible;
use core::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::batch::{BatchConfig, Batcher};
use dike::time::TokioTimer;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

const CALLS: u64 = 100_000;
const TARGET: usize = 64;
const MAX_WAIT: Duration = Duration::from_millis(1);

async fn model(rows: Vec<u64>) -> Result<Vec<u64>, Infallible> {
    Ok(rows.iter().map(|x| x * 2).collect())
}

async fn dike_100k() {
    let config = BatchConfig::new(TARGET, MAX_WAIT);
    let batcher = Batcher::new(TokioTimer::new(), config, model).unwrap();
    let results = join_all((0..CALLS).map(|i| batcher.call_one(i))).await;
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, r)| *r == Ok(2 * i as u64))
    );
}

/// The usual hand-written batcher.
async fn mpsc_100k() {
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
    let results = join_all((0..CALLS).map(call)).await;
    assert!(results.iter().enumerate().all(|(i, r)| *r == 2 * i as u64));
    drop(tx);
    worker.await.unwrap();
}

fn batch_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch/100k_b64");
    group.sample_size(10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    group.bench_function("dike", |b| b.iter(|| rt.block_on(dike_100k())));
    group.bench_function("tokio-mpsc", |b| b.iter(|| rt.block_on(mpsc_100k())));
    group.finish();
}

criterion_group!(benches, batch_100k);
criterion_main!(benches);
