//! The read-only admin router: JSON endpoints for the usage questions, and one HTML page.
//!
//! [`Admin::into_router`] makes an axum [`Router`] to mount where the application likes,
//! typically at `/admin/analytics`. Every request goes through the guard the application
//! supplies first (a predicate over the request's head); a request it refuses gets
//! `401 Unauthorized` and reads nothing. Nothing in it writes.
//!
//! | Route | Answer |
//! |-------|--------|
//! | `GET /` | The dashboard: daily active accounts as a chart, the quiet accounts with their last-seen time, the most active accounts, each with a sparkline of its events per day, and the top event types. Server-rendered HTML with inline SVG: no script, nothing fetched from elsewhere (its `Content-Security-Policy` says so to the browser). |
//! | `GET /inactive?days=N` | Accounts with no event for `N` days (default: the [quiet threshold](Admin::with_quiet_after)), never-active known accounts included: `[{"accountId": 42, "lastSeen": "2024-05-01T10:00:00Z", "signedUp": null}]`, longest quiet first. `lastSeen` is `null` for an account that never had an event. |
//! | `GET /accounts/{id}/usage?from=&to=` | One account's [`AccountUsage`](crate::usage::AccountUsage): `{"accountId", "days", "totalEvents", "eventTypes", "firstSeen", "lastSeen", "activeDays", "perDay"}`. |
//! | `GET /active?from=&to=&period=day\|week` | Active accounts per day or week: `[{"start": "2024-05-06", "accounts": 12}]`. |
//! | `GET /event-types?from=&to=&limit=` | The top event types: `[{"eventType", "events", "accounts"}]`. |
//! | `GET /accounts?from=&to=&limit=` | Accounts ranked by events: `[{"accountId", "events", "activeDays", "lastSeen"}]`. |
//!
//! `from` and `to` are UTC days (`YYYY-MM-DD`, both included; default: the
//! [chart's days](Admin::with_chart_days) ending today), `limit` is 1 to 1000 (default 20).
//! A bad parameter gets `400` with `{"error": "..."}`; a failed query `500` with the same;
//! a question asked before the writer has created its table `503` with `Retry-After: 1`.
//!
//! ```
//! use axum::Router;
//! use idp_analytics::{admin::{self, Admin}, schema::Schema, usage::Usage};
//!
//! let client = clickhouse::Client::default().with_url("http://127.0.0.1:8123");
//! let usage = Usage::new(client, Schema::default());
//! let app: Router = Router::new().nest(
//!     "/admin/analytics",
//!     Admin::new(usage, admin::bearer("admin-demo")).into_router(),
//! );
//! ```

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    Router,
    extract::{NestedPath, Path, RawQuery, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, StatusCode, header, request::Parts};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    usage::{
        self, AccountActivity, ActiveAccounts, Day, Days, EventTypeCount, InactiveAccount,
        KnownAccount, KnownAccounts, Period, Usage,
    },
};

type Guard = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Configures the admin router. See the [module docs](self) for its routes.
pub struct Admin {
    usage: Usage,
    guard: Guard,
    known: Option<Arc<dyn KnownAccounts>>,
    chart_days: u32,
    quiet_after: Duration,
    top_accounts: u64,
    quiet_rows: usize,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("usage", &self.usage)
            .field("chart_days", &self.chart_days)
            .field("quiet_after", &self.quiet_after)
            .field("top_accounts", &self.top_accounts)
            .finish_non_exhaustive()
    }
}

