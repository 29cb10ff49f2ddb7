//! Writer throughput into the real ClickHouse: events per second from `try_record` to rows
//! acknowledged, against the `clickhouse` crate inserting the same rows in the same batch
//! sizes (the ceiling), in the same run.
//!
//! ```sh
//! scripts/clickhouse && cargo bench --bench writer
//! ```
//!
//! `BENCH_EVENTS` sets the events per iteration (default 1 000 000).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use idp_analytics::{Analytics, Event, Source, schema::Schema};
use serde::Serialize;
use uuid::Uuid;

const BATCH: usize = 10_000;

fn url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

fn events_per_iteration() -> usize {
    std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

/// The same row the writer sends.
#[derive(clickhouse::Row, Serialize)]
struct Row<'a> {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
    account_id: u64,
    event_type: &'a str,
    inserted_at: u32,
    source: &'a str,
    method: &'a str,
    status: u16,
    latency_us: u64,
}

impl<'a> From<&'a Event> for Row<'a> {
    fn from(e: &'a Event) -> Self {
        Row {
            event_id: e.event_id(),
            account_id: e.account_id(),
            event_type: e.event_type(),
            inserted_at: e.unix_seconds(),
            source: e.source(),
            method: e.method(),
            status: e.status(),
            latency_us: e.latency_us(),
        }
    }
}

fn sample(n: usize) -> Vec<Event> {
    (0..n as u64)
        .map(|i| {
            Event::new(i % 1_000, "/users/{id}/projects")
                .unwrap()
                .with_source(Source::layer())
                .with_method(http::Method::GET)
                .with_status(200)
                .with_latency(Duration::from_micros(850))
        })
        .collect()
}

fn raw_client(nodelay: bool) -> clickhouse::Client {
    if !nodelay {
        return clickhouse::Client::default()
            .with_url(url())
            .with_validation(false);
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build(connector);
    clickhouse::Client::with_http_client(http)
        .with_url(url())
        .with_validation(false)
}

async fn truncate(schema: &Schema) {
    raw_client(true)
        .query(&format!("TRUNCATE TABLE {}", schema.qualified_table()))
        .execute()
        .await
        .expect("ClickHouse must be running: start it with `scripts/clickhouse`");
}

async fn raw_insert(client: &clickhouse::Client, schema: &Schema, events: &[Event]) {
    let client = client.clone().with_database(schema.database());
    for batch in events.chunks(BATCH) {
        let mut insert = client.insert::<Row<'_>>(schema.table()).await.unwrap();
        for event in batch {
            insert.write(&Row::from(event)).await.unwrap();
        }
        insert.end().await.unwrap();
    }
}

async fn writer_insert(schema: &Schema, events: Vec<Event>) -> Duration {
    let analytics = Analytics::builder(url())
        .with_schema(schema.clone())
        .with_max_rows(BATCH)
        // Room for the whole iteration: what is timed is the writer, not a full queue.
        .with_queue_capacity(events.len())
        .build()
        .unwrap();
    let start = Instant::now();
    for event in events {
        analytics.try_record(event).unwrap();
    }
    let report = analytics.shutdown(Duration::from_secs(600)).await;
    assert!(report.unwritten.is_empty());
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = events_per_iteration();
    let schema = Schema::new("bench_writer", "events").unwrap();
    rt.block_on(async {
        let client = raw_client(true);
        let version = Schema::server_version(&client)
            .await
            .expect("ClickHouse must be running: start it with `scripts/clickhouse`");
        schema.ensure(&client, version).await.unwrap();
    });

    let mut group = c.benchmark_group("writer_throughput");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));

    for (name, nodelay) in [
        ("raw_clickhouse_nodelay", true),
        ("raw_clickhouse_default", false),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let schema = schema.clone();
                async move {
                    let client = raw_client(nodelay);
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        truncate(&schema).await;
                        let events = sample(n);
                        let start = Instant::now();
                        raw_insert(&client, &schema, &events).await;
                        total += start.elapsed();
                    }
                    total
                }
            });
        });
    }
    group.bench_function("analytics_writer", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let schema = schema.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    truncate(&schema).await;
                    total += writer_insert(&schema, sample(n)).await;
                }
                total
            }
        });
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
