//! Throttle behaviour through the public API, on `ManualTimer` (no real sleeps).

use core::future::Future;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

extern crate alloc;
use alloc::sync::Arc;
use alloc::task::Wake;

use dike::error::ConfigValue;
use dike::throttle::{Acquire, ExceedsBurst, Quota, RateLimited, Throttle, TryAcquireError};
use dike::time::{ManualTimer, Timer};
use futures_util::FutureExt;
use proptest::prelude::*;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    (counter.clone(), Waker::from(counter))
}

fn poll_once<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// Under continuous demand: the instant of each of `count` starts, jumping the clock to the
/// next sleeper whenever the current waiter is pending.
fn starts(throttle: &Throttle, timer: &ManualTimer, count: usize) -> Vec<Duration> {
    (0..count)
        .map(|_| {
            let mut wait = pin!(throttle.acquire(timer));
            while poll_once(wait.as_mut(), Waker::noop()).is_pending() {
                timer.advance_to_next().expect("a pending acquire sleeps");
            }
            timer.now()
        })
        .collect()
}

#[test]
fn exact_admission_times() {
    let cases: [(Quota, &[u64]); 5] = [
        // strict spacing, aiometer's max_per_second = 1
        (Quota::per_second(1), &[0, 1_000, 2_000, 3_000]),
        // the module docs' timeline: 2/s, burst 3
        (
            Quota::per_second(2).with_burst(3),
            &[0, 0, 0, 500, 1_000, 1_500],
        ),
        // 10 per minute, burst 2: T = 6 s
        (Quota::per_minute(10).with_burst(2), &[0, 0, 6_000, 12_000]),
        // 5 per 100 ms, burst 5: T = 20 ms
        (
            Quota::per_second(5).with_period(ms(100)).with_burst(5),
            &[0, 0, 0, 0, 0, 20, 40],
        ),
        // 4/s, burst 2
        (Quota::per_second(4).with_burst(2), &[0, 0, 250, 500, 750]),
    ];
    for (quota, expected) in cases {
        let timer = ManualTimer::new();
        let throttle = Throttle::new(quota).unwrap();
        let got = starts(&throttle, &timer, expected.len());
        let expected: Vec<_> = expected.iter().map(|&t| ms(t)).collect();
        assert_eq!(got, expected, "{quota:?}");
        assert_eq!(timer.sleepers(), 0, "{quota:?}");
    }
}

#[test]
fn interval_rounds_up_so_the_rate_is_never_exceeded() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(3).unwrap();
    let got = starts(&throttle, &timer, 4);
    let t = 333_333_334;
    assert_eq!(got, [0, t, 2 * t, 3 * t].map(Duration::from_nanos));
    // Never 4 starts within one second.
    assert!(got[3] - got[0] > Duration::from_secs(1));
}

#[test]
fn largest_gap_between_starts_is_the_interval() {
    // aiometer's property: under continuous demand the largest gap between consecutive starts
    // is 1 / rate, and after the burst every gap is exactly that.
    for burst in [1, 3, 8] {
        let timer = ManualTimer::new();
        let throttle = Throttle::new(Quota::per_second(4).with_burst(burst)).unwrap();
        let got = starts(&throttle, &timer, 40);
        let gaps: Vec<_> = got.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps.iter().max(), Some(&ms(250)), "burst {burst}");
        let burst = burst as usize;
        assert!(
            gaps[..burst - 1].iter().all(|g| g.is_zero()),
            "burst {burst}"
        );
        assert!(
            gaps[burst - 1..].iter().all(|&g| g == ms(250)),
            "burst {burst}"
        );
    }
}

#[test]
fn idle_time_earns_at_most_the_burst() {
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(2).with_burst(3)).unwrap();
    for idle in [ms(0), ms(1_500), Duration::from_secs(3_600)] {
        timer.advance(idle);
        let mut admitted = 0;
        let err = loop {
            match throttle.try_acquire(&timer) {
                Ok(()) => admitted += 1,
                Err(err) => break err,
            }
        };
        assert_eq!(admitted, 3, "after {idle:?} idle");
        assert_eq!(err.ready_at(), timer.now() + ms(500));
        assert_eq!(err.wait(), ms(500));
    }
}

#[test]
fn partial_idle_earns_back_one_interval_at_a_time() {
    // The module docs' second timeline: burst at 0, demand resumes at 700 ms.
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(2).with_burst(3)).unwrap();
    for _ in 0..3 {
        throttle.try_acquire(&timer).unwrap();
    }
    timer.advance(ms(700));
    throttle.try_acquire(&timer).unwrap();
    let err = throttle.try_acquire(&timer).unwrap_err();
    assert_eq!(err.ready_at(), ms(1_000));
    assert_eq!(starts(&throttle, &timer, 2), [ms(1_000), ms(1_500)]);
}

