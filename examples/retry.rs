//! Python dike's README retry example, in Rust.
//!
//! ```python
//! @dike.retry(attempts=2, delay=datetime.timedelta(milliseconds=10), exception_types=RuntimeError)
//! async def web_request():
//!     raise RuntimeError("Request failed!")
//! ```
//!
//! Run it with `cargo run --example retry --features tokio`. It prints one warning for the
//! first failed attempt, then the final error, returned unchanged after the second:
//!
//! ```text
//! WARNING: Caught error RuntimeError("Request failed!"). Retrying in 0.01s ...
//! Error: RuntimeError("Request failed!")
//! ```

use core::fmt;
use core::num::NonZeroU32;
use core::time::Duration;

use dike::retry::{Retry, retry};
use dike::time::TokioTimer;

#[derive(Debug)]
enum Error {
    RuntimeError(&'static str),
    #[allow(dead_code)] // never constructed here; shows that `when` filters by kind
    InvalidInput(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RuntimeError(msg) => write!(f, "RuntimeError({msg:?})"),
            Self::InvalidInput(msg) => write!(f, "InvalidInput({msg:?})"),
        }
    }
}

async fn web_request() -> Result<String, Error> {
    Err(Error::RuntimeError("Request failed!"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // attempts=2, delay=10 ms, exception_types=RuntimeError.
    let policy = Retry::fixed(Duration::from_millis(10))
        .with_attempts(NonZeroU32::new(2).expect("2 is not zero"))
        .when(|e: &Error| matches!(e, Error::RuntimeError(_)))
        .notify(|e: &Error, _attempt, next: Option<Duration>| {
            let next = next.unwrap_or_default().as_secs_f64();
            println!("WARNING: Caught error {e}. Retrying in {next}s ...");
        });
    let web_request = retry(policy, TokioTimer::new(), web_request);

    match web_request.call0().await {
        Ok(response) => println!("{response}"),
        Err(e) => println!("Error: {e}"),
    }
}
