//! The sharded, bounded key table shared by [`KeyedThrottle`](super::KeyedThrottle) and
//! [`KeyedGate`](super::KeyedGate).
//!
//! Each shard is a `hashbrown::HashTable` of slots (key, state, referenced bit) behind the
//! crate's lock: a hit is one probe of the control bytes and one read of the slot, with the
//! state inline. The table's buckets give eviction a *clock hand* (the CLOCK page-replacement
//! algorithm's second chance): the hand drops the entries it meets whose state is idle
//! (indistinguishable from a fresh key) and that were not hit since its last pass; it clears
//! the referenced bit of those that were. The calls move the hands, with no sweep call:
//!
//! - every insert of a new key into a shard past its slack moves that shard's hand, so the
//!   table grows only as fast as its idle entries are reclaimed;
//! - every [`HIT_PERIOD`]th hit on a shard moves a hand a little (past [`HIT_LIVE`] entries
//!   kept, dropping up to [`HIT_EVICT`]), the shards taking turns, so idle keys disappear under
//!   any traffic, also from shards that get none. The hand passes an entry only every
//!   `entries × HIT_PERIOD / HIT_LIVE` hits, so a warm key hit more often than that is never
//!   evicted and re-inserted, whatever its quota.
//!
//! Removal by bucket index is O(1); the table rehashing moves entries between buckets, which
//! only reorders the hand's round.
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
/// A shard's hits pay for one move of a clock hand every this many hits (every hit under loom,
/// so the models race hit-paid evictions with calls in a few steps).
#[cfg(not(loom))]
pub(super) const HIT_PERIOD: u32 = 128;
#[cfg(loom)]
pub(super) const HIT_PERIOD: u32 = 1;
/// Entries kept (live or referenced) that a hit-paid move passes: one per 64 hits, so a warm
/// key survives if it is hit once in every `64 × entries` hits on the table.
pub(super) const HIT_LIVE: usize = 2;
/// Idle entries a hit-paid move drops at most (a backlog drains at one per 4 hits).
pub(super) const HIT_EVICT: usize = 32;
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
    /// Hit since the clock hand last passed: the hand clears it instead of evicting.
    referenced: Flag,
}

/// Where hits share the shard's lock ([`ShardLock`] is a read-write lock) a flag and a counter
/// are relaxed atomics (a racing update may be lost: it only delays eviction a little); where
/// the lock is exclusive, plain cells.
#[cfg(any(loom, all(feature = "std", target_has_atomic = "64")))]
mod cells {
    use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

    pub(super) struct Flag(AtomicBool);

    impl Flag {
        pub(super) fn new() -> Self {
            Self(AtomicBool::new(false))
        }

        /// Sets the flag (a load first: a set flag costs no store).
        #[inline]
        pub(super) fn set(&self) {
            if !self.0.load(Relaxed) {
                self.0.store(true, Relaxed);
            }
        }

        /// Clears the flag; whether it was set.
        #[inline]
        pub(super) fn take(&self) -> bool {
            self.0.load(Relaxed) && {
                self.0.store(false, Relaxed);
                true
            }
        }
    }

    pub(super) struct Counter(AtomicU32);

    impl Counter {
        pub(super) fn new() -> Self {
            Self(AtomicU32::new(0))
        }

        /// Adds one (a load and a store: a racing increment may be lost); the new count.
        #[inline]
        pub(super) fn bump(&self) -> u32 {
            let n = self.0.load(Relaxed).wrapping_add(1);
            self.0.store(n, Relaxed);
            n
        }
    }
}

#[cfg(not(any(loom, all(feature = "std", target_has_atomic = "64"))))]
mod cells {
    use core::cell::Cell;

    pub(super) struct Flag(Cell<bool>);

    impl Flag {
        pub(super) fn new() -> Self {
            Self(Cell::new(false))
        }

        #[inline]
        pub(super) fn set(&self) {
            self.0.set(true);
        }

        #[inline]
        pub(super) fn take(&self) -> bool {
            self.0.replace(false)
        }
    }

    pub(super) struct Counter(Cell<u32>);

    impl Counter {
        pub(super) fn new() -> Self {
            Self(Cell::new(0))
        }

        #[inline]
        pub(super) fn bump(&self) -> u32 {
            let n = self.0.get().wrapping_add(1);
            self.0.set(n);
            n
        }
    }
}

use cells::{Counter, Flag};

