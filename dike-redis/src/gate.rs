//! The fleet-wide counting gate: leases in a sorted set scored by their expiry on the server.

use core::fmt;
use core::time::Duration;
use std::sync::Mutex;

use dike::error::{ConfigError, ConfigValue, TooManyCalls, TooManyCallsKind};
use dike::gate::Gate;
use dike::time::Timer;
use futures_util::StreamExt;
use futures_util::future::{Either, FutureExt, select};
use redis::aio::PubSub;

use crate::FailMode;
use crate::conn::Connection;
use crate::error::{BackendError, GateError, StaleToken};
use crate::util::{DEFAULT_TIMEOUT, Script, check_name, check_timeout, within};

/// KEYS: holders (zset token → expiry µs), fence (last token). ARGV: limit, lease µs,
/// holders' key TTL ms, fence TTL ms. Returns {1, token} or {0, µs until the earliest expiry}.
const ENTER: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  local token = math.max(last + 1, now)
  local s = string.format('%.0f', token)
  redis.call('SET', KEYS[2], s, 'PX', ARGV[4])
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), s)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, token}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(0, tonumber(first[2]) - now)}
";

/// KEYS: holders. ARGV: token, channel. Frees the lease if it is live and announces it.
/// Returns 1, or 0 for a stale token (an expired lease still in the set is removed too, but
/// it frees nothing that was not free already).
const RELEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then return 0 end
redis.call('PUBLISH', ARGV[2], '1')
return 1
";

/// KEYS: holders. ARGV: token, lease µs, holders' key TTL ms. Extends a live lease.
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Added to the earliest lease expiry before a blocked waiter re-checks without a message.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(10);
/// How long a waiter whose subscription cannot be made waits before it asks again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(100);
/// The fence key outlives its last use by this much (tokens stay above the server's clock in
/// µs anyway, so its expiry never lets them go back).
const FENCE_TTL: Duration = Duration::from_secs(24 * 3600);

/// A concurrency limit shared by every process that uses the same Redis and name: the fleet's
/// `max_at_once`.
///
/// A holder has a *lease* in a sorted set scored by its expiry on the server's clock; entering
/// removes expired leases and adds one if fewer than `limit` are live, all in one script. Each
/// permit carries a fencing token that increases for ever (`max(last + 1, server time in
/// µs)`, so also after the keys expired, after `FLUSHALL` and after a restart that lost the
/// data, as long as the server's wall clock does not go back and fewer than one token per µs
/// is issued).
///
/// Waiting: within one process, waiters queue in arrival order on a local
/// [`dike::gate::Gate`] (no starvation within a process; FIFO across the fleet is not
/// promised). The head subscribes to the gate's release channel and re-checks when a release
/// is published, and otherwise only once the earliest lease has expired (a backstop for a
/// holder that died without releasing): no polling loop.
///
/// A permit dropped without [`release`](RedisPermit::release) frees its place when its lease
/// expires: a destructor cannot do I/O without spawning a task, and this crate never spawns.
/// Release permits explicitly to hand the place on at once.
///
/// # Examples
///
/// ```no_run
/// use core::time::Duration;
/// use dike::time::TokioTimer;
/// use dike_redis::{Connection, RedisGate};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Connection::open("redis://127.0.0.1:6379/")?;
/// // At most 50 connections to the database across the fleet; a holder that dies frees its
/// // place within 30 s.
/// let gate = RedisGate::new(&conn, "db", 50, Duration::from_secs(30))?;
/// let timer = TokioTimer::new();
/// let permit = gate.enter(&timer).await?;
/// // use the database, passing permit.token() along so it can refuse stale holders
/// permit.release(&timer).await?;
/// # Ok(()) }
/// ```
pub struct RedisGate {
    conn: Connection,
    name: String,
    holders: String,
    fence: String,
    channel: String,
    limit: usize,
    lease: Duration,
    fail_mode: FailMode,
    timeout: Duration,
    local: Gate,
    subscriber: Mutex<Option<PubSub>>,
    enter_script: Script,
    release_script: Script,
    renew_script: Script,
}

