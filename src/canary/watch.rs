//! [`InactivityWatch`]: its builder, its checks and the handle of a running watch.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt as _;
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use super::{
    claims::{
        Fatigue, Kind, LogInsert, LogRow, Observation, Plan, Step, Transition, history, kind_of,
        plan_with,
    },
    detect::{Detector, Reason},
    notification::{Digest, Notification, NotificationKind},
    notifier::{DigestNotifier, Notifier},
};
use crate::{
    error::{Error, Result},
    schema::Schema,
    usage::{self, KnownAccount, KnownAccounts, Usage},
};

/// Watches for accounts going quiet. Cheap to clone; clones are the same watch.
///
/// Made by [`InactivityWatch::builder`]; run it in the background with
/// [`spawn`](Self::spawn), or check once with [`check`](Self::check).
#[derive(Clone)]
pub struct InactivityWatch {
    inner: Arc<Inner>,
}

struct Inner {
    usage: Usage,
    notifier: Arc<dyn Notifier>,
    known: Option<Arc<dyn KnownAccounts>>,
    name: String,
    threshold: Duration,
    interval: Duration,
    notify_back: bool,
    settle: Duration,
    claim_timeout: Duration,
    notify_deadline: Duration,
    concurrency: usize,
    detector: Option<Detector>,
    fatigue: Fatigue,
    digest: Option<(usize, Arc<dyn DigestNotifier>)>,
    schedule: Option<Schedule>,
    /// This watch's claims carry it.
    instance: Uuid,
    prepared: tokio::sync::OnceCell<()>,
    /// One check at a time: two checks of one instance would both win its claims.
    checking: tokio::sync::Mutex<()>,
}

impl fmt::Debug for InactivityWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("InactivityWatch")
            .field("name", &i.name)
            .field("table", &i.usage.schema().qualified_table())
            .field("threshold", &i.threshold)
            .field("interval", &i.interval)
            .field("notify_back", &i.notify_back)
            .field("instance", &i.instance)
            .finish_non_exhaustive()
    }
}

/// Configures an [`InactivityWatch`]. Made by [`InactivityWatch::builder`].
pub struct WatchBuilder {
    usage: Usage,
    notifier: Arc<dyn Notifier>,
    known: Option<Arc<dyn KnownAccounts>>,
    name: String,
    threshold: Duration,
    interval: Duration,
    notify_back: bool,
    settle: Duration,
    claim_timeout: Duration,
    notify_deadline: Duration,
    concurrency: usize,
    detector: Option<Detector>,
    fatigue: Fatigue,
    digest: Option<(usize, Arc<dyn DigestNotifier>)>,
    schedule: Option<Schedule>,
}

/// When a watch with a digest schedule sends its digest, and through what.
#[derive(Clone)]
struct Schedule {
    period: Duration,
    offset: Duration,
    notifier: Arc<dyn DigestNotifier>,
}

impl Schedule {
    /// The latest digest moment at or before `now` (Unix seconds): the latest
    /// `k × period + offset`.
    fn latest(&self, now: u32) -> u64 {
        let (period, offset, now) = (
            self.period.as_secs().max(1),
            self.offset.as_secs(),
            u64::from(now),
        );
        if now < offset {
            return 0;
        }
        now - (now - offset) % period
    }
}

impl fmt::Debug for WatchBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchBuilder")
            .field("name", &self.name)
            .field("threshold", &self.threshold)
            .field("interval", &self.interval)
            .field("notify_back", &self.notify_back)
            .finish_non_exhaustive()
    }
}

impl WatchBuilder {
    /// The watch's name, which keeps its records apart from other watches' (a 7-day and a
    /// 30-day watch, say). 1 to 64 characters without control characters.
    /// Default: `"inactive"`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long without an event makes an account inactive. Default: 7 days.
    pub fn with_threshold(mut self, threshold: Duration) -> Self {
        self.threshold = threshold;
        self
    }

    /// How often to check. Default: 15 minutes.
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Whether to notify once when an account reported inactive has an event again.
    /// Default: `false`.
    pub fn with_notify_back(mut self, notify: bool) -> Self {
        self.notify_back = notify;
        self
    }

