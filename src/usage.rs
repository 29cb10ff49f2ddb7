//! Per-account usage: typed answers from the daily rollup, or from the raw events table.
//!
//! [`Usage`] answers the questions a SaaS owner asks about accounts:
//!
//! - one account over a range of days: [`account`](Usage::account) (total events, events per
//!   event type, first and last seen, active days, events per day);
//! - every account: [`active_accounts`](Usage::active_accounts) per day or per week,
//!   [`top_event_types`](Usage::top_event_types), [`top_accounts`](Usage::top_accounts)
//!   ranked by activity, [`events_per_day`](Usage::events_per_day) for several accounts;
//! - the quiet ones: [`inactive_accounts`](Usage::inactive_accounts), whose last event is
//!   older than a cutoff, with the never-active ones among the accounts the application
//!   knows ([`KnownAccount`]).
//!
//! Answers come from the per-account, per-day rollup the [schema](crate::schema) keeps
//! ([`ReadFrom::Rollup`], the default): reading it does not scan raw events. The same
//! questions can be put to the events table ([`ReadFrom::Events`]); both count distinct
//! `event_id`s, so rows stored twice by a retried insert, merged or not, count once, and both
//! answers are equal. While the rollup is being backfilled
//! ([`Schema::rollup_ready`](crate::schema::Schema::rollup_ready) is false), a
//! [`ReadFrom::Rollup`] reader answers from the events table.
//!
//! Days are UTC days. Times are whole seconds (the events table stores seconds).
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use idp_analytics::schema::Schema;
//! use idp_analytics::usage::{Days, Period, Usage};
//!
//! # async fn run() -> idp_analytics::Result<()> {
//! let client = clickhouse::Client::default().with_url("http://127.0.0.1:8123");
//! let usage = Usage::new(client, Schema::default());
//!
//! let month = Days::ending_today(30);
//! let account = usage.account(42, month).await?;
//! println!("{} events on {} days", account.total_events, account.active_days);
//!
//! for week in usage.active_accounts(month, Period::Week).await? {
//!     println!("week of {}: {} active accounts", week.start, week.accounts);
//! }
//!
//! let week_ago = SystemTime::now() - Duration::from_secs(7 * 86_400);
//! for quiet in usage.inactive_accounts(week_ago, &[]).await? {
//!     println!("account {} is quiet", quiet.account_id);
//! }
//! # Ok(())
//! # }
//! ```

use std::{
    collections::{HashMap, HashSet},
    fmt,
    future::Future,
    pin::Pin,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize, Serializer};

use crate::{
    error::{BoxError, Error, Result},
    schema::Schema,
};

const SECONDS_PER_DAY: u64 = 86_400;

/// The last day a ClickHouse `DateTime` reaches (2106-02-07).
const LAST_DAY: u32 = (u32::MAX as u64 / SECONDS_PER_DAY) as u32;

/// A calendar day in UTC.
///
/// ```
/// use idp_analytics::usage::Day;
///
/// let day: Day = "2024-05-06".parse()?;
/// assert_eq!(day, Day::from_ymd(2024, 5, 6).unwrap());
/// assert_eq!(day.to_string(), "2024-05-06");
/// assert_eq!(day.monday(), day); // a Monday
/// assert_eq!(day.add_days(2).monday(), day);
/// assert_eq!(Day::from_ymd(2024, 2, 30), None);
/// # Ok::<(), idp_analytics::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(u32);

impl Day {
    /// The day `days` days after 1970-01-01; days past 2106-02-07 (the last a ClickHouse
    /// `DateTime` reaches) are clamped to it.
    pub const fn from_days_since_epoch(days: u32) -> Self {
        Self(if days > LAST_DAY { LAST_DAY } else { days })
    }

