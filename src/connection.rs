//! [`Connection`]: one ClickHouse connection (URLs, credentials, TLS, timeouts) from which
//! every client of this crate is made.
//!
//! The writer, [`Usage`](crate::Usage), the [`InactivityWatch`](crate::InactivityWatch) and
//! the admin router all talk to ClickHouse through clients made here, so the URL, the user,
//! the password and the certificates are given once:
//!
//! ```no_run
//! use idp_analytics::{Analytics, Connection};
//!
//! # async fn run() -> idp_analytics::Result<()> {
//! let connection = Connection::builder("https://abc123.eu-west-1.aws.clickhouse.cloud:8443")
//!     .with_user("default")
//!     .with_password(std::env::var("CLICKHOUSE_PASSWORD").unwrap_or_default())
//!     .build()?;
//! let analytics = Analytics::builder_with(connection).build()?;
//! let usage = analytics.usage(); // the same connection, nothing configured twice
//! # Ok(())
//! # }
//! ```
//!
//! # TLS
//!
//! `https://` URLs are spoken through rustls (feature `rustls`, on by default). The server's
//! certificate is checked against the platform's root certificates (read by
//! `rustls-native-certs`, which also reads the bundle named by `SSL_CERT_FILE` and the
//! directory named by `SSL_CERT_DIR`, as OpenSSL does) and against any CA added with
//! [`with_ca_pem`](ConnectionBuilder::with_ca_pem) or
//! [`with_ca_file`](ConnectionBuilder::with_ca_file). Verification cannot be turned off.
//! Without the feature, [`build`](ConnectionBuilder::build) refuses an `https://` URL and
//! says which feature to enable.
//!
//! # Secrets
//!
//! The password (given with [`with_password`](ConnectionBuilder::with_password), or in a URL
//! as `https://user:password@host:8443`) is sent in the `X-ClickHouse-Key` header only. The
//! `Debug` output of [`Connection`] and [`ConnectionBuilder`] shows `<redacted>` in its
//! place, and errors name a URL by its scheme, host and port only.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use url::Url;

use crate::error::{Error, Result};

/// How long an idle pooled connection is kept. ClickHouse closes an idle keep-alive
/// connection after its `keep_alive_timeout`: 3 s by default on 18.16, 30 s on 26.9. Staying
/// below the smallest of them means the client never reuses a connection the server is
/// closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// TCP keep-alive probes on open connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Configures a [`Connection`]. Made by [`Connection::builder`].
///
/// Every `with_*` method states its default; [`build`](Self::build) checks everything at
/// once.
#[derive(Clone)]
pub struct ConnectionBuilder {
    urls: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    ca: Vec<CaSource>,
    platform_roots: bool,
    connect_timeout: Duration,
    send_timeout: Duration,
    receive_timeout: Duration,
    nodelay: bool,
}

#[derive(Clone)]
enum CaSource {
    File(PathBuf),
    Pem(Vec<u8>),
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Pem(bytes) => write!(f, "{} bytes of PEM", bytes.len()),
        }
    }
}

impl fmt::Debug for ConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionBuilder")
            .field("urls", &RedactedUrls(&self.urls))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .field("ca", &self.ca)
            .field("platform_roots", &self.platform_roots)
            .field("connect_timeout", &self.connect_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("receive_timeout", &self.receive_timeout)
            .field("nodelay", &self.nodelay)
            .finish()
    }
}

/// Shows `<redacted>` for a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

struct RedactedUrls<'a>(&'a [String]);

impl fmt::Debug for RedactedUrls<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|u| redact_url(u)))
            .finish()
    }
}

/// A URL as it may be shown: scheme, host, port and path, without credentials, and its query
/// (which may hold `password=`) replaced by `?<redacted>`.
pub(crate) fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => {
            let mut shown = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
            if let Some(port) = parsed.port() {
                shown.push_str(&format!(":{port}"));
            }
            shown.push_str(parsed.path());
            if parsed.query().is_some() {
                shown.push_str("?<redacted>");
            }
            shown
        }
        Err(_) => "<an unparsable URL>".to_owned(),
    }
}

