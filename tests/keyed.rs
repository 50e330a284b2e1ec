//! Keyed throttle and keyed gate through the public API, on `ManualTimer` (no real sleeps).
//!
//! The first group ports governor's keyed tests (`tests/keyed_*.rs`: accepts_first_cell,
//! rejects_too_many, expiration, actual_threadsafety, length, shrink_to_fit) onto dike's
//! no-sweep eviction; the rest test the bounded-memory contract, FIFO per key, cancellation and
//! hashing.

use core::future::Future;
use core::hash::{BuildHasher, Hasher};
use core::num::NonZeroUsize;
use core::pin::{Pin, pin};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;

use dike::error::TooManyCallsKind;
use dike::gate::Gate;
use dike::keyed::{
    KeyQuota, KeyedAcquire, KeyedEnter, KeyedEnterTimeout, KeyedGate, KeyedGateError, KeyedPermit,
    KeyedThrottle, KeyedThrottleError, TooManyKeys, WhenFull,
};
use dike::throttle::Quota;
use dike::time::{ManualTimer, Timer};
use futures_util::FutureExt;
use proptest::prelude::*;

/// A deterministic hasher, for tests whose exact counts depend on where keys hash.
type Fixed = core::hash::BuildHasherDefault<std::hash::DefaultHasher>;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn rate_limited(r: Result<(), KeyedThrottleError>) -> bool {
    matches!(r, Err(KeyedThrottleError::RateLimited(_)))
}

// ---- governor's keyed tests, ported ----

// governor's `Quota::per_second(n)` has a burst of `n`; dike's has a burst of 1, so the ports
// spell the burst out. governor's `retain_recent()` is dike's `shrink_to_fit()` (which also
// releases memory); dike needs neither for boundedness.

const KEYS: &[u32] = &[1, 2];

fn per_second(n: u32) -> Quota {
    Quota::per_second(n).with_burst(n)
}

#[test]
fn accepts_first_cell() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(per_second(5)).unwrap();
    for key in KEYS {
        assert_eq!(lim.try_acquire(&timer, key), Ok(()), "key {key:?}");
    }
}

#[test]
fn rejects_too_many() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(per_second(2)).unwrap();
    for key in KEYS {
        // use up the burst (2 in the first second):
        assert_eq!(
            lim.try_acquire(&timer, key),
            Ok(()),
            "now {:?}",
            timer.now()
        );
        timer.advance(ms(1));
        assert_eq!(
            lim.try_acquire(&timer, key),
            Ok(()),
            "now {:?}",
            timer.now()
        );
        timer.advance(ms(1));
        assert!(
            rate_limited(lim.try_acquire(&timer, key)),
            "now {:?}",
            timer.now()
        );
        // ok again in 1 s:
        timer.advance(ms(1000));
        assert_eq!(
            lim.try_acquire(&timer, key),
            Ok(()),
            "now {:?}",
            timer.now()
        );
        timer.advance(ms(1));
        assert_eq!(lim.try_acquire(&timer, key), Ok(()));
        timer.advance(ms(1));
        assert!(rate_limited(lim.try_acquire(&timer, key)), "{lim:?}");
    }
}

