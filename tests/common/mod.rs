//! Helpers for tests that talk to a real ClickHouse server.
//!
//! The server comes from `scripts/clickhouse` (on `CLICKHOUSE_URL`, default
//! `http://127.0.0.1:8123`). A test that cannot reach it fails and says how to start it.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use idp_analytics::schema::Schema;

/// The URL of the test server.
pub fn url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A client for checking what the writer wrote (no default database).
pub fn client() -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(url())
        .with_validation(false)
}

/// Fails the test, saying how to start ClickHouse, when it cannot be reached.
pub async fn require_clickhouse() {
    let client = client();
    let ping = tokio::time::timeout(
        Duration::from_secs(5),
        client.query("SELECT 1").fetch_one::<u8>(),
    )
    .await;
    match ping {
        Ok(Ok(1)) => {}
        other => panic!(
            "ClickHouse is not reachable at {} ({other:?}).\n\
             Start it with `scripts/clickhouse` (or set CLICKHOUSE_URL to a running server).",
            url()
        ),
    }
}

/// A fresh, empty database named after the test; dropped and made anew on each run.
pub async fn database(name: String) -> Schema {
    require_clickhouse().await;
    let client = client();
    let db = format!("test_{name}");
    client
        .query(&format!("DROP DATABASE IF EXISTS `{db}`"))
        .execute()
        .await
        .unwrap();
    client
        .query(&format!("CREATE DATABASE `{db}`"))
        .execute()
        .await
        .unwrap();
    Schema::new(db, "events").unwrap()
}

/// A fresh database named after the enclosing test function.
#[macro_export]
macro_rules! prepare_database {
    () => {
        $crate::common::database({
            fn f() {}
            fn type_name_of<T>(_: T) -> &'static str {
                std::any::type_name::<T>()
            }
            let name = type_name_of(f);
            let name = name.strip_suffix("::f").unwrap_or(name);
            let name = name.strip_suffix("::{{closure}}").unwrap_or(name);
            name.rsplit("::").next().unwrap().to_owned()
        })
    };
}

/// `count()` and `uniqExact(event_id)` of the table, read with `FINAL`.
pub async fn counts(schema: &Schema) -> (u64, u64) {
    client()
        .query(&format!(
            "SELECT count(), uniqExact(event_id) FROM {} FINAL",
            schema.qualified_table()
        ))
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap()
}

/// Rows of the table without `FINAL`: what a plain query sees, duplicates included.
pub async fn raw_count(schema: &Schema) -> u64 {
    client()
        .query(&format!("SELECT count() FROM {}", schema.qualified_table()))
        .fetch_one::<u64>()
        .await
        .unwrap()
}

/// Rows of the table without `FINAL`, or `None` while the table does not exist.
pub async fn try_raw_count(schema: &Schema) -> Option<u64> {
    client()
        .query(&format!("SELECT count() FROM {}", schema.qualified_table()))
        .fetch_one::<u64>()
        .await
        .ok()
}

/// Waits until `check` holds, polling every 50 ms, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
pub mod app;
pub mod cluster;
pub mod proxy;
pub mod tls;

/// A new, empty directory under the system's temporary directory.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("idp-analytics-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The segment files in a spool directory, oldest first.
pub fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Resident memory of this process, in bytes.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Writes `events` through the writer into `schema` (creating its tables) and waits until
/// ClickHouse has acknowledged every one.
pub async fn write(schema: &Schema, events: Vec<idp_analytics::Event>) {
    let analytics = idp_analytics::Analytics::builder(url())
        .with_schema(schema.clone())
        .with_queue_capacity(events.len().max(1))
        .build()
        .unwrap();
    let n = events.len() as u64;
    analytics.try_record_all(events).unwrap();
    let report = analytics.shutdown(Duration::from_secs(120)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    assert_eq!(report.written, n);
}

/// An event of `account` at `time`.
pub fn event_at(
    account: u64,
    event_type: &str,
    time: std::time::SystemTime,
) -> idp_analytics::Event {
    idp_analytics::Event::new(account, event_type)
        .unwrap()
        .with_time(time)
        .unwrap()
}

/// A server on loopback that accepts connections and never answers: a ClickHouse that has
/// stopped responding. Its URL; the server ends with the runtime.
pub async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: a test opens a handful of connections.
        while held.len() < 1000 {
            match listener.accept().await {
                Ok((stream, _)) => held.push(stream),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    url
}