#[test]
fn try_acquire_n_is_all_or_nothing() {
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(4).with_burst(4)).unwrap();
    throttle.try_acquire_n(&timer, 3).unwrap();
    let err = throttle.try_acquire_n(&timer, 2).unwrap_err();
    let TryAcquireError::RateLimited(limited) = err else {
        panic!("{err:?}")
    };
    assert_eq!(limited.ready_at(), ms(250));
    // The refused 2 took nothing: 1 is still there.
    throttle.try_acquire_n(&timer, 1).unwrap();
    assert!(throttle.try_acquire(&timer).is_err());
    // n = 0 always passes and takes nothing.
    throttle.try_acquire_n(&timer, 0).unwrap();
    timer.advance(ms(500));
    throttle.try_acquire_n(&timer, 2).unwrap();
}

#[test]
fn a_cost_above_the_burst_is_an_error_not_a_wait() {
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(10).with_burst(3)).unwrap();
    let expected = "cost 4 exceeds the burst of 3: it can never be admitted";
    let err = throttle.try_acquire_n(&timer, 4).unwrap_err();
    assert!(matches!(err, TryAcquireError::ExceedsBurst(_)));
    assert_eq!(err.to_string(), expected);
    let err: ExceedsBurst = throttle.acquire_n(&timer, u32::MAX).unwrap_err();
    assert_eq!((err.n(), err.burst()), (u32::MAX, 3));
    assert_eq!(
        throttle.acquire_n(&timer, 4).unwrap_err().to_string(),
        expected
    );
    // Nothing was taken by the refusals.
    throttle.try_acquire_n(&timer, 3).unwrap();
}

#[test]
fn acquire_n_waits_for_the_whole_cost() {
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(10).with_burst(5)).unwrap();
    throttle.try_acquire_n(&timer, 4).unwrap();
    let (wakes, waker) = counting_waker();
    let mut wait = pin!(throttle.acquire_n(&timer, 3).unwrap());
    assert!(poll_once(wait.as_mut(), &waker).is_pending());
    // 4 taken of 5: 3 fit once 2 intervals have passed.
    assert_eq!(timer.next_deadline(), Some(ms(200)));
    timer.advance(ms(199));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    timer.advance(ms(1));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(wait.as_mut(), &waker), Poll::Ready(()));
    assert!(throttle.try_acquire(&timer).is_err());

    // A zero cost completes at once and takes nothing.
    let zero = throttle.acquire_n(&timer, 0).unwrap();
    assert_eq!(zero.now_or_never(), Some(()));
    assert_eq!(timer.sleepers(), 0);
}

#[test]
fn acquire_wakes_once_at_the_exact_instant() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    throttle.try_acquire(&timer).unwrap();

    let (wakes, waker) = counting_waker();
    let mut wait = pin!(throttle.acquire(&timer));
    assert!(poll_once(wait.as_mut(), &waker).is_pending());
    assert_eq!(timer.sleepers(), 1);
    assert_eq!(timer.next_deadline(), Some(Duration::from_secs(1)));
    // A spurious poll re-registers nothing new.
    assert!(poll_once(wait.as_mut(), &waker).is_pending());
    assert_eq!(timer.sleepers(), 1);

    timer.advance(Duration::from_secs(1) - Duration::from_nanos(1));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    timer.advance(Duration::from_nanos(1));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(wait.as_mut(), &waker), Poll::Ready(()));
    assert_eq!(timer.sleepers(), 0);
    // The waiter took the unit.
    assert_eq!(
        throttle.try_acquire(&timer).unwrap_err().ready_at(),
        Duration::from_secs(2)
    );
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
}

#[test]
#[should_panic(expected = "`Acquire` polled after completion")]
fn acquire_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    let mut wait = pin!(throttle.acquire(&timer));
    assert_eq!(poll_once(wait.as_mut(), Waker::noop()), Poll::Ready(()));
    let _ = poll_once(wait.as_mut(), Waker::noop());
}

#[test]
#[should_panic(expected = "`Acquire` polled after completion")]
fn acquire_n_of_zero_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    let mut wait = pin!(throttle.acquire_n(&timer, 0).unwrap());
    assert_eq!(poll_once(wait.as_mut(), Waker::noop()), Poll::Ready(()));
    let _ = poll_once(wait.as_mut(), Waker::noop());
}

