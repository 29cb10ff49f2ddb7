//! Memory the writer holds, reported (and bounded) on this machine:
//!
//! 1. resident memory of a process whose default queue (100 000 events) is full, and the
//!    bytes per queued event that follow;
//! 2. resident memory during a ClickHouse outage with the spool on, under a steady load.
//!
//! ```sh
//! scripts/clickhouse && cargo bench --bench memory
//! ```
//!
//! `OUTAGE_SECS` sets the outage (default 60 s); `OUTAGE_RATE` the events per second
//! (default 4 000).

#[path = "../tests/common/proxy.rs"]
#[allow(dead_code, unreachable_pub)]
mod proxy;

use std::time::{Duration, Instant};

use idp_analytics::{Analytics, Event, Source, schema::Schema};

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(i: u64) -> Event {
    Event::new(i % 1_000, "/users/{id}/projects")
        .unwrap()
        .with_source(Source::layer())
        .with_method(http::Method::GET)
        .with_status(200)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

async fn full_queue() {
    let before = resident_bytes();
    // The worker is never run: the queue only fills.
    let (analytics, _worker) = Analytics::builder("http://127.0.0.1:1")
        .build_pair()
        .unwrap();
    let built = resident_bytes();
    let mut taken = 0u64;
    while analytics.try_record(event(taken)).is_ok() {
        taken += 1;
    }
    let after = resident_bytes();
    let per_event = (after - before) / taken;
    println!(
        "full default queue: {taken} events; resident {:.1} MiB before the writer, {:.1} MiB built (the queue's slots), {:.1} MiB full: {per_event} bytes per queued event in all",
        mib(before),
        mib(built),
        mib(after)
    );
}

async fn outage() {
    let url = std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let secs = env("OUTAGE_SECS", 60);
    let rate = env("OUTAGE_RATE", 4_000);
    let proxy = proxy::Proxy::start(&url).await;
    let dir = std::env::temp_dir().join(format!("idp-analytics-memory-{}", uuid::Uuid::new_v4()));
    let schema = Schema::new("bench_memory", "events").unwrap();
    let analytics = Analytics::builder(proxy.url())
        .with_schema(schema)
        .with_spool_dir(&dir)
        .with_backoff(Duration::from_millis(100), Duration::from_secs(2))
        .build()
        .unwrap();
    let tick = Duration::from_millis(100);
    let per_tick = rate / 10;
    let mut sent = 0u64;
    // Warm up while ClickHouse is reachable.
    for _ in 0..20 {
        for _ in 0..per_tick {
            analytics.try_record(event(sent)).unwrap();
            sent += 1;
        }
        tokio::time::sleep(tick).await;
    }
    proxy.set(proxy::Mode::Down);
    let at_outage = resident_bytes();
    let mut peak = at_outage;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..per_tick {
            analytics.try_record(event(sent)).unwrap();
            sent += 1;
        }
        peak = peak.max(resident_bytes());
        tokio::time::sleep(tick).await;
    }
    let stats = analytics.stats();
    println!(
        "{secs} s outage at {rate} events/s with the spool on: resident {:.1} MiB at the start, peak {:.1} MiB (+{:.1} MiB); spool {:.1} MiB in {} segments",
        mib(at_outage),
        mib(peak),
        mib(peak - at_outage),
        mib(stats.spooled_bytes),
        stats.spooled_segments
    );
    proxy.set(proxy::Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(120)).await;
    let stats = analytics.stats();
    println!(
        "after the outage: {} written of {sent} sent, {} unwritten, {} dropped",
        stats.written,
        report.unwritten.len(),
        stats.dropped_queue_full + stats.dropped_spool_full
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a filter that names neither part skips this file.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("full_queue") {
        full_queue().await;
    }
    if wants("outage") {
        outage().await;
    }
}
