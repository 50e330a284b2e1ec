//! `AsyncIoTimer` on smol's and async-std's executors.

#[path = "common.rs"]
mod common;

use core::time::Duration;

use dike::time::{AsyncIoTimer, Timer};

fn wall() -> Duration {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed()
}

#[test]
fn smol_block_on() {
    let line = smol::block_on(common::check_timer("smol", AsyncIoTimer::new(), Some(wall)));
    println!("{line}");
}

#[test]
fn smol_executor_tasks() {
    let ex = smol::Executor::new();
    let timer = AsyncIoTimer::new();
    smol::block_on(ex.run(async {
        let tasks: Vec<_> = (0..8u64)
            .map(|i| {
                ex.spawn(async move {
                    let d = Duration::from_millis(1 + i % 3);
                    let start = timer.now();
                    timer.sleep(d).await;
                    assert!(timer.now() - start >= d);
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    }));
}

#[test]
fn async_std_executor() {
    let line = async_std::task::block_on(async_std::task::spawn(common::check_timer(
        "async-std",
        AsyncIoTimer::new(),
        Some(wall),
    )));
    println!("{line}");
}
