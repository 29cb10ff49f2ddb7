//! The watch with a detector and its fatigue controls, against a real ClickHouse server:
//! notify once across restarts and instances, at most one notification per interval, a
//! recovery window before "back", and a digest instead of a flood.

mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use idp_analytics::{
    InactivityWatch, Notification, NotificationKind, Usage,
    canary::{Detector, Digest, WatchBuilder},
    schema::Schema,
};

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

/// Collects what watches deliver, notifications and digests.
#[derive(Clone, Default)]
struct Inbox {
    notifications: Arc<Mutex<Vec<Notification>>>,
    digests: Arc<Mutex<Vec<Digest>>>,
}

impl Inbox {
    fn take(&self) -> Vec<Notification> {
        std::mem::take(&mut *self.notifications.lock().unwrap())
    }

    fn take_digests(&self) -> Vec<Digest> {
        std::mem::take(&mut *self.digests.lock().unwrap())
    }

    fn watch(&self, schema: &Schema) -> WatchBuilder {
        let inbox = self.clone();
        InactivityWatch::builder(
            Usage::new(common::client(), schema.clone()),
            move |n: Notification| {
                inbox.notifications.lock().unwrap().push(n);
                async { Ok::<_, std::io::Error>(()) }
            },
        )
        .with_settle_delay(Duration::from_millis(300))
    }

    fn with_digest(&self, builder: WatchBuilder, limit: usize) -> WatchBuilder {
        let inbox = self.clone();
        builder.with_digest(limit, move |d: Digest| {
            inbox.digests.lock().unwrap().push(d);
            async { Ok::<_, std::io::Error>(()) }
        })
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

/// Account 1 active every day for 30 days until 3 days ago; account 2 every day until an
/// hour ago; account 3 once, 5 days ago.
async fn daily_story(schema: &Schema, now: SystemTime) {
    let mut events = Vec::new();
    for d in 3..33u32 {
        events.push(common::event_at(1, "search", now - d * DAY - HOUR));
    }
    for d in 0..30u32 {
        events.push(common::event_at(2, "search", now - d * DAY - HOUR));
    }
    events.push(common::event_at(3, "search", now - 5 * DAY));
    common::write(schema, events).await;
}

#[tokio::test]
async fn fatigue_detector_watch_notifies_once() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    daily_story(&schema, now).await;
    let inbox = Inbox::default();
    let watch = || {
        inbox
            .watch(&schema)
            .with_detector(Detector::default())
            .build()
            .unwrap()
    };

    // Two instances at once: the daily account silent 3 days, told once, and the
    // one-event account, silent 5 days, judged by the others' daily rhythm. The fixed week
    // would not have said anything yet.
    let (a, b) = (watch(), watch());
    let (ra, rb) = tokio::join!(a.check(), b.check());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.delivered.len() + rb.delivered.len(), 2);
    let got = inbox.take();
    assert_eq!(
        ids(&got),
        [
            (1, NotificationKind::Inactive),
            (3, NotificationKind::Inactive)
        ]
    );
    let one_shot = got.iter().find(|n| n.account_id == 3).unwrap();
    // Every day, or every weekday when its one day was a weekday.
    let why = one_shot.explanation.as_deref().unwrap();
    assert!(
        why.starts_with(
            "1 active day in 90 days, too few for a rhythm of its own; \
             the usual account here is active every "
        ) && why.contains("; silent 5 days;"),
        "{one_shot:?}"
    );
    let n = got.iter().find(|n| n.account_id == 1).unwrap();
    assert_eq!(n.threshold, 7 * DAY);
    assert_eq!(
        n.explanation.as_deref(),
        Some("usually active every day; silent 3 days; its longest gap in 90 days was 0 days")
    );
    assert_eq!(
        n.to_string(),
        "Account 1 is at risk: usually active every day; silent 3 days; \
         its longest gap in 90 days was 0 days."
    );
    let json = serde_json::to_value(n).unwrap();
    assert_eq!(json["explanation"], n.explanation.clone().unwrap());

    // Again, both at once, then after a restart: nothing.
    let (ra, rb) = tokio::join!(a.check(), b.check());
    assert!(ra.unwrap().delivered.is_empty() && rb.unwrap().delivered.is_empty());
    drop((a, b));
    assert!(watch().check().await.unwrap().delivered.is_empty());
    assert!(inbox.take().is_empty());
}

