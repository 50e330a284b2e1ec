//! Poll-level tests of the coalescer: every wake is counted, the work is a future released by
//! hand.

use crate::test_util::{Counter, counting, poll, wakes};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use std::sync::Mutex;

use super::{Coalescer, Hooks, RunError, Stats};

/// A work released by hand: pending until [`Release::release`], then `Ok(value)`. Records the
/// waker it was last polled with, and whether it was dropped.
#[derive(Default)]
struct Release {
    released: AtomicBool,
    waker: Mutex<Option<Waker>>,
    polls: AtomicUsize,
    dropped: AtomicBool,
}

impl Release {
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }

    fn work(self: &Arc<Self>, value: u32) -> impl Future<Output = Result<u32, String>> + use<> {
        struct Work(Arc<Release>, u32);
        impl Future for Work {
            type Output = Result<u32, String>;
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                self.0.polls.fetch_add(1, Ordering::SeqCst);
                if self.0.released.load(Ordering::SeqCst) {
                    return Poll::Ready(Ok(self.1));
                }
                *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
        impl Drop for Work {
            fn drop(&mut self) {
                self.0.dropped.store(true, Ordering::SeqCst);
            }
        }
        Work(Arc::clone(self), value)
    }
}

type Co = Coalescer<String, u32, String>;

#[test]
fn a_lone_call_ready_at_once_wakes_nobody() {
    let co = Co::new();
    let (counter, waker) = counting();
    let mut run = co.run("k", || async { Ok(1) });
    assert_eq!(co.in_flight(), 1);
    let Poll::Ready(outcome) = poll(&mut run, &waker) else {
        panic!("ready at once");
    };
    assert_eq!(outcome.into_result(), Ok(1));
    assert_eq!(wakes(&counter), 0);
    assert_eq!(co.in_flight(), 0);
}

#[test]
fn completion_wakes_each_waiting_joiner_once() {
    let co = Co::new();
    let work = Arc::new(Release::default());
    let mut first = co.run("k", || work.work(7));
    let mut joiners: Vec<_> = (0..3)
        .map(|_| {
            co.run("k", || -> core::future::Ready<Result<u32, String>> {
                unreachable!()
            })
        })
        .collect();
    let (c0, w0) = counting();
    assert!(poll(&mut first, &w0).is_pending());
    let counters: Vec<_> = joiners
        .iter_mut()
        .map(|j| {
            let (c, w) = counting();
            assert!(poll(j, &w).is_pending(), "the work is not done");
            (c, w)
        })
        .collect();
    // Polled while the work was idle, the joiners took turns driving it; the last one holds it.
    assert_eq!(work.polls.load(Ordering::SeqCst), 4);
    work.release();
    // Only the last driver (the last joiner) is woken by the work itself.
    assert_eq!(wakes(&counters[2].0), 1);
    assert_eq!(
        wakes(&c0) + wakes(&counters[0].0) + wakes(&counters[1].0),
        0
    );
    let Poll::Ready(last) = poll(&mut joiners[2], &counters[2].1) else {
        panic!("released");
    };
    assert_eq!(last.into_result(), Ok(7));
    assert_eq!(co.in_flight(), 0, "the key is free once the work completed");
    // Completion woke everyone else, once each.
    assert_eq!(wakes(&c0), 1);
    assert_eq!(wakes(&counters[0].0), 1);
    assert_eq!(wakes(&counters[1].0), 1);
    for (j, (_, w)) in joiners.iter_mut().zip(&counters).take(2) {
        let Poll::Ready(outcome) = poll(j, w) else {
            panic!("completed");
        };
        assert!(outcome.is_joined() && outcome.is_shared());
        assert_eq!(outcome.into_result(), Ok(7));
    }
    let Poll::Ready(outcome) = poll(&mut first, &w0) else {
        panic!("completed");
    };
    assert!(!outcome.is_joined() && outcome.is_shared());
    assert_eq!(outcome.into_result(), Ok(7));
    assert!(work.dropped.load(Ordering::SeqCst));
}

