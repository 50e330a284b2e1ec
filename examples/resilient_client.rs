//! Every layer of issue 16 composed around one simulated flaky service, on a virtual clock,
//! in the documented order (outermost first):
//!
//! ```text
//! total timeout ─▶ retry | hedge (one shared budget) ─▶ circuit breaker ─▶ adaptive gate
//!   ─▶ throttle ─▶ attempt timeout ─▶ call
//! ```
//!
//! The service answers in 10 ms·U(0.9, 1.1), 3 % of answers straggle for 200 ms and 2 % are
//! a 503; from t = 2 s to t = 3 s it is down (every call a fast 503). about 200 requests per second
//! arrive for 5 s, all driven by hand on `ManualTimer`, without a runtime or a spawned task.
//! The program prints what each layer did and ends by itself.
//!
//! `cargo run --example resilient_client`

use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use dike::adaptive::{AdaptiveGate, Gradient};
use dike::breaker::{BreakDuration, Breaker, CountWindow};
use dike::hedge::Hedge;
use dike::retry::{Retry, RetryBudget, RetryError};
use dike::throttle::{Quota, Throttle};
use dike::time::{ManualTimer, Timer, timeout};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Error {
    /// The breaker refused: dike's own refusal, not the service's failure.
    Open,
    /// The adaptive gate was full: dike's own refusal too.
    Shed,
    /// The attempt timeout cut the call.
    AttemptTimeout,
    /// The service answered with an error status.
    Status(u16),
}

/// The simulated service: a seeded SplitMix64 decides each call.
struct Service {
    rng: Cell<u64>,
}

impl Service {
    fn uniform(&self) -> f64 {
        let s = self.rng.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.rng.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Latency and status of a call made at `now`.
    fn call(&self, now: Duration) -> (Duration, u16) {
        if (2.0..3.0).contains(&now.as_secs_f64()) {
            return (Duration::from_millis(2), 503);
        }
        let latency = if self.uniform() < 0.03 {
            Duration::from_millis(200)
        } else {
            Duration::from_secs_f64(0.010 * (0.9 + 0.2 * self.uniform()))
        };
        let status = if self.uniform() < 0.02 { 503 } else { 200 };
        (latency, status)
    }
}

#[derive(Default)]
struct Counters {
    attempts: Cell<u32>,
    open: Cell<u32>,
    shed: Cell<u32>,
    throttled: Cell<u32>,
    attempt_timeouts: Cell<u32>,
    calls: Cell<u32>,
    errors: Cell<u32>,
}

fn bump(c: &Cell<u32>) {
    c.set(c.get() + 1);
}

struct Layers {
    timer: ManualTimer,
    breaker: Breaker<CountWindow<20>>,
    gate: AdaptiveGate<Gradient>,
    throttle: Throttle,
    service: Service,
    counters: Counters,
}

/// One attempt: breaker ─▶ adaptive gate ─▶ throttle ─▶ attempt timeout ─▶ call.
async fn attempt(l: &Layers) -> Result<&'static str, Error> {
    let c = &l.counters;
    bump(&c.attempts);
    let Ok(call) = l.breaker.try_acquire(&l.timer) else {
        bump(&c.open);
        return Err(Error::Open);
    };
    let Ok(permit) = l.gate.try_enter(&l.timer) else {
        call.ignore(); // our own refusal says nothing about the service
        bump(&c.shed);
        return Err(Error::Shed);
    };
    let before = l.timer.now();
    l.throttle.acquire(&l.timer).await;
    if l.timer.now() > before {
        bump(&c.throttled);
    }
    bump(&c.calls);
    let (latency, status) = l.service.call(l.timer.now());
    match timeout(&l.timer, Duration::from_millis(100), l.timer.sleep(latency)).await {
        Ok(()) if status == 200 => {
            call.success();
            permit.success();
            Ok("body")
        }
        Ok(()) => {
            bump(&c.errors);
            call.failure();
            permit.ignore(); // an error reply is not overload
            Err(Error::Status(status))
        }
        Err(_) => {
            bump(&c.attempt_timeouts);
            call.failure();
            permit.dropped();
            Err(Error::AttemptTimeout)
        }
    }
}

