//! Loom model of the circuit breaker: concurrent half-open probes never exceed the limit,
//! and every slot comes back.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_breaker`.

#![cfg(loom)]

use core::time::Duration;

use dike::breaker::{Breaker, CountWindow};
use dike::time::timer_fn;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

#[test]
fn concurrent_probes_never_exceed_the_limit() {
    let mut model = loom::model::Builder::new();
    // Bounded preemption keeps the model small enough for CI; races need few preemptions.
    model.preemption_bound = Some(2);
    model.check(|| {
        let at = |secs: u64| {
            timer_fn(
                move || Duration::from_secs(secs),
                |_: Duration| core::future::ready(()),
            )
        };
        let breaker = Arc::new(
            Breaker::new(CountWindow::<4>::new())
                .try_with_min_calls(1)
                .unwrap()
                .try_with_probes(2)
                .unwrap(),
        );
        breaker.try_acquire(at(0)).unwrap().failure(); // open, 5 s break
        let live = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let breaker = Arc::clone(&breaker);
                let live = Arc::clone(&live);
                thread::spawn(move || {
                    let Ok(call) = breaker.try_acquire(at(5)) else {
                        return;
                    };
                    if call.is_probe() {
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} probes at once");
                        live.fetch_sub(1, Ordering::SeqCst);
                    }
                    // One thread's probe is dropped unreported, the others succeed.
                    if i == 0 { drop(call) } else { call.success() }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(breaker.stats().probes_in_flight, 0, "every slot came back");
    });
}
