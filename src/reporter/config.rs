//! [`Reporter`] and its [`ReporterBuilder`]: who may report, limits, and when to answer.

use std::{fmt, sync::Arc, time::Duration};

use crate::{
    error::{Error, Result},
    writer::Analytics,
};

use super::{
    auth::Reporters,
    resend::Resends,
    service::{ReporterService, Route, Settings},
    validate::Window,
};

/// How far in the future an event's `timestamp` may be: 5 minutes, for clocks that differ.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The reporter endpoint: `POST /event` and `POST /events` into an [`Analytics`] writer.
///
/// Cheap to clone (one `Arc`). Mount it with `into_router` (feature `axum`) or serve
/// [`service`](Self::service) with hyper or any tower-based server.
#[derive(Clone)]
pub struct Reporter {
    settings: Arc<Settings>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.settings, f)
    }
}

impl Reporter {
    /// The endpoint with every default (see [`ReporterBuilder`]).
    pub fn new(analytics: Analytics, reporters: Reporters) -> Self {
        ReporterBuilder::new(analytics, reporters).into_reporter()
    }

    /// Starts configuring the endpoint.
    pub fn builder(analytics: Analytics, reporters: Reporters) -> ReporterBuilder {
        ReporterBuilder::new(analytics, reporters)
    }

    /// The endpoint as a tower service that tells `/event` from `/events` by the request's
    /// path (any other path is `404`), for hyper or any tower-based server.
    pub fn service(&self) -> ReporterService {
        ReporterService::new(self.settings.clone(), Route::ByPath)
    }

    /// The endpoint's OpenAPI 3.1 document (feature `openapi`, on by default), with this
    /// reporter's limits, as served at `GET /openapi.json`: pretty JSON ending with a
    /// newline. `docs/openapi/reporter.json` in the repository is the document of a
    /// reporter with the default settings.
    #[cfg(feature = "openapi")]
    pub fn openapi_json(&self) -> bytes::Bytes {
        self.settings.openapi_json()
    }

    #[cfg(feature = "axum")]
    pub(crate) fn route(&self, route: Route) -> ReporterService {
        ReporterService::new(self.settings.clone(), route)
    }
}

/// Configures a [`Reporter`]. Made by [`Reporter::builder`]; every `with_*` method states
/// its default, and [`build`](Self::build) checks them all at once.
#[derive(Clone, Debug)]
pub struct ReporterBuilder {
    analytics: Analytics,
    reporters: Reporters,
    confirm_writes: bool,
    max_age: Duration,
    max_body_bytes: usize,
    max_batch_body_bytes: usize,
    max_batch_len: usize,
    retry_after: Duration,
    body_timeout: Duration,
    resend_window: Duration,
}

impl ReporterBuilder {
    fn new(analytics: Analytics, reporters: Reporters) -> Self {
        Self {
            analytics,
            reporters,
            confirm_writes: false,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 64 * 1024,
            max_batch_body_bytes: 1024 * 1024,
            max_batch_len: 1000,
            retry_after: Duration::from_secs(5),
            body_timeout: Duration::from_secs(20),
            resend_window: Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// Whether to answer only once ClickHouse has acknowledged the events. Default: `false`,
    /// and the answer comes as soon as the writer has taken them.
    ///
    /// When `true`, a `200` means the rows are in ClickHouse, and an insert that finally
    /// fails (refused as bad data, or cut short by a shutdown) answers
    /// `500 {"message":"database error"}`. The answer then waits for the writer's next
    /// batch (up to its flush interval) and, while ClickHouse is down, for as long as the
    /// writer retries: put a timeout in front if reporters need a bound.
    pub fn with_confirm_writes(mut self, confirm: bool) -> Self {
        self.confirm_writes = confirm;
        self
    }

    /// How old an event's `timestamp` may be. Default: 7 days.
    ///
    /// Older events are refused (`422`), as are events more than [`MAX_CLOCK_SKEW`] in the
    /// future.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The largest body `POST /event` reads, in bytes. Default: 64 KiB. Larger bodies are
    /// refused with `413` as soon as their `Content-Length` or their bytes tell.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The largest body `POST /events` reads, in bytes. Default: 1 MiB.
    pub fn with_max_batch_body_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_body_bytes = bytes;
        self
    }

    /// The most events in one `POST /events`. Default: 1 000. Larger batches are refused
    /// whole (`422`).
    pub fn with_max_batch_len(mut self, events: usize) -> Self {
        self.max_batch_len = events;
        self
    }

    /// The `Retry-After` sent with a `503` when the writer's queue is full or the writer is
    /// paused, rounded up to whole seconds. Default: 5 s.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// How long reading a request's whole body may take, from the first poll of the body to
    /// its last byte. Default: 20 s. A body still arriving then is answered with `408`
    /// and dropped, so a client sending a byte now and then cannot hold a request (and its
    /// buffer) open for ever.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// How long after an event's first report a resend with the same `eventId` is still
    /// found to be the same event, when that id carries no time (such as a UUID v4) and the
    /// event has no `timestamp`. Default: 7 days.
    ///
    /// Such a resend is given the time of the first report, found in this process's memory
    /// of the last [`RECENT_IDS`](super::RECENT_IDS) ids or else in the events table, over the
    /// window's rows of the event's account. A longer window reads more rows per look-up;
    /// events with a `timestamp` or a UUID v1, v6 or v7 need no look-up and are one row
    /// whenever they are sent again. See [the guarantee](super#sent-again-one-row).
    pub fn with_resend_window(mut self, window: Duration) -> Self {
        self.resend_window = window;
        self
    }

    /// Checks the configuration: body limits of at least 1 KiB, a batch limit of at least
    /// one event, a maximum age and a body timeout of more than zero, and a resend window of
    /// at least a minute.
    pub fn build(self) -> Result<Reporter> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.max_body_bytes < 1024 {
            return bad("the reporter's body limit must be at least 1024 bytes");
        }
        if self.max_batch_body_bytes < 1024 {
            return bad("the reporter's batch body limit must be at least 1024 bytes");
        }
        if self.max_batch_len == 0 {
            return bad("the reporter's batch limit must be at least one event");
        }
        if self.max_age.is_zero() {
            return bad("the reporter's maximum event age must be more than zero");
        }
        if self.body_timeout.is_zero() {
            return bad("the reporter's body timeout must be more than zero");
        }
        if self.resend_window < Duration::from_secs(60) {
            return bad("the reporter's resend window must be at least one minute");
        }
        Ok(self.into_reporter())
    }

    fn into_reporter(self) -> Reporter {
        let resends = Resends::new(
            self.analytics.query_client(),
            self.analytics.schema().clone(),
            self.resend_window,
        );
        Reporter {
            settings: Arc::new(Settings {
                resends,
                analytics: self.analytics,
                reporters: self.reporters,
                confirm_writes: self.confirm_writes,
                window: Window {
                    max_age: self.max_age,
                    max_ahead: MAX_CLOCK_SKEW,
                },
                max_body_bytes: self.max_body_bytes,
                max_batch_body_bytes: self.max_batch_body_bytes,
                max_batch_len: self.max_batch_len,
                retry_after: self.retry_after,
                body_timeout: self.body_timeout,
                #[cfg(feature = "openapi")]
                openapi: std::sync::OnceLock::new(),
            }),
        }
    }
}
