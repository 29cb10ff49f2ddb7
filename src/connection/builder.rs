//! [`ConnectionBuilder`]: the settings of a [`Connection`], checked by one `build()`.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use url::Url;

use super::{Connection, Inner, Redacted, client, redact_url};
use crate::error::{Error, Result};

/// Configures a [`Connection`]. Made by [`Connection::builder`].
///
/// Every `with_*` method states its default; [`build`](Self::build) checks everything at
/// once.
#[derive(Clone)]
pub struct ConnectionBuilder {
    pub(super) urls: Vec<String>,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) ca: Vec<CaSource>,
    pub(super) platform_roots: bool,
    pub(super) connect_timeout: Duration,
    pub(super) send_timeout: Duration,
    pub(super) receive_timeout: Duration,
    pub(super) nodelay: bool,
}

/// A CA certificate to trust besides the platform's.
#[derive(Clone)]
pub(super) enum CaSource {
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

struct TlsDebug<'a>(&'a ConnectionBuilder);

impl fmt::Debug for TlsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.0.ca)
            .field("platform_roots", &self.0.platform_roots)
            .finish()
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

impl ConnectionBuilder {
    pub(super) fn new(urls: Vec<String>) -> Self {
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

    /// Settings without a ClickHouse URL, for the clients of other targets (a webhook):
    /// their TLS roots and connect settings are read by
    /// [`http_client`](super::http_client).
    pub(crate) fn for_other_targets() -> Self {
        Self::new(Vec::new())
    }

    /// The TLS and connect settings as `Debug` shows them, for a builder that keeps its
    /// settings in a `ConnectionBuilder`.
    pub(crate) fn tls_debug(&self) -> impl fmt::Debug + '_ {
        TlsDebug(self)
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
            client::clickhouse_https(&self)?
        } else {
            client::clickhouse_http(&self)
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
pub(super) fn split_urls(text: &str) -> Vec<String> {
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