    /// The day of a date, or `None` for a date that does not exist or lies outside
    /// 1970-01-01 to 2106-02-07.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
        u32::try_from(days)
            .ok()
            .filter(|d| *d <= LAST_DAY)
            .map(Self)
    }

    /// The UTC day `time` falls on (1970-01-01 for earlier times).
    pub fn of(time: SystemTime) -> Self {
        let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::from_days_since_epoch(u32::try_from(secs / SECONDS_PER_DAY).unwrap_or(u32::MAX))
    }

    /// The current UTC day.
    pub fn today() -> Self {
        Self::of(SystemTime::now())
    }

    /// Days since 1970-01-01.
    pub const fn days_since_epoch(self) -> u32 {
        self.0
    }

    /// The year, month (1 to 12) and day of the month.
    pub fn ymd(self) -> (i32, u32, u32) {
        let (y, m, d) = civil_from_days(i64::from(self.0));
        // The range of `Day` keeps these in range.
        (y as i32, m as u32, d as u32)
    }

    /// Midnight UTC at the start of the day.
    pub fn start(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.0) * SECONDS_PER_DAY)
    }

    /// The day `n` days later (clamped at 2106-02-07).
    pub fn add_days(self, n: u32) -> Self {
        Self::from_days_since_epoch(self.0.saturating_add(n))
    }

    /// The day `n` days earlier (clamped at 1970-01-01).
    pub fn sub_days(self, n: u32) -> Self {
        Self(self.0.saturating_sub(n))
    }

    /// The Monday that starts this day's week (ISO weeks, as ClickHouse's `toMonday`).
    pub fn monday(self) -> Self {
        // 1970-01-01 was a Thursday: three days after a Monday.
        let since_monday = (self.0 + 3) % 7;
        // Before the first Monday, 1970-01-05, the week starts on day 0.
        Self(self.0.saturating_sub(since_monday))
    }

    /// `YYYY-MM-DD`, the form ClickHouse parses as a `Date`.
    fn sql(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Day {
    type Err = Error;

    /// Parses `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("not a day (YYYY-MM-DD): {s:?}"));
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let num = |p: &str| p.parse::<u32>().map_err(|_| bad());
        let year = i32::try_from(num(y)?).map_err(|_| bad())?;
        Self::from_ymd(year, num(m)?, num(d)?).ok_or_else(bad)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An inclusive range of UTC days.
///
/// ```
/// use idp_analytics::usage::{Day, Days};
///
/// let days = Days::ending(Day::from_ymd(2024, 5, 31).unwrap(), 31);
/// assert_eq!(days.first().to_string(), "2024-05-01");
/// assert_eq!(days.len(), 31);
/// assert!(Days::new(days.last(), days.first()).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Days {
    first: Day,
    last: Day,
}

impl Days {
    /// The days from `first` to `last`, both included. `first` must not be after `last`.
    pub fn new(first: Day, last: Day) -> Result<Self> {
        if first > last {
            return Err(Error::Config(format!(
                "the range of days starts ({first}) after it ends ({last})"
            )));
        }
        Ok(Self { first, last })
    }

    /// The `n` days that end with `last` (at least one).
    pub fn ending(last: Day, n: u32) -> Self {
        Self {
            first: last.sub_days(n.max(1) - 1),
            last,
        }
    }

    /// The `n` days that end today (at least one).
    pub fn ending_today(n: u32) -> Self {
        Self::ending(Day::today(), n)
    }

    /// The first day.
    pub fn first(&self) -> Day {
        self.first
    }

    /// The last day.
    pub fn last(&self) -> Day {
        self.last
    }

    /// How many days the range holds.
    pub fn len(&self) -> u32 {
        self.last.0 - self.first.0 + 1
    }

    /// Always false: a range holds at least one day.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `day` is in the range.
    pub fn contains(&self, day: Day) -> bool {
        self.first <= day && day <= self.last
    }

    /// Each day of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = Day> + use<> {
        (self.first.0..=self.last.0).map(Day)
    }

    /// The first and the last second of the range, in Unix seconds. The last is inclusive: the
    /// second after 2106-02-07 06:28:15, the last a `DateTime` holds, is no `DateTime`.
    fn seconds(&self) -> (u32, u32) {
        let secs = |day: u32| u32::try_from(u64::from(day) * SECONDS_PER_DAY).unwrap_or(u32::MAX);
        let end = (u64::from(self.last.0) + 1) * SECONDS_PER_DAY - 1;
        (secs(self.first.0), u32::try_from(end).unwrap_or(u32::MAX))
    }
}

