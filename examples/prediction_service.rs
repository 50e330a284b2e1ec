//! A prediction service, as in Python dike's example: an HTTP endpoint whose requests go
//! through a `Gate` (full → 503 at once) into a `Batcher` in front of a model that is much
//! cheaper per row on a batch. A load generator then fires concurrent requests over 127.0.0.1
//! and prints the batch sizes the model saw and the latency percentiles; then it exits.
//!
//! Run it with `cargo run --release --example prediction_service --features tokio`.
//!
//! The request body is one row of features, `"x0,x1,x2,x3"`; the response body is the
//! prediction. The model costs 2 ms per call plus 10 µs per row, so batching 32 rows costs
//! 2.3 ms instead of 64 ms one by one.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use dike::batch::{BatchConfig, BatchError, Batcher};
use dike::gate::Gate;
use dike::time::TokioTimer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One row of features.
type Features = [f32; 4];

/// Batch sizes the model saw: size → how many batches.
type Histogram = Arc<Mutex<BTreeMap<usize, usize>>>;

const CLIENTS: usize = 96;
const REQUESTS_PER_CLIENT: usize = 100;
const MAX_IN_FLIGHT: usize = 80;

/// The model: a linear function, at the cost of a model call (fixed overhead plus a little
/// per row), run on a whole batch at once.
async fn model(rows: Vec<Features>, histogram: Histogram) -> Result<Vec<f32>, Infallible> {
    *histogram.lock().unwrap().entry(rows.len()).or_default() += 1;
    let cost = Duration::from_millis(2) + Duration::from_micros(10) * rows.len() as u32;
    tokio::time::sleep(cost).await;
    let weights = [0.5, -1.0, 2.0, 0.25];
    Ok(rows
        .iter()
        .map(|x| x.iter().zip(weights).map(|(x, w)| x * w).sum())
        .collect())
}

fn parse(body: &str) -> Option<Features> {
    let mut row = [0.0; 4];
    let mut fields = body.trim().split(',');
    for x in &mut row {
        *x = fields.next()?.trim().parse().ok()?;
    }
    fields.next().is_none().then_some(row)
}

#[tokio::main]
async fn main() {
    let histogram = Histogram::default();
    let config = BatchConfig::new(32, Duration::from_millis(2))
        .with_max_processing_time(Duration::from_secs(1))
        .with_max_concurrent_batches(4)
        .with_max_queued_rows(1024);
    let model_histogram = Arc::clone(&histogram);
    let batcher = Arc::new(
        Batcher::new(TokioTimer::new(), config, move |rows: Vec<Features>| {
            model(rows, Arc::clone(&model_histogram))
        })
        .expect("a valid batch config"),
    );
    let gate = Arc::new(Gate::new(MAX_IN_FLIGHT));

    let app = Router::new().route(
        "/predict",
        post({
            let (batcher, gate) = (Arc::clone(&batcher), Arc::clone(&gate));
            move |body: String| {
                let (batcher, gate) = (Arc::clone(&batcher), Arc::clone(&gate));
                async move {
                    // Shed load at once when too many requests are in flight.
                    let Ok(_permit) = gate.try_enter() else {
                        return (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string());
                    };
                    let Some(row) = parse(&body) else {
                        return (StatusCode::BAD_REQUEST, "expected x0,x1,x2,x3".to_string());
                    };
                    match batcher.call_one(row).await {
                        Ok(y) => (StatusCode::OK, format!("{y}")),
                        Err(err @ BatchError::QueueFull { .. }) => {
                            (StatusCode::SERVICE_UNAVAILABLE, err.to_string())
                        }
                        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
                    }
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    println!("serving /predict on http://{addr}");
    println!(
        "load: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests; gate {MAX_IN_FLIGHT}; \
         batches of 32 rows or 2 ms"
    );

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(addr, c)))
        .collect();
    let mut latencies = Vec::new();
    let (mut ok, mut busy, mut failed) = (0, 0, 0);
    for client in clients {
        for (status, latency) in client.await.unwrap() {
            match status {
                200 => {
                    ok += 1;
                    latencies.push(latency);
                }
                503 => busy += 1,
                _ => failed += 1,
            }
        }
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    server.await.unwrap();

    let total = ok + busy + failed;
    println!(
        "\n{total} requests in {elapsed:.2?} ({:.0} req/s): {ok} ok, {busy} turned away with \
         503 by the gate, {failed} failed",
        total as f64 / elapsed.as_secs_f64()
    );
    let stats = batcher.stats();
    println!(
        "model calls: {} for {} rows: mean batch {:.1}, max {}; sealed by size {}, by time {}",
        stats.batches,
        stats.rows,
        stats.mean_batch_size(),
        stats.max_batch_size,
        stats.sealed_by_size,
        stats.sealed_by_time
    );
    println!("batch sizes the model saw:");
    let histogram = histogram.lock().unwrap();
    for (low, high) in [(1, 8), (9, 16), (17, 24), (25, 31), (32, 32)] {
        let count: usize = histogram.range(low..=high).map(|(_, n)| n).sum();
        let label = if low == high {
            format!("{low}")
        } else {
            format!("{low}-{high}")
        };
        println!(
            "  {label:>6} rows: {count:>4} batches {}",
            "#".repeat(count.div_ceil(4))
        );
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "latency of ok requests: p50 {:.2?}, p95 {:.2?}, p99 {:.2?}, max {:.2?}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        latencies.last().unwrap()
    );
    assert_eq!(failed, 0);
    assert_eq!(stats.rows, ok);
    assert!(stats.mean_batch_size() > 1.0, "batching happened");
}

/// A tiny HTTP/1.1 client on one keep-alive connection: sends its requests one after the
/// other and returns `(status, latency)` for each.
async fn client(addr: SocketAddr, id: usize) -> Vec<(u16, Duration)> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut results = Vec::with_capacity(REQUESTS_PER_CLIENT);
    for i in 0..REQUESTS_PER_CLIENT {
        let body = format!("{},{},1.5,-2", id, i);
        let request = format!(
            "POST /predict HTTP/1.1\r\nhost: {addr}\r\ncontent-type: text/plain\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        write.write_all(request.as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut read).await;
        let latency = sent.elapsed();
        if status == 200 {
            let expected = 0.5 * id as f32 - i as f32 + 3.0 - 0.5;
            let y: f32 = body.parse().unwrap();
            assert!((y - expected).abs() < 1e-3, "{y} != {expected}");
        }
        results.push((status, latency));
        if status == 503 {
            // Turned away: back off a little before the next request.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    results
}

/// Reads one response: the status code and the body (by `content-length`).
async fn read_response(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> (u16, String) {
    let mut line = String::new();
    read.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        read.read_line(&mut line).await.unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}
