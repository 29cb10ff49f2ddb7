//! [`PauseReason`]: why the writer stopped writing and keeps its events.

use std::fmt;

/// Why the writer is paused, in [`Stats::paused`](super::Stats::paused).
///
/// The writer pauses on every error it cannot positively identify as either passing
/// (the network, a timeout, an overloaded server: retried) or as bad rows (dead-lettered):
/// it keeps every event, in memory and in the spool, logs the reason once, and tries again
/// with backoff until the settings are fixed. It logs again when it resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PauseReason {
    /// ClickHouse refused the user or the password (codes 192–195, 516).
    Authentication,
    /// The user may not write to the table (code 497 `ACCESS_DENIED`, 164 `READONLY`).
    AccessDenied,
    /// The database, the table or one of its columns is missing or has the wrong type.
    Table,
    /// The server is older than the oldest supported version.
    UnsupportedServer,
    /// The server's certificate is not signed by a trusted CA: add the CA with
    /// [`with_ca_file`](super::Builder::with_ca_file) or `SSL_CERT_FILE`.
    UntrustedCertificate,
    /// The server's certificate is not valid for the URL's host name.
    CertificateName,
    /// The server's certificate was refused for another reason (expired, not yet valid,
    /// revoked, malformed).
    Certificate,
    /// The TLS handshake failed for another reason.
    Tls,
    /// An `https://` URL reached a port that does not speak TLS (it answers plain HTTP, or
    /// nothing): use `http://`, or the server's HTTPS port.
    NotTls,
    /// An `http://` URL reached a port that speaks TLS: use `https://`.
    TlsPort,
    /// The answer was not HTTP.
    NotHttp,
    /// An HTTP error without a ClickHouse error code: a proxy's or a load balancer's error
    /// page, or not a ClickHouse server at all.
    NotClickHouse,
    /// ClickHouse answered with an error code the writer does not know.
    UnknownCode(u32),
    /// The URL's scheme cannot be used by the client.
    Scheme,
    /// A reporting writer's endpoint refused its token (`401`, `403`): see
    /// [`Analytics::builder_reporting_to`](super::Analytics::builder_reporting_to).
    ReporterToken,
    /// A reporting writer's endpoint answered what the writer does not act on: a `422` that
    /// names no bad item, or a status that is neither success, retry nor refusal.
    ReporterAnswer,
    /// Another error the writer does not understand.
    Other,
}

impl PauseReason {
    /// A short name, for logs and metric labels: `authentication`, `untrusted_certificate`...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::AccessDenied => "access_denied",
            Self::Table => "table",
            Self::UnsupportedServer => "unsupported_server",
            Self::UntrustedCertificate => "untrusted_certificate",
            Self::CertificateName => "certificate_name",
            Self::Certificate => "certificate",
            Self::Tls => "tls",
            Self::NotTls => "not_tls",
            Self::TlsPort => "tls_port",
            Self::NotHttp => "not_http",
            Self::NotClickHouse => "not_clickhouse",
            Self::UnknownCode(_) => "unknown_code",
            Self::Scheme => "scheme",
            Self::ReporterToken => "reporter_token",
            Self::ReporterAnswer => "reporter_answer",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authentication => f.write_str("ClickHouse refused the user or the password"),
            Self::AccessDenied => f.write_str("the user may not write to the table"),
            Self::Table => {
                f.write_str("the database, table or a column is missing or has the wrong type")
            }
            Self::UnsupportedServer => f.write_str("the server's version is not supported"),
            Self::UntrustedCertificate => f.write_str(
                "the server's certificate is not signed by a trusted CA (add the CA with \
                 with_ca_file, with_ca_pem or SSL_CERT_FILE)",
            ),
            Self::CertificateName => {
                f.write_str("the server's certificate is not valid for the URL's host name")
            }
            Self::Certificate => f.write_str("the server's certificate was refused"),
            Self::Tls => f.write_str("the TLS handshake failed"),
            Self::NotTls => f.write_str(
                "the port does not speak TLS (https:// to a plain-HTTP port? use http://, \
                 or the server's HTTPS port)",
            ),
            Self::TlsPort => {
                f.write_str("the port speaks TLS (http:// to an HTTPS port? use https://)")
            }
            Self::NotHttp => f.write_str("the server's answer was not HTTP"),
            Self::NotClickHouse => f.write_str(
                "an HTTP error without a ClickHouse error code (a proxy's error page, or not \
                 ClickHouse)",
            ),
            Self::UnknownCode(code) => {
                write!(
                    f,
                    "ClickHouse answered with error code {code}, which the writer does not know"
                )
            }
            Self::Scheme => f.write_str("the URL's scheme is not supported by the client"),
            Self::ReporterToken => f.write_str("the reporter endpoint refused the token"),
            Self::ReporterAnswer => {
                f.write_str("the reporter endpoint answered what the writer does not act on")
            }
            Self::Other => f.write_str("an error the writer does not understand"),
        }
    }
}
