//! Run many tasks under a concurrency limit and a rate limit, in one call: aiometer's
//! `run_all`, `run_each`, `amap` and `run_any` with `max_at_once` and `max_per_second`.
//!
//! | function | returns | like |
//! |---|---|---|
//! | [`run_all`] | every output, in input order | `join_all`, aiometer `run_all` |
//! | [`try_run_all`] | every `Ok` in input order, or the first error (the rest dropped) | `try_join_all` |
//! | [`run_all_settled`] | every `Result`, in input order (errors do not stop the run) | `Promise.allSettled` |
//! | [`run_each`] | nothing: runs `f(item)` for its effect | aiometer `run_on_each` |
//! | [`amap`] / [`amap_indexed`] | a [`Stream`](futures_core::Stream) of outputs in completion order | `buffer_unordered`, aiometer `amap` |
//! | [`run_any`] | the first output to finish (the rest dropped) | `select_ok`, aiometer `run_any` |
//!
//! Every function takes [`Limits`]: `max_at_once` (tasks in flight), `max_per_second` (starts
//! per second, fractional allowed) with a `burst`, and optionally a shared
//! [`Gate`](crate::gate::Gate) or [`Throttle`](crate::throttle::Throttle) so that a limit
//! holds across runs. A timer is needed only when a rate is set.
//!
//! ```
//! use dike::run::{Limits, amap};
//! # #[cfg(feature = "tokio")]
//! use dike::time::TokioTimer;
//! use futures_util::StreamExt;
//!
//! async fn fetch(url: String) -> usize {
//!     url.len() // an HTTP call in real life
//! }
//!
//! # #[cfg(feature = "tokio")]
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), dike::error::ConfigError> {
//!     let urls = (0..5).map(|i| format!("https://example.com/{i}"));
//!     // At most 2 requests at once, at most 50 started per second.
//!     let limits = Limits::new().max_at_once(2)?.max_per_second(50.0)?.timer(TokioTimer::new());
//!     let mut results = amap(fetch, urls, limits);
//!     while let Some(len) = results.next().await {
//!         println!("{len}");
//!     }
//!     Ok(())
//! }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! Without a rate no timer is involved, and any executor (or none: `now_or_never`) works:
//!
//! ```
//! use dike::run::{Limits, run_all};
//! use futures_util::FutureExt;
//!
//! let squares = run_all((1..=4).map(|i| async move { i * i }), Limits::new().max_at_once(2)?);
//! assert_eq!(squares.now_or_never(), Some(vec![1, 4, 9, 16]));
//! # Ok::<(), dike::error::ConfigError>(())
//! ```
//!
//! In tests, [`ManualTimer`](crate::time::ManualTimer) makes paced runs deterministic: poll
//! the run, and when it is pending, jump the clock to the next start time.
//!
//! ```
//! use core::pin::pin;
//! use core::task::{Context, Poll, Waker};
//! use dike::run::{Limits, run_each};
//! use dike::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let starts = std::cell::RefCell::new(Vec::new());
//! let limits = Limits::new().max_per_second(4.0)?.timer(&timer);
//! let mut run = pin!(run_each(|_| { starts.borrow_mut().push(timer.now()); async {} }, 0..3, limits));
//! while run.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending() {
//!     timer.advance_to_next();
//! }
//! let ms: Vec<u128> = starts.take().iter().map(|t| t.as_millis()).collect();
//! assert_eq!(ms, [0, 250, 500]);
//! # Ok::<(), dike::error::ConfigError>(())
//! ```
//!
//! # Inputs
//!
//! Any [`IntoIterator`], or any [`Stream`](futures_core::Stream) wrapped by [`from_stream`].
//! [`run_all`], [`try_run_all`], [`run_all_settled`] and [`run_any`] take futures (a lazy
//! `iter.map(|x| fetch(x))` creates each only when it is pulled); [`run_each`] and [`amap`]
//! take a function and its inputs, as aiometer. The input is consumed **lazily**: the next
//! item is pulled only when a slot is free, so at most `max_at_once` futures exist at once,
//! and a 10 000 000-item iterator costs memory for `max_at_once` futures, not for the input.
//! The pulled item then waits in its slot for its gate permit and its start time: a future
//! from an input of futures waits unpolled; for [`amap`] and [`run_each`], `f(item)` is
//! called only at the start, as aiometer calls its async function.
//!
//! # No spawning
//!
//! Every task runs inside the future (or stream) returned, in the calling task: concurrency,
//! not parallelism, as `join_all` and `buffer_unordered`. Each in-flight future is polled
//! only when its own waker fires. For parallelism, spawn one run per worker on your runtime
//! with a shared [`Gate`](crate::gate::Gate) / [`Throttle`](crate::throttle::Throttle)
//! ([`Limits::gate`], [`Limits::throttle`]) so the limits hold across all of them:
//!
//! ```
//! use std::sync::Arc;
//! use dike::gate::Gate;
//! use dike::run::{Limits, run_each};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let gate = Arc::new(Gate::new(4)); // 4 in flight across all workers
//! let workers: Vec<_> = (0..2)
//!     .map(|w| {
//!         let gate = Arc::clone(&gate);
//!         tokio::spawn(async move {
//!             let items = (0..100).map(move |i| w * 100 + i);
//!             run_each(|_i| async { tokio::task::yield_now().await }, items, Limits::new().gate(&gate)).await;
//!         })
//!     })
//!     .collect();
//! for w in workers {
//!     w.await.unwrap();
//! }
//! assert!(gate.stats().peak_in_use <= 4);
//! # }
//! ```
//!
//! # Progress
//!
//! A run makes progress only while its future or stream is polled. One poll does everything
//! that can be done at that moment: it polls **every** task woken since the last poll (not
//! only until one finishes, as `FuturesUnordered` does), starts new tasks in the free slots
//! (each polled once at once, its start), and only then returns. So when the consumer of an
//! [`amap`] stream takes an output, every task that was ready by then has run, the outputs
//! of those that finished are buffered, and the free slots hold started tasks.
//!
//! While the consumer then works on its output **without polling the stream**, nothing of
//! the run executes: tasks that become ready meanwhile (a response arrives, a sleep ends) are
//! recorded as woken and run at the next poll, all of them in that one poll. Their timers and
//! I/O keep going meanwhile (a sleep that ended is simply ready), but their code waits.
//! Without spawning nothing else could run it. Work that must overlap with the consumer's
//! own slow work belongs in the task (`amap(|x| async { process(fetch(x).await).await }, ..)`),
//! or the consumer must poll the stream concurrently with its work (in a `select` or `join`).
//!
//! # Backpressure
//!
//! An output that finished but was not handed out yet keeps its slot: `max_at_once` bounds
//! futures and unconsumed outputs together, so a run's memory is bounded whatever its input.
//! A consumer that takes outputs slowly therefore delays the start of new tasks, never the
//! progress of tasks already started. (aiometer instead buffers every output.)
//!
//! # Shared limits
//!
//! With [`Limits::gate`] each task holds a permit of the gate while it runs, taken after the
//! run's own slot and before its start time; only the next task to start waits on the gate,
//! so a run is one waiter in the gate's FIFO queue. If the gate refuses (its limit is zero,
//! or its bound on waiters is reached) the run wakes itself and asks again at its next poll:
//! a busy wait, yielding to the executor between tries, until the gate admits again; it does
//! not fail (its outputs have no place for a refusal) and it does not hang unnoticed. With
//! [`Limits::throttle`] only the next task waits for a start time on the shared throttle.
//!
//! # Cancellation
//!
//! Dropping a run's future or stream drops every task in flight (and releases their gate
//! permits at once), leaves the gate's queue, and cancels the pending start-time sleep. No
//! permit or slot outlives the run.
//!
//! # Differences from aiometer
//!
//! - [`run_any`] returns the first output and **drops the other tasks** at once (aiometer
//!   waits for all of them to finish); an empty input is an error ([`EmptyInput`]), not a
//!   hang.
//! - Errors are values: a task that fails returns its `Err`; [`try_run_all`] stops at the
//!   first one, [`run_all_settled`] keeps them all (aiometer's issue #32).
//! - Streams are inputs too (aiometer's issue #46).
//! - `burst` (default 1, aiometer's strict spacing) lets an idle run start a few at once.

mod engine;
mod future;
mod limits;
mod set;
pub mod source;

use core::future::Future;

pub use future::{Amap, AmapIndexed, EmptyInput, RunAll, RunAny, RunEach, TryRunAll};
pub use limits::{Limits, NoRate, Pace, Paced, Pacer, Rate, ThrottlePacer};
pub use source::{FromStream, IntoSource, from_stream};

use engine::Engine;
use source::{Map, Source};

fn engine<'a, S, P>(source: S, limits: Limits<'a, P>) -> Engine<'a, S, P::Pacer>
where
    S: Source,
    S::Item: Future,
    P: Pace<'a>,
{
    let (max, gate, pace) = limits.parts();
    Engine::new(source, pace.into_pacer(), max, gate)
}

