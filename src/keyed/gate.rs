//! [`KeyedGate`]: a concurrency limit per key.

use alloc::borrow::ToOwned;
use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::hash::{BuildHasher, Hash};
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::table::{DEFAULT_SHARDS, Idle, Table};
use super::{Handle, KeyRef, KeyedGateError, TooManyKeys, WhenFull};
use crate::error::{ConfigError, ConfigValue, TooManyCalls, TooManyCallsKind};
use crate::gate::{EnterOwned, Gate, OwnedPermit};
use crate::time::Timer;
use alloc::sync::Arc;

/// One key's state: its gate and the calls registered on it (holding a permit, waiting, or
/// about to try). The entry is idle when nobody is registered: then the gate has no holder
/// and no waiter, exactly like a fresh key's.
pub(super) struct Holders {
    gate: Arc<Gate>,
    users: usize,
}

impl Idle for Holders {
    type Ctx = ();

    #[inline]
    fn is_idle(&self, _now: u64, (): &()) -> bool {
        self.users == 0
    }
}

macro_rules! keyed_gate_struct {
    ($(#[$doc:meta])* $($default:ty)?) => {
        $(#[$doc])*
        pub struct KeyedGate<K, S $(= $default)?> {
            table: Table<K, Holders, S>,
            limit: usize,
            global: Option<Arc<Gate>>,
            when_full: WhenFull,
        }
    };
}

keyed_gate_struct! {
    /// At most `limit` calls in flight per key (tenant, user, IP address), in bounded memory,
    /// with no cleanup task; optionally under one shared global [`Gate`].
    ///
    /// Each key behaves as its own [`Gate`]: [`try_enter`](KeyedGate::try_enter) rejects,
    /// [`enter`](KeyedGate::enter) waits in FIFO order among the key's waiters,
    /// [`enter_timeout`](KeyedGate::enter_timeout) waits at most a given time. Permits are
    /// RAII: dropping one frees the slot. A key with no permit held and nobody waiting is
    /// forgotten by the calls themselves (see the [module docs](super)).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// let per_tenant = KeyedGate::<String>::new(2).unwrap();
    /// let a = per_tenant.try_enter("acme").unwrap();
    /// let _b = per_tenant.try_enter("acme").unwrap();
    /// assert!(per_tenant.try_enter("acme").is_err());
    /// assert!(per_tenant.try_enter("globex").is_ok(), "other tenants are not held up");
    /// drop(a);
    /// assert!(per_tenant.try_enter("acme").is_ok());
    /// ```
    #[cfg(feature = "std")]
    std::hash::RandomState
}

keyed_gate_struct! {
    /// A concurrency limit per key (no_std build: the hasher has no default, see the module
    /// docs).
    #[cfg(not(feature = "std"))]
}

#[cfg(feature = "std")]
impl<K: Hash + Eq> KeyedGate<K> {
    /// A keyed gate admitting at most `limit` concurrent calls per key, hashing keys with a
    /// randomly seeded [`RandomState`](std::hash::RandomState), holding at most 100 000 keys.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `limit` when it is 0 (no call could ever enter).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// assert_eq!(KeyedGate::<u32>::new(3).unwrap().limit(), 3);
    /// assert_eq!(KeyedGate::<u32>::new(0).unwrap_err().parameter(), "limit");
    /// ```
    pub fn new(limit: usize) -> Result<Self, ConfigError> {
        Self::with_hasher(limit, std::hash::RandomState::new())
    }
}

impl<K: Hash + Eq, S: BuildHasher> KeyedGate<K, S> {
    /// The default cap on keys held at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// assert_eq!(KeyedGate::<u64>::DEFAULT_MAX_KEYS, 100_000);
    /// ```
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

    /// A keyed gate hashing keys with `hasher` (use a randomly seeded one: see the module
    /// docs).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `limit` when it is 0 or above [`Gate::MAX_LIMIT`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    /// use std::hash::RandomState;
    ///
    /// let gate = KeyedGate::<u32, _>::with_hasher(1, RandomState::new()).unwrap();
    /// assert!(gate.is_empty());
    /// ```
    pub fn with_hasher(limit: usize, hasher: S) -> Result<Self, ConfigError> {
        if limit == 0 || limit > Gate::MAX_LIMIT {
            return Err(ConfigError::new(
                "limit",
                ConfigValue::Int(limit as i128),
                "between 1 and Gate::MAX_LIMIT",
            ));
        }
        Ok(Self {
            table: Table::new(Self::DEFAULT_MAX_KEYS, DEFAULT_SHARDS, hasher),
            limit,
            global: None,
            when_full: WhenFull::Refuse,
        })
    }

    /// Caps the keys held at once (the empty gate is rebuilt: configure before use). See
    /// [`KeyedThrottle::with_max_keys`](super::KeyedThrottle::with_max_keys).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroUsize;
    /// use dike::keyed::KeyedGate;
    ///
    /// let gate = KeyedGate::<u32>::new(1).unwrap().with_max_keys(NonZeroUsize::new(10).unwrap());
    /// assert_eq!(gate.max_keys(), 10);
    /// ```
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: NonZeroUsize) -> Self {
        let shards = self.table.requested_shards();
        self.table = self.table.resized(max_keys.get(), shards);
        self
    }

    /// Sets the number of lock shards (16 by default; fewer when the cap would give a shard under 64 keys). Configure before
    /// use.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroUsize;
    /// use dike::keyed::KeyedGate;
    ///
    /// let gate = KeyedGate::<u32>::new(1).unwrap().with_shards(NonZeroUsize::new(4).unwrap());
    /// assert!(gate.try_enter(&1).is_ok());
    /// ```
    #[must_use]
    pub fn with_shards(mut self, shards: NonZeroUsize) -> Self {
        let max = self.table.max_keys();
        self.table = self.table.resized(max, shards.get());
        self
    }

    /// What a new key gets when its shard is full of live entries (default
    /// [`WhenFull::Refuse`]). Under [`WhenFull::AdmitUntracked`] it gets a permit that only
    /// the global gate (if any) limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::num::NonZeroUsize;
    /// use dike::keyed::{KeyedGate, WhenFull};
    ///
    /// let gate = KeyedGate::<u32>::new(1)
    ///     .unwrap()
    ///     .with_max_keys(NonZeroUsize::new(1).unwrap())
    ///     .when_full(WhenFull::AdmitUntracked);
    /// let _a = gate.try_enter(&1).unwrap();
    /// let _b = gate.try_enter(&2).unwrap();
    /// let _c = gate.try_enter(&2).unwrap(); // untracked
    /// ```
    #[must_use]
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Puts every key under one shared `global` gate as well: a call holds a permit of its key
    /// and one of `global`. Key first, then global, always in that order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::gate::Gate;
    /// use dike::keyed::KeyedGate;
    ///
    /// let global = Arc::new(Gate::new(3));
    /// let gate = KeyedGate::<u32>::new(2).unwrap().with_global(global.clone());
    /// let _a = gate.try_enter(&1).unwrap();
    /// let _b = gate.try_enter(&1).unwrap();
    /// let _c = gate.try_enter(&2).unwrap();
    /// assert!(gate.try_enter(&3).is_err(), "3 in flight in total");
    /// assert_eq!(global.stats().in_use, 3);
    /// ```
    #[must_use]
    pub fn with_global(mut self, global: Arc<Gate>) -> Self {
        self.global = Some(global);
        self
    }

    /// The per-key limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// assert_eq!(KeyedGate::<u8>::new(4).unwrap().limit(), 4);
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The cap on keys held at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// assert_eq!(KeyedGate::<u8>::new(4).unwrap().max_keys(), 100_000);
    /// ```
    pub fn max_keys(&self) -> usize {
        self.table.max_keys()
    }

    /// Entries held now (keys with a permit held or a waiter, plus idle ones no insert has
    /// dropped yet). Never more than [`max_keys`](KeyedGate::max_keys).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// let gate = KeyedGate::<u8>::new(4).unwrap();
    /// let _p = gate.try_enter(&1).unwrap();
    /// assert_eq!(gate.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// `true` when no entry is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// assert!(KeyedGate::<u8>::new(4).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every idle entry and releases unused memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// let gate = KeyedGate::<u32>::new(1).unwrap();
    /// for key in 0..10 {
    ///     drop(gate.try_enter(&key).unwrap());
    /// }
    /// gate.shrink_to_fit();
    /// assert_eq!(gate.len(), 0);
    /// ```
    pub fn shrink_to_fit(&self) {
        self.table.shrink_to_fit(0, &());
    }

    /// Registers a call on the key's entry (creating it: the gate is allocated outside the
    /// lock). `Ok(None)`: the table is full and the policy admits untracked.
    fn register<'a, Q>(
        keyed: &Handle<'a, Self>,
        key: &Q,
    ) -> Result<Option<User<'a, K, S>>, TooManyKeys>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let this: &Self = keyed;
        let hash = this.table.hash(key);
        let shard = this.table.shard(hash);
        let join = |h: &mut Holders| {
            h.users += 1;
            h.gate.clone()
        };
        let hit = this.table.with_hit(hash, key, 0, &(), join);
        let gate = match hit {
            Some(gate) => gate,
            None => {
                let owned: K = key.to_owned();
                let fresh = Holders {
                    gate: Arc::new(Gate::new(this.limit)),
                    users: 0,
                };
                let (r, spare) = shard.with(|s| {
                    if let Some(h) = s.find_mut(hash, key) {
                        return (Some(join(h)), Some(owned));
                    }
                    match s.insert(hash, owned, fresh, 0, &(), this.table.hasher()) {
                        Ok(h) => (Some(join(h)), None),
                        Err(owned) => (None, Some(owned)),
                    }
                });
                drop(spare);
                match r {
                    Some(gate) => gate,
                    None if this.when_full == WhenFull::AdmitUntracked => return Ok(None),
                    None => return Err(TooManyKeys::new(this.max_keys())),
                }
            }
        };
        Ok(Some(User {
            keyed: keyed.clone(),
            hash,
            gate,
        }))
    }

    /// Enters `key`'s gate without waiting (and the global gate, if any).
    ///
    /// A hit allocates nothing; a new key allocates its entry and gate.
    ///
    /// # Errors
    ///
    /// [`KeyedGateError::TooManyCalls`] (kind `Full`) when the key already has `limit` calls
    /// in flight or the global gate is full; [`KeyedGateError::TooManyKeys`] when the key is
    /// new and its shard is full of live entries under [`WhenFull::Refuse`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    ///
    /// let gate = KeyedGate::<String>::new(1).unwrap();
    /// let permit = gate.try_enter("tenant-1").unwrap();
    /// assert!(gate.try_enter("tenant-1").is_err());
    /// drop(permit);
    /// assert!(gate.try_enter("tenant-1").is_ok());
    /// ```
    pub fn try_enter<Q>(&self, key: &Q) -> Result<KeyedPermit<'_, K, S>, KeyedGateError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.try_enter_in(Handle::Borrowed(self), key)
    }

    /// [`try_enter`](KeyedGate::try_enter) through `keyed` (this gate, borrowed or shared).
    fn try_enter_in<'a, Q>(
        &self,
        keyed: Handle<'a, Self>,
        key: &Q,
    ) -> Result<KeyedPermit<'a, K, S>, KeyedGateError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let user = Self::register(&keyed, key)?;
        let key_permit = match &user {
            Some(user) => Some(user.gate.try_enter_owned()?),
            None => None,
        };
        let global = match &self.global {
            Some(global) => Some(global.try_enter_owned()?),
            None => None,
        };
        Ok(KeyedPermit {
            global,
            key: key_permit,
            _user: user,
        })
    }

    /// Waits for a permit of `key`'s gate, in FIFO order among the key's waiters (then for
    /// the global gate's, if any). Other keys never wait for it.
    ///
    /// # Errors
    ///
    /// [`KeyedGateError::TooManyKeys`] when the key is new and its shard is full of live
    /// entries (on the first poll); [`KeyedGateError::TooManyCalls`] only if the global gate
    /// bounds its waiters (`QueueFull`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped at any await point it holds no permit and no place in any queue,
    /// and unregisters from its key's entry (which can then be forgotten once idle).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::KeyedGate;
    /// use futures_util::FutureExt;
    ///
    /// let gate = KeyedGate::<u32>::new(1).unwrap();
    /// let held = gate.try_enter(&1).unwrap();
    /// let mut wait = Box::pin(gate.enter(&1));
    /// assert!((&mut wait).now_or_never().is_none());
    /// drop(held);
    /// assert!(wait.now_or_never().unwrap().is_ok());
    /// ```
    pub fn enter<'a, Q>(&'a self, key: &'a Q) -> KeyedEnter<'a, K, Q, S>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        KeyedEnter {
            keyed: Handle::Borrowed(self),
            key: KeyRef::Borrowed(key),
            state: EnterState::Start,
            user: None,
        }
    }

    /// As [`enter`](KeyedGate::enter), giving up at `timer.now() + timeout` with
    /// [`TooManyCalls`] of kind `TimedOut`.
    ///
    /// # Errors
    ///
    /// As [`enter`](KeyedGate::enter), plus `TimedOut` at the deadline.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`enter`](KeyedGate::enter); a timed-out call leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::error::TooManyCallsKind;
    /// use dike::keyed::{KeyedGate, KeyedGateError};
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let timer = ManualTimer::new();
    /// let gate = KeyedGate::<u32>::new(1).unwrap();
    /// let _held = gate.try_enter(&1).unwrap();
    /// let wait = gate.enter_timeout(&timer, Duration::from_millis(10), &1);
    /// timer.advance(Duration::from_millis(10));
    /// let Err(KeyedGateError::TooManyCalls(err)) = wait.await else { panic!() };
    /// assert_eq!(err.kind(), TooManyCallsKind::TimedOut);
    /// # });
    /// ```
    pub fn enter_timeout<'a, Q, T: Timer>(
        &'a self,
        timer: &T,
        timeout: Duration,
        key: &'a Q,
    ) -> KeyedEnterTimeout<'a, K, Q, S, T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let deadline = timer.now().saturating_add(timeout);
        KeyedEnterTimeout {
            enter: Some(self.enter(key)),
            sleep: None,
            timer: timer.clone(),
            deadline: Some(deadline),
            limit: self.limit,
            done: false,
        }
    }
}

