//! async_reduce's README example, in Rust: an HTTP handler whose simultaneous identical
//! requests share one call to each inner system.
//!
//! ```python
//! @web_server.router('/users/(\d+)')
//! async def handler_user_detail(request, user_id: int):
//!     user_data = await async_reduce(fetch_user_data(user_id))
//!     user_statistics = await async_reduce(
//!         DataBase.query('user_statistics').where(id=user_id).fetch_one(),
//!         ident='db_user_statistics:{}'.format(user_id)
//!     )
//!     return Response(...)
//! ```
//!
//! Run it with `cargo run --example coalesce`. It serves `GET /users/{id}` with axum on
//! 127.0.0.1 (a free port), sends bursts of simultaneous requests to itself with a small
//! HTTP/1.1 client, prints how many calls reached the inner service and the database, and
//! stops. Without coalescing, N simultaneous requests would make 2·N inner calls; with it they
//! make 2.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use dike::coalesce::{Coalescer, KeyStats, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The user service and the database behind the web server, slow and counted.
#[derive(Default)]
struct Backends {
    user_fetches: AtomicUsize,
    db_queries: AtomicUsize,
}

impl Backends {
    /// `fetch_user_data(user_id)`: a call to the inner user service.
    async fn fetch_user_data(self: Arc<Self>, user_id: u64) -> Result<String, String> {
        self.user_fetches.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if user_id == 0 {
            return Err("user 0 does not exist".to_string());
        }
        Ok(format!("user {user_id}"))
    }

    /// `DataBase.query('user_statistics').where(id=user_id).fetch_one()`.
    async fn user_statistics(self: Arc<Self>, user_id: u64) -> Result<u64, String> {
        self.db_queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok(user_id * 10)
    }
}

/// The web server's state: one coalescer per inner system, each with statistics hooks.
struct App {
    backends: Arc<Backends>,
    /// Keyed by user id, like the original's automatic identity of `fetch_user_data(user_id)`.
    users: Coalescer<u64, String, String, (Stats, KeyStats<u64>)>,
    /// Keyed by a string, like the original's `ident='db_user_statistics:{}'`.
    statistics: Coalescer<String, u64, String, Stats>,
}

/// `handler_user_detail`.
async fn user_detail(
    State(app): State<Arc<App>>,
    Path(user_id): Path<u64>,
) -> Result<String, (StatusCode, String)> {
    // All simultaneous requests fetching `user_id` share one call to the user service.
    let backends = Arc::clone(&app.backends);
    let user_data = app
        .users
        .run(&user_id, || backends.fetch_user_data(user_id))
        .await
        .into_result()
        .map_err(|e| (StatusCode::BAD_GATEWAY, describe(e)))?;
    // ...and one database query, under a key of our own (a `&str`: the `String` key is built
    // only by the request that starts the query).
    let backends = Arc::clone(&app.backends);
    let ident = format!("db_user_statistics:{user_id}");
    let user_statistics = app
        .statistics
        .run(ident.as_str(), || backends.user_statistics(user_id))
        .await
        .into_result()
        .map_err(|e| (StatusCode::BAD_GATEWAY, describe(e)))?;
    Ok(format!("{user_data}, score {user_statistics}"))
}

fn describe(error: dike::coalesce::RunError<String>) -> String {
    match error {
        dike::coalesce::RunError::Failed(message) => message,
        other => other.to_string(),
    }
}

/// A minimal HTTP/1.1 client: one request per connection; returns the status code and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Sends `paths` all at once and waits for every answer.
async fn burst(addr: std::net::SocketAddr, paths: Vec<String>) -> Vec<(u16, String)> {
    let tasks: Vec<_> = paths
        .into_iter()
        .map(|path| {
            tokio::spawn(async move { http_get(addr, &path).await.expect("the server answers") })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the client task"));
    }
    answers
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let backends = Arc::new(Backends::default());
    let app = Arc::new(App {
        backends: Arc::clone(&backends),
        users: Coalescer::with_hooks((Stats::new(), KeyStats::new())),
        statistics: Coalescer::with_hooks(Stats::new()),
    });
    let router = Router::new()
        .route("/users/{user_id}", get(user_detail))
        .with_state(Arc::clone(&app));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("serving GET /users/{{id}} on http://{addr}");

    let counts = |label: &str| {
        println!(
            "  {label}: {} call(s) to the user service, {} database quer(ies) so far",
            backends.user_fetches.load(Ordering::Relaxed),
            backends.db_queries.load(Ordering::Relaxed)
        );
    };

    println!("\n-- 20 simultaneous GET /users/42");
    let answers = burst(addr, vec!["/users/42".to_string(); 20]).await;
    assert!(
        answers
            .iter()
            .all(|a| a == &(200, "user 42, score 420".to_string()))
    );
    println!("  every answer: {:?}", answers[0].1);
    counts("after the burst");

    println!("\n-- the same burst again (nothing is cached: one more call each)");
    burst(addr, vec!["/users/42".to_string(); 20]).await;
    counts("after the second burst");

    println!("\n-- 30 simultaneous requests for users 1, 2 and 3, and 5 for a missing user 0");
    let mut paths: Vec<String> = (0..30).map(|i| format!("/users/{}", i % 3 + 1)).collect();
    paths.extend(std::iter::repeat_n("/users/0".to_string(), 5));
    let answers = burst(addr, paths).await;
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    println!(
        "  {} answered 200; {} answered {} {:?} (the error is shared too)",
        answers.len() - failed.len(),
        failed.len(),
        failed[0].0,
        failed[0].1
    );
    counts("after the mixed burst");

    println!("\nuser service coalescer: {}", app.users.hooks().0);
    print!("per user:\n{}", app.users.hooks().1);
    println!("statistics coalescer: {}", app.statistics.hooks());

    stop.send(()).ok();
    server.await.expect("the server task")?;
    println!("\nserver stopped");
    Ok(())
}
