//! The admin router against a real ClickHouse server, and its page in headless Chromium.
#![cfg(feature = "axum")]

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{Router, body::Body};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use idp_analytics::{Admin, Day, Days, Event, KnownAccount, Source, Usage, admin, schema::Schema};
use tower::ServiceExt as _;

const DAY: Duration = Duration::from_secs(86_400);

/// Accounts with a story each, written `now`:
/// 1 busy every day; 2 every other day; 3 daily until 8 days ago; 4 last seen 6 days ago;
/// 5 last seen 12 days ago, with an event type that is markup; 50 signed up 20 days ago and
/// never did anything; 51 signed up yesterday.
async fn story(schema: &Schema, now: SystemTime) -> (Vec<KnownAccount>, Vec<Event>) {
    let mut events = Vec::new();
    for d in 0..30u32 {
        for i in 0..(d % 5 + 1) {
            let kind = ["search", "/projects/{id}", "export"][i as usize % 3];
            events.push(common::event_at(
                1,
                kind,
                now - d * DAY - Duration::from_secs(60 + u64::from(i)),
            ));
        }
        if d % 2 == 0 && d < 20 {
            events.push(common::event_at(
                2,
                "search",
                now - d * DAY - Duration::from_secs(90),
            ));
        }
        if d >= 8 {
            events.push(common::event_at(
                3,
                "export",
                now - d * DAY - Duration::from_secs(30),
            ));
        }
    }
    events.push(common::event_at(4, "search", now - 6 * DAY));
    events.push(common::event_at(
        5,
        "<script>alert('x')</script>",
        now - 12 * DAY,
    ));
    common::write(schema, events.clone()).await;
    let known = vec![
        KnownAccount::new(1, now - 100 * DAY),
        KnownAccount::new(50, now - 20 * DAY),
        KnownAccount::new(51, now - DAY),
    ];
    (known, events)
}

fn app(schema: &Schema, known: Vec<KnownAccount>) -> Router {
    let usage = Usage::new(common::client(), schema.clone());
    Router::new().nest(
        "/admin/analytics",
        Admin::new(usage, admin::bearer("admin-demo"))
            .with_known_accounts(known)
            .into_router(),
    )
}

