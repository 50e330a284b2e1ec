//! Fleet-wide limits on Redis: one rate limit ([`RedisThrottle`]), a rate limit per key
//! ([`RedisKeyedThrottle`]: per user, IP or tenant) and one concurrency limit ([`RedisGate`])
//! shared by every process of a service, with the types and the waiting of [`dike`]'s
//! in-memory [`Throttle`](dike::throttle::Throttle),
//! [`KeyedThrottle`](dike::keyed::KeyedThrottle) and [`Gate`](dike::gate::Gate).
//!
//! Ten replicas behind a load balancer that must together stay under a partner API's
//! 100 requests/s, or together hold at most 50 database connections: moving from one process
//! to the fleet is a change of type.
//!
//! ```no_run
//! use core::time::Duration;
//! use dike::throttle::Quota;
//! use dike::time::TokioTimer;
//! use dike_redis::{Connection, RedisGate, RedisThrottle};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let conn = Connection::open("redis://127.0.0.1:6379/")?;
//!     let api = RedisThrottle::new(&conn, "partner-api", Quota::per_second(100))?;
//!     let db = RedisGate::new(&conn, "db", 50, Duration::from_secs(30))?;
//!     let timer = TokioTimer::new();
//!
//!     api.acquire(&timer).await?; // the fleet's 100/s
//!     let permit = db.enter(&timer).await?; // the fleet's 50 at once
//!     // ... work, passing permit.token() to the database as a fencing token ...
//!     permit.release(&timer).await?;
//!     Ok(())
//! }
//! ```
//!
//! `examples/fleet.rs` runs three "replicas" in one process against a Redis it starts itself,
//! sharing a 10/s throttle and a gate of 3, and prints each replica's admissions per second
//! and the fleet's (`cargo run -p dike-redis --example fleet`).
//!
//! # How it works
//!
//! - **One round trip per operation**: a Lua script, sent with `EVALSHA` and with `EVAL`
//!   after a `NOSCRIPT` reply (a flushed or restarted server is handled transparently).
//! - **The server's clock counts**: scripts read `TIME`, so skew or drift between the client
//!   hosts cannot break a limit; the client's [`Timer`](dike::time::Timer) is only used to
//!   wait and to time out.
//! - **Keys**: `{dike:<name>}:throttle`, `{dike:<name>}:gate:holders`,
//!   `{dike:<name>}:gate:fence`, channel `{dike:<name>}:gate:released`. The hash tag keeps a
//!   limiter on one Redis Cluster slot; idle keys expire by themselves. Names are data (script
//!   keys), never spliced into a script.
//! - **Keyed**: [`RedisKeyedThrottle`] keeps each user key in its own Redis key,
//!   `{dike-keyed:<name>:<key>}:throttle` (name and key percent-encoded), hash-tagged per user
//!   key so a cluster spreads them over its slots; each expires once idle, so memory stays
//!   bounded with no cleanup task.
//!
//! # Faults
//!
//! - Every call returns within the limiter's timeout (default 1 s, per round trip) when Redis
//!   is down, paused or slow; [`FailMode`] decides what that means: `Closed` returns
//!   [`BackendError`], `Open` admits with an outcome that says it was not checked
//!   ([`Admission::Unchecked`], a permit with [`RedisPermit::is_checked`] `false`).
//! - After Redis comes back (also restarted with its data lost) the limiters work again
//!   without a restart of the client: the connection is remade by itself.
//! - **A timed-out call may still take effect**: a request queued in a paused Redis runs when
//!   it resumes. The damage is bounded: an orphaned throttle slot is one slot (`n` units), an
//!   orphaned lease lives at most its TTL.
//! - A holder process that dies frees its gate place when its lease expires.
//!
//! # Futures
//!
//! The waiting methods are `async fn`s: their futures borrow the limiter and the timer, are
//! `Send` when the timer's sleep is, and (as every `async fn`) panic if polled again after
//! they completed; they never do the work twice. Each method's docs say what dropping its
//! future mid-way does (its "Cancel safety" section).
//!
//! # Connections
//!
//! [`Connection::open`] takes a `redis://[user[:password]@]host[:port][/db]` URL (a
//! `requirepass` password or an ACL user; the user needs `EVALSHA`, `EVAL`, `SCRIPT`,
//! `PUBLISH`, `SUBSCRIBE` and the commands the scripts run, on keys and channels
//! `{dike:<name>}:*`, and keys `{dike-keyed:<name>:*` for a keyed throttle); feature `tls` adds `rediss://` and [`Connection::open_tls`] with a
//! private CA. [`Connection::open_cluster`] takes some nodes of a Redis Cluster;
//! [`Connection::from_manager`] and [`Connection::from_cluster`] take connections the
//! application already has. Credentials never appear in `Debug`, `Display` or errors.
//!
//! # Runtimes
//!
//! Feature `tokio` (default) runs redis-rs on tokio; feature `smol` on smol/async-io. With
//! both, redis-rs picks tokio inside a tokio runtime and smol elsewhere. Pass the matching
//! dike timer (`TokioTimer`, `AsyncIoTimer`) to the limiters.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "tokio", feature = "smol")))]
compile_error!("dike-redis needs a runtime: enable the `tokio` or the `smol` feature");

mod conn;
mod error;
mod gate;
mod keyed;
mod throttle;
mod util;

pub use conn::{ConnectError, Connection};
pub use error::{
    BackendError, BackendErrorKind, GateError, RateLimited, StaleToken, ThrottleError,
};
pub use gate::{RedisGate, RedisPermit};
pub use keyed::{RedisKey, RedisKeyedThrottle};
pub use throttle::{Admission, RedisThrottle};
pub use util::{DEFAULT_TIMEOUT, MAX_NAME_LEN};

/// What a limiter does when Redis cannot be asked within its timeout.
///
/// # Examples
///
/// ```
/// use dike_redis::FailMode;
///
/// assert_eq!(FailMode::default(), FailMode::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailMode {
    /// Refuse: the call returns [`BackendError`] (inside the limiter's error).
    #[default]
    Closed,
    /// Admit without a check: [`Admission::Unchecked`], or a permit without a fencing token.
    Open,
}
