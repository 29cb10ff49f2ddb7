//! The replay: load a data set into ClickHouse one day at a time, through the crate's
//! writer, and ask every detector after each day which accounts it flags.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::future::join_all;
use idp_analytics::{Analytics, Event, schema::Schema, usage::Usage};

use super::{
    data::{DAY, Dataset},
    detector::Detector,
    metrics::{Flags, flags_from},
};

/// Event types the replayed events are spread over, as an application's would be.
const EVENT_TYPES: [&str; 3] = ["login", "search", "export"];

/// What one replay produced.
pub(crate) struct Replay {
    /// Per detector name: its family, and its first flag in each quiet spell.
    pub(crate) flags: Vec<(String, String, Flags)>,
    /// Events written.
    pub(crate) events: u64,
    /// Days evaluated.
    pub(crate) days: u32,
    /// Time spent writing the events (until ClickHouse acknowledged them), and asking the
    /// detectors.
    pub(crate) write_time: Duration,
    pub(crate) detect_time: Duration,
}

/// Replays `dataset` into the database `database` (dropped and made anew) on the ClickHouse
/// at `url`, with the detectors `make` returns for its tables.
pub(crate) async fn replay(
    url: &str,
    database: &str,
    dataset: &Dataset,
    make: impl FnOnce(&Usage) -> Vec<Box<dyn Detector>>,
) -> Result<Replay, Box<dyn std::error::Error>> {
    let client = clickhouse::Client::default()
        .with_url(url)
        .with_validation(false);
    client
        .query(&format!("DROP DATABASE IF EXISTS `{database}`"))
        .execute()
        .await?;
    let schema = Schema::new(database, "events")?;
    let version = Schema::server_version(&client).await?;
    schema.ensure(&client, version).await?;
    let analytics = Analytics::builder(url)
        .with_schema(schema.clone())
        .with_queue_capacity(1 << 21)
        .with_max_rows(100_000)
        .with_flush_interval(Duration::from_millis(5))
        .build()?;
    let usage = Usage::new(client.clone(), schema);
    let detectors = make(&usage);

    // Per account, its last active day loaded so far; per detector, the spells it flagged.
    let mut last_active: HashMap<u64, u32> = HashMap::new();
    let mut flagged: Vec<HashSet<(u64, u32)>> = vec![HashSet::new(); detectors.len()];
    let mut pairs: Vec<Vec<(u64, u32)>> = vec![Vec::new(); detectors.len()];
    let mut next = 0;
    let mut written = 0u64;
    let (mut write_time, mut detect_time) = (Duration::ZERO, Duration::ZERO);
    for day in dataset.first_day..=dataset.end_day {
        let mut batch = Vec::new();
        while let Some(&(account, time)) = dataset.events.get(next) {
            if time / DAY != day {
                break;
            }
            let event_type = EVENT_TYPES[next % EVENT_TYPES.len()];
            let at = UNIX_EPOCH + Duration::from_secs(u64::from(time));
            batch.push(Event::new(account, event_type)?.with_time(at)?);
            last_active.insert(account, day);
            next += 1;
        }
        written += batch.len() as u64;
        let started = Instant::now();
        analytics.try_record_confirmed(batch)?.await?;
        write_time += started.elapsed();
        let started = Instant::now();

        let now: SystemTime = UNIX_EPOCH + Duration::from_secs(u64::from(day + 1) * u64::from(DAY));
        let answers = join_all(detectors.iter().map(|d| d.flagged(now))).await;
        for (i, answer) in answers.into_iter().enumerate() {
            for account in answer? {
                // A detector may flag accounts the data never saw (never active): not scored.
                let Some(&start) = last_active.get(&account) else {
                    continue;
                };
                if flagged[i].insert((account, start)) {
                    pairs[i].push((account, day));
                }
            }
        }
        detect_time += started.elapsed();
    }
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    if !report.unwritten.is_empty() {
        return Err(format!("{} events left unwritten", report.unwritten.len()).into());
    }
    Ok(Replay {
        flags: detectors
            .iter()
            .zip(pairs)
            .map(|(d, p)| (d.name(), d.family(), flags_from(p)))
            .collect(),
        events: written,
        days: dataset.end_day - dataset.first_day + 1,
        write_time,
        detect_time,
    })
}