/// Owned entry points for the tower layer: the permit and the waiting future hold the gate
/// by `Arc` and the key by value, so they are `'static`.
#[cfg(feature = "tower")]
impl<K: Hash + Eq + 'static, S: BuildHasher + 'static> KeyedGate<K, S> {
    pub(crate) fn try_enter_shared<Q>(
        self: &Arc<Self>,
        key: &Q,
    ) -> Result<KeyedPermit<'static, K, S>, KeyedGateError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.try_enter_in(Handle::Shared(Arc::clone(self)), key)
    }

    /// Waits for `key`'s permit, up to `timeout` on `timer` when given.
    pub(crate) fn enter_shared<T: Timer>(
        self: &Arc<Self>,
        key: K,
        timer: &T,
        timeout: Option<Duration>,
    ) -> KeyedEnterTimeout<'static, K, K, S, T> {
        KeyedEnterTimeout {
            enter: Some(KeyedEnter {
                keyed: Handle::Shared(Arc::clone(self)),
                key: KeyRef::Owned(key),
                state: EnterState::Start,
                user: None,
            }),
            sleep: None,
            timer: timer.clone(),
            deadline: timeout.map(|t| timer.now().saturating_add(t)),
            limit: self.limit,
            done: false,
        }
    }
}

impl<K, S> fmt::Debug for KeyedGate<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGate")
            .field("limit", &self.limit)
            .field("max_keys", &self.table.max_keys())
            .field("global", &self.global.as_ref().map(|g| g.limit()))
            .field("when_full", &self.when_full)
            .finish_non_exhaustive()
    }
}

