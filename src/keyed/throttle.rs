//! [`KeyedThrottle`]: one GCRA schedule per key.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::hash::{BuildHasher, Hash};
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::table::{DEFAULT_SHARDS, Idle, Table, TatCell};
use super::{Handle, KeyQuota, KeyRef, KeyedThrottleError, TooManyKeys, WhenFull};
use crate::error::ConfigError;
use crate::gate::{EnterOwned, Gate, OwnedPermit};
use crate::throttle::engine::{horizon, step};
use crate::throttle::{NEVER, Quota, RateLimited, nanos};
use crate::time::Timer;
use alloc::sync::Arc;

/// One key's schedule: the throttle engine's `tat`, and (boxed, so the common entry is two
/// words) the key's own quota when it differs from the throttle's and its waiting line while
/// someone waits.
pub(super) struct Schedule {
    tat: TatCell,
    extra: Option<Box<Extra>>,
}

/// The rarer part of a schedule.
struct Extra {
    interval: u64,
    capacity: u64,
    /// Waiting futures registered on this key (queued or head).
    waiters: usize,
    /// The key's FIFO line (a gate of one permit, like `Throttle`'s), only while
    /// `waiters > 0`.
    line: Option<Arc<Gate>>,
}

impl Schedule {
    /// A fresh key's schedule under `quota`; `default` is the throttle's own quota.
    fn fresh(quota: KeyQuota, default: &KeyQuota) -> Self {
        let extra = (quota != *default).then(|| {
            Box::new(Extra {
                interval: quota.interval,
                capacity: quota.capacity,
                waiters: 0,
                line: None,
            })
        });
        Self {
            tat: TatCell::new(0),
            extra,
        }
    }

    /// The key's `(interval, capacity)`.
    #[inline]
    fn params(&self, default: &KeyQuota) -> (u64, u64) {
        match &self.extra {
            Some(x) => (x.interval, x.capacity),
            None => (default.interval, default.capacity),
        }
    }

    #[inline]
    fn waiters(&self) -> usize {
        self.extra.as_ref().map_or(0, |x| x.waiters)
    }

    fn line(&self) -> Option<&Arc<Gate>> {
        self.extra.as_ref().and_then(|x| x.line.as_ref())
    }

    /// The pure GCRA step for a cost of `n` (`n <= burst`) at `now`; updates `tat` on
    /// admission. `Err` carries the instant of the first possible admission (`NEVER` past the
    /// end of time).
    #[inline]
    fn check(&self, now: u64, n: u32, default: &KeyQuota) -> Result<(), u64> {
        let (interval, capacity) = self.params(default);
        let cost = u64::from(n) * interval;
        Self::decided(
            self.tat.update(|tat| step(tat, now, cost, capacity)),
            capacity,
        )
    }

    /// As [`check`](Self::check), with the shard's lock held exclusively.
    #[inline]
    fn check_mut(&mut self, now: u64, n: u32, default: &KeyQuota) -> Result<(), u64> {
        let (interval, capacity) = self.params(default);
        let cost = u64::from(n) * interval;
        Self::decided(
            self.tat.update_mut(|tat| step(tat, now, cost, capacity)),
            capacity,
        )
    }

    #[inline]
    fn decided(step: Result<u64, u64>, capacity: u64) -> Result<(), u64> {
        match step {
            Ok(_) => Ok(()),
            Err(at) if at > horizon(capacity) => Err(NEVER),
            Err(at) => Err(at),
        }
    }

