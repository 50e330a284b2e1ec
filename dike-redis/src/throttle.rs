//! The fleet-wide GCRA throttle.

use core::fmt;
use core::time::Duration;
use std::sync::Mutex;

use dike::error::{ConfigError, ConfigValue};
use dike::throttle::{Quota, Throttle};
use dike::time::Timer;

use crate::FailMode;
use crate::conn::Connection;
use crate::error::{BackendError, RateLimited, ThrottleError};
use crate::util::{DEFAULT_TIMEOUT, Script, check_name, check_timeout, micros_f};

/// GCRA on the server's clock. KEYS[1]: the theoretical arrival time (µs since the epoch, on
/// the server). ARGV: interval µs, tolerance µs (burst × interval), cost n, and the most units
/// to take (≥ n: a local reservation takes what is free up to it).
/// Returns {units taken, 0} when admitted, {0, wait µs} when refused (nothing is consumed).
pub(crate) const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local most = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local allow_at = tat + n * interval - tolerance
if now < allow_at then
  return {0, math.ceil(allow_at - now)}
end
while n < most and now >= tat + (n + 1) * interval - tolerance do n = n + 1 end
local new_tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {n, 0}
";

/// Whether a call was checked against the fleet's quota.
///
/// # Examples
///
/// ```
/// use dike_redis::Admission;
///
/// assert!(Admission::Checked.is_checked());
/// assert!(!Admission::Unchecked.is_checked());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admission {
    /// Redis counted it against the quota.
    Checked,
    /// Redis could not be asked and the limiter fails open: admitted without a check.
    Unchecked,
}

impl Admission {
    /// `true` for [`Admission::Checked`].
    ///
    /// # Examples
    ///
    /// See [`Admission`].
    pub fn is_checked(self) -> bool {
        self == Self::Checked
    }
}

/// A rate limit shared by every process that uses the same Redis and name: the fleet's
/// `max_per_second`.
///
/// GCRA (the algorithm of `dike::throttle::Throttle`) runs in one Lua script per call, reading
/// the server's clock (`TIME`), so the clocks of the client hosts do not matter: over any
/// window of length `W` the fleet admits at most `rate·W/period + burst` units. The state is
/// one key, `{dike:<name>}:throttle`, which expires once the throttle is idle (it would admit
/// a full burst).
///
/// Every call is one round trip bounded by the throttle's timeout (1 s unless
/// [`with_timeout`](RedisThrottle::with_timeout)); when Redis cannot be asked, the
/// [`FailMode`] decides.
///
/// # Examples
///
/// ```no_run
/// use dike::throttle::Quota;
/// use dike::time::TokioTimer;
/// use dike_redis::{Connection, RedisThrottle};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Connection::open("redis://127.0.0.1:6379/")?;
/// // At most 100 calls per second to the partner API, across every replica.
/// let throttle = RedisThrottle::new(&conn, "partner-api", Quota::per_second(100))?;
/// let timer = TokioTimer::new();
/// for _ in 0..3 {
///     throttle.acquire(&timer).await?;
///     // call the partner API
/// }
/// # Ok(()) }
/// ```
pub struct RedisThrottle {
    conn: Connection,
    name: String,
    key: String,
    quota: Quota,
    interval_us: f64,
    fail_mode: FailMode,
    timeout: Duration,
    script: Script,
    reservation: Option<Reservation>,
}

/// Units taken from Redis ahead of need, handed out locally until `hold` has passed.
struct Reservation {
    units: u32,
    hold: Duration,
    /// (units left, when they lapse on the caller's timer).
    left: Mutex<(u32, Duration)>,
}