impl ConnectionBuilder {
    fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            user: None,
            password: None,
            ca: Vec::new(),
            platform_roots: true,
            connect_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            receive_timeout: Duration::from_secs(30),
            nodelay: true,
        }
    }

    /// Replaces the URLs, in order of preference.
    pub(crate) fn with_urls(mut self, urls: Vec<String>) -> Self {
        self.urls = urls;
        self
    }

    /// The ClickHouse user. Default: the user in the URL (`https://user@host`), or none
    /// sent (the server's `default` user).
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The ClickHouse password. Default: the password in the URL
    /// (`https://user:password@host`, percent-encoded), or none.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Also trusts the CA certificates in this PEM file, for a server whose certificate a
    /// private CA signed. Default: none; may be called more than once. The file is read by
    /// [`build`](Self::build), which fails if it holds no certificate.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca.push(CaSource::File(path.into()));
        self
    }

    /// Also trusts the CA certificates in these PEM bytes. Default: none; may be called more
    /// than once. [`build`](Self::build) fails if they hold no certificate.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca.push(CaSource::Pem(pem.into()));
        self
    }

    /// Whether the platform's root certificates (and `SSL_CERT_FILE`, `SSL_CERT_DIR`) are
    /// trusted. Default: `true`. With `false`, only the CAs added with
    /// [`with_ca_file`](Self::with_ca_file) and [`with_ca_pem`](Self::with_ca_pem) are.
    pub fn with_platform_roots(mut self, trust: bool) -> Self {
        self.platform_roots = trust;
        self
    }

    /// How long to wait for a TCP connection to ClickHouse, and then again for the TLS
    /// handshake on it. Default: 5 s each.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long sending one chunk of an insert may take. Default: 10 s.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How long to wait for ClickHouse's answer once a request is sent. Default: 30 s.
    pub fn with_receive_timeout(mut self, timeout: Duration) -> Self {
        self.receive_timeout = timeout;
        self
    }

    /// Whether `TCP_NODELAY` is set on connections. Default: `true`; without it every small
    /// insert waits about 40 ms on a delayed ACK.
    pub fn with_nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Checks the settings, reads the CA certificates, and makes the connection's HTTP
    /// client. Nothing here talks to ClickHouse.
    ///
    /// Fails with [`Error::Config`] on a URL that is not `http://` or `https://` with a host,
    /// URLs that carry different credentials, an `https://` URL without the `rustls`
    /// feature, a CA file or PEM without a certificate, no trusted root at all for an
    /// `https://` URL, or a zero timeout.
    pub fn build(self) -> Result<Connection> {
        let bad = |what: String| Err(Error::Config(what));
        if self.urls.is_empty() {
            return bad("a connection needs at least one ClickHouse URL".into());
        }
        for (name, d) in [
            ("connect timeout", self.connect_timeout),
            ("send timeout", self.send_timeout),
            ("receive timeout", self.receive_timeout),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be more than zero"));
            }
        }
        let mut urls = Vec::with_capacity(self.urls.len());
        let mut url_credentials: Option<UrlCredentials> = None;
        for (i, raw) in self.urls.iter().enumerate() {
            let (url, credentials) = parse_url(raw)?;
            if i == 0 {
                url_credentials = credentials;
            } else if credentials.is_some() && credentials != url_credentials {
                return bad(format!(
                    "the URLs carry different credentials ({} differs from the first)",
                    redact_url(raw)
                ));
            }
            urls.push(url);
        }
        let user = self
            .user
            .clone()
            .or_else(|| url_credentials.as_ref().map(|(user, _)| user.clone()));
        let password = self
            .password
            .clone()
            .or_else(|| url_credentials.and_then(|(_, password)| password));
        let https = urls.iter().any(|u| u.scheme() == "https");
        let http = if https {
            https_client(&self)?
        } else {
            http_client(&self, true)
        };
        let mut client = http.with_url(urls[0].as_str()).with_validation(false);
        if let Some(user) = &user {
            client = client.with_user(user);
        }
        if let Some(password) = &password {
            client = client.with_password(password);
        }
        Ok(Connection {
            inner: Arc::new(Inner {
                settings: self,
                urls,
                user,
                has_password: password.is_some(),
                client,
            }),
        })
    }
}

