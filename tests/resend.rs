//! An event sent again with the same `eventId` is one row and one event, against a real
//! ClickHouse: for a UUID v4, v7 and v5, with and without a `timestamp`, while the first
//! copy is still queued, after it was written, after the application restarted, and days
//! later; and one reporter cannot replace another's event. Also the key migration of an
//! existing table.

mod common;

use std::{
    convert::Infallible,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use idp_analytics::{
    Analytics, Days, Event, ReadFrom, Usage,
    event::Source,
    reporter::{Reporter, Reporters},
    schema::{EVENTS_KEY, KeyMigration, Schema},
};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const BILLING: &str = "b1ll1ng-t0ken-0123456789";
const SEARCH: &str = "s3arch-t0ken-0123456789";

fn reporters() -> Reporters {
    Reporters::new()
        .with("billing", BILLING)
        .unwrap()
        .with("search", SEARCH)
        .unwrap()
}

/// One run of an application: a writer and the endpoint in front of it. A new `App` on the
/// same schema is the application restarted: nothing is remembered but what is in the table.
struct App {
    analytics: Analytics,
    router: axum::Router,
}

impl App {
    fn start(schema: &Schema, flush: Duration) -> Self {
        let analytics = Analytics::builder(common::url())
            .with_schema(schema.clone())
            .with_flush_interval(flush)
            .build()
            .unwrap();
        let router = analytics.reporter_router(reporters());
        Self { analytics, router }
    }

    async fn post(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// Waits until the writer has written `n` events in all.
    async fn written(&self, n: u64) {
        let written = common::eventually(Duration::from_secs(20), || async {
            self.analytics.stats().written >= n
        })
        .await;
        assert!(written, "{:?}", self.analytics.stats());
    }

    async fn stop(self) {
        let report = self.analytics.shutdown(Duration::from_secs(30)).await;
        assert!(report.unwritten.is_empty(), "{report:?}");
    }
}

#[derive(Debug, PartialEq, clickhouse::Row, serde::Deserialize)]
struct Row {
    event_id: String,
    account_id: u64,
    event_type: String,
    inserted_at: u32,
    source: String,
}

/// The rows of the table, read with `FINAL`.
async fn rows(schema: &Schema) -> Vec<Row> {
    common::client()
        .query(&format!(
            "SELECT toString(event_id) AS event_id, account_id, event_type, \
             toUInt32(inserted_at) AS inserted_at, source \
             FROM {} FINAL ORDER BY account_id, event_type, source",
            schema.qualified_table()
        ))
        .fetch_all::<Row>()
        .await
        .unwrap()
}

/// The events of `account` in the last week, as the rollup and as the events table count
/// them, with its active days by each.
async fn usage(schema: &Schema, account: u64) -> [(u64, u32); 2] {
    let client = common::client();
    let mut out = [(0, 0); 2];
    for (slot, from) in out.iter_mut().zip([ReadFrom::Rollup, ReadFrom::Events]) {
        let usage = Usage::new(client.clone(), schema.clone()).with_read_from(from);
        let answer = usage.account(account, Days::ending_today(8)).await.unwrap();
        *slot = (answer.total_events, answer.active_days);
    }
    out
}

/// Merges every part, so that `count()` without `FINAL` shows what a merge leaves.
async fn optimize(schema: &Schema) {
    common::client()
        .query(&format!(
            "OPTIMIZE TABLE {} FINAL",
            schema.qualified_table()
        ))
        .execute()
        .await
        .unwrap();
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The three kinds of id a client makes: random (v4, Python's `uuid4()`, JavaScript's
/// `crypto.randomUUID()`, Java's `UUID.randomUUID()`), time-ordered (v7) and name-based
/// (v5; Java's `nameUUIDFromBytes` makes the same kind, v3).
fn ids() -> [(&'static str, Uuid); 3] {
    [
        ("v4", Uuid::new_v4()),
        ("v7", Uuid::now_v7()),
        (
            "v5",
            uuid::Builder::from_sha1_bytes(*Uuid::new_v4().as_bytes()).into_uuid(),
        ),
    ]
}

async fn send_all(app: &App, path: &str, bodies: &[(u64, Value)]) {
    for (_, body) in bodies {
        let (status, reply) = app.post(BILLING, path, body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(reply, json!({"message": "success"}));
    }
}

/// Sends each kind of id three more times, each time at a later second: while the first
/// copy is queued, after it was written, and to the application started again.
async fn resent_three_ways(schema: Schema, batch: bool) {
    let path = if batch { "/events" } else { "/event" };
    let wrap = |v: Value| if batch { json!([v]) } else { v };
    let bodies: Vec<(u64, Value)> = ids()
        .into_iter()
        .enumerate()
        .map(|(n, (kind, id))| {
            let account = 10 + n as u64;
            let body = json!({"accountId": account, "event": kind, "eventId": id.to_string()});
            (account, wrap(body))
        })
        .collect();
    let second = || tokio::time::sleep(Duration::from_millis(1100));
    // A long flush interval: the first copies are still queued when they are sent again.
    let app = App::start(&schema, Duration::from_secs(3600));
    send_all(&app, path, &bodies).await;
    second().await;
    send_all(&app, path, &bodies).await;
    assert_eq!(app.analytics.stats().written, 0);
    app.stop().await;

    // Restarted: nothing remembered but the table.
    let app = App::start(&schema, Duration::from_millis(50));
    second().await;
    send_all(&app, path, &bodies).await;
    // After a flush of the resent copies, once more to the same process.
    app.written(3).await;
    second().await;
    send_all(&app, path, &bodies).await;
    app.stop().await;

    // Restarted again.
    let app = App::start(&schema, Duration::from_millis(50));
    second().await;
    send_all(&app, path, &bodies).await;
    app.stop().await;

    let rows = rows(&schema).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for ((account, _), row) in bodies.iter().zip(&rows) {
        assert_eq!(row.account_id, *account);
        assert_eq!(row.source, "billing");
        assert_eq!(usage(&schema, *account).await, [(1, 1), (1, 1)], "{row:?}");
    }
    optimize(&schema).await;
    assert_eq!(common::raw_count(&schema).await, 3);
}

#[tokio::test]
async fn every_uuid_resent_is_one_row() {
    resent_three_ways(prepare_database!().await, false).await;
}

#[tokio::test]
async fn every_uuid_resent_in_a_batch_is_one_row() {
    resent_three_ways(prepare_database!().await, true).await;
}

#[tokio::test]
async fn a_resend_with_its_timestamp_is_one_row() {
    let schema = prepare_database!().await;
    let t = now_secs() - 3 * 3600;
    let body = json!({"accountId": 3, "event": "upload",
        "eventId": Uuid::new_v4().to_string(), "timestamp": t});
    // Sent again without its timestamp, the event keeps it: from memory while the first
    // copy is queued, and from the table once the application restarted.
    let mut without = body.clone();
    without.as_object_mut().unwrap().remove("timestamp");
    let app = App::start(&schema, Duration::from_secs(3600));
    assert_eq!(app.post(BILLING, "/event", &body).await.0, StatusCode::OK);
    assert_eq!(
        app.post(BILLING, "/event", &without).await.0,
        StatusCode::OK
    );
    app.stop().await;
    let app = App::start(&schema, Duration::from_millis(50));
    assert_eq!(app.post(BILLING, "/event", &body).await.0, StatusCode::OK);
    assert_eq!(
        app.post(BILLING, "/events", &json!([body])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.post(BILLING, "/event", &without).await.0,
        StatusCode::OK
    );
    app.stop().await;
    let rows = rows(&schema).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(u64::from(rows[0].inserted_at), t);
    assert_eq!(usage(&schema, 3).await, [(1, 1), (1, 1)]);
}

#[tokio::test]
async fn a_resend_days_later_keeps_the_first_time() {
    let schema = prepare_database!().await;
    // The first report, three days ago: a v4 id without a timestamp, as stored then.
    let id = Uuid::new_v4();
    let first = now_secs() - 3 * 86_400;
    let original = Event::new(4, "export")
        .unwrap()
        .with_event_id(id)
        .with_source(Source::new("billing").unwrap())
        .with_time(UNIX_EPOCH + Duration::from_secs(first))
        .unwrap();
    common::write(&schema, vec![original]).await;

    let app = App::start(&schema, Duration::from_millis(50));
    let body = json!({"accountId": 4, "event": "export", "eventId": id.to_string()});
    assert_eq!(app.post(BILLING, "/event", &body).await.0, StatusCode::OK);
    app.stop().await;

    let rows = rows(&schema).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(u64::from(rows[0].inserted_at), first);
    // One event on one day, by the rollup and by the events table.
    assert_eq!(usage(&schema, 4).await, [(1, 1), (1, 1)]);
}

#[tokio::test]
async fn a_reporter_cannot_replace_another_reporters_event() {
    let schema = prepare_database!().await;
    let id = Uuid::new_v4().to_string();
    let t = now_secs() - 60;
    let app = App::start(&schema, Duration::from_millis(50));
    let billing = json!({"accountId": 7, "event": "invoice", "eventId": id, "timestamp": t});
    assert_eq!(
        app.post(BILLING, "/event", &billing).await.0,
        StatusCode::OK
    );
    app.written(1).await;
    // Another reporter sends the same id, account and time with another event type.
    let search = json!({"accountId": 7, "event": "forged", "eventId": id, "timestamp": t});
    assert_eq!(app.post(SEARCH, "/event", &search).await.0, StatusCode::OK);
    // And without a timestamp, which a look-up would resolve only within its own source.
    let search = json!({"accountId": 7, "event": "forged", "eventId": id});
    assert_eq!(app.post(SEARCH, "/event", &search).await.0, StatusCode::OK);
    app.stop().await;
    optimize(&schema).await;

    let rows = rows(&schema).await;
    let billing_rows: Vec<_> = rows.iter().filter(|r| r.source == "billing").collect();
    assert_eq!(billing_rows.len(), 1, "{rows:#?}");
    assert_eq!(billing_rows[0].event_type, "invoice");
    assert_eq!(u64::from(billing_rows[0].inserted_at), t);
    assert!(
        rows.iter()
            .all(|r| r.source == "billing" || r.event_type == "forged")
    );
}

#[tokio::test]
async fn an_id_that_cannot_be_looked_up_is_answered_503() {
    // Nothing listens on port 9 of loopback: every look-up fails at once.
    let (analytics, _worker) = Analytics::builder("http://127.0.0.1:9")
        .build_pair()
        .unwrap();
    let reporter = Reporter::new(analytics.clone(), reporters());
    let send = |body: Value| {
        let request = Request::post("/event")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {BILLING}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        reporter.service().oneshot(request)
    };
    let response: Result<_, Infallible> =
        send(json!({"accountId": 1, "event": "x", "eventId": Uuid::new_v4().to_string()})).await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(analytics.stats().enqueued, 0);
    // Events that need no look-up are taken as before.
    for body in [
        json!({"accountId": 1, "event": "search"}),
        json!({"accountId": 1, "event": "x", "eventId": Uuid::now_v7().to_string()}),
        json!({"accountId": 1, "event": "x", "eventId": Uuid::new_v4().to_string(),
            "timestamp": now_secs() - 5}),
    ] {
        assert_eq!(send(body).await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(analytics.stats().enqueued, 3);
}

#[tokio::test]
async fn a_table_with_the_old_key_is_migrated_month_by_month() {
    let schema = prepare_database!().await;
    let client = common::client();
    // The table as the crate made it before `source` joined its key, with the rollup.
    client
        .query(&format!(
            "CREATE TABLE {} (event_id UUID, account_id UInt64, event_type String, \
             inserted_at DateTime DEFAULT now(), source String, method String, \
             status UInt16, latency_us UInt64) ENGINE = ReplacingMergeTree \
             PARTITION BY toYYYYMM(inserted_at) ORDER BY (account_id, inserted_at, event_id)",
            schema.qualified_table()
        ))
        .execute()
        .await
        .unwrap();
    let version = idp_analytics::schema::Schema::server_version(&client)
        .await
        .unwrap();
    schema.ensure(&client, version).await.unwrap();
    let day = 86_400;
    let now = now_secs();
    let events: Vec<Event> = (0..300u64)
        .map(|n| {
            // Three months, a few accounts.
            let t = now - (n % 3) * 35 * day - n;
            common::event_at(n % 5, "e", UNIX_EPOCH + Duration::from_secs(t))
        })
        .collect();
    common::write(&schema, events.clone()).await;
    schema.backfill_rollup(&client).await.unwrap();
    let before = usage(&schema, 1).await;

    let done = schema.migrate_key(&client, version).await.unwrap();
    let KeyMigration::Migrated { months, rows, kept } = done else {
        panic!("{done:?}");
    };
    assert!(months >= 3, "{months}");
    assert_eq!(rows, 300);
    assert_eq!(kept, "events_before_key_migration");
    assert_eq!(
        schema.sorting_key(&client).await.unwrap().as_deref(),
        Some(EVENTS_KEY.sorting_key)
    );
    assert_eq!(common::counts(&schema).await, (300, 300));
    assert_eq!(usage(&schema, 1).await, before);
    // Run again: nothing to do.
    assert_eq!(
        schema.migrate_key(&client, version).await.unwrap(),
        KeyMigration::Current
    );

    // The view feeds the rollup from the new table.
    let app = App::start(&schema, Duration::from_millis(50));
    let (status, _) = app
        .post(
            BILLING,
            "/event",
            &json!({"accountId": 1, "event": "after"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
    let after = usage(&schema, 1).await;
    assert_eq!(after[0].0, before[0].0 + 1);
    assert_eq!(after, [after[0], after[0]]);
}
