//! [`Admin`]: its configuration, the guard, the JSON endpoints and their parameters.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::{Path, RawQuery, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, StatusCode, header, request::Parts};
use serde::Serialize;

#[cfg(feature = "openapi")]
#[allow(unused_imports)]
use crate::canary::Finding;
#[cfg(feature = "openapi")]
#[allow(unused_imports)]
use crate::usage::{
    AccountActivity, AccountUsage, ActiveAccounts, EventTypeCount, InactiveAccount,
};
use crate::{
    canary::Detector,
    error::{Error, Result},
    usage::{Day, Days, InactiveCursor, KnownAccount, KnownAccounts, Period, Usage},
};

#[cfg(feature = "openapi")]
use super::openapi;
use super::page::page;

type Guard = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Configures the admin router. See the [module docs](crate::admin) for its routes.
pub struct Admin {
    pub(super) usage: Usage,
    pub(super) guard: Guard,
    pub(super) known: Option<Arc<dyn KnownAccounts>>,
    pub(super) chart_days: u32,
    pub(super) quiet_after: Duration,
    pub(super) top_accounts: u64,
    pub(super) quiet_rows: usize,
    pub(super) detector: Detector,
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
/// BLAKE3 digests of the header and of the expected value are compared in constant time,
/// so that neither the token nor its length can be learnt from how long a refusal takes.
pub fn bearer(token: impl Into<String>) -> impl Fn(&Parts) -> bool + Clone + Send + Sync + 'static {
    use subtle::ConstantTimeEq;
    let expected: [u8; 32] =
        *blake3::hash(format!("Bearer {}", token.into()).as_bytes()).as_bytes();
    move |parts: &Parts| {
        let Some(given) = parts.headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let given: [u8; 32] = *blake3::hash(given.as_bytes()).as_bytes();
        given.ct_eq(&expected).into()
    }
}

/// The longest [quiet threshold](Admin::with_quiet_after): 36 500 days, the most
/// `GET /inactive?days=` takes.
const MAX_QUIET_AFTER: Duration = Duration::from_secs(36_500 * 86_400);

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
            detector: Detector::default(),
        }
    }

    /// How many days, ending today, the page charts, and the default range of the JSON
    /// endpoints. At least 1. Default: 30.
    pub fn with_chart_days(mut self, days: u32) -> Self {
        self.chart_days = days.max(1);
        self
    }

    /// How long without an event makes an account quiet on the page, and the default of
    /// `GET /inactive`, in whole days rounded up. Default: 7 days. Held to 1 second to
    /// 36 500 days: a longer threshold is taken as 36 500 days.
    pub fn with_quiet_after(mut self, threshold: Duration) -> Self {
        self.quiet_after = threshold.clamp(Duration::from_secs(1), MAX_QUIET_AFTER);
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

    /// The detector behind `GET /at-risk` and the page's at-risk list.
    /// Default: [`Detector::default`].
    pub fn with_detector(mut self, detector: Detector) -> Self {
        self.detector = detector;
        self
    }

    /// The router, to mount with [`Router::nest`] into the application's router, whatever
    /// its state.
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let state = Arc::new(self);
        let router = Router::new()
            .route("/", get(page))
            .route("/inactive", get(inactive))
            .route("/at-risk", get(at_risk))
            .route("/accounts", get(accounts))
            .route("/accounts/{id}/usage", get(account_usage))
            .route("/active", get(active))
            .route("/event-types", get(event_types));
        #[cfg(feature = "openapi")]
        let router = router.route("/openapi.json", get(super::openapi::serve));
        router
            // Behind the guard like the routes: without a token, no path tells whether it
            // exists.
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state)
    }

    pub(super) async fn known(&self) -> Result<Vec<KnownAccount>> {
        match &self.known {
            Some(source) => source.known_accounts().await.map_err(Error::KnownAccounts),
            None => Ok(Vec::new()),
        }
    }
}

pub(super) type Shared = State<Arc<Admin>>;