/// One URL, or several separated by commas; blanks around each ignored.
fn split_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A user and, perhaps, a password, as a URL carries them.
type UrlCredentials = (String, Option<String>);

/// Parses one URL: `http://` or `https://` with a host; its credentials taken out.
fn parse_url(raw: &str) -> Result<(Url, Option<UrlCredentials>)> {
    let bad = |what: String| Err(Error::Config(what));
    let mut url = match Url::parse(raw) {
        Ok(url) => url,
        Err(err) => return bad(format!("the ClickHouse URL cannot be parsed: {err}")),
    };
    match url.scheme() {
        "http" => {}
        "https" if cfg!(feature = "rustls") => {}
        "https" => {
            return bad(format!(
                "{} is an https:// URL, and HTTPS needs the `rustls` feature of idp-analytics \
                 (on by default; enable it again with `features = [\"rustls\"]`)",
                redact_url(raw)
            ));
        }
        _ => {
            return bad(format!(
                "the ClickHouse URL must start with http:// or https://, not {}://",
                url.scheme()
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return bad("the ClickHouse URL has no host".into());
    }
    if url.fragment().is_some() {
        return bad(format!(
            "the ClickHouse URL {} has a #fragment",
            redact_url(raw)
        ));
    }
    let credentials = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| {
                Error::Config(format!(
                    "the credentials in {} are not valid percent-encoded UTF-8",
                    redact_url(raw)
                ))
            })
        };
        let user = decode(url.username())?;
        let password = url.password().map(decode).transpose()?;
        // Both always succeed on an http(s) URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some((user, password))
    };
    Ok((url, credentials))
}

/// `%XX` decoding of a URL's user or password.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn tcp_connector(settings: &ConnectionBuilder, enforce_http: bool) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(settings.nodelay);
    connector.set_keepalive(Some(TCP_KEEPALIVE));
    connector.set_connect_timeout(Some(settings.connect_timeout));
    connector.enforce_http(enforce_http);
    connector
}

fn http_client(settings: &ConnectionBuilder, enforce_http: bool) -> clickhouse::Client {
    let http = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(tcp_connector(settings, enforce_http));
    clickhouse::Client::with_http_client(http)
}

#[cfg(not(feature = "rustls"))]
fn https_client(_: &ConnectionBuilder) -> Result<clickhouse::Client> {
    // `parse_url` refuses https:// URLs without the feature.
    Err(Error::Config(
        "HTTPS needs the `rustls` feature of idp-analytics".into(),
    ))
}

#[cfg(feature = "rustls")]
fn https_client(settings: &ConnectionBuilder) -> Result<clickhouse::Client> {
    let config = tls::client_config(settings)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp_connector(settings, false));
    let connector = tls::Handshake {
        inner: https,
        // The TCP connect has its own limit inside; past twice that, the handshake is stuck.
        limit: settings.connect_timeout * 2,
        handshake: settings.connect_timeout,
    };
    let http = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector);
    Ok(clickhouse::Client::with_http_client(http))
}

/// One ClickHouse connection: its URLs, credentials, TLS roots and timeouts, and a pool of
/// HTTP connections that every client made from it shares. Cheap to clone.
///
/// Made by [`Connection::builder`]. See the [module docs](self).
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ConnectionBuilder,
    /// Without credentials.
    urls: Vec<Url>,
    user: Option<String>,
    has_password: bool,
    /// For the first URL, with the credentials; clones share its pool.
    client: clickhouse::Client,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let urls: Vec<String> = inner.urls.iter().map(|u| redact_url(u.as_str())).collect();
        f.debug_struct("Connection")
            .field("urls", &urls)
            .field("user", &inner.user)
            .field("password", &inner.has_password.then_some(Redacted))
            .field("ca", &inner.settings.ca)
            .field("platform_roots", &inner.settings.platform_roots)
            .field("connect_timeout", &inner.settings.connect_timeout)
            .field("send_timeout", &inner.settings.send_timeout)
            .field("receive_timeout", &inner.settings.receive_timeout)
            .field("nodelay", &inner.settings.nodelay)
            .finish()
    }
}

