//! The ClickHouse end of the writer: the HTTP client, one insert of one batch, and what a
//! failed insert means (retry, pause, or dead-letter).

use std::{
    io::Write as _,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    event::Event,
    schema::{Schema, ServerVersion},
};

use super::Builder;

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
    /// The rows themselves were refused: retrying cannot help.
    BadData,
    /// Authentication or the table is wrong: stop writing, keep the events, check the
    /// schema again and retry.
    Pause,
}

/// ClickHouse error codes that mean the data could not be parsed or stored.
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

/// ClickHouse error codes that mean the writer cannot write here until someone acts.
const PAUSE_CODES: &[u32] = &[
    16,  // NO_SUCH_COLUMN_IN_TABLE
    60,  // UNKNOWN_TABLE
    81,  // UNKNOWN_DATABASE
    164, // READONLY
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    195, // IP_ADDRESS_NOT_ALLOWED
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];

/// The `Code: N` a ClickHouse error message starts with (18.16 sends it only in the body).
pub(crate) fn error_code(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + "Code: ".len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

pub(crate) fn classify(error: &Error) -> Failure {
    use clickhouse::error::Error as Ch;
    match error {
        Error::ClickHouse(Ch::BadResponse(message)) => match error_code(message) {
            Some(code) if BAD_DATA_CODES.contains(&code) => Failure::BadData,
            Some(code) if PAUSE_CODES.contains(&code) => Failure::Pause,
            _ => Failure::Transient,
        },
        Error::ClickHouse(Ch::Network(_) | Ch::TimedOut | Ch::Other(_)) | Error::Timeout(_) => {
            Failure::Transient
        }
        Error::SchemaMismatch { .. } | Error::UnsupportedServer { .. } => Failure::Pause,
        // Serialization and the like: the rows cannot be sent as they are.
        _ => Failure::BadData,
    }
}

/// The HTTP client, with `TCP_NODELAY` on: without it every insert waits about 40 ms on a
/// delayed ACK.
fn http_client(config: &Builder) -> clickhouse::Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_connect_timeout(Some(config.connect_timeout));
    let http = HyperClient::builder(TokioExecutor::new())
        // Below the server's keep-alive timeout (`keep_alive_timeout`: 3 s on 18.16, 30 s on
        // 26.9).
        .pool_idle_timeout(Duration::from_secs(2))
        .build(connector);
    clickhouse::Client::with_http_client(http)
}

/// Writes batches to ClickHouse.
pub(crate) struct Sink {
    /// Without a default database, for DDL and version checks.
    admin: clickhouse::Client,
    /// With the events' database, for inserts.
    insert: clickhouse::Client,
    version: Option<ServerVersion>,
    receive_timeout: Duration,
    send_timeout: Duration,
}

/// A client for the writer's server and credentials, without a default database.
pub(crate) fn admin_client(config: &Builder) -> clickhouse::Client {
    let mut admin = http_client(config)
        .with_url(&config.url)
        // Column types are checked once by `Schema::check_columns`, which works on every
        // server version; plain RowBinary does too.
        .with_validation(false);
    if let Some(user) = &config.user {
        admin = admin.with_user(user);
    }
    if let Some(password) = &config.password {
        admin = admin.with_password(password);
    }
    admin
}

impl Sink {
    pub(crate) fn new(config: &Builder) -> Self {
        let admin = admin_client(config);
        let insert = admin.clone().with_database(config.schema.database());
        Self {
            admin,
            insert,
            version: None,
            receive_timeout: config.receive_timeout,
            send_timeout: config.send_timeout,
        }
    }

    /// The server version, once [`prepare`](Self::prepare) has succeeded.
    pub(crate) fn version(&self) -> Option<ServerVersion> {
        self.version
    }

    /// Reads the server version (once), then creates or checks the table.
    pub(crate) async fn prepare(&mut self, schema: &Schema, create: bool) -> Result<()> {
        let timeout = self.receive_timeout;
        let admin = &self.admin;
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
    pub(crate) async fn insert(&self, schema: &Schema, events: &[Event]) -> Result<()> {
        let mut insert = self
            .insert
            .insert::<EventRow<'_>>(schema.table())
            .await?
            .with_timeouts(Some(self.send_timeout), Some(self.receive_timeout));
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
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            let mut file = std::fs::File::create_new(&path)?;
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
        assert_eq!(
            classify(&bad("Code: 53, DB::Exception: Type mismatch")),
            Failure::BadData
        );
        assert_eq!(
            classify(&bad("Code: 193. DB::Exception: Wrong password")),
            Failure::Pause
        );
        assert_eq!(
            classify(&bad("Code: 60. Table doesn't exist")),
            Failure::Pause
        );
        assert_eq!(
            classify(&bad("Code: 252. Too many parts")),
            Failure::Transient
        );
        assert_eq!(
            classify(&bad("500 Internal Server Error")),
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