#[test]
fn a_poll_after_completion_takes_no_second_unit() {
    // The panic unwinds before anything is taken.
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(1).with_burst(2)).unwrap();
    let mut wait = Box::pin(throttle.acquire(&timer));
    assert_eq!(poll_once(wait.as_mut(), Waker::noop()), Poll::Ready(()));
    let again = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        poll_once(wait.as_mut(), Waker::noop())
    }));
    assert!(again.is_err());
    drop(wait);
    throttle.try_acquire(&timer).unwrap(); // the second unit of the burst is still there
    assert!(throttle.try_acquire(&timer).is_err());
}

#[test]
fn acquire_completes_on_first_poll_when_allowed() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    let (wakes, waker) = counting_waker();
    let mut wait = pin!(throttle.acquire(&timer));
    assert_eq!(poll_once(wait.as_mut(), &waker), Poll::Ready(()));
    assert_eq!(timer.sleepers(), 0);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
}

#[test]
fn dropped_waiter_consumes_nothing() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    throttle.try_acquire(&timer).unwrap();

    // Dropped while sleeping.
    let mut wait = Box::pin(throttle.acquire(&timer));
    assert!(poll_once(wait.as_mut(), Waker::noop()).is_pending());
    drop(wait);
    assert_eq!(timer.sleepers(), 0);

    // Dropped after being woken, before observing the wake.
    let (wakes, waker) = counting_waker();
    let mut wait = Box::pin(throttle.acquire(&timer));
    assert!(poll_once(wait.as_mut(), &waker).is_pending());
    timer.advance(Duration::from_secs(1));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    drop(wait);
    assert_eq!(timer.sleepers(), 0);

    // Neither took the unit due at 1 s.
    throttle.try_acquire(&timer).unwrap();
    assert_eq!(
        throttle.try_acquire(&timer).unwrap_err().ready_at(),
        Duration::from_secs(2)
    );
}

#[test]
fn waiters_are_admitted_in_arrival_order_and_only_the_head_sleeps() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    throttle.try_acquire(&timer).unwrap();

    let (wakes_a, waker_a) = counting_waker();
    let (wakes_b, waker_b) = counting_waker();
    let mut a = pin!(throttle.acquire(&timer));
    let mut b = pin!(throttle.acquire(&timer));
    assert!(poll_once(a.as_mut(), &waker_a).is_pending());
    assert!(poll_once(b.as_mut(), &waker_b).is_pending());
    // Only the head (a) sleeps; b waits in line.
    assert_eq!(timer.sleepers(), 1);
    assert_eq!(timer.next_deadline(), Some(Duration::from_secs(1)));
    assert!(
        format!("{throttle:?}").contains("waiting: 2"),
        "{throttle:?}"
    );

    // The slot at 1 s is a's: polling b first takes nothing.
    timer.advance(Duration::from_secs(1));
    assert_eq!(wakes_a.0.load(Ordering::SeqCst), 1);
    assert_eq!(wakes_b.0.load(Ordering::SeqCst), 0);
    assert!(poll_once(b.as_mut(), &waker_b).is_pending());
    assert_eq!(poll_once(a.as_mut(), &waker_a), Poll::Ready(()));
    // a's admission hands the turn to b, which now sleeps until 2 s.
    assert_eq!(wakes_b.0.load(Ordering::SeqCst), 1);
    assert!(poll_once(b.as_mut(), &waker_b).is_pending());
    assert_eq!(timer.next_deadline(), Some(Duration::from_secs(2)));

    // try_acquire does not queue: at 2 s it takes the slot ahead of the head, which sleeps
    // again until 3 s.
    timer.advance(Duration::from_secs(1));
    throttle.try_acquire(&timer).unwrap();
    assert!(poll_once(b.as_mut(), &waker_b).is_pending());
    assert_eq!(timer.next_deadline(), Some(Duration::from_secs(3)));
    timer.advance(Duration::from_secs(1));
    assert_eq!(poll_once(b.as_mut(), &waker_b), Poll::Ready(()));
    assert_eq!(timer.sleepers(), 0);
    assert!(
        format!("{throttle:?}").contains("waiting: 0"),
        "{throttle:?}"
    );
}

