//! Test E of issue 16: every new future, dropped at any await point, leaves nothing behind.
//!
//! Each scenario runs a few futures through a schedule of polls and clock moves, drops them
//! all where the schedule ends, then checks the books: no gate permit held and no waiter
//! queued, no breaker probe slot taken, retry and hedge budgets charged exactly for the
//! retries and hedges that started (and refunded for the successes), no attempt or hedge
//! still alive, no sleep registered with the timer, and no clone of the task's waker kept
//! anywhere. The schedules are random (proptest) and, for each scenario, every prefix of the
//! plain "poll everything, jump to the next deadline" schedule (every await point in turn).
//!
//! Scenarios: `time::timeout` / `time::deadline`; Retry with attempt timeout, total timeout
//! and budget; breaker calls (closed and half-open probes); hedging with a budget; adaptive
//! gate permits (held across the attempts' awaits); the composed stacks of the issue,
//! retry → breaker → adaptive gate → attempt timeout, and the same under a hedge; and, with
//! the `tower` feature, the `RetryLayer`'s response futures with a budget.

use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::Arc;
use std::task::Wake;

use dike::adaptive::{AdaptiveGate, Aimd};
use dike::breaker::{BreakDuration, Breaker, BreakerError, BreakerState, CountWindow};
use dike::error::Elapsed;
use dike::gate::Gate;
use dike::hedge::Hedge;
use dike::retry::{Retry, RetryBudget, RetryError};
use dike::time::{ManualTimer, Timer, deadline, timeout};
use proptest::prelude::*;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- the harness ----

/// A waker that counts its wakes; its clones are counted by the `Arc`'s strong count.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The task polling the futures: one counting waker.
struct Task {
    counter: Arc<Counter>,
    waker: Waker,
}

impl Task {
    fn new() -> Self {
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(Arc::clone(&counter));
        Self { counter, waker }
    }

    /// Clones of the waker kept beyond the task's own (the counter and the waker).
    fn stray_wakers(&self) -> usize {
        Arc::strong_count(&self.counter) - 2
    }
}

/// Counts the attempt futures alive: one guard per attempt, made at its first poll.
struct Live<'a>(&'a Cell<i32>);

impl<'a> Live<'a> {
    fn new(count: &'a Cell<i32>) -> Self {
        count.set(count.get() + 1);
        Self(count)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Polls every future still pending.
    PollAll,
    /// Polls one future (its index modulo the number of futures).
    Poll(usize),
    /// Jumps the clock to the next registered deadline.
    Next,
    /// Moves the clock forward (maybe past several deadlines, as a late timer would).
    Advance(u64),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        4 => Just(Step::PollAll),
        2 => any::<usize>().prop_map(Step::Poll),
        3 => Just(Step::Next),
        1 => (1..80u64).prop_map(Step::Advance),
    ];
    prop::collection::vec(step, 0..48)
}

/// Every prefix of "poll everything, jump to the next deadline", `rounds` times: the futures
/// are dropped at each await point in turn, polled or not since the clock moved.
fn canonical_prefixes(rounds: usize) -> impl Iterator<Item = Vec<Step>> {
    let full: Vec<Step> = (0..rounds)
        .flat_map(|_| [Step::PollAll, Step::Next])
        .collect();
    (0..=full.len()).map(move |n| full[..n].to_vec())
}

type Boxed<'a, O> = Pin<Box<dyn Future<Output = O> + 'a>>;

/// What a schedule did: each future's output (if it completed) and whether it was polled.
struct Played<O> {
    outputs: Vec<Option<O>>,
    polled: Vec<bool>,
}

