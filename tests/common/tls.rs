//! A TLS front for tests: terminates TLS with the test CA's server certificate for
//! 127.0.0.1 (made by `scripts/clickhouse` in `$CLICKHOUSE_DIR/tls`) and passes the bytes on
//! to a plain-HTTP server, so the real reporter or a webhook is reached over `https://`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

/// The directory of the test CA: beside `CLICKHOUSE_CA_FILE` when it is set, else
/// `target/clickhouse/tls`.
pub fn tls_dir() -> PathBuf {
    match std::env::var("CLICKHOUSE_CA_FILE") {
        Ok(file) => PathBuf::from(file)
            .parent()
            .expect("CLICKHOUSE_CA_FILE names a file")
            .to_owned(),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clickhouse/tls"),
    }
}

/// The CA that signed the front's certificate.
pub fn ca_file() -> PathBuf {
    tls_dir().join("ca.crt")
}

/// A CA that signed nothing the front shows.
pub fn other_ca_file() -> PathBuf {
    tls_dir().join("other-ca.crt")
}

/// A TLS listener on 127.0.0.1 (a free port) forwarding to a plain-HTTP `upstream`.
pub struct TlsFront {
    addr: SocketAddr,
}

impl TlsFront {
    /// Starts the front before `upstream` (`http://host:port`, the path ignored).
    pub async fn start(upstream: &str) -> TlsFront {
        let dir = tls_dir();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("server.crt"))
                .unwrap_or_else(|e| {
                    panic!(
                        "no test certificate in {} ({e}): start ClickHouse with \
                         `scripts/clickhouse start`, which makes it",
                        dir.display()
                    )
                })
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .replace("localhost", "127.0.0.1")
            .parse()
            .expect("the upstream must be http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
        TlsFront { addr }
    }

    /// `https://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}
