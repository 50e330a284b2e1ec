//! The sharded, bounded key table shared by [`KeyedThrottle`](super::KeyedThrottle) and
//! [`KeyedGate`](super::KeyedGate).
//!
//! Each shard is a `hashbrown::HashTable` of slots (key, state) behind the crate's lock: a hit
//! is one probe of the control bytes and one read of the slot, with the state inline. The
//! table's buckets give eviction a *clock hand*: every insert of a new key into a shard past
//! its slack examines the next few buckets after the hand and drops the entries whose state is
//! idle (indistinguishable from a fresh key), so the table grows only as fast as its idle
//! entries are reclaimed, with no sweep call. A hit on an existing key touches nothing but its
//! own slot. Removal by bucket index is O(1); the table rehashing moves entries between
//! buckets, which only reorders the hand's round.
//!
//! A key lives in exactly one shard (chosen by its hash), and everything about a key (its
//! state, its waiters' registrations, its eviction) happens under that shard's lock: a call and
//! the eviction of its own key are ordered by the lock, so the call either finds the entry or
//! finds none and starts from the fresh state, which is what the evicted entry was equivalent
//! to.

use alloc::boxed::Box;
use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

#[cfg(all(not(loom), not(all(feature = "std", target_has_atomic = "64"))))]
use crate::sync::Mutex;

/// Live entries each new key's insert pays for moving the clock hand past.
pub(super) const LIVE_PER_INSERT: usize = 1;
/// Idle entries each new key's insert pays for dropping (more than one, so a backlog of idle
/// entries drains faster than new keys arrive).
pub(super) const EVICT_PER_INSERT: usize = 4;
/// Inserts pay in batches: every `batch` inserts past the slack, one moves the hand for all
/// of them (a run along neighbouring buckets costs less than as many scattered steps). A batch
/// is a sixteenth of the slack, between 1 and this many inserts, so small shards stay eager.
pub(super) const MAX_INSERTS_PER_SWEEP: usize = 16;
/// A shard sweeps on insert only when it holds at least `cap / SLACK_DIVISOR` entries: below
/// that, idle entries cost little memory and keeping them spares warm keys an evict-and-
/// reinsert.
pub(super) const SLACK_DIVISOR: usize = 8;
/// Slots examined at the clock hand before a new key is refused by a full shard. A shard of at
/// most this many entries is examined completely.
pub(super) const SCAN_WHEN_FULL: usize = 64;
/// Shards by default (fewer when the cap is small: see [`MIN_SHARD_CAP`]).
pub(super) const DEFAULT_SHARDS: usize = 16;
/// A shard holds at least this many keys (unless the whole cap is smaller): so the share of
/// the cap each shard gets is not lumpy for small caps, and a small table is examined
/// completely before a new key is refused.
pub(super) const MIN_SHARD_CAP: usize = SCAN_WHEN_FULL;

/// A per-key state that can tell when it is indistinguishable from a fresh key's.
pub(super) trait Idle {
    /// What the state needs beside itself to judge (the throttle's default quota).
    type Ctx;

    /// `true` if dropping this state changes no future decision at `now` or later.
    fn is_idle(&self, now: u64, ctx: &Self::Ctx) -> bool;

    /// The instant up to which an evicted state had spent its schedule (`tat`; 0 for states
    /// without time). A shard keeps the largest one as its *floor*.
    fn spent_until(&self) -> u64 {
        0
    }

    /// Starts a new entry from the shard's floor: a call that read the clock before a
    /// concurrent eviction (so its `now` is older than the evicted `tat`) is decided as the
    /// evicted entry would have decided it, not as a fresh key. A call with `now >= floor`
    /// sees no difference from a fresh key.
    fn start_from(&mut self, _floor: u64) {}
}

struct Slot<K, V> {
    key: K,
    value: V,
}

/// One shard: at most `cap` entries.
pub(super) struct Shard<K, V> {
    table: HashTable<Slot<K, V>>,
    /// The clock hand: the next bucket index eviction examines.
    hand: usize,
    cap: usize,
    /// Inserts sweep only from this many entries on (`cap / SLACK_DIVISOR`).
    slack: usize,
    /// The largest `spent_until` of the entries evicted so far.
    floor: u64,
    /// Inserts past the slack since the last sweep.
    owed: usize,
    /// Inserts per sweep.
    batch: usize,
}

