//! `TokioTimer` on real tokio runtimes: current-thread, multi-thread and paused time.

#[path = "common.rs"]
mod common;

use core::time::Duration;

use dike::time::{Timer, TokioTimer};

fn wall() -> Duration {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed()
}

#[tokio::test(flavor = "current_thread")]
async fn current_thread() {
    let line = common::check_timer("tokio current-thread", TokioTimer::new(), Some(wall)).await;
    println!("{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread() {
    let line = common::check_timer("tokio multi-thread", TokioTimer::new(), Some(wall)).await;
    println!("{line}");
    // Sleeps move between worker threads: TokioSleep is Send.
    let timer = TokioTimer::new();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            tokio::spawn(async move {
                let d = Duration::from_millis(1 + i % 3);
                let start = timer.now();
                timer.sleep(d).await;
                assert!(timer.now() - start >= d);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn paused_time() {
    // No wall-clock check: paused time jumps ahead of the wall.
    let timer = TokioTimer::new();
    let line = common::check_timer("tokio paused", timer, None).await;
    println!("{line}");
    let start = timer.now();
    timer.sleep(Duration::from_secs(3600)).await;
    assert_eq!(timer.now() - start, Duration::from_secs(3600), "auto-advance is exact");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(timer.now() - start >= Duration::from_secs(3605));
}

#[test]
fn created_outside_a_runtime() {
    // The origin may be taken before the runtime exists.
    let timer = TokioTimer::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let start = timer.now();
        timer.sleep(Duration::from_millis(2)).await;
        assert!(timer.now() - start >= Duration::from_millis(2));
    });
}
