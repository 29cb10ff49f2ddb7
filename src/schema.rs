//! The ClickHouse side: the events table's DDL, the server version, and the checks that
//! the table has the columns this crate writes.
//!
//! The table keeps the three columns of the original design (`account_id UInt64`,
//! `event_type String`, `inserted_at DateTime`) so queries written against it keep working,
//! and adds `event_id`, `source`, `method`, `status` and `latency_us`:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS `idp`.`events` (
//!     event_id    UUID,
//!     account_id  UInt64,
//!     event_type  String,
//!     inserted_at DateTime DEFAULT now(),
//!     source      String,
//!     method      String,
//!     status      UInt16,
//!     latency_us  UInt64
//! )
//! ENGINE = ReplacingMergeTree
//! PARTITION BY toYYYYMM(inserted_at)
//! ORDER BY (account_id, inserted_at, event_id)
//! ```
//!
//! `ReplacingMergeTree` keyed by `(account_id, inserted_at, event_id)` makes a row written
//! twice (a retried or replayed batch) one row after a merge, and at once for queries that
//! read with `FINAL` or count `uniqExact(event_id)`. The key also serves the queries this
//! crate exists for: one account's usage over time. On servers from 22.2 on, the table also
//! gets a deduplication window so that a retried insert carrying the same
//! `insert_deduplication_token` is dropped by the server before it is stored.
//!
//! All DDL goes through [`Schema`], which knows the [`Topology`] it is built for: a single
//! server today; a cluster (`ReplicatedMergeTree` behind a `Distributed` table, `ON CLUSTER`
//! DDL) is a further variant of the same type, not a different code path.

use std::{fmt, str::FromStr};

use crate::error::{Error, Result, SchemaProblem};

/// The oldest ClickHouse release this crate works with.
pub const OLDEST_SUPPORTED: ServerVersion = ServerVersion::new(18, 16, 0);

/// A ClickHouse server version, as `SELECT version()` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// The year-based major version (18, 23, 24, ...).
    pub major: u32,
    /// The minor version.
    pub minor: u32,
    /// The patch version.
    pub patch: u32,
}

impl ServerVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Whether the server honours `insert_deduplication_token` (22.2 and later), which lets
    /// a retried insert be dropped by the server instead of stored twice.
    pub fn supports_insert_deduplication_token(self) -> bool {
        self >= Self::new(22, 2, 0)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for ServerVersion {
    type Err = Error;

    /// Parses `18.16.1` or `24.8.4.13`; further parts are ignored.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("not a ClickHouse version: {s:?}"));
        let mut parts = s
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().map_err(|_| bad()));
        let major = parts.next().ok_or_else(bad)??;
        let minor = parts.next().ok_or_else(bad)??;
        let patch = parts.next().transpose()?.unwrap_or(0);
        Ok(Self::new(major, minor, patch))
    }
}

/// Where the events table lives and how it is laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One server: a `ReplacingMergeTree` table.
    Single,
}

/// The column names and types this crate writes, in insert order.
pub const COLUMNS: [(&str, &str); 8] = [
    ("event_id", "UUID"),
    ("account_id", "UInt64"),
    ("event_type", "String"),
    ("inserted_at", "DateTime"),
    ("source", "String"),
    ("method", "String"),
    ("status", "UInt16"),
    ("latency_us", "UInt64"),
];

/// The database and table the events go to, and the DDL that makes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    database: String,
    table: String,
    topology: Topology,
}

impl Default for Schema {
    fn default() -> Self {
        Self {
            database: "idp".into(),
            table: "events".into(),
            topology: Topology::Single,
        }
    }
}

impl Schema {
    /// A schema for `database`.`table` on a single server.
    ///
    /// Names are 1 to 64 ASCII letters, digits and underscores, not starting with a digit.
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Result<Self> {
        let schema = Self {
            database: database.into(),
            table: table.into(),
            topology: Topology::Single,
        };
        check_identifier("database", &schema.database)?;
        check_identifier("table", &schema.table)?;
        Ok(schema)
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The events table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `database.table`, quoted for SQL.
    pub fn qualified_table(&self) -> String {
        format!("`{}`.`{}`", self.database, self.table)
    }

    /// The layout this schema creates.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// `CREATE DATABASE IF NOT EXISTS ...`.
    pub fn create_database_sql(&self) -> String {
        format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database)
    }

    /// `CREATE TABLE IF NOT EXISTS ...` for the events table, for a server of `version`.
    pub fn create_table_sql(&self, version: ServerVersion) -> String {
        let Topology::Single = self.topology;
        let settings = if version.supports_insert_deduplication_token() {
            // Lets the server drop a retried insert with the same deduplication token.
            ", non_replicated_deduplication_window = 1000"
        } else {
            ""
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n    \
                event_id UUID,\n    \
                account_id UInt64,\n    \
                event_type String,\n    \
                inserted_at DateTime DEFAULT now(),\n    \
                source String,\n    \
                method String,\n    \
                status UInt16,\n    \
                latency_us UInt64\n\
            )\n\
            ENGINE = ReplacingMergeTree\n\
            PARTITION BY toYYYYMM(inserted_at)\n\
            ORDER BY (account_id, inserted_at, event_id)\n\
            SETTINGS index_granularity = 8192{settings}",
            table = self.qualified_table(),
        )
    }

    /// Reads the server version and refuses servers older than [`OLDEST_SUPPORTED`].
    pub async fn server_version(client: &clickhouse::Client) -> Result<ServerVersion> {
        let text: String = client.query("SELECT version()").fetch_one().await?;
        supported_version(&text)
    }

    /// Creates the database and the table if they are absent, then checks that the table
    /// has every column this crate writes with a type it can write. Idempotent.
    pub async fn ensure(&self, client: &clickhouse::Client, version: ServerVersion) -> Result<()> {
        client.query(&self.create_database_sql()).execute().await?;
        client
            .query(&self.create_table_sql(version))
            .execute()
            .await?;
        self.check_columns(client).await
    }

    /// Checks that the table has every column this crate writes, naming the first one that
    /// is missing or has a type the crate cannot write.
    pub async fn check_columns(&self, client: &clickhouse::Client) -> Result<()> {
        let found: Vec<(String, String)> = client
            .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
            .bind(&self.database)
            .bind(&self.table)
            .fetch_all()
            .await?;
        check_columns(&found).map_err(|problem| Error::SchemaMismatch {
            table: format!("{}.{}", self.database, self.table),
            problem,
        })
    }
}

