//! Poll-level tests of the gate: every wake is counted, time is a `ManualTimer`.

use crate::test_util::{counting, poll, wakes};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use super::{Gate, limit_jobs};
use crate::error::{TooManyCalls, TooManyCallsKind};
use crate::time::ManualTimer;

fn poll_noop<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    poll(fut, Waker::noop())
}

#[test]
fn try_enter_admits_up_to_the_limit() {
    let gate = Gate::new(2);
    let a = gate.try_enter().unwrap();
    let b = gate.try_enter().unwrap();
    let err = gate.try_enter().unwrap_err();
    assert_eq!(err, TooManyCalls::new(2, TooManyCallsKind::Full));
    drop(a);
    let c = gate.try_enter().unwrap();
    let stats = gate.stats();
    assert_eq!((stats.in_use, stats.admitted, stats.rejected), (2, 3, 1));
    assert_eq!(stats.peak_in_use, 2);
    drop((b, c));
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn limit_zero_admits_nothing() {
    let gate = Gate::new(0);
    assert_eq!(gate.try_enter().unwrap_err().limit(), 0);
    let mut enter = gate.enter();
    let Poll::Ready(Err(err)) = poll_noop(&mut enter) else {
        panic!("a closed gate rejects waiting entries at once");
    };
    assert_eq!((err.limit(), err.kind()), (0, TooManyCallsKind::Full));
    assert_eq!(gate.stats().waiting, 0);
    let timer = ManualTimer::new();
    let mut timed = gate.enter_timeout(&timer, Duration::from_secs(1));
    assert!(matches!(poll_noop(&mut timed), Poll::Ready(Err(_))));
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(gate.stats().rejected, 3);
    let jobs = limit_jobs(0, |()| async { 1 });
    let mut call = Box::pin(jobs.call(()));
    assert!(matches!(
        call.as_mut().poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Err(_))
    ));
}

#[test]
fn lowering_to_zero_keeps_queued_waiters_for_a_later_raise() {
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let (counter, waker) = counting();
    let mut queued = gate.enter();
    assert!(poll(&mut queued, &waker).is_pending());
    gate.set_limit(0);
    drop(held);
    assert!(
        poll(&mut queued, &waker).is_pending(),
        "closed: nothing handed over"
    );
    let mut late = gate.enter();
    assert!(
        matches!(poll_noop(&mut late), Poll::Ready(Err(_))),
        "new entries rejected"
    );
    gate.set_limit(1);
    assert_eq!(wakes(&counter), 1);
    assert!(matches!(poll(&mut queued, &waker), Poll::Ready(Ok(_))));
}

