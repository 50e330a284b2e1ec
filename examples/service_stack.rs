//! An axum service whose router stacks dike's tower layers, under a local load, on tokio.
//!
//! - `GET /predict` and `GET /explain` share one [`GateLayer::shared`] gate of 4 in reject
//!   mode: load shedding, a 503 at once when 4 requests are in flight across both routes.
//! - `GET /users/{id}` fetches the user from a second local HTTP service (the "upstream")
//!   through an outbound client built with `tower::ServiceBuilder`:
//!   [`CoalesceLayer`] (concurrent fetches of one id share one upstream call) over
//!   [`RetryLayer`] (the upstream fails every third call with 503: retried, 4 attempts,
//!   exponential backoff from 5 ms) over [`HedgeLayer`] (an attempt slower than 60 ms is sent
//!   again; the upstream answers in 20 ms, but every seventh call takes 200 ms: the hedge
//!   wins, the straggler is dropped) over [`ThrottleLayer`] (at most 200 upstream calls per
//!   second, burst 20, waiting for the slot) over a hand-rolled HTTP/1.1 client on a tokio
//!   `TcpStream`, wrapped as a `tower::Service`.
//!
//! A bounded load generator over 127.0.0.1 sends 32 requests to the gated routes and 40 to
//! `/users/{id}` (8 ids) at once, prints the status counts and latency percentiles per route
//! and how many user fetches were coalesced and how many upstream calls were hedged, then exits.
//!
//! Run with `cargo run --example service_stack --features tokio,axum`; it prints something
//! like
//!
//! ```text
//! route          requests  200  503  p50      p90      p99
//! /predict             24    4   20  20.4ms   70.7ms   71.1ms
//! /explain              8    0    8  19.8ms   20.0ms   20.0ms
//! /users/{id}          40   40    0  52.5ms   170.4ms  171.9ms
//! user fetches: 40 requests, 8 upstream fetches (32 coalesced), 13 upstream calls, 4 retries
//! hedges: 1 started, 1 won (the straggler dropped)
//! gate (shared by /predict and /explain): admitted 4, rejected 28, in use 0
//! ```
//!
//! (Timings vary; on a loaded machine more requests may get through the gate.)
//!
//! Axum note: a router whose handlers have no state builds each route's layers again per
//! connection under `axum::serve`; the router here ends with `.with_state(..)`, so each route
//! is built once, and the gate is shared explicitly with `GateLayer::shared` anyway.
//!
//! The coalescing layer wraps the typed user-fetch service behind the route, not the axum
//! route itself: coalescing hands every waiter a clone of the response, and an axum
//! `Response` (a streaming body) is not `Clone`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dike::coalesce::{Coalescer, RunError, Stats};
use dike::gate::Gate;
use dike::hedge::Hedge;
use dike::retry::Retry;
use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike::tower::{CoalesceLayer, Error, GateLayer, HedgeLayer, RetryLayer, ThrottleLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

// ----------------------------------------------------------------------------------------
// The outbound client: HTTP/1.1 by hand over a tokio TcpStream, as a tower::Service.

/// A request of the client: a path to `GET`. `Clone`, so `RetryLayer` and `HedgeLayer` can
/// send it again.
#[derive(Debug, Clone)]
struct Get(String);

/// Why an upstream call failed. `Clone`, so coalesced waiters each get a copy.
#[derive(Debug, Clone)]
enum FetchError {
    Status(u16),
    Io(Arc<str>),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "upstream answered {code}"),
            Self::Io(err) => write!(f, "upstream unreachable: {err}"),
        }
    }
}

impl std::error::Error for FetchError {}

impl IntoResponse for FetchError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_GATEWAY, self.to_string()).into_response()
    }
}

#[derive(Debug, Clone)]
struct HttpClient {
    addr: SocketAddr,
}

impl Service<Get> for HttpClient {
    type Response = String;
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<String, FetchError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), FetchError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, Get(path): Get) -> Self::Future {
        let addr = self.addr;
        Box::pin(async move {
            match http_get(addr, &path).await {
                Ok((200, body)) => Ok(body),
                Ok((status, _)) => Err(FetchError::Status(status)),
                Err(err) => Err(FetchError::Io(err.to_string().into())),
            }
        })
    }
}

/// One `GET path` over a fresh connection: the status and the body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ----------------------------------------------------------------------------------------
// The upstream user service: 20 ms, every seventh call 200 ms, and every third call fails
// with 503.

async fn upstream_user(State(calls): State<Arc<AtomicU64>>, Path(id): Path<u64>) -> Response {
    let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
    let latency = if n % 7 == 0 { 200 } else { 20 };
    tokio::time::sleep(Duration::from_millis(latency)).await;
    if n % 3 == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "overloaded").into_response();
    }
    format!("{{\"id\":{id},\"name\":\"user {id}\"}}").into_response()
}

// ----------------------------------------------------------------------------------------
// The service under load.

/// The user-fetch stack: coalesce, retry, hedge, throttle, HTTP.
type Users = BoxCloneSyncService<u64, String, RunError<Error<FetchError>>>;

#[derive(Clone)]
struct App {
    users: Users,
}

async fn predict() -> &'static str {
    tokio::time::sleep(Duration::from_millis(50)).await; // the model
    "0.97"
}

