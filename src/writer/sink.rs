//! The ClickHouse end of the writer: the HTTP client, one insert of one batch, and what a
//! failed insert means (retry, pause, or dead-letter).

use std::{
    io::Write as _,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use uuid::Uuid;

use crate::{
    connection::{Connection, find_in_chain},
    error::{Error, Result},
    event::Event,
    schema::{Schema, ServerVersion},
};

use super::PauseReason;

/// One row of the events table, borrowed from an [`Event`]. Public, hidden, for the
/// counted benchmarks only.
#[doc(hidden)]
#[derive(clickhouse::Row, Serialize)]
pub struct EventRow<'a> {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
    account_id: u64,
    event_type: Utf8<'a>,
    inserted_at: u32,
    source: &'a str,
    method: &'a str,
    status: u16,
    latency_us: u64,
}

/// A `String` column's value, as bytes known to be UTF-8: RowBinary encodes both alike, and
/// the event type is not read back as UTF-8 for every row.
struct Utf8<'a>(&'a [u8]);

impl Serialize for Utf8<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'a> From<&'a Event> for EventRow<'a> {
    // Inlined into the insert loop, the row is never built in memory: its fields go from the
    // event straight to the serializer.
    #[inline]
    fn from(e: &'a Event) -> Self {
        Self {
            event_id: e.event_id(),
            account_id: e.account_id(),
            event_type: Utf8(e.event_type_bytes()),
            inserted_at: e.unix_seconds(),
            source: e.source(),
            method: e.method(),
            status: e.status(),
            latency_us: e.latency_us(),
        }
    }
}

/// An event as a line of the dead-letter file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetterLine<'a> {
    event_id: Uuid,
    account_id: u64,
    event_type: &'a str,
    /// Seconds since the Unix epoch.
    inserted_at: u32,
    source: &'a str,
    method: &'a str,
    status: u16,
    latency_us: u64,
}

impl<'a> From<&'a Event> for DeadLetterLine<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            event_id: e.event_id(),
            account_id: e.account_id(),
            event_type: e.event_type(),
            inserted_at: e.unix_seconds(),
            source: e.source(),
            method: e.method(),
            status: e.status(),
            latency_us: e.latency_us(),
        }
    }
}

/// What a failed request to ClickHouse means for the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Try again after a backoff: the network, a timeout, an overloaded server.
    Transient,
    /// ClickHouse refused the rows themselves, with a code that says so: retrying cannot
    /// help.
    BadData,
    /// Anything else: stop writing, keep the events, check the schema again and retry.
    Pause(PauseReason),
}

/// ClickHouse error codes that mean the data could not be parsed or stored. Only these
/// dead-letter a batch.
const BAD_DATA_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA
    36,  // BAD_ARGUMENTS (e.g. a value not in an Enum)
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
];

/// ClickHouse error codes that pass by themselves: retried with backoff, without pausing.
const TRANSIENT_CODES: &[u32] = &[
    3,    // UNEXPECTED_END_OF_FILE (a body cut on the way)
    32,   // ATTEMPT_TO_READ_AFTER_EOF (a Distributed insert whose shard's server died mid-way)
    159,  // TIMEOUT_EXCEEDED
    160,  // TOO_SLOW
    173,  // CANNOT_ALLOCATE_MEMORY
    201,  // QUOTA_EXCEEDED
    202,  // TOO_MANY_SIMULTANEOUS_QUERIES
    203,  // NO_FREE_CONNECTION
    209,  // SOCKET_TIMEOUT
    210,  // NETWORK_ERROR
    225,  // NO_ZOOKEEPER
    236,  // ABORTED
    241,  // MEMORY_LIMIT_EXCEEDED
    242,  // TABLE_IS_READ_ONLY (a replica without Keeper, for now)
    243,  // NOT_ENOUGH_SPACE
    252,  // TOO_MANY_PARTS
    279,  // ALL_CONNECTION_TRIES_FAILED (a Distributed table cannot reach any replica of a shard)
    285,  // TOO_FEW_LIVE_REPLICAS
    319,  // UNKNOWN_STATUS_OF_INSERT
    394,  // QUERY_WAS_CANCELLED
    425,  // SYSTEM_ERROR
    439,  // CANNOT_SCHEDULE_TASK
    999,  // KEEPER_EXCEPTION
    1000, // POCO_EXCEPTION (network and I/O errors inside the server)
];

