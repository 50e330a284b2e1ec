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
    keyed();
    retry();
    breaker_and_hedge();
    adaptive();
    batch();
    coalesce();
    run();
    #[cfg(feature = "tower")]
    tower_layers();
    #[cfg(feature = "tower")]
    tower_retry_coalesce_batch();
    #[cfg(feature = "tower")]
    tower_keyed();
    #[cfg(not(feature = "tower"))]
    println!("\n== tower\n(middleware: cargo run --example tour --features tower)");
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
    // 10 ms, then 20 ms, 40 ms...: `exponential` takes the first delay with the factor.
    let policy = Retry::exponential(Duration::from_millis(10), 2.0)
        .expect("a valid backoff")
        .with_attempts(core::num::NonZeroU32::new(4).expect("not zero"));
    println!("{policy:?}");
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
    let run = policy
        .run(&timer, flaky)
        .notify(|e, attempt, next| {
            let next = next.unwrap_or_default();
            println!("  attempt {attempt} failed with {e:?}; retrying in {next:?}");
        })
        .on_event(|event| println!("  event (Polly's names): {event:?}"))
        .outcome(); // the result with the attempt count and the time taken
    let mut run = Box::pin(run);
    let outcome = loop {
        if let Some(outcome) = run.as_mut().now_or_never() {
            break outcome;
        }
        timer.advance_to_next(); // jump the virtual clock to the retry's deadline
    };
    println!(
        "  {:?} after {} attempts, {:?} of virtual time",
        outcome.result(),
        outcome.attempts(),
        outcome.elapsed()
    );
}

