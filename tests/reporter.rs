//! The reporter endpoint against a real ClickHouse server.
//!
//! Requests go through the axum router (or, where said, the plain tower service), and what
//! they recorded is read back from ClickHouse. Every refusal is checked twice: nothing was
//! enqueued, and once a valid control event has been written, the table holds that event
//! alone.

mod common;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use idp_analytics::{
    Analytics,
    reporter::{Reporter, Reporters},
    schema::Schema,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "b1ll1ng-t0ken-0123456789";
const SEARCH_TOKEN: &str = "s3arch-t0ken-0123456789";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn reporters() -> Reporters {
    Reporters::new()
        .with("billing", TOKEN)
        .unwrap()
        .with("search", SEARCH_TOKEN)
        .unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's `civil_from_days`).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A writer to the test's own database, the endpoint in front of it, and the router.
struct Harness {
    schema: Schema,
    analytics: Analytics,
    app: axum::Router,
}

impl Harness {
    async fn new(schema: Schema) -> Self {
        let analytics = Analytics::builder(common::url())
            .with_schema(schema.clone())
            .with_flush_interval(Duration::from_millis(100))
            .build()
            .unwrap();
        let app = analytics.reporter_router(reporters());
        Self {
            schema,
            analytics,
            app,
        }
    }

    async fn send<B>(&self, request: Request<B>) -> Reply
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        send(self.app.clone(), request).await
    }

    /// Asserts that nothing reached the writer.
    fn assert_nothing_taken(&self) {
        let stats = self.analytics.stats();
        assert_eq!(stats.enqueued, 0, "{stats:?}");
        assert_eq!(stats.pending, 0, "{stats:?}");
    }

    /// Sends a valid control event for `account`, writes it, and asserts that it is all
    /// the table holds.
    async fn finish_with_control(self, account: u64, body: &str) {
        let reply = self.send(post("/event", body.to_owned())).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(self.analytics.stats().enqueued, 1);
        let report = self.analytics.shutdown(Duration::from_secs(30)).await;
        assert!(report.unwritten.is_empty());
        let rows = rows(&self.schema).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].account_id, account, "{rows:?}");
    }

    async fn finish(self) {
        self.finish_with_control(999_999, r#"{"accountId": 999999, "event": "control"}"#)
            .await;
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    body: Value,
}

impl Reply {
    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

async fn send<S, B, R>(service: S, request: Request<B>) -> Reply
where
    S: tower::Service<Request<B>, Response = http::Response<R>, Error = Infallible>,
    R: http_body::Body<Data = Bytes>,
    R::Error: std::fmt::Debug,
{
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(parts.headers["content-type"], "application/json");
    Reply {
        status: parts.status,
        headers: parts.headers,
        text,
        body,
    }
}

fn request(method: Method, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
}

fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    request(Method::POST, path)
        .body(Full::new(body.into()))
        .unwrap()
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Row {
    event_id: String,
    account_id: u64,
    event_type: String,
    inserted_at: u32,
    source: String,
}

/// The table's rows, read with `FINAL`, by account and event type.
async fn rows(schema: &Schema) -> Vec<Row> {
    common::client()
        .query(&format!(
            "SELECT toString(event_id) AS event_id, account_id, event_type, \
             toUInt32(inserted_at) AS inserted_at, source \
             FROM {} FINAL ORDER BY account_id, event_type",
            schema.qualified_table()
        ))
        .fetch_all::<Row>()
        .await
        .unwrap()
}

/// `json` followed by spaces, `len` bytes in all.
fn padded(json: &str, len: usize) -> String {
    format!("{json}{}", " ".repeat(len - json.len()))
}

/// A body of `chunks` chunks of 8 KiB, counting the bytes read from it.
fn counted_body(
    chunks: usize,
    read: Arc<AtomicUsize>,
) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send> {
    static CHUNK: [u8; 8192] = [b' '; 8192];
    StreamBody::new(futures::stream::iter((0..chunks).map(move |_| {
        read.fetch_add(CHUNK.len(), Ordering::SeqCst);
        Ok(Frame::data(Bytes::from_static(&CHUNK)))
    })))
}

// ---------------------------------------------------------------------------------------
// The contract

#[tokio::test]
async fn reporter_answers_the_seed_request() {
    let h = Harness::new(prepare_database!().await).await;
    let reply = h
        .send(post("/event", r#"{"accountId": 1, "event": "search"}"#))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text, r#"{"message":"success"}"#);

    let before = now_secs();
    h.analytics.shutdown(Duration::from_secs(30)).await;
    let rows = rows(&h.schema).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row.account_id, row.event_type.as_str(), row.source.as_str()),
        (1, "search", "billing")
    );
    assert!(u64::from(row.inserted_at).abs_diff(before) <= 5, "{row:?}");
}

#[tokio::test]
async fn reporter_records_the_reporter_and_the_timestamp() {
    let h = Harness::new(prepare_database!().await).await;
    let hour_ago = now_secs() - 3600;
    let request = Request::post("/event")
        .header("content-type", "application/json; charset=utf-8")
        .header("authorization", format!("Bearer {SEARCH_TOKEN}"))
        .body(Full::new(Bytes::from(
            json!({"accountId": 2, "event": "query", "timestamp": rfc3339(hour_ago)}).to_string(),
        )))
        .unwrap();
    assert_eq!(h.send(request).await.status, StatusCode::OK);
    let reply = h
        .send(post(
            "/event",
            json!({"accountId": 3, "event": "export", "timestamp": hour_ago - 60}).to_string(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    h.analytics.shutdown(Duration::from_secs(30)).await;

    let rows = rows(&h.schema).await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.account_id,
                r.event_type.as_str(),
                u64::from(r.inserted_at),
                r.source.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, "query", hour_ago, "search"),
            (3, "export", hour_ago - 60, "billing")
        ]
    );
}

#[tokio::test]
async fn reporter_takes_a_batch_whole() {
    let h = Harness::new(prepare_database!().await).await;
    let t = now_secs() - 120;
    let batch = json!([
        {"accountId": 10, "event": "a"},
        {"accountId": 11, "event": "b", "timestamp": t},
        {"accountId": 12, "event": "c", "timestamp": rfc3339(t),
         "eventId": "6f2c1b9e-3d4a-4f5b-8c7d-9e0a1b2c3d4e"},
    ]);
    let reply = h.send(post("/events", batch.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.text, r#"{"message":"success"}"#);
    assert_eq!(h.analytics.stats().enqueued, 3);
    h.analytics.shutdown(Duration::from_secs(30)).await;

    let rows = rows(&h.schema).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows.iter().map(|r| r.account_id).collect::<Vec<_>>(),
        [10, 11, 12]
    );
    assert_eq!(u64::from(rows[1].inserted_at), t);
    assert_eq!(u64::from(rows[2].inserted_at), t);
    assert_eq!(rows[2].event_id, "6f2c1b9e-3d4a-4f5b-8c7d-9e0a1b2c3d4e");
    assert!(rows.iter().all(|r| r.source == "billing"));
}

#[tokio::test]
async fn reporter_refuses_a_batch_with_any_bad_item() {
    let h = Harness::new(prepare_database!().await).await;
    let batch = json!([
        {"accountId": 1, "event": "ok"},
        {"accountId": "2", "event": "bad account"},
        {"accountId": 3, "event": "ok too"},
        {"event": "no account", "colour": "red"},
        7,
    ]);
    let reply = h.send(post("/events", batch.to_string())).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.message(),
        "3 of 5 events are invalid; none was recorded"
    );
    let errors = reply.body["errors"].as_array().unwrap();
    let indexes: Vec<_> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 3, 4]);
    let reason = |i: usize| errors[i]["message"].as_str().unwrap();
    assert!(
        reason(0).starts_with("accountId must be a whole number"),
        "{}",
        reason(0)
    );
    assert!(reason(1).contains("\"colour\""), "{}", reason(1));
    assert!(
        reason(1).contains("field accountId is missing"),
        "{}",
        reason(1)
    );
    assert_eq!(reason(2), "must be a JSON object, not a number");
    h.assert_nothing_taken();
    assert_eq!(h.analytics.stats().dropped_invalid, 3);
    h.finish().await;
}

