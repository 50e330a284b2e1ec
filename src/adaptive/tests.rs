//! Engine tests: AIMD's rules, bounds and determinism, without a runtime.

use core::time::Duration;

use proptest::prelude::*;

use super::engine::{Aimd, Outcome};

const Z: Duration = Duration::ZERO;

#[test]
fn grows_only_while_used() {
    let mut aimd = Aimd::new(10);
    assert_eq!(aimd.on_sample(Z, Z, 4, Outcome::Success), 10, "4·2 < 10");
    assert_eq!(aimd.on_sample(Z, Z, 5, Outcome::Success), 11, "5·2 ≥ 10");
}

#[test]
fn backs_off_by_the_ratio_and_at_least_one() {
    let mut aimd = Aimd::new(100);
    assert_eq!(aimd.on_sample(Z, Z, 0, Outcome::Dropped), 90);
    let mut small = Aimd::new(5);
    assert_eq!(
        small.on_sample(Z, Z, 0, Outcome::Dropped),
        4,
        "5·0.9 = 4.5 → 4"
    );
    let mut tiny = Aimd::new(2);
    assert_eq!(tiny.on_sample(Z, Z, 0, Outcome::Dropped), 1);
    assert_eq!(tiny.on_sample(Z, Z, 0, Outcome::Dropped), 1, "the floor");
}

#[test]
fn config_errors_name_the_parameter() {
    assert_eq!(
        Aimd::new(1).with_bounds(0, 3).unwrap_err().parameter(),
        "min"
    );
    assert_eq!(
        Aimd::new(1).with_bounds(4, 3).unwrap_err().parameter(),
        "max"
    );
    for bad in [0.0, 0.49, 1.0, f64::NAN] {
        assert_eq!(
            Aimd::new(1).with_backoff(bad).unwrap_err().parameter(),
            "backoff"
        );
    }
}

proptest! {
    #[test]
    fn the_limit_stays_in_bounds_and_replays_bit_for_bit(
        samples in prop::collection::vec((0u64..500, 0u32..200, 0u8..3), 0..300),
        min in 1u32..20,
        span in 0u32..100,
    ) {
        let start = Aimd::new(20)
            .with_bounds(min, min + span)
            .unwrap()
            .with_rtt_threshold(Duration::from_millis(250));
        let (mut a, mut b) = (start, start);
        for (rtt, in_flight, outcome) in samples {
            let outcome = [Outcome::Success, Outcome::Ignore, Outcome::Dropped][outcome as usize];
            let rtt = Duration::from_millis(rtt);
            let la = a.on_sample(Z, rtt, in_flight, outcome);
            prop_assert!(la >= min && la <= min + span);
            prop_assert_eq!(la, b.on_sample(Z, rtt, in_flight, outcome));
        }
    }
}

mod gradient {
    use core::time::Duration;

    use proptest::prelude::*;

    use super::super::engine::Outcome;
    use super::super::gradient::Gradient;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `n` successes of `rtt` every `every`, with `in_flight`; returns the time after.
    fn feed(
        g: &mut Gradient,
        mut now: Duration,
        n: u32,
        every: Duration,
        rtt: Duration,
        in_flight: u32,
    ) -> Duration {
        for _ in 0..n {
            now += every;
            g.on_sample(now, rtt, in_flight, Outcome::Success);
        }
        now
    }

    /// Unqueued calls of 20 ms, 2 in flight, until the baseline is learnt.
    fn learn(g: &mut Gradient) -> Duration {
        let mut now = Duration::ZERO;
        while g.baseline().is_none() {
            now = feed(g, now, 1, ms(10), ms(20), 2);
            assert!(now < Duration::from_secs(100), "never learnt");
        }
        now
    }

    #[test]
    fn the_baseline_is_a_mean_not_one_lucky_minimum() {
        let mut g = Gradient::new(20);
        g.on_sample(ms(1), Duration::from_micros(100), 1, Outcome::Success); // lucky
        learn(&mut g);
        let baseline = g.baseline().unwrap();
        assert!(baseline > ms(19) && baseline <= ms(20), "{baseline:?}");
    }

    #[test]
    fn sustained_overload_never_drifts_the_baseline_or_the_limit_up() {
        // A server with 20 workers and 20 ms of service: RTT = 20 ms × max(1, L / 20) with
        // L calls in flight; the client always fills the gate (overload), for ten minutes.
        let mut g = Gradient::new(40).with_period(Duration::from_secs(5));
        let mut now = Duration::ZERO;
        let mut limits = Vec::new();
        for _ in 0..600_000 {
            now += ms(1);
            let l = u64::from(g.limit());
            let rtt = Duration::from_micros(20_000 * l.max(20) / 20);
            limits.push(g.on_sample(now, rtt, g.limit(), Outcome::Success));
        }
        let baseline = g.baseline().unwrap();
        assert!(baseline >= ms(19) && baseline <= ms(22), "{baseline:?}");
        let late = &limits[300_000..];
        let (lo, hi) = (late.iter().min().unwrap(), late.iter().max().unwrap());
        assert!(*lo >= 20 && *hi <= 26, "the limit wandered to [{lo}, {hi}]");
    }

