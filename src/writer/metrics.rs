//! The writer's counters and gauges, published through the `metrics` facade (feature
//! `metrics`).
//!
//! The table of names is in the [writer's docs](super).

use std::time::Duration;

use super::PauseReason;
#[cfg(feature = "metrics")]
use super::Stats;

/// How often the worker publishes counters and gauges.
#[cfg(feature = "metrics")]
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The writer's metric handles; nothing without the `metrics` feature.
#[derive(Debug)]
pub(crate) struct Metrics {
    #[cfg(feature = "metrics")]
    table: String,
}

impl Metrics {
    #[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
    pub(crate) fn new(table: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            describe();
            Self {
                table: table.to_owned(),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = table;
            Self {}
        }
    }

    /// Records the time an acknowledged insert took.
    pub(crate) fn insert_took(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("idp_analytics_insert_duration_seconds", "table" => self.table.clone())
            .record(took.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = (self, took);
    }

    /// Counts a pause (or a change of its reason).
    pub(crate) fn paused(&self, reason: PauseReason) {
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "idp_analytics_pauses_total",
            "table" => self.table.clone(),
            "reason" => reason.as_str()
        )
        .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = (self, reason);
    }

    /// Publishes a snapshot of the counters and gauges.
    #[cfg(feature = "metrics")]
    pub(crate) fn publish(&self, stats: &Stats) {
        let table = || self.table.clone();
        let counter = |name: &'static str, value: u64| {
            metrics::counter!(name, "table" => table()).absolute(value);
        };
        counter("idp_analytics_events_enqueued_total", stats.enqueued);
        counter("idp_analytics_events_written_total", stats.written);
        counter(
            "idp_analytics_events_dead_lettered_total",
            stats.dead_lettered,
        );
        counter("idp_analytics_inserts_total", stats.batches);
        counter("idp_analytics_insert_retries_total", stats.retried_batches);
        for (reason, value) in [
            ("queue_full", stats.dropped_queue_full),
            ("spool_full", stats.dropped_spool_full),
            ("closed", stats.dropped_closed),
            ("invalid", stats.dropped_invalid),
        ] {
            metrics::counter!("idp_analytics_events_dropped_total", "table" => table(), "reason" => reason)
                .absolute(value);
        }
        let gauge = |name: &'static str, value: f64| {
            metrics::gauge!(name, "table" => table()).set(value);
        };
        gauge(
            "idp_analytics_paused",
            f64::from(u8::from(stats.paused.is_some())),
        );
        gauge("idp_analytics_queue_events", stats.queued as f64);
        gauge("idp_analytics_pending_events", stats.pending as f64);
        gauge("idp_analytics_spool_bytes", stats.spooled_bytes as f64);
    }
}

#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        describe_counter!(
            "idp_analytics_events_enqueued_total",
            Unit::Count,
            "Events taken into the analytics queue"
        );
        describe_counter!(
            "idp_analytics_events_written_total",
            Unit::Count,
            "Events ClickHouse acknowledged"
        );
        describe_counter!(
            "idp_analytics_events_dropped_total",
            Unit::Count,
            "Events refused, by reason"
        );
        describe_counter!(
            "idp_analytics_events_dead_lettered_total",
            Unit::Count,
            "Events ClickHouse refused as bad data"
        );
        describe_counter!(
            "idp_analytics_inserts_total",
            Unit::Count,
            "Inserts ClickHouse acknowledged"
        );
        describe_counter!(
            "idp_analytics_insert_retries_total",
            Unit::Count,
            "Insert attempts that failed and were tried again"
        );
        describe_counter!(
            "idp_analytics_pauses_total",
            Unit::Count,
            "Times the writer paused, by reason"
        );
        describe_gauge!(
            "idp_analytics_paused",
            "1 while the analytics writer is paused"
        );
        describe_gauge!(
            "idp_analytics_queue_events",
            Unit::Count,
            "Events in the in-memory queue"
        );
        describe_gauge!(
            "idp_analytics_pending_events",
            Unit::Count,
            "Events taken and not yet written"
        );
        describe_gauge!(
            "idp_analytics_spool_bytes",
            Unit::Bytes,
            "Bytes of spool segment files"
        );
        describe_histogram!(
            "idp_analytics_insert_duration_seconds",
            Unit::Seconds,
            "Time from sending an insert to its acknowledgement"
        );
    });
}
