//! [`AnalyticsLayer`]: the configuration, behind one `Arc`, and its builder.

use std::{fmt, sync::Arc};

use tower::Layer;

use crate::{
    account::ExtractAccount,
    error::{Error, Result},
    event::{Source, validate_event_type},
    future::Target,
    route::{NameEvent, RouteName, SkipRequest},
    service::{AnalyticsService, Config},
    writer::Analytics,
};

/// A tower layer that records each request of an account as a usage event, named after
/// the route it matched.
///
/// For every request it finds the account ([`ExtractAccount`]; by default the
/// [`AccountId`](crate::AccountId) an authentication middleware put in the request
/// extensions) and the route ([`route`](crate::route): a [`RouteName`] extension, or
/// axum's `MatchedPath`). When the response head is ready it enqueues an [`Event`](crate::Event)
/// with the account, the route, the method, the status and the latency, through
/// [`Analytics::try_record`], which never waits.
///
/// - Requests without an account are not recorded, unless
///   [`with_anonymous_account`](AnalyticsLayerBuilder::with_anonymous_account) says under
///   which id to record them. An [`AccountId`](crate::AccountId) in the *response*
///   extensions (set by a login handler) overrides both.
/// - Requests that matched no route are not recorded, unless
///   [`with_unmatched_name`](AnalyticsLayerBuilder::with_unmatched_name) gives them one
///   fixed name. They are never named by their path.
/// - A response future dropped before completion (the client went away) still records its
///   event, with status `0`; so does a request whose inner service failed.
/// - If the writer's queue is full or the writer is closed, the event is dropped and
///   counted in [`Analytics::stats`]; the request goes on untouched.
///
/// The layer never reads the request body, never changes the request or the response,
/// and its service's error is the inner service's. Cloning the layer, and applying it,
/// clone one `Arc`.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use idp_analytics::{AccountId, Analytics, AnalyticsLayer, RouteName};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // The worker is not started, so that this example writes nothing.
/// # let (analytics, _worker) = Analytics::builder("http://127.0.0.1:8123").build_pair()?;
/// let service = ServiceBuilder::new()
///     .layer(AnalyticsLayer::new(analytics.clone()))
///     .service(service_fn(|_: Request<()>| async {
///         Ok::<_, Infallible>(Response::new(()))
///     }));
///
/// // A router put the route's name on the request; authentication put the account.
/// let mut request = Request::get("/projects/8123").body(())?;
/// request.extensions_mut().insert(RouteName::from_static("/projects/{id}"));
/// request.extensions_mut().insert(AccountId(42));
///
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(analytics.stats().enqueued, 1);
/// # Ok(())
/// # }
/// ```
///
/// With axum, add it to the router with `Router::layer` (see
/// [`route`](crate::route#axum-routerlayer-or-routerroute_layer) for what that means for
/// fallback requests):
///
/// ```
/// use axum::{Router, routing::get};
/// use idp_analytics::{Analytics, AnalyticsLayer};
///
/// # fn app(analytics: Analytics) -> Router {
/// let app = Router::new()
///     .route("/projects/{id}", get(|| async { "project" }))
///     .layer(AnalyticsLayer::new(analytics));
/// # app
/// # }
/// ```
#[derive(Clone)]
pub struct AnalyticsLayer {
    config: Arc<Config>,
}

impl AnalyticsLayer {
    /// A layer with every default: the account from the [`AccountId`](crate::AccountId)
    /// request extension, events named after the route, anonymous and unmatched requests
    /// not recorded, nothing skipped.
    pub fn new(analytics: Analytics) -> Self {
        Self {
            config: Arc::new(AnalyticsLayerBuilder::new(analytics).config()),
        }
    }

    /// Starts configuring a layer that records through `analytics`.
    pub fn builder(analytics: Analytics) -> AnalyticsLayerBuilder {
        AnalyticsLayerBuilder::new(analytics)
    }
}

impl fmt::Debug for AnalyticsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnalyticsLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Layer<S> for AnalyticsLayer {
    type Service = AnalyticsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AnalyticsService::new(inner, Arc::clone(&self.config))
    }
}