/// Runs `futs` through `steps` with `task`'s waker, calling `during` after each step, then
/// drops every future still pending: the drop point. A completed future is dropped at once.
fn play<O>(
    timer: &ManualTimer,
    task: &Task,
    futs: Vec<Boxed<'_, O>>,
    steps: &[Step],
    during: impl Fn(),
) -> Played<O> {
    let mut cx = Context::from_waker(&task.waker);
    let n = futs.len();
    let mut futs: Vec<Option<Boxed<'_, O>>> = futs.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<O>> = (0..n).map(|_| None).collect();
    let mut polled = vec![false; n];
    let mut poll = |i: usize, cx: &mut Context<'_>| {
        if let Some(fut) = &mut futs[i] {
            polled[i] = true;
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                outputs[i] = Some(out);
                futs[i] = None;
            }
        }
    };
    for &step in steps {
        match step {
            Step::PollAll => (0..n).for_each(|i| poll(i, &mut cx)),
            Step::Poll(i) => poll(i % n, &mut cx),
            Step::Next => {
                timer.advance_to_next();
            }
            Step::Advance(d) => timer.advance(ms(d)),
        }
        during();
    }
    // The drop point: every future still pending goes now.
    drop(futs);
    Played { outputs, polled }
}

/// The books every scenario checks after the drop.
fn no_timer_no_waker_no_attempt(timer: &ManualTimer, task: &Task, live: &Cell<i32>) {
    assert_eq!(timer.sleepers(), 0, "a sleep is still registered");
    assert_eq!(task.stray_wakers(), 0, "a clone of the waker was kept");
    assert_eq!(live.get(), 0, "an attempt is still alive");
}

/// A retry budget, and its balance before any run: either large and half full (so refunds
/// are never clipped by the capacity), or small enough to refuse (no refunds).
struct Books {
    budget: RetryBudget,
    start: u32,
    cost: u32,
    refund: u32,
}

impl Books {
    fn new(small: bool) -> Self {
        if small {
            let budget = RetryBudget::with_capacity(20, 10, 0).unwrap();
            return Self {
                budget,
                start: 20,
                cost: 10,
                refund: 0,
            };
        }
        let budget = RetryBudget::with_capacity(1000, 10, 1).unwrap();
        for _ in 0..50 {
            assert!(budget.try_withdraw());
        }
        Self {
            budget,
            start: 500,
            cost: 10,
            refund: 1,
        }
    }

    /// The balance after `spent` retries or hedges started and `refunds` successes.
    fn expect(&self, spent: u32, refunds: u32) {
        assert_eq!(
            self.budget.available(),
            self.start - self.cost * spent + self.refund * refunds,
            "budget: {spent} retries or hedges started, {refunds} refunds"
        );
    }
}

/// One attempt on a waiting gate: takes a permit (waiting for it), holds it across a sleep.
async fn on_gate(
    timer: &ManualTimer,
    gate: &Gate,
    live: &Cell<i32>,
    latency: Duration,
    ok: bool,
    value: u32,
) -> Result<u32, u32> {
    let _live = Live::new(live);
    let _permit = gate.enter().await.map_err(|_| value)?;
    timer.sleep(latency).await;
    if ok { Ok(value) } else { Err(value) }
}

