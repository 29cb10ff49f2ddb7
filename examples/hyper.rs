//! The same app as the axum example, on plain hyper 1: a small matchit router names each
//! request with a [`RouteName`], and the layer is applied with `tower::ServiceBuilder`.
//!
//! ```sh
//! scripts/clickhouse && cargo run --example hyper
//! curl -H 'Authorization: Bearer demo-42' http://127.0.0.1:3000/projects/7
//! curl -H 'Authorization: Bearer demo-42' 'http://127.0.0.1:3000/search?q=invoices'
//! curl -H 'Authorization: Bearer demo-42' http://127.0.0.1:3000/billing/invoices/3
//! curl -X POST 'http://127.0.0.1:3000/login?account=7'
//! curl http://127.0.0.1:3000/event -H 'content-type: application/json' \
//!     -H 'authorization: Bearer <reporter token>' --data '{"accountId": 1, "event": "search"}'
//! ```
//!
//! `Authorization: Bearer demo-<account id>` is the toy login (a toy, do not copy it: any
//! such token authenticates as that account). SIGTERM or Ctrl-C stops the
//! server: open connections finish, then the events still queued are written. `/event` and
//! `/events` are the reporter endpoint, served as a plain tower `Service`, with reporters
//! from `IDP_ANALYTICS_REPORTERS` (`name:token,...`; when unset, a `demo` reporter with a
//! fresh token, printed on standard error).
//!
//! Environment: `PORT` (default 3000; 0 picks a free port), `CLICKHOUSE_URL` (default
//! `http://127.0.0.1:8123`; `https://` is checked against the platform's CAs and
//! `SSL_CERT_FILE`), `CLICKHOUSE_USER`, `CLICKHOUSE_PASSWORD` (default none: the server's
//! `default` user), `RUST_LOG` (default `idp_analytics=info,warn`, on standard error),
//! `IDP_ANALYTICS_DATABASE` (default `idp`),
//! `IDP_ANALYTICS_REPORTERS`.
//!
//! Served with limits a public server needs: headers within 10 s (hyper's
//! `header_read_timeout`, which needs a timer), an answer within 30 s, at most 512
//! connections at once.

