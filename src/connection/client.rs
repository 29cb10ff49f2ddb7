//! The HTTP clients made from a connection's settings: ClickHouse's, and
//! [`http_client`] for any other HTTP(S) target (a reporter endpoint, a webhook) with the
//! same TLS roots, connect timeout, `TCP_NODELAY` and keep-alive.

use std::time::Duration;

use http::Uri;
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};

use super::ConnectionBuilder;
#[cfg(feature = "rustls")]
use super::tls;
use crate::error::{Error, Result};

/// How long an idle pooled connection is kept. ClickHouse closes an idle keep-alive
/// connection after its `keep_alive_timeout`: 3 s by default on 18.16, 30 s on 26.9. Staying
/// below the smallest of them means the client never reuses a connection the server is
/// closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// TCP keep-alive probes on open connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

pub(super) fn tcp_connector(settings: &ConnectionBuilder, enforce_http: bool) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(settings.nodelay);
    connector.set_keepalive(Some(TCP_KEEPALIVE));
    connector.set_connect_timeout(Some(settings.connect_timeout));
    connector.enforce_http(enforce_http);
    connector
}

/// ClickHouse's client for `http://` URLs only.
pub(super) fn clickhouse_http(settings: &ConnectionBuilder) -> clickhouse::Client {
    let http = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(tcp_connector(settings, true));
    clickhouse::Client::with_http_client(http)
}

/// ClickHouse's client when a URL is `https://`.
#[cfg(not(feature = "rustls"))]
pub(super) fn clickhouse_https(_: &ConnectionBuilder) -> Result<clickhouse::Client> {
    // `parse_url` refuses https:// URLs without the feature.
    Err(Error::Config(
        "HTTPS needs the `rustls` feature of idp-analytics".into(),
    ))
}

/// ClickHouse's client when a URL is `https://`.
#[cfg(feature = "rustls")]
pub(super) fn clickhouse_https(settings: &ConnectionBuilder) -> Result<clickhouse::Client> {
    let config = tls::client_config(settings)?;
    let http = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(tls_connector(settings, config));
    Ok(clickhouse::Client::with_http_client(http))
}

/// The connector of an [`HttpClient`]: TCP, then TLS for `https://` (feature `rustls`),
/// the handshake bounded.
#[cfg(feature = "rustls")]
pub(crate) type Connector = tls::Handshake<hyper_rustls::HttpsConnector<HttpConnector>>;

/// The connector of an [`HttpClient`]: plain TCP (without the `rustls` feature, `https://`
/// is refused by [`http_client`]).
#[cfg(not(feature = "rustls"))]
pub(crate) type Connector = HttpConnector;

/// A pooled HTTP/1 client for any HTTP(S) target, made by [`http_client`].
pub(crate) type HttpClient<B> = HyperClient<Connector, B>;

/// TCP with the connection's settings, wrapped in rustls with `config`, with a limit on
/// connecting and the handshake together.
#[cfg(feature = "rustls")]
fn tls_connector(settings: &ConnectionBuilder, config: rustls::ClientConfig) -> Connector {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp_connector(settings, false));
    tls::Handshake {
        inner: https,
        // The TCP connect has its own limit inside; past twice that, the handshake is stuck.
        limit: settings.connect_timeout * 2,
        handshake: settings.connect_timeout,
    }
}

/// A client for `target` and other URLs like it, from a connection's settings: the same
/// trusted roots (the platform's, `SSL_CERT_FILE`, `SSL_CERT_DIR` and the added CAs; no way
/// to turn verification off), the connect timeout (and again for the TLS handshake),
/// `TCP_NODELAY` as set, TCP keep-alive, and idle pooled connections kept `pool_idle`.
///
/// For an `http://` target no root is read: should the client be given an `https://` URL
/// anyway, it trusts no certificate. Without the `rustls` feature an `https://` target is
/// refused with an error naming the feature (and the target by scheme and host only: a
/// URL's path may hold a secret).
pub(crate) fn http_client<B>(
    settings: &ConnectionBuilder,
    target: &Uri,
    pool_idle: Duration,
) -> Result<HttpClient<B>>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let https = match target.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(Error::Config(format!(
                "{} must start with http:// or https://",
                shown(target)
            )));
        }
    };
    #[cfg(feature = "rustls")]
    let connector = {
        let config = if https {
            tls::client_config(settings)?
        } else {
            tls::trusting_nothing()?
        };
        tls_connector(settings, config)
    };
    #[cfg(not(feature = "rustls"))]
    let connector = {
        if https {
            return Err(Error::Config(format!(
                "{} is an https:// URL, and HTTPS needs the `rustls` feature of idp-analytics \
                 (on by default; enable it again with `features = [\"rustls\"]`)",
                shown(target)
            )));
        }
        tcp_connector(settings, true)
    };
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(pool_idle)
        .build(connector))
}

/// A URL as an error may name it: its scheme and host (and port), no path, query or user.
pub(crate) fn shown(target: &Uri) -> String {
    match (target.scheme_str(), target.host()) {
        (Some(scheme), Some(host)) => match target.port_u16() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        },
        _ => "the URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Uri {
        url.parse().unwrap()
    }

    #[test]
    fn a_client_for_any_http_target() {
        let settings = crate::Connection::builder("http://127.0.0.1:8123");
        let plain =
            http_client::<String>(&settings, &target("http://idp/events"), POOL_IDLE_TIMEOUT);
        assert!(plain.is_ok());
        let err = http_client::<String>(&settings, &target("ftp://idp/x"), POOL_IDLE_TIMEOUT)
            .err()
            .unwrap();
        assert!(err.to_string().contains("http:// or https://"), "{err}");
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn https_targets_read_the_same_roots() {
        let base =
            || crate::Connection::builder("http://127.0.0.1:8123").with_platform_roots(false);
        for (settings, expected) in [
            (
                base().with_ca_file("/nonexistent/ca.pem"),
                "/nonexistent/ca.pem",
            ),
            (base(), "no trusted root"),
        ] {
            let err = http_client::<String>(
                &settings,
                &target("https://idp/secret-path"),
                POOL_IDLE_TIMEOUT,
            )
            .err()
            .unwrap();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let settings = base();
        // An http:// target reads no root at all.
        assert!(
            http_client::<String>(&settings, &target("http://idp/"), POOL_IDLE_TIMEOUT).is_ok()
        );
    }

    #[cfg(not(feature = "rustls"))]
    #[test]
    fn https_targets_need_the_feature() {
        let settings = crate::Connection::builder("http://127.0.0.1:8123");
        let err = http_client::<String>(
            &settings,
            &target("https://user:pw@idp:8443/s3cret"),
            POOL_IDLE_TIMEOUT,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("`rustls` feature") && err.contains("https://idp:8443"),
            "{err}"
        );
        assert!(!err.contains("s3cret") && !err.contains("pw"), "{err}");
    }
}