/// Runs every future under `limits` and returns their outputs in input order (aiometer's
/// `run_all`).
///
/// `futures` may be any [`IntoIterator`] (a lazy `map` creates each future only when it may
/// start) or a stream wrapped by [`from_stream`].
///
/// # Cancel safety
///
/// Dropping the future drops every task in flight, and the outputs gathered so far.
///
/// # Examples
///
/// aiometer's test: outputs come back in input order whatever the completion order.
///
/// ```
/// use core::time::Duration;
/// use dike::run::{Limits, run_all};
/// use dike::time::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let process = |slow: bool| {
///     let timer = timer.clone();
///     async move {
///         if slow {
///             timer.sleep(Duration::from_millis(10)).await;
///             "slow"
///         } else {
///             "fast"
///         }
///     }
/// };
/// # smol::block_on(async {
/// let run = run_all([true, false].map(process), Limits::new());
/// let clock = async { smol::future::yield_now().await; timer.advance(Duration::from_millis(10)) };
/// let (out, ()) = futures_util::join!(run, clock);
/// assert_eq!(out, ["slow", "fast"]);
/// # });
/// ```
pub fn run_all<'a, I, P>(futures: I, limits: Limits<'a, P>) -> RunAll<'a, I::Source, P>
where
    I: IntoSource,
    I::Item: Future,
    P: Pace<'a>,
{
    RunAll::new(engine(futures.into_source(), limits))
}

