//! `Throttle` on a real embassy executor (embassy-executor's std platform, embassy-time's std
//! driver), as on a microcontroller: a `static` throttle, `EmbassyTimer`, no allocation in the
//! task.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Mutex;

use dike::throttle::{Quota, Throttle};
use dike::time::{EmbassyTimer, Timer};
use embassy_executor::Executor;

/// 200 per second, burst 2: starts 0, 0, then every 5 ms.
static THROTTLE: Throttle = Throttle::const_new(Quota::per_second(200).with_burst(2));
static DONE: AtomicBool = AtomicBool::new(false);
static STARTS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

#[embassy_executor::task]
async fn run() {
    let timer = EmbassyTimer::new();
    let mut starts = [Duration::ZERO; 6];
    for start in &mut starts {
        THROTTLE.acquire(timer).await;
        *start = timer.now();
    }
    STARTS.lock().unwrap().extend(starts);
    DONE.store(true, Ordering::SeqCst);
}

#[test]
fn acquire_spaces_starts_on_embassy() {
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(
        |spawner| spawner.spawn(run().expect("task slot free")),
        || DONE.load(Ordering::SeqCst),
    );
    let starts = STARTS.lock().unwrap().clone();
    assert_eq!(starts.len(), 6);
    // Within the quota in every window: at most 2 + ⌊w / 5 ms⌋ starts in a window of length
    // w. (With a burst of 2 a late wake leaves slack, so one gap may be under 5 ms.)
    let t = Duration::from_millis(5);
    for (i, &a) in starts.iter().enumerate() {
        for (j, &b) in starts.iter().enumerate().skip(i) {
            let bound = 2 + ((b - a).as_nanos() / t.as_nanos()) as usize;
            assert!(
                j - i < bound,
                "{} starts in [{a:?}, {b:?}]: {starts:?}",
                j - i + 1
            );
        }
    }
    // And the schedule from the first start: the k-th start no earlier than (k - 1) × 5 ms.
    for (k, &s) in starts.iter().enumerate().skip(1) {
        assert!(s - starts[0] >= t * (k as u32 - 1), "start {k}: {starts:?}");
    }
    println!("embassy: starts {starts:?}");
}