#[test]
fn enter_completes_at_once_when_free() {
    let gate = Gate::new(1);
    let mut enter = gate.enter();
    let Poll::Ready(Ok(permit)) = poll_noop(&mut enter) else {
        panic!("free gate must admit on the first poll");
    };
    assert_eq!(gate.stats().in_use, 1);
    drop(permit);
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn waiters_are_woken_in_fifo_order_once_per_release() {
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let mut waiters: Vec<_> = (0..3).map(|_| (gate.enter(), counting())).collect();
    for (enter, (_, waker)) in &mut waiters {
        assert!(poll(enter, waker).is_pending());
    }
    assert_eq!(gate.stats().waiting, 3);

    drop(held);
    let woken: Vec<usize> = waiters.iter().map(|(_, (c, _))| wakes(c)).collect();
    assert_eq!(woken, [1, 0, 0], "exactly the first waiter is woken, once");
    // Later waiters polled spuriously stay pending: the permit is the first one's.
    let (last, (_, last_waker)) = &mut waiters[2];
    assert!(poll(last, last_waker).is_pending());
    assert!(
        gate.try_enter().is_err(),
        "a barging try_enter cannot take it"
    );

    for i in 0..3 {
        let (enter, (_, waker)) = &mut waiters[i];
        let Poll::Ready(Ok(permit)) = poll(enter, waker) else {
            panic!("waiter {i} was granted");
        };
        drop(permit);
        let woken: Vec<usize> = waiters.iter().map(|(_, (c, _))| wakes(c)).collect();
        let expected: Vec<usize> = (0..3).map(|j| usize::from(j <= i + 1)).collect();
        assert_eq!(woken, expected, "after release {i}");
    }
    let stats = gate.stats();
    assert_eq!((stats.in_use, stats.waiting, stats.admitted), (0, 0, 4));
}

#[test]
fn a_release_wakes_exactly_one_of_many_waiters() {
    let gate = Gate::new(2);
    let a = gate.try_enter().unwrap();
    let b = gate.try_enter().unwrap();
    let mut waiters: Vec<_> = (0..4).map(|_| (gate.enter(), counting())).collect();
    for (enter, (_, waker)) in &mut waiters {
        assert!(poll(enter, waker).is_pending());
    }
    drop(a);
    let total: usize = waiters.iter().map(|(_, (c, _))| wakes(c)).sum();
    assert_eq!(total, 1);
    drop(b);
    let total: usize = waiters.iter().map(|(_, (c, _))| wakes(c)).sum();
    assert_eq!(total, 2);
    assert_eq!(
        gate.stats().in_use,
        2,
        "two permits handed over, not yet observed"
    );
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let mut enter = gate.enter();
    let (first, first_waker) = counting();
    let (second, second_waker) = counting();
    assert!(poll(&mut enter, &first_waker).is_pending());
    assert!(poll(&mut enter, &second_waker).is_pending());
    drop(held);
    assert_eq!((wakes(&first), wakes(&second)), (0, 1));
    assert!(poll(&mut enter, &second_waker).is_ready());
}

#[test]
fn a_dropped_granted_waiter_passes_its_permit_on() {
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let (ca, wa) = counting();
    let (cb, wb) = counting();
    let mut a = gate.enter();
    let mut b = gate.enter();
    assert!(poll(&mut a, &wa).is_pending());
    assert!(poll(&mut b, &wb).is_pending());
    drop(held);
    assert_eq!((wakes(&ca), wakes(&cb)), (1, 0));
    drop(a); // granted, never observed
    assert_eq!(wakes(&cb), 1, "the permit moved to the next waiter");
    let Poll::Ready(Ok(permit)) = poll(&mut b, &wb) else {
        panic!("b owns the permit");
    };
    assert_eq!(gate.stats().admitted, 2);
    drop(permit);
    let stats = gate.stats();
    assert_eq!((stats.in_use, stats.waiting), (0, 0));
    assert!(gate.try_enter().is_ok());
}

#[test]
fn a_dropped_granted_last_waiter_returns_the_permit() {
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let mut a = gate.enter();
    assert!(poll_noop(&mut a).is_pending());
    drop(held);
    drop(a);
    let stats = gate.stats();
    assert_eq!((stats.in_use, stats.waiting), (0, 0));
    let _p = gate.try_enter().expect("the permit came back to the gate");
}

#[test]
fn a_dropped_waiting_waiter_leaves_the_queue() {
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let (ca, wa) = counting();
    let (cb, wb) = counting();
    let mut a = gate.enter();
    let mut b = gate.enter();
    assert!(poll(&mut a, &wa).is_pending());
    assert!(poll(&mut b, &wb).is_pending());
    drop(a);
    assert_eq!(gate.stats().waiting, 1);
    drop(held);
    assert_eq!((wakes(&ca), wakes(&cb)), (0, 1));
    assert!(poll(&mut b, &wb).is_ready());
}

#[test]
fn max_waiting_rejects_the_excess() {
    let gate = Gate::new(1).with_max_waiting(2);
    let held = gate.try_enter().unwrap();
    let mut a = gate.enter();
    let mut b = gate.enter();
    assert!(poll_noop(&mut a).is_pending());
    assert!(poll_noop(&mut b).is_pending());
    let mut c = gate.enter();
    let Poll::Ready(Err(err)) = poll_noop(&mut c) else {
        panic!("the third waiter is over the bound");
    };
    assert_eq!(err.kind(), TooManyCallsKind::QueueFull);
    assert_eq!(err.limit(), 1);
    drop(a);
    let mut d = gate.enter();
    assert!(
        poll_noop(&mut d).is_pending(),
        "room again after a waiter left"
    );
    assert_eq!(gate.stats().rejected, 1);
    drop((b, d, held));
}

#[test]
fn max_waiting_zero_never_queues() {
    let gate = Gate::new(1).with_max_waiting(0);
    let held = gate.try_enter().unwrap();
    let mut enter = gate.enter();
    assert!(matches!(poll_noop(&mut enter), Poll::Ready(Err(_))));
    drop(held);
    assert!(matches!(poll_noop(&mut gate.enter()), Poll::Ready(Ok(_))));
}

#[test]
fn enter_timeout_rejects_at_the_deadline() {
    let gate = Gate::new(1);
    let timer = ManualTimer::new();
    let held = gate.try_enter().unwrap();
    let mut wait = Box::pin(gate.enter_timeout(&timer, Duration::from_millis(10)));
    let (count, waker) = counting();
    assert!(poll(&mut wait, &waker).is_pending());
    timer.advance(Duration::from_millis(9));
    assert_eq!(wakes(&count), 0);
    assert!(poll(&mut wait, &waker).is_pending());
    timer.advance(Duration::from_millis(1));
    assert_eq!(wakes(&count), 1);
    let Poll::Ready(Err(err)) = poll(&mut wait, &waker) else {
        panic!("timed out");
    };
    assert_eq!(err.kind(), TooManyCallsKind::TimedOut);
    let stats = gate.stats();
    assert_eq!((stats.waiting, stats.rejected, stats.in_use), (0, 1, 1));
    assert_eq!(timer.sleepers(), 0);
    drop(held);
    assert!(gate.try_enter().is_ok(), "nothing was left in the queue");
}

#[test]
fn a_permit_granted_at_the_deadline_wins() {
    let gate = Gate::new(1);
    let timer = ManualTimer::new();
    let held = gate.try_enter().unwrap();
    let mut wait = Box::pin(gate.enter_until(&timer, Duration::from_secs(1)));
    assert!(poll_noop(&mut wait).is_pending());
    drop(held);
    timer.advance(Duration::from_secs(1));
    let Poll::Ready(Ok(permit)) = poll_noop(&mut wait) else {
        panic!("the permit handed over before the poll is kept");
    };
    assert_eq!(gate.stats().rejected, 0);
    drop(permit);
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn a_past_deadline_still_takes_a_free_permit() {
    let gate = Gate::new(1);
    let timer = ManualTimer::new();
    timer.advance(Duration::from_secs(5));
    let mut wait = Box::pin(gate.enter_until(&timer, Duration::from_secs(1)));
    assert!(matches!(poll_noop(&mut wait), Poll::Ready(Ok(_))));
    drop(wait);
    let _held = gate.try_enter().unwrap();
    let mut wait = Box::pin(gate.enter_until(&timer, Duration::from_secs(1)));
    assert!(matches!(poll_noop(&mut wait), Poll::Ready(Err(_))));
    assert_eq!(gate.stats().waiting, 0);
}

#[test]
fn a_dropped_timed_waiter_leaves_nothing_behind() {
    let gate = Gate::new(1);
    let timer = ManualTimer::new();
    let held = gate.try_enter().unwrap();
    let mut wait = Box::pin(gate.enter_timeout(&timer, Duration::from_secs(1)));
    assert!(poll_noop(&mut wait).is_pending());
    assert_eq!((gate.stats().waiting, timer.sleepers()), (1, 1));
    drop(wait);
    assert_eq!((gate.stats().waiting, timer.sleepers()), (0, 0));
    drop(held);
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn raising_the_limit_wakes_that_many_waiters() {
    let gate = Gate::new(1);
    let held = gate.try_enter().unwrap();
    let mut waiters: Vec<_> = (0..3).map(|_| (gate.enter(), counting())).collect();
    for (enter, (_, waker)) in &mut waiters {
        assert!(poll(enter, waker).is_pending());
    }
    gate.set_limit(3);
    let woken: Vec<usize> = waiters.iter().map(|(_, (c, _))| wakes(c)).collect();
    assert_eq!(woken, [1, 1, 0]);
    let stats = gate.stats();
    assert_eq!((stats.limit, stats.in_use, stats.waiting), (3, 3, 1));
    assert_eq!(stats.peak_in_use, 3);
    assert!(gate.try_enter().is_err());
    gate.set_limit(5);
    assert_eq!(wakes(&waiters[2].1.0), 1);
    let _extra = gate
        .try_enter()
        .expect("one permit left over after the waiters");
    drop(held);
}

#[test]
fn lowering_the_limit_keeps_held_permits_valid() {
    let gate = Gate::new(3);
    let permits: Vec<_> = (0..3).map(|_| gate.try_enter().unwrap()).collect();
    gate.set_limit(1);
    let stats = gate.stats();
    assert_eq!((stats.limit, stats.in_use), (1, 3));
    let (count, waker) = counting();
    let mut enter = gate.enter();
    assert!(poll(&mut enter, &waker).is_pending());
    let mut permits = permits.into_iter();
    drop(permits.next());
    assert_eq!(wakes(&count), 0, "two still in use, limit one");
    drop(permits.next());
    assert_eq!(wakes(&count), 0, "one still in use, limit one");
    drop(permits.next());
    assert_eq!(wakes(&count), 1);
    let Poll::Ready(Ok(_permit)) = poll(&mut enter, &waker) else {
        panic!("granted");
    };
    assert_eq!(gate.stats().in_use, 1);
}

#[test]
fn raising_after_lowering_pays_the_debt_first() {
    let gate = Gate::new(2);
    let a = gate.try_enter().unwrap();
    let b = gate.try_enter().unwrap();
    gate.set_limit(0);
    gate.set_limit(1);
    assert!(gate.try_enter().is_err(), "two in use, limit one");
    drop(a);
    assert!(gate.try_enter().is_err(), "one in use, limit one");
    drop(b);
    let _p = gate.try_enter().unwrap();
    assert!(gate.try_enter().is_err());
}

#[test]
fn lowering_takes_free_permits_first() {
    let gate = Gate::new(4);
    let a = gate.try_enter().unwrap();
    gate.set_limit(2);
    let b = gate.try_enter().unwrap();
    assert!(gate.try_enter().is_err());
    drop((a, b));
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn huge_limits_are_clamped() {
    let gate = Gate::new(usize::MAX);
    assert_eq!(gate.limit(), Gate::MAX_LIMIT);
    gate.set_limit(usize::MAX);
    assert_eq!(gate.limit(), Gate::MAX_LIMIT);
    let _p = gate.try_enter().unwrap();
    assert_eq!(gate.stats().in_use, 1);
}

#[test]
fn owned_variants_hold_the_arc() {
    let gate = Arc::new(Gate::new(1));
    let timer = ManualTimer::new();
    let permit = gate.try_enter_owned().unwrap();
    assert!(gate.try_enter_owned().is_err());
    let mut waiter = gate.enter_owned();
    let mut timed = Box::pin(gate.enter_timeout_owned(&timer, Duration::from_secs(1)));
    assert!(poll_noop(&mut waiter).is_pending());
    assert!(poll_noop(&mut timed).is_pending());
    drop(permit);
    let Poll::Ready(Ok(permit)) = poll_noop(&mut waiter) else {
        panic!("granted");
    };
    timer.advance(Duration::from_secs(1));
    assert!(matches!(poll_noop(&mut timed), Poll::Ready(Err(_))));
    drop(permit);
    let mut until = Box::pin(gate.enter_until_owned(&timer, Duration::ZERO));
    assert!(matches!(poll_noop(&mut until), Poll::Ready(Ok(_))));
}

#[test]
fn limit_jobs_runs_admitted_calls_and_rejects_the_rest() {
    let calls = AtomicUsize::new(0);
    let jobs = limit_jobs(2, |_n: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        core::future::pending::<u32>()
    });
    let mut a = Box::pin(jobs.call(1));
    let mut b = Box::pin(jobs.call(2));
    let mut c = Box::pin(jobs.call(3));
    assert!(poll_noop(&mut a).is_pending());
    assert!(poll_noop(&mut b).is_pending());
    let Poll::Ready(Err(err)) = poll_noop(&mut c) else {
        panic!("the third concurrent call is rejected");
    };
    assert_eq!(err.to_string(), "too many calls: limit of 2 reached");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a rejected call never runs f"
    );
    drop(a);
    let mut d = Box::pin(jobs.call(4));
    assert!(
        poll_noop(&mut d).is_pending(),
        "the dropped call freed its slot"
    );
    let stats = jobs.gate().stats();
    assert_eq!((stats.in_use, stats.admitted, stats.rejected), (2, 3, 1));
}

#[test]
fn limit_jobs_releases_on_completion_and_on_panic() {
    let jobs = limit_jobs(1, |fail: bool| {
        assert!(!fail, "boom");
        async { 7 }
    });
    let mut ok = Box::pin(jobs.call(false));
    assert_eq!(poll_noop(&mut ok), Poll::Ready(Ok(7)));
    assert_eq!(jobs.gate().stats().in_use, 0);
    let result = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let mut bad = Box::pin(jobs.call(true));
        let _ = poll_noop(&mut bad);
    }));
    assert!(result.is_err());
    assert_eq!(
        jobs.gate().stats().in_use,
        0,
        "a panicking call frees its slot"
    );
}

