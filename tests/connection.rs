//! Reaching ClickHouse as users do: over HTTPS, with a user and a password, through one
//! connection; and every wrong setting pauses the writer without losing an event.
//!
//! Needs the server `scripts/clickhouse` starts with `CLICKHOUSE_HTTPS_PORT` set:
//! `CLICKHOUSE_HTTPS_URL` (default `https://127.0.0.1:8443`), `CLICKHOUSE_CA_FILE` (default
//! `target/clickhouse/tls/ca.crt`), the user `CLICKHOUSE_TEST_USER` with the password
//! `CLICKHOUSE_TEST_PASSWORD` (defaults as in the script). `scripts/test` sets them all.
#![cfg(feature = "rustls")]

mod common;

use std::{
    convert::Infallible,
    io::Write,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use common::proxy::Proxy;
use http::StatusCode;
use idp_analytics::{
    Analytics, Connection, ConnectionBuilder, Days, Event, InactivityWatch, Notification,
    schema::Schema, writer::PauseReason,
};

const DAY: Duration = Duration::from_secs(86_400);

fn https_url() -> String {
    std::env::var("CLICKHOUSE_HTTPS_URL").unwrap_or_else(|_| "https://127.0.0.1:8443".into())
}

fn tls_dir() -> PathBuf {
    match std::env::var("CLICKHOUSE_CA_FILE") {
        Ok(ca) => PathBuf::from(ca).parent().unwrap().to_owned(),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clickhouse/tls"),
    }
}

fn ca_file() -> PathBuf {
    tls_dir().join("ca.crt")
}

fn user() -> String {
    std::env::var("CLICKHOUSE_TEST_USER").unwrap_or_else(|_| "idp_test".into())
}

fn password() -> String {
    std::env::var("CLICKHOUSE_TEST_PASSWORD").unwrap_or_else(|_| "idp-test-password".into())
}

/// The right settings: HTTPS, the test CA, the user and its password.
fn good() -> ConnectionBuilder {
    Connection::builder(https_url())
        .with_ca_file(ca_file())
        .with_user(user())
        .with_password(password())
}

/// A fresh database (made over plain HTTP); fails, saying how to start the server, when
/// HTTPS does not answer.
async fn database(name: &str) -> Schema {
    let schema = common::database(format!("conn_{name}")).await;
    let client = good().build().unwrap().client();
    let ping = tokio::time::timeout(
        Duration::from_secs(10),
        client.query("SELECT 1").fetch_one::<u8>(),
    )
    .await;
    assert!(
        matches!(ping, Ok(Ok(1))),
        "ClickHouse does not answer HTTPS at {} with CA {} as {} ({ping:?}).\n\
         Start it with `CLICKHOUSE_HTTPS_PORT=8443 scripts/clickhouse` (or run scripts/test).",
        https_url(),
        ca_file().display(),
        user()
    );
    // The tests make and count tables over `CLICKHOUSE_URL` and write over HTTPS: both must
    // reach one server, so a value stored over HTTP just now reads back over HTTPS.
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let marker = format!("`{}`.same_server", schema.database());
    common::client()
        .query(&format!(
            "CREATE TABLE {marker} ENGINE = Memory AS SELECT toUInt64({nonce}) AS n"
        ))
        .execute()
        .await
        .unwrap();
    let seen = client
        .query(&format!("SELECT n FROM {marker}"))
        .fetch_one::<u64>()
        .await;
    assert!(
        matches!(seen, Ok(n) if n == nonce),
        "CLICKHOUSE_URL ({}) and CLICKHOUSE_HTTPS_URL ({}) must reach the same server \
         (a value written over the first reads back over the second as {seen:?})",
        common::url(),
        https_url()
    );
    common::client()
        .query(&format!("DROP TABLE {marker}"))
        .execute()
        .await
        .unwrap();
    schema
}

/// What the writer logs, captured for one test (the runtime is single-threaded, so the
/// worker logs on this thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn lines_with(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writer, usage, watch and admin over HTTPS with a password, all from one connection.
#[tokio::test]
async fn everything_over_https_with_a_password() {
    let schema = database("everything_over_https").await;
    let connection = good().build().unwrap();
    let shown = format!("{connection:?}");
    assert!(!shown.contains(&password()), "{shown}");
    let analytics = Analytics::builder_with(connection)
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let now = SystemTime::now();
    let mut events = Vec::new();
    for (kind, n) in [("search", 3), ("export", 2)] {
        for i in 0..n {
            events.push(common::event_at(7, kind, now - Duration::from_secs(10 + i)));
        }
    }
    events.push(common::event_at(8, "login", now - 10 * DAY));
    analytics
        .try_record_confirmed(events)
        .unwrap()
        .await
        .unwrap();
    assert_eq!(common::counts(&schema).await, (6, 6));

    // Usage over the writer's connection.
    let usage = analytics.usage();
    let seven = usage.account(7, Days::ending_today(7)).await.unwrap();
    assert_eq!(seven.total_events, 5);
    let types: Vec<(&str, u64)> = seven
        .event_types
        .iter()
        .map(|t| (t.event_type.as_str(), t.events))
        .collect();
    assert_eq!(types, [("search", 3), ("export", 2)]);
    assert_eq!(seven.active_days, 1);
    let eight = usage.account(8, Days::ending_today(30)).await.unwrap();
    assert_eq!(eight.total_events, 1);

    // The watch: account 8 has been quiet for 10 days.
    let inbox = Arc::new(Mutex::new(Vec::<Notification>::new()));
    let sink = inbox.clone();
    let watch = InactivityWatch::builder(usage.clone(), move |n: Notification| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(n);
            Ok::<_, Infallible>(())
        }
    })
    .with_threshold(7 * DAY)
    .build()
    .unwrap();
    let report = watch.check().await.unwrap();
    assert_eq!(report.inactive, 1);
    let got: Vec<u64> = inbox.lock().unwrap().iter().map(|n| n.account_id).collect();
    assert_eq!(got, [8]);

    // The admin router answers from the same connection.
    #[cfg(feature = "axum")]
    {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let app = idp_analytics::Admin::new(usage, idp_analytics::admin::bearer("t")).into_router();
        let response = app
            .oneshot(
                http::Request::get("/accounts/7/usage")
                    .header("authorization", "Bearer t")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["accountId"], 7);
        assert_eq!(json["totalEvents"], 5);
    }

    let report = analytics.shutdown(Duration::from_secs(10)).await;
    assert!(report.unwritten.is_empty());
    assert_eq!(analytics.stats().paused, None);
}

