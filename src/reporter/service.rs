//! [`ReporterService`]: the endpoint as a tower `Service`, for any request body type.
//!
//! Each request goes through the same steps, and the first that fails answers:
//! route and method, bearer token, content type, body size (the `Content-Length` first,
//! then the bytes as they arrive, within the body timeout), JSON, each event's fields, and finally the writer.
//! Nothing reaches the writer unless the whole request is valid.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use http::{
    HeaderMap, Method, Request, Response, StatusCode,
    header::{CONTENT_ENCODING, CONTENT_LENGTH},
};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::{
    error::Rejected,
    event::{Event, Source},
    writer::Analytics,
};

use super::{
    auth::Reporters,
    decode::{self, Batch, Item},
    resend::{Resends, Unchecked},
    response::{self, ItemError, ResponseBody},
    validate::{self, Window},
};

/// A boxed error, as request bodies report them.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything a request needs, shared by every clone of the service.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) analytics: Analytics,
    pub(crate) resends: Resends,
    pub(crate) reporters: Reporters,
    pub(crate) confirm_writes: bool,
    pub(crate) window: Window,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_batch_body_bytes: usize,
    pub(crate) max_batch_len: usize,
    pub(crate) retry_after: Duration,
    pub(crate) body_timeout: Duration,
    /// The OpenAPI document, made on first request.
    #[cfg(feature = "openapi")]
    pub(crate) openapi: std::sync::OnceLock<bytes::Bytes>,
}

impl Settings {
    /// The OpenAPI document of this endpoint, as pretty JSON ending with a newline.
    #[cfg(feature = "openapi")]
    pub(crate) fn openapi_json(&self) -> bytes::Bytes {
        self.openapi
            .get_or_init(|| {
                let doc = super::openapi::document(self);
                // Serializing a document of strings and numbers cannot fail.
                let mut json = doc.to_pretty_json().unwrap_or_default();
                json.push('\n');
                bytes::Bytes::from(json)
            })
            .clone()
    }
}

/// Which endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    /// `POST /event`: one object.
    Single,
    /// `POST /events`: an array of objects.
    Batch,
}

/// How the service tells the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// By the request's path: `/event` or `/events`; anything else is `404`.
    ByPath,
    /// Always `/event`, whatever the path (a router has matched it already).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Single,
    /// Always `/events`, whatever the path.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Batch,
    /// Always `/openapi.json`, whatever the path.
    #[cfg(feature = "openapi")]
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    OpenApi,
}

/// The reporter endpoint as a tower [`Service`](tower::Service) of
/// [`http::Request<B>`](http::Request) for any body type `B`, such as hyper's
/// `Incoming` or axum's `Body`. Made by [`Reporter::service`](super::Reporter::service).
///
/// It answers `POST /event` and `POST /events` by the request's path, `404` to any other
/// path, and never fails: every outcome is a response. Cheap to clone.
#[derive(Clone)]
pub struct ReporterService {
    settings: Arc<Settings>,
    route: Route,
}

impl fmt::Debug for ReporterService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReporterService")
            .field("route", &self.route)
            .field("reporters", &self.settings.reporters)
            .finish_non_exhaustive()
    }
}

impl ReporterService {
    pub(crate) fn new(settings: Arc<Settings>, route: Route) -> Self {
        Self { settings, route }
    }
}

impl<B> tower::Service<Request<B>> for ReporterService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let settings = self.settings.clone();
        let route = self.route;
        ResponseFuture {
            inner: Box::pin(async move { Ok(handle(&settings, route, request).await) }),
        }
    }
}

/// The future of a [`ReporterService`] response.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