#[test]
fn expiration() {
    // foo at 0 ms, bar at 200 ms, baz at 800 ms, 1 per second: their entries are idle from
    // 1000, 1200 and 1800 ms on.
    let make = || {
        let timer = ManualTimer::new();
        let lim = KeyedThrottle::<String>::new(per_second(1)).unwrap();
        lim.try_acquire(&timer, "foo").unwrap();
        timer.advance(ms(200));
        lim.try_acquire(&timer, "bar").unwrap();
        timer.advance(ms(600));
        lim.try_acquire(&timer, "baz").unwrap();
        (timer, lim)
    };
    for (later, kept) in [(0, 3), (200, 2), (399, 2), (400, 1), (999, 1), (1000, 0)] {
        let (timer, lim) = make();
        timer.advance(ms(later));
        lim.shrink_to_fit(&timer);
        assert_eq!(lim.len(), kept, "{later} ms after baz");
    }
    // No sweep call: traffic on another key does the same. Every 128th hit on its shard moves
    // the clock hand of the next shard in turn: an insert and 16 × 128 hits reach all 16.
    let (timer, lim) = make();
    timer.advance(ms(1000));
    for _ in 0..1 + 16 * 128 {
        let _ = lim.try_acquire(&timer, "other");
    }
    assert_eq!(lim.len(), 1, "only the key used in the last period remains");
    // Nor do new keys need one, once a shard is past its slack. One shard of 64
    // keys (slack 8): foo, bar, baz and five more keys at 800 ms, then 8 new keys at 1800 ms
    // examine every entry on their way in. (Which entries the clock hand meets first depends
    // on where they hash: a fixed hasher keeps the exact count reproducible.)
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<String, Fixed>::with_hasher(per_second(1), Fixed::default())
        .unwrap()
        .with_shards(nz(1))
        .with_max_keys(nz(64));
    lim.try_acquire(&timer, "foo").unwrap();
    timer.advance(ms(200));
    lim.try_acquire(&timer, "bar").unwrap();
    timer.advance(ms(600));
    for key in ["baz", "a", "b", "c", "d", "e"] {
        lim.try_acquire(&timer, key).unwrap();
    }
    timer.advance(ms(1000));
    for key in 0..8 {
        lim.try_acquire(&timer, &format!("new-{key}")).unwrap();
    }
    assert_eq!(lim.len(), 8, "only the keys used in the last period remain");
}

#[test]
fn actual_threadsafety() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(per_second(20)).unwrap();
    for key in KEYS {
        std::thread::scope(|scope| {
            for _ in 0..20 {
                scope.spawn(|| assert_eq!(lim.try_acquire(&timer, key), Ok(())));
            }
        });
        timer.advance(ms(2));
        assert!(rate_limited(lim.try_acquire(&timer, key)));
        timer.advance(ms(998));
        assert_eq!(lim.try_acquire(&timer, key), Ok(()));
    }
}

#[test]
fn length() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<String>::new(per_second(1)).unwrap();
    assert_eq!(lim.len(), 0);
    assert!(lim.is_empty());
    for (n, key) in ["foo", "bar", "baz"].into_iter().enumerate() {
        lim.try_acquire(&timer, key).unwrap();
        assert_eq!(lim.len(), n + 1);
        assert!(!lim.is_empty());
    }
}

#[test]
fn shrink_to_fit() {
    let timer = ManualTimer::new();
    // a steady rate of 50 ms between cells, burst 20:
    let lim = KeyedThrottle::<String>::new(per_second(20)).unwrap();
    for _ in 0..10 {
        lim.try_acquire(&timer, "long-lived").unwrap();
    }
    assert_eq!(lim.try_acquire(&timer, "short-lived"), Ok(()));
    // Far enough that the short-lived key is idle (50 ms), not the long-lived one (500 ms):
    timer.advance(ms(300));
    lim.shrink_to_fit(&timer);
    assert_eq!(lim.len(), 1);
}

// ---- bounded memory ----

/// A reference keyed GCRA that never forgets a key (the engine's arithmetic, spelled out).
struct Reference {
    interval: u64,
    capacity: u64,
    tat: HashMap<u64, u64>,
}

impl Reference {
    fn new(quota: Quota) -> Self {
        let interval = (quota.period().as_nanos() as u64).div_ceil(u64::from(quota.rate()));
        Self {
            interval,
            capacity: interval * u64::from(quota.burst()),
            tat: HashMap::new(),
        }
    }

    /// `Ok` or the wait.
    fn check(&mut self, key: u64, now: Duration) -> Result<(), Duration> {
        let now = now.as_nanos() as u64;
        let tat = self.tat.entry(key).or_insert(0);
        let start = (*tat).max(now);
        if start + self.interval <= now + self.capacity {
            *tat = start + self.interval;
            Ok(())
        } else {
            Err(Duration::from_nanos(
                start + self.interval - self.capacity - now,
            ))
        }
    }
}

fn decide(lim: &KeyedThrottle<u64>, timer: &ManualTimer, key: u64) -> Result<(), Duration> {
    match lim.try_acquire(timer, &key) {
        Ok(()) => Ok(()),
        Err(KeyedThrottleError::RateLimited(err)) => Err(err.wait()),
        Err(other) => panic!("{other}"),
    }
}