impl<K, V: Idle> Shard<K, V> {
    const fn new(cap: usize) -> Self {
        Self {
            table: HashTable::new(),
            hand: 0,
            cap,
            slack: cap / SLACK_DIVISOR,
            floor: 0,
            owed: 0,
            batch: {
                let batch = cap / SLACK_DIVISOR / 16;
                if batch == 0 {
                    1
                } else if batch > MAX_INSERTS_PER_SWEEP {
                    MAX_INSERTS_PER_SWEEP
                } else {
                    batch
                }
            },
        }
    }

    /// The state of `key`, if present (for a hit under the shared lock).
    #[inline]
    pub(super) fn find<Q>(&self, hash: u64, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table
            .find(hash, |slot| slot.key.borrow() == key)
            .map(|slot| &slot.value)
    }

    /// The state of `key`, if present.
    #[inline]
    pub(super) fn find_mut<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table
            .find_mut(hash, |slot| slot.key.borrow() == key)
            .map(|slot| &mut slot.value)
    }

    /// The state with this hash that satisfies `f` (identity lookups by waiters).
    pub(super) fn find_by_mut(&mut self, hash: u64, f: impl Fn(&V) -> bool) -> Option<&mut V> {
        self.table
            .find_mut(hash, |slot| f(&slot.value))
            .map(|slot| &mut slot.value)
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Moves the clock hand past up to `live` live entries, dropping the idle entries it meets
    /// on the way (at most `evict` of them), and past at most one round of buckets. Removals
    /// get their own budget: with a shared one, a backlog of idle entries would drain at only
    /// the rate new keys arrive.
    #[inline]
    fn sweep(&mut self, now: u64, ctx: &V::Ctx, live: usize, evict: usize) {
        let buckets = self.table.num_buckets();
        if self.table.is_empty() {
            return;
        }
        let (mut live, mut evict) = (live, evict);
        // Empty buckets are cheap to pass, but bounded too: at most one round, and at most
        // 8 buckets per entry budgeted (the table is at least 1/8 full when it sweeps).
        let mut steps = buckets.min((live + evict) * 8);
        while live > 0 && steps > 0 {
            steps -= 1;
            if self.hand >= buckets {
                self.hand = 0;
            }
            match self.table.get_bucket_entry(self.hand) {
                Ok(entry) if entry.get().value.is_idle(now, ctx) => {
                    if evict == 0 {
                        return;
                    }
                    evict -= 1;
                    let (slot, _) = entry.remove();
                    self.floor = self.floor.max(slot.value.spent_until());
                }
                Ok(_) => live -= 1,
                Err(_) => {}
            }
            self.hand += 1;
        }
    }

    /// Inserts a key known to be absent. The insert pays for eviction: past the shard's
    /// slack it owes a move of the clock hand (past [`LIVE_PER_INSERT`] live entries, dropping
    /// up to [`EVICT_PER_INSERT`] idle ones), paid in batches of up to [`MAX_INSERTS_PER_SWEEP`], and at
    /// the cap it examines up to [`SCAN_WHEN_FULL`] more. `Err` gives the key back when the shard is full and every examined entry is live.
    pub(super) fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        now: u64,
        ctx: &V::Ctx,
        hasher: &S,
    ) -> Result<&mut V, K>
    where
        K: Hash,
    {
        if self.table.len() >= self.slack {
            self.owed += 1;
            if self.owed >= self.batch {
                let n = core::mem::take(&mut self.owed);
                self.sweep(now, ctx, n * LIVE_PER_INSERT, n * EVICT_PER_INSERT);
            }
        }
        if self.table.len() >= self.cap {
            self.sweep(now, ctx, SCAN_WHEN_FULL, SCAN_WHEN_FULL);
            if self.table.len() >= self.cap {
                return Err(key);
            }
        }
        let mut value = value;
        value.start_from(self.floor);
        let slot = self
            .table
            .insert_unique(hash, Slot { key, value }, |slot| hasher.hash_one(&slot.key))
            .into_mut();
        Ok(&mut slot.value)
    }

    /// Drops every idle entry and releases unused memory.
    fn shrink_to_fit<S: BuildHasher>(&mut self, now: u64, ctx: &V::Ctx, hasher: &S)
    where
        K: Hash,
    {
        let floor = &mut self.floor;
        self.table.retain(|slot| {
            let idle = slot.value.is_idle(now, ctx);
            if idle {
                *floor = (*floor).max(slot.value.spent_until());
            }
            !idle
        });
        self.table
            .shrink_to(self.table.len(), |slot| hasher.hash_one(&slot.key));
        self.hand = 0;
    }
}