/// A guard that lets a request in when it carries `Authorization: Bearer <token>`. The
/// token is compared in constant time.
pub fn bearer(token: impl Into<String>) -> impl Fn(&Parts) -> bool + Clone + Send + Sync + 'static {
    let expected: Arc<[u8]> = format!("Bearer {}", token.into()).into_bytes().into();
    move |parts: &Parts| {
        let Some(given) = parts.headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let given = given.as_bytes();
        given.len() == expected.len()
            && given
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Admin {
    /// An admin router over `usage`, letting in the requests `guard` accepts.
    pub fn new<G>(usage: Usage, guard: G) -> Self
    where
        G: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        Self {
            usage,
            guard: Arc::new(guard),
            known: None,
            chart_days: 30,
            quiet_after: Duration::from_secs(7 * 86_400),
            top_accounts: 20,
            quiet_rows: 100,
        }
    }

    /// How many days, ending today, the page charts, and the default range of the JSON
    /// endpoints. At least 1. Default: 30.
    pub fn with_chart_days(mut self, days: u32) -> Self {
        self.chart_days = days.max(1);
        self
    }

    /// How long without an event makes an account quiet on the page, and the default of
    /// `GET /inactive`. Default: 7 days.
    pub fn with_quiet_after(mut self, threshold: Duration) -> Self {
        self.quiet_after = threshold;
        self
    }

    /// The application's accounts with their sign-up times, so that accounts that never had
    /// an event are listed as quiet too. Default: none.
    pub fn with_known_accounts(mut self, known: impl KnownAccounts) -> Self {
        self.known = Some(Arc::new(known));
        self
    }

    /// How many of the most active accounts the page lists. Default: 20.
    pub fn with_top_accounts(mut self, accounts: u64) -> Self {
        self.top_accounts = accounts;
        self
    }

    /// How many quiet accounts the page lists (all of them are in `GET /inactive`).
    /// Default: 100.
    pub fn with_quiet_rows(mut self, rows: usize) -> Self {
        self.quiet_rows = rows;
        self
    }

    /// The router, to mount with [`Router::nest`] into the application's router, whatever
    /// its state.
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let state = Arc::new(self);
        Router::new()
            .route("/", get(page))
            .route("/inactive", get(inactive))
            .route("/accounts", get(accounts))
            .route("/accounts/{id}/usage", get(account_usage))
            .route("/active", get(active))
            .route("/event-types", get(event_types))
            .layer(middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state)
    }

    async fn known(&self) -> Result<Vec<KnownAccount>> {
        match &self.known {
            Some(source) => source.known_accounts().await.map_err(Error::KnownAccounts),
            None => Ok(Vec::new()),
        }
    }
}

type Shared = State<Arc<Admin>>;

