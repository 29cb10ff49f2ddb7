//! The dashboard page: what it loads and how it is rendered.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{NestedPath, State},
    response::{IntoResponse, Response},
};
use http::{header, request::Parts};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::{
    canary::{Finding, Reason},
    error::Result,
    usage::{
        self, AccountActivity, ActiveAccounts, Day, Days, EventTypeCount, InactiveAccount, Period,
    },
};

use super::{
    chart::{baseline_chart, chart, sparkline},
    router::{Admin, Answer, Shared, no_store},
};

/// Everything the page shows.
struct Page {
    /// Where the router is mounted, for links; empty when it is not nested.
    base: String,
    pub(super) now: SystemTime,
    pub(super) days: Days,
    pub(super) quiet_after: Duration,
    pub(super) daily: Vec<ActiveAccounts>,
    /// The first [`quiet_rows`](Self::quiet_rows) quiet accounts.
    pub(super) quiet: Vec<InactiveAccount>,
    /// How many accounts are quiet in all.
    pub(super) quiet_total: u64,
    pub(super) quiet_rows: usize,
    pub(super) top: Vec<AccountActivity>,
    pub(super) types: Vec<EventTypeCount>,
    /// The first few sources of each listed event type, sorted.
    pub(super) sources: HashMap<String, Vec<String>>,
    /// Events per day of the range, every day, for the accounts listed.
    pub(super) sparklines: HashMap<u64, Vec<u64>>,
    /// The accounts at risk, highest score first.
    pub(super) at_risk: Vec<Finding>,
    /// The days of the at-risk charts: the baseline and the recent window.
    pub(super) risk_days: Days,
    /// Events per day of `risk_days`, every day, for the at-risk accounts listed.
    pub(super) risk_activity: HashMap<u64, Vec<u64>>,
}

/// Events per day of `days` for each of `ids`, every day of the range.
async fn dense(admin: &Admin, ids: &[u64], days: Days) -> Result<HashMap<u64, Vec<u64>>> {
    let mut out = HashMap::new();
    for account in admin.usage.events_per_day(ids, days).await? {
        let by_day: HashMap<Day, u64> = account.per_day.iter().map(|d| (d.day, d.events)).collect();
        let values = days
            .iter()
            .map(|d| by_day.get(&d).copied().unwrap_or(0))
            .collect();
        out.insert(account.account_id, values);
    }
    Ok(out)
}

pub(super) async fn page(State(admin): Shared, parts: Parts) -> Response {
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
    let since = now.checked_sub(admin.quiet_after).unwrap_or(UNIX_EPOCH);
    let (daily, quiet, quiet_total, (top, types)) = futures::future::try_join4(
        admin.usage.active_accounts(days, Period::Day),
        admin
            .usage
            .inactive_accounts_page(since, &known, None, admin.quiet_rows),
        admin.usage.count_inactive(since, &known),
        futures::future::try_join(
            admin.usage.top_accounts(days, admin.top_accounts),
            admin.usage.top_event_types(days, 10),
        ),
    )
    .await?;
    let quiet = quiet.accounts;
    let listed: Vec<String> = types.iter().map(|t| t.event_type.clone()).collect();
    let sources = admin
        .usage
        .event_type_sources(days, &listed, SOURCES_PER_TYPE)
        .await?;
    let mut at_risk = admin.detector.detect(&admin.usage, now, &known).await?;
    at_risk.truncate(admin.quiet_rows);
    let risk_days = Days::ending(Day::of(now), admin.detector.charted_days());
    let risk_ids: Vec<u64> = at_risk.iter().map(|f| f.account_id).collect();
    let risk_activity = dense(admin, &risk_ids, risk_days).await?;
    let mut ids: Vec<u64> = top.iter().map(|a| a.account_id).collect();
    ids.extend(quiet.iter().take(admin.quiet_rows).map(|a| a.account_id));
    ids.sort_unstable();
    ids.dedup();
    let sparklines = dense(admin, &ids, days).await?;
    Ok(Page {
        base,
        now,
        days,
        quiet_after: admin.quiet_after,
        daily,
        quiet,
        quiet_total,
        quiet_rows: admin.quiet_rows,
        top,
        types,
        sources,
        sparklines,
        at_risk,
        risk_days,
        risk_activity,
    })
}

