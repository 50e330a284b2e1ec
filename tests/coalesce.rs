//! The coalescer against the contract: async_reduce's test suite ported (simultaneous calls,
//! errors, cancellation, the decorator, the debug and statistics hooks), then what dike adds
//! (keys compared by `Eq`, panics, `forget`, a property test of random joins and drops, a
//! multi-threaded stress run).
//!
//! The original's `test_ident` (unhashable arguments raise `TypeError`) has no counterpart: a
//! key that cannot be hashed or compared does not compile.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use dike::coalesce::{
    Coalesceable, Coalescer, Counts, DebugHooks, Hooks, KeyStats, RunError, Stats, coalesceable,
};
use dike::time::{ManualTimer, Timer};
use futures_util::FutureExt;
use futures_util::future::{Either, join_all, select};
use proptest::prelude::*;

/// Pending once (waking itself), then ready: the work stays in flight while every other
/// simultaneous call joins it, as the original's awaited mock does.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A mock: counts its calls and returns `result` after yielding once.
#[derive(Clone, Default)]
struct Mock {
    calls: Arc<AtomicUsize>,
}

impl Mock {
    fn call<T: Send + 'static>(&self, result: T) -> impl Future<Output = T> + Send + use<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        async move {
            YieldOnce(false).await;
            result
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

const COUNTS: [usize; 6] = [1, 2, 5, 10, 100, 1000];

/// `test_simultaneity`: N identical calls run the work once and all get its value; a second
/// round runs it again.
#[test]
fn simultaneous_identical_calls_run_once() {
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum Args {
        None,
        One(i32),
        Str(&'static str),
        Mixed(i32, &'static str, Option<()>),
    }
    let all_args = [
        Args::None,
        Args::One(1),
        Args::Str("1"),
        Args::Mixed(1, "1", None),
    ];
    for count in COUNTS {
        for args in &all_args {
            let coalescer: Coalescer<Args, Arc<str>, ()> = Coalescer::new();
            let mock = Mock::default();
            let result: Arc<str> = Arc::from("result");
            for round in 1..=2 {
                let runs = (0..count).map(|_| {
                    let mock = mock.clone();
                    let result = Arc::clone(&result);
                    coalescer.run(args, move || mock.call(Ok(result)))
                });
                let outcomes = smol::block_on(join_all(runs));
                assert_eq!(
                    mock.calls(),
                    round,
                    "{count} calls with {args:?}, round {round}"
                );
                for outcome in outcomes {
                    let value = outcome.into_result().unwrap();
                    assert!(Arc::ptr_eq(&value, &result), "the very same value");
                }
                assert_eq!(coalescer.in_flight(), 0);
            }
        }
    }
}

/// `test_simultaneity_raise`: the error reaches every waiter; a second round runs again.
#[test]
fn simultaneous_identical_calls_share_the_error() {
    #[derive(Debug, Clone, PartialEq)]
    enum Error {
        MyTest(&'static str),
        Timeout(&'static str),
        Cancelled,
    }
    for count in COUNTS {
        for error in [
            Error::MyTest("test error"),
            Error::Timeout("test error"),
            Error::Cancelled,
        ] {
            let coalescer: Coalescer<(), u32, Error> = Coalescer::new();
            let mock = Mock::default();
            for round in 1..=2 {
                let runs = (0..count).map(|_| {
                    let mock = mock.clone();
                    let error = error.clone();
                    coalescer.run(&(), move || mock.call(Err(error)))
                });
                let outcomes = smol::block_on(join_all(runs));
                assert_eq!(mock.calls(), round);
                for outcome in outcomes {
                    assert_eq!(outcome.into_result(), Err(RunError::Failed(error.clone())));
                }
            }
        }
    }
}

/// `test_prevent_cancelling`: the first waiter (the one that started the work) times out and
/// is dropped; the second still gets the result.
#[test]
fn the_first_waiter_cancelled_the_second_still_gets_the_result() {
    let timer = ManualTimer::new();
    let coalescer: Coalescer<&'static str, &'static str, ()> = Coalescer::new();
    let foo = || {
        let timer = timer.clone();
        move || async move {
            timer.sleep(Duration::from_secs(2)).await;
            Ok("result")
        }
    };
    let first = coalescer.run(&"foo", foo());
    let second = coalescer.run(&"foo", foo());
    // `wait_for(first, 1 s)`.
    let mut first_with_timeout = Box::pin(select(first, timer.sleep(Duration::from_secs(1))));
    assert!((&mut first_with_timeout).now_or_never().is_none());
    timer.advance(Duration::from_secs(1));
    let Some(Either::Right(((), first))) = (&mut first_with_timeout).now_or_never() else {
        panic!("timed out at 1 s");
    };
    drop(first); // cancelled
    drop(first_with_timeout);
    let mut second = Box::pin(second);
    assert!(second.as_mut().now_or_never().is_none());
    timer.advance(Duration::from_secs(1));
    let outcome = second.now_or_never().expect("the work finished at 2 s");
    assert_eq!(outcome.into_result(), Ok("result"));
    assert_eq!(coalescer.in_flight(), 0);
}

/// A work that records whether it was dropped.
struct Tracked<F> {
    inner: Pin<Box<F>>,
    dropped: Arc<AtomicBool>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// `test_all_waiters_cancelled`: every waiter times out; nothing is left behind (no entry, no
/// work, no invalid state), and the work was dropped, not finished (no spawning).
#[test]
fn all_waiters_cancelled_leave_no_entry() {
    let timer = ManualTimer::new();
    let coalescer = Coalescer::with_hooks(Stats::new());
    let dropped = Arc::new(AtomicBool::new(false));
    let foo = || {
        let timer = timer.clone();
        let dropped = Arc::clone(&dropped);
        move || Tracked {
            inner: Box::pin(async move {
                timer.sleep(Duration::from_secs(1)).await;
                Ok::<_, ()>("result")
            }),
            dropped,
        }
    };
    let gather =
        futures_util::future::join(coalescer.run(&"foo", foo()), coalescer.run(&"foo", foo()));
    let mut with_timeout = Box::pin(select(
        Box::pin(gather),
        timer.sleep(Duration::from_millis(999)),
    ));
    assert!((&mut with_timeout).now_or_never().is_none());
    timer.advance(Duration::from_millis(999));
    assert!(matches!(
        (&mut with_timeout).now_or_never(),
        Some(Either::Right(_))
    ));
    drop(with_timeout);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the work went with its last waiter"
    );
    assert_eq!(coalescer.in_flight(), 0);
    assert_eq!(timer.sleepers(), 0);
    let counts = coalescer.hooks().counts();
    assert_eq!(
        (counts.executed, counts.joined, counts.abandoned),
        (1, 1, 1)
    );
    assert_eq!((counts.succeeded, counts.failed), (0, 0));
}

/// `test_decorator_default` / `test_decorator_with_arg`: two identical calls of a wrapped
/// function run its body once.
#[test]
fn the_wrapper_runs_the_body_once_for_two_identical_calls() {
    let mock = Mock::default();
    let body = {
        let mock = mock.clone();
        move |(arg, kw): (&'static str, &'static str)| {
            mock.call(Ok::<_, ()>(format!("result {arg} {kw}")))
        }
    };
    let foo = coalesceable(body.clone());
    let (a, b) = smol::block_on(futures_util::future::join(
        foo.call(("arg", "kw")),
        foo.call(("arg", "kw")),
    ));
    assert_eq!(mock.calls(), 1);
    assert_eq!(a.as_deref(), Ok("result arg kw"));
    assert_eq!(b.as_deref(), Ok("result arg kw"));

    // With a given coalescer.
    let reducer = Arc::new(Coalescer::with_hooks(Stats::new()));
    let foo = Coalesceable::with_coalescer(Arc::clone(&reducer), body);
    let (a, b) = smol::block_on(futures_util::future::join(
        foo.call(("arg", "kw")),
        foo.clone().call(("arg", "kw")),
    ));
    assert_eq!(mock.calls(), 2);
    assert_eq!(a, b);
    assert_eq!(reducer.hooks().counts().joined, 1);
}

/// The four calls of the original's hook tests: `foo(1)`, `foo(1)`, `foo(2)`, `foo_error()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Call {
    Foo(i32),
    FooError,
}

async fn foo(arg: i32) -> Result<i32, String> {
    Ok(arg)
}

async fn foo_error() -> Result<i32, String> {
    Err("test".to_string())
}

fn four_calls<H: Hooks<Call, i32, String>>(coalescer: &Coalescer<Call, i32, String, H>) {
    let runs = vec![
        coalescer.run(&Call::Foo(1), || foo(1)),
        coalescer.run(&Call::Foo(1), || foo(1)),
        coalescer.run(&Call::Foo(2), || foo(2)),
        coalescer.run(&Call::FooError, foo_error),
    ];
    let outcomes = smol::block_on(join_all(runs));
    let results: Vec<_> = outcomes.into_iter().map(|o| o.into_result()).collect();
    assert_eq!(
        results,
        [
            Ok(1),
            Ok(1),
            Ok(2),
            Err(RunError::Failed("test".to_string()))
        ]
    );
}

/// `test_debug_hooks`: 11 lines, in the original's order.
#[test]
fn the_debug_hook_describes_each_event_in_order() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        move |line: std::fmt::Arguments<'_>| lines.lock().unwrap().push(line.to_string())
    };
    let coalescer = Coalescer::with_hooks(DebugHooks::new(sink));
    four_calls(&coalescer);
    let lines = lines.lock().unwrap();
    assert_eq!(
        *lines,
        [
            "[Foo(1)] apply",
            "[Foo(1)] execute",
            "[Foo(1)] apply",
            "[Foo(1)] join",
            "[Foo(2)] apply",
            "[Foo(2)] execute",
            "[FooError] apply",
            "[FooError] execute",
            "[Foo(1)] success: 1",
            "[Foo(2)] success: 2",
            "[FooError] error: test",
        ]
    );
}

/// `test_debug_hooks_default` / `_stream`: the ready-made sinks run.
#[test]
fn the_debug_hook_prints_to_stderr() {
    let coalescer = Coalescer::with_hooks(DebugHooks::stderr());
    four_calls(&coalescer);
}

/// `test_statistics_overall`, with dike's one meaning of "executed" (runs started): the
/// original reports executed=2 (its successes) where dike reports executed=3, succeeded=2.
#[test]
fn overall_statistics_of_the_four_calls() {
    let coalescer = Coalescer::with_hooks(Stats::new());
    four_calls(&coalescer);
    let stats = coalescer.hooks();
    let counts = stats.counts();
    assert_eq!(counts.total, 4);
    assert_eq!(counts.executed, 3);
    assert_eq!(counts.joined, 1);
    assert_eq!(counts.succeeded, 2);
    assert_eq!(counts.failed, 1);
    assert_eq!(counts.abandoned, 0);
    assert_eq!(
        stats.to_string(),
        "Stats(total=4, executed=3, joined=1, succeeded=2, failed=1, abandoned=0)"
    );
}

/// `test_statistics_detail`, per key (the original groups per function: its `foo` row is our
/// `Foo(1)` and `Foo(2)` rows added up: total 3, executed 2, reduced 1).
#[test]
fn per_key_statistics_of_the_four_calls() {
    let coalescer = Coalescer::with_hooks(KeyStats::new());
    four_calls(&coalescer);
    let stats = coalescer.hooks();
    let get = |call: Call| stats.get(&call).expect("seen");
    let foo1 = get(Call::Foo(1));
    assert_eq!(
        (
            foo1.total,
            foo1.executed,
            foo1.joined,
            foo1.succeeded,
            foo1.failed
        ),
        (2, 1, 1, 1, 0)
    );
    let foo2 = get(Call::Foo(2));
    assert_eq!(
        (
            foo2.total,
            foo2.executed,
            foo2.joined,
            foo2.succeeded,
            foo2.failed
        ),
        (1, 1, 0, 1, 0)
    );
    let err = get(Call::FooError);
    assert_eq!(
        (
            err.total,
            err.executed,
            err.joined,
            err.succeeded,
            err.failed
        ),
        (1, 1, 0, 0, 1)
    );
    let snapshot = stats.snapshot();
    assert_eq!(snapshot[0].0, Call::Foo(1), "most calls first");
    assert_eq!(snapshot.len(), 3);
    let text = stats.to_string();
    assert_eq!(text.lines().count(), 3);
    assert!(text.starts_with("Foo(1): total=2, executed=1, joined=1, succeeded=1, failed=0"));
}

/// The original's `MultipleHooks`: hooks combined in a tuple are all called, in order.
#[test]
fn combined_hooks_are_all_called_in_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let named = |name: &'static str| {
        let order = Arc::clone(&order);
        DebugHooks::new(move |line: std::fmt::Arguments<'_>| {
            order.lock().unwrap().push(format!("{name} {line}"))
        })
    };
    let coalescer = Coalescer::with_hooks((named("a"), Stats::new(), named("b"), KeyStats::new()));
    four_calls(&coalescer);
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 22);
    assert_eq!(order[0], "a [Foo(1)] apply");
    assert_eq!(order[1], "b [Foo(1)] apply");
    assert_eq!(coalescer.hooks().1.counts().total, 4);
    assert_eq!(coalescer.hooks().3.get(&Call::Foo(1)).unwrap().total, 2);
    // Shared by reference too.
    let stats = Stats::new();
    let by_ref = Coalescer::with_hooks(&stats);
    four_calls(&by_ref);
    assert_eq!(stats.counts().executed, 3);
}

