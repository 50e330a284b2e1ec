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