/// Circuit breaker and hedging: a breaker that opens on failures and probes after its break;
/// a hedge that outruns a straggler.
fn breaker_and_hedge() {
    use dike::breaker::{BreakDuration, Breaker, CountWindow};
    use dike::hedge::Hedge;

    println!("\n== breaker");
    let timer = ManualTimer::new();
    let breaker = Breaker::new(CountWindow::<10>::new())
        .with_failure_ratio(0.5)
        .and_then(|b| b.try_with_min_calls(4))
        .expect("a valid breaker")
        .with_break(BreakDuration::fixed(Duration::from_secs(5)));
    for i in 1..=4 {
        let call = breaker.try_acquire(&timer).expect("closed");
        call.failure();
        println!("  failure {i}: {:?}", breaker.state(&timer));
    }
    let refused = breaker.try_acquire(&timer).expect_err("open");
    println!("  refused: {refused}");
    timer.advance(Duration::from_secs(5));
    let probe = breaker
        .try_acquire(&timer)
        .expect("half-open: a probe passes");
    println!(
        "  after 5 s: {:?}, probe: {}",
        breaker.state(&timer),
        probe.is_probe()
    );
    probe.success();
    println!("  probe succeeded: {:?}", breaker.state(&timer));

    println!("\n== hedge");
    let timer = ManualTimer::new();
    let policy = Hedge::fixed(Duration::from_millis(15));
    // The first attempt straggles (200 ms), the hedge answers in 10 ms.
    let mut latencies = [200, 10].into_iter();
    let op = || {
        let latency = latencies.next().unwrap_or(10);
        let sleep = timer.sleep(Duration::from_millis(latency));
        async move {
            sleep.await;
            latency
        }
    };
    let mut run = Box::pin(policy.run(&timer, op));
    let answer = loop {
        if let Some(answer) = run.as_mut().now_or_never() {
            break answer;
        }
        timer.advance_to_next();
    };
    println!(
        "  answer from the {answer} ms attempt at {:?}; {:?}; sleepers left: {}",
        timer.now(),
        policy.stats(),
        timer.sleepers()
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

/// Keyed: three clients limited by key (3 per second each, and 1 request in flight each),
/// on a virtual clock; a greedy client is refused without holding up the polite ones, and
/// idle clients are forgotten by the calls of new clients (no cleanup task).
fn keyed() {
    use dike::keyed::{KeyedGate, KeyedThrottle};
    use dike::throttle::Quota;

    println!("\n== keyed");
    let timer = ManualTimer::new();
    // A cap of 16 keys (one lock shard) keeps the eviction below easy to follow.
    let per_client = KeyedThrottle::<String>::new(Quota::per_second(3))
        .expect("a valid quota")
        .with_max_keys(core::num::NonZeroUsize::new(16).expect("not zero"));
    let in_flight = KeyedGate::<String>::new(1).expect("a valid limit");
    // One second of traffic in 100 ms steps: "greedy" asks 5 times a step, "alice" every 4th
    // step, "bob" every 5th.
    let mut counts = [("greedy", 0, 0), ("alice", 0, 0), ("bob", 0, 0)];
    for step in 0..10 {
        for (client, admitted, refused) in &mut counts {
            let tries = match *client {
                "greedy" => 5,
                "alice" => usize::from(step % 4 == 0),
                _ => usize::from(step % 5 == 0),
            };
            for _ in 0..tries {
                match per_client.try_acquire(&timer, *client) {
                    Ok(()) => *admitted += 1,
                    Err(_) => *refused += 1,
                }
            }
        }
        timer.advance(Duration::from_millis(100));
    }
    for (client, admitted, refused) in counts {
        println!("KeyedThrottle 3/s per key, {client:>6}: {admitted} admitted, {refused} refused");
    }
    println!("  entries held: {}, one per client", per_client.len());
    // A second later the three are idle (their state is a fresh key's): the calls of a new
    // client drop them as they go, with no sweep call.
    timer.advance(Duration::from_secs(1));
    for _ in 0..1_000 {
        let _ = per_client.try_acquire(&timer, "carol");
    }
    println!(
        "  a second later, 1 000 calls from a new client: {} entry held (the calls dropped the idle ones)",
        per_client.len()
    );
    let busy = in_flight.try_enter("greedy").expect("free");
    let second = in_flight
        .try_enter("greedy")
        .map(drop)
        .map_err(|e| e.to_string());
    let alice = in_flight
        .try_enter("alice")
        .map(drop)
        .map_err(|e| e.to_string());
    println!("KeyedGate 1 in flight per key: greedy's second call {second:?}, alice {alice:?}");
    drop(busy);
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

/// Adaptive: a gate whose limit follows the dependency: it grows while the limit is in use
/// and answers come back, and backs off when the dependency refuses.
fn adaptive() {
    use dike::adaptive::{AdaptiveGate, Aimd};

    println!("\n== adaptive");
    let timer = ManualTimer::new();
    let gate = AdaptiveGate::new(Aimd::new(2));
    let mut limits = vec![gate.limit()];
    for _ in 0..4 {
        // Fill the limit, then every call succeeds after 10 ms.
        let permits: Vec<_> = core::iter::from_fn(|| gate.try_enter(&timer).ok()).collect();
        timer.advance(Duration::from_millis(10));
        for permit in permits {
            permit.success();
        }
        limits.push(gate.limit());
    }
    let mut full: Vec<_> = core::iter::from_fn(|| gate.try_enter(&timer).ok()).collect();
    let in_flight = full.len();
    if let Some(refused) = full.pop() {
        refused.dropped(); // the dependency said "overloaded"
    }
    for permit in full {
        permit.ignore(); // cancelled callers say nothing about the dependency
    }
    println!("AIMD from limit 2, four rounds of successes: limits {limits:?}");
    println!(
        "  then 1 of {in_flight} calls refused by the dependency: limit backs off to {}",
        gate.limit()
    );
}

/// Batch: concurrent calls become one call of a batch function; each caller gets its slice.
fn batch() {
    use core::convert::Infallible;
    use dike::batch::{BatchConfig, Batcher};
    use std::sync::Mutex;

    println!("\n== batch");
    let timer = ManualTimer::new();
    let seen = Mutex::new(Vec::new());
    let config = BatchConfig::new(3, Duration::from_millis(10));
    // Python dike's README example: element-wise sums of two columns, as rows of pairs.
    let add_args = Batcher::new(timer.clone(), config, |rows: Vec<(i32, i32)>| {
        let (arg1, arg2): (Vec<i32>, Vec<i32>) = rows.iter().copied().unzip();
        println!("  the function sees arg1: {arg1:?}, arg2: {arg2:?}");
        seen.lock().unwrap().push(rows.len());
        async move { Ok::<_, Infallible>(rows.iter().map(|(a, b)| a + b).collect::<Vec<_>>()) }
    })
    .expect("a valid config");
    let result = smol::block_on(futures_util::future::join3(
        add_args.call(vec![(0, 1)]),
        add_args.call(vec![(1, 1)]),
        add_args.call(vec![(2, 1), (3, 1)]),
    ));
    println!("Batcher(target 3), calls of 1 + 1 + 2 rows: results {result:?}");

    // Two lone calls: the batch is sealed when its first row has waited 10 ms.
    let mut lone = Box::pin(futures_util::future::join(
        add_args.call_one((10, 5)),
        add_args.call_one((20, 5)),
    ));
    let result = loop {
        if let Some(result) = lone.as_mut().now_or_never() {
            break result;
        }
        timer.advance_to_next();
    };
    println!(
        "  2 lone calls: {result:?} at {:?}, sealed by time",
        timer.now()
    );
    let stats = add_args.stats();
    println!(
        "  {} batches of sizes {:?}: mean {:.1}, sealed by size {}, by time {}",
        stats.batches,
        seen.lock().unwrap(),
        stats.mean_batch_size(),
        stats.sealed_by_size,
        stats.sealed_by_time
    );
}

/// Coalesce: 100 identical requests at once make one call; the statistics say so.
fn coalesce() {
    use dike::coalesce::{Coalescer, Stats};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    println!("\n== coalesce");
    let timer = ManualTimer::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let users: Coalescer<String, String, String, Stats> = Coalescer::with_hooks(Stats::new());
    let fetch = |id: u32| {
        let (timer, calls) = (timer.clone(), Arc::clone(&calls));
        move || async move {
            calls.fetch_add(1, Ordering::Relaxed);
            timer.sleep(Duration::from_millis(100)).await; // the user service is slow
            Ok(format!("user {id}"))
        }
    };
    let mut requests: Vec<_> = (0..100)
        .map(|_| Box::pin(users.run("users/42", fetch(42))))
        .collect();
    for request in &mut requests {
        assert!(request.as_mut().now_or_never().is_none());
    }
    println!(
        "100 identical requests, each polled once: {} key in flight, {} call to the service",
        users.in_flight(),
        calls.load(Ordering::Relaxed)
    );
    timer.advance(Duration::from_millis(100));
    let outcomes: Vec<_> = requests
        .into_iter()
        .map(|request| request.now_or_never().expect("the call finished"))
        .collect();
    let joined = outcomes.iter().filter(|o| o.is_joined()).count();
    println!(
        "  after 100 ms: {} answers of {:?}, {joined} of them joined; the service was called {} time(s)",
        outcomes.len(),
        outcomes[0].result(),
        calls.load(Ordering::Relaxed)
    );
    let mut again = Box::pin(users.run("users/42", fetch(42)));
    let again = loop {
        if let Some(outcome) = again.as_mut().now_or_never() {
            break outcome;
        }
        timer.advance_to_next();
    };
    println!(
        "  nothing is cached: the next request calls again ({:?}, {} calls)",
        again.result(),
        calls.load(Ordering::Relaxed)
    );
    println!("  {}", users.hooks());
}

/// Run: aiometer's amap, 20 fake URLs at most 5 at once and at most 10 per second.
fn run() {
    println!("\n== run");
    let timer = ManualTimer::new();
    let fetch = |i: u32| {
        let timer = timer.clone();
        async move {
            let started = timer.now();
            timer.sleep(Duration::from_millis(700)).await; // a slow fake request
            (i, started)
        }
    };
    let urls = 0..20u32; // https://example.com/0 .. /19
    let limits = dike::run::Limits::new()
        .max_at_once(5)
        .and_then(|l| l.max_per_second(10.0))
        .expect("valid limits")
        .timer(&timer);
    let mut results = Box::pin(futures_util::StreamExt::collect::<Vec<_>>(dike::run::amap(
        fetch, urls, limits,
    )));
    let results = loop {
        if let Some(results) = results.as_mut().now_or_never() {
            break results;
        }
        timer.advance_to_next().expect("a pending run sleeps");
    };
    println!("amap: 20 fake URLs, 700 ms each, max_at_once 5, max_per_second 10");
    for chunk in results.chunks(5) {
        let line: Vec<String> = chunk
            .iter()
            .map(|(i, t)| format!("url {i:>2} @ {:>4} ms", t.as_millis()))
            .collect();
        println!("  {}", line.join(", "));
    }
    println!(
        "  starts 100 ms apart until 5 are in flight, then as slots free; done at {:?}",
        timer.now()
    );
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

/// tower: a retry policy, coalescing and batching as middleware (feature `tower`).
#[cfg(feature = "tower")]
fn tower_retry_coalesce_batch() {
    use std::sync::atomic::{AtomicU32, Ordering};

    use dike::batch::BatchConfig;
    use dike::retry::Retry;
    use dike::tower::{BatchLayer, CoalesceLayer, RetryLayer};
    use tower::{Layer, Service, ServiceExt, service_fn};

    println!("\n== tower: retry, coalesce, batch");
    let timer = ManualTimer::new();

    // Retry: fails twice, then answers; 10 ms then 20 ms apart on the virtual clock.
    let calls = AtomicU32::new(0);
    let flaky = service_fn(|n: u32| {
        let attempt = calls.fetch_add(1, Ordering::Relaxed) + 1;
        async move { if attempt < 3 { Err("reset") } else { Ok(n) } }
    });
    let policy = Retry::exponential(Duration::from_millis(10), 2.0)
        .expect("valid backoff")
        .try_with_attempts(4)
        .expect("valid attempts");
    let mut retried = RetryLayer::new(policy, timer.clone()).layer(flaky);
    let mut response = Box::pin(retried.call(7));
    while response.as_mut().now_or_never().is_none() {
        timer.advance_to(timer.next_deadline().unwrap_or(timer.now()));
    }
    println!(
        "retry: answered after {} calls, at {:?}",
        calls.load(Ordering::Relaxed),
        timer.now()
    );

    // Coalesce: three requests for one key in flight at once, one inner call.
    let inner_calls = std::sync::Arc::new(AtomicU32::new(0));
    let counter = std::sync::Arc::clone(&inner_calls);
    let mut users = CoalesceLayer::new(|id: &u32| *id).layer(service_fn(move |id: u32| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move {
            smol::future::yield_now().await; // in flight for a while
            Ok::<_, ()>(format!("user {id}"))
        }
    }));
    // Always ready: `call` registers each request with the coalescer at once.
    let (a, b, c) = (users.call(42), users.call(42), users.call(42));
    let answers = smol::block_on(futures_util::future::join3(a, b, c));
    println!(
        "coalesce: 3 requests, {} inner call, answers {:?}",
        inner_calls.load(Ordering::Relaxed),
        [answers.0.unwrap(), answers.1.unwrap(), answers.2.unwrap()]
    );

    // Batch: four requests become one call of the inner batch service.
    let model = service_fn(|rows: Vec<u32>| async move {
        println!("  batch service called with {rows:?}");
        Ok::<_, ()>(rows.into_iter().map(|x| x * x).collect::<Vec<_>>())
    });
    let batched = BatchLayer::new(BatchConfig::new(4, Duration::from_millis(5)), timer)
        .expect("valid config")
        .layer(model);
    let squares = smol::block_on(futures_util::future::join_all(
        (1..=4).map(|n| batched.clone().oneshot(n)),
    ));
    println!(
        "batch: squares {:?}",
        squares.into_iter().map(Result::unwrap).collect::<Vec<_>>()
    );
}

/// tower: the keyed throttle as middleware, limiting three clients by the key each request
/// carries (feature `tower`). Reject mode answers at once (429 with `Retry-After` in axum).
#[cfg(feature = "tower")]
fn tower_keyed() {
    use std::sync::Arc;

    use dike::keyed::KeyedThrottle;
    use dike::throttle::Quota;
    use dike::tower::{Error, KeyedThrottleLayer};
    use tower::{Layer, Service, service_fn};

    println!("\n== tower: keyed");
    let timer = ManualTimer::new();
    let per_client =
        Arc::new(KeyedThrottle::<String>::new(Quota::per_second(2)).expect("a valid quota"));
    // A request is (client, payload); the client is its key.
    let extract = |request: &(&str, u32)| Some(request.0.to_owned());
    let layer = KeyedThrottleLayer::new(Arc::clone(&per_client), timer.clone(), extract).reject();
    let mut service = layer.layer(service_fn(
        |(_, n): (&str, u32)| async move { Ok::<_, ()>(n) },
    ));
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    // One second in 100 ms steps: "greedy" sends 3 requests a step, "alice" one every 5th
    // step, "bob" one every 3rd.
    let mut counts = [("greedy", 0, 0), ("alice", 0, 0), ("bob", 0, 0)];
    let mut first_refusal = None;
    for step in 0..10 {
        for (client, admitted, refused) in &mut counts {
            let tries = match *client {
                "greedy" => 3,
                "alice" => u32::from(step % 5 == 0),
                _ => u32::from(step % 3 == 0),
            };
            for n in 0..tries {
                assert!(service.poll_ready(&mut cx).is_ready());
                match service.call((*client, n)).now_or_never() {
                    Some(Ok(_)) => *admitted += 1,
                    Some(Err(Error::RateLimited(err))) => {
                        *refused += 1;
                        first_refusal.get_or_insert((*client, err.wait()));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        timer.advance(Duration::from_millis(100));
    }
    for (client, admitted, refused) in counts {
        println!(
            "KeyedThrottleLayer 2/s per key, {client:>6}: {admitted} admitted, {refused} refused"
        );
    }
    if let Some((client, wait)) = first_refusal {
        println!("  first refusal: {client}, retry after {wait:?}");
    }
}
