//! Writes a few events through the writer, then reads them back per account.
//!
//! ```sh
//! scripts/clickhouse && cargo run --example writer
//! ```

use std::time::Duration;

use idp_analytics::{Analytics, Event, Source, schema::Schema};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let database = std::env::var("IDP_ANALYTICS_DATABASE").unwrap_or_else(|_| "idp".into());
    let schema = Schema::new(database, "events")?;
    let analytics = Analytics::builder(&url)
        .with_schema(schema.clone())
        .build()?;

    let source = Source::new("writer-example")?;
    for (account, event_type) in [(1, "search"), (1, "search"), (1, "export"), (2, "login")] {
        analytics.try_record(Event::new(account, event_type)?.with_source(source.clone()))?;
    }
    let report = analytics.shutdown(Duration::from_secs(10)).await;
    println!(
        "wrote {} events ({} unwritten)",
        report.written,
        report.unwritten.len()
    );

    let client = clickhouse::Client::default()
        .with_url(&url)
        .with_validation(false);
    let rows: Vec<(u64, String, u64)> = client
        .query(&format!(
            "SELECT account_id, event_type, uniqExact(event_id) FROM {} FINAL \
             GROUP BY account_id, event_type ORDER BY account_id, event_type",
            schema.qualified_table()
        ))
        .fetch_all()
        .await?;
    println!("{:>10}  {:<20}  {:>6}", "account", "event", "events");
    for (account, event_type, n) in rows {
        println!("{account:>10}  {event_type:<20}  {n:>6}");
    }
    Ok(())
}