async fn guard(State(admin): Shared, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if !(admin.guard)(&parts) {
        let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        no_store(&mut response);
        return response;
    }
    next.run(Request::from_parts(parts, body)).await
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A JSON answer, or an error as JSON.
enum Answer {
    Json(String),
    Bad(String),
    Failed(Error),
}

impl<T: Serialize> From<Result<T>> for Answer {
    fn from(result: Result<T>) -> Self {
        match result {
            Ok(value) => match serde_json::to_string(&value) {
                Ok(json) => Self::Json(json),
                Err(e) => Self::Failed(Error::Config(e.to_string())),
            },
            Err(Error::Config(message)) => Self::Bad(message),
            Err(error) => Self::Failed(error),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let error = |message: String| serde_json::json!({ "error": message }).to_string();
        let (status, body) = match self {
            Self::Json(json) => (StatusCode::OK, json),
            Self::Bad(message) => (StatusCode::BAD_REQUEST, error(message)),
            // Only until the writer has created its table, a moment after it starts.
            Self::Failed(e @ Error::TableMissing { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, error(e.to_string()))
            }
            Self::Failed(e) => {
                tracing::error!(error = %e, "admin query failed");
                (StatusCode::INTERNAL_SERVER_ERROR, error(e.to_string()))
            }
        };
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        no_store(&mut response);
        response
    }
}

/// The query string's parameters, undecoded (the values taken are digits, days and words).
struct Params(HashMap<String, String>);

impl Params {
    fn new(query: Option<String>) -> Self {
        let mut map = HashMap::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(k.to_owned(), v.to_owned());
        }
        Self(map)
    }

    fn number(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64> {
        let Some(text) = self.0.get(name) else {
            return Ok(default);
        };
        text.parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                Error::Config(format!(
                    "{name} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ))
            })
    }

    fn days(&self, chart_days: u32) -> Result<Days> {
        let day = |name: &str| self.0.get(name).map(|v| v.parse::<Day>()).transpose();
        let to = day("to")?.unwrap_or_else(Day::today);
        match day("from")? {
            Some(from) => Days::new(from, to),
            None => Ok(Days::ending(to, chart_days)),
        }
    }
}

async fn inactive(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
    let default_days = admin.quiet_after.as_secs().div_ceil(86_400).max(1);
    let result = async {
        let days = Params::new(query).number("days", default_days, 1..=36_500)?;
        let since = SystemTime::now() - Duration::from_secs(days * 86_400);
        let known = admin.known().await?;
        admin.usage.inactive_accounts(since, &known).await
    }
    .await;
    result.into()
}

async fn account_usage(
    State(admin): Shared,
    Path(account_id): Path<u64>,
    RawQuery(query): RawQuery,
) -> Answer {
    let result = async {
        let days = Params::new(query).days(admin.chart_days)?;
        admin.usage.account(account_id, days).await
    }
    .await;
    result.into()
}

async fn active(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
    let result = async {
        let params = Params::new(query);
        let days = params.days(admin.chart_days)?;
        let period = match params.0.get("period").map(String::as_str) {
            None | Some("day") => Period::Day,
            Some("week") => Period::Week,
            Some(_) => return Err(Error::Config("period must be day or week".into())),
        };
        admin.usage.active_accounts(days, period).await
    }
    .await;
    result.into()
}

async fn event_types(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
    let result = async {
        let params = Params::new(query);
        let days = params.days(admin.chart_days)?;
        let limit = params.number("limit", 20, 1..=1000)?;
        admin.usage.top_event_types(days, limit).await
    }
    .await;
    result.into()
}

async fn accounts(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
    let result = async {
        let params = Params::new(query);
        let days = params.days(admin.chart_days)?;
        let limit = params.number("limit", 20, 1..=1000)?;
        admin.usage.top_accounts(days, limit).await
    }
    .await;
    result.into()
}

/// Everything the page shows.
struct Page {
    /// Where the router is mounted, for links; empty when it is not nested.
    base: String,
    now: SystemTime,
    days: Days,
    quiet_after: Duration,
    daily: Vec<ActiveAccounts>,
    quiet: Vec<InactiveAccount>,
    quiet_rows: usize,
    top: Vec<AccountActivity>,
    types: Vec<EventTypeCount>,
    /// Events per day of the range, every day, for the accounts listed.
    sparklines: HashMap<u64, Vec<u64>>,
}

async fn page(State(admin): Shared, parts: Parts) -> Response {
    let base = parts
        .extensions
        .get::<NestedPath>()
        .map(|p| p.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    match load(&admin, base).await {
        Ok(page) => {
            let mut response = (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                         form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
                    ),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    (header::REFERRER_POLICY, "no-referrer"),
                ],
                render(&page),
            )
                .into_response();
            no_store(&mut response);
            response
        }
        Err(error) => Answer::Failed(error).into_response(),
    }
}

async fn load(admin: &Admin, base: String) -> Result<Page> {
    let now = SystemTime::now();
    let days = Days::ending(Day::of(now), admin.chart_days);
    let known = admin.known().await?;
    let since = now - admin.quiet_after;
    let (daily, quiet, top, types) = futures::future::try_join4(
        admin.usage.active_accounts(days, Period::Day),
        admin.usage.inactive_accounts(since, &known),
        admin.usage.top_accounts(days, admin.top_accounts),
        admin.usage.top_event_types(days, 10),
    )
    .await?;
    let mut ids: Vec<u64> = top.iter().map(|a| a.account_id).collect();
    ids.extend(quiet.iter().take(admin.quiet_rows).map(|a| a.account_id));
    ids.sort_unstable();
    ids.dedup();
    let mut sparklines = HashMap::new();
    for account in admin.usage.events_per_day(&ids, days).await? {
        let by_day: HashMap<Day, u64> = account.per_day.iter().map(|d| (d.day, d.events)).collect();
        let dense = days
            .iter()
            .map(|d| by_day.get(&d).copied().unwrap_or(0))
            .collect();
        sparklines.insert(account.account_id, dense);
    }
    Ok(Page {
        base,
        now,
        days,
        quiet_after: admin.quiet_after,
        daily,
        quiet,
        quiet_rows: admin.quiet_rows,
        top,
        types,
        sparklines,
    })
}

/// Escapes text for HTML, in content and in quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root{color-scheme:light;--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--accent:#3467d6;--quiet:#c2410c}\
*{box-sizing:border-box}\
body{margin:0;padding:28px 36px 48px;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);background:#f8fafc}\
h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:0 0 10px}\
.sub{color:var(--muted);margin:0 0 20px}\
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:0 0 18px;max-width:1100px}\
.stats{display:flex;gap:28px;margin:0 0 12px}.stats b{display:block;font-size:20px}\
.stats span{color:var(--muted);font-size:12px}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:6px 10px 6px 0;border-bottom:1px solid var(--line);vertical-align:middle}\
th{color:var(--muted);font-weight:600;font-size:12px}\
td.n{text-align:right;font-variant-numeric:tabular-nums;padding-right:18px}\
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}\
.quiet td.age{color:var(--quiet);font-weight:600}\
.sparkline{color:var(--accent);display:block}.quiet .sparkline{color:var(--quiet)}\
.bar{fill:var(--accent)}.bar:hover{fill:#1e40af}\
.axis text{fill:var(--muted);font-size:11px}.axis line{stroke:var(--line)}\
.share{height:8px;background:var(--accent);border-radius:4px;opacity:.7}\
.none{color:var(--muted)}\
code{font-size:13px}";

fn render(page: &Page) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let (first, last) = (page.days.first(), page.days.last());
    let quiet_days = page.quiet_after.as_secs().div_ceil(86_400).max(1);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Account usage</title><style>{STYLE}</style></head><body>\
         <h1>Account usage</h1>\
         <p class=\"sub\">{first} to {last} (UTC), as of <time datetime=\"{now}\">{now}</time></p>",
        first = escape(&first.to_string()),
        last = escape(&last.to_string()),
        now = escape(&usage::rfc3339(page.now)),
    );

    // Daily active accounts.
    let today = page.daily.last().map_or(0, |d| d.accounts);
    let peak = page.daily.iter().max_by_key(|d| (d.accounts, d.start));
    let _ = write!(
        html,
        "<section><h2>Daily active accounts</h2><div class=\"stats\">\
         <div><b id=\"active-today\">{today}</b><span>active today</span></div>\
         <div><b>{peak}</b><span>peak{peak_day}</span></div>\
         <div><b id=\"quiet-count\">{quiet}</b><span>quiet for {quiet_days} days or more</span></div></div>",
        peak = peak.map_or(0, |p| p.accounts),
        peak_day = peak.map_or_else(String::new, |p| format!(
            ", {}",
            escape(&p.start.to_string())
        )),
        quiet = page.quiet.len(),
    );
    chart(&mut html, &page.daily);
    html.push_str("</section>");

    // Quiet accounts.
    let _ = write!(
        html,
        "<section class=\"quiet\"><h2>Quiet accounts</h2>\
         <p class=\"sub\">No event for {quiet_days} days or more; never-active accounts first, then the longest quiet.</p>\
         <table id=\"quiet-accounts\"><thead><tr><th>Account</th><th>Last seen</th>\
         <th>Quiet for</th><th>Signed up</th><th>Events per day, {n} days</th></tr></thead><tbody>",
        n = page.days.len(),
    );
    for account in page.quiet.iter().take(page.quiet_rows) {
        let (last_seen, age) = match account.last_seen {
            Some(t) => (time_tag(t), days_between(t, page.now)),
            None => (
                "<span class=\"none\">never</span>".to_owned(),
                "never active".to_owned(),
            ),
        };
        let signed_up = account
            .signed_up
            .map_or_else(|| "<span class=\"none\">–</span>".to_owned(), time_tag);
        let _ = write!(
            html,
            "<tr data-account=\"{id}\"><td>{link}</td><td>{last_seen}</td><td class=\"age\">{age}</td>\
             <td>{signed_up}</td><td>{spark}</td></tr>",
            id = account.account_id,
            link = account_link(page, account.account_id),
            age = escape(&age),
            spark = sparkline(
                page.sparklines.get(&account.account_id).map(Vec::as_slice),
                page.days.len()
            ),
        );
    }
    if page.quiet.is_empty() {
        html.push_str("<tr><td colspan=\"5\" class=\"none\">No quiet account.</td></tr>");
    }
    html.push_str("</tbody></table>");
    if page.quiet.len() > page.quiet_rows {
        let _ = write!(
            html,
            "<p class=\"sub\">And {} more: see <code>inactive?days={quiet_days}</code>.</p>",
            page.quiet.len() - page.quiet_rows
        );
    }
    html.push_str("</section>");

    // Most active accounts.
    html.push_str(
        "<section><h2>Most active accounts</h2><table id=\"active-accounts\"><thead><tr>\
         <th>Account</th><th>Events</th><th>Active days</th><th>Last seen</th>\
         <th>Events per day</th></tr></thead><tbody>",
    );
    for account in &page.top {
        let _ = write!(
            html,
            "<tr data-account=\"{id}\"><td>{link}</td><td class=\"n\">{events}</td>\
             <td class=\"n\">{active}</td><td>{last}</td><td>{spark}</td></tr>",
            id = account.account_id,
            link = account_link(page, account.account_id),
            events = account.events,
            active = account.active_days,
            last = time_tag(account.last_seen),
            spark = sparkline(
                page.sparklines.get(&account.account_id).map(Vec::as_slice),
                page.days.len()
            ),
        );
    }
    if page.top.is_empty() {
        html.push_str("<tr><td colspan=\"5\" class=\"none\">No event in these days.</td></tr>");
    }
    html.push_str("</tbody></table></section>");

    // Event types.
    html.push_str(
        "<section><h2>Top event types</h2><table id=\"event-types\"><thead><tr>\
         <th>Event type</th><th>Events</th><th>Accounts</th><th style=\"width:30%\"></th>\
         </tr></thead><tbody>",
    );
    let most = page.types.first().map_or(1, |t| t.events.max(1));
    for t in &page.types {
        let _ = write!(
            html,
            "<tr><td><code>{name}</code></td><td class=\"n\">{events}</td><td class=\"n\">{accounts}</td>\
             <td><div class=\"share\" style=\"width:{pct:.1}%\"></div></td></tr>",
            name = escape(&t.event_type),
            events = t.events,
            accounts = t.accounts,
            pct = t.events as f64 * 100.0 / most as f64,
        );
    }
    if page.types.is_empty() {
        html.push_str("<tr><td colspan=\"4\" class=\"none\">No event in these days.</td></tr>");
    }
    html.push_str("</tbody></table></section></body></html>\n");
    html
}

