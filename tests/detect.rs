//! The detectors against a real ClickHouse server: crafted histories whose truth is known.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use idp_analytics::{
    Day, KnownAccount, ReadFrom, Usage,
    canary::{Basis, Detector, Finding, Reason},
    schema::Schema,
    usage::RhythmWindow,
};

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

/// Monday 2026-11-30, 09:00 UTC: the moment every history is judged at.
fn monday() -> Day {
    Day::from_ymd(2026, 11, 30).unwrap()
}

fn at() -> SystemTime {
    monday().start() + 9 * HOUR
}

/// An event of `account` on `day`, `hour`:00 UTC.
fn on(account: u64, day: Day, hour: u32) -> idp_analytics::Event {
    common::event_at(account, "search", day.start() + hour * HOUR)
}

const DAILY: u64 = 1;
const WEEKLY: u64 = 2;
const MONTHLY: u64 = 3;
const WEEKDAYS: u64 = 4;
const COLLAPSING: u64 = 5;
const ONE_SHOT: u64 = 6;
const NEVER: u64 = 7;
const STEADY: u64 = 1_000_000;
const STEADY_COUNT: u64 = 10_000;

/// The crafted accounts, written through the writer, and 10 000 steady accounts inserted
/// straight into the events table by ClickHouse (the rollup's view feeds on both).
async fn histories(schema: &Schema) -> Vec<KnownAccount> {
    let d = monday();
    let mut events = Vec::new();
    // Daily for 60 days, at 08:00, until Friday: silent 3 days on Monday at 09:00.
    for n in 3..63 {
        events.push(on(DAILY, d.sub_days(n), 8));
    }
    // About weekly, 6 to 9 days apart; the last 8 days ago.
    let mut back = 8;
    for gap in [6, 9, 7, 8, 6, 9, 7, 8, 7, 9, 6] {
        events.push(on(WEEKLY, d.sub_days(back), 14));
        back += gap;
    }
    // Monthly, 29 to 31 days apart; the last 25 days ago.
    for back in [25, 55, 84, 115, 145, 176] {
        events.push(on(MONTHLY, d.sub_days(back), 10));
    }
    // Monday to Friday for 12 weeks; the last on Friday at 17:00.
    for n in 3..87 {
        let day = d.sub_days(n);
        if day.days_since_epoch().wrapping_add(3) % 7 < 5 {
            events.push(on(WEEKDAYS, day, 17));
        }
    }
    // 60 events a day for 5 weeks, then 3 a day for the last week (today too).
    for n in 0..42 {
        let per_day = if n <= 7 { 3 } else { 60 };
        for i in 0..per_day {
            let day = d.sub_days(n);
            events.push(common::event_at(
                COLLAPSING,
                "export",
                day.start() + 2 * HOUR + Duration::from_secs(i * 60),
            ));
        }
    }
    // One event, 40 days ago.
    events.push(on(ONE_SHOT, d.sub_days(40), 12));
    common::write(schema, events).await;

    // Steady accounts: every day, weekdays only, or every other day, 1 to 3 events a day,
    // for 90 days up to this morning at 06:00.
    let first = d.sub_days(90).days_since_epoch();
    common::client()
        .query(&format!(
            "INSERT INTO {table} (event_id, account_id, event_type, inserted_at, source, method, status, latency_us) \
             SELECT generateUUIDv4(), {STEADY} + a, 'search', \
                 toDateTime((toUInt32({first}) + day) * 86400 + 6 * 3600 + k), '', 'GET', 200, 0 \
             FROM ( \
                SELECT a, day FROM (SELECT number AS a FROM numbers({STEADY_COUNT})) \
                ARRAY JOIN range(91) AS day \
                WHERE (a % 3 = 0) \
                   OR (a % 3 = 1 AND (toUInt32({first}) + day + 3) % 7 < 5) \
                   OR (a % 3 = 2 AND day % 2 = 0) \
             ) ARRAY JOIN range(toUInt64(1 + a % 3)) AS k",
            table = schema.qualified_table(),
        ))
        .execute()
        .await
        .unwrap();
    vec![
        KnownAccount::new(DAILY, d.sub_days(100).start()),
        KnownAccount::new(NEVER, d.sub_days(20).start()),
        // Signed up yesterday: not yet never-active.
        KnownAccount::new(NEVER + 1, d.sub_days(1).start()),
    ]
}