/// A key whose hash is the same for every value: only `Eq` tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Colliding(i64);

impl Hash for Colliding {
    fn hash<H: Hasher>(&self, state: &mut H) {
        0_u8.hash(state);
    }
}

/// Python hashes -1 and -2 to the same value, and the original merges `foo(-1)` with
/// `foo(-2)`. dike compares keys with `Eq`, so equal hashes never merge different keys.
#[test]
fn keys_with_equal_hashes_are_not_merged() {
    let coalescer: Coalescer<Colliding, i64, ()> = Coalescer::new();
    let mock = Mock::default();
    let runs = [-1, -2, -1].map(|k| {
        let mock = mock.clone();
        coalescer.run(&Colliding(k), move || mock.call(Ok(k)))
    });
    assert_eq!(coalescer.in_flight(), 2);
    let outcomes = smol::block_on(join_all(runs));
    let results: Vec<_> = outcomes.iter().map(|o| *o.result()).collect();
    assert_eq!(results, [Ok(-1), Ok(-2), Ok(-1)]);
    assert_eq!(mock.calls(), 2);
    let plain: Coalescer<i64, i64, ()> = Coalescer::new();
    let a = plain.run(&-1, || async { Ok(-1) });
    let b = plain.run(&-2, || async { Ok(-2) });
    assert_eq!(plain.in_flight(), 2);
    let (a, b) = smol::block_on(futures_util::future::join(a, b));
    assert_eq!((a.into_result(), b.into_result()), (Ok(-1), Ok(-2)));
}

