//! Gate behaviour through the public API: Send/Sync, cancellation at random points
//! (proptest), executors, and a multi-threaded stress run. Time is a `ManualTimer` only.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

extern crate alloc;
use alloc::sync::Arc;
use alloc::task::Wake;

use dike::error::{TooManyCalls, TooManyCallsKind};
use dike::gate::{
    Enter, EnterOwned, EnterTimeout, EnterTimeoutOwned, Gate, GateStats, LimitJobs, LimitedCall,
    OwnedPermit, Permit, limit_jobs,
};
use dike::time::ManualTimer;
use futures_util::FutureExt;
use proptest::prelude::*;

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Gate>();
    send_sync::<GateStats>();
    send_sync::<Permit<'static>>();
    send_sync::<OwnedPermit>();
    send_sync::<TooManyCalls>();
    send_sync::<Enter<'static>>();
    send_sync::<EnterOwned>();
    send_sync::<EnterTimeout<'static, ManualTimer>>();
    send_sync::<EnterTimeoutOwned<ManualTimer>>();
    type Job = fn(u8) -> core::future::Ready<u8>;
    send_sync::<LimitJobs<Job>>();
    send::<LimitedCall<Job, u8, core::future::Ready<u8>>>();
    // Futures of real code: what `tokio::spawn` needs.
    let gate = Arc::new(Gate::new(1));
    let timer = ManualTimer::new();
    fn assert_send_static<F: Future + Send + 'static>(_: &F) {}
    assert_send_static(&gate.enter_owned());
    assert_send_static(&gate.enter_timeout_owned(&timer, Duration::from_secs(1)));
}

#[test]
fn a_static_gate_works() {
    static GATE: Gate = Gate::new(1).with_max_waiting(4);
    let permit = GATE.try_enter().unwrap();
    assert_eq!(GATE.try_enter().unwrap_err().kind(), TooManyCallsKind::Full);
    drop(permit);
    assert_eq!(GATE.stats().in_use, 0);
}

/// One step of a random schedule over a gate.
#[derive(Debug, Clone)]
enum Op {
    /// `try_enter`, keeping the permit if admitted.
    TryEnter,
    /// Start a waiting entry (timed when `Some`, deadline in ms from now) and poll it once.
    Enter(Option<u8>),
    /// Poll waiter `i` (modulo the number alive).
    Poll(usize),
    /// Drop waiter `i` at whatever point it is.
    DropWaiter(usize),
    /// Drop permit `i`.
    Release(usize),
    /// Change the limit.
    SetLimit(u8),
    /// Move the clock.
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::TryEnter),
        3 => proptest::option::of(0u8..20).prop_map(Op::Enter),
        3 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::DropWaiter),
        3 => any::<usize>().prop_map(Op::Release),
        1 => (0u8..5).prop_map(Op::SetLimit),
        1 => (0u8..10).prop_map(Op::Advance),
    ]
}

type Waiter<'a> = (
    Pin<Box<dyn Future<Output = Result<Permit<'a>, TooManyCalls>> + 'a>>,
    Arc<Counter>,
    Waker,
);

