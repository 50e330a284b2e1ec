//! loom models of the throttle's one atomic: racing admissions never over-admit, and a waiter
//! dropped while racing an admission takes nothing.
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_throttle`

#![cfg(loom)]

use core::future::{Future, pending};
use core::pin::pin;
use core::task::{Context, Waker};
use core::time::Duration;

use dike::throttle::{Quota, Throttle};
use dike::time::timer_fn;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;

/// A clock frozen at `at`, whose sleeps never end: every admission happens at one instant.
fn frozen(at: Duration) -> impl dike::time::Timer + Send + Sync + 'static {
    timer_fn(move || at, |_| pending::<()>())
}

#[test]
fn racing_try_acquires_admit_exactly_the_burst() {
    loom::model(|| {
        let throttle = Arc::new(Throttle::new(Quota::per_second(1).with_burst(2)).unwrap());
        let admitted = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (throttle, admitted) = (throttle.clone(), admitted.clone());
                thread::spawn(move || {
                    for _ in 0..2 {
                        if throttle.try_acquire(frozen(Duration::ZERO)).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 2);
        let err = throttle.try_acquire(frozen(Duration::ZERO)).unwrap_err();
        assert_eq!(err.ready_at(), Duration::from_secs(1));
    });
}

#[test]
fn a_cost_is_all_or_nothing_under_a_race() {
    loom::model(|| {
        let throttle = Arc::new(Throttle::new(Quota::per_second(1).with_burst(2)).unwrap());
        let other = throttle.clone();
        let pair = thread::spawn(move || other.try_acquire_n(frozen(Duration::ZERO), 2).is_ok());
        let one = throttle.try_acquire(frozen(Duration::ZERO)).is_ok();
        let pair = pair.join().unwrap();
        // 2 of capacity 2: exactly one of the two requests fits, whichever is first.
        assert!(one != pair, "one: {one}, pair: {pair}");
        // The single unit left one unit of the burst; the refused pair took none of it.
        if one {
            assert!(throttle.try_acquire(frozen(Duration::ZERO)).is_ok());
        }
        let err = throttle.try_acquire(frozen(Duration::ZERO)).unwrap_err();
        assert_eq!(err.ready_at(), Duration::from_secs(1));
    });
}

#[test]
fn a_waiter_dropped_while_racing_an_admission_takes_nothing() {
    loom::model(|| {
        let throttle = Arc::new(Throttle::per_second(1).unwrap());
        let other = throttle.clone();
        let waiter = thread::spawn(move || {
            let timer = frozen(Duration::ZERO);
            let mut wait = pin!(other.acquire(&timer));
            let ready = wait
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready();
            // dropped here, ready or not
            ready
        });
        let direct = throttle.try_acquire(frozen(Duration::ZERO)).is_ok();
        let waited = waiter.join().unwrap();
        // The one unit at 0 s went to exactly one of them; a pending waiter that was dropped
        // left the schedule untouched: the next unit is due at 1 s, not later.
        assert!(direct != waited, "direct: {direct}, waited: {waited}");
        let err = throttle.try_acquire(frozen(Duration::ZERO)).unwrap_err();
        assert_eq!(err.ready_at(), Duration::from_secs(1));
        assert_eq!(throttle.try_acquire(frozen(Duration::from_secs(1))), Ok(()));
    });
}

#[test]
fn a_head_dropped_while_another_waiter_joins_passes_the_line_on() {
    loom::model(|| {
        let throttle = Arc::new(Throttle::per_second(1).unwrap());
        throttle.try_acquire(frozen(Duration::ZERO)).unwrap();
        let other = throttle.clone();
        // At 1 s the next unit is due: the joiner takes it if it reaches the head.
        let joiner = thread::spawn(move || {
            let timer = frozen(Duration::from_secs(1));
            let mut wait = pin!(other.acquire(&timer));
            wait.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready()
            // dropped here, queued or not
        });
        {
            // The head, at 0 s: refused, it holds the line while it would sleep; then dropped.
            let timer = frozen(Duration::ZERO);
            let mut head = pin!(throttle.acquire(&timer));
            let polled = head.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            assert!(polled.is_pending());
        }
        let joined = joiner.join().unwrap();
        // Nobody is left in the line, and the unit at 1 s went to the joiner or is still free.
        assert!(format!("{throttle:?}").contains("waiting: 0"));
        let at_one = throttle.try_acquire(frozen(Duration::from_secs(1)));
        assert_eq!(at_one.is_ok(), !joined, "joined: {joined}");
    });
}