#[test]
fn a_dropped_driver_hands_the_work_to_a_waiting_waiter() {
    let co = Co::new();
    let work = Arc::new(Release::default());
    let mut first = co.run("k", || work.work(1));
    let mut second = co.run("k", || work.work(2));
    let (c2, w2) = counting();
    let (_c1, w1) = counting();
    assert!(poll(&mut second, &w2).is_pending(), "second drives first");
    assert!(poll(&mut first, &w1).is_pending(), "then first takes over");
    assert_eq!(wakes(&c2), 0);
    drop(first); // the driver, and the executor, leaves
    assert_eq!(wakes(&c2), 1, "driving is handed on");
    assert!(
        !work.dropped.load(Ordering::SeqCst),
        "the work survives its creator"
    );
    assert!(poll(&mut second, &w2).is_pending());
    work.release();
    assert_eq!(wakes(&c2), 2, "the new driver's waker is the work's");
    let Poll::Ready(outcome) = poll(&mut second, &w2) else {
        panic!("released");
    };
    assert_eq!(
        outcome.into_result(),
        Ok(1),
        "the first caller's work, not the second's"
    );
    assert_eq!(co.in_flight(), 0);
}

#[test]
fn a_non_driver_leaving_wakes_nobody() {
    let co = Co::new();
    let work = Arc::new(Release::default());
    let mut first = co.run("k", || work.work(1));
    let mut second = co.run("k", || work.work(2));
    let (c1, w1) = counting();
    let (_c2, w2) = counting();
    assert!(poll(&mut second, &w2).is_pending());
    assert!(poll(&mut first, &w1).is_pending()); // first drives
    drop(second);
    assert_eq!(wakes(&c1), 0);
    work.release();
    assert_eq!(wakes(&c1), 1);
    assert!(matches!(poll(&mut first, &w1), Poll::Ready(o) if o.result() == &Ok(1)));
}

#[test]
fn the_last_waiter_leaving_drops_the_work_and_frees_the_key() {
    let co = Coalescer::with_hooks(Stats::new());
    let work = Arc::new(Release::default());
    let mut a = co.run("k", || work.work(1));
    let b = co.run("k", || work.work(2));
    assert!(poll(&mut a, Waker::noop()).is_pending());
    drop(a);
    assert!(!work.dropped.load(Ordering::SeqCst), "b still waits");
    assert_eq!(co.in_flight(), 1);
    drop(b);
    assert!(work.dropped.load(Ordering::SeqCst));
    assert_eq!(co.in_flight(), 0);
    let counts = co.hooks().counts();
    assert_eq!((counts.executed, counts.abandoned), (1, 1));
    // The next call runs afresh.
    let next = co.run("k", || async { Ok::<u32, String>(3) });
    assert_eq!(
        futures_util::FutureExt::now_or_never(next)
            .unwrap()
            .into_result(),
        Ok(3)
    );
}

#[test]
fn an_unpolled_run_dropped_is_abandoned() {
    let co = Co::new();
    let work = Arc::new(Release::default());
    let run = co.run("k", || work.work(1));
    drop(run);
    assert!(work.dropped.load(Ordering::SeqCst));
    assert_eq!(work.polls.load(Ordering::SeqCst), 0);
    assert_eq!(co.in_flight(), 0);
}

#[test]
fn a_panicking_work_reaches_every_waiter_and_frees_the_key() {
    let co = Co::new();
    let mut a = co.run("k", || async {
        futures_util::future::ready(()).await;
        panic!("boom")
    });
    let mut b = co.run("k", || async { Ok(0) });
    let (cb, wb) = counting();
    assert!(
        poll(&mut b, &wb).is_ready(),
        "b drives it and gets the panic as an error"
    );
    let Poll::Ready(outcome) = poll(&mut a, Waker::noop()) else {
        panic!("done");
    };
    assert_eq!(outcome.into_result(), Err(RunError::Panicked));
    assert_eq!(wakes(&cb), 0);
    assert_eq!(co.in_flight(), 0);
}

