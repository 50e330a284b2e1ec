//! Issue 16's tests C (hedging) on a virtual clock with a seeded RNG, and cancellation at every
//! await point (E). Figures are printed with `--nocapture`.
//!
//! Model: each attempt takes 10 ms·U(0.9, 1.1), or, independently with probability 3 %, 200 ms
//! (a straggler). 10 000 requests one after another; a request's latency runs from its start
//! to its answer.

use core::cell::Cell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::rc::Rc;

use dike::hedge::Hedge;
use dike::retry::RetryBudget;
use dike::time::{ManualTimer, Timer};

const REQUESTS: usize = 10_000;
const SEEDS: [u64; 3] = [1, 2, 3];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// An attempt's latency in the model.
    fn latency(&mut self, straggler_ratio: f64) -> Duration {
        let base = Duration::from_secs_f64(0.010 * (0.9 + 0.2 * self.uniform()));
        if self.uniform() < straggler_ratio {
            Duration::from_millis(200)
        } else {
            base
        }
    }
}

/// Drives `fut` on the manual clock to completion.
fn drive<F: Future>(timer: &ManualTimer, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        timer
            .advance_to_next()
            .expect("a pending run has a sleeper");
    }
}

/// Counts attempts alive.
struct Live(Rc<Cell<usize>>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

struct Figures {
    p99: Duration,
    attempts: usize,
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

/// Runs the model's 10 000 requests through `policy` (or directly when `None`).
fn simulate<B: core::borrow::Borrow<RetryBudget>>(
    seed: u64,
    straggler_ratio: f64,
    policy: Option<&Hedge<B>>,
) -> Figures {
    let timer = ManualTimer::new();
    let rng = Cell::new(Rng(seed));
    let live = Rc::new(Cell::new(0usize));
    let attempts = Cell::new(0usize);
    let op = || {
        let mut r = rng.replace(Rng(0));
        let latency = r.latency(straggler_ratio);
        rng.set(r);
        attempts.set(attempts.get() + 1);
        live.set(live.get() + 1);
        let guard = Live(Rc::clone(&live));
        let sleep = timer.sleep(latency);
        async move {
            sleep.await;
            drop(guard);
        }
    };
    let mut latencies = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let start = timer.now();
        match policy {
            Some(policy) => drive(&timer, policy.run(&timer, op)),
            None => drive(&timer, op()),
        }
        // Losers are gone before the result returns: nothing alive, nothing sleeping.
        assert_eq!(live.get(), 0, "a loser outlived the result");
        assert_eq!(timer.sleepers(), 0, "a sleep outlived the result");
        latencies.push(timer.now() - start);
    }
    Figures {
        p99: p99(latencies),
        attempts: attempts.get(),
    }
}

fn check(name: &str, seed: u64, policy: &Hedge) {
    let base = simulate::<&RetryBudget>(seed, 0.03, None);
    let hedged = simulate(seed, 0.03, Some(policy));
    let fall = 1.0 - hedged.p99.as_secs_f64() / base.p99.as_secs_f64();
    let extra = hedged.attempts as f64 / REQUESTS as f64 - 1.0;
    println!(
        "{name} seed {seed}: p99 {:?} -> {:?} ({:.1} % lower), {:.2} % extra attempts, {:?}",
        base.p99,
        hedged.p99,
        fall * 100.0,
        extra * 100.0,
        policy.stats(),
    );
    assert_eq!(
        base.p99,
        Duration::from_millis(200),
        "the model's p99 is the straggler"
    );
    assert!(
        fall >= 0.85,
        "{name} seed {seed}: p99 fell only {:.1} %",
        fall * 100.0
    );
    assert!(
        extra <= 0.06,
        "{name} seed {seed}: {:.2} % extra attempts",
        extra * 100.0
    );
}

#[test]
fn c_hedge_at_p95_of_recent_latencies() {
    for seed in SEEDS {
        // No hedge before 100 samples.
        let policy = Hedge::quantile(0.95, 100, Duration::MAX).unwrap();
        check("p95", seed, &policy);
        assert_eq!(policy.stats().samples, 128);
    }
}

#[test]
fn c_hedge_at_a_fixed_15_ms() {
    for seed in SEEDS {
        check(
            "fixed 15 ms",
            seed,
            &Hedge::fixed(Duration::from_millis(15)),
        );
    }
}

#[test]
fn c_every_attempt_slow_hedges_stay_within_the_budget() {
    for seed in SEEDS {
        // One hedge costs 10 tokens, an answer refunds 1: about one hedge per 10 requests.
        let budget = RetryBudget::with_capacity(100, 10, 1).unwrap();
        let policy = Hedge::fixed(Duration::from_millis(15)).with_budget(&budget);
        let figures = simulate(seed, 1.0, Some(&policy));
        let hedges = figures.attempts - REQUESTS;
        let stats = policy.stats();
        println!("all slow, seed {seed}: {hedges} hedges for {REQUESTS} requests, {stats:?}");
        assert_eq!(hedges as u32, stats.hedges);
        // The bucket's 100 tokens, then one hedge per 10 answers.
        assert!(hedges <= REQUESTS / 10 + 10, "{hedges} hedges");
        assert!(
            hedges >= REQUESTS / 10 - 10,
            "the budget was used: {hedges} hedges"
        );
        assert_eq!(
            stats.hedges + stats.refused,
            REQUESTS as u32,
            "every request tried to hedge"
        );
        assert_eq!(figures.p99, Duration::from_millis(200));
    }
}

/// E: drop the run after each of its polls: every attempt and sleep is gone and the budget
/// holds exactly what the started hedges took.
#[test]
fn e_drop_at_every_await_point() {
    let ms = Duration::from_millis;
    for polls in 0..8 {
        let timer = ManualTimer::new();
        let budget = RetryBudget::with_capacity(100, 10, 1).unwrap();
        let policy = Hedge::fixed(ms(5))
            .try_with_max_hedges(3)
            .unwrap()
            .with_budget(&budget);
        let live = Rc::new(Cell::new(0usize));
        let op = || {
            live.set(live.get() + 1);
            let guard = Live(Rc::clone(&live));
            let sleep = timer.sleep(ms(100));
            async move {
                sleep.await;
                drop(guard);
            }
        };
        let mut cx = Context::from_waker(Waker::noop());
        let finished = {
            let mut run = Box::pin(policy.run(&timer, op));
            let mut finished = false;
            for _ in 0..polls {
                if run.as_mut().poll(&mut cx).is_ready() {
                    finished = true;
                    break;
                }
                timer.advance_to_next();
            }
            finished
        };
        assert_eq!(live.get(), 0, "after {polls} polls");
        assert_eq!(timer.sleepers(), 0, "after {polls} polls");
        let hedges = policy.stats().hedges;
        let refund = u32::from(finished);
        assert_eq!(
            budget.available(),
            100 - 10 * hedges + refund,
            "after {polls} polls"
        );
    }
}

proptest::proptest! {
    /// E, randomised: any latencies, errors, delay, hedge count and budget; the run dropped
    /// after any number of polls. Nothing stays alive or registered, the budget holds exactly
    /// what the started hedges took (plus the refund of an accepted answer), and a finished
    /// run returns an accepted answer unless every attempt was rejected.
    #[test]
    fn e_drop_anywhere(
        latencies in proptest::collection::vec(0u64..40, 4),
        errors in proptest::collection::vec(proptest::bool::ANY, 4),
        delay in 0u64..20,
        max_hedges in 1u32..=3,
        capacity in 10u32..40,
        polls in 0usize..12,
    ) {
        let ms = Duration::from_millis;
        let timer = ManualTimer::new();
        let budget = RetryBudget::with_capacity(capacity, 10, 1).unwrap();
        let policy = Hedge::fixed(ms(delay))
            .try_with_max_hedges(max_hedges)
            .unwrap()
            .with_budget(&budget);
        let live = Rc::new(Cell::new(0usize));
        let started = Cell::new(0usize);
        let op = || {
            let i = started.get();
            started.set(i + 1);
            live.set(live.get() + 1);
            let guard = Live(Rc::clone(&live));
            let sleep = timer.sleep(ms(latencies[i]));
            let failed = errors[i];
            async move {
                sleep.await;
                drop(guard);
                if failed { Err(i) } else { Ok(i) }
            }
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut result = None;
        {
            let mut run = Box::pin(policy.run(&timer, op).accept(Result::is_ok));
            for _ in 0..polls {
                if let Poll::Ready(out) = run.as_mut().poll(&mut cx) {
                    result = Some(out);
                    break;
                }
                timer.advance_to_next();
            }
        }
        proptest::prop_assert_eq!(live.get(), 0);
        proptest::prop_assert_eq!(timer.sleepers(), 0);
        let stats = policy.stats();
        proptest::prop_assert!(started.get() <= 1 + max_hedges as usize);
        if started.get() > 0 {
            proptest::prop_assert_eq!(started.get(), 1 + stats.hedges as usize);
        }
        let refund = u32::from(matches!(result, Some(Ok(_))));
        proptest::prop_assert_eq!(budget.available(), (capacity - 10 * stats.hedges + refund).min(capacity));
        if let Some(Err(i)) = result {
            // Rejected: every started attempt failed, and no further hedge could start.
            proptest::prop_assert!((0..started.get()).all(|j| errors[j]), "{i}");
            proptest::prop_assert!(
                stats.hedges == max_hedges || stats.refused > 0,
                "returned a rejection while a hedge could start"
            );
        }
    }
}
