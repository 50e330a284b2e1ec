//! `rediss://` against a TLS-only redis-server with a private CA (generated with `openssl`).

// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike_redis::{Connection, GateError, RedisGate, RedisThrottle};
use support::{Node, serial};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl on PATH");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=dike test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_a_password() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("dike-redis-tls-{}", std::process::id()));
    certificates(&dir);
    let node = Node::start_tls(
        &dir.join("server.crt"),
        &dir.join("server.key"),
        &["--requirepass", "tls-s3cret"],
    );
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let url = format!("rediss://:tls-s3cret@127.0.0.1:{}/0", node.port);
    let timer = TokioTimer::new();

    let conn = Connection::open_tls(&url, Some(&ca)).unwrap();
    assert!(!format!("{conn:?}").contains("tls-s3cret"));
    let throttle = RedisThrottle::new(&conn, "tls", Quota::per_second(10)).unwrap();
    throttle.try_acquire(&timer).await.unwrap();
    let gate = RedisGate::new(&conn, "tls", 1, Duration::from_secs(5)).unwrap();
    let held = gate.enter(&timer).await.unwrap();
    // A waiter subscribes over TLS too and wakes on the release.
    let (waited, ()) = futures_util::join!(gate.enter(&timer), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held.release(&timer).await.unwrap();
    });
    waited.unwrap().release(&timer).await.unwrap();

    // Without the CA the server's certificate is not trusted: a clear error, no secret.
    let untrusted = Connection::open(&url).unwrap();
    let gate = RedisGate::new(&untrusted, "tls", 1, Duration::from_secs(5))
        .unwrap()
        .with_timeout(Duration::from_secs(2))
        .unwrap();
    let err = gate.try_enter(&timer).await.unwrap_err();
    assert!(matches!(err, GateError::Backend(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("tls-s3cret"));
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
