//! Each account's rhythm at a moment: its active days, the gaps between them, and its recent
//! volume against its baseline, summed up in ClickHouse from the daily rollup.

use std::{borrow::Cow, time::SystemTime};

use serde::Deserialize;

use super::{
    day::{Day, ceil_seconds, unix},
    query::Usage,
    returns::ReturnChances,
};
use crate::error::{Error, Result};

/// The accounts the population's queries read: one in `every`, chosen by a hash of the
/// account id, as a condition on `account_id`. Made by [`Usage::sample`].
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    /// One account in this many (1: every account).
    pub(super) every: u64,
    pub(super) condition: String,
}

/// The windows and the quantile of [`Usage::rhythms`].
///
/// Days are whole UTC days before the day of the evaluation time `at` (the day of `at` is
/// only partly over): the *recent* window is the last [`recent_days`](Self::recent_days)
/// of them, the *baseline* the [`baseline_days`](Self::baseline_days) before it, the
/// *history* the last [`history_days`](Self::history_days), in which gaps are measured.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RhythmWindow {
    /// The evaluation time: events after it are not counted (a replay steps it day by day).
    pub at: SystemTime,
    /// Days of history in which gaps between active days are measured. Default: 90.
    pub history_days: u32,
    /// The recent window, in days. Default: 7.
    pub recent_days: u32,
    /// The baseline window before the recent one, in days. Default: 28.
    pub baseline_days: u32,
    /// The quantile of the gaps reported as [`Gaps::quantile`], in (0, 1].
    /// Default: 0.9.
    pub quantile: f64,
    /// About how many accounts one query reads. Default: [`CHUNK_ACCOUNTS`].
    pub chunk_accounts: u64,
}

impl RhythmWindow {
    /// The default windows, evaluated at `at`.
    pub fn at(at: SystemTime) -> Self {
        Self {
            at,
            history_days: 90,
            recent_days: 7,
            baseline_days: 28,
            quantile: 0.9,
            chunk_accounts: CHUNK_ACCOUNTS,
        }
    }

    /// Days of history. Default: 90 days.
    pub fn with_history_days(mut self, days: u32) -> Self {
        self.history_days = days;
        self
    }

    /// The recent window. Default: 7 days.
    pub fn with_recent_days(mut self, days: u32) -> Self {
        self.recent_days = days;
        self
    }

    /// The baseline window. Default: 28 days.
    pub fn with_baseline_days(mut self, days: u32) -> Self {
        self.baseline_days = days;
        self
    }

    /// The gap quantile, in (0, 1]. Default: 0.9.
    pub fn with_quantile(mut self, quantile: f64) -> Self {
        self.quantile = quantile;
        self
    }

    /// About how many accounts one query reads, at least 1 (at most 64 queries are
    /// made). Default: 100 000 accounts.
    pub fn with_chunk_accounts(mut self, accounts: u64) -> Self {
        self.chunk_accounts = accounts.max(1);
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if !(self.quantile > 0.0 && self.quantile <= 1.0) {
            return bad("the gap quantile must be in (0, 1]");
        }
        if self.history_days < 2 || self.history_days > 3660 {
            return bad("the history must be 2 to 3660 days");
        }
        if self.recent_days == 0 || self.baseline_days == 0 {
            return bad("the recent and baseline windows must be at least a day");
        }
        if self.recent_days + self.baseline_days > self.history_days {
            return bad("the recent and baseline windows must fit in the history");
        }
        Ok(())
    }
}

/// Gaps between active days, counted in the days an account could have been active on:
/// every day, or only Monday to Friday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gaps {
    /// The [quantile](RhythmWindow::quantile) of the gaps (days without activity between two
    /// active days); 0 without gaps.
    pub quantile: u32,
    /// The longest gap; 0 without gaps.
    pub longest: u32,
    /// Days without activity from the last active day to the day of the evaluation time,
    /// both excluded.
    pub current: u32,
}

