//! A RedisGate holder that is a separate process and dies by `kill -9`: its place returns within
//! the lease TTL, and the next fencing token is larger than the dead holder's.
//!
//! The holder is this test binary run again as a child (`holder_child`, an ignored test that
//! only acts when `DIKE_REDIS_HOLDER_URLS` is set): it takes the permit, prints
//! `HOLDING <token>`, then renews every quarter lease until it is killed. The child is killed
//! when its guard drops (also on a failed assertion) and when the test process dies
//! (PR_SET_PDEATHSIG).

// The process-wide test lock is held across awaits on purpose: each test has its own runtime
// and rate tests must run one at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dike::error::TooManyCallsKind;
use dike::time::TokioTimer;
use dike_redis::{Connection, GateError, RedisGate};
use support::{Redis, serial};

const URLS: &str = "DIKE_REDIS_HOLDER_URLS";
const NAME: &str = "DIKE_REDIS_HOLDER_NAME";
const LEASE_MS: &str = "DIKE_REDIS_HOLDER_LEASE_MS";

async fn connect(urls: &[String]) -> Connection {
    match urls {
        [one] => Connection::open(one).unwrap(),
        many => {
            let many: Vec<&str> = many.iter().map(String::as_str).collect();
            Connection::open_cluster(&many).await.unwrap()
        }
    }
}

/// The holder process. Run by `a_holder_process_killed_with_sigkill_...` with the environment
/// set; run by hand (`--ignored`) without it, it returns at once.
#[test]
#[ignore = "the child process of a_holder_process_killed_with_sigkill_frees_its_place_within_the_lease"]
fn holder_child() {
    let Ok(urls) = std::env::var(URLS) else {
        return;
    };
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    let name = std::env::var(NAME).unwrap();
    let lease = Duration::from_millis(std::env::var(LEASE_MS).unwrap().parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let conn = connect(&urls).await;
        let gate = RedisGate::new(&conn, &name, 1, lease).unwrap();
        let timer = TokioTimer::new();
        let mut permit = gate.enter(&timer).await.unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "HOLDING {}", permit.token().unwrap()).unwrap();
        out.flush().unwrap();
        drop(out);
        // Alive, the holder keeps its place for as long as it likes.
        loop {
            tokio::time::sleep(lease / 4).await;
            permit.renew(&timer).await.unwrap();
        }
    });
}

/// The child; `kill -9` and reaped when dropped.
struct Holder {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Holder {
    fn spawn(server: &Redis, name: &str, lease: Duration) -> Self {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["holder_child", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(URLS, server.urls().join(","))
            .env(NAME, name)
            .env(LEASE_MS, lease.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; the holder dies with the test thread that spawned
        // it, so not even a killed test run leaves it behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn the holder process");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        // Drains the child's output until it dies, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The token from the child's `HOLDING <token>` line.
    fn wait_holding(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the holder process never said HOLDING");
            // libtest prints `test holder_child ... ` without a newline before the test runs.
            if let Some((_, token)) = line.split_once("HOLDING ") {
                return token.trim().parse().unwrap();
            }
        }
    }

    fn kill_9(&mut self) {
        // SAFETY: kill has no preconditions; the pid is our unreaped child.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 the holder");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_holder_process_killed_with_sigkill_frees_its_place_within_the_lease() {
    let _serial = serial();
    let server = Redis::start();
    let name = "process";
    let lease = Duration::from_millis(400);
    let mut holder = Holder::spawn(&server, name, lease);
    let dead_token = holder.wait_holding();

    let conn = server.connect().await;
    let gate = RedisGate::new(&conn, name, 1, lease).unwrap();
    let timer = TokioTimer::new();
    // Three leases later the living holder (renewing) still has the place: the gate is full.
    tokio::time::sleep(lease * 3).await;
    assert!(
        holder.child.try_wait().unwrap().is_none(),
        "the holder exited"
    );
    let err = gate.try_enter(&timer).await.unwrap_err();
    assert!(
        matches!(&err, GateError::TooManyCalls(e) if e.kind() == TooManyCallsKind::Full),
        "{err}"
    );
    let holders: u64 = server
        .cli(&["ZCARD", &format!("{{dike:{name}}}:gate:holders")])
        .parse()
        .unwrap();
    assert_eq!(holders, 1);

    // A waiter queues behind the living holder and stays blocked.
    let waiter = gate.enter(&timer);
    tokio::pin!(waiter);
    assert!(
        tokio::time::timeout(lease, &mut waiter).await.is_err(),
        "entered while the holder process was alive"
    );

    holder.kill_9();
    let killed = Instant::now();
    let permit = waiter.await.unwrap();
    let waited = killed.elapsed();
    println!("place returned {waited:?} after kill -9 (lease {lease:?})");
    let status = holder.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    // The dead holder renewed at most a quarter lease before the kill: its lease ran out
    // between 3/4 lease and one lease after it, never at once.
    assert!(waited <= lease + Duration::from_millis(500), "{waited:?}");
    assert!(waited >= lease / 2, "{waited:?}");
    let token = permit.token().unwrap();
    assert!(token > dead_token, "{token} after the dead {dead_token}");
    permit.release(&timer).await.unwrap();
    gate.try_enter(&timer)
        .await
        .unwrap()
        .release(&timer)
        .await
        .unwrap();
}