    /// A waiting call's first look: admitted at once if nobody waits and the schedule has
    /// room, else registered as a waiter and given the line to join.
    fn start(&mut self, now: u64, n: u32, default: &KeyQuota) -> Option<Arc<Gate>> {
        if self.waiters() == 0 && self.check_mut(now, n, default).is_ok() {
            return None;
        }
        let (interval, capacity) = self.params(default);
        let extra = self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                interval,
                capacity,
                waiters: 0,
                line: None,
            })
        });
        extra.waiters += 1;
        Some(
            extra
                .line
                .get_or_insert_with(|| Arc::new(Gate::new(1)))
                .clone(),
        )
    }

    /// Unregisters a waiter; the line is handed back (to be dropped after the lock) when it was
    /// the last.
    fn leave(&mut self) -> Option<Arc<Gate>> {
        let extra = self.extra.as_mut()?;
        extra.waiters -= 1;
        if extra.waiters == 0 {
            extra.line.take()
        } else {
            None
        }
    }
}

impl Idle for Schedule {
    type Ctx = KeyQuota;

    /// Fresh-equivalent: nobody waits, and `tat` is at or before `now` (clamped to the engine's
    /// horizon as `step` clamps it), so `max(tat, now) = max(0, now)`: every future step is the
    /// one a fresh key (`tat = 0`) would take.
    #[inline]
    fn is_idle(&self, now: u64, default: &KeyQuota) -> bool {
        let now = now.min(horizon(self.params(default).1));
        self.waiters() == 0 && self.tat.load() <= now
    }

    #[inline]
    fn spent_until(&self) -> u64 {
        self.tat.load()
    }

    #[inline]
    fn start_from(&mut self, floor: u64) {
        self.tat.store(floor);
    }
}

/// The per-key quota: one for all keys, or a function of the key.
enum Quotas<K> {
    One(KeyQuota),
    PerKey(Box<dyn Fn(&K) -> KeyQuota + Send + Sync>),
}