/// A panic in the work reaches every waiter as `Panicked` and frees the key.
#[test]
fn a_panic_reaches_every_waiter_and_frees_the_key() {
    let coalescer = Coalescer::with_hooks(Stats::new());
    let runs: Vec<_> = (0..5)
        .map(|_| {
            coalescer.run("k", || async {
                YieldOnce(false).await;
                if true {
                    panic!("the backend exploded");
                }
                Ok::<u8, ()>(0)
            })
        })
        .collect();
    let outcomes = smol::block_on(join_all(runs));
    for outcome in outcomes {
        assert_eq!(outcome.into_result(), Err(RunError::Panicked));
    }
    assert_eq!(coalescer.in_flight(), 0);
    let counts = coalescer.hooks().counts();
    assert_eq!((counts.executed, counts.failed), (1, 1));
    let next = smol::block_on(coalescer.run("k", || async { Ok(1) }));
    assert_eq!(next.into_result(), Ok(1));
}

/// `forget`: waiters of the forgotten run keep theirs; the next call runs afresh.
#[test]
fn forget_starts_the_next_call_afresh() {
    let coalescer: Coalescer<String, &'static str, ()> = Coalescer::new();
    let old = coalescer.run("users/42", || async {
        YieldOnce(false).await;
        Ok("stale")
    });
    let old_joiner = coalescer.run("users/42", || async { Ok("unused") });
    assert!(coalescer.forget("users/42"));
    let fresh = coalescer.run("users/42", || async { Ok("fresh") });
    let (old, old_joiner, fresh) =
        smol::block_on(futures_util::future::join3(old, old_joiner, fresh));
    assert_eq!(old.into_result(), Ok("stale"));
    assert_eq!(old_joiner.into_result(), Ok("stale"));
    assert!(!fresh.is_joined());
    assert_eq!(fresh.into_result(), Ok("fresh"));
    assert_eq!(coalescer.in_flight(), 0);
}

