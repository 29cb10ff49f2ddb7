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
//! ORDER BY (account_id, inserted_at, event_id, source)
//! ```
//!
//! `ReplacingMergeTree` keyed by `(account_id, inserted_at, event_id, source)` makes a row
//! written twice (a retried or replayed batch, a reporter's resend) one row after a merge,
//! and at once for queries that read with `FINAL` or count `uniqExact(event_id)`. The key
//! also serves the queries this crate exists for: one account's usage over time.
//! [`EVENTS_KEY`] says why it is this key, in the one place the DDL takes it from.
//!
//! A table made with the earlier key, `(account_id, inserted_at, event_id)`, keeps working,
//! but lets one reporter replace another's event; [`Schema::ensure`] warns about it, and
//! [`Schema::migrate_key`] moves it to the current key, copying it one month at a time. On servers from 22.2 on, the table also
//! gets a deduplication window so that a retried insert carrying the same
//! `insert_deduplication_token` is dropped by the server before it is stored.
//!
//! # The daily rollup
//!
//! Usage questions are answered from a per-account, per-day rollup rather than from a scan of
//! raw events. [`Schema::ensure`] creates it next to the events table: an
//! `AggregatingMergeTree` fed by a materialized view.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS `idp`.`events_daily` (
//!     account_id UInt64,
//!     day        Date,                                -- the UTC day of inserted_at
//!     event_type String,
//!     events     AggregateFunction(uniqExact, UUID),  -- the set of event_ids
//!     first_seen AggregateFunction(min, UInt32),      -- seconds since the Unix epoch
//!     last_seen  AggregateFunction(max, UInt32)
//! )
//! ENGINE = AggregatingMergeTree
//! PARTITION BY toYYYYMM(day)
//! ORDER BY (account_id, day, event_type)
//!
//! CREATE MATERIALIZED VIEW IF NOT EXISTS `idp`.`events_daily_mv` TO `idp`.`events_daily`
//! AS SELECT account_id, toDate(inserted_at, 'UTC') AS day, event_type,
//!           uniqExactState(event_id) AS events,
//!           minState(toUInt32(inserted_at)) AS first_seen,
//!           maxState(toUInt32(inserted_at)) AS last_seen
//! FROM `idp`.`events`
//! GROUP BY account_id, day, event_type
//! ```
//!
//! Every state in the rollup is a set or an extreme, so feeding it the same row twice changes
//! nothing: a batch the writer retried after a lost acknowledgement, a backfill that overlaps
//! what the view already fed, two views during a race at creation. Counts are
//! `uniqExactMerge(events)`, the number of distinct `event_id`s, and match
//! `uniqExact(event_id)` over the raw table exactly, before and after any merge. The price is
//! that the rollup keeps each event's id (16 bytes, before compression), and a count over all
//! accounts holds the ids of its range in memory while it runs; questions that need no count
//! (last seen, active days, active accounts) read only the small columns.
//!
//! ## Backfill
//!
//! A materialized view only sees rows inserted after it exists. When the view is created for
//! an events table that already has rows, [`Schema::ensure_rollup`] also creates
//! `<table>_daily_backfill`, which marks the backfill as pending; [`Schema::backfill_rollup`]
//! then copies the existing rows one month at a time
//! (`INSERT INTO events_daily SELECT ... WHERE toYYYYMM(inserted_at) = m`), notes each month
//! it finished in that table so an interrupted backfill resumes where it stopped, and drops it
//! at the end. Rows inserted meanwhile are fed by the view, and fed twice where a month is
//! copied after them, which the rollup absorbs. [`Schema::rollup_ready`] says whether the
//! rollup holds everything; until it does, [`Usage`](crate::usage::Usage) answers from the
//! events table. The [`InactivityWatch`](crate::canary::InactivityWatch) runs the backfill
//! when it starts; an application without a watch calls [`Schema::backfill_rollup`] once.
//! (`POPULATE` is not used: it misses rows inserted while it runs.)
//!
//! # The watch's table
//!
//! [`Schema::ensure_watch_table`] creates `<table>_watch`, where an inactivity watch records
//! what it claimed, delivered or failed to deliver, so that a restarted watch, or a second
//! instance of the application running the same watch, does not notify again. See
//! [`canary`](crate::canary) for how it is used.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS `idp`.`events_watch` (
//!     watch       String,
//!     account_id  UInt64,
//!     kind        Enum8('inactive' = 1, 'active' = 2),
//!     last_seen   DateTime,
//!     round       UInt32,
//!     step        Enum8('claimed' = 1, 'delivered' = 2, 'failed' = 3, 'recorded' = 4,
//!                       'returning' = 5),
//!     instance    UUID,
//!     recorded_at DateTime DEFAULT now()
//! )
//! ENGINE = MergeTree
//! ORDER BY (watch, account_id, last_seen, kind)
//! ```
//!
//! # Topology
//!
//! All DDL goes through [`Schema`], which knows the [`Topology`] it is built for. On a
//! single server the tables are as above. On a cluster ([`Topology::cluster`]) every
//! statement gets `ON CLUSTER`, and the engine clause (one helper for every table) becomes
//! the replicated engine of the same family:
//!
//! - the events go to `<table>_local`, a `ReplicatedReplacingMergeTree` with the same key
//!   and partitions on each shard, behind `<table>`, a `Distributed` table sharded by the
//!   sharding key (an expression of `account_id`: one account's rows live on one shard);
//! - the rollup is `<table>_daily_local`, a `ReplicatedAggregatingMergeTree` on each shard
//!   fed by the materialized view on that shard's `<table>_local`, behind a `Distributed`
//!   `<table>_daily`; an account's rollup rows are complete on its shard;
//! - the backfill marker and the watch's table are replicated on every server (one copy
//!   each, not sharded); see [`Schema::create_watch_table_sql`] for why the watch's is.
//!
//! Queries name the same tables on both topologies (`<table>`, `<table>_daily`): on a
//! cluster they read through the `Distributed` tables. Inserts carry
//! [`Schema::insert_settings`] (`insert_distributed_sync = 1` on a cluster).

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

    /// Whether the server knows the `async_insert` setting (from 21.11). Older servers
    /// refuse an unknown setting (code 115), so it is sent only to those that know it.
    pub fn supports_async_insert(self) -> bool {
        self >= Self::new(21, 11, 0)
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
    /// A cluster named in the servers' `<remote_servers>`: every table is created
    /// `ON CLUSTER`; the events and the rollup live in replicated tables on each shard
    /// (`<name>_local`) behind `Distributed` tables of the usual names. Made by
    /// [`Topology::cluster`].
    #[non_exhaustive]
    Cluster {
        /// The cluster's name, as `<remote_servers>` spells it.
        name: String,
        /// The expression of `account_id` that picks an event's shard: one account's
        /// events, and its rollup rows, live on one shard.
        sharding_key: String,
    },
}