/// 10 000 000 distinct keys with one request each under a 100 000 cap, while 100 steady keys
/// keep using their full quota. `len()` never exceeds the cap; the steady keys get exactly the
/// decisions of a limiter that never forgets. In debug builds the flood is scaled to 1 000 000
/// keys (10 000 000 takes over a minute there); `--release` runs all of it, as `bash scripts/test
/// host` does.
#[test]
fn key_flood_stays_under_the_cap_and_steady_keys_keep_their_quota() {
    let flood: u64 = if cfg!(debug_assertions) {
        1_000_000
    } else {
        10_000_000
    };
    let cap = 100_000;
    let quota = Quota::per_second(100).with_burst(2); // T = 10 ms
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u64>::new(quota)
        .unwrap()
        .with_max_keys(nz(cap));
    let mut reference = Reference::new(quota);
    let steady = 0..100u64;
    let (mut refused_for_cap, mut admitted_flood, mut max_len) = (0u64, 0u64, 0usize);
    // Steady keys spend their burst at once, then call twice per interval: one admitted, one
    // refused, every round (their entries are never idle).
    let steady_round = |reference: &mut Reference| {
        for key in steady.clone() {
            for _ in 0..2 {
                let expected = reference.check(key, timer.now());
                assert_eq!(decide(&lim, &timer, key), expected, "steady key {key}");
            }
        }
    };
    steady_round(&mut reference);
    let mut last_round = timer.now();
    for i in 0..flood {
        // First half: 1 new key per 10 ns (100x what the cap can hold for one interval: the
        // cap binds). Second half: 1 per µs (10 000 live at a time: eviction keeps up).
        timer.advance(Duration::from_nanos(if i < flood / 2 { 10 } else { 1_000 }));
        match lim.try_acquire(&timer, &(1_000 + i)) {
            Ok(()) => admitted_flood += 1,
            Err(KeyedThrottleError::TooManyKeys(err)) => {
                assert_eq!(err.max_keys(), cap);
                refused_for_cap += 1;
            }
            Err(other) => panic!("a new key was rate limited: {other}"),
        }
        if i % 1_000 == 0 {
            let len = lim.len();
            assert!(len <= cap, "len {len} > cap {cap}");
            max_len = max_len.max(len);
        }
        if timer.now() - last_round >= ms(10) {
            steady_round(&mut reference);
            last_round = timer.now();
        }
    }
    assert!(refused_for_cap > 0, "the first half must hit the cap");
    assert!(
        admitted_flood > flood / 2,
        "eviction keeps up in the second half"
    );
    assert!(max_len > cap * 9 / 10, "the cap was reached: {max_len}");
    // Second half: about 10 000 live keys, plus at most the keys that arrived during one round
    // of the clock hand (each insert passes one live entry): under twice the live keys.
    assert!(
        lim.len() <= 21_000,
        "second half: about 10 000 live keys, {}",
        lim.len()
    );
}

#[test]
fn idle_keys_vanish_after_one_period_of_traffic_on_other_keys() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(10)).unwrap();
    for key in 0..1_000u32 {
        lim.try_acquire(&timer, &key).unwrap();
    }
    assert_eq!(lim.len(), 1_000);
    // One period of traffic on 10 other keys (each at its rate), no sweep call.
    for _ in 0..10 {
        timer.advance(ms(100));
        for _ in 0..100 {
            for key in 10_000..10_010u32 {
                let _ = lim.try_acquire(&timer, &key);
            }
        }
    }
    assert_eq!(lim.len(), 10, "only the 10 busy keys remain");
}

#[test]
fn idle_keys_vanish_as_new_keys_arrive() {
    // One shard of 1 000 keys: inserts sweep from 125 entries on. A fixed hasher keeps the
    // hand's path, so the exact count, reproducible.
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32, Fixed>::with_hasher(Quota::per_second(10), Fixed::default())
        .unwrap()
        .with_shards(nz(1))
        .with_max_keys(nz(1_000));
    for key in 0..500u32 {
        lim.try_acquire(&timer, &key).unwrap();
    }
    assert_eq!(lim.len(), 500, "all live at 0 ms: nothing evicted");
    // 100 ms later the 500 are idle: with no hit on a known key and no sweep call, 300 new
    // keys clear them on their way in.
    timer.advance(ms(100));
    for key in 10_000..10_300u32 {
        lim.try_acquire(&timer, &key).unwrap();
    }
    assert_eq!(lim.len(), 300, "only the 300 new keys remain");
}

