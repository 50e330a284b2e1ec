//! RedisKeyedThrottle against a real redis-server the test starts (see tests/support), or a
//! local 3-master cluster with `DIKE_REDIS_CLUSTER=1`.
// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use dike::keyed::KeyQuota;
use dike::throttle::Quota;
use dike::time::{ManualTimer, Timer, TokioTimer};
use dike_redis::{
    Admission, BackendErrorKind, Connection, FailMode, RedisKeyedThrottle, RedisThrottle,
    ThrottleError,
};
use support::{DriftTimer, Redis, admissions, assert_fleet_bound, cluster_mode, serial};

async fn keyed<K>(server: &Redis, name: &str, quota: Quota) -> RedisKeyedThrottle<K> {
    let conn = server.connect().await;
    RedisKeyedThrottle::new(&conn, name, quota).unwrap()
}

fn limited(result: Result<Admission, ThrottleError>) -> Duration {
    match result {
        Err(ThrottleError::RateLimited(limited)) => limited.wait(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The text between the first `{` and the next `}`: what Redis Cluster hashes.
fn hash_tag(key: &str) -> &str {
    let open = key.find('{').unwrap();
    let close = open + key[open..].find('}').unwrap();
    &key[open + 1..close]
}

/// Keys matching `pattern` on every node.
fn keys_matching(server: &Redis, pattern: &str) -> Vec<String> {
    server
        .nodes()
        .iter()
        .flat_map(|n| {
            n.cli(&["KEYS", pattern])
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn keys_are_independent_and_a_refusal_carries_the_keys_own_wait() {
    let _serial = serial();
    let server = Redis::start();
    // 2/s, burst 1: one slot per 500 ms per key.
    let limits = keyed(&server, "independent", Quota::per_second(2)).await;
    let timer = TokioTimer::new();
    assert_eq!(
        limits.try_acquire(&timer, "a").await.unwrap(),
        Admission::Checked
    );
    // a is spent; b and c are not touched by it.
    limited(limits.try_acquire(&timer, "a").await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    limits.try_acquire(&timer, "b").await.unwrap();
    let (wait_a, wait_b) = (
        limited(limits.try_acquire(&timer, "a").await),
        limited(limits.try_acquire(&timer, "b").await),
    );
    assert!(
        wait_a < wait_b && wait_b <= Duration::from_millis(500) && !wait_a.is_zero(),
        "a: {wait_a:?}, b: {wait_b:?}"
    );
    limits.try_acquire(&timer, "c").await.unwrap();
    // Each key's wait is the key's: after a's wait, a is admitted while b still waits (b's
    // wait was 200 ms longer).
    tokio::time::sleep(wait_a).await;
    limits.try_acquire(&timer, "a").await.unwrap();
    limited(limits.try_acquire(&timer, "b").await);

    // With a quota per key, the wait follows the key's own rate.
    let slow = KeyQuota::new(Quota::per_minute(60)).unwrap();
    let fast = KeyQuota::new(Quota::per_second(10)).unwrap();
    let tiers = keyed::<String>(&server, "tiers", Quota::per_second(10))
        .await
        .with_quota_fn(move |key: &String| if key == "slow" { slow } else { fast });
    tiers.try_acquire(&timer, "slow").await.unwrap();
    tiers.try_acquire(&timer, "fast").await.unwrap();
    let wait_slow = limited(tiers.try_acquire(&timer, "slow").await);
    let wait_fast = limited(tiers.try_acquire(&timer, "fast").await);
    assert!(
        wait_slow > Duration::from_millis(800) && wait_slow <= Duration::from_secs(1),
        "{wait_slow:?}"
    );
    assert!(wait_fast <= Duration::from_millis(100), "{wait_fast:?}");
    // acquire waits for the key's own slot only.
    let start = Instant::now();
    tiers.acquire(&timer, "fast").await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(400));
    tiers.acquire(&timer, "other").await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_gets_exactly_its_quota_across_a_fleet_of_drifting_clients() {
    let _serial = serial();
    let server = Redis::start();
    // Three keys with three quotas, through the quota function every client shares.
    let quotas: HashMap<&str, (u32, u32)> = [("a", (100, 5)), ("b", (50, 10)), ("c", (150, 2))]
        .into_iter()
        .collect();
    let quota_of = move |key: &String| {
        let (rate, burst) = match key.as_str() {
            "a" => (100, 5),
            "b" => (50, 10),
            _ => (150, 2),
        };
        KeyQuota::new(Quota::per_second(rate).with_burst(burst)).unwrap()
    };
    let run = Duration::from_secs(2);
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..6 {
        // Each client on its own connection, its clock 1 + 0.5·client times too fast.
        let limits = Arc::new(
            keyed::<String>(&server, "fleet", Quota::per_second(1))
                .await
                .with_quota_fn(quota_of)
                .with_timeout(Duration::from_secs(20))
                .unwrap(),
        );
        let timer = DriftTimer::new(1.0 + 0.5 * f64::from(client));
        for key in ["a", "b", "c"] {
            let (limits, timer) = (limits.clone(), timer.clone());
            tasks.push(tokio::spawn(async move {
                let trips =
                    admissions(begin, run, &timer, || limits.try_acquire(&timer, key)).await;
                (key, trips)
            }));
        }
    }
    let mut per_key: HashMap<&str, Vec<(Instant, Instant)>> = HashMap::new();
    for task in tasks {
        let (key, trips) = task.await.unwrap();
        per_key.entry(key).or_default().extend(trips);
    }
    for (key, trips) in &mut per_key {
        let (rate, burst) = quotas[key];
        assert_fleet_bound(&format!("key {key}"), trips, rate, burst, 0.9);
    }
}

#[tokio::test]
async fn awkward_keys_are_distinct_and_each_works() {
    let _serial = serial();
    let server = Redis::start();
    // One slot per key per minute: a key that shared another's state would be refused.
    let limits = keyed::<Vec<u8>>(&server, "awkward", Quota::per_minute(1)).await;
    let timer = TokioTimer::new();
    let mut keys: Vec<Vec<u8>> = [
        &b""[..],
        b"{",
        b"}",
        b"{}",
        b":",
        b"::",
        b"a:b",
        b"a",
        b"A",
        b"%41",
        b"%",
        b"{dike:awkward}",
        b"}:throttle",
        b"\0",
        b"\xff\xfe",
        b"\xff",
        "é".as_bytes(),
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    keys.push(vec![b'k'; 1024]);
    keys.push(vec![b'{'; 1024]);
    keys.push([vec![b'k'; 1023], vec![b'l']].concat());
    for key in &keys {
        assert_eq!(
            limits.try_acquire(&timer, &key[..]).await.unwrap(),
            Admission::Checked,
            "first call on {key:?}"
        );
    }
    let mut tags = HashSet::new();
    for key in &keys {
        limited(limits.try_acquire(&timer, &key[..]).await);
        let redis_key = limits.redis_key(&key[..]);
        assert!(redis_key.is_ascii());
        assert_eq!(server.cli(&["EXISTS", &redis_key]), "1", "{redis_key}");
        assert!(
            hash_tag(&redis_key).starts_with("dike-keyed:awkward:"),
            "{redis_key}"
        );
        assert!(tags.insert(hash_tag(&redis_key).to_string()), "{redis_key}");
    }
    assert_eq!(
        keys_matching(&server, "{dike-keyed:awkward:*").len(),
        keys.len()
    );

    // Names are encoded too: (a:b, c) and (a, b:c) are different limits; a RedisThrottle of
    // the same name shares nothing with the keyed throttle.
    let first = keyed::<String>(&server, "n:m", Quota::per_minute(1)).await;
    let second = keyed::<String>(&server, "n", Quota::per_minute(1)).await;
    first.try_acquire(&timer, "c").await.unwrap();
    second.try_acquire(&timer, "m:c").await.unwrap();
    limited(first.try_acquire(&timer, "c").await);
    let conn = server.connect().await;
    let plain = RedisThrottle::new(&conn, "awkward", Quota::per_minute(1)).unwrap();
    plain.try_acquire(&timer).await.unwrap();
    // Text keys: a String key and the same bytes as Vec<u8> are one key.
    let text = keyed::<String>(&server, "awkward", Quota::per_minute(1)).await;
    limited(text.try_acquire(&timer, "a:b").await);
    text.try_acquire(&timer, "fresh").await.unwrap();
}

#[tokio::test]
async fn keys_are_data_not_script() {
    let _serial = serial();
    let server = Redis::start();
    server.cli(&["SET", "canary", "1"]);
    let limits = keyed::<String>(
        &server,
        "x') redis.call('FLUSHALL') --",
        Quota::per_second(5),
    )
    .await;
    let timer = TokioTimer::new();
    limits
        .try_acquire(&timer, "') redis.call('FLUSHALL') --\"}")
        .await
        .unwrap();
    assert_eq!(server.cli(&["GET", "canary"]), "1");
}

#[tokio::test]
async fn idle_keys_expire_from_redis_and_come_back_fresh() {
    let _serial = serial();
    let server = Redis::start();
    // 2/s, burst 2: a key used once is idle (fresh-equivalent) 500 ms later.
    let limits = keyed::<u64>(&server, "idle", Quota::per_second(2).with_burst(2)).await;
    let timer = TokioTimer::new();
    for key in 0..20u64 {
        limits.try_acquire(&timer, &key).await.unwrap();
    }
    limits.try_acquire(&timer, &0).await.unwrap();
    limited(limits.try_acquire(&timer, &0).await);
    assert_eq!(keys_matching(&server, "{dike-keyed:idle:*").len(), 20);
    for key in [0u64, 1, 19] {
        let ttl: i64 = server
            .cli(&["PTTL", &limits.redis_key(&key)])
            .parse()
            .unwrap();
        // The TTL ends when the key would admit a full burst again (+1 ms).
        let most = if key == 0 { 1001 } else { 501 };
        assert!((1..=most).contains(&ttl), "key {key}: pttl {ttl}");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Nothing swept them: Redis expired every one.
    assert_eq!(
        keys_matching(&server, "{dike-keyed:idle:*"),
        Vec::<String>::new()
    );
    for key in [0u64, 1, 19] {
        assert_eq!(server.cli(&["EXISTS", &limits.redis_key(&key)]), "0");
    }
    // An expired key decides as a fresh one: a full burst.
    limits.try_acquire(&timer, &0).await.unwrap();
    limits.try_acquire(&timer, &0).await.unwrap();
    limited(limits.try_acquire(&timer, &0).await);
}

#[tokio::test]
async fn keys_are_hash_tagged_per_key_and_spread_over_the_cluster() {
    let _serial = serial();
    let server = Redis::start();
    let limits = keyed::<String>(&server, "spread", Quota::per_second(1)).await;
    let timer = TokioTimer::new();
    let keys: Vec<String> = (0..48).map(|i| format!("user-{i}")).collect();
    let mut tags = HashSet::new();
    for key in &keys {
        limits.try_acquire(&timer, key.as_str()).await.unwrap();
        let redis_key = limits.redis_key(key.as_str());
        assert_eq!(redis_key, format!("{{dike-keyed:spread:{key}}}:throttle"));
        assert!(tags.insert(hash_tag(&redis_key).to_string()));
    }
    if cluster_mode() {
        let mut slots = HashSet::new();
        for key in &keys {
            let slot =
                server.nodes()[0].cli(&["CLUSTER", "KEYSLOT", &limits.redis_key(key.as_str())]);
            slots.insert(slot);
        }
        assert!(slots.len() >= 40, "48 keys on only {} slots", slots.len());
        // Every master holds some of the keys: one hot limiter is not one hot node.
        for node in server.nodes() {
            let held = node.cli(&["KEYS", "{dike-keyed:spread:*"]).lines().count();
            eprintln!("node {}: {held} keys", node.port);
            assert!(held > 0, "node {} holds none of the 48 keys", node.port);
        }
    }
    assert_eq!(keys_matching(&server, "{dike-keyed:spread:*").len(), 48);
}

#[tokio::test]
async fn costs_above_the_keys_burst_are_refused_without_a_round_trip() {
    let _serial = serial();
    let server = Redis::start();
    let small = KeyQuota::new(Quota::per_second(10).with_burst(2)).unwrap();
    let big = KeyQuota::new(Quota::per_second(10).with_burst(8)).unwrap();
    let limits = keyed::<String>(&server, "cost", Quota::per_second(10))
        .await
        .with_quota_fn(move |key: &String| if key == "big" { big } else { small });
    let timer = TokioTimer::new();
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    assert_eq!(
        limits.try_acquire_n(&timer, "small", 3).await,
        Err(ThrottleError::ExceedsBurst { n: 3, burst: 2 })
    );
    assert_eq!(
        limits.acquire_n(&timer, "small", 3).await,
        Err(ThrottleError::ExceedsBurst { n: 3, burst: 2 })
    );
    assert_eq!(
        limits.try_acquire_n(&timer, "big", 0).await,
        Ok(Admission::Checked)
    );
    assert_eq!(
        server.command_calls("evalsha") + server.command_calls("eval"),
        before
    );
    limits.try_acquire_n(&timer, "small", 2).await.unwrap();
    let refused = Instant::now();
    let wait = limited(limits.try_acquire_n(&timer, "small", 2).await);
    limits.try_acquire_n(&timer, "big", 8).await.unwrap();
    limited(limits.try_acquire_n(&timer, "big", 1).await);
    // Two units of 100 ms each.
    assert!(
        wait > Duration::from_millis(100) && wait <= Duration::from_millis(200),
        "{wait:?}"
    );
    // acquire_n sleeps the key's wait (measured on the server after `refused`) before it is
    // admitted (2 ms for the server's wall clock against the test's monotonic one).
    limits.acquire_n(&timer, "small", 2).await.unwrap();
    assert!(refused.elapsed() + Duration::from_millis(2) >= wait);
}

#[tokio::test]
async fn a_paused_server_fails_closed_or_open_within_the_timeout_and_recovers() {
    let _serial = serial();
    let mut server = Redis::start();
    let timeout = Duration::from_millis(200);
    let quota = Quota::per_second(1000).with_burst(10);
    let closed = keyed::<String>(&server, "faults", quota)
        .await
        .with_timeout(timeout)
        .unwrap();
    let open = keyed::<String>(&server, "faults", quota)
        .await
        .with_timeout(timeout)
        .unwrap()
        .with_fail_mode(FailMode::Open);
    let timer = TokioTimer::new();
    closed.try_acquire(&timer, "k").await.unwrap();
    assert_eq!(
        open.try_acquire(&timer, "k").await.unwrap(),
        Admission::Checked
    );

    server.pause();
    for key in ["k", "other"] {
        let start = Instant::now();
        let err = closed.try_acquire(&timer, key).await.unwrap_err();
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
            closed.acquire(&timer, key).await,
            Err(ThrottleError::Backend(_))
        ));
        assert!(start.elapsed() < timeout + Duration::from_millis(400));
        let start = Instant::now();
        assert_eq!(
            open.try_acquire(&timer, key).await.unwrap(),
            Admission::Unchecked
        );
        assert_eq!(
            open.acquire(&timer, key).await.unwrap(),
            Admission::Unchecked
        );
        assert!(start.elapsed() < 2 * timeout + Duration::from_millis(400));
    }
    server.resume();
    let start = Instant::now();
    while closed.try_acquire(&timer, "k").await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    // Down (kill -9), then restarted with its data and scripts lost.
    server.kill();
    let err = closed.try_acquire(&timer, "k").await.unwrap_err();
    assert!(matches!(err, ThrottleError::Backend(_)), "{err:?}");
    assert_eq!(
        open.try_acquire(&timer, "k").await.unwrap(),
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
        recovered.0 |= closed.try_acquire(&timer, "k").await.is_ok();
        recovered.1 |= open.try_acquire(&timer, "k").await == Ok(Admission::Checked);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `fut` once with the task's waker.
async fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let mut fut = Some(fut);
    std::future::poll_fn(|cx| Poll::Ready(fut.take().unwrap().poll(cx))).await
}

#[tokio::test]
async fn cancelling_acquire_at_every_await_point_leaves_nothing_behind() {
    let _serial = serial();
    let server = Redis::start();
    let timer = ManualTimer::new();
    // The round trip's timeout sleeps on the manual timer too: 60 s tells it from the wait.
    let timeout = Duration::from_secs(60);
    let limits = keyed::<String>(&server, "cancel", Quota::per_second(2))
        .await
        .with_timeout(timeout)
        .unwrap();
    let real = TokioTimer::new();

    // Await point 1: the sleep until the key's slot. Nothing is taken.
    limits.try_acquire(&real, "k").await.unwrap();
    let state = server.cli(&["GET", &limits.redis_key("k")]);
    {
        let mut acquire = pin!(limits.acquire(&timer, "k"));
        let start = Instant::now();
        loop {
            assert!(poll_once(acquire.as_mut()).await.is_pending());
            let sleeping = timer
                .next_deadline()
                .is_some_and(|at| at <= timer.now() + Duration::from_millis(500));
            if sleeping && timer.sleepers() == 1 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "never slept");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(timer.sleepers(), 0, "the dropped sleep is deregistered");
    assert_eq!(
        server.cli(&["GET", &limits.redis_key("k")]),
        state,
        "nothing taken"
    );
    let wait = limited(limits.try_acquire(&real, "k").await);
    tokio::time::sleep(wait).await;
    limits.try_acquire(&real, "k").await.unwrap();
    limited(limits.try_acquire(&real, "k").await);

    // Await point 2: the round trip. At most the one unit asked for is taken.
    let burst = 3;
    let limits = keyed::<String>(
        &server,
        "cancel-trip",
        Quota::per_second(1).with_burst(burst),
    )
    .await
    .with_timeout(timeout)
    .unwrap();
    limits.try_acquire_n(&real, "warm", 1).await.unwrap(); // connected, script cached
    {
        let mut acquire = pin!(limits.acquire(&timer, "r"));
        assert!(poll_once(acquire.as_mut()).await.is_pending());
        assert_eq!(timer.sleepers(), 1, "the round trip's timeout");
        assert_eq!(timer.next_deadline(), Some(timer.now() + timeout));
    }
    assert_eq!(timer.sleepers(), 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut admitted = 0;
    while limits.try_acquire(&real, "r").await.is_ok() {
        admitted += 1;
    }
    assert!(
        admitted == burst || admitted == burst - 1,
        "{admitted} of {burst} left after a dropped call"
    );
    // The connection is not wedged, and the key expires as any other.
    limits.try_acquire(&real, "s").await.unwrap();
    let ttl: i64 = server
        .cli(&["PTTL", &limits.redis_key("r")])
        .parse()
        .unwrap();
    assert!((1..=3001).contains(&ttl), "pttl {ttl}");
}

#[tokio::test]
async fn invalid_configuration_is_a_config_error() {
    let conn = Connection::open("redis://127.0.0.1:1/").unwrap();
    let new = |name: &str, quota| RedisKeyedThrottle::<String>::new(&conn, name, quota);
    let err = new("x", Quota::per_second(0)).unwrap_err();
    assert_eq!(err.parameter(), "rate");
    assert_eq!(err.to_string(), "invalid rate = 0: expected at least 1");
    let err = new("x", Quota::per_second(1).with_burst(0)).unwrap_err();
    assert_eq!(err.parameter(), "burst");
    let err = new("x", Quota::per_second(1).with_period(Duration::ZERO)).unwrap_err();
    assert_eq!(err.parameter(), "period");
    let err = new("", Quota::per_second(1)).unwrap_err();
    assert_eq!(err.parameter(), "name length");
    let long = "n".repeat(129);
    let err = new(&long, Quota::per_second(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid name length = 129: expected 1 to 128 bytes"
    );
    assert!(new(&long[..128], Quota::per_second(1)).is_ok());
    let err = new("x", Quota::per_second(1))
        .unwrap()
        .with_timeout(Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.parameter(), "timeout");
}

#[tokio::test]
async fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RedisKeyedThrottle<String>>();
    check::<RedisKeyedThrottle<Vec<u8>>>();
    check::<RedisKeyedThrottle<std::net::IpAddr>>();
    // Keys that are not Send themselves do not make the throttle so (it holds no key).
    check::<RedisKeyedThrottle<std::rc::Rc<str>>>();
    let conn = Connection::open("redis://127.0.0.1:1/").unwrap();
    let limits = Arc::new(
        RedisKeyedThrottle::<String>::new(&conn, "nowhere", Quota::per_second(1))
            .unwrap()
            .with_timeout(Duration::from_millis(100))
            .unwrap(),
    );
    assert!(format!("{limits:?}").contains("RedisKeyedThrottle"));
    // The futures are Send with a Send timer: usable in tokio::spawn.
    let handle = tokio::spawn(async move {
        let key = String::from("k");
        let err = limits.try_acquire(&TokioTimer::new(), key.as_str()).await;
        assert!(matches!(err, Err(ThrottleError::Backend(_))), "{err:?}");
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let by_ip = RedisKeyedThrottle::new(&conn, "ip", Quota::per_second(1)).unwrap();
        let _ = by_ip.try_acquire(&TokioTimer::new(), &ip).await;
    });
    handle.await.unwrap();
}

#[tokio::test]
async fn an_acl_user_limited_to_the_documented_key_pattern_runs_the_keyed_throttle() {
    let _serial = serial();
    let redis = Redis::standalone_with(&["--requirepass", "adm1n"]);
    let acl = [
        "ACL",
        "SETUSER",
        "limiter",
        "on",
        ">l1miter",
        "resetkeys",
        "~{dike-keyed:app:*",
        "-@all",
        "+evalsha",
        "+eval",
        "+script|load",
        "+ping",
        "+hello",
        "+auth",
        "+select",
        "+time",
        "+get",
        "+set",
    ];
    assert_eq!(redis.cli(&acl), "OK");
    let port = redis.nodes()[0].port;
    let conn = Connection::open(&format!("redis://limiter:l1miter@127.0.0.1:{port}/0")).unwrap();
    let timer = TokioTimer::new();
    let limits = RedisKeyedThrottle::<Vec<u8>>::new(&conn, "app", Quota::per_second(1)).unwrap();
    for key in [&b"alice"[..], b"", b"{x}:y", b"\xff"] {
        limits.try_acquire(&timer, key).await.unwrap();
        limited(limits.try_acquire(&timer, key).await);
    }
    // Another name is outside the pattern: the server refuses it.
    let other = RedisKeyedThrottle::<String>::new(&conn, "apps", Quota::per_second(1)).unwrap();
    let err = other.try_acquire(&timer, "alice").await.unwrap_err();
    let ThrottleError::Backend(backend) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(backend.kind(), BackendErrorKind::Server);
}
