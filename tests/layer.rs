//! The layer against a real ClickHouse server: through axum's router, and through each
//! example run as its own process.

mod common;

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{HeaderValue, Method, Request, StatusCode},
    routing::get,
};
use idp_analytics::{AccountId, Analytics, AnalyticsLayer, account, schema::Schema};
use tower::ServiceExt;

/// (account, event type, method, status) → rows.
type Rows = BTreeMap<(u64, String, String, u16), u64>;

/// The rows of the table, read with `FINAL`, counted by account, event type, method and
/// status; and the number of distinct event ids.
async fn rows(schema: &Schema) -> (Rows, u64) {
    let table = schema.qualified_table();
    let grouped: Vec<(u64, String, String, u16, u64)> = common::client()
        .query(&format!(
            "SELECT account_id, event_type, method, status, count() FROM {table} FINAL \
             GROUP BY account_id, event_type, method, status"
        ))
        .fetch_all()
        .await
        .unwrap();
    let (_, unique) = common::counts(schema).await;
    let rows = grouped
        .into_iter()
        .map(|(a, t, m, s, n)| ((a, t, m, s), n))
        .collect();
    (rows, unique)
}

fn row(account: u64, event_type: &str, method: &str, status: u16) -> (u64, String, String, u16) {
    (account, event_type.into(), method.into(), status)
}