    #[test]
    fn no_growth_while_app_limited() {
        let mut g = Gradient::new(40);
        let now = learn(&mut g);
        let before = g.limit();
        feed(&mut g, now, 5_000, ms(1), ms(20), 5); // 5 in flight of 40: unused
        assert_eq!(g.limit(), before);
    }

    #[test]
    fn grows_below_the_knee_while_used() {
        let mut g = Gradient::new(20);
        let now = learn(&mut g);
        let before = g.limit();
        let used = g.limit();
        feed(&mut g, now, 200, ms(1), ms(20), used);
        assert!(g.limit() > before);
    }

    #[test]
    fn app_limited_growth_stops_at_twice_the_peak_in_flight() {
        // Unqueued calls (RTT = baseline), at most 30 in flight: the limit may grow past
        // the initial 20, but never above 2 × 30.
        let mut g = Gradient::new(20);
        let now = learn(&mut g);
        let mut top = 0;
        let mut t = now;
        for i in 0..20_000u32 {
            t += ms(1);
            top = top.max(g.on_sample(t, ms(20), 10 + i % 21, Outcome::Success));
        }
        assert!(g.limit() > 20, "it grew: {}", g.limit());
        assert!(top <= 60, "reached {top}");
    }

    #[test]
    fn noise_around_the_target_holds_the_limit() {
        // A server at the target (RTT = baseline × 1.15 on average) with ±10 % noise: the
        // windows are inconclusive, the limit does not wander.
        let mut g = Gradient::new(40).with_period(Duration::from_secs(1000));
        let mut now = learn(&mut g);
        let before = g.limit();
        for i in 0..20_000u64 {
            now += ms(1);
            let noise = (i * 7919) % 21; // 0..=20 → ±10 % of 23 ms
            let rtt = Duration::from_micros(23_000 * (90 + noise) / 100);
            g.on_sample(now, rtt, g.limit(), Outcome::Success);
        }
        let after = g.limit();
        assert!(after.abs_diff(before) <= before / 10, "{before} → {after}");
    }

    #[test]
    fn free_permits_do_not_lift_the_limit_above_the_tolerance() {
        // 20 workers, 20 ms: RTT = 20 ms × max(1, L / 20) with L calls in flight; the
        // arrivals leave 3 permits free (L = limit − 3), as Poisson arrivals do. Aiming the
        // in-flight calls at 1.15 × 20 = 23 would hold the limit at 26 (1.3 × the knee).
        let mut g = Gradient::new(40).with_period(Duration::from_secs(5));
        let mut now = Duration::ZERO;
        let mut limits = Vec::new();
        for _ in 0..300_000 {
            now += ms(1);
            let l = u64::from(g.limit().saturating_sub(3).max(1));
            let rtt = Duration::from_micros(20_000 * l.max(20) / 20);
            limits.push(g.on_sample(now, rtt, l as u32, Outcome::Success));
        }
        let late = &limits[150_000..];
        let (lo, hi) = (late.iter().min().unwrap(), late.iter().max().unwrap());
        assert!(*lo >= 20 && *hi <= 25, "the limit wandered to [{lo}, {hi}]");
    }

    #[test]
    fn the_baseline_does_not_ratchet_up_through_its_own_pinned_queue() {
        // Every periodic measurement reads 10 % high (the pinned calls queued a little):
        // within the tolerance, so the baseline stays where it was.
        let mut g = Gradient::new(20).with_period(Duration::from_millis(500));
        let mut now = learn(&mut g);
        let first = g.baseline().unwrap();
        for _ in 0..50_000 {
            now += ms(1);
            g.on_sample(now, ms(22), 1, Outcome::Success);
        }
        assert_eq!(g.baseline(), Some(first));
    }

    #[test]
    fn a_rise_beyond_the_tolerance_is_confirmed_then_learnt() {
        // The service slows from 20 to 40 ms for good (calls unqueued): re-learnt.
        let mut g = Gradient::new(20).with_period(Duration::from_millis(500));
        let mut now = learn(&mut g);
        for _ in 0..50_000 {
            now += ms(1);
            g.on_sample(now, ms(40), 1, Outcome::Success);
        }
        let b = g.baseline().unwrap();
        assert!(b > ms(39) && b <= ms(40), "{b:?}");
    }