impl RedisThrottle {
    /// A throttle named `name` with `quota`, failing closed, with a 1 s timeout.
    ///
    /// Every process using the same server and name shares the limit; they must use the same
    /// quota.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an invalid quota (as `dike::throttle::Throttle::new`) or a name that
    /// is empty or longer than 128 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, RedisThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let err = RedisThrottle::new(&conn, "api", Quota::per_second(0)).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid rate = 0: expected at least 1");
    /// let err = RedisThrottle::new(&conn, "", Quota::per_second(1)).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid name length = 0: expected 1 to 128 bytes");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(conn: &Connection, name: &str, quota: Quota) -> Result<Self, ConfigError> {
        let interval = Throttle::new(quota)?.interval();
        check_name(name)?;
        Ok(Self {
            conn: conn.clone(),
            name: name.to_string(),
            key: format!("{{dike:{name}}}:throttle"),
            quota,
            interval_us: micros_f(interval),
            fail_mode: FailMode::Closed,
            timeout: DEFAULT_TIMEOUT,
            script: Script::new(GCRA),
            reservation: None,
        })
    }

    /// What to do when Redis cannot be asked (default [`FailMode::Closed`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, FailMode, RedisThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let throttle = RedisThrottle::new(&conn, "api", Quota::per_second(5))?
    ///     .with_fail_mode(FailMode::Open);
    /// assert_eq!(throttle.fail_mode(), FailMode::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_fail_mode(mut self, fail_mode: FailMode) -> Self {
        self.fail_mode = fail_mode;
        self
    }

    /// The time limit of each round trip (default 1 s). A call on a paused or unreachable
    /// server returns within it (plus the timer's granularity).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `timeout` when it is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, RedisThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let throttle = RedisThrottle::new(&conn, "api", Quota::per_second(5))?
    ///     .with_timeout(Duration::from_millis(200))?;
    /// assert_eq!(throttle.timeout(), Duration::from_millis(200));
    /// assert!(RedisThrottle::new(&conn, "api", Quota::per_second(5))?.with_timeout(Duration::ZERO).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        check_timeout(timeout)?;
        self.timeout = timeout;
        Ok(self)
    }

    /// Local reservation, for callers that need more than Redis' round-trip rate: each round
    /// trip takes up to `units` units (as many as are free, at least the cost asked for) and
    /// hands the rest out locally, without a round trip, for at most `hold` (on the caller's
    /// timer) after the request was sent; units not used by then lapse.
    ///
    /// The bound becomes: over any window of length `W`, the fleet *uses* at most
    /// `rate·(W + hold)/period + burst` units (a unit is counted by the server when reserved
    /// and used within `hold` of that), provided the callers' timers do not run slow. Unused
    /// units that lapse are lost to the fleet, so keep `hold` short and `units` near one
    /// caller's share. All calls on one throttle must use the same timer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `units` is 0 or larger than the burst, or `hold` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, RedisThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let quota = Quota::per_second(10_000).with_burst(100);
    /// let throttle = RedisThrottle::new(&conn, "hot", quota)?
    ///     .with_local_reservation(10, Duration::from_millis(20))?;
    /// assert!(RedisThrottle::new(&conn, "hot", quota)?
    ///     .with_local_reservation(101, Duration::from_millis(20))
    ///     .is_err());
    /// # let _ = throttle;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_local_reservation(
        mut self,
        units: u32,
        hold: Duration,
    ) -> Result<Self, ConfigError> {
        if units == 0 || units > self.quota.burst() {
            return Err(ConfigError::new(
                "reservation units",
                ConfigValue::Int(i128::from(units)),
                "1 to the quota's burst",
            ));
        }
        if hold.is_zero() {
            return Err(ConfigError::new(
                "reservation hold",
                ConfigValue::Duration(hold),
                "longer than zero",
            ));
        }
        self.reservation = Some(Reservation {
            units,
            hold,
            left: Mutex::new((0, Duration::ZERO)),
        });
        Ok(self)
    }

    /// The quota.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, RedisThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let quota = Quota::per_second(5).with_burst(2);
    /// assert_eq!(RedisThrottle::new(&conn, "api", quota)?.quota(), quota);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The fail mode. See [`with_fail_mode`](RedisThrottle::with_fail_mode).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, FailMode, RedisThrottle, DEFAULT_TIMEOUT};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let throttle = RedisThrottle::new(&conn, "api", Quota::per_second(5))?;
    /// assert_eq!(throttle.fail_mode(), FailMode::Closed);
    /// assert_eq!(throttle.timeout(), DEFAULT_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    /// The time limit of each round trip. See [`with_timeout`](RedisThrottle::with_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, FailMode, RedisThrottle, DEFAULT_TIMEOUT};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let throttle = RedisThrottle::new(&conn, "api", Quota::per_second(5))?;
    /// assert_eq!(throttle.fail_mode(), FailMode::Closed);
    /// assert_eq!(throttle.timeout(), DEFAULT_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Admits one unit now, or says how long until it could be. One round trip.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::RateLimited`] when the quota is spent (nothing is consumed);
    /// [`ThrottleError::Backend`] when Redis cannot be asked within the timeout and the
    /// throttle fails closed (failing open returns `Ok(Admission::Unchecked)`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes may still take the unit on the server (the
    /// request may already be on its way): at most one unit is lost per dropped call.
    ///
    /// # Examples
    ///
    /// See [`RateLimited`].
    pub async fn try_acquire<T: Timer>(&self, timer: &T) -> Result<Admission, ThrottleError> {
        self.try_acquire_n(timer, 1).await
    }

    /// Admits `n` units now, or says how long until they could be. One round trip.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](RedisThrottle::try_acquire), and [`ThrottleError::ExceedsBurst`]
    /// (without a round trip) when `n` is larger than the burst. `n = 0` is admitted at once
    /// without a round trip.
    ///
    /// # Cancel safety
    ///
    /// As [`try_acquire`](RedisThrottle::try_acquire): at most `n` units are lost per dropped
    /// call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dike::throttle::Quota;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisThrottle, ThrottleError};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let throttle = RedisThrottle::new(&conn, "bytes", Quota::per_second(1000).with_burst(100))?;
    /// let timer = TokioTimer::new();
    /// throttle.try_acquire_n(&timer, 64).await?;
    /// assert!(matches!(
    ///     throttle.try_acquire_n(&timer, 101).await,
    ///     Err(ThrottleError::ExceedsBurst { n: 101, burst: 100 })
    /// ));
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire_n<T: Timer>(
        &self,
        timer: &T,
        n: u32,
    ) -> Result<Admission, ThrottleError> {
        let burst = self.quota.burst();
        if nothing_to_take(n, burst)? {
            return Ok(Admission::Checked);
        }
        let sent = timer.now();
        let most = match &self.reservation {
            Some(reservation) => {
                let mut left = reservation.left.lock().unwrap_or_else(|e| e.into_inner());
                if left.0 >= n && sent < left.1 {
                    left.0 -= n;
                    return Ok(Admission::Checked);
                }
                reservation.units.max(n)
            }
            None => n,
        };
        let reply = gcra(
            &self.script,
            &self.conn,
            timer,
            self.timeout,
            &self.key,
            Gcra {
                interval_us: self.interval_us,
                burst,
                n,
                most,
            },
        )
        .await;
        let Some(taken) = settle(reply, self.fail_mode)? else {
            return Ok(Admission::Unchecked);
        };
        let extra = taken.saturating_sub(n);
        if let (Some(reservation), true) = (&self.reservation, extra > 0) {
            let lapse = sent.saturating_add(reservation.hold);
            let mut left = reservation.left.lock().unwrap_or_else(|e| e.into_inner());
            let now = timer.now();
            let live = if now < left.1 { left.0 } else { 0 };
            // Units still live keep their earlier lapse: no unit is held longer.
            left.1 = if live > 0 { left.1.min(lapse) } else { lapse };
            left.0 = live + extra;
        }
        Ok(Admission::Checked)
    }

    /// Waits until one unit is admitted, sleeping on `timer` between attempts for as long as
    /// the server says.
    ///
    /// Waiters are not queued: each retries when the server said its slot would be free, so
    /// under contention a unit goes to whichever attempt reaches Redis first.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Backend`] when Redis cannot be asked and the throttle fails closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it while it sleeps loses nothing; dropping it during a round trip may take one
    /// unit on the server.
    ///
    /// # Examples
    ///
    /// See [`RedisThrottle`].
    pub async fn acquire<T: Timer>(&self, timer: &T) -> Result<Admission, ThrottleError> {
        self.acquire_n(timer, 1).await
    }

    /// Waits until `n` units are admitted.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::ExceedsBurst`] at once when `n` is larger than the burst;
    /// [`ThrottleError::Backend`] when Redis cannot be asked and the throttle fails closed.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](RedisThrottle::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dike::throttle::Quota;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisThrottle};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let throttle = RedisThrottle::new(&conn, "rows", Quota::per_second(500).with_burst(50))?;
    /// throttle.acquire_n(&TokioTimer::new(), 50).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_n<T: Timer>(&self, timer: &T, n: u32) -> Result<Admission, ThrottleError> {
        until_admitted(timer, || self.try_acquire_n(timer, n)).await
    }
}

