//! Round trips against a local redis-server started by the bench: `redis/throttle_try/{dike,
//! fixed_window}`, `redis/keyed_throttle_try/dike` (a `RedisKeyedThrottle` over 10 000 keys
//! taken in turn) and `redis/gate_enter_release/dike`, each at 1 and 16 connections (16
//! concurrent operations, one per connection, per iteration). After criterion, with
//! `cargo bench`, a latency pass prints ops/s and p99 per operation.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike_redis::{Connection, RedisGate, RedisKeyedThrottle, RedisThrottle};
use futures_util::future::join_all;
use support::Node;

struct Setup {
    throttles: Vec<RedisThrottle>,
    keyed: Vec<RedisKeyedThrottle<u64>>,
    next_key: AtomicU64,
    gates: Vec<RedisGate>,
    raw: Vec<redis::aio::MultiplexedConnection>,
}

async fn setup(node: &Node, conns: usize) -> Setup {
    let mut s = Setup {
        throttles: Vec::new(),
        keyed: Vec::new(),
        next_key: AtomicU64::new(0),
        gates: Vec::new(),
        raw: Vec::new(),
    };
    for _ in 0..conns {
        let conn = Connection::open(&node.url()).unwrap();
        // Never refuses: each op is one admitted round trip (a SET on the server).
        let quota = Quota::per_second(1_000_000_000).with_burst(1_000_000);
        s.throttles
            .push(RedisThrottle::new(&conn, "bench", quota).unwrap());
        s.keyed
            .push(RedisKeyedThrottle::new(&conn, "bench", quota).unwrap());
        s.gates
            .push(RedisGate::new(&conn, "bench", 1000, Duration::from_secs(10)).unwrap());
        let client = redis::Client::open(node.url()).unwrap();
        s.raw
            .push(client.get_multiplexed_async_connection().await.unwrap());
    }
    s
}

/// The usual hand-written limiter: `MULTI; INCR k:<second>; EXPIRE k:<second> 2; EXEC` (a fixed
/// 1 s window, keyed by the client's wall-clock second).
async fn fixed_window(conn: &mut redis::aio::MultiplexedConnection) -> bool {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = format!("fixed:{second}");
    let (count,): (u64,) = redis::pipe()
        .atomic()
        .incr(&key, 1)
        .expire(&key, 2)
        .ignore()
        .query_async(conn)
        .await
        .unwrap();
    count <= 1_000_000_000
}

async fn op(s: &Setup, which: &str, i: usize) {
    let timer = TokioTimer::new();
    match which {
        "throttle_try/dike" => {
            s.throttles[i].try_acquire(&timer).await.unwrap();
        }
        "keyed_throttle_try/dike" => {
            let key = s.next_key.fetch_add(1, Ordering::Relaxed) % 10_000;
            s.keyed[i].try_acquire(&timer, &key).await.unwrap();
        }
        "throttle_try/fixed_window" => {
            assert!(fixed_window(&mut s.raw[i].clone()).await);
        }
        "gate_enter_release/dike" => {
            let permit = s.gates[i].enter(&timer).await.unwrap();
            permit.release(&timer).await.unwrap();
        }
        _ => unreachable!(),
    }
}

async fn round(s: &Setup, which: &str, conns: usize) {
    join_all((0..conns).map(|i| op(s, which, i))).await;
}

const OPS: [&str; 4] = [
    "throttle_try/dike",
    "throttle_try/fixed_window",
    "keyed_throttle_try/dike",
    "gate_enter_release/dike",
];

fn benches(c: &mut Criterion) {
    let node = Node::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for conns in [1, 16] {
        let s = rt.block_on(setup(&node, conns));
        for which in OPS {
            let (group, name) = which.split_once('/').unwrap();
            let mut g = c.benchmark_group(format!("redis/{group}"));
            g.throughput(Throughput::Elements(conns as u64));
            g.bench_with_input(BenchmarkId::new(name, conns), &conns, |b, &conns| {
                b.to_async(&rt).iter(|| round(&s, which, conns));
            });
            g.finish();
        }
    }
}

/// ops/s and p99 latency of one operation, over `secs` seconds per case.
fn latency_pass(secs: f64) {
    let node = Node::start();
    let version = node.cli(&["INFO", "server"]);
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?");
    println!("\nredis {version}; ops/s and p99 per operation");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for conns in [1, 16] {
        let s = rt.block_on(setup(&node, conns));
        for which in OPS {
            let (ops, mut lat) = rt.block_on(async {
                let start = Instant::now();
                let lat = join_all((0..conns).map(|i| {
                    let s = &s;
                    async move {
                        let mut lat = Vec::new();
                        while start.elapsed().as_secs_f64() < secs {
                            let t = Instant::now();
                            op(s, which, i).await;
                            lat.push(t.elapsed());
                        }
                        lat
                    }
                }))
                .await;
                let lat: Vec<Duration> = lat.into_iter().flatten().collect();
                (lat.len() as f64 / start.elapsed().as_secs_f64(), lat)
            });
            lat.sort();
            let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
            println!("redis/{which}/{conns}: {ops:.0} ops/s, p99 {p99:?}");
        }
    }
}

criterion_group!(group, benches);

fn main() {
    group();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    if std::env::args().any(|a| a == "--bench") {
        latency_pass(3.0);
    }
}
