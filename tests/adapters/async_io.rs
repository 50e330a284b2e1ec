//! `AsyncIoTimer` on smol's and async-std's executors.

#[path = "common.rs"]
mod common;

use core::time::Duration;

use dike::gate::Gate;
use dike::throttle::Throttle;
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

/// A `static` timer: `new` is `const`.
static TIMER: AsyncIoTimer = AsyncIoTimer::new();

#[test]
fn two_timers_agree_on_now() {
    // Real time moves between the reads: `first` then `second` then `first` again must be
    // ordered, whichever instance reads.
    let first = AsyncIoTimer::new();
    std::thread::sleep(Duration::from_millis(20));
    let second = AsyncIoTimer::new();
    for _ in 0..1_000 {
        let a = first.now();
        let b = second.now();
        let c = TIMER.now();
        let d = first.now();
        assert!(a <= b && b <= c && c <= d, "{a:?} {b:?} {c:?} {d:?}");
    }
    // On per-instance origins `second` would read 20 ms less than `first`.
    assert!(first.now().abs_diff(second.now()) < Duration::from_millis(5));
}

#[test]
fn a_fresh_timer_per_acquire_paces_correctly() {
    // 6 acquires of a 100/s throttle, each through a fresh timer: 5 intervals of 10 ms.
    let throttle = Throttle::per_second(100).unwrap();
    let start = std::time::Instant::now();
    smol::block_on(async {
        for _ in 0..6 {
            throttle.acquire(AsyncIoTimer::new()).await;
        }
    });
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_000), "{elapsed:?}");
}

#[test]
fn sleeps_built_outside_an_executor_are_polled_inside() {
    let timer = AsyncIoTimer::new();
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let sleep = timer.sleep(Duration::from_millis(2));
    let timed_out = gate.enter_timeout(&timer, Duration::from_millis(3));
    smol::block_on(async {
        let start = timer.now();
        sleep.await;
        assert!(timer.now() - start >= Duration::from_millis(2));
        assert!(
            timed_out.await.is_err(),
            "the held permit outlives the wait"
        );
    });
    drop(held);
}

#[test]
fn a_completed_sleep_stays_ready() {
    let timer = AsyncIoTimer::new();
    smol::block_on(async {
        let mut sleep = core::pin::pin!(timer.sleep(Duration::from_millis(1)));
        (&mut sleep).await;
        assert!(futures_util::poll!(sleep.as_mut()).is_ready());
        assert!(futures_util::poll!(sleep.as_mut()).is_ready());
    });
}
