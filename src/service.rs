//! [`AnalyticsService`]: reads the request head, never its body, and hands the inner
//! service's future a [`Recording`] to finish. Nothing here waits.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Extensions, Method, Request, Response, request::Parts};
use tower::Service;

use crate::{
    account::{AccountId, ExtractAccount},
    clock::Tick,
    future::{Recording, ResponseFuture, Target},
    route::{EventName, NameEvent, RouteName, SkipRequest},
};

/// The layer's configuration, shared by every clone of the layer and of its services.
pub(crate) struct Config {
    pub(crate) target: Arc<Target>,
    /// `None`: the [`AccountId`] request extension.
    pub(crate) extractor: Option<Box<dyn ExtractAccount>>,
    pub(crate) anonymous: Option<u64>,
    pub(crate) namer: Option<Box<dyn NameEvent>>,
    pub(crate) unmatched: Option<RouteName>,
    pub(crate) skipped_routes: Box<[Box<str>]>,
    pub(crate) skip: Option<Box<dyn SkipRequest>>,
}

impl Config {
    /// Whether a hook reads the whole request head, which the request must then be split
    /// into (moving the head twice) for.
    fn reads_head(&self) -> bool {
        self.extractor.is_some() || self.namer.is_some() || self.skip.is_some()
    }

    /// What the layer records for a request, if anything. `head` is the whole request
    /// head, given when [`reads_head`](Self::reads_head).
    fn begin(
        &self,
        method: &Method,
        extensions: &Extensions,
        head: Option<&Parts>,
    ) -> Option<Recording> {
        if let (Some(skip), Some(head)) = (&self.skip, head)
            && skip.skip_request(head)
        {
            return None;
        }
        let name = match (&self.namer, head) {
            (Some(namer), Some(head)) => namer.name_event(head).map(EventName::Route),
            _ => EventName::of(extensions),
        };
        let name = match name {
            Some(name) => name,
            None => EventName::Route(self.unmatched.clone()?),
        };
        if self.skipped_routes.iter().any(|s| **s == *name.as_str()) {
            return None;
        }
        let account = match (&self.extractor, head) {
            (Some(extractor), Some(head)) => extractor.extract_account(head),
            _ => extensions.get::<AccountId>().map(|id| id.0),
        };
        Some(Recording {
            target: Arc::clone(&self.target),
            started: Tick::now(),
            method: method.clone(),
            account: account.or(self.anonymous),
            name,
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("analytics", &self.target.analytics)
            .field("source", &self.target.source)
            .field("anonymous", &self.anonymous)
            .field("custom_names", &self.namer.is_some())
            .field("unmatched", &self.unmatched)
            .field("skipped_routes", &self.skipped_routes)
            .field("skip_if", &self.skip.is_some())
            .finish_non_exhaustive()
    }
}

/// The service made by [`AnalyticsLayer`](crate::AnalyticsLayer): records each request of
/// an account as an event, then passes it on untouched.
///
/// Cloning it clones the inner service and one `Arc`.
pub struct AnalyticsService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> AnalyticsService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for AnalyticsService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for AnalyticsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnalyticsService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for AnalyticsService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let recording = if self.config.reads_head() {
            // Splitting and rejoining a request moves its head; the body is not touched.
            let (head, body) = request.into_parts();
            let recording = self
                .config
                .begin(&head.method, &head.extensions, Some(&head));
            request = Request::from_parts(head, body);
            recording
        } else {
            self.config
                .begin(request.method(), request.extensions(), None)
        };
        ResponseFuture::new(self.inner.call(request), recording)
    }
}
