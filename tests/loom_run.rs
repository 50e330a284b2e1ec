//! loom models of a run's task set: a task woken from another thread while the run polls,
//! swaps its ready list and stores its waker. A lost wake-up deadlocks `block_on`, and loom
//! reports it. Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_run`.
#![cfg(loom)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;

use dike::run::{Limits, run_all};
use loom::sync::Mutex;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

#[path = "support/loom.rs"]
mod support;
use support::block_on;

/// A one-shot event set from another thread.
#[derive(Default)]
struct Event {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Event {
    fn fire(&self) {
        self.set.store(true, Ordering::SeqCst);
        let waker = self.waker.lock().unwrap().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A task that finishes once its event fired.
struct Task(Arc<Event>, u32);

impl Future for Task {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0.set.load(Ordering::SeqCst) {
            return Poll::Ready(self.1);
        }
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.set.load(Ordering::SeqCst) {
            return Poll::Ready(self.1);
        }
        Poll::Pending
    }
}

#[test]
fn a_task_woken_from_another_thread_is_never_lost() {
    loom::model(|| {
        let event = Arc::new(Event::default());
        let firing = {
            let event = Arc::clone(&event);
            thread::spawn(move || event.fire())
        };
        let out = block_on(run_all([Task(event, 7)], Limits::new()));
        assert_eq!(out, [7]);
        firing.join().unwrap();
    });
}

/// Bounded to 3 preemptions: the unbounded model takes minutes.
#[test]
fn two_tasks_woken_from_two_threads() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let (a, b) = (Arc::new(Event::default()), Arc::new(Event::default()));
        let threads = [Arc::clone(&a), Arc::clone(&b)].map(|e| thread::spawn(move || e.fire()));
        let out = block_on(run_all([Task(a, 1), Task(b, 2)], Limits::new()));
        assert_eq!(out, [1, 2]);
        for t in threads {
            t.join().unwrap();
        }
    });
}
