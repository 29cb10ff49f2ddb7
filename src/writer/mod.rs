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
//! - sends to one server of its list at a time ([`with_urls`](Builder::with_urls), or the
//!   connection's URLs) and goes on to the next with the same batch when one fails; on a
//!   cluster ([`Topology::Cluster`](crate::schema::Topology)) it inserts through the
//!   `Distributed` table with `insert_distributed_sync = 1`, so a batch is acknowledged once
//!   every shard has its rows, and a retried batch is dropped by each shard as an identical
//!   block; a replica gone read-only (ZooKeeper away, code 242) and a shard none of whose
//!   replicas can be reached (codes 279 and 32) are retried without a pause;
//! - sets batches ClickHouse refuses as bad data (by a known error code) aside in a
//!   dead-letter file, and pauses on every other error it cannot retry past: credentials,
//!   the table, TLS, an answer that is not ClickHouse's, an unknown code. A paused writer
//!   keeps its events (and its spool), says why in [`Stats::paused`] and the log, and tries
//!   again with backoff.
//!
//! # Metrics
//!
//! With the feature `metrics`, the writer publishes through the
//! [`metrics`](https://docs.rs/metrics) facade, for whatever exporter the application
//! installs (Prometheus, OpenTelemetry):
//!
//! | name | kind | what |
//! |---|---|---|
//! | `idp_analytics_events_enqueued_total` | counter | events taken into the queue |
//! | `idp_analytics_events_written_total` | counter | events ClickHouse acknowledged |
//! | `idp_analytics_events_dropped_total{reason}` | counter | events refused: `queue_full`, `spool_full`, `closed`, `invalid` |
//! | `idp_analytics_events_dead_lettered_total` | counter | events refused by ClickHouse as bad data |
//! | `idp_analytics_inserts_total` | counter | inserts ClickHouse acknowledged |
//! | `idp_analytics_insert_retries_total` | counter | insert attempts that failed and were tried again |
//! | `idp_analytics_pauses_total{reason}` | counter | times the writer paused, by [`PauseReason::as_str`] |
//! | `idp_analytics_paused` | gauge | 1 while the writer is paused, else 0 |
//! | `idp_analytics_queue_events` | gauge | events in the in-memory queue |
//! | `idp_analytics_pending_events` | gauge | events taken and not yet written (queue, spool, batch) |
//! | `idp_analytics_spool_bytes` | gauge | bytes of spool segment files |
//! | `idp_analytics_insert_duration_seconds` | histogram | time from sending an insert to its acknowledgement |
//!
//! Every series has a `table` label (`database.table`). Counters and gauges are published by
//! the worker once a second and when it stops, so the request path pays nothing for them;
//! the histogram and the pause counter are recorded as they happen.
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
mod metrics;
mod pause;
mod private;
mod rest;
mod sink;
pub(crate) mod spool;
mod stats;
mod worker;

pub use config::Builder;
pub use handle::{Analytics, Confirmation, ShutdownReport, WriteFailed};
pub use pause::PauseReason;
pub use rest::MAX_BATCH;
#[doc(hidden)]
pub use sink::EventRow;
pub use spool::Fsync;
pub use stats::Stats;
pub use worker::Worker;
