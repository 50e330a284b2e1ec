//! Mini-batching: a [`Batcher`] turns many small concurrent calls into one call of a function
//! that scales with its input (Python dike's `@batch`).
//!
//! The classic case is a model behind an HTTP endpoint: each request brings a few rows, the
//! model is much cheaper per row on a batch of 64. Every caller [`call`](Batcher::call)s with
//! its rows and gets back exactly its own slice of the results.
//!
//! # How a batch forms
//!
//! - Calls join the *open* batch in arrival order. Calls are never split: the batch is sealed
//!   as soon as it holds at least [`target_size`](BatchConfig::with_target_size) rows (so a
//!   batch may exceed the target), or when its first row has waited
//!   [`max_wait`](BatchConfig::with_max_wait), or when [`flush`](Batcher::flush) is called.
//!   (The wait counts from the first poll of the call that opened the batch: a call's rows
//!   join when it is first polled. A call arriving after the deadline but before the batch's
//!   driver saw it joins the batch.)
//! - The batch function gets all rows of the batch, in arrival order; row `i` of its output
//!   belongs to row `i` of its input. An output of the wrong length is an error for every
//!   caller of the batch, naming both lengths (never silently short slices).
//! - An error of the batch function reaches every caller of the batch, as a shared
//!   [`Arc<E>`](alloc::sync::Arc) inside [`BatchError::Failed`] (so `E` need not be `Clone`).
//! - [`max_processing_time`](BatchConfig::with_max_processing_time) bounds the batch function
//!   (not the wait before it): past it every caller of the batch gets
//!   [`BatchError::TimedOut`] and the function's future is dropped.
//! - Several sealed batches may run at once;
//!   [`max_concurrent_batches`](BatchConfig::with_max_concurrent_batches) caps that (sealed
//!   batches then start in the order they asked for a slot).
//! - [`max_queued_rows`](BatchConfig::with_max_queued_rows) bounds the rows accepted but not
//!   yet handed to the batch function (the open batch's, and those of sealed batches waiting
//!   for a slot): a call that would exceed it is rejected at once with
//!   [`BatchError::QueueFull`]. Backpressure, not unbounded memory.
//!
//! Rows are any [`Rows`] type: `Vec<T>` (several input columns are a `Vec` of tuples) and,
//! with the `ndarray` feature, `ndarray` arrays along axis 0.
//! [`call_one`](Batcher::call_one) takes a single [`Rows::Row`] and resolves to the output's
//! row: for `Vec<T>` the row moves into the batch's input and its result out of the output as
//! they are, with no allocation of the call's own (a batch's part list, member table and
//! buffers are reused from batch to batch). A batcher also keeps the wakers of its last
//! completed batch, so that the next calls from the same tasks reuse them instead of cloning
//! new ones: it holds at most one batch's wakers, until the next batch completes or the
//! batcher is dropped.
//!
//! # Who runs the batch function
//!
//! Nothing is spawned, so a batcher runs on any executor (tokio, smol, embassy, a browser).
//! The callers' own futures do the work: whichever member of a batch is polled *drives* it:
//! it sleeps on the seal deadline while the batch is open, calls the batch function once the
//! batch is sealed, and polls the function's future and the processing deadline, on the
//! batcher's [`Timer`]. The other members only wait to be woken with their results. So the
//! batch function's future runs inside a caller's task: on a multi-threaded runtime, on that
//! caller's thread; if it blocks, it blocks that caller.
//!
//! # Cancel safety
//!
//! A [`Call`] may be dropped at any time:
//!
//! - **Before its batch is sealed**, the call withdraws its rows: they are never sent to the
//!   batch function (counted in [`BatchStats::rows_withdrawn`]). If it was the last call of
//!   the open batch, the batch is discarded and the next call opens a new one with a new
//!   deadline; otherwise the batch keeps its deadline.
//! - **After its batch is sealed**, the batch runs without it and its slice of the results is
//!   discarded.
//! - **Dropping the member that drives a batch** (the first caller, say) never strands the
//!   others: the drive passes to another member of the batch, which is woken to take it over.
//! - **When every member of a sealed batch is dropped**, nobody is left to want the result:
//!   the batch function's future is dropped (or never created, if the batch had not started)
//!   and the batch is counted in [`BatchStats::batches_dropped`].
//!
//! Nothing is leaked: once every call of a batch completed or was dropped, the batcher holds
//! nothing of it ([`BatchStats::batches_in_flight`] counts what it holds).
//!
//! # Examples
//!
//! Python dike's README example: element-wise sums of two input columns, as rows of pairs.
//!
//! ```
//! use core::convert::Infallible;
//! use core::time::Duration;
//! use dike::batch::{BatchConfig, Batcher};
//! use dike::time::ManualTimer;
//!
//! # fn main() -> Result<(), dike::error::ConfigError> {
//! let config = BatchConfig::new(3, Duration::from_secs(10));
//! let add_args = Batcher::new(ManualTimer::new(), config, |rows: Vec<(i32, i32)>| async move {
//!     let (arg1, arg2): (Vec<i32>, Vec<i32>) = rows.iter().copied().unzip();
//!     println!("arg1: {arg1:?}");
//!     println!("arg2: {arg2:?}");
//!     Ok::<_, Infallible>(rows.iter().map(|(a, b)| a + b).collect::<Vec<i32>>())
//! })?;
//!
//! let result = smol::block_on(futures_util::future::join3(
//!     add_args.call(vec![(0, 1)]),
//!     add_args.call(vec![(1, 1)]),
//!     add_args.call(vec![(2, 1), (3, 1)]),
//! ));
//! assert_eq!(result, (Ok(vec![1]), Ok(vec![2]), Ok(vec![3, 4])));
//! assert_eq!(add_args.stats().batches, 1);
//! # Ok(())
//! # }
//! ```

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use crate::error::{ConfigError, ConfigValue};
use crate::gate::Gate;
use crate::sync::Mutex;
use crate::time::Timer;

