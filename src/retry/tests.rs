//! Engine tests: schedules, jitter, the generator and the budget, with no runtime.

use core::time::Duration;

use proptest::prelude::*;

use super::backoff::Backoff;
use super::budget::RetryBudget;
use super::jitter::Jitter;
use super::rng::SplitMix64;
use crate::error::ConfigValue;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn constant_and_none_repeat() {
    assert!(Backoff::none().into_iter().take(50).all(|d| d.is_zero()));
    assert!(
        Backoff::constant(ms(7))
            .into_iter()
            .take(50)
            .all(|d| d == ms(7))
    );
}

#[test]
fn exponential_is_d_times_b_to_the_n() {
    let delays: Vec<_> = Backoff::exponential(Duration::from_secs(1), 2.5)
        .unwrap()
        .into_iter()
        .take(6)
        .collect();
    let expected: Vec<_> = [1.0, 2.5, 6.25, 15.625, 39.0625, 97.65625]
        .into_iter()
        .map(Duration::from_secs_f64)
        .collect();
    assert_eq!(delays, expected);
}

#[test]
fn cap_holds_and_growth_saturates() {
    let capped = Backoff::exponential(ms(1), 10.0)
        .unwrap()
        .with_max_delay(ms(500));
    let delays: Vec<_> = capped.into_iter().take(6).collect();
    assert_eq!(delays, [ms(1), ms(10), ms(100), ms(500), ms(500), ms(500)]);

    // Without a cap the schedule saturates at Duration::MAX and never panics.
    let huge = Backoff::exponential(Duration::from_secs(1), 1e6).unwrap();
    let last = huge.into_iter().nth(100).unwrap();
    assert_eq!(last, Duration::MAX);
    let big_start = Backoff::exponential(Duration::MAX, 2.0).unwrap();
    assert!(big_start.into_iter().take(3).all(|d| d == Duration::MAX));
}

#[test]
fn multiplier_is_validated() {
    for bad in [f64::NAN, -1.0, 0.0, 0.5, f64::INFINITY, f64::NEG_INFINITY] {
        let err = Backoff::exponential(ms(1), bad).unwrap_err();
        assert_eq!(err.parameter(), "multiplier");
        match err.value() {
            ConfigValue::Float(v) => assert!(v.is_nan() && bad.is_nan() || v == bad),
            other => panic!("unexpected value {other:?}"),
        }
    }
    assert!(Backoff::exponential(ms(1), 1.0).is_ok());
    assert!(Backoff::exponential(ms(1), f64::MAX).is_ok());
}

#[test]
fn a_multiplier_needs_a_first_delay() {
    // 0 × bⁿ = 0: an "exponential" schedule from zero would never wait.
    let err = Backoff::exponential(Duration::ZERO, 2.0).unwrap_err();
    assert_eq!(err.parameter(), "first_delay");
    assert_eq!(err.value(), ConfigValue::Duration(Duration::ZERO));
    assert_eq!(
        Backoff::none()
            .with_multiplier(1.5)
            .unwrap_err()
            .parameter(),
        "first_delay"
    );
    // A bad multiplier is named first, whatever the delay.
    let err = Backoff::exponential(Duration::ZERO, f64::NAN).unwrap_err();
    assert_eq!(err.parameter(), "multiplier");
    // Multiplier 1 from zero is the no-delay schedule, not a trap.
    assert_eq!(
        Backoff::exponential(Duration::ZERO, 1.0),
        Ok(Backoff::none())
    );
}

#[test]
fn debug_shows_no_cap_and_no_seed_as_none() {
    let text = format!("{:?}", Backoff::exponential(ms(100), 2.0).unwrap());
    assert_eq!(
        text,
        "Backoff { first_delay: 100ms, multiplier: 2.0, max_delay: none, jitter: None, seed: none }"
    );
    let iter = Backoff::constant(ms(1))
        .with_max_delay(ms(2))
        .with_seed(1)
        .iter();
    assert_eq!(
        format!("{iter:?}"),
        "BackoffIter { next_nominal: 1ms, backoff: Backoff { first_delay: 1ms, multiplier: 1.0, \
         max_delay: 2ms, jitter: None, seed: 1 }, .. }"
    );
}

#[test]
fn seeded_schedules_repeat_and_differ_by_seed() {
    let base = Backoff::exponential(ms(100), 2.0)
        .unwrap()
        .with_max_delay(Duration::from_secs(10))
        .with_jitter(Jitter::Full);
    let a: Vec<_> = base.with_seed(1).into_iter().take(8).collect();
    let b: Vec<_> = base.with_seed(1).into_iter().take(8).collect();
    let c: Vec<_> = base.with_seed(2).into_iter().take(8).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Unseeded iterators draw their own seeds.
    let d: Vec<_> = base.into_iter().take(8).collect();
    let e: Vec<_> = base.into_iter().take(8).collect();
    assert_ne!(d, e);
}