macro_rules! keyed_throttle_struct {
    ($(#[$doc:meta])* $($default:ty)?) => {
        $(#[$doc])*
        pub struct KeyedThrottle<K, S $(= $default)?> {
            table: Table<K, Schedule, S>,
            quota: KeyQuota,
            quotas: Quotas<K>,
            when_full: WhenFull,
        }
    };
}

keyed_throttle_struct! {
    /// A rate limit per key (user, IP address, tenant): one GCRA schedule per key, in bounded
    /// memory, with no cleanup task.
    ///
    /// Every key gets the same [`Quota`] (or one chosen per key with
    /// [`with_quota_fn`](KeyedThrottle::with_quota_fn)) and behaves exactly like its own
    /// [`Throttle`](crate::throttle::Throttle). Idle keys are forgotten by the calls themselves
    /// (see the [module docs](super) for the rule and why no decision changes), and at most
    /// [`max_keys`](KeyedThrottle::max_keys) keys are held at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::{KeyedThrottle, KeyedThrottleError};
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<String>::new(Quota::per_second(1)).unwrap();
    ///
    /// assert!(limits.try_acquire(&timer, "alice").is_ok());
    /// assert!(limits.try_acquire(&timer, "bob").is_ok(), "keys are independent");
    /// let err = limits.try_acquire(&timer, "alice").unwrap_err();
    /// assert!(matches!(err, KeyedThrottleError::RateLimited(_)));
    /// ```
    #[cfg(feature = "std")]
    std::hash::RandomState
}

keyed_throttle_struct! {
    /// A rate limit per key (no_std build: the hasher has no default, see the module docs).
    #[cfg(not(feature = "std"))]
}

#[cfg(feature = "std")]
impl<K: Hash + Eq> KeyedThrottle<K> {
    /// A keyed throttle giving every key `quota`, hashing keys with a randomly seeded
    /// [`RandomState`](std::hash::RandomState), holding at most 100 000 keys
    /// ([`with_max_keys`](KeyedThrottle::with_max_keys) changes it).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `rate`, `burst` or `period` when `quota` is invalid, as
    /// [`Throttle::new`](crate::throttle::Throttle::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    ///
    /// let limits = KeyedThrottle::<u64>::new(Quota::per_second(10).with_burst(5)).unwrap();
    /// assert_eq!(limits.quota(), Quota::per_second(10).with_burst(5));
    /// assert_eq!(KeyedThrottle::<u64>::new(Quota::per_second(0)).unwrap_err().parameter(), "rate");
    /// ```
    pub fn new(quota: Quota) -> Result<Self, ConfigError> {
        Self::with_hasher(quota, std::hash::RandomState::new())
    }
}

impl<K: Hash + Eq, S: BuildHasher> KeyedThrottle<K, S> {
    /// The default cap on keys held at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    ///
    /// assert_eq!(KeyedThrottle::<u64>::DEFAULT_MAX_KEYS, 100_000);
    /// ```
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

    /// A keyed throttle hashing keys with `hasher`.
    ///
    /// Keys usually come from the network: use a randomly seeded hasher (the module docs say
    /// why a fixed one is a hash-flooding risk).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `quota` is invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use std::hash::RandomState;
    ///
    /// let limits = KeyedThrottle::<u32, _>::with_hasher(Quota::per_second(1), RandomState::new())
    ///     .unwrap();
    /// assert_eq!(limits.len(), 0);
    /// ```
    pub fn with_hasher(quota: Quota, hasher: S) -> Result<Self, ConfigError> {
        let quota = KeyQuota::new(quota)?;
        Ok(Self {
            table: Table::new(Self::DEFAULT_MAX_KEYS, DEFAULT_SHARDS, hasher),
            quota,
            quotas: Quotas::One(quota),
            when_full: WhenFull::Refuse,
        })
    }

    /// Caps the keys held at once (an empty throttle is rebuilt: configure before use).
    ///
    /// The cap is split evenly over the shards, so [`len`](KeyedThrottle::len) never exceeds
    /// it; a new key is turned away (or admitted untracked, see
    /// [`when_full`](KeyedThrottle::when_full)) when its shard is full of live entries.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroUsize;
    /// use dike::keyed::{KeyedThrottle, KeyedThrottleError};
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<u32>::new(Quota::per_second(1))
    ///     .unwrap()
    ///     .with_max_keys(NonZeroUsize::new(1).unwrap());
    /// limits.try_acquire(&timer, &1).unwrap();
    /// let err = limits.try_acquire(&timer, &2).unwrap_err();
    /// assert!(matches!(err, KeyedThrottleError::TooManyKeys(_)));
    /// ```
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: NonZeroUsize) -> Self {
        let shards = self.table.requested_shards();
        self.table = self.table.resized(max_keys.get(), shards);
        self
    }

    /// Sets the number of lock shards (16 by default; fewer when the cap would give a shard under 64 keys): keys in different
    /// shards never contend. Rebuilds the empty throttle: configure before use.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroUsize;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    ///
    /// let limits = KeyedThrottle::<u32>::new(Quota::per_second(1))
    ///     .unwrap()
    ///     .with_shards(NonZeroUsize::new(64).unwrap());
    /// assert_eq!(limits.len(), 0);
    /// ```
    #[must_use]
    pub fn with_shards(mut self, shards: NonZeroUsize) -> Self {
        let max = self.table.max_keys();
        self.table = self.table.resized(max, shards.get());
        self
    }

    /// What a new key gets when its shard is full of live entries: [`WhenFull::Refuse`] (the
    /// default) or [`WhenFull::AdmitUntracked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroUsize;
    /// use dike::keyed::{KeyedThrottle, WhenFull};
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<u32>::new(Quota::per_second(1))
    ///     .unwrap()
    ///     .with_max_keys(NonZeroUsize::new(1).unwrap())
    ///     .when_full(WhenFull::AdmitUntracked);
    /// limits.try_acquire(&timer, &1).unwrap();
    /// limits.try_acquire(&timer, &2).unwrap();
    /// limits.try_acquire(&timer, &2).unwrap(); // untracked: not limited
    /// assert_eq!(limits.len(), 1);
    /// ```
    #[must_use]
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Chooses each key's quota with `f` (tiers by API key, for example), called when a key
    /// gets an entry (outside any lock). A key keeps its quota while its entry lives; an idle
    /// key that was forgotten gets `f`'s answer again on its next call.
    ///
    /// The quota given to [`new`](KeyedThrottle::new) remains the one
    /// [`quota`](KeyedThrottle::quota) reports.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::{KeyQuota, KeyedThrottle};
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// let free = KeyQuota::new(Quota::per_second(1)).unwrap();
    /// let pro = KeyQuota::new(Quota::per_second(1).with_burst(3)).unwrap();
    /// let limits = KeyedThrottle::<String>::new(Quota::per_second(1))
    ///     .unwrap()
    ///     .with_quota_fn(move |key: &String| if key.starts_with("pro-") { pro } else { free });
    ///
    /// let timer = ManualTimer::new();
    /// let admitted = |key| (0..5).filter(|_| limits.try_acquire(&timer, key).is_ok()).count();
    /// assert_eq!(admitted("pro-acme"), 3);
    /// assert_eq!(admitted("bob"), 1);
    /// ```
    #[must_use]
    pub fn with_quota_fn(mut self, f: impl Fn(&K) -> KeyQuota + Send + Sync + 'static) -> Self {
        self.quotas = Quotas::PerKey(Box::new(f));
        self
    }

    /// The quota given at construction.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    ///
    /// let limits = KeyedThrottle::<u8>::new(Quota::per_minute(30)).unwrap();
    /// assert_eq!(limits.quota().rate(), 30);
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota.quota()
    }

    /// The cap on keys held at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    ///
    /// let limits = KeyedThrottle::<u8>::new(Quota::per_minute(30)).unwrap();
    /// assert_eq!(limits.max_keys(), 100_000);
    /// ```
    pub fn max_keys(&self) -> usize {
        self.table.max_keys()
    }

    /// The hasher.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use core::hash::BuildHasher;
    ///
    /// let limits = KeyedThrottle::<u8>::new(Quota::per_minute(30)).unwrap();
    /// let _ = limits.hasher().hash_one(7u8);
    /// ```
    pub fn hasher(&self) -> &S {
        self.table.hasher()
    }

    /// Entries held now: live keys, plus idle ones no insert has dropped yet.
    /// Never more than [`max_keys`](KeyedThrottle::max_keys).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap();
    /// limits.try_acquire(&timer, &1).unwrap();
    /// assert_eq!(limits.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// `true` when no entry is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    ///
    /// assert!(KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every idle entry at `timer.now()` and releases unused memory. Never needed for
    /// boundedness (calls evict as they go); useful after a burst of keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<u32>::new(Quota::per_second(1)).unwrap();
    /// for key in 0..100 {
    ///     limits.try_acquire(&timer, &key).unwrap();
    /// }
    /// timer.advance(Duration::from_secs(1));
    /// limits.shrink_to_fit(&timer);
    /// assert_eq!(limits.len(), 0);
    /// ```
    pub fn shrink_to_fit<T: Timer>(&self, timer: T) {
        self.table.shrink_to_fit(nanos(timer.now()), &self.quota);
    }

    fn key_quota(&self, key: &K) -> KeyQuota {
        match &self.quotas {
            Quotas::One(q) => *q,
            Quotas::PerKey(f) => f(key),
        }
    }

    /// Runs `op` on the key's entry (created if absent, outside the lock first), under the
    /// shard's lock; an insert lets the clock hand examine a few entries. `Err` when a new key
    /// found its shard full of live entries.
    #[inline]
    fn with_entry<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: u64,
        mut op: impl FnMut(&mut Schedule) -> R,
    ) -> Result<R, TooManyKeys>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hit = self.table.with_hit(hash, key, now, &self.quota, &mut op);
        match hit {
            Some(r) => Ok(r),
            None => self.insert_entry(hash, key, now, op),
        }
    }

    /// A miss: builds the key and its state outside the lock (user code: `to_owned`, the quota
    /// function), then inserts them and runs `op` on the entry, unless a racing call inserted
    /// the key first (then `op` runs on that entry).
    #[inline(never)]
    fn insert_entry<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: u64,
        mut op: impl FnMut(&mut Schedule) -> R,
    ) -> Result<R, TooManyKeys>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let owned: K = key.to_owned();
        let fresh = Schedule::fresh(self.key_quota(&owned), &self.quota);
        let (r, spare) = self.table.shard(hash).with(|s| {
            if let Some(e) = s.find_mut(hash, key) {
                return (Ok(op(e)), Some(owned));
            }
            match s.insert(hash, owned, fresh, now, &self.quota, self.table.hasher()) {
                Ok(e) => (Ok(op(e)), None),
                Err(owned) => (Err(()), Some(owned)),
            }
        });
        drop(spare);
        r.map_err(|()| TooManyKeys::new(self.max_keys()))
    }

    /// Takes one slot of `key`'s quota now, or says when it could.
    ///
    /// A hit (a key with an entry) allocates nothing; a new key allocates its entry. Like
    /// [`Throttle::try_acquire`](crate::throttle::Throttle::try_acquire) it does not queue, so
    /// it may take a slot ahead of a key's waiting [`acquire`](KeyedThrottle::acquire).
    ///
    /// # Errors
    ///
    /// [`KeyedThrottleError::RateLimited`] when the key's quota has no room (with the instant
    /// it will); [`KeyedThrottleError::TooManyKeys`] when `key` is new and its shard is full of
    /// live entries under [`WhenFull::Refuse`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::keyed::{KeyedThrottle, KeyedThrottleError};
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<String>::new(Quota::per_second(2)).unwrap();
    /// limits.try_acquire(&timer, "10.0.0.1").unwrap();
    /// match limits.try_acquire(&timer, "10.0.0.1") {
    ///     Err(KeyedThrottleError::RateLimited(err)) => {
    ///         assert_eq!(err.wait(), Duration::from_millis(500))
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    #[inline]
    pub fn try_acquire<Q, T>(&self, timer: T, key: &Q) -> Result<(), KeyedThrottleError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Timer,
    {
        let now_d = timer.now();
        let now = nanos(now_d);
        let hash = self.table.hash(key);
        // A hit shares the shard's lock with other hits; a miss inserts under the exclusive one.
        let hit = self.table.read_hit(hash, key, now, &self.quota, |e| {
            e.check(now, 1, &self.quota)
        });
        let decision = match hit {
            Some(decision) => Ok(decision),
            None => self.insert_entry(hash, key, now, |e| e.check_mut(now, 1, &self.quota)),
        };
        match decision {
            Ok(Ok(())) => Ok(()),
            Ok(Err(at)) => Err(KeyedThrottleError::RateLimited(RateLimited::new(now_d, at))),
            Err(_) if self.when_full == WhenFull::AdmitUntracked => Ok(()),
            Err(full) => Err(KeyedThrottleError::TooManyKeys(full)),
        }
    }

    /// Waits for one slot of `key`'s quota: in FIFO order among this key's waiters, with one
    /// sleeper per key (the head of the key's line), exactly like
    /// [`Throttle::acquire`](crate::throttle::Throttle::acquire). Other keys never wait for it.
    ///
    /// The key's line exists only while someone waits on it: an uncontended call is admitted
    /// on its first poll under one lock section.
    ///
    /// # Errors
    ///
    /// [`TooManyKeys`] when `key` is new and its shard is full of live entries under
    /// [`WhenFull::Refuse`] (checked on the first poll).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future at any await point takes nothing from the key's quota,
    /// gives up its place in the key's line (a dropped head passes its turn on), and
    /// unregisters it so the key's entry can be forgotten once idle.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::keyed::KeyedThrottle;
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    /// use futures_util::FutureExt;
    ///
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<String>::new(Quota::per_second(1)).unwrap();
    /// limits.acquire(&timer, "alice").now_or_never().unwrap().unwrap();
    ///
    /// let mut second = Box::pin(limits.acquire(&timer, "alice"));
    /// assert!((&mut second).now_or_never().is_none(), "waits for alice's next slot");
    /// limits.acquire(&timer, "bob").now_or_never().unwrap().unwrap(); // bob is not held up
    /// timer.advance(Duration::from_secs(1));
    /// assert!(second.now_or_never().unwrap().is_ok());
    /// ```
    pub fn acquire<'a, Q, T>(&'a self, timer: T, key: &'a Q) -> KeyedAcquire<'a, K, Q, S, T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T: Timer,
    {
        KeyedAcquire {
            throttle: Handle::Borrowed(self),
            key: KeyRef::Borrowed(key),
            timer,
            waiting: None,
            state: State::Start,
        }
    }
}