fn by_account(findings: &[Finding]) -> BTreeMap<u64, &Finding> {
    findings.iter().map(|f| (f.account_id, f)).collect()
}

#[tokio::test]
async fn detect_crafted_histories_against_their_own_rhythm() {
    let schema = prepare_database!().await;
    let known = histories(&schema).await;
    assert!(schema.rollup_ready(&common::client()).await.unwrap());
    let usage = Usage::new(common::client(), schema.clone());

    let findings = Detector::default()
        .detect(&usage, at(), &known)
        .await
        .unwrap();
    let found = by_account(&findings);
    let ids: Vec<u64> = found.keys().copied().collect();
    // None of the steady accounts, nor the weekly, monthly and weekday accounts.
    assert_eq!(ids, [DAILY, COLLAPSING, ONE_SHOT, NEVER], "{findings:#?}");

    let daily = found[&DAILY];
    assert_eq!(daily.reason, Reason::Silent);
    assert_eq!(daily.basis, Some(Basis::EveryDay));
    assert_eq!(daily.silent_days, Some(3));
    assert_eq!(daily.usual_period_days, Some(1));
    assert_eq!(daily.longest_gap_days, Some(0));
    assert_eq!(daily.signed_up, Some(monday().sub_days(100).start()));
    assert_eq!(
        daily.explanation,
        "usually active every day; silent 3 days; its longest gap in 90 days was 0 days"
    );

    let collapsing = found[&COLLAPSING];
    assert_eq!(collapsing.reason, Reason::Declining);
    assert_eq!(collapsing.baseline_per_day, Some(60.0));
    assert_eq!(collapsing.recent_per_day, Some(3.0));
    assert_eq!(
        collapsing.explanation,
        "60 events/day over the 28 days before, 3/day over the last 7 days; \
         active 7 of the last 7 days"
    );

    let one_shot = found[&ONE_SHOT];
    assert_eq!(one_shot.reason, Reason::Silent);
    // Judged by the population's rhythm: the median account here is active every day.
    assert_eq!(one_shot.basis, Some(Basis::Population));
    assert_eq!(one_shot.silent_days, Some(39));
    assert_eq!(one_shot.usual_period_days, Some(1));
    assert_eq!(one_shot.limit_days, Some(3));
    assert!(
        one_shot.explanation.contains("too few for a rhythm"),
        "{one_shot:?}"
    );

    let never = found[&NEVER];
    assert_eq!(never.reason, Reason::NeverActive);
    assert_eq!(never.last_seen, None);
    assert_eq!(never.silent_days, Some(20));

    // Sorted by score, highest first.
    assert!(findings.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(findings.iter().all(|f| f.score >= 1.0), "{findings:#?}");

    // As JSON, with the reason spelled as the admin endpoint spells it.
    let json = serde_json::to_value(daily).unwrap();
    assert_eq!(json["accountId"], 1);
    assert_eq!(json["reason"], "silent");
    assert_eq!(json["lastSeen"], "2026-11-27T08:00:00Z");
    assert_eq!(
        serde_json::to_value(never).unwrap()["reason"],
        "neverActive"
    );
    assert_eq!(
        serde_json::to_value(collapsing).unwrap()["reason"],
        "declining"
    );

    // Read in ranges of about a thousand accounts, the same.
    let chunked = Detector::default()
        .with_chunk_accounts(1_000)
        .detect(&usage, at(), &known)
        .await
        .unwrap();
    assert_eq!(chunked, findings);
    let count = |chunk: u64| {
        let usage = usage.clone();
        async move {
            let mut rhythms = usage
                .rhythms(RhythmWindow::at(at()).with_chunk_accounts(chunk))
                .await
                .unwrap();
            let mut ids = Vec::new();
            while let Some(r) = rhythms.next().await.unwrap() {
                ids.push(r.account_id);
            }
            ids.sort_unstable();
            ids
        }
    };
    let every = count(1_000).await;
    // Every account with an event once (the never-active ones have none).
    assert_eq!(every.len() as u64, STEADY_COUNT + 6);
    assert!(every.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(count(1_000_000).await, every);

    // The raw table gives the same findings.
    let raw = Detector::default()
        .detect(
            &usage.clone().with_read_from(ReadFrom::Events),
            at(),
            &known,
        )
        .await
        .unwrap();
    assert_eq!(raw, findings);
}

#[tokio::test]
async fn detect_fixed_threshold_stays_available() {
    let schema = prepare_database!().await;
    let known = histories(&schema).await;
    let usage = Usage::new(common::client(), schema.clone());
    let findings = Detector::fixed(7 * DAY)
        .detect(&usage, at(), &known)
        .await
        .unwrap();
    let ids: Vec<u64> = by_account(&findings).keys().copied().collect();
    // The fixed week flags the weekly and monthly accounts too, and misses the daily one.
    assert_eq!(ids, [WEEKLY, MONTHLY, ONE_SHOT, NEVER], "{findings:#?}");
    assert!(
        findings
            .iter()
            .all(|f| f.reason != Reason::Declining && f.basis == Some(Basis::Fixed))
    );
}

#[tokio::test]
async fn detect_steps_through_time() {
    let schema = prepare_database!().await;
    let known = histories(&schema).await;
    let usage = Usage::new(common::client(), schema.clone());
    let detector = Detector::default();
    // On Thursday, the daily account was active the day before: nothing to say. Events
    // after the evaluation time are not seen.
    let thursday = monday().sub_days(4).start() + 9 * HOUR;
    let findings = detector.detect(&usage, thursday, &known).await.unwrap();
    let found = by_account(&findings);
    assert!(!found.contains_key(&DAILY), "{findings:#?}");
    // The weekly account, judged 5 days after its 4th event from the end, and the monthly
    // one within its month.
    assert!(!found.contains_key(&WEEKLY));
    assert!(!found.contains_key(&MONTHLY));
    // Two weeks after the weekday account's last Friday, it is silent, in weekdays.
    let later = monday().add_days(14).start();
    let findings = detector.detect(&usage, later, &known).await.unwrap();
    let weekdays = by_account(&findings)[&WEEKDAYS];
    assert_eq!(weekdays.reason, Reason::Silent);
    assert_eq!(weekdays.basis, Some(Basis::Weekdays));
    assert!(
        weekdays
            .explanation
            .starts_with("usually active every weekday; silent 16 days"),
        "{weekdays:?}"
    );
}

const NEW_TRIAL: u64 = 20;
const NEW_SLOW: u64 = 21;

#[tokio::test]
async fn detect_little_history_by_the_population() {
    let schema = prepare_database!().await;
    let known = histories(&schema).await;
    let d = monday();
    common::write(
        &schema,
        vec![
            // A trial: Monday and Tuesday last week, then nothing.
            on(NEW_TRIAL, d.sub_days(7), 10),
            on(NEW_TRIAL, d.sub_days(6), 12),
            // A slow new account: a Tuesday, and 20 days later a Friday.
            on(NEW_SLOW, d.sub_days(30), 10),
            on(NEW_SLOW, d.sub_days(10), 10),
        ],
    )
    .await;
    let usage = Usage::new(common::client(), schema.clone());

    // The population: the steady accounts (every day, weekdays, every other day) and the
    // crafted ones with at least 3 active days; the median is active every day of its basis.
    let detector = Detector::default();
    let prior = detector.prior(&usage, at()).await.unwrap().unwrap();
    assert_eq!(prior.period_days, 1);
    assert_eq!(prior.accounts, STEADY_COUNT + 5);
    assert_eq!(prior.sampled_one_in, 1);
    // Measured on a sample of about a thousand accounts, the same median.
    let sampled = Detector::default()
        .with_chunk_accounts(1_000)
        .prior(&usage, at())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sampled.period_days, 1);
    assert!(sampled.sampled_one_in > 1);
    // The return chances were measured on the same sample.
    assert_eq!(sampled.returns.sampled_one_in(), sampled.sampled_one_in);
    assert!(
        (500..2_000).contains(&sampled.accounts),
        "{} accounts sampled",
        sampled.accounts
    );
    // The slowest third of the accounts is active every other day.
    let slow = Detector::default()
        .with_prior_quantile(Some(0.9))
        .prior(&usage, at())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slow.period_days, 2);

    let findings = detector.detect(&usage, at(), &known).await.unwrap();
    let found = by_account(&findings);
    let trial = found[&NEW_TRIAL];
    assert_eq!(trial.reason, Reason::Silent);
    assert_eq!(trial.basis, Some(Basis::Population));
    assert_eq!(trial.silent_days, Some(5));
    assert_eq!(trial.usual_period_days, Some(1));
    assert_eq!(trial.limit_days, Some(3));
    assert_eq!(
        trial.explanation,
        "2 active days in 90 days, too few for a rhythm of its own; the usual account here \
         is active every weekday; silent 5 days; its longest gap in 90 days was 0 weekdays"
    );
    // Its own 20-day gap makes the slow account's period longer than the population's.
    assert!(!found.contains_key(&NEW_SLOW), "{findings:#?}");

    // Without the prior, the fixed week judges them: the slow account, silent 9 days, is
    // flagged; the trial, silent 5, not yet.
    let fixed = Detector::default()
        .with_prior_quantile(None)
        .detect(&usage, at(), &known)
        .await
        .unwrap();
    let found = by_account(&fixed);
    assert!(!found.contains_key(&NEW_TRIAL), "{fixed:#?}");
    for id in [NEW_SLOW, ONE_SHOT] {
        assert_eq!(found[&id].basis, Some(Basis::Fixed), "{:?}", found[&id]);
    }
    // Judged three days earlier, on the trial's third silent weekday (Friday), it was
    // flagged then too; on Thursday, not yet.
    let friday = d.sub_days(3).start() + 9 * HOUR;
    let thursday = d.sub_days(4).start() + 9 * HOUR;
    let on_friday = detector.detect(&usage, friday, &known).await.unwrap();
    assert!(by_account(&on_friday).contains_key(&NEW_TRIAL));
    let on_thursday = detector.detect(&usage, thursday, &known).await.unwrap();
    assert!(!by_account(&on_thursday).contains_key(&NEW_TRIAL));
}