#[test]
fn splitmix_known_answer() {
    // Reference outputs of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
    let mut rng = SplitMix64::new(1_234_567);
    assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
    assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
}

#[test]
fn between_covers_the_range_edges() {
    let mut rng = SplitMix64::new(9);
    assert_eq!(rng.between(5, 5), 5);
    assert_eq!(rng.between(5, 3), 5);
    let mut seen = [false; 4];
    for _ in 0..1000 {
        let v = rng.between(10, 13);
        assert!((10..=13).contains(&v));
        seen[(v - 10) as usize] = true;
    }
    assert_eq!(seen, [true; 4]);
    let _ = rng.between(0, u64::MAX); // full range: no overflow
}

#[test]
fn budget_arithmetic() {
    let budget = RetryBudget::with_capacity(12, 5, 2).unwrap();
    assert!(budget.try_withdraw());
    assert!(budget.try_withdraw());
    assert_eq!(budget.available(), 2);
    assert!(!budget.try_withdraw());
    assert_eq!(
        budget.available(),
        2,
        "a refused withdrawal changes nothing"
    );
    budget.deposit();
    budget.deposit();
    assert_eq!(budget.available(), 6);
    budget.cancel_withdrawal();
    budget.cancel_withdrawal();
    assert_eq!(budget.available(), 12, "saturates at capacity");
    assert_eq!(budget.capacity(), 12);
}

#[test]
fn budget_debug_shows_the_tokens_left() {
    let budget = RetryBudget::with_capacity(10, 5, 1).unwrap();
    assert!(budget.try_withdraw());
    assert_eq!(
        format!("{budget:?}"),
        "RetryBudget { available: 5, capacity: 10, retry_cost: 5, success_refund: 1 }"
    );
}

#[test]
fn budget_is_validated() {
    let err = RetryBudget::with_capacity(10, 0, 1).unwrap_err();
    assert_eq!(err.parameter(), "retry_cost");
    let err = RetryBudget::with_capacity(4, 5, 1).unwrap_err();
    assert_eq!(err.parameter(), "capacity");
    assert_eq!(err.value(), ConfigValue::Int(4));
    assert!(RetryBudget::with_capacity(5, 5, 0).is_ok());
}

fn jitter_kind() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every jitter kind stays within its documented range, under the cap, for any seed.
    #[test]
    fn jitter_stays_in_bounds(
        delay_us in 1u64..10_000_000,
        multiplier in 1.0f64..4.0,
        cap_us in 0u64..60_000_000,
        jitter in jitter_kind(),
        seed in any::<u64>(),
    ) {
        let d = Duration::from_micros(delay_us);
        let cap = Duration::from_micros(cap_us);
        let backoff = Backoff::exponential(d, multiplier)
            .unwrap()
            .with_max_delay(cap)
            .with_jitter(jitter)
            .with_seed(seed);
        let unjittered: Vec<_> = backoff.with_jitter(Jitter::None).into_iter().take(24).collect();
        let mut prev = d;
        for (n, delay) in backoff.into_iter().take(24).enumerate() {
            let c = unjittered[n];
            prop_assert!(c <= cap);
            prop_assert!(delay <= cap, "{jitter:?} {delay:?} > cap {cap:?}");
            match jitter {
                Jitter::None => prop_assert_eq!(delay, c),
                Jitter::Full => prop_assert!(delay <= c),
                Jitter::Equal => prop_assert!(delay >= c / 2 && delay <= c),
                Jitter::Decorrelated => {
                    prop_assert!(delay >= d.min(cap));
                    prop_assert!(delay <= (prev * 3).max(d));
                }
            }
            prev = delay;
        }
    }

    /// The unjittered schedule is monotone and capped.
    #[test]
    fn schedule_is_monotone_and_capped(
        delay_ns in 1u64..u64::MAX / 4,
        multiplier in 1.0f64..1e3,
        cap_ns in any::<u64>(),
    ) {
        let cap = Duration::from_nanos(cap_ns);
        let backoff = Backoff::exponential(Duration::from_nanos(delay_ns), multiplier)
            .unwrap()
            .with_max_delay(cap);
        let mut last = Duration::ZERO;
        for delay in backoff.into_iter().take(64) {
            prop_assert!(delay >= last);
            prop_assert!(delay <= cap);
            last = delay;
        }
    }
}
