//! [`WebhookNotifier`]: POSTs each notification as JSON, with retries and a timeout.

use std::{fmt, future::Future, path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::Connect},
    rt::TokioExecutor,
};

use super::{
    notification::{Digest, Notification},
    notifier::{DigestNotifier, Notifier, NotifyFuture},
};
use crate::{
    connection::{self, ConnectionBuilder},
    error::{Error, Result},
};

/// How long an idle connection to the webhook is kept for the next notification.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type SendFuture = Pin<
    Box<
        dyn Future<
                Output = std::result::Result<
                    http::Response<hyper::body::Incoming>,
                    hyper_util::client::legacy::Error,
                >,
            > + Send,
    >,
>;

/// POSTs each notification as JSON to a URL, with a timeout per attempt and retries.
///
/// A `2xx` answer is a delivery. Connection errors, timeouts, `408`, `429` and `5xx`
/// answers are tried again, up to [`with_max_attempts`](WebhookBuilder::with_max_attempts)
/// requests, waiting between them (doubling, with jitter, or as long as a `Retry-After`
/// header of at most the longest backoff asks); any other answer gives up at once. Giving up
/// logs an error and returns [`Error::Webhook`].
///
/// ```no_run
/// use std::time::Duration;
/// use idp_analytics::canary::WebhookNotifier;
///
/// # fn run() -> idp_analytics::Result<()> {
/// let webhook = WebhookNotifier::builder("http://hooks.internal:8080/quiet-accounts")
///     .with_header("authorization", "Bearer s3cret")
///     .with_timeout(Duration::from_secs(5))
///     .with_max_attempts(5)
///     .build()?;
/// # Ok(())
/// # }
/// ```
///
/// [`build`](WebhookBuilder::build) speaks `http://` and, with the `rustls` feature (on by
/// default), `https://`: the webhook's certificate is checked against the platform's roots
/// (with `SSL_CERT_FILE` and `SSL_CERT_DIR`) and any CA added with
/// [`with_ca_file`](WebhookBuilder::with_ca_file) or
/// [`with_ca_pem`](WebhookBuilder::with_ca_pem), as a [`Connection`](crate::Connection)'s
/// is; verification cannot be turned off. A certificate that is refused is not tried
/// again: the error names the host and what was wrong with it. To connect another way, pass
/// a connector to [`build_with_connector`](WebhookBuilder::build_with_connector).
#[derive(Clone)]
pub struct WebhookNotifier {
    inner: Arc<Webhook>,
}

struct Webhook {
    uri: Uri,
    /// Host and port only: the path of a webhook URL often holds its secret.
    host: String,
    headers: HeaderMap,
    timeout: Duration,
    max_attempts: u32,
    min_backoff: Duration,
    max_backoff: Duration,
    send: Box<dyn Fn(Request<String>) -> SendFuture + Send + Sync>,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("host", &self.inner.host)
            .field("timeout", &self.inner.timeout)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Configures a [`WebhookNotifier`]. Made by [`WebhookNotifier::builder`].
///
/// Its `Debug` shows the URL's scheme and host only, and the headers' names only: a
/// webhook's path and its `authorization` header are often its secret.
#[derive(Clone)]
pub struct WebhookBuilder {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    max_attempts: u32,
    min_backoff: Duration,
    max_backoff: Duration,
    /// The TLS roots and the connect settings, as a connection keeps them.
    tls: ConnectionBuilder,
}

impl fmt::Debug for WebhookBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("WebhookBuilder")
            .field("url", &redacted(&self.url))
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("tls", &self.tls.tls_debug())
            .finish()
    }
}

/// A URL as it may be shown: its scheme and host (no user, password, path or query).
fn redacted(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                let host = authority.as_str().rsplit('@').next().unwrap_or_default();
                format!("{scheme}://{host}/...")
            }
            _ => "(not an absolute URL)".into(),
        },
        Err(_) => "(not a URL)".into(),
    }
}