enum Attempt {
    Acquired(u64),
    Full(Duration),
}

impl RedisGate {
    /// A gate named `name` letting `limit` holders in at once across the fleet, each for a
    /// lease of `lease` unless renewed. Fails closed, with a 1 s timeout per round trip.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `limit` is 0, `lease` is shorter than 1 ms, or the name is empty or
    /// longer than 128 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike_redis::{Connection, RedisGate};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let err = RedisGate::new(&conn, "db", 5, Duration::ZERO).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid lease = 0ns: expected at least 1 ms");
    /// assert!(RedisGate::new(&conn, "db", 0, Duration::from_secs(1)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        conn: &Connection,
        name: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Self, ConfigError> {
        if limit == 0 {
            return Err(ConfigError::new("limit", ConfigValue::Int(0), "at least 1"));
        }
        if lease < Duration::from_millis(1) || lease > Duration::from_secs(365 * 24 * 3600) {
            return Err(ConfigError::new(
                "lease",
                ConfigValue::Duration(lease),
                if lease.is_zero() || lease < Duration::from_millis(1) {
                    "at least 1 ms"
                } else {
                    "at most a year"
                },
            ));
        }
        check_name(name)?;
        let tag = format!("{{dike:{name}}}");
        Ok(Self {
            conn: conn.clone(),
            name: name.to_string(),
            holders: format!("{tag}:gate:holders"),
            fence: format!("{tag}:gate:fence"),
            channel: format!("{tag}:gate:released"),
            limit,
            lease,
            fail_mode: FailMode::Closed,
            timeout: DEFAULT_TIMEOUT,
            local: Gate::new(1),
            subscriber: Mutex::new(None),
            enter_script: Script::new(ENTER),
            release_script: Script::new(RELEASE),
            renew_script: Script::new(RENEW),
        })
    }

