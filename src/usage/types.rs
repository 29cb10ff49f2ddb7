//! The typed answers of [`Usage`] and the accounts the application knows.

use std::{future::Future, pin::Pin, time::SystemTime};

use serde::Serialize;

#[cfg(doc)]
use super::Usage;
use super::day::{Day, Days, rfc3339_option, serialize_rfc3339};
use crate::error::BoxError;

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub first_seen: Option<SystemTime>,
    /// The last event in the range; `None` when there was none.
    #[serde(serialize_with = "rfc3339_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen: Option<SystemTime>,
    /// Days with at least one event.
    pub active_days: u32,
    /// Events per day, for the days with events, in order.
    pub per_day: Vec<DayCount>,
}

/// Events of one event type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct DayCount {
    /// The day.
    pub day: Day,
    /// Events that day (distinct event ids).
    pub events: u64,
}

/// Accounts with at least one event in a day or a week. Made by [`Usage::active_accounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ActiveAccounts {
    /// The day, or the Monday that starts the week.
    pub start: Day,
    /// Active accounts in that period, within the range asked about.
    pub accounts: u64,
}

/// One account's activity over a range. Made by [`Usage::top_accounts`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_seen: SystemTime,
}

/// Events per day of one account. Made by [`Usage::events_per_day`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InactiveAccount {
    /// The account.
    pub account_id: u64,
    /// Its last event ever; `None` for a known account that never had one.
    #[serde(serialize_with = "rfc3339_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen: Option<SystemTime>,
    /// When it signed up, for an account the application passed as known.
    #[serde(serialize_with = "rfc3339_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub signed_up: Option<SystemTime>,
}

/// Where a page of [inactive accounts](Usage::inactive_accounts_page) ends: the next page
/// starts after it. Opaque: made by a page, written and read as text (digits, `n` and `_`,
/// safe in a URL) with [`Display`](std::fmt::Display) and [`FromStr`](std::str::FromStr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InactiveCursor {
    /// The sort key of the last account of a page: last seen, signed up (nanoseconds since
    /// the epoch), account.
    key: (Option<u128>, Option<u128>, u64),
}

fn nanos(time: Option<SystemTime>) -> Option<u128> {
    time.map(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    })
}

impl InactiveCursor {
    /// The cursor just after `account`.
    pub(super) fn after(account: &InactiveAccount) -> Self {
        Self {
            key: (
                nanos(account.last_seen),
                nanos(account.signed_up),
                account.account_id,
            ),
        }
    }

    /// Whether `account` sorts after the cursor.
    pub(super) fn precedes(&self, account: &InactiveAccount) -> bool {
        Self::after(account).key > self.key
    }

    /// The last-seen second and the account of the cursor, for a query over accounts seen.
    pub(super) fn seen(&self) -> Option<(u64, u64)> {
        let secs = self.key.0? / 1_000_000_000;
        Some((u64::try_from(secs).unwrap_or(u64::MAX), self.key.2))
    }
}

impl std::fmt::Display for InactiveCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = |n: Option<u128>| n.map_or_else(|| "n".to_owned(), |n| n.to_string());
        write!(
            f,
            "{}_{}_{}",
            part(self.key.0),
            part(self.key.1),
            self.key.2
        )
    }
}

impl std::str::FromStr for InactiveCursor {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || crate::error::Error::Config(format!("{text:?} is not a cursor"));
        let part = |p: &str| match p {
            "n" => Ok(None),
            p => p.parse::<u128>().map(Some).map_err(|_| bad()),
        };
        let mut parts = text.split('_');
        let (Some(last), Some(signed), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Self {
            key: (part(last)?, part(signed)?, id.parse().map_err(|_| bad())?),
        })
    }
}

/// One page of inactive accounts. Made by [`Usage::inactive_accounts_page`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InactivePage {
    /// The accounts of the page, in the order of [`Usage::inactive_accounts`].
    pub accounts: Vec<InactiveAccount>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<InactiveCursor>,
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
