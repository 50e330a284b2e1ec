//! Adaptive gate on a virtual clock: issue 16's simulation (tests A) for AIMD, beside static
//! limits measured in the same harness, plus the feedback-token contract.
//!
//! Server: `c` workers, a FIFO queue, service `s·U(0.8, 1.2)`; latency = wait + service.
//! Client: Poisson arrivals at λ = 1.5·c/s, `try_enter` (a refusal is shed), one sample per
//! completion. c = 64, s = 20 ms, initial limit 20, 90 s of virtual time; the workers drop to
//! 32 at t = 45 s. For AIMD the server refuses a call when c/4 are already queued (its loss
//! signal; c is the current worker count). Every figure is checked on three seeds.

use core::cmp::Reverse;
use core::time::Duration;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use dike::adaptive::{AdaptiveGate, AdaptivePermit, Aimd, Algorithm, LimitChange, Outcome};
use dike::time::ManualTimer;

const C: usize = 64;
const S_MS: f64 = 20.0;
const END: f64 = 90.0;
const SHIFT: f64 = 45.0;

/// SplitMix64 with a uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn at(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

struct Report {
    /// Time-weighted mean limit over 15–45 s.
    mean_limit: f64,
    /// Completions per second over 15–45 s, as a share of c/s.
    throughput: f64,
    /// p99 latency (ms) of completions over 15–45 s and over 60–90 s.
    p99: f64,
    p99_after: f64,
    /// The limit at t = 60 s (15 s after the shift), and its mean over 60–90 s.
    limit_at_60: usize,
    mean_after: f64,
}

/// Runs the model with `algorithm` driving the gate; with `queue_cap = Some(k)` the server
/// refuses a call when `workers / k` are queued (None: unbounded queue).
fn simulate(seed: u64, algorithm: Aimd, queue_cap: Option<usize>) -> Report {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Event {
        Done(usize),
        Arrive,
    }
    let timer = ManualTimer::new();
    let gate = AdaptiveGate::new(algorithm);
    let mut rng = Rng(seed);
    let lambda = 1.5 * C as f64 / (S_MS / 1000.0);
    // Calls in service or queued: (permit, arrival), by slot id.
    let mut calls: Vec<Option<(AdaptivePermit<'_, &ManualTimer>, Duration)>> = Vec::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut busy = 0usize;
    let mut events: BinaryHeap<Reverse<(Duration, Event)>> = BinaryHeap::new();
    events.push(Reverse((Duration::ZERO, Event::Arrive)));
    let (mut weighted, mut weighted_after, mut last) = (0.0, 0.0, Duration::ZERO);
    let (mut lat, mut lat_after) = (Vec::new(), Vec::new());
    let mut limit_at_60 = None;
    let start_service =
        |rng: &mut Rng, now: Duration| now + at(S_MS / 1000.0 * (0.8 + 0.4 * rng.uniform()));
    while let Some(Reverse((t, event))) = events.pop() {
        if t > at(END) {
            break;
        }
        // Time-weighted limit.
        let limit = gate.limit() as f64;
        let (a, b) = (last.as_secs_f64(), t.as_secs_f64());
        weighted += limit * (b.min(45.0) - a.max(15.0)).max(0.0);
        weighted_after += limit * (b.min(90.0) - a.max(60.0)).max(0.0);
        if limit_at_60.is_none() && t >= at(60.0) {
            limit_at_60 = Some(gate.limit());
        }
        last = t;
        timer.advance_to(t);
        let workers = if t >= at(SHIFT) { C / 2 } else { C };
        match event {
            Event::Arrive => {
                let gap = -(1.0 - rng.uniform()).ln() / lambda;
                events.push(Reverse((t + at(gap), Event::Arrive)));
                let Ok(permit) = gate.try_enter(&timer) else {
                    continue; // shed
                };
                if busy < workers {
                    busy += 1;
                    calls.push(Some((permit, t)));
                    let done = start_service(&mut rng, t);
                    events.push(Reverse((done, Event::Done(calls.len() - 1))));
                } else if queue_cap.is_some_and(|divisor| queue.len() >= workers / divisor) {
                    permit.dropped();
                } else {
                    calls.push(Some((permit, t)));
                    queue.push_back(calls.len() - 1);
                }
            }
            Event::Done(id) => {
                let (permit, arrival) = calls[id].take().unwrap();
                permit.success();
                let ms = (t - arrival).as_secs_f64() * 1000.0;
                if (15.0..45.0).contains(&t.as_secs_f64()) {
                    lat.push(ms);
                } else if t.as_secs_f64() >= 60.0 {
                    lat_after.push(ms);
                }
                busy -= 1;
                while busy < workers {
                    let Some(next) = queue.pop_front() else { break };
                    busy += 1;
                    let done = start_service(&mut rng, t);
                    events.push(Reverse((done, Event::Done(next))));
                }
            }
        }
    }
    let p99 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() * 99 / 100).copied().unwrap_or(0.0)
    };
    let completions = lat.len() as f64;
    Report {
        mean_limit: weighted / 30.0,
        throughput: completions / 30.0 / (C as f64 / (S_MS / 1000.0)),
        p99: p99(&mut lat),
        p99_after: p99(&mut lat_after),
        limit_at_60: limit_at_60.unwrap_or(0),
        mean_after: weighted_after / 30.0,
    }
}

