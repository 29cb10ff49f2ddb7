//! Sent again, one row: the time of an event whose `eventId` carries none.
//!
//! An event is one row of the events table when every copy has the same key,
//! `(account_id, inserted_at, event_id, source)` (see
//! [`EVENTS_KEY`](crate::schema::EVENTS_KEY)). An event with a `timestamp`, or with an
//! `eventId` that carries its time (UUID v1, v6, v7), has the same time whenever it is sent.
//! An event with any other `eventId` (a UUID v4 from `uuid.uuid4()`, `crypto.randomUUID()`
//! or `UUID.randomUUID()`, a v3, v5 or v8) and no `timestamp` has only the moment it arrives,
//! which differs at every resend. For those, before the events are taken, [`Resends`] looks
//! up whether the reporter sent the same `(accountId, eventId)` before, within the resend
//! window, and gives the event the time of that first report:
//!
//! 1. in this process's memory of the ids it took recently (the last [`RECENT_IDS`] ids,
//!    each kept for the window), which also covers events still in the writer's queue;
//! 2. then in the events table, over the window's rows of those accounts (`account_id` and
//!    `inserted_at` lead the key, so this reads one account's last days, not its history).
//!
//! The first report's time is kept in memory before the events are enqueued, so two
//! resends racing through this process agree as well. If ClickHouse cannot be asked, the
//! request is answered `503`: taking the event with a new time could make it two rows.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use uuid::Uuid;

use crate::{
    error::Error,
    event::{Event, Source},
    schema::Schema,
};

/// How many recently taken ids a reporter remembers, across all its reporters.
pub const RECENT_IDS: usize = 100_000;

/// How long a look-up in ClickHouse may take before the request is answered `503`.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Who sent which id, for which account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    source: Source,
    account_id: u64,
    event_id: Uuid,
}

/// The ids taken recently, with the time each event was given, oldest first.
#[derive(Debug, Default)]
struct Recent {
    times: HashMap<Key, u32>,
    /// Each key with the second it was remembered.
    order: VecDeque<(Key, u32)>,
}

impl Recent {
    fn forget_old(&mut self, now: u32, window: Duration, capacity: usize) {
        let oldest = u64::from(now).saturating_sub(window.as_secs());
        while let Some((key, at)) = self.order.front() {
            if self.order.len() <= capacity && u64::from(*at) >= oldest {
                break;
            }
            self.times.remove(key);
            self.order.pop_front();
        }
    }

    /// The time of `key`'s first report: the one remembered, or else `time`, remembered now.
    fn first(&mut self, key: Key, time: u32, now: u32) -> u32 {
        if let Some(&first) = self.times.get(&key) {
            return first;
        }
        self.times.insert(key.clone(), time);
        self.order.push_back((key, now));
        time
    }
}

/// Why the events could not be checked for earlier reports.
#[derive(Debug)]
pub(crate) struct Unchecked(pub(crate) Error);

/// Finds the first report of events sent again whose id carries no time.
pub(crate) struct Resends {
    client: clickhouse::Client,
    schema: Schema,
    window: Duration,
    capacity: usize,
    recent: Mutex<Recent>,
}

impl fmt::Debug for Resends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resends")
            .field("table", &self.schema.qualified_table())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, clickhouse::Row)]
struct Found {
    account_id: u64,
    id: String,
    first: u32,
}

impl Resends {
    pub(crate) fn new(client: clickhouse::Client, schema: Schema, window: Duration) -> Self {
        Self {
            client,
            schema,
            window,
            capacity: RECENT_IDS,
            recent: Mutex::new(Recent::default()),
        }
    }

