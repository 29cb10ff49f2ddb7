//! Usage queries against a real ClickHouse server, from the rollup and from the raw table.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use idp_analytics::{
    Analytics, Day, Days, Event, KnownAccount, Period, ReadFrom, Usage, schema::Schema,
};

const DAY: Duration = Duration::from_secs(86_400);

fn at(day: Day, secs: u64) -> SystemTime {
    day.start() + Duration::from_secs(secs)
}

/// A reader of the rollup and a reader of the raw table. The rollup must be ready, or the
/// first would answer from the raw table too.
async fn both(schema: &Schema) -> [Usage; 2] {
    assert!(schema.rollup_ready(&common::client()).await.unwrap());
    let usage = Usage::new(common::client(), schema.clone());
    [usage.clone(), usage.with_read_from(ReadFrom::Events)]
}

#[tokio::test]
async fn usage_one_account_numbers_are_exact() {
    let schema = prepare_database!().await;
    let d0 = Day::today().sub_days(5);
    let e =
        |secs_into: u64, day: u32, t: &str| common::event_at(7, t, at(d0.add_days(day), secs_into));
    let first = e(0, 0, "search"); // midnight exactly
    let repeated = e(3_600, 0, "search");
    let events = vec![
        first.clone(),
        repeated.clone(),
        e(7_200, 0, "export"),
        e(86_399, 2, "search"), // the last second of day 2
        e(43_200, 4, "/projects/{id}"),
        // Another account, and an event of account 7 outside the range asked about.
        common::event_at(8, "search", at(d0.add_days(1), 100)),
        common::event_at(7, "search", at(d0.sub_days(1), 100)),
    ];
    common::write(&schema, events).await;
    // The same event written again, as a retried insert would: a second row, one event.
    common::write(&schema, vec![repeated.clone()]).await;
    assert_eq!(common::raw_count(&schema).await, 8);

    let days = Days::new(d0, d0.add_days(4)).unwrap();
    for usage in both(&schema).await {
        let got = usage.account(7, days).await.unwrap();
        assert_eq!(got.account_id, 7);
        assert_eq!(got.total_events, 5, "{:?}", usage.read_from());
        let types: Vec<(&str, u64)> = got
            .event_types
            .iter()
            .map(|t| (t.event_type.as_str(), t.events))
            .collect();
        assert_eq!(types, [("search", 3), ("/projects/{id}", 1), ("export", 1)]);
        assert_eq!(got.first_seen, Some(at(d0, 0)));
        assert_eq!(got.last_seen, Some(at(d0.add_days(4), 43_200)));
        assert_eq!(got.active_days, 3);
        let per_day: Vec<(Day, u64)> = got.per_day.iter().map(|d| (d.day, d.events)).collect();
        assert_eq!(per_day, [(d0, 3), (d0.add_days(2), 1), (d0.add_days(4), 1)]);

        // One day only: the midnight event is in, the one before midnight is not.
        let one = usage.account(7, Days::ending(d0, 1)).await.unwrap();
        assert_eq!(one.total_events, 3);
        let json = serde_json::to_value(&one).unwrap();
        assert_eq!(json["accountId"], 7);
        assert_eq!(json["totalEvents"], 3);
        assert_eq!(json["activeDays"], 1);
        assert_eq!(json["days"]["first"], d0.to_string());
        assert_eq!(json["firstSeen"], format!("{d0}T00:00:00Z"));
        assert_eq!(json["lastSeen"], format!("{d0}T02:00:00Z"));
        assert_eq!(json["perDay"][0]["events"], 3);
        assert_eq!(json["eventTypes"][0]["eventType"], "search");

        // An account with nothing in the range.
        let none = usage.account(9, days).await.unwrap();
        assert_eq!(none.total_events, 0);
        assert_eq!(none.first_seen, None);
        assert_eq!(none.last_seen, None);
        assert!(none.per_day.is_empty() && none.event_types.is_empty());
    }
}

