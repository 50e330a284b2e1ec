//! A tour of dike: every primitive in one run, on a virtual clock so it finishes at once.
//!
//! Run it with `cargo run --example tour`.

use core::time::Duration;

use dike::time::{ManualTimer, Timer, timer_fn};
use futures_util::FutureExt;

fn main() {
    println!("dike tour");
    timers();
    gate();
    throttle();
    retry();
    #[cfg(feature = "tower")]
    tower_layers();
}

/// Time: a virtual clock moved by hand, and a timer made of two closures.
fn timers() {
    println!("\n== time");
    let timer = ManualTimer::new();
    let mut sleeps: Vec<_> = [30, 10, 20]
        .into_iter()
        .map(|ms| (ms, Box::pin(timer.sleep(Duration::from_millis(ms)))))
        .collect();
    for (_, sleep) in &mut sleeps {
        assert!(sleep.as_mut().now_or_never().is_none());
    }
    println!("ManualTimer: 3 sleepers registered (30 ms, 10 ms, 20 ms)");
    while let Some(deadline) = timer.advance_to_next() {
        sleeps.retain_mut(|(ms, sleep)| {
            let done = sleep.as_mut().now_or_never().is_some();
            if done {
                println!("  advanced to {deadline:?}: the {ms} ms sleep completed");
            }
            !done
        });
    }
    timer.advance(Duration::MAX);
    println!(
        "  advance(Duration::MAX) saturates: now = {:?}",
        timer.now()
    );

    let origin = std::time::Instant::now();
    let clock = timer_fn(
        move || origin.elapsed(),
        |_deadline| core::future::ready(()), // a sleep that always fires at once...
    );
    let deadline = clock.now() + Duration::from_millis(3);
    // ...is still never early: the timer re-checks `now()` and yields until the deadline.
    let sleep = clock.sleep_until(deadline);
    smol::block_on(sleep);
    println!(
        "timer_fn: a clock whose sleeps fire early still waited until {:?} >= {:?}",
        clock.now(),
        deadline
    );
}

/// Retry: a flaky call retried with exponential backoff on a virtual clock.
fn retry() {
    use core::cell::Cell;
    use dike::retry::Retry;

    println!("\n== retry");
    let timer = ManualTimer::new();
    let policy = Retry::new()
        .with_attempts(4)
        .expect("4 attempts is valid")
        .with_delay(Duration::from_millis(10))
        .with_backoff(2.0)
        .expect("2 is a valid multiplier")
        .notify(|e: &&str, attempt, next: Option<Duration>| {
            let next = next.unwrap_or_default();
            println!("  attempt {attempt} failed with {e:?}; retrying in {next:?}");
        });
    let calls = Cell::new(0);
    let flaky = || {
        calls.set(calls.get() + 1);
        let n = calls.get();
        async move {
            if n < 3 {
                Err("connection reset")
            } else {
                Ok(n)
            }
        }
    };
    let mut run = Box::pin(policy.run(&timer, flaky));
    let result = loop {
        if let Some(result) = run.as_mut().now_or_never() {
            break result;
        }
        timer.advance_to_next(); // jump the virtual clock to the retry's deadline
    };
    println!(
        "  {result:?} after {} calls, at virtual time {:?}",
        calls.get(),
        timer.now()
    );
}

/// Throttle: 2 starts per second with a burst of 3, on a virtual clock.
fn throttle() {
    use dike::throttle::{Quota, Throttle};

    println!("\n== throttle");
    let timer = ManualTimer::new();
    let throttle = Throttle::new(Quota::per_second(2).with_burst(3)).expect("a valid quota");
    let mut starts = Vec::new();
    for _ in 0..6 {
        // Under continuous demand: wait for each start, jumping the clock to the next deadline.
        let mut wait = Box::pin(throttle.acquire(&timer));
        while wait.as_mut().now_or_never().is_none() {
            timer.advance_to_next();
        }
        starts.push(timer.now().as_millis());
    }
    println!("Throttle 2/s, burst 3: 6 starts at {starts:?} ms");
    let err = throttle.try_acquire(&timer).unwrap_err();
    println!("  try_acquire at {:?}: {err}", timer.now());
    timer.advance(Duration::from_secs(60));
    let admitted = (0..10)
        .filter(|_| throttle.try_acquire(&timer).is_ok())
        .count();
    println!(
        "  after a minute idle, 10 tries: {admitted} admitted (idle time earns at most the burst)"
    );
}

