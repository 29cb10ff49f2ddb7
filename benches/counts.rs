//! Instruction counts of the hot paths, under Callgrind (gungraun): numbers that hold still
//! on a noisy machine, where the timing benchmarks beside this one move by more than the
//! differences they measure. Each benchmark runs once; its set-up (runtime, router, writer,
//! the request itself, and one warm-up call) is not counted.
//!
//! ```sh
//! cargo install gungraun-runner --version 0.20.0 --locked   # once; matches gungraun's version
//! scripts/counts                                             # runs this and prints the ratios
//! ```
//!
//! - `layer`: one request through one axum route on a current-thread runtime: bare, a
//!   pass-through layer, `AnalyticsLayer` (default hooks, and with a closure extractor),
//!   tower-http's `TraceLayer` and axum-prometheus's layer. `AnalyticsLayer` records into
//!   the real writer queue (its worker is not running, so nothing else runs meanwhile).
//! - `reporter`: `POST /event` and `POST /events` (100 events) through the reporter, and
//!   through a bare axum handler that only deserializes the same JSON.
//! - `writer`: one insert of 10 000 events in RowBinary through the `clickhouse` crate, from
//!   the writer's events and from plain rows of the same values (the raw crate), over an
//!   in-memory connection to an HTTP server that reads the body and answers `200`; and
//!   turning a request's capture into an `Event` (id, time, checks) as the writer's thread
//!   does.
//! - `spool`: appending one batch of 10 000 events as a segment, and replaying it.

// gungraun's macros make public items without documentation.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::{
    convert::Infallible,
    hint::black_box,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    Json, Router,
    body::Body,
    http::{Method, Request, Response, Uri},
    routing::{get, post},
};
use gungraun::{library_benchmark, library_benchmark_group, main};
use hyper_util::rt::{TokioExecutor, TokioIo};
use idp_analytics::{
    AccountId, Analytics, AnalyticsLayer, Event, Reporters, Source,
    bench::{EventRow, QueuedCapture},
    writer::Worker,
};
use serde::Deserialize;
use tokio::{io::DuplexStream, runtime::Runtime};
use tower::{Service, ServiceExt};

const ROUTE: &str = "/users/{id}/projects";
const EVENTS: u64 = 10_000;

/// One request's worth of state, made before the count starts and returned after it, so
/// that neither its making nor its dropping is counted.
struct Case {
    rt: Runtime,
    /// The clone the request consumes; `_router` keeps the router alive, so that the count
    /// takes in a reference count, not the router's destruction.
    app: Option<Router>,
    _router: Router,
    request: Option<Request<Body>>,
    _writer: Option<(Analytics, Worker)>,
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A writer whose worker never runs: what the request path costs up to the queue slot.
fn idle_writer() -> (Analytics, Worker) {
    Analytics::builder("http://127.0.0.1:1")
        .build_pair()
        .unwrap()
}

fn layer_request() -> Request<Body> {
    let mut request = Request::get("/users/42/projects")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(AccountId(42));
    request
}

/// A case for `app`, after one warm-up request (first-use initialisation is not counted).
/// The router is made ready to serve as `axum::serve` makes it (`with_state`), so that its
/// handlers and layers become services once, not on every request.
fn case(rt: Runtime, app: Router, writer: Option<(Analytics, Worker)>) -> Case {
    let app = app.with_state(());
    let warm = rt.block_on(app.clone().oneshot(layer_request())).unwrap();
    assert_eq!(warm.status(), 200);
    Case {
        rt,
        app: Some(app.clone()),
        _router: app,
        request: Some(layer_request()),
        _writer: writer,
    }
}

fn router() -> Router {
    Router::new().route(ROUTE, get(|| async { "projects" }))
}

fn bare() -> Case {
    case(current_thread(), router(), None)
}

fn pass_through() -> Case {
    case(
        current_thread(),
        router().layer(support::PassThroughLayer),
        None,
    )
}

fn analytics() -> Case {
    let writer = idle_writer();
    let app = router().layer(AnalyticsLayer::new(writer.0.clone()));
    case(current_thread(), app, Some(writer))
}

fn analytics_closure() -> Case {
    let writer = idle_writer();
    let layer = AnalyticsLayer::builder(writer.0.clone())
        .with_account(|parts: &http::request::Parts| {
            parts.extensions.get::<AccountId>().map(|id| id.0)
        })
        .build()
        .unwrap();
    case(current_thread(), router().layer(layer), Some(writer))
}

fn trace() -> Case {
    let app = router().layer(tower_http::trace::TraceLayer::new_for_http());
    case(current_thread(), app, None)
}

fn prometheus() -> Case {
    let rt = current_thread();
    let layer = {
        let _guard = rt.enter();
        axum_prometheus::PrometheusMetricLayer::pair().0
    };
    case(rt, router().layer(layer), None)
}

/// Calls the case's app once with its request.
fn call(mut case: Case) -> (Case, Response<Body>) {
    let (app, request) = (case.app.take().unwrap(), case.request.take().unwrap());
    let response = case.rt.block_on(app.oneshot(request)).unwrap();
    (case, response)
}

#[library_benchmark]
#[bench::bare(setup = bare)]
#[bench::pass_through(setup = pass_through)]
#[bench::analytics(setup = analytics)]
#[bench::analytics_closure(setup = analytics_closure)]
#[bench::trace(setup = trace)]
#[bench::prometheus(setup = prometheus)]
fn layer(case: Case) -> (Case, Response<Body>) {
    black_box(call(case))
}

library_benchmark_group!(name = layer_group; benchmarks = layer);

const TOKEN: &str = "bench-reporter-token";

/// The fields the reporter takes, for the bare handler.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Item {
    account_id: u64,
    event: String,
}

