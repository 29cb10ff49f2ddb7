//! [`Builder`]: where the writer writes and how it batches, retries and times out.

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use crate::{
    connection::{Connection, ConnectionBuilder},
    error::{Error, Result},
    schema::Schema,
};

use super::{
    Analytics, Worker,
    spool::{Fsync, Spool, SpoolConfig},
};

/// Configures and starts the writer. Made by [`Analytics::builder`] (from a URL) or
/// [`Analytics::builder_with`] (from a [`Connection`]).
///
/// Every `with_*` method states its default. [`build`](Self::build) checks the whole
/// configuration at once and spawns the worker; [`build_pair`](Self::build_pair) hands the
/// worker to the caller instead. Its `Debug` output shows no password.
#[derive(Clone)]
pub struct Builder {
    /// The connection's settings; the connection itself once it is made.
    connection: ConnectionBuilder,
    built: Option<Connection>,
    pub(crate) schema: Schema,
    pub(crate) create_schema: bool,
    pub(crate) queue_capacity: usize,
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) dead_letter_dir: Option<PathBuf>,
    pub(crate) spool: Option<SpoolConfig>,
    /// Set by [`Analytics::builder_reporting_to`]: post batches there instead.
    pub(crate) report: Option<super::rest::Target>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Builder");
        match &self.built {
            Some(connection) => d.field("connection", connection),
            None => d.field("connection", &self.connection),
        };
        d.field("schema", &self.schema)
            .field("create_schema", &self.create_schema)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_rows", &self.max_rows)
            .field("max_bytes", &self.max_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("dead_letter_dir", &self.dead_letter_dir)
            .field("spool", &self.spool)
            .field("report", &self.report)
            .finish()
    }
}

