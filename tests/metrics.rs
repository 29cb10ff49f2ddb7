//! The writer's metrics, read back through a recorder (feature `metrics`), against the real
//! server. One test: a recorder is global to the process.
#![cfg(feature = "metrics")]

mod common;

use std::time::Duration;

use idp_analytics::{Analytics, Event};
use metrics_util::{
    CompositeKey,
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
};

/// What the recorder has seen. Its snapshots hand out counters as what was added since the
/// last one (so increments are summed here) and gauges as the value set since the last one
/// (0 if none was), so gauges are read from the latest snapshot only.
struct Seen {
    snapshotter: Snapshotter,
    series: Vec<(CompositeKey, DebugValue)>,
}

impl Seen {
    fn refresh(&mut self) -> &Self {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            match self.series.iter_mut().find(|(k, _)| *k == key) {
                None => self.series.push((key, value)),
                Some((_, old)) => match (old, value) {
                    (DebugValue::Counter(old), DebugValue::Counter(new)) => *old += new,
                    (old, new) => *old = new,
                },
            }
        }
        self
    }

    /// The value of the series `name` with the label `table` (and `extra`, if given).
    fn value(&self, name: &str, table: &str, extra: Option<(&str, &str)>) -> Option<&DebugValue> {
        let matches = |key: &CompositeKey| {
            let key = key.key();
            let has = |k: &str, v: &str| key.labels().any(|l| l.key() == k && l.value() == v);
            key.name() == name && has("table", table) && extra.is_none_or(|(k, v)| has(k, v))
        };
        self.series
            .iter()
            .find(|(key, _)| matches(key))
            .map(|(_, value)| value)
    }

    fn counter(&self, name: &str, table: &str, extra: Option<(&str, &str)>) -> u64 {
        match self.value(name, table, extra) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, table: &str) -> f64 {
        match self.value(name, table, None) {
            Some(DebugValue::Gauge(g)) => g.0,
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_writer_publishes_prometheus_style_metrics() {
    let recorder = DebuggingRecorder::new();
    let mut seen = Seen {
        snapshotter: recorder.snapshotter(),
        series: Vec::new(),
    };
    recorder.install().unwrap();

    // Five events fit the queue, three do not; then the worker writes the five.
    let schema = prepare_database!().await;
    let table = schema.qualified_table();
    let (analytics, worker) = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_queue_capacity(5)
        .build_pair()
        .unwrap();
    for i in 0..8 {
        let _ = analytics.try_record(Event::new(i, "search").unwrap());
    }
    let _ = analytics.record(1, "");
    let running = tokio::spawn(worker.run());
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    running.await.unwrap();

    let seen_now = seen.refresh();
    let c = |name: &str| seen_now.counter(name, &table, None);
    assert_eq!(c("idp_analytics_events_enqueued_total"), 5);
    assert_eq!(c("idp_analytics_events_written_total"), 5);
    assert_eq!(c("idp_analytics_events_dead_lettered_total"), 0);
    assert_eq!(c("idp_analytics_inserts_total"), 1);
    assert_eq!(c("idp_analytics_insert_retries_total"), 0);
    let dropped = |reason| {
        seen_now.counter(
            "idp_analytics_events_dropped_total",
            &table,
            Some(("reason", reason)),
        )
    };
    assert_eq!(dropped("queue_full"), 3);
    assert_eq!(dropped("invalid"), 1);
    assert_eq!(dropped("spool_full"), 0);
    assert_eq!(dropped("closed"), 0);
    assert_eq!(seen_now.gauge("idp_analytics_queue_events", &table), 0.0);
    assert_eq!(seen_now.gauge("idp_analytics_pending_events", &table), 0.0);
    assert_eq!(seen_now.gauge("idp_analytics_paused", &table), 0.0);
    assert_eq!(seen_now.gauge("idp_analytics_spool_bytes", &table), 0.0);
    match seen_now.value("idp_analytics_insert_duration_seconds", &table, None) {
        Some(DebugValue::Histogram(seconds)) => {
            assert_eq!(seconds.len(), 1);
            assert!(seconds[0].0 > 0.0 && seconds[0].0 < 30.0, "{seconds:?}");
        }
        other => panic!("histogram: {other:?}"),
    }

    // A wrong password: paused, counted once by reason, the gauge says so.
    let schema = common::database("metrics_paused".into()).await;
    let table = schema.qualified_table();
    let analytics = Analytics::builder(common::url())
        .with_user("idp_test")
        .with_password("not-the-password")
        .with_schema(schema)
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .unwrap();
    analytics.try_record(Event::new(1, "x").unwrap()).unwrap();
    // One publish (once a second) shows the writer paused with the event pending.
    let mut published = false;
    for _ in 0..200 {
        let now = seen.refresh();
        let gauge = |name| match now.value(name, &table, None) {
            Some(DebugValue::Gauge(g)) => g.0,
            _ => -1.0,
        };
        if gauge("idp_analytics_paused") == 1.0 && gauge("idp_analytics_pending_events") == 1.0 {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "{:?}", analytics.stats());
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            analytics.stats().retried_batches >= 3
        })
        .await
    );
    let pauses = seen.refresh().counter(
        "idp_analytics_pauses_total",
        &table,
        Some(("reason", "authentication")),
    );
    assert_eq!(pauses, 1);
    analytics.shutdown(Duration::from_millis(200)).await;
}