fn reporter_request(path: &str, events: u64) -> Request<Body> {
    let body = if events == 1 {
        r#"{"accountId": 42, "event": "search"}"#.to_owned()
    } else {
        let items: Vec<String> = (0..events)
            .map(|i| format!(r#"{{"accountId": {i}, "event": "export.finished"}}"#))
            .collect();
        format!("[{}]", items.join(","))
    };
    Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body))
        .unwrap()
}

fn reporter_case(
    app: Router,
    path: &str,
    events: u64,
    writer: Option<(Analytics, Worker)>,
) -> Case {
    let app = app.with_state(());
    let rt = current_thread();
    let warm = rt
        .block_on(app.clone().oneshot(reporter_request(path, events)))
        .unwrap();
    assert_eq!(warm.status(), 200);
    Case {
        rt,
        app: Some(app.clone()),
        _router: app,
        request: Some(reporter_request(path, events)),
        _writer: writer,
    }
}

fn bare_json() -> Router {
    Router::new()
        .route("/event", post(|Json(_): Json<Item>| async { "ok" }))
        .route("/events", post(|Json(_): Json<Vec<Item>>| async { "ok" }))
}

fn reporter_app() -> (Router, (Analytics, Worker)) {
    let writer = idle_writer();
    let reporters = Reporters::new().with("bench", TOKEN).unwrap();
    (writer.0.reporter_router(reporters), writer)
}

fn event_bare() -> Case {
    reporter_case(bare_json(), "/event", 1, None)
}

fn event_reporter() -> Case {
    let (app, writer) = reporter_app();
    reporter_case(app, "/event", 1, Some(writer))
}

fn events_bare() -> Case {
    reporter_case(bare_json(), "/events", 100, None)
}

fn events_reporter() -> Case {
    let (app, writer) = reporter_app();
    reporter_case(app, "/events", 100, Some(writer))
}

#[library_benchmark]
#[bench::event_bare(setup = event_bare)]
#[bench::event_reporter(setup = event_reporter)]
#[bench::events_bare(setup = events_bare)]
#[bench::events_reporter(setup = events_reporter)]
fn reporter(case: Case) -> (Case, Response<Body>) {
    let (case, response) = call(case);
    assert_eq!(response.status(), 200);
    black_box((case, response))
}

library_benchmark_group!(name = reporter_group; benchmarks = reporter);

/// A connection to an HTTP server in the same process, over an in-memory pipe: the server
/// reads each request's body to the end and answers `200` with no body.
#[derive(Clone)]
struct InMemory;

struct Pipe(TokioIo<DuplexStream>);

impl hyper::rt::Read for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for Pipe {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

impl Service<Uri> for InMemory {
    type Response = Pipe;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Pipe, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (client, server) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let answer =
                hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt;
                    let _ = request.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), answer)
                .await;
        });
        std::future::ready(Ok(Pipe(TokioIo::new(client))))
    }
}

