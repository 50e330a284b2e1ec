//! The fleet-wide keyed throttle: one GCRA schedule per user key, each in its own Redis key.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use dike::error::ConfigError;
use dike::keyed::KeyQuota;
use dike::throttle::{Quota, Throttle};
use dike::time::Timer;

use crate::FailMode;
use crate::conn::Connection;
use crate::error::ThrottleError;
use crate::throttle::{Admission, GCRA, Gcra, gcra, nothing_to_take, settle, until_admitted};
use crate::util::{DEFAULT_TIMEOUT, Script, check_name, check_timeout, micros_f};

/// A key of a [`RedisKeyedThrottle`]: the bytes that name it in Redis.
///
/// The bytes must be *stable* (the same on every process of the fleet, across builds and
/// versions: `Hash` is not, which is why this trait exists) and *injective* (two different
/// keys never give the same bytes). When `K: Borrow<Q>`, `K` and `Q` must give the same bytes
/// for equal keys, as they must hash alike for a `HashMap`.
///
/// Implemented for text (`str`, `String`, `Box<str>`, `Rc<str>`, `Arc<str>`, `char`: its
/// UTF-8), byte strings (`[u8]`, `Vec<u8>`, `[u8; N]`, `Box<[u8]>`: the bytes as they are, so
/// keys need not be UTF-8), integers (their decimal text) and IP addresses (their standard
/// text: `10.0.0.1`, `2001:db8::1`), and for references to any of them. Text, numbers and
/// addresses thus share one space: `"42"` and `42u64`, `"10.0.0.1"` and the `Ipv4Addr`, are
/// the same key (as they would be for a Go or Python service sharing the limit).
///
/// # Examples
///
/// Keys of your own type:
///
/// ```
/// use std::borrow::Cow;
/// use dike_redis::RedisKey;
///
/// #[derive(Clone, PartialEq, Eq, Hash)]
/// struct TenantId(u64);
///
/// impl RedisKey for TenantId {
///     fn key_bytes(&self) -> Cow<'_, [u8]> {
///         self.0.key_bytes() // "tenant 7" is the key "7"
///     }
/// }
///
/// assert_eq!(&*TenantId(7).key_bytes(), b"7");
/// assert_eq!(&*"alice".key_bytes(), b"alice");
/// assert_eq!(&*std::net::Ipv4Addr::new(10, 0, 0, 1).key_bytes(), b"10.0.0.1");
/// ```
pub trait RedisKey {
    /// The key's bytes (see the trait docs for the rules).
    ///
    /// # Examples
    ///
    /// See [`RedisKey`].
    fn key_bytes(&self) -> Cow<'_, [u8]>;
}

impl<T: RedisKey + ?Sized> RedisKey for &T {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        (**self).key_bytes()
    }
}

macro_rules! str_key {
    ($($t:ty),*) => {$(
        impl RedisKey for $t {
            fn key_bytes(&self) -> Cow<'_, [u8]> {
                let text: &str = self;
                Cow::Borrowed(text.as_bytes())
            }
        }
    )*};
}

str_key!(str, String, Box<str>, Rc<str>, Arc<str>);

macro_rules! bytes_key {
    ($($t:ty),*) => {$(
        impl RedisKey for $t {
            fn key_bytes(&self) -> Cow<'_, [u8]> {
                let bytes: &[u8] = self;
                Cow::Borrowed(bytes)
            }
        }
    )*};
}

bytes_key!([u8], Vec<u8>, Box<[u8]>);

impl<const N: usize> RedisKey for [u8; N] {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

macro_rules! text_key {
    ($($t:ty),*) => {$(
        impl RedisKey for $t {
            fn key_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(self.to_string().into_bytes())
            }
        }
    )*};
}

text_key!(
    char, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, IpAddr, Ipv4Addr,
    Ipv6Addr
);