async fn writer(schema: &Schema) -> Analytics {
    Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_flush_interval(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// Five routes, one of them in a nested router, answering with different statuses.
fn routes() -> Router {
    let billing = Router::new().route(
        "/invoices/{id}",
        get(|| async { StatusCode::PAYMENT_REQUIRED }),
    );
    Router::new()
        .route(
            "/projects/{id}",
            get(|| async { "project" }).delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/projects",
            axum::routing::post(|| async { StatusCode::CREATED }),
        )
        .route("/search", get(|| async { "results" }))
        .route("/health", get(|| async { "ok" }))
        .nest("/billing", billing)
}

async fn send(app: &Router, method: Method, path: &str, account: Option<u64>) -> StatusCode {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    if let Some(account) = account {
        request.extensions_mut().insert(AccountId(account));
    }
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_writes_exactly_the_requests_of_each_account() {
    let schema = prepare_database!().await;
    let analytics = writer(&schema).await;
    let app = routes().layer(
        AnalyticsLayer::builder(analytics.clone())
            .with_skipped_routes(["/health"])
            .build()
            .unwrap(),
    );

    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let started = unix_now();

    // 10 accounts, 100 requests each, spread over the 5 routes; sent concurrently.
    let requests = [
        (Method::GET, "/projects/17", "/projects/{id}", 200),
        (Method::DELETE, "/projects/17", "/projects/{id}", 204),
        (Method::POST, "/projects", "/projects", 201),
        (Method::GET, "/search?q=x", "/search", 200),
        (
            Method::GET,
            "/billing/invoices/3",
            "/billing/invoices/{id}",
            402,
        ),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for account in 1..=10u64 {
        let app = app.clone();
        let requests = requests.clone();
        tasks.spawn(async move {
            for i in 0..100 {
                let (method, path, _, status) = &requests[i % requests.len()];
                let got = send(&app, method.clone(), path, Some(account)).await;
                assert_eq!(got.as_u16(), *status, "{method} {path}");
            }
            // None of these is an event: anonymous, unmatched, skipped.
            assert_eq!(
                send(&app, Method::GET, "/search", None).await,
                StatusCode::OK
            );
            let not_found = send(&app, Method::GET, "/wp-login.php", Some(account)).await;
            assert_eq!(not_found, StatusCode::NOT_FOUND);
            assert_eq!(
                send(&app, Method::GET, "/health", Some(account)).await,
                StatusCode::OK
            );
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }

    let finished = unix_now();
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    let stats = analytics.stats();
    assert_eq!((stats.enqueued, stats.written), (1000, 1000));

    // Every event carries the wall-clock second its response was ready in.
    let (first, last): (u32, u32) = common::client()
        .query(&format!(
            "SELECT toUInt32(min(inserted_at)), toUInt32(max(inserted_at)) FROM {}",
            schema.qualified_table()
        ))
        .fetch_one()
        .await
        .unwrap();
    assert!(
        started <= u64::from(first) && u64::from(last) <= finished,
        "events at {first}..={last}, requests sent in {started}..={finished}"
    );

    let mut expected = Rows::new();
    for account in 1..=10 {
        for (method, _, event_type, status) in &requests {
            expected.insert(row(account, event_type, method.as_str(), *status), 20);
        }
    }
    assert_eq!(rows(&schema).await, (expected, 1000));

    let sources: Vec<String> = common::client()
        .query(&format!(
            "SELECT DISTINCT source FROM {}",
            schema.qualified_table()
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(sources, ["layer"]);
}

#[tokio::test]
async fn layer_ignores_hostile_account_headers() {
    let schema = prepare_database!().await;
    let analytics = writer(&schema).await;
    let app = routes().layer(
        AnalyticsLayer::builder(analytics.clone())
            .with_account(account::from_header("x-account-id"))
            .build()
            .unwrap(),
    );
    let kib_of_digits = "9".repeat(1024);
    let hostile: Vec<HeaderValue> = [
        "-1",
        "+1",
        "1e3",
        "0x10",
        "18446744073709551616",
        "99999999999999999999",
        kib_of_digits.as_str(),
        "",
        " 1",
        "1 ",
        "١٢٣",
        "１２３",
        "12\u{301}",
    ]
    .iter()
    .map(|v| HeaderValue::from_bytes(v.as_bytes()).unwrap())
    .chain([HeaderValue::from_bytes(b"\xff\xfe1").unwrap()])
    .collect();
    for value in hostile {
        let mut request = Request::get("/search").body(Body::empty()).unwrap();
        request.headers_mut().insert("x-account-id", value.clone());
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{value:?}");
    }
    // The one well-formed value, so that the test shows events do get through.
    let mut request = Request::get("/search").body(Body::empty()).unwrap();
    request.headers_mut().insert(
        "x-account-id",
        HeaderValue::from_static("18446744073709551615"),
    );
    app.clone().oneshot(request).await.unwrap();

    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    let expected = Rows::from([(row(u64::MAX, "/search", "GET", 200), 1)]);
    assert_eq!(rows(&schema).await, (expected, 1));
}

/// Runs an example on a free port against a fresh database, sends it a few requests as
/// a few accounts, stops it with SIGTERM and checks what it wrote.
async fn run_example(name: &str, schema: Schema) {
    let url = common::url();
    let app = common::app::App::start(
        name,
        &[
            ("CLICKHOUSE_URL", url.as_str()),
            ("IDP_ANALYTICS_DATABASE", schema.database()),
            ("IDP_ANALYTICS_REPORTERS", "billing:billing-token"),
        ],
    )
    .await;
    for account in [1, 2, 3] {
        let projects = format!("/projects/{}", account * 10);
        assert_eq!(app.send(Method::GET, &projects, Some(account)).await, 200);
        assert_eq!(
            app.send(Method::GET, "/search?q=x", Some(account)).await,
            200
        );
        let invoice = app
            .send(Method::GET, "/billing/invoices/1", Some(account))
            .await;
        assert_eq!(invoice, 200);
    }
    assert_eq!(app.send(Method::POST, "/login?account=9", None).await, 200);
    // Another service reports an event; a wrong token is refused.
    let report = r#"{"accountId": 5, "event": "invoice.paid"}"#;
    assert_eq!(app.report("/event", "billing-token", report).await, 200);
    assert_eq!(app.report("/event", "wrong-token", report).await, 401);
    // Not events: no account, a skipped route, no route.
    assert_eq!(app.send(Method::GET, "/projects/1", None).await, 401);
    assert_eq!(app.send(Method::GET, "/health", Some(1)).await, 200);
    assert_eq!(app.send(Method::GET, "/wp-login.php", Some(1)).await, 404);

    if name == "axum" {
        check_dashboard(&app).await;
    }

    let rest = app.stop().await;
    assert!(
        rest.iter().any(|l| l.contains(", 0 left unwritten")),
        "{rest:?}"
    );

    let mut expected = Rows::new();
    for account in [1, 2, 3] {
        for event_type in ["/projects/{id}", "/search", "/billing/invoices/{id}"] {
            expected.insert(row(account, event_type, "GET", 200), 1);
        }
    }
    expected.insert(row(9, "/login", "POST", 200), 1);
    // Reported events have no method or status.
    expected.insert(row(5, "invoice.paid", "", 0), 1);
    assert_eq!(rows(&schema).await, (expected, 11));
}

/// The axum example's dashboard, once account 1's three requests are written.
async fn check_dashboard(app: &common::app::App) {
    let admin = Some("Bearer admin-demo");
    let mut usage = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = app.get("/admin/analytics/accounts/1/usage", admin).await;
        // 503 until the writer, which starts in the background, has created its table.
        if status != 503 {
            assert_eq!(status, 200, "{body}");
            usage = serde_json::from_str(&body).unwrap();
            if usage["totalEvents"] == 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(usage["accountId"], 1);
    assert_eq!(usage["totalEvents"], 3, "{usage}");

    // Account 1 was active a moment ago: not quiet for a day.
    let (status, body) = app.get("/admin/analytics/inactive?days=1", admin).await;
    assert_eq!(status, 200, "{body}");
    let quiet: serde_json::Value = serde_json::from_str(&body).unwrap();
    let quiet = quiet.as_array().expect("a JSON array");
    assert!(!quiet.iter().any(|a| a["accountId"] == 1), "{body}");

    let (status, page) = app.get("/admin/analytics", admin).await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg"), "the page has its chart");
    let (status, _) = app.get("/admin/analytics", None).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .get("/admin/analytics/inactive?days=7", Some("Bearer nope"))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn layer_axum_example_writes_its_requests() {
    run_example("axum", prepare_database!().await).await;
}

#[tokio::test]
async fn layer_hyper_example_writes_its_requests() {
    run_example("hyper", prepare_database!().await).await;
}