pub(super) async fn guard(State(admin): Shared, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if !(admin.guard)(&parts) {
        let mut response = json_error(StatusCode::UNAUTHORIZED, "unauthorized".into());
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(Request::from_parts(parts, body)).await
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not found".into())
}

pub(super) fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The body of an error answer: `{"error": "..."}`.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(super) struct ErrorBody<'a> {
    /// What went wrong.
    pub(super) error: &'a str,
}

/// `status` with `{"error": message}`.
fn json_error(status: StatusCode, message: String) -> Response {
    json(
        status,
        serde_json::to_string(&ErrorBody { error: &message }).unwrap_or_default(),
    )
}

/// A JSON answer: `no-store`, `nosniff`.
fn json(status: StatusCode, body: String) -> Response {
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    no_store(&mut response);
    response
}

/// A JSON answer, or an error as JSON.
pub(super) enum Answer {
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
        let (status, message) = match self {
            Self::Json(body) => return json(StatusCode::OK, body),
            Self::Bad(message) => (StatusCode::BAD_REQUEST, message),
            // Only until the writer has created its table, a moment after it starts.
            Self::Failed(e @ Error::TableMissing { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            Self::Failed(e @ Error::Timeout(_)) => {
                tracing::error!(error = %e, "admin query timed out");
                (StatusCode::GATEWAY_TIMEOUT, e.to_string())
            }
            Self::Failed(e @ Error::ClickHouse(clickhouse::error::Error::Network(_))) => {
                tracing::error!(error = %e, "admin query could not reach ClickHouse");
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            Self::Failed(e) => {
                tracing::error!(error = %e, "admin query failed");
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        };
        let mut response = json_error(status, message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
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
        let number = match self.0.get(name) {
            Some(text) => text.parse::<u64>().ok(),
            None => Some(default),
        };
        number.filter(|n| range.contains(n)).ok_or_else(|| {
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

/// The most accounts one `GET /inactive` lists, and how many it lists by default.
const INACTIVE_LIMIT: (u64, u64) = (10_000, 1000);

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/inactive",
    summary = "Accounts with no event for some days",
    params(
        ("days" = Option<u64>, Query, minimum = 1, maximum = 36500,
            description = "Days without an event; default: the admin's quiet threshold, in whole days."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 10000,
            description = "The most accounts to list; default: 1000."),
        ("after" = Option<String>, Query,
            description = "Where the page starts: the cursor of the `Link` header of the page before."),
    ),
    responses(
        (status = 200, description = "The quiet accounts, with their last event.", body = [InactiveAccount],
            headers(("Link" = String, description = "The next page, `<?days=..&limit=..&after=..>; rel=\"next\"`, when there is one."))),
        openapi::QueryErrors,
    ),
    security(("bearer" = [])),
))]
pub(super) async fn inactive(State(admin): Shared, RawQuery(query): RawQuery) -> Response {
    let default_days = admin.quiet_after.as_secs().div_ceil(86_400).max(1);
    let result = async {
        let params = Params::new(query);
        let days = params.number("days", default_days, 1..=36_500)?;
        let limit = params.number("limit", INACTIVE_LIMIT.1, 1..=INACTIVE_LIMIT.0)?;
        let after = params
            .0
            .get("after")
            .map(|c| c.parse::<InactiveCursor>())
            .transpose()
            .map_err(|_| Error::Config("after must be a cursor from a Link header".into()))?;
        let since = SystemTime::now()
            .checked_sub(Duration::from_secs(days * 86_400))
            .unwrap_or(UNIX_EPOCH);
        let known = admin.known().await?;
        let page = admin
            .usage
            .inactive_accounts_page(since, &known, after, limit as usize)
            .await?;
        Ok((page, days, limit))
    }
    .await;
    match result {
        Ok((page, days, limit)) => {
            let mut response = Answer::from(Ok(page.accounts)).into_response();
            if let Some(next) = page.next {
                let link = format!("<?days={days}&limit={limit}&after={next}>; rel=\"next\"");
                if let Ok(link) = HeaderValue::from_str(&link) {
                    response.headers_mut().insert(header::LINK, link);
                }
            }
            response
        }
        Err(e) => Answer::from(Err::<(), _>(e)).into_response(),
    }
}

/// An account id from the path, or `400` as JSON.
pub(super) struct AccountPath(u64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AccountPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<u64>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(_) => Err(json_error(
                StatusCode::BAD_REQUEST,
                "the account id must be a whole number from 0 to 18446744073709551615".into(),
            )),
        }
    }
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/at-risk",
    summary = "The accounts at risk now, highest score first",
    params(
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 100000,
            description = "At most this many; default: 1000."),
    ),
    responses(
        (status = 200, description = "The findings: each account, its reason (silent, declining or neverActive), its explanation and the numbers behind it.", body = [Finding]),
        openapi::QueryErrors,
    ),
    security(("bearer" = [])),
))]
pub(super) async fn at_risk(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
    let result = async {
        let limit = Params::new(query).number("limit", 1000, 1..=100_000)?;
        let known = admin.known().await?;
        let mut findings = admin
            .detector
            .detect(&admin.usage, SystemTime::now(), &known)
            .await?;
        findings.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(findings)
    }
    .await;
    result.into()
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/accounts/{id}/usage",
    summary = "One account's usage over a range of days",
    params(
        ("id" = u64, Path, description = "The account."),
        ("from" = Option<String>, Query, description = "The first day, YYYY-MM-DD; default: `to` less the chart's days."),
        ("to" = Option<String>, Query, description = "The last day, YYYY-MM-DD; default: today (UTC)."),
    ),
    responses(
        (status = 200, description = "The account's usage.", body = AccountUsage),
        openapi::QueryErrors,
    ),
    security(("bearer" = [])),
))]
pub(super) async fn account_usage(
    State(admin): Shared,
    AccountPath(account_id): AccountPath,
    RawQuery(query): RawQuery,
) -> Answer {
    let result = async {
        let days = Params::new(query).days(admin.chart_days)?;
        admin.usage.account(account_id, days).await
    }
    .await;
    result.into()
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/active",
    summary = "Active accounts per day or week",
    params(
        ("from" = Option<String>, Query, description = "The first day, YYYY-MM-DD; default: `to` less the chart's days."),
        ("to" = Option<String>, Query, description = "The last day, YYYY-MM-DD; default: today (UTC)."),
        ("period" = Option<String>, Query, description = "`day` (default) or `week`."),
    ),
    responses(
        (status = 200, description = "Active accounts per period.", body = [ActiveAccounts]),
        openapi::QueryErrors,
    ),
    security(("bearer" = [])),
))]
pub(super) async fn active(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
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

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/event-types",
    summary = "The most frequent event types",
    params(
        ("from" = Option<String>, Query, description = "The first day, YYYY-MM-DD; default: `to` less the chart's days."),
        ("to" = Option<String>, Query, description = "The last day, YYYY-MM-DD; default: today (UTC)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "How many; default 20."),
    ),
    responses(
        (status = 200, description = "Event types, most events first.", body = [EventTypeCount]),
        openapi::QueryErrors,
    ),
    security(("bearer" = [])),
))]
pub(super) async fn event_types(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
    let result = async {
        let params = Params::new(query);
        let days = params.days(admin.chart_days)?;
        let limit = params.number("limit", 20, 1..=1000)?;
        admin.usage.top_event_types(days, limit).await
    }
    .await;
    result.into()
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/accounts",
    summary = "The most active accounts",
    params(
        ("from" = Option<String>, Query, description = "The first day, YYYY-MM-DD; default: `to` less the chart's days."),
        ("to" = Option<String>, Query, description = "The last day, YYYY-MM-DD; default: today (UTC)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "How many; default 20."),
    ),
    responses(
        (status = 200, description = "Accounts, most events first.", body = [AccountActivity]),
        openapi::QueryErrors,
    ),
    security(("bearer" = [])),
))]
pub(super) async fn accounts(State(admin): Shared, RawQuery(query): RawQuery) -> Answer {
    let result = async {
        let params = Params::new(query);
        let days = params.days(admin.chart_days)?;
        let limit = params.number("limit", 20, 1..=1000)?;
        admin.usage.top_accounts(days, limit).await
    }
    .await;
    result.into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