impl Connection {
    /// Starts configuring a connection to the ClickHouse HTTP interface at `url`
    /// (`http://127.0.0.1:8123`, `https://host:8443`, `https://user:password@host:8443`).
    ///
    /// `url` may list several servers of one cluster separated by commas
    /// (`http://a:8123,http://b:8123`, as `CLICKHOUSE_URL` may), blanks around each ignored:
    /// it is then the same as [`builder_for`](Self::builder_for) with that list. A comma in
    /// a password in a URL is written `%2C`.
    pub fn builder(url: impl Into<String>) -> ConnectionBuilder {
        ConnectionBuilder::new(split_urls(&url.into()))
    }

    /// Like [`builder`](Self::builder), with several URLs of one cluster (the same user and
    /// password for each). [`client`](Self::client) talks to the first;
    /// [`clients`](Self::clients) gives one client per URL.
    pub fn builder_for<I, S>(urls: I) -> ConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConnectionBuilder::new(urls.into_iter().map(Into::into).collect())
    }

    /// A client for the first URL, with the user and password set. Clients share the
    /// connection's pool of HTTP connections.
    ///
    /// Validation of row types is off: rows are read and written as plain `RowBinary`,
    /// which every supported server version speaks (18.16 knows no
    /// `RowBinaryWithNamesAndTypes`).
    pub fn client(&self) -> clickhouse::Client {
        self.inner.client.clone()
    }

    /// One client per URL, in the order given, each as [`client`](Self::client) is.
    pub fn clients(&self) -> Vec<clickhouse::Client> {
        self.inner
            .urls
            .iter()
            .map(|url| self.inner.client.clone().with_url(url.as_str()))
            .collect()
    }

    /// The URLs, without credentials.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.inner.urls.iter().map(Url::as_str)
    }

    /// The first URL as it may be shown in a log: scheme, host, port and path.
    pub fn display_url(&self) -> String {
        redact_url(self.inner.urls[0].as_str())
    }

    /// The user sent, if any.
    pub fn user(&self) -> Option<&str> {
        self.inner.user.as_deref()
    }

    /// The TCP connect timeout (and, separately, the TLS handshake's).
    pub fn connect_timeout(&self) -> Duration {
        self.inner.settings.connect_timeout
    }

    /// How long sending one chunk of a request may take.
    pub fn send_timeout(&self) -> Duration {
        self.inner.settings.send_timeout
    }

    /// How long to wait for ClickHouse's answer once a request is sent.
    pub fn receive_timeout(&self) -> Duration {
        self.inner.settings.receive_timeout
    }

    /// The settings this connection was made from.
    pub(crate) fn settings(&self) -> ConnectionBuilder {
        self.inner.settings.clone()
    }

    /// Whether URL number `index` (from 0) is `https://`.
    pub(crate) fn is_https(&self, index: usize) -> bool {
        self.inner
            .urls
            .get(index)
            .is_some_and(|u| u.scheme() == "https")
    }

    /// The host and port of URL number `index`.
    fn host_port(&self, index: usize) -> Option<(String, u16)> {
        let url = self.inner.urls.get(index)?;
        Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
    }

    /// Whether the port of URL number `index` answers a plain HTTP request (`HTTP/1.x`):
    /// after an `https://` handshake went unanswered, this tells a plain-HTTP port.
    pub(crate) async fn answers_plain_http(&self, index: usize) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Some((host, port)) = self.host_port(index) else {
            return false;
        };
        let limit = self.connect_timeout();
        let probe = async {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream
                .write_all(format!("GET /ping HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
                .await?;
            let mut head = [0u8; 7];
            stream.read_exact(&mut head).await?;
            Ok::<_, std::io::Error>(&head == b"HTTP/1.")
        };
        matches!(tokio::time::timeout(limit, probe).await, Ok(Ok(true)))
    }

    /// Whether the port of URL number `index` completes (or fails on a certificate, which
    /// proves as much) a TLS handshake: after an `http://` request was reset unanswered,
    /// this tells an HTTPS port.
    pub(crate) async fn answers_tls(&self, index: usize) -> bool {
        #[cfg(not(feature = "rustls"))]
        let _ = index;
        #[cfg(feature = "rustls")]
        {
            let Some((host, port)) = self.host_port(index) else {
                return false;
            };
            tls::answers_tls(&self.inner.settings, &host, port).await
        }
        #[cfg(not(feature = "rustls"))]
        {
            false
        }
    }
}

