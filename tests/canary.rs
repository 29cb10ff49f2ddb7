//! The inactivity watch against a real ClickHouse server, and the webhook notifier against a
//! small local HTTP server.

mod common;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use idp_analytics::{
    Error, InactivityWatch, KnownAccount, Notification, NotificationKind, Notifier, Usage,
    WebhookNotifier, canary::WatchBuilder, schema::Schema,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Collects what a watch delivers.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Notification>>>);

impl Inbox {
    fn take(&self) -> Vec<Notification> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn watch(&self, schema: &Schema) -> WatchBuilder {
        let inbox = self.clone();
        InactivityWatch::builder(
            Usage::new(common::client(), schema.clone()),
            move |n: Notification| {
                inbox.0.lock().unwrap().push(n);
                async { Ok::<_, std::io::Error>(()) }
            },
        )
        .with_settle_delay(Duration::from_millis(300))
    }
}

fn ids(notifications: &[Notification]) -> Vec<(u64, NotificationKind)> {
    let mut ids: Vec<_> = notifications
        .iter()
        .map(|n| (n.account_id, n.kind))
        .collect();
    ids.sort_by_key(|(id, _)| *id);
    ids
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn canary_notifies_once_across_checks_and_restarts() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(
        &schema,
        vec![
            common::event_at(1, "search", now - 30 * DAY),
            common::event_at(1, "search", now - 8 * DAY), // silent for 8 days
            common::event_at(2, "search", now - 6 * DAY), // silent for 6 days
            common::event_at(3, "search", now - DAY),
        ],
    )
    .await;
    let known = vec![
        KnownAccount::new(3, now - 90 * DAY),
        KnownAccount::new(40, now - 30 * DAY), // signed up and never did anything
        KnownAccount::new(41, now - DAY),      // signed up yesterday
    ];
    let inbox = Inbox::default();
    let configured = |inbox: &Inbox| {
        inbox
            .watch(&schema)
            .with_threshold(7 * DAY)
            .with_known_accounts(known.clone())
    };
    let watch = |inbox: &Inbox| configured(inbox).build().unwrap();

    let first = watch(&inbox);
    let report = first.check().await.unwrap();
    assert_eq!(report.inactive, 2);
    assert_eq!(report.delivered.len(), 2);
    let got = inbox.take();
    assert_eq!(
        ids(&got),
        [
            (1, NotificationKind::Inactive),
            (40, NotificationKind::Inactive)
        ]
    );
    let one = got.iter().find(|n| n.account_id == 1).unwrap();
    assert_eq!(secs(one.last_seen.unwrap()), secs(now - 8 * DAY));
    assert_eq!(one.threshold, 7 * DAY);
    assert!(one.to_string().contains("inactive for 8 days"), "{one}");
    let never = got.iter().find(|n| n.account_id == 40).unwrap();
    assert_eq!(never.last_seen, None);
    assert_eq!(never.signed_up, Some(now - 30 * DAY));

    // The same watch again: nothing new.
    let report = first.check().await.unwrap();
    assert_eq!(report.inactive, 2);
    assert!(report.delivered.is_empty());
    // A restart: a new instance reads what was notified.
    drop(first);
    let restarted = watch(&inbox);
    assert!(restarted.check().await.unwrap().delivered.is_empty());
    // A spawned watch, checking every 100 ms for a while.
    let running = configured(&inbox)
        .with_check_interval(Duration::from_millis(100))
        .build()
        .unwrap()
        .spawn();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.stop().await;
    assert!(inbox.take().is_empty());

    // A watch under another name keeps its own record.
    let other = inbox
        .watch(&schema)
        .with_name("five-days")
        .with_threshold(5 * DAY)
        .build()
        .unwrap();
    assert_eq!(
        ids(&other.check().await.unwrap().delivered),
        [
            (1, NotificationKind::Inactive),
            (2, NotificationKind::Inactive)
        ]
    );
    inbox.take();

    // Account 1 comes back: told once by a watch that notifies comebacks.
    common::write(&schema, vec![common::event_at(1, "search", now)]).await;
    let back = inbox
        .watch(&schema)
        .with_threshold(7 * DAY)
        .with_known_accounts(known.clone())
        .with_notify_back(true)
        .build()
        .unwrap();
    let report = back.check().await.unwrap();
    assert_eq!(ids(&report.delivered), [(1, NotificationKind::Active)]);
    let n = &report.delivered[0];
    assert_eq!(secs(n.inactive_since.unwrap()), secs(now - 8 * DAY));
    assert!(
        n.to_string().starts_with("Account 1 is active again"),
        "{n}"
    );
    assert!(back.check().await.unwrap().delivered.is_empty());
    assert!(watch(&inbox).check().await.unwrap().delivered.is_empty());
    assert_eq!(inbox.take().len(), 1);

    // What the watch keeps, as an operator would read it.
    let steps: Vec<(u64, String, String)> = common::client()
        .query(&format!(
            "SELECT account_id, toString(kind), toString(step) FROM {} \
             WHERE watch = 'inactive' AND step != 'claimed' ORDER BY account_id, kind",
            schema.qualified(&schema.watch_table())
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        steps,
        [
            (1, "inactive".into(), "delivered".into()),
            (1, "active".into(), "delivered".into()),
            (40, "inactive".into(), "delivered".into()),
        ]
    );
}

#[tokio::test]
async fn canary_two_instances_at_once_notify_once() {
    let schema = prepare_database!().await;
    let inbox = Inbox::default();
    let a = inbox.watch(&schema).build().unwrap();
    let b = inbox.watch(&schema).build().unwrap();
    // A first check each creates the tables and finds nothing, so that the checks below
    // run side by side from their first query (which of them claims first varies).
    common::write(
        &schema,
        vec![common::event_at(99, "search", SystemTime::now())],
    )
    .await;
    assert!(a.check().await.unwrap().delivered.is_empty());
    assert!(b.check().await.unwrap().delivered.is_empty());

    let now = SystemTime::now();
    let events = (1..=20)
        .map(|a| common::event_at(a, "search", now - (8 + a as u32) * DAY))
        .collect();
    common::write(&schema, events).await;
    let (ra, rb) = tokio::join!(a.check(), b.check());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let got = inbox.take();
    let mut per_account = BTreeMap::new();
    for n in &got {
        *per_account.entry(n.account_id).or_insert(0) += 1;
    }
    assert_eq!(per_account.len(), 20, "{:?}", ids(&got));
    assert!(per_account.values().all(|n| *n == 1), "{per_account:?}");
    assert_eq!(ra.delivered.len() + rb.delivered.len(), 20);
    // Both again, at once: nothing.
    let (ra, rb) = tokio::join!(a.check(), b.check());
    assert!(ra.unwrap().delivered.is_empty() && rb.unwrap().delivered.is_empty());
    assert!(inbox.take().is_empty());
}

#[tokio::test]
async fn canary_a_claim_stamped_earlier_elsewhere_wins() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    let events = (1..=3)
        .map(|a| common::event_at(a, "search", now - 9 * DAY))
        .collect();
    common::write(&schema, events).await;
    let client = common::client();
    schema.ensure_watch_table(&client).await.unwrap();
    let table = schema.qualified(&schema.watch_table());

    // Another instance's claims, stamped a second before ours but reaching the server while
    // ours settle.
    let rival = {
        let (client, table) = (client.clone(), table.clone());
        tokio::spawn(async move {
            let claims: Vec<(u64, u32, u32)> = loop {
                let rows: Vec<(u64, u32, u32)> = client
                    .query(&format!(
                        "SELECT account_id, toUInt32(last_seen), toUInt32(recorded_at) \
                         FROM {table} WHERE step = 'claimed'"
                    ))
                    .fetch_all()
                    .await
                    .unwrap();
                if rows.len() == 3 {
                    break rows;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            for (account, last_seen, at) in claims {
                client
                    .query(&format!(
                        "INSERT INTO {table} \
                         (watch, account_id, kind, last_seen, round, step, instance, recorded_at) \
                         VALUES ('inactive', ?, 'inactive', toDateTime(?), 0, 'claimed', \
                         toUUID('00000000-0000-4000-8000-000000000001'), toDateTime(?))"
                    ))
                    .bind(account)
                    .bind(last_seen)
                    .bind(at - 1)
                    .execute()
                    .await
                    .unwrap();
            }
        })
    };
    let inbox = Inbox::default();
    let watch = inbox
        .watch(&schema)
        .with_settle_delay(Duration::from_millis(1500))
        .build()
        .unwrap();
    let report = watch.check().await.unwrap();
    rival.await.unwrap();
    assert_eq!(report.inactive, 3);
    assert!(report.delivered.is_empty(), "{:?}", report.delivered);
    assert_eq!(report.claimed_elsewhere, 3);
    assert!(inbox.take().is_empty());
    // The rival's claims stand (they are not stale): no second attempt.
    assert!(watch.check().await.unwrap().delivered.is_empty());
}

#[tokio::test]
async fn canary_failed_notification_is_retried() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(&schema, vec![common::event_at(5, "search", now - 10 * DAY)]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let watch = InactivityWatch::builder(
        Usage::new(common::client(), schema.clone()),
        move |_n: Notification| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 0 {
                    Err("the mail server is down".into())
                } else {
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                }
            }
        },
    )
    .with_settle_delay(Duration::from_millis(100))
    .build()
    .unwrap();
    let report = watch.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.failed.len()), (0, 1));
    let report = watch.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.failed.len()), (1, 0));
    assert_eq!(report.delivered[0].account_id, 5);
    let report = watch.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.failed.len()), (0, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A local webhook endpoint: answers each request with the next status of `statuses` (the
/// last one repeats; 0 never answers), and keeps each request's head and body.
struct Hook {
    url: String,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

async fn hook(statuses: Vec<u16>) -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/quiet/T0SECRET",
        listener.local_addr().unwrap()
    );
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push((String::new(), String::new()));
                seen.len()
            };
            let status = statuses[(n - 1).min(statuses.len() - 1)];
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let read = socket.read(&mut chunk).await.unwrap();
                    assert!(read > 0, "connection closed before the request was whole");
                    buf.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break (head, text[end + 4..end + 4 + length].to_owned());
                        }
                    }
                };
                seen.lock().unwrap()[n - 1] = (head, body);
                if status == 0 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let answer = format!(
                    "HTTP/1.1 {status} Whatever\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
                let _ = socket.shutdown().await;
            });
        }
    });
    Hook { url, requests }
}