fn poll_waiter<'a>(waiter: &mut Waiter<'a>) -> Poll<Result<Permit<'a>, TooManyCalls>> {
    let (fut, _, waker) = waiter;
    fut.as_mut().poll(&mut Context::from_waker(waker))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Waiters and permits dropped at random points lose, leak and wedge nothing: after the
    /// schedule, polling only the waiters that were woken drains every one of them, and the
    /// gate ends with every permit free and nobody registered.
    #[test]
    fn random_cancellation_loses_nothing(
        limit in 0usize..4,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let gate = Gate::new(limit);
        let timer = ManualTimer::new();
        let mut permits: Vec<Permit<'_>> = Vec::new();
        let mut waiters: Vec<Waiter<'_>> = Vec::new();
        let mut admitted = 0usize;
        let mut limit_now = limit;

        for op in ops {
            match op {
                Op::TryEnter => {
                    if let Ok(p) = gate.try_enter() {
                        admitted += 1;
                        permits.push(p);
                    }
                }
                Op::Enter(deadline) => {
                    let fut: Pin<Box<dyn Future<Output = _>>> = match deadline {
                        None => Box::pin(gate.enter()),
                        Some(ms) => Box::pin(gate.enter_timeout(&timer, Duration::from_millis(ms.into()))),
                    };
                    let counter = Arc::new(Counter::default());
                    let waker = Waker::from(counter.clone());
                    let mut waiter = (fut, counter, waker);
                    let queued_before = gate.stats().waiting;
                    match poll_waiter(&mut waiter) {
                        Poll::Ready(Ok(p)) => {
                            prop_assert_eq!(queued_before, 0, "entered past queued waiters");
                            admitted += 1;
                            permits.push(p);
                        }
                        Poll::Ready(Err(_)) => {}
                        Poll::Pending => waiters.push(waiter),
                    }
                }
                Op::Poll(i) if !waiters.is_empty() => {
                    let i = i % waiters.len();
                    if let Poll::Ready(result) = poll_waiter(&mut waiters[i]) {
                        if result.is_ok() {
                            // FIFO: every waiter queued earlier was granted before this one,
                            // so it was woken.
                            for (j, earlier) in waiters[..i].iter().enumerate() {
                                prop_assert!(
                                    earlier.1.0.load(Ordering::SeqCst) > 0,
                                    "waiter {} granted before earlier waiter {}", i, j
                                );
                            }
                        }
                        drop(waiters.remove(i));
                        if let Ok(p) = result { admitted += 1; permits.push(p); }
                    }
                }
                Op::DropWaiter(i) if !waiters.is_empty() => {
                    let i = i % waiters.len();
                    drop(waiters.remove(i));
                }
                Op::Release(i) if !permits.is_empty() => {
                    let i = i % permits.len();
                    drop(permits.remove(i));
                }
                Op::SetLimit(l) => { limit_now = l.into(); gate.set_limit(limit_now); }
                Op::Advance(ms) => timer.advance(Duration::from_millis(ms.into())),
                _ => {}
            }
            let stats = gate.stats();
            prop_assert!(stats.in_use >= permits.len());
            prop_assert!(stats.waiting <= waiters.len());
            if stats.waiting > 0 {
                prop_assert!(gate.try_enter().is_err(), "no barging past waiters");
            }
        }

        // Drain: free everything, make sure permits exist, then poll only woken waiters.
        permits.clear();
        if limit_now == 0 {
            gate.set_limit(1);
        }
        timer.advance(Duration::from_secs(1)); // every timed waiter resolves
        let mut seen: Vec<usize> = vec![0; waiters.len()];
        let mut done: Vec<bool> = vec![false; waiters.len()];
        // A waiter that was never woken may still be owed nothing; poll each once to start.
        let mut progress = true;
        let mut first = true;
        while progress {
            progress = false;
            for (i, waiter) in waiters.iter_mut().enumerate() {
                if done[i] { continue; }
                let wakes = waiter.1.0.load(Ordering::SeqCst);
                if !first && wakes == seen[i] { continue; }
                seen[i] = wakes;
                if let Poll::Ready(result) = poll_waiter(waiter) {
                    done[i] = true;
                    progress = true;
                    if result.is_ok() { admitted += 1; }
                    // The permit drops here and passes on to the next waiter.
                }
            }
            if first { first = false; progress = true; }
        }
        prop_assert!(done.iter().all(|&d| d), "a waiter was left wedged: {done:?}");
        drop(waiters);

        let stats = gate.stats();
        prop_assert_eq!(stats.in_use, 0);
        prop_assert_eq!(stats.waiting, 0);
        prop_assert_eq!(stats.admitted, admitted);
        let limit = gate.limit();
        let all: Vec<_> = (0..limit).map(|_| gate.try_enter()).collect();
        prop_assert!(all.iter().all(Result::is_ok), "every permit is free again");
        prop_assert!(gate.try_enter().is_err(), "and no more than the limit exist");
        prop_assert_eq!(timer.sleepers(), 0);
    }
}

