//! Limits per key (user, IP address, API key, tenant) in bounded memory, with no cleanup task.
//!
//! - [`KeyedThrottle`]: a [`Quota`] per key (GCRA, exactly a
//!   [`Throttle`](crate::throttle::Throttle) per key); `try_acquire` or a FIFO `acquire` per
//!   key.
//! - [`KeyedGate`]: at most N calls in flight per key (a [`Gate`](crate::gate::Gate) per
//!   key), rejecting, waiting FIFO per key or waiting with a timeout, optionally under one
//!   shared global gate.
//!
//! Both take lookups as `&Q` where `K: Borrow<Q>` (a `KeyedThrottle<String>` is asked with a
//! `&str`): a call on a key that has an entry allocates nothing.
//!
//! # Eviction: bounded memory, no background task
//!
//! An entry may be dropped when its state is *indistinguishable from a fresh key's*:
//!
//! - throttle: nobody waits on the key and its theoretical arrival time `tat` is at or before
//!   now. GCRA starts every decision from `max(tat, now)`; a fresh key has `tat = 0`, so for
//!   `tat <= now` both start from `now` and every later decision is the same;
//! - gate: no permit of the key is held and nobody waits or is about to.
//!
//! Dropping such an entry therefore changes no decision: a forgotten key's next call creates a
//! fresh entry that decides exactly as the old one would have. Nothing is ever dropped that
//! could grant more than a fresh key gets.
//!
//! The calls do the evicting, with a *clock hand* per shard (the CLOCK page-replacement
//! algorithm): the hand goes round the shard's entries, drops the idle ones it meets and
//! passes the others. Each entry has a *referenced* bit, set by every call that finds the
//! entry (a *hit*) and cleared by the hand as it passes: an idle entry that was hit since the
//! hand last came by gets a second chance. Two kinds of call move the hands:
//!
//! - **New keys.** The table only grows when a new key is inserted, so each insert pays for
//!   its share: once a shard holds an eighth of its share of the cap (its *slack*), every
//!   insert into it moves the hand past the next entry kept, dropping the idle entries it
//!   meets on the way (at most 4; paid in batches of up to 16 inserts, one run along
//!   neighbouring buckets being cheaper than scattered steps). A new key arriving at a full
//!   shard moves the hand past up to 64 more entries before giving up, and then drops every
//!   idle entry it meets, referenced or not: a new key is refused only if every entry
//!   examined is live.
//! - **Hits.** Every 128th hit on a shard moves a hand past 2 entries kept, dropping up to 32
//!   idle ones. The shards take turns, whichever shards the hits land on, so a shard that gets
//!   no traffic is swept as often as a busy one: idle keys disappear under any traffic, on any
//!   keys, with no sweep call and no spawned task. The move takes the shard's lock only if it
//!   is free at once, so a hit never waits for it (a move skipped under contention is made up
//!   by later ones).
//!
//! A warm key is not dropped and re-inserted: the hits move the hand past one entry per 64
//! hits, so it comes round to an entry once every `64 × entries` hits on the table, and a key
//! hit at least that often always has its bit set when the hand arrives. This holds however
//! generous the quota, even one under which every entry is idle a nanosecond after its call. A
//! key seen once is not protected: a scanner's or a flood's keys go on the hand's first pass
//! once idle. And dropping a warm idle key would change nothing anyway but the cost of its
//! next call: an idle entry that is hit again decides exactly as a fresh one would (that is
//! what idle means). The work per call is bounded: a few entries examined, amortized.
//!
//! Why memory stays bounded: an entry is only ever added by an insert, and never more than
//! `max_keys` are held. Past the slack, every insert adds one entry and can drop up to 4 idle
//! ones, and the hand goes round a shard's entries once every (entries) inserts, so an idle
//! entry lasts at most about two rounds (one if it was never hit twice): a shard holds about
//! its slack, or its live keys plus the keys that arrived during a round or two, whichever is
//! more. Below the slack, hits drain idle entries at up to one per 4 hits on the table; with
//! no traffic at all nothing runs, and idle entries stay until traffic resumes or
//! [`shrink_to_fit`](KeyedThrottle::shrink_to_fit) is called.
//!
//! Everything about one key happens under its shard's lock: a call racing with the eviction of
//! its own key either finds the entry (and is decided on it) or finds none and starts from the
//! fresh state the evicted entry was equivalent to; it is never lost nor counted twice. With
//! `std` (on targets with 64-bit atomics) the shard lock is a read-write lock: a
//! [`try_acquire`](KeyedThrottle::try_acquire) on a key that has an entry takes it shared and
//! spends the slot with a compare-and-swap on the key's `tat` (as
//! [`Throttle`](crate::throttle::Throttle) does), so hits never wait for each other and a
//! thread preempted inside a hit holds up no other; inserts, evictions, waiters and the gate
//! take it exclusively, so eviction never overlaps a hit. Without `std` it is the crate's
//! critical-section lock. A
//! waiting call registers on its key's entry, which is never idle while a call is registered.
//!
//! "Idle" is judged at the evicting call's clock reading, and a racing call may have read the
//! clock a little earlier: for it, the evicted `tat` could still lie ahead. So each shard keeps
//! a *floor*, the largest `tat` it has evicted, and a new entry starts from it instead of 0.
//! A call whose `now` is at or past the floor (every call but such stale ones) decides exactly
//! as a fresh key; a stale one decides as the evicted entry would have. Either way no key is
//! ever admitted more than its quota allows over any window of time (a threaded test checks
//! this window bound for every key while entries come and go).
//!
//! [`len`](KeyedThrottle::len) and [`shrink_to_fit`](KeyedThrottle::shrink_to_fit) exist for
//! those who want them; boundedness needs neither.
//!
//! # The cap on keys
//!
//! At most `max_keys` entries are held (100 000 by default), split evenly across the lock
//! shards (16 by default, fewer so that each holds at least 64 keys), so `len()` never exceeds
//! it. When a new key's shard is full and the clock hand finds no idle entry among the next 64,
//! the policy decides ([`WhenFull`]):
//!
//! - [`WhenFull::Refuse`] (default): the call fails with [`TooManyKeys`]. Every admission stays
//!   within its key's quota (the limiter fails closed), and keys that already have live entries
//!   are unaffected: a flood of new keys (an attacker rotating through an IPv6 /64) is turned
//!   away, not the steady clients.
//! - [`WhenFull::AdmitUntracked`]: the call is decided as a fresh key would be (admitted) and
//!   no state is kept. Nobody is refused for the cap, but a key without an entry is not
//!   limited: whoever fills the table turns the limit off for new keys, which is why it is not
//!   the default.
//!
//! A key forgotten while idle competes with new keys for a slot when it returns.
//!
//! # Hashing
//!
//! Keys usually come from the network, so the default hasher (with `std`) is
//! [`RandomState`](std::hash::RandomState), seeded randomly per map. Without `std` there is no
//! source of randomness, so there is no default and the caller passes a
//! [`BuildHasher`](core::hash::BuildHasher) (`with_hasher`): seed it from the platform's RNG.
//! A fixed, publicly known hasher is a hash-flooding risk: an attacker can choose keys that all
//! hash alike, and then they share one shard (filling its share of the cap, refusing other new
//! keys there) and one probe chain (every lookup compares against all of them).
//!
//! The key type's `Hash`, `Eq`, and `Drop` run inside the shard's lock (as in any concurrent
//! map); they must not call back into the same limiter. `to_owned` and the per-key quota
//! function run outside it.
//!
//! # Cancel safety
//!
//! Every waiting future ([`KeyedAcquire`], [`KeyedEnter`], [`KeyedEnterTimeout`]) may be dropped
//! at any await point: it takes nothing from the key's quota, holds no permit, leaves its key's
//! line (a dropped head passes its turn on) and unregisters from its key's entry, so the entry
//! becomes idle and can be forgotten.
//!
//! # Examples
//!
//! ```
//! use dike::keyed::{KeyedGate, KeyedThrottle};
//! use dike::throttle::Quota;
//! use dike::time::ManualTimer;
//!
//! let timer = ManualTimer::new();
//! let per_ip = KeyedThrottle::<String>::new(Quota::per_second(5)).unwrap();
//! let per_tenant = KeyedGate::<u32>::new(2).unwrap();
//!
//! per_ip.try_acquire(&timer, "192.0.2.1").unwrap();
//! let _a = per_tenant.try_enter(&7).unwrap();
//! let _b = per_tenant.try_enter(&7).unwrap();
//! assert!(per_tenant.try_enter(&7).is_err(), "2 in flight for tenant 7");
//! assert!(per_tenant.try_enter(&8).is_ok());
//! ```

