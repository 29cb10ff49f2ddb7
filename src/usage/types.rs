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