mod engine;
mod future;
mod rows;
mod state;

pub use engine::SealReason;
pub use future::{Call, CallOne, CallOwned};
pub use rows::{Part, Rows};

use engine::Accumulator;
use state::Shared;

/// `vec.push(make())`, written so that when there is room (the common case: a batch's
/// buffers are reused at their size) the value is built straight into its slot. A plain
/// `push` builds it on the stack first (it must outlive a possible reallocation) and copies
/// it, and the CPU stalls reading back the pieces it just wrote (a failed store forward):
/// this showed in the profile of every call.
#[inline(always)]
fn push_in_place<T>(vec: &mut alloc::vec::Vec<T>, make: impl FnOnce() -> T) {
    if vec.len() < vec.capacity() {
        vec.push(make()); // the capacity check is known to pass: no reallocation path
    } else {
        push_grow(vec, make());
    }
}

#[cold]
fn push_grow<T>(vec: &mut alloc::vec::Vec<T>, value: T) {
    vec.push(value);
}

/// The settings of a [`Batcher`]: a `Copy` value with chained `with_*` methods, validated by
/// [`Batcher::new`].
///
/// [`new`](BatchConfig::new) takes the two settings every batcher needs; the others default to
/// a `max_processing_time` of 10 seconds (as Python dike's), no cap on concurrent batches and
/// no bound on queued rows.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::batch::BatchConfig;
///
/// let config = BatchConfig::new(64, Duration::from_millis(5))
///     .with_max_processing_time(Duration::from_secs(1))
///     .with_max_concurrent_batches(2)
///     .with_max_queued_rows(1024);
/// assert_eq!(config.target_size(), 64);
/// assert_eq!(config.max_concurrent_batches(), Some(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchConfig {
    target_size: usize,
    max_wait: Duration,
    max_processing_time: Duration,
    max_concurrent_batches: Option<usize>,
    max_queued_rows: Option<usize>,
}

impl BatchConfig {
    /// Seal a batch at `target_size` rows, or when its first row has waited `max_wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    ///
    /// let config = BatchConfig::new(3, Duration::from_secs(10));
    /// assert_eq!(config.max_processing_time(), Duration::from_secs(10));
    /// ```
    pub const fn new(target_size: usize, max_wait: Duration) -> Self {
        Self {
            target_size,
            max_wait,
            max_processing_time: Duration::from_secs(10),
            max_concurrent_batches: None,
            max_queued_rows: None,
        }
    }