    #[test]
    fn extreme_rtts_neither_overflow_nor_panic() {
        let mut g = Gradient::new(20);
        let huge = Duration::from_secs(u64::MAX / 4);
        let mut now = Duration::ZERO;
        for i in 0..10_000u32 {
            now += ms(1);
            let rtt = if i % 2 == 0 {
                huge
            } else {
                Duration::from_nanos(1)
            };
            let l = g.on_sample(now, rtt, 1 + i % 40, Outcome::Success);
            assert!((1..=1000).contains(&l));
        }
    }

    #[test]
    fn config_errors_name_the_parameter() {
        assert_eq!(
            Gradient::new(1).with_bounds(0, 1).unwrap_err().parameter(),
            "min"
        );
        assert_eq!(
            Gradient::new(1).with_bounds(3, 2).unwrap_err().parameter(),
            "max"
        );
        assert_eq!(
            Gradient::new(1)
                .with_tolerance(1.5)
                .unwrap_err()
                .parameter(),
            "tolerance"
        );
    }

    proptest! {
        #[test]
        fn bounded_and_bit_for_bit_deterministic(
            samples in prop::collection::vec((1u64..200, 1u64..100, 1u32..100, 0u8..3), 0..500),
        ) {
            let start = Gradient::new(20).with_bounds(2, 200).unwrap().with_seed(9);
            let (mut a, mut b) = (start, start);
            let mut now = Duration::ZERO;
            for (step, rtt, in_flight, outcome) in samples {
                now += ms(step);
                let outcome = [Outcome::Success, Outcome::Ignore, Outcome::Dropped][outcome as usize];
                let la = a.on_sample(now, ms(rtt), in_flight, outcome);
                prop_assert!((2..=200).contains(&la));
                prop_assert_eq!(la, b.on_sample(now, ms(rtt), in_flight, outcome));
            }
            prop_assert_eq!(a, b);
        }
    }
}

/// The gate around the engine: its slot word, counters and hook, on a `ManualTimer`.
mod gate {
    use crate::adaptive::{AdaptiveGate, Aimd};
    use crate::error::TooManyCallsKind;
    use crate::time::ManualTimer;

    #[test]
    fn counts_admissions_refusals_and_the_peak() {
        let timer = ManualTimer::new();
        let gate = AdaptiveGate::new(Aimd::new(3).with_bounds(3, 3).unwrap());
        let held: Vec<_> = (0..3).map(|_| gate.try_enter(&timer).unwrap()).collect();
        let err = gate.try_enter(&timer).unwrap_err();
        assert_eq!((err.kind(), err.limit()), (TooManyCallsKind::Full, 3));
        let stats = gate.stats();
        assert_eq!(
            (
                stats.limit,
                stats.in_use,
                stats.waiting,
                stats.admitted,
                stats.rejected
            ),
            (3, 3, 0, 3, 1)
        );
        drop(held);
        gate.try_enter(&timer).unwrap().success();
        let stats = gate.stats();
        assert_eq!((stats.in_use, stats.admitted, stats.peak_in_use), (0, 4, 3));
    }

    #[test]
    fn a_lowered_limit_refuses_until_enough_have_left() {
        let timer = ManualTimer::new();
        let gate = AdaptiveGate::new(Aimd::new(4).with_backoff(0.5).unwrap());
        let mut held: Vec<_> = (0..4).map(|_| gate.try_enter(&timer).unwrap()).collect();
        held.pop().unwrap().dropped(); // 4 → 2, 3 still in flight
        assert_eq!((gate.limit(), gate.stats().in_use), (2, 3));
        assert!(gate.try_enter(&timer).is_err());
        held.pop();
        assert!(gate.try_enter(&timer).is_err(), "2 in flight of 2");
        held.pop();
        assert!(gate.try_enter(&timer).is_ok());
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn the_admission_count_carries_past_32_bits() {
        let gate = AdaptiveGate::new(Aimd::new(2));
        let timer = ManualTimer::new();
        let held = gate.try_enter(&timer).unwrap();
        gate.preset_admissions(u32::MAX);
        gate.try_enter(&timer).unwrap().ignore();
        let stats = gate.stats();
        assert_eq!(stats.admitted, 1 << 32, "u32::MAX + 1");
        assert_eq!(stats.in_use, 1, "the carry leaves the in-flight half alone");
        drop(held);
        assert_eq!(gate.stats().in_use, 0);
    }

    #[test]
    fn debug_shows_the_limit_and_the_algorithm() {
        let gate = AdaptiveGate::new(Aimd::new(5));
        let _held = gate.try_enter(ManualTimer::new()).unwrap();
        let text = format!("{gate:?}");
        assert!(
            text.starts_with("AdaptiveGate { limit: 5, in_use: 1, algorithm: Aimd"),
            "{text}"
        );
    }
}
