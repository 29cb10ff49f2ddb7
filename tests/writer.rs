//! The writer against a real ClickHouse server.

mod common;

use std::time::Duration;

use idp_analytics::{Analytics, Event, Source};

#[tokio::test]
async fn events_arrive_with_every_column() {
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .build()
        .unwrap();
    let event = Event::new(7, "/projects/{id}")
        .unwrap()
        .with_source(Source::layer())
        .with_method(http::Method::POST)
        .with_status(201)
        .with_latency(Duration::from_micros(1234));
    let id = event.event_id();
    let at = event.unix_seconds();
    analytics.try_record(event).unwrap();
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_eq!(report.written, 1);

    let row: (String, u64, String, u32, String, String, u16, u64) = common::client()
        .query(&format!(
            "SELECT toString(event_id), account_id, event_type, toUInt32(inserted_at), source, method, status, latency_us FROM {}",
            schema.qualified_table()
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        row,
        (
            id.to_string(),
            7,
            "/projects/{id}".into(),
            at,
            "layer".into(),
            "POST".into(),
            201,
            1234
        )
    );
}

fn events(n: u64, event_type: &str) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new(i % 97, event_type).unwrap().with_status(200))
        .collect()
}

#[tokio::test]
async fn writer_100k_events_arrive_exactly_once() {
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_queue_capacity(100_000)
        .with_max_rows(10_000)
        .build()
        .unwrap();
    for event in events(100_000, "search") {
        analytics.try_record(event).unwrap();
    }
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty());
    let stats = analytics.stats();
    assert_eq!(stats.written, 100_000);
    assert_eq!(stats.pending, 0);
    assert!(stats.batches >= 10, "{stats:?}");
    assert_eq!(common::counts(&schema).await, (100_000, 100_000));
    assert_eq!(common::raw_count(&schema).await, 100_000);
}