    /// Seal a batch once it holds at least this many rows (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    ///
    /// let config = BatchConfig::new(3, Duration::from_secs(1)).with_target_size(8);
    /// assert_eq!(config.target_size(), 8);
    /// ```
    #[must_use]
    pub const fn with_target_size(mut self, target_size: usize) -> Self {
        self.target_size = target_size;
        self
    }

    /// Seal a batch once its first row has waited this long (more than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    ///
    /// let config = BatchConfig::new(3, Duration::from_secs(1))
    ///     .with_max_wait(Duration::from_millis(2));
    /// assert_eq!(config.max_wait(), Duration::from_millis(2));
    /// ```
    #[must_use]
    pub const fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Give the batch function at most this long (more than zero; default 10 s) before every
    /// caller of the batch gets [`BatchError::TimedOut`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    ///
    /// let config = BatchConfig::new(3, Duration::from_secs(1))
    ///     .with_max_processing_time(Duration::from_millis(250));
    /// assert_eq!(config.max_processing_time(), Duration::from_millis(250));
    /// ```
    #[must_use]
    pub const fn with_max_processing_time(mut self, max_processing_time: Duration) -> Self {
        self.max_processing_time = max_processing_time;
        self
    }

    /// Run at most this many sealed batches at once (at least 1; default: no cap). A sealed
    /// batch waits for a slot in FIFO order; its rows still count as queued meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    ///
    /// let config = BatchConfig::new(3, Duration::from_secs(1)).with_max_concurrent_batches(1);
    /// assert_eq!(config.max_concurrent_batches(), Some(1));
    /// ```
    #[must_use]
    pub const fn with_max_concurrent_batches(mut self, max: usize) -> Self {
        self.max_concurrent_batches = Some(max);
        self
    }

    /// Reject a call at once with [`BatchError::QueueFull`] when accepting it would make more
    /// than this many rows wait for the batch function (at least 1; default: no bound). A call
    /// of more rows than this is always rejected.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::BatchConfig;
    ///
    /// let config = BatchConfig::new(3, Duration::from_secs(1)).with_max_queued_rows(100);
    /// assert_eq!(config.max_queued_rows(), Some(100));
    /// ```
    #[must_use]
    pub const fn with_max_queued_rows(mut self, max: usize) -> Self {
        self.max_queued_rows = Some(max);
        self
    }

    /// The target batch size.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::time::Duration;
    /// # use dike::batch::BatchConfig;
    /// assert_eq!(BatchConfig::new(5, Duration::from_secs(1)).target_size(), 5);
    /// ```
    pub const fn target_size(&self) -> usize {
        self.target_size
    }

    /// The longest a batch's first row waits before the batch is sealed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::time::Duration;
    /// # use dike::batch::BatchConfig;
    /// let config = BatchConfig::new(5, Duration::from_secs(1));
    /// assert_eq!(config.max_wait(), Duration::from_secs(1));
    /// ```
    pub const fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The time the batch function is given.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::time::Duration;
    /// # use dike::batch::BatchConfig;
    /// let config = BatchConfig::new(5, Duration::from_secs(1));
    /// assert_eq!(config.max_processing_time(), Duration::from_secs(10));
    /// ```
    pub const fn max_processing_time(&self) -> Duration {
        self.max_processing_time
    }

    /// The cap on batches running at once, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::time::Duration;
    /// # use dike::batch::BatchConfig;
    /// assert_eq!(BatchConfig::new(5, Duration::from_secs(1)).max_concurrent_batches(), None);
    /// ```
    pub const fn max_concurrent_batches(&self) -> Option<usize> {
        self.max_concurrent_batches
    }

    /// The bound on queued rows, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # use core::time::Duration;
    /// # use dike::batch::BatchConfig;
    /// assert_eq!(BatchConfig::new(5, Duration::from_secs(1)).max_queued_rows(), None);
    /// ```
    pub const fn max_queued_rows(&self) -> Option<usize> {
        self.max_queued_rows
    }

