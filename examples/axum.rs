//! An axum app whose requests are recorded per account in ClickHouse.
//!
//! ```sh
//! scripts/clickhouse && cargo run --example axum
//! curl -H 'Authorization: Bearer demo-42' http://127.0.0.1:3000/projects/7
//! curl -H 'Authorization: Bearer demo-42' 'http://127.0.0.1:3000/search?q=invoices'
//! curl -H 'Authorization: Bearer demo-42' http://127.0.0.1:3000/billing/invoices/3
//! curl -X POST 'http://127.0.0.1:3000/login?account=7'
//! curl -X POST 'http://127.0.0.1:3000/login/jwt?account=7'
//! curl -H 'Authorization: Bearer <its access_token>' http://127.0.0.1:3000/projects/7
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
//! `scripts/load` to measure what the layer costs end to end; default on),
//! `IDP_ANALYTICS_ADMIN_TOKEN` (default `admin-demo`),
//! `IDP_ANALYTICS_JWT_KEY` (the IdP's signing key; default a fresh one),
//! `IDP_ANALYTICS_JWT_ISSUER` (the IdP: the `iss` it writes, default `http://<its address>`;
//! a resource server: the IdP it takes tokens from, default none: no JWTs),
//! `IDP_ANALYTICS_JWT_AUDIENCE` (the `aud` written and required, default
//! `idp-analytics-demo`).
//!
//! The server is served with limits a public server needs (see `serve`): headers within
//! 10 s, an answer within 30 s, at most 512 connections at once.
//!
//! As a resource server that owns no ClickHouse: `IDP_ANALYTICS_REPORT_TO=<url of another
//! instance's /events>` and `IDP_ANALYTICS_REPORT_TOKEN=<one of its reporters' tokens>`. The
//! events then go there and nowhere else, and the reporter endpoint, the admin router and
//! the watch are off.
//!
//! Accounts from the IdP's tokens. The IdP (the instance with ClickHouse) issues signed
//! access tokens at `POST /login/jwt?account=<id>` (an OAuth 2.0 token response:
//! `{"access_token": "<JWT>", "token_type": "Bearer", "expires_in": 900}`; a demo, do not
//! copy as is: it checks no password). The JWT is EdDSA (Ed25519), with the claims `iss`,
//! `aud`, `sub`, `iat`, `exp` (15 minutes on) and `account_id`, and names its key by `kid`
//! (the key's RFC 7638 thumbprint). The IdP publishes the public key as a JWK set at
//! `GET /.well-known/jwks.json`. Its signing key is `IDP_ANALYTICS_JWT_KEY` (an Ed25519
//! private key in PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it); unset, a
//! fresh key is made at start (a demo shortcut: the tokens die with the process, and two
//! IdP instances would not share it). A resource server started with
//! `IDP_ANALYTICS_JWT_ISSUER=<the IdP's URL>` fetches `<that URL>/.well-known/jwks.json`
//! at start (trying for 30 s while the IdP starts; `http://` only, once: demo shortcuts, see
//! `jwt::Verifier::fetch`) and takes `Authorization: Bearer <JWT>`: the signature (EdDSA
//! only, by a key of the set), `exp` (60 s of leeway), `aud` and `iss` are checked, and the
//! token's `account_id` becomes the request's `AccountId`. An invalid token is answered
//! `401` with `WWW-Authenticate: Bearer error="invalid_token"` and the reason, and is not
//! recorded. The IdP takes its own tokens the same way. `Bearer demo-<id>` works beside
//! them in both roles.
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
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let audience = env_or("IDP_ANALYTICS_JWT_AUDIENCE", jwt::DEFAULT_AUDIENCE);

    if report_to.is_some() {
        // Tokens from the IdP at IDP_ANALYTICS_JWT_ISSUER, verified with its published keys.
        let verifier = match std::env::var("IDP_ANALYTICS_JWT_ISSUER") {
            Ok(issuer) => Some(Arc::new(jwt::Verifier::fetch(&issuer, &audience).await?)),
            Err(_) => None,
        };
        let app = app(analytics.clone(), None, verifier)?;
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
    // The IdP's tokens name it as their issuer: its own URL unless told otherwise.
    let address = listener.local_addr()?;
    let issuer =
        std::env::var("IDP_ANALYTICS_JWT_ISSUER").unwrap_or_else(|_| format!("http://{address}"));
    let issuer = Arc::new(jwt::Issuer::from_env(issuer, audience)?);
    let verifier = Some(Arc::new(issuer.verifier()?));
    let idp = Idp {
        reporters: reporters()?,
        usage: usage.clone(),
        issuer,
    };
    let app = app(analytics.clone(), Some(idp), verifier)?;

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

/// What only the IdP serves: the reporter endpoint, the dashboard, the token login and its
/// public keys.
struct Idp {
    reporters: Reporters,
    usage: Usage,
    issuer: Arc<jwt::Issuer>,
}

/// The application's routes, with authentication (JWTs checked by `verifier`, and the toy
/// login) and analytics; with `idp`, the `/event` endpoint, the usage dashboard, the JWT
/// login and `/.well-known/jwks.json`. Without it (a resource server reporting elsewhere),
/// none of those.
fn app(
    analytics: Analytics,
    idp: Option<Idp>,
    verifier: Option<Arc<jwt::Verifier>>,
) -> idp_analytics::Result<Router> {
    let idp = idp
        .map(|idp| -> idp_analytics::Result<_> {
            let Idp {
                reporters,
                usage,
                issuer,
            } = idp;
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
            Ok((events, dashboard, issuer))
        })
        .transpose()?;
    let analytics = AnalyticsLayer::builder(analytics)
        .with_skipped_routes(["/health"])
        .build()?;
    let analytics = (env_or("IDP_ANALYTICS_LAYER", "on") != "off").then_some(analytics);

    let billing = Router::new()
        .route("/invoices", get(invoices))
        .route("/invoices/{id}", get(invoice));

    let mut app = Router::new()
        .route("/projects/{id}", get(project))
        .route("/search", get(search))
        .route("/login", post(login))
        .route("/health", get(|| async { "ok" }))
        .nest("/billing", billing);
    if let Some((_, _, issuer)) = &idp {
        app = app.route("/login/jwt", post(jwt::login).with_state(issuer.clone()));
    }
    // The first layer listed runs first: the account is known before analytics runs, and a
    // request with an invalid token is answered 401 before analytics sees it.
    let app = app.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(verifier, jwt::authenticate))
            .layer(middleware::from_fn(authenticate))
            .option_layer(analytics),
    );
    // After the layers: reports are recorded by the endpoint itself, and the dashboard and
    // the public keys are not product usage.
    let app = match idp {
        Some((events, dashboard, issuer)) => app
            .merge(events)
            .nest("/admin/analytics", dashboard)
            .route(jwt::JWKS_PATH, get(jwt::jwks).with_state(issuer)),
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

/// Access tokens: the IdP signs them, resource servers verify them. EdDSA (Ed25519) through
/// `jsonwebtoken`; the public key is published as a JWK set at `/.well-known/jwks.json`.
mod jwt {
    use std::{collections::HashMap, error::Error, time::Duration};

    use axum::{
        Json,
        extract::{Query, Request, State},
        http::{HeaderValue, StatusCode, header},
        middleware::Next,
        response::{IntoResponse, Response},
    };
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Limited};
    use idp_analytics::AccountId;
    use jsonwebtoken::{
        Algorithm, DecodingKey, EncodingKey, Header, Validation,
        errors::ErrorKind,
        jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash},
    };
    use serde::{Deserialize, Serialize};

    /// The audience tokens are issued for and checked against, unless
    /// `IDP_ANALYTICS_JWT_AUDIENCE` says otherwise.
    pub(crate) const DEFAULT_AUDIENCE: &str = "idp-analytics-demo";
    /// How long an issued token is valid.
    const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
    /// The path of the IdP's public keys.
    pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";
    /// PKCS#8 v1 prefix of an Ed25519 private key: the 32-byte seed follows.
    const ED25519_PKCS8_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];

    /// What the IdP's tokens say. `account_id` is the account (tenant) the caller acts for;
    /// the demo has no users, so `sub` is that account too.
    #[derive(Serialize, Deserialize)]
    struct Claims {
        iss: String,
        aud: String,
        sub: String,
        iat: u64,
        exp: u64,
        account_id: u64,
    }

    /// The IdP's signing key and the tokens it issues.
    pub(crate) struct Issuer {
        key: EncodingKey,
        kid: String,
        jwks: JwkSet,
        issuer: String,
        audience: String,
    }

    impl Issuer {
        /// The key from `IDP_ANALYTICS_JWT_KEY` (an Ed25519 private key, PKCS#8 PEM, as
        /// `openssl genpkey -algorithm ed25519` writes it), or a fresh one.
        pub(crate) fn from_env(issuer: String, audience: String) -> Result<Self, Box<dyn Error>> {
            let key = match std::env::var("IDP_ANALYTICS_JWT_KEY") {
                Ok(pem) => EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| {
                    "IDP_ANALYTICS_JWT_KEY is not an Ed25519 private key in PKCS#8 PEM \
                     (openssl genpkey -algorithm ed25519)"
                })?,
                // Demo, do not copy as is: a key made at start dies with the process (every
                // token with it), and two instances of the IdP would not share it.
                Err(_) => {
                    let mut der = ED25519_PKCS8_PREFIX.to_vec();
                    let mut seed = [0; 32];
                    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
                    der.extend_from_slice(&seed);
                    EncodingKey::from_ed_der(&der)
                }
            };
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA)
                .map_err(|e| format!("IDP_ANALYTICS_JWT_KEY: {e}"))?;
            // RFC 7638: the key's id is its thumbprint, the same on every instance.
            let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
            jwk.common.key_id = Some(kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            Ok(Self {
                key,
                kid,
                jwks: JwkSet { keys: vec![jwk] },
                issuer,
                audience,
            })
        }

        /// A token for `account`, valid for [`TOKEN_LIFETIME`].
        fn issue(&self, account: u64) -> jsonwebtoken::errors::Result<String> {
            let now = jsonwebtoken::get_current_timestamp();
            let claims = Claims {
                iss: self.issuer.clone(),
                aud: self.audience.clone(),
                sub: account.to_string(),
                iat: now,
                exp: now + TOKEN_LIFETIME.as_secs(),
                account_id: account,
            };
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, &claims, &self.key)
        }

        /// A verifier of this issuer's own tokens.
        pub(crate) fn verifier(&self) -> Result<Verifier, Box<dyn Error>> {
            Verifier::new(&self.jwks, &self.issuer, &self.audience)
        }
    }

    /// `POST /login/jwt?account=<id>`: an access token for that account, in the form of an
    /// OAuth 2.0 token response. The login is recorded under the account, as the toy
    /// `/login` is. Demo, do not copy as is: it checks no password.
    pub(crate) async fn login(
        State(issuer): State<std::sync::Arc<Issuer>>,
        Query(params): Query<HashMap<String, String>>,
    ) -> Response {
        let Some(account) = params.get("account").and_then(|id| id.parse::<u64>().ok()) else {
            return (
                StatusCode::BAD_REQUEST,
                "usage: POST /login/jwt?account=<id>\n",
            )
                .into_response();
        };
        let Ok(token) = issuer.issue(account) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let body = serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
        });
        let mut response = Json(body).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.extensions_mut().insert(AccountId(account));
        response
    }

    /// `GET /.well-known/jwks.json`: the public keys that verify the IdP's tokens.
    pub(crate) async fn jwks(State(issuer): State<std::sync::Arc<Issuer>>) -> Response {
        let mut response = Json(&issuer.jwks).into_response();
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        response
    }

    /// Checks a token's signature (EdDSA only, by a key of the IdP's set), its expiry
    /// (`exp`, with 60 s of leeway for clocks apart), its audience and its issuer.
    pub(crate) struct Verifier {
        keys: HashMap<String, DecodingKey>,
        validation: Validation,
    }

    /// The part of the claims a resource server reads; `exp`, `aud` and `iss` are checked
    /// by [`Validation`].
    #[derive(Deserialize)]
    struct Account {
        account_id: u64,
    }

    impl Verifier {
        fn new(jwks: &JwkSet, issuer: &str, audience: &str) -> Result<Self, Box<dyn Error>> {
            let keys = jwks
                .keys
                .iter()
                .filter(|jwk| jwk.common.key_algorithm == Some(KeyAlgorithm::EdDSA))
                .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::OctetKeyPair(_)))
                .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk))))
                .map(|(kid, key)| Ok((kid, key?)))
                .collect::<jsonwebtoken::errors::Result<HashMap<_, _>>>()?;
            if keys.is_empty() {
                return Err("the IdP's JWK set has no EdDSA key with a kid".into());
            }
            let mut validation = Validation::new(Algorithm::EdDSA);
            validation.set_issuer(&[issuer]);
            validation.set_audience(&[audience]);
            validation.set_required_spec_claims(&["exp", "aud", "iss"]);
            Ok(Self { keys, validation })
        }

        /// Fetches the IdP's keys from `<issuer>/.well-known/jwks.json`, trying for up to
        /// 30 s while the IdP starts. Demo, do not copy as is: the set is read once, so a
        /// key the IdP adds later is unknown here; a real resource server fetches it over
        /// HTTPS and again when a token names a `kid` it does not know (at most once a
        /// minute, say).
        pub(crate) async fn fetch(issuer: &str, audience: &str) -> Result<Self, Box<dyn Error>> {
            let url = format!("{}{JWKS_PATH}", issuer.trim_end_matches('/'));
            if !url.starts_with("http://") {
                return Err(format!(
                    "IDP_ANALYTICS_JWT_ISSUER: this example reads the keys over http:// only, \
                     not {url}"
                )
                .into());
            }
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Empty<Bytes>>();
            let mut last = String::new();
            for _ in 0..60 {
                let attempt = async {
                    let response = client.get(url.parse()?).await?;
                    if response.status() != StatusCode::OK {
                        return Err(format!("{url} answered {}", response.status()).into());
                    }
                    // A key set is small: refuse to read more than 64 KiB of it.
                    let body = Limited::new(response.into_body(), 64 << 10);
                    let body = body.collect().await?.to_bytes();
                    Ok::<JwkSet, Box<dyn Error + Send + Sync>>(serde_json::from_slice(&body)?)
                };
                match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                    Ok(Ok(jwks)) => return Self::new(&jwks, issuer, audience),
                    Ok(Err(error)) => last = error.to_string(),
                    Err(_) => last = "no answer within 5 s".into(),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(format!("cannot read the IdP's keys at {url}: {last}").into())
        }

        /// The account of a valid token, or why it is not valid (safe to show the caller:
        /// it says nothing of the token).
        pub(crate) fn verify(&self, token: &str) -> Result<u64, &'static str> {
            let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
            let kid = header.kid.ok_or("no kid")?;
            let key = self.keys.get(&kid).ok_or("unknown kid")?;
            match jsonwebtoken::decode::<Account>(token, key, &self.validation) {
                Ok(data) => Ok(data.claims.account_id),
                Err(error) => Err(match error.kind() {
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::MissingRequiredClaim(_) => "missing claim",
                    ErrorKind::InvalidAlgorithm => "algorithm not accepted",
                    _ => "invalid token",
                }),
            }
        }
    }

    /// The middleware: `Authorization: Bearer <JWT>` authenticates as the token's account,
    /// which goes in the request's [`AccountId`] for the layer; an invalid token is `401`
    /// before anything records it. `Bearer demo-<id>` (the toy login) and requests without
    /// a token go on to the next step as they are.
    pub(crate) async fn authenticate(
        State(verifier): State<Option<std::sync::Arc<Verifier>>>,
        mut request: Request,
        next: Next,
    ) -> Response {
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .filter(|token| !token.starts_with("demo-"));
        if let (Some(token), Some(verifier)) = (bearer, verifier) {
            match verifier.verify(token) {
                Ok(account) => {
                    request.extensions_mut().insert(AccountId(account));
                }
                Err(why) => {
                    let challenge =
                        format!("Bearer error=\"invalid_token\", error_description=\"{why}\"");
                    let mut response =
                        (StatusCode::UNAUTHORIZED, format!("invalid token: {why}\n"))
                            .into_response();
                    if let Ok(value) = HeaderValue::from_str(&challenge) {
                        response
                            .headers_mut()
                            .insert(header::WWW_AUTHENTICATE, value);
                    }
                    return response;
                }
            }
        }
        next.run(request).await
    }
}
