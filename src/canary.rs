//! The inactivity watch: be told once when an account goes quiet, and once when it comes back.
//!
//! An [`InactivityWatch`] checks every [interval](WatchBuilder::with_check_interval) for
//! accounts whose last event is older than its [threshold](WatchBuilder::with_threshold)
//! (and, given the application's [known accounts](WatchBuilder::with_known_accounts), for
//! accounts that signed up that long ago and never did anything). For each account that
//! crossed from active to inactive it hands a [`Notification`] to its [`Notifier`]: a
//! closure, or the built-in [`WebhookNotifier`], which POSTs it as JSON with retries and a
//! timeout. [Optionally](WatchBuilder::with_notify_back) it tells once more when such an
//! account has an event again.
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
//! The first check of a new watch notifies every account that is quiet at that moment.
//!
//! Each check reads every account's last event from the rollup (its small `last_seen`
//! column, not the event ids) and the watch's own rows, and writes a few rows per
//! notification.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::Connect, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use crate::{
    error::{BoxError, Error, Result},
    schema::Schema,
    usage::{self, KnownAccount, KnownAccounts, Usage},
};

/// What a [`Notification`] tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NotificationKind {
    /// The account had no event for the threshold (or, never active, signed up that long
    /// ago).
    Inactive,
    /// The account, reported inactive before, has an event again.
    Active,
}

/// One notification of one account. Turn it into an email or a chat message with its
/// [`Display`](fmt::Display) text, or use its fields.
///
/// As JSON (what [`WebhookNotifier`] sends):
///
/// ```json
/// {
///   "kind": "inactive",
///   "watch": "inactive",
///   "accountId": 42,
///   "lastSeen": "2024-05-01T10:00:00Z",
///   "inactiveSince": "2024-05-01T10:00:00Z",
///   "signedUp": null,
///   "thresholdSeconds": 604800,
///   "detectedAt": "2024-05-09T08:00:00Z",
///   "text": "Account 42 has been inactive for 7 days: last seen 2024-05-01T10:00:00Z (threshold 7 days)."
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// Gone quiet, or back.
    pub kind: NotificationKind,
    /// The name of the watch that noticed.
    pub watch: String,
    /// The account.
    pub account_id: u64,
    /// The account's last event when it was noticed; `None` if it never had one.
    pub last_seen: Option<SystemTime>,
    /// The last event before the quiet period; `None` if the account was never active
    /// before it. For [`NotificationKind::Inactive`] this is `last_seen`.
    pub inactive_since: Option<SystemTime>,
    /// When the account signed up, if the application passed it as a known account.
    pub signed_up: Option<SystemTime>,
    /// The watch's threshold.
    pub threshold: Duration,
    /// When the watch noticed.
    pub detected_at: SystemTime,
}

impl Notification {
    /// A sentence saying what happened, for a message's text.
    pub fn message(&self) -> String {
        let threshold = days_text(self.threshold);
        match (self.kind, self.last_seen, self.signed_up) {
            (NotificationKind::Inactive, Some(last), _) => format!(
                "Account {} has been inactive for {}: last seen {} (threshold {threshold}).",
                self.account_id,
                days_text(self.detected_at.duration_since(last).unwrap_or_default()),
                usage::rfc3339(last),
            ),
            (NotificationKind::Inactive, None, Some(signed_up)) => format!(
                "Account {} has not been active since it signed up on {} (threshold {threshold}).",
                self.account_id,
                usage::rfc3339(signed_up),
            ),
            (NotificationKind::Inactive, None, None) => format!(
                "Account {} has never been active (threshold {threshold}).",
                self.account_id
            ),
            (NotificationKind::Active, last, _) => {
                let since = match self.inactive_since {
                    Some(t) => format!(", after no activity since {}", usage::rfc3339(t)),
                    None => String::new(),
                };
                let at = last.map_or_else(String::new, |t| {
                    format!(" (last seen {})", usage::rfc3339(t))
                });
                format!("Account {} is active again{at}{since}.", self.account_id)
            }
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationJson<'a> {
    kind: NotificationKind,
    watch: &'a str,
    account_id: u64,
    last_seen: Option<String>,
    inactive_since: Option<String>,
    signed_up: Option<String>,
    threshold_seconds: u64,
    detected_at: String,
    text: String,
}

impl Serialize for Notification {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        NotificationJson {
            kind: self.kind,
            watch: &self.watch,
            account_id: self.account_id,
            last_seen: self.last_seen.map(usage::rfc3339),
            inactive_since: self.inactive_since.map(usage::rfc3339),
            signed_up: self.signed_up.map(usage::rfc3339),
            threshold_seconds: self.threshold.as_secs(),
            detected_at: usage::rfc3339(self.detected_at),
            text: self.message(),
        }
        .serialize(serializer)
    }
}

/// `1 day`, `8 days`, `36 hours`: a duration as people say it.
fn days_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 86_400 == 0 || s >= 4 * 86_400 => match s / 86_400 {
            1 => "1 day".to_owned(),
            n => format!("{n} days"),
        },
        s if s >= 3_600 => format!("{} hours", s / 3_600),
        s => format!("{} minutes", s / 60),
    }
}

