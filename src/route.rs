//! What an event is called: the route the request matched, never its raw path.
//!
//! The [`AnalyticsLayer`](crate::AnalyticsLayer) names each event after the route template
//! the request matched (`/projects/{id}`, not `/projects/8123`), so that one route is one
//! event type however many ids it serves. The method goes in its own column. It looks, in
//! this order, for
//!
//! 1. a [`RouteName`] in the request extensions, which any router can set (a hand-written
//!    one, or [matchit](https://docs.rs/matchit) behind hyper);
//! 2. with the `axum` feature (on by default), axum's
//!    [`MatchedPath`](https://docs.rs/axum/0.8/axum/extract/struct.MatchedPath.html), also
//!    inside nested routers: `/teams/{team}/members/{member}`.
//!
//! A closure, or any [`NameEvent`], can name events instead
//! ([`with_event_names`](crate::AnalyticsLayerBuilder::with_event_names)); [`route_name`]
//! gives it the built-in answer to fall back on.
//!
//! # Requests that matched no route
//!
//! A request without a name matched no route: a 404, a scanner probing `/wp-login.php`.
//! Naming it by its path would make every probe a new event type, so it is not recorded,
//! unless [`with_unmatched_name`](crate::AnalyticsLayerBuilder::with_unmatched_name) gives
//! all such requests one fixed name.
//!
//! # axum: `Router::layer` or `Router::route_layer`
//!
//! Add the layer to the outermost router, after its routes, with
//! [`Router::layer`](https://docs.rs/axum/0.8/axum/struct.Router.html#method.layer) or
//! [`Router::route_layer`](https://docs.rs/axum/0.8/axum/struct.Router.html#method.route_layer).
//! Both wrap each route *after* routing, so the request carries its `MatchedPath`:
//!
//! - `Router::layer` also wraps the fallback. A request no route matched (the default
//!   `404`, or your own fallback handler) reaches the layer without a `MatchedPath`, and is
//!   handled as unmatched: skipped, or recorded under the unmatched name.
//! - `Router::route_layer` wraps the routes only. Fallback requests never reach the layer
//!   and are never recorded, even with an unmatched name set.
//!
//! Either way, a request to a known path with a method the route does not serve is
//! recorded under the route's name with status `405`.
//!
//! Routers added with `Router::nest` become routes of the outer router, with their full
//! template. A service added with `Router::nest_service` is one opaque route to the outer
//! router (its requests have no `MatchedPath` there); give such a service the layer
//! itself. Wrapping the whole `Router` from outside (`ServiceBuilder::new().layer(..)
//! .service(router)`) runs the layer *before* routing: no request has a name there, so do
//! not, unless another layer sets [`RouteName`] first.
//!
//! ```
//! use axum::{Router, routing::get};
//! use idp_analytics::{Analytics, AnalyticsLayer};
//!
//! # fn app(analytics: Analytics) -> idp_analytics::Result<Router> {
//! let billing = Router::new().route("/invoices/{id}", get(|| async { "invoice" }));
//! let app = Router::new()
//!     .route("/projects/{id}", get(|| async { "project" }))
//!     .route("/health", get(|| async { "ok" }))
//!     .nest("/billing", billing) // recorded as `/billing/invoices/{id}`
//!     .layer(
//!         AnalyticsLayer::builder(analytics)
//!             .with_skipped_routes(["/health"])
//!             .with_unmatched_name("not_found")
//!             .build()?,
//!     );
//! # Ok(app)
//! # }
//! ```

use std::{fmt, sync::Arc};

use http::{Extensions, request::Parts};

use crate::text::Text;

/// The name of the route a request matched, put in the request extensions by the router.
///
/// The layer names the request's event after it, in preference to anything else it could
/// find. Cheap to clone: a `&'static str` or an `Arc<str>`.
///
/// ```
/// use idp_analytics::RouteName;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(RouteName::from_static("/projects/{id}"));
/// assert_eq!(
///     request.extensions().get::<RouteName>().map(RouteName::as_str),
///     Some("/projects/{id}")
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RouteName(Text);

