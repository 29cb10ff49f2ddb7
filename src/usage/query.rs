//! [`Usage`]: the questions, asked of the rollup or of the events table.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use serde::Deserialize;

use super::{
    day::{Day, Days, LAST_DAY, ceil_seconds, unix},
    types::{
        AccountActivity, AccountDays, AccountUsage, ActiveAccounts, DayCount, EventTypeCount,
        InactiveAccount, InactiveCursor, InactivePage, KnownAccount, Period, ReadFrom,
    },
};
use crate::{
    connection::Connection,
    error::{Error, Result},
    schema::Schema,
};

/// The default [query timeout](Usage::with_query_timeout).
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers usage questions. Cheap to clone.
///
/// Made with [`Usage::new`]; [`with_read_from`](Self::with_read_from) picks the table.
/// Until the events table exists (a writer creates it when it starts), every question
/// fails with [`Error::TableMissing`].
#[derive(Clone)]
pub struct Usage {
    /// One client per server, in the connection's order.
    clients: Arc<[clickhouse::Client]>,
    /// The server asked first: the last one that answered.
    current: Arc<AtomicUsize>,
    /// The connection the client was made from, when it was.
    connection: Option<Connection>,
    schema: Schema,
    read_from: ReadFrom,
    /// Set once the rollup is seen ready; it stays ready.
    rollup_ready: Arc<AtomicBool>,
    /// Set once the events table is seen; until then each question checks it exists.
    table_seen: Arc<AtomicBool>,
    /// How long one question may take.
    timeout: Duration,
}

impl fmt::Debug for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Usage")
            .field("table", &self.schema.qualified_table())
            .field("read_from", &self.read_from)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where one query reads, and the expressions that differ between the two tables.
pub(super) struct Source {
    pub(super) table: String,
    pub(super) rollup: bool,
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