#[tokio::test]
async fn usage_inactive_accounts_by_threshold_and_known_accounts() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(
        &schema,
        vec![
            common::event_at(1, "search", now - 20 * DAY),
            common::event_at(1, "search", now - 8 * DAY), // silent for 8 days
            common::event_at(2, "search", now - 6 * DAY), // silent for 6 days
            common::event_at(3, "search", now - 60 * DAY),
            common::event_at(3, "search", now - DAY),
        ],
    )
    .await;
    let known = [
        KnownAccount::new(1, now - 90 * DAY),
        KnownAccount::new(2, now - 90 * DAY),
        KnownAccount::new(40, now - 30 * DAY), // signed up, never did anything
        KnownAccount::new(41, now - 2 * DAY),  // signed up two days ago: not quiet yet
    ];
    let week_ago = now - 7 * DAY;
    for usage in both(&schema).await {
        let quiet = usage.inactive_accounts(week_ago, &[]).await.unwrap();
        let ids: Vec<u64> = quiet.iter().map(|a| a.account_id).collect();
        assert_eq!(ids, [1], "{:?}", usage.read_from());
        let last = quiet[0].last_seen.unwrap();
        let expected = now - 8 * DAY;
        let diff = expected
            .duration_since(last)
            .unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_secs(1), "{last:?} vs {expected:?}");

        let quiet = usage.inactive_accounts(week_ago, &known).await.unwrap();
        let got: Vec<(u64, bool)> = quiet
            .iter()
            .map(|a| (a.account_id, a.last_seen.is_some()))
            .collect();
        assert_eq!(got, [(40, false), (1, true)]);
        assert_eq!(quiet[0].signed_up, Some(now - 30 * DAY));

        // A threshold of 5 days finds the 6-day-silent account too.
        let five = usage.inactive_accounts(now - 5 * DAY, &[]).await.unwrap();
        let ids: BTreeSet<u64> = five.iter().map(|a| a.account_id).collect();
        assert_eq!(ids, BTreeSet::from([1, 2]));
    }
}

/// What the generated events are, counted in Rust.
#[derive(Default)]
struct Truth {
    /// account -> day -> event type -> times
    events: BTreeMap<u64, BTreeMap<Day, BTreeMap<String, Vec<u32>>>>,
}

impl Truth {
    fn add(&mut self, e: &Event) {
        self.events
            .entry(e.account_id())
            .or_default()
            .entry(Day::of(e.time()))
            .or_default()
            .entry(e.event_type().to_owned())
            .or_default()
            .push(e.unix_seconds());
    }

    fn in_range<'a>(
        &'a self,
        days: Days,
    ) -> impl Iterator<Item = (u64, Day, &'a str, &'a Vec<u32>)> + 'a {
        self.events.iter().flat_map(move |(a, by_day)| {
            by_day
                .range(days.first()..=days.last())
                .flat_map(move |(d, by_type)| {
                    by_type
                        .iter()
                        .map(move |(t, times)| (*a, *d, t.as_str(), times))
                })
        })
    }
}