impl fmt::Debug for RedisThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisThrottle")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .field("fail_mode", &self.fail_mode)
            .field("timeout", &self.timeout)
            .field("conn", &self.conn)
            .finish()
    }
}

/// The parameters of one GCRA round trip: the key's interval in µs, its burst, the cost `n`
/// and the most units to take (`>= n`).
pub(crate) struct Gcra {
    pub(crate) interval_us: f64,
    pub(crate) burst: u32,
    pub(crate) n: u32,
    pub(crate) most: u32,
}

/// The checks before a round trip for `n` units of a quota with `burst`: `Ok(true)` when there
/// is nothing to take (`n = 0`, admitted at once), [`ThrottleError::ExceedsBurst`] when `n`
/// can never be admitted. Shared by [`RedisThrottle`] and the keyed throttle.
pub(crate) fn nothing_to_take(n: u32, burst: u32) -> Result<bool, ThrottleError> {
    if n > burst {
        return Err(ThrottleError::ExceedsBurst { n, burst });
    }
    Ok(n == 0)
}

/// What a [`gcra`] reply means to the caller under `fail_mode`: `Ok(Some(units taken))` when
/// admitted, `Ok(None)` when Redis could not be asked and the throttle fails open, `Err` when
/// refused (with the wait) or failing closed.
pub(crate) fn settle(
    reply: Result<Result<u32, Duration>, BackendError>,
    fail_mode: FailMode,
) -> Result<Option<u32>, ThrottleError> {
    match reply {
        Ok(Ok(taken)) => Ok(Some(taken)),
        Ok(Err(wait)) => Err(RateLimited::new(wait).into()),
        Err(err) => match fail_mode {
            FailMode::Open => Ok(None),
            FailMode::Closed => Err(err.into()),
        },
    }
}