use core::fmt;

use crate::error::{ConfigError, TooManyCalls};
use crate::throttle::{Quota, RateLimited};

mod gate;
mod table;
mod throttle;

pub use gate::{KeyedEnter, KeyedEnterTimeout, KeyedGate, KeyedPermit};
pub use throttle::{KeyedAcquire, KeyedThrottle};

/// A validated [`Quota`] for [`KeyedThrottle::with_quota_fn`]: checked once, when built, so a
/// per-key quota can never be invalid at the moment a key arrives.
///
/// # Examples
///
/// ```
/// use dike::keyed::KeyQuota;
/// use dike::throttle::Quota;
///
/// let tier = KeyQuota::new(Quota::per_minute(600).with_burst(20)).unwrap();
/// assert_eq!(tier.quota().burst(), 20);
/// assert_eq!(KeyQuota::new(Quota::per_second(1).with_burst(0)).unwrap_err().parameter(), "burst");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyQuota {
    quota: Quota,
    interval: u64,
    capacity: u64,
}

impl KeyQuota {
    /// Validates `quota`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `rate`, `burst` or `period`, as
    /// [`Throttle::new`](crate::throttle::Throttle::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyQuota;
    /// use dike::throttle::Quota;
    ///
    /// assert!(KeyQuota::new(Quota::per_second(3)).is_ok());
    /// ```
    pub const fn new(quota: Quota) -> Result<Self, ConfigError> {
        match quota.params() {
            Ok((interval, capacity)) => Ok(Self {
                quota,
                interval,
                capacity,
            }),
            Err(err) => Err(err),
        }
    }

