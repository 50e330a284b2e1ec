//! loom models of the coalescer's in-flight map: every interleaving of a join with the run's
//! completion, with the last waiter's drop, and of a driver's drop with the work's wake. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_coalesce`.
#![cfg(loom)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;

use dike::coalesce::Coalescer;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Mutex, Notify};
use loom::thread;

#[path = "support/loom.rs"]
mod support;
use support::{Unpark, block_on, poll_once};

type Co = Coalescer<u8, u32, ()>;

/// A work released by another thread: pending until `release`, waking the waker it holds.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn release(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

struct Gated(Arc<Gate>, u32);

impl Future for Gated {
    type Output = Result<u32, ()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0.open.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(self.1));
        }
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.open.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(self.1));
        }
        Poll::Pending
    }
}

/// A second call joins while the first completes its run: it either joins (and gets the
/// first value) or comes after the key was freed (and runs its own work). Either way both
/// complete and the key ends free.
#[test]
fn a_join_racing_with_completion() {
    loom::model(|| {
        let co = Arc::new(Co::new());
        let first = co.run_owned(&1, || async { Ok(1) });
        let joiner = {
            let co = Arc::clone(&co);
            thread::spawn(move || block_on(co.run_owned(&1, || async { Ok(2) })))
        };
        let a = block_on(first);
        let b = joiner.join().unwrap();
        assert_eq!(a.into_result(), Ok(1));
        if b.is_joined() {
            assert_eq!(b.into_result(), Ok(1));
        } else {
            assert_eq!(b.into_result(), Ok(2));
        }
        assert_eq!(co.in_flight(), 0);
    });
}

/// The run's only waiter is dropped while another thread joins: either the joiner got in
/// first and drives the first work to its end, or the run was abandoned and the joiner runs
/// its own. It is never left waiting for a work nobody drives.
#[test]
fn a_join_racing_with_the_last_waiter_drop() {
    loom::model(|| {
        let co = Arc::new(Co::new());
        let gate = Arc::new(Gate::default());
        let mut first = co.run_owned(&1, {
            let gate = Arc::clone(&gate);
            move || Gated(gate, 1)
        });
        assert!(poll_once(&mut first).is_pending());
        let joiner = {
            let co = Arc::clone(&co);
            thread::spawn(move || block_on(co.run_owned(&1, || async { Ok(2) })))
        };
        let releaser = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.release())
        };
        drop(first);
        let b = joiner.join().unwrap();
        releaser.join().unwrap();
        if b.is_joined() {
            assert_eq!(b.into_result(), Ok(1));
        } else {
            assert_eq!(b.into_result(), Ok(2));
        }
        assert_eq!(co.in_flight(), 0);
    });
}

/// The driver (whose waker the work holds) is dropped while the work is woken: the other
/// waiter is handed the driving and completes with the shared value.
#[test]
fn a_driver_dropped_while_the_work_wakes_hands_on() {
    loom::model(|| {
        let co = Arc::new(Co::new());
        let gate = Arc::new(Gate::default());
        let mut waiter = co.run_owned(&1, {
            let gate = Arc::clone(&gate);
            move || Gated(gate, 7)
        });
        let mut driver = co.run_owned(&1, || async { Ok(0) });
        let unpark = Arc::new(Unpark(Notify::new()));
        let waker = Waker::from(Arc::clone(&unpark));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut waiter).poll(&mut cx).is_pending());
        assert!(
            poll_once(&mut driver).is_pending(),
            "takes over the driving"
        );
        let releaser = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.release())
        };
        let dropper = thread::spawn(move || drop(driver));
        // The work holds the driver's (no-op) waker: `waiter` is polled again only once
        // something wakes it, here the hand-off by the dropped driver.
        let outcome = loop {
            unpark.0.wait();
            if let Poll::Ready(outcome) = Pin::new(&mut waiter).poll(&mut cx) {
                break outcome;
            }
        };
        releaser.join().unwrap();
        dropper.join().unwrap();
        assert_eq!(outcome.into_result(), Ok(7));
        assert_eq!(co.in_flight(), 0);
    });
}
