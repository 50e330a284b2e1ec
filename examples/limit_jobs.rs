//! Python dike's README example for `@limit_jobs`, in Rust.
//!
//! ```python
//! @dike.limit_jobs(limit=2)
//! async def web_request():
//!     ...
//!
//! responses = await asyncio.gather(web_request(), web_request(), web_request(),
//!                                   return_exceptions=True)
//! ```
//!
//! Three requests start at once against a limit of two: the first two run, the third is
//! turned away at once with `TooManyCalls`. Run with `cargo run --example limit_jobs`; it
//! prints
//!
//! ```text
//! <Response [200 OK]>
//! <Response [200 OK]>
//! too many calls
//! ```

use core::time::Duration;

use dike::gate::limit_jobs;
use futures_util::future::join_all;

/// A slow web request: 100 ms of (real) waiting, then a response.
async fn web_request() -> &'static str {
    smol::Timer::after(Duration::from_millis(100)).await;
    "<Response [200 OK]>"
}

fn main() {
    let web_request = limit_jobs(2, web_request);

    // Send three requests at the same time.
    let responses = smol::block_on(join_all((0..3).map(|_| web_request.call0())));

    for response in responses {
        match response {
            Ok(response) => println!("{response}"),
            Err(_too_many_calls) => println!("too many calls"),
        }
    }
    let stats = web_request.gate().stats();
    assert_eq!((stats.admitted, stats.rejected, stats.in_use), (2, 1, 0));
}