/// Joiners look the key up by reference: only the call that starts a run builds the map's
/// owned key (`ToOwned`, here `Clone`, counted).
#[test]
fn only_the_executor_builds_an_owned_key() {
    static CLONES: AtomicUsize = AtomicUsize::new(0);
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Key(u32);
    impl Clone for Key {
        fn clone(&self) -> Self {
            CLONES.fetch_add(1, Ordering::SeqCst);
            Key(self.0)
        }
    }
    let coalescer: Coalescer<Key, u8, ()> = Coalescer::new();
    let runs: Vec<_> = (0..10)
        .map(|_| coalescer.run(&Key(42), || async { Ok(1) }))
        .collect();
    assert_eq!(CLONES.load(Ordering::SeqCst), 1);
    assert_eq!(coalescer.in_flight(), 1);
    let outcomes = smol::block_on(join_all(runs));
    assert!(outcomes.iter().all(|o| o.result() == &Ok(1)));
    // And a `String` key is found from a `&str` without building one.
    let by_name: Coalescer<String, u8, ()> = Coalescer::new();
    let a = by_name.run("users/42", || async { Ok(1) });
    let b = by_name.run(&"users/42".to_string(), || async { Ok(2) });
    let (a, b) = smol::block_on(futures_util::future::join(a, b));
    assert!(b.is_joined());
    assert_eq!((a.into_result(), b.into_result()), (Ok(1), Ok(1)));
}

