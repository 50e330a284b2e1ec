//! `EmbassyTimer` on a real embassy executor on the host (embassy-executor's std platform with
//! embassy-time's std driver).

#[path = "common.rs"]
mod common;

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Mutex;

use dike::time::EmbassyTimer;
use embassy_executor::Executor;

static DONE: AtomicBool = AtomicBool::new(false);
static REPORT: Mutex<String> = Mutex::new(String::new());

fn wall() -> Duration {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed()
}

#[embassy_executor::task]
async fn check() {
    let line = common::check_timer("embassy", EmbassyTimer::new(), Some(wall)).await;
    *REPORT.lock().unwrap() = line;
    DONE.store(true, Ordering::SeqCst);
}

#[test]
fn embassy_executor() {
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(
        |spawner| spawner.spawn(check().expect("task slot free")),
        || DONE.load(Ordering::SeqCst),
    );
    let line = REPORT.lock().unwrap().clone();
    assert!(line.starts_with("embassy:"), "the check ran to the end");
    println!("{line}");
}
