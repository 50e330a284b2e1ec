//! Checks every runtime adapter must pass on its real executor.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use dike::time::Timer;

/// Sleeps asked of each adapter: sub-millisecond, odd and whole milliseconds.
pub const SLEEPS: [Duration; 4] = [
    Duration::from_micros(300),
    Duration::from_micros(1_500),
    Duration::from_millis(3),
    Duration::from_millis(5),
];

/// Runs the adapter contract on `timer`; `real_now` reads an independent real clock (where the
/// platform has one) so early firing is caught against wall time too. Returns a one-line
/// summary of what was measured.
pub async fn check_timer<T: Timer>(
    name: &str,
    timer: T,
    real_now: Option<fn() -> Duration>,
) -> String {
    // now() is monotone.
    let mut last = timer.now();
    for _ in 0..10_000 {
        let now = timer.now();
        assert!(
            now >= last,
            "{name}: now() went backwards: {last:?} -> {now:?}"
        );
        last = now;
    }

    // Deadlines already reached complete on the first poll.
    let past = timer.now();
    assert!(
        poll_once(timer.sleep_until(past)).is_ready(),
        "{name}: past deadline"
    );
    assert!(
        poll_once(timer.sleep(Duration::ZERO)).is_ready(),
        "{name}: zero sleep"
    );

    // Unreachable and far (but representable) deadlines stay pending and never panic.
    assert!(
        poll_once(timer.sleep(Duration::from_secs(1 << 40))).is_pending(),
        "{name}: 35 000 years"
    );
    assert!(
        poll_once(timer.sleep_until(Duration::MAX)).is_pending(),
        "{name}: MAX"
    );
    assert!(
        poll_once(timer.sleep(Duration::MAX)).is_pending(),
        "{name}: sleep(MAX)"
    );

    // Real sleeps never end early, by the timer's own clock and by wall time.
    let mut slept = Vec::new();
    for d in SLEEPS {
        let start = timer.now();
        let real_start = real_now.map(|f| f());
        timer.sleep(d).await;
        let elapsed = timer.now() - start;
        assert!(elapsed >= d, "{name}: sleep({d:?}) ended after {elapsed:?}");
        if let (Some(f), Some(real_start)) = (real_now, real_start) {
            let real = f() - real_start;
            assert!(
                real >= d,
                "{name}: sleep({d:?}) ended after {real:?} of wall time"
            );
        }
        // sleep_until an absolute deadline.
        let deadline = timer.now() + d;
        timer.sleep_until(deadline).await;
        assert!(timer.now() >= deadline, "{name}: sleep_until woke early");
        slept.push(format!("{d:?}->{elapsed:?}"));
    }
    format!(
        "{name}: now() monotone over 10000 reads; no sleep early: {}",
        slept.join(", ")
    )
}

fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let fut = pin!(fut);
    fut.poll(&mut Context::from_waker(Waker::noop()))
}