    /// The application's accounts with their sign-up times, read at each check, so that an
    /// account that never had an event is reported once it signed up longer ago than the
    /// threshold. Default: none; only accounts with events are watched.
    pub fn with_known_accounts(mut self, known: impl KnownAccounts) -> Self {
        self.known = Some(Arc::new(known));
        self
    }

    /// How long to wait after claiming notifications before reading the claims back, so
    /// that claims made at the same moment by other instances are seen. Default: 2 s.
    pub fn with_settle_delay(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// How long a claim without an outcome holds before another check claims the
    /// notification again (the claiming instance died while notifying). Default: 15
    /// minutes.
    ///
    /// It also bounds the notifications of one check: whatever the number of accounts, the
    /// notifier's retries and timeouts, a check's notifications end once the claim timeout
    /// less the [settle delay](Self::with_settle_delay) has passed since they were read
    /// back; those still under way are failed and tried again at the next check.
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }

    /// How long one check waits for its notifications, all of them together, from the
    /// moment its claims are read back. Default: 2 minutes.
    ///
    /// Without it a check could wait about accounts × attempts × timeout ÷ concurrency on a
    /// slow notifier. Notifications not delivered by then (or a digest not sent) are
    /// abandoned and recorded as failed, never as delivered: the next check claims and
    /// tries them again. The [claim timeout](Self::with_claim_timeout) less the
    /// [settle delay](Self::with_settle_delay) bounds it too, whichever is shorter.
    pub fn with_notify_deadline(mut self, deadline: Duration) -> Self {
        self.notify_deadline = deadline;
        self
    }

    /// Judge accounts with `detector` instead of the fixed [threshold](Self::with_threshold):
    /// an account is quiet while the detector finds it silent or never active, each
    /// notification carries the detector's explanation, and the detector's fixed threshold
    /// replaces the watch's. Declining accounts are listed by the admin router, not
    /// notified. Default: none, the fixed threshold.
    pub fn with_detector(mut self, detector: Detector) -> Self {
        self.threshold = detector.fixed_threshold();
        self.detector = Some(detector);
        self
    }

    /// At most one notification per account in this time: a transition that comes sooner
    /// after the account's last notification waits, and is notified once the time has
    /// passed if the account is still in that state. Default: zero, no limit.
    pub fn with_min_interval(mut self, interval: Duration) -> Self {
        self.fatigue.min_interval = interval;
        self
    }

    /// How long an account reported quiet must stay active before it is back: a burst of
    /// activity shorter than this that ends in silence again continues the same quiet
    /// period, without a notification. Default: zero, back at its first event.
    pub fn with_recovery(mut self, recovery: Duration) -> Self {
        self.fatigue.recovery = recovery;
        self
    }

    /// When one check would deliver more than `limit` notifications (the first check over
    /// thousands of quiet accounts, say), send them as one [`Digest`] through `notifier`
    /// instead. Default: none; every notification goes out on its own.
    pub fn with_digest(mut self, limit: usize, notifier: impl DigestNotifier) -> Self {
        self.digest = Some((limit, Arc::new(notifier)));
        self
    }

    /// Send one [`Digest`] a day instead of each notification: the transitions found
    /// since the last digest wait, and the first check after `at` past midnight (UTC) each
    /// day sends them all through `notifier`, as one digest. The same as
    /// [`with_periodic_digest`](Self::with_periodic_digest) with a period of a day. Default:
    /// none; every notification goes out at the check that finds it.
    pub fn with_daily_digest(self, at: Duration, notifier: impl DigestNotifier) -> Self {
        self.with_periodic_digest(Duration::from_secs(86_400), at, notifier)
    }