    /// What to do when Redis cannot be asked (default [`FailMode::Closed`]). Failing open
    /// hands out permits without a token ([`RedisPermit::is_checked`] is `false`).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike_redis::{Connection, FailMode, RedisGate};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "db", 5, Duration::from_secs(10))?.with_fail_mode(FailMode::Open);
    /// assert_eq!(gate.fail_mode(), FailMode::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_fail_mode(mut self, fail_mode: FailMode) -> Self {
        self.fail_mode = fail_mode;
        self
    }

    /// The time limit of each round trip (default 1 s).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `timeout` when it is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike_redis::{Connection, RedisGate};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "db", 5, Duration::from_secs(10))?
    ///     .with_timeout(Duration::from_millis(300))?;
    /// assert_eq!(gate.timeout(), Duration::from_millis(300));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        check_timeout(timeout)?;
        self.timeout = timeout;
        Ok(self)
    }

    /// The limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike_redis::{Connection, FailMode, RedisGate, DEFAULT_TIMEOUT};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "db", 5, Duration::from_secs(10))?;
    /// assert_eq!(gate.limit(), 5);
    /// assert_eq!(gate.lease(), Duration::from_secs(10));
    /// assert_eq!(gate.fail_mode(), FailMode::Closed);
    /// assert_eq!(gate.timeout(), DEFAULT_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The lease each permit gets (and each renewal extends to).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike_redis::{Connection, FailMode, RedisGate, DEFAULT_TIMEOUT};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "db", 5, Duration::from_secs(10))?;
    /// assert_eq!(gate.limit(), 5);
    /// assert_eq!(gate.lease(), Duration::from_secs(10));
    /// assert_eq!(gate.fail_mode(), FailMode::Closed);
    /// assert_eq!(gate.timeout(), DEFAULT_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The fail mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike_redis::{Connection, FailMode, RedisGate, DEFAULT_TIMEOUT};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "db", 5, Duration::from_secs(10))?;
    /// assert_eq!(gate.limit(), 5);
    /// assert_eq!(gate.lease(), Duration::from_secs(10));
    /// assert_eq!(gate.fail_mode(), FailMode::Closed);
    /// assert_eq!(gate.timeout(), DEFAULT_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    /// The time limit of each round trip.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike_redis::{Connection, FailMode, RedisGate, DEFAULT_TIMEOUT};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "db", 5, Duration::from_secs(10))?;
    /// assert_eq!(gate.limit(), 5);
    /// assert_eq!(gate.lease(), Duration::from_secs(10));
    /// assert_eq!(gate.fail_mode(), FailMode::Closed);
    /// assert_eq!(gate.timeout(), DEFAULT_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Enters now if fewer than `limit` leases are live, without waiting. One round trip.
    ///
    /// Does not queue behind this process' waiters (it never waits).
    ///
    /// # Errors
    ///
    /// [`GateError::TooManyCalls`] (kind `Full`) when every lease is held;
    /// [`GateError::Backend`] when Redis cannot be asked and the gate fails closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it during the round trip may still take a lease on the server; it lives at
    /// most its TTL.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use core::time::Duration;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, GateError, RedisGate};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "doc-try", 1, Duration::from_secs(10))?;
    /// let timer = TokioTimer::new();
    /// let permit = gate.try_enter(&timer).await?;
    /// assert!(matches!(gate.try_enter(&timer).await, Err(GateError::TooManyCalls(_))));
    /// permit.release(&timer).await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_enter<T: Timer>(&self, timer: &T) -> Result<RedisPermit<'_>, GateError> {
        match self.attempt(timer).await {
            Ok(Attempt::Acquired(token)) => Ok(self.permit(Some(token))),
            Ok(Attempt::Full(_)) => {
                Err(TooManyCalls::new(self.limit, TooManyCallsKind::Full).into())
            }
            Err(err) => self.on_backend_error(err),
        }
    }

    /// Waits until a lease is free and takes it.
    ///
    /// # Errors
    ///
    /// [`GateError::Backend`] when Redis cannot be asked and the gate fails closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it while it waits loses nothing and leaves its place in the local queue to the
    /// next waiter; dropping it during a round trip may take a lease that lives at most its
    /// TTL.
    ///
    /// # Examples
    ///
    /// See [`RedisGate`].
    pub async fn enter<T: Timer>(&self, timer: &T) -> Result<RedisPermit<'_>, GateError> {
        self.enter_inner(timer, None).await
    }

    /// Waits at most `timeout` for a lease.
    ///
    /// # Errors
    ///
    /// [`GateError::TooManyCalls`] (kind `TimedOut`) when the time runs out (checked between
    /// round trips, so it may return up to one round trip's timeout late);
    /// [`GateError::Backend`] when Redis cannot be asked and the gate fails closed.
    ///
    /// # Cancel safety
    ///
    /// As [`enter`](RedisGate::enter).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use core::time::Duration;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisGate};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "doc-timeout", 1, Duration::from_secs(10))?;
    /// let timer = TokioTimer::new();
    /// let held = gate.enter(&timer).await?;
    /// assert!(gate.enter_timeout(&timer, Duration::from_millis(50)).await.is_err());
    /// held.release(&timer).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enter_timeout<T: Timer>(
        &self,
        timer: &T,
        timeout: Duration,
    ) -> Result<RedisPermit<'_>, GateError> {
        let deadline = timer.now().saturating_add(timeout);
        self.enter_inner(timer, Some(deadline)).await
    }

    fn permit(&self, token: Option<u64>) -> RedisPermit<'_> {
        RedisPermit { gate: self, token }
    }

    fn timed_out(&self) -> GateError {
        TooManyCalls::new(self.limit, TooManyCallsKind::TimedOut).into()
    }

    fn on_backend_error(&self, err: BackendError) -> Result<RedisPermit<'_>, GateError> {
        match self.fail_mode {
            FailMode::Open => Ok(self.permit(None)),
            FailMode::Closed => Err(err.into()),
        }
    }

    async fn attempt<T: Timer>(&self, timer: &T) -> Result<Attempt, BackendError> {
        let args = [
            self.limit.to_string(),
            self.lease.as_micros().to_string(),
            (self.lease.as_millis() + 1000).to_string(),
            FENCE_TTL.as_millis().to_string(),
        ];
        let (ok, value): (i64, i64) = self
            .enter_script
            .run(
                &self.conn,
                timer,
                self.timeout,
                &[&self.holders, &self.fence],
                &args,
            )
            .await?;
        let value = u64::try_from(value).map_err(|_| BackendError::protocol("negative number"))?;
        Ok(if ok == 1 {
            Attempt::Acquired(value)
        } else {
            Attempt::Full(Duration::from_micros(value))
        })
    }

    async fn enter_inner<T: Timer>(
        &self,
        timer: &T,
        deadline: Option<Duration>,
    ) -> Result<RedisPermit<'_>, GateError> {
        // Arrival order within this process: only the head talks to Redis.
        let _head = match deadline {
            // The local gate has no bound on waiters: it never refuses.
            None => self.local.enter().await.map_err(|_| self.timed_out())?,
            Some(deadline) => self
                .local
                .enter_until(timer, deadline)
                .await
                .map_err(|_| self.timed_out())?,
        };
        let mut sub = self.take_subscriber();
        let result = self.wait_as_head(timer, deadline, &mut sub).await;
        // Hand a live subscription to the next local waiter; close it when nobody waits.
        if let Some(sub) = sub
            && self.local.stats().waiting > 0
        {
            *self.subscriber.lock().unwrap_or_else(|e| e.into_inner()) = Some(sub);
        }
        result
    }

    fn take_subscriber(&self) -> Option<PubSub> {
        let mut sub = self
            .subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        // Messages of releases before this waiter arrived say nothing about now.
        let open = {
            let mut messages = sub.on_message();
            loop {
                match messages.next().now_or_never() {
                    Some(Some(_)) => continue,
                    Some(None) => break false,
                    None => break true,
                }
            }
        };
        open.then_some(sub)
    }

    async fn wait_as_head<T: Timer>(
        &self,
        timer: &T,
        deadline: Option<Duration>,
        sub: &mut Option<PubSub>,
    ) -> Result<RedisPermit<'_>, GateError> {
        loop {
            let earliest = match self.attempt(timer).await {
                Ok(Attempt::Acquired(token)) => return Ok(self.permit(Some(token))),
                Ok(Attempt::Full(earliest)) => earliest,
                Err(err) => return self.on_backend_error(err),
            };
            let now = timer.now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(self.timed_out());
            }
            let mut wake_at = now.saturating_add((earliest + BACKSTOP_MARGIN).min(self.lease));
            if sub.is_none() {
                let subscribed = within(timer, self.timeout, self.subscribe_call()).await;
                if let Some(Ok(new)) = subscribed {
                    // Subscribed: check again, a release may have happened just before.
                    *sub = Some(new);
                    continue;
                }
                wake_at = wake_at.min(now.saturating_add(RESUBSCRIBE_DELAY));
            }
            if let Some(deadline) = deadline {
                wake_at = wake_at.min(deadline);
            }
            let sleep = core::pin::pin!(timer.sleep_until(wake_at));
            match sub {
                Some(s) => {
                    let mut messages = s.on_message();
                    let message = messages.next();
                    let lost = matches!(select(message, sleep).await, Either::Left((None, _)));
                    drop(messages);
                    if lost {
                        // The subscription was lost (CLIENT KILL, restart): resubscribe.
                        *sub = None;
                    }
                }
                None => sleep.await,
            }
        }
    }

    async fn subscribe_call(&self) -> redis::RedisResult<PubSub> {
        let mut sub = self.conn.pubsub().await?;
        sub.subscribe(&self.channel).await?;
        Ok(sub)
    }
}