    /// Checks every setting.
    pub(crate) const fn validate(&self) -> Result<(), ConfigError> {
        if self.target_size == 0 {
            return Err(ConfigError::new(
                "target_size",
                ConfigValue::Int(0),
                "at least 1",
            ));
        }
        if self.max_wait.is_zero() {
            return Err(ConfigError::new(
                "max_wait",
                ConfigValue::Duration(self.max_wait),
                "more than zero",
            ));
        }
        if self.max_processing_time.is_zero() {
            return Err(ConfigError::new(
                "max_processing_time",
                ConfigValue::Duration(self.max_processing_time),
                "more than zero",
            ));
        }
        if let Some(0) = self.max_concurrent_batches {
            return Err(ConfigError::new(
                "max_concurrent_batches",
                ConfigValue::Int(0),
                "at least 1",
            ));
        }
        if let Some(0) = self.max_queued_rows {
            return Err(ConfigError::new(
                "max_queued_rows",
                ConfigValue::Int(0),
                "at least 1",
            ));
        }
        Ok(())
    }
}

/// A batch function: takes all rows of a batch, returns one result row per input row.
///
/// Implemented for every `Fn(I) -> Fut` where `Fut: Future<Output = Result<O, E>>` and `O` is
/// [`Rows`]: write a closure or an `async fn`, never implement this by hand.
///
/// # Examples
///
/// ```
/// use dike::batch::BatchFn;
///
/// async fn double(rows: Vec<u32>) -> Result<Vec<u32>, String> {
///     Ok(rows.into_iter().map(|x| 2 * x).collect())
/// }
///
/// fn assert_batch_fn<F: BatchFn<Vec<u32>, Output = Vec<u32>>>(_: &F) {}
/// assert_batch_fn(&double);
/// ```
pub trait BatchFn<I> {
    /// The rows of results.
    type Output: Rows;
    /// The batch function's error.
    type Error;
    /// The future the function returns.
    type Future: Future<Output = Result<Self::Output, Self::Error>>;

    /// Calls the function on a batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::BatchFn;
    ///
    /// let f = |rows: Vec<u8>| async move { Ok::<_, ()>(rows) };
    /// assert_eq!(smol::block_on(BatchFn::call(&f, vec![1, 2])), Ok(vec![1, 2]));
    /// ```
    fn call(&self, rows: I) -> Self::Future;
}

impl<I, O, E, Fut, F> BatchFn<I> for F
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<O, E>>,
    O: Rows,
{
    type Output = O;
    type Error = E;
    type Future = Fut;

    #[inline]
    fn call(&self, rows: I) -> Fut {
        self(rows)
    }
}

/// Groups concurrent calls into batches for one batch function (Python dike's `@batch`).
///
/// See the [module docs](self) for how batches form, who runs the function and what a
/// dropped call does.
///
/// `Batcher<I, F, T>`: `I` the [`Rows`] a call brings, `F` the [`BatchFn`], `T` the
/// [`Timer`] its deadlines are read from (several batchers may share one timer). A batcher is
/// `Send + Sync` when its rows, results, error, function, future and timer are; share it by
/// reference or in an `Arc`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::batch::{BatchConfig, Batcher};
/// use dike::time::ManualTimer;
///
/// # fn main() -> Result<(), dike::error::ConfigError> {
/// let timer = ManualTimer::new();
/// let config = BatchConfig::new(10, Duration::from_millis(10));
/// let square = Batcher::new(timer.clone(), config, |rows: Vec<u64>| async move {
///     Ok::<_, String>(rows.iter().map(|x| x * x).collect::<Vec<_>>())
/// })?;
///
/// smol::block_on(async {
///     let first = square.call(vec![1, 2]);
///     let second = square.call_one(3);
///     // Only 3 of 10 rows: the batch is sealed when its first row has waited 10 ms.
///     let advance = async {
///         smol::future::yield_now().await;
///         timer.advance(Duration::from_millis(10));
///     };
///     let (first, second, ()) = futures_util::join!(first, second, advance);
///     assert_eq!(first, Ok(vec![1, 4]));
///     assert_eq!(second, Ok(9));
/// });
/// assert_eq!(square.stats().sealed_by_time, 1);
/// # Ok(())
/// # }
/// ```
pub struct Batcher<I: Rows, F: BatchFn<I>, T: Timer> {
    shared: Mutex<Shared<I, F>>,
    f: F,
    timer: T,
    config: BatchConfig,
    gate: Option<Arc<Gate>>,
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Batcher<I, F, T> {
    /// A batcher calling `f` on batches formed as `config` says, reading time from `timer`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the parameter and the value when `target_size` is 0, `max_wait`
    /// or `max_processing_time` is zero, or `max_concurrent_batches` or `max_queued_rows` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::{BatchConfig, Batcher};
    /// use dike::time::ManualTimer;
    ///
    /// let f = |rows: Vec<u8>| async move { Ok::<_, ()>(rows) };
    /// let err = Batcher::new(ManualTimer::new(), BatchConfig::new(0, Duration::from_secs(1)), f)
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "invalid target_size = 0: expected at least 1");
    /// ```
    pub fn new(timer: T, config: BatchConfig, f: F) -> Result<Self, ConfigError> {
        config.validate()?;
        let acc = Accumulator::new(
            config.target_size,
            config.max_wait,
            config.max_queued_rows.unwrap_or(usize::MAX),
        );
        Ok(Self {
            shared: Mutex::new(Shared::new(acc)),
            f,
            timer,
            config,
            gate: config
                .max_concurrent_batches
                .map(|limit| Arc::new(Gate::new(limit))),
        })
    }