/// Keeps every log event, with its level and fields, for the current thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl Logs {
    fn errors(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, _)| *level == tracing::Level::ERROR)
            .map(|(_, text)| text.clone())
            .collect()
    }
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A notification as a watch makes it, for account 42.
async fn sample_notification(schema: &Schema) -> Notification {
    common::write(
        schema,
        vec![common::event_at(42, "search", SystemTime::now() - 9 * DAY)],
    )
    .await;
    let inbox = Inbox::default();
    inbox.watch(schema).build().unwrap().check().await.unwrap();
    inbox.take().pop().unwrap()
}

fn webhook(url: &str, attempts: u32) -> WebhookNotifier {
    WebhookNotifier::builder(url)
        .with_header("authorization", "Bearer hook-token")
        .with_max_attempts(attempts)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(80))
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[tokio::test]
async fn canary_webhook_gives_up_on_500_and_logs_an_error() {
    let schema = prepare_database!().await;
    let n = sample_notification(&schema).await;
    let server = hook(vec![500]).await;
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());

    let error = webhook(&server.url, 3).send(&n).await.unwrap_err();
    match &error {
        Error::Webhook {
            host,
            attempts,
            last,
        } => {
            assert_eq!(*attempts, 3);
            assert!(last.contains("500"), "{last}");
            assert!(server.url.contains(host.as_str()));
        }
        other => panic!("{other:?}"),
    }
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    for (head, body) in &requests {
        assert!(
            head.starts_with("POST /hooks/quiet/T0SECRET HTTP/1.1"),
            "{head}"
        );
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("authorization: bearer hook-token"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["accountId"], 42);
        assert_eq!(json["kind"], "inactive");
        assert_eq!(json["thresholdSeconds"], 7 * 86_400);
        assert_eq!(json["lastSeen"].as_str().unwrap().len(), 20);
    }
    let errors = logs.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("webhook gave up"), "{errors:?}");
    assert!(errors[0].contains("attempts=3"), "{errors:?}");
    // The secret part of the URL stays out of the log and the error.
    assert!(!errors[0].contains("T0SECRET") && !error.to_string().contains("T0SECRET"));
}