/// Runs every fallible future under `limits`: every `Ok` value in input order, or the first
/// error to happen, returned unchanged, with every other task dropped at that moment.
///
/// # Cancel safety
///
/// Dropping the future drops every task in flight.
///
/// # Errors
///
/// The first `Err` in completion order.
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, try_run_all};
///
/// # smol::block_on(async {
/// let calls = (1..=5).map(|i| async move { if i == 3 { Err(format!("{i} failed")) } else { Ok(i) } });
/// let out = try_run_all(calls, Limits::new().max_at_once(2)?).await;
/// assert_eq!(out, Err("3 failed".to_string()));
/// # Ok::<(), dike::error::ConfigError>(())
/// # }).unwrap();
/// ```
pub fn try_run_all<'a, I, P, T, E>(
    futures: I,
    limits: Limits<'a, P>,
) -> TryRunAll<'a, I::Source, P, T, E>
where
    I: IntoSource,
    I::Item: Future<Output = Result<T, E>>,
    P: Pace<'a>,
{
    TryRunAll::new(engine(futures.into_source(), limits))
}

/// Runs every fallible future under `limits` to the end and returns every `Result` in input
/// order: an error does not stop the run (aiometer's issue #32, `Promise.allSettled`).
///
/// The same as [`run_all`] on futures of `Result`, named for what it promises.
///
/// # Cancel safety
///
/// Dropping the future drops every task in flight.
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, run_all_settled};
///
/// # smol::block_on(async {
/// let calls = (1..=3).map(|i| async move { if i == 2 { Err(i) } else { Ok(i) } });
/// let out = run_all_settled(calls, Limits::new()).await;
/// assert_eq!(out, [Ok(1), Err(2), Ok(3)]);
/// # });
/// ```
pub fn run_all_settled<'a, I, P, T, E>(
    futures: I,
    limits: Limits<'a, P>,
) -> RunAll<'a, I::Source, P>
where
    I: IntoSource,
    I::Item: Future<Output = Result<T, E>>,
    P: Pace<'a>,
{
    RunAll::new(engine(futures.into_source(), limits))
}