fn secs(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

#[tokio::test]
async fn usage_rollup_equals_raw_table_on_random_events() {
    let schema = prepare_database!().await;
    let mut rng = fastrand::Rng::with_seed(6);
    let today = Day::today();
    let now = secs(SystemTime::now());
    let oldest = secs(today.sub_days(60).start());
    let types: Vec<String> = (0..25).map(|i| format!("/api/v1/thing{i}")).collect();
    let mut truth = Truth::default();
    let mut events = Vec::with_capacity(100_000);
    for i in 0..100_000u32 {
        // Skewed: low account ids are busier.
        let account = 1 + (rng.u64(0..400) * rng.u64(0..400)) / 400;
        let time = if i % 1000 == 0 {
            // Some on midnight exactly.
            today.sub_days(rng.u32(0..60)).start()
        } else {
            UNIX_EPOCH + Duration::from_secs(u64::from(rng.u32(oldest..now)))
        };
        let e = common::event_at(account, &types[rng.usize(0..types.len())], time);
        truth.add(&e);
        events.push(e);
    }
    // Rows stored twice must not count twice: keep them unmerged, then write 5 000 again.
    let again: Vec<Event> = (0..5_000).map(|i| events[i * 20].clone()).collect();
    common::write(&schema, events).await;
    common::client()
        .query(&format!("SYSTEM STOP MERGES {}", schema.qualified_table()))
        .execute()
        .await
        .unwrap();
    common::write(&schema, again).await;
    assert_eq!(common::raw_count(&schema).await, 105_000);
    assert_eq!(common::counts(&schema).await.1, 100_000);

    let [rollup, raw] = both(&schema).await;
    for days in [
        Days::ending(today, 61),
        Days::new(today.sub_days(40), today.sub_days(10)).unwrap(),
        Days::ending(today.sub_days(3), 1),
    ] {
        // Accounts ranked by activity: every account, compared with the truth.
        let mut expected: Vec<(u64, u64, u32, u32)> = Vec::new();
        let mut per_account: BTreeMap<u64, (u64, BTreeSet<Day>, u32)> = BTreeMap::new();
        for (a, d, _, times) in truth.in_range(days) {
            let entry = per_account.entry(a).or_default();
            entry.0 += times.len() as u64;
            entry.1.insert(d);
            entry.2 = entry.2.max(*times.iter().max().unwrap());
        }
        for (a, (n, ds, last)) in &per_account {
            expected.push((*a, *n, ds.len() as u32, *last));
        }
        expected.sort_by_key(|(a, n, _, _)| (std::cmp::Reverse(*n), *a));
        for usage in [&rollup, &raw] {
            let got: Vec<(u64, u64, u32, u32)> = usage
                .top_accounts(days, 100_000)
                .await
                .unwrap()
                .iter()
                .map(|a| (a.account_id, a.events, a.active_days, secs(a.last_seen)))
                .collect();
            assert_eq!(got, expected, "{:?} {days:?}", usage.read_from());
            let top3 = usage.top_accounts(days, 3).await.unwrap();
            assert_eq!(top3.len(), 3.min(expected.len()));
        }

        // Event types.
        let mut by_type: BTreeMap<&str, (u64, BTreeSet<u64>)> = BTreeMap::new();
        for (a, _, t, times) in truth.in_range(days) {
            let entry = by_type.entry(t).or_default();
            entry.0 += times.len() as u64;
            entry.1.insert(a);
        }
        let mut expected: Vec<(String, u64, u64)> = by_type
            .iter()
            .map(|(t, (n, accounts))| (t.to_string(), *n, accounts.len() as u64))
            .collect();
        expected.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        expected.truncate(10);
        for usage in [&rollup, &raw] {
            let got: Vec<(String, u64, u64)> = usage
                .top_event_types(days, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|t| (t.event_type, t.events, t.accounts))
                .collect();
            assert_eq!(got, expected, "{:?}", usage.read_from());
        }

        // Daily and weekly active accounts.
        let mut daily: BTreeMap<Day, BTreeSet<u64>> = BTreeMap::new();
        let mut weekly: BTreeMap<Day, BTreeSet<u64>> = BTreeMap::new();
        for (a, d, _, _) in truth.in_range(days) {
            daily.entry(d).or_default().insert(a);
            weekly.entry(d.monday()).or_default().insert(a);
        }
        for usage in [&rollup, &raw] {
            let got = usage.active_accounts(days, Period::Day).await.unwrap();
            assert_eq!(got.len() as u32, days.len());
            for p in &got {
                let n = daily.get(&p.start).map_or(0, |s| s.len() as u64);
                assert_eq!(p.accounts, n, "{:?} day {}", usage.read_from(), p.start);
            }
            let got = usage.active_accounts(days, Period::Week).await.unwrap();
            assert_eq!(got[0].start, days.first().monday());
            assert_eq!(got.last().unwrap().start, days.last().monday());
            for p in &got {
                let n = weekly.get(&p.start).map_or(0, |s| s.len() as u64);
                assert_eq!(p.accounts, n, "{:?} week {}", usage.read_from(), p.start);
            }
        }

        // Per account, per day, for every account at once.
        let ids: Vec<u64> = truth.events.keys().copied().collect();
        let mut expected: BTreeMap<u64, BTreeMap<Day, u64>> = BTreeMap::new();
        for (a, d, _, times) in truth.in_range(days) {
            *expected.entry(a).or_default().entry(d).or_default() += times.len() as u64;
        }
        for usage in [&rollup, &raw] {
            let got: BTreeMap<u64, BTreeMap<Day, u64>> = usage
                .events_per_day(&ids, days)
                .await
                .unwrap()
                .into_iter()
                .map(|a| {
                    (
                        a.account_id,
                        a.per_day.iter().map(|d| (d.day, d.events)).collect(),
                    )
                })
                .collect();
            assert_eq!(got, expected, "{:?}", usage.read_from());
        }

        // One account's whole usage, for a few accounts.
        for account in [1, 2, 3, 50, 399] {
            let from_rollup = rollup.account(account, days).await.unwrap();
            let from_raw = raw.account(account, days).await.unwrap();
            assert_eq!(from_rollup, from_raw);
            let n: usize = truth
                .in_range(days)
                .filter(|(a, ..)| *a == account)
                .map(|(.., times)| times.len())
                .sum();
            assert_eq!(from_rollup.total_events, n as u64);
        }
    }

    // Last seen ever, and the quiet accounts.
    let mut last: HashMap<u64, u32> = HashMap::new();
    for (a, by_day) in &truth.events {
        let max = by_day
            .values()
            .flat_map(|t| t.values().flatten())
            .max()
            .unwrap();
        last.insert(*a, *max);
    }
    for usage in [&rollup, &raw] {
        let got: HashMap<u64, u32> = usage
            .last_seen()
            .await
            .unwrap()
            .into_iter()
            .map(|(a, t)| (a, secs(t)))
            .collect();
        assert_eq!(got, last);
        let cutoff = now - 3 * 86_400;
        let mut expected: Vec<(u64, u32)> = last
            .iter()
            .filter(|(_, l)| **l < cutoff)
            .map(|(a, l)| (*a, *l))
            .collect();
        expected.sort_by_key(|(a, l)| (*l, *a));
        assert!(!expected.is_empty());
        let got: Vec<(u64, u32)> = usage
            .inactive_accounts(UNIX_EPOCH + Duration::from_secs(cutoff.into()), &[])
            .await
            .unwrap()
            .iter()
            .map(|a| (a.account_id, secs(a.last_seen.unwrap())))
            .collect();
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn usage_backfills_a_table_that_already_had_rows() {
    let schema = prepare_database!().await;
    let client = common::client();
    let version = Schema::server_version(&client).await.unwrap();
    client
        .query(&schema.create_table_sql(version))
        .execute()
        .await
        .unwrap();
    // Rows from before the rollup existed, in three months.
    let today = Day::today();
    let old: Vec<Event> = [(1, 0), (1, 40), (2, 70), (2, 70)]
        .iter()
        .map(|(a, ago)| common::event_at(*a, "search", at(today.sub_days(*ago), 60)))
        .collect();
    let analytics = Analytics::builder(common::url())
        .with_schema(schema.clone())
        .with_create_schema(false)
        .build()
        .unwrap();
    analytics.try_record_all(old).unwrap();
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.written, 4);

    schema.ensure(&client, version).await.unwrap();
    assert!(!schema.rollup_ready(&client).await.unwrap());
    let days = Days::ending(today, 100);
    let rollup = Usage::new(common::client(), schema.clone());
    let raw = rollup.clone().with_read_from(ReadFrom::Events);
    // Not ready yet: the rollup reader answers from the events table, and is right.
    assert_eq!(rollup.account(2, days).await.unwrap().total_events, 2);

    // An event while the backfill is pending reaches the rollup through the view.
    common::write(&schema, vec![common::event_at(1, "export", at(today, 30))]).await;
    let months = schema.backfill_rollup(&client).await.unwrap();
    // This month and the months 40 and 70 days ago (two of them may be one month).
    assert!((2..=3).contains(&months), "{months}");
    assert!(schema.rollup_ready(&client).await.unwrap());
    assert_eq!(schema.backfill_rollup(&client).await.unwrap(), 0);
    // Ensuring again changes nothing.
    schema.ensure(&client, version).await.unwrap();
    assert!(schema.rollup_ready(&client).await.unwrap());

    let rollup_rows: u64 = client
        .query(&format!(
            "SELECT count() FROM {}",
            schema.qualified(&schema.rollup_table())
        ))
        .fetch_one()
        .await
        .unwrap();
    assert!(rollup_rows >= 4);
    for account in [1, 2] {
        let a = rollup.account(account, days).await.unwrap();
        assert_eq!(a, raw.account(account, days).await.unwrap());
    }
    assert_eq!(rollup.account(1, days).await.unwrap().total_events, 3);
    assert_eq!(rollup.account(2, days).await.unwrap().total_events, 2);
}

/// Whether the server gets the days of February 2106 right (18.16 makes 2106-02-07 and the
/// dates it parses from February 2106 `0000-00-00`; 26.9 does not).
async fn dates_right_in_february_2106() -> bool {
    let (last, parsed): (u16, u16) = common::client()
        .query(
            "SELECT toUInt16(toDate(toDateTime(4294967295), 'UTC')), \
             toUInt16(toDate('2106-02-01'))",
        )
        .fetch_one()
        .await
        .unwrap();
    last != 0 && parsed != 0
}

#[tokio::test]
async fn usage_counts_the_last_day_a_datetime_holds() {
    let schema = prepare_database!().await;
    if !dates_right_in_february_2106().await {
        eprintln!(
            "SKIPPED on this server: it maps dates in February 2106 to 0000-00-00 \
             (ClickHouse 18.16 does), so no reader can count them; run on 26.9 \
             (scripts/chdb) to test this"
        );
        return;
    }
    let last = Day::from_ymd(2106, 2, 7).unwrap();
    let first = Day::from_ymd(2106, 2, 1).unwrap();
    let end = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX));
    let events = vec![
        common::event_at(9, "search", at(first, 43_200)),
        common::event_at(9, "search", at(last, 0)),
        // The last second a DateTime holds.
        common::event_at(9, "export", end),
    ];
    common::write(&schema, events).await;
    let days = Days::new(first, last).unwrap();
    for usage in both(&schema).await {
        let got = usage.account(9, days).await.unwrap();
        assert_eq!(got.total_events, 3, "{:?}", usage.read_from());
        let per_day: Vec<(Day, u64)> = got.per_day.iter().map(|d| (d.day, d.events)).collect();
        assert_eq!(per_day, [(first, 1), (last, 2)], "{:?}", usage.read_from());
        assert_eq!(got.last_seen, Some(end));
    }
}