#[test]
fn a_panicking_closure_fails_the_run_and_frees_the_key() {
    let co = Co::new();
    let caught = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        co.run("k", || -> core::future::Ready<Result<u32, String>> {
            panic!("closure")
        })
    }));
    assert!(caught.is_err());
    assert_eq!(co.in_flight(), 0);
    let again = co.run("k", || async { Ok(5) });
    assert_eq!(
        futures_util::FutureExt::now_or_never(again)
            .unwrap()
            .into_result(),
        Ok(5)
    );
}

/// A hook that, on `execute`, joins the run being started from inside (the closure has not
/// run yet: the run is `Starting`), then panics in the closure's place.
struct JoinInside {
    co: std::sync::OnceLock<&'static Coalescer<String, u32, String, JoinInside>>,
    joined: Mutex<Vec<super::Run<'static, String, u32, String, JoinInside>>>,
}

impl Hooks<String, u32, String> for JoinInside {
    fn execute(&self, key: &String) {
        if let Some(co) = self.co.get() {
            if self.joined.lock().unwrap().is_empty() {
                let run = co.run(key.as_str(), || async { Ok(0) });
                self.joined.lock().unwrap().push(run);
            }
        }
    }
}

#[test]
fn a_joiner_of_a_run_whose_closure_panicked_gets_panicked() {
    let co: &'static Coalescer<String, u32, String, JoinInside> =
        Box::leak(Box::new(Coalescer::with_hooks(JoinInside {
            co: std::sync::OnceLock::new(),
            joined: Mutex::new(Vec::new()),
        })));
    co.hooks().co.set(co).ok().unwrap();
    let caught = std::panic::catch_unwind(|| {
        co.run("k", || -> core::future::Ready<Result<u32, String>> {
            panic!("closure")
        })
    });
    assert!(caught.is_err());
    let mut joiner = co
        .hooks()
        .joined
        .lock()
        .unwrap()
        .pop()
        .expect("joined in the hook");
    let Poll::Ready(outcome) = poll(&mut joiner, Waker::noop()) else {
        panic!("failed at once");
    };
    assert!(outcome.is_joined());
    assert_eq!(outcome.into_result(), Err(RunError::Panicked));
    assert_eq!(co.in_flight(), 0);
}

#[test]
fn joiners_polled_while_starting_are_woken_when_the_work_arrives() {
    // A hook joins from inside `execute` and polls the joiner before the closure ran.
    type Joined = (
        super::Run<'static, String, u32, String, PollInside>,
        Arc<Counter>,
        Waker,
    );
    struct PollInside {
        co: std::sync::OnceLock<&'static Coalescer<String, u32, String, PollInside>>,
        joined: Mutex<Option<Joined>>,
    }
    impl Hooks<String, u32, String> for PollInside {
        fn execute(&self, key: &String) {
            let co = self.co.get().unwrap();
            let mut run = co.run(key.as_str(), || async { Ok(0) });
            let (counter, waker) = counting();
            assert!(poll(&mut run, &waker).is_pending(), "no work yet");
            *self.joined.lock().unwrap() = Some((run, counter, waker));
        }
    }
    let co: &'static Coalescer<String, u32, String, PollInside> =
        Box::leak(Box::new(Coalescer::with_hooks(PollInside {
            co: std::sync::OnceLock::new(),
            joined: Mutex::new(None),
        })));
    co.hooks().co.set(co).ok().unwrap();
    let work = Arc::new(Release::default());
    let executor = co.run("k", || work.work(9));
    let (mut joiner, counter, waker) = co.hooks().joined.lock().unwrap().take().unwrap();
    assert_eq!(
        wakes(&counter),
        1,
        "woken to drive the work that just arrived"
    );
    drop(executor); // the executor never polls: the joiner drives
    assert!(poll(&mut joiner, &waker).is_pending());
    work.release();
    let Poll::Ready(outcome) = poll(&mut joiner, &waker) else {
        panic!("released");
    };
    assert_eq!(outcome.into_result(), Ok(9));
}