impl WebhookNotifier {
    /// Starts configuring a webhook that POSTs to `url`.
    pub fn builder(url: impl Into<String>) -> WebhookBuilder {
        WebhookBuilder {
            url: url.into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            max_attempts: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            tls: ConnectionBuilder::for_other_targets(),
        }
    }

    /// POSTs `notification`, retrying as configured.
    pub async fn send(&self, notification: &Notification) -> Result<()> {
        let body = serde_json::to_string(notification)
            .map_err(|e| Error::Config(format!("notification not serializable: {e}")))?;
        self.post(body, Some(notification.account_id)).await
    }

    /// POSTs `digest` (its JSON, as [`Digest`] documents it), retrying as configured.
    pub async fn send_digest(&self, digest: &Digest) -> Result<()> {
        let body = serde_json::to_string(digest)
            .map_err(|e| Error::Config(format!("digest not serializable: {e}")))?;
        self.post(body, None).await
    }

    /// POSTs `body`; `account_id` (none for a digest) is for the logs.
    async fn post(&self, body: String, account_id: Option<u64>) -> Result<()> {
        let hook = &*self.inner;
        let mut attempt = 0;
        let last = loop {
            attempt += 1;
            let mut request = Request::post(hook.uri.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .header(
                    header::USER_AGENT,
                    concat!("idp-analytics/", env!("CARGO_PKG_VERSION")),
                )
                .body(body.clone())
                .map_err(|e| Error::Config(e.to_string()))?;
            request.headers_mut().extend(hook.headers.clone());
            let (error, retry, retry_after) = match tokio::time::timeout(
                hook.timeout,
                (hook.send)(request),
            )
            .await
            {
                Ok(Ok(response)) if response.status().is_success() => {
                    tracing::debug!(host = %hook.host, account_id = ?account_id, attempt, "webhook delivered");
                    return Ok(());
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retry = status.is_server_error()
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS;
                    let retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (format!("answered {status}"), retry, retry_after)
                }
                Ok(Err(e)) => match tls_failure(&e, &hook.host) {
                    Some(refused) => (refused, false, None),
                    None => (error_chain(&e), true, None),
                },
                Err(_) => (format!("no answer within {:?}", hook.timeout), true, None),
            };
            if !retry || attempt >= hook.max_attempts {
                break error;
            }
            let wait = backoff(hook.min_backoff, hook.max_backoff, attempt)
                .max(retry_after.unwrap_or_default().min(hook.max_backoff));
            tracing::warn!(
                host = %hook.host,
                account_id = ?account_id,
                attempt,
                error = %error,
                ?wait,
                "webhook failed; retrying"
            );
            tokio::time::sleep(wait).await;
        };
        tracing::error!(
            host = %hook.host,
            account_id = ?account_id,
            attempts = attempt,
            error = %last,
            "webhook gave up: the notification was not delivered"
        );
        Err(Error::Webhook {
            host: hook.host.clone(),
            attempts: attempt,
            last,
        })
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        let this = self.clone();
        Box::pin(async move { this.send(&notification).await.map_err(Into::into) })
    }
}

/// A webhook delivers digests too (a [flood](super::WatchBuilder::with_digest) or a
/// [scheduled](super::WatchBuilder::with_daily_digest) one), as one POST of the digest's JSON.
impl DigestNotifier for WebhookNotifier {
    fn notify_digest(&self, digest: Digest) -> NotifyFuture {
        let this = self.clone();
        Box::pin(async move { this.send_digest(&digest).await.map_err(Into::into) })
    }
}

impl WebhookBuilder {
    /// Adds a header to every request, such as `authorization`. Default: none besides
    /// `content-type: application/json` and `user-agent`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long one request may take, connecting included. Default: 10 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many requests to make before giving up, the first included. Default: 4.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The first and the longest wait between attempts; waits double in between, with
    /// jitter. Default: 500 ms and 10 s.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// Also trusts the CA certificates in this PEM file, for a webhook whose certificate a
    /// private CA signed. Default: none; may be called more than once. The file is read by
    /// [`build`](Self::build), which fails if it holds no certificate.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls = self.tls.with_ca_file(path);
        self
    }

