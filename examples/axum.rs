//! An axum app whose requests are recorded per account in ClickHouse.
//!
//! ```sh
//! scripts/clickhouse && cargo run --example axum
//! curl -H 'Authorization: Bearer demo-42' http://127.0.0.1:3000/projects/7
//! curl -H 'Authorization: Bearer demo-42' 'http://127.0.0.1:3000/search?q=invoices'
//! curl -H 'Authorization: Bearer demo-42' http://127.0.0.1:3000/billing/invoices/3
//! curl -X POST 'http://127.0.0.1:3000/login?account=7'
//! curl http://127.0.0.1:3000/event -H 'content-type: application/json' \
//!     -H 'authorization: Bearer <reporter token>' --data '{"accountId": 1, "event": "search"}'
//! ```
//!
//! `Authorization: Bearer demo-<account id>` is the toy login (a toy, do not copy it: any
//! such token authenticates as that account). Each request of an account becomes one row of `idp`.`events`, named
//! after its route (`/projects/{id}`); `/health` is left out. SIGTERM or Ctrl-C stops the
//! server, and the events still queued are written before the process exits.
//!
//! The usage dashboard is at `/admin/analytics` (JSON at `/admin/analytics/inactive?days=7`
//! and `/admin/analytics/accounts/{id}/usage`), for `Authorization: Bearer <token>` with the
//! token from `IDP_ANALYTICS_ADMIN_TOKEN` (default `admin-demo`, for the demo only). An
//! inactivity watch checks every minute for accounts quiet for a week
//! (`IDP_ANALYTICS_QUIET_DAYS` overrides) and prints a line for each one, once.
//!
//! Other services report events at `POST /event` and `POST /events`, with a reporter's
//! bearer token from `IDP_ANALYTICS_REPORTERS` (`name:token,...`); when it is unset, a
//! `demo` reporter with a fresh token is made and its token printed (on standard error).
//!
//! Environment: `PORT` (default 3000; 0 picks a free port), `CLICKHOUSE_URL` (default
//! `http://127.0.0.1:8123`; `https://` is checked against the platform's CAs and
//! `SSL_CERT_FILE`), `CLICKHOUSE_USER`, `CLICKHOUSE_PASSWORD` (default none: the server's
//! `default` user), `RUST_LOG` (default `idp_analytics=info,warn`, on standard error),
//! `IDP_ANALYTICS_DATABASE` (default `idp`),
//! `IDP_ANALYTICS_REPORTERS` (default: a `demo` reporter),
//! `IDP_ANALYTICS_SPOOL_DIR` (default none: events wait in memory only),
//! `IDP_ANALYTICS_CLUSTER` (default none: one server; with a cluster's name, the tables are
//! created `ON CLUSTER` on it, and `CLICKHOUSE_URL` may list several of its servers,
//! comma-separated: the writer goes on through them, the queries use the first),
//! `IDP_ANALYTICS_CONFIRM_WRITES=1` (default off: the reporter answers `200` once the events
//! are queued; with it, once they are in ClickHouse),
//! `IDP_ANALYTICS_LAYER` (`off` serves the same routes without the analytics layer, for
//! `scripts/load` to measure what the layer costs end to end; default on).
//! `IDP_ANALYTICS_ADMIN_TOKEN` (default `admin-demo`).
//!
//! The server is served with limits a public server needs (see `serve`): headers within
//! 10 s, an answer within 30 s, at most 512 connections at once.
//!
//! As a resource server that owns no ClickHouse: `IDP_ANALYTICS_REPORT_TO=<url of another
//! instance's /events>` and `IDP_ANALYTICS_REPORT_TOKEN=<one of its reporters' tokens>`. The
//! events then go there and nowhere else, and the reporter endpoint, the admin router and
//! the watch are off.
//!
//! With a spool, nothing accepted is lost to an outage or a crash. Try it: start the app
//! with ClickHouse unreachable (`CLICKHOUSE_URL=http://127.0.0.1:1`), send requests, kill it
//! with SIGKILL, start it again with ClickHouse reachable, stop it with SIGTERM: every
//! request is in the table, once.