    /// The quota.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyQuota;
    /// use dike::throttle::Quota;
    ///
    /// assert_eq!(KeyQuota::new(Quota::per_second(3)).unwrap().quota().rate(), 3);
    /// ```
    pub const fn quota(&self) -> Quota {
        self.quota
    }
}

/// What a new key gets when its shard is full of live entries. See the
/// [module docs](self#the-cap-on-keys) for why [`Refuse`](WhenFull::Refuse) is the default.
///
/// # Examples
///
/// ```
/// use dike::keyed::WhenFull;
///
/// assert_eq!(WhenFull::default(), WhenFull::Refuse);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Fail the call with [`TooManyKeys`]: every admission stays within its key's limit.
    #[default]
    Refuse,
    /// Admit the call as a fresh key would be admitted, keeping no state for the key: nobody
    /// is refused for the cap, but keys without an entry are not limited.
    AdmitUntracked,
}

/// A new key was turned away: its shard of the table was full of live entries.
///
/// # Examples
///
/// ```
/// use core::num::NonZeroUsize;
/// use dike::keyed::{KeyedGate, KeyedGateError};
///
/// let gate = KeyedGate::<u8>::new(1).unwrap().with_max_keys(NonZeroUsize::new(1).unwrap());
/// let _held = gate.try_enter(&1).unwrap();
/// let Err(KeyedGateError::TooManyKeys(err)) = gate.try_enter(&2) else { panic!() };
/// assert_eq!(err.max_keys(), 1);
/// assert_eq!(err.to_string(), "too many keys: all 1 entries hold live state");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TooManyKeys {
    max_keys: usize,
}