    /// Gives each event of `events` from `source` whose time is only the moment it was
    /// received (`now`) the time of its first report, if it had one within the window.
    pub(crate) async fn settle(
        &self,
        source: &Source,
        events: &mut [Event],
        now: SystemTime,
    ) -> Result<(), Unchecked> {
        let now = unix(now);
        let key = |e: &Event| Key {
            source: source.clone(),
            account_id: e.account_id(),
            event_id: e.event_id(),
        };
        let timeless: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event_id().get_timestamp().is_none())
            .map(|(i, _)| i)
            .collect();
        if timeless.is_empty() {
            return Ok(());
        }
        let (unsettled, timed): (Vec<usize>, Vec<usize>) = timeless
            .into_iter()
            .partition(|&i| events[i].unix_seconds() == now);
        let unknown: Vec<usize> = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.forget_old(now, self.window, self.capacity);
            // An event sent with its `timestamp` keeps it, and a resend of it without one
            // takes it from here until it is written.
            for &i in &timed {
                recent.first(key(&events[i]), events[i].unix_seconds(), now);
            }
            unsettled
                .into_iter()
                .filter(|&i| match recent.times.get(&key(&events[i])) {
                    Some(&first) => {
                        set_time(&mut events[i], first);
                        false
                    }
                    None => true,
                })
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let found = self.look_up(source, events, &unknown, now).await?;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for i in unknown {
            let event = &mut events[i];
            let earlier = found
                .iter()
                .find(|f| {
                    f.account_id == event.account_id() && f.id == event.event_id().to_string()
                })
                .map(|f| f.first);
            let first = recent.first(key(event), earlier.unwrap_or(now), now);
            set_time(event, first);
        }
        Ok(())
    }

    /// The earliest time of each of `events[at]` stored by `source` within the window.
    async fn look_up(
        &self,
        source: &Source,
        events: &[Event],
        at: &[usize],
        now: u32,
    ) -> Result<Vec<Found>, Unchecked> {
        let mut accounts: Vec<u64> = at.iter().map(|&i| events[i].account_id()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let accounts = accounts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        // Numbers and UUIDs in their hyphenated form cannot inject anything, and literal
        // lists let ClickHouse use the primary key.
        let ids = at
            .iter()
            .map(|&i| format!("toUUID('{}')", events[i].event_id()))
            .collect::<Vec<_>>()
            .join(", ");
        let since = u64::from(now).saturating_sub(self.window.as_secs());
        let query = self
            .client
            .query(&format!(
                "SELECT account_id, toString(event_id) AS id, \
                        toUInt32(min(inserted_at)) AS first \
                 FROM {table} \
                 WHERE account_id IN ({accounts}) AND inserted_at >= toDateTime(?) \
                   AND event_id IN ({ids}) AND source = ? \
                 GROUP BY account_id, id",
                table = self.schema.qualified_table(),
            ))
            .bind(since)
            .bind(source.as_str());
        match tokio::time::timeout(LOOKUP_TIMEOUT, query.fetch_all::<Found>()).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(error)) => {
                // Before the writer made its table, nothing was stored yet.
                match self
                    .schema
                    .table_exists(&self.client, self.schema.table())
                    .await
                {
                    Ok(false) => Ok(Vec::new()),
                    _ => Err(Unchecked(error.into())),
                }
            }
            Err(_) => Err(Unchecked(Error::Timeout(LOOKUP_TIMEOUT))),
        }
    }
}

fn unix(time: SystemTime) -> u32 {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn set_time(event: &mut Event, secs: u32) {
    let time = UNIX_EPOCH + Duration::from_secs(u64::from(secs));
    if let Ok(timed) = event.clone().with_time(time) {
        *event = timed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128) -> Key {
        Key {
            source: Source::new("billing").unwrap(),
            account_id: 1,
            event_id: Uuid::from_u128(n),
        }
    }

    #[test]
    fn the_first_report_wins() {
        let mut recent = Recent::default();
        assert_eq!(recent.first(key(1), 100, 100), 100);
        assert_eq!(recent.first(key(1), 105, 105), 100);
        assert_eq!(recent.first(key(2), 105, 105), 105);
        let other_source = Key {
            source: Source::new("search").unwrap(),
            ..key(1)
        };
        assert_eq!(recent.first(other_source, 107, 107), 107);
    }

    #[test]
    fn memory_is_bounded_by_count_and_age() {
        let window = Duration::from_secs(60);
        let mut recent = Recent::default();
        for n in 0..10 {
            recent.first(key(n), 100, 100 + n as u32);
        }
        recent.forget_old(109, window, 4);
        assert_eq!(recent.times.len(), 4);
        assert!(recent.times.contains_key(&key(9)));
        assert!(!recent.times.contains_key(&key(5)));
        // Past the window, the rest goes too.
        recent.forget_old(100 + 6 + 61, window, 4);
        assert_eq!(recent.times.len(), 3);
        recent.forget_old(100 + 9 + 61, window, 4);
        assert!(recent.times.is_empty() && recent.order.is_empty());
    }
}