/// A call registered on its key's entry; unregisters on drop.
struct User<'a, K, S> {
    keyed: Handle<'a, KeyedGate<K, S>>,
    hash: u64,
    gate: Arc<Gate>,
}

impl<K, S> Drop for User<'_, K, S> {
    fn drop(&mut self) {
        let gate = &self.gate;
        self.keyed.table.shard(self.hash).with(|s| {
            if let Some(h) = s.find_by_mut(self.hash, |h| Arc::ptr_eq(&h.gate, gate)) {
                h.users -= 1;
            }
        });
    }
}

/// A permit of a [`KeyedGate`]: one slot of its key (and of the global gate, if any), freed
/// on drop.
///
/// # Examples
///
/// ```
/// use dike::keyed::{KeyedGate, KeyedPermit};
///
/// let gate = KeyedGate::<u8>::new(1).unwrap();
/// let permit: KeyedPermit<'_, u8, _> = gate.try_enter(&1).unwrap();
/// drop(permit);
/// assert!(gate.try_enter(&1).is_ok());
/// ```
#[clippy::has_significant_drop]
#[must_use = "the permit is released as soon as it is dropped"]
pub struct KeyedPermit<'a, K, S> {
    // Drop order: the global slot, then the key's, then the registration (an entry is never
    // idle while its gate has a holder).
    global: Option<OwnedPermit>,
    key: Option<OwnedPermit>,
    _user: Option<User<'a, K, S>>,
}