/// One account's rhythm at [`RhythmWindow::at`]. Made by [`Usage::rhythms`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rhythm {
    /// The account.
    pub account_id: u64,
    /// Its last event at or before the evaluation time (of all time, not just the history).
    pub last_seen: SystemTime,
    /// The day of its last event.
    pub last_day: Day,
    /// Active days in the history (the day of the evaluation time included).
    pub active_days: u32,
    /// Of those, Saturdays and Sundays.
    pub weekend_days: u32,
    /// Gaps in calendar days.
    pub calendar: Gaps,
    /// Gaps in weekdays (Monday to Friday): a weekend between two active days is no gap.
    pub weekdays: Gaps,
    /// Events in the recent window (distinct event ids).
    pub recent_events: u64,
    /// Active days in the recent window.
    pub recent_active_days: u32,
    /// Events in the baseline window.
    pub baseline_events: u64,
    /// Active days in the baseline window.
    pub baseline_active_days: u32,
    /// Active days of all time up to the evaluation time (in the history only, for the
    /// rows [`Usage::rhythm_prior`] reads).
    pub all_active_days: u32,
    /// The day of its first event (of all time, as `all_active_days`).
    pub first_day: Day,
}

#[derive(clickhouse::Row, Deserialize)]
struct RhythmRow {
    account_id: u64,
    last_seen: u32,
    last_day: u16,
    active_days: u32,
    weekend_days: u32,
    gap_quantile: u32,
    gap_longest: u32,
    gap_current: u32,
    weekday_gap_quantile: u32,
    weekday_gap_longest: u32,
    weekday_gap_current: u32,
    recent_events: u64,
    recent_active_days: u32,
    baseline_events: u64,
    baseline_active_days: u32,
    all_active_days: u32,
    first_day: u16,
}

impl From<RhythmRow> for Rhythm {
    fn from(r: RhythmRow) -> Self {
        Self {
            account_id: r.account_id,
            last_seen: unix(r.last_seen),
            last_day: Day::from_days_since_epoch(u32::from(r.last_day)),
            active_days: r.active_days,
            weekend_days: r.weekend_days,
            calendar: Gaps {
                quantile: r.gap_quantile,
                longest: r.gap_longest,
                current: r.gap_current,
            },
            weekdays: Gaps {
                quantile: r.weekday_gap_quantile,
                longest: r.weekday_gap_longest,
                current: r.weekday_gap_current,
            },
            recent_events: r.recent_events,
            recent_active_days: r.recent_active_days,
            baseline_events: r.baseline_events,
            baseline_active_days: r.baseline_active_days,
            all_active_days: r.all_active_days,
            first_day: Day::from_days_since_epoch(u32::from(r.first_day)),
        }
    }
}

/// The usual period of the accounts that have a rhythm of their own: what an account with too
/// little history of its own is judged by (an empirical-Bayes prior). Made by
/// [`Usage::rhythm_prior`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Prior {
    /// The usual period, in the days of each account's basis (calendar days or weekdays):
    /// the chosen quantile of the accounts' periods. 0 when no account has a rhythm.
    pub period_days: u32,
    /// Accounts with a rhythm of their own it was measured on.
    pub accounts: u64,
    /// It was measured on one account in this many (1: on every account).
    pub sampled_one_in: u64,
    /// How often accounts like one came back after a silence as long as its own (empty
    /// unless asked for: see [`Usage::return_chances`]).
    pub returns: ReturnChances,
}

impl Prior {
    /// A prior from a known period, measured on `accounts` accounts, without return chances.
    pub fn new(period_days: u32, accounts: u64) -> Self {
        Self {
            period_days,
            accounts,
            sampled_one_in: 1,
            returns: ReturnChances::default(),
        }
    }

    /// The same prior with `returns` as its return chances.
    pub fn with_returns(mut self, returns: ReturnChances) -> Self {
        self.returns = returns;
        self
    }
}

#[derive(clickhouse::Row, Deserialize)]
struct PriorRow {
    accounts: u64,
    period: u32,
}

/// The rhythms of every account, streamed: one row per account in memory at a time.
/// Made by [`Usage::rhythms`].
///
/// The accounts are read in ranges of account ids of about
/// [`chunk_accounts`](RhythmWindow::chunk_accounts) accounts
/// each, one query per range, so the server's memory for one query stays bounded however
/// many accounts there are.
pub struct Rhythms {
    client: clickhouse::Client,
    /// The query, with `{accounts}` where each range's condition goes.
    sql: String,
    /// The ranges still to read, as conditions on `account_id`.
    ranges: std::vec::IntoIter<String>,
    cursor: Option<clickhouse::query::RowCursor<RhythmRow>>,
}