impl fmt::Debug for RedisGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisGate")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("lease", &self.lease)
            .field("fail_mode", &self.fail_mode)
            .field("timeout", &self.timeout)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

/// A lease on a [`RedisGate`]: one of its `limit` places, until released or expired.
///
/// Dropping it without [`release`](RedisPermit::release) does no I/O: the place is freed when
/// the lease expires on the server (a destructor cannot talk to Redis without spawning a
/// task). [`renew`](RedisPermit::renew) extends a lease for long work.
///
/// # Examples
///
/// See [`RedisGate`].
pub struct RedisPermit<'a> {
    gate: &'a RedisGate,
    token: Option<u64>,
}

impl RedisPermit<'_> {
    /// The fencing token: larger than every token handed out before by this gate, so a
    /// backend can refuse writes from a holder whose lease has passed to a later one. `None`
    /// for a permit given without a check (fail-open while Redis was unreachable).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use core::time::Duration;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisGate};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "doc-token", 2, Duration::from_secs(10))?;
    /// let timer = TokioTimer::new();
    /// let a = gate.enter(&timer).await?;
    /// let b = gate.enter(&timer).await?;
    /// assert!(b.token() > a.token());
    /// # Ok(()) }
    /// ```
    pub fn token(&self) -> Option<u64> {
        self.token
    }

    /// `false` when the gate failed open and admitted without asking Redis.
    ///
    /// # Examples
    ///
    /// See [`RedisPermit::token`].
    pub fn is_checked(&self) -> bool {
        self.token.is_some()
    }

    /// The lease length (from entering or the last renewal).
    ///
    /// # Examples
    ///
    /// See [`RedisPermit::token`]; `permit.lease()` is the gate's [`RedisGate::lease`].
    pub fn lease(&self) -> Duration {
        self.gate.lease
    }

    /// Extends the lease to a full lease from now (on the server's clock).
    ///
    /// # Errors
    ///
    /// [`GateError::StaleToken`] when the lease already expired or was lost (nothing is
    /// extended); [`GateError::Backend`] when Redis cannot be asked (the lease still runs
    /// out at its old expiry). An unchecked permit renews trivially.
    ///
    /// # Cancel safety
    ///
    /// Dropping it may or may not extend the lease.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use core::time::Duration;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisGate};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let gate = RedisGate::new(&conn, "doc-renew", 2, Duration::from_secs(10))?;
    /// let timer = TokioTimer::new();
    /// let mut permit = gate.enter(&timer).await?;
    /// permit.renew(&timer).await?;
    /// permit.release(&timer).await?;
    /// # Ok(()) }
    /// ```
    pub async fn renew<T: Timer>(&mut self, timer: &T) -> Result<(), GateError> {
        let Some(token) = self.token else {
            return Ok(());
        };
        let gate = self.gate;
        let args = [
            token.to_string(),
            gate.lease.as_micros().to_string(),
            (gate.lease.as_millis() + 1000).to_string(),
        ];
        let done: i64 = gate
            .renew_script
            .run(&gate.conn, timer, gate.timeout, &[&gate.holders], &args)
            .await?;
        if done == 1 {
            Ok(())
        } else {
            Err(StaleToken { token }.into())
        }
    }

    /// Frees the place at once and wakes the fleet's waiters.
    ///
    /// # Errors
    ///
    /// [`GateError::StaleToken`] when the lease had already expired or was lost (nothing else
    /// is freed); [`GateError::Backend`] when Redis cannot be asked (the lease then frees
    /// itself at expiry). An unchecked permit releases trivially.
    ///
    /// # Cancel safety
    ///
    /// Dropping it may or may not free the place now; it is free at the lease's expiry
    /// either way.
    ///
    /// # Examples
    ///
    /// See [`RedisGate`].
    pub async fn release<T: Timer>(self, timer: &T) -> Result<(), GateError> {
        let Some(token) = self.token else {
            return Ok(());
        };
        let gate = self.gate;
        let args = [token.to_string(), gate.channel.clone()];
        let done: i64 = gate
            .release_script
            .run(&gate.conn, timer, gate.timeout, &[&gate.holders], &args)
            .await?;
        if done == 1 {
            Ok(())
        } else {
            Err(StaleToken { token }.into())
        }
    }
}

impl fmt::Debug for RedisPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPermit")
            .field("gate", &self.gate.name)
            .field("token", &self.token)
            .finish()
    }
}
