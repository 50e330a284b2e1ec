//! The sharded, bounded key table shared by [`KeyedThrottle`](super::KeyedThrottle) and
//! [`KeyedGate`](super::KeyedGate).
//!
//! Each shard is a dense `Vec` of slots (hash, key, state) plus a `hashbrown::HashTable` of
//! indices into it, behind the crate's lock. The dense vector gives eviction a *clock hand*:
//! every insert of a new key into a shard past its slack examines the next few slots after the
//! hand and drops those whose state is idle (indistinguishable from a fresh key), so the table
//! grows only as fast as its idle entries are reclaimed, with no sweep call. A hit on an
//! existing key touches nothing but its own slot. Removal is `swap_remove` plus one index
//! fix-up, O(1).
//!
//! A key lives in exactly one shard (chosen by its hash), and everything about a key (its
//! state, its waiters' registrations, its eviction) happens under that shard's lock: a call and
//! the eviction of its own key are ordered by the lock, so the call either finds the entry or
//! finds none and starts from the fresh state, which is what the evicted entry was equivalent
//! to.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::sync::Mutex;

/// Live entries a new key's insert moves the clock hand past.
pub(super) const LIVE_PER_INSERT: usize = 2;
/// Idle entries a new key's insert may drop on the way (more than one, so a backlog of idle
/// entries drains faster than new keys arrive).
pub(super) const EVICT_PER_INSERT: usize = 4;
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
    /// `true` if dropping this state changes no future decision at `now` or later.
    fn is_idle(&self, now: u64) -> bool;

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
    hash: u64,
    key: K,
    value: V,
}

/// One shard: at most `cap` entries.
pub(super) struct Shard<K, V> {
    /// Slot indices (`u32`: a shard holds at most `u32::MAX` keys), a small index that
    /// stays in cache.
    index: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    hand: usize,
    cap: usize,
    /// Inserts sweep only from this many entries on (`cap / SLACK_DIVISOR`).
    slack: usize,
    /// The largest `spent_until` of the entries evicted so far.
    floor: u64,
}

impl<K, V: Idle> Shard<K, V> {
    const fn new(cap: usize) -> Self {
        Self {
            index: HashTable::new(),
            slots: Vec::new(),
            hand: 0,
            cap,
            slack: cap / SLACK_DIVISOR,
            floor: 0,
        }
    }

    /// The slot of `key`, if present.
    #[inline]
    pub(super) fn find<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].key.borrow() == key)
            .map(|&i| i as usize)
    }

    /// The slot with this hash whose state satisfies `f` (identity lookups by waiters).
    pub(super) fn find_by(&self, hash: u64, f: impl Fn(&V) -> bool) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                let slot = &slots[i as usize];
                slot.hash == hash && f(&slot.value)
            })
            .map(|&i| i as usize)
    }

    #[inline]
    pub(super) fn value(&mut self, i: usize) -> &mut V {
        &mut self.slots[i].value
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Moves the clock hand past up to `live` live entries, dropping the idle entries it meets
    /// on the way (at most `evict` of them). A dropped slot is refilled by the last one (the
    /// newest, usually live), so removals get their own budget: with a shared one, each
    /// removal would spend the next examination on that newcomer and a backlog of idle
    /// entries would drain at only the rate new keys arrive.
    #[inline]
    pub(super) fn sweep(&mut self, now: u64, live: usize, evict: usize) {
        let (mut live, mut evict) = (live, evict);
        while live > 0 && !self.slots.is_empty() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            if self.slots[self.hand].value.is_idle(now) {
                if evict == 0 {
                    return;
                }
                evict -= 1;
                // The last slot moves here: examined next.
                self.remove(self.hand);
            } else {
                live -= 1;
                self.hand += 1;
            }
        }
    }

    /// Drops every idle entry.
    fn sweep_all(&mut self, now: u64) {
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].value.is_idle(now) {
                self.remove(i);
            } else {
                i += 1;
            }
        }
        self.hand = 0;
    }

    fn remove(&mut self, i: usize) {
        let hash = self.slots[i].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == i) {
            entry.remove();
        }
        self.floor = self.floor.max(self.slots[i].value.spent_until());
        let last = self.slots.len() - 1;
        if i != last {
            let moved = self.slots[last].hash;
            if let Some(j) = self.index.find_mut(moved, |&j| j as usize == last) {
                *j = i as u32;
            }
        }
        self.slots.swap_remove(i);
    }

    /// Inserts a key known to be absent. The insert pays for eviction: past the shard's
    /// slack it moves the clock hand (past [`LIVE_PER_INSERT`] live entries, dropping up to
    /// [`EVICT_PER_INSERT`] idle ones), and at the cap it examines up to [`SCAN_WHEN_FULL`]
    /// more. `Err` gives the key back when the shard is full and every examined entry is live.
    pub(super) fn insert(&mut self, hash: u64, key: K, value: V, now: u64) -> Result<usize, K> {
        if self.slots.len() >= self.slack {
            self.sweep(now, LIVE_PER_INSERT, EVICT_PER_INSERT);
        }
        if self.slots.len() >= self.cap {
            self.sweep(now, SCAN_WHEN_FULL, SCAN_WHEN_FULL);
            if self.slots.len() >= self.cap {
                return Err(key);
            }
        }
        let mut value = value;
        value.start_from(self.floor);
        let i = self.slots.len();
        self.slots.push(Slot { hash, key, value });
        let slots = &self.slots;
        self.index
            .insert_unique(hash, i as u32, |&j| slots[j as usize].hash);
        Ok(i)
    }

    fn shrink_to_fit(&mut self, now: u64) {
        self.sweep_all(now);
        let slots = &self.slots;
        self.index
            .shrink_to(slots.len(), |&j| slots[j as usize].hash);
        self.slots.shrink_to_fit();
    }
}

/// The shards and the hasher.
/// One shard's lock and data on cache lines of its own, so threads working on different
/// shards do not contend on a shared line.
#[repr(align(128))]
struct Padded<T>(T);

/// A shard behind its lock, padded.
type Locked<K, V> = Padded<Mutex<Shard<K, V>>>;

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
                Padded(Mutex::new(Shard::new(
                    (max_keys / n + usize::from(i < max_keys % n)).min(u32::MAX as usize),
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
    pub(super) fn shard(&self, hash: u64) -> &Mutex<Shard<K, V>> {
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

    pub(super) fn shrink_to_fit(&self, now: u64) {
        for shard in self.shards.iter() {
            shard.0.with(|s| s.shrink_to_fit(now));
        }
    }
}

impl<K, V, S: BuildHasher> Table<K, V, S> {
    #[inline]
    pub(super) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }
}
