//! An outbound client on smol: every request waits for a [`Throttle`] (20 per second) and is
//! retried with exponential backoff when the (fake, flaky) server answers 503. Ten requests
//! run at once; each prints how many attempts it took. It finishes in under a second.
//!
//! Run with `cargo run --example client_smol --features async-io`. The same program on tokio is
//! `examples/client_tokio.rs`: only the timer and the way `main` runs change.
//!
//! The dike client is a policy and a throttle, shared by reference, and one expression per
//! request. The governor + backon equivalent is as long, without the attempt count (backon
//! reports none), and needs a `sleep` function of its own on smol:
//!
//! ```ignore
//! let limiter = RateLimiter::direct(Quota::per_second(nonzero!(20u32)));
//! let backoff = ExponentialBuilder::default()
//!     .with_min_delay(Duration::from_millis(20))
//!     .with_max_times(3)
//!     .without_max_delay();
//! let get = |id| async move { limiter.until_ready().await; server.get(id).await };
//! let body = (|| get(id)).retry(backoff).sleep(|d| async move { smol::Timer::after(d).await; }).when(Error::is_transient).await;
//! ```

use std::time::{Duration, Instant};

use dike::prelude::*;
use dike::retry::{Outcome, Retry};
use dike::throttle::Throttle;
use dike::time::AsyncIoTimer;

mod fake_server;
use fake_server::{Error, FakeServer};

/// The client: a rate limit and a retry policy in plain fields, used through `&self`.
struct Client {
    throttle: Throttle,
    policy: Retry,
    timer: AsyncIoTimer,
    server: FakeServer<AsyncIoTimer>,
}

impl Client {
    /// One request: wait for the rate limit, call, retry a 503 with backoff.
    async fn get(&self, id: u32) -> Outcome<String, Error> {
        let this = self;
        let call = move || async move {
            this.throttle.acquire(&this.timer).await;
            this.server.get(id).await
        };
        call.retry(&self.policy, &self.timer)
            .when(Error::is_transient)
            .outcome()
            .await
    }
}

fn main() -> Result<(), dike::error::ConfigError> {
    smol::block_on(run())
}

async fn run() -> Result<(), dike::error::ConfigError> {
    let timer = AsyncIoTimer::new();
    let client = Client {
        throttle: Throttle::per_second(20)?,
        policy: Retry::exponential(Duration::from_millis(20), 2.0)?.try_with_attempts(4)?,
        timer,
        server: FakeServer::new(timer),
    };
    let started = Instant::now();
    let outcomes = futures_util::future::join_all((0..10).map(|id| client.get(id))).await;
    for (id, outcome) in outcomes.iter().enumerate() {
        println!(
            "request {id}: {:?} after {} attempt(s)",
            outcome.result(),
            outcome.attempts()
        );
    }
    let calls = client.server.calls();
    println!("{calls} calls to the server in {:?}", started.elapsed());
    Ok(())
}