/// The owned entry point for the tower layer: the future holds the throttle by `Arc` and the
/// key by value, so it is `'static`.
#[cfg(feature = "tower")]
impl<K: Hash + Eq + 'static, S: BuildHasher + 'static> KeyedThrottle<K, S> {
    pub(crate) fn acquire_shared<T: Timer>(
        self: &Arc<Self>,
        timer: T,
        key: K,
    ) -> KeyedAcquire<'static, K, K, S, T> {
        KeyedAcquire {
            throttle: Handle::Shared(Arc::clone(self)),
            key: KeyRef::Owned(key),
            timer,
            waiting: None,
            state: State::Start,
        }
    }
}

impl<K, S> fmt::Debug for KeyedThrottle<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedThrottle")
            .field("quota", &self.quota.quota())
            .field("per_key_quota", &matches!(self.quotas, Quotas::PerKey(_)))
            .field("max_keys", &self.table.max_keys())
            .field("when_full", &self.when_full)
            .finish_non_exhaustive()
    }
}

/// A waiter's registration on its key's entry: keeps the entry from being forgotten, and
/// unregisters on drop unless admitted.
struct Waiting<'a, K, S> {
    throttle: Handle<'a, KeyedThrottle<K, S>>,
    hash: u64,
    line: Arc<Gate>,
    registered: bool,
}

