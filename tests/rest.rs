//! A resource server reporting to an IdP over REST: two processes of the axum example, one
//! with `IDP_ANALYTICS_REPORT_TO` (the layer, no ClickHouse), one with the reporter and
//! ClickHouse behind it. Real servers throughout (`scripts/clickhouse`).

mod common;

use std::time::Duration;

use common::{
    app::App,
    proxy::{Mode, Proxy},
};
use http::Method;
use idp_analytics::schema::Schema;

const TOKEN: &str = "rs-token";

/// The IdP: the axum example with a `rs` reporter, confirming writes, on `port` (0: any).
async fn idp(schema: &Schema, port: u16, spool: Option<&str>) -> App {
    let url = common::url();
    let port = port.to_string();
    let mut env = vec![
        ("CLICKHOUSE_URL", url.as_str()),
        ("IDP_ANALYTICS_DATABASE", schema.database()),
        ("IDP_ANALYTICS_REPORTERS", "rs:rs-token"),
        ("IDP_ANALYTICS_CONFIRM_WRITES", "1"),
        ("PORT", port.as_str()),
    ];
    if let Some(dir) = spool {
        env.push(("IDP_ANALYTICS_SPOOL_DIR", dir));
    }
    App::start("axum", &env).await
}

/// A resource server reporting to `base` (`http://host:port`) with `token`.
async fn resource_server(base: &str, token: &str, spool: Option<&str>) -> App {
    let to = format!("{base}/events");
    let mut env = vec![
        ("IDP_ANALYTICS_REPORT_TO", to.as_str()),
        ("IDP_ANALYTICS_REPORT_TOKEN", token),
        // Nothing listens here: a resource server must not touch ClickHouse.
        ("CLICKHOUSE_URL", "http://127.0.0.1:1"),
    ];
    if let Some(dir) = spool {
        env.push(("IDP_ANALYTICS_SPOOL_DIR", dir));
    }
    App::start("axum", &env).await
}

fn fresh_dir(name: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("idp-analytics-rest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.display().to_string()
}

/// Sends requests `range` to the resource server, 16 at a time, round the three routes;
/// each must be answered 200.
async fn send(app: &App, range: std::ops::Range<u64>) {
    let paths = ["/projects/7", "/search?q=x", "/billing/invoices/3"];
    let mut all: Vec<u64> = range.collect();
    while !all.is_empty() {
        let chunk: Vec<u64> = all.drain(..all.len().min(16)).collect();
        let sent = futures::future::join_all(
            chunk
                .iter()
                .map(|&i| app.send(Method::GET, paths[(i % 3) as usize], Some(i % 50 + 1))),
        )
        .await;
        assert!(sent.iter().all(|s| *s == 200), "{sent:?}");
    }
}

/// Rows per event type and status, the count of rows with a latency, and (count, distinct
/// ids), all read with `FINAL`.
async fn table(schema: &Schema) -> (Vec<(String, u16, u64)>, u64, (u64, u64)) {
    let t = schema.qualified_table();
    let by_route = common::client()
        .query(&format!(
            "SELECT event_type, status, count() FROM {t} FINAL GROUP BY event_type, status ORDER BY event_type"
        ))
        .fetch_all::<(String, u16, u64)>()
        .await
        .unwrap();
    let timed = common::client()
        .query(&format!(
            "SELECT count() FROM {t} FINAL WHERE latency_us > 0 AND method = 'GET'"
        ))
        .fetch_one::<u64>()
        .await
        .unwrap();
    (by_route, timed, common::counts(schema).await)
}

fn expected(n: u64) -> Vec<(String, u16, u64)> {
    let per = |k: u64| (0..n).filter(|i| i % 3 == k).count() as u64;
    vec![
        ("/billing/invoices/{id}".into(), 200, per(2)),
        ("/projects/{id}".into(), 200, per(0)),
        ("/search".into(), 200, per(1)),
    ]
}

fn stopped_clean(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.contains(", 0 left unreported, 0 spool segments left"))
}

#[tokio::test]
async fn ten_thousand_requests_arrive_as_ten_thousand_rows() {
    let schema = prepare_database!().await;
    let idp = idp(&schema, 0, None).await;
    let rs = resource_server(idp.base(), TOKEN, None).await;
    send(&rs, 0..10_000).await;
    let rest = rs.stop().await;
    assert!(stopped_clean(&rest), "{rest:?}");
    idp.stop().await;
    assert_eq!(
        table(&schema).await,
        (expected(10_000), 10_000, (10_000, 10_000))
    );
    // The IdP stored them as its reporter's.
    let sources = common::client()
        .query(&format!(
            "SELECT DISTINCT source FROM {}",
            schema.qualified_table()
        ))
        .fetch_all::<String>()
        .await
        .unwrap();
    assert_eq!(sources, ["rs"]);
}