#[test]
fn display_names_the_limit_and_the_reason() {
    let full = TooManyCalls::new(3, TooManyCallsKind::Full);
    let queue = TooManyCalls::new(3, TooManyCallsKind::QueueFull);
    let timed = TooManyCalls::new(3, TooManyCallsKind::TimedOut);
    assert_eq!(full.to_string(), "too many calls: limit of 3 reached");
    assert_eq!(
        queue.to_string(),
        "too many calls: limit of 3 reached and the waiting queue is full"
    );
    assert_eq!(
        timed.to_string(),
        "too many calls: limit of 3 reached and the wait timed out"
    );
}

#[cfg(target_pointer_width = "64")]
#[test]
fn the_admission_count_carries_past_32_bits() {
    let gate = Gate::new(2);
    gate.engine.preset_fast_admissions(u32::MAX - 1);
    assert_eq!(gate.stats().admitted, (1 << 32) - 2);
    for _ in 0..3 {
        drop(gate.try_enter().unwrap());
    }
    let mut enter = gate.enter();
    let Poll::Ready(Ok(permit)) = poll_noop(&mut enter) else {
        panic!("free");
    };
    drop(permit);
    let stats = gate.stats();
    assert_eq!(stats.admitted, (1 << 32) + 2);
    assert_eq!((stats.in_use, stats.limit), (0, 2));
    let _a = gate.try_enter().unwrap();
    let _b = gate.try_enter().unwrap();
    assert!(
        gate.try_enter().is_err(),
        "the count never spills into the permits"
    );
}