#[test]
fn enter_works_on_smol_with_tasks_contending() {
    let gate = Arc::new(Gate::new(2));
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    smol::block_on(async {
        let ex = smol::LocalExecutor::new();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (gate, current, peak) = (gate.clone(), current.clone(), peak.clone());
                ex.spawn(async move {
                    for _ in 0..50 {
                        let _permit = gate.enter().await.unwrap();
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        smol::future::yield_now().await;
                        current.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        ex.run(futures_util::future::join_all(tasks)).await;
    });
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    let stats = gate.stats();
    assert_eq!((stats.admitted, stats.in_use, stats.waiting), (400, 0, 0));
    assert_eq!(stats.peak_in_use, 2);
}

#[test]
fn limit_jobs_mirrors_the_python_example() {
    let web_request = limit_jobs(2, |()| async {
        smol::future::yield_now().await;
        "<Response [200 OK]>"
    });
    let results = smol::block_on(futures_util::future::join_all(
        (0..3).map(|_| web_request.call(())),
    ));
    let lines: Vec<String> = results
        .into_iter()
        .map(|r| match r {
            Ok(response) => response.to_string(),
            Err(_) => "too many calls".to_string(),
        })
        .collect();
    assert_eq!(
        lines,
        [
            "<Response [200 OK]>",
            "<Response [200 OK]>",
            "too many calls"
        ]
    );
    assert_eq!(web_request.gate().stats().in_use, 0);
}

#[test]
fn an_abandoned_enter_before_its_first_poll_costs_nothing() {
    let gate = Gate::new(1);
    let _held = gate.try_enter().unwrap();
    drop(gate.enter());
    let timer = ManualTimer::new();
    drop(gate.enter_timeout(&timer, Duration::from_secs(1)));
    assert_eq!(gate.stats().waiting, 0);
    assert_eq!(timer.sleepers(), 0);
    assert!(gate.enter().now_or_never().is_none());
}

/// A small deterministic PRNG (xorshift64*) for the stress test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// 64 tasks on a multi-threaded runtime, 10 000 entries each, a third of them cancelled at a
/// random point: concurrency never exceeds the limit and the counters add up.
#[test]
fn stress_multi_threaded_with_random_cancellation() {
    const TASKS: u64 = 64;
    const ROUNDS: usize = 10_000;
    const LIMIT: usize = 4;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let gate = Arc::new(Gate::new(LIMIT));
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (admitted, rejected) = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|seed| {
                let (gate, current, peak) = (gate.clone(), current.clone(), peak.clone());
                tokio::spawn(async move {
                    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                    let (mut admitted, mut rejected) = (0usize, 0usize);
                    for _ in 0..ROUNDS {
                        let permit = match rng.next() % 6 {
                            0 => match gate.try_enter_owned() {
                                Ok(permit) => Some(permit),
                                Err(_) => {
                                    rejected += 1;
                                    None
                                }
                            },
                            // Cancelled after one poll, whatever state it reached.
                            1 => {
                                let mut enter = Box::pin(gate.enter_owned());
                                match futures_util::poll!(enter.as_mut()) {
                                    Poll::Ready(result) => result.ok(),
                                    Poll::Pending => {
                                        tokio::task::yield_now().await;
                                        drop(enter);
                                        None
                                    }
                                }
                            }
                            // Raced against a yield: cancelled if the yield wins.
                            2 => tokio::select! {
                                biased;
                                () = tokio::task::yield_now() => None,
                                p = gate.enter_owned() => p.ok(),
                            },
                            _ => gate.enter_owned().await.ok(),
                        };
                        let Some(permit) = permit else {
                            continue;
                        };
                        admitted += 1;
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        assert!(now <= LIMIT, "{now} holders with a limit of {LIMIT}");
                        if rng.next() % 2 == 0 {
                            tokio::task::yield_now().await;
                        }
                        current.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    }
                    (admitted, rejected)
                })
            })
            .collect();
        let mut totals = (0, 0);
        for task in tasks {
            let (a, r) = task.await.unwrap();
            totals.0 += a;
            totals.1 += r;
        }
        totals
    });
    let stats = gate.stats();
    assert!(peak.load(Ordering::SeqCst) <= LIMIT);
    assert_eq!((stats.in_use, stats.waiting), (0, 0));
    assert_eq!(stats.admitted, admitted);
    assert_eq!(stats.rejected, rejected);
    assert!(stats.peak_in_use <= LIMIT);
    let all: Vec<_> = (0..LIMIT).map(|_| gate.try_enter()).collect();
    assert!(all.iter().all(Result::is_ok));
}

/// Dropping waiters from the middle of a long queue costs O(1) each: 200 000 of them, dropped
/// from the middle outwards, take about 0.1 s in a debug build (a queue that shifts its
/// entries on each removal, as before, took 23 s).
#[test]
fn a_cancellation_storm_is_linear() {
    const N: usize = 200_000;
    let gate = Gate::new(1);
    let _held = gate.try_enter().unwrap();
    let mut waiters: Vec<Option<_>> = (0..N)
        .map(|_| {
            let mut w = gate.enter();
            assert!(
                Pin::new(&mut w)
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
            Some(w)
        })
        .collect();
    assert_eq!(gate.stats().waiting, N);
    let start = std::time::Instant::now();
    let mid = N / 2;
    waiters[mid] = None;
    for step in 1..=mid {
        waiters[mid - step] = None;
        if mid + step < N {
            waiters[mid + step] = None;
        }
    }
    let took = start.elapsed();
    assert_eq!(gate.stats().waiting, 0);
    eprintln!("{N} cancellations took {took:?}");
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert!(gate.try_enter().is_err(), "the permit is still held");
}
