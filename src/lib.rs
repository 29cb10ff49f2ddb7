//! Per-account usage analytics for Rust SaaS backends, stored in ClickHouse.
//!
//! Know each customer account's usage, and be told as soon as an account goes quiet.
//!
//! - [`Analytics`]: a cheap handle to an async, batching ClickHouse writer with a bounded
//!   queue, retries that never duplicate, and a flush on shutdown.
//! - [`Event`]: one usage event of one account, validated when it is made.
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

#[cfg(feature = "axum")]
pub mod admin;
pub mod canary;
pub mod error;
pub mod event;
pub mod schema;
pub mod usage;
pub mod writer;

/// The ClickHouse client crate, whose `Client` [`Usage::new`] takes.
pub use clickhouse;

#[cfg(feature = "axum")]
pub use admin::Admin;
pub use canary::{
    CheckReport, InactivityWatch, Notification, NotificationKind, Notifier, WatchHandle,
    WebhookNotifier,
};
pub use error::{BoxError, Error, InvalidEvent, Rejected, Result};
pub use event::{Event, Source};
pub use usage::{
    AccountActivity, AccountDays, AccountUsage, ActiveAccounts, Day, DayCount, Days,
    EventTypeCount, InactiveAccount, KnownAccount, KnownAccounts, Period, ReadFrom, Usage,
};
pub use writer::{Analytics, Stats};
