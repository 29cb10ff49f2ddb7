//! What a layer costs per request, in process (no network), side by side in one run:
//! a bare axum router, a pass-through tower layer (the floor for any layer),
//! `AnalyticsLayer` with the real writer, tower-http's `TraceLayer` with no subscriber, and
//! axum-prometheus's layer.
//!
//! ```sh
//! cargo bench --bench layer
//! ```
//!
//! The layer records through the real writer handle and queue; the worker drains the queue
//! in batches as usual but drops them instead of writing to ClickHouse, so what is timed is
//! the request path, not ClickHouse's work on the same two cores. The benchmark prints the
//! writer's counters at the end, so a queue that could not keep up (which would make the
//! layer's path cheaper) would show.
//!
//! `(analytics_layer - bare) / (tower_http_trace - bare)` is the ratio to watch (target
//! below 0.75).
//!
//! Criterion times the variants one after the other, so a machine whose speed drifts over
//! the minute moves one variant against another (a bare router measured 0.86 µs in one run
//! and 0.93 µs in the next, here). After the criterion group the benchmark therefore also
//! runs interleaved rounds: each round times every variant once on 100 000 requests, and
//! the table it prints gives each variant's median round and the ratios between them.
//! `BENCH_ROUNDS` sets the number of rounds (default 20; 0 skips them).

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    http::{Request, Response},
    routing::get,
};
use criterion::{Criterion, criterion_group, criterion_main};
use idp_analytics::{AccountId, AnalyticsLayer};
use tower::ServiceExt;

fn router() -> Router {
    Router::new().route("/users/{id}/projects", get(|| async { "projects" }))
}

fn request() -> Request<Body> {
    let mut request = Request::get("/users/42/projects")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(AccountId(42));
    request
}

async fn call(app: &Router) -> Response<Body> {
    app.clone().oneshot(request()).await.unwrap()
}

fn overhead(c: &mut Criterion) {
    let (rt, analytics) = support::runtime_and_discarding_writer();
    let prometheus = {
        let _guard = rt.enter();
        let (layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
        layer
    };

    let variants: Vec<(&str, Router)> = vec![
        ("bare", router()),
        (
            "pass_through_layer",
            router().layer(support::PassThroughLayer),
        ),
        (
            "analytics_layer",
            router().layer(AnalyticsLayer::new(analytics.clone())),
        ),
        (
            "tower_http_trace",
            router().layer(tower_http::trace::TraceLayer::new_for_http()),
        ),
        ("axum_prometheus", router().layer(prometheus)),
    ];
    // Ready to serve, as `axum::serve` makes a router: handlers and layers become services
    // once, not on every request.
    let variants: Vec<(&str, Router)> = variants
        .into_iter()
        .map(|(name, app)| (name, app.with_state(())))
        .collect();

    let mut group = c.benchmark_group("layer_overhead");
    group.measurement_time(Duration::from_secs(5));
    for (name, app) in &variants {
        // Every variant answers the request the same way.
        let response = rt.block_on(call(app));
        assert_eq!(response.status(), 200, "{name}");
        group.bench_function(*name, |b| b.to_async(&rt).iter(|| call(app)));
    }
    group.finish();

    interleaved(&rt, &variants);

    let stats = analytics.stats();
    println!(
        "writer during the benchmark: {} events taken, {} dropped (queue full)",
        stats.enqueued, stats.dropped_queue_full
    );
}

/// Each variant's median interleaved round per request, its cost over the bare router and
/// the target ratios.
fn interleaved(rt: &tokio::runtime::Runtime, variants: &[(&str, Router)]) {
    const REQUESTS: u32 = 100_000;
    let rounds = support::rounds();
    if rounds == 0 {
        return;
    }
    let calls = vec![REQUESTS; variants.len()];
    let medians = support::median_rounds(rt, rounds, &calls, |i| async move {
        std::hint::black_box(call(&variants[i].1).await);
    });
    let over = |name: &str| {
        let at = variants.iter().position(|(n, _)| *n == name).unwrap();
        medians[at] - medians[0]
    };
    println!(
        "\nlayer_overhead, {rounds} interleaved rounds of {REQUESTS} requests (median round):"
    );
    for ((name, _), median) in variants.iter().zip(&medians) {
        println!(
            "  {name:20} {median:8.1} ns/request  {:+7.1} ns over bare",
            median - medians[0]
        );
    }
    println!(
        "  (analytics_layer - bare) / (tower_http_trace - bare) = {:.2}; / (axum_prometheus - bare) = {:.2}",
        over("analytics_layer") / over("tower_http_trace"),
        over("analytics_layer") / over("axum_prometheus"),
    );
}

criterion_group!(benches, overhead);
criterion_main!(benches);