    /// Submits `rows` and resolves to exactly their results, in order.
    ///
    /// The rows join the open batch on the first poll; see the [module docs](self) for when
    /// the batch is sealed and run.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. Dropped before its batch is sealed, the call withdraws its rows (never
    /// sent to the batch function); after sealing, the batch runs without it and its slice is
    /// discarded. If it was driving the batch, another member takes over; if it was the last
    /// member of a sealed batch, the batch function's future is dropped. See
    /// [Cancel safety](self#cancel-safety).
    ///
    /// # Errors
    ///
    /// At once: [`BatchError::Empty`] for no rows, [`BatchError::QueueFull`] past
    /// `max_queued_rows`, [`BatchError::Incompatible`] for rows that cannot join the waiting
    /// batch. For every caller of the batch: [`BatchError::Failed`] (the function's error),
    /// [`BatchError::WrongLength`], [`BatchError::TimedOut`], [`BatchError::Panicked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::{BatchConfig, BatchError, Batcher};
    /// use dike::time::ManualTimer;
    ///
    /// # fn main() -> Result<(), dike::error::ConfigError> {
    /// let config = BatchConfig::new(2, Duration::from_secs(1));
    /// let batcher = Batcher::new(ManualTimer::new(), config, |rows: Vec<String>| async move {
    ///     Ok::<_, ()>(rows.iter().map(|s| s.len()).collect::<Vec<_>>())
    /// })?;
    /// let (a, b) = smol::block_on(futures_util::future::join(
    ///     batcher.call(vec!["a".to_string(), "bb".to_string()]),
    ///     batcher.call(vec![]),
    /// ));
    /// assert_eq!(a, Ok(vec![1, 2]));
    /// assert_eq!(b, Err(BatchError::Empty));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn call(&self, rows: I) -> Call<'_, I, F, T> {
        Call::new(self, rows)
    }

    /// [`call`](Batcher::call) for an `Arc<Batcher>`: the future is `'static`, to move into a
    /// spawned task or hold across an `Arc`'d service state.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`call`](Batcher::call).
    ///
    /// # Errors
    ///
    /// As [`call`](Batcher::call).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Arc;
    /// use dike::batch::{BatchConfig, Batcher};
    /// use dike::time::ManualTimer;
    ///
    /// # fn main() -> Result<(), dike::error::ConfigError> {
    /// let config = BatchConfig::new(1, Duration::from_secs(1));
    /// let batcher = Arc::new(Batcher::new(ManualTimer::new(), config, |rows: Vec<u8>| async move {
    ///     Ok::<_, ()>(rows)
    /// })?);
    /// let call = batcher.call_owned(vec![5]);
    /// let out = std::thread::spawn(move || smol::block_on(call)).join().unwrap();
    /// assert_eq!(out, Ok(vec![5]));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn call_owned(self: &Arc<Self>, rows: I) -> CallOwned<I, F, T> {
        CallOwned::new(Arc::clone(self), rows)
    }

    /// Seals the open batch now, whatever its size, and returns how many rows it held (0 when
    /// no batch was open). The batch is run by its members, as always: this only wakes them.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::{BatchConfig, Batcher};
    /// use dike::time::ManualTimer;
    /// use futures_util::FutureExt;
    ///
    /// # fn main() -> Result<(), dike::error::ConfigError> {
    /// let config = BatchConfig::new(100, Duration::from_secs(60));
    /// let batcher = Batcher::new(ManualTimer::new(), config, |rows: Vec<u8>| async move {
    ///     Ok::<_, ()>(rows)
    /// })?;
    /// let mut call = Box::pin(batcher.call(vec![7]));
    /// assert!(call.as_mut().now_or_never().is_none(), "1 of 100 rows: waits");
    /// assert_eq!(batcher.flush(), 1);
    /// assert_eq!(call.now_or_never(), Some(Ok(vec![7])));
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush(&self) -> usize {
        self.flush_open()
    }

    /// The configuration this batcher was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::{BatchConfig, Batcher};
    /// use dike::time::ManualTimer;
    ///
    /// let config = BatchConfig::new(4, Duration::from_secs(1));
    /// let f = |rows: Vec<u8>| async move { Ok::<_, ()>(rows) };
    /// let batcher = Batcher::new(ManualTimer::new(), config, f).unwrap();
    /// assert_eq!(batcher.config(), config);
    /// ```
    pub fn config(&self) -> BatchConfig {
        self.config
    }

    /// A snapshot of the batcher's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::{BatchConfig, Batcher};
    /// use dike::time::ManualTimer;
    ///
    /// # fn main() -> Result<(), dike::error::ConfigError> {
    /// let config = BatchConfig::new(2, Duration::from_secs(1));
    /// let batcher = Batcher::new(ManualTimer::new(), config, |rows: Vec<u8>| async move {
    ///     Ok::<_, ()>(rows)
    /// })?;
    /// smol::block_on(futures_util::future::join3(
    ///     batcher.call(vec![1]),
    ///     batcher.call(vec![2, 3]),
    ///     batcher.call(vec![4, 5]),
    /// ));
    /// let stats = batcher.stats();
    /// assert_eq!((stats.batches, stats.rows, stats.max_batch_size), (2, 5, 3));
    /// assert_eq!(stats.mean_batch_size(), 2.5);
    /// assert_eq!(stats.batches_in_flight, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> BatchStats {
        self.shared.with(|s| {
            let mut stats = s.stats;
            stats.queued_rows = s.acc.queued();
            stats.open_rows = s.acc.open_rows();
            stats.batches_in_flight = s.batches();
            stats
        })
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Batcher<I, F, T> {
    /// Submits one row ([`Rows::Row`]: `T` for `Vec<T>`) and resolves to its one result (the
    /// output's [`Rows::Row`]): [`call`](Batcher::call) with a one-row call, without
    /// wrapping the row in a value of its own (for `Vec<T>`, nothing is allocated for the
    /// call: the row moves into the batch and its result out of the function's output).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`call`](Batcher::call).
    ///
    /// # Errors
    ///
    /// As [`call`](Batcher::call) (never [`BatchError::Empty`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::batch::{BatchConfig, Batcher};
    /// use dike::time::ManualTimer;
    ///
    /// # fn main() -> Result<(), dike::error::ConfigError> {
    /// let config = BatchConfig::new(2, Duration::from_secs(1));
    /// let batcher = Batcher::new(ManualTimer::new(), config, |rows: Vec<i32>| async move {
    ///     Ok::<_, ()>(rows.iter().map(|x| -x).collect::<Vec<_>>())
    /// })?;
    /// let (a, b) = smol::block_on(futures_util::future::join(
    ///     batcher.call_one(1),
    ///     batcher.call_one(2),
    /// ));
    /// assert_eq!((a, b), (Ok(-1), Ok(-2)));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn call_one(&self, row: I::Row) -> CallOne<'_, I, F, T> {
        CallOne::new(self, row)
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> fmt::Debug for Batcher<I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Counters of a [`Batcher`], from [`Batcher::stats`].
///
/// Counts are since the batcher was created and wrap around at `usize::MAX`.
///
/// # Examples
///
/// ```
/// use dike::batch::BatchStats;
///
/// let stats = BatchStats::default();
/// assert_eq!(stats.mean_batch_size(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BatchStats {
    /// Batches handed to the batch function.
    pub batches: usize,
    /// Rows handed to the batch function.
    pub rows: usize,
    /// The largest batch handed to the batch function.
    pub max_batch_size: usize,
    /// Batches sealed because they reached the target size.
    pub sealed_by_size: usize,
    /// Batches sealed because their first row waited `max_wait`.
    pub sealed_by_time: usize,
    /// Batches sealed by [`Batcher::flush`].
    pub sealed_explicitly: usize,
    /// Batches whose function failed or returned the wrong number of rows.
    pub errors: usize,
    /// Batches that ran past `max_processing_time`.
    pub timeouts: usize,
    /// Rows withdrawn by calls dropped before their batch was sealed.
    pub rows_withdrawn: usize,
    /// Calls rejected at once (queue full, incompatible rows); empty calls are not counted.
    pub rejected: usize,
    /// Sealed batches dropped because every one of their calls was dropped.
    pub batches_dropped: usize,
    /// Now: rows accepted and not yet handed to the batch function.
    pub queued_rows: usize,
    /// Now: rows in the open batch.
    pub open_rows: usize,
    /// Now: batches the batcher holds (open, sealed, running, or with results not yet taken).
    pub batches_in_flight: usize,
}

