//! Per-client limits in an axum service: `/public` is limited per client IP address (from
//! `ConnectInfo`), `/api` per API key (from the `x-api-key` header), on one router, with
//! `KeyedThrottleLayer`s over shared `KeyedThrottle`s: bounded memory, no cleanup task. A
//! refusal is 429 with a `Retry-After` header for that client alone.
//!
//! A bounded local load over 127.0.0.1/8 (each client binds its own loopback address, as
//! Linux allows; elsewhere every client shares 127.0.0.1 and so one `/public` quota): one
//! greedy client firing 30 requests at once and three polite ones sending 3 requests 250 ms
//! apart, on both routes. The program prints each client's admitted and refused counts, then
//! exits.
//!
//! Run with `cargo run --example per_ip --features tokio,axum`; on Linux it prints
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
//! The limits are `dike::tower::KeyedThrottleLayer`s, one per route, each with a key extractor
//! (`None` = not limited: a request without an API key reaches the handler, which answers
//! 401). The handlers hold no limiting code; a refusal is turned into its response (429 with
//! `Retry-After`, or 503 for a full table of keys) by `HandleErrorLayer`.
//!
//! The axum gotcha: a `Router` whose state is not given rebuilds each route's layers for every
//! connection under `axum::serve`, and a layer built from a number would then limit each
//! connection alone. These layers share their `Arc<KeyedThrottle>` anyway, and the router ends
//! with `.with_state(..)`, which builds every route once.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use dike::keyed::KeyedThrottle;
use dike::throttle::Quota;
use dike::time::TokioTimer;
use dike::tower::{Error, KeyedThrottleLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tower::ServiceBuilder;

/// The key of `/public`: the client's IP address, from `ConnectInfo`.
fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// The key of `/api`: the `x-api-key` header; without one the request is not limited here.
fn api_key(req: &Request) -> Option<String> {
    let key = req.headers().get("x-api-key")?.to_str().ok()?;
    Some(key.to_owned())
}

/// A refusal's response: 429 with `Retry-After` for the client's rate, 503 when the table of
/// clients is full of live entries.
async fn refusal(err: Error<Infallible>) -> Response {
    err.into_response()
}

async fn public() -> &'static str {
    "public data"
}

async fn api(req: Request) -> Response {
    if api_key(&req).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    "api data".into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let per_ip =
        Arc::new(KeyedThrottle::<IpAddr>::new(Quota::per_second(5).with_burst(5)).expect("valid"));
    let per_key =
        Arc::new(KeyedThrottle::<String>::new(Quota::per_second(2).with_burst(4)).expect("valid"));
    let app = Router::new()
        .route(
            "/public",
            get(public).route_layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(refusal))
                    .layer(
                        KeyedThrottleLayer::new(Arc::clone(&per_ip), TokioTimer::new(), client_ip)
                            .reject(),
                    ),
            ),
        )
        .route(
            "/api",
            get(api).route_layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(refusal))
                    .layer(
                        KeyedThrottleLayer::new(Arc::clone(&per_key), TokioTimer::new(), api_key)
                            .reject(),
                    ),
            ),
        )
        // Builds each route (and its layers) once, not per connection.
        .with_state(());
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
        per_ip.len(),
        per_key.len()
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