/// The future a [`Notifier`] returns.
pub type NotifyFuture = Pin<Box<dyn Future<Output = std::result::Result<(), BoxError>> + Send>>;

/// Delivers notifications. Implemented for closures
/// `Fn(Notification) -> impl Future<Output = Result<(), E>>`, by [`WebhookNotifier`], and for
/// `Arc<dyn Notifier>` and `Box<dyn Notifier>`, to pick a notifier at run time.
///
/// An error means the notification was not delivered: the watch logs it, records it as
/// failed, and tries again at its next check while the account stays in that state.
pub trait Notifier: Send + Sync + 'static {
    /// Delivers one notification.
    fn notify(&self, notification: Notification) -> NotifyFuture;
}

impl<F, Fut, E> Notifier for F
where
    F: Fn(Notification) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn notify(&self, notification: Notification) -> NotifyFuture {
        let fut = self(notification);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

impl Notifier for Arc<dyn Notifier> {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        (**self).notify(notification)
    }
}

impl Notifier for Box<dyn Notifier> {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        (**self).notify(notification)
    }
}

type SendFuture = Pin<
    Box<
        dyn Future<
                Output = std::result::Result<
                    http::Response<hyper::body::Incoming>,
                    hyper_util::client::legacy::Error,
                >,
            > + Send,
    >,
>;

/// POSTs each notification as JSON to a URL, with a timeout per attempt and retries.
///
/// A `2xx` answer is a delivery. Connection errors, timeouts, `408`, `429` and `5xx`
/// answers are tried again, up to [`with_max_attempts`](WebhookBuilder::with_max_attempts)
/// requests, waiting between them (doubling, with jitter, or as long as a `Retry-After`
/// header of at most the longest backoff asks); any other answer gives up at once. Giving up
/// logs an error and returns [`Error::Webhook`].
///
/// ```no_run
/// use std::time::Duration;
/// use idp_analytics::canary::WebhookNotifier;
///
/// # fn run() -> idp_analytics::Result<()> {
/// let webhook = WebhookNotifier::builder("http://hooks.internal:8080/quiet-accounts")
///     .with_header("authorization", "Bearer s3cret")
///     .with_timeout(Duration::from_secs(5))
///     .with_max_attempts(5)
///     .build()?;
/// # Ok(())
/// # }
/// ```
///
/// [`build`](WebhookBuilder::build) speaks plain HTTP; for `https://` pass a TLS connector
/// (such as `hyper-rustls`'s) to [`build_with_connector`](WebhookBuilder::build_with_connector).
#[derive(Clone)]
pub struct WebhookNotifier {
    inner: Arc<Webhook>,
}