/// Configures an [`AnalyticsLayer`]. Made by [`AnalyticsLayer::builder`].
///
/// Every `with_*` method states its default; [`build`](Self::build) checks the whole
/// configuration.
///
/// Methods that take an extension point ([`ExtractAccount`], [`NameEvent`],
/// [`SkipRequest`]) take closures over the request head too; write the argument's type,
/// `|parts: &http::request::Parts| ...`, so that the compiler knows it.
pub struct AnalyticsLayerBuilder {
    analytics: Analytics,
    source: Source,
    /// `None`: the [`FromAccountId`](crate::account::FromAccountId) default, read without
    /// splitting the request.
    extractor: Option<Box<dyn ExtractAccount>>,
    anonymous: Option<u64>,
    namer: Option<Box<dyn NameEvent>>,
    unmatched: Option<RouteName>,
    skipped_routes: Vec<Box<str>>,
    skip: Option<Box<dyn SkipRequest>>,
}

impl AnalyticsLayerBuilder {
    fn new(analytics: Analytics) -> Self {
        Self {
            analytics,
            source: Source::layer(),
            extractor: None,
            anonymous: None,
            namer: None,
            unmatched: None,
            skipped_routes: Vec::new(),
            skip: None,
        }
    }

    /// How to find the account of a request. Default:
    /// [`FromAccountId`](crate::account::FromAccountId), the [`AccountId`](crate::AccountId)
    /// in the request extensions. See [`account`](crate::account) for the built-in
    /// extractors.
    ///
    /// Whatever the extractor says, an [`AccountId`](crate::AccountId) in the response
    /// extensions is the account the event is recorded under.
    pub fn with_account(mut self, extractor: impl ExtractAccount) -> Self {
        self.extractor = Some(Box::new(extractor));
        self
    }

    /// Records requests without an account under `account_id`. Default: such requests are
    /// not recorded.
    pub fn with_anonymous_account(mut self, account_id: u64) -> Self {
        self.anonymous = Some(account_id);
        self
    }

    /// Names events with `namer` instead of the built-in [`route_name`](crate::route::route_name).
    /// A request it gives no name is handled as unmatched. Default: the request's
    /// [`RouteName`] extension, else axum's `MatchedPath`.
    pub fn with_event_names(mut self, namer: impl NameEvent) -> Self {
        self.namer = Some(Box::new(namer));
        self
    }

    /// Records requests that matched no route under the one event type `name` (such as
    /// `"unmatched"`). Default: such requests are not recorded.
    pub fn with_unmatched_name(mut self, name: impl Into<RouteName>) -> Self {
        self.unmatched = Some(name.into());
        self
    }

    /// Does not record requests whose event would be named one of `names` (health checks,
    /// metrics scrapes: `["/health", "/metrics"]`). Adds to the names given before.
    /// Default: none.
    pub fn with_skipped_routes<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.skipped_routes
            .extend(names.into_iter().map(|n| n.into().into_boxed_str()));
        self
    }

    /// Does not record requests for which `skip` returns `true`; it is asked first, before
    /// the request is named. Replaces a predicate given before. Default: none.
    pub fn with_skip_if(mut self, skip: impl SkipRequest) -> Self {
        self.skip = Some(Box::new(skip));
        self
    }

    /// The source recorded with each event. Default: [`Source::layer`] (`layer`).
    pub fn with_source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// Checks the configuration and makes the layer.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the unmatched name is not a valid event type.
    pub fn build(self) -> Result<AnalyticsLayer> {
        if let Some(name) = &self.unmatched {
            validate_event_type(name.as_str()).map_err(|e| {
                Error::Config(format!("the name for unmatched requests is invalid: {e}"))
            })?;
        }
        Ok(AnalyticsLayer {
            config: Arc::new(self.config()),
        })
    }

    fn config(self) -> Config {
        // Calibrated here, not on the first request.
        crate::clock::calibrate();
        Config {
            target: Arc::new(Target {
                analytics: self.analytics,
                source: self.source,
            }),
            extractor: self.extractor,
            anonymous: self.anonymous,
            namer: self.namer,
            unmatched: self.unmatched,
            skipped_routes: self.skipped_routes.into_boxed_slice(),
            skip: self.skip,
        }
    }
}

