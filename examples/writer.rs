//! Writes a few events through the writer, then reads them back per account.
//!
//! ```sh
//! scripts/clickhouse && cargo run --example writer
//! ```
//!
//! Environment: `CLICKHOUSE_URL` (default `http://127.0.0.1:8123`; `https://` is checked
//! against the platform's CAs and `SSL_CERT_FILE`), `CLICKHOUSE_USER`, `CLICKHOUSE_PASSWORD`
//! (default none), `RUST_LOG` (default `idp_analytics=info,warn`, on standard error),
//! `IDP_ANALYTICS_DATABASE` (default `idp`).

use std::time::Duration;

use idp_analytics::{Analytics, Connection, Event, Source, schema::Schema};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let database = env_or("IDP_ANALYTICS_DATABASE", "idp");
    let schema = Schema::new(database, "events")?;
    let analytics = Analytics::builder_with(Connection::from_env()?)
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
    if let Some(reason) = analytics.stats().paused {
        return Err(format!("the writer was paused: {reason}").into());
    }

    // The writer's connection, with its credentials and certificates.
    let client = analytics.connection().client().with_validation(false);
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

/// Logs to standard error, filtered by `RUST_LOG` (default: the writer's `info`, others'
/// warnings). The writer says there why it is paused, and when it resumes.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("idp_analytics=info,warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