/// A waker that enters the gate's lock when woken and when dropped.
struct Reentrant(Arc<Gate>, AtomicUsize);

impl Wake for Reentrant {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.0.stats();
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        let _ = self.0.stats();
    }
}

#[test]
fn wakers_are_woken_and_dropped_outside_the_lock() {
    let gate = Arc::new(Gate::new(1));
    let held = gate.try_enter_owned().unwrap();
    let reentrant = |gate: &Arc<Gate>| Arc::new(Reentrant(Arc::clone(gate), AtomicUsize::new(0)));
    // Woken by a release, by set_limit, replaced by a new waker, dropped with its waiter.
    let (a, b, c) = (reentrant(&gate), reentrant(&gate), reentrant(&gate));
    let mut wa = gate.enter_owned();
    let mut wb = gate.enter_owned();
    let mut wc = gate.enter_owned();
    assert!(poll(&mut wa, &Waker::from(Arc::clone(&a))).is_pending());
    assert!(poll(&mut wb, &Waker::from(Arc::clone(&b))).is_pending());
    assert!(poll(&mut wc, &Waker::from(c)).is_pending());
    assert!(
        poll(&mut wc, Waker::noop()).is_pending(),
        "drops the old waker"
    );
    drop(wc);
    drop(held);
    gate.set_limit(2);
    assert_eq!(
        (a.1.load(Ordering::SeqCst), b.1.load(Ordering::SeqCst)),
        (1, 1)
    );
    drop((wa, wb)); // granted, never observed: the permits go back
    assert_eq!(gate.stats().in_use, 0);
}

