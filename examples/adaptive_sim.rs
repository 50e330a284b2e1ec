//! Prints issue 16's S-table: the delay-based adaptive limit (`Gradient`) on the simulated
//! server of `tests/adaptive_sim.rs` (the same model, included from `tests/sim/mod.rs`),
//! beside static limits of c and 1.25c, on a virtual clock.
//!
//! `cargo run --example adaptive_sim [seed]` (seed 1 by default). Each scenario is 90 s of
//! virtual time at 4 800 requests per second; the whole table (8 runs) takes about 6 s in a
//! debug build. Rows marked MISS are the ones `tests/adaptive_sim.rs` prints as `MISS` too.

#[path = "../tests/sim/mod.rs"]
mod sim;

use sim::*;

fn yes(ok: bool) -> &'static str {
    if ok { "holds" } else { "MISS" }
}

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u64);
    let c = C;
    let hi = C * 5 / 4;
    println!(
        "Issue 16 simulation A, seed {seed}: c = {c}, s = 20 ms, load 1.5·c/s, 90 s virtual\n"
    );
    println!("| # | scenario | target | measured | |");
    println!("|---|---|---|---|---|");

    let base = simulate(seed, BASE, gradient(seed, BASE));
    let settled = base.settled(c, hi, 45.0);
    let (mean, below) = (base.mean(15.0, 45.0), base.share(15.0, 45.0, |l| l < c));
    println!(
        "| S1 | converge | in [c, 1.25c] by 10 s and stays; mean ≤ 1.2c; < c ≤ 5 % | settled from {settled:?} s; mean {:.3}c; < c {:.2} % | {} |",
        mean / c as f64,
        100.0 * below,
        yes(settled.is_some_and(|s| s <= 10.0) && mean <= 1.2 * c as f64 && below <= 0.05)
    );

    let statics: Vec<(u32, Trace)> = [c as u32, hi as u32]
        .into_iter()
        .map(|n| (n, simulate(seed, BASE, fixed(n))))
        .collect();
    let best_good = statics
        .iter()
        .map(|(_, t)| t.good(15.0, 45.0))
        .fold(0.0, f64::max);
    let (thr, good, p99) = (
        base.throughput(15.0, 45.0, BASE.cap()),
        base.good(15.0, 45.0) / best_good,
        base.p99_ms(15.0, 45.0),
    );
    println!(
        "| S2 | steady 15–45 s | throughput ≥ 97 %; good ≥ 97 % of best static; p99 ≤ 30 ms | {:.1} %; {:.1} %; {p99:.1} ms | {} |",
        100.0 * thr,
        100.0 * good,
        yes(thr >= 0.97 && good >= 0.97 && p99 <= 30.0)
    );

    let halved = simulate(
        seed,
        Scenario {
            halve_workers: true,
            ..BASE
        },
        gradient(seed, BASE),
    );
    let (at55, p99) = (halved.at(55.0), halved.p99_ms(60.0, 90.0));
    println!(
        "| S3 | capacity halves at 45 s | in [32, 40] by 55 s; p99 ≤ 32 ms over 60–90 s | limit {at55} at 55 s (in [32, 40] from {:?} s); {p99:.1} ms | {} |",
        halved.settled(32, 40, 90.0),
        yes((32..=40).contains(&at55) && p99 <= 32.0)
    );

    let exp = simulate(
        seed,
        Scenario {
            exp_service: true,
            ..BASE
        },
        gradient(seed, BASE),
    );
    let (thr, low) = (
        exp.throughput(15.0, 45.0, BASE.cap()),
        exp.share(10.0, 45.0, |l| l < c / 2),
    );
    println!(
        "| S4 | Exp(s) service | throughput ≥ 95 %; limit < c/2 ≤ 2 % after 10 s | {:.1} %; {:.2} % | {} |",
        100.0 * thr,
        100.0 * low,
        yes(thr >= 0.95 && low <= 0.02)
    );

    let step = simulate(
        seed,
        Scenario {
            load: (0.5, 1.5),
            ..BASE
        },
        gradient(seed, BASE),
    );
    let late = step
        .refusals
        .iter()
        .filter(|r| **r >= 2.0 && **r < 30.0)
        .count();
    let share = step.refusals.iter().filter(|r| **r < 30.0).count() as f64 / step.arrivals as f64;
    let bound = hi.max(2 * step.peak_in_flight_low);
    let max_low = step.limit[..3000].iter().copied().max().unwrap_or(0);
    let settled = step.settled(c, hi, 45.0);
    println!(
        "| S5 | 30 s at 0.5×, then 1.5× | no refusal after 2 s, ≤ 0.5 %; limit ≤ max(1.25c, 2×peak); S1 within 10 s | {late} after 2 s, {:.3} %; max {max_low} (bound {bound}); settled from {settled:?} s | {} |",
        100.0 * share,
        yes(late == 0 && share <= 0.005 && max_low <= bound && settled.is_some_and(|s| s <= 40.0))
    );

    let slow = simulate(
        seed,
        Scenario {
            slow_service: true,
            ..BASE
        },
        gradient(seed, BASE),
    );
    let at75 = slow.at(75.0);
    println!(
        "| S6 | s → 40 ms at 45 s | back in [c, 1.25c] by 75 s | limit {at75} at 75 s (in the band from {:?} s) | {} |",
        slow.settled(c, hi, 90.0),
        yes((c..=hi).contains(&at75))
    );

    println!("\nStatic limits in the same harness (steady 15–45 s):\n");
    println!("| limit | throughput | good/s | p99 |");
    println!("|---|---|---|---|");
    for (n, t) in &statics {
        println!(
            "| {n} | {:.1} % | {:.0} | {:.1} ms |",
            100.0 * t.throughput(15.0, 45.0, BASE.cap()),
            t.good(15.0, 45.0),
            t.p99_ms(15.0, 45.0)
        );
    }
}
