//! The reporter endpoint: services that are not behind the layer report usage over REST.
//!
//! `POST /event` takes one event, `POST /events` a JSON array of them:
//!
//! ```text
//! curl localhost:3000/event -H 'content-type: application/json' \
//!     -H 'authorization: Bearer <token>' --data '{"accountId": 1, "event": "search"}'
//! {"message":"success"}
//! ```
//!
//! | field | | |
//! | --- | --- | --- |
//! | `accountId` | required | a whole number from 0 to 2⁶⁴−1 |
//! | `event` | required | a string of 1 to 128 bytes without control characters, stored verbatim |
//! | `timestamp` | optional | an RFC 3339 date-time or Unix seconds; at most [`MAX_CLOCK_SKEW`] ahead and, by default, 7 days old |
//! | `eventId` | optional | a UUID, any version; an event sent again with the same `eventId` is still one row (see below) |
//!
//! `GET /openapi.json` (feature `openapi`, on by default) answers the endpoint's OpenAPI 3.1
//! document, with this reporter's limits ([`Reporter::openapi_json`]).
//!
//! Each reporter sends its own bearer token ([`Reporters`]); its name goes into the events'
//! `source` column. A batch is taken whole or not at all.
//!
//! # Sent again, one row
//!
//! A reporter that is not sure its event arrived (a timeout, a lost answer) sends it again
//! with the same `eventId`, any UUID: Python's `uuid.uuid4()`, JavaScript's
//! `crypto.randomUUID()`, Java's `UUID.randomUUID()`, a v7. The event is then one row of the
//! events table (read with `FINAL`, or after the next merge) and one event in every
//! [`Usage`](crate::Usage) answer:
//!
//! - always, when it is sent again with the same `timestamp`, or when its `eventId` carries
//!   its time (UUID v1, v6, v7) and it has no `timestamp`: every copy has the same key
//!   ([`EVENTS_KEY`](crate::schema::EVENTS_KEY));
//! - when its `eventId` carries no time (v4, v3, v5, v8) and it has no `timestamp`: if it
//!   is sent again within the resend window (7 days by default,
//!   [`with_resend_window`](ReporterBuilder::with_resend_window)) of its first report. The
//!   resend is given the first report's time, found in this process's memory of the ids it
//!   took (the last [`RECENT_IDS`], covering events still queued) or else in the events
//!   table. The gaps: a resend is a second row when it reaches *another* process (a second
//!   instance of the app) before the first copy was written (within the writer's flush
//!   interval, or longer while ClickHouse is away), or when this process took more than
//!   [`RECENT_IDS`] other such ids since the first copy and that copy is still unwritten.
//!   When ClickHouse cannot be asked, such a request is answered
//!   `503` rather than risk a second row; the same event with a `timestamp` is taken.
//!
//! An `eventId` belongs to the reporter that sent it: `source` is part of the key, so a
//! reporter that sends another reporter's `eventId` stores a row of its own and never
//! replaces the other's. A resend takes the first report's time; its other fields are
//! stored as sent.
//!
//! # Answers
//!
//! Every body is JSON with a `message`. Nothing is recorded unless the answer is `200`.
//!
//! | status | when |
//! | --- | --- |
//! | `200` | the writer took the events (or, with [`with_confirm_writes`](ReporterBuilder::with_confirm_writes), ClickHouse acknowledged them) |
//! | `400` | the body is not JSON (truncated, invalid UTF-8, nested too deeply) or could not be read |
//! | `401` | a missing, malformed or unknown bearer token; `WWW-Authenticate: Bearer`, the same body every time |
//! | `404` | a path other than `/event` and `/events` (only for [`Reporter::service`]) |
//! | `405` | a method other than `POST`; `Allow: POST` |
//! | `413` | a body over the limit (64 KiB for `/event`, 1 MiB for `/events`), refused without reading it all; with `Content-Encoding: gzip`, the limit holds for the compressed body and for the decompressed one, which is never decompressed past it |
//! | `415` | a content type other than `application/json`, or a content encoding other than `gzip` and `identity` |
//! | `422` | invalid fields, naming each; for `/events` an `errors` list gives each bad item's `index` and `message`; an empty batch or one of more than 1 000 events |
//! | `500` | with `with_confirm_writes`: the events could not be written (`database error`) |
//! | `503` | the writer's queue is full, or the writer is paused or shutting down, or an `eventId` without a time could not be looked up; `Retry-After` says when to try again |
//!
//! # Use
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use idp_analytics::{Analytics, reporter::{Reporter, Reporters}};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The worker is not started here, so nothing is written: the event waits in the queue.
//! let (analytics, _worker) = Analytics::builder("http://127.0.0.1:8123").build_pair()?;
//! let reporters = Reporters::new().with("billing", "b1ll1ng-s3cret")?;
//! let reporter = Reporter::new(analytics.clone(), reporters);
//!
//! let request = http::Request::post("/event")
//!     .header("content-type", "application/json")
//!     .header("authorization", "Bearer b1ll1ng-s3cret")
//!     .body(Full::new(Bytes::from(r#"{"accountId": 1, "event": "search"}"#)))?;
//! let response = reporter.service().oneshot(request).await?;
//!
//! assert_eq!(response.status(), 200);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, r#"{"message":"success"}"#);
//! assert_eq!(analytics.stats().enqueued, 1);
//! # Ok(())
//! # }
//! ```
//!
//! In an axum app (feature `axum`, on by default), merge or nest the router:
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use idp_analytics::{Analytics, reporter::Reporters};
//!
//! let analytics = Analytics::builder("http://127.0.0.1:8123").build()?;
//! let app = axum::Router::new()
//!     // POST /event and POST /events; `.nest("/analytics", ...)` works too.
//!     .merge(analytics.reporter_router(Reporters::from_env()?));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! With hyper alone, serve [`Reporter::service`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hyper::server::conn::http1;
//! use hyper_util::{rt::TokioIo, service::TowerToHyperService};
//! use idp_analytics::{Analytics, reporter::{Reporter, Reporters}};
//!
//! let analytics = Analytics::builder("http://127.0.0.1:8123").build()?;
//! let reporter = Reporter::new(analytics, Reporters::from_env()?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let service = TowerToHyperService::new(reporter.service());
//!     tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
//! }
//! # }
//! ```

mod auth;
mod config;
mod decode;
#[cfg(feature = "openapi")]
mod openapi;
mod resend;
mod response;
#[cfg(feature = "axum")]
mod router;
mod service;
mod validate;

pub use auth::{REPORTERS_ENV, Reporters};
pub use config::{MAX_CLOCK_SKEW, Reporter, ReporterBuilder};
pub use resend::RECENT_IDS;
pub use response::ResponseBody;
pub use service::{ReporterService, ResponseFuture};
