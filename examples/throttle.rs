//! aiometer's `max_per_second`, in Rust: start at most 4 requests per second, on smol.
//!
//! Run it with `cargo run --example throttle --features async-io`. It takes about 1.5 s of real
//! time: the first start is immediate, then one every 250 ms.

use core::time::Duration;
use std::time::Instant;

use dike::throttle::Throttle;
use dike::time::{AsyncIoTimer, Timer};

async fn fetch(url: &str) -> usize {
    // Stands in for a real request.
    AsyncIoTimer::new().sleep(Duration::from_millis(50)).await;
    url.len()
}

fn main() -> Result<(), dike::error::ConfigError> {
    let throttle = Throttle::per_second(4)?;
    // Every `AsyncIoTimer` reads one process-wide clock, so any instance will do; `new` is
    // `const`, so the timer could be a `static` too.
    let timer = AsyncIoTimer::new();
    let urls = ["/a", "/bb", "/ccc", "/dddd", "/eeeee", "/ffffff", "/g"];
    let begin = Instant::now();
    smol::block_on(async {
        for url in urls {
            throttle.acquire(&timer).await;
            let started = begin.elapsed();
            let len = fetch(url).await;
            println!("{:>5} ms  started {url} ({len} bytes)", started.as_millis());
        }
    });
    Ok(())
}