impl<K, S> Waiting<'_, K, S> {
    /// Runs `f` on this waiter's entry, found by identity (its line).
    fn with_entry<R>(&self, f: impl FnOnce(&mut Schedule) -> R) -> Option<R>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let line = &self.line;
        self.throttle.table.shard(self.hash).with(|s| {
            let e = s.find_by_mut(self.hash, |e| {
                e.line().is_some_and(|l| Arc::ptr_eq(l, line))
            })?;
            Some(f(e))
        })
    }
}

impl<K, S> Drop for Waiting<'_, K, S> {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        // The entry cannot have been forgotten while registered (waiters > 0).
        let line = &self.line;
        let spare = self.throttle.table.shard(self.hash).with(|s| {
            s.find_by_mut(self.hash, |e| {
                e.line().is_some_and(|l| Arc::ptr_eq(l, line))
            })?
            .leave()
        });
        drop(spare);
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Z> {
        Start,
        Queued { #[pin] enter: EnterOwned },
        Head { turn: Option<OwnedPermit>, #[pin] sleep: Option<Z> },
        Done,
    }
}

pin_project! {
    /// The future of [`KeyedThrottle::acquire`]: resolves when the key's quota admits the call,
    /// or to [`TooManyKeys`] when a new key finds its shard full.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::{KeyedAcquire, KeyedThrottle};
    /// use dike::throttle::Quota;
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let timer = ManualTimer::new();
    /// let limits = KeyedThrottle::<u32>::new(Quota::per_second(1)).unwrap();
    /// let wait: KeyedAcquire<'_, u32, u32, _, _> = limits.acquire(&timer, &7);
    /// wait.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedAcquire<'a, K, Q: ?Sized, S, T: Timer> {
        throttle: Handle<'a, KeyedThrottle<K, S>>,
        key: KeyRef<'a, K, Q>,
        timer: T,
        // Declared before `state`: a waiter unregisters before its turn is passed on.
        waiting: Option<Waiting<'a, K, S>>,
        #[pin]
        state: State<T::Sleep>,
    }
}

