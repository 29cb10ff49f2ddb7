//! The writer's second sink: batches posted to a reporter endpoint (`POST /events`, the
//! reporter's published contract) instead of inserted into ClickHouse.
//!
//! Everything in front of it is the writer's: the queue, the batching, the spool, shutdown
//! and stats. Each batch is one JSON array of at most [`MAX_BATCH`] events, each with its
//! `eventId` (the event's own UUID v7) and its `timestamp` (Unix seconds), so a batch sent
//! again is stored once by the receiving end. What the answers mean:
//!
//! | answer | the sink |
//! | --- | --- |
//! | `200` | the batch is done |
//! | `503`, `429`, `408`, other `5xx`, a timeout, a connection error | retries the same batch after a backoff, or after `Retry-After` when the answer has one |
//! | an untrusted certificate, one for another host, a port that does not speak TLS | pauses ([`Stats::paused`](super::Stats)) with the reason, keeps the events, and tries again with backoff |
//! | `401`, `403` | pauses ([`Stats::paused`](super::Stats)), keeps the events, and tries again with backoff |
//! | `422` naming bad items by `index` | dead-letters those items and sends the others at once, with their ids unchanged |
//! | `422` naming none, any other answer | pauses and keeps the events: retrying cannot lose them, dropping them could |

use std::{borrow::Cow, fmt, time::Duration};

use bytes::Bytes;
use http::{
    HeaderValue, Request, StatusCode, Uri,
    header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER},
};
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    connection::{self, Connection, HttpClient},
    error::{Error, Result},
    event::Event,
};

use super::{
    PauseReason,
    handle::Shared,
    sink,
    stats::{Counters, StatsLog},
    worker::{self, Backoff, Outcome},
};

/// The most events in one request: the reporter's limit for `/events`.
pub const MAX_BATCH: usize = 1_000;

/// The longest `Retry-After` honoured; a longer one is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How long an idle connection to the endpoint is kept for the next batch.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most bytes of an answer read (its JSON names the bad items of a batch).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Where a reporting writer posts and the bearer token it sends. The token is never shown.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) token: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Target {
    /// Checks the URL and the token, for [`Builder::build`].
    pub(crate) fn validate(&self, max_rows: usize) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        let https = self.url.starts_with("https://");
        if !https && !self.url.starts_with("http://") {
            return bad("the reporter URL must start with http:// or https://".into());
        }
        if https && !cfg!(feature = "rustls") {
            return bad(
                "reporting to an https:// URL needs the `rustls` feature of idp-analytics \
                 (on by default; enable it again with `features = [\"rustls\"]`)"
                    .into(),
            );
        }
        if self.url.parse::<Uri>().is_err() {
            return bad("the reporter URL is not a valid URL".into());
        }
        if self.token.is_empty() || HeaderValue::from_str(&self.token).is_err() {
            return bad("the reporter token must be a non-empty, visible ASCII string".into());
        }
        if max_rows > MAX_BATCH {
            return bad(format!(
                "a reporting writer sends at most {MAX_BATCH} events a request (max rows)"
            ));
        }
        Ok(())
    }
}

/// One event as the reporter takes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    account_id: u64,
    event: &'a str,
    /// Unix seconds: the event's stored time, so that a resend is the same row.
    timestamp: u32,
    event_id: Uuid,
    #[serde(skip_serializing_if = "str::is_empty")]
    method: &'a str,
    #[serde(skip_serializing_if = "is_zero_u16")]
    status: u16,
    #[serde(skip_serializing_if = "is_zero_u64")]
    latency_us: u64,
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

impl<'a> From<&'a Event> for Wire<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            account_id: e.account_id(),
            event: e.event_type(),
            timestamp: e.unix_seconds(),
            event_id: e.event_id(),
            method: e.method(),
            status: e.status(),
            latency_us: e.latency_us(),
        }
    }
}

/// The JSON body of a batch.
pub(crate) fn encode(events: &[Event]) -> Vec<u8> {
    let wire: Vec<Wire<'_>> = events.iter().map(Wire::from).collect();
    // Numbers, strings and UUIDs always serialize.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// What the reporter's answer means for the batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `200`: done.
    Stored,
    /// Try the same batch again: after `Retry-After` when given, else after a backoff.
    Retry(Option<Duration>, String),
    /// Stop and keep the events, for this reason; try again after a backoff.
    Pause(PauseReason, String),
    /// `422` naming these items (positions in the batch, each once, in order).
    BadItems(Vec<usize>, String),
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ItemError>,
}