/// With `bad` settings the writer pauses for `reason`, keeps every event in memory and in
/// the spool, and logs once a message holding each of `says`; restarted with the right
/// settings, it writes every event once.
async fn pauses_then_writes_once_when_fixed(
    name: &str,
    bad: ConnectionBuilder,
    reason: PauseReason,
    says: &[&str],
) {
    let schema = database(name).await;
    let spool = common::temp_dir(name);
    let logs = Logs::default();
    let _guard = logs.capture();
    let bad = bad
        .with_connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let analytics = Analytics::builder_with(bad)
        .with_schema(schema.clone())
        .with_spool_dir(&spool)
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap();
    let events: Vec<Event> = (0..20).map(|i| Event::new(i, "search").unwrap()).collect();
    analytics.try_record_all(events).unwrap();

    let paused = common::eventually(Duration::from_secs(30), || async {
        analytics.stats().paused == Some(reason) && analytics.stats().retried_batches >= 3
    })
    .await;
    let stats = analytics.stats();
    assert!(paused, "{name}: {stats:?}\n{}", logs.text());
    assert!(analytics.is_paused());
    assert_eq!(stats.pending, 20, "{stats:?}");
    assert_eq!(stats.written + stats.dead_lettered, 0, "{stats:?}");
    assert!(stats.spooled_bytes > 0, "{stats:?}");
    assert!(!common::segments(&spool).is_empty());
    assert_eq!(common::try_raw_count(&schema).await.unwrap_or(0), 0);
    // Logged once, naming the cause, however many times it was tried.
    assert_eq!(
        logs.lines_with("analytics writer paused"),
        1,
        "{}",
        logs.text()
    );
    for said in says {
        assert!(
            logs.lines_with(said) >= 1,
            "{name}: no log line says {said:?}:\n{}",
            logs.text()
        );
    }
    assert!(!logs.text().contains(&password()), "{}", logs.text());

    let report = analytics.shutdown(Duration::from_millis(500)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    assert!(report.left_in_spool >= 1, "{report:?}");
    drop(analytics);

    // Fixed and restarted: the spool is sent, every event once.
    let fixed = Analytics::builder_with(good().build().unwrap())
        .with_schema(schema.clone())
        .with_spool_dir(&spool)
        .build()
        .unwrap();
    let report = fixed.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    assert_eq!(report.left_in_spool, 0, "{report:?}");
    assert_eq!(fixed.stats().written, 20, "{:?}", fixed.stats());
    assert_eq!(common::counts(&schema).await, (20, 20));
    assert_eq!(common::raw_count(&schema).await, 20);
    let _ = std::fs::remove_dir_all(&spool);
}

#[tokio::test]
async fn wrong_password_pauses_and_keeps_every_event() {
    pauses_then_writes_once_when_fixed(
        "wrong_password",
        good().with_password("not-the-password"),
        PauseReason::Authentication,
        &["refused the user or the password", "Wrong password"],
    )
    .await;
}

#[tokio::test]
async fn untrusted_ca_pauses_and_keeps_every_event() {
    pauses_then_writes_once_when_fixed(
        "untrusted_ca",
        Connection::builder(https_url())
            .with_ca_file(tls_dir().join("other-ca.crt"))
            .with_user(user())
            .with_password(password()),
        PauseReason::UntrustedCertificate,
        &["not signed by a trusted CA", "UnknownIssuer"],
    )
    .await;
}

#[tokio::test]
async fn hostname_mismatch_pauses_and_keeps_every_event() {
    // 127.0.0.2 reaches the same server (through a TCP proxy), but the certificate names
    // only 127.0.0.1 and localhost.
    let proxy = Proxy::start_at("127.0.0.2", &https_url()).await;
    pauses_then_writes_once_when_fixed(
        "hostname_mismatch",
        Connection::builder(format!("https://{}", proxy.addr()))
            .with_ca_file(ca_file())
            .with_user(user())
            .with_password(password()),
        PauseReason::CertificateName,
        &["not valid for the URL's host name", "127.0.0.2"],
    )
    .await;
}

#[tokio::test]
async fn https_to_the_plain_port_pauses_and_keeps_every_event() {
    let plain = common::url().replace("http://", "https://");
    pauses_then_writes_once_when_fixed(
        "https_to_plain",
        Connection::builder(plain)
            .with_ca_file(ca_file())
            .with_user(user())
            .with_password(password()),
        PauseReason::NotTls,
        // Either the handshake goes unanswered, or the server answers plain HTTP to it.
        &["does not speak TLS", "https://127.0.0.1"],
    )
    .await;
}

#[tokio::test]
async fn http_to_the_https_port_pauses_and_keeps_every_event() {
    let url = https_url().replace("https://", "http://");
    pauses_then_writes_once_when_fixed(
        "http_to_https",
        Connection::builder(url)
            .with_user(user())
            .with_password(password()),
        PauseReason::TlsPort,
        &["the port speaks TLS", "use https://"],
    )
    .await;
}

/// A pause that ends without a restart: logged once when it starts, once when it ends, and
/// `stats()` shows it only meanwhile.
#[tokio::test]
async fn a_pause_is_logged_once_and_so_is_the_resume() {
    let schema = database("pause_and_resume").await;
    let logs = Logs::default();
    let _guard = logs.capture();
    // The table does not exist and the writer may not create it: paused.
    let analytics = Analytics::builder_with(good().build().unwrap())
        .with_schema(schema.clone())
        .with_create_schema(false)
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .unwrap();
    analytics
        .try_record_all((0..5).map(|i| Event::new(i, "x").unwrap()).collect())
        .unwrap();
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            analytics.stats().paused == Some(PauseReason::Table)
                && analytics.stats().retried_batches >= 3
        })
        .await,
        "{:?}",
        analytics.stats()
    );
    schema
        .ensure(
            &common::client(),
            Schema::server_version(&common::client()).await.unwrap(),
        )
        .await
        .unwrap();
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            analytics.stats().written == 5
        })
        .await
    );
    assert_eq!(analytics.stats().paused, None);
    assert!(!analytics.is_paused());
    assert_eq!(analytics.stats().pauses, 1);
    assert_eq!(
        logs.lines_with("analytics writer paused"),
        1,
        "{}",
        logs.text()
    );
    assert_eq!(
        logs.lines_with("analytics writer resumed"),
        1,
        "{}",
        logs.text()
    );
    analytics.shutdown(Duration::from_secs(5)).await;
}