/// Polls `fut` until `Ready` (it must be ready at once), then polls it once more.
fn poll_twice<F: Future + Unpin>(mut fut: F) {
    assert!(poll_noop(&mut fut).is_ready());
    let _ = poll_noop(&mut fut);
}

#[test]
#[should_panic(expected = "`Enter` polled after completion")]
fn enter_panics_when_polled_after_completion() {
    let gate = Gate::new(2);
    poll_twice(gate.enter());
}

#[test]
#[should_panic(expected = "`Enter` polled after completion")]
fn enter_panics_when_polled_after_a_rejection() {
    let gate = Gate::new(0);
    poll_twice(gate.enter());
}

#[test]
#[should_panic(expected = "`EnterOwned` polled after completion")]
fn enter_owned_panics_when_polled_after_completion() {
    let gate = Arc::new(Gate::new(2));
    poll_twice(gate.enter_owned());
}

#[test]
#[should_panic(expected = "`EnterTimeout` polled after completion")]
fn enter_timeout_panics_when_polled_after_completion() {
    let gate = Gate::new(2);
    let timer = ManualTimer::new();
    poll_twice(Box::pin(gate.enter_timeout(&timer, Duration::from_secs(1))));
}

#[test]
#[should_panic(expected = "`EnterTimeout` polled after completion")]
fn enter_timeout_panics_when_polled_after_timing_out() {
    let gate = Gate::new(1);
    let _held = gate.try_enter().unwrap();
    let timer = ManualTimer::new();
    poll_twice(Box::pin(gate.enter_until(&timer, Duration::ZERO)));
}