#[tokio::test]
async fn fatigue_one_notification_per_interval() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(&schema, vec![common::event_at(1, "search", now - 2 * DAY)]).await;
    let inbox = Inbox::default();
    // A 5-second threshold, so that the account goes quiet again within the test.
    let watch = |interval: Duration| {
        inbox
            .watch(&schema)
            .with_threshold(Duration::from_secs(5))
            .with_min_interval(interval)
            .build()
            .unwrap()
    };
    assert_eq!(
        ids(&watch(DAY).check().await.unwrap().delivered),
        [(1, NotificationKind::Inactive)]
    );
    // Back, noted at once; quiet again 5 seconds later: a new quiet period, but the last
    // notification was less than a day ago, so it waits, across a restart too.
    common::write(
        &schema,
        vec![common::event_at(1, "search", SystemTime::now())],
    )
    .await;
    assert!(watch(DAY).check().await.unwrap().delivered.is_empty());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let report = watch(DAY).check().await.unwrap();
    assert_eq!(report.inactive, 1);
    assert!(report.delivered.is_empty());
    assert!(watch(DAY).check().await.unwrap().delivered.is_empty());
    // With a shorter interval, the waiting notification goes out, once.
    assert_eq!(
        ids(&watch(Duration::from_secs(1))
            .check()
            .await
            .unwrap()
            .delivered),
        [(1, NotificationKind::Inactive)]
    );
    assert!(watch(DAY).check().await.unwrap().delivered.is_empty());
    assert_eq!(inbox.take().len(), 2);
}

#[tokio::test]
async fn fatigue_back_only_after_the_recovery_window() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(&schema, vec![common::event_at(1, "search", now - 9 * DAY)]).await;
    let inbox = Inbox::default();
    let watch = |recovery: Duration| {
        inbox
            .watch(&schema)
            .with_notify_back(true)
            .with_recovery(recovery)
            .build()
            .unwrap()
    };
    assert_eq!(
        ids(&watch(HOUR).check().await.unwrap().delivered),
        [(1, NotificationKind::Inactive)]
    );
    common::write(
        &schema,
        vec![common::event_at(1, "search", SystemTime::now())],
    )
    .await;
    // Active again, but not for an hour yet: not back, across a restart.
    assert!(watch(HOUR).check().await.unwrap().delivered.is_empty());
    assert!(watch(HOUR).check().await.unwrap().delivered.is_empty());
    // A watch with a window of a second, two seconds later: back, once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = watch(Duration::from_secs(1)).check().await.unwrap();
    assert_eq!(ids(&back.delivered), [(1, NotificationKind::Active)]);
    assert!(watch(HOUR).check().await.unwrap().delivered.is_empty());
    assert_eq!(inbox.take().len(), 2);
    // What the watch keeps, as an operator would read it.
    let steps: Vec<(String, String)> = common::client()
        .query(&format!(
            "SELECT toString(kind), toString(step) FROM {} \
             WHERE step != 'claimed' ORDER BY recorded_at, kind, step",
            schema.qualified(&schema.watch_table())
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        steps,
        [
            ("inactive".into(), "delivered".into()),
            ("active".into(), "returning".into()),
            ("active".into(), "delivered".into()),
        ]
    );
}

#[tokio::test]
async fn fatigue_older_watch_table_gains_a_step() {
    let schema = prepare_database!().await;
    let client = common::client();
    let old = schema
        .create_watch_table_sql()
        .replace(", 'returning' = 5", "");
    assert!(!old.contains("= 5"), "{old}");
    client.query(&old).execute().await.unwrap();
    schema.ensure_watch_table(&client).await.unwrap();
    let step: String = client
        .query(&format!(
            "SELECT type FROM system.columns WHERE database = '{}' AND table = '{}' AND name = 'step'",
            schema.database(),
            schema.watch_table()
        ))
        .fetch_one()
        .await
        .unwrap();
    assert!(step.contains("'returning' = 5"), "{step}");
}

#[tokio::test]
async fn fatigue_a_flood_becomes_one_digest() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    let events = (1..=300u64)
        .map(|a| common::event_at(a, "search", now - 10 * DAY - a as u32 * HOUR))
        .collect();
    common::write(&schema, events).await;
    let inbox = Inbox::default();
    let watch = || {
        inbox
            .with_digest(inbox.watch(&schema), 100)
            .build()
            .unwrap()
    };
    // Two instances at once: one digest of the 300, no single notification.
    let (a, b) = (watch(), watch());
    let (ra, rb) = tokio::join!(a.check(), b.check());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.delivered.len() + rb.delivered.len(), 300);
    assert!(inbox.take().is_empty());
    let digests = inbox.take_digests();
    assert_eq!(digests.len(), 1);
    let digest = &digests[0];
    let mut accounts: BTreeMap<u64, usize> = BTreeMap::new();
    for n in &digest.notifications {
        *accounts.entry(n.account_id).or_default() += 1;
    }
    assert_eq!(accounts.len(), 300);
    assert!(accounts.values().all(|n| *n == 1));
    assert!(
        digest
            .to_string()
            .starts_with("300 accounts went quiet and 0 accounts came back")
    );
    let json = serde_json::to_value(digest).unwrap();
    assert_eq!(json["inactive"], 300);
    assert_eq!(json["notifications"].as_array().unwrap().len(), 300);

    // Delivered, so not again, after a restart either.
    drop((a, b));
    assert!(watch().check().await.unwrap().delivered.is_empty());
    // A few at a time go out one by one.
    common::write(
        &schema,
        vec![
            common::event_at(1_001, "search", now - 20 * DAY),
            common::event_at(1_002, "search", now - 20 * DAY),
        ],
    )
    .await;
    assert_eq!(watch().check().await.unwrap().delivered.len(), 2);
    assert_eq!(inbox.take().len(), 2);
    assert!(inbox.take_digests().is_empty());
}

