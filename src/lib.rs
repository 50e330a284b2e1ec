//! Async resilience primitives for any executor.
//!
//! dike limits, spaces, retries, batches and coalesces async work, and runs on tokio,
//! smol, async-std, embassy on a microcontroller and WASM in a browser or Node alike. It is the
//! Rust counterpart of Python's `dike`, `aiometer` and `async_reduce`.
//!
//! A call to a backend under a concurrency limit (at most 2 at once), a rate limit (10 starts
//! per second) and a retry policy (3 attempts, 10 ms then 20 ms apart), on tokio:
//!
//! ```
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! # async fn fetch(url: &str) -> Result<String, Box<dyn std::error::Error>> {
//! #     Ok(format!("<html> from {url}"))
//! # }
//! # #[cfg(feature = "tokio")]
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     use std::time::Duration;
//!     use dike::{gate::Gate, retry::Retry, throttle::{Quota, Throttle}, time::TokioTimer};
//!
//!     static GATE: Gate = Gate::new(2);
//!     static THROTTLE: Throttle = Throttle::const_new(Quota::per_second(10));
//!     let policy = Retry::exponential(Duration::from_millis(10), 2.0)?.try_with_attempts(3)?;
//!     let timer = TokioTimer::new();
//!
//!     let page = policy
//!         .run(&timer, || async {
//!             let _permit = GATE.enter().await?; // a full gate waits; `try_enter` would refuse
//!             THROTTLE.acquire(timer).await;
//!             fetch("https://example.com/").await
//!         })
//!         .await?;
//!     assert!(page.starts_with("<html>"));
//!     Ok(())
//! }
//! ```
//!
//! The same code runs on smol or async-std with `AsyncIoTimer` (feature `async-io`), in an
//! embassy task with `EmbassyTimer` (feature `embassy`; see [Embedded](#embedded)) and in a
//! browser with `WasmTimer` (feature `wasm`). Tests run it on [`ManualTimer`](time::ManualTimer)
//! (see [Testing](#testing)).
//!
//! # Primitives
//!
//! - [`time`]: the [`Timer`](time::Timer) trait every time-based primitive reads, an adapter
//!   per runtime, and [`ManualTimer`](time::ManualTimer), a virtual clock for tests.
//! - [`gate`]: [`Gate`](gate::Gate), a concurrency limit that rejects at once, waits in FIFO
//!   order or waits up to a deadline, and [`limit_jobs`](gate::limit_jobs), Python dike's
//!   `@limit_jobs` decorator.
//! - [`throttle`]: [`Throttle`](throttle::Throttle), a lock-free GCRA rate limiter (`rate`
//!   per `period`, explicit `burst`) that rejects with a ready time or waits, in FIFO order,
//!   on any timer.
//! - [`keyed`]: [`KeyedThrottle`](keyed::KeyedThrottle) and [`KeyedGate`](keyed::KeyedGate),
//!   a rate or concurrency limit per key (IP, user, tenant) in bounded memory: idle keys are
//!   evicted by the calls themselves, with a hard cap on keys and no cleanup task.
//! - [`retry`]: retry an async call with backoff, jitter, a time budget that counts attempt
//!   time and a shared [`RetryBudget`](retry::RetryBudget) (Python dike's `@retry`).
//! - [`batch`]: [`Batcher`](batch::Batcher), mini-batching of concurrent calls into one call
//!   of a batch function, each caller getting its own slice of the results (Python dike's
//!   `@batch`), driven by the callers' own futures.
//! - [`coalesce`]: [`Coalescer`](coalesce::Coalescer), request coalescing: identical calls in
//!   flight share one execution that survives the cancellation of any caller, with hooks and
//!   statistics (Python's `async_reduce`, Go's `singleflight`); needs `alloc`.
//! - [`run`]: aiometer's `run_all`, `run_each`, `amap` and `run_any`: many tasks in one call
//!   under `max_at_once` and `max_per_second`, from an iterator or a stream, without spawning.
//! - `tower` (feature `tower`): [`GateLayer`](crate::tower::GateLayer),
//!   [`ThrottleLayer`](crate::tower::ThrottleLayer),
//!   [`KeyedThrottleLayer`](crate::tower::KeyedThrottleLayer) /
//!   [`KeyedGateLayer`](crate::tower::KeyedGateLayer), [`RetryLayer`](crate::tower::RetryLayer),
//!   [`HedgeLayer`](crate::tower::HedgeLayer), [`CoalesceLayer`](crate::tower::CoalesceLayer) and
//!   [`BatchLayer`](crate::tower::BatchLayer), tower middleware on any runtime, with
//!   typed errors; with `axum`, `IntoResponse` for the refusals (503, 429 with `Retry-After`).
//! - [`adaptive`]: [`AdaptiveGate`](adaptive::AdaptiveGate), a gate whose limit an engine
//!   (AIMD or the delay-based `Gradient`; pure, no_std, deterministic) sets from each
//!   permit's feedback.
//! - [`breaker`]: [`Breaker`](breaker::Breaker), a circuit breaker (count or time window,
//!   failure ratio after a minimum of calls, slow calls, growing breaks, half-open probes
//!   with RAII permits, manual isolate and close); [`time::timeout`] bounds any future.
//! - `hedge` (needs `alloc`): [`Hedge`](crate::hedge::Hedge), hedged requests: a second
//!   attempt after a fixed delay or a latency quantile, drawing on the retry budget, the
//!   first accepted answer wins and the losers are dropped at once, without spawning.
//! - [`error`]: errors shared across primitives.
//!
//! # When not to use dike
//!
//! - Inside one tokio application that already uses `tokio::sync::Semaphore` and tower
//!   middleware happily: dike's gain there is the reject mode, the bounded wait and the
//!   counters, not a new capability.
//! - For distributed limits (a rate or a concurrency limit shared by many processes), dike's
//!   state lives in memory: use the companion crate `dike-redis` (the same `Quota`, errors and
//!   waiting, on Redis).
//!
//! # Choosing a timer
//!
//! Nothing in dike reads a global clock. Pick the [`Timer`](time::Timer) of your runtime:
//!
//! | runtime | timer | feature |
//! |---|---|---|
//! | tokio | `TokioTimer` | `tokio` |
//! | smol, async-std | `AsyncIoTimer` | `async-io` (or `async-std`) |
//! | embassy | `EmbassyTimer` | `embassy` |
//! | browser, Node (WASM) | `WasmTimer` | `wasm` |
//! | tests | [`ManualTimer`](time::ManualTimer) | none |
//! | anything else | [`timer_fn`](time::timer_fn) | none |
//!
//! Every instance of a runtime adapter reads one clock (`TokioTimer::new()` is `const`, and two
//! instances agree on `now()`), so a fresh one per call is fine, even on a throttle; see
//! [`time`] for what each timer shares.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `std` | yes | implies `alloc`; std locks and errors |
//! | `alloc` | via `std` | waiting queues, [`ManualTimer`](time::ManualTimer), [`coalesce`]; enough for `no_std` targets with a heap |
//! | `tokio` | no | `TokioTimer` |
//! | `async-io` | no | `AsyncIoTimer` (smol, async-std) |
//! | `async-std` | no | alias of `async-io` |
//! | `embassy` | no | `EmbassyTimer` (no_std) |
//! | `wasm` | no | `WasmTimer` (`wasm32-unknown-unknown`) |
//! | `tracing` | no | events for retries, rejections and batch flushes |
//! | `ndarray` | no | [`Rows`](batch::Rows) for `ndarray` arrays along axis 0 (the batcher's "numpy" mode) |
//! | `tower` | no | `dike::tower`: `GateLayer`, `ThrottleLayer`, `KeyedThrottleLayer`, `KeyedGateLayer`, `RetryLayer`, `HedgeLayer`, `CoalesceLayer`, `BatchLayer` (tower-service + tower-layer only) |
//! | `axum` | no | implies `tower`; `IntoResponse` for `TooManyCalls` (503), `RateLimited` (429 + `Retry-After`), `TooManyKeys` (503) and the layers' error (axum-core only) |
//!
//! With `--no-default-features --features alloc` dike builds for bare-metal targets such as
//! `thumbv7em-none-eabihf`. Without `std` its locks are critical sections, so the target
//! provides a [`critical-section`](https://docs.rs/critical-section) implementation; which
//! operations are then safe from an interrupt handler is listed under the gate's
//! [interrupt safety](gate#interrupt-safety).
//!
//! # Embedded
//!
//! Primitives are `const`-constructible, so they live in `static`s; `try_enter`, permits and
//! `Throttle::try_acquire` need no heap, waiting needs `alloc`. Without `std`, every lock in
//! dike is a [`critical-section`](https://docs.rs/critical-section) section, which the target
//! provides (on a single-core Cortex-M, `cortex-m`'s `critical-section-single-core` feature,
//! as embassy applications already enable): an interrupt handler may drop a permit, try to
//! enter or poll a waiting future while the interrupted code is inside the same primitive,
//! because the interrupt waits for the section to end instead of spinning on a held lock.
//! Sections are short and never run user code, wake a task or drop a waker. On targets
//! without native 64-bit atomics the throttle's state sits behind the same critical section
//! (there is no spin loop anywhere in dike).
//!
//! The repository's `examples/cortex-m/` firmware is the worked example, run under QEMU in CI:
//! embassy tasks share a `static` [`Gate`](gate::Gate) while the SysTick interrupt handler
//! drops permits, a `static` [`Throttle`](throttle::Throttle) paces a task on
//! `EmbassyTimer`, a [`Retry`](retry::Retry) backs off around a flaky driver call, and on
//! a small heap a [`Batcher`](batch::Batcher) and a [`Coalescer`](coalesce::Coalescer) run
//! inside one task through [`run::run_all`] (which needs embassy-time's `generic-queue-N`
//! feature: see `EmbassyTimer`).
//!
//! # Testing
//!
//! Every time-based primitive takes its clock as a [`Timer`](time::Timer), so tests run it on
//! [`ManualTimer`](time::ManualTimer), a virtual clock that moves only when told: no real
//! sleeps, and exact delays to assert. A flaky backend called through a gate (at most 2 at
//! once), a throttle (10 starts per second) and a retry policy (3 attempts, 100 ms apart),
//! driven by hand:
//!
//! ```
//! use core::cell::Cell;
//! use core::time::Duration;
//! use dike::gate::Gate;
//! use dike::retry::Retry;
//! use dike::throttle::Throttle;
//! use dike::time::{ManualTimer, Timer};
//! use futures_util::FutureExt;
//!
//! let timer = ManualTimer::new();
//! let gate = Gate::new(2);
//! let throttle = Throttle::per_second(10)?;
//! let policy = Retry::fixed(Duration::from_millis(100)).try_with_attempts(3)?;
//!
//! let calls = Cell::new(0);
//! let call_backend = || async {
//!     let _permit = gate.enter().await.map_err(|e| e.to_string())?;
//!     throttle.acquire(&timer).await;
//!     calls.set(calls.get() + 1);
//!     if calls.get() < 3 { Err("503".to_string()) } else { Ok(calls.get()) }
//! };
//!
//! let mut run = Box::pin(policy.run(&timer, call_backend));
//! let result = loop {
//!     if let Some(result) = run.as_mut().now_or_never() {
//!         break result;
//!     }
//!     timer.advance_to_next(); // jump to the next retry or throttle deadline
//! };
//! assert_eq!(result, Ok(3));
//! assert_eq!(timer.now(), Duration::from_millis(200)); // two 100 ms retry delays
//! assert_eq!(gate.stats().in_use, 0);
//! # Ok::<(), dike::error::ConfigError>(())
//! ```

#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
// Keep no_std honest in the library (tests, benches and examples may use std freely).
#![warn(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod adaptive;
#[cfg(feature = "alloc")]
pub mod batch;
pub mod breaker;
#[cfg(feature = "alloc")]
pub mod coalesce;
pub mod error;
pub mod gate;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod hedge;
#[cfg(feature = "alloc")]
pub mod keyed;
pub mod prelude;
pub mod retry;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod run;
mod sync;
#[cfg(test)]
mod test_util;
pub mod throttle;
pub mod time;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