/// One shard: at most `cap` entries. In declaration order (`repr(C)`): the fields a hit
/// touches (the hit counter it writes, the table's header it reads) come first, on the cache
/// line of the lock word the hit writes anyway.
#[repr(C)]
pub(super) struct Shard<K, V> {
    /// Hits on this shard (they pay for a move of a hand every [`HIT_PERIOD`]).
    hits: Counter,
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
    fn new(cap: usize) -> Self {
        Self {
            hits: Counter::new(),
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

    /// Counts a hit; `true` on every [`HIT_PERIOD`]th.
    #[inline]
    fn count_hit(&self) -> bool {
        self.hits.bump() % HIT_PERIOD == 0
    }

    /// The state of `key`, if present, marked referenced (for a hit under the shared lock).
    #[inline]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table
            .find(hash, |slot| slot.key.borrow() == key)
            .map(|slot| {
                slot.referenced.set();
                &slot.value
            })
    }

    /// The state of `key`, if present, marked referenced.
    #[inline]
    pub(super) fn find_mut<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table
            .find_mut(hash, |slot| slot.key.borrow() == key)
            .map(|slot| {
                slot.referenced.set();
                &mut slot.value
            })
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

    /// Moves the clock hand past up to `live` entries it keeps, dropping the idle entries it
    /// meets on the way (at most `evict` of them), and past at most one round of buckets.
    /// With `second_chance`, an idle entry hit since the hand's last pass is kept (its bit
    /// cleared, counted as kept); without, every idle entry goes (a full shard refuses a new
    /// key only if every entry examined is live). Removals get their own budget: with a shared
    /// one, a backlog of idle entries would drain at only the rate new keys arrive.
    #[inline]
    fn sweep(&mut self, now: u64, ctx: &V::Ctx, live: usize, evict: usize, second_chance: bool) {
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
            if let Ok(entry) = self.table.get_bucket_entry(self.hand) {
                let slot = entry.get();
                let kept =
                    (second_chance && slot.referenced.take()) || !slot.value.is_idle(now, ctx);
                if kept {
                    live -= 1;
                } else {
                    if evict == 0 {
                        return;
                    }
                    evict -= 1;
                    let (slot, _) = entry.remove();
                    self.floor = self.floor.max(slot.value.spent_until());
                }
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
                self.sweep(now, ctx, n * LIVE_PER_INSERT, n * EVICT_PER_INSERT, true);
            }
        }
        if self.table.len() >= self.cap {
            self.sweep(now, ctx, SCAN_WHEN_FULL, SCAN_WHEN_FULL, false);
            if self.table.len() >= self.cap {
                return Err(key);
            }
        }
        let mut value = value;
        value.start_from(self.floor);
        let slot = self
            .table
            .insert_unique(
                hash,
                Slot {
                    key,
                    value,
                    referenced: Flag::new(),
                },
                |slot| hasher.hash_one(&slot.key),
            )
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

    /// Runs `f` under the exclusive lock if no other thread holds the lock now (where the lock
    /// is a critical section or a mutex, it waits as [`with`](Self::with) does). For work that
    /// may be skipped: a hit-paid move of a clock hand never makes a hit wait.
    #[inline]
    fn try_with(&self, f: impl FnOnce(&mut T)) {
        #[cfg(all(not(loom), feature = "std", target_has_atomic = "64"))]
        match self.inner.try_write() {
            Ok(mut guard) => f(&mut guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        #[cfg(loom)]
        if let Ok(mut guard) = self.inner.try_write() {
            f(&mut guard);
        }
        #[cfg(all(not(loom), not(all(feature = "std", target_has_atomic = "64"))))]
        self.inner.with(f);
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
    /// Hit-paid moves so far: whose turn it is (on a line of its own, away from the fields
    /// every call reads).
    turns: Padded<crate::sync::atomic::AtomicUsize>,
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
            turns: Padded(crate::sync::atomic::AtomicUsize::new(0)),
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
        &self.shards[self.index(hash)].0
    }

    #[inline]
    fn index(&self, hash: u64) -> usize {
        // Multiply-shift of bits 25..57 by the shard count: no division.
        ((u64::from((hash >> 25) as u32) * self.shards.len() as u64) >> 32) as usize
    }

    /// A hit under the shard's shared lock: runs `f` on `key`'s state if present (marking it
    /// referenced), and pays for the shard's share of eviction (see [`HIT_PERIOD`]) after
    /// the lock. `None` if the key has no entry.
    #[inline]
    pub(super) fn read_hit<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: u64,
        ctx: &V::Ctx,
        f: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.index(hash);
        let (r, due) = self.shards[i]
            .0
            .read(|s| s.find(hash, key).map(|v| (f(v), s.count_hit())))?;
        if due {
            self.move_a_hand(now, ctx);
        }
        Some(r)
    }

    /// A hit under the shard's exclusive lock: as [`read_hit`](Self::read_hit) with `&mut`.
    #[inline]
    pub(super) fn with_hit<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: u64,
        ctx: &V::Ctx,
        f: impl FnOnce(&mut V) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.index(hash);
        let (r, due) = self.shards[i].0.with(|s| {
            let r = s.find_mut(hash, key).map(f)?;
            Some((r, s.count_hit()))
        })?;
        if due {
            self.move_a_hand(now, ctx);
        }
        Some(r)
    }

    /// A hit-paid move of a clock hand: the shards take turns, whichever shards the hits land
    /// on, so shards without traffic are swept as often as busy ones. Skipped if that shard's
    /// lock is held now.
    #[cold]
    #[inline(never)]
    fn move_a_hand(&self, now: u64, ctx: &V::Ctx) {
        use crate::sync::atomic::Ordering::Relaxed;
        let target = self.turns.0.fetch_add(1, Relaxed) % self.shards.len();
        self.shards[target]
            .0
            .try_with(|s| s.sweep(now, ctx, HIT_LIVE, HIT_EVICT, true));
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