/// The ClickHouse server's clock, which a digest schedule follows.
async fn server_now() -> u32 {
    common::client()
        .query("SELECT toUInt32(now())")
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test]
async fn fatigue_a_scheduled_digest_waits_for_its_moment() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    let quiet = |accounts: std::ops::RangeInclusive<u64>| {
        accounts
            .map(|a| common::event_at(a, "search", now - 10 * DAY - a as u32 * HOUR))
            .collect::<Vec<_>>()
    };
    common::write(&schema, quiet(1..=3)).await;
    let inbox = Inbox::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Hourly digests; the latest digest moment `ago` seconds before the server's now.
    let watch = |ago: u32, server_now: u32| {
        let (inbox, fail) = (inbox.clone(), fail.clone());
        let offset = Duration::from_secs(u64::from((server_now - ago) % 3_600));
        inbox
            .watch(&schema)
            .with_periodic_digest(HOUR, offset, move |d: Digest| {
                let failing = fail.load(std::sync::atomic::Ordering::SeqCst);
                if !failing {
                    inbox.digests.lock().unwrap().push(d);
                }
                async move {
                    if failing {
                        Err(std::io::Error::other("the digest's endpoint is down"))
                    } else {
                        Ok(())
                    }
                }
            })
            .build()
            .unwrap()
    };
    let logged = |accounts: &'static str| {
        let sql = format!(
            "SELECT count() FROM {} WHERE account_id IN ({accounts})",
            schema.qualified(&schema.watch_table())
        );
        async move {
            common::client()
                .query(&sql)
                .fetch_one::<u64>()
                .await
                .unwrap()
        }
    };

    // The digest moment was 10 minutes ago, and none has been sent since: due. It fails,
    // so each of its notifications is failed, and the next check sends it again.
    let first = watch(600, server_now().await);
    let report = first.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.failed.len()), (0, 3));
    assert!(inbox.take_digests().is_empty() && inbox.take().is_empty());
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let report = first.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.waiting), (3, 0));
    let digests = inbox.take_digests();
    assert_eq!(digests.len(), 1);
    let accounts: Vec<u64> = digests[0]
        .notifications
        .iter()
        .map(|n| n.account_id)
        .collect();
    assert_eq!(accounts, [1, 2, 3]);
    assert!(inbox.take().is_empty(), "no single notification");

    // Two more accounts go quiet: they wait for the next digest moment, and nothing is
    // recorded for them, by this instance or by a new one after a restart.
    common::write(&schema, quiet(4..=5)).await;
    let report = first.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.waiting), (0, 2));
    drop(first);
    let restarted = watch(600, server_now().await);
    let report = restarted.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.waiting), (0, 2));
    assert!(inbox.take_digests().is_empty());
    assert_eq!(logged("4, 5").await, 0);

    // The next digest moment (the schedule's moment a second ago, after the first digest
    // was delivered): one digest of the two, and the first three are not sent again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let next = watch(1, server_now().await);
    let report = next.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.waiting), (2, 0));
    let digests = inbox.take_digests();
    assert_eq!(digests.len(), 1);
    assert_eq!(
        digests[0]
            .notifications
            .iter()
            .map(|n| n.account_id)
            .collect::<Vec<_>>(),
        [4, 5]
    );
    let report = next.check().await.unwrap();
    assert_eq!((report.delivered.len(), report.waiting), (0, 0));
    assert!(inbox.take_digests().is_empty());

    // A schedule whose offset is not shorter than its period is refused.
    let err = inbox
        .watch(&schema)
        .with_periodic_digest(HOUR, HOUR, |_: Digest| async {
            Ok::<(), std::io::Error>(())
        })
        .build()
        .unwrap_err();
    assert!(matches!(err, idp_analytics::Error::Config(_)), "{err}");
}