/// Runs `attempt` until it is not refused for the rate, sleeping on `timer` for the wait each
/// refusal names: the `acquire` loop of both throttles. Dropped while sleeping, it loses
/// nothing.
pub(crate) async fn until_admitted<T, F, Fut>(
    timer: &T,
    mut attempt: F,
) -> Result<Admission, ThrottleError>
where
    T: Timer,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Admission, ThrottleError>>,
{
    loop {
        match attempt().await {
            Err(ThrottleError::RateLimited(limited)) => timer.sleep(limited.wait()).await,
            other => return other,
        }
    }
}

/// One run of the [`GCRA`] script on `key`: `Ok(Ok(units taken))` when admitted (at least
/// `n`), `Ok(Err(wait))` when refused (nothing consumed), `Err` when Redis could not be asked
/// within `timeout`. Shared by [`RedisThrottle`] and the keyed throttle, so both run the same
/// script with the same arguments.
pub(crate) async fn gcra<T: Timer>(
    script: &Script,
    conn: &Connection,
    timer: &T,
    timeout: Duration,
    key: &str,
    call: Gcra,
) -> Result<Result<u32, Duration>, BackendError> {
    let args = [
        format!("{:.3}", call.interval_us),
        format!("{:.3}", call.interval_us * f64::from(call.burst)),
        call.n.to_string(),
        call.most.to_string(),
    ];
    let (taken, wait_us): (i64, i64) = script.run(conn, timer, timeout, &[key], &args).await?;
    Ok(if taken > 0 {
        Ok(u32::try_from(taken).unwrap_or(call.n))
    } else {
        Err(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
    })
}