impl BatchStats {
    /// Rows per batch handed to the batch function, on average (0 before the first batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::BatchStats;
    ///
    /// let mut stats = BatchStats::default();
    /// stats.batches = 2;
    /// stats.rows = 5;
    /// assert_eq!(stats.mean_batch_size(), 2.5);
    /// ```
    pub fn mean_batch_size(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.rows as f64 / self.batches as f64
        }
    }
}

/// Why a [`Batcher`] call failed.
///
/// The batch function's own error arrives as [`Failed`](BatchError::Failed) with an
/// [`Arc<E>`](alloc::sync::Arc): every caller of the batch gets the same error, shared, so `E`
/// need not be `Clone`.
///
/// # Examples
///
/// ```
/// use dike::batch::BatchError;
///
/// let err: BatchError<String> = BatchError::WrongLength { expected: 3, actual: 2 };
/// assert_eq!(
///     err.to_string(),
///     "batch function returned 2 rows for a batch of 3"
/// );
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError<E> {
    /// The batch function returned this error; every caller of the batch gets it.
    Failed(Arc<E>),
    /// The batch function returned `actual` rows for a batch of `expected`.
    WrongLength {
        /// Rows in the batch.
        expected: usize,
        /// Rows the function returned.
        actual: usize,
    },
    /// The batch function ran past `max_processing_time`; its future was dropped.
    TimedOut {
        /// The `max_processing_time` it was given.
        after: Duration,
    },
    /// Rejected at once: accepting the call would queue more than `max_queued_rows` rows.
    QueueFull {
        /// The bound.
        max_queued_rows: usize,
    },
    /// Rejected at once: the rows cannot be concatenated with those already waiting (for
    /// arrays, a different shape past the first axis).
    Incompatible,
    /// The call had no rows.
    Empty,
    /// The batch function, its future, or a `Rows` method panicked while another caller's
    /// future was running it.
    Panicked,
}