/// One shard's lock and data on cache lines of its own, so threads working on different
/// shards do not contend on a shared line.
#[repr(align(128))]
struct Padded<T>(T);

/// A shard behind its lock, padded.
type Locked<K, V> = Padded<ShardLock<Shard<K, V>>>;

/// A shard's lock. With `std` on targets with a native 64-bit atomic (and under loom) it is a
/// read-write lock: hits on existing keys share it (their state changes by an atomic
/// compare-and-swap, see [`TatCell`]), so a thread preempted inside a hit never stalls the
/// hits of other threads on the same shard; inserts, evictions and waiters take it
/// exclusively. Elsewhere it is the crate's [`Mutex`](crate::sync::Mutex) (a critical section without `std`), and
/// a hit takes it exclusively.
pub(super) struct ShardLock<T> {
    #[cfg(all(not(loom), feature = "std", target_has_atomic = "64"))]
    inner: std::sync::RwLock<T>,
    #[cfg(loom)]
    inner: loom::sync::RwLock<T>,
    #[cfg(all(not(loom), not(all(feature = "std", target_has_atomic = "64"))))]
    inner: Mutex<T>,
}

impl<T> ShardLock<T> {
    fn new(value: T) -> Self {
        Self {
            #[cfg(all(not(loom), feature = "std", target_has_atomic = "64"))]
            inner: std::sync::RwLock::new(value),
            #[cfg(loom)]
            inner: loom::sync::RwLock::new(value),
            #[cfg(all(not(loom), not(all(feature = "std", target_has_atomic = "64"))))]
            inner: Mutex::new(value),
        }
    }

    /// Runs `f` under the shared lock (the exclusive one where there is no read-write lock).
    /// The same rules as [`Mutex::with`](crate::sync::Mutex::with): no waking, no waker dropped, no user code.
    #[inline]
    pub(super) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(all(not(loom), feature = "std", target_has_atomic = "64"))]
        {
            f(&self
                .inner
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner))
        }
        #[cfg(loom)]
        {
            f(&self.inner.read().unwrap())
        }
        #[cfg(all(not(loom), not(all(feature = "std", target_has_atomic = "64"))))]
        {
            self.inner.with(|t| f(t))
        }
    }

    /// Runs `f` under the exclusive lock, with the rules of [`Mutex::with`](crate::sync::Mutex::with).
    #[inline]
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(all(not(loom), feature = "std", target_has_atomic = "64"))]
        {
            f(&mut self
                .inner
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner))
        }
        #[cfg(loom)]
        {
            f(&mut self.inner.write().unwrap())
        }
        #[cfg(all(not(loom), not(all(feature = "std", target_has_atomic = "64"))))]
        {
            self.inner.with(f)
        }
    }
}

/// A key's `tat`, changed by hits under the shared lock: a 64-bit atomic where [`ShardLock`]
/// is a read-write lock (one compare-and-swap loop per admission, as the throttle engine's),
/// a plain cell where the lock is exclusive anyway.
pub(super) struct TatCell {
    #[cfg(any(loom, all(feature = "std", target_has_atomic = "64")))]
    tat: crate::sync::AtomicU64,
    #[cfg(not(any(loom, all(feature = "std", target_has_atomic = "64"))))]
    tat: core::cell::Cell<u64>,
}

#[cfg(any(loom, all(feature = "std", target_has_atomic = "64")))]
impl TatCell {
    pub(super) fn new(tat: u64) -> Self {
        Self {
            tat: crate::sync::AtomicU64::new(tat),
        }
    }