/// About how many accounts one of the queries of [`Usage::rhythms`] reads, by default.
pub const CHUNK_ACCOUNTS: u64 = 100_000;

impl std::fmt::Debug for Rhythms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rhythms")
            .field("ranges_left", &self.ranges.len())
            .finish_non_exhaustive()
    }
}

impl Rhythms {
    /// The next account, or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Rhythm>> {
        loop {
            if let Some(cursor) = &mut self.cursor {
                if let Some(row) = cursor.next().await? {
                    return Ok(Some(Rhythm::from(row)));
                }
                self.cursor = None;
            }
            let Some(range) = self.ranges.next() else {
                return Ok(None);
            };
            let sql = self.sql.replace("{accounts}", &range);
            self.cursor = Some(self.client.query(&sql).fetch()?);
        }
    }
}

/// The index of a day among weekdays: Monday to Friday count 1 each, and a Saturday or a
/// Sunday shares the index of the Monday after it. 1970-01-01 was a Thursday.
fn weekday_index(day: &str) -> String {
    format!("(intDiv({day} + 3, 7) * 5 + least(({day} + 3) % 7, 5))")
}

/// The query of each account's active days up to the day of `at`, one row per account and
/// day (`account_id`, `day`, `last`, then `columns`), over the accounts where `accounts`
/// holds, from the day `since` on or of all time. The day of `at` counts when all its events
/// so far are at or before `at`.
pub(super) fn active_days_sql(
    src: &super::query::Source,
    at: SystemTime,
    since: Option<Day>,
    accounts: &str,
    columns: &str,
) -> String {
    let today = Day::of(at).date_sql();
    let since = since.map_or_else(String::new, |d| {
        format!("{} >= {} AND ", src.day(), d.date_sql())
    });
    format!(
        "SELECT account_id, {day_as}, {last} AS last{columns} \
         FROM {table} WHERE {since}{day_col} <= {today} AND {accounts} \
         GROUP BY account_id, day \
         HAVING day < {today} OR last <= {at}",
        day_as = src.day_as(),
        last = src.last(),
        table = src.table,
        day_col = src.day(),
        at = ceil_seconds(at),
    )
}