/// A rate limit per key (user, IP address, API key, tenant) shared by every process that uses
/// the same Redis and name: [`dike::keyed::KeyedThrottle`] for a fleet.
///
/// Each key has its own GCRA schedule, exactly a [`RedisThrottle`](crate::RedisThrottle) per
/// key: the same Lua script, run on the server's clock, so over any window of length `W` the
/// fleet admits at most `rate·W/period + burst` units *per key*, and one key's traffic never
/// uses another's quota. A refusal's [`wait`](crate::RateLimited::wait) is the key's own.
///
/// # Moving a keyed limit to the fleet
///
/// Lookups take the key as [`KeyedThrottle`](dike::keyed::KeyedThrottle) does (`&Q` where
/// `K: Borrow<Q>`, so a `RedisKeyedThrottle<String>` is asked with a `&str`), and the timer
/// as [`RedisThrottle`](crate::RedisThrottle) does, so the change from one process to the
/// fleet is the constructor (and an `.await`), as for a single limit:
///
/// ```no_run
/// use dike::keyed::KeyedThrottle;
/// use dike::throttle::Quota;
/// use dike::time::TokioTimer;
/// use dike_redis::{Connection, RedisKeyedThrottle};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let timer = TokioTimer::new();
/// let quota = Quota::per_second(10).with_burst(20);
///
/// // One process:
/// let local = KeyedThrottle::<String>::new(quota)?;
/// local.try_acquire(&timer, "api-key-1")?;
///
/// // The fleet:
/// let conn = Connection::open("redis://127.0.0.1:6379/")?;
/// let fleet = RedisKeyedThrottle::<String>::new(&conn, "per-api-key", quota)?;
/// fleet.try_acquire(&timer, "api-key-1").await?;
/// # Ok(()) }
/// ```
///
/// Keys are any [`RedisKey`]: text, byte strings, integers, IP addresses, or your own type.
///
/// # Keys in Redis
///
/// A user key's state is one Redis key, `{dike-keyed:<name>:<key>}:throttle`, with the name
/// and the key's bytes percent-encoded (letters, digits and `-._~` kept, every other byte
/// written `%XX`): the key `alice` of the throttle `api` is `{dike-keyed:api:alice}:throttle`,
/// the key `::1` is `{dike-keyed:api:%3A%3A1}:throttle`. So:
///
/// - arbitrary bytes (`{`, `}`, `:`, `%`, non-UTF-8, the empty key) cannot end the hash tag
///   early or make two (name, key) pairs collide: the encoding is injective and the
///   separator `:` never appears encoded;
/// - the hash tag holds the key, so on Redis Cluster the keys spread over the slots (and the
///   nodes) instead of all landing on one; each call touches exactly one key;
/// - the prefix `{dike-keyed:` is not `{dike:`, the prefix of every other limiter's keys, so no
///   [`RedisThrottle`](crate::RedisThrottle) or [`RedisGate`](crate::RedisGate) name can
///   produce a keyed throttle's key (a `{dike:<name>:<key>}` scheme could: a throttle named
///   `api:alice`).
///
/// Keys are stored whole, not hashed: no collision is possible, and the Redis key is about
/// the user key's length (up to three times it for bytes that need escaping). Bound keys that
/// come from the network (a header, say) before using them. An ACL user needs the keys
/// `{dike-keyed:<name>:*` (the name encoded) and `EVALSHA`, `EVAL`, `TIME`, `GET`, `SET`.
/// [`redis_key`](RedisKeyedThrottle::redis_key) gives a key's Redis key (to inspect it, or to
/// `DEL` it to forgive a user).
///
/// # Bounded memory, no cleanup task
///
/// As the local keyed throttle drops entries that are indistinguishable from a new key's, each
/// key's Redis entry expires by itself once it is: the script sets it with a TTL ending when
/// its theoretical arrival time passes (when the key would admit a full burst again, plus
/// 1 ms), exactly as [`RedisThrottle`](crate::RedisThrottle)'s single key. An expired key's
/// next call decides as a fresh key, which is what it was equivalent to, so expiry changes no
/// decision. Redis holds at most the keys used within the last `burst × period / rate`; this
/// process holds nothing per key at all.
///
/// # Faults
///
/// Every call is one round trip bounded by the timeout (1 s unless
/// [`with_timeout`](RedisKeyedThrottle::with_timeout)); when Redis cannot be asked, the
/// [`FailMode`] decides, as for [`RedisThrottle`](crate::RedisThrottle). A timed-out call may
/// still take its units on the server when it runs later. There is no local reservation:
/// holding units per key in the process would be per-key state to bound again.
///
/// # Examples
///
/// ```no_run
/// use dike::throttle::Quota;
/// use dike::time::TokioTimer;
/// use dike_redis::{Connection, RedisKeyedThrottle, ThrottleError};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Connection::open("redis://127.0.0.1:6379/")?;
/// // 5 requests per second per client IP, across every replica.
/// let per_ip = RedisKeyedThrottle::new(&conn, "per-ip", Quota::per_second(5))?;
/// let timer = TokioTimer::new();
/// let ip: std::net::IpAddr = "203.0.113.7".parse()?;
/// match per_ip.try_acquire(&timer, &ip).await {
///     Ok(_) => { /* serve */ }
///     Err(ThrottleError::RateLimited(limited)) => println!("429, Retry-After {:?}", limited.wait()),
///     Err(err) => return Err(err.into()),
/// }
/// # Ok(()) }
/// ```
pub struct RedisKeyedThrottle<K> {
    conn: Connection,
    name: String,
    /// `{dike-keyed:<encoded name>:`.
    prefix: String,
    quota: Quota,
    interval_us: f64,
    quota_fn: Option<QuotaFn<K>>,
    fail_mode: FailMode,
    timeout: Duration,
    script: Script,
}