use std::{convert::Infallible, error::Error, pin::pin, sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use idp_analytics::{
    AccountId, Analytics, AnalyticsLayer, Connection, Reporter, Reporters, RouteName,
    reporter::REPORTERS_ENV, schema::Schema,
};
use tower::{ServiceBuilder, ServiceExt};

/// How long a client may take to send a request's headers. Without it (and without a timer,
/// which makes it work), a client that sends its headers a byte at a time holds a
/// connection for ever (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take to be answered, its body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections open at once. Without a cap, idle connections use up the process's
/// file descriptors and nothing else gets in, `/health` included; past it, new connections
/// wait in the listen backlog until one closes. Keep it below the file limit (`ulimit -n`).
const MAX_CONNECTIONS: usize = 512;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_logging();
    let database = env_or("IDP_ANALYTICS_DATABASE", "idp");
    let port: u16 = env_or("PORT", "3000").parse()?;

    let analytics = Analytics::builder_with(Connection::from_env()?)
        .with_schema(Schema::new(database, "events")?)
        .build()?;

    let router = Arc::new(Router::new()?);
    // Listed in the order they run: route, authenticate, record, handle.
    let app = ServiceBuilder::new()
        .map_request(move |request| router.route(request))
        .map_request(authenticate)
        .layer(
            AnalyticsLayer::builder(analytics.clone())
                .with_skipped_routes(["/health"])
                .build()?,
        )
        .service_fn(handle);
    // `/event` and `/events` go to the reporter endpoint, everything else to the app.
    let reporter = Reporter::new(analytics.clone(), reporters()?).service();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let report = matches!(request.uri().path(), "/event" | "/events");
        let (reporter, app) = (reporter.clone(), app.clone());
        let answer = async move {
            Ok::<_, Infallible>(if report {
                reporter.oneshot(request).await?.map(Either::Left)
            } else {
                app.oneshot(request).await?.map(Either::Right)
            })
        };
        async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
                Ok(answer) => answer,
                Err(_) => {
                    let mut late = Response::new(Either::Right(Full::from("request timeout\n")));
                    *late.status_mut() = StatusCode::REQUEST_TIMEOUT;
                    Ok(late)
                }
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);

    let connections = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut stop = pin!(shutdown_signal());
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
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
            () = &mut stop => break,
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(service.clone()),
            );
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("connection: {error}");
            }
            drop(slot);
        });
    }
    drop(listener);

    // Let open connections finish their requests, then write what is still queued.
    if tokio::time::timeout(Duration::from_secs(10), connections.shutdown())
        .await
        .is_err()
    {
        eprintln!("some connections were still open after 10 s");
    }
    let report = analytics.shutdown(Duration::from_secs(10)).await;
    println!(
        "stopped: {} events written at shutdown, {} left unwritten",
        report.written,
        report.unwritten.len()
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

/// What a route does.
#[derive(Clone, Copy, Debug)]
enum Handler {
    Project,
    Search,
    Login,
    Health,
    Invoices,
    Invoice,
}

/// The route a request matched: its handler and its `{id}`, if it has one.
#[derive(Clone, Debug)]
struct Matched {
    handler: Handler,
    id: Option<String>,
}

/// A small router: route templates to handlers, and a nested router under `/billing`.
struct Router(matchit::Router<(RouteName, Handler)>);

impl Router {
    fn new() -> Result<Self, matchit::InsertError> {
        let billing = [
            ("/invoices", Handler::Invoices),
            ("/invoices/{id}", Handler::Invoice),
        ];
        let routes = [
            ("/projects/{id}", Handler::Project),
            ("/search", Handler::Search),
            ("/login", Handler::Login),
            ("/health", Handler::Health),
        ];
        let mut router = matchit::Router::new();
        for (path, handler) in routes {
            router.insert(path, (RouteName::from_static(path), handler))?;
        }
        // Nested routes are named by their whole template, as axum names them.
        for (path, handler) in billing {
            let path = format!("/billing{path}");
            router.insert(path.clone(), (RouteName::from(path), handler))?;
        }
        Ok(Self(router))
    }

    /// Puts the matched route's [`RouteName`] on the request, for the analytics layer, and
    /// its handler, for `handle`. A request that matches no route gets neither.
    fn route<B>(&self, mut request: Request<B>) -> Request<B> {
        if let Ok(found) = self.0.at(request.uri().path()) {
            let (name, handler) = found.value.clone();
            let id = found.params.get("id").map(str::to_owned);
            request.extensions_mut().insert(name);
            request.extensions_mut().insert(Matched { handler, id });
        }
        request
    }
}

/// The toy login: `Authorization: Bearer demo-<account id>` authenticates as that account.
/// A toy, do not copy: anyone can claim any account. Verify a real session or token here.
fn authenticate<B>(mut request: Request<B>) -> Request<B> {
    let account = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer demo-"))
        .and_then(|id| id.parse().ok());
    if let Some(account) = account {
        request.extensions_mut().insert(AccountId(account));
    }
    request
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(matched) = request.extensions().get::<Matched>().cloned() else {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n".into()));
    };
    let account = request.extensions().get::<AccountId>().map(|id| id.0);
    let query = |name: &str| {
        let query = request.uri().query().unwrap_or("");
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    };
    let id = matched.id.unwrap_or_default();
    let expected = match matched.handler {
        Handler::Login => Method::POST,
        _ => Method::GET,
    };
    if request.method() != expected {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, String::new()));
    }
    let body = match (matched.handler, account) {
        (Handler::Health, _) => "ok".to_owned(),
        (Handler::Login, _) => {
            // The request has no account yet; the response carries it, and the login is
            // recorded under it.
            let Some(account) = query("account").and_then(|id| id.parse::<u64>().ok()) else {
                let usage = "usage: POST /login?account=<id>\n".to_owned();
                return Ok(text(StatusCode::BAD_REQUEST, usage));
            };
            let mut response = text(StatusCode::OK, format!("token: demo-{account}\n"));
            response.extensions_mut().insert(AccountId(account));
            return Ok(response);
        }
        (_, None) => return Ok(text(StatusCode::UNAUTHORIZED, String::new())),
        (Handler::Project, Some(account)) => format!("project {id} of account {account}\n"),
        (Handler::Search, Some(account)) => {
            let q = query("q").unwrap_or_default();
            format!("no results for {q:?} in account {account}\n")
        }
        (Handler::Invoices, Some(account)) => format!("invoices of account {account}\n"),
        (Handler::Invoice, Some(account)) => format!("invoice {id} of account {account}\n"),
    };
    Ok(text(StatusCode::OK, body))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
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