struct Webhook {
    uri: Uri,
    /// Host and port only: the path of a webhook URL often holds its secret.
    host: String,
    headers: HeaderMap,
    timeout: Duration,
    max_attempts: u32,
    min_backoff: Duration,
    max_backoff: Duration,
    send: Box<dyn Fn(Request<String>) -> SendFuture + Send + Sync>,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("host", &self.inner.host)
            .field("timeout", &self.inner.timeout)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Configures a [`WebhookNotifier`]. Made by [`WebhookNotifier::builder`].
#[derive(Clone, Debug)]
pub struct WebhookBuilder {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    max_attempts: u32,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl WebhookNotifier {
    /// Starts configuring a webhook that POSTs to `url`.
    pub fn builder(url: impl Into<String>) -> WebhookBuilder {
        WebhookBuilder {
            url: url.into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            max_attempts: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }

    /// POSTs `notification`, retrying as configured.
    pub async fn send(&self, notification: &Notification) -> Result<()> {
        let hook = &*self.inner;
        let body = serde_json::to_string(notification)
            .map_err(|e| Error::Config(format!("notification not serializable: {e}")))?;
        let mut attempt = 0;
        let last = loop {
            attempt += 1;
            let mut request = Request::post(hook.uri.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .header(
                    header::USER_AGENT,
                    concat!("idp-analytics/", env!("CARGO_PKG_VERSION")),
                )
                .body(body.clone())
                .map_err(|e| Error::Config(e.to_string()))?;
            request.headers_mut().extend(hook.headers.clone());
            let (error, retry, retry_after) = match tokio::time::timeout(
                hook.timeout,
                (hook.send)(request),
            )
            .await
            {
                Ok(Ok(response)) if response.status().is_success() => {
                    tracing::debug!(host = %hook.host, account_id = notification.account_id, attempt, "webhook delivered");
                    return Ok(());
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retry = status.is_server_error()
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS;
                    let retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (format!("answered {status}"), retry, retry_after)
                }
                Ok(Err(e)) => (error_chain(&e), true, None),
                Err(_) => (format!("no answer within {:?}", hook.timeout), true, None),
            };
            if !retry || attempt >= hook.max_attempts {
                break error;
            }
            let wait = backoff(hook.min_backoff, hook.max_backoff, attempt)
                .max(retry_after.unwrap_or_default().min(hook.max_backoff));
            tracing::warn!(
                host = %hook.host,
                account_id = notification.account_id,
                attempt,
                error = %error,
                ?wait,
                "webhook failed; retrying"
            );
            tokio::time::sleep(wait).await;
        };
        tracing::error!(
            host = %hook.host,
            account_id = notification.account_id,
            attempts = attempt,
            error = %last,
            "webhook gave up: the notification was not delivered"
        );
        Err(Error::Webhook {
            host: hook.host.clone(),
            attempts: attempt,
            last,
        })
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        let this = self.clone();
        Box::pin(async move { this.send(&notification).await.map_err(Into::into) })
    }
}

impl WebhookBuilder {
    /// Adds a header to every request, such as `authorization`. Default: none besides
    /// `content-type: application/json` and `user-agent`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long one request may take, connecting included. Default: 10 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many requests to make before giving up, the first included. Default: 4.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The first and the longest wait between attempts; waits double in between, with
    /// jitter. Default: 500 ms and 10 s.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// Checks the configuration and makes the notifier, speaking plain HTTP.
    pub fn build(self) -> Result<WebhookNotifier> {
        if self.url.starts_with("https://") {
            return Err(Error::Config(
                "an https:// webhook needs a TLS connector: use build_with_connector".into(),
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        self.build_with_connector(connector)
    }

    /// Checks the configuration and makes the notifier, connecting through `connector`
    /// (for example an HTTPS connector).
    pub fn build_with_connector<C>(self, connector: C) -> Result<WebhookNotifier>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let bad = |what: String| Err(Error::Config(what));
        let uri: Uri = match self.url.parse() {
            Ok(uri) => uri,
            Err(e) => return bad(format!("webhook URL {:?}: {e}", self.url)),
        };
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return bad(format!("webhook URL {:?} must be absolute", self.url));
        };
        if scheme != "http" && scheme != "https" {
            return bad(format!("webhook URL {:?} must be http or https", self.url));
        }
        let host = authority
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| Error::Config(format!("header name {name:?}: {e}")))?;
            let mut value = HeaderValue::try_from(value.as_str())
                .map_err(|e| Error::Config(format!("header {name}: {e}")))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if self.timeout.is_zero() || self.min_backoff.is_zero() {
            return bad("webhook timeout and minimum backoff must be more than zero".into());
        }
        if self.max_attempts == 0 {
            return bad("webhook attempts must be at least 1".into());
        }
        if self.max_backoff < self.min_backoff {
            return bad("webhook maximum backoff must not be shorter than the minimum".into());
        }
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build::<C, String>(connector);
        Ok(WebhookNotifier {
            inner: Arc::new(Webhook {
                uri,
                host,
                headers,
                timeout: self.timeout,
                max_attempts: self.max_attempts,
                min_backoff: self.min_backoff,
                max_backoff: self.max_backoff,
                send: Box::new(move |request| Box::pin(client.request(request))),
            }),
        })
    }
}

/// The wait after failed attempt `attempt` (1-based): `min` doubled each time up to `max`,
/// drawn between half and all of it.
fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    let step = min
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(max);
    step / 2 + (step / 2).mul_f64(fastrand::f64())
}

/// An error and its sources, `: `-separated (hyper's own message is terse).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

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
    concurrency: usize,
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
    concurrency: usize,
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
    /// notification again (the claiming instance died while notifying). Keep it above the
    /// longest a notifier takes, retries included. Default: 15 minutes.
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
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
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
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
                concurrency: self.concurrency,
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
}

/// Stops a spawned watch. Dropping it stops the watch too, at once.
#[derive(Debug)]
pub struct WatchHandle {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl WatchHandle {
    /// Stops the watch after the check under way, if any, and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
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

/// The state an account crosses into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i8)]
enum Kind {
    Inactive = 1,
    Active = 2,
}

/// A step recorded for a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
enum Step {
    Claimed = 1,
    Delivered = 2,
    Failed = 3,
    /// Taken note of without notifying (an account back while "back" is not notified).
    Recorded = 4,
}

/// One account crossing into `kind`, for the quiet period after its event at `last_seen`
/// (Unix seconds; 0 when it never had one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Transition {
    account_id: u64,
    last_seen: u32,
    kind: Kind,
}

#[derive(clickhouse::Row, Serialize)]
struct LogInsert<'a> {
    watch: &'a str,
    account_id: u64,
    kind: i8,
    last_seen: u32,
    round: u32,
    step: i8,
    #[serde(with = "clickhouse::serde::uuid")]
    instance: Uuid,
}

#[derive(clickhouse::Row, Deserialize, Clone, Copy, Debug)]
struct LogRow {
    account_id: u64,
    kind: i8,
    last_seen: u32,
    round: u32,
    step: i8,
    #[serde(with = "clickhouse::serde::uuid")]
    instance: Uuid,
    recorded_at: u32,
}

/// What the log says about one transition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Record {
    /// Delivered, or recorded without a notification: nothing more to do.
    done: bool,
    delivered: bool,
    /// The latest round claimed, when it was first claimed, and whether it failed.
    round: Option<(u32, u32, bool)>,
}

/// The transitions of each account, in order.
type History = HashMap<u64, BTreeMap<(u32, Kind), Record>>;

fn kind_of(row: &LogRow) -> Kind {
    if row.kind == Kind::Active as i8 {
        Kind::Active
    } else {
        Kind::Inactive
    }
}

fn history(rows: &[LogRow]) -> History {
    let mut history = History::new();
    for row in rows {
        let record = history
            .entry(row.account_id)
            .or_default()
            .entry((row.last_seen, kind_of(row)))
            .or_default();
        match row.step {
            s if s == Step::Delivered as i8 => {
                record.done = true;
                record.delivered = true;
            }
            s if s == Step::Recorded as i8 => record.done = true,
            s if s == Step::Claimed as i8 => {
                record.round = Some(match record.round {
                    Some((r, at, failed)) if r == row.round => (r, at.min(row.recorded_at), failed),
                    Some(current) if current.0 > row.round => current,
                    _ => (row.round, row.recorded_at, false),
                });
            }
            _ => {}
        }
    }
    // Failures mark their round once every claim is in (rows are not in time order).
    for row in rows.iter().filter(|r| r.step == Step::Failed as i8) {
        if let Some(record) = history
            .get_mut(&row.account_id)
            .and_then(|h| h.get_mut(&(row.last_seen, kind_of(row))))
            && let Some((r, _, failed)) = &mut record.round
            && *r == row.round
        {
            *failed = true;
        }
    }
    history
}

/// What an account looks like at this check.
#[derive(Clone, Copy, Debug)]
enum Observation {
    /// No event since the cutoff; `last_seen` 0 when it never had one.
    Quiet { last_seen: u32 },
    /// An event since the cutoff.
    Active,
}

/// What to do about one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Claim the transition in this round, then notify if the claim wins.
    Claim(Transition, u32),
    /// Take note of the transition without notifying.
    Record(Transition),
}

