//! Keyed limiters: dike's `KeyedThrottle` vs governor's default keyed limiter
//! (`RateLimiter::keyed`, a DashMap), ids `keyed/<case>/{dike,governor}`.
//!
//! - `keyed/hit_10k_keys/*`: 10 000 warm keys hit in a pseudo-random order on 2 threads
//!   (time per check, both threads together). Both read governor's default clock (quanta) and
//!   hash with std's `RandomState`; the quota is generous so every check is admitted. The
//!   `*-1-thread` ids run the same checks on one thread (time per check). Under this quota a
//!   key's state is fresh-equivalent 1 ns after its check, so dike's clock hands (moved by
//!   every 128th hit on a shard) may drop any entry they meet: its referenced bit keeps a warm
//!   key (hit about once in 10 000 checks, while a hand comes round to an entry once in about
//!   640 000) from being dropped and re-inserted, and nearly every check is a hit updating its
//!   entry in place. The entries held after the run are printed.
//! - `keyed/hit_10k_live_keys/*`: the same under 100 per second with a burst of 10^6, which
//!   keeps every key live (never evicted, never refused): the hit path alone.
//! - `keyed/flood_1m_new_keys/*`: 1 000 000 distinct new keys, one check each, the clock
//!   moving 1 µs per check under a quota of 100 per second (each key is live for 10 ms, so
//!   about 10 000 are live at a time). dike evicts as it goes under its default 100 000 cap;
//!   governor calls `retain_recent()` every 10 000 checks as its docs suggest. Time per flood
//!   of 1 000 000; the peak number of entries of each is printed before the measurement.
//!
//! `cargo bench --all-features --bench keyed -- --warm-up-time 1 --measurement-time 2`
//!
//! With `DIKE_BENCH_CPU=1` every case is timed in the CPU time of its threads
//! (`CLOCK_THREAD_CPUTIME_ID`; on 2 threads, their sum ÷ 2) instead of the wall clock, so a
//! run on a machine shared with other work is not inflated by the time its threads spent
//! waiting for a core. Same ids, same work.

use core::future::pending;
use core::hint::black_box;
use core::num::NonZeroU32;
use core::time::Duration;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use dike::keyed::KeyedThrottle;
use dike::throttle::Quota;
use dike::time::{Timer, timer_fn};
use governor::clock::{Clock, FakeRelativeClock, QuantaClock, Reference};
use governor::{Quota as GovernorQuota, RateLimiter};

const KEYS: u64 = 10_000;
const FLOOD: u64 = 1_000_000;

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// dike on governor's default clock.
fn quanta_timer() -> impl Timer + Send + Sync {
    let clock = QuantaClock::default();
    let origin = clock.now();
    timer_fn(
        move || Duration::from(clock.now().duration_since(origin)),
        |_| pending::<()>(),
    )
}

/// A fixed pseudo-random sequence of keys in `0..KEYS` (xorshift), one per thread.
fn key_sequence(seed: u64, len: usize) -> Vec<u64> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % KEYS
        })
        .collect()
}

/// Whether cases are timed in CPU time (`DIKE_BENCH_CPU=1`) rather than wall time.
fn cpu_time() -> bool {
    static CPU: OnceLock<bool> = OnceLock::new();
    *CPU.get_or_init(|| std::env::var_os("DIKE_BENCH_CPU").is_some_and(|v| v == "1"))
}