async fn handle<B>(settings: &Settings, route: Route, request: Request<B>) -> Response<ResponseBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let endpoint = match (route, request.uri().path()) {
        #[cfg(feature = "openapi")]
        (Route::OpenApi, _) | (Route::ByPath, "/openapi.json") => {
            return match *request.method() {
                Method::GET | Method::HEAD => response::document(settings.openapi_json()),
                _ => response::method_not_allowed_but("GET"),
            };
        }
        (Route::Single, _) | (Route::ByPath, "/event") => Endpoint::Single,
        (Route::Batch, _) | (Route::ByPath, "/events") => Endpoint::Batch,
        (Route::ByPath, _) => return response::message(StatusCode::NOT_FOUND, "not found"),
    };
    if request.method() != Method::POST {
        return response::method_not_allowed();
    }
    let Some(source) = settings.reporters.authenticate(request.headers()) else {
        tracing::debug!("reporter request without a valid bearer token");
        return response::unauthorized();
    };
    if !decode::is_json(request.headers()) {
        return response::message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON, sent with content-type: application/json",
        );
    }
    let Some(gzip) = gzipped(request.headers()) else {
        return response::message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body's content-encoding must be gzip or identity",
        );
    };
    let limit = match endpoint {
        Endpoint::Single => settings.max_body_bytes,
        Endpoint::Batch => settings.max_batch_body_bytes,
    };
    let too_large = || {
        response::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {limit} bytes"),
        )
    };
    if content_length(request.headers()).is_some_and(|len| len > limit as u64) {
        return too_large();
    }
    let read = Limited::new(request.into_body(), limit).collect();
    let Ok(read) = tokio::time::timeout(settings.body_timeout, read).await else {
        tracing::debug!("a reporter's request body took too long to arrive");
        return response::timeout(&format!(
            "the body did not arrive within {}",
            validate::describe(settings.body_timeout)
        ));
    };
    let body = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => {
            tracing::debug!(error = %e, "could not read a reporter's request body");
            return response::message(StatusCode::BAD_REQUEST, "the body could not be read");
        }
    };
    let body = if gzip {
        match gunzip(&body, limit) {
            Ok(plain) => bytes::Bytes::from(plain),
            Err(Gunzip::TooLarge) => {
                return response::message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the body is larger than {limit} bytes once decompressed"),
                );
            }
            Err(Gunzip::Invalid) => {
                return response::message(StatusCode::BAD_REQUEST, "the body is not valid gzip");
            }
        }
    } else {
        body
    };

    let now = SystemTime::now();
    let events = match endpoint {
        Endpoint::Single => single(settings, source, &body, now),
        Endpoint::Batch => batch(settings, source, &body, now),
    };
    let mut events = match events {
        Ok(events) => events,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(Unchecked(error)) = settings.resends.settle(source, &mut events, now).await {
        tracing::warn!(%error, "could not look up earlier reports of resent events");
        return response::unavailable(
            "the earlier reports of this eventId could not be looked up; retry later, \
             or send a timestamp with it",
            settings.retry_after,
        );
    }
    enqueue(settings, events).await
}

/// Whether the body is gzip (`Content-Encoding: gzip`), or plain (no encoding, or
/// `identity`); `None` for any other encoding.
fn gzipped(headers: &HeaderMap) -> Option<bool> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Some(false);
    };
    let value = value.to_str().ok()?.trim();
    if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Some(true)
    } else {
        value.eq_ignore_ascii_case("identity").then_some(false)
    }
}

enum Gunzip {
    TooLarge,
    Invalid,
}

/// Decompresses a gzip body, reading at most one byte past `limit`: a body that would
/// decompress to more is refused without being decompressed whole.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Gunzip> {
    use std::io::Read as _;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|_| Gunzip::Invalid)?;
    if plain.len() > limit {
        return Err(Gunzip::TooLarge);
    }
    Ok(plain)
}

/// The `Content-Length`, if there is one and it is a number.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Why a body was refused.
enum Refusal {
    /// Not JSON at all: `400`.
    NotJson(serde_json::Error),
    /// JSON, but not what the endpoint takes: `422`.
    Invalid(String),
    /// A batch with bad items: `422` listing them.
    BadItems {
        total: usize,
        bad: usize,
        errors: Vec<ItemError>,
    },
}