/// Which table answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadFrom {
    /// The per-account, per-day rollup, or the events table while the rollup is not ready.
    #[default]
    Rollup,
    /// The events table, counting distinct `event_id`s.
    Events,
}

/// Days or weeks, for [`Usage::active_accounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    /// UTC days.
    Day,
    /// ISO weeks, Monday to Sunday (UTC).
    Week,
}

/// One account's usage over a range of days. Made by [`Usage::account`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AccountUsage {
    /// The account.
    pub account_id: u64,
    /// The days asked about.
    pub days: Days,
    /// Events in the range (distinct event ids).
    pub total_events: u64,
    /// Events per event type, most first (then by name).
    pub event_types: Vec<EventTypeCount>,
    /// The first event in the range; `None` when there was none.
    #[serde(serialize_with = "rfc3339_option")]
    pub first_seen: Option<SystemTime>,
    /// The last event in the range; `None` when there was none.
    #[serde(serialize_with = "rfc3339_option")]
    pub last_seen: Option<SystemTime>,
    /// Days with at least one event.
    pub active_days: u32,
    /// Events per day, for the days with events, in order.
    pub per_day: Vec<DayCount>,
}

/// Events of one event type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EventTypeCount {
    /// The event type.
    pub event_type: String,
    /// Events of this type (distinct event ids).
    pub events: u64,
    /// Accounts with at least one event of this type (1 in one account's usage).
    pub accounts: u64,
}

/// Events on one day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DayCount {
    /// The day.
    pub day: Day,
    /// Events that day (distinct event ids).
    pub events: u64,
}

/// Accounts with at least one event in a day or a week. Made by [`Usage::active_accounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ActiveAccounts {
    /// The day, or the Monday that starts the week.
    pub start: Day,
    /// Active accounts in that period, within the range asked about.
    pub accounts: u64,
}

/// One account's activity over a range. Made by [`Usage::top_accounts`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AccountActivity {
    /// The account.
    pub account_id: u64,
    /// Events in the range (distinct event ids).
    pub events: u64,
    /// Days with at least one event in the range.
    pub active_days: u32,
    /// The last event in the range.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub last_seen: SystemTime,
}

/// Events per day of one account. Made by [`Usage::events_per_day`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AccountDays {
    /// The account.
    pub account_id: u64,
    /// Events per day, for the days with events, in order.
    pub per_day: Vec<DayCount>,
}

/// An account with no event since a cutoff. Made by [`Usage::inactive_accounts`].
///
/// As JSON: `{"accountId": 42, "lastSeen": "2024-05-01T10:00:00Z", "signedUp": null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InactiveAccount {
    /// The account.
    pub account_id: u64,
    /// Its last event ever; `None` for a known account that never had one.
    #[serde(serialize_with = "rfc3339_option")]
    pub last_seen: Option<SystemTime>,
    /// When it signed up, for an account the application passed as known.
    #[serde(serialize_with = "rfc3339_option")]
    pub signed_up: Option<SystemTime>,
}

/// An account the application knows, with the time it signed up: an account that never had
/// an event is reported inactive once it signed up longer ago than the cutoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KnownAccount {
    /// The account.
    pub account_id: u64,
    /// When it signed up.
    pub signed_up: SystemTime,
}

impl KnownAccount {
    /// An account that signed up at `signed_up`.
    pub fn new(account_id: u64, signed_up: SystemTime) -> Self {
        Self {
            account_id,
            signed_up,
        }
    }
}

/// The future a [`KnownAccounts`] source returns.
pub type KnownAccountsFuture<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<Vec<KnownAccount>, BoxError>> + Send + 'a>>;