#[test]
fn warm_keys_hit_between_passes_of_the_hand_are_never_evicted() {
    // 10^9 per second: every key is idle 1 ns after its check, so the hand may drop any entry
    // it meets. Each key is hit once a round, and the hand passes an entry only every few
    // dozen rounds (hits move it past one entry per 64 hits): every entry has been hit since the
    // hand's last pass when the hand comes, so none is dropped and re-inserted.
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(1_000_000_000).with_burst(2)).unwrap();
    // Warm up at one instant (each entry live, its key hit once after its insert): a key seen
    // only once is not protected, as a scanner's or a flood's keys should not be.
    for _ in 0..2 {
        for key in 0..1_000u32 {
            lim.try_acquire(&timer, &key).unwrap();
        }
    }
    for round in 0..50 {
        timer.advance(ms(10));
        for key in 0..1_000u32 {
            assert_eq!(lim.try_acquire(&timer, &key), Ok(()), "round {round}");
            // An entry dropped before its key's turn would show until the key came back.
            assert_eq!(lim.len(), 1_000, "round {round}, key {key}");
        }
    }
    // Once the keys stop coming, traffic on one other key clears them.
    timer.advance(ms(10));
    for _ in 0..200_000 {
        let _ = lim.try_acquire(&timer, &u32::MAX);
    }
    assert_eq!(lim.len(), 1, "only the busy key remains");
}

#[test]
fn at_the_cap_a_new_key_is_refused_and_known_keys_are_unaffected() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(1).with_burst(3))
        .unwrap()
        .with_max_keys(nz(4));
    for key in 0..4 {
        lim.try_acquire(&timer, &key).unwrap();
    }
    let err = lim.try_acquire(&timer, &99).unwrap_err();
    assert!(matches!(err, KeyedThrottleError::TooManyKeys(e) if e.max_keys() == 4));
    assert_eq!(
        err.to_string(),
        "too many keys: all 4 entries hold live state"
    );
    assert_eq!(
        lim.try_acquire(&timer, &0),
        Ok(()),
        "known keys keep their quota"
    );
    assert_eq!(lim.len(), 4);
    // Once key 3's state is fresh-equivalent (after one full burst's time), a new key fits.
    timer.advance(Duration::from_secs(3));
    assert_eq!(lim.try_acquire(&timer, &99), Ok(()));
    assert!(lim.len() <= 4);
}

#[test]
fn admit_untracked_admits_like_a_fresh_key_and_keeps_no_state() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(1))
        .unwrap()
        .with_max_keys(nz(1))
        .when_full(WhenFull::AdmitUntracked);
    lim.try_acquire(&timer, &1).unwrap();
    for _ in 0..3 {
        assert_eq!(lim.try_acquire(&timer, &2), Ok(()));
    }
    assert!(
        rate_limited(lim.try_acquire(&timer, &1)),
        "tracked key stays limited"
    );
    assert_eq!(lim.len(), 1);
    assert_eq!(lim.acquire(&timer, &3).now_or_never(), Some(Ok(())));
}

#[test]
fn per_key_quota_function() {
    let timer = ManualTimer::new();
    let free = KeyQuota::new(Quota::per_second(1)).unwrap();
    let pro = KeyQuota::new(Quota::per_second(1).with_burst(5)).unwrap();
    let lim = KeyedThrottle::<String>::new(Quota::per_second(1))
        .unwrap()
        .with_quota_fn(move |k: &String| if k.starts_with("pro") { pro } else { free });
    let count = |key: &str| {
        (0..10)
            .filter(|_| lim.try_acquire(&timer, key).is_ok())
            .count()
    };
    assert_eq!(count("pro-1"), 5);
    assert_eq!(count("free-1"), 1);
    timer.advance(Duration::from_secs(1));
    assert_eq!(count("pro-1"), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Call(u64),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..12u64).prop_map(Op::Call),
        1 => (0..400u64).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Eviction changes no decision: a keyed throttle that evicts (one shard, so every call
    /// sweeps the same entries, and a cap that never binds) decides every request exactly as
    /// a reference that never forgets a key, waits included. Up to 1 000 operations, so the
    /// hits move the clock hand several times a case (every 128th hit), besides the inserts.
    #[test]
    fn eviction_changes_no_decision(
        ops in proptest::collection::vec(op(), 1..1_000),
        burst in 1..4u32,
        shrink_every in 1..50usize,
    ) {
        let quota = Quota::per_second(10).with_burst(burst);
        let timer = ManualTimer::new();
        let lim = KeyedThrottle::<u64>::new(quota).unwrap().with_shards(nz(1)).with_max_keys(nz(12));
        let mut reference = Reference::new(quota);
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Call(key) => {
                    prop_assert_eq!(decide(&lim, &timer, key), reference.check(key, timer.now()));
                }
                Op::Advance(n) => timer.advance(ms(n)),
            }
            if i % shrink_every == 0 {
                lim.shrink_to_fit(&timer);
            }
        }
    }
}

