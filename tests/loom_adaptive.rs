//! Loom model of the adaptive gate: permits reporting success, dropped and ignore on several
//! threads while the limit moves. Calls in flight never exceed the largest limit, every slot
//! comes back, the gate's limit ends equal to the algorithm's and within its bounds, the hook
//! hears each change exactly once, and a new caller gets in afterwards (nothing is wedged).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_adaptive`.

#![cfg(loom)]

use core::time::Duration;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};

use dike::adaptive::{AdaptiveGate, Aimd, Algorithm, LimitChange, Outcome};
use dike::time::timer_fn;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// AIMD that counts the changes it makes (under the gate's lock).
#[derive(Debug, Clone)]
struct Counted {
    aimd: Aimd,
    changes: usize,
}

impl Algorithm for Counted {
    fn limit(&self) -> u32 {
        self.aimd.limit()
    }
    fn on_sample(&mut self, now: Duration, rtt: Duration, in_flight: u32, outcome: Outcome) -> u32 {
        let old = self.aimd.limit();
        let new = self.aimd.on_sample(now, rtt, in_flight, outcome);
        self.changes += usize::from(new != old);
        new
    }
}

// Loom runs one execution at a time on one OS thread: a plain static tally per execution.
static HOOK_CALLS: StdAtomicUsize = StdAtomicUsize::new(0);

fn on_change(change: LimitChange) {
    assert_ne!(change.old, change.new, "a call only for a change");
    assert!(
        (1..=2).contains(&change.new),
        "limit {} out of [1, 2]",
        change.new
    );
    HOOK_CALLS.fetch_add(1, StdOrdering::Relaxed);
}

const MAX: usize = 2;

/// One call: enter, count itself in flight, report `outcome`. Returns whether it got in.
fn call(gate: &AdaptiveGate<Counted>, live: &AtomicUsize, outcome: Outcome) -> bool {
    let clock = timer_fn(|| Duration::ZERO, |_: Duration| core::future::ready(()));
    let Ok(permit) = gate.try_enter(clock) else {
        return false;
    };
    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
    assert!(
        now <= MAX,
        "{now} calls in flight, the limit is at most {MAX}"
    );
    live.fetch_sub(1, Ordering::SeqCst);
    match outcome {
        Outcome::Success => permit.success(),
        Outcome::Dropped => permit.dropped(),
        Outcome::Ignore => drop(permit), // unreported: ignore
    }
    true
}

#[test]
fn concurrent_reports_keep_the_limit_and_the_slots_consistent() {
    let mut model = loom::model::Builder::new();
    // Bounded preemption keeps the model small enough for CI; races need few preemptions.
    model.preemption_bound = Some(2);
    model.check(|| {
        HOOK_CALLS.store(0, StdOrdering::Relaxed);
        let algorithm = Counted {
            aimd: Aimd::new(2).with_bounds(1, MAX as u32).unwrap(),
            changes: 0,
        };
        let gate = Arc::new(AdaptiveGate::new(algorithm).with_on_limit_change(on_change));
        let live = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let scripts: [&[Outcome]; 2] = [&[Outcome::Dropped, Outcome::Ignore], &[Outcome::Success]];
        let handles: Vec<_> = scripts
            .into_iter()
            .map(|script| {
                let (gate, live, admitted) =
                    (Arc::clone(&gate), Arc::clone(&live), Arc::clone(&admitted));
                thread::spawn(move || {
                    for &outcome in script {
                        if call(&gate, &live, outcome) {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        if call(&gate, &live, Outcome::Success) {
            admitted.fetch_add(1, Ordering::SeqCst);
        }
        for h in handles {
            h.join().unwrap();
        }

        let stats = gate.stats();
        assert_eq!(stats.in_use, 0, "every slot came back");
        assert_eq!(stats.admitted, admitted.load(Ordering::SeqCst));
        assert_eq!(
            stats.admitted + stats.rejected,
            4,
            "each call admitted or refused"
        );
        assert!(stats.peak_in_use <= MAX);
        let algorithm = gate.algorithm();
        assert_eq!(
            gate.limit(),
            algorithm.limit() as usize,
            "the gate's limit follows the algorithm's"
        );
        assert!((1..=MAX).contains(&gate.limit()));
        assert_eq!(
            HOOK_CALLS.load(StdOrdering::Relaxed),
            algorithm.changes,
            "one hook call per change"
        );
        // Nothing is wedged: with nothing held, a new caller gets in.
        assert!(call(&gate, &live, Outcome::Ignore));
        assert_eq!(gate.stats().in_use, 0);
    });
}