/// The default sharding key of [`Topology::cluster`]: spreads accounts evenly across
/// shards whatever their ids look like.
pub const DEFAULT_SHARDING_KEY: &str = "cityHash64(account_id)";

impl Topology {
    /// The cluster `name` (1 to 64 ASCII letters, digits and underscores), sharded by
    /// [`DEFAULT_SHARDING_KEY`].
    pub fn cluster(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_identifier("cluster", &name)?;
        Ok(Self::Cluster {
            name,
            sharding_key: DEFAULT_SHARDING_KEY.to_owned(),
        })
    }

    /// The expression that picks an event's shard, for a cluster; it may use `account_id`
    /// only, so that one account's rows stay on one shard. Default:
    /// [`DEFAULT_SHARDING_KEY`]. Letters, digits, `_`, `(`, `)`, `,`, `%` and spaces only.
    /// No effect on [`Topology::Single`].
    pub fn with_sharding_key(self, key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_(), %".contains(c);
        if key.trim().is_empty() || !key.chars().all(allowed) || !key.contains("account_id") {
            return Err(Error::Config(format!(
                "sharding key {key:?} must be an expression of account_id made of letters, digits, `_`, `(`, `)`, `,`, `%` and spaces"
            )));
        }
        Ok(match self {
            Self::Single => Self::Single,
            Self::Cluster { name, .. } => Self::Cluster {
                name,
                sharding_key: key,
            },
        })
    }

    /// The cluster's name, for a cluster.
    pub fn cluster_name(&self) -> Option<&str> {
        match self {
            Self::Single => None,
            Self::Cluster { name, .. } => Some(name),
        }
    }
}

/// The events table's columns, as they are created.
const EVENTS_COLUMNS: &str = "(\n    \
    event_id UUID,\n    \
    account_id UInt64,\n    \
    event_type String,\n    \
    inserted_at DateTime DEFAULT now(),\n    \
    source String,\n    \
    method String,\n    \
    status UInt16,\n    \
    latency_us UInt64\n\
)";

/// The rollup table's columns.
const ROLLUP_COLUMNS: &str = "(\n    \
    account_id UInt64,\n    \
    day Date,\n    \
    event_type String,\n    \
    events AggregateFunction(uniqExact, UUID),\n    \
    first_seen AggregateFunction(min, UInt32),\n    \
    last_seen AggregateFunction(max, UInt32)\n\
)";

/// Whether a replicated table has a copy of its data on each shard or one copy on every
/// server of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spread {
    /// Each shard holds its own rows (events, rollup).
    Sharded,
    /// Every server holds every row (the backfill marker, the watch's log).
    Everywhere,
}

/// How the events table is partitioned and sorted: the one place that says so.
///
/// `ReplacingMergeTree` makes rows with the same sorting key one row, but only rows of the
/// same partition; so a row written twice is one row exactly when both copies agree on every
/// column named here. The crate makes sure they do:
///
/// - `inserted_at` is the event's time, set once at capture and kept by every retry, replay
///   and resend (the reporter gives a resent event the time of its first report, see
///   [`reporter`](crate::reporter#sent-again-one-row)), so both copies fall in the same
///   month and the same place in the key;
/// - `source` is in the key, so a reporter that sends another reporter's `eventId` adds a
///   row of its own and can never replace the other's;
/// - `inserted_at` comes before `event_id` because ClickHouse sorts a `UUID` by its second
///   half first: even a UUID v7, which starts with its time, gives no time order in a key,
///   and per-account questions over a range of days (the ones this crate asks) would read
///   the account's whole history instead of the range.
///
/// A cluster variant of [`Schema`] keeps this key and changes only the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableKey {
    /// The `PARTITION BY` expression.
    pub partition_by: &'static str,
    /// The `ORDER BY` tuple, which is also the primary key and the deduplication key.
    pub order_by: &'static str,
    /// `order_by` as `system.tables.sorting_key` shows it, without the parentheses.
    pub sorting_key: &'static str,
}

