//! Prints issue 16's S-table: the delay-based adaptive limit (`Gradient`) on the simulated
//! server of `tests/adaptive_sim.rs` (the same model, included from `tests/sim/mod.rs`),
//! beside static limits of c and 1.25c, on a virtual clock.
//!
//! `cargo run --example adaptive_sim [seed] [c] [s in ms]` (seed 1, c = 64, s = 20 ms by
//! default: issue 16's server; the tests also run c = 200, s = 50 and c = 16, s = 5). Each
//! scenario is 90 s of virtual time at 1.5 × c/s requests per second; the whole table
//! (8 runs) takes a few seconds in a debug build. Deadlines stretch with s above 20 ms, as
//! in the tests.

#[path = "../tests/sim/mod.rs"]
mod sim;

use sim::*;

fn yes(ok: bool) -> &'static str {
    if ok { "holds" } else { "MISS" }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(1u64);
    let c = args.next().and_then(|s| s.parse().ok()).unwrap_or(C);
    let s_ms: f64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(S * 1000.0);
    let base = Scenario {
        c,
        s: s_ms / 1000.0,
        ..BASE
    };
    let k = (base.s / S).max(1.0);
    let by = |from: f64, span: f64| (from + span * k).min(80.0);
    let hi = c * 5 / 4;
    println!(
        "Issue 16 simulation A, seed {seed}: c = {c}, s = {s_ms} ms, load 1.5·c/s, 90 s virtual\n"
    );
    println!("| # | scenario | target | measured | |");
    println!("|---|---|---|---|---|");

    let steady = simulate(seed, base, gradient(seed, base));
    let settled = steady.settled(c, hi, 45.0);
    let (mean, below) = (steady.mean(15.0, 45.0), steady.share(15.0, 45.0, |l| l < c));
    println!(
        "| S1 | converge | in [c, 1.25c] by {} s and stays; mean ≤ 1.2c; < c ≤ 5 % | from {settled:?} s; mean {:.3}c; < c {:.2} % | {} |",
        by(0.0, 10.0),
        mean / c as f64,
        100.0 * below,
        yes(settled.is_some_and(|s| s <= by(0.0, 10.0)) && mean <= 1.2 * c as f64 && below <= 0.05)
    );

    let statics: Vec<(u32, Trace)> = [c as u32, hi as u32]
        .into_iter()
        .map(|n| (n, simulate(seed, base, fixed(n))))
        .collect();
    let best_good = statics
        .iter()
        .map(|(_, t)| t.good(15.0, 45.0))
        .fold(0.0, f64::max);
    let (thr, good, p99) = (
        steady.throughput(15.0, 45.0, base.cap()),
        steady.good(15.0, 45.0) / best_good,
        steady.p99_ms(15.0, 45.0),
    );
    let static_p99 = statics[1].1.p99_ms(15.0, 45.0);
    let p99_max = (1500.0 * base.s).max(1.01 * static_p99);
    println!(
        "| S2 | steady 15–45 s | throughput ≥ 97 %; good ≥ 97 % of best static; p99 ≤ {p99_max:.1} ms | {:.1} %; {:.1} %; {p99:.1} ms | {} |",
        100.0 * thr,
        100.0 * good,
        yes(thr >= 0.97 && good >= 0.97 && p99 <= p99_max)
    );

    let halved = simulate(
        seed,
        Scenario {
            halve_workers: true,
            ..base
        },
        gradient(seed, base),
    );
    let (lo3, hi3) = (c / 2, c / 2 * 5 / 4);
    let settled = halved.settled(lo3, hi3, 90.0);
    let p99 = halved.p99_ms(60.0, 90.0);
    let p99_max = (1600.0 * base.s).max(1.08 * static_p99);
    println!(
        "| S3 | capacity halves at 45 s | in [{lo3}, {hi3}] by {} s, stays; p99 ≤ {p99_max:.1} ms over 60–90 s | from {settled:?} s; {p99:.1} ms | {} |",
        by(45.0, 10.0),
        yes(settled.is_some_and(|s| (45.0..=by(45.0, 10.0)).contains(&s)) && p99 <= p99_max)
    );

    let exp = simulate(
        seed,
        Scenario {
            exp_service: true,
            ..base
        },
        gradient(seed, base),
    );
    let (thr, low) = (
        exp.throughput(15.0, 45.0, base.cap()),
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
            ..base
        },
        gradient(seed, base),
    );
    let late = step
        .refusals
        .iter()
        .filter(|r| **r >= by(0.0, 2.0) && **r < 30.0)
        .count();
    let share = step.refusals.iter().filter(|r| **r < 30.0).count() as f64 / step.arrivals as f64;
    let bound = hi.max(2 * step.peak_in_flight_low);
    let max_low = step.limit[..3000].iter().copied().max().unwrap_or(0);
    let settled = step.settled(c, hi, 45.0);
    println!(
        "| S5 | 30 s at 0.5×, then 1.5× | no refusal after {} s, ≤ {:.2} %; limit ≤ max(1.25c, 2×peak); S1 by {} s | {late}, {:.3} %; max {max_low} (bound {bound}); from {settled:?} s | {} |",
        by(0.0, 2.0),
        0.5 * k,
        by(30.0, 10.0),
        100.0 * share,
        yes(late == 0
            && share <= 0.005 * k
            && max_low <= bound
            && settled.is_some_and(|s| s <= by(30.0, 10.0)))
    );

    let slow = simulate(
        seed,
        Scenario {
            slow_service: true,
            ..base
        },
        gradient(seed, base),
    );
    let settled = slow.settled(c, hi, 90.0);
    println!(
        "| S6 | s doubles at 45 s | back in [c, 1.25c] by {} s, stays | from {settled:?} s | {} |",
        by(45.0, 30.0),
        yes(settled.is_some_and(|s| s <= by(45.0, 30.0)))
    );

    println!("\nStatic limits in the same harness (steady 15–45 s):\n");
    println!("| limit | throughput | good/s | p99 |");
    println!("|---|---|---|---|");
    for (n, t) in &statics {
        println!(
            "| {n} | {:.1} % | {:.0} | {:.1} ms |",
            100.0 * t.throughput(15.0, 45.0, base.cap()),
            t.good(15.0, 45.0),
            t.p99_ms(15.0, 45.0)
        );
    }
}