/// The application's list of accounts, read each time it is needed (a watch's check, a page
/// view), so accounts that sign up later are included.
///
/// Implemented for a fixed `Vec<KnownAccount>` and for closures returning a future:
///
/// ```
/// use std::time::SystemTime;
/// use idp_analytics::usage::{KnownAccount, KnownAccounts};
///
/// fn takes(_: impl KnownAccounts) {}
///
/// takes(vec![KnownAccount::new(7, SystemTime::UNIX_EPOCH)]);
/// takes(|| async {
///     // e.g. `SELECT id, created_at FROM accounts` in the application's database
///     Ok::<_, std::io::Error>(vec![KnownAccount::new(7, SystemTime::UNIX_EPOCH)])
/// });
/// ```
pub trait KnownAccounts: Send + Sync + 'static {
    /// Lists the accounts.
    fn known_accounts(&self) -> KnownAccountsFuture<'_>;
}

impl<F, Fut, E> KnownAccounts for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Vec<KnownAccount>, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn known_accounts(&self) -> KnownAccountsFuture<'_> {
        let fut = self();
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

impl KnownAccounts for Vec<KnownAccount> {
    fn known_accounts(&self) -> KnownAccountsFuture<'_> {
        Box::pin(async move { Ok(self.clone()) })
    }
}

/// Answers usage questions. Cheap to clone.
///
/// Made with [`Usage::new`]; [`with_read_from`](Self::with_read_from) picks the table.
/// Until the events table exists (a writer creates it when it starts), every question
/// fails with [`Error::TableMissing`].
#[derive(Clone)]
pub struct Usage {
    client: clickhouse::Client,
    schema: Schema,
    read_from: ReadFrom,
    /// Set once the rollup is seen ready; it stays ready.
    rollup_ready: Arc<AtomicBool>,
    /// Set once the events table is seen; until then each question checks it exists.
    table_seen: Arc<AtomicBool>,
}

impl fmt::Debug for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Usage")
            .field("table", &self.schema.qualified_table())
            .field("read_from", &self.read_from)
            .finish_non_exhaustive()
    }
}

/// Where one query reads, and the expressions that differ between the two tables.
struct Source {
    table: String,
    rollup: bool,
}

impl Source {
    fn count(&self) -> &'static str {
        if self.rollup {
            "uniqExactMerge(events)"
        } else {
            "uniqExact(event_id)"
        }
    }

    fn first(&self) -> &'static str {
        if self.rollup {
            "minMerge(first_seen)"
        } else {
            "toUInt32(min(inserted_at))"
        }
    }

    fn last(&self) -> &'static str {
        if self.rollup {
            "maxMerge(last_seen)"
        } else {
            "toUInt32(max(inserted_at))"
        }
    }

    fn day(&self) -> &'static str {
        if self.rollup {
            "day"
        } else {
            "toDate(inserted_at, 'UTC')"
        }
    }

    /// A condition with two parameters, bound by [`bind_range`](Self::bind_range).
    fn in_range(&self) -> &'static str {
        if self.rollup {
            "day >= toDate(?) AND day <= toDate(?)"
        } else {
            "inserted_at >= toDateTime(?) AND inserted_at <= toDateTime(?)"
        }
    }

    fn bind_range(&self, query: clickhouse::query::Query, days: Days) -> clickhouse::query::Query {
        if self.rollup {
            query.bind(days.first.sql()).bind(days.last.sql())
        } else {
            let (from, to) = days.seconds();
            query.bind(from).bind(to)
        }
    }
}

