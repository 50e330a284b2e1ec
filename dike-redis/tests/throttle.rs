//! RedisThrottle against a real redis-server the test starts (see tests/support).
// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike_redis::{Admission, BackendErrorKind, Connection, FailMode, RedisThrottle, ThrottleError};
use support::{DriftTimer, Redis, admissions, assert_fleet_bound, max_in_window, serial};

async fn throttle(server: &Redis, name: &str, quota: Quota) -> RedisThrottle {
    let conn = server.connect().await;
    RedisThrottle::new(&conn, name, quota).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_16_drifting_clients_stays_within_the_bound_and_saturates() {
    let _serial = serial();
    let server = Redis::start();
    let (rate, burst) = (200u32, 10u32);
    let quota = Quota::per_second(rate).with_burst(burst);
    let run = Duration::from_secs(3);
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..16 {
        // Each instance on its own connection, with a clock 1 + 0.25·k times too fast.
        let throttle = throttle(&server, "exact", quota)
            .await
            .with_timeout(Duration::from_secs(20))
            .unwrap();
        let timer = DriftTimer::new(1.0 + 0.25 * k as f64);
        tasks.push(tokio::spawn(async move {
            admissions(begin, run, &timer, || throttle.try_acquire(&timer)).await
        }));
    }
    let mut trips = Vec::new();
    for task in tasks {
        trips.extend(task.await.unwrap());
    }
    assert_fleet_bound("the fleet", &mut trips, rate, burst, 0.95);
}

#[tokio::test]
async fn acquire_waits_on_the_callers_timer() {
    let _serial = serial();
    let server = Redis::start();
    let throttle = throttle(&server, "spacing", Quota::per_second(20)).await;
    let timer = TokioTimer::new();
    let start = Instant::now();
    for _ in 0..6 {
        assert_eq!(throttle.acquire(&timer).await.unwrap(), Admission::Checked);
    }
    // Five intervals of 50 ms after the first.
    assert!(
        start.elapsed() >= Duration::from_millis(245),
        "{:?}",
        start.elapsed()
    );
    let err = throttle.try_acquire(&timer).await.unwrap_err();
    let ThrottleError::RateLimited(limited) = err else {
        panic!("{err:?}")
    };
    assert!(limited.wait() <= Duration::from_millis(50) && limited.wait() > Duration::ZERO);
}

#[tokio::test]
async fn costs_above_the_burst_are_refused_without_a_round_trip() {
    let _serial = serial();
    let server = Redis::start();
    let throttle = throttle(&server, "cost", Quota::per_second(10).with_burst(4)).await;
    let timer = TokioTimer::new();
    let before = server.command_calls("evalsha");
    assert_eq!(
        throttle.try_acquire_n(&timer, 5).await,
        Err(ThrottleError::ExceedsBurst { n: 5, burst: 4 })
    );
    assert_eq!(
        throttle.acquire_n(&timer, 5).await,
        Err(ThrottleError::ExceedsBurst { n: 5, burst: 4 })
    );
    assert_eq!(server.command_calls("evalsha"), before);
    throttle.try_acquire_n(&timer, 4).await.unwrap();
    assert!(matches!(
        throttle.try_acquire_n(&timer, 1).await,
        Err(ThrottleError::RateLimited(_))
    ));
}

#[tokio::test]
async fn idle_keys_expire_and_names_are_hash_tagged() {
    let _serial = serial();
    let server = Redis::start();
    let throttle = throttle(&server, "idle", Quota::per_second(10).with_burst(2)).await;
    throttle.try_acquire(&TokioTimer::new()).await.unwrap();
    let ttl: i64 = server
        .cli(&["PTTL", "{dike:idle}:throttle"])
        .parse()
        .unwrap();
    assert!((1..=1001).contains(&ttl), "pttl {ttl}");
}

#[tokio::test]
async fn noscript_after_script_flush_and_restart_is_recovered_transparently() {
    let _serial = serial();
    let mut server = Redis::start();
    let throttle = throttle(&server, "noscript", Quota::per_second(1000).with_burst(100)).await;
    let timer = TokioTimer::new();
    throttle.try_acquire(&timer).await.unwrap();
    let evals = server.command_calls("eval");
    server.script_flush();
    assert_eq!(
        throttle.try_acquire(&timer).await.unwrap(),
        Admission::Checked
    );
    assert_eq!(
        server.command_calls("eval"),
        evals + 1,
        "one EVAL after the NOSCRIPT"
    );
    throttle.try_acquire(&timer).await.unwrap();
    assert_eq!(
        server.command_calls("eval"),
        evals + 1,
        "cached again: EVALSHA"
    );
    server.restart();
    let start = Instant::now();
    loop {
        match throttle.try_acquire(&timer).await {
            Ok(Admission::Checked) => break,
            other => {
                assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "not back after 2 s: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_paused_server_fails_closed_or_open_within_the_timeout_and_recovers() {
    let _serial = serial();
    let mut server = Redis::start();
    let timeout = Duration::from_millis(200);
    let quota = Quota::per_second(1000).with_burst(10);
    let closed = throttle(&server, "faults", quota)
        .await
        .with_timeout(timeout)
        .unwrap();
    let open = throttle(&server, "faults", quota)
        .await
        .with_timeout(timeout)
        .unwrap()
        .with_fail_mode(FailMode::Open);
    let timer = TokioTimer::new();
    closed.try_acquire(&timer).await.unwrap();
    assert_eq!(open.try_acquire(&timer).await.unwrap(), Admission::Checked);

    server.pause();
    for _ in 0..2 {
        let start = Instant::now();
        let err = closed.try_acquire(&timer).await.unwrap_err();
        let ThrottleError::Backend(err) = err else {
            panic!("{err:?}")
        };
        assert_eq!(err.kind(), BackendErrorKind::Timeout);
        assert!(
            start.elapsed() < timeout + Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
        let start = Instant::now();
        assert!(matches!(
            closed.acquire(&timer).await,
            Err(ThrottleError::Backend(_))
        ));
        assert!(start.elapsed() < timeout + Duration::from_millis(400));
        let start = Instant::now();
        assert_eq!(
            open.try_acquire(&timer).await.unwrap(),
            Admission::Unchecked
        );
        assert_eq!(open.acquire(&timer).await.unwrap(), Admission::Unchecked);
        assert!(start.elapsed() < 2 * timeout + Duration::from_millis(400));
    }
    server.resume();
    // The requests queued while paused ran on resume; the throttle works again at once.
    let start = Instant::now();
    while closed.try_acquire(&timer).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    // Down (kill -9), then restarted with its data lost.
    server.kill();
    let err = closed.try_acquire(&timer).await.unwrap_err();
    assert!(matches!(err, ThrottleError::Backend(_)), "{err:?}");
    assert_eq!(
        open.try_acquire(&timer).await.unwrap(),
        Admission::Unchecked
    );
    server.restart();
    let restarted = Instant::now();
    let mut recovered = (false, false);
    while !(recovered.0 && recovered.1) {
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "not recovered within 2 s: {recovered:?}"
        );
        recovered.0 |= closed.try_acquire(&timer).await.is_ok();
        recovered.1 |= open.try_acquire(&timer).await == Ok(Admission::Checked);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn invalid_configuration_is_a_config_error() {
    let conn = Connection::open("redis://127.0.0.1:1/").unwrap();
    let err = RedisThrottle::new(&conn, "x", Quota::per_second(0)).unwrap_err();
    assert_eq!(err.parameter(), "rate");
    let err = RedisThrottle::new(&conn, "x", Quota::per_second(1).with_burst(0)).unwrap_err();
    assert_eq!(err.parameter(), "burst");
    let err = RedisThrottle::new(&conn, "", Quota::per_second(1)).unwrap_err();
    assert_eq!(err.parameter(), "name length");
    let long = "n".repeat(129);
    assert!(RedisThrottle::new(&conn, &long, Quota::per_second(1)).is_err());
    assert!(RedisThrottle::new(&conn, &long[..128], Quota::per_second(1)).is_ok());
    let err = RedisThrottle::new(&conn, "x", Quota::per_second(1))
        .unwrap()
        .with_timeout(Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.parameter(), "timeout");
}

#[tokio::test]
async fn names_are_data_not_script() {
    let _serial = serial();
    let server = Redis::start();
    let name = "x') redis.call('FLUSHALL') --\"}";
    server.cli(&["SET", "canary", "1"]);
    let throttle = throttle(&server, name, Quota::per_second(5)).await;
    throttle.try_acquire(&TokioTimer::new()).await.unwrap();
    assert_eq!(server.cli(&["GET", "canary"]), "1");
}

#[tokio::test]
async fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RedisThrottle>();
    check::<ThrottleError>();
    check::<Connection>();
    let throttle = Arc::new(throttle_without_server());
    // The futures are Send with a Send timer: usable in tokio::spawn.
    let handle = tokio::spawn(async move {
        let _ = throttle.try_acquire(&TokioTimer::new()).await;
    });
    handle.await.unwrap();
}

fn throttle_without_server() -> RedisThrottle {
    let conn = Connection::open("redis://127.0.0.1:1/").unwrap();
    RedisThrottle::new(&conn, "nowhere", Quota::per_second(1))
        .unwrap()
        .with_timeout(Duration::from_millis(100))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reservation_keeps_its_stated_bound_across_16_drifting_clients() {
    let _serial = serial();
    let server = Redis::start();
    let (rate, burst) = (400u32, 20u32);
    let hold = Duration::from_millis(50);
    let quota = Quota::per_second(rate).with_burst(burst);
    let run = Duration::from_secs(3);
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..16 {
        let throttle = throttle(&server, "reserved", quota)
            .await
            .with_timeout(Duration::from_secs(20))
            .unwrap()
            .with_local_reservation(4, hold)
            .unwrap();
        let timer = DriftTimer::new(1.0 + 0.25 * k as f64);
        tasks.push(tokio::spawn(async move {
            admissions(begin, run, &timer, || throttle.try_acquire(&timer)).await
        }));
    }
    let mut trips = Vec::new();
    for task in tasks {
        trips.extend(task.await.unwrap());
    }
    trips.sort();
    let bound = |w: Duration| (w + hold).as_secs_f64() * f64::from(rate) + f64::from(burst);
    for w in [0.1, 0.25, 0.5, 1.0].map(Duration::from_secs_f64) {
        let max = max_in_window(&trips, w);
        assert!(
            max as f64 <= bound(w),
            "{max} uses in a {w:?} window, bound {}",
            bound(w)
        );
    }
    let whole = trips.last().unwrap().1 - trips.first().unwrap().0;
    let n = trips.len() as f64;
    let plain = whole.as_secs_f64() * f64::from(rate) + f64::from(burst);
    eprintln!(
        "{n} uses in {whole:?} (bound {:.1}, without reservation {plain:.1})",
        bound(whole)
    );
    assert!(n <= bound(whole));
    // Units still reserved when the run ends are lost: at most 16 × 3.
    assert!(
        n >= 0.9 * plain,
        "only {n} under saturation, {plain} without reservation"
    );
}

#[tokio::test]
async fn local_reservation_saves_round_trips_and_lapses() {
    let _serial = serial();
    let server = Redis::start();
    let quota = Quota::per_second(1000).with_burst(100);
    let timer = TokioTimer::new();
    // Load the script (same source, another name) so NOSCRIPT does not add a call below.
    let warm = throttle(&server, "warm", quota).await;
    warm.try_acquire(&timer).await.unwrap();
    let throttle = throttle(&server, "saving", quota)
        .await
        .with_local_reservation(10, Duration::from_millis(200))
        .unwrap();
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    for _ in 0..50 {
        assert_eq!(
            throttle.try_acquire(&timer).await.unwrap(),
            Admission::Checked
        );
    }
    let trips = server.command_calls("evalsha") + server.command_calls("eval") - before;
    assert_eq!(trips, 5, "50 units in round trips of 10");
    // A unit reserved and not used within the hold lapses: the next call asks Redis.
    throttle.try_acquire(&timer).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    throttle.try_acquire(&timer).await.unwrap();
    assert_eq!(
        server.command_calls("evalsha") + server.command_calls("eval") - before,
        1
    );
    let err = throttle_without_server()
        .with_local_reservation(1, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.parameter(), "reservation hold");
    let err = throttle_without_server()
        .with_local_reservation(2, hold_ok())
        .unwrap_err();
    assert_eq!(err.parameter(), "reservation units");
    let err = throttle_without_server()
        .with_local_reservation(0, hold_ok())
        .unwrap_err();
    assert_eq!(err.parameter(), "reservation units");
}

fn hold_ok() -> Duration {
    Duration::from_millis(10)
}

#[tokio::test]
async fn a_timed_out_call_may_still_take_one_slot() {
    let _serial = serial();
    let server = Redis::start();
    let conn = server.connect().await;
    let throttle = RedisThrottle::new(&conn, "orphan", Quota::per_second(2).with_burst(2))
        .unwrap()
        .with_timeout(Duration::from_millis(200))
        .unwrap();
    let timer = TokioTimer::new();
    // Connected and the script loaded on the limiter's node: one of the two slots taken.
    throttle.try_acquire(&timer).await.unwrap();
    // One slot free now.
    server.pause();
    let err = throttle.try_acquire(&timer).await.unwrap_err();
    assert!(matches!(err, ThrottleError::Backend(_)), "{err:?}");
    server.resume();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The queued call ran on resume and took the slot; the damage is that one slot.
    let Err(ThrottleError::RateLimited(limited)) = throttle.try_acquire(&timer).await else {
        panic!("the orphaned call did not take its slot")
    };
    assert!(limited.wait() <= Duration::from_millis(500));
    tokio::time::sleep(limited.wait()).await;
    throttle.try_acquire(&timer).await.unwrap();
}

#[tokio::test]
async fn a_killed_connection_is_remade_without_a_client_restart() {
    let _serial = serial();
    let server = Redis::start();
    let throttle = throttle(&server, "killed", Quota::per_second(1000).with_burst(100)).await;
    let timer = TokioTimer::new();
    throttle.try_acquire(&timer).await.unwrap();
    assert!(server.client_kill("normal") > 0);
    let killed = Instant::now();
    // The first call may see the dead connection; the next ones go to a new one.
    while throttle.try_acquire(&timer).await.is_err() {
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "not reconnected within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        throttle.try_acquire(&timer).await.unwrap();
    }
}