/// One attempt through an adaptive gate, whose permit is held across the sleep.
async fn on_adaptive(
    timer: &ManualTimer,
    gate: &AdaptiveGate,
    live: &Cell<i32>,
    latency: Duration,
    ok: bool,
    value: u32,
) -> Result<u32, u32> {
    let _live = Live::new(live);
    let permit = gate.try_enter(timer).map_err(|_| value)?;
    timer.sleep(latency).await;
    if ok {
        permit.success();
        Ok(value)
    } else {
        permit.dropped();
        Err(value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StackError {
    Open,
    Shed,
    Status,
    TimedOut,
}

/// One attempt of the composed stack: breaker → adaptive gate → attempt timeout → call.
/// dike's own refusals are reported as `ignore` (or not at all).
async fn through_stack(
    timer: &ManualTimer,
    breaker: &Breaker<CountWindow<8>>,
    gate: &AdaptiveGate,
    live: &Cell<i32>,
    limit: Duration,
    latency: Duration,
    ok: bool,
) -> Result<u32, StackError> {
    let _live = Live::new(live);
    let call = breaker.try_acquire(timer).map_err(|_| StackError::Open)?;
    let Ok(permit) = gate.try_enter(timer) else {
        call.ignore();
        return Err(StackError::Shed);
    };
    let dependency = async {
        timer.sleep(latency).await;
        if ok { Ok(7) } else { Err(StackError::Status) }
    };
    match timeout(timer, limit, dependency).await {
        Ok(Ok(value)) => {
            call.success();
            permit.success();
            Ok(value)
        }
        Ok(Err(error)) => {
            call.failure();
            permit.ignore();
            Err(error)
        }
        Err(_) => {
            call.failure();
            permit.dropped();
            Err(StackError::TimedOut)
        }
    }
}

fn breaker() -> Breaker<CountWindow<8>> {
    Breaker::new(CountWindow::<8>::new())
        .try_with_min_calls(2)
        .unwrap()
        .try_with_probes(2)
        .unwrap()
        .with_break(BreakDuration::fixed(ms(30)))
}

/// A breaker's probe slots are all free: none in flight, and a half-open breaker admits a
/// probe at once.
fn probe_slots_free(breaker: &Breaker<CountWindow<8>>, timer: &ManualTimer) {
    assert_eq!(breaker.stats().probes_in_flight, 0, "a probe slot is held");
    if breaker.state(timer) == BreakerState::HalfOpen {
        let probe = breaker.try_acquire(timer).expect("a free probe slot");
        probe.ignore();
    }
}

// ---- the scenarios ----

/// Parameters drawn per case: latencies and outcomes of successive attempts (cycled).
#[derive(Debug, Clone)]
struct Attempts {
    latencies: Vec<u64>,
    oks: Vec<bool>,
}

impl Attempts {
    fn latency(&self, n: usize) -> Duration {
        ms(self.latencies[n % self.latencies.len()])
    }
    fn ok(&self, n: usize) -> bool {
        self.oks[n % self.oks.len()]
    }
}

fn attempts() -> impl Strategy<Value = Attempts> {
    (
        prop::collection::vec(0..150u64, 1..6),
        prop::collection::vec(any::<bool>(), 1..6),
    )
        .prop_map(|(latencies, oks)| Attempts { latencies, oks })
}

/// `timeout` and `deadline` over attempts that wait for a gate of one permit.
fn timeouts(limits: [u64; 3], work: &Attempts, steps: &[Step]) {
    let timer = ManualTimer::new();
    let task = Task::new();
    let gate = Gate::new(1);
    let live = Cell::new(0);
    let futs: Vec<Boxed<'_, Result<Result<u32, u32>, Elapsed>>> = (0..3)
        .map(|i| {
            let attempt = on_gate(&timer, &gate, &live, work.latency(i), work.ok(i), i as u32);
            if i % 2 == 0 {
                Box::pin(timeout(&timer, ms(limits[i]), attempt)) as Boxed<'_, _>
            } else {
                Box::pin(deadline(&timer, ms(limits[i]), attempt))
            }
        })
        .collect();
    let played = play(&timer, &task, futs, steps, || {
        assert!(gate.stats().in_use <= 1);
    });
    for (i, out) in played.outputs.iter().enumerate() {
        if let Some(Err(elapsed)) = out {
            assert_eq!(
                elapsed.deadline(),
                ms(limits[i]),
                "a timeout at its deadline"
            );
        }
    }
    no_timer_no_waker_no_attempt(&timer, &task, &live);
    let stats = gate.stats();
    assert_eq!(
        (stats.in_use, stats.waiting),
        (0, 0),
        "a permit or a waiter left"
    );
}

#[derive(Debug, Clone)]
struct RetryCase {
    backoff: u64,
    attempts: u32,
    attempt_timeout: u64,
    total: u64,
    small_budget: bool,
    work: Attempts,
}

fn retry_case() -> impl Strategy<Value = RetryCase> {
    (
        0..60u64,
        1..5u32,
        1..120u64,
        1..400u64,
        any::<bool>(),
        attempts(),
    )
        .prop_map(
            |(backoff, attempts, attempt_timeout, total, small_budget, work)| RetryCase {
                backoff,
                attempts,
                attempt_timeout,
                total,
                small_budget,
                work,
            },
        )
}

/// Two runs of a Retry with attempt timeout, total timeout and a shared budget, their
/// attempts waiting for a gate of one permit.
fn retries(case: &RetryCase, steps: &[Step]) {
    let timer = ManualTimer::new();
    let task = Task::new();
    let gate = Gate::new(1);
    let live = Cell::new(0);
    let books = Books::new(case.small_budget);
    let policy = Retry::fixed(ms(case.backoff))
        .try_with_attempts(case.attempts)
        .unwrap()
        .with_attempt_timeout(ms(case.attempt_timeout))
        .with_timeout(ms(case.total))
        .with_budget(&books.budget);
    let calls = [Cell::new(0usize), Cell::new(0usize)];
    let futs: Vec<Boxed<'_, Result<u32, RetryError<u32>>>> = (0..2)
        .map(|run| {
            let (timer, gate, live, calls, work) = (&timer, &gate, &live, &calls[run], &case.work);
            let op = move || {
                let n = calls.get();
                calls.set(n + 1);
                on_gate(
                    timer,
                    gate,
                    live,
                    work.latency(n + run),
                    work.ok(n + run),
                    n as u32,
                )
            };
            Box::pin(policy.run(timer, op)) as Boxed<'_, _>
        })
        .collect();
    let played = play(&timer, &task, futs, steps, || {
        assert!(gate.stats().in_use <= 1);
    });
    no_timer_no_waker_no_attempt(&timer, &task, &live);
    let stats = gate.stats();
    assert_eq!(
        (stats.in_use, stats.waiting),
        (0, 0),
        "a permit or a waiter left"
    );
    // A retry that started keeps its payment; one paid for but not started is given back.
    let retried: usize = calls.iter().map(|c| c.get().saturating_sub(1)).sum();
    let successes = played
        .outputs
        .iter()
        .filter(|out| matches!(out, Some(Ok(_))))
        .count();
    books.expect(retried as u32, successes as u32);
    for (run, out) in played.outputs.iter().enumerate() {
        if out.is_some() {
            assert!(calls[run].get() <= case.attempts as usize);
        }
    }
}

#[derive(Debug, Clone)]
struct BreakerCase {
    open_first: bool,
    work: Attempts,
}

fn breaker_case() -> impl Strategy<Value = BreakerCase> {
    (any::<bool>(), attempts()).prop_map(|(open_first, work)| BreakerCase { open_first, work })
}

/// Three breaker calls, on a closed breaker or as half-open probes (two slots).
fn breaker_calls(case: &BreakerCase, steps: &[Step]) {
    let timer = ManualTimer::new();
    let task = Task::new();
    let live = Cell::new(0);
    let breaker = breaker();
    if case.open_first {
        for _ in 0..2 {
            breaker.try_acquire(&timer).unwrap().failure();
        }
        assert_eq!(breaker.state(&timer), BreakerState::Open);
        timer.advance(ms(30));
    }
    let futs: Vec<Boxed<'_, Result<u32, BreakerError<u32>>>> = (0..3)
        .map(|i| {
            let (latency, ok) = (case.work.latency(i), case.work.ok(i));
            let live = &live;
            let timer_ = &timer;
            let fut = async move {
                let _live = Live::new(live);
                timer_.sleep(latency).await;
                if ok { Ok(i as u32) } else { Err(i as u32) }
            };
            Box::pin(breaker.call(&timer, fut)) as Boxed<'_, _>
        })
        .collect();
    play(&timer, &task, futs, steps, || {
        assert!(breaker.stats().probes_in_flight <= 2);
    });
    no_timer_no_waker_no_attempt(&timer, &task, &live);
    probe_slots_free(&breaker, &timer);
}

#[derive(Debug, Clone)]
struct HedgeCase {
    delay: u64,
    max_hedges: u32,
    accept_ok_only: bool,
    small_budget: bool,
    limit: u32,
    work: Attempts,
}

fn hedge_case() -> impl Strategy<Value = HedgeCase> {
    (
        0..60u64,
        1..4u32,
        any::<bool>(),
        any::<bool>(),
        1..4u32,
        attempts(),
    )
        .prop_map(
            |(delay, max_hedges, accept_ok_only, small_budget, limit, work)| HedgeCase {
                delay,
                max_hedges,
                accept_ok_only,
                small_budget,
                limit,
                work,
            },
        )
}

/// Two hedged runs sharing a budget, every attempt holding an adaptive-gate permit.
fn hedges(case: &HedgeCase, steps: &[Step]) {
    let timer = ManualTimer::new();
    let task = Task::new();
    let live = Cell::new(0);
    let gate = AdaptiveGate::new(Aimd::new(case.limit));
    let books = Books::new(case.small_budget);
    let policy = Hedge::fixed(ms(case.delay))
        .try_with_max_hedges(case.max_hedges)
        .unwrap()
        .with_budget(&books.budget);
    let calls = Cell::new(0usize);
    let futs: Vec<Boxed<'_, Result<u32, u32>>> = (0..2)
        .map(|_| {
            let (timer, gate, live, calls, work) = (&timer, &gate, &live, &calls, &case.work);
            let op = move || {
                let n = calls.get();
                calls.set(n + 1);
                on_adaptive(timer, gate, live, work.latency(n), work.ok(n), n as u32)
            };
            let run = policy.run(timer, op);
            if case.accept_ok_only {
                Box::pin(run.accept(Result::is_ok)) as Boxed<'_, _>
            } else {
                Box::pin(run)
            }
        })
        .collect();
    let played = play(&timer, &task, futs, steps, || {});
    no_timer_no_waker_no_attempt(&timer, &task, &live);
    assert_eq!(gate.stats().in_use, 0, "an adaptive permit is held");
    // Every attempt is the first of a run or a hedge the policy counted.
    let started = played.polled.iter().filter(|&&p| p).count();
    let hedged = policy.stats().hedges;
    assert_eq!(
        calls.get(),
        started + hedged as usize,
        "an attempt unaccounted for"
    );
    // Hedges are spent when they start; every accepted answer refunds.
    let accepted = played
        .outputs
        .iter()
        .filter(|out| match out {
            Some(out) => !case.accept_ok_only || out.is_ok(),
            None => false,
        })
        .count();
    books.expect(hedged, accepted as u32);
}

#[derive(Debug, Clone)]
struct StackCase {
    backoff: u64,
    attempts: u32,
    attempt_timeout: u64,
    total: u64,
    small_budget: bool,
    limit: u32,
    open_first: bool,
    work: Attempts,
}

fn stack_case() -> impl Strategy<Value = StackCase> {
    (
        (0..60u64, 1..5u32, 1..120u64, 1..400u64),
        (any::<bool>(), 1..3u32, any::<bool>()),
        attempts(),
    )
        .prop_map(
            |(
                (backoff, attempts, attempt_timeout, total),
                (small_budget, limit, open_first),
                work,
            )| StackCase {
                backoff,
                attempts,
                attempt_timeout,
                total,
                small_budget,
                limit,
                open_first,
                work,
            },
        )
}

/// The stack's shared parts.
struct Stack {
    timer: ManualTimer,
    task: Task,
    live: Cell<i32>,
    breaker: Breaker<CountWindow<8>>,
    gate: AdaptiveGate,
    books: Books,
}

impl Stack {
    fn new(case: &StackCase) -> Self {
        let stack = Self {
            timer: ManualTimer::new(),
            task: Task::new(),
            live: Cell::new(0),
            breaker: breaker(),
            gate: AdaptiveGate::new(Aimd::new(case.limit)),
            books: Books::new(case.small_budget),
        };
        if case.open_first {
            for _ in 0..2 {
                stack.breaker.try_acquire(&stack.timer).unwrap().failure();
            }
            stack.timer.advance(ms(30));
        }
        stack
    }

    fn attempt(
        &self,
        case: &StackCase,
        n: usize,
    ) -> impl Future<Output = Result<u32, StackError>> + '_ {
        through_stack(
            &self.timer,
            &self.breaker,
            &self.gate,
            &self.live,
            ms(case.attempt_timeout),
            case.work.latency(n),
            case.work.ok(n),
        )
    }

    fn check(&self) {
        no_timer_no_waker_no_attempt(&self.timer, &self.task, &self.live);
        assert_eq!(self.gate.stats().in_use, 0, "an adaptive permit is held");
        probe_slots_free(&self.breaker, &self.timer);
    }
}

/// Two runs of retry (total timeout, budget) → breaker → adaptive gate → attempt timeout.
fn retry_stack(case: &StackCase, steps: &[Step]) {
    let stack = Stack::new(case);
    let policy = Retry::fixed(ms(case.backoff))
        .try_with_attempts(case.attempts)
        .unwrap()
        .with_timeout(ms(case.total))
        .with_budget(&stack.books.budget);
    let calls = [Cell::new(0usize), Cell::new(0usize)];
    let futs: Vec<Boxed<'_, Result<u32, RetryError<StackError>>>> = (0..2)
        .map(|run| {
            let (stack, calls) = (&stack, &calls[run]);
            let op = move || {
                let n = calls.get();
                calls.set(n + 1);
                stack.attempt(case, n + run)
            };
            Box::pin(policy.run(&stack.timer, op)) as Boxed<'_, _>
        })
        .collect();
    let played = play(&stack.timer, &stack.task, futs, steps, || {});
    stack.check();
    let retried: usize = calls.iter().map(|c| c.get().saturating_sub(1)).sum();
    let successes = played
        .outputs
        .iter()
        .filter(|out| matches!(out, Some(Ok(_))))
        .count();
    stack.books.expect(retried as u32, successes as u32);
}

/// Two hedged runs (budget) → breaker → adaptive gate → attempt timeout.
fn hedge_stack(case: &StackCase, steps: &[Step]) {
    let stack = Stack::new(case);
    let policy = Hedge::fixed(ms(case.backoff))
        .try_with_max_hedges(case.attempts)
        .unwrap()
        .with_budget(&stack.books.budget);
    let calls = Cell::new(0usize);
    let futs: Vec<Boxed<'_, Result<u32, StackError>>> = (0..2)
        .map(|_| {
            let (stack, calls) = (&stack, &calls);
            let op = move || {
                let n = calls.get();
                calls.set(n + 1);
                stack.attempt(case, n)
            };
            Box::pin(policy.run(&stack.timer, op).accept(Result::is_ok)) as Boxed<'_, _>
        })
        .collect();
    let played = play(&stack.timer, &stack.task, futs, steps, || {});
    stack.check();
    let started = played.polled.iter().filter(|&&p| p).count();
    let hedged = policy.stats().hedges;
    assert_eq!(
        calls.get(),
        started + hedged as usize,
        "an attempt unaccounted for"
    );
    let accepted = played
        .outputs
        .iter()
        .filter(|out| matches!(out, Some(Ok(_))))
        .count();
    stack.books.expect(hedged, accepted as u32);
}

/// Two requests through the tower `RetryLayer` (budget), each attempt waiting for a gate of
/// one permit.
#[cfg(feature = "tower")]
fn tower_retries(case: &RetryCase, steps: &[Step]) {
    use tower::{Layer, Service};

    let timer = ManualTimer::new();
    let task = Task::new();
    let gate = Gate::new(1);
    let live = Cell::new(0);
    let books = Books::new(case.small_budget);
    let policy = Retry::fixed(ms(case.backoff))
        .try_with_attempts(case.attempts)
        .unwrap()
        .with_budget(&books.budget);
    let calls = Cell::new(0usize);
    let (t, g, l, c, work) = (&timer, &gate, &live, &calls, &case.work);
    let service = tower::service_fn(move |request: usize| {
        let n = c.get();
        c.set(n + 1);
        on_gate(
            t,
            g,
            l,
            work.latency(n + request),
            work.ok(n + request),
            n as u32,
        )
    });
    let mut service = dike::tower::RetryLayer::new(policy, &timer).layer(service);
    let futs: Vec<Boxed<'_, Result<u32, u32>>> = (0..2)
        .map(|request| {
            let mut cx = Context::from_waker(&task.waker);
            assert!(
                service.poll_ready(&mut cx).is_ready(),
                "a service_fn is always ready"
            );
            Box::pin(service.call(request)) as Boxed<'_, _>
        })
        .collect();
    let played = play(&timer, &task, futs, steps, || {
        assert!(gate.stats().in_use <= 1);
    });
    drop(service);
    no_timer_no_waker_no_attempt(&timer, &task, &live);
    let stats = gate.stats();
    assert_eq!(
        (stats.in_use, stats.waiting),
        (0, 0),
        "a permit or a waiter left"
    );
    // `call` sends each request's first attempt; every further call is a retry.
    let retried = calls.get() - 2;
    let successes = played
        .outputs
        .iter()
        .filter(|out| matches!(out, Some(Ok(_))))
        .count();
    books.expect(retried as u32, successes as u32);
}

// ---- random schedules ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn timeout_and_deadline(limits in [0..200u64, 0..200u64, 0..200u64], work in attempts(), steps in steps()) {
        timeouts(limits, &work, &steps);
    }

    #[test]
    fn retry_with_timeouts_and_budget(case in retry_case(), steps in steps()) {
        retries(&case, &steps);
    }

    #[test]
    fn breaker_calls_and_probes(case in breaker_case(), steps in steps()) {
        breaker_calls(&case, &steps);
    }

    #[test]
    fn hedging_with_budget_and_adaptive_permits(case in hedge_case(), steps in steps()) {
        hedges(&case, &steps);
    }

    #[test]
    fn retry_breaker_adaptive_timeout_stack(case in stack_case(), steps in steps()) {
        retry_stack(&case, &steps);
    }

    #[test]
    fn hedge_breaker_adaptive_timeout_stack(case in stack_case(), steps in steps()) {
        hedge_stack(&case, &steps);
    }

    #[cfg(feature = "tower")]
    #[test]
    fn tower_retry_layer_with_budget(case in retry_case(), steps in steps()) {
        tower_retries(&case, &steps);
    }
}