/// Runs `f(item)` for every item under `limits`, for its effect (aiometer's `run_on_each`).
///
/// Outputs are dropped as tasks finish.
///
/// # Cancel safety
///
/// Dropping the future drops every task in flight; items not yet pulled stay in the input.
///
/// # Examples
///
/// aiometer's test: every item is processed.
///
/// ```
/// use std::cell::RefCell;
/// use std::collections::BTreeSet;
/// use dike::run::{Limits, run_each};
///
/// # smol::block_on(async {
/// let output = RefCell::new(BTreeSet::new());
/// let items = ["apple", "banana", "cherry", "apple"];
/// run_each(|item| { output.borrow_mut().insert(item); async {} }, items, Limits::new()).await;
/// assert_eq!(output.into_inner(), BTreeSet::from(["apple", "banana", "cherry"]));
/// # });
/// ```
pub fn run_each<'a, F, Fut, I, P>(
    f: F,
    items: I,
    limits: Limits<'a, P>,
) -> RunEach<'a, Map<I::Source, F>, P>
where
    I: IntoSource,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
    P: Pace<'a>,
{
    RunEach::new(engine(Map::new(items.into_source(), f), limits))
}

/// A stream of `f(item)` for every item, run under `limits`, in completion order (aiometer's
/// `amap`).
///
/// Each poll of the stream drives the whole run (see [Progress](self#progress)); dropping the
/// stream drops every task in flight.
///
/// # Cancel safety
///
/// Dropping the stream (or a `next()` future on it) loses no output already finished: outputs
/// wait in the stream until taken. Dropping the stream drops every task in flight.
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, amap};
/// use futures_util::StreamExt;
///
/// # smol::block_on(async {
/// let items = ["apple", "banana", "cherry"];
/// let mut lengths: Vec<usize> = amap(|s: &str| async move { s.len() }, items, Limits::new().max_at_once(2)?)
///     .collect()
///     .await;
/// lengths.sort();
/// assert_eq!(lengths, [5, 6, 6]);
/// # Ok::<(), dike::error::ConfigError>(())
/// # }).unwrap();
/// ```
pub fn amap<'a, F, Fut, I, P>(
    f: F,
    items: I,
    limits: Limits<'a, P>,
) -> Amap<'a, Map<I::Source, F>, P>
where
    I: IntoSource,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
    P: Pace<'a>,
{
    Amap::new(engine(Map::new(items.into_source(), f), limits))
}

/// As [`amap`], yielding `(index of the input, output)` (aiometer's `_include_index`).
///
/// # Cancel safety
///
/// As [`amap`].
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, amap_indexed};
/// use futures_util::StreamExt;
///
/// # smol::block_on(async {
/// let mut out: Vec<(usize, String)> =
///     amap_indexed(|s: &str| async move { s.to_uppercase() }, ["a", "b"], Limits::new()).collect().await;
/// out.sort();
/// assert_eq!(out, [(0, "A".to_string()), (1, "B".to_string())]);
/// # });
/// ```
pub fn amap_indexed<'a, F, Fut, I, P>(
    f: F,
    items: I,
    limits: Limits<'a, P>,
) -> AmapIndexed<'a, Map<I::Source, F>, P>
where
    I: IntoSource,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
    P: Pace<'a>,
{
    AmapIndexed::new(engine(Map::new(items.into_source(), f), limits))
}

/// Runs the futures under `limits` until the first one finishes, returns its output and drops
/// every other task (aiometer's `run_any`, which instead waits for the others to finish).
///
/// # Cancel safety
///
/// Dropping the future drops every task in flight.
///
/// # Errors
///
/// [`EmptyInput`] when there is no future at all (rather than waiting forever).
///
/// # Examples
///
/// aiometer's test: the fast one wins.
///
/// ```
/// use core::time::Duration;
/// use dike::run::{Limits, run_any};
/// use dike::time::{ManualTimer, Timer};
/// use futures_util::FutureExt;
///
/// let timer = ManualTimer::new();
/// let process = |slow: bool| {
///     let timer = timer.clone();
///     async move {
///         if slow {
///             timer.sleep(Duration::from_millis(10)).await;
///             "slow"
///         } else {
///             "fast"
///         }
///     }
/// };
/// let first = run_any([true, false].map(process), Limits::new()).now_or_never();
/// assert_eq!(first, Some(Ok("fast")));
/// assert_eq!(timer.sleepers(), 0); // the slow one was dropped
/// ```
pub fn run_any<'a, I, P>(futures: I, limits: Limits<'a, P>) -> RunAny<'a, I::Source, P>
where
    I: IntoSource,
    I::Item: Future,
    P: Pace<'a>,
{
    RunAny::new(engine(futures.into_source(), limits))
}

#[cfg(test)]
mod tests;