fn fixed(limit: u32) -> Aimd {
    Aimd::new(limit).with_bounds(limit, limit).unwrap()
}

#[test]
fn aimd_row_mean_in_c_to_1_5c_and_recovers_within_15s() {
    for seed in [1, 2, 3] {
        let r = simulate(seed, Aimd::new(20), Some(4));
        println!(
            "seed {seed}: AIMD mean {:.1} ({:.2}c), throughput {:.3}, p99 {:.1} ms; after halving: limit {} at 60 s, mean {:.1}, p99 {:.1} ms",
            r.mean_limit,
            r.mean_limit / C as f64,
            r.throughput,
            r.p99,
            r.limit_at_60,
            r.mean_after,
            r.p99_after
        );
        let c = C as f64;
        assert!(
            (c..=1.5 * c).contains(&r.mean_limit),
            "seed {seed}: mean limit {:.1} outside [c, 1.5c]",
            r.mean_limit
        );
        // S3 within 15 s, read on AIMD's sawtooth (±10 % around its level, so one instant
        // can sit on a peak): from t = 60 s its mean is inside [32, 40] and p99 ≤ 32 ms, and
        // the limit at 60 s is within the sawtooth of that band (≤ 1.1 × 40).
        assert!(
            (32.0..=40.0).contains(&r.mean_after),
            "seed {seed}: mean {:.1} over 60–90 s",
            r.mean_after
        );
        assert!(
            r.p99_after <= 32.0,
            "seed {seed}: p99 {:.1} ms over 60–90 s",
            r.p99_after
        );
        assert!(
            (32..=44).contains(&r.limit_at_60),
            "seed {seed}: limit {} at 60 s",
            r.limit_at_60
        );
    }
}