type QuotaFn<K> = Box<dyn Fn(&K) -> KeyQuota + Send + Sync>;

/// Appends `bytes` percent-encoded: ASCII letters, digits and `-._~` as they are, every other
/// byte as `%XX` (upper-case hex). Injective, and never writes `{`, `}` or `:`.
fn push_encoded(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

impl<K> RedisKeyedThrottle<K> {
    /// A keyed throttle named `name` giving every key `quota`, failing closed, with a 1 s
    /// timeout.
    ///
    /// Every process using the same server and name shares each key's limit; they must use
    /// the same quota (and the same [`with_quota_fn`](RedisKeyedThrottle::with_quota_fn)).
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
    /// use dike_redis::{Connection, RedisKeyedThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let limits = RedisKeyedThrottle::<String>::new(&conn, "per-user", Quota::per_second(5))?;
    /// assert_eq!(limits.quota(), Quota::per_second(5));
    /// let err = RedisKeyedThrottle::<String>::new(&conn, "api", Quota::per_second(0)).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid rate = 0: expected at least 1");
    /// let err = RedisKeyedThrottle::<String>::new(&conn, "", Quota::per_second(1)).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid name length = 0: expected 1 to 128 bytes");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(conn: &Connection, name: &str, quota: Quota) -> Result<Self, ConfigError> {
        let interval = Throttle::new(quota)?.interval();
        check_name(name)?;
        let mut prefix = String::from("{dike-keyed:");
        push_encoded(&mut prefix, name.as_bytes());
        prefix.push(':');
        Ok(Self {
            conn: conn.clone(),
            name: name.to_string(),
            prefix,
            quota,
            interval_us: micros_f(interval),
            quota_fn: None,
            fail_mode: FailMode::Closed,
            timeout: DEFAULT_TIMEOUT,
            script: Script::new(GCRA),
        })
    }

    /// What to do when Redis cannot be asked (default [`FailMode::Closed`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, FailMode, RedisKeyedThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let limits = RedisKeyedThrottle::<String>::new(&conn, "api", Quota::per_second(5))?
    ///     .with_fail_mode(FailMode::Open);
    /// assert_eq!(limits.fail_mode(), FailMode::Open);
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
    /// use dike_redis::{Connection, RedisKeyedThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let limits = RedisKeyedThrottle::<String>::new(&conn, "api", Quota::per_second(5))?
    ///     .with_timeout(Duration::from_millis(200))?;
    /// assert_eq!(limits.timeout(), Duration::from_millis(200));
    /// let zero = RedisKeyedThrottle::<String>::new(&conn, "api", Quota::per_second(5))?
    ///     .with_timeout(Duration::ZERO);
    /// assert_eq!(zero.unwrap_err().parameter(), "timeout");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        check_timeout(timeout)?;
        self.timeout = timeout;
        Ok(self)
    }

    /// Chooses each key's quota with `f` (tiers by API key, for example), as
    /// [`KeyedThrottle::with_quota_fn`](dike::keyed::KeyedThrottle::with_quota_fn): same
    /// signature, so the closure moves to the fleet unchanged.
    ///
    /// `f` is called on every call (the process keeps nothing per key; a lookup by `&Q`
    /// makes the owned key `f` takes, one allocation for a `&str`, small beside the round
    /// trip). Every process of the fleet must use the same `f`. A key whose quota changes
    /// keeps its schedule, read under the new quota from then on. The quota given to
    /// [`new`](RedisKeyedThrottle::new) remains the one [`quota`](RedisKeyedThrottle::quota)
    /// reports.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dike::keyed::KeyQuota;
    /// use dike::throttle::Quota;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisKeyedThrottle};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let free = KeyQuota::new(Quota::per_second(1))?;
    /// let pro = KeyQuota::new(Quota::per_second(1).with_burst(3))?;
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let limits = RedisKeyedThrottle::<String>::new(&conn, "tiers", Quota::per_second(1))?
    ///     .with_quota_fn(move |key: &String| if key.starts_with("pro-") { pro } else { free });
    ///
    /// let timer = TokioTimer::new();
    /// let mut admitted = 0;
    /// for _ in 0..5 {
    ///     admitted += usize::from(limits.try_acquire(&timer, "pro-acme").await.is_ok());
    /// }
    /// assert_eq!(admitted, 3);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_quota_fn(mut self, f: impl Fn(&K) -> KeyQuota + Send + Sync + 'static) -> Self {
        self.quota_fn = Some(Box::new(f));
        self
    }

    /// The quota given at construction.
    ///
    /// # Examples
    ///
    /// See [`new`](RedisKeyedThrottle::new).
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The fail mode. See [`with_fail_mode`](RedisKeyedThrottle::with_fail_mode).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, FailMode, RedisKeyedThrottle, DEFAULT_TIMEOUT};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let limits = RedisKeyedThrottle::<u64>::new(&conn, "api", Quota::per_second(5))?;
    /// assert_eq!(limits.fail_mode(), FailMode::Closed);
    /// assert_eq!(limits.timeout(), DEFAULT_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    /// The time limit of each round trip. See
    /// [`with_timeout`](RedisKeyedThrottle::with_timeout).
    ///
    /// # Examples
    ///
    /// See [`fail_mode`](RedisKeyedThrottle::fail_mode).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Redis key holding `key`'s state (see [Keys in Redis](RedisKeyedThrottle#keys-in-redis)):
    /// to inspect it, or to `DEL` it, which gives the key a full burst again.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::throttle::Quota;
    /// use dike_redis::{Connection, RedisKeyedThrottle};
    ///
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let limits = RedisKeyedThrottle::<String>::new(&conn, "api", Quota::per_second(5))?;
    /// assert_eq!(limits.redis_key("alice"), "{dike-keyed:api:alice}:throttle");
    /// assert_eq!(limits.redis_key("a:{b}"), "{dike-keyed:api:a%3A%7Bb%7D}:throttle");
    /// assert_eq!(limits.redis_key(""), "{dike-keyed:api:}:throttle");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redis_key<Q>(&self, key: &Q) -> String
    where
        K: Borrow<Q>,
        Q: RedisKey + ?Sized,
    {
        let bytes = key.key_bytes();
        let mut out = String::with_capacity(self.prefix.len() + bytes.len() + 10);
        out.push_str(&self.prefix);
        push_encoded(&mut out, &bytes);
        out.push_str("}:throttle");
        out
    }

    /// `key`'s quota: the throttle's, or the quota function's answer, with its interval in µs.
    fn quota_of<Q>(&self, key: &Q) -> (Quota, f64)
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        match &self.quota_fn {
            None => (self.quota, self.interval_us),
            Some(f) => {
                let quota = f(&key.to_owned()).quota();
                // A `KeyQuota` is valid: `new` cannot fail (the fallback is never taken).
                let interval = Throttle::new(quota)
                    .map_or(self.interval_us, |throttle| micros_f(throttle.interval()));
                (quota, interval)
            }
        }
    }

    /// Admits one unit of `key`'s quota now, or says how long until it could be. One round
    /// trip.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::RateLimited`] when the key's quota is spent, with the key's own wait
    /// (nothing is consumed); [`ThrottleError::Backend`] when Redis cannot be asked within the
    /// timeout and the throttle fails closed (failing open returns `Ok(Admission::Unchecked)`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes may still take the unit on the server (the
    /// request may already be on its way): at most one unit of the key is lost per dropped
    /// call. Nothing is left in this process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dike::throttle::Quota;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisKeyedThrottle, ThrottleError};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let limits = RedisKeyedThrottle::new(&conn, "doc-keyed", Quota::per_second(1))?;
    /// let timer = TokioTimer::new();
    /// limits.try_acquire(&timer, "alice").await?;
    /// limits.try_acquire(&timer, "bob").await?; // keys are independent
    /// match limits.try_acquire(&timer, "alice").await {
    ///     Err(ThrottleError::RateLimited(err)) => println!("alice: retry after {:?}", err.wait()),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire<Q, T>(&self, timer: &T, key: &Q) -> Result<Admission, ThrottleError>
    where
        K: Borrow<Q>,
        Q: RedisKey + ToOwned<Owned = K> + ?Sized,
        T: Timer,
    {
        self.try_acquire_n(timer, key, 1).await
    }

    /// Admits `n` units of `key`'s quota now, or says how long until they could be. One round
    /// trip.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](RedisKeyedThrottle::try_acquire), and
    /// [`ThrottleError::ExceedsBurst`] (without a round trip) when `n` is larger than the
    /// key's burst. `n = 0` is admitted at once without a round trip.
    ///
    /// # Cancel safety
    ///
    /// As [`try_acquire`](RedisKeyedThrottle::try_acquire): at most `n` units of the key are
    /// lost per dropped call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dike::throttle::Quota;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisKeyedThrottle, ThrottleError};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let quota = Quota::per_second(1000).with_burst(100);
    /// let bytes = RedisKeyedThrottle::new(&conn, "bytes-per-tenant", quota)?;
    /// let timer = TokioTimer::new();
    /// bytes.try_acquire_n(&timer, &7u64, 64).await?;
    /// assert!(matches!(
    ///     bytes.try_acquire_n(&timer, &7u64, 101).await,
    ///     Err(ThrottleError::ExceedsBurst { n: 101, burst: 100 })
    /// ));
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire_n<Q, T>(
        &self,
        timer: &T,
        key: &Q,
        n: u32,
    ) -> Result<Admission, ThrottleError>
    where
        K: Borrow<Q>,
        Q: RedisKey + ToOwned<Owned = K> + ?Sized,
        T: Timer,
    {
        let (quota, interval_us) = self.quota_of(key);
        let burst = quota.burst();
        if nothing_to_take(n, burst)? {
            return Ok(Admission::Checked);
        }
        let redis_key = self.redis_key(key);
        let call = Gcra {
            interval_us,
            burst,
            n,
            most: n,
        };
        let reply = gcra(
            &self.script,
            &self.conn,
            timer,
            self.timeout,
            &redis_key,
            call,
        )
        .await;
        Ok(match settle(reply, self.fail_mode)? {
            Some(_) => Admission::Checked,
            None => Admission::Unchecked,
        })
    }

    /// Waits until one unit of `key`'s quota is admitted, sleeping on `timer` between attempts
    /// for as long as the server says. Other keys never wait for it.
    ///
    /// Waiters are not queued (as [`RedisThrottle::acquire`](crate::RedisThrottle::acquire)):
    /// each retries when the server said the key's slot would be free, so under contention on
    /// one key a unit goes to whichever attempt reaches Redis first.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Backend`] when Redis cannot be asked and the throttle fails closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it while it sleeps loses nothing; dropping it during a round trip may take one
    /// unit of the key on the server. Nothing is left in this process either way (no queue,
    /// no entry, no timer registration).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dike::throttle::Quota;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisKeyedThrottle};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let per_tenant = RedisKeyedThrottle::new(&conn, "exports", Quota::per_minute(6))?;
    /// per_tenant.acquire(&TokioTimer::new(), "tenant-42").await?; // waits for tenant-42's turn
    /// # Ok(()) }
    /// ```
    pub async fn acquire<Q, T>(&self, timer: &T, key: &Q) -> Result<Admission, ThrottleError>
    where
        K: Borrow<Q>,
        Q: RedisKey + ToOwned<Owned = K> + ?Sized,
        T: Timer,
    {
        self.acquire_n(timer, key, 1).await
    }

    /// Waits until `n` units of `key`'s quota are admitted.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::ExceedsBurst`] at once when `n` is larger than the key's burst;
    /// [`ThrottleError::Backend`] when Redis cannot be asked and the throttle fails closed.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](RedisKeyedThrottle::acquire): at most `n` units of the key are lost per
    /// dropped call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use dike::throttle::Quota;
    /// use dike::time::TokioTimer;
    /// use dike_redis::{Connection, RedisKeyedThrottle};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Connection::open("redis://127.0.0.1:6379/")?;
    /// let quota = Quota::per_second(500).with_burst(50);
    /// let rows = RedisKeyedThrottle::<String>::new(&conn, "rows-per-user", quota)?;
    /// rows.acquire_n(&TokioTimer::new(), "alice", 50).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_n<Q, T>(
        &self,
        timer: &T,
        key: &Q,
        n: u32,
    ) -> Result<Admission, ThrottleError>
    where
        K: Borrow<Q>,
        Q: RedisKey + ToOwned<Owned = K> + ?Sized,
        T: Timer,
    {
        until_admitted(timer, || self.try_acquire_n(timer, key, n)).await
    }
}