use std::{
    collections::HashMap, convert::Infallible, error::Error, future::Future, pin::pin, sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::{FromRequestParts, Path, Query, Request},
    http::{StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use idp_analytics::{
    AccountId, Admin, Analytics, AnalyticsLayer, Connection, InactivityWatch, Notification,
    Reporters, Usage, admin,
    reporter::REPORTERS_ENV,
    schema::{Schema, Topology},
};
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

/// How long a client may take to send a request's headers. Without it, a client that sends
/// its headers a byte at a time holds a connection for ever (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take to be answered, its body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections open at once. Without a cap, idle connections use up the process's
/// file descriptors and nothing else gets in, `/health` included; past it, new connections
/// wait in the listen backlog until one closes (idle ones close after `HEADER_TIMEOUT`).
/// Keep it below the file limit (`ulimit -n`).
const MAX_CONNECTIONS: usize = 512;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_logging();
    let database = env_or("IDP_ANALYTICS_DATABASE", "idp");
    let port: u16 = env_or("PORT", "3000").parse()?;

    // Creates the database and table if they are absent, in the background.
    let report_to = std::env::var("IDP_ANALYTICS_REPORT_TO").ok();
    let mut builder = match &report_to {
        Some(to) => Analytics::builder_reporting_to(to, env_or("IDP_ANALYTICS_REPORT_TOKEN", "")),
        None => {
            let mut schema = Schema::new(database, "events")?;
            if let Ok(cluster) = std::env::var("IDP_ANALYTICS_CLUSTER") {
                schema = schema.with_topology(Topology::cluster(cluster)?);
            }
            Analytics::builder_with(Connection::from_env()?).with_schema(schema)
        }
    };
    if let Ok(dir) = std::env::var("IDP_ANALYTICS_SPOOL_DIR") {
        builder = builder.with_spool_dir(dir);
    }
    let analytics = builder.build()?;

    if report_to.is_some() {
        let app = app(analytics.clone(), None)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on http://{}", listener.local_addr()?);
        serve(listener, app, shutdown_signal()).await;
        let report = analytics.shutdown(Duration::from_secs(10)).await;
        println!(
            "stopped: {} events reported at shutdown, {} left unreported, {} spool segments left",
            report.written,
            report.unwritten.len(),
            report.left_in_spool
        );
        return Ok(());
    }
    // The writer's connection and tables (on its first server): nothing configured twice.
    let usage = analytics.usage();
    let app = app(analytics.clone(), Some((reporters()?, usage.clone())))?;

    // Be told, once, when an account goes quiet (and when it comes back).
    let quiet_days: u64 = env_or("IDP_ANALYTICS_QUIET_DAYS", "7").parse()?;
    let watch = InactivityWatch::builder(usage, |notification: Notification| async move {
        eprintln!("watch: {notification}");
        Ok::<_, Infallible>(())
    })
    .with_threshold(Duration::from_secs(quiet_days * 86_400))
    .with_check_interval(Duration::from_secs(60))
    .with_notify_back(true)
    .build()?
    .spawn();

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, app, shutdown_signal()).await;

    // Every connection is closed: stop the watch and write what is still queued.
    watch.stop().await;
    let report = analytics.shutdown(Duration::from_secs(10)).await;
    println!(
        "stopped: {} events written at shutdown, {} left unwritten, {} spool segments left",
        report.written,
        report.unwritten.len(),
        report.left_in_spool
    );
    Ok(())
}

/// The reporters allowed to `POST /event`: from `IDP_ANALYTICS_REPORTERS`, or a `demo`
/// reporter with a fresh token.
fn reporters() -> idp_analytics::Result<Reporters> {
    if std::env::var_os(REPORTERS_ENV).is_some() {
        return Reporters::from_env();
    }
    let token = format!("demo-{}", uuid::Uuid::new_v4().simple());
    eprintln!("{REPORTERS_ENV} is not set; the demo reporter's token is: {token}");
    Reporters::new().with("demo", &token)
}

