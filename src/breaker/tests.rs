//! Engine tests: the windows against a naive model, break lengths, and the state machine
//! without a runtime.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use proptest::prelude::*;

use super::engine::{BreakDuration, Engine, Report};
use super::window::{CountWindow, TimeWindow, Window};
use super::{BreakerState, DEFAULT_CONFIG};

proptest! {
    #[test]
    fn count_window_matches_the_last_n_calls(calls in prop::collection::vec(any::<bool>(), 0..200)) {
        let mut window = CountWindow::<7>::new();
        let mut model = VecDeque::new();
        for failed in calls {
            window.record(Duration::ZERO, failed);
            model.push_back(failed);
            if model.len() > 7 {
                model.pop_front();
            }
            let failures = model.iter().filter(|f| **f).count() as u32;
            prop_assert_eq!(window.counts(Duration::ZERO), (model.len() as u32, failures));
        }
    }

    #[test]
    fn time_window_matches_the_calls_of_the_last_buckets(
        steps in prop::collection::vec((0u64..1500, any::<bool>()), 0..100),
    ) {
        let bucket = Duration::from_millis(100);
        let mut window = TimeWindow::<5>::new(bucket).unwrap();
        let mut now = Duration::ZERO;
        let mut model: Vec<(Duration, bool)> = Vec::new();
        for (step, failed) in steps {
            now += Duration::from_millis(step);
            window.record(now, failed);
            model.push((now, failed));
            let current = now.as_millis() / 100;
            let inside: Vec<_> = model.iter().filter(|(t, _)| t.as_millis() / 100 + 5 > current).collect();
            let failures = inside.iter().filter(|(_, f)| *f).count() as u32;
            prop_assert_eq!(window.counts(now), (inside.len() as u32, failures));
        }
    }

    #[test]
    fn break_lengths_grow_and_stay_capped(first in 1u64..10_000, factor in 1.0f64..10.0, n in 1u32..100) {
        let first = Duration::from_millis(first);
        let cap = first * 20;
        let b = BreakDuration::exponential(first, factor, cap).unwrap();
        prop_assert!(b.for_opening(n) <= cap);
        prop_assert!(b.for_opening(n) >= first);
        prop_assert!(b.for_opening(n + 1) >= b.for_opening(n));
    }
}

#[test]
fn half_open_admits_exactly_the_configured_probes() {
    let config = super::engine::Config {
        probes: 3,
        min_calls: 1,
        ..DEFAULT_CONFIG
    };
    let mut engine = Engine::new(CountWindow::<4>::new());
    let t = engine.acquire(Duration::ZERO, &config).0.unwrap();
    engine.complete(Duration::ZERO, t, Report::Failure, &config);
    assert_eq!(engine.state(Duration::ZERO), BreakerState::Open);
    let at = Duration::from_secs(5);
    let admitted = (0..10)
        .filter(|_| engine.acquire(at, &config).0.is_ok())
        .count();
    assert_eq!(admitted, 3);
    assert_eq!(engine.counters.rejected, 7);
}