#[test]
fn static_limits_beside_it() {
    for (name, limit) in [("c", C as u32), ("1.25c", C as u32 * 5 / 4)] {
        for seed in [1, 2, 3] {
            let r = simulate(seed, fixed(limit), None);
            println!(
                "seed {seed}: static {name}: throughput {:.3}, p99 {:.1} ms",
                r.throughput, r.p99
            );
            // The harness reproduces the anchors: static c gives ≈ 97 % of c/s.
            assert!(
                r.throughput > 0.93 && r.throughput < 1.0,
                "{name}: {:.3}",
                r.throughput
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_trajectory() {
    let a = simulate(7, Aimd::new(20), Some(4));
    let b = simulate(7, Aimd::new(20), Some(4));
    assert_eq!(a.mean_limit.to_bits(), b.mean_limit.to_bits());
    assert_eq!(a.p99.to_bits(), b.p99.to_bits());
}

#[test]
fn cancelled_and_ignored_permits_say_nothing() {
    let timer = ManualTimer::new();
    let gate = AdaptiveGate::new(Aimd::new(4));
    for _ in 0..100 {
        let a = gate.try_enter(&timer).unwrap();
        let b = gate.try_enter(&timer).unwrap();
        drop(a);
        b.ignore();
    }
    assert_eq!(gate.limit(), 4);
    assert_eq!(gate.stats().in_use, 0);
}

#[test]
fn refusals_are_not_samples() {
    let timer = ManualTimer::new();
    let gate = AdaptiveGate::new(Aimd::new(2));
    let _a = gate.try_enter(&timer).unwrap();
    let _b = gate.try_enter(&timer).unwrap();
    for _ in 0..100 {
        assert!(gate.try_enter(&timer).is_err());
    }
    assert_eq!(gate.limit(), 2);
}

#[test]
fn a_lowered_limit_lets_held_permits_finish() {
    let timer = ManualTimer::new();
    let gate = AdaptiveGate::new(Aimd::new(10).with_backoff(0.5).unwrap());
    let held: Vec<_> = (0..10).map(|_| gate.try_enter(&timer).unwrap()).collect();
    let mut held = held.into_iter();
    held.next().unwrap().dropped();
    assert_eq!(gate.limit(), 5);
    assert_eq!(gate.stats().in_use, 9, "nobody is evicted");
    assert!(gate.try_enter(&timer).is_err());
    held.for_each(|p| p.ignore());
    assert!(gate.try_enter(&timer).is_ok());
}

#[test]
fn slow_successes_back_off() {
    let timer = ManualTimer::new();
    let gate = AdaptiveGate::new(Aimd::new(10).with_rtt_threshold(Duration::from_millis(100)));
    let p = gate.try_enter(&timer).unwrap();
    timer.advance(Duration::from_millis(150));
    p.success();
    assert_eq!(gate.limit(), 9);
}

#[test]
fn adaptive_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AdaptiveGate>();
    assert_send_sync::<AdaptivePermit<'static, ManualTimer>>();
    assert_send_sync::<Aimd>();
    assert_send_sync::<LimitChange>();
}

// The limit-changed hook. A fn pointer: each test records into its own static.

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_hook_fires_once_per_change_with_the_sample() {
    static SEEN: Mutex<Vec<LimitChange>> = Mutex::new(Vec::new());
    fn hook(change: LimitChange) {
        SEEN.lock().unwrap().push(change);
    }
    let timer = ManualTimer::new();
    let aimd = Aimd::new(4).with_bounds(2, 5).unwrap();
    let gate = AdaptiveGate::new(aimd).with_on_limit_change(hook);
    // Four in flight of 4: the limit is used, a success grows it 4 → 5.
    let mut held: Vec<_> = (0..4).map(|_| gate.try_enter(&timer).unwrap()).collect();
    timer.advance(ms(10));
    held.pop().unwrap().success();
    // 3 in flight of 5 is used too, but 5 is the upper bound: it stays, no call.
    held.pop().unwrap().success();
    assert_eq!(gate.limit(), 5);
    let mut held = held.into_iter();
    // Ignored, dropped unreported, refused: no sample, no call.
    held.next().unwrap().ignore();
    drop(held);
    drop(gate.try_enter(&timer).unwrap());
    let full: Vec<_> = (0..5).map(|_| gate.try_enter(&timer).unwrap()).collect();
    assert!(gate.try_enter(&timer).is_err());
    // A drop 5 → 4 (5 × 0.9), started at 10 ms with 5 in flight, reported at 25 ms.
    timer.advance(ms(15));
    let mut full = full.into_iter();
    full.next_back().unwrap().dropped();
    // Idle (1 in flight of 4: 1·2 < 4): 4 stays.
    full.for_each(AdaptivePermit::ignore);
    let lone = gate.try_enter(&timer).unwrap();
    lone.success();
    // Down to the floor 2 and no further.
    for _ in 0..4 {
        gate.try_enter(&timer).unwrap().dropped();
    }
    assert_eq!(gate.limit(), 2);
    let seen = SEEN.lock().unwrap().clone();
    let pairs: Vec<_> = seen.iter().map(|c| (c.old, c.new)).collect();
    assert_eq!(pairs, [(4, 5), (5, 4), (4, 3), (3, 2)]);
    assert_eq!(
        (seen[0].now, seen[0].rtt, seen[0].in_flight, seen[0].outcome),
        (ms(10), ms(10), 4, Outcome::Success)
    );
    assert_eq!(
        (seen[1].now, seen[1].rtt, seen[1].in_flight, seen[1].outcome),
        (ms(25), ms(15), 5, Outcome::Dropped)
    );
    assert_eq!((seen[3].rtt, seen[3].in_flight), (Duration::ZERO, 1));
}

#[test]
fn the_hook_runs_outside_the_lock_and_sees_the_new_limit() {
    static GATE: OnceLock<AdaptiveGate> = OnceLock::new();
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    fn hook(change: LimitChange) {
        let gate = GATE.get().unwrap();
        // `algorithm()` takes the gate's lock: this would deadlock inside it.
        assert_eq!(gate.algorithm().limit(), change.new);
        assert_eq!(gate.limit(), change.new as usize);
        // The hook may enter the gate too.
        gate.try_enter(ManualTimer::new()).unwrap().ignore();
        CALLS.fetch_add(1, Ordering::Relaxed);
    }
    let gate = GATE.get_or_init(|| AdaptiveGate::new(Aimd::new(3)).with_on_limit_change(hook));
    gate.try_enter(ManualTimer::new()).unwrap().dropped();
    gate.try_enter(ManualTimer::new()).unwrap().success();
    assert_eq!(CALLS.load(Ordering::Relaxed), 2);
    assert_eq!(gate.stats().in_use, 0);
}

/// An AIMD that logs each change it makes, with the lock held: the order the samples took.
#[derive(Debug, Clone)]
struct Logged {
    aimd: Aimd,
    log: Vec<(u32, u32, u32, Outcome)>,
}

impl Algorithm for Logged {
    fn limit(&self) -> u32 {
        self.aimd.limit()
    }
    fn on_sample(&mut self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) -> u32 {
        let old = self.aimd.limit();
        let new = self.aimd.on_sample(now, rtt, in_flight, outcome);
        if new != old {
            self.log.push((old, new, in_flight, outcome));
        }
        new
    }
}

#[test]
fn concurrent_permits_give_one_call_per_change() {
    static SEEN: Mutex<Vec<(u32, u32, u32, Outcome)>> = Mutex::new(Vec::new());
    fn hook(c: LimitChange) {
        SEEN.lock()
            .unwrap()
            .push((c.old, c.new, c.in_flight, c.outcome));
    }
    let algorithm = Logged {
        aimd: Aimd::new(8).with_bounds(2, 12).unwrap(),
        log: Vec::new(),
    };
    let gate = AdaptiveGate::new(algorithm).with_on_limit_change(hook);
    let timer = ManualTimer::new();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (gate, timer) = (&gate, &timer);
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                let mut held = Vec::new();
                for _ in 0..2_000 {
                    if let Ok(p) = gate.try_enter(timer) {
                        held.push(p);
                    }
                    if held.len() > 3 || rng.uniform() < 0.5 {
                        let Some(p) = held.pop() else { continue };
                        match rng.next() % 4 {
                            0 => p.dropped(),
                            1 => p.ignore(),
                            _ => p.success(),
                        }
                    }
                }
            });
        }
    });
    let stats = gate.stats();
    assert_eq!(stats.in_use, 0, "every permit came back");
    let mut log = gate.algorithm().log;
    let mut seen = SEEN.lock().unwrap().clone();
    assert!(log.len() > 100, "the limit moved: {} changes", log.len());
    // The changes, in the order the lock saw them, chain from the first limit to the last.
    assert_eq!(log[0].0, 8);
    assert!(log.windows(2).all(|w| w[0].1 == w[1].0));
    assert_eq!(log.last().unwrap().1 as usize, gate.limit());
    // Exactly one hook call per change, with its values (maybe in another order).
    log.sort_unstable_by_key(|e| (e.0, e.1, e.2, e.3 as u8));
    seen.sort_unstable_by_key(|e| (e.0, e.1, e.2, e.3 as u8));
    assert_eq!(seen, log);
    assert!(stats.peak_in_use <= 12);
}

