//! Statistics hooks: overall counters ([`Stats`]) and counters per key ([`KeyStats`]).
//!
//! Both count the same six events with the same meaning (async_reduce counts "executed" as
//! successful runs in its overall statistics and as started runs in its detailed ones; dike
//! has one meaning, started runs, in both):
//!
//! - `total`: calls to `run`;
//! - `executed`: runs started, i.e. calls whose closure ran the work (the calls that reached
//!   the backend, which is what coalescing saves);
//! - `joined`: calls that reused a run in flight (`total = executed + joined`);
//! - `succeeded`, `failed` (an error or a panic) and `abandoned` (every waiter left before
//!   the end): how started runs ended, so `executed = succeeded + failed + abandoned` once
//!   nothing is in flight.

use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use hashbrown::HashMap;

use super::{DefaultHashBuilder, Hooks, RunError};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// Counters of coalesced calls, overall ([`Stats::counts`]) or for one key
/// ([`KeyStats::get`]).
///
/// "Executed" has one meaning in both: runs started. (async_reduce counts successful runs as
/// "executed" in its overall statistics and started runs in its detailed ones; a started run
/// is what reached the backend, which is what coalescing saves, so dike counts that, and
/// counts how runs ended apart.) Once nothing is in flight:
///
/// - `total = executed + joined` (every call either started a run or joined one);
/// - `executed = succeeded + failed + abandoned` (every run ended one way).
///
/// Counts wrap around at `usize::MAX`.
///
/// # Examples
///
/// ```
/// use dike::coalesce::Counts;
///
/// let counts = Counts::default();
/// assert_eq!(counts.to_string(), "total=0, executed=0, joined=0, succeeded=0, failed=0, abandoned=0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub struct Counts {
    /// Calls to `run`.
    pub total: usize,
    /// Runs started: calls whose closure ran the work.
    pub executed: usize,
    /// Calls that joined a run in flight.
    pub joined: usize,
    /// Runs whose work returned `Ok`.
    pub succeeded: usize,
    /// Runs whose work returned `Err` or panicked.
    pub failed: usize,
    /// Runs dropped unfinished because every waiter left.
    pub abandoned: usize,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "total={}, executed={}, joined={}, succeeded={}, failed={}, abandoned={}",
            self.total, self.executed, self.joined, self.succeeded, self.failed, self.abandoned
        )
    }
}

/// Overall statistics of a coalescer, a hook: async_reduce's `StatisticsOverallHooks`,
/// counting the events of [`Counts`].
///
/// Lock-free (one relaxed atomic increment per event). Keep it readable with
/// [`Coalescer::hooks`](super::Coalescer::hooks), or share it as `&Stats` / `Arc<Stats>`.
///
/// # Examples
///
/// ```
/// use dike::coalesce::{Coalescer, Stats};
///
/// # smol::block_on(async {
/// let coalescer = Coalescer::with_hooks(Stats::new());
/// let a = coalescer.run(&1_u32, || async { Ok::<u32, ()>(10) });
/// let b = coalescer.run(&1, || async { Ok(10) });
/// let _ = futures_util::join!(a, b);
/// let counts = coalescer.hooks().counts();
/// assert_eq!((counts.total, counts.executed, counts.joined, counts.succeeded), (2, 1, 1, 1));
/// # });
/// ```
#[derive(Debug, Default)]
pub struct Stats {
    total: AtomicUsize,
    executed: AtomicUsize,
    joined: AtomicUsize,
    succeeded: AtomicUsize,
    failed: AtomicUsize,
    abandoned: AtomicUsize,
}

impl Stats {
    /// Counters at zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::Stats;
    ///
    /// static STATS: Stats = Stats::new();
    /// assert_eq!(STATS.counts().total, 0);
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            total: AtomicUsize::new(0),
            executed: AtomicUsize::new(0),
            joined: AtomicUsize::new(0),
            succeeded: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            abandoned: AtomicUsize::new(0),
        }
    }

    /// Counters at zero (loom build: not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the counters (each read on its own: events racing with it may be counted
    /// in some and not others).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, Stats};
    ///
    /// let coalescer = Coalescer::with_hooks(Stats::new());
    /// let _pending = coalescer.run(&1_u8, || async { Ok::<u8, ()>(1) });
    /// assert_eq!(coalescer.hooks().counts().executed, 1);
    /// ```
    pub fn counts(&self) -> Counts {
        let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        Counts {
            total: get(&self.total),
            executed: get(&self.executed),
            joined: get(&self.joined),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            abandoned: get(&self.abandoned),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stats({})", self.counts())
    }
}

#[inline]
fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl<K, T, E> Hooks<K, T, E> for Stats {
    fn apply(&self, _: &K) {
        bump(&self.total);
    }
    fn execute(&self, _: &K) {
        bump(&self.executed);
    }
    fn join(&self, _: &K) {
        bump(&self.joined);
    }
    fn success(&self, _: &K, _: &T) {
        bump(&self.succeeded);
    }
    fn error(&self, _: &K, _: &RunError<E>) {
        bump(&self.failed);
    }
    fn abandon(&self, _: &K) {
        bump(&self.abandoned);
    }
}