/// ClickHouse error codes that mean the writer cannot write here until someone acts.
const PAUSE_CODES: &[(u32, PauseReason)] = &[
    (16, PauseReason::Table),           // NO_SUCH_COLUMN_IN_TABLE
    (60, PauseReason::Table),           // UNKNOWN_TABLE
    (81, PauseReason::Table),           // UNKNOWN_DATABASE
    (164, PauseReason::AccessDenied),   // READONLY
    (192, PauseReason::Authentication), // UNKNOWN_USER
    (193, PauseReason::Authentication), // WRONG_PASSWORD
    (194, PauseReason::Authentication), // REQUIRED_PASSWORD
    (195, PauseReason::Authentication), // IP_ADDRESS_NOT_ALLOWED
    (497, PauseReason::AccessDenied),   // ACCESS_DENIED
    (516, PauseReason::Authentication), // AUTHENTICATION_FAILED
];

/// The `Code: N` a ClickHouse error message starts with. 18.16 sends it only in the body
/// (`Code: 60, e.displayText() = ...`, with status 500 or one mapped from the code); 26.x
/// sends `Code: 60. DB::Exception: ...` and the `X-ClickHouse-Exception-Code` header, which
/// the client turns into `Code: 60` when the body is empty. A message that does not start
/// so (a proxy's HTML page) has no code, whatever it contains.
pub(crate) fn error_code(message: &str) -> Option<u32> {
    let rest = message.trim_start().strip_prefix("Code: ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// What a failed request means. Fails closed: only a known bad-data code dead-letters, only
/// known passing conditions are retried without a pause.
pub(crate) fn classify(error: &Error) -> Failure {
    use clickhouse::error::Error as Ch;
    match error {
        Error::ClickHouse(Ch::BadResponse(message)) => match error_code(message) {
            Some(code) if BAD_DATA_CODES.contains(&code) => Failure::BadData,
            Some(code) if TRANSIENT_CODES.contains(&code) => Failure::Transient,
            Some(code) => Failure::Pause(
                PAUSE_CODES
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map_or(PauseReason::UnknownCode(code), |(_, reason)| *reason),
            ),
            None => Failure::Pause(PauseReason::NotClickHouse),
        },
        Error::ClickHouse(Ch::Network(source)) => classify_network(source.as_ref()),
        Error::ClickHouse(Ch::Other(source)) if is_io(source.as_ref()) => {
            classify_network(source.as_ref())
        }
        Error::ClickHouse(Ch::TimedOut) | Error::Timeout(_) => Failure::Transient,
        Error::ClickHouse(Ch::Unsupported(_)) => Failure::Pause(PauseReason::Scheme),
        Error::SchemaMismatch { .. } | Error::TableMissing { .. } => {
            Failure::Pause(PauseReason::Table)
        }
        Error::UnsupportedServer { .. } => Failure::Pause(PauseReason::UnsupportedServer),
        _ => Failure::Pause(PauseReason::Other),
    }
}

fn is_io(error: &(dyn std::error::Error + 'static)) -> bool {
    find_in_chain::<std::io::Error>(error).is_some()
        || find_in_chain::<hyper::Error>(error).is_some()
}

/// A failure to connect, to shake hands or to read an answer.
pub(super) fn classify_network(error: &(dyn std::error::Error + 'static)) -> Failure {
    #[cfg(feature = "rustls")]
    {
        use crate::connection::tls;
        if find_in_chain::<tls::HandshakeTimedOut>(error).is_some() {
            return Failure::Pause(PauseReason::NotTls);
        }
        if let Some(tls_error) = tls::rustls_error(error) {
            use rustls::{CertificateError as Cert, Error as Tls};
            return Failure::Pause(match tls_error {
                Tls::InvalidCertificate(Cert::UnknownIssuer) => PauseReason::UntrustedCertificate,
                Tls::InvalidCertificate(
                    Cert::NotValidForName | Cert::NotValidForNameContext { .. },
                ) => PauseReason::CertificateName,
                Tls::InvalidCertificate(_) => PauseReason::Certificate,
                Tls::InvalidMessage(_) => PauseReason::NotTls,
                _ => PauseReason::Tls,
            });
        }
    }
    let text = chain_text(error);
    if text.contains("scheme is not http") || text.contains("unsupported scheme") {
        return Failure::Pause(PauseReason::Scheme);
    }
    if find_in_chain::<hyper::Error>(error).is_some_and(hyper::Error::is_parse) {
        return Failure::Pause(PauseReason::NotHttp);
    }
    Failure::Transient
}

/// Whether the request was sent on a connection that was then closed or reset without an
/// answer (not a refused or timed-out connect).
fn unanswered(error: &Error) -> bool {
    let Error::ClickHouse(clickhouse::error::Error::Network(source)) = error else {
        return false;
    };
    let source = source.as_ref();
    if find_in_chain::<hyper_util::client::legacy::Error>(source).is_some_and(|e| e.is_connect()) {
        return false;
    }
    let closed = find_in_chain::<hyper::Error>(source)
        .is_some_and(|e| e.is_incomplete_message() || e.is_parse());
    let reset = find_in_chain::<std::io::Error>(source).is_some_and(|e| {
        use std::io::ErrorKind as K;
        matches!(
            e.kind(),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
        )
    });
    closed || reset
}

/// Every message of an error's chain, for logs (never holds a credential: requests carry
/// them in headers, which no error repeats).
pub(crate) fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(err) = current {
        let more = err.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        // An `io::Error`'s `source` skips the error it wraps.
        current = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    text
}

/// The clients of one server.
struct Server {
    /// Without a default database, for DDL and version checks.
    admin: clickhouse::Client,
    /// With the events' database, for inserts.
    insert: clickhouse::Client,
}

/// Writes batches to ClickHouse: to one server of the connection's list at a time, going on
/// to the next when one fails.
pub(crate) struct Sink {
    connection: Connection,
    servers: Vec<Server>,
    /// The server the next request goes to.
    current: usize,
    version: Option<ServerVersion>,
    receive_timeout: Duration,
    send_timeout: Duration,
}

impl Sink {
    pub(crate) fn new(connection: &Connection, schema: &Schema) -> Self {
        let servers = connection
            .clients()
            .into_iter()
            .map(|client| {
                // Column types are checked once by `Schema::check_columns`, which works on
                // every server version; plain RowBinary does too.
                let admin = client.with_validation(false);
                let insert = admin.clone().with_database(schema.database());
                Server { admin, insert }
            })
            .collect();
        Self {
            connection: connection.clone(),
            servers,
            current: 0,
            version: None,
            receive_timeout: connection.receive_timeout(),
            send_timeout: connection.send_timeout(),
        }
    }

    /// The server version, once [`prepare`](Self::prepare) has succeeded.
    pub(crate) fn version(&self) -> Option<ServerVersion> {
        self.version
    }

    /// Sends the next requests to the next server of the list (after a failure); the same
    /// batch then goes there. With one server, does nothing.
    pub(crate) fn next_server(&mut self) {
        self.current = (self.current + 1) % self.servers.len();
    }

    fn server(&self) -> &Server {
        &self.servers[self.current]
    }

    /// What a failed request means, as [`classify`] says, made precise by looking at the
    /// port of the server it went to when the error alone cannot tell: an `https://`
    /// handshake that went unanswered (a plain-HTTP port answers plain HTTP), or an
    /// `http://` request reset unanswered (an HTTPS port completes a TLS handshake).
    pub(crate) async fn diagnose(&self, error: &Error) -> Failure {
        let failure = classify(error);
        let (connection, at) = (&self.connection, self.current);
        match failure {
            Failure::Pause(PauseReason::NotTls) if connection.is_https(at) => {
                if connection.answers_plain_http(at).await {
                    failure
                } else {
                    Failure::Pause(PauseReason::Tls)
                }
            }
            Failure::Transient | Failure::Pause(PauseReason::NotHttp)
                if !connection.is_https(at) && unanswered(error) =>
            {
                if connection.answers_tls(at).await {
                    Failure::Pause(PauseReason::TlsPort)
                } else {
                    failure
                }
            }
            _ => failure,
        }
    }

    /// Reads the server version (once), then creates or checks the table.
    pub(crate) async fn prepare(&mut self, schema: &Schema, create: bool) -> Result<()> {
        let timeout = self.receive_timeout;
        let admin = &self.servers[self.current].admin;
        let version = match self.version {
            Some(v) => v,
            None => with_timeout(timeout, Schema::server_version(admin)).await?,
        };
        self.version = Some(version);
        if create {
            with_timeout(timeout, schema.ensure(admin, version)).await
        } else {
            with_timeout(timeout, schema.check_columns(admin)).await
        }
    }

    /// Inserts `events` in one request and waits for ClickHouse's acknowledgement.
    ///
    /// `async_insert=0` is sent to every server that knows the setting (21.11 on; from
    /// 26.2 it is on by default): the writer relies on a synchronous insert, acknowledged
    /// once the rows are in a part, and deduplicated by `insert_deduplication_token` on
    /// retry. An asynchronous insert would be acknowledged from the server's buffer, with
    /// other dedup semantics and up to 200 ms (1 s on ClickHouse Cloud) more latency.
    /// The dedup settings that 25.12–26.2 reorganised (`insert_deduplicate`,
    /// `deduplicate_insert`) are left at the server's defaults.
    pub(crate) async fn insert(&self, schema: &Schema, events: &[Event]) -> Result<()> {
        let mut insert = self
            .server()
            .insert
            .insert::<EventRow<'_>>(schema.table())
            .await?
            .with_timeouts(Some(self.send_timeout), Some(self.receive_timeout));
        for (name, value) in schema.insert_settings() {
            insert = insert.with_setting(*name, *value);
        }
        if self
            .version
            .is_some_and(ServerVersion::supports_async_insert)
        {
            insert = insert.with_setting("async_insert", "0");
        }
        if let Some(token) = self.version.and_then(|v| dedup_token(v, events)) {
            insert = insert.with_setting("insert_deduplication_token", token);
        }
        for event in events {
            insert.write(&EventRow::from(event)).await?;
        }
        Ok(insert.end().await?)
    }
}

/// A token that is the same each time this batch is sent (and for no other batch), where
/// the server supports it: the first event id, the row count, and all ids folded together.
fn dedup_token(version: ServerVersion, events: &[Event]) -> Option<String> {
    if !version.supports_insert_deduplication_token() {
        return None;
    }
    let first = events.first()?.event_id();
    let folded = events
        .iter()
        .fold(0u128, |acc, e| acc.rotate_left(5) ^ e.event_id().as_u128());
    Some(format!("{}-{}-{folded:032x}", first.simple(), events.len()))
}

async fn with_timeout<T>(limit: Duration, f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| Error::Timeout(limit))?
}

/// Keeps a batch ClickHouse refused: as JSON lines in a new file under `dir`, or in the log.
/// Returns where it went.
pub(crate) fn dead_letter(dir: Option<&Path>, events: &[Event], reason: &str) -> String {
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(&DeadLetterLine::from(e)).unwrap_or_default())
        .collect();
    if let Some(dir) = dir {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let path = dir.join(format!(
            "dead-letter-{stamp}-{}.jsonl",
            Uuid::now_v7().simple()
        ));
        let written = super::private::create_dir(dir).and_then(|()| {
            let mut file = super::private::create_new(&path)?;
            for line in &lines {
                writeln!(file, "{line}")?;
            }
            file.sync_all()
        });
        match written {
            Ok(()) => {
                tracing::error!(
                    rows = events.len(),
                    file = %path.display(),
                    reason,
                    "ClickHouse refused a batch as bad data; it was kept in the dead-letter file"
                );
                return path.display().to_string();
            }
            Err(err) => tracing::error!(
                file = %path.display(),
                error = %err,
                "could not write the dead-letter file; logging the batch instead"
            ),
        }
    }
    tracing::error!(
        rows = events.len(),
        reason,
        batch = %lines.join("\n"),
        "ClickHouse refused a batch as bad data"
    );
    "the log".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_codes() {
        assert_eq!(
            error_code(
                "Code: 60, e.displayText() = DB::Exception: Table x.y doesn't exist., e.what() = DB::Exception"
            ),
            Some(60)
        );
        assert_eq!(
            error_code("Code: 27. DB::Exception: Cannot parse"),
            Some(27)
        );
        assert_eq!(error_code("bad response: 502 Bad Gateway"), None);
        assert_eq!(error_code("<html><body>Code: 53</body></html>"), None);
        assert_eq!(error_code("Code: x"), None);
    }

    #[test]
    fn dedup_token_is_stable_per_batch_and_only_where_supported() {
        let batch: Vec<Event> = (0..5).map(|i| Event::new(i, "x").unwrap()).collect();
        let new = ServerVersion::new(24, 8, 0);
        let token = dedup_token(new, &batch).unwrap();
        assert_eq!(dedup_token(new, &batch.clone()), Some(token.clone()));
        assert_ne!(dedup_token(new, &batch[..4]), Some(token.clone()));
        let mut swapped = batch.clone();
        swapped.swap(1, 2);
        assert_ne!(dedup_token(new, &swapped), Some(token));
        assert_eq!(dedup_token(ServerVersion::new(18, 16, 1), &batch), None);
        assert_eq!(dedup_token(new, &[]), None);
    }

    #[test]
    fn classifies_failures() {
        let bad = |m: &str| Error::ClickHouse(clickhouse::error::Error::BadResponse(m.into()));
        // 18.16's answer to an insert into a Distributed table while both replicas of a
        // shard are down: retried until the shard is back, not a pause.
        assert_eq!(
            classify(&bad(
                "Code: 279, e.displayText() = DB::NetException: All connection tries failed. \
                 Log: \n\nCode: 210, e.displayText() = DB::NetException: Connection refused \
                 (127.0.0.1:9000)"
            )),
            Failure::Transient
        );
        assert_eq!(
            classify(&bad(
                "Code: 32, e.displayText() = DB::Exception: Attempt to read after eof: \
                 while receiving packet from 127.0.0.1:9000"
            )),
            Failure::Transient
        );
        assert_eq!(
            classify(&bad("Code: 53, DB::Exception: Type mismatch")),
            Failure::BadData
        );
        assert_eq!(
            classify(&bad("Code: 193. DB::Exception: Wrong password")),
            Failure::Pause(PauseReason::Authentication)
        );
        // 26.x: the code from the X-ClickHouse-Exception-Code header, an empty body.
        assert_eq!(
            classify(&bad("Code: 516")),
            Failure::Pause(PauseReason::Authentication)
        );
        assert_eq!(
            classify(&bad("Code: 60. Table doesn't exist")),
            Failure::Pause(PauseReason::Table)
        );
        assert_eq!(
            classify(&bad(
                "Code: 115, e.displayText() = DB::Exception: Unknown setting async_insert"
            )),
            Failure::Pause(PauseReason::UnknownCode(115))
        );
        assert_eq!(
            classify(&bad(
                "<html><head><title>502 Bad Gateway</title></head></html>"
            )),
            Failure::Pause(PauseReason::NotClickHouse)
        );
        assert_eq!(
            classify(&Error::ClickHouse(clickhouse::error::Error::Unsupported(
                "invalid URL, scheme is not http".into()
            ))),
            Failure::Pause(PauseReason::Scheme)
        );
        assert_eq!(
            classify(&Error::ClickHouse(clickhouse::error::Error::Custom(
                "x".into()
            ))),
            Failure::Pause(PauseReason::Other)
        );
        assert_eq!(
            classify(&bad("Code: 252. Too many parts")),
            Failure::Transient
        );
        assert_eq!(
            classify(&bad("500 Internal Server Error")),
            Failure::Pause(PauseReason::NotClickHouse)
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            classify(&Error::ClickHouse(clickhouse::error::Error::Network(
                Box::new(reset)
            ))),
            Failure::Transient
        );
        // ZooKeeper away on a cluster: the replicated tables are read-only until it is
        // back; the writer retries (events kept) and does not pause, so events are still
        // taken meanwhile.
        assert_eq!(
            classify(&bad(
                "Code: 242, e.displayText() = DB::Exception: Table is in readonly mode"
            )),
            Failure::Transient
        );
        assert_eq!(
            classify(&bad(
                "Code: 999, e.displayText() = Coordination::Exception: Connection loss"
            )),
            Failure::Transient
        );
        assert_eq!(
            classify(&Error::ClickHouse(clickhouse::error::Error::TimedOut)),
            Failure::Transient
        );
        assert_eq!(
            classify(&Error::Timeout(Duration::from_secs(1))),
            Failure::Transient
        );
    }
}
