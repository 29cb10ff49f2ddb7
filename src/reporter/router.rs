//! The endpoint as an axum [`Router`] (feature `axum`).

use axum::Router;

use crate::writer::Analytics;

use super::{auth::Reporters, config::Reporter, service::Route};

impl Reporter {
    /// The endpoint as an axum [`Router`] with the routes `/event` and `/events` (and, with
    /// the feature `openapi`, `GET /openapi.json`, the endpoint's OpenAPI document), to
    /// [`merge`](Router::merge) into an app or [`nest`](Router::nest) under a prefix.
    ///
    /// The router has no fallback of its own, so it merges into any app; it works with any
    /// app state `S`.
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let router = Router::new()
            .route_service("/event", self.route(Route::Single))
            .route_service("/events", self.route(Route::Batch));
        #[cfg(feature = "openapi")]
        let router = router.route_service("/openapi.json", self.route(Route::OpenApi));
        router
    }
}

impl Analytics {
    /// The reporter endpoint with its defaults, writing to this writer: shorthand for
    /// `Reporter::new(analytics.clone(), reporters).into_router()`.
    ///
    /// See [`Reporter`] to change the defaults.
    pub fn reporter_router<S>(&self, reporters: Reporters) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Reporter::new(self.clone(), reporters).into_router()
    }
}