#[tokio::test]
async fn the_idp_killed_mid_run_loses_and_doubles_nothing() {
    let schema = prepare_database!().await;
    let spool = fresh_dir("killed");
    // A port free now, for both runs of the IdP: the resource server's URL stays the same.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = idp(&schema, port, None).await;
    let base = first.base().to_owned();
    let rs = resource_server(&base, TOKEN, Some(&spool)).await;
    send(&rs, 0..1_500).await;
    first.kill().await;
    // The resource server keeps taking requests while the IdP is away.
    send(&rs, 1_500..3_000).await;
    let second = idp(&schema, port, None).await;
    send(&rs, 3_000..4_000).await;
    let rest = rs.stop().await;
    assert!(stopped_clean(&rest), "{rest:?}");
    second.stop().await;
    assert_eq!(
        table(&schema).await,
        (expected(4_000), 4_000, (4_000, 4_000))
    );
}

#[tokio::test]
async fn resets_500s_and_silence_lose_and_double_nothing() {
    let schema = prepare_database!().await;
    let idp = idp(&schema, 0, None).await;
    let proxy = Proxy::start(idp.base()).await;
    let rs = resource_server(&proxy.url(), TOKEN, None).await;
    send(&rs, 0..500).await;
    proxy.set(Mode::Reset);
    send(&rs, 500..1_000).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set(Mode::Http500(3));
    send(&rs, 1_000..1_500).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set(Mode::BlackHole);
    send(&rs, 1_500..2_000).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set(Mode::Forward);
    send(&rs, 2_000..2_500).await;
    let rest = rs.stop().await;
    assert!(stopped_clean(&rest), "{rest:?}");
    idp.stop().await;
    assert_eq!(
        table(&schema).await,
        (expected(2_500), 2_500, (2_500, 2_500))
    );
}