impl<K> fmt::Debug for RedisKeyedThrottle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyedThrottle")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .field("per_key_quota", &self.quota_fn.is_some())
            .field("fail_mode", &self.fail_mode)
            .field("timeout", &self.timeout)
            .field("conn", &self.conn)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(bytes: &[u8]) -> String {
        let mut out = String::new();
        push_encoded(&mut out, bytes);
        out
    }

    #[test]
    fn the_encoding_is_injective_and_never_writes_separators() {
        assert_eq!(encoded(b"alice-1.b_c~"), "alice-1.b_c~");
        assert_eq!(encoded(b"%41"), "%2541");
        assert_eq!(encoded(b"A"), "A");
        assert_eq!(encoded(b"{:}"), "%7B%3A%7D");
        assert_eq!(encoded(&[0, 0xff]), "%00%FF");
        // Every single byte and pair of bytes encodes distinctly and without `{`, `}`, `:`.
        let mut seen = std::collections::HashSet::new();
        for a in 0..=255u8 {
            let one = encoded(&[a]);
            assert!(!one.contains(['{', '}', ':']), "{one}");
            assert!(seen.insert(one));
            for b in [0u8, b'%', b'4', b'A', b'{', 0xff] {
                assert!(seen.insert(encoded(&[a, b])));
            }
        }
    }

    #[test]
    fn text_numbers_and_addresses_share_one_key_space() {
        assert_eq!(&*42u64.key_bytes(), b"42");
        assert_eq!(&*(-7i32).key_bytes(), b"-7");
        assert_eq!(&*'é'.key_bytes(), "é".as_bytes());
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(&*IpAddr::V6(v6).key_bytes(), b"2001:db8::1");
        assert_eq!(&*v6.key_bytes(), b"2001:db8::1");
        assert_eq!(&*[1u8, 2].key_bytes(), &[1, 2]);
        assert_eq!(&*Arc::<str>::from("x").key_bytes(), b"x");
        assert_eq!(&*(&&"y").key_bytes(), b"y");
    }
}