impl RouteName {
    /// A name known at compile time; no allocation, ever.
    pub const fn from_static(name: &'static str) -> Self {
        Self(Text::Static(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<&'static str> for RouteName {
    fn from(name: &'static str) -> Self {
        Self::from_static(name)
    }
}

impl From<String> for RouteName {
    fn from(name: String) -> Self {
        Self(Text::Shared(name.into()))
    }
}

impl From<Arc<str>> for RouteName {
    fn from(name: Arc<str>) -> Self {
        Self(Text::Shared(name))
    }
}

impl AsRef<str> for RouteName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The built-in name of a request: its [`RouteName`] extension, else (with the `axum`
/// feature) its `MatchedPath`; `None` when it matched no route.
///
/// ```
/// use idp_analytics::{RouteName, route};
///
/// let (mut parts, ()) = http::Request::get("/projects/8123").body(()).unwrap().into_parts();
/// assert_eq!(route::route_name(&parts), None);
/// parts.extensions.insert(RouteName::from_static("/projects/{id}"));
/// assert_eq!(route::route_name(&parts), Some("/projects/{id}"));
/// ```
pub fn route_name(request: &Parts) -> Option<&str> {
    if let Some(name) = request.extensions.get::<RouteName>() {
        return Some(name.as_str());
    }
    #[cfg(feature = "axum")]
    if let Some(path) = request.extensions.get::<axum::extract::MatchedPath>() {
        return Some(path.as_str());
    }
    None
}

/// Names the event a request becomes, from the request head; `None` if it matched no
/// route (see [Requests that matched no route](self#requests-that-matched-no-route)).
///
/// Implemented for every closure `Fn(&http::request::Parts) -> Option<N>` where `N` is a
/// `&'static str`, a `String` or anything else that converts into a [`RouteName`]. Write
/// the argument's type (`|parts: &Parts| ...`) so that the compiler knows it.
///
/// ```
/// use http::request::Parts;
/// use idp_analytics::{NameEvent, route};
///
/// // One event type per API version, whatever the route.
/// let by_version = |parts: &Parts| {
///     let path = parts.uri.path();
///     if path.starts_with("/v1/") {
///         Some("api_v1")
///     } else if path.starts_with("/v2/") {
///         Some("api_v2")
///     } else {
///         None
///     }
/// };
/// let (parts, ()) = http::Request::get("/v2/search").body(()).unwrap().into_parts();
/// assert_eq!(by_version.name_event(&parts).unwrap().as_str(), "api_v2");
///
/// // Or the method and the route in one event type, such as `GET /projects/{id}`.
/// let with_method = |parts: &Parts| {
///     route::route_name(parts).map(|route| format!("{} {route}", parts.method))
/// };
/// # let _ = with_method;
/// ```
pub trait NameEvent: Send + Sync + 'static {
    /// The event type of the request with this head; `None` if it matched no route.
    fn name_event(&self, request: &Parts) -> Option<RouteName>;
}

impl<F, N> NameEvent for F
where
    F: Fn(&Parts) -> Option<N> + Send + Sync + 'static,
    N: Into<RouteName>,
{
    fn name_event(&self, request: &Parts) -> Option<RouteName> {
        self(request).map(Into::into)
    }
}

/// Decides, from the request head, that a request is not recorded at all.
///
/// Implemented for every closure `Fn(&http::request::Parts) -> bool`; `true` skips the
/// request.
///
/// ```
/// use http::{Method, request::Parts};
/// use idp_analytics::SkipRequest;
///
/// let skip_preflight = |parts: &Parts| parts.method == Method::OPTIONS;
/// let (parts, ()) = http::Request::options("/search").body(()).unwrap().into_parts();
/// assert!(skip_preflight.skip_request(&parts));
/// ```
pub trait SkipRequest: Send + Sync + 'static {
    /// Whether the request with this head is left out.
    fn skip_request(&self, request: &Parts) -> bool;
}

impl<F> SkipRequest for F
where
    F: Fn(&Parts) -> bool + Send + Sync + 'static,
{
    fn skip_request(&self, request: &Parts) -> bool {
        self(request)
    }
}

/// An event's name, held from the request until its response, owned without copying the
/// string (a clone of what the router put in the extensions; `MatchedPath` shares its
/// `Arc<str>`): the copy is made only if the event is recorded.
#[derive(Clone, Debug)]
pub(crate) enum EventName {
    Route(RouteName),
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
}

impl EventName {
    /// The built-in name of a request, as [`route_name`] finds it.
    pub(crate) fn of(extensions: &Extensions) -> Option<Self> {
        if let Some(name) = extensions.get::<RouteName>() {
            return Some(Self::Route(name.clone()));
        }
        #[cfg(feature = "axum")]
        if let Some(path) = extensions.get::<axum::extract::MatchedPath>() {
            return Some(Self::Matched(path.clone()));
        }
        None
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Route(name) => name.as_str(),
            #[cfg(feature = "axum")]
            Self::Matched(path) => path.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> Parts {
        http::Request::get(path).body(()).unwrap().into_parts().0
    }

    #[test]
    fn route_name_extension_is_the_name() {
        let mut p = parts("/projects/1");
        assert!(route_name(&p).is_none());
        p.extensions
            .insert(RouteName::from("/projects/{id}".to_owned()));
        assert_eq!(route_name(&p), Some("/projects/{id}"));
    }

    #[test]
    fn route_names_compare_by_content() {
        let a = RouteName::from_static("/a");
        let b = RouteName::from(Arc::<str>::from("/a"));
        assert_eq!(a, b);
        assert_eq!(format!("{a} {b:?}"), "/a \"/a\"");
    }

    #[test]
    fn closures_name_events() {
        let fixed = |_: &Parts| Some("fixed");
        let owned = |p: &Parts| Some(p.uri.path().len().to_string());
        let none = |_: &Parts| None::<&'static str>;
        let p = parts("/abc");
        assert_eq!(fixed.name_event(&p).unwrap().as_str(), "fixed");
        assert_eq!(owned.name_event(&p).unwrap().as_str(), "4");
        assert!(none.name_event(&p).is_none());
    }
}