/// A server that accepts and never answers: every question fails with `Error::Timeout`
/// after the query timeout instead of waiting for ever.
#[tokio::test]
async fn usage_questions_time_out_when_clickhouse_does_not_answer() {
    let url = common::black_hole().await;
    let client = clickhouse::Client::default().with_url(url);
    let usage = Usage::new(client, Schema::new("db", "events").unwrap())
        .with_query_timeout(Duration::from_millis(500));
    let week = Days::ending_today(7);
    let since = SystemTime::now() - Duration::from_secs(86_400);
    let outcomes = tokio::time::timeout(Duration::from_secs(60), async {
        vec![
            usage.account(1, week).await.map(drop),
            usage.inactive_accounts(since, &[]).await.map(drop),
            usage
                .inactive_accounts_page(since, &[], None, 10)
                .await
                .map(drop),
            usage.top_accounts(week, 10).await.map(drop),
            usage.last_seen().await.map(drop),
        ]
    })
    .await
    .expect("a question still waits after 60 s");
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(idp_analytics::Error::Timeout(d)) if d == Duration::from_millis(500)),
            "{outcome:?}"
        );
    }
}

/// Days near the end of `DateTime` (2106-02-07) are read like any other: on 18.16 a date
/// string from 2106-01-01 on means `0000-00-00`, and a range ending there found nothing.
#[tokio::test]
async fn usage_ranges_that_end_in_2106() {
    let schema = prepare_database!().await;
    let december: Day = "2105-12-15".parse().unwrap();
    let january: Day = "2106-01-20".parse().unwrap();
    common::write(
        &schema,
        vec![
            common::event_at(1, "search", at(december, 60)),
            common::event_at(1, "search", at(january, 60)),
        ],
    )
    .await;
    let day = |s: &str| s.parse::<Day>().unwrap();
    for usage in both(&schema).await {
        let read = usage.read_from();
        for (from, to, expected) in [
            ("2105-12-01", "2106-01-01", 1),
            ("2106-01-01", "2106-02-07", 1),
            ("2105-12-01", "2106-02-07", 2),
        ] {
            let days = Days::new(day(from), day(to)).unwrap();
            let account = usage.account(1, days).await.unwrap();
            assert_eq!(account.total_events, expected, "{read:?} {from}..{to}");
            let active = usage.active_accounts(days, Period::Day).await.unwrap();
            let total: u64 = active.iter().map(|a| a.accounts).sum();
            assert_eq!(total, expected, "{read:?} {from}..{to}");
        }
    }
}