#[test]
fn config_errors_name_the_parameter_and_value() {
    let err = Throttle::new(Quota::per_second(0)).unwrap_err();
    assert_eq!(
        (err.parameter(), err.value()),
        ("rate", ConfigValue::Int(0))
    );
    assert_eq!(err.to_string(), "invalid rate = 0: expected at least 1");
    assert_eq!(Throttle::per_second(0).unwrap_err(), err);

    let err = Throttle::new(Quota::per_second(1).with_burst(0)).unwrap_err();
    assert_eq!(err.to_string(), "invalid burst = 0: expected at least 1");

    let err = Throttle::new(Quota::per_second(1).with_period(Duration::ZERO)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid period = 0ns: expected longer than zero"
    );

    let err = Throttle::new(Quota::per_second(1).with_period(Duration::MAX)).unwrap_err();
    assert_eq!(err.parameter(), "period");
    assert_eq!(err.value(), ConfigValue::Duration(Duration::MAX));

    let year = Duration::from_secs(365 * 24 * 3600);
    let err = Throttle::new(Quota::per_second(1).with_period(year).with_burst(1_000)).unwrap_err();
    assert_eq!(
        (err.parameter(), err.value()),
        ("burst", ConfigValue::Int(1_000))
    );
    assert!(
        err.to_string()
            .starts_with("invalid burst = 1000: expected")
    );

    // The extremes that do fit are accepted.
    assert!(Throttle::per_second(u32::MAX).is_ok());
    assert!(Throttle::new(Quota::per_second(1).with_period(year).with_burst(500)).is_ok());
}

#[test]
fn a_saturated_clock_admits_at_most_the_burst() {
    // Issue 7, bug 5: after `advance(Duration::MAX)` a 1/s throttle admitted everything.
    for burst in [1, 2, 5] {
        let timer = ManualTimer::new();
        let throttle = Throttle::new(Quota::per_second(1).with_burst(burst)).unwrap();
        timer.advance(Duration::MAX);
        let admitted = (0..1_000)
            .filter(|_| throttle.try_acquire(&timer).is_ok())
            .count();
        assert_eq!(admitted, burst as usize);
        let err = throttle.try_acquire(&timer).unwrap_err();
        assert!(err.is_never());
        assert_eq!((err.ready_at(), err.wait()), (Duration::MAX, Duration::MAX));
        assert_eq!(
            err.to_string(),
            "rate limited: never ready (the clock has reached its end)"
        );
        assert!(matches!(
            throttle.try_acquire_n(&timer, 1),
            Err(TryAcquireError::RateLimited(e)) if e.is_never()
        ));

        // A waiter waits for ever, without a sleep to spin on.
        let (wakes, waker) = counting_waker();
        let mut wait = pin!(throttle.acquire(&timer));
        for _ in 0..3 {
            assert!(poll_once(wait.as_mut(), &waker).is_pending());
        }
        assert_eq!(timer.sleepers(), 0);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn the_end_of_time_spends_what_is_left_of_the_burst() {
    // A throttle that spent part of its burst just before the horizon keeps the rest, and
    // the ordinary schedule runs right up to the horizon.
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(1).with_burst(3)).unwrap();
    let horizon = Duration::from_nanos(u64::MAX) - Duration::from_secs(3);
    timer.advance_to(horizon - Duration::from_secs(10));
    throttle.try_acquire_n(&timer, 3).unwrap();
    let err = throttle.try_acquire(&timer).unwrap_err();
    assert!(!err.is_never());
    assert_eq!(err.ready_at(), horizon - Duration::from_secs(9));
    timer.advance_to(horizon - Duration::from_secs(9));
    throttle.try_acquire(&timer).unwrap();
    timer.advance(Duration::MAX);
    let admitted = (0..100)
        .filter(|_| throttle.try_acquire(&timer).is_ok())
        .count();
    assert_eq!(admitted, 3, "idle since, so the whole burst, and no more");
    assert!(throttle.try_acquire(&timer).unwrap_err().is_never());
}

#[test]
fn a_throttle_can_be_a_static() {
    static THROTTLE: Throttle = Throttle::const_new(Quota::per_second(5).with_burst(2));
    let timer = ManualTimer::new();
    assert_eq!(starts(&THROTTLE, &timer, 3), [ms(0), ms(0), ms(200)]);
}

#[test]
fn errors_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn error<T: core::error::Error + Send + Sync + 'static>() {}
    send_sync::<Throttle>();
    send_sync::<Quota>();
    send_sync::<Acquire<'static, ManualTimer>>();
    send_sync::<Acquire<'static, &'static ManualTimer>>();
    error::<RateLimited>();
    error::<ExceedsBurst>();
    error::<TryAcquireError>();
}

#[test]
fn try_acquire_is_exact_across_threads() {
    // A frozen clock: among 4 threads hammering one throttle, exactly `burst` win, then
    // exactly one more per interval.
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(10).with_burst(7)).unwrap();
    let admitted = AtomicU32::new(0);
    let round = || {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        if throttle.try_acquire(&timer).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        admitted.swap(0, Ordering::Relaxed)
    };
    assert_eq!(round(), 7);
    timer.advance(ms(100));
    assert_eq!(round(), 1);
    timer.advance(ms(350));
    assert_eq!(round(), 3);
}