impl Builder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self::with_settings(Connection::builder(url), None)
    }

    pub(crate) fn from_connection(connection: Connection) -> Self {
        Self::with_settings(connection.settings(), Some(connection))
    }

    fn with_settings(connection: ConnectionBuilder, built: Option<Connection>) -> Self {
        Self {
            connection,
            built,
            schema: Schema::default(),
            create_schema: true,
            queue_capacity: 100_000,
            max_rows: 10_000,
            max_bytes: 8 * 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            dead_letter_dir: None,
            spool: None,
            report: None,
        }
    }

    pub(crate) fn reporting_to(url: impl Into<String>, token: impl Into<String>) -> Self {
        let url = url.into();
        let mut builder = Self::new(url.clone());
        builder.max_rows = super::rest::MAX_BATCH;
        builder.report = Some(super::rest::Target {
            url,
            token: token.into(),
        });
        builder
    }

    /// Changes the connection's settings; a connection given to
    /// [`Analytics::builder_with`] is then made anew from them (with a pool of its own).
    fn connection(mut self, change: impl FnOnce(ConnectionBuilder) -> ConnectionBuilder) -> Self {
        self.connection = change(self.connection);
        self.built = None;
        self
    }

    /// The servers to write to, in order of preference, replacing the URLs of the
    /// connection. Default: the URL given to [`Analytics::builder`] (or the comma-separated
    /// URLs it lists), or the URLs of the connection given to [`Analytics::builder_with`].
    /// See [`Connection::builder_for`].
    ///
    /// The writer sends to one server at a time and goes on to the next when one is down or
    /// refuses a batch; a batch it retries elsewhere is the identical batch. On a cluster
    /// ([`Topology::Cluster`](crate::schema::Topology)) any server of the cluster can take
    /// any batch: list several so that a server being restarted stops nothing.
    pub fn with_urls<I, S>(self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls = urls.into_iter().map(Into::into).collect();
        self.connection(|c| c.with_urls(urls))
    }

    /// The ClickHouse user. Default: the user in the URL, or none sent (the server's
    /// `default` user). See [`ConnectionBuilder::with_user`].
    pub fn with_user(self, user: impl Into<String>) -> Self {
        self.connection(|c| c.with_user(user))
    }

    /// The ClickHouse password. Default: the password in the URL, or none.
    /// See [`ConnectionBuilder::with_password`].
    pub fn with_password(self, password: impl Into<String>) -> Self {
        self.connection(|c| c.with_password(password))
    }

    /// Also trusts the CA certificates in this PEM file (a private CA). Default: none.
    /// See [`ConnectionBuilder::with_ca_file`].
    pub fn with_ca_file(self, path: impl Into<PathBuf>) -> Self {
        self.connection(|c| c.with_ca_file(path))
    }

    /// Also trusts the CA certificates in these PEM bytes. Default: none.
    /// See [`ConnectionBuilder::with_ca_pem`].
    pub fn with_ca_pem(self, pem: impl Into<Vec<u8>>) -> Self {
        self.connection(|c| c.with_ca_pem(pem))
    }

    /// The database and table to write to. Default: `idp`.`events`.
    pub fn with_schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// Whether the worker creates the database and table when they are absent.
    /// Default: `true`. Either way it checks the table's columns before the first insert.
    pub fn with_create_schema(mut self, create: bool) -> Self {
        self.create_schema = create;
        self
    }

    /// How many events may wait in memory for the worker. Default: 100 000.
    ///
    /// The queue's slots are allocated when the writer is built, and an event type of up to
    /// 62 bytes is kept inside its slot, so a queued event takes no more memory than its
    /// slot. Measured (`cargo bench --bench memory`): 168 bytes per queued event, so the
    /// default queue holds about 16 MiB. When it is full, new events are refused and counted
    /// in [`Stats::dropped_queue_full`](super::Stats).
    pub fn with_queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// The most rows in one insert. Default: 10 000; for a writer
    /// [reporting to an endpoint](Analytics::builder_reporting_to), 1 000, which is also
    /// the most it takes.
    pub fn with_max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows;
        self
    }

    /// The most bytes (RowBinary) in one insert. Default: 8 MiB.
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How often the worker writes what it has, when a batch is not full sooner.
    /// Default: 1 s, which keeps a writer near ClickHouse's advice of about one insert a
    /// second. It is also the longest an event waits in memory while ClickHouse is up.
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// How long to wait for a TCP connection to ClickHouse, and then for the TLS handshake.
    /// Default: 5 s each. See [`ConnectionBuilder::with_connect_timeout`].
    pub fn with_connect_timeout(self, timeout: Duration) -> Self {
        self.connection(|c| c.with_connect_timeout(timeout))
    }

    /// How long sending one chunk of an insert may take. Default: 10 s.
    pub fn with_send_timeout(self, timeout: Duration) -> Self {
        self.connection(|c| c.with_send_timeout(timeout))
    }

    /// How long to wait for ClickHouse's answer once an insert (or a schema query) is sent.
    /// Default: 30 s.
    pub fn with_receive_timeout(self, timeout: Duration) -> Self {
        self.connection(|c| c.with_receive_timeout(timeout))
    }

    /// The first and the longest wait between retries; waits double in between, with
    /// jitter. Default: 100 ms and 30 s.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// A directory for batches ClickHouse rejected as bad data: each such batch is kept
    /// there as a file of JSON lines, one event a line. Default: none, and such batches are
    /// logged whole at `error` level instead.
    ///
    /// The directory is created `0700` and its files `0600`. A directory that is a symbolic
    /// link, is owned by another user or can be written by its group or others is refused,
    /// and the batch is logged instead.
    pub fn with_dead_letter_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dead_letter_dir = Some(dir.into());
        self
    }

    /// Keeps accepted events in segment files under `dir` until ClickHouse has acknowledged
    /// them. Default: no spool (events wait in memory only).
    ///
    /// With a spool, events are appended to disk shortly after they are taken (see
    /// [`with_fsync`](Self::with_fsync)) and a segment file is removed only once ClickHouse
    /// has acknowledged every row in it. Segments a previous run left (after a crash, or a
    /// shutdown that ran out of time) are sent first, with their original `event_id`s.
    /// While ClickHouse is away, the in-memory queue only smooths bursts: an outage of any
    /// length up to [`with_spool_max_bytes`](Self::with_spool_max_bytes) loses nothing.
    /// One writer at a time may use a directory; [`build`](Self::build) fails if it is
    /// locked by another, or cannot be created.
    ///
    /// The spool holds every event's account and time, and what is in it is replayed as
    /// events: the directory is created `0700` and its files `0600`, and
    /// [`build`](Self::build) refuses ([`Error::Spool`](crate::Error::Spool)) a directory
    /// that is a symbolic link, is owned by another user, or can be written by its group
    /// or by others. Files in it are opened without following links; a file named like a
    /// segment that is not a regular file, or is longer than a segment can be (twice
    /// [`with_max_bytes`](Self::with_max_bytes) and one record), is left alone and never
    /// read.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let spool = self.spool.get_or_insert_with(|| SpoolConfig {
            dir: PathBuf::new(),
            max_bytes: 1 << 30,
            fsync: Fsync::default(),
            max_segment_bytes: 0,
        });
        spool.dir = dir.into();
        self
    }

    /// The most bytes the spool keeps on disk. Default: 1 GiB (about 10 million events).
    ///
    /// When it is full, the newest events are refused ([`Rejected::SpoolFull`](crate::Rejected),
    /// counted in [`Stats::dropped_spool_full`](super::Stats)): the layer drops them, the
    /// reporter endpoint answers `503`. Nothing already taken is dropped. Has no effect
    /// without [`with_spool_dir`](Self::with_spool_dir).
    pub fn with_spool_max_bytes(mut self, bytes: u64) -> Self {
        if let Some(spool) = &mut self.spool {
            spool.max_bytes = bytes;
        }
        self
    }

    /// When spooled events are forced to disk. Default: [`Fsync::Interval`] of 500 ms.
    /// This is the window of events a machine crash can lose; a process crash loses none
    /// that reached the spool. Has no effect without [`with_spool_dir`](Self::with_spool_dir).
    pub fn with_fsync(mut self, fsync: Fsync) -> Self {
        if let Some(spool) = &mut self.spool {
            spool.fsync = fsync;
        }
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if let Some(target) = &self.report {
            target.validate(self.max_rows)?;
        }
        if self.queue_capacity == 0 {
            return bad("queue capacity must be at least 1");
        }
        if self.max_rows == 0 {
            return bad("max rows must be at least 1");
        }
        if self.max_bytes < 1024 {
            return bad("max bytes must be at least 1024");
        }
        for (name, d) in [
            ("flush interval", self.flush_interval),
            ("minimum backoff", self.min_backoff),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be more than zero")));
            }
        }
        if self.max_backoff < self.min_backoff {
            return bad("maximum backoff must not be shorter than the minimum");
        }
        if let Some(spool) = &self.spool {
            if spool.dir.as_os_str().is_empty() {
                return bad("the spool directory must not be empty");
            }
            if spool.max_bytes < self.max_bytes as u64 * 2 {
                return bad("the spool must hold at least two batches (2 x max bytes)");
            }
            if spool.fsync == Fsync::Interval(Duration::ZERO) {
                return bad("the fsync interval must be more than zero");
            }
        }
        Ok(())
    }

    /// Checks the configuration (the connection's too, see [`ConnectionBuilder::build`]),
    /// opens the spool if there is one, and spawns the worker on
    /// the current Tokio runtime.
    ///
    /// Nothing here waits for ClickHouse: the worker reads the server version, creates and
    /// checks the table in the background, retrying until the server answers, while events
    /// are already being taken.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn build(self) -> Result<Analytics> {
        let (analytics, worker) = self.build_pair()?;
        tokio::spawn(worker.run());
        Ok(analytics)
    }

    /// Like [`build`](Self::build), but returns the worker for the caller to run
    /// (`tokio::spawn(worker.run())`, or on a runtime of its choice).
    pub fn build_pair(mut self) -> Result<(Analytics, Worker)> {
        self.validate()?;
        let connection = match self.built.take() {
            Some(connection) => connection,
            None => self.connection.clone().build()?,
        };
        let max_segment_bytes = super::spool::max_segment_bytes(self.max_bytes);
        let spool = self
            .spool
            .clone()
            .map(|spool| {
                Spool::open(SpoolConfig {
                    max_segment_bytes,
                    ..spool
                })
            })
            .transpose()?;
        let rest = self
            .report
            .as_ref()
            .map(|target| super::rest::RestSink::new(&connection, target))
            .transpose()?;
        self.built = Some(connection.clone());
        let config = Arc::new(self);
        Ok(super::handle::pair(config, connection, spool, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_password() {
        let builder = Builder::new("http://alice:url-secret@127.0.0.1:8123/?password=query-secret")
            .with_password("set-secret")
            .with_user("bob");
        let shown = format!("{builder:?}");
        for secret in ["url-secret", "query-secret", "set-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("bob") && shown.contains("<redacted>"),
            "{shown}"
        );
        // Once built, the connection shows none either.
        let connection = Connection::builder("http://alice:url-secret@127.0.0.1:8123")
            .build()
            .unwrap();
        let shown = format!("{:?}", Builder::from_connection(connection));
        assert!(!shown.contains("url-secret"), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn a_setting_changed_after_a_connection_makes_a_new_one() {
        let connection = Connection::builder("http://127.0.0.1:8123")
            .build()
            .unwrap();
        let builder = Builder::from_connection(connection).with_user("carol");
        assert!(builder.built.is_none());
        assert!(format!("{builder:?}").contains("carol"));
    }
}
