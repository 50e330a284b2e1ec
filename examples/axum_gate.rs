//! An axum service behind a [`Gate`]: at most 4 requests at once, the rest turned away at
//! once with 503 instead of queueing. A local load of 20 simultaneous HTTP/1.1 requests
//! over 127.0.0.1 shows it, then the program prints the status counts and exits.
//!
//! Run with `cargo run --example axum_gate --features tokio`; it prints
//!
//! ```text
//! 20 requests at once, 4 allowed: 200 OK × 4, 503 Service Unavailable × 16
//! after the burst: 200 OK; gate stats: admitted 5, rejected 16, in use 0
//! ```
//!
//! (On a heavily loaded machine a few more may get through: a request is turned away only
//! while 4 others are inside their 100 ms.)
//!
//! The dike part is one line in the handler (`gate.try_enter()`), and the gate is a plain
//! `Arc<Gate>` in axum's `State`. The tower equivalent needs `tower` as a dependency, an
//! error handler and two layers, and its limit is per service instance, with no counters:
//!
//! ```ignore
//! let app = Router::new().route("/", get(slow)).layer(
//!     ServiceBuilder::new()
//!         .layer(HandleErrorLayer::new(|_: BoxError| async { StatusCode::SERVICE_UNAVAILABLE }))
//!         .load_shed()
//!         .concurrency_limit(4),
//! );
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Router, routing::get};
use dike::gate::Gate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A slow endpoint: 100 ms of work, at most 4 at once.
async fn slow(State(gate): State<Arc<Gate>>) -> Result<&'static str, StatusCode> {
    let _permit = gate
        .try_enter()
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok("done")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let gate = Arc::new(Gate::new(4));
    let app = Router::new()
        .route("/", get(slow))
        .with_state(Arc::clone(&gate));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The load: 20 requests at once, each on its own connection.
    let requests: Vec<_> = (0..20).map(|_| tokio::spawn(status_of(addr))).collect();
    let mut counts = BTreeMap::new();
    for request in requests {
        *counts.entry(request.await??).or_insert(0) += 1;
    }
    let counts: Vec<_> = counts
        .iter()
        .map(|(status, n)| format!("{status} × {n}"))
        .collect();
    println!("20 requests at once, 4 allowed: {}", counts.join(", "));

    // Once the burst is over, the gate is free again.
    let status = status_of(addr).await?;
    let stats = gate.stats();
    println!(
        "after the burst: {status}; gate stats: admitted {}, rejected {}, in use {}",
        stats.admitted, stats.rejected, stats.in_use
    );
    Ok(())
}

/// One `GET /` over a fresh connection, by hand: the status of the response.
async fn status_of(addr: SocketAddr) -> std::io::Result<StatusCode> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    // "HTTP/1.1 503 Service Unavailable\r\n..."
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .and_then(|code| StatusCode::from_u16(code).ok());
    code.ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))
}