/// How many sources the page names for each event type.
const SOURCES_PER_TYPE: u64 = 5;

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
.quiet td.age,.risk td.reason{color:var(--quiet);font-weight:600}\
.baseline-chart .day{fill:var(--accent);opacity:.75}.baseline-chart .base{stroke:var(--quiet);stroke-dasharray:3 2}\
.sparkline{color:var(--accent);display:block}.quiet .sparkline{color:var(--quiet)}\
.bar{fill:var(--accent)}.bar:hover{fill:#1e40af}\
.axis text{fill:var(--muted);font-size:11px}.axis line{stroke:var(--line)}\
.share{height:8px;background:var(--accent);border-radius:4px;opacity:.7}\
.none{color:var(--muted)}\
code{font-size:13px}";

fn render(page: &Page) -> String {
    let (first, last) = (page.days.first(), page.days.last());
    let quiet_days = page.quiet_after.as_secs().div_ceil(86_400).max(1);
    let now = usage::rfc3339(page.now);
    let today = page.daily.last().map_or(0, |d| d.accounts);
    let peak = page.daily.iter().max_by_key(|d| (d.accounts, d.start));
    let n = page.days.len();
    let spark = |id: u64| sparkline(page.sparklines.get(&id).map(Vec::as_slice), n);
    let most = page.types.first().map_or(1, |t| t.events.max(1));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { "Account usage" }
                // A constant of this file, not stored text.
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Account usage" }
                p class="sub" {
                    (first) " to " (last) " (UTC), as of " time datetime=(now) { (now) }
                }

                section {
                    h2 { "Daily active accounts" }
                    div class="stats" {
                        div { b id="active-today" { (today) } span { "active today" } }
                        div {
                            b { (peak.map_or(0, |p| p.accounts)) }
                            span { "peak" @if let Some(p) = peak { ", " (p.start) } }
                        }
                        div {
                            b id="quiet-count" { (page.quiet_total) }
                            span { "quiet for " (quiet_days) " days or more" }
                        }
                    }
                    (chart(&page.daily))
                }

                (render_at_risk(page))

                section class="quiet" {
                    h2 { "Quiet accounts" }
                    p class="sub" {
                        "No event for " (quiet_days)
                        " days or more; never-active accounts first, then the longest quiet."
                    }
                    table id="quiet-accounts" {
                        thead { tr {
                            th { "Account" } th { "Last seen" } th { "Quiet for" }
                            th { "Signed up" } th { "Events per day, " (n) " days" }
                        } }
                        tbody {
                            @for account in page.quiet.iter().take(page.quiet_rows) {
                                tr data-account=(account.account_id) {
                                    td { (account_link(page, account.account_id)) }
                                    @match account.last_seen {
                                        Some(t) => {
                                            td { (time_tag(t)) }
                                            td class="age" { (days_between(t, page.now)) }
                                        }
                                        None => {
                                            td { span class="none" { "never" } }
                                            td class="age" { "never active" }
                                        }
                                    }
                                    td {
                                        @match account.signed_up {
                                            Some(t) => (time_tag(t)),
                                            None => span class="none" { "–" },
                                        }
                                    }
                                    td { (spark(account.account_id)) }
                                }
                            }
                            @if page.quiet.is_empty() {
                                tr { td colspan="5" class="none" { "No quiet account." } }
                            }
                        }
                    }
                    @if page.quiet_total > page.quiet.len() as u64 {
                        p class="sub" {
                            "And " (page.quiet_total - page.quiet.len() as u64) " more: see "
                            code { "inactive?days=" (quiet_days) } "."
                        }
                    }
                }

                section {
                    h2 { "Most active accounts" }
                    table id="active-accounts" {
                        thead { tr {
                            th { "Account" } th { "Events" } th { "Active days" }
                            th { "Last seen" } th { "Events per day" }
                        } }
                        tbody {
                            @for account in &page.top {
                                tr data-account=(account.account_id) {
                                    td { (account_link(page, account.account_id)) }
                                    td class="n" { (account.events) }
                                    td class="n" { (account.active_days) }
                                    td { (time_tag(account.last_seen)) }
                                    td { (spark(account.account_id)) }
                                }
                            }
                            @if page.top.is_empty() {
                                tr { td colspan="5" class="none" { "No event in these days." } }
                            }
                        }
                    }
                }

                section {
                    h2 { "Top event types" }
                    table id="event-types" {
                        thead { tr {
                            th { "Event type" } th { "Sources" } th { "Events" } th { "Accounts" }
                            th style="width:30%" {}
                        } }
                        tbody {
                            @for t in &page.types {
                                @let pct = t.events as f64 * 100.0 / most as f64;
                                tr {
                                    td { code { (t.event_type) } }
                                    td class="sources" {
                                        @for (i, source) in page.sources.get(&t.event_type).into_iter().flatten().filter(|s| !s.is_empty()).enumerate() {
                                            @if i > 0 { ", " }
                                            code { (source) }
                                        }
                                    }
                                    td class="n" { (t.events) }
                                    td class="n" { (t.accounts) }
                                    td { div class="share" style={ "width:" (format!("{pct:.1}")) "%" } {} }
                                }
                            }
                            @if page.types.is_empty() {
                                tr { td colspan="5" class="none" { "No event in these days." } }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

fn render_at_risk(page: &Page) -> Markup {
    let n = page.risk_days.len();
    html! {
        section class="risk" {
            h2 { "Accounts at risk" }
            p class="sub" {
                "Each judged against its own rhythm: silent far longer than usual, declining far \
                 below its baseline, or never active. Highest score first; the chart shows its \
                 last " (n) " days against its baseline."
            }
            table id="at-risk" {
                thead { tr {
                    th { "Account" } th { "Reason" } th { "Why" } th { "Last seen" }
                    th { "Score" } th { "Events per day against baseline" }
                } }
                tbody {
                    @for f in &page.at_risk {
                        @let reason = match f.reason {
                            Reason::Silent => "silent",
                            Reason::Declining => "declining",
                            Reason::NeverActive => "never active",
                        };
                        @let values = page.risk_activity.get(&f.account_id).map(Vec::as_slice);
                        tr data-account=(f.account_id) data-reason=(reason) {
                            td { (account_link(page, f.account_id)) }
                            td class="reason" { (reason) }
                            td { (f.explanation) }
                            td {
                                @match f.last_seen {
                                    Some(t) => (time_tag(t)),
                                    None => span class="none" { "never" },
                                }
                            }
                            td class="n" { (format!("{:.1}", f.score)) }
                            td { (baseline_chart(values, n, f.baseline_per_day)) }
                        }
                    }
                    @if page.at_risk.is_empty() {
                        tr { td colspan="6" class="none" { "No account at risk." } }
                    }
                }
            }
        }
    }
}

fn account_link(page: &Page, account_id: u64) -> Markup {
    html! {
        a href={
            (page.base) "/accounts/" (account_id) "/usage?from=" (page.days.first())
            "&to=" (page.days.last())
        } { (account_id) }
    }
}

fn time_tag(time: SystemTime) -> Markup {
    let text = usage::rfc3339(time);
    html! {
        time datetime=(text) { (text.replace('T', " ").trim_end_matches('Z')) }
    }
}

fn days_between(earlier: SystemTime, later: SystemTime) -> String {
    let days = later.duration_since(earlier).unwrap_or_default().as_secs() / 86_400;
    match days {
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
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
            quiet_total: 2,
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
            sources: [(
                "<script>alert(\"x\")</script>".to_owned(),
                vec!["billing".to_owned(), "<b>mobile</b>".to_owned()],
            )]
            .into(),
            sparklines: [(1, vec![5, 0, 7])].into(),
            at_risk: vec![
                {
                    let mut f = Finding::new(
                        12,
                        Reason::Declining,
                        "60 events/day before, <b>3</b>/day now".into(),
                        5.0,
                    );
                    f.baseline_per_day = Some(60.0);
                    f.last_seen = Some(last.start());
                    f
                },
                Finding::new(13, Reason::NeverActive, "never".into(), 2.0),
            ],
            risk_days: days,
            risk_activity: [(12, vec![60, 55, 3])].into(),
        }
    }

    #[test]
    fn admin_the_page_escapes_and_shows_everything() {
        let html = render(&sample());
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("<code>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</code>"));
        assert!(html.contains(
            "<td class=\"sources\"><code>billing</code>, <code>&lt;b&gt;mobile&lt;/b&gt;</code></td>"
        ));
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
        // The at-risk list, its reasons escaped, each with its chart against its baseline.
        assert!(html.contains("<tr data-account=\"12\" data-reason=\"declining\">"));
        assert!(html.contains("60 events/day before, &lt;b&gt;3&lt;/b&gt;/day now"));
        assert!(html.contains("<tr data-account=\"13\" data-reason=\"never active\">"));
        assert_eq!(html.matches("class=\"baseline-chart\"").count(), 2);
        assert!(html.contains("aria-label=\"118 events in 3 days; baseline 60.0 a day\""));
        // Nothing to fetch: no URL, no source, no script.
        assert!(!html.contains("http") && !html.contains("src="));
    }

    #[test]
    fn admin_stored_text_is_escaped_in_content_and_attributes() {
        let text = "a<b>&\"c'";
        let markup = html! { td title=(text) { (text) } }.into_string();
        // Attributes are always written in double quotes, so a single quote needs no escape.
        assert_eq!(
            markup,
            "<td title=\"a&lt;b&gt;&amp;&quot;c'\">a&lt;b&gt;&amp;&quot;c'</td>"
        );
        assert_eq!(html! { ("/projects/{id}") }.into_string(), "/projects/{id}");
    }
}