impl<K, S> fmt::Debug for KeyedPermit<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPermit")
            .field("tracked", &self.key.is_some())
            .field("global", &self.global.is_some())
            .finish()
    }
}

pin_project! {
    #[project = EnterProj]
    enum EnterState {
        Start,
        Key { #[pin] enter: EnterOwned },
        Global { key: Option<OwnedPermit>, #[pin] enter: EnterOwned },
        Done,
    }
}

pin_project! {
    /// The future of [`KeyedGate::enter`].
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::keyed::{KeyedEnter, KeyedGate};
    ///
    /// # smol::block_on(async {
    /// let gate = KeyedGate::<u8>::new(1).unwrap();
    /// let enter: KeyedEnter<'_, u8, u8, _> = gate.enter(&1);
    /// let _permit = enter.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedEnter<'a, K, Q: ?Sized, S> {
        keyed: Handle<'a, KeyedGate<K, S>>,
        key: KeyRef<'a, K, Q>,
        // Declared before `user`: the queue place or permit goes before the registration.
        #[pin]
        state: EnterState,
        user: Option<User<'a, K, S>>,
    }
}

impl<K, Q: ?Sized, S> fmt::Debug for KeyedEnter<'_, K, Q, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            EnterState::Start => "unpolled",
            EnterState::Key { .. } => "waiting for the key",
            EnterState::Global { .. } => "waiting for the global gate",
            EnterState::Done => "done",
        };
        f.debug_struct("KeyedEnter")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<'a, K, Q, S> Future for KeyedEnter<'a, K, Q, S>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    S: BuildHasher,
{
    type Output = Result<KeyedPermit<'a, K, S>, KeyedGateError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let keyed: &KeyedGate<K, S> = this.keyed;
        loop {
            match this.state.as_mut().project() {
                EnterProj::Start => match KeyedGate::register(this.keyed, this.key.get()) {
                    Err(full) => {
                        this.state.set(EnterState::Done);
                        return Poll::Ready(Err(full.into()));
                    }
                    Ok(Some(user)) => {
                        let enter = user.gate.enter_owned();
                        *this.user = Some(user);
                        this.state.set(EnterState::Key { enter });
                    }
                    Ok(None) => match &keyed.global {
                        Some(global) => this.state.set(EnterState::Global {
                            key: None,
                            enter: global.enter_owned(),
                        }),
                        None => {
                            this.state.set(EnterState::Done);
                            return Poll::Ready(Ok(KeyedPermit {
                                global: None,
                                key: None,
                                _user: None,
                            }));
                        }
                    },
                },
                EnterProj::Key { enter } => match ready!(enter.poll(cx)) {
                    Err(err) => {
                        this.state.set(EnterState::Done);
                        *this.user = None;
                        return Poll::Ready(Err(err.into()));
                    }
                    Ok(permit) => match &keyed.global {
                        Some(global) => this.state.set(EnterState::Global {
                            key: Some(permit),
                            enter: global.enter_owned(),
                        }),
                        None => {
                            this.state.set(EnterState::Done);
                            return Poll::Ready(Ok(KeyedPermit {
                                global: None,
                                key: Some(permit),
                                _user: this.user.take(),
                            }));
                        }
                    },
                },
                EnterProj::Global { key, enter } => {
                    let global = ready!(enter.poll(cx));
                    let key = key.take();
                    this.state.set(EnterState::Done);
                    return Poll::Ready(match global {
                        Ok(global) => Ok(KeyedPermit {
                            global: Some(global),
                            key,
                            _user: this.user.take(),
                        }),
                        Err(err) => {
                            drop(key);
                            *this.user = None;
                            Err(err.into())
                        }
                    });
                }
                EnterProj::Done => panic!("`KeyedEnter` polled after completion"),
            }
        }
    }
}