// ---- waiting: FIFO per key, one sleeper per key, cancellation ----

#[test]
fn waiting_throttle_is_fifo_per_key_with_one_sleeper_per_key() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(10)).unwrap();
    lim.try_acquire(&timer, &1).unwrap();
    lim.try_acquire(&timer, &2).unwrap();
    let mut waiters: Vec<Pin<Box<KeyedAcquire<'_, u32, u32, _, _>>>> = Vec::new();
    let keys = [1u32, 1, 1, 2, 2];
    for key in &keys {
        let mut w = Box::pin(lim.acquire(&timer, key));
        assert!(poll_once(w.as_mut()).is_pending());
        waiters.push(w);
    }
    assert_eq!(timer.sleepers(), 2, "one sleeper per key: the heads");
    let mut order = Vec::new();
    let mut done = [false; 5];
    for _ in 0..10 {
        timer.advance(ms(100));
        for (i, w) in waiters.iter_mut().enumerate() {
            if !done[i] && poll_once(w.as_mut()).is_ready() {
                done[i] = true;
                order.push((timer.now(), i));
            }
        }
        assert!(timer.sleepers() <= 2);
    }
    assert_eq!(
        order,
        vec![
            (ms(100), 0),
            (ms(100), 3),
            (ms(200), 1),
            (ms(200), 4),
            (ms(300), 2)
        ]
    );
    drop(waiters);
    timer.advance(ms(100));
    lim.shrink_to_fit(&timer);
    assert_eq!(lim.len(), 0, "no registration left behind");
}

#[test]
fn a_waiting_throttle_dropped_at_every_await_point_leaves_nothing() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(10)).unwrap();
    lim.try_acquire(&timer, &1).unwrap();
    // Unpolled.
    drop(lim.acquire(&timer, &1));
    // Head sleeping, and queued behind it.
    let mut head = Box::pin(lim.acquire(&timer, &1));
    let mut queued = Box::pin(lim.acquire(&timer, &1));
    let mut last = Box::pin(lim.acquire(&timer, &1));
    assert!(poll_once(head.as_mut()).is_pending());
    assert!(poll_once(queued.as_mut()).is_pending());
    assert!(poll_once(last.as_mut()).is_pending());
    drop(queued); // from the middle of the line
    drop(head); // the sleeping head passes its turn on
    timer.advance(ms(100));
    assert!(
        poll_once(last.as_mut()).is_ready(),
        "the turn passed on, nothing consumed"
    );
    assert!(rate_limited(lim.try_acquire(&timer, &1)));
    // A head that just got its turn but was not polled since.
    let mut a = Box::pin(lim.acquire(&timer, &1));
    let mut b = Box::pin(lim.acquire(&timer, &1));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    timer.advance(ms(100));
    assert!(poll_once(a.as_mut()).is_ready()); // hands the turn to b
    drop(b);
    timer.advance(ms(100));
    assert_eq!(lim.try_acquire(&timer, &1), Ok(()), "b took nothing");
    timer.advance(ms(100));
    lim.shrink_to_fit(&timer);
    assert_eq!(lim.len(), 0, "entries never leak");
}