#[tokio::test]
async fn writer_full_queue_drops_and_counts_without_blocking() {
    let schema = prepare_database!().await;
    let proxy = common::proxy::Proxy::start(&common::url()).await;
    proxy.set(common::proxy::Mode::Down);
    let analytics = Analytics::builder(proxy.url())
        .with_schema(schema.clone())
        .with_queue_capacity(1_000)
        .with_max_rows(100)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    let mut taken = 0;
    let mut refused = 0;
    for event in events(20_000, "search") {
        match analytics.try_record(event) {
            Ok(()) => taken += 1,
            Err(idp_analytics::Rejected::QueueFull) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    // 20 000 calls with ClickHouse away: none of them waited for it.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let stats = analytics.stats();
    // The worker holds at most one batch besides the full queue: memory is bounded.
    assert!(taken <= 1_000 + 100, "taken {taken}");
    assert!(taken >= 1_000);
    assert_eq!(stats.enqueued, taken);
    assert_eq!(stats.dropped_queue_full, refused);
    assert_eq!(taken + refused, 20_000);
    assert!(stats.pending <= 1_100);

    // Everything that was taken arrives once ClickHouse is back.
    proxy.set(common::proxy::Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_eq!(common::counts(&schema).await, (taken, taken));
}

#[tokio::test]
async fn writer_outage_loses_nothing_and_duplicates_nothing() {
    use common::proxy::{Mode, Proxy};
    let schema = prepare_database!().await;
    let proxy = Proxy::start(&common::url()).await;
    let analytics = Analytics::builder(proxy.url())
        .with_schema(schema.clone())
        .with_max_rows(200)
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_receive_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut accepted = 0u64;
    let mut send = |n| {
        for event in events(n, "search") {
            analytics.try_record(event).unwrap();
            accepted += 1;
        }
    };

    send(500);
    let up = common::eventually(Duration::from_secs(20), || async {
        analytics.stats().written == 500
    })
    .await;
    assert!(up, "{:?}", analytics.stats());

    // Refused, then reset mid-way, then black-holed: each for a while, events keep coming.
    for mode in [Mode::Down, Mode::Reset, Mode::BlackHole] {
        proxy.set(mode);
        for _ in 0..5 {
            send(200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let during = analytics.stats();
    assert!(during.retried_batches > 0, "{during:?}");
    assert!(during.pending > 0, "{during:?}");

    proxy.set(Mode::Forward);
    send(300);
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty());
    let stats = analytics.stats();
    assert_eq!(stats.written, accepted);
    assert_eq!(stats.dropped_queue_full, 0);
    assert_eq!(common::counts(&schema).await, (accepted, accepted));
}

#[tokio::test]
async fn writer_http_errors_are_retried() {
    use common::proxy::{Mode, Proxy};
    let schema = prepare_database!().await;
    let proxy = Proxy::start(&common::url()).await;
    let analytics = Analytics::builder(proxy.url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    // The table is made through the proxy before the failures start.
    analytics.try_record(Event::new(1, "a").unwrap()).unwrap();
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            analytics.stats().written == 1
        })
        .await
    );
    proxy.set(Mode::Http500(2));
    for event in events(50, "b") {
        analytics.try_record(event).unwrap();
    }
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    let stats = analytics.stats();
    assert_eq!(proxy.failures_left(), 0);
    // Both 500s were retried (and, when the pooled connection was cut as the failures
    // began, that attempt too).
    assert!((2..=3).contains(&stats.retried_batches), "{stats:?}");
    assert_eq!(stats.written, 51);
    assert_eq!(common::counts(&schema).await, (51, 51));
}

#[tokio::test]
async fn writer_dead_letters_bad_data_and_goes_on() {
    let schema = prepare_database!().await;
    let dir = std::env::temp_dir().join(format!("idp-dead-letter-{}", uuid::Uuid::new_v4()));
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(50))
        .with_dead_letter_dir(&dir)
        .build()
        .unwrap();
    let wait_for = |written: u64, dead: u64| {
        let analytics = analytics.clone();
        async move {
            common::eventually(Duration::from_secs(20), || async {
                let s = analytics.stats();
                s.written == written && s.dead_lettered == dead
            })
            .await
        }
    };
    analytics
        .try_record(Event::new(1, "before").unwrap())
        .unwrap();
    assert!(wait_for(1, 0).await, "{:?}", analytics.stats());

    // The table's `status` column no longer takes what the writer sends.
    let alter = |ty: &str| {
        format!(
            "ALTER TABLE {} MODIFY COLUMN status {ty}",
            schema.qualified_table()
        )
    };
    common::client()
        .query(&alter("String"))
        .execute()
        .await
        .unwrap();
    let bad = Event::new(2, "refused").unwrap().with_status(200);
    let bad_id = bad.event_id();
    analytics.try_record(bad).unwrap();
    assert!(wait_for(1, 1).await, "{:?}", analytics.stats());

    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["eventId"], bad_id.to_string());
    assert_eq!(line["accountId"], 2);
    assert_eq!(line["eventType"], "refused");

    // Fixed: the next batch goes.
    common::client()
        .query(&alter("UInt16"))
        .execute()
        .await
        .unwrap();
    analytics
        .try_record(Event::new(3, "after").unwrap())
        .unwrap();
    assert!(wait_for(2, 1).await, "{:?}", analytics.stats());
    let types: Vec<String> = common::client()
        .query(&format!(
            "SELECT event_type FROM {} ORDER BY account_id",
            schema.qualified_table()
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(types, ["before", "after"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn writer_shutdown_writes_every_pending_event() {
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        // Nothing would be written for a minute but for the shutdown.
        .with_flush_interval(Duration::from_secs(60))
        .with_max_rows(100_000)
        .build()
        .unwrap();
    for event in events(10_000, "search") {
        analytics.try_record(event).unwrap();
    }
    assert_eq!(analytics.stats().pending, 10_000);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_eq!(report.written, 10_000);
    assert_eq!(common::counts(&schema).await, (10_000, 10_000));
    // Closed now: further events are refused and counted.
    assert_eq!(
        analytics.try_record(Event::new(1, "late").unwrap()),
        Err(idp_analytics::Rejected::Closed)
    );
    assert_eq!(analytics.stats().dropped_closed, 1);
}

#[tokio::test]
async fn writer_shutdown_deadline_returns_what_it_could_not_write() {
    let schema = prepare_database!().await;
    let proxy = common::proxy::Proxy::start(&common::url()).await;
    proxy.set(common::proxy::Mode::Down);
    let analytics = Analytics::builder(proxy.url())
        .with_schema(schema)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    let sent = events(300, "search");
    let ids: std::collections::HashSet<_> = sent.iter().map(Event::event_id).collect();
    analytics.try_record_all(sent).unwrap();
    let start = std::time::Instant::now();
    let report = analytics.shutdown(Duration::from_millis(500)).await;
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(report.written, 0);
    let back: std::collections::HashSet<_> = report.unwritten.iter().map(Event::event_id).collect();
    assert_eq!(back, ids);
    assert_eq!(analytics.stats().unwritten_at_shutdown, 300);
    assert_eq!(analytics.stats().pending, 0);
}

#[tokio::test]
async fn writer_recreates_a_dropped_table_and_keeps_the_events() {
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    analytics.try_record(Event::new(1, "a").unwrap()).unwrap();
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            analytics.stats().written == 1
        })
        .await
    );
    common::client()
        .query(&format!("DROP TABLE {}", schema.qualified_table()))
        .execute()
        .await
        .unwrap();
    for event in events(20, "b") {
        analytics.try_record(event).unwrap();
    }
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert!(analytics.stats().retried_batches >= 1);
    assert_eq!(common::counts(&schema).await, (20, 20));
}

#[tokio::test]
async fn writer_pauses_on_a_table_with_the_wrong_columns() {
    let schema = prepare_database!().await;
    common::client()
        .query(&format!(
            "CREATE TABLE {} (event_id UUID, account_id UInt64, event_type String, inserted_at DateTime, \
             source String, method String, status String, latency_us UInt64) ENGINE = MergeTree ORDER BY account_id",
            schema.qualified_table()
        ))
        .execute()
        .await
        .unwrap();
    let err = schema.check_columns(&common::client()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("column `status` has type String, expected UInt16"),
        "{err}"
    );

    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    analytics
        .try_record(Event::new(1, "kept").unwrap())
        .unwrap();
    assert!(common::eventually(Duration::from_secs(20), || async { analytics.is_paused() }).await);
    assert_eq!(common::raw_count(&schema).await, 0);
    // The event was kept, not dropped.
    let report = analytics.shutdown(Duration::from_millis(300)).await;
    assert_eq!(report.unwritten.len(), 1);
    assert_eq!(report.unwritten[0].event_type(), "kept");
}

#[tokio::test]
async fn writer_reads_the_server_version() {
    common::require_clickhouse().await;
    let version = idp_analytics::schema::Schema::server_version(&common::client())
        .await
        .unwrap();
    assert!(
        version >= idp_analytics::schema::OLDEST_SUPPORTED,
        "{version}"
    );
}