/// The query of one row per account (see [`RhythmRow`]), with `{accounts}` where a condition
/// on `account_id` goes. With `all_time`, an account's last event is its last of all time
/// and accounts without an active day in the history are kept; without, only the history is
/// read.
fn per_account_sql(src: &super::query::Source, window: &RhythmWindow, all_time: bool) -> String {
    let today = Day::of(window.at);
    let history_day = today.sub_days(window.history_days);
    let history = history_day.date_sql();
    let recent_day = today.sub_days(window.recent_days);
    let baseline = recent_day.sub_days(window.baseline_days).date_sql();
    let (recent, today_sql) = (recent_day.date_sql(), today.date_sql());
    let t = today.days_since_epoch();
    let since = (!all_time).then_some(history_day);
    let days = active_days_sql(
        src,
        window.at,
        since,
        "{accounts}",
        &format!(", {} AS n", src.count_if(&format!("day >= {baseline}"))),
    );
    format!(
        "SELECT account_id, toUInt32(last) AS last_seen, toUInt16(last_d) AS last_day, \
            toUInt32(length(ds)) AS active_days, \
            toUInt32(arrayCount(d -> (d + 3) % 7 >= 5, ds)) AS weekend_days, \
            toUInt32(if(empty(gc), 0, arraySort(gc)[toUInt32(greatest(1, ceil({q} * length(gc))))])) AS gq, \
            toUInt32(if(empty(gc), 0, arrayReduce('max', gc))) AS gl, \
            toUInt32(greatest(0, toInt64({t}) - toInt64(last_d) - 1)) AS gn, \
            toUInt32(if(empty(gb), 0, arraySort(gb)[toUInt32(greatest(1, ceil({q} * length(gb))))])) AS bq, \
            toUInt32(if(empty(gb), 0, arrayReduce('max', gb))) AS bl, \
            toUInt32(greatest(0, toInt64({ti}) - toInt64({li}) - 1)) AS bn, \
            recent_events, toUInt32(recent_days) AS recent_active_days, \
            baseline_events, toUInt32(baseline_days) AS baseline_active_days, \
            all_days AS all_active_days, toUInt16(first_d) AS first_day \
         FROM ( \
            SELECT account_id, max(last) AS last, toUInt32(max(day)) AS last_d, \
                toUInt32(count()) AS all_days, toUInt32(min(day)) AS first_d, \
                arraySort(groupArrayIf(toUInt32(day), day >= {history})) AS ds, \
                arrayMap(d -> toInt64{wi}, ds) AS bs, \
                arrayMap((a, b) -> toInt64(b) - toInt64(a) - 1, arrayPopBack(ds), arrayPopFront(ds)) AS gc, \
                arrayFilter(g -> g >= 0, arrayMap((a, b) -> b - a - 1, arrayPopBack(bs), arrayPopFront(bs))) AS gb, \
                sumIf(n, day >= {recent} AND day < {today_sql}) AS recent_events, \
                countIf(day >= {recent} AND day < {today_sql}) AS recent_days, \
                sumIf(n, day >= {baseline} AND day < {recent}) AS baseline_events, \
                countIf(day >= {baseline} AND day < {recent}) AS baseline_days \
            FROM ({days}) \
            GROUP BY account_id \
         )",
        q = window.quantile,
        ti = weekday_index(&t.to_string()),
        li = weekday_index("last_d"),
        wi = weekday_index("d"),
    )
}

#[derive(clickhouse::Row, Deserialize)]
struct SpreadRow {
    accounts: u64,
    bounds: Vec<f64>,
}

impl Usage {
    /// Ranges of account ids of about `chunk_accounts` accounts each, as conditions on
    /// `account_id`, from an estimate of the number of accounts (also returned) and
    /// approximate quantiles of their ids. Rounding in the quantiles moves a bound, never
    /// leaves an id out: the ranges chain.
    async fn account_ranges(
        &self,
        src: &super::query::Source,
        chunk_accounts: u64,
    ) -> Result<(u64, Vec<String>)> {
        let spread: SpreadRow = self
            .client()
            .query(&format!(
                "SELECT uniq(account_id), quantiles({levels})(account_id) FROM {table}",
                levels = (1..64)
                    .map(|i| format!("{}", f64::from(i) / 64.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                table = src.table,
            ))
            .fetch_one()
            .await?;
        let chunks = spread.accounts.div_ceil(chunk_accounts).clamp(1, 64) as usize;
        let mut bounds: Vec<u64> = (1..chunks)
            .map(|i| spread.bounds[i * 64 / chunks - 1] as u64)
            .collect();
        bounds.dedup();
        let mut ranges = Vec::with_capacity(bounds.len() + 1);
        let mut low: Option<u64> = None;
        for high in bounds.iter().copied().map(Some).chain([None]) {
            ranges.push(match (low, high) {
                (None, None) => "1".to_owned(),
                (None, Some(h)) => format!("account_id <= {h}"),
                (Some(l), Some(h)) => format!("account_id > {l} AND account_id <= {h}"),
                (Some(l), None) => format!("account_id > {l}"),
            });
            low = high;
        }

        Ok((spread.accounts, ranges))
    }

    /// The accounts the population's queries at `window.at` read: one in about
    /// `accounts / chunk_accounts`, chosen by a hash of its id (every account when there are
    /// no more than [`chunk_accounts`](RhythmWindow::chunk_accounts)). One query, asked once
    /// per check and shared by [`rhythm_prior`](Self::rhythm_prior) and
    /// [`return_chances`](Self::return_chances).
    pub(crate) async fn sample(&self, window: &RhythmWindow) -> Result<Sample> {
        self.timed(|| async {
            let src = self.source().await?;
            let accounts: u64 = self
                .client()
                .query(&format!("SELECT uniq(account_id) FROM {}", src.table))
                .fetch_one()
                .await?;
            let every = accounts.div_ceil(window.chunk_accounts).max(1);
            let condition = if every > 1 {
                format!("intHash64(account_id) % {every} = 0")
            } else {
                "1".to_owned()
            };
            Ok(Sample { every, condition })
        })
        .await
    }

    /// `given`, or the [sample](Self::sample) at `window` when `None`.
    pub(super) async fn sample_or<'a>(
        &self,
        window: &RhythmWindow,
        given: Option<&'a Sample>,
    ) -> Result<Cow<'a, Sample>> {
        Ok(match given {
            Some(sample) => Cow::Borrowed(sample),
            None => Cow::Owned(self.sample(window).await?),
        })
    }