/// The plan for one account, given its history, what it looks like now, and the server's
/// clock (for stale claims).
fn plan(
    account_id: u64,
    history: Option<&BTreeMap<(u32, Kind), Record>>,
    now: Observation,
    server_now: u32,
    claim_timeout: Duration,
    notify_back: bool,
) -> Option<Plan> {
    let latest = history.and_then(|h| h.iter().next_back());
    let claim = |last_seen: u32, kind: Kind, record: Option<&Record>| -> Option<Plan> {
        let t = Transition {
            account_id,
            last_seen,
            kind,
        };
        let Some(record) = record else {
            return Some(Plan::Claim(t, 0));
        };
        if record.done {
            return None;
        }
        match record.round {
            None => Some(Plan::Claim(t, 0)),
            Some((r, claimed_at, failed)) => {
                let stale =
                    u64::from(server_now.saturating_sub(claimed_at)) >= claim_timeout.as_secs();
                (failed || stale).then_some(Plan::Claim(t, r + 1))
            }
        }
    };
    match (now, latest) {
        // Still in the quiet period already handled (or being handled); a late event with
        // an old time may have moved its last-seen, but it is the same period.
        (Observation::Quiet { .. }, Some(((l0, Kind::Inactive), record))) => {
            claim(*l0, Kind::Inactive, Some(record))
        }
        (Observation::Quiet { last_seen }, _) => claim(
            last_seen,
            Kind::Inactive,
            history.and_then(|h| h.get(&(last_seen, Kind::Inactive))),
        ),
        (Observation::Active, Some(((l0, Kind::Inactive), record))) => {
            let back = Transition {
                account_id,
                last_seen: *l0,
                kind: Kind::Active,
            };
            if record.delivered && notify_back {
                claim(*l0, Kind::Active, None)
            } else {
                // Back before anyone was told, or "back" is not notified: take note, so the
                // next quiet period is a new one.
                Some(Plan::Record(back))
            }
        }
        // A "back" notification not delivered yet: keep trying while it holds.
        (Observation::Active, Some(((l0, Kind::Active), record))) if notify_back => {
            claim(*l0, Kind::Active, Some(record))
        }
        (Observation::Active, _) => None,
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
            concurrency: 8,
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

    async fn read_log(&self) -> Result<Vec<LogRow>> {
        Ok(self
            .client()
            .query(&format!(
                "SELECT account_id, kind, toUInt32(last_seen), round, step, instance, \
                 toUInt32(recorded_at) FROM {} WHERE watch = ? \
                 ORDER BY account_id, last_seen, kind, round",
                self.schema().qualified(&self.schema().watch_table())
            ))
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
        let seen = inner.usage.last_seen().await?;
        let inactive = usage::inactive(&seen, since, &known);
        let signed_up: HashMap<u64, SystemTime> =
            known.iter().map(|k| (k.account_id, k.signed_up)).collect();
        let server_now: u32 = self
            .client()
            .query("SELECT toUInt32(now())")
            .fetch_one()
            .await?;
        let history = history(&self.read_log().await?);

        let mut observed: BTreeMap<u64, Observation> = inactive
            .iter()
            .map(|a| {
                let last_seen = a.last_seen.map_or(0, seconds);
                (a.account_id, Observation::Quiet { last_seen })
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
                plan(
                    *account,
                    history.get(account),
                    *obs,
                    server_now,
                    inner.claim_timeout,
                    inner.notify_back,
                )
            })
            .collect();
        let mut report = CheckReport {
            inactive: inactive.len(),
            ..CheckReport::default()
        };
        let writes: Vec<(Transition, u32, Step)> = plans
            .iter()
            .map(|p| match *p {
                Plan::Claim(t, round) => (t, round, Step::Claimed),
                Plan::Record(t) => (t, 0, Step::Recorded),
            })
            .collect();
        self.write_log(&writes).await?;
        let claims: Vec<(Transition, u32)> = plans
            .iter()
            .filter_map(|p| match *p {
                Plan::Claim(t, round) => Some((t, round)),
                Plan::Record(_) => None,
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

        let notifications = mine.into_iter().map(|(t, round)| {
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
            };
            let notifier = inner.notifier.clone();
            async move {
                let outcome = notifier.notify(notification.clone()).await;
                (t, round, notification, outcome)
            }
        });
        let outcomes: Vec<_> = futures::stream::iter(notifications)
            .buffer_unordered(inner.concurrency)
            .collect()
            .await;
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
                match self.check().await {
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

fn seconds(time: SystemTime) -> u32 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn row(account_id: u64, kind: Kind, last_seen: u32, round: u32, step: Step, at: u32) -> LogRow {
        LogRow {
            account_id,
            kind: kind as i8,
            last_seen,
            round,
            step: step as i8,
            instance: Uuid::nil(),
            recorded_at: at,
        }
    }

    fn plan_for(rows: &[LogRow], now: Observation, server_now: u32, back: bool) -> Option<Plan> {
        let h = history(rows);
        plan(1, h.get(&1), now, server_now, HOUR, back)
    }

    fn t(last_seen: u32, kind: Kind) -> Transition {
        Transition {
            account_id: 1,
            last_seen,
            kind,
        }
    }

    #[test]
    fn canary_a_new_quiet_period_is_claimed_once() {
        let quiet = Observation::Quiet { last_seen: 100 };
        assert_eq!(
            plan_for(&[], quiet, 1000, false),
            Some(Plan::Claim(t(100, Kind::Inactive), 0))
        );
        // Claimed by someone a moment ago: theirs.
        let claimed = [row(1, Kind::Inactive, 100, 0, Step::Claimed, 990)];
        assert_eq!(plan_for(&claimed, quiet, 1000, false), None);
        // Delivered: done, even if a late event with an old time moved its last-seen.
        let delivered = [
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
            row(1, Kind::Inactive, 100, 0, Step::Delivered, 991),
        ];
        assert_eq!(plan_for(&delivered, quiet, 5000, false), None);
        assert_eq!(
            plan_for(
                &delivered,
                Observation::Quiet { last_seen: 150 },
                5000,
                false
            ),
            None
        );
    }

    #[test]
    fn canary_failed_and_stale_claims_get_a_new_round() {
        let quiet = Observation::Quiet { last_seen: 100 };
        let failed = [
            row(1, Kind::Inactive, 100, 0, Step::Failed, 995),
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
        ];
        assert_eq!(
            plan_for(&failed, quiet, 1000, false),
            Some(Plan::Claim(t(100, Kind::Inactive), 1))
        );
        let stale = [row(1, Kind::Inactive, 100, 3, Step::Claimed, 1000)];
        assert_eq!(plan_for(&stale, quiet, 1000 + 3599, false), None);
        assert_eq!(
            plan_for(&stale, quiet, 1000 + 3600, false),
            Some(Plan::Claim(t(100, Kind::Inactive), 4))
        );
        // An older round's failure does not reopen a newer round.
        let newer = [
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
            row(1, Kind::Inactive, 100, 0, Step::Failed, 991),
            row(1, Kind::Inactive, 100, 1, Step::Claimed, 1990),
        ];
        assert_eq!(plan_for(&newer, quiet, 2000, false), None);
    }

    #[test]
    fn canary_coming_back_is_noted_and_optionally_notified() {
        let delivered = [
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
            row(1, Kind::Inactive, 100, 0, Step::Delivered, 991),
        ];
        let active = Observation::Active;
        assert_eq!(
            plan_for(&delivered, active, 2000, false),
            Some(Plan::Record(t(100, Kind::Active)))
        );
        assert_eq!(
            plan_for(&delivered, active, 2000, true),
            Some(Plan::Claim(t(100, Kind::Active), 0))
        );
        // Back before the quiet notification went out: noted, not notified.
        let undelivered = [row(1, Kind::Inactive, 100, 0, Step::Claimed, 990)];
        assert_eq!(
            plan_for(&undelivered, active, 2000, true),
            Some(Plan::Record(t(100, Kind::Active)))
        );
        // Noted: nothing more while active; a new quiet period after it is new.
        let mut back = delivered.to_vec();
        back.push(row(1, Kind::Active, 100, 0, Step::Recorded, 2000));
        assert_eq!(plan_for(&back, active, 3000, false), None);
        assert_eq!(plan_for(&back, active, 3000, true), None);
        assert_eq!(
            plan_for(&back, Observation::Quiet { last_seen: 2500 }, 9000, false),
            Some(Plan::Claim(t(2500, Kind::Inactive), 0))
        );
        // Never reported: nothing to say when active.
        assert_eq!(plan_for(&[], active, 3000, true), None);
    }

    #[test]
    fn canary_notifications_read_well() {
        let day = 86_400;
        let n = Notification {
            kind: NotificationKind::Inactive,
            watch: "inactive".into(),
            account_id: 42,
            last_seen: Some(UNIX_EPOCH + Duration::from_secs(1_714_557_600)),
            inactive_since: Some(UNIX_EPOCH + Duration::from_secs(1_714_557_600)),
            signed_up: None,
            threshold: Duration::from_secs(7 * day),
            detected_at: UNIX_EPOCH + Duration::from_secs(1_714_557_600 + 8 * day + 5),
        };
        assert_eq!(
            n.to_string(),
            "Account 42 has been inactive for 8 days: last seen 2024-05-01T10:00:00Z (threshold 7 days)."
        );
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["kind"], "inactive");
        assert_eq!(json["accountId"], 42);
        assert_eq!(json["lastSeen"], "2024-05-01T10:00:00Z");
        assert_eq!(json["signedUp"], serde_json::Value::Null);
        assert_eq!(json["thresholdSeconds"], 7 * day);
        assert_eq!(json["detectedAt"], "2024-05-09T10:00:05Z");
        assert_eq!(json["text"], n.to_string());

        let never = Notification {
            last_seen: None,
            inactive_since: None,
            signed_up: Some(UNIX_EPOCH),
            ..n.clone()
        };
        assert!(
            never
                .to_string()
                .contains("not been active since it signed up on 1970-01-01")
        );
        let back = Notification {
            kind: NotificationKind::Active,
            last_seen: Some(UNIX_EPOCH + Duration::from_secs(1_715_000_000)),
            ..n
        };
        assert_eq!(
            back.to_string(),
            "Account 42 is active again (last seen 2024-05-06T12:53:20Z), after no activity since 2024-05-01T10:00:00Z."
        );
        assert_eq!(days_text(Duration::from_secs(36 * 3600)), "36 hours");
        assert_eq!(days_text(Duration::from_secs(day)), "1 day");
    }

    #[test]
    fn canary_webhook_configuration_is_checked() {
        assert!(
            WebhookNotifier::builder("http://127.0.0.1:9/hook")
                .build()
                .is_ok()
        );
        assert!(
            WebhookNotifier::builder("https://example.invalid/hook")
                .build()
                .is_err()
        );
        assert!(WebhookNotifier::builder("/relative").build().is_err());
        assert!(WebhookNotifier::builder("ftp://x/y").build().is_err());
        assert!(
            WebhookNotifier::builder("http://x/")
                .with_header("bad header", "v")
                .build()
                .is_err()
        );
        assert!(
            WebhookNotifier::builder("http://x/")
                .with_max_attempts(0)
                .build()
                .is_err()
        );
        let hook = WebhookNotifier::builder("http://user:pw@hooks:8080/T0/secret")
            .build()
            .unwrap();
        assert_eq!(hook.inner.host, "hooks:8080");
        assert!(!format!("{hook:?}").contains("secret"));
    }

    #[test]
    fn canary_backoff_doubles_with_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 1..10 {
            let step = (min * 2u32.pow(attempt - 1)).min(max);
            let wait = backoff(min, max, attempt);
            assert!(wait >= step / 2 && wait <= step, "{attempt}: {wait:?}");
        }
    }
}
