//! aiometer's README example, in Rust: concurrent web requests with throttling.
//!
//! ```python
//! async def fetch_and_process(client, url, payload):
//!     response = await client.post(url, json=payload)
//!     return response.json()
//!
//! async with aiometer.amap(
//!     partial(fetch_and_process, client=client), urls, payloads,
//!     max_at_once=5,      # Limit number of requests at any given time.
//!     max_per_second=1,   # Limit number of requests per second.
//! ) as results:
//!     async for result in results:
//!         print(result)
//! ```
//!
//! Instead of httpbin.org, the example starts its own JSON echo server (axum) on
//! `127.0.0.1`, which takes 800 ms per request and records how many it serves at once. It
//! posts 20 payloads at most 5 at a time and at most 10 per second (aiometer's example uses
//! 1 per second for 100 payloads; this one is kept to about 4 seconds), prints each response
//! as it arrives, in completion order, and exits. At 10 starts per second and 800 ms per
//! request, 8 would be in flight without `max_at_once`; the server sees 5.
//!
//! Run it with `cargo run --example aiometer --features tokio`.

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use dike::run::{Limits, amap};
use dike::time::TokioTimer;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How many requests the server is serving now, and the most at once.
#[derive(Default)]
struct Load {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// `POST /json`: echoes the JSON body after 800 ms.
async fn echo(
    State(load): State<Arc<Load>>,
    body: String,
) -> ([(&'static str, &'static str); 1], String) {
    let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
    load.peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    load.now.fetch_sub(1, Ordering::SeqCst);
    ([("content-type", "application/json")], body)
}

/// A minimal HTTP/1.1 client: one `POST` with a JSON body per connection; returns the
/// response body.
async fn post_json(addr: SocketAddr, path: &str, json: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "unexpected response: {head}"
        )));
    }
    Ok(body.to_string())
}

/// aiometer's `fetch_and_process(client, url, payload)`.
async fn fetch_and_process(
    addr: SocketAddr,
    url: &str,
    payload: String,
) -> std::io::Result<String> {
    post_json(addr, url, &payload).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let load = Arc::new(Load::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/json", post(echo))
        .with_state(Arc::clone(&load));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("echo server on http://{addr}/json");

    let payloads: Vec<String> = (0..20)
        .map(|index| format!("{{\"index\": {index}}}"))
        .collect();
    let urls = vec!["/json"; payloads.len()];

    let limits = Limits::new()
        .max_at_once(5)? // Limit number of requests at any given time.
        .max_per_second(10.0)? // Limit number of requests per second.
        .timer(TokioTimer::new());

    let start = Instant::now();
    let work = async {
        let mut results = amap(
            |(url, payload)| fetch_and_process(addr, url, payload),
            urls.into_iter().zip(payloads),
            limits,
        );
        let mut count = 0;
        while let Some(result) = results.next().await {
            println!("{:>6.3}s {}", start.elapsed().as_secs_f64(), result?);
            count += 1;
        }
        Ok::<_, std::io::Error>(count)
    };
    // Bounded: the whole run takes about 4 s; give up after 30 s whatever happens.
    let count = tokio::time::timeout(Duration::from_secs(30), work).await??;
    server.abort();

    let peak = load.peak.load(Ordering::SeqCst);
    println!(
        "{count} responses in {:.2}s; the server saw at most {peak} requests at once",
        start.elapsed().as_secs_f64()
    );
    assert!(peak <= 5, "max_at_once was exceeded");
    Ok(())
}