#[tokio::test]
async fn a_wrong_token_keeps_the_events_for_the_right_one() {
    let schema = prepare_database!().await;
    let spool = fresh_dir("token");
    let idp = idp(&schema, 0, None).await;
    let rs = resource_server(idp.base(), "not-the-token", Some(&spool)).await;
    send(&rs, 0..300).await;
    // Refused (401) until the shutdown's deadline: the events stay in the spool.
    let rest = rs.stop().await;
    assert!(
        rest.iter()
            .any(|l| l.contains(" 0 left unreported") && !l.contains(" 0 spool segments left")),
        "{rest:?}"
    );
    assert_eq!(common::try_raw_count(&schema).await.unwrap_or(0), 0);
    let rs = resource_server(idp.base(), TOKEN, Some(&spool)).await;
    // The spooled events go first; wait for them (a liveness bound, not a timing).
    for _ in 0..600 {
        if common::try_raw_count(&schema).await.unwrap_or(0) >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rest = rs.stop().await;
    assert!(stopped_clean(&rest), "{rest:?}");
    idp.stop().await;
    assert_eq!(table(&schema).await, (expected(300), 300, (300, 300)));
}

/// Posts `body` to the IdP's `/events` with `Content-Encoding: gzip`.
async fn post_gzip(idp: &App, body: &[u8]) -> (http::StatusCode, String) {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(body).unwrap();
    let gz = gz.finish().unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!("{}/events", idp.base()))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(gz)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn gzip_over_the_decompressed_bound_is_413() {
    let schema = prepare_database!().await;
    let idp = idp(&schema, 0, None).await;
    // Valid JSON of two events, padded with spaces to 2 MiB: a few KiB compressed.
    let mut big = br#"[{"accountId": 1, "event": "big"},"#.to_vec();
    big.extend(std::iter::repeat_n(b' ', 2 << 20));
    big.extend(br#"{"accountId": 2, "event": "big"}]"#);
    let (status, body) = post_gzip(&idp, &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("decompressed"), "{body}");
    // The same events, small enough: stored.
    let small = br#"[{"accountId": 1, "event": "small"}, {"accountId": 2, "event": "small"}]"#;
    let (status, body) = post_gzip(&idp, small).await;
    assert_eq!(status, 200, "{body}");
    idp.stop().await;
    let types = common::client()
        .query(&format!(
            "SELECT event_type FROM {} FINAL",
            schema.qualified_table()
        ))
        .fetch_all::<String>()
        .await
        .unwrap();
    assert_eq!(types, ["small", "small"]);
}

/// The IdP answering `503` with `Retry-After: 2` twice: the sink waits the two seconds each
/// time (its own backoff starts at 100 ms) before it sends the batch again, and every event
/// arrives once.
#[tokio::test]
async fn retry_after_is_honoured_and_nothing_is_lost_or_doubled() {
    let schema = prepare_database!().await;
    let idp = idp(&schema, 0, None).await;
    let proxy = Proxy::start(idp.base()).await;
    proxy.set(Mode::Http503(2, 2));
    let rs = resource_server(&proxy.url(), TOKEN, None).await;
    send(&rs, 0..300).await;
    // A liveness bound, not a timing: both answers and their waits are done well before.
    let arrived = common::eventually(Duration::from_secs(60), || async {
        common::try_raw_count(&schema).await.unwrap_or(0) >= 300
    })
    .await;
    assert!(arrived, "the events did not reach the IdP");
    assert_eq!(proxy.failures_left(), 0);
    let rest = rs.stop().await;
    assert!(stopped_clean(&rest), "{rest:?}");
    idp.stop().await;
    // The first connection got the first 503; the next one came no sooner than its
    // Retry-After, and so did the one after the second 503.
    let accepted = proxy.accepted();
    assert!(accepted.len() >= 3, "{} connections", accepted.len());
    for pair in accepted[..3].windows(2) {
        let waited = pair[1] - pair[0];
        assert!(
            waited >= Duration::from_secs(2),
            "the sink sent again after {waited:?}, before the 2 s of Retry-After"
        );
    }
    assert_eq!(table(&schema).await, (expected(300), 300, (300, 300)));
}

/// The IdP behind TLS, with the test CA's certificate for 127.0.0.1.
#[cfg(feature = "rustls")]
mod https {
    use std::time::Duration;

    use idp_analytics::{Analytics, schema::Schema, writer::PauseReason};

    use super::{TOKEN, common, fresh_dir, idp};
    use crate::common::tls::{TlsFront, ca_file, other_ca_file};

    /// An in-process resource server's writer, reporting to `url` and trusting `ca`.
    fn writer(url: &str, ca: &std::path::Path, spool: &str) -> Analytics {
        try_writer(url, ca, spool).unwrap()
    }

    fn try_writer(
        url: &str,
        ca: &std::path::Path,
        spool: &str,
    ) -> idp_analytics::Result<Analytics> {
        Analytics::builder_reporting_to(format!("{url}/events"), TOKEN)
            .with_ca_file(ca)
            .with_spool_dir(spool)
            .with_flush_interval(Duration::from_millis(200))
            .build()
    }

    fn record(analytics: &Analytics, range: std::ops::Range<u64>) {
        for i in range {
            analytics.record(i % 50 + 1, "over-tls").unwrap();
        }
    }

    async fn stored(schema: &Schema) -> (u64, u64) {
        common::counts(schema).await
    }

    #[tokio::test]
    async fn events_reported_over_https_arrive_once() {
        let schema = crate::prepare_database!().await;
        let idp = idp(&schema, 0, None).await;
        let front = TlsFront::start(idp.base()).await;
        let spool = fresh_dir("https-ok");
        let analytics = writer(&front.url(), &ca_file(), &spool);
        record(&analytics, 0..2_000);
        let report = analytics.shutdown(Duration::from_secs(30)).await;
        assert_eq!(
            (report.written, report.left_in_spool),
            (2_000, 0),
            "{report:?}"
        );
        idp.stop().await;
        assert_eq!(stored(&schema).await, (2_000, 2_000));
    }

    #[tokio::test]
    async fn an_untrusted_ca_pauses_then_the_right_one_delivers_once() {
        let schema = crate::prepare_database!().await;
        let idp = idp(&schema, 0, None).await;
        let front = TlsFront::start(idp.base()).await;
        let spool = fresh_dir("https-untrusted");
        let analytics = writer(&front.url(), &other_ca_file(), &spool);
        record(&analytics, 0..500);
        let paused = common::eventually(Duration::from_secs(30), || async {
            analytics.stats().paused == Some(PauseReason::UntrustedCertificate)
        })
        .await;
        assert!(paused, "{:?}", analytics.stats());
        let report = analytics.shutdown(Duration::from_secs(1)).await;
        assert_eq!(report.written, 0, "{report:?}");
        assert!(report.unwritten.is_empty(), "{report:?}");
        assert!(report.left_in_spool > 0, "{report:?}");
        assert_eq!(common::try_raw_count(&schema).await.unwrap_or(0), 0);
        // Restarted with the right CA: the spooled events arrive, once. The spool is free
        // once the first writer's worker has let it go.
        drop(analytics);
        let mut reopened = None;
        for _ in 0..100 {
            match try_writer(&front.url(), &ca_file(), &spool) {
                Ok(analytics) => {
                    reopened = Some(analytics);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let analytics = reopened.expect("the spool was not released");
        let arrived = common::eventually(Duration::from_secs(60), || async {
            common::try_raw_count(&schema).await.unwrap_or(0) >= 500
        })
        .await;
        assert!(arrived, "{:?}", analytics.stats());
        let report = analytics.shutdown(Duration::from_secs(30)).await;
        assert_eq!(report.left_in_spool, 0, "{report:?}");
        assert_eq!(analytics.stats().paused, None);
        idp.stop().await;
        assert_eq!(stored(&schema).await, (500, 500));
    }
}
