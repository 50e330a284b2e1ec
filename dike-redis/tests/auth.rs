//! Connections as users deploy them: a password (`requirepass`) and an ACL user limited to the
//! limiters' keys, channels and commands. Credentials never show in Debug, Display or errors.
// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike_redis::{
    BackendErrorKind, Connection, GateError, RedisGate, RedisThrottle, ThrottleError,
};
use support::{Redis, serial};

const ADMIN: &str = "adm1n-secret";
const USER_PASS: &str = "l1miter-secret";

fn server() -> Redis {
    let redis = Redis::standalone_with(&["--requirepass", ADMIN]);
    let acl = [
        "ACL",
        "SETUSER",
        "limiter",
        "on",
        &format!(">{USER_PASS}"),
        "resetkeys",
        "~{dike:app}:*",
        "resetchannels",
        "&{dike:app}:*",
        "-@all",
        "+evalsha",
        "+eval",
        "+script|load",
        "+publish",
        "+subscribe",
        "+unsubscribe",
        "+ping",
        "+hello",
        "+auth",
        "+select",
        // What the scripts call, checked by ACL inside the script too.
        "+time",
        "+get",
        "+set",
        "+zremrangebyscore",
        "+zcard",
        "+zadd",
        "+pexpire",
        "+zrange",
        "+zscore",
        "+zrem",
    ];
    assert_eq!(redis.cli(&acl), "OK");
    redis
}

fn no_secret(text: &str) {
    assert!(
        !text.contains(ADMIN) && !text.contains(USER_PASS),
        "credential leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_limited_to_the_limiter_keys_runs_throttle_and_gate() {
    let _serial = serial();
    let redis = server();
    let port = redis.nodes()[0].port;
    let url = format!("redis://limiter:{USER_PASS}@127.0.0.1:{port}/0");
    let conn = Connection::open(&url).unwrap();
    no_secret(&format!("{conn:?}"));
    let timer = TokioTimer::new();

    let throttle = RedisThrottle::new(&conn, "app", Quota::per_second(100)).unwrap();
    throttle.try_acquire(&timer).await.unwrap();
    no_secret(&format!("{throttle:?}"));

    let gate = Arc::new(RedisGate::new(&conn, "app", 1, Duration::from_secs(10)).unwrap());
    no_secret(&format!("{gate:?}"));
    let held = gate.enter(&timer).await.unwrap();
    // A waiter subscribes (channel permission) and wakes on the release (publish permission).
    let waiter = {
        let gate = gate.clone();
        tokio::spawn(async move {
            let permit = gate.enter(&TokioTimer::new()).await.unwrap();
            permit.release(&TokioTimer::new()).await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    held.release(&timer).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .unwrap()
        .unwrap();

    // Keys outside the user's pattern are refused by the server: a clear error, no secret.
    let other = RedisThrottle::new(&conn, "elsewhere", Quota::per_second(1)).unwrap();
    let err = other.try_acquire(&timer).await.unwrap_err();
    let ThrottleError::Backend(backend) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(backend.kind(), BackendErrorKind::Server);
    no_secret(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn a_password_url_works_and_wrong_credentials_are_errors_without_the_secret() {
    let _serial = serial();
    let redis = server();
    let port = redis.nodes()[0].port;
    let timer = TokioTimer::new();
    let good = Connection::open(&format!("redis://:{ADMIN}@127.0.0.1:{port}/3")).unwrap();
    let throttle = RedisThrottle::new(&good, "app", Quota::per_second(10)).unwrap();
    throttle.try_acquire(&timer).await.unwrap();
    assert_eq!(
        redis.cli(&["-n", "3", "EXISTS", "{dike:app}:throttle"]),
        "1"
    );

    for url in [
        format!("redis://limiter:{ADMIN}@127.0.0.1:{port}/0"),
        format!("redis://:{USER_PASS}@127.0.0.1:{port}/0"),
    ] {
        let conn = Connection::open(&url).unwrap();
        let gate = RedisGate::new(&conn, "app", 1, Duration::from_secs(1))
            .unwrap()
            .with_timeout(Duration::from_millis(500))
            .unwrap();
        let err = gate.try_enter(&timer).await.unwrap_err();
        assert!(matches!(err, GateError::Backend(_)), "{err:?}");
        no_secret(&format!("{err} {err:?} {conn:?}"));
    }
}