#[tokio::test]
async fn canary_webhook_retries_then_delivers_or_stops() {
    let schema = prepare_database!().await;
    let n = sample_notification(&schema).await;

    let flaky = hook(vec![500, 503, 204]).await;
    webhook(&flaky.url, 4).send(&n).await.unwrap();
    assert_eq!(flaky.requests.lock().unwrap().len(), 3);

    let refusing = hook(vec![400]).await;
    let error = webhook(&refusing.url, 4).send(&n).await.unwrap_err();
    assert!(
        matches!(error, Error::Webhook { attempts: 1, .. }),
        "{error:?}"
    );
    assert_eq!(refusing.requests.lock().unwrap().len(), 1);

    let silent = hook(vec![0]).await;
    let started = std::time::Instant::now();
    let error = webhook(&silent.url, 2).send(&n).await.unwrap_err();
    assert!(error.to_string().contains("no answer within"), "{error}");
    assert_eq!(silent.requests.lock().unwrap().len(), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn canary_watch_posts_to_a_webhook() {
    let schema = prepare_database!().await;
    common::write(
        &schema,
        vec![common::event_at(8, "search", SystemTime::now() - 8 * DAY)],
    )
    .await;
    let server = hook(vec![200]).await;
    // A notifier chosen at run time, as a trait object.
    let notifier: Arc<dyn Notifier> = Arc::new(webhook(&server.url, 2));
    let watch = InactivityWatch::builder(Usage::new(common::client(), schema.clone()), notifier)
        .with_settle_delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let report = watch.check().await.unwrap();
    assert_eq!(report.delivered.len(), 1);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let json: serde_json::Value = serde_json::from_str(&requests[0].1).unwrap();
    assert_eq!(json["accountId"], 8);
    assert_eq!(json["watch"], "inactive");
    assert!(
        json["text"]
            .as_str()
            .unwrap()
            .starts_with("Account 8 has been inactive")
    );
    assert!(watch.check().await.unwrap().delivered.is_empty());
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn canary_daily_digest_posts_to_a_webhook() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(
        &schema,
        vec![
            common::event_at(8, "search", now - 8 * DAY),
            common::event_at(9, "search", now - 9 * DAY),
        ],
    )
    .await;
    let server = hook(vec![200]).await;
    let server_now: u32 = common::client()
        .query("SELECT toUInt32(now())")
        .fetch_one()
        .await
        .unwrap();
    // Today's digest moment was a minute ago by the server's clock.
    let at = Duration::from_secs(u64::from((server_now - 60) % 86_400));
    let watch = InactivityWatch::builder(
        Usage::new(common::client(), schema.clone()),
        |_: Notification| async { Err::<(), _>(std::io::Error::other("not used")) },
    )
    .with_settle_delay(Duration::from_millis(100))
    .with_daily_digest(at, webhook(&server.url, 2))
    .build()
    .unwrap();
    let report = watch.check().await.unwrap();
    assert_eq!(report.delivered.len(), 2);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "one POST for the day");
    let json: serde_json::Value = serde_json::from_str(&requests[0].1).unwrap();
    assert_eq!(json["inactive"], 2);
    assert_eq!(json["notifications"][0]["accountId"], 8);
    assert_eq!(json["notifications"][1]["accountId"], 9);
    // Another account goes quiet: it waits for tomorrow's digest.
    common::write(
        &schema,
        vec![common::event_at(10, "search", now - 10 * DAY)],
    )
    .await;
    let report = watch.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.waiting), (0, 1));
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