#[derive(clickhouse::Row, Deserialize)]
struct TypeRow {
    event_type: String,
    events: u64,
    accounts: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct DayRow {
    day: u16,
    events: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct TotalRow {
    events: u64,
    first: u32,
    last: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct PeriodRow {
    start: u16,
    accounts: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct ActivityRow {
    account_id: u64,
    events: u64,
    active_days: u64,
    last: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct AccountDayRow {
    account_id: u64,
    day: u16,
    events: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct LastSeenRow {
    account_id: u64,
    last: u32,
}

impl Usage {
    /// Answers from the tables of `schema`, through `client`.
    ///
    /// Validation of row types is turned off on the client: rows are read as plain
    /// `RowBinary`, which every supported server version speaks.
    pub fn new(client: clickhouse::Client, schema: Schema) -> Self {
        Self {
            client: client.with_validation(false),
            schema,
            read_from: ReadFrom::Rollup,
            rollup_ready: Arc::new(AtomicBool::new(false)),
            table_seen: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Which table answers. Default: [`ReadFrom::Rollup`].
    pub fn with_read_from(mut self, read_from: ReadFrom) -> Self {
        self.read_from = read_from;
        self
    }

    /// The schema whose tables are read.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The ClickHouse client.
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// Which table answers, as configured.
    pub fn read_from(&self) -> ReadFrom {
        self.read_from
    }

    async fn source(&self) -> Result<Source> {
        if !self.table_seen.load(Ordering::Acquire) {
            // A writer that started a moment ago may not have created it yet.
            if !self
                .schema
                .table_exists(&self.client, self.schema.table())
                .await?
            {
                return Err(Error::TableMissing {
                    table: self.schema.qualified_table(),
                });
            }
            self.table_seen.store(true, Ordering::Release);
        }
        let rollup = match self.read_from {
            ReadFrom::Events => false,
            ReadFrom::Rollup if self.rollup_ready.load(Ordering::Acquire) => true,
            ReadFrom::Rollup => {
                let ready = self.schema.rollup_ready(&self.client).await?;
                if ready {
                    self.rollup_ready.store(true, Ordering::Release);
                } else {
                    tracing::debug!(
                        table = %self.schema.qualified_table(),
                        "the rollup is not ready; answering from the events table"
                    );
                }
                ready
            }
        };
        let table = if rollup {
            self.schema.qualified(&self.schema.rollup_table())
        } else {
            self.schema.qualified_table()
        };
        Ok(Source { table, rollup })
    }

    /// One account's usage over `days`.
    pub async fn account(&self, account_id: u64, days: Days) -> Result<AccountUsage> {
        let src = self.source().await?;
        let (table, range) = (&src.table, src.in_range());
        let by_type = src
            .bind_range(
                self.client
                    .query(&format!(
                        "SELECT event_type, {count} AS n, toUInt64(1) AS a FROM {table} \
                         WHERE account_id = ? AND {range} \
                         GROUP BY event_type ORDER BY n DESC, event_type",
                        count = src.count(),
                    ))
                    .bind(account_id),
                days,
            )
            .fetch_all::<TypeRow>();
        let per_day = src
            .bind_range(
                self.client
                    .query(&format!(
                        "SELECT {day} AS d, {count} AS n FROM {table} \
                         WHERE account_id = ? AND {range} GROUP BY d ORDER BY d",
                        day = src.day(),
                        count = src.count(),
                    ))
                    .bind(account_id),
                days,
            )
            .fetch_all::<DayRow>();
        let total = src
            .bind_range(
                self.client
                    .query(&format!(
                        "SELECT {count}, {first}, {last} FROM {table} \
                         WHERE account_id = ? AND {range}",
                        count = src.count(),
                        first = src.first(),
                        last = src.last(),
                    ))
                    .bind(account_id),
                days,
            )
            .fetch_one::<TotalRow>();
        let (by_type, per_day, total) = futures::future::try_join3(by_type, per_day, total).await?;
        let seen = |secs: u32| (total.events > 0).then(|| unix(secs));
        Ok(AccountUsage {
            account_id,
            days,
            total_events: total.events,
            event_types: by_type.into_iter().map(EventTypeCount::from).collect(),
            first_seen: seen(total.first),
            last_seen: seen(total.last),
            active_days: u32::try_from(per_day.len()).unwrap_or(u32::MAX),
            per_day: per_day.into_iter().map(DayCount::from).collect(),
        })
    }

    /// Accounts with at least one event per day or per week of `days`: every period of the
    /// range, in order, periods without activity included with 0. A week that begins before
    /// or ends after the range counts only its days within it.
    pub async fn active_accounts(&self, days: Days, period: Period) -> Result<Vec<ActiveAccounts>> {
        let src = self.source().await?;
        let bucket = match period {
            Period::Day => src.day().to_owned(),
            Period::Week => format!("toMonday({})", src.day()),
        };
        let rows: Vec<PeriodRow> = src
            .bind_range(
                self.client.query(&format!(
                    "SELECT {bucket} AS start, uniqExact(account_id) AS a FROM {table} \
                     WHERE {range} GROUP BY start ORDER BY start",
                    table = src.table,
                    range = src.in_range(),
                )),
                days,
            )
            .fetch_all()
            .await?;
        let found: HashMap<u32, u64> = rows
            .into_iter()
            .map(|r| (u32::from(r.start), r.accounts))
            .collect();
        let starts: Vec<Day> = match period {
            Period::Day => days.iter().collect(),
            Period::Week => {
                let mut weeks = vec![days.first.monday()];
                loop {
                    let next = weeks[weeks.len() - 1].add_days(7);
                    if next > days.last || next.0 == LAST_DAY {
                        break weeks;
                    }
                    weeks.push(next);
                }
            }
        };
        Ok(starts
            .into_iter()
            .map(|start| ActiveAccounts {
                start,
                accounts: found.get(&start.0).copied().unwrap_or(0),
            })
            .collect())
    }

    /// The `limit` event types with the most events in `days`, most first (then by name).
    pub async fn top_event_types(&self, days: Days, limit: u64) -> Result<Vec<EventTypeCount>> {
        let src = self.source().await?;
        let rows: Vec<TypeRow> = src
            .bind_range(
                self.client.query(&format!(
                    "SELECT event_type, {count} AS n, uniqExact(account_id) AS a FROM {table} \
                     WHERE {range} GROUP BY event_type ORDER BY n DESC, event_type LIMIT {limit}",
                    count = src.count(),
                    table = src.table,
                    range = src.in_range(),
                )),
                days,
            )
            .fetch_all()
            .await?;
        Ok(rows.into_iter().map(EventTypeCount::from).collect())
    }

    /// The `limit` accounts with the most events in `days`, most first (then by account id).
    pub async fn top_accounts(&self, days: Days, limit: u64) -> Result<Vec<AccountActivity>> {
        let src = self.source().await?;
        let rows: Vec<ActivityRow> = src
            .bind_range(
                self.client.query(&format!(
                    "SELECT account_id, {count} AS n, uniqExact({day}) AS d, {last} AS l \
                     FROM {table} WHERE {range} \
                     GROUP BY account_id ORDER BY n DESC, account_id LIMIT {limit}",
                    count = src.count(),
                    day = src.day(),
                    last = src.last(),
                    table = src.table,
                    range = src.in_range(),
                )),
                days,
            )
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AccountActivity {
                account_id: r.account_id,
                events: r.events,
                active_days: u32::try_from(r.active_days).unwrap_or(u32::MAX),
                last_seen: unix(r.last),
            })
            .collect())
    }

    /// Events per day in `days` for each of `accounts` that had any, by account id.
    pub async fn events_per_day(&self, accounts: &[u64], days: Days) -> Result<Vec<AccountDays>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let src = self.source().await?;
        // Numbers cannot inject anything; a literal list lets ClickHouse use the primary key.
        let ids = accounts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<AccountDayRow> = src
            .bind_range(
                self.client.query(&format!(
                    "SELECT account_id, {day} AS d, {count} AS n FROM {table} \
                     WHERE account_id IN ({ids}) AND {range} \
                     GROUP BY account_id, d ORDER BY account_id, d",
                    day = src.day(),
                    count = src.count(),
                    table = src.table,
                    range = src.in_range(),
                )),
                days,
            )
            .fetch_all()
            .await?;
        let mut out: Vec<AccountDays> = Vec::new();
        for row in rows {
            let count = DayCount {
                day: Day(u32::from(row.day)),
                events: row.events,
            };
            match out.last_mut() {
                Some(last) if last.account_id == row.account_id => last.per_day.push(count),
                _ => out.push(AccountDays {
                    account_id: row.account_id,
                    per_day: vec![count],
                }),
            }
        }
        Ok(out)
    }

    /// Every account with an event, and its last event ever.
    pub async fn last_seen(&self) -> Result<HashMap<u64, SystemTime>> {
        let src = self.source().await?;
        let rows: Vec<LastSeenRow> = self
            .client
            .query(&format!(
                "SELECT account_id, {last} AS l FROM {table} GROUP BY account_id",
                last = src.last(),
                table = src.table,
            ))
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.account_id, unix(r.last)))
            .collect())
    }

    /// Accounts with no event at or after `since`, with their last event: every account whose
    /// last event is older, and every account of `known` that never had an event and signed
    /// up before `since`. Never-active accounts come first (earliest sign-up first), then the
    /// longest quiet.
    pub async fn inactive_accounts(
        &self,
        since: SystemTime,
        known: &[KnownAccount],
    ) -> Result<Vec<InactiveAccount>> {
        // `last < since` in whole seconds: a `since` with a fraction rounds up.
        let cutoff = ceil_seconds(since);
        if known.is_empty() {
            let src = self.source().await?;
            let rows: Vec<LastSeenRow> = self
                .client
                .query(&format!(
                    "SELECT account_id, {last} AS l FROM {table} GROUP BY account_id \
                     HAVING l < ? ORDER BY l, account_id",
                    last = src.last(),
                    table = src.table,
                ))
                .bind(cutoff)
                .fetch_all()
                .await?;
            return Ok(rows
                .into_iter()
                .map(|r| InactiveAccount {
                    account_id: r.account_id,
                    last_seen: Some(unix(r.last)),
                    signed_up: None,
                })
                .collect());
        }
        let seen = self.last_seen().await?;
        Ok(inactive(&seen, since, known))
    }
}

/// The inactive accounts among `seen` (last event per account) and `known`.
pub(crate) fn inactive(
    seen: &HashMap<u64, SystemTime>,
    since: SystemTime,
    known: &[KnownAccount],
) -> Vec<InactiveAccount> {
    let cutoff = unix(ceil_seconds(since));
    let signed_up: HashMap<u64, SystemTime> =
        known.iter().map(|k| (k.account_id, k.signed_up)).collect();
    let mut out: Vec<InactiveAccount> = seen
        .iter()
        .filter(|(_, last)| **last < cutoff)
        .map(|(id, last)| InactiveAccount {
            account_id: *id,
            last_seen: Some(*last),
            signed_up: signed_up.get(id).copied(),
        })
        .collect();
    let mut listed = HashSet::new();
    for k in known {
        if !seen.contains_key(&k.account_id) && k.signed_up < since && listed.insert(k.account_id) {
            out.push(InactiveAccount {
                account_id: k.account_id,
                last_seen: None,
                signed_up: Some(k.signed_up),
            });
        }
    }
    out.sort_by_key(|a| (a.last_seen, a.signed_up, a.account_id));
    out
}

impl From<TypeRow> for EventTypeCount {
    fn from(r: TypeRow) -> Self {
        Self {
            event_type: r.event_type,
            events: r.events,
            accounts: r.accounts,
        }
    }
}

impl From<DayRow> for DayCount {
    fn from(r: DayRow) -> Self {
        Self {
            day: Day(u32::from(r.day)),
            events: r.events,
        }
    }
}

fn unix(secs: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(secs))
}

/// Whole seconds since the Unix epoch, rounded up, within the range of `DateTime`.
fn ceil_seconds(time: SystemTime) -> u32 {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// `2024-05-01T10:00:00Z`: RFC 3339 in UTC, whole seconds.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(u64::from(u32::MAX));
    let day = Day::from_days_since_epoch((secs / SECONDS_PER_DAY) as u32);
    let rest = secs % SECONDS_PER_DAY;
    format!(
        "{day}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Serializes a time as [`rfc3339`].
pub(crate) fn serialize_rfc3339<S: Serializer>(
    time: &SystemTime,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

fn rfc3339_option<S: Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match time {
        Some(t) => serializer.serialize_str(&rfc3339(*t)),
        None => serializer.serialize_none(),
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_days_round_trip_through_dates() {
        assert_eq!(Day::from_ymd(1970, 1, 1), Some(Day(0)));
        assert_eq!(Day::from_ymd(2000, 3, 1).unwrap().0, 11_017);
        assert_eq!(
            Day::from_ymd(2024, 2, 29).unwrap().to_string(),
            "2024-02-29"
        );
        assert_eq!(Day::from_ymd(2023, 2, 29), None);
        assert_eq!(Day::from_ymd(1900, 2, 29), None);
        assert_eq!(Day::from_ymd(1969, 12, 31), None);
        assert_eq!(Day::from_ymd(2106, 2, 8), None);
        assert_eq!(Day::from_ymd(2106, 2, 7), Some(Day(LAST_DAY)));
        for n in (0..=LAST_DAY).step_by(37) {
            let (y, m, d) = Day(n).ymd();
            assert_eq!(Day::from_ymd(y, m, d), Some(Day(n)), "{n}");
            assert_eq!(Day(n).to_string().parse::<Day>().unwrap(), Day(n));
        }
        for bad in [
            "",
            "2024-5-1",
            "2024-05-01x",
            "2024-13-01",
            "24-05-01",
            "2024-05-01-01",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usage_weeks_start_on_monday() {
        let monday = Day::from_ymd(2024, 5, 6).unwrap();
        for i in 0..7 {
            assert_eq!(monday.add_days(i).monday(), monday);
        }
        assert_eq!(monday.sub_days(1).monday(), monday.sub_days(7));
        // 1970-01-05 was the first Monday; days before it start at day 0.
        assert_eq!(Day(4).monday(), Day(4));
        assert_eq!(Day(2).monday(), Day(0));
    }

    #[test]
    fn usage_times_are_written_in_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_714_557_600_999)),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_868_799)),
            "2000-02-29T23:59:59Z"
        );
        assert_eq!(ceil_seconds(UNIX_EPOCH + Duration::from_millis(1500)), 2);
        assert_eq!(ceil_seconds(UNIX_EPOCH + Duration::from_secs(2)), 2);
    }