#[cfg(feature = "rustls")]
pub(crate) mod tls {
    //! The rustls configuration, and a connector that bounds the TLS handshake.

    use std::{
        future::Future,
        pin::Pin,
        sync::Arc,
        task::{Context, Poll},
        time::Duration,
    };

    use http::Uri;
    use rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, pem::PemObject},
    };

    use super::{CaSource, ConnectionBuilder};
    use crate::error::{Error, Result};

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    pub(super) fn client_config(settings: &ConnectionBuilder) -> Result<ClientConfig> {
        let mut roots = RootCertStore::empty();
        if settings.platform_roots {
            let found = rustls_native_certs::load_native_certs();
            for err in &found.errors {
                tracing::debug!(error = %err, "a platform root certificate could not be read");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "platform root certificates");
        }
        for source in &settings.ca {
            let (what, certs): (String, Vec<_>) = match source {
                CaSource::File(path) => {
                    let what = format!("the CA file {}", path.display());
                    let iter = CertificateDer::pem_file_iter(path)
                        .map_err(|e| Error::Config(format!("{what} cannot be read: {e}")))?;
                    (what, iter.collect())
                }
                CaSource::Pem(pem) => (
                    "the CA PEM".to_owned(),
                    CertificateDer::pem_slice_iter(pem).collect(),
                ),
            };
            let certs: Vec<CertificateDer<'static>> =
                certs
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::Config(format!("{what} is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config(format!("{what} holds no certificate")));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::Config(format!("{what}: {e}")))?;
            }
        }
        if roots.is_empty() {
            return Err(Error::Config(
                "no trusted root certificate for https://: the platform has none (install \
                 ca-certificates, or set SSL_CERT_FILE) and no CA was added"
                    .into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }

    /// The TLS handshake did not finish in time, though the TCP connection was made.
    #[derive(Debug)]
    pub(crate) struct HandshakeTimedOut(pub(crate) Duration);

    impl std::fmt::Display for HandshakeTimedOut {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "the TLS handshake did not finish within {:?}", self.0)
        }
    }

    impl std::error::Error for HandshakeTimedOut {}

    /// Wraps the HTTPS connector with a limit on connecting and the handshake together.
    #[derive(Clone)]
    pub(super) struct Handshake<C> {
        pub(super) inner: C,
        pub(super) limit: Duration,
        pub(super) handshake: Duration,
    }

    impl<C> tower::Service<Uri> for Handshake<C>
    where
        C: tower::Service<Uri> + Send,
        C::Future: Send + 'static,
        C::Error: Into<BoxError>,
    {
        type Response = C::Response;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.inner.poll_ready(cx).map_err(Into::into)
        }

        fn call(&mut self, uri: Uri) -> Self::Future {
            let future = self.inner.call(uri);
            let (limit, handshake) = (self.limit, self.handshake);
            Box::pin(async move {
                match tokio::time::timeout(limit, future).await {
                    Ok(result) => result.map_err(Into::into),
                    Err(_) => Err(Box::new(HandshakeTimedOut(handshake)) as BoxError),
                }
            })
        }
    }

    /// Whether `host:port` speaks TLS: a finished handshake, or one refused for the
    /// certificate, says yes; garbage, a reset or silence says no.
    pub(super) async fn answers_tls(settings: &ConnectionBuilder, host: &str, port: u16) -> bool {
        use tower::Service as _;
        // No root is trusted: any certificate is refused, which proves TLS as well as a
        // finished handshake would, and nothing is sent over it either way.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let Ok(config) = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth()
            })
        else {
            return false;
        };
        let mut connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(super::tcp_connector(settings, false));
        let Ok(uri) = format!("https://{host}:{port}/").parse::<Uri>() else {
            return false;
        };
        let attempt = tokio::time::timeout(settings.connect_timeout * 2, connector.call(uri));
        match attempt.await {
            Ok(Ok(_)) => true,
            Ok(Err(err)) => matches!(
                rustls_error(err.as_ref()),
                Some(rustls::Error::InvalidCertificate(_))
            ),
            Err(_) => false,
        }
    }

    /// The rustls error in an error's chain, looking inside `io::Error`s (whose `source`
    /// skips the error they wrap).
    pub(crate) fn rustls_error<'a>(
        error: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a rustls::Error> {
        super::find_in_chain(error)
    }
}

