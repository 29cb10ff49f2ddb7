//! The examples' serving code under slow and idle clients: headers that trickle in are cut
//! off, and idle connections do not keep `/health` out. Loopback only, bounded in count.

mod common;

use std::time::Duration;

use common::app::App;
use http::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Sends a request's headers one line a second. Returns how many lines were sent when the
/// server closed the connection, or `None` if it was still open after `lines`.
async fn trickle(addr: &str, lines: usize) -> Option<usize> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    for sent in 0..lines {
        tokio::select! {
            // Closed, or answered with an error before closing: either way, cut off.
            _ = stream.read(&mut buf) => return Some(sent),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if stream.write_all(b"x-trickle: 1\r\n").await.is_err() {
            return Some(sent);
        }
    }
    None
}

async fn headers_are_cut_off(example: &str) {
    common::require_clickhouse().await;
    let url = common::url();
    let app = App::start(example, &[("CLICKHOUSE_URL", &url)]).await;
    // The examples allow 10 s for headers: 40 lines at one a second are far more.
    let closed = trickle(app.addr(), 40).await;
    assert!(
        closed.is_some(),
        "{example}: headers sent one line a second were still read after 40 s"
    );
    let (status, _) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn serving_axum_example_cuts_off_trickled_headers() {
    headers_are_cut_off("axum").await;
}

#[tokio::test]
async fn serving_hyper_example_cuts_off_trickled_headers() {
    headers_are_cut_off("hyper").await;
}

/// With 256 files, 300 idle connections used to keep every other client out for good.
async fn idle_connections_do_not_lock_out(example: &str) {
    common::require_clickhouse().await;
    let url = common::url();
    let app = App::start_with_file_limit(example, &[("CLICKHOUSE_URL", &url)], Some(256)).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(app.addr())).await {
            Ok(Ok(stream)) => idle.push(stream),
            // The backlog is full: enough.
            _ => break,
        }
    }
    assert!(idle.len() >= 250, "{} connections", idle.len());
    let health = tokio::time::timeout(Duration::from_secs(60), app.get("/health", None)).await;
    let (status, _) = health.unwrap_or_else(|_| {
        panic!(
            "{example}: /health unreachable for 60 s with {} idle connections",
            idle.len()
        )
    });
    assert_eq!(status, StatusCode::OK);
    drop(idle);
    app.stop().await;
}

#[tokio::test]
async fn serving_axum_example_stays_reachable_with_idle_connections() {
    idle_connections_do_not_lock_out("axum").await;
}

#[tokio::test]
async fn serving_hyper_example_stays_reachable_with_idle_connections() {
    idle_connections_do_not_lock_out("hyper").await;
}
