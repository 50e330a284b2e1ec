//! The limiters on smol (redis-rs' smol runtime, `AsyncIoTimer`) and on connections the
//! application made itself.
// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::time::Duration;

use dike::throttle::Quota;
use dike::time::{AsyncIoTimer, TokioTimer};
use dike_redis::{Admission, Connection, RedisGate, RedisThrottle, ThrottleError};
use support::{Node, serial};

#[test]
fn throttle_and_gate_on_smol() {
    let _serial = serial();
    let node = Node::start();
    smol::block_on(async {
        let conn = Connection::open(&node.url()).unwrap();
        let timer = AsyncIoTimer::new();
        let throttle = RedisThrottle::new(&conn, "smol", Quota::per_second(20)).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.acquire(&timer).await.unwrap(), Admission::Checked);
        }
        assert!(start.elapsed() >= Duration::from_millis(95));
        assert!(matches!(
            throttle.try_acquire(&timer).await,
            Err(ThrottleError::RateLimited(_))
        ));

        let gate = RedisGate::new(&conn, "smol", 1, Duration::from_secs(5)).unwrap();
        let held = gate.enter(&timer).await.unwrap();
        let (waited, ()) = futures_util::join!(gate.enter(&timer), async {
            smol::Timer::after(Duration::from_millis(100)).await;
            held.release(&timer).await.unwrap();
        });
        waited.unwrap().release(&timer).await.unwrap();
    });
}

#[tokio::test]
async fn an_existing_connection_manager_and_client() {
    let _serial = serial();
    let node = Node::start();
    let client = redis::Client::open(node.url()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let conn = Connection::from_manager(manager, client);
    assert!(format!("{conn:?}").contains("existing manager"));
    let timer = TokioTimer::new();
    let throttle = RedisThrottle::new(&conn, "existing", Quota::per_second(5)).unwrap();
    throttle.try_acquire(&timer).await.unwrap();
    let gate = RedisGate::new(&conn, "existing", 1, Duration::from_secs(5)).unwrap();
    gate.enter(&timer)
        .await
        .unwrap()
        .release(&timer)
        .await
        .unwrap();
}