/// The events table's partitioning and sorting key.
pub const EVENTS_KEY: TableKey = TableKey {
    partition_by: "toYYYYMM(inserted_at)",
    order_by: "(account_id, inserted_at, event_id, source)",
    sorting_key: "account_id, inserted_at, event_id, source",
};

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

    /// The same tables laid out for `topology`. Default: [`Topology::Single`].
    pub fn with_topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
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
        format!(
            "CREATE DATABASE IF NOT EXISTS `{}`{}",
            self.database,
            self.on_cluster()
        )
    }

    /// The name of the table that holds the events: the table itself on a single server,
    /// `<table>_local` on each shard of a cluster (the table itself is then `Distributed`).
    pub fn local_table(&self) -> String {
        self.local(&self.table)
    }

    /// The table that holds the rows of the table `name` (the events or the rollup): `name`
    /// itself on a single server, `<name>_local` on each shard of a cluster.
    pub fn local(&self, name: &str) -> String {
        match self.topology {
            Topology::Single => name.to_owned(),
            Topology::Cluster { .. } => format!("{name}_local"),
        }
    }

    /// ` ON CLUSTER `name`` on a cluster, nothing on a single server.
    fn on_cluster(&self) -> String {
        match &self.topology {
            Topology::Single => String::new(),
            Topology::Cluster { name, .. } => format!(" ON CLUSTER `{name}`"),
        }
    }

    /// `CREATE TABLE IF NOT EXISTS ...` for the events table, for a server of `version`:
    /// on a cluster, the local replicated table of each shard.
    pub fn create_table_sql(&self, version: ServerVersion) -> String {
        self.create_events_table_sql(&self.local_table(), version)
    }

    /// The events table's DDL under another `name` of this schema's database: the table
    /// (on a cluster, the local table of each shard), or the copy a
    /// [`migrate_key`](Self::migrate_key) fills.
    fn create_events_table_sql(&self, name: &str, version: ServerVersion) -> String {
        let settings = match self.topology {
            Topology::Single if version.supports_insert_deduplication_token() => {
                // Lets the server drop a retried insert with the same deduplication token.
                ", non_replicated_deduplication_window = 1000"
            }
            // Replicated tables keep the hashes of their last blocks (100 by default).
            _ => "",
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {table}{on_cluster} {EVENTS_COLUMNS}\n\
            ENGINE = {engine}\n\
            PARTITION BY {partition}\n\
            ORDER BY {order}\n\
            SETTINGS index_granularity = 8192{settings}",
            table = self.qualified(name),
            on_cluster = self.on_cluster(),
            engine = self.engine("Replacing", name, Spread::Sharded),
            partition = EVENTS_KEY.partition_by,
            order = EVENTS_KEY.order_by,
        )
    }

    /// On a cluster, `CREATE TABLE IF NOT EXISTS <name> ON CLUSTER ... ENGINE = Distributed`
    /// over `<name>_local`, sharded by the sharding key; `None` on a single server.
    fn create_distributed_sql(&self, name: &str, columns: &str) -> Option<String> {
        let Topology::Cluster {
            name: cluster,
            sharding_key,
        } = &self.topology
        else {
            return None;
        };
        Some(format!(
            "CREATE TABLE IF NOT EXISTS {table}{on_cluster} {columns}\n\
            ENGINE = Distributed(`{cluster}`, `{database}`, `{local}`, {sharding_key})",
            table = self.qualified(name),
            on_cluster = self.on_cluster(),
            database = self.database,
            local = self.local(name),
        ))
    }

    /// On a cluster, the `Distributed` events table every insert and query goes through.
    pub fn create_distributed_table_sql(&self) -> Option<String> {
        self.create_distributed_sql(&self.table, EVENTS_COLUMNS)
    }

    /// On a cluster, the `Distributed` rollup table queries go through.
    pub fn create_distributed_rollup_sql(&self) -> Option<String> {
        self.create_distributed_sql(&self.rollup_table(), ROLLUP_COLUMNS)
    }

    /// The settings every insert into the events table carries: on a cluster,
    /// `insert_distributed_sync = 1`, so that an insert is acknowledged only once every
    /// shard it touches has stored its rows (and, being the same block each time it is
    /// sent, a retried one is dropped by the shard's replicated table).
    pub fn insert_settings(&self) -> &'static [(&'static str, &'static str)] {
        match self.topology {
            Topology::Single => &[],
            Topology::Cluster { .. } => &[("insert_distributed_sync", "1")],
        }
    }

    /// On a cluster, `SYSTEM SYNC REPLICA` for a table replicated on every server (the
    /// watch's log): the server then holds every row any server acknowledged before.
    pub(crate) fn sync_replica_sql(&self, name: &str) -> Option<String> {
        match self.topology {
            Topology::Single => None,
            Topology::Cluster { .. } => {
                Some(format!("SYSTEM SYNC REPLICA {}", self.qualified(name)))
            }
        }
    }

    /// The rollup table's name: `<table>_daily`.
    pub fn rollup_table(&self) -> String {
        format!("{}_daily", self.table)
    }

    /// The name of the materialized view that feeds the rollup: `<table>_daily_mv`.
    pub fn rollup_view(&self) -> String {
        format!("{}_daily_mv", self.table)
    }

    /// The name of the table that marks a rollup backfill as pending and records the months
    /// it finished: `<table>_daily_backfill`. It exists only while a backfill is pending.
    pub fn backfill_table(&self) -> String {
        format!("{}_daily_backfill", self.table)
    }

    /// The inactivity watch's table: `<table>_watch`.
    pub fn watch_table(&self) -> String {
        format!("{}_watch", self.table)
    }

    /// `database.name`, quoted for SQL, for a table of this schema's database.
    pub fn qualified(&self, name: &str) -> String {
        format!("`{}`.`{}`", self.database, name)
    }

    /// The engine clause of a table of the `MergeTree` family: `family` is `""`,
    /// `"Replacing"` or `"Aggregating"`, `local` the table's (local) name. A cluster adds
    /// `Replicated` and the table's path in ZooKeeper here, in one place: per shard
    /// (`/clickhouse/tables/{shard}/...`, replica `{replica}`) or one copy on every server
    /// (`/clickhouse/tables/all/...`, replica `{shard}-{replica}`), from the servers' macros.
    fn engine(&self, family: &str, local: &str, spread: Spread) -> String {
        match self.topology {
            Topology::Single => format!("{family}MergeTree"),
            Topology::Cluster { .. } => {
                let (shard, replica) = match spread {
                    Spread::Sharded => ("{shard}", "{replica}"),
                    Spread::Everywhere => ("all", "{shard}-{replica}"),
                };
                format!(
                    "Replicated{family}MergeTree('/clickhouse/tables/{shard}/{database}/{local}', '{replica}')",
                    database = self.database,
                )
            }
        }
    }

    /// `CREATE TABLE IF NOT EXISTS ...` for the per-account, per-day rollup: on a cluster,
    /// the local replicated table of each shard.
    pub fn create_rollup_table_sql(&self) -> String {
        let local = self.local(&self.rollup_table());
        format!(
            "CREATE TABLE IF NOT EXISTS {rollup}{on_cluster} {ROLLUP_COLUMNS}\n\
            ENGINE = {engine}\n\
            PARTITION BY toYYYYMM(day)\n\
            ORDER BY (account_id, day, event_type)",
            rollup = self.qualified(&local),
            on_cluster = self.on_cluster(),
            engine = self.engine("Aggregating", &local, Spread::Sharded),
        )
    }

    /// The `SELECT` that turns raw events of `from` into rollup rows, shared by the view and
    /// the backfill; `filter` is a `WHERE` clause or empty.
    fn rollup_select_sql(&self, from: &str, filter: &str) -> String {
        format!(
            "SELECT\n    \
                account_id,\n    \
                toDate(inserted_at, 'UTC') AS day,\n    \
                event_type,\n    \
                uniqExactState(event_id) AS events,\n    \
                minState(toUInt32(inserted_at)) AS first_seen,\n    \
                maxState(toUInt32(inserted_at)) AS last_seen\n\
            FROM {from}\n\
            {filter}\
            GROUP BY account_id, day, event_type",
        )
    }

    /// `CREATE MATERIALIZED VIEW IF NOT EXISTS ...` feeding the rollup from every insert into
    /// the events table: on a cluster, on each shard, from its local events table into its
    /// local rollup table.
    pub fn create_rollup_view_sql(&self) -> String {
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {view}{on_cluster}\nTO {rollup}\nAS {select}",
            view = self.qualified(&self.rollup_view()),
            on_cluster = self.on_cluster(),
            rollup = self.qualified(&self.local(&self.rollup_table())),
            select = self.rollup_select_sql(&self.qualified(&self.local_table()), ""),
        )
    }

    /// `INSERT INTO <rollup> SELECT ...` for the raw rows of one month (`toYYYYMM`, such as
    /// `202405`). On a cluster it reads and writes through the `Distributed` tables, and
    /// must run with [`insert_settings`](Self::insert_settings).
    pub fn backfill_month_sql(&self, month: u32) -> String {
        format!(
            "INSERT INTO {rollup}\n{select}",
            rollup = self.qualified(&self.rollup_table()),
            select = self.rollup_select_sql(
                &self.qualified_table(),
                &format!("WHERE toYYYYMM(inserted_at) = {month}\n")
            ),
        )
    }

    /// `CREATE TABLE IF NOT EXISTS ...` for the backfill marker: on a cluster, one table
    /// replicated on every server, so that each sees the same marker.
    pub fn create_backfill_table_sql(&self) -> String {
        let marker = self.backfill_table();
        format!(
            "CREATE TABLE IF NOT EXISTS {table}{on_cluster} (\n    \
                month UInt32,\n    \
                done_at DateTime DEFAULT now()\n\
            )\n\
            ENGINE = {engine}\n\
            ORDER BY month",
            table = self.qualified(&marker),
            on_cluster = self.on_cluster(),
            engine = self.engine("", &marker, Spread::Everywhere),
        )
    }

    /// `CREATE TABLE IF NOT EXISTS ...` for the inactivity watch's record of its
    /// notifications.
    ///
    /// On a cluster it is one table replicated on every server (not sharded), and the watch
    /// runs `SYSTEM SYNC REPLICA` on it before it reads its claims back. That keeps the
    /// claim → settle → read-back protocol as correct as on one server when instances talk
    /// to different servers: a claim is acknowledged only once it is in the table's
    /// replication log in ZooKeeper, and `SYNC REPLICA` makes the server that is read hold
    /// every entry of that log, so every claim acknowledged before the read-back is seen,
    /// whichever server took it. A sharded table read through `Distributed` would not be:
    /// the replica that answers for a shard may not yet have fetched a claim another
    /// instance wrote to its sibling. The log is small (a row per transition), so one copy
    /// per server costs nothing worth sharding. With ZooKeeper away, checks fail (and are
    /// retried) rather than risk notifying twice.
    pub fn create_watch_table_sql(&self) -> String {
        let watch = self.watch_table();
        format!(
            "CREATE TABLE IF NOT EXISTS {table}{on_cluster} (\n    \
                watch String,\n    \
                account_id UInt64,\n    \
                kind Enum8('inactive' = 1, 'active' = 2),\n    \
                last_seen DateTime,\n    \
                round UInt32,\n    \
                step Enum8('claimed' = 1, 'delivered' = 2, 'failed' = 3, 'recorded' = 4, \
                    'returning' = 5),\n    \
                instance UUID,\n    \
                recorded_at DateTime DEFAULT now()\n\
            )\n\
            ENGINE = {engine}\n\
            ORDER BY (watch, account_id, last_seen, kind)",
            table = self.qualified(&watch),
            on_cluster = self.on_cluster(),
            engine = self.engine("", &watch, Spread::Everywhere),
        )
    }

    /// Runs `sql` unless `name` already exists on the server `client` talks to: on a
    /// cluster, `ON CLUSTER` DDL waits for every server, so a writer that starts while one
    /// is down still finds the tables that exist.
    async fn create(&self, client: &clickhouse::Client, name: &str, sql: &str) -> Result<()> {
        if !matches!(self.topology, Topology::Single) && self.table_exists(client, name).await? {
            return Ok(());
        }
        client.query(sql).execute().await?;
        Ok(())
    }

    /// Reads the server version and refuses servers older than [`OLDEST_SUPPORTED`].
    pub async fn server_version(client: &clickhouse::Client) -> Result<ServerVersion> {
        let text: String = client.query("SELECT version()").fetch_one().await?;
        supported_version(&text)
    }

    /// Creates the database and the table if they are absent, checks that the table has
    /// every column this crate writes with a type it can write, then creates the daily rollup
    /// ([`ensure_rollup`](Self::ensure_rollup)). Idempotent.
    pub async fn ensure(&self, client: &clickhouse::Client, version: ServerVersion) -> Result<()> {
        let exists: u64 = client
            .query("SELECT count() FROM system.databases WHERE name = ?")
            .bind(&self.database)
            .fetch_one()
            .await?;
        if exists == 0 {
            client.query(&self.create_database_sql()).execute().await?;
        }
        self.create(client, &self.local_table(), &self.create_table_sql(version))
            .await?;
        if let Some(sql) = self.create_distributed_table_sql() {
            self.create(client, &self.table, &sql).await?;
        }
        self.check_columns(client).await?;
        if let Some(key) = self.sorting_key(client).await?
            && key != EVENTS_KEY.sorting_key
        {
            tracing::warn!(
                table = %self.qualified_table(),
                key,
                expected = EVENTS_KEY.sorting_key,
                "the events table has an older key; Schema::migrate_key moves it to the current one"
            );
        }
        self.ensure_rollup(client).await
    }

    /// Creates the rollup table and the view that feeds it if they are absent. When the view
    /// is new and the events table already has rows, leaves the backfill marked as pending
    /// for [`backfill_rollup`](Self::backfill_rollup). Idempotent, and safe to run from several
    /// processes at once: the worst a race does is feed some rows twice, which the rollup
    /// absorbs.
    pub async fn ensure_rollup(&self, client: &clickhouse::Client) -> Result<()> {
        let rollup = self.rollup_table();
        self.create(
            client,
            &self.local(&rollup),
            &self.create_rollup_table_sql(),
        )
        .await?;
        if let Some(sql) = self.create_distributed_rollup_sql() {
            self.create(client, &rollup, &sql).await?;
        }
        if self.table_exists(client, &self.rollup_view()).await? {
            return Ok(());
        }
        // The marker goes first: a process that stops after creating the view still leaves
        // the backfill pending.
        client
            .query(&self.create_backfill_table_sql())
            .execute()
            .await?;
        client
            .query(&self.create_rollup_view_sql())
            .execute()
            .await?;
        // From here on the view feeds every insert; only rows already there need copying.
        let any: Option<u8> = client
            .query(&format!("SELECT 1 FROM {} LIMIT 1", self.qualified_table()))
            .fetch_optional()
            .await?;
        if any.is_none() {
            self.drop_backfill_marker(client).await?;
        }
        Ok(())
    }

    /// Whether the rollup holds every event: its view exists and no backfill is pending.
    pub async fn rollup_ready(&self, client: &clickhouse::Client) -> Result<bool> {
        let names: Vec<String> = client
            .query("SELECT name FROM system.tables WHERE database = ? AND (name = ? OR name = ?)")
            .bind(&self.database)
            .bind(self.rollup_view())
            .bind(self.backfill_table())
            .fetch_all()
            .await?;
        let view = names.contains(&self.rollup_view());
        let pending = names.contains(&self.backfill_table());
        Ok(view && !pending)
    }

    /// Copies the events that were in the table before the rollup's view existed into the
    /// rollup, one month at a time, if a backfill is pending; returns how many months it
    /// copied (0 when none was pending).
    ///
    /// Resumes where an interrupted backfill stopped. Several processes may run it at once;
    /// months copied twice are absorbed by the rollup. Memory: one month's event ids are held
    /// while that month is copied.
    pub async fn backfill_rollup(&self, client: &clickhouse::Client) -> Result<usize> {
        let marker = self.qualified(&self.backfill_table());
        if !self.table_exists(client, &self.backfill_table()).await? {
            return Ok(0);
        }
        let months: Vec<u32> = client
            .query(&format!(
                "SELECT toYYYYMM(inserted_at) AS m FROM {} GROUP BY m ORDER BY m",
                self.qualified_table()
            ))
            .fetch_all()
            .await?;
        let done = match client
            .query(&format!("SELECT month FROM {marker}"))
            .fetch_all::<u32>()
            .await
        {
            Ok(done) => done,
            // Another process finished the backfill and dropped the marker meanwhile.
            Err(_) if !self.table_exists(client, &self.backfill_table()).await? => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        let mut copied = 0;
        let mut insert = client.clone();
        for (name, value) in self.insert_settings() {
            insert = insert.with_setting(*name, *value);
        }
        for month in months.into_iter().filter(|m| !done.contains(m)) {
            insert
                .query(&self.backfill_month_sql(month))
                .execute()
                .await?;
            copied += 1;
            let noted = client
                .query(&format!("INSERT INTO {marker} (month) VALUES (?)"))
                .bind(month)
                .execute()
                .await;
            if noted.is_err() && !self.table_exists(client, &self.backfill_table()).await? {
                // Finished by another process; every month is in the rollup.
                return Ok(copied);
            }
            noted?;
            tracing::info!(table = %self.qualified(&self.rollup_table()), month, "rollup backfilled");
        }
        self.drop_backfill_marker(client).await?;
        Ok(copied)
    }

    async fn drop_backfill_marker(&self, client: &clickhouse::Client) -> Result<()> {
        client
            .query(&format!(
                "DROP TABLE IF EXISTS {}{}",
                self.qualified(&self.backfill_table()),
                self.on_cluster()
            ))
            .execute()
            .await?;
        Ok(())
    }

    /// Creates the inactivity watch's table if it is absent. Idempotent.
    pub async fn ensure_watch_table(&self, client: &clickhouse::Client) -> Result<()> {
        self.create(client, &self.watch_table(), &self.create_watch_table_sql())
            .await?;
        // A table made before the `returning` step: add it (a change of metadata only).
        let step: String = client
            .query(
                "SELECT type FROM system.columns \
                 WHERE database = ? AND table = ? AND name = 'step'",
            )
            .bind(&self.database)
            .bind(self.watch_table())
            .fetch_one()
            .await?;
        if !step.contains("'returning'") {
            client
                .query(&format!(
                    "ALTER TABLE {}{} MODIFY COLUMN step Enum8('claimed' = 1, 'delivered' = 2, \
                     'failed' = 3, 'recorded' = 4, 'returning' = 5)",
                    self.qualified(&self.watch_table()),
                    self.on_cluster(),
                ))
                .execute()
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn table_exists(
        &self,
        client: &clickhouse::Client,
        name: &str,
    ) -> Result<bool> {
        let n: u64 = client
            .query("SELECT count() FROM system.tables WHERE database = ? AND name = ?")
            .bind(&self.database)
            .bind(name)
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// The events table's sorting key as the server reports it, or `None` if there is no
    /// table.
    pub async fn sorting_key(&self, client: &clickhouse::Client) -> Result<Option<String>> {
        Ok(client
            .query("SELECT sorting_key FROM system.tables WHERE database = ? AND name = ?")
            .bind(&self.database)
            // On a cluster, the shard's local table: the `Distributed` table has no key.
            .bind(self.local_table())
            .fetch_optional::<String>()
            .await?)
    }

    /// The name [`migrate_key`](Self::migrate_key) gives the table it replaces:
    /// `<table>_before_key_migration`.
    pub fn migrated_table(&self) -> String {
        format!("{}_before_key_migration", self.table)
    }

    /// Moves an events table made with an older key (such as
    /// `ORDER BY (account_id, inserted_at, event_id)`, without `source`) to [`EVENTS_KEY`]. ClickHouse cannot
    /// change a sorting key in place, so this copies the rows, one month (one partition) at a
    /// time, into a new table `<table>_migrating`, then swaps the names in one `RENAME`: the
    /// new table becomes `<table>`, the old one `<table>_before_key_migration`, kept until
    /// you drop it.
    ///
    /// Rows written to the old table while it ran are copied again after the swap (any
    /// month whose row count changed), into the new table, so that the rollup sees them too;
    /// rows copied twice are one row, as always. The copy itself does not feed the rollup,
    /// which already holds these events. The rollup and the watch's table are untouched; the
    /// materialized view is made again right after the swap (on an Atomic database it would
    /// go on following the old table), so a row written in that moment reaches the new table
    /// but not the rollup.
    ///
    /// Run it once, from one process, preferably while no writer writes: a writer that is
    /// writing keeps writing across the swap, but a row it writes into the old table after
    /// the last check is left there. Idempotent: a table that has the key already is left as
    /// it is. An interrupted run leaves the old table as it was and `<table>_migrating`
    /// behind, which the next run drops and fills anew.
    ///
    /// Memory and disk: one month of rows is read at a time; the copy needs as much disk as
    /// the table.
    pub async fn migrate_key(
        &self,
        client: &clickhouse::Client,
        version: ServerVersion,
    ) -> Result<KeyMigration> {
        if !matches!(self.topology, Topology::Single) {
            // A cluster's tables were always made with the current key.
            return Err(Error::Config(
                "migrate_key moves a single server's table; a cluster's tables are created with the current key".into(),
            ));
        }
        let Some(key) = self.sorting_key(client).await? else {
            return Ok(KeyMigration::NoTable);
        };
        if key == EVENTS_KEY.sorting_key {
            return Ok(KeyMigration::Current);
        }
        let kept = self.migrated_table();
        if self.table_exists(client, &kept).await? {
            return Err(Error::Config(format!(
                "{} exists already, from an earlier migration: drop or rename it first",
                self.qualified(&kept)
            )));
        }
        let copy = format!("{}_migrating", self.table);
        client
            .query(&format!("DROP TABLE IF EXISTS {}", self.qualified(&copy)))
            .execute()
            .await?;
        client
            .query(&self.create_events_table_sql(&copy, version))
            .execute()
            .await?;
        let before = self.month_counts(client, &self.table).await?;
        let mut rows = 0;
        for &(month, _) in &before {
            rows += self.copy_month(client, &self.table, &copy, month).await?;
        }
        client
            .query(&format!(
                "RENAME TABLE {old} TO {kept}, {copy} TO {old}",
                old = self.qualified_table(),
                kept = self.qualified(&kept),
                copy = self.qualified(&copy),
            ))
            .execute()
            .await?;
        // On an Atomic database (the default from 20.10) the view follows the table it was
        // made for, now the kept one, not the name: make it again for the new table.
        client
            .query(&format!(
                "DROP TABLE IF EXISTS {}",
                self.qualified(&self.rollup_view())
            ))
            .execute()
            .await?;
        client
            .query(&self.create_rollup_view_sql())
            .execute()
            .await?;
        tracing::info!(table = %self.qualified_table(), months = before.len(), rows, "events table moved to the new key");
        // What a writer added to the old table while the months were copied.
        let mut seen = before;
        for _ in 0..3 {
            let now = self.month_counts(client, &kept).await?;
            let changed: Vec<u32> = now
                .iter()
                .filter(|m| !seen.contains(m))
                .map(|&(month, _)| month)
                .collect();
            if changed.is_empty() {
                break;
            }
            for month in changed {
                self.copy_month(client, &kept, &self.table, month).await?;
            }
            seen = now;
        }
        Ok(KeyMigration::Migrated {
            months: seen.len(),
            rows,
            kept,
        })
    }

    /// `(toYYYYMM(inserted_at), count())` of a table of this schema's database.
    async fn month_counts(
        &self,
        client: &clickhouse::Client,
        name: &str,
    ) -> Result<Vec<(u32, u64)>> {
        Ok(client
            .query(&format!(
                "SELECT toYYYYMM(inserted_at) AS m, count() FROM {} GROUP BY m ORDER BY m",
                self.qualified(name)
            ))
            .fetch_all()
            .await?)
    }

    /// Copies one month of events from `from` to `to`; returns the rows copied.
    async fn copy_month(
        &self,
        client: &clickhouse::Client,
        from: &str,
        to: &str,
        month: u32,
    ) -> Result<u64> {
        let columns = COLUMNS.map(|(name, _)| name).join(", ");
        let from = self.qualified(from);
        let n: u64 = client
            .query(&format!(
                "SELECT count() FROM {from} WHERE toYYYYMM(inserted_at) = {month}"
            ))
            .fetch_one()
            .await?;
        client
            .query(&format!(
                "INSERT INTO {to} ({columns}) SELECT {columns} FROM {from} \
                 WHERE toYYYYMM(inserted_at) = {month}",
                to = self.qualified(to),
            ))
            .execute()
            .await?;
        Ok(n)
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

/// What [`Schema::migrate_key`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyMigration {
    /// There is no events table: [`Schema::ensure`] makes it with the current key.
    NoTable,
    /// The table has [`EVENTS_KEY`] already; nothing was done.
    Current,
    /// The rows were copied to a table with the current key, which took the table's name.
    Migrated {
        /// Months (partitions) copied.
        months: usize,
        /// Rows copied before the swap, duplicates included.
        rows: u64,
        /// The old table's new name, in the same database: drop it once satisfied.
        kept: String,
    },
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
        assert!(old.contains("PARTITION BY toYYYYMM(inserted_at)\nORDER BY (account_id, inserted_at, event_id, source)\n"));
        assert_eq!(
            EVENTS_KEY.order_by,
            format!("({})", EVENTS_KEY.sorting_key),
            "the two spellings of the key agree"
        );
    }

    #[test]
    fn usage_rollup_and_watch_ddl() {
        let schema = Schema::new("app", "ev").unwrap();
        assert_eq!(schema.rollup_table(), "ev_daily");
        assert_eq!(schema.rollup_view(), "ev_daily_mv");
        assert_eq!(schema.backfill_table(), "ev_daily_backfill");
        assert_eq!(schema.watch_table(), "ev_watch");

        let table = schema.create_rollup_table_sql();
        assert!(table.starts_with("CREATE TABLE IF NOT EXISTS `app`.`ev_daily` ("));
        assert!(table.contains("events AggregateFunction(uniqExact, UUID)"));
        assert!(table.contains("ENGINE = AggregatingMergeTree\n"));
        assert!(table.contains("ORDER BY (account_id, day, event_type)"));

        let view = schema.create_rollup_view_sql();
        assert!(view.starts_with(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `app`.`ev_daily_mv`\nTO `app`.`ev_daily`\nAS SELECT"
        ));
        assert!(view.contains("uniqExactState(event_id) AS events"));
        assert!(view.contains("FROM `app`.`ev`\nGROUP BY account_id, day, event_type"));
        // `?` would be taken for a bind parameter.
        assert!(!view.contains('?'));

        let backfill = schema.backfill_month_sql(202405);
        assert!(backfill.starts_with("INSERT INTO `app`.`ev_daily`\nSELECT"));
        assert!(backfill.contains(
            "FROM `app`.`ev`\nWHERE toYYYYMM(inserted_at) = 202405\nGROUP BY account_id, day, event_type"
        ));
        assert!(!backfill.contains('?'));

        let watch = schema.create_watch_table_sql();
        assert!(watch.starts_with("CREATE TABLE IF NOT EXISTS `app`.`ev_watch` ("));
        assert!(
            watch.contains("ENGINE = MergeTree\nORDER BY (watch, account_id, last_seen, kind)")
        );
        assert!(
            schema
                .create_backfill_table_sql()
                .contains("ENGINE = MergeTree\n")
        );
    }

    #[test]
    fn cluster_ddl() {
        let schema = Schema::new("app", "ev")
            .unwrap()
            .with_topology(Topology::cluster("c1").unwrap());
        assert_eq!(schema.topology().cluster_name(), Some("c1"));
        assert_eq!(schema.local_table(), "ev_local");
        assert_eq!(
            schema.create_database_sql(),
            "CREATE DATABASE IF NOT EXISTS `app` ON CLUSTER `c1`"
        );
        let table = schema.create_table_sql(ServerVersion::new(18, 16, 1));
        assert!(table.starts_with("CREATE TABLE IF NOT EXISTS `app`.`ev_local` ON CLUSTER `c1` ("));
        assert!(table.contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/app/ev_local', '{replica}')\n\
             PARTITION BY toYYYYMM(inserted_at)\nORDER BY (account_id, inserted_at, event_id, source)"
        ));
        assert!(
            !schema
                .create_table_sql(ServerVersion::new(24, 3, 0))
                .contains("non_replicated_deduplication_window")
        );
        let dist = schema.create_distributed_table_sql().unwrap();
        assert!(dist.starts_with("CREATE TABLE IF NOT EXISTS `app`.`ev` ON CLUSTER `c1` ("));
        assert!(
            dist.ends_with("ENGINE = Distributed(`c1`, `app`, `ev_local`, cityHash64(account_id))")
        );
        assert_eq!(
            schema.insert_settings(),
            &[("insert_distributed_sync", "1")]
        );

        let rollup = schema.create_rollup_table_sql();
        assert!(
            rollup
                .starts_with("CREATE TABLE IF NOT EXISTS `app`.`ev_daily_local` ON CLUSTER `c1` (")
        );
        assert!(rollup.contains("ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/app/ev_daily_local', '{replica}')"));
        assert!(schema.create_distributed_rollup_sql().unwrap().ends_with(
            "ENGINE = Distributed(`c1`, `app`, `ev_daily_local`, cityHash64(account_id))"
        ));
        let view = schema.create_rollup_view_sql();
        assert!(view.starts_with(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `app`.`ev_daily_mv` ON CLUSTER `c1`\nTO `app`.`ev_daily_local`\nAS SELECT"
        ));
        assert!(view.contains("FROM `app`.`ev_local`\n"));
        let backfill = schema.backfill_month_sql(202405);
        assert!(backfill.starts_with("INSERT INTO `app`.`ev_daily`\nSELECT"));
        assert!(backfill.contains("FROM `app`.`ev`\nWHERE"));
        for (sql, name) in [
            (schema.create_watch_table_sql(), "ev_watch"),
            (schema.create_backfill_table_sql(), "ev_daily_backfill"),
        ] {
            assert!(sql.contains(&format!(
                "ReplicatedMergeTree('/clickhouse/tables/all/app/{name}', '{{shard}}-{{replica}}')"
            )), "{sql}");
        }
        assert_eq!(
            schema.sync_replica_sql("ev_watch").as_deref(),
            Some("SYSTEM SYNC REPLICA `app`.`ev_watch`")
        );
        assert_eq!(Schema::default().sync_replica_sql("x"), None);
        assert!(Schema::default().insert_settings().is_empty());
    }

    #[test]
    fn cluster_names_and_keys_are_checked() {
        assert!(Topology::cluster("a-b").is_err());
        assert!(Topology::cluster("").is_err());
        let t = Topology::cluster("c").unwrap();
        assert!(t.clone().with_sharding_key("account_id % 4").is_ok());
        assert!(t.clone().with_sharding_key("rand()").is_err());
        assert!(t.clone().with_sharding_key("account_id; DROP").is_err());
        assert!(t.with_sharding_key("sipHash64(account_id)").is_ok());
        assert_eq!(Topology::Single.cluster_name(), None);
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