#[test]
#[should_panic(expected = "`EnterTimeoutOwned` polled after completion")]
fn enter_timeout_owned_panics_when_polled_after_completion() {
    let gate = Arc::new(Gate::new(2));
    let timer = ManualTimer::new();
    poll_twice(Box::pin(
        gate.enter_timeout_owned(&timer, Duration::from_secs(1)),
    ));
}

/// The panic leaves the gate as it was: the one permit handed out, nothing taken twice.
#[test]
fn a_second_poll_after_completion_takes_no_second_permit() {
    let gate = Gate::new(2);
    let mut enter = gate.enter();
    let Poll::Ready(Ok(permit)) = poll_noop(&mut enter) else {
        panic!("a permit is free");
    };
    let again = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let _ = poll_noop(&mut enter);
    }));
    assert!(again.is_err());
    assert_eq!(gate.stats().in_use, 1);
    drop(permit);
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn permits_show_their_gate_in_debug() {
    let gate = Arc::new(Gate::new(2));
    let permit = gate.try_enter().unwrap();
    assert_eq!(
        format!("{permit:?}"),
        "Permit { gate: Gate { limit: 2, in_use: 1, waiting: 0, .. } }"
    );
    let owned = gate.try_enter_owned().unwrap();
    assert_eq!(
        format!("{owned:?}"),
        "OwnedPermit { gate: Gate { limit: 2, in_use: 2, waiting: 0, .. } }"
    );
}

