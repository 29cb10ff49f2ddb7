//! Per-account usage analytics for Rust SaaS backends, stored in ClickHouse.
//!
//! Know each customer account's usage, and be told as soon as an account goes quiet.
//!
//! - [`AnalyticsLayer`]: a tower layer that records each request of an account as an
//!   event named after the route it matched (`/projects/{id}`), with its method, status and
//!   latency, without ever slowing or failing the request.
//! - [`Analytics`]: a cheap handle to an async, batching ClickHouse writer with a bounded
//!   queue, retries that never duplicate, and a flush on shutdown.
//! - [`Event`]: one usage event of one account, validated when it is made.
//! - [`Connection`]: one ClickHouse connection (URLs, user, password, TLS roots, timeouts)
//!   that the writer, [`Usage`], the watch and the admin router all make their clients from;
//!   `https://` through rustls.
//! - [`reporter`]: `POST /event` and `POST /events` for services that report usage over REST,
//!   each with its own bearer token; an axum router or a tower service.
//! - [`schema`]: the events table, the per-account daily rollup that feeds usage queries,
//!   their DDL and the server version checks.
//! - [`Usage`]: typed usage per account and across accounts, from the rollup (or the raw
//!   table), exact even while retried inserts have left duplicate rows.
//! - [`InactivityWatch`]: be told once when an account goes quiet (and when it comes back),
//!   through a closure or a [`WebhookNotifier`], across restarts and instances.
//! - [`admin`] (feature `axum`): a guarded, read-only router with JSON endpoints and an HTML
//!   dashboard.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use idp_analytics::{Analytics, Event};
//!
//! #[tokio::main]
//! async fn main() -> idp_analytics::Result<()> {
//!     // Creates `idp`.`events` if it is absent; nothing here waits for ClickHouse.
//!     let analytics = Analytics::builder("http://127.0.0.1:8123").build()?;
//!
//!     // Never waits: a full queue is counted and the call returns at once.
//!     analytics.try_record(Event::new(1, "search")?)?;
//!
//!     // Writes what is queued before the process exits.
//!     analytics.shutdown(Duration::from_secs(10)).await;
//!     Ok(())
//! }
//! ```
//!
//! # Recording requests
//!
//! Add [`AnalyticsLayer`] to the router, and each request by an authenticated account is an
//! event. The account comes from the [`AccountId`] an authentication middleware puts in the
//! request extensions (or any [`ExtractAccount`]: see [`account`]); the event type is the
//! route the request matched (see [`route`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, extract::Request, middleware::{self, Next}, response::Response, routing::get};
//! use idp_analytics::{AccountId, Analytics, AnalyticsLayer};
//!
//! async fn authenticate(mut request: Request, next: Next) -> Response {
//!     // Whatever the application does to know the caller.
//!     request.extensions_mut().insert(AccountId(42));
//!     next.run(request).await
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let analytics = Analytics::builder("http://127.0.0.1:8123").build()?;
//!     let app = Router::new()
//!         .route("/projects/{id}", get(|| async { "project" }))
//!         // Layers added later run first: authentication, then analytics.
//!         .layer(AnalyticsLayer::new(analytics.clone()))
//!         .layer(middleware::from_fn(authenticate));
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     // No header-read timeout, no request timeout, no connection cap: on a public port,
//!     // serve as `examples/axum.rs` does.
//!     axum::serve(listener, app).await?;
//!     analytics.shutdown(Duration::from_secs(10)).await;
//!     Ok(())
//! }
//! ```
//!
//! # Features
//!
//! - `axum` (default): names events after axum's `MatchedPath`. Without it the crate does
//!   not depend on axum, and events are named by a [`RouteName`] extension or a closure.
//! - `rustls` (default): `https://` URLs, through rustls with the platform's root
//!   certificates, `SSL_CERT_FILE` and any CA added to the [`Connection`]. Without it an
//!   `https://` URL is refused when a connection is built.
//! - `metrics`: the writer's counters, gauges and insert latency through the `metrics`
//!   facade, for any exporter (see [`writer`]'s metrics table).

pub mod account;
#[cfg(feature = "axum")]
pub mod admin;
#[doc(hidden)]
pub mod bench;
pub mod canary;
mod clock;
pub mod connection;
pub mod error;
pub mod event;
mod future;
mod layer;
pub mod reporter;
pub mod route;
pub mod schema;
mod service;
mod text;
mod time;
pub mod usage;
pub mod writer;

/// The ClickHouse client crate, whose `Client` [`Usage::new`] takes.
pub use clickhouse;

pub use account::{AccountId, ExtractAccount};
#[cfg(feature = "axum")]
pub use admin::Admin;
pub use canary::{
    CheckReport, InactivityWatch, Notification, NotificationKind, Notifier, WatchHandle,
    WebhookNotifier,
};
pub use connection::{Connection, ConnectionBuilder};
pub use error::{BoxError, Error, InvalidEvent, Rejected, Result};
pub use event::{Event, Source};
pub use future::ResponseFuture;
pub use layer::{AnalyticsLayer, AnalyticsLayerBuilder};
pub use reporter::{Reporter, ReporterBuilder, ReporterService, Reporters};
pub use route::{NameEvent, RouteName, SkipRequest};
pub use service::AnalyticsService;
pub use usage::{
    AccountActivity, AccountDays, AccountUsage, ActiveAccounts, Day, DayCount, Days,
    EventTypeCount, InactiveAccount, KnownAccount, KnownAccounts, Period, ReadFrom, Usage,
};
pub use writer::{Analytics, Stats};
