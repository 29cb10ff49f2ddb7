//! The crate's error type and [`Result`] alias.

use std::fmt;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from code the application supplies (a notifier, a list of known accounts).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event failed validation; nothing was recorded.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] InvalidEvent),

    /// The configuration passed to a builder is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The ClickHouse server is older than the oldest version this crate supports.
    #[error("ClickHouse {found} is not supported: the oldest supported version is {oldest}")]
    UnsupportedServer {
        /// The version the server reported.
        found: String,
        /// The oldest supported version.
        oldest: &'static str,
    },

    /// The events table exists but does not have the columns this crate writes.
    #[error("table {table}: {problem}")]
    SchemaMismatch {
        /// The fully qualified table name.
        table: String,
        /// What is wrong, naming the column.
        problem: SchemaProblem,
    },

    /// A table to read from does not exist (yet): the writer creates its tables when it
    /// starts ([`Schema::ensure`](crate::schema::Schema::ensure)).
    #[error("table {table} does not exist yet; the writer creates it when it starts")]
    TableMissing {
        /// The fully qualified table name.
        table: String,
    },

    /// ClickHouse answered with an error, or could not be reached.
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),

    /// A request to ClickHouse took longer than its timeout.
    #[error("ClickHouse did not answer within {0:?}")]
    Timeout(std::time::Duration),

    /// The spool directory could not be opened, locked or read.
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),

    /// The writer did not take the event.
    #[error(transparent)]
    Rejected(#[from] Rejected),

    /// A webhook did not accept a notification, after every attempt it was given.
    #[error(
        "webhook at {host} did not accept the notification after {attempts} attempt(s): {last}"
    )]
    Webhook {
        /// The webhook's host and port (the rest of its URL may hold a secret).
        host: String,
        /// How many requests were made.
        attempts: u32,
        /// What went wrong with the last one.
        last: String,
    },

    /// The application's list of known accounts could not be read.
    #[error("known accounts could not be listed: {0}")]
    KnownAccounts(#[source] BoxError),
}

/// Why an event was rejected. Each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    /// The event type is empty.
    #[error("event type is empty")]
    EmptyType,
    /// The event type is longer than [`MAX_EVENT_TYPE_LEN`](crate::event::MAX_EVENT_TYPE_LEN) bytes.
    #[error("event type is {len} bytes long; at most {max} are allowed")]
    TypeTooLong {
        /// The length given, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The event type contains a control character.
    #[error("event type contains a control character at byte {0}")]
    TypeControlChar(usize),
    /// The event type contains an invisible character that changes how text reads: a
    /// format character (bidi controls, zero-width characters, the byte order mark) or a
    /// line or paragraph separator.
    #[error("event type contains an invisible character (U+{code:04X}) at byte {at}")]
    TypeInvisibleChar {
        /// Where it is, in bytes.
        at: usize,
        /// Its code point.
        code: u32,
    },
    /// The source name is empty, too long or contains a control character.
    #[error("source name must be 1 to {max} bytes without control characters")]
    BadSource {
        /// The limit, in bytes.
        max: usize,
    },
    /// The event time cannot be stored as a ClickHouse `DateTime`
    /// (seconds since 1970 that fit in 32 bits).
    #[error("event time is outside the range ClickHouse DateTime can store (1970 to 2106)")]
    TimeOutOfRange,
}

/// A column of the events table that does not match what this crate writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaProblem {
    /// A column the crate writes is missing.
    MissingColumn {
        /// The column's name.
        column: &'static str,
        /// The type the crate expects.
        expected: &'static str,
    },
    /// A column exists with a type the crate cannot write.
    WrongType {
        /// The column's name.
        column: &'static str,
        /// The type the crate expects.
        expected: &'static str,
        /// The type the table has.
        found: String,
    },
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingColumn { column, expected } => {
                write!(f, "column `{column}` is missing (expected type {expected})")
            }
            Self::WrongType {
                column,
                expected,
                found,
            } => write!(f, "column `{column}` has type {found}, expected {expected}"),
        }
    }
}

/// Why an event was not taken. The caller's request goes on either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// The in-memory queue is full (ClickHouse is slow or away, or the load is higher than
    /// one writer takes). Counted in [`Stats::dropped_queue_full`](crate::Stats::dropped_queue_full).
    #[error("the analytics queue is full")]
    QueueFull,
    /// The writer has been shut down, or its worker is gone. Counted in
    /// [`Stats::dropped_closed`](crate::Stats::dropped_closed).
    #[error("the analytics writer is closed")]
    Closed,
    /// The on-disk spool has reached its size bound (ClickHouse has been away for long).
    /// The newest events are refused until the spool drains; nothing already taken is
    /// dropped. Counted in [`Stats::dropped_spool_full`](crate::Stats::dropped_spool_full).
    #[error("the analytics spool is full")]
    SpoolFull,
}