#[derive(Deserialize)]
struct ItemError {
    index: usize,
}

/// Reads an answer: its status, its `Retry-After` and, for a `422`, its JSON body.
pub(crate) fn interpret(
    status: StatusCode,
    retry_after: Option<&HeaderValue>,
    body: &[u8],
    batch_len: usize,
) -> Reply {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    let message = answer
        .as_ref()
        .map(|a| a.message.chars().take(200).collect::<String>())
        .unwrap_or_default();
    let what = format!("{status} {message}");
    match status {
        StatusCode::OK => Reply::Stored,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Reply::Pause(
            PauseReason::ReporterToken,
            format!("the reporter endpoint refused the token ({what})"),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => {
            let mut bad: Vec<usize> = answer
                .map(|a| a.errors.into_iter().map(|e| e.index).collect())
                .unwrap_or_default();
            bad.sort_unstable();
            bad.dedup();
            if bad.is_empty() || bad.iter().any(|&i| i >= batch_len) {
                Reply::Pause(
                    PauseReason::ReporterAnswer,
                    format!(
                        "the reporter endpoint refused the batch without naming a bad item \
                         ({what}); the events are kept"
                    ),
                )
            } else {
                Reply::BadItems(bad, what)
            }
        }
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
            Reply::Retry(parse_retry_after(retry_after), what)
        }
        s if s.is_server_error() => Reply::Retry(parse_retry_after(retry_after), what),
        _ => Reply::Pause(
            PauseReason::ReporterAnswer,
            format!("the reporter endpoint answered {what}; the events are kept"),
        ),
    }
}

/// `Retry-After` in seconds (the reporter sends seconds; an HTTP date is not read).
fn parse_retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Why a request got no answer: a TLS or protocol failure that retrying cannot fix pauses
/// the sink (`pause`); the network, a timeout, retries.
struct Unanswered {
    pause: Option<PauseReason>,
    detail: String,
}

/// Posts batches to a reporter endpoint.
pub(crate) struct RestSink {
    /// Bodies are sent with gzip until the endpoint answers one `415`.
    gzip: std::sync::atomic::AtomicBool,
    client: HttpClient<Full<Bytes>>,
    uri: Uri,
    authorization: HeaderValue,
    timeout: Duration,
}

impl RestSink {
    /// The sink for `target`, its client made from `connection`'s settings (its TLS roots,
    /// connect timeout, `TCP_NODELAY`). Fails on a target [`Target::validate`] refuses, or
    /// on CA certificates that cannot be read.
    pub(crate) fn new(connection: &Connection, target: &Target) -> Result<Self> {
        let uri: Uri = target
            .url
            .parse()
            .map_err(|_| Error::Config("the reporter URL is not a valid URL".into()))?;
        let client = connection::http_client(&connection.settings(), &uri, POOL_IDLE_TIMEOUT)?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", target.token))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        authorization.set_sensitive(true);
        Ok(Self {
            gzip: std::sync::atomic::AtomicBool::new(true),
            client,
            uri,
            authorization,
            timeout: connection.send_timeout() + connection.receive_timeout(),
        })
    }

    /// Sends one batch and reads what the answer means. A `415` to a gzip body turns gzip
    /// off for good and sends the batch again at once, plain.
    pub(crate) async fn post(&self, events: &[Event]) -> Reply {
        use std::sync::atomic::Ordering::Relaxed;
        let json = encode(events);
        let gzip = self.gzip.load(Relaxed);
        let mut answer = self.exchange(&json, gzip).await;
        if gzip && matches!(&answer, Ok((s, ..)) if *s == StatusCode::UNSUPPORTED_MEDIA_TYPE) {
            tracing::info!("the reporter endpoint does not take gzip bodies; sending them plain");
            self.gzip.store(false, Relaxed);
            answer = self.exchange(&json, false).await;
        }
        match answer {
            Err(Unanswered {
                pause: Some(reason),
                detail,
            }) => Reply::Pause(reason, detail),
            Err(Unanswered {
                pause: None,
                detail,
            }) => Reply::Retry(None, detail),
            Ok((status, retry_after, body)) => {
                interpret(status, retry_after.as_ref(), &body, events.len())
            }
        }
    }