/// Whatever joins and drops happen, every burst of calls for a key runs the work once, every
/// waiter of a run gets that run's value, and nothing is left over.
#[derive(Debug, Clone)]
enum Op {
    Call(u8),
    Poll(usize),
    Drop(usize),
    Release(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3_u8).prop_map(Op::Call),
        3 => (0..16_usize).prop_map(Op::Poll),
        2 => (0..16_usize).prop_map(Op::Drop),
        2 => (0..3_u8).prop_map(Op::Release),
    ]
}

/// A work released by hand, tracking whether it is alive.
struct Gated {
    run: usize,
    release: Arc<AtomicBool>,
    alive: Arc<AtomicUsize>,
}

impl Future for Gated {
    type Output = Result<usize, ()>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        if self.release.load(Ordering::SeqCst) {
            Poll::Ready(Ok(self.run))
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn one_execution_per_burst_and_nothing_left_over(ops in proptest::collection::vec(op(), 1..80)) {
        let coalescer = Coalescer::with_hooks(Stats::new());
        let alive = Arc::new(AtomicUsize::new(0));
        // Model: the run in flight per key, each run's waiters alive and whether it completed.
        let mut in_flight: HashMap<u8, usize> = HashMap::new();
        let mut releases: Vec<Arc<AtomicBool>> = Vec::new();
        let mut completed: Vec<bool> = Vec::new();
        let mut live: Vec<usize> = Vec::new();
        let mut waiters = Vec::new(); // (run id, future)
        for op in ops {
            match op {
                Op::Call(key) => {
                    let next = releases.len();
                    let release = Arc::new(AtomicBool::new(false));
                    let started = Arc::new(AtomicBool::new(false));
                    let run = coalescer.run(&key, {
                        let (release, alive, started) = (Arc::clone(&release), Arc::clone(&alive), Arc::clone(&started));
                        move || {
                            started.store(true, Ordering::SeqCst);
                            alive.fetch_add(1, Ordering::SeqCst);
                            Gated { run: next, release, alive }
                        }
                    });
                    let id = match in_flight.get(&key) {
                        Some(&id) => {
                            prop_assert!(!started.load(Ordering::SeqCst), "a joiner's closure ran");
                            id
                        }
                        None => {
                            prop_assert!(started.load(Ordering::SeqCst), "a new burst did not start");
                            releases.push(release);
                            completed.push(false);
                            live.push(0);
                            in_flight.insert(key, next);
                            next
                        }
                    };
                    live[id] += 1;
                    waiters.push((id, key, run));
                }
                Op::Poll(i) if i < waiters.len() => {
                    let (id, key, run) = &mut waiters[i];
                    let (id, key) = (*id, *key);
                    match run.now_or_never() {
                        Some(outcome) => {
                            prop_assert!(releases[id].load(Ordering::SeqCst));
                            prop_assert_eq!(outcome.into_result(), Ok(id));
                            if !completed[id] {
                                completed[id] = true;
                                if in_flight.get(&key) == Some(&id) {
                                    in_flight.remove(&key);
                                }
                            }
                            live[id] -= 1;
                            drop(waiters.remove(i));
                        }
                        None => prop_assert!(!completed[id] && !releases[id].load(Ordering::SeqCst)),
                    }
                }
                Op::Drop(i) if i < waiters.len() => {
                    let (id, key, run) = waiters.remove(i);
                    drop(run);
                    live[id] -= 1;
                    if live[id] == 0 && !completed[id] && in_flight.get(&key) == Some(&id) {
                        in_flight.remove(&key); // abandoned
                    }
                }
                Op::Release(key) => {
                    if let Some(&id) = in_flight.get(&key) {
                        releases[id].store(true, Ordering::SeqCst);
                    }
                }
                Op::Poll(_) | Op::Drop(_) => {}
            }
            prop_assert_eq!(coalescer.in_flight(), in_flight.len());
            let unfinished = (0..live.len()).filter(|&r| live[r] > 0 && !completed[r]).count();
            prop_assert_eq!(alive.load(Ordering::SeqCst), unfinished, "a work outlived its waiters or vanished");
        }
        drop(waiters);
        prop_assert_eq!(coalescer.in_flight(), 0);
        prop_assert_eq!(alive.load(Ordering::SeqCst), 0);
        let counts = coalescer.hooks().counts();
        prop_assert_eq!(counts.executed, releases.len());
        prop_assert_eq!(counts.total, counts.executed + counts.joined);
        prop_assert_eq!(counts.executed, counts.succeeded + counts.failed + counts.abandoned);
    }
}

/// A work that asserts no other work for its key is being polled at the same time.
struct Exclusive<F> {
    polling: Arc<Vec<AtomicUsize>>,
    key: usize,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Exclusive<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let key = self.key;
        let before = self.polling[key].fetch_add(1, Ordering::SeqCst);
        assert_eq!(before, 0, "two works for one key polled at once");
        let poll = self.inner.as_mut().poll(cx);
        self.polling[key].fetch_sub(1, Ordering::SeqCst);
        poll
    }
}