impl<K, Q: ?Sized, S, T: Timer> fmt::Debug for KeyedAcquire<'_, K, Q, S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Start => "unpolled",
            State::Queued { .. } => "queued",
            State::Head { sleep: Some(_), .. } => "sleeping",
            State::Head { .. } => "head",
            State::Done => "done",
        };
        f.debug_struct("KeyedAcquire")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<K, Q, S, T> Future for KeyedAcquire<'_, K, Q, S, T>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    S: BuildHasher,
    T: Timer,
{
    type Output = Result<(), TooManyKeys>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let throttle: &KeyedThrottle<K, S> = this.throttle;
        loop {
            match this.state.as_mut().project() {
                StateProj::Start => {
                    let now = nanos(this.timer.now());
                    let hash = throttle.table.hash(this.key.get());
                    match throttle.with_entry(hash, this.key.get(), now, |e| {
                        e.start(now, 1, &throttle.quota)
                    }) {
                        Ok(None) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(()));
                        }
                        Ok(Some(line)) => {
                            let enter = line.enter_owned();
                            *this.waiting = Some(Waiting {
                                throttle: this.throttle.clone(),
                                hash,
                                line,
                                registered: true,
                            });
                            this.state.set(State::Queued { enter });
                        }
                        Err(full) => {
                            this.state.set(State::Done);
                            return Poll::Ready(match throttle.when_full {
                                WhenFull::AdmitUntracked => Ok(()),
                                WhenFull::Refuse => Err(full),
                            });
                        }
                    }
                }
                StateProj::Queued { enter } => {
                    // The line is a gate of one permit with an unbounded queue: it never
                    // refuses. Were it to, the waiter would wait on the schedule unordered.
                    let turn = ready!(enter.poll(cx)).ok();
                    this.state.set(State::Head { turn, sleep: None });
                }
                StateProj::Head { sleep, .. } => {
                    let Some(waiting) = this.waiting.as_mut() else {
                        unreachable!("a head is registered")
                    };
                    ready!(poll_schedule(waiting, this.timer, sleep, cx));
                    *this.waiting = None;
                    // Admitted and unregistered: dropping the turn wakes the next waiter.
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(()));
                }
                StateProj::Done => panic!("`KeyedAcquire` polled after completion"),
            }
        }
    }
}

/// The head of a key's line waits on the key's schedule.
fn poll_schedule<K: Hash + Eq, S: BuildHasher, T: Timer>(
    waiting: &mut Waiting<'_, K, S>,
    timer: &T,
    mut sleep: Pin<&mut Option<T::Sleep>>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    for _ in 0..3 {
        if let Some(pending) = sleep.as_mut().as_pin_mut() {
            ready!(pending.poll(cx));
            sleep.set(None);
        }
        let now = nanos(timer.now());
        let default = waiting.throttle.quota;
        let decision = waiting.with_entry(|e| match e.check_mut(now, 1, &default) {
            Ok(()) => Ok(e.leave()),
            Err(at) => Err(at),
        });
        match decision {
            Some(Ok(spare)) => {
                waiting.registered = false;
                drop(spare);
                return Poll::Ready(());
            }
            // The end of time: never admitted, so wait for ever without a sleep.
            Some(Err(NEVER)) => return Poll::Pending,
            Some(Err(at)) => sleep.set(Some(timer.sleep_until(Duration::from_nanos(at)))),
            // Unreachable (a registered waiter's entry is never forgotten); admit as a fresh
            // key would rather than wait for ever.
            None => {
                waiting.registered = false;
                return Poll::Ready(());
            }
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}