#[test]
fn forget_lets_the_next_call_start_afresh() {
    let co = Co::new();
    let old = Arc::new(Release::default());
    let mut a = co.run("k", || old.work(1));
    assert!(poll(&mut a, Waker::noop()).is_pending());
    assert!(co.forget("k"));
    assert_eq!(co.in_flight(), 0);
    let new = Arc::new(Release::default());
    let mut b = co.run("k", || new.work(2));
    let mut c = co.run("k", || new.work(3));
    assert!(poll(&mut b, Waker::noop()).is_pending());
    old.release();
    // The old run completes without unmapping the new one.
    assert!(matches!(poll(&mut a, Waker::noop()), Poll::Ready(o) if o.result() == &Ok(1)));
    assert_eq!(co.in_flight(), 1);
    new.release();
    assert!(
        matches!(poll(&mut c, Waker::noop()), Poll::Ready(o) if o.result() == &Ok(2) && o.is_joined())
    );
    assert!(matches!(poll(&mut b, Waker::noop()), Poll::Ready(o) if o.result() == &Ok(2)));
    assert_eq!(co.in_flight(), 0);
    assert!(!co.forget("k"));
}

#[test]
fn errors_are_shared_with_every_waiter() {
    let co = Co::new();
    let a = co.run("k", || async { Err("no".to_string()) });
    let b = co.run("k", || async { Ok(1) });
    let (a, b) = futures_util::FutureExt::now_or_never(futures_util::future::join(a, b)).unwrap();
    assert_eq!(a.into_result(), Err(RunError::Failed("no".to_string())));
    assert_eq!(b.into_result(), Err(RunError::Failed("no".to_string())));
}

#[test]
#[should_panic(expected = "`Run` polled after completion")]
fn polling_a_run_after_completion_panics() {
    let co = Co::new();
    let mut run = co.run("k", || async { Ok(1) });
    assert!(poll(&mut run, Waker::noop()).is_ready());
    let _ = poll(&mut run, Waker::noop());
}

#[test]
#[should_panic(expected = "`RunOwned` polled after completion")]
fn polling_a_run_owned_after_completion_panics() {
    let co = Arc::new(Co::new());
    let mut run = co.run_owned("k", || async { Ok(1) });
    assert!(poll(&mut run, Waker::noop()).is_ready());
    let _ = poll(&mut run, Waker::noop());
}

#[test]
#[should_panic(expected = "`Call` polled after completion")]
fn polling_a_call_after_completion_panics() {
    let f = super::coalesceable(|x: u32| async move { Ok::<u32, ()>(x) });
    let mut call = f.call(1);
    assert!(poll(&mut call, Waker::noop()).is_ready());
    let _ = poll(&mut call, Waker::noop());
}