    /// The usual period of the accounts with a rhythm of their own at `window.at`: the
    /// `quantile` (in (0, 1]; 0.5 is the median account) of the periods (the
    /// [gap quantile](RhythmWindow::quantile) plus one) of the accounts with at least
    /// `min_active_days` active days in the history, each in its own basis: weekdays for an
    /// account with at most `weekend_share` of its active days at weekends, calendar days
    /// otherwise, as the detectors judge it. Computed in ClickHouse from the history in the
    /// rollup (see [`Usage::rhythms`]); over more accounts than
    /// [`chunk_accounts`](RhythmWindow::chunk_accounts), over a sample of about that many
    /// accounts, chosen by a hash of the account id, so the query's memory stays bounded.
    pub async fn rhythm_prior(
        &self,
        window: RhythmWindow,
        min_active_days: u32,
        weekend_share: f64,
        quantile: f64,
    ) -> Result<Prior> {
        self.rhythm_prior_in(window, None, min_active_days, weekend_share, quantile)
            .await
    }

    /// [`rhythm_prior`](Self::rhythm_prior) over `sample`, or over the
    /// [sample](Self::sample) it asks for when `None`.
    pub(crate) async fn rhythm_prior_in(
        &self,
        window: RhythmWindow,
        sample: Option<&Sample>,
        min_active_days: u32,
        weekend_share: f64,
        quantile: f64,
    ) -> Result<Prior> {
        window.check()?;
        if !(quantile > 0.0 && quantile <= 1.0) {
            return Err(Error::Config("the prior quantile must be in (0, 1]".into()));
        }
        if !(0.0..=1.0).contains(&weekend_share) {
            return Err(Error::Config("the weekend share must be in [0, 1]".into()));
        }
        let sample = self.sample_or(&window, sample).await?;
        self.timed(|| async {
            let src = self.source().await?;
            let inner =
                per_account_sql(&src, &window, false).replace("{accounts}", &sample.condition);
            let row: PriorRow = self
                .client()
                .query(&format!(
                    "SELECT count() AS accounts, toUInt32(quantileExact({quantile})(period)) AS period \
                     FROM (SELECT toUInt32(if(weekend_days <= {weekend_share} * active_days, bq, gq) + 1) AS period \
                           FROM ({inner}) WHERE active_days >= {min_active_days})"
                ))
                .fetch_one()
                .await?;
            Ok(Prior {
                period_days: if row.accounts == 0 { 0 } else { row.period },
                accounts: row.accounts,
                sampled_one_in: sample.every,
                returns: ReturnChances::default(),
            })
        })
        .await
    }

    /// Every account's [`Rhythm`] at `window.at`, computed in ClickHouse from the daily
    /// rollup (from the events table with [`ReadFrom::Events`](super::ReadFrom::Events) or
    /// while the rollup is not ready), streamed one account at a time. An account's day
    /// counts only when it had an event at or before `window.at`; the day of `window.at`
    /// counts whole when all its events so far are at or before it.
    pub async fn rhythms(&self, window: RhythmWindow) -> Result<Rhythms> {
        window.check()?;
        self.timed(|| async {
            let src = self.source().await?;
            let (_, ranges) = self.account_ranges(&src, window.chunk_accounts).await?;
            let sql = per_account_sql(&src, &window, true);
            Ok(Rhythms {
                client: self.client().clone(),
                sql,
                ranges: ranges.into_iter(),
                cursor: None,
            })
        })
        .await
    }
}