/// The application's routes, with authentication and analytics; the `/event` endpoint;
/// the usage dashboard.
/// Without `idp` (a resource server reporting elsewhere), neither.
fn app(analytics: Analytics, idp: Option<(Reporters, Usage)>) -> idp_analytics::Result<Router> {
    let idp = idp
        .map(|(reporters, usage)| -> idp_analytics::Result<_> {
            // IDP_ANALYTICS_CONFIRM_WRITES=1: answer 200 only once the events are in ClickHouse.
            let confirm =
                std::env::var_os("IDP_ANALYTICS_CONFIRM_WRITES").is_some_and(|v| v == "1");
            let events = idp_analytics::Reporter::builder(analytics.clone(), reporters)
                .with_confirm_writes(confirm)
                .build()?
                .into_router();
            // The demo's default token is public: set IDP_ANALYTICS_ADMIN_TOKEN anywhere else.
            let admin_token = env_or("IDP_ANALYTICS_ADMIN_TOKEN", "admin-demo");
            let dashboard = Admin::new(usage, admin::bearer(admin_token)).into_router();
            Ok((events, dashboard))
        })
        .transpose()?;
    let analytics = AnalyticsLayer::builder(analytics)
        .with_skipped_routes(["/health"])
        .build()?;
    let analytics = (env_or("IDP_ANALYTICS_LAYER", "on") != "off").then_some(analytics);

    let billing = Router::new()
        .route("/invoices", get(invoices))
        .route("/invoices/{id}", get(invoice));

    let app = Router::new()
        .route("/projects/{id}", get(project))
        .route("/search", get(search))
        .route("/login", post(login))
        .route("/health", get(|| async { "ok" }))
        .nest("/billing", billing)
        // The first layer listed runs first: the account is known before analytics runs.
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(authenticate))
                .option_layer(analytics),
        );
    // After the layers: reports are recorded by the endpoint itself, and the dashboard
    // is not product usage.
    let app = match idp {
        Some((events, dashboard)) => app.merge(events).nest("/admin/analytics", dashboard),
        None => app,
    };
    // Every request, the reporter endpoint's and the dashboard's included.
    Ok(app.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    )))
}

/// Serves `app` on `listener` until `signal`, then lets open requests finish (10 s at most).
///
/// `axum::serve` is simpler, but sets no header timeout and no connection cap, which a
/// server open to the internet needs: hyper's `header_read_timeout` works only with a timer
/// (`TokioTimer`), and the cap is a semaphore around `accept`.
async fn serve(listener: tokio::net::TcpListener, app: Router, signal: impl Future<Output = ()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let connections = GracefulShutdown::new();
    let mut signal = pin!(signal);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut signal => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    eprintln!("accept: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), connections.shutdown())
        .await
        .is_err()
    {
        eprintln!("some connections were still open after 10 s");
    }
}

/// The toy login: `Authorization: Bearer demo-<account id>` authenticates as that account.
/// A toy, do not copy: anyone can claim any account. Verify a real session or token here.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let account = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer demo-"))
        .and_then(|id| id.parse().ok());
    if let Some(account) = account {
        request.extensions_mut().insert(AccountId(account));
    }
    next.run(request).await
}

/// The authenticated account; `401 Unauthorized` when there is none.
struct Caller(u64);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let account = parts.extensions.get::<AccountId>();
        account.map(|id| Self(id.0)).ok_or(StatusCode::UNAUTHORIZED)
    }
}

async fn project(Caller(account): Caller, Path(id): Path<u64>) -> String {
    format!("project {id} of account {account}\n")
}

async fn search(Caller(account): Caller, Query(params): Query<HashMap<String, String>>) -> String {
    let q = params.get("q").map_or("", String::as_str);
    format!("no results for {q:?} in account {account}\n")
}

async fn invoices(Caller(account): Caller) -> String {
    format!("invoices of account {account}\n")
}

async fn invoice(Caller(account): Caller, Path(id): Path<u64>) -> String {
    format!("invoice {id} of account {account}\n")
}

/// Logs in as `?account=<id>`. The request has no account yet; the response carries it,
/// and the login is recorded under it. A toy, do not copy: it checks no password.
async fn login(Query(params): Query<HashMap<String, String>>) -> Response {
    let Some(account) = params.get("account").and_then(|id| id.parse::<u64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "usage: POST /login?account=<id>\n").into_response();
    };
    let mut response = format!("token: demo-{account}\n").into_response();
    response.extensions_mut().insert(AccountId(account));
    response
}

/// Logs to standard error, filtered by `RUST_LOG` (default: the writer's `info`, others'
/// warnings). The writer says there why it is paused, and when it resumes.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("idp_analytics=info,warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
