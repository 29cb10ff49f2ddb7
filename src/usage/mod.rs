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

mod day;
mod query;
mod returns;
mod rhythm;
mod types;

pub use day::{Day, Days};
pub use query::Usage;
pub use returns::{Chance, Like, MIN_SPELLS, ReturnChances};
pub use rhythm::{CHUNK_ACCOUNTS, Gaps, Prior, Rhythm, RhythmWindow, Rhythms};
pub use types::{
    AccountActivity, AccountDays, AccountUsage, ActiveAccounts, DayCount, EventTypeCount,
    InactiveAccount, InactiveCursor, InactivePage, KnownAccount, KnownAccounts,
    KnownAccountsFuture, Period, ReadFrom,
};

pub(crate) use day::{rfc3339, rfc3339_option as serialize_rfc3339_option};
pub(crate) use query::inactive;