fn main() -> Result<(), dike::error::ConfigError> {
    let ms = Duration::from_millis;
    let layers = Layers {
        timer: ManualTimer::new(),
        breaker: Breaker::new(CountWindow::<20>::new())
            .with_failure_ratio(0.5)?
            .try_with_min_calls(10)?
            .try_with_probes(3)?
            .with_break(BreakDuration::fixed(ms(500))),
        gate: AdaptiveGate::new(Gradient::new(20).with_seed(7)),
        throttle: Throttle::new(Quota::per_second(250).with_burst(5))?,
        service: Service { rng: Cell::new(7) },
        counters: Counters::default(),
    };
    // Retries and hedges draw on one budget: one extra attempt per 10 answers, sustained.
    let budget = RetryBudget::with_capacity(100, 10, 1)?;
    let retry = Retry::fixed(ms(20))
        .try_with_attempts(3)?
        .with_timeout(ms(300))
        .when(|e: &Error| *e != Error::Open)
        .with_budget(&budget);
    let hedge = Hedge::quantile(0.95, 100, ms(30))?.with_budget(&budget);

    let l = &layers;
    let (retry, hedge) = (&retry, &hedge);
    let request = move || {
        retry.run(&l.timer, move || {
            hedge
                .run(&l.timer, move || attempt(l))
                .accept(Result::is_ok)
        })
    };

    // 1000 arrivals, 5 ms apart on average; every request polled by this loop.
    type Request<'a> = Pin<Box<dyn Future<Output = Result<&'static str, RetryError<Error>>> + 'a>>;
    let mut running: Vec<Request<'_>> = Vec::new();
    let outcomes = RefCell::new((0u32, 0u32, 0u32, 0u32)); // ok, failed, timed out, refused
    let mut cx = Context::from_waker(Waker::noop());
    let (arrivals, gap) = (1000u32, ms(5));
    let mut next_arrival = (0u32, Duration::ZERO);
    loop {
        while next_arrival.0 < arrivals && layers.timer.now() >= next_arrival.1 {
            running.push(Box::pin(request()));
            // Poisson-like arrivals: gaps of 5 ms·U(0, 2), from the service's RNG.
            let jitter = gap.mul_f64(2.0 * layers.service.uniform());
            next_arrival = (next_arrival.0 + 1, next_arrival.1 + jitter);
        }
        running.retain_mut(|run| match run.as_mut().poll(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                let mut o = outcomes.borrow_mut();
                match result {
                    Ok(_) => o.0 += 1,
                    Err(RetryError::Failed(Error::Open)) => o.3 += 1,
                    Err(RetryError::TimedOut { .. }) => o.2 += 1,
                    Err(_) => o.1 += 1,
                }
                false
            }
        });
        if running.is_empty() && next_arrival.0 == arrivals {
            break;
        }
        let wake = match layers.timer.next_deadline() {
            Some(d) if next_arrival.0 < arrivals => d.min(next_arrival.1),
            Some(d) => d,
            None => next_arrival.1,
        };
        layers.timer.advance_to(wake.max(layers.timer.now()));
    }

    let (ok, failed, timed_out, refused) = *outcomes.borrow();
    let c = &layers.counters;
    let bs = layers.breaker.stats();
    let hs = hedge.stats();
    println!(
        "{arrivals} requests over 5 s of virtual time (ended at {:?})\n",
        layers.timer.now()
    );
    println!("total timeout (300 ms): {timed_out} requests cut");
    println!(
        "retry | hedge (shared budget, {} of {} tokens left): {} attempts for {arrivals} requests; {} hedges (p95 delay now {:?}, {} won), {} hedges refused by the budget",
        budget.available(),
        budget.capacity(),
        c.attempts.get(),
        hs.hedges,
        hedge.hedge_delay(),
        hs.hedge_wins,
        hs.refused,
    );
    println!(
        "circuit breaker: opened {} times, refused {} attempts ({} in the counters here), {} late results ignored",
        bs.opened,
        bs.rejected,
        c.open.get(),
        bs.late
    );
    println!(
        "adaptive gate: limit now {}, shed {} attempts",
        layers.gate.limit(),
        c.shed.get()
    );
    println!(
        "throttle (250/s, burst 5): {} attempts waited for a slot",
        c.throttled.get()
    );
    println!(
        "attempt timeout (100 ms): {} attempts cut",
        c.attempt_timeouts.get()
    );
    println!(
        "service: {} calls, {} error replies",
        c.calls.get(),
        c.errors.get()
    );
    println!(
        "\noutcomes: {ok} ok, {failed} failed, {timed_out} timed out, {refused} refused by the open breaker"
    );
    assert_eq!(ok + failed + timed_out + refused, arrivals);
    assert_eq!(
        layers.timer.sleepers(),
        0,
        "nothing left registered with the clock"
    );
    assert_eq!(layers.gate.stats().in_use, 0, "every permit came back");
    Ok(())
}