/// Statistics per key, a hook: async_reduce's `StatisticsDetailHooks` (which counts per
/// function; here the unit is the coalescing key), with [`Counts`] per key.
///
/// A map from each key seen to its [`Counts`], behind a lock (the key's `Hash`, `Eq`, `Clone`
/// and drop run under it; no other user code does). The first event of a key clones it into
/// the map. Keys are never removed: for an unbounded key space, count per class of keys with
/// your own hook instead.
///
/// With `std` the hasher defaults to [`DefaultHashBuilder`]; without `std` give one to
/// [`with_hasher`](KeyStats::with_hasher).
///
/// # Examples
///
/// ```
/// use dike::coalesce::{Coalescer, KeyStats};
///
/// # smol::block_on(async {
/// let coalescer: Coalescer<String, u32, (), _> = Coalescer::with_hooks(KeyStats::new());
/// let a = coalescer.run("users/1", || async { Ok(1) });
/// let b = coalescer.run("users/1", || async { Ok(1) });
/// let c = coalescer.run("users/2", || async { Ok(2) });
/// let _ = futures_util::join!(a, b, c);
/// let stats = coalescer.hooks();
/// assert_eq!(stats.get("users/1").unwrap().joined, 1);
/// assert_eq!(stats.get("users/2").unwrap().executed, 1);
/// assert_eq!(stats.snapshot()[0].0, "users/1", "sorted by total, most first");
/// # });
/// ```
pub struct KeyStats<K, S = DefaultHashBuilder> {
    map: Mutex<HashMap<K, Counts, S>>,
}

#[cfg(feature = "std")]
impl<K> KeyStats<K> {
    /// Empty statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::KeyStats;
    ///
    /// let stats: KeyStats<u64> = KeyStats::new();
    /// assert!(stats.snapshot().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_hasher(DefaultHashBuilder::default())
    }
}

#[cfg(feature = "std")]
impl<K> Default for KeyStats<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, S> KeyStats<K, S> {
    /// Empty statistics hashing keys with `hasher`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::hash::RandomState;
    /// use dike::coalesce::KeyStats;
    ///
    /// let stats: KeyStats<u64, _> = KeyStats::with_hasher(RandomState::new());
    /// assert!(stats.get(&1).is_none());
    /// ```
    pub fn with_hasher(hasher: S) -> Self {
        Self {
            map: Mutex::new(HashMap::with_hasher(hasher)),
        }
    }
}

impl<K: Hash + Eq, S: BuildHasher> KeyStats<K, S> {
    /// The counts of `key`, if it was seen.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, KeyStats};
    ///
    /// let coalescer = Coalescer::with_hooks(KeyStats::new());
    /// let _pending = coalescer.run(&5_u8, || async { Ok::<(), ()>(()) });
    /// assert_eq!(coalescer.hooks().get(&5).unwrap().total, 1);
    /// assert!(coalescer.hooks().get(&6).is_none());
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<Counts>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.map.with(|map| map.get(key).copied())
    }

    /// Every key seen with its counts, the highest `total` first (then the highest
    /// `executed`), like the original's `most_common()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, KeyStats};
    ///
    /// let coalescer = Coalescer::with_hooks(KeyStats::new());
    /// let _a = coalescer.run(&1_u8, || async { Ok::<(), ()>(()) });
    /// let _b = coalescer.run(&2_u8, || async { Ok::<(), ()>(()) });
    /// let _c = coalescer.run(&2_u8, || async { Ok::<(), ()>(()) });
    /// let keys: Vec<u8> = coalescer.hooks().snapshot().into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(keys, [2, 1]);
    /// ```
    pub fn snapshot(&self) -> Vec<(K, Counts)>
    where
        K: Clone,
    {
        let mut all: Vec<(K, Counts)> = self
            .map
            .with(|map| map.iter().map(|(k, c)| (k.clone(), *c)).collect());
        all.sort_by_key(|(_, c)| core::cmp::Reverse((c.total, c.executed)));
        all
    }

    fn count(&self, key: &K, f: impl FnOnce(&mut Counts))
    where
        K: Clone,
    {
        self.map.with(|map| match map.get_mut(key) {
            Some(counts) => f(counts),
            None => f(map.entry(key.clone()).or_default()),
        });
    }
}

impl<K: fmt::Debug, S> fmt::Debug for KeyStats<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.map
            .with(|map| f.debug_map().entries(map.iter()).finish())
    }
}

impl<K, S> fmt::Display for KeyStats<K, S>
where
    K: fmt::Debug + Hash + Eq + Clone,
    S: BuildHasher,
{
    /// One line per key, the highest `total` first: `key: total=.., executed=.., ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, counts) in self.snapshot() {
            writeln!(f, "{key:?}: {counts}")?;
        }
        Ok(())
    }
}

impl<K, T, E, S> Hooks<K, T, E> for KeyStats<K, S>
where
    K: Hash + Eq + Clone,
    S: BuildHasher,
{
    fn apply(&self, key: &K) {
        self.count(key, |c| c.total = c.total.wrapping_add(1));
    }
    fn execute(&self, key: &K) {
        self.count(key, |c| c.executed = c.executed.wrapping_add(1));
    }
    fn join(&self, key: &K) {
        self.count(key, |c| c.joined = c.joined.wrapping_add(1));
    }
    fn success(&self, key: &K, _: &T) {
        self.count(key, |c| c.succeeded = c.succeeded.wrapping_add(1));
    }
    fn error(&self, key: &K, _: &RunError<E>) {
        self.count(key, |c| c.failed = c.failed.wrapping_add(1));
    }
    fn abandon(&self, key: &K) {
        self.count(key, |c| c.abandoned = c.abandoned.wrapping_add(1));
    }
}
