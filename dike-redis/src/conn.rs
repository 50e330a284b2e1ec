//! Connections: one `redis://` URL (a `ConnectionManager` that reconnects by itself) or a
//! Redis Cluster.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError, RedisResult};

use crate::error::BackendError;

/// A connection to Redis (one server or a cluster) shared by any number of limiters.
///
/// Cheap to clone: clones share one multiplexed connection, which reconnects by itself after
/// the server restarts (the first request after the loss fails, the next ones go to the new
/// connection). Gate waiters open one extra pub/sub connection per gate and process while
/// they wait.
///
/// `Debug` shows the address with the password replaced by `***`; credentials never appear in
/// `Debug`, `Display` or in the errors of the limiters.
///
/// # Examples
///
/// ```
/// use dike_redis::Connection;
///
/// let conn = Connection::open("redis://app:s3cret@127.0.0.1:6379/2")?;
/// assert_eq!(format!("{conn:?}"), r#"Connection { url: "redis://app:***@127.0.0.1:6379/2" }"#);
/// # Ok::<(), dike_redis::ConnectError>(())
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    /// The client pub/sub connections are opened with (a node of the cluster for a cluster:
    /// `PUBLISH` reaches every node).
    pubsub: redis::Client,
    redacted: String,
    secret: Option<String>,
}

enum Kind {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A connection URL or cluster could not be used.
///
/// # Examples
///
/// ```
/// let err = dike_redis::Connection::open("http://nope").unwrap_err();
/// assert!(err.to_string().starts_with("cannot connect to redis"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot connect to redis: {0}")]
pub struct ConnectError(BackendError);

impl Connection {
    /// A connection to the server at `url` (`redis://[user[:password]@]host[:port][/db]`),
    /// made on the first request and remade after the server restarts.
    ///
    /// Does no I/O (so the server may be down when this is called).
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the URL cannot be parsed.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = dike_redis::Connection::open("redis://127.0.0.1:6379/")?;
    /// # let _ = conn;
    /// # Ok::<(), dike_redis::ConnectError>(())
    /// ```
    pub fn open(url: &str) -> Result<Self, ConnectError> {
        let secret = password_of(url);
        let client = redis::Client::open(url).map_err(|e| connect_error(&e, secret.as_deref()))?;
        Self::single(client, url, secret)
    }

