//! loom models of a keyed call racing with the eviction of its own key: the call is neither
//! lost nor admitted twice, and a registered waiter's entry is never evicted under it; and of
//! two hits sharing a shard's lock racing for a key's last slot.
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_keyed`

#![cfg(loom)]

use core::future::{Future, pending};
use core::hash::BuildHasherDefault;
use core::num::NonZeroUsize;
use core::pin::pin;
use core::task::{Context, Waker};
use core::time::Duration;
use std::hash::DefaultHasher;

use dike::keyed::{KeyedGate, KeyedThrottle, KeyedThrottleError};
use dike::throttle::Quota;
use dike::time::timer_fn;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

/// A deterministic hasher: loom replays executions, so hashing must not vary between them.
type Fixed = BuildHasherDefault<DefaultHasher>;

/// A clock frozen at `at`, whose sleeps never end.
fn frozen(at: Duration) -> impl dike::time::Timer + Send + Sync + 'static {
    timer_fn(move || at, |_| pending::<()>())
}

fn one_shard_throttle() -> KeyedThrottle<u32, Fixed> {
    KeyedThrottle::with_hasher(Quota::per_second(1), Fixed::default())
        .unwrap()
        .with_shards(NonZeroUsize::new(1).unwrap())
        .with_max_keys(NonZeroUsize::new(3).unwrap())
}

#[test]
fn try_acquire_racing_with_eviction_of_its_key_is_admitted_exactly_once() {
    loom::model(|| {
        let lim = Arc::new(one_shard_throttle());
        lim.try_acquire(frozen(Duration::ZERO), &1).unwrap();
        // At 1 s key 1's entry is idle (fresh-equivalent): any call may evict it.
        let at = Duration::from_secs(1);
        let other = lim.clone();
        let evictor = thread::spawn(move || {
            // New keys in the one-shard table (cap 3, so nobody is refused): the clock hand
            // examines and drops key 1's idle entry if it gets there first.
            let _ = other.try_acquire(frozen(at), &2);
            let _ = other.try_acquire(frozen(at), &3);
        });
        let mine = lim.try_acquire(frozen(at), &1);
        evictor.join().unwrap();
        admitted_exactly_once(&lim, mine, at);
        assert!(lim.len() <= 3);
    });
}

/// Key 1 (fresh-equivalent when `mine` was decided at `at`) was admitted, and exactly once:
/// whichever entry holds it now remembers the admission.
fn admitted_exactly_once(
    lim: &KeyedThrottle<u32, Fixed>,
    mine: Result<(), KeyedThrottleError>,
    at: Duration,
) {
    assert_eq!(
        mine,
        Ok(()),
        "a fresh-equivalent key is admitted, evicted or not"
    );
    assert!(matches!(
        lim.try_acquire(frozen(at), &1),
        Err(KeyedThrottleError::RateLimited(_))
    ));
}

#[test]
fn a_hit_evicting_an_idle_key_races_with_a_call_on_that_key() {
    loom::model(|| {
        let lim = Arc::new(one_shard_throttle());
        lim.try_acquire(frozen(Duration::ZERO), &1).unwrap();
        lim.try_acquire(frozen(Duration::ZERO), &2).unwrap();
        // At 1 s both entries are idle. A hit on key 2 pays for a move of the clock hand (every
        // hit does under loom), which drops key 1's entry (never hit since its insert) if it
        // gets the shard's lock before the call on key 1 finds the entry.
        let at = Duration::from_secs(1);
        let other = lim.clone();
        let hitter = thread::spawn(move || other.try_acquire(frozen(at), &2));
        let mine = lim.try_acquire(frozen(at), &1);
        assert_eq!(hitter.join().unwrap(), Ok(()));
        admitted_exactly_once(&lim, mine, at);
        assert!(lim.len() <= 2);
    });
}

#[test]
fn two_hits_sharing_the_lock_spend_the_last_slot_once() {
    loom::model(|| {
        let lim = Arc::new(one_shard_throttle());
        // Key 1 has an entry with exactly one slot at 1 s (burst 1): two hits race for it under
        // the shard's shared lock, each by compare-and-swap on the key's `tat`.
        lim.try_acquire(frozen(Duration::ZERO), &1).unwrap();
        let at = Duration::from_secs(1);
        let other = lim.clone();
        let racer = thread::spawn(move || other.try_acquire(frozen(at), &1).is_ok());
        let mine = lim.try_acquire(frozen(at), &1).is_ok();
        let theirs = racer.join().unwrap();
        assert!(mine ^ theirs, "exactly one of the two hits is admitted");
    });
}

/// A clock shared by the threads of a model; a sleep is ready once the clock reached its
/// deadline (checked when polled).
fn shared(clock: &Arc<AtomicU64>) -> impl dike::time::Timer + Send + Sync + 'static {
    let (now, sleeps) = (clock.clone(), clock.clone());
    timer_fn(
        move || Duration::from_nanos(now.load(Ordering::SeqCst)),
        move |deadline: Duration| {
            let clock = sleeps.clone();
            core::future::poll_fn(move |_| {
                if Duration::from_nanos(clock.load(Ordering::SeqCst)) >= deadline {
                    core::task::Poll::Ready(())
                } else {
                    core::task::Poll::Pending
                }
            })
        },
    )
}

#[test]
fn acquire_racing_with_eviction_keeps_its_registration() {
    loom::model(|| {
        let lim = Arc::new(one_shard_throttle());
        lim.try_acquire(frozen(Duration::ZERO), &1).unwrap();
        let clock = Arc::new(AtomicU64::new(500_000_000));
        let (other, timer) = (lim.clone(), shared(&clock));
        let evictor = thread::spawn(move || {
            // At 5 s key 1's entry would be idle were nobody registered on it.
            let _ = other.try_acquire(&timer, &2);
            let _ = other.try_acquire(&timer, &3);
        });
        {
            // Registers on key 1 (its next slot is at 1 s), the clock jumps past the slot
            // while the head is asleep, then the waiter is cancelled.
            let timer = shared(&clock);
            let mut wait = pin!(lim.acquire(&timer, &1));
            let polled = wait.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            assert!(polled.is_pending());
            clock.store(5_000_000_000, Ordering::SeqCst);
        }
        evictor.join().unwrap();
        // The cancelled waiter took nothing and left nothing registered: key 1 is admitted
        // exactly once at 5 s, and a later sweep can forget every entry.
        let at = frozen(Duration::from_secs(5));
        assert_eq!(lim.try_acquire(&at, &1), Ok(()));
        assert!(matches!(
            lim.try_acquire(&at, &1),
            Err(KeyedThrottleError::RateLimited(_))
        ));
        lim.shrink_to_fit(frozen(Duration::from_secs(10)));
        assert_eq!(lim.len(), 0);
    });
}

#[test]
fn a_sleeping_head_racing_with_eviction_is_admitted_exactly_once() {
    loom::model(|| {
        let lim = Arc::new(one_shard_throttle());
        lim.try_acquire(frozen(Duration::ZERO), &1).unwrap();
        let clock = Arc::new(AtomicU64::new(500_000_000));
        let (other, timer) = (lim.clone(), shared(&clock));
        let evictor = thread::spawn(move || {
            // At 5 s key 1's entry would be idle were nobody registered on it.
            let _ = other.try_acquire(&timer, &2);
            let _ = other.try_acquire(&timer, &3);
        });
        {
            // Registers on key 1 (its next slot is at 1 s); the clock jumps past the slot
            // while the head is asleep.
            let timer = shared(&clock);
            let mut wait = pin!(lim.acquire(&timer, &1));
            let polled = wait.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            assert!(polled.is_pending());
            clock.store(5_000_000_000, Ordering::SeqCst);
            // Past its slot: admitted, on the entry it registered on (never evicted under it).
            let polled = wait.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            assert_eq!(polled, core::task::Poll::Ready(Ok(())));
        }
        evictor.join().unwrap();
        // The admission was recorded: key 1 has no room left at 5 s.
        let at = frozen(Duration::from_secs(5));
        assert!(matches!(
            lim.try_acquire(&at, &1),
            Err(KeyedThrottleError::RateLimited(_))
        ));
        lim.shrink_to_fit(frozen(Duration::from_secs(10)));
        assert_eq!(lim.len(), 0);
    });
}

#[test]
fn gate_permit_released_while_its_key_is_evicted_never_doubles_the_limit() {
    loom::model(|| {
        let gate = Arc::new(
            KeyedGate::<u32, Fixed>::with_hasher(1, Fixed::default())
                .unwrap()
                .with_shards(NonZeroUsize::new(1).unwrap())
                .with_max_keys(NonZeroUsize::new(2).unwrap()),
        );
        let held = gate.try_enter(&1).unwrap();
        let other = gate.clone();
        let racer = thread::spawn(move || {
            // Tries key 1 (busy or free) and a new key that may evict key 1 once idle.
            drop(other.try_enter(&1));
            drop(other.try_enter(&2));
        });
        drop(held);
        racer.join().unwrap();
        // Whatever happened, key 1 admits exactly one holder now.
        let one = gate.try_enter(&1).unwrap();
        assert!(gate.try_enter(&1).is_err());
        drop(one);
    });
}
