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

mod builder;
mod chain;
mod client;
#[cfg(feature = "rustls")]
pub(crate) mod tls;

use std::{fmt, sync::Arc, time::Duration};

use url::Url;

pub use builder::ConnectionBuilder;
pub(crate) use chain::find_in_chain;
pub(crate) use client::{HttpClient, http_client};

use crate::error::{Error, Result};

/// The URL of [`Connection::from_env`] when `CLICKHOUSE_URL` is not set.
const DEFAULT_URL: &str = "http://127.0.0.1:8123";

/// Shows `<redacted>` for a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
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
        ConnectionBuilder::new(builder::split_urls(&url.into()))
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

    /// The connection the environment describes, as the examples read it:
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `CLICKHOUSE_URL` | the URL, or several of one cluster separated by commas (see [`builder`](Self::builder)) | `http://127.0.0.1:8123` |
    /// | `CLICKHOUSE_USER` | the user ([`with_user`](ConnectionBuilder::with_user)) | the URL's, or none |
    /// | `CLICKHOUSE_PASSWORD` | the password ([`with_password`](ConnectionBuilder::with_password)) | the URL's, or none |
    ///
    /// The trusted roots for `https://` are the platform's, with `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` as OpenSSL reads them (see the [module docs](self#tls)); every other
    /// setting has its default.
    ///
    /// Fails as [`ConnectionBuilder::build`] does, and on a variable that is not UTF-8.
    ///
    /// ```no_run
    /// # fn run() -> idp_analytics::Result<()> {
    /// let connection = idp_analytics::Connection::from_env()?;
    /// let analytics = idp_analytics::Analytics::builder_with(connection).build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::Config(format!("{name} is not valid UTF-8")))
            }
        };
        let url = var("CLICKHOUSE_URL")?.unwrap_or_else(|| DEFAULT_URL.to_owned());
        let mut builder = Self::builder(url);
        if let Some(user) = var("CLICKHOUSE_USER")? {
            builder = builder.with_user(user);
        }
        if let Some(password) = var("CLICKHOUSE_PASSWORD")? {
            builder = builder.with_password(password);
        }
        builder.build()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

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
