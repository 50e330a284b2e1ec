use core::time::Duration;

use super::{ceil_units, units_to_duration};

#[test]
fn ceil_units_rounds_up() {
    assert_eq!(ceil_units(Duration::ZERO, 1_000), Some(0));
    assert_eq!(ceil_units(Duration::from_nanos(1), 1_000), Some(1));
    assert_eq!(ceil_units(Duration::from_micros(1500), 1_000), Some(2));
    assert_eq!(ceil_units(Duration::from_millis(2), 1_000), Some(2));
    assert_eq!(ceil_units(Duration::from_nanos(1), 32_768), Some(1));
    assert_eq!(ceil_units(Duration::from_secs(3), 32_768), Some(3 * 32_768));
    assert_eq!(ceil_units(Duration::MAX, 1_000_000), None);
    assert_eq!(
        ceil_units(Duration::MAX, 1),
        None,
        "u64::MAX s + a fraction overflows"
    );
    assert_eq!(ceil_units(Duration::from_secs(u64::MAX), 1), Some(u64::MAX));
}

#[test]
fn units_round_trip_never_early() {
    for hz in [1, 1_000, 32_768, 1_000_000, 1_000_000_000] {
        for nanos in [
            0u64,
            1,
            999,
            30_517,
            1_000_000,
            1_234_567_891,
            9_999_999_999,
        ] {
            let d = Duration::from_nanos(nanos);
            let ticks = ceil_units(d, hz).unwrap();
            // The clock reads `ticks` when the sleep fires: `now()` must be at least `d`.
            assert!(units_to_duration(ticks, hz) >= d, "hz {hz} nanos {nanos}");
            // and it is the first such tick.
            if ticks > 0 {
                assert!(
                    units_to_duration(ticks - 1, hz) < d,
                    "hz {hz} nanos {nanos}"
                );
            }
        }
    }
    assert_eq!(
        units_to_duration(u64::MAX, 1),
        Duration::from_secs(u64::MAX)
    );
}