/// The axum example over HTTPS, configured as a user would: `CLICKHOUSE_URL`,
/// `CLICKHOUSE_USER`, `CLICKHOUSE_PASSWORD`, and `SSL_CERT_FILE` for the private CA. Its
/// usage endpoint answers over the same connection.
#[cfg(feature = "axum")]
#[tokio::test]
async fn the_axum_example_over_https() {
    let schema = database("axum_example_over_https").await;
    let (url, ca, user, password) = (
        https_url(),
        ca_file().display().to_string(),
        user(),
        password(),
    );
    let app = common::app::App::start(
        "axum",
        &[
            ("CLICKHOUSE_URL", url.as_str()),
            ("CLICKHOUSE_USER", user.as_str()),
            ("CLICKHOUSE_PASSWORD", password.as_str()),
            ("SSL_CERT_FILE", ca.as_str()),
            ("IDP_ANALYTICS_DATABASE", schema.database()),
        ],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            app.send(http::Method::GET, "/projects/7", Some(42)).await,
            StatusCode::OK
        );
    }
    let last = Mutex::new(String::new());
    let answered = common::eventually(Duration::from_secs(60), || async {
        let (status, body) = app
            .get(
                "/admin/analytics/accounts/42/usage",
                Some("Bearer admin-demo"),
            )
            .await;
        let done = status == StatusCode::OK
            && serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|json| json["totalEvents"] == 3);
        *last.lock().unwrap() = body;
        done
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(answered, "{last}");
    let json: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(json["eventTypes"][0]["eventType"], "/projects/{id}");
    assert_eq!(json["eventTypes"][0]["events"], 3);
    let lines = app.stop().await;
    assert!(
        lines.iter().any(|l| l.contains("0 left unwritten")),
        "{lines:?}"
    );
    assert_eq!(common::counts(&schema).await, (3, 3));
}