/// The same columns as the writer's row, owned: what a user of the raw crate would insert.
#[derive(clickhouse::Row, serde::Serialize)]
struct RawRow {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: uuid::Uuid,
    account_id: u64,
    event_type: String,
    inserted_at: u32,
    source: String,
    method: String,
    status: u16,
    latency_us: u64,
}

struct Encoding {
    rt: Runtime,
    client: clickhouse::Client,
    events: Vec<Event>,
    raw: Vec<RawRow>,
}

fn sample_events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(i % 1_000, ROUTE)
                .unwrap()
                .with_source(Source::layer())
                .with_method(Method::GET)
                .with_status(200)
                .with_latency(std::time::Duration::from_micros(150 + i % 100))
        })
        .collect()
}

async fn insert_events(client: &clickhouse::Client, events: &[Event]) {
    let mut insert = client.insert::<EventRow<'_>>("events").await.unwrap();
    for event in events {
        insert.write(&EventRow::from(event)).await.unwrap();
    }
    insert.end().await.unwrap();
}

async fn insert_raw(client: &clickhouse::Client, rows: &[RawRow]) {
    let mut insert = client.insert::<RawRow>("events").await.unwrap();
    for row in rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();
}

fn encoding() -> Encoding {
    let rt = current_thread();
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(InMemory);
    let client = clickhouse::Client::with_http_client(http)
        .with_url("http://in-memory")
        .with_validation(false);
    let events = sample_events(EVENTS);
    let raw = events
        .iter()
        .map(|e| RawRow {
            event_id: e.event_id(),
            account_id: e.account_id(),
            event_type: e.event_type().to_owned(),
            inserted_at: e.unix_seconds(),
            source: e.source().to_owned(),
            method: e.method().to_owned(),
            status: e.status(),
            latency_us: e.latency_us(),
        })
        .collect();
    // A warm-up insert opens the pooled connection both variants then use.
    rt.block_on(insert_events(&client, &events[..10]));
    Encoding {
        rt,
        client,
        events,
        raw,
    }
}

#[library_benchmark]
#[bench::writer(setup = encoding)]
fn encode_writer(e: Encoding) -> Encoding {
    e.rt.block_on(insert_events(&e.client, &e.events));
    black_box(e)
}

#[library_benchmark]
#[bench::raw_crate(setup = encoding)]
fn encode_raw(e: Encoding) -> Encoding {
    e.rt.block_on(insert_raw(&e.client, &e.raw));
    black_box(e)
}

fn capture() -> QueuedCapture {
    // The first capture made into an event sets up the thread's clock pair and random
    // generator, as the writer's thread has long done by the time it takes a capture.
    let _ = QueuedCapture::layer(42, ROUTE, 200).into_event();
    QueuedCapture::layer(42, ROUTE, 200)
}

#[library_benchmark]
#[bench::capture_into_event(setup = capture)]
fn capture_into_event(capture: QueuedCapture) -> Event {
    black_box(capture.into_event())
}

library_benchmark_group!(
    name = writer_group;
    benchmarks = encode_writer, encode_raw, capture_into_event
);

fn append_setup() -> (Vec<Event>, Vec<u8>) {
    let events = sample_events(EVENTS);
    let mut out = Vec::new();
    idp_analytics::bench::spool_append(&events, &mut out);
    let capacity = out.len();
    (events, Vec::with_capacity(capacity))
}

fn replay_setup() -> Vec<u8> {
    let mut out = Vec::new();
    idp_analytics::bench::spool_append(&sample_events(EVENTS), &mut out);
    out
}

#[library_benchmark]
#[bench::append(setup = append_setup)]
fn spool_append((events, mut out): (Vec<Event>, Vec<u8>)) -> (Vec<Event>, Vec<u8>) {
    idp_analytics::bench::spool_append(&events, &mut out);
    black_box((events, out))
}

#[library_benchmark]
#[bench::replay(setup = replay_setup)]
fn spool_replay(segment: Vec<u8>) -> (Vec<u8>, Vec<Event>) {
    let events = idp_analytics::bench::spool_replay(&segment);
    assert_eq!(events.len() as u64, EVENTS);
    black_box((segment, events))
}

library_benchmark_group!(name = spool_group; benchmarks = spool_append, spool_replay);

main!(
    library_benchmark_groups = layer_group,
    reporter_group,
    writer_group,
    spool_group
);