async fn get(
    app: &Router,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn get_json(app: &Router, uri: &str) -> serde_json::Value {
    let (status, headers, body) = get(app, uri, Some("admin-demo")).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    serde_json::from_str(&body).unwrap()
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let day = Day::of(t);
    format!(
        "{day}T{:02}:{:02}:{:02}Z",
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A dashboard asked before the writer has created its table (a moment after an
/// application starts) answers 503 and when to ask again, not a database error; once the
/// table is there it answers.
#[tokio::test]
async fn admin_before_the_table_exists_says_so_then_answers() {
    let schema = prepare_database!().await;
    let app = app(&schema, Vec::new());
    let usage = Usage::new(common::client(), schema.clone());
    let week = Days::ending_today(7);

    let missing = usage.account(1, week).await.unwrap_err();
    assert!(
        matches!(&missing, idp_analytics::Error::TableMissing { table } if *table == schema.qualified_table()),
        "{missing}"
    );
    for uri in [
        "/admin/analytics/accounts/1/usage",
        "/admin/analytics/inactive?days=7",
        "/admin/analytics",
    ] {
        let (status, headers, body) = get(&app, uri, Some("admin-demo")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert_eq!(headers[header::RETRY_AFTER], "1", "{uri}");
        assert!(body.contains("does not exist yet"), "{uri}: {body}");
    }

    common::write(
        &schema,
        vec![common::event_at(1, "search", SystemTime::now())],
    )
    .await;
    let usage_json = get_json(&app, "/admin/analytics/accounts/1/usage").await;
    assert_eq!(usage_json["totalEvents"], 1, "{usage_json}");
    assert_eq!(usage.account(1, week).await.unwrap().total_events, 1);
}

#[tokio::test]
async fn admin_json_endpoints_answer_and_are_guarded() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    let (known, events) = story(&schema, now).await;
    let app = app(&schema, known);

    for uri in [
        "/admin/analytics",
        "/admin/analytics/inactive?days=7",
        "/admin/analytics/at-risk",
        "/admin/analytics/accounts/1/usage",
    ] {
        let (status, _, body) = get(&app, uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(!body.contains("accountId"));
        let (status, _, _) = get(&app, uri, Some("admin-demo-not")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }

    // Silent for 8 and 12 days, and never active: reported. Silent for 6 days: not.
    let quiet = get_json(&app, "/admin/analytics/inactive?days=7").await;
    let at = |ago: Duration, less: u64| rfc3339(now - ago - Duration::from_secs(less));
    assert_eq!(
        quiet,
        serde_json::json!([
            {"accountId": 50, "lastSeen": null, "signedUp": rfc3339(now - 20 * DAY)},
            {"accountId": 5, "lastSeen": at(12 * DAY, 0), "signedUp": null},
            {"accountId": 3, "lastSeen": at(8 * DAY, 30), "signedUp": null},
        ])
    );
    assert_eq!(get_json(&app, "/admin/analytics/inactive").await, quiet);

    // At risk: 3 (daily, now silent 8 days), 4 and 5 (one event 6 and 12 days ago, judged
    // by the rhythm of the accounts that have one: the median is active every day) and 50
    // (never active); not 2 (every other day) or 1.
    let risk = get_json(&app, "/admin/analytics/at-risk").await;
    let risk = risk.as_array().unwrap();
    let mut ids: Vec<u64> = risk
        .iter()
        .map(|f| f["accountId"].as_u64().unwrap())
        .collect();
    let scores: Vec<f64> = risk.iter().map(|f| f["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{risk:?}");
    ids.sort_unstable();
    assert_eq!(ids, [3, 4, 5, 50], "{risk:?}");
    let find = |id: u64| risk.iter().find(|f| f["accountId"] == id).unwrap();
    let three = find(3);
    assert_eq!(three["reason"], "silent");
    assert_eq!(three["lastSeen"], at(8 * DAY, 30));
    assert_eq!(three["basis"], "everyDay");
    assert_eq!(three["usualPeriodDays"], 1);
    assert!(
        three["explanation"]
            .as_str()
            .unwrap()
            .starts_with("usually active every day; silent 8 days"),
        "{three}"
    );
    assert_eq!(find(5)["reason"], "silent");
    assert_eq!(find(5)["basis"], "population");
    assert_eq!(find(5)["usualPeriodDays"], 1);
    assert!(
        find(4)["explanation"]
            .as_str()
            .unwrap()
            .starts_with("1 active day in 90 days, too few for a rhythm of its own"),
        "{}",
        find(4)
    );
    assert_eq!(find(50)["reason"], "neverActive");
    assert_eq!(find(50)["lastSeen"], serde_json::Value::Null);
    let one = get_json(&app, "/admin/analytics/at-risk?limit=1").await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["accountId"], risk[0]["accountId"]);
    let (status, _, body) = get(&app, "/admin/analytics/at-risk?limit=0", Some("admin-demo")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let five = get_json(&app, "/admin/analytics/inactive?days=5").await;
    let ids: Vec<u64> = five
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["accountId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [50, 5, 3, 4]);
    for bad in ["days=0", "days=seven", "days=-1"] {
        let (status, _, body) = get(
            &app,
            &format!("/admin/analytics/inactive?{bad}"),
            Some("admin-demo"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body.contains("\"error\""), "{body}");
    }

    // One account's numbers, over the default 30 days and over one day.
    let ones: Vec<&Event> = events.iter().filter(|e| e.account_id() == 1).collect();
    let usage = get_json(&app, "/admin/analytics/accounts/1/usage").await;
    let in_range = |e: &&&Event| e.time() >= Days::ending_today(30).first().start();
    let n = ones.iter().filter(in_range).count();
    assert_eq!(usage["accountId"], 1);
    assert_eq!(usage["totalEvents"], n as u64);
    let per_day_total: u64 = usage["perDay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["events"].as_u64().unwrap())
        .sum();
    assert_eq!(per_day_total, n as u64);
    assert_eq!(
        usage["activeDays"],
        usage["perDay"].as_array().unwrap().len()
    );
    assert_eq!(usage["lastSeen"], at(Duration::ZERO, 60));
    let day = Day::of(now - 3 * DAY);
    let one_day = get_json(
        &app,
        &format!("/admin/analytics/accounts/1/usage?from={day}&to={day}"),
    )
    .await;
    let expected = ones.iter().filter(|e| Day::of(e.time()) == day).count();
    assert_eq!(one_day["totalEvents"], expected as u64);
    assert_eq!(
        one_day["days"],
        serde_json::json!({"first": day.to_string(), "last": day.to_string()})
    );
    let (status, _, _) = get(
        &app,
        "/admin/analytics/accounts/x/usage",
        Some("admin-demo"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = get(
        &app,
        "/admin/analytics/accounts/1/usage?from=2024-05-02&to=2024-05-01",
        Some("admin-demo"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // All accounts.
    let daily = get_json(&app, "/admin/analytics/active").await;
    let daily = daily.as_array().unwrap();
    assert_eq!(daily.len(), 30);
    assert_eq!(daily[29]["start"], Day::of(now).to_string());
    // Each day's active accounts, as the events written say.
    for d in daily {
        let day: Day = d["start"].as_str().unwrap().parse().unwrap();
        let mut active: Vec<u64> = events
            .iter()
            .filter(|e| Day::of(e.time()) == day)
            .map(Event::account_id)
            .collect();
        active.sort_unstable();
        active.dedup();
        assert_eq!(d["accounts"], active.len() as u64, "{day}");
    }
    let weekly = get_json(&app, "/admin/analytics/active?period=week").await;
    assert!((5..=6).contains(&weekly.as_array().unwrap().len()));
    let top = get_json(&app, "/admin/analytics/accounts?limit=2").await;
    assert_eq!(top[0]["accountId"], 1);
    assert_eq!(top.as_array().unwrap().len(), 2);
    let types = get_json(&app, "/admin/analytics/event-types?limit=2").await;
    assert_eq!(types.as_array().unwrap().len(), 2);
    assert_eq!(types[0]["eventType"], "search");
}

/// Without a token, no path says whether it exists: an unknown path gets the same `401`
/// (JSON, with `WWW-Authenticate`) as a known one. With it, refusals are JSON too, and every
/// JSON answer says `nosniff`.
#[tokio::test]
async fn admin_guards_every_path_and_refuses_in_json() {
    let schema = prepare_database!().await;
    common::write(
        &schema,
        vec![common::event_at(1, "search", SystemTime::now())],
    )
    .await;
    let app = app(&schema, Vec::new());
    for uri in [
        "/admin/analytics/nope",
        "/admin/analytics/accounts/1/nope",
        "/admin/analytics/inactive",
    ] {
        let (status, headers, body) = get(&app, uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer", "{uri}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        assert_eq!(body, r#"{"error":"unauthorized"}"#, "{uri}");
    }
    let (status, headers, body) = get(&app, "/admin/analytics/nope", Some("admin-demo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body, r#"{"error":"not found"}"#);
    for id in ["x", "-1", "18446744073709551616"] {
        let uri = format!("/admin/analytics/accounts/{id}/usage");
        let (status, headers, body) = get(&app, &uri, Some("admin-demo")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            json["error"].as_str().unwrap().contains("account id"),
            "{body}"
        );
    }
    for uri in [
        "/admin/analytics/inactive",
        "/admin/analytics/accounts/1/usage",
        "/admin/analytics/inactive?days=0",
        "/admin/analytics/nope",
    ] {
        let (_, headers, _) = get(&app, uri, Some("admin-demo")).await;
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
    }
}

/// The longest quiet threshold neither panics the page nor skips the range check of
/// `/inactive`'s default.
#[tokio::test]
async fn admin_takes_any_quiet_threshold() {
    let schema = prepare_database!().await;
    common::write(
        &schema,
        vec![common::event_at(1, "search", SystemTime::now())],
    )
    .await;
    for threshold in [
        Duration::MAX,
        Duration::ZERO,
        Duration::from_secs(u64::MAX / 2),
    ] {
        let usage = Usage::new(common::client(), schema.clone());
        let app = Router::new().nest(
            "/admin/analytics",
            Admin::new(usage, admin::bearer("admin-demo"))
                .with_quiet_after(threshold)
                .into_router(),
        );
        for uri in ["/admin/analytics", "/admin/analytics/inactive"] {
            let (status, _, body) = get(&app, uri, Some("admin-demo")).await;
            assert_eq!(status, StatusCode::OK, "{threshold:?} {uri}: {body}");
        }
    }
}

/// The page names each listed event type's sources, escaped: two types sent by different
/// sources each show theirs, a type sent by two sources shows both, and events stored
/// without a source name none.
#[tokio::test]
async fn admin_page_shows_each_event_types_sources() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    let from = |name: &str| Source::new(name).unwrap();
    common::write(
        &schema,
        vec![
            common::event_at(1, "signup", now - DAY).with_source(from("<b>billing</b>")),
            common::event_at(2, "signup", now).with_source(from("billing")),
            common::event_at(1, "search", now),
            common::event_at(3, "upload", now).with_source(from("mobile&app")),
            // Older than the page's days: its source is not shown.
            common::event_at(3, "upload", now - 60 * DAY).with_source(from("old-reporter")),
        ],
    )
    .await;
    let app = app(&schema, Vec::new());
    let (status, _, html) = get(&app, "/admin/analytics", Some("admin-demo")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let row = |event_type: &str| {
        let start = html
            .find(&format!("<td><code>{event_type}</code></td>"))
            .unwrap_or_else(|| panic!("no row for {event_type}: {html}"));
        let end = start + html[start..].find("</tr>").unwrap();
        html[start..end].to_owned()
    };
    let signup = row("signup");
    assert!(
        signup.contains(
            "<td class=\"sources\"><code>&lt;b&gt;billing&lt;/b&gt;</code>, <code>billing</code></td>"
        ),
        "{signup}"
    );
    let upload = row("upload");
    assert!(
        upload.contains("<td class=\"sources\"><code>mobile&amp;app</code></td>"),
        "{upload}"
    );
    assert!(!html.contains("old-reporter"), "{html}");
    assert!(!html.contains("<b>billing"), "{html}");
    let search = row("search");
    assert!(search.contains("<td class=\"sources\"></td>"), "{search}");
}

/// `GET /inactive` lists at most `limit` accounts, and its `Link` header leads to the next
/// page until every quiet account has been listed once, in order; the page shows the count
/// of all of them and the first rows.
#[tokio::test]
async fn admin_pages_through_inactive_accounts() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    // 25 accounts quiet for 10 to 34 days; three of them at the same second; one active.
    let mut events: Vec<Event> = (0..25u64)
        .map(|i| {
            let ago = if i < 3 {
                10 * DAY
            } else {
                (10 + i as u32) * DAY
            };
            common::event_at(100 + i, "search", now - ago)
        })
        .collect();
    events.push(common::event_at(1, "search", now));
    common::write(&schema, events).await;
    for known in [
        Vec::new(),
        vec![
            KnownAccount::new(7, now - 40 * DAY),
            KnownAccount::new(8, now - 50 * DAY),
        ],
    ] {
        let app = app(&schema, known.clone());
        let all = get_json(&app, "/admin/analytics/inactive?days=7").await;
        let all = all.as_array().unwrap().clone();
        assert_eq!(all.len(), 25 + known.len());
        let mut paged = Vec::new();
        let mut uri = "/admin/analytics/inactive?days=7&limit=4".to_owned();
        for _ in 0..20 {
            let (status, headers, body) = get(&app, &uri, Some("admin-demo")).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            let page: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            assert!(page.len() <= 4);
            paged.extend(page);
            let Some(link) = headers.get(header::LINK) else {
                break;
            };
            let link = link.to_str().unwrap();
            let next = link
                .strip_prefix("<")
                .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("{link}"));
            uri = format!("/admin/analytics/inactive{next}");
        }
        assert_eq!(paged, all);
        let (status, _, _) = get(
            &app,
            "/admin/analytics/inactive?limit=0",
            Some("admin-demo"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = get(
            &app,
            "/admin/analytics/inactive?after=x_y",
            Some("admin-demo"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // The page: 5 rows of 25, the count of all.
    let usage = Usage::new(common::client(), schema.clone());
    let app = Router::new().nest(
        "/admin/analytics",
        Admin::new(usage, admin::bearer("admin-demo"))
            .with_quiet_rows(5)
            .into_router(),
    );
    let (status, _, html) = get(&app, "/admin/analytics", Some("admin-demo")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<b id=\"quiet-count\">25</b>"), "{html}");
    let quiet = html.split("id=\"quiet-accounts\"").nth(1).unwrap();
    let quiet = quiet.split("</table>").next().unwrap();
    assert_eq!(quiet.matches("<tr data-account=").count(), 5, "{quiet}");
    assert!(html.contains("And 20 more"), "{html}");
}

/// A ClickHouse that accepts and never answers: the admin router answers `504` as JSON
/// after the query timeout.
#[tokio::test]
async fn admin_answers_504_when_clickhouse_does_not_answer() {
    let url = common::black_hole().await;
    let usage = Usage::new(
        clickhouse::Client::default().with_url(url),
        Schema::new("db", "events").unwrap(),
    )
    .with_query_timeout(Duration::from_millis(500));
    let app = Router::new().nest(
        "/admin/analytics",
        Admin::new(usage, admin::bearer("admin-demo")).into_router(),
    );
    for uri in [
        "/admin/analytics/inactive",
        "/admin/analytics/accounts/1/usage",
        "/admin/analytics",
    ] {
        let (status, headers, body) =
            tokio::time::timeout(Duration::from_secs(60), get(&app, uri, Some("admin-demo")))
                .await
                .unwrap_or_else(|_| panic!("{uri}: no answer after 60 s"));
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{uri}: {body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body, r#"{"error":"ClickHouse did not answer within 500ms"}"#,
            "{uri}"
        );
    }
}

/// Chromium from Debian's `chromium` package (or `CHROMIUM`), or a loud failure.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return path.into();
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "Chromium is needed to render the admin page and was not found on PATH.\n\
             Install it with `apt-get install -y chromium` (.ci/run does), or set CHROMIUM."
        )
    })
}

async fn headless(html: &Path, extra: &[String]) -> String {
    let profile = tempdir("chromium-profile");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("Chromium did not finish within 120 s")
    .expect("Chromium could not be started");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "Chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A fresh directory under the target directory's temporary space.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn admin_page_renders_in_headless_chromium() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    let (known, _) = story(&schema, now).await;
    let app = app(&schema, known);

    let (status, headers, html) = get(&app, "/admin/analytics", Some("admin-demo")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");

    let dir = tempdir("admin-page");
    let page = dir.join("admin.html");
    std::fs::write(&page, &html).unwrap();

    // The page as Chromium builds it.
    let dom = headless(&page, &["--dump-dom".into()]).await;
    let chart_start = dom.find("<svg id=\"dau-chart\"").expect("no chart");
    let chart = &dom[chart_start..chart_start + dom[chart_start..].find("</svg>").unwrap()];
    assert_eq!(chart.matches("<rect class=\"bar\"").count(), 30);
    assert!(chart.contains(": 2 active accounts</title>"), "{chart}");
    let table_start = dom
        .find("<table id=\"quiet-accounts\"")
        .expect("no quiet table");
    let table = &dom[table_start..table_start + dom[table_start..].find("</table>").unwrap()];
    let rows: Vec<&str> = table
        .match_indices("<tr data-account=\"")
        .map(|(i, m)| {
            let rest = &table[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(rows, ["50", "5", "3"]);
    assert!(table.contains("never active"));
    assert!(table.contains("8 days") && table.contains("12 days"));
    assert!(table.contains(&rfc3339(now - 12 * DAY)));
    // A sparkline on every quiet and every active row.
    assert_eq!(table.matches("class=\"sparkline\"").count(), 3);
    let active_start = dom
        .find("<table id=\"active-accounts\"")
        .expect("no active table");
    let active = &dom[active_start..];
    let active = &active[..active.find("</table>").unwrap()];
    assert_eq!(active.matches("class=\"sparkline\"").count(), 5);
    // The at-risk accounts, each with its activity against its baseline.
    let risk_start = dom.find("<table id=\"at-risk\"").expect("no at-risk table");
    let risk = &dom[risk_start..];
    let risk = &risk[..risk.find("</table>").unwrap()];
    let mut rows: Vec<&str> = risk
        .match_indices("<tr data-account=\"")
        .map(|(i, m)| {
            let rest = &risk[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    rows.sort_unstable();
    assert_eq!(rows, ["3", "4", "5", "50"], "{risk}");
    assert!(
        risk.contains("usually active every day; silent 8 days"),
        "{risk}"
    );
    assert!(
        risk.contains("signed up 20 days ago and never active"),
        "{risk}"
    );
    assert_eq!(risk.matches("class=\"baseline-chart\"").count(), 4);
    assert_eq!(risk.matches("class=\"base\"").count(), 4);
    // Markup in an event type is shown, not run.
    assert!(dom.contains("&lt;script&gt;alert('x')&lt;/script&gt;"));
    assert!(!dom.contains("<script"));

    // A screenshot, as in the README.
    let png = dir.join("admin.png");
    headless(
        &page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,1360".into(),
        ],
    )
    .await;
    let image = std::fs::read(&png).unwrap();
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(image.len() > 20_000, "{} bytes", image.len());
    if std::env::var_os("UPDATE_DOCS_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/admin.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::copy(&png, &docs).unwrap();
    }
}