impl Refusal {
    fn into_response(self) -> Response<ResponseBody> {
        match self {
            Self::NotJson(e) => response::message(
                StatusCode::BAD_REQUEST,
                &format!("the body is not valid JSON: {e}"),
            ),
            Self::Invalid(message) => response::message(StatusCode::UNPROCESSABLE_ENTITY, &message),
            Self::BadItems { total, bad, errors } => response::bad_items(total, bad, &errors),
        }
    }
}

fn single(
    settings: &Settings,
    source: &Source,
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<Event>, Refusal> {
    let fields = match decode::single(body) {
        Ok(Item::Object(fields)) => fields,
        Ok(Item::Other(kind)) => {
            return Err(Refusal::Invalid(format!(
                "the body must be a JSON object, not {kind}; send arrays to /events"
            )));
        }
        Err(e) => return Err(Refusal::NotJson(e)),
    };
    match validate::event(fields, source, now, settings.window) {
        Ok(event) => Ok(vec![event]),
        Err(problems) => {
            settings.analytics.count_invalid();
            Err(Refusal::Invalid(problems.join()))
        }
    }
}

fn batch(
    settings: &Settings,
    source: &Source,
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<Event>, Refusal> {
    let max = settings.max_batch_len;
    let items = match decode::batch(body, max) {
        Ok(Batch::Items(items)) if items.is_empty() => {
            return Err(Refusal::Invalid("the batch is empty".into()));
        }
        Ok(Batch::Items(items)) => items,
        Ok(Batch::TooMany(n)) => {
            return Err(Refusal::Invalid(format!(
                "the batch has {n} events; at most {max} are allowed"
            )));
        }
        Ok(Batch::NotArray(kind)) => {
            return Err(Refusal::Invalid(format!(
                "the body must be a JSON array, not {kind}"
            )));
        }
        Err(e) => return Err(Refusal::NotJson(e)),
    };
    let total = items.len();
    let mut events = Vec::with_capacity(total);
    let mut errors = Vec::new();
    let mut bad = 0;
    for (index, item) in items.into_iter().enumerate() {
        // Past the items listed, a bad item is only counted: the answer stays small.
        if bad >= response::MAX_ITEMS_LISTED {
            if let Item::Object(fields) = item
                && let Ok(event) = validate::event(fields, source, now, settings.window)
            {
                events.push(event);
            } else {
                bad += 1;
            }
            continue;
        }
        let outcome = match item {
            Item::Object(fields) => validate::event(fields, source, now, settings.window)
                .map_err(|problems| problems.join()),
            Item::Other(kind) => Err(format!("must be a JSON object, not {kind}")),
        };
        match outcome {
            Ok(event) => events.push(event),
            Err(message) => {
                bad += 1;
                errors.push(ItemError { index, message });
            }
        }
    }
    if bad == 0 {
        return Ok(events);
    }
    for _ in 0..bad {
        settings.analytics.count_invalid();
    }
    Err(Refusal::BadItems { total, bad, errors })
}

async fn enqueue(settings: &Settings, events: Vec<Event>) -> Response<ResponseBody> {
    let analytics = &settings.analytics;
    let refused = |reason: Rejected| {
        let message = match reason {
            Rejected::QueueFull => "the analytics queue is full; retry later",
            Rejected::Closed => "the analytics writer is shutting down; retry later",
            Rejected::SpoolFull => "the analytics spool is full; retry later",
        };
        response::unavailable(message, settings.retry_after)
    };
    if analytics.is_paused() {
        return response::unavailable(
            "the analytics writer cannot write to its table; retry later",
            settings.retry_after,
        );
    }
    if !settings.confirm_writes {
        return match analytics.try_record_all(events) {
            Ok(()) => response::success(),
            Err(reason) => refused(reason),
        };
    }
    let confirmation = match analytics.try_record_confirmed(events) {
        Ok(confirmation) => confirmation,
        Err(reason) => return refused(reason),
    };
    match confirmation.await {
        Ok(()) => response::success(),
        Err(e) => {
            tracing::error!(error = %e, "reported events were not written");
            response::message(StatusCode::INTERNAL_SERVER_ERROR, "database error")
        }
    }
}
