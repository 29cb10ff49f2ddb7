//! The writer: a bounded in-memory queue and a background worker that batches events into
//! ClickHouse and loses none of them to a transient failure.
//!
//! [`Analytics`] is the handle: cheap to clone, and [`try_record`](Analytics::try_record)
//! never waits. The [`Worker`] behind it
//!
//! - reads the server version once, creates the database and table if they are absent and
//!   checks their columns (retrying in the background until ClickHouse answers);
//! - collects events into batches by rows, bytes and time
//!   ([`with_max_rows`](Builder::with_max_rows), [`with_max_bytes`](Builder::with_max_bytes),
//!   [`with_flush_interval`](Builder::with_flush_interval)) and inserts them in RowBinary;
//! - keeps each batch until ClickHouse acknowledges it, retrying connection errors,
//!   timeouts and server errors with exponential backoff and jitter. A retried batch carries
//!   the same `event_id`s (and, from ClickHouse 22.2 on, the same
//!   `insert_deduplication_token`), so no duplicate is visible;
//! - sets batches ClickHouse refuses as bad data aside in a dead-letter file, and pauses
//!   (keeping the events) on authentication and missing-table errors.
//!
//! ```no_run
//! use std::time::Duration;
//! use idp_analytics::{Analytics, Event};
//!
//! # async fn run() -> idp_analytics::Result<()> {
//! let analytics = Analytics::builder("http://127.0.0.1:8123")
//!     .with_flush_interval(Duration::from_millis(500))
//!     .build()?;
//!
//! analytics.try_record(Event::new(42, "search")?)?;
//!
//! let report = analytics.shutdown(Duration::from_secs(10)).await;
//! assert!(report.unwritten.is_empty());
//! # Ok(())
//! # }
//! ```

mod collector;
mod config;
mod handle;
mod rest;
mod sink;
pub(crate) mod spool;
mod stats;
mod worker;

pub use config::Builder;
pub use handle::{Analytics, Confirmation, ShutdownReport, WriteFailed};
pub use rest::MAX_BATCH;
#[doc(hidden)]
pub use sink::EventRow;
pub use spool::Fsync;
pub use stats::Stats;
pub use worker::Worker;