#[test]
fn gate_is_fifo_per_key_and_keys_are_independent() {
    let gate = KeyedGate::<u32>::new(1).unwrap();
    let held1 = gate.try_enter(&1).unwrap();
    let held2 = gate.try_enter(&2).unwrap();
    let mut w: Vec<Pin<Box<KeyedEnter<'_, u32, u32, _>>>> = Vec::new();
    for key in [1u32, 2, 1, 2, 1] {
        let k: &'static u32 = Box::leak(Box::new(key));
        let mut f = Box::pin(gate.enter(k));
        assert!(poll_once(f.as_mut()).is_pending());
        w.push(f);
    }
    assert!(matches!(
        gate.try_enter(&1),
        Err(KeyedGateError::TooManyCalls(e)) if e.kind() == TooManyCallsKind::Full
    ));
    drop(held1);
    let mut order = Vec::new();
    let mut permits = Vec::new();
    // Releasing key 1 admits key 1's waiters one at a time, in order; key 2's stay put.
    for _ in 0..3 {
        for (i, f) in w.iter_mut().enumerate() {
            if order.contains(&i) {
                continue;
            }
            if let Poll::Ready(p) = poll_once(f.as_mut()) {
                order.push(i);
                permits.push(p.unwrap());
                break;
            }
        }
        permits.clear(); // release, admitting the next of the same key
    }
    assert_eq!(order, vec![0, 2, 4]);
    drop(held2);
    for i in [1usize, 3] {
        let Poll::Ready(p) = poll_once(w[i].as_mut()) else {
            panic!("{i}")
        };
        drop(p.unwrap());
    }
    drop(w);
    gate.shrink_to_fit();
    assert_eq!(gate.len(), 0);
}

#[test]
fn gate_cancellation_at_every_await_point_leaks_nothing() {
    let timer = ManualTimer::new();
    let global = Arc::new(Gate::new(1));
    let gate = KeyedGate::<u32>::new(1)
        .unwrap()
        .with_global(global.clone());
    drop(gate.enter(&1)); // unpolled
    let held = gate.try_enter(&1).unwrap();
    // Waiting for the key, dropped.
    let mut k = Box::pin(gate.enter(&1));
    assert!(poll_once(k.as_mut()).is_pending());
    drop(k);
    // Holding key 2's permit, waiting for the global gate, dropped.
    let mut g = Box::pin(gate.enter(&2));
    assert!(poll_once(g.as_mut()).is_pending());
    drop(g);
    assert_eq!(global.stats().waiting, 0);
    // Timing out while waiting for the key.
    let mut t = Box::pin(gate.enter_timeout(&timer, ms(10), &1));
    assert!(poll_once(t.as_mut()).is_pending());
    timer.advance(ms(10));
    let Poll::Ready(Err(KeyedGateError::TooManyCalls(err))) = poll_once(t.as_mut()) else {
        panic!()
    };
    assert_eq!(err.kind(), TooManyCallsKind::TimedOut);
    drop(held);
    assert_eq!(global.stats().in_use, 0);
    // Key 2 was never admitted: it is free, and key 1 is free again.
    let a = gate.try_enter(&2).unwrap();
    drop(a);
    let b = gate.try_enter(&1).unwrap();
    drop(b);
    gate.shrink_to_fit();
    assert_eq!(gate.len(), 0, "no registration left behind");
}

#[test]
fn idle_gate_entries_vanish_under_traffic_on_other_keys() {
    let gate = KeyedGate::<u32>::new(2).unwrap();
    let held: Vec<_> = (0..1_000u32)
        .map(|key| gate.try_enter(&key).unwrap())
        .collect();
    // A busy key's calls, each entering and leaving at once.
    let busy = |gate: &KeyedGate<u32>| {
        for _ in 0..10_000 {
            drop(gate.try_enter(&u32::MAX).unwrap());
        }
    };
    busy(&gate);
    assert_eq!(gate.len(), 1_001, "entries with a holder are never evicted");
    drop(held);
    busy(&gate);
    assert_eq!(gate.len(), 1, "released keys are gone, with no sweep call");
}

#[test]
fn gate_cap_refuses_new_keys_only_while_entries_are_live() {
    let gate = KeyedGate::<u32>::new(2).unwrap().with_max_keys(nz(2));
    let a = gate.try_enter(&1).unwrap();
    let b = gate.try_enter(&2).unwrap();
    assert!(matches!(
        gate.try_enter(&3),
        Err(KeyedGateError::TooManyKeys(_))
    ));
    assert!(matches!(
        gate.enter(&3).now_or_never(),
        Some(Err(KeyedGateError::TooManyKeys(_)))
    ));
    let _a2 = gate.try_enter(&1).unwrap();
    drop(b); // key 2 is idle now: evictable
    let _c = gate.try_enter(&3).unwrap();
    assert_eq!(gate.len(), 2);
    drop(a);
}

