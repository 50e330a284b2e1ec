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
    let window = Duration::from_millis(400);
    let bound = LIMIT as f64 * window.as_secs_f64() + LIMIT as f64; // rate·W + burst = 14

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
    assert!(fixed <= 2 * LIMIT, "two windows across the edge at most");
    assert!(
        gcra as f64 <= bound,
        "GCRA admitted {gcra} in {window:?}, bound {bound}"
    );
    assert!(gcra >= LIMIT + 2, "GCRA admitted only {gcra}");
}

/// The GCRA script with the client's clock in place of the server's `TIME`.
const CLIENT_CLOCK_GCRA: &str = r"
local now = tonumber(ARGV[3])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if now < allow_at then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], string.format('%.17g', tat + interval))
return 0
";

/// The fleet test's setup (16 clients, clocks 1 + 0.25·k too fast) against a limiter that
/// trusts client clocks: it breaks the bound that RedisThrottle keeps (tests/throttle.rs). This
/// shows the drifting-clock test can tell the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_clock_limiter_fails_the_drifting_fleet_test() {
    use dike::time::Timer;
    let _serial = serial();
    let node = Node::start();
    let (rate, burst) = (200.0, 10.0);
    let interval_us = 1e6 / rate;
    let run = Duration::from_secs(2);
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..16 {
        let client = redis::Client::open(node.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let timer = support::DriftTimer::new(1.0 + 0.25 * k as f64);
        tasks.push(tokio::spawn(async move {
            let script = redis::Script::new(CLIENT_CLOCK_GCRA);
            let mut admitted = 0u32;
            while begin.elapsed() < run {
                let now_us = timer.now().as_micros() as f64;
                let wait: i64 = script
                    .key("client-clock")
                    .arg(interval_us)
                    .arg(interval_us * burst)
                    .arg(now_us)
                    .invoke_async(&mut conn)
                    .await
                    .unwrap();
                if wait == 0 {
                    admitted += 1;
                } else {
                    timer.sleep(Duration::from_micros(wait as u64)).await;
                }
            }
            admitted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let bound = rate * run.as_secs_f64() + burst;
    assert!(
        f64::from(total) > 1.5 * bound,
        "client clocks kept {total} within {bound}?"
    );
}
