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

use std::{
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{Request, Response},
    routing::get,
};
use criterion::{Criterion, criterion_group, criterion_main};
use idp_analytics::{AccountId, Analytics, AnalyticsLayer};
use tower::{Layer, Service, ServiceExt};

/// A layer that does nothing but wrap: what any layer costs at least.
#[derive(Clone)]
struct PassThroughLayer;

impl<S> Layer<S> for PassThroughLayer {
    type Service = PassThrough<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PassThrough(inner)
    }
}

#[derive(Clone)]
struct PassThrough<S>(S);

impl<S, B> Service<Request<B>> for PassThrough<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.0.call(request)
    }
}

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The real handle and queue; the worker drains batches as usual and drops them.
    let (analytics, worker) = Analytics::builder("http://127.0.0.1:1")
        .build_pair()
        .unwrap();
    rt.spawn(worker.run_discarding());
    let prometheus = {
        let _guard = rt.enter();
        let (layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
        layer
    };

    let variants: Vec<(&str, Router)> = vec![
        ("bare", router()),
        ("pass_through_layer", router().layer(PassThroughLayer)),
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

    let mut group = c.benchmark_group("layer_overhead");
    group.measurement_time(Duration::from_secs(5));
    for (name, app) in &variants {
        // Every variant answers the request the same way.
        let response = rt.block_on(call(app));
        assert_eq!(response.status(), 200, "{name}");
        group.bench_function(*name, |b| b.to_async(&rt).iter(|| call(app)));
    }
    group.finish();

    let stats = analytics.stats();
    println!(
        "writer during the benchmark: {} events taken, {} dropped (queue full)",
        stats.enqueued, stats.dropped_queue_full
    );
}

criterion_group!(benches, overhead);
criterion_main!(benches);