#[test]
fn eviction_never_grants_more_than_a_fresh_key() {
    // A gate entry with a holder is never evicted, even under pressure from new keys.
    let gate = KeyedGate::<u32>::new(1)
        .unwrap()
        .with_max_keys(nz(2))
        .with_shards(nz(1));
    let held = gate.try_enter(&1).unwrap();
    for key in 100..200 {
        drop(gate.try_enter(&key));
    }
    assert!(gate.try_enter(&1).is_err(), "key 1 is still at its limit");
    drop(held);
    // A throttle entry whose tat is ahead is never evicted either.
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(1))
        .unwrap()
        .with_max_keys(nz(2))
        .with_shards(nz(1));
    lim.try_acquire(&timer, &1).unwrap();
    for key in 100..200 {
        timer.advance(ms(5));
        let _ = lim.try_acquire(&timer, &key);
    }
    assert!(rate_limited(lim.try_acquire(&timer, &1)));
}

// ---- hashing ----

/// A fixed hasher that keeps only the low 8 bits of a `u64` key: keys that differ above them
/// collide completely (what an attacker crafts against a known, fixed hash function).
#[derive(Clone, Default)]
struct Weak;

struct WeakHasher(u64);

impl Hasher for WeakHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n & 0xff).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl BuildHasher for Weak {
    type Hasher = WeakHasher;
    fn build_hasher(&self) -> WeakHasher {
        WeakHasher(0)
    }
}

#[test]
fn crafted_collisions_degrade_a_fixed_hasher_but_not_random_state() {
    let timer = ManualTimer::new();
    let crafted: Vec<u64> = (0..800u64).map(|i| i << 8).collect();
    // Under the fixed hasher all 800 keys share one shard: its share of the cap (100 of 1600)
    // fills and new keys are refused though the table is mostly empty, and every lookup
    // compares against all of them. The decisions stay correct.
    let fixed = KeyedThrottle::<u64, Weak>::with_hasher(Quota::per_second(1), Weak)
        .unwrap()
        .with_max_keys(nz(1_600));
    let refused = crafted
        .iter()
        .filter(|k| {
            matches!(
                fixed.try_acquire(&timer, *k),
                Err(KeyedThrottleError::TooManyKeys(_))
            )
        })
        .count();
    assert_eq!(refused, 700);
    assert_eq!(fixed.len(), 100);
    for k in &crafted[..100] {
        assert!(
            rate_limited(fixed.try_acquire(&timer, k)),
            "colliding keys stay distinct"
        );
    }
    // Under RandomState the same keys spread over the 16 shards (about 50 each, 100 allowed).
    let random = KeyedThrottle::<u64>::new(Quota::per_second(1))
        .unwrap()
        .with_max_keys(nz(1_600));
    for k in &crafted {
        assert_eq!(random.try_acquire(&timer, k), Ok(()));
    }
    assert_eq!(random.len(), 800);
}

// ---- the crate-wide rules ----

#[test]
#[should_panic(expected = "`KeyedAcquire` polled after completion")]
fn keyed_acquire_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(1)).unwrap();
    let mut f = pin!(lim.acquire(&timer, &1));
    assert!(poll_once(f.as_mut()).is_ready());
    let _ = poll_once(f.as_mut());
}

#[test]
#[should_panic(expected = "`KeyedEnter` polled after completion")]
fn keyed_enter_polled_after_completion_panics() {
    let gate = KeyedGate::<u32>::new(1).unwrap();
    let mut f = pin!(gate.enter(&1));
    assert!(poll_once(f.as_mut()).is_ready());
    let _ = poll_once(f.as_mut());
}