    /// A TLS connection (`rediss://...`) that trusts `root_ca_pem` (a PEM certificate, e.g.
    /// a private CA) instead of the system's roots; `None` uses the system's roots (as
    /// [`open`](Connection::open) does with a `rediss://` URL).
    ///
    /// TLS is rustls with the ring provider, installed as the process' default rustls
    /// provider unless the application installed one before.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the URL or the certificate cannot be used.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ca = std::fs::read("ca.crt")?;
    /// let conn = dike_redis::Connection::open_tls("rediss://app:secret@redis.internal:6380/0", Some(&ca))?;
    /// # let _ = conn;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn open_tls(url: &str, root_ca_pem: Option<&[u8]>) -> Result<Self, ConnectError> {
        install_tls_provider();
        let secret = password_of(url);
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: root_ca_pem.map(<[u8]>::to_vec),
        };
        let client = redis::Client::build_with_tls(url, certs)
            .map_err(|e| connect_error(&e, secret.as_deref()))?;
        Self::single(client, url, secret)
    }

    fn single(
        client: redis::Client,
        url: &str,
        secret: Option<String>,
    ) -> Result<Self, ConnectError> {
        #[cfg(feature = "tls")]
        install_tls_provider();
        let config = ConnectionManagerConfig::new()
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200))
            .set_number_of_retries(6)
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| connect_error(&e, secret.as_deref()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                kind: Kind::Single(manager),
                pubsub: client,
                redacted: redact(url),
                secret,
            }),
        })
    }

    /// A connection to the Redis Cluster that `urls` (some of its nodes) belong to.
    ///
    /// Requests are routed by key slot; every limiter keeps its keys in one slot (a hash tag
    /// per limiter), and `MOVED`/`ASK` redirections are followed by the cluster client.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when a URL cannot be parsed or no node answers.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it completes closes the connections made so far; nothing else
    /// happens.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), dike_redis::ConnectError> {
    /// let conn = dike_redis::Connection::open_cluster(&[
    ///     "redis://127.0.0.1:7000/",
    ///     "redis://127.0.0.1:7001/",
    /// ])
    /// .await?;
    /// # let _ = conn; Ok(()) }
    /// ```
    pub async fn open_cluster(urls: &[&str]) -> Result<Self, ConnectError> {
        let secret = urls.iter().find_map(|u| password_of(u));
        let err = |e: RedisError| ConnectError(BackendError::from_redis(&e, secret.as_deref()));
        let first = urls
            .first()
            .ok_or_else(|| ConnectError(BackendError::protocol("no cluster node URL given")))?;
        let client = ClusterClient::builder(urls.iter().copied())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2))
            .build()
            .map_err(err)?;
        let conn = client.get_async_connection().await.map_err(err)?;
        let pubsub = redis::Client::open(*first).map_err(err)?;
        Ok(Self {
            inner: Arc::new(Inner {
                kind: Kind::Cluster(conn),
                pubsub,
                redacted: redact(first),
                secret,
            }),
        })
    }

    /// A connection from the application's own `ConnectionManager`, plus the client that gate
    /// waiters open their pub/sub connections with (usually the one the manager was made
    /// from).
    ///
    /// `Debug` shows the client's host and port only. Errors are scrubbed of nothing (the
    /// password is not known here), and redis-rs does not put it in its messages.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let manager = redis::aio::ConnectionManager::new(client.clone()).await?;
    /// let conn = dike_redis::Connection::from_manager(manager, client);
    /// # let _ = conn; Ok(()) }
    /// ```
    pub fn from_manager(manager: ConnectionManager, pubsub: redis::Client) -> Self {
        let redacted = format!("{} (existing manager)", pubsub.get_connection_info().addr());
        Self {
            inner: Arc::new(Inner {
                kind: Kind::Single(manager),
                pubsub,
                redacted,
                secret: None,
            }),
        }
    }

    /// A connection from the application's own cluster connection, plus a client for one of
    /// the cluster's nodes that gate waiters subscribe through (`PUBLISH` reaches every node).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let nodes = ["redis://127.0.0.1:7000/", "redis://127.0.0.1:7001/"];
    /// let cluster = redis::cluster::ClusterClient::new(nodes)?.get_async_connection().await?;
    /// let conn = dike_redis::Connection::from_cluster(cluster, redis::Client::open(nodes[0])?);
    /// # let _ = conn; Ok(()) }
    /// ```
    pub fn from_cluster(cluster: ClusterConnection, pubsub: redis::Client) -> Self {
        let redacted = format!("{} (existing cluster)", pubsub.get_connection_info().addr());
        Self {
            inner: Arc::new(Inner {
                kind: Kind::Cluster(cluster),
                pubsub,
                redacted,
                secret: None,
            }),
        }
    }

    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match &self.inner.kind {
            Kind::Single(manager) => cmd.query_async(&mut manager.clone()).await,
            Kind::Cluster(conn) => cmd.query_async(&mut conn.clone()).await,
        }
    }

    pub(crate) async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        self.inner.pubsub.get_async_pubsub().await
    }

    pub(crate) fn backend_error(&self, err: &RedisError) -> BackendError {
        BackendError::from_redis(err, self.inner.secret.as_deref())
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.inner.redacted)
            .finish()
    }
}

fn connect_error(err: &RedisError, secret: Option<&str>) -> ConnectError {
    ConnectError(BackendError::from_redis(err, secret))
}

#[cfg(feature = "tls")]
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The user-info part of `url` (`scheme://userinfo@host...`), if any.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..end].rfind('@')?;
    Some((start, start + at))
}

fn password_of(url: &str) -> Option<String> {
    let (start, end) = userinfo(url)?;
    let info = &url[start..end];
    let password = match info.find(':') {
        Some(colon) => &info[colon + 1..],
        // `redis://password@host` is read as a password by redis-rs' older URL forms.
        None => info,
    };
    (!password.is_empty()).then(|| password.to_string())
}

fn redact(url: &str) -> String {
    match userinfo(url) {
        Some((start, end)) => {
            let info = &url[start..end];
            let user = info.find(':').map_or("", |colon| &info[..colon]);
            format!("{}{user}:***{}", &url[..start], &url[end..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("redis://u:p@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact("redis://:p@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(password_of("redis://u:p%40x@h"), Some("p%40x".into()));
        assert_eq!(password_of("redis://h:1"), None);
    }
}
