//! Small shared pieces: timeouts on the user's timer, name validation, script calls.

use core::future::Future;
use core::time::Duration;

use dike::error::{ConfigError, ConfigValue};
use dike::time::Timer;
use futures_util::future::{Either, select};
use redis::{FromRedisValue, RedisResult};

use crate::conn::Connection;
use crate::error::BackendError;

/// The longest limiter name, in bytes.
///
/// # Examples
///
/// ```
/// use dike::throttle::Quota;
/// use dike_redis::{Connection, RedisThrottle, MAX_NAME_LEN};
///
/// let conn = Connection::open("redis://127.0.0.1:6379/")?;
/// assert!(RedisThrottle::new(&conn, &"n".repeat(MAX_NAME_LEN), Quota::per_second(1)).is_ok());
/// assert!(RedisThrottle::new(&conn, &"n".repeat(MAX_NAME_LEN + 1), Quota::per_second(1)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_NAME_LEN: usize = 128;

/// The default time limit of one call to Redis.
///
/// # Examples
///
/// ```
/// assert_eq!(dike_redis::DEFAULT_TIMEOUT, core::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// `f`, or `None` when `d` passes first on `timer`.
pub(crate) async fn within<T: Timer, F: Future>(timer: &T, d: Duration, f: F) -> Option<F::Output> {
    let sleep = timer.sleep(d);
    let f = core::pin::pin!(f);
    let sleep = core::pin::pin!(sleep);
    match select(f, sleep).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => None,
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            "name length",
            ConfigValue::Int(name.len() as i128),
            "1 to 128 bytes",
        ));
    }
    Ok(())
}

pub(crate) fn check_timeout(timeout: Duration) -> Result<(), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::new(
            "timeout",
            ConfigValue::Duration(timeout),
            "longer than zero",
        ));
    }
    Ok(())
}

/// A Lua script: its source and SHA1, run with `EVALSHA`, falling back to `EVAL` (which also
/// caches it on the server) after a `NOSCRIPT` reply: a flushed or restarted server costs one
/// extra round trip, transparently.
pub(crate) struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    pub(crate) fn new(source: &'static str) -> Self {
        Self {
            source,
            sha: redis::Script::new(source).get_hash().to_string(),
        }
    }

    /// Runs the script with `keys` and `args` (keys and names are data, never spliced into
    /// the source), within `timeout` on `timer`.
    pub(crate) async fn run<T: Timer, R: FromRedisValue>(
        &self,
        conn: &Connection,
        timer: &T,
        timeout: Duration,
        keys: &[&str],
        args: &[String],
    ) -> Result<R, BackendError> {
        let call = async {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.sha).arg(keys.len()).arg(keys).arg(args);
            let first: RedisResult<R> = conn.query(&cmd).await;
            match first {
                Err(err)
                    if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    let mut cmd = redis::cmd("EVAL");
                    cmd.arg(self.source).arg(keys.len()).arg(keys).arg(args);
                    conn.query(&cmd).await
                }
                other => other,
            }
        };
        match within(timer, timeout, call).await {
            Some(Ok(value)) => Ok(value),
            Some(Err(err)) => Err(conn.backend_error(&err)),
            None => Err(BackendError::timeout(timeout)),
        }
    }
}

/// Microseconds in `d` as a float (sub-microsecond intervals stay exact enough).
pub(crate) fn micros_f(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}