/// A watch whose check is stuck on a ClickHouse that accepts and never answers still stops
/// when asked, so that a shutdown goes on to flush the writer.
#[tokio::test]
async fn watch_stops_while_clickhouse_does_not_answer() {
    let url = common::black_hole().await;
    let usage = Usage::new(
        clickhouse::Client::default().with_url(url),
        Schema::new("db", "events").unwrap(),
    );
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = checks.clone();
    let watch = InactivityWatch::builder(usage, move |_: Notification| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::io::Error>(()) }
    })
    .build()
    .unwrap();
    let handle = watch.spawn();
    // Let the first check start and block on the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!handle.is_finished());
    tokio::time::timeout(Duration::from_secs(30), handle.stop())
        .await
        .expect("the watch did not stop within 30 s");
    assert_eq!(checks.load(Ordering::SeqCst), 0);
}

/// A notifier that never answers holds a check no longer than its claim timeout: the
/// notification is failed, to be tried again at the next check.
#[tokio::test]
async fn watch_check_ends_at_its_deadline_with_a_stuck_notifier() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(&schema, vec![common::event_at(1, "search", now - 8 * DAY)]).await;
    let watch = InactivityWatch::builder(
        Usage::new(common::client(), schema.clone()),
        |_: Notification| std::future::pending::<Result<(), std::io::Error>>(),
    )
    .with_threshold(7 * DAY)
    .with_settle_delay(Duration::from_millis(300))
    .with_claim_timeout(Duration::from_secs(2))
    .build()
    .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), watch.check())
        .await
        .expect("the check still waits on its notifier after 60 s")
        .unwrap();
    assert_eq!(report.inactive, 1);
    assert!(report.delivered.is_empty());
    assert_eq!(report.failed.len(), 1);
}

