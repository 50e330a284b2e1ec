use core::time::Duration;

use proptest::prelude::*;

use super::engine::{AtomicTat, Decision, Gcra, LockedTat, horizon, step};
use super::{Quota, nanos};
use crate::error::ConfigValue;

const MS: u64 = 1_000_000;

#[test]
fn step_admits_a_burst_then_spaces_by_the_interval() {
    // 2/s, burst 3: T = 500 ms, capacity 1500 ms.
    let (t, cap) = (500 * MS, 1500 * MS);
    let mut tat = 0;
    for expected in [500, 1000, 1500] {
        tat = step(tat, 0, t, cap).unwrap();
        assert_eq!(tat, expected * MS);
    }
    assert_eq!(step(tat, 0, t, cap), Err(500 * MS));
    assert_eq!(step(tat, 500 * MS - 1, t, cap), Err(500 * MS));
    assert_eq!(step(tat, 500 * MS, t, cap), Ok(2000 * MS));
}

#[test]
fn step_forgets_idle_time_beyond_the_burst() {
    let (t, cap) = (10, 30);
    // tat far in the past counts as now.
    let mut tat = 5;
    let now = 1_000_000;
    for _ in 0..3 {
        tat = step(tat, now, t, cap).unwrap();
    }
    assert_eq!(step(tat, now, t, cap), Err(now + 10));
}

#[test]
fn step_with_a_cost_reports_when_all_of_it_fits() {
    let (t, cap) = (10, 40);
    let tat = step(0, 0, 30, cap).unwrap(); // 3 of 4
    assert_eq!(tat, 30);
    // 2 more need tat + 20 <= now + 40, i.e. now >= 10.
    assert_eq!(step(tat, 0, 2 * t, cap), Err(10));
    assert_eq!(step(tat, 9, 2 * t, cap), Err(10));
    assert_eq!(step(tat, 10, 2 * t, cap), Ok(50));
}

#[test]
fn step_is_exact_at_the_end_of_time() {
    let max = u64::MAX;
    // capacity 10 (burst 1 of T = 10): the horizon is max - 10.
    let h = max - 10;
    assert_eq!(horizon(10), h);
    // A clock past the horizon counts as the horizon: one admission, then refused until
    // h + 10, which the engine's clock never reaches.
    assert_eq!(step(0, max, 10, 10), Ok(max));
    assert_eq!(step(max, max, 10, 10), Err(h + 10));
    assert_eq!(step(max, h, 10, 10), Err(h + 10));
    // Just before the horizon the arithmetic is the ordinary one.
    assert_eq!(step(0, h - 10, 10, 10), Ok(h));
    assert_eq!(step(h, h - 1, 10, 10), Err(h));
    assert_eq!(step(h, h, 10, 10), Ok(max));
    // A tat far in the future: start + cost would overflow, refused exactly.
    assert_eq!(step(max, 0, 10, 10), Err(max));
    assert_eq!(step(max - 3, 0, 10, 40), Err(max - 33));
    // capacity u64::MAX (one per 584 years): the horizon is 0.
    assert_eq!(step(0, max, max, max), Ok(max));
    assert_eq!(step(max, max, max, max), Err(max));
}

#[test]
fn a_saturated_clock_admits_the_burst_then_never() {
    for (interval, burst) in [
        (1_000_000_000, 1),
        (1_000_000_000, 2),
        (1, 7),
        (u64::MAX / 4, 4),
    ] {
        let gcra = Gcra::new(interval, interval * burst);
        for _ in 0..burst {
            assert_eq!(gcra.check(u64::MAX, 1), Decision::Ok);
        }
        for now in [u64::MAX, u64::MAX - 1, horizon(interval * burst)] {
            assert_eq!(gcra.check(now, 1), Decision::Never, "{interval} {burst}");
        }
        assert_eq!(gcra.tat(), u64::MAX);
    }
}

#[test]
fn check_writes_only_on_admission() {
    let gcra = Gcra::new(100, 100);
    assert_eq!(gcra.check(0, 1), Decision::Ok);
    for now in [0, 50, 99] {
        assert_eq!(gcra.check(now, 1), Decision::NotUntil(100));
    }
    assert_eq!(gcra.check(100, 1), Decision::Ok);
    assert_eq!(gcra.check(150, 1), Decision::NotUntil(200));
}

#[test]
fn nanos_saturates() {
    assert_eq!(nanos(Duration::from_nanos(1_500)), 1_500);
    assert_eq!(nanos(Duration::new(3, 7)), 3_000_000_007);
    assert_eq!(nanos(Duration::MAX), u64::MAX);
    assert_eq!(
        nanos(Duration::from_secs(u64::MAX / 1_000_000_000 + 1)),
        u64::MAX
    );
}

#[test]
fn params_round_the_interval_up_and_reject_overflow() {
    assert_eq!(
        Quota::per_second(3).params(),
        Ok((333_333_334, 333_333_334))
    );
    assert_eq!(
        Quota::per_second(2).with_burst(3).params(),
        Ok((500 * MS, 1500 * MS))
    );
    // The rate may exceed one per nanosecond: the interval is still at least 1 ns.
    assert_eq!(Quota::per_second(u32::MAX).params(), Ok((1, 1)));
    assert_eq!(
        Quota::per_second(1)
            .with_period(Duration::from_nanos(u64::MAX))
            .params(),
        Ok((u64::MAX, u64::MAX))
    );

    let err = Quota::per_second(1)
        .with_period(Duration::from_nanos(u64::MAX))
        .with_burst(2)
        .params()
        .unwrap_err();
    assert_eq!(err.parameter(), "burst");
    assert_eq!(err.value(), ConfigValue::Int(2));

    let long = Duration::from_nanos(u64::MAX) + Duration::from_nanos(1);
    let err = Quota::per_second(1).with_period(long).params().unwrap_err();
    assert_eq!(err.parameter(), "period");
    assert_eq!(err.value(), ConfigValue::Duration(long));
}

