//! loom models of the batcher: a seal racing with a withdrawal, a completion racing with the
//! drop of another member, and a dropped driver racing with a member taking over. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_batch`.
#![cfg(loom)]

use core::convert::Infallible;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::Arc;

use dike::batch::{BatchConfig, BatchFn, Batcher, Rows};
use dike::time::{ManualTimer, Timer};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Mutex, Notify};
use loom::thread;

#[path = "support/loom.rs"]
mod support;
use support::{block_on, poll_once};

fn assert_clean<I: Rows, F: BatchFn<I>, T: Timer>(batcher: &Batcher<I, F, T>) {
    let stats = batcher.stats();
    assert_eq!(
        (stats.batches_in_flight, stats.queued_rows, stats.open_rows),
        (0, 0, 0),
        "{stats:?}"
    );
}

/// A latch the batch function's future waits on, waking it when opened (as a real I/O
/// future would).
#[derive(Default)]
struct Latch(Mutex<(bool, Option<Waker>)>);

impl Latch {
    fn open(&self) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            state.0 = true;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A batch function future that completes once its latch is open.
struct Gated {
    latch: Arc<Latch>,
    rows: Option<Vec<u32>>,
}

impl Future for Gated {
    type Output = Result<Vec<u32>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let open = {
            let mut state = self.latch.0.lock().unwrap();
            if !state.0 {
                state.1 = Some(cx.waker().clone());
            }
            state.0
        };
        if open {
            Poll::Ready(Ok(self.rows.take().unwrap()))
        } else {
            Poll::Pending
        }
    }
}

fn gated_batcher(
    latch: &Arc<Latch>,
) -> Arc<Batcher<Vec<u32>, impl Fn(Vec<u32>) -> Gated + use<>, ManualTimer>> {
    let latch = Arc::clone(latch);
    Arc::new(
        Batcher::new(
            ManualTimer::new(),
            BatchConfig::new(2, Duration::from_secs(1)),
            move |rows: Vec<u32>| Gated {
                latch: Arc::clone(&latch),
                rows: Some(rows),
            },
        )
        .unwrap(),
    )
}

/// A call dropped (withdrawing its row) while another call's push seals the batch: the row
/// is either withdrawn (never sent) or sealed in (sent, slice discarded); the other call gets
/// its result either way and nothing is left behind.
#[test]
fn seal_races_with_withdraw() {
    loom::model(|| {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        let batcher = Arc::new(
            Batcher::new(
                ManualTimer::new(),
                BatchConfig::new(2, Duration::from_secs(1)),
                move |rows: Vec<u32>| {
                    log.lock().unwrap().push(rows.clone());
                    core::future::ready(Ok::<_, Infallible>(rows))
                },
            )
            .unwrap(),
        );
        let mut a = batcher.call_owned(vec![1]);
        assert!(poll_once(&mut a).is_pending());
        let pushed = Arc::new((AtomicBool::new(false), Notify::new()));
        let other = {
            let (batcher, pushed) = (Arc::clone(&batcher), Arc::clone(&pushed));
            thread::spawn(move || {
                let mut b = batcher.call(vec![2]);
                let first = poll_once(&mut b);
                pushed.0.store(true, Ordering::SeqCst);
                pushed.1.notify();
                match first {
                    Poll::Ready(out) => out,
                    Poll::Pending => block_on(b),
                }
            })
        };
        drop(a);
        while !pushed.0.load(Ordering::SeqCst) {
            pushed.1.wait(); // may wake spuriously
        }
        batcher.flush(); // b alone in a fresh batch: seal it now
        assert_eq!(other.join().unwrap(), Ok(vec![2]));
        let sent = sent.lock().unwrap().clone();
        assert!(sent == [vec![2]] || sent == [vec![1, 2]], "{sent:?}");
        assert_clean(&batcher);
    });
}

/// The driver completes the batch while another member is dropped: the driver gets its
/// result, the dropped member's slice is discarded, nothing is left behind.
#[test]
fn complete_races_with_drop() {
    loom::model(|| {
        let latch = Arc::new(Latch::default());
        let batcher = gated_batcher(&latch);
        let mut a = batcher.call_owned(vec![1]);
        assert!(poll_once(&mut a).is_pending());
        let mut b = batcher.call(vec![2]);
        assert!(poll_once(&mut b).is_pending(), "sealed and started, gated");
        let dropper = thread::spawn(move || drop(a));
        latch.open();
        assert_eq!(poll_once(&mut b), Poll::Ready(Ok(vec![2])));
        dropper.join().unwrap();
        drop(b);
        assert_clean(&batcher);
    });
}

/// The driver of a batch is dropped while the other member polls: the other member either
/// takes the work over or is woken to, and completes (`block_on` deadlocks, and loom reports
/// it, if no wake comes).
#[test]
fn dropped_driver_races_with_the_other_member() {
    loom::model(|| {
        let latch = Arc::new(Latch::default());
        let batcher = gated_batcher(&latch);
        let mut a = batcher.call(vec![1]);
        assert!(poll_once(&mut a).is_pending());
        let driver = {
            let (batcher, latch) = (Arc::clone(&batcher), Arc::clone(&latch));
            thread::spawn(move || {
                let mut b = batcher.call(vec![2]);
                assert!(poll_once(&mut b).is_pending(), "b drives the gated batch");
                latch.open();
                drop(b);
            })
        };
        assert_eq!(block_on(&mut a), Ok(vec![1]));
        driver.join().unwrap();
        assert_clean(&batcher);
    });
}