pin_project! {
    /// The future of [`KeyedGate::enter_timeout`].
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::keyed::{KeyedEnterTimeout, KeyedGate};
    /// use dike::time::ManualTimer;
    ///
    /// # smol::block_on(async {
    /// let timer = ManualTimer::new();
    /// let gate = KeyedGate::<u8>::new(1).unwrap();
    /// let wait: KeyedEnterTimeout<'_, u8, u8, _, _> =
    ///     gate.enter_timeout(&timer, Duration::from_secs(1), &1);
    /// let _permit = wait.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedEnterTimeout<'a, K, Q: ?Sized, S, T: Timer> {
        #[pin]
        enter: Option<KeyedEnter<'a, K, Q, S>>,
        #[pin]
        sleep: Option<T::Sleep>,
        timer: T,
        // `None`: no timeout (the tower layer's plain wait mode).
        deadline: Option<Duration>,
        limit: usize,
        done: bool,
    }
}

impl<K, Q: ?Sized, S, T: Timer> fmt::Debug for KeyedEnterTimeout<'_, K, Q, S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedEnterTimeout")
            .field("enter", &self.enter)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<'a, K, Q, S, T> Future for KeyedEnterTimeout<'a, K, Q, S, T>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    S: BuildHasher,
    T: Timer,
{
    type Output = Result<KeyedPermit<'a, K, S>, KeyedGateError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        assert!(!*this.done, "`KeyedEnterTimeout` polled after completion");
        if let Some(enter) = this.enter.as_mut().as_pin_mut() {
            if let Poll::Ready(out) = enter.poll(cx) {
                *this.done = true;
                this.enter.set(None);
                return Poll::Ready(out);
            }
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        if this.sleep.is_none() {
            this.sleep.set(Some(this.timer.sleep_until(deadline)));
        }
        if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
            ready!(sleep.poll(cx));
        }
        *this.done = true;
        // Leaves the key's queue and unregisters before reporting.
        this.enter.set(None);
        this.sleep.set(None);
        Poll::Ready(Err(TooManyCalls::new(
            *this.limit,
            TooManyCallsKind::TimedOut,
        )
        .into()))
    }
}
