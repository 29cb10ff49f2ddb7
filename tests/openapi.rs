//! The OpenAPI documents of the reporter and of the admin router: generated, served at
//! `GET /openapi.json`, and checked in as `docs/openapi/reporter.json` and
//! `docs/openapi/admin.json`. When a generated document changes, this test fails until the
//! checked-in copy is updated: `UPDATE_OPENAPI=1 cargo test --test openapi`.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use idp_analytics::{
    Analytics,
    reporter::{Reporter, Reporters},
};
use serde_json::Value;
use tower::ServiceExt;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi/reporter.json");
const ADMIN_CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi/admin.json");

/// Fails unless the file at `path` holds `generated`; with `UPDATE_OPENAPI` set, writes it.
fn assert_checked_in(path: &str, generated: &str) {
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{path} differs from the generated document; \
         run `UPDATE_OPENAPI=1 cargo test --test openapi` and commit the change"
    );
}

fn reporter() -> Reporter {
    // No server is needed: the document is made from the configuration alone.
    let (analytics, _worker) = Analytics::builder("http://127.0.0.1:9")
        .build_pair()
        .unwrap();
    Reporter::new(
        analytics,
        Reporters::new()
            .with("billing", "t0ken-0123456789")
            .unwrap(),
    )
}

async fn get<S, B>(service: S, method: Method, path: &str) -> (StatusCode, http::HeaderMap, Bytes)
where
    S: tower::Service<Request<Empty<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Empty::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn the_checked_in_document_is_the_generated_one() {
    let generated = reporter().openapi_json();
    assert_checked_in(CHECKED_IN, std::str::from_utf8(&generated).unwrap());
    assert_checked_in(ADMIN_CHECKED_IN, idp_analytics::Admin::openapi_json());
}

#[tokio::test]
async fn the_admin_document_is_served_behind_the_guard() {
    let usage = idp_analytics::Usage::new(
        clickhouse::Client::default().with_url("http://127.0.0.1:9"),
        idp_analytics::schema::Schema::default(),
    );
    let admin: axum::Router = axum::Router::new().nest(
        "/admin/analytics",
        idp_analytics::Admin::new(usage, idp_analytics::admin::bearer("admin-demo")).into_router(),
    );
    let (status, _, _) = get(admin.clone(), Method::GET, "/admin/analytics/openapi.json").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let request = Request::get("/admin/analytics/openapi.json")
        .header("authorization", "Bearer admin-demo")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = admin.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, idp_analytics::Admin::openapi_json().as_bytes());
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/inactive",
        "/accounts",
        "/accounts/{id}/usage",
        "/active",
        "/event-types",
    ] {
        let op = &doc["paths"][path]["get"];
        assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{path}");
        for status in ["200", "400", "401", "500", "503"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
    }
    let usage = &doc["components"]["schemas"]["AccountUsage"];
    assert!(usage["properties"]["perDay"].is_object(), "{usage}");
    assert_eq!(doc["components"]["schemas"]["Day"]["format"], "date");
}

#[tokio::test]
async fn the_document_is_served_by_the_router_and_the_service() {
    let reporter = reporter();
    let expected = reporter.openapi_json();
    let router: axum::Router = reporter.clone().into_router();
    let (status, headers, body) = get(router.clone(), Method::GET, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, expected);
    // Nested under a prefix, too.
    let nested: axum::Router = axum::Router::new().nest("/analytics", router.clone());
    let (status, _, body) = get(nested, Method::GET, "/analytics/openapi.json").await;
    assert_eq!((status, &body), (StatusCode::OK, &expected));
    let (status, _, body) = get(reporter.service(), Method::GET, "/openapi.json").await;
    assert_eq!((status, &body), (StatusCode::OK, &expected));
    let (status, headers, _) = get(router, Method::POST, "/openapi.json").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET");
}

#[tokio::test]
async fn the_document_states_the_contract() {
    let doc: Value = serde_json::from_slice(&reporter().openapi_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for path in ["/event", "/events"] {
        let post = &doc["paths"][path]["post"];
        assert_eq!(
            post["security"][0]["bearer"],
            serde_json::json!([]),
            "{path}"
        );
        for status in ["200", "400", "401", "413", "415", "422", "500", "503"] {
            let schema = &post["responses"][status]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/Message",
                "{path} {status}"
            );
        }
        assert!(post["responses"]["503"]["headers"]["Retry-After"].is_object());
        assert!(post["responses"]["401"]["headers"]["WWW-Authenticate"].is_object());
    }
    let batch =
        &doc["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(
        (batch["minItems"].as_u64(), batch["maxItems"].as_u64()),
        (Some(1), Some(1000))
    );
    let event = &doc["components"]["schemas"]["Event"];
    assert_eq!(event["required"], serde_json::json!(["accountId", "event"]));
    assert_eq!(event["additionalProperties"], false);
    assert_eq!(event["properties"]["event"]["maxLength"], 128);
    assert_eq!(event["properties"]["accountId"]["maximum"], u64::MAX);
    let item = &doc["components"]["schemas"]["ItemError"];
    assert_eq!(item["required"], serde_json::json!(["index", "message"]));
    assert_eq!(
        doc["components"]["schemas"]["Message"]["properties"]["errors"]["type"],
        serde_json::json!(["array", "null"])
    );
}
