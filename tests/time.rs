//! `ManualTimer` and `timer_fn`: poll-level tests with counting wakers.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Wake;

use dike::time::{ManualSleep, ManualTimer, Timer, timer_fn};

/// A waker that counts its wakes and records its id in a shared log when woken.
struct Probe {
    id: usize,
    wakes: AtomicUsize,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(self.id);
    }
}

fn probe(id: usize, log: &Arc<Mutex<Vec<usize>>>) -> (Arc<Probe>, Waker) {
    let p = Arc::new(Probe {
        id,
        wakes: AtomicUsize::new(0),
        log: log.clone(),
    });
    (p.clone(), Waker::from(p))
}

fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn wakes_in_deadline_order_then_registration_order() {
    let timer = ManualTimer::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    // ids: deadline 30, 10, 20, 10 (a tie with id 1, registered later).
    let deadlines = [30, 10, 20, 10];
    let mut sleeps: Vec<(Arc<Probe>, Waker, ManualSleep)> = deadlines
        .iter()
        .enumerate()
        .map(|(id, &ms)| {
            let (p, w) = probe(id, &log);
            (p, w, timer.sleep(MS * ms))
        })
        .collect();
    for (_, w, s) in &mut sleeps {
        assert!(poll(s, w).is_pending());
    }
    assert_eq!(timer.sleepers(), 4);
    assert_eq!(timer.next_deadline(), Some(MS * 10));

    timer.advance(MS * 25);
    assert_eq!(*log.lock().unwrap(), [1, 3, 2], "deadline order, ties FIFO");
    assert_eq!(timer.sleepers(), 1);
    assert_eq!(timer.next_deadline(), Some(MS * 30));
    for (i, (_, w, s)) in sleeps.iter_mut().enumerate() {
        assert_eq!(poll(s, w).is_ready(), i != 0, "sleep {i}");
    }
    timer.advance(MS * 5);
    assert_eq!(*log.lock().unwrap(), [1, 3, 2, 0]);
    let (_, w, s) = &mut sleeps[0];
    assert!(poll(s, w).is_ready());
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn wakes_exactly_once() {
    let timer = ManualTimer::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (p, w) = probe(0, &log);
    let mut s = timer.sleep(MS);
    // Polling several times keeps one registration.
    for _ in 0..3 {
        assert!(poll(&mut s, &w).is_pending());
    }
    assert_eq!(timer.sleepers(), 1);
    timer.advance(MS);
    timer.advance(MS);
    timer.advance_to(MS * 10);
    assert_eq!(p.wakes.load(Ordering::SeqCst), 1);
    assert!(poll(&mut s, &w).is_ready());
    assert!(
        poll(&mut s, &w).is_ready(),
        "a completed sleep stays complete"
    );
    assert_eq!(p.wakes.load(Ordering::SeqCst), 1);
}

#[test]
fn repoll_with_a_new_waker_wakes_only_the_new_one() {
    let timer = ManualTimer::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (old, old_w) = probe(0, &log);
    let (new, new_w) = probe(1, &log);
    let mut s = timer.sleep(MS);
    assert!(poll(&mut s, &old_w).is_pending());
    assert!(poll(&mut s, &new_w).is_pending());
    timer.advance(MS);
    assert_eq!(old.wakes.load(Ordering::SeqCst), 0);
    assert_eq!(new.wakes.load(Ordering::SeqCst), 1);
}

#[test]
fn past_deadline_is_ready_without_registering() {
    let timer = ManualTimer::new();
    timer.advance(MS * 5);
    let mut s = timer.sleep_until(MS * 3);
    assert!(poll(&mut s, Waker::noop()).is_ready());
    let mut s = timer.sleep(Duration::ZERO);
    assert!(poll(&mut s, Waker::noop()).is_ready());
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(timer.next_deadline(), None);
}

#[test]
fn dropped_sleepers_are_forgotten() {
    let timer = ManualTimer::new();
    let (p, w) = probe(0, &Arc::new(Mutex::new(Vec::new())));
    for i in 0..100_000u64 {
        let mut s = timer.sleep(Duration::from_nanos(1 + i % 1000));
        assert!(poll(&mut s, &w).is_pending());
        assert_eq!(timer.sleepers(), 1);
        drop(s);
        assert_eq!(timer.sleepers(), 0);
    }
    assert_eq!(timer.next_deadline(), None);
    timer.advance(Duration::from_secs(1));
    assert_eq!(
        p.wakes.load(Ordering::SeqCst),
        0,
        "no dropped sleeper is woken"
    );
    // A sleep dropped after being woken but before being polled leaves nothing either.
    let mut s = timer.sleep(MS);
    assert!(poll(&mut s, &w).is_pending());
    timer.advance(MS);
    drop(s);
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn time_saturates_and_never_goes_back() {
    let timer = ManualTimer::new();
    let clone = timer.clone();
    timer.advance(MS * 7);
    assert_eq!(clone.now(), MS * 7, "clones share the clock");
    timer.advance_to(MS * 2);
    assert_eq!(timer.now(), MS * 7, "advance_to the past changes nothing");
    let mut never = timer.sleep_until(Duration::MAX);
    assert!(poll(&mut never, Waker::noop()).is_pending());
    timer.advance(Duration::MAX);
    timer.advance(Duration::MAX);
    assert_eq!(timer.now(), Duration::MAX);
    assert!(poll(&mut never, Waker::noop()).is_ready());
    // sleep() from MAX saturates too.
    let mut s = timer.sleep(Duration::from_secs(1));
    assert!(poll(&mut s, Waker::noop()).is_ready());
}

#[test]
fn advance_to_next_visits_each_deadline() {
    let timer = ManualTimer::new();
    assert_eq!(timer.advance_to_next(), None);
    assert_eq!(timer.now(), Duration::ZERO);
    let mut a = timer.sleep(MS * 4);
    let mut b = timer.sleep(MS * 9);
    assert!(poll(&mut a, Waker::noop()).is_pending());
    assert!(poll(&mut b, Waker::noop()).is_pending());
    assert_eq!(timer.advance_to_next(), Some(MS * 4));
    assert!(poll(&mut a, Waker::noop()).is_ready());
    assert!(poll(&mut b, Waker::noop()).is_pending());
    assert_eq!(timer.advance_to_next(), Some(MS * 9));
    assert!(poll(&mut b, Waker::noop()).is_ready());
    assert_eq!(timer.advance_to_next(), None);
}

#[test]
fn a_waker_may_reenter_the_timer() {
    // advance() must not hold its lock while waking.
    struct Reenter(ManualTimer, AtomicUsize);
    impl Wake for Reenter {
        fn wake(self: Arc<Self>) {
            let _ = self.0.now();
            let _ = self.0.next_deadline();
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let timer = ManualTimer::new();
    let r = Arc::new(Reenter(timer.clone(), AtomicUsize::new(0)));
    let w = Waker::from(r.clone());
    let mut s = timer.sleep(MS);
    assert!(poll(&mut s, &w).is_pending());
    timer.advance(MS);
    assert_eq!(r.1.load(Ordering::SeqCst), 1);
}

/// A waker whose last drop uses the timer it was registered with: reads `now()`, registers a
/// sleep of its own and drops it.
struct TouchesOnDrop {
    timer: ManualTimer,
    drops: Arc<AtomicUsize>,
}

impl Wake for TouchesOnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for TouchesOnDrop {
    fn drop(&mut self) {
        let _ = self.timer.now();
        let mut sleep = self.timer.sleep(MS);
        let _ = poll(&mut sleep, Waker::noop());
        drop(sleep);
        let _ = self.timer.sleepers();
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker held only by `timer` once registered, whose drop touches `timer`.
fn touches_on_drop(timer: &ManualTimer, drops: &Arc<AtomicUsize>) -> Waker {
    Waker::from(Arc::new(TouchesOnDrop {
        timer: timer.clone(),
        drops: drops.clone(),
    }))
}

/// Runs `scenario` on its own thread and fails (rather than hang) if it deadlocks.
fn within_a_second(name: &str, scenario: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        scenario();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("{name}: deadlocked (a waker was dropped under the lock)"));
}

#[test]
fn a_waker_whose_drop_touches_the_timer_never_deadlocks() {
    // Every path that replaces or removes a registered sleeper drops the stored waker; each
    // must do so after releasing the timer's lock.
    let drops = Arc::new(AtomicUsize::new(0));

    let d = drops.clone();
    within_a_second("re-polled with another waker", move || {
        let timer = ManualTimer::new();
        let mut sleep = timer.sleep(MS * 10);
        assert!(poll(&mut sleep, &touches_on_drop(&timer, &d)).is_pending());
        assert!(poll(&mut sleep, Waker::noop()).is_pending()); // replaces it
        assert_eq!(d.load(Ordering::SeqCst), 1);
    });

    let d = drops.clone();
    within_a_second("sleep dropped while registered", move || {
        let timer = ManualTimer::new();
        let mut sleep = timer.sleep(MS * 10);
        assert!(poll(&mut sleep, &touches_on_drop(&timer, &d)).is_pending());
        drop(sleep); // removes it
        assert_eq!(d.load(Ordering::SeqCst), 2);
        assert_eq!(timer.sleepers(), 0);
    });

    for (i, path) in ["advance", "advance_to", "advance_to_next"]
        .into_iter()
        .enumerate()
    {
        let d = drops.clone();
        within_a_second(path, move || {
            let timer = ManualTimer::new();
            let mut sleep = timer.sleep(MS * 10);
            assert!(poll(&mut sleep, &touches_on_drop(&timer, &d)).is_pending());
            match i {
                0 => timer.advance(MS * 10),
                1 => timer.advance_to(MS * 10),
                _ => assert_eq!(timer.advance_to_next(), Some(MS * 10)),
            }
            assert_eq!(d.load(Ordering::SeqCst), 3 + i);
            assert!(poll(&mut sleep, Waker::noop()).is_ready());
        });
    }

    let d = drops.clone();
    within_a_second("completed after a late poll", move || {
        let timer = ManualTimer::new();
        let mut sleep = timer.sleep(MS * 10);
        assert!(poll(&mut sleep, &touches_on_drop(&timer, &d)).is_pending());
        timer.advance(MS * 20);
        assert!(poll(&mut sleep, &touches_on_drop(&timer, &d)).is_ready());
        drop(sleep);
        assert_eq!(timer.sleepers(), 0);
    });
    // Every waker made above was dropped, each exactly once.
    assert_eq!(drops.load(Ordering::SeqCst), 7);
}

#[test]
fn a_completed_sleep_stays_ready() {
    let timer = ManualTimer::new();
    let mut sleep = timer.sleep(MS);
    assert!(poll(&mut sleep, Waker::noop()).is_pending());
    timer.advance(MS);
    for _ in 0..3 {
        assert!(poll(&mut sleep, Waker::noop()).is_ready());
    }
    assert_eq!(timer.sleepers(), 0);
    let f = timer_fn(|| MS, |_| core::future::pending::<()>());
    let mut sleep = Box::pin(f.sleep_until(MS));
    for _ in 0..3 {
        assert!(poll(&mut sleep, Waker::noop()).is_ready());
    }
}

#[test]
fn send_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<ManualTimer>();
    is_send_sync::<ManualSleep>();
}

#[test]
fn multi_threaded_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let timer = ManualTimer::new();
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64u32)
        .map(|i| {
            let (timer, done) = (timer.clone(), done.clone());
            rt.spawn(async move {
                timer.sleep(MS * (1 + i % 8)).await;
                assert!(timer.now() >= MS * (1 + i % 8));
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // Wait until every task has registered, then step through the deadlines.
    while timer.sleepers() < 64 {
        std::thread::yield_now();
    }
    while timer.advance_to_next().is_some() {}
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 64);
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn timer_fn_never_fires_early() {
    // A millisecond clock whose sleeps complete at once: the FnTimer re-checks now() and
    // yields until the clock reaches the deadline.
    let clock = ManualTimer::new();
    let sleeps = Arc::new(AtomicUsize::new(0));
    let timer = {
        let (clock, sleeps) = (clock.clone(), sleeps.clone());
        timer_fn(
            move || clock.now(),
            move |_deadline| {
                sleeps.fetch_add(1, Ordering::SeqCst);
                core::future::ready(())
            },
        )
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let (p, w) = probe(0, &log);
    let mut s = Box::pin(timer.sleep(MS * 2));
    assert!(s.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    assert_eq!(
        p.wakes.load(Ordering::SeqCst),
        1,
        "yields instead of spinning"
    );
    clock.advance(MS);
    assert!(s.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    clock.advance(MS);
    assert!(s.as_mut().poll(&mut Context::from_waker(&w)).is_ready());
    assert!(sleeps.load(Ordering::SeqCst) >= 2);
}

#[test]
fn timer_fn_over_a_manual_clock() {
    let clock = ManualTimer::new();
    let timer = {
        let (a, b) = (clock.clone(), clock.clone());
        timer_fn(move || a.now(), move |d| b.sleep_until(d))
    };
    let mut s = Box::pin(timer.sleep(MS * 3));
    assert!(
        s.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(clock.next_deadline(), Some(MS * 3));
    clock.advance(MS * 3);
    assert!(
        s.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    );
    assert!(format!("{timer:?}").contains("FnTimer"));
}