#[test]
#[should_panic(expected = "`KeyedEnterTimeout` polled after completion")]
fn keyed_enter_timeout_polled_after_completion_panics() {
    let timer = ManualTimer::new();
    let gate = KeyedGate::<u32>::new(1).unwrap();
    let mut f = pin!(gate.enter_timeout(&timer, ms(1), &1));
    assert!(poll_once(f.as_mut()).is_ready());
    let _ = poll_once(f.as_mut());
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn error<T: core::error::Error + Send + Sync + 'static>() {}
    send_sync::<KeyedThrottle<String>>();
    send_sync::<KeyedGate<String>>();
    send_sync::<KeyedPermit<'static, String, std::hash::RandomState>>();
    send_sync::<KeyedAcquire<'static, String, str, std::hash::RandomState, ManualTimer>>();
    send_sync::<KeyedEnter<'static, String, str, std::hash::RandomState>>();
    send_sync::<KeyedEnterTimeout<'static, String, str, std::hash::RandomState, ManualTimer>>();
    send_sync::<KeyQuota>();
    send_sync::<WhenFull>();
    error::<TooManyKeys>();
    error::<KeyedThrottleError>();
    error::<KeyedGateError>();
}

#[test]
fn config_errors_name_the_parameter() {
    let err = KeyedThrottle::<u32>::new(Quota::per_second(0)).unwrap_err();
    assert_eq!(err.parameter(), "rate");
    let err = KeyedGate::<u32>::new(0).unwrap_err();
    assert_eq!(err.parameter(), "limit");
}

#[test]
fn debug_is_readable() {
    let lim = KeyedThrottle::<u32>::new(Quota::per_second(1)).unwrap();
    let s = format!("{lim:?}");
    assert!(s.starts_with("KeyedThrottle { quota: Quota"), "{s}");
    let gate = KeyedGate::<u32>::new(2).unwrap();
    assert!(format!("{gate:?}").contains("limit: 2"));
    let timer = ManualTimer::new();
    let f = lim.acquire(&timer, &1);
    assert!(format!("{f:?}").contains("unpolled"));
    let _ = timer.now();
}

#[test]
fn async_use_on_an_executor() {
    smol::block_on(async {
        let timer = ManualTimer::new();
        let lim = KeyedThrottle::<String>::new(Quota::per_second(1)).unwrap();
        lim.acquire(&timer, "a").await.unwrap();
        let gate = KeyedGate::<String>::new(1).unwrap();
        let p = gate.enter("a").await.unwrap();
        drop(p);
    });
}

/// Threads hammer 32 keys while one of them moves the clock, and keys go idle (and are
/// evicted) and come back all along. Every admission is recorded with the instant it was
/// decided on; for each key, any window `[a, b]` holds at most `burst + (b - a) / T` of them,
/// the GCRA bound: eviction never hands out an extra burst.
#[test]
fn eviction_under_threads_never_exceeds_the_quota() {
    use std::cell::Cell;
    thread_local!(static DECIDED_AT: Cell<Duration> = const { Cell::new(Duration::ZERO) });

    let manual = ManualTimer::new();
    let recording = {
        let (now, sleep) = (manual.clone(), manual.clone());
        dike::time::timer_fn(
            move || {
                let at = now.now();
                DECIDED_AT.with(|c| c.set(at));
                at
            },
            move |deadline| sleep.sleep_until(deadline),
        )
    };
    let quota = Quota::per_second(10).with_burst(3); // T = 100 ms
    let lim = KeyedThrottle::<u64>::new(quota).unwrap().with_shards(nz(2));
    let mut admissions: Vec<Vec<Duration>> = vec![Vec::new(); 32];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (lim, manual, recording) = (&lim, &manual, &recording);
                scope.spawn(move || {
                    let mut ok = Vec::new();
                    for i in 0..20_000u64 {
                        if t == 0 {
                            manual.advance(ms(1));
                        }
                        // Each thread works on one key for 200 calls, then moves on.
                        let key = ((i / 200) * 5 + t) % 32;
                        if lim.try_acquire(recording, &key).is_ok() {
                            ok.push((key, DECIDED_AT.with(Cell::get)));
                        }
                    }
                    ok
                })
            })
            .collect();
        for h in handles {
            for (key, at) in h.join().unwrap() {
                admissions[key as usize].push(at);
            }
        }
    });
    let t = ms(100);
    for (key, times) in admissions.iter_mut().enumerate() {
        assert!(times.len() >= 3, "key {key} was used");
        times.sort();
        for i in 0..times.len() {
            for j in i..times.len() {
                let allowed = 3 + (times[j] - times[i]).as_nanos() / t.as_nanos();
                assert!(
                    (j - i + 1) as u128 <= allowed,
                    "key {key}: {} admissions in {:?}",
                    j - i + 1,
                    times[j] - times[i]
                );
            }
        }
    }
}
