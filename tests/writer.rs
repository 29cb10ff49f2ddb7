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
