//! The reporter endpoint per request and per event, in process (no network), against a bare
//! axum handler that only deserializes the same JSON body, in the same run:
//!
//! - `POST /event` with one event;
//! - `POST /events` with 100 events per request.
//!
//! ```sh
//! cargo bench --bench reporter
//! ```
//!
//! The reporter decodes, authenticates, validates and enqueues into the real writer queue;
//! the worker drains it in batches as usual and drops them (no ClickHouse), so what is timed
//! is the request path.
//!
//! After the criterion groups, interleaved rounds (every variant once per round; see
//! `support/mod.rs`, `BENCH_ROUNDS`) give the ratios, which drift over the run does not
//! skew.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use axum::{Json, Router, body::Body, http::Request, routing::post};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idp_analytics::Reporters;
use serde::Deserialize;
use tower::ServiceExt;

const TOKEN: &str = "bench-reporter-token";

/// The same fields the reporter takes, for the bare handler.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Item {
    account_id: u64,
    event: String,
}

fn single() -> String {
    r#"{"accountId": 42, "event": "search"}"#.to_owned()
}

fn batch(n: u64) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"accountId": {i}, "event": "export.finished"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

fn request(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn call(app: &Router, path: &str, body: &str) {
    let response = app.clone().oneshot(request(path, body)).await.unwrap();
    assert_eq!(response.status(), 200);
}

fn endpoint(c: &mut Criterion) {
    let (rt, analytics) = support::runtime_and_discarding_writer();
    let reporters = Reporters::new().with("bench", TOKEN).unwrap();
    // Ready to serve, as `axum::serve` makes a router (`with_state`).
    let reporter: Router = analytics.reporter_router(reporters).with_state(());
    let bare: Router = Router::new()
        .route("/event", post(|Json(_): Json<Item>| async { "ok" }))
        .route("/events", post(|Json(_): Json<Vec<Item>>| async { "ok" }))
        .with_state(());

    let one = single();
    let hundred = batch(100);
    for (path, body) in [("/event", &one), ("/events", &hundred)] {
        rt.block_on(call(&reporter, path, body));
        rt.block_on(call(&bare, path, body));
    }

    let mut group = c.benchmark_group("reporter_event");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_json_handler", |b| {
        b.to_async(&rt).iter(|| call(&bare, "/event", &one))
    });
    group.bench_function("reporter", |b| {
        b.to_async(&rt).iter(|| call(&reporter, "/event", &one))
    });
    group.finish();

    let mut group = c.benchmark_group("reporter_events_100");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(100));
    group.bench_function("bare_json_handler", |b| {
        b.to_async(&rt).iter(|| call(&bare, "/events", &hundred))
    });
    group.bench_function("reporter", |b| {
        b.to_async(&rt)
            .iter(|| call(&reporter, "/events", &hundred))
    });
    group.finish();

    interleaved(&rt, &bare, &reporter, &one, &hundred);

    let stats = analytics.stats();
    println!(
        "writer during the benchmark: {} events taken, {} dropped (queue full)",
        stats.enqueued, stats.dropped_queue_full
    );
}

/// Each variant's median interleaved round, and the reporter's share of the bare handler's
/// throughput.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    bare: &Router,
    reporter: &Router,
    one: &str,
    hundred: &str,
) {
    let rounds = support::rounds();
    if rounds == 0 {
        return;
    }
    let variants = [
        ("/event, bare JSON handler", bare, "/event", one, 1),
        ("/event, reporter", reporter, "/event", one, 1),
        (
            "/events (100), bare JSON handler",
            bare,
            "/events",
            hundred,
            100,
        ),
        ("/events (100), reporter", reporter, "/events", hundred, 100),
    ];
    let calls = [20_000, 20_000, 1_000, 1_000];
    let medians = support::median_rounds(rt, rounds, &calls, |i| {
        let (_, app, path, body, _) = variants[i];
        call(app, path, body)
    });
    println!("\nreporter, {rounds} interleaved rounds (median round):");
    for ((name, _, _, _, events), ns) in variants.iter().zip(&medians) {
        println!(
            "  {name:34} {:8.3} µs/request  {:6.0} k requests/s  {:6.2} M events/s",
            ns / 1e3,
            1e6 / ns,
            f64::from(*events) * 1e3 / ns,
        );
    }
    println!(
        "  reporter / bare, requests/s: /event {:.3}, /events {:.3}",
        medians[0] / medians[1],
        medians[2] / medians[3],
    );
}

criterion_group!(benches, endpoint);
criterion_main!(benches);