/// Parses what `SELECT version()` said and refuses versions before [`OLDEST_SUPPORTED`].
fn supported_version(text: &str) -> Result<ServerVersion> {
    let version: ServerVersion = text.parse()?;
    if version < OLDEST_SUPPORTED {
        return Err(Error::UnsupportedServer {
            found: text.to_owned(),
            oldest: "18.16",
        });
    }
    Ok(version)
}

fn check_identifier(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} name {name:?} must be 1 to 64 ASCII letters, digits or underscores, not starting with a digit"
        )))
    }
}

/// Whether a column of type `found` can take what this crate writes as `expected`.
fn compatible(expected: &str, found: &str) -> bool {
    match expected {
        "String" => found == "String" || found == "LowCardinality(String)",
        // A DateTime with a time zone stores the same seconds.
        "DateTime" => found == "DateTime" || found.starts_with("DateTime('"),
        _ => found == expected,
    }
}

fn check_columns(found: &[(String, String)]) -> std::result::Result<(), SchemaProblem> {
    for (column, expected) in COLUMNS {
        match found.iter().find(|(name, _)| name == column) {
            None => return Err(SchemaProblem::MissingColumn { column, expected }),
            Some((_, ty)) if !compatible(expected, ty) => {
                return Err(SchemaProblem::WrongType {
                    column,
                    expected,
                    found: ty.clone(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            "18.16.1".parse::<ServerVersion>().unwrap(),
            ServerVersion::new(18, 16, 1)
        );
        assert_eq!(
            "24.8.4.13".parse::<ServerVersion>().unwrap(),
            ServerVersion::new(24, 8, 4)
        );
        assert_eq!(
            "23.3".parse::<ServerVersion>().unwrap(),
            ServerVersion::new(23, 3, 0)
        );
        assert!("".parse::<ServerVersion>().is_err());
        assert!("abc".parse::<ServerVersion>().is_err());
        assert!(ServerVersion::new(18, 14, 9) < OLDEST_SUPPORTED);
        assert!(!ServerVersion::new(18, 16, 1).supports_insert_deduplication_token());
        assert!(ServerVersion::new(22, 2, 0).supports_insert_deduplication_token());
        assert!(ServerVersion::new(25, 1, 0).supports_insert_deduplication_token());
    }

    #[test]
    fn old_servers_are_refused() {
        let err = supported_version("18.14.9").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ClickHouse 18.14.9 is not supported: the oldest supported version is 18.16"
        );
        assert!(supported_version("1.1.54343").is_err());
        assert_eq!(
            supported_version("18.16.1").unwrap(),
            ServerVersion::new(18, 16, 1)
        );
        assert!(supported_version("25.3.2.39").is_ok());
    }

    #[test]
    fn names_are_checked() {
        assert!(Schema::new("idp", "events").is_ok());
        assert!(Schema::new("idp_2", "events_v2").is_ok());
        for bad in ["", "1db", "a-b", "a`b", "a.b", "x y", &"a".repeat(65)] {
            assert!(Schema::new(bad, "events").is_err(), "{bad:?}");
            assert!(Schema::new("idp", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dedup_window_only_where_supported() {
        let schema = Schema::default();
        let old = schema.create_table_sql(ServerVersion::new(18, 16, 1));
        let new = schema.create_table_sql(ServerVersion::new(24, 3, 0));
        assert!(!old.contains("non_replicated_deduplication_window"));
        assert!(new.contains("non_replicated_deduplication_window"));
        assert!(old.contains("ENGINE = ReplacingMergeTree"));
        assert!(old.contains("ORDER BY (account_id, inserted_at, event_id)"));
    }

    #[test]
    fn column_check_names_the_column() {
        let mut cols: Vec<(String, String)> = COLUMNS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(check_columns(&cols), Ok(()));
        cols[4].1 = "LowCardinality(String)".into();
        cols[3].1 = "DateTime('UTC')".into();
        assert_eq!(check_columns(&cols), Ok(()));
        cols[6].1 = "String".into();
        assert_eq!(
            check_columns(&cols),
            Err(SchemaProblem::WrongType {
                column: "status",
                expected: "UInt16",
                found: "String".into()
            })
        );
        cols.remove(0);
        assert_eq!(
            check_columns(&cols),
            Err(SchemaProblem::MissingColumn {
                column: "event_id",
                expected: "UUID"
            })
        );
    }
}
