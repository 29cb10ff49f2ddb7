//! The cluster topology against the real cluster of `scripts/cluster` (ZooKeeper and 2
//! shards x 2 replicas of ClickHouse on loopback): exactly once through a killed replica, a
//! lost answer and ZooKeeper away; the same answers as one server; one notification from
//! two watches on different servers; the axum example on the cluster.
//!
//! The tests run one at a time (they kill servers and stop ZooKeeper).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use common::cluster::{self, SERIAL, Server};
use idp_analytics::{
    Analytics, Event, InactivityWatch, KnownAccount, Notification, Stats, Usage,
    schema::Schema,
    usage::{Day, Days, Period},
};

const DAY: Duration = Duration::from_secs(86_400);

/// The servers' URLs, starting at server `first`.
fn urls_from(servers: &[Server], first: usize) -> Vec<String> {
    (0..servers.len())
        .map(|i| servers[(first + i) % servers.len()].url.clone())
        .collect()
}

/// `count()` with `FINAL`, `uniqExact(event_id)`, and `count()` without `FINAL` (what a plain
/// query sees before any merge), through the `Distributed` table.
async fn counts(server: &Server, schema: &Schema) -> (u64, u64, u64) {
    let client = server.client();
    let table = schema.qualified_table();
    let (all, unique): (u64, u64) = client
        .query(&format!(
            "SELECT count(), uniqExact(event_id) FROM {table} FINAL"
        ))
        .fetch_one()
        .await
        .unwrap();
    let raw: u64 = client
        .query(&format!("SELECT count() FROM {table}"))
        .fetch_one()
        .await
        .unwrap();
    (all, unique, raw)
}

/// A server's local rows: count, distinct ids, a checksum of the ids, and the accounts.
type LocalRows = ((u64, u64, u64), BTreeSet<u64>);

/// Each server's local rows.
async fn local_rows(server: &Server, schema: &Schema) -> LocalRows {
    let client = server.client();
    let table = schema.qualified(&schema.local_table());
    let summary: (u64, u64, u64) = client
        .query(&format!(
            "SELECT count(), uniqExact(event_id), sum(cityHash64(toString(event_id))) FROM {table}"
        ))
        .fetch_one()
        .await
        .unwrap();
    let accounts: Vec<u64> = client
        .query(&format!("SELECT DISTINCT account_id FROM {table}"))
        .fetch_all()
        .await
        .unwrap();
    (summary, accounts.into_iter().collect())
}

/// Checks the shards: both replicas of each hold the same rows, and each account is on
/// exactly one shard. Returns the rows per shard.
async fn check_shards(servers: &[Server], schema: &Schema) -> Vec<u64> {
    cluster::sync(servers, schema, &schema.local_table()).await;
    let mut per_shard: BTreeMap<u32, LocalRows> = BTreeMap::new();
    for server in servers {
        let rows = local_rows(server, schema).await;
        assert_eq!(rows.0.0, rows.0.1, "a duplicate row on {}", server.url);
        match per_shard.get(&server.shard) {
            Some(first) => assert_eq!(
                first, &rows,
                "the replicas of shard {} differ ({} against the first)",
                server.shard, server.url
            ),
            None => {
                per_shard.insert(server.shard, rows);
            }
        }
    }
    let shards: Vec<&BTreeSet<u64>> = per_shard.values().map(|(_, a)| a).collect();
    for (i, a) in shards.iter().enumerate() {
        for b in &shards[i + 1..] {
            assert!(a.is_disjoint(b), "an account has rows on two shards");
        }
    }
    per_shard.values().map(|((n, _, _), _)| *n).collect()
}

/// The writer, after an outage, writes all `sent` events by itself (without a shutdown's
/// push), then shuts down with nothing unwritten.
async fn resumes_by_itself(analytics: &Analytics, sent: u64) {
    let resumed = common::eventually(Duration::from_secs(120), || async {
        analytics.stats().written == sent
    })
    .await;
    let report = analytics.shutdown(Duration::from_secs(120)).await;
    assert!(
        resumed,
        "the writer did not resume: {:?}",
        analytics.stats()
    );
    assert!(report.unwritten.is_empty(), "{report:?}");
}