/// 1 000 keys, 64 tasks, on tokio with 2 worker threads; some calls are cancelled
/// mid-flight. Per key, at most one work is polled at a time; every call that finished got its
/// run's value; nothing is left in flight.
#[test]
fn stress_on_a_multi_threaded_runtime() {
    const KEYS: u64 = 1000;
    const TASKS: usize = 64;
    const CALLS: u64 = 1000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    type Co = Coalescer<u64, (u64, u64), (), Arc<Stats>>;
    let coalescer = Arc::new(Co::with_hooks(Arc::new(Stats::new())));
    let running: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let executions: Arc<Vec<AtomicUsize>> =
        Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let finished = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (coalescer, running, executions, finished) = (
                    Arc::clone(&coalescer),
                    Arc::clone(&running),
                    Arc::clone(&executions),
                    Arc::clone(&finished),
                );
                tokio::spawn(async move {
                    for i in 0..CALLS {
                        // Every task walks the keys in the same order, a few steps apart.
                        let key = (i + t as u64 / 4) % KEYS;
                        let (running, counter) = (Arc::clone(&running), Arc::clone(&executions));
                        let run = coalescer.run_owned(&key, move || {
                            let n = counter[key as usize].fetch_add(1, Ordering::SeqCst) as u64 + 1;
                            // At most one work per key is ever being polled.
                            Exclusive {
                                polling: running,
                                key: key as usize,
                                inner: Box::pin(async move {
                                    for _ in 0..3 {
                                        tokio::task::yield_now().await;
                                    }
                                    Ok((key, n))
                                }),
                            }
                        });
                        if i % 5 == 0 {
                            // Cancelled after a poll or two.
                            let mut run = Box::pin(run);
                            let _ = (&mut run).now_or_never();
                            tokio::task::yield_now().await;
                            drop(run);
                            continue;
                        }
                        let outcome = run.await;
                        let (k, n) = outcome.into_result().expect("no errors");
                        assert_eq!(k, key);
                        assert!(
                            n >= 1 && n <= executions[key as usize].load(Ordering::SeqCst) as u64
                        );
                        finished.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(coalescer.in_flight(), 0);
    assert!(running.iter().all(|r| r.load(Ordering::SeqCst) == 0));
    let counts: Counts = coalescer.hooks().counts();
    let total_exec: usize = executions.iter().map(|e| e.load(Ordering::SeqCst)).sum();
    assert_eq!(counts.executed, total_exec);
    assert_eq!(counts.total, TASKS * CALLS as usize);
    assert_eq!(counts.total, counts.executed + counts.joined);
    assert_eq!(
        counts.executed,
        counts.succeeded + counts.failed + counts.abandoned
    );
    assert_eq!(counts.failed, 0);
    assert_eq!(
        finished.load(Ordering::SeqCst),
        TASKS * CALLS as usize * 4 / 5
    );
    assert!(
        counts.joined > counts.total / 4,
        "calls in flight together were coalesced: {counts}"
    );
    eprintln!("stress: {counts}");
}
