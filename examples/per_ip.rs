//! Per-client limits in an axum service: `/public` is limited per client IP address (from
//! `ConnectInfo`), `/api` per API key (from the `x-api-key` header), on one router, with
//! `KeyedThrottle`s in axum's `State`: bounded memory, no cleanup task. A refusal is 429 with
//! a `Retry-After` header for that client alone.
//!
//! A bounded local load over 127.0.0.1/8 (each client binds its own loopback address, as
//! Linux allows; elsewhere every client shares 127.0.0.1 and so one `/public` quota): one
//! greedy client firing 30 requests at once and three polite ones sending 3 requests 250 ms
//! apart, on both routes. The program prints each client's admitted and refused counts, then
//! exits.
//!
//! Run with `cargo run --example per_ip --features tokio`; on Linux it prints
//!
//! ```text
//! /public, 5 per second per IP (burst 5):
//!   127.0.0.2 (greedy): 5 admitted, 25 refused (Retry-After: 1 s)
//!   127.0.0.3 (polite): 3 admitted, 0 refused
//!   127.0.0.4 (polite): 3 admitted, 0 refused
//!   127.0.0.5 (polite): 3 admitted, 0 refused
//! /api, 2 per second per API key (burst 4):
//!   greedy-2 (greedy): 4 admitted, 26 refused (Retry-After: 1 s)
//!   polite-3 (polite): 3 admitted, 0 refused
//!   polite-4 (polite): 3 admitted, 0 refused
//!   polite-5 (polite): 3 admitted, 0 refused
//! entries held: 4 IPs, 4 API keys (idle ones are evicted by later calls, cap 100 000 each)
//! ```
//!
//! (On a heavily loaded machine a greedy client may get one more: its 30 requests arrive over
//! a few milliseconds, and a slot comes back every 200 ms or 500 ms.)
//!
//! The tower layers (`KeyedThrottleLayer`, `KeyedGateLayer`) will do the same without code in
//! the handlers; this example shows the plain-State spelling they build on.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use dike::keyed::{KeyedThrottle, KeyedThrottleError};
use dike::throttle::Quota;
use dike::time::TokioTimer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

#[derive(Clone)]
struct Limits {
    per_ip: Arc<KeyedThrottle<IpAddr>>,
    per_key: Arc<KeyedThrottle<String>>,
}

/// 429 with `Retry-After` (whole seconds, rounded up) for a rate limit; 503 when the table of
/// clients is full of live entries.
fn refusal(err: KeyedThrottleError) -> Response {
    match err {
        KeyedThrottleError::RateLimited(err) => {
            let secs = err.wait().as_secs() + u64::from(err.wait().subsec_nanos() > 0);
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn public(
    State(limits): State<Limits>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    match limits.per_ip.try_acquire(TokioTimer::new(), &peer.ip()) {
        Ok(()) => "public data".into_response(),
        Err(err) => refusal(err),
    }
}

async fn api(State(limits): State<Limits>, headers: HeaderMap) -> Response {
    let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    // A `&str` lookup: a known key allocates nothing.
    match limits.per_key.try_acquire(TokioTimer::new(), key) {
        Ok(()) => "api data".into_response(),
        Err(err) => refusal(err),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let limits = Limits {
        per_ip: Arc::new(KeyedThrottle::new(Quota::per_second(5).with_burst(5)).expect("valid")),
        per_key: Arc::new(KeyedThrottle::new(Quota::per_second(2).with_burst(4)).expect("valid")),
    };
    let app = Router::new()
        .route("/public", get(public))
        .route("/api", get(api))
        .with_state(limits.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let clients = [("greedy", 2u8), ("polite", 3), ("polite", 4), ("polite", 5)];
    for (path, title) in [
        ("/public", "/public, 5 per second per IP (burst 5):"),
        ("/api", "/api, 2 per second per API key (burst 4):"),
    ] {
        let runs: Vec<_> = clients
            .iter()
            .map(|&(kind, n)| {
                tokio::spawn(async move {
                    let ip = Ipv4Addr::new(127, 0, 0, n);
                    let key = format!("{kind}-{n}");
                    let mut counts: BTreeMap<u16, (u32, Option<String>)> = BTreeMap::new();
                    let (requests, gap) = if kind == "greedy" {
                        (30, Duration::ZERO)
                    } else {
                        (3, Duration::from_millis(250))
                    };
                    let sent: Vec<_> = (0..requests)
                        .map(|i| {
                            let key = key.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(gap * i).await;
                                request(addr, ip, path, &key).await
                            })
                        })
                        .collect();
                    for response in sent {
                        let (status, retry_after) = response.await.expect("no panic")?;
                        let entry = counts.entry(status).or_default();
                        entry.0 += 1;
                        entry.1 = entry.1.take().or(retry_after);
                    }
                    Ok::<_, std::io::Error>((kind, ip, key, counts))
                })
            })
            .collect();
        println!("{title}");
        for run in runs {
            let (kind, ip, key, counts) = run.await.expect("no panic")?;
            let admitted = counts.get(&200).map_or(0, |c| c.0);
            let refused = counts.get(&429).map_or(0, |c| c.0);
            let who = if path == "/public" {
                ip.to_string()
            } else {
                key
            };
            let retry = counts
                .get(&429)
                .and_then(|c| c.1.clone())
                .map(|s| format!(" (Retry-After: {s} s)"))
                .unwrap_or_default();
            println!("  {who} ({kind}): {admitted} admitted, {refused} refused{retry}");
        }
    }
    println!(
        "entries held: {} IPs, {} API keys (idle ones are evicted by later calls, cap 100 000 each)",
        limits.per_ip.len(),
        limits.per_key.len()
    );
    Ok(())
}

/// One `GET path` from `ip` (a loopback address, falling back to 127.0.0.1 where only that
/// one exists) over a fresh connection: the status and the `Retry-After` header, if any.
async fn request(
    addr: SocketAddr,
    ip: Ipv4Addr,
    path: &str,
    key: &str,
) -> std::io::Result<(u16, Option<String>)> {
    let socket = TcpSocket::new_v4()?;
    if socket.bind(SocketAddr::new(ip.into(), 0)).is_err() {
        socket.bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))?;
    }
    let mut stream = socket.connect(addr).await?;
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let retry_after = response.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_owned())
    });
    Ok((status, retry_after))
}