// ---- every await point of the plain schedule ----

fn fixed_attempts() -> Attempts {
    Attempts {
        latencies: vec![120, 10, 40, 0, 90],
        oks: vec![false, false, true, false, true],
    }
}

#[test]
fn every_await_point_of_timeouts() {
    for steps in canonical_prefixes(8) {
        timeouts([50, 100, 150], &fixed_attempts(), &steps);
    }
}

#[test]
fn every_await_point_of_retries() {
    for small_budget in [false, true] {
        for backoff in [0, 20] {
            let case = RetryCase {
                backoff,
                attempts: 4,
                attempt_timeout: 60,
                total: 250,
                small_budget,
                work: fixed_attempts(),
            };
            for steps in canonical_prefixes(14) {
                retries(&case, &steps);
                #[cfg(feature = "tower")]
                tower_retries(&case, &steps);
            }
        }
    }
}

#[test]
fn every_await_point_of_breaker_calls() {
    for open_first in [false, true] {
        let case = BreakerCase {
            open_first,
            work: fixed_attempts(),
        };
        for steps in canonical_prefixes(6) {
            breaker_calls(&case, &steps);
        }
    }
}

#[test]
fn every_await_point_of_hedges() {
    for (accept_ok_only, small_budget) in [(false, false), (true, false), (true, true)] {
        let case = HedgeCase {
            delay: 15,
            max_hedges: 3,
            accept_ok_only,
            small_budget,
            limit: 2,
            work: fixed_attempts(),
        };
        for steps in canonical_prefixes(10) {
            hedges(&case, &steps);
        }
    }
}

#[test]
fn every_await_point_of_the_stacks() {
    for (open_first, small_budget) in [(false, false), (true, true)] {
        let case = StackCase {
            backoff: 20,
            attempts: 3,
            attempt_timeout: 60,
            total: 250,
            small_budget,
            limit: 2,
            open_first,
            work: fixed_attempts(),
        };
        for steps in canonical_prefixes(14) {
            retry_stack(&case, &steps);
            hedge_stack(&case, &steps);
        }
    }
}