impl TooManyKeys {
    pub(crate) const fn new(max_keys: usize) -> Self {
        Self { max_keys }
    }

    /// The limiter's cap on keys.
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
    /// let limits = KeyedThrottle::<u8>::new(Quota::per_second(1))
    ///     .unwrap()
    ///     .with_max_keys(NonZeroUsize::new(1).unwrap());
    /// limits.try_acquire(&timer, &1).unwrap();
    /// let Err(KeyedThrottleError::TooManyKeys(err)) = limits.try_acquire(&timer, &2) else {
    ///     panic!()
    /// };
    /// assert_eq!(err.max_keys(), 1);
    /// ```
    pub const fn max_keys(&self) -> usize {
        self.max_keys
    }
}

impl fmt::Display for TooManyKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many keys: all {} entries hold live state",
            self.max_keys
        )
    }
}

impl core::error::Error for TooManyKeys {}

/// Why [`KeyedThrottle::try_acquire`] refused.
///
/// # Examples
///
/// ```
/// use dike::keyed::{KeyedThrottle, KeyedThrottleError};
/// use dike::throttle::Quota;
/// use dike::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let limits = KeyedThrottle::<u8>::new(Quota::per_second(1)).unwrap();
/// limits.try_acquire(&timer, &1).unwrap();
/// match limits.try_acquire(&timer, &1) {
///     Err(KeyedThrottleError::RateLimited(err)) => assert!(!err.is_never()),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyedThrottleError {
    /// The key's quota has no room now.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The key is new and the table is full of live entries.
    #[error(transparent)]
    TooManyKeys(#[from] TooManyKeys),
}

/// Why a [`KeyedGate`] call was turned away.
///
/// # Examples
///
/// ```
/// use dike::error::TooManyCallsKind;
/// use dike::keyed::{KeyedGate, KeyedGateError};
///
/// let gate = KeyedGate::<u8>::new(1).unwrap();
/// let _held = gate.try_enter(&1).unwrap();
/// match gate.try_enter(&1) {
///     Err(KeyedGateError::TooManyCalls(err)) => assert_eq!(err.kind(), TooManyCallsKind::Full),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyedGateError {
    /// The key's gate (or the global gate) is full, its queue is full, or the wait timed out.
    #[error(transparent)]
    TooManyCalls(#[from] TooManyCalls),
    /// The key is new and the table is full of live entries.
    #[error(transparent)]
    TooManyKeys(#[from] TooManyKeys),
}

/// How a future or a permit reaches its limiter: borrowed (the public methods) or through an
/// `Arc` (the tower layers' owned futures, which must be `'static`).
pub(crate) enum Handle<'a, T> {
    Borrowed(&'a T),
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    Shared(alloc::sync::Arc<T>),
}

impl<T> Clone for Handle<'_, T> {
    fn clone(&self) -> Self {
        match self {
            Self::Borrowed(t) => Self::Borrowed(t),
            Self::Shared(t) => Self::Shared(alloc::sync::Arc::clone(t)),
        }
    }
}

impl<T> core::ops::Deref for Handle<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            Self::Borrowed(t) => t,
            Self::Shared(t) => t,
        }
    }
}

/// The key a waiting future looks up: borrowed, or owned by the future (tower layers).
pub(crate) enum KeyRef<'a, K, Q: ?Sized> {
    Borrowed(&'a Q),
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    Owned(K),
}

impl<K: core::borrow::Borrow<Q>, Q: ?Sized> KeyRef<'_, K, Q> {
    #[inline]
    pub(crate) fn get(&self) -> &Q {
        match self {
            Self::Borrowed(q) => q,
            Self::Owned(k) => k.borrow(),
        }
    }
}