    pub(super) fn last(&self) -> &'static str {
        if self.rollup {
            "maxMerge(last_seen)"
        } else {
            "toUInt32(max(inserted_at))"
        }
    }

    /// The day as a column named `day`.
    pub(super) fn day_as(&self) -> &'static str {
        if self.rollup {
            "day"
        } else {
            "toDate(inserted_at, 'UTC') AS day"
        }
    }

    /// Events of the rows where `condition` holds. From the rollup, the sum of each row's
    /// distinct events: cheaper than merging the sets, and the same once the rollup's parts
    /// are merged (until then, an event written twice by a retried insert counts twice).
    pub(super) fn count_if(&self, condition: &str) -> String {
        if self.rollup {
            format!("sumIf(finalizeAggregation(events), {condition})")
        } else {
            format!("uniqExactIf(event_id, {condition})")
        }
    }

    pub(super) fn day(&self) -> &'static str {
        if self.rollup {
            "day"
        } else {
            "toDate(inserted_at, 'UTC')"
        }
    }

    /// A condition with two parameters, bound by [`bind_range`](Self::bind_range).
    fn in_range(&self) -> &'static str {
        if self.rollup {
            "day >= toDate(toUInt16(?)) AND day <= toDate(toUInt16(?))"
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
struct SourcesRow {
    event_type: String,
    sources: Vec<String>,
}

#[derive(clickhouse::Row, Deserialize)]
struct TypeRow {
    pub(super) event_type: String,
    pub(super) events: u64,
    pub(super) accounts: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct DayRow {
    pub(super) day: u16,
    pub(super) events: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct TotalRow {
    pub(super) events: u64,
    pub(super) first: u32,
    pub(super) last: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct PeriodRow {
    pub(super) start: u16,
    pub(super) accounts: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct ActivityRow {
    pub(super) account_id: u64,
    pub(super) events: u64,
    pub(super) active_days: u64,
    pub(super) last: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct AccountDayRow {
    pub(super) account_id: u64,
    pub(super) day: u16,
    pub(super) events: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct LastSeenRow {
    pub(super) account_id: u64,
    pub(super) last: u32,
}

impl Usage {
    /// Answers from the tables of `schema`, through `client`.
    ///
    /// Validation of row types is turned off on the client: rows are read as plain
    /// `RowBinary`, which every supported server version speaks.
    ///
    /// Each question is bounded by the [query timeout](Self::with_query_timeout).
    pub fn new(client: clickhouse::Client, schema: Schema) -> Self {
        Self::with_clients(vec![client], None, schema)
    }

    fn with_clients(
        clients: Vec<clickhouse::Client>,
        connection: Option<Connection>,
        schema: Schema,
    ) -> Self {
        Self {
            clients: clients
                .into_iter()
                .map(|client| client.with_validation(false))
                .collect(),
            current: Arc::new(AtomicUsize::new(0)),
            connection,
            schema,
            read_from: ReadFrom::Rollup,
            rollup_ready: Arc::new(AtomicBool::new(false)),
            table_seen: Arc::new(AtomicBool::new(false)),
            timeout: DEFAULT_QUERY_TIMEOUT,
        }
        .with_query_timeout(DEFAULT_QUERY_TIMEOUT)
    }

    /// How long one question may take, from its first request to ClickHouse to its answer.
    /// Default: 30 s. Past it, the question fails with [`Error::Timeout`] (and the admin
    /// router answers `504`), whether the server is slow or does not answer at all.
    ///
    /// The server is told too, with the `max_execution_time` setting (whole seconds, rounded
    /// up), so that it stops working on a question nobody waits for. A ClickHouse user in
    /// `readonly = 1` mode may not change settings: give such a user `readonly = 2`.
    /// A timeout of zero is taken as one millisecond.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        let secs = self.timeout.as_secs() + u64::from(self.timeout.subsec_nanos() > 0);
        self.clients = self
            .clients
            .iter()
            .map(|client| {
                client
                    .clone()
                    .with_setting("max_execution_time", secs.to_string())
            })
            .collect();
        self
    }

    /// Runs one question, failing with [`Error::Timeout`] past the query timeout. When the
    /// server asked cannot be reached, the question is asked of the next one (of a
    /// connection with several URLs), each at most once, and the one that answers is asked
    /// first from then on.
    pub(super) async fn timed<T, F, Q>(&self, question: Q) -> Result<T>
    where
        Q: Fn() -> F,
        F: Future<Output = Result<T>>,
    {
        let servers = self.clients.len();
        let asked = async {
            let mut tries = 1;
            loop {
                let at = self.current.load(Ordering::Acquire);
                match question().await {
                    Err(Error::ClickHouse(clickhouse::error::Error::Network(e)))
                        if tries < servers =>
                    {
                        tries += 1;
                        let next = (at + 1) % servers;
                        // Another question may have moved on already.
                        let _ = self.current.compare_exchange(
                            at,
                            next,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                        let shown = |i: usize| {
                            self.connection
                                .as_ref()
                                .and_then(|c| c.urls().nth(i))
                                .map(crate::connection::redact_url)
                                .unwrap_or_default()
                        };
                        tracing::warn!(
                            error = %e,
                            server = %shown(at),
                            next = %shown(next),
                            "ClickHouse server unreachable; asking the next one"
                        );
                    }
                    answer => return answer,
                }
            }
        };
        tokio::time::timeout(self.timeout, asked)
            .await
            .unwrap_or(Err(Error::Timeout(self.timeout)))
    }

    /// Answers from the tables of `schema`, over `connection`: its credentials, TLS roots
    /// and pools of HTTP connections, and each of its URLs in turn while the one asked
    /// cannot be reached.
    pub fn from_connection(connection: &Connection, schema: Schema) -> Self {
        Self::with_clients(connection.clients(), Some(connection.clone()), schema)
    }

    /// The connection this was made from ([`from_connection`](Self::from_connection)), with
    /// its timeouts; `None` when made from a client ([`new`](Self::new)).
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
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

    /// The ClickHouse client of the server asked first now (the first URL's until it could
    /// not be reached).
    pub fn client(&self) -> &clickhouse::Client {
        &self.clients[self.current.load(Ordering::Acquire) % self.clients.len()]
    }

    /// Which table answers, as configured.
    pub fn read_from(&self) -> ReadFrom {
        self.read_from
    }

    pub(super) async fn source(&self) -> Result<Source> {
        if !self.table_seen.load(Ordering::Acquire) {
            // A writer that started a moment ago may not have created it yet.
            if !self
                .schema
                .table_exists(self.client(), self.schema.table())
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
                let ready = self.schema.rollup_ready(self.client()).await?;
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
        self.timed(|| async {
            let src = self.source().await?;
            let (table, range) = (&src.table, src.in_range());
            let by_type = src
                .bind_range(
                    self.client()
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
                    self.client()
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
                    self.client()
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
            let (by_type, per_day, total) =
                futures::future::try_join3(by_type, per_day, total).await?;
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
        })
        .await
    }

    /// Accounts with at least one event per day or per week of `days`: every period of the
    /// range, in order, periods without activity included with 0. A week that begins before
    /// or ends after the range counts only its days within it.
    pub async fn active_accounts(&self, days: Days, period: Period) -> Result<Vec<ActiveAccounts>> {
        self.timed(|| async {
            let src = self.source().await?;
            let bucket = match period {
                Period::Day => src.day().to_owned(),
                Period::Week => format!("toMonday({})", src.day()),
            };
            let rows: Vec<PeriodRow> = src
                .bind_range(
                    self.client().query(&format!(
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
        })
        .await
    }

    /// The `limit` event types with the most events in `days`, most first (then by name).
    pub async fn top_event_types(&self, days: Days, limit: u64) -> Result<Vec<EventTypeCount>> {
        self.timed(|| async {
            let src = self.source().await?;
            let rows: Vec<TypeRow> = src
                .bind_range(
                    self.client().query(&format!(
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
        })
        .await
    }

    /// The sources (reporters, or the layer's own) that sent each of `event_types` in
    /// `days`, at most `per_type` of them for each type, sorted. Read from the events table,
    /// since the rollup keeps no source. A type with no event in `days` is absent.
    pub async fn event_type_sources(
        &self,
        days: Days,
        event_types: &[String],
        per_type: u64,
    ) -> Result<HashMap<String, Vec<String>>> {
        if event_types.is_empty() || per_type == 0 {
            return Ok(HashMap::new());
        }
        self.timed(|| async {
            let (from, to) = days.seconds();
            let rows: Vec<SourcesRow> = self
                .client()
                .query(&format!(
                    "SELECT event_type, \
                     arraySlice(arraySort(groupUniqArray(source)), 1, {per_type}) AS s \
                     FROM {table} WHERE inserted_at >= toDateTime(?) \
                     AND inserted_at <= toDateTime(?) AND has(?, event_type) \
                     GROUP BY event_type",
                    table = self.schema.qualified_table(),
                ))
                .bind(from)
                .bind(to)
                .bind(event_types)
                .fetch_all()
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| (r.event_type, r.sources))
                .collect())
        })
        .await
    }

    /// The `limit` accounts with the most events in `days`, most first (then by account id).
    pub async fn top_accounts(&self, days: Days, limit: u64) -> Result<Vec<AccountActivity>> {
        self.timed(|| async {
            let src = self.source().await?;
            let rows: Vec<ActivityRow> = src
                .bind_range(
                    self.client().query(&format!(
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
        })
        .await
    }

    /// Events per day in `days` for each of `accounts` that had any, by account id.
    pub async fn events_per_day(&self, accounts: &[u64], days: Days) -> Result<Vec<AccountDays>> {
        self.timed(|| async {
            if accounts.is_empty() {
                return Ok(Vec::new());
            }
            let src = self.source().await?;
            let ids = id_list(accounts);
            let rows: Vec<AccountDayRow> = src
                .bind_range(
                    self.client().query(&format!(
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
        })
        .await
    }

    /// Every account with an event, and its last event ever.
    pub async fn last_seen(&self) -> Result<HashMap<u64, SystemTime>> {
        self.last_seen_where(None).await
    }

    /// The last event ever of each of `accounts` that had one.
    pub async fn last_seen_of(&self, accounts: &[u64]) -> Result<HashMap<u64, SystemTime>> {
        if accounts.is_empty() {
            return Ok(HashMap::new());
        }
        self.last_seen_where(Some(accounts)).await
    }

    /// The last event ever of every account, or of each of `accounts`.
    async fn last_seen_where(&self, accounts: Option<&[u64]>) -> Result<HashMap<u64, SystemTime>> {
        self.timed(|| async {
            let src = self.source().await?;
            let filter = accounts.map_or(String::new(), |a| {
                format!("WHERE account_id IN ({}) ", id_list(a))
            });
            let rows: Vec<LastSeenRow> = self
                .client()
                .query(&format!(
                    "SELECT account_id, {last} AS l FROM {table} {filter}GROUP BY account_id",
                    last = src.last(),
                    table = src.table,
                ))
                .fetch_all()
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| (r.account_id, unix(r.last)))
                .collect())
        })
        .await
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
        self.timed(|| async {
            // `last < since` in whole seconds: a `since` with a fraction rounds up.
            let cutoff = ceil_seconds(since);
            if known.is_empty() {
                let src = self.source().await?;
                let rows: Vec<LastSeenRow> = self
                    .client()
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
        })
        .await
    }

    /// At most `limit` of the [inactive accounts](Self::inactive_accounts), in the same
    /// order, starting after `after` (from the start when `None`), and where the next page
    /// starts. Without `known` accounts the server sorts and cuts: a page costs what its
    /// rows cost, however many accounts are quiet.
    pub async fn inactive_accounts_page(
        &self,
        since: SystemTime,
        known: &[KnownAccount],
        after: Option<InactiveCursor>,
        limit: usize,
    ) -> Result<InactivePage> {
        let limit = limit.max(1);
        self.timed(|| async {
            let cutoff = ceil_seconds(since);
            let mut accounts = if known.is_empty() {
                let src = self.source().await?;
                let (from, account) = match after.map(|c| c.seen()) {
                    // The cursor is a never-active account: every seen account is after it.
                    Some(None) | None => (None, 0),
                    Some(Some(seen)) => (Some(seen.0), seen.1),
                };
                let resume = if from.is_some() {
                    " AND (l > ? OR (l = ? AND account_id > ?))"
                } else {
                    ""
                };
                let mut query = self
                    .client()
                    .query(&format!(
                        "SELECT account_id, {last} AS l FROM {table} GROUP BY account_id \
                         HAVING l < ?{resume} ORDER BY l, account_id LIMIT ?",
                        last = src.last(),
                        table = src.table,
                    ))
                    .bind(cutoff);
                if let Some(from) = from {
                    query = query.bind(from).bind(from).bind(account);
                }
                let rows: Vec<LastSeenRow> = query.bind(limit as u64 + 1).fetch_all().await?;
                rows.into_iter()
                    .map(|r| InactiveAccount {
                        account_id: r.account_id,
                        last_seen: Some(unix(r.last)),
                        signed_up: None,
                    })
                    .collect()
            } else {
                let seen = self.last_seen().await?;
                let mut all = inactive(&seen, since, known);
                if let Some(after) = after {
                    all.retain(|a| after.precedes(a));
                }
                all.truncate(limit + 1);
                all
            };
            let next = if accounts.len() > limit {
                accounts.truncate(limit);
                accounts.last().map(InactiveCursor::after)
            } else {
                None
            };
            Ok(InactivePage { accounts, next })
        })
        .await
    }

    /// How many accounts [`inactive_accounts`](Self::inactive_accounts) would list.
    pub async fn count_inactive(&self, since: SystemTime, known: &[KnownAccount]) -> Result<u64> {
        self.timed(|| async {
            if known.is_empty() {
                let src = self.source().await?;
                return Ok(self
                    .client()
                    .query(&format!(
                        "SELECT count() FROM (SELECT account_id, {last} AS l FROM {table} \
                         GROUP BY account_id HAVING l < ?)",
                        last = src.last(),
                        table = src.table,
                    ))
                    .bind(ceil_seconds(since))
                    .fetch_one::<u64>()
                    .await?);
            }
            let seen = self.last_seen().await?;
            Ok(inactive(&seen, since, known).len() as u64)
        })
        .await
    }
}

/// The inactive accounts among `seen` (last event per account) and `known`.
/// Account ids as a literal SQL list (`1, 2, 3`): numbers cannot inject anything, and a
/// literal list lets ClickHouse use the primary key.
fn id_list(accounts: &[u64]) -> String {
    accounts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

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