    /// Also trusts the CA certificates in these PEM bytes. Default: none; may be called more
    /// than once. [`build`](Self::build) fails if they hold no certificate.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls = self.tls.with_ca_pem(pem);
        self
    }

    /// Whether the platform's root certificates (and `SSL_CERT_FILE`, `SSL_CERT_DIR`) are
    /// trusted. Default: `true`. With `false`, only the CAs added with
    /// [`with_ca_file`](Self::with_ca_file) and [`with_ca_pem`](Self::with_ca_pem) are.
    pub fn with_platform_roots(mut self, trust: bool) -> Self {
        self.tls = self.tls.with_platform_roots(trust);
        self
    }

    /// Checks the configuration and makes the notifier, speaking `http://`, and `https://`
    /// with the `rustls` feature (without it an `https://` URL is refused, naming the
    /// feature). TCP connections set `TCP_NODELAY` and keep-alive; connecting and the TLS
    /// handshake each have the [timeout](Self::with_timeout) of a request at most.
    pub fn build(self) -> Result<WebhookNotifier> {
        let checked = self.check()?;
        let tls = self.tls.clone().with_connect_timeout(self.timeout);
        let client = connection::http_client::<String>(&tls, &checked.uri, POOL_IDLE_TIMEOUT)?;
        Ok(self.finish(checked, client))
    }

    /// Checks the configuration and makes the notifier, connecting through `connector`
    /// (a connector of your own: a proxy, another TLS stack). The CAs given to this builder
    /// are not used.
    pub fn build_with_connector<C>(self, connector: C) -> Result<WebhookNotifier>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let checked = self.check()?;
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build::<C, String>(connector);
        Ok(self.finish(checked, client))
    }

    /// Everything but the client, checked.
    fn check(&self) -> Result<Checked> {
        let bad = |what: String| Err(Error::Config(what));
        // Errors never repeat the URL: its path often holds the webhook's secret.
        let uri: Uri = match self.url.parse() {
            Ok(uri) => uri,
            Err(e) => return bad(format!("the webhook URL is not a valid URL: {e}")),
        };
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return bad("the webhook URL must be absolute (http://host/path)".into());
        };
        if scheme != "http" && scheme != "https" {
            return bad(format!(
                "the webhook URL must be http or https, not {}",
                redacted(&self.url)
            ));
        }
        let host = authority
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| Error::Config(format!("header name {name:?}: {e}")))?;
            // The value is never shown: it is often a token.
            let mut value = HeaderValue::try_from(value.as_str())
                .map_err(|e| Error::Config(format!("the value of header {name}: {e}")))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if self.timeout.is_zero() || self.min_backoff.is_zero() {
            return bad("webhook timeout and minimum backoff must be more than zero".into());
        }
        if self.max_attempts == 0 {
            return bad("webhook attempts must be at least 1".into());
        }
        if self.max_backoff < self.min_backoff {
            return bad("webhook maximum backoff must not be shorter than the minimum".into());
        }
        Ok(Checked { uri, host, headers })
    }

    fn finish<C>(self, checked: Checked, client: HyperClient<C, String>) -> WebhookNotifier
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let Checked { uri, host, headers } = checked;
        WebhookNotifier {
            inner: Arc::new(Webhook {
                uri,
                host,
                headers,
                timeout: self.timeout,
                max_attempts: self.max_attempts,
                min_backoff: self.min_backoff,
                max_backoff: self.max_backoff,
                send: Box::new(move |request| Box::pin(client.request(request))),
            }),
        }
    }
}

/// A webhook's settings checked by [`WebhookBuilder::build`].
struct Checked {
    uri: Uri,
    host: String,
    headers: HeaderMap,
}

