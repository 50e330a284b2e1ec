//! `EmbassyTimer` on a real embassy executor on the host (embassy-executor's std platform with
//! embassy-time's std driver).

#[path = "common.rs"]
mod common;

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Mutex;

use dike::gate::{EnterTimeout, Gate, Permit};
use dike::time::{EmbassySleep, EmbassyTimer, Timer};
use embassy_executor::Executor;

static DONE: AtomicBool = AtomicBool::new(false);
static REPORT: Mutex<String> = Mutex::new(String::new());

static TIMER: EmbassyTimer = EmbassyTimer::new();
static GATE: Gate = Gate::new(1);
/// Futures built before the executor runs, polled by its task.
type Built = (
    Duration,
    EmbassySleep,
    EnterTimeout<'static, EmbassyTimer>,
    Permit<'static>,
);
static BUILT: Mutex<Option<Built>> = Mutex::new(None);

fn wall() -> Duration {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed()
}

#[embassy_executor::task]
async fn check() {
    // Built outside the executor, polled inside.
    let (deadline, sleep, timed_out, held) = BUILT.lock().unwrap().take().expect("built");
    sleep.await;
    assert!(TIMER.now() >= deadline);
    assert!(
        timed_out.await.is_err(),
        "the held permit outlives the wait"
    );
    drop(held);
    assert!(GATE.try_enter().is_ok());

    // A completed sleep stays ready.
    let mut sleep = core::pin::pin!(TIMER.sleep(Duration::from_millis(1)));
    (&mut sleep).await;
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    assert!(core::future::Future::poll(sleep.as_mut(), &mut cx).is_ready());
    assert!(core::future::Future::poll(sleep.as_mut(), &mut cx).is_ready());

    let line = common::check_timer("embassy", EmbassyTimer::new(), Some(wall)).await;
    *REPORT.lock().unwrap() = line;
    DONE.store(true, Ordering::SeqCst);
}

#[test]
fn embassy_executor() {
    // Build a sleep and a timed gate entry before any executor exists.
    let held = GATE.try_enter().unwrap();
    let deadline = TIMER.now() + Duration::from_millis(2);
    let sleep = TIMER.sleep_until(deadline);
    let timed_out = GATE.enter_timeout(&TIMER, Duration::from_millis(3));
    *BUILT.lock().unwrap() = Some((deadline, sleep, timed_out, held));

    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(
        |spawner| spawner.spawn(check().expect("task slot free")),
        || DONE.load(Ordering::SeqCst),
    );
    let line = REPORT.lock().unwrap().clone();
    assert!(line.starts_with("embassy:"), "the check ran to the end");
    println!("{line}");
}