fn writer(schema: &Schema, urls: Vec<String>, capacity: usize) -> Analytics {
    Analytics::builder(urls[0].clone())
        .with_urls(urls)
        .with_schema(schema.clone())
        .with_queue_capacity(capacity)
        .with_max_rows(10_000)
        .with_flush_interval(Duration::from_millis(200))
        .with_backoff(Duration::from_millis(100), Duration::from_secs(2))
        .with_receive_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_with_a_replica_killed_write_each_event_once() {
    let _serial = SERIAL.lock().await;
    let schema = cluster::database("three_writers").await;
    let servers = cluster::servers().await;
    const PER_WRITER: u64 = 100_000;
    let writers: Vec<Analytics> = (0..3)
        .map(|i| writer(&schema, urls_from(&servers, i), PER_WRITER as usize))
        .collect();
    // The producers write the second half only after the kill, so that the
    // kill always falls in the middle of the run, however fast the machine.
    let (killed, gate) = tokio::sync::watch::channel(false);
    let producers: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(w, analytics)| {
            let analytics = analytics.clone();
            let mut gate = gate.clone();
            tokio::spawn(async move {
                for chunk in 0..(PER_WRITER / 1000) {
                    if chunk == PER_WRITER / 2000 {
                        gate.wait_for(|killed| *killed).await.unwrap();
                    }
                    let events = (0..1000)
                        .map(|i| {
                            let n = chunk * 1000 + i;
                            Event::new(
                                1 + (n * 7 + w as u64) % 997,
                                ["search", "view", "edit"][(n % 3) as usize],
                            )
                            .unwrap()
                        })
                        .collect();
                    analytics.try_record_all(events).unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    let _restore = cluster::Restore;
    // Mid-run: SIGKILL shard 1's first replica, the one the first writer prefers.
    let written = || writers.iter().map(|w| w.stats().written).sum::<u64>();
    assert!(common::eventually(Duration::from_secs(120), || async { written() >= 60_000 }).await);
    cluster::script(&["kill", "1", "1"]);
    let at_kill = written();
    killed.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster::script(&["start"]);
    for p in producers {
        p.await.unwrap();
    }
    let mut retried = 0;
    for analytics in &writers {
        let report = analytics.shutdown(Duration::from_secs(300)).await;
        assert!(report.unwritten.is_empty(), "{report:?}");
        retried += analytics.stats().retried_batches;
    }
    eprintln!("written at the kill: {at_kill}; batches retried: {retried}");

    let per_shard = check_shards(&servers, &schema).await;
    assert_eq!(per_shard.iter().sum::<u64>(), 3 * PER_WRITER);
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    for server in &servers {
        assert_eq!(
            counts(server, &schema).await,
            (3 * PER_WRITER, 3 * PER_WRITER, 3 * PER_WRITER),
            "through {}",
            server.url
        );
    }
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_leaves_no_duplicate() {
    let _serial = SERIAL.lock().await;
    let schema = cluster::database("lost_answer").await;
    let servers = cluster::servers().await;
    // Create the tables first, so that the proxy cuts the answer to an insert.
    let setup = writer(&schema, vec![servers[0].url.clone()], 10);
    setup.try_record(Event::new(1, "setup").unwrap()).unwrap();
    let report = setup.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");

    let proxy = common::proxy::Proxy::start(&servers[1].url).await;
    proxy.set(common::proxy::Mode::CutAnswer);
    let analytics = writer(&schema, vec![proxy.url()], 10_000);
    let events: Vec<Event> = (0..5000)
        .map(|i| Event::new(100 + i % 50, "search").unwrap())
        .collect();
    analytics.try_record_all(events).unwrap();
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    assert!(
        analytics.stats().retried_batches >= 1,
        "the answer was not cut"
    );
    check_shards(&servers, &schema).await;
    // No FINAL, no merge: the retried block was dropped by the shards' replicated tables.
    assert_eq!(counts(&servers[2], &schema).await, (5001, 5001, 5001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_away_for_30_s_pauses_the_writer_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let schema = cluster::database("zookeeper_away").await;
    let servers = cluster::servers().await;
    let spool = common::temp_dir("cluster-zookeeper");
    let analytics = Analytics::builder(servers[0].url.clone())
        .with_urls(urls_from(&servers, 0))
        .with_schema(schema.clone())
        .with_spool_dir(&spool)
        .with_flush_interval(Duration::from_millis(200))
        .with_backoff(Duration::from_millis(100), Duration::from_secs(2))
        .with_receive_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let producer = {
        let analytics = analytics.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            // About 45 s of load: 200 events every 100 ms.
            for tick in 0..450u64 {
                let events = (0..200)
                    .map(|i| Event::new(1 + (tick * 200 + i) % 301, "search").unwrap())
                    .collect::<Vec<_>>();
                sent += events.len() as u64;
                analytics.try_record_all(events).unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _restore = cluster::Restore;
    cluster::script(&["zookeeper-stop"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = analytics.stats();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let before_back = analytics.stats();
    cluster::script(&["zookeeper-start"]);
    let sent = producer.await.unwrap();
    resumes_by_itself(&analytics, sent).await;
    assert!(
        before_back.retried_batches > during.retried_batches,
        "inserts kept failing while ZooKeeper was away"
    );
    // While ZooKeeper was away, hardly anything was written (what was in flight at most).
    assert!(
        before_back.written - during.written <= 10_000,
        "{during:?} {before_back:?}"
    );
    check_shards(&servers, &schema).await;
    assert_eq!(counts(&servers[3], &schema).await, (sent, sent, sent));
    std::fs::remove_dir_all(spool).ok();
}

/// The stats of `analytics` at the end of every second of `d`.
async fn stats_each_second(analytics: &Analytics, d: Duration) -> Vec<Stats> {
    let mut seen = Vec::new();
    for _ in 0..d.as_secs() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        seen.push(analytics.stats());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_shard_down_for_15_s_keeps_the_events_and_fails_questions() {
    let _serial = SERIAL.lock().await;
    let schema = cluster::database("shard_away").await;
    let servers = cluster::servers().await;
    let spool = common::temp_dir("cluster-shard");
    // Shard 2's servers first: the server the writer talks to stays up, and sends shard 1's
    // rows on to shard 1's servers, which are both down for a while.
    let urls = urls_from(&servers, 2);
    let analytics = Analytics::builder(urls[0].clone())
        .with_urls(urls)
        .with_schema(schema.clone())
        .with_spool_dir(&spool)
        .with_flush_interval(Duration::from_millis(200))
        .with_backoff(Duration::from_millis(100), Duration::from_secs(2))
        .with_receive_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let producer = {
        let analytics = analytics.clone();
        tokio::spawn(async move {
            // About 30 s of load: 100 events every 100 ms, over accounts 1..=200 (both
            // shards hold some: checked below).
            let mut sent: BTreeMap<u64, u64> = BTreeMap::new();
            for tick in 0..300u64 {
                let events = (0..100)
                    .map(|i| {
                        let account = 1 + (tick * 100 + i) % 200;
                        *sent.entry(account).or_default() += 1;
                        Event::new(account, ["search", "view"][(i % 2) as usize]).unwrap()
                    })
                    .collect::<Vec<_>>();
                analytics.try_record_all(events).unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sent
        })
    };
    assert!(
        common::eventually(Duration::from_secs(60), || async {
            analytics.stats().written >= 2_000
        })
        .await,
        "nothing written before the outage: {:?}",
        analytics.stats()
    );
    let _restore = cluster::Restore;
    let before_kill = analytics.stats();
    eprintln!("before the kill: {before_kill:?}");
    cluster::script(&["kill", "1", "1"]);
    cluster::script(&["kill", "1", "2"]);
    let at_kill = analytics.stats();
    // What was in flight at the kill has failed or landed within 3 s.
    let outage = stats_each_second(&analytics, Duration::from_secs(3)).await;
    let during = *outage.last().unwrap();

    // A question through the Distributed tables fails, from every server the connection
    // lists (shard 1's cannot be reached, shard 2's cannot reach shard 1), with the
    // server's error: it names the servers it could not reach.
    let connection = idp_analytics::Connection::builder_for(urls_from(&servers, 0))
        .build()
        .unwrap();
    let usage = Usage::from_connection(&connection, schema.clone())
        .with_query_timeout(Duration::from_secs(10));
    let days = Days::ending(Day::today(), 2);
    let shard_1_native = |s: &Server| {
        let http: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
        format!("127.0.0.1:{}", http + 100)
    };
    for asked in [
        usage.top_accounts(days, 1000).await.map(|_| ()),
        // Account 1 is on shard 1, account 2 on shard 2 (checked below): every shard is
        // asked, whichever accounts a question names.
        usage.account(1, days).await.map(|_| ()),
        usage.account(2, days).await.map(|_| ()),
        usage.last_seen().await.map(|_| ()),
    ] {
        let error = asked.expect_err("a question answered with a shard down");
        let text = error.to_string();
        assert!(
            matches!(error, idp_analytics::Error::ClickHouse(_))
                && text.contains("All connection tries failed")
                && text.contains(&shard_1_native(&servers[0]))
                && text.contains(&shard_1_native(&servers[1])),
            "{text}"
        );
    }

    let outage = [
        outage,
        stats_each_second(&analytics, Duration::from_secs(12)).await,
    ]
    .concat();
    let before_back = *outage.last().unwrap();
    cluster::script(&["start"]);
    eprintln!(
        "at the kill: {at_kill:?}\n3 s later: {during:?}\nbefore the restart: {before_back:?}"
    );
    // While the shard was down: nothing written (every batch holds rows of both shards),
    // the same batch retried, not paused, every event kept in the spool, nothing dropped.
    assert_eq!(before_back.written, during.written, "{before_back:?}");
    assert!(
        before_back.retried_batches >= during.retried_batches + 3,
        "{during:?} {before_back:?}"
    );
    for stats in &outage {
        assert_eq!(
            (stats.paused, stats.pauses),
            (None, before_kill.pauses),
            "{stats:?}"
        );
        assert_eq!(
            stats.dropped_queue_full
                + stats.dropped_spool_full
                + stats.dropped_closed
                + stats.dead_lettered
                + stats.spool_errors,
            0,
            "{stats:?}"
        );
    }
    // Every event taken since is pending (read while the producer goes on: one tick apart).
    let taken = before_back.enqueued - during.enqueued;
    let kept = before_back.pending - during.pending;
    assert!(
        taken >= 10_000 && taken.abs_diff(kept) <= 100,
        "{during:?} {before_back:?}"
    );
    assert!(before_back.spooled_bytes > 0, "{before_back:?}");

    let sent = producer.await.unwrap();
    let total: u64 = sent.values().sum();
    resumes_by_itself(&analytics, total).await;
    let after = analytics.stats();
    assert_eq!(after.pending, 0, "{after:?}");
    assert_eq!(after.spooled_bytes, 0, "{after:?}");

    let per_shard = check_shards(&servers, &schema).await;
    assert_eq!(per_shard.iter().sum::<u64>(), total);
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    // No FINAL, no merge needed: each event once, through any server.
    for server in &servers {
        assert_eq!(
            counts(server, &schema).await,
            (total, total, total),
            "through {}",
            server.url
        );
    }
    // The same questions answer again. From the events table: exactly.
    let exact = Usage::from_connection(&connection, schema.clone())
        .with_read_from(idp_analytics::ReadFrom::Events);
    let answers = |top: Vec<idp_analytics::AccountActivity>| -> BTreeMap<u64, u64> {
        top.into_iter().map(|a| (a.account_id, a.events)).collect()
    };
    assert_eq!(answers(exact.top_accounts(days, 1000).await.unwrap()), sent);
    assert_eq!(exact.account(1, days).await.unwrap().total_events, sent[&1]);
    assert_eq!(exact.last_seen().await.unwrap().len(), sent.len());
    // From the rollup (the default): never more than sent, and short only of the batch a
    // server of shard 1 was storing when it was killed, if the kill came between the
    // events table's part and the view's (the retried batch is then dropped as a
    // duplicate before it reaches the view).
    cluster::sync(&servers, &schema, &schema.local(&schema.rollup_table())).await;
    let shard_1_accounts = local_rows(&servers[0], &schema).await.1;
    assert!(shard_1_accounts.contains(&1) && !shard_1_accounts.contains(&2));
    let rollup = answers(usage.top_accounts(days, 1000).await.unwrap());
    let mut short = 0;
    for (account, &n) in &sent {
        let got = rollup.get(account).copied().unwrap_or(0);
        assert!(got <= n, "account {account}: {got} of {n}");
        assert!(
            got == n || shard_1_accounts.contains(account),
            "account {account} of shard 2: {got} of {n}"
        );
        short += n - got;
    }
    assert!(short <= 2_000, "the rollup lacks {short} events");
    // Copying the months again from the events table mends it (the rollup absorbs rows fed
    // twice).
    let client = servers[2].client();
    let mut insert = client.clone();
    for (name, value) in schema.insert_settings() {
        insert = insert.with_setting(*name, *value);
    }
    let months: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT toYYYYMM(inserted_at) FROM {}",
            schema.qualified_table()
        ))
        .fetch_all()
        .await
        .unwrap();
    for month in months {
        insert
            .query(&schema.backfill_month_sql(month))
            .execute()
            .await
            .unwrap();
    }
    cluster::sync(&servers, &schema, &schema.local(&schema.rollup_table())).await;
    assert_eq!(answers(usage.top_accounts(days, 1000).await.unwrap()), sent);
    assert_eq!(usage.account(1, days).await.unwrap().total_events, sent[&1]);
    eprintln!(
        "sent {total}; per shard {per_shard:?}; batches retried {}; the rollup lacked {short} \
         before the copy",
        after.retried_batches
    );
    std::fs::remove_dir_all(spool).ok();
}

/// The same events on one server and on the cluster.
fn usage_events(now: SystemTime) -> Vec<Event> {
    let mut events = Vec::new();
    for account in 1..=40u64 {
        // Account a is last seen a/2 days ago, with a few events on earlier days.
        for k in 0..(account % 5 + 1) {
            let at = now
                - Duration::from_secs(
                    account * DAY.as_secs() / 2 + k * DAY.as_secs() + 37 * account,
                );
            events.push(common::event_at(
                account,
                ["search", "view"][(k % 2) as usize],
                at,
            ));
        }
    }
    events
}

#[tokio::test]
async fn usage_and_inactive_accounts_equal_a_single_server() {
    let _serial = SERIAL.lock().await;
    let single = prepare_database!().await;
    let schema = cluster::database("usage_equal").await;
    let servers = cluster::servers().await;
    let now = SystemTime::now();
    let events = usage_events(now);
    common::write(&single, events.clone()).await;
    let analytics = writer(&schema, urls_from(&servers, 1), 10_000);
    analytics.try_record_all(events).unwrap();
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    cluster::sync(&servers, &schema, &schema.local(&schema.rollup_table())).await;

    let one = Usage::new(common::client(), single.clone());
    let many = Usage::new(servers[3].client(), schema.clone());
    let today = Day::today();
    for days in [
        Days::ending(today, 30),
        Days::ending(today, 7),
        Days::new(today.sub_days(20), today.sub_days(5)).unwrap(),
    ] {
        for account in [1, 2, 7, 19, 40, 41] {
            assert_eq!(
                one.account(account, days).await.unwrap(),
                many.account(account, days).await.unwrap()
            );
        }
        for period in [Period::Day, Period::Week] {
            assert_eq!(
                one.active_accounts(days, period).await.unwrap(),
                many.active_accounts(days, period).await.unwrap()
            );
        }
        assert_eq!(
            one.top_event_types(days, 10).await.unwrap(),
            many.top_event_types(days, 10).await.unwrap()
        );
        assert_eq!(
            one.top_accounts(days, 10).await.unwrap(),
            many.top_accounts(days, 10).await.unwrap()
        );
        assert_eq!(
            one.events_per_day(&[1, 3, 8], days).await.unwrap(),
            many.events_per_day(&[1, 3, 8], days).await.unwrap()
        );
    }
    assert_eq!(
        one.last_seen().await.unwrap(),
        many.last_seen().await.unwrap()
    );
    let known = [
        KnownAccount::new(500, now - 30 * DAY),
        KnownAccount::new(3, now - 30 * DAY),
    ];
    for quiet in [DAY, 5 * DAY, 12 * DAY] {
        let a = one.inactive_accounts(now - quiet, &known).await.unwrap();
        assert_eq!(
            a,
            many.inactive_accounts(now - quiet, &known).await.unwrap()
        );
        assert!(!a.is_empty());
    }
}

#[tokio::test]
async fn two_watches_on_different_servers_notify_once() {
    let _serial = SERIAL.lock().await;
    let schema = cluster::database("two_watches").await;
    let servers = cluster::servers().await;
    let now = SystemTime::now();
    let analytics = writer(&schema, urls_from(&servers, 0), 10_000);
    let events: Vec<Event> = (1..=30u64)
        .map(|a| {
            common::event_at(
                a,
                "search",
                now - Duration::from_secs(a * DAY.as_secs() / 3),
            )
        })
        .collect();
    analytics.try_record_all(events).unwrap();
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    // Quiet for 5 days: accounts 15..=30 (15 was last seen 5 days before `now`).
    let inbox: Arc<Mutex<Vec<Notification>>> = Arc::default();
    let watch = |server: &Server| {
        let inbox = inbox.clone();
        InactivityWatch::builder(
            Usage::new(server.client(), schema.clone()),
            move |n: Notification| {
                inbox.lock().unwrap().push(n);
                async { Ok::<_, std::io::Error>(()) }
            },
        )
        .with_threshold(5 * DAY)
        .with_settle_delay(Duration::from_millis(500))
        .build()
        .unwrap()
    };
    // Shard 1's first replica and shard 2's second: different servers, different shards.
    let (a, b) = (watch(&servers[0]), watch(&servers[3]));
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(a.check(), b.check());
        ra.unwrap();
        rb.unwrap();
    }
    let mut notified: Vec<u64> = inbox.lock().unwrap().iter().map(|n| n.account_id).collect();
    notified.sort_unstable();
    assert_eq!(notified, (15..=30).collect::<Vec<u64>>());
}

#[tokio::test]
async fn the_axum_example_on_the_cluster_records_each_request_once() {
    let _serial = SERIAL.lock().await;
    let schema = cluster::database("axum_example").await;
    let servers = cluster::servers().await;
    let urls = urls_from(&servers, 2).join(",");
    let cluster_name = cluster::name();
    let app = common::app::App::start(
        "axum",
        &[
            ("CLICKHOUSE_URL", &urls),
            ("IDP_ANALYTICS_DATABASE", schema.database()),
            ("IDP_ANALYTICS_CLUSTER", &cluster_name),
        ],
    )
    .await;
    for i in 0..200u64 {
        let status = app
            .send(
                http::Method::GET,
                &format!("/projects/{i}"),
                Some(1 + i % 9),
            )
            .await;
        assert!(status.is_success(), "{status}");
    }
    app.stop().await;
    check_shards(&servers, &schema).await;
    let n: u64 = servers[1]
        .client()
        .query(&format!(
            "SELECT count() FROM {} WHERE event_type LIKE '%/projects/%'",
            schema.qualified_table()
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 200);
    let (all, unique, raw) = counts(&servers[1], &schema).await;
    assert_eq!((all, unique), (raw, raw));
}

#[tokio::test]
async fn the_rollup_backfill_runs_on_the_cluster() {
    let _serial = SERIAL.lock().await;
    let schema = cluster::database("backfill").await;
    let servers = cluster::servers().await;
    let now = SystemTime::now();
    let analytics = writer(&schema, urls_from(&servers, 0), 10_000);
    analytics.try_record_all(usage_events(now)).unwrap();
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty(), "{report:?}");
    let expected = Usage::new(servers[0].client(), schema.clone())
        .with_read_from(idp_analytics::usage::ReadFrom::Events);
    let days = Days::ending(Day::today(), 40);
    let want = expected.top_accounts(days, 100).await.unwrap();

    // As if the rollup came after the events: drop it and its view everywhere.
    let client = servers[1].client();
    let on = format!(" ON CLUSTER `{}`", cluster::name());
    for name in [
        schema.rollup_view(),
        schema.rollup_table(),
        schema.local(&schema.rollup_table()),
    ] {
        client
            .query(&format!(
                "DROP TABLE IF EXISTS {}{on}",
                schema.qualified(&name)
            ))
            .execute()
            .await
            .unwrap();
    }
    schema.ensure_rollup(&client).await.unwrap();
    assert!(!schema.rollup_ready(&client).await.unwrap());
    assert!(schema.backfill_rollup(&client).await.unwrap() >= 1);
    for server in &servers {
        assert!(
            schema.rollup_ready(&server.client()).await.unwrap(),
            "{}",
            server.url
        );
    }
    let rollup = Usage::new(servers[2].client(), schema.clone());
    assert_eq!(rollup.top_accounts(days, 100).await.unwrap(), want);
}