/// Random cancellation on a multi-threaded runtime: 32 tasks each want 20 starts and give up
/// on a wait after a random timeout, then try again. Every admission is within the quota, and
/// when all are done no sleeper is left registered.
#[test]
fn stress_with_random_cancellation() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let timer = ManualTimer::new();
    let throttle = Arc::new(Throttle::new(Quota::per_second(1_000).with_burst(4)).unwrap());
    let admitted = Arc::new(AtomicU32::new(0));
    let cancelled = Arc::new(AtomicU32::new(0));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..32u64)
            .map(|task| {
                let (timer, throttle) = (timer.clone(), throttle.clone());
                let (admitted, cancelled) = (admitted.clone(), cancelled.clone());
                tokio::spawn(async move {
                    let mut seed = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    let mut done = 0;
                    while done < 20 {
                        // xorshift: a timeout of 0..8 ms
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let patience = Duration::from_micros(seed % 8_000);
                        futures_util::select_biased! {
                            () = throttle.acquire(&timer).fuse() => {
                                admitted.fetch_add(1, Ordering::Relaxed);
                                done += 1;
                            }
                            () = timer.sleep(patience).fuse() => {
                                cancelled.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        while !tasks.iter().all(|t| t.is_finished()) {
            if timer.advance_to_next().is_none() {
                tokio::task::yield_now().await;
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let admitted = admitted.load(Ordering::Relaxed);
    assert_eq!(admitted, 32 * 20);
    assert!(
        cancelled.load(Ordering::Relaxed) > 0,
        "no waiter was cancelled"
    );
    // 640 admissions at 1/ms with burst 4 need at least 636 ms.
    let bound = 4 + timer.now().as_millis() as u32;
    assert!(
        admitted <= bound,
        "{admitted} admitted by {:?}",
        timer.now()
    );
    assert_eq!(timer.sleepers(), 0);
}

/// One step of the cancellation property test.
#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    TryAcquire(u32),
    /// Start a waiter for a cost and poll it once.
    Wait(u32),
    /// Poll the waiter at this index (modulo the live count).
    Poll(usize),
    /// Drop the waiter at this index (modulo the live count).
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..300).prop_map(Op::Advance),
        (0u32..4).prop_map(Op::TryAcquire),
        (0u32..4).prop_map(Op::Wait),
        any::<usize>().prop_map(Op::Poll),
        any::<usize>().prop_map(Op::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Waiters dropped at random points leave no trace: the throttle ends up exactly where
    /// a fresh one fed only the admissions that happened would be, every admission is within
    /// the quota, and no sleeper stays registered.
    #[test]
    fn dropped_waiters_leave_no_trace(ops in proptest::collection::vec(op(), 1..80)) {
        let quota = Quota::per_second(10).with_burst(3);
        let timer = ManualTimer::new();
        let throttle = Throttle::new(quota).unwrap();
        let mut waiters: Vec<(Pin<Box<Acquire<'_, &ManualTimer>>>, u32)> = Vec::new();
        let mut admissions: Vec<(Duration, u32)> = Vec::new();
        for op in ops {
            match op {
                Op::Advance(d) => timer.advance(ms(d)),
                Op::TryAcquire(n) => {
                    if throttle.try_acquire_n(&timer, n).is_ok() {
                        admissions.push((timer.now(), n));
                    }
                }
                Op::Wait(n) => {
                    let mut wait = Box::pin(throttle.acquire_n(&timer, n).unwrap());
                    if poll_once(wait.as_mut(), Waker::noop()).is_ready() {
                        admissions.push((timer.now(), n));
                    } else {
                        waiters.push((wait, n));
                    }
                }
                Op::Poll(i) if !waiters.is_empty() => {
                    let i = i % waiters.len();
                    if poll_once(waiters[i].0.as_mut(), Waker::noop()).is_ready() {
                        let (_, n) = waiters.swap_remove(i);
                        admissions.push((timer.now(), n));
                    }
                }
                Op::Drop(i) if !waiters.is_empty() => {
                    let i = i % waiters.len();
                    drop(waiters.swap_remove(i));
                }
                Op::Poll(_) | Op::Drop(_) => {}
            }
        }
        drop(waiters);
        prop_assert_eq!(timer.sleepers(), 0);

        // Within the quota: any window [a, b] holds at most 3 + (b - a) / 100 ms.
        for (i, &(a, _)) in admissions.iter().enumerate() {
            let mut total = 0;
            for &(b, n) in &admissions[i..] {
                total += u128::from(n);
                prop_assert!(total <= 3 + (b - a).as_millis() / 100);
            }
        }

        // A fresh throttle fed only the admissions agrees with this one on every probe.
        let shadow_timer = ManualTimer::new();
        let shadow = Throttle::new(quota).unwrap();
        for &(t, n) in &admissions {
            shadow_timer.advance_to(t);
            prop_assert!(shadow.try_acquire_n(&shadow_timer, n).is_ok());
        }
        shadow_timer.advance_to(timer.now());
        for n in [3, 1, 1] {
            prop_assert_eq!(
                throttle.try_acquire_n(&timer, n),
                shadow.try_acquire_n(&shadow_timer, n)
            );
        }
    }
}

/// A [`ManualTimer`] that counts the sleeps asked of it; `ManualTimer::sleepers` counts the
/// ones registered now.
#[derive(Clone, Default)]
struct CountingTimer {
    inner: ManualTimer,
    sleeps: Arc<AtomicUsize>,
}

impl Timer for CountingTimer {
    type Sleep = dike::time::ManualSleep;

    fn now(&self) -> Duration {
        self.inner.now()
    }

    fn sleep_until(&self, deadline: Duration) -> Self::Sleep {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        self.inner.sleep_until(deadline)
    }
}

/// A waker that raises a flag.
#[derive(Default)]
struct Flag(core::sync::atomic::AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One waiting task of a hand-driven executor: polled when its waker fired.
struct Task<'a> {
    id: usize,
    wait: Pin<Box<Acquire<'a, CountingTimer>>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<'a> Task<'a> {
    fn new(id: usize, throttle: &'a Throttle, timer: &CountingTimer) -> Self {
        let flag = Arc::new(Flag::default());
        Self {
            id,
            wait: Box::pin(throttle.acquire(timer.clone())),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    fn poll(&mut self) -> bool {
        self.flag.0.store(false, Ordering::SeqCst);
        poll_once(self.wait.as_mut(), &self.waker).is_ready()
    }

    fn woken(&self) -> bool {
        self.flag.0.load(Ordering::SeqCst)
    }
}

/// Polls every woken task (in id order) until none is woken, recording admissions; checks
/// after every poll that at most one sleep is registered.
fn run_woken<'a>(
    tasks: &mut Vec<Task<'a>>,
    timer: &CountingTimer,
    admitted: &mut Vec<(usize, Duration)>,
) {
    while let Some(i) = tasks.iter().position(Task::woken) {
        if tasks[i].poll() {
            let task = tasks.remove(i);
            admitted.push((task.id, timer.now()));
        }
        assert!(
            timer.inner.sleepers() <= 1,
            "{} sleepers",
            timer.inner.sleepers()
        );
    }
}

/// Drives `tasks` to completion: woken tasks first, then the clock to the next sleeper.
fn drain<'a>(
    mut tasks: Vec<Task<'a>>,
    timer: &CountingTimer,
    admitted: &mut Vec<(usize, Duration)>,
) {
    loop {
        run_woken(&mut tasks, timer, admitted);
        if tasks.is_empty() {
            return;
        }
        timer
            .inner
            .advance_to_next()
            .expect("pending waiters but no sleeper: wedged");
    }
}

#[test]
fn a_hundred_waiters_register_one_sleep_at_a_time_in_arrival_order() {
    // Issue 7: 100 concurrent waiters on a 20/s throttle registered 4 560 sleeps, all waking
    // for every slot. Now only the head of the line sleeps.
    let timer = CountingTimer::default();
    let throttle = Throttle::per_second(20).unwrap();
    let mut tasks: Vec<_> = (0..100)
        .map(|id| Task::new(id, &throttle, &timer))
        .collect();
    let mut admitted = Vec::new();
    // Arrival: each polled once, in order.
    tasks.retain_mut(|task| {
        let ready = task.poll();
        if ready {
            admitted.push((task.id, timer.now()));
        }
        assert!(timer.inner.sleepers() <= 1);
        !ready
    });
    assert_eq!(
        admitted,
        [(0, Duration::ZERO)],
        "the first is admitted at once"
    );
    assert_eq!(timer.inner.sleepers(), 1);
    assert!(
        format!("{throttle:?}").contains("waiting: 99"),
        "{throttle:?}"
    );

    drain(tasks, &timer, &mut admitted);
    let expected: Vec<_> = (0..100).map(|id| (id, ms(50 * id as u64))).collect();
    assert_eq!(admitted, expected, "arrival order, one every 50 ms");
    // One sleep per slot waited for.
    assert_eq!(timer.sleeps.load(Ordering::SeqCst), 99);
    assert_eq!(timer.inner.sleepers(), 0);
    assert!(
        format!("{throttle:?}").contains("waiting: 0"),
        "{throttle:?}"
    );
}

#[test]
fn a_dropped_head_passes_its_turn_and_a_dropped_middle_leaves_the_line() {
    let timer = CountingTimer::default();
    let throttle = Throttle::per_second(1).unwrap();
    throttle.try_acquire(&timer).unwrap();
    let mut tasks: Vec<_> = (0..6).map(|id| Task::new(id, &throttle, &timer)).collect();
    for task in &mut tasks {
        assert!(!task.poll());
    }
    assert_eq!(timer.inner.sleepers(), 1);

    // The head (0), asleep until 1 s, is dropped: 1 becomes the head and sleeps until 1 s.
    drop(tasks.remove(0));
    assert_eq!(timer.inner.sleepers(), 0);
    assert!(tasks[0].woken(), "the turn was handed on");
    let mut admitted = Vec::new();
    run_woken(&mut tasks, &timer, &mut admitted);
    assert_eq!(timer.inner.next_deadline(), Some(Duration::from_secs(1)));

    // A waiter in the middle (3) is dropped: it just leaves the line.
    tasks.retain(|task| task.id != 3);
    run_woken(&mut tasks, &timer, &mut admitted);
    assert!(admitted.is_empty());

    // The head (1) is woken by its sleep at 1 s but dropped before it runs; then the new head
    // (2) is handed the turn and dropped before it runs, too: 4 takes the slot at 1 s.
    timer.inner.advance(Duration::from_secs(1));
    assert!(tasks[0].woken());
    drop(tasks.remove(0));
    assert!(tasks[0].woken(), "handed to 2");
    drop(tasks.remove(0));
    assert!(tasks[0].woken(), "handed to 4");

    drain(tasks, &timer, &mut admitted);
    let secs = Duration::from_secs;
    assert_eq!(admitted, [(4, secs(1)), (5, secs(2))]);
    assert_eq!(timer.inner.sleepers(), 0);
    // Nothing was consumed by the dropped waiters: the next unit is due at 3 s.
    assert_eq!(
        throttle.try_acquire(&timer).unwrap_err().ready_at(),
        secs(3)
    );
}

#[test]
fn a_large_cost_at_the_head_is_not_overtaken_by_small_ones() {
    // FIFO also means a waiter for many units cannot be starved by later single units.
    let timer = CountingTimer::default();
    let throttle = Throttle::new(Quota::per_second(10).with_burst(4)).unwrap();
    throttle.try_acquire_n(&timer, 4).unwrap();
    let mut big = Box::pin(throttle.acquire_n(timer.clone(), 4).unwrap());
    assert!(poll_once(big.as_mut(), Waker::noop()).is_pending());
    let mut small = Box::pin(throttle.acquire(timer.clone()));
    assert!(poll_once(small.as_mut(), Waker::noop()).is_pending());
    // At 100 ms one unit is back: enough for `small`, but it waits behind `big`.
    timer.inner.advance(ms(100));
    assert!(poll_once(small.as_mut(), Waker::noop()).is_pending());
    timer.inner.advance(ms(300));
    assert!(poll_once(big.as_mut(), Waker::noop()).is_ready());
    assert!(poll_once(small.as_mut(), Waker::noop()).is_pending());
    timer.inner.advance(ms(100));
    assert!(poll_once(small.as_mut(), Waker::noop()).is_ready());
}

/// One step of the FIFO property test.
#[derive(Debug, Clone)]
enum LineOp {
    /// A new waiter arrives (is polled once).
    Arrive,
    /// Drop the waiter at this index (modulo the live count).
    Drop(usize),
    /// Move the clock.
    Advance(u64),
    /// A `try_acquire` that does not queue.
    TryAcquire,
    /// Poll every woken waiter.
    Run,
}

fn line_op() -> impl Strategy<Value = LineOp> {
    prop_oneof![
        3 => Just(LineOp::Arrive),
        2 => any::<usize>().prop_map(LineOp::Drop),
        3 => (0u64..120).prop_map(LineOp::Advance),
        1 => Just(LineOp::TryAcquire),
        3 => Just(LineOp::Run),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Waiters arriving, being dropped at any point (head, middle, just handed the turn) and
    /// a clock moving at random: at most one sleep is registered at any time, waiters are
    /// admitted in arrival order, every window holds at most `burst + w / T`, and nobody is
    /// left waiting or sleeping once the survivors have been admitted.
    #[test]
    fn random_cancellation_keeps_the_line_and_the_window(
        ops in proptest::collection::vec(line_op(), 1..120),
    ) {
        let timer = CountingTimer::default();
        let throttle = Throttle::new(Quota::per_second(20).with_burst(2)).unwrap();
        let mut tasks: Vec<Task<'_>> = Vec::new();
        let mut admitted: Vec<(usize, Duration)> = Vec::new();
        let mut direct: Vec<Duration> = Vec::new();
        let mut next_id = 0;
        for op in ops {
            match op {
                LineOp::Arrive => {
                    let mut task = Task::new(next_id, &throttle, &timer);
                    next_id += 1;
                    if task.poll() {
                        admitted.push((task.id, timer.now()));
                    } else {
                        tasks.push(task);
                    }
                }
                LineOp::Drop(i) if !tasks.is_empty() => {
                    let i = i % tasks.len();
                    drop(tasks.remove(i));
                }
                LineOp::Drop(_) => {}
                LineOp::Advance(d) => timer.inner.advance(ms(d)),
                LineOp::TryAcquire => {
                    if throttle.try_acquire(&timer).is_ok() {
                        direct.push(timer.now());
                    }
                }
                LineOp::Run => run_woken(&mut tasks, &timer, &mut admitted),
            }
            prop_assert!(timer.inner.sleepers() <= 1);
        }
        drain(tasks, &timer, &mut admitted);
        prop_assert_eq!(timer.inner.sleepers(), 0);
        let debug = format!("{throttle:?}");
        prop_assert!(debug.contains("waiting: 0"), "{}", debug);

        // Arrival order: ids only grow.
        prop_assert!(admitted.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", admitted);
        // The window bound over every admission, queued or direct.
        let mut all: Vec<Duration> = admitted.iter().map(|&(_, t)| t).chain(direct).collect();
        all.sort();
        for (i, &a) in all.iter().enumerate() {
            for (j, &b) in all.iter().enumerate().skip(i) {
                let bound = 2 + ((b - a).as_millis() / 50) as usize;
                prop_assert!(j - i < bound, "{} admitted in [{a:?}, {b:?}]", j - i + 1);
            }
        }
    }
}

#[test]
fn debug_output_is_readable_with_durations_everywhere() {
    let timer = ManualTimer::new();
    timer.advance(ms(1_000));
    let throttle = Throttle::new(Quota::per_second(4).with_burst(2)).unwrap();
    let quota = "Quota { rate: 4, period: 1s, burst: 2 }";
    assert_eq!(format!("{:?}", throttle.quota()), quota);
    assert_eq!(
        format!("{throttle:?}"),
        format!("Throttle {{ quota: {quota}, interval: 250ms, waiting: 0 }}")
    );

    throttle.try_acquire_n(&timer, 2).unwrap();
    let err = throttle.try_acquire(&timer).unwrap_err();
    // Issue 11: this printed `RateLimited { now: 1s, ready_at: 1250000000 }`.
    assert_eq!(
        format!("{err:?}"),
        "RateLimited { now: 1s, ready_at: 1.25s, wait: 250ms }"
    );
    assert_eq!(
        format!("{:?}", TryAcquireError::from(err)),
        "RateLimited(RateLimited { now: 1s, ready_at: 1.25s, wait: 250ms })"
    );
    let exceeds = throttle.acquire_n(&timer, 3).unwrap_err();
    assert_eq!(format!("{exceeds:?}"), "ExceedsBurst { n: 3, burst: 2 }");

    let mut wait = Box::pin(throttle.acquire(&timer));
    let debug = format!("{wait:?}");
    assert!(
        debug.starts_with("Acquire { throttle: Throttle {"),
        "{debug}"
    );
    assert!(
        debug.ends_with("n: 1, state: \"unpolled\", .. }"),
        "{debug}"
    );
    assert!(poll_once(wait.as_mut(), Waker::noop()).is_pending());
    assert!(format!("{wait:?}").contains("waiting: 1 }, n: 1, state: \"sleeping\""));

    let never = {
        let timer = ManualTimer::new();
        timer.advance(Duration::MAX);
        let throttle = Throttle::per_second(1).unwrap();
        throttle.try_acquire(&timer).unwrap();
        throttle.try_acquire(&timer).unwrap_err()
    };
    assert_eq!(
        format!("{never:?}"),
        format!(
            "RateLimited {{ now: {:?}, ready_at: {:?}, wait: {:?} }}",
            Duration::MAX,
            Duration::MAX,
            Duration::MAX
        )
    );
}