fn account_link(page: &Page, account_id: u64) -> String {
    format!(
        "<a href=\"{base}/accounts/{account_id}/usage?from={from}&amp;to={to}\">{account_id}</a>",
        base = escape(&page.base),
        from = page.days.first(),
        to = page.days.last(),
    )
}

fn time_tag(time: SystemTime) -> String {
    let text = escape(&usage::rfc3339(time));
    format!(
        "<time datetime=\"{text}\">{}</time>",
        text.replace('T', " ").trim_end_matches('Z')
    )
}

fn days_between(earlier: SystemTime, later: SystemTime) -> String {
    let days = later.duration_since(earlier).unwrap_or_default().as_secs() / 86_400;
    match days {
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

/// The daily active accounts as a bar chart.
fn chart(html: &mut String, daily: &[ActiveAccounts]) {
    const W: f64 = 1000.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 30.0;
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let max = nice_max(daily.iter().map(|d| d.accounts).max().unwrap_or(0));
    let (first, last) = match (daily.first(), daily.last()) {
        (Some(f), Some(l)) => (f.start.to_string(), l.start.to_string()),
        _ => (String::new(), String::new()),
    };
    let _ = write!(
        html,
        "<svg id=\"dau-chart\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" \
         aria-labelledby=\"dau-title\">\
         <title id=\"dau-title\">Daily active accounts, {first} to {last}</title><g class=\"axis\">",
        first = escape(&first),
        last = escape(&last),
    );
    for tick in [0, max / 2, max] {
        let y = TOP + plot_h - tick as f64 / max as f64 * plot_h;
        let _ = write!(
            html,
            "<line x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{tick}</text>",
            x2 = W - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
        );
    }
    let n = daily.len().max(1) as f64;
    let step = plot_w / n;
    let label_every = (daily.len() / 6).max(1);
    for (i, d) in daily.iter().enumerate() {
        let x = LEFT + i as f64 * step;
        if i % label_every == 0 || i + 1 == daily.len() {
            let (_, m, day) = d.start.ymd();
            let _ = write!(
                html,
                "<text x=\"{cx:.1}\" y=\"{y}\" text-anchor=\"middle\">{m:02}-{day:02}</text>",
                cx = x + step / 2.0,
                y = H - 10.0,
            );
        }
    }
    html.push_str("</g>");
    for (i, d) in daily.iter().enumerate() {
        let h = d.accounts as f64 / max as f64 * plot_h;
        let _ = write!(
            html,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"2\">\
             <title>{day}: {n} active account{s}</title></rect>",
            x = LEFT + i as f64 * step + step * 0.15,
            y = TOP + plot_h - h,
            w = step * 0.7,
            day = escape(&d.start.to_string()),
            n = d.accounts,
            s = if d.accounts == 1 { "" } else { "s" },
        );
    }
    html.push_str("</svg>");
}

/// The smallest of 2, 4, 6, 8 × 10ⁿ at or above `n`: a round top for the chart's axis
/// whose half, the middle grid line, is whole too.
fn nice_max(n: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for m in [2, 4, 6, 8] {
            let candidate = m * scale;
            if candidate >= n.max(2) {
                return candidate;
            }
        }
        scale = scale.saturating_mul(10);
    }
}

/// A sparkline of `values` (events per day), or a flat line when there are none.
fn sparkline(values: Option<&[u64]>, days: u32) -> String {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    const PAD: f64 = 3.0;
    let zeros = vec![0; days as usize];
    let values = values.unwrap_or(&zeros);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let total: u64 = values.iter().sum();
    let n = values.len();
    let x = |i: usize| {
        if n <= 1 {
            W / 2.0
        } else {
            PAD + i as f64 * (W - 2.0 * PAD) / (n - 1) as f64
        }
    };
    let y = |v: u64| H - PAD - v as f64 / max * (H - 2.0 * PAD);
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
        .collect();
    let mut svg = format!(
        "<svg class=\"sparkline\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" \
         aria-label=\"{total} events in {days} days, at most {peak} a day\">\
         <polyline points=\"{points}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" \
         stroke-linejoin=\"round\"/>",
        peak = max as u64 * u64::from(total > 0),
        points = points.join(" "),
    );
    if let Some(v) = values.last() {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"currentColor\"/>",
            x(n - 1),
            y(*v)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn sample() -> Page {
        let last = Day::from_ymd(2024, 5, 9).unwrap();
        let days = Days::ending(last, 3);
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        Page {
            base: "/admin/analytics".into(),
            now: last.start() + Duration::from_secs(3600),
            days,
            quiet_after: Duration::from_secs(7 * 86_400),
            daily: days
                .iter()
                .zip([3, 0, 5])
                .map(|(start, accounts)| ActiveAccounts { start, accounts })
                .collect(),
            quiet: vec![
                InactiveAccount {
                    account_id: 9,
                    last_seen: None,
                    signed_up: Some(t(1_700_000_000)),
                },
                InactiveAccount {
                    account_id: 4,
                    last_seen: Some(last.start() - Duration::from_secs(8 * 86_400)),
                    signed_up: None,
                },
            ],
            quiet_rows: 100,
            top: vec![AccountActivity {
                account_id: 1,
                events: 12,
                active_days: 2,
                last_seen: last.start(),
            }],
            types: vec![EventTypeCount {
                event_type: "<script>alert(\"x\")</script>".into(),
                events: 12,
                accounts: 1,
            }],
            sparklines: [(1, vec![5, 0, 7])].into(),
        }
    }

    #[test]
    fn admin_the_page_escapes_and_shows_everything() {
        let html = render(&sample());
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("<code>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</code>"));
        assert_eq!(html.matches("<rect class=\"bar\"").count(), 3);
        assert!(html.contains("<title>2024-05-09: 5 active accounts</title>"));
        assert!(html.contains("<title>2024-05-08: 0 active accounts</title>"));
        assert!(html.contains("<tr data-account=\"9\">"));
        assert!(html.contains("never active"));
        assert!(html.contains("<td class=\"age\">8 days</td>"));
        assert!(html.contains(
            "<a href=\"/admin/analytics/accounts/4/usage?from=2024-05-07&amp;to=2024-05-09\">4</a>"
        ));
        // Every listed account has a sparkline; one with no events has a flat one.
        assert_eq!(html.matches("class=\"sparkline\"").count(), 3);
        assert!(html.contains("aria-label=\"12 events in 3 days, at most 7 a day\""));
        assert!(html.contains("aria-label=\"0 events in 3 days, at most 0 a day\""));
        // Nothing to fetch: no URL, no source, no script.
        assert!(!html.contains("http") && !html.contains("src="));
    }

    #[test]
    fn admin_escape_covers_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(escape("/projects/{id}"), "/projects/{id}");
    }

    #[test]
    fn admin_chart_scale_is_round() {
        assert_eq!(nice_max(0), 2);
        assert_eq!(nice_max(3), 4);
        assert_eq!(nice_max(9), 20);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(600), 600);
        assert_eq!(nice_max(801), 2000);
    }

    #[test]
    fn admin_bearer_compares_the_whole_header() {
        let guard = bearer("admin-demo");
        let parts = |value: Option<&str>| {
            let mut request = http::Request::builder();
            if let Some(v) = value {
                request = request.header("authorization", v);
            }
            request.body(()).unwrap().into_parts().0
        };
        assert!(guard(&parts(Some("Bearer admin-demo"))));
        assert!(!guard(&parts(Some("Bearer admin-demo2"))));
        assert!(!guard(&parts(Some("Bearer admin-dem"))));
        assert!(!guard(&parts(Some("bearer admin-demo"))));
        assert!(!guard(&parts(None)));
    }

    #[test]
    fn admin_parameters_are_checked() {
        let p = Params::new(Some(
            "days=8&limit=0&from=2024-05-01&to=2024-04-01&x".into(),
        ));
        assert_eq!(p.number("days", 7, 1..=100).unwrap(), 8);
        assert_eq!(p.number("missing", 7, 1..=100).unwrap(), 7);
        assert!(p.number("limit", 20, 1..=1000).is_err());
        assert!(p.days(30).is_err());
        let p = Params::new(Some("to=2024-05-31".into()));
        assert_eq!(p.days(31).unwrap().first().to_string(), "2024-05-01");
        assert!(Params::new(Some("from=yesterday".into())).days(30).is_err());
    }
}