#[test]
fn the_driver_re_registers_a_changed_waker() {
    let co = Co::new();
    let work = Arc::new(Release::default());
    let mut a = co.run("k", || work.work(1));
    let (c1, w1) = counting();
    let (c2, w2) = counting();
    assert!(poll(&mut a, &w1).is_pending());
    assert!(poll(&mut a, &w2).is_pending(), "moved to another task");
    work.release();
    assert_eq!((wakes(&c1), wakes(&c2)), (0, 1));
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Coalescer<String, u32, String>>();
    send_sync::<Coalescer<String, u32, String, (Stats, super::KeyStats<String>)>>();
    send_sync::<super::Run<'static, String, u32, String>>();
    send_sync::<super::RunOwned<String, u32, String>>();
    send_sync::<super::Call<String, u32, String>>();
    send_sync::<super::Outcome<u32, String>>();
    send_sync::<RunError<String>>();
    send_sync::<super::Counts>();
    send_sync::<super::DebugHooks<fn(core::fmt::Arguments<'_>)>>();
    send::<super::Coalesceable<fn(u32) -> core::future::Ready<Result<u32, ()>>, u32, u32, ()>>();
}

/// Panics in `apply` for the `n`th call.
struct PanicOnApply(AtomicUsize, usize);

impl Hooks<String, u32, String> for PanicOnApply {
    fn apply(&self, _: &String) {
        if self.0.fetch_add(1, Ordering::SeqCst) == self.1 {
            panic!("hook");
        }
    }
}

#[test]
fn a_panicking_hook_leaves_the_coalescer_consistent() {
    // The executor's hook panics: the run fails, the key is free.
    let co = Coalescer::with_hooks(PanicOnApply(AtomicUsize::new(0), 0));
    let caught = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        co.run("k", || async { Ok(1) })
    }));
    assert!(caught.is_err());
    assert_eq!(co.in_flight(), 0);
    // A joiner's hook panics: the joiner leaves, the executor is not disturbed.
    let co = Coalescer::with_hooks(PanicOnApply(AtomicUsize::new(0), 1));
    let work = Arc::new(Release::default());
    let mut first = co.run("k", || work.work(4));
    let caught = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        co.run("k", || async { Ok(0) })
    }));
    assert!(caught.is_err());
    assert!(poll(&mut first, Waker::noop()).is_pending());
    work.release();
    let Poll::Ready(outcome) = poll(&mut first, Waker::noop()) else {
        panic!("released");
    };
    assert!(
        outcome.is_shared(),
        "the joiner had joined before its hook panicked"
    );
    assert_eq!(outcome.into_result(), Ok(4));
    assert_eq!(co.in_flight(), 0);
}

/// Without hooks the run keeps its key for the map only; a hook next to `NoHooks` in a tuple
/// still gets every event with the run's key, the abandoned run's included.
#[test]
fn a_hook_next_to_no_hooks_still_gets_every_event() {
    use super::{KeyStats, NoHooks};

    let co: Coalescer<String, u32, String, (NoHooks, KeyStats<String>)> =
        Coalescer::with_hooks((NoHooks, KeyStats::new()));
    let work = Arc::new(Release::default());
    let mut a = co.run("k", || work.work(1));
    let mut b = co.run("k", || work.work(2));
    drop(co.run("gone", || work.work(3)));
    let (_c, w) = counting();
    assert!(poll(&mut a, &w).is_pending());
    work.release();
    assert!(poll(&mut b, &w).is_ready(), "the joiner completes the work");
    assert!(poll(&mut a, &w).is_ready());
    let k = co.hooks().1.get("k").expect("counted under the run's key");
    assert_eq!((k.total, k.executed, k.joined, k.succeeded), (2, 1, 1, 1));
    let gone = co.hooks().1.get("gone").expect("counted");
    assert_eq!((gone.executed, gone.abandoned), (1, 1));
    assert_eq!(co.in_flight(), 0);
}

/// A waiter prints its key when the coalescer keeps one for hooks, and only whether it
/// finished otherwise (the key is then behind the map's lock).
#[test]
fn a_waiter_debug_shows_the_key_when_hooks_keep_it() {
    use alloc::format;

    let plain = Co::new();
    let run = plain.run("k", || async { Ok(1) });
    let text = format!("{run:?}");
    assert!(
        text.contains("finished: false") && !text.contains("\"k\""),
        "{text}"
    );
    let counted: Coalescer<String, u32, String, Stats> = Coalescer::with_hooks(Stats::new());
    let run = counted.run("k", || async { Ok(1) });
    assert!(format!("{run:?}").contains("key: \"k\""));
}