/// A webhook that never answers holds a check no longer than its notification deadline;
/// the notification is not marked notified, and the next check, the webhook answering now,
/// delivers it once.
#[tokio::test]
async fn watch_notify_deadline_ends_a_check_next_delivers_once() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(&schema, vec![common::event_at(3, "search", now - 8 * DAY)]).await;
    // The first request is never answered; the second is, with 204.
    let server = hook(vec![0, 204]).await;
    let webhook = WebhookNotifier::builder(&server.url)
        .with_max_attempts(1)
        .with_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let watch = InactivityWatch::builder(Usage::new(common::client(), schema.clone()), webhook)
        .with_settle_delay(Duration::from_millis(300))
        .with_notify_deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    // A liveness bound far below the webhook's own 600 s timeout.
    let report = tokio::time::timeout(Duration::from_secs(60), watch.check())
        .await
        .expect("the check still waits on the webhook after 60 s")
        .unwrap();
    assert_eq!((report.delivered.len(), report.failed.len()), (0, 1));
    assert_eq!(server.requests.lock().unwrap().len(), 1);
    let report = watch.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.failed.len()), (1, 0));
    assert_eq!(report.delivered[0].account_id, 3);
    assert!(watch.check().await.unwrap().delivered.is_empty());
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[test]
fn watch_notify_deadline_must_be_more_than_zero() {
    let usage = Usage::new(common::client(), Schema::new("db", "events").unwrap());
    let err = InactivityWatch::builder(usage, |_: Notification| async {
        Ok::<_, std::io::Error>(())
    })
    .with_notify_deadline(Duration::ZERO)
    .build()
    .unwrap_err();
    assert!(err.to_string().contains("notification deadline"), "{err}");
}

/// Webhooks over `https://`, behind a TLS front with the test CA's certificate.
#[cfg(feature = "rustls")]
mod https {
    use idp_analytics::{Error, WebhookNotifier};

    use super::{hook, sample_notification};
    use crate::common::tls::{TlsFront, ca_file, other_ca_file};

    #[tokio::test]
    async fn canary_webhook_over_https_with_the_test_ca() {
        let schema = crate::prepare_database!().await;
        let n = sample_notification(&schema).await;
        let server = hook(vec![200]).await;
        let front = TlsFront::start(&server.url).await;
        let webhook = WebhookNotifier::builder(format!("{}/hooks/quiet/T0SECRET", front.url()))
            .with_header("authorization", "Bearer hook-token")
            .with_ca_file(ca_file())
            .build()
            .unwrap();
        webhook.send(&n).await.unwrap();
        let requests = server.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 1);
        assert!(
            requests[0]
                .0
                .starts_with("POST /hooks/quiet/T0SECRET HTTP/1.1"),
            "{}",
            requests[0].0
        );
        let json: serde_json::Value = serde_json::from_str(&requests[0].1).unwrap();
        assert_eq!(json["accountId"], 42);
    }

    #[tokio::test]
    async fn canary_webhook_untrusted_ca_names_the_host_only() {
        let schema = crate::prepare_database!().await;
        let n = sample_notification(&schema).await;
        let server = hook(vec![200]).await;
        let front = TlsFront::start(&server.url).await;
        let url = format!("{}/hooks/quiet/T0SECRET?key=K3Y", front.url());
        let webhook = WebhookNotifier::builder(&url)
            .with_ca_file(other_ca_file())
            .with_max_attempts(4)
            .build()
            .unwrap();
        let error = webhook.send(&n).await.unwrap_err();
        let host = front.url().trim_start_matches("https://").to_owned();
        match &error {
            Error::Webhook {
                host: shown,
                attempts,
                last,
            } => {
                assert_eq!(shown, &host);
                // A refused certificate is not tried again.
                assert_eq!(*attempts, 1);
                assert!(last.contains("not signed by a trusted CA"), "{last}");
                assert!(last.contains(&host), "{last}");
            }
            other => panic!("{other:?}"),
        }
        let shown = error.to_string();
        assert!(
            !shown.contains("T0SECRET") && !shown.contains("K3Y") && !shown.contains("/hooks"),
            "{shown}"
        );
        assert!(server.requests.lock().unwrap().is_empty());
    }
}