/// A waiting future is a gate reference and a two-word slot: three words, cheap to move (the
/// uncontended `enter` bench copies it into `now_or_never`).
#[test]
fn waiting_futures_stay_small() {
    assert!(core::mem::size_of::<super::Enter<'_>>() <= 3 * core::mem::size_of::<usize>());
}

mod queue {
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use core::task::Waker;

    use super::super::queue::WaitQueue;

    /// A waker that remembers its number when woken.
    struct Tag(usize, Arc<AtomicUsize>);

    impl Wake for Tag {
        fn wake(self: Arc<Self>) {
            self.1.store(self.0, Ordering::SeqCst);
        }
    }

    fn tagged(n: usize, cell: &Arc<AtomicUsize>) -> Waker {
        Waker::from(Arc::new(Tag(n, Arc::clone(cell))))
    }

    #[test]
    fn pops_in_arrival_order_around_removals_from_anywhere() {
        let cell = Arc::new(AtomicUsize::new(usize::MAX));
        let mut q = WaitQueue::new();
        let tickets: Vec<_> = (0..6)
            .map(|n| q.push_back(tagged(n, &cell)).unwrap())
            .collect();
        assert_eq!(q.len(), 6);
        assert_eq!(q.front_id(), tickets[0].id);
        // Remove the middle, the back and the front.
        assert!(q.remove(tickets[3]).is_some());
        assert!(q.remove(tickets[5]).is_some());
        assert!(q.remove(tickets[0]).is_some());
        assert_eq!(q.front_id(), tickets[1].id);
        assert!(q.remove(tickets[3]).is_none(), "already removed");
        let late = q.push_back(tagged(6, &cell)).unwrap();
        let mut order = Vec::new();
        while let Some(waker) = q.pop_front() {
            waker.wake();
            order.push(cell.load(Ordering::SeqCst));
        }
        assert_eq!(order, [1, 2, 4, 6]);
        assert_eq!(q.front_id(), late.id + 1, "empty: the next id");
    }

    #[test]
    fn a_ticket_whose_key_was_reused_is_not_mistaken_for_the_new_entry() {
        let cell = Arc::new(AtomicUsize::new(usize::MAX));
        let mut q = WaitQueue::new();
        let old = q.push_back(tagged(0, &cell)).unwrap();
        assert!(q.pop_front().is_some());
        let new = q.push_back(tagged(1, &cell)).unwrap();
        assert!(old.id < new.id);
        assert!(q.remove(old).is_none(), "the key is reused, the id is not");
        assert!(q.waker_mut(old).is_none());
        assert!(q.waker_mut(new).is_some());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn memory_follows_the_waiters_alive() {
        let mut q = WaitQueue::new();
        // Steady traffic of one waiter at a time reuses one entry.
        for _ in 0..10_000 {
            let t = q.push_back(Waker::noop().clone()).unwrap();
            assert!(q.remove(t).is_some());
        }
        assert!(q.capacity() <= 4, "{}", q.capacity());
        // A storm grows the store; once it drains, the memory goes back.
        let storm: Vec<_> = (0..5_000)
            .map(|_| q.push_back(Waker::noop().clone()).unwrap())
            .collect();
        assert!(q.capacity() >= 5_000);
        for t in storm.into_iter().rev() {
            assert!(q.remove(t).is_some());
        }
        assert_eq!(q.len(), 0);
        // Removals never free (a release may run in an interrupt); the next registration does.
        assert!(q.capacity() >= 5_000);
        let t = q.push_back(Waker::noop().clone()).unwrap();
        assert!(q.capacity() <= 4, "{}", q.capacity());
        assert!(q.remove(t).is_some());
    }

    proptest::proptest! {
        /// Against a model (a plain list of ids in arrival order): pops come from the front in
        /// order, removals from anywhere, stale tickets are refused, and the front id splits
        /// popped ids from waiting ones.
        #[test]
        fn behaves_like_a_fifo_with_removal(ops in proptest::collection::vec((0_u8..3, 0_usize..64), 0..300)) {
            let mut q = WaitQueue::new();
            let mut model: Vec<u64> = Vec::new();
            let mut tickets = Vec::new();
            let mut popped: Vec<u64> = Vec::new();
            for (op, pick) in ops {
                match op {
                    0 => {
                        let t = q.push_back(Waker::noop().clone()).unwrap();
                        proptest::prop_assert!(model.last().is_none_or(|&last| t.id > last));
                        model.push(t.id);
                        tickets.push(t);
                    }
                    1 => {
                        let got = q.pop_front().is_some();
                        proptest::prop_assert_eq!(got, !model.is_empty());
                        if got {
                            popped.push(model.remove(0));
                        }
                    }
                    _ if !tickets.is_empty() => {
                        let t = tickets[pick % tickets.len()];
                        let queued = model.iter().position(|&id| id == t.id);
                        proptest::prop_assert_eq!(q.remove(t).is_some(), queued.is_some());
                        if let Some(i) = queued {
                            model.remove(i);
                        }
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(q.len(), model.len());
                let front = q.front_id();
                proptest::prop_assert!(model.first().is_none_or(|&id| id == front));
                proptest::prop_assert!(popped.iter().all(|&id| id < front));
                proptest::prop_assert!(model.iter().all(|&id| id >= front));
            }
            // Popped in arrival order.
            proptest::prop_assert!(popped.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn pop_front_n_takes_at_most_what_waits() {
        let mut q = WaitQueue::new();
        for _ in 0..3 {
            q.push_back(Waker::noop().clone()).unwrap();
        }
        q.pop_front_n(2).wake_all();
        assert_eq!(q.len(), 1);
        q.pop_front_n(5).wake_all();
        assert_eq!(q.len(), 0);
    }
}
