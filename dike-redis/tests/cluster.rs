//! Redis Cluster faults: a limiter's slot migrated to another master while the throttle and the
//! gate are in use (`ASK` during the move, `MOVED` after it). Always on a local 3-master
//! cluster (the other test files run on one when `DIKE_REDIS_CLUSTER=1`).

// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike_redis::{Connection, GateError, RedisGate, RedisThrottle, ThrottleError};
use support::{Cluster, Node, serial};

fn node_of<'a>(cluster: &'a Cluster, key: &str) -> (&'a Node, u64) {
    let slot: u64 = cluster.nodes[0]
        .cli(&["CLUSTER", "KEYSLOT", key])
        .parse()
        .unwrap();
    for node in &cluster.nodes {
        // The owner answers a key command without -MOVED.
        let reply = node.cli(&["EXISTS", key]);
        if !reply.contains("MOVED") {
            return (node, slot);
        }
    }
    panic!("no owner for {key}");
}

/// Moves `slot` from `from` to `to` the way `redis-cli --cluster reshard` does, pausing
/// between the steps so that clients see `ASK` and then `MOVED`.
fn migrate(cluster: &Cluster, slot: u64, from: &Node, to: &Node) {
    let slot = slot.to_string();
    let from_id = from.cli(&["CLUSTER", "MYID"]);
    let to_id = to.cli(&["CLUSTER", "MYID"]);
    assert_eq!(
        to.cli(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]),
        "OK"
    );
    assert_eq!(
        from.cli(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]),
        "OK"
    );
    std::thread::sleep(Duration::from_millis(200));
    loop {
        let keys = from.cli(&["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = to.port.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys);
        let reply = from.cli(&args);
        assert!(reply == "OK" || reply == "NOKEY", "MIGRATE: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in &cluster.nodes {
        assert_eq!(
            node.cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]),
            "OK"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migration_under_load_is_survived() {
    let _serial = serial();
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let conn = Connection::open_cluster(&urls).await.unwrap();
    let timeout = Duration::from_millis(500);
    let throttle = Arc::new(
        RedisThrottle::new(&conn, "moving", Quota::per_second(200).with_burst(10))
            .unwrap()
            .with_timeout(timeout)
            .unwrap(),
    );
    let gate = Arc::new(
        RedisGate::new(&conn, "moving", 2, Duration::from_secs(5))
            .unwrap()
            .with_timeout(timeout)
            .unwrap(),
    );
    let timer = TokioTimer::new();
    throttle.try_acquire(&timer).await.unwrap();
    gate.enter(&timer)
        .await
        .unwrap()
        .release(&timer)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let inside = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (throttle, gate, stop, ok, errors, inside) = (
            throttle.clone(),
            gate.clone(),
            stop.clone(),
            ok.clone(),
            errors.clone(),
            inside.clone(),
        );
        load.push(tokio::spawn(async move {
            let timer = TokioTimer::new();
            let mut last_token = 0;
            while !stop.load(Ordering::SeqCst) {
                let start = Instant::now();
                match throttle.try_acquire(&timer).await {
                    Ok(_) | Err(ThrottleError::RateLimited(_)) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(_) => errors.fetch_add(1, Ordering::SeqCst),
                };
                assert!(start.elapsed() < timeout + Duration::from_millis(300));
                let start = Instant::now();
                match gate.enter_timeout(&timer, Duration::from_millis(500)).await {
                    Ok(permit) => {
                        assert!(inside.fetch_add(1, Ordering::SeqCst) < 2, "over the limit");
                        let token = permit.token().unwrap();
                        assert!(token > last_token);
                        last_token = token;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        if permit.release(&timer).await.is_err() {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(GateError::Backend(_) | GateError::TooManyCalls(_)) => {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(err) => panic!("{err}"),
                }
                assert!(start.elapsed() < Duration::from_secs(2));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (from, slot) = node_of(&cluster, "{dike:moving}:throttle");
    let to = cluster.nodes.iter().find(|n| n.port != from.port).unwrap();
    tokio::task::block_in_place(|| migrate(&cluster, slot, from, to));
    // After the move, everything works on the new owner.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert!(
        ok.load(Ordering::SeqCst) > after,
        "no progress after the migration"
    );
    let (owner, _) = node_of(&cluster, "{dike:moving}:throttle");
    assert_eq!(owner.port, to.port);
    eprintln!(
        "ok {} errors {}",
        ok.load(Ordering::SeqCst),
        errors.load(Ordering::SeqCst)
    );
    // Nothing left held.
    assert_eq!(owner.cli(&["ZCARD", "{dike:moving}:gate:holders"]), "0");
}
