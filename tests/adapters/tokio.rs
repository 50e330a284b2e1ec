//! `TokioTimer` on real tokio runtimes: current-thread, multi-thread and paused time.

#[path = "common.rs"]
mod common;

use core::time::Duration;

use dike::gate::Gate;
use dike::throttle::Throttle;
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
    assert_eq!(
        timer.now() - start,
        Duration::from_secs(3600),
        "auto-advance is exact"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(timer.now() - start >= Duration::from_secs(3605));
}

#[test]
fn created_outside_a_runtime() {
    // The origin may be taken before the runtime exists.
    let timer = TokioTimer;
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

/// A `static` timer: `new` is `const`.
static TIMER: TokioTimer = TokioTimer::new();

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn two_timers_agree_on_now() {
    // Paused time: the clock moves only when told, so the readings compare exactly.
    let first = TokioTimer::new();
    tokio::time::advance(Duration::from_secs(1)).await;
    let second = TokioTimer::new();
    assert_eq!(first.now(), second.now());
    assert_eq!(TIMER.now(), first.now());
    assert_eq!(TokioTimer.now(), first.now());
    let before = first.now();
    tokio::time::advance(Duration::from_millis(250)).await;
    assert_eq!(second.now() - before, Duration::from_millis(250));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_fresh_timer_per_acquire_paces_correctly() {
    // Issue 11's trap: `throttle.acquire(TokioTimer::new())` in a handler. 30 acquires of a
    // 20/s throttle take 29 intervals of 50 ms (each wait rounded up to tokio's 1 ms tick),
    // not 16 s.
    let throttle = Throttle::per_second(20).unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..30 {
        throttle.acquire(TokioTimer::new()).await;
    }
    let elapsed = start.elapsed();
    let ideal = Duration::from_millis(50 * 29);
    assert!(
        elapsed >= ideal && elapsed <= ideal + Duration::from_millis(30),
        "30 acquires took {elapsed:?}"
    );
}

#[test]
fn sleeps_built_outside_a_runtime_are_polled_inside() {
    // Building a sleep (or a timed gate entry holding one) touches no runtime: the tokio
    // `Sleep` is created on the first poll.
    let timer = TokioTimer::new();
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let sleep = timer.sleep(Duration::from_millis(2));
    let until = timer.sleep_until(Duration::MAX);
    let timed_out = gate.enter_timeout(&timer, Duration::from_millis(3));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let start = timer.now();
        sleep.await;
        assert!(timer.now() - start >= Duration::from_millis(2));
        assert!(
            timed_out.await.is_err(),
            "the held permit outlives the wait"
        );
        let mut until = core::pin::pin!(until);
        assert!(
            futures_util::poll!(until.as_mut()).is_pending(),
            "MAX is never"
        );
    });
    drop(held);
    // Built outside, polled inside, then dropped outside again.
    let entry = gate.enter_timeout(&timer, Duration::from_secs(1));
    let permit = rt.block_on(entry).expect("the gate is free");
    drop(permit);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_completed_sleep_stays_ready() {
    let timer = TokioTimer::new();
    let mut sleep = core::pin::pin!(timer.sleep(Duration::from_millis(5)));
    (&mut sleep).await;
    assert!(futures_util::poll!(sleep.as_mut()).is_ready());
    assert!(futures_util::poll!(sleep.as_mut()).is_ready());
}

#[test]
fn debug_names_the_timer() {
    assert_eq!(format!("{:?}", TokioTimer::new()), "TokioTimer");
    let sleep = TokioTimer::new().sleep(Duration::from_secs(1));
    assert_eq!(format!("{sleep:?}"), "TokioSleep { state: \"unpolled\" }");
}