/// The calling thread's clock: its CPU time so far under `DIKE_BENCH_CPU=1`, else the wall
/// time since a fixed origin.
fn clock() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    if cpu_time() {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `timespec`; the clock id is a constant.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    } else {
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// Runs `check` `iters` times split over 2 threads; the wall time (or, under
/// `DIKE_BENCH_CPU=1`, the threads' CPU time ÷ 2).
fn two_threads(iters: u64, check: impl Fn(u64) + Sync) -> Duration {
    let seqs = [key_sequence(1, 1 << 16), key_sequence(2, 1 << 16)];
    let start = Instant::now();
    let cpu: Duration = std::thread::scope(|s| {
        let threads: Vec<_> = seqs
            .iter()
            .map(|seq| {
                let check = &check;
                s.spawn(move || {
                    let t0 = clock();
                    for i in 0..iters.div_ceil(2) {
                        check(seq[(i as usize) & 0xffff]);
                    }
                    clock() - t0
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    if cpu_time() { cpu / 2 } else { start.elapsed() }
}

/// Times `iters` runs of `f` on this thread with [`clock`].
fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let t0 = clock();
    for _ in 0..iters {
        f();
    }
    clock() - t0
}

fn hit_10k_keys(c: &mut Criterion) {
    hit_case(c, "keyed/hit_10k_keys", 1_000_000_000, 1_000_000);
}

/// As `hit_10k_keys` under a quota that keeps every key live (100 per second, burst 10^6: a
/// hit moves the key's `tat` 10 ms ahead, and each key is hit every ~1 ms): no entry is ever
/// idle, so the case does not depend on the eviction rule.
fn hit_10k_live_keys(c: &mut Criterion) {
    hit_case(c, "keyed/hit_10k_live_keys", 100, 1_000_000);
}

fn hit_case(c: &mut Criterion, name: &str, rate: u32, burst: u32) {
    let mut group = c.benchmark_group(name);

    let timer = quanta_timer();
    let dike = KeyedThrottle::<u64>::new(Quota::per_second(rate).with_burst(burst)).unwrap();
    for key in 0..KEYS {
        dike.try_acquire(&timer, &key).unwrap();
    }
    group.bench_function("dike", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |key| {
                let _ = black_box(dike.try_acquire(&timer, &key));
            })
        });
    });

    group.bench_function("dike-1-thread", |b| {
        let seq = key_sequence(3, 1 << 16);
        let mut i = 0usize;
        b.iter_custom(|iters| {
            timed(iters, || {
                i = (i + 1) & 0xffff;
                let _ = black_box(dike.try_acquire(&timer, &seq[i]));
            })
        });
    });

    let governor =
        RateLimiter::keyed(GovernorQuota::per_second(nonzero(rate)).allow_burst(nonzero(burst)));
    for key in 0..KEYS {
        governor.check_key(&key).unwrap();
    }
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |key| {
                let _ = black_box(governor.check_key(&key));
            })
        });
    });
    group.bench_function("governor-1-thread", |b| {
        let seq = key_sequence(3, 1 << 16);
        let mut i = 0usize;
        b.iter_custom(|iters| {
            timed(iters, || {
                i = (i + 1) & 0xffff;
                let _ = black_box(governor.check_key(&seq[i]));
            })
        });
    });
    group.finish();
    println!("{name}: entries held after the run: dike {}", dike.len());
}

/// One flood through dike; the peak `len()` (sampled every 10 000 checks).
///
/// The clock is an atomic count of nanoseconds moved by hand, as governor's
/// `FakeRelativeClock` is (`ManualTimer` also keeps sleepers, which this case has none of).
fn flood_dike() -> usize {
    let nanos = Arc::new(AtomicU64::new(0));
    let timer = {
        let nanos = Arc::clone(&nanos);
        timer_fn(
            move || Duration::from_nanos(nanos.load(Ordering::Relaxed)),
            |_| pending::<()>(),
        )
    };
    let dike = KeyedThrottle::<u64>::new(Quota::per_second(100)).unwrap();
    let mut peak = 0;
    for key in 0..FLOOD {
        nanos.fetch_add(1_000, Ordering::Relaxed);
        let _ = black_box(dike.try_acquire(&timer, &key));
        if key % 10_000 == 9_999 {
            peak = peak.max(dike.len());
        }
    }
    peak
}

/// One flood through governor, sweeping every 10 000 checks; the peak `len()` (just before
/// each sweep).
fn flood_governor() -> usize {
    let clock = FakeRelativeClock::default();
    let governor = RateLimiter::dashmap_with_clock(GovernorQuota::per_second(nonzero(100)), clock);
    let clock = governor.clock().clone();
    let mut peak = 0;
    for key in 0..FLOOD {
        clock.advance(Duration::from_micros(1));
        let _ = black_box(governor.check_key(&key));
        if key % 10_000 == 9_999 {
            peak = peak.max(governor.len());
            governor.retain_recent();
        }
    }
    peak
}

fn flood_1m_new_keys(c: &mut Criterion) {
    eprintln!(
        "keyed/flood_1m_new_keys peak entries: dike {}, governor {}",
        flood_dike(),
        flood_governor()
    );
    let mut group = c.benchmark_group("keyed/flood_1m_new_keys");
    group.sample_size(10);
    group.bench_function("dike", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                black_box(flood_dike());
            })
        });
    });
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                black_box(flood_governor());
            })
        });
    });
    group.finish();
}

criterion_group!(benches, hit_10k_keys, hit_10k_live_keys, flood_1m_new_keys);
criterion_main!(benches);
