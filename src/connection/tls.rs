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

use super::{ConnectionBuilder, builder::CaSource};
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
        let certs: Vec<CertificateDer<'static>> = certs
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

/// A configuration that trusts no certificate at all: for a client made for `http://`
/// targets, which must not speak TLS to anyone unverified.
pub(super) fn trusting_nothing() -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
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
pub(crate) struct Handshake<C> {
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
    let Ok(config) = trusting_nothing() else {
        return false;
    };
    let mut connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .wrap_connector(super::client::tcp_connector(settings, false));
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