/// The first error of type `T` in `error`'s chain, looking inside `io::Error`s.
pub(crate) fn find_in_chain<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = match err.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => None,
            },
            None => err.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_or_several_urls() {
        let urls = |text: &str| -> Vec<String> {
            let connection = Connection::builder(text).build().unwrap();
            connection.urls().map(str::to_owned).collect()
        };
        assert_eq!(urls("http://a:1"), ["http://a:1/".to_owned()]);
        assert_eq!(
            urls(" http://a:1 , http://b:2,"),
            ["http://a:1/".to_owned(), "http://b:2/".to_owned()]
        );
        assert_eq!(
            Connection::builder("http://a:1,http://b:2")
                .build()
                .unwrap()
                .clients()
                .len(),
            2
        );
        assert!(Connection::builder("").build().is_err());
        let err = Connection::builder("http://a:1,b:2").build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: the ClickHouse URL must start with http:// or https://, \
             not b://"
        );
    }

    #[test]
    fn debug_redacts_passwords_everywhere() {
        let builder = Connection::builder("http://alice:s3cr%40t@127.0.0.1:8123/?password=x2")
            .with_password("hunter2");
        let shown = format!("{builder:?}");
        for secret in ["s3cr", "hunter2", "x2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("<redacted>"), "{shown}");
        let connection = builder.build().unwrap();
        let shown = format!("{connection:?}");
        for secret in ["s3cr", "hunter2", "x2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("http://127.0.0.1:8123/?<redacted>"),
            "{shown}"
        );
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn credentials_come_out_of_the_url() {
        let connection = Connection::builder("http://alice:s3cr%40t@127.0.0.1:8123")
            .build()
            .unwrap();
        assert_eq!(connection.user(), Some("alice"));
        assert_eq!(
            connection.urls().collect::<Vec<_>>(),
            ["http://127.0.0.1:8123/"]
        );
        assert!(connection.inner.has_password);
        // An explicit user wins over the URL's.
        let connection = Connection::builder("http://alice@127.0.0.1:8123")
            .with_user("bob")
            .build()
            .unwrap();
        assert_eq!(connection.user(), Some("bob"));
        assert!(!connection.inner.has_password);
    }

    #[test]
    fn refuses_bad_urls_without_echoing_secrets() {
        for url in [
            "ftp://alice:hunter2@host/",
            "127.0.0.1:8123",
            "http://",
            "http://alice:hunter2@host:8123/#frag",
            "http://alice:%zzhunter2@host:8123/",
        ] {
            let err = Connection::builder(url).build().unwrap_err();
            let shown = err.to_string();
            assert!(matches!(err, Error::Config(_)), "{url}: {shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let err = Connection::builder_for(["http://a:one@host1:8123", "http://a:two@host2:8123"])
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("two"), "{err}");
    }

    #[test]
    fn refuses_zero_timeouts() {
        let err = Connection::builder("http://127.0.0.1:8123")
            .with_receive_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("receive timeout"), "{err}");
    }

    #[cfg(not(feature = "rustls"))]
    #[test]
    fn https_without_the_feature_names_it() {
        let err = Connection::builder("https://127.0.0.1:8443")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("`rustls` feature"), "{err}");
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn ca_pem_without_a_certificate_is_refused() {
        let err = Connection::builder("https://127.0.0.1:8443")
            .with_ca_pem("not a certificate")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("holds no certificate"), "{err}");
        let err = Connection::builder("https://127.0.0.1:8443")
            .with_ca_file("/nonexistent/ca.pem")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let err = Connection::builder("https://127.0.0.1:8443")
            .with_platform_roots(false)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("no trusted root"), "{err}");
    }
}
