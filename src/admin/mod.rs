//! The read-only admin router: JSON endpoints for the usage questions, and one HTML page.
//!
//! [`Admin::into_router`] makes an axum [`Router`](axum::Router) to mount where the application likes,
//! typically at `/admin/analytics`. Every request goes through the guard the application
//! supplies first (a predicate over the request's head); a request it refuses gets
//! `401 Unauthorized` and reads nothing. Nothing in it writes.
//!
//! | Route | Answer |
//! |-------|--------|
//! | `GET /` | The dashboard: daily active accounts as a chart, the accounts at risk with their reasons and their recent activity against their baseline, the quiet accounts with their last-seen time, the most active accounts, each with a sparkline of its events per day, and the top event types. Server-rendered HTML with inline SVG: no script, nothing fetched from elsewhere (its `Content-Security-Policy` says so to the browser). |
//! | `GET /inactive?days=N` | Accounts with no event for `N` days (default: the [quiet threshold](Admin::with_quiet_after)), never-active known accounts included: `[{"accountId": 42, "lastSeen": "2024-05-01T10:00:00Z", "signedUp": null}]`, longest quiet first. `lastSeen` is `null` for an account that never had an event. |
//! | `GET /at-risk?limit=N` | The accounts at risk now, by the [detector](Admin::with_detector), highest score first (at most `N`, default 1000): `[{"accountId": 42, "reason": "silent", "lastSeen": "2024-05-01T10:00:00Z", "score": 1.5, "explanation": "usually active every weekday; silent 3 days; its longest gap in 90 days was 1 day", ...}]`, `reason` one of `"silent"`, `"declining"` and `"neverActive"`, with the numbers behind it (see [`Finding`](crate::canary::Finding)). |
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

mod chart;
#[cfg(feature = "openapi")]
mod openapi;
mod page;
mod router;

pub use router::{Admin, bearer};