    /// One request: its status, `Retry-After` and body, or why there was no answer.
    async fn exchange(
        &self,
        json: &[u8],
        gzip: bool,
    ) -> std::result::Result<(StatusCode, Option<HeaderValue>, Bytes), Unanswered> {
        let mut request = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, self.authorization.clone());
        let body = if gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
            Bytes::from(gzip_bytes(json))
        } else {
            Bytes::copy_from_slice(json)
        };
        let request = request.body(Full::new(body)).map_err(|e| Unanswered {
            pause: Some(PauseReason::Other),
            detail: format!("could not make the request: {e}"),
        })?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let pause = match sink::classify_network(&e) {
                    sink::Failure::Pause(reason) => Some(reason),
                    _ => None,
                };
                let detail = format!(
                    "the reporter endpoint could not be reached: {}",
                    sink::chain_text(&e)
                );
                Unanswered { pause, detail }
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok((parts.status, parts.headers.get(RETRY_AFTER).cloned(), body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Unanswered {
                pause: None,
                detail: format!(
                    "the reporter endpoint did not answer within {:?}",
                    self.timeout
                ),
            })?
    }
}

/// `bytes` compressed with gzip at a fast level.
pub(crate) fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Sends one batch until the endpoint stores it, every item is dead-lettered, or a shutdown
/// deadline passes. The worker's retry loop, for this sink.
pub(super) async fn write(
    sink: &RestSink,
    shared: &Shared,
    backoff: &mut Backoff,
    log: &mut StatsLog,
    events: &[Event],
) -> Outcome {
    let config = &shared.config;
    let counters = &shared.counters;
    let mut batch: Cow<'_, [Event]> = Cow::Borrowed(events);
    let mut dead_lettered = false;
    loop {
        if shared.abort.load(std::sync::atomic::Ordering::Acquire) {
            return Outcome::Aborted;
        }
        let reply = tokio::select! {
            r = sink.post(&batch) => r,
            () = shared.until_aborted() => return Outcome::Aborted,
        };
        log.observe(shared.stats());
        let wait = match reply {
            Reply::Stored => {
                worker::resume(shared, "the reporter endpoint stored a batch");
                Counters::add(&counters.written, batch.len());
                Counters::add(&counters.batches, 1);
                backoff.reset();
                tracing::debug!(rows = batch.len(), "analytics batch reported");
                return if dead_lettered {
                    Outcome::DeadLettered
                } else {
                    Outcome::Written
                };
            }
            Reply::BadItems(bad, reason) => {
                let (refused, rest): (Vec<_>, Vec<_>) = batch
                    .iter()
                    .cloned()
                    .enumerate()
                    .partition(|(i, _)| bad.binary_search(i).is_ok());
                let refused: Vec<Event> = refused.into_iter().map(|(_, e)| e).collect();
                Counters::add(&counters.dead_lettered, refused.len());
                sink::dead_letter(config.dead_letter_dir.as_deref(), &refused, &reason);
                dead_lettered = true;
                batch = Cow::Owned(rest.into_iter().map(|(_, e)| e).collect());
                if batch.is_empty() {
                    return Outcome::DeadLettered;
                }
                continue;
            }
            Reply::Pause(reason, detail) => {
                worker::pause(shared, reason, &detail, batch.len());
                backoff.next()
            }
            Reply::Retry(after, reason) => {
                let step = backoff.next();
                tracing::warn!(%reason, rows = batch.len(), retry_after = ?after, "analytics report failed; retrying");
                after.unwrap_or(step)
            }
        };
        Counters::add(&counters.retried_batches, 1);
        let slept = tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = shared.until_aborted() => false,
        };
        if !slept {
            return Outcome::Aborted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn reads_each_answer() {
        let ok = interpret(StatusCode::OK, None, br#"{"message":"success"}"#, 3);
        assert_eq!(ok, Reply::Stored);
        let busy = interpret(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&value("7")),
            br#"{"message":"the analytics queue is full; retry later"}"#,
            3,
        );
        assert!(matches!(busy, Reply::Retry(Some(d), _) if d == Duration::from_secs(7)));
        let huge = interpret(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&value("99999")),
            b"",
            3,
        );
        assert!(matches!(huge, Reply::Retry(Some(d), _) if d == MAX_RETRY_AFTER));
        assert!(matches!(
            interpret(StatusCode::BAD_GATEWAY, None, b"<html>", 3),
            Reply::Retry(None, _)
        ));
        assert!(matches!(
            interpret(StatusCode::UNAUTHORIZED, None, b"", 3),
            Reply::Pause(..)
        ));
        let bad = interpret(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            br#"{"message":"2 of 3","errors":[{"index":2,"message":"x"},{"index":0,"message":"y"},{"index":2,"message":"z"}]}"#,
            3,
        );
        assert!(matches!(bad, Reply::BadItems(ref i, _) if i == &[0, 2]));
        // A 422 naming no item, or one past the batch, drops nothing.
        for body in [
            &br#"{"message":"the batch is empty"}"#[..],
            br#"{"message":"x","errors":[{"index":3,"message":"x"}]}"#,
            b"not json",
        ] {
            assert!(matches!(
                interpret(StatusCode::UNPROCESSABLE_ENTITY, None, body, 3),
                Reply::Pause(..)
            ));
        }
        for status in [
            StatusCode::NOT_FOUND,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::BAD_REQUEST,
        ] {
            assert!(matches!(interpret(status, None, b"", 3), Reply::Pause(..)));
        }
    }

    #[test]
    fn the_wire_format_carries_ids_and_times() {
        let event = Event::new(42, "search")
            .unwrap()
            .with_status(201)
            .with_method(http::Method::POST)
            .with_latency(Duration::from_micros(1500));
        let body: serde_json::Value =
            serde_json::from_slice(&encode(std::slice::from_ref(&event))).unwrap();
        assert_eq!(
            body,
            serde_json::json!([{
                "accountId": 42,
                "event": "search",
                "timestamp": event.unix_seconds(),
                "eventId": event.event_id().to_string(),
                "method": "POST",
                "status": 201,
                "latencyUs": 1500,
            }])
        );
        let plain = Event::new(1, "x").unwrap();
        let body: serde_json::Value = serde_json::from_slice(&encode(&[plain])).unwrap();
        assert_eq!(body[0].as_object().unwrap().len(), 4);
    }

    /// Bytes of body per event for batches of 1 000 events like the layer's, plain and with
    /// gzip (`cargo test --lib body_bytes -- --nocapture` prints them).
    #[test]
    fn body_bytes_per_event_with_and_without_gzip() {
        let routes = ["/projects/{id}", "/search", "/billing/invoices/{id}"];
        let events: Vec<Event> = (0..MAX_BATCH as u64)
            .map(|i| {
                Event::new(i % 50 + 1, routes[(i % 3) as usize])
                    .unwrap()
                    .with_method(http::Method::GET)
                    .with_status(200)
                    .with_latency(Duration::from_micros(100 + i * 37 % 5000))
            })
            .collect();
        let plain = encode(&events);
        let gzip = gzip_bytes(&plain);
        let per = |n: usize| n as f64 / events.len() as f64;
        println!(
            "bytes per event: {:.1} plain, {:.1} gzip",
            per(plain.len()),
            per(gzip.len())
        );
        assert!(gzip.len() * 3 < plain.len());
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut back)
            .unwrap();
        assert_eq!(back, plain);
    }

    #[test]
    fn the_token_is_never_shown() {
        let target = Target {
            url: "http://idp/events".into(),
            token: "s3cret-token".into(),
        };
        assert!(!format!("{target:?}").contains("s3cret"));
        assert!(target.validate(1000).is_ok());
        assert!(target.validate(1001).is_err());
        let https = Target {
            url: "https://idp/events".into(),
            ..target.clone()
        };
        assert_eq!(https.validate(10).is_ok(), cfg!(feature = "rustls"));
        let ftp = Target {
            url: "ftp://idp/events".into(),
            ..target.clone()
        };
        assert!(ftp.validate(10).is_err());
        let empty = Target {
            token: String::new(),
            ..target
        };
        assert!(empty.validate(10).is_err());
    }
}