/// Accounts judged by how accounts like them came back: one-time buyers of whom a third came
/// back after 10 days and none later.
#[tokio::test]
async fn detect_little_history_by_how_like_accounts_came_back() {
    const QUIET: u64 = 10;
    const SOON: u64 = 11;
    const ALONE: u64 = 12;
    let schema = prepare_database!().await;
    let d = monday();
    let today = d.days_since_epoch();
    // A one-time buyer 12 days ago, one 8 days ago, and one who bought on three days in a
    // row 100 days ago (no other account is like it).
    common::write(
        &schema,
        vec![
            on(QUIET, d.sub_days(12), 12),
            on(SOON, d.sub_days(8), 12),
            on(ALONE, d.sub_days(100), 12),
            on(ALONE, d.sub_days(99), 12),
            on(ALONE, d.sub_days(98), 12),
        ],
    )
    .await;
    // 200 one-time buyers, 60 to 159 days ago (2 a day); 100 who bought 150 days ago and
    // came back 10 days later, then stopped.
    common::client()
        .query(&format!(
            "INSERT INTO {table} (event_id, account_id, event_type, inserted_at, source, method, status, latency_us) \
             SELECT generateUUIDv4(), account, 'buy', toDateTime(day * 86400 + 6 * 3600), '', 'GET', 200, 0 \
             FROM ( \
                SELECT 2000000 + number AS account, toUInt32({today} - 60 - number % 100) AS day \
                FROM numbers(200) \
                UNION ALL \
                SELECT 3000000 + intDiv(number, 2), toUInt32({today} - 150 + 10 * (number % 2)) \
                FROM numbers(200) \
             )",
            table = schema.qualified_table(),
        ))
        .execute()
        .await
        .unwrap();
    let usage = Usage::new(common::client(), schema.clone());

    let detector = Detector::default();
    let prior = detector.prior(&usage, at()).await.unwrap().unwrap();
    // No account has a rhythm of its own.
    assert_eq!(prior.accounts, 0);
    assert_eq!(prior.returns.spells(), 200 + 2 * 100 + 2 + 3);
    let one_time = idp_analytics::usage::Like::of(1, d, d);
    let soon = prior.returns.at(one_time, 8, 0.1).unwrap();
    // A third of the one-time buyers quiet for more than 8 days came back (within 90 days).
    assert!((soon.chance - 100.0 / 301.0).abs() < 1e-9, "{soon:?}");
    assert_eq!((soon.spells, soon.fell_below_at), (301, None));
    let late = prior.returns.at(one_time, 12, 0.1).unwrap();
    assert_eq!(
        (late.chance, late.spells, late.fell_below_at),
        (0.0, 200, Some(10))
    );

    let findings = detector.detect(&usage, at(), &[]).await.unwrap();
    let found = by_account(&findings);
    let quiet = found[&QUIET];
    assert_eq!(quiet.reason, Reason::Silent);
    assert_eq!(quiet.basis, Some(Basis::ReturnChance));
    assert_eq!(quiet.limit_days, Some(10));
    assert_eq!(quiet.return_chance, Some(0.0));
    assert_eq!(quiet.like_spells, Some(200));
    assert_eq!(
        quiet.explanation,
        "1 active day; silent 11 days; accounts like it came back within 90 days of so long \
         a silence 0% of the time (200 seen)"
    );
    // Silent 8 days: a third of those like it came back, so it is not flagged.
    assert!(!found.contains_key(&SOON), "{:?}", found.get(&SOON));
    // The one-time buyers of long ago are flagged, and those who came back after 10 days
    // and stopped (none of the 100 like them came back again). The account no other is
    // like has too few spells to tell: with no account with a rhythm of its own either, the
    // fixed threshold judges it.
    assert_eq!(found[&2_000_000].basis, Some(Basis::ReturnChance));
    assert_eq!(found[&3_000_000].basis, Some(Basis::ReturnChance));
    assert_eq!(
        found[&3_000_000].explanation,
        "2 active days, about one every 8 to 15 days; silent 140 days; accounts like it came \
         back within 90 days of a silence of 110 days 0% of the time (100 seen)"
    );
    assert_eq!(found[&ALONE].basis, Some(Basis::Fixed));

    // Without return chances, the fixed week judges both.
    let fixed = Detector::default()
        .with_return_chance(None)
        .detect(&usage, at(), &[])
        .await
        .unwrap();
    let found = by_account(&fixed);
    for id in [QUIET, SOON] {
        assert_eq!(found[&id].basis, Some(Basis::Fixed), "{:?}", found[&id]);
    }
}

