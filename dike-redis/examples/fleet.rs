//! Three "replicas" in one process sharing a fleet-wide 10/s throttle and a gate of 3 on a
//! local Redis (started here, on a free port, and stopped at the end), then a per-tenant
//! limit of 5/s shared by the same replicas (`RedisKeyedThrottle`).
//!
//! ```sh
//! cargo run -p dike-redis --example fleet
//! ```
//!
//! Needs `redis-server` on PATH (Debian: `apt-get install -y redis-server`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike_redis::{Connection, RedisGate, RedisKeyedThrottle, RedisThrottle};

/// A throwaway redis-server, killed on drop.
struct LocalRedis(Child, u16);

impl LocalRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (Debian: apt-get install -y redis-server)");
        let redis = Self(child, port);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const REPLICAS: usize = 3;
const SECONDS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = LocalRedis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.1);
    // admitted[replica][second]
    let admitted: Arc<Vec<Vec<AtomicUsize>>> = Arc::new(
        (0..REPLICAS)
            .map(|_| (0..=SECONDS).map(|_| AtomicUsize::new(0)).collect())
            .collect(),
    );
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let start = tokio::time::Instant::now();
    let mut workers = Vec::new();
    for replica in 0..REPLICAS {
        // Each replica has its own connection, as separate processes would.
        let conn = Connection::open(&url)?;
        let throttle = Arc::new(RedisThrottle::new(
            &conn,
            "fleet-api",
            Quota::per_second(10),
        )?);
        let gate = Arc::new(RedisGate::new(
            &conn,
            "fleet-db",
            3,
            Duration::from_secs(5),
        )?);
        for _ in 0..4 {
            let (throttle, gate) = (throttle.clone(), gate.clone());
            let (admitted, inside, peak) = (admitted.clone(), inside.clone(), peak.clone());
            workers.push(tokio::spawn(async move {
                let timer = TokioTimer::new();
                while start.elapsed() < Duration::from_secs(SECONDS as u64) {
                    throttle.acquire(&timer).await?;
                    let second = start.elapsed().as_secs() as usize;
                    admitted[replica][second.min(SECONDS)].fetch_add(1, Ordering::Relaxed);
                    let permit = gate.enter(&timer).await?;
                    peak.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(400)).await; // the work
                    inside.fetch_sub(1, Ordering::SeqCst);
                    permit.release(&timer).await?;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }));
        }
    }
    for worker in workers {
        worker.await?.map_err(|e| e.to_string())?;
    }
    for second in 0..SECONDS {
        let per: Vec<usize> = (0..REPLICAS)
            .map(|r| admitted[r][second].load(Ordering::Relaxed))
            .collect();
        let line: Vec<String> = per
            .iter()
            .enumerate()
            .map(|(r, n)| format!("replica {r}: {n:2}"))
            .collect();
        println!(
            "second {second}: {}  | fleet: {:2}/s (limit 10/s)",
            line.join("  "),
            per.iter().sum::<usize>()
        );
    }
    println!(
        "at most {} in the gate at once (limit 3)",
        peak.load(Ordering::SeqCst)
    );
    per_tenant(&url).await?;
    drop(redis);
    Ok(())
}

/// One second of calls from every replica for two tenants under 5/s per tenant (burst 5): the
/// greedy tenant gets its 5 + 5 across the fleet, the polite one everything it asks for.
async fn per_tenant(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tenants = [("greedy", 10), ("polite", 500)]; // (tenant, ms between calls per replica)
    let admitted: Arc<Vec<[AtomicUsize; 2]>> = Arc::new(
        (0..tenants.len())
            .map(|_| [AtomicUsize::new(0), AtomicUsize::new(0)])
            .collect(),
    );
    let start = tokio::time::Instant::now();
    let mut workers = Vec::new();
    for _ in 0..REPLICAS {
        let conn = Connection::open(url)?;
        // The one-line change from `dike::keyed::KeyedThrottle::<String>::new(quota)`.
        let limits = Arc::new(RedisKeyedThrottle::<String>::new(
            &conn,
            "fleet-tenants",
            Quota::per_second(5).with_burst(5),
        )?);
        for (t, (tenant, every)) in tenants.into_iter().enumerate() {
            let (limits, admitted) = (limits.clone(), admitted.clone());
            workers.push(tokio::spawn(async move {
                let timer = TokioTimer::new();
                while start.elapsed() < Duration::from_secs(1) {
                    let ok = limits.try_acquire(&timer, tenant).await.is_ok();
                    admitted[t][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(every)).await;
                }
            }));
        }
    }
    for worker in workers {
        worker.await?;
    }
    for (t, (tenant, _)) in tenants.iter().enumerate() {
        println!(
            "tenant {tenant}: {} admitted, {} refused across the fleet in 1 s (limit 5/s, burst 5)",
            admitted[t][0].load(Ordering::Relaxed),
            admitted[t][1].load(Ordering::Relaxed)
        );
    }
    Ok(())
}
