//! Why GCRA: the usual hand-written limiter (`INCR` + `EXPIRE` on a key per second) admits up
//! to twice its limit around a window edge; RedisThrottle keeps `rate·W/period + burst`.
// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike_redis::{Connection, RedisThrottle};
use support::{Node, serial};

const LIMIT: u64 = 10;

async fn fixed_window(conn: &mut redis::aio::MultiplexedConnection) -> bool {
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
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
    count <= LIMIT
}

/// Sleeps until 0.85 s into the current wall-clock second (the fixed window's key).
async fn late_in_a_second() {
    let frac = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    let target = if frac < 850 { 850 - frac } else { 1850 - frac };
    tokio::time::sleep(Duration::from_millis(u64::from(target))).await;
}

#[tokio::test]
async fn fixed_window_doubles_at_the_edge_gcra_does_not() {
    let _serial = serial();
    let node = Node::start();
    let window = Duration::from_millis(300);
    let bound = LIMIT as f64 * window.as_secs_f64() + LIMIT as f64; // rate·W + burst = 13

    let client = redis::Client::open(node.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    late_in_a_second().await;
    let start = Instant::now();
    let mut fixed = 0;
    while start.elapsed() < window {
        fixed += u64::from(fixed_window(&mut raw).await);
    }

    let conn = Connection::open(&node.url()).unwrap();
    let throttle = RedisThrottle::new(
        &conn,
        "edge",
        Quota::per_second(LIMIT as u32).with_burst(LIMIT as u32),
    )
    .unwrap();
    let timer = TokioTimer::new();
    late_in_a_second().await;
    let start = Instant::now();
    let mut gcra = 0;
    while start.elapsed() < window {
        gcra += u64::from(throttle.try_acquire(&timer).await.is_ok());
    }
    assert!(
        fixed as f64 > bound,
        "fixed window admitted {fixed} in {window:?}"
    );
    assert_eq!(fixed, 2 * LIMIT, "two full windows across the edge");
    assert!(
        gcra as f64 <= bound,
        "GCRA admitted {gcra} in {window:?}, bound {bound}"
    );
    assert!(gcra >= LIMIT + 2, "GCRA admitted only {gcra}");
}