async fn explain() -> &'static str {
    tokio::time::sleep(Duration::from_millis(50)).await;
    "feature 3"
}

async fn user(State(app): State<App>, Path(id): Path<u64>) -> Response {
    match app.users.oneshot(id).await {
        Ok(body) => body.into_response(),
        // A throttle or gate refusal answers 429/503, an upstream failure 502.
        Err(RunError::Failed(err)) => err.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The upstream.
    let upstream_calls = Arc::new(AtomicU64::new(0));
    let upstream = Router::new()
        .route("/user/{id}", get(upstream_user))
        .with_state(Arc::clone(&upstream_calls));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, upstream).await });

    // The outbound client stack.
    let retries = Arc::new(AtomicU64::new(0));
    let retried = Arc::clone(&retries);
    let policy = Retry::exponential(Duration::from_millis(5), 2.0)?
        .try_with_attempts(4)?
        // Retry what the upstream says is passing; never a refusal of our own throttle.
        .when(|err: &Error<FetchError>| matches!(err, Error::Inner(FetchError::Status(503))))
        .notify(move |_: &Error<FetchError>, _, _| {
            retried.fetch_add(1, Ordering::Relaxed);
        });
    let coalescer = Arc::new(Coalescer::with_hooks(Stats::new()));
    // One hedge per attempt slower than 60 ms (the upstream's p50 is 20 ms).
    let hedge = Arc::new(Hedge::fixed(Duration::from_millis(60)));
    let users = ServiceBuilder::new()
        .layer(CoalesceLayer::shared(Arc::clone(&coalescer), |id: &u64| {
            *id
        }))
        .map_request(|id: u64| Get(format!("/user/{id}")))
        .layer(RetryLayer::new(policy, TokioTimer))
        .layer(HedgeLayer::shared(Arc::clone(&hedge), TokioTimer))
        .layer(ThrottleLayer::new(
            Quota::per_second(200).with_burst(20),
            TokioTimer,
        )?)
        .service(HttpClient {
            addr: upstream_addr,
        });

    // The router: one gate for /predict and /explain, shedding load.
    let gate = Arc::new(Gate::new(4));
    let shed = || {
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|err: Error<Infallible>| async move {
                err
            }))
            .layer(GateLayer::shared(Arc::clone(&gate)).reject())
    };
    let app = Router::new()
        .route("/predict", get(predict).layer(shed()))
        .route("/explain", get(explain).layer(shed()))
        .route("/users/{id}", get(user))
        .with_state(App {
            users: BoxCloneSyncService::new(users),
        });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The load: 72 requests at once, each on its own connection.
    let mut paths = Vec::new();
    paths.extend((0..24).map(|_| ("/predict", "/predict".to_string())));
    paths.extend((0..8).map(|_| ("/explain", "/explain".to_string())));
    paths.extend((0..40).map(|i| ("/users/{id}", format!("/users/{}", i % 8))));
    let requests: Vec<_> = paths
        .into_iter()
        .map(|(route, path)| {
            tokio::spawn(async move {
                let start = Instant::now();
                let (status, _) = http_get(addr, &path).await?;
                Ok::<_, std::io::Error>((route, status, start.elapsed()))
            })
        })
        .collect();

    let mut routes: BTreeMap<&str, (BTreeMap<u16, usize>, Vec<Duration>)> = BTreeMap::new();
    for request in requests {
        let (route, status, latency) = request.await??;
        let (statuses, latencies) = routes.entry(route).or_default();
        *statuses.entry(status).or_default() += 1;
        latencies.push(latency);
    }

    println!(
        "{:<14} {:>8}  {:>3}  {:>3}  {:<8} {:<8} {:<8}",
        "route", "requests", "200", "503", "p50", "p90", "p99"
    );
    for route in ["/predict", "/explain", "/users/{id}"] {
        let (statuses, latencies) = routes.get_mut(route).expect("every route was loaded");
        latencies.sort();
        let count = |status| statuses.get(&status).copied().unwrap_or(0);
        let others: Vec<_> = statuses
            .iter()
            .filter(|(status, _)| **status != 200 && **status != 503)
            .map(|(status, n)| format!("{status} × {n}"))
            .collect();
        println!(
            "{route:<14} {:>8}  {:>3}  {:>3}  {:<8} {:<8} {:<8} {}",
            latencies.len(),
            count(200),
            count(503),
            format!("{:.1?}", percentile(latencies, 50)),
            format!("{:.1?}", percentile(latencies, 90)),
            format!("{:.1?}", percentile(latencies, 99)),
            others.join(", ")
        );
    }
    let counts = coalescer.hooks().counts();
    println!(
        "user fetches: 40 requests, {} upstream fetches ({} coalesced), {} upstream calls, {} retries",
        counts.executed,
        counts.joined,
        upstream_calls.load(Ordering::Relaxed),
        retries.load(Ordering::Relaxed),
    );
    let hedges = hedge.stats();
    println!(
        "hedges: {} started, {} won (the straggler dropped)",
        hedges.hedges, hedges.hedge_wins
    );
    let stats = gate.stats();
    println!(
        "gate (shared by /predict and /explain): admitted {}, rejected {}, in use {}",
        stats.admitted, stats.rejected, stats.in_use
    );
    Ok(())
}

/// The `p`th percentile of sorted latencies (nearest rank).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}