    #[inline]
    pub(super) fn load(&self) -> u64 {
        self.tat.load(crate::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn store(&mut self, tat: u64) {
        self.update_mut(|_| Ok(tat)).ok();
    }

    /// As [`update`](Self::update) with the exclusive lock held: no compare-and-swap.
    #[inline]
    pub(super) fn update_mut(
        &mut self,
        f: impl FnOnce(u64) -> Result<u64, u64>,
    ) -> Result<u64, u64> {
        #[cfg(not(loom))]
        let tat = self.tat.get_mut();
        #[cfg(not(loom))]
        {
            *tat = f(*tat)?;
            Ok(*tat)
        }
        #[cfg(loom)]
        self.tat.with_mut(|tat| {
            *tat = f(*tat)?;
            Ok(*tat)
        })
    }

    /// Applies the pure transition `f` and stores its `Ok`, as one atomic step. `Relaxed`
    /// suffices, as in the throttle engine: `tat` publishes nothing else.
    #[inline]
    pub(super) fn update(&self, f: impl Fn(u64) -> Result<u64, u64>) -> Result<u64, u64> {
        use crate::sync::atomic::Ordering::Relaxed;
        let mut tat = self.load();
        loop {
            let new = f(tat)?;
            match self.tat.compare_exchange_weak(tat, new, Relaxed, Relaxed) {
                Ok(_) => return Ok(new),
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(not(any(loom, all(feature = "std", target_has_atomic = "64"))))]
impl TatCell {
    pub(super) fn new(tat: u64) -> Self {
        Self {
            tat: core::cell::Cell::new(tat),
        }
    }

    #[inline]
    pub(super) fn load(&self) -> u64 {
        self.tat.get()
    }

    pub(super) fn store(&mut self, tat: u64) {
        self.tat.set(tat);
    }

    /// As [`update`](Self::update).
    #[inline]
    pub(super) fn update_mut(
        &mut self,
        f: impl FnOnce(u64) -> Result<u64, u64>,
    ) -> Result<u64, u64> {
        let new = f(self.tat.get())?;
        self.tat.set(new);
        Ok(new)
    }

    /// Applies `f` and stores its `Ok` (the exclusive lock is held).
    #[inline]
    pub(super) fn update(&self, f: impl Fn(u64) -> Result<u64, u64>) -> Result<u64, u64> {
        let new = f(self.tat.get())?;
        self.tat.set(new);
        Ok(new)
    }
}

/// The shards and the hasher.
pub(super) struct Table<K, V, S> {
    shards: Box<[Locked<K, V>]>,
    hasher: S,
    max_keys: usize,
    /// The shard count asked for (the one in use may be smaller).
    requested: usize,
}

impl<K, V: Idle, S> Table<K, V, S> {
    /// `max_keys >= 1` and `shards >= 1` are the caller's; the cap is split so the shards'
    /// caps add up to exactly `max_keys`, each at least [`MIN_SHARD_CAP`] when possible.
    pub(super) fn new(max_keys: usize, shards: usize, hasher: S) -> Self {
        let requested = shards;
        let n = shards.min(max_keys / MIN_SHARD_CAP).max(1);
        let shards = (0..n)
            .map(|i| {
                Padded(ShardLock::new(Shard::new(
                    max_keys / n + usize::from(i < max_keys % n),
                )))
            })
            .collect();
        Self {
            shards,
            hasher,
            max_keys,
            requested,
        }
    }

    /// Rebuilds the (empty) table with another cap or shard count.
    pub(super) fn resized(self, max_keys: usize, shards: usize) -> Self {
        Self::new(max_keys, shards, self.hasher)
    }

    /// The shard of a hash, from bits below hashbrown's top 7 tag bits and above the low bits
    /// it indexes buckets with (up to 2^25 buckets a shard), so neither loses entropy within
    /// a shard.
    #[inline]
    pub(super) fn shard(&self, hash: u64) -> &ShardLock<Shard<K, V>> {
        // Multiply-shift of bits 25..57 by the shard count: no division.
        let i = (u64::from((hash >> 25) as u32) * self.shards.len() as u64) >> 32;
        &self.shards[i as usize].0
    }

    pub(super) fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The shard count asked for.
    pub(super) fn requested_shards(&self) -> usize {
        self.requested
    }

    pub(super) fn hasher(&self) -> &S {
        &self.hasher
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.with(|s| s.len())).sum()
    }
}

impl<K: Hash, V: Idle, S: BuildHasher> Table<K, V, S> {
    #[inline]
    pub(super) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn shrink_to_fit(&self, now: u64, ctx: &V::Ctx) {
        for shard in self.shards.iter() {
            shard.0.with(|s| s.shrink_to_fit(now, ctx, &self.hasher));
        }
    }
}