/// Gate: a third concurrent call is turned away at once; a bounded wait gives up at its
/// deadline; a waiter gets the next permit released; `limit_jobs` mirrors Python's decorator.
fn gate() {
    use dike::gate::{Gate, limit_jobs};

    println!("\n== gate");
    let gate = Gate::new(2);
    let first = gate.try_enter().expect("a free permit");
    let second = gate.try_enter().expect("a free permit");
    if let Err(err) = gate.try_enter() {
        println!("Gate(2), 2 in use: a third try_enter is turned away: {err}");
    }
    smol::block_on(async {
        let timer = ManualTimer::new();
        let bounded = gate.enter_timeout(&timer, Duration::from_millis(50));
        timer.advance(Duration::from_millis(50));
        let err = bounded.await.unwrap_err();
        println!("  enter_timeout(50 ms) while full: {err}");
        drop(first);
        let third = gate.enter().await.expect("no bound on waiters");
        let stats = gate.stats();
        println!(
            "  enter() after a release: in. {} in use, {} admitted, {} rejected, peak {}",
            stats.in_use, stats.admitted, stats.rejected, stats.peak_in_use
        );
        drop((second, third));

        let web_request = limit_jobs(2, |id: u32| async move {
            smol::future::yield_now().await; // a slow request
            format!("response {id}")
        });
        let (a, b, c) = futures_util::future::join3(
            web_request.call(1),
            web_request.call(2),
            web_request.call(3),
        )
        .await;
        let c = c.map_err(|too_many| too_many.to_string());
        println!("limit_jobs(2), 3 calls at once: {a:?}, {b:?}, {c:?}");
    });
}

/// tower: a gate that sheds load and a throttle that paces starts, as middleware (feature
/// `tower`; `cargo run --example tour --features tower`).
#[cfg(feature = "tower")]
fn tower_layers() {
    use std::sync::Arc;

    use dike::gate::Gate;
    use dike::throttle::Quota;
    use dike::tower::{Error, GateLayer, ThrottleLayer};
    use tower::{Service, ServiceBuilder, service_fn};

    println!("\n== tower");
    let timer = ManualTimer::new();
    let gate = Arc::new(Gate::new(2));
    let mut service = ServiceBuilder::new()
        .layer(GateLayer::shared(Arc::clone(&gate)).reject())
        .layer(ThrottleLayer::new(Quota::per_second(10), timer.clone()).expect("valid quota"))
        .service(service_fn(|n: u32| async move { Ok::<_, ()>(n * 10) }));
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());

    // Two requests in flight fill the gate; the second waits 100 ms for its throttle slot.
    assert!(service.poll_ready(&mut cx).is_ready());
    let first = service.call(1);
    assert!(service.poll_ready(&mut cx).is_pending());
    println!(
        "request 2 waits for its start slot until {:?}",
        timer.next_deadline().unwrap()
    );
    timer.advance(Duration::from_millis(100));
    assert!(service.poll_ready(&mut cx).is_ready());
    let second = service.call(2);

    // A third is shed at once: the gate is full while both responses are pending.
    assert!(service.poll_ready(&mut cx).is_ready());
    match service.call(3).now_or_never() {
        Some(Err(Error::TooManyCalls(err))) => println!("request 3 shed: {err}"),
        other => panic!("{other:?}"),
    }
    println!(
        "responses: {:?}, {:?}; gate in use afterwards: {}",
        first.now_or_never().unwrap(),
        second.now_or_never().unwrap(),
        gate.stats().in_use
    );
}
