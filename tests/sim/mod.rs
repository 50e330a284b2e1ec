//! The simulation model of issue 16's tests A, shared by `tests/adaptive_sim.rs` and
//! `examples/adaptive_sim.rs` (each includes it with `#[path]`).
//!
//! Server: `C` workers, an unbounded FIFO queue, service `s·U(0.8, 1.2)` (or `Exp(s)`);
//! client: Poisson arrivals, `try_enter` (a refusal is shed), the RTT reported per completion.

#![allow(dead_code)]

use core::cmp::Reverse;
use core::time::Duration;
use std::collections::{BinaryHeap, VecDeque};

use dike::adaptive::{AdaptiveGate, AdaptivePermit, Algorithm, Gradient};
use dike::time::ManualTimer;

/// Issue 16's model: 64 workers, 20 ms of service.
pub const C: usize = 64;
pub const S: f64 = 0.020;
pub const SEEDS: [u64; 3] = [1, 2, 3];

pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
pub struct Scenario {
    /// Workers (before any halving) and the mean service time in seconds.
    pub c: usize,
    pub s: f64,
    pub exp_service: bool,
    /// Load (× c/s) before and after t = 30 s.
    pub load: (f64, f64),
    /// At t = 45 s: workers halve, or the service time doubles.
    pub halve_workers: bool,
    pub slow_service: bool,
}

pub const BASE: Scenario = Scenario {
    c: C,
    s: S,
    exp_service: false,
    load: (1.5, 1.5),
    halve_workers: false,
    slow_service: false,
};

/// What one run produced: the limit every 10 ms, refusals, and completions.
pub struct Trace {
    pub limit: Vec<usize>, // index i ↔ t = i × 10 ms
    pub refusals: Vec<f64>,
    pub arrivals: usize,
    /// (completion time, latency s)
    pub done: Vec<(f64, f64)>,
    pub peak_in_flight_low: usize,
    /// The scenario's mean service time (s), for `good`.
    pub s: f64,
}

impl Trace {
    pub fn at(&self, t: f64) -> usize {
        self.limit[((t * 100.0) as usize).min(self.limit.len() - 1)]
    }
    pub fn share(&self, from: f64, to: f64, pred: impl Fn(usize) -> bool) -> f64 {
        let r = &self.limit[(from * 100.0) as usize..(to * 100.0) as usize];
        r.iter().filter(|l| pred(**l)).count() as f64 / r.len() as f64
    }
    pub fn mean(&self, from: f64, to: f64) -> f64 {
        let r = &self.limit[(from * 100.0) as usize..(to * 100.0) as usize];
        r.iter().sum::<usize>() as f64 / r.len() as f64
    }
    pub fn throughput(&self, from: f64, to: f64, capacity: f64) -> f64 {
        let n = self
            .done
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .count();
        n as f64 / (to - from) / capacity
    }
    pub fn good(&self, from: f64, to: f64) -> f64 {
        let n = self
            .done
            .iter()
            .filter(|(t, l)| (from..to).contains(t) && *l <= 3.0 * self.s)
            .count();
        n as f64 / (to - from)
    }
    pub fn p99_ms(&self, from: f64, to: f64) -> f64 {
        let mut v: Vec<f64> = self
            .done
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, l)| l * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() * 99 / 100).copied().unwrap_or(0.0)
    }
    /// First time from which the limit stays inside [lo, hi] until `until`.
    pub fn settled(&self, lo: usize, hi: usize, until: f64) -> Option<f64> {
        let end = (until * 100.0) as usize;
        let mut first = None;
        for (i, l) in self.limit[..end].iter().enumerate() {
            if (lo..=hi).contains(l) {
                first.get_or_insert(i);
            } else {
                first = None;
            }
        }
        first.map(|i| i as f64 / 100.0)
    }
}

pub fn simulate<A: Algorithm>(seed: u64, sc: Scenario, algorithm: A) -> Trace {
    simulate_observed(seed, sc, algorithm, |_, _| {})
}