#[tokio::test]
async fn detect_refuses_bad_parameters() {
    let schema = prepare_database!().await;
    common::write(&schema, vec![on(1, monday(), 1)]).await;
    let usage = Usage::new(common::client(), schema.clone());
    for bad in [
        Detector::default().with_gap_quantile(0.0),
        Detector::default().with_gap_factor(f64::NAN),
        Detector::default().with_decline_ratio(1.5),
        Detector::default().with_history_days(20),
        Detector::default().with_fixed_threshold(Duration::ZERO),
        Detector::default().with_prior_quantile(Some(0.0)),
        Detector::default().with_prior_quantile(Some(1.5)),
        Detector::default().with_return_chance(Some(0.0)),
        Detector::default().with_return_chance(Some(1.0)),
    ] {
        let err = bad.detect(&usage, at(), &[]).await.unwrap_err();
        assert!(matches!(err, idp_analytics::Error::Config(_)), "{err}");
    }
}

/// One check over 1 000 000 accounts with 90 days of history, their rollup rows made by
/// ClickHouse from `numbers()`. Prints how long it took and the memory it used. By hand:
/// `cargo test --release --test detect detect_one_million_accounts -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: about 40 million rollup rows"]
async fn detect_one_million_accounts() {
    common::require_clickhouse().await;
    // The rows are the same at every run: a database left by an earlier run is read again.
    let schema = Schema::new("test_detect_one_million_accounts", "events").unwrap();
    let client = common::client();
    let version = Schema::server_version(&client).await.unwrap();
    client
        .query("CREATE DATABASE IF NOT EXISTS test_detect_one_million_accounts")
        .execute()
        .await
        .unwrap();
    schema.ensure(&client, version).await.unwrap();
    let rollup = schema.qualified(&schema.rollup_table());
    let count = |client: clickhouse::Client| {
        let sql = format!("SELECT count() FROM {rollup}");
        async move { client.query(&sql).fetch_one::<u64>().await.unwrap() }
    };
    const ROWS: u64 = 38_657_143;
    let last = monday();
    let first = last.sub_days(89).days_since_epoch();
    // By account id modulo 10: 0 every day; 1 to 3 Monday to Friday; 4 to 6 weekly; 7 and 8
    // monthly; 9 every day until 30 days ago (churned). One event per active day, at 06:00
    // and some seconds.
    let started = std::time::Instant::now();
    let existing = count(client.clone()).await;
    if existing != ROWS {
        client
            .query(&format!("TRUNCATE TABLE {rollup}"))
            .execute()
            .await
            .unwrap();
        client
        .query(&format!(
            "INSERT INTO {rollup} (account_id, day, event_type, events, first_seen, last_seen) \
             SELECT a, toDate(toUInt16(day)), 'search', \
                 arrayReduce('uniqExactState', [toUUID(concat('00000000-0000-0000-0000-', \
                     substring(hex(toUInt64(a * 100 + day - {first}) + 0x100000000000), 1, 12)))]), \
                 arrayReduce('minState', [toUInt32(day * 86400 + 21600 + a % 3600)]), \
                 arrayReduce('maxState', [toUInt32(day * 86400 + 21600 + a % 3600)]) \
             FROM (SELECT number AS a FROM numbers(1000000)) \
             ARRAY JOIN arrayMap(d -> toUInt32({first} + d), range(90)) AS day \
             WHERE (a % 10 = 0) \
                OR (a % 10 IN (1, 2, 3) AND (day + 3) % 7 < 5) \
                OR (a % 10 IN (4, 5, 6) AND (a + day) % 7 = 0) \
                OR (a % 10 IN (7, 8) AND (a + day) % 30 = 0) \
                OR (a % 10 = 9 AND day < {first} + 60)",
        ))
        .execute()
        .await
        .unwrap();
    }
    let rows = count(client.clone()).await;
    assert_eq!(rows, ROWS);
    println!("{rows} rollup rows ready in {:?}", started.elapsed());

    let logged = client.clone().with_setting("log_queries", "1");
    let usage = Usage::new(logged.clone(), schema.clone());
    let before = common::resident_bytes();
    let started = std::time::Instant::now();
    let findings = Detector::default()
        .detect(&usage, last.start() + 12 * HOUR, &[])
        .await
        .unwrap();
    let took = started.elapsed();
    let after = common::resident_bytes();
    logged.query("SYSTEM FLUSH LOGS").execute().await.unwrap();
    let server: (u64, u64) = logged
        .query(
            "SELECT toUInt64(count()), toUInt64(max(memory_usage)) FROM system.query_log \
             WHERE type = 2 AND query LIKE '%arraySort(gc)%' AND query NOT LIKE '%query_log%' \
             AND event_time > now() - 3600",
        )
        .fetch_one()
        .await
        .unwrap();
    println!(
        "one check over 1 000 000 accounts: {took:?}, {} findings; this process {} MiB \
         resident before, {} MiB after; {} queries on the server, the largest using {} MiB",
        findings.len(),
        before >> 20,
        after >> 20,
        server.0,
        server.1 >> 20
    );
    // The churned tenth, and nobody else.
    assert_eq!(findings.len(), 100_000);
    assert!(
        findings
            .iter()
            .all(|f| f.account_id % 10 == 9 && f.reason == Reason::Silent)
    );
}