/// A connection of several servers whose first cannot be reached: every question is asked
/// of the next, answers as a single server would, and that server is asked first from then
/// on.
#[tokio::test]
async fn usage_goes_on_through_the_next_server_when_one_is_down() {
    let schema = prepare_database!().await;
    let now = SystemTime::now();
    common::write(
        &schema,
        vec![
            common::event_at(1, "search", now - 3 * DAY),
            common::event_at(1, "export", now - DAY),
            common::event_at(2, "search", now - 10 * DAY),
        ],
    )
    .await;
    // Nothing listens on port 1 of the loopback: the connection is refused.
    let connection =
        idp_analytics::Connection::builder_for(["http://127.0.0.1:1".to_owned(), common::url()])
            .build()
            .unwrap();
    let usage = Usage::from_connection(&connection, schema.clone());
    let single = Usage::new(common::client(), schema.clone());
    let days = Days::ending(Day::today(), 30);

    // What an operator sees: one warning naming the server left and the one asked instead.
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Log(sink.clone()))
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let got = usage.account(1, days).await.unwrap();
    drop(guard);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("unreachable")).collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(
        warnings[0].contains("server=http://127.0.0.1:1/")
            && warnings[0].contains(&format!("next={}", common::url())),
        "{logs}"
    );
    assert_eq!(got, single.account(1, days).await.unwrap());
    assert_eq!(got.total_events, 2);
    // The server that answered is asked first now: the next question needs no failover,
    // and rhythms and the inactive list answer too.
    let inactive = usage.inactive_accounts(now - 7 * DAY, &[]).await.unwrap();
    assert_eq!(
        inactive.iter().map(|a| a.account_id).collect::<Vec<_>>(),
        [2]
    );
    let mut rhythms = usage
        .rhythms(idp_analytics::usage::RhythmWindow::at(now))
        .await
        .unwrap();
    let mut accounts = BTreeSet::new();
    while let Some(rhythm) = rhythms.next().await.unwrap() {
        accounts.insert(rhythm.account_id);
    }
    assert_eq!(accounts, BTreeSet::from([1, 2]));

    // With every server down, the question fails as unreachable.
    let down = idp_analytics::Connection::builder_for(["http://127.0.0.1:1", "http://127.0.0.1:2"])
        .build()
        .unwrap();
    let err = Usage::from_connection(&down, schema)
        .account(1, days)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            idp_analytics::Error::ClickHouse(clickhouse::error::Error::Network(_))
        ),
        "{err:?}"
    );
}

/// A log line sink for one test.
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