/// Replays `steps` of `(advance, cost)` on a fresh engine; returns `(time, cost)` of every
/// admission and checks each refusal's `NotUntil` on the way.
fn replay(interval: u64, burst: u32, steps: &[(u64, u32)]) -> Vec<(u64, u32)> {
    let gcra = Gcra::new(interval, interval * u64::from(burst));
    let mut now = 0u64;
    let mut admitted = Vec::new();
    for &(advance, n) in steps {
        now += advance;
        let n = n.min(burst);
        match gcra.check(now, n) {
            Decision::Ok => admitted.push((now, n)),
            Decision::NotUntil(at) => {
                assert!(at > now, "NotUntil({at}) is not in the future of {now}");
                // Exact: still refused just before, admitted at `at`.
                let (cost, cap) = (interval * u64::from(n), interval * u64::from(burst));
                let tat = gcra.tat();
                assert_eq!(step(tat, at - 1, cost, cap), Err(at));
                assert!(step(tat, at, cost, cap).is_ok());
            }
            Decision::Never => panic!("never, at {now}: far from the end of time"),
        }
    }
    admitted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// In every window [a, b], admitted cost <= burst + floor((b - a) / T); and (checked in
    /// `replay`) every refusal's `NotUntil` is exact.
    #[test]
    fn never_admits_more_than_burst_plus_elapsed(
        interval in 1u64..1_000,
        burst in 1u32..8,
        steps in proptest::collection::vec((0u64..1_500, 0u32..4), 1..120),
    ) {
        let admitted = replay(interval, burst, &steps);
        for (i, &(a, _)) in admitted.iter().enumerate() {
            let mut total = 0u64;
            for &(b, n) in &admitted[i..] {
                total += u64::from(n);
                let bound = u64::from(burst) + (b - a) / interval;
                prop_assert!(total <= bound, "{total} admitted in [{a}, {b}], bound {bound}");
            }
        }
    }

    /// An idle engine admits a whole burst at once, then nothing until one interval later.
    #[test]
    fn idle_engine_admits_exactly_a_burst(
        interval in 1u64..1_000_000,
        burst in 1u32..16,
        idle in 0u64..10_000_000,
    ) {
        let gcra = Gcra::new(interval, interval * u64::from(burst));
        for _ in 0..burst {
            prop_assert_eq!(gcra.check(idle, 1), Decision::Ok);
        }
        prop_assert_eq!(gcra.check(idle, 1), Decision::NotUntil(idle + interval));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Near the end of time, at one instant (however far past the horizon the clock reads)
    /// at most a burst is admitted, and a refusal is `Never` exactly when its instant lies
    /// past the horizon.
    #[test]
    fn at_most_a_burst_at_the_end_of_time(
        interval in 1u64..1_000_000_000,
        burst in 1u32..16,
        before in 0u64..100_000_000_000,
        readings in proptest::collection::vec(0u64..1_000_000_000_000, 1..40),
        costs in proptest::collection::vec(1u32..4, 1..40),
    ) {
        let capacity = interval * u64::from(burst);
        let h = horizon(capacity);
        let gcra = Gcra::new(interval, capacity);
        // Some history just before the horizon.
        let mut admitted_at_end = 0u64;
        let _ = gcra.check(h.saturating_sub(before), 1);
        for (i, &back) in readings.iter().enumerate() {
            // Every reading at or past the horizon: the clock has saturated.
            let now = u64::MAX - back.min(u64::MAX - h);
            let n = costs[i % costs.len()].min(burst);
            match gcra.check(now, n) {
                Decision::Ok => admitted_at_end += u64::from(n),
                // The engine's clock stands at the horizon: any later instant is never.
                Decision::NotUntil(at) => prop_assert!(false, "NotUntil({at}) past the end"),
                Decision::Never => {}
            }
        }
        prop_assert!(admitted_at_end <= u64::from(burst));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The locked cell (targets without 64-bit atomics) and the atomic one agree on every
    /// decision and every stored value, up to the end of time.
    #[test]
    fn the_locked_and_the_atomic_cell_agree(
        interval in 1u64..1_000,
        burst in 1u64..8,
        steps in proptest::collection::vec((0u64..2_000, 1u64..4, any::<bool>()), 1..100),
    ) {
        let capacity = interval * burst;
        let (atomic, locked) = (AtomicTat::new(), LockedTat::new());
        let mut now = 0u64;
        for (advance, n, jump_to_end) in steps {
            now = if jump_to_end { u64::MAX - advance } else { now.saturating_add(advance) };
            let cost = n.min(burst) * interval;
            let f = |tat| step(tat, now, cost, capacity);
            prop_assert_eq!(atomic.update(f), locked.update(f));
            prop_assert_eq!(atomic.load(), locked.load());
        }
    }
}
