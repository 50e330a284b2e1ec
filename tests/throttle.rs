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
    // The waiter took the unit; a poll after completion takes nothing more.
    assert_eq!(
        throttle.try_acquire(&timer).unwrap_err().ready_at(),
        Duration::from_secs(2)
    );
    assert_eq!(poll_once(wait.as_mut(), &waker), Poll::Ready(()));
    assert_eq!(
        throttle.try_acquire(&timer).unwrap_err().ready_at(),
        Duration::from_secs(2)
    );
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
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
fn waiting_is_not_fifo_and_a_loser_sleeps_again() {
    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    throttle.try_acquire(&timer).unwrap();

    let (wakes_a, waker_a) = counting_waker();
    let (wakes_b, waker_b) = counting_waker();
    let mut a = pin!(throttle.acquire(&timer));
    let mut b = pin!(throttle.acquire(&timer));
    assert!(poll_once(a.as_mut(), &waker_a).is_pending());
    assert!(poll_once(b.as_mut(), &waker_b).is_pending());
    assert_eq!(timer.sleepers(), 2);

    // Both wake for the one slot at 1 s; whoever is polled first takes it.
    timer.advance(Duration::from_secs(1));
    assert_eq!(wakes_a.0.load(Ordering::SeqCst), 1);
    assert_eq!(wakes_b.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(b.as_mut(), &waker_b), Poll::Ready(()));
    assert!(poll_once(a.as_mut(), &waker_a).is_pending());
    assert_eq!(timer.next_deadline(), Some(Duration::from_secs(2)));

    // A try_acquire at 2 s beats the sleeping waiter too.
    timer.advance(Duration::from_secs(1));
    assert_eq!(wakes_a.0.load(Ordering::SeqCst), 2);
    throttle.try_acquire(&timer).unwrap();
    assert!(poll_once(a.as_mut(), &waker_a).is_pending());
    timer.advance(Duration::from_secs(1));
    assert_eq!(poll_once(a.as_mut(), &waker_a), Poll::Ready(()));
    assert_eq!(timer.sleepers(), 0);
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
    static THROTTLE: Throttle = match Throttle::new(Quota::per_second(5).with_burst(2)) {
        Ok(throttle) => throttle,
        Err(_) => panic!("invalid quota"),
    };
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
