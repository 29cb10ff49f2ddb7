//! Detectors and the inactivity watch: find the accounts going quiet, judged against their
//! own rhythm, and be told once when an account goes quiet, and once when it comes back.
//!
//! # Detectors
//!
//! A [`Detector`] finds, at any evaluation time, the accounts at risk and why
//! ([`Finding`], [`Reason`]): *silent* far longer than the account's own rhythm (weekday-aware,
//! with a floor; an account with too little history is judged by the usual rhythm of the
//! accounts that have one, or by the fixed threshold), *declining*
//! far below its own baseline, or *never active*. Everything is summed up in ClickHouse from
//! the daily rollup ([`Usage::rhythms`](crate::usage::Usage::rhythms)); only one row per
//! account is streamed, and only findings are kept. [`Detector::fixed`] is the plain
//! fixed threshold.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use idp_analytics::{canary::Detector, schema::Schema, usage::Usage};
//!
//! # async fn run() -> idp_analytics::Result<()> {
//! let client = clickhouse::Client::default().with_url("http://127.0.0.1:8123");
//! let usage = Usage::new(client, Schema::default());
//! for finding in Detector::default().detect(&usage, SystemTime::now(), &[]).await? {
//!     println!("account {}: {}", finding.account_id, finding.explanation);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # The watch
//!
//! An [`InactivityWatch`] checks every [interval](WatchBuilder::with_check_interval) for
//! accounts whose last event is older than its [threshold](WatchBuilder::with_threshold)
//! (and, given the application's [known accounts](WatchBuilder::with_known_accounts), for
//! accounts that signed up that long ago and never did anything). For each account that
//! crossed from active to inactive it hands a [`Notification`] to its [`Notifier`]: a
//! closure, or the built-in [`WebhookNotifier`], which POSTs it as JSON (over `http://` or,
//! with the `rustls` feature, `https://`) with retries and a timeout. Each check waits for
//! its notifications at most its [deadline](WatchBuilder::with_notify_deadline).
//! [Optionally](WatchBuilder::with_notify_back) it tells once more when such an account has
//! an event again.
//!
//! ```no_run
//! use std::time::Duration;
//! use idp_analytics::{canary::{InactivityWatch, Notification}, schema::Schema, usage::Usage};
//!
//! # async fn run() -> idp_analytics::Result<()> {
//! let client = clickhouse::Client::default().with_url("http://127.0.0.1:8123");
//! let usage = Usage::new(client, Schema::default());
//! let watch = InactivityWatch::builder(usage, |n: Notification| async move {
//!     // Or send an email, post to Slack...
//!     println!("{n}");
//!     Ok::<_, std::io::Error>(())
//! })
//! .with_threshold(Duration::from_secs(7 * 86_400))
//! .with_check_interval(Duration::from_secs(15 * 60))
//! .with_notify_back(true)
//! .build()?
//! .spawn();
//! // ... at shutdown:
//! watch.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Once, across restarts and instances
//!
//! The watch remembers what it notified in ClickHouse, in `<table>_watch`
//! ([`Schema::ensure_watch_table`](crate::schema::Schema::ensure_watch_table)), so neither a
//! restart nor a second instance of the application running the same watch notifies again.
//! Each notification is a *transition* of one account: into the quiet period that follows
//! its last event at time *L* (`kind = 'inactive'`), or out of it (`kind = 'active'`). A
//! watch that sees a transition nobody has handled
//!
//! 1. *claims* it: inserts a row `step = 'claimed'` carrying its own instance id; the server
//!    stamps `recorded_at`;
//! 2. waits the [settle delay](WatchBuilder::with_settle_delay), then reads the claims of
//!    that transition back. The earliest claim (by `recorded_at`, then instance id) wins;
//!    every instance reads the same rows and agrees on the winner;
//! 3. the winner notifies and records `step = 'delivered'`, or `'failed'` if the notifier
//!    gave up; a failed notification is claimed and tried again at the next check, in a new
//!    *round*, for as long as the account stays in that state.
//!
//! The remaining window: an instance whose claim took longer than the settle delay to reach
//! the server can lose to nobody and win alone, while another instance already read the
//! claims without it and won too; both notify. A claim left without an outcome for the
//! [claim timeout](WatchBuilder::with_claim_timeout) (its instance died while notifying) is
//! claimed again, so a notification can be sent twice if a notifier takes longer than that.
//! Otherwise each transition is notified once. A restart needs nothing: the rows are there.
//!
//! A late event with an old time that leaves an account quiet does not start a new quiet
//! period; an account that comes back is recorded as back even without
//! [`with_notify_back`](WatchBuilder::with_notify_back), so its next quiet period is
//! notified again.
//!
//! The first check of a new watch notifies every account that is quiet at that moment; with
//! a [digest](WatchBuilder::with_digest), a check that would deliver more than its limit
//! sends one [`Digest`] instead; with a [daily digest](WatchBuilder::with_daily_digest),
//! every delivery is one digest a day, and what waits for it is not recorded until it is
//! sent. [`with_detector`](WatchBuilder::with_detector) judges
//! accounts by a [`Detector`] instead of the fixed threshold;
//! [`with_min_interval`](WatchBuilder::with_min_interval) allows at most one notification
//! per account per interval, and [`with_recovery`](WatchBuilder::with_recovery) makes an
//! account stay active a while before it is back. Both are decided from the watch's log,
//! so they hold across restarts and instances.
//!
//! Each check reads every account's last event from the rollup (its small `last_seen`
//! column, not the event ids), or the detector's findings, and of the watch's own rows only
//! those of each account's latest quiet period, and writes a few rows per notification.

mod claims;
mod detect;
mod notification;
mod notifier;
mod watch;
mod webhook;

pub use detect::{Basis, Detector, Finding, Reason};
pub use notification::{Digest, Notification, NotificationKind};
pub use notifier::{DigestNotifier, Notifier, NotifyFuture};
pub use watch::{CheckReport, InactivityWatch, WatchBuilder, WatchHandle};
pub use webhook::{WebhookBuilder, WebhookNotifier};