impl fmt::Debug for AnalyticsLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnalyticsLayerBuilder")
            .field("analytics", &self.analytics)
            .field("source", &self.source)
            .field("anonymous", &self.anonymous)
            .field("custom_names", &self.namer.is_some())
            .field("unmatched", &self.unmatched)
            .field("skipped_routes", &self.skipped_routes)
            .field("skip_if", &self.skip.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        future::poll_fn,
        pin::pin,
        task::{Context, Poll},
        time::Duration,
    };

    use http::{Method, Request, Response, StatusCode, request::Parts};
    use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::{AccountId, Event, account, writer::Worker};

    /// A writer whose worker is not running: events stay in the queue until `drain`.
    fn writer(capacity: usize) -> (Analytics, Worker) {
        Analytics::builder("http://127.0.0.1:1")
            .with_queue_capacity(capacity)
            .with_flush_interval(Duration::from_millis(1))
            .build_pair()
            .unwrap()
    }

    /// The events queued so far.
    async fn drain(analytics: &Analytics, worker: &mut Worker) -> Vec<Event> {
        if analytics.stats().pending == 0 {
            return Vec::new();
        }
        let batch = worker.collect().await.unwrap_or_default();
        batch.into_iter().map(|queued| queued.event).collect()
    }

    /// A request for `path` named `route` (if any) by account `account` (if any).
    fn request(path: &str, route: Option<&'static str>, account: Option<u64>) -> Request<()> {
        let mut request = Request::get(path).body(()).unwrap();
        if let Some(route) = route {
            request
                .extensions_mut()
                .insert(RouteName::from_static(route));
        }
        if let Some(account) = account {
            request.extensions_mut().insert(AccountId(account));
        }
        request
    }

    async fn ok(_: Request<()>) -> Result<Response<()>, Infallible> {
        Ok(Response::new(()))
    }

    /// Sends `requests` through `layer` to a handler answering 200, and returns what was
    /// recorded.
    async fn record(
        layer: AnalyticsLayer,
        (analytics, mut worker): (Analytics, Worker),
        requests: Vec<Request<()>>,
    ) -> Vec<Event> {
        let mut service = ServiceBuilder::new().layer(layer).service_fn(ok);
        for request in requests {
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        drain(&analytics, &mut worker).await
    }

    fn summary(events: &[Event]) -> Vec<(u64, &str, &str, u16)> {
        events
            .iter()
            .map(|e| (e.account_id(), e.event_type(), e.method(), e.status()))
            .collect()
    }

    #[tokio::test]
    async fn layer_records_account_route_method_status() {
        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::new(analytics.clone());
        let mut post = request("/projects/7", Some("/projects/{id}"), Some(3));
        *post.method_mut() = Method::POST;
        let events = record(
            layer,
            (analytics, worker),
            vec![
                request("/projects/8123", Some("/projects/{id}"), Some(42)),
                post,
            ],
        )
        .await;
        assert_eq!(
            summary(&events),
            [
                (42, "/projects/{id}", "GET", 200),
                (3, "/projects/{id}", "POST", 200)
            ]
        );
        assert!(events.iter().all(|e| e.source() == "layer"));
    }

    #[tokio::test]
    async fn layer_records_status_and_latency_of_the_response() {
        let (analytics, mut worker) = writer(10);
        let service = ServiceBuilder::new()
            .layer(AnalyticsLayer::new(analytics.clone()))
            .service_fn(|_: Request<()>| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut response = Response::new(());
                *response.status_mut() = StatusCode::CREATED;
                Ok::<_, Infallible>(response)
            });
        let response = service
            .oneshot(request("/a", Some("/a"), Some(1)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let events = drain(&analytics, &mut worker).await;
        assert_eq!(summary(&events), [(1, "/a", "GET", 201)]);
        assert!(
            events[0].latency_us() >= 20_000,
            "{}",
            events[0].latency_us()
        );
    }

    #[tokio::test]
    async fn layer_skips_anonymous_requests_by_default() {
        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::new(analytics.clone());
        let events = record(
            layer,
            (analytics.clone(), worker),
            vec![request("/a", Some("/a"), None)],
        )
        .await;
        assert!(events.is_empty());
        assert_eq!(analytics.stats().enqueued, 0);
    }

    #[tokio::test]
    async fn layer_records_anonymous_requests_under_the_anonymous_id() {
        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_anonymous_account(0)
            .build()
            .unwrap();
        let events = record(
            layer,
            (analytics, worker),
            vec![
                request("/a", Some("/a"), None),
                request("/a", Some("/a"), Some(5)),
            ],
        )
        .await;
        assert_eq!(
            summary(&events),
            [(0, "/a", "GET", 200), (5, "/a", "GET", 200)]
        );
    }

    #[tokio::test]
    async fn layer_takes_the_account_from_the_response() {
        let (analytics, mut worker) = writer(10);
        // A login route: the handler learns the account and says so in the response.
        let service = ServiceBuilder::new()
            .layer(
                AnalyticsLayer::builder(analytics.clone())
                    .with_anonymous_account(0)
                    .build()
                    .unwrap(),
            )
            .service_fn(|request: Request<()>| async move {
                let mut response = Response::new(());
                if let Some(account) = request.uri().query().and_then(|q| q.parse().ok()) {
                    response.extensions_mut().insert(AccountId(account));
                }
                Ok::<_, Infallible>(response)
            });
        for request in [
            request("/login?77", Some("/login"), None),
            request("/login?78", Some("/login"), Some(1)),
            request("/login", Some("/login"), None),
        ] {
            service.clone().oneshot(request).await.unwrap();
        }
        let events = drain(&analytics, &mut worker).await;
        assert_eq!(
            summary(&events),
            [
                (77, "/login", "GET", 200),
                (78, "/login", "GET", 200),
                (0, "/login", "GET", 200)
            ]
        );
    }

    #[tokio::test]
    async fn layer_reads_accounts_with_each_extractor() {
        #[derive(Clone)]
        struct CurrentUser {
            id: u64,
        }
        let with_user = |id| {
            let mut r = request("/a", Some("/a"), None);
            r.extensions_mut().insert(CurrentUser { id });
            r
        };
        let with_header = |value: &str| {
            let mut r = request("/a", Some("/a"), Some(999));
            r.headers_mut()
                .insert("x-account-id", value.parse().unwrap());
            r
        };

        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_account(account::from_extension::<CurrentUser>(|u| Some(u.id)))
            .build()
            .unwrap();
        let events = record(
            layer,
            (analytics, worker),
            vec![with_user(11), request("/a", Some("/a"), Some(999))],
        )
        .await;
        assert_eq!(summary(&events), [(11, "/a", "GET", 200)]);

        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_account(account::from_header("x-account-id"))
            .build()
            .unwrap();
        let events = record(
            layer,
            (analytics, worker),
            vec![with_header("12"), with_header("-12"), with_header("1e3")],
        )
        .await;
        assert_eq!(summary(&events), [(12, "/a", "GET", 200)]);

        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_account(|parts: &Parts| {
                parts
                    .uri
                    .query()
                    .and_then(|q| q.strip_prefix("account="))?
                    .parse()
                    .ok()
            })
            .build()
            .unwrap();
        let events = record(
            layer,
            (analytics, worker),
            vec![
                request("/a?account=13", Some("/a"), None),
                request("/a?x", Some("/a"), Some(1)),
            ],
        )
        .await;
        assert_eq!(summary(&events), [(13, "/a", "GET", 200)]);
    }

    #[tokio::test]
    async fn layer_never_names_unmatched_requests_by_their_path() {
        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::new(analytics.clone());
        let events = record(
            layer,
            (analytics.clone(), worker),
            vec![request("/wp-login.php", None, Some(1))],
        )
        .await;
        assert!(events.is_empty());
        assert_eq!(analytics.stats().enqueued, 0);

        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_unmatched_name("unmatched")
            .build()
            .unwrap();
        let events = record(
            layer,
            (analytics, worker),
            vec![
                request("/wp-login.php", None, Some(1)),
                request("/.env", None, Some(2)),
                request("/a", Some("/a"), Some(3)),
            ],
        )
        .await;
        assert_eq!(
            summary(&events),
            [
                (1, "unmatched", "GET", 200),
                (2, "unmatched", "GET", 200),
                (3, "/a", "GET", 200)
            ]
        );
    }

    #[tokio::test]
    async fn layer_refuses_an_invalid_unmatched_name() {
        let (analytics, _worker) = writer(10);
        for bad in ["", "a\nb"] {
            let err = AnalyticsLayer::builder(analytics.clone())
                .with_unmatched_name(bad)
                .build()
                .unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn layer_names_events_with_a_closure() {
        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_event_names(|parts: &Parts| {
                let route = crate::route::route_name(parts)?;
                (route != "/hidden").then(|| format!("{} {route}", parts.method))
            })
            .with_unmatched_name("other")
            .build()
            .unwrap();
        let events = record(
            layer,
            (analytics, worker),
            vec![
                request("/a", Some("/a"), Some(1)),
                request("/hidden", Some("/hidden"), Some(1)),
            ],
        )
        .await;
        assert_eq!(
            summary(&events),
            [(1, "GET /a", "GET", 200), (1, "other", "GET", 200)]
        );
    }

    #[tokio::test]
    async fn layer_skips_filtered_routes_and_requests() {
        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_skipped_routes(["/health"])
            .with_skipped_routes(vec![String::from("/metrics")])
            .with_skip_if(|parts: &Parts| parts.headers.contains_key("x-synthetic"))
            .build()
            .unwrap();
        let mut synthetic = request("/a", Some("/a"), Some(1));
        synthetic
            .headers_mut()
            .insert("x-synthetic", "1".parse().unwrap());
        let events = record(
            layer,
            (analytics, worker),
            vec![
                request("/health", Some("/health"), Some(1)),
                request("/metrics", Some("/metrics"), Some(1)),
                synthetic,
                request("/a", Some("/a"), Some(2)),
            ],
        )
        .await;
        assert_eq!(summary(&events), [(2, "/a", "GET", 200)]);
    }

    #[tokio::test]
    async fn layer_skips_the_unmatched_name_when_it_is_a_skipped_route() {
        let (analytics, worker) = writer(10);
        let layer = AnalyticsLayer::builder(analytics.clone())
            .with_unmatched_name("unmatched")
            .with_skipped_routes(["unmatched"])
            .build()
            .unwrap();
        let events = record(
            layer,
            (analytics, worker),
            vec![request("/x", None, Some(1))],
        )
        .await;
        assert!(events.is_empty());
    }

    #[tokio::test]
    async fn layer_records_a_dropped_future_with_status_0() {
        let (analytics, mut worker) = writer(10);
        let mut service = ServiceBuilder::new()
            .layer(AnalyticsLayer::new(analytics.clone()))
            .service_fn(|_: Request<()>| {
                std::future::pending::<Result<Response<()>, Infallible>>()
            });
        let future = service.call(request("/slow", Some("/slow"), Some(4)));
        {
            let mut future = pin!(future);
            let waker = std::task::Waker::noop();
            assert!(
                future
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_pending()
            );
            assert_eq!(
                analytics.stats().enqueued,
                0,
                "nothing recorded while pending"
            );
        }
        let events = drain(&analytics, &mut worker).await;
        assert_eq!(summary(&events), [(4, "/slow", "GET", 0)]);

        // Dropped before it was ever polled: the request had still come in.
        drop(service.call(request("/slow", Some("/slow"), Some(5))));
        let events = drain(&analytics, &mut worker).await;
        assert_eq!(summary(&events), [(5, "/slow", "GET", 0)]);
    }

    #[tokio::test]
    async fn layer_records_a_panicking_handler_with_status_0() {
        let (analytics, mut worker) = writer(10);
        let service = ServiceBuilder::new()
            .layer(AnalyticsLayer::new(analytics.clone()))
            .service_fn(|_: Request<()>| async {
                panic!("handler bug");
                #[allow(unreachable_code)]
                Ok::<Response<()>, Infallible>(Response::new(()))
            });
        let task = tokio::spawn(service.oneshot(request("/a", Some("/a"), Some(8))));
        assert!(task.await.unwrap_err().is_panic());
        let events = drain(&analytics, &mut worker).await;
        assert_eq!(summary(&events), [(8, "/a", "GET", 0)]);
    }

    #[tokio::test]
    async fn layer_passes_inner_errors_through_and_records_status_0() {
        let (analytics, mut worker) = writer(10);
        let service = ServiceBuilder::new()
            .layer(AnalyticsLayer::new(analytics.clone()))
            .service_fn(|_: Request<()>| async { Err::<Response<()>, BoxError>("boom".into()) });
        let err = service
            .oneshot(request("/a", Some("/a"), Some(6)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "boom");
        let events = drain(&analytics, &mut worker).await;
        assert_eq!(summary(&events), [(6, "/a", "GET", 0)]);
    }

    #[tokio::test]
    async fn layer_poll_ready_is_the_inner_services() {
        #[derive(Clone)]
        struct NotReady;
        impl Service<Request<()>> for NotReady {
            type Response = Response<()>;
            type Error = &'static str;
            type Future = std::future::Ready<Result<Response<()>, &'static str>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Err("overloaded"))
            }
            fn call(&mut self, _: Request<()>) -> Self::Future {
                unreachable!()
            }
        }
        let (analytics, _worker) = writer(10);
        let mut service = AnalyticsLayer::new(analytics).layer(NotReady);
        assert_eq!(
            poll_fn(|cx| service.poll_ready(cx)).await,
            Err("overloaded")
        );
    }

    #[tokio::test]
    async fn layer_full_queue_never_blocks_and_counts_the_drops() {
        // Capacity 1 and no worker: every event after the first finds the queue full.
        let (analytics, _worker) = writer(1);
        let mut service = ServiceBuilder::new()
            .layer(AnalyticsLayer::new(analytics.clone()))
            .service_fn(ok);
        let responses = tokio::time::timeout(Duration::from_secs(5), async {
            let mut statuses = Vec::new();
            for i in 0..100 {
                let request = request("/a", Some("/a"), Some(i));
                let response = service.ready().await.unwrap().call(request).await.unwrap();
                statuses.push(response.status());
            }
            statuses
        })
        .await
        .expect("requests waited on a full queue");
        assert!(responses.iter().all(|s| *s == StatusCode::OK));
        let stats = analytics.stats();
        assert_eq!((stats.enqueued, stats.dropped_queue_full), (1, 99));
    }

    #[tokio::test(start_paused = true)]
    async fn layer_with_a_closed_writer_serves_requests_and_counts_the_drops() {
        let (analytics, _worker) = writer(10);
        let service = ServiceBuilder::new()
            .layer(AnalyticsLayer::new(analytics.clone()))
            .service_fn(ok);
        // The worker never ran; with the clock paused the deadlines pass at once.
        analytics.shutdown(Duration::from_millis(1)).await;
        let response = service
            .oneshot(request("/a", Some("/a"), Some(1)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let stats = analytics.stats();
        assert_eq!((stats.enqueued, stats.dropped_closed), (0, 1));
    }

    #[tokio::test]
    async fn layer_counts_route_names_that_are_no_event_type() {
        let (analytics, worker) = writer(10);
        let mut long = request("/", None, Some(1));
        long.extensions_mut()
            .insert(RouteName::from("x".repeat(200)));
        let events = record(
            AnalyticsLayer::new(analytics.clone()),
            (analytics.clone(), worker),
            vec![
                long,
                request("/", Some("a\u{7}"), Some(1)),
                request("/", Some("/ok"), Some(1)),
            ],
        )
        .await;
        // The writer's thread checks the names: the two bad ones are counted, not written.
        assert_eq!(summary(&events), [(1, "/ok", "GET", 200)]);
        assert_eq!(analytics.stats().dropped_invalid, 2);
    }

    #[cfg(feature = "axum")]
    mod axum_router {
        use axum::{Extension, Router, body::Body, routing::get};

        use super::*;

        fn app() -> Router {
            let billing = Router::new().route("/invoices/{id}", get(|| async { "invoice" }));
            Router::new()
                .route(
                    "/projects/{id}",
                    get(|| async { "project" }).post(|| async { StatusCode::CREATED }),
                )
                .nest("/billing", billing)
        }

        async fn send(app: &Router, method: Method, path: &str, account: u64) -> StatusCode {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            request.extensions_mut().insert(AccountId(account));
            app.clone().oneshot(request).await.unwrap().status()
        }

        async fn exchange(app: Router) -> Vec<StatusCode> {
            vec![
                send(&app, Method::GET, "/projects/8123", 1).await,
                send(&app, Method::POST, "/projects/9", 2).await,
                send(&app, Method::GET, "/billing/invoices/3", 3).await,
                send(&app, Method::DELETE, "/projects/1", 4).await,
                send(&app, Method::GET, "/wp-login.php", 5).await,
            ]
        }

        const STATUSES: [StatusCode; 5] = [
            StatusCode::OK,
            StatusCode::CREATED,
            StatusCode::OK,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::NOT_FOUND,
        ];

        #[tokio::test]
        async fn layer_names_axum_routes_by_matched_path() {
            let (analytics, mut worker) = writer(10);
            let app = app().layer(AnalyticsLayer::new(analytics.clone()));
            assert_eq!(exchange(app).await, STATUSES);
            let events = drain(&analytics, &mut worker).await;
            assert_eq!(
                summary(&events),
                [
                    (1, "/projects/{id}", "GET", 200),
                    (2, "/projects/{id}", "POST", 201),
                    (3, "/billing/invoices/{id}", "GET", 200),
                    (4, "/projects/{id}", "DELETE", 405),
                ]
            );
        }

        #[tokio::test]
        async fn layer_sees_axum_fallback_requests_as_unmatched() {
            let (analytics, mut worker) = writer(10);
            let layer = AnalyticsLayer::builder(analytics.clone())
                .with_unmatched_name("unmatched")
                .build()
                .unwrap();
            let app = app()
                .fallback(|| async { (StatusCode::NOT_FOUND, "nothing here") })
                .layer(layer);
            assert_eq!(exchange(app).await, STATUSES);
            let events = drain(&analytics, &mut worker).await;
            assert_eq!(
                summary(&events)[3..],
                [
                    (4, "/projects/{id}", "DELETE", 405),
                    (5, "unmatched", "GET", 404)
                ]
            );
        }

        #[tokio::test]
        async fn layer_as_axum_route_layer_never_sees_fallback_requests() {
            let (analytics, mut worker) = writer(10);
            let layer = AnalyticsLayer::builder(analytics.clone())
                .with_unmatched_name("unmatched")
                .build()
                .unwrap();
            let app = app().route_layer(layer);
            assert_eq!(exchange(app).await, STATUSES);
            let events = drain(&analytics, &mut worker).await;
            let types: Vec<_> = events.iter().map(Event::event_type).collect();
            assert_eq!(
                types,
                [
                    "/projects/{id}",
                    "/projects/{id}",
                    "/billing/invoices/{id}",
                    "/projects/{id}"
                ]
            );
        }

        #[tokio::test]
        async fn layer_prefers_route_name_to_matched_path() {
            let (analytics, mut worker) = writer(10);
            let app = app()
                .layer(AnalyticsLayer::new(analytics.clone()))
                .layer(Extension(RouteName::from_static("everything")));
            send(&app, Method::GET, "/projects/1", 1).await;
            let events = drain(&analytics, &mut worker).await;
            assert_eq!(summary(&events), [(1, "everything", "GET", 200)]);
        }

        #[tokio::test]
        async fn layer_around_the_whole_axum_router_sees_no_route() {
            let (analytics, _worker) = writer(10);
            let app = ServiceBuilder::new()
                .layer(AnalyticsLayer::new(analytics.clone()))
                .service(app());
            let mut request = Request::get("/projects/1").body(Body::empty()).unwrap();
            request.extensions_mut().insert(AccountId(1));
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(analytics.stats().enqueued, 0);
        }
    }
}