#[tokio::test]
async fn reporter_writes_a_resent_event_once() {
    let h = Harness::new(prepare_database!().await).await;
    let t = now_secs() - 30;
    let v4 = json!({"accountId": 5, "event": "upload",
        "eventId": "0b6f4c1e-8d2a-4e3b-9c4d-5e6f7a8b9c0d", "timestamp": t});
    // A UUID v7 carries its time; the event takes it, whenever it is sent.
    let v7 = json!({"accountId": 5, "event": "download",
        "eventId": uuid::Uuid::now_v7().to_string()});

    for body in [&v4, &v7] {
        assert_eq!(h.send(post("/event", body.to_string())).await.status, 200);
    }
    // Written once...
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            h.analytics.stats().written == 2
        })
        .await
    );
    // ... and sent again, a second later, one of them in a batch.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.send(post("/event", v4.to_string())).await.status, 200);
    assert_eq!(
        h.send(post("/events", json!([v7]).to_string()))
            .await
            .status,
        200
    );
    h.analytics.shutdown(Duration::from_secs(30)).await;
    assert_eq!(h.analytics.stats().written, 4);

    let (rows_final, unique) = common::counts(&h.schema).await;
    assert_eq!((rows_final, unique), (2, 2));
}

#[tokio::test]
async fn reporter_with_confirm_writes_answers_once_the_rows_are_in() {
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let app = Reporter::builder(analytics.clone(), reporters())
        .with_confirm_writes(true)
        .build()
        .unwrap()
        .into_router::<()>();
    let reply = send(
        app.clone(),
        post(
            "/events",
            r#"[{"accountId": 1, "event": "a"}, {"accountId": 2, "event": "b"}]"#,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text, r#"{"message":"success"}"#);
    // No waiting: the answer came after ClickHouse acknowledged the rows.
    assert_eq!(common::counts(&schema).await, (2, 2));
    let reply = send(app, post("/event", r#"{"accountId": 3, "event": "c"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(common::counts(&schema).await, (3, 3));
    analytics.shutdown(Duration::from_secs(30)).await;
}

/// A writer ClickHouse refuses: it pauses at its first insert, keeping its events.
fn refused_writer(schema: Schema) -> Analytics {
    Analytics::builder(common::url())
        .with_schema(schema)
        .with_user("reporter_test_no_such_user")
        .with_flush_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap()
}

#[tokio::test]
async fn reporter_with_confirm_writes_reports_a_failed_write() {
    let analytics = refused_writer(prepare_database!().await);
    let app = Reporter::builder(analytics.clone(), reporters())
        .with_confirm_writes(true)
        .build()
        .unwrap()
        .into_router::<()>();
    let pending = tokio::spawn(send(
        app,
        post("/event", r#"{"accountId": 1, "event": "search"}"#),
    ));
    assert!(
        common::eventually(Duration::from_secs(10), || async { analytics.is_paused() }).await,
        "the writer should pause on an unknown user"
    );
    assert!(
        !pending.is_finished(),
        "no answer before the write is settled"
    );
    // The write never happens: the writer shuts down with the event unwritten.
    let report = analytics.shutdown(Duration::from_millis(300)).await;
    assert_eq!(report.unwritten.len(), 1);
    let reply = pending.await.unwrap();
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.text, r#"{"message":"database error"}"#);
}

#[tokio::test]
async fn reporter_answers_503_when_the_queue_is_full() {
    let schema = prepare_database!().await;
    // The worker is not run until the end: the one slot stays taken.
    let (analytics, worker) = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_queue_capacity(1)
        .build_pair()
        .unwrap();
    let app = Reporter::builder(analytics.clone(), reporters())
        .with_retry_after(Duration::from_secs(7))
        .build()
        .unwrap()
        .into_router::<()>();
    let one = r#"{"accountId": 1, "event": "a"}"#;
    assert_eq!(send(app.clone(), post("/event", one)).await.status, 200);

    let reply = send(app.clone(), post("/event", one)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers["retry-after"], "7");
    assert_eq!(reply.message(), "the analytics queue is full; retry later");
    let reply = send(app.clone(), post("/events", format!("[{one}, {one}]"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers["retry-after"], "7");

    let stats = analytics.stats();
    assert_eq!((stats.enqueued, stats.dropped_queue_full), (1, 3));

    // What was answered 200 is written; what was answered 503 is not.
    tokio::spawn(worker.run());
    analytics.shutdown(Duration::from_secs(30)).await;
    assert_eq!(common::counts(&schema).await, (1, 1));

    // A writer that is shut down takes nothing either.
    let reply = send(app, post("/event", one)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.message(),
        "the analytics writer is shutting down; retry later"
    );
    assert_eq!(reply.headers["retry-after"], "7");
}

#[tokio::test]
async fn reporter_answers_503_while_the_writer_is_paused() {
    let analytics = refused_writer(prepare_database!().await);
    let app = analytics.reporter_router::<()>(reporters());
    let one = r#"{"accountId": 1, "event": "a"}"#;
    // Taken: the writer does not know yet that ClickHouse will refuse it.
    assert_eq!(send(app.clone(), post("/event", one)).await.status, 200);
    assert!(common::eventually(Duration::from_secs(10), || async { analytics.is_paused() }).await);
    let reply = send(app, post("/event", one)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers["retry-after"], "5");
    assert!(reply.message().contains("retry later"), "{}", reply.text);
    assert_eq!(analytics.stats().enqueued, 1);
    analytics.shutdown(Duration::from_millis(200)).await;
}

// ---------------------------------------------------------------------------------------
// Bad input: a clear error, nothing enqueued

#[tokio::test]
async fn reporter_refuses_missing_and_wrong_tokens() {
    let h = Harness::new(prepare_database!().await).await;
    let body = r#"{"accountId": 1, "event": "search"}"#;
    let mut texts = Vec::new();
    for authorization in [
        None,
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer wrong-token"),
        Some("Bearer b1ll1ng-t0ken-012345678"),
        Some("Basic YmlsbGluZzpzZWNyZXQ="),
        Some(TOKEN),
        Some("Bearer b1ll1ng t0ken"),
    ] {
        let mut builder = Request::post("/event").header("content-type", "application/json");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let reply = h
            .send(builder.body(Full::new(Bytes::from(body))).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        texts.push(reply.text);
    }
    // A good token sent twice is refused too.
    let twice = request(Method::POST, "/event")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let reply = h.send(twice).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    texts.push(reply.text);
    texts.dedup();
    assert_eq!(texts, [r#"{"message":"a valid bearer token is required"}"#]);

    // The body of a request without a valid token is not read.
    let read = Arc::new(AtomicUsize::new(0));
    let request = Request::post("/events")
        .header("content-type", "application/json")
        .header("authorization", "Bearer wrong-token")
        .body(counted_body(1000, read.clone()))
        .unwrap();
    assert_eq!(h.send(request).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(read.load(Ordering::SeqCst), 0);

    h.assert_nothing_taken();
    h.finish().await;
}

#[tokio::test]
async fn reporter_refuses_what_is_not_json() {
    let h = Harness::new(prepare_database!().await).await;
    for (path, body) in [
        ("/event", &b"accountId=1&event=search"[..]),
        ("/event", b""),
        ("/event", br#"{"accountId": 1, "event": "sea"#),
        ("/event", br#"{"accountId": 1, "event": "search""#),
        ("/event", br#"{"accountId": 1, "event": "search"} {}"#),
        ("/event", b"{\"accountId\": 1, \"event\": \"se\xffarch\"}"),
        ("/event", b"{\"accountId\": 1, \"event\": \"\xed\xa0\x80\"}"),
        ("/events", br#"[{"accountId": 1, "event": "search"}"#),
        ("/events", b"[{\"accountId\": 1, \"event\": \"\xc3\x28\"}]"),
    ] {
        let reply = h.send(post(path, body.to_vec())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body:?}");
        assert!(
            reply.message().starts_with("the body is not valid JSON: "),
            "{}",
            reply.text
        );
    }
    h.assert_nothing_taken();
    h.finish().await;
}

#[tokio::test]
async fn reporter_names_missing_and_null_fields() {
    let h = Harness::new(prepare_database!().await).await;
    for (body, message) in [
        (r#"{"event": "search"}"#, "field accountId is missing"),
        (r#"{"accountId": 1}"#, "field event is missing"),
        (
            r#"{"accountId": null, "event": "search"}"#,
            "accountId must not be null",
        ),
        (
            r#"{"accountId": 1, "event": null}"#,
            "event must not be null",
        ),
        (
            r#"{}"#,
            "field accountId is missing; field event is missing",
        ),
    ] {
        let reply = h.send(post("/event", body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.message(), message);
    }
    let reply = h.send(post("/event", "[]")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.message(),
        "the body must be a JSON object, not an array; send arrays to /events"
    );
    h.assert_nothing_taken();
    h.finish().await;
}

#[tokio::test]
async fn reporter_refuses_bad_account_ids() {
    let h = Harness::new(prepare_database!().await).await;
    for (account, message) in [
        (
            r#""1""#,
            "accountId must be a whole number from 0 to 18446744073709551615, not a string",
        ),
        (
            "1.5",
            "accountId must be a whole number from 0 to 18446744073709551615, not 1.5",
        ),
        (
            "1.25e1",
            "accountId must be a whole number from 0 to 18446744073709551615, not 12.5",
        ),
        ("-1", "accountId must not be negative"),
        (
            "18446744073709551616",
            "accountId must be a whole number from 0 to 18446744073709551615, not 1.8446744073709552e+19",
        ),
        (
            "true",
            "accountId must be a whole number from 0 to 18446744073709551615, not a boolean",
        ),
        (
            "[1]",
            "accountId must be a whole number from 0 to 18446744073709551615, not an array",
        ),
    ] {
        let body = format!(r#"{{"accountId": {account}, "event": "search"}}"#);
        let reply = h.send(post("/event", body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{account}");
        assert_eq!(reply.message(), message);
    }
    h.assert_nothing_taken();
    // The largest account id is a valid one.
    h.finish_with_control(
        u64::MAX,
        r#"{"accountId": 18446744073709551615, "event": "control"}"#,
    )
    .await;
}

#[tokio::test]
async fn reporter_refuses_bad_event_names() {
    let h = Harness::new(prepare_database!().await).await;
    for (event, message) in [
        (json!(""), "event must not be empty".to_owned()),
        (
            json!("e".repeat(129)),
            "event is 129 bytes long; at most 128 are allowed".to_owned(),
        ),
        (
            json!("é".repeat(65)),
            "event is 130 bytes long; at most 128 are allowed".to_owned(),
        ),
        (
            json!("search\u{1}"),
            "event contains a control character at byte 6".to_owned(),
        ),
        (
            json!("line\nbreak"),
            "event contains a control character at byte 4".to_owned(),
        ),
        (
            json!(42),
            "event must be a string of 1 to 128 bytes, not a number".to_owned(),
        ),
        (
            json!({"name": "search"}),
            "event must be a string of 1 to 128 bytes, not an object".to_owned(),
        ),
    ] {
        let body = json!({"accountId": 1, "event": event}).to_string();
        let reply = h.send(post("/event", body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{event}");
        assert_eq!(reply.message(), message);
    }
    h.assert_nothing_taken();
    // 128 bytes is not too long.
    let longest = json!({"accountId": 999999, "event": "e".repeat(128)}).to_string();
    h.finish_with_control(999_999, &longest).await;
}

/// Event types that would read like another are refused (zero-width and bidi characters),
/// and the two ways of typing `café` are one type in the table.
#[tokio::test]
async fn reporter_refuses_look_alike_event_types_and_stores_nfc() {
    let h = Harness::new(prepare_database!().await).await;
    for name in [
        "/projects/\u{200b}{id}",
        "/projects/{id}\u{202e}",
        "\u{feff}x",
        "a\u{2028}b",
    ] {
        let body = json!({"accountId": 1, "event": name}).to_string();
        let reply = h.send(post("/event", body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        assert!(
            reply.message().contains("invisible character"),
            "{}",
            reply.message()
        );
    }
    h.assert_nothing_taken();
    let batch = json!([
        {"accountId": 7, "event": "caf\u{e9}"},
        {"accountId": 7, "event": "cafe\u{301}"},
    ]);
    let reply = h.send(post("/events", batch.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    h.analytics.shutdown(Duration::from_secs(30)).await;
    let rows = rows(&h.schema).await;
    let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(types, ["caf\u{e9}", "caf\u{e9}"]);
}

#[tokio::test]
async fn reporter_names_unknown_fields() {
    let h = Harness::new(prepare_database!().await).await;
    for (body, field) in [
        (
            r#"{"accountId": 1, "event": "search", "acount": 2}"#,
            "\"acount\"",
        ),
        (
            r#"{"account_id": 1, "event": "search", "accountId": 1}"#,
            "\"account_id\"",
        ),
        (
            r#"{"accountId": 1, "event": "search", "source": "x"}"#,
            "\"source\"",
        ),
    ] {
        let reply = h.send(post("/event", body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            reply.message(),
            format!(
                "unknown field {field}; the fields are accountId, event, timestamp, eventId, method, status, latencyUs"
            )
        );
    }
    let reply = h
        .send(post(
            "/event",
            r#"{"accountId": 1, "event": "a", "event": "b"}"#,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.message(), "field event is given more than once");
    h.assert_nothing_taken();
    h.finish().await;
}

/// The answer to a body of repeated unknown fields stays small: the problems of an item and
/// the items of a batch are capped, the rest counted.
#[tokio::test]
async fn reporter_answers_a_flood_of_bad_fields_briefly() {
    let h = Harness::new(prepare_database!().await).await;
    let limit = 1024 * 1024;
    // One item of 1 MiB: `[{"a":0,"a":0,...}]`.
    let mut one = String::from(r#"[{"a":0"#);
    while one.len() < limit - 16 {
        one.push_str(r#","a":0"#);
    }
    one.push_str("}]");
    // A thousand items of about 1 KiB each, every one with a hundred unknown fields.
    let item = format!("{{{}}}", vec![r#""a":0"#; 170].join(","));
    let many = format!("[{}]", vec![item.as_str(); 1000].join(","));
    assert!(many.len() <= limit, "{}", many.len());
    for (body, items) in [(one, 1), (many, 1000)] {
        let reply = h.send(post("/events", body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            reply.text.len() <= 16 * 1024,
            "{} bytes: {}...",
            reply.text.len(),
            &reply.text[..500.min(reply.text.len())]
        );
        let message = reply.message();
        assert!(
            message.starts_with(&format!("{items} of {items} events")),
            "{message}"
        );
        let listed = reply.body["errors"].as_array().unwrap();
        assert!(!listed.is_empty() && listed.len() <= 20, "{}", listed.len());
        let first = listed[0]["message"].as_str().unwrap();
        assert!(first.contains("more problems"), "{first}");
        if items > 1 {
            assert!(message.ends_with("; the first 20 are listed"), "{message}");
        }
        eprintln!("{items} item(s): a {} byte answer", reply.text.len());
    }
    // A single event too.
    let mut single = String::from(r#"{"accountId":1,"event":"x""#);
    while single.len() < 60_000 {
        single.push_str(r#","a":0"#);
    }
    single.push('}');
    let reply = h.send(post("/event", single)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.text.len() < 1024, "{}", reply.text);
    h.assert_nothing_taken();
    h.finish().await;
}

#[tokio::test]
async fn reporter_refuses_timestamps_and_ids_it_cannot_use() {
    let h = Harness::new(prepare_database!().await).await;
    let now = now_secs();
    for (fields, message) in [
        (
            json!({"timestamp": now + 600}),
            "timestamp is more than 5 minutes in the future",
        ),
        (
            json!({"timestamp": rfc3339(now - 8 * 86_400)}),
            "timestamp is more than 7 days old",
        ),
        (
            json!({"timestamp": "yesterday"}),
            "timestamp must be an RFC 3339 date-time such as \"2024-05-01T12:30:00Z\" or a number of Unix seconds",
        ),
        (
            json!({"eventId": "not-a-uuid", "timestamp": now}),
            "eventId must be a UUID such as \"0191f8a4-7e0b-7c7e-a3a5-5f4b3c2d1e0f\"",
        ),
        (
            json!({"eventId": "00000000-0000-0000-0000-000000000000"}),
            "eventId must not be the nil UUID",
        ),
    ] {
        let mut body = json!({"accountId": 1, "event": "search"});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let reply = h.send(post("/event", body.to_string())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.message(), message);
    }
    h.assert_nothing_taken();
    h.finish().await;
}

#[tokio::test]
async fn reporter_refuses_deep_nesting_without_overflowing() {
    let h = Harness::new(prepare_database!().await).await;
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let in_field = format!(r#"{{"accountId": 1, "event": "search", "timestamp": {arrays}}}"#);
    for (path, body) in [
        ("/event", &arrays),
        ("/event", &objects),
        ("/event", &in_field),
        ("/events", &arrays),
        ("/events", &objects),
        ("/events", &format!("[{in_field}]")),
    ] {
        let reply = h.send(post(path, body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            reply.message().contains("recursion limit exceeded"),
            "{}",
            reply.text
        );
    }
    h.assert_nothing_taken();
    h.finish().await;
}

#[tokio::test]
async fn reporter_refuses_bodies_over_the_limit_without_reading_them() {
    let h = Harness::new(prepare_database!().await).await;
    let limit = 64 * 1024;

    // Announced too large: refused before a byte is read.
    let read = Arc::new(AtomicUsize::new(0));
    let announced = request(Method::POST, "/event")
        .header("content-length", (limit + 1).to_string())
        .body(counted_body(9, read.clone()))
        .unwrap();
    let reply = h.send(announced).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.message(), "the body is larger than 65536 bytes");
    assert_eq!(read.load(Ordering::SeqCst), 0);

    // Not announced (chunked): 10 MiB offered, reading stops at the limit.
    for (path, limit) in [("/event", limit), ("/events", 1024 * 1024)] {
        let read = Arc::new(AtomicUsize::new(0));
        let chunked = request(Method::POST, path)
            .body(counted_body(1280, read.clone()))
            .unwrap();
        let reply = h.send(chunked).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let read = read.load(Ordering::SeqCst);
        assert!(read <= limit + 8192, "{path}: read {read} bytes");
    }

    // One byte over, sent whole.
    let over = padded(r#"{"accountId": 1, "event": "x"}"#, limit + 1);
    let reply = h.send(post("/event", over)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let over = padded(r#"[{"accountId": 1, "event": "x"}]"#, 1024 * 1024 + 1);
    let reply = h.send(post("/events", over)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Over the single limit is fine for a batch.
    h.assert_nothing_taken();

    // Exactly at the limit is taken.
    let control = padded(r#"{"accountId": 999999, "event": "control"}"#, limit);
    h.finish_with_control(999_999, &control).await;
}

#[tokio::test]
async fn reporter_refuses_other_content_types() {
    let h = Harness::new(prepare_database!().await).await;
    let body = r#"{"accountId": 1, "event": "search"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("text/json"),
        Some("application/json; charset=iso-8859-1"),
    ] {
        let mut builder =
            Request::post("/event").header("authorization", format!("Bearer {TOKEN}"));
        if let Some(value) = content_type {
            builder = builder.header("content-type", value);
        }
        let reply = h
            .send(builder.body(Full::new(Bytes::from(body))).unwrap())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(
            reply.message(),
            "the body must be JSON, sent with content-type: application/json"
        );
    }
    h.assert_nothing_taken();
    // Parameters are fine.
    let request = Request::post("/event")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(
            r#"{"accountId": 999999, "event": "control"}"#,
        )))
        .unwrap();
    assert_eq!(h.send(request).await.status, StatusCode::OK);
    h.analytics.shutdown(Duration::from_secs(30)).await;
    assert_eq!(rows(&h.schema).await.len(), 1);
}

#[tokio::test]
async fn reporter_allows_only_post() {
    let h = Harness::new(prepare_database!().await).await;
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in ["/event", "/events"] {
            let request = request(method.clone(), path)
                .body(Full::new(Bytes::from(
                    r#"{"accountId": 1, "event": "search"}"#,
                )))
                .unwrap();
            let reply = h.send(request).await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(reply.headers["allow"], "POST");
            assert_eq!(reply.message(), "use POST");
        }
    }
    h.assert_nothing_taken();
    h.finish().await;
}

#[tokio::test]
async fn reporter_refuses_empty_and_oversized_batches() {
    let h = Harness::new(prepare_database!().await).await;
    let reply = h.send(post("/events", "[]")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.message(), "the batch is empty");

    let one = json!({"accountId": 1, "event": "search"});
    let reply = h
        .send(post(
            "/events",
            Value::from(vec![one.clone(); 1001]).to_string(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.message(),
        "the batch has 1001 events; at most 1000 are allowed"
    );

    let reply = h.send(post("/events", one.to_string())).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.message(),
        "the body must be a JSON array, not an object"
    );
    h.assert_nothing_taken();

    // 1 000 is not too many.
    let full: Vec<Value> = (0..1000)
        .map(|i| json!({"accountId": 1_000_000 + i, "event": "batch"}))
        .collect();
    let reply = h.send(post("/events", Value::from(full).to_string())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(h.analytics.stats().enqueued, 1000);
    h.analytics.shutdown(Duration::from_secs(30)).await;
    assert_eq!(common::counts(&h.schema).await, (1000, 1000));
}

#[tokio::test]
async fn reporter_stores_sql_looking_names_verbatim() {
    let h = Harness::new(prepare_database!().await).await;
    let names = [
        "'); DROP TABLE events; --",
        "\"; DROP DATABASE default; --",
        "' OR '1'='1",
        "back\\slash \\' \\\" \\n",
        "{id}?param=1&x=`y`",
        "📈 usage",
    ];
    let batch: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"accountId": i, "event": name}))
        .collect();
    let reply = h
        .send(post("/events", Value::from(batch).to_string()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = h
        .send(post(
            "/event",
            json!({"accountId": 100, "event": names[0]}).to_string(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    h.analytics.shutdown(Duration::from_secs(30)).await;

    let rows = rows(&h.schema).await;
    let stored: Vec<_> = rows.iter().map(|r| r.event_type.as_str()).collect();
    let mut expected = names.to_vec();
    expected.push(names[0]);
    assert_eq!(stored, expected);
    // The table is intact and still takes writes.
    assert_eq!(common::counts(&h.schema).await, (7, 7));
}

// ---------------------------------------------------------------------------------------
// Over TCP

/// A hyper HTTP/1 client.
fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

async fn call(request: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, String) {
    let response = client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn reporter_serves_an_axum_app_over_tcp() {
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .nest("/analytics", analytics.reporter_router(reporters()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let post = |path: &str, body: String| {
        request(Method::POST, &format!("{base}{path}"))
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let (status, headers, text) = call(post(
        "/analytics/event",
        r#"{"accountId": 1, "event": "search"}"#.into(),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(text, r#"{"message":"success"}"#);

    let batch = json!([{"accountId": 2, "event": "export"}, {"accountId": 3, "event": "import"}]);
    let (status, _, text) = call(post("/analytics/events", batch.to_string())).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"message":"success"}"#)
    );

    let (status, headers, _) = call(
        Request::get(format!("{base}/analytics/event"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    let (status, _, text) = call(
        Request::get(format!("{base}/health"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ok"));

    server.abort();
    analytics.shutdown(Duration::from_secs(30)).await;
    let rows = rows(&schema).await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.account_id, r.event_type.as_str(), r.source.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "search", "billing"),
            (2, "export", "billing"),
            (3, "import", "billing")
        ]
    );
}

/// A client that sends its body a byte at a time, slower than the body timeout allows, gets
/// `408` and the connection is closed; nothing is recorded.
#[tokio::test]
async fn reporter_answers_408_to_a_body_that_trickles_in() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .build()
        .unwrap();
    let app = Reporter::builder(analytics.clone(), reporters())
        .with_body_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .into_router::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let body = r#"{"accountId": 1, "event": "slow"}"#;
    let head = format!(
        "POST /event HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         authorization: Bearer {TOKEN}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // One byte every 300 ms: the whole body would take 10 s.
    let trickle = tokio::spawn(async move {
        for byte in body.as_bytes() {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        write
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut answer))
        .await
        .expect("the server still holds the connection after 30 s")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.ends_with(r#"{"message":"the body did not arrive within 1 second"}"#),
        "{answer}"
    );
    trickle.abort();
    server.abort();
    assert_eq!(analytics.stats().enqueued, 0);
    let report = analytics.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.written, 0);
}

#[tokio::test]
async fn reporter_serves_plain_hyper_over_tcp() {
    let schema = prepare_database!().await;
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let reporter = Reporter::new(analytics.clone(), reporters());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper_util::service::TowerToHyperService::new(reporter.service());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });

    // The exact request of the contract, as curl sends it, over a raw TCP connection.
    let body = r#"{"accountId": 1, "event": "search"}"#;
    let raw = format!(
        "POST /event HTTP/1.1\r\nHost: localhost:3000\r\nUser-Agent: curl/8.5.0\r\n\
         Accept: */*\r\ncontent-type: application/json\r\nauthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let addr = base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, raw.as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n{\"message\":\"success\"}"),
        "{answer}"
    );

    let (status, _, text) = call(
        request(Method::POST, &format!("{base}/events"))
            .body(Full::new(Bytes::from(
                r#"[{"accountId": 2, "event": "query"}]"#,
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"message":"success"}"#)
    );
    let (status, _, text) = call(
        request(Method::POST, &format!("{base}/elsewhere"))
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, r#"{"message":"not found"}"#)
    );

    server.abort();
    analytics.shutdown(Duration::from_secs(30)).await;
    let rows = rows(&schema).await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.account_id, r.event_type.as_str(), r.source.as_str()))
        .collect();
    assert_eq!(got, [(1, "search", "billing"), (2, "query", "billing")]);
}