/// `simulate`, calling `observe(t, gate)` every 10 ms of virtual time (for diagnostics).
pub fn simulate_observed<A: Algorithm>(
    seed: u64,
    sc: Scenario,
    algorithm: A,
    mut observe: impl FnMut(f64, &AdaptiveGate<A>),
) -> Trace {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Event {
        Done(usize),
        Arrive,
    }
    let timer = ManualTimer::new();
    let gate = AdaptiveGate::new(algorithm);
    let mut rng = Rng(seed);
    let mut calls: Vec<Option<(AdaptivePermit<'_, &ManualTimer, A>, Duration)>> = Vec::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut busy = 0usize;
    let mut events = BinaryHeap::new();
    events.push(Reverse((Duration::ZERO, Event::Arrive)));
    let mut trace = Trace {
        limit: Vec::new(),
        refusals: Vec::new(),
        arrivals: 0,
        done: Vec::new(),
        peak_in_flight_low: 0,
        s: sc.s,
    };
    let (c, s0) = (sc.c, sc.s);
    let end = Duration::from_secs(90);
    while let Some(Reverse((t, event))) = events.pop() {
        if t > end {
            break;
        }
        while (trace.limit.len() as f64) * 0.01 <= t.as_secs_f64() {
            observe(trace.limit.len() as f64 * 0.01, &gate);
            trace.limit.push(gate.limit());
        }
        timer.advance_to(t);
        let secs = t.as_secs_f64();
        let after = secs >= 45.0;
        let workers = if after && sc.halve_workers { c / 2 } else { c };
        let s = if after && sc.slow_service {
            2.0 * s0
        } else {
            s0
        };
        let service = |rng: &mut Rng| {
            let x = if sc.exp_service {
                -(1.0 - rng.uniform()).ln()
            } else {
                0.8 + 0.4 * rng.uniform()
            };
            Duration::from_secs_f64(s * x)
        };
        match event {
            Event::Arrive => {
                let load = if secs < 30.0 { sc.load.0 } else { sc.load.1 };
                let lambda = load * c as f64 / s0;
                let gap = -(1.0 - rng.uniform()).ln() / lambda;
                events.push(Reverse((t + Duration::from_secs_f64(gap), Event::Arrive)));
                trace.arrivals += 1;
                let Ok(permit) = gate.try_enter(&timer) else {
                    trace.refusals.push(secs);
                    continue;
                };
                if secs < 30.0 {
                    trace.peak_in_flight_low = trace.peak_in_flight_low.max(gate.stats().in_use);
                }
                calls.push(Some((permit, t)));
                let id = calls.len() - 1;
                if busy < workers {
                    busy += 1;
                    events.push(Reverse((t + service(&mut rng), Event::Done(id))));
                } else {
                    queue.push_back(id);
                }
            }
            Event::Done(id) => {
                let (permit, arrival) = calls[id].take().unwrap();
                permit.success();
                trace.done.push((secs, (t - arrival).as_secs_f64()));
                busy -= 1;
                while busy < workers {
                    let Some(next) = queue.pop_front() else { break };
                    busy += 1;
                    events.push(Reverse((t + service(&mut rng), Event::Done(next))));
                }
            }
        }
    }
    trace
}

/// The controller under test, with issue 16's initial limit of 20 on its server (c = 64),
/// scaled to `c × 5 / 16` on the others.
pub fn gradient(seed: u64, sc: Scenario) -> Gradient {
    Gradient::new((sc.c * 5 / 16) as u32).with_seed(seed)
}

pub fn fixed(n: u32) -> dike::adaptive::Aimd {
    dike::adaptive::Aimd::new(n).with_bounds(n, n).unwrap()
}

impl Scenario {
    /// Completions per second at capacity (before any change at 45 s).
    pub fn cap(&self) -> f64 {
        self.c as f64 / self.s
    }
}
