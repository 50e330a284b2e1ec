//! RedisGate against a real redis-server the test starts (see tests/support).
// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dike::error::TooManyCallsKind;
use dike::time::TokioTimer;
use dike_redis::{BackendErrorKind, Connection, FailMode, GateError, RedisGate, StaleToken};
use support::{DriftTimer, Redis, serial};

async fn gate(server: &Redis, name: &str, limit: usize, lease: Duration) -> RedisGate {
    let conn = server.connect().await;
    RedisGate::new(&conn, name, limit, lease).unwrap()
}

fn holders(server: &Redis, name: &str) -> u64 {
    server
        .cli(&["ZCARD", &format!("{{dike:{name}}}:gate:holders")])
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_exceeds_the_limit_across_16_instances_and_ends_with_no_holders() {
    let _serial = serial();
    let server = Redis::start();
    let limit = 5;
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for k in 0..16 {
        let gate = Arc::new(gate(&server, "fleet", limit, Duration::from_secs(10)).await);
        for _ in 0..4 {
            let (gate, inside, peak, done) =
                (gate.clone(), inside.clone(), peak.clone(), done.clone());
            let timer = DriftTimer::new(1.0 + 0.25 * k as f64);
            tasks.push(tokio::spawn(async move {
                for _ in 0..8 {
                    let permit = gate.enter(&timer).await.unwrap();
                    assert!(permit.is_checked());
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    permit.release(&timer).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 16 * 4 * 8);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= limit, "{peak} holders at once, limit {limit}");
    assert_eq!(
        peak, limit,
        "the limit was never reached: no contention tested"
    );
    assert_eq!(holders(&server, "fleet"), 0);
}

#[tokio::test]
async fn a_dropped_permit_frees_its_place_at_lease_expiry() {
    let _serial = serial();
    let server = Redis::start();
    let lease = Duration::from_millis(300);
    let gate = gate(&server, "dropped", 1, lease).await;
    let timer = TokioTimer::new();
    {
        // Dropped without release: no I/O, the lease stays until it expires.
        let _permit = gate.enter(&timer).await.unwrap();
    }
    let dropped = Instant::now();
    let err = gate.try_enter(&timer).await.unwrap_err();
    assert!(matches!(err, GateError::TooManyCalls(e) if e.kind() == TooManyCallsKind::Full));
    let permit = gate.enter(&timer).await.unwrap();
    let waited = dropped.elapsed();
    assert!(waited >= lease - Duration::from_millis(20), "{waited:?}");
    assert!(waited <= lease + Duration::from_millis(500), "{waited:?}");
    permit.release(&timer).await.unwrap();
    assert_eq!(holders(&server, "dropped"), 0);
}

#[tokio::test]
async fn fencing_tokens_increase_across_flushall_and_a_restart_that_lost_the_data() {
    let _serial = serial();
    let mut server = Redis::start();
    let gate = gate(&server, "fence", 2, Duration::from_secs(5)).await;
    let timer = TokioTimer::new();
    let mut tokens = Vec::new();
    let mut take = async |gate: &RedisGate| {
        let start = Instant::now();
        loop {
            match gate.enter(&timer).await {
                Ok(permit) => {
                    tokens.push(permit.token().unwrap());
                    permit.release(&timer).await.unwrap();
                    return;
                }
                Err(err) => {
                    assert!(start.elapsed() < Duration::from_secs(2), "{err}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    };
    for _ in 0..3 {
        take(&gate).await;
    }
    server.flushall();
    take(&gate).await;
    take(&gate).await;
    server.restart();
    take(&gate).await;
    take(&gate).await;
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[tokio::test]
async fn a_stale_token_is_refused_and_frees_nothing_else() {
    let _serial = serial();
    let server = Redis::start();
    let gate = gate(&server, "stale", 1, Duration::from_millis(200)).await;
    let timer = TokioTimer::new();
    let mut old = gate.enter(&timer).await.unwrap();
    let old_token = old.token().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let new = gate.enter(&timer).await.unwrap();
    assert!(new.token() > Some(old_token));
    let stale = |r: Result<(), GateError>| matches!(r, Err(GateError::StaleToken(StaleToken { token, .. })) if token == old_token);
    assert!(stale(old.renew(&timer).await));
    assert!(stale(old.release(&timer).await));
    // The new holder still holds the only place.
    assert!(matches!(
        gate.try_enter(&timer).await,
        Err(GateError::TooManyCalls(_))
    ));
    assert_eq!(holders(&server, "stale"), 1);
    new.release(&timer).await.unwrap();
    assert_eq!(holders(&server, "stale"), 0);
}

#[tokio::test]
async fn renew_extends_the_lease() {
    let _serial = serial();
    let server = Redis::start();
    let gate = gate(&server, "renew", 1, Duration::from_millis(300)).await;
    let timer = TokioTimer::new();
    let mut permit = gate.enter(&timer).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        permit.renew(&timer).await.unwrap();
    }
    // 600 ms after entering, the renewed lease still holds the place.
    assert!(gate.try_enter(&timer).await.is_err());
    permit.release(&timer).await.unwrap();
    gate.try_enter(&timer).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_waiter_wakes_by_pubsub_and_does_not_poll() {
    let _serial = serial();
    let server = Redis::start();
    let gate = Arc::new(gate(&server, "pubsub", 1, Duration::from_secs(30)).await);
    let timer = TokioTimer::new();
    let holder = gate.enter(&timer).await.unwrap();
    let waiter = {
        let gate = gate.clone();
        tokio::spawn(async move {
            let permit = gate.enter(&TokioTimer::new()).await.unwrap();
            let woke = Instant::now();
            permit.release(&TokioTimer::new()).await.unwrap();
            woke
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = server.command_calls("evalsha") + server.command_calls("eval");
    assert_eq!(
        after, before,
        "the blocked waiter ran scripts while nothing was released"
    );
    assert!(!waiter.is_finished());
    let released = Instant::now();
    holder.release(&timer).await.unwrap();
    let woke = waiter.await.unwrap();
    assert!(
        woke - released < Duration::from_millis(500),
        "{:?}",
        woke - released
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_resubscribes_after_client_kill() {
    let _serial = serial();
    let server = Redis::start();
    let gate = Arc::new(gate(&server, "resub", 1, Duration::from_secs(30)).await);
    let timer = TokioTimer::new();
    let holder = gate.enter(&timer).await.unwrap();
    let waiter = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.enter(&TokioTimer::new()).await.map(|p| p.token()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = server.client_kill("pubsub");
    assert!(killed > 0, "no pub/sub client to kill");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    assert_eq!(
        server.numsub("{dike:resub}:gate:released"),
        1,
        "resubscribed"
    );
    let released = Instant::now();
    holder.release(&timer).await.unwrap();
    waiter.await.unwrap().unwrap();
    assert!(
        released.elapsed() < Duration::from_millis(800),
        "{:?}",
        released.elapsed()
    );
}

#[tokio::test]
async fn enter_timeout_gives_up_with_timed_out() {
    let _serial = serial();
    let server = Redis::start();
    let gate = gate(&server, "timeout", 1, Duration::from_secs(10)).await;
    let timer = TokioTimer::new();
    let held = gate.enter(&timer).await.unwrap();
    let start = Instant::now();
    let err = gate
        .enter_timeout(&timer, Duration::from_millis(150))
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::TooManyCalls(e) if e.kind() == TooManyCallsKind::TimedOut));
    assert!(
        start.elapsed() >= Duration::from_millis(150)
            && start.elapsed() < Duration::from_millis(800)
    );
    held.release(&timer).await.unwrap();
    gate.enter_timeout(&timer, Duration::from_millis(150))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_waiter_passes_its_turn_to_the_next_one_in_this_process() {
    let _serial = serial();
    let server = Redis::start();
    let gate = Arc::new(gate(&server, "cancel", 1, Duration::from_secs(10)).await);
    let timer = TokioTimer::new();
    let holder = gate.enter(&timer).await.unwrap();
    let first = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.enter(&TokioTimer::new()).await.map(|p| p.token()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.enter(&TokioTimer::new()).await.map(|p| p.token()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.abort(); // the head, dropped while subscribed and waiting
    assert!(first.await.unwrap_err().is_cancelled());
    holder.release(&timer).await.unwrap();
    let token = tokio::time::timeout(Duration::from_secs(1), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(token.is_some());
}

#[tokio::test]
async fn fail_modes_while_paused_and_recovery_after_restart() {
    let _serial = serial();
    let mut server = Redis::start();
    let timeout = Duration::from_millis(200);
    let closed = gate(&server, "gfaults", 2, Duration::from_secs(5))
        .await
        .with_timeout(timeout)
        .unwrap();
    let open = gate(&server, "gfaults", 2, Duration::from_secs(5))
        .await
        .with_timeout(timeout)
        .unwrap()
        .with_fail_mode(FailMode::Open);
    let timer = TokioTimer::new();
    let held = closed.enter(&timer).await.unwrap();
    server.pause();
    let start = Instant::now();
    let err = closed.try_enter(&timer).await.unwrap_err();
    assert!(
        matches!(&err, GateError::Backend(e) if e.kind() == BackendErrorKind::Timeout),
        "{err:?}"
    );
    assert!(matches!(
        closed.enter(&timer).await,
        Err(GateError::Backend(_))
    ));
    assert!(matches!(
        held.release(&timer).await,
        Err(GateError::Backend(_))
    ));
    assert!(
        start.elapsed() < 3 * timeout + Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    let unchecked = open.enter(&timer).await.unwrap();
    assert!(!unchecked.is_checked());
    assert_eq!(unchecked.token(), None);
    unchecked.release(&timer).await.unwrap();
    server.resume();
    server.restart();
    let restarted = Instant::now();
    loop {
        match closed.try_enter(&timer).await {
            Ok(permit) => {
                assert!(permit.is_checked());
                break;
            }
            Err(err) => {
                assert!(restarted.elapsed() < Duration::from_secs(2), "{err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // The fail-open gate's connection notices the restart on its first request (unchecked),
    // then checks again.
    while !open.enter(&timer).await.unwrap().is_checked() {
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "fail-open gate not checking again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn invalid_configuration_is_a_config_error() {
    let conn = Connection::open("redis://127.0.0.1:1/").unwrap();
    let lease = Duration::from_secs(1);
    assert_eq!(
        RedisGate::new(&conn, "g", 0, lease)
            .unwrap_err()
            .parameter(),
        "limit"
    );
    assert_eq!(
        RedisGate::new(&conn, "g", 1, Duration::ZERO)
            .unwrap_err()
            .parameter(),
        "lease"
    );
    assert_eq!(
        RedisGate::new(&conn, "", 1, lease).unwrap_err().parameter(),
        "name length"
    );
    assert!(RedisGate::new(&conn, &"n".repeat(129), 1, lease).is_err());
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RedisGate>();
    check::<dike_redis::RedisPermit<'static>>();
    check::<GateError>();
}

#[test]
fn credentials_never_show() {
    let conn = Connection::open("redis://app:hunter2@127.0.0.1:1/3").unwrap();
    let gate = RedisGate::new(&conn, "g", 1, Duration::from_secs(1)).unwrap();
    assert!(!format!("{conn:?} {gate:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_timed_out_enter_may_still_take_a_lease_that_lives_at_most_its_ttl() {
    let _serial = serial();
    let server = Redis::start();
    let lease = Duration::from_millis(600);
    let gate = gate(&server, "orphan", 1, lease)
        .await
        .with_timeout(Duration::from_millis(200))
        .unwrap();
    let timer = TokioTimer::new();
    gate.enter(&timer)
        .await
        .unwrap()
        .release(&timer)
        .await
        .unwrap();
    server.pause();
    let err = gate.try_enter(&timer).await.unwrap_err();
    assert!(matches!(&err, GateError::Backend(e) if e.kind() == BackendErrorKind::Timeout));
    server.resume();
    let resumed = Instant::now();
    // The queued request ran when the server resumed: an orphaned lease holds the place.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(holders(&server, "orphan"), 1);
    assert!(gate.try_enter(&timer).await.is_err());
    // ... for at most its TTL.
    let permit = gate.enter(&timer).await.unwrap();
    assert!(
        resumed.elapsed() <= lease + Duration::from_millis(500),
        "{:?}",
        resumed.elapsed()
    );
    permit.release(&timer).await.unwrap();
}