    /// Send one [`Digest`] per `period` instead of each notification: at most one digest
    /// is delivered after each moment `k × period + offset` since the Unix epoch (UTC, by
    /// the ClickHouse server's clock), by the first check after it that has something to
    /// send, and it carries every transition waiting then. Until then nothing is recorded
    /// for a waiting transition (it is counted in [`CheckReport::waiting`]): it is found
    /// again at the next check, by this instance or another after a restart, so it is
    /// neither lost nor marked notified before the digest that carries it is delivered. An
    /// account that went quiet and came back between two digests is in neither. A digest
    /// that fails is sent again at the next check. The [notify-once](Self::with_notify_back)
    /// claims, the [minimum interval](Self::with_min_interval) and the
    /// [recovery window](Self::with_recovery) hold as without a schedule. With several
    /// instances, the first check after the digest moment claims and sends; one checking at
    /// the same moment sends the part of the claims it won. Replaces the
    /// [flood limit](Self::with_digest): every delivery is a digest. `period` is at least a
    /// second, `offset` shorter than it. Default: none.
    pub fn with_periodic_digest(
        mut self,
        period: Duration,
        offset: Duration,
        notifier: impl DigestNotifier,
    ) -> Self {
        self.schedule = Some(Schedule {
            period,
            offset,
            notifier: Arc::new(notifier),
        });
        self
    }

    /// How many notifications are delivered at once. Default: 8.
    pub fn with_concurrency(mut self, notifications: usize) -> Self {
        self.concurrency = notifications;
        self
    }