    #[test]
    fn usage_day_ranges() {
        let last = Day::from_ymd(2024, 3, 2).unwrap();
        let days = Days::ending(last, 3);
        assert_eq!(days.first().to_string(), "2024-02-29");
        assert_eq!(
            days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["2024-02-29", "2024-03-01", "2024-03-02"]
        );
        assert_eq!(Days::ending(last, 0).len(), 1);
        assert_eq!(days.seconds(), (1_709_164_800, 1_709_423_999));
        let end = Days::ending(Day(LAST_DAY), 1);
        assert_eq!(end.seconds(), (LAST_DAY * 86_400, u32::MAX));
        assert!(days.contains(last) && !days.contains(last.add_days(1)));
        assert_eq!(
            serde_json::to_string(&days).unwrap(),
            r#"{"first":"2024-02-29","last":"2024-03-02"}"#
        );
    }

    #[test]
    fn usage_inactive_merges_known_accounts() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let seen: HashMap<u64, SystemTime> = [(1, t(100)), (2, t(900)), (3, t(50))].into();
        let known = [
            KnownAccount::new(2, t(10)),
            KnownAccount::new(4, t(20)), // never active, signed up before the cutoff
            KnownAccount::new(5, t(600)), // never active, signed up after it
            KnownAccount::new(6, t(5)),
            KnownAccount::new(6, t(5)), // listed twice
        ];
        let got = inactive(&seen, t(500), &known);
        let ids: Vec<u64> = got.iter().map(|a| a.account_id).collect();
        assert_eq!(ids, [6, 4, 3, 1]);
        assert_eq!(got[0].last_seen, None);
        assert_eq!(got[0].signed_up, Some(t(5)));
        assert_eq!(got[2].last_seen, Some(t(50)));
        // Exactly at the cutoff is not quiet.
        assert_eq!(inactive(&seen, t(100), &[]).len(), 1);
        assert_eq!(
            serde_json::to_value(&got[3]).unwrap(),
            serde_json::json!({"accountId": 1, "lastSeen": "1970-01-01T00:01:40Z", "signedUp": null})
        );
    }
}