#[test]
fn the_timer_is_read_only_when_the_sample_times_are_used() {
    use core::cell::Cell;
    let reads = Cell::new(0u32);
    let clock = dike::time::timer_fn(
        || {
            reads.set(reads.get() + 1);
            ms(u64::from(reads.get()))
        },
        |_: Duration| core::future::ready(()),
    );
    // AIMD without an RTT threshold reads neither time: no clock read at all.
    let plain = AdaptiveGate::new(Aimd::new(4));
    plain.try_enter(&clock).unwrap().success();
    plain.try_enter(&clock).unwrap().dropped();
    assert_eq!(reads.get(), 0);
    assert_eq!(
        plain.limit(),
        3,
        "idle success: 1·2 < 4 holds 4; the drop: 3"
    );
    // With a threshold: start and end.
    let slow = AdaptiveGate::new(Aimd::new(4).with_rtt_threshold(ms(100)));
    slow.try_enter(&clock).unwrap().success();
    assert_eq!(reads.get(), 2);
    slow.try_enter(&clock).unwrap().ignore();
    assert_eq!(reads.get(), 3, "the start only: an ignored call has no end");
    // A hook hears the times, so it turns the reads on.
    fn hook(change: LimitChange) {
        assert_eq!(change.rtt, ms(1), "end read 5 ms, start 4 ms");
    }
    let heard = AdaptiveGate::new(Aimd::new(4)).with_on_limit_change(hook);
    heard.try_enter(&clock).unwrap().dropped();
    assert_eq!(reads.get(), 5);
}