    /// Checks the configuration and makes the watch; nothing runs until
    /// [`spawn`](InactivityWatch::spawn) or [`check`](InactivityWatch::check).
    pub fn build(self) -> Result<InactivityWatch> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.name.is_empty()
            || self.name.chars().count() > 64
            || self.name.chars().any(char::is_control)
        {
            return bad("a watch name is 1 to 64 characters without control characters");
        }
        if self.threshold < Duration::from_secs(1) {
            return bad("the threshold must be at least a second");
        }
        if self.interval.is_zero() {
            return bad("the check interval must be more than zero");
        }
        if self.claim_timeout <= self.settle {
            return bad("the claim timeout must be longer than the settle delay");
        }
        if self.notify_deadline.is_zero() {
            return bad("the notification deadline must be more than zero");
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if let Some(s) = &self.schedule
            && (s.period < Duration::from_secs(1) || s.offset >= s.period)
        {
            return bad("a digest period is at least a second, and its offset shorter than it");
        }
        Ok(InactivityWatch {
            inner: Arc::new(Inner {
                usage: self.usage,
                notifier: self.notifier,
                known: self.known,
                name: self.name,
                threshold: self.threshold,
                interval: self.interval,
                notify_back: self.notify_back,
                settle: self.settle,
                claim_timeout: self.claim_timeout,
                notify_deadline: self.notify_deadline,
                concurrency: self.concurrency,
                detector: self.detector,
                fatigue: self.fatigue,
                digest: self.digest,
                schedule: self.schedule,
                instance: Uuid::new_v4(),
                prepared: tokio::sync::OnceCell::new(),
                checking: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

/// What one [`check`](InactivityWatch::check) did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Accounts inactive at this check.
    pub inactive: usize,
    /// Notifications this instance delivered.
    pub delivered: Vec<Notification>,
    /// Notifications this instance could not deliver; tried again at the next check.
    pub failed: Vec<Notification>,
    /// Notifications another instance claimed first.
    pub claimed_elsewhere: usize,
    /// Notifications waiting for the next digest of a
    /// [digest schedule](WatchBuilder::with_periodic_digest); nothing is recorded for them.
    pub waiting: usize,
}

/// Stops a spawned watch. Dropping it stops the watch too, at once.
#[derive(Debug)]
pub struct WatchHandle {
    pub(super) stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// How long [`WatchHandle::stop`] waits for the watch's task before aborting it.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// How long a check waits for its notifications, unless
/// [`WatchBuilder::with_notify_deadline`] says otherwise.
const DEFAULT_NOTIFY_DEADLINE: Duration = Duration::from_secs(120);

impl WatchHandle {
    /// Stops the watch and waits for its task to end, for at most 10 s. A check under way
    /// is cut short (its claims expire after the claim timeout, and the next check, here
    /// or elsewhere, takes them up); a task still running after 10 s is aborted, so that a
    /// ClickHouse server that does not answer cannot hold up a shutdown.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_DEADLINE, &mut task)
                .await
                .is_err()
        {
            tracing::warn!("the inactivity watch did not stop within 10 s; aborting it");
            task.abort();
        }
    }

    /// Whether the watch's task has ended (it ends only when stopped, or if it panicked).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl InactivityWatch {
    /// Starts configuring a watch over the accounts `usage` reads, delivering through
    /// `notifier`.
    pub fn builder(usage: Usage, notifier: impl Notifier) -> WatchBuilder {
        WatchBuilder {
            usage,
            notifier: Arc::new(notifier),
            known: None,
            name: "inactive".into(),
            threshold: Duration::from_secs(7 * 86_400),
            interval: Duration::from_secs(15 * 60),
            notify_back: false,
            settle: Duration::from_secs(2),
            claim_timeout: Duration::from_secs(15 * 60),
            notify_deadline: DEFAULT_NOTIFY_DEADLINE,
            concurrency: 8,
            detector: None,
            fatigue: Fatigue::default(),
            digest: None,
            schedule: None,
        }
    }

    /// The watch's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The watch's threshold.
    pub fn threshold(&self) -> Duration {
        self.inner.threshold
    }

    fn client(&self) -> &clickhouse::Client {
        self.inner.usage.client()
    }

    fn schema(&self) -> &Schema {
        self.inner.usage.schema()
    }

    /// Creates the tables if they are absent (once).
    async fn prepare(&self) -> Result<()> {
        self.inner
            .prepared
            .get_or_try_init(|| async {
                let client = self.client();
                let version = Schema::server_version(client).await?;
                self.schema().ensure(client, version).await?;
                self.schema().ensure_watch_table(client).await
            })
            .await
            .map(|_| ())
    }

    /// The log rows of each account's latest quiet period (the open transitions and the one
    /// that closed it), not the whole log.
    async fn read_log(&self) -> Result<Vec<LogRow>> {
        // On a cluster, first fetch every claim any server has acknowledged (see
        // `Schema::create_watch_table_sql` for why that keeps the protocol correct).
        if let Some(sync) = self.schema().sync_replica_sql(&self.schema().watch_table()) {
            self.client().query(&sync).execute().await?;
        }
        Ok(self
            .client()
            .query(&format!(
                "SELECT account_id, kind, toUInt32(last_seen), round, step, instance, \
                 toUInt32(recorded_at) FROM {log} WHERE watch = ? \
                 AND (account_id, last_seen) IN \
                     (SELECT account_id, max(last_seen) FROM {log} WHERE watch = ? \
                      GROUP BY account_id) \
                 ORDER BY account_id, last_seen, kind, round",
                log = self.schema().qualified(&self.schema().watch_table())
            ))
            .bind(&self.inner.name)
            .bind(&self.inner.name)
            .fetch_all()
            .await?)
    }

    async fn write_log(&self, rows: &[(Transition, u32, Step)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client()
            .insert_unescaped::<LogInsert<'_>>(
                &self.schema().qualified(&self.schema().watch_table()),
            )
            .await?;
        for (t, round, step) in rows {
            insert
                .write(&LogInsert {
                    watch: &self.inner.name,
                    account_id: t.account_id,
                    kind: t.kind as i8,
                    last_seen: t.last_seen,
                    round: *round,
                    step: *step as i8,
                    instance: self.inner.instance,
                })
                .await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// Whether a scheduled digest is due at `server_now`: none was delivered since the latest
    /// digest moment (every delivery of a scheduled watch is a digest).
    async fn digest_due(&self, schedule: &Schedule, server_now: u32) -> Result<bool> {
        let last: u32 = self
            .client()
            .query(&format!(
                "SELECT toUInt32(max(recorded_at)) FROM {log} WHERE watch = ? AND step = {step}",
                log = self.schema().qualified(&self.schema().watch_table()),
                step = Step::Delivered as i8,
            ))
            .bind(&self.inner.name)
            .fetch_one()
            .await?;
        Ok(u64::from(last) < schedule.latest(server_now))
    }

    /// Checks once: finds the inactive accounts, and notifies each transition no instance
    /// has handled yet. Creates the tables first if they are absent.
    pub async fn check(&self) -> Result<CheckReport> {
        let _one_at_a_time = self.inner.checking.lock().await;
        self.prepare().await?;
        let inner = &*self.inner;
        let now = SystemTime::now();
        let since = now.checked_sub(inner.threshold).unwrap_or(UNIX_EPOCH);
        let known: Vec<KnownAccount> = match &inner.known {
            Some(source) => source
                .known_accounts()
                .await
                .map_err(Error::KnownAccounts)?,
            None => Vec::new(),
        };
        let server_now: u32 = self
            .client()
            .query("SELECT toUInt32(now())")
            .fetch_one()
            .await?;
        let history = history(&self.read_log().await?);
        let signed_up: HashMap<u64, SystemTime> =
            known.iter().map(|k| (k.account_id, k.signed_up)).collect();
        let mut explanations: HashMap<u64, String> = HashMap::new();
        // The quiet accounts with their last event, and the last events the check needs.
        let (quiet, seen): (Vec<Quiet>, HashMap<u64, SystemTime>) = match &inner.detector {
            None => {
                let seen = inner.usage.last_seen().await?;
                let quiet = usage::inactive(&seen, since, &known)
                    .into_iter()
                    .map(|a| (a.account_id, a.last_seen))
                    .collect();
                (quiet, seen)
            }
            Some(detector) => {
                let mut quiet = Vec::new();
                for f in detector.detect(&inner.usage, now, &known).await? {
                    if matches!(f.reason, Reason::Silent | Reason::NeverActive) {
                        quiet.push((f.account_id, f.last_seen));
                        explanations.insert(f.account_id, f.explanation);
                    }
                }
                // The accounts with a history and not quiet: active if they had events.
                let others: Vec<u64> = history
                    .keys()
                    .filter(|a| !explanations.contains_key(a))
                    .copied()
                    .collect();
                (quiet, inner.usage.last_seen_of(&others).await?)
            }
        };

        let mut observed: BTreeMap<u64, Observation> = quiet
            .iter()
            .map(|(account, last_seen)| {
                let last_seen = last_seen.map_or(0, seconds);
                (*account, Observation::Quiet { last_seen })
            })
            .collect();
        for account in history.keys() {
            if seen.contains_key(account) && !observed.contains_key(account) {
                observed.insert(*account, Observation::Active);
            }
        }
        let plans: Vec<Plan> = observed
            .iter()
            .filter_map(|(account, obs)| {
                plan_with(
                    *account,
                    history.get(account),
                    *obs,
                    server_now,
                    inner.claim_timeout,
                    inner.notify_back,
                    inner.fatigue,
                )
            })
            .collect();
        let mut report = CheckReport {
            inactive: quiet.len(),
            ..CheckReport::default()
        };
        // With a digest schedule, claims wait for the first check after the next digest
        // moment: unrecorded, they are found again at each check until then.
        let plans = match &inner.schedule {
            Some(schedule) if !self.digest_due(schedule, server_now).await? => {
                let (claims, others): (Vec<Plan>, Vec<Plan>) = plans
                    .into_iter()
                    .partition(|p| matches!(p, Plan::Claim(..)));
                report.waiting = claims.len();
                others
            }
            _ => plans,
        };
        let writes: Vec<(Transition, u32, Step)> = plans
            .iter()
            .map(|p| match *p {
                Plan::Claim(t, round) => (t, round, Step::Claimed),
                Plan::Record(t) => (t, 0, Step::Recorded),
                Plan::Note(t) => (t, 0, Step::Returning),
            })
            .collect();
        self.write_log(&writes).await?;
        let claims: Vec<(Transition, u32)> = plans
            .iter()
            .filter_map(|p| match *p {
                Plan::Claim(t, round) => Some((t, round)),
                Plan::Record(_) | Plan::Note(_) => None,
            })
            .collect();
        if claims.is_empty() {
            return Ok(report);
        }

        // Let claims made at the same moment elsewhere arrive, then see who won.
        tokio::time::sleep(inner.settle).await;
        let rows = self.read_log().await?;
        let mut winners: HashMap<(Transition, u32), (u32, Uuid)> = HashMap::new();
        let mut delivered = std::collections::HashSet::new();
        for row in &rows {
            let t = Transition {
                account_id: row.account_id,
                last_seen: row.last_seen,
                kind: kind_of(row),
            };
            if row.step == Step::Delivered as i8 || row.step == Step::Recorded as i8 {
                delivered.insert(t);
            } else if row.step == Step::Claimed as i8 {
                let claim = (row.recorded_at, row.instance);
                winners
                    .entry((t, row.round))
                    .and_modify(|w| *w = (*w).min(claim))
                    .or_insert(claim);
            }
        }
        let mut mine = Vec::new();
        for (t, round) in claims {
            let won = winners.get(&(t, round)).map(|w| w.1) == Some(inner.instance);
            if won && !delivered.contains(&t) {
                mine.push((t, round));
            } else {
                report.claimed_elsewhere += 1;
            }
        }

        let notifications: Vec<(Transition, u32, Notification)> = mine
            .into_iter()
            .map(|(t, round)| {
                let seen_at = |s: u32| (s > 0).then(|| UNIX_EPOCH + Duration::from_secs(s.into()));
                let notification = Notification {
                    kind: match t.kind {
                        Kind::Inactive => NotificationKind::Inactive,
                        Kind::Active => NotificationKind::Active,
                    },
                    watch: inner.name.clone(),
                    account_id: t.account_id,
                    last_seen: match t.kind {
                        Kind::Inactive => seen_at(t.last_seen),
                        Kind::Active => seen.get(&t.account_id).copied(),
                    },
                    inactive_since: seen_at(t.last_seen),
                    signed_up: signed_up.get(&t.account_id).copied(),
                    threshold: inner.threshold,
                    detected_at: now,
                    explanation: match t.kind {
                        Kind::Inactive => explanations.get(&t.account_id).cloned(),
                        Kind::Active => None,
                    },
                };
                (t, round, notification)
            })
            .collect();
        // Every notification of the check ends by its deadline, and before its claim
        // expires, however many there are and however long the notifier retries: the rest
        // are failed, and the next check tries them again.
        let notify_within = inner
            .notify_deadline
            .min(inner.claim_timeout - inner.settle);
        let deadline = tokio::time::Instant::now() + notify_within;
        let late = || {
            format!(
                "not delivered before the check's deadline ({notify_within:?} after its claims)"
            )
        };
        let digest_by = match (&inner.schedule, &inner.digest) {
            (Some(schedule), _) => Some(&schedule.notifier),
            (None, Some((limit, digest))) if notifications.len() > *limit => Some(digest),
            _ => None,
        };
        let outcomes: Vec<_> = match digest_by {
            // A scheduled digest, or too many at once: one digest, whose outcome is each
            // notification's.
            Some(digest) => {
                let digest_of = Digest {
                    watch: inner.name.clone(),
                    detected_at: now,
                    notifications: notifications.iter().map(|(_, _, n)| n.clone()).collect(),
                };
                tracing::info!(
                    watch = %inner.name,
                    notifications = notifications.len(),
                    scheduled = inner.schedule.is_some(),
                    "sending one digest"
                );
                let outcome = tokio::time::timeout_at(deadline, digest.notify_digest(digest_of))
                    .await
                    .map_err(|_| late())
                    .and_then(|outcome| outcome.map_err(|e| e.to_string()));
                notifications
                    .into_iter()
                    .map(|(t, round, n)| (t, round, n, outcome.clone()))
                    .collect()
            }
            None => {
                futures::stream::iter(notifications.into_iter().map(|(t, round, notification)| {
                    let notifier = inner.notifier.clone();
                    async move {
                        let outcome = tokio::time::timeout_at(
                            deadline,
                            notifier.notify(notification.clone()),
                        )
                        .await
                        .map_err(|_| late())
                        .and_then(|outcome| outcome.map_err(|e| e.to_string()));
                        (t, round, notification, outcome)
                    }
                }))
                .buffer_unordered(inner.concurrency)
                .collect()
                .await
            }
        };
        let mut steps = Vec::with_capacity(outcomes.len());
        for (t, round, notification, outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    tracing::info!(watch = %inner.name, account_id = t.account_id, kind = ?t.kind, "account notified");
                    steps.push((t, round, Step::Delivered));
                    report.delivered.push(notification);
                }
                Err(error) => {
                    tracing::error!(
                        watch = %inner.name,
                        account_id = t.account_id,
                        error = %error,
                        "notification failed; it is tried again at the next check"
                    );
                    steps.push((t, round, Step::Failed));
                    report.failed.push(notification);
                }
            }
        }
        self.write_log(&steps).await?;
        Ok(report)
    }

    /// Runs the watch in the background on the current Tokio runtime: a check at once,
    /// then one every interval. Failed checks are logged and the next one runs as planned.
    /// Also completes a pending [rollup backfill](Schema::backfill_rollup) in the
    /// background.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn(self) -> WatchHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.inner.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut backfill: Option<JoinHandle<Result<usize>>> = None;
            let mut backfilled = false;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => break,
                }
                // A check waits for ClickHouse and the notifier: a stop must not wait for it.
                let outcome = tokio::select! {
                    outcome = self.check() => outcome,
                    _ = stopped.changed() => break,
                };
                match outcome {
                    Ok(report) => tracing::debug!(
                        watch = %self.inner.name,
                        inactive = report.inactive,
                        delivered = report.delivered.len(),
                        failed = report.failed.len(),
                        "inactivity check done"
                    ),
                    // A writer that has just started may not have made its table yet.
                    Err(error @ Error::TableMissing { .. }) => tracing::info!(
                        watch = %self.inner.name,
                        error = %error,
                        "nothing to check yet; checking again at the next interval"
                    ),
                    Err(error) => tracing::error!(
                        watch = %self.inner.name,
                        error = %error,
                        "inactivity check failed; checking again at the next interval"
                    ),
                }
                if !backfilled && self.inner.prepared.initialized() {
                    match backfill.take() {
                        None => {
                            let (client, schema) = (self.client().clone(), self.schema().clone());
                            backfill = Some(tokio::spawn(async move {
                                schema.backfill_rollup(&client).await
                            }));
                        }
                        Some(task) if task.is_finished() => match task.await {
                            Ok(Ok(_)) => backfilled = true,
                            Ok(Err(error)) => {
                                tracing::error!(error = %error, "rollup backfill failed; trying again")
                            }
                            Err(error) => {
                                tracing::error!(error = %error, "rollup backfill panicked; trying again")
                            }
                        },
                        running => backfill = running,
                    }
                }
            }
            if let Some(task) = backfill {
                task.abort();
            }
        });
        WatchHandle {
            stop,
            task: Some(task),
        }
    }
}

/// A quiet account and its last event (`None`: it never had one).
type Quiet = (u64, Option<SystemTime>);

pub(super) fn seconds(time: SystemTime) -> u32 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_schedule_finds_its_latest_moment() {
        let daily = Schedule {
            period: Duration::from_secs(86_400),
            offset: Duration::from_secs(9 * 3600),
            notifier: Arc::new(|_: Digest| async { Ok::<(), std::io::Error>(()) }),
        };
        // 2026-12-02 is day 20 424 since the epoch.
        let day = 20_424 * 86_400;
        assert_eq!(daily.latest(day + 10 * 3600), u64::from(day) + 9 * 3600);
        assert_eq!(daily.latest(day + 9 * 3600), u64::from(day) + 9 * 3600);
        assert_eq!(daily.latest(day + 8 * 3600), u64::from(day) - 15 * 3600);
        assert_eq!(daily.latest(3600), 0);
    }
}