/// What was wrong with the webhook's TLS, when that is why a request failed: retrying
/// cannot fix it. Names the host only.
fn tls_failure(error: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    #[cfg(feature = "rustls")]
    if let Some(tls) = crate::connection::tls::rustls_error(error) {
        use rustls::{CertificateError as Cert, Error as Tls};
        return Some(match tls {
            Tls::InvalidCertificate(Cert::UnknownIssuer) => format!(
                "the certificate of {host} is not signed by a trusted CA (add the CA with \
                 with_ca_file or with_ca_pem, or SSL_CERT_FILE)"
            ),
            Tls::InvalidCertificate(
                Cert::NotValidForName | Cert::NotValidForNameContext { .. },
            ) => {
                format!("the certificate of {host} is not valid for that host name")
            }
            Tls::InvalidCertificate(other) => {
                format!("the certificate of {host} was refused: {other:?}")
            }
            other => format!("the TLS handshake with {host} failed: {other}"),
        });
    }
    #[cfg(not(feature = "rustls"))]
    let _ = (error, host);
    None
}

/// The wait after failed attempt `attempt` (1-based): `min` doubled each time up to `max`,
/// drawn between half and all of it.
fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    let step = min
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(max);
    step / 2 + (step / 2).mul_f64(fastrand::f64())
}

/// An error and its sources, `: `-separated (hyper's own message is terse).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_webhook_configuration_is_checked() {
        assert!(
            WebhookNotifier::builder("http://127.0.0.1:9/hook")
                .build()
                .is_ok()
        );
        // https:// is spoken with the `rustls` feature, refused (naming it) without.
        let https =
            WebhookNotifier::builder("https://user:pw@example.invalid:8443/T0/secret").build();
        assert_eq!(https.is_ok(), cfg!(feature = "rustls"));
        if let Err(err) = https {
            let err = err.to_string();
            assert!(err.contains("`rustls` feature"), "{err}");
            assert!(err.contains("https://example.invalid:8443"), "{err}");
            assert!(!err.contains("secret") && !err.contains("pw"), "{err}");
        }
        // A CA that is not a certificate is refused when the notifier is built.
        #[cfg(feature = "rustls")]
        {
            let err = WebhookNotifier::builder("https://example.invalid/hook")
                .with_ca_pem("not a certificate")
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("holds no certificate"), "{err}");
        }
        assert!(WebhookNotifier::builder("/relative").build().is_err());
        assert!(WebhookNotifier::builder("ftp://x/y").build().is_err());
        assert!(
            WebhookNotifier::builder("http://x/")
                .with_header("bad header", "v")
                .build()
                .is_err()
        );
        assert!(
            WebhookNotifier::builder("http://x/")
                .with_max_attempts(0)
                .build()
                .is_err()
        );
        let hook = WebhookNotifier::builder("http://user:pw@hooks:8080/T0/secret")
            .build()
            .unwrap();
        assert_eq!(hook.inner.host, "hooks:8080");
        assert!(!format!("{hook:?}").contains("secret"));
    }

    #[test]
    fn canary_webhook_builder_and_errors_hide_secrets() {
        let builder = WebhookNotifier::builder("http://user:pw@hooks:8080/T0/s3cret-path?key=k3y")
            .with_header("authorization", "Bearer t0ken-value");
        let debug = format!("{builder:?}");
        for secret in ["pw", "s3cret-path", "k3y", "t0ken-value", "user"] {
            assert!(!debug.contains(secret), "{secret}: {debug}");
        }
        assert!(
            debug.contains("hooks:8080") && debug.contains("authorization"),
            "{debug}"
        );
        for (url, header) in [
            ("ftp://hooks/s3cret-path", "v"),
            ("hooks/s3cret-path", "v"),
            ("http://hooks/s3cret-path\u{7f}", "v"),
            ("http://hooks/s3cret-path", "t0ken-value\n"),
        ] {
            let err = WebhookNotifier::builder(url)
                .with_header("authorization", header)
                .build()
                .unwrap_err()
                .to_string();
            assert!(
                !err.contains("s3cret-path") && !err.contains("t0ken-value"),
                "{url:?}: {err}"
            );
        }
    }

    #[test]
    fn canary_backoff_doubles_with_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 1..10 {
            let step = (min * 2u32.pow(attempt - 1)).min(max);
            let wait = backoff(min, max, attempt);
            assert!(wait >= step / 2 && wait <= step, "{attempt}: {wait:?}");
        }
    }
}