impl<E> Clone for BatchError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(e) => Self::Failed(Arc::clone(e)),
            Self::WrongLength { expected, actual } => Self::WrongLength {
                expected: *expected,
                actual: *actual,
            },
            Self::TimedOut { after } => Self::TimedOut { after: *after },
            Self::QueueFull { max_queued_rows } => Self::QueueFull {
                max_queued_rows: *max_queued_rows,
            },
            Self::Incompatible => Self::Incompatible,
            Self::Empty => Self::Empty,
            Self::Panicked => Self::Panicked,
        }
    }
}

impl<E: fmt::Display> fmt::Display for BatchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "batch function failed: {e}"),
            Self::WrongLength { expected, actual } => write!(
                f,
                "batch function returned {actual} rows for a batch of {expected}"
            ),
            Self::TimedOut { after } => write!(f, "batch function timed out after {after:?}"),
            Self::QueueFull { max_queued_rows } => write!(
                f,
                "batch queue full: more than {max_queued_rows} rows would wait"
            ),
            Self::Incompatible => f.write_str("rows incompatible with the waiting batch"),
            Self::Empty => f.write_str("empty call: no rows to batch"),
            Self::Panicked => f.write_str("batch function panicked"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for BatchError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Failed(e) => Some(&**e),
            _ => None,
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests;
